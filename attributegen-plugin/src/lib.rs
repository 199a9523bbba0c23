//! `istio.attributegen` reimplemented (Istio 1.13–1.17, envoyfilter-spec.md §3.3–3.6):
//! ordered CEL match rules whose first true condition writes its value into filter state
//! `wasm.<output_attribute>` with `proxy_set_property`, where `istio.stats` reads it back as a
//! bare identifier (`istio_operationId`).
//!
//! * [`config`]: proto3-JSON configuration.
//! * [`generator`]: conditions compiled once at configure time; evaluation semantics.
//! * [`plugin`]: the root logic (configure, counters, per-phase runs), host-independent.
//! * [`output`]: the write/metric trait and its fake; reads go through
//!   `proxy_attributes::host::Host`.
//! * `glue` (wasm32, non-test only): the Proxy-Wasm ABI exports over the shared binding.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod config;
pub mod generator;
pub mod output;
pub mod plugin;

#[cfg(all(target_arch = "wasm32", not(test)))]
mod glue;

/// Property reads arrive through the module's `malloc`; see `proxy_attributes::alloc`.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: proxy_attributes::alloc::SmallBlocks<std::alloc::System> =
    proxy_attributes::alloc::SmallBlocks::new(std::alloc::System);

#[cfg(test)]
mod tests;

#[cfg(all(test, target_arch = "wasm32"))]
mod wasm_tests;
