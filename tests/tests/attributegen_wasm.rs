//! istio/proxy's attributegen unit matrix (release-1.17 `extensions/attributegen/plugin_test.cc`),
//! run against the built `attributegen_plugin.wasm` in the harness: each case configures the
//! plugin, runs one HTTP stream and checks the filter state `wasm.<output_attribute>` and the
//! plugin's `error_count` counters, exactly what Istio's test checks.
//! The rule files are attributegen-plugin/testdata/{operation,responseCode}.json (Istio's testdata).

use e2e_tests::attributegen::{testdata, CONFIG_ERRORS, RUNTIME_ERRORS};
use harness::profile::Profile;
use harness::proxy::{HttpOutcome, Proxy};
use harness::stream::*;

fn proxy(config: &str) -> Proxy {
    e2e_tests::attributegen::proxy(Profile::ISTIO_1_17, config, None)
}

fn request(method: &str, path: &str, status: u16) -> HttpExchange {
    e2e_tests::attributegen::request(Some(method), path, status)
}

fn attribute<'a>(out: &'a HttpOutcome, name: &str) -> Option<&'a str> {
    out.filter_state
        .get(format!("wasm.{name}").as_bytes())
        .map(|v| std::str::from_utf8(v).expect("utf-8 value"))
}

fn counter(p: &Proxy, name: &str) -> Option<u64> {
    p.stats().value(name)
}

const ONE_MATCH: &str = r#"{"attributes":[{"output_attribute":"istio.operationId",
  "match":[{"value":"GetStatus","condition":"request.url_path.startsWith('/status')"}]}]}"#;

#[test]
fn one_match() {
    let mut p = proxy(ONE_MATCH);
    let out = p.run_http(&request("GET", "/status/207", 404));
    assert_eq!(attribute(&out, "istio.operationId"), Some("GetStatus"));
    assert_eq!(counter(&p, CONFIG_ERRORS), Some(0));
    assert_eq!(counter(&p, RUNTIME_ERRORS), Some(0));
}

#[test]
fn expression_evaluation_error_sets_nothing() {
    // The condition yields a string, not a bool: an evaluation error, counted at runtime.
    let mut p = proxy(
        r#"{"attributes":[{"output_attribute":"istio.operationId",
          "match":[{"value":"GetStatus","condition":"request.url_path"}]}]}"#,
    );
    let out = p.run_http(&request("GET", "/status/207", 404));
    assert_eq!(attribute(&out, "istio.operationId"), None);
    assert_eq!(counter(&p, RUNTIME_ERRORS), Some(1));
}

#[test]
fn unparseable_config_counts_two_config_errors() {
    let mut p = proxy("attributes = [ output_attribute ];");
    assert_eq!(counter(&p, CONFIG_ERRORS), Some(2));
    // No generators: the stream goes through untouched.
    let out = p.run_http(&request("GET", "/status/207", 404));
    assert_eq!(attribute(&out, "istio.operationId"), None);
}

#[test]
fn bad_expression_counts_two_config_errors() {
    let p = proxy(
        r#"{"attributes":[{"output_attribute":"istio.operationId",
          "match":[{"value":"GetStatus","condition":"if a = b then return 5"}]}]}"#,
    );
    assert_eq!(counter(&p, CONFIG_ERRORS), Some(2));
}

#[test]
fn no_match_sets_nothing() {
    let mut p = proxy(
        r#"{"attributes":[{"output_attribute":"istio.operationId",
          "match":[{"value":"GetStatus","condition":"request.url_path.startsWith('/status') && request.method == 'POST'"}]}]}"#,
    );
    let out = p.run_http(&request("GET", "/status/207", 404));
    assert_eq!(attribute(&out, "istio.operationId"), None);
    assert_eq!(counter(&p, RUNTIME_ERRORS), Some(0));
}

#[test]
fn operation_file_cases() {
    let mut p = proxy(&testdata("operation.json"));
    let cases = [
        ("GET", "/books", Some("ListBooks")), // OperationFileList
        ("POST", "/books", None),             // OperationFileListNoMatch
        ("GET", "/shelves/a101/books/b1122", Some("GetBook")), // OperationFileGet
        ("GET", "/shelves/-----/books/b1122", None), // OperationFileGetNoMatch
    ];
    for (method, path, want) in cases {
        let out = p.run_http(&request(method, path, 200));
        assert_eq!(
            attribute(&out, "istio.operationId"),
            want,
            "{method} {path}"
        );
    }
}

#[test]
fn response_code_file_cases() {
    let mut p = proxy(&testdata("responseCode.json"));
    // ResponseCodeFileMatch1..3: the first matching class wins, specific codes before ranges.
    for (status, want) in [(207, "2xx"), (404, "404"), (504, "5xx")] {
        let out = p.run_http(&request("GET", "/", status));
        assert_eq!(
            attribute(&out, "istio.responseClass"),
            Some(want),
            "{status}"
        );
    }
}

#[test]
fn book_rules_classify_items_calls() {
    let mut p = proxy(&testdata("book.json"));
    for (method, path, want) in [
        ("GET", "/items", Some("getitems")),
        ("POST", "/items", Some("createitem")),
        ("DELETE", "/items", Some("deleteitem")),
        ("PUT", "/items", None),
        ("GET", "/other", None),
    ] {
        let out = p.run_http(&request(method, path, 200));
        assert_eq!(
            attribute(&out, "istio_operationId"),
            want,
            "{method} {path}"
        );
    }
}
