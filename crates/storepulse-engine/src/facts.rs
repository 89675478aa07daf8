//! What one event adds to the rollups: rows keyed by dimension ids, holding additive measures.
//!
//! Every event adds one *event row* (product id 0) with all its measures; an event about
//! products also adds one *product row* per product it names (a product view, a cart line, an
//! order line). Queries that group or filter by product or category read product rows, all
//! others read event rows, so an order with three lines counts once as an order and three times
//! as product lines, and neither is ever double counted.

use crate::FastMap;

use storepulse_model::event::{DeviceType, Event, EventType, Order, OrderStatus, Product};
use storepulse_model::money::Currency;

use crate::intern::Interner;
use crate::live::Place;

/// Additive counters of one row. Money is in minor units of the row's currency.
///
/// Rollup rows are most of the engine's memory at scale, so counts are `u32`: one row's count
/// in one bucket never nears 4 billion, and the rare overflow saturates instead of wrapping.
/// Sums over many rows are taken in [`Totals`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[repr(C)]
pub struct Measures {
    pub events: u32,
    pub page_views: u32,
    pub product_views: u32,
    pub cart_adds: u32,
    pub cart_removes: u32,
    pub checkouts: u32,
    pub orders: u32,
    /// Units sold (order lines); cart and checkout lines do not count.
    pub units: u32,
    pub refunds: u32,
    pub promotion_views: u32,
    pub promotion_clicks: u32,
    /// Orders (of `orders`) of unknown value: a purchase with neither a total nor a priced
    /// line (seed 4's buys), or on a product row a line without a price. They count as
    /// orders and add nothing to revenue, so an average order value leaves them out.
    /// (In the 4 bytes of padding the row had: rows stay 64 bytes.)
    pub unvalued_orders: u32,
    pub gross_revenue: i64,
    pub refunded_revenue: i64,
}

// Rollup rows are most of the memory at scale: a new measure must not make them larger.
const _: () = assert!(std::mem::size_of::<Measures>() == 64);

/// [`Measures`] as snapshot formats up to 13 stored them, before `unvalued_orders`: every
/// order then counted as one of known value, as averages counted it.
#[derive(Clone, Copy, Debug, Default, serde::Deserialize)]
pub struct MeasuresUpToV13 {
    events: u32,
    page_views: u32,
    product_views: u32,
    cart_adds: u32,
    cart_removes: u32,
    checkouts: u32,
    orders: u32,
    units: u32,
    refunds: u32,
    promotion_views: u32,
    promotion_clicks: u32,
    gross_revenue: i64,
    refunded_revenue: i64,
}

impl From<MeasuresUpToV13> for Measures {
    fn from(old: MeasuresUpToV13) -> Self {
        let MeasuresUpToV13 {
            events,
            page_views,
            product_views,
            cart_adds,
            cart_removes,
            checkouts,
            orders,
            units,
            refunds,
            promotion_views,
            promotion_clicks,
            gross_revenue,
            refunded_revenue,
        } = old;
        Measures {
            events,
            page_views,
            product_views,
            cart_adds,
            cart_removes,
            checkouts,
            orders,
            units,
            refunds,
            promotion_views,
            promotion_clicks,
            unvalued_orders: 0,
            gross_revenue,
            refunded_revenue,
        }
    }
}

/// The twelve counts of a [`Measures`] in declaration order, as an array: read, or assigned
/// to all at once (written once for both).
macro_rules! counts_of {
    ($measures:expr) => {
        [
            $measures.events,
            $measures.page_views,
            $measures.product_views,
            $measures.cart_adds,
            $measures.cart_removes,
            $measures.checkouts,
            $measures.orders,
            $measures.units,
            $measures.refunds,
            $measures.promotion_views,
            $measures.promotion_clicks,
            $measures.unvalued_orders,
        ]
    };
}

impl Measures {
    /// Adds `other`, saturating. The twelve counts are added as one array, which the compiler
    /// turns into three 4-lane vector additions with an overflow mask instead of twelve
    /// scalar saturating adds: every event adds one to three rows, and every fold adds each
    /// minute row to its hour and each hour row to its day, so this runs more often than
    /// anything else in the engine.
    #[inline]
    pub fn add(&mut self, other: &Measures) {
        let (mine, theirs) = (self.counts(), other.counts());
        self.set_counts(std::array::from_fn(|at| mine[at].saturating_add(theirs[at])));
        // Saturating, as the counts are: each amount is bounded at ingest (10^15 minor units),
        // their sums not; one row in one bucket holds 9,223 orders of the maximum amount
        // before it saturates at i64::MAX, never wrapping into a negative revenue.
        self.gross_revenue = self.gross_revenue.saturating_add(other.gross_revenue);
        self.refunded_revenue = self.refunded_revenue.saturating_add(other.refunded_revenue);
    }

    /// The counts in declaration order (`#[repr(C)]` keeps them adjacent in that order, so
    /// this and [`Measures::set_counts`] compile to plain vector loads and stores).
    #[inline]
    fn counts(&self) -> [u32; 12] {
        counts_of!(self)
    }

    #[inline]
    fn set_counts(&mut self, counts: [u32; 12]) {
        counts_of!(self) = counts;
    }

    /// These measures without their money (for rows in another currency than the query's).
    pub fn without_money(mut self) -> Measures {
        self.gross_revenue = 0;
        self.refunded_revenue = 0;
        self
    }
}

/// [`Measures`] summed over any number of rows (a query's totals): counts in 64 bits, money in
/// 128 bits, so that no sum of rows saturates or wraps (a row's own money saturates at
/// `i64::MAX` minor units, see [`Measures::add`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub events: u64,
    pub page_views: u64,
    pub product_views: u64,
    pub cart_adds: u64,
    pub cart_removes: u64,
    pub checkouts: u64,
    pub orders: u64,
    pub units: u64,
    pub refunds: u64,
    pub promotion_views: u64,
    pub promotion_clicks: u64,
    pub gross_revenue: i128,
    pub refunded_revenue: i128,
}

impl Totals {
    pub fn add(&mut self, row: &Measures) {
        self.events += u64::from(row.events);
        self.page_views += u64::from(row.page_views);
        self.product_views += u64::from(row.product_views);
        self.cart_adds += u64::from(row.cart_adds);
        self.cart_removes += u64::from(row.cart_removes);
        self.checkouts += u64::from(row.checkouts);
        self.orders += u64::from(row.orders);
        self.units += u64::from(row.units);
        self.refunds += u64::from(row.refunds);
        self.promotion_views += u64::from(row.promotion_views);
        self.promotion_clicks += u64::from(row.promotion_clicks);
        // 2^64 rows of at most 2^63 each cannot reach 2^127: plain addition is exact.
        self.gross_revenue += i128::from(row.gross_revenue);
        self.refunded_revenue += i128::from(row.refunded_revenue);
    }
}

/// The dimensions of a row, as interned ids (0 = none).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct FactKey {
    pub store: u32,
    pub country: u32,
    pub source: u32,
    pub promotion: u32,
    pub sales_rep: u32,
    /// 0 on event rows.
    pub product: u32,
    pub device: u8,
    /// ISO 4217 code bytes; zero when the row carries no money.
    pub currency: [u8; 3],
}

/// Every event looks up several rows by key: the key is hashed as two 128-bit words holding
/// every field (so equal keys hash equal). The engine's maps hash with foldhash, which folds
/// a 128-bit word straight into its state with one multiply; four smaller words went through
/// its buffering first, 72 instructions a key instead of ~20 (callgrind, thirteenth session).
impl std::hash::Hash for FactKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let [c0, c1, c2] = self.currency;
        let word = |low: u32, high: u32| u64::from(low) | u64::from(high) << 32;
        let device_currency = u32::from_le_bytes([self.device, c0, c1, c2]);
        state.write_u128(
            u128::from(word(self.store, self.country))
                | u128::from(word(self.source, self.promotion)) << 64,
        );
        state.write_u128(
            u128::from(word(self.sales_rep, self.product))
                | u128::from(u64::from(device_currency)) << 64,
        );
    }
}

/// The dictionaries behind [`FactKey`] ids, plus what the engine knows about each product.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Dimensions {
    pub stores: Interner,
    pub countries: Interner,
    pub sources: Interner,
    pub promotions: Interner,
    pub sales_reps: Interner,
    pub products: Interner,
    /// Category paths as text (`"Apparel > Shoes"`), one id per path prefix.
    pub categories: Interner,
    /// For each product id, its category path as the store that first filed it sent it in its
    /// latest event (by event time) naming one (see [`Dimensions::categories_of`]).
    pub product_categories: Vec<Filing>,
    /// `(store, product)` → that store's path, where a store files a product other than
    /// `product_categories` does: stores are tenants, and two shops may share product ids
    /// but not catalogs.
    pub store_categories: FastMap<(u32, u32), Filing>,
    /// Product names with the event time that sent them (latest event time wins), for
    /// answers.
    pub product_names: FastMap<u32, (i64, compact_str::CompactString)>,
}

/// A product's category path as one store filed it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Filing {
    /// The category ids of the path from the top.
    pub ids: Vec<u32>,
    /// The store that filed it (0: not known, from a snapshot before format 13; the next
    /// store to file the product takes it).
    pub store: u32,
    /// The event time of the filing (from before format 13: older than any event).
    pub time_ms: i64,
}

impl Default for Filing {
    /// Not filed: no path, by no store, older than any event.
    fn default() -> Self {
        Filing { ids: Vec::new(), store: 0, time_ms: i64::MIN }
    }
}

/// [`Dimensions`] as snapshot formats up to 12 stored it: one category path per product for
/// every store.
#[derive(serde::Deserialize)]
pub(crate) struct DimensionsUpToV12 {
    stores: Interner,
    countries: Interner,
    sources: Interner,
    promotions: Interner,
    sales_reps: Interner,
    products: Interner,
    categories: Interner,
    product_categories: Vec<Vec<u32>>,
    product_names: FastMap<u32, compact_str::CompactString>,
}

impl From<DimensionsUpToV12> for Dimensions {
    fn from(old: DimensionsUpToV12) -> Self {
        let DimensionsUpToV12 {
            stores,
            countries,
            sources,
            promotions,
            sales_reps,
            products,
            categories,
            product_categories,
            product_names,
        } = old;
        Dimensions {
            stores,
            countries,
            sources,
            promotions,
            sales_reps,
            products,
            categories,
            product_categories: product_categories
                .into_iter()
                .map(|ids| Filing { ids, ..Filing::default() })
                .collect(),
            store_categories: FastMap::default(),
            product_names: product_names
                .into_iter()
                .map(|(id, name)| (id, (i64::MIN, name)))
                .collect(),
        }
    }
}

impl Dimensions {
    /// Interns a product of `store` and records its category path and name when the event
    /// (at `time_ms`) carries them: the latest event time wins, so a late or backfilled old
    /// event does not re-file or rename a product.
    pub fn product(&mut self, store: u32, product: &Product, time_ms: i64) -> u32 {
        let id = self.products.intern(&product.id);
        if !product.category.is_empty() {
            self.file(store, id, &product.category, time_ms);
        }
        if let Some(name) = &product.name {
            let (named_at, known) =
                self.product_names.entry(id).or_insert_with(|| (i64::MIN, name.clone()));
            if time_ms >= *named_at {
                *named_at = time_ms;
                if known != name {
                    *known = name.clone();
                }
            }
        }
        id
    }

    /// Records that `store` files `product` under `levels` (a path from the top) as of
    /// `time_ms`.
    fn file(
        &mut self,
        store: u32,
        product: u32,
        levels: &[compact_str::CompactString],
        time_ms: i64,
    ) {
        let index = product as usize;
        if self.product_categories.len() <= index {
            self.product_categories.resize(index + 1, Filing::default());
        }
        let main = &self.product_categories[index];
        let owned = main.store == store || main.store == 0 || main.ids.is_empty();
        let filed = if owned { Some(main) } else { self.store_categories.get(&(store, product)) };
        if time_ms < filed.map_or(i64::MIN, |filing| filing.time_ms) {
            return;
        }
        // Most events repeat the category the product already has: compare the level names
        // (a few short strings) before building and interning paths.
        let known =
            if owned { self.categories_of(0, product) } else { self.categories_of(store, product) };
        let unchanged = known.len() == levels.len()
            && known
                .last()
                .and_then(|last| self.categories.name(*last))
                .is_some_and(|path| path_is(path, levels));
        if unchanged {
            let filing = if owned {
                Some(&mut self.product_categories[index])
            } else {
                self.store_categories.get_mut(&(store, product))
            };
            if let Some(filing) = filing {
                filing.time_ms = time_ms;
            }
            return;
        }
        let mut path = String::new();
        let mut ids = Vec::with_capacity(levels.len());
        for level in levels {
            if !path.is_empty() {
                path.push_str(" > ");
            }
            path.push_str(level);
            ids.push(self.categories.intern(&path));
        }
        let filing = Filing { ids, store, time_ms };
        if owned {
            self.product_categories[index] = filing;
        } else {
            self.store_categories.insert((store, product), filing);
        }
    }

    /// The id of a category path as a filter names it (`"apparel>shoes"` finds
    /// `"Apparel > Shoes"`): spacing around `>` and, when no path matches exactly, letter case
    /// do not matter.
    pub fn category_id(&self, path: &str) -> Option<u32> {
        let path = crate::engine::normalize_category(path);
        self.categories.get(&path).or_else(|| {
            let path = path.to_lowercase();
            (1..=self.categories.len() as u32).find(|id| {
                self.categories.name(*id).is_some_and(|name| name.to_lowercase() == path)
            })
        })
    }

    /// The category ids of a product's path from the top in `store` (empty when unknown):
    /// the path that store last sent, else the path of the store that first filed the
    /// product (so a store whose events carry no categories uses the catalog's). Store 0:
    /// the latter.
    pub fn categories_of(&self, store: u32, product: u32) -> &[u32] {
        if store != 0
            && !self.store_categories.is_empty()
            && let Some(filing) = self.store_categories.get(&(store, product))
        {
            return &filing.ids;
        }
        self.product_categories.get(product as usize).map_or(&[], |filing| &filing.ids)
    }

    /// Whether `store` files `product` under a path of its own, not the one
    /// `categories_of(0, product)` gives.
    pub fn files_apart(&self, store: u32, product: u32) -> bool {
        !self.store_categories.is_empty() && self.store_categories.contains_key(&(store, product))
    }
}

/// Whether `path` is `levels` joined with `" > "`, without building the joined text.
fn path_is(path: &str, levels: &[compact_str::CompactString]) -> bool {
    let mut rest = path;
    for (index, level) in levels.iter().enumerate() {
        if index > 0 {
            match rest.strip_prefix(" > ") {
                Some(after) => rest = after,
                None => return false,
            }
        }
        match rest.strip_prefix(level.as_str()) {
            Some(after) => rest = after,
            None => return false,
        }
    }
    rest.is_empty()
}

pub fn device_code(device: Option<DeviceType>) -> u8 {
    match device {
        None => 0,
        Some(DeviceType::Desktop) => 1,
        Some(DeviceType::Mobile) => 2,
        Some(DeviceType::Tablet) => 3,
        Some(DeviceType::Bot) => 4,
        Some(DeviceType::Other) => 5,
    }
}

pub fn device_from_code(code: u8) -> Option<DeviceType> {
    match code {
        1 => Some(DeviceType::Desktop),
        2 => Some(DeviceType::Mobile),
        3 => Some(DeviceType::Tablet),
        4 => Some(DeviceType::Bot),
        5 => Some(DeviceType::Other),
        _ => None,
    }
}

pub fn currency_bytes(currency: Currency) -> [u8; 3] {
    let mut bytes = [0; 3];
    bytes.copy_from_slice(currency.code().as_bytes());
    bytes
}

/// Remembered orders by (store, order id), for attributing refunds to their sale.
///
/// Grows a little per insert (griddle), not by rehashing everything at once: at shop scale a
/// single doubling held the engine for up to a quarter of a second (see
/// `docs/performance.md`, twelfth session).
pub type OrderMemory =
    griddle::HashMap<(u32, compact_str::CompactString), OrderRecord, foldhash::fast::RandomState>;

/// One order as the engine remembers it, so that its refunds take back what was bought and
/// never more: a full refund (no amount, no lines) refunds what is left of it, a line refunded
/// without a price is valued at the price it was bought at, and every refund is capped at what
/// remains unrefunded. A purchase repeating a remembered order's id is not counted again.
///
/// A refund of an order not (yet) remembered is booked as sent and remembered as a record
/// without lines (a purchase always has lines): when the sale arrives after it (a backfill, an
/// order system sending refunds ahead of a delayed batch), what was refunded already counts
/// towards its cap, so net revenue never goes below zero.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct OrderRecord {
    /// The sale's row key (with its currency), which its refunds are attributed to; for a
    /// refund seen before its sale, the refund's.
    pub key: FactKey,
    /// The purchase's event time (the refund's, before the sale); orders are forgotten after
    /// `order_memory` (see the engine).
    pub time_ms: i64,
    /// The sale's total; before the sale, [`FULL_REFUND_PENDING`] when a refund of it was a
    /// full one (the order id alone, as Segment's "Order Refunded" may be sent), else 0.
    pub total: i64,
    /// Refunded so far, at most `total` (once the sale is known).
    pub refunded: i64,
    pub lines: Vec<OrderLine>,
}

/// [`OrderRecord::total`] of a refund seen before its sale that refunds it in full: what that
/// is, only the sale will tell, and the sale then refunds itself as of the refund's time.
pub const FULL_REFUND_PENDING: i64 = -1;

impl OrderRecord {
    /// Whether the sale is known: not only refunds of it, sent before it (which leave no lines
    /// and no total). A sale sent by its value alone has a total and no lines.
    pub fn sold(&self) -> bool {
        !self.lines.is_empty() || self.total > 0
    }
}

/// One line of a remembered order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OrderLine {
    pub product: u32,
    pub units: u32,
    /// Price × units.
    pub total: i64,
    /// Refunded so far, at most `total`.
    pub refunded: i64,
}

impl OrderLine {
    fn left(&self) -> i64 {
        self.total - self.refunded
    }
}

/// [`OrderRecord`] as snapshot formats up to 11 stored it, before refunds were tracked.
#[derive(serde::Deserialize)]
pub(crate) struct OrderRecordUpToV11 {
    key: FactKey,
    time_ms: i64,
    total: i64,
    lines: Vec<(u32, u32, i64)>,
}

impl From<OrderRecordUpToV11> for OrderRecord {
    /// Refunds applied before the upgrade are not known: the order is taken as unrefunded.
    fn from(old: OrderRecordUpToV11) -> Self {
        let lines = old
            .lines
            .into_iter()
            .map(|(product, units, total)| OrderLine { product, units, total, refunded: 0 })
            .collect();
        OrderRecord { key: old.key, time_ms: old.time_ms, total: old.total, refunded: 0, lines }
    }
}

/// Where and when an event counts, interned: its store, country and device (what the live
/// windows and session trails file it under), the marketing source it counts under, and its
/// time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The event time, but no later than the event arrived: a time ahead of that (a client
    /// clock running fast, within the accepted skew) would hide a client's own order from "the
    /// last hour" for minutes while its page views already show, and keep its visitor
    /// "active" that much longer than the window.
    pub time_ms: i64,
    pub store: u32,
    pub country: u32,
    pub device: u8,
    /// The event's own source (its `marketing.utm_source`, else its referrer's host) as
    /// [`Origin::of`] reads it; the engine puts its session's there when it names none (see
    /// [`crate::funnel::FunnelLog::attribute`]).
    pub source: u32,
}

impl Origin {
    pub fn of(event: &Event, dims: &mut Dimensions) -> Self {
        let marketing = event.marketing.as_deref();
        let source = marketing.and_then(|m| m.utm_source.as_deref().or(m.referrer_host.as_deref()));
        Origin {
            time_ms: event.event_time.0.min(event.received_at.0),
            store: dims.stores.intern(&event.store),
            country: dims.countries.intern_opt(event.country.as_deref()),
            device: device_code(event.device.as_ref().map(|device| device.device_type)),
            source: dims.sources.intern_opt(source),
        }
    }

    pub fn place(&self) -> Place {
        Place { store: self.store, country: self.country, device: self.device }
    }
}

/// The rows one event from `origin` adds: `(key, measures)` pairs, the event row first.
/// Returns the event's own key (its store, country, device, …), which is its event row's but
/// for a refund: that row counts against the original sale, while the refund's sender (a back
/// office, another session) is counted as itself by the live windows and the distinct
/// sketches.
/// What an event counts as. A purchase counts by its order's status, as seed 2 counted only
/// completed orders: a pending or processing order is no sale yet but a checkout started (the
/// same order sent again as completed is the sale), a cancelled or refunded one takes back
/// what is left of the order, if it was sold. Other events count as their type.
pub fn counted_type(event: &Event) -> EventType {
    let status = event.order.as_ref().and_then(|order| order.status);
    match (event.event_type, status) {
        (EventType::Purchase, Some(OrderStatus::Pending | OrderStatus::Processing)) => {
            EventType::CheckoutStarted
        }
        (EventType::Purchase, Some(OrderStatus::Cancelled | OrderStatus::Refunded)) => {
            EventType::Refund
        }
        (event_type, _) => event_type,
    }
}

/// Rows an event adds at another time than its own: a sale whose full refund came before it
/// refunds itself as of the refund's time.
pub type LaterRows = Option<(i64, Vec<(FactKey, Measures)>)>;

/// The rollup rows of `event`, counted as `event_type` (see [`counted_type`]); rows it adds at
/// another time go to `later`.
pub fn rows_of(
    event: &Event,
    event_type: EventType,
    origin: Origin,
    dims: &mut Dimensions,
    orders: &mut OrderMemory,
    (rows, later): (&mut Vec<(FactKey, Measures)>, &mut LaterRows),
) -> FactKey {
    rows.clear();
    // The event row's place, filled in last (inserting it at the front would move every
    // product row).
    rows.push((FactKey::default(), Measures::default()));
    let order = event.order.as_deref();
    let base = FactKey {
        store: origin.store,
        country: origin.country,
        source: origin.source,
        promotion: dims.promotions.intern_opt(event.promotion.as_deref().map(|p| p.id.as_str())),
        sales_rep: dims.sales_reps.intern_opt(order.and_then(|o| o.sales_rep_id.as_deref())),
        product: 0,
        device: origin.device,
        currency: [0; 3],
    };
    let mut totals = Measures { events: 1, ..Measures::default() };
    let mut key = base;
    match event_type {
        EventType::PageView => totals.page_views = 1,
        EventType::ProductView => {
            totals.product_views = 1;
            for product in event.product.iter().map(|p| &**p).chain(&event.items) {
                let id = dims.product(base.store, product, origin.time_ms);
                rows.push((
                    FactKey { product: id, ..base },
                    Measures { product_views: 1, ..Measures::default() },
                ));
            }
        }
        EventType::AddToCart | EventType::RemoveFromCart => {
            let adding = event.event_type == EventType::AddToCart;
            for product in event.product.iter().map(|p| &**p).chain(&event.items) {
                let id = dims.product(base.store, product, origin.time_ms);
                // `units` counts units sold; a cart line is not a sale.
                let line = if adding {
                    Measures { cart_adds: 1, ..Measures::default() }
                } else {
                    Measures { cart_removes: 1, ..Measures::default() }
                };
                rows.push((FactKey { product: id, ..base }, line));
            }
            if adding { totals.cart_adds = 1 } else { totals.cart_removes = 1 }
        }
        EventType::CheckoutStarted => {
            totals.checkouts = 1;
            for product in event.product.iter().map(|p| &**p).chain(&event.items) {
                let id = dims.product(base.store, product, origin.time_ms);
                rows.push((
                    FactKey { product: id, ..base },
                    Measures { checkouts: 1, ..Measures::default() },
                ));
            }
        }
        EventType::Purchase => {
            let currency = order.map(|o| currency_bytes(o.currency)).unwrap_or([0; 3]);
            key.currency = currency;
            // The same order sent again (a retry under a new event id, a second "Order
            // Completed"): one more event, not one more order. One lookup finds it or keeps
            // the place to remember a new one.
            // Refunds of this order that came before it: what they booked, and when.
            let mut early_refunds: Option<OrderRecord> = None;
            let slot = match order.and_then(|o| o.id.clone()) {
                Some(id) => match orders.entry((base.store, id)) {
                    griddle::hash_map::Entry::Occupied(seen) if seen.get().sold() => {
                        rows[0] = (key, totals);
                        return key;
                    }
                    griddle::hash_map::Entry::Occupied(seen) => {
                        // Refunds of this order came first: remembered, not yet capped.
                        let (id, refunds) = seen.remove_entry();
                        early_refunds = Some(refunds);
                        match orders.entry(id) {
                            griddle::hash_map::Entry::Vacant(slot) => Some(slot),
                            griddle::hash_map::Entry::Occupied(_) => None,
                        }
                    }
                    griddle::hash_map::Entry::Vacant(slot) => Some(slot),
                },
                None => None,
            };
            let mut record = OrderRecord { key, time_ms: origin.time_ms, ..OrderRecord::default() };
            let first_line_row = rows.len();
            for item in &event.items {
                let id = dims.product(base.store, item, origin.time_ms);
                let units = item.quantity;
                let line_total =
                    item.price.map_or(0, |price| price.minor * i64::from(item.quantity));
                record.lines.push(OrderLine { product: id, units, total: line_total, refunded: 0 });
                totals.units = totals.units.saturating_add(units);
                rows.push((
                    FactKey { product: id, currency, ..base },
                    Measures {
                        orders: 1,
                        units,
                        unvalued_orders: u32::from(item.price.is_none()),
                        gross_revenue: line_total,
                        ..Measures::default()
                    },
                ));
            }
            if let Some(order) = order {
                share_out_discount(order, &mut rows[first_line_row..], &mut record.lines);
            }
            totals.orders = 1;
            let total = order.and_then(|o| o.total);
            totals.unvalued_orders = u32::from(total.is_none());
            totals.gross_revenue = total.unwrap_or(0);
            record.total = totals.gross_revenue;
            if let Some(refunds) = early_refunds {
                *later = settle_early_refunds(&refunds, &mut record, (key, base), dims);
            }
            if let Some(slot) = slot {
                slot.insert(record);
            }
        }
        EventType::Refund => {
            // A purchase sent cancelled or refunded takes back the whole order, whatever
            // amounts it repeats, and only an order that was sold.
            let cancellation = event.event_type == EventType::Purchase;
            let order_id = order.and_then(|o| o.id.clone());
            let original = order_id
                .clone()
                .and_then(|order_id| orders.get_mut(&(base.store, order_id)))
                .filter(|original| original.sold());
            if cancellation && original.is_none() {
                rows[0] = (key, totals);
                return key;
            }
            totals.refunds = 1;
            // A refund counts against the sale's dimensions (its promotion, rep, source,
            // country), which the refund event itself rarely repeats.
            let base = original.as_ref().map_or(base, |original| original.key);
            key = base;
            let sent_in = order.map_or(base.currency, |o| currency_bytes(o.currency));
            // A remembered order's refund is booked in the order's currency: a refund that
            // states none was read in the default currency (an EUR order's "50.00" as USD),
            // so its amounts are taken as the same decimal amounts in the order's currency.
            if original.is_none() {
                key.currency = sent_in;
            }
            let currency = key.currency;
            let in_order_currency = |minor: i64| rescale(minor, sent_in, currency);
            let stated =
                order.and_then(|o| o.total).filter(|_| !cancellation).map(in_order_currency);
            let items: &[Product] = if cancellation { &[] } else { &event.items };
            let mut line_rows = |product: u32, amount: i64| {
                rows.push((
                    FactKey { product, currency, ..base },
                    Measures { refunds: 1, refunded_revenue: amount, ..Measures::default() },
                ));
            };
            totals.refunded_revenue = match original {
                Some(original) => refund_remembered(
                    original,
                    items,
                    origin.time_ms,
                    stated,
                    in_order_currency,
                    dims,
                    &mut line_rows,
                ),
                None => {
                    // An order not remembered: the refund is taken as sent, and remembered
                    // for the sale if it comes later (see `OrderRecord`).
                    let mut lines_sum = 0;
                    for item in items {
                        let amount = item.price.map_or(0, |p| p.minor * i64::from(item.quantity));
                        lines_sum += amount;
                        line_rows(dims.product(base.store, item, origin.time_ms), amount);
                    }
                    let amount = stated.unwrap_or(lines_sum);
                    if let Some(order_id) = order_id {
                        let refunds = orders.entry((base.store, order_id)).or_insert_with(|| {
                            OrderRecord { key, time_ms: origin.time_ms, ..OrderRecord::default() }
                        });
                        refunds.refunded = refunds.refunded.saturating_add(amount.max(0));
                        refunds.time_ms = refunds.time_ms.max(origin.time_ms);
                        if stated.is_none() && items.is_empty() {
                            // In full, by the order id alone: the sale, when it comes, tells
                            // how much (it was refunded nothing).
                            refunds.total = FULL_REFUND_PENDING;
                        }
                    }
                    amount
                }
            };
        }
        EventType::PromotionView => totals.promotion_views = 1,
        EventType::PromotionClick => totals.promotion_clicks = 1,
        EventType::ProductListView
        | EventType::Search
        | EventType::Identify
        | EventType::Custom => {}
    }
    rows[0] = (key, totals);
    if event_type == EventType::Refund { base } else { key }
}

/// Takes what an order was discounted by off its lines, each by its share of the lines'
/// amount, so that by product revenue is what the lines were sold for: a discount (`discount`,
/// or a `total` below the lines plus tax and shipping) comes off them; tax and shipping are
/// not product revenue, and a total above them adds nothing to the lines. `rows` are the
/// order's line rows, `lines` its remembered lines, in the same order.
fn share_out_discount(order: &Order, rows: &mut [(FactKey, Measures)], lines: &mut [OrderLine]) {
    let Some(total) = order.total else { return };
    let lines_sum: i128 = lines.iter().map(|line| i128::from(line.total)).sum();
    let goods = i128::from(total)
        - i128::from(order.tax.unwrap_or(0))
        - i128::from(order.shipping.unwrap_or(0));
    let discount = lines_sum - goods.clamp(0, lines_sum);
    if discount <= 0 {
        return;
    }
    // Shares by running totals, so that they add up to the discount exactly.
    let (mut running, mut given) = (0i128, 0i128);
    for ((_, measures), line) in rows.iter_mut().zip(lines.iter_mut()) {
        running += i128::from(line.total);
        let share = (discount * running / lines_sum - given) as i64;
        given += i128::from(share);
        line.total -= share;
        measures.gross_revenue -= share;
    }
}

/// `minor` units of the currency `from` as minor units of `to`: the same decimal amount (JPY
/// 300 from USD 300.00), digits `to` has no room for dropped. Unknown codes leave it as is.
fn rescale(minor: i64, from: [u8; 3], to: [u8; 3]) -> i64 {
    if from == to {
        return minor;
    }
    let exponent = |code: [u8; 3]| {
        std::str::from_utf8(&code).ok().and_then(Currency::parse).map(|c| c.exponent())
    };
    match (exponent(from), exponent(to)) {
        (Some(from), Some(to)) if to > from => minor.saturating_mul(10i64.pow(to - from)),
        (Some(from), Some(to)) if from > to => minor / 10i64.pow(from - to),
        _ => minor,
    }
}

/// Settles the refunds of an order that came before it (remembered in `refunds`, booked as
/// sent) now that its sale `record` is known: they count towards its cap, what they booked
/// beyond the sale is taken back, and a full refund among them refunds what is left of it —
/// both as of the refunds' time, as rows for then. `key` and `base` are the sale's keys.
fn settle_early_refunds(
    refunds: &OrderRecord,
    record: &mut OrderRecord,
    (key, base): (FactKey, FactKey),
    dims: &mut Dimensions,
) -> LaterRows {
    let currency = key.currency;
    let refunded = rescale(refunds.refunded, refunds.key.currency, currency);
    record.refunded = refunded.clamp(0, record.total);
    let mut later = Vec::new();
    // Booked as sent, under the refunds' own keys: a refund of 50.00 against a sale of 20.00
    // made net revenue −30.00.
    let beyond = refunded - record.refunded;
    if beyond > 0 {
        let taken_back = rescale(beyond, currency, refunds.key.currency);
        later
            .push((refunds.key, Measures { refunded_revenue: -taken_back, ..Measures::default() }));
    }
    if refunds.total == FULL_REFUND_PENDING {
        // What is left of the sale, refunded as a full refund of a remembered order is,
        // against the sale's dimensions.
        let mut line_rows = Vec::new();
        let amount = refund_remembered(
            record,
            &[],
            refunds.time_ms,
            None,
            |m| m,
            dims,
            &mut |product, share| {
                line_rows.push((
                    FactKey { product, currency, ..base },
                    Measures { refunded_revenue: share, ..Measures::default() },
                ));
            },
        );
        later.push((key, Measures { refunded_revenue: amount, ..Measures::default() }));
        later.extend(line_rows);
    }
    (!later.is_empty()).then_some((refunds.time_ms, later))
}

/// Applies a refund to a remembered order and returns the amount refunded: the amount stated,
/// else the refunded lines' value, else (a full refund) everything left; never more than is
/// left of the order, nor of a line. `line_rows` receives each product's share.
fn refund_remembered(
    original: &mut OrderRecord,
    items: &[Product],
    time_ms: i64,
    stated: Option<i64>,
    in_order_currency: impl Fn(i64) -> i64,
    dims: &mut Dimensions,
    line_rows: &mut impl FnMut(u32, i64),
) -> i64 {
    let order_left = original.total - original.refunded;
    let amount = if !items.is_empty() {
        let mut lines_sum: i64 = 0;
        let sold_by_value = original.lines.is_empty();
        for item in items {
            let product = dims.product(original.key.store, item, time_ms);
            let in_order = original.lines.iter().any(|line| line.product == product);
            let line =
                original.lines.iter_mut().find(|line| line.product == product && line.left() > 0);
            let amount = match (item.price, line.as_deref()) {
                (Some(price), _) => in_order_currency(price.minor * i64::from(item.quantity)),
                // A line refunded by id and quantity only: the price it was bought at.
                (None, Some(line)) if line.units > 0 => {
                    (i128::from(line.total) * i128::from(item.quantity) / i128::from(line.units))
                        as i64
                }
                (None, _) => 0,
            };
            let amount = match line {
                Some(line) => {
                    let amount = amount.min(line.left());
                    line.refunded += amount;
                    amount
                }
                // An order sold by its value alone has no lines to refund: the amount counts
                // for the order, by no product (none was sold by product).
                None if sold_by_value => {
                    lines_sum += amount;
                    continue;
                }
                // A product the order had, refunded in full already: nothing is left of it.
                None if in_order => 0,
                // A product the order never had: nothing of it was sold to refund (it was
                // credited as sent, so refunds by product outgrew the order's).
                None => continue,
            };
            lines_sum += amount;
            line_rows(product, amount);
        }
        stated.unwrap_or(lines_sum)
    } else {
        // By amount only, or in full: each line takes its share of what is left of it, so
        // that by product the refunds add up as they do for the order.
        let amount = stated.unwrap_or(order_left).clamp(0, order_left.max(0));
        let lines_left: i64 = original.lines.iter().map(OrderLine::left).sum();
        if order_left > 0 && lines_left > 0 {
            let to_lines = (i128::from(amount) * i128::from(lines_left) / i128::from(order_left))
                .min(i128::from(lines_left));
            // Shares by running totals, so they add up to `to_lines` exactly.
            let (mut running, mut given) = (0i128, 0i128);
            for line in original.lines.iter_mut().filter(|line| line.left() > 0) {
                running += i128::from(line.left());
                let share = (to_lines * running / i128::from(lines_left) - given) as i64;
                given += i128::from(share);
                line.refunded += share;
                line_rows(line.product, share);
            }
        }
        amount
    };
    let amount = amount.clamp(0, order_left.max(0));
    original.refunded += amount;
    amount
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_matches_exactly_its_levels() {
        let levels = |names: &[&str]| {
            names.iter().map(|n| compact_str::CompactString::from(*n)).collect::<Vec<_>>()
        };
        assert!(path_is("A > B > C", &levels(&["A", "B", "C"])));
        assert!(!path_is("A > B > C", &levels(&["A", "B"])));
        assert!(!path_is("A > B", &levels(&["A", "B", "C"])));
        assert!(!path_is("A > BC", &levels(&["A", "B", "C"])));
    }
}
