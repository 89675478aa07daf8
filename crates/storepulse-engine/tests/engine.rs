//! Golden tests: events in, the numbers a user sees out.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use serde_json::json;
use storepulse_engine::category_trends::TrendSettings;
use storepulse_engine::engine::RealtimeFilter;
use storepulse_engine::query::{Trend, Value};
use storepulse_engine::{Dimension, Engine, EngineConfig, Filters, Granularity, Metric, QuerySpec};
use storepulse_model::event::{DeviceType, Event};
use storepulse_model::money::Currency;
use storepulse_model::time::{Timestamp, parse_timestamp_text};

/// 2026-11-02T00:00:00Z, a Monday.
const DAY0: i64 = 1_793_577_600_000;
const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

fn event(value: serde_json::Value) -> Event {
    common::validated(&value)
}

fn at(ms: i64) -> String {
    Timestamp(ms).to_rfc3339()
}

fn engine_with(events: &[serde_json::Value]) -> Engine {
    let mut engine = Engine::new(EngineConfig::default());
    for value in events {
        engine.apply(&event(value.clone()));
    }
    engine
}

fn page_view(time: i64, user: &str, session: &str, path: &str, country: &str) -> serde_json::Value {
    json!({"type": "page_view", "timestamp": at(time), "user_id": user, "session_id": session,
           "page": {"url": format!("https://shop.test{path}")}, "country": country,
           "device": {"type": "mobile"}})
}

#[test]
fn live_windows_count_distinct_active_visitors_and_sessions_by_latest_event_time() {
    let now = DAY0 + 10 * HOUR;
    let mut engine = engine_with(&[
        page_view(now - 60_000, "u1", "s1", "/home", "US"),
        page_view(now - 30_000, "u1", "s2", "/shoes", "US"),
        page_view(now - 10_000, "u2", "s3", "/home", "DE"),
        // Older than five minutes: not active, but a page view of the last 15 minutes.
        page_view(now - 10 * MIN, "u3", "s4", "/home", "US"),
        // Far older: neither.
        page_view(now - 20 * MIN, "u4", "s5", "/cart", "US"),
    ]);
    // A late event for u2 (older than its last event) must not age it.
    engine.apply(&event(page_view(now - 6 * MIN, "u2", "s3", "/faq", "DE")));
    let live = engine.realtime(Timestamp(now), &RealtimeFilter::default(), 5, Currency::USD);
    assert_eq!(live.active_users, 2);
    assert_eq!(live.active_sessions, 3);
    assert_eq!(live.avg_sessions_per_user, 1.5);
    assert_eq!(live.page_views, 5);
    assert_eq!(
        live.top_pages,
        vec![("/home".to_owned(), 3), ("/faq".to_owned(), 1), ("/shoes".to_owned(), 1)]
    );
    assert_eq!(
        serde_json::to_value(&live).unwrap()["top_pages"],
        json!({"/home": 3, "/faq": 1, "/shoes": 1})
    );

    let us = RealtimeFilter { country: Some("us".into()), ..RealtimeFilter::default() };
    let live = engine.realtime(Timestamp(now), &us, 5, Currency::USD);
    assert_eq!((live.active_users, live.active_sessions), (1, 2));
    assert_eq!(engine.active_visitors(Timestamp(now), &RealtimeFilter::default()), ["u1", "u2"]);
    assert_eq!(engine.visitor_active_sessions(Timestamp(now), "u1", &RealtimeFilter::default()), 2);
    assert_eq!(
        engine.visitor_active_sessions(Timestamp(now), "nobody", &RealtimeFilter::default()),
        0
    );
    // Each session counts where it was last seen: u1's two are in the US, none in DE.
    let in_country =
        |code: &str| RealtimeFilter { country: Some(code.into()), ..Default::default() };
    assert_eq!(engine.visitor_active_sessions(Timestamp(now), "u1", &in_country("US")), 2);
    assert_eq!(engine.visitor_active_sessions(Timestamp(now), "u1", &in_country("DE")), 0);
    let elsewhere = RealtimeFilter { store: Some("other".into()), ..Default::default() };
    assert_eq!(engine.visitor_active_sessions(Timestamp(now), "u1", &elsewhere), 0);

    // Five minutes later u1's sessions have expired; pruning forgets them.
    let later = Timestamp(now + 5 * MIN - 20_000);
    engine.prune(later);
    let live = engine.realtime(later, &RealtimeFilter::default(), 5, Currency::USD);
    assert_eq!((live.active_users, live.active_sessions), (1, 1));
    assert_eq!(engine.visitor_active_sessions(later, "u1", &RealtimeFilter::default()), 0);

    // An unknown filter value matches nothing rather than failing.
    let nowhere = RealtimeFilter { store: Some("other".into()), ..RealtimeFilter::default() };
    assert_eq!(engine.realtime(later, &nowhere, 5, Currency::USD).active_users, 0);
    let no_users = engine.realtime(later, &nowhere, 5, Currency::USD);
    assert_eq!(no_users.avg_sessions_per_user, 0.0);
}

/// One sender's clock running minutes fast (within the accepted skew) must not make every
/// other store's current visitors look too old to be live.
#[test]
fn a_fast_client_clock_does_not_hide_other_visitors() {
    let now = DAY0 + 10 * HOUR;
    let received_now = |value: serde_json::Value| {
        let mut event = event(value);
        event.received_at = Timestamp(now);
        event
    };
    let mut engine = Engine::new(EngineConfig::default());
    engine.apply(&received_now(page_view(now + 8 * MIN, "fast", "sf", "/", "US")));
    engine.apply(&received_now(page_view(now - 20_000, "u1", "s1", "/home", "DE")));
    let live = engine.realtime(Timestamp(now), &RealtimeFilter::default(), 5, Currency::USD);
    assert_eq!((live.active_users, live.active_sessions), (2, 2));
    assert_eq!(live.page_views, 2);
    assert_eq!(engine.visitor_active_sessions(Timestamp(now), "u1", &RealtimeFilter::default()), 1);
    // The fast clock's visitor is active five minutes from when its event arrived, not from
    // the time its clock claimed.
    let later =
        engine.realtime(Timestamp(now + 6 * MIN), &RealtimeFilter::default(), 5, Currency::USD);
    assert_eq!(later.active_users, 0);
}

fn purchase(
    time: i64,
    order: &str,
    store: &str,
    items: serde_json::Value,
    extra: serde_json::Value,
) -> serde_json::Value {
    let mut value = json!({"type": "purchase", "timestamp": at(time), "store": store,
        "user_id": "buyer", "session_id": "s", "order": {"id": order, "currency": "USD"},
        "items": items});
    if let (Some(target), Some(extra)) = (value.as_object_mut(), extra.as_object()) {
        for (key, field) in extra {
            if key == "order" {
                for (k, v) in field.as_object().unwrap() {
                    target["order"][k] = v.clone();
                }
            } else {
                target.insert(key.clone(), field.clone());
            }
        }
    }
    value
}

fn spec(metrics: &[Metric], from: i64, to: i64) -> QuerySpec {
    QuerySpec {
        metrics: metrics.to_vec(),
        from: Timestamp(from),
        to: Timestamp(to),
        granularity: None,
        filters: Filters::default(),
        group_by: None,
        limit: 100,
        currency: Currency::USD,
        compare: false,
        previous: None,
    }
}

/// A calendar range compares with the period the caller names (`last_month` against the
/// whole month before, `today` against yesterday until the same time), not the equal period
/// just before: that read October 2–31 for November, and yesterday's last hours for today.
#[test]
fn a_named_previous_period_is_read_as_named() {
    let lamp = json!([{"id": "lamp", "price": "10.00", "quantity": 1}]);
    let engine = engine_with(&[
        purchase(DAY0 + HOUR, "early", "main", lamp.clone(), json!({})),
        purchase(DAY0 + DAY + 15 * HOUR, "evening", "main", lamp.clone(), json!({})),
        purchase(DAY0 + 2 * DAY + HOUR, "now", "main", lamp, json!({})),
    ]);
    // "Last month": one day, compared with the two days before it.
    let mut month = spec(&[Metric::GrossRevenue, Metric::Orders], DAY0 + 2 * DAY, DAY0 + 3 * DAY);
    month.compare = true;
    month.previous = Some((Timestamp(DAY0), Timestamp(DAY0 + 2 * DAY)));
    let previous = engine.query(&month).unwrap().previous.unwrap();
    assert_eq!((previous.from.as_str(), previous.to.as_str()), (&*at(DAY0), &*at(DAY0 + 2 * DAY)));
    assert_eq!(previous.covered_from, at(DAY0));
    assert_eq!(previous.covered_to, at(DAY0 + 2 * DAY));
    assert_eq!(previous.totals["orders"], Value::Count(2));
    assert_eq!(previous.totals["gross_revenue"], money("20.00"));
    assert_eq!(previous.growth_percent["orders"], Some(-50.0));
    // "Today" until 10:00, against yesterday until 10:00 (not yesterday 14:00–24:00).
    let mut today = spec(&[Metric::Orders], DAY0 + 2 * DAY, DAY0 + 2 * DAY + 10 * HOUR);
    today.compare = true;
    today.previous = Some((Timestamp(DAY0 + DAY), Timestamp(DAY0 + DAY + 10 * HOUR)));
    let previous = engine.query(&today).unwrap().previous.unwrap();
    assert_eq!(previous.covered_from, at(DAY0 + DAY));
    assert_eq!(previous.covered_to, at(DAY0 + DAY + 10 * HOUR));
    assert_eq!(previous.totals["orders"], Value::Count(0));
    // Without a named period, the equal period before, as ever.
    today.previous = None;
    let previous = engine.query(&today).unwrap().previous.unwrap();
    assert_eq!(previous.covered_from, at(DAY0 + DAY + 14 * HOUR));
    assert_eq!(previous.totals["orders"], Value::Count(1));
}

/// Past a retention edge (minutes after two days, hours after 90) the period before lies in
/// coarser buckets. It read the whole buckets holding its nominal ends, so it was longer than
/// the period compared (flat traffic showed −4 % for `last_24_hours`), and for `last_90_days`
/// its last day bucket reached into the current period, counting an order in both. Now it ends
/// at or before the current period's first bucket and its ends are the nearest bucket edges.
#[test]
fn the_period_before_is_as_long_and_never_overlaps_past_retention_edges() {
    // Flat traffic: an order at 20 past every hour for 200 days, then retention as of `now`.
    let lamp = json!([{"id": "lamp", "price": "10.00", "quantity": 1}]);
    let now = DAY0 + 200 * DAY + 5 * HOUR + 44 * MIN + 30_000;
    let times: Vec<i64> = (0..200 * 24 + 6).map(|hour| DAY0 + hour * HOUR + 20 * MIN).collect();
    let events: Vec<serde_json::Value> = times
        .iter()
        .map(|t| purchase(*t, &format!("o{t}"), "main", lamp.clone(), json!({})))
        .collect();
    let mut engine = engine_with(&events);
    engine.prune(Timestamp(now));
    let orders_in = |from: &str, to: &str| {
        let (from, to) =
            (parse_timestamp_text(from).unwrap().0, parse_timestamp_text(to).unwrap().0);
        times.iter().filter(|t| **t >= from && **t < to).count() as u64
    };
    // (from, to, name, how far the previous period's length may be from the current one's:
    // half the width of the buckets its start lies in).
    let cases = [
        (now - DAY, now, "last_24_hours", MIN),
        (now - 7 * DAY, now, "last_7_days", HOUR / 2),
        (now - 90 * DAY, now, "last_90_days", DAY / 2),
        // From minutes into hours: the hour in which minutes begin to be kept is read whole
        // by a scan arriving from the hours before it.
        (now - 47 * HOUR - 50 * MIN, now - HOUR, "from within two days", HOUR / 2),
        // From hours into days, likewise for the day in which hours begin to be kept.
        (now - 89 * DAY - 22 * HOUR - 30 * MIN, now - 45 * DAY, "from within 90 days", DAY / 2),
    ];
    for (from, to, name, tolerance) in cases {
        let mut query = spec(&[Metric::Orders], from, to);
        query.compare = true;
        let result = engine.query(&query).unwrap();
        let previous = result.previous.unwrap();
        assert!(
            previous.covered_to <= result.covered_from,
            "{name}: the periods overlap: {previous:?} against {}",
            result.covered_from
        );
        // Each counts exactly the orders in the span it says it covered.
        let current = orders_in(&result.covered_from, &result.covered_to);
        assert_eq!(result.totals["orders"], Value::Count(current), "{name}");
        let before = orders_in(&previous.covered_from, &previous.covered_to);
        assert_eq!(previous.totals["orders"], Value::Count(before), "{name}");
        // As long as the buckets kept allow.
        let span = |from: &str, to: &str| {
            parse_timestamp_text(to).unwrap().0 - parse_timestamp_text(from).unwrap().0
        };
        let lengths = (
            span(&previous.covered_from, &previous.covered_to),
            span(&result.covered_from, &result.covered_to),
        );
        assert!(lengths.0.abs_diff(lengths.1) <= tolerance as u64, "{name}: {lengths:?}");
        if tolerance < 20 * MIN {
            // Flat traffic, flat growth.
            assert_eq!(before, current, "{name}");
        }
    }
}

/// Average order value divided gross revenue by every order, also those of unknown value (a
/// purchase with neither a total nor a priced line, as seed 4's buys are): they add nothing to
/// revenue, so they halved the average here. They still count as orders.
#[test]
fn average_order_value_leaves_out_orders_of_unknown_value() {
    let engine = engine_with(&[
        purchase(
            DAY0 + HOUR,
            "priced",
            "main",
            json!([{"id": "lamp", "price": "30.00", "quantity": 1}, {"id": "gift", "quantity": 1}]),
            json!({}),
        ),
        purchase(DAY0 + 2 * HOUR, "buy", "main", json!([{"id": "lamp", "quantity": 2}]), json!({})),
    ]);
    let query = spec(&[Metric::Orders, Metric::AverageOrderValue], DAY0, DAY0 + DAY);
    let totals = engine.query(&query).unwrap().totals;
    assert_eq!(totals["orders"], Value::Count(2));
    assert_eq!(totals["average_order_value"], money("30.00"));
    // Snapshots keep which orders were of unknown value (format 14).
    let mut bytes = Vec::new();
    storepulse_engine::snapshot::encode(&engine, &mut bytes).unwrap();
    let restored = storepulse_engine::snapshot::decode(&bytes).unwrap();
    assert_eq!(restored.query(&query).unwrap().totals, totals);
    // By product: the gift's line has no price, the buy's lamp line neither.
    let mut by_product = query.clone();
    by_product.group_by = Some(Dimension::Product);
    let groups = engine.query(&by_product).unwrap().groups.unwrap();
    let aov: Vec<(Option<String>, Value, Value)> = groups
        .into_iter()
        .map(|group| {
            (group.key, group.values["orders"].clone(), group.values["average_order_value"].clone())
        })
        .collect();
    assert_eq!(
        aov,
        vec![
            (Some("lamp".into()), Value::Count(2), money("30.00")),
            (Some("gift".into()), Value::Count(1), Value::Money(None)),
        ]
    );
}

fn money(text: &str) -> Value {
    Value::Money(Some(text.to_owned()))
}

fn commerce_fixture() -> Engine {
    let shoe = json!({"id": "shoe", "name": "Runner", "category": "Apparel > Shoes > Running", "price": "80.00", "quantity": 1});
    let shirt =
        json!({"id": "shirt", "category": "Apparel > Shirts", "price": "20.00", "quantity": 2});
    let lamp =
        json!({"id": "lamp", "category": "Home > Lighting", "price": "35.50", "quantity": 1});
    engine_with(&[
        // Day 0 (previous period for day 1).
        purchase(DAY0 + HOUR, "o0", "main", json!([lamp]), json!({"country": "US"})),
        // Day 1.
        purchase(
            DAY0 + DAY + HOUR,
            "o1",
            "main",
            json!([shoe, shirt]),
            json!({"country": "US", "order": {"sales_rep_id": "rep-a"}, "promotion": {"id": "BF"}}),
        ),
        purchase(
            DAY0 + DAY + 2 * HOUR,
            "o2",
            "main",
            json!([lamp]),
            json!({"country": "DE", "order": {"total": "40.00", "shipping": "4.50"}}),
        ),
        purchase(DAY0 + DAY + 3 * HOUR, "o3", "outlet", json!([shirt]), json!({"country": "US"})),
        purchase(
            DAY0 + DAY + 4 * HOUR,
            "o4",
            "main",
            json!([{"id": "shoe", "price": "90.00", "quantity": 1}]),
            json!({"country": "GB", "order": {"currency": "EUR"}}),
        ),
        // A full refund of o3 (no amount, no lines): everything o3 bought.
        json!({"type": "refund", "timestamp": at(DAY0 + DAY + 5 * HOUR), "store": "outlet", "order": {"id": "o3"}}),
        // A partial refund of o1 by line: one shirt.
        json!({"type": "refund", "timestamp": at(DAY0 + DAY + 6 * HOUR), "store": "main",
               "order": {"id": "o1"}, "items": [{"id": "shirt", "price": "20.00", "quantity": 1}]}),
        json!({"type": "checkout_started", "timestamp": at(DAY0 + DAY + HOUR), "store": "main", "session_id": "s"}),
        json!({"type": "checkout_started", "timestamp": at(DAY0 + DAY + HOUR), "store": "main", "session_id": "t"}),
        json!({"type": "promotion_view", "timestamp": at(DAY0 + DAY), "store": "main", "promotion": {"id": "BF"}}),
        json!({"type": "promotion_view", "timestamp": at(DAY0 + DAY), "store": "main", "promotion": {"id": "BF"}}),
        json!({"type": "promotion_click", "timestamp": at(DAY0 + DAY), "store": "main", "promotion": {"id": "BF"}}),
    ])
}

#[test]
fn growth_from_negative_net_revenue_is_positive_when_it_rose() {
    // Day 0: 10.00 sold; day 1: it is refunded (net −10.00) and 5.00 sold on day 2.
    let engine = engine_with(&[
        json!({"type": "purchase", "timestamp": at(DAY0 + HOUR), "store": "main", "order": {"id": "o1", "total": "10.00"}}),
        json!({"type": "refund", "timestamp": at(DAY0 + DAY + HOUR), "store": "main", "order": {"id": "o1"}}),
        json!({"type": "purchase", "timestamp": at(DAY0 + 2 * DAY + HOUR), "store": "main", "order": {"id": "o2", "total": "5.00"}}),
    ]);
    let mut query = spec(&[Metric::NetRevenue], DAY0 + 2 * DAY, DAY0 + 3 * DAY);
    query.compare = true;
    let result = engine.query(&query).unwrap();
    assert_eq!(result.totals["net_revenue"], money("5.00"));
    let previous = result.previous.unwrap();
    assert_eq!(previous.totals["net_revenue"], money("-10.00"));
    assert_eq!(previous.growth_percent["net_revenue"], Some(150.0), "−10.00 → 5.00 rose");
    // Over both days the series' second half is above its first: the trend agrees.
    let mut both = spec(&[Metric::NetRevenue], DAY0 + DAY, DAY0 + 3 * DAY);
    both.compare = true;
    assert_eq!(engine.query(&both).unwrap().trend["net_revenue"], Trend::Up);
}

#[test]
fn money_sums_beyond_64_bits_and_their_average_are_exact() {
    // Orders of the largest amount ingest allows (10^15 minor units): 4,700 in one minute sum
    // to 4.7 × 10^18, within a row's 64 bits but twice that (the average's rounding) is not;
    // 9,300 over two minutes sum beyond 64 bits, each row within them.
    let mut engine = Engine::new(EngineConfig::default());
    let order = |index: usize, minute: i64| {
        event(json!({"type": "purchase", "timestamp": at(DAY0 + minute * MIN), "store": "main",
            "order": {"id": format!("o{index}"), "total": "10000000000000.00"}}))
    };
    for index in 0..4_700 {
        engine.apply(&order(index, 1));
    }
    let metrics = [Metric::GrossRevenue, Metric::AverageOrderValue, Metric::NetRevenue];
    let result = engine.query(&spec(&metrics, DAY0, DAY0 + 10 * MIN)).unwrap();
    assert_eq!(result.totals["gross_revenue"], money("47000000000000000.00"));
    assert_eq!(result.totals["average_order_value"], money("10000000000000.00"));
    for index in 4_700..9_300 {
        engine.apply(&order(index, 2));
    }
    let result = engine.query(&spec(&metrics, DAY0, DAY0 + 10 * MIN)).unwrap();
    assert_eq!(result.totals["gross_revenue"], money("93000000000000000.00"));
    assert_eq!(result.totals["net_revenue"], money("93000000000000000.00"));
    assert_eq!(result.totals["average_order_value"], money("10000000000000.00"));
}

/// A total above the lines plus tax and shipping (a surcharge: handling, gift wrapping) is
/// order revenue but, like tax and shipping, no product's: by product the lines keep what
/// they were sold for, as the docs now say (they said product revenue adds up to the order's
/// without tax and shipping, which a surcharge makes untrue).
#[test]
fn an_order_surcharge_is_order_revenue_but_not_product_revenue() {
    let engine = engine_with(&[purchase(
        DAY0 + HOUR,
        "o1",
        "main",
        json!([{"id": "shoe", "price": "80.00"}, {"id": "shirt", "price": "10.00", "quantity": 2}]),
        json!({"order": {"total": "120.00", "tax": "5.00", "shipping": "5.00"}}),
    )]);
    let mut query = spec(&[Metric::GrossRevenue], DAY0, DAY0 + DAY);
    assert_eq!(engine.query(&query).unwrap().totals["gross_revenue"], money("120.00"));
    query.group_by = Some(Dimension::Product);
    let result = engine.query(&query).unwrap();
    let by_product: BTreeMap<Option<String>, Value> =
        group_values(&result, "gross_revenue").into_iter().collect();
    assert_eq!(by_product[&Some("shoe".to_owned())], money("80.00"));
    assert_eq!(by_product[&Some("shirt".to_owned())], money("20.00"));
}

#[test]
fn commerce_kpis_over_a_range_with_refunds_currencies_and_stores() {
    let engine = commerce_fixture();
    let metrics = [
        Metric::Orders,
        Metric::Units,
        Metric::GrossRevenue,
        Metric::RefundedRevenue,
        Metric::NetRevenue,
        Metric::Refunds,
        Metric::AverageOrderValue,
        Metric::CheckoutsStarted,
        Metric::CheckoutConversionRate,
    ];
    let mut query = spec(&metrics, DAY0 + DAY, DAY0 + 2 * DAY);
    query.compare = true;
    let result = engine.query(&query).unwrap();
    // USD orders: o1 = 80 + 2×20 = 120.00, o2 = 40.00 (given total), o3 = 40.00. o4 is EUR: it
    // counts as an order and its unit, but not in USD money.
    let expected: BTreeMap<&str, Value> = [
        ("orders", Value::Count(4)),
        ("units", Value::Count(7)),
        ("gross_revenue", money("200.00")),
        ("refunded_revenue", money("60.00")),
        ("net_revenue", money("140.00")),
        ("refunds", Value::Count(2)),
        ("average_order_value", money("66.67")),
        ("checkouts_started", Value::Count(2)),
        ("checkout_conversion_rate", Value::Ratio(Some(2.0))),
    ]
    .into_iter()
    .collect();
    assert_eq!(result.totals, expected);
    let previous = result.previous.unwrap();
    assert_eq!(previous.totals["gross_revenue"], money("35.50"));
    assert_eq!(previous.growth_percent["gross_revenue"], Some(463.38));
    assert_eq!(previous.growth_percent["refunds"], None, "previous 0 → null");

    let mut euros = spec(&[Metric::GrossRevenue, Metric::Orders], DAY0, DAY0 + 2 * DAY);
    euros.currency = Currency::parse("EUR").unwrap();
    let result = engine.query(&euros).unwrap();
    assert_eq!(result.totals["gross_revenue"], money("90.00"));
    assert_eq!(result.totals["orders"], Value::Count(5));

    let mut outlet = spec(&[Metric::GrossRevenue, Metric::NetRevenue], DAY0, DAY0 + 2 * DAY);
    outlet.filters.store = Some("outlet".into());
    let result = engine.query(&outlet).unwrap();
    assert_eq!(result.totals["gross_revenue"], money("40.00"));
    assert_eq!(result.totals["net_revenue"], money("0.00"));
}

/// Refunds take back what was bought and never more: a second full refund finds nothing left,
/// an amount is capped at what is left, a line refunded by id and quantity is valued at its
/// purchase price, an amount alone is shared among the products; and an order sent twice
/// (a retry under a new event id) counts once.
#[test]
fn refunds_never_exceed_the_order_and_a_repeated_order_counts_once() {
    let refund = |minutes: i64, order: &str, extra: serde_json::Value| {
        let mut value = json!({"type": "refund", "timestamp": at(DAY0 + HOUR + minutes * MIN),
            "store": "main", "order": {"id": order}});
        for (key, field) in extra.as_object().unwrap() {
            if key == "total" {
                value["order"]["total"] = field.clone();
            } else {
                value[key] = field.clone();
            }
        }
        value
    };
    let lines = json!([{"id": "a", "price": "10.00", "quantity": 3}, {"id": "b", "price": "5.00"}]);
    let engine = engine_with(&[
        // o1: 3 × 10 + 5 + 4.99 shipping = 39.99.
        purchase(DAY0 + HOUR, "o1", "main", lines.clone(), json!({"order": {"shipping": "4.99"}})),
        // The same order again under another event id: not a second order.
        purchase(DAY0 + HOUR + MIN, "o1", "main", lines, json!({"order": {"shipping": "4.99"}})),
        // One `a` back, no price sent: 10.00, its purchase price.
        refund(2, "o1", json!({"items": [{"id": "a", "quantity": 1}]})),
        // 50.00 asked, 29.99 left: capped.
        refund(3, "o1", json!({"total": "50.00"})),
        // Nothing left: a second full refund takes nothing.
        refund(4, "o1", json!({})),
        // o2: 20.00, refunded by amount only (half): its one product takes the half.
        purchase(DAY0 + HOUR, "o2", "main", json!([{"id": "c", "price": "20.00"}]), json!({})),
        refund(5, "o2", json!({"total": "10.00"})),
        // o3, refunded in full twice: once.
        purchase(DAY0 + HOUR, "o3", "main", json!([{"id": "c", "price": "7.00"}]), json!({})),
        refund(6, "o3", json!({})),
        refund(7, "o3", json!({})),
    ]);
    let metrics =
        [Metric::Orders, Metric::GrossRevenue, Metric::RefundedRevenue, Metric::NetRevenue];
    let result = engine.query(&spec(&metrics, DAY0, DAY0 + DAY)).unwrap();
    let expected: BTreeMap<&str, Value> = [
        ("orders", Value::Count(3)),
        ("gross_revenue", money("66.99")),
        // o1 39.99 (10.00 + 29.99 + 0), o2 10.00, o3 7.00.
        ("refunded_revenue", money("56.99")),
        ("net_revenue", money("10.00")),
    ]
    .into_iter()
    .collect();
    assert_eq!(result.totals, expected);
    // By product, o1's refunds add up to its products' sales (its shipping stays with the
    // order), and `c` got back o2's half and all of o3.
    let mut by_product = spec(&[Metric::GrossRevenue, Metric::RefundedRevenue], DAY0, DAY0 + DAY);
    by_product.group_by = Some(Dimension::Product);
    let result = engine.query(&by_product).unwrap();
    let sold = group_values(&result, "gross_revenue");
    let refunded = group_values(&result, "refunded_revenue");
    let keyed =
        |values: Vec<(Option<String>, Value)>| values.into_iter().collect::<BTreeMap<_, _>>();
    let (sold, refunded) = (keyed(sold), keyed(refunded));
    for product in ["a", "b"] {
        let key = Some(product.to_owned());
        assert_eq!(refunded[&key], sold[&key], "{product}");
    }
    let c = Some("c".to_owned());
    assert_eq!((&sold[&c], &refunded[&c]), (&money("27.00"), &money("17.00")));
}

/// A range of decades without a granularity is answered (its trend read by month); asked by
/// day it is refused, naming `granularity`.
#[test]
fn decades_without_a_granularity_are_answered() {
    let engine = commerce_fixture();
    let decades = spec(&[Metric::Orders], DAY0 - 40 * 365 * DAY, DAY0 + 2 * DAY);
    assert_eq!(engine.query(&decades).unwrap().totals["orders"], Value::Count(5));
    let mut by_day = decades.clone();
    by_day.granularity = Some(Granularity::Day);
    assert_eq!(engine.query(&by_day).unwrap_err().parameter, "granularity");
}

/// A category filter finds its category whatever the letter case and the spacing around `>`.
#[test]
fn a_category_filter_ignores_case_and_spacing() {
    let engine = commerce_fixture();
    let units = |category: &str| {
        let mut query = spec(&[Metric::Units], DAY0, DAY0 + 2 * DAY);
        query.filters.category = Some(category.into());
        engine.query(&query).unwrap().totals["units"].clone()
    };
    assert_ne!(units("Apparel > Shoes"), Value::Count(0));
    assert_eq!(units("apparel>shoes"), units("Apparel > Shoes"));
    assert_eq!(units("APPAREL"), units("Apparel"));
    assert_eq!(units("Apparel > Sock"), Value::Count(0));
}

/// Distinct metrics from the daily sketches count whole days: the answer says so beside the
/// span its other figures cover.
#[test]
fn an_answer_says_which_days_its_sketch_counts_cover() {
    let engine = engine_with(&[page_view(DAY0 + 10 * HOUR, "u1", "s1", "/", "US")]);
    let from = DAY0 + 10 * HOUR + 5 * MIN;
    let answer = |metrics: &[Metric]| {
        serde_json::to_value(engine.query(&spec(metrics, from, from + 7 * MIN)).unwrap()).unwrap()
    };
    let visitors = answer(&[Metric::Visitors, Metric::PageViews]);
    assert_eq!(visitors["covered_from"], at(from));
    assert_eq!(visitors["distinct_covered_from"], at(DAY0));
    assert_eq!(visitors["distinct_covered_to"], at(DAY0 + DAY));
    // The sketch counted the day's visitor; the page views of the seven minutes, none.
    assert_eq!(
        (visitors["totals"]["visitors"].clone(), visitors["totals"]["page_views"].clone()),
        (1.into(), 0.into())
    );
    let page_views = answer(&[Metric::PageViews]);
    assert!(page_views.get("distinct_covered_from").is_none());
}

/// A refund of a remembered order is booked in the order's currency, also when it states none
/// (it is then read in the default currency, USD, as the same decimal amount).
#[test]
fn a_refund_is_booked_in_its_orders_currency() {
    let in_currency = |code: &str| json!({"order": {"currency": code}});
    let engine = engine_with(&[
        purchase(
            DAY0 + HOUR,
            "oe",
            "main",
            json!([{"id": "a", "price": "50.00"}]),
            in_currency("EUR"),
        ),
        purchase(
            DAY0 + HOUR,
            "oj",
            "main",
            json!([{"id": "b", "price": "1000"}]),
            in_currency("JPY"),
        ),
        json!({"type": "refund", "timestamp": at(DAY0 + 2 * HOUR), "order": {"id": "oe"}, "store": "main"}),
        json!({"type": "refund", "timestamp": at(DAY0 + 2 * HOUR), "order": {"id": "oj", "total": "300"}, "store": "main"}),
        json!({"type": "refund", "timestamp": at(DAY0 + 2 * HOUR), "order": {"id": "oj"}, "store": "main",
               "items": [{"id": "b", "price": "100"}]}),
    ]);
    let refunded = |code: &str| {
        let mut query = spec(&[Metric::RefundedRevenue, Metric::NetRevenue], DAY0, DAY0 + DAY);
        query.currency = Currency::parse(code).unwrap();
        let totals = engine.query(&query).unwrap().totals;
        (totals["refunded_revenue"].clone(), totals["net_revenue"].clone())
    };
    assert_eq!(refunded("EUR"), (money("50.00"), money("0.00")));
    assert_eq!(refunded("JPY"), (money("400"), money("600")));
    assert_eq!(refunded("USD"), (money("0.00"), money("0.00")));
}

/// A refund's money counts against the sale's country and promotion, but whoever sent it (a
/// back office session) is not a session or visitor of that country or promotion.
#[test]
fn a_refund_sender_is_not_counted_as_the_sales_visitor() {
    let engine = engine_with(&[
        purchase(
            DAY0 + HOUR,
            "o1",
            "main",
            json!([{"id": "a", "price": "10.00"}]),
            json!({"country": "US", "promotion": {"id": "PX"}}),
        ),
        json!({"type": "refund", "timestamp": at(DAY0 + 2 * HOUR), "store": "main",
               "user_id": "backoffice", "session_id": "bo-1", "order": {"id": "o1"}}),
    ]);
    for by in [Dimension::Country, Dimension::Promotion] {
        let mut query = spec(
            &[Metric::Sessions, Metric::Visitors, Metric::ConversionRate, Metric::RefundedRevenue],
            DAY0,
            DAY0 + DAY,
        );
        query.group_by = Some(by);
        let result = engine.query(&query).unwrap();
        let sale = result.groups().iter().find(|group| group.key.is_some()).unwrap();
        assert_eq!(sale.values["sessions"], Value::Count(1), "{by:?}");
        assert_eq!(sale.values["visitors"], Value::Count(1), "{by:?}");
        assert_eq!(sale.values["conversion_rate"], Value::Ratio(Some(1.0)), "{by:?}");
        assert_eq!(sale.values["refunded_revenue"], money("10.00"), "{by:?}");
    }
}

fn group_values(
    result: &storepulse_engine::QueryResult,
    metric: &str,
) -> Vec<(Option<String>, Value)> {
    result.groups().iter().map(|group| (group.key.clone(), group.values[metric].clone())).collect()
}

/// A product's category and name are its latest event's (a shop re-files or renames a
/// product): every sale of it counts there, under that name, and an event without them
/// leaves them as they were.
#[test]
fn a_product_counts_under_the_category_and_name_its_latest_event_sent() {
    let line = |category: Option<&str>, name: Option<&str>| {
        let mut line = json!({"id": "mug", "price": "10.00", "quantity": 1});
        if let Some(category) = category {
            line["category"] = json!(category);
        }
        if let Some(name) = name {
            line["name"] = json!(name);
        }
        json!([line])
    };
    let grouped = |engine: &Engine, by: Dimension| {
        let mut query = spec(&[Metric::Units], DAY0, DAY0 + DAY);
        query.group_by = Some(by);
        let result = engine.query(&query).unwrap();
        let labels = result.groups().iter().map(|group| group.label.clone()).collect::<Vec<_>>();
        (group_values(&result, "units"), labels)
    };
    let first = line(Some("Home > Kitchen"), Some("Mug"));
    let mut engine = engine_with(&[purchase(DAY0 + HOUR, "o1", "main", first, json!({}))]);
    assert_eq!(
        grouped(&engine, Dimension::Category(1)).0,
        vec![(Some("Home".into()), Value::Count(1))]
    );
    for (order, category, name, expected_category, expected_name) in [
        ("o2", Some("Gifts > Mugs"), Some("Big mug"), "Gifts", "Big mug"),
        ("o3", None, None, "Gifts", "Big mug"),
        ("o4", Some("Gifts > Mugs"), Some("Mug"), "Gifts", "Mug"),
        ("o5", Some("Home > Kitchen"), Some("Mug"), "Home", "Mug"),
        ("o6", Some("Home"), Some("Big mug"), "Home", "Big mug"),
    ] {
        let sale = purchase(DAY0 + 2 * HOUR, order, "main", line(category, name), json!({}));
        engine.apply(&event(sale));
        let units = Value::Count(engine.events_applied());
        assert_eq!(
            grouped(&engine, Dimension::Category(1)).0,
            vec![(Some(expected_category.into()), units.clone())],
            "category after {order}"
        );
        assert_eq!(
            grouped(&engine, Dimension::Product),
            (vec![(Some("mug".into()), units)], vec![Some(expected_name.into())]),
            "name after {order}"
        );
    }
    assert_eq!(
        grouped(&engine, Dimension::Category(2)).0,
        vec![(None, Value::Count(6))],
        "\"Home\" has no second level"
    );
    // "Latest" is by event time: an old event arriving late (a backfill) neither re-files nor
    // renames the product.
    let old =
        purchase(DAY0 + 30 * MIN, "o7", "main", line(Some("Old"), Some("Old mug")), json!({}));
    engine.apply(&event(old));
    let (by_category, names) = grouped(&engine, Dimension::Category(1));
    assert_eq!(by_category, vec![(Some("Home".into()), Value::Count(7))]);
    assert_eq!(grouped(&engine, Dimension::Product).1, vec![Some("Big mug".into())], "{names:?}");
}

/// Stores are tenants: two shops may share product ids but not catalogs. Each store's sales
/// count under the category that store files the product in; a store whose events carry no
/// category uses the path of the store that first filed the product; re-filing in one store
/// leaves the others alone — in queries, exact session counts and funnels alike.
#[test]
fn each_store_files_a_shared_product_id_in_its_own_category() {
    use storepulse_engine::funnel::{FunnelSpec, FunnelSplit};
    let t = DAY0 + HOUR;
    let sale = |time: i64, order: &str, store: &str, category: Option<&str>| {
        let mut line = json!({"id": "1001", "price": "10.00", "quantity": 1});
        if let Some(category) = category {
            line["category"] = json!(category);
        }
        let mut sale = purchase(time, order, store, json!([line.clone()]), json!({}));
        sale["session_id"] = json!(format!("s-{order}"));
        let mut view = json!({"type": "product_view", "timestamp": at(time - MIN),
            "store": store, "session_id": format!("s-{order}"), "product": line});
        view["user_id"] = json!("buyer");
        [view, sale]
    };
    let mut events = Vec::new();
    events.extend(sale(t, "a1", "shoes-shop", Some("Shoes > Sneakers")));
    events.extend(sale(t + MIN * 2, "b1", "book-shop", Some("Books > Fiction")));
    // The outlet sends no categories: the first filer's path.
    events.extend(sale(t + MIN * 4, "c1", "outlet", None));
    let mut engine = engine_with(&events);
    let by_category = |engine: &Engine, metric: Metric, from: i64, to: i64| {
        let mut query = spec(&[metric], from, to);
        query.group_by = Some(Dimension::Category(1));
        let mut values = group_values(&engine.query(&query).unwrap(), metric.name());
        values.sort_by(|a, b| a.0.cmp(&b.0));
        values
    };
    assert_eq!(
        by_category(&engine, Metric::Units, DAY0, DAY0 + DAY),
        vec![(Some("Books".into()), Value::Count(1)), (Some("Shoes".into()), Value::Count(2))]
    );
    // Sessions below a day come from the trails, filed by their store too.
    assert_eq!(
        by_category(&engine, Metric::Sessions, t - HOUR, t + HOUR),
        vec![(Some("Books".into()), Value::Count(1)), (Some("Shoes".into()), Value::Count(2))]
    );
    let mut books = spec(&[Metric::Units], DAY0, DAY0 + DAY);
    books.filters.category = Some("Books".into());
    assert_eq!(engine.query(&books).unwrap().totals["units"], Value::Count(1));
    let funnel = FunnelSpec {
        steps: FunnelSpec::parse_steps("product_view,purchase").unwrap(),
        window_ms: HOUR,
        from_ms: t - HOUR,
        to_ms: t + HOUR,
        source: None,
    };
    let everyone = RealtimeFilter::default();
    let split = engine.funnel(&funnel, FunnelSplit::Category(1), &everyone, 10).unwrap();
    let mut groups: Vec<(Option<String>, u64)> =
        split.groups.iter().map(|g| (g.key.clone(), g.funnel.steps[1].sessions)).collect();
    groups.sort();
    assert_eq!(groups, [(Some("Books".into()), 1), (Some("Shoes".into()), 2)]);

    // The book shop re-files it; the shoe shop's sales stay where they were.
    for event_value in sale(t + 10 * MIN, "b2", "book-shop", Some("Comics")) {
        engine.apply(&event(event_value));
    }
    assert_eq!(
        by_category(&engine, Metric::Units, DAY0, DAY0 + DAY),
        vec![(Some("Comics".into()), Value::Count(2)), (Some("Shoes".into()), Value::Count(2))]
    );
}

#[test]
fn group_by_category_levels_products_reps_and_promotions() {
    let engine = commerce_fixture();
    let mut query =
        spec(&[Metric::GrossRevenue, Metric::Units, Metric::Orders], DAY0, DAY0 + 2 * DAY);
    query.group_by = Some(Dimension::Category(1));
    let result = engine.query(&query).unwrap();
    // Lines: lamp 35.50 + 35.50, shoe 80, shirts 40 + 40 (USD); the EUR shoe counts units only.
    assert_eq!(
        group_values(&result, "gross_revenue"),
        vec![(Some("Apparel".into()), money("160.00")), (Some("Home".into()), money("71.00"))]
    );
    assert_eq!(
        group_values(&result, "units"),
        vec![(Some("Apparel".into()), Value::Count(6)), (Some("Home".into()), Value::Count(2))]
    );

    query.group_by = Some(Dimension::Category(2));
    query.filters.category = Some("Apparel".into());
    let result = engine.query(&query).unwrap();
    assert_eq!(
        group_values(&result, "gross_revenue"),
        vec![
            (Some("Apparel > Shirts".into()), money("80.00")),
            (Some("Apparel > Shoes".into()), money("80.00"))
        ]
    );

    query.filters = Filters { category: Some("Apparel>Shoes".into()), ..Filters::default() };
    query.group_by = Some(Dimension::Product);
    let result = engine.query(&query).unwrap();
    assert_eq!(result.groups().len(), 1);
    assert_eq!(result.groups()[0].key.as_deref(), Some("shoe"));
    assert_eq!(result.groups()[0].label.as_deref(), Some("Runner"));
    assert_eq!(result.groups()[0].values["orders"], Value::Count(2));

    // Refunds are attributed to the sale's rep and promotion.
    let mut reps = spec(&[Metric::NetRevenue, Metric::Orders], DAY0, DAY0 + 2 * DAY);
    reps.group_by = Some(Dimension::SalesRep);
    let result = engine.query(&reps).unwrap();
    assert_eq!(
        group_values(&result, "net_revenue"),
        vec![(Some("rep-a".into()), money("100.00")), (None, money("75.50"))]
    );

    let mut promotions = spec(
        &[
            Metric::PromotionViews,
            Metric::PromotionClicks,
            Metric::Orders,
            Metric::ClickThroughRate,
            Metric::PromotionConversionRate,
        ],
        DAY0,
        DAY0 + 2 * DAY,
    );
    promotions.filters.promotion = Some("BF".into());
    let result = engine.query(&promotions).unwrap();
    assert_eq!(result.totals["promotion_views"], Value::Count(2));
    assert_eq!(result.totals["promotion_clicks"], Value::Count(1));
    assert_eq!(result.totals["orders"], Value::Count(1));
    assert_eq!(result.totals["click_through_rate"], Value::Ratio(Some(0.5)));
    assert_eq!(result.totals["promotion_conversion_rate"], Value::Ratio(Some(1.0)));
}

/// Without a promotion filter, promotion conversion was every order over the clicks (4 orders
/// / 1 click = 4.0 here) although only o1 carried a promotion.
#[test]
fn promotion_conversion_counts_only_orders_carrying_a_promotion() {
    let engine = commerce_fixture();
    let metrics = [Metric::Orders, Metric::PromotionClicks, Metric::PromotionConversionRate];
    let mut query = spec(&metrics, DAY0 + DAY, DAY0 + 2 * DAY);
    let result = engine.query(&query).unwrap();
    assert_eq!(result.totals["orders"], Value::Count(4));
    assert_eq!(result.totals["promotion_clicks"], Value::Count(1));
    assert_eq!(result.totals["promotion_conversion_rate"], Value::Ratio(Some(1.0)));

    // By promotion: BF converts its click; orders without a promotion convert none.
    query.group_by = Some(Dimension::Promotion);
    let result = engine.query(&query).unwrap();
    assert_eq!(
        group_values(&result, "promotion_conversion_rate"),
        vec![(None, Value::Ratio(None)), (Some("BF".into()), Value::Ratio(Some(1.0)))]
    );

    // Only promoted rows: the totals are those of the promotions.
    query.group_by = None;
    query.filters.promoted = true;
    let result = engine.query(&query).unwrap();
    assert_eq!(result.totals["orders"], Value::Count(1));
    assert_eq!(result.totals["promotion_conversion_rate"], Value::Ratio(Some(1.0)));
}

/// A session that landed from a campaign and bought on a later page (whose events name no
/// source) counts its purchase, its revenue, its refund and its conversion under the
/// campaign; an event that names a source of its own keeps it; a session's earliest event
/// naming a source sets the session's, whatever order the events arrive in.
#[test]
fn a_sessions_events_count_under_the_source_it_landed_from() {
    let t = DAY0 + 10 * HOUR;
    let landing = |time: i64, session: &str, source: &str| {
        json!({"type": "page_view", "timestamp": at(time), "user_id": "u", "session_id": session,
               "page": {"url": format!("https://shop.test/?utm_source={source}")}})
    };
    let line = json!([{"id": "p1", "price": "40.00", "quantity": 1}]);
    let mut buy = purchase(t + 5 * MIN, "o1", "default", line.clone(), json!({}));
    buy["session_id"] = json!("s1");
    let mut refund = json!({"type": "refund", "timestamp": at(t + DAY), "store": "default",
        "order": {"id": "o1", "currency": "USD"}});
    // A back office sends the refund, in a session of its own.
    refund["session_id"] = json!("back-office");
    // s2 names its own source on the purchase: that one counts under it.
    let mut own = purchase(t + 6 * MIN, "o2", "default", line.clone(), json!({}));
    own["session_id"] = json!("s2");
    own["marketing"] = json!({"utm_source": "partner"});
    // s3's events arrive late, its landing last: the later mid-session campaign (ads) is
    // not the session's, the earlier landing (mail) is.
    let mut late = purchase(t + 9 * MIN, "o3", "default", line, json!({}));
    late["session_id"] = json!("s3");
    let engine = engine_with(&[
        landing(t, "s1", "news"),
        page_view(t + MIN, "u", "s1", "/p/p1", "US"),
        buy,
        refund,
        landing(t + 2 * MIN, "s2", "news"),
        own,
        landing(t + 8 * MIN, "s3", "ads"),
        landing(t + 7 * MIN, "s3", "mail"),
        late,
    ]);
    let metrics = [
        Metric::Orders,
        Metric::GrossRevenue,
        Metric::RefundedRevenue,
        Metric::Sessions,
        Metric::ConversionRate,
    ];
    let mut query = spec(&metrics, DAY0, DAY0 + 3 * DAY);
    query.group_by = Some(Dimension::Source);
    let result = engine.query(&query).unwrap();
    let by_source = |metric: &str| group_values(&result, metric);
    // Groups as answered (largest first), then sorted by source: the back office's refund
    // session is the one without a source.
    let sorted = |metric: &str| {
        let mut values = by_source(metric);
        values.sort_by(|a, b| a.0.cmp(&b.0));
        values
    };
    let named = |pairs: &[(Option<&str>, Value)]| -> Vec<(Option<String>, Value)> {
        pairs.iter().map(|(key, value)| (key.map(str::to_owned), value.clone())).collect()
    };
    assert_eq!(
        sorted("orders"),
        named(&[
            (None, Value::Count(0)),
            (Some("ads"), Value::Count(0)),
            (Some("mail"), Value::Count(1)),
            (Some("news"), Value::Count(1)),
            (Some("partner"), Value::Count(1)),
        ])
    );
    // The refund counts against the sale's source, not the back office's none.
    assert_eq!(
        sorted("refunded_revenue"),
        named(&[
            (None, money("0.00")),
            (Some("ads"), money("0.00")),
            (Some("mail"), money("0.00")),
            (Some("news"), money("40.00")),
            (Some("partner"), money("0.00")),
        ])
    );
    // news: s1 bought, s2 did not under news (its purchase was partner's); ads: s3's later
    // landing counts s3 as a session under ads, without a purchase there.
    let mut query = spec(&[Metric::Sessions, Metric::ConversionRate], DAY0, DAY0 + DAY);
    query.filters.source = Some("news".into());
    let result = engine.query(&query).unwrap();
    assert_eq!(result.totals["sessions"], Value::Count(2));
    assert_eq!(result.totals["conversion_rate"], Value::Ratio(Some(0.5)));

    // Counted exactly from the session trails (below a day, by product) the same: each event
    // counts under the source its rows did, so the trails agree with the daily sketches
    // (these queries were refused by source before).
    let mut hourly = query.clone();
    hourly.granularity = Some(Granularity::Hour);
    let result = engine.query(&hourly).unwrap();
    assert_eq!(result.totals["sessions"], Value::Count(2));
    assert_eq!(result.totals["conversion_rate"], Value::Ratio(Some(0.5)));
    let ten = result.series.iter().find(|point| point.start == at(t)).unwrap();
    assert_eq!(ten.values["sessions"], Value::Count(2));
    let mut p1 = query.clone();
    p1.filters.product = Some("p1".into());
    let result = engine.query(&p1).unwrap();
    assert_eq!(result.totals["sessions"], Value::Count(1), "s1 bought p1 under news");
    assert_eq!(result.totals["conversion_rate"], Value::Ratio(Some(1.0)));
    // Grouped by source: a session counts under every source it has an event under (s3
    // under its landing's mail and its later ads), by day and by hour alike.
    let mut by_source = query.clone();
    by_source.filters.source = None;
    by_source.group_by = Some(Dimension::Source);
    let daily = engine.query(&by_source).unwrap();
    by_source.granularity = Some(Granularity::Hour);
    let from_trails = engine.query(&by_source).unwrap();
    let mut sessions = group_values(&from_trails, "sessions");
    sessions.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        sessions,
        named(&[
            (Some("ads"), Value::Count(1)),
            (Some("mail"), Value::Count(1)),
            (Some("news"), Value::Count(2)),
            (Some("partner"), Value::Count(1)),
        ])
    );
    for metric in ["sessions", "conversion_rate"] {
        let mut trails = group_values(&from_trails, metric);
        let mut sketches = group_values(&daily, metric);
        trails.sort_by(|a, b| a.0.cmp(&b.0));
        sketches.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(trails, sketches, "{metric}");
    }
    assert_eq!(from_trails.totals["sessions"], Value::Count(3), "each session once");

    // Funnels by source: the steps made under each source (s2 landed from news but bought
    // under partner; s3 landed from mail, came back from ads, and bought under mail).
    use storepulse_engine::engine::RealtimeFilter;
    use storepulse_engine::funnel::{FunnelSpec, FunnelSplit};
    let funnel = FunnelSpec {
        steps: FunnelSpec::parse_steps("page_view,purchase").unwrap(),
        window_ms: HOUR,
        from_ms: DAY0,
        to_ms: DAY0 + DAY,
        source: None,
    };
    let everyone = RealtimeFilter::default();
    let sessions = |steps: &storepulse_engine::funnel::FunnelSteps| -> Vec<u64> {
        steps.steps.iter().map(|step| step.sessions).collect()
    };
    let split = engine.funnel(&funnel, FunnelSplit::Source, &everyone, 10).unwrap();
    let mut groups: Vec<(Option<String>, Vec<u64>)> =
        split.groups.iter().map(|group| (group.key.clone(), sessions(&group.funnel))).collect();
    groups.sort();
    assert_eq!(
        groups,
        [
            (Some("ads".into()), vec![1, 0]),
            (Some("mail".into()), vec![1, 1]),
            (Some("news".into()), vec![2, 1]),
        ]
    );
    assert_eq!(sessions(&split.overall), [3, 3], "overall, every step counts");
    let news = FunnelSpec { source: Some("news".into()), ..funnel.clone() };
    let only_news = engine.funnel(&news, FunnelSplit::None, &everyone, 10).unwrap();
    assert_eq!(sessions(&only_news.overall), [2, 1]);
    let unknown = FunnelSpec { source: Some("tv".into()), ..funnel };
    let none = engine.funnel(&unknown, FunnelSplit::None, &everyone, 10).unwrap();
    assert_eq!(sessions(&none.overall), [0, 0]);
}

/// Stores are tenants: two shops may both have a session "42" and a user "u", and neither
/// sees the other's: not its campaign, funnel, cart or live activity.
#[test]
fn two_stores_with_the_same_session_and_user_ids_stay_apart() {
    use storepulse_engine::funnel::{FunnelSpec, FunnelSplit};
    let t = DAY0 + 10 * HOUR;
    let in_store = |mut value: serde_json::Value, store: &str| {
        value["store"] = json!(store);
        value
    };
    let landing = json!({"type": "page_view", "timestamp": at(t), "user_id": "u",
        "session_id": "42", "page": {"url": "https://a.test/?utm_source=news"}});
    let cart = json!({"type": "add_to_cart", "timestamp": at(t + MIN), "user_id": "u",
        "session_id": "42", "product": {"id": "p", "price": "12.00"}});
    let line = json!([{"id": "p", "price": "10.00", "quantity": 1}]);
    let mut buy = purchase(t + 3 * MIN, "b-1", "b", line, json!({}));
    buy["session_id"] = json!("42");
    buy["user_id"] = json!("u");
    let engine = engine_with(&[
        in_store(landing.clone(), "a"),
        in_store(cart, "a"),
        in_store(page_view(t + 2 * MIN, "u", "42", "/", "US"), "b"),
        buy,
    ]);
    // b's sale names no source, and b's session landed from none: a's campaign is a's.
    let mut query = spec(&[Metric::Orders, Metric::AbandonedCartValue], DAY0, DAY0 + DAY);
    query.filters.source = Some("news".into());
    assert_eq!(engine.query(&query).unwrap().totals["orders"], Value::Count(0));
    // a's cart is abandoned: b's purchase in "its" session is another shop's.
    let mut carts = spec(&[Metric::AbandonedCartValue, Metric::Sessions], DAY0, DAY0 + DAY);
    carts.filters.store = Some("a".into());
    let answer = engine.query(&carts).unwrap();
    assert_eq!(answer.totals["abandoned_cart_value"], money("12.00"));
    assert_eq!(answer.totals["sessions"], Value::Count(1));
    let funnel = FunnelSpec {
        steps: FunnelSpec::parse_steps("page_view,purchase").unwrap(),
        window_ms: HOUR,
        from_ms: t - HOUR,
        to_ms: t + HOUR,
        source: None,
    };
    let steps = |store: &str| {
        let filter = RealtimeFilter { store: Some(store.into()), ..Default::default() };
        let result = engine.funnel(&funnel, FunnelSplit::None, &filter, 10).unwrap();
        result.overall.steps.iter().map(|step| step.sessions).collect::<Vec<_>>()
    };
    assert_eq!((steps("a"), steps("b")), (vec![1, 0], vec![1, 1]));
    // Over both stores: two sessions, two visitors, live and by day.
    let mut both = spec(&[Metric::Sessions, Metric::Visitors], DAY0, DAY0 + DAY);
    both.granularity = Some(Granularity::Hour);
    let answer = engine.query(&both).unwrap();
    assert_eq!(answer.totals["sessions"], Value::Count(2));
    assert_eq!(answer.totals["visitors"], Value::Count(2));
    let now = Timestamp(t + 4 * MIN);
    let live = engine.realtime(now, &RealtimeFilter::default(), 5, Currency::USD);
    assert_eq!((live.active_users, live.active_sessions), (2, 2));
    let only_a = RealtimeFilter { store: Some("a".into()), ..Default::default() };
    assert_eq!(engine.realtime(now, &only_a, 5, Currency::USD).active_sessions, 1);
    assert_eq!(engine.visitor_active_sessions(now, "u", &RealtimeFilter::default()), 2);
    assert_eq!(engine.visitor_active_sessions(now, "u", &only_a), 1);
}

/// Abandoned cart value does not depend on the order events arrive in: a purchase sent by the
/// shop's backend before the browser's cart beacon closes that cart, and a removal that
/// arrives before its add empties the cart.
#[test]
fn abandoned_cart_value_is_the_same_in_any_arrival_order() {
    let t = DAY0 + 10 * HOUR;
    let cart = |kind: &str, time: i64, session: &str, price: &str| {
        json!({"type": kind, "timestamp": at(time), "user_id": "u", "session_id": session,
               "product": {"id": "p", "price": price}})
    };
    let line = json!([{"id": "p", "price": "5.00", "quantity": 1}]);
    let mut buy = purchase(t + 10 * MIN, "o1", "default", line, json!({}));
    buy["session_id"] = json!("bought");
    let events = [
        buy,
        cart("add_to_cart", t, "bought", "5.00"),
        cart("remove_from_cart", t + 5 * MIN, "emptied", "9.00"),
        cart("add_to_cart", t + 4 * MIN, "emptied", "9.00"),
        cart("add_to_cart", t + 6 * MIN, "left", "7.00"),
    ];
    let query = spec(&[Metric::AbandonedCartValue, Metric::AbandonedCarts], DAY0, DAY0 + DAY);
    let forwards = engine_with(&events).query(&query).unwrap().totals;
    let mut reversed = events.clone();
    reversed.reverse();
    let backwards = engine_with(&reversed).query(&query).unwrap().totals;
    for totals in [forwards, backwards] {
        // "emptied" carted and bought nothing, with nothing left in its cart.
        assert_eq!(totals["abandoned_cart_value"], money("7.00"));
        assert_eq!(totals["abandoned_carts"], Value::Count(2));
    }
}

/// A refund that arrives before its sale (a backfill, refunds sent ahead of a delayed batch of
/// orders) is booked as sent, and counts towards the sale's cap when the sale arrives: net
/// revenue never goes below zero.
#[test]
fn a_refund_before_its_sale_still_caps_what_the_order_can_refund() {
    let t = DAY0 + 10 * HOUR;
    let refund = |time: i64, order: serde_json::Value| json!({"type": "refund", "timestamp": at(time), "store": "default", "order": order});
    let line = json!([{"id": "p", "price": "50.00", "quantity": 1}]);
    let engine = engine_with(&[
        refund(t, json!({"id": "RF2", "total": "30.00", "currency": "USD"})),
        purchase(t + MIN, "RF2", "default", line, json!({})),
        // A full refund: what is left, 20.00, not the whole 50.00 again.
        refund(t + 2 * MIN, json!({"id": "RF2", "currency": "USD"})),
        refund(t + 3 * MIN, json!({"id": "RF2", "total": "5.00", "currency": "USD"})),
    ]);
    let query = spec(
        &[Metric::GrossRevenue, Metric::RefundedRevenue, Metric::NetRevenue, Metric::Orders],
        DAY0,
        DAY0 + DAY,
    );
    let totals = engine.query(&query).unwrap().totals;
    assert_eq!(totals["gross_revenue"], money("50.00"));
    assert_eq!(totals["refunded_revenue"], money("50.00"));
    assert_eq!(totals["net_revenue"], money("0.00"));
    assert_eq!(totals["orders"], Value::Count(1), "the early refund is not an order");
}

/// A refund of more than its sale that arrives before the sale was booked in full: net
/// revenue went below zero (−30.00 for 50.00 refunded of a 20.00 sale), and the result
/// depended on which came first. What it booked beyond the sale is taken back.
#[test]
fn an_early_refund_beyond_its_sale_is_taken_back_to_the_sale() {
    let t = DAY0 + 10 * HOUR;
    let refund = |time: i64, total: &str| {
        json!({"type": "refund", "timestamp": at(time),
        "store": "default", "order": {"id": "y3", "currency": "USD", "total": total}})
    };
    let line = json!([{"id": "p", "price": "20.00", "quantity": 1}]);
    let metrics = [Metric::GrossRevenue, Metric::RefundedRevenue, Metric::NetRevenue];
    let query = spec(&metrics, DAY0, DAY0 + DAY);
    let early = engine_with(&[
        refund(t, "50.00"),
        purchase(t + MIN, "y3", "default", line.clone(), json!({})),
        refund(t + 2 * MIN, "1.00"),
    ]);
    let sale_first = engine_with(&[
        purchase(t + MIN, "y3", "default", line, json!({})),
        refund(t, "50.00"),
        refund(t + 2 * MIN, "1.00"),
    ]);
    for engine in [&early, &sale_first] {
        let totals = engine.query(&query).unwrap().totals;
        assert_eq!(totals["gross_revenue"], money("20.00"));
        assert_eq!(totals["refunded_revenue"], money("20.00"));
        assert_eq!(totals["net_revenue"], money("0.00"));
    }
}

/// A refund's line names a product the order never had: nothing of it was sold, so it refunds
/// nothing (it was credited as sent, and refunds by product outgrew the order's: C at −7.00).
#[test]
fn a_refund_line_for_a_product_the_order_never_had_refunds_nothing() {
    let t = DAY0 + 10 * HOUR;
    let lines = json!([{"id": "A", "price": "10.00", "quantity": 1},
                       {"id": "B", "price": "30.00", "quantity": 1}]);
    let refund = |time: i64, items: serde_json::Value| {
        json!({"type": "refund",
        "timestamp": at(time), "store": "default", "order": {"id": "z1"}, "items": items})
    };
    let engine = engine_with(&[
        purchase(t, "z1", "default", lines, json!({})),
        refund(t + MIN, json!([{"id": "A", "quantity": 5}])),
        refund(t + 2 * MIN, json!([{"id": "C", "price": "7.00"}])),
        refund(t + 3 * MIN, json!([{"id": "B"}])),
    ]);
    let ungrouped = spec(&[Metric::RefundedRevenue], DAY0, DAY0 + DAY);
    assert_eq!(engine.query(&ungrouped).unwrap().totals["refunded_revenue"], money("40.00"));
    assert_eq!(
        refunded_by_product(&engine),
        vec![(Some("A".into()), money("10.00")), (Some("B".into()), money("30.00"))]
    );
}

/// Refunded revenue of the fixture days by product, in product order.
fn refunded_by_product(engine: &Engine) -> Vec<(Option<String>, Value)> {
    let mut by_product = spec(&[Metric::RefundedRevenue], DAY0, DAY0 + DAY);
    by_product.group_by = Some(Dimension::Product);
    let mut refunded = group_values(&engine.query(&by_product).unwrap(), "refunded_revenue");
    refunded.sort_by(|a, b| a.0.cmp(&b.0));
    refunded
}

/// A full refund by the order id alone (as Segment's "Order Refunded" may be sent) that arrives
/// before its sale refunds the sale when it comes, as of the refund's time, against the sale's
/// dimensions and by product: it refunded nothing, and net revenue kept the whole sale.
#[test]
fn a_full_refund_before_its_sale_refunds_the_sale_when_it_comes() {
    let t = DAY0 + 10 * HOUR;
    let refund = json!({"type": "refund", "timestamp": at(t + 2 * HOUR), "store": "default",
        "order": {"id": "FR1"}});
    let line = json!([{"id": "p", "price": "30.00", "quantity": 1},
                      {"id": "q", "price": "10.00", "quantity": 2}]);
    let mut events = vec![refund, purchase(t, "FR1", "default", line, json!({}))];
    // A second full refund after the sale finds nothing left.
    events.push(json!({"type": "refund", "timestamp": at(t + 3 * HOUR), "store": "default",
        "order": {"id": "FR1"}}));
    let engine = engine_with(&events);
    let metrics = [Metric::GrossRevenue, Metric::RefundedRevenue, Metric::NetRevenue];
    let mut hourly = spec(&metrics, DAY0, DAY0 + DAY);
    hourly.granularity = Some(Granularity::Hour);
    let result = engine.query(&hourly).unwrap();
    assert_eq!(result.totals["gross_revenue"], money("50.00"));
    assert_eq!(result.totals["refunded_revenue"], money("50.00"));
    assert_eq!(result.totals["net_revenue"], money("0.00"));
    let refunded_at = |hour: i64| {
        let start = at(t + hour * HOUR);
        result.series.iter().find(|point| point.start == start).unwrap().values["refunded_revenue"]
            .clone()
    };
    assert_eq!(refunded_at(2), money("50.00"), "as of the refund's time");
    assert_eq!(refunded_at(0), money("0.00"));
    assert_eq!(refunded_at(3), money("0.00"), "the second full refund found nothing left");
    assert_eq!(
        refunded_by_product(&engine),
        vec![(Some("p".into()), money("30.00")), (Some("q".into()), money("20.00"))]
    );
}

/// By product, revenue is what the lines were sold for: an order's discount (stated, or a
/// total below its lines) comes off its lines by their share; tax and shipping are not
/// product revenue. Grouped by product, the totals are the ungrouped query's (they summed
/// the lines at list price: 110.00 sold where 98.00 was).
#[test]
fn product_revenue_is_net_of_the_orders_discount_and_totals_stay_the_orders() {
    let t = DAY0 + 10 * HOUR;
    let line = |id: &str, price: &str| json!({"id": id, "price": price});
    let engine = engine_with(&[
        purchase(
            t,
            "n1",
            "default",
            json!([line("a", "5.00"), line("d", "5.00")]),
            json!({"order": {"discount": "3.00", "tax": "1.00"}}),
        ),
        purchase(
            t,
            "n2",
            "default",
            json!([line("e", "100.00")]),
            json!({"order": {"total": "90.00"}}),
        ),
        json!({"type": "refund", "timestamp": at(t + HOUR), "order": {"id": "n2"},
               "items": [{"id": "e"}]}),
    ]);
    let metrics = [Metric::GrossRevenue, Metric::RefundedRevenue, Metric::Orders, Metric::Units];
    let ungrouped = spec(&metrics, DAY0, DAY0 + DAY);
    let mut by_product = ungrouped.clone();
    by_product.group_by = Some(Dimension::Product);
    let (plain, grouped) = (engine.query(&ungrouped).unwrap(), engine.query(&by_product).unwrap());
    assert_eq!(plain.totals["gross_revenue"], money("98.00"));
    assert_eq!(plain.totals["refunded_revenue"], money("90.00"));
    assert_eq!(grouped.totals, plain.totals);
    let group = |id: &str, metric: &str| {
        let group = grouped.groups().iter().find(|g| g.key.as_deref() == Some(id)).unwrap();
        group.values[metric].clone()
    };
    assert_eq!(group("e", "gross_revenue"), money("90.00"));
    assert_eq!(group("e", "refunded_revenue"), money("90.00"), "refunded at what it was sold for");
    assert_eq!(
        (group("a", "gross_revenue"), group("d", "gross_revenue")),
        (money("3.50"), money("3.50"))
    );
    assert_eq!(group("a", "orders"), Value::Count(1));
}

/// Orders a back office sends carry the buyer but no session id. The exact counts (by product,
/// below a day) come from session trails, so their buyers were missing there: unique buyers of
/// a product sold only through the back office was 0. They count as visitors and buyers now,
/// not as sessions, nor in funnels; and after a restart too.
#[test]
fn buyers_of_orders_sent_without_a_session_count_in_the_exact_counts() {
    use storepulse_engine::funnel::{FunnelSpec, FunnelSplit};
    use storepulse_engine::snapshot;
    let t = DAY0 + 10 * HOUR;
    let back_office = |time: i64, id: &str, buyer: &str| {
        json!({"type": "purchase", "timestamp": at(time), "user_id": buyer,
               "order": {"id": id, "currency": "USD"}, "items": [{"id": "p", "price": "10.00"}]})
    };
    let engine = engine_with(&[
        page_view(t, "u1", "s1", "/", "US"),
        back_office(t + MIN, "b-1", "b1"),
        back_office(t + 2 * MIN, "b-2", "b1"),
        back_office(t + HOUR, "b-3", "b2"),
    ]);
    let mut bytes = Vec::new();
    snapshot::encode(&engine, &mut bytes).unwrap();
    let restored = snapshot::decode(&bytes).unwrap();
    for engine in [&engine, &restored] {
        let metrics = [Metric::Visitors, Metric::UniqueBuyers, Metric::Sessions];
        let mut hourly = spec(&metrics, t, t + 2 * HOUR);
        hourly.granularity = Some(Granularity::Hour);
        let result = engine.query(&hourly).unwrap();
        assert_eq!(result.totals["visitors"], Value::Count(3), "u1, b1, b2");
        assert_eq!(result.totals["unique_buyers"], Value::Count(2));
        assert_eq!(result.totals["sessions"], Value::Count(1), "only s1 is a session");
        let hour = |n: usize, metric: &str| result.series[n].values[metric].clone();
        assert_eq!(
            (hour(0, "unique_buyers"), hour(1, "unique_buyers")),
            (Value::Count(1), Value::Count(1))
        );
        let mut by_product = spec(&[Metric::UniqueBuyers, Metric::Sessions], DAY0, DAY0 + DAY);
        by_product.group_by = Some(Dimension::Product);
        let result = engine.query(&by_product).unwrap();
        assert_eq!(result.groups()[0].values["unique_buyers"], Value::Count(2));
        assert_eq!(result.groups()[0].values["sessions"], Value::Count(0));
        let funnel = FunnelSpec {
            steps: FunnelSpec::parse_steps("page_view,purchase").unwrap(),
            window_ms: HOUR,
            from_ms: DAY0,
            to_ms: DAY0 + DAY,
            source: None,
        };
        let everyone = RealtimeFilter::default();
        let steps = engine.funnel(&funnel, FunnelSplit::None, &everyone, 10).unwrap().overall.steps;
        assert_eq!(steps.iter().map(|step| step.sessions).collect::<Vec<_>>(), [1, 0]);
    }
}

/// `order.status` was read and ignored: a pending or cancelled order counted in full revenue
/// (seed 2 counted completed orders only). A pending or processing order is a checkout started
/// until the same order arrives completed; a cancelled or refunded one takes back what is left
/// of the order if it was sold, and counts nothing if it never was.
#[test]
fn a_purchase_counts_by_its_orders_status() {
    let t = DAY0 + 10 * HOUR;
    let order = |time: i64, id: &str, status: &str, total: &str| {
        purchase(
            time,
            id,
            "default",
            json!([{"id": "p", "price": total}]),
            json!({"order": {"status": status}}),
        )
    };
    let mut engine = Engine::new(EngineConfig::default());
    let query = spec(
        &[
            Metric::Orders,
            Metric::GrossRevenue,
            Metric::RefundedRevenue,
            Metric::CheckoutsStarted,
            Metric::Refunds,
            Metric::ConversionRate,
        ],
        DAY0,
        DAY0 + DAY,
    );
    let totals = |engine: &mut Engine, value: serde_json::Value| {
        engine.apply(&event(value));
        engine.query(&query).unwrap().totals
    };
    let after = totals(&mut engine, order(t, "o1", "pending", "100.00"));
    assert_eq!(
        (after["orders"].clone(), after["checkouts_started"].clone()),
        (Value::Count(0), Value::Count(1))
    );
    assert_eq!(after["gross_revenue"], money("0.00"));
    assert_eq!(after["conversion_rate"], Value::Ratio(Some(0.0)), "a pending order is no purchase");
    let after = totals(&mut engine, order(t + MIN, "o1", "completed", "100.00"));
    assert_eq!(
        (after["orders"].clone(), after["gross_revenue"].clone()),
        (Value::Count(1), money("100.00"))
    );
    let after = totals(&mut engine, order(t + 2 * MIN, "o1", "cancelled", "100.00"));
    assert_eq!(after["refunded_revenue"], money("100.00"));
    assert_eq!(after["refunds"], Value::Count(1));
    // Never sold: nothing to take back, and no sale either.
    let after = totals(&mut engine, order(t + 3 * MIN, "o2", "cancelled", "40.00"));
    assert_eq!(
        (after["orders"].clone(), after["refunds"].clone()),
        (Value::Count(1), Value::Count(1))
    );
    assert_eq!(after["gross_revenue"], money("100.00"));
    // Sent refunded: the whole order, whatever amount it repeats.
    totals(&mut engine, order(t + 4 * MIN, "o3", "completed", "50.00"));
    let after = totals(&mut engine, order(t + 5 * MIN, "o3", "refunded", "10.00"));
    assert_eq!(after["refunded_revenue"], money("150.00"));
}

/// An order sent by its value alone (a back office's "Order Completed" without products) is
/// a known sale: sent again it is one order, its full refund refunds its value, and a refund
/// sent before it counts towards its cap.
#[test]
fn an_order_without_lines_is_remembered_as_a_sale() {
    let t = DAY0 + 10 * HOUR;
    let valued = |time: i64, id: &str, total: &str| {
        json!({"type": "purchase", "timestamp": at(time), "user_id": "b1",
               "order": {"id": id, "total": total, "currency": "USD"}})
    };
    let refund = |time: i64, order: serde_json::Value| json!({"type": "refund", "timestamp": at(time), "order": order});
    let engine = engine_with(&[
        valued(t, "V1", "40.00"),
        valued(t + MIN, "V1", "40.00"),
        refund(t + 2 * MIN, json!({"id": "V1", "currency": "USD"})),
        refund(t + 3 * MIN, json!({"id": "V2", "total": "15.00", "currency": "USD"})),
        valued(t + 4 * MIN, "V2", "25.00"),
        refund(t + 5 * MIN, json!({"id": "V2", "currency": "USD"})),
    ]);
    let query = spec(
        &[Metric::GrossRevenue, Metric::RefundedRevenue, Metric::Orders, Metric::Units],
        DAY0,
        DAY0 + DAY,
    );
    let totals = engine.query(&query).unwrap().totals;
    assert_eq!(totals["orders"], Value::Count(2), "V1 sent twice is one order");
    assert_eq!(totals["gross_revenue"], money("65.00"));
    assert_eq!(totals["refunded_revenue"], money("65.00"), "each refunded in full, once");
    assert_eq!(totals["units"], Value::Count(0));
}

/// A sign-in by an identify event makes the session's visitor the signed-in one for the
/// exact (trail-based) counts: the same person in two sessions is one visitor.
#[test]
fn an_identify_signs_the_session_in() {
    let t = DAY0 + 10 * HOUR;
    let engine = engine_with(&[
        json!({"type": "page_view", "timestamp": at(t), "anonymous_id": "a1", "session_id": "s1",
               "page": {"path": "/"}}),
        json!({"type": "identify", "timestamp": at(t + MIN), "user_id": "u1",
               "anonymous_id": "a1", "session_id": "s1"}),
        page_view(t + 2 * MIN, "u1", "s2", "/", "US"),
    ]);
    let mut hourly = spec(&[Metric::Visitors, Metric::Sessions], t - HOUR, t + HOUR);
    hourly.granularity = Some(Granularity::Hour);
    let totals = engine.query(&hourly).unwrap().totals;
    assert_eq!(
        (totals["visitors"].clone(), totals["sessions"].clone()),
        (Value::Count(1), Value::Count(2))
    );
}

/// A sign-in counts under its session's source like any event naming none: counted under
/// none, every session someone signed in to was a second, unconverted session there.
#[test]
fn a_sign_in_counts_under_its_sessions_source() {
    let t = DAY0 + 10 * HOUR;
    let line = json!([{"id": "p1", "price": "10.00", "quantity": 1}]);
    let mut buy = purchase(t + 2 * MIN, "o1", "default", line, json!({}));
    buy["session_id"] = json!("s");
    let engine = engine_with(&[
        json!({"type": "page_view", "timestamp": at(t), "anonymous_id": "a", "session_id": "s",
               "page": {"url": "https://shop.test/?utm_source=news"}}),
        json!({"type": "identify", "timestamp": at(t + MIN), "user_id": "buyer",
               "anonymous_id": "a", "session_id": "s"}),
        buy,
    ]);
    let mut query = spec(&[Metric::Events, Metric::Sessions], DAY0, DAY0 + DAY);
    query.group_by = Some(Dimension::Source);
    let result = engine.query(&query).unwrap();
    let groups: Vec<(Option<String>, Value, Value)> = result
        .groups()
        .iter()
        .map(|group| {
            (group.key.clone(), group.values["events"].clone(), group.values["sessions"].clone())
        })
        .collect();
    assert_eq!(groups, [(Some("news".to_owned()), Value::Count(3), Value::Count(1))]);
}

/// The session's source is part of the state a restart keeps: a purchase after it still
/// counts under the campaign the session landed from before it.
#[test]
fn a_sessions_source_survives_a_snapshot() {
    use storepulse_engine::snapshot;
    let t = DAY0 + 10 * HOUR;
    let engine = engine_with(&[json!({"type": "page_view", "timestamp": at(t), "user_id": "u",
        "session_id": "s", "page": {"url": "https://shop.test/?utm_source=news"}})]);
    let mut bytes = Vec::new();
    snapshot::encode(&engine, &mut bytes).unwrap();
    let mut restored = snapshot::decode(&bytes).unwrap();
    let line = json!([{"id": "p1", "price": "40.00", "quantity": 1}]);
    restored.apply(&event(purchase(t + MIN, "o1", "default", line, json!({}))));
    let mut query = spec(&[Metric::Orders], DAY0, DAY0 + DAY);
    query.filters.source = Some("news".into());
    assert_eq!(restored.query(&query).unwrap().totals["orders"], Value::Count(1));
}

#[test]
fn series_by_day_hour_and_week_and_the_trend_direction() {
    let mut events = Vec::new();
    // Day d has d+1 page views, days 0..=6.
    for day in 0..7 {
        for n in 0..=day {
            events.push(page_view(DAY0 + day * DAY + n * MIN, "u", "s", "/", "US"));
        }
    }
    let engine = engine_with(&events);
    let mut query = spec(&[Metric::PageViews], DAY0, DAY0 + 7 * DAY);
    query.granularity = Some(Granularity::Day);
    query.compare = true;
    let result = engine.query(&query).unwrap();
    let counts: Vec<Value> = result.series.iter().map(|p| p.values["page_views"].clone()).collect();
    assert_eq!(counts, (1..=7).map(Value::Count).collect::<Vec<_>>());
    assert_eq!(result.trend["page_views"], Trend::Up);
    assert_eq!(result.series[0].start, "2026-11-02T00:00:00.000Z");

    query.granularity = Some(Granularity::Week);
    let result = engine.query(&query).unwrap();
    assert_eq!(result.series.len(), 1);
    assert_eq!(result.series[0].values["page_views"], Value::Count(28));

    let mut hours = spec(&[Metric::PageViews], DAY0 + 6 * DAY, DAY0 + 6 * DAY + 2 * HOUR);
    hours.granularity = Some(Granularity::Hour);
    let result = engine.query(&hours).unwrap();
    assert_eq!(result.series[0].values["page_views"], Value::Count(7));
    assert_eq!(result.series[1].values["page_views"], Value::Count(0));

    // A range that starts mid-day is covered exactly by hours and minutes at its edges.
    let partial = spec(&[Metric::PageViews], DAY0 + 6 * DAY + 3 * MIN, DAY0 + 6 * DAY + 5 * MIN);
    assert_eq!(engine.query(&partial).unwrap().totals["page_views"], Value::Count(2));

    // Without a granularity, a metric's trend does not depend on the metrics asked beside it:
    // sessions make the implicit series daily (one point today), page views keep their own
    // finer one (1 view in the first three minutes, 3 in the next three).
    let t = DAY0 + 9 * DAY;
    let engine = engine_with(&[
        page_view(t, "u", "s", "/", "US"),
        page_view(t + 4 * MIN, "u", "s", "/", "US"),
        page_view(t + 4 * MIN, "v", "s2", "/", "US"),
        page_view(t + 5 * MIN, "v", "s2", "/", "US"),
    ]);
    let mut today = spec(&[Metric::PageViews], t, t + 6 * MIN);
    today.compare = true;
    assert_eq!(engine.query(&today).unwrap().trend["page_views"], Trend::Up);
    today.metrics.push(Metric::Sessions);
    let result = engine.query(&today).unwrap();
    assert_eq!(result.trend["page_views"], Trend::Up);
    assert_eq!(result.trend["sessions"], Trend::Stable, "one daily point");
}

/// Distinct metrics from the daily sketches count whole days: a range within one day and the
/// equal period before it count the same day, so their growth is unknown (null), not 0 %;
/// the comparison says which days it counted. Ranges over whole days compare as usual.
#[test]
fn a_comparison_within_one_day_does_not_claim_zero_growth_in_sessions() {
    let t = DAY0 + 10 * HOUR;
    let engine = engine_with(&[
        page_view(t - 3 * MIN, "a", "s1", "/", "US"),
        page_view(t + MIN, "b", "s2", "/", "US"),
        page_view(t + 2 * MIN, "c", "s3", "/", "US"),
        page_view(DAY0 + DAY + HOUR, "d", "s4", "/", "US"),
    ]);
    let mut minutes = spec(&[Metric::Sessions, Metric::PageViews], t, t + 4 * MIN);
    minutes.compare = true;
    let result = engine.query(&minutes).unwrap();
    let previous = result.previous.unwrap();
    assert_eq!(previous.growth_percent["sessions"], None);
    assert_eq!(previous.growth_percent["page_views"], Some(100.0), "2 against 1");
    assert_eq!(previous.distinct_covered_from.as_deref(), Some("2026-11-02T00:00:00.000Z"));
    assert_eq!(previous.distinct_covered_to.as_deref(), Some("2026-11-03T00:00:00.000Z"));
    // Day 1 against day 0: whole days apart.
    let mut days = spec(&[Metric::Sessions], DAY0 + DAY, DAY0 + 2 * DAY);
    days.compare = true;
    let previous = engine.query(&days).unwrap().previous.unwrap();
    assert_eq!(previous.growth_percent["sessions"], Some(-66.67));
}

#[test]
fn bad_queries_name_the_parameter() {
    let engine = commerce_fixture();
    let error = engine.query(&spec(&[], DAY0, DAY0 + DAY)).unwrap_err();
    assert_eq!(error.parameter, "metrics");
    let error = engine.query(&spec(&[Metric::Orders], DAY0 + DAY, DAY0)).unwrap_err();
    assert_eq!(error.parameter, "to");
    let mut too_fine = spec(&[Metric::Orders], DAY0, DAY0 + 30 * DAY);
    too_fine.granularity = Some(Granularity::Minute);
    assert_eq!(engine.query(&too_fine).unwrap_err().parameter, "granularity");
    let mut zero = spec(&[Metric::Orders], DAY0, DAY0 + DAY);
    zero.limit = 0;
    assert_eq!(engine.query(&zero).unwrap_err().parameter, "limit");
    // A range too long even in months names `from` and says so, without a granularity to
    // coarsen.
    let ages = spec(&[Metric::Orders], -62_135_596_800_000, DAY0);
    let error = engine.query(&ages).unwrap_err();
    assert_eq!(error.parameter, "from");
    assert!(error.message.contains("months"), "{}", error.message);
    // Page views and promotion clicks name no product: by product they are refused, not 0.
    for metric in [Metric::Events, Metric::PageViews, Metric::PromotionClicks] {
        let mut by_product = spec(&[Metric::Orders, metric], DAY0, DAY0 + DAY);
        by_product.group_by = Some(Dimension::Product);
        let error = engine.query(&by_product).unwrap_err();
        assert_eq!(error.parameter, "metrics");
        assert!(error.message.starts_with(metric.name()), "{}", error.message);
        let mut in_category = spec(&[metric], DAY0, DAY0 + DAY);
        in_category.filters.category = Some("Apparel".into());
        assert_eq!(engine.query(&in_category).unwrap_err().parameter, "metrics");
    }
}

#[test]
fn promotion_buys_count_records_and_units_in_a_trailing_window() {
    let engine = commerce_fixture();
    // Only o1 carried a promotion: 3 units at DAY0 + DAY + HOUR.
    let stats = engine.buy_stats(Timestamp(DAY0 + DAY));
    assert_eq!((stats.total.records, stats.total.units), (1, 3));
    assert_eq!((stats.recent.records, stats.recent.units), (1, 3));
    let stats = engine.buy_stats(Timestamp(DAY0 + DAY + 2 * HOUR));
    assert_eq!((stats.recent.records, stats.recent.units), (0, 0));
}

#[test]
fn device_filters_and_groups_use_the_device_type() {
    let engine = engine_with(&[
        page_view(DAY0, "u1", "s1", "/", "US"),
        json!({"type": "page_view", "timestamp": at(DAY0), "page": {"path": "/"}, "device": {"type": "desktop"}}),
    ]);
    let mut query = spec(&[Metric::PageViews], DAY0, DAY0 + DAY);
    query.group_by = Some(Dimension::Device);
    let result = engine.query(&query).unwrap();
    assert_eq!(result.groups().len(), 2);
    query.group_by = None;
    query.filters.device = Some(DeviceType::Desktop);
    assert_eq!(engine.query(&query).unwrap().totals["page_views"], Value::Count(1));
}

/// Category trend sums are 128-bit: 10,000 orders of the largest accepted amount (10^15
/// minor units) in one category and country overflowed the 64-bit sum (a panic in a debug
/// build, a wrapped negative revenue in a release one).
#[test]
fn category_trends_sum_revenue_beyond_64_bits() {
    let now = DAY0 + 40 * DAY;
    let events: Vec<serde_json::Value> = (0..10_000i64)
        .map(|n| {
            let product = if n % 2 == 0 { "atlas" } else { "globe" };
            let line = json!({"id": product, "category": "Books", "price": "10000000000000.00"});
            json!({"type": "purchase", "timestamp": at(now - 2 * HOUR + n * 600), "user_id": "b",
                   "country": "US", "order": {"id": format!("big-{n}")}, "items": [line]})
        })
        .collect();
    let engine = engine_with(&events);
    let rows = engine.category_trend_rows(Timestamp(now), Currency::USD, &TrendSettings::default());
    let books = rows.iter().find(|row| row.category_level_1 == "Books").unwrap();
    assert_eq!(books.revenue_week, Some(1e17));
}

fn product_event(
    kind: &str,
    time: i64,
    visitor: &str,
    product: &str,
    category: &str,
    country: &str,
) -> serde_json::Value {
    let line = json!({"id": product, "category": category, "price": "10.00"});
    match kind {
        "purchase" => {
            json!({"type": "purchase", "timestamp": at(time), "user_id": visitor, "country": country,
                             "order": {"id": format!("o-{visitor}-{product}-{time}")}, "items": [line]})
        }
        other => {
            json!({"type": other, "timestamp": at(time), "user_id": visitor, "country": country, "product": line})
        }
    }
}

#[test]
fn trending_scores_decay_with_age_and_follow_the_weights() {
    use storepulse_engine::trending::TrendingWeights;
    let now = DAY0 + 10 * DAY;
    let mut events = Vec::new();
    for n in 0..10 {
        events.push(product_event(
            "product_view",
            now - HOUR,
            &format!("v{n}"),
            "A",
            "Shoes",
            "US",
        ));
        events.push(product_event(
            "product_view",
            now - 48 * HOUR,
            &format!("w{n}"),
            "C",
            "Shoes",
            "DE",
        ));
    }
    for n in 0..3 {
        events.push(product_event("purchase", now - HOUR, &format!("b{n}"), "B", "Lamps", "US"));
    }
    let engine = engine_with(&events);
    let defaults = TrendingWeights::default();
    let ranked = engine.trending(Timestamp(now), &defaults, &Filters::default(), 10);
    let ids: Vec<&str> = ranked.iter().map(|p| p.product_id.as_str()).collect();
    assert_eq!(ids, ["A", "B", "C"]);
    let close = |actual: f64, expected: f64| (actual - expected).abs() / expected < 0.015;
    assert!(close(ranked[0].score, 10.0 * (-1.0f64 / 24.0).exp2()), "{}", ranked[0].score);
    assert!(close(ranked[1].score, 9.0 * (-1.0f64 / 24.0).exp2()), "{}", ranked[1].score);
    assert!(close(ranked[2].score, 10.0 * 0.25), "{}", ranked[2].score);

    let purchases_count_more = TrendingWeights { purchase: 5.0, ..defaults };
    let ranked = engine.trending(Timestamp(now), &purchases_count_more, &Filters::default(), 2);
    assert_eq!(ranked.iter().map(|p| p.product_id.as_str()).collect::<Vec<_>>(), ["B", "A"]);

    let germany = Filters { country: Some("DE".into()), ..Filters::default() };
    let ranked = engine.trending(Timestamp(now), &defaults, &germany, 10);
    assert_eq!(ranked.iter().map(|p| p.product_id.as_str()).collect::<Vec<_>>(), ["C"]);
    let lamps = Filters { category: Some("Lamps".into()), ..Filters::default() };
    assert_eq!(engine.trending(Timestamp(now), &defaults, &lamps, 10)[0].product_id, "B");
}

/// Trending reads minutes where they are kept: read by the hour, a view at 05:00 and one at
/// 05:59 scored alike (the hour's middle), so the older ranked first on a tie, and with a
/// one-hour half-life a view 30 minutes old scored 17 % low.
#[test]
fn trending_ranks_recency_within_an_hour() {
    use storepulse_engine::trending::TrendingWeights;
    let now = DAY0 + 10 * DAY + 6 * HOUR + 30 * MIN;
    let mut engine = engine_with(&[
        product_event("product_view", now - 90 * MIN + 10_000, "u", "a-older", "Shoes", "US"),
        product_event("product_view", now - 30 * MIN - 10_000, "v", "b-newer", "Shoes", "US"),
        // A later event folds that hour's minutes into it, as time moving on does.
        page_view(now - MIN, "w", "s", "/", "US"),
    ]);
    engine.prune(Timestamp(now));
    let hourly = TrendingWeights { half_life_hours: 1.0, ..TrendingWeights::default() };
    let ranked = engine.trending(Timestamp(now), &hourly, &Filters::default(), 10);
    let ids: Vec<&str> = ranked.iter().map(|p| p.product_id.as_str()).collect();
    assert_eq!(ids, ["b-newer", "a-older"]);
    // Aged from the middle of its minute (05:59:30 and 05:00:30).
    let expected = |age_minutes: f64| (-(age_minutes) / 60.0).exp2();
    let close = |actual: f64, expected: f64| (actual - expected).abs() / expected < 0.001;
    assert!(close(ranked[0].score, expected(30.5)), "{}", ranked[0].score);
    assert!(close(ranked[1].score, expected(89.5)), "{}", ranked[1].score);
}

/// A registry written before weights were bounded may hold weights whose scores overflow:
/// JSON has no infinity, and such a score was served as `null`.
#[test]
fn trending_scores_are_always_finite_numbers() {
    use storepulse_engine::trending::TrendingWeights;
    let now = DAY0 + 10 * DAY;
    let events: Vec<_> = (0..3)
        .map(|n| product_event("purchase", now - HOUR, &format!("b{n}"), "B", "Lamps", "US"))
        .collect();
    let engine = engine_with(&events);
    let huge = TrendingWeights { purchase: f64::MAX, view: f64::MAX, ..TrendingWeights::default() };
    let ranked = engine.trending(Timestamp(now), &huge, &Filters::default(), 10);
    assert_eq!(ranked.len(), 1);
    assert!(ranked[0].score.is_finite(), "{}", ranked[0].score);
    assert!(serde_json::to_value(&ranked[0]).unwrap()["score"].is_number());
}

#[test]
fn recommendations_come_from_what_visitors_met_together() {
    let t = DAY0;
    let engine = engine_with(&[
        product_event("product_view", t, "a", "tent", "Outdoor", "US"),
        product_event("add_to_cart", t, "a", "stove", "Outdoor", "US"),
        product_event("product_view", t, "b", "tent", "Outdoor", "US"),
        product_event("purchase", t, "b", "mat", "Outdoor", "US"),
        product_event("product_view", t, "c", "tent", "Outdoor", "US"),
        product_event("product_view", t, "c", "mat", "Outdoor", "US"),
    ]);
    let together = engine.together_with_product("tent", None, 5).unwrap();
    let pairs: Vec<(&str, f64)> =
        together.iter().map(|p| (p.product_id.as_str(), p.score)).collect();
    assert_eq!(pairs, [("mat", 2.0), ("stove", 1.0)]);
    let now = Timestamp(t + HOUR);
    let for_a = engine.recommend_for_visitor("a", None, now, 5).unwrap();
    assert_eq!(for_a.iter().map(|p| p.product_id.as_str()).collect::<Vec<_>>(), ["mat"]);
    assert!(engine.recommend_for_visitor("stranger", None, now, 5).is_none());
    assert!(engine.together_with_product("unknown", None, 5).is_none());
    // A visitor without events for the co-occurrence window (30 days) is forgotten, whether or
    // not housekeeping has dropped its set yet (events backfilled from long ago answered until
    // the next pass or restart, then did not); the pairs it made still count.
    let later = Timestamp(t + 31 * DAY);
    assert!(engine.recommend_for_visitor("a", None, later, 5).is_none());
    assert_eq!(engine.together_with_product("tent", None, 5).unwrap().len(), 2);
}

/// Stores are tenants: shop B's visitors are never recommended shop A's products, even when
/// both shops use a product id, and a user id in two shops is two visitors.
#[test]
fn recommendations_for_a_store_stay_in_that_store() {
    let view = |store: &str, user: &str, product: &str| {
        let mut value = product_event("product_view", DAY0, user, product, "Any", "US");
        value["store"] = json!(store);
        value
    };
    let engine = engine_with(&[
        view("shop-a", "ann", "a-secret"),
        view("shop-a", "ann", "shared"),
        view("shop-b", "bob", "shared"),
        view("shop-b", "ann", "b-only"),
    ]);
    let names = |products: Option<Vec<storepulse_engine::engine::ScoredProduct>>| {
        products.unwrap().into_iter().map(|p| p.product_id).collect::<Vec<_>>()
    };
    assert!(
        names(engine.recommend_for_visitor("bob", Some("shop-b"), Timestamp(DAY0), 5)).is_empty()
    );
    assert!(names(engine.together_with_product("shared", Some("shop-b"), 5)).is_empty());
    assert_eq!(names(engine.together_with_product("shared", Some("shop-a"), 5)), ["a-secret"]);
    // Ann in shop B met only b-only: nothing of shop A's is "already seen" or recommended.
    assert!(
        names(engine.recommend_for_visitor("ann", Some("shop-b"), Timestamp(DAY0), 5)).is_empty()
    );
    // Across every store (no store asked), as before.
    assert_eq!(names(engine.recommend_for_visitor("bob", None, Timestamp(DAY0), 5)), ["a-secret"]);
    assert!(engine.recommend_for_visitor("bob", Some("shop-a"), Timestamp(DAY0), 5).is_none());
    assert!(
        engine.recommend_for_visitor("bob", Some("no-such-shop"), Timestamp(DAY0), 5).is_none()
    );
}

/// Where minutes are no longer kept, a range is read from the start of the hour holding its
/// `from` (`covered_from`), and the period before it was read up to its nominal end, `from`,
/// so from the start of that same hour too: an order in that hour counted in both periods
/// (two orders looked like three, growth 200 % instead of 100 %), in `compare` and in the
/// category trends alike. The period before now ends where the current one's buckets start.
#[test]
fn a_period_and_the_one_before_never_count_one_bucket_twice() {
    // Mid-hour, so that the hour holding `now - 7 days` starts half an hour before it.
    let now = DAY0 + 40 * DAY + 30 * MIN + 17_000;
    let sale = |time: i64, id: &str, price: &str| {
        json!({"type": "purchase", "timestamp": at(time), "country": "US", "order": {"id": id},
               "items": [{"id": "book", "category": "Books", "price": price}]})
    };
    let mut engine = engine_with(&[
        sale(now - 3 * DAY, "a", "100.00"),
        // In the hour holding `now - 7 days`, twenty minutes before it.
        sale(now - 7 * DAY - 20 * MIN, "b", "50.00"),
        sale(now - 10 * DAY, "c", "60.00"),
    ]);
    engine.prune(Timestamp(now));
    let mut query = spec(&[Metric::GrossRevenue, Metric::Orders], now - 7 * DAY, now);
    query.compare = true;
    let result = engine.query(&query).unwrap();
    let hour_start = DAY0 + 33 * DAY;
    assert_eq!(result.covered_from, Timestamp(hour_start).to_rfc3339());
    assert_eq!(result.totals["orders"], Value::Count(2), "a, and b in the hour covered");
    let previous = result.previous.unwrap();
    assert_eq!(previous.covered_to, result.covered_from);
    assert_eq!(previous.totals["orders"], Value::Count(1), "c only: b is not counted again");
    assert_eq!(previous.totals["gross_revenue"], money("60.00"));
    assert_eq!(previous.growth_percent["orders"], Some(100.0));
    // As long as the current period's covered span to the nearest edge of the buckets kept
    // (here hours), ending where it starts.
    let span = |from: &str, to: &str| {
        let time = |text: &str| storepulse_model::time::parse_timestamp_text(text).unwrap().0;
        time(to) - time(from)
    };
    let lengths = (
        span(&previous.covered_from, &previous.covered_to),
        span(&result.covered_from, &result.covered_to),
    );
    assert!(lengths.0.abs_diff(lengths.1) <= (HOUR / 2) as u64, "{lengths:?}");

    let rows = engine.category_trend_rows(Timestamp(now), Currency::USD, &TrendSettings::default());
    let books = rows.iter().find(|row| row.category_level_1 == "Books").unwrap();
    assert_eq!(books.revenue_week, Some(150.0));
    assert_eq!(books.revenue_weekly_change, Some(1.5), "150 against 60, not against 110");

    // Trending reads days before the last week and hours within it: the hour holding the
    // week's start was read by both.
    use storepulse_engine::trending::TrendingWeights;
    let mut engine = engine_with(&[product_event(
        "product_view",
        now - 7 * DAY - 20 * MIN,
        "v",
        "old",
        "Books",
        "US",
    )]);
    engine.prune(Timestamp(now));
    let weights = TrendingWeights::default();
    let ranked = engine.trending(Timestamp(now), &weights, &Filters::default(), 10);
    let age = (now - (hour_start + 30 * MIN)) as f64;
    let expected = (-age / weights.half_life_ms()).exp2();
    assert!((ranked[0].score - expected).abs() < 1e-4, "{} vs {expected}", ranked[0].score);
}

#[test]
fn category_trends_compare_each_period_with_the_one_before() {
    use storepulse_engine::category_trends::{TrendFilter, rank};
    let now = DAY0 + 40 * DAY;
    let sale = |time: i64, id: &str, category: &str, country: &str, price: &str| {
        json!({"type": "purchase", "timestamp": at(time), "country": country,
               "order": {"id": format!("{id}-{time}")},
               "items": [{"id": id, "category": category, "price": price}]})
    };
    let engine = engine_with(&[
        // Shoes, US: today 30, yesterday 20; this week 30+20+50, last week 40; last 30 days 100+40, before 70.
        sale(now - HOUR, "s1", "Apparel > Shoes > Running", "US", "30.00"),
        sale(now - DAY - HOUR, "s1", "Apparel > Shoes > Running", "US", "20.00"),
        sale(now - 3 * DAY, "s2", "Apparel > Shoes > Trail", "US", "50.00"),
        sale(now - 10 * DAY, "s2", "Apparel > Shoes > Trail", "US", "40.00"),
        sale(now - 35 * DAY, "s2", "Apparel > Shoes > Trail", "US", "70.00"),
        // Lamps, DE: falling.
        sale(now - 2 * DAY, "l1", "Home > Lighting", "DE", "10.00"),
        sale(now - 9 * DAY, "l1", "Home > Lighting", "DE", "40.00"),
    ]);
    let rows = engine.category_trend_rows(Timestamp(now), Currency::USD, &TrendSettings::default());
    let find = |l1: &str, l2: Option<&str>, l3: Option<&str>| {
        rows.iter()
            .find(|r| {
                r.category_level_1 == l1
                    && r.category_level_2.as_deref() == l2
                    && r.category_level_3.as_deref() == l3
            })
            .unwrap()
            .clone()
    };
    let apparel = find("Apparel", None, None);
    assert_eq!(apparel.country, "US");
    assert_eq!(apparel.revenue_daily_change, Some(0.5));
    assert_eq!(apparel.revenue_weekly_change, Some(1.5));
    assert_eq!(apparel.revenue_monthly_change, Some(1.0));
    assert_eq!(apparel.revenue_week, Some(100.0));
    let running = find("Apparel", Some("Shoes"), Some("Running"));
    assert_eq!(running.revenue_daily_change, Some(0.5));
    assert_eq!(running.revenue_weekly_change, None, "nothing the week before");
    let lighting = find("Home", Some("Lighting"), None);
    assert_eq!(lighting.revenue_weekly_change, Some(-0.75));

    let ranking = rank(
        &rows,
        &TrendSettings::default(),
        &TrendFilter { level: Some(1), ..TrendFilter::default() },
        10,
    );
    assert_eq!(
        ranking.gainers.iter().map(|r| r.category_level_1.as_str()).collect::<Vec<_>>(),
        ["Apparel"]
    );
    assert_eq!(
        ranking.losers.iter().map(|r| r.category_level_1.as_str()).collect::<Vec<_>>(),
        ["Home"]
    );
}

/// An excluded category's revenue still counted in its parents' rows: excluding
/// `Gifts > Religious & Ceremonial` dropped its own rows from the ranking while `Gifts` rose
/// with its sales all the same.
#[test]
fn excluded_categories_add_nothing_to_their_parents_rows() {
    use storepulse_engine::category_trends::{TrendFilter, rank};
    let now = DAY0 + 40 * DAY;
    let sale = |time: i64, id: &str, category: &str, price: &str| {
        json!({"type": "purchase", "timestamp": at(time), "country": "US",
               "order": {"id": format!("{id}-{time}")},
               "items": [{"id": id, "category": category, "price": price}]})
    };
    let engine = engine_with(&[
        // Cards: 100 this week, 100 the week before (flat).
        sale(now - 2 * DAY, "card", "Gifts > Cards", "100.00"),
        sale(now - 9 * DAY, "card", "Gifts > Cards", "100.00"),
        // Candles, excluded (any case): 900 this week, 100 the week before.
        sale(now - 2 * DAY, "candle", "Gifts > RELIGIOUS & CEREMONIAL > Candles", "900.00"),
        sale(now - 9 * DAY, "candle", "Gifts > RELIGIOUS & CEREMONIAL > Candles", "100.00"),
    ]);
    let settings = TrendSettings::default();
    let rows = engine.category_trend_rows(Timestamp(now), Currency::USD, &settings);
    let gifts = rows.iter().find(|row| row.level() == 1).unwrap();
    assert_eq!(gifts.category_level_1, "Gifts");
    assert_eq!(gifts.revenue_week, Some(100.0), "the cards only");
    assert_eq!(gifts.revenue_weekly_change, Some(0.0));
    // The excluded category's own rows (and below) are still data, never ranked.
    let excluded = rows
        .iter()
        .filter(|row| row.category_level_2.as_deref() == Some("RELIGIOUS & CEREMONIAL"))
        .count();
    assert_eq!(excluded, 2);
    let ranking = rank(&rows, &settings, &TrendFilter::default(), 10);
    assert!(ranking.gainers.is_empty() && ranking.losers.is_empty(), "{ranking:?}");

    // Without the exclusion, Gifts has both: 1000 against 200.
    let none = TrendSettings { excluded_categories: Vec::new(), ..TrendSettings::default() };
    let rows = engine.category_trend_rows(Timestamp(now), Currency::USD, &none);
    let gifts = rows.iter().find(|row| row.level() == 1).unwrap();
    assert_eq!(gifts.revenue_week, Some(1000.0));
    assert_eq!(gifts.revenue_weekly_change, Some(4.0));
}

/// Abandoned carts are |carted| − (|carted| + |bought| − |carted ∪ bought|): asked alone,
/// the query must still read all three sketches. A session that bought without carting
/// tells a missing union apart.
#[test]
fn abandoned_carts_asked_alone_subtract_only_carted_sessions_that_bought() {
    let day = DAY0 + 3 * DAY;
    let event = |kind: &str, session: &str, time: i64| {
        json!({"type": kind, "timestamp": at(time), "session_id": session, "user_id": session,
               "order": {"id": format!("o-{session}")}, "product": {"id": "p", "price": 10},
               "items": [{"id": "p", "price": 10}]})
    };
    let engine = engine_with(&[
        event("add_to_cart", "carted-and-bought", day + HOUR),
        event("purchase", "carted-and-bought", day + 2 * HOUR),
        event("add_to_cart", "carted-only", day + HOUR),
        event("purchase", "bought-only", day + HOUR),
    ]);
    let abandoned = engine.query(&spec(&[Metric::AbandonedCarts], day, day + DAY)).unwrap();
    assert_eq!(abandoned.totals["abandoned_carts"], Value::Count(1));
    let rate = engine.query(&spec(&[Metric::CartAbandonmentRate], day, day + DAY)).unwrap();
    assert_eq!(rate.totals["cart_abandonment_rate"], Value::Ratio(Some(0.5)));
}

#[test]
fn conversion_abandonment_and_distinct_visitors_by_day() {
    let day = DAY0 + 3 * DAY;
    let view = |session: &str, user: &str, country: &str, time: i64| {
        json!({"type": "page_view", "timestamp": at(time), "session_id": session, "user_id": user,
               "country": country, "page": {"path": "/"}})
    };
    let cart = |session: &str, user: &str, time: i64| {
        json!({"type": "add_to_cart", "timestamp": at(time), "session_id": session, "user_id": user,
               "country": "US", "product": {"id": "p", "price": 10}})
    };
    let buy = |session: &str, user: &str, time: i64| {
        json!({"type": "purchase", "timestamp": at(time), "session_id": session, "user_id": user,
               "country": "US", "order": {"id": format!("o-{session}")}, "items": [{"id": "p", "price": 10}],
               "promotion": {"id": "SPRING"}})
    };
    let mut engine = engine_with(&[
        view("s1", "u1", "US", day + HOUR),
        cart("s1", "u1", day + HOUR),
        buy("s1", "u1", day + 2 * HOUR),
        view("s2", "u2", "US", day + HOUR),
        cart("s2", "u2", day + HOUR),
        view("s3", "u2", "DE", day + 3 * HOUR),
        view("s4", "u3", "DE", day + DAY + HOUR),
    ]);
    let metrics = [
        Metric::Visitors,
        Metric::Sessions,
        Metric::ConversionRate,
        Metric::CartSessions,
        Metric::AbandonedCarts,
        Metric::CartAbandonmentRate,
        Metric::UniqueBuyers,
        Metric::AbandonedCartValue,
    ];
    let mut query = spec(&metrics, day, day + DAY);
    query.compare = true;
    let result = engine.query(&query).unwrap();
    let expected: BTreeMap<&str, Value> = [
        ("visitors", Value::Count(2)),
        ("sessions", Value::Count(3)),
        ("conversion_rate", Value::Ratio(Some(0.3333))),
        ("cart_sessions", Value::Count(2)),
        ("abandoned_carts", Value::Count(1)),
        ("cart_abandonment_rate", Value::Ratio(Some(0.5))),
        ("unique_buyers", Value::Count(1)),
        ("abandoned_cart_value", money("10.00")),
    ]
    .into_iter()
    .collect();
    assert_eq!(result.totals, expected);
    // A query merges only the sketches its metrics read: each asked alone answers the same.
    for metric in metrics {
        let alone = engine.query(&spec(&[metric], day, day + DAY)).unwrap();
        let (name, value) = alone.totals.iter().next().unwrap();
        assert_eq!(Some(value), expected.get(name), "{name} asked alone");
    }

    let mut two_days = spec(&[Metric::Visitors, Metric::Sessions], day, day + 2 * DAY);
    two_days.granularity = Some(Granularity::Day);
    two_days.group_by = Some(Dimension::Country);
    let result = engine.query(&two_days).unwrap();
    assert_eq!(result.totals["visitors"], Value::Count(3));
    assert_eq!(result.series[1].values["sessions"], Value::Count(1));
    let de = result.groups().iter().find(|g| g.key.as_deref() == Some("DE")).unwrap();
    assert_eq!(de.values["visitors"], Value::Count(2), "u2 and u3");

    let mut by_promotion = spec(&[Metric::UniqueBuyers], day, day + DAY);
    by_promotion.filters.promotion = Some("SPRING".into());
    assert_eq!(engine.query(&by_promotion).unwrap().totals["unique_buyers"], Value::Count(1));

    // Below a day and by product, session metrics are counted exactly from session trails.
    let sessions_and_carts =
        [Metric::Sessions, Metric::ConversionRate, Metric::CartSessions, Metric::AbandonedCarts];
    let mut hourly = spec(&sessions_and_carts, day, day + DAY);
    hourly.granularity = Some(Granularity::Hour);
    let result = engine.query(&hourly).unwrap();
    assert_eq!(result.totals["sessions"], Value::Count(3), "as the daily sketches say");
    let hour = |n: usize, metric: &str| result.series[n].values[metric].clone();
    assert_eq!(hour(1, "sessions"), Value::Count(2), "s1 and s2");
    assert_eq!(hour(1, "conversion_rate"), Value::Ratio(Some(0.0)));
    assert_eq!(hour(1, "abandoned_carts"), Value::Count(2), "nobody bought in that hour");
    assert_eq!(hour(2, "sessions"), Value::Count(1));
    assert_eq!(hour(2, "conversion_rate"), Value::Ratio(Some(1.0)));
    assert_eq!(hour(3, "sessions"), Value::Count(1), "s3");
    assert_eq!(hour(4, "sessions"), Value::Count(0));
    let mut visitors_hourly = spec(&[Metric::Visitors, Metric::UniqueBuyers], day, day + DAY);
    visitors_hourly.granularity = Some(Granularity::Hour);
    let result = engine.query(&visitors_hourly).unwrap();
    assert_eq!(result.totals["visitors"], Value::Count(2), "u2's two sessions count once");
    assert_eq!(result.totals["unique_buyers"], Value::Count(1));
    let hour = |n: usize, metric: &str| result.series[n].values[metric].clone();
    assert_eq!((hour(1, "visitors"), hour(1, "unique_buyers")), (Value::Count(2), Value::Count(0)));
    assert_eq!((hour(2, "visitors"), hour(2, "unique_buyers")), (Value::Count(1), Value::Count(1)));
    assert_eq!(hour(3, "visitors"), Value::Count(1), "u2 again, in DE");

    let mut per_product = spec(
        &[sessions_and_carts.as_slice(), &[Metric::CartAbandonmentRate, Metric::Units]].concat(),
        day,
        day + DAY,
    );
    per_product.group_by = Some(Dimension::Product);
    let result = engine.query(&per_product).unwrap();
    let expected: BTreeMap<&str, Value> = [
        ("sessions", Value::Count(2)),
        ("conversion_rate", Value::Ratio(Some(0.5))),
        ("cart_sessions", Value::Count(2)),
        ("abandoned_carts", Value::Count(1)),
        ("cart_abandonment_rate", Value::Ratio(Some(0.5))),
        ("units", Value::Count(1)),
    ]
    .into_iter()
    .collect();
    assert_eq!(result.groups()[0].key.as_deref(), Some("p"));
    assert_eq!(result.groups()[0].values, expected, "s1 carted and bought p, s2 only carted it");
    // The totals are the query's without `group_by`: every session, not only those that met
    // a product (they were, and a grouped answer's totals then differed from the ungrouped).
    let mut ungrouped = per_product.clone();
    ungrouped.group_by = None;
    assert_eq!(result.totals, engine.query(&ungrouped).unwrap().totals);
    assert_eq!(result.totals["sessions"], Value::Count(3));
    let mut product_visitors = per_product.clone();
    product_visitors.metrics = vec![Metric::Visitors, Metric::UniqueBuyers];
    let result = engine.query(&product_visitors).unwrap();
    assert_eq!(result.groups()[0].values["visitors"], Value::Count(2), "u1 and u2 met p");
    assert_eq!(result.groups()[0].values["unique_buyers"], Value::Count(1));
    let mut product_by_country = per_product.clone();
    product_by_country.group_by = Some(Dimension::Country);
    product_by_country.filters.product = Some("p".into());
    let result = engine.query(&product_by_country).unwrap();
    assert_eq!(result.groups().len(), 1, "{:?}", result.groups());
    assert_eq!(result.groups()[0].key.as_deref(), Some("US"));
    assert_eq!(result.groups()[0].values["conversion_rate"], Value::Ratio(Some(0.5)));

    // Pruning as of the last event drops nothing here, but from now on the trails are only
    // known to be whole from 30 days before it.
    engine.prune_history(Timestamp(day + DAY + HOUR));
    let mut carts_by_day = spec(&[Metric::AbandonedCartValue], day - 30 * DAY, day + DAY);
    assert_eq!(engine.query(&carts_by_day).unwrap_err().parameter, "from");
    carts_by_day.from = Timestamp(day - 20 * DAY);
    assert_eq!(engine.query(&carts_by_day).unwrap().totals["abandoned_cart_value"], money("10.00"));
    carts_by_day.compare = true;
    assert_eq!(engine.query(&carts_by_day).unwrap_err().parameter, "compare");

    // What the trails cannot answer is refused, naming the parameter.
    let refused = |change: &dyn Fn(&mut QuerySpec)| {
        let mut query = per_product.clone();
        change(&mut query);
        engine.query(&query).unwrap_err().parameter
    };
    assert_eq!(refused(&|q| q.metrics = vec![Metric::AbandonedCartValue]), "metrics");
    assert_eq!(refused(&|q| q.filters.sales_rep = Some("ann".into())), "sales_rep");
    assert_eq!(
        refused(&|q| {
            q.group_by = Some(Dimension::SalesRep);
            q.filters.product = Some("p".into());
        }),
        "group_by"
    );
    assert_eq!(
        refused(&|q| {
            q.group_by = Some(Dimension::Promotion);
            q.filters.product = Some("p".into());
        }),
        "group_by"
    );
    assert_eq!(refused(&|q| q.from = Timestamp(day - 40 * DAY)), "from");
    assert_eq!(
        refused(&|q| {
            q.from = Timestamp(day - 20 * DAY);
            q.compare = true;
        }),
        "compare"
    );
}

#[test]
fn funnels_count_sessions_through_ordered_steps_within_the_window() {
    use storepulse_engine::engine::RealtimeFilter;
    use storepulse_engine::funnel::{FunnelSpec, FunnelSplit};
    let t = DAY0 + 5 * DAY;
    let ev = |kind: &str, session: &str, product: Option<&str>, time: i64| {
        let mut value =
            json!({"type": kind, "timestamp": at(time), "session_id": session, "country": "US"});
        match (kind, product) {
            ("purchase", Some(id)) => {
                value["order"] = json!({"id": format!("o-{session}")});
                value["items"] = json!([{"id": id, "category": "Gear", "price": 1}]);
            }
            (_, Some(id)) => {
                value["product"] =
                    json!({"id": id, "category": if id == "A" { "Gear" } else { "Toys" }})
            }
            _ => {}
        }
        value
    };
    let mut engine = engine_with(&[
        ev("product_view", "s1", Some("A"), t),
        ev("add_to_cart", "s1", Some("A"), t + MIN),
        ev("checkout_started", "s1", None, t + 2 * MIN),
        ev("purchase", "s1", Some("A"), t + 3 * MIN),
        ev("product_view", "s2", Some("A"), t),
        ev("add_to_cart", "s2", Some("B"), t + MIN),
        ev("product_view", "s3", Some("B"), t),
        ev("add_to_cart", "s3", Some("B"), t + 2 * HOUR),
        ev("add_to_cart", "s4", Some("A"), t),
        ev("purchase", "s5", Some("A"), t),
        ev("product_view", "s5", Some("A"), t + MIN),
    ]);
    let spec = FunnelSpec {
        steps: FunnelSpec::default_steps(),
        window_ms: HOUR,
        from_ms: t - HOUR,
        to_ms: t + DAY,
        source: None,
    };
    let sessions = |steps: &storepulse_engine::funnel::FunnelSteps| {
        steps.steps.iter().map(|s| s.sessions).collect::<Vec<_>>()
    };
    let everyone = RealtimeFilter::default();
    let result = engine.funnel(&spec, FunnelSplit::None, &everyone, 10).unwrap();
    assert_eq!(sessions(&result.overall), [4, 2, 1, 1]);
    assert_eq!(result.overall.steps[1].conversion_from_previous, Some(0.5));
    assert_eq!(result.overall.steps[1].drop_off, 2);
    assert_eq!(result.overall.steps[3].conversion_from_start, Some(0.25));

    let by_product = engine.funnel(&spec, FunnelSplit::Product, &everyone, 10).unwrap();
    let groups: Vec<(Option<String>, Vec<u64>)> =
        by_product.groups.iter().map(|g| (g.key.clone(), sessions(&g.funnel))).collect();
    assert_eq!(
        groups,
        [(Some("A".into()), vec![3, 1, 1, 1]), (Some("B".into()), vec![1, 0, 0, 0])]
    );
    let by_category = engine.funnel(&spec, FunnelSplit::Category(1), &everyone, 10).unwrap();
    assert_eq!(by_category.groups[0].key.as_deref(), Some("Gear"));
    // A first step naming no products splits into no groups: refused, not answered empty.
    let from_landing = FunnelSpec {
        steps: FunnelSpec::parse_steps("page_view,purchase").unwrap(),
        ..spec.clone()
    };
    for split in [FunnelSplit::Product, FunnelSplit::Category(1)] {
        let error = engine.funnel(&from_landing, split, &everyone, 10).unwrap_err();
        assert_eq!(error.parameter, "group_by");
    }
    assert!(engine.funnel(&from_landing, FunnelSplit::Country, &everyone, 10).is_ok());

    let later = FunnelSpec { from_ms: t + HOUR, ..spec.clone() };
    assert_eq!(
        sessions(&engine.funnel(&later, FunnelSplit::None, &everyone, 10).unwrap().overall),
        [0, 0, 0, 0]
    );

    // Forty days on, retention (30 days) has dropped these trails: a funnel over their day is
    // refused rather than answered with zeros; one inside what is kept is answered.
    engine.prune_history(Timestamp(t + 40 * DAY));
    let error = engine.funnel(&spec, FunnelSplit::None, &everyone, 10).unwrap_err();
    assert_eq!(error.parameter, "from");
    assert!(error.message.contains(&at(t + 10 * DAY)), "{}", error.message);
    let kept = FunnelSpec { from_ms: t + 10 * DAY, to_ms: t + 40 * DAY, ..spec.clone() };
    assert!(engine.funnel(&kept, FunnelSplit::None, &everyone, 10).is_ok());
}

#[test]
fn a_snapshot_restores_every_figure() {
    use storepulse_engine::snapshot;
    let mut engine = commerce_fixture();
    let now = DAY0 + DAY + 7 * HOUR;
    engine.apply(&event(page_view(now - 60_000, "u1", "s1", "/home", "US")));
    engine.set_log_position(42);
    let mut bytes = Vec::new();
    snapshot::encode(&engine, &mut bytes).unwrap();
    let restored = snapshot::decode(&bytes).unwrap();
    assert_eq!(restored.log_position(), 42);
    let mut query = spec(
        &[Metric::GrossRevenue, Metric::NetRevenue, Metric::Orders, Metric::Sessions],
        DAY0,
        DAY0 + 2 * DAY,
    );
    query.group_by = Some(Dimension::Country);
    query.compare = true;
    let before = serde_json::to_value(engine.query(&query).unwrap()).unwrap();
    let after = serde_json::to_value(restored.query(&query).unwrap()).unwrap();
    assert_eq!(before, after);
    let mut by_category = spec(&[Metric::GrossRevenue, Metric::Units], DAY0, DAY0 + 2 * DAY);
    by_category.group_by = Some(Dimension::Category(2));
    let before = serde_json::to_value(engine.query(&by_category).unwrap()).unwrap();
    assert_eq!(before, serde_json::to_value(restored.query(&by_category).unwrap()).unwrap());
    let live = |e: &Engine| {
        serde_json::to_value(e.realtime(
            Timestamp(now),
            &RealtimeFilter::default(),
            5,
            Currency::USD,
        ))
        .unwrap()
    };
    assert_eq!(live(&engine), live(&restored));
    assert_eq!(engine.buy_stats(Timestamp(0)), restored.buy_stats(Timestamp(0)));

    let mut corrupt = bytes.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    assert!(matches!(snapshot::decode(&corrupt), Err(snapshot::SnapshotError::Corrupt)));
    // Cut anywhere (a section header, a payload) or followed by anything: refused.
    for cut in [20, bytes.len() / 2, bytes.len() - 1] {
        assert!(matches!(snapshot::decode(&bytes[..cut]), Err(snapshot::SnapshotError::Corrupt)));
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(snapshot::decode(&longer), Err(snapshot::SnapshotError::Corrupt)));
    assert!(matches!(snapshot::decode(b"nonsense"), Err(snapshot::SnapshotError::NotASnapshot)));
    bytes[6] = 99;
    assert!(matches!(
        snapshot::decode(&bytes),
        Err(snapshot::SnapshotError::Version { found: 99 })
    ));
}

/// Snapshots are positional (postcard): a state change without a `FORMAT_VERSION` bump would
/// make old snapshots decode into wrong numbers. This keeps one snapshot per format in
/// `tests/fixtures/` and checks it still decodes to the same answers, as do the older formats
/// this build converts on load — also after more events, which is when a state kept under
/// other rules (a day holding part of an hour, then the whole hour again) would count twice.
/// After a deliberate bump, write the new one with
/// `STOREPULSE_WRITE_SNAPSHOT_FIXTURE=1 cargo test -p storepulse-engine`.
#[test]
fn the_snapshots_of_this_and_older_formats_decode_to_the_same_numbers() {
    use storepulse_engine::snapshot;
    let fixture = |version: u8| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("tests/fixtures/engine-snapshot-v{version}.bin"))
    };
    if std::env::var_os("STOREPULSE_WRITE_SNAPSHOT_FIXTURE").is_some() {
        let mut bytes = Vec::new();
        snapshot::encode(&commerce_fixture(), &mut bytes).unwrap();
        std::fs::write(fixture(snapshot::FORMAT_VERSION), bytes).unwrap();
    }
    let mut query = spec(
        &[
            Metric::Orders,
            Metric::GrossRevenue,
            Metric::NetRevenue,
            Metric::Units,
            Metric::Sessions,
            Metric::AverageOrderValue,
        ],
        DAY0,
        DAY0 + 3 * DAY,
    );
    query.group_by = Some(Dimension::Store);
    query.granularity = Some(Granularity::Day);
    // Before format 13 sessions were not kept per store: session "s" of both stores was one
    // session in totals over both stores (2 sessions, now 3); each store's own count is the
    // same under either rule.
    let answer = |e: &Engine, version: u8| {
        let mut answer = serde_json::to_value(e.query(&query).unwrap()).unwrap();
        if version < 13 {
            answer["totals"].as_object_mut().unwrap().remove("sessions");
            for point in answer["series"].as_array_mut().unwrap() {
                point["values"].as_object_mut().unwrap().remove("sessions");
            }
        }
        answer
    };
    assert_eq!(answer(&commerce_fixture(), 13)["totals"]["sessions"], 3);
    // A day later: the fixture's last hour and day are complete and folded.
    let later = event(page_view(DAY0 + 2 * DAY + HOUR, "u9", "s9", "/", "US"));
    for version in snapshot::OLDER_FORMATS_READ.into_iter().chain([snapshot::FORMAT_VERSION]) {
        let path = fixture(version);
        let bytes = std::fs::read(&path).unwrap_or_else(|_| {
            panic!(
                "{} is missing: each format read needs its fixture (see this test's doc)",
                path.display()
            )
        });
        let mut stored = snapshot::decode(&bytes)
            .unwrap_or_else(|error| panic!("format {version}'s fixture decodes: {error}"));
        let mut engine = commerce_fixture();
        assert_eq!(answer(&stored, version), answer(&engine, version), "format {version}");
        assert_eq!(stored.buy_stats(Timestamp(0)), engine.buy_stats(Timestamp(0)));
        // The buyer and its session are active a minute after o4 (GB), and only then.
        let active = |e: &Engine, now: i64, country: &str| {
            let filter = RealtimeFilter { country: Some(country.into()), ..Default::default() };
            let realtime = e.realtime(Timestamp(now), &filter, 5, Currency::USD);
            (realtime.active_users, realtime.active_sessions)
        };
        for (now, country, expected) in [
            (DAY0 + DAY + 4 * HOUR + MIN, "GB", (1, 1)),
            (DAY0 + DAY + 4 * HOUR + MIN, "US", (0, 0)),
            (DAY0 + DAY + 5 * HOUR, "GB", (0, 0)),
        ] {
            assert_eq!(active(&stored, now, country), expected, "format {version} at {now}");
            assert_eq!(active(&engine, now, country), expected);
        }
        // Formats before 15 kept no source per event: their trails (which took each
        // session's landing source) refuse questions by source over the time they cover,
        // naming where the marks start to know it, and answer from there.
        let mut by_source = spec(&[Metric::Sessions], DAY0, DAY0 + 3 * DAY);
        by_source.granularity = Some(Granularity::Hour);
        by_source.filters.source = Some("news".into());
        let mut funnel = storepulse_engine::funnel::FunnelSpec {
            steps: storepulse_engine::funnel::FunnelSpec::default_steps(),
            window_ms: HOUR,
            from_ms: DAY0,
            to_ms: DAY0 + 3 * DAY,
            source: None,
        };
        let by_source_split = storepulse_engine::funnel::FunnelSplit::Source;
        let everyone = RealtimeFilter::default();
        if version < 15 {
            let error = stored.query(&by_source).unwrap_err();
            assert_eq!(error.parameter, "from", "format {version}");
            let error = stored.funnel(&funnel, by_source_split, &everyone, 10).unwrap_err();
            assert_eq!(error.parameter, "from", "format {version}");
            by_source.from = Timestamp(DAY0 + 2 * DAY);
            funnel.from_ms = DAY0 + 2 * DAY;
        }
        assert!(stored.query(&by_source).is_ok(), "format {version}");
        assert!(stored.funnel(&funnel, by_source_split, &everyone, 10).is_ok());
        stored.apply(&later);
        engine.apply(&later);
        assert_eq!(
            answer(&stored, version),
            answer(&engine, version),
            "format {version}, after a later event"
        );
    }
}

/// A range is counted in whole buckets: a response says which span its counts cover, the
/// minutes around `from` and `to` while they are kept, the hour holding `from` once they are not.
#[test]
fn a_query_says_which_span_its_counts_cover() {
    let day = DAY0 + 2 * DAY;
    let mut engine = engine_with(&[
        page_view(day + 10 * HOUR + 5 * MIN, "u1", "s1", "/", "US"),
        page_view(day + 10 * HOUR + 40 * MIN, "u1", "s1", "/", "US"),
        page_view(day + 11 * HOUR + 20 * MIN, "u2", "s2", "/", "US"),
    ]);
    let query = spec(&[Metric::PageViews], day + 10 * HOUR + 30 * MIN + 30_000, day + 12 * HOUR);
    let result = engine.query(&query).unwrap();
    assert_eq!(result.totals["page_views"], Value::Count(2), "10:40 and 11:20");
    assert_eq!(result.covered_from, at(day + 10 * HOUR + 30 * MIN), "the minute of `from`");
    assert_eq!(result.covered_to, at(day + 12 * HOUR));

    // Three days on, the minutes are gone (kept two days): the 10:00 hour counts whole. With
    // no granularity asked the series is hourly rather than refused; minutes are refused.
    engine.prune(Timestamp(day + 3 * DAY));
    let mut by_minute = query.clone();
    by_minute.granularity = Some(Granularity::Minute);
    assert_eq!(engine.query(&by_minute).unwrap_err().parameter, "granularity");
    let result = engine.query(&query).unwrap();
    assert_eq!(result.totals["page_views"], Value::Count(3), "10:05 comes with its hour");
    assert_eq!(result.covered_from, at(day + 10 * HOUR));
    assert_eq!(result.covered_to, at(day + 12 * HOUR));
}

/// Day-scale retention run a part at a time (as the server runs it, one part per housekeeping
/// tick) ends where running it at once ends; from the funnel trails' part on, what the pass is
/// about to drop already counts as dropped, so no query is answered from half-pruned trails
/// and carts.
#[test]
fn retention_in_parts_ends_where_retention_at_once_does() {
    use storepulse_engine::HistoryPart;
    let unpruned = commerce_fixture();
    let mut at_once = commerce_fixture();
    let mut in_parts = commerce_fixture();
    // Past every retention: funnel trails and carts (30 days), remembered orders (180 days).
    let now = Timestamp(DAY0 + 200 * DAY);
    at_once.prune_history(now);
    let stats = |engine: &Engine| serde_json::to_value(engine.stats()).unwrap();
    for part in HistoryPart::ALL {
        let kept_before = in_parts.trails_kept_from();
        in_parts.prune_history_part(now, part);
        match part {
            HistoryPart::Rollups | HistoryPart::CoOccurrence => {
                assert_eq!(in_parts.trails_kept_from(), None, "after {part:?}")
            }
            HistoryPart::FunnelTrails => {
                assert_eq!(kept_before, None);
                assert_eq!(in_parts.trails_kept_from(), at_once.trails_kept_from());
            }
            HistoryPart::Orders => {
                assert_eq!(in_parts.trails_kept_from(), kept_before, "after {part:?}")
            }
        }
    }
    assert!(at_once.trails_kept_from().is_some());
    assert_eq!(stats(&in_parts), stats(&at_once));
    // Each part did its work: the orders, the trails and the buyer's item set are gone.
    let held = |engine: &Engine| {
        let stats = engine.stats();
        // Asked as of the fixture's days, when the set is still kept: held is what pruning
        // left, not what the time to live hides.
        let items = engine.recommend_for_visitor("buyer", None, Timestamp(DAY0), 5).is_some();
        (stats.orders_remembered > 0, stats.session_trails > 0, items)
    };
    assert_eq!(held(&unpruned), (true, true, true));
    assert_eq!(held(&in_parts), (false, false, false));
}

/// A session's cart (kept in its trail) goes retention after its last cart or purchase event,
/// even while the trail stays for the session's later events; the memory report follows.
#[test]
fn a_cart_goes_retention_after_its_last_cart_event_while_its_trail_stays() {
    let cart_add = json!({"type": "add_to_cart", "timestamp": at(DAY0), "user_id": "u1",
                          "session_id": "s1", "product": {"id": "lamp", "price": "10.00"}});
    let mut engine = engine_with(&[cart_add, page_view(DAY0 + 20 * DAY, "u1", "s1", "/", "US")]);
    let held = |engine: &Engine| {
        let stats = engine.stats();
        (stats.session_trails, stats.memory_by_part.cart_values > 0)
    };
    assert_eq!(held(&engine), (1, true));
    engine.prune(Timestamp(DAY0 + 25 * DAY));
    assert_eq!(held(&engine), (1, true), "within retention of the cart add");
    engine.prune(Timestamp(DAY0 + 31 * DAY));
    assert_eq!(held(&engine), (1, false), "the trail stays, the cart goes");
    engine.prune(Timestamp(DAY0 + 51 * DAY));
    assert_eq!(held(&engine), (0, false));
}

/// `session_trails` (in `/health`) counted a visitor's day of orders sent without a session
/// (a back office's) as a session: it counts sessions only, and those trails apart, after a
/// snapshot and after pruning too.
#[test]
fn session_trails_count_sessions_and_sessionless_trails_apart() {
    let lamp = json!([{"id": "lamp", "price": "10.00", "quantity": 1}]);
    let back_office = |time: i64, order: &str, user: &str| {
        json!({"type": "purchase", "timestamp": at(time), "user_id": user,
               "order": {"id": order}, "items": lamp})
    };
    let mut engine = engine_with(&[
        page_view(DAY0 + HOUR, "u1", "s1", "/", "US"),
        page_view(DAY0 + 2 * HOUR, "u1", "s2", "/", "US"),
        back_office(DAY0 + HOUR, "o1", "u7"),
        back_office(DAY0 + 3 * HOUR, "o2", "u7"),
        back_office(DAY0 + 4 * HOUR, "o3", "u8"),
    ]);
    let counts = |engine: &Engine| {
        let stats = engine.stats();
        (stats.session_trails, stats.sessionless_trails)
    };
    assert_eq!(counts(&engine), (2, 2));
    let mut bytes = Vec::new();
    storepulse_engine::snapshot::encode(&engine, &mut bytes).unwrap();
    assert_eq!(counts(&storepulse_engine::snapshot::decode(&bytes).unwrap()), (2, 2));
    engine.apply(&event(back_office(DAY0 + DAY + HOUR, "o4", "u7")));
    assert_eq!(counts(&engine), (2, 3), "a day of its own");
    engine.prune_history(Timestamp(DAY0 + 31 * DAY + 30 * MIN));
    assert_eq!(counts(&engine), (0, 1));
    engine.prune_history(Timestamp(DAY0 + 40 * DAY));
    assert_eq!(counts(&engine), (0, 0));
}

/// A replay of a long log prunes the live windows as it goes (at the newest event time, never
/// past the clock), so that they hold the visitors of a window rather than of the whole log;
/// it must end with the numbers of a replay that pruned once at the end. Three days of
/// visitors who browse, buy and come back, some events late.
#[test]
fn pruning_while_replaying_changes_no_answer() {
    let mut stream = Vec::new();
    for n in 0..600i64 {
        let time = DAY0 + n * 7 * MIN - if n % 9 == 0 { 20 * MIN } else { 0 };
        let (user, session) = (format!("u{}", n % 37), format!("s{}", n % 37 + n / 100 * 100));
        let country = ["US", "DE", "GB"][(n % 3) as usize];
        let product = |kind: &str| {
            let mut value =
                product_event(kind, time, &user, &format!("p{}", n % 11), "Gear", country);
            value["session_id"] = json!(session);
            value
        };
        stream.push(match n % 5 {
            1 => product("product_view"),
            2 => product("add_to_cart"),
            0 => purchase(
                time,
                &format!("o{n}"),
                "main",
                json!([{"id": format!("p{}", n % 11), "price": "12.50", "quantity": 2}]),
                json!({"user_id": user, "session_id": session, "country": country}),
            ),
            _ => page_view(time, &user, &session, &format!("/p/{}", n % 13), country),
        });
    }
    let last = DAY0 + 599 * 7 * MIN;
    let now = Timestamp(last + 2 * MIN);
    let mut once = engine_with(&stream);
    let mut pruning = Engine::new(EngineConfig::default());
    for (index, value) in stream.iter().enumerate() {
        pruning.apply(&event(value.clone()));
        if index % 25 == 24 {
            let newest = pruning.newest_event_time().expect("events were applied");
            pruning.prune_live(Timestamp(newest.0.min(now.0)));
        }
    }
    once.prune(now);
    pruning.prune(now);
    let mut query = spec(
        &[
            Metric::PageViews,
            Metric::Orders,
            Metric::GrossRevenue,
            Metric::Visitors,
            Metric::Sessions,
            Metric::ConversionRate,
            Metric::CartSessions,
            Metric::AbandonedCarts,
            Metric::AbandonedCartValue,
        ],
        DAY0,
        last + HOUR,
    );
    query.group_by = Some(Dimension::Country);
    query.granularity = Some(Granularity::Day);
    let funnel = storepulse_engine::funnel::FunnelSpec {
        steps: storepulse_engine::funnel::FunnelSpec::default_steps(),
        window_ms: DAY,
        from_ms: DAY0,
        to_ms: last + HOUR,
        source: None,
    };
    let answers = |engine: &Engine| {
        let everyone = RealtimeFilter::default();
        let realtime = engine.realtime(now, &everyone, 5, Currency::USD);
        let split = storepulse_engine::funnel::FunnelSplit::Country;
        let funnel = engine.funnel(&funnel, split, &everyone, 10).unwrap();
        (
            serde_json::to_value(engine.query(&query).unwrap()).unwrap(),
            serde_json::to_value(funnel).unwrap(),
            serde_json::to_value(realtime).unwrap(),
            engine.active_visitors(now, &RealtimeFilter::default()),
            engine.visitor_active_sessions(now, "u1", &RealtimeFilter::default()),
        )
    };
    let expected = answers(&once);
    assert_eq!(answers(&pruning), expected);
    assert!(!expected.3.is_empty(), "someone is active at the end");
}

/// The server runs queries that walk every kept session trail (seconds at scale) so that
/// ingest does not wait for them; it asks the engine which those are.
#[test]
fn the_queries_that_walk_every_session_trail_are_told_apart() {
    use storepulse_engine::engine::walks_session_trails;
    let daily = spec(&[Metric::Sessions, Metric::Orders], DAY0, DAY0 + 7 * DAY);
    assert!(!walks_session_trails(&daily), "daily sketches");
    let mut hourly = daily.clone();
    hourly.granularity = Some(Granularity::Hour);
    assert!(walks_session_trails(&hourly));
    let mut by_product = daily.clone();
    by_product.group_by = Some(Dimension::Product);
    assert!(walks_session_trails(&by_product));
    by_product.metrics = vec![Metric::Orders, Metric::GrossRevenue];
    assert!(!walks_session_trails(&by_product), "rollups only");
}
