//! Offline tools: `verify` (full read-only scan of every frame) and `repair` (cut the log at the
//! first damaged frame, moving everything after it to `quarantine/`; nothing is ever deleted).

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};
use crate::event_log::lock_dir;
use crate::frame::{FrameScanner, MAX_RECORD_BYTES_LIMIT, Scanned};
use crate::segment::{self, SegmentFile};

/// Name of the directory (inside the log directory) that receives what `repair` cuts.
pub const QUARANTINE_DIR_NAME: &str = "quarantine";

/// The kind of damage found by `verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// A frame is truncated, has an impossible length, a checksum mismatch or a wrong offset.
    BadFrame,
    /// A segment that is not the last one does not end with a seal frame.
    MissingSeal,
    /// Bytes follow a seal frame.
    DataAfterSeal,
    /// A segment's base offset does not continue the previous segment.
    OffsetGap,
}

/// One problem found by `verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyProblem {
    pub kind: ProblemKind,
    /// The segment file name, e.g. `00000000000000000042.seg`.
    pub segment: String,
    pub path: PathBuf,
    /// Byte position inside the segment.
    pub position: u64,
    pub description: String,
    /// True when the problem is in the last (active) segment, where a torn tail within
    /// `max_unsynced_bytes` is expected after a crash and cut by `EventLog::open`.
    pub in_active_segment: bool,
    /// True when the file ends inside this frame (rather than the frame being damaged): with
    /// `in_active_segment`, what a frame the running writer has not finished looks like.
    pub cut_short: bool,
    segment_index: usize,
}

impl VerifyProblem {
    /// True for the end of the active segment stopping inside a frame: a torn write after a
    /// crash, or, while a server holds the log, a frame being written as it was read.
    pub fn is_unfinished_tail(&self) -> bool {
        self.in_active_segment && self.cut_short
    }
}

impl fmt::Display for VerifyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}: {}", self.segment, self.position, self.description)
    }
}

/// What `verify` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub segments: usize,
    /// Valid records read.
    pub records: u64,
    pub bytes: u64,
    pub first_offset: u64,
    /// One past the last valid record.
    pub next_offset: u64,
    /// Problems in log order; scanning a segment stops at its first problem.
    pub problems: Vec<VerifyProblem>,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// A segment cut by `repair`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruncatedSegment {
    pub path: PathBuf,
    /// The new length of the segment (the position of the damage).
    pub position: u64,
    pub cut_bytes: u64,
    /// Where the cut bytes were saved.
    pub saved_to: PathBuf,
}

/// What `repair` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// The first problem, at which the log was cut (`None`: the log was clean, nothing done).
    pub problem: Option<VerifyProblem>,
    pub truncated: Option<TruncatedSegment>,
    /// Whole segments moved to `quarantine/`, as their new paths.
    pub quarantined: Vec<PathBuf>,
    /// Offset the next appended record will get after the repair.
    pub next_offset: u64,
}

/// Reads every frame of every segment of `dir` and reports all problems with segment file name
/// and byte position. Read-only; needs no lock (a concurrently appended tail may show up as a
/// torn write). Zeros after the last segment's data are the writer's zero-filled space, not a
/// problem. Frame lengths are bounded by the format limit, since the configured
/// `max_record_bytes` is not known here.
pub fn verify(dir: &Path) -> Result<VerifyReport> {
    let segments = segment::list_segments(dir)?;
    scan_segments(&segments)
}

/// True when another process (a running server) holds the lock of the log in `dir`. Read-only:
/// a missing lock file means no writer has opened the log. The lock is taken shared and at once
/// released, so a server starting in that instant could find it taken; ask only when the
/// answer matters (an unfinished tail).
pub fn is_locked(dir: &Path) -> Result<bool> {
    let path = dir.join(crate::event_log::LOCK_FILE_NAME);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(error) => return Err(crate::error::LogError::io("open lock file", &path, error)),
    };
    match file.try_lock_shared() {
        Ok(()) => Ok(false),
        Err(std::fs::TryLockError::WouldBlock) => Ok(true),
        Err(std::fs::TryLockError::Error(error)) => {
            Err(crate::error::LogError::io("test lock", &path, error))
        }
    }
}

fn scan_segments(segments: &[SegmentFile]) -> Result<VerifyReport> {
    let mut report = VerifyReport {
        segments: segments.len(),
        first_offset: segments.first().map_or(0, |s| s.base),
        ..VerifyReport::default()
    };
    let mut expected_base: Option<u64> = None;
    for (index, segment) in segments.iter().enumerate() {
        report.bytes += segment.len;
        let is_last = index + 1 == segments.len();
        let problem = |kind, position, description: String| {
            let segment_name = segment
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            VerifyProblem {
                kind,
                segment: segment_name,
                path: segment.path.clone(),
                position,
                description,
                in_active_segment: is_last,
                cut_short: false,
                segment_index: index,
            }
        };
        if let Some(expected) = expected_base.filter(|expected| *expected != segment.base) {
            report.problems.push(problem(
                ProblemKind::OffsetGap,
                0,
                format!(
                    "segment starts at offset {} but the previous segment ends at offset {expected}",
                    segment.base
                ),
            ));
        }
        let file = File::open(&segment.path).context("open segment for verify", &segment.path)?;
        let mut scanner =
            FrameScanner::new(file, segment.len, segment.base, MAX_RECORD_BYTES_LIMIT);
        loop {
            match scanner.next_frame(true).context("read segment for verify", &segment.path)? {
                Scanned::Record { .. } => report.records += 1,
                Scanned::Seal { .. } => {
                    let zeros_after =
                        is_last && segment::zeros_from(&segment.path, scanner.position())?;
                    if scanner.position() != segment.len && !zeros_after {
                        report.problems.push(problem(
                            ProblemKind::DataAfterSeal,
                            scanner.position(),
                            format!(
                                "{} unexpected bytes after the seal frame",
                                segment.len - scanner.position()
                            ),
                        ));
                    }
                    break;
                }
                Scanned::End => {
                    if !is_last {
                        report.problems.push(problem(
                            ProblemKind::MissingSeal,
                            segment.len,
                            "segment is followed by another segment but has no seal frame".into(),
                        ));
                    }
                    break;
                }
                // The writer's zero-filled space after the active segment's data.
                Scanned::Bad { position, .. }
                    if is_last && segment::zeros_from(&segment.path, position)? =>
                {
                    break;
                }
                Scanned::Bad { position, reason } => {
                    let cut_short = scanner.cut_short();
                    report.problems.push(VerifyProblem {
                        cut_short,
                        ..problem(ProblemKind::BadFrame, position, reason)
                    });
                    break;
                }
            }
        }
        expected_base = Some(scanner.expected_offset());
        report.next_offset = scanner.expected_offset();
    }
    Ok(report)
}

/// Cuts the log at its first problem: the damaged segment is truncated there (the cut bytes are
/// first copied to `quarantine/`), and every later segment is moved to `quarantine/`. With an
/// offset gap, the segment after the gap is moved too. Takes the directory lock.
pub fn repair(dir: &Path) -> Result<RepairReport> {
    let _lock = lock_dir(dir)?;
    let segments = segment::list_segments(dir)?;
    let scan = scan_segments(&segments)?;
    let Some(problem) = scan.problems.first().cloned() else {
        return Ok(RepairReport { next_offset: scan.next_offset, ..RepairReport::default() });
    };
    let quarantine = dir.join(QUARANTINE_DIR_NAME);
    fs::create_dir_all(&quarantine).context("create quarantine directory", &quarantine)?;

    let index = problem.segment_index;
    let first_moved = if problem.kind == ProblemKind::OffsetGap { index } else { index + 1 };
    let damaged = &segments[index];
    let mut report = RepairReport { problem: Some(problem.clone()), ..RepairReport::default() };

    // Order matters if repair itself is interrupted: save the cut bytes, move later segments,
    // and only then truncate, so a rerun finds the same first problem and nothing is lost.
    let mut cut = None;
    if problem.kind != ProblemKind::OffsetGap && problem.position < damaged.len {
        let saved_to = unique_path(
            &quarantine,
            &format!("{}.from-byte-{}", problem.segment, problem.position),
        )?;
        copy_range(&damaged.path, problem.position, &saved_to)?;
        cut = Some(TruncatedSegment {
            path: damaged.path.clone(),
            position: problem.position,
            cut_bytes: damaged.len - problem.position,
            saved_to,
        });
    }
    for moved in segments.iter().skip(first_moved) {
        let name =
            moved.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let target = unique_path(&quarantine, &name)?;
        fs::rename(&moved.path, &target).context("move segment to quarantine", &moved.path)?;
        report.quarantined.push(target);
    }
    segment::sync_dir(&quarantine)?;
    segment::sync_dir(dir)?;
    if let Some(cut) = &cut {
        let file = OpenOptions::new()
            .write(true)
            .open(&cut.path)
            .context("open segment for repair", &cut.path)?;
        file.set_len(cut.position)
            .and_then(|()| file.sync_all())
            .context("truncate damaged segment", &cut.path)?;
    }
    report.truncated = cut;
    let remaining = segment::list_segments(dir)?;
    report.next_offset = scan_segments(&remaining)?.next_offset;
    tracing::warn!(
        problem = %problem,
        segments_moved = report.quarantined.len(),
        cut_bytes_saved_to = %report.truncated.as_ref().map_or_else(String::new, |cut| cut.saved_to.display().to_string()),
        "log repaired: cut at the first damaged frame; what was cut is in quarantine/"
    );
    Ok(report)
}

/// A path in `dir` named `name`, or `name.1`, `name.2`... if taken (repair never overwrites).
fn unique_path(dir: &Path, name: &str) -> Result<PathBuf> {
    let mut candidate = dir.join(name);
    let mut suffix = 0u32;
    while candidate.try_exists().context("check quarantine file", &candidate)? {
        suffix += 1;
        candidate = dir.join(format!("{name}.{suffix}"));
    }
    Ok(candidate)
}

/// Copies `source[from..]` into a new file `target`, fsynced.
fn copy_range(source: &Path, from: u64, target: &Path) -> Result<()> {
    let mut input = File::open(source).context("open damaged segment", source)?;
    input.seek(SeekFrom::Start(from)).context("seek in damaged segment", source)?;
    let mut output = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(target)
        .context("create quarantine file", target)?;
    let copied: io::Result<()> = (|| {
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let n = input.read(&mut buffer)?;
            if n == 0 {
                return output.sync_all();
            }
            output.write_all(&buffer[..n])?;
        }
    })();
    copied.context("copy damaged tail to quarantine", target)
}
