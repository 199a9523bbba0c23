//! The `harness` command line (to come).

pub mod args;
