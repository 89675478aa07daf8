//! Health, readiness, metrics and the cross-cutting HTTP behaviour.

use axum::body::Body;
use axum::http::{Request, StatusCode};

use crate::support::{TestApp, post};

/// `/health` answered seed 4's shape only: a monitor of seed 1 (`cache_status`, `data_count`)
/// or of seed 2 (`success`, `data.status == "ok"`) on the same path found its fields missing.
#[tokio::test]
async fn health_also_answers_seed_1_and_seed_2_monitors() {
    let test = TestApp::new();
    let response = test.get("/health").await;
    assert_eq!(response.status, StatusCode::OK);
    let health = response.json();
    // Seed 1.
    assert_eq!(health["status"], "healthy");
    assert_eq!(health["cache_status"], "valid");
    assert_eq!(health["data_count"], 0);
    // Seed 2 (ShopX).
    assert_eq!(health["success"], true);
    assert_eq!(health["data"]["status"], "ok");
    assert_eq!(health["data"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(health["data"]["timestamp"], health["timestamp"]);
    assert!(health["error_code"].is_null() && health["error_message"].is_null(), "{health}");
    assert!(health.as_object().unwrap().contains_key("error_code"), "present, as null");

    test.post_json("/api/v1/events", r#"[{"type":"search","query":"a"}]"#).await;
    assert_eq!(test.get("/health").await.json()["data_count"], 1);
    let csv = "event_date,campaign_country,product_category_level_1,product_category_level_2,product_category_level_3,revenue_daily_change,revenue_weekly_change,revenue_monthly_change,commission_daily_change,commission_weekly_change,commission_monthly_change\n2025-02-09,US,toys,,,0.1,0.2,0.3,0,0,0\n2025-02-09,UK,toys,,,0.1,0.2,0.3,0,0,0\n";
    let request = post("/api/v1/category-trends/import").body(Body::from(csv)).unwrap();
    assert_eq!(test.send(request).await.status, StatusCode::OK);
    assert_eq!(test.get("/health").await.json()["data_count"], 2, "the imported rows");

    // Unhealthy: 503 in every shape.
    test.app.ingest.log().lock().unwrap().fault_injector().fail_next_syncs(1);
    test.post_json("/api/v1/events", r#"[{"type":"search","query":"b"}]"#).await;
    let response = test.get("/health").await;
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    let health = response.json();
    assert_eq!(health["status"], "unhealthy");
    assert_eq!(health["success"], false);
    assert_eq!(health["data"]["status"], "unhealthy");
    assert_eq!(health["error_code"], "SERVICE_UNAVAILABLE");
    assert!(!health["error_message"].as_str().unwrap().is_empty(), "{health}");
}

#[tokio::test]
async fn health_has_seed4_fields_and_log_details() {
    let test = TestApp::new();
    let response = test.get("/health").await;
    assert_eq!(response.status, StatusCode::OK);
    let health = response.json();
    assert_eq!(health["status"], "healthy");
    // Python 3.10's `datetime.fromisoformat` reads `+00:00`, not `Z`.
    assert!(health["timestamp"].as_str().unwrap().ends_with("+00:00"), "{health}");
    assert!(health["started_at"].as_str().unwrap().ends_with("+00:00"), "{health}");
    assert!(health["uptime_seconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(health["log"]["fsync"], "always");
    assert_eq!(health["log"]["writable"], true);
    assert_eq!(test.get("/ready").await.json()["ready"], true);

    // With fsync=always everything acknowledged is durable, and health says so at once.
    test.post_json(
        "/api/v1/events",
        r#"[{"type":"search","query":"a"},{"type":"search","query":"b"}]"#,
    )
    .await;
    let health = test.get("/health").await.json();
    let log = health["log"].clone();
    assert_eq!(log["next_offset"], 2);
    assert_eq!(log["durable_offset"], 2);
    assert_eq!(health["engine"]["events_applied"], 2);
    let engine = &health["engine"];
    assert!(engine["approx_memory_bytes"].as_u64().unwrap() > 0);
    let parts = engine["memory_by_part"].as_object().unwrap();
    let sum: u64 = parts.values().map(|bytes| bytes.as_u64().unwrap()).sum();
    assert_eq!(sum, engine["approx_memory_bytes"].as_u64().unwrap(), "{parts:?}");
    assert!(parts["rollups"].as_u64().unwrap() > 0);
    // The whole process, allocator included (Linux).
    if cfg!(target_os = "linux") {
        assert!(health["process"]["resident_bytes"].as_u64().unwrap() > sum);
    }
}

#[tokio::test]
async fn metrics_count_requests_events_and_rejections() {
    let test = TestApp::new();
    test.post_json("/api/v1/events", r#"[{"type":"search","query":"a"},{"type":"search"}]"#).await;
    test.get("/nowhere").await;
    let response = test.get("/prometheus").await;
    assert_eq!(response.status, StatusCode::OK);
    let text = String::from_utf8(response.bytes.clone()).unwrap();
    for expected in [
        "storepulse_events_accepted_total{source=\"native\"} 1",
        "storepulse_events_rejected_total{reason=\"missing\"} 1",
        "storepulse_http_requests_total{route=\"/api/v1/events\",method=\"POST\",status=\"200\"} 1",
        "storepulse_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 1",
        "storepulse_log_commit_duration_seconds_bucket",
        "storepulse_log_appended_events_total 1",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    // One event, applied once: by the writer itself when the applier is idle, else by the
    // applier (on a busy machine the applier may still be finishing its last pass).
    let applies = |by: &str| {
        let series = format!("storepulse_engine_apply_duration_seconds_count{{by=\"{by}\"}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(series.as_str()))
            .map_or(0, |count| count.trim().parse::<u64>().unwrap())
    };
    assert_eq!(applies("writer") + applies("applier"), 1, "{text}");
    assert!(!text.contains("/nowhere"), "raw paths must not become labels");
}

/// Seed 3's dashboard (`fetch()`) and its httpx test send `Accept: */*` or nothing, and got
/// Prometheus text they could not parse as JSON; Prometheus's scrape header still gets text.
#[tokio::test]
async fn metrics_answers_seed3s_dashboard_with_json_and_scrapers_with_text() {
    let test = TestApp::new();
    let with_accept = |accept: &str| {
        Request::get("/metrics").header("accept", accept).body(Body::empty()).unwrap()
    };
    let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    for request in [
        Request::get("/metrics").body(Body::empty()).unwrap(),
        with_accept("*/*"),
        with_accept(browser),
        with_accept("application/json, text/plain, */*"),
    ] {
        let response = test.send(request).await;
        assert_eq!(response.header("content-type"), Some("application/json"));
        let live = response.json();
        for field in ["active_users", "active_sessions", "avg_sessions_per_user", "top_pages"] {
            assert!(live.get(field).is_some(), "{field} in {live}");
        }
    }
    let prometheus_scrape =
        "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    for accept in [prometheus_scrape, "text/plain", "application/openmetrics-text"] {
        let response = test.send(with_accept(accept)).await;
        let text = String::from_utf8(response.bytes.clone()).unwrap();
        assert!(text.contains("storepulse_http_requests_total"), "{accept}: {text}");
    }
}

/// Housekeeping holds the engine (queries and acknowledgements wait): each pass's time is
/// exported. The live pass runs every second.
#[tokio::test]
async fn metrics_show_how_long_housekeeping_held_the_engine() {
    let test = TestApp::new();
    let expected = "storepulse_engine_housekeeping_duration_seconds_count{pass=\"live\"}";
    let started = std::time::Instant::now();
    loop {
        let response = test.get("/prometheus").await;
        let text = String::from_utf8(response.bytes.clone()).unwrap();
        if text.contains(expected) {
            assert!(text.contains("storepulse_engine_housekeeping_duration_seconds_bucket"));
            break;
        }
        assert!(started.elapsed().as_secs() < 10, "missing {expected:?} in\n{text}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Seed 3's worker exported `active_sessions` beside `active_users`, and its alerts read it:
/// the engine's live window exports both gauges.
#[tokio::test]
async fn metrics_export_active_sessions_beside_active_visitors() {
    let test = TestApp::new();
    let now = chrono::Utc::now().to_rfc3339();
    for (user, session) in [("u1", "s1"), ("u1", "s2"), ("u2", "s3")] {
        let body = format!(
            r#"{{"event_type":"page_view","page_url":"/x","user_id":"{user}","session_id":"{session}","timestamp":"{now}"}}"#
        );
        assert_eq!(test.post_json("/ingest", &body).await.status, StatusCode::ACCEPTED);
    }
    let expected = ["storepulse_engine_active_sessions 3", "storepulse_engine_active_visitors 2"];
    let started = std::time::Instant::now();
    loop {
        let text = String::from_utf8(test.get("/prometheus").await.bytes).unwrap();
        if expected.iter().all(|series| text.lines().any(|line| line == *series)) {
            assert!(text.contains("# HELP storepulse_engine_active_sessions "), "{text}");
            break;
        }
        assert!(started.elapsed().as_secs() < 10, "missing {expected:?} in\n{text}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn every_response_has_a_process_time_and_request_id() {
    let test = TestApp::new();
    let response = test.get("/health").await;
    let seconds: f64 = response.header("x-process-time").unwrap().parse().unwrap();
    assert!(seconds >= 0.0);
    assert_eq!(response.header("x-request-id").unwrap().len(), 36);
    let request =
        Request::get("/health").header("x-request-id", "trace-me").body(Body::empty()).unwrap();
    assert_eq!(test.send(request).await.header("x-request-id"), Some("trace-me"));
    // An id too long to echo (or log) is replaced by one of ours.
    let long = "x".repeat(3_000);
    let request =
        Request::get("/health").header("x-request-id", long.as_str()).body(Body::empty()).unwrap();
    assert_eq!(test.send(request).await.header("x-request-id").unwrap().len(), 36);
}

/// Seed 4's `GET /` (`{"message", "version", "endpoints"}`) was a 404, so its load test's
/// admin user failed every documentation check.
#[tokio::test]
async fn the_index_lists_every_endpoint_in_seed_4s_shape() {
    let test = TestApp::new();
    let response = test.get("/").await;
    assert_eq!(response.status, StatusCode::OK);
    let index = response.json();
    assert!(index["message"].is_string());
    assert_eq!(index["version"], env!("CARGO_PKG_VERSION"));
    let endpoints = index["endpoints"].as_object().unwrap();
    for route in ["POST /buy", "GET /stats", "GET /health", "GET /api/v1/query", "GET /"] {
        assert!(endpoints[route].as_str().is_some_and(|text| !text.is_empty()), "{route}");
    }
    let listed: usize = storepulse_server::http::ROUTE_TEMPLATES
        .iter()
        .map(|(_, methods, _)| methods.split(',').filter(|method| *method != "HEAD").count())
        .sum();
    assert_eq!(endpoints.len(), listed);
}

/// Seed 4's load test's admin user also reads `/docs` and `/redoc` (FastAPI served them, and
/// `/openapi.json`): they were 404s. Here they describe every route, from the route table.
#[tokio::test]
async fn the_api_is_described_at_seed_4s_documentation_paths() {
    let test = TestApp::new();
    let document = test.get("/openapi.json").await;
    assert_eq!(document.status, StatusCode::OK);
    let document = document.json();
    assert_eq!(document["openapi"], "3.1.0");
    assert!(document["paths"]["/buy"]["post"]["summary"].is_string());
    assert!(document["paths"]["/api/v1/query"]["get"]["summary"].is_string());
    assert!(document["paths"]["/api/v1/query"]["post"]["summary"].is_string());
    for path in ["/docs", "/redoc"] {
        let page = test.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(page.header("content-type").unwrap().starts_with("text/html"), "{path}");
        let html = String::from_utf8_lossy(&page.bytes).into_owned();
        for route in ["/buy", "/stats", "/api/v1/funnels", "/openapi.json"] {
            assert!(html.contains(route), "{path} lists {route}");
        }
    }
}

#[tokio::test]
async fn unknown_paths_are_json_404s_naming_the_path() {
    let test = TestApp::new();
    let response = test.get("/visit").await;
    assert_eq!(response.status, StatusCode::NOT_FOUND);
    let body = response.json();
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(body["error"]["details"]["path"], "/visit");
    assert!(body["error"]["message"].as_str().unwrap().contains("/visit"));
    // Every route is listed, the analytics ones too.
    let listed = body["error"]["details"]["available_endpoints"].as_array().unwrap();
    for route in ["POST /api/v1/events", "GET /api/v1/query", "POST /api/v1/query", "GET /stats"] {
        assert!(listed.iter().any(|entry| entry == route), "{route} in {listed:?}");
    }
    assert!(!listed.iter().any(|entry| entry.as_str().unwrap().starts_with("HEAD")));
}

/// A served path asked with the wrong method used to get a 405 with an empty body; it is the
/// same JSON error as a 404, names the method, the path and what the path takes, keeps axum's
/// `Allow` header and passes the same layers (request id, process time).
#[tokio::test]
async fn wrong_methods_are_json_405s_naming_the_allowed_methods() {
    let test = TestApp::new();
    for (request, path, allowed) in [
        (Request::get("/api/v1/events"), "/api/v1/events", vec!["POST"]),
        (Request::delete("/api/v1/query"), "/api/v1/query", vec!["GET", "HEAD", "POST"]),
    ] {
        let method = request.method_ref().unwrap().to_string();
        let response = test.send(request.body(Body::empty()).unwrap()).await;
        assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.header("allow"), Some(allowed.join(",").as_str()));
        assert_eq!(response.header("content-type"), Some("application/json"));
        assert!(response.header("x-process-time").is_some());
        assert_eq!(response.header("x-request-id").unwrap().len(), 36);
        let error = &response.json()["error"];
        assert_eq!(error["code"], "method_not_allowed");
        assert_eq!(error["details"]["method"], method.as_str());
        assert_eq!(error["details"]["path"], path);
        assert_eq!(error["details"]["allowed_methods"], serde_json::json!(allowed));
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(&method) && message.contains(path), "{message}");
    }
}

/// Seed 4 is FastAPI: a wrong method on its `/buy` or `/stats` answered FastAPI's
/// `{"detail": "Method Not Allowed"}`, which its clients parse, and Storepulse answered its own
/// `{"error": {...}}` there; the other FastAPI seeds' paths likewise, Storepulse's own paths
/// keep Storepulse's shape.
#[tokio::test]
async fn wrong_methods_on_the_fastapi_seeds_paths_are_fastapi_405s() {
    let test = TestApp::new();
    for (request, allowed) in [
        (Request::get("/buy"), "POST"),
        (Request::put("/buy"), "POST"),
        (Request::post("/stats"), "GET,HEAD"),
        (Request::delete("/stats"), "GET,HEAD"),
        (Request::post("/trending_products"), "GET,HEAD"),
        (Request::get("/ingest"), "POST"),
    ] {
        let request = request.body(Body::empty()).unwrap();
        let label = format!("{} {}", request.method(), request.uri());
        let response = test.send(request).await;
        assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED, "{label}");
        assert_eq!(response.header("allow"), Some(allowed), "{label}");
        assert_eq!(response.header("content-type"), Some("application/json"), "{label}");
        assert_eq!(response.json(), serde_json::json!({"detail": "Method Not Allowed"}), "{label}");
    }
    let response = test.send(Request::get("/api/v1/events").body(Body::empty()).unwrap()).await;
    assert_eq!(response.json()["error"]["code"], "method_not_allowed");
}

/// The methods a 405 body names come from a table beside the route templates: it must say
/// what the router itself says in `Allow`, for every route.
#[tokio::test]
async fn the_405_method_table_matches_the_router() {
    let test = TestApp::new();
    for (template, methods, _) in storepulse_server::http::ROUTE_TEMPLATES {
        let path = template.replace("{user_id}", "u-1").replace("{version}", "v1");
        let response = test.send(Request::patch(path.as_str()).body(Body::empty()).unwrap()).await;
        assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED, "{template}");
        assert_eq!(response.header("allow"), Some(methods), "{template}");
        if storepulse_server::http::rate_limit::is_fastapi_seed_path(&path) {
            assert_eq!(response.json()["detail"], "Method Not Allowed", "{template}");
            continue;
        }
        let named: Vec<String> = methods.split(',').map(str::to_owned).collect();
        assert_eq!(
            response.json()["error"]["details"]["allowed_methods"],
            serde_json::json!(named),
            "{template}"
        );
    }
}

/// A browser's CORS preflight for a JSON POST of events from `origin`.
fn preflight(origin: &str) -> Request<Body> {
    Request::options("/api/v1/events")
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn browsers_get_cors_preflight_answers() {
    let test =
        TestApp::with_config(|config| config.http.cors_origins = vec!["https://shop.test".into()]);
    let response = test.send(preflight("https://shop.test")).await;
    assert!(response.status.is_success(), "{}", response.status);
    assert_eq!(response.header("access-control-allow-origin"), Some("https://shop.test"));
    // The answer depends on the origin: caches must keep one per origin.
    let vary = response.header("vary").unwrap_or_default();
    assert!(vary.contains("origin"), "vary: {vary:?}");
    // Kept by the browser for ten minutes; the asked headers allowed by name (a wildcard never
    // covers Authorization); the rate limit's headers readable by the page.
    assert_eq!(response.header("access-control-max-age"), Some("600"));
    let with_key = Request::options("/v1/track")
        .header("origin", "https://shop.test")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization,content-type")
        .body(Body::empty())
        .unwrap();
    let answer = test.send(with_key).await;
    let allowed = answer.header("access-control-allow-headers").unwrap_or_default();
    assert!(allowed.contains("authorization"), "{allowed:?}");
    let request = Request::post("/api/v1/events")
        .header("origin", "https://shop.test")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"type":"search","query":"x"}"#))
        .unwrap();
    let answer = test.send(request).await;
    let exposed = answer.header("access-control-expose-headers").unwrap_or_default();
    assert!(exposed.contains("x-ratelimit-remaining"), "{exposed:?}");
    let request = Request::options("/api/v1/events")
        .header("origin", "https://evil.test")
        .header("access-control-request-method", "POST")
        .body(Body::empty())
        .unwrap();
    assert_eq!(test.send(request).await.header("access-control-allow-origin"), None);
}

/// With every origin allowed (the default) the answers are the same for all, and say so.
#[tokio::test]
async fn any_origin_gets_a_wildcard_and_no_vary() {
    let test = TestApp::new();
    let response = test.send(preflight("https://any.shop.test")).await;
    assert!(response.status.is_success(), "{}", response.status);
    assert_eq!(response.header("access-control-allow-origin"), Some("*"));
    assert_eq!(response.header("vary"), None);
    let request = Request::get("/health")
        .header("origin", "https://any.shop.test")
        .body(Body::empty())
        .unwrap();
    let response = test.send(request).await;
    assert_eq!(response.header("access-control-allow-origin"), Some("*"));
    assert_eq!(response.header("vary"), None);
}

#[tokio::test]
async fn large_responses_are_gzipped_small_ones_not() {
    let test = TestApp::new();
    let request =
        Request::get("/prometheus").header("accept-encoding", "gzip").body(Body::empty()).unwrap();
    let response = test.send(request).await;
    assert_eq!(response.header("content-encoding"), Some("gzip"));
    let request =
        Request::get("/ready").header("accept-encoding", "gzip").body(Body::empty()).unwrap();
    assert_eq!(test.send(request).await.header("content-encoding"), None);
}

#[tokio::test]
async fn only_allowed_hosts_are_served() {
    let test = TestApp::with_config(|config| {
        config.http.allowed_hosts =
            vec!["shop.test".into(), "*.shop.test".into(), "127.0.0.1:18302".into()]
    });
    for (host, expected) in [
        ("shop.test", StatusCode::OK),
        ("eu.shop.test:8080", StatusCode::OK),
        ("evil.test", StatusCode::BAD_REQUEST),
        // An entry copied from a URL, port and all, allows that port only.
        ("127.0.0.1:18302", StatusCode::OK),
        ("127.0.0.1:18303", StatusCode::BAD_REQUEST),
    ] {
        let request = Request::get("/health").header("host", host).body(Body::empty()).unwrap();
        assert_eq!(test.send(request).await.status, expected, "{host}");
    }
    // Two Host headers are refused; an absolute-form target is checked by its own authority.
    let two = Request::get("/health")
        .header("host", "shop.test")
        .header("host", "evil.test")
        .body(Body::empty())
        .unwrap();
    assert_eq!(test.send(two).await.status, StatusCode::BAD_REQUEST);
    let absolute =
        Request::get("http://evil.test/health").header("host", "shop.test").body(Body::empty());
    assert_eq!(test.send(absolute.unwrap()).await.status, StatusCode::BAD_REQUEST);
    let absolute =
        Request::get("http://shop.test/health").header("host", "shop.test").body(Body::empty());
    assert_eq!(test.send(absolute.unwrap()).await.status, StatusCode::OK);
}

#[tokio::test]
async fn clients_are_rate_limited_per_key_with_standard_headers() {
    let test = TestApp::with_config(|config| {
        config.rate_limit.enabled = true;
        config.rate_limit.ingest = storepulse_server::config::RateQuota { per_second: 1, burst: 2 };
    });
    let send = |key: Option<&'static str>| {
        let mut request = post("/api/v1/events").header("content-type", "application/json");
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        request.body(Body::from(r#"{"type":"search","query":"a"}"#)).unwrap()
    };
    let first = test.send(send(None)).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.header("x-ratelimit-limit"), Some("2"));
    assert_eq!(first.header("x-ratelimit-remaining"), Some("1"));
    assert_eq!(test.send(send(None)).await.status, StatusCode::OK);
    let limited = test.send(send(None)).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(limited.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(limited.json()["error"]["code"], "rate_limited");
    assert_eq!(limited.header("connection"), None, "no body sent (as this test sends it)");
    // Refused before its body is read, a connection cannot be reused: the answer says so.
    let body = r#"{"type":"search","query":"a"}"#;
    let with_body = post("/api/v1/events")
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(Body::from(body))
        .unwrap();
    let refused = test.send(with_body).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.header("connection"), Some("close"));
    // Another API key has its own budget; health checks have theirs.
    assert_eq!(test.send(send(Some("vu-1"))).await.status, StatusCode::OK);
    assert_eq!(test.get("/health").await.status, StatusCode::OK);
}

/// Seed 3 refused with FastAPI's `{"detail": "Rate limit exceeded"}`; the FastAPI seeds'
/// paths keep that shape (and the headers), Storepulse's own paths keep `{"error": ...}`.
#[tokio::test]
async fn rate_limit_refusals_on_fastapi_seed_paths_have_a_detail_body() {
    let test = TestApp::with_config(|config| {
        config.rate_limit.enabled = true;
        let one = storepulse_server::config::RateQuota { per_second: 1, burst: 1 };
        config.rate_limit.ingest = one;
        config.rate_limit.api = one;
        config.rate_limit.ops = one;
    });
    let send = |method: &str, path: &str, key: &str| {
        Request::builder()
            .method(method)
            .uri(path)
            .header("x-api-key", key)
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .unwrap()
    };
    let refused = async |method: &str, path: &str| {
        // A key per path: the classes' buckets are shared across their routes.
        test.send(send(method, path, path)).await;
        let limited = test.send(send(method, path, path)).await;
        assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS, "{path}");
        let retry_after = limited.header("retry-after").unwrap().parse::<u64>().unwrap();
        assert!(retry_after >= 1, "{path}");
        assert_eq!(limited.header("x-ratelimit-remaining"), Some("0"), "{path}");
        assert_eq!(limited.header("x-ratelimit-limit"), Some("1"), "{path}");
        (limited.json(), retry_after)
    };
    for (method, path) in [
        ("POST", "/ingest"),
        ("GET", "/users/active"),
        ("GET", "/users/user_1/sessions"),
        ("GET", "/metrics"),
        ("POST", "/buy"),
        ("GET", "/stats"),
        ("GET", "/trending_products"),
        ("POST", "/feedback"),
        ("GET", "/healthz"),
    ] {
        let (body, retry_after) = refused(method, path).await;
        let expected = format!("Rate limit exceeded: retry in {retry_after} s");
        assert_eq!(body, serde_json::json!({ "detail": expected }), "{path}");
    }
    for (method, path) in [("POST", "/api/v1/events"), ("GET", "/prometheus"), ("GET", "/health")] {
        let (body, _) = refused(method, path).await;
        assert_eq!(body["error"]["code"], "rate_limited", "{path}: {body}");
    }
}

#[tokio::test]
async fn limits_are_published() {
    let test = TestApp::with_config(|config| config.ingest.limits.max_items = 42);
    let limits = test.get("/api/v1/limits").await.json();
    assert_eq!(limits["event"]["max_items"], 42);
    assert_eq!(limits["event"]["max_batch_events"], 10_000);
    assert_eq!(limits["max_body_bytes"], 16 * 1024 * 1024);
    assert_eq!(limits["dedup_window_seconds"], 86_400);
}

#[tokio::test]
async fn large_ingest_answers_are_gzipped_too() {
    let test = TestApp::new();
    let invalid: Vec<String> = (0..50)
        .map(|index| format!(r#"{{"type":"search","query":"q{index}","bogus":1}}"#))
        .collect();
    let body = format!(r#"[{{"type":"search","query":"ok"}},{}]"#, invalid.join(","));
    let request = post("/api/v1/events")
        .header("content-type", "application/json")
        .header("accept-encoding", "gzip")
        .body(Body::from(body))
        .unwrap();
    let response = test.send(request).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.header("content-encoding"), Some("gzip"));
    let small = post("/api/v1/events")
        .header("content-type", "application/json")
        .header("accept-encoding", "gzip")
        .body(Body::from(r#"{"type":"search","query":"ok"}"#))
        .unwrap();
    assert_eq!(test.send(small).await.header("content-encoding"), None);
}

#[tokio::test]
async fn interval_fsync_makes_idle_writes_durable_within_the_interval() {
    let test = TestApp::with_config(|config| {
        config.log.fsync = storepulse_server::config::FsyncMode::Interval;
        config.log.fsync_interval = std::time::Duration::from_millis(50);
    });
    for index in 0..5 {
        test.post_json("/api/v1/events", &format!(r#"{{"type":"search","query":"q{index}"}}"#))
            .await;
    }
    // Well within the 1 s housekeeping tick, a few intervals later.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let log = test.get("/health").await.json()["log"].clone();
    assert_eq!(log["fsync"], "interval");
    assert_eq!(log["next_offset"], 5);
    assert_eq!(log["durable_offset"], 5, "{log}");
}

/// The admin routes (weight registry changes, trend imports, dead letters) answered any page of
/// any site: a body-less or form POST needs no preflight, so `cors_origins = ["*"]` (for
/// trackers) let any page an employee opened activate weights or replace imported trends.
/// A browser's request from another origin is refused now; the server's own pages, listed
/// `http.admin_origins` and tools sending no `Origin` are served.
#[tokio::test]
async fn admin_routes_refuse_pages_of_other_sites() {
    let test = TestApp::with_config(|config| {
        config.http.admin_origins = vec!["https://admin.shop.test".into()];
    });
    let version = r#"{"version": "v2", "weights": {"view": 2}}"#;
    assert_eq!(
        test.post_json("/api/v1/trending/versions", version).await.status,
        StatusCode::CREATED
    );
    let from = |origin: &str, method: &str, path: &str| {
        Request::builder()
            .method(method)
            .uri(path)
            .header("host", "shop.test")
            .header("origin", origin)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::empty())
            .unwrap()
    };
    let admin = [
        ("POST", "/api/v1/trending/versions/v2/activate"),
        ("POST", "/api/v1/trending/versions"),
        ("POST", "/api/v1/category-trends/import"),
        ("POST", "/api/v1/dead-letters/replay"),
        ("GET", "/api/v1/dead-letters"),
    ];
    for (method, path) in admin {
        let refused = test.send(from("https://evil.example", method, path)).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(refused.json()["error"]["code"], "cross_origin_admin");
    }
    let latest = || async { test.get("/api/v1/trending/versions").await.json()["latest"].clone() };
    assert_eq!(latest().await, "v1", "nothing was activated");
    // Reads and ingest stay open to every origin `cors_origins` allows.
    let read = test.send(from("https://evil.example", "GET", "/api/v1/trending/versions")).await;
    assert_eq!(read.status, StatusCode::OK);
    // The server's own pages, and a listed admin origin, may.
    for origin in ["https://shop.test", "https://admin.shop.test"] {
        let activated =
            test.send(from(origin, "POST", "/api/v1/trending/versions/v2/activate")).await;
        assert_eq!(activated.status, StatusCode::OK, "{origin}: {:?}", activated.json());
    }
    assert_eq!(latest().await, "v2");
    // Behind a trusted proxy that rewrites `Host`, the host it passes on is the server's own.
    let proxied = Request::builder()
        .method("POST")
        .uri("/api/v1/trending/versions/v1/activate")
        .header("host", "127.0.0.1:8080")
        .header("x-forwarded-host", "analytics.shop.test")
        .header("origin", "https://analytics.shop.test")
        .body(Body::empty())
        .unwrap();
    assert_eq!(test.send(proxied).await.status, StatusCode::OK, "the test's peer is loopback");
    let untrusted = Request::builder()
        .method("POST")
        .uri("/api/v1/trending/versions/v1/activate")
        .header("host", "127.0.0.1:8080")
        .header("x-forwarded-host", "evil.example")
        .header("origin", "https://evil.example")
        .body(Body::empty())
        .unwrap();
    let refused = test.send_from(untrusted, "203.0.113.7:5000").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "an untrusted peer's header is not believed");
}
