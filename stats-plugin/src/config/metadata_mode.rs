//! `metadata_mode` (Istio 1.16 only: `extensions/stats/config.proto` `MetadataMode`, field 10,
//! added by the ambient merge istio/proxy#4058): where an inbound (server-side) plugin takes the
//! node that fills the destination labels. A waypoint proxy serves many workloads, so its local
//! node says nothing about the destination.

use super::type_name;
use serde_json::Value;

/// The three values of `stats.PluginConfig.MetadataMode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MetadataMode {
    /// `LOCAL_NODE_METADATA_MODE` (0, the default): the local node, as in every other release.
    #[default]
    LocalNode,
    /// `UPSTREAM_HOST_METADATA_MODE` (1): the upstream host's
    /// `filter_metadata.istio.workload` endpoint metadata.
    UpstreamHost,
    /// `CLUSTER_METADATA_MODE` (2): the same key in the upstream cluster's metadata.
    Cluster,
}

const LOCAL_NODE: &str = "LOCAL_NODE_METADATA_MODE";
const UPSTREAM_HOST: &str = "UPSTREAM_HOST_METADATA_MODE";
const CLUSTER: &str = "CLUSTER_METADATA_MODE";

impl MetadataMode {
    /// Istio 1.16 `plugin.cc:505-512` reads the field with `JsonGetField<std::string_view>` and
    /// compares the exact enum names; anything else — another string, the enum's integer value
    /// (proto3 JSON would accept `1`, but this is not a protobuf parse), `null` — silently
    /// selects the local node. We do the same, with a warning naming the field.
    pub fn parse(v: &Value, warnings: &mut Vec<String>) -> MetadataMode {
        match v {
            Value::String(s) => match s.as_str() {
                UPSTREAM_HOST => MetadataMode::UpstreamHost,
                CLUSTER => MetadataMode::Cluster,
                LOCAL_NODE => MetadataMode::LocalNode,
                other => {
                    warnings.push(format!(
                        "metadata_mode: unknown value {other:?} (expected {LOCAL_NODE}, \
                         {UPSTREAM_HOST} or {CLUSTER}); using {LOCAL_NODE}"
                    ));
                    MetadataMode::LocalNode
                }
            },
            other => {
                warnings.push(format!(
                    "metadata_mode: expected an enum name string, got {}; using {LOCAL_NODE}",
                    type_name(other)
                ));
                MetadataMode::LocalNode
            }
        }
    }

    /// The enum name, as configured.
    pub fn name(self) -> &'static str {
        match self {
            MetadataMode::LocalNode => LOCAL_NODE,
            MetadataMode::UpstreamHost => UPSTREAM_HOST,
            MetadataMode::Cluster => CLUSTER,
        }
    }
}
