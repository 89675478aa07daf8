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
/// Past this share of slots taken, each insert prepares a little of the next, doubled table.
/// Late, because a table whose load settles past it (retention balancing inserts) keeps its
/// prepared table, twice its size, until it grows: in a 30 M-event engine the carts' 134 MB
/// table had 268 MB prepared beside it when the run ended.
const PREPARE_LOAD_PERCENT: usize = 70;
/// Slots of the next table prepared per insert: between the two loads above come 5 % of the
/// slots in inserts, and 48 slots each make up the doubled table's 200 % in time.
const PREPARE_STEP: usize = 48;
/// Slots of the replaced table visited per insert (rounded up to the end of a probe run), so
/// that its entries have moved long before the doubled table needs to grow again.
const MIGRATE_STEP: usize = 8;
const MIN_SLOTS: usize = 16;
/// The most slots reserved for a deserialized length (the bound `crate::presized` uses).
const MAX_RESERVED: usize = 1 << 26;

type Slot<V> = Option<(u64, V)>;

/// Growing happens a little per insert, in two stages, so that no single insert pays for a
/// whole table. At tens of megabytes, doubling at once held the engine (and so every query
/// and acknowledgement) for up to a quarter of a second, most of it the first touch of the
/// new memory (see `docs/performance.md`, twelfth session).
/// 1. Preparing: past [`PREPARE_LOAD_PERCENT`], each insert appends empty slots to `spare`,
///    the next table, allocated at its full capacity but touched a part at a time.
/// 2. Migrating: past [`MAX_LOAD_PERCENT`], `spare` becomes `slots`, the old slots become
///    `draining`, and each insert moves a few of their entries over. Lookups search `slots`,
///    then `draining`.
#[derive(Clone)]
pub struct IdTable<V> {
    /// A power-of-two number of slots, or none before the first insert.
    slots: Vec<Slot<V>>,
    /// Entries held, in `slots` and `draining`.
    len: usize,
    draining: Draining<V>,
    /// The next table while it is prepared: empty slots, up to twice as many as `slots`.
    spare: Vec<Slot<V>>,
    /// Past this many entries an insert has growing to do (see [`IdTable::plan`]); below
    /// it, an insert's only cost of growing is comparing with it.
    work_at: usize,
    hasher: foldhash::fast::RandomState,
}

/// The slots a table replaced, while their entries move to the new one.
///
/// They are visited in order from just after an empty slot, and a step always stops just
/// after an empty slot, so each probe run is either wholly moved or wholly left: a key still
/// here is found by probing from its home as usual, and a key whose home was visited meets an
/// empty slot at once.
#[derive(Clone)]
struct Draining<V> {
    slots: Vec<Slot<V>>,
    /// The slot to visit next.
    next: usize,
    /// Slots not visited yet; at zero, `slots` has been freed.
    left: usize,
}

impl<V> Default for Draining<V> {
    fn default() -> Self {
        Self { slots: Vec::new(), next: 0, left: 0 }
    }
}

impl<V> Default for IdTable<V> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            len: 0,
            draining: Draining::default(),
            spare: Vec::new(),
            work_at: 0,
            hasher: foldhash::fast::RandomState::default(),
        }
    }
}

impl<V: fmt::Debug> fmt::Debug for IdTable<V> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_map().entries(self.iter()).finish()
    }
}

/// The slot holding `key` (whose seeded hash is `hash`), or the empty slot that ends its
/// probe. `slots` is a non-empty power of two long.
fn probe<V>(slots: &[Slot<V>], key: u64, hash: u64) -> Result<usize, usize> {
    let mask = slots.len() - 1;
    let mut index = hash as usize & mask;
    loop {
        match &slots[index] {
            Some((found, _)) if *found == key => return Ok(index),
            Some(_) => index = (index + 1) & mask,
            None => return Err(index),
        }
    }
}

/// Backward-shift deletion: moves later entries of the probe run into the hole at `hole`
/// when their home is at or before it, so every remaining key is still found by probing
/// from its home without meeting an empty slot. Entries never move past an empty slot.
fn close_gap<V>(slots: &mut [Slot<V>], hasher: &foldhash::fast::RandomState, mut hole: usize) {
    let mask = slots.len() - 1;
    let mut next = (hole + 1) & mask;
    while let Some((key, _)) = &slots[next] {
        let home = hasher.hash_one(*key) as usize & mask;
        // Cyclic distances: the entry may move back to `hole` when `hole` lies on its
        // probe path, i.e. between its home and where it sits now.
        if next.wrapping_sub(home) & mask >= next.wrapping_sub(hole) & mask {
            slots[hole] = slots[next].take();
            hole = next;
        }
        next = (next + 1) & mask;
    }
}

/// Removes the entries `keep` rejects, in place, calling it once per entry; returns how
/// many were removed.
///
/// One pass over the slots, each removal closing its gap as [`close_gap`] does. Retention
/// runs under the engine's write lock, and rebuilding the tables instead (as this did before)
/// held it for 0.3–0.5 s on shop traffic at 12 million events, allocating and filling second
/// tables as large as the first.
fn retain_in<V>(
    slots: &mut [Slot<V>],
    hasher: &foldhash::fast::RandomState,
    keep: &mut impl FnMut(u64, &mut V) -> bool,
) -> usize {
    // Start just after an empty slot (there is one: the load stays under 75 %), so that no
    // probe run wraps past the start. A gap closed at `at` then only pulls in entries from
    // later in the same run, which the pass has not reached yet and meets at `at`.
    let Some(empty) = slots.iter().position(Option::is_none) else { return 0 };
    let mask = slots.len() - 1;
    let mut removed = 0;
    for step in 1..=slots.len() {
        let at = (empty + step) & mask;
        while let Some((key, value)) = &mut slots[at] {
            if keep(*key, value) {
                break;
            }
            slots[at] = None;
            removed += 1;
            close_gap(slots, hasher, at);
        }
    }
    removed
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

    /// Heap bytes of the slots, including those of a table being prepared or drained (not of
    /// what entries own beyond themselves).
    pub fn heap_bytes(&self) -> usize {
        (self.slots.len() + self.draining.slots.len() + self.spare.len()) * size_of::<Slot<V>>()
    }

    fn hash(&self, key: u64) -> u64 {
        self.hasher.hash_one(key)
    }

    pub fn get(&self, key: u64) -> Option<&V> {
        if self.len == 0 {
            return None;
        }
        let hash = self.hash(key);
        let found = match probe(&self.slots, key, hash) {
            Ok(index) => &self.slots[index],
            Err(_) if self.draining.left > 0 => {
                &self.draining.slots[probe(&self.draining.slots, key, hash).ok()?]
            }
            Err(_) => return None,
        };
        found.as_ref().map(|(_, value)| value)
    }

    pub fn get_mut(&mut self, key: u64) -> Option<&mut V> {
        if self.len == 0 {
            return None;
        }
        let hash = self.hash(key);
        let found = match probe(&self.slots, key, hash) {
            Ok(index) => &mut self.slots[index],
            Err(_) if self.draining.left > 0 => {
                let index = probe(&self.draining.slots, key, hash).ok()?;
                &mut self.draining.slots[index]
            }
            Err(_) => return None,
        };
        found.as_mut().map(|(_, value)| value)
    }

    /// The entry of `key` and whether it was there already; made by `make` when it was not.
    pub fn get_or_insert_with(&mut self, key: u64, make: impl FnOnce() -> V) -> (&mut V, bool) {
        self.make_room_for_one();
        let hash = self.hash(key);
        let (index, found) = match probe(&self.slots, key, hash) {
            Ok(index) => (index, true),
            Err(index) => {
                // Not moved over yet: move it now, into the slot its probe ended at.
                let (value, found) = match self.take_draining(key, hash) {
                    Some(value) => (value, true),
                    None => {
                        self.len += 1;
                        (make(), false)
                    }
                };
                self.slots[index] = Some((key, value));
                (index, found)
            }
        };
        let value = self.slots[index].as_mut().map(|(_, value)| value);
        (value.unwrap_or_else(|| unreachable!("slot {index} was just found or filled")), found)
    }

    /// Inserts or replaces `key`'s entry, returning the one it replaced.
    pub fn insert(&mut self, key: u64, value: V) -> Option<V> {
        self.make_room_for_one();
        let hash = self.hash(key);
        match probe(&self.slots, key, hash) {
            Ok(index) => self.slots[index].replace((key, value)).map(|(_, old)| old),
            Err(index) => {
                let old = self.take_draining(key, hash);
                if old.is_none() {
                    self.len += 1;
                }
                self.slots[index] = Some((key, value));
                old
            }
        }
    }

    pub fn remove(&mut self, key: u64) -> Option<V> {
        if self.len == 0 {
            return None;
        }
        let hash = self.hash(key);
        let removed = match probe(&self.slots, key, hash) {
            Ok(index) => {
                let removed = self.slots[index].take().map(|(_, value)| value);
                close_gap(&mut self.slots, &self.hasher, index);
                removed
            }
            Err(_) => self.take_draining(key, hash),
        };
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    /// Takes `key`'s entry out of the table being drained, if it is still there.
    #[inline]
    fn take_draining(&mut self, key: u64, hash: u64) -> Option<V> {
        if self.draining.left == 0 {
            return None;
        }
        self.take_from_draining(key, hash)
    }

    fn take_from_draining(&mut self, key: u64, hash: u64) -> Option<V> {
        let slots = &mut self.draining.slots;
        let index = probe(slots, key, hash).ok()?;
        let taken = slots[index].take().map(|(_, value)| value);
        // The probe run holding `index` has not been visited (see `Draining`), and closing
        // its gap moves entries only within it.
        close_gap(slots, &self.hasher, index);
        taken
    }

    /// Keeps the entries `keep` accepts, calling it once per entry.
    ///
    /// In place (see [`retain_in`]); only a table left mostly empty is rebuilt, to give the
    /// space back.
    pub fn retain(&mut self, mut keep: impl FnMut(u64, &mut V) -> bool) {
        let mut removed = retain_in(&mut self.slots, &self.hasher, &mut keep);
        if self.draining.left > 0 {
            // Removals move entries only within their probe run, so the runs still to visit
            // stay whole and the visited slots stay empty.
            removed += retain_in(&mut self.draining.slots, &self.hasher, &mut keep);
        }
        self.len -= removed;
        self.shrink_if_sparse();
    }

    /// Gives memory back once most entries are gone: the prepared table's when growing is far
    /// off, and the table's own, rebuilt at a fitting size, when it is under an eighth full.
    /// Costs a few comparisons unless it does either (the live windows call it every second);
    /// the rebuild walks every slot, which only a table emptied after a spike pays, once.
    pub fn shrink_if_sparse(&mut self) {
        let slots = self.slots.len();
        if self.len * 100 < slots * MAX_LOAD_PERCENT / 2 && self.spare.capacity() > 0 {
            // Growing is far off (as far as just after doubling). Not sooner, so that a table
            // whose load hovers around where preparing starts does not prepare its next table
            // over and over.
            self.spare = Vec::new();
        }
        if self.draining.left == 0
            && slots > MIN_SLOTS
            && self.len * 100 < slots * MAX_LOAD_PERCENT / 8
        {
            self.resize_for(self.len);
        }
        self.plan();
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, &V)> {
        self.slots.iter().chain(&self.draining.slots).flatten().map(|(key, value)| (*key, value))
    }

    /// The entries, taken.
    pub fn into_entries(self) -> impl Iterator<Item = (u64, V)> {
        self.slots.into_iter().chain(self.draining.slots).flatten()
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.slots.iter().chain(&self.draining.slots).flatten().map(|(_, value)| value)
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        let draining = self.draining.slots.iter_mut();
        self.slots.iter_mut().chain(draining).flatten().map(|(_, value)| value)
    }

    /// Makes room for `more` entries beyond those held, at once (for loading and presizing;
    /// single inserts grow a little at a time instead).
    pub fn reserve(&mut self, more: usize) {
        let needed = self.len + more;
        if needed * 100 > self.slots.len() * MAX_LOAD_PERCENT {
            self.resize_for(needed);
        }
    }

    /// Before one insert: growing's share of work, if there is any.
    #[inline]
    fn make_room_for_one(&mut self) {
        if self.len >= self.work_at {
            self.growing_step();
        }
    }

    /// Sets `work_at` for the table's state: inserts have work while a table drains, once
    /// the next table is to be prepared, and when the prepared one is to be switched to.
    fn plan(&mut self) {
        let slots = self.slots.len();
        // `(len + 1) * 100 > slots * P` ⇔ `len + 1 > ⌊slots * P / 100⌋` ⇔ `len >= work_at`.
        self.work_at = if self.draining.left > 0 || slots == 0 {
            0
        } else if self.spare.len() < slots * 2 {
            slots * PREPARE_LOAD_PERCENT / 100
        } else {
            slots * MAX_LOAD_PERCENT / 100
        };
    }

    /// Moves a few entries of a replaced table, prepares a little of the next one, or
    /// switches to it, as the load requires. Out of line: most inserts have none of this.
    #[inline(never)]
    fn growing_step(&mut self) {
        self.grow_a_little();
        self.plan();
    }

    fn grow_a_little(&mut self) {
        if self.draining.left > 0 {
            self.migrate_step();
        }
        let needed = (self.len + 1) * 100;
        let slots = self.slots.len();
        if needed > slots * MAX_LOAD_PERCENT {
            self.switch_to_spare();
        } else if needed > slots * PREPARE_LOAD_PERCENT {
            let target = slots * 2;
            if self.spare.capacity() < target {
                self.spare = Vec::with_capacity(target);
            }
            let prepared = (self.spare.len() + PREPARE_STEP).min(target);
            self.spare.resize_with(prepared, || None);
        }
    }

    /// Makes the prepared table (completed first, should it be short) the one inserts go to,
    /// and starts draining the old one into it.
    fn switch_to_spare(&mut self) {
        if self.slots.is_empty() || self.draining.left > 0 {
            // The first insert, or growth outpacing the migration: grow at once.
            self.resize_for(self.len + 1);
            return;
        }
        let target = self.slots.len() * 2;
        let mut spare = std::mem::take(&mut self.spare);
        spare.resize_with(target, || None);
        let old = std::mem::replace(&mut self.slots, spare);
        let Some(empty) = old.iter().position(Option::is_none) else {
            unreachable!("a table is grown before it is full")
        };
        let left = old.len();
        self.draining = Draining { next: (empty + 1) & (left - 1), left, slots: old };
    }

    /// Moves the entries of at least [`MIGRATE_STEP`] slots of the table being drained, up to
    /// the end of a probe run.
    fn migrate_step(&mut self) {
        let mask = self.draining.slots.len() - 1;
        let mut visited = 0;
        loop {
            let at = self.draining.next;
            let entry = self.draining.slots[at].take();
            let was_empty = entry.is_none();
            if let Some((key, value)) = entry {
                let Err(index) = probe(&self.slots, key, self.hash(key)) else {
                    unreachable!("a key is in one table only")
                };
                self.slots[index] = Some((key, value));
            }
            self.draining.next = (at + 1) & mask;
            self.draining.left -= 1;
            visited += 1;
            if self.draining.left == 0 {
                self.draining = Draining::default();
                return;
            }
            if was_empty && visited >= MIGRATE_STEP {
                return;
            }
        }
    }

    /// Moves every entry into a new table with room for `entries` (grown or shrunk), at once.
    fn resize_for(&mut self, entries: usize) {
        let slots = (entries * 100 / MAX_LOAD_PERCENT + 1).next_power_of_two().max(MIN_SLOTS);
        let old = std::mem::take(&mut self.slots);
        let draining = std::mem::take(&mut self.draining).slots;
        self.spare = Vec::new();
        self.slots.resize_with(slots, || None);
        for (key, value) in old.into_iter().chain(draining).flatten() {
            let Err(index) = probe(&self.slots, key, self.hash(key)) else {
                unreachable!("keys are unique")
            };
            self.slots[index] = Some((key, value));
        }
        self.plan();
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

    /// Growing costs each insert a little: the doubled table is fully prepared before the
    /// switch, the old slots are drained a step per insert, and every key is found meanwhile.
    #[test]
    fn grows_a_little_per_insert() {
        let mut table = IdTable::default();
        let mut next_key = 0u64;
        let mut insert = |table: &mut IdTable<u64>| {
            table.insert(next_key, next_key * 3);
            next_key += 1;
            next_key
        };
        while table.slots.len() < 4096 {
            insert(&mut table);
        }
        // Up to the last insert before the switch.
        while (table.len() + 1) * 100 <= table.slots.len() * MAX_LOAD_PERCENT {
            insert(&mut table);
        }
        assert_eq!((table.slots.len(), table.spare.len(), table.draining.left), (4096, 8192, 0));
        insert(&mut table);
        assert_eq!((table.slots.len(), table.draining.left), (8192, 4096));
        // Runs may wrap past the end: count them from just after an empty slot.
        let mut old = table.draining.slots.clone();
        let empty = old.iter().position(Option::is_none).expect("an empty slot");
        old.rotate_left(empty + 1);
        let longest_run = old.split(Option::is_none).map(<[_]>::len).max().unwrap_or_default();
        let mut inserts_while_draining = 1;
        while table.draining.left > 0 {
            let left = table.draining.left;
            let inserted = insert(&mut table);
            inserts_while_draining += 1;
            // A step visits its share and then at most the rest of a probe run.
            let visited = left - table.draining.left;
            assert!(visited <= MIGRATE_STEP + longest_run, "{visited} slots, runs ≤ {longest_run}");
            assert!((0..inserted).all(|key| table.get(key) == Some(&(key * 3))));
        }
        assert!(
            inserts_while_draining <= 1 + 4096 / MIGRATE_STEP,
            "{inserts_while_draining} inserts"
        );
        assert_eq!(table.iter().count(), table.len());
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
