//! "Viewed or bought together" (seed 5's item-item model, incremental): for every visitor the
//! set of products it looked at, carted or bought, and for every pair of products how many
//! visitors have both.
//!
//! When a visitor meets a product for the first time, the product's count with each of the
//! visitor's latest [`MAX_PAIRED_ITEMS`] products goes up by one (so an event's work stays
//! bounded). A visitor's set keeps its latest [`MAX_ITEMS_PER_VISITOR`] products, ten times
//! as many: they are what "already met" means, both for counting (meeting a product again
//! counts no pair twice) and for what is never recommended to the visitor. A set is forgotten
//! after `visitor_ttl_ms` without events, so memory follows recent activity.
//!
//! Stores are tenants: a visitor's set is kept per store, and each product remembers the
//! stores it was met in, so that a recommendation asked for one store draws on that store's
//! visitors and names only that store's products (two shops may share product ids; pair counts
//! stay per product id).

mod pair_counts;

use smallvec::SmallVec;

use crate::FastMap;
use crate::distinct::{hash_id, in_store};
use crate::id_table::IdTable;
use pair_counts::PairCounts;

/// Products a visitor's set keeps (the oldest goes first). A set that kept only the products
/// it paired with forgot a visitor's 51st-latest product: meeting it again counted its pairs a
/// second time, and it could be recommended to the visitor who had met it.
pub const MAX_ITEMS_PER_VISITOR: usize = 500;
/// A visitor's new product pairs with this many of its latest products at most.
pub const MAX_PAIRED_ITEMS: usize = 50;

/// Products a visitor's set holds in its table entry before they move to the heap: most
/// visitors meet a few products, and finding the entry then finds them too (a vector on the
/// heap was one more cache miss on every product event, and an allocation per visitor).
const INLINE_ITEMS: usize = 6;

/// Serialized as a plain sequence, like the `Vec` it was: snapshots do not change.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct VisitorItems {
    items: SmallVec<[u32; INLINE_ITEMS]>,
    last_seen: i64,
}

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct CoOccurrence {
    /// Keyed by the visitor id's hash ([`hash_id`]) in its store ([`in_store`]).
    visitors: IdTable<VisitorItems>,
    pairs: PairCounts,
    visitor_ttl_ms: i64,
    /// By product id, the stores it was met in. Empty for a product met only before snapshot
    /// format 12, whose stores are unknown: it may be named in any store.
    product_stores: Vec<SmallVec<[u32; 2]>>,
}

/// [`CoOccurrence`] as snapshot formats up to 11 stored it: visitors keyed without their store
/// (the first store's keys are unchanged by [`in_store`], so a one-store shop keeps them).
#[derive(serde::Deserialize)]
pub(crate) struct CoOccurrenceUpToV11 {
    visitors: IdTable<VisitorItems>,
    pairs: PairCounts,
    visitor_ttl_ms: i64,
}

impl From<CoOccurrenceUpToV11> for CoOccurrence {
    fn from(old: CoOccurrenceUpToV11) -> Self {
        let CoOccurrenceUpToV11 { visitors, pairs, visitor_ttl_ms } = old;
        CoOccurrence { visitors, pairs, visitor_ttl_ms, product_stores: Vec::new() }
    }
}

/// Which stores a recommendation draws on.
#[derive(Clone, Copy, Debug)]
pub enum StoreScope<'a> {
    /// This store's visitors and products only.
    One(u32),
    /// Every store (the ids of all of them): a visitor's sets in each, any product.
    All(&'a [u32]),
}

impl CoOccurrence {
    pub fn new(visitor_ttl_ms: i64) -> Self {
        Self { visitor_ttl_ms, ..Self::default() }
    }

    /// Records that the visitor whose key is `visitor` (its id's hash in `store`, see
    /// [`in_store`]) met `products` in `store` (one event's; the visitor is looked up once).
    pub fn observe(
        &mut self,
        visitor: u64,
        store: u32,
        products: impl IntoIterator<Item = u32>,
        time_ms: i64,
    ) {
        let (entry, _) = self.visitors.get_or_insert_with(visitor, || VisitorItems {
            items: SmallVec::new(),
            last_seen: time_ms,
        });
        entry.last_seen = entry.last_seen.max(time_ms);
        for product in products {
            if entry.items.contains(&product) {
                continue;
            }
            // Only a visitor's first meeting with a product gets here, so this costs little.
            let index = product as usize;
            if self.product_stores.len() <= index {
                self.product_stores.resize(index + 1, SmallVec::new());
            }
            if !self.product_stores[index].contains(&store) {
                self.product_stores[index].push(store);
            }
            let paired = &entry.items[entry.items.len().saturating_sub(MAX_PAIRED_ITEMS)..];
            self.pairs.add_all(product, paired);
            for &other in paired {
                self.pairs.add(other, product);
            }
            if entry.items.len() == MAX_ITEMS_PER_VISITOR {
                entry.items.remove(0);
            }
            entry.items.push(product);
        }
    }

    pub fn prune(&mut self, now_ms: i64) {
        let from = now_ms - self.visitor_ttl_ms;
        self.visitors.retain(|_, entry| entry.last_seen >= from);
    }

    /// Products most often together with `product`, best first (ties by id), of `scope`.
    pub fn for_product(&self, product: u32, scope: StoreScope<'_>, k: usize) -> Vec<(u32, u32)> {
        let mut ranked: Vec<(u32, u32)> = self
            .pairs
            .row(product)
            .into_iter()
            .filter(|(other, _)| self.named_in(*other, scope))
            .collect();
        rank(&mut ranked, k);
        ranked
    }

    /// For a visitor: Σ over its products of each other product's count, excluding what it
    /// already met (seed 5's scoring), within `scope`, as of `now_ms`. Empty for an unknown
    /// visitor.
    pub fn for_visitor(
        &self,
        visitor: &str,
        scope: StoreScope<'_>,
        now_ms: i64,
        k: usize,
    ) -> Vec<(u32, u32)> {
        let seen = self.visitor_items(visitor, scope, now_ms);
        // A set of up to [`MAX_ITEMS_PER_VISITOR`] per store: looked up, not scanned, for each
        // of its products' companions.
        let excluded: std::collections::HashSet<u32, foldhash::fast::RandomState> =
            seen.iter().copied().collect();
        let mut scores: FastMap<u32, u32> = FastMap::default();
        for item in &seen {
            self.pairs.for_each(*item, |id, count| {
                if !excluded.contains(&id) && self.named_in(id, scope) {
                    *scores.entry(id).or_default() += count;
                }
            });
        }
        let mut ranked: Vec<(u32, u32)> = scores.into_iter().collect();
        rank(&mut ranked, k);
        ranked
    }

    /// The products the visitor met in `scope` (in each store of it, each product once), as
    /// of `now_ms`: a set whose last event is older than the visitors' time to live is
    /// forgotten, whether or not [`CoOccurrence::prune`] has dropped it yet (events
    /// backfilled from long ago made sets that answered until the next housekeeping pass or
    /// restart, and then did not).
    pub fn visitor_items(&self, visitor: &str, scope: StoreScope<'_>, now_ms: i64) -> Vec<u32> {
        let visitor = hash_id(visitor);
        let kept_from = now_ms - self.visitor_ttl_ms;
        let stores = match &scope {
            StoreScope::One(store) => std::slice::from_ref(store),
            StoreScope::All(stores) => stores,
        };
        let mut items = Vec::new();
        let mut listed: std::collections::HashSet<u32, foldhash::fast::RandomState> =
            Default::default();
        for &store in stores {
            let entry = self.visitors.get(in_store(visitor, store));
            if let Some(entry) = entry.filter(|entry| entry.last_seen >= kept_from) {
                items.extend(entry.items.iter().filter(|item| listed.insert(**item)));
            }
        }
        items
    }

    /// Whether `product` may be named in `scope`: met in its store, or of unknown stores.
    fn named_in(&self, product: u32, scope: StoreScope<'_>) -> bool {
        match scope {
            StoreScope::All(_) => true,
            StoreScope::One(store) => self
                .product_stores
                .get(product as usize)
                .is_none_or(|stores| stores.is_empty() || stores.contains(&store)),
        }
    }

    pub fn heap_bytes(&self) -> usize {
        // An estimate that does not walk every visitor (sets average well under their cap).
        let visitors = self.visitors.heap_bytes() + self.visitors.len() * 4 * 4;
        let stores = self.product_stores.capacity() * std::mem::size_of::<SmallVec<[u32; 2]>>();
        visitors + self.pairs.heap_bytes() + stores
    }
}

fn rank(ranked: &mut Vec<(u32, u32)>, k: usize) {
    ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(k);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_count_visitors_not_events_and_exclude_what_was_seen() {
        let mut model = CoOccurrence::new(1_000_000);
        for (visitor, product) in [
            ("a", 1),
            ("a", 2),
            ("a", 2),
            ("b", 1),
            ("b", 2),
            ("b", 3),
            ("c", 1),
            ("c", 3),
            ("d", 4),
        ] {
            model.observe(hash_id(visitor), 1, [product], 0);
        }
        let all = StoreScope::All(&[1]);
        assert_eq!(model.for_product(1, all, 10), vec![(2, 2), (3, 2)]);
        assert_eq!(model.for_product(4, all, 10), vec![]);
        // "a" has 1 and 2: 3 pairs with 1 (twice: b, c) and with 2 (once: b).
        assert_eq!(model.for_visitor("a", all, 0, 10), vec![(3, 3)]);
        assert_eq!(model.for_visitor("nobody", all, 0, 10), vec![]);
        // Past the visitors' time to live, before and after the housekeeping drops them.
        assert_eq!(model.for_visitor("a", all, 2_000_000, 10), vec![]);
        model.prune(2_000_000);
        assert_eq!(model.for_visitor("a", all, 0, 10), vec![]);
        assert_eq!(model.for_product(1, all, 1), vec![(2, 2)], "pairs outlive the visitors");
    }

    /// A visitor past [`MAX_PAIRED_ITEMS`] products still knows its older ones: meeting one
    /// again counts none of its pairs twice, and it is never recommended to that visitor.
    #[test]
    fn a_busy_visitor_still_knows_what_it_met_long_ago() {
        let mut model = CoOccurrence::new(1_000_000);
        let all = StoreScope::All(&[1]);
        // "a" meets 0, then 1..=60, then 0 again; "b" meets 0 and 1 (so 0 is 1's companion).
        let met = std::iter::once(0).chain(1..=60).chain(std::iter::once(0));
        for product in met {
            model.observe(hash_id("a"), 1, [product], 0);
        }
        model.observe(hash_id("b"), 1, [0], 0);
        model.observe(hash_id("b"), 1, [1], 0);
        let pairs_of_0: FastMap<u32, u32> = model.pairs.row(0);
        assert_eq!(pairs_of_0.get(&1), Some(&2), "a and b met 0 and 1");
        assert_eq!(pairs_of_0.get(&30), Some(&1), "0 and 30 once, for a, however often met");
        assert_eq!(pairs_of_0.get(&55), None, "55 came past 0's 50 latest companions");
        assert_eq!(model.pairs.row(55).get(&0), None, "both sides alike");
        let for_a = model.for_visitor("a", all, 0, 100);
        assert!(for_a.is_empty(), "a met every product there is: {for_a:?}");
        assert_eq!(model.visitor_items("a", all, 0).len(), 61);
        // Past the set's own cap the oldest products go (the set's memory stays bounded).
        for product in 100..100 + MAX_ITEMS_PER_VISITOR as u32 {
            model.observe(hash_id("a"), 1, [product], 0);
        }
        let items = model.visitor_items("a", all, 0);
        assert_eq!(items.len(), MAX_ITEMS_PER_VISITOR);
        assert!(!items.contains(&0) && items.contains(&100));
    }

    #[test]
    fn a_store_sees_its_own_visitors_and_products_only() {
        let mut model = CoOccurrence::new(1_000_000);
        // Store 1: "x" meets 10 (store 1 only) and 20 (a product id both stores use).
        // Store 2: "y" meets 20; "x" (the same id in another shop) meets 30.
        for (visitor, store, product) in [("x", 1, 10), ("x", 1, 20), ("y", 2, 20), ("x", 2, 30)] {
            model.observe(in_store(hash_id(visitor), store), store, [product], 0);
        }
        assert_eq!(model.for_visitor("y", StoreScope::One(2), 0, 10), vec![]);
        assert_eq!(model.for_product(20, StoreScope::One(2), 10), vec![]);
        assert_eq!(model.for_product(20, StoreScope::One(1), 10), vec![(10, 1)]);
        assert_eq!(model.for_visitor("y", StoreScope::All(&[1, 2]), 0, 10), vec![(10, 1)]);
        assert_eq!(model.visitor_items("x", StoreScope::One(1), 0), vec![10, 20]);
        assert_eq!(model.visitor_items("x", StoreScope::All(&[1, 2]), 0), vec![10, 20, 30]);
    }
}
