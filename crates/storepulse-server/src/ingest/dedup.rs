//! Idempotency: a retried event with the same `(store, event_id)` is acknowledged but kept
//! once, for as long as its id is remembered.
//!
//! An id is remembered for `window` after it was first accepted, or until `max_ids` newer ids
//! push it out, whichever comes first — memory stays bounded whatever the traffic. Ids are
//! kept as 64-bit xxh3 hashes of `store \0 event_id`; two different ids collide with
//! probability ~n²/2⁶⁵ (about 3·10⁻⁸ for a full million-id window). Events whose id the
//! server generated are never remembered: they cannot be retried.

use std::collections::{HashSet, VecDeque};

use xxhash_rust::xxh3::xxh3_64;

/// Keys that fit here (store and id within their length limits) are hashed from the stack:
/// this runs for every event, so it does not allocate.
const STACK_KEY_BYTES: usize = 512;

/// The de-duplication key of an event: xxh3 of `store \0 event_id`.
pub fn dedup_key(store: &str, event_id: &str) -> u64 {
    let length = store.len() + 1 + event_id.len();
    if length > STACK_KEY_BYTES {
        let mut bytes = Vec::with_capacity(length);
        bytes.extend_from_slice(store.as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(event_id.as_bytes());
        return xxh3_64(&bytes);
    }
    let mut bytes = [0u8; STACK_KEY_BYTES];
    bytes[..store.len()].copy_from_slice(store.as_bytes());
    bytes[store.len() + 1..length].copy_from_slice(event_id.as_bytes());
    xxh3_64(&bytes[..length])
}

/// The keys are already hashes, but not keyed: foldhash's per-process seed keeps chosen ids
/// from piling into one part of the table, at a fraction of SipHash's cost.
type KeySet = HashSet<u64, foldhash::fast::RandomState>;

pub struct DedupWindow {
    window_ms: i64,
    max_ids: usize,
    ids: KeySet,
    /// Insertion order with insertion time, oldest first, for expiry.
    order: VecDeque<(u64, i64)>,
}

impl DedupWindow {
    pub fn new(window_ms: i64, max_ids: usize) -> Self {
        Self { window_ms, max_ids, ids: KeySet::default(), order: VecDeque::new() }
    }

    pub fn contains(&self, key: u64) -> bool {
        self.ids.contains(&key)
    }

    /// Remembers `key` as accepted at `now_ms`.
    pub fn insert(&mut self, key: u64, now_ms: i64) {
        if self.max_ids == 0 {
            return;
        }
        if self.ids.insert(key) {
            self.order.push_back((key, now_ms));
        }
        while self.order.len() > self.max_ids {
            self.forget_oldest();
        }
    }

    /// Forgets ids older than the window.
    pub fn expire(&mut self, now_ms: i64) {
        while let Some(&(_, inserted)) = self.order.front() {
            if inserted > now_ms - self.window_ms {
                break;
            }
            self.forget_oldest();
        }
    }

    fn forget_oldest(&mut self) {
        if let Some((key, _)) = self.order.pop_front() {
            self.ids.remove(&key);
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn window_ms(&self) -> i64 {
        self.window_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_remembered_for_the_window() {
        let mut window = DedupWindow::new(1000, 10);
        let key = dedup_key("default", "e1");
        window.insert(key, 0);
        assert!(window.contains(key));
        window.expire(999);
        assert!(window.contains(key));
        window.expire(1000);
        assert!(!window.contains(key));
    }

    #[test]
    fn stores_are_separate_namespaces() {
        assert_ne!(dedup_key("a", "e1"), dedup_key("b", "e1"));
        assert_ne!(dedup_key("ab", "c"), dedup_key("a", "bc"));
    }

    #[test]
    fn long_keys_hash_as_short_ones_do() {
        // The same bytes give the same key whether hashed from the stack or from the heap.
        let id = "e".repeat(STACK_KEY_BYTES);
        let mut bytes = b"default\0".to_vec();
        bytes.extend_from_slice(id.as_bytes());
        assert_eq!(dedup_key("default", &id), xxh3_64(&bytes));
        assert_eq!(dedup_key("default", "e1"), xxh3_64(b"default\0e1"));
        assert_ne!(dedup_key("default", &id), dedup_key("default", &id[1..]));
    }

    #[test]
    fn memory_is_bounded_by_max_ids() {
        let mut window = DedupWindow::new(i64::MAX / 2, 3);
        for id in 0..5u64 {
            window.insert(id, 0);
        }
        assert_eq!(window.len(), 3);
        assert!(!window.contains(0) && !window.contains(1));
        assert!(window.contains(4));
    }
}
