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

/// The entries live in one byte buffer (key, then value), so a stream's filter state costs two
/// allocations however many keys it holds: the state moves out with each stream's outcome, and
/// per-key buffers were most of the allocations of a stream.
#[derive(Clone, Default)]
pub struct FilterState {
    bytes: Vec<u8>,
    entries: Vec<Entry>,
    /// Bytes of `bytes` no entry refers to any more (values replaced by longer ones).
    dead: usize,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    key: (usize, usize),
    value: (usize, usize),
    readonly: bool,
}

/// What a stream's first write reserves (Istio's keys and peer FlatNodes fit).
const FIRST_BYTES: usize = 1024;
const FIRST_ENTRIES: usize = 8;

impl FilterState {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn clear(&mut self) {
        self.bytes.clear();
        self.entries.clear();
        self.dead = 0;
    }

    fn slice(&self, (at, len): (usize, usize)) -> &[u8] {
        &self.bytes[at..at + len]
    }

    fn find(&self, mut is_key: impl FnMut(&[u8]) -> bool) -> Option<usize> {
        self.entries.iter().position(|e| is_key(self.slice(e.key)))
    }

    /// Full-key lookup (e.g. `wasm.upstream_peer`).
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        let i = self.find(|k| k == key)?;
        Some(self.slice(self.entries[i].value))
    }

    /// Lookup of `wasm.<name>`.
    pub fn get_wasm(&self, name: &[u8]) -> Option<&[u8]> {
        let i = self.find(|k| is_wasm_key(k, name))?;
        Some(self.slice(self.entries[i].value))
    }

    fn reserve_first(&mut self) {
        if self.entries.capacity() == 0 {
            self.bytes = Vec::with_capacity(FIRST_BYTES);
            self.entries = Vec::with_capacity(FIRST_ENTRIES);
        }
    }

    /// Replaces entry `i`'s value: in place when it fits, else appended (the old bytes count as
    /// dead until the buffer is compacted).
    fn overwrite(&mut self, i: usize, value: &[u8]) {
        let (at, len) = self.entries[i].value;
        if value.len() <= len {
            self.bytes[at..at + value.len()].copy_from_slice(value);
            self.dead += len - value.len();
            self.entries[i].value = (at, value.len());
        } else {
            self.dead += len;
            let at = self.bytes.len();
            self.bytes.extend_from_slice(value);
            self.entries[i].value = (at, value.len());
        }
        if self.dead > 4096 && self.dead > self.bytes.len() / 2 {
            self.compact();
        }
    }

    /// Rewrites the buffer with live bytes only (a plugin rewriting a growing value).
    fn compact(&mut self) {
        let mut bytes = Vec::with_capacity(self.bytes.len() - self.dead);
        for e in &mut self.entries {
            let (ka, kl) = e.key;
            let (va, vl) = e.value;
            let k = bytes.len();
            bytes.extend_from_slice(&self.bytes[ka..ka + kl]);
            let v = bytes.len();
            bytes.extend_from_slice(&self.bytes[va..va + vl]);
            e.key = (k, kl);
            e.value = (v, vl);
        }
        self.bytes = bytes;
        self.dead = 0;
    }

    /// Sets a full key. Returns false (Envoy: BAD_ARGUMENT) when the existing value is read-only.
    pub fn set(&mut self, key: &[u8], value: &[u8], readonly: bool) -> bool {
        if let Some(i) = self.find(|k| k == key) {
            if self.entries[i].readonly {
                return false;
            }
            self.overwrite(i, value);
            self.entries[i].readonly = readonly;
            return true;
        }
        self.push_value(&[key], value, readonly);
        true
    }

    /// `proxy_set_property(name, value)`: writes `wasm.<name>`.
    pub fn set_wasm(&mut self, name: &[u8], value: &[u8]) -> bool {
        if let Some(i) = self.find(|k| is_wasm_key(k, name)) {
            if self.entries[i].readonly {
                return false;
            }
            self.overwrite(i, value);
            return true;
        }
        self.push_value(&[WASM_PREFIX.as_bytes(), name], value, false);
        true
    }

    fn push_value(&mut self, key: &[&[u8]], value: &[u8], readonly: bool) {
        self.reserve_first();
        let at = self.bytes.len();
        for part in key {
            self.bytes.extend_from_slice(part);
        }
        let value_at = self.bytes.len();
        let key = (at, value_at - at);
        self.bytes.extend_from_slice(value);
        self.entries.push(Entry {
            key,
            value: (value_at, value.len()),
            readonly,
        });
    }

    /// All entries, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.entries
            .iter()
            .map(|e| (self.slice(e.key), self.slice(e.value)))
    }

    /// All entries with their read-only flags, in insertion order.
    fn values(&self) -> impl Iterator<Item = (&[u8], StateValue)> {
        self.entries.iter().map(|e| {
            (
                self.slice(e.key),
                StateValue {
                    value: self.slice(e.value).to_vec(),
                    readonly: e.readonly,
                },
            )
        })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Equal when the same keys hold the same values and flags in the same order (the buffer
/// layout is not compared).
impl PartialEq for FilterState {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self.entries.iter().zip(&other.entries).all(|(a, b)| {
                a.readonly == b.readonly
                    && self.slice(a.key) == other.slice(b.key)
                    && self.slice(a.value) == other.slice(b.value)
            })
    }
}

impl Eq for FilterState {}

/// The entries as `(key, StateValue)` pairs, as the per-key representation printed them.
impl std::fmt::Debug for FilterState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let entries: Vec<(Vec<u8>, StateValue)> =
            self.values().map(|(k, v)| (k.to_vec(), v)).collect();
        f.debug_struct("FilterState")
            .field("entries", &entries)
            .finish()
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

#[cfg(test)]
mod arena_tests {
    use super::*;

    #[test]
    fn overwrites_keep_order_and_values() {
        let mut fs = FilterState::new();
        assert!(fs.set_wasm(b"a", b"12345"));
        assert!(fs.set(b"k", b"v", false));
        assert!(fs.set_wasm(b"a", b"x")); // shorter: in place
        assert_eq!(fs.get_wasm(b"a"), Some(&b"x"[..]));
        assert!(fs.set_wasm(b"a", b"0123456789")); // longer: appended
        assert_eq!(fs.get(b"wasm.a"), Some(&b"0123456789"[..]));
        assert!(fs.set(b"k", b"", true));
        assert!(!fs.set(b"k", b"w", false));
        let all: Vec<_> = fs.iter().collect();
        assert_eq!(
            all,
            vec![(&b"wasm.a"[..], &b"0123456789"[..]), (&b"k"[..], &b""[..])]
        );
        // Layout differs, content equal.
        let mut other = FilterState::new();
        other.set(b"wasm.a", b"0123456789", false);
        other.set(b"k", b"", true);
        assert_eq!(fs, other);
        other.set(b"wasm.a", b"0", false);
        assert_ne!(fs, other);
    }

    #[test]
    fn a_growing_value_rewritten_often_stays_compact() {
        let mut fs = FilterState::new();
        fs.set_wasm(b"keep", b"kept");
        for n in 0..2000usize {
            let v = vec![b'x'; n];
            assert!(fs.set_wasm(b"grow", &v));
            assert_eq!(fs.get_wasm(b"grow"), Some(&v[..]));
        }
        assert_eq!(fs.get_wasm(b"keep"), Some(&b"kept"[..]));
        // Live bytes ~2 KiB; dead bytes are compacted away past 4 KiB and half the buffer.
        assert!(fs.bytes.len() < 3 * 4096, "{}", fs.bytes.len());
    }

    #[test]
    fn debug_lists_entries_like_the_per_key_form() {
        let mut fs = FilterState::new();
        fs.set(b"k", b"v", true);
        assert_eq!(
            format!("{fs:?}"),
            "FilterState { entries: [([107], StateValue { value: [118], readonly: true })] }"
        );
    }
}
