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
use crate::ingest::writer::{WriterStatus, now_unix_ms};
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
        log_status: Arc<WriterStatus>,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new().name("storepulse-engine".into()).spawn(move || {
                let mut history = HistorySchedule::new(HISTORY_EVERY, Instant::now());
                let mut last_snapshot = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::park_timeout(TICK);
                    let now = Timestamp(now_unix_ms());
                    // Skipped while a snapshot is encoded: waiting for the write lock then would
                    // also hold up every query behind this thread.
                    if let Some(mut engine) = engine.write_unless_busy() {
                        let started = Instant::now();
                        engine.prune_live(now);
                        held_for(&metrics, "live", started);
                        if let Some((pass_now, part)) = history.on_tick(Instant::now(), now) {
                            let started = Instant::now();
                            engine.prune_history_part(pass_now, part);
                            held_for(&metrics, "history", started);
                        }
                    }
                    let stats = engine.read_ignoring_poison().stats();
                    metrics.engine_events_applied.set(stats.events_applied as i64);
                    metrics.engine_memory_bytes.set(stats.approx_memory_bytes as i64);
                    metrics.engine_active_visitors.set(stats.active_visitors_tracked as i64);
                    metrics.engine_active_sessions.set(stats.active_sessions_tracked as i64);
                    if let Some(bytes) = crate::telemetry::resident_bytes() {
                        metrics.process_resident_bytes.set(bytes as i64);
                    }
                    if snapshot_every.is_some_and(|every| last_snapshot.elapsed() >= every) {
                        last_snapshot = Instant::now();
                        let written =
                            crate::engine_snapshots::write(&data_dir, &engine, &log_status);
                        if let Err(error) = written {
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

/// When day-scale retention runs: a pass starts every `every`, and its parts run one per tick
/// (not all at once: each walks a large map under the write lock), each with the `now` the
/// pass started with.
struct HistorySchedule {
    every: Duration,
    last_start: Instant,
    /// The pass under way: its `now`, and its parts still to run, last first.
    pass: Option<(Timestamp, Vec<HistoryPart>)>,
}

impl HistorySchedule {
    fn new(every: Duration, started: Instant) -> Self {
        Self { every, last_start: started, pass: None }
    }

    /// The part to run on a tick at `clock` (wall time `now`), with its pass's `now`.
    fn on_tick(&mut self, clock: Instant, now: Timestamp) -> Option<(Timestamp, HistoryPart)> {
        if self.pass.is_none() && clock.duration_since(self.last_start) >= self.every {
            self.last_start = clock;
            self.pass = Some((now, HistoryPart::ALL.iter().rev().copied().collect()));
        }
        let (pass_now, parts) = self.pass.as_mut()?;
        let due = parts.pop().map(|part| (*pass_now, part));
        if parts.is_empty() {
            self.pass = None;
        }
        due
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A pass every ten minutes, run a part per tick, every part with the `now` its pass
    /// started with; no pass starts while one is under way, and none sooner than ten minutes
    /// after the one before started.
    #[test]
    fn day_scale_retention_runs_one_part_per_tick_every_ten_minutes() {
        let start = Instant::now();
        let mut schedule = HistorySchedule::new(HISTORY_EVERY, start);
        let tick = |seconds: u64| start + Duration::from_secs(seconds);
        let wall = |seconds: u64| Timestamp(1_800_000_000_000 + seconds as i64 * 1000);
        assert_eq!(schedule.on_tick(tick(1), wall(1)), None);
        assert_eq!(schedule.on_tick(tick(599), wall(599)), None);
        let mut parts = Vec::new();
        for second in 600..600 + HistoryPart::ALL.len() as u64 {
            let (pass_now, part) = schedule.on_tick(tick(second), wall(second)).expect("a part");
            assert_eq!(pass_now, wall(600), "every part with its pass's now");
            parts.push(part);
        }
        assert_eq!(parts, HistoryPart::ALL, "each part once, in order");
        assert_eq!(schedule.on_tick(tick(606), wall(606)), None);
        assert_eq!(schedule.on_tick(tick(1199), wall(1199)), None);
        assert_eq!(
            schedule.on_tick(tick(1200), wall(1200)),
            Some((wall(1200), HistoryPart::ALL[0]))
        );
        // Ticks skipped (a snapshot being encoded) past the next start: the pass under way
        // goes on first.
        assert_eq!(
            schedule.on_tick(tick(2000), wall(2000)),
            Some((wall(1200), HistoryPart::ALL[1]))
        );
    }
}
