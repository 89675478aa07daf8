//! Property: a snapshot taken at any point, decoded and fed the rest of the events, answers
//! exactly like the engine that never stopped.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use proptest::prelude::*;
use serde_json::json;
use storepulse_engine::engine::RealtimeFilter;
use storepulse_engine::{
    Dimension, Engine, EngineConfig, Filters, Granularity, Metric, QuerySpec, snapshot,
};
use storepulse_model::event::Event;
use storepulse_model::money::Currency;
use storepulse_model::time::Timestamp;

const START: i64 = 1_793_577_600_000;
const KINDS: [&str; 6] =
    ["page_view", "product_view", "add_to_cart", "checkout_started", "purchase", "refund"];

fn event(kind: usize, visitor: u8, product: u8, minute: u16, n: usize) -> Event {
    let time = Timestamp(START + i64::from(minute) * 60_000).to_rfc3339();
    let line = json!({"id": format!("p{product}"), "category": format!("C{} > D{}", product % 3, product % 5), "price": format!("{}.50", 5 + product)});
    let country = ["US", "DE", "FR"][usize::from(visitor % 3)];
    let mut value = json!({"type": KINDS[kind], "timestamp": time, "user_id": format!("u{visitor}"),
        "session_id": format!("s{}", visitor / 2), "country": country,
        "page": {"path": format!("/p/{product}")}});
    match KINDS[kind] {
        "product_view" | "add_to_cart" => value["product"] = line,
        "purchase" => {
            value["order"] = json!({"id": format!("o{n}")});
            value["items"] = json!([line]);
            value["promotion"] = json!({"id": "P"});
        }
        "refund" => value["order"] = json!({"id": format!("o{}", n.saturating_sub(1))}),
        _ => {}
    }
    common::validated(&value)
}

fn answers(engine: &Engine) -> serde_json::Value {
    let now = Timestamp(START + 3 * 3_600_000);
    let query = |metrics: Vec<Metric>, group_by| QuerySpec {
        metrics,
        from: Timestamp(START),
        to: Timestamp(START + 86_400_000),
        granularity: Some(Granularity::Hour),
        filters: Filters::default(),
        group_by,
        limit: 100,
        currency: Currency::USD,
        compare: true,
        previous: None,
    };
    let kpis = query(
        vec![
            Metric::Orders,
            Metric::GrossRevenue,
            Metric::NetRevenue,
            Metric::CartAdds,
            Metric::ProductViews,
        ],
        Some(Dimension::Category(2)),
    );
    let mut daily = query(
        vec![
            Metric::Visitors,
            Metric::Sessions,
            Metric::ConversionRate,
            Metric::AbandonedCartValue,
        ],
        Some(Dimension::Country),
    );
    daily.granularity = Some(Granularity::Day);
    json!({
        "kpis": serde_json::to_value(engine.query(&kpis).unwrap()).unwrap(),
        "daily": serde_json::to_value(engine.query(&daily).unwrap()).unwrap(),
        "live": serde_json::to_value(engine.realtime(now, &RealtimeFilter::default(), 5, Currency::USD)).unwrap(),
        "buys": format!("{:?}", engine.buy_stats(Timestamp(START))),
        "trending": serde_json::to_value(engine.trending(now, &Default::default(), &Filters::default(), 10)).unwrap(),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn a_snapshot_anywhere_then_the_rest_equals_never_stopping(
        events in proptest::collection::vec((0usize..6, 0u8..12, 0u8..8, 0u16..240), 1..120),
        cut in 0usize..120,
    ) {
        let events: Vec<Event> = events.iter().enumerate().map(|(n, (k, v, p, m))| event(*k, *v, *p, *m, n)).collect();
        let cut = cut.min(events.len());
        let mut whole = Engine::new(EngineConfig::default());
        let mut first = Engine::new(EngineConfig::default());
        for event in &events {
            whole.apply(event);
        }
        for event in &events[..cut] {
            first.apply(event);
        }
        let mut bytes = Vec::new();
        snapshot::encode(&first, &mut bytes).unwrap();
        let mut restored = snapshot::decode(&bytes).unwrap();
        for event in &events[cut..] {
            restored.apply(event);
        }
        prop_assert_eq!(answers(&whole), answers(&restored));
    }
}
