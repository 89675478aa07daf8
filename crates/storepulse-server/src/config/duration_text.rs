//! How the configuration's durations are written and read: `#[serde(with = "duration_text")]`
//! on a `Duration` or an `Option<Duration>` field.
//!
//! Reading is humantime's parser (`90days`, `1h 30m`, `250ms`, `3years`). Writing uses the
//! largest unit among days, hours, minutes, seconds and milliseconds that divides the value
//! (`90days`, `26h`, `5m`, `250ms`), as the docs and the example file write them. humantime's own
//! formatter would break 90 days into 30.44-day months ("2months 29days 2h 52m 48s"), which reads
//! back the same but cannot be checked against the docs by eye. What no whole millisecond
//! divides falls back to humantime's form, so every value still reads back to itself.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// A duration as `config print` writes it.
pub fn format(duration: Duration) -> String {
    if duration.is_zero() {
        return "0s".into();
    }
    if !duration.subsec_nanos().is_multiple_of(1_000_000) {
        return humantime::format_duration(duration).to_string();
    }
    let millis = duration.as_millis();
    const UNITS: [(u128, &str, &str); 5] = [
        (86_400_000, "day", "days"),
        (3_600_000, "h", "h"),
        (60_000, "m", "m"),
        (1_000, "s", "s"),
        (1, "ms", "ms"),
    ];
    let (size, one, many) = UNITS
        .into_iter()
        .find(|(size, ..)| millis.is_multiple_of(*size))
        .unwrap_or((1, "ms", "ms"));
    let count = millis / size;
    format!("{count}{}", if count == 1 { one } else { many })
}

/// The field types this module serves.
pub trait DurationField: Sized {
    fn write<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error>;
}

impl DurationField for Duration {
    fn write<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format(*self))
    }
}

impl DurationField for Option<Duration> {
    fn write<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Some(duration) => serializer.serialize_some(&format(*duration)),
            None => serializer.serialize_none(),
        }
    }
}

pub fn serialize<T: DurationField, S: Serializer>(
    value: &T,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    value.write(serializer)
}

pub fn deserialize<'de, T, D>(deserializer: D) -> Result<T, D::Error>
where
    humantime_serde::Serde<T>: Deserialize<'de>,
    D: Deserializer<'de>,
{
    humantime_serde::deserialize(deserializer)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Fields {
        #[serde(with = "super")]
        required: Duration,
        #[serde(with = "super", default)]
        optional: Option<Duration>,
    }

    #[test]
    fn durations_are_written_in_the_largest_unit_that_divides_them() {
        let day = 86_400;
        for (duration, text) in [
            (Duration::from_secs(90 * day), "90days"),
            (Duration::from_secs(180 * day), "180days"),
            (Duration::from_secs(400 * day), "400days"),
            (Duration::from_secs(day), "1day"),
            (Duration::from_secs(day + 2 * 3600), "26h"),
            (Duration::from_secs(3600), "1h"),
            (Duration::from_secs(300), "5m"),
            (Duration::from_secs(10), "10s"),
            (Duration::from_secs(90), "90s"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_millis(1500), "1500ms"),
            (Duration::ZERO, "0s"),
            (Duration::from_micros(1500), "1ms 500us"),
        ] {
            assert_eq!(format(duration), text, "{duration:?}");
        }
    }

    #[test]
    fn config_fields_read_back_what_they_wrote() {
        let fields = Fields {
            required: Duration::from_secs(90 * 86_400),
            optional: Some(Duration::from_millis(250)),
        };
        let text = toml::to_string(&fields).unwrap();
        assert_eq!(text, "required = \"90days\"\noptional = \"250ms\"\n");
        assert_eq!(toml::from_str::<Fields>(&text).unwrap(), fields);
        let unset = Fields { required: Duration::from_secs(26 * 3600), optional: None };
        let text = toml::to_string(&unset).unwrap();
        assert_eq!(text, "required = \"26h\"\n");
        assert_eq!(toml::from_str::<Fields>(&text).unwrap(), unset);
        // humantime's spellings are still read.
        let read: Fields =
            toml::from_str("required = \"1h 30m\"\noptional = \"3years\"\n").unwrap();
        assert_eq!(read.required, Duration::from_secs(5400));
        assert!(read.optional.is_some());
    }

    proptest! {
        #[test]
        fn every_duration_round_trips(secs in 0u64..(1 << 40), nanos in 0u32..1_000_000_000) {
            let duration = Duration::new(secs, nanos);
            let fields = Fields { required: duration, optional: Some(duration) };
            let text = toml::to_string(&fields).unwrap();
            prop_assert_eq!(toml::from_str::<Fields>(&text).unwrap(), fields);
        }

        #[test]
        fn whole_milliseconds_take_one_unit(millis in 0u64..(1 << 45)) {
            let text = format(Duration::from_millis(millis));
            prop_assert!(!text.contains(' '), "{}", text);
        }
    }
}
