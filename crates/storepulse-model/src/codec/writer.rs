//! The record encoder: the bytes postcard writes for an [`Event`], written directly.
//!
//! postcard through serde costs ~1,600 instructions per page view, mostly in per-field calls
//! and small copies; ingest encodes every event. This writes the same format by hand (the
//! reading side stays postcard's derive, so a mismatch could not go unseen: the tests compare
//! the bytes with postcard's for every field). The field order is [`Event`]'s declaration
//! order: postcard is positional.
//!
//! The format, as postcard defines it: unsigned integers, lengths and enum variant indexes as
//! LEB128 varints, signed integers zigzag-encoded first, `bool` and `u8` as one byte, an
//! `Option` as 0 or 1 followed by the value, a string or sequence as its length and then its
//! contents, a struct as its fields one after the other, a `Box` as its contents.

use crate::event::{Device, Event, Marketing, Order, Page, Product, ProductList, Promotion};
use crate::money::Money;

/// Appends the postcard form of `event` to `buffer`.
pub(super) fn write_event(event: &Event, buffer: &mut Vec<u8>) {
    let mut out = Out(buffer);
    out.text(&event.event_id);
    out.flag(event.event_id_generated);
    out.text(&event.store);
    out.unsigned(event.event_type as u64);
    out.optional_text(event.name.as_deref());
    out.signed(event.event_time.0);
    out.signed(event.received_at.0);
    out.unsigned(event.time_source as u64);
    out.flag(event.clock_distrusted);
    out.optional_text(event.user_id.as_deref());
    out.optional_text(event.anonymous_id.as_deref());
    out.optional_text(event.session_id.as_deref());
    out.optional(event.page.as_ref(), Out::page);
    out.optional(event.marketing.as_deref(), Out::marketing);
    out.optional_text(event.country.as_deref());
    out.optional(event.device.as_ref(), Out::device);
    out.optional_text(event.client.as_deref());
    out.optional(event.product.as_deref(), Out::product);
    out.optional(event.order.as_deref(), Out::order);
    out.unsigned(event.items.len() as u64);
    for item in &event.items {
        out.product(item);
    }
    out.optional(event.promotion.as_deref(), Out::promotion);
    out.optional_text(event.search_query.as_deref());
    out.optional(event.list.as_deref(), Out::list);
    out.optional_text(event.properties.as_deref());
}

struct Out<'a>(&'a mut Vec<u8>);

impl Out<'_> {
    #[inline(always)]
    fn unsigned(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.0.push(value as u8 | 0x80);
            value >>= 7;
        }
        self.0.push(value as u8);
    }

    #[inline(always)]
    fn signed(&mut self, value: i64) {
        self.unsigned(((value << 1) ^ (value >> 63)) as u64);
    }

    #[inline(always)]
    fn flag(&mut self, value: bool) {
        self.0.push(u8::from(value));
    }

    #[inline(always)]
    fn text(&mut self, text: &str) {
        self.unsigned(text.len() as u64);
        self.0.extend_from_slice(text.as_bytes());
    }

    #[inline(always)]
    fn optional<T>(&mut self, value: Option<T>, write: impl FnOnce(&mut Self, T)) {
        match value {
            None => self.0.push(0),
            Some(value) => {
                self.0.push(1);
                write(self, value);
            }
        }
    }

    #[inline(always)]
    fn optional_text(&mut self, text: Option<&str>) {
        self.optional(text, Out::text);
    }

    #[inline(always)]
    fn optional_signed(&mut self, value: Option<i64>) {
        self.optional(value, Out::signed);
    }

    fn money(&mut self, money: Money) {
        self.signed(money.minor);
        self.0.extend_from_slice(&money.currency.bytes());
    }

    fn page(&mut self, page: &Page) {
        self.optional_text(page.url.as_deref());
        self.optional_text(page.path.as_deref());
        self.optional_text(page.title.as_deref());
        self.optional_text(page.referrer.as_deref());
    }

    fn marketing(&mut self, marketing: &Marketing) {
        self.optional_text(marketing.utm_source.as_deref());
        self.optional_text(marketing.utm_medium.as_deref());
        self.optional_text(marketing.utm_campaign.as_deref());
        self.optional_text(marketing.utm_term.as_deref());
        self.optional_text(marketing.utm_content.as_deref());
        self.optional_text(marketing.referrer_host.as_deref());
    }

    fn device(&mut self, device: &Device) {
        self.unsigned(device.device_type as u64);
        self.optional_text(device.user_agent.as_deref());
    }

    fn product(&mut self, product: &Product) {
        self.text(&product.id);
        self.optional_text(product.name.as_deref());
        self.unsigned(product.category.len() as u64);
        for level in &product.category {
            self.text(level);
        }
        self.optional_text(product.brand.as_deref());
        self.optional_text(product.variant.as_deref());
        self.optional(product.price, Out::money);
        self.unsigned(u64::from(product.quantity));
        self.optional_text(product.coupon.as_deref());
    }

    fn order(&mut self, order: &Order) {
        self.optional_text(order.id.as_deref());
        self.0.extend_from_slice(&order.currency.bytes());
        self.optional_signed(order.total);
        self.optional_signed(order.subtotal);
        self.optional_signed(order.tax);
        self.optional_signed(order.shipping);
        self.optional_signed(order.discount);
        self.optional_text(order.coupon.as_deref());
        self.optional(order.status, |out, status| out.unsigned(status as u64));
        self.optional_text(order.customer_id.as_deref());
        self.optional_text(order.sales_rep_id.as_deref());
    }

    fn promotion(&mut self, promotion: &Promotion) {
        self.text(&promotion.id);
        self.optional_text(promotion.name.as_deref());
        self.optional_text(promotion.creative.as_deref());
        self.optional_text(promotion.position.as_deref());
    }

    fn list(&mut self, list: &ProductList) {
        self.optional_text(list.id.as_deref());
        self.optional_text(list.category.as_deref());
    }
}

#[cfg(test)]
mod tests {
    use compact_str::CompactString;
    use proptest::prelude::*;

    use super::*;
    use crate::event::{DeviceType, EventType, OrderStatus};
    use crate::money::Currency;
    use crate::time::{TimeSource, Timestamp};

    /// The writer's bytes must be postcard's, which is what reads them back.
    fn same_as_postcard(event: &Event) {
        let mut written = Vec::new();
        write_event(event, &mut written);
        let expected = postcard::to_allocvec(event).expect("postcard encodes any event");
        assert_eq!(written, expected, "{event:?}");
        assert_eq!(&postcard::from_bytes::<Event>(&written).expect("decodes"), event);
    }

    fn text() -> impl Strategy<Value = CompactString> {
        prop_oneof![
            "[a-z0-9-]{0,24}".prop_map(CompactString::from),
            prop::collection::vec(any::<char>(), 0..200)
                .prop_map(|chars| chars.into_iter().collect::<CompactString>()),
        ]
    }

    fn maybe_text() -> impl Strategy<Value = Option<CompactString>> {
        prop::option::of(text())
    }

    fn currency() -> impl Strategy<Value = Currency> {
        prop::sample::select(vec!["USD", "EUR", "JPY", "KWD"])
            .prop_map(|code| Currency::parse(code).expect("a known code"))
    }

    fn product() -> impl Strategy<Value = Product> {
        (
            text(),
            maybe_text(),
            prop::collection::vec(text(), 0..4),
            maybe_text(),
            maybe_text(),
            prop::option::of((any::<i64>(), currency())),
            any::<u32>(),
            maybe_text(),
        )
            .prop_map(|(id, name, category, brand, variant, price, quantity, coupon)| {
                Product {
                    id,
                    name,
                    category,
                    brand,
                    variant,
                    price: price.map(|(minor, currency)| Money::new(minor, currency)),
                    quantity,
                    coupon,
                }
            })
    }

    fn order() -> impl Strategy<Value = Order> {
        let amount = || prop::option::of(any::<i64>());
        let status = prop::option::of(prop::sample::select(vec![
            OrderStatus::Pending,
            OrderStatus::Processing,
            OrderStatus::Completed,
            OrderStatus::Cancelled,
            OrderStatus::Refunded,
        ]));
        (
            (maybe_text(), currency(), amount(), amount(), amount(), amount(), amount()),
            (maybe_text(), status, maybe_text(), maybe_text()),
        )
            .prop_map(
                |(
                    (id, currency, total, subtotal, tax, shipping, discount),
                    (coupon, status, customer_id, sales_rep_id),
                )| Order {
                    id,
                    currency,
                    total,
                    subtotal,
                    tax,
                    shipping,
                    discount,
                    coupon,
                    status,
                    customer_id,
                    sales_rep_id,
                },
            )
    }

    fn parts() -> impl Strategy<Value = (Option<Page>, Option<Box<Marketing>>, Option<Device>)> {
        let page = (maybe_text(), maybe_text(), maybe_text(), maybe_text())
            .prop_map(|(url, path, title, referrer)| Page { url, path, title, referrer });
        let marketing = prop::collection::vec(maybe_text(), 6).prop_map(|mut values| {
            let mut next = || values.pop().flatten();
            Box::new(Marketing {
                utm_source: next(),
                utm_medium: next(),
                utm_campaign: next(),
                utm_term: next(),
                utm_content: next(),
                referrer_host: next(),
            })
        });
        let device_type = prop::sample::select(vec![
            DeviceType::Desktop,
            DeviceType::Mobile,
            DeviceType::Tablet,
            DeviceType::Bot,
            DeviceType::Other,
        ]);
        let device = (device_type, maybe_text())
            .prop_map(|(device_type, user_agent)| Device { device_type, user_agent });
        (prop::option::of(page), prop::option::of(marketing), prop::option::of(device))
    }

    fn event() -> impl Strategy<Value = Event> {
        let time_source = prop::sample::select(vec![
            TimeSource::Event,
            TimeSource::ClientHeader,
            TimeSource::ProxyHeader,
            TimeSource::Received,
        ]);
        let promotion = (text(), maybe_text(), maybe_text(), maybe_text()).prop_map(
            |(id, name, creative, position)| Box::new(Promotion { id, name, creative, position }),
        );
        let list = (maybe_text(), maybe_text())
            .prop_map(|(id, category)| Box::new(ProductList { id, category }));
        (
            (
                text(),
                any::<bool>(),
                text(),
                prop::sample::select(EventType::ALL.to_vec()),
                maybe_text(),
                any::<i64>(),
                any::<i64>(),
                time_source,
                any::<bool>(),
                (maybe_text(), maybe_text(), maybe_text()),
            ),
            (
                parts(),
                maybe_text(),
                maybe_text(),
                prop::option::of(product().prop_map(Box::new)),
                prop::option::of(order().prop_map(Box::new)),
                prop::collection::vec(product(), 0..3),
                prop::option::of(promotion),
                maybe_text(),
                prop::option::of(list),
                maybe_text(),
            ),
        )
            .prop_map(
                |(
                    (
                        id,
                        generated,
                        store,
                        event_type,
                        name,
                        time,
                        received,
                        source,
                        distrusted,
                        ids,
                    ),
                    (
                        (page, marketing, device),
                        country,
                        client,
                        product,
                        order,
                        items,
                        promotion,
                        search_query,
                        list,
                        properties,
                    ),
                )| Event {
                    event_id: id,
                    event_id_generated: generated,
                    store,
                    event_type,
                    name,
                    event_time: Timestamp(time),
                    received_at: Timestamp(received),
                    time_source: source,
                    clock_distrusted: distrusted,
                    user_id: ids.0,
                    anonymous_id: ids.1,
                    session_id: ids.2,
                    page,
                    marketing,
                    country,
                    device,
                    client,
                    product,
                    order,
                    items,
                    promotion,
                    search_query,
                    list,
                    properties,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn writes_what_postcard_writes(event in event()) {
            same_as_postcard(&event);
        }
    }

    /// Events written one after another into one buffer (as a request's batch is) are each
    /// their own postcard bytes, small ones and large ones.
    #[test]
    fn events_follow_one_another_in_one_buffer() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let mut small = proptest::strategy::ValueTree::current(
            &event().new_tree(&mut runner).expect("an event"),
        );
        small.properties = None;
        let mut large = small.clone();
        large.properties = Some("q".repeat(3_000).into());
        let mut buffer = vec![7u8];
        let mut expected = vec![7u8];
        for event in [&small, &large, &small] {
            write_event(event, &mut buffer);
            expected.extend(postcard::to_allocvec(event).expect("postcard encodes any event"));
        }
        assert_eq!(buffer, expected);
    }

    /// Lengths past one and two varint bytes, and the extremes of every integer.
    #[test]
    fn long_texts_and_extreme_numbers() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let mut event = proptest::strategy::ValueTree::current(
            &event().new_tree(&mut runner).expect("an event"),
        );
        for (length, time) in [(127, i64::MIN), (128, i64::MAX), (16_384, -1), (70_000, 0)] {
            event.properties = Some("p".repeat(length).into());
            event.event_time = Timestamp(time);
            event.items = vec![Product {
                id: "x".repeat(length).into(),
                name: None,
                category: vec![],
                brand: None,
                variant: None,
                price: Some(Money::new(time, Currency::USD)),
                quantity: u32::MAX,
                coupon: None,
            }];
            same_as_postcard(&event);
        }
    }
}
