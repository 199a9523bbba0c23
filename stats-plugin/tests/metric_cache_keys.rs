//! The metric-id cache key leaves the local node out and keys a peer from the peer cache by an
//! id of its dimension values (`StatsPlugin::report`). These scenarios prove the key still tells
//! apart everything the labels tell apart, and that equal labels share one cached entry however
//! the peer arrived. Expected values are counted by hand from the streams each test runs.

mod common;

use common::*;
use proxy_attributes::host::fake::FakeHost;
use proxy_attributes::host::HeaderMap;
use proxy_attributes::peer::PeerNode;
use stats_plugin::Direction;

const PORT: u16 = 19090;
const MISSES: &str = "wasm_filter.stats_filter.cache.miss.metric_cache_count";

/// `server_node()` with another version label and workload (a second deployment).
fn server_v2() -> PeerNode {
    let mut n = server_node();
    n.workload_name = "ratings-v2".into();
    n.name = "ratings-v2-5d8f7b6c9-abcde".into();
    if let Some(labels) = n.labels.as_mut() {
        for (k, v) in labels.iter_mut() {
            if k == "version" {
                *v = "v2".into();
            }
        }
    }
    n
}

/// The outbound client host of `client_http`, with the upstream peer `peer` under peer id `id`.
fn client_to(id: &str, peer: &PeerNode) -> FakeHost {
    let h = with_local(FakeHost::new(), &client_node());
    let h = with_peer(h, Direction::Outbound, id, peer);
    let h = with_services(h);
    http_common(h, PORT)
        .with_str(&["cluster_name"], "server-outbound-cluster")
        .with_str(&["route_name"], "client_route")
}

fn requests_by_destination_workload(m: &FakeMetrics) -> Vec<(String, String, u64)> {
    let mut out: Vec<(String, String, u64)> = m
        .series("istio_requests_total")
        .into_iter()
        .map(|(labels, v)| {
            (
                labels["destination_workload"].clone(),
                labels["destination_version"].clone(),
                v,
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn distinct_peers_get_distinct_series_and_equal_peers_share_one_entry() {
    let v1 = client_to("ratings-v1-pod-a", &server_node());
    let v2 = client_to("ratings-v2-pod-a", &server_v2());
    // Another pod of ratings-v1: a different peer id, the same dimension values.
    let v1_other_pod = client_to("ratings-v1-pod-b", &server_node());
    let (mut plugin, mut m) = configured(Direction::Outbound, &v1, "{}");
    for host in [&v1, &v1, &v2, &v2, &v2, &v1_other_pod, &v1] {
        run_http(&mut plugin, host, &mut m);
    }
    // v1: streams 1, 2, 6 (other pod, same labels) and 7 = 4; v2: streams 3-5 = 3.
    assert_eq!(
        requests_by_destination_workload(&m),
        vec![
            ("ratings-v1".to_string(), "v1".to_string(), 4),
            ("ratings-v2".to_string(), "v2".to_string(), 3),
        ]
    );
    // New label sets: v1 (stream 1) and v2 (stream 3). Stream 6 is a new peer id with v1's
    // values: it must hit v1's entry, not define the series again.
    assert_eq!(m.counters.get(MISSES).copied(), Some(2));
}

#[test]
fn a_peer_from_the_header_and_the_same_peer_from_filter_state_share_series() {
    // The same server node, once from metadata-exchange filter state (cached, keyed by id) and
    // once from the `x-envoy-peer-metadata` response header (no filter state: keyed by values).
    let from_filter_state = client_to("ratings-v1-pod-a", &server_node());
    let h = with_local(FakeHost::new(), &client_node());
    let h = with_services(h);
    let from_header = http_common(h, PORT)
        .with_str(&["cluster_name"], "server-outbound-cluster")
        .with_str(&["route_name"], "client_route")
        .with_header(
            HeaderMap::ResponseHeaders,
            "x-envoy-peer-metadata",
            &server_node().header_value(),
        );
    let (mut plugin, mut m) = configured(Direction::Outbound, &from_filter_state, "{}");
    for host in [
        &from_filter_state,
        &from_header,
        &from_filter_state,
        &from_header,
    ] {
        run_http(&mut plugin, host, &mut m);
    }
    // One label set, four requests; the two keys (id vs. values) each miss once, and both name
    // the same series.
    assert_eq!(
        requests_by_destination_workload(&m),
        vec![("ratings-v1".to_string(), "v1".to_string(), 4)]
    );
    assert_eq!(m.counters.get(MISSES).copied(), Some(2));
}

#[test]
fn inbound_keys_tell_downstream_peers_apart() {
    let from = |id: &str, peer: &PeerNode| {
        let h = with_local(FakeHost::new(), &server_node());
        let h = with_peer(h, Direction::Inbound, id, peer);
        let h = with_services(h);
        http_common(h, PORT)
            .with_str(&["cluster_name"], "server-inbound-cluster")
            .with_str(&["route_name"], "server_route")
            .with_bool(&["connection", "mtls"], false)
    };
    // The same two clients without metadata-exchange filter state, announced by the
    // `x-envoy-peer-metadata` request header: these peers have no id, so their values are in
    // the key.
    let by_header = |peer: &PeerNode| {
        let h = with_local(FakeHost::new(), &server_node());
        let h = with_services(h);
        http_common(h, PORT)
            .with_str(&["cluster_name"], "server-inbound-cluster")
            .with_str(&["route_name"], "server_route")
            .with_bool(&["connection", "mtls"], false)
            .with_header(
                HeaderMap::RequestHeaders,
                "x-envoy-peer-metadata",
                &peer.header_value(),
            )
    };
    let mut other_client = client_node();
    other_client.workload_name = "reviews-v3".into();
    let a = from("productpage-pod", &client_node());
    let b = from("reviews-pod", &other_client);
    let a_header = by_header(&client_node());
    let b_header = by_header(&other_client);
    let (mut plugin, mut m) = configured(Direction::Inbound, &a, "{}");
    for host in [&a, &b, &a, &b_header, &a_header, &b_header] {
        run_http(&mut plugin, host, &mut m);
    }
    let mut by_source: Vec<(String, u64)> = m
        .series("istio_requests_total")
        .into_iter()
        .map(|(labels, v)| (labels["source_workload"].clone(), v))
        .collect();
    by_source.sort();
    // productpage-v1: streams 1, 3 and 5; reviews-v3: streams 2, 4 and 6.
    assert_eq!(
        by_source,
        vec![
            ("productpage-v1".to_string(), 3),
            ("reviews-v3".to_string(), 3)
        ]
    );
}
