//! Build script of both plugin crates (`build = "../proxy-attributes/build-support/cdylib_link.rs"`):
//! links their wasm32 cdylib with `--compress-relocations`.
//!
//! rustc ≥ 1.82 targets wasm with reference types on, so every `call_indirect` in the objects
//! (std's included: it is precompiled that way) names the function table through a relocation,
//! which wasm-ld fills as a padded 5-byte LEB. The MVP forbids that encoding (the byte is a
//! reserved zero) and only an engine with reference types must accept it. Envoy 1.21 (Istio 1.13)
//! carries V8 9.5, where reference types were not yet on by default (they shipped in V8 9.6), so
//! it may refuse such a module. Compressing the relocations writes the minimal one-byte index;
//! `tests/tests/abi_conformance.rs` validates both modules against V8 9.5's default features.
//! wasm-ld refuses the flag when the output keeps debug information, so only builds without
//! DWARF (the `wasm` profile) get it, together with `--strip-debug`: a build that keeps symbol
//! names (`CARGO_PROFILE_WASM_STRIP=false`, for profiling) has no DWARF to lose but would
//! otherwise be refused.

fn main() {
    println!("cargo:rerun-if-changed=../proxy-attributes/build-support/cdylib_link.rs");
    let wasm = std::env::var("CARGO_CFG_TARGET_ARCH").is_ok_and(|a| a == "wasm32");
    let debug_info = std::env::var("DEBUG").is_ok_and(|d| d != "false" && d != "0");
    if wasm && !debug_info {
        println!("cargo:rustc-link-arg-cdylib=--compress-relocations");
        println!("cargo:rustc-link-arg-cdylib=--strip-debug");
    }
}
