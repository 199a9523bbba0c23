//! Unit tests of the decoder, through [`TrafficReader`] as the runner uses it.

use super::fill::split_host_port;
use super::*;
use crate::stream::{GrpcProgress, MxOutcome, ServiceRef};

fn read(text: &str) -> Vec<Result<DecodedEvent, LineError>> {
    TrafficReader::new(text.as_bytes()).collect()
}

fn http(ev: &Result<DecodedEvent, LineError>) -> &HttpExchange {
    match ev {
        Ok(DecodedEvent {
            event: Event::Http(h),
            ..
        }) => h,
        other => panic!("not an http event: {other:?}"),
    }
}

#[test]
fn grpc_message_batches_are_summed() {
    // Istio's TestStatsGrpcStream: 3 requests / 13 responses, then 5 / 14 more: 8 and 27.
    let evs = read(
        r#"{"kind":"http","direction":"inbound","response":{"grpc_status":0},"grpc_messages":[{"request":3,"response":13},{"request":5,"response":14}]}
{"kind":"http","direction":"inbound"}"#,
    );
    assert_eq!(http(&evs[0]).grpc_messages, Some((8, 27)));
    assert_eq!(http(&evs[1]).grpc_messages, None);
}

fn tcp(ev: &Result<DecodedEvent, LineError>) -> &TcpConnection {
    match ev {
        Ok(DecodedEvent {
            event: Event::Tcp(t),
            ..
        }) => t,
        other => panic!("not a tcp event: {other:?}"),
    }
}

#[test]
fn minimal_http_event_gets_every_default() {
    let evs = read(r#"{"kind":"http","direction":"outbound"}"#);
    let h = http(&evs[0]);
    assert_eq!(h.direction, Direction::Outbound);
    assert_eq!(h.start_ns, DEFAULT_EPOCH_NS);
    assert_eq!(h.duration_ns, 1_000_000);
    assert_eq!(h.protocol, "HTTP/1.1");
    assert_eq!(
        h.request.headers,
        vec![
            (":path".into(), "/".into()),
            (":method".into(), "GET".into()),
            (":scheme".into(), "http".into())
        ]
    );
    assert!(h.request.body.is_empty());
    let resp = h.response.as_ref().unwrap();
    assert_eq!(resp.headers, vec![(":status".into(), "200".into())]);
    assert!(resp.trailers.is_empty());
    assert_eq!(h.response_flags, 0);
    assert_eq!(h.code_details, "via_upstream");
    assert_eq!(h.route_name, "default");
    assert_eq!(h.peer, None);
    assert!(!h.connection.mtls);
    assert_eq!(h.connection.peer_principal, None);
    assert_eq!(h.upstream.cluster_name, "outbound|80||");
    assert_eq!(h.upstream.service, None);
    assert_eq!(evs[0].as_ref().unwrap().repeat, 1);
}

#[test]
fn contract_example_decodes_field_by_field() {
    let line = r#"{"kind":"http","direction":"outbound",
 "start":"2025-04-20T04:22:24.317Z","duration_ms":156,"repeat":3,
 "request":{"method":"GET","path":"/items?x=1","authority":"catalog.istioinaction:80",
            "scheme":"http","protocol":"HTTP/1.1",
            "headers":{"User-Agent":"curl/8.7.1","x-user":["jason","ann"]},"body_bytes":0},
 "response":{"code":200,"headers":{"content-type":"application/json"},"body_bytes":278,
             "grpc_status":null,"flags":"-","code_details":"via_upstream"},
 "peer":{"id":"sidecar~10.10.0.14~catalog-6cf4b97d-abcde.istioinaction~istioinaction.svc.cluster.local",
         "node":{"NAME":"catalog-6cf4b97d-abcde","NAMESPACE":"istioinaction","WORKLOAD_NAME":"catalog",
                 "LABELS":{"app":"catalog","version":"v1"},"CLUSTER_ID":"Kubernetes",
                 "MESH_ID":"cluster.local","ISTIO_VERSION":"1.17.8"}},
 "connection":{"mtls":true,"peer_principal":"spiffe://cluster.local/ns/istioinaction/sa/catalog",
               "local_principal":"spiffe://cluster.local/ns/istioinaction/sa/webapp",
               "source_address":"10.10.0.17:46590","destination_address":"10.10.0.14:3000",
               "requested_server_name":""},
 "upstream":{"cluster":"outbound|80||catalog.istioinaction.svc.cluster.local","address":"10.10.0.14:3000",
             "service":{"name":"catalog","namespace":"istioinaction","host":"catalog.istioinaction.svc.cluster.local"},
             "endpoint_metadata":null},
 "route_name":"default"}"#
        .replace('\n', "");
    let evs = read(&line);
    assert_eq!(evs.len(), 1);
    let ev = evs[0].as_ref().unwrap();
    assert_eq!(ev.repeat, 3);
    assert!(ev.warnings.is_empty(), "{:?}", ev.warnings);
    let h = http(&evs[0]);
    assert_eq!(h.start_ns, 1_745_122_944_317_000_000);
    assert_eq!(h.duration_ns, 156_000_000);
    assert_eq!(
        h.request.headers,
        [
            (":authority", "catalog.istioinaction:80"),
            (":path", "/items?x=1"),
            (":method", "GET"),
            (":scheme", "http"),
            ("user-agent", "curl/8.7.1"),
            ("x-user", "jason"),
            ("x-user", "ann"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
    );
    let resp = h.response.as_ref().unwrap();
    assert_eq!(resp.body.len(), 278);
    assert_eq!(
        resp.headers[1],
        ("content-type".into(), "application/json".into())
    );
    let peer = h.peer.as_ref().unwrap();
    assert!(peer.id.starts_with("sidecar~10.10.0.14~"));
    assert_eq!(peer.metadata["WORKLOAD_NAME"], "catalog");
    assert_eq!(peer.metadata["LABELS"]["version"], "v1");
    assert!(h.connection.mtls);
    assert_eq!(
        h.connection.local_principal.as_deref(),
        Some("spiffe://cluster.local/ns/istioinaction/sa/webapp")
    );
    assert_eq!(h.connection.destination_address, "10.10.0.14:3000");
    assert_eq!(h.upstream.address.as_deref(), Some("10.10.0.14:3000"));
    assert_eq!(
        h.upstream.service,
        Some(ServiceRef {
            name: "catalog".into(),
            namespace: "istioinaction".into(),
            host: "catalog.istioinaction.svc.cluster.local".into()
        })
    );
    assert_eq!(h.upstream.endpoint_workload, None);
}

#[test]
fn start_defaults_step_one_ms_from_the_previous_event() {
    let evs = read(concat!(
        "{\"kind\":\"http\",\"direction\":\"inbound\"}\n",
        "\n",
        "{\"kind\":\"tcp\",\"direction\":\"inbound\"}\n",
        "{\"kind\":\"http\",\"direction\":\"inbound\",\"start\":\"2025-04-20T04:22:24Z\"}\n",
        "{\"kind\":\"http\",\"direction\":\"inbound\"}\n",
    ));
    assert_eq!(evs.len(), 4, "the blank line is skipped silently");
    assert_eq!(http(&evs[0]).start_ns, DEFAULT_EPOCH_NS);
    assert_eq!(tcp(&evs[1]).start_ns, DEFAULT_EPOCH_NS + 1_000_000);
    assert_eq!(evs[1].as_ref().unwrap().line, 3);
    let t = parse_rfc3339("2025-04-20T04:22:24Z").unwrap();
    assert_eq!(http(&evs[2]).start_ns, t);
    assert_eq!(http(&evs[3]).start_ns, t + 1_000_000);
}

#[test]
fn default_clusters_per_direction() {
    let evs = read(concat!(
        r#"{"kind":"http","direction":"inbound","request":{"authority":"webapp.istioinaction.io:30000"},"connection":{"destination_address":"10.10.0.17:8080"}}"#,
        "\n",
        r#"{"kind":"http","direction":"inbound","request":{"authority":"webapp:9080"}}"#,
        "\n",
        r#"{"kind":"http","direction":"inbound","request":{"scheme":"https"}}"#,
        "\n",
        r#"{"kind":"http","direction":"outbound","request":{"authority":"catalog.istioinaction"}}"#,
        "\n",
        r#"{"kind":"http","direction":"gateway","request":{"authority":"webapp.istioinaction:8080"}}"#,
        "\n",
        r#"{"kind":"tcp","direction":"inbound","connection":{"destination_address":"10.0.0.1:9000"}}"#,
        "\n",
        r#"{"kind":"tcp","direction":"outbound","connection":{"destination_address":"10.0.0.2:6379"},"upstream":{"service":{"name":"redis","namespace":"db","host":"redis.db.svc.cluster.local"}}}"#,
        "\n",
        r#"{"kind":"tcp","direction":"outbound"}"#,
    ));
    assert_eq!(http(&evs[0]).upstream.cluster_name, "inbound|8080||");
    assert_eq!(http(&evs[1]).upstream.cluster_name, "inbound|9080||");
    assert_eq!(http(&evs[2]).upstream.cluster_name, "inbound|443||");
    assert_eq!(
        http(&evs[3]).upstream.cluster_name,
        "outbound|80||catalog.istioinaction"
    );
    assert_eq!(
        http(&evs[4]).upstream.cluster_name,
        "outbound|8080||webapp.istioinaction"
    );
    assert_eq!(tcp(&evs[5]).upstream.cluster_name, "inbound|9000||");
    assert_eq!(
        tcp(&evs[6]).upstream.cluster_name,
        "outbound|6379||redis.db.svc.cluster.local"
    );
    assert_eq!(tcp(&evs[7]).upstream.cluster_name, "PassthroughCluster");
}

#[test]
fn flags_grpc_bodies_and_reset() {
    let evs = read(concat!(
        r#"{"kind":"http","direction":"outbound","response":{"code":503,"flags":"UO","code_details":"overflow"}}"#,
        "\n",
        r#"{"kind":"http","direction":"outbound","response":{"code":503,"flags":"UF,URX"}}"#,
        "\n",
        r#"{"kind":"http","direction":"outbound","response":{"flags":160}}"#,
        "\n",
        r#"{"kind":"http","direction":"outbound","request":{"method":"POST","body":"héllo"},"response":{"grpc_status":7}}"#,
        "\n",
        r#"{"kind":"http","direction":"outbound","response":null}"#,
    ));
    assert_eq!(http(&evs[0]).response_flags, 0x80);
    assert_eq!(http(&evs[0]).code_details, "overflow");
    assert_eq!(http(&evs[0]).response.as_ref().unwrap().headers[0].1, "503");
    assert_eq!(http(&evs[1]).response_flags, 0x8020);
    assert_eq!(http(&evs[2]).response_flags, 160);
    let g = http(&evs[3]);
    assert_eq!(g.protocol, "HTTP/2");
    assert_eq!(g.request.body, "héllo".as_bytes());
    assert!(g
        .request
        .headers
        .contains(&("content-type".into(), "application/grpc".into())));
    let resp = g.response.as_ref().unwrap();
    assert!(resp
        .headers
        .contains(&("content-type".into(), "application/grpc".into())));
    assert_eq!(resp.trailers, vec![("grpc-status".into(), "7".into())]);
    assert_eq!(http(&evs[4]).response, None);
}

#[test]
fn tcp_fields_and_mx_default() {
    let evs = read(concat!(
        r#"{"kind":"tcp","direction":"inbound","start":"2025-04-20T04:22:30Z","duration_ms":2500,"sent_bytes":1024,"received_bytes":4096,"chunks":4,"peer":{"node":{"NAME":"web-1","NAMESPACE":"ns","INSTANCE_IPS":"10.1.2.3,fd00::1"}},"connection":{"mtls":true},"upstream":{"cluster":"inbound|9000||"}}"#,
        "\n",
        r#"{"kind":"tcp","direction":"outbound","mx":"not_found"}"#,
        "\n",
        r#"{"kind":"tcp","direction":"outbound"}"#,
    ));
    let t = tcp(&evs[0]);
    assert_eq!(t.duration_ns, 2_500_000_000);
    assert_eq!((t.sent_bytes, t.received_bytes, t.chunks), (1024, 4096, 4));
    assert_eq!(t.mx, MxOutcome::Found);
    assert_eq!(
        t.peer.as_ref().unwrap().id,
        "sidecar~10.1.2.3~web-1.ns~ns.svc.cluster.local"
    );
    assert_eq!(t.upstream.cluster_name, "inbound|9000||");
    assert!(t.connection.mtls);
    assert_eq!(tcp(&evs[1]).mx, MxOutcome::NotFound);
    assert_eq!(tcp(&evs[2]).mx, MxOutcome::None);
    assert_eq!(tcp(&evs[2]).chunks, 1);
}

#[test]
fn bad_lines_are_reported_and_skipped() {
    let evs = read(concat!(
        "{\"kind\":\"http\",\"direction\":\"inbound\"}\n", // 1 ok
        "{not json\n",                                     // 2
        "{\"kind\":\"http\",\"direction\":\"inbound\",\"duration_ms\":\"slow\"}\n", // 3
        "{\"kind\":\"http\",\"direction\":\"sideways\"}\n", // 4
        "{\"kind\":\"udp\",\"direction\":\"inbound\"}\n",   // 5
        "{\"kind\":\"http\",\"direction\":\"inbound\",\"response\":{\"flags\":\"UO,ZZ\"}}\n", // 6
        "{\"kind\":\"http\",\"direction\":\"inbound\",\"start\":\"yesterday\"}\n", // 7
        "{\"direction\":\"inbound\"}\n",                     // 8
        "{\"kind\":\"http\",\"direction\":\"inbound\"} trailing\n", // 9
        "{\"kind\":\"http\",\"direction\":\"inbound\",\"request\":{\"headers\":{\"a\":1}}}\n", // 10
        "{\"kind\":\"http\",\"direction\":\"inbound\",\"request\":{\"body\":\"x\",\"body_bytes\":1}}\n", // 11
        "{\"kind\":\"tcp\",\"direction\":\"inbound\",\"mx\":\"found\"}\n", // 12
        "{\"kind\":\"http\",\"direction\":\"inbound\",\"duration_ms\":-1}\n", // 13
        "{\"kind\":\"http\",\"direction\":\"outbound\"}\n", // 14 ok
    ));
    let errors: Vec<(usize, String)> = evs
        .iter()
        .filter_map(|e| e.as_ref().err())
        .map(|e| (e.line, e.reason.clone()))
        .collect();
    let lines: Vec<usize> = errors.iter().map(|e| e.0).collect();
    assert_eq!(lines, (2..=13).collect::<Vec<_>>(), "{errors:#?}");
    let reason = |line: usize| &errors[line - 2].1;
    assert!(
        reason(3).starts_with("duration_ms: invalid type: string \"slow\""),
        "{}",
        reason(3)
    );
    assert!(
        reason(4).starts_with("direction: unknown variant `sideways`"),
        "{}",
        reason(4)
    );
    assert!(reason(5).contains("\"udp\""), "{}", reason(5));
    assert!(
        reason(6).starts_with("response.flags: unknown response flag \"ZZ\""),
        "{}",
        reason(6)
    );
    assert!(
        reason(7).starts_with("start: invalid RFC 3339 time"),
        "{}",
        reason(7)
    );
    assert!(reason(8).contains("missing field `kind`"), "{}", reason(8));
    assert!(reason(9).contains("trailing characters"), "{}", reason(9));
    assert!(
        reason(10).starts_with("request.headers.a: invalid type: integer"),
        "{}",
        reason(10)
    );
    assert!(reason(11).contains("not both"), "{}", reason(11));
    assert!(reason(12).contains("needs a peer"), "{}", reason(12));
    assert!(reason(13).starts_with("duration_ms"), "{}", reason(13));
    // The good lines on either side survive.
    assert_eq!(http(&evs[0]).direction, Direction::Inbound);
    assert_eq!(http(&evs[13]).direction, Direction::Outbound);
    assert_eq!(evs[13].as_ref().unwrap().line, 14);
}

#[test]
fn unknown_fields_warn_once_per_path() {
    let evs = read(concat!(
        r#"{"kind":"http","direction":"inbound","colour":"red","request":{"verb":"GET"},"sent_bytes":3}"#,
        "\n",
        r#"{"kind":"http","direction":"inbound","colour":"blue"}"#,
        "\n",
        r#"{"kind":"tcp","direction":"inbound","route_name":"x"}"#,
    ));
    let w0 = &evs[0].as_ref().unwrap().warnings;
    assert_eq!(w0.len(), 3, "{w0:?}");
    assert!(w0.iter().any(|w| w.contains("\"colour\"")));
    assert!(w0.iter().any(|w| w.contains("\"request.verb\"")), "{w0:?}");
    assert!(w0
        .iter()
        .any(|w| w.contains("\"sent_bytes\" applies to tcp events only")));
    assert!(evs[1].as_ref().unwrap().warnings.is_empty());
    let w2 = &evs[2].as_ref().unwrap().warnings;
    assert_eq!(w2.len(), 1);
    assert!(w2[0].contains("applies to http events only"));
}

/// Decodes `lines` as the runner does: each event goes back to the reader (`recycle`)
/// before the next line is decoded into its buffers.
fn read_recycling(text: &str) -> Vec<Result<DecodedEvent, LineError>> {
    let mut reader = TrafficReader::new(text.as_bytes());
    let mut out = Vec::new();
    while let Some(item) = reader.next() {
        if let Ok(ev) = &item {
            // A copy for the test; the original goes back like the runner's does.
            reader.recycle(ev.event.clone());
        }
        out.push(item);
    }
    out
}

/// Every field a "rich" event sets (more headers, trailers, principals, service, peer,
/// body text, gRPC) next to a minimal one and a reset: decoding one into the other's
/// recycled buffers must give exactly what a fresh decoder gives — nothing carries over,
/// in either order.
#[test]
fn recycled_events_carry_nothing_over() {
    let rich = r#"{"kind":"http","direction":"gateway","start":"2025-04-20T04:22:24.317Z","duration_ms":156,"request":{"method":"POST","path":"/a?b=1","authority":"Svc.NS:8080","scheme":"https","protocol":"HTTP/2","headers":{"X-User":["jason","ann"],"user-agent":"curl/8.7.1","te":"trailers"},"body":"hello"},"response":{"code":503,"headers":{"x-a":"1","x-b":"2","x-c":"3","x-d":"4"},"body_bytes":7,"grpc_status":14,"flags":"UF,URX","code_details":"upstream_reset"},"peer":{"id":"sidecar~1.2.3.4~p.ns~ns.svc.cluster.local","node":{"NAME":"p","NAMESPACE":"ns"}},"connection":{"id":7,"mtls":true,"peer_principal":"spiffe://a","local_principal":"spiffe://b","source_address":"1.1.1.1:1","destination_address":"2.2.2.2:2","requested_server_name":"sni"},"upstream":{"cluster":"c1","address":"3.3.3.3:3","service":{"name":"s","namespace":"n","host":"h"},"endpoint_metadata":"w;n;c;r;k"},"route_name":"r1","grpc_messages":[{"request":2,"response":3}]}"#;
    let minimal = r#"{"kind":"http","direction":"inbound","start":"2025-04-20T04:22:25Z"}"#;
    let reset = r#"{"kind":"http","direction":"outbound","start":"2025-04-20T04:22:26Z","response":null,"request":{"authority":"a.b","headers":{"x":"y"}}}"#;
    let escaped = r#"{"kind":"http","direction":"outbound","start":"2025-04-20T04:22:27Z","request":{"path":"/\u00e9\"q","headers":{"X-\u0045":"a\\b"}},"response":{"headers":{}}}"#;
    let lines = [rich, minimal, reset, escaped];
    for first in lines {
        for second in lines {
            let evs = read_recycling(&format!("{first}\n{second}\n{first}\n"));
            // A fresh decoder; the blank line keeps the line number (the default
            // `connection.id`) the same.
            let fresh = read(&format!("\n{second}\n"));
            assert_eq!(evs[1], fresh[0], "{second} after {first}");
            let fresh_first = read(first);
            assert_eq!(
                evs[0].as_ref().map(|e| &e.event),
                fresh_first[0].as_ref().map(|e| &e.event)
            );
            // Back again: the third line equals the first (apart from its line number).
            let (a, b) = (evs[0].as_ref().unwrap(), evs[2].as_ref().unwrap());
            let (Event::Http(a), Event::Http(b)) = (&a.event, &b.event) else {
                panic!("not http");
            };
            let mut b = b.clone();
            b.connection.id = a.connection.id;
            assert_eq!(*a, b, "{first} after {second}");
        }
    }
    // Spot checks that the lines really differ where it matters.
    let evs = read_recycling(&format!("{rich}\n{minimal}\n"));
    let m = http(&evs[1]);
    assert_eq!(
        m.request.headers,
        vec![
            (":path".to_string(), "/".to_string()),
            (":method".to_string(), "GET".to_string()),
            (":scheme".to_string(), "http".to_string()),
        ]
    );
    let r = m.response.as_ref().unwrap();
    assert_eq!(r.headers, vec![(":status".to_string(), "200".to_string())]);
    assert!(r.trailers.is_empty() && r.body.is_empty() && m.request.body.is_empty());
    assert_eq!(m.peer, None);
    assert_eq!(m.upstream.service, None);
    assert_eq!(m.connection.peer_principal, None);
    assert_eq!(m.grpc_messages, None);
    let evs = read_recycling(&format!("{rich}\n{escaped}\n"));
    let e = &http(&evs[1]).request.headers;
    assert_eq!(e[0], (":path".to_string(), "/\u{e9}\"q".to_string()));
    assert_eq!(e[3], ("x-e".to_string(), "a\\b".to_string()));
    let rich_ev = http(&evs[0]);
    assert_eq!(rich_ev.request.body, b"hello");
    assert_eq!(rich_ev.response.as_ref().unwrap().body, b"xxxxxxx");
    assert_eq!(
        rich_ev.response.as_ref().unwrap().trailers,
        vec![("grpc-status".to_string(), "14".to_string())]
    );
}

/// Past `PEER_CACHE_LIMIT` distinct peers the cache starts over; every line still gets
/// its own peer (the default id is derived by hand from NAME/NAMESPACE, see
/// `default_peer_id`), and a peer seen again after the reset decodes the same.
#[test]
fn peer_cache_reset_keeps_every_peer_right() {
    let n = PEER_CACHE_LIMIT + 5;
    let mut text = String::new();
    for i in (0..n).chain([0, n - 1]) {
        text.push_str(&format!(
            "{{\"kind\":\"http\",\"direction\":\"inbound\",\"peer\":{{\"node\":{{\"NAME\":\"p{i}\",\"NAMESPACE\":\"ns\"}}}}}}\n"
        ));
    }
    let evs = read_recycling(&text);
    assert_eq!(evs.len(), n + 2);
    for (ev, i) in evs.iter().zip((0..n).chain([0, n - 1])) {
        let peer = http(ev).peer.as_ref().unwrap();
        assert_eq!(
            peer.id,
            format!("sidecar~0.0.0.0~p{i}.ns~ns.svc.cluster.local")
        );
        assert_eq!(
            peer.metadata.get("NAME").and_then(|v| v.as_str()),
            Some(&*format!("p{i}"))
        );
    }
}

/// A rejected line between two events leaves the recycled buffers usable.
#[test]
fn rejected_line_between_recycled_events() {
    let a = r#"{"kind":"http","direction":"inbound","request":{"headers":{"a":"1","b":"2"}}}"#;
    let bad = r#"{"kind":"http","direction":"inbound","request":{"headers":{"c":"3"},"body":"x","body_bytes":1}}"#;
    let b = r#"{"kind":"http","direction":"inbound","start":"2025-04-20T04:22:25Z"}"#;
    let evs = read_recycling(&format!("{a}\n{bad}\n{b}\n"));
    assert_eq!(
        evs[1],
        Err(LineError {
            line: 2,
            reason: "request: give body_bytes or body, not both".into()
        })
    );
    assert_eq!(evs[2], read(&format!("\n\n{b}"))[0]);
}

#[test]
fn peers_decode_once_and_keep_lenient_reporting() {
    // Lines 1 and 3 repeat one peer text (the cache's hit), line 2 has another; line 4's
    // peer has an unknown key (warned as `peer.nick`, the line still replays), line 5 a
    // wrongly typed id (the line is skipped, the path names it).
    let a = r#""peer":{"id":"a","node":{"NAME":"a-1","LABELS":{"app":"a"}}}"#;
    let b = r#""peer":{"node":{"NAME":"b-1","NAMESPACE":"ns"}}"#;
    let evs = read(&format!(
        "{{\"kind\":\"http\",\"direction\":\"inbound\",{a}}}\n\
         {{\"kind\":\"http\",\"direction\":\"inbound\",{b}}}\n\
         {{\"kind\":\"tcp\",\"direction\":\"inbound\",{a}}}\n\
         {{\"kind\":\"http\",\"direction\":\"inbound\",\"peer\":{{\"id\":\"c\",\"nick\":1}}}}\n\
         {{\"kind\":\"http\",\"direction\":\"inbound\",\"peer\":{{\"id\":5}}}}\n"
    ));
    let pa = http(&evs[0]).peer.clone().expect("peer a");
    assert_eq!(pa.id, "a");
    assert_eq!(pa.metadata["LABELS"]["app"], "a");
    let pb = http(&evs[1]).peer.clone().expect("peer b");
    // No id: the documented default from NAME and NAMESPACE.
    assert_eq!(pb.id, "sidecar~0.0.0.0~b-1.ns~ns.svc.cluster.local");
    assert_eq!(tcp(&evs[2]).peer.as_ref(), Some(&pa));
    let w = &evs[3].as_ref().expect("line 4 replays").warnings;
    assert!(w.iter().any(|w| w.contains("\"peer.nick\"")), "{w:?}");
    assert_eq!(
        http(&evs[3]).peer.as_ref().map(|p| p.id.as_str()),
        Some("c")
    );
    let e = evs[4].as_ref().expect_err("line 5 is skipped");
    assert_eq!(e.line, 5);
    assert!(
        e.reason.starts_with("peer.id: invalid type"),
        "{}",
        e.reason
    );
}

#[test]
fn timed_grpc_batches_stop_and_reload_decode() {
    let evs = read(concat!(
        r#"{"kind":"http","direction":"outbound","duration_ms":4000,"stop_after_ms":1500,"grpc_messages":[{"request":2,"response":1},{"request":3,"response":13,"at_ms":0},{"request":5,"response":14,"at_ms":2000.5}]}"#,
        "\n",
        r#"{"kind":"reload"}"#,
        "\n",
        r#"{"kind":"reload","vm":"same","start":"2025-04-20T04:22:24Z"}"#,
        "\n",
        r#"{"kind":"reload","direction":"inbound","vm":"new"}"#,
    ));
    let ev = evs[0].as_ref().unwrap();
    // The exchange keeps the grand total; the plan holds the untimed part (2/1) from the
    // headers on, then running totals 2+3 / 1+13 at 0 ms and +5 / +14 at 2000.5 ms.
    assert_eq!(http(&evs[0]).grpc_messages, Some((10, 28)));
    assert_eq!(ev.plan.grpc_initial, (2, 1));
    assert_eq!(
        ev.plan.grpc_timeline,
        vec![
            GrpcProgress {
                at_ns: 0,
                requests: 5,
                responses: 14
            },
            GrpcProgress {
                at_ns: 2_000_500_000,
                requests: 10,
                responses: 28
            },
        ]
    );
    assert_eq!(ev.plan.stop_after_ns, Some(1_500_000_000));
    let reload = |i: usize| match &evs[i].as_ref().unwrap().event {
        Event::Reload(r) => *r,
        other => panic!("{other:?}"),
    };
    // `start` defaults to the previous line's + 1 ms, as for events.
    assert_eq!(
        reload(1),
        Reload {
            at_ns: DEFAULT_EPOCH_NS + 1_000_000,
            new_vm: true
        }
    );
    assert_eq!(
        reload(2),
        Reload {
            at_ns: parse_rfc3339("2025-04-20T04:22:24Z").unwrap(),
            new_vm: false
        }
    );
    assert!(reload(3).new_vm);
    assert_eq!(
        evs[3].as_ref().unwrap().warnings,
        vec!["field \"direction\" does not apply to reload lines; ignored (warned once)"]
    );
    // A plain line has the plain plan.
    let plain = read(r#"{"kind":"http","direction":"outbound"}"#);
    assert!(plain[0].as_ref().unwrap().plan.is_plain());
}

#[test]
fn invalid_utf8_and_crlf() {
    let mut input = b"{\"kind\":\"http\",\"direction\":\"inbound\"}\r\n".to_vec();
    input.extend_from_slice(b"\xff\xfe\n");
    let evs: Vec<_> = TrafficReader::new(&input[..]).collect();
    assert!(evs[0].is_ok());
    assert_eq!(evs[1].as_ref().unwrap_err().line, 2);
    assert!(evs[1].as_ref().unwrap_err().reason.starts_with("not UTF-8"));
}

#[test]
fn host_port_split() {
    assert_eq!(split_host_port("a.b:80"), ("a.b", Some(80)));
    assert_eq!(split_host_port("a.b"), ("a.b", None));
    assert_eq!(split_host_port("[fd00::1]:8080"), ("[fd00::1]", Some(8080)));
    assert_eq!(split_host_port("fd00::1"), ("fd00::1", None));
}
