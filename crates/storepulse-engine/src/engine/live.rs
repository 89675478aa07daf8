//! Live answers: the realtime figures, seed 3's active users and sessions, seed 4's buys.

use super::query::lookup;
use super::*;

/// Live filters as text, as a front end receives them.
#[derive(Clone, Debug, Default)]
pub struct RealtimeFilter {
    pub store: Option<String>,
    pub country: Option<String>,
    pub device: Option<storepulse_model::event::DeviceType>,
    /// Applies to the commerce figures (visitors have no category).
    pub category: Option<String>,
}

/// `GET /api/v1/realtime`.
#[derive(Clone, Debug, Serialize)]
pub struct Realtime {
    pub as_of: String,
    pub active_users: u64,
    pub active_sessions: u64,
    pub avg_sessions_per_user: f64,
    pub page_views: u64,
    /// Page → views, largest first (seed 3's shape: an ordered object).
    #[serde(serialize_with = "ordered_map")]
    pub top_pages: Vec<(String, u64)>,
    pub windows: RealtimeWindows,
    pub commerce: LiveCommerce,
}

#[derive(Clone, Debug, Serialize)]
pub struct RealtimeWindows {
    pub active_seconds: i64,
    pub page_views_seconds: i64,
    pub commerce_seconds: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct LiveCommerce {
    pub currency: String,
    pub gross_revenue: String,
    pub orders: u64,
    pub units: u64,
    pub cart_adds: u64,
    pub checkouts_started: u64,
}

fn ordered_map<S: serde::Serializer>(
    pairs: &[(String, u64)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = serializer.serialize_map(Some(pairs.len()))?;
    for (key, value) in pairs {
        map.serialize_entry(key, value)?;
    }
    map.end()
}

/// Buys (purchases that carry a promotion) overall and in a trailing window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuyStats {
    pub total: BuyTotals,
    pub recent: BuyTotals,
}

impl Engine {
    pub(super) fn live_filter(&self, filter: &RealtimeFilter) -> Option<LiveFilter> {
        Some(LiveFilter {
            store: lookup(filter.store.as_deref(), |s| self.dims.stores.get(s))?,
            country: lookup(filter.country.as_deref(), |c| {
                self.dims.countries.get(&c.to_ascii_uppercase())
            })?,
            device: filter.device.map(|device| device_code(Some(device))),
        })
    }

    /// Live figures as of `now`.
    pub fn realtime(
        &self,
        now: Timestamp,
        filter: &RealtimeFilter,
        top: usize,
        currency: Currency,
    ) -> Realtime {
        let live = self.live_filter(filter);
        let (active_users, active_sessions) =
            live.map_or((0, 0), |live| self.live.active_counts(now.0, &live));
        let (page_views, top_pages) = live.map_or((0, Vec::new()), |live| {
            let (total, top) = self.live.page_views(now.0, &live, top);
            (total, top.into_iter().map(|(page, views)| (page.to_owned(), views)).collect())
        });
        let commerce_filters = Filters {
            store: filter.store.clone(),
            country: filter.country.clone(),
            device: filter.device,
            category: filter.category.clone(),
            ..Filters::default()
        };
        let commerce = self.sum(
            now.0 - self.config.commerce_window_ms,
            now.0 + 1,
            &commerce_filters,
            currency,
        );
        Realtime {
            as_of: now.to_rfc3339(),
            active_users,
            active_sessions,
            avg_sessions_per_user: if active_users == 0 {
                0.0
            } else {
                round2(active_sessions as f64 / active_users as f64)
            },
            page_views,
            top_pages,
            windows: RealtimeWindows {
                active_seconds: self.config.active_window_ms / 1000,
                page_views_seconds: self.config.page_window_ms / 1000,
                commerce_seconds: self.config.commerce_window_ms / 1000,
            },
            commerce: LiveCommerce {
                currency: currency.code().to_owned(),
                gross_revenue: Money::wide_decimal_string(
                    commerce.measures.gross_revenue,
                    currency,
                ),
                orders: commerce.measures.orders,
                units: commerce.measures.units,
                cart_adds: commerce.measures.cart_adds,
                checkouts_started: commerce.measures.checkouts,
            },
        }
    }

    /// Ids of the visitors active as of `now` (seed 3's `/users/active`), sorted.
    pub fn active_visitors(&self, now: Timestamp, filter: &RealtimeFilter) -> Vec<String> {
        self.live_filter(filter).map_or_else(Vec::new, |live| {
            self.live.active_visitors(now.0, &live).into_iter().map(str::to_owned).collect()
        })
    }

    /// Active sessions of one visitor as of `now` (seed 3's `/users/{id}/sessions`), in the
    /// store, country and device `filter` names (its category does not apply).
    pub fn visitor_active_sessions(
        &self,
        now: Timestamp,
        visitor: &str,
        filter: &RealtimeFilter,
    ) -> u64 {
        let Some(live) = self.live_filter(filter) else { return 0 };
        // The visitor of each store with that id (one, with a store filter).
        let hash = hash_id(visitor);
        let stores = match live.store {
            Some(store) => store..=store,
            None => 1..=self.dims.stores.len() as u32,
        };
        stores
            .map(|store| self.live.visitor_active_sessions(now.0, in_store(hash, store), &live))
            .sum()
    }

    /// Promotion buys: all of them, and those with an event time at or after `since`.
    pub fn buy_stats(&self, since: Timestamp) -> BuyStats {
        BuyStats { total: self.buys.total(), recent: self.buys.since(since.0) }
    }
}
