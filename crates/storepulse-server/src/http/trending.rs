//! Trending products, the weight registry and recommendations (seed 5, fixed):
//! `GET /api/v1/trending/products`, `GET /api/v1/trending/compare`,
//! `GET|POST /api/v1/trending/versions`, `POST /api/v1/trending/versions/{version}/activate`,
//! `GET /api/v1/recommendations`, and seed 5's `GET /trending_products` and `GET /healthz`.
//!
//! Scores are computed from stored events (seed 5 served random numbers), `k` is validated the
//! same way everywhere, and versions order numerically (v1.10 after v1.9).

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::value::MapAccessDeserializer;
use serde::de::{MapAccess, SeqAccess, Unexpected, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::json;
use serde_json::value::RawValue;
use storepulse_engine::Filters;
use storepulse_engine::engine::ScoredProduct;
use storepulse_engine::trending::{
    MAX_NOTE_CHARS, RegistryError, TrendingWeights, VersionName, WeightVersion,
};
use storepulse_model::Timestamp;

use super::analytics::{country, device, filter_text, invalid, parameters_body, store, store_text};
use super::seed_query;
use crate::app::AppState;
use crate::error::ApiError;
use crate::ingest::writer::now_unix_ms;
use crate::sync::RwLockExt;
use crate::trending_registry::StoreError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/trending/products", get(get_trending))
        .route("/api/v1/trending/compare", get(get_compare))
        .route("/api/v1/trending/versions", get(get_versions).post(post_version))
        .route("/api/v1/trending/versions/{version}/activate", post(post_activate))
        .route("/api/v1/recommendations", get(get_recommendations))
        .route("/trending_products", get(get_seed_trending))
        .route("/healthz", get(get_healthz))
}

pub const MAX_K: usize = 1000;

fn registry_error(error: RegistryError) -> ApiError {
    match error {
        RegistryError::Unknown(version) => ApiError::NotFound {
            message: format!("version {version:?} does not exist"),
            details: Some(json!({ "parameter": "version" })),
        },
        RegistryError::Exists(_) => ApiError::Conflict {
            code: "version_exists",
            message: error.to_string(),
            details: Some(json!({ "parameter": "version" })),
        },
        RegistryError::BadName(_) => invalid("version", error.to_string()),
        RegistryError::BadWeights { ref reason, .. } => {
            ApiError::invalid_parameter(&error.field(), reason.clone())
        }
        RegistryError::NoteTooLong(length) => {
            invalid("note", format!("is {length} characters long; the limit is {MAX_NOTE_CHARS}"))
        }
    }
}

/// `k` as text: an integer in 1..=1000 (default 10).
fn parse_k(text: Option<&str>) -> Result<usize, ApiError> {
    let Some(text) = text else { return Ok(10) };
    let k: i64 = text.trim().parse().map_err(|_| invalid("k", "must be an integer"))?;
    if !(1..=MAX_K as i64).contains(&k) {
        return Err(invalid("k", format!("must be 1..={MAX_K}")));
    }
    Ok(k as usize)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrendingParams {
    k: Option<String>,
    version: Option<String>,
    store: Option<String>,
    country: Option<String>,
    device: Option<String>,
    category: Option<String>,
    a: Option<String>,
    b: Option<String>,
}

impl TrendingParams {
    fn filters(&self) -> Result<Filters, ApiError> {
        Ok(Filters {
            store: store_text(&self.store)?,
            country: country(self.country.as_deref())?,
            device: device(self.device.as_deref())?,
            category: filter_text("category", &self.category)?,
            ..Filters::default()
        })
    }
}

fn rank(
    state: &AppState,
    version: &WeightVersion,
    filters: &Filters,
    k: usize,
) -> Vec<ScoredProduct> {
    let now = Timestamp(now_unix_ms());
    state.engine.read_ignoring_poison().trending(now, &version.weights, filters, k)
}

async fn get_trending(
    State(state): State<AppState>,
    params: Result<Query<TrendingParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) =
        params.map_err(|error| ApiError::from_serde_refusal("query", &error.body_text()))?;
    let k = parse_k(params.k.as_deref())?;
    // `a` and `b` are the compare endpoint's: here they would be ignored, silently.
    if let Some(parameter) = [("a", &params.a), ("b", &params.b)]
        .into_iter()
        .find_map(|(name, value)| value.is_some().then_some(name))
    {
        return Err(invalid(
            parameter,
            "compares versions at /api/v1/trending/compare; here name one with version",
        ));
    }
    let version = state.trending.weights(params.version.as_deref()).map_err(registry_error)?;
    let products = rank(&state, &version, &params.filters()?, k);
    Ok(Json(json!({
        "as_of": Timestamp(now_unix_ms()).to_rfc3339(),
        "version": version.version,
        "weights": version.weights,
        "k": k,
        "products": products,
    }))
    .into_response())
}

async fn get_compare(
    State(state): State<AppState>,
    params: Result<Query<TrendingParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) =
        params.map_err(|error| ApiError::from_serde_refusal("query", &error.body_text()))?;
    let k = parse_k(params.k.as_deref())?;
    let (Some(a), Some(b)) = (params.a.as_deref(), params.b.as_deref()) else {
        return Err(invalid("a", "name two versions: a=v1&b=v1.1"));
    };
    if params.version.is_some() {
        return Err(invalid("version", "name the two versions to compare with a and b"));
    }
    let filters = params.filters()?;
    let a = state.trending.weights(Some(a)).map_err(registry_error)?;
    let b = state.trending.weights(Some(b)).map_err(registry_error)?;
    let ranked_a = rank(&state, &a, &filters, k);
    let ranked_b = rank(&state, &b, &filters, k);
    let position = |list: &[ScoredProduct], id: &str| {
        list.iter().position(|product| product.product_id == id).map(|index| index + 1)
    };
    let mut ids: Vec<&str> = ranked_a.iter().map(|p| p.product_id.as_str()).collect();
    for product in &ranked_b {
        if !ids.contains(&product.product_id.as_str()) {
            ids.push(&product.product_id);
        }
    }
    let side_by_side: Vec<_> = ids
        .iter()
        .map(|id| json!({"product_id": id, "rank_a": position(&ranked_a, id), "rank_b": position(&ranked_b, id)}))
        .collect();
    Ok(Json(json!({
        "k": k,
        "a": {"version": a.version, "weights": a.weights, "products": ranked_a},
        "b": {"version": b.version, "weights": b.weights, "products": ranked_b},
        "ranks": side_by_side,
    }))
    .into_response())
}

async fn get_versions(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    super::refuse_query_parameters(query.as_deref(), "GET /api/v1/trending/versions", "")?;
    let registry = state.trending.snapshot();
    let versions: Vec<&WeightVersion> = registry.sorted();
    Ok(Json(json!({
        "latest": registry.latest,
        "versions": versions,
        "activations": registry.activations,
    }))
    .into_response())
}

/// Weights of a new version; unset ones take the defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightsBody {
    #[serde(default, deserialize_with = "weight")]
    view: Option<f64>,
    #[serde(default, deserialize_with = "weight")]
    cart: Option<f64>,
    #[serde(default, deserialize_with = "weight")]
    checkout: Option<f64>,
    #[serde(default, deserialize_with = "weight")]
    purchase: Option<f64>,
    #[serde(default, deserialize_with = "weight")]
    half_life_hours: Option<f64>,
}

/// A weight (or half-life): a JSON number, `null` for the default. serde's own refusal names
/// the Rust type ("expected f64").
fn weight<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    Option::<f64>::deserialize(deserializer)
        .map_err(|_| serde::de::Error::custom("must be a number, e.g. 2.5"))
}

/// `weights` from a JSON object only: serde's derive also reads a struct from an array, by
/// position (`[1, 2]` as view 1, cart 2), and refused `[]` as "expected struct WeightsBody
/// with 5 elements".
fn weights_object<'de, D: Deserializer<'de>>(deserializer: D) -> Result<WeightsBody, D::Error> {
    struct Weights;
    impl<'de> Visitor<'de> for Weights {
        type Value = WeightsBody;

        fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
            formatter.write_str("a JSON object of weights, e.g. {\"purchase\": 5}")
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<WeightsBody, A::Error> {
            WeightsBody::deserialize(MapAccessDeserializer::new(map))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<WeightsBody, A::Error> {
            Err(serde::de::Error::invalid_type(Unexpected::Other("an array"), &self))
        }
    }
    deserializer.deserialize_any(Weights)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewVersion {
    version: Option<String>,
    #[serde(default, deserialize_with = "weights_object")]
    weights: WeightsBody,
    note: Option<String>,
    #[serde(default)]
    activate: bool,
}

async fn post_version(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    body: Result<Json<Box<RawValue>>, JsonRejection>,
) -> Result<Response, ApiError> {
    let endpoint = "POST /api/v1/trending/versions";
    super::refuse_query_parameters(query.as_deref(), endpoint, ": the version goes in the body")?;
    let body: NewVersion =
        parameters_body(body, "a new version's fields: version, weights, note, activate")?;
    let defaults = TrendingWeights::default();
    let weights = TrendingWeights {
        view: body.weights.view.unwrap_or(defaults.view),
        cart: body.weights.cart.unwrap_or(defaults.cart),
        checkout: body.weights.checkout.unwrap_or(defaults.checkout),
        purchase: body.weights.purchase.unwrap_or(defaults.purchase),
        half_life_hours: body.weights.half_life_hours.unwrap_or(defaults.half_life_hours),
    };
    let created = state
        .trending
        .create(body.version.as_deref(), weights, body.note, body.activate)
        .map_err(|error| match error {
            StoreError::Registry(error) => registry_error(error),
            StoreError::Io(error) => ApiError::Internal(error.to_string()),
        })?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

async fn post_activate(
    State(state): State<AppState>,
    version: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let endpoint = "POST /api/v1/trending/versions/{version}/activate";
    super::refuse_query_parameters(query.as_deref(), endpoint, "")?;
    let Path(version) = version.map_err(ApiError::from_path_rejection)?;
    if VersionName::parse(&version).is_none() {
        return Err(registry_error(RegistryError::BadName(version)));
    }
    // Answered with the name as stored (`v01.9` activates, and is listed as, `v1.9`).
    let activated = state.trending.activate(&version).map_err(|error| match error {
        StoreError::Registry(error) => registry_error(error),
        StoreError::Io(error) => ApiError::Internal(error.to_string()),
    })?;
    Ok(Json(json!({ "latest": activated })).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecommendationParams {
    user_id: Option<String>,
    product_id: Option<String>,
    /// One store's visitors and products only; every store's without it.
    store: Option<String>,
    k: Option<String>,
}

async fn get_recommendations(
    State(state): State<AppState>,
    params: Result<Query<RecommendationParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) =
        params.map_err(|error| ApiError::from_serde_refusal("query", &error.body_text()))?;
    let k = parse_k(params.k.as_deref())?;
    let store = store(params.store.as_deref())?;
    // An empty id names no one: a 404 quoting `""` read as if such a visitor could exist.
    for (parameter, value) in [("user_id", &params.user_id), ("product_id", &params.product_id)] {
        if value.as_deref().is_some_and(|id| id.trim().is_empty()) {
            return Err(invalid(parameter, "must not be empty"));
        }
    }
    let engine = state.engine.read_ignoring_poison();
    let (basis, id, products) = match (params.user_id.as_deref(), params.product_id.as_deref()) {
        (Some(user), None) => {
            let now = Timestamp(now_unix_ms());
            ("user_id", user, engine.recommend_for_visitor(user, store, now, k))
        }
        (None, Some(product)) => {
            ("product_id", product, engine.together_with_product(product, store, k))
        }
        _ => return Err(invalid("user_id", "give exactly one of user_id or product_id")),
    };
    let Some(products) = products else {
        let within = store.map(|store| format!(" in store {store:?}")).unwrap_or_default();
        return Err(ApiError::NotFound {
            message: format!("no events are known for {basis} {id:?}{within}"),
            details: Some(json!({ "parameter": basis })),
        });
    };
    let mut answer = json!({ basis: id, "k": k, "products": products });
    if let Some(store) = store {
        answer["store"] = json!(store);
    }
    Ok(Json(answer).into_response())
}

/// Seed 5's shape: `{"top_k": k, "products": [{"product_id", "score"}]}`; `k <= 0` → 400
/// `{"detail": "k must be > 0"}`, a non-integer → 422, a `k` above [`MAX_K`] read as `MAX_K`.
async fn get_seed_trending(
    State(state): State<AppState>,
    request: axum::extract::Request,
) -> Response {
    let k_text = seed_query::last_value(request.uri().query(), "k");
    let k = match k_text.as_deref().map(str::parse::<i64>) {
        None => 10,
        Some(Err(error)) if *error.kind() == std::num::IntErrorKind::NegOverflow => {
            return (StatusCode::BAD_REQUEST, Json(json!({"detail": "k must be > 0"})))
                .into_response();
        }
        Some(Ok(k)) if k <= 0 => {
            return (StatusCode::BAD_REQUEST, Json(json!({"detail": "k must be > 0"})))
                .into_response();
        }
        // Seed 5 answered a large k with what it had, never an error; a client asking for
        // "all of them" gets the most one answer lists.
        Some(Ok(k)) if k > MAX_K as i64 => MAX_K,
        Some(Err(error)) if *error.kind() == std::num::IntErrorKind::PosOverflow => MAX_K,
        Some(Ok(k)) => k as usize,
        Some(Err(_)) => {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({"detail": [{
                    "type": "int_parsing",
                    "loc": ["query", "k"],
                    "msg": "Input should be a valid integer, unable to parse string as an integer",
                    "input": k_text,
                }]})),
            )
                .into_response();
        }
    };
    let active = state.trending.weights(None);
    let products = match active {
        Ok(version) => rank(&state, &version, &Filters::default(), k),
        Err(_) => Vec::new(),
    };
    let products: Vec<_> = products
        .iter()
        .map(|product| json!({"product_id": product.product_id, "score": product.score}))
        .collect();
    Json(json!({ "top_k": k, "products": products })).into_response()
}

async fn get_healthz() -> Response {
    Json(json!({"status": "ok", "timestamp": Timestamp(now_unix_ms()).to_python_isoformat()}))
        .into_response()
}
