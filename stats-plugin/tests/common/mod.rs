//! Test fixtures: Istio's e2e test nodes and clusters (`P17:test/envoye2e/stats_plugin/stats_test.go`,
//! stats-spec §9 "Common setup"), a fake `Metrics` with Envoy's counter/gauge/histogram
//! semantics, and a parser for the encoded stat names.
#![allow(dead_code)]

use proxy_attributes::host::fake::FakeHost;
use proxy_attributes::host::HeaderMap;
use proxy_attributes::peer::PeerNode;
use proxy_attributes::values::encode_pairs;
use stats_plugin::{Direction, MetricKind, Metrics, StatsPlugin, Stream};
use std::collections::BTreeMap;

pub const SENTINEL: &str = "envoy.wasm.metadata_exchange.peer_unknown";

fn labels(pairs: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
    let mut v: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    v.sort();
    Some(v)
}

/// `productpage-v1` (the client node of Istio's stats e2e tests).
pub fn client_node() -> PeerNode {
    PeerNode {
        name: "productpage-v1-84975bc778-pxz2w".into(),
        namespace: "default".into(),
        workload_name: "productpage-v1".into(),
        cluster_id: "client-cluster".into(),
        istio_version: "1.5-dev".into(),
        mesh_id: "mesh".into(),
        labels: labels(&[
            ("app", "productpage"),
            ("version", "v1"),
            ("service.istio.io/canonical-name", "productpage-v1"),
            ("service.istio.io/canonical-revision", "version-1"),
        ]),
        ..PeerNode::default()
    }
}

/// `ratings-v1` (the server node).
pub fn server_node() -> PeerNode {
    PeerNode {
        name: "ratings-v1-84975bc778-pxz2w".into(),
        namespace: "default".into(),
        workload_name: "ratings-v1".into(),
        cluster_id: "server-cluster".into(),
        istio_version: "1.5-dev".into(),
        mesh_id: "proj-123".into(),
        labels: labels(&[
            ("app", "ratings"),
            ("version", "v1"),
            ("service.istio.io/canonical-name", "ratings"),
            ("service.istio.io/canonical-revision", "version-1"),
        ]),
        ..PeerNode::default()
    }
}

/// The `node.metadata` property as Envoy serialises it: a pairs map, nested Structs as pairs.
pub fn node_metadata(n: &PeerNode) -> Vec<u8> {
    let mut pairs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut s = |k: &str, v: &str| {
        if !v.is_empty() {
            pairs.push((k.to_string(), v.as_bytes().to_vec()))
        }
    };
    s("NAME", &n.name);
    s("NAMESPACE", &n.namespace);
    s("WORKLOAD_NAME", &n.workload_name);
    s("CLUSTER_ID", &n.cluster_id);
    s("ISTIO_VERSION", &n.istio_version);
    s("MESH_ID", &n.mesh_id);
    if let Some(l) = &n.labels {
        pairs.push(("LABELS".into(), encode_pairs(l)));
    }
    encode_pairs(&pairs)
}

/// Adds the local node: `node.metadata` and the individual keys CEL may read.
pub fn with_local(mut h: FakeHost, n: &PeerNode) -> FakeHost {
    h = h.with_property(&["node", "metadata"], node_metadata(n));
    h = h.with_str(&["node", "metadata", "WORKLOAD_NAME"], &n.workload_name);
    h = h.with_str(&["node", "metadata", "NAMESPACE"], &n.namespace);
    h = h.with_str(&["node", "metadata", "MESH_ID"], &n.mesh_id);
    h = h.with_str(&["node", "metadata", "CLUSTER_ID"], &n.cluster_id);
    if let Some(l) = &n.labels {
        h = h.with_property(&["node", "metadata", "LABELS"], encode_pairs(l));
        // Envoy resolves deeper paths into the Struct too.
        for (k, v) in l {
            h = h.with_str(&["node", "metadata", "LABELS", k], v);
        }
    }
    h
}

/// Metadata exchange's filter state for the peer of `direction`.
pub fn with_peer(h: FakeHost, direction: Direction, id: &str, peer: &PeerNode) -> FakeHost {
    let (id_key, key) = match direction {
        Direction::Outbound => ("upstream_peer_id", "upstream_peer"),
        Direction::Inbound => ("downstream_peer_id", "downstream_peer"),
    };
    h.with_str(&[id_key], id)
        .with_property(&[key], peer.to_flatbuffer())
}

/// The `istio.services[0]` cluster metadata both test clusters carry.
/// `cluster_metadata.filter_metadata.istio.services[0].host` (`destination_service`).
pub const SERVICE_HOST_PATH: [&str; 6] = [
    "cluster_metadata",
    "filter_metadata",
    "istio",
    "services",
    "0",
    "host",
];

pub fn with_services(h: FakeHost) -> FakeHost {
    let base = [
        "cluster_metadata",
        "filter_metadata",
        "istio",
        "services",
        "0",
    ];
    h.with_str(
        &[base[0], base[1], base[2], base[3], base[4], "name"],
        "server",
    )
    .with_str(&SERVICE_HOST_PATH, "server.default.svc.cluster.local")
    .with_str(
        &[base[0], base[1], base[2], base[3], base[4], "namespace"],
        "default",
    )
    // The whole list, as Envoy serialises a CEL list (pairs with the elements as keys).
    .with_property(
        &[base[0], base[1], base[2], base[3]],
        encode_pairs(&[(
            encode_pairs(&[
                ("host", "server.default.svc.cluster.local"),
                ("name", "server"),
                ("namespace", "default"),
            ]),
            Vec::new(),
        )]),
    )
}

/// One finished `GET /` answered 200 (`hello, world!`), on the client (outbound) side.
pub fn client_http(client_port: u16) -> FakeHost {
    let h = with_local(FakeHost::new(), &client_node());
    let h = with_peer(h, Direction::Outbound, "server", &server_node());
    let h = with_services(h);
    http_common(h, client_port)
        .with_str(&["cluster_name"], "server-outbound-cluster")
        .with_str(&["route_name"], "client_route")
        .with_str(&["xds", "cluster_name"], "server-outbound-cluster")
        .with_str(&["xds", "route_name"], "client_route")
}

/// The same request seen by the server (inbound) side, plaintext (`connection.mtls` false).
pub fn server_http(client_port: u16) -> FakeHost {
    let h = with_local(FakeHost::new(), &server_node());
    let h = with_peer(h, Direction::Inbound, "client", &client_node());
    let h = with_services(h);
    http_common(h, client_port)
        .with_str(&["cluster_name"], "server-inbound-cluster")
        .with_str(&["route_name"], "server_route")
        .with_bool(&["connection", "mtls"], false)
}

pub fn http_common(h: FakeHost, client_port: u16) -> FakeHost {
    let authority = format!("127.0.0.1:{client_port}");
    h.with_header(HeaderMap::RequestHeaders, ":method", "GET")
        .with_header(HeaderMap::RequestHeaders, ":authority", &authority)
        .with_str(&["request", "host"], &authority)
        .with_str(&["request", "method"], "GET")
        .with_str(&["request", "protocol"], "HTTP/1.1")
        .with_str(&["request", "url_path"], "/")
        .with_i64(&["request", "duration"], 12_000_000)
        .with_i64(&["request", "total_size"], 560)
        .with_i64(&["response", "total_size"], 118)
        .with_i64(&["response", "code"], 200)
        .with_i64(&["response", "flags"], 0)
}

/// Drives one HTTP stream: request headers, response headers, log.
pub fn run_http(plugin: &mut StatsPlugin, host: &FakeHost, metrics: &mut FakeMetrics) {
    let mut s = Stream::new();
    plugin.on_request_headers(host, &mut s);
    plugin.on_log(host, metrics, &mut s);
}

pub fn configured(
    direction: Direction,
    host: &FakeHost,
    config: &str,
) -> (StatsPlugin, FakeMetrics) {
    let mut plugin = StatsPlugin::new(direction);
    let mut metrics = FakeMetrics::default();
    plugin.configure(host, &mut metrics, config.as_bytes());
    (plugin, metrics)
}

/// Envoy's stat store as seen from Wasm: stats by name; counters add, gauges set, histograms
/// keep samples. Defining the same name twice gives the same stat.
#[derive(Default, Debug)]
pub struct FakeMetrics {
    pub names: Vec<(MetricKind, String)>,
    pub counters: BTreeMap<String, u64>,
    pub gauges: BTreeMap<String, u64>,
    pub histograms: BTreeMap<String, Vec<u64>>,
    pub defines: usize,
}

impl Metrics for FakeMetrics {
    fn define(&mut self, kind: MetricKind, name: &str) -> Option<u32> {
        self.defines += 1;
        if let Some(i) = self.names.iter().position(|(_, n)| n == name) {
            return Some(i as u32);
        }
        self.names.push((kind, name.to_string()));
        match kind {
            MetricKind::Counter => {
                self.counters.insert(name.to_string(), 0);
            }
            MetricKind::Gauge => {
                self.gauges.insert(name.to_string(), 0);
            }
            MetricKind::Histogram => {
                self.histograms.insert(name.to_string(), Vec::new());
            }
        }
        Some((self.names.len() - 1) as u32)
    }

    fn record(&mut self, id: u32, value: u64) {
        let (kind, name) = self.names[id as usize].clone();
        match kind {
            MetricKind::Counter => *self.counters.entry(name).or_default() += value,
            MetricKind::Gauge => {
                self.gauges.insert(name, value);
            }
            MetricKind::Histogram => self.histograms.entry(name).or_default().push(value),
        }
    }

    fn increment(&mut self, id: u32, delta: i64) {
        assert!(delta > 0, "Envoy rejects counter increments <= 0");
        let (kind, name) = self.names[id as usize].clone();
        assert_eq!(kind, MetricKind::Counter);
        *self.counters.entry(name).or_default() += delta as u64;
    }
}

/// Splits an encoded stat name into the metric and its `tag=.=value` pairs (in name order).
pub fn parse(name: &str) -> (String, Vec<(String, String)>) {
    let mut parts: Vec<&str> = name.split(";.;").collect();
    let metric = parts.pop().unwrap_or("").to_string();
    let tags = parts
        .into_iter()
        .map(|p| {
            let (k, v) = p.split_once("=.=").expect("tag=.=value");
            (k.to_string(), v.to_string())
        })
        .collect();
    (metric, tags)
}

impl FakeMetrics {
    /// Every series of `metric` (e.g. `istio_requests_total`) with its labels and value.
    pub fn series(&self, metric: &str) -> Vec<(BTreeMap<String, String>, u64)> {
        let mut out = Vec::new();
        for (name, v) in &self.counters {
            let (m, tags) = parse(name);
            if m == metric {
                out.push((tags.into_iter().collect(), *v));
            }
        }
        for (name, v) in &self.gauges {
            let (m, tags) = parse(name);
            if m == metric {
                out.push((tags.into_iter().collect(), *v));
            }
        }
        out
    }

    pub fn histogram(&self, metric: &str) -> Vec<(BTreeMap<String, String>, Vec<u64>)> {
        self.histograms
            .iter()
            .filter_map(|(name, v)| {
                let (m, tags) = parse(name);
                (m == metric).then(|| (tags.into_iter().collect(), v.clone()))
            })
            .collect()
    }

    /// The only series of `metric`; panics if there is not exactly one.
    pub fn one(&self, metric: &str) -> (BTreeMap<String, String>, u64) {
        let s = self.series(metric);
        assert_eq!(
            s.len(),
            1,
            "series of {metric}: {s:#?}\nall: {:#?}",
            self.names
        );
        s.into_iter().next().unwrap()
    }

    pub fn istio_names(&self) -> Vec<&str> {
        self.names
            .iter()
            .map(|(_, n)| n.as_str())
            .filter(|n| n.contains("istio_") && !n.ends_with("istio_build"))
            .collect()
    }
}

/// Builds an expected label map from `name=value` pairs.
pub fn expect(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The 25 labels of `client_request_total.yaml.tmpl` (HTTP, no gRPC status).
pub fn client_request_total_labels() -> BTreeMap<String, String> {
    expect(&[
        ("reporter", "source"),
        ("source_workload", "productpage-v1"),
        ("source_canonical_service", "productpage-v1"),
        ("source_canonical_revision", "version-1"),
        ("source_workload_namespace", "default"),
        ("source_principal", "unknown"),
        ("source_app", "productpage"),
        ("source_version", "v1"),
        ("source_cluster", "client-cluster"),
        ("destination_workload", "ratings-v1"),
        ("destination_workload_namespace", "default"),
        ("destination_principal", "unknown"),
        ("destination_app", "ratings"),
        ("destination_version", "v1"),
        ("destination_service", "server.default.svc.cluster.local"),
        ("destination_canonical_service", "ratings"),
        ("destination_canonical_revision", "version-1"),
        ("destination_service_name", "server"),
        ("destination_service_namespace", "default"),
        ("destination_cluster", "server-cluster"),
        ("request_protocol", "http"),
        ("response_code", "200"),
        ("grpc_response_status", ""),
        ("response_flags", "-"),
        ("connection_security_policy", "unknown"),
    ])
}

/// `server_request_total.yaml.tmpl` (HTTP): reporter=destination, csp none.
pub fn server_request_total_labels() -> BTreeMap<String, String> {
    let mut l = client_request_total_labels();
    l.insert("reporter".into(), "destination".into());
    l.insert("connection_security_policy".into(), "none".into());
    l
}
