//! `POST /api/v1/events`: the native intake.
//!
//! Accepts one event (a JSON object), a JSON array, or NDJSON; `text/plain` bodies
//! (navigator.sendBeacon) are sniffed. Valid events are kept even when others in the same
//! request are not. Answers:
//!
//! | case | status | body |
//! |---|---|---|
//! | at least one event valid | 200 | `{accepted, duplicates, rejected: [{index, errors}]}` (+ `event_id` for a single object) |
//! | every event invalid | 422 | error `validation_failed`, `details.rejected` as above |
//! | body not JSON / empty | 400 | error `invalid_body` |
//! | a query parameter (the door takes none) | 400 | error `invalid_parameter` naming it |
//! | more than `max_batch_events` or `max_body_bytes` | 413 | |
//! | other content type | 415 | |
//! | storage failing or queue full | 503 + `Retry-After` | nothing was stored |

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;
use storepulse_model::decode::{BodyFormat, for_each_element, replace_lone_surrogates};
use storepulse_model::raw::RawEvent;
use storepulse_model::validate::validate_native_element;
use storepulse_model::{ErrorCode, FieldError, ValidationErrors};

use super::intake::{
    BatchResponse, CommitSummary, IntakeContext, Rejected, Validated, commit, new_event_id_at,
    off_the_async_threads, with_retry_after, without_byte_order_mark,
};
use crate::app::AppState;
use crate::error::ApiError;
use crate::http::ClientIp;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/events", post(post_events))
}

async fn post_events(State(state): State<AppState>, request: Request) -> Response {
    ingest_native(state, request).await.unwrap_or_else(with_retry_after)
}

async fn ingest_native(state: AppState, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    refuse_query_parameters(parts.uri.query())?;
    let client_ip = parts.extensions.get::<ClientIp>().copied().unwrap_or_default();
    let context = IntakeContext::new(&state, &parts.headers, client_ip, "/api/v1/events");
    let bytes = context.read_body(&state, body).await?;
    let format = context.body_format(&state, &bytes)?;
    let text = without_byte_order_mark(&bytes);
    let body_is_an_object = text.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'{');

    let job_state = state.clone();
    let mut validated = off_the_async_threads(bytes.len(), move || {
        validate_body(&job_state, &context, &bytes, format)
    })
    .await??;
    // One event sent as a bare object (not an array, not several NDJSON lines) gets its id back.
    let single_object = body_is_an_object && validated.batch.len() + validated.rejected.len() == 1;

    let first_event_id = validated.first_event_id.take();
    let outcomes = commit(&state, std::mem::take(&mut validated.batch), "native").await?;
    let summary = CommitSummary::of(&outcomes);
    if outcomes.is_empty() {
        return Err(ApiError::Unprocessable {
            message: format!("all {} events were rejected", validated.rejected.len()),
            details: json!({ "rejected": validated.rejected }),
        });
    }
    let mut body = BatchResponse::new(&summary, &validated.rejected);
    if single_object {
        body.event_id = first_event_id.as_deref();
    }
    Ok(axum::Json(body).into_response())
}

/// This door takes no query parameters: everything, the store too, is in the event. One was
/// silently ignored (`?store=shop-eu` stored into the default store), while an unknown field
/// in the body is refused.
fn refuse_query_parameters(query: Option<&str>) -> Result<(), ApiError> {
    super::refuse_query_parameters(
        query,
        "POST /api/v1/events",
        ": the store and every other field go in the event itself",
    )
}

fn validate_body(
    state: &AppState,
    context: &IntakeContext,
    bytes: &[u8],
    format: BodyFormat,
) -> Result<Validated, ApiError> {
    // Lines of NDJSON that are not UTF-8 are rejected one by one (by event index, with their
    // raw bytes), as any other bad line; a body of one document that is not UTF-8 is refused.
    let mut not_utf8_lines = std::collections::HashMap::new();
    let sanitized;
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(_) if format != BodyFormat::Json && non_blank_lines(bytes) > 1 => {
            sanitized = utf8_lines(bytes, &mut not_utf8_lines);
            sanitized.as_str()
        }
        Err(_) => {
            context.dead_letter_request(
                state,
                FieldError::new("", ErrorCode::InvalidJson, "the body is not UTF-8"),
                bytes,
            );
            return Err(ApiError::bad_request("invalid_body", "the body is not UTF-8 text"));
        }
    };
    validate_text(state, context, bytes, text, format, &not_utf8_lines)
}

/// Validates the events of a body's text (`bytes` is the body as it came, for dead letters);
/// `not_utf8_lines` holds the NDJSON lines that were not UTF-8, by event index.
fn validate_text(
    state: &AppState,
    context: &IntakeContext,
    bytes: &[u8],
    text: &str,
    format: BodyFormat,
    not_utf8_lines: &std::collections::HashMap<usize, &[u8]>,
) -> Result<Validated, ApiError> {
    let limit = state.config.ingest.limits.max_batch_events;
    let event_ids = || new_event_id_at(context.received_at);
    let validation = context.validation(state, &event_ids);
    // Validate and encode while walking the body; dead-letter only once the body proved
    // readable (a syntax error later in the body refuses the whole request).
    let mut validated = Validated::with_capacity(bytes.len());
    let mut rejects = Vec::new();
    let walked = for_each_element::<RawEvent>(text, format, |index, json, decoded| {
        if index >= limit {
            return; // counted, not validated: the request is refused below
        }
        let result = match json {
            Ok(json) => {
                validate_native_element(json, decoded, &validation).map_err(|errors| (errors, json))
            }
            Err(error) => Err((ValidationErrors::single(error), "")),
        };
        match result {
            Ok(event) => validated.accept(event),
            Err(reject) => rejects.push((index, reject)),
        }
    });
    let count = match walked {
        Ok(count) => count,
        Err(error) => {
            if let Some(repaired) = replace_lone_surrogates(text) {
                // Half an emoji cut by a tracker: read it as U+FFFD rather than lose the body.
                return validate_text(state, context, bytes, &repaired, format, not_utf8_lines);
            }
            context.dead_letter_request(
                state,
                FieldError::new("", ErrorCode::InvalidJson, error.message.clone()),
                bytes,
            );
            return Err(ApiError::bad_request("invalid_body", error.message));
        }
    };
    if count == 0 {
        let message = "the body holds no events; send an object, an array of objects or NDJSON";
        return Err(ApiError::bad_request("invalid_body", message));
    }
    if count > limit {
        let message = format!("the request holds {count} events; the limit is {limit} per request");
        context.dead_letter_request(
            state,
            FieldError::new("", ErrorCode::TooLarge, message.clone()),
            bytes,
        );
        let details = json!({ "max_batch_events": limit, "events": count });
        return Err(ApiError::PayloadTooLarge { message, details });
    }
    for (index, (errors, payload)) in rejects {
        let (errors, payload) = match not_utf8_lines.get(&index) {
            Some(raw) => {
                let error =
                    FieldError::new("", ErrorCode::InvalidJson, "the line is not UTF-8 text");
                (ValidationErrors::single(error), *raw)
            }
            None => (errors, payload.as_bytes()),
        };
        context.dead_letter_event(state, Some(index), &errors, payload);
        validated.rejected.push(Rejected { index, errors: errors.0 });
    }
    Ok(validated)
}

fn non_blank_lines(bytes: &[u8]) -> usize {
    bytes.split(|byte| *byte == b'\n').filter(|line| !line.trim_ascii().is_empty()).count()
}

/// The body's lines with each line that is not UTF-8 replaced by a line that is not JSON
/// either (`!`), so that it is rejected at its own index; `bad` gets each such event index
/// (blank lines are not events) with the line's raw bytes.
fn utf8_lines<'a>(bytes: &'a [u8], bad: &mut std::collections::HashMap<usize, &'a [u8]>) -> String {
    let mut text = String::with_capacity(bytes.len());
    let mut index = 0;
    for line in bytes.split(|byte| *byte == b'\n') {
        match std::str::from_utf8(line) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    index += 1;
                }
                text.push_str(line);
            }
            Err(_) => {
                bad.insert(index, line);
                index += 1;
                text.push('!');
            }
        }
        text.push('\n');
    }
    text
}
