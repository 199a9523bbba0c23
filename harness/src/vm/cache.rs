//! Compiled-module cache. `Module::new` costs ~1–2 s per plugin (crates.md §4), so modules are
//! compiled once per process (keyed by a hash of the bytes, shared by every `Proxy` using the
//! cache) and optionally serialised to a directory (`Module::serialize`, reloaded in ~3 ms),
//! keyed by hash + wasmtime version.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use wasmtime::{Config, Engine, Module};

/// wasmtime's version, part of the on-disk key (artifacts are engine-version specific).
pub const WASMTIME_VERSION: &str = "48.0.8";

/// The engine settings that change generated code, also part of the on-disk key (an artifact
/// compiled with fuel metering does not load into an epoch-interruption engine).
const CODEGEN_TAG: &str = "epoch";

/// A 128-bit content key: FNV-1a and SipHash (fixed keys) over the bytes, plus the length.
pub fn content_key(bytes: &[u8]) -> String {
    let mut fnv: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        fnv ^= *b as u64;
        fnv = fnv.wrapping_mul(0x0000_0100_0000_01b3);
    }
    #[allow(deprecated)]
    let mut sip = std::hash::SipHasher::new_with_keys(0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210);
    bytes.hash(&mut sip);
    format!("{fnv:016x}{:016x}-{}", sip.finish(), bytes.len())
}

/// The engine configuration every harness VM uses: epoch interruption (the runaway-callback
/// guard, [`super::watchdog`]) and wasm backtraces for trap reports.
pub fn engine_config() -> Config {
    let mut cfg = Config::new();
    cfg.epoch_interruption(true);
    #[cfg(feature = "profiling")]
    if std::env::var_os("HARNESS_PERFMAP").is_some() {
        cfg.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    cfg
}

/// Shared, thread-safe module cache. Clone it to share.
#[derive(Clone)]
pub struct ModuleCache {
    engine: Engine,
    modules: Arc<Mutex<HashMap<String, Module>>>,
    dir: Option<PathBuf>,
}

impl Default for ModuleCache {
    fn default() -> Self {
        ModuleCache::new()
    }
}

impl ModuleCache {
    /// An in-memory cache with the harness engine.
    pub fn new() -> ModuleCache {
        let engine = Engine::new(&engine_config()).unwrap_or_default();
        super::watchdog::watch(&engine);
        ModuleCache {
            engine,
            modules: Arc::default(),
            dir: None,
        }
    }

    /// Also keep compiled artifacts in `dir` across processes.
    pub fn with_dir(mut self, dir: impl Into<PathBuf>) -> ModuleCache {
        self.dir = Some(dir.into());
        self
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compiles (or finds) the module for these bytes.
    pub fn get(&self, bytes: &[u8]) -> Result<Module, String> {
        let key = content_key(bytes);
        if let Some(m) = self.modules.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(m);
        }
        let file = self.dir.as_ref().map(|d| {
            d.join(format!(
                "{key}-wasmtime-{WASMTIME_VERSION}-{CODEGEN_TAG}.cwasm"
            ))
        });
        let mut module = None;
        if let Some(f) = &file {
            if let Ok(art) = std::fs::read(f) {
                // SAFETY: the artifact was written by `Module::serialize` of this wasmtime version
                // into the harness's own cache directory; wasmtime also checks the engine
                // compatibility header and errors (we then recompile) on a mismatch.
                module = unsafe { Module::deserialize(&self.engine, &art) }.ok();
            }
        }
        let module = match module {
            Some(m) => m,
            None => {
                let m = Module::new(&self.engine, bytes)
                    .map_err(|e| format!("Failed to compile Wasm module: {e}"))?;
                if let Some(f) = &file {
                    if let Ok(art) = m.serialize() {
                        if let Some(parent) = f.parent() {
                            let _ = std::fs::create_dir_all(parent);
                        }
                        // Write-then-rename so concurrent processes never read a partial file.
                        let tmp = f.with_extension(format!("tmp{}", std::process::id()));
                        if std::fs::write(&tmp, art).is_ok() {
                            let _ = std::fs::rename(&tmp, f);
                        }
                    }
                }
                m
            }
        };
        if let Ok(mut map) = self.modules.lock() {
            map.insert(key, module.clone());
        }
        Ok(module)
    }
}
