//! Engine apply throughput on a realistic mix (page views, product views, carts, purchases
//! with several lines), one core: `cargo bench -p storepulse-engine --bench apply`.

mod events;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use storepulse_engine::{Engine, EngineConfig};
use storepulse_model::event::{DeviceType, Event, EventType, Page, Product};

const START: i64 = 1_793_577_600_000;
const COUNTRIES: [&str; 6] = ["US", "DE", "GB", "FR", "JP", "BR"];

fn line(n: u64) -> Product {
    let category = ["Apparel".to_owned(), format!("Sub{}", n % 20), format!("Leaf{}", n % 60)];
    events::product(n % 500, &category, 1999, 1 + (n % 3) as u32)
}

/// A deterministic mix: 60 % page views, 20 % product views, 10 % carts, 5 % checkouts, 5 %
/// purchases of three lines; 20,000 visitors, 6 countries, one event every 2 ms.
fn workload(count: u64) -> Vec<Event> {
    (0..count)
        .map(|n| {
            let event_type = match n % 20 {
                0..=11 => EventType::PageView,
                12..=15 => EventType::ProductView,
                16 | 17 => EventType::AddToCart,
                18 => EventType::CheckoutStarted,
                _ => EventType::Purchase,
            };
            let visitor = n.wrapping_mul(2_654_435_761) % 20_000;
            let country = COUNTRIES[(visitor % 6) as usize];
            let time = START + (n as i64) * 2;
            let mut event =
                events::event(event_type, n, visitor, time, country, DeviceType::Mobile);
            match event_type {
                EventType::PageView => {
                    event.page = Some(Page {
                        url: None,
                        path: Some(format!("/p/{}", n % 200).into()),
                        title: None,
                        referrer: None,
                    })
                }
                EventType::ProductView | EventType::AddToCart => {
                    event.product = Some(Box::new(line(n)))
                }
                EventType::Purchase => {
                    event.order = Some(events::order(n, 5997));
                    event.items = (0..3).map(|offset| line(n + offset)).collect();
                }
                _ => {}
            }
            event
        })
        .collect()
}

fn apply(c: &mut Criterion) {
    let events = workload(100_000);
    let mut group = c.benchmark_group("engine_apply");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.sample_size(10);
    group.bench_function("mixed_100k", |b| {
        b.iter(|| {
            let mut engine = Engine::new(EngineConfig::default());
            for event in &events {
                engine.apply(event);
            }
            engine.events_applied()
        })
    });
    group.finish();
}

criterion_group!(benches, apply);
criterion_main!(benches);
