//! Render inputs: the IstioOperator's metric schema and the attributegen rules.

use crate::chain::Context;
use crate::json::yaml_to_json;
use serde_json::{Map, Value};

/// What the renderer takes from an IstioOperator (`install.istio.io/v1alpha1`).
#[derive(Debug, Clone, Default)]
pub struct OperatorSchema {
    /// `spec.values.telemetry.v2.prometheus.configOverride.{inboundSidecar,outboundSidecar,gateway}`.
    pub inbound_sidecar: Option<Map<String, Value>>,
    pub outbound_sidecar: Option<Map<String, Value>>,
    pub gateway: Option<Map<String, Value>>,
    /// `spec.meshConfig.defaultConfig.extraStatTags`.
    pub extra_stat_tags: Vec<String>,
    /// `spec.meshConfig.rootNamespace`.
    pub root_namespace: Option<String>,
    /// `spec.revision`.
    pub revision: Option<String>,
    /// Findings while reading (e.g. `prometheus.enabled` left on).
    pub notes: Vec<String>,
}

impl OperatorSchema {
    pub fn override_for(&self, c: Context) -> Option<&Map<String, Value>> {
        match c {
            Context::SidecarInbound => self.inbound_sidecar.as_ref(),
            Context::SidecarOutbound => self.outbound_sidecar.as_ref(),
            Context::Gateway => self.gateway.as_ref(),
        }
    }
}

/// Parses an IstioOperator YAML text (the first document of kind IstioOperator).
pub fn parse_operator(text: &str, source: &str) -> Result<OperatorSchema, String> {
    use serde::Deserialize;
    for (i, de) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let y =
            serde_yaml_ng::Value::deserialize(de).map_err(|e| format!("{source}: YAML: {e}"))?;
        let v = yaml_to_json(y, "").map_err(|e| format!("{source}#{}: {e}", i + 1))?;
        if v.get("kind").and_then(Value::as_str) == Some("IstioOperator") {
            return schema_from(&v, source);
        }
    }
    Err(format!("{source}: no kind: IstioOperator document"))
}

fn schema_from(v: &Value, source: &str) -> Result<OperatorSchema, String> {
    let mut s = OperatorSchema::default();
    let prom = v.pointer("/spec/values/telemetry/v2/prometheus");
    if let Some(co) = prom.and_then(|p| p.get("configOverride")) {
        let co = co.as_object().ok_or_else(|| {
            format!("{source}: spec.values.telemetry.v2.prometheus.configOverride must be a map")
        })?;
        for k in co.keys() {
            if !matches!(k.as_str(), "inboundSidecar" | "outboundSidecar" | "gateway") {
                return Err(format!(
                    "{source}: spec.values.telemetry.v2.prometheus.configOverride.{k}: unknown key (inboundSidecar, outboundSidecar, gateway)"
                ));
            }
        }
        let get = |k: &str| -> Result<Option<Map<String, Value>>, String> {
            match co.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Object(m)) => Ok(Some(m.clone())),
                Some(_) => Err(format!(
                    "{source}: spec.values.telemetry.v2.prometheus.configOverride.{k} must be a map"
                )),
            }
        };
        s.inbound_sidecar = get("inboundSidecar")?;
        s.outbound_sidecar = get("outboundSidecar")?;
        s.gateway = get("gateway")?;
    }
    if prom.and_then(|p| p.get("enabled")) != Some(&Value::Bool(false)) {
        s.notes.push(format!(
            "{source}: values.telemetry.v2.prometheus.enabled is not false: Istio will also install its own stats-filter-1.X, and every request is counted twice. Set it to false (docs/deploy.md)"
        ));
    }
    if let Some(tags) = v.pointer("/spec/meshConfig/defaultConfig/extraStatTags") {
        let tags = tags.as_array().ok_or_else(|| {
            format!("{source}: spec.meshConfig.defaultConfig.extraStatTags must be a list")
        })?;
        s.extra_stat_tags = tags
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
    }
    s.root_namespace = v
        .pointer("/spec/meshConfig/rootNamespace")
        .and_then(Value::as_str)
        .map(str::to_string);
    s.revision = v
        .pointer("/spec/revision")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
        .map(str::to_string);
    Ok(s)
}

/// attributegen rules and the contexts to run them in.
#[derive(Debug, Clone)]
pub struct AttributeGenInput {
    pub contexts: Vec<Context>,
    /// The plugin configuration (`{"attributes": [...]}`), passed as JSON text.
    pub config: Map<String, Value>,
}

/// Parses `{contexts: [SIDECAR_OUTBOUND, …], attributes: [...]}` (YAML or JSON). Without
/// `contexts` the rules run in all three.
pub fn parse_attributegen(text: &str, source: &str) -> Result<AttributeGenInput, String> {
    let y: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(text).map_err(|e| format!("{source}: YAML: {e}"))?;
    let v = yaml_to_json(y, "").map_err(|e| format!("{source}: {e}"))?;
    if v.get("kind").and_then(Value::as_str) == Some("EnvoyFilter") {
        return from_envoy_filter(text, source);
    }
    let mut obj = match v {
        Value::Object(m) => m,
        _ => return Err(format!("{source}: must be a map with `attributes`")),
    };
    let contexts = match obj.remove("contexts") {
        None => vec![
            Context::SidecarInbound,
            Context::SidecarOutbound,
            Context::Gateway,
        ],
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for (i, c) in items.iter().enumerate() {
                out.push(match c.as_str() {
                    Some("SIDECAR_INBOUND") => Context::SidecarInbound,
                    Some("SIDECAR_OUTBOUND") => Context::SidecarOutbound,
                    Some("GATEWAY") => Context::Gateway,
                    _ => {
                        return Err(format!(
                            "{source}: contexts[{i}]: SIDECAR_INBOUND, SIDECAR_OUTBOUND or GATEWAY"
                        ))
                    }
                });
            }
            if out.is_empty() {
                return Err(format!("{source}: contexts: empty"));
            }
            out
        }
        Some(_) => return Err(format!("{source}: contexts must be a list")),
    };
    match obj.get("attributes") {
        Some(Value::Array(attrs)) => {
            for (i, a) in attrs.iter().enumerate() {
                let out = a
                    .get("output_attribute")
                    .or_else(|| a.get("outputAttribute"))
                    .and_then(Value::as_str);
                match out {
                    Some(name) if !name.is_empty() => {
                        if name.contains('.') {
                            return Err(format!(
                                "{source}: attributes[{i}].output_attribute {name:?}: a name with '.' cannot be read back as a bare CEL identifier (config.proto: SHOULD NOT contain '.'); use e.g. istio_operationId"
                            ));
                        }
                    }
                    _ => {
                        return Err(format!(
                            "{source}: attributes[{i}].output_attribute is required"
                        ))
                    }
                }
                if !a.get("match").is_some_and(Value::is_array) {
                    return Err(format!("{source}: attributes[{i}].match must be a list"));
                }
            }
        }
        _ => return Err(format!("{source}: attributes must be a list")),
    }
    Ok(AttributeGenInput {
        contexts,
        config: obj,
    })
}

/// An existing attributegen EnvoyFilter (e.g. the book's `attribute-gen-example`): its rules (the
/// JSON text of the `istio.attributegen` Wasm configuration) and the contexts of its patches.
fn from_envoy_filter(text: &str, source: &str) -> Result<AttributeGenInput, String> {
    use crate::chain::FilterKind;
    use crate::resource::PatchContext;
    use crate::typed_config::{decode, ChainKind};
    let set = crate::load::load_str(text, source, crate::load::LoadOptions::default())
        .map_err(|e| e.to_string())?;
    let mut contexts = Vec::new();
    let mut config: Option<Map<String, Value>> = None;
    for f in &set.filters {
        for p in &f.patches {
            if p.value_name() != Some(crate::names::ATTRIBUTEGEN) {
                continue;
            }
            let at = format!("{} configPatches[{}]", f.key(), p.index);
            let tc = p
                .value
                .as_ref()
                .and_then(|v| v.get("typed_config"))
                .ok_or_else(|| format!("{at}: no typed_config"))?;
            let d = decode(tc, "typed_config", ChainKind::Http)
                .map_err(|e| format!("{at}: {}: {}", e.path, e.message))?;
            let FilterKind::Wasm(w) = d.kind else {
                return Err(format!("{at}: istio.attributegen is not a Wasm filter"));
            };
            let cfg: Map<String, Value> = serde_json::from_slice(&w.configuration)
                .map_err(|e| format!("{at}: configuration is not a JSON object: {e}"))?;
            if config.as_ref().is_some_and(|c| *c != cfg) {
                return Err(format!("{at}: a different configuration than the previous patch; render them separately"));
            }
            config = Some(cfg);
            let cs: &[Context] = match p.context {
                PatchContext::Any => &[
                    Context::SidecarInbound,
                    Context::SidecarOutbound,
                    Context::Gateway,
                ],
                PatchContext::SidecarInbound => &[Context::SidecarInbound],
                PatchContext::SidecarOutbound => &[Context::SidecarOutbound],
                PatchContext::Gateway => &[Context::Gateway],
            };
            for c in cs {
                if !contexts.contains(c) {
                    contexts.push(*c);
                }
            }
        }
    }
    let config = config
        .ok_or_else(|| format!("{source}: no patch adds a filter named istio.attributegen"))?;
    // Validate the rules through the plain form.
    let checked = parse_attributegen(&Value::Object(config).to_string(), source)?;
    Ok(AttributeGenInput {
        contexts,
        config: checked.config,
    })
}
