//! Istio's `filter_metadata.istio.workload` string
//! (`workload;namespace;canonical_service;canonical_revision;cluster`) on the upstream host or
//! the upstream cluster (`extractPeerMetadataFromUpstreamMetadata`, istio/proxy release-1.16
//! `extensions/common/context.cc:305-365`), and the 1.16 `metadata_mode` destination remap built
//! on it.

use super::node::NodeDims;
use crate::config::MetadataMode;
use proxy_attributes::host::Host;
use proxy_attributes::peer::PeerNode;

/// Which Envoy metadata carries the workload string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadSource {
    /// `upstream_host_metadata`: the selected endpoint's metadata.
    UpstreamHost,
    /// `cluster_metadata`: the upstream cluster's metadata.
    Cluster,
}

impl WorkloadSource {
    fn property(self) -> &'static str {
        match self {
            WorkloadSource::UpstreamHost => "upstream_host_metadata",
            WorkloadSource::Cluster => "cluster_metadata",
        }
    }
}

/// The workload node described by `source`'s `istio.workload` metadata, or `None` when it is
/// absent or has fewer than `min_parts` parts (Istio then reports "not extracted").
pub fn read_workload<H: Host + ?Sized>(
    host: &H,
    source: WorkloadSource,
    min_parts: usize,
) -> Option<PeerNode> {
    let bytes = host.property(&[source.property(), "filter_metadata", "istio", "workload"])?;
    let text = String::from_utf8_lossy(&bytes);
    PeerNode::from_endpoint_metadata(&text, min_parts)
}

/// The destination labels of an inbound report under `mode` (istio/proxy release-1.16
/// `extensions/stats/plugin.cc:636-657`): `None` for the local-node mode (the caller keeps the
/// local node's labels); otherwise the node from the host or cluster `istio.workload` metadata,
/// or — when that is absent or too short — Istio's *empty* node: every destination label
/// `unknown` except `destination_canonical_revision`, which is `latest` (`map_node` on a node
/// without a labels vector). The remap happens per report because a waypoint serves many
/// workloads and retries may pick another host.
pub fn destination_dims<H: Host + ?Sized>(
    host: &H,
    mode: MetadataMode,
    min_parts: usize,
) -> Option<NodeDims> {
    let source = match mode {
        MetadataMode::LocalNode => return None,
        MetadataMode::UpstreamHost => WorkloadSource::UpstreamHost,
        MetadataMode::Cluster => WorkloadSource::Cluster,
    };
    Some(
        read_workload(host, source, min_parts)
            .map(|n| NodeDims::from_node(&n))
            .unwrap_or_else(NodeDims::empty),
    )
}
