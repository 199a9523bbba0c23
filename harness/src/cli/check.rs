//! `harness check`: load the chains without traffic and report each plugin's configure result
//! and log lines. Exit 1 when a plugin was rejected (start/configure failed, module missing or
//! invalid), was skipped (fail_open), or logged at warning level or above while loading (the
//! stats plugin reports bad configuration as warnings and degrades instead of rejecting);
//! exit 0 otherwise.

use std::process::ExitCode;

use super::args::SetupArgs;
use super::load::{describe_failure, format_log, load_proxy, LoadFailure};
use super::setup::prepare;
use crate::abi::LogLevel;

pub fn run(args: &SetupArgs) -> ExitCode {
    let mut note = |n: String| eprintln!("note: {n}");
    let setup = match prepare(args, &mut note) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    println!(
        "proxy {} (node {}), EnvoyFilters: {}, modules: {}",
        setup.version.full,
        setup.node_source,
        setup
            .envoyfilters
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        setup.wasm_dir.display()
    );
    let report = match load_proxy(&setup, &mut note) {
        Ok((_, report)) => report,
        Err(LoadFailure::Setup(e)) => return fail(&e),
        Err(LoadFailure::Plugin(e)) => {
            println!("REJECTED {}", describe_failure(&e));
            return fail("a plugin rejected its configuration (Envoy would NACK the listener)");
        }
    };
    for (ctx, network, names) in &report.chains {
        let kind = if *network { "network" } else { "http" };
        println!("chain {ctx:?} {kind}: {}", names.join(" → "));
    }
    let mut config_errors = 0;
    for p in &report.plugins {
        let kind = if p.network { "network" } else { "http" };
        let status = match &p.skipped {
            Some(why) => format!("SKIPPED (fail_open): {why}"),
            None if p.shared_vm => "configured (shared VM)".to_string(),
            None => "configured".to_string(),
        };
        let plugin = if p.plugin_name.is_empty() {
            String::new()
        } else {
            format!("plugin {}, ", p.plugin_name)
        };
        println!(
            "{:?} {kind} {} ({plugin}root_id {:?}, vm_id {:?}): {status}",
            p.context, p.filter_name, p.root_id, p.vm_id
        );
        for l in &p.logs {
            println!("  {}", format_log(l));
            if l.level >= LogLevel::Warn {
                config_errors += 1;
            }
        }
        if p.skipped.is_some() {
            config_errors += 1;
        }
    }
    if config_errors > 0 {
        return fail(&format!(
            "{config_errors} configuration problem(s) logged at warning level or above while loading the plugins"
        ));
    }
    println!("OK: {} plugin(s) loaded", report.plugins.len());
    ExitCode::SUCCESS
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("harness check: error: {msg}");
    ExitCode::from(1)
}
