//! A hash table keyed by 64-bit id hashes ([`crate::distinct::hash_id`]), for the engine's
//! per-visitor and per-session entries.
//!
//! Those entries are spread over tens of megabytes, so finding one costs a cache miss more
//! often than not (~200 ns on our machines). The standard `HashMap` keeps its control bytes
//! and its entries in two places, so a lookup that misses misses twice; here each slot holds
//! its key beside its entry (open addressing, linear probing over one vector), so a lookup
//! touches one slot and usually its neighbour. With the index changes made beside it, applying
//! the bench's mix became 25–45 % faster (see `docs/performance.md`, seventh session).
//!
//! Keys are hashed again with a per-process seed (foldhash, as [`crate::FastMap`] does) so
//! that ids crafted to collide in the id hash's low bits do not collide here. Serialized as a
//! map, exactly like `FastMap<u64, V>`, so snapshots do not change.

use std::fmt;
use std::hash::BuildHasher;
use std::marker::PhantomData;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

/// Grown when more than this share of slots is taken (linear probing stays short below it).
const MAX_LOAD_PERCENT: usize = 75;
const MIN_SLOTS: usize = 16;
/// The most slots reserved for a deserialized length (the bound `crate::presized` uses).
const MAX_RESERVED: usize = 1 << 26;

#[derive(Clone)]
pub struct IdTable<V> {
    /// A power-of-two number of slots, or none before the first insert.
    slots: Vec<Option<(u64, V)>>,
    len: usize,
    hasher: foldhash::fast::RandomState,
}

impl<V> Default for IdTable<V> {
    fn default() -> Self {
        Self { slots: Vec::new(), len: 0, hasher: foldhash::fast::RandomState::default() }
    }
}

impl<V: fmt::Debug> fmt::Debug for IdTable<V> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_map().entries(self.iter()).finish()
    }
}

impl<V> IdTable<V> {
    pub fn with_capacity(entries: usize) -> Self {
        let mut table = Self::default();
        table.reserve(entries);
        table
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Heap bytes of the slots (not of what entries own beyond themselves).
    pub fn heap_bytes(&self) -> usize {
        self.slots.len() * size_of::<Option<(u64, V)>>()
    }

    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    fn home(&self, key: u64) -> usize {
        self.hasher.hash_one(key) as usize & self.mask()
    }

    /// The slot holding `key`, or the empty slot that ends its probe.
    fn probe(&self, key: u64) -> Result<usize, usize> {
        let mask = self.mask();
        let mut index = self.home(key);
        loop {
            match &self.slots[index] {
                Some((found, _)) if *found == key => return Ok(index),
                Some(_) => index = (index + 1) & mask,
                None => return Err(index),
            }
        }
    }

    pub fn get(&self, key: u64) -> Option<&V> {
        if self.slots.is_empty() {
            return None;
        }
        let index = self.probe(key).ok()?;
        self.slots[index].as_ref().map(|(_, value)| value)
    }

    pub fn get_mut(&mut self, key: u64) -> Option<&mut V> {
        if self.slots.is_empty() {
            return None;
        }
        let index = self.probe(key).ok()?;
        self.slots[index].as_mut().map(|(_, value)| value)
    }

    /// The entry of `key` and whether it was there already; made by `make` when it was not.
    pub fn get_or_insert_with(&mut self, key: u64, make: impl FnOnce() -> V) -> (&mut V, bool) {
        self.reserve(1);
        let (index, found) = match self.probe(key) {
            Ok(index) => (index, true),
            Err(index) => {
                self.slots[index] = Some((key, make()));
                self.len += 1;
                (index, false)
            }
        };
        let value = self.slots[index].as_mut().map(|(_, value)| value);
        (value.unwrap_or_else(|| unreachable!("slot {index} was just found or filled")), found)
    }

    /// Inserts or replaces `key`'s entry, returning the one it replaced.
    pub fn insert(&mut self, key: u64, value: V) -> Option<V> {
        self.reserve(1);
        match self.probe(key) {
            Ok(index) => self.slots[index].replace((key, value)).map(|(_, old)| old),
            Err(index) => {
                self.slots[index] = Some((key, value));
                self.len += 1;
                None
            }
        }
    }

    pub fn remove(&mut self, key: u64) -> Option<V> {
        if self.slots.is_empty() {
            return None;
        }
        let index = self.probe(key).ok()?;
        let removed = self.slots[index].take().map(|(_, value)| value);
        self.len -= 1;
        self.close_gap(index);
        removed
    }

    /// Backward-shift deletion: moves later entries of the probe run into the hole at `hole`
    /// when their home is at or before it, so every remaining key is still found by probing
    /// from its home without meeting an empty slot.
    fn close_gap(&mut self, mut hole: usize) {
        let mask = self.mask();
        let mut next = (hole + 1) & mask;
        while let Some((key, _)) = &self.slots[next] {
            let home = self.home(*key);
            // Cyclic distances: the entry may move back to `hole` when `hole` lies on its
            // probe path, i.e. between its home and where it sits now.
            if next.wrapping_sub(home) & mask >= next.wrapping_sub(hole) & mask {
                self.slots[hole] = self.slots[next].take();
                hole = next;
            }
            next = (next + 1) & mask;
        }
    }

    /// Keeps the entries `keep` accepts, calling it once per entry.
    ///
    /// In place: one pass over the slots, each removal closing its gap as [`IdTable::remove`]
    /// does. Retention runs under the engine's write lock, and rebuilding the tables instead
    /// (as this did before) held it for 0.3–0.5 s on shop traffic at 12 million events,
    /// allocating and filling second tables as large as the first. Only a table left mostly
    /// empty is rebuilt, to give the space back.
    pub fn retain(&mut self, mut keep: impl FnMut(u64, &mut V) -> bool) {
        let slots = self.slots.len();
        // Start just after an empty slot (there is one: the load stays under 75 %), so that no
        // probe run wraps past the start. A gap closed at `at` then only pulls in entries from
        // later in the same run, which the pass has not reached yet and meets at `at`.
        let Some(empty) = self.slots.iter().position(Option::is_none) else { return };
        let mask = self.mask();
        for step in 1..=slots {
            let at = (empty + step) & mask;
            while let Some((key, value)) = &mut self.slots[at] {
                if keep(*key, value) {
                    break;
                }
                self.slots[at] = None;
                self.len -= 1;
                self.close_gap(at);
            }
        }
        if slots > MIN_SLOTS && self.len * 100 < slots * MAX_LOAD_PERCENT / 8 {
            self.resize_for(self.len);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, &V)> {
        self.slots.iter().flatten().map(|(key, value)| (*key, value))
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.slots.iter().flatten().map(|(_, value)| value)
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.slots.iter_mut().flatten().map(|(_, value)| value)
    }

    /// Makes room for `more` entries beyond those held.
    pub fn reserve(&mut self, more: usize) {
        let needed = self.len + more;
        if needed * 100 > self.slots.len() * MAX_LOAD_PERCENT {
            self.resize_for(needed);
        }
    }

    /// Moves the entries into a new table with room for `entries` (grown or shrunk).
    fn resize_for(&mut self, entries: usize) {
        let slots = (entries * 100 / MAX_LOAD_PERCENT + 1).next_power_of_two().max(MIN_SLOTS);
        let old = std::mem::take(&mut self.slots);
        self.slots.resize_with(slots, || None);
        for (key, value) in old.into_iter().flatten() {
            let Err(index) = self.probe(key) else { unreachable!("keys are unique") };
            self.slots[index] = Some((key, value));
        }
    }
}

impl<V: Serialize> Serialize for IdTable<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len))?;
        for (key, value) in self.iter() {
            map.serialize_entry(&key, value)?;
        }
        map.end()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for IdTable<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TableVisitor<V>(PhantomData<V>);

        impl<'de, V: Deserialize<'de>> Visitor<'de> for TableVisitor<V> {
            type Value = IdTable<V>;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a map of id hashes")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                // Snapshots are written by the engine and checksummed: their lengths are
                // trusted, up to a bound (as in `crate::presized`).
                let reserved = access.size_hint().unwrap_or(0).min(MAX_RESERVED);
                let mut table = IdTable::with_capacity(reserved);
                while let Some((key, value)) = access.next_entry()? {
                    table.insert(key, value);
                }
                Ok(table)
            }
        }

        deserializer.deserialize_map(TableVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u64, u32),
        Remove(u64),
        Upsert(u64, u32),
        Retain(u64),
    }

    /// Keys from a small range, so that removals hit and probe runs collide and wrap.
    fn op() -> impl Strategy<Value = Op> {
        let key = 0u64..64;
        prop_oneof![
            4 => (key.clone(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            3 => key.clone().prop_map(Op::Remove),
            2 => (key, any::<u32>()).prop_map(|(k, v)| Op::Upsert(k, v)),
            1 => (1u64..5).prop_map(Op::Retain),
        ]
    }

    proptest! {
        /// Whatever the operations, the table holds exactly what a `HashMap` given the same
        /// operations holds, and every key is found.
        #[test]
        fn behaves_like_a_hash_map(ops in proptest::collection::vec(op(), 0..400)) {
            let mut table = IdTable::default();
            let mut model = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => prop_assert_eq!(table.insert(k, v), model.insert(k, v)),
                    Op::Remove(k) => prop_assert_eq!(table.remove(k), model.remove(&k)),
                    Op::Upsert(k, v) => {
                        let (entry, found) = table.get_or_insert_with(k, || v);
                        prop_assert_eq!(found, model.contains_key(&k));
                        *entry = entry.wrapping_add(1);
                        let modelled = model.entry(k).or_insert(v);
                        *modelled = modelled.wrapping_add(1);
                    }
                    Op::Retain(m) => {
                        // Each entry is offered once, and may be changed as it is kept.
                        let mut offered = Vec::new();
                        table.retain(|k, v| {
                            offered.push(k);
                            *v = v.wrapping_mul(3);
                            k % m != 0
                        });
                        offered.sort_unstable();
                        let mut held: Vec<u64> = model.keys().copied().collect();
                        held.sort_unstable();
                        prop_assert_eq!(offered, held);
                        model.retain(|k, v| {
                            *v = v.wrapping_mul(3);
                            k % m != 0
                        });
                    }
                }
                prop_assert_eq!(table.len(), model.len());
            }
            for k in 0..64 {
                prop_assert_eq!(table.get(k), model.get(&k));
            }
            let mut held: Vec<(u64, u32)> = table.iter().map(|(k, v)| (k, *v)).collect();
            held.sort_unstable();
            let mut expected: Vec<(u64, u32)> = model.into_iter().collect();
            expected.sort_unstable();
            prop_assert_eq!(held, expected);
        }
    }

    /// Retention that drops most entries gives the space back; dropping a few keeps the slots.
    #[test]
    fn retain_shrinks_only_a_table_left_mostly_empty() {
        let mut table = IdTable::default();
        for key in 0..10_000u64 {
            table.insert(key, key);
        }
        let slots = table.slots.len();
        table.retain(|key, _| key % 10 != 0);
        assert_eq!((table.len(), table.slots.len()), (9_000, slots));
        table.retain(|key, _| key % 100 == 1);
        assert_eq!(table.len(), 100);
        assert!(table.slots.len() < slots / 8, "{} slots for 100 entries", table.slots.len());
        assert!((0..10_000u64).all(|key| table.get(key).is_some() == (key % 100 == 1)));
    }

    /// The wire format is the one `FastMap<u64, V>` had, so existing snapshots still load.
    #[test]
    fn serializes_like_a_fast_map() {
        let mut table = IdTable::default();
        let mut map = crate::FastMap::default();
        table.insert(7, "seven".to_owned());
        map.insert(7u64, "seven".to_owned());
        let bytes = postcard::to_allocvec(&table).expect("encodes");
        assert_eq!(bytes, postcard::to_allocvec(&map).expect("encodes"));
        let back: IdTable<String> = postcard::from_bytes(&bytes).expect("decodes");
        assert_eq!(back.get(7).map(String::as_str), Some("seven"));
        assert_eq!(back.len(), 1);
    }
}
