//! A mix of shop events (six kinds, twelve visitors, two stores, eight products over four
//! hours) and a digest of what an engine answers about them, for properties that compare two
//! engines fed the same events differently.

use serde_json::json;
use storepulse_engine::engine::RealtimeFilter;
use storepulse_engine::funnel::{FunnelSpec, FunnelSplit};
use storepulse_engine::{Dimension, Engine, Filters, Granularity, Metric, QuerySpec};
use storepulse_model::event::Event;
use storepulse_model::money::Currency;
use storepulse_model::time::Timestamp;

use super::common;

const START: i64 = 1_793_577_600_000;
const KINDS: [&str; 6] =
    ["page_view", "product_view", "add_to_cart", "checkout_started", "purchase", "refund"];

/// Event number `n`: a `KINDS[kind]` of `visitor` naming `product`, `minute`s after the start.
pub fn event(kind: usize, visitor: u8, product: u8, minute: u16, n: usize) -> Event {
    let time = Timestamp(START + i64::from(minute) * 60_000).to_rfc3339();
    let line = json!({"id": format!("p{product}"), "category": format!("C{} > D{}", product % 3, product % 5), "price": format!("{}.50", 5 + product)});
    let country = ["US", "DE", "FR"][usize::from(visitor % 3)];
    // Two stores, whose visitors and sessions share ids: tenants apart.
    let store = ["main", "outlet"][usize::from(product % 2)];
    let mut value = json!({"type": KINDS[kind], "timestamp": time, "user_id": format!("u{visitor}"),
        "session_id": format!("s{}", visitor / 2), "country": country, "store": store,
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

/// Every kind of answer the engine gives about the mix, as JSON.
pub fn answers(engine: &Engine) -> serde_json::Value {
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
    let funnel = FunnelSpec {
        steps: FunnelSpec::default_steps(),
        window_ms: 3_600_000,
        from_ms: START,
        to_ms: START + 86_400_000,
        source: None,
    };
    json!({
        "kpis": serde_json::to_value(engine.query(&kpis).unwrap()).unwrap(),
        "daily": serde_json::to_value(engine.query(&daily).unwrap()).unwrap(),
        "live": serde_json::to_value(engine.realtime(now, &RealtimeFilter::default(), 5, Currency::USD)).unwrap(),
        "buys": format!("{:?}", engine.buy_stats(Timestamp(START))),
        "trending": serde_json::to_value(engine.trending(now, &Default::default(), &Filters::default(), 10)).unwrap(),
        "funnel": serde_json::to_value(engine.funnel(&funnel, FunnelSplit::Country, &RealtimeFilter::default(), 10).unwrap()).unwrap(),
        "together": serde_json::to_value(engine.together_with_product("p1", Some("outlet"), 5)).unwrap(),
        "for_visitor": serde_json::to_value(engine.recommend_for_visitor("u3", None, now, 5)).unwrap(),
    })
}
