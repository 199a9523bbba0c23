//! Istio's `extensions/attributegen/plugin_test.cc` matrix (release-1.17), same inputs and
//! expectations (envoyfilter-spec §3.6), plus the book's rules and the semantics of §3.5.

use crate::config::Phase;
use crate::output::FakeOutput;
use crate::plugin::{Plugin, CONFIG_ERROR_METRIC, RUNTIME_ERROR_METRIC};
use proxy_attributes::host::fake::FakeHost;

const OPERATION: &str = include_str!("../testdata/operation.json");
const RESPONSE_CODE: &str = include_str!("../testdata/responseCode.json");
const BOOK: &str = include_str!("../testdata/book.json");

fn request(method: &str, path: &str, code: i64) -> FakeHost {
    // Envoy derives url_path from :path (no query here).
    FakeHost::new()
        .with_str(&["request", "method"], method)
        .with_str(&["request", "path"], path)
        .with_str(&["request", "url_path"], path)
        .with_i64(&["response", "code"], code)
}

fn configured(config: &str, out: &FakeOutput) -> Plugin {
    let mut p = Plugin::default();
    assert!(
        p.configure(config.as_bytes(), out),
        "on_configure must return true"
    );
    p
}

/// Runs one stream through both phases and returns the output.
fn stream(config: &str, host: &FakeHost) -> FakeOutput {
    let out = FakeOutput::default();
    let p = configured(config, &out);
    p.run(Phase::OnRequest, host, &out);
    p.run(Phase::AfterResponse, host, &out);
    out
}

fn single_rule(condition: &str) -> String {
    format!(
        r#"{{"attributes":[{{"output_attribute":"istio.operationId","match":[{{"value":"GetStatus","condition":"{condition}"}}]}}]}}"#
    )
}

#[test]
fn one_match() {
    let out = stream(
        &single_rule("request.url_path.startsWith('/status')"),
        &request("GET", "/status/207", 404),
    );
    assert_eq!(
        out.property("istio.operationId").as_deref(),
        Some("GetStatus")
    );
    assert_eq!(out.counter(RUNTIME_ERROR_METRIC), 0);
}

#[test]
fn expr_eval_error() {
    // The condition is a string, not a bool: nothing is written, one runtime error.
    let out = stream(
        &single_rule("request.url_path"),
        &request("GET", "/status/207", 404),
    );
    assert_eq!(out.property("istio.operationId"), None);
    assert_eq!(out.counter(RUNTIME_ERROR_METRIC), 1);
}

#[test]
fn unparseable_config() {
    // Istio expects 2: onConfigure runs on the base VM and on the thread-local VM.
    let out = FakeOutput::default();
    for _vm in 0..2 {
        let p = configured("attributes = [ output_attribute ];", &out);
        assert!(p.generators().is_empty());
    }
    assert_eq!(out.counter(CONFIG_ERROR_METRIC), 2);
}

#[test]
fn bad_expr() {
    let out = FakeOutput::default();
    for _vm in 0..2 {
        let p = configured(&single_rule("if a = b then return 5"), &out);
        assert!(p.generators().is_empty());
    }
    assert_eq!(out.counter(CONFIG_ERROR_METRIC), 2);
    assert_eq!(out.counter(RUNTIME_ERROR_METRIC), 0);
}

#[test]
fn no_match() {
    let out = stream(
        &single_rule("request.url_path.startsWith('/status') && request.method == 'POST'"),
        &request("GET", "/status/207", 404),
    );
    assert_eq!(out.property("istio.operationId"), None);
    assert_eq!(out.counter(RUNTIME_ERROR_METRIC), 0);
}

#[test]
fn operation_file() {
    let cases = [
        ("GET", "/books", Some("ListBooks")), // OperationFileList
        ("POST", "/books", None),             // OperationFileListNoMatch
        ("GET", "/shelves/a101/books/b1122", Some("GetBook")), // OperationFileGet
        ("GET", "/shelves/-----/books/b1122", None), // OperationFileGetNoMatch
        ("POST", "/books/", Some("CreateBook1")),
    ];
    for (method, path, want) in cases {
        let out = stream(OPERATION, &request(method, path, 200));
        assert_eq!(
            out.property("istio.operationId").as_deref(),
            want,
            "{method} {path}"
        );
        assert_eq!(out.counter(RUNTIME_ERROR_METRIC), 0);
    }
}

#[test]
fn response_code_file() {
    for (code, want) in [
        (207, "2xx"), // ResponseCodeFileMatch1
        (404, "404"), // ResponseCodeFileMatch2
        (504, "5xx"), // ResponseCodeFileMatch3
        (503, "503"),
        (302, "3xx"),
        (418, "4xx"),
    ] {
        let out = stream(RESPONSE_CODE, &request("GET", "/", code));
        assert_eq!(
            out.property("istio.responseClass").as_deref(),
            Some(want),
            "{code}"
        );
    }
    // No response code (stream reset): an evaluation error, nothing written.
    let host = FakeHost::new().with_str(&["request", "url_path"], "/");
    let out = stream(RESPONSE_CODE, &host);
    assert_eq!(out.property("istio.responseClass"), None);
    assert_eq!(out.counter(RUNTIME_ERROR_METRIC), 1);
}

#[test]
fn book_rules() {
    for (method, want) in [
        ("GET", Some("getitems")),
        ("POST", Some("createitem")),
        ("DELETE", Some("deleteitem")),
        ("PUT", None),
    ] {
        let out = stream(BOOK, &request(method, "/items", 200));
        assert_eq!(
            out.property("istio_operationId").as_deref(),
            want,
            "{method}"
        );
    }
}

#[test]
fn phases_run_in_their_own_callback() {
    let config = r#"{"attributes":[
        {"output_attribute":"early","phase":"ON_REQUEST","match":[{"value":"e"}]},
        {"output_attribute":"late","match":[{"value":"l"}]}]}"#;
    let out = FakeOutput::default();
    let p = configured(config, &out);
    let host = request("GET", "/", 200);
    p.run(Phase::OnRequest, &host, &out);
    assert_eq!(out.property("early").as_deref(), Some("e"));
    assert_eq!(out.property("late"), None);
    p.run(Phase::AfterResponse, &host, &out);
    assert_eq!(out.property("late").as_deref(), Some("l"));
    assert_eq!(out.properties.borrow().len(), 2);
}

#[test]
fn first_true_wins_errors_abort_and_last_writer_wins() {
    let config = r#"{"attributes":[
        {"output_attribute":"a","match":[
            {"value":"first","condition":"request.method == 'GET'"},
            {"value":"second","condition":"true"}]},
        {"output_attribute":"b","match":[
            {"value":"never","condition":"request.headers['missing'] == 'x'"},
            {"value":"fallback","condition":""}]},
        {"output_attribute":"a","match":[{"value":"override","condition":""}]}]}"#;
    let out = stream(config, &request("GET", "/", 200));
    assert_eq!(out.property("a").as_deref(), Some("override"));
    // The error in b's first match aborts b: the empty-condition fallback is not reached.
    assert_eq!(out.property("b"), None);
    assert_eq!(out.counter(RUNTIME_ERROR_METRIC), 1);
}

#[test]
fn one_bad_condition_drops_every_generator() {
    let config = r#"{"attributes":[
        {"output_attribute":"good","match":[{"value":"v","condition":"true"}]},
        {"output_attribute":"bad","match":[{"value":"v","condition":"x(1,"}]}]}"#;
    let out = stream(config, &request("GET", "/", 200));
    assert!(out.properties.borrow().is_empty());
    assert_eq!(out.counter(CONFIG_ERROR_METRIC), 1);
}

#[test]
fn config_error_names_the_field() {
    let config: crate::config::PluginConfig = serde_json::from_str(
        r#"{"attributes":[{"output_attribute":"x","match":[{"value":"a","condition":"true"},{"value":"b","condition":"1 +"}]}]}"#,
    )
    .unwrap();
    let err = crate::generator::compile(&config).unwrap_err();
    assert_eq!((err.attribute_index, err.match_index), (0, 1));
    let text = err.to_string();
    assert!(
        text.starts_with("Cannot create expression: <1 +> for x result:"),
        "{text}"
    );
    assert!(
        text.ends_with("(attributes[0].match[1].condition)"),
        "{text}"
    );
}

#[test]
fn reconfigure_replaces_generators_and_keeps_counter_ids() {
    let out = FakeOutput::default();
    let mut p = configured(BOOK, &out);
    assert_eq!(p.generators().len(), 1);
    assert!(p.configure(b"not json", &out));
    assert!(p.generators().is_empty());
    assert!(p.configure(OPERATION.as_bytes(), &out));
    assert_eq!(p.generators().len(), 1);
    assert_eq!(out.counter(CONFIG_ERROR_METRIC), 1);
    assert_eq!(out.counters.borrow().len(), 2);
}
