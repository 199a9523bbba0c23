//! Istio's HTTP/gRPC stats e2e scenarios, ported to the logic level (stats-spec §9). Each test
//! names the Istio test and expected-metric file it ports; expected labels are copied from those
//! files (`istio/proxy` `testdata/metric/*.yaml.tmpl`), values from the test parameters.

mod common;

use common::*;
use proxy_attributes::host::fake::FakeHost;
use proxy_attributes::host::HeaderMap;
use stats_plugin::{Direction, Stream};

const PORT: u16 = 19090;

/// Ports `TestStatsPayload/Default` client side (`P17:test/envoye2e/stats_plugin/stats_test.go:82-94`,
/// `testdata/metric/client_request_total.yaml.tmpl`), 10 × GET / → 200.
#[test]
fn default_http_client_requests_total() {
    let host = client_http(PORT);
    let (mut plugin, mut m) = configured(
        Direction::Outbound,
        &host,
        r#"{"debug":"false","stat_prefix":"istio"}"#,
    );
    for _ in 0..10 {
        run_http(&mut plugin, &host, &mut m);
    }
    let (labels, value) = m.one("istio_requests_total");
    assert_eq!(labels, client_request_total_labels());
    assert_eq!(value, 10);
    // Histograms: 12 ms, 560 and 118 bytes per request (§5.6 illustrative values), 25 labels.
    let d = m.histogram("istio_request_duration_milliseconds");
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].0, client_request_total_labels());
    assert_eq!(d[0].1, vec![12; 10]);
    assert_eq!(m.histogram("istio_request_bytes")[0].1, vec![560; 10]);
    assert_eq!(m.histogram("istio_response_bytes")[0].1, vec![118; 10]);
    // gRPC and TCP metrics are not resolved for plain HTTP.
    assert!(m.series("istio_request_messages_total").is_empty());
    assert!(m.series("istio_tcp_connections_opened_total").is_empty());
    // §5.6: one miss, nine hits not yet flushed (flushed per 100).
    assert_eq!(
        m.counters["wasm_filter.stats_filter.cache.miss.metric_cache_count"],
        1
    );
    assert_eq!(
        m.counters["wasm_filter.stats_filter.cache.hit.metric_cache_count"],
        0
    );
}

/// The stat name keeps Istio's slot order (`STD_ISTIO_DIMENSIONS`, §3.1/§5.1).
#[test]
fn stat_name_is_in_istio_slot_order() {
    let host = client_http(PORT);
    let (mut plugin, mut m) = configured(Direction::Outbound, &host, "{}");
    run_http(&mut plugin, &host, &mut m);
    let name = m
        .istio_names()
        .into_iter()
        .find(|n| n.ends_with("istio_requests_total"))
        .unwrap()
        .to_string();
    assert!(name.starts_with(
        "reporter=.=source;.;source_workload=.=productpage-v1;.;source_workload_namespace=.=default;.;source_principal=.=unknown;.;"
    ));
    assert!(name.ends_with(
        "request_protocol=.=http;.;response_flags=.=-;.;connection_security_policy=.=unknown;.;response_code=.=200;.;grpc_response_status=.=;.;istio_requests_total"
    ));
    assert_eq!(parse(&name).1.len(), 25);
}

/// Ports `TestStatsPayload/Default` server side (`server_request_total.yaml.tmpl`) and
/// `testdata/metric/istio_build.yaml`.
#[test]
fn default_http_server_requests_total_and_istio_build() {
    let host = server_http(PORT);
    let (mut plugin, mut m) = configured(
        Direction::Inbound,
        &host,
        r#"{"debug":"false","stat_prefix":"istio","disable_host_header_fallback":true}"#,
    );
    for _ in 0..10 {
        run_http(&mut plugin, &host, &mut m);
    }
    let (labels, value) = m.one("istio_requests_total");
    assert_eq!(labels, server_request_total_labels());
    assert_eq!(value, 10);
    // istio_build{component="proxy",tag="1.5-dev"} 1, encoded with the SDK's `.` separators.
    assert_eq!(m.gauges.len(), 1);
    assert_eq!(m.gauges["component.proxy.tag.1.5-dev;.istio_build"], 1);
}

/// Ports `TestStatsPayload/UseHostHeader` (`stats_test.go:110-119`, `host_header_fallback.yaml.tmpl`):
/// no cluster metadata, fallback enabled → the Host header.
#[test]
fn host_header_fallback_client() {
    let h = with_local(FakeHost::new(), &client_node());
    let h = with_peer(h, Direction::Outbound, "server", &server_node());
    let host = http_common(h, PORT)
        .with_str(&["cluster_name"], "server-outbound-cluster")
        .with_str(&["route_name"], "client_route");
    let (mut plugin, mut m) = configured(Direction::Outbound, &host, "{}");
    for _ in 0..10 {
        run_http(&mut plugin, &host, &mut m);
    }
    let mut expected = client_request_total_labels();
    expected.insert("destination_service".into(), format!("127.0.0.1:{PORT}"));
    expected.insert(
        "destination_service_name".into(),
        format!("127.0.0.1:{PORT}"),
    );
    assert_eq!(m.one("istio_requests_total"), (expected, 10));
}

/// Ports `TestStatsPayload/DisableHostHeader` client (`client_disable_host_header_fallback.yaml.tmpl`).
#[test]
fn disable_host_header_fallback_client() {
    let h = with_local(FakeHost::new(), &client_node());
    let h = with_peer(h, Direction::Outbound, "server", &server_node());
    let host = http_common(h, PORT).with_str(&["cluster_name"], "server-outbound-cluster");
    for config in [
        r#"{"disable_host_header_fallback":true}"#,
        r#"{"disable_host_header_fallback":"true"}"#,
        r#"{"disableHostHeaderFallback":true}"#,
    ] {
        let (mut plugin, mut m) = configured(Direction::Outbound, &host, config);
        for _ in 0..10 {
            run_http(&mut plugin, &host, &mut m);
        }
        let mut expected = client_request_total_labels();
        expected.insert("destination_service".into(), "unknown".into());
        expected.insert("destination_service_name".into(), "unknown".into());
        assert_eq!(m.one("istio_requests_total"), (expected, 10), "{config}");
    }
}

/// Ports `TestStatsPayload/DisableHostHeader` server (`server_disable_host_header_fallback.yaml.tmpl`,
/// ElideServerMetadata): the local canonical name.
#[test]
fn disable_host_header_fallback_server() {
    let h = with_local(FakeHost::new(), &server_node());
    let h = with_peer(h, Direction::Inbound, "client", &client_node());
    let host = http_common(h, PORT)
        .with_str(&["cluster_name"], "server-inbound-cluster")
        .with_bool(&["connection", "mtls"], false);
    let (mut plugin, mut m) = configured(
        Direction::Inbound,
        &host,
        r#"{"disable_host_header_fallback":true}"#,
    );
    for _ in 0..10 {
        run_http(&mut plugin, &host, &mut m);
    }
    let mut expected = server_request_total_labels();
    expected.insert("destination_service".into(), "ratings".into());
    expected.insert("destination_service_name".into(), "ratings".into());
    assert_eq!(m.one("istio_requests_total"), (expected, 10));
}

fn grpc(h: FakeHost, status: i64) -> FakeHost {
    h.with_header(
        HeaderMap::RequestHeaders,
        "content-type",
        "application/grpc",
    )
    .with_i64(&["response", "grpc_status"], status)
    .with_str(&["request", "protocol"], "HTTP/2")
}

/// Ports `TestStatsGrpc` (`stats_test.go:289-340`): PERMISSION_DENIED over HTTP 200, both sides.
#[test]
fn grpc_unary_requests_total() {
    let host = grpc(client_http(PORT), 7);
    let (mut plugin, mut m) = configured(Direction::Outbound, &host, "{}");
    for _ in 0..10 {
        run_http(&mut plugin, &host, &mut m);
    }
    let mut expected = client_request_total_labels();
    expected.insert("request_protocol".into(), "grpc".into());
    expected.insert("grpc_response_status".into(), "7".into());
    assert_eq!(m.one("istio_requests_total"), (expected, 10));

    let host = grpc(server_http(PORT), 7);
    let (mut plugin, mut m) = configured(Direction::Inbound, &host, "{}");
    for _ in 0..10 {
        run_http(&mut plugin, &host, &mut m);
    }
    let mut expected = server_request_total_labels();
    expected.insert("request_protocol".into(), "grpc".into());
    expected.insert("grpc_response_status".into(), "7".into());
    assert_eq!(m.one("istio_requests_total"), (expected, 10));
}

/// A gRPC stream without grpc-status: the default UNKNOWN (2) (`context.cc:422-426`).
#[test]
fn grpc_status_defaults_to_unknown() {
    let host = client_http(PORT).with_header(
        HeaderMap::RequestHeaders,
        "content-type",
        "application/grpc",
    );
    let (mut plugin, mut m) = configured(Direction::Outbound, &host, "{}");
    run_http(&mut plugin, &host, &mut m);
    assert_eq!(m.one("istio_requests_total").0["grpc_response_status"], "2");
}

/// Ports `TestStatsGrpcStream` (`stats_test.go:342-416`, `client_request_messages.yaml.tmpl`,
/// `client_config_grpc.yaml.tmpl`): message counters are reported on ticks as deltas (3/13 mid-stream),
/// and the final delta at log (8/27 after close). They carry the 20 peer labels plus the custom one.
#[test]
fn grpc_stream_message_counts_client() {
    let config = r#"{"tcp_reporting_duration":"1s","metrics":[{"dimensions":{"configurable_metric_a":"node.metadata.LABELS.version"}}]}"#;
    let base = || grpc(client_http(PORT), 0);
    let host = base();
    let mut plugin = stats_plugin::StatsPlugin::new(Direction::Outbound);
    let mut m = FakeMetrics::default();
    assert_eq!(
        plugin.configure(&host, &mut m, config.as_bytes()),
        Some(1000)
    );
    let mut s = Stream::new();
    plugin.on_request_headers(&host, &mut s);
    // Ticks read the grpc_stats filter state as it grows.
    for state in ["1,5", "3,13"] {
        let tick_host = base().with_str(&["filter_state", "envoy.filters.http.grpc_stats"], state);
        plugin.report(&tick_host, &mut m, &mut s, false);
    }
    let mut expected = client_request_total_labels();
    for k in [
        "request_protocol",
        "response_code",
        "grpc_response_status",
        "response_flags",
        "connection_security_policy",
    ] {
        expected.remove(k);
    }
    expected.insert("configurable_metric_a".into(), "v1".into());
    assert_eq!(m.one("istio_request_messages_total"), (expected.clone(), 3));
    assert_eq!(
        m.one("istio_response_messages_total"),
        (expected.clone(), 13)
    );
    // requests_total is not recorded mid-stream.
    assert!(m
        .series("istio_requests_total")
        .iter()
        .all(|(_, v)| *v == 0));

    let end_host = base().with_str(&["filter_state", "envoy.filters.http.grpc_stats"], "8,27");
    plugin.on_log(&end_host, &mut m, &mut s);
    assert_eq!(m.one("istio_request_messages_total"), (expected.clone(), 8));
    assert_eq!(m.one("istio_response_messages_total"), (expected, 27));
}

/// Same on the server side (`server_request_messages.yaml.tmpl`): 20 labels, no custom tag.
#[test]
fn grpc_stream_message_counts_server() {
    let base = || grpc(server_http(PORT), 0);
    let host = base();
    let (mut plugin, mut m) = configured(
        Direction::Inbound,
        &host,
        r#"{"tcp_reporting_duration":"1s"}"#,
    );
    let mut s = Stream::new();
    plugin.on_request_headers(&host, &mut s);
    let tick = base().with_str(&["filter_state", "envoy.filters.http.grpc_stats"], "3,13");
    plugin.report(&tick, &mut m, &mut s, false);
    let mut expected = server_request_total_labels();
    for k in [
        "request_protocol",
        "response_code",
        "grpc_response_status",
        "response_flags",
        "connection_security_policy",
    ] {
        expected.remove(k);
    }
    assert_eq!(expected.len(), 20);
    assert_eq!(m.one("istio_request_messages_total"), (expected.clone(), 3));
    let end = base().with_str(&["filter_state", "envoy.filters.http.grpc_stats"], "8,27");
    plugin.on_log(&end, &mut m, &mut s);
    assert_eq!(m.one("istio_request_messages_total"), (expected.clone(), 8));
    assert_eq!(m.one("istio_response_messages_total"), (expected, 27));
}

/// Ports `TestStatsEndpointLabels` (`stats_test.go:616-659`,
/// `client_request_total_endpoint_labels.yaml.tmpl`): no MX, the destination comes from the
/// endpoint metadata, so app and version are unknown.
#[test]
fn endpoint_labels_fallback_client_without_mx() {
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
    let host = http_common(h, PORT).with_str(&["cluster_name"], "server-outbound-cluster");
    let (mut plugin, mut m) = configured(Direction::Outbound, &host, "{}");
    for _ in 0..10 {
        run_http(&mut plugin, &host, &mut m);
    }
    let mut expected = client_request_total_labels();
    expected.insert("destination_app".into(), "unknown".into());
    expected.insert("destination_version".into(), "unknown".into());
    assert_eq!(m.one("istio_requests_total"), (expected, 10));
}

/// The 1.16+ endpoint fallback needs 5 parts: a 4-part value is ignored by default
/// (stats-spec §6.5), but accepted when the local proxy is 1.13–1.15 (ISTIO_VERSION).
#[test]
fn endpoint_labels_need_five_parts_by_default() {
    let h = with_local(FakeHost::new(), &client_node());
    let h = with_services(h).with_str(
        &[
            "upstream_host_metadata",
            "filter_metadata",
            "istio",
            "workload",
        ],
        "ratings-v1;default;ratings;version-1",
    );
    let host = http_common(h, PORT);
    let (mut plugin, mut m) = configured(Direction::Outbound, &host, "{}");
    run_http(&mut plugin, &host, &mut m);
    let labels = m.one("istio_requests_total").0;
    assert_eq!(labels["destination_workload"], "unknown");
    assert_eq!(labels["destination_canonical_revision"], "latest");

    let mut local = client_node();
    local.istio_version = "1.15.7".into();
    let h = with_local(FakeHost::new(), &local);
    let h = with_services(h).with_str(
        &[
            "upstream_host_metadata",
            "filter_metadata",
            "istio",
            "workload",
        ],
        "ratings-v1;default;ratings;version-1",
    );
    let host = http_common(h, PORT);
    let (mut plugin, mut m) = configured(Direction::Outbound, &host, "{}");
    run_http(&mut plugin, &host, &mut m);
    let labels = m.one("istio_requests_total").0;
    assert_eq!(labels["destination_workload"], "ratings-v1");
    assert_eq!(labels["destination_canonical_revision"], "version-1");
    // No 5th part: the cluster is empty, hence unknown.
    assert_eq!(labels["destination_cluster"], "unknown");
}

/// §3.7: on a 1.13 proxy the DF bit is printed as the decimal bitmask.
#[test]
fn response_flags_follow_the_proxy_version() {
    let flags = 0x2 | 0x4000000;
    let host = client_http(PORT).with_i64(&["response", "flags"], flags);
    let (mut plugin, mut m) = configured(Direction::Outbound, &host, "{}");
    run_http(&mut plugin, &host, &mut m);
    assert_eq!(m.one("istio_requests_total").0["response_flags"], "UH,DF");

    let mut local = client_node();
    local.istio_version = "1.13.4".into();
    let h = with_peer(
        with_local(FakeHost::new(), &local),
        Direction::Outbound,
        "server",
        &server_node(),
    );
    let host = with_services(http_common(h, PORT)).with_i64(&["response", "flags"], flags);
    let (mut plugin, mut m) = configured(Direction::Outbound, &host, "{}");
    run_http(&mut plugin, &host, &mut m);
    assert_eq!(
        m.one("istio_requests_total").0["response_flags"],
        "UH,67108866"
    );
}

/// Ports `TestStatsPayload` with RBAC deny (`stats_test.go:505-552`): 403, flags `-`.
#[test]
fn rbac_denied_403_server() {
    let host = server_http(PORT).with_i64(&["response", "code"], 403);
    let (mut plugin, mut m) = configured(Direction::Inbound, &host, "{}");
    run_http(&mut plugin, &host, &mut m);
    let labels = m.one("istio_requests_total").0;
    assert_eq!(labels["response_code"], "403");
    assert_eq!(labels["response_flags"], "-");
}

/// Blackhole/passthrough route and cluster names override destination_service_name (§3.3).
#[test]
fn passthrough_and_blackhole_names() {
    let host = client_http(PORT).with_str(&["route_name"], "allow_any");
    let (mut plugin, mut m) = configured(Direction::Outbound, &host, "{}");
    run_http(&mut plugin, &host, &mut m);
    let l = m.one("istio_requests_total").0;
    assert_eq!(l["destination_service_name"], "PassthroughCluster");
    assert_eq!(l["destination_service"], format!("127.0.0.1:{PORT}"));

    let host = client_http(PORT).with_str(&["cluster_name"], "BlackHoleCluster");
    let (mut plugin, mut m) = configured(Direction::Outbound, &host, "{}");
    run_http(&mut plugin, &host, &mut m);
    assert_eq!(
        m.one("istio_requests_total").0["destination_service_name"],
        "BlackHoleCluster"
    );
}

/// §3.4: an empty local label becomes `unknown` and a missing response.flags is `unknown`.
#[test]
fn empty_values_become_unknown() {
    let mut local = server_node();
    local.labels = Some(vec![("app".into(), "ratings".into())]);
    let h = with_local(FakeHost::new(), &local);
    let h = with_peer(h, Direction::Inbound, "client", &client_node());
    let host = with_services(h)
        .with_i64(&["response", "code"], 200)
        .with_bool(&["connection", "mtls"], true);
    let (mut plugin, mut m) = configured(Direction::Inbound, &host, "{}");
    run_http(&mut plugin, &host, &mut m);
    let l = m.one("istio_requests_total").0;
    assert_eq!(l["destination_version"], "unknown");
    // No canonical-name label: the workload name.
    assert_eq!(l["destination_canonical_service"], "ratings-v1");
    assert_eq!(l["destination_canonical_revision"], "latest");
    assert_eq!(l["response_flags"], "unknown");
    assert_eq!(l["connection_security_policy"], "mutual_tls");
}

/// Ports `TestStatsPayload` config-parsing expectation for bad JSON (§1.4, 1.14+): no istio
/// metric and no `istio_build`, but the cache counters exist with 0.
#[test]
fn invalid_json_config_emits_nothing() {
    for config in ["", "[]", "\"x\"", "{not json", "{\"metrics\": [}"] {
        let host = client_http(PORT);
        let (mut plugin, mut m) = configured(Direction::Outbound, &host, config);
        assert!(!plugin.is_initialized());
        for _ in 0..3 {
            run_http(&mut plugin, &host, &mut m);
        }
        assert!(m.istio_names().is_empty(), "{config:?}: {:?}", m.names);
        assert!(m.gauges.is_empty());
        assert_eq!(
            m.counters["wasm_filter.stats_filter.cache.hit.metric_cache_count"],
            0
        );
        assert_eq!(
            m.counters["wasm_filter.stats_filter.cache.miss.metric_cache_count"],
            0
        );
    }
}

/// §7.1: hits are flushed to `metric_cache_count{cache="hit"}` every 100.
#[test]
fn cache_hits_flush_every_hundred() {
    let host = client_http(PORT);
    let (mut plugin, mut m) = configured(Direction::Outbound, &host, "{}");
    for _ in 0..201 {
        run_http(&mut plugin, &host, &mut m);
    }
    assert_eq!(
        m.counters["wasm_filter.stats_filter.cache.miss.metric_cache_count"],
        1
    );
    assert_eq!(
        m.counters["wasm_filter.stats_filter.cache.hit.metric_cache_count"],
        200
    );
    // One define per metric on the miss, none afterwards (2 cache counters + build gauge + 4).
    assert_eq!(m.defines, 3 + 4);
    assert_eq!(plugin.cache_len(), 1);
}
