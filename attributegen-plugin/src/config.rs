//! The plugin configuration: Istio's `istio.attributegen.PluginConfig`
//! (`istio/proxy:release-1.17:extensions/attributegen/config.proto`) read as proto3 JSON, the way
//! `JsonStringToMessage` with `ignore_unknown_fields = true` reads it:
//! * both `output_attribute` and `outputAttribute` are accepted;
//! * `phase` is the enum name (`"AFTER_RESPONSE"`, the default, or `"ON_REQUEST"`) or its number;
//!   an unrecognised name is ignored like an unknown field (→ the default);
//! * JSON `null` means the field's default; unknown fields are ignored;
//! * anything else malformed (not JSON, YAML, wrong types) is a parse error.

use serde::de::{self, Deserializer};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    /// Evaluated in `onLog` (the default, proto value 0).
    #[default]
    AfterResponse,
    /// Evaluated in `onRequestHeaders` (proto value 1).
    OnRequest,
}

impl<'de> Deserialize<'de> for Phase {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Name(String),
            Number(i64),
            Null(()),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::Name(n) if n == "ON_REQUEST" => Phase::OnRequest,
            Raw::Number(1) => Phase::OnRequest,
            Raw::Number(n) if n != 0 => {
                return Err(de::Error::custom(format!("invalid phase value {n}")))
            }
            _ => Phase::AfterResponse,
        })
    }
}

fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct MatchConfig {
    /// CEL condition; empty = always true.
    #[serde(default, deserialize_with = "nullable")]
    pub condition: String,
    /// Value written to the output attribute when the condition is true.
    #[serde(default, deserialize_with = "nullable")]
    pub value: String,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct AttributeGeneratorConfig {
    #[serde(default, deserialize_with = "nullable")]
    pub phase: Phase,
    #[serde(default, alias = "outputAttribute", deserialize_with = "nullable")]
    pub output_attribute: String,
    #[serde(default, rename = "match", deserialize_with = "nullable")]
    pub matches: Vec<MatchConfig>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct PluginConfig {
    #[serde(default, deserialize_with = "nullable")]
    pub attributes: Vec<AttributeGeneratorConfig>,
}

impl PluginConfig {
    pub fn parse(json: &[u8]) -> Result<PluginConfig, serde_json::Error> {
        serde_json::from_slice(json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proto3_json_spellings_and_defaults() {
        let c = PluginConfig::parse(
            br#"{"attributes":[{"outputAttribute":"a","phase":"ON_REQUEST","match":[{"value":"v"}],"extra":1},
                {"output_attribute":"b","phase":1},{"output_attribute":"c","phase":"BOGUS"},{"phase":null}],"unknown":true}"#,
        )
        .unwrap();
        assert_eq!(c.attributes.len(), 4);
        assert_eq!(c.attributes[0].output_attribute, "a");
        assert_eq!(c.attributes[0].phase, Phase::OnRequest);
        assert_eq!(c.attributes[0].matches[0].condition, "");
        assert_eq!(c.attributes[1].phase, Phase::OnRequest);
        assert_eq!(c.attributes[2].phase, Phase::AfterResponse);
        assert_eq!(c.attributes[3].phase, Phase::AfterResponse);
        assert_eq!(PluginConfig::parse(b"{}").unwrap(), PluginConfig::default());
    }

    #[test]
    fn malformed_configs_are_errors() {
        // Istio's UnparseableConfig input, YAML, wrong types.
        for bad in [
            &b"attributes = [ output_attribute ];"[..],
            b"attributes:\n  - output_attribute: x",
            br#"{"attributes": {}}"#,
            br#"{"attributes": [{"match": "x"}]}"#,
            br#"{"attributes": [{"phase": 7}]}"#,
            b"",
        ] {
            assert!(
                PluginConfig::parse(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
