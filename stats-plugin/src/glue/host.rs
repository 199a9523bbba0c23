//! `Host`, `Metrics` and `log` over the ABI.

use super::ffi;
use crate::series::{MetricKind, Metrics};
use proxy_attributes::host::{HeaderMap, Host};

pub struct WasmHost;

impl Host for WasmHost {
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        ffi::property(path)
    }

    fn header(&self, map: HeaderMap, name: &str) -> Option<String> {
        let map_type = match map {
            HeaderMap::RequestHeaders => 0,
            HeaderMap::RequestTrailers => 1,
            HeaderMap::ResponseHeaders => 2,
            HeaderMap::ResponseTrailers => 3,
        };
        ffi::header(map_type, name).map(|b| match String::from_utf8(b) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }
}

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
