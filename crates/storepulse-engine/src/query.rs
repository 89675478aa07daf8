//! The one typed query model: REST builds it from parameters today; GraphQL and the dashboard
//! will build the same value, so the three can never disagree.
//!
//! A query names metrics, a time range, an optional series granularity, filters and an
//! optional group-by. Parsing is here too, so every front end reports a bad value the same
//! way: which parameter, and why.

use serde::Serialize;
use storepulse_model::money::Currency;
use storepulse_model::time::Timestamp;

/// A figure the engine can compute over a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Events,
    PageViews,
    ProductViews,
    CartAdds,
    CartRemoves,
    CheckoutsStarted,
    Orders,
    Units,
    GrossRevenue,
    RefundedRevenue,
    NetRevenue,
    Refunds,
    AverageOrderValue,
    PromotionViews,
    PromotionClicks,
    /// Promotion clicks / promotion views.
    ClickThroughRate,
    /// Orders / checkouts started: a ratio of events, above 1 when orders arrive without
    /// checkout events (seed 4's `/buy`, orders sent by a back office).
    CheckoutConversionRate,
    /// Orders carrying a promotion / promotion clicks (per promotion: purchases that carried
    /// it / its clicks).
    PromotionConversionRate,
    /// Distinct visitors (user id, else anonymous id); a sketch, see [`crate::distinct`].
    Visitors,
    /// Distinct sessions.
    Sessions,
    /// Sessions with a purchase / sessions.
    ConversionRate,
    /// Sessions with a cart add.
    CartSessions,
    /// Sessions with a cart add and no purchase.
    AbandonedCarts,
    /// Abandoned carts / sessions with a cart add.
    CartAbandonmentRate,
    /// What abandoned carts held (adds − removes at line prices), in the query's currency.
    AbandonedCartValue,
    /// Distinct visitors who bought.
    UniqueBuyers,
}

impl Metric {
    pub const ALL: [Metric; 26] = [
        Metric::Events,
        Metric::PageViews,
        Metric::ProductViews,
        Metric::CartAdds,
        Metric::CartRemoves,
        Metric::CheckoutsStarted,
        Metric::Orders,
        Metric::Units,
        Metric::GrossRevenue,
        Metric::RefundedRevenue,
        Metric::NetRevenue,
        Metric::Refunds,
        Metric::AverageOrderValue,
        Metric::PromotionViews,
        Metric::PromotionClicks,
        Metric::ClickThroughRate,
        Metric::CheckoutConversionRate,
        Metric::PromotionConversionRate,
        Metric::Visitors,
        Metric::Sessions,
        Metric::ConversionRate,
        Metric::CartSessions,
        Metric::AbandonedCarts,
        Metric::CartAbandonmentRate,
        Metric::UniqueBuyers,
        Metric::AbandonedCartValue,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::Events => "events",
            Metric::PageViews => "page_views",
            Metric::ProductViews => "product_views",
            Metric::CartAdds => "cart_adds",
            Metric::CartRemoves => "cart_removes",
            Metric::CheckoutsStarted => "checkouts_started",
            Metric::Orders => "orders",
            Metric::Units => "units",
            Metric::GrossRevenue => "gross_revenue",
            Metric::RefundedRevenue => "refunded_revenue",
            Metric::NetRevenue => "net_revenue",
            Metric::Refunds => "refunds",
            Metric::AverageOrderValue => "average_order_value",
            Metric::PromotionViews => "promotion_views",
            Metric::PromotionClicks => "promotion_clicks",
            Metric::ClickThroughRate => "click_through_rate",
            Metric::CheckoutConversionRate => "checkout_conversion_rate",
            Metric::PromotionConversionRate => "promotion_conversion_rate",
            Metric::Visitors => "visitors",
            Metric::Sessions => "sessions",
            Metric::ConversionRate => "conversion_rate",
            Metric::CartSessions => "cart_sessions",
            Metric::AbandonedCarts => "abandoned_carts",
            Metric::CartAbandonmentRate => "cart_abandonment_rate",
            Metric::UniqueBuyers => "unique_buyers",
            Metric::AbandonedCartValue => "abandoned_cart_value",
        }
    }

    pub fn parse(name: &str) -> Option<Metric> {
        let name = name.trim();
        let name = match name {
            "revenue" => "gross_revenue",
            "aov" => "average_order_value",
            "checkouts" => "checkouts_started",
            "ctr" => "click_through_rate",
            "users" => "visitors",
            other => other,
        };
        Metric::ALL.into_iter().find(|metric| metric.name() == name)
    }

    /// Counted from the per-day distinct sketches rather than the additive rollups.
    pub fn is_distinct(self) -> bool {
        matches!(
            self,
            Metric::Visitors
                | Metric::Sessions
                | Metric::ConversionRate
                | Metric::CartSessions
                | Metric::AbandonedCarts
                | Metric::CartAbandonmentRate
                | Metric::UniqueBuyers
                | Metric::AbandonedCartValue
        )
    }

    /// Money figures are answered as exact decimal strings in the query's currency.
    /// Counted on events only, never on the product rows a query by product or category
    /// reads (a page view or a promotion click names no product).
    pub fn is_event_level(self) -> bool {
        matches!(
            self,
            Metric::Events
                | Metric::PageViews
                | Metric::PromotionViews
                | Metric::PromotionClicks
                | Metric::ClickThroughRate
                | Metric::PromotionConversionRate
        )
    }

    pub fn is_money(self) -> bool {
        matches!(
            self,
            Metric::GrossRevenue
                | Metric::RefundedRevenue
                | Metric::NetRevenue
                | Metric::AverageOrderValue
                | Metric::AbandonedCartValue
        )
    }
}

/// What a result can be grouped by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    Store,
    Country,
    Device,
    /// utm_source, else the referrer's host.
    Source,
    Promotion,
    SalesRep,
    Product,
    /// Category at a level of the tree (1 = top).
    Category(u8),
}

impl Dimension {
    pub fn parse(name: &str) -> Option<Dimension> {
        Some(match name.trim() {
            "store" => Dimension::Store,
            "country" => Dimension::Country,
            "device" => Dimension::Device,
            "source" | "marketing_source" | "utm_source" => Dimension::Source,
            "promotion" => Dimension::Promotion,
            "sales_rep" => Dimension::SalesRep,
            "product" => Dimension::Product,
            "category" | "category_1" => Dimension::Category(1),
            "category_2" => Dimension::Category(2),
            "category_3" => Dimension::Category(3),
            "category_4" => Dimension::Category(4),
            "category_5" => Dimension::Category(5),
            _ => return None,
        })
    }

    pub fn name(self) -> String {
        match self {
            Dimension::Store => "store".into(),
            Dimension::Country => "country".into(),
            Dimension::Device => "device".into(),
            Dimension::Source => "source".into(),
            Dimension::Promotion => "promotion".into(),
            Dimension::SalesRep => "sales_rep".into(),
            Dimension::Product => "product".into(),
            Dimension::Category(level) => format!("category_{level}"),
        }
    }

    /// Reads product rows (see [`crate::facts`]).
    pub fn is_product_level(self) -> bool {
        matches!(self, Dimension::Product | Dimension::Category(_))
    }
}

/// Series resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    Minute,
    Hour,
    Day,
    /// Weeks start on Monday, UTC.
    Week,
    /// Calendar months, UTC.
    Month,
}

impl Granularity {
    pub fn parse(name: &str) -> Option<Granularity> {
        Some(match name.trim() {
            "minute" => Granularity::Minute,
            "hour" => Granularity::Hour,
            "day" => Granularity::Day,
            "week" => Granularity::Week,
            "month" => Granularity::Month,
            _ => return None,
        })
    }
}

/// Filters: every one given must match. Text values are as sent in events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filters {
    pub store: Option<String>,
    pub country: Option<String>,
    pub device: Option<storepulse_model::event::DeviceType>,
    pub source: Option<String>,
    pub promotion: Option<String>,
    pub sales_rep: Option<String>,
    pub product: Option<String>,
    /// A category path at any level, `"Apparel"` or `"Apparel > Shoes"`.
    pub category: Option<String>,
    /// Only rows carrying a promotion (any): what the promotions report's totals add up, so
    /// that they are the sum of its promotions rather than of every order.
    pub promoted: bool,
}

impl Filters {
    pub fn is_product_level(&self) -> bool {
        self.product.is_some() || self.category.is_some()
    }
}

/// A whole query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuerySpec {
    pub metrics: Vec<Metric>,
    /// Inclusive start.
    pub from: Timestamp,
    /// Exclusive end.
    pub to: Timestamp,
    pub granularity: Option<Granularity>,
    pub filters: Filters,
    pub group_by: Option<Dimension>,
    /// Groups returned (largest first by the first metric).
    pub limit: usize,
    /// Money metrics count only amounts in this currency.
    pub currency: Currency,
    /// Also compute the previous period, growth and trend.
    pub compare: bool,
    /// The previous period to compare with (`[from, to)`), when it is not the one of equal
    /// length just before: a calendar range's calendar period before (`last_month` against
    /// the month before it, whatever their lengths). `None`: the equal period before.
    pub previous: Option<(Timestamp, Timestamp)>,
}

pub const MAX_GROUPS: usize = 10_000;
pub const MAX_SERIES_POINTS: usize = 10_000;

/// A bad query: the parameter and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{parameter}: {message}")]
pub struct QueryError {
    pub parameter: &'static str,
    pub message: String,
}

impl QueryError {
    pub fn new(parameter: &'static str, message: impl Into<String>) -> Self {
        Self { parameter, message: message.into() }
    }
}

/// A metric's value: a count, an exact amount, or a ratio (`None` when undefined, e.g. an
/// average of nothing).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    Count(u64),
    /// Decimal text in the query's currency, e.g. `"1234.50"`; `None` when undefined.
    Money(Option<String>),
    Ratio(Option<f64>),
}

/// Direction of a series (seed 2's rule): the second half's sum against the first half's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trend {
    Up,
    Down,
    Stable,
}

impl Trend {
    /// `up` when the second half sums to more than the first plus 10 % of the first's size,
    /// `down` when it sums to less than the first minus 10 % of its size, else `stable` (also
    /// for fewer than two points). For a positive first half that is seed 2's 1.1 × / 0.9 ×;
    /// measuring the 10 % on `|first|` keeps a negative first half (net revenue after refunds)
    /// pointing the same way as `growth_percent`: −10 → −10.5 is `down`, not `up`.
    pub fn of(points: &[f64]) -> Trend {
        if points.len() < 2 {
            return Trend::Stable;
        }
        let half = points.len() / 2;
        let first: f64 = points[..half].iter().sum();
        let second: f64 = points[points.len() - half..].iter().sum();
        let margin = first.abs() * 0.1;
        if second > first + margin {
            Trend::Up
        } else if second < first - margin {
            Trend::Down
        } else {
            Trend::Stable
        }
    }
}

/// `(current − previous) / |previous| × 100`, `None` when previous is 0 (seed 2). The absolute
/// value keeps the sign meaning "rose" or "fell" when previous is negative (net revenue after
/// refunds): −10.00 → +5.00 is +150 %, not −150 %.
pub fn growth_percent(current: f64, previous: f64) -> Option<f64> {
    if previous == 0.0 { None } else { Some(round2((current - previous) / previous.abs() * 100.0)) }
}

pub fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

pub fn round4(value: f64) -> f64 {
    (value * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_from_a_negative_previous_value_keeps_the_sign_of_the_change() {
        assert_eq!(growth_percent(5.0, -10.0), Some(150.0));
        assert_eq!(growth_percent(-15.0, -10.0), Some(-50.0));
        assert_eq!(growth_percent(15.0, 10.0), Some(50.0));
        assert_eq!(growth_percent(5.0, 0.0), None);
    }

    #[test]
    fn trend_from_a_negative_first_half_agrees_with_growth() {
        assert_eq!(Trend::of(&[-10.0, 5.0]), Trend::Up);
        assert_eq!(Trend::of(&[-10.0, -10.5]), Trend::Stable);
        assert_eq!(Trend::of(&[-10.0, -12.0]), Trend::Down);
        assert_eq!(Trend::of(&[-10.0, -8.0]), Trend::Up);
        assert_eq!(Trend::of(&[10.0, 12.0]), Trend::Up);
        assert_eq!(Trend::of(&[10.0, 8.0]), Trend::Down);
        assert_eq!(Trend::of(&[0.0, -1.0]), Trend::Down);
    }
}
