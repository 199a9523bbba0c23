//! Helpers for the end-to-end tests: module conformance checks, Prometheus-text parsing, and
//! Istio's attributegen test fixture.

pub mod abi_conformance;
pub mod attributegen;
pub mod prom;
