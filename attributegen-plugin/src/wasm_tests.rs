//! Istio's attributegen cases inside wasm32. A unit-test module, not `tests/`: only the lib's own
//! test build has `cfg(test)`, which keeps the `proxy_wasm` glue (and its `env.proxy_*`
//! imports, which the node runner cannot satisfy) out. Run with
//! `cargo test -p attributegen-plugin --target wasm32-unknown-unknown` once
//! `wasm-bindgen-test-runner` is installed.

use crate::config::Phase;
use crate::output::FakeOutput;
use crate::plugin::{Plugin, CONFIG_ERROR_METRIC};
use proxy_attributes::host::fake::FakeHost;
use wasm_bindgen_test::wasm_bindgen_test;

fn run(config: &str, method: &str, path: &str, code: i64) -> FakeOutput {
    let host = FakeHost::new()
        .with_str(&["request", "method"], method)
        .with_str(&["request", "url_path"], path)
        .with_i64(&["response", "code"], code);
    let out = FakeOutput::default();
    let mut p = Plugin::default();
    assert!(p.configure(config.as_bytes(), &out));
    p.run(Phase::OnRequest, &host, &out);
    p.run(Phase::AfterResponse, &host, &out);
    out
}

#[wasm_bindgen_test]
fn operation_and_response_code_files() {
    let op = include_str!("../testdata/operation.json");
    let out = run(op, "GET", "/shelves/a101/books/b1122", 200);
    assert_eq!(
        out.property("istio.operationId").as_deref(),
        Some("GetBook")
    );
    let out = run(op, "GET", "/shelves/-----/books/b1122", 200);
    assert_eq!(out.property("istio.operationId"), None);
    let rc = include_str!("../testdata/responseCode.json");
    assert_eq!(
        run(rc, "GET", "/", 504)
            .property("istio.responseClass")
            .as_deref(),
        Some("5xx")
    );
}

#[wasm_bindgen_test]
fn bad_configs_count_and_do_not_trap() {
    let bad =
        r#"{"attributes":[{"output_attribute":"x","match":[{"value":"v","condition":"x(1,"}]}]}"#;
    let out = run(bad, "GET", "/", 200);
    assert_eq!(out.counter(CONFIG_ERROR_METRIC), 1);
    let out = run("attributes = [ output_attribute ];", "GET", "/", 200);
    assert_eq!(out.counter(CONFIG_ERROR_METRIC), 1);
}
