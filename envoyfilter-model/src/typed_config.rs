//! A filter's `typed_config` → [`FilterKind`]: the Wasm filter config the way Envoy reads it
//! (`envoy.extensions.filters.{http,network}.wasm.v3.Wasm`, directly or through a
//! `udpa.type.v1.TypedStruct` / `xds.type.v3.TypedStruct`), anything else as a native filter.

use crate::chain::{FilterKind, WasmCode, WasmFilter};
use crate::json::{field, is_known_field, join};
use base64::Engine;
use prost::Message;
use serde_json::{Map, Value};

pub const HTTP_WASM: &str = "envoy.extensions.filters.http.wasm.v3.Wasm";
pub const NETWORK_WASM: &str = "envoy.extensions.filters.network.wasm.v3.Wasm";
const TYPED_STRUCTS: &[&str] = &["udpa.type.v1.TypedStruct", "xds.type.v3.TypedStruct"];
const STRING_VALUE: &str = "google.protobuf.StringValue";
const BYTES_VALUE: &str = "google.protobuf.BytesValue";
const STRUCT: &str = "google.protobuf.Struct";

/// Wasm runtimes Envoy knows; only v8 and null are compiled into Istio's proxy (`--define
/// wasm=v8`, istio/proxy .bazelrc), the others load nowhere in Istio 1.13–1.17.
const RUNTIMES: &[&str] = &[
    "envoy.wasm.runtime.v8",
    "envoy.wasm.runtime.null",
    "envoy.wasm.runtime.wamr",
    "envoy.wasm.runtime.wasmtime",
    "envoy.wasm.runtime.wavm",
];

/// A problem at a field path (relative to the caller's prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

fn err<T>(path: &str, message: impl Into<String>) -> Result<T, FieldError> {
    Err(FieldError {
        path: path.to_string(),
        message: message.into(),
    })
}

/// What a filter decodes to, with non-fatal findings (`path: message`).
#[derive(Debug, Clone)]
pub struct Decoded {
    pub kind: FilterKind,
    pub warnings: Vec<String>,
}

/// Which chain the filter sits in: an HTTP filter must carry the HTTP Wasm type, a network
/// filter the network one (Envoy finds the factory by type URL and rejects the other).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainKind {
    Http,
    Network,
}

/// The type name after the last `/` of a type URL.
pub fn type_name(type_url: &str) -> &str {
    type_url.rsplit('/').next().unwrap_or(type_url)
}

/// Decodes `typed_config` found at `path`.
pub fn decode(tc: &Value, path: &str, chain: ChainKind) -> Result<Decoded, FieldError> {
    let obj = match tc.as_object() {
        Some(o) => o,
        None => return err(path, "must be an object with an \"@type\""),
    };
    let at_type = match obj.get("@type") {
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return err(&join(path, "@type"), "must be a string"),
        None => return err(path, "missing \"@type\""),
    };
    if !at_type.contains('/') {
        return err(
            &join(path, "@type"),
            format!("{at_type:?} is not a type URL (expected type.googleapis.com/<message>)"),
        );
    }
    let mut warnings = Vec::new();
    let (inner_url, body, body_path): (String, Map<String, Value>, String) =
        if TYPED_STRUCTS.contains(&type_name(at_type)) {
            let url = match field(obj, "type_url") {
                Some((Value::String(s), _)) if !s.is_empty() => s.clone(),
                Some((_, name)) => return err(&join(path, &name), "must be a non-empty string"),
                None => return err(path, "TypedStruct without type_url"),
            };
            for k in obj.keys() {
                if k != "@type" && !is_known_field(k, &["type_url", "value"]) {
                    warnings.push(format!(
                        "{}: unknown TypedStruct field, ignored",
                        join(path, k)
                    ));
                }
            }
            let body = match obj.get("value") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(m)) => m.clone(),
                Some(_) => return err(&join(path, "value"), "must be an object"),
            };
            (url, body, join(path, "value"))
        } else {
            let mut body = obj.clone();
            body.remove("@type");
            (at_type.to_string(), body, path.to_string())
        };
    let inner = type_name(&inner_url);
    if inner.starts_with("envoy.config.filter.") || inner.starts_with("envoy.api.v2.") {
        return err(
            path,
            format!(
                "unsupported @type {inner_url}: the v2 xDS API was removed in Envoy 1.18, so no Istio 1.13–1.17 proxy accepts it (use the v3 type)"
            ),
        );
    }
    if inner == HTTP_WASM || inner == NETWORK_WASM {
        let wanted = match chain {
            ChainKind::Http => HTTP_WASM,
            ChainKind::Network => NETWORK_WASM,
        };
        if inner != wanted {
            return err(
                path,
                format!("unsupported @type {inner_url} in this chain: an {chain:?} filter needs type.googleapis.com/{wanted}"),
            );
        }
        let wasm = decode_wasm(&body, &body_path, &mut warnings)?;
        return Ok(Decoded {
            kind: FilterKind::Wasm(wasm),
            warnings,
        });
    }
    Ok(Decoded {
        kind: FilterKind::Native {
            type_url: inner_url,
            config: body,
        },
        warnings,
    })
}

/// `envoy.extensions.filters.*.wasm.v3.Wasm{config}` → [`WasmFilter`].
fn decode_wasm(
    body: &Map<String, Value>,
    path: &str,
    warnings: &mut Vec<String>,
) -> Result<WasmFilter, FieldError> {
    for k in body.keys() {
        if !is_known_field(k, &["config"]) {
            warnings.push(format!(
                "{}: unknown Wasm field, ignored by Envoy",
                join(path, k)
            ));
        }
    }
    let (config, config_name) = match field(body, "config") {
        Some((Value::Object(m), name)) => (m, name),
        Some((_, name)) => return err(&join(path, &name), "must be an object"),
        None => return err(path, "Wasm filter without config"),
    };
    let cpath = join(path, &config_name);
    for k in config.keys() {
        if !is_known_field(
            k,
            &[
                "name",
                "root_id",
                "vm_config",
                "configuration",
                "fail_open",
                "capability_restriction_config",
            ],
        ) {
            warnings.push(format!(
                "{}: unknown PluginConfig field, ignored by Envoy",
                join(&cpath, k)
            ));
        }
    }
    let plugin_name = opt_string(config, "name", &cpath)?.unwrap_or_default();
    let root_id = opt_string(config, "root_id", &cpath)?.unwrap_or_default();
    let fail_open = opt_bool(config, "fail_open", &cpath)?.unwrap_or(false);
    let configuration = match field(config, "configuration") {
        None | Some((Value::Null, _)) => Vec::new(),
        Some((v, name)) => any_to_bytes(v, &join(&cpath, &name), warnings)?,
    };
    let (vm, vm_name) = match field(config, "vm_config") {
        Some((Value::Object(m), name)) => (m, name),
        Some((_, name)) => return err(&join(&cpath, &name), "must be an object"),
        None => {
            return err(
                &cpath,
                "missing vm_config (Envoy needs a VM to run the plugin)",
            )
        }
    };
    let vpath = join(&cpath, &vm_name);
    for k in vm.keys() {
        if !is_known_field(
            k,
            &[
                "vm_id",
                "runtime",
                "code",
                "configuration",
                "allow_precompiled",
                "nack_on_code_cache_miss",
                "environment_variables",
            ],
        ) {
            warnings.push(format!(
                "{}: unknown VmConfig field, ignored by Envoy",
                join(&vpath, k)
            ));
        }
    }
    let vm_id = opt_string(vm, "vm_id", &vpath)?.unwrap_or_default();
    let runtime = match opt_string(vm, "runtime", &vpath)? {
        Some(r) if !r.is_empty() => r,
        _ => return err(&join(&vpath, "runtime"), "required (envoy.wasm.runtime.v8)"),
    };
    if !RUNTIMES.contains(&runtime.as_str()) {
        return err(
            &join(&vpath, "runtime"),
            format!("unknown Wasm runtime {runtime:?} (Istio proxies have envoy.wasm.runtime.v8 and envoy.wasm.runtime.null)"),
        );
    }
    if runtime != "envoy.wasm.runtime.v8" && runtime != "envoy.wasm.runtime.null" {
        warnings.push(format!(
            "{}: {runtime} is not compiled into Istio 1.13–1.17 proxies; Envoy will reject this filter there",
            join(&vpath, "runtime")
        ));
    }
    let vm_configuration = match field(vm, "configuration") {
        None | Some((Value::Null, _)) => Vec::new(),
        Some((v, name)) => any_to_bytes(v, &join(&vpath, &name), warnings)?,
    };
    if let Some(b) = opt_bool(vm, "allow_precompiled", &vpath)? {
        let _ = b; // harmless on a plain module: V8 falls back to compiling the bytecode.
    }
    let code = decode_code(vm, &vpath)?;
    match (&code, runtime.as_str()) {
        (WasmCode::InlineString(_), "envoy.wasm.runtime.null") => {}
        (_, "envoy.wasm.runtime.null") => {
            return err(
                &join(&vpath, "code"),
                "the null runtime needs code.local.inline_string naming a built-in plugin (e.g. envoy.wasm.stats)",
            );
        }
        (WasmCode::InlineString(s), _) => {
            return err(
                &join(&vpath, "code.local.inline_string"),
                format!("{runtime} would compile {s:?} as Wasm bytecode; use code.local.filename"),
            );
        }
        _ => {}
    }
    Ok(WasmFilter {
        plugin_name,
        root_id,
        vm_id,
        runtime,
        code,
        configuration,
        vm_configuration,
        fail_open,
    })
}

fn decode_code(vm: &Map<String, Value>, vpath: &str) -> Result<WasmCode, FieldError> {
    let (code, code_name) = match field(vm, "code") {
        Some((Value::Object(m), name)) => (m, name),
        Some((_, name)) => return err(&join(vpath, &name), "must be an object"),
        None => return err(vpath, "missing code (code.local.filename)"),
    };
    let path = join(vpath, &code_name);
    let local = field(code, "local");
    let remote = field(code, "remote");
    match (local, remote) {
        (Some(_), Some(_)) => err(&path, "set either local or remote, not both"),
        (Some((Value::Object(l), lname)), None) => {
            let lpath = join(&path, &lname);
            let filename = opt_string(l, "filename", &lpath)?;
            let inline_string = opt_string(l, "inline_string", &lpath)?;
            let inline_bytes = field(l, "inline_bytes").is_some();
            match (filename, inline_string, inline_bytes) {
                (Some(f), None, false) if !f.is_empty() => Ok(WasmCode::LocalFile(f)),
                (None, Some(s), false) if !s.is_empty() => Ok(WasmCode::InlineString(s)),
                (None, None, true) => err(
                    &join(&lpath, "inline_bytes"),
                    "inline_bytes is not supported here: mount the module and use local.filename",
                ),
                (None, None, false) => err(&lpath, "needs filename or inline_string"),
                _ => err(
                    &lpath,
                    "exactly one of filename, inline_string, inline_bytes (non-empty)",
                ),
            }
        }
        (None, Some((Value::Object(r), rname))) => {
            let rpath = join(&path, &rname);
            let (http_uri, hname) = match field(r, "http_uri") {
                Some((Value::Object(h), name)) => (h, name),
                _ => return err(&rpath, "remote needs http_uri {uri, cluster, timeout}"),
            };
            let hpath = join(&rpath, &hname);
            let uri = match opt_string(http_uri, "uri", &hpath)? {
                Some(u) if !u.is_empty() => u,
                _ => return err(&join(&hpath, "uri"), "required"),
            };
            for req in ["cluster", "timeout"] {
                if opt_string(http_uri, req, &hpath)?.is_none_or(|s| s.is_empty()) {
                    return err(&join(&hpath, req), "required by Envoy's HttpUri");
                }
            }
            let sha256 = match opt_string(r, "sha256", &rpath)? {
                Some(s) if s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit()) => s,
                Some(_) => return err(&join(&rpath, "sha256"), "must be 64 hex digits"),
                None => return err(&join(&rpath, "sha256"), "required for remote code"),
            };
            Ok(WasmCode::Remote { uri, sha256 })
        }
        _ => err(&path, "needs local {filename} or remote {http_uri, sha256}"),
    }
}

/// Envoy's `anyToBytes` (source/extensions/common/wasm/wasm.cc): a `StringValue` yields its
/// string, a `BytesValue` its bytes, anything else the serialised message (`Any.value`).
pub fn any_to_bytes(
    v: &Value,
    path: &str,
    warnings: &mut Vec<String>,
) -> Result<Vec<u8>, FieldError> {
    let obj = match v.as_object() {
        Some(o) => o,
        None => return err(path, "must be an Any: {\"@type\": …, \"value\": …}"),
    };
    let at_type = match obj.get("@type") {
        Some(Value::String(s)) => s.as_str(),
        _ => {
            return err(
                path,
                "missing \"@type\" (use type.googleapis.com/google.protobuf.StringValue)",
            )
        }
    };
    let value = obj.get("value");
    match type_name(at_type) {
        STRING_VALUE => match value {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
            Some(_) => err(&join(path, "value"), "StringValue.value must be a string"),
        },
        BYTES_VALUE => match value {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) => base64::engine::general_purpose::STANDARD
                .decode(s)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(s))
                .map_err(|e| FieldError {
                    path: join(path, "value"),
                    message: format!("BytesValue.value must be base64: {e}"),
                }),
            Some(_) => err(&join(path, "value"), "BytesValue.value must be a base64 string"),
        },
        STRUCT => {
            let fields = match value {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(m)) => m.clone(),
                Some(_) => return err(&join(path, "value"), "Struct.value must be an object"),
            };
            warnings.push(format!(
                "{path}: a google.protobuf.Struct configuration reaches the plugin as protobuf bytes (Envoy anyToBytes), not JSON; a JSON-reading plugin rejects it (maistra/istio#391). Use google.protobuf.StringValue with the JSON text"
            ));
            Ok(json_to_struct(&fields).encode_to_vec())
        }
        other => err(
            &join(path, "@type"),
            format!(
                "unsupported @type {other}: configuration must be google.protobuf.StringValue (JSON text), BytesValue or Struct"
            ),
        ),
    }
}

/// JSON object → `google.protobuf.Struct` (the proto3 JSON mapping in reverse).
pub fn json_to_struct(m: &Map<String, Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: m
            .iter()
            .map(|(k, v)| (k.clone(), json_to_proto_value(v)))
            .collect(),
    }
}

fn json_to_proto_value(v: &Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match v {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(json_to_proto_value).collect(),
        }),
        Value::Object(m) => Kind::StructValue(json_to_struct(m)),
    };
    prost_types::Value { kind: Some(kind) }
}

fn opt_string(
    obj: &Map<String, Value>,
    snake: &str,
    path: &str,
) -> Result<Option<String>, FieldError> {
    match field(obj, snake) {
        None | Some((Value::Null, _)) => Ok(None),
        Some((Value::String(s), _)) => Ok(Some(s.clone())),
        Some((_, name)) => err(&join(path, &name), "must be a string"),
    }
}

fn opt_bool(obj: &Map<String, Value>, snake: &str, path: &str) -> Result<Option<bool>, FieldError> {
    match field(obj, snake) {
        None | Some((Value::Null, _)) => Ok(None),
        Some((Value::Bool(b), _)) => Ok(Some(*b)),
        Some((_, name)) => err(&join(path, &name), "must be a boolean"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn wasm_tc(configuration: Value) -> Value {
        json!({
            "@type": "type.googleapis.com/udpa.type.v1.TypedStruct",
            "type_url": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "value": {"config": {
                "root_id": "stats_inbound",
                "configuration": configuration,
                "vm_config": {"vm_id": "stats_inbound", "runtime": "envoy.wasm.runtime.v8",
                              "code": {"local": {"filename": "/var/local/wasm/stats_plugin.wasm"}}}
            }}
        })
    }

    #[test]
    fn typed_struct_wasm_with_string_value() {
        let tc = wasm_tc(
            json!({"@type": "type.googleapis.com/google.protobuf.StringValue", "value": "{\"debug\":\"false\"}"}),
        );
        let d = decode(&tc, "typed_config", ChainKind::Http).unwrap();
        let FilterKind::Wasm(w) = d.kind else {
            panic!("not wasm")
        };
        assert_eq!(w.root_id, "stats_inbound");
        assert_eq!(w.vm_id, "stats_inbound");
        assert_eq!(
            w.code,
            WasmCode::LocalFile("/var/local/wasm/stats_plugin.wasm".into())
        );
        assert_eq!(w.configuration, b"{\"debug\":\"false\"}");
        assert!(d.warnings.is_empty());
    }

    #[test]
    fn struct_configuration_becomes_protobuf_bytes_with_warning() {
        let tc = wasm_tc(
            json!({"@type": "type.googleapis.com/google.protobuf.Struct", "value": {"a": "b"}}),
        );
        let d = decode(&tc, "typed_config", ChainKind::Http).unwrap();
        let FilterKind::Wasm(w) = d.kind else {
            panic!("not wasm")
        };
        // Struct{fields: {"a": Value{string_value: "b"}}}, encoded by hand:
        // field 1 (map entry), len 8: key (tag 0x0a, len 1, 'a') + value (tag 0x12, len 3:
        // Value.string_value tag 0x1a, len 1, 'b').
        assert_eq!(
            w.configuration,
            vec![0x0a, 0x08, 0x0a, 0x01, b'a', 0x12, 0x03, 0x1a, 0x01, b'b']
        );
        assert_eq!(d.warnings.len(), 1);
    }

    #[test]
    fn network_wasm_in_http_chain_is_rejected() {
        let mut tc = wasm_tc(json!(null));
        tc["type_url"] = json!("type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm");
        let e = decode(&tc, "typed_config", ChainKind::Http).unwrap_err();
        assert!(e.message.contains("unsupported @type"), "{e:?}");
    }

    #[test]
    fn native_stats_plugin_config_is_native() {
        let tc = json!({"@type": "type.googleapis.com/udpa.type.v1.TypedStruct",
                        "type_url": "type.googleapis.com/stats.PluginConfig", "value": {}});
        let d = decode(&tc, "t", ChainKind::Http).unwrap();
        assert_eq!(
            d.kind,
            FilterKind::Native {
                type_url: "type.googleapis.com/stats.PluginConfig".into(),
                config: Map::new(),
            }
        );
    }

    #[test]
    fn v8_without_code_is_an_error_naming_the_field() {
        let mut tc = wasm_tc(json!(null));
        tc["value"]["config"]["vm_config"]
            .as_object_mut()
            .unwrap()
            .remove("code");
        let e = decode(&tc, "typed_config", ChainKind::Http).unwrap_err();
        assert_eq!(e.path, "typed_config.value.config.vm_config");
    }
}
