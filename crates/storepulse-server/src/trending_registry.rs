//! The trending weight registry on disk: `<data_dir>/trending/registry.json`, rewritten
//! atomically (temp file, fsync, rename) on every change, so a crash leaves the old or the new
//! registry, never half of one. A missing file starts a registry with `v1` = the defaults.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use storepulse_engine::trending::{RegistryError, TrendingWeights, WeightRegistry, WeightVersion};
use storepulse_model::Timestamp;

use crate::ingest::writer::now_unix_ms;
use crate::sync::MutexExt;

pub struct RegistryStore {
    path: PathBuf,
    registry: Mutex<WeightRegistry>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("the registry cannot be saved: {0}")]
    Io(#[from] std::io::Error),
}

fn now_text() -> String {
    Timestamp(now_unix_ms()).to_rfc3339()
}

impl RegistryStore {
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join("trending").join("registry.json");
        let registry = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|error| {
                anyhow::anyhow!("{} is not a valid registry: {error}", path.display())
            })?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                WeightRegistry::new(&now_text())
            }
            Err(error) => return Err(anyhow::anyhow!("cannot read {}: {error}", path.display())),
        };
        Ok(Self { path, registry: Mutex::new(registry) })
    }

    pub fn snapshot(&self) -> WeightRegistry {
        self.registry.lock_ignoring_poison().clone()
    }

    /// The weights of `version`, or of the active version.
    pub fn weights(&self, version: Option<&str>) -> Result<WeightVersion, RegistryError> {
        let registry = self.registry.lock_ignoring_poison();
        match version {
            Some(version) => {
                registry.get(version).cloned().ok_or_else(|| RegistryError::Unknown(version.into()))
            }
            None => Ok(registry.active().clone()),
        }
    }

    pub fn create(
        &self,
        name: Option<&str>,
        weights: TrendingWeights,
        note: Option<String>,
        activate: bool,
    ) -> Result<WeightVersion, StoreError> {
        let mut registry = self.registry.lock_ignoring_poison();
        let mut changed = registry.clone();
        let created = changed.create(name, weights, note, activate, &now_text())?.clone();
        self.save(&changed)?;
        *registry = changed;
        Ok(created)
    }

    /// Makes `version` the active one; returns its name as stored.
    pub fn activate(&self, version: &str) -> Result<String, StoreError> {
        let mut registry = self.registry.lock_ignoring_poison();
        let mut changed = registry.clone();
        let activated = changed.activate(version, &now_text())?;
        self.save(&changed)?;
        *registry = changed;
        Ok(activated)
    }

    fn save(&self, registry: &WeightRegistry) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(registry).map_err(std::io::Error::other)?;
        crate::files::write_atomically(&self.path, &bytes)
    }
}
