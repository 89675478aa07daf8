//! Small synchronisation helpers.

use std::sync::{Mutex, MutexGuard};

pub trait MutexExt<T> {
    /// Locks, recovering the data if a panicking thread poisoned the mutex. Storepulse's
    /// guarded state (the log handle, counters) stays consistent between calls, so a panic
    /// elsewhere must not take ingestion down with it.
    fn lock_ignoring_poison(&self) -> MutexGuard<'_, T>;
}

impl<T> MutexExt<T> for Mutex<T> {
    fn lock_ignoring_poison(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
