//! Builds both plugins for `wasm32-unknown-unknown` with the workspace's `wasm` profile, runs
//! `wasm-opt` when binaryen is installed, and puts the results in one documented place:
//! `target/plugins/{stats_plugin,attributegen_plugin}.wasm`.
//!
//! The nested cargo build uses its own target dir (`target/wasm-build`) so that it never waits on
//! the lock of an outer `cargo test` that is running us.

use crate::workspace;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The plugin crates and the `.wasm` file each produces.
pub const PLUGINS: [(&str, &str); 2] = [
    ("stats-plugin", "stats_plugin.wasm"),
    ("attributegen-plugin", "attributegen_plugin.wasm"),
];

/// Feature flags binaryen needs: `strip = true` removes the `target_features` section, and
/// Debian's binaryen 108 would otherwise reject bulk-memory and sign-ext instructions.
pub const WASM_OPT_FEATURES: [&str; 6] = [
    "--enable-bulk-memory",
    "--enable-sign-ext",
    "--enable-nontrapping-float-to-int",
    "--enable-mutable-globals",
    "--enable-multivalue",
    "--enable-reference-types",
];

/// One built module.
#[derive(Debug, Clone)]
pub struct Built {
    pub file: PathBuf,
    /// Bytes as cargo produced them.
    pub cargo_bytes: u64,
    /// Bytes after wasm-opt (equal to `cargo_bytes` when wasm-opt is absent).
    pub final_bytes: u64,
    pub optimised: bool,
}

/// The result of a build: the output directory and each module.
#[derive(Debug, Clone)]
pub struct BuildReport {
    pub dir: PathBuf,
    pub modules: Vec<Built>,
    pub cargo_time: Duration,
    pub wasm_opt_time: Duration,
}

/// `target/plugins`: where the built modules go.
pub fn output_dir() -> PathBuf {
    workspace::root().join("target").join("plugins")
}

/// Builds both plugins (incrementally: cheap when nothing changed). Returns what was built.
pub fn build() -> Result<BuildReport, String> {
    let root = workspace::root();
    let nested = root.join("target").join("wasm-build");
    let started = Instant::now();
    let mut cmd = Command::new(workspace::cargo());
    cmd.current_dir(&root)
        .args([
            "build",
            "--target",
            "wasm32-unknown-unknown",
            "--profile",
            "wasm",
        ])
        .env("CARGO_TARGET_DIR", &nested);
    for (krate, _) in PLUGINS {
        cmd.args(["-p", krate]);
    }
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run cargo for the wasm build: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build of the wasm plugins failed ({status})"));
    }
    let cargo_time = started.elapsed();

    let out = output_dir();
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let wasm_opt = find_wasm_opt();
    let opt_started = Instant::now();
    let mut modules = Vec::new();
    for (_, file) in PLUGINS {
        let built = nested
            .join("wasm32-unknown-unknown")
            .join("wasm")
            .join(file);
        let dest = out.join(file);
        let cargo_bytes = size(&built)?;
        // wasm-opt's output of this very build is there already: newer than the build and not
        // a plain copy of it (what a run without wasm-opt leaves, same size).
        let already_optimised =
            !is_newer(&built, &dest) && size(&dest).ok().is_some_and(|b| b != cargo_bytes);
        let optimised = match &wasm_opt {
            Some(_) if already_optimised => true,
            Some(bin) => run_wasm_opt(bin, &built, &dest)?,
            None => {
                std::fs::copy(&built, &dest)
                    .map_err(|e| format!("cannot copy {}: {e}", built.display()))?;
                false
            }
        };
        modules.push(Built {
            final_bytes: size(&dest)?,
            file: dest,
            cargo_bytes,
            optimised,
        });
    }
    Ok(BuildReport {
        dir: out,
        modules,
        cargo_time,
        wasm_opt_time: opt_started.elapsed(),
    })
}

/// Builds the plugins once per process and returns their directory. For tests: every test that
/// needs the `.wasm` files calls this first.
pub fn ensure_built() -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BUILT.get_or_init(|| build().map(|r| r.dir)) {
        Ok(dir) => dir.clone(),
        // A test cannot go on without its plugins; say exactly why.
        Err(e) => panic!("building the wasm plugins failed: {e}"),
    }
}

/// The path of one built plugin, building first if needed.
pub fn plugin_path(file: &str) -> PathBuf {
    ensure_built().join(file)
}

fn size(path: &Path) -> Result<u64, String> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn is_newer(src: &Path, dest: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (modified(src), modified(dest)) {
        (Some(s), Some(d)) => s > d,
        _ => true,
    }
}

fn find_wasm_opt() -> Option<PathBuf> {
    if std::env::var_os("NO_WASM_OPT").is_some() {
        return None;
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("wasm-opt"))
        .find(|candidate| candidate.is_file())
}

/// `wasm-opt -O3`: the size/speed trade-off crates.md measured (-Oz saves bytes but the wasm
/// profile already chose speed).
fn run_wasm_opt(bin: &Path, input: &Path, output: &Path) -> Result<bool, String> {
    let status = Command::new(bin)
        .arg("-O3")
        .args(WASM_OPT_FEATURES)
        .arg(input)
        .arg("-o")
        .arg(output)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if !status.success() {
        return Err(format!("wasm-opt failed on {} ({status})", input.display()));
    }
    Ok(true)
}
