//! Helpers for the end-to-end tests: module conformance checks and Prometheus-text parsing.

pub mod abi_conformance;
pub mod prom;
