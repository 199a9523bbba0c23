//! The `stats_config.stats_tags` Istio configures, per version.
//!
//! * Real proxies: istio-agent renders `tools/packaging/common/envoy_bootstrap.json` with
//!   `extraStatTags` from `pkg/bootstrap/config.go` (`getStatsOptions`). Read on istio/istio
//!   `release-1.13` … `release-1.17`: the `stats_config` block is identical in 1.13–1.16 and differs
//!   in 1.17 only by splitting the combined `response_code` regex (which in 1.13–1.16 carries the
//!   typo `\.d{3}` in its second alternative) into two rules. `use_all_default_tags` is `false`
//!   in every version, so Envoy's built-in extractors do not run.
//! * istio/proxy's tests: `testdata/bootstrap/stats.yaml.tmpl` (blob `201b2e96`, identical on
//!   `release-1.13` … `release-1.17`) with `use_all_default_tags: true`, so Envoy's built-in
//!   descriptors run first.

use crate::tags::{TagExtractor, TagRule};

/// `DefaultStatTags` (`pkg/bootstrap/config.go`, identical in 1.13–1.17).
pub const DEFAULT_STAT_TAGS: [&str; 29] = [
    "reporter",
    "source_namespace",
    "source_workload",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_cluster",
    "destination_namespace",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "destination_port",
    "destination_cluster",
    "request_protocol",
    "request_operation",
    "request_host",
    "response_flags",
    "grpc_response_status",
    "connection_security_policy",
    "source_canonical_service",
    "destination_canonical_service",
    "source_canonical_revision",
    "destination_canonical_revision",
];

/// The dimension rules of istio/proxy's `testdata/bootstrap/stats.yaml.tmpl`, in file order.
const PROXY_TEST_DIMENSIONS: [&str; 30] = [
    "reporter",
    "source_namespace",
    "source_workload",
    "source_canonical_service",
    "source_canonical_revision",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "destination_namespace",
    "source_cluster",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_service_name",
    "destination_service_namespace",
    "destination_cluster",
    "request_protocol",
    "response_code", // special regex, see below
    "grpc_response_status",
    "response_flags",
    "connection_security_policy",
    "configurable_metric_a",
    "configurable_metric_b",
    "route_name",
];

/// The bootstrap template's per-tag regex `({{ $tag }}=\\.=(.*?);\\.;)`; the tag is pasted in
/// unescaped, exactly as the Go template does.
fn dimension_rule(tag: &str) -> TagRule {
    TagRule::new(tag, &format!(r"({tag}=\.=(.*?);\.;)"))
}

/// Istio's `removeDuplicates(DefaultStatTags + proxyConfig.extraStatTags + annotation tags)`:
/// empty entries dropped, first occurrence kept.
pub fn istio_extra_stat_tags(extra: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let candidates = DEFAULT_STAT_TAGS
        .iter()
        .map(|s| s.to_string())
        .chain(extra.iter().cloned());
    for tag in candidates {
        if !tag.is_empty() && !out.contains(&tag) {
            out.push(tag);
        }
    }
    out
}

/// The `stats_tags` istio-agent writes for Istio `1.<minor>` (minor ≤ 16 is treated as the
/// 1.13–1.16 layout, ≥ 17 as 1.17).
pub fn istio_bootstrap_rules(minor: u32, extra_stat_tags: &[String]) -> Vec<TagRule> {
    let hex_or_ip = r"(?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*)";
    let mut rules = vec![
        TagRule::new(
            "cluster_name",
            r"^cluster\.((.+?(\..+?\.svc\.cluster\.local)?)\.)",
        ),
        TagRule::new("tcp_prefix", r"^tcp\.((.*?)\.)\w+?$"),
    ];
    if minor <= 16 {
        rules.push(TagRule::new(
            "response_code",
            r"(response_code=\.=(.+?);\.;)|_rq(_(\.d{3}))$",
        ));
    } else {
        rules.push(TagRule::new(
            "response_code",
            r"(response_code=\.=(.+?);\.;)",
        ));
        rules.push(TagRule::new("response_code", r"_rq(_(\d{3}))$"));
    }
    rules.extend([
        TagRule::new("response_code_class", r"_rq(_(\dxx))$"),
        TagRule::new(
            "http_conn_manager_listener_prefix",
            &format!(r"^listener(?=\.).*?\.http\.(({hex_or_ip})\.)"),
        ),
        TagRule::new(
            "http_conn_manager_prefix",
            &format!(r"^http\.(({hex_or_ip})\.)"),
        ),
        TagRule::new(
            "listener_address",
            &format!(r"^listener\.(({hex_or_ip})\.)"),
        ),
        TagRule::new(
            "mongo_prefix",
            r"^mongo\.(.+?)\.(collection|cmd|cx_|op_|delays_|decoding_)(.*?)$",
        ),
    ]);
    for tag in istio_extra_stat_tags(extra_stat_tags) {
        rules.push(dimension_rule(&tag));
    }
    rules.extend([
        TagRule::new("cache", r"(cache\.(.+?)\.)"),
        TagRule::new("component", r"(component\.(.+?)\.)"),
        TagRule::new("tag", r"(tag\.(.+?);\.)"),
        TagRule::new("wasm_filter", r"(wasm_filter\.(.+?)\.)"),
        TagRule::new("authz_enforce_result", r"rbac(\.(allowed|denied))"),
        TagRule::new("authz_dry_run_action", r"(\.istio_dry_run_(allow|deny)_)"),
        TagRule::new("authz_dry_run_result", r"(\.shadow_(allowed|denied))"),
    ]);
    rules
}

/// Envoy's built-in descriptors (`TagNameValues`, `source/common/config/well_known_names.cc`,
/// as stored at envoyproxy/envoy `00a0ba12`). Only the first two are prefix-less; every other one
/// is anchored on a first token (`http`, `cluster`, `listener`, …) and can never fire on a
/// `wasmcustom.` name. Envoy 1.21–1.25 added more anchored descriptors (and token-based ones),
/// which for the same reason cannot change Wasm stats; they are not listed.
/// `envoy.cluster_name` is an RE2 full-match descriptor in Envoy and is expressed here as the
/// equivalent search regex.
pub fn envoy_default_rules() -> Vec<TagRule> {
    let s = TagRule::with_substr;
    let r = TagRule::new;
    vec![
        s("envoy.response_code", r"_rq(_(\d{3}))$", "_rq_"),
        s("envoy.response_code_class", r"_rq_(\d)xx$", "_rq_"),
        s(
            "envoy.dynamo_partition_id",
            r"^http(?=\.).*?\.dynamodb\.table(?=\.).*?\.capacity(?=\.).*?(\.__partition_id=(\w{7}))$",
            ".dynamodb.table.",
        ),
        s(
            "envoy.dynamo_operation",
            r"^http(?=\.).*?\.dynamodb.(?:operation|table(?=\.).*?\.capacity)(\.(.*?))(?:\.|$)",
            ".dynamodb.",
        ),
        s(
            "envoy.mongo_callsite",
            r"^mongo(?=\.).*?\.collection(?=\.).*?\.callsite\.((.*?)\.).*?query.\w+?$",
            ".collection.",
        ),
        s(
            "envoy.dynamo_table",
            r"^http(?=\.).*?\.dynamodb.(?:table|error)\.((.*?)\.)",
            ".dynamodb.",
        ),
        s(
            "envoy.mongo_collection",
            r"^mongo(?=\.).*?\.collection\.((.*?)\.).*?query.\w+?$",
            ".collection.",
        ),
        s(
            "envoy.mongo_cmd",
            r"^mongo(?=\.).*?\.cmd\.((.*?)\.)\w+?$",
            ".cmd.",
        ),
        s(
            "envoy.grpc_bridge_method",
            r"^cluster(?=\.).*?\.grpc(?=\.).*\.((.*?)\.)\w+?$",
            ".grpc.",
        ),
        s(
            "envoy.user_agent",
            r"^http(?=\.).*?\.user_agent\.((.*?)\.)\w+?$",
            ".user_agent.",
        ),
        s(
            "envoy.virtual_cluster",
            r"^vhost(?=\.).*?\.vcluster\.((.*?)\.)\w+?$",
            ".vcluster.",
        ),
        s(
            "envoy.fault_downstream_cluster",
            r"^http(?=\.).*?\.fault\.((.*?)\.)\w+?$",
            ".fault.",
        ),
        r(
            "envoy.ssl_cipher",
            r"^listener(?=\.).*?\.ssl\.cipher(\.(.*?))$",
        ),
        s(
            "cipher_suite",
            r"^cluster(?=\.).*?\.ssl\.ciphers(\.(.*?))$",
            ".ssl.ciphers.",
        ),
        s(
            "envoy.grpc_bridge_service",
            r"^cluster(?=\.).*?\.grpc\.((.*?)\.)",
            ".grpc.",
        ),
        r("envoy.tcp_prefix", r"^tcp\.((.*?)\.)\w+?$"),
        r("envoy.udp_prefix", r"^udp\.((.*?)\.)\w+?$"),
        r(
            "envoy.clientssl_prefix",
            r"^auth\.clientssl\.((.*?)\.)\w+?$",
        ),
        r("envoy.ratelimit_prefix", r"^ratelimit\.((.*?)\.)\w+?$"),
        r("envoy.cluster_name", r"^cluster\.(([^\.]+)\.).*$"),
        s(
            "envoy.http_conn_manager_prefix",
            r"^listener(?=\.).*?\.http\.((.*?)\.)",
            ".http.",
        ),
        r("envoy.http_conn_manager_prefix", r"^http\.((.*?)\.)"),
        r(
            "envoy.listener_address",
            r"^listener\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.)",
        ),
        r("envoy.virtual_host", r"^vhost\.((.*?)\.)"),
        r("envoy.mongo_prefix", r"^mongo\.((.*?)\.)"),
        s(
            "envoy.rds_route_config",
            r"^http(?=\.).*?\.rds\.((.*?)\.)\w+?$",
            ".rds.",
        ),
        s(
            "envoy.worker_id",
            r"^listener_manager\.((worker_\d+)\.)",
            "listener_manager.worker_",
        ),
    ]
}

/// istio/proxy `testdata/bootstrap/stats.yaml.tmpl`: Envoy's defaults first
/// (`use_all_default_tags: true`, added before `stats_tags` by `TagProducerImpl`), then the
/// file's rules in order.
pub fn istio_proxy_test_rules() -> Vec<TagRule> {
    let mut rules = envoy_default_rules();
    for tag in PROXY_TEST_DIMENSIONS {
        if tag == "response_code" {
            rules.push(TagRule::new(
                "response_code",
                r"(response_code=\.=(.*?);\.;)|_rq(_(\.d{3}))$",
            ));
        } else {
            rules.push(dimension_rule(tag));
        }
    }
    rules.extend([
        TagRule::new("cache", r"(cache\.(.*?)\.)"),
        TagRule::new("component", r"(component\.(.*?)\.)"),
        TagRule::new("tag", r"(tag\.(.*?);\.)"),
        TagRule::new("wasm_filter", r"(wasm_filter\.(.*?)\.)"),
    ]);
    rules
}

impl TagExtractor {
    /// The tag extraction of a real Istio `1.<minor>` sidecar (13 ≤ minor ≤ 17), with
    /// `extra_stat_tags` = `proxyConfig.extraStatTags` followed by the
    /// `sidecar.istio.io/extraStatTags` annotation entries.
    pub fn istio(minor: u32, extra_stat_tags: &[String]) -> TagExtractor {
        let mut t = TagExtractor::from_rules(istio_bootstrap_rules(minor, extra_stat_tags));
        t.set_istio_minor(minor);
        t
    }

    /// The tag extraction of istio/proxy's integration tests (the label order Istio's golden
    /// Prometheus expectations are written in).
    pub fn istio_proxy_tests() -> TagExtractor {
        TagExtractor::from_rules(istio_proxy_test_rules())
    }
}

impl TagExtractor {
    /// Builds an extractor from an Envoy bootstrap `stats_config` object in proto3 JSON
    /// (`use_all_default_tags`, default true; `stats_tags[]` with `tag_name` and `regex`; camelCase
    /// names accepted as proto3 JSON allows). A tag with an empty regex selects Envoy's built-in
    /// descriptors of that name (`addExtractorsMatching`). Errors name the offending field, as
    /// Envoy would reject the bootstrap. `fixed_value` tags are not supported (Istio sets none).
    pub fn from_stats_config_json(json: &str) -> Result<TagExtractor, String> {
        Ok(TagExtractor::from_rules(rules_from_stats_config_json(
            json,
        )?))
    }
}

/// The rule list [`TagExtractor::from_stats_config_json`] compiles, in Envoy's order.
pub fn rules_from_stats_config_json(json: &str) -> Result<Vec<TagRule>, String> {
    {
        let config: serde_json::Value =
            serde_json::from_str(json).map_err(|e| format!("stats_config: invalid JSON: {e}"))?;
        let field = |snake: &str, camel: &str| config.get(snake).or_else(|| config.get(camel));
        let use_defaults = match field("use_all_default_tags", "useAllDefaultTags") {
            None | Some(serde_json::Value::Null) => true,
            Some(serde_json::Value::Bool(b)) => *b,
            Some(other) => {
                return Err(format!(
                    "stats_config.use_all_default_tags: expected a boolean, got {other}"
                ))
            }
        };
        let mut rules = if use_defaults {
            envoy_default_rules()
        } else {
            Vec::new()
        };
        let tags = match field("stats_tags", "statsTags") {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(serde_json::Value::Array(items)) => items.clone(),
            Some(other) => {
                return Err(format!(
                    "stats_config.stats_tags: expected an array, got {other}"
                ))
            }
        };
        for (i, tag) in tags.iter().enumerate() {
            let get = |snake: &str, camel: &str| {
                tag.get(snake)
                    .or_else(|| tag.get(camel))
                    .and_then(|v| v.as_str())
            };
            let name = get("tag_name", "tagName").unwrap_or("");
            if name.is_empty() {
                return Err(format!(
                    "stats_config.stats_tags[{i}].tag_name: cannot be empty"
                ));
            }
            if get("fixed_value", "fixedValue").is_some() {
                return Err(format!(
                    "stats_config.stats_tags[{i}].fixed_value: not supported by this extractor"
                ));
            }
            let regex = get("regex", "regex").unwrap_or("");
            if regex.is_empty() {
                let defaults: Vec<TagRule> = envoy_default_rules()
                    .into_iter()
                    .filter(|r| r.name == name)
                    .collect();
                if defaults.is_empty() {
                    return Err(format!(
                        "stats_config.stats_tags[{i}].regex: no regex specified and no default regex for name '{name}'"
                    ));
                }
                rules.extend(defaults);
            } else {
                rules.push(TagRule::new(name, regex));
            }
        }
        Ok(rules)
    }
}
