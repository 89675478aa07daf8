//! Engine apply throughput on a realistic mix (page views, product views, carts, purchases
//! with several lines), one core: `cargo bench -p storepulse-engine --bench apply`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use storepulse_engine::{Engine, EngineConfig};
use storepulse_model::event::{Device, DeviceType, Event, EventType, Order, Page, Product};
use storepulse_model::money::{Currency, Money};
use storepulse_model::time::{TimeSource, Timestamp};

const START: i64 = 1_793_577_600_000;

fn product(n: u64) -> Product {
    Product {
        id: format!("p{}", n % 500).into(),
        name: None,
        category: vec![
            "Apparel".into(),
            format!("Sub{}", n % 20).into(),
            format!("Leaf{}", n % 60).into(),
        ],
        brand: None,
        variant: None,
        price: Some(Money::new(1999, Currency::USD)),
        quantity: 1 + (n % 3) as u32,
        coupon: None,
    }
}

/// A deterministic mix: 60 % page views, 20 % product views, 10 % carts, 5 % checkouts, 5 %
/// purchases of three lines; 20,000 visitors, 30 countries, one event every 2 ms.
fn workload(count: u64) -> Vec<Event> {
    (0..count)
        .map(|n| {
            let kind = n % 20;
            let event_type = match kind {
                0..=11 => EventType::PageView,
                12..=15 => EventType::ProductView,
                16 | 17 => EventType::AddToCart,
                18 => EventType::CheckoutStarted,
                _ => EventType::Purchase,
            };
            let visitor = n.wrapping_mul(2_654_435_761) % 20_000;
            Event {
                event_id: format!("e{n}").into(),
                event_id_generated: false,
                store: "demo".into(),
                event_type,
                name: None,
                event_time: Timestamp(START + (n as i64) * 2),
                received_at: Timestamp(START + (n as i64) * 2),
                time_source: TimeSource::Event,
                clock_distrusted: false,
                user_id: Some(format!("u{visitor}").into()),
                anonymous_id: None,
                session_id: Some(format!("s{visitor}").into()),
                page: (event_type == EventType::PageView).then(|| Page {
                    url: None,
                    path: Some(format!("/p/{}", n % 200).into()),
                    title: None,
                    referrer: None,
                }),
                marketing: None,
                country: Some(["US", "DE", "GB", "FR", "JP", "BR"][(visitor % 6) as usize].into()),
                device: Some(Device { device_type: DeviceType::Mobile, user_agent: None }),
                client: None,
                product: matches!(event_type, EventType::ProductView | EventType::AddToCart)
                    .then(|| Box::new(product(n))),
                order: (event_type == EventType::Purchase).then(|| {
                    Box::new(Order {
                        id: Some(format!("o{n}").into()),
                        currency: Currency::USD,
                        total: Some(5997),
                        subtotal: None,
                        tax: None,
                        shipping: None,
                        discount: None,
                        coupon: None,
                        status: None,
                        customer_id: None,
                        sales_rep_id: None,
                    })
                }),
                items: if event_type == EventType::Purchase {
                    (0..3).map(|line| product(n + line)).collect()
                } else {
                    Vec::new()
                },
                promotion: None,
                search_query: None,
                list: None,
                properties: None,
            }
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
