//! `Host` and `Metrics` over the ABI binding both plugins share (`proxy_attributes::host::envoy`).

use crate::series::{MetricKind, Metrics};
use proxy_attributes::host::envoy::calls::{
    self as ffi, METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM,
};

/// Envoy, through the ABI binding both plugins share.
pub use proxy_attributes::host::envoy::EnvoyHost as WasmHost;

pub struct WasmMetrics;

impl Metrics for WasmMetrics {
    fn define(&mut self, kind: MetricKind, name: &str) -> Option<u32> {
        let t = match kind {
            MetricKind::Counter => METRIC_COUNTER,
            MetricKind::Gauge => METRIC_GAUGE,
            MetricKind::Histogram => METRIC_HISTOGRAM,
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
