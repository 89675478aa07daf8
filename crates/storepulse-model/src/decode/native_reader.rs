//! A reader for the common shape of a native event, tried before serde.
//!
//! serde_json's derive-driven decode of a 330-byte page view costs ~8,000 instructions, about
//! half of them in visitor layers (`Option` wrappers, field identifiers, string visitors), and
//! ingest pays it for every event. This reader walks the bytes once and fills the same
//! [`RawEvent`] directly.
//!
//! It only answers where it decodes exactly as serde would. On anything else — a control
//! character or a bad escape in a string, an escape in a key, a time or an amount, an unknown
//! or repeated field, a value of the wrong type, an exponent, a float where serde's float
//! parsing could round — it gives up (`None`) and the caller takes the serde path, which also
//! reports every error with its field. The property test below checks that both agree
//! wherever this reader answers, and that it answers for the events clients really send.

use std::borrow::Cow;

use compact_str::{CompactString, ToCompactString};
use serde_json::value::RawValue;

use crate::money::DecimalAmount;
use crate::raw::{
    CategoryPath, RawDevice, RawEvent, RawList, RawMarketing, RawOrder, RawPage, RawProduct,
    RawPromotion, RawText, RawTime, split_category_path,
};

/// Reads the event object at the start of `json` into `event` (which must be default) and
/// returns the length of its text, or `None` to leave the element to serde.
pub(crate) fn read_event(json: &str, event: &mut RawEvent) -> Option<usize> {
    let mut reader = Reader { text: json, bytes: json.as_bytes(), at: 0 };
    reader.event(event)?;
    Some(reader.at)
}

/// Where a member of an all-text object goes: its index for [`Seen`] and its field; `None`
/// for a key the object does not have.
type TextSlot<T> = for<'t> fn(&'t mut T, &[u8]) -> Option<(u32, &'t mut Option<CompactString>)>;

/// Declines to go on when a field appears twice (serde refuses a repeated field).
struct Seen(u32);

impl Seen {
    fn first(&mut self, field: u32) -> Option<()> {
        let bit = 1 << field;
        if self.0 & bit != 0 {
            return None;
        }
        self.0 |= bit;
        Some(())
    }
}

/// A cursor over JSON text. Every method returns `None` when the text is not in the shape
/// this reader handles (including when it is not JSON at all).
struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// The next byte after whitespace, not consumed. The byte at the cursor is tested first:
    /// most calls meet no whitespace, and the loop alone cost 6 % of the decode path.
    fn peek(&mut self) -> Option<u8> {
        let byte = *self.bytes.get(self.at)?;
        if byte > b' ' {
            return Some(byte);
        }
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.at) {
            self.at += 1;
        }
        self.bytes.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// `null`, consumed; `false` (nothing consumed) for anything else.
    fn null(&mut self) -> bool {
        let is_null = self.peek() == Some(b'n') && self.bytes[self.at..].starts_with(b"null");
        if is_null {
            self.at += 4;
        }
        is_null
    }

    /// Where the text of a string without escapes or control characters lies, consumed.
    #[inline(always)]
    fn plain_string(&mut self) -> Option<std::ops::Range<usize>> {
        self.eat(b'"')?;
        let start = self.at;
        let end = start + quoted_length(&self.bytes[start..])?;
        self.at = end + 1;
        Some(start..end)
    }

    /// A string without escapes or control characters, borrowed from the text (times,
    /// amounts: an escape there is left to serde).
    #[inline(always)]
    fn string(&mut self) -> Option<&'a str> {
        self.plain_string().map(|text| &self.text[text])
    }

    /// A key, as bytes: matched against the field names as bytes, it needs no check that its
    /// ends are character boundaries (2 % of the decode path's instructions). An escape in a
    /// key is left to serde.
    #[inline(always)]
    fn key(&mut self) -> Option<&'a [u8]> {
        self.plain_string().map(|text| &self.bytes[text])
    }

    /// A string value, escapes decoded as serde_json decodes them (PHP's `json_encode` writes
    /// every `/` of a URL as `\/`); borrowed from the text when it has none.
    fn string_value(&mut self) -> Option<Cow<'a, str>> {
        self.eat(b'"')?;
        let start = self.at;
        let end = start + stop_index(&self.bytes[start..])?;
        if self.bytes[end] == b'"' {
            self.at = end + 1;
            return Some(Cow::Borrowed(&self.text[start..end]));
        }
        self.escaped(start, end).map(Cow::Owned)
    }

    /// The rest of a string whose text from `start` runs unescaped up to `end`, where a
    /// backslash (an escape) or a control character (refused) is.
    #[cold]
    #[inline(never)]
    fn escaped(&mut self, start: usize, mut end: usize) -> Option<String> {
        let mut owned = String::with_capacity(end - start + 16);
        owned.push_str(&self.text[start..end]);
        while self.bytes[end] == b'\\' {
            let mut at = end + 2;
            match self.bytes.get(end + 1)? {
                b'"' => owned.push('"'),
                b'\\' => owned.push('\\'),
                b'/' => owned.push('/'),
                b'b' => owned.push('\u{8}'),
                b'f' => owned.push('\u{c}'),
                b'n' => owned.push('\n'),
                b'r' => owned.push('\r'),
                b't' => owned.push('\t'),
                b'u' => {
                    let unit = hex_unit(self.bytes.get(at..at + 4)?)?;
                    at += 4;
                    let code = match unit {
                        // A leading surrogate must be followed by an escaped trailing one;
                        // serde refuses a lone surrogate.
                        0xD800..=0xDBFF => {
                            if self.bytes.get(at..at + 2)? != b"\\u" {
                                return None;
                            }
                            let low = hex_unit(self.bytes.get(at + 2..at + 6)?)?;
                            if !(0xDC00..=0xDFFF).contains(&low) {
                                return None;
                            }
                            at += 6;
                            0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                        }
                        0xDC00..=0xDFFF => return None,
                        _ => unit,
                    };
                    owned.push(char::from_u32(code)?);
                }
                _ => return None,
            }
            end = at + stop_index(&self.bytes[at..])?;
            owned.push_str(&self.text[at..end]);
        }
        (self.bytes[end] == b'"').then(|| {
            self.at = end + 1;
            owned
        })
    }

    /// The text of a JSON number without an exponent, checked against JSON's grammar.
    fn number(&mut self) -> Option<&'a str> {
        self.peek()?;
        let start = self.at;
        let digits = |at: &mut usize| {
            let from = *at;
            while self.bytes.get(*at).is_some_and(u8::is_ascii_digit) {
                *at += 1;
            }
            *at - from
        };
        let mut at = start + usize::from(self.bytes[start] == b'-');
        match self.bytes.get(at) {
            Some(b'0') => at += 1,
            Some(b'1'..=b'9') => {
                digits(&mut at);
            }
            _ => return None,
        }
        if self.bytes.get(at) == Some(&b'.') {
            at += 1;
            if digits(&mut at) == 0 {
                return None;
            }
        }
        if matches!(self.bytes.get(at), Some(b'e' | b'E')) {
            return None;
        }
        self.at = at;
        Some(&self.text[start..at])
    }

    /// The text of a number serde_json reads as an integer: no fraction, and not `-0` (which
    /// it reads as the float −0.0).
    fn integer_text(&mut self) -> Option<&'a str> {
        let text = self.number()?;
        (!text.contains('.') && text != "-0").then_some(text)
    }

    /// A JSON integer that fits an `i64` (serde refuses larger ones for these fields).
    fn integer(&mut self) -> Option<i64> {
        self.integer_text()?.parse().ok()
    }

    /// Walks an object, calling `member` with each key; `member` reads the value.
    fn object(&mut self, mut member: impl FnMut(&mut Self, &'a [u8]) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            let key = self.key()?;
            self.eat(b':')?;
            member(self, key)?;
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Walks an array, calling `element` for each value.
    fn array(&mut self, mut element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.eat(b'[')?;
        if self.peek()? == b']' {
            self.at += 1;
            return Some(());
        }
        loop {
            element(self)?;
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// `null` (`Some(None)`) or what `read` makes of the value.
    fn nullable<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        if self.null() { Some(None) } else { read(self).map(Some) }
    }

    /// [`Reader::text`] of a string the borrowed read declined at `before`: one with an
    /// escape, decoded (or one with a control character, refused). Out of line so that the
    /// common path stays as small as it was.
    #[cold]
    #[inline(never)]
    fn escaped_text(&mut self, before: usize) -> Option<CompactString> {
        self.at = before;
        self.string_value().map(|text| CompactString::from(text.as_ref()))
    }

    fn boxed<T: Default>(
        &mut self,
        read: impl FnOnce(&mut Self, &mut T) -> Option<()>,
    ) -> Option<Option<Box<T>>> {
        self.nullable(|reader| {
            let mut value = Box::<T>::default();
            read(reader, &mut value)?;
            Some(value)
        })
    }

    /// `null` or an object read into `slot` in place: built on the stack and returned, the
    /// value was moved twice more (through `Option<Option<_>>`) on its way into the event.
    fn inline_into<T: Default>(
        &mut self,
        slot: &mut Option<T>,
        read: impl FnOnce(&mut Self, &mut T) -> Option<()>,
    ) -> Option<()> {
        if self.null() {
            *slot = None;
            return Some(());
        }
        read(self, slot.insert(T::default()))
    }

    /// One arm per field, spelt out: matching the text fields first and the others after
    /// cost 5 % more instructions on the whole decode path.
    fn event(&mut self, event: &mut RawEvent) -> Option<()> {
        let mut seen = Seen(0);
        self.object(|reader, key| {
            match key {
                b"event_id" => reader.text_into(&mut seen, 0, &mut event.event_id)?,
                b"type" | b"event_type" => reader.text_into(&mut seen, 1, &mut event.r#type)?,
                b"name" => reader.text_into(&mut seen, 2, &mut event.name)?,
                b"timestamp" => {
                    seen.first(3)?;
                    event.timestamp = reader.nullable(Reader::time)?;
                }
                b"store" => reader.text_into(&mut seen, 4, &mut event.store)?,
                b"user_id" => reader.text_into(&mut seen, 5, &mut event.user_id)?,
                b"anonymous_id" => reader.text_into(&mut seen, 6, &mut event.anonymous_id)?,
                b"session_id" => reader.text_into(&mut seen, 7, &mut event.session_id)?,
                b"page" => {
                    seen.first(8)?;
                    reader.inline_into(&mut event.page, Reader::page)?;
                }
                b"marketing" => {
                    seen.first(9)?;
                    event.marketing = reader.boxed(Reader::marketing)?;
                }
                b"country" => reader.text_into(&mut seen, 10, &mut event.country)?,
                b"device" => {
                    seen.first(11)?;
                    reader.inline_into(&mut event.device, Reader::device)?;
                }
                b"ip" => reader.text_into(&mut seen, 12, &mut event.ip)?,
                b"product" => {
                    seen.first(13)?;
                    event.product = reader.boxed(Reader::product)?;
                }
                b"order" => {
                    seen.first(14)?;
                    event.order = reader.boxed(Reader::order)?;
                }
                b"items" => {
                    seen.first(15)?;
                    event.items = reader.nullable(Reader::items)?;
                }
                b"promotion" => {
                    seen.first(16)?;
                    event.promotion = reader.boxed(Reader::promotion)?;
                }
                b"query" => reader.text_into(&mut seen, 17, &mut event.query)?,
                b"list" => {
                    seen.first(18)?;
                    event.list = reader.boxed(Reader::list)?;
                }
                b"properties" => {
                    seen.first(19)?;
                    event.properties = reader.nullable(Reader::raw_value)?;
                }
                _ => return None,
            }
            Some(())
        })
    }

    /// A text member into `slot`, refusing a repeated one.
    fn text_into(
        &mut self,
        seen: &mut Seen,
        field: u32,
        slot: &mut Option<CompactString>,
    ) -> Option<()> {
        seen.first(field)?;
        // Written straight into `slot`: returned through `Option<Option<_>>` layers, the
        // 24-byte string was copied three times, each copy reading back, as one unaligned
        // word, bytes just stored as two, which stalls until the stores retire; that was three
        // quarters of this function's time (perf, thirteenth session). A plain string is tried
        // first, as the common case: trying `null` first looked at every string's first byte
        // twice.
        let before = self.at;
        if let Some(text) = self.string() {
            *slot = Some(CompactString::from(text));
            return Some(());
        }
        self.at = before;
        if self.null() {
            *slot = None;
            return Some(());
        }
        *slot = Some(self.escaped_text(before)?);
        Some(())
    }

    /// An object whose members are all text, each key's field named by `slot`.
    fn text_members<T>(&mut self, target: &mut T, slot: TextSlot<T>) -> Option<()> {
        let mut seen = Seen(0);
        self.object(|reader, key| {
            let (field, value) = slot(target, key)?;
            reader.text_into(&mut seen, field, value)
        })
    }

    fn page(&mut self, page: &mut RawPage) -> Option<()> {
        self.text_members(page, |page, key| match key {
            b"url" => Some((0, &mut page.url)),
            b"path" => Some((1, &mut page.path)),
            b"title" => Some((2, &mut page.title)),
            b"referrer" => Some((3, &mut page.referrer)),
            _ => None,
        })
    }

    fn marketing(&mut self, marketing: &mut RawMarketing) -> Option<()> {
        self.text_members(marketing, |marketing, key| match key {
            b"utm_source" => Some((0, &mut marketing.utm_source)),
            b"utm_medium" => Some((1, &mut marketing.utm_medium)),
            b"utm_campaign" => Some((2, &mut marketing.utm_campaign)),
            b"utm_term" => Some((3, &mut marketing.utm_term)),
            b"utm_content" => Some((4, &mut marketing.utm_content)),
            b"referrer_host" => Some((5, &mut marketing.referrer_host)),
            _ => None,
        })
    }

    fn device(&mut self, device: &mut RawDevice) -> Option<()> {
        self.text_members(device, |device, key| match key {
            b"type" => Some((0, &mut device.r#type)),
            b"user_agent" => Some((1, &mut device.user_agent)),
            _ => None,
        })
    }

    fn product(&mut self, product: &mut RawProduct) -> Option<()> {
        let mut seen = Seen(0);
        self.object(|reader, key| {
            let (field, slot) = match key {
                b"id" | b"product_id" => (0, &mut product.id),
                b"name" => (1, &mut product.name),
                b"brand" => (2, &mut product.brand),
                b"variant" => (3, &mut product.variant),
                b"currency" => (4, &mut product.currency),
                b"coupon" => (5, &mut product.coupon),
                b"category" => {
                    seen.first(6)?;
                    product.category = reader.nullable(Reader::category)?;
                    return Some(());
                }
                b"price" => {
                    seen.first(7)?;
                    product.price = reader.nullable(Reader::amount)?;
                    return Some(());
                }
                b"quantity" => {
                    seen.first(8)?;
                    product.quantity = reader.nullable(Reader::integer)?;
                    return Some(());
                }
                _ => return None,
            };
            reader.text_into(&mut seen, field, slot)
        })
    }

    fn order(&mut self, order: &mut RawOrder) -> Option<()> {
        let mut seen = Seen(0);
        self.object(|reader, key| {
            let (field, amount) = match key {
                b"total" => (0, &mut order.total),
                b"subtotal" => (1, &mut order.subtotal),
                b"tax" => (2, &mut order.tax),
                b"shipping" => (3, &mut order.shipping),
                b"discount" => (4, &mut order.discount),
                _ => {
                    let (field, slot) = match key {
                        b"id" | b"order_id" => (5, &mut order.id),
                        b"coupon" => (6, &mut order.coupon),
                        b"currency" => (7, &mut order.currency),
                        b"status" => (8, &mut order.status),
                        b"customer_id" => (9, &mut order.customer_id),
                        b"sales_rep_id" => (10, &mut order.sales_rep_id),
                        _ => return None,
                    };
                    return reader.text_into(&mut seen, field, slot);
                }
            };
            seen.first(field)?;
            *amount = reader.nullable(Reader::amount)?;
            Some(())
        })
    }

    fn promotion(&mut self, promotion: &mut RawPromotion) -> Option<()> {
        let mut seen = Seen(0);
        self.object(|reader, key| {
            let (field, slot) = match key {
                b"id" | b"promotion_id" => (0, &mut promotion.id),
                b"name" => (1, &mut promotion.name),
                b"creative" => (2, &mut promotion.creative),
                b"position" => {
                    seen.first(3)?;
                    promotion.position = reader.nullable(Reader::loose_text)?;
                    return Some(());
                }
                _ => return None,
            };
            reader.text_into(&mut seen, field, slot)
        })
    }

    fn list(&mut self, list: &mut RawList) -> Option<()> {
        self.text_members(list, |list, key| match key {
            b"id" | b"list_id" => Some((0, &mut list.id)),
            b"category" => Some((1, &mut list.category)),
            _ => None,
        })
    }

    fn items(&mut self) -> Option<Vec<Option<RawProduct>>> {
        let mut items = Vec::new();
        self.array(|reader| {
            let mut item = None;
            reader.inline_into(&mut item, Reader::product)?;
            items.push(item);
            Some(())
        })?;
        Some(items)
    }

    /// RFC 3339 text (parsed as [`RawTime`]'s serde impl does) or an integer; a float is left
    /// to serde, whose float parsing this reader does not reproduce.
    fn time(&mut self) -> Option<RawTime> {
        if self.peek()? == b'"' {
            return self
                .string()
                .map(|text| RawTime::Text(crate::time::parse_timestamp_text(text)));
        }
        self.integer().map(RawTime::Integer)
    }

    /// `"A > B"` or `["A", "B"]`, as [`CategoryPath`]'s serde impl reads them.
    fn category(&mut self) -> Option<CategoryPath> {
        if self.peek()? == b'"' {
            return self.string_value().map(|text| CategoryPath(split_category_path(&text)));
        }
        let mut levels = Vec::new();
        self.array(|reader| {
            levels.push(reader.string_value()?.trim().into());
            Some(())
        })?;
        Some(CategoryPath(levels))
    }

    /// An amount as [`DecimalAmount`]'s serde impl reads it. A fraction is read from its
    /// digits, which equals serde's reading (through an `f64` and its shortest text) only
    /// while the digits fit an `f64` exactly: at most 15 digits in all.
    fn amount(&mut self) -> Option<DecimalAmount> {
        if self.peek()? == b'"' {
            return DecimalAmount::parse(self.string()?);
        }
        let text = self.number()?;
        if !text.contains('.') {
            return text.parse().ok().map(DecimalAmount::from_i64);
        }
        let digits = text.bytes().filter(u8::is_ascii_digit).count();
        if digits > 15 {
            return None;
        }
        DecimalAmount::parse(text)
    }

    /// A string, or an integer written as its decimal text (see [`RawText`]).
    fn loose_text(&mut self) -> Option<RawText> {
        if self.peek()? == b'"' {
            return self.string_value().map(|text| RawText(text.into()));
        }
        let text = self.integer_text()?;
        match text.parse::<i64>() {
            Ok(value) => Some(RawText(value.to_compact_string())),
            Err(_) => text.parse::<u64>().ok().map(|value| RawText(value.to_compact_string())),
        }
    }

    /// Free-form JSON, cut out by serde_json itself (it checks the syntax, escapes included).
    fn raw_value(&mut self) -> Option<Box<RawValue>> {
        self.peek()?;
        let rest = &self.text[self.at..];
        let mut values = serde_json::Deserializer::from_str(rest).into_iter::<Box<RawValue>>();
        let value = values.next()?.ok()?;
        self.at += values.byte_offset();
        Some(value)
    }
}

/// The length of a string's text up to its closing quote; `None` when an escape or a control
/// character comes first, or the quote never does.
fn quoted_length(bytes: &[u8]) -> Option<usize> {
    scan_to_stop(bytes, |at| (bytes[at] == b'"').then_some(at))
}

/// The four hex digits of a `\u` escape.
fn hex_unit(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0, |unit, &digit| Some(unit * 16 + char::from(digit).to_digit(16)?))
}

/// Where the first `"`, `\` or control character (which JSON forbids raw) is in a string's
/// text; `None` when there is none.
fn stop_index(bytes: &[u8]) -> Option<usize> {
    scan_to_stop(bytes, Some)
}

/// `found` of the index of the first `"`, `\` or control character in `bytes`. Eight bytes
/// at a time with the bit trick serde_json uses: such a byte sets its high bit in `hits`;
/// bytes after the first such byte may be flagged wrongly, so only the lowest flag is read.
/// Always inlined, `found` with it: with the check after the loop instead of inside it the
/// decode path cost 3 % more instructions.
#[inline(always)]
fn scan_to_stop(bytes: &[u8], found: impl Fn(usize) -> Option<usize>) -> Option<usize> {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES << 7;
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        let quote = word ^ (ONES * u64::from(b'"'));
        let backslash = word ^ (ONES * u64::from(b'\\'));
        let hits = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (word.wrapping_sub(ONES * 0x20) & !word);
        if hits & HIGH != 0 {
            return found(offset + (hits & HIGH).trailing_zeros() as usize / 8);
        }
        offset += 8;
    }
    let stop = |byte: u8| byte == b'"' || byte == b'\\' || byte < 0x20;
    found(offset + chunks.remainder().iter().position(|&byte| stop(byte))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// serde's reading of the element at the start of `json` and the length of its text.
    fn serde_read(json: &str) -> Option<(RawEvent, usize)> {
        let mut values = serde_json::Deserializer::from_str(json).into_iter::<RawEvent>();
        let event = values.next()?.ok()?;
        Some((event, values.byte_offset()))
    }

    fn fast_read(json: &str) -> Option<(RawEvent, usize)> {
        let mut event = RawEvent::default();
        let end = read_event(json, &mut event)?;
        Some((event, end))
    }

    /// Where the reader answers, serde must answer the same.
    fn agree(json: &str) {
        if let Some((fast, end)) = fast_read(json) {
            let (slow, slow_end) = serde_read(json)
                .unwrap_or_else(|| panic!("the reader took what serde refuses: {json}"));
            assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "{json}");
            assert_eq!(end, slow_end, "{json}");
        }
    }

    #[test]
    fn reads_a_full_purchase_as_serde_does() {
        let json = r#"{"event_id":"e-1","event_type":"purchase","timestamp":1795300000123,
            "store":"eu","user_id":"u-1","anonymous_id":null,"session_id":"s-1",
            "page":{"url":"https://shop.example/checkout","title":"Thanks","referrer":null},
            "marketing":{"utm_source":"newsletter","utm_campaign":"winter"},"country":"de",
            "device":{"type":"desktop","user_agent":"Mozilla/5.0 (X11; Linux) Firefox/133"},
            "ip":"203.0.113.9","order":{"order_id":"o-1","total":59.97,"tax":"9.57",
            "shipping":0,"discount":-5,"currency":"EUR","sales_rep_id":"rep-7"},
            "items":[{"product_id":"p-1","name":"Runner","category":"Shoes > Running",
            "price":19.99,"quantity":3},null,{"id":"p-2","category":["A ","B"]}],
            "promotion":{"promotion_id":"pr-1","position":2},"list":{"list_id":"l"},
            "query":"shoes","properties":{"gift":true,"note":"caf\u00e9","n":[1,2.5e3]}} ,"#;
        let (fast, end) = fast_read(json).expect("the reader takes a plain purchase");
        assert_eq!(&json[end..], " ,");
        agree(json);
        assert_eq!(fast.items.as_ref().map(Vec::len), Some(3));
        assert_eq!(fast.timestamp, Some(RawTime::Integer(1_795_300_000_123)));
    }

    #[test]
    fn decodes_escapes_as_serde_does() {
        let json = r#"{"page":{"url":"https:\/\/shop.test\/p\/1","title":"\"Caf\u00e9\" \ud83d\ude00\t\\"}}"#;
        let (fast, _) = fast_read(json).expect("the reader decodes escapes");
        let page = fast.page.as_ref().expect("a page");
        assert_eq!(page.url.as_deref(), Some("https://shop.test/p/1"));
        assert_eq!(page.title.as_deref(), Some("\"Caf\u{e9}\" \u{1F600}\t\\"));
        agree(json);
    }

    #[test]
    fn declines_what_it_cannot_read_exactly() {
        for json in [
            r#"{"user_id":"a\x"}"#,                      // not an escape
            r#"{"user_id":"\u12"}"#,                     // a short \u escape
            r#"{"user_id":"\ud83d"}"#,                   // a lone leading surrogate
            r#"{"user_id":"\ude00x"}"#,                  // a lone trailing surrogate
            r#"{"user_id":"\ud83d\u0041"}"#,             // a leading surrogate, no trailing one
            r#"{"user\u005fid":"u"}"#,                   // an escape in a key
            "{\"user_id\":\"a\tb\"}",                    // raw control character
            r#"{"user_id":"u","user_id":"v"}"#,          // repeated field
            r#"{"type":"a","event_type":"b"}"#,          // a field and its alias
            r#"{"usr_id":"u"}"#,                         // unknown field
            r#"{"user_id":5}"#,                          // wrong type
            r#"{"timestamp":1.5}"#,                      // float time
            r#"{"order":{"total":1e3}}"#,                // exponent
            r#"{"order":{"total":0.1234567890123456}}"#, // more digits than an f64 holds
            r#"{"items":[{"quantity":1.0}]}"#,           // float quantity
            r#"{"items":[{"quantity":01}]}"#,            // leading zero
            r#"{"user_id":"u",}"#,                       // trailing comma
            r#"["not an object"]"#,
            r#"{"user_id":"u""#,
        ] {
            assert!(fast_read(json).is_none(), "{json}");
        }
    }

    /// Any JSON value, often not the one a field expects.
    fn any_value() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => text(),
            1 => "[a-z\\\\\"\u{e9}\u{1F600}\t]{0,4}".prop_map(|text| {
                serde_json::to_string(&text).unwrap_or_default()
            }),
            1 => Just("null".to_owned()),
            3 => number(),
            1 => Just("true".to_owned()),
            1 => Just("{\"a\": [1, \"x\", null]}".to_owned()),
            1 => Just("[\"A\", \" B \"]".to_owned()),
            1 => Just("\"2026-11-21T10:00:00.250+02:00\"".to_owned()),
        ]
    }

    fn text() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9 ./:>_-]{0,12}".prop_map(|text| format!("\"{text}\""))
    }

    /// Strings with escapes, good and bad: every short escape, `\u` escapes in both cases,
    /// surrogate pairs, lone surrogates, truncated and unknown escapes, a raw control character.
    fn escaped_text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            "[a-z/ ]{0,3}",
            prop::sample::select(vec![
                r#"\""#,
                r#"\\"#,
                r#"\/"#,
                r#"\b"#,
                r#"\f"#,
                r#"\n"#,
                r#"\r"#,
                r#"\t"#,
                r#"\u00e9"#,
                r#"\u00E9"#,
                r#"\u0000"#,
                r#"\ud83d\ude00"#,
                r#"\uD83D\uDE00"#,
                r#"\ud83d"#,
                r#"\ude00"#,
                r#"\ud83dx"#,
                r#"\u12"#,
                r#"\x"#,
                "\u{1}",
            ])
            .prop_map(str::to_owned),
        ];
        prop::collection::vec(piece, 1..5).prop_map(|pieces| format!("\"{}\"", pieces.concat()))
    }

    /// JSON numbers of every form: integers, fractions, exponents, −0, too many digits.
    fn number() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "-?(0|[1-9][0-9]{0,19})(\\.[0-9]{1,18})?([eE][+-]?[0-9]{1,2})?",
            2 => "-?(0|[1-9][0-9]{0,4})(\\.[0-9]{1,4})?",
            1 => Just("-0".to_owned()),
            1 => Just("-0.0".to_owned()),
        ]
    }

    #[derive(Clone, Copy, Debug)]
    enum Kind {
        Text,
        Time,
        Amount,
        Quantity,
        Category,
        Position,
        Free,
    }

    /// A value of `kind` nine times in ten, anything the tenth.
    fn value_of(kind: Kind) -> BoxedStrategy<String> {
        let typed = match kind {
            Kind::Text => prop_oneof![
                8 => text(),
                2 => escaped_text(),
                1 => Just("null".to_owned()),
            ]
            .boxed(),
            Kind::Time => prop_oneof![
                "[0-9]{10,16}",
                Just("\"2026-11-21T10:00:00Z\"".to_owned()),
                Just("\"2026-11-21 10:00:00.5-05:30\"".to_owned()),
                Just("\"yesterday\"".to_owned()),
            ]
            .boxed(),
            Kind::Amount => prop_oneof![
                number(),
                "-?[0-9]{1,4}(\\.[0-9]{1,3})?".prop_map(|amount| format!("\"{amount}\"")),
            ]
            .boxed(),
            Kind::Quantity => "-?[0-9]{1,3}".boxed(),
            Kind::Category => prop_oneof![
                Just("\"Apparel > Shoes\"".to_owned()),
                Just("\"A/B/\"".to_owned()),
                Just("[\" Home \", \"Lamps\"]".to_owned()),
                Just("[]".to_owned()),
            ]
            .boxed(),
            Kind::Position => prop_oneof![text(), "-?[0-9]{1,20}"].boxed(),
            Kind::Free => prop_oneof![
                Just("{\"gift\": true, \"tags\": [\"a\", 1.5e2, null]}".to_owned()),
                Just("[1, {\"b\": \"caf\\u00e9\"}]".to_owned()),
                Just("\"x\"".to_owned()),
            ]
            .boxed(),
        };
        prop_oneof![9 => typed, 1 => any_value()].boxed()
    }

    /// An object with a random subset of `fields`, each mostly of its kind, and now and then
    /// an unknown or repeated key; keys and values spaced at random.
    fn object_of(fields: &'static [(&'static str, Kind)]) -> BoxedStrategy<String> {
        let members = prop::sample::subsequence(fields.to_vec(), 0..=fields.len().min(6))
            .prop_flat_map(|chosen| {
                chosen
                    .into_iter()
                    .map(|(key, kind)| (Just(key), value_of(kind), " ?"))
                    .collect::<Vec<_>>()
            });
        let extra =
            prop::option::weighted(0.1, (prop::sample::select(fields.to_vec()), prop::bool::ANY));
        (members, extra)
            .prop_map(|(members, extra)| {
                let mut members: Vec<String> = members
                    .into_iter()
                    .map(|(key, value, space)| format!("{space}\"{key}\":{space}{value}"))
                    .collect();
                match extra {
                    Some(((key, _), true)) => members.push(format!("\"{key}\":null")),
                    Some((_, false)) => members.push("\"unknown\":1".to_owned()),
                    None => {}
                }
                format!("{{{}}}", members.join(","))
            })
            .boxed()
    }

    const TOP: [(&str, Kind); 12] = [
        ("event_id", Kind::Text),
        ("type", Kind::Text),
        ("event_type", Kind::Text),
        ("user_id", Kind::Text),
        ("anonymous_id", Kind::Text),
        ("session_id", Kind::Text),
        ("store", Kind::Text),
        ("country", Kind::Text),
        ("query", Kind::Text),
        ("ip", Kind::Text),
        ("timestamp", Kind::Time),
        ("properties", Kind::Free),
    ];
    const PRODUCT: [(&str, Kind); 8] = [
        ("id", Kind::Text),
        ("product_id", Kind::Text),
        ("name", Kind::Text),
        ("brand", Kind::Text),
        ("currency", Kind::Text),
        ("price", Kind::Amount),
        ("quantity", Kind::Quantity),
        ("category", Kind::Category),
    ];
    const ORDER: [(&str, Kind); 7] = [
        ("order_id", Kind::Text),
        ("total", Kind::Amount),
        ("tax", Kind::Amount),
        ("discount", Kind::Amount),
        ("currency", Kind::Text),
        ("status", Kind::Text),
        ("sales_rep_id", Kind::Text),
    ];
    const PROMOTION: [(&str, Kind); 3] =
        [("promotion_id", Kind::Text), ("position", Kind::Position), ("creative", Kind::Text)];
    const PAGE: [(&str, Kind); 4] = [
        ("url", Kind::Text),
        ("path", Kind::Text),
        ("title", Kind::Text),
        ("referrer", Kind::Text),
    ];

    fn event() -> impl Strategy<Value = String> {
        let item = prop_oneof![9 => object_of(&PRODUCT), 1 => Just("null".to_owned())];
        (
            object_of(&TOP),
            prop::option::of(object_of(&PAGE)),
            prop::option::of(object_of(&PRODUCT)),
            prop::option::of(object_of(&ORDER)),
            prop::option::of(prop::collection::vec(item, 0..3)),
            prop::option::of(object_of(&PROMOTION)),
        )
            .prop_map(|(top, page, product, order, items, promotion)| {
                let mut parts = vec![top.trim_start_matches('{').trim_end_matches('}').to_owned()];
                let nested = [
                    ("page", page),
                    ("product", product),
                    ("order", order),
                    ("promotion", promotion),
                ];
                for (key, object) in nested {
                    if let Some(object) = object {
                        parts.push(format!("\"{key}\":{object}"));
                    }
                }
                if let Some(items) = items {
                    parts.push(format!("\"items\":[{}]", items.join(",")));
                }
                parts.retain(|part| !part.is_empty());
                format!("{{{}}}", parts.join(","))
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn the_reader_agrees_with_serde(json in event()) {
            agree(&json);
        }
    }

    /// The property test is only worth something if the reader answers for a good share of
    /// its cases (the rest check that it declines).
    #[test]
    fn the_property_test_reaches_the_reader() {
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let cases = 2_000;
        let answered = (0..cases)
            .filter(|_| {
                let json = event().new_tree(&mut runner).expect("a case").current();
                fast_read(&json).is_some()
            })
            .count();
        assert!(answered * 5 >= cases, "the reader answered {answered} of {cases} cases");
    }

    #[test]
    fn the_reader_takes_the_events_clients_send() {
        for json in [
            r#"{"event_id":"4b1f2c9e-1","type":"page_view","user_id":"u-1234","session_id":"s-99","timestamp":"2026-11-21T10:00:00Z","page":{"url":"https://shop.example/p/sku-00042","title":"Runner 42","referrer":"https://www.google.com/"},"country":"US","device":{"type":"mobile"}}"#,
            r#"{ "type": "add_to_cart", "anonymous_id": "a-9", "session_id": "s-1",
                 "timestamp": 1795300000, "product": { "id": "sku-1", "name": "Lamp",
                 "category": "Home > Lamps", "brand": "Lux", "price": "24.50",
                 "currency": "GBP", "quantity": 2 } }"#,
            r#"{"type":"promotion_click","user_id":"u","promotion":{"id":"p","name":"Winter","creative":"banner","position":"top"}}"#,
        ] {
            assert!(fast_read(json).is_some(), "{json}");
            agree(json);
        }
    }
}
