//! The runaway-callback guard: wasmtime epoch interruption driven by one process-wide ticker.
//!
//! Envoy itself puts no time limit on a Proxy-Wasm callback (a plugin stuck in a loop hangs a
//! worker until Envoy's watchdog kills the process); the harness must not hang a replay or a
//! test, so a callback that runs past its deadline traps with wasmtime's `interrupt` trap and
//! poisons its VM like any other trap.
//!
//! Epochs, not fuel: fuel metering adds a counter update to every basic block of the plugins
//! (measured 12–16 % of a request: 55.5 k vs 62.8 k instructions per stream, stats default
//! config, callgrind); an epoch check is one load and compare at function entries and loop
//! headers.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use wasmtime::{Engine, EngineWeak};

/// One epoch tick.
pub const TICK: Duration = Duration::from_millis(10);

/// The default per-callback deadline: far above any real callback (configure with CEL
/// compilation is a few ms), short enough that a hung plugin fails a replay quickly.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(5);

/// Engines the ticker advances (weak: a dropped engine is forgotten on the next tick).
static ENGINES: OnceLock<Mutex<Vec<EngineWeak>>> = OnceLock::new();

/// Registers `engine` with the ticker, starting the ticker thread on first use.
pub fn watch(engine: &Engine) {
    let engines = ENGINES.get_or_init(|| {
        // The thread lives for the process; it sleeps between ticks.
        let _ = std::thread::Builder::new()
            .name("harness-epoch".into())
            .spawn(tick_forever);
        Mutex::new(Vec::new())
    });
    if let Ok(mut v) = engines.lock() {
        v.push(engine.weak());
    }
}

fn tick_forever() {
    loop {
        std::thread::sleep(TICK);
        let Some(engines) = ENGINES.get() else {
            continue;
        };
        if let Ok(mut v) = engines.lock() {
            v.retain(|w| match w.upgrade() {
                Some(e) => {
                    e.increment_epoch();
                    true
                }
                None => false,
            });
        }
    }
}

/// The deadline in epoch ticks beyond the current epoch (at least 2, so that a callback that
/// starts just before a tick still gets one full tick).
pub fn deadline_ticks(deadline: Duration) -> u64 {
    (deadline.as_nanos() / TICK.as_nanos()).max(1) as u64 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_rounds_to_ticks_plus_one() {
        assert_eq!(deadline_ticks(Duration::from_secs(5)), 501);
        assert_eq!(deadline_ticks(Duration::from_millis(1)), 2);
        assert_eq!(deadline_ticks(Duration::ZERO), 2);
    }
}
