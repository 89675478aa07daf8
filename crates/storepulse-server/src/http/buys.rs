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
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use storepulse_engine::buys::BuyTotals;
use storepulse_model::Timestamp;
use storepulse_model::compat::promotion_buy::{PythonJson, decode_promotion_buy, pydantic_type};
use storepulse_model::{ErrorCode, ValidationErrors};

use super::intake::{
    IntakeContext, commit, new_event_id_at, with_retry_after, without_byte_order_mark,
};
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
    let text = String::from_utf8_lossy(without_byte_order_mark(&bytes));
    let event_ids = || new_event_id_at(context.received_at);
    let validation = context.validation(&state, &event_ids);
    let order_id = format!("buy-{}", event_ids());
    let event = match decode_promotion_buy(&text, &order_id, &validation) {
        Ok(event) => event,
        Err(errors) => {
            context.dead_letter_event(&state, None, &errors, &bytes);
            let detail = buy_refusal_detail(&errors, &text);
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

/// Seed 4's 422 body for a refused buy, FastAPI's `{"detail": [{"type", "loc", "msg",
/// "input"}]}` as pydantic 2 filled it: `loc` `["body", field]` (`["body"]` for the whole
/// body), `input` the field's value (the whole body for a missing field), `ctx` where pydantic
/// gave one. A body that is no JSON is FastAPI's `json_invalid` at the character where
/// reading stopped, the reason in `ctx.error` (Python's wording there, ours here). Seed 4
/// answered the detail only, without seed 3's `body`.
fn buy_refusal_detail(errors: &ValidationErrors, body: &str) -> BuyRefusal {
    let input: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let python = PythonJson::new(body);
    let sent = python.fields();
    let detail = errors
        .errors()
        .iter()
        .map(|error| {
            if error.code == ErrorCode::InvalidJson {
                let reason =
                    error.message.strip_prefix("not valid JSON: ").unwrap_or(&error.message);
                return FastApiError {
                    kind: "json_invalid",
                    loc: json!(["body", json_error_position(python.text())]),
                    msg: "JSON decode error".to_owned(),
                    input: raw_json(&json!({})),
                    ctx: Some(json!({"error": reason})),
                };
            }
            // A refusal of Storepulse's own (a value over an ingest limit) has no pydantic
            // type: it takes the form of a validator's `ValueError` in pydantic, `value_error`
            // with the reason after "Value error, " and the exception, which FastAPI encodes as
            // `{}`, in `ctx.error`.
            let kind = pydantic_type(error).unwrap_or("value_error");
            let (loc, field_input) = if error.field.is_empty() {
                (json!(["body"]), raw_json(&input))
            } else {
                let value = match error.code {
                    ErrorCode::Missing => None,
                    _ => sent
                        .get(&error.field)
                        .and_then(|sent| python.input(sent))
                        .and_then(|text| RawValue::from_string(text.into_owned()).ok())
                        .or_else(|| input.get(&error.field).map(raw_json)),
                };
                (json!(["body", error.field]), value.unwrap_or_else(|| raw_json(&input)))
            };
            let msg = match kind {
                "value_error" => format!("Value error, {}", error.message),
                _ => error.message.clone(),
            };
            let ctx = match kind {
                "greater_than" => Some(json!({"gt": 0})),
                "value_error" => Some(json!({"error": {}})),
                _ => None,
            };
            FastApiError { kind, loc, msg, input: field_input, ctx }
        })
        .collect();
    BuyRefusal { detail }
}

/// The body of seed 4's 422.
#[derive(Serialize)]
struct BuyRefusal {
    detail: Vec<FastApiError>,
}

/// One entry of FastAPI's `detail`, its keys in FastAPI's order.
#[derive(Serialize)]
struct FastApiError {
    #[serde(rename = "type")]
    kind: &'static str,
    loc: Value,
    msg: String,
    /// Raw JSON, so that an integer beyond 64 bits keeps its every digit, as Python's did.
    input: Box<RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ctx: Option<Value>,
}

/// `value` as raw JSON text.
fn raw_json(value: &Value) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).unwrap_or_else(|_| RawValue::NULL.to_owned())
}

/// Where reading `body` as JSON stopped, in characters from its start, as Python's
/// `JSONDecodeError.pos` (FastAPI's `loc[1]`) counts: at the character refused, or at the
/// end when the text ran out.
fn json_error_position(body: &str) -> usize {
    let Err(error) = serde_json::from_str::<serde::de::IgnoredAny>(body) else { return 0 };
    let line_start: usize =
        body.split_inclusive('\n').take(error.line().saturating_sub(1)).map(str::len).sum();
    // serde_json's column is 1-based at the byte refused, and the length read at the end.
    let column = if error.is_eof() { error.column() } else { error.column().saturating_sub(1) };
    let byte = (line_start + column).min(body.len());
    body.char_indices().take_while(|(index, _)| *index < byte).count()
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

/// `timeframe_hours` (default 1.0) in [0.1, 168]; otherwise the body of seed 4's 422. The
/// value is read as pydantic reads a float: trimmed, and `inf` and `nan` are floats (refused
/// by the range, not as no number). Text that is no number is FastAPI's `float_parsing` list;
/// out of range, the detail is the text of pydantic's `ValidationError`, which seed 4's
/// dependency passed on as a string (`HTTPException(422, detail=str(e))`).
fn timeframe_hours(query: Option<&str>) -> Result<f64, Value> {
    let Some(text) = seed_query::last_value(query, "timeframe_hours") else { return Ok(1.0) };
    let Ok(hours) = text.trim().parse::<f64>() else {
        return Err(json!({"detail": [{
            "type": "float_parsing",
            "loc": ["query", "timeframe_hours"],
            "msg": "Input should be a valid number, unable to parse string as a number",
            "input": text,
        }]}));
    };
    // pydantic checks the upper bound first, so `nan` fails that one.
    let refused = if hours.is_nan() || hours > 168.0 {
        Some(("less_than_equal", "less than or equal to 168"))
    } else if hours < 0.1 {
        Some(("greater_than_equal", "greater than or equal to 0.1"))
    } else {
        None
    };
    if let Some((kind, bound)) = refused {
        let input = python_float_repr(hours);
        return Err(json!({"detail": format!(
            "1 validation error for StatsRequest\ntimeframe_hours\n  Input should be {bound} \
             [type={kind}, input_value={input}, input_type=float]\n    For further information \
             visit https://errors.pydantic.dev/{PYDANTIC_DOCS_VERSION}/v/{kind}"
        )}));
    }
    Ok(hours)
}

/// The pydantic version in the links of its messages: seed 4 asks for pydantic `^2.5`, which
/// a fresh install of it resolves to 2.14.
const PYDANTIC_DOCS_VERSION: &str = "2.14";

/// `value` as Python's `repr` writes a float (pydantic's `input_value`): the shortest digits
/// that read back, positional from 1e-4 to below 1e16 (`0.09`, `-1.0`, `200.0`) and in
/// exponent form otherwise (`1e-07`, `1e+20`); `inf`, `-inf`, `nan`.
fn python_float_repr(value: f64) -> String {
    if value.is_nan() {
        return "nan".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    // Rust's `{:e}` has the same shortest digits: `1.5e-7`.
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if (-4..16).contains(&exponent) {
        let positional = value.to_string();
        if positional.contains('.') { positional } else { format!("{positional}.0") }
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs())
    }
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

    /// pydantic's `input_value` is Python's `repr` of the float.
    #[test]
    fn floats_are_written_as_python_writes_them() {
        for (value, python) in [
            (0.09, "0.09"),
            (-1.0, "-1.0"),
            (0.0, "0.0"),
            (200.0, "200.0"),
            (168.5, "168.5"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1e-7, "1e-07"),
            (1.5e-7, "1.5e-07"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1e20, "1e+20"),
            (-2.5e300, "-2.5e+300"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
        ] {
            assert_eq!(python_float_repr(value), python, "{value}");
        }
    }
}
