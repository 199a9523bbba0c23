//! The `log` facade over `proxy_log`, so plugin logic logs with `log::warn!` and friends and
//! Envoy prints the line with the plugin's name (`wasm log <plugin> <root id>: …`).

use super::calls;

/// `log` → `proxy_log` (`proxy_log_level_t`: trace 0 … critical 5).
pub struct EnvoyLogger;

static LOGGER: EnvoyLogger = EnvoyLogger;

/// Installs the logger at Info, as both Istio plugins log by default. Called from the module's
/// `_initialize`, where no host call is made (restricted on Envoy ≥ 1.24).
pub fn install() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
}

impl log::Log for EnvoyLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            log::Level::Trace => 0,
            log::Level::Debug => 1,
            log::Level::Info => 2,
            log::Level::Warn => 3,
            log::Level::Error => 4,
        };
        calls::log(level, &record.args().to_string());
    }

    fn flush(&self) {}
}
