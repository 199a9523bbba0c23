//! The proxy under test: its Envoy bootstrap node (`--node FILE`, JSON or YAML
//! `{id, cluster, metadata}`), the default node, and the proxy version.

use serde_json::{Map, Value as Json};

use crate::stream::LocalNode;

/// The default node: the sidecar of `webapp` in `istioinaction` (Istio 1.17.8, MESH_ID
/// cluster.local, CLUSTER_ID Kubernetes, LABELS app=webapp version=v1 plus the canonical
/// labels), the book's lab. It is exactly `testdata/nodes/webapp.yaml`.
pub const DEFAULT_NODE_YAML: &str = include_str!("../../../testdata/nodes/webapp.yaml");

/// The default node, parsed.
pub fn default_node() -> LocalNode {
    // The embedded file is tested below, so this cannot fail at run time; fall back to an empty
    // node rather than panic all the same.
    parse_node(DEFAULT_NODE_YAML)
        .map(|(n, _)| n)
        .unwrap_or_else(|_| LocalNode {
            id: String::new(),
            cluster: String::new(),
            metadata: Map::new(),
        })
}

/// Parses a node file (JSON is YAML too). Returns the node and warnings (unknown keys).
pub fn parse_node(text: &str) -> Result<(LocalNode, Vec<String>), String> {
    let value: Json = serde_yaml_ng::from_str(text).map_err(|e| format!("not YAML/JSON: {e}"))?;
    let Json::Object(mut obj) = value else {
        return Err("expected an object {id, cluster, metadata}".into());
    };
    let mut take_str = |key: &str| -> Result<String, String> {
        match obj.remove(key) {
            None | Some(Json::Null) => Ok(String::new()),
            Some(Json::String(s)) => Ok(s),
            Some(other) => Err(format!("{key}: expected a string, got {other}")),
        }
    };
    let id = take_str("id")?;
    let cluster = take_str("cluster")?;
    let metadata = match obj.remove("metadata") {
        None | Some(Json::Null) => Map::new(),
        Some(Json::Object(m)) => m,
        Some(other) => return Err(format!("metadata: expected a mapping, got {other}")),
    };
    if let Some(Json::Array(_)) = metadata.get("LABELS") {
        return Err("metadata.LABELS: expected a mapping of label → value".into());
    }
    let warnings = obj
        .keys()
        .map(|k| format!("node field {k:?} is not used (known: id, cluster, metadata)"))
        .collect();
    Ok((
        LocalNode {
            id,
            cluster,
            metadata,
        },
        warnings,
    ))
}

/// Reads a node file.
pub fn load_node(path: &std::path::Path) -> Result<(LocalNode, Vec<String>), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_node(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// `PROXY_CONFIG.extraStatTags` of the node metadata (where istio-agent keeps the mesh/pod
/// `extraStatTags`), in order.
pub fn extra_stat_tags(node: &LocalNode) -> Vec<String> {
    node.metadata
        .get("PROXY_CONFIG")
        .and_then(|p| p.get("extraStatTags"))
        .and_then(Json::as_array)
        .map(|tags| {
            tags.iter()
                .filter_map(Json::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// An Istio proxy version `1.MINOR[.PATCH]` with MINOR in 13..=17.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyVersion {
    pub full: String,
    pub minor: u32,
}

pub fn parse_proxy_version(s: &str) -> Result<ProxyVersion, String> {
    let mut parts = s.split('.');
    let major = parts.next();
    let minor = parts.next().and_then(|m| m.parse::<u32>().ok());
    let patch_ok = parts.next().is_none_or(|p| p.parse::<u32>().is_ok()) && parts.next().is_none();
    match (major, minor) {
        (Some("1"), Some(minor)) if patch_ok && (13..=17).contains(&minor) => Ok(ProxyVersion {
            full: s.to_string(),
            minor,
        }),
        (Some("1"), Some(_)) if patch_ok => Err(format!(
            "proxy version {s}: only Istio 1.13 to 1.17 (Envoy 1.21 to 1.25) are supported"
        )),
        _ => Err(format!(
            "proxy version {s:?}: expected 1.MINOR or 1.MINOR.PATCH, e.g. 1.17.8"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_node_is_the_books_webapp_sidecar() {
        let (node, warnings) = parse_node(DEFAULT_NODE_YAML).unwrap();
        assert!(warnings.is_empty());
        assert_eq!(node, default_node());
        let m = &node.metadata;
        assert_eq!(m["WORKLOAD_NAME"], "webapp");
        assert_eq!(m["NAMESPACE"], "istioinaction");
        assert_eq!(m["ISTIO_VERSION"], "1.17.8");
        assert_eq!(m["MESH_ID"], "cluster.local");
        assert_eq!(m["CLUSTER_ID"], "Kubernetes");
        assert_eq!(m["LABELS"]["app"], "webapp");
        assert_eq!(m["LABELS"]["version"], "v1");
        assert_eq!(m["LABELS"]["service.istio.io/canonical-name"], "webapp");
        assert_eq!(m["LABELS"]["service.istio.io/canonical-revision"], "v1");
        assert!(node.id.starts_with("sidecar~"));
        assert_eq!(extra_stat_tags(&node), ["upstream_operation"]);
    }

    #[test]
    fn gateway_node_parses() {
        let (node, _) =
            parse_node(include_str!("../../../testdata/nodes/ingressgateway.yaml")).unwrap();
        assert!(node.id.starts_with("router~"));
        assert_eq!(node.metadata["LABELS"]["istio"], "ingressgateway");
    }

    #[test]
    fn json_node_with_extra_stat_tags() {
        let (node, warnings) = parse_node(
            r#"{"id":"x","cluster":"c","metadata":{"PROXY_CONFIG":{"extraStatTags":["upstream_operation","b"]}},"extra":1}"#,
        )
        .unwrap();
        assert_eq!(node.id, "x");
        assert_eq!(extra_stat_tags(&node), ["upstream_operation", "b"]);
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn bad_nodes() {
        assert!(parse_node("[1,2]").is_err());
        assert!(parse_node("id: [1]").unwrap_err().starts_with("id:"));
        assert!(parse_node("metadata: 3")
            .unwrap_err()
            .starts_with("metadata:"));
        assert!(parse_node("metadata: {LABELS: [a]}").is_err());
        assert!(parse_node("id: 'x\n  bad: [").is_err());
    }

    #[test]
    fn proxy_versions() {
        assert_eq!(parse_proxy_version("1.17.8").unwrap().minor, 17);
        assert_eq!(parse_proxy_version("1.13").unwrap().minor, 13);
        assert!(parse_proxy_version("1.18.0")
            .unwrap_err()
            .contains("1.13 to 1.17"));
        assert!(parse_proxy_version("2.0").is_err());
        assert!(parse_proxy_version("1.17.x").is_err());
        assert!(parse_proxy_version("1.17.8.1").is_err());
    }
}
