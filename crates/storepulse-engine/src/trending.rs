//! Trending products (seeds 1 and 5): a decayed, weighted count of what people do with each
//! product, and the versioned registry of the weights (seed 5's model registry, fixed).
//!
//! score(product) = Σ over its events of weight(event type) × 2^(−age / half-life)
//!
//! Ages are measured from the middle of the rollup bucket an event fell in: minute buckets for
//! the last hours, hour buckets up to a week, day buckets beyond (down to the horizon, 20
//! half-lives, where a contribution is below one millionth). The relative error of one
//! contribution is at most 2^(w / 2h) − 1 for bucket width w and half-life h: 1.45 % for an
//! hour bucket with a 24 h half-life, 0.02 % for a minute bucket. Rankings are computed from
//! the same rollups as every other figure, so a version created today ranks all history.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

/// Weights per event type and the half-life of the decay.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrendingWeights {
    pub view: f64,
    pub cart: f64,
    pub checkout: f64,
    pub purchase: f64,
    pub half_life_hours: f64,
}

impl Default for TrendingWeights {
    /// Seed 5's view 1 and purchase 3; a cart add and a checkout sit between them.
    fn default() -> Self {
        Self { view: 1.0, cart: 2.0, checkout: 2.5, purchase: 3.0, half_life_hours: 24.0 }
    }
}

/// The largest weight a version may give: far above any sensible ratio between event types,
/// and small enough that a score (weight × events × decay, summed) stays a finite number.
pub const MAX_WEIGHT: f64 = 1_000_000.0;

/// The longest note a version may carry: every listing of the versions returns it.
pub const MAX_NOTE_CHARS: usize = 1_000;

impl TrendingWeights {
    /// Every weight finite and in [0, [`MAX_WEIGHT`]], at least one > 0, half-life in
    /// (0, 10 years]. A refusal names the field (`purchase`, `half_life_hours`; empty for the
    /// weights as a whole) and says why.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let weights = [
            ("view", self.view),
            ("cart", self.cart),
            ("checkout", self.checkout),
            ("purchase", self.purchase),
        ];
        for (name, weight) in weights {
            if !(weight.is_finite() && (0.0..=MAX_WEIGHT).contains(&weight)) {
                return Err((name, format!("must be a number from 0 to {MAX_WEIGHT}")));
            }
        }
        if weights.iter().all(|(_, weight)| *weight == 0.0) {
            return Err(("", "at least one weight must be > 0".into()));
        }
        if !(self.half_life_hours.is_finite()
            && self.half_life_hours > 0.0
            && self.half_life_hours <= 87_600.0)
        {
            let reason = "must be > 0 and at most 87600 (10 years)";
            return Err(("half_life_hours", reason.into()));
        }
        Ok(())
    }

    pub fn half_life_ms(&self) -> f64 {
        self.half_life_hours * 3_600_000.0
    }
}

/// The largest number in a new version's name.
pub const MAX_VERSION_NUMBER: u64 = 999_999;

/// A version name: `v` followed by dot-separated numbers (`v1`, `v1.9`, `v1.10`), one to
/// four of them. Names are their numbers: `v01.2` and `v1.02` are `v1.2` (so two versions
/// can never look alike and weigh differently).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VersionName {
    /// Canonical: `v` and the numbers without leading zeros.
    text: String,
    parts: Vec<u64>,
}

impl VersionName {
    pub fn parse(text: &str) -> Option<VersionName> {
        let digits = text.trim().strip_prefix(['v', 'V'])?;
        let parts: Option<Vec<u64>> = digits.split('.').map(|part| part.parse().ok()).collect();
        let parts = parts.filter(|parts| !parts.is_empty() && parts.len() <= 4)?;
        let numbers: Vec<String> = parts.iter().map(u64::to_string).collect();
        Some(VersionName { text: format!("v{}", numbers.join(".")), parts })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The next minor version: `v1.9` → `v1.10`, `v2` → `v2.1`.
    pub fn next_minor(&self) -> VersionName {
        let major = self.parts[0];
        let minor = self.parts.get(1).map_or(1, |minor| minor + 1);
        VersionName { text: format!("v{major}.{minor}"), parts: vec![major, minor] }
    }
}

impl Ord for VersionName {
    /// Numerically, part by part (seed 5 sorted text, so v1.10 came before v1.9).
    fn cmp(&self, other: &Self) -> Ordering {
        self.parts.cmp(&other.parts)
    }
}

impl PartialOrd for VersionName {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// One registered version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WeightVersion {
    pub version: String,
    pub weights: TrendingWeights,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Every version ever created, which one is `latest` (active), and when each was activated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WeightRegistry {
    pub versions: Vec<WeightVersion>,
    pub latest: String,
    pub activations: Vec<Activation>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Activation {
    pub version: String,
    pub at: String,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("version {0:?} already exists; versions are immutable")]
    Exists(String),
    #[error("version {0:?} does not exist")]
    Unknown(String),
    #[error(
        "{0:?} is not a version name; use v<major>[.<minor>…], one to four numbers up to \
         {MAX_VERSION_NUMBER} each, e.g. v1.10"
    )]
    BadName(String),
    #[error("weights{}: {reason}", if field.is_empty() { String::new() } else { format!(".{field}") })]
    BadWeights { field: &'static str, reason: String },
    #[error("note: is {0} characters long; the limit is {MAX_NOTE_CHARS}")]
    NoteTooLong(usize),
}

impl RegistryError {
    /// The request field the error is about: `version`, `weights`, `weights.purchase`, `note`.
    pub fn field(&self) -> String {
        match self {
            RegistryError::Exists(_) | RegistryError::Unknown(_) | RegistryError::BadName(_) => {
                "version".into()
            }
            RegistryError::BadWeights { field: "", .. } => "weights".into(),
            RegistryError::BadWeights { field, .. } => format!("weights.{field}"),
            RegistryError::NoteTooLong(_) => "note".into(),
        }
    }
}

impl WeightRegistry {
    /// A registry holding `v1` with the default weights, active.
    pub fn new(now: &str) -> Self {
        Self {
            versions: vec![WeightVersion {
                version: "v1".into(),
                weights: TrendingWeights::default(),
                created_at: now.into(),
                note: Some("defaults".into()),
            }],
            latest: "v1".into(),
            activations: vec![Activation { version: "v1".into(), at: now.into() }],
        }
    }

    /// The version named `version`, by its numbers (`v01.2` finds `v1.2`); `latest` is the
    /// active one, as the registry names it.
    pub fn get(&self, version: &str) -> Option<&WeightVersion> {
        if version.trim() == "latest" {
            return Some(self.active());
        }
        let wanted = VersionName::parse(version);
        self.versions.iter().find(|entry| match &wanted {
            Some(wanted) => {
                VersionName::parse(&entry.version).is_some_and(|name| name.parts == wanted.parts)
            }
            None => entry.version == version.trim(),
        })
    }

    pub fn active(&self) -> &WeightVersion {
        let wanted = VersionName::parse(&self.latest);
        self.versions
            .iter()
            .find(|entry| match &wanted {
                Some(wanted) => VersionName::parse(&entry.version)
                    .is_some_and(|name| name.parts == wanted.parts),
                None => entry.version == self.latest,
            })
            .unwrap_or(&self.versions[0])
    }

    /// Versions in numeric order.
    pub fn sorted(&self) -> Vec<&WeightVersion> {
        let mut versions: Vec<&WeightVersion> = self.versions.iter().collect();
        versions.sort_by_key(|entry| VersionName::parse(&entry.version));
        versions
    }

    /// Adds a version (named, or the next minor after the highest), optionally activating it.
    pub fn create(
        &mut self,
        name: Option<&str>,
        weights: TrendingWeights,
        note: Option<String>,
        activate: bool,
        now: &str,
    ) -> Result<&WeightVersion, RegistryError> {
        weights.check().map_err(|(field, reason)| RegistryError::BadWeights { field, reason })?;
        let note_chars = note.as_deref().map_or(0, |note| note.chars().count());
        if note_chars > MAX_NOTE_CHARS {
            return Err(RegistryError::NoteTooLong(note_chars));
        }
        let name = match name {
            // Bounded here, not when read: a version is never deleted, and the next automatic
            // name follows the greatest (one `v4294967296` and every later one was
            // `v4294967296.N`).
            Some(text) => VersionName::parse(text)
                .filter(|name| name.parts.iter().all(|part| *part <= MAX_VERSION_NUMBER))
                .ok_or_else(|| RegistryError::BadName(text.into()))?,
            None => self
                .versions
                .iter()
                .filter_map(|entry| VersionName::parse(&entry.version))
                .max()
                .map_or_else(|| VersionName::parse("v1").expect("v1 parses"), |v| v.next_minor()),
        };
        if let Some(existing) = self.get(name.as_str()) {
            return Err(RegistryError::Exists(existing.version.clone()));
        }
        self.versions.push(WeightVersion {
            version: name.as_str().into(),
            weights,
            created_at: now.into(),
            note,
        });
        if activate {
            self.activate(name.as_str(), now)?;
        }
        Ok(self.versions.last().expect("just pushed"))
    }

    /// Makes `version` the active one; returns its name as stored (`v01.9` activates `v1.9`).
    pub fn activate(&mut self, version: &str, now: &str) -> Result<String, RegistryError> {
        let version = self
            .get(version)
            .map(|entry| entry.version.clone())
            .ok_or_else(|| RegistryError::Unknown(version.into()))?;
        self.latest = version.clone();
        self.activations.push(Activation { version: version.clone(), at: now.into() });
        Ok(version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_numerically() {
        let mut names: Vec<VersionName> = ["v1.10", "v1.9", "v2", "v1", "v1.2"]
            .iter()
            .filter_map(|t| VersionName::parse(t))
            .collect();
        names.sort();
        let texts: Vec<&str> = names.iter().map(VersionName::as_str).collect();
        assert_eq!(texts, ["v1", "v1.2", "v1.9", "v1.10", "v2"]);
        assert_eq!(VersionName::parse("v1.9").unwrap().next_minor().as_str(), "v1.10");
        assert!(VersionName::parse("1.2").is_none());
        assert!(VersionName::parse("v1.x").is_none());
    }

    #[test]
    fn the_registry_creates_activates_and_keeps_history() {
        let mut registry = WeightRegistry::new("t0");
        let weights = TrendingWeights { purchase: 5.0, ..TrendingWeights::default() };
        let created = registry.create(None, weights, None, false, "t1").unwrap().version.clone();
        assert_eq!(created, "v1.1");
        assert_eq!(registry.latest, "v1");
        registry.create(Some("v1.10"), weights, None, true, "t2").unwrap();
        assert_eq!(registry.latest, "v1.10");
        assert_eq!(registry.create(None, weights, None, false, "t3").unwrap().version, "v1.11");
        assert_eq!(
            registry.create(Some("v1.10"), weights, None, false, "t4").unwrap_err(),
            RegistryError::Exists("v1.10".into())
        );
        // Names are their numbers: `v01.10` is `v1.10`, found and refused as it.
        for alike in ["v01.10", "v1.010", " v1.10 "] {
            let refused = registry.create(Some(alike), weights, None, false, "t4");
            assert_eq!(refused.unwrap_err(), RegistryError::Exists("v1.10".into()), "{alike}");
            assert_eq!(registry.get(alike).unwrap().version, "v1.10");
        }
        let canonical = registry.create(Some("v02.03"), weights, None, false, "t4").unwrap();
        assert_eq!(canonical.version, "v2.3");
        // `V2.3` is `v2.3` too; a number past the bound is refused, not kept to steer every
        // automatic name after it.
        assert_eq!(registry.get("V2.3").unwrap().version, "v2.3");
        for huge in ["v1000000", "v4294967296", "v99999999999999999999"] {
            let refused = registry.create(Some(huge), weights, None, false, "t4");
            assert_eq!(refused.unwrap_err(), RegistryError::BadName(huge.into()), "{huge}");
        }
        assert!(registry.create(Some("v999999"), weights, None, false, "t4").is_ok());
        assert!(matches!(registry.activate("v9", "t5"), Err(RegistryError::Unknown(_))));
        registry.activate("v1", "t6").unwrap();
        let history: Vec<&str> = registry.activations.iter().map(|a| a.version.as_str()).collect();
        assert_eq!(history, ["v1", "v1.10", "v1"]);
        let bad = TrendingWeights { view: -1.0, ..TrendingWeights::default() };
        assert!(matches!(
            registry.create(None, bad, None, false, "t7"),
            Err(RegistryError::BadWeights { field: "view", .. })
        ));
    }

    #[test]
    fn weights_above_the_bound_and_long_notes_are_refused_naming_the_field() {
        let mut registry = WeightRegistry::new("t0");
        let huge = TrendingWeights { purchase: 1e308, view: 1e308, ..TrendingWeights::default() };
        let refused = registry.create(None, huge, None, false, "t1").unwrap_err();
        assert_eq!(refused.field(), "weights.view");
        assert_eq!(refused.to_string(), "weights.view: must be a number from 0 to 1000000");
        let at_bound = TrendingWeights { purchase: MAX_WEIGHT, ..TrendingWeights::default() };
        assert!(registry.create(None, at_bound, None, false, "t2").is_ok());
        let note = "n".repeat(MAX_NOTE_CHARS + 1);
        let refused = registry.create(None, at_bound, Some(note), false, "t3").unwrap_err();
        assert_eq!(refused, RegistryError::NoteTooLong(MAX_NOTE_CHARS + 1));
        assert_eq!(refused.field(), "note");
        let zero = TrendingWeights {
            view: 0.0,
            cart: 0.0,
            checkout: 0.0,
            purchase: 0.0,
            half_life_hours: 1.0,
        };
        assert_eq!(registry.create(None, zero, None, false, "t4").unwrap_err().field(), "weights");
    }
}
