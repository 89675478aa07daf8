//! A fixed engine workload for instruction counting, which unlike wall time is repeatable on
//! a noisy machine: `valgrind --tool=callgrind target/release/examples/apply_instructions`
//! (100,000 events of the `apply` bench's mix), or `... apply_instructions wrk` (100,000 page
//! views shaped like `bench/wrk/batch_1000.lua`'s: 700 users, 300 sessions, 1,000 pages, each
//! batch of 1,000 stamped with one receive time, as the server stamps a request's events).

#[path = "../benches/events/mod.rs"]
#[allow(dead_code)]
mod events;

use storepulse_model::event::Event;
use storepulse_model::limits::Limits;
use storepulse_model::time::Timestamp;
use storepulse_model::validate::{ValidationContext, decode_native_event};

fn main() {
    let workload = if std::env::args().nth(1).as_deref() == Some("wrk") {
        wrk_page_views(100_000)
    } else {
        events::mixed_workload(100_000)
    };
    let mut engine = storepulse_engine::Engine::new(storepulse_engine::EngineConfig::default());
    for event in &workload {
        engine.apply(event);
    }
    println!("{} events applied", engine.events_applied());
}

fn wrk_page_views(count: usize) -> Vec<Event> {
    let limits = Limits::default();
    let new_id = || compact_str::CompactString::from("generated");
    (0..count)
        .map(|n| {
            // One request (1,000 events) every 2 ms, as at ~500 requests/s.
            let received = Timestamp(1_795_300_000_000 + (n / 1000) as i64 * 2);
            let context = ValidationContext::for_trusted_events(received, &limits, &new_id);
            let i = n % 1000 + 1;
            let json = format!(
                r#"{{"type":"page_view","user_id":"u-{}","session_id":"s-{}","page":{{"url":"https://shop.example/p/sku-{i:05}","title":"Product"}},"country":"US","device":{{"type":"desktop"}}}}"#,
                i % 700,
                i % 300
            );
            decode_native_event(&json, &context).expect("a valid page view")
        })
        .collect()
}
