//! The part of circllhist that decides what Envoy prints for a histogram.
//!
//! Envoy records every histogram sample with `hist_insert_intscale(h, value, 0, 1)`
//! (`ThreadLocalHistogramImpl::recordValue`, value cast from `uint64_t` to `int64_t`) and computes
//! the Prometheus numbers from the merged bins: `hist_sample_count`, `hist_approx_sum` and
//! `hist_approx_count_below(h, bound)` per bucket bound (`HistogramStatisticsImpl::refresh`).
//! Envoy 1.21–1.25 vendor libcircllhist at `63a16dd6` (2019-02-11, `bazel/repository_locations.bzl`);
//! the functions below follow `src/circllhist.c` at that commit, double arithmetic included, so the
//! `{:.32g}`-printed `_sum` matches bit for bit.

use std::cmp::Ordering;

/// Envoy's default histogram bucket bounds (`HistogramSettingsImpl::defaultBuckets`); Istio
/// 1.13–1.17 configures no `histogram_bucket_settings`.
pub const DEFAULT_BUCKETS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// circllhist's `power_of_ten` table for the exponents integer samples can reach (an `i64` has at
/// most 19 digits, so `exp` ≤ 19). The literals are exact doubles, as in the C table.
const POWER_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// One circllhist bin (`hist_bucket_t`): the value is `val/10 · 10^exp`, `val` in ±10..=99, or
/// the zero bin `val == 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bin {
    pub val: i8,
    pub exp: i8,
}

impl Bin {
    /// `int_scale_to_hist_bucket(value, 0)` for a sample Envoy received as `uint64_t`.
    pub fn from_sample(sample: u64) -> Bin {
        // C converts uint64_t → int64_t by wrapping; values ≥ 2^63 become negative.
        let mut value = sample as i64;
        if value == 0 {
            return Bin { val: 0, exp: 0 };
        }
        let mut scale: i32 = 1;
        let mut sign: i64 = 1;
        if value < 0 {
            value = if value == i64::MIN { i64::MAX } else { -value };
            sign = -1;
        }
        if value < 10 {
            value *= 10;
            scale -= 1;
        }
        while value >= 100 {
            value /= 10;
            scale += 1;
        }
        // value is now 10..=99 and scale ≤ 19, both fit i8.
        Bin {
            val: (sign * value) as i8,
            exp: scale as i8,
        }
    }

    fn power(self) -> f64 {
        // exp is never negative for integer samples; clamp defensively instead of indexing blindly.
        let idx = usize::try_from(self.exp).unwrap_or(0);
        POWER_OF_TEN.get(idx).copied().unwrap_or(f64::INFINITY)
    }

    /// `hist_bucket_to_double`: the edge nearest zero.
    pub fn to_double(self) -> f64 {
        if self.val == 0 {
            return 0.0;
        }
        (f64::from(self.val) / 10.0) * self.power()
    }

    /// `hist_bucket_to_double_bin_width`.
    pub fn width(self) -> f64 {
        if self.val == 0 {
            return 0.0;
        }
        self.power() / 10.0
    }

    /// `hist_bucket_midpoint`: what `hist_approx_sum` adds per sample.
    pub fn midpoint(self) -> f64 {
        if self.val == 0 {
            return 0.0;
        }
        let out = self.to_double();
        let mut interval = self.width();
        if out < 0.0 {
            interval *= -1.0;
        }
        out + interval / 2.0
    }

    /// The edge `hist_approx_count_below` compares with the threshold: the bound itself for
    /// negative bins, bound + width otherwise (0 for the zero bin).
    pub fn upper_edge(self) -> f64 {
        let bound = self.to_double();
        if bound < 0.0 {
            bound
        } else {
            bound + self.width()
        }
    }

    /// Order on the real axis (`hist_bucket_cmp`); bins are kept sorted this way.
    fn real_axis_cmp(self, other: Bin) -> Ordering {
        self.to_double().total_cmp(&other.to_double())
    }
}

/// What Envoy's `HistogramStatistics` exposes to the Prometheus formatter.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSummary {
    /// `hist_sample_count`.
    pub count: u64,
    /// `hist_approx_sum`.
    pub sum: f64,
    /// `hist_approx_count_below(bound)` for each bound, in bound order (cumulative).
    pub buckets: Vec<u64>,
}

/// Bins the samples and computes count, sum and the cumulative bucket counts.
pub fn summarize(samples: &[u64], bounds: &[f64]) -> HistogramSummary {
    let counted: Vec<(u64, u64)> = samples.iter().map(|&s| (s, 1)).collect();
    summarize_counts(&counted, bounds)
}

/// [`summarize`] for `(sample, how many times it was recorded)` pairs.
pub fn summarize_counts(samples: &[(u64, u64)], bounds: &[f64]) -> HistogramSummary {
    summarize_bins(
        samples.iter().map(|&(s, n)| (Bin::from_sample(s), n)),
        bounds,
    )
}

/// [`summarize`] for already binned counts (bins may repeat, in any order).
pub fn summarize_bins(
    binned: impl IntoIterator<Item = (Bin, u64)>,
    bounds: &[f64],
) -> HistogramSummary {
    let mut all: Vec<(Bin, u64)> = binned.into_iter().collect();
    all.sort_by(|a, b| a.0.real_axis_cmp(b.0));
    let mut bins: Vec<(Bin, u64)> = Vec::with_capacity(all.len());
    for (bin, n) in all {
        match bins.last_mut() {
            Some((last, total)) if *last == bin => *total = total.saturating_add(n),
            _ => bins.push((bin, n)),
        }
    }
    // hist_approx_sum: ascending bin order, midpoint × count as doubles.
    let mut sum = 0.0_f64;
    for &(bin, n) in &bins {
        sum += bin.midpoint() * n as f64;
    }
    let count = bins.iter().fold(0u64, |acc, &(_, n)| acc.saturating_add(n));
    let buckets = bounds
        .iter()
        .map(|&threshold| {
            // hist_approx_count_below stops at the first bin whose upper edge exceeds the
            // threshold; upper edges grow with the bin order, so this is a prefix sum.
            bins.iter()
                .take_while(|&&(bin, _)| bin.upper_edge() <= threshold)
                .fold(0u64, |acc, &(_, n)| acc.saturating_add(n))
        })
        .collect();
    HistogramSummary {
        count,
        sum,
        buckets,
    }
}

/// `fmt::format("{:.32g}", x)`: 32 significant digits, exact decimal expansion of the double,
/// trailing zeros removed, scientific notation when the exponent is < -4 or ≥ 32 (printf rules).
pub fn format_g32(x: f64) -> String {
    const PRECISION: i32 = 32;
    if x.is_nan() {
        return "nan".to_string();
    }
    if x.is_infinite() {
        return if x < 0.0 { "-inf" } else { "inf" }.to_string();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    // Rust's `{:.31e}` is exact and correctly rounded: "d.ddd…e<exp>".
    let sci = format!("{:.*e}", (PRECISION - 1) as usize, x);
    let (mantissa, exp) = match sci.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (sci.as_str(), 0),
    };
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if negative { "-" } else { "" };
    if !(-4..PRECISION).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let rest = rest.trim_end_matches('0');
        let exp_sign = if exp < 0 { '-' } else { '+' };
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        return format!("{sign}{first}{frac}e{exp_sign}{:02}", exp.unsigned_abs());
    }
    let body = if exp >= 0 {
        let point = (exp + 1) as usize;
        let (int_part, frac) = digits.split_at(point.min(digits.len()));
        let frac = frac.trim_end_matches('0');
        if frac.is_empty() {
            int_part.to_string()
        } else {
            format!("{int_part}.{frac}")
        }
    } else {
        let zeros = "0".repeat((-exp - 1) as usize);
        let frac = format!("{zeros}{digits}");
        format!("0.{}", frac.trim_end_matches('0'))
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_follow_int_scale_rules() {
        // int_scale_to_hist_bucket(v, 0): scale starts at 1; v < 10 is multiplied by 10 (scale 0);
        // v ≥ 100 is divided by 10 until two digits remain.
        assert_eq!(Bin::from_sample(0), Bin { val: 0, exp: 0 });
        assert_eq!(Bin::from_sample(1), Bin { val: 10, exp: 0 }); // [1, 1.1)
        assert_eq!(Bin::from_sample(12), Bin { val: 12, exp: 1 }); // [12, 13)
        assert_eq!(Bin::from_sample(118), Bin { val: 11, exp: 2 }); // [110, 120)
        assert_eq!(Bin::from_sample(560), Bin { val: 56, exp: 2 }); // [560, 570)
        assert_eq!(Bin::from_sample(u64::MAX), Bin { val: -10, exp: 0 }); // int64 -1
        assert_eq!(Bin::from_sample(1 << 63), Bin { val: -92, exp: 18 }); // INT64_MIN → MAX
    }

    #[test]
    fn midpoints_are_circllhist_doubles() {
        // 12 → 12/10·10 = 12, width 1 → 12.5 (exact in binary).
        assert_eq!(Bin::from_sample(12).midpoint(), 12.5);
        // 118 → (11/10)·100 = 110.00000000000001 (1.1 is not exact), + 5.
        assert_eq!(Bin::from_sample(118).midpoint(), 110.00000000000001 + 5.0);
        assert_eq!(Bin::from_sample(560).midpoint(), 565.0);
        assert_eq!(Bin::from_sample(1).midpoint(), 1.05);
        assert_eq!(Bin::from_sample(0).midpoint(), 0.0);
    }

    #[test]
    fn count_below_uses_upper_edges() {
        let b = &DEFAULT_BUCKETS;
        // 12 ms: upper edge 13 > 10, ≤ 25 → first non-zero bucket is le="25" (index 4).
        let s = summarize(&[12; 10], b);
        assert_eq!(s.buckets[3], 0);
        assert_eq!(s.buckets[4], 10);
        assert_eq!(s.count, 10);
        assert_eq!(s.sum, 125.0);
        // 1: upper edge 1.1 > 1 → le="5" (index 2).
        let s = summarize(&[1], b);
        assert_eq!((s.buckets[1], s.buckets[2]), (0, 1));
        // 0: zero bin, upper edge 0 ≤ 0.5 → le="0.5".
        let s = summarize(&[0], b);
        assert_eq!(s.buckets[0], 1);
        assert_eq!(s.sum, 0.0);
        // 560: upper edge 570 > 500 → le="1000".
        let s = summarize(&[560], b);
        assert_eq!((s.buckets[8], s.buckets[9]), (0, 1));
        // A sample beyond the last bound only shows in +Inf (the count).
        let s = summarize(&[4_000_000], b);
        assert_eq!(s.buckets[18], 0);
        assert_eq!(s.count, 1);
    }

    /// Envoy's own expectations (test/server/admin/prometheus_stats_test.cc, an Envoy of the
    /// 1.22–1.24 era: `OutputWithAllMetricTypes` and `HistogramWithHighCounts`), produced there by
    /// the real libcircllhist.
    #[test]
    fn envoy_prometheus_test_vectors() {
        let s = summarize(&[50, 20, 30, 70, 100, 5000, 200], &DEFAULT_BUCKETS);
        assert_eq!(
            s.buckets,
            vec![0, 0, 0, 0, 1, 2, 4, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7]
        );
        assert_eq!((s.count, format_g32(s.sum).as_str()), (7, "5532"));

        let s = summarize_counts(
            &[(1, 100_000), (100, 1_000_000), (1000, 100_000_000)],
            &DEFAULT_BUCKETS,
        );
        assert_eq!(
            s.buckets,
            vec![
                0, 0, 100000, 100000, 100000, 100000, 100000, 1100000, 1100000, 1100000, 101100000,
                101100000, 101100000, 101100000, 101100000, 101100000, 101100000, 101100000,
                101100000
            ]
        );
        assert_eq!(s.count, 101_100_000);
        assert_eq!(format_g32(s.sum), "105105105000");
    }

    #[test]
    fn g32_matches_printf() {
        // Values checked against C printf("%.32g").
        assert_eq!(format_g32(0.5), "0.5");
        assert_eq!(format_g32(3600000.0), "3600000");
        assert_eq!(format_g32(125.0), "125");
        assert_eq!(
            format_g32(115.00000000000001),
            "115.000000000000014210854715202"
        );
        assert_eq!(format_g32(1.05), "1.0500000000000000444089209850063");
        assert_eq!(format_g32(1e32), "1.0000000000000000536616220439347e+32");
        assert_eq!(
            format_g32(2f64.powi(110)),
            "1.298074214633706907132624082305e+33"
        );
        assert_eq!(format_g32(0.0001), "0.00010000000000000000479217360238593");
        assert_eq!(format_g32(0.00001), "1.0000000000000000818030539140313e-05");
        assert_eq!(format_g32(9.25e18), "9250000000000000000");
        assert_eq!(format_g32(-2.5), "-2.5");
    }
}
