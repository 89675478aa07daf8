//! What every ingest door shares: request facts (receive time, header time, client), body
//! reading with limits, content types, validation off the async threads, dead-lettering of
//! rejects, and the commit to the log.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use compact_str::CompactString;
use serde::Serialize;
use storepulse_model::decode::BodyFormat;
use storepulse_model::time::{
    CLIENT_TIME_HEADERS, HeaderTime, PROXY_TIME_HEADERS, resolve_header_time,
};
use storepulse_model::{
    ErrorCode, Event, FieldError, Timestamp, ValidationContext, ValidationErrors,
};

use crate::app::AppState;
use crate::dead_letter::{DeadLetter, RequestFacts};
use crate::error::ApiError;
use crate::http::ClientIp;
use crate::ingest::IngestError;
use crate::ingest::writer::{CommitError, EventOutcome, PreparedBatch, now_unix_ms};
use serde_json::json;

/// Facts about one ingest request, gathered before its body is read.
pub struct IntakeContext {
    pub endpoint: &'static str,
    /// The store a write key routed the request to (Segment), for its dead letters.
    pub store: Option<String>,
    pub received_at: Timestamp,
    pub header_time: Option<HeaderTime>,
    pub client: Option<String>,
    pub country: Option<CompactString>,
    /// Kept as the header values (a clone shares the request's bytes) and read as text where
    /// used: copied into `String`s, they were two allocations per request.
    user_agent: Option<HeaderValue>,
    content_type: Option<HeaderValue>,
}

/// Country headers a trusted proxy may set (Cloudflare's, and a generic one).
static CF_IPCOUNTRY: HeaderName = HeaderName::from_static("cf-ipcountry");
static X_COUNTRY_CODE: HeaderName = HeaderName::from_static("x-country-code");

/// The country a proxy's header names. Cloudflare writes `XX` for "unknown" and `T1` for Tor
/// (not a country code either way): such a value fills no country, rather than showing up as
/// one in group-bys.
fn proxy_country(code: &str) -> Option<compact_str::CompactString> {
    if code.trim().eq_ignore_ascii_case("XX") {
        return None;
    }
    storepulse_model::validate::normalize_country(code)
}

impl IntakeContext {
    pub fn new(
        state: &AppState,
        headers: &HeaderMap,
        client_ip: ClientIp,
        endpoint: &'static str,
    ) -> Self {
        let received_at = Timestamp(now_unix_ms());
        // Looked up by `HeaderName`: by `&str`, each lookup parses the name first.
        let header = |name: &HeaderName| headers.get(name).and_then(|value| value.to_str().ok());
        // One pass over the request's headers instead of eight name lookups.
        let time_headers: Vec<(&str, &str)> = headers
            .iter()
            .filter(|(name, _)| {
                let name = name.as_str();
                CLIENT_TIME_HEADERS.contains(&name) || PROXY_TIME_HEADERS.contains(&name)
            })
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
            .collect();
        let header_time = if time_headers.is_empty() {
            None
        } else {
            let lookup = |wanted: &str| {
                time_headers.iter().find(|(name, _)| *name == wanted).map(|(_, value)| *value)
            };
            resolve_header_time(lookup, received_at, state.clock)
        };
        // Country headers are only believed from a configured proxy, like forwarding headers.
        let country = client_ip
            .peer_trusted
            .then(|| header(&CF_IPCOUNTRY).or_else(|| header(&X_COUNTRY_CODE)))
            .flatten()
            .and_then(proxy_country);
        Self {
            store: None,
            endpoint,
            received_at,
            header_time,
            client: state.anonymizer.client_value(client_ip.ip, received_at),
            user_agent: headers.get(header::USER_AGENT).cloned(),
            country,
            content_type: headers.get(header::CONTENT_TYPE).cloned(),
        }
    }

    /// The body layout the content type announces; anything else is 415 (and the payload is
    /// dead-lettered).
    pub fn body_format(&self, state: &AppState, payload: &[u8]) -> Result<BodyFormat, ApiError> {
        let Some(content_type) = self.content_type() else { return Ok(BodyFormat::Sniff) };
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        // Compared without case rather than lower-cased into a new string for every request.
        let is_one_of =
            |names: &[&str]| names.iter().any(|name| essence.eq_ignore_ascii_case(name));
        if is_one_of(&["application/json", "application/vnd.api+json"]) {
            return Ok(BodyFormat::Json);
        }
        if is_one_of(&[
            "application/x-ndjson",
            "application/ndjson",
            "application/jsonlines",
            "application/x-jsonlines",
        ]) {
            return Ok(BodyFormat::Ndjson);
        }
        // navigator.sendBeacon sends strings as text/plain.
        if is_one_of(&["text/plain", ""]) {
            return Ok(BodyFormat::Sniff);
        }
        self.dead_letter_request(
            state,
            FieldError::new(
                "",
                ErrorCode::UnsupportedContentType,
                format!("content type {content_type:?} is not accepted"),
            ),
            payload,
        );
        Err(ApiError::UnsupportedMediaType { content_type: content_type.to_owned() })
    }

    /// The request's `User-Agent`, when it is text.
    fn user_agent(&self) -> Option<&str> {
        self.user_agent.as_ref().and_then(|value| value.to_str().ok())
    }

    /// The request's `Content-Type`, when it is text.
    fn content_type(&self) -> Option<&str> {
        self.content_type.as_ref().and_then(|value| value.to_str().ok())
    }

    /// Reads the whole body, refusing more than `http.max_body_bytes` with 413 — at once when
    /// the request's `Content-Length` already says so, rather than after waiting (up to
    /// `http.request_timeout`) for a body that would be refused anyway.
    pub async fn read_body(&self, state: &AppState, body: Body) -> Result<Bytes, ApiError> {
        use axum::body::HttpBody;
        let limit = state.config.http.max_body_bytes;
        // hyper's size hint is the declared Content-Length (none for decompressed bodies).
        if body.size_hint().lower() > limit as u64 {
            return Err(self.too_large(state, limit));
        }
        match axum::body::to_bytes(body, limit).await {
            Ok(bytes) => Ok(bytes),
            Err(error) if is_length_limit(&error) => Err(self.too_large(state, limit)),
            Err(error) => {
                let message = format!("the request body could not be read: {error}");
                self.dead_letter_request(
                    state,
                    FieldError::new("", ErrorCode::BodyUnreadable, message.clone()),
                    b"",
                );
                Err(ApiError::bad_request("body_unreadable", message))
            }
        }
    }

    /// The 413 for a body over `limit` bytes, dead-lettered like every refused request.
    fn too_large(&self, state: &AppState, limit: usize) -> ApiError {
        let message =
            format!("the request body is larger than {limit} bytes; send smaller batches");
        self.dead_letter_request(
            state,
            FieldError::new("", ErrorCode::TooLarge, message.clone()),
            b"",
        );
        ApiError::PayloadTooLarge { message, details: json!({ "limit_bytes": limit }) }
    }

    /// The validation context for this request's events.
    pub fn validation<'a>(
        &'a self,
        state: &'a AppState,
        new_event_id: &'a (dyn Fn() -> CompactString + Sync),
    ) -> ValidationContext<'a> {
        ValidationContext {
            received_at: self.received_at,
            header_time: self.header_time,
            clock: state.clock,
            default_store: &state.config.ingest.default_store,
            default_currency: state.default_currency,
            client: self.client.as_deref(),
            user_agent: self.user_agent(),
            country: self.country.as_deref(),
            limits: &state.config.ingest.limits,
            new_event_id,
            address_policy: Some(&state.anonymizer),
        }
    }

    /// Records a whole-request rejection.
    pub fn dead_letter_request(&self, state: &AppState, reason: FieldError, payload: &[u8]) {
        self.dead_letter(state, None, vec![reason], payload);
    }

    /// Records one rejected event of a request.
    pub fn dead_letter_event(
        &self,
        state: &AppState,
        index: Option<usize>,
        errors: &ValidationErrors,
        payload: &[u8],
    ) {
        self.dead_letter(state, index, errors.0.clone(), payload);
    }

    /// Records a rejection with what [`IntakeContext::validation`] gives its events besides the
    /// payload, so that a replay reads them as they came in.
    fn dead_letter(
        &self,
        state: &AppState,
        index: Option<usize>,
        reasons: Vec<FieldError>,
        payload: &[u8],
    ) {
        let request = RequestFacts {
            endpoint: self.endpoint,
            received_at: self.received_at,
            content_type: self.content_type(),
            client: self.client.as_deref(),
            store: self.store.as_deref(),
            header_time: self.header_time,
            user_agent: self.user_agent(),
            country: self.country.as_deref(),
        };
        state.dead_letters.record(DeadLetter::new(
            &request,
            index,
            reasons,
            &state.anonymizer.dead_letter_payload(payload),
            state.dead_letters.max_payload_bytes,
        ));
    }
}

/// Whether a body error is the size limit (http-body-util's `LengthLimitError`, wrapped).
fn is_length_limit(error: &axum::Error) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = current {
        if error.to_string() == "length limit exceeded" {
            return true;
        }
        current = error.source();
    }
    false
}

/// `body` without the byte order mark some Windows tools write before UTF-8 text: no part of
/// the JSON, and skipped by Python's `json.loads` on bytes, as the seeds' FastAPI read a body.
pub fn without_byte_order_mark(body: &[u8]) -> &[u8] {
    body.strip_prefix("\u{feff}".as_bytes()).unwrap_or(body)
}

/// A new server-side event id: a UUIDv7, so ids sort by time.
///
/// Within one millisecond a thread counts up from a random starting point in the 74 random
/// bits (RFC 9562's monotonic method) instead of drawing fresh randomness for every id:
/// unique, ordered, and cheap enough for a 1,000-event batch. Threads start from
/// independent random points.
pub fn new_event_id() -> CompactString {
    new_event_id_at(Timestamp(now_unix_ms()))
}

/// [`new_event_id`] stamped with a time the caller already has (a request's receive time), so
/// a batch of a thousand events reads the clock once, not a thousand times.
pub fn new_event_id_at(time: Timestamp) -> CompactString {
    /// The thread's last id: its millisecond (`u64::MAX` before the first), its 74
    /// counter-and-random bits (in the low bits), and its text.
    struct LastId {
        millis: u64,
        random: u128,
        text: String,
    }
    thread_local! {
        static LAST: std::cell::RefCell<LastId> = const {
            std::cell::RefCell::new(LastId { millis: u64::MAX, random: 0, text: String::new() })
        };
    }
    let millis = u64::try_from(time.as_millis()).unwrap_or(0);
    LAST.with_borrow_mut(|last| {
        if millis == last.millis && last.random as u8 != u8::MAX {
            // The next id of the same millisecond differs from the last one in its lowest byte
            // alone, the text's last two digits: rewritten, not the whole id formatted again
            // (~300 → ~100 instructions an id with the copy; callgrind, fourteenth session).
            last.random += 1;
            let low = last.random as u8;
            let hex = |digit: u8| char::from(b"0123456789abcdef"[usize::from(digit)]);
            last.text.truncate(last.text.len() - 2);
            last.text.push(hex(low >> 4));
            last.text.push(hex(low & 0xf));
        } else {
            last.random =
                if millis == last.millis { last.random.wrapping_add(1) } else { rand::random() };
            last.millis = millis;
            let bytes = last.random.to_be_bytes();
            let mut counter_and_random = [0u8; 10];
            counter_and_random.copy_from_slice(&bytes[6..]);
            let uuid =
                uuid::Builder::from_unix_timestamp_millis(millis, &counter_and_random).into_uuid();
            // Straight into the buffer: `to_string` goes through the formatting machinery.
            let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
            last.text.clear();
            last.text.push_str(uuid.hyphenated().encode_lower(&mut text));
        }
        CompactString::from(last.text.as_str())
    })
}

/// Runs CPU-heavy validation of large bodies on the blocking pool, small ones inline.
pub async fn off_the_async_threads<T: Send + 'static>(
    body_bytes: usize,
    job: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    // ~64 KiB of JSON validates in well under half a millisecond.
    if body_bytes < 64 * 1024 {
        return Ok(job());
    }
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|error| ApiError::Internal(format!("validation task failed: {error}")))
}

/// One rejected event in a batch response.
#[derive(Debug, Serialize)]
pub struct Rejected {
    pub index: usize,
    pub errors: Vec<FieldError>,
}

/// The accepted events of one request, already encoded for the log, plus its rejects.
#[derive(Default)]
pub struct Validated {
    pub batch: PreparedBatch,
    pub rejected: Vec<Rejected>,
    /// The first accepted event's id (answered for single-event bodies).
    pub first_event_id: Option<CompactString>,
}

impl Validated {
    /// Sized for a request body of `body_bytes`: records are about as long as their JSON.
    pub fn with_capacity(body_bytes: usize) -> Self {
        Self {
            batch: PreparedBatch::with_capacity(body_bytes / 128, body_bytes + body_bytes / 2),
            ..Self::default()
        }
    }

    /// Adds a valid event to the batch: encoded for the log, and kept for the engine.
    pub fn accept(&mut self, event: Event) {
        if self.first_event_id.is_none() {
            self.first_event_id = Some(event.event_id.clone());
        }
        self.batch.push(event);
    }
}

/// The counts a batch response reports.
#[derive(Debug, Default, Serialize)]
pub struct CommitSummary {
    pub accepted: usize,
    pub duplicates: usize,
}

impl CommitSummary {
    pub fn of(outcomes: &[EventOutcome]) -> Self {
        let duplicates =
            outcomes.iter().filter(|outcome| **outcome == EventOutcome::Duplicate).count();
        Self { accepted: outcomes.len() - duplicates, duplicates }
    }
}

/// Makes a request's events durable; maps failures to 503s that tell the client to retry.
pub async fn commit(
    state: &AppState,
    batch: PreparedBatch,
    source: &'static str,
) -> Result<Vec<EventOutcome>, ApiError> {
    state.ingest.commit_prepared(batch, source).await.map_err(|error| match error {
        IngestError::QueueFull => ApiError::Unavailable {
            code: "overloaded",
            message: "the ingest queue is full; retry with backoff".into(),
        },
        IngestError::Commit(CommitError::Storage(_)) => ApiError::Unavailable {
            code: "storage_unavailable",
            message:
                "events could not be made durable (storage error); nothing was stored, retry later"
                    .into(),
        },
        IngestError::Commit(CommitError::Stopped) => ApiError::Unavailable {
            code: "shutting_down",
            message: "the server is shutting down; retry".into(),
        },
    })
}

/// 503s for ingest carry a Retry-After so SDKs back off.
pub fn with_retry_after(error: ApiError) -> Response {
    let retry = matches!(error, ApiError::Unavailable { .. });
    let mut response = error.into_response();
    if retry {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
    }
    response
}

/// The standard batch answer.
#[derive(Debug, Serialize)]
pub struct BatchResponse<'a> {
    /// Segment's clients look for `{"success": true}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success: Option<bool>,
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: &'a [Rejected],
    /// Present when the body was a single object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<&'a str>,
}

impl<'a> BatchResponse<'a> {
    pub fn new(summary: &CommitSummary, rejected: &'a [Rejected]) -> Self {
        Self {
            success: None,
            accepted: summary.accepted,
            duplicates: summary.duplicates,
            rejected,
            event_id: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_ids_are_unique_ordered_uuid_v7() {
        let ids: Vec<CompactString> = (0..10_000).map(|_| new_event_id()).collect();
        let parsed: Vec<uuid::Uuid> =
            ids.iter().map(|id| uuid::Uuid::parse_str(id).unwrap()).collect();
        assert!(parsed.iter().all(|uuid| uuid.get_version_num() == 7));
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "ids sort by creation");
        let other_thread = std::thread::spawn(new_event_id).join().unwrap();
        assert!(!ids.contains(&other_thread));
    }

    /// A batch's ids share its receive time: within one millisecond they count up, also where
    /// the count carries out of the lowest byte (once in 256), and stay valid UUIDv7s of it.
    #[test]
    fn ids_of_one_millisecond_count_up_across_carries() {
        let time = Timestamp(1_793_577_600_123);
        let ids: Vec<CompactString> = (0..1_000).map(|_| new_event_id_at(time)).collect();
        let parsed: Vec<uuid::Uuid> =
            ids.iter().map(|id| uuid::Uuid::parse_str(id).unwrap()).collect();
        for (id, uuid) in ids.iter().zip(&parsed) {
            assert_eq!(uuid.get_version_num(), 7, "{id}");
            assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122, "{id}");
            let (seconds, nanos) = uuid.get_timestamp().unwrap().to_unix();
            assert_eq!(seconds * 1000 + u64::from(nanos / 1_000_000), 1_793_577_600_123, "{id}");
            assert_eq!(id.as_str(), uuid.hyphenated().to_string(), "the text is the UUID's");
        }
        // Each one more than the last (a carry into the version or variant bits, which would
        // step further, needs a start within 1,000 of a 2^62 boundary).
        for pair in parsed.windows(2) {
            assert_eq!(pair[1].as_u128(), pair[0].as_u128() + 1, "{pair:?}");
        }
    }
}
