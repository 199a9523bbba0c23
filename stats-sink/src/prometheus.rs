//! `/stats/prometheus` as Envoy 1.21–1.25 renders it for the stats Wasm plugins define
//! (ENVOY `source/server/admin/prometheus_stats.cc`, `PrometheusStatsFormatter`):
//!
//! * counters, then gauges, then histograms (Wasm defines no text readouts);
//! * within a type, one family per **tag-extracted name**, families in symbol-table order of that
//!   name (token-wise comparison of the `.`-separated parts), one `# TYPE <name> <type>` line each;
//!   series sorted by full stat name in the same token-wise order;
//! * the family name is the tag-extracted name with the registered `wasmcustom.` namespace
//!   stripped, sanitised (`[^a-zA-Z0-9_]` → `_`) and **no** `envoy_` prefix; a family whose
//!   stripped name is empty or starts with a digit is dropped (`metricName` returns nullopt);
//!   a tag-extracted name that lost its namespace gets `envoy_` like any Envoy stat;
//! * labels in extraction order, names sanitised, values escaped `\` → `\\`, newline → `\n`,
//!   `"` → `\"` (`sanitizeValue`, envoy PR #18978, merged 2021-11, first released in 1.21);
//! * `{}` is printed even without labels; histograms print `_bucket{…,le="b"}` for Envoy's default
//!   bounds (`{:.32g}`), `le="+Inf"`, `_sum` (`{:.32g}` of circllhist's approximate sum) and
//!   `_count`;
//! * Envoy 1.21–1.23 (Istio 1.13–1.15) end every family with an empty line; envoy PR #22403
//!   (merged 2022-07, first released in 1.24) removed it, so Istio 1.16–1.17 print none.
//!
//! Histograms are rendered from every recorded sample, i.e. as after a stats flush (Envoy
//! publishes histogram data at the flush interval; counters and gauges are live).

use std::borrow::Cow;
use std::cmp::Ordering;

use crate::circllhist::{format_g32, DEFAULT_BUCKETS};
use crate::tags::TagExtractor;
use crate::{Stat, StatValue, StatsSink, CUSTOM_NAMESPACE};

/// The exporter details that changed between the Envoy versions Istio 1.13–1.17 ship.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderOptions {
    /// An empty line after every family (Envoy ≤ 1.23).
    pub blank_line_after_family: bool,
}

impl RenderOptions {
    /// What the Envoy shipped with Istio `1.<minor>` prints (1.13→1.21 … 1.17→1.25).
    pub fn for_istio(minor: u32) -> Self {
        Self {
            blank_line_after_family: minor <= 15,
        }
    }
}

impl Default for RenderOptions {
    /// Istio 1.17 / Envoy 1.25.
    fn default() -> Self {
        Self::for_istio(17)
    }
}

/// Renders the sink with the Envoy of the extractor's Istio version ([`TagExtractor::istio`]), or
/// Istio 1.17's Envoy when the extractor is not version-bound (e.g. the istio/proxy test rules).
pub fn render(sink: &StatsSink, tags: &TagExtractor) -> String {
    let options = tags
        .istio_minor()
        .map(RenderOptions::for_istio)
        .unwrap_or_default();
    render_with(sink, tags, options)
}

/// One stat after tag extraction.
struct Series<'a> {
    stat: &'a Stat,
    extracted: String,
    labels: Vec<(&'a str, Cow<'a, str>)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

fn kind_of(value: &StatValue) -> Kind {
    match value {
        StatValue::Counter(_) => Kind::Counter,
        StatValue::Gauge(_) => Kind::Gauge,
        StatValue::Histogram(_) => Kind::Histogram,
    }
}

/// Renders with explicit exporter options.
pub fn render_with(sink: &StatsSink, tags: &TagExtractor, options: RenderOptions) -> String {
    let series: Vec<Series> = sink
        .stats()
        .iter()
        .map(|stat| {
            let (extracted, labels) = tags.extract_borrowed(&stat.name);
            Series {
                stat,
                extracted,
                labels,
            }
        })
        .collect();
    let mut out = String::with_capacity(series.len() * 256);
    for (kind, type_name) in [
        (Kind::Counter, "counter"),
        (Kind::Gauge, "gauge"),
        (Kind::Histogram, "histogram"),
    ] {
        let mut of_kind: Vec<&Series> = series
            .iter()
            .filter(|s| kind_of(&s.stat.value) == kind)
            .collect();
        // Families by tag-extracted name, series by full name, both token-wise.
        of_kind.sort_by(|a, b| {
            symbol_cmp(&a.extracted, &b.extracted)
                .then_with(|| symbol_cmp(&a.stat.name, &b.stat.name))
        });
        let mut i = 0;
        while i < of_kind.len() {
            let group_end = of_kind[i..]
                .iter()
                .position(|s| s.extracted != of_kind[i].extracted)
                .map_or(of_kind.len(), |n| i + n);
            let group = &of_kind[i..group_end];
            i = group_end;
            let Some(family) = metric_name(&group[0].extracted) else {
                continue;
            };
            out.push_str("# TYPE ");
            out.push_str(&family);
            out.push(' ');
            out.push_str(type_name);
            out.push('\n');
            for s in group {
                write_series(&mut out, &family, s);
            }
            if options.blank_line_after_family {
                out.push('\n');
            }
        }
    }
    out
}

fn write_series(out: &mut String, family: &str, s: &Series) {
    use std::fmt::Write as _;
    let mut labels = String::new();
    push_tags(&mut labels, &s.labels);
    match &s.stat.value {
        StatValue::Counter(v) | StatValue::Gauge(v) => {
            let _ = writeln!(out, "{family}{{{labels}}} {v}");
        }
        StatValue::Histogram(h) => {
            let summary = h.summarize(&DEFAULT_BUCKETS);
            let sep = if s.labels.is_empty() { "" } else { "," };
            for (bound, count) in DEFAULT_BUCKETS.iter().zip(&summary.buckets) {
                let _ = writeln!(
                    out,
                    "{family}_bucket{{{labels}{sep}le=\"{}\"}} {count}",
                    format_g32(*bound)
                );
            }
            let count = summary.count;
            let _ = writeln!(out, "{family}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
            let _ = writeln!(out, "{family}_sum{{{labels}}} {}", format_g32(summary.sum));
            let _ = writeln!(out, "{family}_count{{{labels}}} {count}");
        }
    }
}

/// `PrometheusStatsFormatter::formattedTags`.
pub fn formatted_tags<N: AsRef<str>, V: AsRef<str>>(tags: &[(N, V)]) -> String {
    let mut out = String::new();
    push_tags(&mut out, tags);
    out
}

fn push_tags<N: AsRef<str>, V: AsRef<str>>(out: &mut String, tags: &[(N, V)]) {
    for (i, (name, value)) in tags.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_sanitized_name(out, name.as_ref());
        out.push_str("=\"");
        push_sanitized_value(out, value.as_ref());
        out.push('"');
    }
}

/// `sanitizeName`: every character outside `[a-zA-Z0-9_]` becomes `_` (RE2 on UTF-8 replaces a
/// whole multi-byte character by one `_`, as `chars()` does here).
pub fn sanitize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    push_sanitized_name(&mut out, name);
    out
}

fn push_sanitized_name(out: &mut String, name: &str) {
    if name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        out.push_str(name);
        return;
    }
    out.extend(name.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        }
    }));
}

/// `sanitizeValue`: `\` → `\\`, newline → `\n`, `"` → `\"`.
pub fn sanitize_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    push_sanitized_value(&mut out, value);
    out
}

fn push_sanitized_value(out: &mut String, value: &str) {
    if !value.bytes().any(|b| b == b'\\' || b == b'\n' || b == b'"') {
        out.push_str(value);
        return;
    }
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// `PrometheusStatsFormatter::metricName` with `wasmcustom` as the only registered namespace.
pub fn metric_name(tag_extracted: &str) -> Option<String> {
    let stripped = tag_extracted
        .strip_prefix(CUSTOM_NAMESPACE)
        .and_then(|rest| rest.strip_prefix('.'));
    match stripped {
        Some(rest) => {
            let name = sanitize_name(rest);
            match name.chars().next() {
                None => None,
                Some(c) if c.is_ascii_digit() => None,
                Some(_) => Some(name),
            }
        }
        None => Some(format!("envoy_{}", sanitize_name(tag_extracted))),
    }
}

/// `SymbolTableImpl::lessThan`: compares the `.`-separated tokens as strings, then by count.
/// Equivalent to a byte-wise comparison in which `.` sorts below every other byte (a token that
/// is a prefix of the other, i.e. followed by `.` or the end, is the smaller one).
pub fn symbol_cmp(a: &str, b: &str) -> Ordering {
    let key = |c: u8| if c == b'.' { 0u16 } else { u16::from(c) + 1 };
    let (a, b) = (a.as_bytes(), b.as_bytes());
    for (&x, &y) in a.iter().zip(b) {
        if x != y {
            return key(x).cmp(&key(y));
        }
    }
    a.len().cmp(&b.len())
}

/// Finds the stat that renders as `family{labels}` (labels compared as a set), without parsing
/// the exposition text.
pub fn find<'a>(
    sink: &'a StatsSink,
    tags: &TagExtractor,
    family: &str,
    labels: &[(&str, &str)],
) -> Option<&'a Stat> {
    sink.stats().iter().find(|stat| {
        let (extracted, got) = tags.extract(&stat.name);
        metric_name(&extracted).as_deref() == Some(family)
            && got.len() == labels.len()
            && labels
                .iter()
                .all(|(n, v)| got.iter().any(|(gn, gv)| gn == n && gv == v))
    })
}

/// The counter or gauge value of `family{labels}`, if present.
pub fn value(
    sink: &StatsSink,
    tags: &TagExtractor,
    family: &str,
    labels: &[(&str, &str)],
) -> Option<u64> {
    match find(sink, tags, family, labels)?.value {
        StatValue::Counter(v) | StatValue::Gauge(v) => Some(v),
        StatValue::Histogram(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_order_differs_from_byte_order() {
        // "a" < "a-c" as tokens, although '-' (0x2d) sorts before '.' (0x2e) byte-wise.
        assert_eq!(symbol_cmp("a.b", "a-c"), Ordering::Less);
        assert_eq!("a.b".cmp("a-c"), Ordering::Greater);
        assert_eq!(symbol_cmp("a.b", "a.b.c"), Ordering::Less);
        assert_eq!(symbol_cmp("a.b", "a.b"), Ordering::Equal);
        assert_eq!(symbol_cmp("a.b", "a\0"), Ordering::Less);
        assert_eq!(symbol_cmp("a_b.x", "a.b"), Ordering::Greater);
        assert_eq!(symbol_cmp("", "a"), Ordering::Less);
    }

    #[test]
    fn metric_names() {
        assert_eq!(
            metric_name("wasmcustom.istio_requests_total").as_deref(),
            Some("istio_requests_total")
        );
        assert_eq!(
            metric_name("wasmcustom.test.=.GET;.;istio_requests_total").as_deref(),
            Some("test___GET___istio_requests_total")
        );
        assert_eq!(metric_name("wasmcustom.1abc"), None);
        assert_eq!(metric_name("wasmcustom."), None);
        assert_eq!(
            metric_name("cluster.upstream_rq").as_deref(),
            Some("envoy_cluster_upstream_rq")
        );
    }

    #[test]
    fn label_escaping() {
        let tags = vec![
            ("a.tag-name".to_string(), "a.tag-value".to_string()),
            ("q".to_string(), "val\"ue with\\ some\n issues".to_string()),
        ];
        // Envoy's own unit test (PrometheusStatsFormatterTest.FormattedTags) expectation.
        assert_eq!(
            formatted_tags(&tags),
            "a_tag_name=\"a.tag-value\",q=\"val\\\"ue with\\\\ some\\n issues\""
        );
    }
}
