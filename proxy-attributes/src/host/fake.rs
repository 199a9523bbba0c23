//! An in-memory [`Host`] for native tests: properties by path, header maps, and a log of every
//! read so tests can assert that an expression fetched only what it references.

use super::{HeaderMap, Host};
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct FakeHost {
    properties: HashMap<String, Vec<u8>>,
    headers: HashMap<(HeaderMap, String), String>,
    reads: Mutex<Vec<String>>,
}

impl FakeHost {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the raw bytes returned for `path` (already in Envoy's encoding).
    pub fn with_property(mut self, path: &[&str], bytes: impl Into<Vec<u8>>) -> Self {
        self.properties.insert(path.join("\0"), bytes.into());
        self
    }

    /// Removes `path` (reads of it are then NOT_FOUND).
    pub fn without_property(mut self, path: &[&str]) -> Self {
        self.properties.remove(&path.join("\0"));
        self
    }

    /// Convenience: a string attribute (Envoy returns strings raw).
    pub fn with_str(self, path: &[&str], value: &str) -> Self {
        self.with_property(path, value.as_bytes().to_vec())
    }

    /// Convenience: an int64 attribute (8 bytes little-endian, as Envoy serialises it).
    pub fn with_i64(self, path: &[&str], value: i64) -> Self {
        self.with_property(path, value.to_le_bytes().to_vec())
    }

    /// Convenience: a bool attribute (1 byte).
    pub fn with_bool(self, path: &[&str], value: bool) -> Self {
        self.with_property(path, vec![value as u8])
    }

    pub fn with_header(mut self, map: HeaderMap, name: &str, value: &str) -> Self {
        self.headers
            .insert((map, name.to_ascii_lowercase()), value.to_string());
        self
    }

    /// Every read so far, as `property:a.b.c` or `header:RequestHeaders:name`, in order.
    pub fn reads(&self) -> Vec<String> {
        self.reads.lock().map(|r| r.clone()).unwrap_or_default()
    }

    pub fn clear_reads(&self) {
        if let Ok(mut r) = self.reads.lock() {
            r.clear();
        }
    }

    fn record(&self, what: String) {
        if let Ok(mut r) = self.reads.lock() {
            r.push(what);
        }
    }
}

impl Host for FakeHost {
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        self.record(format!("property:{}", path.join(".")));
        // Envoy hands an empty value back as a null pointer, which the SDK reads as None.
        self.properties
            .get(&path.join("\0"))
            .filter(|v| !v.is_empty())
            .cloned()
    }

    fn header(&self, map: HeaderMap, name: &str) -> Option<String> {
        self.record(format!("header:{map:?}:{name}"));
        self.headers.get(&(map, name.to_ascii_lowercase())).cloned()
    }
}
