//! The native wire format: what `POST /api/v1/events` accepts, before validation.
//!
//! Every field is optional at this level so that one bad field never hides the others:
//! [`crate::decode`] reports type errors field by field, then [`crate::validate`] checks
//! presence and values. Unknown fields are refused (free-form data goes in `properties`),
//! which catches typos such as `usr_id` instead of silently dropping data.

use std::fmt;

use compact_str::{CompactString, ToCompactString};
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::money::DecimalAmount;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEvent {
    pub event_id: Option<CompactString>,
    #[serde(alias = "event_type")]
    pub r#type: Option<CompactString>,
    /// The name of a custom event.
    pub name: Option<CompactString>,
    pub timestamp: Option<RawTime>,
    pub store: Option<CompactString>,
    pub user_id: Option<CompactString>,
    pub anonymous_id: Option<CompactString>,
    pub session_id: Option<CompactString>,
    pub page: Option<RawPage>,
    pub marketing: Option<Box<RawMarketing>>,
    pub country: Option<CompactString>,
    pub device: Option<RawDevice>,
    /// The visitor's address, when a server sends on the visitor's behalf.
    pub ip: Option<CompactString>,
    pub product: Option<Box<RawProduct>>,
    pub order: Option<Box<RawOrder>>,
    pub items: Option<Vec<Option<RawProduct>>>,
    pub promotion: Option<Box<RawPromotion>>,
    /// The search query of a `search` event.
    pub query: Option<CompactString>,
    pub list: Option<Box<RawList>>,
    pub properties: Option<Box<RawValue>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPage {
    pub url: Option<CompactString>,
    pub path: Option<CompactString>,
    pub title: Option<CompactString>,
    pub referrer: Option<CompactString>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMarketing {
    pub utm_source: Option<CompactString>,
    pub utm_medium: Option<CompactString>,
    pub utm_campaign: Option<CompactString>,
    pub utm_term: Option<CompactString>,
    pub utm_content: Option<CompactString>,
    pub referrer_host: Option<CompactString>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDevice {
    pub r#type: Option<CompactString>,
    pub user_agent: Option<CompactString>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProduct {
    #[serde(alias = "product_id")]
    pub id: Option<CompactString>,
    pub name: Option<CompactString>,
    pub category: Option<CategoryPath>,
    pub brand: Option<CompactString>,
    pub variant: Option<CompactString>,
    pub price: Option<DecimalAmount>,
    pub quantity: Option<i64>,
    pub currency: Option<CompactString>,
    pub coupon: Option<CompactString>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOrder {
    #[serde(alias = "order_id")]
    pub id: Option<CompactString>,
    pub total: Option<DecimalAmount>,
    pub subtotal: Option<DecimalAmount>,
    pub tax: Option<DecimalAmount>,
    pub shipping: Option<DecimalAmount>,
    pub discount: Option<DecimalAmount>,
    pub coupon: Option<CompactString>,
    pub currency: Option<CompactString>,
    pub status: Option<CompactString>,
    pub customer_id: Option<CompactString>,
    pub sales_rep_id: Option<CompactString>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPromotion {
    #[serde(alias = "promotion_id")]
    pub id: Option<CompactString>,
    pub name: Option<CompactString>,
    pub creative: Option<CompactString>,
    pub position: Option<RawText>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawList {
    #[serde(alias = "list_id")]
    pub id: Option<CompactString>,
    pub category: Option<CompactString>,
}

/// A time as sent: RFC 3339 text or a Unix number (seconds, ms, µs or ns by magnitude).
#[derive(Clone, Debug, PartialEq)]
pub enum RawTime {
    /// Text, already parsed while decoding (no copy of the text is kept); `None` when it is
    /// not a time.
    Text(Option<crate::time::Timestamp>),
    Integer(i64),
    Float(f64),
}

impl<'de> Deserialize<'de> for RawTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TimeVisitor;
        impl Visitor<'_> for TimeVisitor {
            type Value = RawTime;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("an RFC 3339 time or a Unix timestamp number")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<RawTime, E> {
                Ok(RawTime::Text(crate::time::parse_timestamp_text(value)))
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<RawTime, E> {
                Ok(RawTime::Integer(value))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<RawTime, E> {
                i64::try_from(value)
                    .map(RawTime::Integer)
                    .map_err(|_| E::custom("timestamp number is too large"))
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<RawTime, E> {
                Ok(RawTime::Float(value))
            }
        }
        deserializer.deserialize_any(TimeVisitor)
    }
}

/// A category path: `"Apparel > Shoes > Running"` or `["Apparel", "Shoes", "Running"]`.
#[derive(Clone, Debug, PartialEq)]
pub struct CategoryPath(pub Vec<CompactString>);

impl<'de> Deserialize<'de> for CategoryPath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CategoryVisitor;
        impl<'de> Visitor<'de> for CategoryVisitor {
            type Value = CategoryPath;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a category path like \"A > B > C\" or an array of names")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<CategoryPath, E> {
                Ok(CategoryPath(split_category_path(value)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<CategoryPath, A::Error> {
                let mut levels = Vec::new();
                while let Some(level) = seq.next_element::<CompactString>()? {
                    levels.push(level.trim().into());
                }
                Ok(CategoryPath(levels))
            }
        }
        deserializer.deserialize_any(CategoryVisitor)
    }
}

/// Splits `A > B > C` (also `A/B/C`) into trimmed levels.
pub fn split_category_path(text: &str) -> Vec<CompactString> {
    let separator = if text.contains('>') { '>' } else { '/' };
    text.split(separator)
        .map(|level| CompactString::from(level.trim()))
        .filter(|l| !l.is_empty())
        .collect()
}

/// Text that senders sometimes write as a number (promotion positions, ids in seed systems).
#[derive(Clone, Debug, PartialEq)]
pub struct RawText(pub CompactString);

impl<'de> Deserialize<'de> for RawText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl Visitor<'_> for TextVisitor {
            type Value = RawText;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a string or a number")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<RawText, E> {
                Ok(RawText(value.into()))
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<RawText, E> {
                Ok(RawText(value.to_compact_string()))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<RawText, E> {
                Ok(RawText(value.to_compact_string()))
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<RawText, E> {
                Ok(RawText(value.to_compact_string()))
            }
        }
        deserializer.deserialize_any(TextVisitor)
    }
}
