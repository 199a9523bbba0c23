//! `Host`, `Metrics` and `log` over the ABI.

use super::ffi;
use crate::series::{MetricKind, Metrics};

/// Envoy, through the ABI binding both plugins share.
pub use proxy_attributes::host::envoy::EnvoyHost as WasmHost;

pub struct WasmMetrics;

impl Metrics for WasmMetrics {
    fn define(&mut self, kind: MetricKind, name: &str) -> Option<u32> {
        let t = match kind {
            MetricKind::Counter => 0,
            MetricKind::Gauge => 1,
            MetricKind::Histogram => 2,
        };
        ffi::define_metric(t, name)
    }

    fn record(&mut self, id: u32, value: u64) {
        ffi::record_metric(id, value);
    }

    fn increment(&mut self, id: u32, delta: i64) {
        ffi::increment_metric(id, delta);
    }
}

/// `log` → `proxy_log` (levels: trace 0 … error 4).
pub struct WasmLogger;

impl log::Log for WasmLogger {
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
        ffi::log(level, &record.args().to_string());
    }

    fn flush(&self) {}
}
