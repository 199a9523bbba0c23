#![allow(dead_code)]
//! (Test only.) The previous `get_property`, verbatim: Envoy's attribute model for `proxy_get_property` (Envoy 1.21–1.25, the Wasm-private token
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
    RootInfo, StreamState, MAP_REQ_HEADERS, MAP_RESP_HEADERS, MAP_RESP_TRAILERS,
};
use crate::stream::{ConnectionInfo, Direction, LocalNode, UpstreamInfo};

/// What a property lookup can see.
pub struct PropertyView<'a> {
    pub node: &'a LocalNode,
    /// The plugin of the effective context.
    pub root: Option<&'a RootInfo>,
    /// The stream, when the effective context is a stream context.
    pub stream: Option<&'a StreamState>,
}

type R = Result<(), Status>;

const MAX_PARTS: usize = 16;

/// Answers `proxy_get_property(path)`; `path` is the NUL-joined parts. The value is appended to
/// `out` (cleared first).
pub fn get_property(view: &PropertyView<'_>, path: &[u8], out: &mut Vec<u8>) -> R {
    out.clear();
    let Ok(path) = std::str::from_utf8(path) else {
        return lookup_filter_state(view, path, &[], out);
    };
    // Split at NUL bytes (always char boundaries in valid UTF-8); a byte scan is several times
    // cheaper than `str::split` and this runs on every property read.
    let mut parts = [""; MAX_PARTS];
    let mut n = 0;
    let mut start = 0;
    for end in path
        .bytes()
        .enumerate()
        .filter_map(|(i, b)| (b == 0).then_some(i))
        .chain(std::iter::once(path.len()))
    {
        if n == MAX_PARTS {
            return Err(Status::NotFound);
        }
        parts[n] = &path[start..end];
        n += 1;
        start = end + 1;
    }
    let (top, rest) = (parts[0], &parts[1..n]);
    match top {
        "request" => request(view, rest, out),
        "response" => response(view, rest, out),
        "connection" => connection(view, rest, out),
        "source" => address(
            view.stream
                .and_then(conn)
                .map(|c| c.source_address.as_str()),
            rest,
            out,
        ),
        "destination" => address(
            view.stream
                .and_then(conn)
                .map(|c| c.destination_address.as_str()),
            rest,
            out,
        ),
        "upstream" => upstream(view, rest, out),
        "node" => node(view.node, rest, out),
        "cluster_name" => {
            let up = upstream_info(view).ok_or(Status::NotFound)?;
            if up.cluster_name.is_empty() {
                return Err(Status::NotFound);
            }
            leaf_str(&up.cluster_name, rest, out)
        }
        "cluster_metadata" => {
            let up = upstream_info(view).ok_or(Status::NotFound)?;
            if up.cluster_name.is_empty() {
                return Err(Status::NotFound);
            }
            // The per-request reads are leaves of `services[0]`: answered without building the
            // Struct (same bytes as the generic path below).
            if let (Some(s), ["filter_metadata", "istio", "services", i, field]) =
                (&up.service, rest)
            {
                if i.parse::<usize>() == Ok(0) {
                    let v = match *field {
                        "host" => Some(&s.host),
                        "name" => Some(&s.name),
                        "namespace" => Some(&s.namespace),
                        _ => None,
                    };
                    return v.map_or(Err(Status::NotFound), |v| leaf_str(v, &[], out));
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
        "upstream_host_metadata" => {
            let s = view.stream.ok_or(Status::NotFound)?;
            let up = upstream_info(view).ok_or(Status::NotFound)?;
            if !upstream_selected(s) || up.address.is_none() {
                return Err(Status::NotFound);
            }
            if let (Some(w), ["filter_metadata", "istio", "workload"]) =
                (&up.endpoint_workload, rest)
            {
                return leaf_str(w, &[], out);
            }
            let md = match &up.endpoint_workload {
                Some(w) => vec![("istio".to_string(), serde_json::json!({ "workload": w }))],
                None => Vec::new(),
            };
            metadata(&md, rest, out)
        }
        "route_name" => {
            let h = view
                .stream
                .and_then(|s| s.facts.http())
                .ok_or(Status::NotFound)?;
            leaf_str(&h.route_name, rest, out)
        }
        "metadata" | "route_metadata" | "listener_metadata" => {
            // Dynamic / route / listener metadata: empty messages in this model.
            if top != "listener_metadata" && view.stream.is_none() {
                return Err(Status::NotFound);
            }
            metadata(&[], rest, out)
        }
        "listener_direction" => {
            let dir = view
                .stream
                .and_then(|s| s.facts.direction())
                .or_else(|| view.root.and_then(|r| r.direction))
                .ok_or(Status::NotFound)?;
            let v: i64 = match dir {
                Direction::Inbound => 1,
                Direction::Outbound | Direction::Gateway => 2,
            };
            leaf_i64(v, rest, out)
        }
        "plugin_name" => leaf_str(&view.root.ok_or(Status::NotFound)?.plugin_name, rest, out),
        "plugin_root_id" => leaf_str(&view.root.ok_or(Status::NotFound)?.root_id, rest, out),
        "plugin_vm_id" => leaf_str(&view.root.ok_or(Status::NotFound)?.vm_id, rest, out),
        "connection_id" => {
            let c = view.stream.and_then(conn).ok_or(Status::NotFound)?;
            leaf_u64(c.id, rest, out)
        }
        "filter_state" => {
            let s = view.stream.ok_or(Status::NotFound)?;
            match rest {
                [] => {
                    let pairs: Vec<(&[u8], &[u8])> = s.filter_state.iter().collect();
                    out.extend_from_slice(&proxy_attributes::values::encode_pairs(&pairs));
                    Ok(())
                }
                [key] => {
                    out.extend_from_slice(
                        s.filter_state.get(key.as_bytes()).ok_or(Status::NotFound)?,
                    );
                    Ok(())
                }
                _ => Err(Status::NotFound),
            }
        }
        _ => lookup_filter_state(view, top.as_bytes(), rest, out),
    }
}

fn lookup_filter_state(
    view: &PropertyView<'_>,
    name: &[u8],
    rest: &[&str],
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

fn leaf_str(v: &str, rest: &[&str], out: &mut Vec<u8>) -> R {
    if !rest.is_empty() {
        return Err(Status::NotFound);
    }
    out.extend_from_slice(v.as_bytes());
    Ok(())
}

fn leaf_i64(v: i64, rest: &[&str], out: &mut Vec<u8>) -> R {
    if !rest.is_empty() {
        return Err(Status::NotFound);
    }
    out.extend_from_slice(&v.to_le_bytes());
    Ok(())
}

fn leaf_u64(v: u64, rest: &[&str], out: &mut Vec<u8>) -> R {
    if !rest.is_empty() {
        return Err(Status::NotFound);
    }
    out.extend_from_slice(&v.to_le_bytes());
    Ok(())
}

fn leaf_bool(v: bool, rest: &[&str], out: &mut Vec<u8>) -> R {
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

/// A header map as CEL sees it: distinct keys, multiple values joined with `,`.
fn header_map(map: &[(String, String)], rest: &[&str], out: &mut Vec<u8>) -> R {
    match rest {
        [] => {
            let mut keys: Vec<&str> = Vec::new();
            for (k, _) in map {
                if !keys.contains(&k.as_str()) {
                    keys.push(k);
                }
            }
            let pairs: Vec<(&str, String)> = keys.iter().map(|k| (*k, joined(map, k))).collect();
            out.extend_from_slice(&proxy_attributes::values::encode_pairs(&pairs));
            Ok(())
        }
        [name] => {
            let lname = name.to_ascii_lowercase();
            if !map.iter().any(|(k, _)| *k == lname) {
                return Err(Status::NotFound);
            }
            out.extend_from_slice(joined(map, &lname).as_bytes());
            Ok(())
        }
        _ => Err(Status::NotFound),
    }
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

fn request(view: &PropertyView<'_>, rest: &[&str], out: &mut Vec<u8>) -> R {
    let s = view.stream.ok_or(Status::NotFound)?;
    let h = s.facts.http().ok_or(Status::NotFound)?;
    let hdrs = &s.maps[MAP_REQ_HEADERS];
    let (field, rest) = rest.split_first().ok_or(Status::SerializationFailure)?;
    let hv = |name: &str| header(hdrs, name).ok_or(Status::NotFound);
    match *field {
        "path" => leaf_str(hv(":path")?, rest, out),
        "url_path" => {
            let p = hv(":path")?;
            leaf_str(p.split('?').next().unwrap_or(p), rest, out)
        }
        "host" => leaf_str(hv(":authority")?, rest, out),
        "scheme" => leaf_str(hv(":scheme")?, rest, out),
        "method" => leaf_str(hv(":method")?, rest, out),
        "referer" => leaf_str(hv("referer")?, rest, out),
        "useragent" => leaf_str(hv("user-agent")?, rest, out),
        "id" => leaf_str(hv("x-request-id")?, rest, out),
        "headers" => header_map(hdrs, rest, out),
        "time" => leaf_i64(h.start_ns, rest, out),
        "protocol" => leaf_str(&h.protocol, rest, out),
        "duration" if s.log_phase => leaf_i64(h.duration_ns, rest, out),
        "size" => {
            let v = match header(hdrs, "content-length") {
                Some(cl) => cl.trim().parse::<i64>().map_err(|_| Status::NotFound)?,
                None => s.bytes_received as i64,
            };
            leaf_i64(v, rest, out)
        }
        "total_size" if s.log_phase => {
            leaf_i64((s.bytes_received + header_bytes(hdrs)) as i64, rest, out)
        }
        _ => Err(Status::NotFound),
    }
}

fn response(view: &PropertyView<'_>, rest: &[&str], out: &mut Vec<u8>) -> R {
    let s = view.stream.ok_or(Status::NotFound)?;
    let (field, rest) = rest.split_first().ok_or(Status::SerializationFailure)?;
    let Some(h) = s.facts.http() else {
        // A TCP connection has stream info too: Envoy answers `response.flags` from it (no flag
        // set on a connection we describe), which Istio's TCP metrics print as "-"
        // (testdata/metric/tcp_*_connection_open.yaml.tmpl: response_flags "-").
        return match *field {
            "flags" => leaf_u64(0, rest, out),
            _ => Err(Status::NotFound),
        };
    };
    match *field {
        "code" => leaf_i64(s.response_code.ok_or(Status::NotFound)?, rest, out),
        "code_details" if s.response_started || s.log_phase => {
            if s.code_details.is_empty() {
                return Err(Status::NotFound);
            }
            leaf_str(&s.code_details, rest, out)
        }
        "flags" => leaf_u64(if s.log_phase { h.response_flags } else { 0 }, rest, out),
        "grpc_status" => {
            let v = header(&s.maps[MAP_RESP_TRAILERS], "grpc-status")
                .or_else(|| header(&s.maps[MAP_RESP_HEADERS], "grpc-status"))
                .and_then(|v| v.trim().parse::<i64>().ok())
                .ok_or(Status::NotFound)?;
            leaf_i64(v, rest, out)
        }
        "headers" if s.response_started => header_map(&s.maps[MAP_RESP_HEADERS], rest, out),
        "trailers" if s.response_started => header_map(&s.maps[MAP_RESP_TRAILERS], rest, out),
        "size" if s.response_started || s.log_phase => leaf_i64(s.bytes_sent as i64, rest, out),
        "total_size" if s.log_phase => leaf_i64(
            (s.bytes_sent
                + header_bytes(&s.maps[MAP_RESP_HEADERS])
                + header_bytes(&s.maps[MAP_RESP_TRAILERS])) as i64,
            rest,
            out,
        ),
        _ => Err(Status::NotFound),
    }
}

fn connection(view: &PropertyView<'_>, rest: &[&str], out: &mut Vec<u8>) -> R {
    let s = view.stream.ok_or(Status::NotFound)?;
    let c = conn(s).ok_or(Status::NotFound)?;
    let inbound = s.facts.direction() == Some(Direction::Inbound);
    let (field, rest) = rest.split_first().ok_or(Status::SerializationFailure)?;
    match *field {
        "id" => leaf_u64(c.id, rest, out),
        "mtls" => leaf_bool(inbound && c.mtls, rest, out),
        "requested_server_name" => leaf_str(&c.requested_server_name, rest, out),
        "tls_version" if inbound && c.mtls => leaf_str("TLSv1.3", rest, out),
        "uri_san_local_certificate" if inbound && c.mtls => leaf_str(
            c.local_principal.as_deref().ok_or(Status::NotFound)?,
            rest,
            out,
        ),
        "uri_san_peer_certificate" if inbound && c.mtls => leaf_str(
            c.peer_principal.as_deref().ok_or(Status::NotFound)?,
            rest,
            out,
        ),
        _ => Err(Status::NotFound),
    }
}

fn address(addr: Option<&str>, rest: &[&str], out: &mut Vec<u8>) -> R {
    let addr = addr.ok_or(Status::NotFound)?;
    let (field, rest) = rest.split_first().ok_or(Status::SerializationFailure)?;
    match *field {
        "address" => {
            if addr.is_empty() {
                return Err(Status::NotFound);
            }
            leaf_str(addr, rest, out)
        }
        "port" => leaf_i64(port_of(addr).ok_or(Status::NotFound)?, rest, out),
        _ => Err(Status::NotFound),
    }
}

/// The port of `ip:port` / `[v6]:port`.
pub fn port_of(addr: &str) -> Option<i64> {
    addr.rsplit_once(':')
        .and_then(|(_, p)| p.parse::<i64>().ok())
}

fn upstream(view: &PropertyView<'_>, rest: &[&str], out: &mut Vec<u8>) -> R {
    let s = view.stream.ok_or(Status::NotFound)?;
    let up = upstream_info(view).ok_or(Status::NotFound)?;
    let c = conn(s).ok_or(Status::NotFound)?;
    // The upstream TLS session is the mesh one on outbound and gateway listeners.
    let upstream_mtls = s.facts.direction() != Some(Direction::Inbound) && c.mtls;
    let (field, rest) = rest.split_first().ok_or(Status::SerializationFailure)?;
    if !upstream_selected(s) {
        return Err(Status::NotFound);
    }
    match *field {
        "address" => leaf_str(up.address.as_deref().ok_or(Status::NotFound)?, rest, out),
        "port" => leaf_i64(
            up.address
                .as_deref()
                .and_then(port_of)
                .ok_or(Status::NotFound)?,
            rest,
            out,
        ),
        "tls_version" if upstream_mtls => leaf_str("TLSv1.3", rest, out),
        "uri_san_local_certificate" if upstream_mtls => leaf_str(
            c.local_principal.as_deref().ok_or(Status::NotFound)?,
            rest,
            out,
        ),
        "uri_san_peer_certificate" if upstream_mtls => leaf_str(
            c.peer_principal.as_deref().ok_or(Status::NotFound)?,
            rest,
            out,
        ),
        _ => Err(Status::NotFound),
    }
}

fn node(n: &LocalNode, rest: &[&str], out: &mut Vec<u8>) -> R {
    match rest {
        [] => {
            out.extend_from_slice(&encode_node(n));
            Ok(())
        }
        ["id", r @ ..] => leaf_str(&n.id, r, out),
        ["cluster", r @ ..] => leaf_str(&n.cluster, r, out),
        ["metadata"] => serialize_json_map(&n.metadata, out),
        ["metadata", key, r @ ..] => {
            let v = n.metadata.get(*key).ok_or(Status::NotFound)?;
            serialize_json(json_path(v, r)?, out)
        }
        _ => Err(Status::NotFound),
    }
}

/// An `envoy.config.core.v3.Metadata` built from `filter_metadata` entries.
fn metadata(filter_metadata: &[(String, Json)], rest: &[&str], out: &mut Vec<u8>) -> R {
    match rest {
        [] => {
            out.extend_from_slice(&encode_metadata(filter_metadata));
            Ok(())
        }
        ["filter_metadata"] => {
            let map: serde_json::Map<String, Json> = filter_metadata.iter().cloned().collect();
            serialize_json_map(&map, out)
        }
        ["filter_metadata", ns, r @ ..] => {
            let v = filter_metadata
                .iter()
                .find(|(k, _)| k == ns)
                .map(|(_, v)| v)
                .ok_or(Status::NotFound)?;
            serialize_json(json_path(v, r)?, out)
        }
        _ => Err(Status::NotFound),
    }
}

/// Walks a Struct value: object keys by name, list items by decimal index (Envoy ≥ 1.17).
fn json_path<'a>(mut v: &'a Json, rest: &[&str]) -> Result<&'a Json, Status> {
    for part in rest {
        v = match v {
            Json::Object(m) => m.get(*part).ok_or(Status::NotFound)?,
            Json::Array(a) => a
                .get(part.parse::<usize>().map_err(|_| Status::NotFound)?)
                .ok_or(Status::NotFound)?,
            _ => return Err(Status::NotFound),
        };
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
