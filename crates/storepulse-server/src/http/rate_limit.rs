//! Per-client rate limiting by route class, answering 429 with `Retry-After` and
//! `X-RateLimit-Limit/Remaining/Reset` (and the same headers on allowed responses).
//!
//! Clients are told apart by the configured key header (default `X-API-Key`, as seed 2
//! recommends for load tests; none when configured empty), else by their resolved address. Each route class —
//! ingest, api, ops — has its own token bucket per client (governor, GCRA).

use std::net::IpAddr;
use std::num::NonZeroU32;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::app::AppState;
use crate::config::{RateLimitConfig, RateQuota};
use crate::error::ApiError;
use crate::telemetry::ClassLabels;

type KeyedLimiter =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// Which bucket a path draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteClass {
    Ingest,
    Api,
    Ops,
}

impl RouteClass {
    pub fn of(path: &str) -> RouteClass {
        if path == "/api/v1/events"
            || path.starts_with("/v1/")
            || path == "/ingest"
            || path == "/buy"
        {
            RouteClass::Ingest
        } else if matches!(path, "/health" | "/ready" | "/metrics" | "/prometheus" | "/healthz") {
            RouteClass::Ops
        } else {
            RouteClass::Api
        }
    }

    fn name(self) -> &'static str {
        match self {
            RouteClass::Ingest => "ingest",
            RouteClass::Api => "api",
            RouteClass::Ops => "ops",
        }
    }
}

struct ClassLimiter {
    limiter: KeyedLimiter,
    quota: RateQuota,
}

pub struct RateLimiters {
    enabled: bool,
    key_header: Option<HeaderName>,
    ingest: ClassLimiter,
    api: ClassLimiter,
    ops: ClassLimiter,
}

fn class_limiter(quota: RateQuota) -> ClassLimiter {
    let per_second = NonZeroU32::new(quota.per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(quota.burst).unwrap_or(NonZeroU32::MIN);
    let limiter = RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst))
        .with_middleware::<StateInformationMiddleware>();
    ClassLimiter { limiter, quota }
}

/// The verdict for one request.
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    pub reset_seconds: u64,
    pub retry_after_seconds: u64,
}

impl RateLimiters {
    pub fn new(config: &RateLimitConfig) -> Self {
        Self {
            enabled: config.enabled,
            // (Validated with the configuration: empty or a header name.)
            key_header: HeaderName::try_from(config.key_header.to_ascii_lowercase()).ok(),
            ingest: class_limiter(config.ingest),
            api: class_limiter(config.api),
            ops: class_limiter(config.ops),
        }
    }

    fn class(&self, class: RouteClass) -> &ClassLimiter {
        match class {
            RouteClass::Ingest => &self.ingest,
            RouteClass::Api => &self.api,
            RouteClass::Ops => &self.ops,
        }
    }

    pub fn check(&self, class: RouteClass, key: &str) -> Decision {
        let class_limiter = self.class(class);
        let quota = class_limiter.quota;
        let seconds_to_refill =
            |missing: u32| (u64::from(missing)).div_ceil(u64::from(quota.per_second.max(1)));
        match class_limiter.limiter.check_key(&key.to_owned()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Decision {
                    allowed: true,
                    limit: quota.burst,
                    remaining,
                    reset_seconds: seconds_to_refill(quota.burst.saturating_sub(remaining)),
                    retry_after_seconds: 0,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let retry_after_seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
                Decision {
                    allowed: false,
                    limit: quota.burst,
                    remaining: 0,
                    reset_seconds: seconds_to_refill(quota.burst),
                    retry_after_seconds,
                }
            }
        }
    }

    /// Drops idle clients' state so memory stays bounded.
    pub fn forget_idle(&self) {
        for class in [&self.ingest, &self.api, &self.ops] {
            class.limiter.retain_recent();
            class.limiter.shrink_to_fit();
        }
    }
}

fn client_key(request: &Request, key_header: Option<&HeaderName>, ip: Option<IpAddr>) -> String {
    if let Some(key) = key_header
        .and_then(|header| request.headers().get(header))
        .and_then(|value| value.to_str().ok())
    {
        return format!("key:{key}");
    }
    match ip {
        Some(ip) => ip.to_string(),
        None => "unknown".into(),
    }
}

/// The verdict for `request`, or `None` when rate limiting is off.
pub fn check(state: &AppState, request: &Request, ip: Option<IpAddr>) -> Option<Decision> {
    let limiters = &state.rate_limiters;
    if !limiters.enabled {
        return None;
    }
    let class = RouteClass::of(request.uri().path());
    let key = client_key(request, limiters.key_header.as_ref(), ip);
    Some(limiters.check(class, &key))
}

/// Whether `path` is one of the FastAPI seeds' (3, 4 and 5) paths, whose clients read a 429
/// (and a 405, see `http::method_not_allowed`) as FastAPI wrote it (`{"detail": ...}`) rather
/// than as Storepulse's `{"error": ...}`.
pub fn is_fastapi_seed_path(path: &str) -> bool {
    let user_sessions = path
        .strip_prefix("/users/")
        .and_then(|rest| rest.strip_suffix("/sessions"))
        .is_some_and(|user| !user.is_empty() && !user.contains('/'));
    user_sessions
        || matches!(
            path,
            "/ingest"
                | "/users/active"
                | "/metrics"
                | "/buy"
                | "/stats"
                | "/trending_products"
                | "/feedback"
                | "/healthz"
        )
}

/// The 429 answer: Storepulse's error body, or on the FastAPI seeds' paths seed 3's
/// `{"detail": "Rate limit exceeded"}` with the wait added; `Retry-After` either way.
pub fn refuse(state: &AppState, path: &str, decision: &Decision) -> Response {
    let class = RouteClass::of(path);
    state.metrics.rate_limited.get_or_create(&ClassLabels { class: class.name() }).inc();
    let refusal = ApiError::RateLimited { retry_after_seconds: decision.retry_after_seconds };
    if !is_fastapi_seed_path(path) {
        return refusal.into_response();
    }
    let detail = format!("Rate limit exceeded: retry in {} s", decision.retry_after_seconds);
    let mut response =
        (refusal.status(), axum::Json(serde_json::json!({ "detail": detail }))).into_response();
    response
        .headers_mut()
        .insert(axum::http::header::RETRY_AFTER, HeaderValue::from(decision.retry_after_seconds));
    response
}

/// `X-RateLimit-Limit/Remaining/Reset`, on allowed and refused answers alike.
pub fn add_headers(decision: &Decision, headers: &mut HeaderMap) {
    for (name, value) in [
        ("x-ratelimit-limit", u64::from(decision.limit)),
        ("x-ratelimit-remaining", u64::from(decision.remaining)),
        ("x-ratelimit-reset", decision.reset_seconds),
    ] {
        headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The route classes as docs/operations.md lists them (`/buy`, `/prometheus` and `/healthz`
    /// were missing there).
    #[test]
    fn route_classes_are_as_documented() {
        for path in ["/api/v1/events", "/v1/track", "/ingest", "/buy"] {
            assert!(matches!(RouteClass::of(path), RouteClass::Ingest), "{path}");
        }
        for path in ["/health", "/ready", "/metrics", "/prometheus", "/healthz"] {
            assert!(matches!(RouteClass::of(path), RouteClass::Ops), "{path}");
        }
        for path in ["/feedback", "/stats", "/api/v1/query", "/"] {
            assert!(matches!(RouteClass::of(path), RouteClass::Api), "{path}");
        }
    }

    #[test]
    fn fastapi_seed_paths_are_the_seeds_own() {
        for path in [
            "/ingest",
            "/users/active",
            "/users/u-1/sessions",
            "/metrics",
            "/buy",
            "/stats",
            "/trending_products",
            "/feedback",
            "/healthz",
        ] {
            assert!(is_fastapi_seed_path(path), "{path}");
        }
        for path in ["/api/v1/events", "/v1/track", "/health", "/prometheus", "/users//sessions"] {
            assert!(!is_fastapi_seed_path(path), "{path}");
        }
        assert!(!is_fastapi_seed_path("/users/a/b/sessions"));
    }

    #[test]
    fn bursts_then_refuses_with_retry_after() {
        let config = RateLimitConfig {
            ingest: RateQuota { per_second: 1, burst: 3 },
            ..RateLimitConfig::default()
        };
        let limiters = RateLimiters::new(&config);
        let decisions: Vec<Decision> =
            (0..4).map(|_| limiters.check(RouteClass::Ingest, "client")).collect();
        assert!(decisions[..3].iter().all(|decision| decision.allowed));
        assert_eq!(decisions[0].remaining, 2);
        assert_eq!(decisions[2].remaining, 0);
        assert!(!decisions[3].allowed);
        assert!(decisions[3].retry_after_seconds >= 1);
        // Another client and another class are unaffected.
        assert!(limiters.check(RouteClass::Ingest, "other").allowed);
        assert!(limiters.check(RouteClass::Api, "client").allowed);
    }

    /// With the key header configured empty, a client rotating `X-API-Key` values stays in its
    /// address's bucket.
    #[test]
    fn an_empty_key_header_tells_clients_apart_by_address_only() {
        let request = |key: &str| {
            Request::builder()
                .uri("/api/v1/events")
                .header("x-api-key", key)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let ip = Some(IpAddr::from([192, 0, 2, 7]));
        let named = RateLimiters::new(&RateLimitConfig::default());
        assert_eq!(client_key(&request("a"), named.key_header.as_ref(), ip), "key:a");
        let unnamed = RateLimiters::new(&RateLimitConfig {
            key_header: String::new(),
            ..RateLimitConfig::default()
        });
        for key in ["a", "b"] {
            assert_eq!(client_key(&request(key), unnamed.key_header.as_ref(), ip), "192.0.2.7");
        }
    }

    #[test]
    fn route_classes() {
        assert_eq!(RouteClass::of("/api/v1/events"), RouteClass::Ingest);
        assert_eq!(RouteClass::of("/v1/batch"), RouteClass::Ingest);
        assert_eq!(RouteClass::of("/ingest"), RouteClass::Ingest);
        assert_eq!(RouteClass::of("/health"), RouteClass::Ops);
        assert_eq!(RouteClass::of("/api/v1/dead-letters"), RouteClass::Api);
    }
}
