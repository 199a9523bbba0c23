//! The table both glues keep their root and stream contexts in, keyed by Envoy's context id.
//!
//! Envoy hands out context ids from one counter per VM (proxy-wasm-cpp-host
//! `WasmBase::allocContextId`: `next_context_id_++`), so the live ids of a VM are, nearly
//! always, a recent dense range. A direct-mapped array indexed by the id's low bits then answers
//! a lookup with one compare; an id whose slot is held by another live id waits in a hash map.
//! Every callback looks its context up, and each stream is inserted and removed once: in wasm a
//! `FxHashMap` insert plus remove cost ~280 instructions and each lookup ~60, the array ~20.

use rustc_hash::FxHashMap;

/// Direct-mapped slots (a power of two). Envoy's concurrent streams per worker rarely exceed it,
/// and those that do still work, through the map.
const SLOTS: usize = 128;
const MASK: usize = SLOTS - 1;

/// A map from context id to `V`.
pub struct ContextTable<V> {
    /// Allocated on the first insert, so an empty table is free to create.
    slots: Vec<Option<(u32, V)>>,
    spill: FxHashMap<u32, V>,
}

impl<V> Default for ContextTable<V> {
    fn default() -> Self {
        ContextTable {
            slots: Vec::new(),
            spill: FxHashMap::default(),
        }
    }
}

impl<V> ContextTable<V> {
    #[inline]
    fn slot(&self, id: u32) -> Option<&Option<(u32, V)>> {
        self.slots.get(id as usize & MASK)
    }

    /// Inserts or replaces the value of `id`.
    pub fn insert(&mut self, id: u32, value: V) {
        self.insert_with(id, || value);
    }

    /// [`ContextTable::insert`] of `make()`, built where it is stored (a stream context is a
    /// few hundred bytes: moving it through arguments cost wasm `memory.copy` calls).
    #[inline(always)]
    pub fn insert_with(&mut self, id: u32, make: impl FnOnce() -> V) {
        if self.slots.is_empty() {
            self.slots.resize_with(SLOTS, || None);
        }
        let Some(slot) = self.slots.get_mut(id as usize & MASK) else {
            return;
        };
        match slot {
            Some((held, v)) if *held == id => *v = make(),
            Some(_) => {
                self.spill.insert(id, make());
            }
            None => {
                // `id` may still be in the map from when its slot was taken.
                if !self.spill.is_empty() {
                    self.spill.remove(&id);
                }
                *slot = Some((id, make()));
            }
        }
    }

    pub fn get(&self, id: u32) -> Option<&V> {
        match self.slot(id) {
            Some(Some((held, v))) if *held == id => Some(v),
            _ if self.spill.is_empty() => None,
            _ => self.spill.get(&id),
        }
    }

    pub fn get_mut(&mut self, id: u32) -> Option<&mut V> {
        match self.slots.get_mut(id as usize & MASK) {
            Some(Some((held, v))) if *held == id => Some(v),
            _ if self.spill.is_empty() => None,
            _ => self.spill.get_mut(&id),
        }
    }

    pub fn contains_key(&self, id: u32) -> bool {
        self.get(id).is_some()
    }

    pub fn remove(&mut self, id: u32) -> Option<V> {
        if let Some(slot) = self.slots.get_mut(id as usize & MASK) {
            if matches!(slot, Some((held, _)) if *held == id) {
                return slot.take().map(|(_, v)| v);
            }
        }
        if self.spill.is_empty() {
            None
        } else {
            self.spill.remove(&id)
        }
    }

    /// Drops the value of `id` where it is (no move out, unlike [`ContextTable::remove`]);
    /// `false` if there was none.
    pub fn discard(&mut self, id: u32) -> bool {
        if let Some(slot) = self.slots.get_mut(id as usize & MASK) {
            if matches!(slot, Some((held, _)) if *held == id) {
                *slot = None;
                return true;
            }
        }
        !self.spill.is_empty() && self.spill.remove(&id).is_some()
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &V)> {
        let direct = self
            .slots
            .iter()
            .filter_map(|s| s.as_ref().map(|(id, v)| (*id, v)));
        direct.chain(self.spill.iter().map(|(id, v)| (*id, v)))
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }

    /// Keeps the entries for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(u32, &mut V) -> bool) {
        for slot in &mut self.slots {
            if let Some((id, v)) = slot {
                if !keep(*id, v) {
                    *slot = None;
                }
            }
        }
        self.spill.retain(|id, v| keep(*id, v));
    }

    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count() + self.spill.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn sequential_ids_live_in_their_slots() {
        let mut t = ContextTable::default();
        for id in 1..=100u32 {
            t.insert(id, id * 10);
        }
        assert!(t.spill.is_empty());
        assert_eq!(t.get(42), Some(&420));
        assert_eq!(t.remove(42), Some(420));
        assert_eq!(t.get(42), None);
        assert_eq!(t.remove(42), None);
        assert!(t.discard(43));
        assert!(!t.discard(43));
        assert_eq!(t.get(43), None);
        assert_eq!(t.len(), 98);
    }

    #[test]
    fn an_id_whose_slot_is_taken_is_kept_in_the_map_and_found_there() {
        let mut t = ContextTable::default();
        let a = 5u32;
        let b = a + SLOTS as u32; // same slot as `a`
        let c = b + SLOTS as u32;
        t.insert(a, "a");
        t.insert(b, "b");
        t.insert(c, "c");
        assert_eq!(
            (t.get(a), t.get(b), t.get(c)),
            (Some(&"a"), Some(&"b"), Some(&"c"))
        );
        // Freeing the slot leaves the others reachable in the map …
        assert_eq!(t.remove(a), Some("a"));
        assert_eq!(
            (t.get(a), t.get(b), t.get(c)),
            (None, Some(&"b"), Some(&"c"))
        );
        // … and replacing `b` while its slot is free does not leave a stale copy behind.
        t.insert(b, "b2");
        assert_eq!(t.get(b), Some(&"b2"));
        assert_eq!(t.remove(b), Some("b2"));
        assert_eq!(t.get(b), None);
        assert_eq!(t.len(), 1);
        *t.get_mut(c).unwrap() = "c2";
        assert_eq!(t.remove(c), Some("c2"));
        assert!(t.is_empty());
    }

    #[test]
    fn behaves_like_a_map_under_a_random_workload() {
        // Ids from a small window (as Envoy's counter gives) and wide jumps (forcing collisions).
        let mut t = ContextTable::default();
        let mut model = BTreeMap::new();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for step in 0..50_000u32 {
            let r = next();
            let id = if r & 1 == 0 {
                (r >> 8) as u32 % 300
            } else {
                (r >> 8) as u32
            };
            match (r >> 40) % 5 {
                0 | 1 => {
                    t.insert(id, step);
                    model.insert(id, step);
                }
                2 if r & 2 == 0 => assert_eq!(t.remove(id), model.remove(&id)),
                2 => assert_eq!(t.discard(id), model.remove(&id).is_some()),
                3 => {
                    if let Some(v) = t.get_mut(id) {
                        *v += 1;
                    }
                    if let Some(v) = model.get_mut(&id) {
                        *v += 1;
                    }
                }
                _ => assert_eq!(t.get(id), model.get(&id)),
            }
            if step % 5_000 == 0 {
                t.retain(|id, _| id % 7 != 0);
                model.retain(|id, _| id % 7 != 0);
            }
        }
        let mut all: Vec<(u32, u32)> = t.iter().map(|(id, v)| (id, *v)).collect();
        all.sort_unstable();
        assert_eq!(all, model.into_iter().collect::<Vec<_>>());
    }
}
