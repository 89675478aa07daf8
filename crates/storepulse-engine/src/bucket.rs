//! One rollup bucket's rows: measures per dimension key, compact.
//!
//! Rollup rows are most of the engine's memory at scale (millions of hour and day rows). A
//! minute bucket takes rows in a hash map while it is open (nearly every event lands in the
//! newest minute). Once time has moved past it, [`Bucket::seal`] moves its rows into one
//! vector sized exactly: less than half the memory of the map, scanned contiguously by
//! queries, and a flat list in snapshots. Hours and days are built sealed, by summing their
//! minutes or hours ([`Bucket::sum_of`]). The vector is in no particular order: every reader
//! sums rows, and sorting each hour and day as it sealed was a tenth of applying shop traffic's
//! instructions (callgrind, twentieth session). A late event for a sealed bucket goes to the
//! map, even when its key is also sealed (the bucket then holds that key twice, and readers
//! add both), until the next seal merges it.

use std::collections::hash_map::Entry;
use std::hash::BuildHasher;

use crate::FastMap;
use crate::facts::{FactKey, Measures};

/// The rows of one bucket. (`M` is the measures' layout: an older one only while a snapshot
/// of an older format is read, see [`crate::facts::MeasuresUpToV13`].)
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Bucket<M = Measures> {
    /// No key twice, in no order; empty until the bucket is first sealed.
    #[serde(deserialize_with = "crate::presized::vec")]
    sealed: Vec<(FactKey, M)>,
    /// Rows that arrived since the last seal (their keys may also be in `sealed`).
    open: FastMap<FactKey, M>,
}

impl<M> Default for Bucket<M> {
    fn default() -> Self {
        Bucket { sealed: Vec::new(), open: FastMap::default() }
    }
}

impl<M: Into<Measures>> Bucket<M> {
    /// This bucket in the current layout.
    pub fn upgraded(self) -> Bucket {
        Bucket {
            sealed: self.sealed.into_iter().map(|(key, row)| (key, row.into())).collect(),
            open: self.open.into_iter().map(|(key, row)| (key, row.into())).collect(),
        }
    }
}

const ROW_BYTES: usize = std::mem::size_of::<(FactKey, Measures)>();

/// Rows per part when buckets are summed in parts ([`Bucket::sum_of`]): a part's map, ~100
/// bytes a row at twice its rows' room, stays well inside the core's cache.
const ROWS_PER_PART: usize = 512;

/// Rows dealt into parts at once: more (a day's fold, ~24 times an hour's) are dealt a group
/// of parts at a time, reading the buckets once per group, so that the scratch memory stays
/// this size (~8 MB) however large a fold.
const MAX_DEALT_ROWS: usize = 1 << 16;

/// Memory [`Bucket::sum_of`] keeps from one fold to the next: the part of each row, the parts
/// rows are dealt into, the map a part is summed in, and the sums before they are copied out
/// sized exactly. Taken fresh for each fold, every 4 KB of it cost a page fault: ~40 % of an
/// hour's fold, and a day's (~28 MB fresh) took 25–35 ms at first and 130–220 ms once the
/// process held gigabytes (100 M events, twenty-third session).
#[derive(Debug, Default)]
pub struct SumScratch {
    part_of: Vec<u32>,
    dealt: Vec<Vec<(FactKey, Measures)>>,
    sums: FastMap<FactKey, Measures>,
    summed: Vec<(FactKey, Measures)>,
}

impl SumScratch {
    pub fn heap_bytes(&self) -> usize {
        let dealt: usize = self.dealt.iter().map(Vec::capacity).sum();
        let rows = (dealt + self.summed.capacity()) * ROW_BYTES;
        rows + self.sums.capacity() * (ROW_BYTES + 1) + self.part_of.capacity() * 4
    }

    /// Gives back what a fold far larger than usual left: the sums of more than
    /// [`MAX_DEALT_ROWS`] rows and the parts of more than four times as many.
    fn trim(&mut self) {
        if self.summed.capacity() > MAX_DEALT_ROWS {
            self.summed = Vec::new();
        }
        if self.part_of.capacity() > 4 * MAX_DEALT_ROWS {
            self.part_of = Vec::new();
        }
    }
}

/// A copy starts with no scratch of its own (it is only ever reused memory).
impl Clone for SumScratch {
    fn clone(&self) -> Self {
        SumScratch::default()
    }
}

/// Which part a key is summed in (fixed: parts never leave the process).
const PART_HASH: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x9a27_5107);

impl Bucket {
    /// An empty bucket whose open rows have room for `rows` keys.
    pub fn with_room(rows: usize) -> Self {
        Bucket {
            sealed: Vec::new(),
            open: FastMap::with_capacity_and_hasher(rows, Default::default()),
        }
    }

    #[inline]
    pub fn add(&mut self, key: FactKey, measures: &Measures) {
        sum(&mut self.open, &key, measures);
    }

    /// A sealed bucket holding the sums of `buckets`' rows, each key once (an hour from its
    /// minutes, a day from its hours), working in `scratch`.
    ///
    /// Summed in parts, not by adding every row to one map: an hour's map is a megabyte or
    /// more, so adding a minute at a time to it, as event time moved on, each row met a map
    /// that the events since had pushed out of the core's cache, a miss per row (~200 ns) and
    /// a fifth of the time of applying shop traffic (twenty-third session). Here the rows are
    /// first dealt into parts by their key's hash, each part written in sequence, and each
    /// part is then summed in a map small enough to stay in cache.
    pub fn sum_of(buckets: &[&Bucket], scratch: &mut SumScratch) -> Bucket {
        let rows: usize = buckets.iter().map(|bucket| bucket.len()).sum();
        let parts = rows.div_ceil(ROWS_PER_PART).next_power_of_two();
        let SumScratch { part_of, dealt, sums, summed } = scratch;
        let all_rows = || buckets.iter().flat_map(|bucket| bucket.iter());
        if parts <= 1 {
            all_rows().for_each(|(key, measures)| sum(sums, key, measures));
            summed.extend(sums.drain());
        } else {
            // The top bits of the hash pick the part, and the part's top bits its group.
            let shift = u64::BITS - parts.trailing_zeros();
            let groups = rows.div_ceil(MAX_DEALT_ROWS).next_power_of_two().min(parts);
            let group_parts = parts / groups;
            part_of.clear();
            part_of.extend(all_rows().map(|(key, _)| (PART_HASH.hash_one(key) >> shift) as u32));
            if dealt.len() < group_parts {
                dealt.resize_with(group_parts, Vec::new);
            }
            let room = rows / parts + rows / parts / 4 + 8;
            dealt[..group_parts].iter_mut().for_each(|part| part.reserve(room));
            for group in 0..groups {
                for ((key, measures), &part) in all_rows().zip(part_of.iter()) {
                    let part = part as usize;
                    if part / group_parts == group {
                        dealt[part % group_parts].push((*key, *measures));
                    }
                }
                for part in &mut dealt[..group_parts] {
                    part.drain(..).for_each(|(key, measures)| sum(sums, &key, &measures));
                    summed.extend(sums.drain());
                }
            }
        }
        // Sized exactly (the scratch's own vector stays for the next fold).
        let sealed = summed.as_slice().to_vec();
        summed.clear();
        scratch.trim();
        Bucket { sealed, open: FastMap::default() }
    }

    /// Adds another bucket's rows, one at a time (only converting a format 8 snapshot, whose
    /// few minutes in progress are added to their hour and day; folds use
    /// [`Bucket::sum_of`]).
    pub fn add_bucket(&mut self, other: &Bucket) {
        for (key, measures) in other.iter() {
            self.add(*key, measures);
        }
    }

    /// Moves the open rows into the sealed vector (the bucket should receive few rows after
    /// this). The first seal moves them as they are; a later one (late rows) adds each to its
    /// sealed row, found through an index of the sealed keys built for the purpose.
    pub fn seal(&mut self) {
        if self.open.is_empty() {
            return;
        }
        let open = std::mem::take(&mut self.open);
        if self.sealed.is_empty() {
            self.sealed = Vec::with_capacity(open.len());
            self.sealed.extend(open);
            return;
        }
        let mut position: FastMap<FactKey, usize> =
            FastMap::with_capacity_and_hasher(self.sealed.len(), Default::default());
        position.extend(self.sealed.iter().enumerate().map(|(at, (key, _))| (*key, at)));
        self.sealed.reserve_exact(open.len());
        for (key, measures) in open {
            match position.get(&key) {
                Some(&at) => self.sealed[at].1.add(&measures),
                None => self.sealed.push((key, measures)),
            }
        }
        self.sealed.shrink_to_fit();
    }

    /// Whether rows arrived since the last seal.
    pub fn has_open_rows(&self) -> bool {
        !self.open.is_empty()
    }

    /// Rows held (a sealed key reached again by a late event counts twice until the next
    /// seal).
    pub fn len(&self) -> usize {
        self.sealed.len() + self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every row, in no order; a key sealed and then reached by a late event comes twice
    /// until the next seal (readers sum rows).
    pub fn iter(&self) -> impl Iterator<Item = (&FactKey, &Measures)> {
        self.sealed.iter().map(|(key, measures)| (key, measures)).chain(&self.open)
    }

    /// Heap bytes held (hash maps: a control byte per slot).
    pub fn heap_bytes(&self) -> usize {
        self.sealed.capacity() * ROW_BYTES + self.open.capacity() * (ROW_BYTES + 1)
    }
}

/// Adds `measures` to `key`'s row in `sums`. A new key takes the measures as they are: a third
/// of the rows an event or a fold adds are new, and zeroing a row to add to it was as much
/// work again.
#[inline]
fn sum(sums: &mut FastMap<FactKey, Measures>, key: &FactKey, measures: &Measures) {
    match sums.entry(*key) {
        Entry::Occupied(mut row) => row.get_mut().add(measures),
        Entry::Vacant(row) => {
            row.insert(*measures);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(product: u32) -> FactKey {
        FactKey { product, ..FactKey::default() }
    }

    fn one_event() -> Measures {
        Measures { events: 1, gross_revenue: 250, ..Measures::default() }
    }

    /// (product, events, revenue) per key, summed as readers sum rows.
    fn totals(bucket: &Bucket) -> Vec<(u32, u32, i64)> {
        let mut sums = std::collections::BTreeMap::<u32, (u32, i64)>::new();
        for (key, m) in bucket.iter() {
            let sum = sums.entry(key.product).or_default();
            *sum = (sum.0 + m.events, sum.1 + m.gross_revenue);
        }
        sums.into_iter().map(|(product, (events, revenue))| (product, events, revenue)).collect()
    }

    /// Whether no key is held twice.
    fn keys_unique(bucket: &Bucket) -> bool {
        let mut keys: Vec<FactKey> = bucket.iter().map(|(key, _)| *key).collect();
        let held = keys.len();
        keys.sort();
        keys.dedup();
        keys.len() == held
    }

    #[test]
    fn sealing_keeps_every_row_and_late_rows_still_add_up() {
        let mut bucket = Bucket::default();
        for product in [3, 1, 2, 3] {
            bucket.add(key(product), &one_event());
        }
        bucket.seal();
        assert!(!bucket.has_open_rows());
        assert_eq!(bucket.len(), 3);
        assert_eq!(bucket.heap_bytes(), 3 * ROW_BYTES, "sealed rows are sized exactly");
        assert_eq!(totals(&bucket), [(1, 1, 250), (2, 1, 250), (3, 2, 500)]);
        // Late rows wait in the map, a sealed key's too: it is held twice, and sums stay right.
        bucket.add(key(2), &one_event());
        bucket.add(key(0), &one_event());
        assert!(bucket.has_open_rows());
        assert_eq!(bucket.len(), 5);
        assert_eq!(totals(&bucket), [(0, 1, 250), (1, 1, 250), (2, 2, 500), (3, 2, 500)]);
        // The next seal merges them: each key once again.
        bucket.seal();
        assert!(!bucket.has_open_rows());
        assert!(keys_unique(&bucket));
        assert_eq!(totals(&bucket), [(0, 1, 250), (1, 1, 250), (2, 2, 500), (3, 2, 500)]);
        assert_eq!(bucket.heap_bytes(), 4 * ROW_BYTES);
    }

    proptest::proptest! {
        /// Rows added in any order with seals in between (late rows with keys sealed before
        /// and new ones) add up to exactly what a map of sums holds, each key once after a seal.
        #[test]
        fn seals_merge_late_rows(
            batches in proptest::collection::vec(proptest::collection::vec(0u32..60, 0..40), 1..6),
        ) {
            let mut bucket = Bucket::default();
            let mut model = std::collections::BTreeMap::<u32, u32>::new();
            for batch in batches {
                for product in batch {
                    bucket.add(key(product), &one_event());
                    *model.entry(product).or_default() += 1;
                }
                let expected: Vec<(u32, u32, i64)> =
                    model.iter().map(|(p, n)| (*p, *n, 250 * i64::from(*n))).collect();
                proptest::prop_assert_eq!(totals(&bucket), expected.clone());
                bucket.seal();
                proptest::prop_assert!(!bucket.has_open_rows());
                proptest::prop_assert!(keys_unique(&bucket));
                proptest::prop_assert_eq!(bucket.len(), model.len());
                proptest::prop_assert_eq!(totals(&bucket), expected);
            }
        }
    }

    /// Buckets summed in parts (many keys) or at once (few) hold each key once, with every
    /// row of every bucket counted: sealed rows, late rows still open, a key in several.
    #[test]
    fn sums_of_buckets_count_every_row_once_per_key() {
        // Few keys (one part), several parts, and several groups of parts.
        for keys in [5, 3 * ROWS_PER_PART + 17, MAX_DEALT_ROWS + 1_000] {
            let mut model = std::collections::BTreeMap::<u32, (u32, i64)>::new();
            let mut buckets = Vec::new();
            for minute in 0..7u32 {
                let mut bucket = Bucket::default();
                for product in (minute..keys as u32).step_by(minute as usize + 1) {
                    bucket.add(key(product), &one_event());
                    let sum = model.entry(product).or_default();
                    *sum = (sum.0 + 1, sum.1 + 250);
                }
                if minute % 2 == 0 {
                    bucket.seal();
                    // A late row after the seal, for a key the bucket holds and a new one.
                    for product in [minute, keys as u32 + minute] {
                        bucket.add(key(product), &one_event());
                        let sum = model.entry(product).or_default();
                        *sum = (sum.0 + 1, sum.1 + 250);
                    }
                }
                buckets.push(bucket);
            }
            let mut scratch = SumScratch::default();
            let summed = Bucket::sum_of(&buckets.iter().collect::<Vec<_>>(), &mut scratch);
            assert!(!summed.has_open_rows());
            assert!(keys_unique(&summed));
            let expected: Vec<(u32, u32, i64)> = model
                .into_iter()
                .map(|(product, (events, revenue))| (product, events, revenue))
                .collect();
            assert_eq!(totals(&summed), expected);
            assert_eq!(summed.heap_bytes(), summed.len() * ROW_BYTES, "sized exactly");
        }
        assert!(Bucket::sum_of(&[], &mut SumScratch::default()).is_empty());
    }

    #[test]
    fn counters_saturate_instead_of_wrapping() {
        let mut bucket = Bucket::default();
        bucket.add(key(1), &Measures { events: u32::MAX - 1, ..Measures::default() });
        bucket.add(key(1), &Measures { events: 5, units: 7, ..Measures::default() });
        let rows: Vec<_> = bucket.iter().map(|(_, m)| (m.events, m.units)).collect();
        assert_eq!(rows, [(u32::MAX, 7)]);
    }
}
