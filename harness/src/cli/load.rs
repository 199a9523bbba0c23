//! Instantiating the proxy: profile for `--proxy-version`, the node, every Wasm filter of the
//! chains loaded from `--wasm-dir`.

use std::cell::RefCell;
use std::path::PathBuf;

use envoyfilter_model::chain::WasmCode;

use super::setup::Setup;
use crate::abi::LogLevel;
use crate::host_state::LogEntry;
use crate::profile::Profile;
use crate::proxy::{LoadError, LoadReport, Proxy};
use crate::replay::chains::resolve_code;
use crate::vm::cache::ModuleCache;

/// Why the proxy could not be built.
pub enum LoadFailure {
    /// Not a plugin's fault (profile, module files).
    Setup(String),
    /// Envoy would reject a plugin (start or configure failed, or a module is missing).
    Plugin(Box<LoadError>),
}

/// Compiled modules persist in `$HARNESS_MODULE_CACHE`, default `<workspace>/target/harness-module-cache`
/// (compiling a plugin costs seconds; reloading an artifact milliseconds). `HARNESS_MODULE_CACHE=off`
/// disables it.
fn module_cache() -> ModuleCache {
    match std::env::var_os("HARNESS_MODULE_CACHE") {
        Some(v) if v == "off" => ModuleCache::new(),
        Some(v) => ModuleCache::new().with_dir(PathBuf::from(v)),
        None => ModuleCache::new().with_dir(
            crate::replay::chains::workspace_root()
                .join("target")
                .join("harness-module-cache"),
        ),
    }
}

/// Builds the proxy and loads the chains. `note` receives substitution remarks.
pub fn load_proxy(
    setup: &Setup,
    note: &mut dyn FnMut(String),
) -> Result<(Proxy, LoadReport), LoadFailure> {
    let profile = Profile::from_proxy_version(&setup.version.full).map_err(LoadFailure::Setup)?;
    let mut proxy = Proxy::with_cache(profile, setup.node.clone(), module_cache());
    let notes = RefCell::new(Vec::new());
    let resolver = |code: &WasmCode| -> Result<Vec<u8>, String> {
        let module = resolve_code(code, &setup.wasm_dir)?;
        if let Some(n) = module.note {
            let mut notes = notes.borrow_mut();
            if !notes.contains(&n) {
                notes.push(n);
            }
        }
        std::fs::read(&module.path).map_err(|e| format!("{}: {e}", module.path.display()))
    };
    let loaded = proxy.load(&setup.chains.chains, &resolver);
    for n in notes.into_inner() {
        note(n);
    }
    let report = loaded.map_err(|e| LoadFailure::Plugin(Box::new(e)))?;
    Ok((proxy, report))
}

/// `plugin: LEVEL message` for stderr.
pub fn format_log(entry: &LogEntry) -> String {
    format!(
        "{} [{}] {}",
        entry.plugin().unwrap_or("harness"),
        level_name(entry.level),
        entry.message
    )
}

pub fn level_name(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warning",
        LogLevel::Error => "error",
        LogLevel::Critical => "critical",
    }
}

/// Describes a load failure with the plugin's log lines (what Envoy's log would show).
pub fn describe_failure(e: &LoadError) -> String {
    let mut s = e.to_string();
    for l in &e.logs {
        s.push_str("\n  ");
        s.push_str(&format_log(l));
    }
    s
}
