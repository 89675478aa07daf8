//! How many visitors met each pair of products, with increments buffered per product.
//!
//! A visitor's new product adds one to its pair with every product the visitor already met, on
//! both sides. Adding each straight into its row's hash map costs a cache miss per increment
//! once the rows outgrow the cache (co-occurrence was 30 % of the engine's last-level misses on
//! shop traffic). Instead each increment is appended to its product's pending list — the
//! lists' tails are few and stay in cache — and every [`FOLD_AT`] increments the lists are
//! sorted and added to their rows, each row read once for hundreds of increments. Counts are
//! sums, so when they are added changes nothing; every reader sees rows and pending together,
//! and a snapshot holds the sums (the same format as plain nested maps).

use serde::ser::{SerializeMap, Serializer};

use crate::FastMap;

/// Increments buffered before they are added to the rows (4 bytes each).
const FOLD_AT: usize = 1 << 17;

#[derive(Clone, Debug, Default)]
pub(super) struct PairCounts {
    rows: FastMap<u32, FastMap<u32, u32>>,
    /// Per product, the other product of each increment not yet in `rows`.
    pending: FastMap<u32, Vec<u32>>,
    pending_count: usize,
}

impl PairCounts {
    /// One more visitor with both `product` and `other` (counted on `product`'s side only).
    pub(super) fn add(&mut self, product: u32, other: u32) {
        self.pending.entry(product).or_default().push(other);
        self.pending_count += 1;
        if self.pending_count >= FOLD_AT {
            self.fold();
        }
    }

    /// One more visitor with `product` and each of `others` (counted on `product`'s side
    /// only): [`PairCounts::add`] for each, with `product`'s pending list looked up once.
    pub(super) fn add_all(&mut self, product: u32, others: &[u32]) {
        self.pending.entry(product).or_default().extend_from_slice(others);
        self.pending_count += others.len();
        if self.pending_count >= FOLD_AT {
            self.fold();
        }
    }

    /// Adds every pending increment to its row.
    fn fold(&mut self) {
        for (product, others) in &mut self.pending {
            if others.is_empty() {
                continue;
            }
            others.sort_unstable();
            let row = self.rows.entry(*product).or_default();
            for run in others.chunk_by(|a, b| a == b) {
                *row.entry(run[0]).or_default() += run.len() as u32;
            }
            others.clear();
        }
        self.pending_count = 0;
    }

    /// `product`'s pair counts, rows and pending together, in no order.
    pub(super) fn row(&self, product: u32) -> FastMap<u32, u32> {
        let mut row = self.rows.get(&product).cloned().unwrap_or_default();
        for &other in self.pending.get(&product).into_iter().flatten() {
            *row.entry(other).or_default() += 1;
        }
        row
    }

    /// Calls `add(other, count)` for `product`'s folded counts and `add(other, 1)` for each
    /// pending increment: an `other` may come more than once, so this suits callers that sum
    /// (no copy of the row, unlike [`PairCounts::row`]).
    pub(super) fn for_each(&self, product: u32, mut add: impl FnMut(u32, u32)) {
        for (&other, &count) in self.rows.get(&product).into_iter().flatten() {
            add(other, count);
        }
        for &other in self.pending.get(&product).into_iter().flatten() {
            add(other, 1);
        }
    }

    pub(super) fn heap_bytes(&self) -> usize {
        let rows: usize = self.rows.values().map(|row| 32 + row.capacity() * 12).sum();
        let pending: usize = self.pending.values().map(|others| 32 + others.capacity() * 4).sum();
        rows + pending
    }
}

/// As nested maps `product → other → count` with the pending increments added in, so that a
/// snapshot does not depend on when the last fold ran.
impl serde::Serialize for PairCounts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let only_pending: Vec<u32> = self
            .pending
            .iter()
            .filter(|(product, others)| !others.is_empty() && !self.rows.contains_key(product))
            .map(|(product, _)| *product)
            .collect();
        let mut map = serializer.serialize_map(Some(self.rows.len() + only_pending.len()))?;
        for product in self.rows.keys().chain(&only_pending) {
            let has_pending = self.pending.get(product).is_some_and(|others| !others.is_empty());
            if has_pending {
                map.serialize_entry(product, &self.row(*product))?;
            } else {
                map.serialize_entry(product, &self.rows[product])?;
            }
        }
        map.end()
    }
}

impl<'de> serde::Deserialize<'de> for PairCounts {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let rows = FastMap::<u32, FastMap<u32, u32>>::deserialize(deserializer)?;
        Ok(Self { rows, ..Self::default() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pending increments count like folded ones, in answers and in snapshots, one at a time
    /// or several at once, and a snapshot decodes as the nested maps it always was.
    #[test]
    fn pending_and_folded_counts_are_the_same_counts() {
        let mut counts = PairCounts::default();
        let mut expected: FastMap<u32, FastMap<u32, u32>> = FastMap::default();
        let mut state: u64 = 3;
        for n in 0..(FOLD_AT + FOLD_AT / 2) {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let (product, other) = ((state >> 40) as u32 % 300, (state >> 20) as u32 % 300);
            if n % 5 == 0 {
                // A visitor's new product pairs with everything it met before, in one call.
                let others = [other, (other + 1) % 300, other];
                counts.add_all(product, &others);
                for other in others {
                    *expected.entry(product).or_default().entry(other).or_default() += 1;
                }
            } else {
                counts.add(product, other);
                *expected.entry(product).or_default().entry(other).or_default() += 1;
            }
            if n == 1_000 {
                // Before any fold: everything is pending.
                assert!(counts.rows.is_empty());
                assert_eq!(counts.row(product)[&other], expected[&product][&other]);
            }
        }
        assert!(!counts.rows.is_empty() && counts.pending_count > 0, "some folded, some not");
        for product in 0..300 {
            let expected_row = expected.get(&product).cloned().unwrap_or_default();
            assert_eq!(counts.row(product), expected_row);
            let mut summed: FastMap<u32, u32> = FastMap::default();
            counts.for_each(product, |other, count| *summed.entry(other).or_default() += count);
            assert_eq!(summed, expected_row);
        }
        let bytes = postcard::to_allocvec(&counts).unwrap();
        let plain: FastMap<u32, FastMap<u32, u32>> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(plain, expected);
        let restored: PairCounts = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(restored.rows, expected);
    }
}
