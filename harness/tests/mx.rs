//! Istio's metadata exchange, emulated at the head of the chain.
mod common;

use common::*;
use envoyfilter_model::chain::Context;
use harness::metadata_exchange::{header_value, HEADER, HEADER_ID};
use harness::stream::Direction;
use proxy_attributes::peer::PeerNode;

fn peer_node(out: &harness::proxy::HttpOutcome, key: &[u8]) -> PeerNode {
    PeerNode::from_flatbuffer(out.filter_state.get(key).expect("peer in filter state"))
        .expect("flatnode")
}

#[test]
fn inbound_mx_moves_peer_headers_into_filter_state() {
    let mut p = loaded(
        Context::SidecarInbound,
        vec![
            mx(),
            wasm("tp", "log_headers;read=downstream_peer_id"),
            router(),
        ],
    );
    let mut x = exchange(Direction::Inbound);
    x.peer = Some(peer());
    let out = p.run_http(&x);
    let l = lines(&p, "tp");
    let req = l.iter().find(|s| s.starts_with("request headers")).unwrap();
    assert!(!req.contains(HEADER), "MX removed the headers: {req}");
    assert!(has_line(
        &p,
        "tp",
        &format!(
            "read at request_headers downstream_peer_id=Some({:?})",
            peer().id
        )
    ));
    assert_eq!(
        out.filter_state.get(b"wasm.downstream_peer_id"),
        Some(peer().id.as_bytes())
    );
    let n = peer_node(&out, b"wasm.downstream_peer");
    assert_eq!(
        (
            n.workload_name.as_str(),
            n.namespace.as_str(),
            n.label("app")
        ),
        ("reviews-v2", "default", Some("reviews"))
    );
    // The request carried both headers, so the inbound response gets the local node's.
    assert!(out
        .downstream_response_headers
        .contains(&(HEADER_ID.to_string(), node().id)));
}

#[test]
fn without_mx_the_headers_stay() {
    let mut p = loaded(
        Context::SidecarInbound,
        vec![wasm("tp", "log_headers"), router()],
    );
    let mut x = exchange(Direction::Inbound);
    x.peer = Some(peer());
    let out = p.run_http(&x);
    let l = lines(&p, "tp");
    let req = l.iter().find(|s| s.starts_with("request headers")).unwrap();
    assert!(
        req.contains(&format!("(\"{HEADER_ID}\", {:?})", peer().id)),
        "{req}"
    );
    assert!(
        req.contains(&format!(
            "(\"{HEADER}\", {:?})",
            header_value(&peer().metadata)
        )),
        "{req}"
    );
    assert!(out.filter_state.is_empty());
}

#[test]
fn outbound_mx_sends_local_headers_and_learns_the_upstream_peer() {
    let mut p = loaded(
        Context::SidecarOutbound,
        vec![mx(), wasm("tp", "log_headers"), router()],
    );
    let mut x = exchange(Direction::Outbound);
    x.peer = Some(peer());
    let out = p.run_http(&x);
    assert!(out
        .upstream_request_headers
        .contains(&(HEADER_ID.to_string(), node().id)));
    assert!(out
        .upstream_request_headers
        .contains(&(HEADER.to_string(), header_value(&node().metadata))));
    // The stats-like plugin runs before MX in the encoder path and still sees the headers.
    let l = lines(&p, "tp");
    let resp = l
        .iter()
        .find(|s| s.starts_with("response headers"))
        .unwrap();
    assert!(resp.contains(HEADER_ID), "{resp}");
    // MX removed them before the client saw the response and stored the peer.
    assert!(!out
        .downstream_response_headers
        .iter()
        .any(|(k, _)| k == HEADER || k == HEADER_ID));
    assert_eq!(
        out.filter_state.get(b"wasm.upstream_peer_id"),
        Some(peer().id.as_bytes())
    );
    assert_eq!(
        peer_node(&out, b"wasm.upstream_peer").workload_name,
        "reviews-v2"
    );
}
