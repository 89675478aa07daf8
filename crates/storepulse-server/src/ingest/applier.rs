//! The engine applier thread: applies each committed group's stored events to the engine, in
//! log order, and answers each request once its own events are in — so a client reads its own
//! writes.
//!
//! It runs beside the log writer ([`super::writer`]) rather than inside it so that applying
//! one group overlaps with writing and fsyncing the next: a group of 1,000-event batches spends
//! milliseconds in each stage. The channel between the two holds at most [`PIPELINE_DEPTH`]
//! groups, so a writer that gets ahead of the engine waits instead of queueing without bound.
//! A small group (single events from many clients) costs the engine microseconds, less than
//! waking another thread: when the applier has nothing in hand, the writer applies such a group
//! itself ([`ApplierHandle::apply_and_answer`]); log order is kept because the applier is then
//! idle and only the writer gives it work.
//!
//! While a snapshot is being encoded the engine cannot be written: the events then wait in a
//! backlog (they are durable already), the requests are answered at once, and the backlog is
//! applied as soon as the snapshot is done (see [`crate::shared_engine`]), so acknowledgements
//! never wait seconds for a snapshot. Events that wait aside longer than [`MAX_BACKLOG_AGE`]
//! hold new long reads until they are applied.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, SendError, Sender};
use storepulse_model::Event;
use tokio::sync::oneshot;

use super::writer::{CommitError, EventOutcome};
use crate::app::SharedEngine;
use crate::sync::RwLockExt;
use crate::telemetry::Metrics;

/// Committed groups the writer may hand over before it waits for the applier: one being
/// applied while the next is written and fsynced.
pub const PIPELINE_DEPTH: usize = 1;
/// Groups with at most this many stored events are applied by the writer itself when the
/// applier is idle (about a hundred microseconds of engine work).
const INLINE_MAX_EVENTS: usize = 128;
/// How often an applier with a backlog checks whether the snapshot is done.
const BACKLOG_POLL: Duration = Duration::from_millis(5);
/// Events a backlog holds at most (about half a gigabyte) before applying waits for the
/// snapshot.
const MAX_BACKLOG: usize = 1_000_000;
/// How long events may wait aside before new long reads are held until they are applied (see
/// [`crate::shared_engine::EngineCell::hold_long_reads`]): live figures are then at most this
/// plus one long read behind, however many long reads follow one another.
const MAX_BACKLOG_AGE: Duration = Duration::from_secs(1);

pub type Reply = oneshot::Sender<Result<Vec<EventOutcome>, CommitError>>;

/// One request of a committed group: its events, which of them were stored (the others were
/// duplicates), and its answer.
pub struct CommittedRequest {
    pub events: Vec<Event>,
    pub stored: Vec<bool>,
    pub outcomes: Vec<EventOutcome>,
    pub reply: Reply,
}

impl CommittedRequest {
    fn stored_events(&self) -> impl Iterator<Item = &Event> {
        self.events.iter().zip(&self.stored).filter(|(_, stored)| **stored).map(|(event, _)| event)
    }

    fn answer(self) {
        // The requester may have gone away (client disconnect); its events are stored.
        let _ = self.reply.send(Ok(self.outcomes));
    }
}

/// The requests of one group commit, durable, and the log offset after the group.
pub struct CommittedGroup {
    pub requests: Vec<CommittedRequest>,
    pub next_offset: u64,
}

impl CommittedGroup {
    fn stored_events(&self) -> impl Iterator<Item = &Event> {
        self.requests.iter().flat_map(CommittedRequest::stored_events)
    }

    /// Applies the group request by request and answers each as soon as its own events are
    /// in: the first client of a large group does not wait for the last one's thousands of
    /// events. It still reads its own writes, because the engine stays locked for writing
    /// until the whole group is in (and its log position with it), so a query it sends at
    /// once waits for the lock. Returns the applied events, for the caller to drop once it has
    /// unlocked the engine.
    #[must_use = "drop the events after unlocking the engine"]
    fn apply_and_answer(
        self,
        engine: &mut storepulse_engine::Engine,
        metrics: &Metrics,
        by: &'static str,
    ) -> Vec<Vec<Event>> {
        let started = std::time::Instant::now();
        let mut applied = Vec::with_capacity(self.requests.len());
        for mut request in self.requests {
            request.stored_events().for_each(|event| engine.apply(event));
            applied.push(std::mem::take(&mut request.events));
            request.answer();
        }
        engine.set_log_position(self.next_offset);
        let labels = crate::telemetry::AppliedByLabels { by };
        metrics
            .engine_apply_duration
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        applied
    }

    fn answer(self) {
        self.requests.into_iter().for_each(CommittedRequest::answer);
    }
}

/// What the writer needs to know of the applier's state to apply a group itself.
#[derive(Default)]
struct Idleness {
    /// Groups handed over and not yet applied (or put in the backlog) and answered.
    pending: AtomicUsize,
    /// The applier holds a backlog (a snapshot was being encoded).
    backlog: AtomicBool,
}

impl Idleness {
    fn idle(&self) -> bool {
        self.pending.load(Ordering::Acquire) == 0 && !self.backlog.load(Ordering::Acquire)
    }
}

/// The writer's end of the applier.
pub struct ApplierHandle {
    groups: Sender<CommittedGroup>,
    idleness: Arc<Idleness>,
    engine: SharedEngine,
    metrics: Metrics,
}

impl ApplierHandle {
    /// Applies `group` to the engine and answers its requests: here, when it is small and the
    /// applier idle (nothing applied earlier can then still be waiting), else on the applier,
    /// waiting while it is a group behind (see [`PIPELINE_DEPTH`]).
    pub fn apply_and_answer(&self, group: CommittedGroup) {
        // Only when the engine is free right now: the applier waits for readers (a little)
        // and sets events aside, so waiting here too would double that wait.
        if self.idleness.idle()
            && group.stored_events().count() <= INLINE_MAX_EVENTS
            && let Some(mut engine) = self.engine.write_if_free()
        {
            let applied = group.apply_and_answer(&mut engine, &self.metrics, "writer");
            drop(engine);
            drop(applied);
            return;
        }
        self.idleness.pending.fetch_add(1, Ordering::AcqRel);
        if let Err(SendError(group)) = self.groups.send(group) {
            self.idleness.pending.fetch_sub(1, Ordering::AcqRel);
            tracing::error!("the engine applier has stopped; answering without applying");
            group.answer();
        }
    }
}

/// Starts the applier thread. Dropping the handle lets the thread apply what it holds and stop.
pub fn start(
    engine: SharedEngine,
    metrics: Metrics,
) -> std::io::Result<(ApplierHandle, JoinHandle<()>)> {
    let (groups, committed) = crossbeam_channel::bounded(PIPELINE_DEPTH);
    let idleness = Arc::new(Idleness::default());
    let thread = {
        let (engine, idleness, metrics) = (engine.clone(), idleness.clone(), metrics.clone());
        std::thread::Builder::new()
            .name("storepulse-applier".into())
            .spawn(move || run_applier(committed, &idleness, engine, metrics))?
    };
    Ok((ApplierHandle { groups, idleness, engine, metrics }, thread))
}

/// Stored events the engine has not applied yet (a snapshot was being encoded when they were
/// committed), oldest first, and the log offset after the last of them.
#[derive(Default)]
struct Backlog {
    events: Vec<Event>,
    next_offset: u64,
    /// When the oldest of `events` was set aside.
    since: Option<Instant>,
}

impl Backlog {
    /// Applies the backlog, if the engine is not being snapshotted.
    fn apply_if_free(&mut self, engine: &SharedEngine, metrics: &Metrics) {
        if self.events.is_empty() {
            return;
        }
        if let Some(mut engine) = engine.write_if_free() {
            self.apply(&mut engine, metrics);
        }
    }

    fn apply(&mut self, engine: &mut storepulse_engine::Engine, metrics: &Metrics) {
        for event in self.events.drain(..) {
            engine.apply(&event);
        }
        self.since = None;
        engine.set_log_position(self.next_offset);
        metrics.engine_backlog.set(0);
    }

    /// Whether events have waited aside longer than [`MAX_BACKLOG_AGE`].
    fn overdue(&self) -> bool {
        self.since.is_some_and(|since| since.elapsed() >= MAX_BACKLOG_AGE)
    }
}

/// Runs until the writer drops its handle, then applies what is left and returns.
fn run_applier(
    groups: Receiver<CommittedGroup>,
    idleness: &Idleness,
    engine: SharedEngine,
    metrics: Metrics,
) {
    let mut backlog = Backlog::default();
    loop {
        // A backlog is applied as soon as the snapshot that caused it is done, traffic or not.
        let next = if backlog.events.is_empty() {
            groups.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            groups.recv_timeout(BACKLOG_POLL)
        };
        match next {
            Ok(group) => {
                apply_group(group, &mut backlog, &engine, &metrics);
                // The backlog flag first: the writer takes "nothing pending" as final.
                idleness.backlog.store(!backlog.events.is_empty(), Ordering::Release);
                idleness.pending.fetch_sub(1, Ordering::AcqRel);
            }
            Err(RecvTimeoutError::Timeout) => {
                backlog.apply_if_free(&engine, &metrics);
                idleness.backlog.store(!backlog.events.is_empty(), Ordering::Release);
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
        engine.hold_long_reads(backlog.overdue());
    }
    if !backlog.events.is_empty() {
        // The shutdown snapshot comes after this, and should cover every stored event.
        backlog.apply(&mut engine.write_ignoring_poison(), &metrics);
    }
    engine.hold_long_reads(false);
}

fn apply_group(
    mut group: CommittedGroup,
    backlog: &mut Backlog,
    engine: &SharedEngine,
    metrics: &Metrics,
) {
    // Behind a backlog, the group joins it at once if the engine is busy (the events set
    // aside are waiting for the same reader); a backlog that has grown to its cap waits for
    // the engine instead: memory stays bounded.
    let free = if backlog.events.is_empty() {
        engine.write_unless_busy()
    } else if backlog.events.len() < MAX_BACKLOG {
        engine.write_if_free()
    } else {
        Some(engine.write_ignoring_poison())
    };
    match free {
        Some(mut engine) => {
            backlog.apply(&mut engine, metrics);
            let applied = group.apply_and_answer(&mut engine, metrics, "applier");
            drop(engine);
            drop(applied);
        }
        None => {
            backlog.since.get_or_insert_with(Instant::now);
            for request in &mut group.requests {
                let events = std::mem::take(&mut request.events);
                let stored = events.into_iter().zip(&request.stored).filter(|(_, stored)| **stored);
                backlog.events.extend(stored.map(|(event, _)| event));
            }
            backlog.next_offset = group.next_offset;
            metrics.engine_backlog.set(backlog.events.len() as i64);
            group.answer();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use storepulse_engine::{Engine, EngineConfig};
    use storepulse_model::Timestamp;
    use storepulse_model::limits::Limits;
    use storepulse_model::validate::{ValidationContext, decode_native_event};

    use super::*;
    use crate::shared_engine::EngineCell;
    use crate::sync::RwLockExt;

    fn page_views(count: usize) -> Vec<Event> {
        let limits = Limits::default();
        let new_id = || compact_str::CompactString::from("generated");
        let context =
            ValidationContext::for_trusted_events(Timestamp(1_893_456_000_000), &limits, &new_id);
        (0..count)
            .map(|i| {
                let json = format!(
                    r#"{{"type":"page_view","timestamp":"2026-12-01T10:00:00Z","user_id":"u{i}","page":{{"path":"/"}}}}"#
                );
                decode_native_event(&json, &context).unwrap()
            })
            .collect()
    }

    /// A group of `count` stored events ending at `next_offset`, and its answer.
    fn group(
        count: usize,
        next_offset: u64,
    ) -> (CommittedGroup, oneshot::Receiver<Result<Vec<EventOutcome>, CommitError>>) {
        let (reply, answer) = oneshot::channel();
        let request = CommittedRequest {
            events: page_views(count),
            stored: vec![true; count],
            outcomes: vec![EventOutcome::Duplicate; count],
            reply,
        };
        (CommittedGroup { requests: vec![request], next_offset }, answer)
    }

    fn started() -> (SharedEngine, ApplierHandle, JoinHandle<()>) {
        let engine: SharedEngine = Arc::new(EngineCell::new(Engine::new(EngineConfig::default())));
        let metrics = Metrics::register(&mut prometheus_client::registry::Registry::default());
        let (handle, thread) = start(engine.clone(), metrics).unwrap();
        (engine, handle, thread)
    }

    #[test]
    fn a_small_group_is_applied_and_answered_before_the_call_returns() {
        let (engine, handle, thread) = started();
        let (small, mut answer) = group(3, 3);
        handle.apply_and_answer(small);
        assert!(answer.try_recv().is_ok());
        assert_eq!(engine.read_ignoring_poison().events_applied(), 3);
        drop(handle);
        thread.join().unwrap();
    }

    /// A query holding the engine longer than the writer's patience no longer holds up the
    /// answers (a second-long query held every acknowledgement that long): the groups are
    /// answered, kept aside, and applied in log order once the engine is free.
    #[test]
    fn a_slow_query_holds_up_no_answer_and_groups_are_applied_in_log_order() {
        let (engine, handle, thread) = started();
        let (large, large_answer) = group(INLINE_MAX_EVENTS + 1, 200);
        let (small, small_answer) = group(2, 202);
        std::thread::scope(|scope| {
            let query = engine.read_ignoring_poison();
            let writer = scope.spawn(move || {
                handle.apply_and_answer(large);
                handle.apply_and_answer(small);
            });
            // Answered while the query still holds the engine: nothing is applied yet.
            assert!(large_answer.blocking_recv().is_ok());
            assert!(small_answer.blocking_recv().is_ok());
            assert_eq!(query.events_applied(), 0);
            drop(query);
            writer.join().unwrap();
        });
        thread.join().unwrap();
        let engine = engine.read_ignoring_poison();
        assert_eq!(engine.events_applied(), INLINE_MAX_EVENTS as u64 + 3);
        assert_eq!(engine.log_position(), 202, "the later group was applied last");
    }

    /// Long reads one after another (dashboards polling funnels) kept the engine from ever
    /// being free: events set aside waited for as long as they came, live figures stale.
    /// Once they have waited [`MAX_BACKLOG_AGE`], the next long read waits for them instead.
    #[test]
    fn events_aside_too_long_are_applied_before_the_next_long_read() {
        let (engine, handle, thread) = started();
        let (large, answer) = group(INLINE_MAX_EVENTS + 1, 129);
        let (release_first, first_released) = std::sync::mpsc::channel::<()>();
        std::thread::scope(|scope| {
            let cell = &engine;
            let first = scope.spawn(move || {
                cell.long_read(|_| first_released.recv().unwrap());
            });
            while engine.write_if_free().is_some() {
                std::thread::yield_now();
            }
            handle.apply_and_answer(large);
            assert!(answer.blocking_recv().is_ok(), "answered while the long read holds");
            std::thread::sleep(MAX_BACKLOG_AGE + Duration::from_millis(100));
            // The second long read starts while the first still runs, as back-to-back polls
            // overlap; it waits at the door until the events aside are in.
            let second = scope.spawn(|| engine.long_read(|engine| engine.events_applied()));
            std::thread::sleep(Duration::from_millis(50));
            release_first.send(()).unwrap();
            first.join().unwrap();
            assert_eq!(second.join().unwrap(), INLINE_MAX_EVENTS as u64 + 1);
        });
        drop(handle);
        thread.join().unwrap();
    }
}
