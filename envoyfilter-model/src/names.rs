//! Envoy filter names as istiod compares them: a match on a deprecated name (`envoy.router`)
//! still hits the canonical filter (`envoy.filters.http.router`).
//! Matches `pkg/config/xds/deprecated.go` `DeprecatedFilterNames` and `nameMatches` in
//! `pilot/pkg/networking/core/v1alpha3/envoyfilter/listener_patch.go` (release-1.13 … 1.17).

pub const HCM: &str = "envoy.filters.network.http_connection_manager";
pub const TCP_PROXY: &str = "envoy.filters.network.tcp_proxy";
pub const ROUTER: &str = "envoy.filters.http.router";
pub const FAULT: &str = "envoy.filters.http.fault";
pub const CORS: &str = "envoy.filters.http.cors";
pub const GRPC_STATS: &str = "envoy.filters.http.grpc_stats";
pub const ALPN: &str = "istio.alpn";
pub const METADATA_EXCHANGE: &str = "istio.metadata_exchange";
pub const STATS: &str = "istio.stats";
pub const ATTRIBUTEGEN: &str = "istio.attributegen";

/// canonical name → deprecated alias.
const DEPRECATED: &[(&str, &str)] = &[
    ("envoy.filters.http.buffer", "envoy.buffer"),
    (CORS, "envoy.cors"),
    ("envoy.filters.http.csrf", "envoy.csrf"),
    ("envoy.filters.http.dynamo", "envoy.http_dynamo_filter"),
    ("envoy.filters.http.ext_authz", "envoy.ext_authz"),
    (FAULT, "envoy.fault"),
    (
        "envoy.filters.http.grpc_http1_bridge",
        "envoy.grpc_http1_bridge",
    ),
    (
        "envoy.filters.http.grpc_json_transcoder",
        "envoy.grpc_json_transcoder",
    ),
    ("envoy.filters.http.grpc_web", "envoy.grpc_web"),
    ("envoy.filters.http.gzip", "envoy.gzip"),
    ("envoy.filters.http.health_check", "envoy.health_check"),
    ("envoy.filters.http.ip_tagging", "envoy.ip_tagging"),
    ("envoy.filters.http.lua", "envoy.lua"),
    ("envoy.filters.http.ratelimit", "envoy.rate_limit"),
    (ROUTER, "envoy.router"),
    ("envoy.filters.http.squash", "envoy.squash"),
    (
        "envoy.filters.network.client_ssl_auth",
        "envoy.client_ssl_auth",
    ),
    ("envoy.filters.network.ext_authz", "envoy.ext_authz"),
    (HCM, "envoy.http_connection_manager"),
    ("envoy.filters.network.mongo_proxy", "envoy.mongo_proxy"),
    ("envoy.filters.network.ratelimit", "envoy.ratelimit"),
    ("envoy.filters.network.redis_proxy", "envoy.redis_proxy"),
    (TCP_PROXY, "envoy.tcp_proxy"),
];

/// `nameMatches(matchName, filterName)`: equal, or the match uses the filter's deprecated alias.
pub fn name_matches(match_name: &str, filter_name: &str) -> bool {
    match_name == filter_name
        || DEPRECATED
            .iter()
            .any(|(canonical, old)| *canonical == filter_name && *old == match_name)
}

/// `toCanonicalName`: the replacement of a deprecated name, else the name itself.
pub fn canonical(name: &str) -> &str {
    DEPRECATED
        .iter()
        .find(|(_, old)| *old == name)
        .map(|(canonical, _)| *canonical)
        .unwrap_or(name)
}

/// The canonical name when `name` is a deprecated alias (for validation warnings).
pub fn deprecated_replacement(name: &str) -> Option<&'static str> {
    DEPRECATED
        .iter()
        .find(|(_, old)| *old == name)
        .map(|(canonical, _)| *canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deprecated_alias_matches_canonical_filter_but_not_reverse() {
        assert!(name_matches("envoy.http_connection_manager", HCM));
        assert!(name_matches(HCM, HCM));
        // The reverse is not a match in pilot: a canonical match name vs a filter that carries
        // the deprecated name only matches if the names are equal.
        assert!(!name_matches(HCM, "envoy.http_connection_manager"));
        assert_eq!(canonical("envoy.router"), ROUTER);
        assert_eq!(canonical("istio.stats"), "istio.stats");
    }
}
