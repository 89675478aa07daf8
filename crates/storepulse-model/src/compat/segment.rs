//! Segment's HTTP Tracking API payloads (`track`, `page`, `screen`, `identify`, `group`,
//! `alias`, `batch`) and its E-commerce Spec v2 event names.
//!
//! | Segment event | Storepulse type |
//! |---|---|
//! | Product Viewed | product_view |
//! | Product Added / Product Removed | add_to_cart / remove_from_cart |
//! | Checkout Started | checkout_started |
//! | Order Completed | purchase |
//! | Order Refunded | refund |
//! | Order Cancelled | refund of the whole order, status `cancelled` |
//! | Promotion Viewed / Promotion Clicked | promotion_view / promotion_click |
//! | Products Searched | search |
//! | Product List Viewed / Product List Filtered | product_list_view |
//! | any other track call | custom, named after the event |
//! | page / screen | page_view (without a URL or path, the name becomes the path: `page:<name>`, `screen:<name>`) |
//! | identify / alias / group | identify (alias and group keep their ids in properties) |
//!
//! Mapped events keep Segment's event name in `name`. Event time follows Segment: `timestamp`
//! when given; otherwise `originalTimestamp` corrected for the client's clock by
//! `receivedAt − (sentAt − originalTimestamp)`; a result that is not believable (before 2000,
//! too far ahead) is distrusted like a native event's time. Unknown properties are kept in
//! `properties`.

use compact_str::{CompactString, ToCompactString};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::decode::decode_collecting;
use crate::error::{ErrorCode, FieldError, ValidationErrors};
use crate::event::Event;
use crate::money::DecimalAmount;
use crate::raw::{
    CategoryPath, RawDevice, RawEvent, RawList, RawMarketing, RawOrder, RawPage, RawProduct,
    RawPromotion, RawText, RawTime, split_category_path,
};
use crate::time::{timestamp_from_unix_integer, timestamp_from_unix_number};
use crate::validate::{ValidationContext, validate_event};

/// The kinds of Segment call, from the URL (`/v1/track`) or a batch item's `type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentCall {
    Track,
    Page,
    Screen,
    Identify,
    Group,
    Alias,
}

impl SegmentCall {
    pub fn parse(name: &str) -> Option<SegmentCall> {
        match name {
            "track" => Some(SegmentCall::Track),
            "page" => Some(SegmentCall::Page),
            "screen" => Some(SegmentCall::Screen),
            "identify" => Some(SegmentCall::Identify),
            "group" => Some(SegmentCall::Group),
            "alias" => Some(SegmentCall::Alias),
            _ => None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SegmentMessage {
    r#type: Option<CompactString>,
    event: Option<CompactString>,
    name: Option<CompactString>,
    category: Option<CompactString>,
    message_id: Option<CompactString>,
    user_id: Option<RawText>,
    anonymous_id: Option<RawText>,
    previous_id: Option<RawText>,
    group_id: Option<RawText>,
    timestamp: Option<RawTime>,
    original_timestamp: Option<RawTime>,
    sent_at: Option<RawTime>,
    properties: Option<Map<String, Value>>,
    traits: Option<Map<String, Value>>,
    context: Option<Map<String, Value>>,
}

/// A `/v1/batch` body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SegmentBatch<'a> {
    #[serde(borrow)]
    pub batch: Vec<&'a serde_json::value::RawValue>,
    pub sent_at: Option<Value>,
    pub context: Option<Value>,
}

/// Decodes one Segment message. `call` is the endpoint's call type (`None` for batch items,
/// which carry their own `type`). `batch_sent_at` is a batch's `sentAt`, used for items that
/// lack their own.
pub fn decode_segment_message(
    json: &str,
    call: Option<SegmentCall>,
    batch_sent_at: Option<&Value>,
    context: &ValidationContext<'_>,
) -> Result<Event, ValidationErrors> {
    if json.len() > context.limits.max_event_bytes {
        return Err(ValidationErrors::single(FieldError::new(
            "",
            ErrorCode::TooLong,
            format!(
                "the message is {} bytes; the limit is {} bytes",
                json.len(),
                context.limits.max_event_bytes
            ),
        )));
    }
    let (message, mut errors) = decode_collecting::<SegmentMessage>(json);
    let Some(message) = message else { return Err(ValidationErrors(errors)) };
    let call = match call.or_else(|| message.r#type.as_deref().and_then(SegmentCall::parse)) {
        Some(call) => call,
        None => {
            let code =
                if message.r#type.is_some() { ErrorCode::InvalidValue } else { ErrorCode::Missing };
            let message = match message.r#type.as_deref() {
                Some(other) => format!(
                    "{other:?} is not a Segment call; use track, page, screen, identify, group or alias"
                ),
                None => {
                    "is required in a batch item: track, page, screen, identify, group or alias"
                        .into()
                }
            };
            errors.push(FieldError::new("type", code, message));
            return Err(ValidationErrors(errors));
        }
    };
    let mut mapper = Mapper { errors, call };
    let raw = mapper.map(message, batch_sent_at, context);
    let mut errors = mapper.errors;
    match validate_event(raw, Vec::new(), context) {
        Ok(event) if errors.is_empty() => Ok(event),
        Ok(_) => Err(ValidationErrors(errors)),
        Err(validation) => {
            // An order value refused here was sent: the order came by its value, just not a
            // valid one, so the products it need not have are not also reported missing (as
            // the native door reports only the refused total).
            let value_refused = errors.iter().any(|error| {
                matches!(
                    error.field.as_str(),
                    "properties.total" | "properties.revenue" | "properties.subtotal"
                )
            });
            for mut error in validation.0 {
                error.field = native_to_segment_path(&error.field, call);
                if value_refused
                    && error.code == ErrorCode::Missing
                    && error.field == "properties.products"
                {
                    continue;
                }
                if !errors.iter().any(|existing| existing.field == error.field) {
                    errors.push(error);
                }
            }
            Err(ValidationErrors(errors))
        }
    }
}

/// Maps a Segment track event name onto a native type name.
pub fn native_type_for_track(event: &str) -> &'static str {
    match event {
        "Product Viewed" => "product_view",
        "Product Added" => "add_to_cart",
        "Product Removed" => "remove_from_cart",
        "Checkout Started" => "checkout_started",
        "Order Completed" => "purchase",
        "Order Refunded" | "Order Cancelled" => "refund",
        "Promotion Viewed" => "promotion_view",
        "Promotion Clicked" => "promotion_click",
        "Products Searched" => "search",
        "Product List Viewed" | "Product List Filtered" => "product_list_view",
        _ => "custom",
    }
}

/// Translates a native field path back to where the value sat in the Segment payload.
fn native_to_segment_path(path: &str, call: SegmentCall) -> String {
    let page_prefix = match call {
        SegmentCall::Page | SegmentCall::Screen => "properties.",
        _ => "context.page.",
    };
    let exact = match path {
        "event_id" => Some("messageId"),
        "user_id" => Some("userId"),
        "anonymous_id" => Some("anonymousId"),
        "session_id" => Some("context.sessionId"),
        "type" => Some("event"),
        // A page's or screen's name is `name` in Segment, a track call's is `event`.
        "name" if matches!(call, SegmentCall::Page | SegmentCall::Screen) => Some("name"),
        "name" => Some("event"),
        "country" => Some("context.location.country"),
        "ip" => Some("context.ip"),
        "product" | "product.id" => Some("properties.product_id"),
        "order.id" => Some("properties.order_id"),
        "promotion.id" => Some("properties.promotion_id"),
        "query" => Some("properties.query"),
        "list.id" => Some("properties.list_id"),
        "items" => Some("properties.products"),
        _ => None,
    };
    if let Some(exact) = exact {
        return exact.to_owned();
    }
    if let Some(rest) = path.strip_prefix("items[") {
        let rest = rest.replacen("].id", "].product_id", 1);
        return format!("properties.products[{rest}");
    }
    for (native, segment) in [
        ("product.", "properties."),
        ("order.", "properties."),
        ("promotion.", "properties."),
        ("list.", "properties."),
        ("device.", "context.device."),
        ("marketing.utm_", "context.campaign."),
        ("page.", page_prefix),
    ] {
        if let Some(rest) = path.strip_prefix(native) {
            return format!("{segment}{rest}");
        }
    }
    path.to_owned()
}

struct Mapper {
    errors: Vec<FieldError>,
    call: SegmentCall,
}

/// Property keys consumed into typed fields, so they are not repeated in `properties`.
const PRODUCT_KEYS: [&str; 11] = [
    "product_id",
    "id",
    "sku",
    "name",
    "category",
    "brand",
    "variant",
    "price",
    "quantity",
    "currency",
    "coupon",
];
const ORDER_KEYS: [&str; 13] = [
    "order_id",
    "checkout_id",
    "total",
    "revenue",
    "subtotal",
    "tax",
    "shipping",
    "discount",
    "coupon",
    "currency",
    "products",
    "customer_id",
    "sales_rep_id",
];

impl Mapper {
    fn map(
        &mut self,
        message: SegmentMessage,
        batch_sent_at: Option<&Value>,
        context: &ValidationContext<'_>,
    ) -> RawEvent {
        // Segment's own rule: every call names its user, by userId or anonymousId.
        let blank = |id: &Option<RawText>| id.as_ref().is_none_or(|id| id.0.trim().is_empty());
        if blank(&message.user_id) && blank(&message.anonymous_id) {
            self.errors.push(FieldError::new(
                "userId",
                ErrorCode::Missing,
                "every call needs userId or anonymousId (Segment's rule)",
            ));
        }
        let segment_context = message.context.unwrap_or_default();
        let mut properties = message.properties.unwrap_or_default();
        let mut raw = RawEvent {
            event_id: message.message_id,
            user_id: message.user_id.map(|id| id.0),
            anonymous_id: message.anonymous_id.map(|id| id.0),
            timestamp: self.event_time(
                message.timestamp,
                message.original_timestamp,
                message.sent_at,
                batch_sent_at,
                context,
            ),
            session_id: ["sessionId", "session_id"]
                .iter()
                .find_map(|key| segment_context.get(*key))
                .or_else(|| properties.get("session_id"))
                .and_then(value_text),
            // A code, or an English name as Segment's own examples send it ("United States"):
            // names were dropped, and the event counted under no country, without a word.
            country: segment_context
                .get("location")
                .and_then(|location| location.get("country"))
                .and_then(Value::as_str)
                .and_then(crate::validate::country_code),
            device: self.device(&segment_context),
            ip: segment_context.get("ip").and_then(Value::as_str).map(CompactString::from),
            marketing: campaign(&segment_context).map(Box::new),
            page: context_page(&segment_context),
            ..RawEvent::default()
        };
        properties.remove("session_id");
        match self.call {
            SegmentCall::Track => {
                let event_name = message.event.unwrap_or_default();
                if event_name.trim().is_empty() {
                    self.errors.push(FieldError::new(
                        "event",
                        ErrorCode::Missing,
                        "a track call needs the event name",
                    ));
                }
                let native_type = native_type_for_track(&event_name);
                raw.r#type = Some(native_type.into());
                self.track_fields(native_type, &event_name, &mut properties, &mut raw);
                raw.name = Some(event_name);
            }
            SegmentCall::Page | SegmentCall::Screen => {
                raw.r#type = Some("page_view".into());
                let mut page = raw.page.take().unwrap_or_default();
                for (key, slot) in [
                    ("url", &mut page.url),
                    ("path", &mut page.path),
                    ("title", &mut page.title),
                    ("referrer", &mut page.referrer),
                ] {
                    if let Some(value) = properties.remove(key) {
                        *slot = self.string(&format!("properties.{key}"), value);
                    }
                }
                // A screen has no URL, and Segment's server libraries send pages with only a
                // name: the name stands for the path, so neither is refused (a 4xx is never
                // retried by those libraries, so the view would be lost).
                if page.path.is_none() && page.url.is_none() {
                    let prefix = if self.call == SegmentCall::Screen { "screen" } else { "page" };
                    page.path = message
                        .name
                        .as_ref()
                        .or(message.category.as_ref())
                        .map(|name| compact_str::format_compact!("{prefix}:{name}"));
                }
                if page.title.is_none() {
                    page.title = message.name.clone();
                }
                raw.page = Some(page);
                raw.name = message.name.or(message.category);
            }
            SegmentCall::Identify | SegmentCall::Group | SegmentCall::Alias => {
                raw.r#type = Some("identify".into());
                properties = message
                    .traits
                    .or_else(|| segment_context.get("traits").and_then(Value::as_object).cloned())
                    .unwrap_or_default();
                if let Some(previous) = message.previous_id {
                    properties.insert("previous_id".into(), Value::String(previous.0.into()));
                }
                if let Some(group) = message.group_id {
                    properties.insert("group_id".into(), Value::String(group.0.into()));
                }
                raw.name = Some(match self.call {
                    SegmentCall::Group => "group".into(),
                    SegmentCall::Alias => "alias".into(),
                    _ => "identify".into(),
                });
            }
        }
        if !properties.is_empty() {
            raw.properties = serde_json::value::to_raw_value(&properties).ok();
        }
        raw
    }

    fn track_fields(
        &mut self,
        native_type: &str,
        event_name: &str,
        properties: &mut Map<String, Value>,
        raw: &mut RawEvent,
    ) {
        match native_type {
            "product_view" | "add_to_cart" | "remove_from_cart" => {
                raw.product = Some(Box::new(self.product("properties", properties)));
                for key in PRODUCT_KEYS {
                    properties.remove(key);
                }
            }
            "purchase" | "refund" | "checkout_started" => {
                let mut order = self.order(properties);
                if event_name == "Order Cancelled" {
                    order.status = Some("cancelled".into());
                }
                raw.items = self.products(properties);
                if event_name == "Order Cancelled" {
                    // A cancellation takes back the whole order, whatever it repeats of it
                    // (Segment's spec payload carries the order's products and `revenue`,
                    // which leave out its shipping and tax): a refund naming only the order.
                    order.total = None;
                    order.subtotal = None;
                    order.tax = None;
                    order.shipping = None;
                    order.discount = None;
                    raw.items = None;
                }
                if native_type == "purchase"
                    && let Some(id) = self.take_string(properties, "promotion_id")
                {
                    // An order placed from a promotion (seed 4's buys name one) counts for it.
                    raw.promotion =
                        Some(Box::new(RawPromotion { id: Some(id), ..RawPromotion::default() }));
                }
                raw.order = Some(Box::new(order));
                for key in ORDER_KEYS {
                    properties.remove(key);
                }
            }
            "promotion_view" | "promotion_click" => {
                raw.promotion = Some(Box::new(RawPromotion {
                    id: self
                        .take_string(properties, "promotion_id")
                        .or_else(|| self.take_string(properties, "id")),
                    name: self.take_string(properties, "name"),
                    creative: self.take_string(properties, "creative"),
                    position: properties
                        .remove("position")
                        .and_then(|value| value_text(&value))
                        .map(RawText),
                }));
            }
            "search" => raw.query = self.take_string(properties, "query"),
            "product_list_view" => {
                raw.list = Some(Box::new(RawList {
                    id: self.take_string(properties, "list_id"),
                    category: self.take_string(properties, "category"),
                }));
                raw.items = self.products(properties);
                properties.remove("products");
            }
            _ => {
                // A custom event may still be about a product; keep it typed when it is.
                if properties.contains_key("product_id") {
                    raw.product = Some(Box::new(self.product("properties", properties)));
                    for key in PRODUCT_KEYS {
                        properties.remove(key);
                    }
                }
            }
        }
    }

    fn product(&mut self, path: &str, object: &Map<String, Value>) -> RawProduct {
        let text = |mapper: &mut Mapper, key: &str| {
            object
                .get(key)
                .cloned()
                .and_then(|value| mapper.string(&format!("{path}.{key}"), value))
        };
        RawProduct {
            id: ["product_id", "id", "sku"]
                .iter()
                .find_map(|key| object.get(*key))
                .and_then(value_text),
            name: text(self, "name"),
            category: object.get("category").and_then(|value| match value {
                Value::String(text) => Some(CategoryPath(split_category_path(text))),
                Value::Array(levels) => {
                    Some(CategoryPath(levels.iter().filter_map(value_text).collect()))
                }
                _ => None,
            }),
            brand: text(self, "brand"),
            variant: text(self, "variant"),
            price: self.amount(&format!("{path}.price"), object.get("price")),
            quantity: match object.get("quantity") {
                None | Some(Value::Null) => None,
                Some(value) => match value
                    .as_i64()
                    // JavaScript has no integers: `2.0` is a quantity of 2 (not `2.5`).
                    .or_else(|| {
                        value.as_f64().filter(|number| number.fract() == 0.0).map(|n| n as i64)
                    })
                    .or_else(|| value.as_str().and_then(|text| text.parse().ok()))
                {
                    Some(quantity) => Some(quantity),
                    None => {
                        self.errors.push(FieldError::new(
                            format!("{path}.quantity"),
                            ErrorCode::InvalidType,
                            "must be an integer",
                        ));
                        None
                    }
                },
            },
            currency: text(self, "currency"),
            coupon: text(self, "coupon"),
        }
    }

    fn products(&mut self, properties: &Map<String, Value>) -> Option<Vec<Option<RawProduct>>> {
        match properties.get("products")? {
            Value::Array(products) => Some(
                products
                    .iter()
                    .enumerate()
                    .map(|(index, product)| match product.as_object() {
                        Some(object) => {
                            Some(self.product(&format!("properties.products[{index}]"), object))
                        }
                        None => {
                            self.errors.push(FieldError::new(
                                format!("properties.products[{index}]"),
                                ErrorCode::InvalidType,
                                "must be an object",
                            ));
                            None
                        }
                    })
                    .collect(),
            ),
            _ => {
                self.errors.push(FieldError::new(
                    "properties.products",
                    ErrorCode::InvalidType,
                    "must be an array of products",
                ));
                None
            }
        }
    }

    fn order(&mut self, properties: &Map<String, Value>) -> RawOrder {
        let discount = self.amount("properties.discount", properties.get("discount"));
        // The native subtotal is the value before discounts, shipping and tax (the total takes
        // the discount off it). Segment's `revenue` is that; its `subtotal` is after discounts,
        // so the discount goes back on (taken as the subtotal as sent, the discount came off
        // twice: the spec's own example totalled 25.00 instead of 27.50).
        let subtotal = match self.amount("properties.revenue", properties.get("revenue")) {
            Some(revenue) => Some(revenue),
            None => {
                self.amount("properties.subtotal", properties.get("subtotal")).map(|subtotal| {
                    discount
                        .as_ref()
                        .and_then(|discount| subtotal.checked_add(discount))
                        .unwrap_or(subtotal)
                })
            }
        };
        let text = |mapper: &mut Mapper, key: &str| {
            properties
                .get(key)
                .cloned()
                .and_then(|value| mapper.string(&format!("properties.{key}"), value))
        };
        RawOrder {
            id: ["order_id", "checkout_id"]
                .iter()
                .find_map(|key| properties.get(*key))
                .and_then(value_text),
            total: self.amount("properties.total", properties.get("total")),
            subtotal,
            tax: self.amount("properties.tax", properties.get("tax")),
            shipping: self.amount("properties.shipping", properties.get("shipping")),
            discount,
            coupon: text(self, "coupon"),
            currency: text(self, "currency"),
            status: None,
            customer_id: properties.get("customer_id").and_then(value_text),
            sales_rep_id: properties.get("sales_rep_id").and_then(value_text),
        }
    }

    fn amount(&mut self, path: &str, value: Option<&Value>) -> Option<DecimalAmount> {
        match value? {
            Value::Null => None,
            value => match DecimalAmount::deserialize(value) {
                Ok(amount) => Some(amount),
                Err(_) => {
                    let message = match value.as_str() {
                        // A number beyond a float, quoted by the decoder, or an exponent.
                        Some(text) if text.contains(['e', 'E']) => {
                            crate::money::amount_text_refusal(text)
                        }
                        _ => "must be a decimal amount such as 19.99".to_owned(),
                    };
                    self.errors.push(FieldError::new(path, ErrorCode::InvalidType, message));
                    None
                }
            },
        }
    }

    fn string(&mut self, path: &str, value: Value) -> Option<CompactString> {
        match value {
            Value::Null => None,
            Value::String(text) => Some(text.into()),
            Value::Number(number) => Some(number.to_compact_string()),
            _ => {
                self.errors.push(FieldError::new(path, ErrorCode::InvalidType, "must be a string"));
                None
            }
        }
    }

    fn take_string(
        &mut self,
        properties: &mut Map<String, Value>,
        key: &str,
    ) -> Option<CompactString> {
        let value = properties.remove(key)?;
        self.string(&format!("properties.{key}"), value)
    }

    fn device(&mut self, context: &Map<String, Value>) -> Option<RawDevice> {
        let device_type = context
            .get("device")
            .and_then(|device| device.get("type"))
            .and_then(Value::as_str)
            .map(CompactString::from);
        let user_agent = context.get("userAgent").and_then(Value::as_str).map(CompactString::from);
        if device_type.is_none() && user_agent.is_none() {
            return None;
        }
        // Segment's device.type is free text ("ios", "android", "web"); only keep what maps.
        let device_type =
            device_type.filter(|name| crate::event::DeviceType::parse(name).is_some());
        Some(RawDevice { r#type: device_type, user_agent })
    }

    fn event_time(
        &mut self,
        timestamp: Option<RawTime>,
        original: Option<RawTime>,
        sent_at: Option<RawTime>,
        batch_sent_at: Option<&Value>,
        context: &ValidationContext<'_>,
    ) -> Option<RawTime> {
        if timestamp.is_some() {
            return timestamp;
        }
        let original_time = original.as_ref().and_then(raw_time_value)?;
        let sent_at = sent_at.as_ref().and_then(raw_time_value).or_else(|| {
            batch_sent_at
                .and_then(|value| RawTime::deserialize(value).ok())
                .as_ref()
                .and_then(raw_time_value)
        });
        match sent_at {
            // Correct the device clock: the gap between sending and the event is trusted,
            // the device's notion of "now" is not. The result is given as an exact instant,
            // never as a number to be read by magnitude: an absurd device clock (year 1 sent
            // in year 9999) gives a time before 2000 or far ahead, which validation distrusts
            // like any other event time (next source, `clock_distrusted`) instead of refusing.
            Some(sent) => {
                let gap = sent.as_millis().saturating_sub(original_time.as_millis());
                let corrected = context.received_at.as_millis().saturating_sub(gap);
                Some(RawTime::Text(Some(crate::time::Timestamp(corrected))))
            }
            None => original,
        }
    }
}

fn raw_time_value(time: &RawTime) -> Option<crate::time::Timestamp> {
    match time {
        RawTime::Text(parsed) => *parsed,
        RawTime::Integer(number) => timestamp_from_unix_integer(*number),
        RawTime::Float(number) => timestamp_from_unix_number(*number),
    }
}

fn value_text(value: &Value) -> Option<CompactString> {
    match value {
        Value::String(text) => Some(text.into()),
        Value::Number(number) => Some(number.to_compact_string()),
        _ => None,
    }
}

fn campaign(context: &Map<String, Value>) -> Option<RawMarketing> {
    let campaign = context.get("campaign")?.as_object()?;
    let text = |key: &str| campaign.get(key).and_then(value_text);
    Some(RawMarketing {
        utm_source: text("source"),
        utm_medium: text("medium"),
        utm_campaign: text("name"),
        utm_term: text("term"),
        utm_content: text("content"),
        referrer_host: None,
    })
}

fn context_page(context: &Map<String, Value>) -> Option<RawPage> {
    let page = context.get("page")?.as_object()?;
    let text = |key: &str| page.get(key).and_then(Value::as_str).map(CompactString::from);
    Some(RawPage {
        url: text("url"),
        path: text("path"),
        title: text("title"),
        referrer: text("referrer"),
    })
}
