//! Envoy's `/stats/prometheus` text read back: series name, label set, value, and the family each
//! sample belongs to (`# TYPE` lines; a histogram's `_bucket`/`_sum`/`_count` samples belong to
//! its family) — the inverse of [`crate::prometheus::render`]. Comparisons are on label *sets*,
//! never on label order, as Istio's e2e tests compare parsed metric families.
//!
//! Used by `harness replay --expect` and by the golden-scenario tests.

use std::collections::BTreeMap;
use std::fmt;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series name as printed, e.g. `istio_request_bytes_bucket`.
    pub name: String,
    /// The family it belongs to, e.g. `istio_request_bytes` (the name itself when untyped).
    pub family: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed exposition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposition {
    pub samples: Vec<Sample>,
    /// Family name → `counter`, `gauge`, `histogram`, … from `# TYPE` lines.
    pub types: BTreeMap<String, String>,
}

/// A line that is not valid exposition text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based.
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for ParseError {}

/// Suffixes of the samples a histogram or summary family prints.
const SUFFIXES: [&str; 3] = ["_bucket", "_sum", "_count"];

/// Parses the whole text. Blank lines and comments other than `# TYPE` are skipped.
pub fn parse(text: &str) -> Result<Exposition, ParseError> {
    let mut out = Exposition::default();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let err = |reason: String| ParseError {
            line: i + 1,
            reason,
        };
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let mut words = rest.split_whitespace();
            if words.next() == Some("TYPE") {
                let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                    return Err(err(format!("malformed TYPE line {line:?}")));
                };
                out.types.insert(name.to_string(), kind.to_string());
            }
            continue;
        }
        let (name, labels, rest) = split_sample(line).map_err(err)?;
        let value_text = rest
            .split_whitespace()
            .next()
            .ok_or_else(|| err(format!("no value in {line:?}")))?;
        let value = parse_value(value_text)
            .ok_or_else(|| err(format!("bad value {value_text:?} in {line:?}")))?;
        let family = family_of(&out.types, &name);
        out.samples.push(Sample {
            name,
            family,
            labels,
            value,
        });
    }
    Ok(out)
}

/// `name{labels} rest` or `name rest`.
fn split_sample(line: &str) -> Result<(String, BTreeMap<String, String>, &str), String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or_else(|| format!("no value in {line:?}"))?;
    let name = &line[..name_end];
    if name.is_empty() {
        return Err(format!("no series name in {line:?}"));
    }
    let rest = &line[name_end..];
    match rest.strip_prefix('{') {
        Some(body) => {
            let (labels, after) = parse_labels(body)?;
            Ok((name.to_string(), labels, after))
        }
        None => Ok((name.to_string(), BTreeMap::new(), rest)),
    }
}

/// Parses `a="x",b="y"}` and returns the labels and the text after `}`. Values accept the
/// Prometheus escapes `\\`, `\"`, `\n`; Envoy of this era prints values unescaped, which only
/// matters for values containing `"` or `\`.
fn parse_labels(mut s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    loop {
        s = s.trim_start();
        if let Some(after) = s.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = s.find('=').ok_or("label without '='")?;
        let key = s[..eq].trim();
        if key.is_empty() {
            return Err("empty label name".into());
        }
        s = s[eq + 1..]
            .trim_start()
            .strip_prefix('"')
            .ok_or_else(|| format!("label {key}: value not quoted"))?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err(format!("label {key}: unterminated value")),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err(format!("label {key}: dangling escape")),
                },
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(key.to_string(), value).is_some() {
            return Err(format!("label {key} repeated"));
        }
        s = s[end + 1..].trim_start();
        if let Some(after) = s.strip_prefix(',') {
            s = after;
        } else if !s.starts_with('}') {
            return Err(format!("expected ',' or '}}' after label {key}"));
        }
    }
}

fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

fn family_of(types: &BTreeMap<String, String>, name: &str) -> String {
    if types.contains_key(name) {
        return name.to_string();
    }
    for suffix in SUFFIXES {
        if let Some(base) = name.strip_suffix(suffix) {
            if matches!(
                types.get(base).map(String::as_str),
                Some("histogram" | "summary")
            ) {
                return base.to_string();
            }
        }
    }
    name.to_string()
}

impl Exposition {
    /// Samples of one family (all of a histogram's series).
    pub fn family<'a>(&'a self, family: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.family == family)
    }

    /// Whether any sample of the family (or the bare series name) is present.
    pub fn has_family(&self, family: &str) -> bool {
        self.types.contains_key(family)
            || self
                .samples
                .iter()
                .any(|s| s.family == family || s.name == family)
    }

    /// The sample with exactly this name and label set.
    pub fn find(&self, name: &str, labels: &BTreeMap<String, String>) -> Option<&Sample> {
        self.samples
            .iter()
            .find(|s| s.name == name && &s.labels == labels)
    }

    /// Series names present, deduplicated and sorted (for error messages).
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.samples.iter().map(|s| s.name.as_str()).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The series of this name whose labels differ least from `labels` (for "no such series"
    /// messages).
    pub fn closest(&self, name: &str, labels: &BTreeMap<String, String>) -> Option<&Sample> {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .min_by_key(|s| diff_labels(labels, &s.labels).lines().count())
    }

    /// The families present (from `# TYPE` lines and samples), sorted.
    pub fn families(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .types
            .keys()
            .map(String::as_str)
            .chain(self.samples.iter().map(|s| s.family.as_str()))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// Every way `actual` fails `expected`, one message each (empty when it passes):
/// * each expected sample is present (same name, same label set) with the same value;
/// * each family the expectation declares with `# TYPE` has that type;
/// * each family the expectation mentions holds no other series — a family is compared whole,
///   as Istio's e2e driver (`ExactStat`) compares a metric family. Families the expectation does
///   not mention are not looked at, so an expectation may pin just `istio_requests_total`.
///
/// Values compare as numbers (`10` equals `10.0`; NaN equals NaN).
pub fn compare(expected: &Exposition, actual: &Exposition) -> Vec<String> {
    let mut problems = Vec::new();
    for e in &expected.samples {
        match actual.find(&e.name, &e.labels) {
            Some(a) if same_value(a.value, e.value) => {}
            Some(a) => problems.push(format!(
                "{}{}: expected {}, got {}",
                e.name,
                render_labels(&e.labels),
                e.value,
                a.value
            )),
            None => match actual.closest(&e.name, &e.labels) {
                Some(a) => problems.push(format!(
                    "{}{} {}: missing; closest series (value {}) differs in:\n{}",
                    e.name,
                    render_labels(&e.labels),
                    e.value,
                    a.value,
                    diff_labels(&e.labels, &a.labels).trim_end()
                )),
                None => problems.push(format!(
                    "{}{} {}: missing (no series of that name)",
                    e.name,
                    render_labels(&e.labels),
                    e.value
                )),
            },
        }
    }
    for (family, kind) in &expected.types {
        match actual.types.get(family) {
            Some(k) if k == kind => {}
            Some(k) => problems.push(format!("{family}: TYPE {k}, expected {kind}")),
            None if actual.has_family(family) => {
                problems.push(format!("{family}: no TYPE line, expected {kind}"))
            }
            // A declared family with no series: reported through its samples, or — when the
            // expectation lists none — as missing here.
            None if !expected.samples.iter().any(|e| &e.family == family) => {
                problems.push(format!("{family}: family missing"))
            }
            None => {}
        }
    }
    for family in expected.families() {
        for a in actual.family(family) {
            if expected.find(&a.name, &a.labels).is_none() {
                problems.push(format!(
                    "{}{} {}: not expected (family {family} is compared whole)",
                    a.name,
                    render_labels(&a.labels),
                    a.value
                ));
            }
        }
    }
    problems
}

fn same_value(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

/// `{a="x",b="y"}` in key order, for diffs and messages.
pub fn render_labels(labels: &BTreeMap<String, String>) -> String {
    let body: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", body.join(","))
}

/// A line-per-label diff between two label sets: `-` only expected, `+` only actual, `~` both
/// with different values.
pub fn diff_labels(
    expected: &BTreeMap<String, String>,
    actual: &BTreeMap<String, String>,
) -> String {
    let mut out = String::new();
    for (k, v) in expected {
        match actual.get(k) {
            None => out.push_str(&format!("  - {k}={v:?}\n")),
            Some(a) if a != v => out.push_str(&format!("  ~ {k}: expected {v:?}, got {a:?}\n")),
            Some(_) => {}
        }
    }
    for (k, v) in actual {
        if !expected.contains_key(k) {
            out.push_str(&format!("  + {k}={v:?}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    // Shapes taken from stats-spec.md §5.5 (Envoy's /stats/prometheus text).
    const SAMPLE: &str = r#"# TYPE istio_requests_total counter
istio_requests_total{response_code="200",reporter="source",grpc_response_status=""} 10

# TYPE metric_cache_count counter
metric_cache_count{cache="hit",wasm_filter="stats_filter"} 0

# TYPE istio_get_calls counter
istio_get_calls{} 20

# TYPE istio_build gauge
istio_build{component="proxy",tag="1.5-dev"} 1

# TYPE istio_request_duration_milliseconds histogram
istio_request_duration_milliseconds_bucket{reporter="source",le="0.5"} 0
istio_request_duration_milliseconds_bucket{reporter="source",le="+Inf"} 10
istio_request_duration_milliseconds_sum{reporter="source"} 125
istio_request_duration_milliseconds_count{reporter="source"} 10
"#;

    #[test]
    fn parses_counters_gauges_and_histograms() {
        let e = parse(SAMPLE).unwrap();
        assert_eq!(e.samples.len(), 8);
        let rq = e
            .find(
                "istio_requests_total",
                &l(&[
                    ("reporter", "source"),
                    ("response_code", "200"),
                    ("grpc_response_status", ""),
                ]),
            )
            .unwrap();
        assert_eq!(rq.value, 10.0);
        assert_eq!(
            e.find("istio_get_calls", &BTreeMap::new()).unwrap().value,
            20.0
        );
        assert_eq!(e.types["istio_build"], "gauge");
        let hist: Vec<_> = e.family("istio_request_duration_milliseconds").collect();
        assert_eq!(hist.len(), 4);
        assert_eq!(hist[1].value, 10.0);
        assert_eq!(hist[1].labels["le"], "+Inf");
        assert_eq!(hist[3].name, "istio_request_duration_milliseconds_count");
        assert!(e.has_family("istio_request_duration_milliseconds"));
        assert!(!e.has_family("istio_request_bytes"));
    }

    #[test]
    fn label_order_does_not_matter() {
        let a = parse("x{a=\"1\",b=\"2\"} 1\n").unwrap();
        let b = parse("x{b=\"2\",a=\"1\"} 1\n").unwrap();
        assert_eq!(a.samples[0].labels, b.samples[0].labels);
    }

    #[test]
    fn untyped_and_bare_series() {
        let e = parse("foo 3\nbar_count{x=\"y\"} 2 1700000000\n").unwrap();
        assert_eq!(e.samples[0].family, "foo");
        assert_eq!(e.samples[1].family, "bar_count");
        assert_eq!(e.samples[1].value, 2.0);
    }

    #[test]
    fn escapes_and_odd_values() {
        let e = parse(r#"x{v="a\"b\\c\nd",w="1,2}"} 1e3"#).unwrap();
        assert_eq!(e.samples[0].labels["v"], "a\"b\\c\nd");
        assert_eq!(e.samples[0].labels["w"], "1,2}");
        assert_eq!(e.samples[0].value, 1000.0);
    }

    #[test]
    fn errors_name_the_line() {
        let err = parse("ok 1\nbad{a=1} 2\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(parse("x{a=\"1\"} notanumber").is_err());
        assert!(parse("x{a=\"1\",a=\"2\"} 1").is_err());
        assert!(parse("x{a=\"1\"").is_err());
    }

    #[test]
    fn compare_checks_values_types_and_whole_families_only() {
        let actual = parse(SAMPLE).unwrap();
        // The whole text passes against itself, and so does a subset of whole families.
        assert_eq!(compare(&actual, &actual), Vec::<String>::new());
        let only_build = parse(
            "# TYPE istio_build gauge\nistio_build{tag=\"1.5-dev\",component=\"proxy\"} 1.0\n",
        )
        .unwrap();
        assert_eq!(compare(&only_build, &actual), Vec::<String>::new());

        // A changed value, a changed type, a missing label set, and an extra series in a family
        // the expectation lists.
        let expected = parse(
            "# TYPE istio_get_calls gauge\n\
             istio_get_calls{} 21\n\
             # TYPE istio_requests_total counter\n\
             istio_requests_total{reporter=\"source\",response_code=\"500\",grpc_response_status=\"\"} 10\n",
        )
        .unwrap();
        let problems = compare(&expected, &actual);
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert_eq!(problems[0], "istio_get_calls{}: expected 21, got 20");
        assert!(
            problems[1].starts_with("istio_requests_total{grpc_response_status=\"\",reporter=\"source\",response_code=\"500\"} 10: missing; closest series (value 10) differs in:")
                && problems[1].contains("~ response_code: expected \"500\", got \"200\""),
            "{}",
            problems[1]
        );
        assert_eq!(problems[2], "istio_get_calls: TYPE counter, expected gauge");
        assert!(
            problems[3].contains("response_code=\"200\"} 10: not expected (family istio_requests_total is compared whole)"),
            "{}",
            problems[3]
        );

        // A family declared but absent, and a series of an unknown name.
        let expected = parse("# TYPE istio_tcp_sent_bytes_total counter\nnope{} 1\n").unwrap();
        let problems = compare(&expected, &actual);
        assert_eq!(
            problems,
            vec![
                "nope{} 1: missing (no series of that name)".to_string(),
                "istio_tcp_sent_bytes_total: family missing".to_string(),
            ]
        );
    }

    #[test]
    fn diff_shows_missing_extra_and_changed() {
        let d = diff_labels(&l(&[("a", "1"), ("b", "2")]), &l(&[("b", "3"), ("c", "4")]));
        assert!(d.contains("- a=\"1\""));
        assert!(d.contains("~ b: expected \"2\", got \"3\""));
        assert!(d.contains("+ c=\"4\""));
    }
}
