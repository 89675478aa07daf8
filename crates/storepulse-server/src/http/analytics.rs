//! Read endpoints over the engine: `GET /api/v1/realtime`, `GET|POST /api/v1/query`,
//! `GET /api/v1/promotions`, `GET /api/v1/funnels`, and seed 3's `GET /users/active` and
//! `GET /users/{user_id}/sessions`.
//!
//! Every answer is built from one [`QuerySpec`] or one realtime call on the engine, so these
//! endpoints, GraphQL and the dashboard (later) cannot disagree. A bad parameter is a 400 that
//! names it.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, Query, State};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Datelike as _;
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use storepulse_engine::engine::{RealtimeFilter, walks_session_trails};
use storepulse_engine::funnel::{FunnelSpec, FunnelSplit};
use storepulse_engine::query::{MAX_GROUPS, QueryError};
use storepulse_engine::{Dimension, Engine, Filters, Granularity, Metric, QuerySpec};
use storepulse_model::Timestamp;
use storepulse_model::event::DeviceType;
use storepulse_model::money::Currency;
use storepulse_model::time::parse_timestamp_text;
use storepulse_model::validate::normalize_country;

use super::seed_query;
use crate::app::AppState;
use crate::error::ApiError;
use crate::ingest::writer::now_unix_ms;
use crate::sync::RwLockExt;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/realtime", get(get_realtime))
        .route("/api/v1/query", get(get_query).post(post_query))
        .route("/api/v1/promotions", get(get_promotions))
        .route("/api/v1/funnels", get(get_funnel))
        .route("/users/active", get(get_active_users))
        .route("/users/{user_id}/sessions", get(get_user_sessions))
}

pub(super) fn invalid(parameter: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::invalid_parameter(parameter, message)
}

impl From<QueryError> for ApiError {
    fn from(error: QueryError) -> Self {
        invalid(error.parameter, error.message)
    }
}

/// `GET /api/v1/realtime` parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveParams {
    store: Option<String>,
    country: Option<String>,
    device: Option<String>,
    category: Option<String>,
    /// Read as text, so that `top=x` is refused in the API's words (serde's said "invalid
    /// digit found in string").
    top: Option<String>,
    currency: Option<String>,
}

/// A filter's value (`store`, `source`, `promotion`, `sales_rep`, `product`, `category`, and
/// the text of `country` and `device`), trimmed of surrounding whitespace, and refused when
/// that leaves nothing: no event carries such a value (ingest refuses blank stores, ids and
/// category levels, and drops blank sources), so `store=` would answer zeros as if nothing
/// had happened instead of saying what is wrong. Every filter is read the same way (only
/// some were trimmed, so `category=%20shoes` on one endpoint silently matched nothing), and
/// every endpoint taking a filter reads it through here.
pub(super) fn filter_value<'a>(
    parameter: &'static str,
    value: Option<&'a str>,
) -> Result<Option<&'a str>, ApiError> {
    match value.map(str::trim) {
        Some("") => Err(invalid(
            parameter,
            "must not be empty; leave the parameter out to count every value",
        )),
        value => Ok(value),
    }
}

/// [`filter_value`] as an owned `String`, as the engine's filters hold them.
pub(super) fn filter_text(
    parameter: &'static str,
    value: &Option<String>,
) -> Result<Option<String>, ApiError> {
    Ok(filter_value(parameter, value.as_deref())?.map(str::to_owned))
}

/// A `store` filter, trimmed: a store name as ingest accepts it, else refused naming the rule
/// (no stored event can carry it: `store=a%20b` would count nothing and say nothing).
pub(super) fn store(value: Option<&str>) -> Result<Option<&str>, ApiError> {
    filter_value("store", value)?
        .map(|name| {
            if storepulse_model::validate::is_valid_store(name) {
                Ok(name)
            } else {
                Err(invalid(
                    "store",
                    format!("{name:?} {}", storepulse_model::validate::STORE_RULE),
                ))
            }
        })
        .transpose()
}

/// [`store`] as an owned `String`, as the engine's filters hold them.
pub(super) fn store_text(value: &Option<String>) -> Result<Option<String>, ApiError> {
    Ok(store(value.as_deref())?.map(str::to_owned))
}

/// A `source` filter (trimmed, as sources are stored).
fn source_text(value: &Option<String>) -> Result<Option<String>, ApiError> {
    filter_text("source", value)
}

/// A `device` parameter: one of the device types.
pub(super) fn device(value: Option<&str>) -> Result<Option<DeviceType>, ApiError> {
    filter_value("device", value)?
        .map(|name| {
            DeviceType::parse(name)
                .ok_or_else(|| invalid("device", "one of desktop, mobile, tablet, bot, other"))
        })
        .transpose()
}

/// A `country` filter as ingest stores countries (upper case, seed 1's `UK` as ISO's `GB`), so
/// that `country=uk` finds what was sent as `UK`; anything else than a 2-letter code is refused,
/// as ingest refuses it (no stored event can carry it).
pub(super) fn country(value: Option<&str>) -> Result<Option<String>, ApiError> {
    filter_value("country", value)?
        .map(|code| {
            normalize_country(code).map(|code| code.to_string()).ok_or_else(|| {
                invalid(
                    "country",
                    format!("{code:?} is not an ISO 3166-1 alpha-2 code such as \"US\""),
                )
            })
        })
        .transpose()
}

fn currency(state: &AppState, value: Option<&str>) -> Result<Currency, ApiError> {
    match value {
        None => Ok(state.default_currency),
        Some(code) => Currency::parse(code)
            .ok_or_else(|| invalid("currency", format!("{code:?} is not an ISO 4217 code"))),
    }
}

fn realtime_filter(params: &LiveParams) -> Result<RealtimeFilter, ApiError> {
    Ok(RealtimeFilter {
        store: store_text(&params.store)?,
        country: country(params.country.as_deref())?,
        device: device(params.device.as_deref())?,
        category: filter_text("category", &params.category)?,
    })
}

async fn get_realtime(
    State(state): State<AppState>,
    params: Result<Query<LiveParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) =
        params.map_err(|error| ApiError::from_serde_refusal("query", &error.body_text()))?;
    realtime_answer(&state, &params)
}

/// The live figures `params` ask for (also seed 3's JSON `/metrics`).
pub(crate) fn realtime_answer(state: &AppState, params: &LiveParams) -> Result<Response, ApiError> {
    let top = match params.top.as_deref() {
        None => 5,
        Some(text) => {
            text.trim().parse().ok().filter(|top| (1..=100).contains(top)).ok_or_else(|| {
                invalid("top", format!("must be a whole number 1..=100, got {text:?}"))
            })?
        }
    };
    let filter = realtime_filter(params)?;
    let currency = currency(state, params.currency.as_deref())?;
    let now = Timestamp(now_unix_ms());
    let realtime = state.engine.read_ignoring_poison().realtime(now, &filter, top, currency);
    Ok(Json(realtime).into_response())
}

/// Seed 3's visitor endpoints (`/users/active`, `/users/{user_id}/sessions`): a visitor, or
/// each of their sessions, is counted where last seen, by store, country and device. Nothing
/// else applies to a visitor (no category, no top pages, no money), so nothing else is taken:
/// a refusal lists these three rather than the realtime endpoint's parameters. A cache buster
/// `_` is ignored, as seed 3 (FastAPI) ignored it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VisitorParams {
    store: Option<String>,
    country: Option<String>,
    device: Option<String>,
}

impl VisitorParams {
    fn filter(&self) -> Result<RealtimeFilter, ApiError> {
        Ok(RealtimeFilter {
            store: store_text(&self.store)?,
            country: country(self.country.as_deref())?,
            device: device(self.device.as_deref())?,
            category: None,
        })
    }
}

async fn get_active_users(State(state): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let params: VisitorParams = seed_query::parse_without_cache_buster(uri.query())?;
    let filter = params.filter()?;
    let now = Timestamp(now_unix_ms());
    let users = state.engine.read_ignoring_poison().active_visitors(now, &filter);
    Ok(Json(json!({ "users": users })).into_response())
}

/// One user id may shop in several stores: each session counts where it was last seen.
async fn get_user_sessions(
    State(state): State<AppState>,
    user_id: Result<Path<String>, PathRejection>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let Path(user_id) = user_id.map_err(ApiError::from_path_rejection)?;
    let params: VisitorParams = seed_query::parse_without_cache_buster(uri.query())?;
    let filter = params.filter()?;
    let now = Timestamp(now_unix_ms());
    let engine = state.engine.read_ignoring_poison();
    let sessions = engine.visitor_active_sessions(now, &user_id, &filter);
    Ok(Json(json!({ "user_id": user_id, "active_sessions": sessions })).into_response())
}

/// `GET /api/v1/query` parameters (lists are comma-separated) and the `POST` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryParams {
    metrics: Option<StringOrList>,
    #[serde(default, deserialize_with = "time_text")]
    from: Option<String>,
    #[serde(default, deserialize_with = "time_text")]
    to: Option<String>,
    range: Option<String>,
    granularity: Option<String>,
    group_by: Option<String>,
    #[serde(default, deserialize_with = "limit_text")]
    limit: Option<String>,
    currency: Option<String>,
    #[serde(default, deserialize_with = "flag")]
    compare: Option<bool>,
    store: Option<String>,
    country: Option<String>,
    device: Option<String>,
    source: Option<String>,
    promotion: Option<String>,
    sales_rep: Option<String>,
    product: Option<String>,
    category: Option<String>,
}

/// A time as a query string or a JSON body gives it: text, or (in a body) a number of Unix
/// seconds or milliseconds, read as text is (so GET and POST take the same times).
fn time_text<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    text_or_integer(deserializer, "a time: RFC 3339 text, or Unix seconds or milliseconds")
}

/// A `limit` as a query string gives it (`limit=5`) or a JSON body may (`"limit": 5` or
/// `"limit": "5"`), read as text either way, so GET and POST take and refuse it alike.
fn limit_text<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    text_or_integer(deserializer, &limit_rule())
}

/// A yes/no parameter: `true` or `false`, read trimmed as every other query value is
/// (`compare=%20true`; serde's own reading refused it as "provided string was not `true` or
/// `false`"), or a JSON boolean in a body. Anything else is refused saying what is accepted.
fn flag<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    struct Flag;
    impl serde::de::Visitor<'_> for Flag {
        type Value = Option<bool>;

        fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
            formatter.write_str("true or false")
        }

        fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<Option<bool>, E> {
            Ok(Some(value))
        }

        /// A body's `"compare": null`, as when it is left out.
        fn visit_unit<E: serde::de::Error>(self) -> Result<Option<bool>, E> {
            Ok(None)
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Option<bool>, E> {
            match text.trim() {
                "true" => Ok(Some(true)),
                "false" => Ok(Some(false)),
                _ => Err(E::custom(format!("must be true or false, got {text:?}"))),
            }
        }
    }
    deserializer.deserialize_any(Flag)
}

/// Text, or an integer read as its text; anything else is refused with `expected`, in the
/// API's words (serde's own name Rust types: "expected usize").
fn text_or_integer<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
    expected: &str,
) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum TextOrInteger {
        Text(String),
        Integer(i64),
    }
    match TextOrInteger::deserialize(deserializer) {
        Ok(TextOrInteger::Text(text)) => Ok(Some(text)),
        Ok(TextOrInteger::Integer(number)) => Ok(Some(number.to_string())),
        Err(_) => Err(serde::de::Error::custom(expected)),
    }
}

fn limit_rule() -> String {
    format!("must be a whole number 1..={MAX_GROUPS}")
}

/// How many groups to answer: `limit` as [`limit_text`] reads it, else `default`.
fn group_limit(text: Option<&str>, default: usize) -> Result<usize, ApiError> {
    let Some(text) = text else { return Ok(default) };
    text.trim()
        .parse()
        .ok()
        .filter(|limit| (1..=MAX_GROUPS).contains(limit))
        .ok_or_else(|| invalid("limit", limit_rule()))
}

/// The body of a POST taking named parameters (`POST /api/v1/query`, a new trending version)
/// read into `T`: it must be a JSON object, else a 400 naming `body` says so in `what`'s
/// words. (serde's derive also reads a struct from an array, by position: `[]` was refused as
/// "invalid length 0, expected struct QueryParams with 17 elements", `[["orders"]]` read as
/// metrics.) Read from the text rather than a parsed `Value`, so a field given twice is still
/// refused; a field's refusal names it by its path.
pub(super) fn parameters_body<T: serde::de::DeserializeOwned>(
    body: Result<Json<Box<RawValue>>, JsonRejection>,
    what: &str,
) -> Result<T, ApiError> {
    let Json(body) =
        body.map_err(|error| ApiError::from_serde_refusal("body", &error.body_text()))?;
    if !body.get().starts_with('{') {
        return Err(invalid("body", format!("must be a JSON object of {what}")));
    }
    serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(body.get()))
        .map_err(|error| ApiError::from_serde_refusal("body", &error.to_string()))
}

#[derive(Debug, Deserialize)]
#[serde(untagged, expecting = "metric names: \"orders,units\" or [\"orders\", \"units\"]")]
enum StringOrList {
    One(String),
    Many(Vec<String>),
}

impl StringOrList {
    /// The names given. In a comma-separated list an empty name (`orders,,units`) is a typo,
    /// refused as funnel steps refuse one, not read as the names around it.
    fn names(&self) -> Result<Vec<&str>, ApiError> {
        match self {
            StringOrList::One(text) if text.trim().is_empty() => Ok(Vec::new()),
            StringOrList::One(text) => text
                .split(',')
                .map(str::trim)
                .map(|name| {
                    if name.is_empty() {
                        Err(invalid(
                            "metrics",
                            "an empty metric name (two commas in a row, or one at an end)",
                        ))
                    } else {
                        Ok(name)
                    }
                })
                .collect(),
            StringOrList::Many(names) => Ok(names.iter().map(String::as_str).collect()),
        }
    }
}

async fn get_query(
    State(state): State<AppState>,
    params: Result<Query<QueryParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) =
        params.map_err(|error| ApiError::from_serde_refusal("query", &error.body_text()))?;
    run_query(&state, &params).await
}

async fn post_query(
    State(state): State<AppState>,
    uri: axum::http::Uri,
    body: Result<Json<Box<RawValue>>, JsonRejection>,
) -> Result<Response, ApiError> {
    // A POSTed query is the body: parameters in the URL beside it would be dropped silently
    // (`?store=x` answering over every store).
    if let Some(query) = uri.query().filter(|query| !query.is_empty()) {
        let first = query.split(['=', '&']).next().unwrap_or(query);
        return Err(ApiError::invalid_parameter(
            if first.is_empty() { "query" } else { first },
            "a POSTed query takes its parameters in the JSON body, not in the URL",
        ));
    }
    let params: QueryParams =
        parameters_body(body, "query parameters, e.g. {\"metrics\": [\"orders\"]}")?;
    run_query(&state, &params).await
}

async fn run_query(state: &AppState, params: &QueryParams) -> Result<Response, ApiError> {
    let now = now_unix_ms();
    let spec = query_spec(state, params, now)?;
    let long = walks_session_trails(&spec);
    let result = read_engine(state, long, move |engine| engine.query(&spec)).await??;
    Ok(Json(result).into_response())
}

/// Runs a query's `read` on the engine, on a blocking thread: a query over days of a big shop
/// can take a second (distinct counts merge each day's sketches), and on a runtime worker it
/// held up every other request that worker had (two at once stalled the whole server on two
/// cores). One that walks every kept session trail (`long`) also runs as a long read (see
/// [`crate::shared_engine`]): the applier sets acknowledged events aside at once instead of
/// waiting for it.
pub(super) async fn read_engine<R: Send + 'static>(
    state: &AppState,
    long: bool,
    read: impl FnOnce(&Engine) -> R + Send + 'static,
) -> Result<R, ApiError> {
    let engine = state.engine.clone();
    tokio::task::spawn_blocking(move || {
        if long { engine.long_read(read) } else { read(&engine.read_ignoring_poison()) }
    })
    .await
    .map_err(|error| ApiError::Internal(format!("engine read failed: {error}")))
}

/// The time range of a request: `from`/`to` (RFC 3339; `to` defaults to now), or a named
/// `range`; the default is the last 7 days. A range that does not run forward is refused
/// naming what the user sent wrong: `to` before `from`, or a `from` in the future when `to`
/// was left to default to now (blaming `to`, which was never sent, misled).
fn time_range(params: &QueryParams, now: i64) -> Result<(i64, i64), ApiError> {
    let parse = |name: &'static str, value: &Option<String>| -> Result<Option<i64>, ApiError> {
        value
            .as_deref()
            .map(|text| {
                parse_timestamp_text(text)
                    .map(|time| time.0)
                    .ok_or_else(|| invalid(name, not_a_time(text)))
            })
            .transpose()
    };
    let from = parse("from", &params.from)?;
    let to = parse("to", &params.to)?;
    if from.is_some() && params.range.is_some() {
        return Err(invalid("range", "give either `range` or `from`/`to`, not both"));
    }
    if let Some(from) = from {
        return match to {
            Some(to) if from >= to => Err(invalid("to", "must be after `from`")),
            None if from >= now => {
                Err(invalid("from", "must be before `to`, which is now when `to` is not given"))
            }
            to => Ok((from, to.unwrap_or(now))),
        };
    }
    if to.is_some() {
        return Err(invalid("from", "is required with `to`"));
    }
    named_range(params.range.as_deref().map_or("last_7_days", str::trim), now)
}

/// Why `text` is no time, quoting it. An offset's `+` typed into a URL unencoded arrives as a
/// space (`11:04:00+01:00` → `11:04:00 01:00`), which the quote alone does not make plain:
/// when a `+` in place of the last space makes a time, the reason says to write it `%2B`.
fn not_a_time(text: &str) -> String {
    let mut reason = format!(
        "must be a time: RFC 3339 (2026-11-01T00:00:00Z), a date (2026-11-01), or Unix seconds \
         or milliseconds; got {text:?}"
    );
    if let Some((time, offset)) = text.trim().rsplit_once(' ')
        && parse_timestamp_text(&format!("{time}+{offset}")).is_some()
    {
        reason.push_str(&format!(
            " (a `+` in a URL arrives as a space: write it %2B, as in {time}%2B{offset})"
        ));
    }
    reason
}

const DAY_MS: i64 = 86_400_000;

/// Seed 2's date ranges, done right: `today` is midnight UTC until now (not an empty window),
/// `yesterday` the previous calendar day, `this_month`/`last_month`/`this_year` calendar
/// periods (seed 2 fell back to 7 days).
fn named_range(name: &str, now: i64) -> Result<(i64, i64), ApiError> {
    let midnight = now.div_euclid(DAY_MS) * DAY_MS;
    // A calendar period in progress ends now, and holds at least the millisecond now is in:
    // at exactly midnight `today` is that millisecond, not an empty range refused as one.
    let until_now = |start: i64| (start, now.max(start + 1));
    Ok(match name {
        "last_hour" => (now - 3_600_000, now),
        "last_24_hours" => (now - DAY_MS, now),
        "today" => until_now(midnight),
        "yesterday" => (midnight - DAY_MS, midnight),
        "last_7_days" => (now - 7 * DAY_MS, now),
        "last_30_days" => (now - 30 * DAY_MS, now),
        "last_90_days" => (now - 90 * DAY_MS, now),
        "this_month" => until_now(month_start(now)),
        "last_month" => {
            let this = month_start(now);
            (month_start(this - 1), this)
        }
        "this_year" => {
            let date = chrono::DateTime::from_timestamp_millis(now).unwrap_or_default();
            let start = chrono::NaiveDate::from_ymd_opt(chrono::Datelike::year(&date), 1, 1)
                .and_then(|day| day.and_hms_opt(0, 0, 0))
                .map_or(midnight, |start| start.and_utc().timestamp_millis());
            until_now(start)
        }
        other => {
            return Err(invalid(
                "range",
                format!(
                    "{other:?} is not a range; use last_hour, last_24_hours, today, yesterday, last_7_days, last_30_days, last_90_days, this_month, last_month or this_year"
                ),
            ));
        }
    })
}

/// The first millisecond of the UTC month holding `time`.
fn month_start(time: i64) -> i64 {
    let date = chrono::DateTime::from_timestamp_millis(time).unwrap_or_default().date_naive();
    let first = date.with_day0(0).unwrap_or(date);
    first.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc().timestamp_millis()
}

/// The period a calendar range (`name`, now `[from, to)`) is compared with, as shops'
/// analytics compare them (Shopify's default is today against yesterday): the calendar
/// period before, and for one in progress the same part of it. `today` → yesterday until
/// the same time of day; `yesterday` → the day before; `this_month` → the month before until
/// the same day and time (its whole self when it is shorter: March 31 against all of
/// February); `last_month` → the whole month before (October's 31 days against November's
/// 30); `this_year` → the year before until the same date and time (February 29 against all
/// of February). `None` for rolling ranges, compared with the equal period before.
fn calendar_previous(name: &str, (from, to): (i64, i64)) -> Option<(i64, i64)> {
    match name {
        "today" => Some((from - DAY_MS, to - DAY_MS)),
        "yesterday" => Some((from - DAY_MS, from)),
        "this_month" => {
            let start = month_start(from - 1);
            Some((start, (start + (to - from)).min(from)))
        }
        "last_month" => Some((month_start(from - 1), from)),
        "this_year" => {
            let start = chrono::DateTime::from_timestamp_millis(from)?.date_naive();
            let start = start.with_year(start.year() - 1)?.and_hms_opt(0, 0, 0)?.and_utc();
            let end = chrono::DateTime::from_timestamp_millis(to)?;
            let same_time_last_year = end.with_year(end.year() - 1).unwrap_or_else(|| {
                // February 29: the whole of February the year before.
                let march = chrono::NaiveDate::from_ymd_opt(end.year() - 1, 3, 1)
                    .and_then(|day| day.and_hms_opt(0, 0, 0))
                    .map(|time| time.and_utc());
                march.unwrap_or(start)
            });
            Some((start.timestamp_millis(), same_time_last_year.timestamp_millis().min(from)))
        }
        _ => None,
    }
}

fn query_spec(state: &AppState, params: &QueryParams, now: i64) -> Result<QuerySpec, ApiError> {
    let names = params.metrics.as_ref().map(StringOrList::names).transpose()?.unwrap_or_default();
    if names.is_empty() {
        return Err(invalid(
            "metrics",
            "name at least one metric, e.g. metrics=gross_revenue,orders",
        ));
    }
    let metrics = names
        .iter()
        .map(|name| {
            Metric::parse(name).ok_or_else(|| {
                let known: Vec<&str> = Metric::ALL.iter().map(|metric| metric.name()).collect();
                invalid("metrics", format!("{name:?} is not a metric; one of {}", known.join(", ")))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (from, to) = time_range(params, now)?;
    let granularity = params
        .granularity
        .as_deref()
        .map(|name| {
            Granularity::parse(name)
                .ok_or_else(|| invalid("granularity", "one of minute, hour, day, week, month"))
        })
        .transpose()?;
    let group_by = params
        .group_by
        .as_deref()
        .map(|name| {
            Dimension::parse(name).ok_or_else(|| {
                invalid(
                    "group_by",
                    "one of store, country, device, source, promotion, sales_rep, product, category (= category_1), category_2 … category_5",
                )
            })
        })
        .transpose()?;
    Ok(QuerySpec {
        metrics,
        from: Timestamp(from),
        to: Timestamp(to),
        granularity,
        filters: Filters {
            store: store_text(&params.store)?,
            country: country(params.country.as_deref())?,
            device: device(params.device.as_deref())?,
            source: source_text(&params.source)?,
            promotion: filter_text("promotion", &params.promotion)?,
            sales_rep: filter_text("sales_rep", &params.sales_rep)?,
            product: filter_text("product", &params.product)?,
            category: filter_text("category", &params.category)?,
            promoted: false,
        },
        group_by,
        limit: group_limit(params.limit.as_deref(), 100)?,
        currency: currency(state, params.currency.as_deref())?,
        compare: params.compare.unwrap_or(false),
        previous: params
            .range
            .as_deref()
            .and_then(|name| calendar_previous(name.trim(), (from, to)))
            .map(|(from, to)| (Timestamp(from), Timestamp(to))),
    })
}

/// Per promotion over a range: views, clicks, purchases, units, revenue, click-through and
/// conversion (purchases per click).
async fn get_promotions(
    State(state): State<AppState>,
    params: Result<Query<QueryParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(mut params) =
        params.map_err(|error| ApiError::from_serde_refusal("query", &error.body_text()))?;
    check_promotion_params(&params)?;
    params.metrics = Some(StringOrList::One(
        "promotion_views,promotion_clicks,orders,units,gross_revenue,unique_buyers,click_through_rate,promotion_conversion_rate"
            .into(),
    ));
    params.group_by = Some("promotion".into());
    let mut spec = query_spec(&state, &params, now_unix_ms())?;
    // Rows without a promotion are not a promotion: neither a group nor part of the totals
    // (which would otherwise count every order, buyer and amount of the range).
    spec.filters.promoted = true;
    // Every promotion unless fewer are asked for: the totals count them all, and a report cut
    // at the query's default 100 left sellers out of groups that no longer added up to them.
    if params.limit.is_none() {
        spec.limit = MAX_GROUPS;
    }
    let long = walks_session_trails(&spec);
    let result = read_engine(&state, long, move |engine| engine.query(&spec)).await??;
    Ok(Json(result).into_response())
}

/// Refuses what the promotions report cannot answer, naming the parameter that was sent
/// (the report's own `metrics` and `group_by` are filled in only after this).
fn check_promotion_params(params: &QueryParams) -> Result<(), ApiError> {
    if params.metrics.is_some() {
        return Err(invalid(
            "metrics",
            "this report's metrics are fixed (views, clicks, purchases, units, revenue, buyers \
             and rates); ask /api/v1/query for others",
        ));
    }
    if let Some(group_by) = params.group_by.as_deref().filter(|name| name.trim() != "promotion") {
        return Err(invalid(
            "group_by",
            format!(
                "this report is always by promotion; for {group_by:?} ask /api/v1/query with \
                 group_by={group_by} (and promotion= to pick one)"
            ),
        ));
    }
    // Unique buyers per promotion come from the daily sketches: the session trails that answer
    // below a day and by product do not keep promotions.
    let granularity = params.granularity.as_deref().map(Granularity::parse);
    if let Some(None) = granularity {
        // Named here rather than by the query's parse, which lists minute and hour too.
        return Err(invalid("granularity", "one of day, week, month"));
    }
    if matches!(granularity, Some(Some(Granularity::Minute | Granularity::Hour))) {
        return Err(invalid(
            "granularity",
            "unique buyers per promotion are counted by day: use day, week or month (or ask \
             /api/v1/query for promotion_views, promotion_clicks or orders by minute or hour)",
        ));
    }
    for (parameter, set) in [("product", &params.product), ("category", &params.category)] {
        if set.is_some() {
            return Err(invalid(
                parameter,
                "promotion views and clicks name no product, so this report cannot be narrowed \
                 to one; ask /api/v1/query with group_by=promotion for orders by product",
            ));
        }
    }
    Ok(())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunnelParams {
    steps: Option<String>,
    window: Option<String>,
    group_by: Option<String>,
    from: Option<String>,
    to: Option<String>,
    range: Option<String>,
    store: Option<String>,
    country: Option<String>,
    device: Option<String>,
    source: Option<String>,
    limit: Option<String>,
}

/// Sessions through ordered steps (default product_view → add_to_cart → checkout_started →
/// purchase) within `window` (default 1h) of the first, overall or by product, category
/// (`category`, `category_2`, `category_3`), country or marketing source; `source` keeps the
/// steps made under one source.
async fn get_funnel(
    State(state): State<AppState>,
    params: Result<Query<FunnelParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) =
        params.map_err(|error| ApiError::from_serde_refusal("query", &error.body_text()))?;
    let steps = match params.steps.as_deref() {
        None => FunnelSpec::default_steps(),
        Some(text) => FunnelSpec::parse_steps(text).map_err(|reason| invalid("steps", reason))?,
    };
    let window = match params.window.as_deref() {
        None => std::time::Duration::from_secs(3600),
        Some(text) => humantime::parse_duration(text.trim())
            .ok()
            .filter(|window| !window.is_zero() && window.as_secs() <= 90 * 86_400)
            .ok_or_else(|| {
                invalid("window", "a duration such as 30m, 1h or 7d, at most 90 days")
            })?,
    };
    // Read trimmed, as `/api/v1/query` reads its `group_by` and every other value here is.
    let group_by = params.group_by.as_deref().map(str::trim);
    let split: FunnelSplit =
        group_by.unwrap_or("none").parse().map_err(|reason: String| invalid("group_by", reason))?;
    let range_params = QueryParams {
        from: params.from.clone(),
        to: params.to.clone(),
        range: params.range.clone(),
        ..QueryParams::default()
    };
    let (from, to) = time_range(&range_params, now_unix_ms())?;
    if from >= to {
        return Err(invalid("to", "must be after `from`"));
    }
    let limit = group_limit(params.limit.as_deref(), 20)?;
    let spec = FunnelSpec {
        steps,
        window_ms: window.as_millis() as i64,
        from_ms: from,
        to_ms: to,
        source: source_text(&params.source)?,
    };
    let filter = RealtimeFilter {
        store: store_text(&params.store)?,
        country: country(params.country.as_deref())?,
        device: device(params.device.as_deref())?,
        ..RealtimeFilter::default()
    };
    // Funnels walk every kept session trail: a long read.
    let result =
        read_engine(&state, true, move |engine| engine.funnel(&spec, split, &filter, limit))
            .await??;
    Ok(Json(json!({
        "from": Timestamp(from).to_rfc3339(),
        "to": Timestamp(to).to_rfc3339(),
        "window_seconds": window.as_secs(),
        "group_by": group_by,
        "overall": result.overall,
        "groups": result.groups,
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// At exactly midnight (or the first millisecond of a month or year) a period in progress
    /// was the empty range `[now, now)`, refused as "to must be after from": a dashboard
    /// refreshing at midnight got a 400.
    #[test]
    fn a_period_in_progress_at_its_first_millisecond_is_that_millisecond() {
        let new_year = 1_767_225_600_000; // 2026-01-01T00:00:00Z
        for name in ["today", "this_month", "this_year"] {
            assert_eq!(named_range(name, new_year).ok(), Some((new_year, new_year + 1)), "{name}");
        }
        let later = new_year + 5 * DAY_MS + 1_234;
        assert_eq!(named_range("today", later).ok(), Some((new_year + 5 * DAY_MS, later)));
        assert_eq!(named_range("this_month", later).ok(), Some((new_year, later)));
    }

    fn at(text: &str) -> i64 {
        parse_timestamp_text(text).map(|time| time.0).expect("a time")
    }

    /// `last_month` with `compare=true` was compared with the equal 30 days before November
    /// (October 2–31), not October; `today` at 10:00 with yesterday's last 10 hours.
    #[test]
    fn calendar_ranges_compare_with_the_calendar_period_before() {
        let now = at("2026-12-07T10:30:00Z");
        let previous = |name: &str| {
            let current = named_range(name, now).expect("a range");
            calendar_previous(name, current)
        };
        let expect = |from: &str, to: &str| Some((at(from), at(to)));
        assert_eq!(previous("last_month"), expect("2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z"));
        assert_eq!(previous("this_month"), expect("2026-11-01T00:00:00Z", "2026-11-07T10:30:00Z"));
        assert_eq!(previous("today"), expect("2026-12-06T00:00:00Z", "2026-12-06T10:30:00Z"));
        assert_eq!(previous("yesterday"), expect("2026-12-05T00:00:00Z", "2026-12-06T00:00:00Z"));
        assert_eq!(previous("this_year"), expect("2025-01-01T00:00:00Z", "2025-12-07T10:30:00Z"));
        for rolling in ["last_hour", "last_24_hours", "last_7_days", "last_30_days", "last_90_days"]
        {
            assert_eq!(previous(rolling), None, "{rolling}");
        }
        // A month to date longer than the month before is compared with all of that month,
        // and February 29 with all of February the year before.
        let march_31 = at("2027-03-31T12:00:00Z");
        let this_month = named_range("this_month", march_31).expect("a range");
        assert_eq!(
            calendar_previous("this_month", this_month),
            Some((at("2027-02-01T00:00:00Z"), at("2027-03-01T00:00:00Z")))
        );
        let leap_day = at("2028-02-29T12:00:00Z");
        let this_year = named_range("this_year", leap_day).expect("a range");
        assert_eq!(
            calendar_previous("this_year", this_year),
            Some((at("2027-01-01T00:00:00Z"), at("2027-03-01T00:00:00Z")))
        );
    }
}
