//! `append_batch` throughput: group commit with fsync, single records with fsync, and batches
//! without fsync (the page-cache bound).

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use storepulse_log::{AppendOutcome, EventLog, FsyncPolicy, LogConfig, Retention};

const RECORD_BYTES: usize = 200;

fn records(count: usize) -> Vec<Vec<u8>> {
    (0..count).map(|i| vec![(i % 251) as u8; RECORD_BYTES]).collect()
}

fn open(dir: &std::path::Path, fsync: FsyncPolicy) -> EventLog {
    let config = LogConfig { fsync, segment_bytes: 32 * 1024 * 1024, ..LogConfig::new(dir) };
    let (log, _) = EventLog::open(config).expect("open bench log");
    log
}

/// Appends, deleting old segments now and then: the loops write gigabytes otherwise.
fn append_bounded(log: &mut EventLog, records: &[&[u8]]) -> AppendOutcome {
    let outcome = log.append_batch(records, 1).expect("append");
    if log.stats().total_bytes > 512 * 1024 * 1024 {
        let retention = Retention { max_age: None, max_bytes: Some(256 * 1024 * 1024) };
        log.apply_retention(&retention, 1, u64::MAX).expect("retention");
    }
    outcome
}

fn bench_append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_batch");

    let batch = records(1000);
    let batch_refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
    let single = records(1);
    let single_refs: Vec<&[u8]> = single.iter().map(Vec::as_slice).collect();

    group.sample_size(10).measurement_time(Duration::from_secs(5));
    for (name, refs, fsync) in [
        ("batch_1000x200B_fsync_always", &batch_refs, FsyncPolicy::Always),
        ("single_200B_fsync_always", &single_refs, FsyncPolicy::Always),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open(dir.path(), fsync);
        group.throughput(Throughput::Elements(refs.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| append_bounded(&mut log, refs));
        });
    }

    group.sample_size(20).measurement_time(Duration::from_secs(5));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), FsyncPolicy::Never);
    group.throughput(Throughput::Elements(batch_refs.len() as u64));
    group.bench_function("batch_1000x200B_fsync_never", |b| {
        b.iter(|| append_bounded(&mut log, &batch_refs));
    });
    group.finish();
}

criterion_group!(benches, bench_append);
criterion_main!(benches);
