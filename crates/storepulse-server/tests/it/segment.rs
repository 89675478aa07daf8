//! Segment's tracking API as an unmodified Segment library would call it.

use std::io::Write;

use axum::body::Body;
use axum::http::StatusCode;
use serde_json::json;
use storepulse_model::EventType;

use crate::support::{TestApp, post};

#[tokio::test]
async fn a_library_batch_with_basic_auth_and_gzip_is_accepted() {
    let test = TestApp::new();
    let batch = json!({
        "batch": [
            { "type": "identify", "userId": "u1", "traits": { "plan": "gold" }, "messageId": "m1", "timestamp": "2026-11-21T10:00:00Z" },
            { "type": "track", "event": "Product Added", "userId": "u1", "messageId": "m2",
              "properties": { "product_id": "p1", "price": 19.99, "quantity": 2, "category": "Apparel" },
              "timestamp": "2026-11-21T10:00:01Z", "context": { "library": { "name": "analytics-node", "version": "2.0" } } },
            { "type": "page", "name": "Home", "anonymousId": "a1", "messageId": "m3", "properties": { "url": "https://shop.test/" } },
        ],
        "sentAt": "2026-11-21T10:00:02Z",
        "writeKey": "abc",
    });
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(batch.to_string().as_bytes()).unwrap();
    let request = post("/v1/batch")
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .header("authorization", "Basic YWJjOg==")
        .body(Body::from(encoder.finish().unwrap()))
        .unwrap();
    let response = test.send(request).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.json()["success"], true);
    assert_eq!(response.json()["accepted"], 3);
    let stored = test.stored_events();
    let types: Vec<EventType> = stored.iter().map(|event| event.event_type).collect();
    assert_eq!(types, [EventType::Identify, EventType::AddToCart, EventType::PageView]);
    assert_eq!(stored[1].product.as_ref().unwrap().price.unwrap().minor, 1999);
    assert_eq!(stored[1].event_id, "m2");
}

#[tokio::test]
async fn single_calls_map_by_endpoint() {
    let test = TestApp::new();
    let response = test.post_json("/v1/track", r#"{"event":"Order Completed","userId":"u","messageId":"x1","properties":{"order_id":"o1","revenue":25,"products":[{"product_id":"p","price":25}]}}"#).await;
    assert_eq!(response.status, StatusCode::OK);
    test.post_json("/v1/page", r#"{"anonymousId":"a","properties":{"path":"/cart"}}"#).await;
    test.post_json("/v1/screen", r#"{"anonymousId":"a","name":"Cart"}"#).await;
    test.post_json("/v1/identify", r#"{"userId":"u","traits":{"email":"x@y.z"}}"#).await;
    test.post_json("/v1/alias", r#"{"userId":"u","previousId":"a"}"#).await;
    test.post_json("/v1/group", r#"{"userId":"u","groupId":"g"}"#).await;
    let stored = test.stored_events();
    assert_eq!(stored.len(), 6);
    assert_eq!(stored[0].event_type, EventType::Purchase);
    assert_eq!(stored[0].order.as_ref().unwrap().total, Some(2500));
    assert_eq!(stored[2].page.as_ref().unwrap().path.as_deref(), Some("screen:Cart"));
}

/// A Segment order counts as a native one: `revenue` is its value before shipping and tax
/// (Segment's spec), a `promotion_id` credits the promotion, and "Order Cancelled" takes back
/// the whole order whatever of it the payload repeats.
#[tokio::test]
async fn segment_orders_count_like_native_ones() {
    let test = TestApp::new();
    let track = |message: &'static str| test.post_json("/v1/track", message);
    for message in [
        r#"{"event":"Promotion Clicked","userId":"u","properties":{"promotion_id":"xmas"}}"#,
        r#"{"event":"Order Completed","userId":"u","properties":{"order_id":"o1","revenue":30,"shipping":5,"tax":3,"promotion_id":"xmas","products":[{"product_id":"a","price":10},{"product_id":"b","price":20}]}}"#,
    ] {
        assert_eq!(track(message).await.status, StatusCode::OK, "{message}");
    }
    let query = "/api/v1/query?range=last_hour&metrics=orders,gross_revenue,net_revenue";
    assert_eq!(test.get(query).await.json()["totals"]["gross_revenue"], "38.00");
    let promotions = test.get("/api/v1/promotions?range=last_hour").await.json();
    let xmas = &promotions["groups"][0];
    assert_eq!((&xmas["key"], &xmas["values"]["orders"]), (&json!("xmas"), &json!(1)));
    // JavaScript numbers: a quantity of 2.0 is 2 (2.5 is still refused).
    let whole = r#"{"event":"Order Completed","userId":"u","properties":{"order_id":"o2","products":[{"product_id":"a","price":10,"quantity":2.0}]}}"#;
    assert_eq!(track(whole).await.status, StatusCode::OK);
    let half = r#"{"event":"Order Completed","userId":"u","properties":{"order_id":"o3","products":[{"product_id":"a","price":10,"quantity":2.5}]}}"#;
    assert_eq!(track(half).await.status, StatusCode::BAD_REQUEST);
    let units = test.get("/api/v1/query?range=last_hour&metrics=units&product=a").await;
    assert_eq!(units.json()["totals"]["units"], 3, "1 in o1, 2 in o2");
    let cancel = r#"{"event":"Order Cancelled","userId":"u","properties":{"order_id":"o1","revenue":30,"products":[{"product_id":"a","price":10},{"product_id":"b","price":20}]}}"#;
    assert_eq!(track(cancel).await.status, StatusCode::OK);
    // o1 is refunded whole; o2 (20.00) stands.
    assert_eq!(test.get(query).await.json()["totals"]["net_revenue"], "20.00");
}

/// Segment's `subtotal` is after discounts (its spec's example: revenue 25.00, subtotal 22.50,
/// discount 2.50, shipping 3.00, tax 2.00, total 27.50); read as the native subtotal, the
/// discount came off twice (25.00). Without `total`, the order totals 27.50 from `revenue` or
/// from `subtotal` alike, and by product the lines add up to what was paid for goods.
#[tokio::test]
async fn segment_subtotals_are_after_discounts() {
    let test = TestApp::new();
    let products = r#"[{"product_id":"monopoly","price":19,"quantity":1},{"product_id":"uno","price":3,"quantity":2}]"#;
    for (order, amounts) in
        [("s1", r#""revenue":25,"subtotal":22.5"#), ("s2", r#""subtotal":22.5"#)]
    {
        let message = format!(
            r#"{{"event":"Order Completed","userId":"u","properties":{{"order_id":"{order}",{amounts},"shipping":3,"tax":2,"discount":2.5,"currency":"USD","products":{products}}}}}"#
        );
        let response = test.post_json("/v1/track", &message).await;
        assert_eq!(response.status, StatusCode::OK, "{order}: {}", response.json());
    }
    let query = "/api/v1/query?range=last_hour&metrics=gross_revenue,orders";
    assert_eq!(test.get(query).await.json()["totals"]["gross_revenue"], "55.00", "2 × 27.50");
    let by_product = test.get(&format!("{query}&group_by=product")).await.json();
    let goods: f64 = by_product["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|group| group["values"]["gross_revenue"].as_str().unwrap().parse::<f64>().unwrap())
        .sum();
    assert!((goods - 45.0).abs() < 1e-9, "2 × 22.50 of goods: {goods}");
}

/// A refused order value is the only error reported: the order came by its value, so its
/// products are not also reported missing (the native door reports only the total).
#[tokio::test]
async fn a_refused_segment_order_value_is_reported_alone() {
    let test = TestApp::new();
    let message =
        r#"{"event":"Order Completed","userId":"u","properties":{"order_id":"o9","total":1e400}}"#;
    let response = test.post_json("/v1/track", message).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    let body = response.json().to_string();
    assert!(body.contains("properties.total"), "{body}");
    assert!(!body.contains("properties.products"), "{body}");
}

/// Segment's spec examples name countries (`"country": "United States"`): only two-letter
/// codes were kept, so real Segment traffic counted under no country, without a word.
#[tokio::test]
async fn segment_countries_are_read_as_codes_or_english_names() {
    let test = TestApp::new();
    for (user, country) in [("a", "Germany"), ("b", "United States"), ("c", "fr"), ("d", "Narnia")]
    {
        let message = format!(
            r#"{{"event":"Product Viewed","userId":"{user}","context":{{"location":{{"country":"{country}"}}}},"properties":{{"product_id":"p"}}}}"#
        );
        let response = test.post_json("/v1/track", &message).await;
        assert_eq!(response.status, StatusCode::OK, "{country}");
    }
    let countries: Vec<Option<String>> = test
        .stored_events()
        .iter()
        .map(|event| event.country.as_ref().map(|country| country.to_string()))
        .collect();
    // An unknown name still names no country (the event is kept).
    assert_eq!(countries, [Some("DE".into()), Some("US".into()), Some("FR".into()), None]);
}

#[tokio::test]
async fn a_page_with_only_a_name_is_stored_with_the_name_as_its_path() {
    let test = TestApp::new();
    let response = test.post_json("/v1/page", r#"{"userId":"u","name":"Home"}"#).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.json());
    let stored = test.stored_events();
    let page = stored[0].page.as_ref().unwrap();
    assert_eq!(page.path.as_deref(), Some("page:Home"));
    assert_eq!(page.title.as_deref(), Some("Home"));
}

#[tokio::test]
async fn an_over_long_screen_name_is_reported_under_name() {
    let test = TestApp::new();
    let long = "x".repeat(3000);
    let response =
        test.post_json("/v1/screen", &format!(r#"{{"userId":"u","name":"{long}"}}"#)).await;
    let body = response.json();
    let text = body.to_string();
    assert!(text.contains(r#""field":"name""#), "{}", &text[..text.len().min(2000)]);
    assert!(!text.contains(r#""field":"event""#), "{}", &text[..text.len().min(2000)]);
}

#[tokio::test]
async fn an_absurd_device_clock_is_distrusted_not_refused() {
    let test = TestApp::new();
    let response = test
        .post_json(
            "/v1/track",
            r#"{"userId":"u","event":"Signed Up","originalTimestamp":"0001-01-01T00:00:00Z","sentAt":"9999-12-31T23:59:59Z"}"#,
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.json());
    let stored = test.stored_events();
    assert!(stored[0].clock_distrusted);
    assert_eq!(stored[0].time_source, storepulse_model::TimeSource::Received);
    assert_eq!(stored[0].event_time, stored[0].received_at);
}

#[tokio::test]
async fn invalid_messages_are_reported_with_segment_paths() {
    let test = TestApp::new();
    let batch = r#"{"batch":[{"type":"track","event":"Product Viewed","userId":"u"},{"type":"track","event":"Signed Up","userId":"u"}]}"#;
    let response = test.post_json("/v1/batch", batch).await;
    assert_eq!(response.status, StatusCode::OK);
    let answer = response.json();
    assert_eq!(answer["accepted"], 1);
    assert_eq!(answer["rejected"][0]["errors"][0]["field"], "properties.product_id");

    let response = test.post_json("/v1/track", r#"{"event":"Product Viewed","userId":"u"}"#).await;
    assert_eq!(
        response.status,
        StatusCode::BAD_REQUEST,
        "all invalid: Segment clients must not retry"
    );
    let response = test.post_json("/v1/batch", r#"{"notbatch":[]}"#).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn analytics_js_short_paths_and_text_plain_bodies_work() {
    let test = TestApp::new();
    let track = r#"{"type":"track","event":"Product Viewed","anonymousId":"a1","messageId":"ajs-1","writeKey":"wk","properties":{"product_id":"p9"},"context":{"page":{"url":"https://shop.test/p/9"}},"_metadata":{"bundled":[]}}"#;
    let request =
        post("/v1/t").header("content-type", "text/plain").body(Body::from(track)).unwrap();
    assert_eq!(test.send(request).await.status, StatusCode::OK);
    let page = r#"{"type":"page","anonymousId":"a1","messageId":"ajs-2","properties":{"url":"https://shop.test/"}}"#;
    let request =
        post("/v1/p").header("content-type", "text/plain").body(Body::from(page)).unwrap();
    assert_eq!(test.send(request).await.status, StatusCode::OK);
    let batch = r#"{"batch":[{"type":"identify","userId":"u1","messageId":"ajs-3"}],"writeKey":"wk","sentAt":"2026-11-21T10:00:00Z"}"#;
    let request =
        post("/v1/b").header("content-type", "text/plain").body(Body::from(batch)).unwrap();
    assert_eq!(test.send(request).await.json()["accepted"], 1);
    let types: Vec<EventType> = test.stored_events().iter().map(|event| event.event_type).collect();
    assert_eq!(types, [EventType::ProductView, EventType::PageView, EventType::Identify]);
}

#[tokio::test]
async fn configured_write_keys_pick_the_store_and_refuse_strangers() {
    let test = TestApp::with_config(|config| {
        config.ingest.write_keys.insert("wk_eu".into(), "shop-eu".into());
        config.ingest.write_keys.insert("wk_us".into(), "shop-us".into());
    });
    let message = r#"{"event":"Signed Up","userId":"u1"}"#;
    // Basic auth: base64("wk_eu:")
    let request = post("/v1/track")
        .header("authorization", "Basic d2tfZXU6")
        .body(Body::from(message))
        .unwrap();
    assert_eq!(test.send(request).await.status, StatusCode::OK);
    let in_body = r#"{"event":"Signed Up","userId":"u2","writeKey":"wk_us"}"#;
    assert_eq!(test.post_json("/v1/track", in_body).await.status, StatusCode::OK);
    let stores: Vec<String> =
        test.stored_events().into_iter().map(|event| event.store.into()).collect();
    assert_eq!(stores, ["shop-eu", "shop-us"]);

    let response = test.post_json("/v1/track", message).await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    assert_eq!(response.json()["error"]["code"], "unauthorized");
    let unknown = r#"{"event":"Signed Up","userId":"u3","writeKey":"nope"}"#;
    assert_eq!(test.post_json("/v1/track", unknown).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(test.stored_events().len(), 2);
}

#[tokio::test]
async fn server_side_libraries_report_the_visitors_address_in_context_ip() {
    let test = TestApp::new();
    let message = r#"{"event":"Signed Up","userId":"u1","context":{"ip":"9.9.9.9"}}"#;
    let request = post("/v1/track")
        .header("content-type", "application/json")
        .body(Body::from(message))
        .unwrap();
    test.send_from(request, "93.184.216.34:5000").await;
    let stored = &test.stored_events()[0];
    let expected =
        test.app.anonymizer.client_value(Some("9.9.9.9".parse().unwrap()), stored.received_at);
    assert_eq!(stored.client.as_deref(), expected.as_deref());
    assert!(!stored.client.as_deref().unwrap().contains("9.9.9.9"), "stored hashed, not raw");
}

/// A bare array was refused as "invalid type: map, expected a sequence", backwards.
#[tokio::test]
async fn a_batch_sent_as_a_bare_array_is_told_the_shape() {
    let test = TestApp::new();
    let response =
        test.post_json("/v1/batch", r#"[{"type":"track","event":"E","userId":"u"}]"#).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    let message = response.json()["error"]["message"].as_str().unwrap().to_owned();
    assert_eq!(message, r#"the body must be an object {"batch": [messages]}, got an array"#);
}

/// Under a tight `ingest.limits.max_id_chars` a Segment `Product Viewed` was refused whole
/// (`event: is longer than 8 characters`): the event's name was held to the id limit. A name
/// is held to the text limit, as product and promotion names are; an id still to the id limit.
#[tokio::test]
async fn event_names_are_held_to_the_text_limit_not_the_id_limit() {
    let test = TestApp::with_config(|config| {
        config.ingest.limits.max_id_chars = 8;
        config.ingest.limits.max_text_chars = 20;
    });
    let viewed = |event: &str, product_id: &str| {
        json!({"type": "track", "event": event, "userId": "u1",
               "properties": {"product_id": product_id, "name": "Trail Runner"}})
        .to_string()
    };
    let response = test.post_json("/v1/track", &viewed("Product Viewed", "p1")).await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.json());
    assert_eq!(response.json()["accepted"], 1);
    let stored = test.stored_events();
    assert_eq!(stored[0].event_type, EventType::ProductView);
    assert_eq!(stored[0].name.as_deref(), Some("Product Viewed"));
    let native = r#"{"type": "custom", "name": "wishlist_added", "user_id": "u1"}"#;
    assert_eq!(test.post_json("/api/v1/events", native).await.status, StatusCode::OK);

    // Past the text limit, the name is refused under the field the client sent; an id past
    // the id limit too.
    for (event, product_id, field) in [
        ("Product Viewed From The Home Page", "p1", "event"),
        ("Product Viewed", "sku-123456789", "properties.product_id"),
    ] {
        let response = test.post_json("/v1/track", &viewed(event, product_id)).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{event}");
        let rejected = &response.json()["error"]["details"]["rejected"][0]["errors"][0];
        assert_eq!(rejected["field"], field, "{rejected}");
        assert_eq!(rejected["code"], "too_long", "{rejected}");
    }
}
