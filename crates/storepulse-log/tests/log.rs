//! Integration tests of `storepulse-log` through its public API and its files on disk.

// Test helpers outside `#[test]` functions unwrap too; clippy.toml only covers test bodies.
#![allow(clippy::unwrap_used)]

use std::fs::{self, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use storepulse_log::frame::{HEADER_LEN, SEAL_FRAME_LEN};
use storepulse_log::segment::segment_path;
use storepulse_log::{
    EventLog, FsyncPolicy, LogConfig, LogError, ProblemKind, QUARANTINE_DIR_NAME, Record,
    Retention, ZERO_FILL_CHUNK, repair, verify,
};

fn small_segments(dir: &Path) -> LogConfig {
    LogConfig { segment_bytes: 512, ..LogConfig::new(dir) }
}

fn payload(offset: u64) -> Vec<u8> {
    format!("record-{offset}-{}", "x".repeat((offset % 50) as usize)).into_bytes()
}

/// Appends `count` records numbered from the log's next offset, `per_batch` at a time.
fn append_numbered(log: &mut EventLog, count: u64, per_batch: u64, now: i64) {
    let start = log.next_offset();
    let mut offset = start;
    while offset < start + count {
        let end = (offset + per_batch).min(start + count);
        let payloads: Vec<Vec<u8>> = (offset..end).map(payload).collect();
        let records: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let outcome = log.append_batch(&records, now).unwrap();
        assert_eq!((outcome.first_offset, outcome.next_offset), (offset, end));
        offset = end;
    }
}

fn read_from(log: &EventLog, from: u64) -> Vec<Record> {
    log.reader(from).unwrap().map(|record| record.unwrap()).collect()
}

fn assert_numbered(records: &[Record], from: u64) {
    for (record, offset) in records.iter().zip(from..) {
        assert_eq!(record.offset, offset);
        assert_eq!(record.payload, payload(offset), "payload of offset {offset}");
    }
}

fn flip_byte(path: &Path, position: u64) {
    let mut file = OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut byte = [0u8; 1];
    file.seek(SeekFrom::Start(position)).unwrap();
    std::io::Read::read_exact(&mut file, &mut byte).unwrap();
    file.seek(SeekFrom::Start(position)).unwrap();
    file.write_all(&[byte[0] ^ 0x5a]).unwrap();
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .collect();
    files.sort();
    files
}

#[test]
fn empty_directory_opens_as_an_empty_log_at_offset_zero() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, report) = EventLog::open(LogConfig::new(dir.path().join("events"))).unwrap();
    assert_eq!((report.segments, report.records, report.next_offset), (1, 0, 0));
    assert_eq!((log.first_offset(), log.next_offset(), log.durable_offset()), (0, 0, 0));
    let outcome = log.append_batch(&[], 5).unwrap();
    assert_eq!((outcome.first_offset, outcome.next_offset), (0, 0));
    assert_eq!(log.reader(0).unwrap().count(), 0);
    drop(log);
    // A zero-length active segment reopens fine.
    let (log, report) = EventLog::open(LogConfig::new(dir.path().join("events"))).unwrap();
    assert_eq!((report.truncated_bytes, log.next_offset()), (0, 0));
}

#[test]
fn round_trip_keeps_payloads_offsets_and_append_times() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = EventLog::open(LogConfig::new(dir.path())).unwrap();
    log.append_batch(&[b"first", b"", b"third"], 1_700_000_000_000).unwrap();
    let outcome = log.append_batch(&[b"fourth"], 1_700_000_000_500).unwrap();
    assert_eq!(
        outcome,
        storepulse_log::AppendOutcome { first_offset: 3, next_offset: 4, synced: true }
    );
    drop(log);
    let (log, report) = EventLog::open(LogConfig::new(dir.path())).unwrap();
    assert_eq!(report.records, 4);
    let records = read_from(&log, 0);
    let payloads: Vec<&[u8]> = records.iter().map(|r| r.payload.as_slice()).collect();
    assert_eq!(payloads, vec![&b"first"[..], b"", b"third", b"fourth"]);
    assert_eq!(records[3].appended_at_unix_ms, 1_700_000_000_500);
    assert_eq!(records[0].appended_at_unix_ms, 1_700_000_000_000);
    let stats = log.stats();
    assert_eq!((stats.segments, stats.policy, stats.next_offset), (1, "always", 4));
}

#[test]
fn rolling_across_many_small_segments_reads_back_from_every_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = EventLog::open(small_segments(dir.path())).unwrap();
    append_numbered(&mut log, 300, 3, 10);
    let segments = log.stats().segments;
    assert!(segments > 20, "expected many segments, got {segments}");
    for from in 0..=300 {
        let records = read_from(&log, from);
        assert_eq!(records.len() as u64, 300 - from);
        assert_numbered(&records, from);
    }
    drop(log);
    let (log, report) = EventLog::open(small_segments(dir.path())).unwrap();
    assert_eq!((report.segments, report.records, report.truncated_bytes), (segments, 300, 0));
    assert_numbered(&read_from(&log, 0), 0);
    assert!(verify(dir.path()).unwrap().is_clean());
}

#[test]
fn reader_beyond_the_end_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = EventLog::open(LogConfig::new(dir.path())).unwrap();
    append_numbered(&mut log, 3, 3, 10);
    assert_eq!(log.reader(3).unwrap().count(), 0);
    let error = log.reader(4).unwrap_err();
    assert!(matches!(error, LogError::OffsetBeyondEnd { requested: 4, next_offset: 3 }), "{error}");
}

#[test]
fn reader_on_another_thread_sees_its_snapshot_while_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = EventLog::open(small_segments(dir.path())).unwrap();
    append_numbered(&mut log, 100, 7, 10);
    let reader = log.reader(10).unwrap();
    assert_eq!(reader.end_offset(), 100);
    let handle = std::thread::spawn(move || reader.map(|r| r.unwrap()).collect::<Vec<_>>());
    append_numbered(&mut log, 200, 5, 20);
    let records = handle.join().unwrap();
    assert_eq!(records.len(), 90);
    assert_numbered(&records, 10);
    // A reader created later sees the new records.
    assert_numbered(&read_from(&log, 0), 0);
    assert_eq!(log.next_offset(), 300);
}

#[test]
fn torn_tail_of_the_active_segment_is_cut_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = EventLog::open(LogConfig::new(dir.path())).unwrap();
    append_numbered(&mut log, 10, 4, 10);
    let active = segment_path(dir.path(), log.stats().active_segment_base);
    let len = log.stats().active_segment_bytes;
    drop(log);
    // Half a frame header at the end of the data (over the zero-filled space after it), as a
    // crash in the middle of a write leaves it.
    let file_len = fs::metadata(&active).unwrap().len();
    let mut file = OpenOptions::new().write(true).open(&active).unwrap();
    file.seek(SeekFrom::Start(len)).unwrap();
    file.write_all(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]).unwrap();
    drop(file);
    let (mut log, report) = EventLog::open(LogConfig::new(dir.path())).unwrap();
    assert_eq!(report.truncated_bytes, file_len.max(len + 10) - len);
    assert!(report.truncation_reason.unwrap().contains(&format!("byte {len}")));
    assert_eq!(fs::metadata(&active).unwrap().len(), len);
    append_numbered(&mut log, 5, 5, 20);
    assert_numbered(&read_from(&log, 0), 0);
}

#[test]
fn small_appends_write_into_zero_filled_space_that_reopen_keeps_and_verify_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = EventLog::open(LogConfig::new(dir.path())).unwrap();
    append_numbered(&mut log, 10, 1, 10);
    let active = segment_path(dir.path(), 0);
    let data_len = log.stats().active_segment_bytes;
    let file_len = fs::metadata(&active).unwrap().len();
    // The first append laid down a chunk of zeros; the next ones wrote into it.
    assert_eq!(file_len, (HEADER_LEN + payload(0).len()) as u64 + ZERO_FILL_CHUNK);
    assert!(data_len < file_len);
    assert!(verify(dir.path()).unwrap().is_clean());
    drop(log);

    let (mut log, report) = EventLog::open(LogConfig::new(dir.path())).unwrap();
    assert_eq!((report.truncated_bytes, report.truncation_reason), (0, None));
    assert_eq!(fs::metadata(&active).unwrap().len(), file_len, "the zeros are reused");
    append_numbered(&mut log, 5, 1, 20);
    assert_eq!(fs::metadata(&active).unwrap().len(), file_len);
    assert_numbered(&read_from(&log, 0), 0);
}

#[test]
fn a_rolled_segment_ends_with_its_seal_not_with_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { segment_bytes: 4096, ..LogConfig::new(dir.path()) };
    let (mut log, _) = EventLog::open(config.clone()).unwrap();
    append_numbered(&mut log, 200, 1, 10);
    let files = segment_files(dir.path());
    assert!(files.len() > 2);
    for sealed in &files[..files.len() - 1] {
        let bytes = fs::read(sealed).unwrap();
        assert_ne!(bytes[bytes.len() - SEAL_FRAME_LEN..], [0u8; SEAL_FRAME_LEN]);
        // The zero-filled space never reaches past the segment size.
        assert!(
            bytes.len() as u64 <= 4096 + (HEADER_LEN + payload(0).len() + SEAL_FRAME_LEN) as u64
        );
    }
    drop(log);
    let (log, report) = EventLog::open(config).unwrap();
    assert_eq!(report.truncated_bytes, 0);
    assert!(verify(dir.path()).unwrap().is_clean());
    assert_numbered(&read_from(&log, 0), 0);
}

#[test]
fn zeros_left_by_a_larger_segment_size_are_cut_before_the_seal() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = EventLog::open(LogConfig::new(dir.path())).unwrap();
    append_numbered(&mut log, 3, 1, 10);
    drop(log);
    // Reopened with a segment size the data already exceeds: the next append rolls.
    let (mut log, _) = EventLog::open(small_segments(dir.path())).unwrap();
    append_numbered(&mut log, 40, 1, 20);
    let first = fs::read(segment_path(dir.path(), 0)).unwrap();
    assert_ne!(first[first.len() - SEAL_FRAME_LEN..], [0u8; SEAL_FRAME_LEN]);
    drop(log);
    let (log, _) = EventLog::open(small_segments(dir.path())).unwrap();
    assert!(verify(dir.path()).unwrap().is_clean());
    assert_numbered(&read_from(&log, 0), 0);
}

#[test]
fn garbage_in_the_zero_filled_space_is_a_torn_write_and_zeros_after_a_seal_are_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = EventLog::open(LogConfig::new(dir.path())).unwrap();
    append_numbered(&mut log, 10, 1, 10);
    let active = segment_path(dir.path(), 0);
    let data_len = log.stats().active_segment_bytes;
    drop(log);
    // One stray byte deep inside the zeros: no valid frame follows, so it is a torn write.
    let mut file = OpenOptions::new().write(true).open(&active).unwrap();
    file.seek(SeekFrom::Start(data_len + 5000)).unwrap();
    file.write_all(&[9]).unwrap();
    drop(file);
    assert!(!verify(dir.path()).unwrap().is_clean());
    let (log, report) = EventLog::open(LogConfig::new(dir.path())).unwrap();
    assert!(report.truncated_bytes > 5000);
    assert_eq!(fs::metadata(&active).unwrap().len(), data_len);
    assert_eq!(log.next_offset(), 10);
    drop(log);

    // A seal followed by zeros (a crash after sealing, before the cut reached the disk).
    let mut bytes = fs::read(&active).unwrap();
    let mut seal = Vec::new();
    storepulse_log::frame::encode_seal(&mut seal, 10, 10, 10);
    bytes.extend_from_slice(&seal);
    bytes.extend(vec![0u8; 3000]);
    fs::write(&active, &bytes).unwrap();
    let (log, report) = EventLog::open(LogConfig::new(dir.path())).unwrap();
    assert!(report.created_active_segment);
    assert_eq!(fs::metadata(&active).unwrap().len(), data_len + SEAL_FRAME_LEN as u64);
    drop(log);
    let (log, _) = EventLog::open(LogConfig::new(dir.path())).unwrap();
    assert_numbered(&read_from(&log, 0), 0);
}

#[test]
fn damaged_last_frame_of_the_active_segment_is_a_torn_write() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { max_unsynced_bytes: 1024, ..LogConfig::new(dir.path()) };
    let (mut log, _) = EventLog::open(config.clone()).unwrap();
    append_numbered(&mut log, 10, 1, 10);
    let active = segment_path(dir.path(), 0);
    let len = log.stats().active_segment_bytes;
    drop(log);
    flip_byte(&active, len - 3);
    let (log, report) = EventLog::open(config).unwrap();
    assert!(report.truncated_bytes > 0);
    assert_eq!(log.next_offset(), 9);
    assert_numbered(&read_from(&log, 0), 0);
}

/// A log of 40 records whose recovery bound (1 MiB) covers the middle of its data, as the
/// server's 48 MiB bound covers much of a real log's last segment.
fn forty_records_with_a_large_unsynced_bound(dir: &Path) -> (LogConfig, EventLog) {
    let config = LogConfig { max_unsynced_bytes: 1024 * 1024, ..LogConfig::new(dir) };
    let (mut log, _) = EventLog::open(config.clone()).unwrap();
    append_numbered(&mut log, 40, 4, 10);
    (config, log)
}

/// The same damage after a clean shutdown cannot be a torn write: it refuses to open (and
/// keeps refusing) instead of cutting acknowledged records, and `repair` then works.
#[test]
fn damage_after_a_clean_shutdown_refuses_open_instead_of_cutting() {
    let dir = tempfile::tempdir().unwrap();
    let (config, mut log) = forty_records_with_a_large_unsynced_bound(dir.path());
    let active = segment_path(dir.path(), 0);
    let len = log.stats().active_segment_bytes;
    log.mark_clean_shutdown().unwrap();
    drop(log);
    // A reopen that writes nothing leaves the mark; one that appends removes it.
    let (log, _) = EventLog::open(config.clone()).unwrap();
    drop(log);
    flip_byte(&active, len / 2);
    for _ in 0..2 {
        let error = EventLog::open(config.clone()).map(|_| ()).unwrap_err();
        assert!(matches!(error, LogError::Corrupt { .. }), "{error}");
        assert!(error.to_string().contains("shut down cleanly"), "{error}");
    }
    let repaired = repair(dir.path()).unwrap();
    assert!(repaired.truncated.is_some(), "{repaired:?}");
    let (mut log, _) = EventLog::open(config.clone()).unwrap();
    let kept = log.next_offset();
    assert!(kept < 40);
    assert_numbered(&read_from(&log, 0), 0);
    // After an append the mark is gone: damage at the end is a torn write again.
    append_numbered(&mut log, 1, 1, 20);
    drop(log);
    assert!(!dir.path().join(storepulse_log::CLEAN_SHUTDOWN_FILE_NAME).exists());
}

/// Without the mark (a crash), damage near the end is cut as a torn write, but the cut bytes
/// are kept in `quarantine/`: were it damage rather than a crash, nothing is lost for good.
#[test]
fn a_cut_torn_tail_is_kept_in_quarantine() {
    let dir = tempfile::tempdir().unwrap();
    let (config, log) = forty_records_with_a_large_unsynced_bound(dir.path());
    let active = segment_path(dir.path(), 0);
    let len = log.stats().active_segment_bytes;
    drop(log);
    let before = fs::read(&active).unwrap();
    flip_byte(&active, len / 2);
    let (log, report) = EventLog::open(config).unwrap();
    assert!(report.truncated_bytes > 0 && log.next_offset() < 40);
    let cut_at = fs::metadata(&active).unwrap().len();
    let kept = fs::read_dir(dir.path().join(QUARANTINE_DIR_NAME)).unwrap().next().unwrap();
    let kept = fs::read(kept.unwrap().path()).unwrap();
    assert_eq!(kept.len() as u64, report.truncated_bytes);
    // The kept bytes are the tail as it was (but for the flipped byte).
    let differing = kept.iter().zip(&before[cut_at as usize..]).filter(|(a, b)| a != b).count();
    assert_eq!(differing, 1);
}

/// After a crash (no clean mark), damage followed by valid frames of two different writes is
/// not a torn write either: each write is synced before the next, so only the last can tear.
#[test]
fn damage_followed_by_two_writes_refuses_open_even_after_a_crash() {
    // Ten writes of four records, each at its own time; the log closed as by a crash.
    let ten_writes = |dir: &Path| {
        let config = LogConfig { max_unsynced_bytes: 1024 * 1024, ..LogConfig::new(dir) };
        let (mut log, _) = EventLog::open(config.clone()).unwrap();
        for write in 0..10 {
            append_numbered(&mut log, 4, 4, 1_000 + write);
        }
        let len = log.stats().active_segment_bytes;
        (config, segment_path(dir, 0), len)
    };
    let dir = tempfile::tempdir().unwrap();
    let (config, active, len) = ten_writes(dir.path());
    flip_byte(&active, len / 2);
    let error = EventLog::open(config).map(|_| ()).unwrap_err();
    assert!(error.is_corruption(), "{error}");
    assert!(error.to_string().contains("two different writes"), "{error}");
    // Damage in the last write alone is still a torn write, cut (and kept in quarantine).
    let dir = tempfile::tempdir().unwrap();
    let (config, active, len) = ten_writes(dir.path());
    flip_byte(&active, len - 10);
    let (log, report) = EventLog::open(config).unwrap();
    assert!(report.truncated_bytes > 0);
    assert_eq!(log.next_offset(), 39);
}

#[test]
fn damaged_seal_refuses_open_and_repair_cuts_there() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = EventLog::open(small_segments(dir.path())).unwrap();
    append_numbered(&mut log, 100, 2, 10);
    drop(log);
    let files = segment_files(dir.path());
    assert!(files.len() > 4);
    let damaged = files[2].clone();
    let damaged_len = fs::metadata(&damaged).unwrap().len();
    flip_byte(&damaged, damaged_len - 5);

    let error = EventLog::open(small_segments(dir.path())).unwrap_err();
    let message = error.to_string();
    assert!(error.is_corruption(), "{message}");
    let name = damaged.file_name().unwrap().to_str().unwrap();
    assert!(message.contains(name), "{message}");
    assert!(
        message.contains(&format!("byte {}", damaged_len - SEAL_FRAME_LEN as u64)),
        "{message}"
    );
    assert!(message.contains("`storepulse log repair`"), "{message}");

    let verified = verify(dir.path()).unwrap();
    assert_eq!(verified.problems.len(), 1);
    assert_eq!(verified.problems[0].kind, ProblemKind::BadFrame);
    assert_eq!(verified.problems[0].segment, name);

    let repaired = repair(dir.path()).unwrap();
    let truncated = repaired.truncated.unwrap();
    assert_eq!((truncated.path, truncated.cut_bytes), (damaged.clone(), SEAL_FRAME_LEN as u64));
    assert_eq!(repaired.quarantined.len(), files.len() - 3);
    assert!(truncated.saved_to.starts_with(dir.path().join(QUARANTINE_DIR_NAME)));

    let (log, report) = EventLog::open(small_segments(dir.path())).unwrap();
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(log.next_offset(), repaired.next_offset);
    let records = read_from(&log, 0);
    assert_eq!(records.len() as u64, repaired.next_offset);
    assert_numbered(&records, 0);
    let quarantined = fs::read_dir(dir.path().join(QUARANTINE_DIR_NAME)).unwrap().count();
    assert_eq!(quarantined, files.len() - 3 + 1);
}

#[test]
fn damaged_early_frame_with_acknowledged_data_after_refuses_open_and_repair_fixes_it() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        LogConfig { max_unsynced_bytes: 256, max_record_bytes: 200, ..LogConfig::new(dir.path()) };
    let (mut log, _) = EventLog::open(config.clone()).unwrap();
    append_numbered(&mut log, 100, 1, 10);
    drop(log);
    let active = segment_path(dir.path(), 0);
    // Inside the payload of record 3 (every record is at least 31 bytes).
    let third_frame_payload = {
        let mut position = 0u64;
        for offset in 0..3 {
            position += (HEADER_LEN + payload(offset).len()) as u64;
        }
        position
    };
    flip_byte(&active, third_frame_payload + HEADER_LEN as u64 + 2);

    let error = EventLog::open(config.clone()).unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(&error, LogError::Corrupt { file, position, .. }
        if *file == active && *position == third_frame_payload),
        "{message}"
    );
    assert!(message.contains("checksum mismatch"), "{message}");
    assert!(message.contains("max_unsynced_bytes"), "{message}");

    let repaired = repair(dir.path()).unwrap();
    assert_eq!(repaired.next_offset, 3);
    assert!(repaired.quarantined.is_empty());
    let saved = repaired.truncated.unwrap().saved_to;
    assert!(fs::metadata(saved).unwrap().len() > 256);

    let (mut log, _) = EventLog::open(config).unwrap();
    assert_numbered(&read_from(&log, 0), 0);
    assert_eq!(log.next_offset(), 3);
    append_numbered(&mut log, 2, 2, 20);
    assert_numbered(&read_from(&log, 0), 0);
    // Running repair on a clean log does nothing.
    drop(log);
    let clean = repair(dir.path()).unwrap();
    assert!(clean.problem.is_none() && clean.truncated.is_none());
}

#[test]
fn reader_reports_a_damaged_frame_once_then_stops() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = EventLog::open(LogConfig::new(dir.path())).unwrap();
    append_numbered(&mut log, 10, 10, 10);
    flip_byte(&segment_path(dir.path(), 0), (HEADER_LEN + payload(0).len() + 30) as u64);
    let mut reader = log.reader(0).unwrap();
    assert_eq!(reader.next().unwrap().unwrap().offset, 0);
    let error = reader.next().unwrap().unwrap_err();
    assert!(error.is_corruption(), "{error}");
    assert!(error.to_string().contains("00000000000000000000.seg"), "{error}");
    assert!(reader.next().is_none());
}

#[test]
fn missing_middle_segment_refuses_open() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = EventLog::open(small_segments(dir.path())).unwrap();
    append_numbered(&mut log, 60, 2, 10);
    drop(log);
    let files = segment_files(dir.path());
    fs::remove_file(&files[1]).unwrap();
    let error = EventLog::open(small_segments(dir.path())).unwrap_err();
    assert!(error.to_string().contains("a segment is missing"), "{error}");
    assert!(error.to_string().contains(files[2].file_name().unwrap().to_str().unwrap()));
    let repaired = repair(dir.path()).unwrap();
    assert_eq!(repaired.problem.unwrap().kind, ProblemKind::OffsetGap);
    let (log, _) = EventLog::open(small_segments(dir.path())).unwrap();
    assert_numbered(&read_from(&log, 0), 0);
}

#[test]
fn crash_between_seal_and_next_segment_creation_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = EventLog::open(small_segments(dir.path())).unwrap();
    append_numbered(&mut log, 40, 4, 10);
    // Rolling happens lazily before the next write, so remove the active segment to leave a
    // sealed segment last, as a crash right after sealing (before creating the next) does.
    let next = log.stats().active_segment_base;
    let active = segment_path(dir.path(), next);
    assert!(next > 0);
    drop(log);
    fs::remove_file(active).unwrap();
    let (mut log, report) = EventLog::open(small_segments(dir.path())).unwrap();
    assert!(report.created_active_segment);
    assert_eq!(log.next_offset(), next);
    append_numbered(&mut log, 5, 5, 10);
    assert_numbered(&read_from(&log, 0), 0);
}

#[test]
fn lock_is_exclusive_and_released_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = EventLog::open(LogConfig::new(dir.path())).unwrap();
    let error = EventLog::open(LogConfig::new(dir.path())).unwrap_err();
    assert!(matches!(&error, LogError::Locked { dir: locked } if locked == dir.path()), "{error}");
    assert!(matches!(repair(dir.path()).unwrap_err(), LogError::Locked { .. }));
    // verify needs no lock.
    assert!(verify(dir.path()).unwrap().is_clean());
    drop(log);
    EventLog::open(LogConfig::new(dir.path())).unwrap();
}

#[test]
fn retention_by_age_deletes_only_old_sealed_segments_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = EventLog::open(small_segments(dir.path())).unwrap();
    append_numbered(&mut log, 40, 4, 1_000);
    let old_end = log.next_offset();
    append_numbered(&mut log, 40, 4, 100_000);
    let before = log.stats();
    let retention = Retention { max_age: Some(Duration::from_secs(60)), max_bytes: None };
    let report = log.apply_retention(&retention, 100_000 + 1_000, u64::MAX).unwrap();
    assert!(report.deleted_segments > 0);
    assert_eq!(log.stats().segments, before.segments - report.deleted_segments);
    // Only segments whose newest record is old: the first retained one holds the boundary or
    // later records, and nothing at or after the boundary was deleted.
    assert!(log.first_offset() <= old_end);
    assert_eq!(report.first_offset, log.first_offset());
    assert_eq!(report.deleted_records, log.first_offset());
    let error = log.reader(0).unwrap_err();
    assert!(matches!(error, LogError::OffsetNotRetained { requested: 0, .. }), "{error}");
    assert_numbered(&read_from(&log, log.first_offset()), log.first_offset());
    // Retention that keeps nothing still keeps the active segment.
    let everything = Retention { max_age: Some(Duration::ZERO), max_bytes: None };
    log.apply_retention(&everything, i64::MAX, u64::MAX).unwrap();
    assert_eq!(log.stats().segments, 1);
    assert_eq!(log.first_offset(), log.stats().active_segment_base);
    drop(log);
    let (log, _) = EventLog::open(small_segments(dir.path())).unwrap();
    assert_eq!(log.next_offset(), 80);
}

#[test]
fn retention_by_bytes_deletes_oldest_sealed_segments_until_under_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = EventLog::open(small_segments(dir.path())).unwrap();
    append_numbered(&mut log, 100, 3, 10);
    let before = log.stats();
    let retention = Retention { max_age: None, max_bytes: Some(before.total_bytes / 2) };
    let report = log.apply_retention(&retention, 10, u64::MAX).unwrap();
    let after = log.stats();
    assert!(after.total_bytes <= before.total_bytes / 2);
    assert_eq!(before.total_bytes - after.total_bytes, report.deleted_bytes);
    // Deleting one segment fewer would have been over the limit: no more than needed.
    assert!(after.total_bytes + 600 > before.total_bytes / 2);
    assert_eq!(segment_files(dir.path()).len(), after.segments);
    assert_numbered(&read_from(&log, after.first_offset), after.first_offset);
    drop(log);
    let (log, report) = EventLog::open(small_segments(dir.path())).unwrap();
    assert_eq!((report.first_offset, log.next_offset()), (after.first_offset, 100));
}

/// A reader that has not secured records yet (the server's engine snapshot covers the log up
/// to its position) keeps them: retention deleted segments past it, and a crash then lost
/// their events from the engine for good.
#[test]
fn retention_keeps_segments_from_the_offset_a_reader_still_needs() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = EventLog::open(small_segments(dir.path())).unwrap();
    append_numbered(&mut log, 100, 3, 10);
    let everything = Retention { max_age: Some(Duration::ZERO), max_bytes: Some(0) };
    let report = log.apply_retention(&everything, i64::MAX, 30).unwrap();
    assert!(report.deleted_segments > 0);
    assert!(log.first_offset() <= 30, "offset 30 is still readable: {}", log.first_offset());
    assert_numbered(&read_from(&log, 30), 30);
    // Once the reader has secured everything, all sealed segments may go.
    log.apply_retention(&everything, i64::MAX, log.next_offset()).unwrap();
    assert_eq!(log.first_offset(), log.stats().active_segment_base);
}

#[test]
fn reader_whose_segment_was_deleted_by_retention_reports_not_retained() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = EventLog::open(small_segments(dir.path())).unwrap();
    append_numbered(&mut log, 100, 3, 10);
    let mut reader = log.reader(0).unwrap();
    assert_eq!(reader.next().unwrap().unwrap().offset, 0);
    let everything = Retention { max_age: None, max_bytes: Some(0) };
    log.apply_retention(&everything, 10, u64::MAX).unwrap();
    // The open first segment stays readable; the next, deleted one does not.
    let error = reader.find_map(Result::err).unwrap();
    assert!(matches!(error, LogError::OffsetNotRetained { .. }), "{error}");
}

#[test]
fn never_policy_cuts_any_damaged_tail() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        fsync: FsyncPolicy::Never,
        max_unsynced_bytes: 64,
        ..LogConfig::new(dir.path())
    };
    let (mut log, _) = EventLog::open(config.clone()).unwrap();
    append_numbered(&mut log, 50, 10, 10);
    assert_eq!(log.stats().fsync_count, 0);
    drop(log);
    flip_byte(&segment_path(dir.path(), 0), 40);
    let (log, report) = EventLog::open(config).unwrap();
    assert_eq!(log.next_offset(), 1);
    assert!(report.truncated_bytes > 64);
}

#[test]
fn error_messages_name_the_path_and_the_action() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    fs::write(&file, b"x").unwrap();
    let error = EventLog::open(LogConfig::new(&file)).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("create log directory"), "{message}");
    assert!(message.contains("not-a-dir"), "{message}");
    let error =
        EventLog::open(LogConfig { segment_bytes: 0, ..LogConfig::new(dir.path()) }).unwrap_err();
    assert!(error.to_string().contains("segment_bytes"), "{error}");
}
