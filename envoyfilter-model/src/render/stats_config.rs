//! The stats plugin configuration per proxy minor, context and protocol: Istio's default JSON
//! text (envoyfilter-spec §1.2–§1.7, the `telemetryv2_1.X.yaml` templates of the matching
//! control plane), or the `configOverride` for that context, which replaces it wholesale
//! (`{{ if not …configOverride.X }} default {{ else }} toJson … {{ end }}`), and the warnings a
//! reader of the override deserves.

use crate::chain::Context;
use crate::json::go_json;
use serde_json::{Map, Value};

/// Whether the filter is the HTTP or the TCP stats filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Tcp,
}

const BASE_1_13: &str = "{\n  \"debug\": \"false\",\n  \"stat_prefix\": \"istio\"\n}\n";
const INBOUND_HTTP_1_13: &str = "{\n  \"debug\": \"false\",\n  \"stat_prefix\": \"istio\",\n  \"disable_host_header_fallback\": true,\n  \"metrics\": [\n    {\n      \"dimensions\": {\n        \"destination_cluster\": \"node.metadata['CLUSTER_ID']\",\n        \"source_cluster\": \"downstream_peer.cluster_id\"\n      }\n    }\n  ]\n}\n";
const INBOUND_TCP_1_13: &str = "{\n  \"debug\": \"false\",\n  \"stat_prefix\": \"istio\",\n  \"metrics\": [\n    {\n      \"dimensions\": {\n        \"destination_cluster\": \"node.metadata['CLUSTER_ID']\",\n        \"source_cluster\": \"downstream_peer.cluster_id\"\n      }\n    }\n  ]\n}\n";
const HOST_FALLBACK_OFF_1_13: &str =
    "{\n  \"debug\": \"false\",\n  \"stat_prefix\": \"istio\",\n  \"disable_host_header_fallback\": true\n}\n";
const EMPTY_1_17: &str = "{}\n";
const HOST_FALLBACK_OFF_1_17: &str = "{\n  \"disable_host_header_fallback\": true\n}\n";

/// Istio's default configuration text for `minor`, `context`, `protocol`.
pub fn default_text(minor: u32, context: Context, protocol: Protocol) -> &'static str {
    use Context::*;
    use Protocol::*;
    match (minor, context, protocol) {
        (17.., SidecarInbound | Gateway, Http) => HOST_FALLBACK_OFF_1_17,
        (17.., _, _) => EMPTY_1_17,
        // 1.13 and 1.14 inbound defaults still restate the cluster dimensions (dropped in 1.15,
        // istio/istio#39660).
        (..=14, SidecarInbound, Http) => INBOUND_HTTP_1_13,
        (..=14, SidecarInbound, Tcp) => INBOUND_TCP_1_13,
        (_, SidecarInbound | Gateway, Http) => HOST_FALLBACK_OFF_1_13,
        _ => BASE_1_13,
    }
}

/// The text the filter carries: the override's `toJson` (compact, sorted keys, Go escaping)
/// when one is set for the context, else the default.
pub fn config_text(
    minor: u32,
    context: Context,
    protocol: Protocol,
    override_: Option<&Map<String, Value>>,
) -> String {
    match override_ {
        Some(o) if !o.is_empty() => format!("{}\n", go_json(&Value::Object(o.clone()))),
        _ => default_text(minor, context, protocol).to_string(),
    }
}

/// Whether Istio's bootstrap extracts `tag` from Wasm stat names without `extraStatTags`:
/// `DefaultStatTags` (one list, owned by the stats sink that applies it) plus `response_code`,
/// which has its own regex in `envoy_bootstrap.json`.
fn extracted_by_default(tag: &str) -> bool {
    tag == "response_code" || stats_sink::istio_tags::DEFAULT_STAT_TAGS.contains(&tag)
}

/// Top-level keys of the 1.13–1.16 Wasm config (`extensions/stats/config.proto`) and of 1.17.
const TOP_KEYS: &[&str] = &[
    "debug",
    "max_peer_cache_size",
    "stat_prefix",
    "field_separator",
    "value_separator",
    "tcp_reporting_duration",
    "metrics",
    "definitions",
    "disable_host_header_fallback",
    "metadata_mode",
    "reporter",
];
/// Reserved (ignored) in 1.17's `stats.PluginConfig`.
const RESERVED_1_17: &[&str] = &[
    "debug",
    "max_peer_cache_size",
    "stat_prefix",
    "field_separator",
    "value_separator",
];
const METRIC_KEYS: &[&str] = &["name", "dimensions", "tags_to_remove", "drop"];
const DEFINITION_KEYS: &[&str] = &["name", "value", "type"];

/// The `configOverride` key for a context.
pub fn override_key(c: Context) -> &'static str {
    match c {
        Context::SidecarInbound => "inboundSidecar",
        Context::SidecarOutbound => "outboundSidecar",
        Context::Gateway => "gateway",
    }
}

/// Warnings about one context's override.
pub fn override_warnings(
    context: Context,
    o: &Map<String, Value>,
    extra_stat_tags: &[String],
) -> Vec<String> {
    let key = override_key(context);
    let at = format!("values.telemetry.v2.prometheus.configOverride.{key}");
    let mut w = Vec::new();
    if o.is_empty() {
        return w;
    }
    if matches!(context, Context::SidecarInbound | Context::Gateway)
        && o.get("disable_host_header_fallback") != Some(&Value::Bool(true))
    {
        w.push(format!(
            "{at}: replaces Istio's default wholesale and does not set \"disable_host_header_fallback\": true, so the HTTP filter falls back to the Host header for destination_service again (cardinality risk, istio/istio#18818); add it to the override"
        ));
    }
    for k in o.keys() {
        if RESERVED_1_17.contains(&k.as_str()) {
            w.push(format!(
                "{at}.{k}: reserved in Istio 1.17's stats.PluginConfig (ignored there); accepted by the 1.13–1.16 schema"
            ));
        } else if !TOP_KEYS.contains(&k.as_str()) {
            let hint = if k.chars().any(|c| c.is_ascii_uppercase()) {
                " (the 1.13–1.16 plugin reads snake_case keys only)"
            } else {
                ""
            };
            w.push(format!(
                "{at}.{k}: not a stats plugin config key; ignored{hint}"
            ));
        }
    }
    if let Some(Value::Array(metrics)) = o.get("metrics") {
        for (i, m) in metrics.iter().enumerate() {
            let Some(m) = m.as_object() else {
                w.push(format!("{at}.metrics[{i}]: must be an object"));
                continue;
            };
            for k in m.keys() {
                if k == "tagsToRemove" {
                    w.push(format!(
                        "{at}.metrics[{i}].tagsToRemove: camelCase is ignored by Istio 1.13–1.16 (istio/istio.io#8966); write tags_to_remove"
                    ));
                } else if !METRIC_KEYS.contains(&k.as_str()) {
                    w.push(format!(
                        "{at}.metrics[{i}].{k}: not a metric override key; ignored"
                    ));
                }
            }
            if let Some(Value::Object(dims)) = m.get("dimensions") {
                for d in dims.keys() {
                    if !extracted_by_default(d) && !extra_stat_tags.iter().any(|t| t == d) {
                        w.push(format!(
                            "{at}.metrics[{i}].dimensions.{d}: a new dimension becomes a Prometheus label only if the proxy's bootstrap extracts it; add {d:?} to meshConfig.defaultConfig.extraStatTags (or the sidecar.istio.io/extraStatTags annotation), else it stays inside the metric name"
                        ));
                    }
                }
            }
        }
    }
    if let Some(Value::Array(defs)) = o.get("definitions") {
        for (i, d) in defs.iter().enumerate() {
            if let Some(d) = d.as_object() {
                for k in d.keys() {
                    if !DEFINITION_KEYS.contains(&k.as_str()) {
                        w.push(format!(
                            "{at}.definitions[{i}].{k}: not a definition key; ignored"
                        ));
                    }
                }
            }
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_templates() {
        // release-1.13 telemetryv2_1.13.yaml: gateway TCP has no disable_host_header_fallback.
        assert_eq!(default_text(13, Context::Gateway, Protocol::Tcp), BASE_1_13);
        assert!(default_text(14, Context::SidecarInbound, Protocol::Http).contains("CLUSTER_ID"));
        assert!(!default_text(15, Context::SidecarInbound, Protocol::Http).contains("CLUSTER_ID"));
        assert_eq!(
            default_text(16, Context::SidecarInbound, Protocol::Tcp),
            BASE_1_13
        );
        assert_eq!(
            default_text(17, Context::SidecarOutbound, Protocol::Http),
            "{}\n"
        );
        assert_eq!(
            default_text(17, Context::Gateway, Protocol::Http),
            HOST_FALLBACK_OFF_1_17
        );
        // Every default is valid JSON.
        for m in 13..=17 {
            for c in [
                Context::SidecarInbound,
                Context::SidecarOutbound,
                Context::Gateway,
            ] {
                for p in [Protocol::Http, Protocol::Tcp] {
                    serde_json::from_str::<Value>(default_text(m, c, p)).unwrap();
                }
            }
        }
    }
}
