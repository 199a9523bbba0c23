//! A test-only plugin for the harness. Its plugin configuration is a `;`-separated list of
//! `key=value` switches (see `Config`); it logs every callback as `cb <name> …` and every probed
//! host-call status as `status <name> <n>`, so tests can assert order, statuses and decoded
//! property values. It is built for wasm32 only; on other targets the crate is empty.

#[cfg(target_arch = "wasm32")]
mod plugin;
