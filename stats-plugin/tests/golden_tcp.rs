//! Istio's TCP stats scenarios (`P17:test/envoye2e/tcp_metadata_exchange/tcp_metadata_exchange_test.go`,
//! `testdata/metric/tcp_*.yaml.tmpl`, stats-spec §9 #16–#18), at the logic level: 10
//! connections, each receiving 6 bytes from downstream and sending 12 upstream
//! (received 60, sent 120 in the expected files).

mod common;

use common::*;
use proxy_attributes::host::fake::FakeHost;
use stats_plugin::{Direction, StatsPlugin, Stream};
use std::collections::BTreeMap;

const CLIENT_SAN: &str = "spiffe://cluster.local/ns/default/sa/client";
const SERVER_SAN: &str = "spiffe://cluster.local/ns/default/sa/server";

fn client_tcp() -> FakeHost {
    let h = with_local(FakeHost::new(), &client_node());
    with_services(h)
        .with_str(
            &["cluster_name"],
            "outbound|9080||server.default.svc.cluster.local",
        )
        .with_str(&["upstream", "uri_san_peer_certificate"], SERVER_SAN)
        .with_str(&["upstream", "uri_san_local_certificate"], CLIENT_SAN)
        .with_i64(&["response", "flags"], 0)
}

fn server_tcp() -> FakeHost {
    let h = with_local(FakeHost::new(), &server_node());
    with_services(h)
        .with_str(&["cluster_name"], "inbound|9080||")
        .with_bool(&["connection", "mtls"], true)
        .with_str(&["connection", "uri_san_peer_certificate"], CLIENT_SAN)
        .with_str(&["connection", "uri_san_local_certificate"], SERVER_SAN)
        .with_i64(&["response", "flags"], 0)
}

/// `tcp_client_sent_bytes.yaml.tmpl` labels (23).
fn tcp_client_labels() -> BTreeMap<String, String> {
    let mut l = client_request_total_labels();
    l.remove("response_code");
    l.remove("grpc_response_status");
    l.insert("request_protocol".into(), "tcp".into());
    l.insert("source_principal".into(), CLIENT_SAN.into());
    l.insert("destination_principal".into(), SERVER_SAN.into());
    l
}

/// `tcp_server_connection_open.yaml.tmpl` labels (23).
fn tcp_server_labels() -> BTreeMap<String, String> {
    let mut l = tcp_client_labels();
    l.insert("reporter".into(), "destination".into());
    l.insert("connection_security_policy".into(), "mutual_tls".into());
    l
}

/// One connection: open, data, a tick before and after metadata exchange, close.
fn connection(
    plugin: &mut StatsPlugin,
    m: &mut FakeMetrics,
    before_mx: &FakeHost,
    after_mx: &FakeHost,
) {
    let mut s = Stream::new();
    plugin.on_new_connection(&mut s);
    plugin.on_downstream_data(&mut s, 2);
    plugin.on_upstream_data(&mut s, 4);
    // MX not done yet: the tick reports nothing (maybeWaiting).
    plugin.report(before_mx, m, &mut s, false);
    plugin.on_downstream_data(&mut s, 4);
    plugin.on_upstream_data(&mut s, 8);
    plugin.report(after_mx, m, &mut s, false);
    plugin.on_log(after_mx, m, &mut s);
}

fn assert_all_tcp(m: &FakeMetrics, labels: &BTreeMap<String, String>) {
    assert_eq!(
        m.one("istio_tcp_connections_opened_total"),
        (labels.clone(), 10)
    );
    assert_eq!(
        m.one("istio_tcp_connections_closed_total"),
        (labels.clone(), 10)
    );
    assert_eq!(
        m.one("istio_tcp_received_bytes_total"),
        (labels.clone(), 60)
    );
    assert_eq!(m.one("istio_tcp_sent_bytes_total"), (labels.clone(), 120));
    assert!(m.series("istio_requests_total").is_empty());
}

/// Ports `TestTCPMetadataExchange` client side (`tcp_client_*.yaml.tmpl`).
#[test]
fn tcp_mx_client_all_tcp_metrics() {
    let before = client_tcp();
    let after = with_peer(client_tcp(), Direction::Outbound, "server", &server_node());
    let (mut plugin, mut m) = configured(Direction::Outbound, &before, "{}");
    // Custom metrics are HTTP/gRPC only (§4.1).
    let (mut with_def, mut m2) = configured(
        Direction::Outbound,
        &before,
        r#"{"definitions":[{"name":"d","value":"1"}]}"#,
    );
    for _ in 0..10 {
        connection(&mut plugin, &mut m, &before, &after);
        connection(&mut with_def, &mut m2, &before, &after);
    }
    assert_all_tcp(&m, &tcp_client_labels());
    assert!(!m2.counters.contains_key("istio_d"));
}

/// Ports `TestTCPMetadataExchange` server side (`tcp_server_*.yaml.tmpl`): mutual_tls.
#[test]
fn tcp_mx_server_all_tcp_metrics() {
    let before = server_tcp();
    let after = with_peer(server_tcp(), Direction::Inbound, "client", &client_node());
    let (mut plugin, mut m) = configured(Direction::Inbound, &before, "{}");
    for _ in 0..10 {
        connection(&mut plugin, &mut m, &before, &after);
    }
    assert_all_tcp(&m, &tcp_server_labels());
}

/// The first tick after MX reports `opened` and the bytes so far; the close adds the rest and
/// `closed` (§2.2, swap-to-zero accumulators).
#[test]
fn tcp_periodic_reports_are_deltas() {
    let before = client_tcp();
    let after = with_peer(client_tcp(), Direction::Outbound, "server", &server_node());
    let (mut plugin, mut m) = configured(Direction::Outbound, &before, "{}");
    let mut s = Stream::new();
    plugin.on_new_connection(&mut s);
    plugin.on_downstream_data(&mut s, 5);
    plugin.report(&before, &mut m, &mut s, false);
    assert!(m.istio_names().is_empty(), "no report while waiting for MX");
    plugin.report(&after, &mut m, &mut s, false);
    let l = tcp_client_labels();
    assert_eq!(m.one("istio_tcp_connections_opened_total"), (l.clone(), 1));
    assert_eq!(m.one("istio_tcp_received_bytes_total"), (l.clone(), 5));
    // Resolved (defined) but zero: counters of 0 are not recorded, the series exists.
    assert_eq!(m.one("istio_tcp_sent_bytes_total"), (l.clone(), 0));
    assert_eq!(m.one("istio_tcp_connections_closed_total"), (l.clone(), 0));
    plugin.on_upstream_data(&mut s, 7);
    plugin.report(&after, &mut m, &mut s, false);
    plugin.on_downstream_data(&mut s, 1);
    plugin.on_log(&after, &mut m, &mut s);
    assert_eq!(m.one("istio_tcp_connections_opened_total"), (l.clone(), 1));
    assert_eq!(m.one("istio_tcp_received_bytes_total"), (l.clone(), 6));
    assert_eq!(m.one("istio_tcp_sent_bytes_total"), (l.clone(), 7));
    assert_eq!(m.one("istio_tcp_connections_closed_total"), (l, 1));
}

/// Ports `TestTCPMetadataNotFoundReporting` (`tcp_metadata_exchange_test.go:98-148`,
/// `tcp_server_connection_open_without_mx.yaml.tmpl`, Wasm variant): the MX filter writes the
/// "peer unknown" sentinel, so ticks report with unknown source labels.
#[test]
fn tcp_no_alpn_server_connections_opened() {
    let host = server_tcp().with_str(&["downstream_peer_id"], SENTINEL);
    let (mut plugin, mut m) = configured(Direction::Inbound, &host, "{}");
    for _ in 0..10 {
        let mut s = Stream::new();
        plugin.on_new_connection(&mut s);
        plugin.report(&host, &mut m, &mut s, false);
    }
    let mut expected = tcp_server_labels();
    for k in [
        "source_workload",
        "source_canonical_service",
        "source_workload_namespace",
        "source_app",
        "source_version",
        "source_cluster",
    ] {
        expected.insert(k.into(), "unknown".into());
    }
    expected.insert("source_canonical_revision".into(), "latest".into());
    assert_eq!(m.one("istio_tcp_connections_opened_total"), (expected, 10));
}

/// Without any TCP MX filter nothing is reported periodically; everything comes at close (§2.2).
#[test]
fn tcp_without_mx_reports_only_at_close() {
    let host = client_tcp();
    let (mut plugin, mut m) = configured(Direction::Outbound, &host, "{}");
    let mut s = Stream::new();
    plugin.on_new_connection(&mut s);
    plugin.on_downstream_data(&mut s, 3);
    for _ in 0..3 {
        plugin.report(&host, &mut m, &mut s, false);
    }
    assert!(m.istio_names().is_empty());
    plugin.on_log(&host, &mut m, &mut s);
    let l = m.one("istio_tcp_connections_opened_total").0;
    assert_eq!(l["destination_workload"], "unknown");
    assert_eq!(l["destination_canonical_revision"], "latest");
    assert_eq!(m.one("istio_tcp_received_bytes_total").1, 3);
    assert_eq!(m.one("istio_tcp_connections_closed_total").1, 1);
}

/// TCP never uses the Host-header fallback (`context.cc:514`) and a missing cluster metadata
/// gives `unknown` on outbound.
#[test]
fn tcp_destination_service_without_metadata() {
    let h = with_local(FakeHost::new(), &client_node());
    let host = h.with_str(&["request", "host"], "should-not-be-used");
    let (mut plugin, mut m) = configured(Direction::Outbound, &host, "{}");
    let mut s = Stream::new();
    plugin.on_new_connection(&mut s);
    plugin.on_log(&host, &mut m, &mut s);
    let l = m.one("istio_tcp_connections_closed_total").0;
    assert_eq!(l["destination_service"], "unknown");
    assert_eq!(l["destination_service_name"], "unknown");
    assert_eq!(l["response_flags"], "unknown");
}
