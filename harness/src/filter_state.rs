//! Per-stream filter state as Wasm sees it: Envoy stores `proxy_set_property(path, value)` as a
//! `CelState` under `wasm.<path>` (Envoy `Context::setProperty`, `CelStateKeyPrefix = "wasm."`),
//! shared by every plugin of the stream and read back by `proxy_get_property` when the first path
//! element is not a known attribute (abi-host §2.1, §2.4). A small vector: streams hold a handful
//! of keys, and clearing it between streams keeps its allocation.

/// Envoy's key prefix for state written by Wasm.
pub const WASM_PREFIX: &str = "wasm.";

/// One value and whether a later `set_property` may overwrite it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateValue {
    pub value: Vec<u8>,
    pub readonly: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterState {
    entries: Vec<(Vec<u8>, StateValue)>,
}

impl FilterState {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Full-key lookup (e.g. `wasm.upstream_peer`).
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.value.as_slice())
    }

    /// Lookup of `wasm.<name>`.
    pub fn get_wasm(&self, name: &[u8]) -> Option<&[u8]> {
        self.entries
            .iter()
            .find(|(k, _)| is_wasm_key(k, name))
            .map(|(_, v)| v.value.as_slice())
    }

    /// Sets a full key. Returns false (Envoy: BAD_ARGUMENT) when the existing value is read-only.
    pub fn set(&mut self, key: &[u8], value: &[u8], readonly: bool) -> bool {
        if let Some((_, v)) = self.entries.iter_mut().find(|(k, _)| k == key) {
            if v.readonly {
                return false;
            }
            v.value.clear();
            v.value.extend_from_slice(value);
            v.readonly = readonly;
            return true;
        }
        self.entries.push((
            key.to_vec(),
            StateValue {
                value: value.to_vec(),
                readonly,
            },
        ));
        true
    }

    /// `proxy_set_property(name, value)`: writes `wasm.<name>` (the prefixed key is only built
    /// when the entry is new).
    pub fn set_wasm(&mut self, name: &[u8], value: &[u8]) -> bool {
        if let Some((_, v)) = self.entries.iter_mut().find(|(k, _)| is_wasm_key(k, name)) {
            if v.readonly {
                return false;
            }
            v.value.clear();
            v.value.extend_from_slice(value);
            return true;
        }
        let mut key = Vec::with_capacity(WASM_PREFIX.len() + name.len());
        key.extend_from_slice(WASM_PREFIX.as_bytes());
        key.extend_from_slice(name);
        self.entries.push((
            key,
            StateValue {
                value: value.to_vec(),
                readonly: false,
            },
        ));
        true
    }

    /// All entries, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.entries
            .iter()
            .map(|(k, v)| (k.as_slice(), v.value.as_slice()))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// `key == "wasm." + name`, without building the concatenation.
fn is_wasm_key(key: &[u8], name: &[u8]) -> bool {
    key.len() == WASM_PREFIX.len() + name.len()
        && key.starts_with(WASM_PREFIX.as_bytes())
        && &key[WASM_PREFIX.len()..] == name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasm_prefix_and_readonly() {
        let mut fs = FilterState::new();
        assert!(fs.set_wasm(b"a", b"1"));
        assert_eq!(fs.get(b"wasm.a"), Some(&b"1"[..]));
        assert_eq!(fs.get_wasm(b"a"), Some(&b"1"[..]));
        assert!(fs.set(b"wasm.ro", b"x", true));
        assert!(!fs.set_wasm(b"ro", b"y"));
        assert_eq!(fs.get_wasm(b"ro"), Some(&b"x"[..]));
        fs.clear();
        assert!(fs.is_empty());
    }
}
