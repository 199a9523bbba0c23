//! A hash map keyed by byte strings, for the two per-request caches (metric ids by dimension
//! values, decoded peers by peer id).
//!
//! Why not `HashMap<Box<[u8]>, V>`: its key comparison is `[u8] == [u8]`, which lowers to
//! `memcmp`, and on wasm32 that is compiler-builtins' byte-at-a-time loop. A metric key is a few
//! hundred bytes, so that compare alone was ~6 % of a request (perf, stats default config).
//! Here the map is keyed by the 64-bit hash and the bytes are compared eight at a time
//! ([`proxy_attributes::bytes::bytes_eq`]).

use proxy_attributes::bytes::bytes_eq;
use rustc_hash::FxHashMap;

/// The hash of a key (`proxy_attributes::bytes::hash`): label values and peer ids, so speed
/// matters more than DoS resistance (Istio's own cache uses the unkeyed `std::hash`).
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    proxy_attributes::bytes::hash(bytes)
}

/// The entries whose keys share one 64-bit hash.
type Bucket<V> = Vec<(Box<[u8]>, V)>;

/// Byte-string keyed map: buckets by hash, entries compared with [`bytes_eq`].
pub struct BytesMap<V> {
    // Keyed by the precomputed hash (Fx on a `u64` is one multiply).
    buckets: FxHashMap<u64, Bucket<V>>,
    len: usize,
}

impl<V> Default for BytesMap<V> {
    fn default() -> Self {
        BytesMap {
            buckets: FxHashMap::default(),
            len: 0,
        }
    }
}

impl<V> BytesMap<V> {
    pub fn get(&self, key: &[u8]) -> Option<&V> {
        self.buckets
            .get(&hash_bytes(key))?
            .iter()
            .find(|(k, _)| bytes_eq(k, key))
            .map(|(_, v)| v)
    }

    /// The entry with hash `hash` whose key satisfies `eq`: for a caller that hashes and compares
    /// a key it holds in pieces (the metric cache). Its keys must all go through
    /// [`BytesMap::insert_hashed`] with the same hash function.
    #[inline]
    pub fn get_hashed(&self, hash: u64, eq: impl Fn(&[u8]) -> bool) -> Option<&V> {
        self.buckets
            .get(&hash)?
            .iter()
            .find(|(k, _)| eq(k))
            .map(|(_, v)| v)
    }

    /// Inserts or replaces.
    pub fn insert(&mut self, key: &[u8], value: V) {
        self.insert_hashed(hash_bytes(key), key, value);
    }

    /// Inserts or replaces `key`, filed under `hash` (see [`BytesMap::get_hashed`]).
    pub fn insert_hashed(&mut self, hash: u64, key: &[u8], value: V) {
        let bucket = self.buckets.entry(hash).or_default();
        if let Some(slot) = bucket.iter_mut().find(|(k, _)| bytes_eq(k, key)) {
            slot.1 = value;
        } else {
            bucket.push((key.into(), value));
            self.len += 1;
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn clear(&mut self) {
        self.buckets.clear();
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colliding_hashes_keep_both_entries() {
        let mut m = BytesMap::default();
        m.insert(b"alpha", 1);
        m.insert(b"beta", 2);
        // Force a collision: put a third key into alpha's bucket by hand.
        let h = hash_bytes(b"alpha");
        m.buckets
            .get_mut(&h)
            .unwrap()
            .push((b"gamma"[..].into(), 3));
        assert_eq!(m.get(b"alpha"), Some(&1));
        assert_eq!(m.get(b"beta"), Some(&2));
        assert_eq!(m.get(b"delta"), None);
        m.insert(b"alpha", 10);
        assert_eq!(m.get(b"alpha"), Some(&10));
        assert_eq!(m.len(), 2);
        m.clear();
        assert!(m.is_empty() && m.get(b"beta").is_none());
    }
}
