//! Every Prometheus metric Storepulse exports, declared once, and the tracing setup.
//!
//! Names carry the `storepulse_` prefix; labels are bounded: route templates (never raw
//! paths), status codes, closed sets of sources and reasons. The registry lives in the
//! [`crate::app::App`], not in a global, so tests can build as many apps as they like.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: &'static str,
    pub method: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    /// native, segment, realtime_ingest, promotion_buy, feedback, dead_letter_replay (the
    /// `commit` callers; `serve --demo` sends to `/api/v1/events`, so its events are native)
    pub source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClassLabels {
    pub class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppliedByLabels {
    /// writer (a small group, applied in line) or applier (its own thread)
    pub by: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HousekeepingLabels {
    /// live (expiry, every second) or history (one part of the day-scale retention run every
    /// ten minutes, a part per second)
    pub pass: &'static str,
}

fn latency_histogram() -> Histogram {
    // 50 µs .. ~1.6 s
    Histogram::new(exponential_buckets(0.00005, 2.0, 16))
}

fn batch_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 4.0, 10))
}

/// All metrics. Cloning shares the underlying values.
#[derive(Clone)]
pub struct Metrics {
    pub http_requests: Family<RequestLabels, Counter>,
    pub http_request_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pub events_accepted: Family<SourceLabels, Counter>,
    pub events_duplicate: Family<SourceLabels, Counter>,
    pub events_rejected: Family<ReasonLabels, Counter>,
    pub log_appends: Counter,
    pub log_appended_events: Counter,
    pub log_appended_bytes: Counter,
    pub log_append_errors: Counter,
    pub log_commit_events: Histogram,
    pub log_fsync_duration: Histogram,
    pub log_bytes: Gauge,
    pub log_segments: Gauge,
    pub log_next_offset: Gauge,
    pub ingest_queue_depth: Gauge,
    pub ingest_queue_full: Counter,
    pub dead_letters: Family<ReasonLabels, Counter>,
    pub dead_letters_dropped: Counter,
    pub rate_limited: Family<ClassLabels, Counter>,
    pub engine_events_applied: Gauge,
    pub engine_memory_bytes: Gauge,
    pub engine_active_visitors: Gauge,
    pub engine_active_sessions: Gauge,
    pub engine_backlog: Gauge,
    pub engine_apply_duration: Family<AppliedByLabels, Histogram, fn() -> Histogram>,
    pub engine_housekeeping_duration: Family<HousekeepingLabels, Histogram, fn() -> Histogram>,
    pub process_resident_bytes: Gauge,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Metrics {
        let metrics = Metrics {
            http_requests: Family::default(),
            http_request_duration: Family::new_with_constructor(latency_histogram),
            events_accepted: Family::default(),
            events_duplicate: Family::default(),
            events_rejected: Family::default(),
            log_appends: Counter::default(),
            log_appended_events: Counter::default(),
            log_appended_bytes: Counter::default(),
            log_append_errors: Counter::default(),
            log_commit_events: batch_histogram(),
            log_fsync_duration: latency_histogram(),
            log_bytes: Gauge::default(),
            log_segments: Gauge::default(),
            log_next_offset: Gauge::default(),
            ingest_queue_depth: Gauge::default(),
            ingest_queue_full: Counter::default(),
            dead_letters: Family::default(),
            dead_letters_dropped: Counter::default(),
            rate_limited: Family::default(),
            engine_events_applied: Gauge::default(),
            engine_memory_bytes: Gauge::default(),
            engine_active_visitors: Gauge::default(),
            engine_active_sessions: Gauge::default(),
            engine_backlog: Gauge::default(),
            engine_apply_duration: Family::new_with_constructor(latency_histogram),
            engine_housekeeping_duration: Family::new_with_constructor(latency_histogram),
            process_resident_bytes: Gauge::default(),
        };
        let registry = registry.sub_registry_with_prefix("storepulse");
        registry.register(
            "http_requests",
            "HTTP requests by route template, method and status",
            metrics.http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route template",
            metrics.http_request_duration.clone(),
        );
        registry.register(
            "events_accepted",
            "Events made durable, by intake",
            metrics.events_accepted.clone(),
        );
        registry.register(
            "events_duplicate",
            "Events acknowledged but not stored again (same store and event_id)",
            metrics.events_duplicate.clone(),
        );
        registry.register(
            "events_rejected",
            "Events or requests rejected, by reason",
            metrics.events_rejected.clone(),
        );
        registry.register(
            "log_appends",
            "Group commits written to the event log",
            metrics.log_appends.clone(),
        );
        registry.register(
            "log_appended_events",
            "Records written to the event log",
            metrics.log_appended_events.clone(),
        );
        registry.register(
            "log_appended_bytes",
            "Payload bytes written to the event log",
            metrics.log_appended_bytes.clone(),
        );
        registry.register(
            "log_append_errors",
            "Failed group commits (write or fsync errors); none of their events was acknowledged",
            metrics.log_append_errors.clone(),
        );
        registry.register(
            "log_commit_events",
            "Events per group commit",
            metrics.log_commit_events.clone(),
        );
        registry.register(
            "log_commit_duration_seconds",
            "Time to write and fsync one group commit",
            metrics.log_fsync_duration.clone(),
        );
        registry.register("log_bytes", "Bytes of event log on disk", metrics.log_bytes.clone());
        registry.register(
            "log_segments",
            "Segment files of the event log",
            metrics.log_segments.clone(),
        );
        registry.register(
            "log_next_offset",
            "Offset the next event will get",
            metrics.log_next_offset.clone(),
        );
        registry.register(
            "engine_events_applied",
            "Events applied to the analytics engine since start (replay included)",
            metrics.engine_events_applied.clone(),
        );
        registry.register(
            "engine_memory_bytes",
            "Approximate memory held by the analytics engine",
            metrics.engine_memory_bytes.clone(),
        );
        registry.register(
            "engine_active_visitors",
            "Visitors tracked by the live window",
            metrics.engine_active_visitors.clone(),
        );
        registry.register(
            "engine_active_sessions",
            "Sessions tracked by the live window",
            metrics.engine_active_sessions.clone(),
        );
        registry.register(
            "process_resident_bytes",
            "Resident memory of the process (Linux; the engine's share is most of it)",
            metrics.process_resident_bytes.clone(),
        );
        registry.register(
            "engine_apply_duration_seconds",
            "Time to apply one committed group to the engine, by the thread that applied it",
            metrics.engine_apply_duration.clone(),
        );
        registry.register(
            "engine_housekeeping_duration_seconds",
            "Time the engine's housekeeping held it (queries and acknowledgements wait \
             meanwhile), by pass: live (expiry, every second) or history (one part of \
             day-scale retention)",
            metrics.engine_housekeeping_duration.clone(),
        );
        registry.register(
            "engine_backlog_events",
            "Stored events waiting for the engine while a snapshot is encoded",
            metrics.engine_backlog.clone(),
        );
        registry.register(
            "ingest_queue_depth",
            "Requests waiting for the log writer",
            metrics.ingest_queue_depth.clone(),
        );
        registry.register(
            "ingest_queue_full",
            "Requests refused with 503 because the writer queue was full",
            metrics.ingest_queue_full.clone(),
        );
        registry.register(
            "dead_letters",
            "Dead-letter entries written, by first reason",
            metrics.dead_letters.clone(),
        );
        registry.register(
            "dead_letters_dropped",
            "Dead-letter entries lost: their queue was full, or writing them failed (e.g. a full disk)",
            metrics.dead_letters_dropped.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests refused with 429, by route class",
            metrics.rate_limited.clone(),
        );
        metrics
    }
}

/// Installs the tracing subscriber: `RUST_LOG` filters (default `info`); `RUST_LOG_FORMAT=json`
/// switches to JSON lines.
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("RUST_LOG_FORMAT").is_ok_and(|format| format == "json");
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = if json { builder.json().try_init() } else { builder.try_init() };
    if let Err(error) = result {
        eprintln!("tracing already initialised: {error}");
    }
}

/// The process's resident memory in bytes, from `/proc/self/status` (`None` where there is
/// no procfs). The engine's own figure is an estimate from its parts' sizes; this one includes
/// what the allocator keeps around them.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib = status.lines().find_map(|line| line.strip_prefix("VmRSS:"))?;
    let kib: u64 = kib.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}
