//! How many visitors met each pair of products, with increments buffered.
//!
//! A visitor's new product adds one to its pair with every product the visitor already met, on
//! both sides. Adding each straight into its row's hash map costs a cache miss per increment
//! once the rows outgrow the cache (co-occurrence was 30 % of the engine's last-level misses on
//! shop traffic). Instead each increment is appended to one list of pending pairs, and every
//! [`FOLD_AT`] increments the list is sorted and added to the rows, each row read once for
//! hundreds of increments. One list, not one per product: a lookup of the product's own list
//! per increment was two thirds of the increments' cost (~36 ns an event of shop traffic,
//! twenty-third session). Counts are sums, so when they are added changes nothing; every
//! reader sees rows and pending together, and a snapshot holds the sums (the same format as
//! plain nested maps).

use serde::ser::Serializer;

use crate::FastMap;

/// Increments buffered before they are added to the rows (8 bytes each: 512 KB, scanned by a
/// reader in well under a millisecond).
const FOLD_AT: usize = 1 << 16;

#[derive(Clone, Debug, Default)]
pub(super) struct PairCounts {
    rows: FastMap<u32, FastMap<u32, u32>>,
    /// Increments not in `rows` yet, each `product << 32 | other` ([`pair`]).
    pending: Vec<u64>,
}

/// One increment: `other`'s count on `product`'s side.
fn pair(product: u32, other: u32) -> u64 {
    u64::from(product) << 32 | u64::from(other)
}

/// The product and the other product of an increment.
fn split(pair: u64) -> (u32, u32) {
    ((pair >> 32) as u32, pair as u32)
}

impl PairCounts {
    /// One more visitor with both `product` and `other` (counted on `product`'s side only).
    pub(super) fn add(&mut self, product: u32, other: u32) {
        self.pending.push(pair(product, other));
        if self.pending.len() >= FOLD_AT {
            self.fold();
        }
    }

    /// One more visitor with `product` and each of `others` (counted on `product`'s side
    /// only).
    pub(super) fn add_all(&mut self, product: u32, others: &[u32]) {
        self.pending.extend(others.iter().map(|other| pair(product, *other)));
        if self.pending.len() >= FOLD_AT {
            self.fold();
        }
    }

    /// Adds every pending increment to its row.
    fn fold(&mut self) {
        self.pending.sort_unstable();
        for run in self.pending.chunk_by(|a, b| a >> 32 == b >> 32) {
            let row = self.rows.entry(split(run[0]).0).or_default();
            for same in run.chunk_by(|a, b| a == b) {
                *row.entry(split(same[0]).1).or_default() += same.len() as u32;
            }
        }
        self.pending.clear();
    }

    /// `product`'s pair counts, rows and pending together, in no order.
    pub(super) fn row(&self, product: u32) -> FastMap<u32, u32> {
        let mut row = self.rows.get(&product).cloned().unwrap_or_default();
        self.for_each_pending(|of| of == product, |_, other| *row.entry(other).or_default() += 1);
        row
    }

    /// Calls `add(other, count)` for the folded counts of each of `products`, and
    /// `add(other, 1)` for each pending increment of a product `is_of` admits (which should be
    /// those): an `other` may come more than once, so this suits callers that sum. The pending
    /// list is read once, however many products.
    pub(super) fn for_each_of(
        &self,
        products: &[u32],
        is_of: impl Fn(u32) -> bool,
        mut add: impl FnMut(u32, u32),
    ) {
        for product in products {
            for (&other, &count) in self.rows.get(product).into_iter().flatten() {
                add(other, count);
            }
        }
        self.for_each_pending(is_of, |_, other| add(other, 1));
    }

    /// Calls `visit(product, other)` for each pending increment of a product `is_of` admits.
    fn for_each_pending(&self, is_of: impl Fn(u32) -> bool, mut visit: impl FnMut(u32, u32)) {
        for (product, other) in self.pending.iter().map(|pair| split(*pair)) {
            if is_of(product) {
                visit(product, other);
            }
        }
    }

    pub(super) fn heap_bytes(&self) -> usize {
        let rows: usize = self.rows.values().map(|row| 32 + row.capacity() * 12).sum();
        rows + self.pending.capacity() * 8
    }
}

/// As nested maps `product → other → count` with the pending increments added in, so that a
/// snapshot does not depend on when the last fold ran.
impl serde::Serialize for PairCounts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.pending.is_empty() {
            return self.rows.serialize(serializer);
        }
        let mut summed = self.clone();
        summed.fold();
        summed.rows.serialize(serializer)
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
        assert!(!counts.rows.is_empty() && !counts.pending.is_empty(), "some folded, some not");
        for product in 0..300 {
            let expected_row = expected.get(&product).cloned().unwrap_or_default();
            assert_eq!(counts.row(product), expected_row);
            let mut summed: FastMap<u32, u32> = FastMap::default();
            let add = |other, count| *summed.entry(other).or_default() += count;
            counts.for_each_of(&[product], |of| of == product, add);
            assert_eq!(summed, expected_row);
        }
        // Several products at once: their counts summed, the pending list read once.
        let mut summed: FastMap<u32, u32> = FastMap::default();
        let add = |other, count| *summed.entry(other).or_default() += count;
        counts.for_each_of(&[7, 11], |of| of == 7 || of == 11, add);
        let mut expected_sum = expected.get(&7).cloned().unwrap_or_default();
        for (other, count) in expected.get(&11).into_iter().flatten() {
            *expected_sum.entry(*other).or_default() += count;
        }
        assert_eq!(summed, expected_sum);
        let bytes = postcard::to_allocvec(&counts).unwrap();
        let plain: FastMap<u32, FastMap<u32, u32>> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(plain, expected);
        let restored: PairCounts = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(restored.rows, expected);
    }
}
