//! A rough native micro-measure of compile and per-request evaluation (no criterion; the lead
//! benchmarks the real .wasm in wasmtime). `cargo run --release -p proxy-attributes --example measure`
//! Numbers include the FakeHost's own cost (a HashMap lookup and a recorded read per fetch).

use proxy_attributes::expr::{Attributes, Expr};
use proxy_attributes::host::fake::FakeHost;
use proxy_attributes::host::HeaderMap;
use proxy_attributes::peer::PeerNode;
use std::time::Instant;

fn main() {
    let peer = PeerNode {
        workload_name: "istio-ingressgateway".into(),
        namespace: "istio-system".into(),
        istio_version: "1.17.8".into(),
        labels: Some(vec![("app".into(), "istio-ingressgateway".into())]),
        ..PeerNode::default()
    };
    let exprs = [
        "(request.method.startsWith('GET') ? 1 : 0)",
        "request.url_path == '/items' && request.method == 'GET'",
        "node.metadata['MESH_ID']",
        "upstream_peer.istio_version",
        "request.headers['x-user'] == 'jason'",
        "response.code >= 500",
        "request.url_path.matches('^/shelves/[[:alnum:]]*/books/[[:alnum:]]*$')",
    ];
    const N: u32 = 20_000;
    for src in exprs {
        let t = Instant::now();
        for _ in 0..200 {
            let _ = Expr::compile(src);
        }
        let compile = t.elapsed() / 200;
        let e = Expr::compile(src).expect("compiles");
        let mut total = std::time::Duration::ZERO;
        for _ in 0..N {
            let host = FakeHost::new()
                .with_str(&["request", "method"], "GET")
                .with_str(&["request", "url_path"], "/items")
                .with_header(HeaderMap::RequestHeaders, "x-user", "jason")
                .with_i64(&["response", "code"], 503)
                .with_str(&["node", "metadata", "MESH_ID"], "cluster.local")
                .with_property(&["upstream_peer"], peer.to_flatbuffer());
            let t = Instant::now();
            let attrs = Attributes::new(&host);
            let _ = std::hint::black_box(e.eval(&attrs));
            drop(attrs);
            total += t.elapsed();
        }
        println!(
            "{:>9.1?} compile  {:>9.1?} eval (fresh Attributes)  {src}",
            compile,
            total / N
        );
    }
}
