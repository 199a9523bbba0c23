//! From dimension values to metric series: the Envoy stat-name encoding (§5.1), the metric-id
//! cache keyed by the dimension values (§7.1), and the [`Metrics`] boundary to the host.

pub mod bytes_map;
pub mod cache;
pub mod naming;

/// `proxy_metric_type_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

/// The host's metric calls (`proxy_define_metric`, `proxy_record_metric`,
/// `proxy_increment_metric`). The wasm glue implements it over the ABI; tests use a fake.
pub trait Metrics {
    /// Defines (or re-finds) the stat `name`; `None` if the host refused.
    fn define(&mut self, kind: MetricKind, name: &str) -> Option<u32>;
    /// Counter: add; gauge: set; histogram: record a sample.
    fn record(&mut self, id: u32, value: u64);
    fn increment(&mut self, id: u32, delta: i64);
}
