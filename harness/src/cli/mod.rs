//! The `harness` command line (to come).

pub mod args;
pub mod render;
pub mod setup;
