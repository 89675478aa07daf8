//! Dimension values (stores, countries, products, ...) as small integer ids.
//!
//! Rollup rows are keyed by a tuple of ids instead of strings: hashing and comparing a few
//! integers is what lets the engine apply millions of events per second. Id 0 always means
//! "none" (an event without a country, a row without a product).

use crate::FastMap;

use compact_str::CompactString;

/// One dictionary: text ↔ id. Ids are dense and never reused.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Interner {
    ids: FastMap<CompactString, u32>,
    names: Vec<CompactString>,
    /// The last id returned: events come in runs of the same store, country, source.
    last: u32,
    /// Ids of names of at most 7 bytes (countries, stores, most sources), keyed by the name
    /// packed into an integer ([`short_key`]): one integer hash and compare instead of hashing
    /// and comparing text, ~35 instructions instead of ~190. A cache in front of `ids`, filled
    /// as names are looked up (so it is not kept in snapshots).
    #[serde(skip)]
    short: FastMap<u64, u32>,
    /// The key and id of the last short name looked up: most events name the same store, and
    /// many the same country, as the event before.
    #[serde(skip, default = "no_last_short")]
    last_short: (u64, u32),
    /// The same for names of 8 to 15 bytes ([`medium_key`]): product ids like `"sku-00042"`
    /// and page paths like `"/p/sku-00042"`, which took a tenth of applying a page view when
    /// hashed as text. Kept apart from `short` so that the commonest names (countries,
    /// stores) stay one machine word.
    #[serde(skip)]
    medium: FastMap<u128, u32>,
}

impl Default for Interner {
    fn default() -> Self {
        Self {
            ids: FastMap::default(),
            names: vec![CompactString::default()],
            last: 0,
            short: FastMap::default(),
            last_short: no_last_short(),
            medium: FastMap::default(),
        }
    }
}

/// No short name's key: its length byte would say 255.
fn no_last_short() -> (u64, u32) {
    (u64::MAX, 0)
}

/// A name of at most 7 bytes as an integer: its bytes (little-endian), and its length in the
/// top byte (so that `"US"` and `"US\0"` differ).
///
/// Read as whole words, not copied byte by byte into an 8-byte buffer and loaded back: a load
/// that spans several smaller stores waits for them to retire, and that stall was a third of
/// the interner's time on every event (perf, thirteenth session).
fn short_key(name: &str) -> Option<u64> {
    let bytes = name.as_bytes();
    let length = bytes.len();
    let word = match length {
        0 => 0,
        1..=3 => {
            // First, middle and last byte: together they cover 1, 2 or 3 bytes exactly.
            u64::from(bytes[0])
                | u64::from(bytes[length / 2]) << (8 * (length / 2))
                | u64::from(bytes[length - 1]) << (8 * (length - 1))
        }
        4..=7 => {
            // Two 4-byte reads that overlap by 8 - length bytes, which hold the same values
            // in both.
            let low = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            let tail = &bytes[length - 4..];
            let high = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
            u64::from(low) | u64::from(high) << (8 * (length - 4))
        }
        _ => return None,
    };
    Some(word | (length as u64) << 56)
}

/// A name of 8 to 15 bytes as an integer, like [`short_key`]: two 8-byte reads that overlap,
/// and the length in the top byte.
fn medium_key(name: &str) -> Option<u128> {
    let bytes = name.as_bytes();
    let length = bytes.len();
    if !(8..=15).contains(&length) {
        return None;
    }
    let word = |at: usize| {
        let mut word = [0; 8];
        word.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(word)
    };
    Some(
        u128::from(word(0))
            | u128::from(word(length - 8)) << (8 * (length - 8))
            | (length as u128) << 120,
    )
}

impl Interner {
    /// The id of `name`, assigned on first sight.
    pub fn intern(&mut self, name: &str) -> u32 {
        let key = short_key(name);
        let medium = if key.is_none() { medium_key(name) } else { None };
        match (key, medium) {
            (Some(key), _) if key == self.last_short.0 => return self.last_short.1,
            (Some(key), _) => {
                if let Some(&id) = self.short.get(&key) {
                    self.last_short = (key, id);
                    return id;
                }
            }
            (None, Some(medium)) => {
                if let Some(&id) = self.medium.get(&medium) {
                    return id;
                }
            }
            (None, None) if self.last != 0 && self.names[self.last as usize] == name => {
                return self.last;
            }
            (None, None) => {}
        }
        let id = match self.ids.get(name) {
            Some(&id) => id,
            None => {
                let id = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
                self.names.push(name.into());
                self.ids.insert(name.into(), id);
                id
            }
        };
        if let Some(key) = key {
            self.short.insert(key, id);
            self.last_short = (key, id);
        }
        if let Some(medium) = medium {
            self.medium.insert(medium, id);
        }
        self.last = id;
        id
    }

    /// The id of an optional value; `None` is 0.
    pub fn intern_opt(&mut self, name: Option<&str>) -> u32 {
        name.map_or(0, |name| self.intern(name))
    }

    /// The id of `name` if it was ever seen.
    pub fn get(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    /// The text of an id; `None` for 0 and unknown ids.
    pub fn name(&self, id: u32) -> Option<&str> {
        if id == 0 { None } else { self.names.get(id as usize).map(CompactString::as_str) }
    }

    /// Number of distinct values (excluding "none").
    pub fn len(&self) -> usize {
        self.names.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        let text: usize = self.names.iter().map(|name| name.len().max(24)).sum();
        text * 2
            + self.ids.capacity() * 8
            + self.short.capacity() * 16
            + self.medium.capacity() * 32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key is the name's bytes and its length, whatever the length: every name of up to
    /// seven bytes has its own key.
    #[test]
    fn a_short_key_is_the_bytes_and_the_length() {
        let names = ["", "a", "ab", "abc", "abcd", "abcde", "abcdef", "abcdefg", "US", "US\0"];
        for name in names {
            let mut expected = [0u8; 8];
            expected[..name.len()].copy_from_slice(name.as_bytes());
            expected[7] = name.len() as u8;
            assert_eq!(short_key(name), Some(u64::from_le_bytes(expected)), "{name:?}");
        }
        assert_eq!(short_key("abcdefgh"), None);
        let mut keys: Vec<u64> = names.iter().filter_map(|name| short_key(name)).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), names.len());
    }

    /// Likewise every name of 8 to 15 bytes.
    #[test]
    fn a_medium_key_is_the_bytes_and_the_length() {
        let names = [
            "abcdefgh",
            "abcdefghi",
            "abcdefghijklmn",
            "abcdefghijklmno",
            "sku-00042",
            "sku-00042\0",
            "/p/sku-00042",
        ];
        for name in names {
            let mut expected = [0u8; 16];
            expected[..name.len()].copy_from_slice(name.as_bytes());
            expected[15] = name.len() as u8;
            assert_eq!(medium_key(name), Some(u128::from_le_bytes(expected)), "{name:?}");
        }
        assert_eq!(medium_key("abcdefg"), None);
        assert_eq!(medium_key("abcdefghijklmnop"), None);
    }

    #[test]
    fn ids_are_stable_and_zero_is_none() {
        let mut interner = Interner::default();
        let us = interner.intern("US");
        assert_eq!(interner.intern("US"), us);
        assert_ne!(interner.intern("DE"), us);
        assert_eq!(interner.intern_opt(None), 0);
        assert_eq!(interner.name(us), Some("US"));
        assert_eq!(interner.name(0), None);
        assert_eq!(interner.get("FR"), None);
        assert_eq!(interner.len(), 2);
    }

    #[test]
    fn short_and_long_names_keep_their_ids_across_a_snapshot() {
        let mut interner = Interner::default();
        let names = [
            "",
            "US",
            "US\0",
            "default",
            "default-store",
            "default-store\0",
            "/p/1",
            "a-much-longer-name",
        ];
        let ids: Vec<u32> = names.iter().map(|name| interner.intern(name)).collect();
        assert_eq!(ids, [1, 2, 3, 4, 5, 6, 7, 8], "every name is new, so every id is");
        assert_eq!(names.map(|name| interner.intern(name)).to_vec(), ids, "the same ids again");
        // A snapshot does not keep the short-name cache: the ids must not change after one.
        let bytes = postcard::to_allocvec(&interner).unwrap();
        let mut restored: Interner = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(names.map(|name| restored.intern(name)).to_vec(), ids);
        assert_eq!(restored.intern("new"), 9);
        assert_eq!(restored.name(2), Some("US"));
    }
}
