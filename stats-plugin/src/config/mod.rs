//! The plugin configuration as Istio 1.13–1.16 shipped it (JSON text in a `StringValue`), plus
//! the lowerCamel names of the 1.17 `stats.PluginConfig` JSON mapping.
//!
//! Parsing mirrors Istio's `JsonGetField` / `JsonArrayIterate` helpers
//! (`extensions/common/wasm/json_util.cc`): a field of the wrong type silently takes its default,
//! and an array walk stops at the first bad element while keeping what came before
//! (stats-spec §1.4). Nothing here compiles CEL: that happens in [`crate::schema`], where a
//! failed `definitions[].value` also stops the walk.

mod duration;
mod metadata_mode;

pub use duration::parse_duration_ms;
pub use metadata_mode::MetadataMode;

use serde_json::{Map, Value};

/// Istio's defaults (`extensions/stats/plugin.h:54-55`, `plugin.cc:44`).
pub const DEFAULT_FIELD_SEPARATOR: &str = ";.;";
pub const DEFAULT_VALUE_SEPARATOR: &str = "=.=";
pub const DEFAULT_TCP_REPORTING_MS: u32 = 15_000;

/// `definitions[].type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefinitionType {
    Counter,
    Gauge,
    Histogram,
}

/// One `definitions[]` element that passed the name/value checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    pub name: String,
    pub value: String,
    pub kind: DefinitionType,
}

/// One `metrics[]` element. Istio applies an element factory by factory and can fail half-way
/// (a non-string `tags_to_remove` item or dimension value), so the valid prefixes are kept and
/// the failure point is recorded; [`crate::schema`] replays the exact partial application.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricOverride {
    /// Metric name without `istio_`; `""` (or a non-string) means every metric.
    pub name: String,
    pub drop: bool,
    /// The string items of `tags_to_remove` before the first bad one.
    pub tags_to_remove: Vec<String>,
    /// `tags_to_remove` is not an array or has a non-string item after `tags_to_remove`.
    pub tags_to_remove_error: bool,
    /// `dimensions`, sorted byte-wise by tag name, up to (excluding) the first non-string value.
    pub dimensions: Vec<(String, String)>,
    /// A dimension value (in sorted order) after `dimensions` is not a string.
    pub dimensions_error: bool,
    /// `dimensions` is present but not an object: the element fails before touching anything.
    pub dimensions_not_object: bool,
}

impl MetricOverride {
    /// Whether processing of `metrics[]` stops at this element: immediately for
    /// `dimensions_not_object`, otherwise once it reaches a metric it does not drop.
    pub fn is_failing(&self) -> bool {
        self.tags_to_remove_error || self.dimensions_error || self.dimensions_not_object
    }
}

/// The parsed configuration. `metrics` holds every element (see [`MetricOverride::is_failing`]);
/// `definitions` holds those before the first element without a name or value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginConfig {
    pub field_separator: String,
    pub value_separator: String,
    pub disable_host_header_fallback: bool,
    pub tcp_reporting_duration_ms: u32,
    pub metrics: Vec<MetricOverride>,
    pub definitions: Vec<Definition>,
    /// Istio 1.16's `metadata_mode` (waypoint proxies); see [`MetadataMode`].
    pub metadata_mode: MetadataMode,
}

impl Default for PluginConfig {
    fn default() -> Self {
        PluginConfig {
            field_separator: DEFAULT_FIELD_SEPARATOR.to_string(),
            value_separator: DEFAULT_VALUE_SEPARATOR.to_string(),
            disable_host_header_fallback: false,
            tcp_reporting_duration_ms: DEFAULT_TCP_REPORTING_MS,
            metrics: Vec::new(),
            definitions: Vec::new(),
            metadata_mode: MetadataMode::default(),
        }
    }
}

/// Why the whole configuration was refused (Istio: `configure()` returns false and no istio
/// metric is ever reported, stats-spec §1.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    NotJson(String),
    NotAnObject,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::NotJson(e) => write!(f, "cannot parse plugin configuration JSON: {e}"),
            ConfigError::NotAnObject => {
                write!(f, "plugin configuration must be a JSON object")
            }
        }
    }
}

/// The parse result plus the warnings to log (each names the JSON path).
#[derive(Debug, Clone)]
pub struct Parsed {
    pub config: PluginConfig,
    pub warnings: Vec<String>,
}

/// Looks a field up by its Istio snake_case name, then by its proto3-JSON lowerCamel name.
fn field<'a>(obj: &'a Map<String, Value>, snake: &str, camel: &str) -> Option<&'a Value> {
    obj.get(snake).or_else(|| obj.get(camel))
}

/// `JsonValueAs<bool>`: a JSON bool or the strings "true"/"false".
fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" => Some(true),
        Value::String(s) if s == "false" => Some(false),
        _ => None,
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parses the plugin configuration bytes.
pub fn parse(bytes: &[u8]) -> Result<Parsed, ConfigError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| ConfigError::NotJson(e.to_string()))?;
    let Value::Object(obj) = value else {
        return Err(ConfigError::NotAnObject);
    };
    let mut warnings = Vec::new();
    let mut config = PluginConfig::default();

    let string_field =
        |snake: &str, camel: &str, target: &mut String, w: &mut Vec<String>| match field(
            &obj, snake, camel,
        ) {
            Some(Value::String(s)) => *target = s.clone(),
            Some(other) => w.push(format!(
                "{snake}: expected a string, got {}; using the default",
                type_name(other)
            )),
            None => {}
        };
    string_field(
        "field_separator",
        "fieldSeparator",
        &mut config.field_separator,
        &mut warnings,
    );
    string_field(
        "value_separator",
        "valueSeparator",
        &mut config.value_separator,
        &mut warnings,
    );

    if let Some(v) = field(
        &obj,
        "disable_host_header_fallback",
        "disableHostHeaderFallback",
    ) {
        match as_bool(v) {
            Some(b) => config.disable_host_header_fallback = b,
            None => warnings.push(format!(
                "disable_host_header_fallback: expected a bool or \"true\"/\"false\", got {}; using false",
                type_name(v)
            )),
        }
    }

    if let Some(v) = field(&obj, "tcp_reporting_duration", "tcpReportingDuration") {
        match v {
            Value::String(s) => match parse_duration_ms(s) {
                Some(ms) => config.tcp_reporting_duration_ms = ms,
                None => warnings.push(format!(
                    "tcp_reporting_duration: cannot parse {s:?} as a duration; using 15s"
                )),
            },
            other => warnings.push(format!(
                "tcp_reporting_duration: expected a duration string, got {}; using 15s",
                type_name(other)
            )),
        }
    }

    if let Some(v) = obj.get("metadata_mode") {
        config.metadata_mode = MetadataMode::parse(v, &mut warnings);
    }

    parse_definitions(&obj, &mut config, &mut warnings);
    parse_metrics(&obj, &mut config, &mut warnings);
    Ok(Parsed { config, warnings })
}

fn parse_definitions(obj: &Map<String, Value>, config: &mut PluginConfig, w: &mut Vec<String>) {
    let Some(defs) = obj.get("definitions") else {
        return;
    };
    let Value::Array(defs) = defs else {
        w.push(format!(
            "definitions: expected an array, got {}; ignored",
            type_name(defs)
        ));
        return;
    };
    for (i, def) in defs.iter().enumerate() {
        let get_str = |key: &str| match def.get(key) {
            Some(Value::String(s)) => s.clone(),
            _ => String::new(),
        };
        let name = get_str("name");
        let value = get_str("value");
        if name.is_empty() || value.is_empty() {
            w.push(format!(
                "definitions[{i}]: empty name or value; this and the following definitions are ignored"
            ));
            return;
        }
        // Only the exact strings "GAUGE" and "HISTOGRAM" change the type (plugin.cc:336-342).
        let kind = match def.get("type") {
            Some(Value::String(s)) if s == "GAUGE" => DefinitionType::Gauge,
            Some(Value::String(s)) if s == "HISTOGRAM" => DefinitionType::Histogram,
            _ => DefinitionType::Counter,
        };
        config.definitions.push(Definition { name, value, kind });
    }
}

fn parse_metrics(obj: &Map<String, Value>, config: &mut PluginConfig, w: &mut Vec<String>) {
    let Some(metrics) = obj.get("metrics") else {
        return;
    };
    let Value::Array(metrics) = metrics else {
        w.push(format!(
            "metrics: expected an array, got {}; ignored",
            type_name(metrics)
        ));
        return;
    };
    // Every element is kept: whether a bad element stops the walk depends on whether it
    // matches a metric, which only the schema knows (Istio fails inside the factory loop).
    for (i, m) in metrics.iter().enumerate() {
        config.metrics.push(parse_metric(i, m, w));
    }
}

fn parse_metric(i: usize, m: &Value, w: &mut Vec<String>) -> MetricOverride {
    let mut out = MetricOverride::default();
    let empty = Map::new();
    let obj = match m {
        Value::Object(o) => o,
        // A non-object element has no fields: Istio's lookups all miss, so it applies to every
        // metric and changes nothing.
        other => {
            w.push(format!(
                "metrics[{i}]: expected an object, got {}",
                type_name(other)
            ));
            &empty
        }
    };
    match obj.get("dimensions") {
        None => {}
        Some(Value::Object(dims)) => {
            let mut keys: Vec<&String> = dims.keys().collect();
            keys.sort();
            for key in keys {
                match dims.get(key) {
                    Some(Value::String(expr)) => out.dimensions.push((key.clone(), expr.clone())),
                    other => {
                        w.push(format!(
                            "metrics[{i}].dimensions.{key}: expected a string, got {}",
                            other.map_or("nothing", type_name)
                        ));
                        out.dimensions_error = true;
                        break;
                    }
                }
            }
        }
        Some(other) => {
            w.push(format!(
                "metrics[{i}].dimensions: expected an object, got {}",
                type_name(other)
            ));
            out.dimensions_not_object = true;
            return out;
        }
    }
    match obj.get("name") {
        Some(Value::String(s)) => out.name = s.clone(),
        Some(other) => w.push(format!(
            "metrics[{i}].name: expected a string, got {}; the entry applies to every metric",
            type_name(other)
        )),
        None => {}
    }
    if let Some(v) = obj.get("drop") {
        match as_bool(v) {
            Some(b) => out.drop = b,
            None => w.push(format!(
                "metrics[{i}].drop: expected a bool, got {}; using false",
                type_name(v)
            )),
        }
    }
    match field(obj, "tags_to_remove", "tagsToRemove") {
        None => {}
        Some(Value::Array(tags)) => {
            for (j, t) in tags.iter().enumerate() {
                match t {
                    Value::String(s) => out.tags_to_remove.push(s.clone()),
                    other => {
                        w.push(format!(
                            "metrics[{i}].tags_to_remove[{j}]: expected a string, got {}",
                            type_name(other)
                        ));
                        out.tags_to_remove_error = true;
                        break;
                    }
                }
            }
        }
        Some(other) => {
            w.push(format!(
                "metrics[{i}].tags_to_remove: expected an array, got {}",
                type_name(other)
            ));
            out.tags_to_remove_error = true;
        }
    }
    out
}

#[cfg(test)]
mod tests;
