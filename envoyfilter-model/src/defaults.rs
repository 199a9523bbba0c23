//! The filter chains istiod builds before any EnvoyFilter is applied, per proxy minor and
//! listener context, for a mesh with no RequestAuthentication / AuthorizationPolicy / WasmPlugin /
//! Telemetry resources (so no `istio_authn`, `envoy.filters.http.rbac`, ext-authz, Telemetry-API
//! stats) and HTTP (not gRPC / gRPC-Web) ports.
//!
//! HTTP connection manager filters:
//! * 1.13 (`release-1.13:pilot/pkg/networking/core/v1alpha3/listener.go:1421-1444`):
//!   plugin filters (none by default) + `istio.metadata_exchange` + [grpc_web] + [grpc_stats on
//!   gRPC ports] + `istio.alpn` on SIDECAR_OUTBOUND only + fault + cors + router.
//! * 1.14, 1.15 (`listener.go` / `listener_builder.go`): authn/authz/WasmPlugin phases, then MX,
//!   [grpc_web], [grpc_stats on gRPC ports], `istio.alpn` on every class but SIDECAR_INBOUND
//!   (`PILOT_ENABLE_ALPN_FILTER`, default true), fault, cors, router.
//! * 1.16 (`release-1.16:…/listener_builder.go:365-404`): MX moved first (istio/istio#41066);
//!   otherwise as 1.15.
//! * 1.17 (`release-1.17:…/listener_builder.go:365-408`): MX first, …, `envoy.filters.http.grpc_stats`
//!   on every HTTP listener (no longer gRPC-only), alpn (not inbound), fault, cors, router.
//!
//! Network filters of TCP filter chains (`networkfilter.go` `buildMetadataExchangeNetworkFilters`):
//! `istio.metadata_exchange` on SIDECAR_INBOUND only (outbound MX is an upstream cluster filter),
//! then `envoy.filters.network.tcp_proxy`.
//!
//! HTTP filter chains carry one network filter, the HTTP connection manager.

use crate::chain::{Context, FilterKind};
use crate::names;

/// One filter of a chain under construction.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    pub name: String,
    /// `typed_config` as written in the patch (proto-JSON), for decoding and MERGE.
    pub typed_config: Option<serde_json::Value>,
    /// `config_discovery` (ECDS) of an HTTP filter.
    pub config_discovery: Option<serde_json::Value>,
    /// Pre-decoded kind for Istio's own filters.
    pub fixed: Option<FilterKind>,
    /// `namespace/name#patch-index`, empty for Istio's built-ins.
    pub origin: String,
    /// For a network filter that is the HTTP connection manager: its HTTP filters.
    pub http_filters: Option<Vec<Slot>>,
}

pub const HTTP_MX_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
pub const TCP_MX_TYPE: &str =
    "type.googleapis.com/envoy.tcp.metadataexchange.config.MetadataExchange";

fn native(name: &str, type_url: &str) -> Slot {
    native_with(name, type_url, serde_json::Map::new())
}

/// A built-in with settings (`config`: the typed_config body without `@type`).
fn native_with(
    name: &str,
    type_url: &str,
    config: serde_json::Map<String, serde_json::Value>,
) -> Slot {
    let mut typed_config = config.clone();
    typed_config.insert("@type".into(), type_url.into());
    Slot {
        name: name.to_string(),
        typed_config: Some(serde_json::Value::Object(typed_config)),
        config_discovery: None,
        fixed: Some(FilterKind::Native {
            type_url: type_url.to_string(),
            config,
        }),
        origin: String::new(),
        http_filters: None,
    }
}

/// Istio's default HTTP filters for `minor` (13…17) and `context`.
pub fn http_filters(minor: u32, context: Context) -> Vec<Slot> {
    // HTTP MX is a null-VM Wasm filter (`inline_string: envoy.wasm.metadata_exchange`,
    // pilot/pkg/xds/filters/filters.go buildHTTPMxFilter); the harness emulates it by name.
    let mut out = vec![native(names::METADATA_EXCHANGE, HTTP_MX_TYPE)];
    if minor >= 17 {
        // pilot/pkg/xds/filters/filters.go `GrpcStats`: EmitFilterState true,
        // StatsForAllMethods false.
        let serde_json::Value::Object(config) =
            serde_json::json!({"emit_filter_state": true, "stats_for_all_methods": false})
        else {
            unreachable!("a JSON object literal")
        };
        out.push(native_with(
            names::GRPC_STATS,
            "type.googleapis.com/envoy.extensions.filters.http.grpc_stats.v3.FilterConfig",
            config,
        ));
    }
    let alpn = if minor <= 13 {
        context == Context::SidecarOutbound
    } else {
        context != Context::SidecarInbound
    };
    if alpn {
        out.push(native(
            names::ALPN,
            "type.googleapis.com/istio.envoy.config.filter.http.alpn.v2alpha1.FilterConfig",
        ));
    }
    out.push(native(
        names::FAULT,
        "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault",
    ));
    out.push(native(
        names::CORS,
        "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors",
    ));
    out.push(native(
        names::ROUTER,
        "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
    ));
    out
}

/// The network filters of the HTTP filter chain: the HTTP connection manager holding `http`.
pub fn http_chain_network_filters(minor: u32, context: Context) -> Vec<Slot> {
    let mut hcm = native(
        names::HCM,
        "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
    );
    hcm.http_filters = Some(http_filters(minor, context));
    vec![hcm]
}

/// Istio's default network filters of a TCP filter chain.
pub fn tcp_chain_network_filters(_minor: u32, context: Context) -> Vec<Slot> {
    let mut out = Vec::new();
    if context == Context::SidecarInbound {
        out.push(native(names::METADATA_EXCHANGE, TCP_MX_TYPE));
    }
    out.push(native(
        names::TCP_PROXY,
        "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_of(v: &[Slot]) -> Vec<&str> {
        v.iter().map(|s| s.name.as_str()).collect()
    }

    #[test]
    fn alpn_placement_changed_in_1_14() {
        assert_eq!(
            names_of(&http_filters(13, Context::Gateway)),
            [
                names::METADATA_EXCHANGE,
                names::FAULT,
                names::CORS,
                names::ROUTER
            ]
        );
        assert_eq!(
            names_of(&http_filters(14, Context::Gateway)),
            [
                names::METADATA_EXCHANGE,
                names::ALPN,
                names::FAULT,
                names::CORS,
                names::ROUTER
            ]
        );
        assert_eq!(
            names_of(&http_filters(17, Context::SidecarInbound)),
            [
                names::METADATA_EXCHANGE,
                names::GRPC_STATS,
                names::FAULT,
                names::CORS,
                names::ROUTER
            ]
        );
    }

    #[test]
    fn tcp_mx_only_inbound() {
        assert_eq!(
            names_of(&tcp_chain_network_filters(15, Context::SidecarInbound)),
            [names::METADATA_EXCHANGE, names::TCP_PROXY]
        );
        assert_eq!(
            names_of(&tcp_chain_network_filters(15, Context::SidecarOutbound)),
            [names::TCP_PROXY]
        );
    }
}
