//! The local node from the `node.metadata` property: Envoy serialises the bootstrap
//! `Node.metadata` Struct as a pairs map whose values are serialised recursively (strings raw,
//! nested structs as pairs maps, numbers as 8-byte doubles). Mirrors Istio's
//! `extractLocalNodeFlatBuffer` (`extensions/common/context.cc`), which reads the same keys.

use super::{sort_entries, split_list, PeerNode, MAX_ENTRIES, MAX_FLATBUFFER_BYTES};
use crate::values::{decode_pairs, encode_pairs};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A nested Struct (pairs map) of string values. Anything that is not a pairs map gives no
/// entries rather than failing the whole node.
fn string_map(bytes: &[u8]) -> Vec<(String, String)> {
    match decode_pairs(bytes) {
        Some(pairs) => sort_entries(
            pairs
                .into_iter()
                .take(MAX_ENTRIES)
                .map(|(k, v)| (text(k), text(v)))
                .collect(),
        ),
        None => Vec::new(),
    }
}

pub(super) fn decode(bytes: &[u8]) -> Option<PeerNode> {
    if bytes.len() > MAX_FLATBUFFER_BYTES {
        return None;
    }
    let pairs = decode_pairs(bytes)?;
    // Istio always builds a labels vector for the local node (possibly empty).
    let mut node = PeerNode {
        labels: Some(Vec::new()),
        ..PeerNode::default()
    };
    for (key, value) in pairs {
        match key {
            b"NAME" => node.name = text(value),
            b"NAMESPACE" => node.namespace = text(value),
            b"OWNER" => node.owner = text(value),
            b"WORKLOAD_NAME" => node.workload_name = text(value),
            b"ISTIO_VERSION" => node.istio_version = text(value),
            b"MESH_ID" => node.mesh_id = text(value),
            b"CLUSTER_ID" => node.cluster_id = text(value),
            b"LABELS" => node.labels = Some(string_map(value)),
            b"PLATFORM_METADATA" => node.platform_metadata = string_map(value),
            b"APP_CONTAINERS" => node.app_containers = split_list(&text(value)),
            b"INSTANCE_IPS" => node.instance_ips = split_list(&text(value)),
            _ => {}
        }
    }
    Some(node)
}

pub(super) fn encode(node: &PeerNode) -> Vec<u8> {
    let mut pairs: Vec<(&str, Vec<u8>)> = Vec::new();
    for (key, value) in [
        ("NAME", &node.name),
        ("NAMESPACE", &node.namespace),
        ("OWNER", &node.owner),
        ("WORKLOAD_NAME", &node.workload_name),
        ("ISTIO_VERSION", &node.istio_version),
        ("MESH_ID", &node.mesh_id),
        ("CLUSTER_ID", &node.cluster_id),
    ] {
        if !value.is_empty() {
            pairs.push((key, value.as_bytes().to_vec()));
        }
    }
    if let Some(labels) = &node.labels {
        pairs.push(("LABELS", encode_pairs(labels)));
    }
    if !node.platform_metadata.is_empty() {
        pairs.push(("PLATFORM_METADATA", encode_pairs(&node.platform_metadata)));
    }
    if !node.app_containers.is_empty() {
        pairs.push(("APP_CONTAINERS", node.app_containers.join(",").into_bytes()));
    }
    if !node.instance_ips.is_empty() {
        pairs.push(("INSTANCE_IPS", node.instance_ips.join(",").into_bytes()));
    }
    encode_pairs(&pairs)
}
