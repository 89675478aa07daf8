//! Trending products, the weight registry and recommendations through HTTP (seed 5).

use axum::http::StatusCode;
use serde_json::{Value, json};
use storepulse_model::Timestamp;

use crate::support::TestApp;

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

async fn send(test: &TestApp, events: Value) {
    let response = test.post_json("/api/v1/events", &events.to_string()).await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.json());
}

fn ids(products: &Value) -> Vec<String> {
    products
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["product_id"].as_str().unwrap().to_owned())
        .collect()
}

async fn shop(test: &TestApp) {
    let time = Timestamp(now_ms() - 60_000).to_rfc3339();
    let mut events = Vec::new();
    for n in 0..6 {
        events.push(json!({"type": "product_view", "timestamp": time, "user_id": format!("v{n}"),
                           "country": "US", "product": {"id": "boot", "category": "Shoes"}}));
    }
    for n in 0..3 {
        events.push(json!({"type": "purchase", "timestamp": time, "user_id": format!("b{n}"), "country": "DE",
                           "order": {"id": format!("o{n}")}, "items": [{"id": "lamp", "category": "Home", "price": 5}]}));
    }
    events.push(json!({"type": "product_view", "timestamp": time, "user_id": "b0", "product": {"id": "boot"}}));
    send(test, Value::Array(events)).await;
}

#[tokio::test]
async fn trending_products_rank_stored_events_and_validate_k() {
    let test = TestApp::new();
    shop(&test).await;
    let body = test.get("/api/v1/trending/products?k=5").await.json();
    assert_eq!(body["version"], "v1");
    // boot: 7 views × 1; lamp: 3 purchases × 3 = 9.
    assert_eq!(ids(&body["products"]), ["lamp", "boot"]);
    assert_eq!(
        ids(&test.get("/api/v1/trending/products?country=US").await.json()["products"]),
        ["boot"]
    );
    assert_eq!(
        ids(&test.get("/api/v1/trending/products?category=Home").await.json()["products"]),
        ["lamp"]
    );
    for k in ["0", "1001", "ten"] {
        let response = test.get(&format!("/api/v1/trending/products?k={k}")).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "k={k}");
        assert_eq!(response.json()["error"]["details"]["parameter"], "k");
    }
    // Each endpoint's own parameters: the compare endpoint's `a`/`b` are not ignored here,
    // nor `version` there.
    for (query, parameter) in [
        ("/api/v1/trending/products?a=v1", "a"),
        ("/api/v1/trending/products?b=v1", "b"),
        ("/api/v1/trending/compare?a=v1&b=v1&version=v1", "version"),
    ] {
        let response = test.get(query).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(response.json()["error"]["details"]["parameter"], parameter, "{query}");
    }

    let seed = test.get("/trending_products?k=1").await.json();
    assert_eq!(seed["top_k"], 1);
    assert_eq!(ids(&seed["products"]), ["lamp"]);
    assert!(seed["products"][0]["score"].as_f64().unwrap() > 8.9);
    let zero = test.get("/trending_products?k=0").await;
    assert_eq!(zero.status, StatusCode::BAD_REQUEST);
    assert_eq!(zero.json(), json!({"detail": "k must be > 0"}));
    assert_eq!(test.get("/trending_products?k=x").await.status, StatusCode::UNPROCESSABLE_ENTITY);
    let health = test.get("/healthz").await.json();
    assert_eq!(health["status"], "ok");
    assert!(health["timestamp"].as_str().unwrap().ends_with("+00:00"), "{health}");
}

/// Seed 5 answered a large `k` with the products it had; `k=5000` was a 400 here. Above 1000
/// it is read as 1000 (`top_k` says so); `k <= 0` stays seed 5's 400.
#[tokio::test]
async fn seed5_trending_clamps_a_large_k() {
    let test = TestApp::new();
    shop(&test).await;
    for k in ["1001", "5000", "99999999999999999999999"] {
        let response = test.get(&format!("/trending_products?k={k}")).await;
        assert_eq!(response.status, StatusCode::OK, "k={k}");
        let body = response.json();
        assert_eq!(body["top_k"], 1000, "k={k}");
        assert_eq!(ids(&body["products"]), ["lamp", "boot"], "k={k}");
    }
    for k in ["-5", "-99999999999999999999999"] {
        let response = test.get(&format!("/trending_products?k={k}")).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "k={k}");
    }
    let native = test.get("/api/v1/trending/products?k=5000").await;
    assert_eq!(native.status, StatusCode::BAD_REQUEST, "the native endpoint keeps 1..=1000");
}

/// `/trending_products` split its query by hand: `k=%35` was a 422, and a repeated `k` took
/// the first value where FastAPI takes the last.
#[tokio::test]
async fn seed5_trending_reads_its_query_as_fastapi_does() {
    let test = TestApp::new();
    for (query, k) in [("k=%35", 5), ("%6B=3", 3), ("k=1&k=2", 2)] {
        let response = test.get(&format!("/trending_products?{query}")).await;
        assert_eq!(response.status, StatusCode::OK, "{query}");
        assert_eq!(response.json()["top_k"], k, "{query}");
    }
}

#[tokio::test]
async fn weight_versions_are_created_ordered_activated_compared_and_kept() {
    let test = TestApp::new();
    shop(&test).await;
    for (version, view) in [("v1.9", 1.0), ("v1.10", 5.0)] {
        let created = test
            .post_json(
                "/api/v1/trending/versions",
                &json!({"version": version, "weights": {"view": view}}).to_string(),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.json());
    }
    let next =
        test.post_json("/api/v1/trending/versions", r#"{"weights": {"purchase": 0.5}}"#).await;
    assert_eq!(next.json()["version"], "v1.11");
    let duplicate = test.post_json("/api/v1/trending/versions", r#"{"version": "v1.10"}"#).await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    assert_eq!(duplicate.json()["error"]["code"], "version_exists");
    let bad = test.post_json("/api/v1/trending/versions", r#"{"weights": {"view": -1}}"#).await;
    assert_eq!(bad.json()["error"]["details"]["parameter"], "weights.view");

    let listed = test.get("/api/v1/trending/versions").await.json();
    let order: Vec<&str> = listed["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["v1", "v1.9", "v1.10", "v1.11"]);
    assert_eq!(listed["latest"], "v1");

    let compared = test.get("/api/v1/trending/compare?a=v1&b=v1.10").await.json();
    assert_eq!(ids(&compared["a"]["products"]), ["lamp", "boot"]);
    assert_eq!(ids(&compared["b"]["products"]), ["boot", "lamp"]);
    assert_eq!(compared["ranks"][0], json!({"product_id": "lamp", "rank_a": 1, "rank_b": 2}));

    // Named by its numbers (`v01.10` is `v1.10`), answered with the name as stored.
    let activated = test.post_json("/api/v1/trending/versions/v01.10/activate", "").await;
    assert_eq!(activated.status, StatusCode::OK);
    assert_eq!(activated.json(), json!({"latest": "v1.10"}));
    assert_eq!(ids(&test.get("/trending_products").await.json()["products"]), ["boot", "lamp"]);
    // `latest` names the active version wherever a version is named.
    let latest = test.get("/api/v1/trending/products?version=latest").await;
    assert_eq!(latest.status, StatusCode::OK, "{:?}", latest.json());
    assert_eq!(latest.json()["version"], "v1.10");
    assert_eq!(
        test.post_json("/api/v1/trending/versions/v7/activate", "").await.status,
        StatusCode::NOT_FOUND
    );

    // Admin endpoints without parameters refuse one, naming it, as every other endpoint
    // refuses those it does not know (they ignored it: `?version=v2` on activate read as
    // applied).
    for (method, uri) in [
        ("GET", "/api/v1/trending/versions?foo=1"),
        ("POST", "/api/v1/trending/versions?version=v9"),
        ("POST", "/api/v1/trending/versions/v1.10/activate?foo=1"),
        ("POST", "/api/v1/category-trends/import?foo=1"),
    ] {
        let request = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(axum::body::Body::from("{}"))
            .unwrap();
        let refused = test.send(request).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{method} {uri}");
        let parameter = &refused.json()["error"]["details"]["parameter"];
        assert!(parameter == "foo" || parameter == "version", "{method} {uri}: {parameter}");
    }

    // The registry is on disk: a restart keeps every version and the active one.
    let test = test.restart(|_| {});
    let listed = test.get("/api/v1/trending/versions").await.json();
    assert_eq!(listed["latest"], "v1.10");
    assert_eq!(listed["versions"].as_array().unwrap().len(), 4);
    let history: Vec<&str> = listed["activations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["version"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["v1", "v1.10"]);
}

#[tokio::test]
async fn recommendations_by_user_or_product() {
    let test = TestApp::new();
    shop(&test).await;
    // b0 bought a lamp and viewed a boot; others who bought lamps did not view boots.
    let by_product = test.get("/api/v1/recommendations?product_id=lamp").await.json();
    assert_eq!(ids(&by_product["products"]), ["boot"]);
    let by_user = test.get("/api/v1/recommendations?user_id=b1").await.json();
    assert_eq!(ids(&by_user["products"]), ["boot"]);
    let nothing_new = test.get("/api/v1/recommendations?user_id=b0").await.json();
    assert_eq!(ids(&nothing_new["products"]), Vec::<String>::new());
    assert_eq!(
        test.get("/api/v1/recommendations?user_id=ghost").await.status,
        StatusCode::NOT_FOUND
    );
    let both = test.get("/api/v1/recommendations?user_id=a&product_id=b").await;
    assert_eq!(both.status, StatusCode::BAD_REQUEST);
    for (query, parameter) in [("user_id=", "user_id"), ("product_id=%20", "product_id")] {
        let empty = test.get(&format!("/api/v1/recommendations?{query}")).await;
        assert_eq!(empty.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(empty.json()["error"]["details"]["parameter"], parameter);
    }
    // One store's: the shop's events carry no store, so they are the default store's.
    let in_store = test.get("/api/v1/recommendations?user_id=b1&store=default").await.json();
    assert_eq!(
        (ids(&in_store["products"]), &in_store["store"]),
        (vec!["boot".into()], &json!("default"))
    );
    let elsewhere = test.get("/api/v1/recommendations?user_id=b1&store=other").await;
    assert_eq!(elsewhere.status, StatusCode::NOT_FOUND);
    assert!(elsewhere.json()["error"]["message"].as_str().unwrap().contains("in store \"other\""));
}

#[tokio::test]
async fn seed5_feedback_is_stored_and_seed3_reads_metrics_as_json() {
    let test = TestApp::new();
    let response = test.post_json("/feedback?product_id=P1&feedback=Great%20product!", "").await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(
        response.json(),
        json!({"message": "Feedback received", "product_id": "P1", "feedback": "Great product!"})
    );
    let stored = test.stored_events();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].name.as_deref(), Some("feedback"));
    assert_eq!(stored[0].product.as_ref().unwrap().id, "P1");
    assert!(stored[0].properties.as_deref().unwrap().contains("Great product!"));
    let empty = test.post_json("/feedback?product_id=P1&feedback=", "").await;
    assert_eq!(
        (empty.status, empty.json()),
        (StatusCode::BAD_REQUEST, json!({"detail": "Invalid feedback data"}))
    );
    assert_eq!(
        test.post_json("/feedback?product_id=P1", "").await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    // Seed 3's dashboard asked /metrics for JSON; scrapers still get Prometheus text.
    let request = axum::http::Request::get("/metrics")
        .header("accept", "application/json, text/plain, */*")
        .body(axum::body::Body::empty())
        .unwrap();
    let live = test.send(request).await.json();
    for field in ["active_users", "active_sessions", "avg_sessions_per_user", "top_pages"] {
        assert!(live.get(field).is_some(), "{field}");
    }
    // With the realtime endpoint's parameters: one store's figures, and a 400 for others.
    let json_metrics = |query: &str| {
        axum::http::Request::get(format!("/metrics{query}"))
            .header("accept", "application/json")
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let visit = r#"{"type":"page_view","store":"north","user_id":"v1","page":{"path":"/"}}"#;
    assert_eq!(test.post_json("/api/v1/events", visit).await.status, StatusCode::OK);
    assert_eq!(test.send(json_metrics("?store=north")).await.json()["active_users"], 1);
    assert_eq!(test.send(json_metrics("?store=south")).await.json()["active_users"], 0);
    assert_eq!(test.send(json_metrics("?bogus=1")).await.status, StatusCode::BAD_REQUEST);
    let scrape = axum::http::Request::get("/metrics?bogus=1")
        .header("accept", "text/plain;version=0.0.4")
        .body(axum::body::Body::empty())
        .unwrap();
    let text = test.send(scrape).await;
    assert!(String::from_utf8_lossy(&text.bytes).contains("storepulse_events_accepted"));
    let text = test.get("/prometheus").await;
    assert!(String::from_utf8_lossy(&text.bytes).contains("storepulse_events_accepted"));
}

/// A new version's body leaked Rust internals: `[]` was refused as "expected struct
/// NewVersion with 4 elements", `"weights": []` as "expected struct WeightsBody with 5
/// elements" (and `[1, 2]` read as view 1, cart 2), a weight that is no number as "expected
/// f64". Each is refused naming the field, in the API's words.
#[tokio::test]
async fn a_new_versions_body_is_refused_in_the_apis_words() {
    let test = TestApp::new();
    for (body, parameter, reason) in [
        ("[]", "body", "must be a JSON object of a new version's fields"),
        (r#"{"weights": []}"#, "weights", "expected a JSON object of weights"),
        (r#"{"weights": [1, 2]}"#, "weights", "expected a JSON object of weights"),
        (r#"{"weights": "heavy"}"#, "weights", "expected a JSON object of weights"),
        (r#"{"weights": {"view": "x"}}"#, "weights.view", "must be a number"),
        (r#"{"weights": {"bogus": 1}}"#, "weights.bogus", "is not a parameter here"),
    ] {
        let response = test.post_json("/api/v1/trending/versions", body).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{body}");
        let error = &response.json()["error"];
        assert_eq!(error["details"]["parameter"], parameter, "{body}: {error}");
        let text = error["details"]["reason"].as_str().unwrap();
        assert!(text.contains(reason), "{body}: {text}");
        for internal in ["struct", "f64", "sequence"] {
            assert!(!text.contains(internal), "{body}: {text}");
        }
    }
    let defaults = r#"{"version": "v2", "weights": {"view": null, "purchase": 4}}"#;
    let created = test.post_json("/api/v1/trending/versions", defaults).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.json());
    assert_eq!(created.json()["weights"]["view"], 1.0);
}

/// Weights had no upper bound: `1e308` was accepted and every score overflowed to `null`, with
/// an arbitrary ranking; a note of any length was kept and listed with every version.
#[tokio::test]
async fn huge_weights_and_long_notes_are_refused_naming_the_field() {
    let test = TestApp::new();
    let huge = r#"{"weights": {"purchase": 1e308, "view": 1e308}, "note": "huge"}"#;
    let response = test.post_json("/api/v1/trending/versions", huge).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    let error = &response.json()["error"];
    assert_eq!(error["details"]["parameter"], "weights.view", "{error}");
    assert!(error["message"].as_str().unwrap().contains("1000000"), "{error}");
    let note = json!({ "note": "n".repeat(1001) }).to_string();
    let response = test.post_json("/api/v1/trending/versions", &note).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(response.json()["error"]["details"]["parameter"], "note");
    let at_bounds = json!({ "weights": { "purchase": 1_000_000 }, "note": "n".repeat(1000) });
    let response = test.post_json("/api/v1/trending/versions", &at_bounds.to_string()).await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.json());
}
