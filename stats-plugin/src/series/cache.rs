//! The metric-id cache: dimension values → the resolved stats (`metrics_`, `plugin.h:305-309`).
//! Never evicted, like Istio 1.13–1.17 (§7.1).
//!
//! A key has two parts. The *prefix* is encoded into one reusable byte buffer: a fixed header
//! and the custom dimension values (length-prefixed), which the report computes per request.
//! The *labels* are the standard values, given as a slot mask and a look-up, and are hashed and
//! compared where they are (the report's label array) rather than copied into the buffer: the
//! copies were a `memory.copy` libcall each in wasmtime, ~1,000 wasm instructions of a default
//! request with the hash and compare around them. A stored key is the prefix followed by the
//! labels in slot order, each length-prefixed (values cannot run into each other); a hit costs
//! one hash and one word-wise compare and allocates nothing.
//!
//! The caller may leave out what is constant for the cache's lifetime and stand a short token in
//! for a group of values (the report does, for the local node, a cached peer and the request's
//! outcome labels), as long as the key still determines every value: see
//! `StatsPlugin::report`. The prefix must determine
//! which slots the label mask keeps and how many values it holds (the report's header does), as
//! a stored key does not record where the prefix ends.

use super::bytes_map::BytesMap;
use proxy_attributes::bytes::{bytes_eq, hash};

/// One resolved stat of a cached dimension vector (`SimpleStat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedStat {
    pub id: u32,
    /// Index into the schema's stat generators.
    pub gen: usize,
}

/// Standard label values by slot: the slots in `mask` (lowest first), each read with `value`.
#[derive(Clone, Copy)]
pub struct Labels<'a, F: Fn(usize) -> &'a [u8]> {
    pub mask: u32,
    pub value: F,
}

impl<'a, F: Fn(usize) -> &'a [u8]> Labels<'a, F> {
    /// The values in slot order (a walk over the set bits).
    #[inline(always)]
    fn for_each(&self, mut f: impl FnMut(&'a [u8]) -> bool) -> bool {
        let mut m = self.mask;
        while m != 0 {
            if !f((self.value)(m.trailing_zeros() as usize)) {
                return false;
            }
            m &= m - 1;
        }
        true
    }
}

/// The hash of a key (prefix bytes, then each label's own hash folded in, FxHash's step).
#[inline(always)]
fn key_hash<'a, F: Fn(usize) -> &'a [u8]>(prefix: &[u8], labels: &Labels<'a, F>) -> u64 {
    const K: u64 = 0xf135_7aea_2e62_a9c5;
    let mut h = hash(prefix);
    labels.for_each(|v| {
        h = (h.rotate_left(5) ^ hash(v)).wrapping_mul(K);
        true
    });
    h
}

/// Whether `stored` is `prefix` followed by the labels, each as a little-endian `u32` length
/// and its bytes.
#[inline(always)]
fn key_matches<'a, F: Fn(usize) -> &'a [u8]>(
    stored: &[u8],
    prefix: &[u8],
    labels: &Labels<'a, F>,
) -> bool {
    let Some(mut rest) = stored
        .split_at_checked(prefix.len())
        .and_then(|(p, rest)| bytes_eq(p, prefix).then_some(rest))
    else {
        return false;
    };
    labels.for_each(|v| {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            return false;
        };
        let Some((bytes, tail)) = tail.split_at_checked(v.len()) else {
            return false;
        };
        rest = tail;
        u32::from_le_bytes(*len) as usize == v.len() && bytes_eq(bytes, v)
    }) && rest.is_empty()
}

/// A key built by [`MetricCache::pending`].
pub struct PendingKey {
    hash: u64,
    bytes: Vec<u8>,
}

/// The dimension-vector key builder plus the cache itself.
#[derive(Default)]
pub struct MetricCache {
    map: BytesMap<Vec<ResolvedStat>>,
    /// The key's prefix.
    key: Vec<u8>,
    /// (start, end) of each [`MetricCache::push`]ed value inside `key`.
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
        self.key.reserve(256);
        self.slots.reserve(16);
    }

    /// Appends a value to the prefix and remembers where it is ([`MetricCache::value`]).
    #[inline]
    pub fn push(&mut self, value: &str) {
        self.key
            .extend_from_slice(&(value.len() as u32).to_le_bytes());
        self.key.extend_from_slice(value.as_bytes());
        let end = self.key.len();
        self.slots.push((end - value.len(), end));
    }

    /// Appends raw bytes to the prefix (a fixed-size header or token).
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

    /// The cached stats of the current prefix with `labels`.
    #[inline]
    pub fn lookup<'a, F: Fn(usize) -> &'a [u8]>(
        &self,
        labels: &Labels<'a, F>,
    ) -> Option<&[ResolvedStat]> {
        self.map
            .get_hashed(key_hash(&self.key, labels), |k| {
                key_matches(k, &self.key, labels)
            })
            .map(Vec::as_slice)
    }

    /// The full key of the current prefix with `labels`, to insert once the stats are resolved
    /// (the label values may borrow what resolving them changes).
    pub fn pending<'a, F: Fn(usize) -> &'a [u8]>(&self, labels: &Labels<'a, F>) -> PendingKey {
        let mut bytes = self.key.clone();
        labels.for_each(|v| {
            bytes.extend_from_slice(&(v.len() as u32).to_le_bytes());
            bytes.extend_from_slice(v);
            true
        });
        PendingKey {
            hash: key_hash(&self.key, labels),
            bytes,
        }
    }

    /// Caches `stats` under `key`.
    pub fn insert(&mut self, key: PendingKey, stats: Vec<ResolvedStat>) {
        self.map.insert_hashed(key.hash, &key.bytes, stats);
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
    use std::collections::HashMap;

    const STATS: [ResolvedStat; 1] = [ResolvedStat { id: 1, gen: 0 }];

    fn labels<'a>(mask: u32, values: &'a [&'a str]) -> Labels<'a, impl Fn(usize) -> &'a [u8] + 'a> {
        Labels {
            mask,
            value: move |i: usize| values.get(i).copied().unwrap_or("").as_bytes(),
        }
    }

    #[test]
    fn keys_distinguish_value_boundaries_in_the_prefix_and_the_labels() {
        let mut c = MetricCache::new();
        // Prefix values "ab", "c"; labels "xy", "z" (slots 0 and 2; slot 1 left out).
        c.begin();
        c.push("ab");
        c.push("c");
        let v = ["xy", "never read", "z"];
        c.insert(c.pending(&labels(0b101, &v)), STATS.to_vec());
        assert_eq!(c.lookup(&labels(0b101, &v)), Some(&STATS[..]));
        // The left-out slot plays no part.
        let w = ["xy", "other", "z"];
        assert_eq!(c.lookup(&labels(0b101, &w)), Some(&STATS[..]));
        // Same bytes, other label boundaries.
        assert!(c.lookup(&labels(0b101, &["x", "", "yz"])).is_none());
        assert!(c.lookup(&labels(0b101, &["xyz", "", ""])).is_none());
        // A label more or fewer.
        assert!(c.lookup(&labels(0b111, &["xy", "", "z"])).is_none());
        assert!(c.lookup(&labels(0b001, &v)).is_none());
        // Same bytes, other prefix boundaries.
        c.begin();
        c.push("a");
        c.push("bc");
        assert!(c.lookup(&labels(0b101, &v)).is_none());
        assert_eq!(c.value(1), "bc");
        // A prefix value moved into the labels.
        c.begin();
        c.push("ab");
        assert!(c.lookup(&labels(0b011, &["c", "xy"])).is_none());
        c.begin();
        c.push("ab");
        c.push("c");
        assert_eq!(c.lookup(&labels(0b101, &v)), Some(&STATS[..]));
        assert_eq!(c.len(), 1);
    }

    /// Random keys against a map of the owned values: a hit exactly when the same prefix values
    /// and label values (in slot order) were inserted before.
    #[test]
    fn lookups_agree_with_a_map_of_owned_values() {
        let words = [
            "",
            "a",
            "ab",
            "unknown",
            "spiffe://cluster.local/ns/x/sa/y",
            "200",
            "-",
        ];
        let mut model: HashMap<(Vec<&str>, Vec<&str>), u32> = HashMap::new();
        let mut c = MetricCache::new();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for step in 0..20_000u32 {
            let prefix: Vec<&str> = (0..next(3)).map(|_| words[next(words.len())]).collect();
            let values: Vec<&str> = (0..6).map(|_| words[next(words.len())]).collect();
            let mask = next(64) as u32;
            let kept: Vec<&str> = (0..6)
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| values[i])
                .collect();
            c.begin();
            for p in &prefix {
                c.push(p);
            }
            let l = labels(mask, &values);
            let got = c.lookup(&l).map(|s| s[0].id);
            let key = (prefix.clone(), kept);
            assert_eq!(got, model.get(&key).copied(), "step {step}: {key:?}");
            if got.is_none() {
                c.insert(c.pending(&l), vec![ResolvedStat { id: step, gen: 0 }]);
                model.insert(key, step);
            }
        }
        assert_eq!(c.len(), model.len());
    }
}
