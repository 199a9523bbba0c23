//! Istio EnvoyFilter resources as istiod applies them to one proxy version, and the renderer that
//! writes this project's per-version EnvoyFilter set from a metric schema.
//!
//! Data flow: EnvoyFilter YAML → [`load`] (parse + validate like istiod / `istioctl analyze`) →
//! [`patch`] (Istio's default chains for that proxy minor and context, patched in istiod's
//! order) → [`chain::ChainSet`] → the harness loads each Wasm filter it names.
//!
//! ```no_run
//! use envoyfilter_model::{chains_for_paths, patch::{PatchOptions, Proxy}};
//! let dir = envoyfilter_model::shipped_dir_for("1.17.8").unwrap();
//! let patched = chains_for_paths(&[dir], &Proxy::new("1.17.8"), &PatchOptions::default()).unwrap();
//! for n in &patched.notes { eprintln!("{n}"); }
//! ```

pub mod chain;
pub mod defaults;
pub mod json;
pub mod load;
pub mod names;
pub mod patch;
pub mod render;
pub mod resource;
pub mod typed_config;
pub mod version;

use std::path::{Path, PathBuf};

/// The workspace's `envoyfilters/` folder (the shipped set).
pub fn shipped_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("envoyfilters")
}

/// `envoyfilters/1.N/` for a proxy version such as `1.17.8`; `None` outside 1.13–1.17.
pub fn shipped_dir_for(istio_version: &str) -> Option<PathBuf> {
    let minor = version::minor_of(istio_version)?;
    if !render::MINORS.contains(&minor) {
        return None;
    }
    Some(shipped_dir().join(format!("1.{minor}")))
}

/// Loading or patching failed.
#[derive(Debug, Clone)]
pub enum Error {
    Load(load::LoadError),
    Patch(patch::PatchError),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Load(e) => write!(f, "{e}"),
            Error::Patch(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {}

/// Loads EnvoyFilters from files/folders and builds the chains for `proxy`. Load warnings are
/// prepended to the notes.
pub fn chains_for_paths<P: AsRef<Path>>(
    paths: &[P],
    proxy: &patch::Proxy,
    opts: &patch::PatchOptions,
) -> Result<patch::Patched, Error> {
    let set = load::load_paths(paths, load::LoadOptions::default()).map_err(Error::Load)?;
    let mut patched = patch::build_chains(&set, proxy, opts).map_err(Error::Patch)?;
    let mut notes: Vec<String> = set.warnings.iter().map(|w| w.to_string()).collect();
    notes.append(&mut patched.notes);
    patched.notes = notes;
    Ok(patched)
}
