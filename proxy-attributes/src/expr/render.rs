//! Turning an evaluation result into what the plugins store.

use cel::Value;

/// The label text for a CEL result, rendered like CEL's `string()`: strings as they are, ints
/// and uints in decimal, doubles as CEL prints them, bools `true`/`false`, bytes when UTF-8.
/// `None` (→ the caller's `unknown`) for null, lists, maps and non-UTF-8 bytes.
///
/// **Deliberate deviation from Istio's Wasm stats plugin (1.13–1.16):** it stores the raw
/// `serializeValue` bytes, so an int label becomes 8 little-endian bytes (stats-spec §4.3); the
/// 1.17 native filter prints decimals, as we do. Users who followed Istio's advice and wrote
/// `string(x)` get identical labels either way.
pub fn to_label(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.as_str().to_string()),
        Value::Int(i) => Some(i.to_string()),
        Value::UInt(u) => Some(u.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Bool(b) => Some(if *b { "true" } else { "false" }.to_string()),
        Value::Bytes(b) => std::str::from_utf8(b).ok().map(str::to_string),
        _ => None,
    }
}

/// A condition's truth: only a CEL bool counts (attributegen rejects anything else, Istio
/// `plugin.cc` "did not return a bool").
pub fn to_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        _ => None,
    }
}

/// A metric value: int, or uint that fits in i64. Anything else is `None`, which Istio's stats
/// plugin counts as 0 (its `getValue<int64_t>` fails on other sizes).
pub fn to_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::UInt(u) => i64::try_from(*u).ok(),
        _ => None,
    }
}
