//! Shared test setup: the test plugin built once per test process, one module cache, and
//! builders for chains, nodes and exchanges.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use envoyfilter_model::chain::{ChainSet, Context, Filter, FilterKind, WasmCode, WasmFilter};
use harness::profile::Profile;
use harness::proxy::Proxy;
use harness::stream::*;
use harness::vm::cache::ModuleCache;

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds `harness/test-plugin` for wasm32 (nested cargo, own target dir) once per process.
pub fn test_plugin() -> &'static [u8] {
    static WASM: OnceLock<Vec<u8>> = OnceLock::new();
    WASM.get_or_init(|| {
        let root = workspace();
        let target = root.join("target").join("nested");
        let status = std::process::Command::new(env!("CARGO"))
            .current_dir(&root)
            .env("CARGO_TARGET_DIR", &target)
            .args([
                "build",
                "--target",
                "wasm32-unknown-unknown",
                "--profile",
                "wasm",
                "-p",
                "harness-test-plugin",
            ])
            .status()
            .expect("run nested cargo build");
        assert!(status.success(), "building the test plugin failed");
        std::fs::read(target.join("wasm32-unknown-unknown/wasm/harness_test_plugin.wasm"))
            .expect("read test plugin")
    })
}

pub fn cache() -> ModuleCache {
    static CACHE: OnceLock<ModuleCache> = OnceLock::new();
    CACHE.get_or_init(ModuleCache::new).clone()
}

pub fn node() -> LocalNode {
    let metadata = serde_json::json!({
        "NAME": "productpage-v1-123",
        "NAMESPACE": "default",
        "WORKLOAD_NAME": "productpage-v1",
        "CLUSTER_ID": "Kubernetes",
        "MESH_ID": "cluster.local",
        "PORT": 15020,
        "LABELS": {"app": "productpage", "version": "v1"},
    });
    let serde_json::Value::Object(metadata) = metadata else {
        unreachable!()
    };
    LocalNode {
        id: "sidecar~10.0.0.1~productpage-v1-123.default~default.svc.cluster.local".into(),
        cluster: "productpage.default".into(),
        metadata,
    }
}

pub fn peer() -> Peer {
    let serde_json::Value::Object(metadata) = serde_json::json!({
        "NAME": "reviews-v2-456",
        "NAMESPACE": "default",
        "WORKLOAD_NAME": "reviews-v2",
        "LABELS": {"app": "reviews", "version": "v2"},
    }) else {
        unreachable!()
    };
    Peer {
        id: "sidecar~10.0.0.2~reviews-v2-456.default~default.svc.cluster.local".into(),
        metadata: metadata.into(),
    }
}

pub fn wasm(name: &str, config: &str) -> Filter {
    wasm_vm(name, config, name)
}

/// A test-plugin filter with its own vm_id.
pub fn wasm_vm(name: &str, config: &str, vm_id: &str) -> Filter {
    Filter {
        name: name.into(),
        kind: FilterKind::Wasm(WasmFilter {
            plugin_name: name.into(),
            root_id: name.into(),
            vm_id: vm_id.into(),
            runtime: "envoy.wasm.runtime.v8".into(),
            code: WasmCode::LocalFile("test_plugin.wasm".into()),
            configuration: config.as_bytes().to_vec(),
            vm_configuration: Vec::new(),
            fail_open: false,
        }),
        origin: String::new(),
    }
}

pub fn fail_open(mut f: Filter) -> Filter {
    if let FilterKind::Wasm(w) = &mut f.kind {
        w.fail_open = true;
    }
    f
}

pub fn native(name: &str, type_url: &str) -> Filter {
    Filter {
        name: name.into(),
        kind: FilterKind::Native {
            type_url: type_url.into(),
            config: Default::default(),
        },
        origin: String::new(),
    }
}

pub fn mx() -> Filter {
    native(
        "istio.metadata_exchange",
        "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
    )
}

pub fn router() -> Filter {
    native(
        "envoy.filters.http.router",
        "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
    )
}

pub fn http_chain(ctx: Context, filters: Vec<Filter>) -> ChainSet {
    let mut cs = ChainSet::default();
    cs.http.insert(ctx, filters);
    cs
}

pub fn resolver(code: &WasmCode) -> Result<Vec<u8>, String> {
    match code {
        WasmCode::LocalFile(f) if f == "test_plugin.wasm" => Ok(test_plugin().to_vec()),
        other => Err(format!("no such code {other:?}")),
    }
}

pub fn proxy(profile: Profile) -> Proxy {
    let mut p = Proxy::with_cache(profile, node(), cache());
    p.set_trace(true);
    p
}

/// A proxy with one HTTP chain loaded.
pub fn loaded(ctx: Context, filters: Vec<Filter>) -> Proxy {
    let mut p = proxy(Profile::ISTIO_1_17);
    p.load(&http_chain(ctx, filters), &resolver).expect("load");
    p
}

pub fn hdrs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub const T0: i64 = 1_700_000_000_000_000_000;

pub fn exchange(direction: Direction) -> HttpExchange {
    HttpExchange {
        direction,
        start_ns: T0,
        duration_ns: 5_000_000,
        protocol: "HTTP/1.1".into(),
        request: HttpMessage {
            headers: hdrs(&[
                (":method", "GET"),
                (":path", "/api/v1?x=1"),
                (":authority", "reviews:9080"),
                (":scheme", "http"),
                ("user-agent", "curl/8"),
            ]),
            body: Vec::new(),
            trailers: Vec::new(),
        },
        response: Some(HttpMessage {
            headers: hdrs(&[(":status", "200"), ("content-type", "text/plain")]),
            body: b"hello".to_vec(),
            trailers: Vec::new(),
        }),
        response_flags: 0,
        code_details: String::new(),
        connection: ConnectionInfo {
            id: 7,
            mtls: true,
            local_principal: Some("spiffe://cluster.local/ns/default/sa/productpage".into()),
            peer_principal: Some("spiffe://cluster.local/ns/default/sa/reviews".into()),
            source_address: "10.0.0.2:45000".into(),
            destination_address: "10.0.0.1:9080".into(),
            requested_server_name: String::new(),
        },
        upstream: UpstreamInfo {
            cluster_name: "inbound|9080||".into(),
            address: Some("10.0.0.1:9080".into()),
            service: Some(ServiceRef {
                name: "reviews".into(),
                namespace: "default".into(),
                host: "reviews.default.svc.cluster.local".into(),
            }),
            endpoint_workload: Some("reviews-v2;default;reviews;v2;Kubernetes".into()),
        },
        route_name: "default".into(),
        peer: None,
        grpc_messages: None,
    }
}

/// Log lines of one plugin, in order.
pub fn lines(p: &Proxy, plugin: &str) -> Vec<String> {
    p.logs()
        .iter()
        .filter(|l| l.plugin() == Some(plugin))
        .map(|l| l.message.clone())
        .collect()
}

/// Lines starting with `prefix`.
pub fn with_prefix(p: &Proxy, plugin: &str, prefix: &str) -> Vec<String> {
    lines(p, plugin)
        .into_iter()
        .filter(|l| l.starts_with(prefix))
        .collect()
}

pub fn has_line(p: &Proxy, plugin: &str, line: &str) -> bool {
    lines(p, plugin).iter().any(|l| l == line)
}
