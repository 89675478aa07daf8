//! Validation errors with field paths.
//!
//! Validation never stops at the first problem: it returns every bad field, each with its
//! path as a client would write it (`items[2].quantity`), a stable machine-readable code and
//! a sentence for people. The codes double as dead-letter reasons and metric labels, so the
//! set is small and fixed.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Machine-readable reason for a rejected field or event. A closed set (bounded labels).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body or line is not JSON at all.
    InvalidJson,
    /// A value has the wrong JSON type.
    InvalidType,
    /// A required field is absent.
    Missing,
    /// A value has the right type but an unacceptable value.
    InvalidValue,
    /// A value or the event is longer than its limit.
    TooLong,
    /// A field the schema does not know.
    UnknownField,
    /// The event type is not one Storepulse knows.
    UnknownEventType,
    /// The request body is larger than allowed.
    TooLarge,
    /// The request's content type is not accepted.
    UnsupportedContentType,
    /// The request body could not be read (a `Content-Encoding` it does not match).
    BodyUnreadable,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 10] = [
        ErrorCode::InvalidJson,
        ErrorCode::InvalidType,
        ErrorCode::Missing,
        ErrorCode::InvalidValue,
        ErrorCode::TooLong,
        ErrorCode::UnknownField,
        ErrorCode::UnknownEventType,
        ErrorCode::TooLarge,
        ErrorCode::UnsupportedContentType,
        ErrorCode::BodyUnreadable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidType => "invalid_type",
            ErrorCode::Missing => "missing",
            ErrorCode::InvalidValue => "invalid_value",
            ErrorCode::TooLong => "too_long",
            ErrorCode::UnknownField => "unknown_field",
            ErrorCode::UnknownEventType => "unknown_event_type",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::UnsupportedContentType => "unsupported_content_type",
            ErrorCode::BodyUnreadable => "body_unreadable",
        }
    }

    pub fn parse(name: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|code| code.as_str() == name)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// One problem with one field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// Path as written in the payload, e.g. `items[2].quantity`; empty for the whole event.
    pub field: String,
    pub code: ErrorCode,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: ErrorCode, message: impl Into<String>) -> Self {
        Self { field: field.into(), code, message: message.into() }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            formatter.write_str(&self.message)
        } else {
            write!(formatter, "{}: {}", self.field, self.message)
        }
    }
}

/// Every problem found in one event. Never empty.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{}", join(.0))]
pub struct ValidationErrors(pub Vec<FieldError>);

fn join(errors: &[FieldError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

impl ValidationErrors {
    pub fn single(error: FieldError) -> Self {
        Self(vec![error])
    }

    pub fn errors(&self) -> &[FieldError] {
        &self.0
    }

    /// The distinct codes, for metrics and dead-letter filtering.
    pub fn codes(&self) -> Vec<ErrorCode> {
        let mut codes: Vec<ErrorCode> = self.0.iter().map(|error| error.code).collect();
        codes.sort();
        codes.dedup();
        codes
    }
}
