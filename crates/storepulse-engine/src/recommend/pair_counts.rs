//! How many visitors met each pair of products, with increments buffered per product.
//!
//! A visitor's new product adds one to its pair with every product the visitor already met, on
//! both sides. Adding each straight into its row's hash map costs a cache miss per increment
//! once the rows outgrow the cache (co-occurrence was 30 % of the engine's last-level misses on
//! shop traffic). Instead each increment is appended to its product's pending list — the
//! lists' tails are few and stay in cache — and every [`FOLD_AT`] increments the lists are
//! added to their rows, each row read once for hundreds of increments. Counts are sums, so
//! when they are added changes nothing; every reader sees rows and pending together, and a
//! snapshot holds the sums (the same format as plain nested maps).
//!
//! Rows and lists are vectors indexed by product id, not maps keyed by it: an increment was
//! a hash lookup of its list, and each fold sorted every list to add runs of equal products
//! at once; without either, applying shop traffic was 8 % faster (`docs/performance.md`,
//! twenty-seventh session).

use serde::ser::{SerializeMap, Serializer};

use crate::FastMap;

/// Increments buffered before they are added to the rows (4 bytes each).
const FOLD_AT: usize = 1 << 17;

/// Product ids are the engine's interned ids, dense from zero: a stored id past this is not
/// one (the rows are indexed by id, so it would size them).
const MAX_PRODUCTS: usize = 1 << 24;

#[derive(Clone, Debug, Default)]
pub(super) struct PairCounts {
    /// By product id (the engine's dense interned ids), its folded counts by other product.
    rows: Vec<Row>,
    /// By product id, the other product of each increment not yet in `rows`: a vector, not a
    /// map, so that an increment is an index and a push (a visitor's new product makes one
    /// per product it met before, on both sides).
    pending: Vec<Vec<u32>>,
    pending_count: usize,
}

impl PairCounts {
    /// One more visitor with both `product` and `other` (counted on `product`'s side only).
    pub(super) fn add(&mut self, product: u32, other: u32) {
        self.pending_of(product).push(other);
        self.pending_count += 1;
        if self.pending_count >= FOLD_AT {
            self.fold();
        }
    }

    /// One more visitor with `product` and each of `others` (counted on `product`'s side
    /// only): [`PairCounts::add`] for each, with `product`'s pending list found once.
    pub(super) fn add_all(&mut self, product: u32, others: &[u32]) {
        self.pending_of(product).extend_from_slice(others);
        self.pending_count += others.len();
        if self.pending_count >= FOLD_AT {
            self.fold();
        }
    }

    fn pending_of(&mut self, product: u32) -> &mut Vec<u32> {
        let index = product as usize;
        if self.pending.len() <= index {
            self.pending.resize_with(index + 1, Vec::new);
        }
        &mut self.pending[index]
    }

    /// Adds every pending increment to its row.
    fn fold(&mut self) {
        let products = self.pending.len();
        if self.rows.len() < products {
            self.rows.resize_with(products, Row::default);
        }
        for (others, row) in self.pending.iter_mut().zip(&mut self.rows) {
            if !others.is_empty() {
                row.add_all(others.drain(..), products);
            }
        }
        self.pending_count = 0;
    }

    fn folded(&self, product: u32) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.rows.get(product as usize).into_iter().flat_map(Row::iter)
    }

    fn pending(&self, product: u32) -> &[u32] {
        self.pending.get(product as usize).map_or(&[], Vec::as_slice)
    }

    /// `product`'s pair counts, rows and pending together, in no order.
    pub(super) fn row(&self, product: u32) -> FastMap<u32, u32> {
        let mut row: FastMap<u32, u32> = self.folded(product).collect();
        for &other in self.pending(product) {
            *row.entry(other).or_default() += 1;
        }
        row
    }

    /// Calls `add(other, count)` for `product`'s folded counts and `add(other, 1)` for each
    /// pending increment: an `other` may come more than once, so this suits callers that sum
    /// (no copy of the row, unlike [`PairCounts::row`]).
    pub(super) fn for_each(&self, product: u32, mut add: impl FnMut(u32, u32)) {
        for (other, count) in self.folded(product) {
            add(other, count);
        }
        for &other in self.pending(product) {
            add(other, 1);
        }
    }

    pub(super) fn heap_bytes(&self) -> usize {
        let rows: usize = self.rows.iter().map(Row::heap_bytes).sum();
        let pending: usize = self.pending.iter().map(|others| 24 + others.capacity() * 4).sum();
        rows + pending
    }

    /// Products with any count, folded or pending.
    fn products(&self) -> impl Iterator<Item = u32> + '_ {
        let known = self.rows.len().max(self.pending.len());
        (0..known as u32).filter(|product| {
            let folded = self.rows.get(*product as usize).is_some_and(|row| !row.is_empty());
            folded || !self.pending(*product).is_empty()
        })
    }
}

/// One product's counts by other product: a map while it pairs with few of the products, a
/// vector indexed by product id once it pairs with a quarter of them (then no larger, and an
/// increment is an index instead of a hash lookup: on shop traffic's 522 products most rows
/// get there).
#[derive(Clone, Debug)]
enum Row {
    Sparse(FastMap<u32, u32>),
    Dense(Vec<u32>),
}

impl Default for Row {
    fn default() -> Self {
        Row::Sparse(FastMap::default())
    }
}

impl Row {
    /// Adds one for each of `others`; `products` is how many product ids there are so far.
    fn add_all(&mut self, others: impl Iterator<Item = u32>, products: usize) {
        match self {
            Row::Dense(counts) => {
                for other in others {
                    let index = other as usize;
                    if counts.len() <= index {
                        counts.resize(index + 1, 0);
                    }
                    counts[index] += 1;
                }
            }
            Row::Sparse(counts) => {
                for other in others {
                    *counts.entry(other).or_default() += 1;
                }
                if counts.len() * 4 >= products {
                    let mut dense = vec![0; products];
                    for (other, count) in counts.drain() {
                        let index = other as usize;
                        if dense.len() <= index {
                            dense.resize(index + 1, 0);
                        }
                        dense[index] = count;
                    }
                    *self = Row::Dense(dense);
                }
            }
        }
    }

    /// The non-zero counts, in no order.
    fn iter(&self) -> Box<dyn Iterator<Item = (u32, u32)> + '_> {
        match self {
            Row::Sparse(counts) => Box::new(counts.iter().map(|(other, count)| (*other, *count))),
            Row::Dense(counts) => {
                Box::new((0u32..).zip(counts.iter().copied()).filter(|(_, count)| *count != 0))
            }
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Row::Sparse(counts) => counts.is_empty(),
            Row::Dense(counts) => counts.iter().all(|count| *count == 0),
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Row::Sparse(counts) => 32 + counts.capacity() * 12,
            Row::Dense(counts) => 24 + counts.capacity() * 4,
        }
    }
}

/// A row as the map `other → count` of its non-zero counts.
struct StoredRow<'a>(&'a Row);

impl serde::Serialize for StoredRow<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter())
    }
}

/// As nested maps `product → other → count` with the pending increments added in, so that a
/// snapshot does not depend on when the last fold ran.
impl serde::Serialize for PairCounts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let products: Vec<u32> = self.products().collect();
        let mut map = serializer.serialize_map(Some(products.len()))?;
        for product in products {
            match &self.rows.get(product as usize) {
                // Folded only (every row but those with increments since the last fold): as
                // it is, not copied into a map first.
                Some(row) if self.pending(product).is_empty() => {
                    map.serialize_entry(&product, &StoredRow(row))?
                }
                _ => map.serialize_entry(&product, &self.row(product))?,
            }
        }
        map.end()
    }
}

impl<'de> serde::Deserialize<'de> for PairCounts {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let stored = FastMap::<u32, FastMap<u32, u32>>::deserialize(deserializer)?;
        let mut counts = Self::default();
        for (product, row) in stored {
            let index = product as usize;
            let mut ids = std::iter::once(product).chain(row.keys().copied());
            if let Some(id) = ids.find(|id| *id as usize >= MAX_PRODUCTS) {
                return Err(serde::de::Error::custom(format_args!(
                    "pair counts for product id {id}, past any interned product"
                )));
            }
            if counts.rows.len() <= index {
                counts.rows.resize_with(index + 1, Row::default);
            }
            counts.rows[index] = Row::Sparse(row);
        }
        Ok(counts)
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
        assert!(restored.pending.iter().all(Vec::is_empty), "restored counts are all folded");
        for product in 0..300 {
            assert_eq!(restored.row(product), expected.get(&product).cloned().unwrap_or_default());
        }
    }

    /// Rows (and dense rows' counts) are indexed by product id: a stored id no interner hands
    /// out is refused rather than sizing a vector of billions.
    #[test]
    fn a_stored_product_id_past_any_interned_one_is_refused() {
        let error = serde_json::from_str::<PairCounts>(r#"{"4294967294": {"1": 1}}"#).unwrap_err();
        assert!(error.to_string().contains("product id 4294967294"), "{error}");
        // Nor as the other product of a pair (a dense row would be sized by it).
        let error = serde_json::from_str::<PairCounts>(r#"{"3": {"4294967293": 1}}"#).unwrap_err();
        assert!(error.to_string().contains("product id 4294967293"), "{error}");
        let fine: PairCounts = serde_json::from_str(r#"{"3": {"1": 2}}"#).unwrap();
        assert_eq!(fine.row(3), [(1, 2)].into_iter().collect());
    }
}
