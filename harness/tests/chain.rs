//! Several plugins in one chain: filter state shared through set_property, Envoy's order per
//! direction, VM sharing by vm_id.
mod common;

use common::*;
use envoyfilter_model::chain::Context;
use harness::stream::Direction;

#[test]
fn two_plugins_exchange_a_value_through_filter_state() {
    let mut p = loaded(
        Context::SidecarInbound,
        vec![
            wasm("a", "set=greeting:hello"),
            wasm("b", "read=greeting"),
            router(),
        ],
    );
    let out = p.run_http(&exchange(Direction::Inbound));
    assert!(has_line(&p, "a", "set greeting=hello"));
    assert!(
        has_line(&p, "b", "read at request_headers greeting=Some(\"hello\")"),
        "{:?}",
        lines(&p, "b")
    );
    assert!(has_line(&p, "b", "read at log greeting=Some(\"hello\")"));
    // Stored as `wasm.<name>` in the stream's filter state.
    assert_eq!(out.filter_state.get(b"wasm.greeting"), Some(&b"hello"[..]));
    // Filter state is per stream.
    let mut p2 = loaded(Context::SidecarInbound, vec![wasm("b", "read=greeting")]);
    p2.run_http(&exchange(Direction::Inbound));
    assert!(has_line(&p2, "b", "read at request_headers greeting=None"));
}

#[test]
fn request_in_order_response_reversed_log_in_order() {
    let mut p = loaded(
        Context::SidecarInbound,
        vec![wasm("a", ""), wasm("b", ""), router()],
    );
    let out = p.run_http(&exchange(Direction::Inbound));
    let seq: Vec<String> = out
        .callbacks
        .iter()
        .filter(|c| !c.call.starts_with("proxy_on_context_create"))
        .map(|c| format!("{} {}", c.plugin, c.call.split('(').next().unwrap_or("")))
        .collect();
    assert_eq!(
        seq,
        vec![
            "a proxy_on_request_headers",
            "b proxy_on_request_headers",
            "b proxy_on_response_headers",
            "a proxy_on_response_headers",
            "b proxy_on_response_body",
            "a proxy_on_response_body",
            "a proxy_on_log",
            "b proxy_on_log",
            "a proxy_on_done",
            "a proxy_on_delete",
            "b proxy_on_done",
            "b proxy_on_delete",
        ]
    );
}

#[test]
fn same_vm_id_and_code_share_one_vm() {
    let mut p = loaded(
        Context::SidecarInbound,
        vec![
            wasm_vm("a", "", "shared"),
            wasm_vm("b", "", "shared"),
            router(),
        ],
    );
    // One VM, two root contexts 1 and 2; stream contexts come from the same counter.
    assert_eq!(p.plugins()[0].vm, p.plugins()[1].vm);
    assert_eq!((p.plugins()[0].root_ctx, p.plugins()[1].root_ctx), (1, 2));
    let out = p.run_http(&exchange(Direction::Inbound));
    assert_eq!(out.callbacks[0].call, "proxy_on_context_create(3, 1)");
    assert_eq!(out.callbacks[2].call, "proxy_on_context_create(4, 2)");
    // Different vm_ids: separate VMs, each starting at root 1.
    let p = loaded(
        Context::SidecarInbound,
        vec![wasm("a", ""), wasm("b", ""), router()],
    );
    assert_ne!(p.plugins()[0].vm, p.plugins()[1].vm);
    assert_eq!((p.plugins()[0].root_ctx, p.plugins()[1].root_ctx), (1, 1));
}

#[test]
fn native_filters_pass_through_and_router_ends_the_chain() {
    let mut p = proxy(harness::profile::Profile::ISTIO_1_17);
    let chain = http_chain(
        Context::SidecarInbound,
        vec![
            native(
                "envoy.filters.http.cors",
                "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors",
            ),
            wasm("a", ""),
            router(),
            wasm("after", ""),
        ],
    );
    let r = p.load(&chain, &resolver).unwrap();
    assert_eq!(
        r.plugins.len(),
        1,
        "filters after the router are never built"
    );
    let out = p.run_http(&exchange(Direction::Inbound));
    assert!(out.callbacks.iter().all(|c| c.plugin == "a"));
}

/// Envoy builds a filter from its `typed_config` type, so the name says nothing: a CORS filter
/// named like a router does not end the chain, a router under another name does. (grpc_stats by
/// type: testdata/istio/v1_13_grpc_stream_server_after_close_test_filter_name.)
#[test]
fn native_filters_are_recognised_by_type_not_name() {
    let mut p = proxy(harness::profile::Profile::ISTIO_1_17);
    let chain = http_chain(
        Context::SidecarInbound,
        vec![
            native(
                "envoy.filters.http.router_notes",
                "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors",
            ),
            wasm("a", ""),
            native(
                "terminal",
                "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
            ),
            wasm("after", ""),
        ],
    );
    let r = p.load(&chain, &resolver).unwrap();
    let names: Vec<&str> = r.plugins.iter().map(|x| x.plugin_name.as_str()).collect();
    assert_eq!(names, ["a"]);
}

/// grpc_stats leaves `"<requests>,<responses>"` in filter state only with `emit_filter_state`
/// (Istio always sets it; a user's grpc_stats without it counts in Envoy's own stats only).
#[test]
fn grpc_stats_emits_filter_state_only_when_configured_to() {
    let grpc_stats = |config: serde_json::Value| {
        let mut f = native(
            "grpc_stats",
            "type.googleapis.com/envoy.extensions.filters.http.grpc_stats.v3.FilterConfig",
        );
        if let envoyfilter_model::chain::FilterKind::Native { config: c, .. } = &mut f.kind {
            *c = config.as_object().cloned().unwrap_or_default();
        }
        f
    };
    let mut x = exchange(Direction::Inbound);
    x.grpc_messages = Some((3, 13));
    for (config, want) in [
        (
            serde_json::json!({"emit_filter_state": true}),
            Some(&b"3,13"[..]),
        ),
        (
            serde_json::json!({"emitFilterState": true}),
            Some(&b"3,13"[..]),
        ),
        (serde_json::json!({}), None),
        (serde_json::json!({"emit_filter_state": false}), None),
    ] {
        let mut p = loaded(
            Context::SidecarInbound,
            vec![grpc_stats(config.clone()), wasm("a", ""), router()],
        );
        let out = p.run_http(&x);
        assert_eq!(
            out.filter_state.get(b"envoy.filters.http.grpc_stats"),
            want,
            "{config}"
        );
    }
}

#[test]
fn proxy_is_send() {
    // A replay can move a loaded proxy to a worker thread.
    fn assert_send<T: Send>() {}
    assert_send::<harness::proxy::Proxy>();
}
