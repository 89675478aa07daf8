//! The fixed inputs shared by the decode benchmark and the instruction-count example, so both
//! measure the same work.

use storepulse_model::time::ClockPolicy;
use storepulse_model::{Currency, Limits, Timestamp, ValidationContext};

pub const PAGE_VIEW: &str = r#"{"event_id":"4b1f2c9e-1","type":"page_view","user_id":"u-1234","session_id":"s-99","timestamp":"2026-11-21T10:00:00Z","page":{"url":"https://shop.example/p/sku-00042","title":"Runner 42","referrer":"https://www.google.com/"},"country":"US","device":{"type":"mobile"}}"#;

fn new_id() -> compact_str::CompactString {
    "generated".into()
}

/// The context the server would build for a request received on 2026-11-21.
pub fn context(limits: &Limits) -> ValidationContext<'_> {
    ValidationContext {
        received_at: Timestamp(1_795_300_000_000),
        header_time: None,
        clock: ClockPolicy::default(),
        default_store: "default",
        default_currency: Currency::USD,
        client: Some("h:0123456789abcdef"),
        user_agent: None,
        country: None,
        limits,
        new_event_id: &new_id,
        address_policy: None,
    }
}
