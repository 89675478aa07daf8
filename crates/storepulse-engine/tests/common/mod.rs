//! Test events built the way ingest builds them: native JSON through the model's validation.

use storepulse_model::event::Event;
use storepulse_model::limits::Limits;
use storepulse_model::money::Currency;
use storepulse_model::time::{ClockPolicy, Timestamp};
use storepulse_model::validate::{ValidationContext, decode_native_event};

/// Validates one native event. Event times are taken as sent (the receive time is set far
/// ahead and any clock skew is allowed); events without an id get "generated".
pub fn validated(value: &serde_json::Value) -> Event {
    let limits = Limits::default();
    let new_id = || compact_str::CompactString::from("generated");
    let context = ValidationContext {
        // 2030-01-01T00:00:00Z: after every fixture's events.
        received_at: Timestamp(1_893_456_000_000),
        header_time: None,
        clock: ClockPolicy { max_future_skew_ms: i64::MAX / 4 },
        default_store: "default",
        default_currency: Currency::USD,
        client: None,
        user_agent: None,
        country: None,
        limits: &limits,
        new_event_id: &new_id,
        address_policy: None,
    };
    decode_native_event(&value.to_string(), &context).expect("test events are valid")
}
