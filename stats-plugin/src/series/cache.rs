//! The metric-id cache: dimension values → the resolved stats (`metrics_`, `plugin.h:305-309`).
//! Never evicted, like Istio 1.13–1.17 (§7.1).
//!
//! The key is the dimension vector encoded into one reusable byte buffer (length-prefixed values),
//! so a hit costs one hash and one compare and allocates nothing.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// One resolved stat of a cached dimension vector (`SimpleStat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedStat {
    pub id: u32,
    /// Index into the schema's stat generators.
    pub gen: usize,
}

/// FxHash-style hasher: the keys are label values, hashing speed matters more than DoS resistance
/// (Istio's own cache uses the unkeyed `std::hash` too).
#[derive(Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

pub type FxBuild = BuildHasherDefault<FxHasher>;

/// The dimension-vector key builder plus the cache itself.
#[derive(Default)]
pub struct MetricCache {
    map: HashMap<Box<[u8]>, Vec<ResolvedStat>, FxBuild>,
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

    /// Appends the next slot's value.
    #[inline]
    pub fn push(&mut self, value: &str) {
        self.key
            .extend_from_slice(&(value.len() as u32).to_le_bytes());
        let start = self.key.len();
        self.key.extend_from_slice(value.as_bytes());
        self.slots.push((start, self.key.len()));
    }

    /// The value of `slot` in the current key (`""` if out of range).
    pub fn value(&self, slot: usize) -> &str {
        self.slots
            .get(slot)
            .and_then(|&(s, e)| self.key.get(s..e))
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }

    /// The cached stats of the current key.
    pub fn lookup(&self) -> Option<&[ResolvedStat]> {
        self.map.get(self.key.as_slice()).map(Vec::as_slice)
    }

    /// Caches `stats` under the current key.
    pub fn insert(&mut self, stats: Vec<ResolvedStat>) {
        self.map.insert(self.key.clone().into_boxed_slice(), stats);
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
