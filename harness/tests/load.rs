//! Loading fails with Envoy's (cpp-host's) messages.
mod common;

use common::*;
use envoyfilter_model::chain::{Context, WasmCode};
use harness::profile::Profile;

// The loader's own signature: its `LoadError` is large by design (Envoy's messages + trap report).
#[allow(clippy::result_large_err)]
fn load_wat(
    profile: Profile,
    wat_src: &str,
) -> Result<harness::proxy::LoadReport, harness::proxy::LoadError> {
    let bytes = wat::parse_str(wat_src).expect("valid wat");
    let mut p = proxy(profile);
    let chain = http_chain(Context::SidecarInbound, vec![wasm("tiny", "")]);
    p.load(&chain, &move |_c: &WasmCode| Ok(bytes.clone()))
}

const OK_TAIL: &str = r#"
  (memory (export "memory") 1)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "malloc") (param i32) (result i32) i32.const 1024)
"#;

#[test]
fn missing_abi_export() {
    let e = load_wat(Profile::ISTIO_1_17, r#"(module (memory (export "memory") 1) (func (export "malloc") (param i32) (result i32) i32.const 0))"#)
        .unwrap_err();
    assert_eq!(e.message, "Missing or unknown Proxy-Wasm ABI version");
}

#[test]
fn wasi_sched_yield_is_missing() {
    let e = load_wat(
        Profile::ISTIO_1_16,
        &format!(r#"(module (import "wasi_snapshot_preview1" "sched_yield" (func (result i32))) {OK_TAIL})"#),
    )
    .unwrap_err();
    assert_eq!(
        e.message,
        "Failed to load Wasm module due to a missing import: wasi_snapshot_preview1.sched_yield"
    );
}

#[test]
fn unknown_env_function_is_missing() {
    let e = load_wat(Profile::ISTIO_1_17, &format!(r#"(module (import "env" "proxy_frobnicate" (func (param i32) (result i32))) {OK_TAIL})"#))
        .unwrap_err();
    assert_eq!(
        e.message,
        "Failed to load Wasm module due to a missing import: env.proxy_frobnicate"
    );
}

#[test]
fn import_type_mismatch() {
    // proxy_log is (i32 i32 i32) -> i32 on the host.
    let e = load_wat(
        Profile::ISTIO_1_17,
        &format!(
            r#"(module (import "env" "proxy_log" (func (param i32 i32) (result i32))) {OK_TAIL})"#
        ),
    )
    .unwrap_err();
    assert_eq!(
        e.message,
        "Failed to load Wasm module due to an import type mismatch: env.proxy_log, want: i32 i32 -> i32, but host exports: i32 i32 i32 -> i32"
    );
}

#[test]
fn missing_malloc() {
    let e = load_wat(
        Profile::ISTIO_1_17,
        r#"(module (memory (export "memory") 1) (func (export "proxy_abi_version_0_2_1")))"#,
    )
    .unwrap_err();
    assert_eq!(e.message, "Wasm module is missing malloc function.");
}

#[test]
fn allocator_fallback_and_wasi_allow_list_load() {
    // proxy_on_memory_allocate instead of malloc, and every WASI function Envoy 1.21–1.25 offers
    // that a wasip1 Rust module imports.
    let r = load_wat(
        Profile::ISTIO_1_13,
        r#"(module
          (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "environ_get" (func (param i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "environ_sizes_get" (func (param i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "clock_time_get" (func (param i32 i64 i32) (result i32)))
          (import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))
          (import "wasi_unstable" "path_open" (func (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (func (export "proxy_abi_version_0_2_1"))
          (func (export "proxy_on_memory_allocate") (param i32) (result i32) i32.const 1024))"#,
    );
    assert!(r.is_ok(), "{r:?}");
}

const START_METRIC: &str = r#"(module
  (import "env" "proxy_define_metric" (func $define (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "m")
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "malloc") (param i32) (result i32) i32.const 1024)
  (func (export "_initialize") (drop (call $define (i32.const 0) (i32.const 16) (i32.const 1) (i32.const 32)))))"#;

#[test]
fn restricted_start_on_envoy_1_24_and_later() {
    // Istio 1.16/1.17 (Envoy 1.24/1.25): define_metric from _initialize traps restricted_callback.
    let e = load_wat(Profile::ISTIO_1_17, START_METRIC).unwrap_err();
    assert_eq!(e.message, "Failed to initialize Wasm code");
    let trap = e.trap.expect("trap report");
    assert!(
        trap.message.starts_with("restricted_callback"),
        "{}",
        trap.message
    );
    // Istio 1.15 (Envoy 1.23) has no start restrictions.
    assert!(load_wat(Profile::ISTIO_1_15, START_METRIC).is_ok());
}

#[test]
fn configure_returning_false_rejects_the_plugin() {
    let mut p = proxy(Profile::ISTIO_1_17);
    let e = p
        .load(
            &http_chain(Context::SidecarInbound, vec![wasm("tp", "fail_configure")]),
            &resolver,
        )
        .unwrap_err();
    assert_eq!(e.message, "Failed to configure base Wasm plugin");
    assert!(
        e.logs
            .iter()
            .any(|l| l.message == "configure failing on purpose"),
        "{:?}",
        e.logs
    );
}

#[test]
fn fail_open_plugin_that_fails_to_load_is_skipped() {
    let mut p = proxy(Profile::ISTIO_1_17);
    let r = p
        .load(
            &http_chain(
                Context::SidecarInbound,
                vec![fail_open(wasm("tp", "fail_configure")), router()],
            ),
            &resolver,
        )
        .unwrap();
    assert_eq!(
        r.plugins[0].skipped.as_deref(),
        Some("Failed to configure base Wasm plugin")
    );
}

#[test]
fn load_report_lists_start_and_configure() {
    let mut p = proxy(Profile::ISTIO_1_17);
    let r = p
        .load(
            &http_chain(
                Context::SidecarInbound,
                vec![mx(), wasm("tp", "x=1"), router()],
            ),
            &resolver,
        )
        .unwrap();
    assert_eq!(r.plugins.len(), 1);
    let msgs: Vec<&str> = r.plugins[0]
        .logs
        .iter()
        .map(|l| l.message.as_str())
        .collect();
    // Root context 1: vm_start with an empty VM configuration (0 bytes → None), then configure.
    assert_eq!(
        msgs,
        vec!["cb on_vm_start 1 0 None", "cb on_configure 1 3 \"x=1\""]
    );
    assert_eq!(
        r.chains,
        vec![(
            Context::SidecarInbound,
            false,
            vec![
                "istio.metadata_exchange".to_string(),
                "tp".into(),
                "envoy.filters.http.router".into()
            ]
        )]
    );
}

#[test]
fn module_cache_persists_compiled_artifacts() {
    let dir = workspace()
        .join("target")
        .join("harness-test-cache")
        .join(format!("{}", std::process::id()));
    let bytes = wat::parse_str(format!("(module {OK_TAIL})")).unwrap();
    let a = harness::vm::cache::ModuleCache::new().with_dir(&dir);
    a.get(&bytes).expect("compile");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 1);
    assert!(
        files[0].ends_with("-wasmtime-48.0.8-epoch.cwasm"),
        "{files:?}"
    );
    // A fresh cache (another process, in effect) loads the artifact.
    let b = harness::vm::cache::ModuleCache::new().with_dir(&dir);
    assert!(b.get(&bytes).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn canary_runs_start_and_configure_first() {
    let mut p = proxy(Profile::ISTIO_1_17);
    p.set_canary(true);
    let r = p
        .load(
            &http_chain(Context::SidecarInbound, vec![wasm("tp", "x=1")]),
            &resolver,
        )
        .unwrap();
    let msgs: Vec<&str> = r.plugins[0]
        .logs
        .iter()
        .map(|l| l.message.as_str())
        .collect();
    // Canary VM (root 1), then the worker VM (root 1 again: ids are per VM).
    assert_eq!(
        msgs,
        vec![
            "cb on_vm_start 1 0 None",
            "cb on_configure 1 3 \"x=1\"",
            "cb on_vm_start 1 0 None",
            "cb on_configure 1 3 \"x=1\""
        ]
    );
    let mut p = proxy(Profile::ISTIO_1_17);
    p.set_canary(true);
    let e = p
        .load(
            &http_chain(Context::SidecarInbound, vec![wasm("tp", "fail_configure")]),
            &resolver,
        )
        .unwrap_err();
    assert_eq!(e.message, "Failed to configure base Wasm plugin");
    // The canary failed: the worker VM never configured.
    assert_eq!(
        e.logs
            .iter()
            .filter(|l| l.message.starts_with("cb on_configure"))
            .count(),
        1
    );
}
