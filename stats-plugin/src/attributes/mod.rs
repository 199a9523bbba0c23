//! Per-request attribute reads through [`Host`]: only what the standard dimensions and values
//! need (`populateRequestInfo`, `populateHTTPRequestInfo`, `populateTCPRequestInfo`,
//! `extensions/common/context.cc`), the local node and the peer (§6.5).

pub mod node;
pub mod peer;
pub mod response_flags;
pub mod workload_metadata;

use proxy_attributes::host::{HeaderMap, Host};
use proxy_attributes::property_path;
use proxy_attributes::values::as_bool;

pub use response_flags::FlagTable;

/// Which side this plugin instance reports for (from the root id, stats-spec §1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `stats_outbound`: reporter=source, peer = upstream.
    Outbound,
    /// `stats_inbound`: reporter=destination, peer = downstream.
    Inbound,
}

impl Direction {
    pub fn is_outbound(self) -> bool {
        self == Direction::Outbound
    }
}

/// `Wasm::Common::Protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Grpc,
    Tcp,
}

impl Protocol {
    pub fn bit(self) -> u8 {
        match self {
            Protocol::Http => crate::schema::standard::PROTO_HTTP,
            Protocol::Grpc => crate::schema::standard::PROTO_GRPC,
            Protocol::Tcp => crate::schema::standard::PROTO_TCP,
        }
    }

    /// `ProtocolString` (`context.h:52-54`).
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Grpc => "grpc",
            Protocol::Tcp => "tcp",
        }
    }
}

/// `connection_security_policy` (inbound only, from `connection.mtls`; `unknown` when unset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityPolicy {
    Unset,
    MutualTls,
    None,
}

impl SecurityPolicy {
    /// The label value; `""` (then `unknown`) when unset.
    pub fn label(self) -> &'static str {
        match self {
            SecurityPolicy::Unset => "",
            SecurityPolicy::MutualTls => "mutual_tls",
            SecurityPolicy::None => "none",
        }
    }
}

/// Version-dependent details of Istio's attribute handling. The default is Istio 1.16: response
/// flags with DF (1.14+), the 5-part endpoint-metadata fallback (1.16+) and `metadata_mode`
/// (1.16 only); 1.17 differs from it only in ignoring `metadata_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compat {
    pub flag_table: FlagTable,
    /// Minimum `;`-separated parts of `upstream_host_metadata…istio.workload` (4 on 1.13–1.15).
    pub endpoint_min_parts: usize,
    /// `metadata_mode` is read: only Istio 1.16's plugin has the field (added in 1.16.0 by the
    /// ambient merge, istio/proxy#4058; absent from release-1.15 and release-1.17), so 1.13–1.15
    /// and 1.17 ignore it like any unknown key.
    pub metadata_mode: bool,
}

impl Compat {
    /// The behaviour of the Istio release whose proxy we run in, from the local node's
    /// `ISTIO_VERSION` (`1.13.x` → no `DF` flag and 4-part endpoint metadata; `1.14`/`1.15` →
    /// `DF`, 4 parts; `1.17` → the default without `metadata_mode`; anything else → the 1.16
    /// default, including unparsable versions and releases outside 1.13–1.17 such as the
    /// `1.5-dev` of Istio's own e2e test nodes).
    pub fn for_istio_version(version: &str) -> Compat {
        let mut parts = version.trim_start_matches('v').split('.');
        let major = parts.next().and_then(|p| p.parse::<u32>().ok());
        let minor = parts.next().and_then(|p| {
            let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u32>().ok()
        });
        match (major, minor) {
            (Some(1), Some(13)) => Compat {
                flag_table: FlagTable::Istio113,
                endpoint_min_parts: 4,
                metadata_mode: false,
            },
            (Some(1), Some(14 | 15)) => Compat {
                flag_table: FlagTable::Istio114Plus,
                endpoint_min_parts: 4,
                metadata_mode: false,
            },
            (Some(1), Some(17)) => Compat {
                metadata_mode: false,
                ..Compat::default()
            },
            _ => Compat::default(),
        }
    }
}

impl Default for Compat {
    fn default() -> Self {
        Compat {
            flag_table: FlagTable::Istio114Plus,
            endpoint_min_parts: 5,
            metadata_mode: true,
        }
    }
}

/// Envoy cluster and route names with fixed meanings (`context.h`).
const BLACK_HOLE_CLUSTER: &str = "BlackHoleCluster";
const PASS_THROUGH_CLUSTER: &str = "PassthroughCluster";
const INBOUND_PASS_THROUGH_IPV4: &str = "InboundPassthroughClusterIpv4";
const INBOUND_PASS_THROUGH_IPV6: &str = "InboundPassthroughClusterIpv6";
const BLACK_HOLE_ROUTE: &str = "block_all";
const PASS_THROUGH_ROUTE: &str = "allow_any";

/// gRPC content types (`context.h:62-63`), matched exactly.
const GRPC_CONTENT_TYPES: [&str; 3] = [
    "application/grpc",
    "application/grpc+proto",
    "application/grpc+json",
];

/// The filter state written by `envoy.filters.http.grpc_stats` with `emit_filter_state`.
const GRPC_STATS_PATH: &str = property_path!("filter_state", "envoy.filters.http.grpc_stats");

/// What one stream has accumulated (`Wasm::Common::RequestInfo`, reduced to what stats uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    pub protocol: Option<Protocol>,
    /// The host-provided text labels (`url_host` feeds `destination_service`) are kept as the
    /// bytes the host returned: they are keyed and compared as bytes, and turned into text
    /// (lossy UTF-8) only when a new series is named, so a request checks no encoding.
    pub url_host: Vec<u8>,
    /// `populateRequestInfo` ran (it runs once per stream).
    pub populated: bool,
    pub destination_service_host: Vec<u8>,
    pub destination_service_name: Vec<u8>,
    pub source_principal: Vec<u8>,
    pub destination_principal: Vec<u8>,
    /// Inbound `connection.mtls` when readable.
    pub security_policy: SecurityPolicy,
    pub response_code: u32,
    /// The `response.flags` bits (`None`: not read). Formatted into the `response_flags` label
    /// ([`response_flags::format`]) only when a new series is named.
    pub response_flag_bits: Option<u64>,
    pub grpc_status: i64,
    pub duration_ns: i64,
    pub request_size: i64,
    pub response_size: i64,
    pub request_messages: u64,
    pub response_messages: u64,
    pub last_request_messages: u64,
    pub last_response_messages: u64,
    pub tcp_sent_bytes: u64,
    pub tcp_received_bytes: u64,
    pub tcp_opened: u8,
    pub tcp_closed: u8,
}

impl Default for RequestInfo {
    fn default() -> Self {
        RequestInfo {
            protocol: None,
            url_host: Vec::new(),
            populated: false,
            destination_service_host: Vec::new(),
            destination_service_name: Vec::new(),
            source_principal: Vec::new(),
            destination_principal: Vec::new(),
            security_policy: SecurityPolicy::Unset,
            response_code: 0,
            response_flag_bits: None,
            // `grpc_status` defaults to 2 (UNKNOWN) (`context.h:123`).
            grpc_status: 2,
            duration_ns: 0,
            request_size: 0,
            response_size: 0,
            request_messages: 0,
            response_messages: 0,
            last_request_messages: 0,
            last_response_messages: 0,
            tcp_sent_bytes: 0,
            tcp_received_bytes: 0,
            tcp_opened: 0,
            tcp_closed: 0,
        }
    }
}

/// Settings the population functions need from the plugin.
#[derive(Debug, Clone, Copy)]
pub struct Env<'a> {
    pub direction: Direction,
    pub use_host_header_fallback: bool,
    /// Local `service.istio.io/canonical-name` label, else `unknown` (`getServiceNameFallback`).
    pub service_name_fallback: &'a str,
    pub compat: Compat,
}

/// `path` is NUL-joined at compile time ([`property_path!`]): report paths are constants.
/// The bytes as returned (see [`RequestInfo::url_host`]).
fn bytes_property<H: Host + ?Sized>(host: &H, path: &str) -> Option<Vec<u8>> {
    host.property_joined(path)
}

fn i64_property<H: Host + ?Sized>(host: &H, path: &str) -> Option<i64> {
    host.property_i64(path)
}

/// Which of `names` the property at `path` is (read in place: only compared). Equal bytes are
/// equal text: the names are ASCII, so the lossy text of other bytes never equals one.
/// Inlined into its two call sites, where the walk over the constant names unrolls (a loop
/// there cost an epoch check per name in wasmtime).
#[inline(always)]
fn one_of<H: Host + ?Sized>(host: &H, path: &str, names: &[&'static str]) -> Option<&'static str> {
    let value = host.property_lent(path)?;
    names
        .iter()
        .find(|n| proxy_attributes::bytes::bytes_eq(n.as_bytes(), &value))
        .copied()
}

/// `populateRequestProtocol`: gRPC iff the request content-type is one of the gRPC types.
pub fn request_protocol<H: Host + ?Sized>(host: &H) -> Protocol {
    match host.header(HeaderMap::RequestHeaders, "content-type") {
        Some(ct) if GRPC_CONTENT_TYPES.contains(&ct.as_str()) => Protocol::Grpc,
        _ => Protocol::Http,
    }
}

/// `onRequestHeaders`: protocol, and the host for the destination-service fallback.
pub fn on_request_headers<H: Host + ?Sized>(host: &H, env: &Env<'_>, info: &mut RequestInfo) {
    info.protocol = Some(request_protocol(host));
    if env.use_host_header_fallback {
        if let Some(h) = bytes_property(host, property_path!("request", "host")) {
            info.url_host = h;
        }
    }
}

/// `populateRequestInfo` (common to HTTP and TCP, once per stream).
pub fn populate_common<H: Host + ?Sized>(
    host: &H,
    env: &Env<'_>,
    use_host_header: bool,
    info: &mut RequestInfo,
) {
    if info.populated {
        return;
    }
    info.populated = true;
    // Both names matter only when they are one of Envoy's pass-through or black-hole names.
    let cluster = one_of(
        host,
        "cluster_name",
        &[
            BLACK_HOLE_CLUSTER,
            PASS_THROUGH_CLUSTER,
            INBOUND_PASS_THROUGH_IPV4,
            INBOUND_PASS_THROUGH_IPV6,
        ],
    );
    let route = one_of(host, "route_name", &[BLACK_HOLE_ROUTE, PASS_THROUGH_ROUTE]);
    populate_destination_service(host, env, use_host_header, cluster, route, info);
    let (dst, src) = match env.direction {
        Direction::Outbound => (
            property_path!("upstream", "uri_san_peer_certificate"),
            property_path!("upstream", "uri_san_local_certificate"),
        ),
        Direction::Inbound => {
            if let Some(mtls) = host
                .property_joined(property_path!("connection", "mtls"))
                .and_then(|b| as_bool(&b))
            {
                info.security_policy = if mtls {
                    SecurityPolicy::MutualTls
                } else {
                    SecurityPolicy::None
                };
            }
            (
                property_path!("connection", "uri_san_local_certificate"),
                property_path!("connection", "uri_san_peer_certificate"),
            )
        }
    };
    if let Some(p) = bytes_property(host, dst) {
        info.destination_principal = p;
    }
    if let Some(p) = bytes_property(host, src) {
        info.source_principal = p;
    }
}

/// `populateDestinationService` (`context.cc:63-122`).
fn populate_destination_service<H: Host + ?Sized>(
    host: &H,
    env: &Env<'_>,
    use_host_header: bool,
    cluster: Option<&'static str>,
    route: Option<&'static str>,
    info: &mut RequestInfo,
) {
    // The step-1 host; computed only where it is kept (it is replaced when the cluster
    // metadata names a host).
    let fallback_host = |info: &RequestInfo| -> Vec<u8> {
        if use_host_header {
            info.url_host.clone()
        } else if env.direction.is_outbound() {
            b"unknown".to_vec()
        } else {
            env.service_name_fallback.as_bytes().to_vec()
        }
    };
    if let Some(route) = route {
        info.destination_service_host = fallback_host(info);
        info.destination_service_name = if route == BLACK_HOLE_ROUTE {
            BLACK_HOLE_CLUSTER
        } else {
            PASS_THROUGH_CLUSTER
        }
        .as_bytes()
        .to_vec();
        return;
    }
    if let Some(cluster) = cluster {
        info.destination_service_host = fallback_host(info);
        info.destination_service_name = cluster.as_bytes().to_vec();
        return;
    }
    // `cluster_metadata.filter_metadata.istio.services[0]`.
    let name_path = property_path!(
        "cluster_metadata",
        "filter_metadata",
        "istio",
        "services",
        "0",
        "name"
    );
    match bytes_property(host, name_path) {
        Some(name) => {
            info.destination_service_name = name;
            let host_path = property_path!(
                "cluster_metadata",
                "filter_metadata",
                "istio",
                "services",
                "0",
                "host"
            );
            info.destination_service_host = match bytes_property(host, host_path) {
                Some(h) => h,
                None => fallback_host(info),
            };
        }
        None => {
            info.destination_service_host = fallback_host(info);
            info.destination_service_name = info.destination_service_host.clone();
        }
    }
}

/// `populateHTTPRequestInfo`: everything an end-of-stream HTTP/gRPC report needs.
pub fn populate_http<H: Host + ?Sized>(host: &H, env: &Env<'_>, info: &mut RequestInfo) {
    // Istio re-derives the protocol here; the request headers cannot have changed since
    // `on_request_headers` read them, so only a stream that skipped that callback reads them.
    let protocol = match info.protocol {
        Some(p @ (Protocol::Http | Protocol::Grpc)) => p,
        _ => request_protocol(host),
    };
    info.protocol = Some(protocol);
    populate_common(host, env, env.use_host_header_fallback, info);
    if let Some(code) = i64_property(host, property_path!("response", "code")) {
        info.response_code = code as u32;
    }
    if let Some(flags) = i64_property(host, property_path!("response", "flags")) {
        info.response_flag_bits = Some(flags as u64);
    }
    if protocol == Protocol::Grpc {
        info.grpc_status =
            i64_property(host, property_path!("response", "grpc_status")).unwrap_or(2);
        populate_grpc(host, info);
    }
    if let Some(d) = i64_property(host, property_path!("request", "duration")) {
        info.duration_ns = d;
    }
    if let Some(s) = i64_property(host, property_path!("request", "total_size")) {
        info.request_size = s;
    }
    if let Some(s) = i64_property(host, property_path!("response", "total_size")) {
        info.response_size = s;
    }
}

/// `populateTCPRequestInfo`: the host header fallback never applies to TCP.
pub fn populate_tcp<H: Host + ?Sized>(host: &H, env: &Env<'_>, info: &mut RequestInfo) {
    populate_common(host, env, false, info);
    if let Some(flags) = i64_property(host, property_path!("response", "flags")) {
        info.response_flag_bits = Some(flags as u64);
    }
    info.protocol = Some(Protocol::Tcp);
}

/// `populateGRPCInfo`: the grpc_stats filter state `"<requests>,<responses>"`.
pub fn populate_grpc<H: Host + ?Sized>(host: &H, info: &mut RequestInfo) {
    let Some(bytes) = host.property_joined(GRPC_STATS_PATH) else {
        return;
    };
    let text = String::from_utf8_lossy(&bytes);
    let mut parts = text.split(',');
    let (Some(a), Some(b), None) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    // `SimpleAtoi(a) && SimpleAtoi(b)`: the first assignment survives a failing second.
    let Some(req) = simple_atoi(a) else { return };
    info.request_messages = req;
    if let Some(resp) = simple_atoi(b) {
        info.response_messages = resp;
    }
}

/// `absl::SimpleAtoi` for `uint64`: surrounding ASCII whitespace and a leading `+` are allowed.
fn simple_atoi(s: &str) -> Option<u64> {
    let t = s.trim_matches(|c: char| c.is_ascii_whitespace());
    let t = t.strip_prefix('+').unwrap_or(t);
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compat_follows_the_local_istio_version() {
        assert_eq!(
            Compat::for_istio_version("1.13.4").flag_table,
            FlagTable::Istio113
        );
        assert_eq!(Compat::for_istio_version("1.13.4").endpoint_min_parts, 4);
        assert_eq!(
            Compat::for_istio_version("1.15.7").flag_table,
            FlagTable::Istio114Plus
        );
        assert_eq!(Compat::for_istio_version("1.15.7").endpoint_min_parts, 4);
        // metadata_mode exists in the 1.16 plugin only.
        assert!(!Compat::for_istio_version("1.13.4").metadata_mode);
        assert!(!Compat::for_istio_version("1.15.7").metadata_mode);
        assert!(Compat::for_istio_version("1.16.7").metadata_mode);
        assert_eq!(Compat::for_istio_version("1.16.7"), Compat::default());
        assert_eq!(
            Compat::for_istio_version("1.17.8"),
            Compat {
                metadata_mode: false,
                ..Compat::default()
            }
        );
        assert_eq!(Compat::for_istio_version("1.16-dev"), Compat::default());
        assert_eq!(Compat::for_istio_version("1.5-dev"), Compat::default());
        assert_eq!(Compat::for_istio_version(""), Compat::default());
        assert_eq!(Compat::for_istio_version("garbage"), Compat::default());
    }

    #[test]
    fn simple_atoi_like_absl() {
        assert_eq!(simple_atoi(" 3"), Some(3));
        assert_eq!(simple_atoi("+13 "), Some(13));
        assert_eq!(simple_atoi("-1"), None);
        assert_eq!(simple_atoi(""), None);
        assert_eq!(simple_atoi("1x"), None);
    }
}
