//! A fixed decode + validate + encode workload (the CPU path of ingest before any I/O) for
//! instruction counting, which unlike wall time is repeatable on a noisy machine:
//! `valgrind --tool=callgrind target/release/examples/decode_instructions` (20,000 page views).

use storepulse_model::decode::{BodyFormat, for_each_element};
use storepulse_model::raw::RawEvent;
use storepulse_model::time::ClockPolicy;
use storepulse_model::validate::validate_native_element;
use storepulse_model::{Currency, Limits, Timestamp, ValidationContext};

const PAGE_VIEW: &str = r#"{"event_id":"4b1f2c9e-1","type":"page_view","user_id":"u-1234","session_id":"s-99","timestamp":"2026-11-21T10:00:00Z","page":{"url":"https://shop.example/p/sku-00042","title":"Runner 42","referrer":"https://www.google.com/"},"country":"US","device":{"type":"mobile"}}"#;

fn new_id() -> String {
    "generated".to_owned()
}

fn main() {
    let limits = Limits::default();
    let context = ValidationContext {
        received_at: Timestamp(1_795_300_000_000),
        header_time: None,
        clock: ClockPolicy::default(),
        default_store: "default",
        default_currency: Currency::USD,
        client: Some("h:0123456789abcdef"),
        user_agent: None,
        country: None,
        limits: &limits,
        new_event_id: &new_id,
    };
    let body = format!("[{}]", vec![PAGE_VIEW; 1000].join(","));
    let mut valid = 0;
    let mut record = Vec::with_capacity(512);
    for _ in 0..20 {
        let _ = for_each_element::<RawEvent>(&body, BodyFormat::Json, |_, json, decoded| {
            if let Ok(json) = json
                && let Ok(event) = validate_native_element(json, decoded, &context)
            {
                record.clear();
                if storepulse_model::codec::encode_event(&event, &mut record).is_ok() {
                    valid += 1;
                }
            }
        });
    }
    println!("{valid} valid events");
}
