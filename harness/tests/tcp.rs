//! TCP connections: Envoy's network callback order, chunks and ticks on the virtual clock, TCP
//! metadata exchange outcomes.
mod common;

use common::*;
use envoyfilter_model::chain::{ChainSet, Context};
use harness::stream::*;
use proxy_attributes::peer::PeerNode;

fn tcp_proxy() -> envoyfilter_model::chain::Filter {
    native(
        "envoy.filters.network.tcp_proxy",
        "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
    )
}

fn tcp_mx() -> envoyfilter_model::chain::Filter {
    native(
        "istio.metadata_exchange",
        "type.googleapis.com/envoy.tcp.metadataexchange.config.MetadataExchange",
    )
}

fn loaded_tcp(config: &str) -> harness::proxy::Proxy {
    let mut cs = ChainSet::default();
    cs.network.insert(
        Context::SidecarInbound,
        vec![tcp_mx(), wasm("tp", config), tcp_proxy()],
    );
    let mut p = proxy(harness::profile::Profile::ISTIO_1_17);
    p.load(&cs, &resolver).expect("load");
    p
}

fn conn(mx: MxOutcome) -> TcpConnection {
    let x = exchange(Direction::Inbound);
    TcpConnection {
        direction: Direction::Inbound,
        start_ns: T0,
        duration_ns: 10_000_000_000,
        received_bytes: 100,
        sent_bytes: 50,
        chunks: 2,
        connection: x.connection,
        upstream: x.upstream,
        peer: Some(peer()),
        mx,
    }
}

#[test]
fn callback_order_and_ticks_on_the_virtual_clock() {
    let mut p = loaded_tcp("type=tcp;tick=1000");
    assert_eq!(p.tick_period_ms(0), 1000);
    let out = p.run_tcp(&conn(MxOutcome::None));
    let seq: Vec<String> = out
        .callbacks
        .iter()
        .map(|c| {
            format!(
                "{}{}",
                c.call,
                c.result.map(|r| format!(" -> {r}")).unwrap_or_default()
            )
        })
        .collect();
    // 10 s, 2 chunks each way: downstream at 2.5 s and 7.5 s, upstream at 5 s and 10 s; ticks
    // every second from the first event, fired before the data due at the same time.
    let tick = "proxy_on_tick(1)".to_string();
    let mut want = vec![
        "proxy_on_context_create(2, 1)".to_string(),
        "proxy_on_new_connection(2) -> 0".into(),
    ];
    want.extend([tick.clone(), tick.clone()]);
    want.push("proxy_on_downstream_data(2, 50, 0) -> 0".into());
    want.extend([tick.clone(), tick.clone(), tick.clone()]);
    want.push("proxy_on_upstream_data(2, 25, 0) -> 0".into());
    want.extend([tick.clone(), tick.clone()]);
    want.push("proxy_on_downstream_data(2, 50, 1) -> 0".into());
    want.extend([tick.clone(), tick.clone(), tick.clone()]);
    want.extend([
        "proxy_on_upstream_data(2, 25, 1) -> 0".to_string(),
        "proxy_on_upstream_connection_close(2, 0)".into(),
        "proxy_on_downstream_connection_close(2, 2)".into(),
        "proxy_on_done(2) -> 1".into(),
        "proxy_on_log(2)".into(),
        "proxy_on_delete(2)".into(),
    ]);
    assert_eq!(seq, want);
    let ticks = with_prefix(&p, "tp", "cb on_tick");
    let times: Vec<String> = (1..=10)
        .map(|s| format!("cb on_tick 1 {}", T0 as i128 + s * 1_000_000_000))
        .collect();
    assert_eq!(ticks, times);
    assert_eq!(p.now(), T0 + 10_000_000_000);
}

#[test]
fn tcp_mx_found_sets_the_peer_at_first_data() {
    let mut p = loaded_tcp("type=tcp;read=downstream_peer_id");
    let out = p.run_tcp(&conn(MxOutcome::Found));
    assert!(has_line(
        &p,
        "tp",
        &format!(
            "read at downstream_data downstream_peer_id=Some({:?})",
            peer().id
        )
    ));
    let node =
        PeerNode::from_flatbuffer(out.filter_state.get(b"wasm.downstream_peer").unwrap()).unwrap();
    assert_eq!(node.workload_name, "reviews-v2");
}

#[test]
fn tcp_mx_not_found_sets_the_sentinel() {
    let mut p = loaded_tcp("type=tcp");
    let out = p.run_tcp(&conn(MxOutcome::NotFound));
    assert_eq!(
        out.filter_state.get(b"wasm.downstream_peer_id"),
        Some(&b"envoy.wasm.metadata_exchange.peer_unknown"[..])
    );
    assert!(out.filter_state.get(b"wasm.downstream_peer").is_none());
}
