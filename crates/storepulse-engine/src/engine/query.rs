//! Executing a [`QuerySpec`]: scanning rollups and sketches, series, groups, comparison.

use super::sessions::{self, SessionCounts};
use super::*;
use crate::distinct::SketchSet;
use crate::facts::Totals;

/// The answer to a [`QuerySpec`].
#[derive(Clone, Debug, Serialize)]
pub struct QueryResult {
    pub from: String,
    pub to: String,
    /// The span the counts and amounts add up over: `from` and `to` widened to whole minutes,
    /// and to the hour (or day) holding `from` once its minutes (or hours) are no longer kept.
    /// Distinct metrics from the daily sketches cover the whole days the range touches; those
    /// counted from session trails cover `from`–`to` exactly.
    pub covered_from: String,
    pub covered_to: String,
    /// With distinct metrics from the daily sketches, the span they count over: the whole UTC
    /// days the range touches (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distinct_covered_from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distinct_covered_to: Option<String>,
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
    /// `Some` exactly when the query is grouped, empty when no row matched: a grouped answer
    /// always has `groups` (a client mapping over them must not meet a missing key on a quiet
    /// day), an ungrouped one never has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<Group>>,
}

impl QueryResult {
    /// The groups of a grouped query; none when it is not grouped.
    pub fn groups(&self) -> &[Group] {
        self.groups.as_deref().unwrap_or_default()
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    pub from: String,
    pub to: String,
    /// The span the previous period's rollup measures cover. For the equal period before
    /// (no [`QuerySpec::previous`]): ending where the current one's buckets start, so that no
    /// bucket counts in both, and as long as they where the buckets kept allow (see
    /// [`crate::rollup::Rollups::period_before`]). For a named previous period: that period
    /// from and to the bucket edges nearest its ends.
    pub covered_from: String,
    pub covered_to: String,
    /// As in [`QueryResult`]: the whole days the previous period's distinct metrics count
    /// over, when they come from the daily sketches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distinct_covered_from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distinct_covered_to: Option<String>,
    pub totals: BTreeMap<&'static str, Value>,
    /// Per metric: `(current − previous) / previous × 100`, null when previous is 0, and for
    /// distinct metrics from the daily sketches when the two periods share a day (a range
    /// starting mid-day): both would count that whole day, so no growth can be told.
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
pub(super) struct Sum {
    pub(super) measures: Totals,
    /// Orders of known value whose amounts are in the query's currency (the divisor of an
    /// average: an order of unknown value adds nothing to revenue, so it must not lower it).
    valued_orders_in_currency: u64,
    /// Orders carrying a promotion (the numerator of promotion conversion: an order without
    /// one is no conversion of a promotion click).
    promoted_orders: u64,
    /// Value of abandoned carts in the query's currency (only when asked for).
    abandoned_value: i128,
    /// Merged only when a query asks for a distinct metric.
    distinct: DistinctSets,
    /// Exact session counts, when they come from the session trails (see [`super::sessions`]).
    pub(super) sessions: Option<SessionCounts>,
}

impl Sum {
    fn add(&mut self, key: &FactKey, measures: &Measures, currency: [u8; 3]) {
        if key.promotion != 0 {
            self.promoted_orders += u64::from(measures.orders);
        }
        if key.currency == currency {
            self.measures.add(measures);
            self.valued_orders_in_currency +=
                u64::from(measures.orders.saturating_sub(measures.unvalued_orders));
        } else {
            self.measures.add(&measures.without_money());
        }
    }
}

impl Engine {
    /// Totals over `[from, to)` with filters (no series, no groups).
    pub(super) fn sum(&self, from: i64, to: i64, filters: &Filters, currency: Currency) -> Sum {
        let mut sum = Sum::default();
        let Some(matcher) = self.matcher(filters, None) else { return sum };
        let currency = currency_bytes(currency);
        self.rollups.scan(from, to, DAY_MS, |_, rows| {
            for (key, measures) in rows.iter() {
                if matcher.admits(key, &self.dims) {
                    sum.add(key, measures, currency);
                }
            }
        });
        sum
    }

    /// Resolves text filters to ids; `None` when a filter names a value never seen (nothing
    /// can match).
    pub(super) fn matcher(
        &self,
        filters: &Filters,
        group_by: Option<Dimension>,
    ) -> Option<RowMatcher> {
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
            category: lookup(filters.category.as_deref(), |c| dims.category_id(c))?,
            promoted: filters.promoted,
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
        // By product or category only product rows are read: an event-level metric would be
        // 0 there, which reads as "none" rather than "not counted this way".
        let by_product = spec.filters.is_product_level()
            || spec.group_by.is_some_and(Dimension::is_product_level);
        if by_product
            && let Some(metric) = spec.metrics.iter().find(|metric| metric.is_event_level())
        {
            return Err(QueryError::new(
                "metrics",
                format!(
                    "{} is counted per event, not per product: ask for it without a product \
                     or category filter or group_by",
                    metric.name()
                ),
            ));
        }
        let distinct = spec.metrics.iter().any(|metric| metric.is_distinct());
        // Distinct sketches are daily, so their implicit series (for trends) is too; the other
        // metrics' trends still come from the finer series they would have on their own (see
        // `trends`).
        let auto = self.auto_granularity(from, to);
        let series_granularity =
            spec.granularity.unwrap_or(if distinct { Granularity::Day } else { auto });
        let mut series_granularity = series_granularity;
        let mut points = series_points(from, to, series_granularity);
        // The implicit series only feeds `trend`: over decades it coarsens rather than refuse
        // a granularity nobody asked for.
        for coarser in [Granularity::Week, Granularity::Month] {
            if spec.granularity.is_none() && points.len() > MAX_SERIES_POINTS {
                series_granularity = coarser;
                points = series_points(from, to, coarser);
            }
        }
        if points.len() > MAX_SERIES_POINTS {
            // `points` stops one past the cap; the message says what was asked for.
            let count = series_point_count(from, to, series_granularity);
            return Err(match spec.granularity {
                Some(_) => QueryError::new(
                    "granularity",
                    format!(
                        "{count} points; at most {MAX_SERIES_POINTS} per query, choose a \
                         coarser granularity or a shorter range"
                    ),
                ),
                // Even months are too many: nothing to coarsen, the range is too long.
                None => QueryError::new(
                    "from",
                    format!(
                        "the range spans {count} months; at most {MAX_SERIES_POINTS}, start \
                         later"
                    ),
                ),
            });
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
        // Session metrics by product or below a day come from the session trails, exactly.
        // The period compared with: the one the caller names (a calendar period), else the
        // equal one just before.
        let previous_period = spec.compare.then(|| match spec.previous {
            Some((previous_from, previous_to)) => (previous_from.0, previous_to.0),
            None => (from - (to - from), from),
        });
        let trails = sessions::from_trails(spec, width);
        if trails {
            self.check_trail_query(spec, from)?;
            if let Some((previous_from, _)) = previous_period {
                self.check_trail_query(spec, previous_from)?;
            }
        } else if spec.metrics.contains(&Metric::AbandonedCartValue) {
            const WHY: &str = "abandoned_cart_value is counted from the sessions' carts";
            self.check_trails_cover(from, "from", WHY)?;
            if let Some((previous_from, _)) = previous_period {
                self.check_trails_cover(previous_from, "compare", WHY)?;
            }
        }
        let currency = currency_bytes(spec.currency);
        let mut totals = Sum::default();
        let mut series = vec![Sum::default(); points.len()];
        let mut groups: FastMap<u32, Sum> = FastMap::default();
        // The span the rollup buckets read cover.
        let mut covered = None;
        // Totals and the series are those of the same query without `group_by`: by product
        // or category the groups read product rows (line revenue, sessions that met the
        // product), the totals still read orders and every session.
        if let (Some(matcher), Some(ungrouped)) =
            (self.matcher(&spec.filters, spec.group_by), self.matcher(&spec.filters, None))
        {
            covered = Some(self.rollups.scan(from, to, width.min(DAY_MS), |span, rows| {
                let point = points.partition_point(|p| *p <= span.start).saturating_sub(1);
                for (key, measures) in rows.iter() {
                    if ungrouped.admits(key, &self.dims) {
                        totals.add(key, measures, currency);
                        series[point].add(key, measures, currency);
                    }
                    if let Some(dimension) = spec.group_by
                        && matcher.admits(key, &self.dims)
                    {
                        let group = group_key(dimension, key, &self.dims);
                        groups.entry(group).or_default().add(key, measures, currency);
                    }
                }
            }));
            if trails {
                let range = (from, to);
                let (series, groups) = (&mut series, &mut groups);
                self.count_sessions(
                    range,
                    &spec.metrics,
                    (&matcher, &ungrouped),
                    spec.group_by,
                    &points,
                    &mut totals,
                    series,
                    groups,
                );
            } else if distinct {
                // Each row is merged once, into its (point, group) cell, and the points, groups
                // and totals from the cells: a merge of two register arrays walks all 65,536
                // registers, and three merges a row took a daily series by country ~1 s over
                // three days of shop traffic. Merging is a union, so the order changes nothing.
                let needed = sketches_read(&spec.metrics);
                let mut cells: FastMap<(usize, u32), DistinctSets> = FastMap::default();
                self.distinct.scan(from, to, |day, key, sets| {
                    if !matcher.admits(key, &self.dims) {
                        return;
                    }
                    let point = points.partition_point(|p| *p <= day).saturating_sub(1);
                    let group =
                        spec.group_by.map_or(0, |dimension| group_key(dimension, key, &self.dims));
                    cells.entry((point, group)).or_default().merge_only(sets, needed);
                });
                for ((point, group), cell) in &cells {
                    series[*point].distinct.merge_only(cell, needed);
                    if spec.group_by.is_some() {
                        groups.entry(*group).or_default().distinct.merge_only(cell, needed);
                    }
                }
                for point in &series {
                    totals.distinct.merge_only(&point.distinct, needed);
                }
            }
            if spec.metrics.contains(&Metric::AbandonedCartValue) {
                for (_, cart) in self.funnels.carts().filter(|(_, c)| c.abandoned_in(from, to)) {
                    if cart.currency != currency || !matcher.admits(&cart.key, &self.dims) {
                        continue;
                    }
                    let point =
                        points.partition_point(|p| *p <= cart.first_cart_ms).saturating_sub(1);
                    totals.abandoned_value += i128::from(cart.value());
                    series[point].abandoned_value += i128::from(cart.value());
                    if let Some(dimension) = spec.group_by {
                        let group = group_key(dimension, &cart.key, &self.dims);
                        groups.entry(group).or_default().abandoned_value +=
                            i128::from(cart.value());
                    }
                }
            }
        }
        // With no matching rows, the same span is read for nothing.
        let covered =
            covered.unwrap_or_else(|| self.rollups.scan(from, to, width.min(DAY_MS), |_, _| {}));
        let values = |sum: &Sum| metric_values(&spec.metrics, sum, spec.currency);
        let mut result = QueryResult {
            from: spec.from.to_rfc3339(),
            to: spec.to.to_rfc3339(),
            covered_from: Timestamp(covered.0).to_rfc3339(),
            covered_to: Timestamp(covered.1).to_rfc3339(),
            distinct_covered_from: (distinct && !trails).then(|| rfc3339(sketch_days(from, to).0)),
            distinct_covered_to: (distinct && !trails).then(|| rfc3339(sketch_days(from, to).1)),
            currency: spec.currency.code().to_owned(),
            granularity: spec.granularity,
            totals: values(&totals),
            previous: None,
            trend: BTreeMap::new(),
            series: Vec::new(),
            group_by: spec.group_by.map(Dimension::name),
            groups: None,
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
            let groups = ranked
                .into_iter()
                .map(|(key, id, sum)| Group {
                    key,
                    label: (dimension == Dimension::Product)
                        .then(|| self.dims.product_names.get(&id).map(|(_, name)| name.to_string()))
                        .flatten(),
                    values: values(&sum),
                })
                .collect();
            result.groups = Some(groups);
        }
        if let Some((previous_from, previous_to)) = previous_period {
            // A named period is read from and to the bucket edges nearest its ends (midnight is
            // an edge at every resolution; a time of day in last month's hours is not). The
            // equal period before any other range ends where the current one's buckets start
            // and is as long as they allow (see `Rollups::period_before`).
            let rollup_span = match spec.previous {
                Some(_) => {
                    // Never past where the current period's buckets start.
                    let (from, to) = self.rollups.readable_span(previous_from, previous_to);
                    let (_, current_start) = self.rollups.period_before(covered);
                    (from.min(current_start), to.min(current_start))
                }
                None => self.rollups.period_before(covered),
            };
            let (previous, previous_covered) =
                self.sum_filtered((previous_from, previous_to), rollup_span, spec);
            let sketched = distinct && !trails;
            // A range within one day (not from midnight) counts the same whole day as the
            // period before it: the sketches cannot tell the two apart.
            let (current_days, previous_days) =
                (sketch_days(from, to), sketch_days(previous_from, previous_to));
            let days_shared = sketched && current_days.1 <= previous_days.1;
            result.previous = Some(Comparison {
                from: Timestamp(previous_from).to_rfc3339(),
                to: Timestamp(previous_to).to_rfc3339(),
                covered_from: Timestamp(previous_covered.0).to_rfc3339(),
                covered_to: Timestamp(previous_covered.1).to_rfc3339(),
                distinct_covered_from: sketched.then(|| rfc3339(previous_days.0)),
                distinct_covered_to: sketched.then(|| rfc3339(previous_days.1)),
                totals: values(&previous),
                growth_percent: spec
                    .metrics
                    .iter()
                    .map(|metric| {
                        let growth = growth_percent(
                            metric_number(*metric, &totals),
                            metric_number(*metric, &previous),
                        );
                        (metric.name(), growth.filter(|_| !(days_shared && metric.is_distinct())))
                    })
                    .collect(),
            });
            // Without a granularity asked for, a metric's trend must not depend on the other
            // metrics asked with it: with a distinct one the series is daily, and the others'
            // trends come from their own finer series.
            let finer = (spec.granularity.is_none()
                && series_granularity != auto
                && spec.metrics.iter().any(|metric| !metric.is_distinct()))
            .then(|| self.rollup_series(spec, from, to, auto))
            .flatten();
            result.trend = spec
                .metrics
                .iter()
                .map(|metric| {
                    let source = match &finer {
                        Some(finer) if !metric.is_distinct() => finer,
                        _ => &series,
                    };
                    let numbers: Vec<f64> =
                        source.iter().map(|sum| metric_number(*metric, sum)).collect();
                    (metric.name(), Trend::of(&numbers))
                })
                .collect();
        }
        Ok(result)
    }

    /// The series granularity for `[from, to)` when none is asked for: from the range's
    /// length, never finer than what is still kept where it starts (a short range of last
    /// month is read in hours rather than refused).
    fn auto_granularity(&self, from: i64, to: i64) -> Granularity {
        match (auto_granularity(to - from), self.rollups.finest_width_at(from)) {
            (Granularity::Minute, HOUR_MS) => Granularity::Hour,
            (Granularity::Minute | Granularity::Hour, DAY_MS) => Granularity::Day,
            (auto, _) => auto,
        }
    }

    /// The rollup measures of `spec` over `[from, to)` in a series of `granularity` (no
    /// distinct metrics); `None` when that would be more points than a query may have.
    fn rollup_series(
        &self,
        spec: &QuerySpec,
        from: i64,
        to: i64,
        granularity: Granularity,
    ) -> Option<Vec<Sum>> {
        let points = series_points(from, to, granularity);
        if points.len() > MAX_SERIES_POINTS {
            return None;
        }
        let mut series = vec![Sum::default(); points.len()];
        // The totals' series: the query without `group_by` (see `Engine::query`).
        let matcher = self.matcher(&spec.filters, None)?;
        let currency = currency_bytes(spec.currency);
        let width = granularity_width(granularity).min(DAY_MS);
        self.rollups.scan(from, to, width, |span, rows| {
            let point = points.partition_point(|p| *p <= span.start).saturating_sub(1);
            for (key, measures) in rows.iter() {
                if matcher.admits(key, &self.dims) {
                    series[point].add(key, measures, currency);
                }
            }
        });
        Some(series)
    }

    /// The totals of `spec` for the period before a compared one: the rollups' measures over
    /// `rollup_span` (see [`crate::rollup::Rollups::period_before`]), whose covered span is
    /// returned beside them, and what is counted exactly (trails, sketch days, carts) over
    /// `[from, to)`.
    fn sum_filtered(
        &self,
        (from, to): (i64, i64),
        (rollup_from, rollup_to): (i64, i64),
        spec: &QuerySpec,
    ) -> (Sum, (i64, i64)) {
        let mut sum = Sum::default();
        // The totals of the query without `group_by`, as the current period's (see
        // `Engine::query`).
        let Some(matcher) = self.matcher(&spec.filters, None) else {
            // Nothing can match: the same span is read for nothing.
            return (sum, self.rollups.scan(rollup_from, rollup_to, DAY_MS, |_, _| {}));
        };
        let currency = currency_bytes(spec.currency);
        let covered = self.rollups.scan(rollup_from, rollup_to, DAY_MS, |_, rows| {
            for (key, measures) in rows.iter() {
                if matcher.admits(key, &self.dims) {
                    sum.add(key, measures, currency);
                }
            }
        });
        let width = spec.granularity.map_or(DAY_MS, granularity_width);
        if sessions::from_trails(spec, width) {
            let mut no_groups = FastMap::default();
            let range = (from, to);
            let metrics = &spec.metrics;
            self.count_sessions(
                range,
                metrics,
                (&matcher, &matcher),
                None,
                &[],
                &mut sum,
                &mut [],
                &mut no_groups,
            );
        } else if spec.metrics.iter().any(|metric| metric.is_distinct()) {
            let needed = sketches_read(&spec.metrics);
            self.distinct.scan(from, to, |_, key, sets| {
                if matcher.admits(key, &self.dims) {
                    sum.distinct.merge_only(sets, needed);
                }
            });
        }
        if spec.metrics.contains(&Metric::AbandonedCartValue) {
            sum.abandoned_value = self
                .funnels
                .carts()
                .map(|(_, cart)| cart)
                .filter(|cart| cart.abandoned_in(from, to) && cart.currency == currency)
                .filter(|cart| matcher.admits(&cart.key, &self.dims))
                .map(|cart| i128::from(cart.value()))
                .sum();
        }
        (sum, covered)
    }
}

/// `Some(None)` for no filter, `Some(Some(id))` for a known value, `None` for an unknown one.
pub(super) fn lookup(
    value: Option<&str>,
    find: impl Fn(&str) -> Option<u32>,
) -> Option<Option<u32>> {
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

pub(super) struct RowMatcher {
    pub(super) product_level: bool,
    store: Option<u32>,
    country: Option<u32>,
    device: Option<u8>,
    source: Option<u32>,
    promotion: Option<u32>,
    sales_rep: Option<u32>,
    product: Option<u32>,
    category: Option<u32>,
    /// Only rows with a promotion.
    promoted: bool,
}

impl RowMatcher {
    /// Matches every row of its level (event rows; set `product_level` for product rows).
    pub(super) fn any() -> Self {
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
            promoted: false,
        }
    }

    /// This matcher's product and category filters alone, for product rows of any place.
    pub(super) fn products_only(&self) -> RowMatcher {
        RowMatcher {
            product_level: true,
            product: self.product,
            category: self.category,
            ..RowMatcher::any()
        }
    }

    /// Whether a row of this place could match (its store, country and device).
    pub(super) fn admits_place(&self, place: &crate::live::Place) -> bool {
        self.store.is_none_or(|id| id == place.store)
            && self.country.is_none_or(|id| id == place.country)
            && self.device.is_none_or(|id| id == place.device)
    }

    /// Whether an event under `source` (a funnel mark's) passes the source filter.
    pub(super) fn admits_source(&self, source: crate::funnel::MarkSource) -> bool {
        self.source.is_none_or(|id| source == crate::funnel::MarkSource::Id(id))
    }

    pub(super) fn admits(&self, key: &FactKey, dims: &Dimensions) -> bool {
        (key.product != 0) == self.product_level
            && self.store.is_none_or(|id| id == key.store)
            && self.country.is_none_or(|id| id == key.country)
            && self.device.is_none_or(|id| id == key.device)
            && self.source.is_none_or(|id| id == key.source)
            && self.promotion.is_none_or(|id| id == key.promotion)
            && (!self.promoted || key.promotion != 0)
            && self.sales_rep.is_none_or(|id| id == key.sales_rep)
            && self.product.is_none_or(|id| id == key.product)
            && self
                .category
                .is_none_or(|id| dims.categories_of(key.store, key.product).contains(&id))
    }
}

pub(super) fn group_key(dimension: Dimension, key: &FactKey, dims: &Dimensions) -> u32 {
    match dimension {
        Dimension::Store => key.store,
        Dimension::Country => key.country,
        Dimension::Device => u32::from(key.device),
        Dimension::Source => key.source,
        Dimension::Promotion => key.promotion,
        Dimension::SalesRep => key.sales_rep,
        Dimension::Product => key.product,
        Dimension::Category(level) => dims
            .categories_of(key.store, key.product)
            .get(usize::from(level) - 1)
            .copied()
            .unwrap_or(0),
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

/// A sum of money: exact in 128 bits, so it never saturates or wraps (the JSON carries it as a
/// decimal string, which holds any of them).
fn money(minor: i128, currency: Currency) -> Value {
    Value::Money(Some(Money::wide_decimal_string(minor, currency)))
}

fn ratio(numerator: u64, denominator: u64) -> Value {
    Value::Ratio((denominator > 0).then(|| round4(numerator as f64 / denominator as f64)))
}

/// Average in minor units, rounded half away from zero; in 128 bits, as its total is (doubling
/// a 64-bit total of more than 4.6 × 10^18 minor units wrapped it into a negative average).
fn average_minor(total: i128, count: u64) -> Option<i128> {
    let count = i128::from(count);
    if count == 0 {
        return None;
    }
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
            average_minor(m.gross_revenue, sum.valued_orders_in_currency)
                .map(|minor| Money::wide_decimal_string(minor, currency)),
        ),
        Metric::ClickThroughRate => ratio(m.promotion_clicks, m.promotion_views),
        Metric::CheckoutConversionRate => ratio(m.orders, m.checkouts),
        Metric::PromotionConversionRate => ratio(sum.promoted_orders, m.promotion_clicks),
        Metric::Visitors
        | Metric::UniqueBuyers
        | Metric::Sessions
        | Metric::ConversionRate
        | Metric::CartSessions
        | Metric::AbandonedCarts
        | Metric::CartAbandonmentRate
            if sum.sessions.is_some() =>
        {
            session_value(metric, &sum.sessions.unwrap_or_default())
        }
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
        Metric::AbandonedCartValue => money(sum.abandoned_value, currency),
    }
}

/// A session metric from exact counts.
fn session_value(metric: Metric, counts: &SessionCounts) -> Value {
    match metric {
        Metric::Visitors => Value::Count(counts.visitors),
        Metric::UniqueBuyers => Value::Count(counts.buyers),
        Metric::Sessions => Value::Count(counts.sessions),
        Metric::ConversionRate => ratio(counts.purchased, counts.sessions),
        Metric::CartSessions => Value::Count(counts.carted),
        Metric::AbandonedCarts => Value::Count(counts.abandoned()),
        _ => ratio(counts.abandoned(), counts.carted),
    }
}

/// The sketches the daily distinct figures of `metrics` read (see `value_of`; a sketch left
/// out here is an empty one there).
fn sketches_read(metrics: &[Metric]) -> SketchSet {
    metrics.iter().fold(SketchSet::NONE, |set, metric| {
        set.and(match metric {
            Metric::Visitors => SketchSet::VISITORS,
            Metric::Sessions => SketchSet::SESSIONS,
            Metric::ConversionRate => SketchSet::PURCHASE_SESSIONS.and(SketchSet::SESSIONS),
            Metric::CartSessions => SketchSet::CART_SESSIONS,
            // Carted sessions without a purchase: |C| − (|C| + |P| − |C ∪ P|).
            Metric::AbandonedCarts | Metric::CartAbandonmentRate => SketchSet::CART_SESSIONS
                .and(SketchSet::PURCHASE_SESSIONS)
                .and(SketchSet::CART_OR_PURCHASE_SESSIONS),
            Metric::UniqueBuyers => SketchSet::BUYERS,
            // The rest read no sketch (`abandoned_cart_value` comes from the carts).
            _ => SketchSet::NONE,
        })
    })
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
                Metric::AbandonedCartValue => sum.abandoned_value,
                _ => average_minor(m.gross_revenue, sum.valued_orders_in_currency).unwrap_or(0),
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

pub(super) fn granularity_width(granularity: Granularity) -> i64 {
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

/// The start of the series point holding `from`.
fn first_point(from: i64, granularity: Granularity) -> i64 {
    match granularity {
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
    }
}

/// How many points [`series_points`] would give over `[from, to)` without its cap, counted
/// rather than listed.
fn series_point_count(from: i64, to: i64, granularity: Granularity) -> i64 {
    let start = first_point(from, granularity);
    if to <= start {
        return 0;
    }
    let width = match granularity {
        Granularity::Month => {
            let month_index = |ms: i64| {
                let (year, month, _) = civil_from_days(ms.div_euclid(DAY_MS));
                year * 12 + i64::from(month)
            };
            return month_index(to - 1) - month_index(start) + 1;
        }
        Granularity::Week => 7 * DAY_MS,
        other => granularity_width(other),
    };
    (to - start + width - 1) / width
}

/// Start times of the series points covering `[from, to)`; the first point starts at `from`'s
/// bucket.
fn series_points(from: i64, to: i64, granularity: Granularity) -> Vec<i64> {
    let mut points = Vec::new();
    let mut start = first_point(from, granularity);
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

/// The whole UTC days the daily sketches count over for `[from, to)`: their start and end.
fn sketch_days(from: i64, to: i64) -> (i64, i64) {
    let first = from.div_euclid(DAY_MS) * DAY_MS;
    (first, ((to - 1).div_euclid(DAY_MS) * DAY_MS + DAY_MS).max(first))
}

fn rfc3339(ms: i64) -> String {
    Timestamp(ms).to_rfc3339()
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
    fn point_counts_match_the_listed_points() {
        let from = days_from_civil(2026, 11, 22) * DAY_MS + 7 * MINUTE_MS + 5;
        for granularity in [
            Granularity::Minute,
            Granularity::Hour,
            Granularity::Day,
            Granularity::Week,
            Granularity::Month,
        ] {
            for length in [1, MINUTE_MS, HOUR_MS + 1, 3 * DAY_MS, 40 * DAY_MS, 400 * DAY_MS] {
                let listed = series_points(from, from + length, granularity).len();
                if listed <= MAX_SERIES_POINTS {
                    let count = series_point_count(from, from + length, granularity);
                    assert_eq!(count, listed as i64, "{granularity:?} over {length} ms");
                }
            }
        }
    }

    /// A minute series over 90 days was refused as "10001 points" (where listing stopped):
    /// the message gives the 129,600 asked for.
    #[test]
    fn too_many_points_are_refused_with_their_real_number() {
        let engine = Engine::new(EngineConfig::default());
        let from = days_from_civil(2026, 8, 1) * DAY_MS;
        let spec = QuerySpec {
            metrics: vec![Metric::Orders],
            from: Timestamp(from),
            to: Timestamp(from + 90 * DAY_MS),
            granularity: Some(Granularity::Minute),
            filters: Filters::default(),
            group_by: None,
            limit: 100,
            currency: Currency::USD,
            compare: false,
            previous: None,
        };
        let error = engine.query(&spec).err().map(|error| error.to_string()).unwrap_or_default();
        assert!(error.starts_with("granularity: 129600 points;"), "{error}");
    }

    #[test]
    fn averages_round_half_away_from_zero() {
        assert_eq!(average_minor(1001, 2), Some(501));
        assert_eq!(average_minor(1000, 3), Some(333));
        assert_eq!(average_minor(5, 0), None);
    }
}
