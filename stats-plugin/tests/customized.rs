//! Customisation scenarios: `metrics[]` overrides, `tags_to_remove`, `drop`, `definitions`
//! (stats-spec §4, §9 #3, #19–#23, #25) and the book's configurations (book-examples.md).

mod common;

use common::*;
use proxy_attributes::host::fake::FakeHost;
use proxy_attributes::host::HeaderMap;
use stats_plugin::Direction;
use std::collections::BTreeMap;

const PORT: u16 = 19090;

/// `P17:testdata/stats/client_config_customized.yaml.tmpl` as the JSON the Wasm plugin receives.
const CUSTOMIZED_1_17: &str = r#"{
  "definitions": [{"name": "custom", "value": "1", "type": "COUNTER"}],
  "metrics": [
    {"name": "request_duration_milliseconds", "drop": true},
    {"name": "custom", "dimensions": {"reporter": "'proxy'"}},
    {"tags_to_remove": ["response_flags", "source_principal"]},
    {"name": "requests_total",
     "dimensions": {
       "configurable_metric_a": "'gateway'",
       "source_workload": "'_' + node.metadata['WORKLOAD_NAME']",
       "source_workload_namespace": "'_' + node.metadata['NAMESPACE']",
       "source_app": "'_' + node.metadata['LABELS']['app']",
       "source_version": "'_' + node.metadata['LABELS']['app']",
       "request_protocol": "request.protocol",
       "destination_version": "'_' + (has(node.metadata.LABELS.version) ? node.metadata.LABELS.version : 'unknown')",
       "destination_service_namespace": "'_' + upstream_peer.labels['app'].value",
       "destination_app": "cannot _ parse | 0",
       "destination_workload": "cannot_evaluate",
       "route_name": "xds.route_name + \",\" + xds.cluster_name + \",\" + xds.cluster_metadata.filter_metadata.istio.services[0].name"
     },
     "tags_to_remove": ["grpc_response_status"]},
    {"name": "request_bytes", "dimensions": {"configurable_metric_b": "'test'"}, "tags_to_remove": ["reporter"]},
    {"dimensions": {"source_principal": "'malicious'"}}
  ]
}"#;

/// Labels of `P17:testdata/metric/client_request_total_customized.yaml.tmpl`.
fn customized_requests_total_labels(route_name: &str) -> BTreeMap<String, String> {
    expect(&[
        ("reporter", "source"),
        ("source_workload", "_productpage-v1"),
        ("source_canonical_service", "productpage-v1"),
        ("source_canonical_revision", "version-1"),
        ("source_workload_namespace", "_default"),
        ("source_principal", "malicious"),
        ("source_app", "_productpage"),
        ("source_version", "_productpage"),
        ("source_cluster", "client-cluster"),
        ("destination_workload", "unknown"),
        ("destination_workload_namespace", "default"),
        ("destination_principal", "unknown"),
        ("destination_version", "_v1"),
        ("destination_service", "server.default.svc.cluster.local"),
        ("destination_canonical_service", "ratings"),
        ("destination_canonical_revision", "version-1"),
        ("destination_service_name", "server"),
        ("destination_service_namespace", "_ratings"),
        ("destination_cluster", "server-cluster"),
        ("request_protocol", "HTTP/1.1"),
        ("response_code", "200"),
        ("connection_security_policy", "unknown"),
        ("configurable_metric_a", "gateway"),
        ("route_name", route_name),
    ])
}

/// Ports `TestStatsPayload/Customized` client side (`P17:stats_test.go:95-109`).
#[test]
fn customized_client_overrides_definitions_drop() {
    let host = client_http(PORT);
    let (mut plugin, mut m) = configured(Direction::Outbound, &host, CUSTOMIZED_1_17);
    for _ in 0..10 {
        run_http(&mut plugin, &host, &mut m);
    }
    let (mut labels, value) = m.one("istio_requests_total");
    let route_name = labels.insert("route_name".into(), "-".into());
    let mut expected =
        customized_requests_total_labels("client_route,server-outbound-cluster,server");
    expected.insert("route_name".into(), "-".into());
    assert_eq!(labels, expected);
    assert_eq!(value, 10);
    // Checked in full by `customized_route_name_with_cluster_metadata_list`.
    assert_eq!(
        route_name.as_deref(),
        Some("client_route,server-outbound-cluster,server")
    );
    // `istio_custom{reporter="proxy",source_principal="malicious"} 10` (client_custom_metric.yaml.tmpl).
    assert_eq!(
        m.one("istio_custom"),
        (
            expect(&[("reporter", "proxy"), ("source_principal", "malicious")]),
            10
        )
    );
    let custom = m
        .istio_names()
        .into_iter()
        .find(|n| n.ends_with("istio_custom"))
        .unwrap();
    assert_eq!(
        custom,
        "reporter=.=proxy;.;source_principal=.=malicious;.;istio_custom"
    );
    // Dropped: no series at all.
    assert!(m
        .histogram("istio_request_duration_milliseconds")
        .is_empty());
    // request_bytes: no reporter / response_flags, configurable_metric_b appended,
    // source_principal restored in place by the last entry.
    let rb = m.histogram("istio_request_bytes");
    assert_eq!(rb.len(), 1);
    let l = &rb[0].0;
    assert!(!l.contains_key("reporter") && !l.contains_key("response_flags"));
    assert_eq!(l["configurable_metric_b"], "test");
    assert_eq!(l["source_principal"], "malicious");
    assert_eq!(l.len(), 24);
    let name = m
        .histograms
        .keys()
        .find(|n| n.ends_with("istio_request_bytes"))
        .unwrap();
    assert!(name.starts_with("source_workload=.=productpage-v1;.;source_workload_namespace=.=default;.;source_principal=.=malicious;.;"));
    assert!(name
        .ends_with("grpc_response_status=.=;.;configurable_metric_b=.=test;.;istio_request_bytes"));
}

/// `P13:testdata/stats/client_config_customized.yaml.tmpl`: the same plus a redefined
/// `requests_total` with value 10 and the 1.13 top-level `route_name` attribute.
#[test]
fn v1_13_customized_client_redefined_requests_total() {
    let config = CUSTOMIZED_1_17
        .replace(
            r#""definitions": [{"#,
            r#""definitions": [{"name": "requests_total", "value": "10", "type": "COUNTER"}, {"#,
        )
        .replace(
            r#""xds.route_name + \",\" + xds.cluster_name + \",\" + xds.cluster_metadata.filter_metadata.istio.services[0].name""#,
            r#""route_name""#,
        );
    let host = client_http(PORT);
    let (mut plugin, mut m) = configured(Direction::Outbound, &host, &config);
    for _ in 0..10 {
        run_http(&mut plugin, &host, &mut m);
    }
    // P13 client_request_total_customized.yaml.tmpl: 100 after 10 requests.
    assert_eq!(
        m.one("istio_requests_total"),
        (customized_requests_total_labels("client_route"), 100)
    );
}

/// `P13:testdata/stats/client_config.yaml` custom dimensions (`P13:stats_test.go:79-91`, #19).
const P13_CLIENT_CONFIG: &str = r#"{"field_separator": ";.;", "metrics": [{"dimensions": {
  "configurable_metric_a": "(request.host.startsWith('127.0.0.1') ? 'localhost:' : request.host) + string(upstream_peer_id)",
  "configurable_metric_b": "request.protocol"}}]}"#;

#[test]
fn v1_13_default_client_with_custom_dimensions() {
    let host = client_http(PORT);
    let (mut plugin, mut m) = configured(Direction::Outbound, &host, P13_CLIENT_CONFIG);
    for _ in 0..10 {
        run_http(&mut plugin, &host, &mut m);
    }
    let mut expected = client_request_total_labels();
    expected.insert("configurable_metric_a".into(), "localhost:server".into());
    expected.insert("configurable_metric_b".into(), "HTTP/1.1".into());
    assert_eq!(m.one("istio_requests_total"), (expected, 10));
}

/// #22 (`P13:stats_test.go:602-640`): without MX there is no `upstream_peer_id`, so the
/// expression fails and the label is `unknown`.
#[test]
fn v1_13_endpoint_labels_client_custom_dimension_unknown() {
    let h = with_local(FakeHost::new(), &client_node());
    let h = with_services(h).with_str(
        &[
            "upstream_host_metadata",
            "filter_metadata",
            "istio",
            "workload",
        ],
        "ratings-v1;default;ratings;version-1;server-cluster",
    );
    let host = http_common(h, PORT);
    let (mut plugin, mut m) = configured(Direction::Outbound, &host, P13_CLIENT_CONFIG);
    run_http(&mut plugin, &host, &mut m);
    let l = m.one("istio_requests_total").0;
    assert_eq!(l["configurable_metric_a"], "unknown");
    assert_eq!(l["configurable_metric_b"], "HTTP/1.1");
    assert_eq!(l["destination_workload"], "ratings-v1");
}

/// book-examples.md §1: upstream_proxy_version + source_mesh_id, request_protocol removed.
const BOOK_CONFIG: &str = r#"{"metrics":[{"dimensions":{"source_mesh_id":"node.metadata['MESH_ID']","upstream_proxy_version":"upstream_peer.istio_version"},"name":"requests_total","tags_to_remove":["request_protocol"]}]}"#;

#[test]
fn book_dimensions_outbound() {
    let host = client_http(PORT);
    let (mut plugin, mut m) = configured(Direction::Outbound, &host, BOOK_CONFIG);
    for _ in 0..3 {
        run_http(&mut plugin, &host, &mut m);
    }
    let mut expected = client_request_total_labels();
    expected.remove("request_protocol");
    expected.insert("source_mesh_id".into(), "mesh".into());
    expected.insert("upstream_proxy_version".into(), "1.5-dev".into());
    assert_eq!(m.one("istio_requests_total"), (expected, 3));
    // Only requests_total is customised.
    assert_eq!(
        m.histogram("istio_request_bytes")[0].0,
        client_request_total_labels()
    );
    // New tags are appended in sorted order after the standard ones.
    let name = m
        .counters
        .keys()
        .find(|n| n.ends_with("istio_requests_total"))
        .unwrap();
    assert!(name.ends_with(
        "source_mesh_id=.=mesh;.;upstream_proxy_version=.=1.5-dev;.;istio_requests_total"
    ));
}

/// On the inbound side there is no `upstream_peer`: `unknown` (§4.3); the peer without
/// `ISTIO_VERSION` would give "".
#[test]
fn book_dimensions_inbound() {
    let host = server_http(PORT);
    let (mut plugin, mut m) = configured(Direction::Inbound, &host, BOOK_CONFIG);
    run_http(&mut plugin, &host, &mut m);
    let l = m.one("istio_requests_total").0;
    assert_eq!(l["upstream_proxy_version"], "unknown");
    assert_eq!(l["source_mesh_id"], "proj-123");
    assert!(!l.contains_key("request_protocol"));
}

/// book-examples.md §2 / stats-spec #25: `istio_get_calls{} 20` after 20 GETs; POSTs evaluate to
/// 0, which a counter does not record.
#[test]
fn definitions_get_calls_counter() {
    let config = r#"{"definitions":[{"name":"get_calls","type":"COUNTER","value":"(request.method.startsWith('GET') ? 1 : 0)"}]}"#;
    let get = client_http(PORT);
    let post = client_http(PORT).with_str(&["request", "method"], "POST");
    let (mut plugin, mut m) = configured(Direction::Outbound, &get, config);
    for i in 0..23 {
        let host = if i % 7 == 6 { &post } else { &get };
        run_http(&mut plugin, host, &mut m);
    }
    assert_eq!(m.counters["istio_get_calls"], 20);
    assert_eq!(m.one("istio_get_calls"), (BTreeMap::new(), 20));
    assert_eq!(m.one("istio_requests_total").1, 23);
}

/// §4.1: custom metrics are never recorded for TCP; GAUGE and HISTOGRAM types; a definition
/// whose value does not compile stops the following ones; an empty name stops too.
#[test]
fn definition_types_and_stops() {
    let config = r#"{"definitions":[
      {"name":"g","type":"GAUGE","value":"response.code"},
      {"name":"h","type":"HISTOGRAM","value":"response.code"},
      {"name":"c","type":7,"value":"2"},
      {"name":"bad","value":"1 +"},
      {"name":"after_bad","value":"1"}]}"#;
    let host = client_http(PORT);
    let (mut plugin, mut m) = configured(Direction::Outbound, &host, config);
    run_http(&mut plugin, &host, &mut m);
    run_http(&mut plugin, &host, &mut m);
    assert_eq!(m.gauges["istio_g"], 200);
    assert_eq!(m.histograms["istio_h"], vec![200, 200]);
    // A numeric type means COUNTER.
    assert_eq!(m.counters["istio_c"], 4);
    assert!(!m.names.iter().any(|(_, n)| n.contains("bad")));

    let config =
        r#"{"definitions":[{"name":"a","value":"1"},{"value":"1"},{"name":"b","value":"1"}]}"#;
    let (mut plugin, mut m) = configured(Direction::Outbound, &host, config);
    run_http(&mut plugin, &host, &mut m);
    assert_eq!(m.counters["istio_a"], 1);
    assert!(!m.counters.contains_key("istio_b"));
}

/// §4.1: redefining a standard histogram without a type turns it into a counter.
#[test]
fn redefining_a_standard_metric_keeps_its_tags() {
    let config = r#"{"definitions":[{"name":"request_duration_milliseconds","value":"7"}]}"#;
    let host = client_http(PORT);
    let (mut plugin, mut m) = configured(Direction::Outbound, &host, config);
    run_http(&mut plugin, &host, &mut m);
    assert!(m
        .histogram("istio_request_duration_milliseconds")
        .is_empty());
    assert_eq!(
        m.one("istio_request_duration_milliseconds"),
        (client_request_total_labels(), 7)
    );
}

/// §4.2: removals before additions in one entry; a later entry restores; unknown removals are
/// ignored; a failed parse removes the tag (even a standard one); expression slots are shared.
#[test]
fn override_algorithm() {
    let config = r#"{"metrics":[
      {"name":"requests_total","tags_to_remove":["reporter","no_such_tag"],"dimensions":{"reporter":"'again'"}},
      {"name":"requests_total","dimensions":{"response_code":"cannot _ parse |","x":"'same'","y":"'same'"}},
      {"name":"requests_total","tags_to_remove":["x"]}]}"#;
    let host = client_http(PORT);
    let (mut plugin, mut m) = configured(Direction::Outbound, &host, config);
    run_http(&mut plugin, &host, &mut m);
    let l = m.one("istio_requests_total").0;
    assert_eq!(l["reporter"], "again");
    assert!(!l.contains_key("response_code"));
    assert!(!l.contains_key("x"));
    assert_eq!(l["y"], "same");
    let name = m
        .counters
        .keys()
        .find(|n| n.ends_with("istio_requests_total"))
        .unwrap();
    assert!(
        name.starts_with("reporter=.=again;.;source_workload="),
        "{name}"
    );
}

/// `drop` without a name drops everything, definitions included.
#[test]
fn drop_all() {
    let config = r#"{"definitions":[{"name":"d","value":"1"}],"metrics":[{"drop":"true"}]}"#;
    let host = client_http(PORT);
    let (mut plugin, mut m) = configured(Direction::Outbound, &host, config);
    run_http(&mut plugin, &host, &mut m);
    assert!(m.istio_names().is_empty(), "{:?}", m.names);
    // istio_build is still recorded.
    assert_eq!(m.gauges.len(), 1);
}

/// §1.4: a non-string dimension value stops `metrics[]` processing at that element (the earlier
/// sorted tags of its first metric stay applied); a non-string `tags_to_remove` item likewise.
#[test]
fn metrics_errors_stop_processing() {
    let config = r#"{"metrics":[
      {"name":"requests_total","dimensions":{"a":"'A'","b":5,"c":"'C'"}},
      {"name":"requests_total","dimensions":{"d":"'D'"}}]}"#;
    let host = client_http(PORT);
    let (mut plugin, mut m) = configured(Direction::Outbound, &host, config);
    run_http(&mut plugin, &host, &mut m);
    let l = m.one("istio_requests_total").0;
    assert_eq!(l["a"], "A");
    assert!(!l.contains_key("c") && !l.contains_key("d"));

    let config = r#"{"metrics":[
      {"name":"requests_total","tags_to_remove":["reporter",3,"response_code"],"dimensions":{"a":"'A'"}},
      {"name":"requests_total","dimensions":{"d":"'D'"}}]}"#;
    let (mut plugin, mut m) = configured(Direction::Outbound, &host, config);
    run_http(&mut plugin, &host, &mut m);
    let l = m.one("istio_requests_total").0;
    assert!(!l.contains_key("reporter"));
    assert!(l.contains_key("response_code"));
    assert!(!l.contains_key("a") && !l.contains_key("d"));

    // A bad element that matches no metric does not stop anything.
    let config = r#"{"metrics":[
      {"name":"nope","dimensions":{"b":5}},
      {"name":"requests_total","dimensions":{"d":"'D'"}}]}"#;
    let (mut plugin, mut m) = configured(Direction::Outbound, &host, config);
    run_http(&mut plugin, &host, &mut m);
    assert_eq!(m.one("istio_requests_total").0["d"], "D");

    // `dimensions` not an object stops immediately.
    let config =
        r#"{"metrics":[{"dimensions":["x"]},{"name":"requests_total","dimensions":{"d":"'D'"}}]}"#;
    let (mut plugin, mut m) = configured(Direction::Outbound, &host, config);
    run_http(&mut plugin, &host, &mut m);
    assert!(!m.one("istio_requests_total").0.contains_key("d"));
}

/// A CEL result that is not a string is rendered like `string()` (documented deviation from the
/// raw bytes of Istio's Wasm plugin, §4.3); a missing header gives `unknown`.
#[test]
fn non_string_cel_results() {
    let config = r#"{"metrics":[{"name":"requests_total","dimensions":{
      "code":"response.code", "is_get":"request.method == 'GET'",
      "user":"request.headers['x-user']", "empty":"''"}}]}"#;
    let host = client_http(PORT);
    let (mut plugin, mut m) = configured(Direction::Outbound, &host, config);
    run_http(&mut plugin, &host, &mut m);
    let l = m.one("istio_requests_total").0;
    assert_eq!(l["code"], "200");
    assert_eq!(l["is_get"], "true");
    assert_eq!(l["user"], "unknown");
    // CEL values are not subject to the unknown rule.
    assert_eq!(l["empty"], "");

    let host = client_http(PORT).with_header(HeaderMap::RequestHeaders, "x-user", "jason");
    let (mut plugin, mut m) = configured(Direction::Outbound, &host, config);
    run_http(&mut plugin, &host, &mut m);
    assert_eq!(m.one("istio_requests_total").0["user"], "jason");
}

/// Custom separators are honoured (`field_separator`, `value_separator`).
#[test]
fn custom_separators() {
    let host = client_http(PORT);
    let (mut plugin, mut m) = configured(
        Direction::Outbound,
        &host,
        r#"{"field_separator":"|","value_separator":":","metrics":[{"drop":true},{"name":"requests_total"}]}"#,
    );
    run_http(&mut plugin, &host, &mut m);
    assert!(m.istio_names().is_empty());
    let (mut plugin, mut m) = configured(
        Direction::Outbound,
        &host,
        r#"{"field_separator":"|","value_separator":":","definitions":[{"name":"x","value":"1"}],"metrics":[{"name":"x","dimensions":{"a":"'b'"}}]}"#,
    );
    run_http(&mut plugin, &host, &mut m);
    assert_eq!(m.counters["a:b|istio_x"], 1);
}

/// The P17 `route_name` dimension in full (`client_route,server-outbound-cluster,server`):
/// `services[0]` resolves because `proxy_attributes::expr` decodes Envoy's serialised CEL list
/// (pairs with empty values) as a list.
#[test]
fn customized_route_name_with_cluster_metadata_list() {
    let host = client_http(PORT);
    let (mut plugin, mut m) = configured(Direction::Outbound, &host, CUSTOMIZED_1_17);
    run_http(&mut plugin, &host, &mut m);
    assert_eq!(
        m.one("istio_requests_total").0["route_name"],
        "client_route,server-outbound-cluster,server"
    );
}

/// Istio 1.13/1.14 default inbound config (`I13:…/telemetryv2_1.13.yaml:93-100`, stats-spec §1.5):
/// source/destination cluster computed by CEL. A peer without CLUSTER_ID gives "" (CEL values
/// are not subject to the unknown rule); no peer at all gives `unknown`.
#[test]
fn v1_13_inbound_default_cluster_dimensions() {
    let config = r#"{"debug":"false","stat_prefix":"istio","disable_host_header_fallback":true,"metrics":[{"dimensions":{"destination_cluster":"node.metadata['CLUSTER_ID']","source_cluster":"downstream_peer.cluster_id"}}]}"#;
    let host = server_http(PORT);
    let (mut plugin, mut m) = configured(Direction::Inbound, &host, config);
    run_http(&mut plugin, &host, &mut m);
    assert_eq!(
        m.one("istio_requests_total").0,
        server_request_total_labels()
    );

    let mut peer = client_node();
    peer.cluster_id = String::new();
    let h = with_peer(
        with_local(FakeHost::new(), &server_node()),
        Direction::Inbound,
        "client",
        &peer,
    );
    let host = with_services(http_common(h, PORT)).with_bool(&["connection", "mtls"], false);
    let (mut plugin, mut m) = configured(Direction::Inbound, &host, config);
    run_http(&mut plugin, &host, &mut m);
    let l = m.one("istio_requests_total").0;
    assert_eq!(l["source_cluster"], "");
    assert_eq!(l["destination_cluster"], "server-cluster");

    let host = with_services(http_common(
        with_local(FakeHost::new(), &server_node()),
        PORT,
    ));
    let (mut plugin, mut m) = configured(Direction::Inbound, &host, config);
    run_http(&mut plugin, &host, &mut m);
    assert_eq!(m.one("istio_requests_total").0["source_cluster"], "unknown");
}

/// A CEL dimension on the peer uses the node the report resolved for the standard labels: the
/// `upstream_peer` FlatNode is read and decoded once per peer id, not once per request (the
/// second request reads `upstream_peer_id` only). Expected value: `server_node()`'s ISTIO_VERSION.
#[test]
fn peer_expressions_reuse_the_cached_peer() {
    let config = r#"{"metrics":[{"name":"requests_total","dimensions":{"upstream_proxy_version":"upstream_peer.istio_version"}}]}"#;
    let host = client_http(PORT);
    let (mut plugin, mut m) = configured(Direction::Outbound, &host, config);
    run_http(&mut plugin, &host, &mut m);
    host.clear_reads();
    run_http(&mut plugin, &host, &mut m);
    let reads = host.reads();
    assert!(
        reads.iter().any(|r| r == "property:upstream_peer_id"),
        "{reads:?}"
    );
    assert!(
        !reads.iter().any(|r| r == "property:upstream_peer"),
        "{reads:?}"
    );
    let (labels, value) = m.one("istio_requests_total");
    assert_eq!(labels["upstream_proxy_version"], "1.5-dev");
    assert_eq!(value, 2);
}
