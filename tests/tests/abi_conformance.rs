//! Both built plugins load in the Envoy of every Istio 1.13-1.17 proxy, and the check itself
//! rejects modules Envoy would refuse.

use e2e_tests::abi_conformance::{check, surface};

fn module(wat: &str) -> Vec<u8> {
    wat::parse_str(wat).expect("test module is valid WAT")
}

/// A module that satisfies Envoy (ABI marker, allocator, memory) plus the given imports.
fn module_importing(imports: &str) -> Vec<u8> {
    module(&format!(
        r#"(module
  {imports}
  (memory (export "memory") 1)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "malloc") (param i32) (result i32) (i32.const 0)))"#
    ))
}

#[test]
fn both_plugins_conform() {
    for (_, file) in xtask::plugins::PLUGINS {
        let path = xtask::plugins::plugin_path(file);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let violations = check(&bytes);
        assert!(violations.is_empty(), "{file}: {violations:?}");
        let s = surface(&bytes).expect("parses");
        assert!(
            s.imports.iter().all(|(m, _)| m == "env"),
            "{file}: {:?}",
            s.imports
        );
    }
}

#[test]
fn a_minimal_module_conforms() {
    let wasm =
        module_importing(r#"(import "env" "proxy_log" (func (param i32 i32 i32) (result i32)))"#);
    assert_eq!(check(&wasm), vec![]);
}

#[test]
fn a_wasi_import_is_named() {
    let wasm =
        module_importing(r#"(import "wasi_snapshot_preview1" "sched_yield" (func (result i32)))"#);
    let v = check(&wasm);
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(
        v[0].0
            .starts_with("imports wasi_snapshot_preview1.sched_yield: a WASI import"),
        "{v:?}"
    );
}

#[test]
fn a_wasm_bindgen_shim_is_named() {
    let wasm = module_importing(
        r#"(import "__wbindgen_placeholder__" "__wbindgen_describe" (func (param i32)))"#,
    );
    let v = check(&wasm);
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(
        v[0].0
            .contains("__wbindgen_placeholder__.__wbindgen_describe: a wasm-bindgen import"),
        "{v:?}"
    );
}

#[test]
fn an_unknown_env_function_is_named() {
    let wasm = module_importing(r#"(import "env" "proxy_does_not_exist" (func (result i32)))"#);
    let v = check(&wasm);
    assert_eq!(v.len(), 5, "one per Istio version: {v:?}");
    assert!(
        v.iter().all(|x| x.0.contains("proxy_does_not_exist")),
        "{v:?}"
    );
}

#[test]
fn missing_abi_marker_and_allocator_are_named() {
    let wasm = module(r#"(module (memory (export "memory") 1))"#);
    let v = check(&wasm);
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(v[0].0.contains("Missing or unknown Proxy-Wasm ABI version"));
    assert!(v[1].0.contains("missing malloc function"));
}

/// The `proxy_on_*` exports of a built plugin, sorted.
fn exported_callbacks(file: &str) -> Vec<String> {
    let path = xtask::plugins::plugin_path(file);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut callbacks: Vec<String> = surface(&bytes)
        .expect("parses")
        .exports
        .into_iter()
        .filter(|e| e.starts_with("proxy_on_"))
        .collect();
    callbacks.sort();
    callbacks
}

/// stats exports only the callbacks it acts in. Envoy skips a callback the module does not export
/// (cpp-host `ContextBase::onRequestBody` and siblings return Continue without entering the VM),
/// so a no-op export would only cost a VM entry per body chunk, trailer block or close. The list
/// is the glue's by hand: root lifecycle (context create, vm start, configure, tick, delete;
/// not done: without the export cpp-host answers true itself, and the root's queue warning is
/// given in delete, which follows at once), the HTTP report (request/response headers, log) and the TCP report (new connection,
/// downstream/upstream data).
#[test]
fn the_stats_module_exports_only_the_callbacks_it_acts_in() {
    let callbacks = exported_callbacks("stats_plugin.wasm");
    let want = [
        "proxy_on_configure",
        "proxy_on_context_create",
        "proxy_on_delete",
        "proxy_on_downstream_data",
        "proxy_on_log",
        "proxy_on_new_connection",
        "proxy_on_request_headers",
        "proxy_on_response_headers",
        "proxy_on_tick",
        "proxy_on_upstream_data",
        "proxy_on_vm_start",
    ];
    assert_eq!(callbacks, want);
}

/// attributegen acts on request headers (`ON_REQUEST` generators) and in `onLog`
/// (`AFTER_RESPONSE`, the default phase) only, so besides the root lifecycle (context create,
/// vm start, configure, delete; not done, which would only answer true, as cpp-host does for a
/// module without it) it exports just those two. The Rust SDK's dispatcher,
/// which it used before, exported every callback: a VM entry per body chunk, trailer block and
/// response-header block for nothing.
#[test]
fn the_attributegen_module_exports_only_the_callbacks_it_acts_in() {
    let callbacks = exported_callbacks("attributegen_plugin.wasm");
    let want = [
        "proxy_on_configure",
        "proxy_on_context_create",
        "proxy_on_delete",
        "proxy_on_log",
        "proxy_on_request_headers",
        "proxy_on_vm_start",
    ];
    assert_eq!(callbacks, want);
}

/// Envoy's V8 runs with V8's default wasm features (cpp-host `src/v8/v8.cc` passes only
/// `--no-liftoff`, the memory cap and the stack-trace limit). The oldest Envoy we target, 1.21
/// (Istio 1.13), carries V8 9.5 (envoy PR #18621; 9.9 landed after the 1.21 cut, PR #19652),
/// where reference types — and with them the overlong `call_indirect` table-index encoding that
/// rustc ≥ 1.82 emits by default — were still behind `--experimental-wasm-reftypes`; they
/// shipped in V8 9.6. Bulk memory, sign extension, saturating float-to-int, multi-value and
/// mutable globals all shipped earlier. So both built modules must validate without reference
/// types: their build script links them with `--compress-relocations`
/// (`proxy-attributes/build-support/cdylib_link.rs`), which writes the one-byte encoding, with
/// or without wasm-opt. SIMD is left out too: neither module needs it.
#[test]
fn both_plugins_validate_with_the_features_of_istio_1_13s_v8() {
    use wasmparser::{Validator, WasmFeatures};
    let v8_9_5 = WasmFeatures::WASM1
        | WasmFeatures::BULK_MEMORY
        | WasmFeatures::SIGN_EXTENSION
        | WasmFeatures::SATURATING_FLOAT_TO_INT
        | WasmFeatures::MULTI_VALUE;
    for (_, file) in xtask::plugins::PLUGINS {
        let path = xtask::plugins::plugin_path(file);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let Err(e) = Validator::new_with_features(v8_9_5).validate_all(&bytes) {
            panic!("{file} needs a wasm feature V8 9.5 lacks by default: {e}");
        }
    }
    // The check has teeth: an overlong table index (what rustc emits before wasm-opt) fails it.
    let overlong = [
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
        0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type 0: () -> ()
        0x03, 0x02, 0x01, 0x00, // one function of type 0
        0x04, 0x04, 0x01, 0x70, 0x00, 0x01, // table: funcref, min 1
        0x0a, 0x0c, 0x01, 0x0a, 0x00, // code: one body of 10 bytes, no locals
        0x41, 0x00, // i32.const 0
        0x11, 0x00, 0x80, 0x80, 0x80,
        0x00, // call_indirect type 0, table index 0 as a 5-byte LEB
        0x0b, // end
    ];
    assert!(Validator::new_with_features(WasmFeatures::WASM2)
        .validate_all(&overlong)
        .is_ok());
    assert!(Validator::new_with_features(v8_9_5)
        .validate_all(&overlong)
        .is_err());
}
