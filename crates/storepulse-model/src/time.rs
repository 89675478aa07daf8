//! Timestamps and event-time resolution.
//!
//! Storepulse keeps two times per event: the *event time* (when it happened, as well as we can
//! tell) and the *receive time* (when the server got it). Both are [`Timestamp`]s: milliseconds
//! since the Unix epoch, UTC.
//!
//! Event time comes from the first source that yields a trustworthy value, in this order
//! (seed 4's precedence, with its bugs fixed):
//!
//! 1. the event's own `timestamp` field (validated: a bad value is a field error);
//! 2. client headers `x-timestamp`, `x-client-time`, `x-request-time`, `timestamp`;
//! 3. proxy headers `x-request-start`, `x-queue-start`, `x-request-received`,
//!    `x-forwarded-start` (also in nginx's `t=<seconds.millis>` form);
//! 4. the receive time.
//!
//! A header value that does not parse is skipped silently, never a client error. Numbers are
//! read by magnitude — seconds below 1e11, milliseconds below 1e14, microseconds below 1e17,
//! nanoseconds above — so a present-day millisecond value (≈1.7e12) is never mistaken for
//! microseconds (seed 4 read it as µs and landed in 1970). ISO 8601 values keep their UTC
//! offset (seed 4 dropped it); values without an offset are UTC.
//!
//! A value more than the allowed clock skew in the future, or before 2000-01-01, is not
//! trusted: the next source is tried and the event records that its clock was distrusted.

use std::fmt;

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(pub i64);

/// 2000-01-01T00:00:00Z: anything earlier is a broken clock or a unit mistake, not an event.
pub const EARLIEST_TRUSTED: Timestamp = Timestamp(946_684_800_000);

impl Timestamp {
    pub fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    pub fn as_millis(self) -> i64 {
        self.0
    }

    pub fn from_datetime(datetime: DateTime<Utc>) -> Self {
        Self(datetime.timestamp_millis())
    }

    pub fn to_datetime(self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.0).unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// RFC 3339 with millisecond precision and a `Z` suffix.
    pub fn to_rfc3339(self) -> String {
        self.to_datetime().to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    /// RFC 3339 with millisecond precision and a `+00:00` offset, as Python's `isoformat()`
    /// writes an aware UTC time: the seeds' Python clients read their timestamps with
    /// `datetime.fromisoformat`, which takes no `Z` before Python 3.11.
    pub fn to_python_isoformat(self) -> String {
        self.to_datetime().to_rfc3339_opts(SecondsFormat::Millis, false)
    }

    /// The UTC day number (days since the epoch), used for daily rotations.
    pub fn utc_day(self) -> i64 {
        self.0.div_euclid(86_400_000)
    }

    pub fn saturating_add_millis(self, millis: i64) -> Self {
        Self(self.0.saturating_add(millis))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.to_rfc3339())
    }
}

/// Serde helpers writing a [`Timestamp`] as RFC 3339 text, for JSON documents people read.
/// Reading also accepts the millisecond number.
pub mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::{Timestamp, parse_timestamp_text};

    pub fn serialize<S: Serializer>(time: &Timestamp, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&time.to_rfc3339())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Text(String),
            Millis(i64),
        }
        match Either::deserialize(deserializer)? {
            Either::Millis(millis) => Ok(Timestamp(millis)),
            Either::Text(text) => parse_timestamp_text(&text)
                .ok_or_else(|| serde::de::Error::custom(format_args!("{text:?} is not a time"))),
        }
    }
}

/// Where an event's time came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeSource {
    /// The event's own timestamp field.
    Event,
    /// A client time header such as `x-timestamp`.
    ClientHeader,
    /// A proxy header such as `x-request-start`.
    ProxyHeader,
    /// The server's receive time.
    Received,
}

/// Parses a timestamp written as ISO 8601 / RFC 3339 text or as a Unix time number.
///
/// Returns `None` when the text is neither. The caller decides whether that is an error
/// (event fields) or silently skipped (headers).
pub fn parse_timestamp_text(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if looks_like_date(text) {
        return parse_iso8601(text);
    }
    let number: f64 = text.parse().ok()?;
    timestamp_from_unix_number(number)
}

/// Reads a Unix time number by magnitude: seconds, milliseconds, microseconds or nanoseconds.
pub fn timestamp_from_unix_number(number: f64) -> Option<Timestamp> {
    if !number.is_finite() || number < 0.0 {
        return None;
    }
    let millis = if number < 1e11 {
        number * 1e3
    } else if number < 1e14 {
        number
    } else if number < 1e17 {
        number / 1e3
    } else {
        number / 1e6
    };
    if millis > i64::MAX as f64 {
        return None;
    }
    Some(Timestamp(millis.round() as i64))
}

/// Reads an integer Unix time by magnitude without going through floating point.
pub fn timestamp_from_unix_integer(number: i64) -> Option<Timestamp> {
    if number < 0 {
        return None;
    }
    let millis = if number < 100_000_000_000 {
        number.checked_mul(1000)?
    } else if number < 100_000_000_000_000 {
        number
    } else if number < 100_000_000_000_000_000 {
        number / 1000
    } else {
        number / 1_000_000
    };
    Some(Timestamp(millis))
}

fn looks_like_date(text: &str) -> bool {
    // A leading '-' would be a negative number, which is never a valid time anyway.
    text.contains('T') || text.get(1..).is_some_and(|rest| rest.contains('-'))
}

fn parse_iso8601(text: &str) -> Option<Timestamp> {
    if let Some(time) = parse_common_rfc3339(text) {
        return Some(time);
    }
    if let Ok(datetime) = DateTime::parse_from_rfc3339(text) {
        return Some(Timestamp(datetime.timestamp_millis()));
    }
    // RFC 3339 requires a 'T' or ' ' and a colon in the offset; accept the common variants
    // (`+0000` offsets, a space separator) that ISO 8601 writers produce.
    for format in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%:z"] {
        if let Ok(datetime) = DateTime::parse_from_str(text, format) {
            return Some(Timestamp(datetime.timestamp_millis()));
        }
    }
    // No offset: UTC, as Python's `fromisoformat` users in seed 3 meant it.
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return Some(Timestamp(naive.and_utc().timestamp_millis()));
        }
    }
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return date
            .and_hms_opt(0, 0, 0)
            .map(|naive| Timestamp(naive.and_utc().timestamp_millis()));
    }
    None
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, what nearly every client sends, read
/// without chrono's general parser (a fifth of the cost); `None` for anything else, which
/// chrono then reads (leap seconds, lower-case or space separators, long fractions...).
fn parse_common_rfc3339(text: &str) -> Option<Timestamp> {
    let bytes = text.as_bytes();
    let number = |from: usize, to: usize| -> Option<i64> {
        bytes.get(from..to)?.iter().try_fold(0, |value, &digit| {
            digit.is_ascii_digit().then(|| value * 10 + i64::from(digit - b'0'))
        })
    };
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if !separators.iter().all(|&(at, separator)| bytes.get(at) == Some(&separator)) {
        return None;
    }
    let (year, month, day) = (number(0, 4)?, number(5, 7)?, number(8, 10)?);
    let (hour, minute, second) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
    if !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut at = 19;
    let mut millis = 0;
    if bytes.get(at) == Some(&b'.') {
        let start = at + 1;
        at = start;
        while bytes.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        if !(1..=9).contains(&(at - start)) {
            return None;
        }
        // Milliseconds are the first three digits: chrono truncates the rest too.
        for index in start..start + 3 {
            let digit = bytes.get(index).filter(|_| index < at).map_or(0, |digit| digit - b'0');
            millis = millis * 10 + i64::from(digit);
        }
    }
    let offset_minutes = match bytes.get(at..)? {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (hours, minutes) = (number(at + 1, at + 3)?, number(at + 4, at + 6)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            if *sign == b'-' { -(hours * 60 + minutes) } else { hours * 60 + minutes }
        }
        _ => return None,
    };
    let minutes = (days_from_civil(year, month, day) * 24 + hour) * 60 + minute - offset_minutes;
    Some(Timestamp(minutes * 60_000 + second * 1000 + millis))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Client time headers, in precedence order.
pub const CLIENT_TIME_HEADERS: [&str; 4] =
    ["x-timestamp", "x-client-time", "x-request-time", "timestamp"];

/// Proxy time headers, in precedence order.
pub const PROXY_TIME_HEADERS: [&str; 4] =
    ["x-request-start", "x-queue-start", "x-request-received", "x-forwarded-start"];

/// Parses a proxy time header: a Unix number, optionally in nginx's `t=<value>` form.
pub fn parse_proxy_time(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    let text = text.strip_prefix("t=").unwrap_or(text);
    let number: f64 = text.parse().ok()?;
    timestamp_from_unix_number(number)
}

/// The trust window for event times, relative to the receive time.
#[derive(Clone, Copy, Debug)]
pub struct ClockPolicy {
    /// How far in the future (relative to receive time) an event time may be.
    pub max_future_skew_ms: i64,
}

impl Default for ClockPolicy {
    fn default() -> Self {
        Self { max_future_skew_ms: 10 * 60 * 1000 }
    }
}

impl ClockPolicy {
    /// Whether `time` is plausible for an event received at `received_at`.
    pub fn trusts(&self, time: Timestamp, received_at: Timestamp) -> bool {
        time >= EARLIEST_TRUSTED && time.0 <= received_at.0.saturating_add(self.max_future_skew_ms)
    }
}

/// The time a request's headers claim, resolved once per request.
///
/// Serialized (time as RFC 3339 text) where it is kept beside a payload to be validated later,
/// such as a dead letter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderTime {
    #[serde(with = "rfc3339")]
    pub time: Timestamp,
    pub source: TimeSource,
    /// A header before it in the precedence held a time that was not trusted (too far in the
    /// future, or before 2000): the event is marked `clock_distrusted`. When no header is
    /// trusted, `time` is the receive time and `source` [`TimeSource::Received`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub distrusted: bool,
}

/// Resolves the header part of the precedence (steps 2 and 3 above).
///
/// `header` looks a header up by lower-case name. Untrusted values are skipped so a later,
/// saner header can still win.
pub fn resolve_header_time<'a>(
    header: impl Fn(&str) -> Option<&'a str>,
    received_at: Timestamp,
    policy: ClockPolicy,
) -> Option<HeaderTime> {
    let mut distrusted = false;
    let mut trusted = |time: Timestamp| {
        let trusts = policy.trusts(time, received_at);
        distrusted |= !trusts;
        trusts
    };
    for name in CLIENT_TIME_HEADERS {
        if let Some(time) = header(name).and_then(parse_timestamp_text)
            && trusted(time)
        {
            return Some(HeaderTime { time, source: TimeSource::ClientHeader, distrusted });
        }
    }
    for name in PROXY_TIME_HEADERS {
        if let Some(time) = header(name).and_then(parse_proxy_time)
            && trusted(time)
        {
            return Some(HeaderTime { time, source: TimeSource::ProxyHeader, distrusted });
        }
    }
    distrusted.then_some(HeaderTime {
        time: received_at,
        source: TimeSource::Received,
        distrusted: true,
    })
}

/// The event time finally chosen for one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResolvedTime {
    pub time: Timestamp,
    pub source: TimeSource,
    /// The event carried a time we did not trust (too far in the future or before 2000).
    pub distrusted_event_clock: bool,
}

/// Applies the full precedence for one event.
pub fn resolve_event_time(
    event_time: Option<Timestamp>,
    header_time: Option<HeaderTime>,
    received_at: Timestamp,
    policy: ClockPolicy,
) -> ResolvedTime {
    let mut distrusted_event_clock = false;
    if let Some(time) = event_time {
        if policy.trusts(time, received_at) {
            return ResolvedTime { time, source: TimeSource::Event, distrusted_event_clock };
        }
        distrusted_event_clock = true;
    }
    match header_time {
        Some(header) => ResolvedTime {
            time: header.time,
            source: header.source,
            distrusted_event_clock: distrusted_event_clock || header.distrusted,
        },
        None => {
            ResolvedTime { time: received_at, source: TimeSource::Received, distrusted_event_clock }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    #[test]
    fn python_isoformat_has_an_offset_not_z() {
        let time = super::Timestamp(1_767_225_600_123);
        assert_eq!(time.to_python_isoformat(), "2026-01-01T00:00:00.123+00:00");
        assert_eq!(time.to_rfc3339(), "2026-01-01T00:00:00.123Z");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3_000))]

        /// The common-form reader must agree with chrono wherever it answers, and answer for
        /// every valid time in that form.
        #[test]
        fn the_common_rfc3339_reader_agrees_with_chrono(
            date in (0..10_000_i64, 0..14_i64, 0..33_i64),
            time in (0..25_i64, 0..61_i64, 0..61_i64),
            fraction in prop::option::of("[0-9]{0,10}"),
            offset in prop_oneof![
                Just("Z".to_owned()),
                Just("z".to_owned()),
                (prop::bool::ANY, 0..25_i64, 0..61_i64).prop_map(|(minus, hours, minutes)| {
                    format!("{}{hours:02}:{minutes:02}", if minus { '-' } else { '+' })
                }),
                Just("+0100".to_owned()),
            ],
        ) {
            let (year, month, day) = date;
            let (hour, minute, second) = time;
            let fraction = fraction.map(|digits| format!(".{digits}")).unwrap_or_default();
            let text = format!(
                "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{fraction}{offset}"
            );
            let chrono = DateTime::parse_from_rfc3339(&text).ok().map(|time| time.timestamp_millis());
            let ours = parse_common_rfc3339(&text).map(|time| time.0);
            if ours.is_some() {
                prop_assert_eq!(ours, chrono, "{}", text);
            }
            // What the reader leaves to chrono: leap seconds, a lower-case `z`, an empty or a
            // longer-than-nanosecond fraction.
            let common = second < 60
                && offset != "z"
                && (fraction.is_empty() || (2..=10).contains(&fraction.len()));
            if chrono.is_some() && common {
                prop_assert_eq!(ours, chrono, "{}", text);
            }
        }
    }

    use super::*;

    const RECEIVED: Timestamp = Timestamp(1_763_000_000_000); // 2025-11-13

    fn iso(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text).unwrap().timestamp_millis()
    }

    #[test]
    fn numbers_are_read_by_magnitude() {
        let cases = [
            ("1763000000", 1_763_000_000_000),
            ("1763000000.5", 1_763_000_000_500),
            ("1763000000123", 1_763_000_000_123),
            ("1763000000123456", 1_763_000_000_123),
            ("1763000000123456789", 1_763_000_000_123),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_timestamp_text(text), Some(Timestamp(expected)), "{text}");
        }
    }

    #[test]
    fn present_day_milliseconds_are_not_read_as_microseconds() {
        // Seed 4 bug: 1.7e12 > 1e12 made it microseconds, i.e. 1970.
        assert_eq!(parse_proxy_time("1763000000123"), Some(Timestamp(1_763_000_000_123)));
    }

    #[test]
    fn iso_offsets_are_converted_to_utc() {
        // Seed 4 bug: the +02:00 offset was dropped without conversion.
        let parsed = parse_timestamp_text("2025-11-13T12:00:00+02:00").unwrap();
        assert_eq!(parsed.0, iso("2025-11-13T10:00:00Z"));
        assert_eq!(parse_timestamp_text("2025-11-13T10:00:00Z").unwrap().0, parsed.0);
        assert_eq!(parse_timestamp_text("2025-11-13T12:00:00+0200").unwrap().0, parsed.0);
    }

    #[test]
    fn iso_without_offset_is_utc() {
        assert_eq!(
            parse_timestamp_text("2025-11-13T10:00:00.250").unwrap().0,
            iso("2025-11-13T10:00:00.250Z")
        );
        assert_eq!(
            parse_timestamp_text("2025-11-13 10:00:00").unwrap().0,
            iso("2025-11-13T10:00:00Z")
        );
    }

    #[test]
    fn garbage_is_none() {
        for text in ["", "not-a-date", "abc", "2025-13-45T99:00:00Z", "-5", "NaN", "inf"] {
            assert_eq!(parse_timestamp_text(text), None, "{text:?}");
        }
    }

    #[test]
    fn nginx_t_form_is_understood() {
        assert_eq!(parse_proxy_time("t=1763000000.123"), Some(Timestamp(1_763_000_000_123)));
    }

    fn headers<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
        move |name| pairs.iter().find(|(key, _)| *key == name).map(|(_, value)| *value)
    }

    #[test]
    fn client_headers_win_over_proxy_headers_in_order() {
        let pairs = [
            ("x-request-start", "1762999990000"),
            ("x-client-time", "1762999995"),
            ("timestamp", "1762999999"),
        ];
        let resolved = resolve_header_time(headers(&pairs), RECEIVED, ClockPolicy::default());
        assert_eq!(
            resolved,
            Some(HeaderTime {
                time: Timestamp(1_762_999_995_000),
                source: TimeSource::ClientHeader,
                distrusted: false,
            })
        );
    }

    #[test]
    fn each_client_header_is_honoured() {
        for name in CLIENT_TIME_HEADERS {
            let pairs = [(name, "2025-11-13T01:00:00Z")];
            let resolved =
                resolve_header_time(headers(&pairs), RECEIVED, ClockPolicy::default()).unwrap();
            assert_eq!(resolved.time.0, iso("2025-11-13T01:00:00Z"), "{name}");
            assert_eq!(resolved.source, TimeSource::ClientHeader);
        }
    }

    #[test]
    fn each_proxy_header_is_honoured() {
        for name in PROXY_TIME_HEADERS {
            let pairs = [(name, "t=1762999000.5")];
            let resolved =
                resolve_header_time(headers(&pairs), RECEIVED, ClockPolicy::default()).unwrap();
            assert_eq!(resolved.time, Timestamp(1_762_999_000_500), "{name}");
            assert_eq!(resolved.source, TimeSource::ProxyHeader);
        }
    }

    #[test]
    fn unparseable_headers_are_skipped_silently() {
        let pairs = [("x-timestamp", "yesterday"), ("x-queue-start", "1762999000")];
        let resolved =
            resolve_header_time(headers(&pairs), RECEIVED, ClockPolicy::default()).unwrap();
        assert_eq!(resolved.time, Timestamp(1_762_999_000_000));
        assert_eq!(resolved.source, TimeSource::ProxyHeader);
    }

    #[test]
    fn future_times_beyond_skew_are_not_trusted() {
        let policy = ClockPolicy { max_future_skew_ms: 60_000 };
        let far_future = RECEIVED.saturating_add_millis(3_600_000);
        let resolved = resolve_event_time(Some(far_future), None, RECEIVED, policy);
        assert_eq!(resolved.time, RECEIVED);
        assert_eq!(resolved.source, TimeSource::Received);
        assert!(resolved.distrusted_event_clock);

        let near_future = RECEIVED.saturating_add_millis(30_000);
        let resolved = resolve_event_time(Some(near_future), None, RECEIVED, policy);
        assert_eq!(resolved.time, near_future);
        assert!(!resolved.distrusted_event_clock);
    }

    #[test]
    fn a_distrusted_header_time_marks_the_event_whichever_source_wins() {
        // A client clock an hour ahead: the proxy's time is used, and the event is marked.
        let ahead = (RECEIVED.0 / 1000 + 3600).to_string();
        let proxy = format!("t={}", RECEIVED.0 / 1000 - 5);
        let pairs = [("x-timestamp", ahead.as_str()), ("x-request-start", proxy.as_str())];
        let header = resolve_header_time(headers(&pairs), RECEIVED, ClockPolicy::default());
        let resolved = resolve_event_time(None, header, RECEIVED, ClockPolicy::default());
        assert_eq!(resolved.source, TimeSource::ProxyHeader);
        assert!(resolved.distrusted_event_clock);
        // Only a distrusted header: the receive time, marked.
        let pairs = [("x-timestamp", ahead.as_str())];
        let header = resolve_header_time(headers(&pairs), RECEIVED, ClockPolicy::default());
        let resolved = resolve_event_time(None, header, RECEIVED, ClockPolicy::default());
        assert_eq!((resolved.time, resolved.source), (RECEIVED, TimeSource::Received));
        assert!(resolved.distrusted_event_clock);
    }

    #[test]
    fn times_before_2000_are_not_trusted() {
        let pairs = [("x-request-start", "1763000000")]; // fine
        let header = resolve_header_time(headers(&pairs), RECEIVED, ClockPolicy::default());
        let resolved =
            resolve_event_time(Some(Timestamp(1_000)), header, RECEIVED, ClockPolicy::default());
        assert_eq!(resolved.source, TimeSource::ProxyHeader);
        assert!(resolved.distrusted_event_clock);
    }

    #[test]
    fn event_time_wins_over_headers() {
        let header = Some(HeaderTime {
            time: Timestamp(1_762_000_000_000),
            source: TimeSource::ClientHeader,
            distrusted: false,
        });
        let event = Timestamp(1_762_500_000_000);
        let resolved = resolve_event_time(Some(event), header, RECEIVED, ClockPolicy::default());
        assert_eq!(
            resolved,
            ResolvedTime { time: event, source: TimeSource::Event, distrusted_event_clock: false }
        );
    }

    #[test]
    fn without_any_source_the_receive_time_is_used() {
        let resolved = resolve_event_time(None, None, RECEIVED, ClockPolicy::default());
        assert_eq!(resolved.time, RECEIVED);
        assert_eq!(resolved.source, TimeSource::Received);
    }
}
