//! The log writer thread: group commit, de-duplication, acknowledgement.
//!
//! Request handlers validate and encode events on their own threads, then hand a
//! [`CommitRequest`] to this single thread. It takes the first waiting request and everything
//! else already queued (up to `max_commit_bytes`), drops ids it has already stored, writes the
//! rest with **one** `append_batch` — one write and, with the default policy, one fsync — and
//! only then hands the group to the engine applier ([`super::applier`]), which applies the
//! stored events and answers every request in the group (small groups the writer applies
//! itself when the applier is idle). Many concurrent requests therefore share one fsync, no
//! request is answered before its events are durable, and a client reads its own writes; the
//! next group is written and fsynced while the engine applies this one.
//!
//! A failed write or fsync answers the whole group with an error (nothing in it was
//! acknowledged) and marks the log unwritable; the thread keeps probing with `sync` and
//! recovers by itself when the disk accepts writes again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::sync::MutexExt;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use storepulse_log::{EventLog, Retention};

use storepulse_model::Event;
use storepulse_model::codec::encode_event;

use super::applier::{ApplierHandle, CommittedGroup, CommittedRequest, Reply};
use super::dedup::{DedupWindow, dedup_key};
use crate::telemetry::Metrics;

/// The events of one request, encoded for the log: every record in one buffer (one
/// allocation per request rather than per event), each with its de-duplication key. The
/// events themselves ride along so that the engine can apply the stored ones after the commit
/// without decoding them again.
#[derive(Default)]
pub struct PreparedBatch {
    buffer: Vec<u8>,
    events: Vec<PreparedEvent>,
    decoded: Vec<Event>,
}

struct PreparedEvent {
    /// `None` when the server generated the id (nothing to de-duplicate).
    dedup_key: Option<u64>,
    /// Where the encoded record (see `storepulse_model::codec`) sits in `buffer`.
    start: usize,
    end: usize,
}

impl PreparedBatch {
    pub fn with_capacity(events: usize, bytes: usize) -> Self {
        Self {
            buffer: Vec::with_capacity(bytes),
            events: Vec::with_capacity(events),
            decoded: Vec::with_capacity(events),
        }
    }

    /// Encodes `event` at the end of the batch.
    pub fn push(&mut self, event: Event) {
        let start = self.buffer.len();
        encode_event(&event, &mut self.buffer);
        let dedup_key =
            (!event.event_id_generated).then(|| dedup_key(&event.store, &event.event_id));
        self.events.push(PreparedEvent { dedup_key, start, end: self.buffer.len() });
        self.decoded.push(event);
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Payload bytes of all records.
    pub fn bytes(&self) -> usize {
        self.buffer.len()
    }

    fn records(&self) -> impl Iterator<Item = (Option<u64>, &[u8])> {
        self.events.iter().map(|event| (event.dedup_key, &self.buffer[event.start..event.end]))
    }
}

/// What happened to one event of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventOutcome {
    /// Durable at this log offset.
    Stored { offset: u64 },
    /// An event with the same store and event_id is already stored.
    Duplicate,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum CommitError {
    #[error("the event log cannot be written: {0}")]
    Storage(String),
    #[error("the log writer has stopped")]
    Stopped,
}

pub struct CommitRequest {
    pub batch: PreparedBatch,
    pub source: &'static str,
    pub reply: Reply,
}

impl CommitRequest {
    fn bytes(&self) -> usize {
        self.batch.bytes()
    }
}

/// State shared between the writer thread and the rest of the server.
pub struct WriterStatus {
    pub writable: AtomicBool,
    pub last_error: std::sync::Mutex<Option<String>>,
    pub next_offset: AtomicU64,
    pub durable_offset: AtomicU64,
    pub log_bytes: AtomicU64,
    pub segments: AtomicU64,
    /// The log offset the engine snapshot on disk holds the events up to: retention deletes
    /// only records before it (a crash restarts from that snapshot and the log after it).
    pub snapshot_position: AtomicU64,
}

impl WriterStatus {
    pub fn new() -> Self {
        Self {
            writable: AtomicBool::new(true),
            last_error: std::sync::Mutex::new(None),
            next_offset: AtomicU64::new(0),
            durable_offset: AtomicU64::new(0),
            log_bytes: AtomicU64::new(0),
            segments: AtomicU64::new(0),
            snapshot_position: AtomicU64::new(0),
        }
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock_ignoring_poison().clone()
    }
}

impl Default for WriterStatus {
    fn default() -> Self {
        Self::new()
    }
}

pub struct WriterSettings {
    pub max_commit_bytes: usize,
    /// How often to run housekeeping (interval fsync, retention, recovery probes).
    pub tick: Duration,
    /// fsync at least this often when the policy is `interval`.
    pub sync_every: Option<Duration>,
    pub retention: Retention,
}

pub fn now_unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as i64)
}

/// Runs until every sender is dropped, then syncs the log and returns; dropping `applier` on
/// return lets the applier thread finish too.
pub fn run_writer(
    log: Arc<std::sync::Mutex<EventLog>>,
    requests: Receiver<CommitRequest>,
    mut dedup: DedupWindow,
    settings: WriterSettings,
    status: Arc<WriterStatus>,
    metrics: Metrics,
    applier: ApplierHandle,
) {
    let mut last_sync = Instant::now();
    let mut last_housekeeping = Instant::now();
    // With `fsync = "interval"` an idle writer must still wake in time to sync what it wrote.
    let idle_wait = settings.sync_every.map_or(settings.tick, |every| every.min(settings.tick));
    loop {
        let first = match requests.recv_timeout(idle_wait) {
            Ok(request) => Some(request),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        if let Some(first) = first {
            let mut group_bytes = first.bytes();
            let mut group = vec![first];
            while group_bytes < settings.max_commit_bytes {
                match requests.try_recv() {
                    Ok(request) => {
                        group_bytes += request.bytes();
                        group.push(request);
                    }
                    Err(_) => break,
                }
            }
            metrics.ingest_queue_depth.set(requests.len() as i64);
            commit_group(&log, group, &mut dedup, &status, &metrics, &applier);
        }
        if let Some(every) = settings.sync_every
            && last_sync.elapsed() >= every
        {
            last_sync = Instant::now();
            sync_log(&log, &status);
        }
        if last_housekeeping.elapsed() >= settings.tick {
            last_housekeeping = Instant::now();
            housekeeping(&log, &mut dedup, &settings, &status, &metrics);
        }
    }
    // Synced and marked clean: at the next start a bad frame is then damage to report, never
    // a torn write to cut (only a crash tears one).
    match log.lock_ignoring_poison().mark_clean_shutdown() {
        Ok(()) => tracing::info!("log writer stopped; log synced"),
        Err(error) => {
            tracing::error!(%error, "log writer stopped; the final sync failed");
            status.writable.store(false, Ordering::Relaxed);
            *status.last_error.lock_ignoring_poison() = Some(error.to_string());
        }
    }
}

fn commit_group(
    log: &std::sync::Mutex<EventLog>,
    group: Vec<CommitRequest>,
    dedup: &mut DedupWindow,
    status: &WriterStatus,
    metrics: &Metrics,
    applier: &ApplierHandle,
) {
    let now = now_unix_ms();
    // Plan: which events are new. Later copies inside the same group are duplicates too.
    let mut batch_keys = std::collections::HashSet::new();
    let mut plans: Vec<Vec<Option<usize>>> = Vec::with_capacity(group.len());
    let mut records: Vec<&[u8]> = Vec::new();
    let mut new_keys = Vec::new();
    for request in &group {
        let mut plan = Vec::with_capacity(request.batch.len());
        for (key, record) in request.batch.records() {
            let duplicate = key.is_some_and(|key| dedup.contains(key) || !batch_keys.insert(key));
            if duplicate {
                plan.push(None);
            } else {
                if let Some(key) = key {
                    new_keys.push(key);
                }
                plan.push(Some(records.len()));
                records.push(record);
            }
        }
        plans.push(plan);
    }

    let started = Instant::now();
    let appended = log.lock_ignoring_poison().append_batch(&records, now);
    match appended {
        Ok(outcome) => {
            metrics.log_fsync_duration.observe(started.elapsed().as_secs_f64());
            metrics.log_appends.inc();
            metrics.log_appended_events.inc_by(records.len() as u64);
            metrics
                .log_appended_bytes
                .inc_by(records.iter().map(|record| record.len() as u64).sum());
            metrics.log_commit_events.observe(records.len() as f64);
            for key in new_keys {
                dedup.insert(key, now);
            }
            status.next_offset.store(outcome.next_offset, Ordering::Relaxed);
            if outcome.synced {
                status.durable_offset.store(outcome.next_offset, Ordering::Relaxed);
            }
            mark_writable(status);
            let mut committed = Vec::with_capacity(group.len());
            for (request, plan) in group.into_iter().zip(plans) {
                let stored = plan.iter().map(Option::is_some).collect();
                let outcomes: Vec<EventOutcome> = plan
                    .into_iter()
                    .map(|slot| match slot {
                        Some(index) => {
                            EventOutcome::Stored { offset: outcome.first_offset + index as u64 }
                        }
                        None => EventOutcome::Duplicate,
                    })
                    .collect();
                let stored_count = outcomes
                    .iter()
                    .filter(|outcome| matches!(outcome, EventOutcome::Stored { .. }))
                    .count();
                let labels = crate::telemetry::SourceLabels { source: request.source };
                metrics.events_accepted.get_or_create(&labels).inc_by(stored_count as u64);
                metrics
                    .events_duplicate
                    .get_or_create(&labels)
                    .inc_by((outcomes.len() - stored_count) as u64);
                committed.push(CommittedRequest {
                    events: request.batch.decoded,
                    stored,
                    outcomes,
                    reply: request.reply,
                });
            }
            applier.apply_and_answer(CommittedGroup {
                requests: committed,
                next_offset: outcome.next_offset,
            });
        }
        Err(error) => {
            metrics.log_append_errors.inc();
            let message = error.to_string();
            tracing::error!(error = %message, events = records.len(), "group commit failed; nothing in it was acknowledged");
            status.writable.store(false, Ordering::Relaxed);
            *status.last_error.lock_ignoring_poison() = Some(message.clone());
            for request in group {
                let _ = request.reply.send(Err(CommitError::Storage(message.clone())));
            }
        }
    }
}

fn mark_writable(status: &WriterStatus) {
    if !status.writable.swap(true, Ordering::Relaxed) {
        tracing::info!("event log is writable again");
    }
}

fn sync_log(log: &std::sync::Mutex<EventLog>, status: &WriterStatus) {
    let mut guard = log.lock_ignoring_poison();
    match guard.sync() {
        Ok(()) => {
            status.durable_offset.store(guard.durable_offset(), Ordering::Relaxed);
        }
        Err(error) => {
            status.writable.store(false, Ordering::Relaxed);
            *status.last_error.lock_ignoring_poison() = Some(error.to_string());
            tracing::error!(%error, "event log sync failed");
        }
    }
}

fn housekeeping(
    log: &std::sync::Mutex<EventLog>,
    dedup: &mut DedupWindow,
    settings: &WriterSettings,
    status: &WriterStatus,
    metrics: &Metrics,
) {
    let now = now_unix_ms();
    dedup.expire(now);
    let mut guard = log.lock_ignoring_poison();
    if !status.writable.load(Ordering::Relaxed) {
        // Probe: a successful sync means the device accepts writes again.
        if guard.sync().is_ok() {
            mark_writable(status);
        }
    }
    if settings.retention.max_age.is_some() || settings.retention.max_bytes.is_some() {
        let keep_from = status.snapshot_position.load(Ordering::Relaxed);
        match guard.apply_retention(&settings.retention, now, keep_from) {
            Ok(report) => tracing::debug!(?report, "retention applied"),
            Err(error) => tracing::warn!(%error, "retention failed"),
        }
    }
    let stats = guard.stats();
    drop(guard);
    status.log_bytes.store(stats.total_bytes, Ordering::Relaxed);
    status.segments.store(stats.segments as u64, Ordering::Relaxed);
    status.durable_offset.store(stats.durable_offset, Ordering::Relaxed);
    status.next_offset.store(stats.next_offset, Ordering::Relaxed);
    metrics.log_bytes.set(stats.total_bytes as i64);
    metrics.log_segments.set(stats.segments as i64);
    metrics.log_next_offset.set(stats.next_offset as i64);
}
