//! The renderer: an IstioOperator metric schema (+ attributegen rules) → this project's
//! EnvoyFilters, one folder per proxy minor (1.13 … 1.17).
//!
//! Per minor it writes three resources into the root namespace:
//! * `stats-filter.yaml` — HTTP `istio.stats` INSERT_BEFORE `envoy.filters.http.router` in
//!   SIDECAR_INBOUND (`root_id`/`vm_id` `stats_inbound`), SIDECAR_OUTBOUND and GATEWAY
//!   (`stats_outbound`);
//! * `tcp-stats-filter.yaml` — NETWORK_FILTER `istio.stats` INSERT_BEFORE
//!   `envoy.filters.network.tcp_proxy` (`vm_id` `tcp_stats_inbound` / `tcp_stats_outbound`);
//! * `attributegen-filter.yaml` (when rules are given) — HTTP `istio.attributegen` INSERT_BEFORE
//!   subFilter `istio.stats` (`root_id` "", `vm_id` `attributegen`).
//!
//! The shape is Istio's own `telemetryv2_1.X.yaml` with `wasmEnabled: true`, except that the code
//! is our module in the pod's wasm directory and 1.17 keeps the Wasm filter (Istio 1.17 switched
//! to the native `stats.PluginConfig`). `configOverride` is merged like istioctl: a non-empty
//! override for a context replaces the default JSON and goes to that context's HTTP and TCP
//! filters.
//!
//! Priorities: the stats filters carry `priority: -1` on every minor. Istio added it in 1.14
//! (istio/istio#39011) so that relative patches (`INSERT_BEFORE istio.stats`) never depend on
//! creation order; the field exists in the 1.13 CRD too, so 1.13 gets it as well and escapes the
//! upgrade trap of istio/istio#30962. attributegen uses `priority: 10`: after the stats filters
//! (it is relative to them) and non-zero so `istioctl analyze` raises no IST0151.

pub mod input;
pub mod stats_config;
pub mod yaml;

use crate::chain::Context;
use crate::load::{load_str, LoadOptions, LoadedSet};
use crate::names;
use crate::version::pattern_for_minor;
pub use input::{parse_attributegen, parse_operator, AttributeGenInput, OperatorSchema};
use stats_config::{config_text, Protocol};
use std::fmt;
use std::path::Path;
use yaml::{map, s, Y};

/// The proxy minors the project ships EnvoyFilters for.
pub const MINORS: std::ops::RangeInclusive<u32> = 13..=17;

/// Renderer options.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// Where the modules are mounted in the istio-proxy container.
    pub wasm_dir: String,
    pub stats_module: String,
    pub attributegen_module: String,
    /// Namespace of the resources; default: the operator's `meshConfig.rootNamespace`, else
    /// `istio-system`.
    pub namespace: Option<String>,
    /// istiod revision; default: the operator's `spec.revision`. When set, names get a
    /// `-<revision>` suffix and the `istio.io/rev` label; when unset there is no label, so every
    /// istiod applies them.
    pub revision: Option<String>,
    /// Text for the header comment: which inputs produced the files.
    pub generated_from: String,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            wasm_dir: "/var/local/wasm".to_string(),
            stats_module: "stats_plugin.wasm".to_string(),
            attributegen_module: "attributegen_plugin.wasm".to_string(),
            namespace: None,
            revision: None,
            generated_from: String::new(),
        }
    }
}

/// Everything the renderer reads.
#[derive(Debug, Clone, Default)]
pub struct RenderInput {
    pub operator: OperatorSchema,
    pub attributegen: Option<AttributeGenInput>,
    pub options: RenderOptions,
}

impl RenderInput {
    /// Reads the inputs from files (either may be absent: no operator = Istio's defaults).
    pub fn from_files(
        operator: Option<&Path>,
        attributegen: Option<&Path>,
        options: RenderOptions,
    ) -> Result<Self, RenderError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p)
                .map_err(|e| RenderError(format!("{}: cannot read: {e}", p.display())))
        };
        let operator = match operator {
            Some(p) => parse_operator(&read(p)?, &p.display().to_string()).map_err(RenderError)?,
            None => OperatorSchema::default(),
        };
        let attributegen = match attributegen {
            Some(p) => {
                Some(parse_attributegen(&read(p)?, &p.display().to_string()).map_err(RenderError)?)
            }
            None => None,
        };
        Ok(Self {
            operator,
            attributegen,
            options,
        })
    }
}

/// One generated file, path relative to the output folder (`1.13/stats-filter.yaml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFile {
    pub path: String,
    pub contents: String,
}

#[derive(Debug, Clone, Default)]
pub struct RenderedSet {
    pub files: Vec<RenderedFile>,
    pub warnings: Vec<String>,
}

impl RenderedSet {
    /// Writes every file under `dir`.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<()> {
        for f in &self.files {
            let p = dir.join(&f.path);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(p, &f.contents)?;
        }
        Ok(())
    }

    /// Compares with the files under `dir`; one message per differing or missing file.
    pub fn diff_against(&self, dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for f in &self.files {
            let p = dir.join(&f.path);
            match std::fs::read_to_string(&p) {
                Ok(existing) if existing == f.contents => {}
                Ok(existing) => {
                    let line = existing
                        .lines()
                        .zip(f.contents.lines())
                        .position(|(a, b)| a != b)
                        .map(|i| i + 1)
                        .unwrap_or_else(|| {
                            existing.lines().count().min(f.contents.lines().count()) + 1
                        });
                    out.push(format!(
                        "{} differs from the renderer's output (first at line {line})",
                        p.display()
                    ));
                }
                Err(_) => out.push(format!("{} is missing", p.display())),
            }
        }
        out
    }
}

#[derive(Debug, Clone)]
pub struct RenderError(pub String);

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RenderError {}

const CONTEXTS: [Context; 3] = [
    Context::SidecarInbound,
    Context::SidecarOutbound,
    Context::Gateway,
];

fn context_str(c: Context) -> &'static str {
    match c {
        Context::SidecarInbound => "SIDECAR_INBOUND",
        Context::SidecarOutbound => "SIDECAR_OUTBOUND",
        Context::Gateway => "GATEWAY",
    }
}

/// Renders the per-minor EnvoyFilter set.
pub fn render(input: &RenderInput) -> Result<RenderedSet, RenderError> {
    let o = &input.options;
    let op = &input.operator;
    let namespace = o
        .namespace
        .clone()
        .or_else(|| op.root_namespace.clone())
        .unwrap_or_else(|| "istio-system".to_string());
    let revision = o.revision.clone().or_else(|| op.revision.clone());
    if !o.wasm_dir.starts_with('/') {
        return Err(RenderError(format!(
            "wasm directory {:?} must be an absolute path in the pod",
            o.wasm_dir
        )));
    }
    for m in [&o.stats_module, &o.attributegen_module] {
        if m.is_empty() || m.contains('/') {
            return Err(RenderError(format!(
                "module file name {m:?} must be a bare file name"
            )));
        }
    }
    let mut warnings = op.notes.clone();
    for c in CONTEXTS {
        if let Some(ov) = op.override_for(c) {
            warnings.extend(stats_config::override_warnings(c, ov, &op.extra_stat_tags));
        }
    }
    let wasm_dir = o.wasm_dir.trim_end_matches('/');
    let ctx = Common {
        namespace: &namespace,
        revision: revision.as_deref(),
        header: header(&o.generated_from),
    };
    let mut files = Vec::new();
    for minor in MINORS {
        let stats_file = format!("{wasm_dir}/{}", o.stats_module);
        let http = stats_filter(&ctx, minor, Protocol::Http, op, &stats_file);
        let tcp = stats_filter(&ctx, minor, Protocol::Tcp, op, &stats_file);
        files.push(RenderedFile {
            path: format!("1.{minor}/stats-filter.yaml"),
            contents: http,
        });
        files.push(RenderedFile {
            path: format!("1.{minor}/tcp-stats-filter.yaml"),
            contents: tcp,
        });
        if let Some(ag) = &input.attributegen {
            let file = format!("{wasm_dir}/{}", o.attributegen_module);
            files.push(RenderedFile {
                path: format!("1.{minor}/attributegen-filter.yaml"),
                contents: attributegen_filter(&ctx, minor, ag, &file),
            });
        }
    }
    Ok(RenderedSet { files, warnings })
}

struct Common<'a> {
    namespace: &'a str,
    revision: Option<&'a str>,
    header: String,
}

fn header(generated_from: &str) -> String {
    let mut h =
        String::from("# GENERATED by envoyfilter_model::render::render — do not edit by hand.\n");
    if !generated_from.is_empty() {
        for line in generated_from.lines() {
            h.push_str(&format!("# Inputs: {line}\n"));
        }
    }
    h.push_str(
        "# Regenerate: `harness render` (see docs/deploy.md), or for the shipped set\n#   UPDATE_ENVOYFILTERS=1 cargo test -p envoyfilter-model --test shipped\n",
    );
    h
}

fn metadata(c: &Common<'_>, base: &str) -> Y {
    let name = match c.revision {
        Some(r) => format!("{base}-{r}"),
        None => base.to_string(),
    };
    let mut labels = vec![("app.kubernetes.io/name", s("telemetry-wasm"))];
    if let Some(r) = c.revision {
        labels.push(("istio.io/rev", s(r)));
    }
    map(vec![
        ("name", Y::Str(name)),
        ("namespace", s(c.namespace)),
        ("labels", map(labels)),
    ])
}

fn listener_match(context: Context, minor: u32, protocol: Protocol, sub_filter: &str) -> Y {
    let filter = match protocol {
        Protocol::Http => map(vec![
            ("name", s(names::HCM)),
            ("subFilter", map(vec![("name", s(sub_filter))])),
        ]),
        Protocol::Tcp => map(vec![("name", s(names::TCP_PROXY))]),
    };
    map(vec![
        ("context", s(context_str(context))),
        (
            "proxy",
            map(vec![("proxyVersion", Y::Str(pattern_for_minor(minor)))]),
        ),
        (
            "listener",
            map(vec![("filterChain", map(vec![("filter", filter)]))]),
        ),
    ])
}

fn wasm_typed_config(
    protocol: Protocol,
    root_id: &str,
    vm_id: &str,
    filename: &str,
    configuration: String,
) -> Y {
    let type_url = match protocol {
        Protocol::Http => "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        Protocol::Tcp => "type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm",
    };
    map(vec![
        ("@type", s("type.googleapis.com/udpa.type.v1.TypedStruct")),
        ("type_url", s(type_url)),
        (
            "value",
            map(vec![(
                "config",
                map(vec![
                    ("root_id", s(root_id)),
                    (
                        "configuration",
                        map(vec![
                            (
                                "@type",
                                s("type.googleapis.com/google.protobuf.StringValue"),
                            ),
                            ("value", Y::Block(configuration)),
                        ]),
                    ),
                    (
                        "vm_config",
                        map(vec![
                            ("vm_id", s(vm_id)),
                            ("runtime", s("envoy.wasm.runtime.v8")),
                            ("allow_precompiled", Y::Bool(true)),
                            (
                                "code",
                                map(vec![("local", map(vec![("filename", s(filename))]))]),
                            ),
                        ]),
                    ),
                ]),
            )]),
        ),
    ])
}

fn document(c: &Common<'_>, note: &str, base: &str, priority: i64, patches: Vec<Y>) -> String {
    let doc = map(vec![
        ("apiVersion", s("networking.istio.io/v1alpha3")),
        ("kind", s("EnvoyFilter")),
        ("metadata", metadata(c, base)),
        (
            "spec",
            map(vec![
                ("priority", Y::Int(priority)),
                ("configPatches", Y::Seq(patches)),
            ]),
        ),
    ]);
    format!("{}{note}{}", c.header, yaml::to_string(&doc))
}

fn stats_filter(
    c: &Common<'_>,
    minor: u32,
    protocol: Protocol,
    op: &OperatorSchema,
    filename: &str,
) -> String {
    let mut patches = Vec::new();
    // Istio's order: HTTP outbound, inbound, gateway; TCP inbound, outbound, gateway.
    let order: [Context; 3] = match protocol {
        Protocol::Http => [
            Context::SidecarOutbound,
            Context::SidecarInbound,
            Context::Gateway,
        ],
        Protocol::Tcp => [
            Context::SidecarInbound,
            Context::SidecarOutbound,
            Context::Gateway,
        ],
    };
    for context in order {
        let role = if context == Context::SidecarInbound {
            "inbound"
        } else {
            "outbound"
        };
        let root_id = format!("stats_{role}");
        let vm_id = match protocol {
            Protocol::Http => format!("stats_{role}"),
            Protocol::Tcp => format!("tcp_stats_{role}"),
        };
        let configuration = config_text(minor, context, protocol, op.override_for(context));
        let (apply_to, anchor) = match protocol {
            Protocol::Http => ("HTTP_FILTER", names::ROUTER),
            Protocol::Tcp => ("NETWORK_FILTER", names::TCP_PROXY),
        };
        patches.push(map(vec![
            ("applyTo", s(apply_to)),
            ("match", listener_match(context, minor, protocol, anchor)),
            (
                "patch",
                map(vec![
                    ("operation", s("INSERT_BEFORE")),
                    (
                        "value",
                        map(vec![
                            ("name", s(names::STATS)),
                            (
                                "typed_config",
                                wasm_typed_config(
                                    protocol,
                                    &root_id,
                                    &vm_id,
                                    filename,
                                    configuration,
                                ),
                            ),
                        ]),
                    ),
                ]),
            ),
        ]));
    }
    let (base, note) = match protocol {
        Protocol::Http => (
            format!("wasm-stats-filter-1.{minor}"),
            "# HTTP istio.stats (Proxy-Wasm reimplementation) right before the router, for Istio 1.",
        ),
        Protocol::Tcp => (
            format!("wasm-tcp-stats-filter-1.{minor}"),
            "# TCP istio.stats (Proxy-Wasm reimplementation) right before tcp_proxy, for Istio 1.",
        ),
    };
    let note = format!(
        "{note}{minor} proxies.\n# Requires Istio installed with values.telemetry.v2.prometheus.enabled=false (no second istio.stats).\n"
    );
    document(c, &note, &base, -1, patches)
}

fn attributegen_filter(
    c: &Common<'_>,
    minor: u32,
    ag: &AttributeGenInput,
    filename: &str,
) -> String {
    let configuration = format!(
        "{}\n",
        serde_json::to_string_pretty(&serde_json::Value::Object(sorted(&ag.config)))
            .unwrap_or_default()
    );
    let mut patches = Vec::new();
    for context in CONTEXTS.iter().filter(|c| ag.contexts.contains(c)) {
        patches.push(map(vec![
            ("applyTo", s("HTTP_FILTER")),
            (
                "match",
                listener_match(*context, minor, Protocol::Http, names::STATS),
            ),
            (
                "patch",
                map(vec![
                    ("operation", s("INSERT_BEFORE")),
                    (
                        "value",
                        map(vec![
                            ("name", s(names::ATTRIBUTEGEN)),
                            (
                                "typed_config",
                                wasm_typed_config(
                                    Protocol::Http,
                                    "",
                                    "attributegen",
                                    filename,
                                    configuration.clone(),
                                ),
                            ),
                        ]),
                    ),
                ]),
            ),
        ]));
    }
    let note = format!(
        "# istio.attributegen right before istio.stats (its filter state must exist when stats reads it\n# in the access-log phase), for Istio 1.{minor} proxies. priority 10: applied after the stats filters.\n"
    );
    document(
        c,
        &note,
        &format!("wasm-attributegen-1.{minor}"),
        10,
        patches,
    )
}

/// Recursively key-sorted copy (independent of serde_json's map ordering feature).
fn sorted(
    m: &serde_json::Map<String, serde_json::Value>,
) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::Value;
    fn sort_value(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(sorted(m)),
            Value::Array(a) => Value::Array(a.iter().map(sort_value).collect()),
            other => other.clone(),
        }
    }
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    let mut out = serde_json::Map::new();
    for k in keys {
        if let Some(v) = m.get(k) {
            out.insert(k.clone(), sort_value(v));
        }
    }
    out
}

/// Istio's own rendered `stats-filter-1.X` / `tcp-stats-filter-1.X` (default values, the
/// control plane of the same minor): null-VM `envoy.wasm.stats` on 1.13–1.16, the native
/// `stats.PluginConfig` on 1.17; `priority: -1` from 1.14. Used to model an install that kept
/// Istio's telemetry on.
pub fn istio_builtin_stats(
    minor: u32,
    namespace: &str,
    revision: &str,
) -> Result<LoadedSet, String> {
    let rev_suffix = if revision.is_empty() || revision == "default" {
        String::new()
    } else {
        format!("-{revision}")
    };
    let mut text = String::new();
    for protocol in [Protocol::Http, Protocol::Tcp] {
        let order: [Context; 3] = match protocol {
            Protocol::Http => [
                Context::SidecarOutbound,
                Context::SidecarInbound,
                Context::Gateway,
            ],
            Protocol::Tcp => [
                Context::SidecarInbound,
                Context::SidecarOutbound,
                Context::Gateway,
            ],
        };
        let mut patches = Vec::new();
        for context in order {
            let role = if context == Context::SidecarInbound {
                "inbound"
            } else {
                "outbound"
            };
            let (apply_to, anchor, type_url) = match protocol {
                Protocol::Http => (
                    "HTTP_FILTER",
                    names::ROUTER,
                    "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                ),
                Protocol::Tcp => (
                    "NETWORK_FILTER",
                    names::TCP_PROXY,
                    "type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm",
                ),
            };
            let typed_config = if minor >= 17 {
                let value: serde_json::Value =
                    serde_json::from_str(stats_config::default_text(minor, context, protocol))
                        .map_err(|e| e.to_string())?;
                let entries = value
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| {
                                (
                                    k.clone(),
                                    if v.as_bool() == Some(true) {
                                        Y::Bool(true)
                                    } else {
                                        Y::Str(v.to_string())
                                    },
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                map(vec![
                    ("@type", s("type.googleapis.com/udpa.type.v1.TypedStruct")),
                    ("type_url", s("type.googleapis.com/stats.PluginConfig")),
                    ("value", Y::Map(entries)),
                ])
            } else {
                let vm_id = match protocol {
                    Protocol::Http => format!("stats_{role}"),
                    Protocol::Tcp => format!("tcp_stats_{role}"),
                };
                map(vec![
                    ("@type", s("type.googleapis.com/udpa.type.v1.TypedStruct")),
                    ("type_url", s(type_url)),
                    (
                        "value",
                        map(vec![(
                            "config",
                            map(vec![
                                ("root_id", Y::Str(format!("stats_{role}"))),
                                (
                                    "configuration",
                                    map(vec![
                                        (
                                            "@type",
                                            s("type.googleapis.com/google.protobuf.StringValue"),
                                        ),
                                        (
                                            "value",
                                            Y::Block(
                                                stats_config::default_text(
                                                    minor, context, protocol,
                                                )
                                                .to_string(),
                                            ),
                                        ),
                                    ]),
                                ),
                                (
                                    "vm_config",
                                    map(vec![
                                        ("vm_id", Y::Str(vm_id)),
                                        ("runtime", s("envoy.wasm.runtime.null")),
                                        (
                                            "code",
                                            map(vec![(
                                                "local",
                                                map(vec![("inline_string", s("envoy.wasm.stats"))]),
                                            )]),
                                        ),
                                    ]),
                                ),
                            ]),
                        )]),
                    ),
                ])
            };
            patches.push(map(vec![
                ("applyTo", s(apply_to)),
                ("match", listener_match(context, minor, protocol, anchor)),
                (
                    "patch",
                    map(vec![
                        ("operation", s("INSERT_BEFORE")),
                        (
                            "value",
                            map(vec![
                                ("name", s(names::STATS)),
                                ("typed_config", typed_config),
                            ]),
                        ),
                    ]),
                ),
            ]));
        }
        let base = match protocol {
            Protocol::Http => format!("stats-filter-1.{minor}{rev_suffix}"),
            Protocol::Tcp => format!("tcp-stats-filter-1.{minor}{rev_suffix}"),
        };
        let mut spec = Vec::new();
        if minor >= 14 {
            spec.push(("priority", Y::Int(-1)));
        }
        spec.push(("configPatches", Y::Seq(patches)));
        let doc = map(vec![
            ("apiVersion", s("networking.istio.io/v1alpha3")),
            ("kind", s("EnvoyFilter")),
            (
                "metadata",
                map(vec![
                    ("name", Y::Str(base)),
                    ("namespace", s(namespace)),
                    (
                        "labels",
                        map(vec![(
                            "istio.io/rev",
                            s(if revision.is_empty() {
                                "default"
                            } else {
                                revision
                            }),
                        )]),
                    ),
                ]),
            ),
            ("spec", map(spec)),
        ]);
        text.push_str("---\n");
        text.push_str(&yaml::to_string(&doc));
    }
    load_str(
        &text,
        &format!("istio-builtin-stats-1.{minor}"),
        LoadOptions::default(),
    )
    .map_err(|e| e.to_string())
}
