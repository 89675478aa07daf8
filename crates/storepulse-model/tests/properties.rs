//! Laws of the model's exact arithmetic and time parsing, over random inputs.

use proptest::prelude::*;
use storepulse_model::money::{Currency, DecimalAmount, Money};
use storepulse_model::time::{Timestamp, parse_timestamp_text, timestamp_from_unix_integer};

/// 2000-01-01 .. 2100-01-01 in milliseconds.
const YEAR_2000_MS: i64 = 946_684_800_000;
const YEAR_2100_MS: i64 = 4_102_444_800_000;

proptest! {
    #[test]
    fn money_text_round_trips_exactly(minor in -1_000_000_000_000i64..1_000_000_000_000, code in prop::sample::select(vec!["USD", "JPY", "KWD", "EUR"])) {
        let currency = Currency::parse(code).unwrap();
        let text = Money::new(minor, currency).to_decimal_string();
        let parsed = DecimalAmount::parse(&text).unwrap().to_minor_units(currency).unwrap();
        prop_assert_eq!(parsed, minor);
    }

    #[test]
    fn json_numbers_with_two_decimals_are_exact_cents(cents in 0i64..10_000_000_000) {
        // What a tracker serialising a float price sends: the shortest decimal of the double.
        let text = format!("{}.{:02}", cents / 100, cents % 100);
        let value: f64 = text.parse().unwrap();
        let amount = DecimalAmount::from_f64(value).unwrap();
        prop_assert_eq!(amount.to_minor_units(Currency::USD).unwrap(), cents);
    }

    #[test]
    fn every_unix_unit_means_the_same_instant(millis in YEAR_2000_MS..YEAR_2100_MS) {
        let expected = Timestamp(millis);
        prop_assert_eq!(timestamp_from_unix_integer(millis), Some(expected));
        prop_assert_eq!(timestamp_from_unix_integer(millis * 1000), Some(expected));
        prop_assert_eq!(timestamp_from_unix_integer(millis * 1_000_000), Some(expected));
        let seconds = millis / 1000;
        prop_assert_eq!(timestamp_from_unix_integer(seconds), Some(Timestamp(seconds * 1000)));
        prop_assert_eq!(parse_timestamp_text(&millis.to_string()), Some(expected));
    }

    #[test]
    fn rfc3339_round_trips(millis in YEAR_2000_MS..YEAR_2100_MS) {
        let time = Timestamp(millis);
        prop_assert_eq!(parse_timestamp_text(&time.to_rfc3339()), Some(time));
    }
}
