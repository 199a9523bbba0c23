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

use e2e_tests::attributegen::{proxy, request, testdata, CONFIG_ERRORS};
use harness::profile::Profile;
use harness::vm::cache::ModuleCache;

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
    // One compiled module for the 60 proxies (compiling per proxy is what takes time).
    let cache = ModuleCache::new();
    let mut failures = Vec::new();
    for profile in Profile::ALL {
        for case in cases() {
            let mut p = proxy(profile, &case.config, Some(&cache));
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
