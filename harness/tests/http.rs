//! HTTP streams: Envoy's callback order, statuses, metrics, properties as the SDK decodes them,
//! local replies, pauses and http callouts.
mod common;

use common::*;
use envoyfilter_model::chain::Context;
use harness::host_state::{HttpCallResponse, HttpCallScript};
use harness::stream::Direction;

fn calls(out: &harness::proxy::HttpOutcome) -> Vec<String> {
    out.callbacks
        .iter()
        .map(|c| {
            format!(
                "{} {}{}",
                c.plugin,
                c.call,
                c.result.map(|r| format!(" -> {r}")).unwrap_or_default()
            )
        })
        .collect()
}

#[test]
fn callback_order_matches_envoy() {
    let mut p = loaded(
        Context::SidecarInbound,
        vec![mx(), wasm("tp", ""), router()],
    );
    let mut x = exchange(Direction::Inbound);
    x.request.body = b"ping".to_vec();
    x.request.trailers = hdrs(&[("x-t", "1")]);
    x.response.as_mut().unwrap().trailers = hdrs(&[("grpc-status", "0")]);
    let out = p.run_http(&x);
    // Root context 1, stream context 2 (one id counter per VM). Headers are counted as the
    // filter sees them; eos is false whenever a body or trailers follow.
    assert_eq!(
        calls(&out),
        vec![
            "tp proxy_on_context_create(2, 1)",
            "tp proxy_on_request_headers(2, 5, 0) -> 0",
            "tp proxy_on_request_body(2, 4, 0) -> 0",
            "tp proxy_on_request_trailers(2, 1) -> 0",
            "tp proxy_on_response_headers(2, 2, 0) -> 0",
            "tp proxy_on_response_body(2, 5, 0) -> 0",
            "tp proxy_on_response_trailers(2, 1) -> 0",
            "tp proxy_on_log(2)",
            "tp proxy_on_done(2) -> 1",
            "tp proxy_on_delete(2)",
        ]
    );
    let cbs = with_prefix(&p, "tp", "cb ");
    assert_eq!(
        cbs,
        vec![
            "cb on_vm_start 1 0 None",
            "cb on_configure 1 0 \"\"",
            "cb create_http_context 2 1",
            "cb request_headers 2 5 false",
            "cb request_body 2 4 false",
            "cb request_trailers 2 1",
            "cb response_headers 2 2 false",
            "cb response_body 2 5 false",
            "cb response_trailers 2 1",
            "cb on_log 2",
            "cb on_done 2",
        ]
    );
    // The next stream gets the next id.
    let out = p.run_http(&exchange(Direction::Inbound));
    assert_eq!(out.callbacks[0].call, "proxy_on_context_create(3, 1)");
    // Without body/trailers the headers carry eos.
    assert_eq!(out.callbacks[1].call, "proxy_on_request_headers(3, 5, 1)");
    assert_eq!(out.response_code, Some(200));
}

#[test]
fn bodies_are_readable_in_their_callbacks() {
    let mut p = loaded(Context::SidecarInbound, vec![wasm("tp", "body")]);
    let mut x = exchange(Direction::Inbound);
    x.request.body = b"ping".to_vec();
    p.run_http(&x);
    assert!(has_line(&p, "tp", "request body Some(\"ping\")"));
    assert!(has_line(&p, "tp", "response body Some(\"hello\")"));
}

#[test]
fn statuses_are_envoys() {
    let mut p = loaded(Context::SidecarInbound, vec![wasm("tp", "statuses")]);
    let out = p.run_http(&exchange(Direction::Inbound));
    let st = with_prefix(&p, "tp", "status ");
    assert_eq!(
        st,
        vec![
            // on_configure of the root context (no stream info).
            "status set_property_on_root 1",
            "status get_property_on_root(node.id) 0",
            "status get_property_on_root(request.path) 1",
            // on_request_headers.
            "status get_header_map_value(response_headers) 2",
            "status get_header_map_value(missing) 1",
            "status get_buffer_bytes(request_body) 1",
            "status get_buffer_bytes(9) 2",
            "status get_property(nope) 1",
            "status get_property(response.code) 1",
            "status call_foreign_function(nope) 1",
            "status set_effective_context(9999) 2",
            "status set_effective_context(self) 0",
            "status log(9) 2",
        ]
    );
    assert!(has_line(
        &p,
        "tp",
        &format!("root node.id Some({:?})", node().id)
    ));
    assert!(has_line(&p, "tp", "x-dup first = Some(\"a\")"));
    // add appends duplicates, replace adds when absent.
    let up = &out.upstream_request_headers;
    assert!(up.contains(&("x-added".into(), "1".into())));
    assert_eq!(
        up.iter()
            .filter(|(k, _)| k == "x-dup")
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>(),
        vec!["a", "b"]
    );
    // Statuses the Rust SDK panics on are flagged.
    let warnings: Vec<&str> = p
        .logs()
        .iter()
        .filter(|l| l.plugin().is_none())
        .map(|l| l.message.as_str())
        .collect();
    for name in [
        "proxy_set_property returned status 1",
        "proxy_get_header_map_value returned status 2",
        "proxy_log returned status 2",
    ] {
        assert!(
            warnings.iter().any(|w| w.contains(name)),
            "missing warning {name}: {warnings:?}"
        );
    }
}

#[test]
fn metrics_follow_envoy_semantics() {
    let mut p = loaded(Context::SidecarInbound, vec![wasm("tp", "metrics")]);
    p.run_http(&exchange(Direction::Inbound));
    // Type-tagged ids: counters 4, gauges 5, histograms 6.
    assert!(has_line(&p, "tp", "metric tp_requests id 4"));
    assert!(has_line(&p, "tp", "metric tp_gauge id 5"));
    assert!(has_line(&p, "tp", "metric tp_hist id 6"));
    let st = with_prefix(&p, "tp", "status ");
    assert_eq!(
        st,
        vec![
            "status increment_metric(counter,0) 2",
            "status increment_metric(counter,-1) 2",
            "status record_metric(counter,5) 0",
            "status increment_metric(gauge,7) 0",
            "status increment_metric(gauge,-2) 0",
            "status increment_metric(histogram,1) 2",
            "status record_metric(histogram,42) 0",
            "status get_metric(histogram) 2",
            "status get_metric(counter) 0",
            "status increment_metric(999) 1",
        ]
    );
    // 1 (increment) + 5 (record on a counter adds).
    assert!(has_line(&p, "tp", "counter value 6"));
    use stats_sink::StatValue;
    assert_eq!(
        p.stats().get("tp_requests").map(|s| s.value.clone()),
        Some(StatValue::Counter(6))
    );
    assert_eq!(
        p.stats().get("tp_gauge").map(|s| s.value.clone()),
        Some(StatValue::Gauge(5))
    );
    assert_eq!(
        p.stats().get("tp_hist").map(|s| s.value.clone()),
        Some(StatValue::Histogram(stats_sink::Histogram::from_samples(
            &[42]
        )))
    );
}

#[test]
fn properties_decode_with_the_sdk() {
    let mut p = loaded(Context::SidecarInbound, vec![wasm("tp", "props")]);
    p.run_http(&exchange(Direction::Inbound));
    let props = with_prefix(&p, "tp", "prop ");
    let n = node();
    let expected = vec![
        "prop request.path = Some(\"/api/v1?x=1\")".to_string(),
        "prop request.method = Some(\"GET\")".into(),
        "prop request.protocol = Some(\"HTTP/1.1\")".into(),
        "prop response.code_details = Some(\"via_upstream\")".into(),
        "prop source.address = Some(\"10.0.0.2:45000\")".into(),
        "prop destination.address = Some(\"10.0.0.1:9080\")".into(),
        format!("prop node.id = Some({:?})", n.id),
        "prop node.metadata.NAME = Some(\"productpage-v1-123\")".into(),
        "prop cluster_name = Some(\"inbound|9080||\")".into(),
        "prop route_name = Some(\"default\")".into(),
        "prop cluster_metadata.filter_metadata.istio.services.0.name = Some(\"reviews\")".into(),
        "prop cluster_metadata.filter_metadata.istio.services.0.host = Some(\"reviews.default.svc.cluster.local\")".into(),
        "prop upstream_host_metadata.filter_metadata.istio.workload = Some(\"reviews-v2;default;reviews;v2;Kubernetes\")".into(),
        "prop plugin_name = Some(\"tp\")".into(),
        "prop plugin_root_id = Some(\"tp\")".into(),
        "prop plugin_vm_id = Some(\"tp\")".into(),
        "prop connection.uri_san_peer_certificate = Some(\"spiffe://cluster.local/ns/default/sa/reviews\")".into(),
        "prop upstream.address = Some(\"10.0.0.1:9080\")".into(),
        format!("prop request.time = Some({T0})"),
        "prop request.duration = Some(5000000)".into(),
        // No content-length and no body.
        "prop request.size = Some(0)".into(),
        // Header bytes: :method+GET 10, :path+/api/v1?x=1 16, :authority+reviews:9080 22,
        // :scheme+http 11, user-agent+curl/8 16 = 75; body 0.
        "prop request.total_size = Some(75)".into(),
        "prop response.code = Some(200)".into(),
        "prop response.size = Some(5)".into(),
        // Body 5 + :status+200 10 + content-type+text/plain 22 = 37.
        "prop response.total_size = Some(37)".into(),
        "prop response.flags = Some(0)".into(),
        "prop source.port = Some(45000)".into(),
        "prop destination.port = Some(9080)".into(),
        // INBOUND = 1.
        "prop listener_direction = Some(1)".into(),
        "prop connection_id = Some(7)".into(),
        "prop connection.id = Some(7)".into(),
        "prop upstream.port = Some(9080)".into(),
        "prop connection.mtls = Some(true)".into(),
        // Struct numbers are doubles.
        "prop node.metadata.PORT = Some(15020.0)".into(),
        "prop node.metadata.LABELS = Some([(\"app\", \"productpage\"), (\"version\", \"v1\")])".into(),
        "prop request.headers = Some([(\":method\", \"GET\"), (\":path\", \"/api/v1?x=1\"), (\":authority\", \"reviews:9080\"), (\":scheme\", \"http\"), (\"user-agent\", \"curl/8\")])".into(),
        "prop request.headers.user-agent = Some(\"curl/8\")".into(),
    ];
    assert_eq!(props, expected);
    assert!(has_line(
        &p,
        "tp",
        "status get_property(node.metadata.NULLY) 1"
    ));
}

#[test]
fn response_code_only_after_response_headers() {
    let mut p = loaded(
        Context::SidecarInbound,
        vec![wasm("tp", "read=response\0code")],
    );
    p.run_http(&exchange(Direction::Inbound));
    // Raw 8-byte LE 200 read back as a lossy string: "\u{c8}\0…" — just check presence/absence.
    let l = lines(&p, "tp");
    assert!(
        l.iter()
            .any(|s| s == "read at request_headers response\0code=None"),
        "{l:?}"
    );
    assert!(
        l.iter()
            .any(|s| s.starts_with("read at response_headers response\0code=Some(")),
        "{l:?}"
    );
}

#[test]
fn local_reply_is_deferred_and_sent_through_the_encoder_path() {
    let mut p = loaded(
        Context::SidecarInbound,
        vec![
            wasm("a", ""),
            wasm("tp", "reply=403"),
            wasm("c", ""),
            router(),
        ],
    );
    let out = p.run_http(&exchange(Direction::Inbound));
    let r = out.local_reply.clone().expect("local reply");
    assert_eq!(
        (r.status, r.body.as_slice(), r.plugin.as_str()),
        (403, &b"denied"[..], "tp")
    );
    assert_eq!(out.response_code, Some(403));
    // c never saw the request; every filter sees the local reply's headers (reverse order).
    let c: Vec<String> = calls(&out);
    assert!(
        !c.iter()
            .any(|s| s.starts_with("c proxy_on_request_headers")),
        "{c:?}"
    );
    let resp: Vec<&String> = c
        .iter()
        .filter(|s| s.contains("proxy_on_response_headers"))
        .collect();
    assert_eq!(resp.len(), 3);
    assert!(
        resp[0].starts_with("c ") && resp[1].starts_with("tp ") && resp[2].starts_with("a "),
        "{resp:?}"
    );
    // c's context is created in the log phase (Envoy `Context::log`).
    assert!(c.iter().any(|s| s.starts_with("c proxy_on_log")));
    assert!(out
        .downstream_response_headers
        .contains(&(":status".into(), "403".into())));
    assert!(out
        .downstream_response_headers
        .contains(&("x-reply".into(), "1".into())));
}

#[test]
fn pause_without_resume_stalls_the_stream() {
    let mut p = loaded(
        Context::SidecarInbound,
        vec![wasm("tp", "pause=req_headers"), wasm("b", ""), router()],
    );
    let out = p.run_http(&exchange(Direction::Inbound));
    assert!(out.stalled_request);
    let c = calls(&out);
    assert!(
        c.contains(&"tp proxy_on_request_headers(2, 5, 1) -> 1".to_string()),
        "{c:?}"
    );
    assert!(!c.iter().any(|s| s.contains("proxy_on_response_headers")));
    assert!(!c
        .iter()
        .any(|s| s.starts_with("b proxy_on_request_headers")));
    // The log phase still runs for both.
    assert!(c.iter().any(|s| s.starts_with("b proxy_on_log")));
}

#[test]
fn http_call_response_resumes_the_request() {
    let mut p = loaded(
        Context::SidecarOutbound,
        vec![wasm("tp", "http_call=authz"), router()],
    );
    p.script_http_call(
        "authz",
        HttpCallScript::Respond(HttpCallResponse {
            headers: hdrs(&[(":status", "200")]),
            body: b"ok".to_vec(),
            trailers: vec![],
        }),
    );
    let out = p.run_http(&exchange(Direction::Outbound));
    assert!(!out.stalled_request);
    assert_eq!(out.response_code, Some(200));
    // Token 4 (http call ids are type-tagged like metric ids); delivered to the root context (1).
    assert!(has_line(&p, "tp", "dispatch_http_call Ok(4)"));
    assert!(
        has_line(&p, "tp", "cb http_call_response 2 token=4 nh=1 body=2 nt=0 headers=[(\":status\", \"200\")] body=Some(\"ok\") status=0 None"),
        "{:?}",
        lines(&p, "tp")
    );
    assert!(calls(&out).contains(&"tp proxy_on_http_call_response(1, 4, 1, 2, 0)".to_string()));
    // Unscripted calls fail: (0 headers, 0 body) and status 11 "reset".
    p.run_http(&exchange(Direction::Outbound));
    assert!(has_line(&p, "tp", "cb http_call_response 3 token=8 nh=0 body=0 nt=0 headers=[] body=None status=11 Some(\"reset\")"), "{:?}", lines(&p, "tp"));
}

#[test]
fn shared_data_and_queues() {
    let mut p = loaded(Context::SidecarInbound, vec![wasm("tp", "shared")]);
    p.run_http(&exchange(Direction::Inbound));
    let l = lines(&p, "tp");
    for want in [
        "shared set Ok(())",
        "shared get Some(\"v1\") cas Some(1)",
        "shared stale cas Err(CasMismatch)",
        "shared missing None",
        "queue registered 1",
        "enqueue Ok(())",
        "cb on_queue_ready 1 Ok(Some(\"item\"))",
        "queue again Ok(None)",
    ] {
        assert!(l.iter().any(|s| s == want), "missing {want:?} in {l:?}");
    }
}

#[test]
fn foreign_functions() {
    let mut p = loaded(
        Context::SidecarInbound,
        vec![wasm("tp", "foreign=compress")],
    );
    p.register_foreign_function("compress", b"zz".to_vec());
    p.run_http(&exchange(Direction::Inbound));
    assert!(has_line(&p, "tp", "foreign compress Ok(Some(\"zz\"))"));
    let mut p = loaded(
        Context::SidecarInbound,
        vec![wasm("tp", "foreign=unknown_fn")],
    );
    p.run_http(&exchange(Direction::Inbound));
    assert!(has_line(&p, "tp", "foreign unknown_fn Err(NotFound)"));
}

#[test]
fn injected_status_is_returned_and_flagged() {
    let mut p = loaded(
        Context::SidecarInbound,
        vec![wasm("tp", "read=plugin_name")],
    );
    p.inject_status("proxy_get_property", Some(10));
    p.run_http(&exchange(Direction::Inbound));
    // INTERNAL_FAILURE is an Err for `hostcalls::get_property`, which `Context::get_property`
    // unwraps: the SDK panics and the VM traps.
    assert!(p.poisoned(0).is_some());
}
