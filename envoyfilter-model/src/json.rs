//! JSON helpers shared by the parser and the renderer: YAML → JSON conversion, proto-JSON field
//! lookup (snake_case or lowerCamel, as protobuf's JSON mapping accepts both), and the compact,
//! key-sorted JSON text that Helm's `toJson` (Go `encoding/json`) writes.

use serde_json::{Map, Value};

/// Converts one YAML document to JSON. Non-string mapping keys are rejected (Kubernetes objects
/// only have string keys); YAML tags are dropped the way `kubectl` drops them.
pub fn yaml_to_json(v: serde_yaml_ng::Value, path: &str) -> Result<Value, String> {
    use serde_yaml_ng::Value as Y;
    Ok(match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else if let Some(f) = n.as_f64() {
                serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .ok_or_else(|| format!("{path}: number {f} has no JSON form"))?
            } else {
                return Err(format!("{path}: unsupported number"));
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| yaml_to_json(item, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Y::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match k {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    other => return Err(format!("{path}: non-string mapping key {other:?}")),
                };
                let child = yaml_to_json(v, &join(path, &key))?;
                out.insert(key, child);
            }
            Value::Object(out)
        }
        Y::Tagged(t) => yaml_to_json(t.value, path)?,
    })
}

/// `a.b` path joining that tolerates an empty prefix.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The lowerCamel spelling of a snake_case proto field name (`root_id` → `rootId`).
pub fn lower_camel(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Looks up a proto field in a JSON object under its snake_case or lowerCamel name; returns the
/// spelling found so error paths name what the user wrote.
pub fn field<'a>(obj: &'a Map<String, Value>, snake: &str) -> Option<(&'a Value, String)> {
    if let Some(v) = obj.get(snake) {
        return Some((v, snake.to_string()));
    }
    let camel = lower_camel(snake);
    obj.get(&camel).map(|v| (v, camel))
}

/// True when `key` is the snake_case or lowerCamel spelling of one of `known`.
pub fn is_known_field(key: &str, known: &[&str]) -> bool {
    known.iter().any(|k| *k == key || lower_camel(k) == key)
}

/// Compact JSON with object keys sorted and `<`, `>`, `&`, U+2028, U+2029 escaped: the text Go's
/// `json.Marshal` produces for a `map[string]interface{}`, which is what Helm's `toJson` (and so
/// istioctl's `configOverride` rendering) emits.
pub fn go_json(v: &Value) -> String {
    let mut out = String::new();
    write_go_json(v, &mut out);
    out
}

fn write_go_json(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match n.as_f64() {
            // Go formats float64 with the shortest representation ('f' below 1e21): 1.0 → "1".
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e21 => {
                out.push_str(&format!("{f:.0}"))
            }
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => write_go_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_json(item, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_string(k, out);
                out.push(':');
                if let Some(val) = m.get(*k) {
                    write_go_json(val, out);
                }
            }
            out.push('}');
        }
    }
}

fn write_go_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_json_sorts_keys_and_escapes_like_encoding_json() {
        // Go: json.Marshal(map[string]interface{}{"b": "x && y", "a": []interface{}{1, true}})
        // == `{"a":[1,true],"b":"x \u0026\u0026 y"}` (HTML-safe escaping is on by default).
        let v: Value = serde_json::json!({"b": "x && y", "a": [1, true]});
        assert_eq!(go_json(&v), r#"{"a":[1,true],"b":"x \u0026\u0026 y"}"#);
        // Values reach toJson as float64: 15.0 prints as 15, 0.5 as 0.5.
        assert_eq!(go_json(&serde_json::json!([15.0, 0.5])), "[15,0.5]");
    }

    #[test]
    fn field_accepts_both_proto_json_spellings() {
        let v: Value = serde_json::json!({"rootId": "stats_inbound"});
        let (found, name) = field(v.as_object().unwrap(), "root_id").unwrap();
        assert_eq!(found, "stats_inbound");
        assert_eq!(name, "rootId");
    }
}
