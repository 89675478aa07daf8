//! Golden test: a day of one shop's events from a fixture file, sent as NDJSON, and the numbers
//! every report must show, from a file of expectations worked out by hand
//! (`tests/fixtures/shop_day.expected.json`; its `about` says what the day contains). The same
//! figures are checked again after a restart.

use axum::body::Body;
use axum::http::StatusCode;
use serde_json::Value;

use crate::support::{TestApp, post};

const EVENTS: &str = include_str!("../fixtures/shop_day.ndjson");
const EXPECTED: &str = include_str!("../fixtures/shop_day.expected.json");

async fn check(test: &TestApp, expected: &Value) {
    for case in expected["cases"].as_array().unwrap() {
        let query = case["query"].as_str().unwrap();
        let response = test.get(query).await;
        assert_eq!(response.status, StatusCode::OK, "{query}: {:?}", response.json());
        let body = response.json();
        if let Some(totals) = case.get("totals") {
            for (metric, value) in totals.as_object().unwrap() {
                assert_eq!(&body["totals"][metric], value, "{query}: {metric}");
            }
        }
        if let Some(groups) = case.get("groups") {
            let actual = body["groups"].as_array().unwrap();
            assert_eq!(actual.len(), groups.as_array().unwrap().len(), "{query}: {actual:?}");
            for (want, got) in groups.as_array().unwrap().iter().zip(actual) {
                assert_eq!(want["key"], got["key"], "{query}");
                for (metric, value) in want["values"].as_object().unwrap() {
                    assert_eq!(&got["values"][metric], value, "{query}: {} {metric}", want["key"]);
                }
            }
        }
        if let Some(points) = case.get("series_nonzero") {
            let series = body["series"].as_array().unwrap();
            let nonzero: serde_json::Map<String, Value> = series
                .iter()
                .filter(|point| point["values"]["page_views"] != 0)
                .map(|point| {
                    (
                        point["start"].as_str().unwrap().to_owned(),
                        point["values"]["page_views"].clone(),
                    )
                })
                .collect();
            assert_eq!(&Value::Object(nonzero), points, "{query}");
        }
        if let Some(sessions) = case.get("funnel_sessions") {
            let actual: Vec<Value> = body["overall"]["steps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|step| step["sessions"].clone())
                .collect();
            assert_eq!(&Value::Array(actual), sessions, "{query}");
        }
    }
}

#[tokio::test]
async fn a_day_of_one_shop_gives_the_numbers_worked_out_by_hand() {
    let expected: Value = serde_json::from_str(EXPECTED).unwrap();
    let test = TestApp::new();
    let request = post("/api/v1/events")
        .header("content-type", "application/x-ndjson")
        .body(Body::from(EVENTS))
        .unwrap();
    let response = test.send(request).await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.json());
    assert_eq!(response.json()["accepted"], expected["ingest"]["accepted"]);
    assert_eq!(response.json()["duplicates"], expected["ingest"]["duplicates"]);
    check(&test, &expected).await;

    let test = test.restart(|_| {});
    check(&test, &expected).await;
}
