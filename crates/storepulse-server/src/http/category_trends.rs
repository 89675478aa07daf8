//! Category trends (seed 1): `GET /api/v1/category-trends` (gainers and losers),
//! `GET /api/v1/category-trends/ticker`, `GET /api/v1/category-trends/rows`,
//! `POST /api/v1/category-trends/import` (seed 1's CSV) and seed 1's `GET /api/trends`.
//!
//! `source=computed` (the default) ranks rows computed from stored events as of now;
//! `source=imported` ranks the last imported CSV. Both go through the same scoring and filters
//! (`[category_trends]` in the configuration).

use axum::body::Bytes;
use axum::extract::{Query, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use storepulse_engine::category_trends::{TrendFilter, TrendRow, rank, select, ticker};
use storepulse_model::Timestamp;
use storepulse_model::money::Currency;

use super::analytics::{filter_text, invalid, store_text};
use crate::app::AppState;
use crate::category_trends::ImportRefusal;
use crate::error::ApiError;
use crate::ingest::writer::now_unix_ms;
use crate::sync::RwLockExt;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/category-trends", get(get_ranking))
        .route("/api/v1/category-trends/ticker", get(get_ticker))
        .route("/api/v1/category-trends/rows", get(get_rows))
        .route("/api/v1/category-trends/import", post(post_import))
        .route("/api/trends", get(get_seed_trends))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrendParams {
    source: Option<String>,
    /// One store's computed trends (imported rows carry no store).
    store: Option<String>,
    category: Option<String>,
    country: Option<String>,
    level: Option<String>,
    limit: Option<String>,
    currency: Option<String>,
}

fn rows(state: &AppState, params: &TrendParams) -> Result<(&'static str, Vec<TrendRow>), ApiError> {
    let store = store_text(&params.store)?;
    match params.source.as_deref().map_or("computed", str::trim) {
        "computed" => {
            let currency = match params.currency.as_deref() {
                None => state.default_currency,
                Some(code) => Currency::parse(code).ok_or_else(|| {
                    invalid("currency", format!("{code:?} is not an ISO 4217 code"))
                })?,
            };
            let now = Timestamp(now_unix_ms());
            Ok((
                "computed",
                state.engine.read_ignoring_poison().category_trend_rows_of(
                    now,
                    currency,
                    &state.config.category_trends,
                    store.as_deref(),
                ),
            ))
        }
        "imported" if store.is_some() => Err(invalid(
            "store",
            "imported rows carry no store (seed 1's CSV has none); leave it out, or ask for \
             source=computed",
        )),
        "imported" => Ok(("imported", state.imported_trends.rows())),
        _ => Err(invalid("source", "computed or imported")),
    }
}

fn parse_small(
    parameter: &'static str,
    text: Option<&str>,
    range: std::ops::RangeInclusive<u64>,
    default: u64,
) -> Result<u64, ApiError> {
    let Some(text) = text else { return Ok(default) };
    text.trim().parse::<u64>().ok().filter(|value| range.contains(value)).ok_or_else(|| {
        invalid(parameter, format!("must be an integer in {}..={}", range.start(), range.end()))
    })
}

/// A `category` filter. `all` (any case) is no filter: seed 1's default, which its page's
/// links send (`category=all&country=US`), so a category of that name cannot be asked for.
fn category_filter(params: &TrendParams) -> Result<Option<String>, ApiError> {
    let category = filter_text("category", &params.category)?;
    Ok(category.filter(|name| !name.trim().eq_ignore_ascii_case("all")))
}

/// The `category`, `country` and `level` filters of a request.
fn trend_filter(params: &TrendParams) -> Result<TrendFilter, ApiError> {
    let level = params
        .level
        .as_deref()
        .map(|text| parse_small("level", Some(text), 1..=3, 1))
        .transpose()?;
    Ok(TrendFilter {
        category: category_filter(params)?,
        country: filter_text("country", &params.country)?,
        level: level.map(|level| level as u8),
    })
}

type Params = Result<Query<TrendParams>, axum::extract::rejection::QueryRejection>;

async fn get_ranking(State(state): State<AppState>, params: Params) -> Result<Response, ApiError> {
    let Query(params) =
        params.map_err(|error| ApiError::from_serde_refusal("query", &error.body_text()))?;
    let limit = parse_small("limit", params.limit.as_deref(), 1..=1000, 10)? as usize;
    let filter = trend_filter(&params)?;
    let (source, rows) = rows(&state, &params)?;
    let ranking = rank(&rows, &state.config.category_trends, &filter, limit);
    Ok(Json(json!({
        "source": source,
        "settings": state.config.category_trends,
        "gainers": ranking.gainers,
        "losers": ranking.losers,
    }))
    .into_response())
}

async fn get_ticker(State(state): State<AppState>, params: Params) -> Result<Response, ApiError> {
    let Query(params) =
        params.map_err(|error| ApiError::from_serde_refusal("query", &error.body_text()))?;
    // The ticker is across countries and levels (seed 1's: top gainers and losers of all):
    // those filters would be ignored, so they are refused.
    for (parameter, given) in [
        ("country", params.country.is_some()),
        ("level", params.level.is_some()),
        ("limit", params.limit.is_some()),
    ] {
        if given {
            return Err(invalid(
                parameter,
                "the ticker is 5 gainers and 5 losers across countries and levels; filter \
                 the ranking at /api/v1/category-trends instead",
            ));
        }
    }
    let category = category_filter(&params)?;
    let (source, rows) = rows(&state, &params)?;
    let items = ticker(&rows, &state.config.category_trends, category);
    Ok(Json(json!({ "source": source, "items": items })).into_response())
}

/// The rows themselves (every one by default, in their order), each scored with the
/// configured weights, narrowed by the same filters as the ranking; seed 1's `/api/trends`
/// lists them in its own shape.
async fn get_rows(State(state): State<AppState>, params: Params) -> Result<Response, ApiError> {
    let Query(params) =
        params.map_err(|error| ApiError::from_serde_refusal("query", &error.body_text()))?;
    let limit = parse_small("limit", params.limit.as_deref(), 1..=MAX_ROWS, MAX_ROWS)? as usize;
    let filter = trend_filter(&params)?;
    let (_, rows) = rows(&state, &params)?;
    Ok(Json(select(&rows, &state.config.category_trends, &filter, limit)).into_response())
}

/// Seed 1's `GET /api/trends`: every row under seed 1's CSV column names, sorted by
/// `abs(revenue_weekly_change)` descending (seed 1's load order; rows without a weekly change
/// last). Seed 1 served its loaded CSV, so the imported rows are listed while there are any,
/// else the rows computed from events. It took no parameters, and ignores any.
async fn get_seed_trends(State(state): State<AppState>) -> Result<Response, ApiError> {
    let source = if state.imported_trends.rows().is_empty() { "computed" } else { "imported" };
    let params = TrendParams { source: Some(source.to_owned()), ..TrendParams::default() };
    let (_, mut rows) = rows(&state, &params)?;
    let weekly = |row: &TrendRow| row.revenue_weekly_change.map(f64::abs);
    // A stable sort: rows of equal change keep their order. `None` sorts below every number.
    rows.sort_by(|a, b| weekly(b).partial_cmp(&weekly(a)).unwrap_or(std::cmp::Ordering::Equal));
    Ok(Json(rows.iter().map(SeedOneRow::from).collect::<Vec<_>>()).into_response())
}

/// A row as seed 1 served it: its CSV's column names, no score.
#[derive(serde::Serialize)]
struct SeedOneRow<'a> {
    event_date: &'a str,
    campaign_country: &'a str,
    product_category_level_1: &'a str,
    product_category_level_2: Option<&'a str>,
    product_category_level_3: Option<&'a str>,
    revenue_daily_change: Option<f64>,
    revenue_weekly_change: Option<f64>,
    revenue_monthly_change: Option<f64>,
    commission_daily_change: Option<f64>,
    commission_weekly_change: Option<f64>,
    commission_monthly_change: Option<f64>,
}

impl<'a> From<&'a TrendRow> for SeedOneRow<'a> {
    fn from(row: &'a TrendRow) -> Self {
        Self {
            event_date: &row.event_date,
            campaign_country: &row.country,
            product_category_level_1: &row.category_level_1,
            product_category_level_2: row.category_level_2.as_deref(),
            product_category_level_3: row.category_level_3.as_deref(),
            revenue_daily_change: row.revenue_daily_change,
            revenue_weekly_change: row.revenue_weekly_change,
            revenue_monthly_change: row.revenue_monthly_change,
            commission_daily_change: row.commission_daily_change,
            commission_weekly_change: row.commission_weekly_change,
            commission_monthly_change: row.commission_monthly_change,
        }
    }
}

/// The most rows one answer lists (every row when no `limit` is given).
const MAX_ROWS: u64 = 1_000_000;

async fn post_import(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let endpoint = "POST /api/v1/category-trends/import";
    super::refuse_query_parameters(query.as_deref(), endpoint, ": the CSV is the body")?;
    match state.imported_trends.import(&body) {
        Ok(Ok(count)) => Ok(Json(json!({ "imported": count })).into_response()),
        Ok(Err(ImportRefusal::NoRows)) => Err(invalid(
            "body",
            "the CSV holds a header but no rows; an import replaces the previous one, so it \
             must hold rows (the previous import is kept)",
        )),
        Ok(Err(ImportRefusal::Invalid(error))) => Err(ApiError::Unprocessable {
            message: error.to_string(),
            details: json!({ "line": error.line, "column": error.column, "reason": error.message }),
        }),
        Err(error) => Err(ApiError::Internal(format!("the import cannot be saved: {error}"))),
    }
}
