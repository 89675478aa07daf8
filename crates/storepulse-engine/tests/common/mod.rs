//! Test events built the way ingest builds them: native JSON through the model's validation.

use storepulse_model::event::Event;
use storepulse_model::limits::Limits;
use storepulse_model::time::Timestamp;
use storepulse_model::validate::{ValidationContext, decode_native_event};

/// Validates one native event. Event times are taken as sent (the receive time is set far
/// ahead and any clock skew is allowed); events without an id get "generated".
pub fn validated(value: &serde_json::Value) -> Event {
    let limits = Limits::default();
    let new_id = || compact_str::CompactString::from("generated");
    // 2030-01-01T00:00:00Z: after every fixture's events.
    let context =
        ValidationContext::for_trusted_events(Timestamp(1_893_456_000_000), &limits, &new_id);
    decode_native_event(&value.to_string(), &context).expect("test events are valid")
}
