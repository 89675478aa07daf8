//! Seed 4's promotion buy tracker: `POST /buy` and `GET /stats?timeframe_hours=`, with its
//! request and response shapes and its validation (422 in FastAPI's shape).
//!
//! Fixed against seed 4: a buy is durable before it is acknowledged, counts are exact under any
//! concurrency (one engine, not one copy per worker process), the event time follows the
//! corrected header rules, and `/stats` answers in O(log n) however many buys are stored.
//! `buy_count`/`total_buys` count units (seed 4's latest behaviour); `n_recent_buys` counts
//! buys (records) as seed 4 did, and `recent_units` adds the units beside it.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use storepulse_engine::buys::BuyTotals;
use storepulse_model::Timestamp;
use storepulse_model::compat::promotion_buy::decode_promotion_buy;

use super::intake::{IntakeContext, commit, new_event_id_at, with_retry_after};
use super::realtime_ingest::fastapi_detail;
use super::seed_query;
use crate::app::AppState;
use crate::error::ApiError;
use crate::http::ClientIp;
use crate::ingest::writer::{EventOutcome, PreparedBatch, now_unix_ms};
use crate::sync::RwLockExt;

pub fn ingest_router() -> Router<AppState> {
    Router::new().route("/buy", post(post_buy))
}

pub fn read_router() -> Router<AppState> {
    Router::new().route("/stats", get(get_stats))
}

async fn post_buy(State(state): State<AppState>, request: Request) -> Response {
    buy(state, request).await.unwrap_or_else(with_retry_after)
}

async fn buy(state: AppState, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let client_ip = parts.extensions.get::<ClientIp>().copied().unwrap_or_default();
    let context = IntakeContext::new(&state, &parts.headers, client_ip, "/buy");
    let bytes = context.read_body(&state, body).await?;
    let text = String::from_utf8_lossy(&bytes);
    let event_ids = || new_event_id_at(context.received_at);
    let validation = context.validation(&state, &event_ids);
    let order_id = format!("buy-{}", event_ids());
    let event = match decode_promotion_buy(&text, &order_id, &validation) {
        Ok(event) => event,
        Err(errors) => {
            context.dead_letter_event(&state, None, &errors, &bytes);
            let mut detail = fastapi_detail(&errors, &text, "int_parsing");
            if let Some(object) = detail.as_object_mut() {
                // Seed 4's handler answered `{"detail": [...]}` only.
                object.remove("body");
            }
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, axum::Json(detail)).into_response());
        }
    };
    let mut batch = PreparedBatch::with_capacity(1, 512);
    batch.push(event);
    let outcomes = commit(&state, batch, "promotion_buy").await?;
    let total = match outcomes.first() {
        Some(EventOutcome::Stored { offset }) => total_including(&state, *offset).await,
        _ => state.engine.read_ignoring_poison().buy_stats(Timestamp(now_unix_ms())).total,
    };
    Ok(axum::Json(json!({
        "success": true,
        "buy_count": total.units,
        "message": format!("Buy logged successfully. Total buys: {}", total.units),
    }))
    .into_response())
}

/// The running total once the engine has applied the buy stored at `offset`. The applier applies
/// it before answering, except while a snapshot is being encoded: the buy then waits in the
/// applier's backlog until the snapshot is done (seconds at most), and so does this answer.
/// Should the engine not get there within a minute (it would be a bug), the answer is the
/// total without it: the buy is stored, and an error would make the client buy again.
async fn total_including(state: &AppState, offset: u64) -> BuyTotals {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        {
            let engine = state.engine.read_ignoring_poison();
            if engine.log_position() > offset || std::time::Instant::now() >= deadline {
                if engine.log_position() <= offset {
                    tracing::warn!(offset, "the engine has not applied a stored buy after 60 s");
                }
                return engine.buy_stats(Timestamp(now_unix_ms())).total;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}

async fn get_stats(State(state): State<AppState>, request: Request) -> Response {
    let hours = match timeframe_hours(request.uri().query()) {
        Ok(hours) => hours,
        Err(detail) => {
            return (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(detail)).into_response();
        }
    };
    let now = now_unix_ms();
    let window_ms = (hours * 3_600_000.0).round() as i64;
    let stats = state.engine.read_ignoring_poison().buy_stats(Timestamp(now - window_ms));
    let uptime = state.started.elapsed();
    axum::Json(json!({
        "uptime_seconds": uptime.as_secs_f64(),
        "uptime_formatted": format_uptime(uptime.as_secs()),
        "total_buys": stats.total.units,
        "current_time": Timestamp(now).to_python_isoformat(),
        "server_status": "healthy",
        "n_recent_buys": stats.recent.records,
        "recent_units": stats.recent.units,
        "timeframe_hours": hours,
    }))
    .into_response()
}

/// `timeframe_hours` (default 1.0) in [0.1, 168]; otherwise the body of seed 4's 422.
fn timeframe_hours(query: Option<&str>) -> Result<f64, serde_json::Value> {
    let Some(text) = seed_query::last_value(query, "timeframe_hours") else { return Ok(1.0) };
    let Some(hours) = text.parse::<f64>().ok().filter(|hours| hours.is_finite()) else {
        return Err(json!({"detail": [{
            "type": "float_parsing",
            "loc": ["query", "timeframe_hours"],
            "msg": "Input should be a valid number, unable to parse string as a number",
            "input": text,
        }]}));
    };
    if !(0.1..=168.0).contains(&hours) {
        return Err(json!({
            "detail": format!("timeframe_hours must be between 0.1 and 168.0 hours, got {hours}")
        }));
    }
    Ok(hours)
}

/// Seed 4's `format_uptime` (`simple_api/utils.py`): `10s`, `1m 5s`, `1h 0m 0s`,
/// `2d 3h 4m 5s` — from the largest unit present down to seconds.
fn format_uptime(seconds: u64) -> String {
    let (days, hours, minutes, seconds) =
        (seconds / 86_400, seconds % 86_400 / 3600, seconds % 3600 / 60, seconds % 60);
    if days > 0 {
        format!("{days}d {hours}h {minutes}m {seconds}s")
    } else if hours > 0 {
        format!("{hours}h {minutes}m {seconds}s")
    } else if minutes > 0 {
        format!("{minutes}m {seconds}s")
    } else {
        format!("{seconds}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Uptime read like Python's `str(timedelta)` (`0:00:10`, `1 day, 0:00:00`), not as seed 4
    /// wrote it.
    #[test]
    fn uptime_reads_as_seed_4_wrote_it() {
        assert_eq!(format_uptime(0), "0s");
        assert_eq!(format_uptime(10), "10s");
        assert_eq!(format_uptime(65), "1m 5s");
        assert_eq!(format_uptime(3600), "1h 0m 0s");
        assert_eq!(format_uptime(7384), "2h 3m 4s");
        assert_eq!(format_uptime(2 * 86_400 + 3 * 3600 + 4 * 60 + 5), "2d 3h 4m 5s");
        assert_eq!(format_uptime(86_400), "1d 0h 0m 0s");
    }

    #[test]
    fn timeframe_bounds_are_inclusive() {
        assert_eq!(timeframe_hours(None).ok(), Some(1.0));
        assert_eq!(timeframe_hours(Some("timeframe_hours=0.1")).ok(), Some(0.1));
        assert_eq!(timeframe_hours(Some("timeframe_hours=168")).ok(), Some(168.0));
        assert!(timeframe_hours(Some("timeframe_hours=168.01")).is_err());
        assert!(timeframe_hours(Some("timeframe_hours=0.09")).is_err());
        assert!(timeframe_hours(Some("timeframe_hours=abc")).is_err());
    }
}
