//! The book's acceptance cases end to end (/work/shared/reference/book-examples.md, Istio in
//! Action ch. 7), on the real `.wasm` plugins: inputs in `testdata/istio/book/<case>/` (node,
//! traffic, EnvoyFilter YAML through the same chain builder as `harness replay`), assertions here,
//! each derived by hand from the book and stats-spec.md.

use std::collections::BTreeMap;

use e2e_tests::prom::golden::{istio_dir, Scenario};
use e2e_tests::prom::{self, render_labels, Exposition, Sample};

/// Replays one book case and parses the Prometheus text.
fn run(case: &str) -> Exposition {
    let dir = istio_dir().join("book").join(case);
    let s = Scenario::load(&dir).unwrap_or_else(|e| panic!("{case}: {e}"));
    s.check_files().unwrap_or_else(|e| panic!("{case}: {e}"));
    let text = e2e_tests::prom::golden::replay(&s).unwrap_or_else(|e| panic!("{case}: {e}"));
    prom::parse(&text).unwrap_or_else(|e| panic!("{case}: {e}\n{text}"))
}

fn series<'a>(x: &'a Exposition, name: &str, reporter: &str) -> Vec<&'a Sample> {
    x.samples
        .iter()
        .filter(|s| {
            s.name == name && s.labels.get("reporter").map(String::as_str) == Some(reporter)
        })
        .collect()
}

fn dump(samples: &[&Sample]) -> String {
    samples
        .iter()
        .map(|s| format!("{}{} {}", s.name, render_labels(&s.labels), s.value))
        .collect::<Vec<_>>()
        .join("\n")
}

/// (a) §1: `upstream_proxy_version: upstream_peer.istio_version`, `source_mesh_id:
/// node.metadata['MESH_ID']`, `tags_to_remove: [request_protocol]` on requests_total. With the
/// pod's extraStatTags both dimensions become labels (without a stats_tags rule Envoy would leave
/// them inside the metric name, stats-spec §5.3).
#[test]
fn a_extra_dimensions_and_removed_tag() {
    let x = run("a_extra_dimensions_and_removed_tag");

    // Outbound webapp -> catalog: the catalog peer (MX) reports ISTIO_VERSION 1.17.8; MESH_ID
    // is webapp's own node metadata.
    let out = series(&x, "istio_requests_total", "source");
    assert_eq!(out.len(), 1, "outbound series:\n{}", dump(&out));
    let l = &out[0].labels;
    assert_eq!(
        l.get("upstream_proxy_version").map(String::as_str),
        Some("1.17.8")
    );
    assert_eq!(
        l.get("source_mesh_id").map(String::as_str),
        Some("cluster.local")
    );
    assert!(!l.contains_key("request_protocol"), "{}", render_labels(l));
    assert_eq!(
        l.get("destination_workload").map(String::as_str),
        Some("catalog")
    );
    assert_eq!(out[0].value, 10.0);

    // Inbound gateway -> webapp: there is no wasm.upstream_peer on inbound, so the CEL lookup
    // fails and the label is "unknown" (stats-spec §4.3); MESH_ID is still local.
    let inb = series(&x, "istio_requests_total", "destination");
    assert_eq!(inb.len(), 1, "inbound series:\n{}", dump(&inb));
    let l = &inb[0].labels;
    assert_eq!(
        l.get("upstream_proxy_version").map(String::as_str),
        Some("unknown")
    );
    assert_eq!(
        l.get("source_mesh_id").map(String::as_str),
        Some("cluster.local")
    );
    assert!(!l.contains_key("request_protocol"), "{}", render_labels(l));
    assert_eq!(
        l.get("source_workload").map(String::as_str),
        Some("istio-ingressgateway")
    );
    assert_eq!(inb[0].value, 10.0);

    // The entry names requests_total only: the other standard metrics keep request_protocol
    // and do not gain the new dimensions (stats-spec §4.2).
    let hist = series(&x, "istio_request_duration_milliseconds_count", "source");
    assert_eq!(hist.len(), 1, "{}", dump(&hist));
    assert_eq!(
        hist[0].labels.get("request_protocol").map(String::as_str),
        Some("http")
    );
    assert!(!hist[0].labels.contains_key("upstream_proxy_version"));

    // Nothing left inside a metric name.
    let leaked: Vec<&str> = x
        .names()
        .into_iter()
        .filter(|n| n.contains("upstream_proxy_version") || n.contains("source_mesh_id"))
        .collect();
    assert!(
        leaked.is_empty(),
        "dimension left in a metric name: {leaked:?}"
    );
}

/// (b) §2: definition `get_calls` = `(request.method.startsWith('GET') ? 1 : 0)`. The book's
/// `istio_get_calls{} 20` after its batch of calls: each curl is one inbound GET (gateway ->
/// webapp) and one outbound GET (webapp -> catalog) on the same sidecar, and both listeners'
/// plugins add to the one label-less series (same Envoy stat name). POSTs evaluate to 0 and a
/// COUNTER increment of 0 is skipped (stats-spec §2, §4.1).
#[test]
fn b_get_calls_definition() {
    let x = run("b_get_calls_definition");
    let calls: Vec<&Sample> = x
        .samples
        .iter()
        .filter(|s| s.name == "istio_get_calls")
        .collect();
    assert_eq!(calls.len(), 1, "{}", dump(&calls));
    assert_eq!(calls[0].labels, BTreeMap::new());
    assert_eq!(calls[0].value, 20.0);
    assert_eq!(
        x.types.get("istio_get_calls").map(String::as_str),
        Some("counter")
    );
    // The standard metrics still count every request: 10 + 10 GET, 3 + 3 POST.
    let total: f64 = x
        .samples
        .iter()
        .filter(|s| s.name == "istio_requests_total")
        .map(|s| s.value)
        .sum();
    assert_eq!(total, 26.0);
}

/// (c) §3: attributegen (getitems / createitem / deleteitem) before istio.stats on outbound,
/// and `upstream_operation: istio_operationId` on outbound requests_total. Requests that match
/// no rule leave no `wasm.istio_operationId`, so the dimension's evaluation fails: `unknown`.
/// Traffic: GET x5, POST x3 (201), DELETE x2, PUT x4 on /items, GET /other x6; PUT /items and
/// GET /other share every label, so `unknown` is one series of 10.
#[test]
fn c_attributegen_operation_dimension() {
    let x = run("c_attributegen_operation_dimension");
    let out = series(&x, "istio_requests_total", "source");
    let mut by_op: BTreeMap<String, f64> = BTreeMap::new();
    for s in &out {
        let op = s
            .labels
            .get("upstream_operation")
            .unwrap_or_else(|| panic!("no upstream_operation label:\n{}", dump(&out)));
        *by_op.entry(op.clone()).or_default() += s.value;
    }
    let want: BTreeMap<String, f64> = [
        ("getitems", 5.0),
        ("createitem", 3.0),
        ("deleteitem", 2.0),
        ("unknown", 10.0),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(by_op, want, "series:\n{}", dump(&out));
    assert_eq!(out.len(), 4, "series:\n{}", dump(&out));
    let created = out
        .iter()
        .find(|s| s.labels["upstream_operation"] == "createitem")
        .map(|s| s.labels.get("response_code").cloned());
    assert_eq!(created, Some(Some("201".to_string())));
}

/// The inputs load and every traffic line decodes, whether or not a replay can run yet.
#[test]
fn book_case_data_decodes() {
    for case in [
        "a_extra_dimensions_and_removed_tag",
        "b_get_calls_definition",
        "c_attributegen_operation_dimension",
    ] {
        let s = Scenario::load(&istio_dir().join("book").join(case))
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        s.check_files().unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(s.proxy_version, "1.17.8");
    }
}

/// The book's attributegen EnvoyFilter (INSERT_BEFORE istio.stats) lands right before our stats
/// filter in webapp's outbound HTTP chain, as istiod would patch it.
#[test]
fn c_attributegen_runs_before_stats() {
    let s = Scenario::load(
        &istio_dir()
            .join("book")
            .join("c_attributegen_operation_dimension"),
    )
    .unwrap();
    let chain = s.http_chain(harness::stream::Direction::Outbound).unwrap();
    let stats = chain.iter().position(|n| n == "istio.stats");
    let ag = chain.iter().position(|n| n == "istio.attributegen");
    assert!(
        matches!((ag, stats), (Some(a), Some(s)) if a + 1 == s),
        "outbound chain: {chain:?}"
    );
    eprintln!("outbound chain: {chain:?}");
}

/// Why the book's pods need extraStatTags: without a stats_tags rule for the two new dimension
/// names, Envoy's tag extraction leaves them inside the stat name, so Prometheus shows a family
/// named after them (sanitised, e.g. istio/istio#39932's `test___GET___istio_requests_total`)
/// instead of labels (stats-spec §5.3).
#[test]
fn a_without_extra_stat_tags_dimensions_stay_in_the_name() {
    let dir = istio_dir()
        .join("book")
        .join("a_extra_dimensions_and_removed_tag");
    let mut s = Scenario::load(&dir).unwrap();
    let mut node = e2e_tests::prom::golden::read_commented_json(&s.node).unwrap();
    node["metadata"]["PROXY_CONFIG"]["extraStatTags"] = serde_json::json!([]);
    let tmp = std::env::temp_dir().join(format!("book-a-node-{}.yaml", std::process::id()));
    std::fs::write(&tmp, node.to_string()).unwrap();
    s.node = tmp.clone();
    let text = e2e_tests::prom::golden::replay(&s);
    let _ = std::fs::remove_file(&tmp);
    let x = prom::parse(&text.unwrap()).unwrap();
    assert!(
        x.samples
            .iter()
            .all(|s| !s.labels.contains_key("upstream_proxy_version")),
        "no label without a stats_tags rule"
    );
    let folded: Vec<&str> = x
        .names()
        .into_iter()
        .filter(|n| n.contains("upstream_proxy_version") && n.ends_with("istio_requests_total"))
        .collect();
    assert!(!folded.is_empty(), "families: {:?}", x.names());
    // requests_total keeps its standard labels; the folded family carries both directions.
    let total: f64 = x
        .samples
        .iter()
        .filter(|s| folded.contains(&s.name.as_str()))
        .map(|s| s.value)
        .sum();
    assert_eq!(total, 20.0);
}
