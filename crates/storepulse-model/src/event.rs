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
    /// A device type by name or common synonym, in any ASCII case, surrounding blanks
    /// ignored. Lower-cased on the stack and matched in one `match`: a search of the synonyms
    /// with `eq_ignore_ascii_case` cost ~190 instructions per event that names its device.
    pub fn parse(name: &str) -> Option<DeviceType> {
        // `trim` walks chars for Unicode blanks: only paid when an end is not a letter.
        let name = match name.as_bytes() {
            [first, .., last] if first.is_ascii_alphabetic() && last.is_ascii_alphabetic() => name,
            _ => name.trim(),
        };
        let mut lower = [0; 10]; // the longest synonym, "smartphone"
        let lower = lower.get_mut(..name.len())?;
        for (to, from) in lower.iter_mut().zip(name.bytes()) {
            *to = from.to_ascii_lowercase();
        }
        Some(match &*lower {
            b"desktop" | b"computer" | b"pc" => DeviceType::Desktop,
            b"mobile" | b"phone" | b"smartphone" | b"ios" | b"android" => DeviceType::Mobile,
            b"tablet" | b"ipad" => DeviceType::Tablet,
            b"bot" | b"crawler" => DeviceType::Bot,
            b"other" | b"tv" | b"console" => DeviceType::Other,
            _ => return None,
        })
    }

    /// A coarse classification from a User-Agent string, good enough for dashboards. It runs
    /// for every event from a browser that names no device, so the words are looked for with
    /// searchers built once, in a lower-case copy on the stack.
    pub fn from_user_agent(user_agent: &str) -> DeviceType {
        static WORDS: std::sync::LazyLock<[(memchr::memmem::Finder<'static>, DeviceType); 10]> =
            std::sync::LazyLock::new(|| {
                let word = |text: &'static str, device| (memchr::memmem::Finder::new(text), device);
                // In precedence order: a bot on a phone is a bot, an iPad is not a phone.
                [
                    word("bot", DeviceType::Bot),
                    word("crawler", DeviceType::Bot),
                    word("spider", DeviceType::Bot),
                    word("slurp", DeviceType::Bot),
                    word("headless", DeviceType::Bot),
                    word("ipad", DeviceType::Tablet),
                    word("tablet", DeviceType::Tablet),
                    word("mobi", DeviceType::Mobile),
                    word("iphone", DeviceType::Mobile),
                    word("android", DeviceType::Mobile),
                ]
            });
        let mut buffer = [0_u8; 512];
        let heap;
        let lower: &[u8] = match buffer.get_mut(..user_agent.len()) {
            Some(copy) => {
                copy.copy_from_slice(user_agent.as_bytes());
                copy.make_ascii_lowercase();
                copy
            }
            None => {
                heap = user_agent.to_ascii_lowercase();
                heap.as_bytes()
            }
        };
        WORDS
            .iter()
            .find(|(finder, _)| finder.find(lower).is_some())
            .map_or(DeviceType::Desktop, |(_, device)| *device)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_types_are_parsed_by_name_and_synonym_in_any_case() {
        let cases = [
            ("desktop", Some(DeviceType::Desktop)),
            (" Computer ", Some(DeviceType::Desktop)),
            ("PC", Some(DeviceType::Desktop)),
            ("mobile", Some(DeviceType::Mobile)),
            ("SmartPhone", Some(DeviceType::Mobile)),
            ("iOS", Some(DeviceType::Mobile)),
            ("android\t", Some(DeviceType::Mobile)),
            ("phone", Some(DeviceType::Mobile)),
            ("iPad", Some(DeviceType::Tablet)),
            ("TABLET", Some(DeviceType::Tablet)),
            ("bot", Some(DeviceType::Bot)),
            ("Crawler", Some(DeviceType::Bot)),
            ("tv", Some(DeviceType::Other)),
            ("console", Some(DeviceType::Other)),
            ("other", Some(DeviceType::Other)),
            ("fridge", None),
            ("", None),
            ("desk top", None),
            ("smartphones", None),
            ("mobilé", None),
            ("ｍobile", None),
        ];
        for (name, expected) in cases {
            assert_eq!(DeviceType::parse(name), expected, "{name:?}");
        }
    }

    #[test]
    fn user_agents_are_classified() {
        let long = format!("Mozilla/5.0 (Linux; Android 14) {} Mobile Safari", "x".repeat(600));
        for (agent, expected) in [
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Mobile/15E148",
                DeviceType::Mobile,
            ),
            ("Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) Mobile/15E148", DeviceType::Tablet),
            ("Mozilla/5.0 (Linux; Android 14; SM-X710) Safari/537.36", DeviceType::Mobile),
            (
                "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
                DeviceType::Bot,
            ),
            ("Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/131.0 Mobile", DeviceType::Bot),
            ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0", DeviceType::Desktop),
            ("MOZILLA/5.0 (IPHONE)", DeviceType::Mobile),
            ("", DeviceType::Desktop),
            (long.as_str(), DeviceType::Mobile),
        ] {
            assert_eq!(DeviceType::from_user_agent(agent), expected, "{agent}");
        }
    }
}
