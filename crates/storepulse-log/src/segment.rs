//! Segment files on disk: naming, listing, creation (with the directory fsync that makes a new
//! file survive a crash), the cheap seal check used at startup, and recognising the zero-filled
//! space the writer lays down ahead of the active segment's data (see `event_log`).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};
use crate::frame::{self, SEAL_FRAME_LEN};

/// Suffix of segment files.
const SEGMENT_SUFFIX: &str = ".seg";
/// Digits of the zero-padded base offset in a segment file name.
const BASE_DIGITS: usize = 20;

/// File name of the segment whose first record has offset `base`.
pub fn segment_file_name(base: u64) -> String {
    format!("{base:0BASE_DIGITS$}{SEGMENT_SUFFIX}")
}

/// Path of the segment whose first record has offset `base`.
pub fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(segment_file_name(base))
}

/// Parses a segment file name back to its base offset.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != BASE_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A segment file found in the log directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFile {
    pub base: u64,
    pub path: PathBuf,
    pub len: u64,
}

/// Lists the segment files of `dir`, oldest first. Other files (the lock, `quarantine/`) are
/// ignored.
pub fn list_segments(dir: &Path) -> Result<Vec<SegmentFile>> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir).context("list log directory", dir)? {
        let entry = entry.context("list log directory", dir)?;
        let Some(base) = entry.file_name().to_str().and_then(parse_segment_file_name) else {
            continue;
        };
        let path = entry.path();
        let metadata = entry.metadata().context("read metadata of segment", &path)?;
        if !metadata.is_file() {
            continue;
        }
        segments.push(SegmentFile { base, path, len: metadata.len() });
    }
    segments.sort_by_key(|segment| segment.base);
    Ok(segments)
}

/// Fsyncs a directory so that file creations, renames and deletions in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).context("fsync log directory", dir)
}

/// Creates (or reopens, if a previous attempt created it) the empty segment starting at `base`,
/// then fsyncs the directory so the file survives a crash.
pub fn create_segment(dir: &Path, base: u64) -> Result<(File, PathBuf)> {
    let path = segment_path(dir, base);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .context("create segment", &path)?;
    sync_dir(dir)?;
    Ok((file, path))
}

/// Opens an existing segment for appending.
pub fn open_segment_for_append(path: &Path) -> Result<File> {
    OpenOptions::new().read(true).write(true).open(path).context("open segment for append", path)
}

/// True when every byte of the file at `path` from `position` to its end is zero: the space
/// the writer zero-filled ahead of its data, not a torn or damaged write.
pub fn zeros_from(path: &Path, position: u64) -> Result<bool> {
    let mut file = File::open(path).context("open segment", path)?;
    file.seek(SeekFrom::Start(position)).context("seek in segment", path)?;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let read = file.read(&mut chunk).context("read segment", path)?;
        if read == 0 {
            return Ok(true);
        }
        if chunk[..read].iter().any(|&byte| byte != 0) {
            return Ok(false);
        }
    }
}

/// What a valid seal says about a sealed segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealInfo {
    pub record_count: u64,
    pub newest_appended_at_unix_ms: i64,
}

/// Reads and checks only the seal frame at the end of a segment (the startup fast path).
/// `Ok(Err(reason))` means the seal is missing or invalid.
pub fn read_seal(segment: &SegmentFile) -> Result<std::result::Result<SealInfo, String>> {
    if segment.len < SEAL_FRAME_LEN as u64 {
        return Ok(Err(format!(
            "segment is {} bytes, too short to end with a seal frame (missing seal)",
            segment.len
        )));
    }
    let mut file = File::open(&segment.path).context("open sealed segment", &segment.path)?;
    let mut tail = [0u8; SEAL_FRAME_LEN];
    file.seek(SeekFrom::Start(segment.len - SEAL_FRAME_LEN as u64))
        .and_then(|_| file.read_exact(&mut tail))
        .context("read seal of segment", &segment.path)?;
    Ok(frame::check_seal(&tail, segment.base).map(|(record_count, newest)| SealInfo {
        record_count,
        newest_appended_at_unix_ms: newest,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip_and_sort_lexically() {
        assert_eq!(segment_file_name(42), "00000000000000000042.seg");
        assert_eq!(parse_segment_file_name("00000000000000000042.seg"), Some(42));
        assert_eq!(parse_segment_file_name(&segment_file_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_segment_file_name("42.seg"), None);
        assert_eq!(parse_segment_file_name("0000000000000000004x.seg"), None);
        assert_eq!(parse_segment_file_name("00000000000000000042.seg.tail"), None);
        assert!(segment_file_name(9) < segment_file_name(10));
    }

    #[test]
    fn only_an_all_zero_rest_of_the_file_counts_as_zero_filled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let mut bytes = vec![7u8; 10];
        bytes.extend(vec![0u8; 200_000]);
        fs::write(&path, &bytes).unwrap();
        assert!(zeros_from(&path, 10).unwrap());
        assert!(zeros_from(&path, bytes.len() as u64).unwrap());
        assert!(!zeros_from(&path, 9).unwrap());
        // A non-zero byte far past the first read chunk is found too.
        bytes[150_000] = 1;
        fs::write(&path, &bytes).unwrap();
        assert!(!zeros_from(&path, 10).unwrap());
    }

    #[test]
    fn listing_ignores_foreign_files_and_sorts_by_base() {
        let dir = tempfile::tempdir().unwrap();
        for base in [30, 0, 7] {
            create_segment(dir.path(), base).unwrap();
        }
        fs::write(dir.path().join("LOCK"), b"").unwrap();
        fs::create_dir(dir.path().join("quarantine")).unwrap();
        let bases: Vec<u64> =
            list_segments(dir.path()).unwrap().into_iter().map(|s| s.base).collect();
        assert_eq!(bases, vec![0, 7, 30]);
    }
}
