//! Native per-request cost of the report path (one HTTP stream: request headers + log), with a
//! lean in-memory host. `cargo run --release -p stats-plugin --example report_bench`.
//! The wasm figure (measured by the harness in wasmtime) is what the goals refer to; this only
//! tracks the plugin's own work.

use proxy_attributes::host::{HeaderMap, Host};
use proxy_attributes::peer::PeerNode;
use proxy_attributes::values::encode_pairs;
use stats_plugin::{Direction, MetricKind, Metrics, StatsPlugin, Stream};
use std::collections::HashMap;
use std::time::Instant;

/// Properties in a flat list compared part by part: the host's own cost stays small so the
/// numbers show the plugin's work (in Envoy/wasmtime the host side is separate).
struct LeanHost {
    props: Vec<(Vec<String>, Vec<u8>)>,
    /// The same keys joined with NUL, for `property_joined`.
    joined: Vec<(String, Vec<u8>)>,
    headers: HashMap<String, String>,
    /// Host calls made (each one is a wasm→host crossing in Envoy / the harness).
    calls: std::sync::atomic::AtomicU64,
    /// Print each call (TRACE_CALLS=1).
    trace: bool,
}

impl Host for LeanHost {
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if self.trace {
            println!("property {}", path.join("."));
        }
        self.props
            .iter()
            .find(|(p, _)| p.len() == path.len() && p.iter().zip(path).all(|(a, b)| a == b))
            .map(|(_, v)| v.clone())
    }
    /// The ABI-joined form, compared without allocating (as a host reads it).
    fn property_joined(&self, joined: &str) -> Option<Vec<u8>> {
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if self.trace {
            println!("property {}", joined.replace('\0', "."));
        }
        self.joined
            .iter()
            .find(|(p, _)| p == joined)
            .map(|(_, v)| v.clone())
    }
    fn header(&self, _map: HeaderMap, name: &str) -> Option<String> {
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if self.trace {
            println!("header {name}");
        }
        self.headers.get(name).cloned()
    }
}

#[derive(Default)]
struct Sink(Vec<u64>);

impl Metrics for Sink {
    fn define(&mut self, _kind: MetricKind, _name: &str) -> Option<u32> {
        self.0.push(0);
        Some(self.0.len() as u32 - 1)
    }
    fn record(&mut self, id: u32, value: u64) {
        if let Some(v) = self.0.get_mut(id as usize) {
            *v = v.wrapping_add(value);
        }
    }
    fn increment(&mut self, id: u32, delta: i64) {
        self.record(id, delta as u64);
    }
}

fn node(name: &str, version: &str) -> PeerNode {
    let mut labels = vec![
        ("app".to_string(), name.to_string()),
        ("version".to_string(), "v1".to_string()),
        (
            "service.istio.io/canonical-name".to_string(),
            name.to_string(),
        ),
        (
            "service.istio.io/canonical-revision".to_string(),
            "v1".to_string(),
        ),
    ];
    labels.sort();
    PeerNode {
        name: format!("{name}-5d8f7c9b4-abcde"),
        namespace: "istioinaction".into(),
        workload_name: name.into(),
        cluster_id: "Kubernetes".into(),
        istio_version: version.into(),
        mesh_id: "cluster.local".into(),
        labels: Some(labels),
        ..PeerNode::default()
    }
}

fn host() -> LeanHost {
    let local = node("webapp", "1.17.8");
    let peer = node("catalog", "1.17.8");
    let mut props = Vec::new();
    let mut s = |k: &str, v: &[u8]| {
        props.push((k.split('.').map(str::to_string).collect(), v.to_vec()));
    };
    let labels = local.labels.clone().unwrap_or_default();
    s(
        "node.metadata",
        &encode_pairs(&[
            ("NAME", local.name.as_bytes().to_vec()),
            ("NAMESPACE", local.namespace.as_bytes().to_vec()),
            ("WORKLOAD_NAME", local.workload_name.as_bytes().to_vec()),
            ("ISTIO_VERSION", local.istio_version.as_bytes().to_vec()),
            ("MESH_ID", local.mesh_id.as_bytes().to_vec()),
            ("CLUSTER_ID", local.cluster_id.as_bytes().to_vec()),
            ("LABELS", encode_pairs(&labels)),
        ]),
    );
    s("node.metadata.MESH_ID", b"cluster.local");
    s(
        "upstream_peer_id",
        b"sidecar~10.10.0.20~catalog-5d8f7c9b4-abcde.istioinaction~istioinaction.svc.cluster.local",
    );
    s("upstream_peer", &peer.to_flatbuffer());
    s(
        "cluster_name",
        b"outbound|80||catalog.istioinaction.svc.cluster.local",
    );
    s("route_name", b"catalog.istioinaction.svc.cluster.local:80");
    s(
        "cluster_metadata.filter_metadata.istio.services.0.name",
        b"catalog",
    );
    s(
        "cluster_metadata.filter_metadata.istio.services.0.host",
        b"catalog.istioinaction.svc.cluster.local",
    );
    s(
        "upstream.uri_san_peer_certificate",
        b"spiffe://cluster.local/ns/istioinaction/sa/catalog",
    );
    s(
        "upstream.uri_san_local_certificate",
        b"spiffe://cluster.local/ns/istioinaction/sa/webapp",
    );
    s("request.host", b"catalog.istioinaction:80");
    s("request.method", b"GET");
    s("response.code", &200i64.to_le_bytes());
    s("response.flags", &0i64.to_le_bytes());
    s("request.duration", &3_000_000i64.to_le_bytes());
    s("request.total_size", &820i64.to_le_bytes());
    s("response.total_size", &1330i64.to_le_bytes());
    let mut headers = HashMap::new();
    headers.insert("content-type".to_string(), "application/json".to_string());
    let joined = props
        .iter()
        .map(|(k, v): &(Vec<String>, Vec<u8>)| (k.join("\0"), v.clone()))
        .collect();
    LeanHost {
        props,
        joined,
        headers,
        calls: Default::default(),
        trace: std::env::var_os("TRACE_CALLS").is_some(),
    }
}

fn bench(label: &str, config: &str) {
    let host = host();
    let mut plugin = StatsPlugin::new(Direction::Outbound);
    let mut sink = Sink::default();
    plugin.configure(&host, &mut sink, config.as_bytes());
    let n: u32 = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    for _ in 0..1000 {
        let mut s = Stream::new();
        plugin.on_request_headers(&host, &mut s);
        plugin.on_log(&host, &mut sink, &mut s);
    }
    host.calls.store(0, std::sync::atomic::Ordering::Relaxed);
    let t = Instant::now();
    for _ in 0..n {
        let mut s = Stream::new();
        plugin.on_request_headers(&host, &mut s);
        plugin.on_log(&host, &mut sink, &mut s);
    }
    let per = t.elapsed().as_nanos() as f64 / f64::from(n);
    println!(
        "{label:>10}: {per:8.0} ns/request (native, cache size {}, {} host calls/request)",
        plugin.cache_len(),
        host.calls.load(std::sync::atomic::Ordering::Relaxed) / u64::from(n)
    );
}

fn main() {
    // Optional argument: run only "default" or "book" (handy under `perf stat`).
    let only = std::env::args().nth(1).unwrap_or_default();
    if only.is_empty() || only == "default" {
        bench("default", "{}");
    }
    if !(only.is_empty() || only == "book") {
        return;
    }
    bench(
        "book",
        r#"{"metrics":[{"dimensions":{"source_mesh_id":"node.metadata['MESH_ID']","upstream_proxy_version":"upstream_peer.istio_version"},"name":"requests_total","tags_to_remove":["request_protocol"]}],
           "definitions":[{"name":"get_calls","type":"COUNTER","value":"(request.method.startsWith('GET') ? 1 : 0)"}]}"#,
    );
}
