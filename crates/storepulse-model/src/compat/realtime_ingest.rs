//! Seed 3's `POST /ingest` payload: `{event_type, page_url, user_id, session_id, timestamp}`.
//!
//! All five fields are required strings (the timestamp an ISO 8601 time or a Unix number),
//! exactly as seed 3's pydantic model demanded. `page_view` becomes a native page view; any
//! other `event_type` becomes a custom event of that name carrying the page, because seed 3
//! sent no product or order data that a native commerce type would need.

use compact_str::CompactString;
use serde::Deserialize;

use crate::decode::decode_collecting;
use crate::error::{ErrorCode, FieldError, ValidationErrors};
use crate::event::Event;
use crate::raw::{RawEvent, RawPage, RawTime};
use crate::validate::{ValidationContext, validate_event};

#[derive(Debug, Deserialize)]
struct RealtimeIngestEvent {
    event_type: Option<CompactString>,
    page_url: Option<CompactString>,
    user_id: Option<CompactString>,
    session_id: Option<CompactString>,
    timestamp: Option<RawTime>,
}

/// The fields seed 3 required, in its order.
pub const REQUIRED_FIELDS: [&str; 5] =
    ["event_type", "page_url", "user_id", "session_id", "timestamp"];

/// Decodes and validates one seed-3 event.
pub fn decode_realtime_ingest_event(
    json: &str,
    context: &ValidationContext<'_>,
) -> Result<Event, ValidationErrors> {
    let (decoded, mut errors) = decode_collecting::<RealtimeIngestEvent>(json);
    let Some(decoded) = decoded else { return Err(ValidationErrors(errors)) };
    let present = [
        decoded.event_type.is_some(),
        decoded.page_url.is_some(),
        decoded.user_id.is_some(),
        decoded.session_id.is_some(),
        decoded.timestamp.is_some(),
    ];
    for (field, present) in REQUIRED_FIELDS.into_iter().zip(present) {
        if !present && !errors.iter().any(|error| error.field == field) {
            errors.push(FieldError::new(field, ErrorCode::Missing, "Field required"));
        }
    }
    let event_type = decoded.event_type.unwrap_or_default();
    let is_page_view = event_type == "page_view";
    let raw = RawEvent {
        r#type: Some(if is_page_view { "page_view".into() } else { "custom".into() }),
        name: if is_page_view { None } else { Some(event_type) },
        user_id: decoded.user_id,
        session_id: decoded.session_id,
        timestamp: decoded.timestamp,
        page: Some(RawPage { url: decoded.page_url, ..RawPage::default() }),
        ..RawEvent::default()
    };
    let validated = validate_event(raw, Vec::new(), context);
    let validation_errors = match validated {
        Ok(event) if errors.is_empty() => return Ok(event),
        Ok(_) => Vec::new(),
        Err(validation) => validation.0,
    };
    for mut error in validation_errors {
        error.field = match error.field.as_str() {
            "page.url" | "page.path" => "page_url".into(),
            "name" | "type" => "event_type".into(),
            other => other.to_owned(),
        };
        if !errors.iter().any(|existing| existing.field == error.field) {
            errors.push(error);
        }
    }
    Err(ValidationErrors(errors))
}
