//! Property: every coarse bucket is exactly the sum of its fine buckets, whatever the order and
//! times of the events.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use proptest::prelude::*;
use storepulse_engine::distinct::{Sketch, hash_id};
use storepulse_engine::facts::{FactKey, Measures};
use storepulse_engine::rollup::{DAY_MS, HOUR_MS, RollupRetention, Rollups};

fn roll_up(
    buckets: impl Iterator<Item = (i64, HashMap<FactKey, Measures>)>,
    width: i64,
) -> HashMap<(i64, FactKey), Measures> {
    let mut coarse: HashMap<(i64, FactKey), Measures> = HashMap::new();
    for (start, rows) in buckets {
        for (key, measures) in rows {
            coarse.entry((start.div_euclid(width) * width, key)).or_default().add(&measures);
        }
    }
    coarse
}

fn flatten(
    buckets: impl Iterator<Item = (i64, HashMap<FactKey, Measures>)>,
) -> HashMap<(i64, FactKey), Measures> {
    buckets.flat_map(|(start, rows)| rows.into_iter().map(move |(k, m)| ((start, k), m))).collect()
}

proptest! {
    /// Whatever the order and times of the events, and wherever folding stands, a scan over any
    /// range sees each event exactly once.
    #[test]
    fn scans_count_each_event_once_whatever_has_been_folded(
        times in proptest::collection::vec(0i64..3 * DAY_MS, 1..300),
        from in 0i64..3 * DAY_MS,
        length in 1i64..3 * DAY_MS,
    ) {
        let mut rollups = Rollups::new(RollupRetention { minutes_ms: 10 * DAY_MS, hours_ms: 10 * DAY_MS, days_ms: 0 });
        for time in &times {
            rollups.add(*time, &[(FactKey::default(), Measures { events: 1, ..Measures::default() })]);
        }
        let to = from + length;
        let from_minute = from.div_euclid(60_000) * 60_000;
        let to_minute = to.div_euclid(60_000) * 60_000 + if to % 60_000 == 0 { 0 } else { 60_000 };
        let expected = times.iter().filter(|t| **t >= from_minute && **t < to_minute).count() as u64;
        let mut seen = 0;
        rollups.scan(from, to, DAY_MS, |_, rows| seen += rows.iter().map(|(_, m)| u64::from(m.events)).sum::<u64>());
        prop_assert_eq!(seen, expected);
    }

    #[test]
    fn coarse_buckets_are_the_sum_of_fine_ones(
        rows in proptest::collection::vec((0i64..3 * DAY_MS, 0u32..4, 0u32..3, 0u32..5, -500i64..50_000), 1..300)
    ) {
        let mut rollups = Rollups::new(RollupRetention { minutes_ms: 10 * DAY_MS, hours_ms: 10 * DAY_MS, days_ms: 0 });
        for (index, (time, store, product, units, revenue)) in rows.iter().enumerate() {
            let key = FactKey { store: *store, product: *product, currency: *b"USD", ..FactKey::default() };
            let measures = Measures { events: 1, orders: 1, units: *units, gross_revenue: *revenue, ..Measures::default() };
            rollups.add(*time, &[(key, measures)]);
            // Late rows land in sealed buckets; housekeeping seals them again now and then.
            if index % 50 == 49 {
                rollups.reseal();
            }
        }
        // Minutes fold into hours and days as event time moves on; the newest are folded here.
        rollups.fold_all();
        let cloned = |table: &storepulse_engine::rollup::Table| -> Vec<(i64, HashMap<FactKey, Measures>)> {
            // Summed per key, as every reader sums rows: a sealed bucket that late rows reached
            // may hold a key twice until it is sealed again.
            table.buckets().map(|(start, rows)| {
                let mut sums: HashMap<FactKey, Measures> = HashMap::new();
                for (key, measures) in rows.iter() {
                    sums.entry(*key).or_default().add(measures);
                }
                (start, sums)
            }).collect()
        };
        let minutes = cloned(&rollups.minutes);
        let hours = cloned(&rollups.hours);
        let days = cloned(&rollups.days);
        prop_assert_eq!(roll_up(minutes.into_iter(), HOUR_MS), flatten(hours.clone().into_iter()));
        prop_assert_eq!(roll_up(hours.into_iter(), DAY_MS), flatten(days.into_iter()));
        let total: u64 = rollups.days.buckets().flat_map(|(_, rows)| rows.iter()).map(|(_, m)| u64::from(m.events)).sum();
        prop_assert_eq!(total, rows.len() as u64);
    }
}

/// Hours fold into days only once complete, so pruning hours must wait for that even when
/// hours are configured to be kept for less time than minutes and the clock pruning runs by is
/// a day ahead of event time (a backfill): the days still count every event.
#[test]
fn days_stay_whole_when_hours_are_kept_less_than_minutes() {
    let retention = RollupRetention { minutes_ms: 2 * DAY_MS, hours_ms: HOUR_MS, days_ms: 0 };
    let mut rollups = Rollups::new(retention);
    let one = [(FactKey::default(), Measures { events: 1, ..Measures::default() })];
    let times: Vec<i64> = (0..6 * DAY_MS).step_by(7 * 60_000).collect();
    for (index, time) in times.iter().enumerate() {
        rollups.add(*time, &one);
        if index % 100 == 0 {
            rollups.prune(*time + DAY_MS);
        }
    }
    rollups.prune(6 * DAY_MS + 3 * DAY_MS);
    let days: u64 = rollups
        .days
        .buckets()
        .flat_map(|(_, rows)| rows.iter())
        .map(|(_, m)| u64::from(m.events))
        .sum();
    assert_eq!(days, times.len() as u64);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Up to 128 distinct values a sketch is exact, whatever the values and repeats — except
    /// when two values share a 25-bit hash encoding (odds ~n²/2^27, see `distinct`), which
    /// makes it one low; two such pairs in one case (~10^-8) are not expected.
    #[test]
    fn sketches_are_exact_for_small_counts(values in proptest::collection::vec("[a-z0-9]{1,12}", 0..400)) {
        let distinct: std::collections::HashSet<&String> = values.iter().take(128 * 3).collect();
        prop_assume!(distinct.len() <= 128);
        let mut sketch = Sketch::new();
        for value in &values {
            sketch.insert_hash(hash_id(value));
        }
        let estimate = sketch.estimate();
        prop_assert!(estimate == distinct.len() || estimate + 1 == distinct.len(), "{estimate} for {}", distinct.len());
    }
}

proptest! {
    // The estimate's error is random with a standard error of 0.3–0.4 % here, so a 1 % bound
    // fails for about one random sample in a few hundred: the samples are drawn from a fixed
    // seed, so the test checks the same twelve sizes and salts on every run instead of
    // failing now and then.
    #![proptest_config(ProptestConfig {
        cases: 12,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed),
        ..ProptestConfig::default()
    })]

    /// At high cardinality the estimate is within 1 % (standard error ≈ 0.41 %).
    #[test]
    fn sketches_are_within_one_percent_at_high_cardinality(count in 20_000u64..120_000, salt in "[a-z]{6}") {
        let mut sketch = Sketch::new();
        for n in 0..count {
            sketch.insert_hash(hash_id(&format!("{salt}-{n}")));
        }
        let error = (sketch.estimate() as f64 - count as f64).abs() / count as f64;
        prop_assert!(error <= 0.01, "count {} estimate {} error {}", count, sketch.estimate(), error);
    }
}

/// Two ids whose 31-bit encodings coincide under the engine's id hash (`hash_id`; found by
/// searching hexadecimal numbers, 3,417 and 4,153) count once: the documented caveat of
/// exact small counts, pinned.
#[test]
fn two_ids_sharing_a_hash_encoding_count_once() {
    let mut sketch = Sketch::new();
    sketch.insert_hash(hash_id("d59"));
    sketch.insert_hash(hash_id("1039"));
    assert_eq!(sketch.estimate(), 1);
    sketch.insert_hash(hash_id("3g"));
    assert_eq!(sketch.estimate(), 2);
}
