//! The dead-letter log: every rejected event or request, with why, kept for inspection and
//! replay.
//!
//! Entries are JSON records in their own segmented log (`<data_dir>/dead-letters`), written by
//! a background thread so a flood of bad input never slows good ingestion: when its queue is
//! full, or when writing them fails (a full disk), entries are dropped and counted
//! (`storepulse_dead_letters_dropped_total`); only written ones count in
//! `storepulse_dead_letters_total`. The log is
//! fsynced once a second — dead letters are diagnostics, not acknowledged data. Payloads are
//! capped at `dead_letters.max_payload_bytes`; client addresses are anonymized like events'.
//!
//! Besides the payload, an entry keeps what validation read from its request rather than from
//! the events (receive time, the headers' time, the `User-Agent`, a trusted proxy's country),
//! so that a replay reads the events as they came in.

pub mod replay;

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use serde::{Deserialize, Serialize};
use storepulse_log::{EventLog, FsyncPolicy, LogConfig, LogError, Retention};
use storepulse_model::time::HeaderTime;
use storepulse_model::{ErrorCode, FieldError, Timestamp};

use crate::config::Config;
use crate::ingest::writer::now_unix_ms;
use crate::sync::MutexExt;
use crate::telemetry::{Metrics, ReasonLabels};

/// Dead letters are read from their log itself: no reader holds retention back.
const NO_READER_BEHIND: u64 = u64::MAX;

/// One rejected event or request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Log offset; filled in when read back.
    #[serde(default)]
    pub offset: u64,
    #[serde(with = "storepulse_model::time::rfc3339")]
    pub received_at: Timestamp,
    /// Route template the payload came in by, e.g. `/api/v1/events`.
    pub endpoint: String,
    /// Position in the request's batch, when the request held several events.
    pub index: Option<usize>,
    pub content_type: Option<String>,
    pub client: Option<String>,
    pub reasons: Vec<FieldError>,
    pub payload: String,
    pub payload_bytes: usize,
    pub payload_truncated: bool,
    /// The payload was not UTF-8: `payload` shows it with U+FFFD in place of the bad bytes,
    /// which is not what was sent, so it is never replayed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub payload_not_utf8: bool,
    /// The store the request's write key routed it to (Segment with `ingest.write_keys`), so
    /// that a replay stores it there too; absent for the default store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// The time the request's headers gave (`X-Timestamp`, a proxy's `X-Request-Start`, …), as
    /// resolved when it came in; absent when they gave none (and in entries written before it
    /// was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_time: Option<HeaderTime>,
    /// The request's `User-Agent`, which gives an event that names no device its device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The country a trusted proxy named (`CF-IPCountry`), for events that name none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

/// What validation read from a dead letter's request rather than from its payload.
#[derive(Clone, Debug)]
pub struct RequestFacts<'a> {
    /// Route template the request came in by.
    pub endpoint: &'a str,
    /// When the request arrived (before its body was read).
    pub received_at: Timestamp,
    pub content_type: Option<&'a str>,
    /// The anonymized client.
    pub client: Option<&'a str>,
    /// The store a write key routed the request to.
    pub store: Option<&'a str>,
    pub header_time: Option<HeaderTime>,
    pub user_agent: Option<&'a str>,
    pub country: Option<&'a str>,
}

impl DeadLetter {
    pub fn new(
        request: &RequestFacts<'_>,
        index: Option<usize>,
        reasons: Vec<FieldError>,
        payload: &[u8],
        max_payload_bytes: usize,
    ) -> Self {
        let payload_bytes = payload.len();
        let kept = &payload[..payload_bytes.min(max_payload_bytes)];
        // Bytes that are not UTF-8, not merely a character the cut split at the end.
        let not_utf8 = match std::str::from_utf8(kept) {
            Ok(_) => false,
            Err(error) => error.error_len().is_some() || kept.len() == payload_bytes,
        };
        Self {
            offset: 0,
            received_at: request.received_at,
            endpoint: request.endpoint.to_owned(),
            index,
            content_type: request.content_type.map(str::to_owned),
            client: request.client.map(str::to_owned),
            reasons,
            payload: String::from_utf8_lossy(kept).into_owned(),
            payload_bytes,
            payload_truncated: kept.len() < payload_bytes,
            payload_not_utf8: not_utf8,
            store: request.store.map(str::to_owned),
            header_time: request.header_time,
            user_agent: request.user_agent.map(str::to_owned),
            country: request.country.map(str::to_owned),
        }
    }

    pub fn has_reason(&self, code: ErrorCode) -> bool {
        self.reasons.iter().any(|reason| reason.code == code)
    }
}

pub struct DeadLetterLog {
    sender: Mutex<Option<Sender<DeadLetter>>>,
    /// Entries queued, and entries the writer has finished with (written, or failed to):
    /// [`DeadLetterLog::flush`] waits for the second to reach the first.
    queued: std::sync::atomic::AtomicU64,
    handled: Arc<std::sync::atomic::AtomicU64>,
    writer: Mutex<Option<JoinHandle<()>>>,
    log: Arc<Mutex<EventLog>>,
    metrics: Metrics,
    pub max_payload_bytes: usize,
}

/// One page of dead letters.
#[derive(Debug, Serialize)]
pub struct DeadLetterPage {
    pub entries: Vec<DeadLetter>,
    /// Pass as `from` to continue; `null` when the end was reached.
    pub next: Option<u64>,
    pub first_offset: u64,
    pub next_offset: u64,
}

impl DeadLetterLog {
    pub fn open(config: &Config, metrics: Metrics) -> anyhow::Result<DeadLetterLog> {
        let mut log_config = LogConfig::new(config.dead_letters_dir());
        log_config.fsync = FsyncPolicy::Interval(Duration::from_secs(1));
        log_config.segment_bytes = 64 * 1024 * 1024;
        let (log, _report) = EventLog::open(log_config).map_err(|error| {
            let error = crate::log_commands::with_repair_command(error, &config.data_dir, true);
            error.context("dead-letter log")
        })?;
        let log = Arc::new(Mutex::new(log));
        let (sender, receiver) = crossbeam_channel::bounded(10_000);
        let retention = Retention {
            max_age: config.dead_letters.retention_max_age,
            max_bytes: config.dead_letters.retention_max_bytes,
        };
        let handled = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let writer = {
            let log = log.clone();
            let handled = handled.clone();
            let metrics = metrics.clone();
            std::thread::Builder::new().name("storepulse-dead-letters".into()).spawn(move || {
                run_dead_letter_writer(log, receiver, retention, &handled, &metrics)
            })?
        };
        Ok(DeadLetterLog {
            sender: Mutex::new(Some(sender)),
            queued: std::sync::atomic::AtomicU64::new(0),
            handled,
            writer: Mutex::new(Some(writer)),
            log,
            metrics,
            max_payload_bytes: config.dead_letters.max_payload_bytes,
        })
    }

    /// Queues an entry; never blocks the caller.
    pub fn record(&self, entry: DeadLetter) {
        for code in entry
            .reasons
            .iter()
            .map(|reason| reason.code)
            .collect::<std::collections::BTreeSet<_>>()
        {
            self.metrics
                .events_rejected
                .get_or_create(&ReasonLabels { reason: code.as_str() })
                .inc();
        }
        let sender = self.sender.lock_ignoring_poison();
        let Some(sender) = sender.as_ref() else { return };
        match sender.try_send(entry) {
            Ok(()) => {
                self.queued.fetch_add(1, std::sync::atomic::Ordering::Release);
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.metrics.dead_letters_dropped.inc();
            }
        }
    }

    /// Reads up to `limit` entries from offset `from`, keeping those with `reason` if given.
    pub fn page(
        &self,
        from: Option<u64>,
        limit: usize,
        reason: Option<ErrorCode>,
    ) -> Result<DeadLetterPage, LogError> {
        let (reader, first_offset, next_offset) = {
            let log = self.log.lock_ignoring_poison();
            let first = log.first_offset();
            let next = log.next_offset();
            let from = from.unwrap_or(first).clamp(first, next);
            (log.reader(from)?, first, next)
        };
        let mut entries = Vec::new();
        let mut next = None;
        for record in reader {
            let record = record?;
            if entries.len() == limit {
                next = Some(record.offset);
                break;
            }
            let Ok(mut entry) = serde_json::from_slice::<DeadLetter>(&record.payload) else {
                tracing::warn!(offset = record.offset, "unreadable dead-letter entry skipped");
                continue;
            };
            entry.offset = record.offset;
            if reason.is_none_or(|code| entry.has_reason(code)) {
                entries.push(entry);
            }
        }
        Ok(DeadLetterPage { entries, next, first_offset, next_offset })
    }

    /// Makes every queued entry durable and stops the writer thread.
    pub fn shutdown(&self) {
        self.sender.lock_ignoring_poison().take();
        if let Some(writer) = self.writer.lock_ignoring_poison().take()
            && writer.join().is_err()
        {
            tracing::error!("dead-letter writer thread panicked");
        }
    }

    /// The dead-letter log itself (tests arm write failures on it, as on the event log).
    pub fn log(&self) -> &Arc<Mutex<EventLog>> {
        &self.log
    }

    /// Waits until every entry queued so far is written (tests and replay use it).
    pub fn flush(&self) {
        use std::sync::atomic::Ordering;
        // Counted, not judged by an empty channel: the writer may have taken the last entries
        // off the channel and not written them yet.
        let target = self.queued.load(Ordering::Acquire);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while self.handled.load(Ordering::Acquire) < target
            && self.writer.lock_ignoring_poison().is_some()
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = self.log.lock_ignoring_poison().sync();
    }
}

impl Drop for DeadLetterLog {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Appends `batch` and counts what became of it: entries written under their first reason in
/// `dead_letters_total`, entries lost (a write error such as a full disk) in
/// `dead_letters_dropped_total`, so that an alert on lost dead letters can fire.
fn write_dead_letters(log: &Mutex<EventLog>, batch: &[DeadLetter], metrics: &Metrics) {
    let mut written = Vec::with_capacity(batch.len());
    for entry in batch {
        match serde_json::to_vec(entry) {
            Ok(encoded) => written.push((entry, encoded)),
            Err(_) => {
                metrics.dead_letters_dropped.inc();
            }
        }
    }
    let records: Vec<&[u8]> = written.iter().map(|(_, encoded)| encoded.as_slice()).collect();
    if let Err(error) = log.lock_ignoring_poison().append_batch(&records, now_unix_ms()) {
        tracing::error!(%error, lost = records.len(), "cannot write dead letters");
        metrics.dead_letters_dropped.inc_by(records.len() as u64);
        return;
    }
    for (entry, _) in &written {
        let reason = entry.reasons.first().map_or("unknown", |reason| reason.code.as_str());
        metrics.dead_letters.get_or_create(&ReasonLabels { reason }).inc();
    }
}

fn run_dead_letter_writer(
    log: Arc<Mutex<EventLog>>,
    entries: Receiver<DeadLetter>,
    retention: Retention,
    handled: &std::sync::atomic::AtomicU64,
    metrics: &Metrics,
) {
    let mut last_housekeeping = std::time::Instant::now();
    loop {
        let first = match entries.recv_timeout(Duration::from_millis(500)) {
            Ok(entry) => Some(entry),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        if let Some(first) = first {
            let mut batch = vec![first];
            batch.extend(entries.try_iter().take(1000));
            write_dead_letters(&log, &batch, metrics);
            handled.fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Release);
        }
        if last_housekeeping.elapsed() >= Duration::from_secs(1) {
            last_housekeeping = std::time::Instant::now();
            let mut guard = log.lock_ignoring_poison();
            let _ = guard.sync();
            if let Err(error) = guard.apply_retention(&retention, now_unix_ms(), NO_READER_BEHIND) {
                tracing::warn!(%error, "dead-letter retention failed");
            }
        }
    }
    if let Err(error) = log.lock_ignoring_poison().mark_clean_shutdown() {
        tracing::error!(%error, "dead-letter log: final sync failed");
    }
}

#[cfg(test)]
mod tests {
    use storepulse_model::TimeSource;

    use super::*;

    fn request(header_time: Option<HeaderTime>) -> RequestFacts<'static> {
        RequestFacts {
            endpoint: "/api/v1/events",
            received_at: Timestamp(1_795_000_000_000),
            content_type: Some("application/json"),
            client: Some("h:0123456789abcdef"),
            store: None,
            header_time,
            user_agent: None,
            country: None,
        }
    }

    /// Entries written before the request's header facts were kept still read, with none.
    #[test]
    fn an_entry_without_request_facts_reads_and_writes_none() {
        let old = r#"{"offset":0,"received_at":"2026-11-18T11:06:40.000Z","endpoint":"/api/v1/events","index":null,"content_type":"application/json","client":null,"reasons":[],"payload":"{}","payload_bytes":2,"payload_truncated":false}"#;
        let entry: DeadLetter = serde_json::from_str(old).unwrap();
        assert_eq!((entry.header_time, entry.user_agent, entry.country), (None, None, None));
        let written =
            serde_json::to_string(&DeadLetter::new(&request(None), None, vec![], b"{}", 64))
                .unwrap();
        for field in ["header_time", "user_agent", "country", "store"] {
            assert!(!written.contains(field), "{written}");
        }
    }

    #[test]
    fn request_facts_are_kept_as_validation_read_them() {
        let header_time = HeaderTime {
            time: Timestamp(1_794_999_000_000),
            source: TimeSource::ClientHeader,
            distrusted: true,
        };
        let mut facts = request(Some(header_time));
        facts.user_agent = Some("Mozilla/5.0 (iPhone)");
        facts.country = Some("DE");
        let entry = DeadLetter::new(&facts, Some(2), vec![], b"{}", 64);
        let written = serde_json::to_value(&entry).unwrap();
        assert_eq!(
            written["header_time"],
            serde_json::json!({
                "time": "2026-11-18T10:50:00.000Z", "source": "client_header", "distrusted": true
            })
        );
        assert_eq!(written["received_at"], "2026-11-18T11:06:40.000Z");
        let read: DeadLetter = serde_json::from_value(written).unwrap();
        assert_eq!(read, entry);
        assert_eq!(read.header_time, Some(header_time));
        assert_eq!(read.user_agent.as_deref(), Some("Mozilla/5.0 (iPhone)"));
        assert_eq!(read.country.as_deref(), Some("DE"));
    }
}
