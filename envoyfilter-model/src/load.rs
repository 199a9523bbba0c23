//! Reading EnvoyFilters from YAML text, files and folders (multi-document; `kind: List` from
//! `kubectl get -o yaml` is expanded). Other kinds (WasmPlugin, ConfigMap, …) are skipped with a
//! note, never silently.

use crate::json::yaml_to_json;
use crate::resource::{parse_envoy_filter, Diagnostic, EnvoyFilter};
use serde::Deserialize;
use serde_json::Value;
use std::fmt;
use std::path::{Path, PathBuf};

/// Parsed resources plus everything worth telling the user.
#[derive(Debug, Clone, Default)]
pub struct LoadedSet {
    pub filters: Vec<EnvoyFilter>,
    /// Non-fatal findings: skipped kinds, deprecated names, IST0151/IST0155, Struct configs …
    pub warnings: Vec<Diagnostic>,
}

/// Every error found (loading continues past the first one so all are reported at once).
#[derive(Debug, Clone)]
pub struct LoadError {
    pub errors: Vec<Diagnostic>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}

/// Options for reading.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Namespace for resources without `metadata.namespace`.
    pub default_namespace: String,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            default_namespace: "default".to_string(),
        }
    }
}

/// Incremental loader: feed it texts or paths, then [`Loader::finish`].
#[derive(Debug, Default)]
pub struct Loader {
    opts: LoadOptions,
    set: LoadedSet,
    errors: Vec<Diagnostic>,
}

impl Loader {
    pub fn new(opts: LoadOptions) -> Self {
        Self {
            opts,
            ..Default::default()
        }
    }

    /// Adds every document of a YAML (or JSON) text; `source` names it in messages.
    pub fn add_str(&mut self, text: &str, source: &str) {
        for (doc_index, de) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
            let doc_source = format!("{source}#{}", doc_index + 1);
            let yaml = match serde_yaml_ng::Value::deserialize(de) {
                Ok(v) => v,
                Err(e) => {
                    self.errors
                        .push(diag(&doc_source, "", format!("YAML: {e}")));
                    // A syntax error ends the stream: the parser cannot resync.
                    return;
                }
            };
            let json = match yaml_to_json(yaml, "") {
                Ok(v) => v,
                Err(e) => {
                    self.errors.push(diag(&doc_source, "", e));
                    continue;
                }
            };
            self.add_object(&json, &doc_source);
        }
    }

    fn add_object(&mut self, obj: &Value, source: &str) {
        if obj.is_null() {
            return; // an empty document between `---` separators
        }
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
        match kind {
            "EnvoyFilter" => {
                let parsed = parse_envoy_filter(
                    obj,
                    source,
                    self.set.filters.len(),
                    &self.opts.default_namespace,
                );
                self.errors.extend(parsed.errors);
                self.set.warnings.extend(parsed.warnings);
                if let Some(f) = parsed.filter {
                    self.set.filters.push(f);
                }
            }
            "List" | "EnvoyFilterList" => {
                if let Some(items) = obj.get("items").and_then(Value::as_array) {
                    for (i, item) in items.iter().enumerate() {
                        self.add_object(item, &format!("{source}.items[{i}]"));
                    }
                }
            }
            "" => self
                .errors
                .push(diag(source, "kind", "document has no kind")),
            other => {
                let name = obj
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("<unnamed>");
                self.set.warnings.push(diag(
                    source,
                    "kind",
                    format!("skipped {other} {name:?}: only EnvoyFilter resources shape the filter chains here"),
                ));
            }
        }
    }

    /// Adds a file, or every `.yaml`/`.yml`/`.json` file under a folder (sorted by path, recursively).
    pub fn add_path(&mut self, path: &Path) {
        if path.is_dir() {
            let mut files = Vec::new();
            collect_yaml_files(path, &mut files, &mut self.errors);
            files.sort();
            for f in files {
                self.add_file(&f);
            }
        } else {
            self.add_file(path);
        }
    }

    fn add_file(&mut self, path: &Path) {
        match std::fs::read_to_string(path) {
            Ok(text) => self.add_str(&text, &path.display().to_string()),
            Err(e) => self.errors.push(diag(
                &path.display().to_string(),
                "",
                format!("cannot read: {e}"),
            )),
        }
    }

    pub fn finish(mut self) -> Result<LoadedSet, LoadError> {
        if self.errors.is_empty() {
            analyze_relative_with_proxy_version(&mut self.set);
            Ok(self.set)
        } else {
            Err(LoadError {
                errors: self.errors,
            })
        }
    }
}

fn collect_yaml_files(dir: &Path, out: &mut Vec<PathBuf>, errors: &mut Vec<Diagnostic>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(diag(
                &dir.display().to_string(),
                "",
                format!("cannot list: {e}"),
            ));
            return;
        }
    };
    for entry in entries.flatten() {
        let p = entry.path();
        if p.is_dir() {
            collect_yaml_files(&p, out, errors);
        } else if matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("yaml") | Some("yml") | Some("json")
        ) {
            out.push(p);
        }
    }
}

fn diag(source: &str, path: &str, message: impl Into<String>) -> Diagnostic {
    Diagnostic {
        resource: source.to_string(),
        path: path.to_string(),
        message: message.into(),
        source: source.to_string(),
    }
}

/// IST0155 (`pkg/config/analysis/analyzers/envoyfilter`, 1.15+): a relative operation with
/// priority 0 on a filter name that an earlier patch with a proxyVersion also targets.
fn analyze_relative_with_proxy_version(set: &mut LoadedSet) {
    let mut seen_with_version: Vec<String> = Vec::new();
    let mut extra = Vec::new();
    for f in &set.filters {
        for p in &f.patches {
            let instance = p
                .value_name()
                .map(str::to_string)
                .or_else(|| p.filter_match().map(|m| m.name.clone()))
                .unwrap_or_default();
            if p.operation.is_relative() && f.priority == 0 && seen_with_version.contains(&instance)
            {
                extra.push(Diagnostic {
                    resource: f.key(),
                    path: format!("configPatches[{}]", p.index),
                    message: format!(
                        "IST0155: relative operation on {instance:?}, which another patch with a proxyVersion also targets; set spec.priority"
                    ),
                    source: f.source.clone(),
                });
            }
            if !p.proxy_version.is_empty() {
                seen_with_version.push(instance);
            }
        }
    }
    set.warnings.extend(extra);
}

/// Reads EnvoyFilters from files and folders.
pub fn load_paths<P: AsRef<Path>>(paths: &[P], opts: LoadOptions) -> Result<LoadedSet, LoadError> {
    let mut loader = Loader::new(opts);
    for p in paths {
        loader.add_path(p.as_ref());
    }
    loader.finish()
}

/// Reads EnvoyFilters from one YAML text.
pub fn load_str(text: &str, source: &str, opts: LoadOptions) -> Result<LoadedSet, LoadError> {
    let mut loader = Loader::new(opts);
    loader.add_str(text, source);
    loader.finish()
}
