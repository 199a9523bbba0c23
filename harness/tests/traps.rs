//! Traps never crash the harness; they poison the VM like Envoy, and later streams follow the
//! plugin's fail_open setting.
mod common;

use common::*;
use envoyfilter_model::chain::Context;
use harness::stream::Direction;

#[test]
fn trap_poisons_the_vm_and_fail_closed_sends_503() {
    let mut p = loaded(
        Context::SidecarInbound,
        vec![wasm("tp", "trap=req_headers"), router()],
    );
    let out = p.run_http(&exchange(Direction::Inbound));
    let r = out.local_reply.clone().expect("wasm_fail_stream");
    assert_eq!((r.status, r.details.as_str()), (503, "wasm_fail_stream"));
    assert_eq!(out.response_code, Some(503));
    assert_eq!(out.traps.len(), 1);
    let t = &out.traps[0];
    assert_eq!(
        (t.plugin.as_str(), t.callback.as_str()),
        ("tp", "proxy_on_request_headers")
    );
    assert!(t.message.contains("unreachable"), "{}", t.message);
    assert!(!t.backtrace.is_empty());
    // The SDK's panic hook logged the message at CRITICAL before the abort.
    assert!(p.logs().iter().any(|l| l.plugin() == Some("tp")
        && l.level == harness::abi::LogLevel::Critical
        && l.message.contains("trap requested in req_headers")));
    assert!(p.poisoned(0).is_some());
    // Later streams: the failed filter fails them closed without running any callback.
    let out = p.run_http(&exchange(Direction::Inbound));
    assert_eq!(
        out.local_reply.map(|r| (r.status, r.details)),
        Some((503, "wasm_fail_stream".to_string()))
    );
    assert!(out
        .callbacks
        .iter()
        .all(|c| !c.call.starts_with("proxy_on_request_headers")));
    assert!(out.traps.is_empty());
}

#[test]
fn fail_open_skips_the_failed_filter() {
    let mut p = loaded(
        Context::SidecarInbound,
        vec![
            fail_open(wasm("tp", "trap=req_headers")),
            wasm("b", ""),
            router(),
        ],
    );
    let out = p.run_http(&exchange(Direction::Inbound));
    assert!(out.local_reply.is_none());
    assert_eq!(out.response_code, Some(200));
    assert_eq!(out.traps.len(), 1);
    let out = p.run_http(&exchange(Direction::Inbound));
    assert_eq!(out.response_code, Some(200));
    assert!(
        out.callbacks.iter().all(|c| c.plugin == "b"),
        "{:?}",
        out.callbacks
    );
}

#[test]
fn a_trap_in_on_log_poisons_too() {
    let mut p = loaded(
        Context::SidecarInbound,
        vec![wasm("tp", "trap=log"), router()],
    );
    let out = p.run_http(&exchange(Direction::Inbound));
    assert_eq!(out.traps.len(), 1);
    assert_eq!(out.traps[0].callback, "proxy_on_log");
    // on_done/on_delete are not called on a failed VM.
    assert!(!out
        .callbacks
        .iter()
        .any(|c| c.call.starts_with("proxy_on_done")));
}

#[test]
fn the_deadline_stops_infinite_loops() {
    let mut p = loaded(
        Context::SidecarInbound,
        vec![wasm("tp", "loop=req_headers"), router()],
    );
    p.set_call_deadline(std::time::Duration::from_millis(50));
    let out = p.run_http(&exchange(Direction::Inbound));
    assert_eq!(out.traps.len(), 1);
    assert!(
        out.traps[0].message.contains("interrupt"),
        "{}",
        out.traps[0].message
    );
    assert_eq!(out.local_reply.map(|r| r.status), Some(503));
}
