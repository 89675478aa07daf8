//! The one table from failures to HTTP answers.
//!
//! Every error a client can see goes through [`ApiError`], which renders the stable body
//! `{"error": {"code", "message", "details"?}}`. Server-side failures (5xx) are logged with
//! their cause and the client gets a generic message: internals never leak.

use axum::extract::path::ErrorKind;
use axum::extract::rejection::PathRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String, details: Option<Value> },
    #[error("{message}")]
    Unauthorized { message: String },
    /// Understood, and refused whoever asks this way (a page of another site calling an
    /// admin route).
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    #[error("{message}")]
    NotFound { message: String, details: Option<Value> },
    /// A served path asked with a method it does not take (the `Allow` header is axum's).
    #[error("{message}")]
    MethodNotAllowed { message: String, details: Value },
    /// The request conflicts with what exists (a registry version created twice).
    #[error("{message}")]
    Conflict { code: &'static str, message: String, details: Option<Value> },
    /// Over a size limit: the body's bytes, or a batch's events; `details` names the limit
    /// (`{"limit_bytes": …}` or `{"max_batch_events": …, "events": …}`).
    #[error("{message}")]
    PayloadTooLarge { message: String, details: Value },
    #[error("content type {content_type:?} is not accepted")]
    UnsupportedMediaType { content_type: String },
    /// A request body compressed other than with gzip.
    #[error("the body's content encoding is not accepted")]
    /// A body in a `Content-Encoding` this server does not read (it reads gzip).
    UnsupportedContentEncoding,
    #[error("{message}")]
    Unprocessable { message: String, details: Value },
    #[error("rate limit exceeded")]
    RateLimited { retry_after_seconds: u64 },
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest { code, message: message.into(), details: None }
    }

    /// A 400 naming the query parameter or body field at fault and why:
    /// `{"error": {"code": "invalid_parameter", "message": "k: must be 1..=1000",
    /// "details": {"parameter": "k", "reason": "must be 1..=1000"}}}`.
    pub fn invalid_parameter(parameter: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        ApiError::BadRequest {
            code: "invalid_parameter",
            message: format!("{parameter}: {message}"),
            details: Some(json!({ "parameter": parameter, "reason": message })),
        }
    }

    /// A query string or JSON body that serde refused (axum's rejection text), as a 400 naming
    /// the parameter the refusal is about — `stor: unknown field …` → `stor`, `duplicate field
    /// `k`` → `k`, `k: invalid digit …` → `k` — and `fallback` (`query`, `body`) when it names
    /// none.
    pub fn from_serde_refusal(fallback: &'static str, text: &str) -> Self {
        let reason = [
            "Failed to deserialize query string: ",
            "Failed to deserialize the JSON body into the target type: ",
        ]
        .iter()
        .find_map(|prefix| text.strip_prefix(prefix))
        .unwrap_or(text);
        // serde_json's position (" at line 1 column 19") says nothing a caller needs.
        let reason = match reason.rfind(" at line ") {
            Some(at) if reason[at..].contains(" column ") => &reason[..at],
            _ => reason,
        };
        // A body's errors start with the path of the value they are about (`weights: …`);
        // the root's is `.`.
        let (path, reason) = match reason.split_once(": ") {
            Some((path, rest)) if !path.is_empty() && !path.contains(' ') => {
                ((path != ".").then_some(path), rest)
            }
            _ => (None, reason),
        };
        // The path may end at the unknown field itself (a query string's `top: unknown field
        // `top``, a nested body object's `weights.bogus: …`) or at the object holding it
        // (`weights: …`); either way the parameter is the whole path to the field.
        let within = |field: String| match path {
            Some(path) if path == field || path.ends_with(&format!(".{field}")) => path.to_owned(),
            Some(path) => format!("{path}.{field}"),
            None => field,
        };
        let quoted = |after: &str| {
            let rest = &reason[reason.find(after)? + after.len()..];
            Some(rest[..rest.find('`')?].to_owned())
        };
        let (parameter, message) = if let Some(field) = quoted("duplicate field `") {
            (within(field), "is given more than once".to_owned())
        } else if let Some(field) = quoted("unknown field `") {
            let expected = reason.split_once(", expected ").map(|(_, list)| list);
            let message = match expected {
                Some(list) => format!("is not a parameter here; expected {list}"),
                None => "is not a parameter here".to_owned(),
            };
            (within(field), message)
        } else {
            (path.map_or(fallback.to_owned(), str::to_owned), reason.to_owned())
        };
        ApiError::invalid_parameter(&parameter, message)
    }

    /// A path parameter axum could not read (`/users/%FF/sessions`: not UTF-8 once
    /// percent-decoded) as a 400 naming it, instead of axum's plain-text "Invalid URL": every
    /// error answer has the JSON body. A route's parameters disagreeing with its extractor is
    /// our mistake, a 500.
    pub fn from_path_rejection(rejection: PathRejection) -> Self {
        let PathRejection::FailedToDeserializePathParams(failure) = rejection else {
            return ApiError::Internal(rejection.body_text());
        };
        match failure.into_kind() {
            ErrorKind::InvalidUtf8InPathParam { key } => ApiError::invalid_parameter(
                &key,
                "is not UTF-8 text once percent-decoded (a byte such as %FF is no character)",
            ),
            ErrorKind::ParseErrorAtKey { key, value, .. }
            | ErrorKind::DeserializeError { key, value, .. } => {
                ApiError::invalid_parameter(&key, format!("{value:?} is not a valid {key}"))
            }
            ErrorKind::ParseError { value, .. } | ErrorKind::ParseErrorAtIndex { value, .. } => {
                ApiError::invalid_parameter("path", format!("{value:?} is not valid here"))
            }
            other => ApiError::Internal(other.to_string()),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType { .. } | ApiError::UnsupportedContentEncoding => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. } => code,
            ApiError::Unauthorized { .. } => "unauthorized",
            ApiError::Forbidden { code, .. } => code,
            ApiError::NotFound { .. } => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::Conflict { code, .. } => code,
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType { .. } | ApiError::UnsupportedContentEncoding => {
                "unsupported_media_type"
            }
            ApiError::Unprocessable { .. } => "validation_failed",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Unavailable { code, .. } => code,
            ApiError::Internal(_) => "internal",
        }
    }

    /// The JSON body clients see.
    pub fn body(&self) -> Value {
        let (message, details) = match self {
            ApiError::BadRequest { message, details, .. } => (message.clone(), details.clone()),
            ApiError::Unauthorized { message } => (message.clone(), None),
            ApiError::Forbidden { message, .. } => (message.clone(), None),
            ApiError::NotFound { message, details } => (message.clone(), details.clone()),
            ApiError::Conflict { message, details, .. } => (message.clone(), details.clone()),
            ApiError::MethodNotAllowed { message, details } => {
                (message.clone(), Some(details.clone()))
            }
            ApiError::PayloadTooLarge { message, details } => {
                (message.clone(), Some(details.clone()))
            }
            ApiError::UnsupportedMediaType { content_type } => (
                format!("content type {content_type:?} is not accepted"),
                Some(
                    json!({ "accepted": ["application/json", "application/x-ndjson", "text/plain"] }),
                ),
            ),
            ApiError::UnsupportedContentEncoding => (
                "the body's Content-Encoding is not accepted; send it gzipped (Content-Encoding: \
                 gzip) or uncompressed"
                    .to_owned(),
                Some(json!({ "accepted_encodings": ["gzip", "identity"] })),
            ),
            ApiError::Unprocessable { message, details } => {
                (message.clone(), Some(details.clone()))
            }
            ApiError::RateLimited { retry_after_seconds } => (
                format!("rate limit exceeded; retry in {retry_after_seconds} s"),
                Some(json!({ "retry_after": retry_after_seconds })),
            ),
            ApiError::Unavailable { message, .. } => (message.clone(), None),
            ApiError::Internal(_) => {
                ("something went wrong on our side; it has been logged".into(), None)
            }
        };
        let mut error = json!({ "code": self.code(), "message": message });
        if let Some(details) = details {
            error["details"] = details;
        }
        json!({ "error": error })
    }
}

/// Gives an error answer that has no body (a 408 from the timeout layer, a 415 from request
/// decompression, ...) the body every other error has, `{"error": {"code", "message"}}`, with
/// a code from its status (`request_timeout`); its headers are kept. Clients parse one shape.
pub fn fill_empty_error_body<B>(response: axum::http::Response<B>) -> Response
where
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let status = response.status();
    let bare = status.as_u16() >= 400
        && !response.headers().contains_key(header::CONTENT_TYPE)
        && response.body().size_hint().exact() == Some(0);
    if !bare {
        return response.map(axum::body::Body::new);
    }
    if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
        // Ours carry a body; an empty one is the decompression layer refusing a coding. The
        // layers' headers (request id, process time) are kept.
        let (parts, _) = response.into_parts();
        let mut answer = ApiError::UnsupportedContentEncoding.into_response();
        for (name, value) in &parts.headers {
            if name != header::CONTENT_LENGTH && name != header::CONTENT_TYPE {
                answer.headers_mut().append(name, value.clone());
            }
        }
        return answer;
    }
    let reason = status.canonical_reason().unwrap_or("Error");
    let code = reason.to_ascii_lowercase().replace([' ', '-'], "_");
    let message = match status {
        StatusCode::REQUEST_TIMEOUT => {
            "the request was not received in time (http.request_timeout)".to_owned()
        }
        _ => reason.to_ascii_lowercase(),
    };
    let body = json!({ "error": { "code": code, "message": message } });
    let (mut parts, _) = response.into_parts();
    // The body's length changes; the server sets it anew.
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Response::from_parts(parts, axum::body::Body::from(body.to_string()))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, status = status.as_u16(), "request failed");
        } else {
            tracing::debug!(error = %self, status = status.as_u16(), "request rejected");
        }
        let mut response = (status, axum::Json(self.body())).into_response();
        if let ApiError::RateLimited { retry_after_seconds } = self
            && let Ok(value) = HeaderValue::from_str(&retry_after_seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> (String, String) {
        match ApiError::from_serde_refusal("body", text) {
            ApiError::BadRequest { details: Some(details), .. } => (
                details["parameter"].as_str().unwrap_or_default().to_owned(),
                details["reason"].as_str().unwrap_or_default().to_owned(),
            ),
            other => panic!("not a parameter error: {other:?}"),
        }
    }

    /// A refusal names the parameter by its whole path in the body, without serde's position.
    #[test]
    fn a_serde_refusal_names_the_parameter_by_its_path() {
        const BODY: &str = "Failed to deserialize the JSON body into the target type: ";
        let nested = format!(
            "{BODY}weights: unknown field `bogus`, expected one of `view`, `cart` at line 1 column 19"
        );
        assert_eq!(
            refused(&nested),
            (
                "weights.bogus".into(),
                "is not a parameter here; expected one of `view`, `cart`".into()
            )
        );
        let from_value = "weights.bogus: unknown field `bogus`, expected `view`";
        assert_eq!(refused(from_value).0, "weights.bogus");
        let top = format!("{BODY}unknown field `weightz`, expected `weights` at line 1 column 10");
        assert_eq!(refused(&top).0, "weightz");
        let typed = format!(
            "{BODY}weights.view: invalid type: string \"x\", expected f64 at line 1 column 20"
        );
        assert_eq!(
            refused(&typed),
            ("weights.view".into(), "invalid type: string \"x\", expected f64".into())
        );
        let query = "Failed to deserialize query string: k: invalid digit found in string";
        assert_eq!(refused(query), ("k".into(), "invalid digit found in string".into()));
        assert_eq!(refused("Failed to deserialize query string: duplicate field `k`").0, "k");
        let unknown = "Failed to deserialize query string: top: unknown field `top`, expected `k`";
        assert_eq!(refused(unknown).0, "top");
        assert_eq!(refused("EOF while parsing a value at line 1 column 0").0, "body");
    }
}
