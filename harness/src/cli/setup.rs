//! Turning the setup flags into a proxy description: version, node, stat tags, chains, modules.
//! Everything here fails with a message naming the flag or file at fault (exit 1).

use std::path::PathBuf;

use super::args::SetupArgs;
use crate::replay::chains::{
    default_envoyfilter_dir, default_wasm_dir, load_chains, wasm_filters, LoadedChains,
};
use crate::replay::node::{
    default_node, extra_stat_tags, load_node, parse_proxy_version, ProxyVersion,
};
use crate::stream::LocalNode;

#[derive(Debug, Clone)]
pub struct Setup {
    pub version: ProxyVersion,
    pub node: LocalNode,
    pub node_source: String,
    pub envoyfilters: Vec<PathBuf>,
    pub wasm_dir: PathBuf,
    pub chains: LoadedChains,
    /// The node's `PROXY_CONFIG.extraStatTags` then `--extra-stat-tags`, deduplicated.
    pub extra_stat_tags: Vec<String>,
}

/// Reads every input; `note` receives non-fatal remarks (printed on stderr).
pub fn prepare(args: &SetupArgs, note: &mut dyn FnMut(String)) -> Result<Setup, String> {
    let version =
        parse_proxy_version(&args.proxy_version).map_err(|e| format!("--proxy-version: {e}"))?;
    let (node, node_source) = match &args.node {
        Some(path) => {
            let (node, warnings) = load_node(path).map_err(|e| format!("--node {e}"))?;
            for w in warnings {
                note(format!("{}: {w}", path.display()));
            }
            (node, path.display().to_string())
        }
        None => (
            default_node(),
            "default (webapp sidecar in istioinaction)".to_string(),
        ),
    };
    let mut extra = extra_stat_tags(&node);
    for t in &args.extra_stat_tags {
        let t = t.trim();
        if !t.is_empty() && !extra.iter().any(|e| e == t) {
            extra.push(t.to_string());
        }
    }
    let envoyfilters = if args.envoyfilter.is_empty() {
        vec![default_envoyfilter_dir(&version)]
    } else {
        args.envoyfilter.clone()
    };
    let wasm_dir = args.wasm_dir.clone().unwrap_or_else(default_wasm_dir);
    let chains = load_chains(&envoyfilters, &version, &node)?;
    for n in &chains.notes {
        note(n.clone());
    }
    let wasm_filter_count = wasm_filters(&chains.chains).len();
    if wasm_filter_count == 0 {
        note(format!(
            "no Wasm filter applies to proxy version {} in {}: nothing will be measured",
            version.full,
            envoyfilters
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(Setup {
        version,
        node,
        node_source,
        envoyfilters,
        wasm_dir,
        chains,
        extra_stat_tags: extra,
    })
}
