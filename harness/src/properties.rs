//! Envoy's attribute model for `proxy_get_property` (Envoy 1.21–1.25, the Wasm-private token
//! table of `source/extensions/common/wasm/context.cc` `PROPERTY_TOKENS` plus the CEL attributes
//! of `filters/common/expr/context.cc`; abi-host §2.1–2.3) with Envoy's byte encodings
//! (`serializeValue`, abi-host §2.2):
//!
//! * string/bytes raw; int64/uint64/double 8 bytes LE; bool 1 byte; timestamp/duration i64 ns;
//! * protobuf messages serialised (`node`, `*_metadata`); a `google.protobuf.Struct` reached by a
//!   sub-path is unwrapped by CEL into a map (pairs), lists become pairs with empty values, Struct
//!   numbers are doubles, a JSON `null` anywhere is `SERIALIZATION_FAILURE`;
//! * an unknown top-level name reads filter state `wasm.<name>`.
//!
//! Phase rules: `response.*` only once a response started; `request.duration` and the total sizes
//! only in the access-log phase; upstream host facts once the request reached the router.
//!
//! Deviations: whole-header maps list keys in first-seen order (Envoy's order is a hash set's);
//! sub-paths into FlatBuffers filter state (`upstream_peer.workload_name`) are `NOT_FOUND`.

use prost::Message;
use serde_json::Value as Json;

use crate::abi::Status;
use crate::host_state::{
    IdMap, RootInfo, StreamState, MAP_REQ_HEADERS, MAP_RESP_HEADERS, MAP_RESP_TRAILERS,
};
use crate::stream::{ConnectionInfo, Direction, LocalNode, UpstreamInfo};

/// What a property lookup can see.
pub struct PropertyView<'a> {
    pub node: &'a LocalNode,
    /// The plugin of the effective context.
    pub root: RootRef<'a>,
    /// The stream, when the effective context is a stream context.
    pub stream: Option<&'a StreamState>,
}

/// The plugin of the effective context, found when a property needs it (`plugin_*`,
/// `listener_direction` outside a stream): most reads do not, and the lookup is a hash probe.
#[derive(Clone, Copy)]
pub enum RootRef<'a> {
    Known(Option<&'a RootInfo>),
    /// The roots of the VM and the effective context's root id.
    Lazy(&'a IdMap<RootInfo>, Option<u32>),
}

impl<'a> RootRef<'a> {
    fn get(self) -> Option<&'a RootInfo> {
        match self {
            RootRef::Known(r) => r,
            RootRef::Lazy(roots, id) => roots.get(&id?),
        }
    }
}

type R = Result<(), Status>;

const MAX_PARTS: usize = 16;

/// The path parts after the ones already consumed, still NUL-joined (`None`: no parts left).
/// Parts are split off lazily: most reads are two short parts, and building an array of all of
/// them per call cost more than the lookup itself.
#[derive(Clone, Copy)]
struct Rest<'a>(Option<&'a [u8]>);

impl<'a> Rest<'a> {
    const NONE: Rest<'static> = Rest(None);

    fn is_empty(self) -> bool {
        self.0.is_none()
    }

    /// The next part and the ones after it.
    fn split_first(self) -> Option<(&'a [u8], Rest<'a>)> {
        let b = self.0?;
        Some(split_part(b))
    }

    /// The single part left (`None`: none or several).
    fn single(self) -> Option<&'a [u8]> {
        match self.split_first() {
            Some((p, r)) if r.is_empty() => Some(p),
            _ => None,
        }
    }
}

/// `b` up to its first NUL, and the parts after it.
fn split_part(b: &[u8]) -> (&[u8], Rest<'_>) {
    match find_nul(b) {
        Some(i) => (&b[..i], Rest(Some(&b[i + 1..]))),
        None => (b, Rest::NONE),
    }
}

/// The index of the first NUL byte, eight bytes at a time (a byte-wise scan was the largest
/// single cost of a property read). `(x - 0x01..) & !x & 0x80..` flags every zero byte and,
/// through borrows, possibly bytes above one, never below: the lowest flag is the first NUL.
fn find_nul(b: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut chunks = b.chunks_exact(8);
    let mut base = 0;
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let x = u64::from_le_bytes(w);
        let z = x.wrapping_sub(LO) & !x & HI;
        if z != 0 {
            return Some(base + (z.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&c| c == 0)
        .map(|i| base + i)
}

/// A part of a path already known to be UTF-8 (checked once for the whole path; parts end at
/// NUL bytes, which are always char boundaries). Only map keys and indices need it.
fn text(part: &[u8]) -> Result<&str, Status> {
    std::str::from_utf8(part).map_err(|_| Status::NotFound)
}

type Reader = fn(&PropertyView<'_>, Rest<'_>, &mut Vec<u8>) -> R;

/// The attributes read on every request, found by prefix (`name\0`, a word compare or two
/// each) before the general split: the same `(top, rest)` as `split_part` gives for them,
/// without the NUL scan and the byte-wise compares of the match.
const BY_PREFIX: [(&[u8], Reader); 6] = [
    (b"response\0", response),
    (b"request\0", request),
    (b"upstream\0", upstream),
    (b"connection\0", connection),
    (b"cluster_metadata\0", cluster_metadata),
    (b"upstream_host_metadata\0", upstream_host_metadata),
];

/// Answers `proxy_get_property(path)`; `path` is the NUL-joined parts. The value is appended to
/// `out` (cleared first). Dispatch compares path bytes and never requires UTF-8: Envoy's
/// `Context::getProperty` splits any bytes at NUL, so a non-UTF-8 first part names filter state
/// `wasm.<part>` and later parts select into it (map keys and indices that are not UTF-8 match
/// nothing).
pub fn get_property(view: &PropertyView<'_>, path: &[u8], out: &mut Vec<u8>) -> R {
    out.clear();
    for &(prefix, read) in &BY_PREFIX {
        if let Some(rest) = path.strip_prefix(prefix) {
            return read(view, Rest(Some(rest)), out);
        }
    }
    // More than MAX_PARTS parts is NOT_FOUND. Only a walk into a Struct (`json_path`) consumes
    // an unbounded number of parts; every other branch answers NOT_FOUND to such a path anyway,
    // so the parts are counted there instead of on every call.
    let (top, rest) = split_part(path);
    match top {
        b"request" => request(view, rest, out),
        b"response" => response(view, rest, out),
        b"connection" => connection(view, rest, out),
        b"source" => address(
            view.stream
                .and_then(conn)
                .map(|c| c.source_address.as_str()),
            rest,
            out,
        ),
        b"destination" => address(
            view.stream
                .and_then(conn)
                .map(|c| c.destination_address.as_str()),
            rest,
            out,
        ),
        b"upstream" => upstream(view, rest, out),
        b"node" => node(view.node, rest, out),
        b"cluster_name" => {
            let up = upstream_info(view).ok_or(Status::NotFound)?;
            if up.cluster_name.is_empty() {
                return Err(Status::NotFound);
            }
            leaf_str(&up.cluster_name, rest, out)
        }
        b"cluster_metadata" => cluster_metadata(view, rest, out),
        b"upstream_host_metadata" => upstream_host_metadata(view, rest, out),
        b"route_name" => {
            let h = view
                .stream
                .and_then(|s| s.facts.http())
                .ok_or(Status::NotFound)?;
            leaf_str(&h.route_name, rest, out)
        }
        b"metadata" | b"route_metadata" | b"listener_metadata" => {
            // Dynamic / route / listener metadata: empty messages in this model.
            if top != b"listener_metadata" && view.stream.is_none() {
                return Err(Status::NotFound);
            }
            metadata(&[], rest, out)
        }
        b"listener_direction" => {
            let dir = view
                .stream
                .and_then(|s| s.facts.direction())
                .or_else(|| view.root.get().and_then(|r| r.direction))
                .ok_or(Status::NotFound)?;
            let v: i64 = match dir {
                Direction::Inbound => 1,
                Direction::Outbound | Direction::Gateway => 2,
            };
            leaf_i64(v, rest, out)
        }
        b"plugin_name" => leaf_str(
            &view.root.get().ok_or(Status::NotFound)?.plugin_name,
            rest,
            out,
        ),
        b"plugin_root_id" => leaf_str(&view.root.get().ok_or(Status::NotFound)?.root_id, rest, out),
        b"plugin_vm_id" => leaf_str(&view.root.get().ok_or(Status::NotFound)?.vm_id, rest, out),
        b"connection_id" => {
            let c = view.stream.and_then(conn).ok_or(Status::NotFound)?;
            leaf_u64(c.id, rest, out)
        }
        b"filter_state" => {
            let s = view.stream.ok_or(Status::NotFound)?;
            if rest.is_empty() {
                let pairs: Vec<(&[u8], &[u8])> = s.filter_state.iter().collect();
                out.extend_from_slice(&proxy_attributes::values::encode_pairs(&pairs));
                return Ok(());
            }
            let key = rest.single().ok_or(Status::NotFound)?;
            out.extend_from_slice(s.filter_state.get(key).ok_or(Status::NotFound)?);
            Ok(())
        }
        _ => lookup_filter_state(view, top, rest, out),
    }
}

/// `cluster_metadata`: the cluster's `istio` filter metadata (its service).
fn cluster_metadata(view: &PropertyView<'_>, rest: Rest<'_>, out: &mut Vec<u8>) -> R {
    let up = upstream_info(view).ok_or(Status::NotFound)?;
    if up.cluster_name.is_empty() {
        return Err(Status::NotFound);
    }
    // The per-request reads are leaves of `services[0]`: answered without building the
    // Struct (same bytes as the generic path below).
    if let Some(s) = &up.service {
        if let Some(field) = services_0_leaf(rest) {
            let v = match field {
                b"host" => Some(&s.host),
                b"name" => Some(&s.name),
                b"namespace" => Some(&s.namespace),
                _ => None,
            };
            return v.map_or(Err(Status::NotFound), |v| leaf_str(v, Rest::NONE, out));
        }
    }
    let md = match &up.service {
        Some(s) => vec![(
            "istio".to_string(),
            serde_json::json!({"services": [{"host": s.host, "name": s.name, "namespace": s.namespace}]}),
        )],
        None => Vec::new(),
    };
    metadata(&md, rest, out)
}

/// `upstream_host_metadata`: the endpoint's `istio` filter metadata (its workload).
fn upstream_host_metadata(view: &PropertyView<'_>, rest: Rest<'_>, out: &mut Vec<u8>) -> R {
    let s = view.stream.ok_or(Status::NotFound)?;
    let up = upstream_info(view).ok_or(Status::NotFound)?;
    if !upstream_selected(s) || up.address.is_none() {
        return Err(Status::NotFound);
    }
    if let (Some(w), Some(b"filter_metadata\0istio\0workload")) = (&up.endpoint_workload, rest.0) {
        return leaf_str(w, Rest::NONE, out);
    }
    let md = match &up.endpoint_workload {
        Some(w) => vec![("istio".to_string(), serde_json::json!({ "workload": w }))],
        None => Vec::new(),
    };
    metadata(&md, rest, out)
}

/// `filter_metadata.istio.services.<i>.<field>` with `<i>` parsing as 0: the field.
fn services_0_leaf(rest: Rest<'_>) -> Option<&[u8]> {
    let tail = rest
        .0?
        .strip_prefix(b"filter_metadata\0istio\0services\0")?;
    let (i, r) = split_part(tail);
    let field = r.single()?;
    // `"0"`, `"00"`, `"+0"`… all name item 0 (`usize` parsing, as the attribute walk does);
    // the plugins' own `"0"` is compared first, which saves the parse on every request.
    (i == b"0" || text(i).ok()?.parse::<usize>() == Ok(0)).then_some(field)
}

fn lookup_filter_state(
    view: &PropertyView<'_>,
    name: &[u8],
    rest: Rest<'_>,
    out: &mut Vec<u8>,
) -> R {
    let s = view.stream.ok_or(Status::NotFound)?;
    let v = s.filter_state.get_wasm(name).ok_or(Status::NotFound)?;
    if !rest.is_empty() {
        return Err(Status::NotFound);
    }
    out.extend_from_slice(v);
    Ok(())
}

fn conn(s: &StreamState) -> Option<&ConnectionInfo> {
    s.facts
        .http()
        .map(|h| &h.connection)
        .or_else(|| s.facts.tcp().map(|t| &t.connection))
}

fn upstream_info<'a>(view: &PropertyView<'a>) -> Option<&'a UpstreamInfo> {
    let s = view.stream?;
    s.facts
        .http()
        .map(|h| &h.upstream)
        .or_else(|| s.facts.tcp().map(|t| &t.upstream))
}

/// HTTP: the router picked a host; TCP: always (tcp_proxy connects before data flows).
fn upstream_selected(s: &StreamState) -> bool {
    s.facts.tcp().is_some() || s.routed || s.response_started || s.log_phase
}

fn leaf_str(v: &str, rest: Rest<'_>, out: &mut Vec<u8>) -> R {
    if !rest.is_empty() {
        return Err(Status::NotFound);
    }
    out.extend_from_slice(v.as_bytes());
    Ok(())
}

fn leaf_i64(v: i64, rest: Rest<'_>, out: &mut Vec<u8>) -> R {
    if !rest.is_empty() {
        return Err(Status::NotFound);
    }
    out.extend_from_slice(&v.to_le_bytes());
    Ok(())
}

fn leaf_u64(v: u64, rest: Rest<'_>, out: &mut Vec<u8>) -> R {
    if !rest.is_empty() {
        return Err(Status::NotFound);
    }
    out.extend_from_slice(&v.to_le_bytes());
    Ok(())
}

fn leaf_bool(v: bool, rest: Rest<'_>, out: &mut Vec<u8>) -> R {
    if !rest.is_empty() {
        return Err(Status::NotFound);
    }
    out.push(v as u8);
    Ok(())
}

fn header<'a>(map: &'a [(String, String)], name: &str) -> Option<&'a str> {
    map.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Envoy `HeaderMap::byteSize()`: the sum of key and value lengths.
pub fn header_bytes(map: &[(String, String)]) -> u64 {
    map.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum()
}

/// `key == name.to_ascii_lowercase()`, without building the lower-cased copy.
pub(crate) fn is_lowered(key: &str, name: &[u8]) -> bool {
    key.len() == name.len()
        && key
            .bytes()
            .zip(name)
            .all(|(k, n)| k == n.to_ascii_lowercase())
}

/// A header map as CEL sees it: distinct keys, multiple values joined with `,`.
fn header_map(map: &[(String, String)], rest: Rest<'_>, out: &mut Vec<u8>) -> R {
    let Some((name, r)) = rest.split_first() else {
        let mut keys: Vec<&str> = Vec::new();
        for (k, _) in map {
            if !keys.contains(&k.as_str()) {
                keys.push(k);
            }
        }
        let pairs: Vec<(&str, String)> = keys.iter().map(|k| (*k, joined(map, k))).collect();
        out.extend_from_slice(&proxy_attributes::values::encode_pairs(&pairs));
        return Ok(());
    };
    if !r.is_empty() {
        return Err(Status::NotFound);
    }
    // Header names are matched lower-cased (Envoy `LowerCaseString`); the values of a repeated
    // header are joined with `,` (a comma only once something was written, as `joined` does).
    let start = out.len();
    let mut found = false;
    for (k, v) in map {
        if is_lowered(k, name) {
            if out.len() > start {
                out.push(b',');
            }
            found = true;
            out.extend_from_slice(v.as_bytes());
        }
    }
    if !found {
        return Err(Status::NotFound);
    }
    Ok(())
}

fn joined(map: &[(String, String)], key: &str) -> String {
    let mut s = String::new();
    for (k, v) in map {
        if k == key {
            if !s.is_empty() {
                s.push(',');
            }
            s.push_str(v);
        }
    }
    s
}

fn request(view: &PropertyView<'_>, rest: Rest<'_>, out: &mut Vec<u8>) -> R {
    let s = view.stream.ok_or(Status::NotFound)?;
    let h = s.facts.http().ok_or(Status::NotFound)?;
    let hdrs = visible(s, MAP_REQ_HEADERS);
    let (field, rest) = rest.split_first().ok_or(Status::SerializationFailure)?;
    let hv = |name: &str| header(hdrs, name).ok_or(Status::NotFound);
    match field {
        b"path" => leaf_str(hv(":path")?, rest, out),
        b"url_path" => {
            let p = hv(":path")?;
            leaf_str(p.split('?').next().unwrap_or(p), rest, out)
        }
        b"host" => leaf_str(hv(":authority")?, rest, out),
        b"scheme" => leaf_str(hv(":scheme")?, rest, out),
        b"method" => leaf_str(hv(":method")?, rest, out),
        b"referer" => leaf_str(hv("referer")?, rest, out),
        b"useragent" => leaf_str(hv("user-agent")?, rest, out),
        b"id" => leaf_str(hv("x-request-id")?, rest, out),
        b"headers" => header_map(hdrs, rest, out),
        b"time" => leaf_i64(h.start_ns, rest, out),
        b"protocol" => leaf_str(&h.protocol, rest, out),
        b"duration" if s.log_phase => leaf_i64(h.duration_ns, rest, out),
        b"size" => {
            let v = match header(hdrs, "content-length") {
                Some(cl) => cl.trim().parse::<i64>().map_err(|_| Status::NotFound)?,
                None => s.bytes_received as i64,
            };
            leaf_i64(v, rest, out)
        }
        b"total_size" if s.log_phase => {
            leaf_i64((s.bytes_received + header_bytes(hdrs)) as i64, rest, out)
        }
        _ => Err(Status::NotFound),
    }
}

/// The header map `m` as Envoy's CEL wrappers see it: its Wasm context holds the map only
/// during the callback that delivers it (`request_headers_` & co. are reset once the callback
/// continues, `context.cc` decodeHeaders/encodeHeaders) and hands the access-log copies to
/// `onLog`. Elsewhere — a later callback, a mid-stream tick — the wrapper gets a null map:
/// header-backed attributes (`request.method`, `request.headers[…]`, …) are absent, `request.size`
/// falls back to the bytes received.
fn visible(s: &StreamState, m: usize) -> &[(String, String)] {
    if s.live[m] || s.log_phase {
        &s.maps[m]
    } else {
        &[]
    }
}

/// `Grpc::Utility::httpToGrpcStatus` (grpc's HTTP→gRPC status mapping).
fn http_to_grpc_status(http: i64) -> i64 {
    match http {
        400 => 13,             // INTERNAL
        401 => 16,             // UNAUTHENTICATED
        403 => 7,              // PERMISSION_DENIED
        404 => 12,             // UNIMPLEMENTED
        429 | 502..=504 => 14, // UNAVAILABLE
        _ => 2,                // UNKNOWN
    }
}

fn response(view: &PropertyView<'_>, rest: Rest<'_>, out: &mut Vec<u8>) -> R {
    let s = view.stream.ok_or(Status::NotFound)?;
    let (field, rest) = rest.split_first().ok_or(Status::SerializationFailure)?;
    let Some(h) = s.facts.http() else {
        // A TCP connection has stream info too: Envoy answers `response.flags` from it (no flag
        // set on a connection we describe), which Istio's TCP metrics print as "-"
        // (testdata/metric/tcp_*_connection_open.yaml.tmpl: response_flags "-").
        return match field {
            b"flags" => leaf_u64(0, rest, out),
            _ => Err(Status::NotFound),
        };
    };
    match field {
        b"code" => leaf_i64(s.response_code.ok_or(Status::NotFound)?, rest, out),
        b"code_details" if s.response_started || s.log_phase => {
            if s.code_details.is_empty() {
                return Err(Status::NotFound);
            }
            leaf_str(&s.code_details, rest, out)
        }
        b"flags" => leaf_u64(if s.log_phase { h.response_flags } else { 0 }, rest, out),
        b"grpc_status" => {
            // `Grpc::Common::getGrpcStatus(trailers, headers, info)`: the trailers' grpc-status,
            // else the headers', else inferred from the HTTP status (`httpToGrpcStatus`).
            let v = header(visible(s, MAP_RESP_TRAILERS), "grpc-status")
                .or_else(|| header(visible(s, MAP_RESP_HEADERS), "grpc-status"))
                .and_then(|v| v.trim().parse::<i64>().ok())
                .or_else(|| s.response_code.map(http_to_grpc_status))
                .ok_or(Status::NotFound)?;
            leaf_i64(v, rest, out)
        }
        b"headers" if s.response_started => header_map(visible(s, MAP_RESP_HEADERS), rest, out),
        b"trailers" if s.response_started => header_map(visible(s, MAP_RESP_TRAILERS), rest, out),
        b"size" if s.response_started || s.log_phase => leaf_i64(s.bytes_sent as i64, rest, out),
        b"total_size" if s.log_phase => leaf_i64(
            (s.bytes_sent
                + header_bytes(&s.maps[MAP_RESP_HEADERS])
                + header_bytes(&s.maps[MAP_RESP_TRAILERS])) as i64,
            rest,
            out,
        ),
        _ => Err(Status::NotFound),
    }
}

fn connection(view: &PropertyView<'_>, rest: Rest<'_>, out: &mut Vec<u8>) -> R {
    let s = view.stream.ok_or(Status::NotFound)?;
    let c = conn(s).ok_or(Status::NotFound)?;
    let inbound = s.facts.direction() == Some(Direction::Inbound);
    let (field, rest) = rest.split_first().ok_or(Status::SerializationFailure)?;
    match field {
        b"id" => leaf_u64(c.id, rest, out),
        b"mtls" => leaf_bool(inbound && c.mtls, rest, out),
        b"requested_server_name" => leaf_str(&c.requested_server_name, rest, out),
        b"tls_version" if inbound && c.mtls => leaf_str("TLSv1.3", rest, out),
        b"uri_san_local_certificate" if inbound && c.mtls => leaf_str(
            c.local_principal.as_deref().ok_or(Status::NotFound)?,
            rest,
            out,
        ),
        b"uri_san_peer_certificate" if inbound && c.mtls => leaf_str(
            c.peer_principal.as_deref().ok_or(Status::NotFound)?,
            rest,
            out,
        ),
        _ => Err(Status::NotFound),
    }
}

fn address(addr: Option<&str>, rest: Rest<'_>, out: &mut Vec<u8>) -> R {
    let addr = addr.ok_or(Status::NotFound)?;
    let (field, rest) = rest.split_first().ok_or(Status::SerializationFailure)?;
    match field {
        b"address" => {
            if addr.is_empty() {
                return Err(Status::NotFound);
            }
            leaf_str(addr, rest, out)
        }
        b"port" => leaf_i64(port_of(addr).ok_or(Status::NotFound)?, rest, out),
        _ => Err(Status::NotFound),
    }
}

/// The port of `ip:port` / `[v6]:port`.
pub fn port_of(addr: &str) -> Option<i64> {
    addr.rsplit_once(':')
        .and_then(|(_, p)| p.parse::<i64>().ok())
}

fn upstream(view: &PropertyView<'_>, rest: Rest<'_>, out: &mut Vec<u8>) -> R {
    let s = view.stream.ok_or(Status::NotFound)?;
    let up = upstream_info(view).ok_or(Status::NotFound)?;
    let c = conn(s).ok_or(Status::NotFound)?;
    // The upstream TLS session is the mesh one on outbound and gateway listeners.
    let upstream_mtls = s.facts.direction() != Some(Direction::Inbound) && c.mtls;
    let (field, rest) = rest.split_first().ok_or(Status::SerializationFailure)?;
    if !upstream_selected(s) {
        return Err(Status::NotFound);
    }
    match field {
        b"address" => leaf_str(up.address.as_deref().ok_or(Status::NotFound)?, rest, out),
        b"port" => leaf_i64(
            up.address
                .as_deref()
                .and_then(port_of)
                .ok_or(Status::NotFound)?,
            rest,
            out,
        ),
        b"tls_version" if upstream_mtls => leaf_str("TLSv1.3", rest, out),
        b"uri_san_local_certificate" if upstream_mtls => leaf_str(
            c.local_principal.as_deref().ok_or(Status::NotFound)?,
            rest,
            out,
        ),
        b"uri_san_peer_certificate" if upstream_mtls => leaf_str(
            c.peer_principal.as_deref().ok_or(Status::NotFound)?,
            rest,
            out,
        ),
        _ => Err(Status::NotFound),
    }
}

fn node(n: &LocalNode, rest: Rest<'_>, out: &mut Vec<u8>) -> R {
    let Some((field, r)) = rest.split_first() else {
        out.extend_from_slice(&encode_node(n));
        return Ok(());
    };
    match field {
        b"id" => leaf_str(&n.id, r, out),
        b"cluster" => leaf_str(&n.cluster, r, out),
        b"metadata" => match r.split_first() {
            None => serialize_json_map(&n.metadata, out),
            Some((key, r)) => {
                let v = n.metadata.get(text(key)?).ok_or(Status::NotFound)?;
                serialize_json(json_path(v, 3, r)?, out)
            }
        },
        _ => Err(Status::NotFound),
    }
}

/// An `envoy.config.core.v3.Metadata` built from `filter_metadata` entries.
fn metadata(filter_metadata: &[(String, Json)], rest: Rest<'_>, out: &mut Vec<u8>) -> R {
    let Some((field, r)) = rest.split_first() else {
        out.extend_from_slice(&encode_metadata(filter_metadata));
        return Ok(());
    };
    if field != b"filter_metadata" {
        return Err(Status::NotFound);
    }
    let Some((ns, r)) = r.split_first() else {
        let map: serde_json::Map<String, Json> = filter_metadata.iter().cloned().collect();
        return serialize_json_map(&map, out);
    };
    let v = filter_metadata
        .iter()
        .find(|(k, _)| k.as_bytes() == ns)
        .map(|(_, v)| v)
        .ok_or(Status::NotFound)?;
    serialize_json(json_path(v, 3, r)?, out)
}

/// Walks a Struct value: object keys by name, list items by decimal index (Envoy ≥ 1.17).
/// `consumed`: the path parts before `rest` (the whole path may have at most MAX_PARTS).
fn json_path<'a>(mut v: &'a Json, consumed: usize, mut rest: Rest<'_>) -> Result<&'a Json, Status> {
    let left = rest
        .0
        .map_or(0, |b| b.iter().filter(|&&c| c == 0).count() + 1);
    if consumed + left > MAX_PARTS {
        return Err(Status::NotFound);
    }
    while let Some((part, r)) = rest.split_first() {
        let part = text(part)?;
        v = match v {
            Json::Object(m) => m.get(part).ok_or(Status::NotFound)?,
            Json::Array(a) => a
                .get(part.parse::<usize>().map_err(|_| Status::NotFound)?)
                .ok_or(Status::NotFound)?,
            _ => return Err(Status::NotFound),
        };
        rest = r;
    }
    Ok(v)
}

/// `serializeValue` for a Struct-derived CEL value.
pub fn serialize_json(v: &Json, out: &mut Vec<u8>) -> R {
    match v {
        Json::Null => Err(Status::SerializationFailure),
        Json::Bool(b) => {
            out.push(*b as u8);
            Ok(())
        }
        Json::Number(n) => {
            out.extend_from_slice(&n.as_f64().unwrap_or(0.0).to_le_bytes());
            Ok(())
        }
        Json::String(s) => {
            out.extend_from_slice(s.as_bytes());
            Ok(())
        }
        Json::Object(m) => serialize_json_map(m, out),
        Json::Array(a) => {
            let mut items = Vec::with_capacity(a.len());
            for item in a {
                let mut b = Vec::new();
                serialize_json(item, &mut b)?;
                items.push((b, Vec::<u8>::new()));
            }
            out.extend_from_slice(&proxy_attributes::values::encode_pairs(&items));
            Ok(())
        }
    }
}

fn serialize_json_map(m: &serde_json::Map<String, Json>, out: &mut Vec<u8>) -> R {
    let mut pairs = Vec::with_capacity(m.len());
    for (k, v) in m {
        let mut b = Vec::new();
        serialize_json(v, &mut b)?;
        pairs.push((k.as_bytes(), b));
    }
    out.extend_from_slice(&proxy_attributes::values::encode_pairs(&pairs));
    Ok(())
}

/// JSON → `google.protobuf.Value`.
pub fn json_to_value(v: &Json) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match v {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(*b),
        Json::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        Json::String(s) => Kind::StringValue(s.clone()),
        Json::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.iter().map(json_to_value).collect(),
        }),
        Json::Object(m) => Kind::StructValue(json_to_struct(m)),
    };
    prost_types::Value { kind: Some(kind) }
}

/// JSON object → `google.protobuf.Struct`.
pub fn json_to_struct(m: &serde_json::Map<String, Json>) -> prost_types::Struct {
    prost_types::Struct {
        fields: m
            .iter()
            .map(|(k, v)| (k.clone(), json_to_value(v)))
            .collect(),
    }
}

fn put_len_delimited(tag: u32, bytes: &[u8], out: &mut Vec<u8>) {
    prost::encoding::encode_key(tag, prost::encoding::WireType::LengthDelimited, out);
    prost::encoding::encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// `envoy.config.core.v3.Node { id = 1, cluster = 2, metadata = 3 }`.
pub fn encode_node(n: &LocalNode) -> Vec<u8> {
    let mut out = Vec::new();
    if !n.id.is_empty() {
        put_len_delimited(1, n.id.as_bytes(), &mut out);
    }
    if !n.cluster.is_empty() {
        put_len_delimited(2, n.cluster.as_bytes(), &mut out);
    }
    if !n.metadata.is_empty() {
        put_len_delimited(3, &json_to_struct(&n.metadata).encode_to_vec(), &mut out);
    }
    out
}

/// `envoy.config.core.v3.Metadata { map<string, Struct> filter_metadata = 1 }`.
pub fn encode_metadata(filter_metadata: &[(String, Json)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in filter_metadata {
        let Json::Object(m) = v else { continue };
        let mut entry = Vec::new();
        put_len_delimited(1, k.as_bytes(), &mut entry);
        put_len_delimited(2, &json_to_struct(m).encode_to_vec(), &mut entry);
        put_len_delimited(1, &entry, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_values_serialize_like_envoy() {
        let mut out = Vec::new();
        serialize_json(&serde_json::json!(15020), &mut out).unwrap();
        assert_eq!(out, 15020f64.to_le_bytes());
        out.clear();
        assert_eq!(
            serialize_json(&serde_json::json!({"a": null}), &mut out),
            Err(Status::SerializationFailure)
        );
        out.clear();
        // One-entry map {"app": "x"}: count 1, lengths 3 and 1, then "app\0x\0".
        serialize_json(&serde_json::json!({"app": "x"}), &mut out).unwrap();
        assert_eq!(out, b"\x01\0\0\0\x03\0\0\0\x01\0\0\0app\0x\0");
    }

    #[test]
    fn find_nul_is_the_first_zero_byte() {
        // Every placement of up to two NULs among other bytes (0x01 and 0x80/0xff exercise the
        // borrow and high-bit cases of the word-at-a-time test), lengths 0..=24.
        for len in 0..=24usize {
            for fill in [0x01u8, 0x80, 0xff, b'a'] {
                for i in 0..=len {
                    for j in i..=len {
                        let mut b = vec![fill; len];
                        if i < len {
                            b[i] = 0;
                        }
                        if j < len {
                            b[j] = 0;
                        }
                        assert_eq!(find_nul(&b), b.iter().position(|&c| c == 0), "{b:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn by_prefix_names_are_whole_top_parts() {
        // Each prefix is one top-level name and its NUL: exactly what `split_part` cuts off.
        for (prefix, _) in BY_PREFIX {
            let (top, rest) = split_part(prefix);
            assert_eq!(rest.0, Some(&b""[..]), "{prefix:?}");
            assert_eq!(top.len() + 1, prefix.len(), "{prefix:?}");
        }
    }

    #[test]
    fn ports() {
        assert_eq!(port_of("10.0.0.1:8080"), Some(8080));
        assert_eq!(port_of("[::1]:443"), Some(443));
        assert_eq!(port_of("10.0.0.1"), None);
    }
}

/// Header-backed attributes exist only while Envoy's Wasm context holds the header map (the
/// callback that delivers it, or `onLog` with the access-log copies), and `response.grpc_status`
/// falls back to the HTTP status (Envoy 1.21–1.25 `filters/common/expr/context.cc`
/// RequestWrapper/ResponseWrapper; `Grpc::Common::getGrpcStatus` with stream info).
#[cfg(test)]
mod header_visibility {
    use super::*;
    use crate::host_state::{Facts, StreamState};
    use crate::stream::*;

    fn exchange() -> HttpExchange {
        HttpExchange {
            start_ns: 1,
            duration_ns: 2,
            protocol: "HTTP/2".into(),
            ..HttpExchange::new(Direction::Outbound)
        }
    }

    fn node() -> LocalNode {
        LocalNode {
            id: "n".into(),
            cluster: "c".into(),
            metadata: serde_json::Map::new(),
        }
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn read(s: &StreamState, path: &[u8]) -> Result<Vec<u8>, Status> {
        let node = node();
        let view = PropertyView {
            node: &node,
            root: RootRef::Known(None),
            stream: Some(s),
        };
        let mut out = Vec::new();
        get_property(&view, path, &mut out).map(|()| out)
    }

    fn stream(h: &HttpExchange) -> StreamState {
        let mut s = StreamState {
            facts: Facts::Http(h),
            response_started: true,
            bytes_received: 10,
            response_code: Some(503),
            ..StreamState::default()
        };
        s.maps[MAP_REQ_HEADERS] = pairs(&[
            (":method", "POST"),
            (":path", "/items"),
            ("content-length", "7"),
        ]);
        s.maps[MAP_RESP_HEADERS] = pairs(&[(":status", "503")]);
        s
    }

    #[test]
    fn request_headers_are_visible_in_their_callback_and_at_log_only() {
        let h = exchange();
        let mut s = stream(&h);
        // Another callback (response headers, a mid-stream tick): Envoy's wrapper has no map.
        assert_eq!(read(&s, b"request\0method"), Err(Status::NotFound));
        assert_eq!(read(&s, b"request\0url_path"), Err(Status::NotFound));
        assert_eq!(
            read(&s, b"request\0headers\0content-length"),
            Err(Status::NotFound)
        );
        // `request.size` without headers: the bytes received so far (10), not content-length.
        assert_eq!(read(&s, b"request\0size"), Ok(10i64.to_le_bytes().to_vec()));
        // Not header-backed: still there.
        assert_eq!(read(&s, b"request\0protocol"), Ok(b"HTTP/2".to_vec()));
        // During the request-headers callback.
        s.live[MAP_REQ_HEADERS] = true;
        assert_eq!(read(&s, b"request\0method"), Ok(b"POST".to_vec()));
        assert_eq!(read(&s, b"request\0size"), Ok(7i64.to_le_bytes().to_vec()));
        s.live[MAP_REQ_HEADERS] = false;
        // At log: the access-log copy.
        s.log_phase = true;
        assert_eq!(read(&s, b"request\0method"), Ok(b"POST".to_vec()));
    }

    #[test]
    fn a_non_utf8_path_is_split_at_nul_like_any_other() {
        // Envoy splits the path bytes at NUL before looking anything up: the first part names
        // filter state, and a bytes value has nothing to select into.
        let h = exchange();
        let mut s = stream(&h);
        assert!(s.filter_state.set_wasm(b"k\xff", b"v"));
        assert!(s.filter_state.set_wasm(b"k\xff\0x", b"whole"));
        assert_eq!(read(&s, b"k\xff"), Ok(b"v".to_vec()));
        // Not the value stored under the whole path (Envoy: wasm.k\xff, then select "x").
        assert_eq!(read(&s, b"k\xff\0x"), Err(Status::NotFound));
        // A non-UTF-8 key under a known attribute matches nothing.
        s.log_phase = true;
        assert_eq!(read(&s, b"request\0headers\0\xff"), Err(Status::NotFound));
    }

    #[test]
    fn grpc_status_falls_back_to_the_http_status() {
        let h = exchange();
        let mut s = stream(&h);
        s.log_phase = true;
        // No grpc-status anywhere: httpToGrpcStatus(503) = UNAVAILABLE (14).
        assert_eq!(
            read(&s, b"response\0grpc_status"),
            Ok(14i64.to_le_bytes().to_vec())
        );
        for (http, grpc) in [
            (200, 2i64),
            (400, 13),
            (401, 16),
            (403, 7),
            (404, 12),
            (429, 14),
        ] {
            s.response_code = Some(http);
            assert_eq!(
                read(&s, b"response\0grpc_status"),
                Ok(grpc.to_le_bytes().to_vec()),
                "{http}"
            );
        }
        // A grpc-status header wins over the inference.
        s.maps[MAP_RESP_HEADERS].push(("grpc-status".into(), "5".into()));
        assert_eq!(
            read(&s, b"response\0grpc_status"),
            Ok(5i64.to_le_bytes().to_vec())
        );
        // Outside the response-headers callback and the log, the header map is not there:
        // the inference from the status code answers.
        s.log_phase = false;
        assert_eq!(
            read(&s, b"response\0grpc_status"),
            Ok(14i64.to_le_bytes().to_vec())
        );
        // No response yet: nothing to infer from.
        s.response_code = None;
        assert_eq!(read(&s, b"response\0grpc_status"), Err(Status::NotFound));
    }
}
