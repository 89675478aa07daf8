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

pub trait RwLockExt<T> {
    /// Read access, recovering from poisoning like [`MutexExt::lock_ignoring_poison`].
    fn read_ignoring_poison(&self) -> std::sync::RwLockReadGuard<'_, T>;
    /// Write access, recovering from poisoning.
    fn write_ignoring_poison(&self) -> std::sync::RwLockWriteGuard<'_, T>;
}

impl<T> RwLockExt<T> for std::sync::RwLock<T> {
    fn read_ignoring_poison(&self) -> std::sync::RwLockReadGuard<'_, T> {
        self.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write_ignoring_poison(&self) -> std::sync::RwLockWriteGuard<'_, T> {
        self.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
