//! The `{"kind":"reload"}` control line (addition to the contract): a listener update, with
//! its own shape (no `direction`), decoded off the fast path only.

use serde::Deserialize;

use super::errors::{reload_error_with_path, strip_position};
use super::{DecodedEvent, Decoder, Event};
use crate::replay::time::{parse_rfc3339, DEFAULT_EPOCH_NS};
use crate::stream::{HttpPlan, Reload};

/// The control kind that has its own line shape.
pub(super) const RELOAD: &str = "reload";

/// The `kind` of a line, whatever else it holds (`None` when it is not an object with a string
/// `kind`).
pub(super) fn probe_kind(text: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Probe {
        kind: String,
    }
    serde_json::from_str::<Probe>(text).ok().map(|p| p.kind)
}

/// `{"kind":"reload","start":…,"vm":"new"|"same"}`.
#[derive(Deserialize)]
pub(super) struct RawReload {
    #[allow(dead_code)]
    kind: String,
    start: Option<String>,
    vm: Option<RawVm>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum RawVm {
    New,
    Same,
}

impl Decoder {
    /// A `{"kind":"reload"}` line: `start` (default: previous + 1 ms, as for events) and `vm`.
    pub(super) fn decode_reload(&mut self, text: &str) -> Result<DecodedEvent, String> {
        let mut ignored = Vec::new();
        let mut json = serde_json::Deserializer::from_str(text);
        let raw: RawReload = serde_ignored::deserialize(&mut json, |path| {
            ignored.push(path.to_string().replace("?.", ""))
        })
        .map_err(|_| reload_error_with_path(text))?;
        json.end().map_err(|e| strip_position(&e.to_string()))?;
        let at_ns = match &raw.start {
            Some(s) => parse_rfc3339(s).map_err(|e| format!("start: {e}"))?,
            None => self
                .st
                .prev_start_ns
                .map_or(DEFAULT_EPOCH_NS, |p| p + 1_000_000),
        };
        self.st.prev_start_ns = Some(at_ns);
        let mut warnings = Vec::new();
        for path in ignored {
            if self.st.warned.insert(path.clone()) {
                let why = match path.as_str() {
                    "direction" | "repeat" | "duration_ms" => "does not apply to reload lines",
                    _ => "is not part of the traffic format",
                };
                warnings.push(format!("field {path:?} {why}; ignored (warned once)"));
            }
        }
        Ok(DecodedEvent {
            line: self.st.line,
            repeat: 1,
            event: Event::Reload(Reload {
                at_ns,
                new_vm: !matches!(raw.vm, Some(RawVm::Same)),
            }),
            plan: HttpPlan::default(),
            warnings,
        })
    }
}
