// Shared helpers for the cli_* tests (`mod cli_common;`).
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The built plugins (`target/plugins`), built once per test process.
pub fn wasm_dir() -> PathBuf {
    xtask::plugins::ensure_built()
}

/// Runs the real `harness` binary from the workspace root.
pub fn harness(args: &[&str], stdin: Option<&[u8]>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_harness"));
    cmd.current_dir(root())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = cmd.spawn().expect("spawn harness");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `harness replay --wasm-dir <built> ARGS…`
pub fn replay(args: &[&str]) -> Run {
    let dir = wasm_dir();
    let mut all = vec!["replay", "--wasm-dir", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    harness(&all, None)
}

pub fn expected(name: &str) -> String {
    std::fs::read_to_string(root().join("testdata/expected").join(name)).unwrap()
}

/// The families of `text` (from `# TYPE name` to the next `# TYPE`) whose names are in `names`.
pub fn families(text: &str, names: &[&str]) -> String {
    let mut out = String::new();
    let mut keep = false;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            keep = names.contains(&rest.split(' ').next().unwrap_or(""));
        }
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The `# TYPE` family names of an expected file.
pub fn family_names(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect()
}

/// A fresh temporary folder under target/.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = root()
        .join("target")
        .join("cli-tests")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The frozen Istio-default 1.17 EnvoyFilters the hand-derived expectations are written for.
pub const ISTIO_DEFAULT_1_17: &str = "testdata/traffic/cli/istio-default-1.17";

/// Equality of two texts, reporting the first differing line instead of both blobs.
pub fn assert_text_eq(got: &str, want: &str) {
    if got == want {
        return;
    }
    let (g, w): (Vec<&str>, Vec<&str>) = (got.lines().collect(), want.lines().collect());
    let i = g
        .iter()
        .zip(&w)
        .position(|(a, b)| a != b)
        .unwrap_or(g.len().min(w.len()));
    panic!(
        "texts differ at line {} (got {} lines, want {}):\n got: {:?}\nwant: {:?}",
        i + 1,
        g.len(),
        w.len(),
        g.get(i),
        w.get(i)
    );
}
