//! `harness render`: IstioOperator metric schema (+ attributegen rules) → the per-version
//! EnvoyFilter set, via `envoyfilter_model::render`.

use std::io::Write;
use std::process::ExitCode;

use envoyfilter_model::render::{render, RenderInput, RenderOptions};

use super::args::RenderArgs;

pub fn run(args: &RenderArgs) -> ExitCode {
    let options = RenderOptions {
        generated_from: std::iter::once(&args.istio_operator)
            .chain(args.attributegen.as_ref())
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" + "),
        ..RenderOptions::default()
    };
    let input = match RenderInput::from_files(
        Some(&args.istio_operator),
        args.attributegen.as_deref(),
        options,
    ) {
        Ok(i) => i,
        Err(e) => return fail(&e.to_string()),
    };
    let set = match render(&input) {
        Ok(s) => s,
        Err(e) => return fail(&e.to_string()),
    };
    for w in &set.warnings {
        eprintln!("warning: {w}");
    }
    match &args.out {
        Some(dir) => {
            if let Err(e) = set.write_to(dir) {
                return fail(&format!("cannot write {}: {e}", dir.display()));
            }
            for f in &set.files {
                eprintln!("wrote {}", dir.join(&f.path).display());
            }
        }
        None => {
            let mut out = std::io::stdout().lock();
            for f in &set.files {
                // One multi-document YAML stream; the comment names each file.
                let _ = writeln!(out, "---\n# {}\n{}", f.path, f.contents.trim_end());
            }
        }
    }
    ExitCode::SUCCESS
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("harness render: {msg}");
    ExitCode::from(1)
}
