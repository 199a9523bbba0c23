//! Replaying traffic files through a [`crate`] proxy: decoding ([`traffic`]), times and flags.

pub mod chains;
pub mod flags;
pub mod gen;
pub mod node;
pub mod run;
pub mod time;
pub mod traffic;
