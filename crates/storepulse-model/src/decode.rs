//! Turning request bodies into per-event JSON, and JSON into wire structs with every type
//! error reported.
//!
//! A body is one JSON object, a JSON array of objects, or NDJSON (one object per line).
//! A syntax error in a JSON body makes the whole body unreadable (the caller answers 400);
//! in NDJSON only that line is rejected and the other lines are kept.
//!
//! Typed decoding takes a fast path for good events: a reader written for the native event's
//! shape ([`native_reader`]), then `serde_json::from_str`. Only when both fail do we pay for
//! the slow path: parse into a `Value`, decode with
//! `serde_path_to_error` to learn the failing field, blank that field, and try again, so a
//! client learns about every bad field in one round trip instead of one per retry.
//!
//! A lone UTF-16 surrogate escape reads as U+FFFD ([`lone_surrogates`]): one event's text is
//! repaired here; a body that fails to split is repaired by the caller, which owns the text.

mod lone_surrogates;
mod native_reader;

pub use lone_surrogates::{parse_reading_lone_surrogates, replace_lone_surrogates};

use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;
use serde_path_to_error::Segment;

use crate::error::{ErrorCode, FieldError};
use crate::raw::RawEvent;

/// What [`for_each_element`] decodes each element into: serde's decode, with a faster
/// reader tried first where the type has one.
pub trait WalkElement<'a>: serde::Deserialize<'a> + Default {
    /// Reads the value at the start of `json` into `slot` (which holds the default value) and
    /// returns the length of its text, or `None` to leave the element to serde (which then
    /// decodes it, or finds what is wrong with it).
    fn read_fast(json: &'a str, slot: &mut Self) -> Option<usize> {
        let _ = (json, slot);
        None
    }
}

impl WalkElement<'_> for RawEvent {
    fn read_fast(json: &str, slot: &mut Self) -> Option<usize> {
        native_reader::read_event(json, slot)
    }
}

/// The native event that `json` holds (nothing but whitespace after it), when the fast reader
/// takes it; `None` leaves it to serde.
pub(crate) fn read_whole_native_event(json: &str) -> Option<RawEvent> {
    let mut event = RawEvent::default();
    let length = native_reader::read_event(json, &mut event)?;
    json[length..].trim_matches(JSON_WHITESPACE).is_empty().then_some(event)
}

/// How a request body is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    /// One object or an array of objects.
    Json,
    /// One object per line.
    Ndjson,
    /// `text/plain` (sendBeacon) or no content type: sniffed.
    Sniff,
}

/// One event's JSON text inside a body, or why it could not be cut out.
#[derive(Debug)]
pub struct BodyElement<'a> {
    pub index: usize,
    pub json: Result<&'a str, FieldError>,
}

/// Why a whole body is unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyError {
    pub message: String,
}

/// Cuts a body into events. Empty NDJSON lines are skipped and do not take an index.
pub fn split_body(body: &str, format: BodyFormat) -> Result<Vec<BodyElement<'_>>, BodyError> {
    let body = without_byte_order_mark(body);
    let format = match format {
        BodyFormat::Sniff => sniff(body),
        other => other,
    };
    match format {
        BodyFormat::Ndjson => Ok(body
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .enumerate()
            .map(|(index, line)| BodyElement { index, json: Ok(line) })
            .collect()),
        _ => split_json(body),
    }
}

fn sniff(body: &str) -> BodyFormat {
    let trimmed = body.trim();
    if trimmed.starts_with('{')
        && trimmed.lines().filter(|line| !line.trim().is_empty()).count() > 1
    {
        // Several lines that each hold an object: NDJSON. A pretty-printed single object
        // also spans lines, so check that the first line closes itself.
        let first_line = trimmed.lines().next().unwrap_or_default().trim();
        if serde_json::from_str::<&RawValue>(first_line).is_ok() {
            return BodyFormat::Ndjson;
        }
    }
    BodyFormat::Json
}

fn split_json(body: &str) -> Result<Vec<BodyElement<'_>>, BodyError> {
    let trimmed = body.trim_start();
    if trimmed.is_empty() {
        return Err(BodyError { message: "the body is empty; send a JSON object or array".into() });
    }
    if trimmed.starts_with('[') {
        let elements: Vec<&RawValue> = serde_json::from_str(body).map_err(|error| BodyError {
            message: format!("the body is not valid JSON: {error}"),
        })?;
        return Ok(elements
            .into_iter()
            .enumerate()
            .map(|(index, raw)| BodyElement { index, json: Ok(raw.get()) })
            .collect());
    }
    let single: &RawValue = serde_json::from_str(body)
        .map_err(|error| BodyError { message: format!("the body is not valid JSON: {error}") })?;
    Ok(vec![BodyElement { index: 0, json: Ok(single.get()) }])
}

/// Walks the events of a body, decoding JSON-array elements into `T` in the same pass that
/// finds their boundaries.
///
/// `visit` gets each element's index, its JSON text (or why it could not be cut out), and the
/// value when the one-pass decode succeeded (`None` means: decode it yourself, it has type
/// errors or came from NDJSON or a single object). A syntax error in a JSON body is an `Err`
/// for the whole body, found before or after earlier elements were visited — callers should
/// act on visited elements only when this returns `Ok`.
pub fn for_each_element<'a, T: WalkElement<'a>>(
    body: &'a str,
    format: BodyFormat,
    mut visit: impl FnMut(usize, Result<&'a str, FieldError>, Option<&mut T>),
) -> Result<usize, BodyError> {
    // One value for every element, which the visitor may take parts out of: a `RawEvent` is
    // ~460 bytes, and a box per element cost an allocation, a free and a copy of it.
    let mut scratch = T::default();
    let body = without_byte_order_mark(body);
    let format = match format {
        BodyFormat::Sniff => sniff(body),
        other => other,
    };
    // A single object (one event per request, the common case for trackers) read by the fast
    // reader needs no syntax pass of its own.
    let json_trimmed = body.trim_matches(JSON_WHITESPACE);
    if format == BodyFormat::Json
        && T::read_fast(json_trimmed, &mut scratch) == Some(json_trimmed.len())
    {
        visit(0, Ok(json_trimmed), Some(&mut scratch));
        return Ok(1);
    }
    let trimmed = body.trim_start();
    if format == BodyFormat::Ndjson || !trimmed.starts_with('[') {
        let elements = split_body(body, format)?;
        let count = elements.len();
        for element in elements {
            visit(element.index, element.json, None);
        }
        return Ok(count);
    }
    let bytes = body.as_bytes();
    let skip_whitespace = |mut position: usize| {
        while bytes.get(position).is_some_and(u8::is_ascii_whitespace) {
            position += 1;
        }
        position
    };
    let invalid = |position: usize, what: &str| BodyError {
        message: format!("the body is not valid JSON: {what} at byte {position}"),
    };
    let mut position = skip_whitespace(body.len() - trimmed.len() + 1);
    let mut index = 0;
    if bytes.get(position) == Some(&b']') {
        position += 1;
    } else {
        loop {
            let start = position;
            let rest = &body[start..];
            scratch = T::default();
            let decoded = T::read_fast(rest, &mut scratch).or_else(|| {
                let mut typed = serde_json::Deserializer::from_str(rest).into_iter::<T>();
                match typed.next() {
                    // A number read as 0 that is none: the slow path refuses it by name.
                    Some(Ok(_))
                        if quote_underflowing_numbers(&rest[..typed.byte_offset()]).is_some() =>
                    {
                        None
                    }
                    Some(Ok(value)) => {
                        scratch = value;
                        Some(typed.byte_offset())
                    }
                    _ => None,
                }
            });
            let end = match decoded {
                Some(length) => {
                    visit(index, Ok(&rest[..length]), Some(&mut scratch));
                    start + length
                }
                None => {
                    // Type errors stop the typed decoder mid-element; find the element's end
                    // syntactically and let the caller take the slow path on it.
                    let mut raw = serde_json::Deserializer::from_str(rest).into_iter::<&RawValue>();
                    match raw.next() {
                        Some(Ok(element)) => {
                            visit(index, Ok(element.get()), None);
                            start + raw.byte_offset()
                        }
                        Some(Err(error)) => {
                            return Err(BodyError {
                                message: format!(
                                    "the body is not valid JSON: {error} (in element {index})"
                                ),
                            });
                        }
                        None => return Err(invalid(start, "unexpected end")),
                    }
                }
            };
            index += 1;
            position = skip_whitespace(end);
            match bytes.get(position) {
                Some(b',') => position = skip_whitespace(position + 1),
                Some(b']') => {
                    position += 1;
                    break;
                }
                _ => return Err(invalid(position, "expected ',' or ']'")),
            }
        }
    }
    if skip_whitespace(position) != body.len() {
        return Err(invalid(position, "trailing characters after the array"));
    }
    Ok(index)
}

/// `json` with every number beyond the range of a 64-bit float written as a string instead,
/// `None` when it has none: those a float reads as 0 although their digits are not all zero
/// (`1e-400`, see [`crate::money::reads_as_zero_float`]) and those too large for one (`1e400`,
/// see [`crate::money::overflows_float`]). serde_json reads the first as 0, which would make
/// `"price": 1e-400` a free line, and refuses the second as invalid JSON without naming its
/// field; as text, an amount refuses either naming its field (any other field reads it as
/// what it is, text that is not the number it claims to be, and free-form `properties` keep
/// it as that text). Only events that take serde's path pay for the scan: the fast reader
/// declines every exponent.
pub fn quote_underflowing_numbers(json: &str) -> Option<String> {
    let bytes = json.as_bytes();
    let mut found = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'"' => {
                at += 1;
                while at < bytes.len() && bytes[at] != b'"' {
                    at += if bytes[at] == b'\\' { 2 } else { 1 };
                }
                at += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = at;
                while at < bytes.len()
                    && matches!(bytes[at], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                {
                    at += 1;
                }
                let number = &json[start..at];
                if crate::money::reads_as_zero_float(number)
                    || crate::money::overflows_float(number)
                {
                    found.push(start..at);
                }
            }
            _ => at += 1,
        }
    }
    if found.is_empty() {
        return None;
    }
    let mut quoted = String::with_capacity(json.len() + 2 * found.len());
    let mut copied = 0;
    for number in found {
        quoted.push_str(&json[copied..number.start]);
        quoted.push('"');
        quoted.push_str(&json[number.clone()]);
        quoted.push('"');
        copied = number.end;
    }
    quoted.push_str(&json[copied..]);
    Some(quoted)
}

/// What JSON counts as whitespace (`str::trim` also takes Unicode spaces, which JSON refuses).
const JSON_WHITESPACE: [char; 4] = [' ', '\t', '\n', '\r'];

/// Some Windows tools start UTF-8 text with a byte order mark; JSON parsers refuse it.
fn without_byte_order_mark(body: &str) -> &str {
    body.strip_prefix('\u{feff}').unwrap_or(body)
}

/// The most field errors collected from one event before giving up on it.
const MAX_TYPE_ERRORS: usize = 32;

/// Decodes `json` into `T`, collecting every type error with its path.
///
/// Returns the value decoded after blanking bad fields (when the top level is an object) and
/// the errors found. An empty error list means the fast path succeeded.
pub fn decode_collecting<T: DeserializeOwned>(json: &str) -> (Option<T>, Vec<FieldError>) {
    if let Some(quoted) = quote_underflowing_numbers(json) {
        return decode_collecting(&quoted);
    }
    match serde_json::from_str::<T>(json) {
        Ok(value) => return (Some(value), Vec::new()),
        Err(error) if error.is_syntax() || error.is_eof() => {
            return match replace_lone_surrogates(json) {
                Some(repaired) => decode_collecting(&repaired),
                None => (None, vec![invalid_json(&error)]),
            };
        }
        Err(_) => {}
    }
    let mut value: Value = match serde_json::from_str(json) {
        Ok(value) => value,
        Err(error) => return (None, vec![invalid_json(&error)]),
    };
    if !value.is_object() {
        let error = FieldError::new(
            "",
            ErrorCode::InvalidType,
            format!("an event must be a JSON object, not {}", json_type_name(&value)),
        );
        return (None, vec![error]);
    }
    let mut errors = Vec::new();
    // A field sent under both its names: which one was meant is unknown, so the event is not
    // validated further (that would report the other problems of a guess).
    let mut sent_twice = false;
    while errors.len() < MAX_TYPE_ERRORS {
        let error = match serde_path_to_error::deserialize::<_, T>(&value) {
            Ok(decoded) => return ((!sent_twice).then_some(decoded), errors),
            Err(error) => error,
        };
        let segments: Vec<Segment> = error.path().iter().cloned().collect();
        let message = error.into_inner().to_string();
        if let Some(name) = duplicate_field_name(&message) {
            let parent = navigate(&mut value, &segments).and_then(Value::as_object_mut);
            let Some((alias, parent)) = parent.and_then(|parent| {
                let alias = FIELD_ALIASES.iter().find(|(field, alias)| {
                    *field == name && parent.contains_key(*field) && parent.contains_key(*alias)
                })?;
                Some((alias.1, parent))
            }) else {
                errors.push(FieldError::new(
                    join_path(&segments, Some(&name)),
                    ErrorCode::InvalidValue,
                    "is given twice; send it once",
                ));
                return (None, errors);
            };
            parent.remove(alias);
            sent_twice = true;
            errors.push(FieldError::new(
                join_path(&segments, Some(&name)),
                ErrorCode::InvalidValue,
                format!("given twice, as `{name}` and `{alias}`; send one"),
            ));
            continue;
        }
        match unknown_field_name(&message) {
            Some(name) => {
                let mut parent = segments;
                if matches!(parent.last(), Some(Segment::Map { key }) if *key == name) {
                    parent.pop();
                }
                errors.push(FieldError::new(
                    join_path(&parent, Some(&name)),
                    ErrorCode::UnknownField,
                    "is not a known field (free-form data belongs in `properties`)",
                ));
                let removed = navigate(&mut value, &parent)
                    .and_then(Value::as_object_mut)
                    .and_then(|object| object.remove(&name));
                if removed.is_none() {
                    return (None, errors);
                }
            }
            None => {
                let found = navigate(&mut value, &segments);
                let got = found.as_ref().map(|value| json_type_name(value)).unwrap_or("nothing");
                // A number beyond a float, quoted by `quote_underflowing_numbers`: say so,
                // rather than that a number field got a string.
                let beyond_float = found.as_ref().and_then(|value| value.as_str()).filter(|text| {
                    crate::money::reads_as_zero_float(text) || crate::money::overflows_float(text)
                });
                let described = match beyond_float {
                    Some(text) => format!(
                        "{text} is beyond the range of a 64-bit float; {}",
                        describe_type_error(&message, "a number")
                    ),
                    None => describe_type_error(&message, got),
                };
                errors.push(FieldError::new(
                    join_path(&segments, None),
                    ErrorCode::InvalidType,
                    described,
                ));
                match found {
                    Some(slot) if !segments.is_empty() && !slot.is_null() => *slot = Value::Null,
                    _ => return (None, errors),
                }
            }
        }
    }
    (None, errors)
}

fn invalid_json(error: &serde_json::Error) -> FieldError {
    FieldError::new("", ErrorCode::InvalidJson, format!("not valid JSON: {error}"))
}

/// Fields the wire structs also accept under another name (serde `alias`), as (field, alias):
/// an object holding both is refused as serde's "duplicate field", which names one only.
const FIELD_ALIASES: [(&str, &str); 5] = [
    ("type", "event_type"),
    ("id", "product_id"),
    ("id", "order_id"),
    ("id", "promotion_id"),
    ("id", "list_id"),
];

fn duplicate_field_name(message: &str) -> Option<String> {
    let rest = message.strip_prefix("duplicate field `")?;
    let end = rest.find('`')?;
    Some(rest[..end].to_owned())
}

fn unknown_field_name(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let end = rest.find('`')?;
    Some(rest[..end].to_owned())
}

/// Turns serde's "invalid type: integer `5`, expected a string" into "must be a string, not
/// a number".
fn describe_type_error(message: &str, got: &str) -> String {
    let Some((_, expected)) = message.split_once(", expected ") else {
        return message.to_owned();
    };
    // Rust's type names mean nothing to a sender.
    let expected = match expected {
        "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" | "u64" | "isize" | "usize" => {
            "a whole number"
        }
        "f32" | "f64" => "a number",
        other => other,
    };
    if expected == "a whole number" && got == "a number" {
        return "must be a whole number".to_owned();
    }
    format!("must be {expected}, not {got}")
}

fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn navigate<'v>(mut value: &'v mut Value, segments: &[Segment]) -> Option<&'v mut Value> {
    for segment in segments {
        value = match segment {
            Segment::Seq { index } => value.as_array_mut()?.get_mut(*index)?,
            Segment::Map { key } => value.as_object_mut()?.get_mut(key)?,
            Segment::Enum { .. } | Segment::Unknown => return None,
        };
    }
    Some(value)
}

/// Renders a path the way clients write it: `items[2].quantity`.
pub fn join_path(segments: &[Segment], last: Option<&str>) -> String {
    let mut path = String::new();
    for segment in segments {
        match segment {
            Segment::Seq { index } => path.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Segment::Enum { variant } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(variant);
            }
            Segment::Unknown => path.push_str(".?"),
        }
    }
    if let Some(last) = last {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(last);
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw::RawEvent;

    #[test]
    fn arrays_objects_and_ndjson_are_split() {
        let elements = split_body(r#"[{"a":1}, {"b":2}]"#, BodyFormat::Json).unwrap();
        assert_eq!(elements.len(), 2);
        assert_eq!(elements[1].json.as_ref().unwrap(), &r#"{"b":2}"#);

        let elements = split_body(r#"{"a":1}"#, BodyFormat::Json).unwrap();
        assert_eq!(elements.len(), 1);

        let elements = split_body("{\"a\":1}\n\n{\"b\":2}\n", BodyFormat::Ndjson).unwrap();
        assert_eq!(elements.len(), 2);
        assert_eq!(elements[1].index, 1);
    }

    #[test]
    fn sniffing_tells_ndjson_from_pretty_json() {
        let ndjson = "{\"a\":1}\n{\"b\":2}";
        assert_eq!(split_body(ndjson, BodyFormat::Sniff).unwrap().len(), 2);
        let pretty = "{\n  \"a\": 1\n}";
        assert_eq!(split_body(pretty, BodyFormat::Sniff).unwrap().len(), 1);
    }

    #[test]
    fn broken_json_bodies_are_refused_whole() {
        let error = split_body(r#"[{"a":1}, {"b":"#, BodyFormat::Json).unwrap_err();
        assert!(error.message.starts_with("the body is not valid JSON"), "{}", error.message);
        assert!(split_body("   ", BodyFormat::Json).is_err());
    }

    fn walk(body: &str) -> Result<Vec<(usize, String, bool)>, BodyError> {
        let mut seen = Vec::new();
        for_each_element::<RawEvent>(body, BodyFormat::Json, |index, json, decoded| {
            seen.push((index, json.unwrap().to_owned(), decoded.is_some()));
        })?;
        Ok(seen)
    }

    /// The walk reuses one `RawEvent` for every element: nothing of an element may show in
    /// the next, whether the visitor took it out or not.
    #[test]
    fn no_element_sees_the_fields_of_the_one_before() {
        let body = r#"[{"type":"a","user_id":"u-1","ip":"203.0.113.9","page":{"url":"/x"}},
            {"type":"b"},{"type":"c","session_id":"s-1"},{"type":"d"}]"#;
        let mut seen = Vec::new();
        for_each_element::<RawEvent>(body, BodyFormat::Json, |index, _, decoded| {
            let raw = decoded.expect("the fast reader takes these");
            seen.push(format!("{:?} {:?} {:?} {:?}", raw.r#type, raw.user_id, raw.ip, raw.page));
            if index == 2 {
                raw.session_id.take(); // taken out, as validation does
            }
        })
        .unwrap();
        assert_eq!(seen[1], r#"Some("b") None None None"#);
        assert_eq!(seen[3], r#"Some("d") None None None"#);
        assert!(seen[0].contains("u-1") && seen[0].contains("203.0.113.9"), "{}", seen[0]);
    }

    #[test]
    fn one_pass_array_walk_finds_every_element() {
        let seen = walk(r#" [ {"type":"a"} ,{"type":5},{"type":"b"}] "#).unwrap();
        assert_eq!(
            seen,
            vec![
                (0, r#"{"type":"a"}"#.to_owned(), true),
                (1, r#"{"type":5}"#.to_owned(), false),
                (2, r#"{"type":"b"}"#.to_owned(), true),
            ]
        );
        assert_eq!(walk("[]").unwrap(), vec![]);
        assert_eq!(walk("[ 7 ]").unwrap(), vec![(0, "7".to_owned(), false)]);
    }

    #[test]
    fn a_single_object_is_decoded_in_the_walk() {
        let seen = walk(" \n{\"type\":\"a\"}\r\n").unwrap();
        assert_eq!(seen, vec![(0, r#"{"type":"a"}"#.to_owned(), true)]);
        // Left to serde: type errors, and what JSON does not allow around a value.
        assert_eq!(walk(r#"{"type":5}"#).unwrap(), vec![(0, r#"{"type":5}"#.to_owned(), false)]);
        assert!(walk("{\"type\":\"a\"}\u{a0}").is_err());
        assert!(walk(r#"{"type":"a"} {"type":"b"}"#).is_err());
    }

    #[test]
    fn a_byte_order_mark_is_ignored() {
        assert_eq!(walk("\u{feff}[{\"type\":\"a\"}]").unwrap().len(), 1);
        assert_eq!(split_body("\u{feff}{\"a\":1}", BodyFormat::Json).unwrap().len(), 1);
    }

    #[test]
    fn one_pass_array_walk_refuses_broken_arrays() {
        for body in [
            r#"[{"type":"a"},]"#,
            r#"[{"type":"a"}"#,
            r#"[{"type":"a"} {"type":"b"}]"#,
            r#"[{"type":"a"}] x"#,
            r#"[{"type":}]"#,
            "[",
        ] {
            assert!(walk(body).is_err(), "{body}");
        }
    }

    #[test]
    fn every_type_error_is_reported_with_its_path() {
        let json = r#"{"type":"purchase","user_id":123,"items":[{"id":"a"},{"id":"b","quantity":"two"}],"order":{"total":true}}"#;
        let (decoded, errors) = decode_collecting::<RawEvent>(json);
        let mut fields: Vec<&str> = errors.iter().map(|error| error.field.as_str()).collect();
        fields.sort();
        assert_eq!(fields, ["items[1].quantity", "order.total", "user_id"]);
        assert!(errors.iter().all(|error| error.code == ErrorCode::InvalidType));
        let user_id_error = errors.iter().find(|error| error.field == "user_id").unwrap();
        assert_eq!(user_id_error.message, "must be a string, not a number");
        let decoded = decoded.unwrap();
        assert_eq!(decoded.r#type.as_deref(), Some("purchase"));
        assert_eq!(decoded.items.unwrap().len(), 2);
    }

    #[test]
    fn unknown_fields_are_named() {
        let (decoded, errors) = decode_collecting::<RawEvent>(
            r#"{"type":"page_view","usr_id":"u1","page":{"urll":"x"}}"#,
        );
        let mut fields: Vec<&str> = errors.iter().map(|error| error.field.as_str()).collect();
        fields.sort();
        assert_eq!(fields, ["page.urll", "usr_id"]);
        assert!(errors.iter().all(|error| error.code == ErrorCode::UnknownField));
        assert!(decoded.is_some());
    }

    #[test]
    fn non_objects_are_refused() {
        let (decoded, errors) = decode_collecting::<RawEvent>("42");
        assert!(decoded.is_none());
        assert_eq!(errors[0].message, "an event must be a JSON object, not a number");
        let (_, errors) = decode_collecting::<RawEvent>("{bad json}");
        assert_eq!(errors[0].code, ErrorCode::InvalidJson);
    }

    #[test]
    fn properties_survive_the_slow_path() {
        let json = r#"{"type":"custom","name":"x","user_id":5,"properties":{"a":[1,2]}}"#;
        let (decoded, errors) = decode_collecting::<RawEvent>(json);
        assert_eq!(errors.len(), 1);
        assert_eq!(decoded.unwrap().properties.unwrap().get(), r#"{"a":[1,2]}"#);
    }

    /// `1e-400` reads as 0 through a float: such numbers are quoted (and so refused where an
    /// amount is due), outside strings only; zeros and ordinary numbers are left alone, and
    /// an array element holding one leaves the one-pass walk for the slow path.
    #[test]
    fn numbers_a_float_reads_as_zero_are_quoted() {
        assert_eq!(
            quote_underflowing_numbers(
                r#"{"a":1e-400,"b":"x\"1e-400","c":[-2E-999, 0e-999, 1.5e3]}"#
            )
            .as_deref(),
            Some(r#"{"a":"1e-400","b":"x\"1e-400","c":["-2E-999", 0e-999, 1.5e3]}"#)
        );
        for untouched in [r#"{"a":0,"b":0.0,"c":-0,"d":0e-400,"e":1e-300,"f":"1e-400"}"#, "12"] {
            assert_eq!(quote_underflowing_numbers(untouched), None, "{untouched}");
        }
        let seen = walk(
            r#"[{"type":"a","items":[{"price":1e-400}]},{"type":"b","items":[{"price":1e2}]}]"#,
        )
        .unwrap();
        assert_eq!((seen[0].2, seen[1].2), (false, true));
        let (_, errors) =
            decode_collecting::<RawEvent>(r#"{"type":"purchase","order":{"total":1e-400}}"#);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].field, "order.total");
        assert!(errors[0].message.contains("too small"), "{errors:?}");
    }

    /// `1e400` is beyond a float: serde_json refused the whole element as invalid JSON, with
    /// no field named; quoted, the field's own validation names it.
    #[test]
    fn numbers_too_large_for_a_float_are_quoted() {
        assert_eq!(
            quote_underflowing_numbers(r#"{"a":1e400,"b":[-2E+999, 1e308],"c":"1e400"}"#)
                .as_deref(),
            Some(r#"{"a":"1e400","b":["-2E+999", 1e308],"c":"1e400"}"#)
        );
        let seen = walk(r#"[{"type":"a","items":[{"quantity":1e400}]},{"type":"b"}]"#).unwrap();
        assert_eq!((seen[0].2, seen[1].2), (false, true));
        let (_, errors) =
            decode_collecting::<RawEvent>(r#"{"type":"purchase","order":{"total":1e400}}"#);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].field, "order.total");
        assert!(errors[0].message.contains("too large"), "{errors:?}");
    }
}
