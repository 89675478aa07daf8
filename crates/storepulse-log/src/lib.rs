//! `storepulse-log`: a synchronous, durable, append-only, segmented log of opaque byte records.
//!
//! The server opens two: one for accepted events and one for dead letters. One writer thread
//! owns the [`EventLog`] and group-commits with [`EventLog::append_batch`]; readers
//! ([`LogReader`], `Send`) run on other threads. No async, no clock reads: callers pass
//! `now_unix_ms`.
//!
//! # Directory layout
//!
//! ```text
//! <dir>/LOCK                          exclusive lock (flock) held by the open EventLog / repair
//! <dir>/00000000000000000000.seg      sealed segment, records 0..n
//! <dir>/0000000000000000000n.seg      ... the last segment is the active one
//! <dir>/quarantine/                   what `repair` cut off; never read, never deleted
//! ```
//!
//! A segment is named after the offset of its first record (`{base:020}.seg`), and a record's
//! offset is its global sequence number: `base + index in segment`. Offsets are contiguous
//! across segments; retention only removes whole sealed segments from the front.
//!
//! # Frames
//!
//! Each segment is a sequence of frames (see [`frame`] for the byte layout):
//! `len u32 | crc32c u32 | offset u64 | appended_at_unix_ms i64 | payload`, CRC over
//! len, offset, time and payload. A segment is sealed when the log rolls by a seal frame (top
//! bit of `len` set) carrying the record count and newest append time; it is fsynced before
//! the next segment is created, and creating a segment fsyncs the directory.
//!
//! # Durability
//!
//! - [`FsyncPolicy::Always`] (default): `append_batch` returns `Ok` only after fdatasync.
//! - [`FsyncPolicy::Interval`]: fsync when the last one is older than the interval or more than
//!   `max_unsynced_bytes` wait; [`AppendOutcome::synced`] tells which batches are durable.
//! - [`FsyncPolicy::Never`]: fsync only on [`EventLog::sync`] and when sealing a segment.
//!
//! [`EventLog::durable_offset`] is the boundary: every offset below it survives power loss.
//!
//! # Recovery, verification, repair
//!
//! [`EventLog::open`] checks sealed segments by their seal only and scans the active segment,
//! cutting a torn tail and refusing to open on damage to acknowledged data (module
//! [`recovery`] has the exact rule). [`verify`] scans every frame read-only. [`repair`] cuts the
//! log at the first damaged frame and moves the rest to `quarantine/`.
//!
//! # Write failures
//!
//! A failed write or fsync returns `Err`, leaves nothing of the batch in the log, and the next
//! append re-truncates and fsyncs the active segment before writing (see `event_log`).

pub mod config;
pub mod error;
mod event_log;
pub mod fault;
pub mod frame;
mod reader;
pub mod recovery;
pub mod segment;
mod verify;

#[cfg(test)]
mod proptests;

pub use config::{FsyncPolicy, LogConfig};
pub use error::{LogError, Result};
pub use event_log::{
    AppendOutcome, CLEAN_SHUTDOWN_FILE_NAME, EventLog, LOCK_FILE_NAME, LogStats, Retention,
    RetentionReport, ZERO_FILL_CHUNK, ZERO_FILL_MAX_BATCH,
};
#[cfg(any(test, feature = "fault-injection"))]
pub use fault::FaultInjector;
pub use reader::{LogReader, Record};
pub use recovery::RecoveryReport;
pub use verify::{
    ProblemKind, QUARANTINE_DIR_NAME, RepairReport, TruncatedSegment, VerifyProblem, VerifyReport,
    is_locked, repair, verify,
};
