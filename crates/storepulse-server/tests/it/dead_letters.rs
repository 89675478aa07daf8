//! The dead-letter API and replay.

use axum::http::StatusCode;

use crate::support::TestApp;

#[tokio::test]
async fn pages_and_filters() {
    let test = TestApp::new();
    for index in 0..5 {
        test.post_json(
            "/api/v1/events",
            &format!(r#"{{"type":"search","query":"q{index}","bogus":1}}"#),
        )
        .await;
    }
    test.post_json("/api/v1/events", r#"{"type":"purchase"}"#).await;
    test.flush_dead_letters();
    let page = test.get("/api/v1/dead-letters?limit=2").await.json();
    assert_eq!(page["entries"].as_array().unwrap().len(), 2);
    assert_eq!(page["next"], 2);
    assert_eq!(page["entries"][0]["reasons"][0]["code"], "unknown_field");
    assert!(page["entries"][0]["received_at"].as_str().unwrap().ends_with('Z'));
    let rest = test.get("/api/v1/dead-letters?from=2&limit=100").await.json();
    assert_eq!(rest["entries"].as_array().unwrap().len(), 4);
    assert!(rest["next"].is_null());
    let missing = test.get("/api/v1/dead-letters?reason=missing").await.json();
    assert_eq!(missing["entries"].as_array().unwrap().len(), 1);
    assert_eq!(missing["entries"][0]["offset"], 5);
}

/// A rejected event naming its visitor's address (`ip`, Segment's `context.ip`) kept it raw in
/// the dead-letter log, on disk for 30 days and served by the API, whatever
/// `privacy.client_ip` said. Unless addresses are kept raw, dead letters keep none.
#[tokio::test]
async fn dead_letters_keep_no_client_address() {
    use storepulse_server::config::IpStorage;
    for (mode, kept) in
        [(IpStorage::Hashed, false), (IpStorage::None, false), (IpStorage::Raw, true)]
    {
        let test = TestApp::with_config(|config| config.privacy.client_ip = mode);
        test.post_json("/api/v1/events", r#"{"type":"search","ip":"8.8.8.8"}"#).await;
        let segment = r#"{"userId":"u","event":"Product Viewed","properties":{"price":"abc"},"context":{"ip":"8.8.4.4"}}"#;
        test.post_json("/v1/track", segment).await;
        test.flush_dead_letters();
        let page = test.get("/api/v1/dead-letters").await.json().to_string();
        assert_eq!(page.contains("8.8.8.8"), kept, "{page}");
        assert_eq!(page.contains("8.8.4.4"), kept, "{page}");
        let on_disk = std::fs::read_dir(test.dir.path().join("dead-letters"))
            .unwrap()
            .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
            .any(|bytes| bytes.windows(7).any(|window| window == b"8.8.8.8"));
        assert_eq!(on_disk, kept);
    }
}

#[tokio::test]
async fn bad_parameters_name_the_parameter() {
    let test = TestApp::new();
    for (query, parameter) in [
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("from=-1", "from"),
        ("reason=nope", "reason"),
    ] {
        let response = test.get(&format!("/api/v1/dead-letters?{query}")).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{query}");
        let message = response.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(message.starts_with(parameter), "{query}: {message}");
        // The documented error shape: `details.parameter` names it too.
        assert_eq!(response.json()["error"]["details"]["parameter"], parameter, "{query}");
    }
    let response = test.get("/api/v1/dead-letters?limt=5").await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert!(response.json()["error"]["message"].as_str().unwrap().contains("limt"));
}

#[tokio::test]
async fn replay_ingests_what_now_passes_and_only_once() {
    // Orders with three lines are refused under a two-line limit...
    let test = TestApp::with_config(|config| config.ingest.limits.max_items = 2);
    let order =
        r#"{"type":"purchase","order":{"id":"o1"},"items":[{"id":"a"},{"id":"b"},{"id":"c"}]}"#;
    assert_eq!(
        test.post_json("/api/v1/events", order).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    test.post_json("/ingest", r#"{"event_type":"page_view"}"#).await;
    test.flush_dead_letters();
    // ...and accepted once the limit is raised.
    let test = test.restart(|config| config.ingest.limits.max_items = 10);
    let report = replay(&test).await;
    assert_eq!(report["examined"], 2);
    assert_eq!(report["replayed"], 1);
    assert_eq!(report["still_invalid"], 1);
    let stored = test.stored_events();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].items.len(), 3);
    assert_eq!(stored[0].event_id, "dl-0-0");
    let again = replay(&test).await;
    assert_eq!(again["replayed"], 0);
    assert_eq!(again["duplicates"], 1);
    assert_eq!(test.stored_events().len(), 1);
}

/// A Segment call a write key routed to its store is replayed into that store, and a call
/// posted to a one-letter path is replayed as the call the path stands for.
#[tokio::test]
async fn replay_keeps_the_write_keys_store_and_the_paths_call() {
    let keyed = |config: &mut storepulse_server::config::Config, max_items: usize| {
        config.ingest.write_keys.insert("wk_eu".into(), "shop-eu".into());
        config.ingest.limits.max_items = max_items;
    };
    let test = TestApp::with_config(|config| keyed(config, 1));
    let order = r#"{"event":"Order Completed","userId":"u1","writeKey":"wk_eu","properties":{"order_id":"o1","products":[{"product_id":"a","price":1},{"product_id":"b","price":2}]}}"#;
    assert_eq!(test.post_json("/v1/track", order).await.status, StatusCode::BAD_REQUEST);
    // analytics.js's /v1/t is a track call: a page-shaped body is refused, then and now.
    let page_on_track = r#"{"type":"page","userId":"u1","writeKey":"wk_eu","properties":{"url":"https://shop.test/"}}"#;
    assert_eq!(test.post_json("/v1/t", page_on_track).await.status, StatusCode::BAD_REQUEST);
    test.flush_dead_letters();
    let test = test.restart(|config| keyed(config, 10));
    let report = replay(&test).await;
    assert_eq!((report["replayed"].clone(), report["still_invalid"].clone()), (1.into(), 1.into()));
    let stored = test.stored_events();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].store, "shop-eu");
}

/// A body refused as not UTF-8 was kept with U+FFFD in place of its bad bytes, and a replay
/// (with nothing changed) then stored that mangled text as if it had been sent.
#[tokio::test]
async fn a_payload_that_was_not_utf8_is_never_replayed() {
    let test = TestApp::new();
    let body = b"{\"type\":\"search\",\"query\":\"\xff\xfe\"}".to_vec();
    let request = crate::support::post("/api/v1/events")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body))
        .unwrap();
    assert_eq!(test.send(request).await.status, StatusCode::BAD_REQUEST);
    test.flush_dead_letters();
    let page = test.get("/api/v1/dead-letters").await.json();
    assert_eq!(page["entries"][0]["payload_not_utf8"], true, "{page}");
    let report = replay(&test).await;
    assert_eq!((report["replayed"].clone(), report["not_utf8"].clone()), (0.into(), 1.into()));
    assert!(test.stored_events().is_empty());
}

/// A refused seed-4 buy was replayed as a native event, which it never is: raising the limit
/// that refused it and replaying recovered nothing.
#[tokio::test]
async fn a_refused_buy_is_replayed_as_a_buy_and_only_once() {
    let test = TestApp::with_config(|config| config.ingest.limits.max_quantity = 10);
    let buy = r#"{"user_id":1,"promotion_id":2,"product_id":3,"product_quantity":20}"#;
    assert_eq!(test.post_json("/buy", buy).await.status, StatusCode::UNPROCESSABLE_ENTITY);
    test.flush_dead_letters();
    let test = test.restart(|config| config.ingest.limits.max_quantity = 100);
    let report = replay(&test).await;
    assert_eq!(report["replayed"], 1, "{report}");
    assert_eq!(test.get("/stats").await.json()["total_buys"], 20);
    assert_eq!(replay(&test).await["duplicates"], 1);
    assert_eq!(test.get("/stats").await.json()["total_buys"], 20);
}

/// A buy or a seed-3 event refused with a byte order mark before its JSON stayed refused on
/// replay, as invalid JSON, once the limit that refused it was raised: the seeds' doors skip
/// the mark when the request comes in, and a replay reads the body as its door does.
#[tokio::test]
async fn a_refused_seed_body_with_a_byte_order_mark_is_replayed() {
    let test = TestApp::with_config(|config| {
        config.ingest.limits.max_quantity = 10;
        config.ingest.limits.max_id_chars = 4;
    });
    let buy = "\u{feff}{\"user_id\":1,\"promotion_id\":2,\"product_id\":3,\"product_quantity\":20}";
    assert_eq!(test.post_json("/buy", buy).await.status, StatusCode::UNPROCESSABLE_ENTITY);
    let seed_3 = "\u{feff}{\"event_type\":\"page_view\",\"page_url\":\"/shoes\",\"user_id\":\"user_1\",\"session_id\":\"s1\",\"timestamp\":\"2026-11-22T01:00:00Z\"}";
    assert_eq!(test.post_json("/ingest", seed_3).await.status, StatusCode::UNPROCESSABLE_ENTITY);
    test.flush_dead_letters();
    let test = test.restart(|config| {
        config.ingest.limits.max_quantity = 100;
        config.ingest.limits.max_id_chars = 128;
    });
    let report = replay(&test).await;
    assert_eq!(report["replayed"], 2, "{report}");
    assert_eq!(test.get("/stats").await.json()["total_buys"], 20);
}

/// A replay rebuilt the request's context with no header time, no `User-Agent` and no proxy
/// country, so an event refused by a limit, once the limit was raised and it was replayed,
/// counted at its receive time rather than its `X-Timestamp`, with no device and no country.
#[tokio::test]
async fn a_replayed_event_keeps_its_requests_header_time_device_and_country() {
    use storepulse_model::TimeSource;
    use storepulse_model::event::DeviceType;
    let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 \
                  (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
    let test = TestApp::with_config(|config| config.ingest.limits.max_properties_bytes = 8);
    let page_view = r#"{"type":"page_view","event_id":"pv-1","page":{"url":"https://shop.test/a"},"properties":{"campaign":"winter"}}"#;
    let request = crate::support::post("/api/v1/events")
        .header("content-type", "application/json")
        .header("x-timestamp", "2026-11-21T09:00:00Z")
        .header("user-agent", iphone)
        .header("cf-ipcountry", "de")
        .body(axum::body::Body::from(page_view))
        .unwrap();
    // From a trusted proxy (10.0.0.0/8 by default), whose country header is believed.
    let response = test.send_from(request, "10.1.2.3:4000").await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    test.flush_dead_letters();
    let test = test.restart(|config| config.ingest.limits.max_properties_bytes = 8192);
    let report = replay(&test).await;
    assert_eq!(report["replayed"], 1, "{report}");
    let stored = test.stored_events();
    assert_eq!(stored.len(), 1);
    let event = &stored[0];
    assert_eq!(event.event_time.to_rfc3339(), "2026-11-21T09:00:00.000Z");
    assert_eq!(event.time_source, TimeSource::ClientHeader);
    let device = event.device.as_ref().expect("the device the User-Agent names");
    assert_eq!(device.device_type, DeviceType::Mobile);
    assert_eq!(device.user_agent.as_deref(), Some(iphone));
    assert_eq!(event.country.as_deref(), Some("DE"));
}

/// A dead letter was stamped when it was recorded, after its body had been read and validated,
/// so a replayed event's receive time (its time, when it had no other) was late by as long as
/// the body took to arrive: up to `http.request_timeout`.
#[tokio::test]
async fn a_replayed_event_keeps_its_requests_receive_time() {
    let test = TestApp::with_config(|config| config.ingest.limits.max_properties_bytes = 8);
    let search = r#"{"type":"search","query":"boots","properties":{"campaign":"winter"}}"#;
    let sent = chrono::Utc::now().timestamp_millis();
    let request = crate::support::post("/api/v1/events")
        .header("content-type", "application/json")
        .body(axum::body::Body::new(SlowBody::new(search, SLOW_BODY_DELAY)))
        .unwrap();
    assert_eq!(test.send(request).await.status, StatusCode::UNPROCESSABLE_ENTITY);
    test.flush_dead_letters();
    let test = test.restart(|config| config.ingest.limits.max_properties_bytes = 8192);
    assert_eq!(replay(&test).await["replayed"], 1);
    let event = &test.stored_events()[0];
    let delay = SLOW_BODY_DELAY.as_millis() as i64;
    assert!(event.received_at.0 < sent + delay, "{} is after the body", event.received_at);
    assert_eq!(event.event_time, event.received_at);
}

const SLOW_BODY_DELAY: std::time::Duration = std::time::Duration::from_millis(400);

/// A body whose bytes arrive only after a delay, as from a slow client.
struct SlowBody {
    delay: std::pin::Pin<Box<tokio::time::Sleep>>,
    bytes: Option<axum::body::Bytes>,
}

impl SlowBody {
    fn new(text: &'static str, delay: std::time::Duration) -> Self {
        Self { delay: Box::pin(tokio::time::sleep(delay)), bytes: Some(text.into()) }
    }
}

impl hyper::body::Body for SlowBody {
    type Data = axum::body::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::task::ready!(self.delay.as_mut().poll(context));
        std::task::Poll::Ready(self.bytes.take().map(|bytes| Ok(hyper::body::Frame::data(bytes))))
    }
}

async fn replay(test: &TestApp) -> serde_json::Value {
    let request = crate::support::post("/api/v1/dead-letters/replay")
        .body(axum::body::Body::empty())
        .unwrap();
    test.send(request).await.json()
}

/// On a full disk the dead-letter writer loses entries: they were counted as written and the
/// dropped counter stayed 0, so an alert on lost dead letters never fired.
#[tokio::test]
async fn dead_letters_lost_to_a_write_error_count_as_dropped_not_written() {
    let test = TestApp::new();
    let metric = |text: &str, name: &str| -> u64 {
        text.lines()
            .filter(|line| line.starts_with(name))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    test.app.dead_letters.log().lock().unwrap().fault_injector().fail_next_writes(2);
    test.post_json("/api/v1/events", r#"[{"type":"search","query":"x"},{"type":"bogus"}]"#).await;
    test.flush_dead_letters();
    test.post_json("/api/v1/events", r#"{"type":"bogus"}"#).await;
    test.flush_dead_letters();
    let text = String::from_utf8(test.get("/prometheus").await.bytes).unwrap();
    assert_eq!(metric(&text, "storepulse_dead_letters_total{"), 1, "{text}");
    assert_eq!(metric(&text, "storepulse_dead_letters_dropped_total "), 1, "{text}");
    let stored = test.get("/api/v1/dead-letters").await.json();
    assert_eq!(stored["entries"].as_array().unwrap().len(), 1);
}
