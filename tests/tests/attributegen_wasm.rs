//! istio/proxy's attributegen unit matrix (release-1.17 `extensions/attributegen/plugin_test.cc`),
//! run against the built `attributegen_plugin.wasm` in the harness: each case configures the
//! plugin, runs one HTTP stream and checks the filter state `wasm.<output_attribute>` and the
//! plugin's `error_count` counters, exactly what Istio's test checks.
//! The rule files are attributegen-plugin/testdata/{operation,responseCode}.json (Istio's testdata).

use envoyfilter_model::chain::{ChainSet, Context, Filter, FilterKind, WasmCode, WasmFilter};
use harness::profile::Profile;
use harness::proxy::{HttpOutcome, Proxy};
use harness::stream::*;
use std::sync::OnceLock;

const CONFIG_ERRORS: &str = "wasm_filter.attributegen.type.config.error_count";
const RUNTIME_ERRORS: &str = "wasm_filter.attributegen.type.runtime.error_count";

fn module() -> &'static [u8] {
    static WASM: OnceLock<Vec<u8>> = OnceLock::new();
    WASM.get_or_init(|| {
        std::fs::read(xtask::plugins::plugin_path("attributegen_plugin.wasm"))
            .expect("read attributegen_plugin.wasm")
    })
}

fn testdata(file: &str) -> String {
    let path = xtask::workspace::root()
        .join("attributegen-plugin/testdata")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn node() -> LocalNode {
    let serde_json::Value::Object(metadata) = serde_json::json!({
        "NAME": "server-0", "NAMESPACE": "default", "WORKLOAD_NAME": "server",
        "LABELS": {"app": "server"}, "ISTIO_VERSION": "1.17.8"
    }) else {
        unreachable!()
    };
    LocalNode {
        id: "server".into(),
        cluster: "server".into(),
        metadata,
    }
}

/// A proxy whose inbound chain is attributegen (root_id "", as Istio registers it) then the
/// router. With the canary on, configure runs twice as on Envoy (canary VM + worker VM), which is
/// why Istio's tests expect a config error count of 2 after one bad configuration.
fn proxy(config: &str) -> Proxy {
    let mut chains = ChainSet::default();
    chains.http.insert(
        Context::SidecarInbound,
        vec![
            Filter {
                name: "istio.attributegen".into(),
                kind: FilterKind::Wasm(WasmFilter {
                    plugin_name: "attributegen".into(),
                    root_id: String::new(),
                    vm_id: "attributegen".into(),
                    runtime: "envoy.wasm.runtime.v8".into(),
                    code: WasmCode::LocalFile("attributegen_plugin.wasm".into()),
                    configuration: config.as_bytes().to_vec(),
                    vm_configuration: Vec::new(),
                    fail_open: false,
                }),
                origin: String::new(),
            },
            Filter {
                name: "envoy.filters.http.router".into(),
                kind: FilterKind::Native {
                    type_url: "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                        .into(),
                },
                origin: String::new(),
            },
        ],
    );
    let mut p = Proxy::new(Profile::ISTIO_1_17, node());
    p.set_canary(true);
    p.load(&chains, &|_: &WasmCode| Ok(module().to_vec()))
        .expect("attributegen loads (it never rejects its configuration)");
    p
}

fn request(method: &str, path: &str, status: u16) -> HttpExchange {
    let h = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let status = status.to_string();
    HttpExchange {
        direction: Direction::Inbound,
        start_ns: 1_700_000_000_000_000_000,
        duration_ns: 1_000_000,
        protocol: "HTTP/1.1".into(),
        request: HttpMessage {
            headers: h(&[
                (":method", method),
                (":path", path),
                (":authority", "server"),
                (":scheme", "http"),
            ]),
            body: Vec::new(),
            trailers: Vec::new(),
        },
        response: Some(HttpMessage {
            headers: h(&[(":status", status.as_str())]),
            body: Vec::new(),
            trailers: Vec::new(),
        }),
        response_flags: 0,
        code_details: "via_upstream".into(),
        connection: ConnectionInfo::default(),
        upstream: UpstreamInfo {
            cluster_name: "inbound|8080||".into(),
            ..Default::default()
        },
        route_name: "default".into(),
        peer: None,
        grpc_messages: None,
    }
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
