//! Istio EnvoyFilter resources as istiod applies them to one proxy version, and the renderer that
//! writes this project's per-version EnvoyFilter set from a metric schema.
//!
//! Data flow: EnvoyFilter YAML → [`chain`] (the filter chains istiod would build for a proxy of a
//! given version, per listener context) → the harness loads each Wasm filter it names.

pub mod chain;
