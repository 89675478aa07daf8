//! Seed 4's `POST /buy` payload: `{user_id, promotion_id, product_id, product_quantity}`.
//!
//! All four are required integers (an integer string, `true` and `false` are accepted, as
//! pydantic's lax mode did) and `product_quantity` must be > 0; other keys are ignored, as in
//! seed 4. A buy becomes a native `purchase` of one line carrying the promotion, so it counts
//! everywhere a purchase counts (promotion stats, KPIs, trending), not only in `/stats`.
//!
//! A refusal is worded as seed 4's pydantic 2 worded it, field by field in the seed's order
//! (`Field required`, `Input should be greater than 0`, ...), and [`pydantic_type`] gives back
//! the `type` pydantic gave it, so that the server answers the 422 a seed-4 client reads.

use std::borrow::Cow;
use std::collections::HashMap;

use compact_str::{CompactString, ToCompactString};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::decode::decode_collecting;
use crate::error::{ErrorCode, FieldError, ValidationErrors};
use crate::event::Event;
use crate::raw::{RawEvent, RawOrder, RawProduct, RawPromotion};
use crate::validate::{ValidationContext, validate_event};

/// The name of the event a buy becomes.
pub const EVENT_NAME: &str = "promotion_buy";

/// The fields seed 4 required, in its order.
pub const REQUIRED_FIELDS: [&str; 4] =
    ["user_id", "promotion_id", "product_id", "product_quantity"];

/// Seed 4's refusals of a body, as pydantic 2 typed and worded them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    /// A field, or the whole body, absent (an empty body or `null`).
    Missing,
    /// The body is JSON but no object (`[]`, `"x"`).
    NotAnObject,
    /// A field that is no number, text or bool (`null`, `[1]`, `{}`).
    IntType,
    /// Text that is no integer.
    IntParsing,
    /// A number with a fractional part.
    IntFromFloat,
    /// A number with an exponent too large to be an exact integer (`1e20`); pydantic reads
    /// it as a float, not as the integer it may stand for.
    IntParsingSize,
    /// `product_quantity` ≤ 0.
    NotPositive,
    /// Text with half a surrogate pair (`"\ud83d"`): Python's `json` reads it, as a string
    /// that is no Unicode, which pydantic refuses before reading an integer from it.
    StringUnicode,
    /// `NaN`, `Infinity`, `-Infinity` or a number beyond a float (`1e400`): Python's `json`
    /// reads a float that is no finite number.
    FiniteNumber,
}

impl Refusal {
    const ALL: [Refusal; 9] = [
        Refusal::Missing,
        Refusal::NotAnObject,
        Refusal::IntType,
        Refusal::IntParsing,
        Refusal::IntFromFloat,
        Refusal::IntParsingSize,
        Refusal::NotPositive,
        Refusal::StringUnicode,
        Refusal::FiniteNumber,
    ];

    /// pydantic's `type`.
    fn pydantic_type(self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::NotAnObject => "model_attributes_type",
            Refusal::IntType => "int_type",
            Refusal::IntParsing => "int_parsing",
            Refusal::IntFromFloat => "int_from_float",
            Refusal::IntParsingSize => "int_parsing_size",
            Refusal::NotPositive => "greater_than",
            Refusal::StringUnicode => "string_unicode",
            Refusal::FiniteNumber => "finite_number",
        }
    }

    /// pydantic's `msg`.
    fn message(self) -> &'static str {
        match self {
            Refusal::Missing => "Field required",
            Refusal::NotAnObject => {
                "Input should be a valid dictionary or object to extract fields from"
            }
            Refusal::IntType => "Input should be a valid integer",
            Refusal::IntParsing => {
                "Input should be a valid integer, unable to parse string as an integer"
            }
            Refusal::IntFromFloat => {
                "Input should be a valid integer, got a number with a fractional part"
            }
            Refusal::IntParsingSize => {
                "Unable to parse input string as an integer, exceeded maximum size"
            }
            Refusal::NotPositive => "Input should be greater than 0",
            Refusal::StringUnicode => {
                "Input should be a valid string, unable to parse raw data as a unicode string"
            }
            Refusal::FiniteNumber => "Input should be a finite number",
        }
    }

    fn code(self) -> ErrorCode {
        match self {
            Refusal::Missing => ErrorCode::Missing,
            Refusal::NotPositive => ErrorCode::InvalidValue,
            _ => ErrorCode::InvalidType,
        }
    }

    fn error(self, field: &str) -> FieldError {
        FieldError::new(field, self.code(), self.message())
    }
}

/// The pydantic `type` seed 4 answered for `error`, one of [`decode_promotion_buy`]'s refusals
/// of the body; `None` for errors it makes otherwise (not JSON; over a Storepulse limit).
pub fn pydantic_type(error: &FieldError) -> Option<&'static str> {
    Refusal::ALL
        .into_iter()
        .find(|refusal| refusal.code() == error.code && refusal.message() == error.message)
        .map(Refusal::pydantic_type)
}

/// A body as Python's `json` read it, which takes more than JSON: the tokens `NaN`,
/// `Infinity` and `-Infinity`, and numbers beyond a float (`1e400`, read as infinite).
/// serde_json refuses the tokens, so [`PythonJson::text`] has each written as a number of the
/// same length (a position in it is the same position in the body) and
/// [`PythonJson::non_finite`] tells a field that held one.
pub struct PythonJson<'a> {
    sent: &'a str,
    text: Cow<'a, str>,
}

impl<'a> PythonJson<'a> {
    pub fn new(sent: &'a str) -> Self {
        const TOKENS: [(&str, &str); 3] =
            [("NaN", "0.0"), ("Infinity", "0.000000"), ("-Infinity", "-0.000000")];
        let bytes = sent.as_bytes();
        let mut text: Option<String> = None;
        let mut at = 0;
        while at < bytes.len() {
            if bytes[at] == b'"' {
                at += 1;
                while at < bytes.len() && bytes[at] != b'"' {
                    at += if bytes[at] == b'\\' { 2 } else { 1 };
                }
                at += 1;
                continue;
            }
            // A token stands alone: `-NaN` or `NaN5` is no JSON to Python either, and must not
            // become a number.
            let alone = |index: Option<usize>| {
                index.and_then(|index| bytes.get(index)).is_none_or(|byte| {
                    !byte.is_ascii_alphanumeric() && !matches!(byte, b'.' | b'+' | b'-' | b'_')
                })
            };
            let token = TOKENS.iter().find(|(token, _)| {
                bytes[at..].starts_with(token.as_bytes())
                    && alone(at.checked_sub(1))
                    && alone(Some(at + token.len()))
            });
            match token {
                Some((token, number)) => {
                    // `at` starts an ASCII token: both ends are character boundaries.
                    text.get_or_insert_with(|| sent.to_owned())
                        .replace_range(at..at + token.len(), number);
                    at += token.len();
                }
                None => at += 1,
            }
        }
        PythonJson { sent, text: text.map_or(Cow::Borrowed(sent), Cow::Owned) }
    }

    /// The body as JSON serde_json reads, positions kept.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The body's fields as sent, by name (the last of a name given twice, as Python's `json`
    /// keeps it); empty when the body is no JSON object.
    pub fn fields(&self) -> HashMap<String, &RawValue> {
        serde_json::from_str(&self.text).unwrap_or_default()
    }

    /// Python's `repr` of the float a field read from [`Self::fields`] was to Python when it
    /// was no finite number (`nan`, `inf`, `-inf`).
    pub fn non_finite(&self, field: &RawValue) -> Option<&'static str> {
        let text = field.get();
        let offset = (text.as_ptr() as usize).checked_sub(self.text.as_ptr() as usize)?;
        match self.sent.get(offset..offset + text.len())? {
            "NaN" => Some("nan"),
            "Infinity" => Some("inf"),
            "-Infinity" => Some("-inf"),
            // An integer literal is a Python int, however long.
            _ if text.contains(['.', 'e', 'E'])
                && !text.starts_with('"')
                && crate::money::overflows_float(text) =>
            {
                Some(if text.starts_with('-') { "-inf" } else { "inf" })
            }
            _ => None,
        }
    }

    /// A field's value as pydantic's `input` echoes it, where the value serde_json reads is
    /// not what Python read: an integer literal is a Python int, so `-0` is `0` (serde_json
    /// reads a float, -0.0) and one beyond 64 bits keeps every digit (serde_json reads a
    /// float); a string holding half a surrogate pair (`"\ud83d"`) is that string, as sent
    /// (serde_json refuses it, and the body's reader reads it as U+FFFD); a float that is no
    /// finite number, which JSON cannot hold, is Python's `repr` of it as text (`"nan"`, as
    /// pydantic's message text shows it). `None` for any other value, which serde_json reads
    /// as Python did.
    pub fn input(&self, field: &'a RawValue) -> Option<Cow<'a, str>> {
        if let Some(float) = self.non_finite(field) {
            return Some(Cow::Owned(format!("\"{float}\"")));
        }
        let text = field.get();
        if is_no_unicode(field) {
            return Some(Cow::Borrowed(text));
        }
        let digits = text.strip_prefix('-').unwrap_or(text);
        if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
            return None;
        }
        Some(Cow::Borrowed(if digits.bytes().all(|byte| byte == b'0') { "0" } else { text }))
    }
}

/// An integer as Python holds it: unbounded.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Integer {
    Small(i64),
    /// Beyond 64 bits: its decimal digits, with `-` when negative, exactly.
    Large(String),
}

impl Integer {
    /// `text`, `[+-]?[0-9]+`, as Python's `int` reads it.
    fn from_digits(text: &str) -> Integer {
        match text.parse() {
            Ok(small) => Integer::Small(small),
            Err(_) => {
                let (sign, digits) = match text.as_bytes().first() {
                    Some(b'-') => ("-", &text[1..]),
                    Some(b'+') => ("", &text[1..]),
                    _ => ("", text),
                };
                Integer::Large(format!("{sign}{}", digits.trim_start_matches('0')))
            }
        }
    }

    /// As an id, Storepulse's text: its decimal digits.
    fn text(&self) -> CompactString {
        match self {
            Integer::Small(small) => small.to_compact_string(),
            Integer::Large(digits) => digits.into(),
        }
    }

    /// As a quantity: one beyond 64 bits is beyond any quantity limit too, or below zero.
    fn quantity(&self) -> i64 {
        match self {
            Integer::Small(small) => *small,
            Integer::Large(digits) if digits.starts_with('-') => i64::MIN,
            Integer::Large(_) => i64::MAX,
        }
    }
}

/// Whether `sent` is a string whose escapes make no Unicode text: half a surrogate pair.
fn is_no_unicode(sent: &RawValue) -> bool {
    sent.get().starts_with('"') && serde_json::from_str::<String>(sent.get()).is_err()
}

/// A field's integer as pydantic's lax mode read it: a number without a fractional part, text
/// holding one (trimmed), or `true`/`false` (Python's bools are ints: 1 and 0). `sent` is the
/// field as sent, which keeps an integer literal's every digit (serde_json reads one beyond 64
/// bits as a float) and a string's escapes.
fn integer(value: &Value, sent: Option<&RawValue>, body: &PythonJson) -> Result<Integer, Refusal> {
    if sent.is_some_and(|sent| body.non_finite(sent).is_some()) {
        return Err(Refusal::FiniteNumber);
    }
    if sent.is_some_and(is_no_unicode) {
        return Err(Refusal::StringUnicode);
    }
    match value {
        Value::Bool(flag) => Ok(Integer::Small(i64::from(*flag))),
        Value::Number(number) => {
            if let Some(small) = number.as_i64() {
                return Ok(Integer::Small(small));
            }
            if let Some(digits) = sent.and_then(|sent| body.input(sent)) {
                return Ok(Integer::from_digits(&digits));
            }
            match number.as_f64() {
                Some(float) if float.fract() != 0.0 => Err(Refusal::IntFromFloat),
                // A whole float converts exactly only while it is below 2^53; pydantic
                // refuses larger ones.
                Some(float) if float.abs() < 9.0e15 => Ok(Integer::Small(float as i64)),
                _ => Err(Refusal::IntParsingSize),
            }
        }
        Value::String(text) => {
            let text = text.trim();
            let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
            if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
                return Err(Refusal::IntParsing);
            }
            Ok(Integer::from_digits(text))
        }
        _ => Err(Refusal::IntType),
    }
}

/// Decodes and validates one seed-4 buy; `order_id` names the order the buy becomes.
pub fn decode_promotion_buy(
    json: &str,
    order_id: &str,
    context: &ValidationContext<'_>,
) -> Result<Event, ValidationErrors> {
    // To FastAPI an empty body is no body at all, and so is `null`: the body is missing.
    if json.is_empty() {
        return Err(ValidationErrors::single(Refusal::Missing.error("")));
    }
    let python = PythonJson::new(json);
    let (body, errors) = decode_collecting::<Value>(python.text());
    let Some(body) = body else { return Err(ValidationErrors(errors)) };
    let object = match body {
        Value::Object(object) => object,
        Value::Null => return Err(ValidationErrors::single(Refusal::Missing.error(""))),
        _ => return Err(ValidationErrors::single(Refusal::NotAnObject.error(""))),
    };
    let sent = python.fields();
    let mut errors = Vec::new();
    let mut fields = [None, None, None, None];
    for (slot, field) in fields.iter_mut().zip(REQUIRED_FIELDS) {
        match object.get(field).map(|value| integer(value, sent.get(field).copied(), &python)) {
            None => errors.push(Refusal::Missing.error(field)),
            Some(Err(refusal)) => errors.push(refusal.error(field)),
            Some(Ok(value)) => *slot = Some(value),
        }
    }
    let [user_id, promotion_id, product_id, product_quantity] = fields;
    let product_quantity = product_quantity.as_ref().map(Integer::quantity);
    if product_quantity.is_some_and(|quantity| quantity <= 0) {
        errors.push(Refusal::NotPositive.error("product_quantity"));
    }
    if !errors.is_empty() {
        return Err(ValidationErrors(errors));
    }
    let text = |value: Option<Integer>| value.as_ref().map(Integer::text);
    // The order id and the event's name are Storepulse's, not the client's, so the client's
    // limits do not apply to them: validation sees a one-character stand-in for the order id
    // (a purchase needs one) and no name, and both are set once the client's four fields have
    // passed. Checked as sent, a tight `max_id_chars` refused every buy, naming `name` and
    // `order.id`, which no /buy body has.
    let raw = RawEvent {
        r#type: Some("purchase".into()),
        user_id: text(user_id),
        order: Some(Box::new(RawOrder { id: Some("b".into()), ..RawOrder::default() })),
        items: Some(vec![Some(RawProduct {
            id: text(product_id),
            quantity: product_quantity,
            ..RawProduct::default()
        })]),
        promotion: Some(Box::new(RawPromotion {
            id: text(promotion_id),
            ..RawPromotion::default()
        })),
        ..RawEvent::default()
    };
    let mut event = validate_event(raw, Vec::new(), context).map_err(|invalid| {
        // Field paths of the native event, renamed to the seed's, and listed in the seed's
        // field order as pydantic listed them (the native event checks the promotion last).
        let mut errors: Vec<FieldError> = invalid
            .0
            .into_iter()
            .map(|mut error| {
                error.field = match error.field.as_str() {
                    "items[0].quantity" => "product_quantity".into(),
                    "items[0].id" => "product_id".into(),
                    "promotion.id" => "promotion_id".into(),
                    other => other.to_owned(),
                };
                error
            })
            .collect();
        errors.sort_by_key(|error| {
            REQUIRED_FIELDS.iter().position(|field| *field == error.field).unwrap_or(usize::MAX)
        });
        ValidationErrors(errors)
    })?;
    event.name = Some(EVENT_NAME.into());
    if let Some(order) = event.order.as_mut() {
        order.id = Some(order_id.into());
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Python's tokens become numbers of their length outside strings only, and only where
    /// they stand alone as Python's `json` reads them.
    #[test]
    fn python_tokens_become_numbers_of_their_length_outside_strings() {
        let body = r#"{"a":NaN,"b":"NaN \" Infinity","c":[Infinity,-Infinity],"d":-NaN,"e":NaN5}"#;
        let python = PythonJson::new(body);
        assert_eq!(
            python.text(),
            r#"{"a":0.0,"b":"NaN \" Infinity","c":[0.000000,-0.000000],"d":-NaN,"e":NaN5}"#
        );
        assert_eq!(python.text().len(), body.len());
        let body = r#"{"a":NaN,"b":"NaN","c":-Infinity,"d":1e400,"e":1e4000000000000000000}"#;
        let python = PythonJson::new(body);
        let fields = python.fields();
        let non_finite = |name: &str| python.non_finite(fields[name]);
        assert_eq!(non_finite("a"), Some("nan"));
        assert_eq!(non_finite("b"), None);
        assert_eq!(non_finite("c"), Some("-inf"));
        assert_eq!(non_finite("d"), Some("inf"));
        assert_eq!(python.input(fields["a"]).as_deref(), Some(r#""nan""#));
        assert_eq!(python.input(fields["b"]), None);
        // An integer literal is a Python int however long: not infinite.
        let digits = "9".repeat(400);
        let body = format!(r#"{{"a":{digits},"b":-0}}"#);
        let python = PythonJson::new(&body);
        let fields = python.fields();
        assert_eq!(python.non_finite(fields["a"]), None);
        assert_eq!(python.input(fields["a"]).as_deref(), Some(digits.as_str()));
        assert_eq!(python.input(fields["b"]).as_deref(), Some("0"));
    }
}
