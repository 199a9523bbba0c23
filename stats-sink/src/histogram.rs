//! A histogram's stored state: circllhist bins with their counts, as Envoy keeps it, not the
//! samples. Everything Envoy prints (count, `hist_approx_sum`, the cumulative buckets) is a
//! function of the bins ([`crate::circllhist`]), so the output is the same, and memory is bounded
//! by the number of distinct bins (at most 90 mantissas × 20 exponents per sign) however long
//! the replay: keeping every sample grew a replay by ~24 bytes per request.

use rustc_hash::FxHashMap;

use crate::circllhist::{summarize_bins, Bin, HistogramSummary};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    /// FxHash: three histogram records per request, and SipHash was ~3 % of a stats report in
    /// the harness. `summarize_bins` sorts, so the map's order never shows.
    bins: FxHashMap<Bin, u64>,
    count: u64,
}

impl Histogram {
    /// A histogram that recorded `samples`.
    pub fn from_samples(samples: &[u64]) -> Histogram {
        let mut h = Histogram::default();
        for &s in samples {
            h.record(s);
        }
        h
    }

    /// `hist_insert_intscale(h, value, 0, 1)`.
    pub fn record(&mut self, sample: u64) {
        let n = self.bins.entry(Bin::from_sample(sample)).or_insert(0);
        *n = n.saturating_add(1);
        self.count = self.count.saturating_add(1);
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Distinct bins in use.
    pub fn bin_count(&self) -> usize {
        self.bins.len()
    }

    /// What Envoy's Prometheus output shows for these bucket bounds.
    pub fn summarize(&self, bounds: &[f64]) -> HistogramSummary {
        summarize_bins(self.bins.iter().map(|(b, n)| (*b, *n)), bounds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::circllhist::{summarize, DEFAULT_BUCKETS};

    #[test]
    fn binned_state_summarizes_like_the_samples() {
        // Samples chosen to share bins (10 and 10 → bin 10; 123 and 125 → bin 120) and to
        // straddle bucket bounds; the summary of the bins must equal that of the raw samples.
        let samples = [0, 1, 7, 10, 10, 123, 125, 999, 1000, 4096, 60_000, u64::MAX];
        let h = Histogram::from_samples(&samples);
        assert_eq!(h.count(), samples.len() as u64);
        assert_eq!(h.bin_count(), 10);
        assert_eq!(
            h.summarize(&DEFAULT_BUCKETS),
            summarize(&samples, &DEFAULT_BUCKETS)
        );
    }

    #[test]
    fn memory_is_bounded_by_bins_not_samples() {
        // 1..=1_000_000 covers the integer bins 1.0..9.9 ×10^0..10^5 (plus 10^6 itself): at most
        // 90 bins per decade (7 decades) whatever the number of samples.
        let mut h = Histogram::default();
        for s in 1..=1_000_000u64 {
            h.record(s);
        }
        assert_eq!(h.count(), 1_000_000);
        assert!(h.bin_count() <= 90 * 7, "{}", h.bin_count());
    }
}
