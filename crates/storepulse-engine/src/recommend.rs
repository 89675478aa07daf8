//! "Viewed or bought together" (seed 5's item-item model, incremental): for every visitor the
//! set of products it looked at, carted or bought, and for every pair of products how many
//! visitors have both.
//!
//! When a visitor meets a product for the first time, the product's count with each product
//! already in the visitor's set goes up by one. A visitor's set keeps its latest
//! [`MAX_ITEMS_PER_VISITOR`] products (older ones stop pairing) and is forgotten after
//! `visitor_ttl_ms` without events, so memory follows recent activity.

mod pair_counts;

use crate::FastMap;
use crate::distinct::hash_id;
use crate::id_table::IdTable;
use pair_counts::PairCounts;

pub const MAX_ITEMS_PER_VISITOR: usize = 50;

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct VisitorItems {
    items: Vec<u32>,
    last_seen: i64,
}

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct CoOccurrence {
    /// Keyed by the visitor id's hash ([`hash_id`]).
    visitors: IdTable<VisitorItems>,
    pairs: PairCounts,
    visitor_ttl_ms: i64,
}

impl CoOccurrence {
    pub fn new(visitor_ttl_ms: i64) -> Self {
        Self { visitor_ttl_ms, ..Self::default() }
    }

    /// Records that the visitor whose id hashes to `visitor` met `product`.
    pub fn observe(&mut self, visitor: u64, product: u32, time_ms: i64) {
        let (entry, _) = self
            .visitors
            .get_or_insert_with(visitor, || VisitorItems { items: Vec::new(), last_seen: time_ms });
        entry.last_seen = entry.last_seen.max(time_ms);
        if entry.items.contains(&product) {
            return;
        }
        self.pairs.add_all(product, &entry.items);
        for &other in &entry.items {
            self.pairs.add(other, product);
        }
        if entry.items.len() == MAX_ITEMS_PER_VISITOR {
            entry.items.remove(0);
        }
        entry.items.push(product);
    }

    pub fn prune(&mut self, now_ms: i64) {
        let from = now_ms - self.visitor_ttl_ms;
        self.visitors.retain(|_, entry| entry.last_seen >= from);
    }

    /// Products most often together with `product`, best first (ties by id).
    pub fn for_product(&self, product: u32, k: usize) -> Vec<(u32, u32)> {
        let mut ranked: Vec<(u32, u32)> = self.pairs.row(product).into_iter().collect();
        rank(&mut ranked, k);
        ranked
    }

    /// For a visitor: Σ over its products of each other product's count, excluding what it
    /// already met (seed 5's scoring). Empty for an unknown visitor.
    pub fn for_visitor(&self, visitor: &str, k: usize) -> Vec<(u32, u32)> {
        let Some(entry) = self.visitors.get(hash_id(visitor)) else { return Vec::new() };
        let mut scores: FastMap<u32, u32> = FastMap::default();
        for seen in &entry.items {
            self.pairs.for_each(*seen, |id, count| {
                if !entry.items.contains(&id) {
                    *scores.entry(id).or_default() += count;
                }
            });
        }
        let mut ranked: Vec<(u32, u32)> = scores.into_iter().collect();
        rank(&mut ranked, k);
        ranked
    }

    pub fn visitor_items(&self, visitor: &str) -> &[u32] {
        self.visitors.get(hash_id(visitor)).map_or(&[], |entry| entry.items.as_slice())
    }

    pub fn heap_bytes(&self) -> usize {
        // An estimate that does not walk every visitor (sets average well under their cap).
        let visitors = self.visitors.heap_bytes() + self.visitors.len() * 8 * 4;
        visitors + self.pairs.heap_bytes()
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
            model.observe(hash_id(visitor), product, 0);
        }
        assert_eq!(model.for_product(1, 10), vec![(2, 2), (3, 2)]);
        assert_eq!(model.for_product(4, 10), vec![]);
        // "a" has 1 and 2: 3 pairs with 1 (twice: b, c) and with 2 (once: b).
        assert_eq!(model.for_visitor("a", 10), vec![(3, 3)]);
        assert_eq!(model.for_visitor("nobody", 10), vec![]);
        model.prune(2_000_000);
        assert_eq!(model.for_visitor("a", 10), vec![]);
        assert_eq!(model.for_product(1, 1), vec![(2, 2)], "pairs outlive the visitors");
    }
}
