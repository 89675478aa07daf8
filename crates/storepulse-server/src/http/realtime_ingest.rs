//! `POST /ingest`, compatible with seed 3: `{event_type, page_url, user_id, session_id,
//! timestamp}` → `202 {"status": "accepted", "id": <event id>}`.
//!
//! Invalid input answers 422 in FastAPI's shape, as seed 3's clients expect:
//! `{"detail": [{"type", "loc": ["body", field], "msg", "input"}], "body": <raw text>}` — and,
//! as in seed 3, the payload goes to the dead-letter log. Unlike seed 3, the returned `id`
//! identifies the stored event, and 202 means it is durable.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use storepulse_model::compat::realtime_ingest::decode_realtime_ingest_event;
use storepulse_model::{ErrorCode, ValidationErrors};

use super::intake::{
    IntakeContext, commit, new_event_id_at, with_retry_after, without_byte_order_mark,
};
use crate::app::AppState;
use crate::error::ApiError;
use crate::http::ClientIp;
use crate::ingest::writer::PreparedBatch;

pub fn router() -> Router<AppState> {
    Router::new().route("/ingest", post(post_ingest))
}

async fn post_ingest(State(state): State<AppState>, request: Request) -> Response {
    ingest(state, request).await.unwrap_or_else(with_retry_after)
}

async fn ingest(state: AppState, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let client_ip = parts.extensions.get::<ClientIp>().copied().unwrap_or_default();
    let context = IntakeContext::new(&state, &parts.headers, client_ip, "/ingest");
    let bytes = context.read_body(&state, body).await?;
    let text = String::from_utf8_lossy(without_byte_order_mark(&bytes));
    let event_ids = || new_event_id_at(context.received_at);
    let validation = context.validation(&state, &event_ids);
    let event = match decode_realtime_ingest_event(&text, &validation) {
        Ok(event) => event,
        Err(errors) => {
            context.dead_letter_event(&state, None, &errors, &bytes);
            return Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                axum::Json(fastapi_detail(&errors, &text, "string_type")),
            )
                .into_response());
        }
    };
    let id = event.event_id.clone();
    let mut batch = PreparedBatch::with_capacity(1, 512);
    batch.push(event);
    commit(&state, batch, "realtime_ingest").await?;
    Ok((StatusCode::ACCEPTED, axum::Json(json!({ "status": "accepted", "id": id })))
        .into_response())
}

/// Renders errors the way FastAPI's `RequestValidationError` handler did in seed 3 (seed 4's
/// are `buys::buy_refusal_detail`); `type_error` is pydantic's name for a wrong type
/// (`string_type`).
pub(super) fn fastapi_detail(errors: &ValidationErrors, body: &str, type_error: &str) -> Value {
    let input: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let detail: Vec<Value> = errors
        .0
        .iter()
        .map(|error| {
            // A body that is JSON but no object (`[]`, `"x"`): pydantic's model refusal, at
            // the body itself (it was a `string_type` at `["body", ""]`).
            if error.code == ErrorCode::InvalidType && error.field.is_empty() {
                return json!({
                    "type": "model_attributes_type",
                    "loc": ["body"],
                    "msg": "Input should be a valid dictionary or object to extract fields from",
                    "input": input,
                });
            }
            let (kind, loc) = match error.code {
                ErrorCode::InvalidJson => ("json_invalid", json!(["body"])),
                ErrorCode::Missing => ("missing", json!(["body", error.field])),
                ErrorCode::InvalidType => (type_error, json!(["body", error.field])),
                _ => ("value_error", json!(["body", error.field])),
            };
            let field_input = input.get(&error.field).cloned().unwrap_or_else(|| input.clone());
            json!({ "type": kind, "loc": loc, "msg": error.message, "input": field_input })
        })
        .collect();
    json!({ "detail": detail, "body": body })
}
