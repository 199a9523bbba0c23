//! Istio peer metadata: the `Wasm.Common.FlatNode` that metadata exchange leaves in filter state
//! (`upstream_peer` / `downstream_peer`), the base64 `google.protobuf.Struct` of the
//! `x-envoy-peer-metadata` header, the `upstream_host_metadata` endpoint string, and the local node
//! read through the `node.metadata` property.
//!
//! Every decoder takes hostile bytes: it returns `None` instead of panicking, and refuses absurd
//! sizes up front (see the `MAX_*` constants).

mod flat;
mod node_metadata;
mod structs;

pub use structs::struct_header_value;

/// Largest FlatNode buffer we decode. Real ones are ~1–2 KiB; Envoy's own header limit is 60 KiB.
pub const MAX_FLATBUFFER_BYTES: usize = 256 * 1024;
/// Largest `x-envoy-peer-metadata` value we decode (Envoy's default header-map limit is 60 KiB).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Most labels / platform-metadata entries / list items kept from one node.
pub const MAX_ENTRIES: usize = 1024;

/// One node's metadata, the fields of Istio's `node_info.fbs` `FlatNode`
/// (`istio/proxy:release-1.17:extensions/common/node_info.fbs`).
///
/// String fields that were absent read as `""`, exactly as an unset FlatBuffer string does in
/// Istio's readers. `labels` keeps the absent/empty distinction because Istio's stats plugin
/// treats a missing labels vector differently (stats-spec §3.2): `None` = vector absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerNode {
    pub name: String,
    pub namespace: String,
    /// `None` when the FlatNode has no `labels` vector; otherwise sorted by key.
    pub labels: Option<Vec<(String, String)>>,
    pub owner: String,
    pub workload_name: String,
    /// Sorted by key (empty when absent).
    pub platform_metadata: Vec<(String, String)>,
    pub istio_version: String,
    pub mesh_id: String,
    pub app_containers: Vec<String>,
    pub cluster_id: String,
    pub instance_ips: Vec<String>,
}

impl PeerNode {
    /// The value of label `key`, if the node has a labels vector holding it.
    pub fn label(&self, key: &str) -> Option<&str> {
        let labels = self.labels.as_ref()?;
        labels
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .and_then(|i| labels.get(i))
            .map(|(_, v)| v.as_str())
    }

    /// Decodes a FlatNode buffer (the `upstream_peer` / `downstream_peer` filter-state bytes),
    /// checked by the FlatBuffers verifier first. `None` for anything malformed or oversized.
    pub fn from_flatbuffer(bytes: &[u8]) -> Option<PeerNode> {
        flat::decode(bytes)
    }

    /// Encodes this node as a FlatNode buffer, as Istio's metadata exchange would store it.
    /// Labels and platform metadata are sorted by key (`CreateVectorOfSortedTables`).
    pub fn to_flatbuffer(&self) -> Vec<u8> {
        flat::encode(self)
    }

    /// Istio's `extractNodeFlatBufferFromStruct` (`extensions/common/proto_util.cc`): only the
    /// known keys are read; string fields take `string_value()` (so a non-string reads as `""`);
    /// `LABELS` / `PLATFORM_METADATA` entries take their values' `string_value()`, and an empty
    /// struct yields no vector (Istio only creates the vector when it has entries);
    /// `APP_CONTAINERS` / `INSTANCE_IPS` are split on `,` (`absl::StrSplit`, so `""` gives `[""]`).
    pub fn from_struct(s: &prost_types::Struct) -> PeerNode {
        structs::node_from_struct(s)
    }

    /// A serialised `google.protobuf.Struct` (protobuf bytes) → node. `None` if it does not parse.
    pub fn from_struct_bytes(bytes: &[u8]) -> Option<PeerNode> {
        structs::node_from_struct_bytes(bytes)
    }

    /// The `x-envoy-peer-metadata` header value: base64 (padded or not; Envoy decodes with
    /// `decodeWithoutPadding`) of a serialised Struct. `None` for bad base64 or protobuf.
    pub fn from_header_value(value: &str) -> Option<PeerNode> {
        structs::node_from_header_value(value)
    }

    /// Istio's `extractStructFromNodeFlatBuffer`: the Struct that metadata exchange sends for
    /// this node (only non-empty fields, labels only when a labels vector exists, lists
    /// comma-joined).
    pub fn to_struct(&self) -> prost_types::Struct {
        structs::node_to_struct(self)
    }

    /// The `x-envoy-peer-metadata` value metadata exchange sends for this node:
    /// `struct_header_value(&self.to_struct())`.
    pub fn header_value(&self) -> String {
        struct_header_value(&self.to_struct())
    }

    /// This node as Envoy serialises the `node.metadata` property (a pairs map; `LABELS` and
    /// `PLATFORM_METADATA` nested pairs maps; lists comma-joined): the inverse of
    /// [`PeerNode::from_node_metadata`], for hosts and tests that play Envoy.
    pub fn to_node_metadata(&self) -> Vec<u8> {
        node_metadata::encode(self)
    }

    /// The `upstream_host_metadata.filter_metadata.istio.workload` fallback
    /// (`workload;namespace;canonical_service;canonical_revision;cluster`, stats-spec §6.5):
    /// accepted with at least `min_parts` `;`-separated parts (5 on Istio 1.16+, 4 on 1.13–1.15).
    /// The node gets workload, namespace and cluster, and a labels vector holding only the
    /// non-empty canonical name and revision (Istio `context.cc` `extractPeerMetadataFromUpstreamHostMetadata`).
    pub fn from_endpoint_metadata(value: &str, min_parts: usize) -> Option<PeerNode> {
        let parts: Vec<&str> = value.split(';').collect();
        if parts.len() < min_parts.max(4) {
            return None;
        }
        let get = |i: usize| parts.get(i).copied().unwrap_or("").to_string();
        let mut labels = Vec::new();
        let canonical_name = get(2);
        if !canonical_name.is_empty() {
            labels.push((CANONICAL_NAME_LABEL.to_string(), canonical_name));
        }
        let canonical_revision = get(3);
        if !canonical_revision.is_empty() {
            labels.push((CANONICAL_REVISION_LABEL.to_string(), canonical_revision));
        }
        labels.sort();
        Some(PeerNode {
            workload_name: get(0),
            namespace: get(1),
            cluster_id: get(4),
            labels: Some(labels),
            ..PeerNode::default()
        })
    }

    /// The local node, from the bytes of the `node.metadata` property (Envoy serialises the
    /// Struct as a pairs map; nested `LABELS` / `PLATFORM_METADATA` are pairs maps too; numbers
    /// are 8-byte doubles and are ignored here). Mirrors `extractLocalNodeFlatBuffer`: a local
    /// node always has a labels vector, possibly empty. `None` if the bytes are not a pairs map.
    pub fn from_node_metadata(bytes: &[u8]) -> Option<PeerNode> {
        node_metadata::decode(bytes)
    }
}

/// Label keys Istio's injector sets and the stats plugin reads.
pub const CANONICAL_NAME_LABEL: &str = "service.istio.io/canonical-name";
pub const CANONICAL_REVISION_LABEL: &str = "service.istio.io/canonical-revision";

/// Splits a comma-joined list like `absl::StrSplit(s, ',')` (empty input → one empty item),
/// capped at [`MAX_ENTRIES`].
pub(crate) fn split_list(s: &str) -> Vec<String> {
    s.split(',').take(MAX_ENTRIES).map(str::to_string).collect()
}

/// Sorts key/value entries by key and keeps the first of duplicate keys, as a FlatBuffers
/// sorted-table vector is read by `LookupByKey`.
pub(crate) fn sort_entries(mut v: Vec<(String, String)>) -> Vec<(String, String)> {
    v.truncate(MAX_ENTRIES);
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v.dedup_by(|b, a| a.0 == b.0);
    v
}

#[cfg(test)]
mod tests;
