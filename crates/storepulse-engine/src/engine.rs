//! The engine: applies events in any order and answers queries as of a time passed in.

use std::collections::BTreeMap;

use crate::FastMap;

use compact_str::CompactString;
use serde::Serialize;
use storepulse_model::event::{Event, EventType};
use storepulse_model::money::{Currency, Money};
use storepulse_model::time::Timestamp;

use crate::buys::{BuyLedger, BuyTotals};
use crate::category_trends::{TrendRow, change};
use crate::distinct::{DailyDistinct, DistinctSets, SessionSignal, hash_id};
use crate::facts::{
    Dimensions, FactKey, Measures, OrderRecord, currency_bytes, device_code, device_from_code,
    rows_of,
};
use crate::funnel::{FunnelLog, FunnelSpec, FunnelSplit, FunnelSteps};
use crate::live::{LiveFilter, LiveWindows, Place, Sighting};
use crate::query::{
    Dimension, Filters, Granularity, MAX_GROUPS, MAX_SERIES_POINTS, Metric, QueryError, QuerySpec,
    Trend, Value, growth_percent, round2, round4,
};
use crate::recommend::CoOccurrence;
use crate::rollup::{DAY_MS, HOUR_MS, MINUTE_MS, RollupRetention, Rollups};
use crate::trending::TrendingWeights;

/// Window lengths and retention.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EngineConfig {
    /// A visitor or session is active for this long after its latest event (seed 3: 5 min).
    pub active_window_ms: i64,
    /// Page views and top pages cover this long (seed 3: 15 min).
    pub page_window_ms: i64,
    /// The live commerce figures (revenue, orders, carts) cover this long.
    pub commerce_window_ms: i64,
    pub retention: RollupRetention,
    /// How long a session's trail is kept for funnels after its last event.
    pub funnel_retention_ms: i64,
    /// How long an order is remembered so that a refund naming only its id takes back what
    /// it bought; a refund after that needs an amount or lines.
    pub order_memory_ms: i64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            active_window_ms: 5 * MINUTE_MS,
            page_window_ms: 15 * MINUTE_MS,
            commerce_window_ms: HOUR_MS,
            retention: RollupRetention::default(),
            funnel_retention_ms: 30 * DAY_MS,
            order_memory_ms: 180 * DAY_MS,
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
pub struct Engine {
    config: EngineConfig,
    dims: Dimensions,
    orders: FastMap<(u32, CompactString), OrderRecord>,
    rollups: Rollups,
    live: LiveWindows,
    buys: BuyLedger,
    together: CoOccurrence,
    distinct: DailyDistinct,
    funnels: FunnelLog,
    /// Latest event time applied.
    newest_ms: i64,
    applied: u64,
    /// The event log offset after the last applied event: replay after a snapshot starts here.
    log_position: u64,
    #[serde(skip)]
    scratch: Vec<(FactKey, Measures)>,
}

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

/// A funnel overall and per group.
#[derive(Clone, Debug, Serialize)]
pub struct FunnelResult {
    pub overall: FunnelSteps,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<FunnelGroup>,
}

#[derive(Clone, Debug, Serialize)]
pub struct FunnelGroup {
    pub key: Option<String>,
    #[serde(flatten)]
    pub funnel: FunnelSteps,
}

/// A product with a score (trending) or a co-occurrence count (recommendations).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScoredProduct {
    pub product_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub score: f64,
}

/// Buys (purchases that carry a promotion) overall and in a trailing window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuyStats {
    pub total: BuyTotals,
    pub recent: BuyTotals,
}

/// What the engine holds, for `/health`, `/metrics` and the docs' memory figures.
#[derive(Clone, Debug, Serialize)]
pub struct EngineStats {
    pub events_applied: u64,
    pub newest_event_time: Option<String>,
    pub active_visitors_tracked: usize,
    pub active_sessions_tracked: usize,
    pub rollup_rows: [usize; 3],
    pub rollup_buckets: [usize; 3],
    pub products: usize,
    pub orders_remembered: usize,
    pub approx_memory_bytes: usize,
}

/// The answer to a [`QuerySpec`].
#[derive(Clone, Debug, Serialize)]
pub struct QueryResult {
    pub from: String,
    pub to: String,
    pub currency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub granularity: Option<Granularity>,
    pub totals: BTreeMap<&'static str, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<Comparison>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub trend: BTreeMap<&'static str, Trend>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub series: Vec<SeriesPoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_by: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Group>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    pub from: String,
    pub to: String,
    pub totals: BTreeMap<&'static str, Value>,
    /// Per metric: `(current − previous) / previous × 100`, null when previous is 0.
    pub growth_percent: BTreeMap<&'static str, Option<f64>>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SeriesPoint {
    pub start: String,
    pub values: BTreeMap<&'static str, Value>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Group {
    /// The dimension value (`null` for events without one).
    pub key: Option<String>,
    /// A readable name when known (products).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub values: BTreeMap<&'static str, Value>,
}

/// Measures summed under a currency: money only from rows in that currency.
#[derive(Clone, Debug, Default)]
struct Sum {
    measures: Measures,
    /// Orders whose amounts are in the query's currency (the divisor of an average).
    orders_in_currency: u64,
    /// Merged only when a query asks for a distinct metric.
    distinct: DistinctSets,
}

impl Sum {
    fn add(&mut self, key: &FactKey, measures: &Measures, currency: [u8; 3]) {
        if key.currency == currency {
            self.measures.add(measures);
            self.orders_in_currency += measures.orders;
        } else {
            self.measures.add(&measures.without_money());
        }
    }
}

impl Engine {
    pub fn new(config: EngineConfig) -> Self {
        Self {
            config,
            dims: Dimensions::default(),
            orders: FastMap::default(),
            rollups: Rollups::new(config.retention),
            live: LiveWindows::new(config.active_window_ms, config.page_window_ms),
            buys: BuyLedger::default(),
            together: CoOccurrence::new(30 * DAY_MS),
            distinct: DailyDistinct::default(),
            funnels: FunnelLog::new(config.funnel_retention_ms),
            newest_ms: i64::MIN,
            applied: 0,
            log_position: 0,
            scratch: Vec::new(),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Adds one accepted event. Order does not matter for the rollups; the live windows
    /// ignore events already outside them.
    pub fn apply(&mut self, event: &Event) {
        let time = event.event_time.0;
        self.newest_ms = self.newest_ms.max(time);
        let mut rows = std::mem::take(&mut self.scratch);
        rows_of(event, &mut self.dims, &mut self.orders, &mut rows);
        self.rollups.add(time, &rows);
        let key = rows[0].0;
        let page_view = (event.event_type == EventType::PageView)
            .then_some(event.page.as_ref())
            .flatten()
            .and_then(|page| page.path.as_deref().or(page.url.as_deref()));
        // Each id is hashed once for every map and sketch it goes into.
        let visitor = event.visitor_id().map(|id| (id, hash_id(id)));
        let session = event.session_id.as_deref().map(hash_id);
        self.live.observe(
            &Sighting {
                time_ms: time,
                place: Place { store: key.store, country: key.country, device: key.device },
                visitor,
                session,
                page_view,
            },
            self.newest_ms,
        );
        let signal = match event.event_type {
            EventType::Purchase => SessionSignal::Purchase,
            EventType::AddToCart => SessionSignal::Cart,
            _ => SessionSignal::Other,
        };
        self.distinct.observe(time, key, visitor.map(|(_, hash)| hash), session, signal);
        if let Some(session) = session {
            let mut products: Vec<u32> = rows[1..].iter().map(|(key, _)| key.product).collect();
            products.dedup();
            self.funnels.observe(
                session,
                key.store,
                key.country,
                time,
                event.event_type,
                &products,
            );
        }
        if let Some((_, visitor)) = visitor {
            // Product rows follow the event row; each names one product the visitor met.
            for (key, _) in &rows[1..] {
                self.together.observe(visitor, key.product, time);
            }
        }
        if event.event_type == EventType::Purchase && event.promotion.is_some() {
            self.buys.record(time, rows[0].1.units);
        }
        self.applied += 1;
        self.scratch = rows;
    }

    /// Drops what no window or retention keeps any more, as of `now`.
    pub fn prune(&mut self, now: Timestamp) {
        self.prune_live(now);
        self.prune_history(now);
    }

    /// The frequent, cheap part of [`Engine::prune`]: live windows and rollup buckets; costs
    /// what expired, not what is held.
    pub fn prune_live(&mut self, now: Timestamp) {
        self.live.prune(now.0);
        self.rollups.prune(now.0);
    }

    /// The rare part of [`Engine::prune`]: retention measured in days (visitor item sets,
    /// funnel trails, remembered orders, distinct sketches); walks those maps.
    pub fn prune_history(&mut self, now: Timestamp) {
        self.together.prune(now.0);
        self.funnels.prune(now.0);
        let orders_from = now.0 - self.config.order_memory_ms;
        self.orders.retain(|_, order| order.time_ms >= orders_from);
        if self.config.retention.days_ms > 0 {
            self.distinct.prune_before(now.0 - self.config.retention.days_ms);
        }
    }

    /// The `k` products with the highest decayed weighted score as of `now` (see
    /// [`crate::trending`]), filtered like any query (store, country, device, category, …).
    pub fn trending(
        &self,
        now: Timestamp,
        weights: &TrendingWeights,
        filters: &Filters,
        k: usize,
    ) -> Vec<ScoredProduct> {
        let Some(mut matcher) = self.matcher(filters, None) else { return Vec::new() };
        matcher.product_level = true;
        let half_life = weights.half_life_ms();
        let horizon = (20.0 * half_life).min(1e15) as i64;
        let now_ms = now.0;
        let mut scores: FastMap<u32, f64> = FastMap::default();
        let mut add = |span: crate::rollup::Span, rows: &FastMap<FactKey, Measures>| {
            let middle = span.start + span.width_ms / 2;
            let age = (now_ms - middle).max(0) as f64;
            let decay = (-age / half_life).exp2();
            for (key, m) in rows {
                if matcher.admits(key, &self.dims) {
                    let weighted = weights.view * m.product_views as f64
                        + weights.cart * m.cart_adds as f64
                        + weights.checkout * m.checkouts as f64
                        + weights.purchase * m.orders as f64;
                    *scores.entry(key.product).or_default() += weighted * decay;
                }
            }
        };
        // Hours (and minutes at the edges) for the last week, days before that.
        let week_ago = now_ms - 7 * DAY_MS;
        let end = now_ms + MINUTE_MS;
        if now_ms - horizon < week_ago {
            self.rollups.scan(now_ms - horizon, week_ago, DAY_MS, &mut add);
        }
        self.rollups.scan((now_ms - horizon).max(week_ago), end, HOUR_MS, &mut add);
        let mut ranked: Vec<(u32, f64)> =
            scores.into_iter().filter(|(_, score)| *score > 0.0).collect();
        ranked.sort_unstable_by(|a, b| {
            b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal).then(a.0.cmp(&b.0))
        });
        ranked.truncate(k);
        ranked.into_iter().map(|(id, score)| self.scored(id, round4(score))).collect()
    }

    fn scored(&self, id: u32, score: f64) -> ScoredProduct {
        ScoredProduct {
            product_id: self.dims.products.name(id).unwrap_or_default().to_owned(),
            name: self.dims.product_names.get(&id).map(|name| name.to_string()),
            score,
        }
    }

    /// Category trend rows as of `now` (see [`crate::category_trends`]): for each category at
    /// levels 1–3 and each country, revenue (in `currency`) of the last day, 7 days and 30
    /// days against the period before each.
    pub fn category_trend_rows(&self, now: Timestamp, currency: Currency) -> Vec<TrendRow> {
        let money = currency_bytes(currency);
        let matcher = RowMatcher { product_level: true, ..RowMatcher::any() };
        // (category id, country id) → [day, previous day, week, previous week, month, previous month]
        let mut sums: FastMap<(u32, u32), [i64; 6]> = FastMap::default();
        for (index, length) in [DAY_MS, 7 * DAY_MS, 30 * DAY_MS].into_iter().enumerate() {
            for (slot, from) in [(2 * index, now.0 - length), (2 * index + 1, now.0 - 2 * length)] {
                self.rollups.scan(from, from + length, DAY_MS, |_, rows| {
                    for (key, measures) in rows {
                        if key.currency != money || !matcher.admits(key, &self.dims) {
                            continue;
                        }
                        for category in self.dims.categories_of(key.product).iter().take(3) {
                            sums.entry((*category, key.country)).or_default()[slot] +=
                                measures.gross_revenue;
                        }
                    }
                });
            }
        }
        let date = now.to_rfc3339().chars().take(10).collect::<String>();
        let scale = 10f64.powi(currency.exponent() as i32);
        let mut rows: Vec<TrendRow> = sums
            .into_iter()
            .filter_map(|((category, country), sums)| {
                let path = self.dims.categories.name(category)?;
                let mut levels = path.split(" > ").map(str::to_owned);
                Some(TrendRow {
                    event_date: date.clone(),
                    country: self.dims.countries.name(country).unwrap_or("unknown").to_owned(),
                    category_level_1: levels.next()?,
                    category_level_2: levels.next(),
                    category_level_3: levels.next(),
                    revenue_week: Some(sums[2] as f64 / scale),
                    revenue_daily_change: change(sums[0], sums[1]),
                    revenue_weekly_change: change(sums[2], sums[3]),
                    revenue_monthly_change: change(sums[4], sums[5]),
                    commission_daily_change: None,
                    commission_weekly_change: None,
                    commission_monthly_change: None,
                    score: 0.0,
                })
            })
            .collect();
        rows.sort_by(|a, b| {
            (&a.category_level_1, &a.category_level_2, &a.category_level_3, &a.country).cmp(&(
                &b.category_level_1,
                &b.category_level_2,
                &b.category_level_3,
                &b.country,
            ))
        });
        rows
    }

    /// Runs a funnel over sessions whose first step falls in the spec's range. Groups are
    /// largest first (by sessions at the first step), at most `limit`.
    pub fn funnel(
        &self,
        spec: &FunnelSpec,
        split: FunnelSplit,
        filters: &RealtimeFilter,
        limit: usize,
    ) -> FunnelResult {
        let live = self.live_filter(filters);
        let Some(live) = live else {
            return FunnelResult {
                overall: FunnelSteps::from_counts(&spec.steps, &vec![0; spec.steps.len()]),
                groups: Vec::new(),
            };
        };
        let group_of = |product: u32| -> Option<u32> {
            match split {
                FunnelSplit::Product => Some(product),
                FunnelSplit::Category(level) => {
                    self.dims.categories_of(product).get(usize::from(level) - 1).copied()
                }
                _ => None,
            }
        };
        let groups = self.funnels.run(spec, split, live.store, live.country, group_of);
        let overall_counts = if split == FunnelSplit::None || split == FunnelSplit::Country {
            let mut overall = vec![0; spec.steps.len()];
            for counts in groups.values() {
                for (total, count) in overall.iter_mut().zip(counts) {
                    *total += count;
                }
            }
            overall
        } else {
            self.funnels
                .run(spec, FunnelSplit::None, live.store, live.country, |_| None)
                .remove(&0)
                .unwrap_or_else(|| vec![0; spec.steps.len()])
        };
        let mut ranked: Vec<(u32, Vec<u64>)> =
            if split == FunnelSplit::None { Vec::new() } else { groups.into_iter().collect() };
        ranked.sort_by(|a, b| b.1[0].cmp(&a.1[0]).then(a.0.cmp(&b.0)));
        ranked.truncate(limit);
        let name = |id: u32| -> Option<String> {
            match split {
                FunnelSplit::Country => self.dims.countries.name(id),
                FunnelSplit::Product => self.dims.products.name(id),
                FunnelSplit::Category(_) => self.dims.categories.name(id),
                FunnelSplit::None => None,
            }
            .map(str::to_owned)
        };
        FunnelResult {
            overall: FunnelSteps::from_counts(&spec.steps, &overall_counts),
            groups: ranked
                .into_iter()
                .map(|(id, counts)| FunnelGroup {
                    key: name(id),
                    funnel: FunnelSteps::from_counts(&spec.steps, &counts),
                })
                .collect(),
        }
    }

    /// Products met together with `product` by the most visitors.
    pub fn together_with_product(&self, product: &str, k: usize) -> Option<Vec<ScoredProduct>> {
        let id = self.dims.products.get(product)?;
        Some(
            self.together
                .for_product(id, k)
                .into_iter()
                .map(|(id, count)| self.scored(id, f64::from(count)))
                .collect(),
        )
    }

    /// Recommendations for a visitor from what it met (seed 5's item-item scoring), excluding
    /// those products; `None` when the visitor is unknown.
    pub fn recommend_for_visitor(&self, visitor: &str, k: usize) -> Option<Vec<ScoredProduct>> {
        if self.together.visitor_items(visitor).is_empty() {
            return None;
        }
        Some(
            self.together
                .for_visitor(visitor, k)
                .into_iter()
                .map(|(id, count)| self.scored(id, f64::from(count)))
                .collect(),
        )
    }

    pub fn events_applied(&self) -> u64 {
        self.applied
    }

    /// The log offset after the last event applied (see [`crate::snapshot`]).
    pub fn log_position(&self) -> u64 {
        self.log_position
    }

    /// Records that every log record before `offset` has been applied.
    pub fn set_log_position(&mut self, offset: u64) {
        self.log_position = self.log_position.max(offset);
    }

    /// Takes windows and retention from `config` (after loading a snapshot written under
    /// another configuration); the next [`Engine::prune`] applies the new retention.
    pub fn reconfigure(&mut self, config: EngineConfig) {
        self.config = config;
        self.rollups.set_retention(config.retention);
        self.live.set_windows(config.active_window_ms, config.page_window_ms);
        self.funnels.set_retention(config.funnel_retention_ms);
    }

    fn live_filter(&self, filter: &RealtimeFilter) -> Option<LiveFilter> {
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
                gross_revenue: Money::new(commerce.measures.gross_revenue, currency)
                    .to_decimal_string(),
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

    /// Active sessions of one visitor as of `now` (seed 3's `/users/{id}/sessions`).
    pub fn visitor_active_sessions(&self, now: Timestamp, visitor: &str) -> u64 {
        self.live.visitor_active_sessions(now.0, visitor)
    }

    /// Promotion buys: all of them, and those with an event time at or after `since`.
    pub fn buy_stats(&self, since: Timestamp) -> BuyStats {
        BuyStats { total: self.buys.total(), recent: self.buys.since(since.0) }
    }

    pub fn stats(&self) -> EngineStats {
        let (visitors, sessions, _) = self.live.sizes();
        let sizes = self.rollups.sizes();
        let rows: usize = sizes.iter().map(|(_, rows)| rows).sum();
        let row_bytes = std::mem::size_of::<(FactKey, Measures)>() + 8;
        let memory = rows * row_bytes
            + self.live.heap_bytes()
            + self.buys.heap_bytes()
            + self.orders.len() * (64 + std::mem::size_of::<OrderRecord>())
            + self.together.heap_bytes()
            + self.distinct.heap_bytes()
            + self.funnels.heap_bytes()
            + [
                &self.dims.stores,
                &self.dims.countries,
                &self.dims.sources,
                &self.dims.promotions,
                &self.dims.sales_reps,
                &self.dims.products,
                &self.dims.categories,
            ]
            .iter()
            .map(|interner| interner.heap_bytes())
            .sum::<usize>();
        EngineStats {
            events_applied: self.applied,
            newest_event_time: (self.newest_ms != i64::MIN)
                .then(|| Timestamp(self.newest_ms).to_rfc3339()),
            active_visitors_tracked: visitors,
            active_sessions_tracked: sessions,
            rollup_rows: sizes.map(|(_, rows)| rows),
            rollup_buckets: sizes.map(|(buckets, _)| buckets),
            products: self.dims.products.len(),
            orders_remembered: self.orders.len(),
            approx_memory_bytes: memory,
        }
    }

    /// Totals over `[from, to)` with filters (no series, no groups).
    fn sum(&self, from: i64, to: i64, filters: &Filters, currency: Currency) -> Sum {
        let mut sum = Sum::default();
        let Some(matcher) = self.matcher(filters, None) else { return sum };
        let currency = currency_bytes(currency);
        self.rollups.scan(from, to, DAY_MS, |_, rows| {
            for (key, measures) in rows {
                if matcher.admits(key, &self.dims) {
                    sum.add(key, measures, currency);
                }
            }
        });
        sum
    }

    /// Resolves text filters to ids; `None` when a filter names a value never seen (nothing
    /// can match).
    fn matcher(&self, filters: &Filters, group_by: Option<Dimension>) -> Option<RowMatcher> {
        let dims = &self.dims;
        Some(RowMatcher {
            product_level: filters.is_product_level()
                || group_by.is_some_and(Dimension::is_product_level),
            store: lookup(filters.store.as_deref(), |s| dims.stores.get(s))?,
            country: lookup(filters.country.as_deref(), |c| {
                dims.countries.get(&c.to_ascii_uppercase())
            })?,
            device: filters.device.map(|device| device_code(Some(device))),
            source: lookup(filters.source.as_deref(), |s| dims.sources.get(s))?,
            promotion: lookup(filters.promotion.as_deref(), |p| dims.promotions.get(p))?,
            sales_rep: lookup(filters.sales_rep.as_deref(), |r| dims.sales_reps.get(r))?,
            product: lookup(filters.product.as_deref(), |p| dims.products.get(p))?,
            category: lookup(filters.category.as_deref(), |c| {
                dims.categories.get(&normalize_category(c))
            })?,
        })
    }

    /// Runs a query.
    pub fn query(&self, spec: &QuerySpec) -> Result<QueryResult, QueryError> {
        let (from, to) = (spec.from.0, spec.to.0);
        if spec.metrics.is_empty() {
            return Err(QueryError::new("metrics", "name at least one metric"));
        }
        if from >= to {
            return Err(QueryError::new("to", "must be after `from`"));
        }
        if spec.limit == 0 || spec.limit > MAX_GROUPS {
            return Err(QueryError::new("limit", format!("must be 1..={MAX_GROUPS}")));
        }
        let distinct = spec.metrics.iter().any(|metric| metric.is_distinct());
        // Distinct sketches are daily, so their implicit series (for trends) is too.
        let series_granularity = spec.granularity.unwrap_or(if distinct {
            Granularity::Day
        } else {
            auto_granularity(to - from)
        });
        let points = series_points(from, to, series_granularity);
        if points.len() > MAX_SERIES_POINTS {
            return Err(QueryError::new(
                "granularity",
                format!(
                    "{} points; at most {MAX_SERIES_POINTS} per query, choose a coarser granularity or a shorter range",
                    points.len()
                ),
            ));
        }
        let width = granularity_width(series_granularity);
        if self.rollups.finest_width_at(from) > width {
            return Err(QueryError::new(
                "granularity",
                format!(
                    "data from {} is only kept in {} buckets; choose a coarser granularity",
                    spec.from.to_rfc3339(),
                    width_name(self.rollups.finest_width_at(from))
                ),
            ));
        }
        if distinct {
            if spec.filters.is_product_level()
                || spec.group_by.is_some_and(Dimension::is_product_level)
            {
                return Err(QueryError::new(
                    "metrics",
                    "visitors, sessions, conversion and cart metrics are counted per visit, not per product: leave out the product/category filter or group-by, or ask for them separately",
                ));
            }
            if width < DAY_MS {
                return Err(QueryError::new(
                    "granularity",
                    "distinct metrics (visitors, sessions, conversion, carts, buyers) are kept per UTC day; use day, week or month",
                ));
            }
        }
        let currency = currency_bytes(spec.currency);
        let mut totals = Sum::default();
        let mut series = vec![Sum::default(); points.len()];
        let mut groups: FastMap<u32, Sum> = FastMap::default();
        if let Some(matcher) = self.matcher(&spec.filters, spec.group_by) {
            self.rollups.scan(from, to, width.min(DAY_MS), |span, rows| {
                let point = points.partition_point(|p| *p <= span.start).saturating_sub(1);
                for (key, measures) in rows {
                    if !matcher.admits(key, &self.dims) {
                        continue;
                    }
                    totals.add(key, measures, currency);
                    series[point].add(key, measures, currency);
                    if let Some(dimension) = spec.group_by {
                        let group = group_key(dimension, key, &self.dims);
                        groups.entry(group).or_default().add(key, measures, currency);
                    }
                }
            });
            if distinct {
                self.distinct.scan(from, to, |day, key, sets| {
                    if !matcher.admits(key, &self.dims) {
                        return;
                    }
                    let point = points.partition_point(|p| *p <= day).saturating_sub(1);
                    totals.distinct.merge(sets);
                    series[point].distinct.merge(sets);
                    if let Some(dimension) = spec.group_by {
                        let group = group_key(dimension, key, &self.dims);
                        groups.entry(group).or_default().distinct.merge(sets);
                    }
                });
            }
        }
        let values = |sum: &Sum| metric_values(&spec.metrics, sum, spec.currency);
        let mut result = QueryResult {
            from: spec.from.to_rfc3339(),
            to: spec.to.to_rfc3339(),
            currency: spec.currency.code().to_owned(),
            granularity: spec.granularity,
            totals: values(&totals),
            previous: None,
            trend: BTreeMap::new(),
            series: Vec::new(),
            group_by: spec.group_by.map(Dimension::name),
            groups: Vec::new(),
        };
        if spec.granularity.is_some() {
            result.series = points
                .iter()
                .zip(&series)
                .map(|(start, sum)| SeriesPoint {
                    start: Timestamp(*start).to_rfc3339(),
                    values: values(sum),
                })
                .collect();
        }
        if let Some(dimension) = spec.group_by {
            let first = spec.metrics[0];
            let mut ranked: Vec<(Option<String>, u32, Sum)> = groups
                .into_iter()
                .map(|(id, sum)| (group_name(dimension, id, &self.dims), id, sum))
                .collect();
            // Largest first by the first metric; ties by name, so answers are stable.
            ranked.sort_by(|a, b| {
                metric_number(first, &b.2)
                    .partial_cmp(&metric_number(first, &a.2))
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then_with(|| a.0.cmp(&b.0))
            });
            ranked.truncate(spec.limit);
            result.groups = ranked
                .into_iter()
                .map(|(key, id, sum)| Group {
                    key,
                    label: (dimension == Dimension::Product)
                        .then(|| self.dims.product_names.get(&id).map(|name| name.to_string()))
                        .flatten(),
                    values: values(&sum),
                })
                .collect();
        }
        if spec.compare {
            let length = to - from;
            let previous = self.sum_filtered(from - length, from, spec);
            result.previous = Some(Comparison {
                from: Timestamp(from - length).to_rfc3339(),
                to: spec.from.to_rfc3339(),
                totals: values(&previous),
                growth_percent: spec
                    .metrics
                    .iter()
                    .map(|metric| {
                        (
                            metric.name(),
                            growth_percent(
                                metric_number(*metric, &totals),
                                metric_number(*metric, &previous),
                            ),
                        )
                    })
                    .collect(),
            });
            result.trend = spec
                .metrics
                .iter()
                .map(|metric| {
                    let numbers: Vec<f64> =
                        series.iter().map(|sum| metric_number(*metric, sum)).collect();
                    (metric.name(), Trend::of(&numbers))
                })
                .collect();
        }
        Ok(result)
    }

    fn sum_filtered(&self, from: i64, to: i64, spec: &QuerySpec) -> Sum {
        let mut sum = Sum::default();
        let Some(matcher) = self.matcher(&spec.filters, spec.group_by) else { return sum };
        let currency = currency_bytes(spec.currency);
        self.rollups.scan(from, to, DAY_MS, |_, rows| {
            for (key, measures) in rows {
                if matcher.admits(key, &self.dims) {
                    sum.add(key, measures, currency);
                }
            }
        });
        if spec.metrics.iter().any(|metric| metric.is_distinct()) {
            self.distinct.scan(from, to, |_, key, sets| {
                if matcher.admits(key, &self.dims) {
                    sum.distinct.merge(sets);
                }
            });
        }
        sum
    }

    /// The rollups, for tests and snapshots.
    pub fn rollups(&self) -> &Rollups {
        &self.rollups
    }
}

/// `Some(None)` for no filter, `Some(Some(id))` for a known value, `None` for an unknown one.
fn lookup(value: Option<&str>, find: impl Fn(&str) -> Option<u32>) -> Option<Option<u32>> {
    match value {
        None => Some(None),
        Some(value) => find(value).map(Some),
    }
}

/// `"Apparel>Shoes"`, `"Apparel / Shoes"` → `"Apparel > Shoes"`.
pub fn normalize_category(path: &str) -> String {
    storepulse_model::raw::split_category_path(path)
        .iter()
        .map(|level| level.as_str())
        .collect::<Vec<_>>()
        .join(" > ")
}

struct RowMatcher {
    product_level: bool,
    store: Option<u32>,
    country: Option<u32>,
    device: Option<u8>,
    source: Option<u32>,
    promotion: Option<u32>,
    sales_rep: Option<u32>,
    product: Option<u32>,
    category: Option<u32>,
}

impl RowMatcher {
    /// Matches every row of its level (event rows; set `product_level` for product rows).
    fn any() -> Self {
        Self {
            product_level: false,
            store: None,
            country: None,
            device: None,
            source: None,
            promotion: None,
            sales_rep: None,
            product: None,
            category: None,
        }
    }

    fn admits(&self, key: &FactKey, dims: &Dimensions) -> bool {
        (key.product != 0) == self.product_level
            && self.store.is_none_or(|id| id == key.store)
            && self.country.is_none_or(|id| id == key.country)
            && self.device.is_none_or(|id| id == key.device)
            && self.source.is_none_or(|id| id == key.source)
            && self.promotion.is_none_or(|id| id == key.promotion)
            && self.sales_rep.is_none_or(|id| id == key.sales_rep)
            && self.product.is_none_or(|id| id == key.product)
            && self.category.is_none_or(|id| dims.categories_of(key.product).contains(&id))
    }
}

fn group_key(dimension: Dimension, key: &FactKey, dims: &Dimensions) -> u32 {
    match dimension {
        Dimension::Store => key.store,
        Dimension::Country => key.country,
        Dimension::Device => u32::from(key.device),
        Dimension::Source => key.source,
        Dimension::Promotion => key.promotion,
        Dimension::SalesRep => key.sales_rep,
        Dimension::Product => key.product,
        Dimension::Category(level) => {
            dims.categories_of(key.product).get(usize::from(level) - 1).copied().unwrap_or(0)
        }
    }
}

fn group_name(dimension: Dimension, id: u32, dims: &Dimensions) -> Option<String> {
    let name = match dimension {
        Dimension::Store => dims.stores.name(id),
        Dimension::Country => dims.countries.name(id),
        Dimension::Device => {
            return u8::try_from(id).ok().and_then(device_from_code).map(|d| d.as_str().to_owned());
        }
        Dimension::Source => dims.sources.name(id),
        Dimension::Promotion => dims.promotions.name(id),
        Dimension::SalesRep => dims.sales_reps.name(id),
        Dimension::Product => dims.products.name(id),
        Dimension::Category(_) => dims.categories.name(id),
    };
    name.map(str::to_owned)
}

fn money(minor: i64, currency: Currency) -> Value {
    Value::Money(Some(Money::new(minor, currency).to_decimal_string()))
}

fn ratio(numerator: u64, denominator: u64) -> Value {
    Value::Ratio((denominator > 0).then(|| round4(numerator as f64 / denominator as f64)))
}

/// Average in minor units, rounded half away from zero.
fn average_minor(total: i64, count: u64) -> Option<i64> {
    let count = i64::try_from(count).ok().filter(|count| *count > 0)?;
    let doubled = 2 * total / count;
    Some(doubled / 2 + doubled % 2)
}

fn metric_value(metric: Metric, sum: &Sum, currency: Currency) -> Value {
    let m = &sum.measures;
    match metric {
        Metric::Events => Value::Count(m.events),
        Metric::PageViews => Value::Count(m.page_views),
        Metric::ProductViews => Value::Count(m.product_views),
        Metric::CartAdds => Value::Count(m.cart_adds),
        Metric::CartRemoves => Value::Count(m.cart_removes),
        Metric::CheckoutsStarted => Value::Count(m.checkouts),
        Metric::Orders => Value::Count(m.orders),
        Metric::Units => Value::Count(m.units),
        Metric::Refunds => Value::Count(m.refunds),
        Metric::PromotionViews => Value::Count(m.promotion_views),
        Metric::PromotionClicks => Value::Count(m.promotion_clicks),
        Metric::GrossRevenue => money(m.gross_revenue, currency),
        Metric::RefundedRevenue => money(m.refunded_revenue, currency),
        Metric::NetRevenue => money(m.gross_revenue - m.refunded_revenue, currency),
        Metric::AverageOrderValue => Value::Money(
            average_minor(m.gross_revenue, sum.orders_in_currency)
                .map(|minor| Money::new(minor, currency).to_decimal_string()),
        ),
        Metric::ClickThroughRate => ratio(m.promotion_clicks, m.promotion_views),
        Metric::CheckoutConversionRate => ratio(m.orders, m.checkouts),
        Metric::PromotionConversionRate => ratio(m.orders, m.promotion_clicks),
        Metric::Visitors => Value::Count(sum.distinct.visitors.estimate() as u64),
        Metric::Sessions => Value::Count(sum.distinct.sessions.estimate() as u64),
        Metric::ConversionRate => ratio(
            sum.distinct.purchase_sessions.estimate() as u64,
            sum.distinct.sessions.estimate() as u64,
        ),
        Metric::CartSessions => Value::Count(sum.distinct.cart_sessions.estimate() as u64),
        Metric::AbandonedCarts => Value::Count(abandoned(&sum.distinct)),
        Metric::CartAbandonmentRate => {
            ratio(abandoned(&sum.distinct), sum.distinct.cart_sessions.estimate() as u64)
        }
        Metric::UniqueBuyers => Value::Count(sum.distinct.buyers.estimate() as u64),
    }
}

fn abandoned(sets: &DistinctSets) -> u64 {
    (sets.cart_sessions.estimate() as u64).saturating_sub(sets.converted_cart_sessions())
}

/// A metric as a number, for growth, trend and ranking (money in minor units).
fn metric_number(metric: Metric, sum: &Sum) -> f64 {
    match metric_value(metric, sum, Currency::USD) {
        Value::Count(count) => count as f64,
        Value::Ratio(ratio) => ratio.unwrap_or(0.0),
        Value::Money(_) => {
            let m = &sum.measures;
            (match metric {
                Metric::GrossRevenue => m.gross_revenue,
                Metric::RefundedRevenue => m.refunded_revenue,
                Metric::NetRevenue => m.gross_revenue - m.refunded_revenue,
                _ => average_minor(m.gross_revenue, sum.orders_in_currency).unwrap_or(0),
            }) as f64
        }
    }
}

fn metric_values(
    metrics: &[Metric],
    sum: &Sum,
    currency: Currency,
) -> BTreeMap<&'static str, Value> {
    metrics.iter().map(|metric| (metric.name(), metric_value(*metric, sum, currency))).collect()
}

fn granularity_width(granularity: Granularity) -> i64 {
    match granularity {
        Granularity::Minute => MINUTE_MS,
        Granularity::Hour => HOUR_MS,
        Granularity::Day | Granularity::Week | Granularity::Month => DAY_MS,
    }
}

fn width_name(width: i64) -> &'static str {
    match width {
        MINUTE_MS => "minute",
        HOUR_MS => "hour",
        _ => "day",
    }
}

/// The series resolution used for trends when the query asks for none.
fn auto_granularity(length_ms: i64) -> Granularity {
    if length_ms <= 2 * HOUR_MS {
        Granularity::Minute
    } else if length_ms <= 2 * DAY_MS {
        Granularity::Hour
    } else {
        Granularity::Day
    }
}

/// Start times of the series points covering `[from, to)`; the first point starts at `from`'s
/// bucket.
fn series_points(from: i64, to: i64, granularity: Granularity) -> Vec<i64> {
    let mut points = Vec::new();
    let mut start = match granularity {
        Granularity::Minute | Granularity::Hour | Granularity::Day => {
            let width = granularity_width(granularity);
            from.div_euclid(width) * width
        }
        Granularity::Week => {
            let day = from.div_euclid(DAY_MS);
            // 1970-01-01 was a Thursday; Monday-based weekday = (day + 3) mod 7.
            (day - (day + 3).rem_euclid(7)) * DAY_MS
        }
        Granularity::Month => {
            let (year, month, _) = civil_from_days(from.div_euclid(DAY_MS));
            days_from_civil(year, month, 1) * DAY_MS
        }
    };
    while start < to && points.len() <= MAX_SERIES_POINTS {
        points.push(start);
        start = match granularity {
            Granularity::Week => start + 7 * DAY_MS,
            Granularity::Month => {
                let (year, month, _) = civil_from_days(start.div_euclid(DAY_MS));
                let (year, month) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
                days_from_civil(year, month, 1) * DAY_MS
            }
            other => start + granularity_width(other),
        };
    }
    points
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_arithmetic_round_trips() {
        for days in [-1, 0, 59, 365, 10_957, 20_000, 20_454] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
    }

    #[test]
    fn weeks_start_on_monday_and_months_on_the_first() {
        // 2026-11-22 is a Sunday.
        let sunday = days_from_civil(2026, 11, 22) * DAY_MS;
        let points = series_points(sunday, sunday + DAY_MS, Granularity::Week);
        assert_eq!(points, vec![days_from_civil(2026, 11, 16) * DAY_MS]);
        let points = series_points(sunday, sunday + 40 * DAY_MS, Granularity::Month);
        assert_eq!(
            points,
            vec![days_from_civil(2026, 11, 1) * DAY_MS, days_from_civil(2026, 12, 1) * DAY_MS]
        );
    }

    #[test]
    fn averages_round_half_away_from_zero() {
        assert_eq!(average_minor(1001, 2), Some(501));
        assert_eq!(average_minor(1000, 3), Some(333));
        assert_eq!(average_minor(5, 0), None);
    }
}
