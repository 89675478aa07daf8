//! Seed 4's `/buy` and `/stats`, through the router.

use axum::body::Body;
use axum::http::StatusCode;
use serde_json::json;

use crate::support::{TestApp, post};

#[tokio::test]
async fn buys_count_units_and_stats_count_recent_buys() {
    let test = TestApp::new();
    let buy = |quantity: i64| {
        json!({"user_id": 1001, "promotion_id": 3, "product_id": 150, "product_quantity": quantity})
            .to_string()
    };
    let first = test.post_json("/buy", &buy(3)).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(
        first.json(),
        json!({"success": true, "buy_count": 3, "message": "Buy logged successfully. Total buys: 3"})
    );
    let second = test.post_json("/buy", &buy(5)).await.json();
    assert_eq!(second["buy_count"], 8);

    // A buy whose client clock says two hours ago (seed 4's x-client-time, Unix seconds).
    let two_hours_ago =
        (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
            - 7200)
            .to_string();
    let request = post("/buy")
        .header("content-type", "application/json")
        .header("x-client-time", two_hours_ago)
        .body(Body::from(buy(2)))
        .unwrap();
    assert_eq!(test.send(request).await.json()["buy_count"], 10);

    let stats = test.get("/stats").await;
    assert_eq!(stats.status, StatusCode::OK);
    let stats = stats.json();
    assert_eq!(stats["total_buys"], 10);
    assert_eq!(stats["n_recent_buys"], 2, "records in the last hour, as seed 4 counted");
    assert_eq!(stats["recent_units"], 8);
    assert_eq!(stats["timeframe_hours"], 1.0);
    assert_eq!(stats["server_status"], "healthy");
    // Seed 4's uptime (`10s`, `1h 0m 0s`), and a time Python 3.10's `fromisoformat` reads.
    let uptime = stats["uptime_formatted"].as_str().unwrap();
    assert!(uptime.ends_with('s') && !uptime.contains(':'), "{uptime}");
    assert!(stats["current_time"].as_str().unwrap().ends_with("+00:00"), "{stats}");
    let wide = test.get("/stats?timeframe_hours=3").await.json();
    assert_eq!(
        (wide["n_recent_buys"].clone(), wide["recent_units"].clone()),
        (json!(3), json!(10))
    );

    // The buys are purchases with a promotion: they show in the promotion report too (over
    // the last 24 hours: "today" would miss the two-hour-old buy shortly after midnight).
    let promotions = test.get("/api/v1/promotions?range=last_24_hours").await.json();
    let promotion = &promotions["groups"][0];
    assert_eq!(promotion["key"], "3");
    assert_eq!(promotion["values"]["units"], 10);
}

/// `/stats` split its query by hand: `timeframe_hours=%32` was a 422 and an encoded key was
/// not recognised; a repeated key took the first value where FastAPI takes the last.
#[tokio::test]
async fn stats_reads_its_query_as_fastapi_does() {
    let test = TestApp::new();
    for (query, hours) in [
        ("timeframe_hours=%32", 2.0),
        ("timeframe_hours=0%2E5", 0.5),
        ("timeframe%5Fhours=3", 3.0),
        ("timeframe_hours=0.5&timeframe_hours=2", 2.0),
    ] {
        let response = test.get(&format!("/stats?{query}")).await;
        assert_eq!(response.status, StatusCode::OK, "{query}");
        assert_eq!(response.json()["timeframe_hours"], hours, "{query}");
    }
    let response = test.get("/stats?timeframe_hours=%61bc").await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(response.json()["detail"][0]["input"], "abc");
}

#[tokio::test]
async fn invalid_buys_and_timeframes_answer_seed4s_422s() {
    let test = TestApp::new();
    let response = test
        .post_json(
            "/buy",
            r#"{"user_id": 1, "promotion_id": "x", "product_id": 2, "product_quantity": 0}"#,
        )
        .await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    let detail = response.json()["detail"].clone();
    let locations: Vec<_> = detail.as_array().unwrap().iter().map(|d| d["loc"].clone()).collect();
    assert!(locations.contains(&json!(["body", "promotion_id"])), "{detail}");
    assert!(locations.contains(&json!(["body", "product_quantity"])), "{detail}");

    let response = test.post_json("/buy", r#"{"user_id": 1, "promotion_id": 2}"#).await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    let missing: Vec<_> =
        response.json()["detail"].as_array().unwrap().iter().map(|d| d["type"].clone()).collect();
    assert_eq!(missing, vec![json!("missing"), json!("missing")]);

    // Extra keys are ignored, integer strings accepted (pydantic's lax mode).
    let response = test
        .post_json("/buy", r#"{"user_id": "7", "promotion_id": 2, "product_id": 9, "product_quantity": "4", "note": "x"}"#)
        .await;
    assert_eq!(response.json()["buy_count"], 4);

    for value in ["0.09", "168.5", "-1"] {
        let response = test.get(&format!("/stats?timeframe_hours={value}")).await;
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(response.json()["detail"].as_str().unwrap().contains("1 validation error"));
    }
    let response = test.get("/stats?timeframe_hours=soon").await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(response.json()["detail"][0]["loc"], json!(["query", "timeframe_hours"]));
    assert_eq!(test.get("/stats?timeframe_hours=168").await.status, StatusCode::OK);

    test.flush_dead_letters();
    let dead = test.get("/api/v1/dead-letters").await.json();
    assert_eq!(dead["entries"].as_array().unwrap().len(), 2, "both invalid buys are dead-lettered");
}

/// Under a tight `ingest.limits.max_id_chars` every buy was a 422 naming `name` and
/// `order.id`, fields no /buy body has: the event name and order id Storepulse gives a buy
/// were checked against the client's id limit. Only the client's own fields are now, and a
/// refusal names the field the client sent.
#[tokio::test]
async fn a_tight_id_limit_refuses_only_the_fields_a_buy_sent() {
    let test = TestApp::with_config(|config| config.ingest.limits.max_id_chars = 8);
    let buy = |user_id: i64| {
        json!({"user_id": user_id, "promotion_id": 3, "product_id": 150, "product_quantity": 2})
            .to_string()
    };
    let accepted = test.post_json("/buy", &buy(1001)).await;
    assert_eq!(accepted.status, StatusCode::OK, "{:?}", accepted.json());
    assert_eq!(accepted.json()["buy_count"], 2);
    let stored = test.stored_events();
    assert_eq!(stored[0].name.as_deref(), Some("promotion_buy"));
    let order_id = stored[0].order.as_ref().and_then(|order| order.id.clone()).unwrap();
    assert!(order_id.starts_with("buy-") && order_id.len() > 8, "{order_id}");

    let refused = test.post_json("/buy", &buy(123_456_789)).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        refused.json(),
        json!({"detail": [{"type": "value_error", "loc": ["body", "user_id"],
                           "msg": "Value error, is longer than 8 characters",
                           "input": 123_456_789, "ctx": {"error": {}}}]})
    );
}

/// Refusals by Storepulse's ingest limits were listed in the native event's order (user_id,
/// product_id, product_quantity, promotion_id) where pydantic lists a model's errors in its
/// field order, and were worded as bare reasons without the form pydantic gives a
/// validator's `ValueError` ("Value error, …" with `ctx.error`).
#[tokio::test]
async fn limit_refusals_of_a_buy_follow_the_field_order_as_pydantic_value_errors() {
    let test = TestApp::with_config(|config| {
        config.ingest.limits.max_id_chars = 4;
        config.ingest.limits.max_quantity = 10;
    });
    let response = test
        .post_json(
            "/buy",
            r#"{"user_id":-1234,"promotion_id":23456,"product_id":34567,"product_quantity":11}"#,
        )
        .await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    let refusal = |field: &str, reason: &str, input: i64| {
        json!({"type": "value_error", "loc": ["body", field], "msg": format!("Value error, {reason}"),
               "input": input, "ctx": {"error": {}}})
    };
    assert_eq!(
        response.json(),
        json!({"detail": [
            refusal("user_id", "is longer than 4 characters", -1234),
            refusal("promotion_id", "is longer than 4 characters", 23456),
            refusal("product_id", "is longer than 4 characters", 34567),
            refusal("product_quantity", "must be <= 10", 11),
        ]})
    );
}

/// Refusals were 422s in FastAPI's shape but not seed 4's wording: `product_quantity: 0` was a
/// `value_error` without pydantic's `ctx`, `null` a `missing` field, `[1]` an `int_parsing`
/// "must be a valid integer, not an array", a body that is no JSON `loc: ["body"]` with serde's
/// message, `[]` and `null` bodies `loc: ["body", ""]` typed `int_parsing`, and an out-of-range
/// `timeframe_hours` "timeframe_hours must be between 0.1 and 168.0 hours, got 200". Each is
/// now the body seed 4 (FastAPI 0.115, pydantic 2) answers.
#[tokio::test]
async fn refusals_are_the_422_bodies_seed_4_answered() {
    let test = TestApp::new();
    let buy = |quantity: &str| {
        format!(
            r#"{{"user_id": 1, "promotion_id": 2, "product_id": 3, "product_quantity": {quantity}}}"#
        )
    };
    let integer = "Input should be a valid integer";
    for (body, detail) in [
        (
            buy("0"),
            json!([{"type": "greater_than", "loc": ["body", "product_quantity"],
                    "msg": "Input should be greater than 0", "input": 0, "ctx": {"gt": 0}}]),
        ),
        (
            buy("-5"),
            json!([{"type": "greater_than", "loc": ["body", "product_quantity"],
                    "msg": "Input should be greater than 0", "input": -5, "ctx": {"gt": 0}}]),
        ),
        (
            r#"{"user_id": 1, "promotion_id": 2}"#.to_owned(),
            json!([
                {"type": "missing", "loc": ["body", "product_id"], "msg": "Field required",
                 "input": {"user_id": 1, "promotion_id": 2}},
                {"type": "missing", "loc": ["body", "product_quantity"], "msg": "Field required",
                 "input": {"user_id": 1, "promotion_id": 2}},
            ]),
        ),
        (
            buy(r#""x""#),
            json!([{"type": "int_parsing", "loc": ["body", "product_quantity"],
                    "msg": format!("{integer}, unable to parse string as an integer"), "input": "x"}]),
        ),
        (
            buy("1.5"),
            json!([{"type": "int_from_float", "loc": ["body", "product_quantity"],
                    "msg": format!("{integer}, got a number with a fractional part"), "input": 1.5}]),
        ),
        (
            r#"{"user_id": null, "promotion_id": [1], "product_id": {}, "product_quantity": 1}"#
                .to_owned(),
            json!([
                {"type": "int_type", "loc": ["body", "user_id"], "msg": integer, "input": null},
                {"type": "int_type", "loc": ["body", "promotion_id"], "msg": integer, "input": [1]},
                {"type": "int_type", "loc": ["body", "product_id"], "msg": integer, "input": {}},
            ]),
        ),
        (
            "[]".to_owned(),
            json!([{"type": "model_attributes_type", "loc": ["body"],
                    "msg": "Input should be a valid dictionary or object to extract fields from",
                    "input": []}]),
        ),
        (
            "null".to_owned(),
            json!([{"type": "missing", "loc": ["body"], "msg": "Field required", "input": null}]),
        ),
        (
            String::new(),
            json!([{"type": "missing", "loc": ["body"], "msg": "Field required", "input": null}]),
        ),
    ] {
        let response = test.post_json("/buy", &body).await;
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(response.json(), json!({ "detail": detail }), "{body}");
    }

    // Not JSON: FastAPI's json_invalid at the character where reading stopped; the reason in
    // `ctx.error` is free text (Python's json module words it differently).
    for (body, position) in [("{ bad json }", 2), (r#"{"user_id": 1,"#, 14), ("{\"é\": 1,}", 8)] {
        let response = test.post_json("/buy", body).await;
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let mut detail = response.json()["detail"].clone();
        assert!(detail[0]["ctx"]["error"].is_string(), "{detail}");
        detail[0]["ctx"]["error"] = json!("…");
        assert_eq!(
            detail,
            json!([{"type": "json_invalid", "loc": ["body", position], "msg": "JSON decode error",
                    "input": {}, "ctx": {"error": "…"}}]),
            "{body}"
        );
    }

    let pydantic = |bound: &str, kind: &str, input: &str| {
        json!({"detail": format!(
            "1 validation error for StatsRequest\ntimeframe_hours\n  Input should be {bound} \
             [type={kind}, input_value={input}, input_type=float]\n    For further information \
             visit https://errors.pydantic.dev/2.14/v/{kind}"
        )})
    };
    for (hours, detail) in [
        ("200", pydantic("less than or equal to 168", "less_than_equal", "200.0")),
        ("168.5", pydantic("less than or equal to 168", "less_than_equal", "168.5")),
        ("inf", pydantic("less than or equal to 168", "less_than_equal", "inf")),
        ("0.09", pydantic("greater than or equal to 0.1", "greater_than_equal", "0.09")),
        ("-1", pydantic("greater than or equal to 0.1", "greater_than_equal", "-1.0")),
        ("1e-7", pydantic("greater than or equal to 0.1", "greater_than_equal", "1e-07")),
        (
            "soon",
            json!({"detail": [{"type": "float_parsing", "loc": ["query", "timeframe_hours"],
                    "msg": "Input should be a valid number, unable to parse string as a number",
                    "input": "soon"}]}),
        ),
    ] {
        let response = test.get(&format!("/stats?timeframe_hours={hours}")).await;
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{hours}");
        assert_eq!(response.json(), detail, "{hours}");
    }
    // pydantic reads a float trimmed.
    let padded = test.get("/stats?timeframe_hours=%200.5%20").await;
    assert_eq!(padded.status, StatusCode::OK);
    assert_eq!(padded.json()["timeframe_hours"], 0.5);
}

#[tokio::test]
async fn concurrent_buys_are_counted_exactly() {
    let test = std::sync::Arc::new(TestApp::new());
    let mut tasks = Vec::new();
    for n in 0..64 {
        let test = test.clone();
        tasks.push(tokio::spawn(async move {
            let body = json!({"user_id": n, "promotion_id": 1, "product_id": 1, "product_quantity": 1 + n % 3});
            test.post_json("/buy", &body.to_string()).await.json()["buy_count"].as_u64().unwrap()
        }));
    }
    let mut counts = Vec::new();
    for task in tasks {
        counts.push(task.await.unwrap());
    }
    let expected: u64 = (0..64).map(|n| 1 + n % 3).sum();
    assert_eq!(*counts.iter().max().unwrap(), expected);
    assert_eq!(test.get("/stats").await.json()["total_buys"], expected);
    assert_eq!(test.get("/stats").await.json()["n_recent_buys"], 64);
}

/// A body starting with a UTF-8 byte order mark (as some Windows tools write) was a 422
/// `json_invalid` on `/buy` and seed 3's `/ingest`, where seed 4 (FastAPI's `json.loads` on
/// the bytes) and Storepulse's own `/api/v1/events` accept it.
#[tokio::test]
async fn a_byte_order_mark_before_the_json_is_accepted_on_seed_doors() {
    let test = TestApp::new();
    let buy = "\u{feff}{\"user_id\":1,\"promotion_id\":2,\"product_id\":3,\"product_quantity\":4}";
    let response = test.post_json("/buy", buy).await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.json());
    assert_eq!(response.json()["buy_count"], 4);
    // Refused after it, the 422 counts the position in the JSON, as Python's does.
    let response = test.post_json("/buy", "\u{feff}{ bad json }").await;
    assert_eq!(response.json()["detail"][0]["loc"], json!(["body", 2]));

    let ingest = "\u{feff}{\"event_type\":\"page_view\",\"page_url\":\"/shoes\",\"user_id\":\"u1\",\"session_id\":\"s1\",\"timestamp\":\"2026-11-22T01:00:00Z\"}";
    let response = test.post_json("/ingest", ingest).await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{:?}", response.json());
    assert_eq!(response.json()["status"], "accepted");
    assert_eq!(test.stored_events().len(), 2);
}

/// JSON's `true` and `false` were refused as `int_type` where pydantic's lax mode reads them as
/// the ints Python's bools are, 1 and 0: `product_quantity: true` is a buy of one, and
/// `product_quantity: false` is refused as not greater than 0, echoing `false`.
#[tokio::test]
async fn json_booleans_are_the_integers_one_and_zero_as_in_pydantic() {
    let test = TestApp::new();
    let response = test
        .post_json(
            "/buy",
            r#"{"user_id":true,"promotion_id":false,"product_id":3,"product_quantity":true}"#,
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.json());
    assert_eq!(response.json()["buy_count"], 1);
    let stored = &test.stored_events()[0];
    assert_eq!(stored.user_id.as_deref(), Some("1"));
    assert_eq!(stored.promotion.as_ref().map(|promotion| promotion.id.as_str()), Some("0"));

    let response = test
        .post_json(
            "/buy",
            r#"{"user_id":1,"promotion_id":2,"product_id":3,"product_quantity":false}"#,
        )
        .await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        response.json(),
        json!({"detail": [{"type": "greater_than", "loc": ["body", "product_quantity"],
                           "msg": "Input should be greater than 0", "input": false,
                           "ctx": {"gt": 0}}]})
    );
}

/// A refusal echoed an integer as serde_json reads it, not as Python did: `-0` as `-0.0` (a
/// float to serde_json, the int 0 to Python) and an integer beyond 64 bits as a float that
/// lost its digits.
#[tokio::test]
async fn refusals_echo_integers_as_python_read_them() {
    let test = TestApp::new();
    let response = test
        .post_json("/buy", r#"{"user_id":1,"promotion_id":2,"product_id":3,"product_quantity":-0}"#)
        .await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        response.json(),
        json!({"detail": [{"type": "greater_than", "loc": ["body", "product_quantity"],
                           "msg": "Input should be greater than 0", "input": 0,
                           "ctx": {"gt": 0}}]})
    );
    let text = String::from_utf8_lossy(&response.bytes).into_owned();
    assert!(text.contains(r#""input":0,"#), "{text}");

    let response = test
        .post_json(
            "/buy",
            r#"{"user_id":1,"promotion_id":2,"product_id":3,"product_quantity":99999999999999999999}"#,
        )
        .await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    let text = String::from_utf8_lossy(&response.bytes).into_owned();
    assert!(text.contains(r#""input":99999999999999999999"#), "{text}");
}

/// Python's ints are unbounded, and pydantic accepted an id beyond 64 bits where Storepulse
/// refused it as `int_parsing_size`. Such ids are text in Storepulse, so they are stored
/// digit for digit (as number or as text); a quantity beyond 64 bits is over the quantity
/// limit, or not greater than 0.
#[tokio::test]
async fn ids_beyond_64_bits_are_stored_exactly() {
    let test = TestApp::new();
    let response = test
        .post_json(
            "/buy",
            r#"{"user_id":123456789012345678901234567890,"promotion_id":-9223372036854775809,"product_id":"+000098765432109876543210","product_quantity":2}"#,
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.json());
    assert_eq!(response.json()["buy_count"], 2);
    let stored = &test.stored_events()[0];
    assert_eq!(stored.user_id.as_deref(), Some("123456789012345678901234567890"));
    assert_eq!(
        stored.promotion.as_ref().map(|promotion| promotion.id.as_str()),
        Some("-9223372036854775809")
    );
    assert_eq!(stored.items[0].id.as_str(), "98765432109876543210");

    let buy = |quantity: &str| {
        format!(r#"{{"user_id":1,"promotion_id":2,"product_id":3,"product_quantity":{quantity}}}"#)
    };
    let response = test.post_json("/buy", &buy("99999999999999999999")).await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        String::from_utf8_lossy(&response.bytes),
        r#"{"detail":[{"type":"value_error","loc":["body","product_quantity"],"msg":"Value error, must be <= 1000000","input":99999999999999999999,"ctx":{"error":{}}}]}"#
    );
    let response = test.post_json("/buy", &buy("-99999999999999999999")).await;
    assert_eq!(
        String::from_utf8_lossy(&response.bytes),
        r#"{"detail":[{"type":"greater_than","loc":["body","product_quantity"],"msg":"Input should be greater than 0","input":-99999999999999999999,"ctx":{"gt":0}}]}"#
    );
}

/// Half a surrogate pair in a field's string (`"\ud83d"`, which Python's `json` reads) was
/// refused as `int_parsing` with `input: null`; pydantic refuses that string as
/// `string_unicode` and echoes it.
#[tokio::test]
async fn half_a_surrogate_pair_is_refused_as_pydantic_refused_it_and_echoed() {
    let test = TestApp::new();
    let response = test
        .post_json(
            "/buy",
            r#"{"user_id":1,"promotion_id":2,"product_id":3,"product_quantity":"\ud83d"}"#,
        )
        .await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        String::from_utf8_lossy(&response.bytes),
        r#"{"detail":[{"type":"string_unicode","loc":["body","product_quantity"],"msg":"Input should be a valid string, unable to parse raw data as a unicode string","input":"\ud83d"}]}"#
    );
}

/// Python's `json`, which seed 4's FastAPI read bodies with, takes `NaN`, `Infinity` and
/// `-Infinity`: a buy with one in a key seed 4 ignores was accepted, and one in a field was
/// pydantic's `finite_number` (which seed 4's FastAPI then failed to write, a 500). Both were
/// Storepulse's `json_invalid`; a number beyond a float (`1e400`, infinite to Python) was
/// `int_parsing` with `input: null`.
#[tokio::test]
async fn python_json_non_finite_numbers_are_read_as_seed_4_read_them() {
    let test = TestApp::new();
    let response = test
        .post_json(
            "/buy",
            r#"{"user_id":1,"promotion_id":2,"product_id":3,"product_quantity":1,"note":NaN}"#,
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.json());

    let response = test
        .post_json(
            "/buy",
            r#"{"user_id":NaN,"promotion_id":Infinity,"product_id":-Infinity,"product_quantity":1e400}"#,
        )
        .await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    let finite = |field: &str, input: &str| {
        json!({"type": "finite_number", "loc": ["body", field],
               "msg": "Input should be a finite number", "input": input})
    };
    assert_eq!(
        response.json(),
        json!({"detail": [
            finite("user_id", "nan"),
            finite("promotion_id", "inf"),
            finite("product_id", "-inf"),
            finite("product_quantity", "inf"),
        ]})
    );
    // A token that does not stand alone is no JSON to Python either.
    for body in [
        r#"{"user_id":-NaN,"promotion_id":2,"product_id":3,"product_quantity":1}"#,
        r#"{"user_id":NaN5,"promotion_id":2,"product_id":3,"product_quantity":1}"#,
    ] {
        let response = test.post_json("/buy", body).await;
        assert_eq!(response.json()["detail"][0]["type"], "json_invalid", "{body}");
    }
}
