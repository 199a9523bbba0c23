//! What both plugins share, written once:
//!
//! * [`host`]: the one trait through which plugin logic reads Envoy (`proxy_get_property`,
//!   header maps), with a fake for native tests (the Kuadrant wasm-shim `resolver/{mod,mock}.rs`
//!   pattern). The wasm glue of each plugin implements it over `proxy_wasm::hostcalls`.
//! * [`values`]: Envoy's property byte encodings (strings raw, int/double 8 bytes LE, bool 1 byte,
//!   maps and lists in pairs format).
//! * [`peer`]: Istio peer metadata: the `FlatNode` FlatBuffer that metadata exchange leaves in
//!   filter state, the base64 protobuf `Struct` of `x-envoy-peer-metadata`, and the
//!   `upstream_host_metadata` endpoint string fallback.
//! * [`expr`]: the CEL binding: compile once at configure time, evaluate per request with a lazy
//!   resolver that fetches only the attributes an expression references.

pub mod expr;
pub mod host;
pub mod peer;
pub mod values;
