//! Seed 5's `POST /feedback?product_id=…&feedback=…`: stored as a custom event named
//! `feedback` about that product (the text in `properties.feedback`), durable before the
//! answer `{"message": "Feedback received", "product_id", "feedback"}`. An empty value is 400
//! `{"detail": "Invalid feedback data"}` and a missing one 422, as in seed 5.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;
use storepulse_model::validate::decode_native_event;

use super::intake::{IntakeContext, commit, new_event_id_at, with_retry_after};
use crate::app::AppState;
use crate::error::ApiError;
use crate::http::ClientIp;
use crate::ingest::writer::PreparedBatch;

pub fn router() -> Router<AppState> {
    Router::new().route("/feedback", post(post_feedback))
}

async fn post_feedback(State(state): State<AppState>, request: Request) -> Response {
    feedback(state, request).await.unwrap_or_else(with_retry_after)
}

#[derive(Debug, Default, serde::Deserialize)]
struct FeedbackParams {
    product_id: Option<String>,
    feedback: Option<String>,
}

async fn feedback(state: AppState, request: Request) -> Result<Response, ApiError> {
    let params = axum::extract::Query::<FeedbackParams>::try_from_uri(request.uri())
        .map(|axum::extract::Query(params)| params)
        .unwrap_or_default();
    let (product_id, text) = (params.product_id, params.feedback);
    let missing: Vec<_> = [("product_id", &product_id), ("feedback", &text)]
        .into_iter()
        .filter(|(_, value)| value.is_none())
        .map(|(name, _)| json!({"type": "missing", "loc": ["query", name], "msg": "Field required", "input": null}))
        .collect();
    if !missing.is_empty() {
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, axum::Json(json!({ "detail": missing })))
            .into_response());
    }
    let (Some(product_id), Some(text)) = (product_id, text) else {
        return Err(ApiError::Internal("feedback parameters vanished".into()));
    };
    if product_id.trim().is_empty() || text.trim().is_empty() {
        return Ok((
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"detail": "Invalid feedback data"})),
        )
            .into_response());
    }
    let (parts, _) = request.into_parts();
    let client_ip = parts.extensions.get::<ClientIp>().copied().unwrap_or_default();
    let context = IntakeContext::new(&state, &parts.headers, client_ip, "/feedback");
    let event_ids = || new_event_id_at(context.received_at);
    let validation = context.validation(&state, &event_ids);
    let native = json!({
        "type": "custom",
        "name": "feedback",
        "product": {"id": product_id},
        "properties": {"feedback": text},
    });
    let body = native.to_string();
    let event = match decode_native_event(&body, &validation) {
        Ok(event) => event,
        Err(errors) => {
            context.dead_letter_event(&state, None, &errors, body.as_bytes());
            let reason = errors.0.first().map(|error| error.to_string()).unwrap_or_default();
            return Ok((
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"detail": format!("Invalid feedback data: {reason}")})),
            )
                .into_response());
        }
    };
    let mut batch = PreparedBatch::with_capacity(1, 256);
    batch.push(event);
    commit(&state, batch, "feedback").await?;
    Ok(axum::Json(
        json!({"message": "Feedback received", "product_id": product_id, "feedback": text}),
    )
    .into_response())
}
