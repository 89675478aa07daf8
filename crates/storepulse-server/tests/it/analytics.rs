//! The engine through HTTP: live windows, the query API, seed 3's user endpoints, and the
//! same numbers after a restart (the engine is rebuilt from the log).

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use storepulse_model::Timestamp;

use crate::support::TestApp;

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

fn at(ms: i64) -> String {
    Timestamp(ms).to_rfc3339()
}

async fn send_shop_traffic(test: &TestApp, now: i64) {
    let events = json!([
        {"type": "page_view", "timestamp": at(now - 60_000), "user_id": "u1", "session_id": "s1",
         "page": {"url": "https://shop.test/home"}, "country": "US", "device": {"type": "mobile"}},
        {"type": "page_view", "timestamp": at(now - 30_000), "user_id": "u1", "session_id": "s2",
         "page": {"url": "https://shop.test/shoes"}, "country": "US"},
        {"type": "page_view", "timestamp": at(now - 10_000), "anonymous_id": "a9", "session_id": "s3",
         "page": {"path": "/home"}, "country": "DE"},
        {"type": "add_to_cart", "timestamp": at(now - 9_000), "user_id": "u1", "session_id": "s2",
         "product": {"id": "shoe", "category": "Apparel > Shoes", "price": "80.00"}},
        {"type": "purchase", "timestamp": at(now - 5_000), "user_id": "u1", "session_id": "s2",
         "country": "US", "order": {"id": "o1", "sales_rep_id": "rep-a"},
         "items": [{"id": "shoe", "category": "Apparel > Shoes", "price": "80.00", "quantity": 2},
                   {"id": "lamp", "category": "Home > Lighting", "price": "19.99"}]},
        {"type": "refund", "timestamp": at(now - 1_000), "order": {"id": "o1", "total": "19.99"}}
    ]);
    let response = test.post_json("/api/v1/events", &events.to_string()).await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.json());
}

#[tokio::test]
async fn realtime_and_seed3_user_endpoints_reflect_acknowledged_events_at_once() {
    let test = TestApp::new();
    let now = now_ms();
    send_shop_traffic(&test, now).await;

    let live = test.get("/api/v1/realtime").await;
    assert_eq!(live.status, StatusCode::OK);
    let live = live.json();
    assert_eq!(live["active_users"], 2);
    assert_eq!(live["active_sessions"], 3);
    assert_eq!(live["avg_sessions_per_user"], 1.5);
    assert_eq!(live["page_views"], 3);
    assert_eq!(live["top_pages"], json!({"/home": 2, "/shoes": 1}));
    assert_eq!(live["commerce"]["orders"], 1);
    assert_eq!(live["commerce"]["gross_revenue"], "179.99");
    assert_eq!(live["commerce"]["cart_adds"], 1);

    let germany = test.get("/api/v1/realtime?country=de&top=1").await.json();
    assert_eq!(germany["active_users"], 1);
    assert_eq!(germany["top_pages"], json!({"/home": 1}));

    assert_eq!(test.get("/users/active").await.json(), json!({"users": ["a9", "u1"]}));
    assert_eq!(
        test.get("/users/u1/sessions").await.json(),
        json!({"user_id": "u1", "active_sessions": 2})
    );
    let sessions = test.get("/users/u1/sessions?store=default").await.json();
    assert_eq!(sessions["active_sessions"], 2);
    let sessions = test.get("/users/u1/sessions?store=elsewhere").await.json();
    assert_eq!(sessions["active_sessions"], 0);
    let unknown = test.get("/users/u1/sessions?bogus=1").await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(unknown.json()["error"]["details"]["parameter"], "bogus");

    // Out of range or not a number, `top` is refused in the API's words (not serde's
    // "invalid digit found in string").
    for query in ["/api/v1/realtime?top=0", "/api/v1/realtime?top=x"] {
        let bad = test.get(query).await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert_eq!(bad.json()["error"]["details"]["parameter"], "top");
        let reason = bad.json()["error"]["details"]["reason"].as_str().unwrap().to_owned();
        assert!(reason.starts_with("must be a whole number 1..=100"), "{query}: {reason}");
    }
    assert_eq!(test.get("/api/v1/realtime?top=3").await.status, StatusCode::OK);
    let bad = test.get("/api/v1/realtime?device=toaster").await;
    assert_eq!(bad.json()["error"]["details"]["parameter"], "device");
}

fn query_totals(body: &Value) -> Value {
    body["totals"].clone()
}

#[tokio::test]
async fn the_query_api_answers_kpis_groups_and_names_bad_parameters() {
    let test = TestApp::new();
    let now = now_ms();
    send_shop_traffic(&test, now).await;

    let response = test
        .get("/api/v1/query?metrics=orders,units,gross_revenue,refunded_revenue,net_revenue,average_order_value&range=last_24_hours")
        .await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.json());
    assert_eq!(
        query_totals(&response.json()),
        json!({"orders": 1, "units": 3, "gross_revenue": "179.99", "refunded_revenue": "19.99",
               "net_revenue": "160.00", "average_order_value": "179.99"})
    );

    let grouped = test
        .get("/api/v1/query?metrics=gross_revenue,units&range=today&group_by=category&compare=true")
        .await
        .json();
    let groups: Vec<(Value, Value)> = grouped["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|group| (group["key"].clone(), group["values"]["gross_revenue"].clone()))
        .collect();
    // A day boundary may fall inside the last minute; `today` then holds part of the traffic.
    if Timestamp(now - 60_000).0 / 86_400_000 == now / 86_400_000 {
        assert_eq!(
            groups,
            vec![(json!("Apparel"), json!("160.00")), (json!("Home"), json!("19.99"))]
        );
    }
    assert!(grouped["previous"]["growth_percent"].get("gross_revenue").is_some());

    let posted = test
        .post_json(
            "/api/v1/query",
            &json!({"metrics": ["orders"], "from": at(now - 3_600_000), "to": at(now + 1),
                    "sales_rep": "rep-a", "granularity": "minute"})
            .to_string(),
        )
        .await;
    assert_eq!(posted.status, StatusCode::OK, "{:?}", posted.json());
    assert_eq!(posted.json()["totals"]["orders"], 1);
    assert_eq!(posted.json()["series"].as_array().unwrap().len(), 61);
    let minute = |ms: i64| at(ms.div_euclid(60_000) * 60_000);
    assert_eq!(posted.json()["covered_from"], minute(now - 3_600_000), "widened to the minute");
    assert_eq!(posted.json()["covered_to"], minute(now + 1 + 59_999));

    for (query, parameter) in [
        ("/api/v1/query?range=today", "metrics"),
        ("/api/v1/query?metrics=profit", "metrics"),
        ("/api/v1/query?metrics=orders&range=forever", "range"),
        ("/api/v1/query?metrics=orders&from=yesterday", "from"),
        ("/api/v1/query?metrics=orders&group_by=colour", "group_by"),
        ("/api/v1/query?metrics=orders&granularity=fortnight", "granularity"),
        ("/api/v1/query?metrics=orders&currency=XXXX", "currency"),
        ("/api/v1/query?metrics=orders&range=last_90_days&granularity=minute", "granularity"),
        ("/api/v1/query?metrics=orders&limit=0", "limit"),
        // Refusals of the query string itself name the parameter too.
        ("/api/v1/query?metrics=orders&colour=red", "colour"),
        ("/api/v1/query?metrics=orders&limit=5&limit=6", "limit"),
        ("/api/v1/trending/products?k=5&k=6", "k"),
        ("/api/v1/recommendations?user=u1", "user"),
        ("/api/v1/dead-letters?page=2", "page"),
    ] {
        let response = test.get(query).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(response.json()["error"]["details"]["parameter"], parameter, "{query}");
    }
}

/// `range=last_month&compare=true` compared November with the equal 30 days before it
/// (October 2–31) and `today` with yesterday's last hours; calendar ranges now compare with
/// the calendar period before (the month before, yesterday until the same time of day).
#[tokio::test]
async fn calendar_ranges_compare_with_the_calendar_period_before() {
    use chrono::Datelike as _;
    let test = TestApp::new();
    let previous_of = |range: &'static str| {
        let test = &test;
        async move {
            let response =
                test.get(&format!("/api/v1/query?metrics=orders&range={range}&compare=true")).await;
            assert_eq!(response.status, StatusCode::OK, "{:?}", response.json());
            response.json()["previous"].clone()
        }
    };
    let now = now_ms();
    let today = previous_of("today").await;
    let midnight = now_ms().div_euclid(86_400_000) * 86_400_000;
    // Unless midnight passed between the two clock readings.
    if now.div_euclid(86_400_000) * 86_400_000 == midnight {
        assert_eq!(today["from"], json!(at(midnight - 86_400_000)));
        assert_eq!(today["covered_from"], json!(at(midnight - 86_400_000)));
        let to =
            storepulse_model::time::parse_timestamp_text(today["to"].as_str().unwrap()).unwrap().0;
        assert!(to > midnight - 86_400_000 && to <= now_ms() - 86_400_000, "{today}");
    }
    let last_month = previous_of("last_month").await;
    let this_month = chrono::Utc::now().date_naive().with_day(1).unwrap();
    let month_before = |first: chrono::NaiveDate| {
        let last_day = first.pred_opt().unwrap();
        last_day.with_day(1).unwrap()
    };
    let (from, to) = (month_before(month_before(this_month)), month_before(this_month));
    let midnight_of =
        |day: chrono::NaiveDate| at(day.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_millis());
    if chrono::Utc::now().date_naive().with_day(1).unwrap() == this_month {
        assert_eq!(last_month["from"], json!(midnight_of(from)));
        assert_eq!(last_month["to"], json!(midnight_of(to)));
        assert_eq!(last_month["covered_from"], json!(midnight_of(from)));
        assert_eq!(last_month["covered_to"], json!(midnight_of(to)));
    }
}

#[tokio::test]
async fn numbers_are_the_same_after_a_restart() {
    let test = TestApp::new();
    let now = now_ms();
    send_shop_traffic(&test, now).await;
    let query = "/api/v1/query?metrics=orders,units,gross_revenue,net_revenue,page_views,cart_adds&range=last_24_hours&group_by=country";
    let before = test.get(query).await.json();
    let live_before = test.get("/api/v1/realtime").await.json();

    let test = test.restart(|_| {});
    let after = test.get(query).await.json();
    assert_eq!(before["totals"], after["totals"]);
    assert_eq!(before["groups"], after["groups"]);
    let live_after = test.get("/api/v1/realtime").await.json();
    for field in ["active_users", "active_sessions", "page_views", "top_pages"] {
        assert_eq!(live_before[field], live_after[field], "{field}");
    }
}

/// A padded `group_by` was a 400 on the funnel (`"\" source\": one of country, source…"`)
/// while `/api/v1/query` and every other funnel parameter read their value trimmed.
#[tokio::test]
async fn a_padded_funnel_group_by_is_read_trimmed() {
    let test = TestApp::new();
    let event = json!({"type": "product_view", "timestamp": at(now_ms() - 60_000),
                       "session_id": "s1", "product": {"id": "tent"},
                       "marketing": {"utm_source": "news"}});
    assert_eq!(test.post_json("/api/v1/events", &event.to_string()).await.status, StatusCode::OK);
    let funnel = test.get("/api/v1/funnels?range=last_hour&group_by=%20source%20").await;
    assert_eq!(funnel.status, StatusCode::OK, "{:?}", funnel.json());
    let funnel = funnel.json();
    assert_eq!(funnel["group_by"], "source");
    assert_eq!(funnel["groups"][0]["key"], "news", "{funnel}");
}

#[tokio::test]
async fn funnels_and_distinct_metrics_over_http() {
    let test = TestApp::new();
    let now = now_ms();
    let t = |offset: i64| at(now - 120_000 + offset);
    let events = json!([
        {"type": "product_view", "timestamp": t(0), "session_id": "s1", "user_id": "u1", "country": "US", "product": {"id": "tent", "category": "Outdoor"}, "marketing": {"utm_source": "news"}},
        {"type": "add_to_cart", "timestamp": t(1000), "session_id": "s1", "user_id": "u1", "country": "US", "product": {"id": "tent", "price": 100}},
        {"type": "checkout_started", "timestamp": t(2000), "session_id": "s1", "user_id": "u1", "country": "US"},
        {"type": "purchase", "timestamp": t(3000), "session_id": "s1", "user_id": "u1", "country": "US", "order": {"id": "o1"}, "items": [{"id": "tent", "price": 100}]},
        {"type": "product_view", "timestamp": t(0), "session_id": "s2", "user_id": "u2", "country": "DE", "product": {"id": "tent"}},
        {"type": "add_to_cart", "timestamp": t(500), "session_id": "s2", "user_id": "u2", "country": "DE", "product": {"id": "tent", "price": 100}}
    ]);
    assert_eq!(test.post_json("/api/v1/events", &events.to_string()).await.status, StatusCode::OK);

    let funnel = test.get("/api/v1/funnels?range=last_hour&group_by=country").await;
    assert_eq!(funnel.status, StatusCode::OK, "{:?}", funnel.json());
    let funnel = funnel.json();
    let sessions: Vec<u64> = funnel["overall"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["sessions"].as_u64().unwrap())
        .collect();
    assert_eq!(sessions, [2, 2, 1, 1]);
    assert_eq!(funnel["overall"]["steps"][2]["drop_off"], 1);
    assert_eq!(funnel["groups"].as_array().unwrap().len(), 2);
    let custom = test
        .get("/api/v1/funnels?range=last_hour&steps=add_to_cart,purchase&window=10m")
        .await
        .json();
    assert_eq!(custom["overall"]["steps"][1]["conversion_from_previous"], 0.5);
    // By marketing source: s1 landed from news (its later events count under it), s2 from
    // nowhere; a padded source is read trimmed, as every filter is.
    let steps = |funnel: &serde_json::Value| -> Vec<u64> {
        funnel["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["sessions"].as_u64().unwrap())
            .collect()
    };
    let news = test.get("/api/v1/funnels?range=last_hour&source=%20news").await.json();
    assert_eq!(steps(&news["overall"]), [1, 1, 1, 1], "{news}");
    let by_source = test.get("/api/v1/funnels?range=last_hour&group_by=source").await.json();
    let groups: Vec<(serde_json::Value, Vec<u64>)> = by_source["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|group| (group["key"].clone(), steps(group)))
        .collect();
    assert!(groups.contains(&(json!("news"), vec![1, 1, 1, 1])), "{by_source}");
    assert!(groups.contains(&(json!(null), vec![1, 1, 0, 0])), "{by_source}");
    // Session metrics below a day, counted from the same trails, by source too.
    let hourly = test
        .get("/api/v1/query?metrics=sessions,conversion_rate&range=last_24_hours&granularity=hour&source=news")
        .await;
    assert_eq!(hourly.status, StatusCode::OK, "{:?}", hourly.json());
    assert_eq!(hourly.json()["totals"]["sessions"], 1);
    assert_eq!(hourly.json()["totals"]["conversion_rate"], 1.0);
    for (query, parameter) in [
        ("/api/v1/funnels?steps=product_view", "steps"),
        ("/api/v1/funnels?steps=view,buy", "steps"),
        ("/api/v1/funnels?steps=page_view,,purchase", "steps"),
        ("/api/v1/funnels?steps=page_view,purchase&group_by=product", "group_by"),
        ("/api/v1/funnels?window=forever", "window"),
        ("/api/v1/funnels?group_by=colour", "group_by"),
        ("/api/v1/funnels?device=toaster", "device"),
    ] {
        let response = test.get(query).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(response.json()["error"]["details"]["parameter"], parameter, "{query}");
    }

    let distinct = test
        .get("/api/v1/query?metrics=visitors,sessions,conversion_rate,abandoned_carts,cart_abandonment_rate&range=last_24_hours")
        .await
        .json();
    assert_eq!(
        distinct["totals"],
        json!({"visitors": 2, "sessions": 2, "conversion_rate": 0.5, "abandoned_carts": 1, "cart_abandonment_rate": 0.5})
    );
}

/// A range reaching back past `engine.funnel_retention` is refused naming `from`, with the
/// earliest start that is still whole, instead of being answered from what retention left.
#[tokio::test]
async fn funnels_and_carts_before_their_retention_are_refused() {
    let test = TestApp::with_config(|config| {
        config.engine.funnel_retention = std::time::Duration::from_secs(7 * 86_400)
    });
    let now = now_ms();
    let ten_days_ago = |offset: i64| at(now - 10 * 86_400_000 + offset);
    let events = json!([
        {"type": "add_to_cart", "timestamp": ten_days_ago(0), "session_id": "old", "product": {"id": "tent", "price": 100}},
        {"type": "add_to_cart", "timestamp": at(now - 60_000), "session_id": "new", "product": {"id": "tent", "price": 100}}
    ]);
    assert_eq!(test.post_json("/api/v1/events", &events.to_string()).await.status, StatusCode::OK);
    let from = ten_days_ago(-3_600_000);
    for query in [
        format!("/api/v1/funnels?from={from}&steps=add_to_cart,purchase"),
        format!("/api/v1/query?from={from}&metrics=abandoned_cart_value"),
    ] {
        let response = test.get(&query).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{query}: {:?}", response.json());
        let error = &response.json()["error"];
        assert_eq!(error["details"]["parameter"], "from", "{query}");
        assert!(error["message"].as_str().unwrap().contains("kept 7 days"), "{error}");
    }
    let funnel = test.get("/api/v1/funnels?range=last_7_days&steps=add_to_cart,purchase").await;
    assert_eq!(funnel.status, StatusCode::OK, "{:?}", funnel.json());
    assert_eq!(funnel.json()["overall"]["steps"][0]["sessions"], 1, "the new session only");
}

#[tokio::test]
async fn a_restart_loads_the_snapshot_and_replays_only_the_tail() {
    let test = TestApp::new();
    let now = now_ms();
    send_shop_traffic(&test, now).await;
    let query = "/api/v1/query?metrics=orders,gross_revenue,net_revenue,sessions&range=last_24_hours&group_by=country";
    let before = test.get(query).await.json();

    // A clean restart writes a snapshot at shutdown and loads it.
    let dir = test.dir.path().to_path_buf();
    let test = test.restart(|_| {});
    assert!(dir.join("engine/snapshot.bin").exists());
    assert_eq!(test.get(query).await.json()["totals"], before["totals"]);
    let health = test.get("/health").await.json();
    assert_eq!(health["engine"]["events_applied"], 6, "from the snapshot, nothing replayed twice");

    // Events after the snapshot come from the log's tail.
    let more = json!([{"type": "page_view", "timestamp": at(now - 500), "user_id": "u7", "session_id": "s7", "page": {"path": "/late"}}]);
    test.post_json("/api/v1/events", &more.to_string()).await;
    test.app.ingest.shutdown(); // stop without the shutdown snapshot: as after a crash
    let stale = std::fs::read(dir.join("engine/snapshot.bin")).unwrap();
    let test = test.restart(|_| {});
    assert_eq!(test.get("/health").await.json()["engine"]["events_applied"], 7);
    assert_eq!(test.get("/api/v1/realtime").await.json()["page_views"], 4);
    let before = test.get(query).await.json();
    assert_eq!(before["totals"]["sessions"], 4);

    // A damaged snapshot is refused and the whole log replayed: same numbers.
    let mut damaged = stale;
    let last = damaged.len() - 1;
    damaged[last] ^= 0xff;
    test.app.shutdown();
    std::fs::write(dir.join("engine/snapshot.bin"), damaged).unwrap();
    let test = test.restart(|_| {});
    assert_eq!(test.get(query).await.json()["totals"], before["totals"]);
    assert_eq!(test.get("/health").await.json()["engine"]["events_applied"], 7);
}

/// Batches (applied on the applier thread while the writer goes on) and single events (applied
/// by the writer itself) from many clients at once: each client reads back its own events, and
/// every event is counted once. (That an answer waits for the engine is asserted
/// deterministically in `ingest::applier`'s tests.)
#[test]
fn concurrent_batches_and_single_events_are_read_back_at_once() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let test = TestApp::new();
    let now = now_ms();
    let page = |user: String, path: &str| json!({"type": "page_view", "timestamp": at(now - 1000), "user_id": user, "page": {"path": path}});
    std::thread::scope(|scope| {
        for client in 0..8 {
            let (test, runtime) = (&test, &runtime);
            scope.spawn(move || {
                runtime.block_on(async {
                    let batch: Vec<Value> =
                        (0..300).map(|i| page(format!("b{client}-{i}"), "/batch")).collect();
                    let body = Value::Array(batch).to_string();
                    let answer = test.post_json("/api/v1/events", &body).await;
                    assert_eq!(answer.json()["accepted"], 300);
                    let realtime = test.get("/api/v1/realtime").await.json();
                    assert!(realtime["active_users"].as_u64().unwrap() >= 300, "{realtime}");
                    for step in 0..5 {
                        let body = page(format!("s{client}"), &format!("/step-{step}")).to_string();
                        assert_eq!(
                            test.post_json("/api/v1/events", &body).await.json()["accepted"],
                            1
                        );
                        let realtime = test.get("/api/v1/realtime").await.json();
                        assert!(realtime["active_users"].as_u64().unwrap() >= 301, "{realtime}");
                    }
                });
            });
        }
    });
    let realtime = runtime.block_on(test.get("/api/v1/realtime")).json();
    assert_eq!(realtime["active_users"], 8 * 300 + 8);
    assert_eq!(realtime["page_views"], 8 * 300 + 8 * 5);
}

/// A snapshot being encoded does not hold up acknowledgements: events committed meanwhile are
/// answered at once and applied as soon as the snapshot is done, and `/buy` still answers a
/// total that includes its own buy (it waits for the snapshot).
#[test]
fn acknowledgements_do_not_wait_for_a_snapshot() {
    use storepulse_server::sync::RwLockExt;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let test = TestApp::new();
    let engine = test.app.engine.clone();
    let page = json!({"type": "page_view", "timestamp": at(now_ms()), "user_id": "u1", "session_id": "s1", "page": {"path": "/"}})
        .to_string();
    let buy = json!({"user_id": 7, "promotion_id": 3, "product_id": 150, "product_quantity": 4})
        .to_string();
    let applied = engine.read_ignoring_poison().events_applied();
    std::thread::scope(|scope| {
        let buying = engine.snapshot(|during| {
            let answer = runtime.block_on(async {
                let acknowledged = test.post_json("/api/v1/events", &page);
                tokio::time::timeout(std::time::Duration::from_secs(10), acknowledged).await
            });
            let answer = answer.expect("acknowledged while the snapshot is encoded");
            assert_eq!(answer.status, StatusCode::OK);
            assert_eq!(answer.json()["accepted"], 1);
            assert_eq!(during.events_applied(), applied, "stored, not yet applied");
            let buying = scope.spawn(|| runtime.block_on(test.post_json("/buy", &buy)));
            std::thread::sleep(std::time::Duration::from_millis(300));
            assert!(!buying.is_finished(), "/buy waits until its buy is counted");
            buying
        });
        let answer = buying.join().unwrap();
        assert_eq!(answer.json()["buy_count"], 4);
    });
    assert_eq!(engine.read_ignoring_poison().events_applied(), applied + 2);
    let realtime = runtime.block_on(test.get("/api/v1/realtime")).json();
    assert_eq!(realtime["active_users"], 2);
}

/// Conversion and cart abandonment by category and by hour come from the session trails.
#[tokio::test]
async fn session_metrics_by_category_and_by_hour() {
    let test = TestApp::new();
    send_shop_traffic(&test, now_ms()).await;
    let by_category = test
        .get("/api/v1/query?metrics=sessions,conversion_rate,cart_sessions,cart_abandonment_rate&range=last_24_hours&group_by=category")
        .await;
    assert_eq!(by_category.status, StatusCode::OK, "{:?}", by_category.json());
    let groups = by_category.json()["groups"].clone();
    let apparel = groups.as_array().unwrap().iter().find(|g| g["key"] == "Apparel").unwrap();
    // s2 carted the shoe and bought it (with a lamp).
    assert_eq!(
        apparel["values"],
        json!({"sessions": 1, "conversion_rate": 1.0, "cart_sessions": 1, "cart_abandonment_rate": 0.0})
    );
    let home = groups.as_array().unwrap().iter().find(|g| g["key"] == "Home").unwrap();
    assert_eq!(home["values"]["cart_sessions"], 0);
    assert_eq!(home["values"]["cart_abandonment_rate"], Value::Null);

    let hourly = test
        .get("/api/v1/query?metrics=sessions,conversion_rate&range=last_24_hours&granularity=hour")
        .await
        .json();
    assert_eq!(hourly["totals"], json!({"sessions": 3, "conversion_rate": 0.3333}));
    let refused = test
        .get("/api/v1/query?metrics=abandoned_cart_value&range=last_24_hours&group_by=product")
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.json()["error"]["details"]["parameter"], "metrics");
}

/// Two promotion views and a click on "BF", one order carrying it and two orders without
/// one, by three buyers.
async fn send_promotion_traffic(test: &TestApp, now: i64) {
    let promotion = |kind: &str, seconds: i64| {
        json!({"type": kind, "timestamp": at(now - seconds * 1_000), "user_id": "u1",
               "session_id": "s1", "promotion": {"id": "BF"}})
    };
    let order = |id: &str, user: &str, price: &str, promoted: bool| {
        let mut order = json!({"type": "purchase", "timestamp": at(now - 20_000), "user_id": user,
               "session_id": format!("s-{user}"), "order": {"id": id},
               "items": [{"id": "shoe", "price": price}]});
        if promoted {
            order["promotion"] = json!({"id": "BF"});
        }
        order
    };
    let events = json!([
        promotion("promotion_view", 50),
        promotion("promotion_view", 40),
        promotion("promotion_click", 30),
        order("o1", "u1", "10.00", true),
        order("o2", "u2", "20.00", false),
        order("o3", "u3", "30.00", false),
    ]);
    let response = test.post_json("/api/v1/events", &events.to_string()).await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.json());
}

/// `group_by=country` was refused naming `metrics` ("fixed metrics"), and a minute series
/// naming `group_by` (which was never sent): each refusal names what the user sent.
#[tokio::test]
async fn promotion_report_refusals_name_the_parameter_sent() {
    let test = TestApp::new();
    send_promotion_traffic(&test, now_ms()).await;
    for (query, parameter) in [
        ("group_by=country", "group_by"),
        ("granularity=minute&range=last_hour", "granularity"),
        ("granularity=hour", "granularity"),
        ("metrics=orders", "metrics"),
        ("category=Apparel", "category"),
        ("product=shoe", "product"),
        ("granularity=fortnight", "granularity"),
    ] {
        let response = test.get(&format!("/api/v1/promotions?{query}")).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{query}");
        let error = &response.json()["error"];
        assert_eq!(error["details"]["parameter"], parameter, "{query}: {error}");
        // The report's own choices, not the query's (which also takes minute and hour).
        if query == "granularity=fortnight" {
            assert_eq!(error["details"]["reason"], "one of day, week, month", "{error}");
        }
        assert!(error["message"].as_str().unwrap().starts_with(parameter), "{error}");
    }
    // What the report is anyway, and a series by day, are answered.
    for query in ["group_by=promotion", "granularity=day&range=last_24_hours"] {
        let response = test.get(&format!("/api/v1/promotions?{query}")).await;
        assert_eq!(response.status, StatusCode::OK, "{query}: {:?}", response.json());
    }
}

/// The report's totals counted every order of the range (125 orders, conversion 2.36 and
/// every buyer, beside promotions adding up to 14): they are over promoted events only, the
/// sum of the promotions. The query API's promotion conversion counts promoted orders only.
#[tokio::test]
async fn promotion_totals_count_only_orders_carrying_a_promotion() {
    let test = TestApp::new();
    send_promotion_traffic(&test, now_ms()).await;
    let report = test.get("/api/v1/promotions?range=last_24_hours").await;
    assert_eq!(report.status, StatusCode::OK, "{:?}", report.json());
    let report = report.json();
    let expected = json!({
        "promotion_views": 2, "promotion_clicks": 1, "orders": 1, "units": 1,
        "gross_revenue": "10.00", "unique_buyers": 1, "click_through_rate": 0.5,
        "promotion_conversion_rate": 1.0,
    });
    assert_eq!(report["totals"], expected);
    let groups = report["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0]["key"], "BF");
    assert_eq!(groups[0]["values"], expected);

    let query = test
        .get("/api/v1/query?metrics=orders,promotion_clicks,promotion_conversion_rate&range=last_24_hours")
        .await
        .json();
    assert_eq!(
        query["totals"],
        json!({"orders": 3, "promotion_clicks": 1, "promotion_conversion_rate": 1.0})
    );
}

/// `steps=page_view,page_view` counted a session with one page view at both steps: each
/// step needs a later event than the previous step's.
#[tokio::test]
async fn a_funnel_with_a_repeated_step_needs_as_many_events() {
    let test = TestApp::new();
    let now = now_ms();
    let view = |session: &str, seconds_ago: i64| {
        json!({"type": "page_view", "timestamp": at(now - seconds_ago * 1_000), "store": "X",
               "session_id": session, "page": {"path": "/"}})
    };
    // s1 views one page, s2 two.
    let events = json!([view("s1", 60), view("s2", 60), view("s2", 30)]);
    assert_eq!(test.post_json("/api/v1/events", &events.to_string()).await.status, StatusCode::OK);
    let funnel =
        test.get("/api/v1/funnels?store=X&range=last_hour&steps=page_view,page_view").await;
    assert_eq!(funnel.status, StatusCode::OK, "{:?}", funnel.json());
    let steps = funnel.json()["overall"]["steps"].clone();
    let sessions: Vec<u64> =
        steps.as_array().unwrap().iter().map(|step| step["sessions"].as_u64().unwrap()).collect();
    assert_eq!(sessions, [2, 1]);
    assert_eq!(steps[1]["conversion_from_previous"], 0.5);
}

/// Ingest stores seed 1's `UK` as ISO's `GB`, but `country=UK` was looked up as sent and
/// matched nothing: filters normalise the code the same way, and refuse what is no code.
#[tokio::test]
async fn country_filters_are_normalised_as_ingest_normalises_them() {
    let test = TestApp::new();
    let now = now_ms();
    let order = |id: &str, country: &str| {
        json!({"type": "purchase", "timestamp": at(now - 20_000), "session_id": id,
               "user_id": id, "country": country, "order": {"id": id},
               "items": [{"id": "shoe", "price": "10.00"}]})
    };
    let events = json!([order("o1", "UK"), order("o2", "gb"), order("o3", "US")]);
    assert_eq!(test.post_json("/api/v1/events", &events.to_string()).await.status, StatusCode::OK);
    for code in ["UK", "uk", "GB", "%20gb"] {
        let query = format!("/api/v1/query?metrics=orders&range=last_hour&country={code}");
        let response = test.get(&query).await;
        assert_eq!(response.status, StatusCode::OK, "{query}: {:?}", response.json());
        assert_eq!(response.json()["totals"]["orders"], 2, "{query}");
    }
    let live = test.get("/api/v1/realtime?country=uk").await.json();
    assert_eq!(live["commerce"]["orders"], 2);
    let funnel = test.get("/api/v1/funnels?range=last_hour&country=UK&steps=purchase,refund").await;
    assert_eq!(funnel.json()["overall"]["steps"][0]["sessions"], 2);
    for query in [
        "/api/v1/query?metrics=orders&country=USA",
        "/api/v1/realtime?country=U",
        "/api/v1/funnels?country=12",
        "/api/v1/promotions?country=United%20Kingdom",
        "/api/v1/trending/products?country=GBR",
    ] {
        let response = test.get(query).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(response.json()["error"]["details"]["parameter"], "country", "{query}");
    }
}

/// A `from` in the future without `to` was refused as `to: must be after from`, naming a
/// parameter that was never sent: `to` defaults to now, so `from` is what is wrong.
#[tokio::test]
async fn a_future_from_without_to_is_blamed_on_from() {
    let test = TestApp::new();
    let tomorrow = at(now_ms() + 86_400_000);
    let earlier = at(now_ms() - 86_400_000);
    let blamed = |parameter: &'static str, response: crate::support::TestResponse| {
        assert_eq!(response.status, StatusCode::BAD_REQUEST);
        let error = response.json()["error"].clone();
        assert_eq!(error["details"]["parameter"], parameter, "{error}");
        let message = error["message"].as_str().unwrap().to_owned();
        assert!(message.starts_with(parameter), "{message}");
        message
    };
    for path in ["/api/v1/query?metrics=orders&", "/api/v1/promotions?", "/api/v1/funnels?"] {
        let message = blamed("from", test.get(&format!("{path}from={tomorrow}")).await);
        assert!(message.contains("now when `to` is not given"), "{path}: {message}");
        // With both sent, `to` before `from` is still blamed on `to`.
        let reversed = format!("{path}from={tomorrow}&to={earlier}");
        blamed("to", test.get(&reversed).await);
    }
    let posted = json!({"metrics": ["orders"], "from": tomorrow}).to_string();
    blamed("from", test.post_json("/api/v1/query", &posted).await);
    // A `from` in the future is fine when `to` is later still.
    let ahead = format!(
        "/api/v1/query?metrics=orders&from={tomorrow}&to={}",
        at(now_ms() + 2 * 86_400_000)
    );
    assert_eq!(test.get(&ahead).await.status, StatusCode::OK);
}

/// `store=` (an emptied form field, a template with no value) answered 200 with zeros, as if
/// nothing had happened: no event carries an empty store, source or id. Every endpoint that
/// takes a filter refuses an empty one, naming it.
#[tokio::test]
async fn an_empty_filter_value_is_refused_naming_it() {
    let test = TestApp::new();
    send_shop_traffic(&test, now_ms()).await;
    let every = ["store", "country", "device", "source", "promotion", "sales_rep", "product"];
    let mut queries = Vec::new();
    for parameter in every.iter().chain(&["category"]) {
        queries
            .push((format!("/api/v1/query?metrics=orders&range=today&{parameter}="), *parameter));
    }
    for parameter in &every[..6] {
        queries.push((format!("/api/v1/promotions?{parameter}="), *parameter));
    }
    for parameter in ["store", "country", "device", "category"] {
        queries.push((format!("/api/v1/realtime?{parameter}="), parameter));
        queries.push((format!("/api/v1/trending/products?{parameter}="), parameter));
        queries.push((format!("/api/v1/trending/compare?a=v1&b=v1&{parameter}="), parameter));
    }
    for parameter in ["store", "country", "device"] {
        queries.push((format!("/api/v1/funnels?{parameter}="), parameter));
        queries.push((format!("/users/active?{parameter}="), parameter));
        queries.push((format!("/users/u1/sessions?{parameter}="), parameter));
    }
    for parameter in ["category", "country"] {
        queries.push((format!("/api/v1/category-trends?{parameter}="), parameter));
        queries.push((format!("/api/v1/category-trends/rows?{parameter}="), parameter));
    }
    queries.push(("/api/v1/category-trends/ticker?category=".to_owned(), "category"));
    queries.push(("/api/v1/recommendations?user_id=u1&store=".to_owned(), "store"));
    // Blank is as empty as empty.
    queries.push(("/api/v1/query?metrics=orders&store=%20".to_owned(), "store"));
    queries.push(("/api/v1/realtime?category=+".to_owned(), "category"));
    for (query, parameter) in &queries {
        let response = test.get(query).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{query}: {:?}", response.json());
        let error = &response.json()["error"];
        assert_eq!(error["details"]["parameter"], *parameter, "{query}: {error}");
        let message = error["message"].as_str().unwrap();
        assert!(message.starts_with(&format!("{parameter}: must not be empty")), "{message}");
    }
    let posted = json!({"metrics": ["orders"], "range": "today", "source": ""}).to_string();
    let response = test.post_json("/api/v1/query", &posted).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(response.json()["error"]["details"]["parameter"], "source");
    // Metrics of the wrong shape are named, in the API's words (not serde's type names).
    for metrics in [json!(["orders", 5]), json!({"a": 1})] {
        let body = json!({"metrics": metrics, "range": "today"}).to_string();
        let error = test.post_json("/api/v1/query", &body).await.json()["error"].clone();
        assert_eq!(error["details"]["parameter"], "metrics", "{error}");
        let reason = error["details"]["reason"].as_str().unwrap();
        assert!(reason.contains("metric names") && !reason.contains("enum"), "{reason}");
    }
    // GET and POST take the same times: a POST body may give Unix seconds as a number.
    let by_get = test.get("/api/v1/query?metrics=orders&from=1700000000&to=1700086400").await;
    let body = json!({"metrics": ["orders"], "from": 1_700_000_000, "to": 1_700_086_400});
    let by_post = test.post_json("/api/v1/query", &body.to_string()).await;
    assert_eq!(by_post.status, StatusCode::OK, "{:?}", by_post.json());
    assert_eq!(by_post.json()["from"], by_get.json()["from"]);
    assert_eq!(by_post.json()["from"], "2023-11-14T22:13:20.000Z");
    // A POSTed query's parameters are its body: one in the URL is refused, not dropped.
    let body = json!({"metrics": ["orders"], "range": "today"}).to_string();
    let response = test.post_json("/api/v1/query?store=nonexistent", &body).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(response.json()["error"]["details"]["parameter"], "store");
    assert_eq!(test.post_json("/api/v1/query", &body).await.status, StatusCode::OK);
    // A value is still a filter, and leaving the parameter out still counts everything.
    for query in ["/api/v1/query?metrics=orders&range=today&store=default", "/api/v1/realtime"] {
        assert_eq!(test.get(query).await.status, StatusCode::OK, "{query}");
    }
}

/// `store=my%20shop` answered zeros: no store is called that, and ingest refuses such names.
/// A store filter that cannot name a store is refused with the rule, on every endpoint (a
/// padded one, `%20default`, is read trimmed, as every filter is).
#[tokio::test]
async fn a_store_filter_that_is_no_store_name_is_refused() {
    let test = TestApp::new();
    send_shop_traffic(&test, now_ms()).await;
    for query in [
        "/api/v1/query?metrics=orders&range=today&store=my%20shop",
        "/api/v1/promotions?store=default%2F",
        "/api/v1/realtime?store=de%20fault",
        "/api/v1/trending/products?store=%C3%A9",
        "/api/v1/funnels?store=%20de%20fault",
        "/users/active?store=%C3%A9",
        "/api/v1/recommendations?user_id=u1&store=default%2F",
    ] {
        let response = test.get(query).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{query}: {:?}", response.json());
        let error = &response.json()["error"];
        assert_eq!(error["details"]["parameter"], "store", "{query}: {error}");
        let reason = error["details"]["reason"].as_str().unwrap();
        assert!(reason.contains("letters, digits"), "{query}: {reason}");
    }
    // A padded source means the source (sources are stored trimmed).
    let campaign = json!({"type": "page_view", "timestamp": at(now_ms() - 2_000), "session_id": "s9",
        "anonymous_id": "a7", "page": {"path": "/"}, "marketing": {"utm_source": "google"}});
    assert_eq!(
        test.post_json("/api/v1/events", &campaign.to_string()).await.status,
        StatusCode::OK
    );
    let padded = test.get("/api/v1/query?metrics=sessions&range=today&source=%20google%20").await;
    let plain = test.get("/api/v1/query?metrics=sessions&range=today&source=google").await;
    assert_eq!(padded.status, StatusCode::OK, "{:?}", padded.json());
    assert_eq!(padded.json()["totals"], plain.json()["totals"]);
    assert_ne!(plain.json()["totals"]["sessions"], 0, "{:?}", plain.json());
}

/// `product=%20shoe`, `sales_rep=rep-a%20`, `promotion=%20BF` silently matched nothing (and
/// `store=%20default` was a 400) while `source` and `country` were read trimmed: every filter
/// value is read trimmed now, on every endpoint, and one that is blank is a 400 naming it.
#[tokio::test]
async fn padded_filter_values_mean_the_value_on_every_filter() {
    let test = TestApp::new();
    let now = now_ms();
    send_shop_traffic(&test, now).await;
    let promoted = json!({"type": "purchase", "timestamp": at(now - 3_000), "user_id": "u2",
        "session_id": "s7", "order": {"id": "o2"}, "promotion": {"id": "BF"},
        "items": [{"id": "lamp", "category": "Home > Lighting", "price": "19.99"}]});
    let response = test.post_json("/api/v1/events", &promoted.to_string()).await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.json());
    for (parameter, value, metric) in [
        ("store", "default", "orders"),
        ("country", "US", "orders"),
        ("device", "mobile", "page_views"),
        ("source", "shop.test", "events"),
        ("promotion", "BF", "orders"),
        ("sales_rep", "rep-a", "orders"),
        ("product", "shoe", "units"),
        ("category", "Home", "units"),
    ] {
        let plain = format!("/api/v1/query?metrics={metric}&range=last_hour&{parameter}={value}");
        let padded =
            format!("/api/v1/query?metrics={metric}&range=last_hour&{parameter}=%20{value}%20");
        let (plain, padded) = (test.get(&plain).await, test.get(&padded).await);
        assert_eq!(padded.status, StatusCode::OK, "{parameter}: {:?}", padded.json());
        assert_eq!(padded.json()["totals"], plain.json()["totals"], "{parameter}");
        let blank = test
            .get(&format!("/api/v1/query?metrics={metric}&range=last_hour&{parameter}=%20%09"))
            .await;
        assert_eq!(blank.status, StatusCode::BAD_REQUEST, "{parameter}");
        assert_eq!(blank.json()["error"]["details"]["parameter"], parameter);
    }
    let plain = test.get("/api/v1/query?metrics=orders&range=last_hour&product=shoe").await;
    assert_eq!(plain.json()["totals"]["orders"], 1, "{:?}", plain.json());
    for (plain, padded) in [
        ("/api/v1/realtime?category=Home", "/api/v1/realtime?category=%20Home%20"),
        ("/api/v1/promotions?promotion=BF", "/api/v1/promotions?promotion=%20BF"),
        ("/api/v1/trending/products?category=Home", "/api/v1/trending/products?category=Home%20"),
    ] {
        let (plain, padded) = (test.get(plain).await, test.get(padded).await);
        assert_eq!(padded.status, StatusCode::OK, "{:?}", padded.json());
        let (mut plain, mut padded) = (plain.json(), padded.json());
        for answer in [&mut plain, &mut padded] {
            for moving in ["now", "as_of", "generated_at", "from", "to"] {
                answer.as_object_mut().map(|fields| fields.remove(moving));
            }
        }
        assert_eq!(padded, plain);
    }
}

/// `/users/active?top=5` (and `category`, `currency`) answered as if the parameter had not
/// been sent, and refusing `bogus` listed the realtime endpoint's parameters, which it does
/// not take: it takes the filters a visitor has (store, country, device) and names those.
#[tokio::test]
async fn active_users_take_only_the_filters_they_use() {
    let test = TestApp::new();
    send_shop_traffic(&test, now_ms()).await;
    for parameter in ["top", "category", "currency", "bogus"] {
        let query = format!("/users/active?{parameter}=5");
        let response = test.get(&query).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{query}");
        let error = &response.json()["error"];
        assert_eq!(error["details"]["parameter"], parameter, "{query}: {error}");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains("`store`, `country`, `device`"), "{message}");
        for unused in ["top", "category", "currency"] {
            assert!(!message.contains(&format!("`{unused}`")), "{message}");
        }
    }
    let germany = test.get("/users/active?store=default&country=de").await;
    assert_eq!(germany.status, StatusCode::OK, "{:?}", germany.json());
    assert_eq!(germany.json(), json!({"users": ["a9"]}));
    assert_eq!(test.get("/users/active?device=mobile").await.status, StatusCode::OK);
}

/// Seed 3's read endpoints refused a cache buster `_=<time>` (jQuery's `cache: false`, axios
/// interceptors) that FastAPI ignored; other unknown parameters are still refused.
#[tokio::test]
async fn seed3_reads_ignore_a_cache_buster() {
    let test = TestApp::new();
    send_shop_traffic(&test, now_ms()).await;
    let plain = test.get("/users/active?country=de").await.json();
    let busted = test.get("/users/active?_=1700000000&country=de").await;
    assert_eq!(busted.status, StatusCode::OK, "{:?}", busted.json());
    assert_eq!(busted.json(), plain);
    let sessions = test.get("/users/a9/sessions?_=1").await;
    assert_eq!(sessions.status, StatusCode::OK, "{:?}", sessions.json());
    assert_eq!(sessions.json(), test.get("/users/a9/sessions").await.json());
    let metrics = test.get("/metrics?_=1&store=default").await;
    assert_eq!(metrics.status, StatusCode::OK, "{:?}", metrics.json());
    assert!(metrics.json()["active_users"].as_u64().unwrap() > 0);
    for query in ["/users/active?_=1&bogus=1", "/users/a9/sessions?__=1", "/metrics?_=1&bogus=1"] {
        let response = test.get(query).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{query}");
    }
    // The native realtime endpoint keeps refusing every parameter it does not take.
    assert_eq!(test.get("/api/v1/realtime?_=1").await.status, StatusCode::BAD_REQUEST);
}

/// A grouped query matching no row answered without `groups` (funnels answered `[]`), so a
/// dashboard mapping over them broke on a quiet store or day: grouped, `groups` is always
/// there, `[]` when empty; ungrouped, it is never there.
#[tokio::test]
async fn a_grouped_query_matching_nothing_answers_empty_groups() {
    let test = TestApp::new();
    send_shop_traffic(&test, now_ms()).await;
    for query in [
        "/api/v1/query?metrics=orders&group_by=country&store=nosuch",
        "/api/v1/query?metrics=orders&group_by=country&range=last_month",
        "/api/v1/promotions?store=nosuch",
        "/api/v1/promotions",
        "/api/v1/funnels?store=nosuch&group_by=country",
    ] {
        let response = test.get(query).await;
        assert_eq!(response.status, StatusCode::OK, "{query}: {:?}", response.json());
        assert_eq!(response.json()["groups"], json!([]), "{query}: {:?}", response.json());
    }
    let ungrouped = test.get("/api/v1/query?metrics=orders&store=nosuch").await.json();
    assert!(ungrouped.get("groups").is_none(), "{ungrouped}");
    let grouped = test.get("/api/v1/query?metrics=orders&group_by=country").await.json();
    assert_eq!(grouped["groups"][0]["key"], "US", "{grouped}");
}

/// A path segment that is not UTF-8 once percent-decoded got axum's plain-text "Invalid URL:
/// Invalid UTF-8 in `user_id`", the one 400 without the JSON body: it names the parameter.
#[tokio::test]
async fn a_path_parameter_that_is_not_utf8_is_refused_naming_it() {
    let test = TestApp::new();
    for (request, parameter) in [
        (Request::get("/users/%FF%FE/sessions"), "user_id"),
        (Request::post("/api/v1/trending/versions/%FF/activate"), "version"),
    ] {
        let response = test.send(request.body(Body::empty()).unwrap()).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{parameter}");
        assert_eq!(response.header("content-type"), Some("application/json"), "{parameter}");
        let error = &response.json()["error"];
        assert_eq!(error["code"], "invalid_parameter", "{error}");
        assert_eq!(error["details"]["parameter"], parameter, "{error}");
        let reason = error["details"]["reason"].as_str().unwrap();
        assert!(reason.contains("UTF-8") && reason.contains("%FF"), "{reason}");
    }
}

/// A POSTed query leaked Rust internals: `[]` was refused as "invalid length 0, expected
/// struct QueryParams with 17 elements" (and `[["orders"]]` read as metrics, by position),
/// and `"limit": "5"`, which GET takes as `limit=5`, as "expected usize".
#[tokio::test]
async fn a_posted_query_body_is_read_and_refused_in_the_apis_words() {
    let test = TestApp::new();
    send_shop_traffic(&test, now_ms()).await;
    for body in ["[]", r#"[["orders"]]"#, r#""orders""#, "5", "null"] {
        let response = test.post_json("/api/v1/query", body).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{body}");
        let error = &response.json()["error"];
        assert_eq!(error["details"]["parameter"], "body", "{body}: {error}");
        let reason = error["details"]["reason"].as_str().unwrap();
        assert!(reason.starts_with("must be a JSON object of query parameters"), "{reason}");
    }
    let grouped =
        |limit: Value| json!({"metrics": ["orders"], "group_by": "country", "limit": limit});
    let by_get = test.get("/api/v1/query?metrics=orders&group_by=country&limit=2").await.json();
    assert_eq!(by_get["groups"].as_array().map(Vec::len), Some(2), "{by_get}");
    for limit in [json!("2"), json!(2), json!(" 2 ")] {
        let response = test.post_json("/api/v1/query", &grouped(limit.clone()).to_string()).await;
        assert_eq!(response.status, StatusCode::OK, "{limit}: {:?}", response.json());
        assert_eq!(response.json()["groups"], by_get["groups"], "{limit}");
    }
    let mut refused = Vec::new();
    for limit in [json!("5x"), json!(0), json!("0"), json!(-1), json!(2.5), json!(true), json!([2])]
    {
        refused.push(test.post_json("/api/v1/query", &grouped(limit).to_string()).await);
    }
    for query in ["/api/v1/query?metrics=orders&limit=x", "/api/v1/funnels?limit=x"] {
        refused.push(test.get(query).await);
    }
    refused.push(test.get("/api/v1/query?metrics=orders&limit=10001").await);
    for response in refused {
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{:?}", response.json());
        let error = &response.json()["error"];
        assert_eq!(error["details"]["parameter"], "limit", "{error}");
        assert_eq!(error["details"]["reason"], "must be a whole number 1..=10000", "{error}");
    }
    // Still read from the text: a field given twice is refused, and space around is no matter.
    let twice = r#"{"metrics": ["orders"], "limit": 1, "limit": 2}"#;
    let error = test.post_json("/api/v1/query", twice).await.json()["error"].clone();
    assert_eq!(error["details"]["parameter"], "limit", "{error}");
    let spaced = test.post_json("/api/v1/query", "\n  {\"metrics\": [\"orders\"]}  ").await;
    assert_eq!(spaced.status, StatusCode::OK, "{:?}", spaced.json());
}

/// `metrics=orders,,units` answered for orders and units, silently dropping the typo that
/// funnel steps refuse; and a time that is no time was refused without quoting it, so an
/// offset's unencoded `+` (arriving as a space) could not be seen.
#[tokio::test]
async fn an_empty_metric_name_and_a_bad_time_are_refused_saying_what_was_sent() {
    let test = TestApp::new();
    for metrics in ["orders,,units", "orders,", ",orders", "orders,%20,units"] {
        let query = format!("/api/v1/query?metrics={metrics}");
        let response = test.get(&query).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{query}");
        let error = &response.json()["error"];
        assert_eq!(error["details"]["parameter"], "metrics", "{query}: {error}");
        assert_eq!(
            error["details"]["reason"],
            "an empty metric name (two commas in a row, or one at an end)",
            "{query}"
        );
    }
    let listed = test.get("/api/v1/query?metrics=%20orders%20,units").await;
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.json());

    let unencoded = "/api/v1/query?metrics=orders&from=2026-12-05T11:04:00+01:00";
    let error = test.get(unencoded).await.json()["error"].clone();
    assert_eq!(error["details"]["parameter"], "from", "{error}");
    let reason = error["details"]["reason"].as_str().unwrap();
    assert!(reason.contains(r#""2026-12-05T11:04:00 01:00""#), "{reason}");
    assert!(reason.contains("2026-12-05T11:04:00%2B01:00"), "{reason}");
    let encoded = "/api/v1/query?metrics=orders&from=2026-12-05T11:04:00%2B01:00";
    assert_eq!(test.get(encoded).await.status, StatusCode::OK);
    // Any other bad time is quoted, without the hint.
    let error = test.get("/api/v1/funnels?from=soon").await.json()["error"].clone();
    assert_eq!(error["details"]["parameter"], "from", "{error}");
    let reason = error["details"]["reason"].as_str().unwrap();
    assert!(reason.starts_with("must be a time") && reason.ends_with(r#"got "soon""#), "{reason}");
}

/// The promotions report listed 100 promotions (the query's default limit) under totals that
/// counted them all: with 300 promotions the groups summed to a third of the orders and the
/// best seller could be missing. It lists every promotion unless `limit` asks for fewer.
#[tokio::test]
async fn the_promotions_report_lists_every_promotion() {
    let test = TestApp::new();
    let now = now_ms();
    let events: Vec<serde_json::Value> = (0..150)
        .map(|n| {
            json!({"type": "purchase", "timestamp": at(now - 60_000), "user_id": format!("u{n}"),
                   "promotion": {"id": format!("promo-{n}")},
                   "order": {"id": format!("o{n}")}, "items": [{"id": "p", "price": "1.00"}]})
        })
        .collect();
    let sent =
        test.post_json("/api/v1/events", &serde_json::Value::Array(events).to_string()).await;
    assert_eq!(sent.status, StatusCode::OK);
    let report = test.get("/api/v1/promotions?range=last_24_hours").await.json();
    assert_eq!(report["groups"].as_array().unwrap().len(), 150);
    assert_eq!(report["totals"]["orders"], 150);
    let fewer = test.get("/api/v1/promotions?range=last_24_hours&limit=10").await.json();
    assert_eq!(fewer["groups"].as_array().unwrap().len(), 10);
}

/// Filters were read trimmed, but `range=%20yesterday`, `window=%201h` on funnels,
/// `reason=%20invalid_json` (and `from`, `limit`) on dead letters and `source=%20computed` on
/// category trends were 400s. Every such value is now read trimmed too; the ids that
/// recommendations look up are not (an id is matched exactly as ingest stored it).
#[tokio::test]
async fn query_values_with_surrounding_spaces_are_read_trimmed() {
    let test = TestApp::new();
    for path in [
        "/api/v1/query?metrics=orders&range=%20yesterday",
        "/api/v1/query?metrics=orders&range=today%20",
        "/api/v1/funnels?range=%20today&window=%201h",
        "/api/v1/dead-letters?reason=%20invalid_json&from=%200&limit=%2010",
        "/api/v1/category-trends?source=%20computed",
        "/api/v1/category-trends/rows?source=imported%20",
    ] {
        let response = test.get(path).await;
        assert_eq!(response.status, StatusCode::OK, "{path}: {:?}", response.json());
    }
    assert_eq!(
        test.get("/api/v1/query?metrics=orders&range=%20").await.status,
        StatusCode::BAD_REQUEST
    );
    // A padded calendar range still compares with the calendar period before it.
    let padded = test.get("/api/v1/query?metrics=orders&range=%20last_month&compare=true").await;
    let exact = test.get("/api/v1/query?metrics=orders&range=last_month&compare=true").await;
    assert_eq!(padded.json()["previous"]["from"], exact.json()["previous"]["from"]);
}

/// Every other query value was read trimmed, but `compare=%20true` was a 400 ("provided
/// string was not `true` or `false`": serde reads a boolean strictly). A padded boolean is now
/// read as the other values are; a value that is neither is still a 400 naming `compare` and
/// saying what it takes.
#[tokio::test]
async fn a_padded_compare_flag_is_read_trimmed() {
    let test = TestApp::new();
    let exact = test.get("/api/v1/query?metrics=orders&range=yesterday&compare=true").await;
    assert_eq!(exact.status, StatusCode::OK, "{:?}", exact.json());
    for padded in ["%20true", "true%20", "%20true%20"] {
        let response = test
            .get(&format!("/api/v1/query?metrics=orders&range=yesterday&compare={padded}"))
            .await;
        assert_eq!(response.status, StatusCode::OK, "{padded}: {:?}", response.json());
        assert_eq!(
            response.json()["previous"]["from"],
            exact.json()["previous"]["from"],
            "{padded}"
        );
    }
    let off = test.get("/api/v1/query?metrics=orders&compare=false%20").await;
    assert_eq!(off.status, StatusCode::OK, "{:?}", off.json());
    assert_eq!(off.json().get("previous"), None);

    let wrong = test.get("/api/v1/query?metrics=orders&compare=yes-please").await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    let error = wrong.json()["error"].clone();
    assert_eq!(error["details"]["parameter"], "compare", "{error}");
    assert_eq!(error["details"]["reason"], r#"must be true or false, got "yes-please""#);

    // A POSTed query still takes a JSON boolean.
    let posted = test
        .post_json(
            "/api/v1/query",
            r#"{"metrics": ["orders"], "range": "yesterday", "compare": true}"#,
        )
        .await;
    assert_eq!(posted.status, StatusCode::OK, "{:?}", posted.json());
    assert_eq!(posted.json()["previous"]["from"], exact.json()["previous"]["from"]);
}
