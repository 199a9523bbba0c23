//! The attributegen fixture of Istio's `extensions/attributegen/plugin_test.cc`, shared by the
//! tests that run its matrix on the built module (`attributegen_wasm.rs` on 1.17 with extra
//! cases, `istio_attributegen_profiles.rs` on every profile): an inbound chain of attributegen
//! (root_id "", as Istio registers it) then the router, Istio's rule files, and its requests.

use std::sync::OnceLock;

use envoyfilter_model::chain::{ChainSet, Context, Filter, FilterKind, WasmCode, WasmFilter};
use harness::profile::Profile;
use harness::proxy::Proxy;
use harness::stream::*;
use harness::vm::cache::ModuleCache;

pub const CONFIG_ERRORS: &str = "wasm_filter.attributegen.type.config.error_count";
pub const RUNTIME_ERRORS: &str = "wasm_filter.attributegen.type.runtime.error_count";

/// The built `attributegen_plugin.wasm` (built first if needed), read once.
pub fn module() -> &'static [u8] {
    static WASM: OnceLock<Vec<u8>> = OnceLock::new();
    WASM.get_or_init(|| {
        std::fs::read(xtask::plugins::plugin_path("attributegen_plugin.wasm"))
            .expect("read attributegen_plugin.wasm")
    })
}

/// A rule file of `attributegen-plugin/testdata/` (Istio's `operation.json`, `responseCode.json`,
/// and the book's rules).
pub fn testdata(file: &str) -> String {
    let path = xtask::workspace::root()
        .join("attributegen-plugin/testdata")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn node() -> LocalNode {
    let serde_json::Value::Object(metadata) = serde_json::json!({
        "NAME": "server-0", "NAMESPACE": "default", "WORKLOAD_NAME": "server",
        "LABELS": {"app": "server"}
    }) else {
        unreachable!()
    };
    LocalNode {
        id: "server".into(),
        cluster: "server".into(),
        metadata,
    }
}

fn chains(config: &str) -> ChainSet {
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
                    config: Default::default(),
                },
                origin: String::new(),
            },
        ],
    );
    chains
}

/// A proxy of `profile` with attributegen configured with `config`. The canary is on, so
/// configure runs twice as on Envoy (canary VM + worker VM), which is why Istio's tests expect a
/// config error count of 2 after one bad configuration. `cache` shares compiled modules between
/// proxies (compiling per proxy is what takes time).
pub fn proxy(profile: Profile, config: &str, cache: Option<&ModuleCache>) -> Proxy {
    let mut p = match cache {
        Some(c) => Proxy::with_cache(profile, node(), c.clone()),
        None => Proxy::new(profile, node()),
    };
    p.set_canary(true);
    p.load(&chains(config), &|_: &WasmCode| Ok(module().to_vec()))
        .expect("attributegen loads (it never rejects its configuration)");
    p
}

/// Istio's request: `:path`, `:method` when the test sets one, and `:status` (plus the scheme
/// and authority Envoy requires).
pub fn request(method: Option<&str>, path: &str, status: u16) -> HttpExchange {
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
    x.route_name = "default".into();
    x.upstream.cluster_name = "inbound|8080||".into();
    x.request.headers = headers;
    x.response = Some(HttpMessage {
        headers: vec![(":status".into(), status.to_string())],
        body: Vec::new(),
        trailers: Vec::new(),
    });
    x
}
