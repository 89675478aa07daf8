//! How a log is configured: directory, segment size, durability policy and size limits.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{LogError, Result};
use crate::frame::MAX_RECORD_BYTES_LIMIT;

/// When `append_batch` fsyncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Fsync (fdatasync) inside every `append_batch` before it returns `Ok`: an acknowledged
    /// batch survives power loss. The default.
    Always,
    /// Fsync when the last fsync is older than the interval, or when more than
    /// `max_unsynced_bytes` are waiting. Up to one interval of acknowledged batches can be lost
    /// on power loss (never on a process crash: written data is in the page cache).
    Interval(Duration),
    /// Never fsync on append (only on `sync()` and when a segment is sealed). Weakest: any tail
    /// of the active segment after its first bad frame is treated as torn at startup and cut,
    /// because without fsyncs there is no bound on how much unsynced data a crash can damage.
    Never,
}

impl FsyncPolicy {
    /// Short stable name for stats and metrics labels.
    pub fn name(&self) -> &'static str {
        match self {
            FsyncPolicy::Always => "always",
            FsyncPolicy::Interval(_) => "interval",
            FsyncPolicy::Never => "never",
        }
    }
}

/// Configuration of one log directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// The directory holding segments, the `LOCK` file and `quarantine/`.
    pub dir: PathBuf,
    /// Roll to a new segment once the active one reaches this size. Default 128 MiB.
    pub segment_bytes: u64,
    /// When appends are fsynced. Default [`FsyncPolicy::Always`].
    pub fsync: FsyncPolicy,
    /// The most bytes that may sit unsynced past the durable end of the active segment (the
    /// writer fsyncs before exceeding it). At startup, valid frames found more than this far
    /// past a bad frame prove the damage hit acknowledged data, so the log refuses to open
    /// instead of cutting. Also the largest batch `append_batch` accepts (except with
    /// [`FsyncPolicy::Never`]). Default 64 MiB.
    pub max_unsynced_bytes: u64,
    /// Largest record payload; larger appends fail with `RecordTooLarge`. Default 16 MiB.
    pub max_record_bytes: u32,
}

impl LogConfig {
    /// Defaults: 128 MiB segments, [`FsyncPolicy::Always`], 64 MiB unsynced, 16 MiB records.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LogConfig {
            dir: dir.into(),
            segment_bytes: 128 * 1024 * 1024,
            fsync: FsyncPolicy::Always,
            max_unsynced_bytes: 64 * 1024 * 1024,
            max_record_bytes: 16 * 1024 * 1024,
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let invalid = |reason: String| Err(LogError::InvalidConfig { reason });
        if self.segment_bytes == 0 {
            return invalid("segment_bytes must be greater than 0".into());
        }
        if self.max_record_bytes > MAX_RECORD_BYTES_LIMIT {
            return invalid(format!(
                "max_record_bytes is {} but the frame format allows at most {MAX_RECORD_BYTES_LIMIT}",
                self.max_record_bytes
            ));
        }
        if self.fsync != FsyncPolicy::Never && self.max_unsynced_bytes == 0 {
            return invalid("max_unsynced_bytes must be greater than 0".into());
        }
        Ok(())
    }
}
