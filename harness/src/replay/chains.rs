//! Building the proxy's filter chains: EnvoyFilters → `ChainSet` (envoyfilter_model, as istiod
//! would patch them for `--proxy-version` and the node), and each Wasm filter's code → a module
//! file in `--wasm-dir`.

use std::path::{Path, PathBuf};

use envoyfilter_model::chain::{ChainSet, Context, FilterKind, WasmCode, WasmFilter};
use envoyfilter_model::patch::{PatchOptions, Proxy as PatchProxy};
use serde_json::Value as Json;

use super::node::ProxyVersion;
use crate::stream::{Direction, LocalNode};

/// Null-VM plugin names Istio's own EnvoyFilters use, and the module of ours that replaces each.
pub const NULL_VM_SUBSTITUTES: [(&str, &str); 2] = [
    ("envoy.wasm.stats", "stats_plugin.wasm"),
    ("envoy.wasm.attributegen", "attributegen_plugin.wasm"),
];

/// The workspace root, fixed at build time (the binary runs from the workspace).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `<workspace>/envoyfilters/1.<minor>/`.
pub fn default_envoyfilter_dir(version: &ProxyVersion) -> PathBuf {
    workspace_root()
        .join("envoyfilters")
        .join(format!("1.{}", version.minor))
}

/// `<workspace>/target/plugins` (where `cargo xtask wasm` writes the modules).
pub fn default_wasm_dir() -> PathBuf {
    workspace_root().join("target").join("plugins")
}

/// The EnvoyFilter context of a traffic direction.
pub fn context_of(direction: Direction) -> Context {
    match direction {
        Direction::Inbound => Context::SidecarInbound,
        Direction::Outbound => Context::SidecarOutbound,
        Direction::Gateway => Context::Gateway,
    }
}

/// The chains plus everything worth telling the user.
#[derive(Debug, Clone)]
pub struct LoadedChains {
    pub chains: ChainSet,
    pub notes: Vec<String>,
}

/// Loads the EnvoyFilters in `paths` and patches them for this proxy (version, namespace,
/// labels and metadata of the node, for workloadSelector and proxy matches).
pub fn load_chains(
    paths: &[PathBuf],
    version: &ProxyVersion,
    node: &LocalNode,
) -> Result<LoadedChains, String> {
    for p in paths {
        if !p.exists() {
            return Err(format!(
                "--envoyfilter {}: no such file or folder",
                p.display()
            ));
        }
    }
    let mut proxy = PatchProxy::new(&version.full);
    let meta = &node.metadata;
    proxy.namespace = meta
        .get("NAMESPACE")
        .and_then(Json::as_str)
        .map(str::to_string);
    if let Some(Json::Object(labels)) = meta.get("LABELS") {
        proxy.labels = labels
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect();
    }
    proxy.metadata = meta
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect();
    let patched = envoyfilter_model::chains_for_paths(paths, &proxy, &PatchOptions::default())
        .map_err(|e| format!("EnvoyFilters: {e}"))?;
    Ok(LoadedChains {
        chains: patched.chains,
        notes: patched.notes,
    })
}

/// Where one Wasm filter's module comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleFile {
    pub path: PathBuf,
    /// Set when the code was substituted (null-VM name or remote URI mapped to a local file).
    pub note: Option<String>,
}

/// Maps a Wasm filter's `vm_config.code` to a file in `wasm_dir`: a local filename by its file
/// name, a null-VM inline name to our module, a remote URI by the last path segment.
pub fn resolve_code(code: &WasmCode, wasm_dir: &Path) -> Result<ModuleFile, String> {
    let (file, note) = match code {
        WasmCode::LocalFile(f) => (file_name(f), None),
        WasmCode::InlineString(name) => match NULL_VM_SUBSTITUTES.iter().find(|(n, _)| n == name) {
            Some((_, module)) => (
                module.to_string(),
                Some(format!("null-VM code {name:?} runs as our {module}")),
            ),
            None => {
                return Err(format!(
                    "inline code {name:?} is a null-VM plugin with no Wasm module here (known: {})",
                    NULL_VM_SUBSTITUTES.map(|(n, _)| n).join(", ")
                ))
            }
        },
        WasmCode::Remote { uri, .. } => {
            let f = file_name(uri.split(['?', '#']).next().unwrap_or(uri));
            let note = format!("remote code {uri} loaded from --wasm-dir as {f}");
            (f, Some(note))
        }
    };
    if file.is_empty() {
        return Err("vm_config.code names no file".to_string());
    }
    let path = wasm_dir.join(&file);
    if !path.is_file() {
        return Err(format!(
            "module {file} not found at {} (build it with `cargo xtask wasm`, or pass --wasm-dir)",
            path.display()
        ));
    }
    Ok(ModuleFile { path, note })
}

fn file_name(path: &str) -> String {
    path.rsplit(['/', '\\']).next().unwrap_or(path).to_string()
}

/// Every Wasm filter of the chain set, with its context and whether it is an HTTP filter.
pub fn wasm_filters(chains: &ChainSet) -> Vec<(Context, bool, &WasmFilter)> {
    let mut out = Vec::new();
    for (http, map) in [(true, &chains.http), (false, &chains.network)] {
        for (ctx, filters) in map {
            for f in filters {
                if let FilterKind::Wasm(w) = &f.kind {
                    out.push((*ctx, http, w));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_are_found_by_file_name() {
        let dir = std::env::temp_dir().join(format!("harness-chains-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("stats_plugin.wasm"), b"\0asm").unwrap();
        let m = resolve_code(
            &(WasmCode::LocalFile("/var/local/wasm/stats_plugin.wasm".into())),
            &dir,
        )
        .unwrap();
        assert_eq!(m.path, dir.join("stats_plugin.wasm"));
        assert_eq!(m.note, None);
        let m = resolve_code(&(WasmCode::InlineString("envoy.wasm.stats".into())), &dir).unwrap();
        assert!(m.note.unwrap().contains("stats_plugin.wasm"));
        let m = resolve_code(
            &(WasmCode::Remote {
                uri: "https://example.com/p/stats_plugin.wasm?x=1".into(),
                sha256: String::new(),
            }),
            &dir,
        )
        .unwrap();
        assert_eq!(m.path, dir.join("stats_plugin.wasm"));
        let err = resolve_code(
            &(WasmCode::LocalFile("/x/attributegen_plugin.wasm".into())),
            &dir,
        )
        .unwrap_err();
        assert!(err.contains("attributegen_plugin.wasm not found"), "{err}");
        let err = resolve_code(
            &(WasmCode::InlineString("envoy.wasm.metadata_exchange".into())),
            &dir,
        )
        .unwrap_err();
        assert!(err.contains("null-VM"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
