//! `istio.stats` (Istio 1.13–1.17 `extensions/stats`) reimplemented as a Proxy-Wasm plugin.
//!
//! Data flow, one folder per stage:
//! [`config`] (JSON) → [`schema`] (metrics, tags, compiled CEL) → [`attributes`] (per-request
//! reads through `proxy_attributes::host::Host`) → [`series`] (stat names, metric-id cache,
//! `Metrics`). [`plugin`] ties them together per root context; `glue` (wasm32 only) binds it to
//! the Proxy-Wasm ABI.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod attributes;
pub mod config;
pub mod expressions;
pub mod plugin;
pub mod schema;
pub mod series;

#[cfg(all(target_arch = "wasm32", not(test), feature = "abi"))]
mod glue;

/// Property reads arrive through the module's `malloc`; see `proxy_attributes::alloc`.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: proxy_attributes::alloc::SmallBlocks<std::alloc::System> =
    proxy_attributes::alloc::SmallBlocks::new(std::alloc::System);

pub use attributes::{Compat, Direction};
pub use plugin::{StatsPlugin, Stream};
pub use series::{MetricKind, Metrics};
