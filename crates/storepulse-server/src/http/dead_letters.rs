//! `GET /api/v1/dead-letters` (paged, filtered by reason) and
//! `POST /api/v1/dead-letters/replay`.

use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use storepulse_model::ErrorCode;

use crate::app::AppState;
use crate::dead_letter::replay::replay_dead_letters;
use crate::error::ApiError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/dead-letters", get(list_dead_letters))
        .route("/api/v1/dead-letters/replay", post(replay))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PageParams {
    from: Option<String>,
    limit: Option<String>,
    reason: Option<String>,
}

struct ParsedPage {
    from: Option<u64>,
    limit: usize,
    reason: Option<ErrorCode>,
}

fn parse(
    params: PageParams,
    default_limit: usize,
    max_limit: usize,
) -> Result<ParsedPage, ApiError> {
    let from = match params.from {
        Some(text) => Some(text.trim().parse::<u64>().map_err(|_| {
            ApiError::invalid_parameter(
                "from",
                format!("{text:?} is not an offset (a whole number >= 0)"),
            )
        })?),
        None => None,
    };
    let limit = match params.limit {
        Some(text) => match text.trim().parse::<usize>() {
            Ok(limit) if (1..=max_limit).contains(&limit) => limit,
            _ => {
                return Err(ApiError::invalid_parameter(
                    "limit",
                    format!("must be a whole number from 1 to {max_limit}, got {text:?}"),
                ));
            }
        },
        None => default_limit,
    };
    let reason = match params.reason {
        Some(text) => Some(ErrorCode::parse(text.trim()).ok_or_else(|| {
            let known: Vec<&str> = ErrorCode::ALL.iter().map(|code| code.as_str()).collect();
            ApiError::invalid_parameter(
                "reason",
                format!("{text:?} is not a reason; use one of {}", known.join(", ")),
            )
        })?),
        None => None,
    };
    Ok(ParsedPage { from, limit, reason })
}

fn query_error(error: axum::extract::rejection::QueryRejection) -> ApiError {
    ApiError::from_serde_refusal("query", &error.body_text())
}

async fn list_dead_letters(
    State(state): State<AppState>,
    params: Result<Query<PageParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(query_error)?;
    let page = parse(params, 100, 1000)?;
    let dead_letters_state = state.clone();
    let result = tokio::task::spawn_blocking(move || {
        dead_letters_state.dead_letters.page(page.from, page.limit, page.reason)
    })
    .await
    .map_err(|error| ApiError::Internal(error.to_string()))?
    .map_err(|error| ApiError::Internal(error.to_string()))?;
    Ok(axum::Json(result).into_response())
}

async fn replay(
    State(state): State<AppState>,
    params: Result<Query<PageParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(query_error)?;
    let page = parse(params, 10_000, 100_000)?;
    let report = replay_dead_letters(&state, page.from, page.limit, page.reason)
        .await
        .map_err(|error| ApiError::Internal(error.to_string()))?;
    Ok(axum::Json(report).into_response())
}
