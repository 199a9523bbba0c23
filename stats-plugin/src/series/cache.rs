//! The metric-id cache: dimension values → the resolved stats (`metrics_`, `plugin.h:305-309`).
//! Never evicted, like Istio 1.13–1.17 (§7.1).
//!
//! The key encodes the dimension vector into one reusable byte buffer (length-prefixed values),
//! so a hit costs one hash and one (word-wise) compare and allocates nothing. The caller may
//! leave out what is constant for the cache's lifetime and stand a short token in for a group
//! of values (the report does, for the local node and for a cached peer), as long as the key
//! still determines every value: see `StatsPlugin::report`.

use super::bytes_map::BytesMap;

/// One resolved stat of a cached dimension vector (`SimpleStat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedStat {
    pub id: u32,
    /// Index into the schema's stat generators.
    pub gen: usize,
}

/// The dimension-vector key builder plus the cache itself.
#[derive(Default)]
pub struct MetricCache {
    map: BytesMap<Vec<ResolvedStat>>,
    key: Vec<u8>,
    /// (start, end) of each slot's value inside `key`.
    slots: Vec<(usize, usize)>,
}

impl MetricCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a new key (keeps the buffers' capacity).
    pub fn begin(&mut self) {
        self.key.clear();
        self.slots.clear();
        self.key.reserve(1024);
        self.slots.reserve(32);
    }

    /// Appends a value to the key and remembers where it is ([`MetricCache::value`]).
    #[inline]
    pub fn push(&mut self, value: &str) {
        self.push_key(value);
        let end = self.key.len();
        self.slots.push((end - value.len(), end));
    }

    /// Appends a value to the key only (length-prefixed: values cannot run into each other).
    #[inline]
    pub fn push_key(&mut self, value: &str) {
        self.key
            .extend_from_slice(&(value.len() as u32).to_le_bytes());
        self.key.extend_from_slice(value.as_bytes());
    }

    /// Appends raw bytes to the key (a fixed-size header or token).
    #[inline]
    pub fn push_raw(&mut self, bytes: &[u8]) {
        self.key.extend_from_slice(bytes);
    }

    /// The `slot`-th value appended with [`MetricCache::push`] (`""` if out of range).
    pub fn value(&self, slot: usize) -> &str {
        self.slots
            .get(slot)
            .and_then(|&(s, e)| self.key.get(s..e))
            .and_then(|b| proxy_attributes::bytes::as_str(b).ok())
            .unwrap_or("")
    }

    /// The cached stats of the current key.
    pub fn lookup(&self) -> Option<&[ResolvedStat]> {
        self.map.get(&self.key).map(Vec::as_slice)
    }

    /// Caches `stats` under the current key.
    pub fn insert(&mut self, stats: Vec<ResolvedStat>) {
        self.map.insert(&self.key, stats);
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn clear(&mut self) {
        self.map.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_distinguish_slot_boundaries() {
        let mut c = MetricCache::new();
        c.begin();
        c.push("ab");
        c.push("c");
        c.insert(vec![ResolvedStat { id: 1, gen: 0 }]);
        c.begin();
        c.push("a");
        c.push("bc");
        assert!(c.lookup().is_none());
        assert_eq!(c.value(1), "bc");
        c.begin();
        c.push("ab");
        c.push("c");
        assert_eq!(c.lookup(), Some(&[ResolvedStat { id: 1, gen: 0 }][..]));
    }
}
