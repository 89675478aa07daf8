//! Operations endpoints: `GET /health` (seed 4's `status`, `timestamp`, `uptime_seconds`,
//! plus version and log state), `GET /ready`, `GET /metrics` (seed 3's JSON live figures for
//! its dashboard; Prometheus / OpenMetrics text when a scraper asks for it), `GET /prometheus`
//! and `GET /api/v1/limits` (the ingest limits in force).
//!
//! `/health` answers 503 with `"status": "unhealthy"` while the event log cannot be written,
//! so a load balancer stops sending events to a node that cannot keep them.
//!
//! Three seeds served `GET /health`, each in its own shape, and their users' monitors parse it:
//! one body carries all three (their fields do not collide), so a monitor of any of them keeps
//! working on the same path with the same status codes. Seed 4's `status` (`"healthy"`),
//! `timestamp`, `uptime_seconds` are Storepulse's own; seed 1 adds `cache_status` and
//! `data_count`; seed 2 (ShopX) adds its envelope `success`, `data: {status: "ok", version,
//! timestamp}`, `error_code`, `error_message`.

use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use storepulse_model::Timestamp;

use crate::app::AppState;
use crate::http::analytics::{LiveParams, realtime_answer};
use crate::http::seed_query;
use crate::ingest::writer::now_unix_ms;
use crate::sync::RwLockExt;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(get_health))
        .route("/ready", get(get_ready))
        .route("/metrics", get(get_metrics))
        .route("/prometheus", get(get_prometheus))
        .route("/api/v1/limits", get(get_limits))
}

async fn get_health(State(state): State<AppState>) -> Response {
    let status = state.ingest.status();
    let writable = status.writable.load(Ordering::Relaxed);
    let timestamp = Timestamp(now_unix_ms()).to_python_isoformat();
    let engine = state.engine.read_ignoring_poison().stats();
    let last_error = if writable { None } else { status.last_error() };
    // Seed 1 counted the trend rows it served: the imported ones while there are any (what
    // `/api/trends` lists then), else the events everything here is computed from.
    let imported_rows = state.imported_trends.len();
    let data_count = if imported_rows > 0 { imported_rows as u64 } else { engine.events_applied };
    let body = json!({
        "status": if writable { "healthy" } else { "unhealthy" },
        "timestamp": timestamp,
        "uptime_seconds": state.started.elapsed().as_secs_f64(),
        // Seed 1: its cache expired every five minutes; answers here are computed from the
        // stored events as they are asked, so what they are read from is always current.
        "cache_status": "valid",
        "data_count": data_count,
        // Seed 2's envelope.
        "success": writable,
        "data": {
            "status": if writable { "ok" } else { "unhealthy" },
            "version": env!("CARGO_PKG_VERSION"),
            "timestamp": timestamp,
        },
        "error_code": if writable { None } else { Some("SERVICE_UNAVAILABLE") },
        "error_message": if writable {
            None
        } else {
            Some(last_error.clone().unwrap_or_else(|| "the event log cannot be written".into()))
        },
        "version": env!("CARGO_PKG_VERSION"),
        "started_at": state.started_at.to_python_isoformat(),
        "log": {
            "writable": writable,
            "fsync": state.ingest.fsync,
            "next_offset": status.next_offset.load(Ordering::Relaxed),
            "durable_offset": status.durable_offset.load(Ordering::Relaxed),
            "segments": status.segments.load(Ordering::Relaxed),
            "bytes": status.log_bytes.load(Ordering::Relaxed),
            "last_error": last_error,
            "recovered_torn_bytes": state.ingest.recovery.truncated_bytes,
        },
        "engine": engine,
        "process": { "resident_bytes": crate::telemetry::resident_bytes() },
    });
    let code = if writable { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, axum::Json(body)).into_response()
}

async fn get_ready(State(state): State<AppState>) -> Response {
    let writable = state.ingest.status().writable.load(Ordering::Relaxed);
    let code = if writable { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, axum::Json(json!({ "ready": writable }))).into_response()
}

/// The limits events are checked against, so SDK authors can size batches and fields.
async fn get_limits(State(state): State<AppState>) -> Response {
    axum::Json(json!({
        "event": state.config.ingest.limits,
        "max_body_bytes": state.config.http.max_body_bytes,
        "dedup_window_seconds": state.config.ingest.dedup_window.as_secs(),
        "max_clock_skew_seconds": state.config.ingest.max_clock_skew.as_secs(),
    }))
    .into_response()
}

/// Seed 3's live figures as JSON, unless the client asks for Prometheus text: seed 3's
/// dashboard read `GET /metrics` with `fetch()` and its test with httpx, both sending
/// `Accept: */*`, while seed 3's Prometheus scraped `/prometheus`. A scraper still pointed at
/// `/metrics` names `application/openmetrics-text` or `text/plain` in its `Accept`, so it keeps
/// getting text. The JSON is `/api/v1/realtime`'s answer, which has seed 3's fields, with its
/// parameters (a store's figures, not every tenant's; unknown ones a 400, but for a cache
/// buster `_`, which seed 3 ignored as FastAPI ignores any unknown parameter).
async fn get_metrics(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|value| value.to_str().ok());
    if wants_prometheus_text(accept.unwrap_or_default()) {
        return get_prometheus(State(state)).await;
    }
    seed_query::parse_without_cache_buster::<LiveParams>(uri.query())
        .and_then(|params| realtime_answer(&state, &params))
        .into_response()
}

/// Whether an `Accept` header asks for Prometheus text before JSON: the first media range,
/// in the order written, that is JSON or a Prometheus type decides (Prometheus's own scrape
/// header lists OpenMetrics, then `text/plain;version=0.0.4`, then `*/*`). Wildcards and an
/// absent header decide nothing, so they get JSON; a range refused with `q=0` is skipped.
fn wants_prometheus_text(accept: &str) -> bool {
    let named = accept.split(',').find_map(|range| {
        let mut parts = range.split(';').map(str::trim);
        let media_type = parts.next().unwrap_or_default().to_ascii_lowercase();
        let refused = parts.any(|parameter| {
            parameter
                .split_once('=')
                .is_some_and(|(name, value)| name.trim() == "q" && value.trim().parse() == Ok(0.0))
        });
        match media_type.as_str() {
            _ if refused => None,
            "application/json" => Some(false),
            "application/openmetrics-text" | "text/plain" => Some(true),
            _ => None,
        }
    });
    named.unwrap_or(false)
}

/// Prometheus exposition (also seed 3's `GET /prometheus`).
async fn get_prometheus(State(state): State<AppState>) -> Response {
    let mut text = String::with_capacity(16 * 1024);
    if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &state.registry) {
        return crate::error::ApiError::Internal(format!("metrics encoding failed: {error}"))
            .into_response();
    }
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text)
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::wants_prometheus_text;

    #[test]
    fn prometheus_text_only_when_named_before_json() {
        let prometheus_scrape =
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        for accept in
            [prometheus_scrape, "text/plain", "application/openmetrics-text", "TEXT/PLAIN"]
        {
            assert!(wants_prometheus_text(accept), "{accept}");
        }
        let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        for accept in ["", "*/*", browser, "application/json, text/plain, */*", "text/plain;q=0"] {
            assert!(!wants_prometheus_text(accept), "{accept}");
        }
    }
}
