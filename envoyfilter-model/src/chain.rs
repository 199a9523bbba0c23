//! The result of patching: the HTTP and network filter chains of each listener context, in the
//! order Envoy runs them. This is the contract between this crate and the harness.

use std::collections::BTreeMap;

/// EnvoyFilter `match.context`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Context {
    SidecarInbound,
    SidecarOutbound,
    Gateway,
}

/// Where a Wasm module's code comes from (`vm_config.code`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WasmCode {
    /// `code.local.filename`: the harness maps it **by file name** into `--wasm-dir`.
    LocalFile(String),
    /// `code.local.inline_string`: a null-VM plugin name such as `envoy.wasm.attributegen`.
    InlineString(String),
    /// `code.remote.http_uri.uri` with its `sha256`.
    Remote { uri: String, sha256: String },
}

/// One `envoy.filters.{http,network}.wasm` filter's `config` (`envoy.extensions.wasm.v3.PluginConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WasmFilter {
    /// `config.name` (the plugin name; `plugin_name` property).
    pub plugin_name: String,
    pub root_id: String,
    pub vm_id: String,
    /// `vm_config.runtime`, e.g. `envoy.wasm.runtime.v8`.
    pub runtime: String,
    pub code: WasmCode,
    /// The bytes Envoy hands the plugin for `PLUGIN_CONFIGURATION` (`anyToBytes`: a StringValue's
    /// string, a BytesValue's bytes, otherwise the serialised Any value).
    pub configuration: Vec<u8>,
    /// `vm_config.configuration`, likewise.
    pub vm_configuration: Vec<u8>,
    pub fail_open: bool,
}

/// What a filter in a chain is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterKind {
    /// A Proxy-Wasm filter the harness loads and runs.
    Wasm(WasmFilter),
    /// An Envoy built-in, identified by its type URL or well-known name (the harness emulates
    /// `istio.metadata_exchange` and treats the router / tcp_proxy as the chain's end).
    ///
    /// Istio's default chains (`defaults`) use: HTTP `istio.metadata_exchange` with
    /// `type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm` (in Istio it is the
    /// null-VM `envoy.wasm.metadata_exchange`; recognise it by name), TCP
    /// `istio.metadata_exchange` with `…envoy.tcp.metadataexchange.config.MetadataExchange`,
    /// `istio.alpn`, `envoy.filters.http.{grpc_stats,fault,cors,router}`,
    /// `envoy.filters.network.tcp_proxy`. Istio 1.17's native stats filter is
    /// `type.googleapis.com/stats.PluginConfig`. A user's null-VM Wasm filter is *not* Native: it
    /// is `Wasm` with `WasmCode::InlineString` (e.g. `envoy.wasm.attributegen`). `config` is the
    /// typed_config body (without `@type`), for the few settings the harness models (grpc_stats
    /// `emit_filter_state`).
    Native {
        type_url: String,
        config: serde_json::Map<String, serde_json::Value>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// The filter's `name` in the chain, e.g. `istio.stats`, `envoy.filters.http.router`.
    pub name: String,
    pub kind: FilterKind,
    /// Which EnvoyFilter resource and patch put it there (`namespace/name#patch-index`), for
    /// error messages; empty for Istio's built-in filters.
    pub origin: String,
}

/// The chains of one proxy: per context, the HTTP filters of the HTTP connection manager and the
/// network filters of the TCP filter chain.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChainSet {
    pub http: BTreeMap<Context, Vec<Filter>>,
    pub network: BTreeMap<Context, Vec<Filter>>,
}
