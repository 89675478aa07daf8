//! The ingest pipeline: from validated events to durable, acknowledged records.
//!
//! [`IngestPipeline::open`] opens the event log (recovering a torn tail), rebuilds the
//! de-duplication window from the log's recent records, and starts the writer thread
//! ([`writer`]) and the engine applier thread behind it ([`applier`]). Handlers call [`IngestPipeline::commit`] with validated events and get, per
//! event, its log offset or "duplicate" — only after the events are durable.

pub mod applier;
pub mod dedup;
pub mod writer;

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Sender, TrySendError};
use storepulse_log::{EventLog, FsyncPolicy, LogConfig, RecoveryReport, Retention};
use storepulse_model::Event;
use storepulse_model::codec::{decode_event, decode_identity};
use tokio::sync::oneshot;

use self::dedup::{DedupWindow, dedup_key};
use self::writer::{
    CommitError, CommitRequest, EventOutcome, PreparedBatch, WriterSettings, WriterStatus,
    run_writer,
};
use crate::app::SharedEngine;
use crate::config::{Config, FsyncMode};
use crate::sync::{MutexExt, RwLockExt};
use crate::telemetry::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Commit(#[from] CommitError),
    #[error("the ingest queue is full; retry shortly")]
    QueueFull,
}

pub struct IngestPipeline {
    sender: Mutex<Option<Sender<CommitRequest>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    applier: Mutex<Option<JoinHandle<()>>>,
    log: Arc<Mutex<EventLog>>,
    status: Arc<WriterStatus>,
    metrics: Metrics,
    pub recovery: RecoveryReport,
    pub fsync: FsyncMode,
}

impl IngestPipeline {
    /// Opens the log, replays it into `engine`, and starts the writer and the applier, which
    /// applies every newly stored event to `engine` before acknowledging it.
    pub fn open(
        config: &Config,
        metrics: Metrics,
        engine: SharedEngine,
    ) -> anyhow::Result<IngestPipeline> {
        let mut log_config = LogConfig::new(config.events_dir());
        log_config.segment_bytes = config.log.segment_bytes;
        log_config.fsync = match config.log.fsync {
            FsyncMode::Always => FsyncPolicy::Always,
            FsyncMode::Interval => FsyncPolicy::Interval(config.log.fsync_interval),
            FsyncMode::None => FsyncPolicy::Never,
        };
        // A torn tail can be at most one group commit long when every commit is fsynced.
        // One group commit is at most `max_commit_bytes` plus the request that crossed it (at
        // most a whole body); the log must accept such a write in one piece, and a torn tail
        // of that size is what recovery may cut.
        let largest_commit = (config.ingest.max_commit_bytes + config.http.max_body_bytes) as u64;
        log_config.max_unsynced_bytes = (largest_commit * 2).max(log_config.max_unsynced_bytes);
        let (log, recovery) = EventLog::open(log_config).map_err(|error| {
            crate::log_commands::with_repair_command(error, &config.data_dir, false)
        })?;
        if recovery.truncated_bytes > 0 {
            tracing::warn!(
                bytes = recovery.truncated_bytes,
                "cut a torn tail from the event log (writes that were never acknowledged)"
            );
        }
        let window_ms = config.ingest.dedup_window.as_millis() as i64;
        let mut dedup = DedupWindow::new(window_ms, config.ingest.dedup_max_ids);
        // Both read the log and neither needs the other: the recent ids are re-learnt while
        // the engine loads its snapshot, so a restart takes the longer of the two, not both.
        // What the snapshot on disk holds (nothing without one): log retention keeps the rest.
        let mut snapshot_position = 0;
        let (rebuilt, replayed) = std::thread::scope(|scope| {
            let rebuilding = scope.spawn(|| {
                let started = std::time::Instant::now();
                let rebuilt = rebuild_dedup(&log, &mut dedup, config.ingest.dedup_max_ids as u64);
                (rebuilt, started.elapsed())
            });
            let started = std::time::Instant::now();
            let loaded = crate::engine_snapshots::load(
                &config.data_dir,
                config.engine.engine_config(),
                log.next_offset(),
            );
            let from_snapshot = loaded.is_some();
            snapshot_position = loaded.as_ref().map_or(0, storepulse_engine::Engine::log_position);
            if let Some(loaded) = loaded {
                *engine.write_ignoring_poison() = loaded;
            }
            let replayed = replay_into_engine(&log, &engine)
                .map(|events| (events, started.elapsed(), from_snapshot));
            let rebuilt =
                rebuilding.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (rebuilt, replayed)
        });
        let (rebuilt, rebuild_time) = (rebuilt.0?, rebuilt.1);
        let (replayed, engine_time, from_snapshot) = replayed?;
        tracing::info!(
            next_offset = log.next_offset(),
            dedup_ids = rebuilt,
            dedup_millis = rebuild_time.as_millis() as u64,
            "event log open"
        );
        tracing::info!(
            events_replayed = replayed,
            millis = engine_time.as_millis() as u64,
            "engine ready ({})",
            if from_snapshot { "snapshot plus the log after it" } else { "the whole log replayed" }
        );

        let status = Arc::new(WriterStatus::new());
        let stats = log.stats();
        status.next_offset.store(stats.next_offset, std::sync::atomic::Ordering::Relaxed);
        status.durable_offset.store(stats.durable_offset, std::sync::atomic::Ordering::Relaxed);
        status.log_bytes.store(stats.total_bytes, std::sync::atomic::Ordering::Relaxed);
        status.segments.store(stats.segments as u64, std::sync::atomic::Ordering::Relaxed);
        status.snapshot_position.store(snapshot_position, std::sync::atomic::Ordering::Relaxed);
        let log = Arc::new(Mutex::new(log));
        let (sender, receiver) = crossbeam_channel::bounded(config.ingest.queue_capacity);
        let settings = WriterSettings {
            max_commit_bytes: config.ingest.max_commit_bytes,
            tick: Duration::from_secs(1),
            sync_every: match config.log.fsync {
                FsyncMode::Interval => Some(config.log.fsync_interval),
                _ => None,
            },
            retention: Retention {
                max_age: config.log.retention_max_age,
                max_bytes: config.log.retention_max_bytes,
            },
        };
        let (to_applier, applier) = applier::start(engine, metrics.clone())?;
        let writer = {
            let log = log.clone();
            let status = status.clone();
            let metrics = metrics.clone();
            std::thread::Builder::new().name("storepulse-log-writer".into()).spawn(move || {
                run_writer(log, receiver, dedup, settings, status, metrics, to_applier)
            })?
        };
        Ok(IngestPipeline {
            sender: Mutex::new(Some(sender)),
            writer: Mutex::new(Some(writer)),
            applier: Mutex::new(Some(applier)),
            log,
            status,
            metrics,
            recovery,
            fsync: config.log.fsync,
        })
    }

    /// Encodes `events`, makes them durable and says what became of each.
    pub async fn commit(
        &self,
        events: Vec<Event>,
        source: &'static str,
    ) -> Result<Vec<EventOutcome>, IngestError> {
        let mut batch = PreparedBatch::with_capacity(events.len(), events.len() * 320);
        for event in events {
            batch.push(event);
        }
        self.commit_prepared(batch, source).await
    }

    /// Makes already encoded events durable and says what became of each, in order.
    pub async fn commit_prepared(
        &self,
        batch: PreparedBatch,
        source: &'static str,
    ) -> Result<Vec<EventOutcome>, IngestError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        let request = CommitRequest { batch, source, reply };
        {
            let sender = self.sender.lock_ignoring_poison();
            let Some(sender) = sender.as_ref() else { return Err(CommitError::Stopped.into()) };
            match sender.try_send(request) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    self.metrics.ingest_queue_full.inc();
                    return Err(IngestError::QueueFull);
                }
                Err(TrySendError::Disconnected(_)) => return Err(CommitError::Stopped.into()),
            }
        }
        match answer.await {
            Ok(result) => Ok(result?),
            Err(_) => Err(CommitError::Stopped.into()),
        }
    }

    pub fn status(&self) -> &Arc<WriterStatus> {
        &self.status
    }

    pub fn log(&self) -> &Arc<Mutex<EventLog>> {
        &self.log
    }

    /// Stops taking requests, lets the writer drain the queue, and waits for its final sync
    /// and for the engine to apply everything stored.
    pub fn shutdown(&self) {
        self.sender.lock_ignoring_poison().take();
        if let Some(writer) = self.writer.lock_ignoring_poison().take()
            && writer.join().is_err()
        {
            tracing::error!("log writer thread panicked");
        }
        // The writer has dropped its end of the channel: the applier drains it and stops.
        if let Some(applier) = self.applier.lock_ignoring_poison().take()
            && applier.join().is_err()
        {
            tracing::error!("engine applier thread panicked");
        }
    }
}

impl Drop for IngestPipeline {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Events replayed between two prunes of the live windows: at shop rates, a few minutes of
/// traffic.
const REPLAY_PRUNE_EVERY: u64 = 100_000;

/// Applies the stored events the engine has not seen: all of them, or those after a loaded
/// snapshot's position.
fn replay_into_engine(log: &EventLog, engine: &SharedEngine) -> anyhow::Result<u64> {
    let mut engine = engine.write_ignoring_poison();
    let from = engine.log_position().max(log.first_offset());
    let reader = log.reader(from).map_err(|error| anyhow::anyhow!("{error}"))?;
    let mut applied = 0;
    let now = writer::now_unix_ms();
    for record in reader {
        let record = record.map_err(|error| anyhow::anyhow!("{error}"))?;
        match decode_event(&record.payload) {
            Ok(event) => {
                engine.apply(&event);
                applied += 1;
                if applied % REPLAY_PRUNE_EVERY == 0 {
                    // As the running server did every second, so that the live windows hold
                    // the visitors of a window, not of the whole log (the same answers: an
                    // engine test checks it). Never past the clock, which the end prunes at.
                    let newest = engine.newest_event_time().map_or(now, |newest| newest.0);
                    engine.prune_live(storepulse_model::Timestamp(newest.min(now)));
                }
            }
            Err(error) => {
                tracing::warn!(offset = record.offset, %error, "skipping undecodable record during replay")
            }
        }
    }
    engine.set_log_position(log.next_offset());
    engine.prune(storepulse_model::Timestamp(writer::now_unix_ms()));
    Ok(applied)
}

/// Re-learns the ids of the most recent events so retries after a restart are still caught.
fn rebuild_dedup(log: &EventLog, dedup: &mut DedupWindow, max_ids: u64) -> anyhow::Result<usize> {
    if max_ids == 0 {
        return Ok(0);
    }
    let now = writer::now_unix_ms();
    let cutoff = now - dedup.window_ms();
    // At most `max_ids` ids are remembered, so older records cannot matter.
    let from = log.next_offset().saturating_sub(max_ids).max(log.first_offset());
    let reader = log.reader(from).map_err(|error| anyhow::anyhow!("{error}"))?;
    for record in reader {
        let record = record.map_err(|error| anyhow::anyhow!("{error}"))?;
        if record.appended_at_unix_ms < cutoff {
            continue;
        }
        match decode_identity(&record.payload) {
            Ok(event) if !event.event_id_generated => {
                dedup.insert(dedup_key(event.store, event.event_id), record.appended_at_unix_ms);
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(offset = record.offset, %error, "skipping undecodable record while rebuilding dedup")
            }
        }
    }
    dedup.expire(now);
    Ok(dedup.len())
}
