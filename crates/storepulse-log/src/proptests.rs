//! Model-based property tests of the log as a state machine: appends, syncs, injected write and
//! fsync failures, retention, clean reopens and simulated power losses.
//!
//! The model is the list of payloads by offset plus the durable boundary. A crash drops the log
//! and then damages only what the log never claimed durable: frames of a write that never
//! returned may sit at the end of the data (over the zero-filled space, as the writer writes
//! them), then everything from a point between the durable length and the end of those frames
//! is lost — either cut off the file, or turned back to zeros up to the file's end (unsynced
//! pages of space zero-filled earlier), and part of that unsynced region may be overwritten
//! with random bytes. The law: after reopening, every durable record is there exactly once, in order, with
//! its payload; anything beyond is an intact prefix of what was written; nothing else appears.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::time::Duration;

use proptest::prelude::*;

use crate::frame::encode_record;
use crate::segment::segment_path;
use crate::{EventLog, FsyncPolicy, LogConfig, LogError, Retention, verify};

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<Vec<u8>>),
    Sync,
    /// Power loss; see the module doc.
    Crash {
        torn_frames: Vec<Vec<u8>>,
        cut_permille: u16,
        /// The lost bytes read back as zeros instead of being cut off the file.
        zeroed: bool,
        garbage: Option<(u16, Vec<u8>)>,
    },
    Reopen,
    Retention {
        max_bytes: u64,
    },
    FailWrite(Vec<Vec<u8>>),
    /// Fail the next fsync: inside an append (Always) or an explicit `sync` (other policies).
    FailSync(Vec<Vec<u8>>),
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => Just(Vec::new()),
        4 => prop::collection::vec(any::<u8>(), 0..2000),
    ]
}

fn batch() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(payload(), 1..5)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => batch().prop_map(Op::Append),
        2 => Just(Op::Sync),
        3 => (
            prop::collection::vec(payload(), 0..3),
            0u16..=1000,
            any::<bool>(),
            prop::option::of((0u16..1000, prop::collection::vec(any::<u8>(), 1..64))),
        )
            .prop_map(|(torn_frames, cut_permille, zeroed, garbage)| Op::Crash {
                torn_frames,
                cut_permille,
                zeroed,
                garbage,
            }),
        1 => Just(Op::Reopen),
        1 => (0u64..40_000).prop_map(|max_bytes| Op::Retention { max_bytes }),
        1 => batch().prop_map(Op::FailWrite),
        1 => batch().prop_map(Op::FailSync),
    ]
}

struct Harness {
    dir: tempfile::TempDir,
    config: LogConfig,
    log: Option<EventLog>,
    /// Payload of every offset ever in the log (`written[offset]`); offsets below the log's
    /// first offset were deleted by retention.
    written: Vec<Vec<u8>>,
    /// Offsets below this were acknowledged as durable through the API contract (a synced
    /// append outcome, a successful `sync`, a reopen), independently of the log's own counters.
    acknowledged: u64,
    now_unix_ms: i64,
}

impl Harness {
    fn new(policy: FsyncPolicy) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes: 8 * 1024,
            fsync: policy,
            max_unsynced_bytes: 16 * 1024,
            max_record_bytes: 4096,
            ..LogConfig::new(dir.path())
        };
        let (log, report) = EventLog::open(config.clone()).unwrap();
        assert_eq!(report.next_offset, 0);
        Harness {
            dir,
            config,
            log: Some(log),
            written: Vec::new(),
            acknowledged: 0,
            now_unix_ms: 1_000,
        }
    }

    fn log(&mut self) -> &mut EventLog {
        self.log.as_mut().unwrap()
    }

    fn tick(&mut self) -> i64 {
        self.now_unix_ms += 10;
        self.now_unix_ms
    }

    fn append(&mut self, batch: &[Vec<u8>]) -> crate::Result<crate::AppendOutcome> {
        let now = self.tick();
        let records: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        self.log().append_batch(&records, now)
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Append(batch) => {
                let outcome = self.append(batch).unwrap();
                assert_eq!(outcome.first_offset, self.written.len() as u64);
                assert_eq!(outcome.next_offset, outcome.first_offset + batch.len() as u64);
                if self.config.fsync == FsyncPolicy::Always {
                    assert!(outcome.synced);
                }
                self.written.extend(batch.iter().cloned());
                if outcome.synced {
                    self.acknowledged = outcome.next_offset;
                }
            }
            Op::Sync => {
                self.log().sync().unwrap();
                assert_eq!(self.log().durable_offset(), self.log().next_offset());
                self.acknowledged = self.log().next_offset();
            }
            Op::Reopen => {
                self.log = None;
                let (log, report) = EventLog::open(self.config.clone()).unwrap();
                assert_eq!(report.truncated_bytes, 0, "a clean reopen cuts nothing");
                self.log = Some(log);
                self.acknowledged = self.log().next_offset();
            }
            Op::Retention { max_bytes } => {
                let retention = Retention { max_age: None, max_bytes: Some(*max_bytes) };
                let now = self.tick();
                let before = self.log().stats();
                let report = self.log().apply_retention(&retention, now, u64::MAX).unwrap();
                let after = self.log().stats();
                assert!(after.first_offset <= after.active_segment_base);
                assert_eq!(after.segments, before.segments - report.deleted_segments);
                assert!(after.total_bytes <= *max_bytes || after.segments == 1);
                if after.first_offset > 0 {
                    let error = self.log().reader(after.first_offset - 1).unwrap_err();
                    assert!(matches!(error, LogError::OffsetNotRetained { .. }), "{error}");
                }
            }
            Op::FailWrite(batch) => {
                let next_before = self.log().next_offset();
                let faults = self.log().fault_injector();
                // Two: an append that zero-fills retries once without the zeros.
                faults.fail_next_writes(2);
                let result = self.append(batch);
                faults.fail_next_writes(0);
                assert!(result.is_err());
                assert_eq!(self.log().next_offset(), next_before);
            }
            Op::FailSync(batch) => {
                let durable_before = self.log().durable_offset();
                let faults = self.log().fault_injector();
                faults.fail_next_syncs(1);
                let result = if self.config.fsync == FsyncPolicy::Always {
                    self.append(batch).map(|_| ())
                } else {
                    self.log().sync()
                };
                faults.fail_next_syncs(0);
                match result {
                    Err(_) => {
                        assert_eq!(self.log().next_offset(), durable_before);
                        self.written.truncate(durable_before as usize);
                    }
                    // Nothing was unsynced, so no fsync ran.
                    Ok(()) => assert_eq!(self.log().next_offset(), durable_before),
                }
            }
            Op::Crash { torn_frames, cut_permille, zeroed, garbage } => {
                self.crash(torn_frames, *cut_permille, *zeroed, garbage.as_ref());
            }
        }
        self.check_contents();
    }

    fn crash(
        &mut self,
        torn_frames: &[Vec<u8>],
        cut_permille: u16,
        zeroed: bool,
        garbage: Option<&(u16, Vec<u8>)>,
    ) {
        let stats = self.log().stats();
        let durable_offset = stats.durable_offset;
        let durable_len = stats.active_segment_durable_bytes;
        let path = segment_path(self.dir.path(), stats.active_segment_base);
        self.log = None;

        // A batch whose write reached the file but whose append never returned: keep within
        // the unsynced bound the writer guarantees.
        let mut candidates = self.written.clone();
        let mut torn = Vec::new();
        for payload in torn_frames {
            let mut frame = Vec::new();
            encode_record(&mut frame, candidates.len() as u64, self.now_unix_ms, payload);
            let unsynced = stats.active_segment_bytes - durable_len;
            if unsynced + (torn.len() + frame.len()) as u64 > self.config.max_unsynced_bytes {
                break;
            }
            torn.extend_from_slice(&frame);
            candidates.push(payload.clone());
        }
        let mut file = OpenOptions::new().read(true).write(true).open(&path).unwrap();
        let file_len = file.metadata().unwrap().len();
        // Longer with zero-filled space, or (any policy) zeros a crash left that reopen kept.
        assert!(file_len >= stats.active_segment_bytes);
        file.seek(SeekFrom::Start(stats.active_segment_bytes)).unwrap();
        file.write_all(&torn).unwrap();
        let len = stats.active_segment_bytes + torn.len() as u64;
        let cut = durable_len + (len - durable_len) * u64::from(cut_permille) / 1000;
        if let Some((position_permille, bytes)) = garbage.filter(|_| cut > durable_len) {
            let at = durable_len + (cut - durable_len) * u64::from(*position_permille) / 1000;
            let n = bytes.len().min((cut - at) as usize);
            file.seek(SeekFrom::Start(at)).unwrap();
            file.write_all(&bytes[..n]).unwrap();
        }
        let end = file.metadata().unwrap().len();
        if zeroed && end > cut {
            file.seek(SeekFrom::Start(cut)).unwrap();
            file.write_all(&vec![0u8; (end - cut) as usize]).unwrap();
        } else {
            file.set_len(cut).unwrap();
        }
        let damaged_len = file.metadata().unwrap().len();
        drop(file);

        let (log, report) = EventLog::open(self.config.clone())
            .unwrap_or_else(|error| panic!("reopen after a crash must succeed: {error}"));
        assert!(report.truncated_bytes <= damaged_len - durable_len);
        self.log = Some(log);
        let first = self.log().first_offset() as usize;
        let survivors: Vec<_> =
            self.log().reader(first as u64).unwrap().map(|record| record.unwrap()).collect();
        let surviving_end = first + survivors.len();
        assert!(
            surviving_end as u64 >= durable_offset,
            "durable records lost: durable up to {durable_offset}, survived up to {surviving_end}"
        );
        assert!(surviving_end <= candidates.len(), "records appeared that were never written");
        for (record, expected_offset) in survivors.iter().zip(first..) {
            assert_eq!(record.offset, expected_offset as u64);
            assert_eq!(record.payload, candidates[expected_offset], "offset {expected_offset}");
        }
        candidates.truncate(surviving_end);
        self.written = candidates;
        self.acknowledged = surviving_end as u64;
        assert_eq!(self.log().durable_offset(), self.log().next_offset());
        let verified = verify(self.dir.path()).unwrap();
        assert!(verified.is_clean(), "{:?}", verified.problems);
    }

    fn check_contents(&mut self) {
        let log = self.log.as_ref().unwrap();
        assert_eq!(log.next_offset(), self.written.len() as u64);
        assert!(log.durable_offset() <= log.next_offset());
        assert!(log.durable_offset() >= self.acknowledged, "durable offset went backwards");
        let first = log.first_offset();
        let mut count = 0;
        for (record, offset) in log.reader(first).unwrap().zip(first..) {
            let record = record.unwrap();
            assert_eq!(record.offset, offset);
            assert_eq!(record.payload, self.written[offset as usize]);
            count += 1;
        }
        assert_eq!(first + count, log.next_offset());
    }
}

fn run(policy: FsyncPolicy, ops: &[Op]) {
    let mut harness = Harness::new(policy);
    for op in ops {
        harness.apply(op);
    }
    // A final clean reopen keeps everything.
    harness.apply(&Op::Sync);
    harness.apply(&Op::Reopen);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn crash_reopen_state_machine_always(ops in prop::collection::vec(op(), 1..30)) {
        run(FsyncPolicy::Always, &ops);
    }

    #[test]
    fn crash_reopen_state_machine_interval(ops in prop::collection::vec(op(), 1..30)) {
        run(FsyncPolicy::Interval(Duration::from_millis(35)), &ops);
    }

    #[test]
    fn crash_reopen_state_machine_never(ops in prop::collection::vec(op(), 1..30)) {
        run(FsyncPolicy::Never, &ops);
    }
}
