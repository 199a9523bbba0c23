//! Peer resolution for the standard labels (`PeerNodeInfo`, `extensions/common/context.cc:366-403`,
//! stats-spec §6.5).

use super::node::NodeDims;
use super::workload_metadata::{read_workload, WorkloadSource};
use super::{Compat, Direction};
use crate::series::bytes_map::BytesMap;
use proxy_attributes::host::{HeaderMap, Host};
use proxy_attributes::peer::PeerNode;
use std::rc::Rc;
use std::sync::Arc;

/// Decoded peers by peer id (the Envoy node id metadata exchange stores next to the node):
/// every request from the same peer carries the same id and node, so the node is read and
/// decoded once per peer rather than once per request. Istio's metadata-exchange plugin caches
/// nodes by the same id. Bounded: cleared when full (a churn of pods only costs re-decoding).
#[derive(Default)]
pub struct PeerCache {
    map: BytesMap<Cached>,
    /// Distinct peer dimension sets → a small id, so the metric cache can key a peer by 4 bytes
    /// instead of its eight label values. Content-addressed and never cleared with `map`: the
    /// same dims always get the same id, so a peer-cache flush cannot multiply metric-cache
    /// entries. Bounded by [`DIMS_IDS_MAX`]; past it, peers go without an id (full values).
    dims_ids: rustc_hash::FxHashMap<Rc<NodeDims>, u32>,
}

/// Most distinct peer dimension sets given an id (a mesh has far fewer workloads).
const DIMS_IDS_MAX: usize = 1 << 16;

/// One decoded peer: the label view and the node itself (handed to CEL so that
/// `upstream_peer.*` expressions do not read and decode the FlatNode again).
#[derive(Clone)]
struct Cached {
    dims: Rc<NodeDims>,
    dims_id: Option<u32>,
    node: Option<Arc<PeerNode>>,
}

const PEER_CACHE_MAX: usize = 1024;

impl PeerCache {
    fn get(&self, id: &[u8]) -> Option<Cached> {
        self.map.get(id).cloned()
    }

    fn dims_id(&mut self, dims: &Rc<NodeDims>) -> Option<u32> {
        if let Some(id) = self.dims_ids.get(dims) {
            return Some(*id);
        }
        let id = u32::try_from(self.dims_ids.len()).ok()?;
        if self.dims_ids.len() >= DIMS_IDS_MAX {
            return None;
        }
        self.dims_ids.insert(Rc::clone(dims), id);
        Some(id)
    }

    fn insert(&mut self, id: &[u8], bytes: &[u8]) -> Cached {
        // Malformed FlatBuffers (Istio would read garbage) count as a found, empty peer:
        // every peer label becomes `unknown` (and CEL sees no peer, as it would decoding them).
        let node = PeerNode::from_flatbuffer(bytes).map(Arc::new);
        let dims = Rc::new(
            node.as_deref()
                .map(NodeDims::from_node)
                .unwrap_or_else(NodeDims::empty),
        );
        let dims_id = self.dims_id(&dims);
        let cached = Cached {
            dims,
            dims_id,
            node,
        };
        if self.map.len() >= PEER_CACHE_MAX {
            self.map.clear();
        }
        self.map.insert(id, cached.clone());
        cached
    }
}

/// What metadata exchange writes when the peer did not speak it (`context.h:38-39`).
pub const PEER_UNKNOWN_SENTINEL: &[u8] = b"envoy.wasm.metadata_exchange.peer_unknown";

/// The metadata-exchange HTTP header (`extensions/metadata_exchange/plugin.h:40`).
const PEER_METADATA_HEADER: &str = "x-envoy-peer-metadata";

/// The outcome of one resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub dims: Rc<NodeDims>,
    /// The cache's id for `dims` (same dims, same id, for the plugin's configuration); `None`
    /// for peers decoded outside the cache (MX header, endpoint metadata).
    pub dims_id: Option<u32>,
    /// `Some(node)` when the `*_peer` filter state was read (or is cached under the id just
    /// read): what `upstream_peer`/`downstream_peer` decode to in CEL, `None` inside if the
    /// FlatNode was malformed. `None`: not known from filter state (CEL reads it itself).
    pub filter_state_node: Option<Option<Arc<PeerNode>>>,
    /// Real peer metadata was found (filter state or, as an extension, the MX header).
    pub found: bool,
    /// `maybeWaiting()`: not found and the id is not the "peer unknown" sentinel, so a TCP
    /// report should wait for metadata exchange.
    pub maybe_waiting: bool,
}

fn keys(direction: Direction) -> (&'static str, &'static str) {
    match direction {
        Direction::Outbound => ("upstream_peer_id", "upstream_peer"),
        Direction::Inbound => ("downstream_peer_id", "downstream_peer"),
    }
}

/// Resolves the peer. `headers_readable` allows the `x-envoy-peer-metadata` fallback (only in
/// HTTP end-of-stream reports, where Envoy still exposes the header maps).
#[inline(never)]
pub fn resolve<H: Host + ?Sized>(
    host: &H,
    direction: Direction,
    compat: Compat,
    headers_readable: bool,
    cache: &mut PeerCache,
) -> Peer {
    let (id_key, peer_key) = keys(direction);
    // The id only keys the cache (read in place, not kept).
    let id = host.property_lent(id_key);
    let id_present = id.is_some();
    let sentinel = id.as_deref() == Some(PEER_UNKNOWN_SENTINEL);
    let cached = match id.as_deref() {
        Some(id) if !sentinel => match cache.get(id) {
            Some(c) => Some(c),
            None => host
                .property(&[peer_key])
                .map(|bytes| cache.insert(id, &bytes)),
        },
        _ => None,
    };
    drop(id);
    if let Some(Cached {
        dims,
        dims_id,
        node,
    }) = cached
    {
        return Peer {
            dims,
            dims_id,
            filter_state_node: Some(node),
            found: true,
            maybe_waiting: false,
        };
    }
    // Extension (documented deviation): the MX header still present because no metadata
    // exchange filter consumed it.
    if headers_readable && !id_present {
        let map = match direction {
            Direction::Outbound => HeaderMap::ResponseHeaders,
            Direction::Inbound => HeaderMap::RequestHeaders,
        };
        if let Some(node) = host
            .header(map, PEER_METADATA_HEADER)
            .and_then(|v| PeerNode::from_header_value(&v))
        {
            return Peer {
                dims: Rc::new(NodeDims::from_node(&node)),
                dims_id: None,
                filter_state_node: None,
                found: true,
                maybe_waiting: false,
            };
        }
    }
    let dims = match direction {
        Direction::Inbound => NodeDims::empty(),
        Direction::Outbound => read_workload(
            host,
            WorkloadSource::UpstreamHost,
            compat.endpoint_min_parts,
        )
        .map(|n| NodeDims::from_node(&n))
        .unwrap_or_else(NodeDims::empty),
    };
    Peer {
        dims: Rc::new(dims),
        dims_id: None,
        filter_state_node: None,
        found: false,
        maybe_waiting: !sentinel,
    }
}
