//! What happened on one HTTP stream or TCP connection, as a test or the replay CLI describes it.
//! The drivers in [`crate::filter_chain`] turn these descriptions into Envoy's exact callback
//! sequence, and [`crate::properties`] answers `proxy_get_property` from them.
//!
//! Everything is plain data so descriptions can be built by hand in tests, decoded from the JSON
//! Lines traffic format (`replay`), and reused across repeats.

use serde_json::Value as Json;

/// Which listener of the proxy under test handles the stream (EnvoyFilter `context`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// SIDECAR_INBOUND: `listener_direction` = INBOUND (1).
    Inbound,
    /// SIDECAR_OUTBOUND: `listener_direction` = OUTBOUND (2).
    Outbound,
    /// GATEWAY: `listener_direction` = OUTBOUND (2), as on Istio gateways' listeners.
    Gateway,
}

/// The local Envoy's bootstrap node (`node` property: `envoy.config.core.v3.Node`).
#[derive(Debug, Clone, PartialEq)]
pub struct LocalNode {
    pub id: String,
    pub cluster: String,
    /// Istio node metadata (`node.metadata`, a protobuf Struct), e.g. `NAME`, `NAMESPACE`,
    /// `WORKLOAD_NAME`, `LABELS`, `MESH_ID`, `CLUSTER_ID`, `ISTIO_VERSION`, `PROXY_CONFIG`.
    pub metadata: serde_json::Map<String, Json>,
}

/// The other side's Istio identity, as metadata exchange would learn it.
#[derive(Debug, Clone, PartialEq)]
pub struct Peer {
    /// `x-envoy-peer-metadata-id` (the peer's Envoy node id).
    pub id: String,
    /// The peer's node metadata, which travels as a base64 protobuf Struct in
    /// `x-envoy-peer-metadata`. Shared: a replay hands the same decoded peer to every line
    /// that names it, and copying the map per line cost more than decoding it.
    pub metadata: std::sync::Arc<serde_json::Map<String, Json>>,
}

/// Downstream connection facts (`connection.*`, `source.*`, `destination.*`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConnectionInfo {
    pub id: u64,
    /// TLS with a peer certificate presented (`connection.mtls`).
    pub mtls: bool,
    /// First URI SAN of the local / peer certificate of the TLS session this proxy holds with its
    /// peer. On inbound they are `connection.uri_san_{local,peer}_certificate`; on outbound and
    /// gateway they are the upstream session's `upstream.uri_san_{local,peer}_certificate`.
    pub local_principal: Option<String>,
    pub peer_principal: Option<String>,
    pub source_address: String,
    pub destination_address: String,
    pub requested_server_name: String,
}

/// Istio's cluster metadata `filter_metadata.istio.services[0]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServiceRef {
    pub name: String,
    pub namespace: String,
    pub host: String,
}

/// Upstream facts (`cluster_name`, `cluster_metadata`, `upstream.*`, `upstream_host_metadata`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UpstreamInfo {
    pub cluster_name: String,
    pub address: Option<String>,
    pub service: Option<ServiceRef>,
    /// `upstream_host_metadata.filter_metadata.istio.workload`:
    /// `workload;namespace;canonical_service;canonical_revision;cluster`.
    pub endpoint_workload: Option<String>,
}

/// One HTTP message: headers in wire order (pseudo-headers included, names lower-case), body bytes
/// and trailers.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HttpMessage {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
}

/// One HTTP request/response exchange through the proxy.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpExchange {
    pub direction: Direction,
    /// `request.time`, ns since the Unix epoch. Also the virtual clock at stream start.
    pub start_ns: i64,
    /// `request.duration`, ns; the virtual clock advances by it before `on_log`.
    pub duration_ns: i64,
    /// `request.protocol`: `HTTP/1.0`, `HTTP/1.1`, `HTTP/2`, `HTTP/3`.
    pub protocol: String,
    pub request: HttpMessage,
    /// `None`: the stream ended without a response (reset).
    pub response: Option<HttpMessage>,
    /// `response.flags` bitmask (Envoy's legacy `ResponseFlag` bits).
    pub response_flags: u64,
    pub code_details: String,
    pub connection: ConnectionInfo,
    pub upstream: UpstreamInfo,
    pub route_name: String,
    /// The peer metadata exchange would learn: on inbound from the request headers
    /// (`downstream_peer`), on outbound/gateway from the response headers (`upstream_peer`).
    pub peer: Option<Peer>,
    /// gRPC messages `(requests, responses)` the `envoy.filters.http.grpc_stats` filter counts
    /// on this stream; with it in the chain, Istio's `emit_filter_state` leaves them in filter
    /// state `envoy.filters.http.grpc_stats` as `"<requests>,<responses>"`.
    pub grpc_messages: Option<(u64, u64)>,
}

impl HttpExchange {
    /// An exchange on `direction` with nothing else known yet: no headers, no response, no peer,
    /// zero times and sizes (what a decoder fills in, or a test starts from).
    pub fn new(direction: Direction) -> Self {
        HttpExchange {
            direction,
            start_ns: 0,
            duration_ns: 0,
            protocol: String::new(),
            request: HttpMessage::default(),
            response: None,
            response_flags: 0,
            code_details: String::new(),
            connection: ConnectionInfo::default(),
            upstream: UpstreamInfo::default(),
            route_name: String::new(),
            peer: None,
            grpc_messages: None,
        }
    }
}

/// Outcome of Istio's TCP (ALPN) metadata exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MxOutcome {
    /// Peer metadata was exchanged (`wasm.*_peer` written).
    Found,
    /// ALPN matched but no metadata: the sentinel id
    /// `envoy.wasm.metadata_exchange.peer_unknown` is written.
    NotFound,
    /// No exchange attempted (no MX filter, plain TCP).
    None,
}

/// One TCP connection through the proxy.
#[derive(Debug, Clone, PartialEq)]
pub struct TcpConnection {
    pub direction: Direction,
    pub start_ns: i64,
    pub duration_ns: i64,
    /// Bytes from downstream (`proxy_on_downstream_data`).
    pub received_bytes: u64,
    /// Bytes from upstream (`proxy_on_upstream_data`).
    pub sent_bytes: u64,
    /// Data callbacks each way, spread evenly over the duration.
    pub chunks: u32,
    pub connection: ConnectionInfo,
    pub upstream: UpstreamInfo,
    pub peer: Option<Peer>,
    pub mx: MxOutcome,
}

/// What happens inside one HTTP stream over time, beyond [`HttpExchange`] (additions to the
/// traffic format: `grpc_messages[].at_ms`, `stop_after_ms`). The default plan is the plain
/// exchange: the gRPC totals are visible from the request headers on and the stream ends.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HttpPlan {
    /// What the grpc_stats filter state holds from the request headers on, when
    /// `grpc_timeline` is not empty: the batches given without a time.
    pub grpc_initial: (u64, u64),
    /// Running totals of the timed batches, in time order: from `at_ns` after the stream's start
    /// on, the grpc_stats filter state holds `(requests, responses)`. Empty: the exchange's
    /// `grpc_messages` totals hold from the request headers on.
    pub grpc_timeline: Vec<GrpcProgress>,
    /// Stop the replay this long (ns) after the stream's start, with the stream still open: no
    /// end of stream, no `proxy_on_log`. What the plugins reported by then (on their ticks) is
    /// what a scrape at that instant shows. Always before the stream's end.
    pub stop_after_ns: Option<i64>,
}

impl HttpPlan {
    /// True when the plan adds nothing to the exchange.
    pub fn is_plain(&self) -> bool {
        self.grpc_timeline.is_empty() && self.stop_after_ns.is_none()
    }
}

/// The grpc_stats message totals from one instant of a stream on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcProgress {
    /// ns after the stream's start.
    pub at_ns: i64,
    pub requests: u64,
    pub responses: u64,
}

/// A listener update that re-delivers the loaded configuration (traffic `{"kind":"reload"}`):
/// Envoy builds new filter configs; the plugins get new root contexts (and, with `new_vm`, new
/// VMs); the stats store and its counters stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reload {
    /// When the update lands, ns since the Unix epoch (ticks due before it fire first).
    pub at_ns: i64,
    /// Start new VMs (as when the VM key — vm_id, vm configuration, code — changed); otherwise
    /// the new root contexts are created in the VMs already running.
    pub new_vm: bool,
}
