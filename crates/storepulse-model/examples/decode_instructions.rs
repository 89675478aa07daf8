//! A fixed decode + validate + encode workload (the CPU path of ingest before any I/O) for
//! instruction counting, which unlike wall time is repeatable on a noisy machine:
//! `valgrind --tool=callgrind target/release/examples/decode_instructions` (20,000 page views
//! walked out of 1,000-event arrays), or `... decode_instructions browser` (20,000 single page
//! views from a browser tracker: no device named, the request's User-Agent decides it), or
//! `... decode_instructions wrk` (the HTTP batch benchmark's page views, in 1,000-event arrays).

#[path = "../benches/workload/mod.rs"]
mod workload;

use storepulse_model::Limits;
use storepulse_model::ValidationContext;
use storepulse_model::decode::{BodyFormat, for_each_element};
use storepulse_model::raw::RawEvent;
use storepulse_model::validate::{decode_native_event, validate_native_element};
use workload::PAGE_VIEW;

const BROWSER_PAGE_VIEW: &str = r#"{"type":"page_view","anonymous_id":"a-77","session_id":"s-99","page":{"url":"https://shop.example/p/sku-00042","title":"Runner 42","referrer":"https://www.google.com/"}}"#;
const WRK_PAGE_VIEW: &str = r#"{"type":"page_view","user_id":"u-42","session_id":"s-42","page":{"url":"https://shop.example/p/sku-00042","title":"Product"},"country":"US","device":{"type":"desktop"}}"#;
const BROWSER_AGENT: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";

fn main() {
    let limits = Limits::default();
    let context = workload::context(&limits);
    let mut valid = 0;
    let mut record = Vec::with_capacity(512);
    if std::env::args().nth(1).as_deref() == Some("browser") {
        let context = ValidationContext { user_agent: Some(BROWSER_AGENT), ..context };
        for _ in 0..20_000 {
            if let Ok(event) = decode_native_event(BROWSER_PAGE_VIEW, &context) {
                record.clear();
                storepulse_model::codec::encode_event(&event, &mut record);
                valid += 1;
            }
        }
        println!("{valid} valid events");
        return;
    }
    // `wrk`: the page views of `bench/wrk/batch_1000.lua` (no event id, no timestamp: the
    // server stamps both), so the figures match the HTTP batch benchmark's events.
    let element =
        if std::env::args().nth(1).as_deref() == Some("wrk") { WRK_PAGE_VIEW } else { PAGE_VIEW };
    let body = format!("[{}]", vec![element; 1000].join(","));
    for _ in 0..20 {
        let _ = for_each_element::<RawEvent>(&body, BodyFormat::Json, |_, json, decoded| {
            if let Ok(json) = json
                && let Ok(event) = validate_native_element(json, decoded, &context)
            {
                record.clear();
                storepulse_model::codec::encode_event(&event, &mut record);
                valid += 1;
            }
        });
    }
    println!("{valid} valid events");
}
