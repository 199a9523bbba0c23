//! Hostile or malformed inputs: never a panic, peer labels degrade to `unknown`.

mod common;

use common::*;
use proxy_attributes::host::fake::FakeHost;
use proxy_attributes::host::HeaderMap;
use proxy_attributes::peer::PeerNode;
use stats_plugin::{Direction, StatsPlugin, Stream};

const PORT: u16 = 8080;

fn client_without_peer() -> FakeHost {
    let h = with_local(FakeHost::new(), &client_node());
    with_services(http_common(h, PORT))
}

fn peer_labels_unknown(m: &FakeMetrics) {
    let l = m.one("istio_requests_total").0;
    for k in [
        "destination_workload",
        "destination_workload_namespace",
        "destination_app",
        "destination_version",
        "destination_canonical_service",
        "destination_cluster",
    ] {
        assert_eq!(l[k], "unknown", "{k}");
    }
    assert_eq!(l["destination_canonical_revision"], "latest");
}

/// Garbage in `wasm.upstream_peer` (truncated, random, empty-ish FlatBuffers): a found but empty
/// peer, every peer label `unknown`.
#[test]
fn garbage_flatnode_gives_unknown() {
    let good = server_node().to_flatbuffer();
    let mut inputs: Vec<Vec<u8>> = vec![
        vec![0xff; 64],
        vec![1, 2, 3],
        b"not a flatbuffer at all".to_vec(),
        good[..good.len() / 2].to_vec(),
    ];
    // Flip bytes of a valid buffer, one at a time.
    for i in (0..good.len()).step_by(7) {
        let mut b = good.clone();
        b[i] ^= 0xa5;
        inputs.push(b);
    }
    for (n, bytes) in inputs.iter().enumerate() {
        let host = client_without_peer()
            .with_str(&["upstream_peer_id"], "server")
            .with_property(&["upstream_peer"], bytes.clone());
        let (mut plugin, mut m) = configured(Direction::Outbound, &host, "{}");
        run_http(&mut plugin, &host, &mut m);
        if n < 4 {
            peer_labels_unknown(&m);
        } else {
            // A flipped byte may still verify; it must just not panic and produce one series.
            assert_eq!(m.series("istio_requests_total").len(), 1);
        }
    }
}

/// The `x-envoy-peer-metadata` header fallback (extension): a valid header gives the peer, a
/// broken one `unknown`; the filter state wins when present.
#[test]
fn peer_header_fallback() {
    let value = proxy_attributes::peer::struct_header_value(&client_node().to_struct());
    let host = with_local(FakeHost::new(), &server_node())
        .with_header(HeaderMap::RequestHeaders, "x-envoy-peer-metadata", &value)
        .with_i64(&["response", "code"], 200);
    let (mut plugin, mut m) = configured(Direction::Inbound, &host, "{}");
    run_http(&mut plugin, &host, &mut m);
    let l = m.one("istio_requests_total").0;
    assert_eq!(l["source_workload"], "productpage-v1");
    assert_eq!(l["source_app"], "productpage");

    for bad in ["%%%", "AAAA", "", "////////////"] {
        let host = with_local(FakeHost::new(), &server_node()).with_header(
            HeaderMap::RequestHeaders,
            "x-envoy-peer-metadata",
            bad,
        );
        let (mut plugin, mut m) = configured(Direction::Inbound, &host, "{}");
        run_http(&mut plugin, &host, &mut m);
        let l = m.one("istio_requests_total").0;
        assert_eq!(l["source_workload"], "unknown", "{bad:?}");
    }

    // Outbound: the response header; ignored once MX has stored a sentinel id.
    let value = proxy_attributes::peer::struct_header_value(&server_node().to_struct());
    let host = client_without_peer().with_header(
        HeaderMap::ResponseHeaders,
        "x-envoy-peer-metadata",
        &value,
    );
    let (mut plugin, mut m) = configured(Direction::Outbound, &host, "{}");
    run_http(&mut plugin, &host, &mut m);
    assert_eq!(
        m.one("istio_requests_total").0["destination_workload"],
        "ratings-v1"
    );
    let host = host.with_str(&["upstream_peer_id"], SENTINEL);
    let (mut plugin, mut m) = configured(Direction::Outbound, &host, "{}");
    run_http(&mut plugin, &host, &mut m);
    peer_labels_unknown(&m);
}

/// Hostile endpoint metadata strings.
#[test]
fn odd_endpoint_metadata() {
    for v in [";;;;", ";;;;;;;;;;;;", "a;b", "\u{0};\u{ffff};x;y;z", ""] {
        let host = client_without_peer().with_str(
            &[
                "upstream_host_metadata",
                "filter_metadata",
                "istio",
                "workload",
            ],
            v,
        );
        let (mut plugin, mut m) = configured(Direction::Outbound, &host, "{}");
        run_http(&mut plugin, &host, &mut m);
        assert_eq!(m.series("istio_requests_total").len(), 1, "{v:?}");
    }
}

/// Wrong-sized numeric attributes read as absent (the C++ SDK's exact-size rule), odd
/// grpc_stats filter state, non-UTF-8 strings.
#[test]
fn malformed_attributes() {
    let host = client_http(PORT)
        .with_property(&["response", "code"], vec![1, 2, 3])
        .with_property(&["response", "flags"], vec![9])
        .with_property(&["request", "duration"], vec![0xff; 9])
        .with_property(&["cluster_name"], vec![0xff, 0xfe])
        .with_header(
            HeaderMap::RequestHeaders,
            "content-type",
            "application/grpc",
        )
        .with_str(&["filter_state", "envoy.filters.http.grpc_stats"], "x,,1");
    let (mut plugin, mut m) = configured(Direction::Outbound, &host, "{}");
    run_http(&mut plugin, &host, &mut m);
    let l = m.one("istio_requests_total").0;
    assert_eq!(l["response_code"], "0");
    assert_eq!(l["response_flags"], "unknown");
    assert_eq!(
        m.histogram("istio_request_duration_milliseconds")[0].1,
        vec![0]
    );
    assert!(m
        .series("istio_request_messages_total")
        .iter()
        .all(|(_, v)| *v == 0));
}

/// Non-UTF-8 principals and service names (Envoy hands back whatever bytes the certificate or
/// cluster metadata held): the labels are the bytes as text with each invalid sequence replaced
/// by U+FFFD, like `String::from_utf8_lossy`. Two different invalid byte strings with the same
/// replaced text name the same series, so their requests add up in one value.
#[test]
fn non_utf8_principals_and_services_become_replacement_characters() {
    let host = |principal: &[u8]| {
        client_http(PORT)
            .with_property(
                &["upstream", "uri_san_peer_certificate"],
                principal.to_vec(),
            )
            .with_property(&SERVICE_HOST_PATH, b"svc\xc3.ns".to_vec())
    };
    // 0xff and 0xfe are each one invalid sequence: both read "spiffe://x/\u{fffd}".
    let (a, b) = (host(b"spiffe://x/\xff"), host(b"spiffe://x/\xfe"));
    let (mut plugin, mut m) = configured(Direction::Outbound, &a, "{}");
    for h in [&a, &b, &a] {
        run_http(&mut plugin, h, &mut m);
    }
    let (l, v) = m.one("istio_requests_total");
    assert_eq!(l["destination_principal"], "spiffe://x/\u{fffd}");
    // A truncated two-byte sequence before '.' is one replacement character too.
    assert_eq!(l["destination_service"], "svc\u{fffd}.ns");
    assert_eq!(v, 3);
}

/// A malformed `node.metadata` gives an empty local node: local labels `unknown`, and
/// `istio_build{tag="unknown"}`.
#[test]
fn malformed_local_node() {
    let h = FakeHost::new().with_property(&["node", "metadata"], vec![200, 0, 0, 0, 1]);
    let host = with_peer(
        with_services(http_common(h, PORT)),
        Direction::Outbound,
        "server",
        &server_node(),
    );
    let (mut plugin, mut m) = configured(Direction::Outbound, &host, "{}");
    run_http(&mut plugin, &host, &mut m);
    let l = m.one("istio_requests_total").0;
    assert_eq!(l["source_workload"], "unknown");
    assert_eq!(l["source_canonical_revision"], "latest");
    assert!(m
        .gauges
        .contains_key("component.proxy.tag.unknown;.istio_build"));
}

/// Configuration shapes that are wrong everywhere: parsed or refused, never a panic.
#[test]
fn config_shapes_never_panic() {
    let host = client_http(PORT);
    let configs = [
        r#"{"metrics":null,"definitions":{}}"#,
        r#"{"metrics":[1,"x",null,[],{"name":5,"drop":"maybe","tags_to_remove":"x"}]}"#,
        r#"{"metrics":[{"dimensions":{"a":"((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((1"}}]}"#,
        r#"{"definitions":[null,{"name":"x","value":"x(1,"}]}"#,
        r#"{"tcp_reporting_duration":15,"field_separator":1,"value_separator":[],"disable_host_header_fallback":"yes"}"#,
        r#"{"tcp_reporting_duration":"-inf"}"#,
        r#"{"metrics":[{"dimensions":{"x":"request.headers['a'] + 1"}}]}"#,
    ];
    for c in configs {
        let mut plugin = StatsPlugin::new(Direction::Inbound);
        let mut m = FakeMetrics::default();
        plugin.configure(&host, &mut m, c.as_bytes());
        let mut s = Stream::new();
        plugin.on_request_headers(&host, &mut s);
        plugin.report(&host, &mut m, &mut s, false);
        plugin.on_log(&host, &mut m, &mut s);
        assert!(plugin.is_initialized(), "{c}");
    }
}

/// A huge peer label value is carried verbatim (no truncation, no panic).
#[test]
fn long_label_values() {
    let mut peer = server_node();
    peer.workload_name = "w".repeat(10_000);
    let host = with_peer(client_without_peer(), Direction::Outbound, "server", &peer);
    let (mut plugin, mut m) = configured(Direction::Outbound, &host, "{}");
    run_http(&mut plugin, &host, &mut m);
    assert_eq!(
        m.one("istio_requests_total").0["destination_workload"].len(),
        10_000
    );
    let _ = PeerNode::default();
}
