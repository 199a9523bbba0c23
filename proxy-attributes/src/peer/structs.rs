//! The `google.protobuf.Struct` form of node metadata: what `x-envoy-peer-metadata` carries
//! (base64 of the serialised Struct) and how Istio turns it into a FlatNode.

use super::{sort_entries, split_list, PeerNode, MAX_ENTRIES, MAX_HEADER_BYTES};
use base64::Engine as _;
use prost::Message as _;
use prost_types::value::Kind;
use prost_types::{Struct, Value};

fn string_value(v: &Value) -> &str {
    match &v.kind {
        Some(Kind::StringValue(s)) => s,
        _ => "",
    }
}

/// `struct_value().fields()` as key → `string_value()` pairs; `None` when Istio would build no
/// vector (not a struct, or an empty one).
fn entries(v: &Value) -> Option<Vec<(String, String)>> {
    let Some(Kind::StructValue(s)) = &v.kind else {
        return None;
    };
    if s.fields.is_empty() {
        return None;
    }
    Some(sort_entries(
        s.fields
            .iter()
            .take(MAX_ENTRIES)
            .map(|(k, v)| (k.clone(), string_value(v).to_string()))
            .collect(),
    ))
}

pub(super) fn node_from_struct(s: &Struct) -> PeerNode {
    let mut node = PeerNode::default();
    for (key, value) in &s.fields {
        let text = || string_value(value).to_string();
        match key.as_str() {
            "NAME" => node.name = text(),
            "NAMESPACE" => node.namespace = text(),
            "OWNER" => node.owner = text(),
            "WORKLOAD_NAME" => node.workload_name = text(),
            "ISTIO_VERSION" => node.istio_version = text(),
            "MESH_ID" => node.mesh_id = text(),
            "CLUSTER_ID" => node.cluster_id = text(),
            "LABELS" => node.labels = entries(value),
            "PLATFORM_METADATA" => node.platform_metadata = entries(value).unwrap_or_default(),
            "APP_CONTAINERS" => node.app_containers = split_list(string_value(value)),
            "INSTANCE_IPS" => node.instance_ips = split_list(string_value(value)),
            _ => {}
        }
    }
    node
}

pub(super) fn node_from_struct_bytes(bytes: &[u8]) -> Option<PeerNode> {
    if bytes.len() > MAX_HEADER_BYTES {
        return None;
    }
    // prost bounds recursion (depth 100) and lengths, and errors instead of panicking.
    Struct::decode(bytes).ok().map(|s| node_from_struct(&s))
}

pub(super) fn node_from_header_value(value: &str) -> Option<PeerNode> {
    if value.is_empty() || value.len() > MAX_HEADER_BYTES {
        return None;
    }
    let trimmed = value.trim().trim_end_matches('=');
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(trimmed)
        .ok()?;
    node_from_struct_bytes(&bytes)
}

fn string(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.to_string())),
    }
}

fn string_struct(entries: &[(String, String)]) -> Value {
    Value {
        kind: Some(Kind::StructValue(Struct {
            fields: entries
                .iter()
                .map(|(k, v)| (k.clone(), string(v)))
                .collect(),
        })),
    }
}

pub(super) fn node_to_struct(node: &PeerNode) -> Struct {
    let mut s = Struct::default();
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
            s.fields.insert(key.to_string(), string(value));
        }
    }
    if let Some(labels) = &node.labels {
        s.fields.insert("LABELS".to_string(), string_struct(labels));
    }
    if !node.platform_metadata.is_empty() {
        s.fields.insert(
            "PLATFORM_METADATA".to_string(),
            string_struct(&node.platform_metadata),
        );
    }
    if !node.app_containers.is_empty() {
        s.fields.insert(
            "APP_CONTAINERS".to_string(),
            string(&node.app_containers.join(",")),
        );
    }
    if !node.instance_ips.is_empty() {
        s.fields.insert(
            "INSTANCE_IPS".to_string(),
            string(&node.instance_ips.join(",")),
        );
    }
    s
}

/// The `x-envoy-peer-metadata` value for `s`: base64 (standard alphabet, padded, as Envoy's
/// `Base64::encode`) of the serialised Struct. prost keeps Struct fields in a `BTreeMap`, so the
/// bytes are deterministic, as Istio's `serializeToStringDeterministic`.
pub fn struct_header_value(s: &Struct) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.encode_to_vec())
}
