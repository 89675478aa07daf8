//! Query latencies on a loaded engine, one core:
//! `cargo bench -p storepulse-engine --bench queries`.
//!
//! - `realtime/100k_active_users`: `Engine::realtime` with 100,000 visitors active in the last
//!   five minutes (and 100,000 sessions, 1,000 pages); `..._1s_after_prune` as the server
//!   asks, a second after its last prune;
//! - `buy_stats/1m_buys`: seed 4's `/stats` figures after 1,000,000 buys;
//! - `query/30d_daily_by_category_2_filters`: a 30-day daily series of revenue and orders
//!   grouped by category, filtered by country and device, over 3,000,000 purchases (2,000
//!   products in 200 categories, 20 countries, 4 devices, 10 sources).

#[allow(dead_code)] // each bench uses part of the shared builders
mod events;

// The server's allocator, so the figures are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{Criterion, criterion_group, criterion_main};
use storepulse_engine::engine::RealtimeFilter;
use storepulse_engine::{Dimension, Engine, EngineConfig, Filters, Granularity, Metric, QuerySpec};
use storepulse_model::event::{DeviceType, Event, EventType, Page};
use storepulse_model::money::Currency;
use storepulse_model::time::Timestamp;

const NOW: i64 = 1_795_000_000_000;
const DAY: i64 = 86_400_000;
const DEVICES: [DeviceType; 4] =
    [DeviceType::Desktop, DeviceType::Mobile, DeviceType::Tablet, DeviceType::Other];

fn base(event_type: EventType, n: u64, time: i64) -> Event {
    let country = format!("C{}", n % 20);
    events::event(event_type, n, n, time, &country, DEVICES[(n % 4) as usize])
}

fn realtime(c: &mut Criterion) {
    let mut engine = Engine::new(EngineConfig::default());
    for n in 0..100_000u64 {
        let mut event = base(EventType::PageView, n, NOW - 200_000 + (n as i64 % 190_000));
        event.page = Some(Page {
            url: None,
            path: Some(format!("/p/{}", n % 1000).into()),
            title: None,
            referrer: None,
        });
        engine.apply(&event);
    }
    let filter = RealtimeFilter::default();
    let check = engine.realtime(Timestamp(NOW), &filter, 5, Currency::USD);
    assert_eq!(check.active_users, 100_000);
    c.bench_function("realtime/100k_active_users", |b| {
        b.iter(|| engine.realtime(Timestamp(NOW), &filter, 5, Currency::USD))
    });
    let country = RealtimeFilter { country: Some("C3".into()), ..RealtimeFilter::default() };
    c.bench_function("realtime/100k_active_users_country_filter", |b| {
        b.iter(|| engine.realtime(Timestamp(NOW), &country, 5, Currency::USD))
    });
    // As the server asks: a second after its last prune (it prunes every second), so the
    // visitors last seen in the second that has just left the window are still held, and
    // the count looks each of them up to leave it out.
    engine.prune_live(Timestamp(NOW + 100_000));
    let later = Timestamp(NOW + 101_000);
    let check = engine.realtime(later, &filter, 5, Currency::USD);
    assert!((99_000..100_000).contains(&check.active_users), "{}", check.active_users);
    c.bench_function("realtime/100k_active_users_1s_after_prune", |b| {
        b.iter(|| engine.realtime(later, &filter, 5, Currency::USD))
    });
}

fn purchase(n: u64, time: i64, promotion: bool) -> Event {
    let mut event = base(EventType::Purchase, n, time);
    let product = n.wrapping_mul(2_654_435_761) % 2_000;
    event.order = Some(events::order(n, 1999));
    let category = [format!("Top{}", product % 20), format!("Mid{}", product % 200)];
    event.items = vec![events::product(product, &category, 1999, 1)];
    event.promotion = promotion.then(|| {
        Box::new(storepulse_model::event::Promotion {
            id: "P1".into(),
            name: None,
            creative: None,
            position: None,
        })
    });
    event.marketing = Some(Box::new(storepulse_model::event::Marketing {
        utm_source: Some(format!("src{}", n % 10).into()),
        ..Default::default()
    }));
    event
}

fn stats(c: &mut Criterion) {
    let mut engine = Engine::new(EngineConfig::default());
    for n in 0..1_000_000u64 {
        engine.apply(&purchase(n, NOW - 7 * DAY + (n as i64) * 600, true));
    }
    assert_eq!(engine.buy_stats(Timestamp(0)).total.records, 1_000_000);
    c.bench_function("buy_stats/1m_buys", |b| {
        b.iter(|| engine.buy_stats(Timestamp(NOW - 3_600_000)))
    });
}

fn query(c: &mut Criterion) {
    let mut engine = Engine::new(EngineConfig::default());
    let events = 3_000_000u64;
    for n in 0..events {
        engine.apply(&purchase(n, NOW - 30 * DAY + (n as i64) * (30 * DAY / events as i64), false));
    }
    let spec = QuerySpec {
        metrics: vec![Metric::GrossRevenue, Metric::Orders],
        from: Timestamp(NOW - 30 * DAY),
        to: Timestamp(NOW),
        granularity: Some(Granularity::Day),
        filters: Filters {
            country: Some("C3".into()),
            device: Some(DeviceType::Other),
            ..Filters::default()
        },
        group_by: Some(Dimension::Category(1)),
        limit: 100,
        currency: Currency::USD,
        compare: false,
        previous: None,
    };
    engine.prune(Timestamp(NOW));
    let result = engine.query(&spec).expect("valid query");
    assert!(!result.groups().is_empty());
    let rss = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|line| line.starts_with("VmRSS"))
        .unwrap_or_default()
        .to_owned();
    eprintln!(
        "engine after {events} purchases over 30 days, pruned: {:?}; process {rss}",
        engine.stats()
    );
    c.bench_function("query/30d_daily_by_category_2_filters", |b| b.iter(|| engine.query(&spec)));
    // Distinct figures merge the daily sketches of every row admitted: the slow kind of query
    // (docs/performance.md, twenty-sixth session).
    let mut distinct = spec.clone();
    distinct.metrics = vec![Metric::Visitors, Metric::Sessions];
    distinct.filters = Filters::default();
    distinct.group_by = Some(Dimension::Country);
    let mut group = c.benchmark_group("query");
    group.sample_size(10);
    group.bench_function("30d_daily_visitors_and_sessions_by_country", |b| {
        b.iter(|| engine.query(&distinct))
    });
    group.finish();

    // Restart cost: the snapshot of this engine, encoded and decoded once.
    let started = std::time::Instant::now();
    let mut bytes = Vec::new();
    storepulse_engine::snapshot::encode(&engine, &mut bytes).expect("encodes");
    let encoded = started.elapsed();
    let started = std::time::Instant::now();
    let restored = storepulse_engine::snapshot::decode(&bytes).expect("decodes");
    eprintln!(
        "snapshot of {events} purchases: {} MB, encode {:?}, decode {:?} ({} events restored)",
        bytes.len() / 1_000_000,
        encoded,
        started.elapsed(),
        restored.events_applied()
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = realtime, stats, query
}
criterion_main!(benches);
