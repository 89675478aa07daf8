//! Startup recovery: turn whatever a crash left in the directory into a consistent log, or
//! refuse with `Corrupt` when acknowledged data is damaged.
//!
//! # Rules
//!
//! - **Sealed segments** (all but the last) are checked cheaply: only their 40-byte seal frame
//!   is read, and bases must be contiguous (`next.base == base + record_count`). A missing or
//!   invalid seal, or a gap, is mid-log damage: startup fails and points at `repair`. Their
//!   frames are not scanned, so restart time does not grow with the log; `verify` scans them.
//! - **The active segment** (the last one) is scanned frame by frame. At the first bad frame at
//!   byte `p` the writer's invariant decides: with `Always`/`Interval` the writer never lets more
//!   than `max_unsynced_bytes` sit past the durable end of the file, so a crash can only damage
//!   bytes in `[durable_end, durable_end + max_unsynced_bytes)`, and `p >= durable_end`. Hence if
//!   no valid frame ends more than `max_unsynced_bytes` past `p`, the tail is a torn,
//!   never-acknowledged write (pages may have reached the disk out of order, so valid frames can
//!   follow garbage) and it is cut at `p`. Otherwise a valid frame lies beyond anything a crash
//!   could have touched, which proves acknowledged data was damaged: refuse to open.
//! - With `FsyncPolicy::Never` there is no such bound, so any tail after the first bad frame is
//!   treated as torn and cut. This is the documented weaker guarantee of that policy.
//! - **Zero-filled space.** With a syncing policy the writer keeps zeros written ahead of the
//!   active segment's data (see `event_log`). A bad frame followed only by zero bytes up to the
//!   end of the file is that space — the clean end of the data, whether it held no write yet or
//!   a crash left unsynced pages unwritten there: the zeros stay for the writer to reuse and
//!   nothing is reported as cut. Anything else non-zero after the first bad frame is judged by
//!   the rules above.
//! - A last segment that ends with a valid seal means the crash hit between sealing and creating
//!   the next segment: that segment is created now (zeros after the seal are cut first, so the
//!   sealed file ends with its seal).
//! - After recovery the active segment is fsynced, so everything that survived is durable.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::config::{FsyncPolicy, LogConfig};
use crate::error::{IoContext, LogError, Result};
use crate::frame::{self, FrameScanner, HEADER_LEN, SEAL_FRAME_LEN, Scanned};
use crate::segment::{self, SegmentFile};

/// What `EventLog::open` found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segment files in the log after recovery (sealed + active).
    pub segments: usize,
    /// Records retained in the log after recovery.
    pub records: u64,
    /// Bytes cut from the end of the active segment (a torn, unacknowledged write).
    pub truncated_bytes: u64,
    /// Why the tail was cut, when it was.
    pub truncation_reason: Option<String>,
    /// Oldest retained offset.
    pub first_offset: u64,
    /// Offset the next appended record gets.
    pub next_offset: u64,
    /// True when the last segment was found sealed and a fresh active segment was created.
    pub created_active_segment: bool,
}

/// A sealed, immutable segment.
#[derive(Debug, Clone)]
pub(crate) struct SealedSegment {
    pub base: u64,
    pub record_count: u64,
    pub newest_appended_at_unix_ms: i64,
    /// File size, seal included.
    pub bytes: u64,
    pub path: PathBuf,
}

impl SealedSegment {
    pub fn end_offset(&self) -> u64 {
        self.base + self.record_count
    }
}

/// The state of the active segment after recovery.
#[derive(Debug)]
pub(crate) struct RecoveredActive {
    pub base: u64,
    pub path: PathBuf,
    pub file: File,
    /// Length of the valid data.
    pub len: u64,
    /// Length of the file: `len` plus the zero-filled space after it.
    pub file_len: u64,
    pub record_count: u64,
    pub newest_appended_at_unix_ms: Option<i64>,
}

pub(crate) struct Recovered {
    pub sealed: VecDeque<SealedSegment>,
    pub active: RecoveredActive,
    pub report: RecoveryReport,
}

fn corrupt(dir: &Path, file: &Path, position: u64, reason: String) -> LogError {
    LogError::Corrupt { dir: dir.to_path_buf(), file: file.to_path_buf(), position, reason }
}

/// Runs recovery on `config.dir` (the caller holds the lock). `clean_shutdown`: the log was
/// last closed by [`crate::EventLog::mark_clean_shutdown`], everything in it synced, so no
/// write can have been torn and any bad frame is damage.
pub(crate) fn recover(config: &LogConfig, clean_shutdown: bool) -> Result<Recovered> {
    let dir = config.dir.as_path();
    let mut files = segment::list_segments(dir)?;
    let mut report = RecoveryReport {
        segments: 0,
        records: 0,
        truncated_bytes: 0,
        truncation_reason: None,
        first_offset: 0,
        next_offset: 0,
        created_active_segment: false,
    };

    let Some(last) = files.pop() else {
        let (file, path) = segment::create_segment(dir, 0)?;
        report.segments = 1;
        report.created_active_segment = true;
        let active = RecoveredActive {
            base: 0,
            path,
            file,
            len: 0,
            file_len: 0,
            record_count: 0,
            newest_appended_at_unix_ms: None,
        };
        return Ok(Recovered { sealed: VecDeque::new(), active, report });
    };

    let mut sealed = VecDeque::with_capacity(files.len() + 1);
    let mut expected_base: Option<u64> = None;
    for file in &files {
        check_contiguous(dir, file, expected_base)?;
        let seal = segment::read_seal(file)?.map_err(|reason| {
            corrupt(dir, &file.path, file.len.saturating_sub(SEAL_FRAME_LEN as u64), reason)
        })?;
        let sealed_segment = SealedSegment {
            base: file.base,
            record_count: seal.record_count,
            newest_appended_at_unix_ms: seal.newest_appended_at_unix_ms,
            bytes: file.len,
            path: file.path.clone(),
        };
        expected_base = Some(sealed_segment.end_offset());
        sealed.push_back(sealed_segment);
    }
    check_contiguous(dir, &last, expected_base)?;

    let scan = scan_active(config, &last)?;
    let file = segment::open_segment_for_append(&last.path)?;
    let mut file_len = last.len;
    if scan.zero_tail && scan.seal.is_some() {
        // A sealed segment must end with its seal: `read_seal` reads the file's last bytes.
        file.set_len(scan.valid_len).context("cut zeros after the seal of segment", &last.path)?;
        file_len = scan.valid_len;
    } else if scan.valid_len < last.len && !scan.zero_tail {
        if clean_shutdown {
            let reason = scan.bad_reason.clone().unwrap_or_default();
            return Err(corrupt(
                dir,
                &last.path,
                scan.valid_len,
                format!(
                    "{reason}; the log was shut down cleanly with everything synced, so this is \
                     damage to stored data, not a write torn by a crash"
                ),
            ));
        }
        let kept = quarantine_tail(dir, &last.path, scan.valid_len)?;
        tracing::warn!(
            kept = %kept.display(),
            segment = %last.path.display(),
            position = scan.valid_len,
            cut_bytes = last.len - scan.valid_len,
            reason = scan.bad_reason.as_deref().unwrap_or(""),
            "cutting torn tail of the active log segment"
        );
        file.set_len(scan.valid_len).context("truncate torn tail of segment", &last.path)?;
        report.truncated_bytes = last.len - scan.valid_len;
        report.truncation_reason = scan.bad_reason.clone();
        file_len = scan.valid_len;
    }
    // Whatever survived becomes durable now, so `durable_offset == next_offset` after open.
    file.sync_all().context("fsync segment after recovery", &last.path)?;

    let active = match scan.seal {
        Some(seal) => {
            let sealed_segment = SealedSegment {
                base: last.base,
                record_count: seal.0,
                newest_appended_at_unix_ms: seal.1,
                bytes: scan.valid_len,
                path: last.path.clone(),
            };
            let next_base = sealed_segment.end_offset();
            sealed.push_back(sealed_segment);
            let (file, path) = segment::create_segment(dir, next_base)?;
            report.created_active_segment = true;
            RecoveredActive {
                base: next_base,
                path,
                file,
                len: 0,
                file_len: 0,
                record_count: 0,
                newest_appended_at_unix_ms: None,
            }
        }
        None => RecoveredActive {
            base: last.base,
            path: last.path.clone(),
            file,
            len: scan.valid_len,
            file_len,
            record_count: scan.record_count,
            newest_appended_at_unix_ms: scan.newest_appended_at_unix_ms,
        },
    };

    report.segments = sealed.len() + 1;
    report.first_offset = sealed.front().map_or(active.base, |s| s.base);
    report.next_offset = active.base + active.record_count;
    report.records = report.next_offset - report.first_offset;
    Ok(Recovered { sealed, active, report })
}

/// Copies the bytes of `segment` from `from` to its end into `quarantine/` before they are
/// cut: a torn tail is unacknowledged writes, but should the server not have crashed (damage
/// within the last `max_unsynced_bytes` looks the same) nothing is lost for good.
fn quarantine_tail(dir: &Path, segment: &Path, from: u64) -> Result<PathBuf> {
    let quarantine = dir.join(crate::verify::QUARANTINE_DIR_NAME);
    std::fs::create_dir_all(&quarantine).context("create quarantine directory", &quarantine)?;
    let name = segment.file_name().and_then(|name| name.to_str()).unwrap_or("segment");
    let kept = quarantine.join(format!("{name}.tail-at-{from}"));
    let mut source = File::open(segment).context("open segment to keep its tail", segment)?;
    source.seek(SeekFrom::Start(from)).context("seek to the tail of segment", segment)?;
    let mut target = File::create(&kept).context("create quarantined tail", &kept)?;
    std::io::copy(&mut source, &mut target).context("copy the tail into quarantine", &kept)?;
    target.sync_all().context("fsync quarantined tail", &kept)?;
    segment::sync_dir(&quarantine)?;
    Ok(kept)
}

fn check_contiguous(dir: &Path, file: &SegmentFile, expected_base: Option<u64>) -> Result<()> {
    match expected_base {
        Some(expected) if expected != file.base => Err(corrupt(
            dir,
            &file.path,
            0,
            format!(
                "segment starts at offset {} but the previous segment ends at offset {expected} \
                 (a segment is missing or misnamed)",
                file.base
            ),
        )),
        _ => Ok(()),
    }
}

/// Result of scanning the active segment.
struct ActiveScan {
    /// Length of the valid prefix.
    valid_len: u64,
    record_count: u64,
    newest_appended_at_unix_ms: Option<i64>,
    /// `(record_count, newest)` when the segment ends with a valid seal.
    seal: Option<(u64, i64)>,
    bad_reason: Option<String>,
    /// Everything after `valid_len` is zero: the writer's zero-filled space, not damage.
    zero_tail: bool,
}

fn scan_active(config: &LogConfig, segment: &SegmentFile) -> Result<ActiveScan> {
    let file = File::open(&segment.path).context("open active segment", &segment.path)?;
    let mut scanner = FrameScanner::new(file, segment.len, segment.base, config.max_record_bytes);
    let mut scan = ActiveScan {
        valid_len: 0,
        record_count: 0,
        newest_appended_at_unix_ms: None,
        seal: None,
        bad_reason: None,
        zero_tail: false,
    };
    let (bad_position, reason) = loop {
        let step = scanner.next_frame(true).context("scan active segment", &segment.path)?;
        match step {
            Scanned::Record { appended_at_unix_ms, .. } => {
                scan.record_count += 1;
                scan.newest_appended_at_unix_ms = Some(
                    scan.newest_appended_at_unix_ms
                        .map_or(appended_at_unix_ms, |t| t.max(appended_at_unix_ms)),
                );
                scan.valid_len = scanner.position();
            }
            Scanned::Seal { record_count, newest_appended_at, .. } => {
                scan.seal = Some((record_count, newest_appended_at));
                scan.valid_len = scanner.position();
                if scanner.position() == segment.len {
                    return Ok(scan);
                }
                // Nothing is ever written after a seal; judge the extra bytes like a torn tail.
                break (scanner.position(), "unexpected bytes after the seal frame".to_owned());
            }
            Scanned::End => return Ok(scan),
            Scanned::Bad { position, reason } => break (position, reason),
        }
    };
    let expected_offset = scanner.expected_offset();
    drop(scanner);
    if segment::zeros_from(&segment.path, bad_position)? {
        scan.zero_tail = true;
        return Ok(scan);
    }

    if config.fsync != FsyncPolicy::Never {
        let tail = read_tail(&segment.path, bad_position)?;
        // One walk over the frames after the bad one, for either proof of damage.
        let always = config.fsync == FsyncPolicy::Always;
        let mut first_write = None;
        let proof = find_after_bad_frame(
            &tail,
            expected_offset,
            config.max_record_bytes,
            |start, end, appended_at| {
                if end as u64 > config.max_unsynced_bytes {
                    return Some(format!(
                        "valid frames continue up to byte {} which is more than \
                         max_unsynced_bytes ({}) past it, so this damages acknowledged records \
                         and is not a torn write from a crash",
                        bad_position + end as u64,
                        config.max_unsynced_bytes
                    ));
                }
                (always && second_write(&mut first_write, appended_at)).then(|| {
                    format!(
                        "valid frames of two different writes follow it (the second from byte \
                         {}); every write is synced before the next, so a crash can only tear \
                         the last one: this damages acknowledged records",
                        bad_position + start as u64
                    )
                })
            },
        );
        if let Some(proof) = proof {
            return Err(corrupt(
                &config.dir,
                &segment.path,
                bad_position,
                format!("{reason}, yet {proof}"),
            ));
        }
    }
    scan.bad_reason = Some(format!("bad frame at byte {bad_position}: {reason}"));
    Ok(scan)
}

fn read_tail(path: &Path, from: u64) -> Result<Vec<u8>> {
    let mut file = File::open(path).context("open active segment", path)?;
    let mut tail = Vec::new();
    file.seek(SeekFrom::Start(from))
        .and_then(|_| file.read_to_end(&mut tail))
        .context("read tail of active segment", path)?;
    Ok(tail)
}

/// Walks the valid frames in `tail` (the bytes from a bad frame to the end of the file) after
/// its first byte, following each chain of frames and skipping the bytes between chains, and
/// returns the first `Some` that `visit(start, end, appended_at)` gives.
///
/// Frames past the bad one have unknown offsets, but every frame takes at least
/// `HEADER_LEN` bytes, so a frame at relative position `q` can carry an offset of at most
/// `expected_offset + q / HEADER_LEN`; that filter rejects almost all random positions before
/// any checksum is computed.
fn find_after_bad_frame<T>(
    tail: &[u8],
    expected_offset: u64,
    max_record_bytes: u32,
    mut visit: impl FnMut(usize, usize, i64) -> Option<T>,
) -> Option<T> {
    let mut at = 1;
    while at + HEADER_LEN <= tail.len() {
        let max_offset = expected_offset.saturating_add((at / HEADER_LEN) as u64);
        match frame::valid_frame_at(tail, at, (expected_offset, max_offset), max_record_bytes) {
            Some(end) => {
                let mut header = [0; HEADER_LEN];
                header.copy_from_slice(&tail[at..at + HEADER_LEN]);
                let appended_at = frame::FrameHeader::decode(&header).appended_at_unix_ms;
                if let Some(found) = visit(at, end, appended_at) {
                    return Some(found);
                }
                at = end;
            }
            None => at += 1,
        }
    }
    None
}

/// With [`FsyncPolicy::Always`] each append is one write, synced before the next starts, and
/// its frames all carry that append's time: a crash can only tear the last write. Whether a
/// frame appended at `appended_at` belongs to another write than the first frame seen after
/// the bad one (whose time `first` keeps). Two appends in the same millisecond look like one:
/// then the byte bound decides, as before.
fn second_write(first: &mut Option<i64>, appended_at: i64) -> bool {
    *first.get_or_insert(appended_at) != appended_at
}

/// Where the first frame of a second write after the bad frame starts (relative to `tail`).
#[cfg(test)]
fn second_write_after(tail: &[u8], expected_offset: u64, max_record_bytes: u32) -> Option<usize> {
    let mut first = None;
    find_after_bad_frame(tail, expected_offset, max_record_bytes, |start, _, appended_at| {
        second_write(&mut first, appended_at).then_some(start)
    })
}

/// The end of a valid frame after the bad one that ends more than `max_unsynced_bytes` from
/// the start of `tail`, if any.
#[cfg(test)]
fn furthest_valid_frame_end(
    tail: &[u8],
    expected_offset: u64,
    max_record_bytes: u32,
    max_unsynced_bytes: u64,
) -> Option<usize> {
    find_after_bad_frame(tail, expected_offset, max_record_bytes, |_, end, _| {
        (end as u64 > max_unsynced_bytes).then_some(end)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::encode_record;

    fn frames(first_offset: u64, count: u64, payload_len: usize) -> Vec<u8> {
        let mut buf = Vec::new();
        for offset in first_offset..first_offset + count {
            encode_record(&mut buf, offset, 0, &vec![offset as u8; payload_len]);
        }
        buf
    }

    #[test]
    fn garbage_only_tail_has_no_valid_frame() {
        let tail: Vec<u8> = (0..5000u32).map(|i| (i * 7 + 3) as u8).collect();
        assert_eq!(furthest_valid_frame_end(&tail, 10, 1 << 20, 100), None);
    }

    #[test]
    fn valid_frames_within_the_bound_count_as_torn() {
        // A damaged frame for offset 10 followed by intact frames 11..13.
        let mut tail = frames(10, 4, 50);
        tail[30] ^= 0xff;
        assert_eq!(furthest_valid_frame_end(&tail, 10, 1 << 20, tail.len() as u64), None);
    }

    #[test]
    fn frames_of_two_writes_after_a_bad_one_are_found() {
        // Offsets 10..13 written at time 5, 14..17 at time 6; frame 10 damaged.
        let mut tail = Vec::new();
        for offset in 10..18u64 {
            encode_record(&mut tail, offset, if offset < 14 { 5 } else { 6 }, &[offset as u8; 50]);
        }
        tail[30] ^= 0xff;
        let second = second_write_after(&tail, 10, 1 << 20).unwrap();
        assert_eq!(second, 4 * (HEADER_LEN + 50));
        // One write only (all at time 5): a torn write, nothing found.
        let mut one = frames(10, 8, 50);
        one[30] ^= 0xff;
        assert_eq!(second_write_after(&one, 10, 1 << 20), None);
    }

    #[test]
    fn valid_frames_beyond_the_bound_are_found() {
        let mut tail = frames(10, 40, 50);
        tail[30] ^= 0xff;
        let found = furthest_valid_frame_end(&tail, 10, 1 << 20, 200).unwrap();
        assert!(found > 200);
    }
}
