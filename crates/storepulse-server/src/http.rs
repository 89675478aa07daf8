//! HTTP: the router and the layers every request passes through.
//!
//! Areas, one module each: [`events`] (native ingest), [`segment`] (Segment's tracking API),
//! [`realtime_ingest`] (seed 3's `/ingest`), [`dead_letters`], [`ops`] (health, readiness,
//! Prometheus). [`intake`] holds what the three ingest doors share, [`seed_query`] how the
//! seeds' paths read a query string as FastAPI did.
//!
//! Layers, outermost first: a JSON body for error answers that have none (a timeout's 408) →
//! request id → response compression (≥ 1 KiB) → CORS → the edge (trusted hosts, client
//! address, rate limit, `X-Process-Time`, request metrics) → timeout → for the ingest routes,
//! `Content-Encoding` read as clients write it (`GZIP`, `x-gzip`) and request decompression
//! (SDKs send gzip) → route.

pub mod analytics;
pub mod api_docs;
pub mod buys;
pub mod category_trends;
pub mod client_ip;
pub mod dead_letters;
pub mod events;
pub mod feedback;
pub mod intake;
pub mod ops;
pub mod rate_limit;
pub mod realtime_ingest;
pub mod seed_query;
pub mod segment;
pub mod trending;

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tower::ServiceBuilder;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::cors::{AllowHeaders, AllowOrigin, Any, CorsLayer};
use tower_http::decompression::RequestDecompressionLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;

use crate::app::AppState;
use crate::error::ApiError;
use crate::telemetry::{RequestLabels, RouteLabels};

/// The resolved client address (see [`client_ip`]), put in request extensions.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientIp {
    pub ip: Option<IpAddr>,
    /// The direct peer is a configured proxy, so its forwarding headers are believed.
    pub peer_trusted: bool,
}

/// Refuses a query string on an endpoint that takes no parameters (`endpoint`, as "POST
/// /path"), naming the first one, `why` after the reason: an ignored parameter reads as
/// applied (`?store=` on a door that takes the store from the body), and every endpoint with
/// parameters refuses those it does not know.
pub(crate) fn refuse_query_parameters(
    query: Option<&str>,
    endpoint: &str,
    why: &str,
) -> Result<(), ApiError> {
    let Some(name) = query
        .into_iter()
        .flat_map(|query| query.split('&'))
        .map(|pair| pair.split('=').next().unwrap_or_default())
        .find(|name| !name.is_empty())
    else {
        return Ok(());
    };
    Err(ApiError::invalid_parameter(
        name,
        format!("is not a parameter of {endpoint}, which takes none{why}"),
    ))
}

pub fn router(state: AppState) -> Router {
    let config = &state.config.http;
    let request_id = HeaderName::from_static("x-request-id");
    let cors = cors_layer(&config.cors_origins);
    let compression = CompressionLayer::new().gzip(true).compress_when(
        SizeAbove::new(1024).and(NotForContentType::GRPC).and(NotForContentType::IMAGES),
    );
    // Every answer of 1 KiB or more is gzipped when the client accepts it (an ingest answer
    // listing many rejected events can be large). Request bodies are decompressed for the
    // ingest routes only, where SDKs send gzip.
    let ingest = Router::new()
        .merge(events::router())
        .merge(segment::router())
        .merge(realtime_ingest::router())
        .merge(buys::ingest_router())
        .merge(feedback::router())
        // Route-level (innermost): middleware functions only take plain bodies.
        .layer(RequestDecompressionLayer::new())
        .layer(tower::util::MapRequestLayer::new(normalize_content_encoding));
    let reads = Router::new()
        .route("/", axum::routing::get(get_index))
        .merge(api_docs::router())
        .merge(dead_letters::router())
        .merge(ops::router())
        .merge(analytics::router())
        .merge(buys::read_router())
        .merge(trending::router())
        .merge(category_trends::router());
    Router::new()
        .merge(ingest)
        .merge(reads)
        .fallback(not_found)
        // After every route is in: it is set on the routes registered so far. Inside the
        // layers below, so a 405 gets the request id, `X-Process-Time` and metrics too.
        .method_not_allowed_fallback(method_not_allowed)
        .layer(
            // tower's plain map layers, not axum's `middleware::map_*`: those clone the whole
            // stack inside them and box a future on every request (+15 % instructions per
            // one-event request, `MODE=single bench/server-instructions.sh`).
            ServiceBuilder::new()
                .map_response(crate::error::fill_empty_error_body)
                .map_request(drop_unusable_request_id)
                .layer(SetRequestIdLayer::new(request_id.clone(), NewRequestId))
                .layer(PropagateRequestIdLayer::new(request_id))
                .layer(compression)
                .layer(cors)
                .layer(middleware::from_fn_with_state(state.clone(), edge))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    config.request_timeout,
                )),
        )
        .with_state(state)
}

fn cors_layer(origins: &[String]) -> CorsLayer {
    // Request headers are mirrored rather than `*`: browsers never let the wildcard cover
    // `Authorization` (a Segment write key). A preflight is cached for ten minutes (Chrome's
    // cap is two hours), so a tracker does not send one before every event.
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers(AllowHeaders::mirror_request())
        .max_age(std::time::Duration::from_secs(600))
        .expose_headers([
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("x-process-time"),
            HeaderName::from_static("retry-after"),
            HeaderName::from_static("x-ratelimit-limit"),
            HeaderName::from_static("x-ratelimit-remaining"),
            HeaderName::from_static("x-ratelimit-reset"),
        ]);
    if origins.iter().any(|origin| origin == "*") {
        // Every answer is the same whatever the request's origin or preflight headers, so no
        // `Vary` (tower-http joins its default three names into a new value on every answer,
        // ~2,000 instructions a request).
        layer.allow_origin(Any).vary([])
    } else {
        let list: Vec<HeaderValue> =
            origins.iter().filter_map(|origin| HeaderValue::from_str(origin).ok()).collect();
        layer.allow_origin(AllowOrigin::list(list))
    }
}

/// Route templates served, for metric labels (a closed set: raw paths never become labels),
/// with the methods each answers as axum's `Allow` header lists them (`GET` brings `HEAD`), for
/// the body of a 405, and what each is for, for the index at `GET /`. A test checks the methods
/// against the router's own `Allow` headers.
pub const ROUTE_TEMPLATES: [(&str, &str, &str); 48] = [
    ("/", "GET,HEAD", "This index of endpoints"),
    ("/openapi.json", "GET,HEAD", "This list as an OpenAPI document"),
    ("/docs", "GET,HEAD", "This list as a page"),
    ("/redoc", "GET,HEAD", "This list as a page (seed 4's second path for it)"),
    ("/api/v1/events", "POST", "Send events (one, an array or {\"events\": [...]})"),
    ("/v1/track", "POST", "Segment track"),
    ("/v1/page", "POST", "Segment page"),
    ("/v1/screen", "POST", "Segment screen"),
    ("/v1/identify", "POST", "Segment identify"),
    ("/v1/group", "POST", "Segment group"),
    ("/v1/alias", "POST", "Segment alias"),
    ("/v1/batch", "POST", "Segment batch"),
    ("/v1/t", "POST", "Segment track (short path)"),
    ("/v1/p", "POST", "Segment page (short path)"),
    ("/v1/s", "POST", "Segment screen (short path)"),
    ("/v1/i", "POST", "Segment identify (short path)"),
    ("/v1/g", "POST", "Segment group (short path)"),
    ("/v1/a", "POST", "Segment alias (short path)"),
    ("/v1/b", "POST", "Segment batch (short path)"),
    ("/ingest", "POST", "Seed 3's realtime page-view intake"),
    ("/api/v1/dead-letters", "GET,HEAD", "List dead letters"),
    ("/api/v1/dead-letters/replay", "POST", "Replay dead letters"),
    ("/health", "GET,HEAD", "Health, log and engine state"),
    ("/ready", "GET,HEAD", "Readiness"),
    (
        "/metrics",
        "GET,HEAD",
        "Seed 3's live figures as JSON; Prometheus text for a scraper's Accept",
    ),
    ("/prometheus", "GET,HEAD", "Prometheus metrics"),
    ("/feedback", "POST", "Seed 5's product feedback"),
    ("/api/v1/limits", "GET,HEAD", "Ingest limits in force"),
    ("/api/v1/realtime", "GET,HEAD", "Live figures"),
    ("/api/v1/query", "GET,HEAD,POST", "KPIs over any range"),
    ("/api/v1/promotions", "GET,HEAD", "Promotion report"),
    ("/api/v1/funnels", "GET,HEAD", "Funnels"),
    ("/users/active", "GET,HEAD", "Seed 3's active users"),
    ("/users/{user_id}/sessions", "GET,HEAD", "Seed 3's active sessions of a user"),
    ("/buy", "POST", "Seed 4's promotion buy"),
    ("/stats", "GET,HEAD", "Seed 4's buy statistics"),
    ("/api/v1/trending/products", "GET,HEAD", "Trending products"),
    ("/api/v1/trending/compare", "GET,HEAD", "Compare two weight versions"),
    ("/api/v1/trending/versions", "GET,HEAD,POST", "Trending weight versions"),
    ("/api/v1/trending/versions/{version}/activate", "POST", "Activate a weight version"),
    ("/api/v1/recommendations", "GET,HEAD", "Recommendations"),
    ("/trending_products", "GET,HEAD", "Seed 5's trending products"),
    ("/healthz", "GET,HEAD", "Seed 5's health"),
    ("/api/v1/category-trends", "GET,HEAD", "Category trend gainers and losers"),
    ("/api/v1/category-trends/ticker", "GET,HEAD", "Category trend ticker"),
    ("/api/v1/category-trends/rows", "GET,HEAD", "Category trend rows"),
    ("/api/v1/category-trends/import", "POST", "Import seed 1's category trends CSV"),
    ("/api/trends", "GET,HEAD", "Seed 1's category trend rows"),
];

fn route_label(matched: Option<&MatchedPath>) -> &'static str {
    let Some(matched) = matched else { return "unmatched" };
    let path = matched.as_str();
    ROUTE_TEMPLATES
        .iter()
        .find(|(template, ..)| *template == path)
        .map_or("other", |(template, ..)| template)
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::OPTIONS => "OPTIONS",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

static X_PROCESS_TIME: HeaderName = HeaderName::from_static("x-process-time");

/// The edge of every request, in one middleware (one future instead of four): trusted hosts,
/// client address, rate limit, then `X-Process-Time` and request metrics on the way out.
async fn edge(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = route_label(request.extensions().get::<MatchedPath>());
    let method = method_label(request.method());

    let mut response = 'respond: {
        if let Some(refusal) = refuse_untrusted_host(&state, &request) {
            break 'respond refusal;
        }
        let trusted = &state.config.http.trusted_proxies;
        let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip());
        let ip = client_ip::resolve_client_ip(request.headers(), peer, trusted);
        let peer_trusted = peer.is_some_and(|peer| trusted.iter().any(|net| net.contains(&peer)));
        if let Some(refusal) = refuse_cross_site_admin(&state, &request, peer_trusted) {
            break 'respond refusal;
        }
        request.extensions_mut().insert(ClientIp { ip, peer_trusted });
        let decision = rate_limit::check(&state, &request, ip);
        let mut response = match &decision {
            Some(decision) if !decision.allowed => {
                let mut refusal = rate_limit::refuse(&state, request.uri().path(), decision);
                // Refused before its body was read, the connection cannot carry another
                // request (the server closes it): say so, or a client reuses it and fails.
                if has_body(&request) {
                    refusal
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                refusal
            }
            _ => next.run(request).await,
        };
        if let Some(decision) = &decision {
            rate_limit::add_headers(decision, response.headers_mut());
        }
        response
    };

    let elapsed = started.elapsed().as_secs_f64();
    // Room for this header and those the outer layers add (CORS, request id, compression) at
    // once: one insert at a time, the map grew on the way out (~300 instructions a request).
    response.headers_mut().reserve(8);
    if let Ok(value) = HeaderValue::try_from(seconds_text(elapsed)) {
        response.headers_mut().insert(X_PROCESS_TIME.clone(), value);
    }
    let status = response.status().as_u16();
    state.metrics.http_requests.get_or_create(&RequestLabels { route, method, status }).inc();
    state.metrics.http_request_duration.get_or_create(&RouteLabels { route }).observe(elapsed);
    response
}

/// The longest client request id echoed back and logged as sent.
const MAX_CLIENT_REQUEST_ID_BYTES: usize = 128;

/// A client's `X-Request-Id` is echoed in the answer and logged: one longer than
/// [`MAX_CLIENT_REQUEST_ID_BYTES`], or with anything but visible ASCII, is replaced by one of
/// ours rather than repeated.
fn drop_unusable_request_id(mut request: Request) -> Request {
    let unusable = request.headers().get("x-request-id").is_some_and(|id| {
        id.len() > MAX_CLIENT_REQUEST_ID_BYTES || !id.as_bytes().iter().all(u8::is_ascii_graphic)
    });
    if unusable {
        request.headers_mut().remove("x-request-id");
    }
    request
}

/// Request ids for requests that come without one: UUIDv7s from the same cheap generator as
/// server event ids.
#[derive(Clone, Copy)]
struct NewRequestId;

impl MakeRequestId for NewRequestId {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&intake::new_event_id()).ok().map(RequestId::new)
    }
}

/// Seconds with microsecond precision (`0.000412`), as seed 1's `X-Process-Time` had them,
/// without the formatting machinery, in one allocation (which the header value then keeps).
fn seconds_text(seconds: f64) -> String {
    let micros = (seconds * 1e6).round() as u64;
    let mut text = String::with_capacity(16);
    match micros / 1_000_000 {
        whole @ 0..=9 => text.push(char::from(b'0' + whole as u8)),
        whole => text.push_str(&whole.to_string()),
    }
    text.push('.');
    let fraction = micros % 1_000_000;
    for power in [100_000, 10_000, 1_000, 100, 10, 1] {
        text.push(char::from(b'0' + (fraction / power % 10) as u8));
    }
    text
}

/// tower-http decompresses only an exact `gzip`; clients also send `GZIP`, the old `x-gzip`
/// and `gzip, identity`, which mean the same. Those are rewritten to `gzip` (identity, no
/// coding, is dropped); any other coding is left for the decompression layer to refuse with a
/// 415, to which [`crate::error::fill_empty_error_body`] gives a body naming what is accepted.
fn normalize_content_encoding(mut request: Request) -> Request {
    let Some(value) = request.headers().get(header::CONTENT_ENCODING) else {
        return request;
    };
    let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
    let codings: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case("identity"))
        .collect();
    match codings.as_slice() {
        [] => {
            request.headers_mut().remove(header::CONTENT_ENCODING);
        }
        [coding]
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") =>
        {
            request
                .headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        _ => {}
    }
    request
}

/// Refuses requests whose Host is not in `http.allowed_hosts` (seed 1's TrustedHost).
fn refuse_untrusted_host(state: &AppState, request: &Request) -> Option<Response> {
    let allowed = &state.config.http.allowed_hosts;
    if allowed.iter().any(|host| host == "*") {
        return None;
    }
    let refuse =
        |message: String| Some(ApiError::bad_request("invalid_host", message).into_response());
    // RFC 9112: a request with several Host headers is refused, and an absolute-form target's
    // authority is the host (its Host header is then ignored), so that is what is checked.
    let mut hosts = request.headers().get_all(header::HOST).iter();
    let (first, second) = (hosts.next(), hosts.next());
    if second.is_some() {
        return refuse("the request has several Host headers".to_owned());
    }
    let host = match request.uri().authority() {
        Some(authority) => authority.as_str().rsplit('@').next().unwrap_or_default(),
        None => first.and_then(|value| value.to_str().ok()).unwrap_or_default(),
    };
    if allowed.iter().any(|pattern| host_matches(pattern, host)) {
        return None;
    }
    refuse(format!("host {host:?} is not served here; see http.allowed_hosts"))
}

/// Whether a request says it carries a body.
fn has_body(request: &Request) -> bool {
    let headers = request.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|length| length.to_str().ok())
            .is_some_and(|length| length.trim() != "0")
}

/// Whether a route changes what the server keeps (the weight registry, imported trends, a
/// dead-letter replay) or serves what it keeps private (dead letters hold raw payloads).
fn is_admin_route(method: &Method, path: &str) -> bool {
    path.starts_with("/api/v1/dead-letters")
        || (*method == Method::POST
            && (path.starts_with("/api/v1/trending/versions")
                || path == "/api/v1/category-trends/import"))
}

/// Refuses an admin route (see [`is_admin_route`]) called by a page of another site. Such a
/// call needs no preflight when it is a body-less or form POST, so `http.cors_origins` (`*` by
/// default, for trackers) cannot stop it: any page an employee opens could activate weights,
/// replace imported trends or read dead letters. Browsers send `Origin` on every such request,
/// so one that is not the server's own (its `Host`, or the `X-Forwarded-Host` a trusted proxy
/// passes on, since proxies often rewrite `Host`) nor in `http.admin_origins` is refused;
/// tools that send none (curl, scripts) are not affected. Not authentication: put the admin
/// routes behind a gateway where others can reach the server.
fn refuse_cross_site_admin(
    state: &AppState,
    request: &Request,
    peer_trusted: bool,
) -> Option<Response> {
    let origin = request.headers().get(header::ORIGIN)?;
    if !is_admin_route(request.method(), request.uri().path()) {
        return None;
    }
    let origin = origin.to_str().unwrap_or("null");
    if state.config.http.admin_origins.iter().any(|allowed| allowed == origin) {
        return None;
    }
    let host = match request.uri().authority() {
        Some(authority) => Some(authority.as_str()),
        None => request.headers().get(header::HOST).and_then(|value| value.to_str().ok()),
    };
    let forwarded_host = peer_trusted
        .then(|| request.headers().get("x-forwarded-host")?.to_str().ok())
        .flatten()
        .and_then(|hosts| hosts.split(',').next())
        .map(str::trim);
    let origin_host = origin.split_once("://").map(|(_, host)| host);
    if origin_host.is_some() && (origin_host == host || origin_host == forwarded_host) {
        return None;
    }
    Some(
        ApiError::Forbidden {
            code: "cross_origin_admin",
            message: format!(
                "origin {origin:?} may not call {}: admin routes answer this server's own pages and http.admin_origins only",
                request.uri().path()
            ),
        }
        .into_response(),
    )
}

/// `host[:port]` split at the port, when there is one (`[::1]:8080` keeps its brackets).
fn split_port(host: &str) -> (&str, Option<&str>) {
    if host.starts_with('[') {
        return match host.split_once(']') {
            Some((inner, rest)) => {
                let name = &host[..inner.len() + 1];
                (name, rest.strip_prefix(':').filter(|port| !port.is_empty()))
            }
            None => (host, None),
        };
    }
    match host.rsplit_once(':') {
        Some((name, port))
            if !port.is_empty() && port.bytes().all(|byte| byte.is_ascii_digit()) =>
        {
            (name, Some(port))
        }
        _ => (host, None),
    }
}

/// A pattern without a port allows the name on any port; one with a port
/// (`127.0.0.1:18302`, as operators copy it from a URL) only that port.
fn host_matches(pattern: &str, host: &str) -> bool {
    let (pattern_name, pattern_port) = split_port(pattern);
    let (name, port) = split_port(host);
    if pattern_port.is_some() && pattern_port != port {
        return false;
    }
    // Compared as bytes, without case, and without copying: this runs on every request.
    let name = name.as_bytes();
    match pattern_name.strip_prefix("*.").map(str::as_bytes) {
        Some(suffix) => {
            name.len() > suffix.len()
                && name[name.len() - suffix.len() - 1] == b'.'
                && name[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
        }
        None => pattern_name.as_bytes().eq_ignore_ascii_case(name),
    }
}

async fn not_found(request: Request) -> Response {
    let path = request.uri().path().to_owned();
    ApiError::NotFound {
        message: format!("no route for {} {path}", request.method()),
        details: Some(json!({ "path": path, "available_endpoints": available_endpoints() })),
    }
    .into_response()
}

/// Every served route as `"GET /api/v1/query"` (HEAD, which every GET answers, left out),
/// from the same table as the metrics' labels and the 405s, so no route is missing.
fn available_endpoints() -> Vec<String> {
    endpoints_described().map(|(endpoint, _)| endpoint).collect()
}

/// [`available_endpoints`] with what each is for.
fn endpoints_described() -> impl Iterator<Item = (String, &'static str)> {
    ROUTE_TEMPLATES.iter().flat_map(|(template, methods, description)| {
        methods
            .split(',')
            .filter(|method| *method != "HEAD")
            .map(move |method| (format!("{method} {template}"), *description))
    })
}

/// `GET /`: seed 4's index (`{"message", "version", "endpoints": {"POST /buy": "…"}}`, which
/// its load test's admin user checks), listing every route this server answers.
async fn get_index() -> Response {
    let endpoints: serde_json::Map<String, serde_json::Value> = endpoints_described()
        .map(|(endpoint, description)| (endpoint, json!(description)))
        .collect();
    axum::Json(json!({
        "message": "Storepulse analytics API",
        "version": env!("CARGO_PKG_VERSION"),
        "endpoints": endpoints,
    }))
    .into_response()
}

/// A served path asked with another method: the 404's JSON shape, naming the method, the path
/// and the methods the path takes. axum adds the `Allow` header on the way out (after every
/// layer), which is why the methods come from [`ROUTE_TEMPLATES`] rather than from it.
///
/// On the FastAPI seeds' paths (seed 4's `/buy` and `/stats`, seeds 3's and 5's) the body is
/// FastAPI's, `{"detail": "Method Not Allowed"}`, which those seeds' clients were written
/// against (seed 4's own error handler covered 404s only), as their 429s are.
async fn method_not_allowed(request: Request) -> Response {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    if rate_limit::is_fastapi_seed_path(&path) {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            axum::Json(json!({"detail": "Method Not Allowed"})),
        )
            .into_response();
    }
    let allowed: Vec<&str> = request
        .extensions()
        .get::<MatchedPath>()
        .and_then(|matched| {
            ROUTE_TEMPLATES.iter().find(|(template, ..)| *template == matched.as_str())
        })
        .map(|(_, methods, _)| methods.split(',').collect())
        .unwrap_or_default();
    ApiError::MethodNotAllowed {
        message: format!("{method} is not allowed on {path}; use {}", allowed.join(" or ")),
        details: json!({ "method": method, "path": path, "allowed_methods": allowed }),
    }
    .into_response()
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<ClientIp>().copied().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_time_text() {
        assert_eq!(seconds_text(0.000412), "0.000412");
        assert_eq!(seconds_text(1.5), "1.500000");
        assert_eq!(seconds_text(12.0000004), "12.000000");
    }

    #[test]
    fn host_patterns() {
        assert!(host_matches("shop.test", "shop.test"));
        assert!(host_matches("*.shop.test", "eu.shop.test"));
        assert!(!host_matches("*.shop.test", "shop.test"));
        assert!(!host_matches("shop.test", "evil.test"));
        assert_eq!(split_port("shop.test:8080"), ("shop.test", Some("8080")));
        assert_eq!(split_port("[::1]:8080"), ("[::1]", Some("8080")));
        assert_eq!(split_port("[::1]"), ("[::1]", None));
        assert!(host_matches("shop.test", "SHOP.test:8080"));
        assert!(host_matches("127.0.0.1:18302", "127.0.0.1:18302"));
        assert!(!host_matches("127.0.0.1:18302", "127.0.0.1:18303"));
        assert!(!host_matches("127.0.0.1:18302", "127.0.0.1"));
        assert!(host_matches("[::1]:8080", "[::1]:8080"));
    }
}
