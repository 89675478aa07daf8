//! A fixed decode + validate + encode workload (the CPU path of ingest before any I/O) for
//! instruction counting, which unlike wall time is repeatable on a noisy machine:
//! `valgrind --tool=callgrind target/release/examples/decode_instructions` (20,000 page views).

#[path = "../benches/workload/mod.rs"]
mod workload;

use storepulse_model::Limits;
use storepulse_model::decode::{BodyFormat, for_each_element};
use storepulse_model::raw::RawEvent;
use storepulse_model::validate::validate_native_element;
use workload::PAGE_VIEW;

fn main() {
    let limits = Limits::default();
    let context = workload::context(&limits);
    let body = format!("[{}]", vec![PAGE_VIEW; 1000].join(","));
    let mut valid = 0;
    let mut record = Vec::with_capacity(512);
    for _ in 0..20 {
        let _ = for_each_element::<Box<RawEvent>>(&body, BodyFormat::Json, |_, json, decoded| {
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
