//! Segment's HTTP Tracking API: `POST /v1/track`, `/v1/page`, `/v1/screen`, `/v1/identify`,
//! `/v1/group`, `/v1/alias` (one message each) and `/v1/batch` (`{"batch": [...]}`), plus the
//! short paths analytics.js uses (`/v1/t`, `/v1/p`, `/v1/s`, `/v1/i`, `/v1/g`, `/v1/a`, `/v1/b`).
//!
//! An unmodified Segment library pointed at Storepulse works: the write key (Basic auth or
//! `writeKey` in the body) is accepted and not checked, gzip bodies are decompressed, and the
//! answer is Segment's `200 {"success": true}` — with Storepulse's counts and rejects beside
//! it. A message that fails validation is dead-lettered and reported; when nothing in a
//! request is valid the answer is 400, which Segment libraries treat as "do not retry".

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use serde_json::json;
use storepulse_model::compat::segment::{SegmentBatch, SegmentCall, decode_segment_message};
use storepulse_model::decode::parse_reading_lone_surrogates;
use storepulse_model::{ErrorCode, FieldError};

use super::intake::{
    BatchResponse, CommitSummary, IntakeContext, Rejected, Validated, commit, new_event_id_at,
    off_the_async_threads, with_retry_after,
};
use crate::app::AppState;
use crate::error::ApiError;
use crate::http::ClientIp;

/// The single-message calls and their paths: the documented ones, and the one-letter ones
/// analytics.js (the browser library) posts to, as `text/plain`. A dead letter's replay reads
/// its call from its path here too.
pub const SINGLE_CALLS: [(&str, SegmentCall); 12] = [
    ("/v1/track", SegmentCall::Track),
    ("/v1/page", SegmentCall::Page),
    ("/v1/screen", SegmentCall::Screen),
    ("/v1/identify", SegmentCall::Identify),
    ("/v1/group", SegmentCall::Group),
    ("/v1/alias", SegmentCall::Alias),
    ("/v1/t", SegmentCall::Track),
    ("/v1/p", SegmentCall::Page),
    ("/v1/s", SegmentCall::Screen),
    ("/v1/i", SegmentCall::Identify),
    ("/v1/g", SegmentCall::Group),
    ("/v1/a", SegmentCall::Alias),
];

pub fn router() -> Router<AppState> {
    // `/v1/b` is analytics.js's batching endpoint.
    let mut router =
        Router::new().route("/v1/batch", post(batch)).route("/v1/b", post(batch_short));
    for (path, call) in SINGLE_CALLS {
        router = router.route(path, post(move |state, request| single(state, request, call, path)));
    }
    router
}

async fn single(
    State(state): State<AppState>,
    request: Request,
    call: SegmentCall,
    endpoint: &'static str,
) -> Response {
    ingest_segment(state, request, Some(call), endpoint).await.unwrap_or_else(with_retry_after)
}

async fn batch(State(state): State<AppState>, request: Request) -> Response {
    ingest_segment(state, request, None, "/v1/batch").await.unwrap_or_else(with_retry_after)
}

async fn batch_short(State(state): State<AppState>, request: Request) -> Response {
    ingest_segment(state, request, None, "/v1/b").await.unwrap_or_else(with_retry_after)
}

async fn ingest_segment(
    state: AppState,
    request: Request,
    call: Option<SegmentCall>,
    endpoint: &'static str,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let client_ip = parts.extensions.get::<ClientIp>().copied().unwrap_or_default();
    let mut context = IntakeContext::new(&state, &parts.headers, client_ip, endpoint);
    // Segment libraries always send JSON; some send no content type at all.
    let bytes = context.read_body(&state, body).await?;
    context.body_format(&state, &bytes)?;
    let store = store_for_write_key(&state, &parts.headers, &bytes)?;
    context.store.clone_from(&store);
    let job_state = state.clone();
    let mut validated = off_the_async_threads(bytes.len(), move || {
        validate(&job_state, &context, &bytes, call, store.as_deref())
    })
    .await??;
    let outcomes = commit(&state, std::mem::take(&mut validated.batch), "segment").await?;
    if outcomes.is_empty() {
        return Err(ApiError::BadRequest {
            code: "validation_failed",
            message: format!("all {} messages were rejected", validated.rejected.len()),
            details: Some(json!({ "rejected": validated.rejected })),
        });
    }
    let summary = CommitSummary::of(&outcomes);
    let mut body = BatchResponse::new(&summary, &validated.rejected);
    body.success = Some(true);
    Ok(axum::Json(body).into_response())
}

/// With `ingest.write_keys` configured, the store the request's write key writes to (401 for
/// a missing or unknown key); otherwise `None` (the default store).
fn store_for_write_key(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Option<String>, ApiError> {
    let keys = &state.config.ingest.write_keys;
    if keys.is_empty() {
        return Ok(None);
    }
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic "))
        .and_then(|encoded| base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok())
        .and_then(|decoded| String::from_utf8(decoded).ok())
        .map(|user_and_password| {
            user_and_password.split(':').next().unwrap_or_default().to_owned()
        });
    let key = from_header.or_else(|| {
        #[derive(serde::Deserialize)]
        struct WriteKeyOnly {
            #[serde(rename = "writeKey")]
            write_key: Option<String>,
        }
        serde_json::from_slice::<WriteKeyOnly>(body).ok().and_then(|only| only.write_key)
    });
    match key.as_deref().and_then(|key| keys.get(key)) {
        Some(store) => Ok(Some(store.clone())),
        None => Err(ApiError::Unauthorized {
            message: match key {
                Some(_) => "unknown write key".into(),
                None => {
                    "a write key is required (Basic auth user, or \"writeKey\" in the body)".into()
                }
            },
        }),
    }
}

fn validate(
    state: &AppState,
    context: &IntakeContext,
    bytes: &[u8],
    call: Option<SegmentCall>,
    store: Option<&str>,
) -> Result<Validated, ApiError> {
    let invalid_body = |message: String| {
        context.dead_letter_request(
            state,
            FieldError::new("", ErrorCode::InvalidJson, message.clone()),
            bytes,
        );
        ApiError::bad_request("invalid_body", message)
    };
    let text = std::str::from_utf8(bytes)
        .map_err(|_| invalid_body("the body is not UTF-8 text".into()))?;
    // Half an emoji cut by a tracker (a lone surrogate escape) reads as U+FFFD rather than
    // losing the body: a body serde refuses is parsed again from a repaired copy kept here.
    let mut repaired = None;
    let event_ids = || new_event_id_at(context.received_at);
    let mut validation = context.validation(state, &event_ids);
    if let Some(store) = store {
        validation.default_store = store;
    }
    let mut validated = Validated::with_capacity(bytes.len());
    let mut check = |index: Option<usize>,
                     json: &str,
                     call: Option<SegmentCall>,
                     sent_at: Option<&serde_json::Value>| {
        match decode_segment_message(json, call, sent_at, &validation) {
            Ok(event) => validated.accept(event),
            Err(errors) => {
                context.dead_letter_event(state, index, &errors, json.as_bytes());
                validated.rejected.push(Rejected { index: index.unwrap_or(0), errors: errors.0 });
            }
        }
    };
    match call {
        Some(call) => {
            let message: &serde_json::value::RawValue =
                parse_reading_lone_surrogates(text, &mut repaired).map_err(|error| {
                    invalid_body(format!("the body is not valid JSON: {error}"))
                })?;
            check(None, message.get(), Some(call), None);
        }
        None => {
            // serde reads a struct from an array too (by position), and its refusal then read
            // backwards ("invalid type: map, expected a sequence").
            if text.trim_start().starts_with('[') {
                return Err(invalid_body(
                    "the body must be an object {\"batch\": [messages]}, got an array".into(),
                ));
            }
            let batch: SegmentBatch<'_> = parse_reading_lone_surrogates(text, &mut repaired)
                .map_err(|error| {
                    invalid_body(format!("a batch must be {{\"batch\": [messages]}}: {error}"))
                })?;
            let limit = state.config.ingest.limits.max_batch_events;
            if batch.batch.is_empty() {
                return Err(ApiError::bad_request("invalid_body", "the batch holds no messages"));
            }
            if batch.batch.len() > limit {
                let message =
                    format!("the batch holds {} messages; the limit is {limit}", batch.batch.len());
                context.dead_letter_request(
                    state,
                    FieldError::new("", ErrorCode::TooLarge, message.clone()),
                    bytes,
                );
                let details = json!({ "max_batch_events": limit, "events": batch.batch.len() });
                return Err(ApiError::PayloadTooLarge { message, details });
            }
            for (index, message) in batch.batch.iter().enumerate() {
                check(Some(index), message.get(), None, batch.sent_at.as_ref());
            }
        }
    }
    Ok(validated)
}
