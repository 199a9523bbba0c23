//! The root-context logic, host-independent: configure (parse, compile, count config errors)
//! and run the generators of one phase for one stream.

use crate::config::{Phase, PluginConfig};
use crate::generator::{self, Generator};
use crate::output::Output;
use proxy_attributes::expr::LeafReads;
use proxy_attributes::host::{AsDynHost, Host};
use std::cell::OnceCell;

/// Istio `plugin.h`: one counter `error_count` tagged `wasm_filter=attributegen`, `type=…`.
pub const CONFIG_ERROR_METRIC: &str = "wasm_filter.attributegen.type.config.error_count";
pub const RUNTIME_ERROR_METRIC: &str = "wasm_filter.attributegen.type.runtime.error_count";

/// Longest slice of a bad configuration echoed into the log.
const MAX_LOGGED_CONFIG: usize = 2048;

#[derive(Debug, Default)]
pub struct Plugin {
    generators: Vec<Generator>,
    config_errors: Option<u32>,
    runtime_errors: Option<u32>,
}

fn clip(config: &[u8]) -> String {
    let text = String::from_utf8_lossy(config);
    match text.char_indices().nth(MAX_LOGGED_CONFIG) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.into_owned(),
    }
}

impl Plugin {
    /// Istio `PluginRootContext::onConfigure`: defines the counters, parses and compiles.
    /// On bad JSON or a condition that does not compile it logs, counts a config error, drops
    /// **all** generators (the filter becomes a no-op) and still returns `true`, so Envoy keeps
    /// the listener (1.17 semantics, envoyfilter-spec §3.5).
    pub fn configure(&mut self, config: &[u8], out: &dyn Output) -> bool {
        // Defined here, never in `main!` (restricted on Envoy ≥ 1.24). Defining an existing name
        // again returns the same id, so a reconfigure keeps counting into the same stats.
        self.config_errors = out.define_counter(CONFIG_ERROR_METRIC);
        self.runtime_errors = out.define_counter(RUNTIME_ERROR_METRIC);
        self.generators.clear();

        let parsed = match PluginConfig::parse(config) {
            Ok(c) => c,
            Err(e) => {
                log::warn!(
                    "Config Error: cannot parse 'attributegen' plugin configuration JSON string [YAML is not supported]: {} ({e})",
                    clip(config)
                );
                self.count(self.config_errors, out);
                return true;
            }
        };
        match generator::compile(&parsed) {
            Ok(generators) => {
                for g in &generators {
                    log::debug!(
                        "attributegen: {} with {} match(es), phase {:?}",
                        g.output_attribute,
                        g.matches.len(),
                        g.phase
                    );
                }
                self.generators = generators;
            }
            Err(e) => {
                log::warn!("{e}");
                log::warn!("Config Error: attributegen plugin rejected invalid configuration");
                self.count(self.config_errors, out);
            }
        }
        true
    }

    pub fn generators(&self) -> &[Generator] {
        &self.generators
    }

    /// Whether any generator runs in `phase` (lets the glue skip work).
    pub fn has_phase(&self, phase: Phase) -> bool {
        self.generators.iter().any(|g| g.phase == phase)
    }

    /// Istio `attributeGen(phase)`: every generator of this phase, in config order; a result is
    /// written with `proxy_set_property([output_attribute], value)` (filter state
    /// `wasm.<output_attribute>`), so a later generator writing the same attribute wins. An
    /// evaluation failure counts one runtime error and writes nothing.
    pub fn run<H: Host + AsDynHost + ?Sized, O: Output + ?Sized>(
        &self,
        phase: Phase,
        host: &H,
        out: &O,
    ) {
        if !self.has_phase(phase) {
            return;
        }
        // One set of reads per callback, shared by the generators; the interpreter's resolver
        // only if a condition needs it.
        let reads = LeafReads::new(host);
        let attrs = OnceCell::new();
        for g in self.generators.iter().filter(|g| g.phase == phase) {
            match g.evaluate(&reads, &attrs) {
                Ok(Some(value)) => {
                    if !out.set_property(&[g.output_attribute.as_str()], value.as_bytes()) {
                        log::debug!("attributegen: cannot set {}", g.output_attribute);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    log::debug!("attributegen: {}: {e}", g.output_attribute);
                    self.count(self.runtime_errors, out);
                }
            }
        }
    }

    fn count<O: Output + ?Sized>(&self, id: Option<u32>, out: &O) {
        if let Some(id) = id {
            out.increment_counter(id, 1);
        }
    }
}
