//! The validated event: what the log stores and the engine reads.
//!
//! Every event has an id (the client's idempotency key, or one the server assigned), a store
//! (the tenant), a type, an event time and a receive time. The other parts are present when
//! the type calls for them: a purchase has an order and line items, a promotion click has a
//! promotion, and so on. Types are checked by [`crate::validate`]; once an `Event` exists it
//! is known to be well formed.
//!
//! The struct is encoded with postcard (see [`crate::codec`]), which is positional: fields may
//! only be appended at the end, and never with `skip_serializing_if`. The larger optional
//! parts are boxed so that an `Event` stays small to move around (a box encodes as its
//! contents, so boxing never changes the record format).

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::money::{Currency, Money};
use crate::time::{TimeSource, Timestamp};

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    PageView,
    ProductView,
    ProductListView,
    Search,
    AddToCart,
    RemoveFromCart,
    CheckoutStarted,
    Purchase,
    Refund,
    PromotionView,
    PromotionClick,
    Identify,
    Custom,
}

impl EventType {
    pub const ALL: [EventType; 13] = [
        EventType::PageView,
        EventType::ProductView,
        EventType::ProductListView,
        EventType::Search,
        EventType::AddToCart,
        EventType::RemoveFromCart,
        EventType::CheckoutStarted,
        EventType::Purchase,
        EventType::Refund,
        EventType::PromotionView,
        EventType::PromotionClick,
        EventType::Identify,
        EventType::Custom,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::PageView => "page_view",
            EventType::ProductView => "product_view",
            EventType::ProductListView => "product_list_view",
            EventType::Search => "search",
            EventType::AddToCart => "add_to_cart",
            EventType::RemoveFromCart => "remove_from_cart",
            EventType::CheckoutStarted => "checkout_started",
            EventType::Purchase => "purchase",
            EventType::Refund => "refund",
            EventType::PromotionView => "promotion_view",
            EventType::PromotionClick => "promotion_click",
            EventType::Identify => "identify",
            EventType::Custom => "custom",
        }
    }

    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|event_type| event_type.as_str() == name)
    }
}

/// One accepted event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub event_id: CompactString,
    /// The sender gave no event_id; the server made one (so retries cannot be recognised).
    pub event_id_generated: bool,
    pub store: CompactString,
    pub event_type: EventType,
    /// The custom event's name; for mapped Segment events, the original event name.
    pub name: Option<CompactString>,
    pub event_time: Timestamp,
    pub received_at: Timestamp,
    pub time_source: TimeSource,
    /// The event carried its own time but it was implausible, so another source was used.
    pub clock_distrusted: bool,
    pub user_id: Option<CompactString>,
    pub anonymous_id: Option<CompactString>,
    pub session_id: Option<CompactString>,
    pub page: Option<Page>,
    pub marketing: Option<Box<Marketing>>,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: Option<CompactString>,
    pub device: Option<Device>,
    /// The client address as configured: a daily-rotating salted hash by default.
    pub client: Option<CompactString>,
    pub product: Option<Box<Product>>,
    pub order: Option<Box<Order>>,
    pub items: Vec<Product>,
    pub promotion: Option<Box<Promotion>>,
    pub search_query: Option<CompactString>,
    pub list: Option<Box<ProductList>>,
    /// Free-form JSON object text (bounded in size).
    pub properties: Option<CompactString>,
}

impl Event {
    /// The person behind the event: the user id when known, else the anonymous id.
    pub fn visitor_id(&self) -> Option<&str> {
        self.user_id.as_deref().or(self.anonymous_id.as_deref())
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Page {
    pub url: Option<CompactString>,
    pub path: Option<CompactString>,
    pub title: Option<CompactString>,
    pub referrer: Option<CompactString>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Marketing {
    pub utm_source: Option<CompactString>,
    pub utm_medium: Option<CompactString>,
    pub utm_campaign: Option<CompactString>,
    pub utm_term: Option<CompactString>,
    pub utm_content: Option<CompactString>,
    /// Host of the referrer, lower case, without `www.`.
    pub referrer_host: Option<CompactString>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceType {
    Desktop,
    Mobile,
    Tablet,
    Bot,
    Other,
}

impl DeviceType {
    pub fn parse(name: &str) -> Option<DeviceType> {
        const NAMES: [(&str, DeviceType); 15] = [
            ("desktop", DeviceType::Desktop),
            ("mobile", DeviceType::Mobile),
            ("tablet", DeviceType::Tablet),
            ("computer", DeviceType::Desktop),
            ("pc", DeviceType::Desktop),
            ("phone", DeviceType::Mobile),
            ("smartphone", DeviceType::Mobile),
            ("ios", DeviceType::Mobile),
            ("android", DeviceType::Mobile),
            ("ipad", DeviceType::Tablet),
            ("bot", DeviceType::Bot),
            ("crawler", DeviceType::Bot),
            ("other", DeviceType::Other),
            ("tv", DeviceType::Other),
            ("console", DeviceType::Other),
        ];
        let name = name.trim();
        NAMES
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map(|(_, device_type)| *device_type)
    }

    /// A coarse classification from a User-Agent string, good enough for dashboards.
    pub fn from_user_agent(user_agent: &str) -> DeviceType {
        let lower = user_agent.to_ascii_lowercase();
        if ["bot", "crawler", "spider", "slurp", "headless"].iter().any(|word| lower.contains(word))
        {
            DeviceType::Bot
        } else if lower.contains("ipad") || lower.contains("tablet") {
            DeviceType::Tablet
        } else if lower.contains("mobi") || lower.contains("iphone") || lower.contains("android") {
            DeviceType::Mobile
        } else {
            DeviceType::Desktop
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeviceType::Desktop => "desktop",
            DeviceType::Mobile => "mobile",
            DeviceType::Tablet => "tablet",
            DeviceType::Bot => "bot",
            DeviceType::Other => "other",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Device {
    pub device_type: DeviceType,
    pub user_agent: Option<CompactString>,
}

/// A product, or one line of a cart or order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Product {
    pub id: CompactString,
    pub name: Option<CompactString>,
    /// Category path from the top, e.g. `["Apparel", "Shoes", "Running"]`.
    pub category: Vec<CompactString>,
    pub brand: Option<CompactString>,
    pub variant: Option<CompactString>,
    /// Unit price.
    pub price: Option<Money>,
    /// Units; at least 1.
    pub quantity: u32,
    pub coupon: Option<CompactString>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Pending,
    Processing,
    Completed,
    Cancelled,
    Refunded,
}

impl OrderStatus {
    pub const NAMES: [&'static str; 5] =
        ["pending", "processing", "completed", "cancelled", "refunded"];

    pub fn parse(name: &str) -> Option<OrderStatus> {
        match name.trim().to_ascii_lowercase().as_str() {
            "pending" => Some(OrderStatus::Pending),
            "processing" => Some(OrderStatus::Processing),
            "completed" | "complete" => Some(OrderStatus::Completed),
            "cancelled" | "canceled" => Some(OrderStatus::Cancelled),
            "refunded" => Some(OrderStatus::Refunded),
            _ => None,
        }
    }
}

/// An order (for purchases and refunds) or a checkout. Amounts share `currency`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub id: Option<CompactString>,
    pub currency: Currency,
    /// For a purchase: what the customer paid. For a refund: the refunded amount, when partial
    /// and given as an amount; `None` on a refund means "see the items, or all of it".
    pub total: Option<i64>,
    pub subtotal: Option<i64>,
    pub tax: Option<i64>,
    pub shipping: Option<i64>,
    pub discount: Option<i64>,
    pub coupon: Option<CompactString>,
    pub status: Option<OrderStatus>,
    pub customer_id: Option<CompactString>,
    pub sales_rep_id: Option<CompactString>,
}

impl Order {
    pub fn total_money(&self) -> Option<Money> {
        self.total.map(|minor| Money::new(minor, self.currency))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Promotion {
    pub id: CompactString,
    pub name: Option<CompactString>,
    pub creative: Option<CompactString>,
    pub position: Option<CompactString>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProductList {
    pub id: Option<CompactString>,
    pub category: Option<CompactString>,
}
