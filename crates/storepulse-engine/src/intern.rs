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
}

impl Default for Interner {
    fn default() -> Self {
        Self { ids: FastMap::default(), names: vec![CompactString::default()], last: 0 }
    }
}

impl Interner {
    /// The id of `name`, assigned on first sight.
    pub fn intern(&mut self, name: &str) -> u32 {
        if self.last != 0 && self.names[self.last as usize] == name {
            return self.last;
        }
        if let Some(&id) = self.ids.get(name) {
            self.last = id;
            return id;
        }
        let id = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push(name.into());
        self.ids.insert(name.into(), id);
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
        text * 2 + self.ids.capacity() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
