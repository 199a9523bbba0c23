//! `cargo xtask <command>`:
//!
//! * `wasm`  — build both plugins to `target/plugins/` (wasm-opt when installed) and print sizes.
//! * `demo`  — the README's main job: build the plugins, then replay the bundled book-scenario
//!   traffic through the shipped 1.17 EnvoyFilters and print the Prometheus series.
//! * `test`  — every test: the workspace natively, then the plugins' pure logic inside wasm32
//!   (wasm-bindgen-test under node) when `wasm-bindgen-test-runner` is installed.

use std::process::{Command, ExitCode};
use xtask::{plugins, workspace};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("wasm") => wasm(&mut std::io::stdout()),
        Some("demo") => demo(&args[1..]),
        Some("test") => test(&args[1..]),
        _ => {
            eprintln!("usage: cargo xtask <wasm | demo [replay args…] | test [cargo test args…]>");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Builds the plugins and writes the size table to `out` (stderr for the demo, whose stdout is
/// the Prometheus text).
fn wasm(out: &mut dyn std::io::Write) -> Result<(), String> {
    let report = plugins::build()?;
    let _ = writeln!(out, "plugins in {}", report.dir.display());
    for m in &report.modules {
        let name = m.file.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        if m.optimised {
            let _ = writeln!(
                out,
                "  {name:<26} {:>9} bytes ({:>9} before wasm-opt)",
                m.final_bytes, m.cargo_bytes
            );
        } else {
            let _ = writeln!(
                out,
                "  {name:<26} {:>9} bytes (wasm-opt not installed: apt-get install binaryen)",
                m.final_bytes
            );
        }
    }
    let _ = writeln!(
        out,
        "  cargo {:.1} s, wasm-opt {:.1} s",
        report.cargo_time.as_secs_f64(),
        report.wasm_opt_time.as_secs_f64()
    );
    Ok(())
}

fn demo(extra: &[String]) -> Result<(), String> {
    wasm(&mut std::io::stderr())?;
    let root = workspace::root();
    let mut cmd = Command::new(workspace::cargo());
    cmd.current_dir(&root)
        .args(["run", "--quiet", "--package", "harness", "--", "replay"])
        .args(["--proxy-version", "1.17.8"])
        .args(["--node", "testdata/nodes/webapp.yaml"]);
    if extra.is_empty() {
        cmd.arg("testdata/traffic/demo.jsonl");
    } else {
        cmd.args(extra);
    }
    run(cmd, "the demo replay")
}

fn test(extra: &[String]) -> Result<(), String> {
    let root = workspace::root();
    let mut native = Command::new(workspace::cargo());
    native
        .current_dir(&root)
        .args(["test", "--workspace"])
        .args(extra);
    run(native, "the native test suite")?;

    // The pure logic of the shared crate and both plugins again, compiled to wasm32 and run under
    // node: proves the wasm build computes what the native build does.
    if !on_path("wasm-bindgen-test-runner") {
        println!(
            "xtask: skipping the wasm32 tests: wasm-bindgen-test-runner is not installed \
             (.ci/run installs it: cargo install wasm-bindgen-cli --version <Cargo.lock's wasm-bindgen>)"
        );
        return Ok(());
    }
    // stats-plugin's ABI glue sits behind its default `abi` feature: without it the test binary
    // has no `env.proxy_*` imports, which node could not satisfy.
    for (package, flags) in [
        ("proxy-attributes", &[][..]),
        ("attributegen-plugin", &[][..]),
        ("stats-plugin", &["--no-default-features"][..]),
    ] {
        let mut wasm = Command::new(workspace::cargo());
        wasm.current_dir(&root)
            .args(["test", "--target", "wasm32-unknown-unknown", "-p", package])
            .args(flags);
        run(wasm, &format!("the wasm32 tests of {package}"))?;
    }
    Ok(())
}

fn run(mut cmd: Command, what: &str) -> Result<(), String> {
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start {what}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false)
}
