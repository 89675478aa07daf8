//! One rollup bucket's rows: measures per dimension key, compact.
//!
//! Rollup rows are most of the engine's memory at scale (millions of hour and day rows). A
//! bucket takes rows in a hash map while it is open (nearly every event lands in the newest
//! bucket). Once time has moved past it, [`Bucket::seal`] moves its rows into one vector sorted
//! by key and sized exactly: less than half the memory of the map, scanned contiguously by
//! queries, and a flat list in snapshots. A late event for a sealed bucket updates its row in
//! place (binary search) or, for a key the bucket did not have, goes to the map until the next
//! seal merges it.

use crate::FastMap;
use crate::facts::{FactKey, Measures};

/// The rows of one bucket.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Bucket {
    /// Sorted by key, no key twice; empty until the bucket is first sealed.
    #[serde(deserialize_with = "crate::presized::vec")]
    sealed: Vec<(FactKey, Measures)>,
    /// Rows of keys `sealed` does not hold.
    open: FastMap<FactKey, Measures>,
}

const ROW_BYTES: usize = std::mem::size_of::<(FactKey, Measures)>();

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
        self.row_mut(key).add(measures);
    }

    /// Adds another bucket's rows (a minute folding into its hour and day).
    pub fn add_bucket(&mut self, other: &Bucket) {
        for (key, measures) in other.iter() {
            self.add(*key, measures);
        }
    }

    #[inline]
    fn row_mut(&mut self, key: FactKey) -> &mut Measures {
        if !self.sealed.is_empty()
            && let Ok(index) = self.sealed.binary_search_by(|(row, _)| row.cmp(&key))
        {
            return &mut self.sealed[index].1;
        }
        self.open.entry(key).or_default()
    }

    /// Moves the open rows into the sorted vector (the bucket should receive few rows after
    /// this). Costs a sort of the open rows and a merge with the sealed ones when there are
    /// open rows, nothing otherwise.
    pub fn seal(&mut self) {
        if self.open.is_empty() {
            return;
        }
        let open: Vec<(FactKey, Measures)> = std::mem::take(&mut self.open).into_iter().collect();
        // Rows are ~100 bytes: sorting (key, position) pairs and gathering the rows once
        // moves a third as much memory as sorting the rows themselves.
        let mut order: Vec<(FactKey, u32)> =
            open.iter().enumerate().map(|(at, (key, _))| (*key, at as u32)).collect();
        order.sort_unstable_by_key(|(key, _)| *key);
        let fresh = order.into_iter().map(|(key, at)| (key, open[at as usize].1));
        // Keys in `open` are never in `sealed`, so the union is a merge of two sorted runs.
        let sealed = std::mem::take(&mut self.sealed);
        let mut merged = Vec::with_capacity(sealed.len() + open.len());
        let mut sealed = sealed.into_iter().peekable();
        for row in fresh {
            while let Some(earlier) = sealed.next_if(|(key, _)| *key < row.0) {
                merged.push(earlier);
            }
            merged.push(row);
        }
        merged.extend(sealed);
        self.sealed = merged;
    }

    /// Whether rows arrived since the last seal.
    pub fn has_open_rows(&self) -> bool {
        !self.open.is_empty()
    }

    pub fn len(&self) -> usize {
        self.sealed.len() + self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every row (sealed ones in key order, then open ones in no order).
    pub fn iter(&self) -> impl Iterator<Item = (&FactKey, &Measures)> {
        self.sealed.iter().map(|(key, measures)| (key, measures)).chain(&self.open)
    }

    /// Heap bytes held (hash maps: a control byte per slot).
    pub fn heap_bytes(&self) -> usize {
        self.sealed.capacity() * ROW_BYTES + self.open.capacity() * (ROW_BYTES + 1)
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

    fn totals(bucket: &Bucket) -> Vec<(u32, u32, i64)> {
        let mut rows: Vec<_> =
            bucket.iter().map(|(key, m)| (key.product, m.events, m.gross_revenue)).collect();
        rows.sort();
        rows
    }

    #[test]
    fn sealing_keeps_every_row_and_late_rows_still_add_up() {
        let mut bucket = Bucket::default();
        for product in [3, 1, 2, 3] {
            bucket.add(key(product), &one_event());
        }
        bucket.seal();
        assert!(!bucket.has_open_rows());
        assert_eq!(totals(&bucket), [(1, 1, 250), (2, 1, 250), (3, 2, 500)]);
        // A late row for a sealed key updates it in place; a new key waits in the map.
        bucket.add(key(2), &one_event());
        bucket.add(key(0), &one_event());
        assert!(bucket.has_open_rows());
        assert_eq!(bucket.len(), 4);
        assert_eq!(totals(&bucket), [(0, 1, 250), (1, 1, 250), (2, 2, 500), (3, 2, 500)]);
        bucket.seal();
        assert_eq!(totals(&bucket), [(0, 1, 250), (1, 1, 250), (2, 2, 500), (3, 2, 500)]);
        assert_eq!(bucket.heap_bytes(), 4 * ROW_BYTES);
    }

    proptest::proptest! {
        /// Rows added in any order with seals in between (late rows with keys before, between
        /// and after the sealed ones) hold exactly what a sorted map holds, sealed in key order.
        #[test]
        fn seals_merge_late_rows_in_key_order(
            batches in proptest::collection::vec(proptest::collection::vec(0u32..60, 0..40), 1..6),
        ) {
            let mut bucket = Bucket::default();
            let mut model = std::collections::BTreeMap::<u32, u32>::new();
            for batch in batches {
                for product in batch {
                    bucket.add(key(product), &one_event());
                    *model.entry(product).or_default() += 1;
                }
                bucket.seal();
                proptest::prop_assert!(!bucket.has_open_rows());
                proptest::prop_assert!(bucket.sealed.windows(2).all(|pair| pair[0].0 < pair[1].0));
                let held: Vec<(u32, u32)> =
                    bucket.iter().map(|(key, m)| (key.product, m.events)).collect();
                let expected: Vec<(u32, u32)> = model.iter().map(|(p, n)| (*p, *n)).collect();
                proptest::prop_assert_eq!(held, expected);
            }
        }
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
