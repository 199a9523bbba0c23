//! Envoy's stats sink as Wasm plugins see it (`Context::defineMetric` and friends in Envoy's
//! `source/extensions/common/wasm/context.cc`, id encoding from proxy-wasm-cpp-host `wasm.h`).
//!
//! * [`StatsSink`] is the process-wide store: stats are keyed by **full name**
//!   (`wasmcustom.` + the plugin's name), so every VM and every reconfigured plugin that defines the
//!   same name shares one series, as in Envoy.
//! * [`VmMetricIds`] is one VM's id table: Envoy hands out type-tagged ids per VM (counters 4, 8,
//!   12…; gauges 5, 9…; histograms 6, 10…).
//!
//! * [`TagExtractor`] is Envoy's tag extraction with Istio's bootstrap `stats_tags`
//!   ([`TagExtractor::istio`], [`TagExtractor::istio_proxy_tests`]).
//! * [`prometheus::render`] prints `/stats/prometheus` ([`exposition`] reads it back); [`circllhist`] holds the histogram
//!   approximation Envoy applies to bucket counts and sums.

//!
//! # Fidelity notes
//!
//! Verified against sources: Istio's `stats_tags` per version (`testdata/bootstrap/*.json` are
//! rendered mechanically from istio/istio and istio/proxy and must equal the built-in tables);
//! `use_all_default_tags` is `false` in every real 1.13–1.17 bootstrap and `true` in istio/proxy's
//! tests; circllhist bin, midpoint and `count_below` arithmetic (libcircllhist `63a16dd`, the
//! version Envoy pinned until 2026) reproduces Envoy's own `prometheus_stats_test` vectors; label
//! escaping (envoy PR #18978, in 1.21+); the empty line after each family only up to Envoy 1.23
//! (envoy PR #22403); tag-name de-duplication (envoy PR #23024, 1.24+; earlier Envoys reject
//! duplicate names, so the result is the same). Istio's bootstrap `stats_matcher` includes the
//! prefix `wasm`, so every `wasmcustom.` stat is kept.
//!
//! Not verified (no readable source at the exact pinned Envoy commits): that libc++'s
//! ECMAScript engine and this crate agree on exotic inputs beyond the shapes tested here (regexes
//! are translated to `regex::bytes`, ASCII classes, `.` excluding `\n` and `\r`); the full list of
//! Envoy 1.21–1.25 built-in descriptors (only the two prefix-less ones can touch Wasm stats; the
//! anchored ones in [`istio_tags::envoy_default_rules`] come from an older `well_known_names.cc`);
//! fmt's `{:.32g}` is assumed to print the exact decimal expansion like printf (Envoy's own test
//! expectation `2.2599999999999997868371792719699` shows it does).

pub mod circllhist;
pub mod exposition;
pub mod histogram;
pub mod istio_tags;
pub mod prometheus;
pub mod tags;

pub use histogram::Histogram;
pub use tags::{RejectedRule, TagExtractor, TagRule};

/// `proxy_metric_type_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MetricType {
    Counter = 0,
    Gauge = 1,
    Histogram = 2,
}

/// The non-OK outcomes Envoy reports for metric host calls (mapped to `proxy_status_t` by the
/// harness: NOT_FOUND = 1, BAD_ARGUMENT = 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricError {
    NotFound,
    BadArgument,
}

/// One stat's value.
#[derive(Debug, Clone, PartialEq)]
pub enum StatValue {
    Counter(u64),
    Gauge(u64),
    /// The recorded samples' circllhist bins, as Envoy keeps them.
    Histogram(Histogram),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stat {
    /// Full Envoy stat name, e.g. `wasmcustom.reporter=.=source;.;…;.;istio_requests_total`.
    pub name: String,
    pub value: StatValue,
}

/// The process-wide store, keyed by full name.
#[derive(Debug, Default, Clone)]
pub struct StatsSink {
    stats: Vec<Stat>,
    by_name: std::collections::HashMap<String, usize>,
}

/// Envoy's namespace for stats defined by Wasm code (`CustomStatNamespace`).
pub const CUSTOM_NAMESPACE: &str = "wasmcustom";

impl StatsSink {
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates (or finds) the stat `wasmcustom.<name>` of this type; returns its index.
    /// Defining an existing name with another type keeps the first definition, as Envoy's store
    /// does.
    pub fn define(&mut self, kind: MetricType, name: &str) -> usize {
        let full = format!("{CUSTOM_NAMESPACE}.{name}");
        if let Some(&i) = self.by_name.get(&full) {
            return i;
        }
        let value = match kind {
            MetricType::Counter => StatValue::Counter(0),
            MetricType::Gauge => StatValue::Gauge(0),
            MetricType::Histogram => StatValue::Histogram(Histogram::default()),
        };
        self.stats.push(Stat {
            name: full.clone(),
            value,
        });
        self.by_name.insert(full, self.stats.len() - 1);
        self.stats.len() - 1
    }

    pub fn stats(&self) -> &[Stat] {
        &self.stats
    }

    pub fn stat_mut(&mut self, index: usize) -> Option<&mut Stat> {
        self.stats.get_mut(index)
    }

    /// Looks a stat up by its name without the `wasmcustom.` namespace.
    pub fn get(&self, name: &str) -> Option<&Stat> {
        self.by_name
            .get(&format!("{CUSTOM_NAMESPACE}.{name}"))
            .and_then(|&i| self.stats.get(i))
    }

    /// The counter or gauge value of the stat `name` (without the namespace); `None` for a
    /// histogram or an unknown name.
    pub fn value(&self, name: &str) -> Option<u64> {
        match self.get(name)?.value {
            StatValue::Counter(v) | StatValue::Gauge(v) => Some(v),
            StatValue::Histogram(_) => None,
        }
    }

    /// The histogram `name` (without the namespace).
    pub fn histogram(&self, name: &str) -> Option<&Histogram> {
        match &self.get(name)?.value {
            StatValue::Histogram(h) => Some(h),
            _ => None,
        }
    }
}

/// One VM's metric ids (proxy-wasm-cpp-host: `kMetricTypeMask = 0x3`, `kMetricIdIncrement = 0x4`).
#[derive(Debug, Default, Clone)]
pub struct VmMetricIds {
    /// Per type, the sink index of each id in definition order: the n-th id of a type is
    /// `4n | type`, so an id is found by shifting, not hashing (four lookups per request).
    ids: [Vec<usize>; 3],
    next: [u32; 3],
}

impl VmMetricIds {
    /// The sink index of an id this VM defined (`None`: unknown id, NOT_FOUND).
    fn index(&self, id: u32) -> Option<usize> {
        let n = (id >> 2).checked_sub(1)? as usize;
        self.ids.get((id & 3) as usize)?.get(n).copied()
    }

    /// `proxy_define_metric`: every call returns a fresh id, even for a name defined before.
    pub fn define(&mut self, sink: &mut StatsSink, kind: MetricType, name: &str) -> u32 {
        let index = sink.define(kind, name);
        let slot = kind as usize;
        self.next[slot] += 4;
        let id = self.next[slot] | kind as u32;
        self.ids[slot].push(index);
        id
    }

    /// `proxy_increment_metric`: counters need delta > 0 (else BAD_ARGUMENT); gauges add or
    /// subtract; histograms are BAD_ARGUMENT; unknown ids NOT_FOUND.
    pub fn increment(&self, sink: &mut StatsSink, id: u32, delta: i64) -> Result<(), MetricError> {
        let Some(index) = self.index(id) else {
            return Err(MetricError::NotFound);
        };
        let Some(stat) = sink.stat_mut(index) else {
            return Err(MetricError::NotFound);
        };
        match &mut stat.value {
            StatValue::Counter(v) if delta > 0 => {
                *v = v.saturating_add(delta as u64);
                Ok(())
            }
            StatValue::Gauge(v) => {
                *v = if delta >= 0 {
                    v.saturating_add(delta as u64)
                } else {
                    v.saturating_sub(delta.unsigned_abs())
                };
                Ok(())
            }
            _ => Err(MetricError::BadArgument),
        }
    }

    /// `proxy_record_metric`: a counter **adds**, a gauge sets, a histogram records a sample.
    pub fn record(&self, sink: &mut StatsSink, id: u32, value: u64) -> Result<(), MetricError> {
        let Some(index) = self.index(id) else {
            return Err(MetricError::NotFound);
        };
        let Some(stat) = sink.stat_mut(index) else {
            return Err(MetricError::NotFound);
        };
        match &mut stat.value {
            StatValue::Counter(v) => *v = v.saturating_add(value),
            StatValue::Gauge(v) => *v = value,
            StatValue::Histogram(h) => h.record(value),
        }
        Ok(())
    }

    /// `proxy_get_metric`: counter and gauge values; histograms are BAD_ARGUMENT.
    pub fn get(&self, sink: &StatsSink, id: u32) -> Result<u64, MetricError> {
        let index = self.index(id).ok_or(MetricError::NotFound)?;
        match &sink.stats().get(index).ok_or(MetricError::NotFound)?.value {
            StatValue::Counter(v) | StatValue::Gauge(v) => Ok(*v),
            StatValue::Histogram(_) => Err(MetricError::BadArgument),
        }
    }
}
