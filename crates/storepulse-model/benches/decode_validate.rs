//! Decode + validate throughput: the CPU cost of accepting one event, before any I/O.

mod workload;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use storepulse_model::compat::segment::decode_segment_message;
use storepulse_model::decode::{BodyFormat, for_each_element};
use storepulse_model::raw::RawEvent;
use storepulse_model::validate::{decode_native_event, validate_native_element};
use storepulse_model::{Limits, ValidationContext};
use workload::PAGE_VIEW;

const PURCHASE: &str = r#"{"event_id":"4b1f2c9e-2","type":"purchase","user_id":"u-1234","session_id":"s-99","timestamp":"2026-11-21T10:00:00Z","country":"DE","order":{"id":"o-1","currency":"EUR","shipping":"4.99","tax":3.8,"customer_id":"u-1234"},"items":[{"id":"sku-1","name":"Tee","category":"Apparel > Tops > Classic","price":"19.99","quantity":2},{"id":"sku-2","price":5.5},{"id":"sku-3","price":"120.00","brand":"Northwind"}]}"#;
const SEGMENT_ORDER: &str = r#"{"type":"track","event":"Order Completed","userId":"u-1","messageId":"m-1","timestamp":"2026-11-21T10:00:00Z","context":{"userAgent":"Mozilla/5.0 (iPhone) Mobile","page":{"url":"https://shop.example/checkout"}},"properties":{"order_id":"o-1","total":45.49,"currency":"USD","products":[{"product_id":"sku-1","price":19.99,"quantity":2},{"product_id":"sku-2","price":5.51}]}}"#;

const BROWSER_PAGE_VIEW: &str = r#"{"type":"page_view","anonymous_id":"a-77","session_id":"s-99","page":{"url":"https://shop.example/p/sku-00042","title":"Runner 42","referrer":"https://www.google.com/"}}"#;
const BROWSER_AGENT: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";

fn bench(criterion: &mut Criterion) {
    let limits = Limits::default();
    let context = workload::context(&limits);
    let mut group = criterion.benchmark_group("decode_validate");
    group.throughput(Throughput::Elements(1));
    group.bench_function("native_page_view", |bencher| {
        bencher.iter(|| decode_native_event(PAGE_VIEW, &context).is_ok())
    });
    // A browser tracker's event: no device named, so the request's User-Agent decides it.
    let browser_context = ValidationContext { user_agent: Some(BROWSER_AGENT), ..context };
    group.bench_function("native_page_view_browser_user_agent", |bencher| {
        bencher.iter(|| decode_native_event(BROWSER_PAGE_VIEW, &browser_context).is_ok())
    });
    group.bench_function("native_purchase_3_items", |bencher| {
        bencher.iter(|| decode_native_event(PURCHASE, &context).is_ok())
    });
    group.bench_function("segment_order_completed", |bencher| {
        bencher.iter(|| decode_segment_message(SEGMENT_ORDER, None, None, &context).is_ok())
    });
    let invalid =
        r#"{"type":"purchase","user_id":5,"items":[{"quantity":"x"}],"order":{"total":true}}"#;
    group.bench_function("native_invalid_slow_path", |bencher| {
        bencher.iter(|| decode_native_event(invalid, &context).is_err())
    });
    group.finish();

    let mut group = criterion.benchmark_group("decode_validate_batch");
    for size in [100usize, 1000] {
        let body = format!("[{}]", vec![PAGE_VIEW; size].join(","));
        group.throughput(Throughput::Elements(size as u64));
        group.bench_with_input(
            BenchmarkId::new("native_page_views", size),
            &body,
            |bencher, body| bencher.iter(|| count_valid(body, &context)),
        );
    }
    group.finish();
}

/// Walks a JSON array body the way the server does and counts the valid events.
fn count_valid(body: &str, context: &ValidationContext<'_>) -> usize {
    let mut valid = 0;
    let _ = for_each_element::<RawEvent>(body, BodyFormat::Json, |_, json, decoded| {
        if let Ok(json) = json
            && validate_native_element(json, decoded, context).is_ok()
        {
            valid += 1;
        }
    });
    valid
}

criterion_group!(benches, bench);
criterion_main!(benches);
