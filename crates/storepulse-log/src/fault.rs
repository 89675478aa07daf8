//! Fault injection for tests: make the next writes or fsyncs of a log fail, to exercise the
//! "disk full" and "fsync failed" paths without a broken disk.
//!
//! Compiled only with `cfg(test)` or the `fault-injection` feature; production builds carry a
//! zero-sized stand-in whose checks always succeed.

use std::io;

#[cfg(any(test, feature = "fault-injection"))]
mod enabled {
    use std::io;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Shared handle that arms failures in the log it came from.
    #[derive(Debug, Clone, Default)]
    pub struct FaultInjector {
        inner: Arc<Counters>,
    }

    #[derive(Debug, Default)]
    struct Counters {
        writes: AtomicU32,
        syncs: AtomicU32,
    }

    fn take_one(counter: &AtomicU32) -> bool {
        counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
    }

    impl FaultInjector {
        /// The next `n` segment writes fail with `StorageFull` after writing half of their
        /// buffer (a torn write, like a disk filling up mid-write).
        pub fn fail_next_writes(&self, n: u32) {
            self.inner.writes.store(n, Ordering::SeqCst);
        }

        /// The next `n` fsyncs of a segment fail with an `Other` error, without syncing.
        pub fn fail_next_syncs(&self, n: u32) {
            self.inner.syncs.store(n, Ordering::SeqCst);
        }

        /// Consumes one armed write failure. `Some(prefix_len)` means: write only this many
        /// bytes of `len`, then fail.
        pub(crate) fn take_write_failure(&self, len: usize) -> Option<usize> {
            take_one(&self.inner.writes).then_some(len / 2)
        }

        pub(crate) fn check_sync(&self) -> io::Result<()> {
            if take_one(&self.inner.syncs) {
                return Err(io::Error::other("injected fsync failure"));
            }
            Ok(())
        }
    }
}

#[cfg(any(test, feature = "fault-injection"))]
pub use enabled::FaultInjector;

/// Stand-in without any state when fault injection is compiled out.
#[cfg(not(any(test, feature = "fault-injection")))]
#[derive(Debug, Clone, Default)]
pub(crate) struct FaultInjector {
    _disabled: (),
}

#[cfg(not(any(test, feature = "fault-injection")))]
impl FaultInjector {
    #[inline]
    pub(crate) fn take_write_failure(&self, _len: usize) -> Option<usize> {
        None
    }

    #[inline]
    pub(crate) fn check_sync(&self) -> io::Result<()> {
        Ok(())
    }
}

/// The error an injected write failure returns.
pub(crate) fn injected_write_error() -> io::Error {
    io::Error::new(io::ErrorKind::StorageFull, "injected write failure (disk full)")
}
