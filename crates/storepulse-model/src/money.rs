//! Exact money: integer minor units of an ISO 4217 currency.
//!
//! Amounts arrive as JSON numbers (`19.99`) or strings (`"19.99"`). A JSON number is turned
//! back into its shortest decimal text (what the sender wrote) and parsed as a decimal, so no
//! float arithmetic ever touches a stored amount. An amount with more decimal places than its
//! currency has (`19.999 USD`) is rejected rather than rounded, with one exception: the noise
//! of a sender's own float arithmetic (`0.1 + 0.2` sent as `0.30000000000000004`, a line
//! total `59.970000000000006`), which is within a few units in the last place of a 64-bit
//! float of an amount the currency can hold, is read as that amount. Such digits say nothing
//! the sender meant, and refusing them would lose the whole order.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// An ISO 4217 alphabetic currency code, upper case. Serialized as its code (`"USD"`) in
/// human-readable formats (JSON: `log inspect`, answers) and as its three bytes in binary ones
/// (snapshots), which is what they always held.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Currency([u8; 3]);

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(self.code())
        } else {
            self.0.serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let code = std::borrow::Cow::<str>::deserialize(deserializer)?;
            Currency::parse(&code).ok_or_else(|| {
                de::Error::custom(format!("{code:?} is not an ISO 4217 currency code"))
            })
        } else {
            <[u8; 3]>::deserialize(deserializer).map(Currency)
        }
    }
}

impl Currency {
    pub const USD: Currency = Currency(*b"USD");

    /// Parses a known ISO 4217 code (case-insensitive).
    pub fn parse(code: &str) -> Option<Currency> {
        let upper = code.trim().to_ascii_uppercase();
        let iso = iso_currency::Currency::from_code(&upper)?;
        iso.exponent()?; // funds and metals without minor units cannot price an order
        let bytes: [u8; 3] = upper.as_bytes().try_into().ok()?;
        Some(Currency(bytes))
    }

    pub fn code(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }

    /// The code's three bytes, as the record format stores them.
    pub(crate) fn bytes(&self) -> [u8; 3] {
        self.0
    }

    /// Number of decimal places of the minor unit (2 for USD, 0 for JPY, 3 for KWD).
    pub fn exponent(&self) -> u32 {
        iso_currency::Currency::from_code(self.code())
            .and_then(|currency| currency.exponent())
            .map_or(2, u32::from)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.code())
    }
}

/// The largest amount accepted, in minor units (10^15: ten trillion dollars): far above any
/// order, and far enough below `i64::MAX` that sums of millions of such amounts (an order's
/// lines times their quantities, a day's revenue) stay exact.
pub const MAX_MINOR_UNITS: i64 = 1_000_000_000_000_000;

/// An exact decimal amount as sent, before a currency gives it a scale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecimalAmount {
    /// All digits, without the decimal point.
    mantissa: i128,
    /// Digits after the decimal point.
    scale: u32,
}

/// Why an amount could not be represented.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AmountError {
    TooManyDecimals { currency: Currency, allowed: u32 },
    OutOfRange,
}

impl fmt::Display for AmountError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AmountError::TooManyDecimals { currency, allowed } => {
                write!(formatter, "has more than {allowed} decimal places, which {currency} allows")
            }
            AmountError::OutOfRange => write!(
                formatter,
                "is too large: at most {MAX_MINOR_UNITS} minor units (10 trillion in a 2-decimal \
                 currency)"
            ),
        }
    }
}

impl DecimalAmount {
    /// `self + other`, exactly; `None` past what the digits can hold.
    pub fn checked_add(&self, other: &DecimalAmount) -> Option<DecimalAmount> {
        let scale = self.scale.max(other.scale);
        let widened = |amount: &DecimalAmount| {
            amount.mantissa.checked_mul(10i128.checked_pow(scale - amount.scale)?)
        };
        Some(DecimalAmount { mantissa: widened(self)?.checked_add(widened(other)?)?, scale })
    }

    /// Parses `[-]digits[.digits]` (also `1e3`-free plain decimals only).
    pub fn parse(text: &str) -> Option<DecimalAmount> {
        let text = text.trim();
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (whole, fraction) = match digits.split_once('.') {
            Some((whole, fraction)) => (whole, fraction),
            None => (digits, ""),
        };
        if whole.is_empty() && fraction.is_empty() {
            return None;
        }
        if !whole.bytes().chain(fraction.bytes()).all(|byte| byte.is_ascii_digit()) {
            return None;
        }
        let fraction = fraction.trim_end_matches('0');
        if whole.len() + fraction.len() > 30 {
            return None;
        }
        let mut mantissa: i128 = 0;
        for byte in whole.bytes().chain(fraction.bytes()) {
            mantissa = mantissa * 10 + i128::from(byte - b'0');
        }
        Some(DecimalAmount {
            mantissa: if negative { -mantissa } else { mantissa },
            scale: fraction.len() as u32,
        })
    }

    /// Reads a JSON number exactly: its shortest round-trip text is the decimal that was sent.
    pub fn from_f64(value: f64) -> Option<DecimalAmount> {
        if !value.is_finite() {
            return None;
        }
        let text = format!("{value}");
        DecimalAmount::parse(&text)
    }

    pub fn from_i64(value: i64) -> DecimalAmount {
        DecimalAmount { mantissa: i128::from(value), scale: 0 }
    }

    pub fn is_negative(&self) -> bool {
        self.mantissa < 0
    }

    /// Converts to minor units of `currency`, refusing to round anything but float noise (see
    /// the module's documentation).
    pub fn to_minor_units(&self, currency: Currency) -> Result<i64, AmountError> {
        let exponent = currency.exponent();
        let minor = if self.scale > exponent {
            self.without_float_noise(self.scale - exponent)
                .ok_or(AmountError::TooManyDecimals { currency, allowed: exponent })?
        } else {
            let factor = 10_i128.pow(exponent - self.scale);
            self.mantissa.checked_mul(factor).ok_or(AmountError::OutOfRange)?
        };
        if minor.abs() > i128::from(MAX_MINOR_UNITS) {
            return Err(AmountError::OutOfRange);
        }
        i64::try_from(minor).map_err(|_| AmountError::OutOfRange)
    }

    /// The mantissa with its last `extra` digits rounded away, when what they add is float
    /// noise: at most [`FLOAT_NOISE_ULPS`] units in the last place of a 64-bit float of this
    /// size (relative 2^-52 each). A decimal anyone writes on purpose (`19.999`, `19.9901`) is
    /// millions of times further from its rounding than that.
    fn without_float_noise(&self, extra: u32) -> Option<i128> {
        let factor = 10_i128.checked_pow(extra)?;
        let rounded = (self.mantissa + self.mantissa.signum() * factor / 2) / factor;
        let noise = (self.mantissa - rounded * factor).unsigned_abs();
        let tolerance = self.mantissa.unsigned_abs() >> (52 - FLOAT_NOISE_ULPS.ilog2());
        (noise <= tolerance).then_some(rounded)
    }
}

/// How many units in the last place of a 64-bit float an amount's extra digits may be from an
/// amount its currency can hold and still be read as float noise: one operation rounds by
/// half a unit, and a total summed over a few lines collects a few of them. A power of two.
const FLOAT_NOISE_ULPS: u32 = 4;

/// Whether `text` is a JSON number whose digits are not all zero but which a 64-bit float, and
/// so serde_json, reads as 0 (`1e-400`): read through a float it would be an amount of 0, so
/// decoding quotes such numbers ([`crate::decode`]) and an amount refuses them.
pub fn reads_as_zero_float(text: &str) -> bool {
    let text = text.trim();
    let significand = text.split(['e', 'E']).next().unwrap_or_default();
    significand.len() < text.len()
        && significand.bytes().any(|byte| matches!(byte, b'1'..=b'9'))
        && serde_json::from_str::<f64>(text).is_ok_and(|value| value == 0.0)
}

/// Whether `text` is a JSON number beyond the largest 64-bit float (`1e400`): serde_json
/// refuses it as invalid JSON without naming its field, so decoding quotes such numbers
/// ([`crate::decode`]) and the field's own validation refuses them by name.
pub fn overflows_float(text: &str) -> bool {
    let text = text.trim();
    // Cheap first: without an exponent, only a number of over 308 digits is that large.
    (text.contains(['e', 'E']) || text.len() > 308)
        && serde_json::from_str::<f64>(text)
            .is_err_and(|error| error.to_string().starts_with("number out of range"))
}

/// Why an amount given as text that is no plain decimal is refused. Exponent forms are read
/// only from JSON numbers (`1e2` is 100); as text they are refused, saying why: beyond a
/// float either way (`1e-400`, `1e400`, numbers the decoder quoted), or to be written without
/// the exponent.
pub fn amount_text_refusal(text: &str) -> String {
    if reads_as_zero_float(text) {
        format!(
            "{text} is too small to be an amount: below the smallest 64-bit float, it would \
             read as 0"
        )
    } else if overflows_float(text) {
        format!(
            "{text} is too large to be an amount: above the largest 64-bit float (at most \
             {MAX_MINOR_UNITS} minor units)"
        )
    } else if text.contains(['e', 'E']) && serde_json::from_str::<f64>(text.trim()).is_ok() {
        format!(
            "{text:?} is not a decimal amount: an amount in a string is written without an \
             exponent (such as \"19.99\"); as a JSON number the exponent is read"
        )
    } else {
        format!("{text:?} is not a decimal amount")
    }
}

impl<'de> Deserialize<'de> for DecimalAmount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AmountVisitor;
        impl Visitor<'_> for AmountVisitor {
            type Value = DecimalAmount;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a decimal amount such as 19.99 or \"19.99\"")
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<DecimalAmount, E> {
                Ok(DecimalAmount::from_i64(value))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<DecimalAmount, E> {
                Ok(DecimalAmount { mantissa: i128::from(value), scale: 0 })
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<DecimalAmount, E> {
                DecimalAmount::from_f64(value)
                    .ok_or_else(|| E::custom(format_args!("{value} is not a decimal amount")))
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<DecimalAmount, E> {
                DecimalAmount::parse(value).ok_or_else(|| E::custom(amount_text_refusal(value)))
            }
        }
        deserializer.deserialize_any(AmountVisitor)
    }
}

/// An exact amount of money.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// Integer count of the currency's minor unit (cents for USD).
    pub minor: i64,
    pub currency: Currency,
}

impl Money {
    pub fn new(minor: i64, currency: Currency) -> Self {
        Self { minor, currency }
    }

    /// Decimal text in major units, e.g. `19.99`.
    pub fn to_decimal_string(&self) -> String {
        Money::wide_decimal_string(i128::from(self.minor), self.currency)
    }

    /// Decimal text in major units of a sum of amounts, which may exceed one amount's 64 bits
    /// (a query's totals are summed in 128 bits so that they never saturate or wrap).
    pub fn wide_decimal_string(minor: i128, currency: Currency) -> String {
        let exponent = currency.exponent();
        if exponent == 0 {
            return minor.to_string();
        }
        let sign = if minor < 0 { "-" } else { "" };
        let absolute = minor.unsigned_abs();
        let factor = 10_u128.pow(exponent);
        format!(
            "{sign}{}.{:0width$}",
            absolute / factor,
            absolute % factor,
            width = exponent as usize
        )
    }
}

impl fmt::Display for Money {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{} {}", self.to_decimal_string(), self.currency)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_currency_is_its_code_in_json_and_its_bytes_in_binary() {
        let euro = super::Currency::parse("eur").unwrap();
        assert_eq!(serde_json::to_string(&euro).unwrap(), "\"EUR\"");
        assert_eq!(serde_json::from_str::<super::Currency>("\"EUR\"").unwrap(), euro);
        assert!(serde_json::from_str::<super::Currency>("\"XYZ\"").is_err());
        let binary = postcard::to_stdvec(&euro).unwrap();
        assert_eq!(binary, b"EUR");
        assert_eq!(postcard::from_bytes::<super::Currency>(&binary).unwrap(), euro);
    }

    use super::*;

    fn usd() -> Currency {
        Currency::parse("usd").unwrap()
    }

    #[test]
    fn decimal_text_becomes_exact_minor_units() {
        let cases = [("19.99", 1999), ("0.1", 10), ("0.30", 30), ("100", 10000), ("-5.5", -550)];
        for (text, minor) in cases {
            assert_eq!(DecimalAmount::parse(text).unwrap().to_minor_units(usd()), Ok(minor));
        }
    }

    #[test]
    fn json_floats_are_read_as_the_decimal_that_was_sent() {
        // 0.1 + 0.2 style float noise must never leak into money.
        let amount: DecimalAmount = serde_json::from_str("0.29").unwrap();
        assert_eq!(amount.to_minor_units(usd()), Ok(29));
        let amount: DecimalAmount = serde_json::from_str("1234567.89").unwrap();
        assert_eq!(amount.to_minor_units(usd()), Ok(123_456_789));
        let amount: DecimalAmount = serde_json::from_str("\"19.99\"").unwrap();
        assert_eq!(amount.to_minor_units(usd()), Ok(1999));
        let amount: DecimalAmount = serde_json::from_str("42").unwrap();
        assert_eq!(amount.to_minor_units(usd()), Ok(4200));
    }

    #[test]
    fn currency_exponents_are_respected() {
        let jpy = Currency::parse("JPY").unwrap();
        let kwd = Currency::parse("KWD").unwrap();
        assert_eq!(DecimalAmount::parse("1500").unwrap().to_minor_units(jpy), Ok(1500));
        assert_eq!(
            DecimalAmount::parse("15.5").unwrap().to_minor_units(jpy),
            Err(AmountError::TooManyDecimals { currency: jpy, allowed: 0 })
        );
        assert_eq!(DecimalAmount::parse("1.234").unwrap().to_minor_units(kwd), Ok(1234));
    }

    #[test]
    fn extra_decimals_are_refused_not_rounded() {
        let error = DecimalAmount::parse("19.999").unwrap().to_minor_units(usd()).unwrap_err();
        assert_eq!(error.to_string(), "has more than 2 decimal places, which USD allows");
    }

    #[test]
    fn float_noise_is_read_as_the_amount_it_surrounds() {
        // What JavaScript sends for 0.1 + 0.2, 19.99 * 3 summed as lines, 1.1 * 3, 4.35 * 100.
        let cases = [
            ("0.30000000000000004", 30),
            ("59.970000000000006", 5997),
            ("3.3000000000000003", 330),
            ("434.99999999999994", 43500),
            ("-0.30000000000000004", -30),
        ];
        for (text, minor) in cases {
            assert_eq!(
                DecimalAmount::parse(text).unwrap().to_minor_units(usd()),
                Ok(minor),
                "{text}"
            );
            let from_json: DecimalAmount = serde_json::from_str(text).unwrap();
            assert_eq!(from_json.to_minor_units(usd()), Ok(minor), "{text} as a JSON number");
        }
        // Digits someone meant are not noise, however close to a cent.
        for text in ["19.999", "19.9901", "59.97000001", "0.3000000000001"] {
            assert!(DecimalAmount::parse(text).unwrap().to_minor_units(usd()).is_err(), "{text}");
        }
        let jpy = Currency::parse("JPY").unwrap();
        assert_eq!(
            DecimalAmount::parse("1500.0000000000002").unwrap().to_minor_units(jpy),
            Ok(1500)
        );
        assert!(DecimalAmount::parse("1500.5").unwrap().to_minor_units(jpy).is_err());
    }

    #[test]
    fn trailing_zeros_do_not_count_as_decimals() {
        assert_eq!(DecimalAmount::parse("19.9900").unwrap().to_minor_units(usd()), Ok(1999));
    }

    #[test]
    fn bad_text_is_refused() {
        for text in ["", ".", "1.2.3", "abc", "1e5", "--1", "12,50"] {
            assert_eq!(DecimalAmount::parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn unknown_currencies_are_refused() {
        assert_eq!(Currency::parse("ABC"), None);
        assert_eq!(Currency::parse("US"), None);
        assert_eq!(Currency::parse("eur").unwrap().code(), "EUR");
    }

    #[test]
    fn money_prints_in_major_units() {
        assert_eq!(Money::new(1999, usd()).to_decimal_string(), "19.99");
        assert_eq!(Money::new(-5, usd()).to_decimal_string(), "-0.05");
        assert_eq!(Money::new(1500, Currency::parse("JPY").unwrap()).to_string(), "1500 JPY");
    }
}
