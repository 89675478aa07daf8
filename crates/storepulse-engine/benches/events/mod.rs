//! Event builders shared by the engine's benches.

use storepulse_model::event::{Device, DeviceType, Event, EventType, Order, Product};
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
