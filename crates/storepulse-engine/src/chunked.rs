//! A vector kept in fixed-size chunks, for the engine's largest append-mostly arrays.
//!
//! A `Vec` grows by allocating twice its size and moving everything over. For the funnel
//! trails at shop scale (hundreds of megabytes) that held the engine, and with it every query
//! and acknowledgement, for over a tenth of a second at once, most of it the first touch of
//! the new memory (see `docs/performance.md`, twelfth session). Here a full chunk is never
//! moved: growing allocates one more chunk, touched as it fills. Serialized as a sequence,
//! exactly like a `Vec`, so snapshots do not change.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Index, IndexMut};

use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

/// Elements per chunk: a power of two (so that the last chunk, growing as a `Vec` does,
/// stops at exactly this capacity), small enough that filling one is never a pause.
const CHUNK_BITS: u32 = 14;
const CHUNK: usize = 1 << CHUNK_BITS;

#[derive(Clone)]
pub struct ChunkedVec<T> {
    /// Every chunk but the last holds exactly [`CHUNK`] elements.
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for ChunkedVec<T> {
    fn default() -> Self {
        Self { chunks: Vec::new(), len: 0 }
    }
}

impl<T: fmt::Debug> fmt::Debug for ChunkedVec<T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_list().entries(self.iter()).finish()
    }
}

impl<T> ChunkedVec<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push(&mut self, value: T) {
        match self.chunks.last_mut() {
            Some(chunk) if chunk.len() < CHUNK => chunk.push(value),
            _ => {
                // A new chunk starts small and grows as a `Vec` up to its full size, so a
                // small log holds only what it needs.
                self.chunks.push(vec![value]);
            }
        }
        self.len += 1;
    }

    pub fn get(&self, index: usize) -> Option<&T> {
        self.chunks.get(index >> CHUNK_BITS)?.get(index & (CHUNK - 1))
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.chunks.iter_mut().flatten()
    }

    /// Keeps the elements `keep` accepts, in order, packed again into full chunks; each old
    /// chunk is freed as soon as it has been read.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        let old = std::mem::take(self);
        for value in old.chunks.into_iter().flatten() {
            if keep(&value) {
                self.push(value);
            }
        }
    }

    /// Bytes of the chunks' allocations (not of what elements own beyond themselves).
    pub fn heap_bytes(&self) -> usize {
        let elements: usize = self.chunks.iter().map(Vec::capacity).sum();
        elements * size_of::<T>() + self.chunks.capacity() * size_of::<Vec<T>>()
    }
}

impl<T> Index<usize> for ChunkedVec<T> {
    type Output = T;

    fn index(&self, index: usize) -> &T {
        &self.chunks[index >> CHUNK_BITS][index & (CHUNK - 1)]
    }
}

impl<T> IndexMut<usize> for ChunkedVec<T> {
    fn index_mut(&mut self, index: usize) -> &mut T {
        &mut self.chunks[index >> CHUNK_BITS][index & (CHUNK - 1)]
    }
}

impl<T> IntoIterator for ChunkedVec<T> {
    type Item = T;
    type IntoIter = std::iter::Flatten<std::vec::IntoIter<Vec<T>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.chunks.into_iter().flatten()
    }
}

impl<T> FromIterator<T> for ChunkedVec<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut chunked = Self::default();
        for value in iter {
            chunked.push(value);
        }
        chunked
    }
}

impl<T: Serialize> Serialize for ChunkedVec<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // The length up front, as a `Vec` writes it (a flattening iterator cannot tell it).
        let mut seq = serializer.serialize_seq(Some(self.len))?;
        for value in self.iter() {
            seq.serialize_element(value)?;
        }
        seq.end()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ChunkedVec<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ChunkedVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for ChunkedVisitor<T> {
            type Value = ChunkedVec<T>;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a sequence")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut chunked = ChunkedVec::default();
                while let Some(value) = access.next_element()? {
                    // Whole chunks at once while loading, instead of growing each one, but no
                    // more than what is left to load: a log of 16 trails got a chunk of 16,384
                    // (1.2 MB where it held 4 KB before the restart). `size_hint` counts the
                    // elements after this one; without it the chunk grows as a `Vec`.
                    if chunked.len % CHUNK == 0 {
                        let left = access.size_hint().map_or(1, |rest| rest + 1).min(CHUNK);
                        chunked.chunks.push(Vec::with_capacity(left));
                    }
                    chunked.push(value);
                }
                Ok(chunked)
            }
        }

        deserializer.deserialize_seq(ChunkedVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Across chunk boundaries, indexing, iteration and retention agree with a `Vec`.
    #[test]
    fn behaves_like_a_vec() {
        let count = 3 * CHUNK + 5;
        let mut chunked: ChunkedVec<usize> = (0..count).collect();
        let mut plain: Vec<usize> = (0..count).collect();
        assert_eq!(chunked.len(), count);
        assert_eq!(
            (chunked[CHUNK - 1], chunked[CHUNK], chunked[count - 1]),
            (CHUNK - 1, CHUNK, count - 1)
        );
        assert_eq!(chunked.get(count), None);
        chunked[CHUNK] = 7;
        plain[CHUNK] = 7;
        chunked.retain(|value| value % 3 != 0);
        plain.retain(|value| value % 3 != 0);
        assert_eq!(chunked.iter().copied().collect::<Vec<_>>(), plain);
        assert_eq!(chunked.len(), plain.len());
        assert!((0..plain.len()).all(|index| chunked[index] == plain[index]));
        // Full chunks stay full: a later chunk starts only once the previous holds CHUNK.
        assert!(chunked.chunks.iter().rev().skip(1).all(|chunk| chunk.len() == CHUNK));
    }

    /// The wire format is a `Vec`'s, so snapshots written before chunking still load.
    #[test]
    fn serializes_like_a_vec() {
        let plain: Vec<u32> = (0..(CHUNK as u32 + 3)).collect();
        let chunked: ChunkedVec<u32> = plain.iter().copied().collect();
        let bytes = postcard::to_allocvec(&chunked).expect("encodes");
        assert_eq!(bytes, postcard::to_allocvec(&plain).expect("encodes"));
        let back: ChunkedVec<u32> = postcard::from_bytes(&bytes).expect("decodes");
        assert_eq!(back.iter().copied().collect::<Vec<_>>(), plain);
        let capacities: Vec<usize> = back.chunks.iter().map(Vec::capacity).collect();
        assert_eq!(capacities, [CHUNK, 3]);
        assert_eq!(back.chunks.len(), 2);
    }

    /// A small log restored from a snapshot holds what it held before: the one chunk of 16
    /// elements was given room for a whole chunk (16,384), so `/health`'s `funnel_trails`
    /// jumped from 3,948 to 1,182,444 bytes for the same 16 trails after a restart.
    #[test]
    fn a_small_vector_restored_from_a_snapshot_is_sized_to_its_elements() {
        let small: ChunkedVec<u64> = (0..16).collect();
        let bytes = postcard::to_allocvec(&small).expect("encodes");
        let back: ChunkedVec<u64> = postcard::from_bytes(&bytes).expect("decodes");
        assert_eq!(back.heap_bytes(), small.heap_bytes());
    }
}
