//! Deserializing the engine's large maps and vectors at their full size at once.
//!
//! Serde's own `HashMap` and `Vec` impls reserve at most about a megabyte up front (a guard
//! against lengths an untrusted input declares) and grow from there, so a map of millions of
//! sessions is rehashed a dozen times while a snapshot loads. Snapshots are checksummed and
//! written by the engine itself, so their lengths are trusted, up to [`MAX_RESERVED`].
//! Use with `#[serde(deserialize_with = "crate::presized::map")]` (or `vec`).

use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};

use crate::FastMap;

/// The most entries reserved before any is read (a bound, should a length ever be wrong).
const MAX_RESERVED: usize = 1 << 26;

/// A map that can be made with room for a number of entries, and filled.
pub trait Presizable<K, V> {
    fn with_room(entries: usize) -> Self;
    fn put(&mut self, key: K, value: V);
}

impl<K: Eq + Hash, V> Presizable<K, V> for FastMap<K, V> {
    fn with_room(entries: usize) -> Self {
        FastMap::with_capacity_and_hasher(entries, Default::default())
    }

    fn put(&mut self, key: K, value: V) {
        self.insert(key, value);
    }
}

impl<K: Eq + Hash, V> Presizable<K, V> for griddle::HashMap<K, V, foldhash::fast::RandomState> {
    fn with_room(entries: usize) -> Self {
        griddle::HashMap::with_capacity_and_hasher(entries, Default::default())
    }

    fn put(&mut self, key: K, value: V) {
        self.insert(key, value);
    }
}

pub fn map<'de, D, K, V, M>(deserializer: D) -> Result<M, D::Error>
where
    D: Deserializer<'de>,
    K: Deserialize<'de>,
    V: Deserialize<'de>,
    M: Presizable<K, V>,
{
    struct MapVisitor<K, V, M>(PhantomData<(K, V, M)>);

    impl<'de, K, V, M> Visitor<'de> for MapVisitor<K, V, M>
    where
        K: Deserialize<'de>,
        V: Deserialize<'de>,
        M: Presizable<K, V>,
    {
        type Value = M;

        fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
            formatter.write_str("a map")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
            let reserved = access.size_hint().unwrap_or(0).min(MAX_RESERVED);
            let mut map = M::with_room(reserved);
            while let Some((key, value)) = access.next_entry()? {
                map.put(key, value);
            }
            Ok(map)
        }
    }

    deserializer.deserialize_map(MapVisitor(PhantomData))
}

pub fn vec<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct VecVisitor<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for VecVisitor<T> {
        type Value = Vec<T>;

        fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
            formatter.write_str("a sequence")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
            let mut items = Vec::with_capacity(access.size_hint().unwrap_or(0).min(MAX_RESERVED));
            while let Some(item) = access.next_element()? {
                items.push(item);
            }
            Ok(items)
        }
    }

    deserializer.deserialize_seq(VecVisitor(PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Both {
        #[serde(deserialize_with = "map")]
        map: FastMap<u64, String>,
        #[serde(deserialize_with = "vec")]
        items: Vec<(u32, i64)>,
    }

    #[test]
    fn maps_and_vectors_round_trip_at_their_full_size() {
        let both = Both {
            map: (0..100_000).map(|n| (n, n.to_string())).collect(),
            items: (0..300_000).map(|n| (n, -i64::from(n))).collect(),
        };
        let bytes = postcard::to_stdvec(&both).unwrap();
        let read: Both = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(read, both);
        assert_eq!(read.items.capacity(), 300_000);
        assert!(read.map.capacity() >= 100_000 && read.map.capacity() < 200_000);
        // A snapshot section that is one map (the remembered orders, a griddle map) reads the
        // same bytes, at its full size.
        #[derive(serde::Deserialize)]
        struct OneMap(
            #[serde(deserialize_with = "map")]
            griddle::HashMap<u64, String, foldhash::fast::RandomState>,
        );
        let OneMap(map) = postcard::from_bytes(&postcard::to_stdvec(&both.map).unwrap()).unwrap();
        assert_eq!(map.len(), both.map.len());
        assert!(both.map.iter().all(|(key, value)| map.get(key) == Some(value)));
        assert!(map.capacity() >= 100_000 && map.capacity() < 200_000);
    }
}
