//! Session metrics counted exactly from the session trails, for what the daily sketches cannot
//! answer: by product or category (a session counts for a product when one of its events in the
//! range names it; it converted for that product when a purchase in the range names it) and
//! below a day (a session counts in every bucket it has an event in). Trails are kept
//! `engine.funnel_retention` (30 days) and know a session's store, country, device and visitor
//! (of its latest event naming one; distinct visitors and buyers are counted from those) and
//! the marketing source each event counted under (a session counts under every source it has
//! an event under in the range, as in the daily sketches), not promotions or sales reps:
//! queries by those are refused, naming the parameter.

use super::query::{RowMatcher, Sum, granularity_width, group_key};
use super::*;
use crate::funnel::{MarkSource, WIDE_SOURCE};

/// Exact session counts of one total, series point or group.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct SessionCounts {
    pub(super) sessions: u64,
    pub(super) purchased: u64,
    pub(super) carted: u64,
    pub(super) carted_and_purchased: u64,
    /// Distinct visitors of those sessions, and those who bought (counted only when asked for).
    pub(super) visitors: u64,
    pub(super) buyers: u64,
}

const ACTIVE: u8 = 1;
const PURCHASED: u8 = 2;
const CARTED: u8 = 4;

impl SessionCounts {
    fn add(&mut self, flags: u8) {
        if flags & ACTIVE == 0 {
            return;
        }
        self.sessions += 1;
        self.purchased += u64::from(flags & PURCHASED != 0);
        self.carted += u64::from(flags & CARTED != 0);
        self.carted_and_purchased += u64::from(flags & (CARTED | PURCHASED) == CARTED | PURCHASED);
    }

    pub(super) fn abandoned(&self) -> u64 {
        self.carted - self.carted_and_purchased
    }
}

/// Whether `spec` counts session metrics from the trails, walking every kept one: up to a
/// second or more at a million events a day, where other queries take milliseconds (the server
/// runs such reads so that ingest does not wait for them).
pub fn walks_session_trails(spec: &QuerySpec) -> bool {
    from_trails(spec, spec.granularity.map_or(DAY_MS, granularity_width))
}

/// Whether the session metrics of `spec` come from the trails (see the module docs) rather
/// than from the daily sketches.
pub(super) fn from_trails(spec: &QuerySpec, width_ms: i64) -> bool {
    spec.metrics.iter().any(|metric| metric.is_distinct())
        && (width_ms < DAY_MS
            || spec.filters.is_product_level()
            || spec.group_by.is_some_and(Dimension::is_product_level))
}

impl Engine {
    /// Refuses what the trails cannot answer over `[from, to)`.
    pub(super) fn check_trail_query(&self, spec: &QuerySpec, from: i64) -> Result<(), QueryError> {
        const WHY: &str = "session metrics by product or category or below a day are counted \
                           from session trails";
        if spec.metrics.contains(&Metric::AbandonedCartValue) {
            return Err(QueryError::new(
                "metrics",
                "abandoned_cart_value is counted per cart: not by product or category, nor below \
                 a day (ask for it separately, by day)",
            ));
        }
        const KEPT: &str = "which keep a session's store, country, device and sources only";
        let filters = &spec.filters;
        for (parameter, set) in [
            ("promotion", filters.promotion.is_some() || filters.promoted),
            ("sales_rep", filters.sales_rep.is_some()),
        ] {
            if set {
                return Err(QueryError::new(parameter, format!("{WHY}, {KEPT}")));
            }
        }
        if matches!(spec.group_by, Some(Dimension::Promotion | Dimension::SalesRep)) {
            return Err(QueryError::new("group_by", format!("{WHY}, {KEPT}")));
        }
        let from_parameter = if from < spec.from.0 { "compare" } else { "from" };
        let by_source = spec.group_by == Some(Dimension::Source);
        self.check_trail_sources(filters.source.as_deref(), by_source, from, from_parameter)?;
        self.check_trails_cover(from, from_parameter, WHY)
    }

    /// Refuses a question by source (a `source` filter, or grouping by source when `grouped`)
    /// over trails starting at `from` that the trails' marks cannot answer: a source interned
    /// past what a mark holds (24 bits, see `funnel::WIDE_SOURCE`), grouping once there are
    /// such sources, or a range before the marks knew their source (trails kept from a
    /// snapshot of a format before they did, whose marks took their session's landing
    /// source), rather than answering what they guessed. For session metrics and funnels.
    pub(super) fn check_trail_sources(
        &self,
        source: Option<&str>,
        grouped: bool,
        from: i64,
        from_parameter: &'static str,
    ) -> Result<(), QueryError> {
        if source.is_none() && !grouped {
            return Ok(());
        }
        const WIDE: &str = "session trails tell apart the first 16,777,215 marketing sources only";
        let wide = |id: u32| id >= WIDE_SOURCE;
        if source.and_then(|name| self.dims.sources.get(name)).is_some_and(wide) {
            return Err(QueryError::new("source", WIDE));
        }
        if grouped && wide(self.dims.sources.len() as u32) {
            return Err(QueryError::new("group_by", WIDE));
        }
        let known_from = self.funnels.sources_known_from();
        if from >= known_from {
            return Ok(());
        }
        let known = Timestamp(known_from).to_rfc3339();
        Err(QueryError::new(
            from_parameter,
            format!(
                "by source, session metrics below a day or by product, and funnels, are counted \
                 from session trails, which know the source of each event from {known} on (the \
                 data was kept by an earlier version before that): start at {known} or later, or \
                 ask by day without product or category"
            ),
        ))
    }

    /// Refuses a range starting at `from` when trails (and carts) before it are no longer
    /// kept, rather than answering with what is left; `parameter` and `why` say what to change.
    pub(super) fn check_trails_cover(
        &self,
        from: i64,
        parameter: &'static str,
        why: &str,
    ) -> Result<(), QueryError> {
        match self.trails_kept_from() {
            Some(kept_from) if from < kept_from.0 => Err(QueryError::new(
                parameter,
                format!(
                    "{why}, kept {} days (engine.funnel_retention): start at {} or later",
                    self.funnels.retention_ms() / DAY_MS,
                    kept_from.to_rfc3339()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Adds exact session counts over `[from, to)` to `totals`, to the series point each event
    /// falls in (`points`: their starts; none for no series) and to `groups`. Groups count
    /// what `matcher` admits; totals and the series what `ungrouped` does, the matcher of the
    /// same query without `group_by` (by product, every session, not only those that met a
    /// product).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn count_sessions(
        &self,
        (from, to): (i64, i64),
        metrics: &[Metric],
        (matcher, ungrouped): (&RowMatcher, &RowMatcher),
        group_by: Option<Dimension>,
        points: &[i64],
        totals: &mut Sum,
        series: &mut [Sum],
        groups: &mut FastMap<u32, Sum>,
    ) {
        totals.sessions.get_or_insert_default();
        for point in series.iter_mut() {
            point.sessions.get_or_insert_default();
        }
        let by_product = group_by.is_some_and(Dimension::is_product_level);
        let by_source = group_by == Some(Dimension::Source);
        // For product-level queries, each product's group once per query (`None`: the product
        // filter or category filter leaves it out), not per event.
        let products = matcher.products_only();
        // (Store 0: the product's path in the store that first filed it; a store filing it
        // apart is asked directly, see `product_group`.)
        let product_group = |store: u32, product: u32| {
            let key = FactKey { store, product, ..FactKey::default() };
            (product != 0 && products.admits(&key, &self.dims))
                .then(|| group_by.map_or(0, |dimension| group_key(dimension, &key, &self.dims)))
        };
        let product_groups: Vec<Option<u32>> = if matcher.product_level {
            (0..=self.dims.products.len() as u32).map(|product| product_group(0, product)).collect()
        } else {
            Vec::new()
        };
        // Per session: the flags of each point and group it touched (reused, no allocation
        // per session).
        let mut by_point: Vec<(usize, u8)> = Vec::new();
        let mut by_group: Vec<(u32, u8)> = Vec::new();
        // (where, visitor, flags) for each session's visitor, when distinct visitors are asked.
        let want_visitors = wants_visitors(metrics);
        let mut visits: Vec<(Target, u64, u8)> = Vec::new();
        for trail in self.funnels.trails(from, to) {
            let (place, visitor) = (trail.place, trail.visitor);
            if !matcher.admits_place(&place) {
                continue;
            }
            let place_key = FactKey {
                store: place.store,
                country: place.country,
                device: place.device,
                ..FactKey::default()
            };
            let place_group =
                group_by.map_or(0, |dimension| group_key(dimension, &place_key, &self.dims));
            let mut total = 0;
            by_point.clear();
            by_group.clear();
            for mark in trail.marks() {
                let (time, event_type, product) = (mark.time_ms, mark.event_type, mark.product);
                if time < from || time >= to || !matcher.admits_source(mark.source) {
                    continue;
                }
                // Grouped by source, a session counts under each source it has an event
                // under (`check_trail_query` refused grouping if a source could be wide).
                let place_group = match (by_source, mark.source) {
                    (true, MarkSource::Id(source)) => source,
                    _ => place_group,
                };
                // The mark's group, `None` when the grouped query does not admit it.
                let group = if matcher.product_level {
                    let found = if self.dims.files_apart(place.store, product) {
                        product_group(place.store, product)
                    } else {
                        product_groups.get(product as usize).copied().flatten()
                    };
                    match found {
                        Some(group) if by_product => Some(group),
                        Some(_) => Some(place_group),
                        None => None,
                    }
                } else {
                    Some(place_group)
                };
                // Product-level filters admit the marks naming their products only; grouping
                // by product alone leaves the totals every mark.
                if group.is_none() && ungrouped.product_level {
                    continue;
                }
                let flags = ACTIVE
                    | match event_type {
                        EventType::Purchase => PURCHASED,
                        EventType::AddToCart => CARTED,
                        _ => 0,
                    };
                total |= flags;
                if !points.is_empty() {
                    by_point
                        .push((points.partition_point(|p| *p <= time).saturating_sub(1), flags));
                }
                if let (Some(group), Some(_)) = (group, group_by) {
                    by_group.push((group, flags));
                }
            }
            if total == 0 {
                continue;
            }
            // A visitor's events sent without a session (a back office's orders) count the
            // visitor and buyer only.
            let session = trail.is_session;
            if session {
                totals.sessions.get_or_insert_default().add(total);
            }
            let visited = want_visitors && visitor != 0;
            if visited {
                visits.push((Target::Total, visitor, total));
            }
            for (point, flags) in merged(&mut by_point) {
                if session {
                    series[point].sessions.get_or_insert_default().add(flags);
                }
                if visited {
                    visits.push((Target::Point(point), visitor, flags));
                }
            }
            for (group, flags) in merged(&mut by_group) {
                let counts = groups.entry(group).or_default().sessions.get_or_insert_default();
                if session {
                    counts.add(flags);
                }
                if visited {
                    visits.push((Target::Group(group), visitor, flags));
                }
            }
        }
        // Each visitor once per total, point and group: sorted, runs merged.
        visits.sort_unstable_by_key(|(target, visitor, _)| (*target, *visitor));
        for run in visits.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
            let flags = run.iter().fold(0, |all, (_, _, flags)| all | flags);
            let counts = match run[0].0 {
                Target::Total => totals.sessions.get_or_insert_default(),
                Target::Point(point) => series[point].sessions.get_or_insert_default(),
                Target::Group(group) => {
                    groups.entry(group).or_default().sessions.get_or_insert_default()
                }
            };
            counts.visitors += 1;
            counts.buyers += u64::from(flags & PURCHASED != 0);
        }
    }
}

/// Where a visitor is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Total,
    Point(usize),
    Group(u32),
}

fn wants_visitors(metrics: &[Metric]) -> bool {
    metrics.iter().any(|metric| matches!(metric, Metric::Visitors | Metric::UniqueBuyers))
}

/// `(key, flags)` pairs with one entry per key, flags or-ed.
fn merged<K: Ord + Copy>(pairs: &mut [(K, u8)]) -> impl Iterator<Item = (K, u8)> + '_ {
    pairs.sort_unstable_by_key(|(key, _)| *key);
    pairs
        .chunk_by(|a, b| a.0 == b.0)
        .map(|run| (run[0].0, run.iter().fold(0, |all, (_, f)| all | f)))
}
