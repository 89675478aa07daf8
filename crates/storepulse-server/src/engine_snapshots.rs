//! Engine snapshots on disk: `<data_dir>/engine/snapshot.bin`, written atomically (temp file,
//! fsync, rename, directory fsync) on a schedule by the maintenance thread and once more at shutdown.
//! At start the snapshot is loaded and only the log records after its position are replayed;
//! a missing, stale or damaged snapshot falls back to replaying the whole log (logged, never
//! fatal: the log is the source of truth).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

use storepulse_engine::{Engine, EngineConfig, snapshot};

use crate::app::SharedEngine;
use crate::ingest::writer::WriterStatus;

pub fn snapshot_path(data_dir: &Path) -> PathBuf {
    data_dir.join("engine").join("snapshot.bin")
}

/// The engine from the snapshot, if one is usable for a log that ends at `log_next_offset`.
pub fn load(data_dir: &Path, config: EngineConfig, log_next_offset: u64) -> Option<Engine> {
    let path = snapshot_path(data_dir);
    let started = Instant::now();
    let file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "engine snapshot unreadable; replaying the whole log");
            return None;
        }
    };
    let bytes = file.metadata().map_or(0, |metadata| metadata.len());
    match snapshot::read(file) {
        Ok(mut engine) if engine.log_position() <= log_next_offset => {
            engine.reconfigure(config);
            tracing::info!(
                position = engine.log_position(),
                events = engine.events_applied(),
                bytes,
                millis = started.elapsed().as_millis() as u64,
                "engine snapshot loaded"
            );
            Some(engine)
        }
        Ok(engine) => {
            tracing::warn!(
                snapshot_position = engine.log_position(),
                log_next_offset,
                "engine snapshot is ahead of the event log (the log lost its tail); replaying the whole log"
            );
            None
        }
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "engine snapshot refused; replaying the whole log");
            None
        }
    }
}

/// Encodes the engine under its read lock (ingest does not wait for it, see
/// [`crate::shared_engine`]), then writes the file without holding the lock. Once it is on
/// disk, `covered` (the writer's [`WriterStatus::snapshot_position`]) moves to its position,
/// letting log retention delete what it holds.
pub fn write(
    data_dir: &Path,
    engine: &SharedEngine,
    covered: &WriterStatus,
) -> std::io::Result<usize> {
    let started = Instant::now();
    let mut bytes = Vec::new();
    let mut position = 0;
    engine
        .snapshot(|engine| {
            position = engine.log_position();
            snapshot::encode(engine, &mut bytes)
        })
        .map_err(std::io::Error::other)?;
    let encoded = started.elapsed();
    write_bytes(data_dir, &bytes)?;
    covered.snapshot_position.fetch_max(position, Ordering::Relaxed);
    tracing::info!(
        bytes = bytes.len(),
        encode_millis = encoded.as_millis() as u64,
        total_millis = started.elapsed().as_millis() as u64,
        "engine snapshot written"
    );
    Ok(bytes.len())
}

fn write_bytes(data_dir: &Path, bytes: &[u8]) -> std::io::Result<()> {
    crate::files::write_atomically(&snapshot_path(data_dir), bytes)
}
