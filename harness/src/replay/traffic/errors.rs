//! Error texts that name the field at fault. Errors are rare, so the path is only worked out
//! (by decoding the line again with tracking) when there is one to report.

use serde::Deserialize;

use super::reload::RawReload;
use super::shapes::lenient;

/// Decodes again with path tracking to name the field at fault.
pub(super) fn error_with_path(text: &str) -> String {
    tracked_error::<lenient::RawEvent>(text, "invalid event")
}

/// [`error_with_path`] for a `{"kind":"reload"}` line.
pub(super) fn reload_error_with_path(text: &str) -> String {
    tracked_error::<RawReload>(text, "invalid reload line")
}

/// The decode error of `T` on `text`, prefixed with the field path when there is one;
/// `fallback` if `T` decodes after all.
fn tracked_error<'de, T: Deserialize<'de>>(text: &'de str, fallback: &str) -> String {
    let mut track = serde_path_to_error::Track::new();
    let mut json = serde_json::Deserializer::from_str(text);
    let tracked = serde_path_to_error::Deserializer::new(&mut json, &mut track);
    match T::deserialize(tracked) {
        Ok(_) => fallback.to_string(),
        Err(e) => {
            let path = track.path().to_string();
            let msg = strip_position(&e.to_string());
            if path == "." || path == "?" || path.is_empty() {
                msg
            } else {
                format!("{path}: {msg}")
            }
        }
    }
}

/// serde_json appends " at line 1 column 17"; the line is always 1 here and the column is
/// noise next to the field path.
pub(super) fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}
