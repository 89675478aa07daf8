//! Seed 4's `POST /buy` payload: `{user_id, promotion_id, product_id, product_quantity}`.
//!
//! All four are required integers (an integer string, `true` and `false` are accepted, as
//! pydantic's lax mode did) and `product_quantity` must be > 0; other keys are ignored, as in seed 4. A buy becomes
//! a native `purchase` of one line carrying the promotion, so it counts everywhere a purchase
//! counts (promotion stats, KPIs, trending), not only in `/stats`.
//!
//! A refusal is worded as seed 4's pydantic 2 worded it, field by field in the seed's order
//! (`Field required`, `Input should be greater than 0`, ...), and [`pydantic_type`] gives back
//! the `type` pydantic gave it, so that the server answers the 422 a seed-4 client reads.

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
}

impl Refusal {
    const ALL: [Refusal; 8] = [
        Refusal::Missing,
        Refusal::NotAnObject,
        Refusal::IntType,
        Refusal::IntParsing,
        Refusal::IntFromFloat,
        Refusal::IntParsingSize,
        Refusal::NotPositive,
        Refusal::StringUnicode,
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

/// The body's fields as sent, by name (the last of a name given twice, as Python's `json`
/// keeps it); empty when the body is no JSON object serde_json reads as one.
pub fn fields_as_sent(json: &str) -> HashMap<String, &RawValue> {
    serde_json::from_str(json).unwrap_or_default()
}

/// A field's value as pydantic's `input` echoes it, where the value serde_json reads is not
/// what Python read: an integer literal is a Python int, so `-0` is `0` (serde_json reads a
/// float, -0.0) and one beyond 64 bits keeps every digit (serde_json reads a float); a string
/// holding half a surrogate pair (`"\ud83d"`) is that string, as sent (serde_json refuses it,
/// and the body's reader reads it as U+FFFD). `None` for any other value, which serde_json
/// reads as Python did.
pub fn python_input(sent: &RawValue) -> Option<&str> {
    let text = sent.get();
    if is_no_unicode(sent) {
        return Some(text);
    }
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    Some(if digits.bytes().all(|byte| byte == b'0') { "0" } else { text })
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
fn integer(value: &Value, sent: Option<&RawValue>) -> Result<Integer, Refusal> {
    if sent.is_some_and(is_no_unicode) {
        return Err(Refusal::StringUnicode);
    }
    match value {
        Value::Bool(flag) => Ok(Integer::Small(i64::from(*flag))),
        Value::Number(number) => {
            if let Some(small) = number.as_i64() {
                return Ok(Integer::Small(small));
            }
            if let Some(digits) = sent.and_then(python_input) {
                return Ok(Integer::from_digits(digits));
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
    let (body, errors) = decode_collecting::<Value>(json);
    let Some(body) = body else { return Err(ValidationErrors(errors)) };
    let object = match body {
        Value::Object(object) => object,
        Value::Null => return Err(ValidationErrors::single(Refusal::Missing.error(""))),
        _ => return Err(ValidationErrors::single(Refusal::NotAnObject.error(""))),
    };
    let sent = fields_as_sent(json);
    let mut errors = Vec::new();
    let mut fields = [None, None, None, None];
    for (slot, field) in fields.iter_mut().zip(REQUIRED_FIELDS) {
        match object.get(field).map(|value| integer(value, sent.get(field).copied())) {
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
