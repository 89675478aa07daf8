//! The native intake: what a sender sees, and what the log keeps.

use std::io::Write;

use axum::body::Body;
use axum::http::StatusCode;
use serde_json::json;
use storepulse_model::{EventType, TimeSource};

use crate::support::{TestApp, post};

const PAGE_VIEW: &str =
    r#"{"event_id":"e1","type":"page_view","user_id":"u1","page":{"url":"https://shop.test/"}}"#;

#[tokio::test]
async fn a_single_event_is_stored_and_acknowledged_with_its_id() {
    let test = TestApp::new();
    let response = test.post_json("/api/v1/events", PAGE_VIEW).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(
        response.json(),
        json!({ "accepted": 1, "duplicates": 0, "rejected": [], "event_id": "e1" })
    );
    let stored = test.stored_events();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].event_id, "e1");
    assert_eq!(stored[0].event_type, EventType::PageView);
}

#[tokio::test]
async fn events_without_ids_get_server_ids() {
    let test = TestApp::new();
    let response = test.post_json("/api/v1/events", r#"{"type":"search","query":"boots"}"#).await;
    let id = response.json()["event_id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "a UUID");
    assert_eq!(test.stored_events()[0].event_id, id);
    assert!(test.stored_events()[0].event_id_generated);
}

#[tokio::test]
async fn a_batch_keeps_its_valid_events_and_lists_the_invalid_ones() {
    let test = TestApp::new();
    let body = json!([
        { "type": "page_view", "page": { "url": "/a" } },
        { "type": "purchase", "order": { "id": "o1" }, "items": [{ "id": "p", "quantity": 0 }] },
        { "type": "add_to_cart", "product": { "id": "p1", "price": 5 } },
        "not an object",
    ]);
    let response = test.post_json("/api/v1/events", &body.to_string()).await;
    assert_eq!(response.status, StatusCode::OK);
    let answer = response.json();
    assert_eq!(answer["accepted"], 2);
    let rejected = answer["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 2);
    assert_eq!(rejected[0]["index"], 1);
    assert_eq!(rejected[0]["errors"][0]["field"], "items[0].quantity");
    assert_eq!(rejected[0]["errors"][0]["message"], "must be > 0");
    assert_eq!(rejected[1]["index"], 3);
    assert_eq!(test.stored_events().len(), 2);
    test.flush_dead_letters();
    let dead = test.get("/api/v1/dead-letters").await.json();
    assert_eq!(dead["entries"].as_array().unwrap().len(), 2);
    assert_eq!(dead["entries"][0]["index"], 1);
}

#[tokio::test]
async fn all_invalid_is_422_with_every_error() {
    let test = TestApp::new();
    let response = test.post_json("/api/v1/events", r#"[{"type":"nope"},{"user_id":5}]"#).await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    let answer = response.json();
    assert_eq!(answer["error"]["code"], "validation_failed");
    let rejected = &answer["error"]["details"]["rejected"];
    assert_eq!(rejected[0]["errors"][0]["code"], "unknown_event_type");
    let fields: Vec<&str> = rejected[1]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["user_id", "type"]);
    assert!(test.stored_events().is_empty());
}

#[tokio::test]
async fn malformed_bodies_are_400_and_dead_lettered_with_the_payload() {
    let test = TestApp::new();
    let response = test.post_json("/api/v1/events", r#"[{"type":"page_view""#).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(response.json()["error"]["code"], "invalid_body");
    let response = test.post_json("/api/v1/events", "").await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    test.flush_dead_letters();
    let dead = test.get("/api/v1/dead-letters?reason=invalid_json").await.json();
    assert_eq!(dead["entries"][0]["payload"], r#"[{"type":"page_view""#);
}

#[tokio::test]
async fn too_large_bodies_and_batches_are_413() {
    let test = TestApp::with_config(|config| {
        config.http.max_body_bytes = 1000;
        config.ingest.limits.max_batch_events = 2;
    });
    let big = format!(r#"{{"type":"search","query":"{}"}}"#, "x".repeat(2000));
    let response = test.post_json("/api/v1/events", &big).await;
    assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(response.json()["error"]["details"]["limit_bytes"], 1000);
    let three = r#"[{"type":"search","query":"a"},{"type":"search","query":"b"},{"type":"search","query":"c"}]"#;
    let response = test.post_json("/api/v1/events", three).await;
    assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(response.json()["error"]["message"].as_str().unwrap().contains("limit is 2"));
    let details = &response.json()["error"]["details"];
    assert_eq!((&details["max_batch_events"], &details["events"]), (&2.into(), &3.into()));
    assert!(test.stored_events().is_empty());
}

#[tokio::test]
async fn wrong_content_type_is_415_and_the_payload_is_kept() {
    let test = TestApp::new();
    let request = post("/api/v1/events")
        .header("content-type", "application/xml")
        .body(Body::from("<event/>"))
        .unwrap();
    let response = test.send(request).await;
    assert_eq!(response.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    test.flush_dead_letters();
    let dead = test.get("/api/v1/dead-letters?reason=unsupported_content_type").await.json();
    assert_eq!(dead["entries"][0]["payload"], "<event/>");
    assert_eq!(dead["entries"][0]["content_type"], "application/xml");
}

#[tokio::test]
async fn ndjson_and_send_beacon_text_bodies_work() {
    let test = TestApp::new();
    let ndjson = "{\"type\":\"search\",\"query\":\"a\"}\n\n{\"type\":\"search\",\"query\":\"b\"}\nnot json\n";
    let request = post("/api/v1/events")
        .header("content-type", "application/x-ndjson")
        .body(Body::from(ndjson))
        .unwrap();
    let answer = test.send(request).await.json();
    assert_eq!(answer["accepted"], 2);
    assert_eq!(answer["rejected"][0]["index"], 2);
    assert_eq!(answer["rejected"][0]["errors"][0]["code"], "invalid_json");
    assert!(answer.get("event_id").is_none(), "several events: no single id");

    let request = post("/api/v1/events")
        .header("content-type", "text/plain;charset=UTF-8")
        .body(Body::from(PAGE_VIEW))
        .unwrap();
    let response = test.send(request).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(test.stored_events().len(), 3);
    // A byte order mark before the object (as Windows tools write): still one event, its id
    // returned.
    let with_bom = format!("\u{feff}{}", PAGE_VIEW.replace("e1", "e-bom"));
    let request = post("/api/v1/events")
        .header("content-type", "text/plain")
        .body(Body::from(with_bom))
        .unwrap();
    let answer = test.send(request).await.json();
    assert_eq!(
        (answer["accepted"].clone(), answer["event_id"].clone()),
        (1.into(), "e-bom".into())
    );
}

/// One NDJSON line that is not UTF-8 is rejected on its own; the lines beside it are kept.
#[tokio::test]
async fn an_ndjson_line_that_is_not_utf8_is_rejected_alone() {
    let test = TestApp::new();
    let mut body = b"{\"type\":\"search\",\"query\":\"a\"}\n\n".to_vec();
    body.extend_from_slice(b"{\"type\":\"search\",\"query\":\"\xff\xfe\"}\n");
    body.extend_from_slice(b"{\"type\":\"search\",\"query\":\"c\"}\n");
    let request = post("/api/v1/events")
        .header("content-type", "application/x-ndjson")
        .body(Body::from(body))
        .unwrap();
    let response = test.send(request).await;
    assert_eq!(response.status, StatusCode::OK);
    let answer = response.json();
    assert_eq!(answer["accepted"], 2);
    assert_eq!(answer["rejected"][0]["index"], 1, "{answer}");
    assert_eq!(answer["rejected"][0]["errors"][0]["message"], "the line is not UTF-8 text");
    assert_eq!(test.stored_events().len(), 2);
}

/// Media types are case-insensitive (RFC 9110); parameters are ignored.
#[tokio::test]
async fn content_types_are_matched_without_case() {
    let test = TestApp::new();
    let two_lines = "{\"type\":\"search\",\"query\":\"a\"}\n{\"type\":\"search\",\"query\":\"b\"}";
    let request = post("/api/v1/events")
        .header("content-type", "APPLICATION/X-NDJSON")
        .body(Body::from(two_lines))
        .unwrap();
    let response = test.send(request).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.json()["accepted"], 2);
    // Read as one JSON document, two objects are a syntax error: proof it was taken as JSON.
    let request = post("/api/v1/events")
        .header("content-type", "Application/JSON; charset=utf-8")
        .body(Body::from(two_lines))
        .unwrap();
    assert_eq!(test.send(request).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn gzip_request_bodies_are_decompressed() {
    let test = TestApp::new();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(PAGE_VIEW.as_bytes()).unwrap();
    let request = post("/api/v1/events")
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(Body::from(encoder.finish().unwrap()))
        .unwrap();
    assert_eq!(test.send(request).await.status, StatusCode::OK);
    assert_eq!(test.stored_events().len(), 1);
    // A body that says gzip but is not: 400 naming why, and a dead letter with the reason.
    let broken = post("/api/v1/events")
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(Body::from(PAGE_VIEW))
        .unwrap();
    let response = test.send(broken).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(response.json()["error"]["code"], "body_unreadable");
    test.flush_dead_letters();
    let dead = test.get("/api/v1/dead-letters?reason=body_unreadable").await.json();
    assert_eq!(dead["entries"].as_array().unwrap().len(), 1, "{dead}");
}

#[tokio::test]
async fn gzip_is_read_however_it_is_spelled_and_other_encodings_get_a_json_415() {
    let test = TestApp::new();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(PAGE_VIEW.as_bytes()).unwrap();
    let gzipped = encoder.finish().unwrap();
    for (index, encoding) in ["GZIP", "x-gzip", "gzip, identity", " Gzip "].iter().enumerate() {
        let body = PAGE_VIEW.replace("\"e1\"", &format!("\"spelled-{index}\""));
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(body.as_bytes()).unwrap();
        let request = post("/api/v1/events")
            .header("content-type", "application/json")
            .header("content-encoding", *encoding)
            .body(Body::from(encoder.finish().unwrap()))
            .unwrap();
        let response = test.send(request).await;
        assert_eq!(response.status, StatusCode::OK, "{encoding}: {}", response.json());
    }
    assert_eq!(test.stored_events().len(), 4);
    for path in ["/api/v1/events", "/v1/track", "/ingest"] {
        for encoding in ["deflate", "br", "gzip, br"] {
            let request = post(path)
                .header("content-type", "application/json")
                .header("content-encoding", encoding)
                .body(Body::from(gzipped.clone()))
                .unwrap();
            let response = test.send(request).await;
            assert_eq!(response.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{path} {encoding}");
            let body = response.json();
            assert_eq!(body["error"]["code"], "unsupported_media_type", "{body}");
            assert!(body["error"]["message"].as_str().unwrap().contains("gzip"), "{body}");
            assert!(response.header("x-request-id").is_some());
        }
    }
}

#[tokio::test]
async fn retried_events_are_acknowledged_but_kept_once() {
    let test = TestApp::new();
    assert_eq!(test.post_json("/api/v1/events", PAGE_VIEW).await.json()["accepted"], 1);
    let again = test.post_json("/api/v1/events", PAGE_VIEW).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json()["duplicates"], 1);
    // The same id twice inside one batch is kept once too.
    let batch = format!("[{0},{0}]", PAGE_VIEW.replace("e1", "e2"));
    assert_eq!(test.post_json("/api/v1/events", &batch).await.json()["duplicates"], 1);
    // Another store is another namespace.
    let other_store = PAGE_VIEW.replace(r#""type""#, r#""store":"eu","type""#);
    assert_eq!(test.post_json("/api/v1/events", &other_store).await.json()["accepted"], 1);
    assert_eq!(test.stored_events().len(), 3);
}

#[tokio::test]
async fn deduplication_survives_a_restart() {
    let test = TestApp::new();
    test.post_json("/api/v1/events", PAGE_VIEW).await;
    let test = test.restart(|_| {});
    assert_eq!(test.post_json("/api/v1/events", PAGE_VIEW).await.json()["duplicates"], 1);
    assert_eq!(test.stored_events().len(), 1);
}

#[tokio::test]
async fn header_times_are_used_when_events_have_none() {
    let test = TestApp::new();
    let request = post("/api/v1/events")
        .header("content-type", "application/json")
        .header("x-client-time", "2026-11-21T10:00:00+01:00")
        .header("x-request-start", "t=1795000000.000")
        .body(Body::from(r#"{"type":"search","query":"a"}"#))
        .unwrap();
    test.send(request).await;
    let event = &test.stored_events()[0];
    assert_eq!(event.event_time.to_rfc3339(), "2026-11-21T09:00:00.000Z");
    assert_eq!(event.time_source, TimeSource::ClientHeader);
    assert!(event.received_at > event.event_time);
}

#[tokio::test]
async fn client_addresses_are_stored_as_daily_hashes() {
    let test = TestApp::new();
    let request = post("/api/v1/events")
        .header("content-type", "application/json")
        .header("x-forwarded-for", "10.0.0.7, 9.9.9.9")
        .body(Body::from(PAGE_VIEW))
        .unwrap();
    test.send_from(request, "10.1.2.3:4000").await;
    let stored = &test.stored_events()[0];
    let expected =
        test.app.anonymizer.client_value(Some("9.9.9.9".parse().unwrap()), stored.received_at);
    assert_eq!(stored.client.as_deref(), expected.as_deref());
    assert!(stored.client.as_deref().unwrap().starts_with("h:"));

    // An untrusted peer's forwarding header is ignored.
    let request = post("/api/v1/events")
        .header("content-type", "application/json")
        .header("x-forwarded-for", "9.9.9.9")
        .body(Body::from(PAGE_VIEW.replace("e1", "e9")))
        .unwrap();
    test.send_from(request, "93.184.216.34:4000").await;
    let stored = &test.stored_events()[1];
    let expected = test
        .app
        .anonymizer
        .client_value(Some("93.184.216.34".parse().unwrap()), stored.received_at);
    assert_eq!(stored.client.as_deref(), expected.as_deref());
}

#[tokio::test]
async fn raw_ip_storage_is_opt_in() {
    let test = TestApp::with_config(|config| {
        config.privacy.client_ip = storepulse_server::config::IpStorage::Raw
    });
    let request = post("/api/v1/events")
        .header("content-type", "application/json")
        .body(Body::from(PAGE_VIEW))
        .unwrap();
    test.send_from(request, "93.184.216.34:4000").await;
    assert_eq!(test.stored_events()[0].client.as_deref(), Some("93.184.216.34"));
}

#[tokio::test]
async fn storage_failures_are_never_acknowledged_and_ingest_recovers() {
    let test = TestApp::new();
    let faults = test.app.ingest.log().lock().unwrap().fault_injector();
    faults.fail_next_syncs(1);
    let response = test.post_json("/api/v1/events", PAGE_VIEW).await;
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.json()["error"]["code"], "storage_unavailable");
    assert_eq!(response.header("retry-after"), Some("1"));
    assert_eq!(test.get("/health").await.status, StatusCode::SERVICE_UNAVAILABLE);

    // A full disk: the write fails, and so does the log's retry without its zero-filled space.
    faults.fail_next_writes(2);
    assert_eq!(
        test.post_json("/api/v1/events", PAGE_VIEW).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );

    // The disk is back: the retry is stored once, and health follows.
    let response = test.post_json("/api/v1/events", PAGE_VIEW).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.json()["accepted"], 1);
    assert_eq!(test.get("/health").await.status, StatusCode::OK);
    let test = test.restart(|_| {});
    assert_eq!(test.stored_events().len(), 1, "nothing from the failed attempts survived");
}

#[tokio::test]
async fn seed3_ingest_is_compatible() {
    let test = TestApp::new();
    let body = r#"{"event_type":"page_view","page_url":"/products/shoes","user_id":"user_1","session_id":"s-1","timestamp":"2026-11-22T01:00:00Z"}"#;
    let response = test.post_json("/ingest", body).await;
    assert_eq!(response.status, StatusCode::ACCEPTED);
    let answer = response.json();
    assert_eq!(answer["status"], "accepted");
    assert_eq!(answer["id"], test.stored_events()[0].event_id.as_str());

    let response = test
        .post_json(
            "/ingest",
            r#"{"event_type":"page_view","user_id":123,"timestamp":"not-a-date"}"#,
        )
        .await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    let answer = response.json();
    let locs: Vec<String> = answer["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["loc"][1].as_str().unwrap().to_owned())
        .collect();
    assert!(
        locs.contains(&"user_id".to_owned())
            && locs.contains(&"page_url".to_owned())
            && locs.contains(&"timestamp".to_owned()),
        "{locs:?}"
    );
    assert_eq!(answer["detail"][0]["loc"][0], "body");
    assert!(answer["body"].as_str().unwrap().contains("not-a-date"));
    let response = test.post_json("/ingest", "{ bad json }").await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    // JSON that is no object: pydantic's model refusal at the body, as seed 3 answered.
    let response = test.post_json("/ingest", r#"[{"event_type":"page_view"}]"#).await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        (&response.json()["detail"][0]["type"], &response.json()["detail"][0]["loc"]),
        (&json!("model_attributes_type"), &json!(["body"]))
    );
    test.flush_dead_letters();
    let dead = test.get("/api/v1/dead-letters").await.json();
    assert_eq!(dead["entries"].as_array().unwrap().len(), 3);
    assert_eq!(dead["entries"][0]["endpoint"], "/ingest");
}

#[tokio::test]
async fn empty_batches_are_400_and_a_byte_order_mark_is_fine() {
    let test = TestApp::new();
    let response = test.post_json("/api/v1/events", "[]").await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert!(response.json()["error"]["message"].as_str().unwrap().contains("no events"));
    assert_eq!(
        test.post_json("/v1/batch", r#"{"batch":[]}"#).await.status,
        StatusCode::BAD_REQUEST
    );
    let with_bom = format!("\u{feff}{PAGE_VIEW}");
    assert_eq!(test.post_json("/api/v1/events", &with_bom).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_lone_surrogate_escape_is_read_as_the_replacement_character() {
    // `JSON.stringify` of a string whose emoji a tracker cut in half.
    let test = TestApp::new();
    let array = r#"[{"type":"search","query":"ok"},{"type":"search","query":"Sneakers \ud83d"}]"#;
    let response = test.post_json("/api/v1/events", array).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.json());
    assert_eq!(response.json()["accepted"], 2);
    let single = r#"{"type":"search","query":"\ude00 socks \\ud83d"}"#;
    assert_eq!(test.post_json("/api/v1/events", single).await.status, StatusCode::OK);
    let ndjson =
        "{\"type\":\"search\",\"query\":\"a\"}\n{\"type\":\"search\",\"query\":\"b\\ud83d\"}\n";
    let request = post("/api/v1/events")
        .header("content-type", "application/x-ndjson")
        .body(Body::from(ndjson))
        .unwrap();
    assert_eq!(test.send(request).await.json()["accepted"], 2);
    let batch = r#"{"batch":[{"type":"track","event":"Products Searched","userId":"u","properties":{"query":"trunc \ud83d"}}]}"#;
    let response = test.post_json("/v1/batch", batch).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.json());
    let track = r#"{"event":"Products Searched","userId":"u","properties":{"query":"t \ud83d"}}"#;
    assert_eq!(test.post_json("/v1/track", track).await.status, StatusCode::OK);
    let queries: Vec<String> = test
        .stored_events()
        .iter()
        .filter_map(|event| event.search_query.as_deref().map(str::to_owned))
        .collect();
    assert_eq!(
        queries,
        [
            "ok",
            "Sneakers \u{FFFD}",
            "\u{FFFD} socks \\ud83d",
            "a",
            "b\u{FFFD}",
            "trunc \u{FFFD}",
            "t \u{FFFD}"
        ]
    );
}

/// Cloudflare's `CF-IPCountry: XX` ("unknown") was stored as the country `XX`; `T1` (Tor) was
/// already dropped.
#[tokio::test]
async fn a_proxys_unknown_country_fills_no_country() {
    let test = TestApp::new();
    for (index, country) in ["XX", "T1", "de"].into_iter().enumerate() {
        let request = post("/api/v1/events")
            .header("content-type", "application/json")
            .header("cf-ipcountry", country)
            .body(Body::from(PAGE_VIEW.replace("e1", &format!("c{index}"))))
            .unwrap();
        assert_eq!(test.send_from(request, "10.1.2.3:4000").await.status, StatusCode::OK);
    }
    let countries: Vec<Option<String>> = test
        .stored_events()
        .iter()
        .map(|event| event.country.as_deref().map(str::to_owned))
        .collect();
    assert_eq!(countries, [None, None, Some("DE".to_owned())]);
}

/// `?store=shop-eu` was silently ignored and the event stored into the default store.
#[tokio::test]
async fn a_query_parameter_on_the_native_door_is_refused_naming_it() {
    let test = TestApp::new();
    let response = test.post_json("/api/v1/events?store=shop-eu", PAGE_VIEW).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    let error = &response.json()["error"];
    assert_eq!(error["code"], "invalid_parameter");
    assert_eq!(error["details"]["parameter"], "store", "{error}");
    assert!(test.stored_events().is_empty());
    assert_eq!(test.post_json("/api/v1/events?", PAGE_VIEW).await.status, StatusCode::OK);
}
