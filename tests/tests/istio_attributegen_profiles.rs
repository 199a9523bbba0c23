//! istio/proxy `extensions/attributegen/plugin_test.cc` (identical assertions on release-1.13 …
//! 1.17; `testdata/operation.json` and `responseCode.json` identical too) on every Envoy profile:
//! `attributegen_wasm.rs` runs the matrix on the 1.17 profile, this file runs all twelve cases
//! on the 1.13 … 1.17 profiles so each branch group is checked on its own Envoy.
//!
//! Per case, as Istio's `verifyRequest`: configure, run one HTTP stream, then the filter state
//! `wasm.<output_attribute>` is present with the expected value, or absent; for the two config
//! failures, `wasm_filter.attributegen.type.config.error_count` is 2 (canary + worker VM configure,
//! as on Envoy). Requests and responses are Istio's: `:path`, `:method` (when the test sets one)
//! and `:status`.

use envoyfilter_model::chain::{ChainSet, Context, Filter, FilterKind, WasmCode, WasmFilter};
use harness::profile::Profile;
use harness::proxy::Proxy;
use harness::stream::*;
use harness::vm::cache::ModuleCache;

const CONFIG_ERRORS: &str = "wasm_filter.attributegen.type.config.error_count";

fn module() -> Vec<u8> {
    std::fs::read(xtask::plugins::plugin_path("attributegen_plugin.wasm"))
        .expect("read attributegen_plugin.wasm")
}

fn testdata(file: &str) -> String {
    let path = xtask::workspace::root()
        .join("attributegen-plugin/testdata")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn proxy(profile: Profile, config: &str, bytes: &[u8], cache: &ModuleCache) -> Proxy {
    let serde_json::Value::Object(metadata) = serde_json::json!({
        "NAME": "server-0", "NAMESPACE": "default", "WORKLOAD_NAME": "server",
        "LABELS": {"app": "server"}
    }) else {
        unreachable!()
    };
    let node = LocalNode {
        id: "server".into(),
        cluster: "server".into(),
        metadata,
    };
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
    let mut p = Proxy::with_cache(profile, node, cache.clone());
    p.set_canary(true);
    p.load(&chains, &|_: &WasmCode| Ok(bytes.to_vec()))
        .expect("attributegen loads");
    p
}

/// Istio's request: only the headers the test sets (plus the scheme/authority Envoy requires).
fn request(method: Option<&str>, path: &str, status: u16) -> HttpExchange {
    let mut headers = vec![(":path".to_string(), path.to_string())];
    if let Some(m) = method {
        headers.push((":method".into(), m.into()));
    }
    headers.push((":authority".into(), "server".into()));
    headers.push((":scheme".into(), "http".into()));
    let mut x = HttpExchange::new(Direction::Inbound);
    x.start_ns = 1_700_000_000_000_000_000;
    x.duration_ns = 1_000_000;
    x.protocol = "HTTP/1.1".into();
    x.code_details = "via_upstream".into();
    x.request.headers = headers;
    x.response = Some(HttpMessage {
        headers: vec![(":status".into(), status.to_string())],
        body: Vec::new(),
        trailers: Vec::new(),
    });
    x
}

enum Want {
    /// `verifyRequest(..., found = true, value)`.
    Set(&'static str, &'static str),
    /// `verifyRequest(..., found = false)`.
    Unset(&'static str),
    /// `readMetric(config.error_count) == 2`.
    ConfigErrors,
}

struct Case {
    name: &'static str,
    config: String,
    method: Option<&'static str>,
    path: &'static str,
    status: u16,
    want: Want,
}

fn cases() -> Vec<Case> {
    let rule = |condition: &str| {
        format!(
            r#"{{"attributes": [{{"output_attribute": "istio.operationId",
            "match": [{{"value": "GetStatus", "condition": "{condition}"}}]}}]}}"#
        )
    };
    let op = testdata("operation.json");
    let rc = testdata("responseCode.json");
    use Want::*;
    let c = |name, config: &String, method, path, status, want| Case {
        name,
        config: config.clone(),
        method,
        path,
        status,
        want,
    };
    vec![
        c("OneMatch", &rule("request.url_path.startsWith('/status')"), None, "/status/207", 404, Set("istio.operationId", "GetStatus")),
        c("ExprEvalError", &rule("request.url_path"), None, "/status/207", 404, Unset("istio.operationId")),
        c("UnparseableConfig", &"\n                    attributes = [ output_attribute ];\n  ".to_string(), None, "/", 200, ConfigErrors),
        c("BadExpr", &rule("if a = b then return\n                            5"), None, "/", 200, ConfigErrors),
        c("NoMatch", &rule("request.url_path.startsWith('/status') &&\n                            request.method == 'POST'"), Some("GET"), "/status/207", 404, Unset("istio.operationId")),
        c("OperationFileList", &op, Some("GET"), "/books", 200, Set("istio.operationId", "ListBooks")),
        c("OperationFileListNoMatch", &op, Some("POST"), "/books", 200, Unset("istio.operationId")),
        c("OperationFileGet", &op, Some("GET"), "/shelves/a101/books/b1122", 200, Set("istio.operationId", "GetBook")),
        c("OperationFileGetNoMatch", &op, Some("GET"), "/shelves/-----/books/b1122", 200, Unset("istio.operationId")),
        c("ResponseCodeFileMatch1", &rc, Some("GET"), "/books", 207, Set("istio.responseClass", "2xx")),
        c("ResponseCodeFileMatch2", &rc, Some("GET"), "/books", 404, Set("istio.responseClass", "404")),
        c("ResponseCodeFileMatch3", &rc, Some("GET"), "/books", 504, Set("istio.responseClass", "5xx")),
    ]
}

#[test]
fn attributegen_plugin_test_cc_on_every_profile() {
    let bytes = module();
    // One compiled module for the 60 proxies (compiling per proxy is what takes time).
    let cache = ModuleCache::new();
    let mut failures = Vec::new();
    for profile in Profile::ALL {
        for case in cases() {
            let mut p = proxy(profile, &case.config, &bytes, &cache);
            let got = match &case.want {
                Want::ConfigErrors => {
                    let n = p.stats().value(CONFIG_ERRORS);
                    (n != Some(2)).then(|| format!("config error_count {n:?}, want 2"))
                }
                Want::Set(attr, _) | Want::Unset(attr) => {
                    let out = p.run_http(&request(case.method, case.path, case.status));
                    let key = format!("wasm.{attr}");
                    let have = out
                        .filter_state
                        .get(key.as_bytes())
                        .map(|v| String::from_utf8_lossy(v).into_owned());
                    let want = match &case.want {
                        Want::Set(_, v) => Some(v.to_string()),
                        _ => None,
                    };
                    (have != want).then(|| format!("{key} = {have:?}, want {want:?}"))
                }
            };
            if let Some(g) = got {
                failures.push(format!("{profile:?} {}: {g}", case.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
