//! Reading lone UTF-16 surrogate escapes as U+FFFD.
//!
//! A browser tracker that shortens a string with `String.prototype.slice` can cut an emoji in
//! half; `JSON.stringify` then writes the remaining half as an escape such as `"\ud83d"`.
//! serde_json refuses such a string, and with it the whole body or event, although browsers
//! and most JSON parsers read the half as U+FFFD (the replacement character). We do the same:
//! when text fails to parse, [`replace_lone_surrogates`] rewrites each escape of a surrogate
//! that is not part of a high + low pair to `\uFFFD`, and the caller parses the result.
//!
//! The rewrite runs only after a parse failed, so good bodies pay nothing for it.

/// The escape that stands in for each lone surrogate.
const REPLACEMENT_ESCAPE: &str = "\\uFFFD";

/// The length of a `\uXXXX` escape.
const UNIT_ESCAPE_LENGTH: usize = 6;

/// `text` with every escape of an unpaired UTF-16 surrogate (`\uD800`–`\uDFFF`) replaced by
/// `\uFFFD`; `None` when it has none (the parse failed for another reason).
///
/// Escapes are read from left to right, so an escaped backslash followed by `u` (`\\ud83d`)
/// is not taken for an escape. JSON allows a backslash only inside strings, so no other
/// context needs tracking.
pub fn replace_lone_surrogates(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut repaired = String::new();
    let mut copied_up_to = 0;
    let mut at = 0;
    while let Some(offset) = bytes[at..].iter().position(|&byte| byte == b'\\') {
        let escape = at + offset;
        at = match unit_escape_at(bytes, escape) {
            Some(0xD800..=0xDBFF)
                if matches!(
                    unit_escape_at(bytes, escape + UNIT_ESCAPE_LENGTH),
                    Some(0xDC00..=0xDFFF)
                ) =>
            {
                escape + 2 * UNIT_ESCAPE_LENGTH
            }
            Some(0xD800..=0xDFFF) => {
                repaired.push_str(&text[copied_up_to..escape]);
                repaired.push_str(REPLACEMENT_ESCAPE);
                copied_up_to = escape + UNIT_ESCAPE_LENGTH;
                copied_up_to
            }
            Some(_) => escape + UNIT_ESCAPE_LENGTH,
            // Any other escape is two bytes (`\\`, `\"`, `\n`...); skipping both keeps an
            // escaped backslash from starting an escape.
            None => (escape + 2).min(bytes.len()),
        };
    }
    if copied_up_to == 0 {
        return None;
    }
    repaired.push_str(&text[copied_up_to..]);
    Some(repaired)
}

/// `text` parsed as `T`; when serde refuses it and it holds lone surrogate escapes, their
/// repaired copy (kept in `repaired`, which the value may borrow from) is parsed instead.
pub fn parse_reading_lone_surrogates<'t, T: serde::Deserialize<'t>>(
    text: &'t str,
    repaired: &'t mut Option<String>,
) -> Result<T, serde_json::Error> {
    match serde_json::from_str(text) {
        Ok(value) => Ok(value),
        Err(error) => match replace_lone_surrogates(text) {
            Some(copy) => serde_json::from_str(repaired.insert(copy)),
            None => Err(error),
        },
    }
}

/// The code unit of the `\uXXXX` escape starting at `at`, if one does.
fn unit_escape_at(bytes: &[u8], at: usize) -> Option<u32> {
    let escape = bytes.get(at..at + UNIT_ESCAPE_LENGTH)?;
    if escape[0] != b'\\' || escape[1] != b'u' {
        return None;
    }
    escape[2..].iter().try_fold(0, |unit, &digit| Some(unit * 16 + char::from(digit).to_digit(16)?))
}

#[cfg(test)]
mod tests {
    use super::replace_lone_surrogates;

    #[test]
    fn a_lone_high_or_low_surrogate_becomes_the_replacement_character() {
        assert_eq!(
            replace_lone_surrogates(r#""Sneakers \ud83d""#).unwrap(),
            r#""Sneakers \uFFFD""#
        );
        assert_eq!(replace_lone_surrogates(r#""\ude00 x""#).unwrap(), r#""\uFFFD x""#);
        assert_eq!(
            replace_lone_surrogates(r#"["\uD83D\uD83D\uDE00", "\ud83d\n"]"#).unwrap(),
            r#"["\uFFFD\uD83D\uDE00", "\uFFFD\n"]"#
        );
    }

    #[test]
    fn pairs_other_escapes_and_escaped_backslashes_are_left_alone() {
        assert_eq!(replace_lone_surrogates(r#""\ud83d\ude00 caf\u00e9""#), None);
        assert_eq!(replace_lone_surrogates(r#""\\ud83d""#), None);
        assert_eq!(replace_lone_surrogates(r#""\\\ud83d""#).unwrap(), r#""\\\uFFFD""#);
        assert_eq!(replace_lone_surrogates(r#""unfinished \"#), None);
        assert_eq!(replace_lone_surrogates(r#""\ud8""#), None);
    }

    #[test]
    fn the_repaired_text_parses_to_the_replacement_character() {
        let repaired = replace_lone_surrogates(r#"{"q":"ab\ud83d"}"#).unwrap();
        let value: serde_json::Value = serde_json::from_str(&repaired).unwrap();
        assert_eq!(value["q"], "ab\u{FFFD}");
    }
}
