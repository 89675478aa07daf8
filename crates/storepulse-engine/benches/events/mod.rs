//! Event builders shared by the engine's benches.

use storepulse_model::event::{Device, DeviceType, Event, EventType, Order, Page, Product};
use storepulse_model::money::{Currency, Money};
use storepulse_model::time::{TimeSource, Timestamp};

/// An event of `event_type` by visitor `visitor` (user `u<visitor>`, session `s<visitor>`).
pub fn event(
    event_type: EventType,
    id: u64,
    visitor: u64,
    time: i64,
    country: &str,
    device: DeviceType,
) -> Event {
    Event {
        event_id: format!("e{id}").into(),
        event_id_generated: false,
        store: "demo".into(),
        event_type,
        name: None,
        event_time: Timestamp(time),
        received_at: Timestamp(time),
        time_source: TimeSource::Event,
        clock_distrusted: false,
        user_id: Some(format!("u{visitor}").into()),
        anonymous_id: None,
        session_id: Some(format!("s{visitor}").into()),
        page: None,
        marketing: None,
        country: Some(country.into()),
        device: Some(Device { device_type: device, user_agent: None }),
        client: None,
        product: None,
        order: None,
        items: Vec::new(),
        promotion: None,
        search_query: None,
        list: None,
        properties: None,
    }
}

/// An order in USD with only an id and a total.
pub fn order(id: u64, total_cents: i64) -> Box<Order> {
    Box::new(Order {
        id: Some(format!("o{id}").into()),
        currency: Currency::USD,
        total: Some(total_cents),
        subtotal: None,
        tax: None,
        shipping: None,
        discount: None,
        coupon: None,
        status: None,
        customer_id: None,
        sales_rep_id: None,
    })
}

/// A product line in USD.
pub fn product(id: u64, category: &[String], price_cents: i64, quantity: u32) -> Product {
    Product {
        id: format!("p{id}").into(),
        name: None,
        category: category.iter().map(|level| level.as_str().into()).collect(),
        brand: None,
        variant: None,
        price: Some(Money::new(price_cents, Currency::USD)),
        quantity,
        coupon: None,
    }
}

const START: i64 = 1_793_577_600_000;
const COUNTRIES: [&str; 6] = ["US", "DE", "GB", "FR", "JP", "BR"];

/// One of 500 products, each always in the same category (20 × 3 leaves).
fn line(n: u64) -> Product {
    let id = n % 500;
    let category = ["Apparel".to_owned(), format!("Sub{}", id % 20), format!("Leaf{}", id % 60)];
    product(id, &category, 1999, 1 + (n % 3) as u32)
}

/// A deterministic mix: 60 % page views, 20 % product views, 10 % carts, 5 % checkouts, 5 %
/// purchases of three lines; 20,000 visitors, 6 countries, one event every 2 ms.
pub fn mixed_workload(count: u64) -> Vec<Event> {
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
            let mut event = event(event_type, n, visitor, time, country, DeviceType::Mobile);
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
                    event.order = Some(order(n, 5997));
                    event.items = (0..3).map(|offset| line(n + offset)).collect();
                }
                _ => {}
            }
            event
        })
        .collect()
}
