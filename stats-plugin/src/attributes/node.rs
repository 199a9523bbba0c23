//! One node's contribution to the dimensions (`map_node`, `extensions/stats/plugin.cc:56-135`)
//! and the local node, read once per configure from `node.metadata`.

use proxy_attributes::host::Host;
use proxy_attributes::peer::{PeerNode, CANONICAL_NAME_LABEL, CANONICAL_REVISION_LABEL};

/// The seven per-side values of `map_node` (before the `unknown` rule).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct NodeDims {
    pub workload: String,
    pub namespace: String,
    pub cluster: String,
    pub app: String,
    pub version: String,
    pub canonical_service: String,
    pub canonical_revision: String,
}

impl NodeDims {
    /// `map_node` for one node. Without a labels vector, app/version/canonical service are `""`
    /// and the revision is `latest`; with one, the canonical service falls back to the workload
    /// name and the revision to `latest`.
    pub fn from_node(node: &PeerNode) -> NodeDims {
        let (app, version, canonical_service, canonical_revision) = match &node.labels {
            Some(_) => (
                node.label("app").unwrap_or("").to_string(),
                node.label("version").unwrap_or("").to_string(),
                node.label(CANONICAL_NAME_LABEL)
                    .unwrap_or(&node.workload_name)
                    .to_string(),
                node.label(CANONICAL_REVISION_LABEL)
                    .unwrap_or("latest")
                    .to_string(),
            ),
            None => (
                String::new(),
                String::new(),
                String::new(),
                "latest".to_string(),
            ),
        };
        NodeDims {
            workload: node.workload_name.clone(),
            namespace: node.namespace.clone(),
            cluster: node.cluster_id.clone(),
            app,
            version,
            canonical_service,
            canonical_revision,
        }
    }

    /// The empty FlatNode (no peer): everything empty, revision `latest`.
    pub fn empty() -> NodeDims {
        NodeDims::from_node(&PeerNode::default())
    }
}

/// The local node (`extractLocalNodeFlatBuffer`): `node.metadata` as a pairs map. A node whose
/// metadata cannot be read is the empty local node (with an empty labels vector).
pub fn read_local_node(host: &dyn Host) -> PeerNode {
    host.property(&["node", "metadata"])
        .and_then(|b| PeerNode::from_node_metadata(&b))
        .unwrap_or_else(|| PeerNode {
            labels: Some(Vec::new()),
            ..PeerNode::default()
        })
}

/// `getServiceNameFallback`: the local canonical-name label, else `unknown`.
pub fn service_name_fallback(local: &PeerNode) -> String {
    local
        .label(CANONICAL_NAME_LABEL)
        .unwrap_or("unknown")
        .to_string()
}
