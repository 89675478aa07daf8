//! The engine's housekeeping thread, kept off the log writer and the engine applier so that
//! commits never wait for it:
//! every second it expires live windows and rollup buckets (cheap: it costs what expired) and
//! exports the engine's size; every ten minutes it applies day-scale retention (visitor item
//! sets, funnel trails, remembered orders, distinct sketches — this walks those maps under
//! the write lock), one part per tick so that queries and acknowledgements wait for one map's
//! walk at most; every `engine.snapshot_interval` it writes a snapshot. How long each pass
//! held the engine is in `storepulse_engine_housekeeping_duration_seconds`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use storepulse_engine::HistoryPart;
use storepulse_model::Timestamp;

use crate::app::SharedEngine;
use crate::ingest::writer::now_unix_ms;
use crate::sync::RwLockExt;
use crate::telemetry::Metrics;

const TICK: Duration = Duration::from_secs(1);
const HISTORY_EVERY: Duration = Duration::from_secs(600);

pub struct Maintenance {
    stop: Arc<AtomicBool>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Maintenance {
    pub fn start(
        engine: SharedEngine,
        metrics: Metrics,
        data_dir: PathBuf,
        snapshot_every: Option<Duration>,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new().name("storepulse-engine".into()).spawn(move || {
                let mut last_history = Instant::now();
                // The day-scale pass under way: its `now`, and its parts still to run (last
                // first), one per tick.
                let mut history: Option<(Timestamp, Vec<HistoryPart>)> = None;
                let mut last_snapshot = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::park_timeout(TICK);
                    let now = Timestamp(now_unix_ms());
                    // Skipped while a snapshot is encoded: waiting for the write lock then would
                    // also hold up every query behind this thread.
                    if let Some(mut engine) = engine.write_unless_snapshotting() {
                        let started = Instant::now();
                        engine.prune_live(now);
                        held_for(&metrics, "live", started);
                        if history.is_none() && last_history.elapsed() >= HISTORY_EVERY {
                            last_history = Instant::now();
                            let parts = HistoryPart::ALL.iter().rev().copied().collect();
                            history = Some((now, parts));
                        }
                        if let Some((pass_now, parts)) = &mut history {
                            if let Some(part) = parts.pop() {
                                let started = Instant::now();
                                engine.prune_history_part(*pass_now, part);
                                held_for(&metrics, "history", started);
                            }
                            if parts.is_empty() {
                                history = None;
                            }
                        }
                    }
                    let stats = engine.read_ignoring_poison().stats();
                    metrics.engine_events_applied.set(stats.events_applied as i64);
                    metrics.engine_memory_bytes.set(stats.approx_memory_bytes as i64);
                    metrics.engine_active_visitors.set(stats.active_visitors_tracked as i64);
                    if let Some(bytes) = crate::telemetry::resident_bytes() {
                        metrics.process_resident_bytes.set(bytes as i64);
                    }
                    if snapshot_every.is_some_and(|every| last_snapshot.elapsed() >= every) {
                        last_snapshot = Instant::now();
                        if let Err(error) = crate::engine_snapshots::write(&data_dir, &engine) {
                            tracing::warn!(%error, "engine snapshot failed; the next one will retry");
                        }
                    }
                }
            })?
        };
        Ok(Self { stop, thread: std::sync::Mutex::new(Some(thread)) })
    }

    /// Stops the thread and waits for it (idempotent).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(thread) = thread {
            thread.thread().unpark();
            if thread.join().is_err() {
                tracing::error!("engine maintenance thread panicked");
            }
        }
    }
}

/// Records how long a housekeeping pass that began at `started` held the engine.
fn held_for(metrics: &Metrics, pass: &'static str, started: Instant) {
    let labels = crate::telemetry::HousekeepingLabels { pass };
    metrics
        .engine_housekeeping_duration
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
}

impl Drop for Maintenance {
    fn drop(&mut self) {
        self.stop();
    }
}
