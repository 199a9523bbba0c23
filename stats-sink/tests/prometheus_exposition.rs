//! `/stats/prometheus` for Istio-shaped Wasm stats. Every expected text below is written by hand
//! from Envoy's exporter rules and circllhist's bin arithmetic; comments give the derivation.

use stats_sink::prometheus::{self, RenderOptions};
use stats_sink::{MetricType, StatsSink, TagExtractor, VmMetricIds};

/// The 25 standard dimensions in the order `istio.stats` writes them into the stat name
/// (stats-spec §3.1, `STD_ISTIO_DIMENSIONS`), client side of the §5.6 example.
const REQUEST_DIMS: &str = "reporter=.=source;.;\
source_workload=.=productpage-v1;.;\
source_workload_namespace=.=default;.;\
source_principal=.=unknown;.;\
source_app=.=productpage;.;\
source_version=.=v1;.;\
source_canonical_service=.=productpage-v1;.;\
source_canonical_revision=.=version-1;.;\
source_cluster=.=client-cluster;.;\
destination_workload=.=ratings-v1;.;\
destination_workload_namespace=.=default;.;\
destination_principal=.=unknown;.;\
destination_app=.=ratings;.;\
destination_version=.=v1;.;\
destination_service=.=server.default.svc.cluster.local;.;\
destination_service_name=.=server;.;\
destination_service_namespace=.=default;.;\
destination_canonical_service=.=ratings;.;\
destination_canonical_revision=.=version-1;.;\
destination_cluster=.=server-cluster;.;\
request_protocol=.=http;.;\
response_flags=.=-;.;\
connection_security_policy=.=unknown;.;\
response_code=.=200;.;\
grpc_response_status=.=;.;";

/// Labels in istio/proxy's test-bootstrap order (`stats.yaml.tmpl` rule order; the order of
/// stats-spec §5.6 and of Istio's golden files).
const TEST_BOOTSTRAP_LABELS: &str = "reporter=\"source\",\
source_workload=\"productpage-v1\",\
source_canonical_service=\"productpage-v1\",\
source_canonical_revision=\"version-1\",\
source_workload_namespace=\"default\",\
source_principal=\"unknown\",\
source_app=\"productpage\",\
source_version=\"v1\",\
source_cluster=\"client-cluster\",\
destination_workload=\"ratings-v1\",\
destination_workload_namespace=\"default\",\
destination_principal=\"unknown\",\
destination_app=\"ratings\",\
destination_version=\"v1\",\
destination_service=\"server.default.svc.cluster.local\",\
destination_canonical_service=\"ratings\",\
destination_canonical_revision=\"version-1\",\
destination_service_name=\"server\",\
destination_service_namespace=\"default\",\
destination_cluster=\"server-cluster\",\
request_protocol=\"http\",\
response_code=\"200\",\
grpc_response_status=\"\",\
response_flags=\"-\",\
connection_security_policy=\"unknown\"";

/// Labels in the real 1.17 bootstrap order: the `response_code` rule comes before the
/// `DefaultStatTags` rules, which then follow `DefaultStatTags` order (the canonical labels are
/// last there); tags the name does not carry (source_namespace, destination_port, …) are absent.
const ISTIO_117_LABELS: &str = "response_code=\"200\",\
reporter=\"source\",\
source_workload=\"productpage-v1\",\
source_workload_namespace=\"default\",\
source_principal=\"unknown\",\
source_app=\"productpage\",\
source_version=\"v1\",\
source_cluster=\"client-cluster\",\
destination_workload=\"ratings-v1\",\
destination_workload_namespace=\"default\",\
destination_principal=\"unknown\",\
destination_app=\"ratings\",\
destination_version=\"v1\",\
destination_service=\"server.default.svc.cluster.local\",\
destination_service_name=\"server\",\
destination_service_namespace=\"default\",\
destination_cluster=\"server-cluster\",\
request_protocol=\"http\",\
response_flags=\"-\",\
grpc_response_status=\"\",\
connection_security_policy=\"unknown\",\
source_canonical_service=\"productpage-v1\",\
destination_canonical_service=\"ratings\",\
source_canonical_revision=\"version-1\",\
destination_canonical_revision=\"version-1\"";

/// 10 requests as in stats-spec §5.6 (12 ms, 560 request bytes, 118 response bytes), plus the
/// plugin's own stats and two label-less stats, defined through the VM id API like the harness.
fn example_sink() -> StatsSink {
    let mut sink = StatsSink::new();
    let mut vm = VmMetricIds::default();
    let requests = vm.define(
        &mut sink,
        MetricType::Counter,
        &format!("{REQUEST_DIMS}istio_requests_total"),
    );
    let duration = vm.define(
        &mut sink,
        MetricType::Histogram,
        &format!("{REQUEST_DIMS}istio_request_duration_milliseconds"),
    );
    let req_bytes = vm.define(
        &mut sink,
        MetricType::Histogram,
        &format!("{REQUEST_DIMS}istio_request_bytes"),
    );
    let resp_bytes = vm.define(
        &mut sink,
        MetricType::Histogram,
        &format!("{REQUEST_DIMS}istio_response_bytes"),
    );
    for _ in 0..10 {
        vm.increment(&mut sink, requests, 1).unwrap();
        vm.record(&mut sink, duration, 12).unwrap();
        vm.record(&mut sink, req_bytes, 560).unwrap();
        vm.record(&mut sink, resp_bytes, 118).unwrap();
    }
    // Defined in reverse name order on purpose: output order must come from sorting.
    let miss = vm.define(
        &mut sink,
        MetricType::Counter,
        "wasm_filter.stats_filter.cache.miss.metric_cache_count",
    );
    vm.define(
        &mut sink,
        MetricType::Counter,
        "wasm_filter.stats_filter.cache.hit.metric_cache_count",
    );
    vm.increment(&mut sink, miss, 1).unwrap();
    let plain = vm.define(&mut sink, MetricType::Gauge, "my_gauge");
    vm.record(&mut sink, plain, 7).unwrap();
    let build = vm.define(
        &mut sink,
        MetricType::Gauge,
        "component.proxy.tag.1.17.8;.istio_build",
    );
    vm.record(&mut sink, build, 1).unwrap();
    let hist = vm.define(&mut sink, MetricType::Histogram, "plain_histogram");
    for v in [4_000_000, 1, 0] {
        vm.record(&mut sink, hist, v).unwrap();
    }
    sink
}

/// The histogram lines for one series of the example.
fn histogram(name: &str, labels: &str, buckets: [u64; 19], count: u64, sum: &str) -> String {
    const BOUNDS: [&str; 19] = [
        "0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000", "10000",
        "30000", "60000", "300000", "600000", "1800000", "3600000",
    ];
    let sep = if labels.is_empty() { "" } else { "," };
    let mut out = String::new();
    for (bound, n) in BOUNDS.iter().zip(buckets) {
        out += &format!("{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {n}\n");
    }
    out += &format!("{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}\n");
    out += &format!("{name}_sum{{{labels}}} {sum}\n");
    out += &format!("{name}_count{{{labels}}} {count}\n");
    out
}

/// The families of [`example_sink`], in output order, each as one string.
fn expected_families(l: &str) -> Vec<String> {
    vec![
        // Counters. Family order is the token-wise order of the tag-extracted names:
        // "istio_requests_total" < "metric_cache_count".
        format!("# TYPE istio_requests_total counter\nistio_requests_total{{{l}}} 10\n"),
        // Series order: the full names differ first at the token "hit" < "miss"; the hit counter
        // was never incremented and still prints.
        "# TYPE metric_cache_count counter\n\
         metric_cache_count{cache=\"hit\",wasm_filter=\"stats_filter\"} 0\n\
         metric_cache_count{cache=\"miss\",wasm_filter=\"stats_filter\"} 1\n"
            .to_string(),
        // Gauges: "istio_build" < "my_gauge"; `tag` is the text between "tag." and ";.", so the
        // dotted version survives; a label-less stat prints `{}`.
        "# TYPE istio_build gauge\nistio_build{component=\"proxy\",tag=\"1.17.8\"} 1\n".to_string(),
        "# TYPE my_gauge gauge\nmy_gauge{} 7\n".to_string(),
        // Histograms: "istio_request_bytes" < "istio_request_duration_milliseconds" <
        // "istio_response_bytes" < "plain_histogram".
        // 560 → bin [560,570), upper edge 570: counted from le="1000" on; midpoint 565 ×10.
        format!(
            "# TYPE istio_request_bytes histogram\n{}",
            histogram(
                "istio_request_bytes",
                l,
                [0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10],
                10,
                "5650",
            )
        ),
        // 12 → bin [12,13), upper edge 13: 0 up to le="10", 10 from le="25"; midpoint 12.5 ×10.
        format!(
            "# TYPE istio_request_duration_milliseconds histogram\n{}",
            histogram(
                "istio_request_duration_milliseconds",
                l,
                [0, 0, 0, 0, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10],
                10,
                "125",
            )
        ),
        // 118 → bin val 11 exp 2: lower edge (11/10)·100 = 110.00000000000001 in doubles, upper
        // edge 120.00000000000001 ≤ 250: counted from le="250" on. Midpoint
        // 110.00000000000001 + 5 = 115.000000000000014…, ×10 rounds to the double
        // 1150.0000000000002273736754432321 (printed with 32 significant digits).
        format!(
            "# TYPE istio_response_bytes histogram\n{}",
            histogram(
                "istio_response_bytes",
                l,
                [0, 0, 0, 0, 0, 0, 0, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10],
                10,
                "1150.0000000000002273736754432321",
            )
        ),
        // Samples 0, 1, 4000000: zero bin (upper edge 0) counts from le="0.5"; [1,1.1) from
        // le="5"; [4e6,4.1e6) only in +Inf. Sum in bin order: 0 + 1.05 + 4050000 =
        // 4050001.05 → nearest double 4050001.0499999998137354850769043.
        format!(
            "# TYPE plain_histogram histogram\n{}",
            histogram(
                "plain_histogram",
                "",
                [1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2],
                3,
                "4050001.0499999998137354850769043",
            )
        ),
    ]
}

#[test]
fn istio_117_real_bootstrap_exposition() {
    let sink = example_sink();
    let tags = TagExtractor::istio(17, &[]);
    assert!(tags.rejected().is_empty(), "{:?}", tags.rejected());
    // Envoy 1.25: no empty line between families.
    let expected = expected_families(ISTIO_117_LABELS).concat();
    assert_eq!(prometheus::render(&sink, &tags), expected);
}

#[test]
fn istio_115_prints_an_empty_line_after_every_family() {
    let sink = example_sink();
    // 1.15's combined response_code regex still extracts "200" through its first alternative,
    // so the label order is the same as 1.17's.
    let tags = TagExtractor::istio(15, &[]);
    let expected: String = expected_families(ISTIO_117_LABELS)
        .into_iter()
        .map(|f| f + "\n")
        .collect();
    assert_eq!(prometheus::render(&sink, &tags), expected);
}

#[test]
fn istio_proxy_test_bootstrap_exposition() {
    let sink = example_sink();
    let tags = TagExtractor::istio_proxy_tests();
    assert!(tags.rejected().is_empty(), "{:?}", tags.rejected());
    let expected = expected_families(TEST_BOOTSTRAP_LABELS).concat();
    assert_eq!(
        prometheus::render_with(&sink, &tags, RenderOptions::for_istio(17)),
        expected
    );
}

#[test]
fn extract_gives_labels_in_bootstrap_order() {
    let name = format!("wasmcustom.{REQUEST_DIMS}istio_requests_total");
    for (tags, labels) in [
        (TagExtractor::istio(17, &[]), ISTIO_117_LABELS),
        (TagExtractor::istio_proxy_tests(), TEST_BOOTSTRAP_LABELS),
    ] {
        let (extracted, got) = tags.extract(&name);
        assert_eq!(extracted, "wasmcustom.istio_requests_total");
        assert_eq!(prometheus::formatted_tags(&got), labels);
    }
}

#[test]
fn unextracted_custom_dimension_stays_in_the_name_until_it_is_an_extra_stat_tag() {
    // A custom CEL dimension `test` is appended after the standard ones (stats-spec §4.2).
    let mut sink = StatsSink::new();
    let i = sink.define(
        MetricType::Counter,
        &format!("{REQUEST_DIMS}test=.=GET;.;istio_requests_total"),
    );
    if let Some(stat) = sink.stat_mut(i) {
        stat.value = stats_sink::StatValue::Counter(3);
    }
    // Without a rule "test=.=GET;.;" is left in the name; sanitising maps '=', '.', ';' to '_'.
    let plain = prometheus::render(&sink, &TagExtractor::istio(17, &[]));
    assert_eq!(
        plain,
        format!(
            "# TYPE test___GET___istio_requests_total counter\n\
             test___GET___istio_requests_total{{{ISTIO_117_LABELS}}} 3\n"
        )
    );
    // As an extra stat tag, its rule follows the DefaultStatTags rules: last label.
    let tags = TagExtractor::istio(17, &["test".to_string()]);
    assert_eq!(
        prometheus::render(&sink, &tags),
        format!(
            "# TYPE istio_requests_total counter\n\
             istio_requests_total{{{ISTIO_117_LABELS},test=\"GET\"}} 3\n"
        )
    );
    // Parser-free lookup of the same series.
    let labels = [
        ("reporter", "source"),
        ("test", "GET"),
        ("response_code", "200"),
        ("source_workload", "productpage-v1"),
        ("source_workload_namespace", "default"),
        ("source_principal", "unknown"),
        ("source_app", "productpage"),
        ("source_version", "v1"),
        ("source_cluster", "client-cluster"),
        ("destination_workload", "ratings-v1"),
        ("destination_workload_namespace", "default"),
        ("destination_principal", "unknown"),
        ("destination_app", "ratings"),
        ("destination_version", "v1"),
        ("destination_service", "server.default.svc.cluster.local"),
        ("destination_service_name", "server"),
        ("destination_service_namespace", "default"),
        ("destination_cluster", "server-cluster"),
        ("request_protocol", "http"),
        ("response_flags", "-"),
        ("grpc_response_status", ""),
        ("connection_security_policy", "unknown"),
        ("source_canonical_service", "productpage-v1"),
        ("destination_canonical_service", "ratings"),
        ("source_canonical_revision", "version-1"),
        ("destination_canonical_revision", "version-1"),
    ];
    assert_eq!(
        prometheus::value(&sink, &tags, "istio_requests_total", &labels),
        Some(3)
    );
    assert_eq!(
        prometheus::value(&sink, &tags, "istio_requests_total", &labels[..3]),
        None
    );
    // Duplicates and empty entries in extraStatTags are dropped like removeDuplicates does.
    let dup = TagExtractor::istio(17, &["reporter".into(), String::new(), "test".into()]);
    assert_eq!(
        prometheus::render(&sink, &dup),
        prometheus::render(&sink, &tags)
    );
}

#[test]
fn label_values_are_escaped_and_names_sanitised() {
    let mut sink = StatsSink::new();
    let i = sink.define(MetricType::Gauge, "reporter=.=a\"b\\c\nd;.;my-metric.name");
    if let Some(stat) = sink.stat_mut(i) {
        stat.value = stats_sink::StatValue::Gauge(2);
    }
    let text = prometheus::render(&sink, &TagExtractor::istio(17, &[]));
    // `.` in the value stops at \n (ECMAScript), so the reporter rule fails and the whole name
    // is sanitised; with a value free of \n it is extracted and escaped.
    assert_eq!(
        text,
        "# TYPE reporter___a_b_c_d___my_metric_name gauge\nreporter___a_b_c_d___my_metric_name{} 2\n"
    );
    let mut sink = StatsSink::new();
    let i = sink.define(MetricType::Gauge, "reporter=.=a\"b\\c;.;my-metric.name");
    if let Some(stat) = sink.stat_mut(i) {
        stat.value = stats_sink::StatValue::Gauge(2);
    }
    let text = prometheus::render(&sink, &TagExtractor::istio(17, &[]));
    assert_eq!(
        text,
        "# TYPE my_metric_name gauge\nmy_metric_name{reporter=\"a\\\"b\\\\c\"} 2\n"
    );
}

#[test]
fn names_starting_with_a_digit_are_dropped() {
    let mut sink = StatsSink::new();
    sink.define(MetricType::Counter, "1bad");
    sink.define(MetricType::Counter, "good");
    assert_eq!(
        prometheus::render(&sink, &TagExtractor::istio(17, &[])),
        "# TYPE good counter\ngood{} 0\n"
    );
}

/// `promtool check metrics` parses the text; lint findings that Envoy's output always has are
/// accepted, parse errors are not.
#[test]
fn promtool_accepts_the_exposition() {
    let promtool = std::path::Path::new("/usr/bin/promtool");
    if !promtool.exists() {
        println!("skipped: /usr/bin/promtool is not installed (Debian package `prometheus`)");
        return;
    }
    let check = |text: &str| -> (i32, String) {
        use std::io::Write;
        let mut child = std::process::Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn promtool");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("promtool output");
        let mut msg = String::from_utf8_lossy(&out.stdout).into_owned();
        msg += &String::from_utf8_lossy(&out.stderr);
        (out.status.code().unwrap_or(-1), msg)
    };
    // The check must be able to fail: an unescaped quote is a parse error.
    let (code, msg) = check("# TYPE a gauge\na{x=\"b\"c\"} 1\n");
    assert_ne!(code, 0, "{msg}");
    assert!(msg.contains("error"), "{msg}");

    let sink = example_sink();
    for (minor, tags) in [
        (15, TagExtractor::istio(15, &[])),
        (17, TagExtractor::istio(17, &[])),
        (17, TagExtractor::istio_proxy_tests()),
    ] {
        let text = prometheus::render_with(&sink, &tags, RenderOptions::for_istio(minor));
        let (code, msg) = check(&text);
        // Exit 3 = lint findings only (Envoy prints no HELP, names counters without `_total`,
        // uses milliseconds); a parse error exits 1 and says "error while linting".
        assert!(code == 0 || code == 3, "promtool exit {code}: {msg}");
        assert!(!msg.contains("error"), "{msg}");
    }
}

/// Performance anchors: extraction compiles nothing per call, and rendering 10k Istio-shaped
/// series stays in the milliseconds range (generous bound for debug builds).
#[test]
fn rendering_ten_thousand_series_is_fast() {
    let mut sink = StatsSink::new();
    for i in 0..10_000 {
        let name = REQUEST_DIMS.replace("productpage-v1", &format!("productpage-{i}"));
        let idx = sink.define(MetricType::Counter, &format!("{name}istio_requests_total"));
        if let Some(stat) = sink.stat_mut(idx) {
            stat.value = stats_sink::StatValue::Counter(i);
        }
    }
    let started = std::time::Instant::now();
    let tags = TagExtractor::istio(17, &[]);
    let proxy_tests = TagExtractor::istio_proxy_tests();
    println!("built both extractors in {:?}", started.elapsed());
    assert!(proxy_tests.rejected().is_empty());
    let started = std::time::Instant::now();
    let text = prometheus::render(&sink, &tags);
    let elapsed = started.elapsed();
    println!(
        "rendered 10000 series ({} bytes) in {elapsed:?}",
        text.len()
    );
    assert_eq!(text.lines().count(), 10_001);
    assert!(text.starts_with("# TYPE istio_requests_total counter\n"));
    assert!(elapsed < std::time::Duration::from_secs(2), "{elapsed:?}");

    let name = format!("wasmcustom.{REQUEST_DIMS}istio_requests_total");
    let started = std::time::Instant::now();
    for _ in 0..10_000 {
        std::hint::black_box(tags.extract(std::hint::black_box(&name)));
    }
    println!(
        "10000 extractions of a 25-tag name in {:?}",
        started.elapsed()
    );
}

/// Envoy groups by the tag-extracted name before sanitising, so two names that sanitise alike
/// give two families with the same `# TYPE` name (invalid for Prometheus, but what Envoy prints).
#[test]
fn families_group_by_unsanitised_name() {
    let mut sink = StatsSink::new();
    sink.define(MetricType::Counter, "a_b");
    sink.define(MetricType::Counter, "a.b");
    // Token order: "a" < "a_b", so "a.b" comes first.
    assert_eq!(
        prometheus::render(&sink, &TagExtractor::istio(17, &[])),
        "# TYPE a_b counter\na_b{} 0\n# TYPE a_b counter\na_b{} 0\n"
    );
}
