//! Validation: a decoded [`RawEvent`] becomes an [`Event`], or a list of every problem.
//!
//! Rules per type (beyond the limits in [`Limits`]):
//!
//! | type | requires |
//! |---|---|
//! | `page_view` | `page.url` or `page.path` |
//! | `product_view`, `add_to_cart`, `remove_from_cart` | `product.id` |
//! | `purchase` | `order.id` and at least one item |
//! | `refund` | `order.id` (no amount and no items = full refund) |
//! | `promotion_view`, `promotion_click` | `promotion.id` |
//! | `search` | `query` |
//! | `custom` | `name` |
//!
//! Quantities are 1..=`max_quantity` (default 1); prices and order amounts are ≥ 0; amounts
//! are exact in the currency's minor units; the currency defaults to USD (as in Segment's
//! spec). A purchase without a `total` gets Σ price × quantity + tax + shipping − discount.
//! Marketing fields are trimmed and a blank one is absent, whether sent or read from the page.

use std::fmt::{self, Display};

use compact_str::CompactString;

use crate::decode::decode_collecting;
use crate::error::{ErrorCode, FieldError, ValidationErrors};
use crate::event::{
    Device, DeviceType, Event, EventType, Marketing, Order, OrderStatus, Page, Product,
    ProductList, Promotion,
};
use crate::limits::Limits;
use crate::money::{Currency, DecimalAmount, MAX_MINOR_UNITS, Money};
use crate::raw::{RawEvent, RawOrder, RawPage, RawProduct, RawTime};
use crate::time::{
    ClockPolicy, HeaderTime, Timestamp, resolve_event_time, timestamp_from_unix_integer,
    timestamp_from_unix_number,
};

/// Everything validation needs that is not in the event itself.
pub struct ValidationContext<'a> {
    pub received_at: Timestamp,
    /// The time the request headers claim, if any (see [`crate::time`]).
    pub header_time: Option<HeaderTime>,
    pub clock: ClockPolicy,
    pub default_store: &'a str,
    pub default_currency: Currency,
    /// The anonymized client address to record.
    pub client: Option<&'a str>,
    /// The request's User-Agent, used when the event names no device.
    pub user_agent: Option<&'a str>,
    /// A country a trusted proxy told us (e.g. `CF-IPCountry`), used when the event has none.
    pub country: Option<&'a str>,
    pub limits: &'a Limits,
    /// Makes an id for events that arrive without `event_id`.
    pub new_event_id: &'a (dyn Fn() -> CompactString + Sync),
    /// What to store for an end-user address an event carries itself (`ip`, Segment's
    /// `context.ip`); `None` ignores such addresses.
    pub address_policy: Option<&'a dyn AddressPolicy>,
}

impl<'a> ValidationContext<'a> {
    /// A context for events from a trusted generator or fixture rather than a request: no
    /// client, headers or address policy, the default store and currency, and event times
    /// taken as sent (any clock skew allowed against `received_at`).
    pub fn for_trusted_events(
        received_at: Timestamp,
        limits: &'a Limits,
        new_event_id: &'a (dyn Fn() -> CompactString + Sync),
    ) -> Self {
        ValidationContext {
            received_at,
            header_time: None,
            clock: ClockPolicy { max_future_skew_ms: i64::MAX / 4 },
            default_store: "default",
            default_currency: Currency::USD,
            client: None,
            user_agent: None,
            country: None,
            limits,
            new_event_id,
            address_policy: None,
        }
    }
}

/// Turns a client address into what may be written to disk (the server hashes it by default).
pub trait AddressPolicy: Sync {
    fn stored_address(&self, ip: std::net::IpAddr, at: Timestamp) -> Option<String>;
}

/// Decodes and validates one native event from its JSON text.
pub fn decode_native_event(
    json: &str,
    context: &ValidationContext<'_>,
) -> Result<Event, ValidationErrors> {
    if json.len() > context.limits.max_event_bytes {
        return Err(ValidationErrors::single(FieldError::new(
            "",
            ErrorCode::TooLong,
            format!(
                "the event is {} bytes; the limit is {} bytes",
                json.len(),
                context.limits.max_event_bytes
            ),
        )));
    }
    if let Some(raw) = crate::decode::read_whole_native_event(json) {
        return validate_event(raw, Vec::new(), context);
    }
    let (raw, type_errors) = decode_collecting::<RawEvent>(json);
    match raw {
        Some(raw) => validate_event(raw, type_errors, context),
        None => Err(ValidationErrors(type_errors)),
    }
}

/// Validates one element of a body: `decoded` is the event when the body walk already decoded
/// it (see [`crate::decode::for_each_element`]), whose fields are taken out of it; otherwise
/// `json` is decoded here.
pub fn validate_native_element(
    json: &str,
    decoded: Option<&mut RawEvent>,
    context: &ValidationContext<'_>,
) -> Result<Event, ValidationErrors> {
    match decoded {
        Some(raw) if json.len() <= context.limits.max_event_bytes => {
            validate_taking(raw, Vec::new(), context)
        }
        _ => decode_native_event(json, context),
    }
}

/// Validates a decoded event. `prior_errors` are type errors found while decoding; fields
/// they name are not reported twice.
pub fn validate_event(
    mut raw: RawEvent,
    prior_errors: Vec<FieldError>,
    context: &ValidationContext<'_>,
) -> Result<Event, ValidationErrors> {
    validate_taking(&mut raw, prior_errors, context)
}

/// [`validate_event`] taking the fields out of `raw`, which the body walk reuses for every
/// element (see [`crate::decode::for_each_element`]).
fn validate_taking(
    raw: &mut RawEvent,
    prior_errors: Vec<FieldError>,
    context: &ValidationContext<'_>,
) -> Result<Event, ValidationErrors> {
    let mut check = Checker { errors: prior_errors, limits: context.limits };
    let limits = context.limits;

    let event_type = match raw.r#type.as_deref() {
        None => {
            check.missing("type", "is required; one of page_view, product_view, product_list_view, search, add_to_cart, remove_from_cart, checkout_started, purchase, refund, promotion_view, promotion_click, identify, custom");
            None
        }
        Some(name) => match EventType::parse(name) {
            Some(event_type) => Some(event_type),
            None => {
                check.push("type", ErrorCode::UnknownEventType, format!("{name:?} is not an event type; use one of page_view, product_view, product_list_view, search, add_to_cart, remove_from_cart, checkout_started, purchase, refund, promotion_view, promotion_click, identify, custom (with `name`)"));
                None
            }
        },
    };

    let event_id_generated = raw.event_id.is_none();
    let event_id = match raw.event_id.take() {
        Some(id) => check.id("event_id", id),
        None => Some((context.new_event_id)()),
    };
    let store = match raw.store.take() {
        Some(store) => check.store(store),
        None => Some(context.default_store.into()),
    };
    // An event's name (a custom event's, Segment's `Product Viewed`, a page's) is a name, held
    // to the text limit as product and promotion names are: the id limit refused Segment's
    // e-commerce events whole under a tight `max_id_chars`.
    let name = raw.name.take().and_then(|name| check.text("name", name, limits.max_text_chars));
    let user_id = raw.user_id.take().and_then(|id| check.id("user_id", id));
    let anonymous_id = raw.anonymous_id.take().and_then(|id| check.id("anonymous_id", id));
    let session_id = raw.session_id.take().and_then(|id| check.id("session_id", id));
    let event_time = raw.timestamp.take().and_then(|time| check.timestamp("timestamp", time));
    let country = match raw.country.take() {
        Some(country) => check.country("country", country),
        None => context.country.and_then(normalize_country),
    };
    let page = raw.page.take().map(|page| check.page(page));
    let marketing =
        derive_marketing(&mut check, raw.marketing.take().map(|boxed| *boxed), page.as_ref());
    let device = check.device(raw.device.take(), context.user_agent);
    // An order has one currency: the one it states, else its lines' (trackers often set it on
    // products only), else the default. Lines of an order in another currency are refused:
    // their amounts cannot be added to the order's. Other events' lines keep their own.
    let one_currency = matches!(
        event_type,
        Some(EventType::Purchase | EventType::Refund | EventType::CheckoutStarted)
    );
    let order_currency = match raw.order.as_ref().and_then(|order| order.currency.as_deref()) {
        Some(code) => check.currency("order.currency", code),
        None if one_currency => first_line_currency(raw),
        None => None,
    }
    .unwrap_or(context.default_currency);
    let lines = LineCurrency { order: order_currency, one_currency };
    let product = raw.product.take().map(|product| check.product(&"product", *product, lines));
    let sent_items = raw.items.as_ref().map_or(0, Vec::len);
    let items = check.items(raw.items.take(), lines);
    let promotion = raw.promotion.take().map(|promotion| Promotion {
        id: check.required_id("promotion.id", promotion.id).unwrap_or_default(),
        name: promotion
            .name
            .and_then(|name| check.text("promotion.name", name, limits.max_text_chars)),
        creative: promotion
            .creative
            .and_then(|creative| check.text("promotion.creative", creative, limits.max_text_chars)),
        position: promotion
            .position
            .and_then(|position| check.text("promotion.position", position.0, limits.max_id_chars)),
    });
    let search_query =
        raw.query.take().and_then(|query| check.text("query", query, limits.max_text_chars));
    let list = raw.list.take().map(|list| ProductList {
        id: list.id.and_then(|id| check.id("list.id", id)),
        category: list
            .category
            .and_then(|category| check.text("list.category", category, limits.max_text_chars)),
    });
    // A server sending on a visitor's behalf names the visitor's address; otherwise the
    // request's own client stands.
    let client = match raw.ip.as_deref().map(str::trim) {
        Some(text) => match text.parse::<std::net::IpAddr>() {
            Ok(ip) => context
                .address_policy
                .and_then(|policy| policy.stored_address(ip, context.received_at))
                .map(CompactString::from),
            Err(_) => {
                check.push("ip", ErrorCode::InvalidValue, "must be an IPv4 or IPv6 address");
                None
            }
        },
        None => context.client.map(CompactString::from),
    };
    let properties = raw
        .properties
        .take()
        .and_then(|properties| check.properties("properties", properties.get()));
    let order =
        raw.order.take().map(|order| check.order(*order, order_currency, event_type, &items));

    if let Some(event_type) = event_type {
        check.type_requirements(
            event_type,
            &name,
            &page,
            &product,
            &order,
            sent_items,
            &promotion,
            &search_query,
        );
    }

    if !check.errors.is_empty() {
        return Err(ValidationErrors(dedupe(check.errors)));
    }
    let resolved =
        resolve_event_time(event_time, context.header_time, context.received_at, context.clock);
    let (Some(event_type), Some(event_id), Some(store)) = (event_type, event_id, store) else {
        // Unreachable in practice: each None above pushed an error.
        return Err(ValidationErrors::single(FieldError::new(
            "",
            ErrorCode::InvalidValue,
            "invalid event",
        )));
    };
    Ok(Event {
        event_id,
        event_id_generated,
        store,
        event_type,
        name,
        event_time: resolved.time,
        received_at: context.received_at,
        time_source: resolved.source,
        clock_distrusted: resolved.distrusted_event_clock,
        user_id,
        anonymous_id,
        session_id,
        page,
        marketing: marketing.map(Box::new),
        country,
        device,
        client,
        product: product.flatten().map(Box::new),
        order: order.map(Box::new),
        items,
        promotion: promotion.map(Box::new),
        search_query,
        list: list.map(Box::new),
        properties,
    })
}

/// Keeps the first error per field path: a field that failed its type check is not also
/// reported as missing.
fn dedupe(errors: Vec<FieldError>) -> Vec<FieldError> {
    let mut seen = std::collections::HashSet::new();
    errors.into_iter().filter(|error| seen.insert(error.field.clone())).collect()
}

fn derive_marketing(
    check: &mut Checker<'_>,
    raw: Option<crate::raw::RawMarketing>,
    page: Option<&Page>,
) -> Option<Marketing> {
    // Most events carry no marketing at all: answer before building (and comparing) one.
    let page_has_marketing = page.is_some_and(|page| {
        page.referrer.is_some() || page.url.as_deref().is_some_and(|url| url.contains('?'))
    });
    if raw.is_none() && !page_has_marketing {
        return None;
    }
    let limit = check.limits.max_text_chars;
    let mut field = |name: &str, value: Option<CompactString>| {
        value.and_then(trimmed_text).and_then(|value| check.text(name, value, limit))
    };
    let mut marketing = match raw {
        Some(raw) => Marketing {
            utm_source: field("marketing.utm_source", raw.utm_source),
            utm_medium: field("marketing.utm_medium", raw.utm_medium),
            utm_campaign: field("marketing.utm_campaign", raw.utm_campaign),
            utm_term: field("marketing.utm_term", raw.utm_term),
            utm_content: field("marketing.utm_content", raw.utm_content),
            // Read as `page.referrer`'s host is (lower case, no `www.`, no port), so that a
            // tracker naming `Google.com` and one sending its referrer count as one source.
            referrer_host: field("marketing.referrer_host", raw.referrer_host)
                .map(|named| named_host(&named).unwrap_or(named)),
        },
        None => Marketing::default(),
    };
    if let Some(page) = page {
        // Campaign parameters usually ride on the landing URL; take them from there when the
        // tracker did not split them out.
        if let Some(url) =
            page.url.as_deref().filter(|url| url.contains('?') && url.contains("utm_"))
            && let Ok(parsed) = url::Url::parse(url)
        {
            for (key, value) in parsed.query_pairs() {
                let slot = match key.as_ref() {
                    "utm_source" => &mut marketing.utm_source,
                    "utm_medium" => &mut marketing.utm_medium,
                    "utm_campaign" => &mut marketing.utm_campaign,
                    "utm_term" => &mut marketing.utm_term,
                    "utm_content" => &mut marketing.utm_content,
                    _ => continue,
                };
                let value = value.trim();
                if slot.is_none() && !value.is_empty() {
                    *slot = Some(truncate_chars(value, limit));
                }
            }
        }
        // A referrer on the page's own site is a step within the shop, not where the visitor
        // came from: as a source it would take every later page of a session from the
        // campaign it landed from. That holds whether the tracker named the host or it is
        // read from `page.referrer`; a named one on the own site counts as not given.
        let own_host = || page.url.as_deref().and_then(referrer_host);
        if let Some(named) = marketing.referrer_host.as_deref()
            && own_host().is_some_and(|own| named_host(named) == Some(own))
        {
            marketing.referrer_host = None;
        }
        if marketing.referrer_host.is_none() {
            marketing.referrer_host = page
                .referrer
                .as_deref()
                .and_then(referrer_host)
                .filter(|host| own_host().as_ref() != Some(host));
        }
    }
    if marketing == Marketing::default() { None } else { Some(marketing) }
}

/// `value` without surrounding whitespace, or `None` when nothing is left. A campaign field
/// names a source, campaign or host: a blank one names none (as `""` it would be a source of
/// its own), and padding would count `" news "` apart from `news`.
fn trimmed_text(value: CompactString) -> Option<CompactString> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        None
    } else if trimmed.len() == value.len() {
        Some(value)
    } else {
        Some(CompactString::from(trimmed))
    }
}

/// What a store name may be; said the same way by ingest and by the configuration check.
pub const STORE_RULE: &str = "must be 1 to 64 characters of letters, digits, '.', '_' or '-'";

/// A store name as ingest accepts it (see [`STORE_RULE`]): it names a partition of every
/// figure, so it stays short and safe in paths, labels and URLs.
pub fn is_valid_store(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"._-".contains(&byte))
}

/// The referrer's host, lower case, without a leading `www.` or a port.
pub fn referrer_host(referrer: &str) -> Option<CompactString> {
    authority_host(after_scheme(referrer)?)
}

/// A host as a tracker names it in `marketing.referrer_host`, normalised as
/// [`referrer_host`] does: a bare host (`WWW.Shop.test:443`) or, from trackers that send the
/// whole referrer there, a URL.
fn named_host(named: &str) -> Option<CompactString> {
    match after_scheme(named) {
        Some(rest) => authority_host(rest),
        None => authority_host(named),
    }
}

/// The host of the authority that starts `rest` (`user@www.Host.test:8080/path`), lower case,
/// without a leading `www.` or a port.
fn authority_host(rest: &str) -> Option<CompactString> {
    // One pass over the authority, which ends at the first `/`, `?` or `#`, and no temporary
    // `String`: this runs for every event with a referrer. User info ends at the last `@`; a
    // port follows the host's last colon.
    let (mut host_start, mut end, mut last_colon, mut colons) = (0, rest.len(), None, 0);
    for (index, byte) in rest.bytes().enumerate() {
        match byte {
            b'/' | b'?' | b'#' => {
                end = index;
                break;
            }
            b'@' => (host_start, last_colon, colons) = (index + 1, None, 0),
            b':' => (last_colon, colons) = (Some(index), colons + 1),
            _ => {}
        }
    }
    // A port needs a name without colons of its own before it, or the `]` of a bracketed
    // IPv6 address; an unbracketed IPv6 address is left whole.
    let host = match last_colon {
        Some(colon)
            if rest.as_bytes()[colon + 1..end].iter().all(u8::is_ascii_digit)
                && (colons == 1 || rest[host_start..colon].ends_with(']')) =>
        {
            &rest[host_start..colon]
        }
        _ => &rest[host_start..end],
    };
    // The first four bytes are ASCII when they match, so byte 4 starts a character.
    let host = match host.as_bytes().get(..4) {
        Some(prefix) if prefix.eq_ignore_ascii_case(b"www.") => &host[4..],
        _ => host,
    };
    if host.is_empty() {
        return None;
    }
    let mut host = CompactString::from(host);
    host.make_ascii_lowercase();
    Some(host)
}

/// The path of a URL (`https://shop.test/a/b?x=1` → `/a/b`); a relative URL is its own path.
///
/// Vectorised byte scans rather than `split`/`find` with patterns: this runs for every page
/// view. (A single byte-by-byte pass over scheme, host and path cost 30 % more on a 32-byte
/// URL: callgrind, fourteenth session.)
pub fn url_path(url: &str) -> &str {
    let end = memchr::memchr2(b'?', b'#', url.as_bytes()).unwrap_or(url.len());
    let without_query = &url[..end];
    match after_scheme(without_query) {
        Some(rest) => memchr::memchr(b'/', rest.as_bytes()).map_or("/", |slash| &rest[slash..]),
        None => without_query,
    }
}

/// What follows `scheme://`, if the text starts with a scheme (letters, digits, `+ - .`).
fn after_scheme(url: &str) -> Option<&str> {
    // Nearly every URL a tracker sends: no need to scan its scheme.
    if let Some(rest) = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")) {
        return Some(rest);
    }
    let bytes = url.as_bytes();
    let colon = bytes
        .iter()
        .position(|byte| !(byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'-' | b'.')))?;
    if colon == 0 || bytes[colon] != b':' {
        return None;
    }
    url[colon..].strip_prefix("://")
}

/// The first `max_chars` characters of `text`. Copied whole when it is short enough (its byte
/// length bounds its character count), not character by character: a browser's User-Agent
/// header goes through here for every event that names no device.
fn truncate_chars(text: &str, max_chars: usize) -> CompactString {
    if text.len() <= max_chars {
        return CompactString::from(text);
    }
    let end = text.char_indices().nth(max_chars).map_or(text.len(), |(cut, _)| cut);
    CompactString::from(&text[..end])
}

/// [`normalize_country`] reusing the sender's string.
fn normalize_country_owned(mut code: CompactString) -> Option<CompactString> {
    let valid = code.len() == 2 && code.bytes().all(|byte| byte.is_ascii_alphabetic());
    if !valid {
        return normalize_country(&code);
    }
    code.make_ascii_uppercase();
    if code == "UK" {
        code.replace_range(.., "GB");
    }
    Some(code)
}

/// A country's ISO 3166-1 alpha-2 code from a code (`us`, `UK`) or an English name
/// (`AUSTRALIA`, `United States`, any case).
pub fn country_code(text: &str) -> Option<CompactString> {
    normalize_country(text).or_else(|| {
        let text = text.trim();
        COUNTRY_NAMES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(text))
            .map(|(_, code)| CompactString::const_new(code))
    })
}

/// English names (and the common short forms) that upstream exports such as seed 1's, and
/// Segment's `context.location.country`, write instead of a code. Seed 1's sample has `US`, `UK` and `AUSTRALIA`; the rest are the
/// largest e-commerce markets, so that a file naming them compares too.
const COUNTRY_NAMES: &[(&str, &str)] = &[
    ("AUSTRALIA", "AU"),
    ("UNITED STATES", "US"),
    ("UNITED STATES OF AMERICA", "US"),
    ("USA", "US"),
    ("UNITED KINGDOM", "GB"),
    ("GREAT BRITAIN", "GB"),
    ("BRITAIN", "GB"),
    ("CANADA", "CA"),
    ("NEW ZEALAND", "NZ"),
    ("IRELAND", "IE"),
    ("GERMANY", "DE"),
    ("FRANCE", "FR"),
    ("SPAIN", "ES"),
    ("ITALY", "IT"),
    ("NETHERLANDS", "NL"),
    ("BELGIUM", "BE"),
    ("AUSTRIA", "AT"),
    ("SWITZERLAND", "CH"),
    ("SWEDEN", "SE"),
    ("NORWAY", "NO"),
    ("DENMARK", "DK"),
    ("FINLAND", "FI"),
    ("POLAND", "PL"),
    ("PORTUGAL", "PT"),
    ("JAPAN", "JP"),
    ("CHINA", "CN"),
    ("SOUTH KOREA", "KR"),
    ("INDIA", "IN"),
    ("SINGAPORE", "SG"),
    ("BRAZIL", "BR"),
    ("MEXICO", "MX"),
    ("SOUTH AFRICA", "ZA"),
    ("UNITED ARAB EMIRATES", "AE"),
];

/// Upper-cases a 2-letter country code; seed 1's `UK` becomes ISO's `GB`.
pub fn normalize_country(code: &str) -> Option<CompactString> {
    let code = code.trim();
    if code.len() != 2 || !code.bytes().all(|byte| byte.is_ascii_alphabetic()) {
        return None;
    }
    let upper = CompactString::from(code).to_ascii_uppercase();
    Some(if upper == "UK" { CompactString::const_new("GB") } else { upper })
}

/// A field path built only when an error needs it: `parent.field`.
#[derive(Clone, Copy)]
struct Sub<'a>(&'a dyn Display, &'static str);

impl Display for Sub<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}.{}", self.0, self.1)
    }
}

/// `name[index]`.
#[derive(Clone, Copy)]
struct Indexed(&'static str, usize);

impl Display for Indexed {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}[{}]", self.0, self.1)
    }
}

struct Checker<'a> {
    errors: Vec<FieldError>,
    limits: &'a Limits,
}

impl Checker<'_> {
    fn push(&mut self, field: impl Display, code: ErrorCode, message: impl Into<String>) {
        self.errors.push(FieldError::new(field.to_string(), code, message));
    }

    fn missing(&mut self, field: impl Display, message: &str) {
        self.push(field, ErrorCode::Missing, message);
    }

    /// `value`, unless it is longer than `max_chars`. Inline, its failures out of line: called
    /// for every text field, it passed each 24-byte string through memory both ways, and
    /// reading it back stalled on store forwarding (perf, thirteenth session).
    #[inline(always)]
    fn text(
        &mut self,
        field: impl Display,
        value: CompactString,
        max_chars: usize,
    ) -> Option<CompactString> {
        // Byte length bounds char length from above, so the common short case is one compare.
        if value.len() > max_chars && value.chars().count() > max_chars {
            self.too_long(field, max_chars);
            return None;
        }
        Some(value)
    }

    #[cold]
    #[inline(never)]
    fn too_long(&mut self, field: impl Display, max_chars: usize) {
        self.push(field, ErrorCode::TooLong, format!("is longer than {max_chars} characters"));
    }

    /// An id: text that is not blank and holds no control characters (see [`Checker::text`]
    /// for why it is inline).
    #[inline(always)]
    fn id(&mut self, field: impl Display + Copy, value: CompactString) -> Option<CompactString> {
        // ASCII (nearly every id) is checked byte by byte; other text char by char.
        let (blank, control) = if value.is_ascii() {
            (
                value.bytes().all(|byte| byte.is_ascii_whitespace()),
                value.bytes().any(|byte| byte.is_ascii_control()),
            )
        } else {
            (value.trim().is_empty(), value.chars().any(char::is_control))
        };
        if blank || control {
            self.bad_id(field, blank);
            return None;
        }
        self.text(field, value, self.limits.max_id_chars)
    }

    #[cold]
    #[inline(never)]
    fn bad_id(&mut self, field: impl Display, blank: bool) {
        let message =
            if blank { "must not be empty" } else { "must not contain control characters" };
        self.push(field, ErrorCode::InvalidValue, message);
    }

    fn required_id(
        &mut self,
        field: impl Display + Copy,
        value: Option<CompactString>,
    ) -> Option<CompactString> {
        match value {
            Some(value) => self.id(field, value),
            None => {
                self.missing(field, "is required");
                None
            }
        }
    }

    fn store(&mut self, value: CompactString) -> Option<CompactString> {
        if !is_valid_store(&value) {
            self.push("store", ErrorCode::InvalidValue, STORE_RULE);
            return None;
        }
        Some(value)
    }

    fn timestamp(&mut self, field: &str, value: RawTime) -> Option<Timestamp> {
        let parsed = match &value {
            RawTime::Text(parsed) => *parsed,
            RawTime::Integer(number) => timestamp_from_unix_integer(*number),
            RawTime::Float(number) => timestamp_from_unix_number(*number),
        };
        if parsed.is_none() {
            self.push(
                field,
                ErrorCode::InvalidValue,
                "must be an RFC 3339 time (2025-01-31T12:00:00Z) or a Unix timestamp in seconds, milliseconds, microseconds or nanoseconds (read by magnitude)",
            );
        }
        parsed
    }

    fn country(&mut self, field: &str, value: CompactString) -> Option<CompactString> {
        let normalized = normalize_country_owned(value);
        if normalized.is_none() {
            self.push(
                field,
                ErrorCode::InvalidValue,
                "must be an ISO 3166-1 alpha-2 code such as \"US\"",
            );
        }
        normalized
    }

    fn currency(&mut self, field: impl Display, code: &str) -> Option<Currency> {
        let currency = Currency::parse(code);
        if currency.is_none() {
            self.push(
                field,
                ErrorCode::InvalidValue,
                format!("{code:?} is not an ISO 4217 currency code"),
            );
        }
        currency
    }

    fn amount(
        &mut self,
        field: impl Display,
        amount: DecimalAmount,
        currency: Currency,
    ) -> Option<i64> {
        if amount.is_negative() {
            self.push(field, ErrorCode::InvalidValue, "must be >= 0");
            return None;
        }
        match amount.to_minor_units(currency) {
            Ok(minor) => Some(minor),
            Err(error) => {
                self.push(field, ErrorCode::InvalidValue, error.to_string());
                None
            }
        }
    }

    fn page(&mut self, raw: RawPage) -> Page {
        let url_limit = self.limits.max_url_chars;
        // A blank URL or path names no page (it would be listed as a page called "").
        let url =
            raw.url.and_then(trimmed_text).and_then(|url| self.text("page.url", url, url_limit));
        let mut path = raw
            .path
            .and_then(trimmed_text)
            .and_then(|path| self.text("page.path", path, url_limit));
        if path.is_none() {
            path = url.as_deref().map(|url| url_path(url).into());
        }
        Page {
            url,
            path,
            title: raw
                .title
                .and_then(|title| self.text("page.title", title, self.limits.max_text_chars)),
            referrer: raw
                .referrer
                .and_then(|referrer| self.text("page.referrer", referrer, url_limit)),
        }
    }

    fn device(
        &mut self,
        raw: Option<crate::raw::RawDevice>,
        header_agent: Option<&str>,
    ) -> Option<Device> {
        let (declared_type, user_agent) = match raw {
            Some(raw) => {
                let declared = match raw.r#type {
                    Some(name) => match DeviceType::parse(&name) {
                        Some(device_type) => Some(device_type),
                        None => {
                            self.push(
                                "device.type",
                                ErrorCode::InvalidValue,
                                "must be one of desktop, mobile, tablet, bot, other",
                            );
                            None
                        }
                    },
                    None => None,
                };
                let agent = raw.user_agent.and_then(|agent| {
                    self.text("device.user_agent", agent, self.limits.max_text_chars)
                });
                (declared, agent)
            }
            None => (None, None),
        };
        // The request's own User-Agent describes the visitor only when a browser sent the
        // request (a tracker in the page); a shop's backend (curl, an HTTP library) would
        // otherwise make its whole traffic "desktop" or "other".
        let user_agent = user_agent.or_else(|| {
            header_agent
                .filter(|agent| is_browser_agent(agent))
                .map(|agent| truncate_chars(agent, self.limits.max_text_chars))
        });
        let device_type =
            declared_type.or_else(|| user_agent.as_deref().map(DeviceType::from_user_agent))?;
        Some(Device { device_type, user_agent })
    }

    /// Returns `None` when the product has no usable id (already reported).
    fn product(
        &mut self,
        path: &dyn Display,
        raw: RawProduct,
        lines: LineCurrency,
    ) -> Option<Product> {
        let limits = self.limits;
        let id = self.required_id(Sub(path, "id"), raw.id);
        let currency = match raw.currency.as_deref() {
            Some(code) => self.currency(Sub(path, "currency"), code).unwrap_or(lines.order),
            None => lines.order,
        };
        if lines.one_currency && currency != lines.order {
            self.push(
                Sub(path, "currency"),
                ErrorCode::InvalidValue,
                format!(
                    "is {} but the order is in {}; every line of an order must be in its currency",
                    currency.code(),
                    lines.order.code()
                ),
            );
        }
        let price = raw
            .price
            .and_then(|price| self.amount(Sub(path, "price"), price, currency))
            .map(|minor| Money::new(minor, currency));
        let quantity = match raw.quantity {
            None => 1,
            Some(quantity) if quantity < 1 => {
                self.push(Sub(path, "quantity"), ErrorCode::InvalidValue, "must be > 0");
                1
            }
            Some(quantity) if quantity > i64::from(limits.max_quantity) => {
                self.push(
                    Sub(path, "quantity"),
                    ErrorCode::InvalidValue,
                    format!("must be <= {}", limits.max_quantity),
                );
                1
            }
            Some(quantity) => quantity as u32,
        };
        let category = match raw.category {
            Some(path_levels) => {
                let levels = path_levels.0;
                if levels.len() > limits.max_category_depth {
                    self.push(
                        Sub(path, "category"),
                        ErrorCode::TooLong,
                        format!("has more than {} levels", limits.max_category_depth),
                    );
                    Vec::new()
                } else if levels.iter().any(|level| level.is_empty()) {
                    self.push(
                        Sub(path, "category"),
                        ErrorCode::InvalidValue,
                        "levels must not be empty",
                    );
                    Vec::new()
                } else if levels.iter().any(|level| {
                    // Byte length bounds char length from above: most levels need one compare.
                    level.len() > limits.max_id_chars && level.chars().count() > limits.max_id_chars
                }) {
                    self.push(
                        Sub(path, "category"),
                        ErrorCode::TooLong,
                        format!("each level must be at most {} characters", limits.max_id_chars),
                    );
                    Vec::new()
                } else {
                    levels
                }
            }
            None => Vec::new(),
        };
        // A line's amount (price × quantity) is bounded as any amount is, so that the engine's
        // sums of lines stay exact.
        if let Some(price) = price
            && i128::from(price.minor) * i128::from(quantity) > i128::from(MAX_MINOR_UNITS)
        {
            self.push(
                Sub(path, "quantity"),
                ErrorCode::InvalidValue,
                format!("price × quantity is more than {MAX_MINOR_UNITS} minor units"),
            );
            return None;
        }
        let product = Product {
            id: id?,
            name: raw
                .name
                .and_then(|name| self.text(Sub(path, "name"), name, limits.max_text_chars)),
            category,
            brand: raw
                .brand
                .and_then(|brand| self.text(Sub(path, "brand"), brand, limits.max_id_chars)),
            variant: raw
                .variant
                .and_then(|variant| self.text(Sub(path, "variant"), variant, limits.max_id_chars)),
            price,
            quantity,
            coupon: raw
                .coupon
                .and_then(|coupon| self.text(Sub(path, "coupon"), coupon, limits.max_id_chars)),
        };
        Some(product)
    }

    fn items(&mut self, raw: Option<Vec<Option<RawProduct>>>, lines: LineCurrency) -> Vec<Product> {
        let Some(raw) = raw else { return Vec::new() };
        if raw.len() > self.limits.max_items {
            self.push(
                "items",
                ErrorCode::TooLong,
                format!("has {} lines; the limit is {}", raw.len(), self.limits.max_items),
            );
            return Vec::new();
        }
        let mut items = Vec::with_capacity(raw.len());
        for (index, item) in raw.into_iter().enumerate() {
            let path = Indexed("items", index);
            match item {
                Some(item) => {
                    if let Some(product) = self.product(&path, item, lines) {
                        items.push(product);
                    }
                }
                None => self.push(path, ErrorCode::InvalidType, "must be an object, not null"),
            }
        }
        items
    }

    fn order(
        &mut self,
        raw: RawOrder,
        currency: Currency,
        event_type: Option<EventType>,
        items: &[Product],
    ) -> Order {
        let id = raw.id.and_then(|id| self.id("order.id", id));
        let mut amount = |field: &str, value: Option<DecimalAmount>| {
            value.and_then(|value| self.amount(field, value, currency))
        };
        let total = amount("order.total", raw.total);
        let subtotal = amount("order.subtotal", raw.subtotal);
        let tax = amount("order.tax", raw.tax);
        let shipping = amount("order.shipping", raw.shipping);
        let discount = amount("order.discount", raw.discount);
        let status = match raw.status.as_deref() {
            Some(name) => match OrderStatus::parse(name) {
                Some(status) => Some(status),
                None => {
                    self.push(
                        "order.status",
                        ErrorCode::InvalidValue,
                        format!("must be one of {}", OrderStatus::NAMES.join(", ")),
                    );
                    None
                }
            },
            None => None,
        };
        let total = match (total, event_type) {
            (Some(total), _) => Some(total),
            (None, Some(EventType::Purchase | EventType::CheckoutStarted)) => {
                match computed_total(items, subtotal, tax, shipping, discount) {
                    Ok(total) => total,
                    Err(()) => {
                        self.push(
                            "order.total",
                            ErrorCode::InvalidValue,
                            format!(
                                "the order's lines, tax and shipping add up to more than \
                                 {MAX_MINOR_UNITS} minor units"
                            ),
                        );
                        None
                    }
                }
            }
            (None, _) => None,
        };
        Order {
            id,
            currency,
            total,
            subtotal,
            tax,
            shipping,
            discount,
            coupon: raw
                .coupon
                .and_then(|coupon| self.text("order.coupon", coupon, self.limits.max_id_chars)),
            status: status.or(match event_type {
                Some(EventType::Purchase) => Some(OrderStatus::Completed),
                Some(EventType::Refund) => Some(OrderStatus::Refunded),
                _ => None,
            }),
            customer_id: raw.customer_id.and_then(|id| self.id("order.customer_id", id)),
            sales_rep_id: raw.sales_rep_id.and_then(|id| self.id("order.sales_rep_id", id)),
        }
    }

    fn properties(&mut self, field: &str, json: &str) -> Option<CompactString> {
        if !json.trim_start().starts_with('{') {
            self.push(field, ErrorCode::InvalidType, "must be a JSON object");
            return None;
        }
        if json.len() > self.limits.max_properties_bytes {
            self.push(
                field,
                ErrorCode::TooLong,
                format!(
                    "is {} bytes of JSON; the limit is {}",
                    json.len(),
                    self.limits.max_properties_bytes
                ),
            );
            return None;
        }
        Some(json.into())
    }

    #[allow(clippy::too_many_arguments)]
    fn type_requirements(
        &mut self,
        event_type: EventType,
        name: &Option<CompactString>,
        page: &Option<Page>,
        product: &Option<Option<Product>>,
        order: &Option<Order>,
        sent_items: usize,
        promotion: &Option<Promotion>,
        search_query: &Option<CompactString>,
    ) {
        let type_name = event_type.as_str();
        match event_type {
            EventType::PageView => {
                // A URL or path that was given but refused (too long) is reported already.
                let page_refused = || {
                    self.errors
                        .iter()
                        .any(|error| matches!(error.field.as_str(), "page.url" | "page.path"))
                };
                if page.as_ref().is_none_or(|page| page.url.is_none() && page.path.is_none())
                    && !page_refused()
                {
                    self.missing("page.url", "page_view needs page.url or page.path");
                }
            }
            EventType::ProductView | EventType::AddToCart | EventType::RemoveFromCart => {
                if product.is_none() {
                    self.missing("product", &format!("{type_name} needs a product with an id"));
                }
            }
            EventType::Purchase => {
                if order.as_ref().is_none_or(|order| order.id.is_none()) {
                    self.missing("order.id", "purchase needs order.id");
                }
                // Lines that were sent but are invalid are reported individually. An order
                // system may send an order by its value alone (Segment's `products` is
                // optional): it counts in orders and revenue, not by product.
                let valued = order.as_ref().and_then(|order| order.total).is_some_and(|t| t > 0);
                // A total that was given but refused (too large, not a number) is reported
                // already: the order was sent by its value, just not a valid one.
                let total_refused = || {
                    self.errors.iter().any(|error| {
                        matches!(error.field.as_str(), "order.total" | "order.subtotal")
                    })
                };
                if sent_items == 0 && !valued && !total_refused() {
                    self.missing(
                        "items",
                        "purchase needs at least one line item, or an order total above 0",
                    );
                }
            }
            EventType::Refund => {
                if order.as_ref().is_none_or(|order| order.id.is_none()) {
                    self.missing("order.id", "refund needs the order.id being refunded");
                }
            }
            EventType::PromotionView | EventType::PromotionClick => {
                if promotion.is_none() {
                    self.missing("promotion.id", &format!("{type_name} needs promotion.id"));
                }
            }
            EventType::Search => {
                if search_query.is_none() {
                    self.missing("query", "search needs the query text");
                }
            }
            EventType::Custom => {
                if name.is_none() {
                    self.missing("name", "custom events need a name");
                }
            }
            EventType::ProductListView | EventType::CheckoutStarted | EventType::Identify => {}
        }
    }
}

/// An order's total from its subtotal, else from its priced lines (all in the order's
/// currency, which validation has checked; a line without a price, such as a gift, adds
/// nothing), plus tax and shipping, less discount. `None` when there is neither a subtotal nor
/// a single priced line (seed 4's buys name units only: an order of unknown value); `Err`
/// when it is more than [`MAX_MINOR_UNITS`].
fn computed_total(
    items: &[Product],
    subtotal: Option<i64>,
    tax: Option<i64>,
    shipping: Option<i64>,
    discount: Option<i64>,
) -> Result<Option<i64>, ()> {
    // In i128: each amount and quantity is bounded, their products and sums are not.
    let lines = match subtotal {
        Some(subtotal) => i128::from(subtotal),
        None => {
            let mut priced = items
                .iter()
                .filter_map(|item| Some(i128::from(item.price?.minor) * i128::from(item.quantity)))
                .peekable();
            if priced.peek().is_none() {
                return Ok(None);
            }
            priced.sum()
        }
    };
    let total = lines + i128::from(tax.unwrap_or(0)) + i128::from(shipping.unwrap_or(0))
        - i128::from(discount.unwrap_or(0));
    match i64::try_from(total.max(0)) {
        Ok(total) if total <= MAX_MINOR_UNITS => Ok(Some(total)),
        _ => Err(()),
    }
}

/// Whether a request's User-Agent is a browser's (or a crawler's posing as one): every browser
/// and the major crawlers send `Mozilla/…` (Opera's old ones `Opera/…`); HTTP libraries and
/// command-line tools (`curl/8.5`, `python-requests/2.31`, `Go-http-client/1.1`, `okhttp/4`)
/// do not.
fn is_browser_agent(agent: &str) -> bool {
    let agent = agent.trim_start();
    agent.starts_with("Mozilla/") || agent.starts_with("Opera/")
}

/// The currency lines are read in, and whether they must all be in it (the lines of an order).
#[derive(Clone, Copy)]
struct LineCurrency {
    order: Currency,
    one_currency: bool,
}

/// The currency the event's first line states, when it is a valid code (an invalid one is
/// reported where the line is validated).
fn first_line_currency(raw: &RawEvent) -> Option<Currency> {
    let items = raw.items.iter().flatten().flatten();
    raw.product
        .as_deref()
        .into_iter()
        .chain(items)
        .find_map(|line| line.currency.as_deref())
        .and_then(Currency::parse)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_counts_characters_not_bytes() {
        assert_eq!(truncate_chars("ab\u{e9}\u{e9}c", 3), "ab\u{e9}");
        assert_eq!(truncate_chars("ab\u{e9}", 3), "ab\u{e9}");
        assert_eq!(truncate_chars("abcd", 4), "abcd");
        assert_eq!(truncate_chars("abcde", 4), "abcd");
    }

    #[test]
    fn url_paths_and_hosts() {
        assert_eq!(url_path("https://shop.test/a/b?x=1#top"), "/a/b");
        assert_eq!(url_path("https://shop.test"), "/");
        assert_eq!(url_path("https://shop.test?x"), "/");
        assert_eq!(url_path("/cart?step=2"), "/cart");
        // No scheme (none before `:`, or no `//` after it): the text is its own path.
        assert_eq!(url_path("://x/y"), "://x/y");
        assert_eq!(url_path("https:/x?y"), "https:/x");
        assert_eq!(url_path("a?b://x/y"), "a");
        assert_eq!(url_path("https://#/y"), "/");
        assert_eq!(url_path("https://shop.test/a?b/c"), "/a");
        assert_eq!(
            referrer_host("https://www.Google.com/search?q=x").as_deref(),
            Some("google.com")
        );
        assert_eq!(referrer_host("http://user@news.test:8080/x").as_deref(), Some("news.test"));
        assert_eq!(referrer_host("android-app://com.app"), Some("com.app".into()));
        assert_eq!(referrer_host("HTTPS://WWW.Shop.Test:443?q").as_deref(), Some("shop.test"));
        assert_eq!(referrer_host("https://[::1]:8080/").as_deref(), Some("[::1]"));
        assert_eq!(referrer_host("https://[::1]/").as_deref(), Some("[::1]"));
        assert_eq!(referrer_host("http://a:b@c@Host.test:80#x").as_deref(), Some("host.test"));
        assert_eq!(referrer_host("http://caf\u{e9}.test:x/").as_deref(), Some("caf\u{e9}.test:x"));
        assert_eq!(referrer_host("https://www./x"), None);
        assert_eq!(referrer_host("https:///path"), None);
        assert_eq!(referrer_host("not a url"), None);
    }
}
