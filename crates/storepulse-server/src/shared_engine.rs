//! The analytics engine as the server shares it: the engine applier applies stored events
//! under the write lock, queries read it, and snapshots encode it under a read lock.
//!
//! A snapshot of a large state takes seconds to encode (8 s at 100 million events), a query
//! that walks every kept session trail (session metrics by product or below a day, funnels)
//! about a second at a million events a day, and the applier applies every committed group
//! before acknowledging it. So that acknowledgements never wait for such a long read, it
//! raises a flag while it reads; the applier, seeing it, keeps the group's events aside (they
//! are already durable), answers at once, and applies what it kept as soon as the read is
//! done. Outside long reads a client reads its own writes. Long reads one after another (two
//! dashboards polling funnels) would keep the engine from ever being free, and live figures
//! stale for as long as they came: once events have waited aside too long, the applier holds
//! new long reads at the door until it has applied them ([`EngineCell::hold_long_reads`]).

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{RwLock, RwLockWriteGuard, TryLockError};
use std::time::Duration;

use storepulse_engine::Engine;

use crate::sync::RwLockExt;

/// How long the writer waits for readers before it sets events aside (see
/// [`EngineCell::write_unless_busy`]).
const WRITER_PATIENCE: Duration = Duration::from_millis(50);
/// The longest a long read waits at the door for the applier (see
/// [`EngineCell::hold_long_reads`]): a safeguard, the applier lets it in within one long read.
const DOOR_PATIENCE: Duration = Duration::from_secs(30);

pub struct EngineCell {
    lock: RwLock<Engine>,
    /// Long reads in progress (a count, so two at once cannot clear each other's flag).
    long_reads: AtomicUsize,
    /// The applier has events aside that have waited too long: new long reads wait.
    door_closed: AtomicBool,
    /// Snapshots being encoded: while one runs the engine cannot be written anyway, so long
    /// reads beside it are not held (a funnel asked during a 15-second snapshot of a large
    /// engine would otherwise wait for it).
    snapshots: AtomicUsize,
}

impl EngineCell {
    pub fn new(engine: Engine) -> Self {
        Self {
            lock: RwLock::new(engine),
            long_reads: AtomicUsize::new(0),
            door_closed: AtomicBool::new(false),
            snapshots: AtomicUsize::new(0),
        }
    }

    /// Whether new long reads wait before they start (`true`) or start at once: the applier
    /// holds them while events it set aside have waited too long, so that the long reads in
    /// progress end, the engine is free, and those events are applied before the next one.
    pub fn hold_long_reads(&self, hold: bool) {
        self.door_closed.store(hold, Ordering::Release);
    }

    /// Waits while the applier holds long reads and no snapshot is being encoded (at most
    /// [`DOOR_PATIENCE`]).
    fn wait_at_the_door(&self) {
        let give_up = std::time::Instant::now() + DOOR_PATIENCE;
        while self.door_closed.load(Ordering::Acquire)
            && self.snapshots.load(Ordering::Acquire) == 0
            && std::time::Instant::now() < give_up
        {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Runs `encode` on the engine under the read lock, telling the writer not to wait for it.
    /// Held at the door like any long read (a snapshot taken once the events aside are in
    /// holds them too); once it runs, long reads beside it are not held.
    pub fn snapshot<R>(&self, encode: impl FnOnce(&Engine) -> R) -> R {
        self.wait_at_the_door();
        self.snapshots.fetch_add(1, Ordering::AcqRel);
        let _lowered = Lowered(&self.snapshots);
        self.read_long(encode)
    }

    /// Runs `read` on the engine under the read lock, telling the writer not to wait for it:
    /// for reads that take long (a snapshot's encode, a walk over every session trail).
    pub fn long_read<R>(&self, read: impl FnOnce(&Engine) -> R) -> R {
        self.wait_at_the_door();
        self.read_long(read)
    }

    /// [`EngineCell::long_read`] past the door.
    fn read_long<R>(&self, read: impl FnOnce(&Engine) -> R) -> R {
        self.long_reads.fetch_add(1, Ordering::AcqRel);
        // Lowered on the way out whatever happens, or the writer would stop applying for good.
        let _lowered = Lowered(&self.long_reads);
        read(&self.lock.read_ignoring_poison())
    }

    /// Write access if the engine is free right now (no long read, no reader): for a writer
    /// that has somewhere to put events meanwhile without waiting (see the applier).
    pub fn write_if_free(&self) -> Option<RwLockWriteGuard<'_, Engine>> {
        if self.long_reads.load(Ordering::Acquire) > 0 {
            return None;
        }
        match self.lock.try_write() {
            Ok(guard) => Some(guard),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// Write access for applying events, or `None` while a long read runs or other readers
    /// hold the engine past [`WRITER_PATIENCE`]: most queries take well under it, so a client
    /// still reads its own writes; one that takes longer (a distinct count over days of a big
    /// shop's sketches can take a second) no longer holds up every acknowledgement, since the
    /// applier sets the events aside and applies them once the engine is free.
    pub fn write_unless_busy(&self) -> Option<RwLockWriteGuard<'_, Engine>> {
        let give_up = std::time::Instant::now() + WRITER_PATIENCE;
        loop {
            if self.long_reads.load(Ordering::Acquire) > 0 {
                return None;
            }
            match self.lock.try_write() {
                Ok(guard) => return Some(guard),
                Err(TryLockError::Poisoned(poisoned)) => return Some(poisoned.into_inner()),
                // A query, or a long read that has raised its flag since the check above.
                Err(TryLockError::WouldBlock) if std::time::Instant::now() < give_up => {
                    std::thread::sleep(Duration::from_micros(50))
                }
                Err(TryLockError::WouldBlock) => return None,
            }
        }
    }
}

struct Lowered<'a>(&'a AtomicUsize);

impl Drop for Lowered<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Deref for EngineCell {
    type Target = RwLock<Engine>;

    fn deref(&self) -> &RwLock<Engine> {
        &self.lock
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use storepulse_engine::EngineConfig;

    #[test]
    fn the_writer_does_not_wait_for_a_snapshot() {
        let cell = EngineCell::new(Engine::new(EngineConfig::default()));
        assert!(cell.write_unless_busy().is_some());
        cell.snapshot(|_| {
            // Inside the encode: the writer is told to keep its events aside.
            assert!(cell.write_unless_busy().is_none());
        });
        assert!(cell.write_unless_busy().is_some());
    }

    /// Held long reads wait for the applier, except beside a snapshot, which keeps the engine
    /// from being written anyway.
    #[test]
    fn held_long_reads_wait_except_beside_a_snapshot() {
        let cell = EngineCell::new(Engine::new(EngineConfig::default()));
        let ran = |cell: &EngineCell| {
            std::thread::scope(|scope| {
                let (done, finished) = std::sync::mpsc::channel();
                scope.spawn(move || cell.long_read(|_| done.send(()).ok()));
                let in_time = finished.recv_timeout(Duration::from_millis(200)).is_ok();
                cell.hold_long_reads(false);
                in_time
            })
        };
        cell.hold_long_reads(true);
        assert!(!ran(&cell), "held: waits for the applier");
        let beside = cell.snapshot(|_| {
            cell.hold_long_reads(true);
            ran(&cell)
        });
        assert!(beside, "beside a snapshot: runs");
    }

    #[test]
    fn the_writer_does_not_wait_for_a_long_query() {
        let cell = EngineCell::new(Engine::new(EngineConfig::default()));
        cell.long_read(|_| assert!(cell.write_unless_busy().is_none()));
        assert!(cell.write_unless_busy().is_some());
    }

    #[test]
    fn write_if_free_does_not_wait_for_any_reader() {
        let cell = EngineCell::new(Engine::new(EngineConfig::default()));
        assert!(cell.write_if_free().is_some());
        let reader = cell.read_ignoring_poison();
        assert!(cell.write_if_free().is_none());
        drop(reader);
        cell.long_read(|_| assert!(cell.write_if_free().is_none()));
    }

    #[test]
    fn the_writer_does_not_wait_long_for_a_slow_query() {
        let cell = EngineCell::new(Engine::new(EngineConfig::default()));
        let reader = cell.read_ignoring_poison();
        // Before, the writer waited for as long as the reader read: here, for ever.
        assert!(cell.write_unless_busy().is_none());
        drop(reader);
        assert!(cell.write_unless_busy().is_some());
    }
}
