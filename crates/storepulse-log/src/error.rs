//! Every way the log can fail, as one `thiserror` enum plus the crate `Result` alias.
//!
//! Messages are written for the operator reading a startup failure: they name the file, the byte
//! position and what to do next. I/O errors always say what the log was doing and on which path.

use std::io;
use std::path::{Path, PathBuf};

/// The crate-wide result type.
pub type Result<T> = std::result::Result<T, LogError>;

/// An error from the event log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// An operating-system call failed.
    #[error("cannot {action} `{}`: {source}", path.display())]
    Io {
        /// What the log was doing, e.g. "fsync segment".
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// Another `EventLog` (in this or another process) holds the directory lock.
    #[error(
        "log directory `{}` is locked by another process (or another open log in this process); \
         stop the other storepulse instance or use a different --data-dir",
        dir.display()
    )]
    Locked {
        /// The locked log directory.
        dir: PathBuf,
    },

    /// Acknowledged data is damaged; the log refuses to guess and points at `repair`.
    #[error(
        "corrupt log segment `{}` at byte {position}: {reason}; repairing the log in `{}` \
         (`storepulse log repair`) cuts it at this point and moves later records to quarantine",
        file.display(),
        dir.display()
    )]
    Corrupt {
        /// The log directory (what `repair` needs).
        dir: PathBuf,
        /// The damaged segment file.
        file: PathBuf,
        /// Byte position of the damage inside `file`.
        position: u64,
        /// What was wrong.
        reason: String,
    },

    /// One record of a batch is larger than `LogConfig::max_record_bytes`; nothing was written.
    #[error(
        "record {index} of the batch is {len} bytes, more than max_record_bytes ({max}); \
         nothing from this batch was written"
    )]
    RecordTooLarge {
        /// Index of the record inside the batch.
        index: usize,
        /// Its size in bytes.
        len: usize,
        /// The configured limit.
        max: u32,
    },

    /// An encoded batch is larger than `LogConfig::max_unsynced_bytes`, so a crash in the middle
    /// of writing it could not be told apart from corruption at the next start.
    #[error(
        "batch encodes to {batch_bytes} bytes, more than max_unsynced_bytes \
         ({max_unsynced_bytes}); split the batch or raise max_unsynced_bytes; \
         nothing from this batch was written"
    )]
    BatchTooLarge {
        /// Encoded size of the batch (headers included).
        batch_bytes: u64,
        /// The configured limit.
        max_unsynced_bytes: u64,
    },

    /// The requested offset was deleted by retention (or never existed below the first segment).
    #[error(
        "offset {requested} is no longer retained: the oldest record in the log is at offset \
         {first_offset}"
    )]
    OffsetNotRetained {
        /// The offset asked for.
        requested: u64,
        /// The oldest offset still in the log.
        first_offset: u64,
    },

    /// The requested offset lies beyond the end of the log.
    #[error(
        "offset {requested} is beyond the end of the log: the next record will get offset \
         {next_offset}"
    )]
    OffsetBeyondEnd {
        /// The offset asked for.
        requested: u64,
        /// The offset the next appended record will get.
        next_offset: u64,
    },

    /// The configuration cannot work.
    #[error("invalid log configuration: {reason}")]
    InvalidConfig {
        /// What is wrong and how to fix it.
        reason: String,
    },
}

impl LogError {
    /// Builds an [`LogError::Io`] from an action description and the path involved.
    pub(crate) fn io(action: &'static str, path: &Path, source: io::Error) -> Self {
        LogError::Io { action, path: path.to_path_buf(), source }
    }

    /// Returns true for errors that mean damaged data (as opposed to I/O or usage errors).
    pub fn is_corruption(&self) -> bool {
        matches!(self, LogError::Corrupt { .. })
    }

    /// Returns true when the device ran out of space.
    pub fn is_storage_full(&self) -> bool {
        matches!(self, LogError::Io { source, .. } if source.kind() == io::ErrorKind::StorageFull)
    }
}

/// Extension to attach an action and a path to `io::Result`s.
pub(crate) trait IoContext<T> {
    fn context(self, action: &'static str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn context(self, action: &'static str, path: &Path) -> Result<T> {
        self.map_err(|source| LogError::io(action, path, source))
    }
}
