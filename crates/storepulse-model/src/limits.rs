//! The explicit size limits every event is checked against.
//!
//! They protect memory and disk from one bad client, and they are part of the API contract:
//! `GET /api/v1/limits` and the docs publish them. Changing a default is a breaking change.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest encoded JSON event (one array element or NDJSON line), in bytes.
    pub max_event_bytes: usize,
    /// Most events in one request.
    pub max_batch_events: usize,
    /// Longest identifier (event_id, user_id, product id, ...), in characters.
    pub max_id_chars: usize,
    /// Longest URL (page url, path, referrer), in characters.
    pub max_url_chars: usize,
    /// Longest other text (names, titles, user agents, queries), in characters.
    pub max_text_chars: usize,
    /// Most line items on one order, cart or list.
    pub max_items: usize,
    /// Largest `properties` / `traits` object, in bytes of JSON.
    pub max_properties_bytes: usize,
    /// Deepest category path (`A > B > C` is 3).
    pub max_category_depth: usize,
    /// Largest quantity on one line.
    pub max_quantity: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_event_bytes: 32 * 1024,
            max_batch_events: 10_000,
            max_id_chars: 128,
            max_url_chars: 2048,
            max_text_chars: 1024,
            max_items: 500,
            max_properties_bytes: 8 * 1024,
            max_category_depth: 5,
            max_quantity: 1_000_000,
        }
    }
}
