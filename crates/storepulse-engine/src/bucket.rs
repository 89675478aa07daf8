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
    /// this). Costs a sort of the bucket's rows when there are open ones, nothing otherwise.
    pub fn seal(&mut self) {
        if self.open.is_empty() {
            return;
        }
        // Keys in `open` are never in `sealed`, so the union needs no merging of rows.
        let open = std::mem::take(&mut self.open);
        self.sealed.reserve_exact(open.len());
        self.sealed.extend(open);
        self.sealed.sort_unstable_by_key(|(key, _)| *key);
        self.sealed.shrink_to_fit();
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

    #[test]
    fn counters_saturate_instead_of_wrapping() {
        let mut bucket = Bucket::default();
        bucket.add(key(1), &Measures { events: u32::MAX - 1, ..Measures::default() });
        bucket.add(key(1), &Measures { events: 5, units: 7, ..Measures::default() });
        let rows: Vec<_> = bucket.iter().map(|(_, m)| (m.events, m.units)).collect();
        assert_eq!(rows, [(u32::MAX, 7)]);
    }
}
