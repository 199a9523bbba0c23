//! An Envoy-faithful Proxy-Wasm ABI 0.2.1 host on wasmtime.
//!
//! It plays the Envoy inside Istio 1.13–1.17 (Envoy 1.21–1.25) for Proxy-Wasm plugins: it loads a
//! module the way Envoy does (ABI export, allocator, import allow-list per version), drives HTTP
//! streams and TCP connections through filter chains in Envoy's exact callback order, answers
//! `proxy_get_property` from Envoy's attribute model with Envoy's byte encodings, and keeps a stats
//! sink that renders Envoy's `/stats/prometheus` text.
//!
//! The entry point is [`proxy::Proxy`]:
//!
//! * [`profile`] — Envoy behaviour per Istio minor (WASI allow-list, restricted start).
//! * [`vm`] — load-time validation with cpp-host's messages, instances, traps; [`vm::cache`] —
//!   the shared compiled-module cache.
//! * [`host_calls`] — every `env.proxy_*` import and Envoy's WASI set, with Envoy's statuses.
//! * [`properties`] — the attribute model; [`filter_state`] — `wasm.*` stream state.
//! * [`metadata_exchange`] — Istio's MX emulated at the head of the chain.
//! * [`filter_chain`] — HTTP/TCP drivers, the virtual clock and ticks.

pub mod abi;
pub mod stream;

pub mod cli;
pub mod replay;

/// Envoy's stats sink and `/stats/prometheus` exposition.
pub use stats_sink;
pub mod filter_chain;
pub mod filter_state;
pub mod host_calls;
pub mod host_state;
pub mod metadata_exchange;
pub mod profile;
pub mod properties;
pub mod proxy;
pub mod vm;
