//! Istio's metadata exchange, emulated as the native filter `istio.metadata_exchange` at the head
//! of the chain (stats-spec §6.1–6.2; Istio `extensions/metadata_exchange/plugin.cc` and the
//! network filter `metadata_exchange.cc`).
//!
//! * The peer's sidecar sends `x-envoy-peer-metadata` (base64 protobuf Struct of the known node
//!   keys) and `x-envoy-peer-metadata-id`: the harness injects them into the request (inbound) or
//!   the response (outbound/gateway) from [`crate::stream::Peer`] unless the recorded headers
//!   already carry them.
//! * HTTP request path: both headers are removed if present and stored as `wasm.downstream_peer`
//!   (FlatNode) / `wasm.downstream_peer_id`; unless INBOUND the local node's headers are set.
//! * HTTP response path: the upstream's headers are removed and stored as `wasm.upstream_peer` /
//!   `_id`; unless OUTBOUND the local headers are added if the request carried them.
//! * TCP: `Found` stores the FlatNode and id when the exchange completes; `NotFound` stores the
//!   sentinel id.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use proxy_attributes::peer::{struct_header_value, PeerNode};

use crate::filter_state::FilterState;
use crate::properties::json_to_struct;
use crate::stream::{Direction, LocalNode, Peer};

pub const HEADER: &str = "x-envoy-peer-metadata";
pub const HEADER_ID: &str = "x-envoy-peer-metadata-id";
/// The TCP filter's "peer unknown" id (`metadata_exchange.cc`).
pub const PEER_UNKNOWN: &str = "envoy.wasm.metadata_exchange.peer_unknown";

/// Whether a chain filter is Istio's metadata exchange.
pub fn is_mx(name: &str, type_url: Option<&str>) -> bool {
    name == "istio.metadata_exchange"
        || name == "envoy.filters.network.metadata_exchange"
        || type_url
            .map(|t| t.contains("metadata_exchange"))
            .unwrap_or(false)
}

/// The header value a sidecar with this metadata sends: only the keys Istio's
/// `extractStructFromNodeFlatBuffer` keeps.
pub fn header_value(metadata: &serde_json::Map<String, serde_json::Value>) -> String {
    struct_header_value(&PeerNode::from_struct(&json_to_struct(metadata)).to_struct())
}

/// The FlatNode bytes metadata exchange stores for a peer.
pub fn flat_node(metadata: &serde_json::Map<String, serde_json::Value>) -> Vec<u8> {
    PeerNode::from_struct(&json_to_struct(metadata)).to_flatbuffer()
}

/// Precomputed local headers (computed once per proxy).
#[derive(Debug, Clone, Default)]
pub struct LocalMx {
    pub id: String,
    pub header: String,
}

impl LocalMx {
    pub fn new(node: &LocalNode) -> LocalMx {
        LocalMx {
            id: node.id.clone(),
            header: header_value(&node.metadata),
        }
    }
}

/// Memoised encodings: replays repeat the same few peers, and encoding/decoding a peer (protobuf
/// Struct, base64, FlatBuffer) costs microseconds per stream.
#[derive(Debug, Default)]
pub struct MxCache {
    // FxHash: the keys are ~500-byte base64 headers hashed on every stream; SipHash was 7 % of
    // a stats request (callgrind).
    headers: FxHashMap<String, (Arc<serde_json::Map<String, serde_json::Value>>, String)>,
    nodes: FxHashMap<String, Option<Vec<u8>>>,
    /// The last peer metadata `header_ref` encoded and its header (the same shared map is the
    /// same peer: no hashing of its id).
    last_header: Option<(Arc<serde_json::Map<String, serde_json::Value>>, String)>,
    /// The last header `flat_for` answered and its node: a stream's peer is usually the last
    /// stream's, and comparing the header costs less than hashing it.
    last_node: Option<(String, Option<Vec<u8>>)>,
    /// Header names and values taken out of streams, reused for the ones put in (the emulation
    /// adds and removes four headers a stream; their buffers go round instead of the allocator).
    spare: Vec<String>,
}

/// Entries kept per map before it is cleared (bounds memory on replays with unique peers).
const CACHE_LIMIT: usize = 4096;

/// Strings kept for reuse.
const SPARE_LIMIT: usize = 32;

impl MxCache {
    /// `header_value(peer.metadata)`, cached by peer id (verified against the metadata).
    pub fn header_for(&mut self, peer: &Peer) -> String {
        self.header_ref(peer).to_string()
    }

    fn header_ref(&mut self, peer: &Peer) -> &str {
        let last_hit =
            matches!(&self.last_header, Some((md, _)) if Arc::ptr_eq(md, &peer.metadata));
        if !last_hit {
            let mut buf = self.last_header.take().map(|(_, b)| b).unwrap_or_default();
            buf.clear();
            buf.push_str(self.header_by_id(peer));
            self.last_header = Some((peer.metadata.clone(), buf));
        }
        self.last_header.as_ref().map_or("", |(_, h)| h.as_str())
    }

    fn header_by_id(&mut self, peer: &Peer) -> &str {
        let hit = match self.headers.get(&peer.id) {
            // The same shared map (a replay's repeated peer) needs no deep compare.
            Some((md, _)) => Arc::ptr_eq(md, &peer.metadata) || **md == *peer.metadata,
            None => false,
        };
        if !hit {
            let h = header_value(&peer.metadata);
            if self.headers.len() >= CACHE_LIMIT {
                self.headers.clear();
            }
            self.headers
                .insert(peer.id.clone(), (peer.metadata.clone(), h));
        }
        self.headers.get(&peer.id).map_or("", |(_, h)| h.as_str())
    }

    /// The FlatNode for an `x-envoy-peer-metadata` value (`None`: undecodable), borrowed from
    /// the cache so a hit copies nothing.
    pub fn flat_for(&mut self, header: &str) -> Option<&[u8]> {
        let last_hit = matches!(&self.last_node, Some((h, _)) if h == header);
        if !last_hit {
            let v = match self.nodes.get(header) {
                Some(v) => v.clone(),
                None => {
                    let v = PeerNode::from_header_value(header).map(|n| n.to_flatbuffer());
                    if self.nodes.len() >= CACHE_LIMIT {
                        self.nodes.clear();
                    }
                    self.nodes.insert(header.to_string(), v.clone());
                    v
                }
            };
            let (mut key, mut node) = self.last_node.take().unwrap_or_default();
            key.clear();
            key.push_str(header);
            match (&mut node, v) {
                (Some(n), Some(v)) => {
                    n.clear();
                    n.extend_from_slice(&v);
                }
                (n, v) => *n = v,
            }
            self.last_node = Some((key, node));
        }
        self.last_node.as_ref().and_then(|(_, v)| v.as_deref())
    }

    /// `s` in a reused buffer.
    fn string(&mut self, s: &str) -> String {
        let mut v = self.spare.pop().unwrap_or_default();
        v.clear();
        v.push_str(s);
        v
    }

    /// Keeps a string's buffer for [`MxCache::string`].
    pub fn recycle(&mut self, s: String) {
        if self.spare.len() < SPARE_LIMIT && s.capacity() > 0 {
            self.spare.push(s);
        }
    }

    /// A header entry built from reused buffers.
    fn entry(&mut self, name: &str, value: &str) -> (String, String) {
        (self.string(name), self.string(value))
    }
}

/// Whether a header name is `x-envoy-peer-metadata` or `x-envoy-peer-metadata-id`.
fn is_peer_header(name: &str) -> bool {
    name == HEADER || name == HEADER_ID
}

/// Which of the two headers are present: (id, metadata), from one pass over the map.
fn present(h: &[(String, String)]) -> (bool, bool) {
    let (mut id, mut md) = (false, false);
    for (n, _) in h {
        if n == HEADER_ID {
            id = true;
        } else if n == HEADER {
            md = true;
        }
    }
    (id, md)
}

/// Adds the peer's headers to a message the peer sent, unless already present.
pub fn inject_peer(headers: &mut Vec<(String, String)>, peer: &Peer, cache: &mut MxCache) {
    let (has_id, has_md) = present(headers);
    if !has_id {
        let e = cache.entry(HEADER_ID, &peer.id);
        headers.push(e);
    }
    if !has_md {
        let mut value = cache.spare.pop().unwrap_or_default();
        value.clear();
        value.push_str(cache.header_ref(peer));
        let name = cache.string(HEADER);
        headers.push((name, value));
    }
}

/// Removes every `x-envoy-peer-metadata-id` and `x-envoy-peer-metadata` header (the filter
/// removes the header, not one value); returns the first one's value of each, unless empty. One
/// pass: a map without either (every request of an outbound stream) is only looked through;
/// otherwise the entries from the first of them on are compacted in order.
fn take_peer(
    headers: &mut Vec<(String, String)>,
    cache: &mut MxCache,
) -> (Option<String>, Option<String>) {
    let Some(from) = headers.iter().position(|(k, _)| is_peer_header(k)) else {
        return (None, None);
    };
    let (mut id, mut md) = (None, None);
    let (mut id_seen, mut md_seen) = (false, false);
    let mut kept = from;
    for r in from..headers.len() {
        let is_id = headers[r].0 == HEADER_ID;
        if !is_id && headers[r].0 != HEADER {
            headers.swap(kept, r);
            kept += 1;
            continue;
        }
        let (name, v) = std::mem::take(&mut headers[r]);
        cache.recycle(name);
        let (seen, slot) = if is_id {
            (&mut id_seen, &mut id)
        } else {
            (&mut md_seen, &mut md)
        };
        if !*seen && !v.is_empty() {
            *slot = Some(v);
        } else {
            cache.recycle(v);
        }
        *seen = true;
    }
    // Past `kept` are only the emptied entries.
    headers.truncate(kept);
    (id, md)
}

/// Which side's filter-state keys: `wasm.downstream_peer{,_id}` or `wasm.upstream_peer{,_id}`.
#[derive(Clone, Copy)]
enum Side {
    Downstream,
    Upstream,
}

impl Side {
    /// The full filter-state keys (`wasm.` included, so each write copies the key once).
    fn keys(self) -> (&'static [u8], &'static [u8]) {
        match self {
            Side::Downstream => (b"wasm.downstream_peer", b"wasm.downstream_peer_id"),
            Side::Upstream => (b"wasm.upstream_peer", b"wasm.upstream_peer_id"),
        }
    }
}

fn store(
    fs: &mut FilterState,
    side: Side,
    id: Option<String>,
    header: Option<String>,
    cache: &mut MxCache,
) {
    let (peer_key, id_key) = side.keys();
    if let Some(id) = id {
        // `set` of the full key is `set_wasm` of the name: same lookup, and an overwrite is
        // only possible on a writable entry, which stays writable.
        fs.set(id_key, id.as_bytes(), false);
        cache.recycle(id);
    }
    if let Some(h) = header {
        if let Some(node) = cache.flat_for(&h) {
            fs.set(peer_key, node, false);
        }
        cache.recycle(h);
    }
}

/// Request path. Returns whether the request carried (id, metadata).
pub fn on_request(
    dir: Direction,
    local: &LocalMx,
    headers: &mut Vec<(String, String)>,
    fs: &mut FilterState,
    cache: &mut MxCache,
) -> (bool, bool) {
    let (id, md) = take_peer(headers, cache);
    let received = (id.is_some(), md.is_some());
    store(fs, Side::Downstream, id, md, cache);
    if dir != Direction::Inbound {
        let e = cache.entry(HEADER_ID, &local.id);
        headers.push(e);
        let e = cache.entry(HEADER, &local.header);
        headers.push(e);
    }
    received
}

/// Response path.
pub fn on_response(
    dir: Direction,
    local: &LocalMx,
    received: (bool, bool),
    headers: &mut Vec<(String, String)>,
    fs: &mut FilterState,
    cache: &mut MxCache,
) {
    let (id, md) = take_peer(headers, cache);
    store(fs, Side::Upstream, id, md, cache);
    if dir != Direction::Outbound {
        if received.0 {
            let e = cache.entry(HEADER_ID, &local.id);
            headers.push(e);
        }
        if received.1 {
            let e = cache.entry(HEADER, &local.header);
            headers.push(e);
        }
    }
}

/// TCP exchange completion.
pub fn on_tcp_exchange(dir: Direction, peer: Option<&Peer>, found: bool, fs: &mut FilterState) {
    let prefix = if dir == Direction::Inbound {
        "downstream"
    } else {
        "upstream"
    };
    match (found, peer) {
        (true, Some(p)) => {
            fs.set_wasm(format!("{prefix}_peer").as_bytes(), &flat_node(&p.metadata));
            fs.set_wasm(format!("{prefix}_peer_id").as_bytes(), p.id.as_bytes());
        }
        _ => {
            fs.set_wasm(
                format!("{prefix}_peer_id").as_bytes(),
                PEER_UNKNOWN.as_bytes(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    // Istio's filter removes the header (every value) and reads the first value; an empty
    // first value counts as absent even when a repeat has one.
    #[test]
    fn take_peer_removes_every_copy_and_keeps_the_rest_in_order() {
        let mut cache = MxCache::default();
        let mut headers = h(&[
            (":status", "200"),
            (HEADER, ""),
            ("a", "1"),
            (HEADER_ID, "id-1"),
            (HEADER, "md-2"),
            ("b", "2"),
            (HEADER_ID, "id-2"),
        ]);
        let (id, md) = take_peer(&mut headers, &mut cache);
        assert_eq!(id.as_deref(), Some("id-1"));
        assert_eq!(md, None);
        assert_eq!(headers, h(&[(":status", "200"), ("a", "1"), ("b", "2")]));
    }

    #[test]
    fn take_peer_without_the_headers_changes_nothing() {
        let mut cache = MxCache::default();
        let mut headers = h(&[(":method", "GET"), ("x-envoy-peer-metadata-idx", "v")]);
        let before = headers.clone();
        assert_eq!(take_peer(&mut headers, &mut cache), (None, None));
        assert_eq!(headers, before);
    }

    #[test]
    fn take_peer_at_the_end() {
        let mut cache = MxCache::default();
        let mut headers = h(&[("a", "1"), (HEADER_ID, "id"), (HEADER, "md")]);
        let (id, md) = take_peer(&mut headers, &mut cache);
        assert_eq!((id.as_deref(), md.as_deref()), (Some("id"), Some("md")));
        assert_eq!(headers, h(&[("a", "1")]));
    }
}
