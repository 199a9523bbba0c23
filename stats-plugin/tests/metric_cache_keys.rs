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

/// The request-outcome labels (protocol, response_flags, connection_security_policy,
/// response_code, grpc_response_status) are keyed by what they are formatted from. Each stream
/// below differs from the first in exactly one of those inputs, so each must get its own
/// series with its own label text; repeating a stream must hit its entry.
#[test]
fn outcome_labels_are_told_apart_by_their_inputs() {
    let base = server_http(PORT);
    let flags_uh = server_http(PORT).with_i64(&["response", "flags"], 0x2);
    let flags_uh_df = server_http(PORT).with_i64(&["response", "flags"], 0x2 | 0x400_0000);
    let code_503 = server_http(PORT).with_i64(&["response", "code"], 503);
    let mtls = server_http(PORT).with_bool(&["connection", "mtls"], true);
    let no_flags = server_http(PORT).without_property(&["response", "flags"]);
    let grpc = |status: i64| {
        server_http(PORT)
            .with_header(
                HeaderMap::RequestHeaders,
                "content-type",
                "application/grpc",
            )
            .with_i64(&["response", "grpc_status"], status)
    };
    let (grpc_ok, grpc_unavailable) = (grpc(0), grpc(14));
    let (mut plugin, mut m) = configured(Direction::Inbound, &base, "{}");
    let streams = [
        &base,
        &flags_uh,
        &flags_uh_df,
        &code_503,
        &mtls,
        &no_flags,
        &grpc_ok,
        &grpc_unavailable,
        &base,
        &grpc_unavailable,
        &flags_uh,
    ];
    for host in streams {
        run_http(&mut plugin, host, &mut m);
    }
    let mut got: Vec<(String, String, String, String, String, String, u64)> = m
        .series("istio_requests_total")
        .into_iter()
        .map(|(l, v)| {
            let get = |k: &str| l[k].clone();
            (
                get("request_protocol"),
                get("response_flags"),
                get("connection_security_policy"),
                get("response_code"),
                get("grpc_response_status"),
                get("reporter"),
                v,
            )
        })
        .collect();
    got.sort();
    let row = |p: &str, f: &str, s: &str, c: &str, g: &str, v: u64| {
        (
            p.to_string(),
            f.to_string(),
            s.to_string(),
            c.to_string(),
            g.to_string(),
            "destination".to_string(),
            v,
        )
    };
    // By hand: base ×2, UH ×2, grpc 14 ×2, every other stream once. Flags render as Istio
    // 1.14+ does (DF known); a missing flags property is `unknown`; HTTP has an empty gRPC
    // status; the gRPC streams' HTTP code is the base 200.
    let mut want = vec![
        row("grpc", "-", "none", "200", "0", 1),
        row("grpc", "-", "none", "200", "14", 2),
        row("http", "-", "mutual_tls", "200", "", 1),
        row("http", "-", "none", "200", "", 2),
        row("http", "-", "none", "503", "", 1),
        row("http", "UH", "none", "200", "", 2),
        row("http", "UH,DF", "none", "200", "", 1),
        row("http", "unknown", "none", "200", "", 1),
    ];
    want.sort();
    assert_eq!(got, want);
    // Eight label sets, eight definitions; the three repeats hit.
    assert_eq!(m.counters.get(MISSES).copied(), Some(8));
}
