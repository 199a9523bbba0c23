//! The same CEL and peer-metadata paths, run inside wasm32 (dlmalloc, 32-bit usize, 1 MiB
//! stack). Run with `cargo test -p proxy-attributes --target wasm32-unknown-unknown` once
//! `wasm-bindgen-test-runner` is installed; natively this file compiles to nothing.
#![cfg(target_arch = "wasm32")]

use proxy_attributes::expr::{to_label, Attributes, Expr, Value};
use proxy_attributes::host::fake::FakeHost;
use proxy_attributes::host::HeaderMap;
use proxy_attributes::peer::{struct_header_value, PeerNode};
use wasm_bindgen_test::wasm_bindgen_test;

fn peer() -> PeerNode {
    PeerNode {
        workload_name: "productpage-v1".into(),
        namespace: "default".into(),
        istio_version: "1.17.8".into(),
        labels: Some(vec![
            ("app".into(), "productpage".into()),
            ("version".into(), "v1".into()),
        ]),
        ..PeerNode::default()
    }
}

#[wasm_bindgen_test]
fn cel_eval_with_matches_and_lazy_reads() {
    let host = FakeHost::new()
        .with_str(&["request", "method"], "GET")
        .with_str(&["request", "url_path"], "/shelves/a101/books/b1122")
        .with_header(HeaderMap::RequestHeaders, "x-user", "jason")
        .with_i64(&["response", "code"], 503)
        .with_property(&["upstream_peer"], peer().to_flatbuffer());
    let attrs = Attributes::new(&host);
    let rule = Expr::compile(
        "request.url_path.matches('^/shelves/[[:alnum:]]*/books/[[:alnum:]]*$') && request.method == 'GET'",
    )
    .unwrap();
    assert_eq!(rule.eval(&attrs), Ok(Value::Bool(true)));
    let code = Expr::compile("string(response.code)").unwrap();
    assert_eq!(
        to_label(&code.eval(&attrs).unwrap()).as_deref(),
        Some("503")
    );
    let label = Expr::compile("upstream_peer.labels['version'].value").unwrap();
    assert_eq!(
        to_label(&label.eval(&attrs).unwrap()).as_deref(),
        Some("v1")
    );
    let header = Expr::compile("request.headers['x-user'] == 'jason'").unwrap();
    assert_eq!(header.eval(&attrs), Ok(Value::Bool(true)));
    assert_eq!(host.reads().len(), 5);
}

#[wasm_bindgen_test]
fn malformed_and_deep_expressions_fail_cleanly() {
    for src in ["x(1,", "1 +", "{'a':", "[1,2].map(x,"] {
        assert!(Expr::compile(src).is_err(), "{src}");
    }
    let deep = format!("{}1{}", "[".repeat(4000), "]".repeat(4000));
    assert!(Expr::compile(&deep).is_err());
}

#[wasm_bindgen_test]
fn peer_decoders() {
    let node = peer();
    assert_eq!(
        PeerNode::from_flatbuffer(&node.to_flatbuffer()),
        Some(node.clone())
    );
    let hdr = struct_header_value(&node.to_struct());
    assert_eq!(PeerNode::from_header_value(&hdr), Some(node));
    assert!(PeerNode::from_flatbuffer(&[0xff; 64]).is_none());
    assert!(PeerNode::from_header_value("%%%").is_none());
}
