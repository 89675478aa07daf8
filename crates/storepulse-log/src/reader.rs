//! `LogReader`: iterates the records of a snapshot `[from, end)` of the log, on any thread.
//!
//! The reader owns its file handles and a list of the segments the snapshot spans, so the
//! writer can keep appending (beyond `end`) meanwhile. Segments are opened lazily; one deleted
//! by retention before the reader got to it yields `OffsetNotRetained`. Every frame read is
//! checked (checksum and offset); frames before `from` in the first segment are skipped by
//! header only.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::path::PathBuf;

use crate::error::{IoContext, LogError, Result};
use crate::frame::{FrameScanner, Scanned};

/// One record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset: u64,
    pub appended_at_unix_ms: i64,
    pub payload: Vec<u8>,
}

/// A segment in a reader's snapshot.
#[derive(Debug, Clone)]
pub(crate) struct ReaderSegment {
    pub base: u64,
    /// One past the last offset to read from this segment.
    pub end_offset: u64,
    pub path: PathBuf,
}

/// Iterator over a snapshot of the log. Yields `Err` at most once, then ends.
#[derive(Debug)]
pub struct LogReader {
    dir: PathBuf,
    segments: VecDeque<ReaderSegment>,
    current: Option<OpenSegment>,
    next_offset: u64,
    end_offset: u64,
    max_record_bytes: u32,
    finished: bool,
}

struct OpenSegment {
    scanner: FrameScanner,
    path: PathBuf,
    end_offset: u64,
}

impl std::fmt::Debug for OpenSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenSegment")
            .field("path", &self.path)
            .field("position", &self.scanner.position())
            .field("end_offset", &self.end_offset)
            .finish()
    }
}

impl LogReader {
    pub(crate) fn new(
        dir: PathBuf,
        segments: Vec<ReaderSegment>,
        from_offset: u64,
        end_offset: u64,
        max_record_bytes: u32,
    ) -> Self {
        LogReader {
            dir,
            segments: segments.into(),
            current: None,
            next_offset: from_offset,
            end_offset,
            max_record_bytes,
            finished: false,
        }
    }

    /// Offset of the next record this reader yields.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// One past the last offset of the snapshot (the log's `next_offset()` at creation).
    pub fn end_offset(&self) -> u64 {
        self.end_offset
    }

    fn corrupt(&self, path: &std::path::Path, position: u64, reason: String) -> LogError {
        LogError::Corrupt { dir: self.dir.clone(), file: path.to_path_buf(), position, reason }
    }

    fn open_front(&mut self) -> Result<OpenSegment> {
        let Some(segment) = self.segments.front().cloned() else {
            return Err(LogError::OffsetNotRetained {
                requested: self.next_offset,
                first_offset: self.end_offset,
            });
        };
        let file = match File::open(&segment.path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                // Retention deleted it after this reader was created.
                return Err(LogError::OffsetNotRetained {
                    requested: self.next_offset,
                    first_offset: segment.end_offset,
                });
            }
            Err(error) => {
                return Err(LogError::io("open segment for reading", &segment.path, error));
            }
        };
        let len = file.metadata().context("read metadata of segment", &segment.path)?.len();
        let mut scanner = FrameScanner::new(file, len, segment.base, self.max_record_bytes);
        while scanner.expected_offset() < self.next_offset {
            match scanner.next_frame(false).context("read segment", &segment.path)? {
                Scanned::Record { .. } => {}
                Scanned::Bad { position, reason } => {
                    return Err(self.corrupt(&segment.path, position, reason));
                }
                Scanned::Seal { .. } | Scanned::End => {
                    return Err(self.corrupt(
                        &segment.path,
                        scanner.position(),
                        format!(
                            "segment ends before offset {} which the log says it holds",
                            self.next_offset
                        ),
                    ));
                }
            }
        }
        Ok(OpenSegment { scanner, path: segment.path, end_offset: segment.end_offset })
    }

    fn read_next(&mut self) -> Result<Record> {
        loop {
            let mut current = match self.current.take() {
                Some(current) => current,
                None => {
                    while self.segments.front().is_some_and(|s| s.end_offset <= self.next_offset) {
                        self.segments.pop_front();
                    }
                    self.open_front()?
                }
            };
            if current.scanner.expected_offset() >= current.end_offset {
                self.segments.pop_front();
                continue;
            }
            let step = current.scanner.next_frame(true).context("read segment", &current.path)?;
            match step {
                Scanned::Record { offset, appended_at_unix_ms, .. } => {
                    let payload = current.scanner.take_payload();
                    self.next_offset = offset + 1;
                    self.current = Some(current);
                    return Ok(Record { offset, appended_at_unix_ms, payload });
                }
                Scanned::Bad { position, reason } => {
                    return Err(self.corrupt(&current.path, position, reason));
                }
                Scanned::Seal { position, .. } => {
                    return Err(self.corrupt(
                        &current.path,
                        position,
                        format!(
                            "found a seal frame where record {} was expected",
                            self.next_offset
                        ),
                    ));
                }
                Scanned::End => {
                    return Err(self.corrupt(
                        &current.path,
                        current.scanner.position(),
                        format!(
                            "segment ends before offset {} which the log says it holds",
                            self.next_offset
                        ),
                    ));
                }
            }
        }
    }
}

impl Iterator for LogReader {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished || self.next_offset >= self.end_offset {
            return None;
        }
        let result = self.read_next();
        if result.is_err() {
            self.finished = true;
        }
        Some(result)
    }
}
