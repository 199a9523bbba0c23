//! The project's build steps, shared by the `cargo xtask` binary and the end-to-end tests, so a
//! test never depends on a file that an earlier manual step left behind.

pub mod plugins;
pub mod workspace;
