//! Product answers: trending scores, recommendations, category trends and funnels.

use super::*;
use crate::bucket::Bucket;
use crate::recommend::StoreScope;

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

impl Engine {
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
        let mut add = |span: crate::rollup::Span, rows: &crate::bucket::Bucket| {
            let middle = span.start + span.width_ms / 2;
            let age = (now_ms - middle).max(0) as f64;
            let decay = (-age / half_life).exp2();
            for (key, m) in rows.iter() {
                if matcher.admits(key, &self.dims) {
                    let weighted = weights.view * m.product_views as f64
                        + weights.cart * m.cart_adds as f64
                        + weights.checkout * m.checkouts as f64
                        + weights.purchase * m.orders as f64;
                    *scores.entry(key.product).or_default() += weighted * decay;
                }
            }
        };
        // Minutes where they are kept (two days by default), hours for the rest of the last
        // week, days before that. Read by hour, a view at 05:00 and one at 05:59 scored alike
        // (the hour's middle), so recency within an hour did not rank, and with a one-hour
        // half-life a view 30 minutes old scored 17 % low.
        let week_ago = now_ms - 7 * DAY_MS;
        let end = now_ms + MINUTE_MS;
        // The finer buckets start where the days' ended, so that no bucket is read twice.
        let mut recent_from = now_ms - horizon;
        if now_ms - horizon < week_ago {
            recent_from = self.rollups.scan(now_ms - horizon, week_ago, DAY_MS, &mut add).1;
        }
        self.rollups.scan(recent_from, end, MINUTE_MS, &mut add);
        // Ranked by the score as shown: the sums' last bits depend on the order the rows were
        // visited in (hash-map order, which differs after a restart), and products whose
        // shown scores are equal must keep one order, by id.
        let mut ranked: Vec<(u32, f64)> = scores
            .into_iter()
            .filter(|(_, score)| *score > 0.0)
            // Bounded weights keep scores finite; a registry written before they were bounded
            // could still overflow, and JSON has no infinity (it would read `null`).
            .map(|(id, score)| (id, round4(score).min(f64::MAX)))
            .collect();
        ranked.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.truncate(k);
        ranked.into_iter().map(|(id, score)| self.scored(id, score)).collect()
    }

    fn scored(&self, id: u32, score: f64) -> ScoredProduct {
        ScoredProduct {
            product_id: self.dims.products.name(id).unwrap_or_default().to_owned(),
            name: self.dims.product_names.get(&id).map(|(_, name)| name.to_string()),
            score,
        }
    }

    /// Category trend rows as of `now` (see [`crate::category_trends`]): for each category at
    /// levels 1–3 and each country, revenue (in `currency`) of the last day, 7 days and 30
    /// days against the period before each. A category `settings` excludes adds nothing to
    /// its ancestors' rows (its revenue is in its own rows and those below it only, which the
    /// ranking drops), so that excluding it excludes it from every row ranked.
    pub fn category_trend_rows(
        &self,
        now: Timestamp,
        currency: Currency,
        settings: &TrendSettings,
    ) -> Vec<TrendRow> {
        self.category_trend_rows_of(now, currency, settings, None)
    }

    /// [`Engine::category_trend_rows`] of one store's sales (`None`: every store's; an unknown
    /// store has none).
    pub fn category_trend_rows_of(
        &self,
        now: Timestamp,
        currency: Currency,
        settings: &TrendSettings,
        store: Option<&str>,
    ) -> Vec<TrendRow> {
        let money = currency_bytes(currency);
        let filters = Filters { store: store.map(str::to_owned), ..Filters::default() };
        let Some(mut matcher) = self.matcher(&filters, None) else { return Vec::new() };
        matcher.product_level = true;
        // Category id → whether its own level's name is excluded (ids are paths: the name is
        // the last segment).
        let mut excluded: FastMap<u32, bool> = FastMap::default();
        let mut is_excluded = |category: u32| -> bool {
            *excluded.entry(category).or_insert_with(|| {
                self.dims.categories.name(category).is_some_and(|path| {
                    settings.excludes(path.rsplit(" > ").next().unwrap_or(path))
                })
            })
        };
        // Per product (and store filing): the first of its levels its revenue counts in, the
        // first excluded one when one is (0 otherwise).
        let mut first_counted: FastMap<(u32, u32), usize> = FastMap::default();
        let excludes_any = !settings.excluded_categories.is_empty();
        // (category id, country id) → [day, previous day, week, previous week, month, previous month]
        let mut sums: FastMap<(u32, u32), [i128; 6]> = FastMap::default();
        for (index, length) in [DAY_MS, 7 * DAY_MS, 30 * DAY_MS].into_iter().enumerate() {
            let mut add = |slot: usize, rows: &Bucket| {
                for (key, measures) in rows.iter() {
                    if key.currency != money || !matcher.admits(key, &self.dims) {
                        continue;
                    }
                    let path = self.dims.categories_of(key.store, key.product);
                    let path = &path[..path.len().min(3)];
                    let first = if excludes_any {
                        *first_counted.entry((key.store, key.product)).or_insert_with(|| {
                            path.iter().position(|&category| is_excluded(category)).unwrap_or(0)
                        })
                    } else {
                        0
                    };
                    for category in &path[first..] {
                        sums.entry((*category, key.country)).or_default()[slot] +=
                            i128::from(measures.gross_revenue);
                    }
                }
            };
            // The period before is the one before what the last one's buckets covered, so
            // that the bucket holding their boundary counts in one of them only.
            let covered =
                self.rollups.scan(now.0 - length, now.0, DAY_MS, |_, rows| add(2 * index, rows));
            let (from, to) = self.rollups.period_before(covered);
            self.rollups.scan(from, to, DAY_MS, |_, rows| add(2 * index + 1, rows));
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
    /// largest first (by sessions at the first step), at most `limit`. A range starting before
    /// the kept trails is refused (`from`), not answered from the part that is left.
    pub fn funnel(
        &self,
        spec: &FunnelSpec,
        split: FunnelSplit,
        filters: &RealtimeFilter,
        limit: usize,
    ) -> Result<FunnelResult, QueryError> {
        self.check_trails_cover(spec.from_ms, "from", "funnels are counted from session trails")?;
        // By product, sessions are split by the products their first step names: a first
        // step that names none (a page view) would answer no groups at all.
        if matches!(split, FunnelSplit::Product | FunnelSplit::Category(_))
            && !matches!(
                spec.steps[0],
                EventType::ProductView
                    | EventType::AddToCart
                    | EventType::RemoveFromCart
                    | EventType::CheckoutStarted
                    | EventType::Purchase
                    | EventType::Refund
            )
        {
            return Err(QueryError::new(
                "group_by",
                format!(
                    "by product or category the first step must name products ({} names none): \
                     start with product_view, add_to_cart, checkout_started or purchase",
                    spec.steps[0].as_str()
                ),
            ));
        }
        let by_source = split == FunnelSplit::Source;
        self.check_trail_sources(spec.source.as_deref(), by_source, spec.from_ms, "from")?;
        // `None` for a filter naming a source never seen: no session made a step under it.
        let source = match spec.source.as_deref() {
            None => Some(None),
            Some(name) => self.dims.sources.get(name).map(Some),
        };
        let (Some(live), Some(source)) = (self.live_filter(filters), source) else {
            return Ok(FunnelResult {
                overall: FunnelSteps::from_counts(&spec.steps, &vec![0; spec.steps.len()]),
                groups: Vec::new(),
            });
        };
        let group_of = |store: u32, product: u32| -> Option<u32> {
            match split {
                FunnelSplit::Product => Some(product),
                FunnelSplit::Category(level) => {
                    self.dims.categories_of(store, product).get(usize::from(level) - 1).copied()
                }
                _ => None,
            }
        };
        let groups = self.funnels.run(spec, split, (&live, source), group_of);
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
                .run(spec, FunnelSplit::None, (&live, source), |_, _| None)
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
                FunnelSplit::Source => self.dims.sources.name(id),
                FunnelSplit::Product => self.dims.products.name(id),
                FunnelSplit::Category(_) => self.dims.categories.name(id),
                FunnelSplit::None => None,
            }
            .map(str::to_owned)
        };
        Ok(FunnelResult {
            overall: FunnelSteps::from_counts(&spec.steps, &overall_counts),
            groups: ranked
                .into_iter()
                .map(|(id, counts)| FunnelGroup {
                    key: name(id),
                    funnel: FunnelSteps::from_counts(&spec.steps, &counts),
                })
                .collect(),
        })
    }

    /// Products met together with `product` by the most visitors, in `store` (its products
    /// only) or in every store; `None` when the product (or the store) is unknown.
    pub fn together_with_product(
        &self,
        product: &str,
        store: Option<&str>,
        k: usize,
    ) -> Option<Vec<ScoredProduct>> {
        let id = self.dims.products.get(product)?;
        let all_stores = self.store_ids();
        let scope = self.store_scope(store, &all_stores)?;
        Some(
            self.together
                .for_product(id, scope, k)
                .into_iter()
                .map(|(id, count)| self.scored(id, f64::from(count)))
                .collect(),
        )
    }

    /// Recommendations for a visitor from what it met (seed 5's item-item scoring), excluding
    /// those products, in `store` (its visitors and products only) or in every store, as of
    /// `now` (a visitor without events for the co-occurrence window is forgotten); `None`
    /// when the visitor is unknown there.
    pub fn recommend_for_visitor(
        &self,
        visitor: &str,
        store: Option<&str>,
        now: Timestamp,
        k: usize,
    ) -> Option<Vec<ScoredProduct>> {
        let all_stores = self.store_ids();
        let scope = self.store_scope(store, &all_stores)?;
        if self.together.visitor_items(visitor, scope, now.0).is_empty() {
            return None;
        }
        Some(
            self.together
                .for_visitor(visitor, scope, now.0, k)
                .into_iter()
                .map(|(id, count)| self.scored(id, f64::from(count)))
                .collect(),
        )
    }

    /// Every store's id (they are few).
    fn store_ids(&self) -> Vec<u32> {
        (1..=self.dims.stores.len() as u32).collect()
    }

    /// `store`'s scope, or every store's; `None` for a store no event named.
    fn store_scope<'a>(&self, store: Option<&str>, all: &'a [u32]) -> Option<StoreScope<'a>> {
        match store {
            Some(name) => self.dims.stores.get(name).map(StoreScope::One),
            None => Some(StoreScope::All(all)),
        }
    }
}
