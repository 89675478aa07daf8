//! The engine: applies events in any order and answers queries as of a time passed in.
//!
//! This file owns the state and how an event changes it; the answers live beside it:
//! [`live`] (realtime figures, seed-3 users, buys), [`query`] (the query model's execution),
//! [`sessions`] (exact session metrics from the trails) and [`products`] (trending,
//! recommendations, category trends, funnels).

mod live;
mod products;
mod query;
mod sessions;

pub use live::{BuyStats, LiveCommerce, Realtime, RealtimeFilter, RealtimeWindows};
pub use products::{FunnelGroup, FunnelResult, ScoredProduct};
pub use query::{Comparison, Group, QueryResult, SeriesPoint, normalize_category};
pub use sessions::walks_session_trails;

use std::collections::BTreeMap;

use crate::FastMap;

use serde::Serialize;
use storepulse_model::event::{Event, EventType};
use storepulse_model::money::{Currency, Money};
use storepulse_model::time::Timestamp;

use crate::buys::{BuyLedger, BuyTotals};
use crate::carts::{self, StoredCarts};
use crate::category_trends::{TrendRow, TrendSettings, change};
use crate::distinct::{DailyDistinct, DistinctSets, SessionSignal, SketchMemos, hash_id, in_store};
use crate::facts::{
    Dimensions, FactKey, Measures, OrderMemory, OrderRecord, Origin, counted_type, currency_bytes,
    device_code, device_from_code, rows_of,
};
use crate::funnel::{FunnelLog, FunnelSpec, FunnelSplit, FunnelSteps, TrailHint};
use crate::live::{LiveFilter, LiveWindows, Sighting};
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

/// The parts of day-scale retention ([`Engine::prune_history`]), each walking one large map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HistoryPart {
    /// Sealing again the rollup buckets late events reopened; dropping expired sketch days.
    Rollups,
    /// Visitors' item sets.
    CoOccurrence,
    /// Funnel trails, and the carts they hold.
    FunnelTrails,
    /// Remembered orders.
    Orders,
}

impl HistoryPart {
    pub const ALL: [HistoryPart; 4] = [
        HistoryPart::Rollups,
        HistoryPart::CoOccurrence,
        HistoryPart::FunnelTrails,
        HistoryPart::Orders,
    ];
}

/// The fields are the crate's so that [`crate::snapshot`] writes and reads them in parallel
/// sections.
pub struct Engine {
    pub(crate) config: EngineConfig,
    pub(crate) dims: Dimensions,
    pub(crate) orders: OrderMemory,
    pub(crate) rollups: Rollups,
    pub(crate) live: LiveWindows,
    pub(crate) buys: BuyLedger,
    pub(crate) together: CoOccurrence,
    pub(crate) distinct: DailyDistinct,
    /// Session trails, and the sessions' carts (see [`crate::carts`]).
    pub(crate) funnels: FunnelLog,
    /// Latest event time applied.
    pub(crate) newest_ms: i64,
    /// Latest event time applied that was not ahead of its own receive time: what the live
    /// windows measure "too old to be live" from. A client clock running minutes fast (within
    /// the accepted skew) moves `newest_ms` ahead, and measured from there every other store's
    /// current events looked too old to count as active.
    pub(crate) live_reference_ms: i64,
    /// Session trails and carts whose last event is before this were dropped by
    /// [`Engine::prune_history`] (funnel retention counted from the `now` passed in). Not in
    /// the snapshot: the server prunes once right after loading one.
    trails_pruned_before_ms: i64,
    pub(crate) applied: u64,
    /// The event log offset after the last applied event: replay after a snapshot starts here.
    pub(crate) log_position: u64,
    scratch: Vec<(FactKey, Measures)>,
    /// Reused per event for the products a funnel mark names (no allocation per event).
    product_scratch: Vec<u32>,
}

/// What the engine holds, for `/health`, `/metrics` and the docs' memory figures.
#[derive(Clone, Debug, Serialize)]
pub struct EngineStats {
    pub events_applied: u64,
    pub newest_event_time: Option<String>,
    pub active_visitors_tracked: usize,
    pub active_sessions_tracked: usize,
    /// Sessions whose trails are kept (funnels and exact session metrics).
    pub session_trails: usize,
    /// Kept trails of a visitor's day of events sent without a session (back-office orders):
    /// they count visitors and buyers in the exact counts, and are no session.
    pub sessionless_trails: usize,
    pub rollup_rows: [usize; 3],
    pub rollup_buckets: [usize; 3],
    pub products: usize,
    pub orders_remembered: usize,
    pub approx_memory_bytes: usize,
    /// `approx_memory_bytes` by the part of the state that holds it.
    pub memory_by_part: MemoryByPart,
}

/// Approximate heap bytes of each part of the engine's state (estimates from sizes and
/// capacities, so reading them never walks the maps).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct MemoryByPart {
    pub rollups: usize,
    pub live_windows: usize,
    pub distinct_sketches: usize,
    pub funnel_trails: usize,
    pub cart_values: usize,
    pub co_occurrence: usize,
    pub remembered_orders: usize,
    pub buys: usize,
    pub dimensions: usize,
}

impl MemoryByPart {
    pub fn total(&self) -> usize {
        self.rollups
            + self.live_windows
            + self.distinct_sketches
            + self.funnel_trails
            + self.cart_values
            + self.co_occurrence
            + self.remembered_orders
            + self.buys
            + self.dimensions
    }
}

impl Engine {
    pub fn new(config: EngineConfig) -> Self {
        Self::from_parts(
            config,
            Dimensions::default(),
            OrderMemory::default(),
            Rollups::new(config.retention),
            LiveWindows::new(config.active_window_ms, config.page_window_ms),
            BuyLedger::default(),
            CoOccurrence::new(30 * DAY_MS),
            DailyDistinct::default(),
            FunnelLog::new(config.funnel_retention_ms),
            None,
            (i64::MIN, 0, 0, i64::MIN),
        )
    }

    /// An engine from its parts (see [`crate::snapshot`]).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_parts(
        config: EngineConfig,
        dims: Dimensions,
        orders: OrderMemory,
        rollups: Rollups,
        live: LiveWindows,
        buys: BuyLedger,
        together: CoOccurrence,
        distinct: DailyDistinct,
        mut funnels: FunnelLog,
        carts: Option<StoredCarts>,
        (newest_ms, applied, log_position, live_reference_ms): (i64, u64, u64, i64),
    ) -> Self {
        if let Some(carts) = carts {
            funnels.attach_carts(carts.sessions);
        }
        Self {
            config,
            dims,
            orders,
            rollups,
            live,
            buys,
            together,
            distinct,
            funnels,
            newest_ms,
            live_reference_ms,
            trails_pruned_before_ms: i64::MIN,
            applied,
            log_position,
            scratch: Vec::new(),
            product_scratch: Vec::new(),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Adds one accepted event. Order does not matter for the rollups; the live windows
    /// ignore events already outside them.
    pub fn apply(&mut self, event: &Event) {
        let mut origin = Origin::of(event, &mut self.dims);
        let time = origin.time_ms;
        self.newest_ms = self.newest_ms.max(time);
        self.live_reference_ms = self.live_reference_ms.max(time);
        let place = origin.place();
        let page_view = (event.event_type == EventType::PageView)
            .then_some(event.page.as_ref())
            .flatten()
            .and_then(|page| page.path.as_deref().or(page.url.as_deref()));
        // Each id is hashed once for every map and sketch it goes into, as a key in its store
        // (stores are tenants: their user and session ids are their own).
        let visitor = event.visitor_id().map(|id| (id, in_store(hash_id(id), origin.store)));
        let session = event.session_id.as_deref().map(|id| in_store(hash_id(id), origin.store));
        let remembered = self.live.observe(
            &Sighting { time_ms: time, place, visitor, session, page_view },
            self.live_reference_ms,
        );
        let mut no_hint = TrailHint::default();
        let hint = remembered.trail.unwrap_or(&mut no_hint);
        // The session's source before the rows are made, so that they (and a purchase's
        // remembered order, which its refunds count against) carry it. An identify is not a
        // session's activity (see `FunnelLog::observe_remembering`).
        let trail_session = session.filter(|_| event.event_type != EventType::Identify);
        if let Some(session) = trail_session {
            origin.source = self.funnels.attribute(session, hint, place, time, origin.source);
        } else if let (Some(session), Some((_, visitor))) = (session, visitor) {
            let source = self.funnels.identify(session, visitor, time);
            if origin.source == 0 {
                // A sign-in counted under no source made every signed-in session a second
                // session, unconverted, under "none".
                origin.source = source;
            }
        }
        let mut rows = std::mem::take(&mut self.scratch);
        let event_type = counted_type(event);
        let mut later = None;
        let key = rows_of(
            event,
            event_type,
            origin,
            &mut self.dims,
            &mut self.orders,
            (&mut rows, &mut later),
        );
        self.rollups.add(time, &rows);
        if let Some((refund_time, refund_rows)) = later {
            self.rollups.add(refund_time, &refund_rows);
        }
        let signal = match event_type {
            EventType::Purchase => SessionSignal::Purchase,
            EventType::AddToCart => SessionSignal::Cart,
            _ => SessionSignal::Other,
        };
        let sketch_memos = SketchMemos {
            visitor: remembered.visitor_sketches,
            session: remembered.session_sketches,
        };
        let ids = (visitor.map(|(_, hash)| hash), session);
        self.distinct.observe(time, key, ids, signal, sketch_memos);
        if let Some(session) = trail_session {
            let products = products_of(&mut self.product_scratch, &rows);
            let visitor = visitor.map(|(_, hash)| hash);
            let marked = (event_type, origin.source);
            self.funnels
                .observe_remembering(session, hint, visitor, place, time, marked, &products);
            self.product_scratch = products;
            if matches!(
                event_type,
                EventType::AddToCart | EventType::RemoveFromCart | EventType::Purchase
            ) {
                self.funnels.update_cart(session, hint, |cart| {
                    track_cart(cart, event, event_type, key, time);
                });
            }
        } else if let (None, Some((_, visitor))) = (session, visitor)
            && event.event_type != EventType::Identify
        {
            // Without a session (an order a back office sends): its visitor and buyer still
            // count in the exact counts by product and below a day.
            let products = products_of(&mut self.product_scratch, &rows);
            let marked = (event_type, origin.source);
            self.funnels.observe_sessionless(visitor, place, time, marked, &products);
            self.product_scratch = products;
        }
        if let Some((_, visitor)) = visitor
            && rows.len() > 1
        {
            // Product rows follow the event row; each names one product the visitor met.
            let products = rows[1..].iter().map(|(key, _)| key.product);
            self.together.observe(visitor, origin.store, products, time);
        }
        // `orders` is 0 on a purchase repeating a remembered order (see `rows_of`).
        if event_type == EventType::Purchase && event.promotion.is_some() && rows[0].1.orders > 0 {
            self.buys.record(time, rows[0].1.units.into());
        }
        self.applied += 1;
        self.scratch = rows;
    }

    /// Does now the work applying defers (the distinct sketches' inserts, made in batches),
    /// which any read does first anyway: benchmarks call it, so that the time they report for
    /// applying includes that work.
    pub fn settle(&mut self) {
        self.distinct.settle();
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
    /// funnel trails, remembered orders, distinct sketches); walks those maps. Also seals
    /// again the rollup buckets late events reopened. All of [`HistoryPart::ALL`] at once.
    pub fn prune_history(&mut self, now: Timestamp) {
        for part in HistoryPart::ALL {
            self.prune_history_part(now, part);
        }
    }

    /// One part of [`Engine::prune_history`]. The server runs one part per housekeeping tick
    /// (each with the `now` of the pass it belongs to), releasing the engine in between: the
    /// parts each walk a large map, and all of them at once held the engine for ~50 ms at
    /// 30 M events and ~110 ms at 100 M (see `docs/performance.md`, twelfth session).
    pub fn prune_history_part(&mut self, now: Timestamp, part: HistoryPart) {
        match part {
            HistoryPart::Rollups => {
                self.rollups.reseal();
                if self.config.retention.days_ms > 0 {
                    self.distinct.prune_before(now.0 - self.config.retention.days_ms);
                }
            }
            HistoryPart::CoOccurrence => self.together.prune(now.0),
            HistoryPart::FunnelTrails => {
                // Moved before the trails and carts are pruned: a query meanwhile treats what
                // is about to go as gone, never the reverse.
                self.trails_pruned_before_ms = self
                    .trails_pruned_before_ms
                    .max(now.0.saturating_sub(self.funnels.retention_ms()));
                self.funnels.prune(now.0);
            }
            HistoryPart::Orders => {
                let orders_from = now.0 - self.config.order_memory_ms;
                self.orders.retain(|_, order| order.time_ms >= orders_from);
            }
        }
    }

    /// From when session trails and carts are complete, so that funnels, exact session metrics
    /// and abandoned cart value over a range starting there or later are whole; `None` while
    /// pruning has dropped nothing. This is what pruning dropped (retention counted back from
    /// the `now` it was given), not retention counted back from the newest event: a shop that
    /// stopped sending still has its last month, and a clock a little ahead does not refuse
    /// `last_30_days`.
    pub fn trails_kept_from(&self) -> Option<Timestamp> {
        (self.trails_pruned_before_ms != i64::MIN)
            .then_some(Timestamp(self.trails_pruned_before_ms))
    }

    pub fn events_applied(&self) -> u64 {
        self.applied
    }

    /// The latest event time applied, if any event was.
    pub fn newest_event_time(&self) -> Option<Timestamp> {
        (self.newest_ms != i64::MIN).then_some(Timestamp(self.newest_ms))
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

    pub fn stats(&self) -> EngineStats {
        let (visitors, sessions, _) = self.live.sizes();
        let sizes = self.rollups.sizes();
        let memory = MemoryByPart {
            rollups: self.rollups.heap_bytes(),
            live_windows: self.live.heap_bytes(),
            distinct_sketches: self.distinct.heap_bytes(),
            funnel_trails: self.funnels.heap_bytes(),
            cart_values: self.funnels.cart_count()
                * (std::mem::size_of::<carts::SessionCart>() + 16),
            co_occurrence: self.together.heap_bytes(),
            remembered_orders: self.orders.len() * (64 + std::mem::size_of::<OrderRecord>()),
            buys: self.buys.heap_bytes(),
            dimensions: [
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
            .sum::<usize>(),
        };
        EngineStats {
            events_applied: self.applied,
            newest_event_time: (self.newest_ms != i64::MIN)
                .then(|| Timestamp(self.newest_ms).to_rfc3339()),
            active_visitors_tracked: visitors,
            active_sessions_tracked: sessions,
            session_trails: self.funnels.sessions(),
            sessionless_trails: self.funnels.sessionless_trails(),
            rollup_rows: sizes.map(|(_, rows)| rows),
            rollup_buckets: sizes.map(|(buckets, _)| buckets),
            products: self.dims.products.len(),
            orders_remembered: self.orders.len(),
            approx_memory_bytes: memory.total(),
            memory_by_part: memory,
        }
    }

    /// The rollups, for tests and snapshots.
    pub fn rollups(&self) -> &Rollups {
        &self.rollups
    }
}

/// Cart adds and removals change the session's cart value; a purchase closes it.
fn track_cart(
    cart: &mut Option<Box<carts::SessionCart>>,
    event: &Event,
    event_type: EventType,
    key: FactKey,
    time: i64,
) {
    let sign = match event_type {
        EventType::AddToCart => 1,
        EventType::RemoveFromCart => -1,
        EventType::Purchase => {
            carts::purchase(cart, time);
            return;
        }
        _ => return,
    };
    for line in event.product.iter().map(|p| &**p).chain(&event.items) {
        if let Some(price) = line.price {
            let change = sign * price.minor * i64::from(line.quantity);
            carts::add(cart, key, time, change, currency_bytes(price.currency));
        }
    }
}

/// The products an event's rows name (product rows follow the event row), in `scratch`'s
/// vector, taken: the caller puts it back.
#[inline]
fn products_of(scratch: &mut Vec<u32>, rows: &[(FactKey, Measures)]) -> Vec<u32> {
    let mut products = std::mem::take(scratch);
    products.clear();
    products.extend(rows[1..].iter().map(|(key, _)| key.product));
    products.dedup();
    products
}
