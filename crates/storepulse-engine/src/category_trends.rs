//! Category trends (seed 1, computed instead of imported): for each category at levels 1–3 and
//! each country, revenue change over the last day, week and month against the period before,
//! as fractions (0.0031 = +0.31 %), and a trend score.
//!
//! Seed 1 defined a score, exclusions, outlier caps and a minimum revenue but used none of
//! them (it ranked by weekly change only); here they all apply:
//! `score = daily_weight × daily_change + weekly_weight × weekly_change`, rows of excluded
//! categories, rows whose |daily| or |weekly| change exceeds its cap, rows whose |weekly|
//! change is below the minimum and rows with less current-week revenue than the minimum are
//! dropped. Gainers have a positive score (highest first), losers a negative one (lowest
//! first); a change is `None` when the previous period had no revenue, and such rows rank by
//! the changes they have. The same rows can come from seed 1's CSV (see [`TrendRow`]).
//! [`select`] gives the rows themselves, filtered and scored alike, without the ranking's
//! exclusions, caps and minimums.
//!
//! An excluded category is left out of its parents too: computed rows of its ancestors
//! (`Gifts` above an excluded `Gifts > Religious & Ceremonial`) leave out its revenue, so a
//! parent does not rise or fall with what was excluded (see
//! `Engine::category_trend_rows`). Its own rows, and those below it, are still computed, for
//! [`select`], and never ranked. Imported rows arrive with their changes already computed
//! upstream, so there only the excluded rows themselves can be left out.

use serde::{Deserialize, Serialize};
use storepulse_model::validate::country_code;

/// One category × country row, computed or imported.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrendRow {
    /// The date the changes are as of (`YYYY-MM-DD`).
    pub event_date: String,
    pub country: String,
    pub category_level_1: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category_level_2: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category_level_3: Option<String>,
    /// This week's revenue in major units (computed rows only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revenue_week: Option<f64>,
    pub revenue_daily_change: Option<f64>,
    pub revenue_weekly_change: Option<f64>,
    pub revenue_monthly_change: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commission_daily_change: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commission_weekly_change: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commission_monthly_change: Option<f64>,
    /// Filled by [`rank`] and [`select`] from the configured weights (0 until then).
    #[serde(default)]
    pub score: f64,
}

impl TrendRow {
    /// The deepest category level this row is about.
    pub fn level(&self) -> u8 {
        if self.category_level_3.is_some() {
            3
        } else if self.category_level_2.is_some() {
            2
        } else {
            1
        }
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        [
            Some(self.category_level_1.as_str()),
            self.category_level_2.as_deref(),
            self.category_level_3.as_deref(),
        ]
        .into_iter()
        .flatten()
    }
}

/// Score weights and filters (seed 1's settings, applied).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrendSettings {
    pub daily_weight: f64,
    pub weekly_weight: f64,
    /// Category names (any level, case-insensitive) left out.
    pub excluded_categories: Vec<String>,
    /// Rows with |daily change| above this fraction are outliers (3.0 = 300 %).
    pub max_daily_change: f64,
    pub max_weekly_change: f64,
    /// Rows with |weekly change| below this fraction are noise (0.01 = 1 %).
    pub min_weekly_change: f64,
    /// Computed rows with less revenue this week (major units) are left out.
    pub min_revenue: f64,
}

impl TrendSettings {
    /// Whether one level's category name is excluded (`excluded_categories`, any case).
    pub fn excludes(&self, name: &str) -> bool {
        let name = name.trim().to_lowercase();
        self.excluded_categories.iter().any(|excluded| excluded.trim().to_lowercase() == name)
    }
}

impl Default for TrendSettings {
    fn default() -> Self {
        Self {
            daily_weight: 0.1,
            weekly_weight: 0.9,
            excluded_categories: vec!["religious & ceremonial".into()],
            max_daily_change: 3.0,
            max_weekly_change: 3.0,
            min_weekly_change: 0.01,
            min_revenue: 0.0,
        }
    }
}

/// What a ranking is about.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrendFilter {
    /// Any level of the row's path must equal this (case-insensitive).
    pub category: Option<String>,
    pub country: Option<String>,
    /// Only rows of this level (1–3).
    pub level: Option<u8>,
}

/// Gainers and losers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ranking {
    pub gainers: Vec<TrendRow>,
    pub losers: Vec<TrendRow>,
}

impl TrendFilter {
    /// Whether `row` is one this filter asks for.
    pub fn admits(&self, row: &TrendRow) -> bool {
        self.category
            .as_deref()
            .is_none_or(|wanted| row.names().any(|name| name.eq_ignore_ascii_case(wanted)))
            && self.country.as_deref().is_none_or(|wanted| same_country(&row.country, wanted))
            && self.level.is_none_or(|level| row.level() == level)
    }
}

/// Countries compared as ingest stores them, as ISO codes: seed 1's `UK` is ISO's `GB`
/// (computed rows say `GB`, seed 1's file `UK`), and an English name is its code (seed 1's file
/// says `AUSTRALIA` where computed rows say `AU`), so a filter written either way finds both.
/// Imported rows keep the spelling of their file (seed 1's clients filter and show it); other
/// text that is neither a code nor a known name compares as text.
fn same_country(a: &str, b: &str) -> bool {
    match (country_code(a), country_code(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a.trim().eq_ignore_ascii_case(b.trim()),
    }
}

/// `daily_weight × daily change + weekly_weight × weekly change` (a missing change counts 0),
/// to 6 decimals: binary floating point otherwise shows `0.1 × -2 + 0.9 × 0.2` as
/// `-0.01999999999999999`.
pub fn score(row: &TrendRow, settings: &TrendSettings) -> f64 {
    let score = settings.daily_weight * row.revenue_daily_change.unwrap_or(0.0)
        + settings.weekly_weight * row.revenue_weekly_change.unwrap_or(0.0);
    (score * 1e6).round() / 1e6
}

/// The rows `filter` asks for, each with its [`score`], in their order, at most `limit`: the
/// data behind a ranking (seed 1's `/api/trends`), so the ranking's exclusions, caps and
/// minimums do not apply.
pub fn select(
    rows: &[TrendRow],
    settings: &TrendSettings,
    filter: &TrendFilter,
    limit: usize,
) -> Vec<TrendRow> {
    rows.iter()
        .filter(|row| filter.admits(row))
        .take(limit)
        .map(|row| TrendRow { score: score(row, settings), ..row.clone() })
        .collect()
}

/// Scores, filters and splits rows into gainers (descending) and losers (ascending).
pub fn rank(
    rows: &[TrendRow],
    settings: &TrendSettings,
    filter: &TrendFilter,
    limit: usize,
) -> Ranking {
    let kept: Vec<TrendRow> = rows
        .iter()
        .filter(|row| !row.names().any(|name| settings.excludes(name)))
        .filter(|row| filter.admits(row))
        .filter(|row| row.revenue_daily_change.is_none_or(|c| c.abs() <= settings.max_daily_change))
        .filter(|row| {
            row.revenue_weekly_change.is_none_or(|c| {
                c.abs() <= settings.max_weekly_change && c.abs() >= settings.min_weekly_change
            })
        })
        .filter(|row| row.revenue_week.is_none_or(|revenue| revenue >= settings.min_revenue))
        .map(|row| TrendRow { score: score(row, settings), ..row.clone() })
        .collect();
    // Stable sorts: rows of equal score stay in the rows' order on both sides (losers were the
    // gainers' order reversed, so a tie listed level 2 before level 1 there).
    let by_score = |a: &TrendRow, b: &TrendRow| a.score.partial_cmp(&b.score);
    let mut gainers: Vec<TrendRow> = kept.iter().filter(|row| row.score > 0.0).cloned().collect();
    gainers.sort_by(|a, b| by_score(b, a).unwrap_or(std::cmp::Ordering::Equal));
    let mut losers: Vec<TrendRow> = kept.iter().filter(|row| row.score < 0.0).cloned().collect();
    losers.sort_by(|a, b| by_score(a, b).unwrap_or(std::cmp::Ordering::Equal));
    gainers.truncate(limit);
    losers.truncate(limit);
    Ranking { gainers, losers }
}

/// Seed 1's ticker: the top 5 gainers and top 5 losers across all countries.
pub fn ticker(
    rows: &[TrendRow],
    settings: &TrendSettings,
    category: Option<String>,
) -> Vec<TrendRow> {
    let ranking = rank(rows, settings, &TrendFilter { category, ..TrendFilter::default() }, 5);
    ranking.gainers.into_iter().chain(ranking.losers).collect()
}

/// `(current − previous) / previous`, `None` when previous is 0.
/// Sums are 128-bit: revenue of many orders of the largest accepted amount overflows 64 bits.
pub fn change(current: i128, previous: i128) -> Option<f64> {
    (previous != 0).then(|| {
        let value = (current - previous) as f64 / previous as f64;
        (value * 10_000.0).round() / 10_000.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(category: &str, country: &str, daily: f64, weekly: f64) -> TrendRow {
        TrendRow {
            event_date: "2025-02-09".into(),
            country: country.into(),
            category_level_1: category.into(),
            category_level_2: None,
            category_level_3: None,
            revenue_week: None,
            revenue_daily_change: Some(daily),
            revenue_weekly_change: Some(weekly),
            revenue_monthly_change: None,
            commission_daily_change: None,
            commission_weekly_change: None,
            commission_monthly_change: None,
            score: 0.0,
        }
    }

    #[test]
    fn score_exclusions_caps_and_split() {
        let rows = vec![
            row("toys", "US", 1.0, 0.5),    // 0.1 + 0.45 = 0.55
            row("garden", "US", -2.0, 0.2), // -0.2 + 0.18 = -0.02
            row("books", "US", 0.0, -0.3),  // -0.27
            row("Religious & Ceremonial", "US", 0.0, 0.9),
            row("outlier", "US", 5.0, 0.5), // daily beyond the cap
            row("flat", "US", 0.5, 0.001),  // weekly below the minimum
            row("toys", "DE", 0.0, 0.2),
        ];
        let ranking = rank(
            &rows,
            &TrendSettings::default(),
            &TrendFilter { country: Some("us".into()), ..TrendFilter::default() },
            10,
        );
        let names =
            |rows: &[TrendRow]| rows.iter().map(|r| r.category_level_1.clone()).collect::<Vec<_>>();
        assert_eq!(names(&ranking.gainers), ["toys"]);
        assert_eq!(names(&ranking.losers), ["books", "garden"]);
        assert!((ranking.gainers[0].score - 0.55).abs() < 1e-9);
        // Shown as written, without binary floating point's tail.
        assert_eq!(ranking.losers[1].score.to_string(), "-0.02");
        let ticker = ticker(&rows, &TrendSettings::default(), None);
        assert_eq!(names(&ticker), ["toys", "toys", "books", "garden"]);
        // Equal scores keep the rows' order on both sides.
        let ties = vec![
            row("a", "US", 0.0, 0.5),
            row("b", "US", 0.0, 0.5),
            row("c", "US", 0.0, -0.5),
            row("d", "US", 0.0, -0.5),
        ];
        let ranking = rank(&ties, &TrendSettings::default(), &TrendFilter::default(), 10);
        assert_eq!(
            (names(&ranking.gainers), names(&ranking.losers)),
            (vec!["a".to_owned(), "b".into()], vec!["c".to_owned(), "d".into()])
        );
        assert_eq!(change(110, 100), Some(0.1));
        assert_eq!(change(5, 0), None);
    }

    /// Seed 1's file names countries (`AUSTRALIA`) where computed rows have codes (`AU`): a
    /// `country=AU` filter missed the imported rows, and `country=AUSTRALIA` the computed ones.
    #[test]
    fn a_country_filter_matches_its_code_and_its_english_name() {
        let rows = [
            row("toys", "AUSTRALIA", 0.0, 0.5),
            row("toys", "AU", 0.0, 0.5),
            row("toys", "UK", 0.0, 0.5),
            row("toys", "United States", 0.0, 0.5),
            row("toys", "AT", 0.0, 0.5),
            row("toys", "Atlantis", 0.0, 0.5),
        ];
        let countries = |wanted: &str| {
            let filter = TrendFilter { country: Some(wanted.into()), ..TrendFilter::default() };
            rows.iter()
                .filter(|row| filter.admits(row))
                .map(|row| row.country.clone())
                .collect::<Vec<_>>()
        };
        for wanted in ["AU", "au", "AUSTRALIA", "Australia", " australia "] {
            assert_eq!(countries(wanted), ["AUSTRALIA", "AU"], "{wanted}");
        }
        assert_eq!(countries("GB"), ["UK"]);
        assert_eq!(countries("United Kingdom"), ["UK"]);
        assert_eq!(countries("US"), ["United States"]);
        assert_eq!(countries("AT"), ["AT"]);
        assert_eq!(countries("atlantis"), ["Atlantis"]);
    }

    /// Rows are scored as the ranking scores them (they were listed with 0.0) and filtered,
    /// outliers and excluded categories included: they are the data, not the ranking.
    #[test]
    fn selected_rows_are_scored_filtered_and_limited() {
        let rows = vec![
            row("toys", "US", 1.0, 0.5),
            row("outlier", "US", 5.0, 0.5),
            row("toys", "DE", 0.0, 0.2),
        ];
        let settings = TrendSettings::default();
        let us = TrendFilter { country: Some("us".into()), ..TrendFilter::default() };
        let selected = select(&rows, &settings, &us, 10);
        let scores: Vec<f64> = selected.iter().map(|row| row.score).collect();
        assert_eq!(scores.len(), 2);
        assert!((scores[0] - 0.55).abs() < 1e-9 && (scores[1] - 0.95).abs() < 1e-9, "{scores:?}");
        assert_eq!(select(&rows, &settings, &us, 1).len(), 1);
        let level_2 = TrendFilter { level: Some(2), ..TrendFilter::default() };
        assert!(select(&rows, &settings, &level_2, 10).is_empty());
    }
}
