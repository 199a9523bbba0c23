//! What a module must look like for the Envoy inside Istio 1.13–1.17 to load it (abi-host.md §1.1,
//! §1.7), checked on the bytes: the ABI 0.2.1 marker export, an allocator export, and imports
//! limited to the `env.proxy_*` functions every one of those Envoys registers. Our plugins target
//! wasm32-unknown-unknown, so they import no WASI at all, and nothing from wasm-bindgen (whose
//! `__wbindgen_placeholder__` imports make Envoy fail with "missing import").

use harness::profile::Profile;
use wasmparser::{ExternalKind, Parser, Payload, TypeRef};

/// One reason a module does not conform, naming the offending import or export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation(pub String);

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A module's function imports `(module, name)` and function exports.
#[derive(Debug, Default)]
pub struct Surface {
    pub imports: Vec<(String, String)>,
    pub exports: Vec<String>,
}

pub fn surface(bytes: &[u8]) -> Result<Surface, String> {
    let mut s = Surface::default();
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(|e| format!("not a wasm module: {e}"))? {
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.map_err(|e| e.to_string())?;
                    if matches!(import.ty, TypeRef::Func(_)) {
                        s.imports
                            .push((import.module.to_string(), import.name.to_string()));
                    }
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export.map_err(|e| e.to_string())?;
                    if export.kind == ExternalKind::Func {
                        s.exports.push(export.name.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    Ok(s)
}

/// Every violation, empty when the module conforms.
pub fn check(bytes: &[u8]) -> Vec<Violation> {
    let s = match surface(bytes) {
        Ok(s) => s,
        Err(e) => return vec![Violation(e)],
    };
    let mut out = Vec::new();
    if !s.exports.iter().any(|e| e == "proxy_abi_version_0_2_1") {
        out.push(Violation(
            "missing export proxy_abi_version_0_2_1: Envoy fails with \"Missing or unknown Proxy-Wasm ABI version\"".into(),
        ));
    }
    if !s
        .exports
        .iter()
        .any(|e| e == "malloc" || e == "proxy_on_memory_allocate")
    {
        out.push(Violation(
            "missing allocator export (malloc or proxy_on_memory_allocate): Envoy fails with \"Wasm module is missing malloc function.\"".into(),
        ));
    }
    for (module, name) in &s.imports {
        if module != "env" || !name.starts_with("proxy_") {
            let why = if module.starts_with("wasi") {
                "a WASI import: our plugins target wasm32-unknown-unknown and must not need WASI (Envoy 1.21-1.25 only has 15 WASI functions)"
            } else if module.starts_with("__wbindgen") {
                "a wasm-bindgen import: a dependency pulled wasm-bindgen into the plugin"
            } else {
                "not an env.proxy_* host function"
            };
            out.push(Violation(format!("imports {module}.{name}: {why}")));
        }
    }
    // Every env.proxy_* import must be a host function the harness registers for every Istio
    // 1.13-1.17 profile (the same set proxy-wasm-cpp-host registers for ABI 0.2.x).
    if out.is_empty() {
        let engine = wasmtime::Engine::default();
        match wasmtime::Module::new(&engine, bytes) {
            Err(e) => out.push(Violation(format!("wasmtime rejects the module: {e}"))),
            Ok(module) => {
                for profile in Profile::ALL {
                    let linker = match harness::host_calls::linker(&engine, &profile) {
                        Ok(l) => l,
                        Err(e) => {
                            out.push(Violation(format!("cannot build the host linker: {e}")));
                            break;
                        }
                    };
                    if let Err(e) = linker.instantiate_pre(&module) {
                        out.push(Violation(format!(
                            "{}: an import Envoy does not provide: {e}",
                            profile.label()
                        )));
                    }
                }
            }
        }
    }
    out
}
