//! Validation tables for the native, Segment and seed-3 formats: what a sender sees for good
//! and bad events.

use storepulse_model::compat::realtime_ingest::decode_realtime_ingest_event;
use storepulse_model::compat::segment::{SegmentCall, decode_segment_message};
use storepulse_model::event::{DeviceType, EventType, OrderStatus};
use storepulse_model::time::{ClockPolicy, HeaderTime, TimeSource, Timestamp};
use storepulse_model::validate::decode_native_event;
use storepulse_model::{Currency, ErrorCode, Event, Limits, ValidationContext, ValidationErrors};

const RECEIVED: Timestamp = Timestamp(1_763_000_000_000); // 2025-11-13T02:13:20Z

struct TestPolicy;

impl storepulse_model::validate::AddressPolicy for TestPolicy {
    fn stored_address(&self, ip: std::net::IpAddr, _at: Timestamp) -> Option<String> {
        Some(format!("test:{ip}"))
    }
}

fn next_id() -> compact_str::CompactString {
    "generated-id".into()
}

fn with_context<T>(
    limits: &Limits,
    header_time: Option<HeaderTime>,
    run: impl FnOnce(&ValidationContext<'_>) -> T,
) -> T {
    let context = ValidationContext {
        received_at: RECEIVED,
        header_time,
        clock: ClockPolicy::default(),
        default_store: "default",
        default_currency: Currency::USD,
        client: Some("h:abc"),
        user_agent: Some("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile"),
        country: None,
        limits,
        new_event_id: &next_id,
        address_policy: Some(&TestPolicy),
    };
    run(&context)
}

fn native(json: &str) -> Result<Event, ValidationErrors> {
    with_context(&Limits::default(), None, |context| decode_native_event(json, context))
}

fn errors_of(result: Result<Event, ValidationErrors>) -> Vec<(String, ErrorCode)> {
    let mut errors: Vec<(String, ErrorCode)> = result
        .expect_err("expected a rejection")
        .0
        .into_iter()
        .map(|error| (error.field, error.code))
        .collect();
    errors.sort();
    errors
}

fn fields(errors: &[(String, ErrorCode)]) -> Vec<&str> {
    errors.iter().map(|(field, _)| field.as_str()).collect()
}

#[test]
fn a_full_purchase_is_accepted_with_exact_money() {
    let event = native(
        r#"{"event_id":"e1","type":"purchase","timestamp":"2025-11-13T01:00:00+01:00","store":"shop-eu",
            "user_id":"u1","session_id":"s1","country":"de",
            "order":{"id":"o1","currency":"EUR","tax":"1.90","shipping":4.99,"discount":0.10,"sales_rep_id":"rep7"},
            "items":[{"id":"p1","name":"Runner","category":"Apparel > Shoes > Running","price":59.99,"quantity":2},
                     {"id":"p2","price":"0.30"}]}"#,
    )
    .unwrap();
    assert_eq!(event.event_type, EventType::Purchase);
    assert_eq!(event.store, "shop-eu");
    assert_eq!(event.country.as_deref(), Some("DE"));
    assert_eq!(event.event_time, Timestamp(1_762_992_000_000)); // 00:00Z: offset converted
    assert_eq!(event.time_source, TimeSource::Event);
    let order = event.order.unwrap();
    assert_eq!(order.currency.code(), "EUR");
    // 2 × 59.99 + 0.30 + 1.90 + 4.99 − 0.10 = 127.07, computed in cents.
    assert_eq!(order.total, Some(12_707));
    assert_eq!(order.status, Some(OrderStatus::Completed));
    assert_eq!(order.sales_rep_id.as_deref(), Some("rep7"));
    assert_eq!(event.items[0].category, ["Apparel", "Shoes", "Running"]);
    assert_eq!(event.items[0].quantity, 2);
    assert_eq!(event.items[1].quantity, 1);
    assert_eq!(event.device.unwrap().device_type, DeviceType::Mobile);
    assert_eq!(event.client.as_deref(), Some("h:abc"));
}

#[test]
fn an_order_total_comes_from_its_subtotal_or_lines_in_the_lines_currency() {
    let total = |json: &str| native(json).unwrap().order.unwrap().total;
    // Without a total, the priced lines (a line without a price, such as a gift, adds nothing).
    let gift = r#"{"type":"purchase","order":{"id":"o","shipping":4.99},"items":[{"id":"a","price":10},{"id":"gift"}]}"#;
    assert_eq!(total(gift), Some(1_499));
    // No price anywhere (seed 4's buys): an order of unknown value.
    assert_eq!(total(r#"{"type":"purchase","order":{"id":"o"},"items":[{"id":"a"}]}"#), None);
    // The subtotal stands for the lines, priced or not.
    let with_subtotal = r#"{"type":"purchase","order":{"id":"o","subtotal":"20.00","tax":"1.50"},"items":[{"id":"gift"}]}"#;
    assert_eq!(total(with_subtotal), Some(2_150));
    // No order currency: the lines' currency is the order's (not the default USD).
    let euro_lines = r#"{"type":"purchase","order":{"id":"o"},"items":[{"id":"a","price":"10.00","currency":"EUR"},{"id":"b","price":"5.00"}]}"#;
    let event = native(euro_lines).unwrap();
    let order = event.order.unwrap();
    assert_eq!((order.currency.code(), order.total), ("EUR", Some(1_500)));
    assert_eq!(event.items[1].price.unwrap().currency.code(), "EUR");
    // A checkout without a computable total is still accepted, without one.
    let checkout = r#"{"type":"checkout_started","order":{"id":"o"},"items":[{"id":"a"}]}"#;
    assert_eq!(total(checkout), None);
    // Cart lines are not an order: each keeps its own currency.
    let cart = r#"{"type":"add_to_cart","product":{"id":"a","price":3,"currency":"JPY"}}"#;
    assert_eq!(native(cart).unwrap().product.unwrap().price.unwrap().currency.code(), "JPY");
}

/// Amounts are bounded (10^15 minor units), so that no sum of them can overflow into a
/// negative revenue: an amount, a line (price × quantity) and a computed total beyond it are
/// refused, naming the field.
#[test]
fn amounts_beyond_ten_trillion_are_refused() {
    let fields = |json: &str| -> Vec<String> {
        errors_of(native(json)).into_iter().map(|(field, _)| field).collect()
    };
    let huge_total = r#"{"type":"purchase","order":{"id":"o","total":"50000000000000000.00"},"items":[{"id":"a","price":"1.00"}]}"#;
    assert_eq!(fields(huge_total), ["order.total"]);
    let huge_line = r#"{"type":"purchase","order":{"id":"o","total":"10.00"},"items":[{"id":"a","price":"9000000000000.00","quantity":1000}]}"#;
    assert_eq!(fields(huge_line), ["items[0].quantity"]);
    let huge_sum = r#"{"type":"purchase","order":{"id":"o","subtotal":"9000000000000.00","tax":"9000000000000.00"},"items":[{"id":"a","price":"1.00"}]}"#;
    assert_eq!(fields(huge_sum), ["order.total"]);
    let largest = r#"{"type":"purchase","order":{"id":"o","total":"10000000000000.00"},"items":[{"id":"a","price":"1.00"}]}"#;
    assert_eq!(native(largest).unwrap().order.unwrap().total, Some(1_000_000_000_000_000));
}

/// A page view needs a page: a blank URL or path names none (`top_pages` would list `""`).
#[test]
fn a_blank_page_is_no_page() {
    for page in [r#"{"url":""}"#, r#"{"path":"   "}"#, r#"{"url":" ","path":""}"#] {
        let json = format!(r#"{{"type":"page_view","page":{page}}}"#);
        let fields: Vec<String> = errors_of(native(&json)).into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["page.url"], "{page}");
    }
    let padded = native(r#"{"type":"page_view","page":{"path":" /shoes "}}"#).unwrap();
    assert_eq!(padded.page.unwrap().path.as_deref(), Some("/shoes"));
}

#[test]
fn defaults_fill_in_id_store_and_time() {
    let event = native(r#"{"type":"page_view","page":{"url":"https://shop.test/shoes?utm_source=news&utm_campaign=fall"}}"#).unwrap();
    assert_eq!(event.event_id, "generated-id");
    assert_eq!(event.store, "default");
    assert_eq!(event.event_time, RECEIVED);
    assert_eq!(event.time_source, TimeSource::Received);
    assert_eq!(event.page.unwrap().path.as_deref(), Some("/shoes"));
    let marketing = event.marketing.unwrap();
    assert_eq!(marketing.utm_source.as_deref(), Some("news"));
    assert_eq!(marketing.utm_campaign.as_deref(), Some("fall"));
}

/// A referrer is a source when it is another site; the shop's own pages referring to each
/// other (every page after the landing one) are not, or each would be "from" the shop.
#[test]
fn a_referrer_on_the_pages_own_site_is_not_a_source() {
    let referrer_host = |page: &str| {
        let json = format!(r#"{{"type":"page_view","page":{page}}}"#);
        native(&json).unwrap().marketing.and_then(|marketing| marketing.referrer_host)
    };
    let from_google =
        r#"{"url":"https://shop.test/p/1","referrer":"https://www.google.com/search"}"#;
    assert_eq!(referrer_host(from_google).as_deref(), Some("google.com"));
    let within = r#"{"url":"https://www.Shop.test/p/1","referrer":"https://shop.test/c/shoes"}"#;
    assert_eq!(referrer_host(within), None);
    // Another shop of the same company is another site.
    let sister = r#"{"url":"https://shop.test/p/1","referrer":"https://outlet.shop.test/"}"#;
    assert_eq!(referrer_host(sister).as_deref(), Some("outlet.shop.test"));
    // Without the page's URL nothing says the referrer is the shop's own.
    let no_url = r#"{"path":"/p/1","referrer":"https://shop.test/c/shoes"}"#;
    assert_eq!(referrer_host(no_url).as_deref(), Some("shop.test"));
}

/// An empty or blank campaign field is no campaign: it would otherwise count as a source of
/// its own (`""`), and padding around a value would split `news` from `" news "`.
#[test]
fn blank_marketing_fields_are_absent_and_values_are_trimmed() {
    let marketing = |event: &str| native(event).unwrap().marketing;
    let source = |event: &str| marketing(event).and_then(|marketing| marketing.utm_source);

    let blank_fields = r#"{"type":"page_view","page":{"path":"/"},"marketing":{"utm_source":"","utm_medium":"  ","utm_campaign":"\t","utm_term":"","utm_content":" ","referrer_host":""}}"#;
    assert_eq!(marketing(blank_fields), None);
    let padded = r#"{"type":"page_view","page":{"path":"/"},"marketing":{"utm_source":"  news ","utm_campaign":" fall","referrer_host":" google.com "}}"#;
    let padded = marketing(padded).unwrap();
    assert_eq!(padded.utm_source.as_deref(), Some("news"));
    assert_eq!(padded.utm_campaign.as_deref(), Some("fall"));
    assert_eq!(padded.referrer_host.as_deref(), Some("google.com"));

    // The page URL's query is read the same way.
    let url = |query: &str| {
        format!(r#"{{"type":"page_view","page":{{"url":"https://shop.test/p?{query}"}}}}"#)
    };
    assert_eq!(source(&url("utm_source=%20news%20")).as_deref(), Some("news"));
    assert_eq!(source(&url("utm_source=+news+")).as_deref(), Some("news"));
    assert_eq!(marketing(&url("utm_source=%20&utm_medium=")), None);

    // A blank field is absent, so the URL's value or the referrer stands in for it.
    let blank_over_url = r#"{"type":"page_view","page":{"url":"https://shop.test/?utm_source=news","referrer":"https://www.google.com/"},"marketing":{"utm_source":" ","referrer_host":""}}"#;
    let filled = marketing(blank_over_url).unwrap();
    assert_eq!(filled.utm_source.as_deref(), Some("news"));
    assert_eq!(filled.referrer_host.as_deref(), Some("google.com"));
}

/// An explicit `marketing.referrer_host` on the page's own site is a step within the shop,
/// just as a `page.referrer` there is.
#[test]
fn an_explicit_referrer_host_on_the_pages_own_site_is_not_a_source() {
    let referrer_host = |url: &str, named: &str| {
        let json = format!(
            r#"{{"type":"page_view","page":{{"url":"{url}"}},"marketing":{{"referrer_host":"{named}"}}}}"#
        );
        native(&json).unwrap().marketing.and_then(|marketing| marketing.referrer_host)
    };
    assert_eq!(referrer_host("https://shop.test/p/1", "shop.test"), None);
    // Compared as `referrer_host()` reads hosts: letter case, `www.` and a port do not matter.
    assert_eq!(referrer_host("https://www.Shop.test:8443/p/1", "WWW.shop.TEST:443"), None);
    assert_eq!(referrer_host("https://shop.test/p/1", "https://www.shop.test/c/shoes"), None);
    // Another site is kept, read as a referrer's host is: `Google.com`, `www.google.com:443`
    // and `https://www.google.com/search` are one source, `google.com`.
    assert_eq!(
        referrer_host("https://shop.test/p/1", "outlet.shop.test").as_deref(),
        Some("outlet.shop.test")
    );
    for named in ["Google.com", "www.google.com:443", "https://www.google.com/search"] {
        let host = referrer_host("https://shop.test/p/1", named);
        assert_eq!(host.as_deref(), Some("google.com"), "{named}");
    }
    // Without the page's URL nothing says the host is the shop's own.
    let no_url =
        r#"{"type":"page_view","page":{"path":"/p/1"},"marketing":{"referrer_host":"shop.test"}}"#;
    let kept = native(no_url).unwrap().marketing.and_then(|marketing| marketing.referrer_host);
    assert_eq!(kept.as_deref(), Some("shop.test"));
    // Dropped, the named host is absent: a referrer on another site stands in for it.
    let with_referrer = r#"{"type":"page_view","page":{"url":"https://shop.test/p/1","referrer":"https://news.test/a"},"marketing":{"referrer_host":"shop.test"}}"#;
    let marketing = native(with_referrer).unwrap().marketing.unwrap();
    assert_eq!(marketing.referrer_host.as_deref(), Some("news.test"));
}

/// The request's User-Agent gives the device only when a browser sent the request: a shop's
/// backend posting with curl or an HTTP library says nothing about its visitors' devices.
#[test]
fn a_device_comes_from_the_request_only_when_a_browser_sent_it() {
    let device_with_agent = |agent: &'static str| {
        with_context(&Limits::default(), None, |context| {
            let context = ValidationContext { user_agent: Some(agent), ..*context };
            decode_native_event(r#"{"type":"search","query":"x"}"#, &context)
                .unwrap()
                .device
                .map(|device| device.device_type)
        })
    };
    assert_eq!(device_with_agent("curl/8.5.0"), None);
    assert_eq!(device_with_agent("python-requests/2.31.0"), None);
    assert_eq!(device_with_agent("Go-http-client/1.1"), None);
    let googlebot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
    assert_eq!(device_with_agent(googlebot), Some(DeviceType::Bot));
    let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
    assert_eq!(device_with_agent(firefox), Some(DeviceType::Desktop));
    // A user agent in the event itself is the sender's statement about the visitor: kept.
    let stated =
        r#"{"type":"search","query":"x","device":{"user_agent":"MyShopApp/3.2 (Android 14)"}}"#;
    let event = with_context(&Limits::default(), None, |context| {
        let context = ValidationContext { user_agent: Some("curl/8.5.0"), ..*context };
        decode_native_event(stated, &context).unwrap()
    });
    assert_eq!(event.device.unwrap().device_type, DeviceType::Mobile);
}

#[test]
fn header_time_is_used_when_the_event_has_none() {
    let header = HeaderTime {
        time: Timestamp(1_762_999_000_000),
        source: TimeSource::ClientHeader,
        distrusted: false,
    };
    let event = with_context(&Limits::default(), Some(header), |context| {
        decode_native_event(r#"{"type":"search","query":"red shoes"}"#, context)
    })
    .unwrap();
    assert_eq!(event.event_time, header.time);
    assert_eq!(event.time_source, TimeSource::ClientHeader);
    assert_eq!(event.search_query.as_deref(), Some("red shoes"));
}

#[test]
fn every_problem_is_listed_with_its_path() {
    let errors = errors_of(native(
        r#"{"type":"purchase","user_id":"","country":"USA","order":{"currency":"XYZ","total":-5},
            "items":[{"id":"p1","quantity":0},{"price":"1.999"},{"id":"p3","quantity":"2"}]}"#,
    ));
    assert_eq!(
        errors,
        vec![
            ("country".into(), ErrorCode::InvalidValue),
            ("items[0].quantity".into(), ErrorCode::InvalidValue),
            ("items[1].id".into(), ErrorCode::Missing),
            ("items[1].price".into(), ErrorCode::InvalidValue),
            ("items[2].quantity".into(), ErrorCode::InvalidType),
            ("order.currency".into(), ErrorCode::InvalidValue),
            ("order.id".into(), ErrorCode::Missing),
            ("order.total".into(), ErrorCode::InvalidValue),
            ("user_id".into(), ErrorCode::InvalidValue),
        ]
    );
}

#[test]
fn extra_decimals_name_the_currency() {
    let rejection =
        native(r#"{"type":"add_to_cart","product":{"id":"p","price":1.999}}"#).unwrap_err();
    assert_eq!(
        rejection.to_string(),
        "product.price: has more than 2 decimal places, which USD allows"
    );
}

/// A tracker that sums prices in JavaScript sends `59.970000000000006`: the order is kept, at
/// the amount it means, in the native format and from Segment alike.
#[test]
fn float_noise_from_a_senders_arithmetic_keeps_the_order() {
    let event = native(
        r#"{"type":"purchase","order":{"id":"o","total":59.970000000000006},
            "items":[{"id":"a","price":0.30000000000000004,"quantity":2}]}"#,
    )
    .unwrap();
    assert_eq!(event.order.unwrap().total, Some(5997));
    assert_eq!(event.items[0].price.unwrap().minor, 30);
    let event = segment(
        r#"{"type":"track","event":"Order Completed","userId":"u1","messageId":"m-2",
            "properties":{"order_id":"o-2","revenue":59.970000000000006,"tax":3.3000000000000003,
                          "products":[{"product_id":"p1","price":19.99,"quantity":3}]}}"#,
        Some(SegmentCall::Track),
    )
    .unwrap();
    assert_eq!(event.order.unwrap().total, Some(5997 + 330));
    // Digits a sender meant are still refused, not rounded.
    let rejection = native(
        r#"{"type":"purchase","order":{"id":"o","total":59.971},"items":[{"id":"a","price":1}]}"#,
    )
    .unwrap_err();
    assert_eq!(
        rejection.to_string(),
        "order.total: has more than 2 decimal places, which USD allows"
    );
}

/// `1e400` is beyond the largest float: serde_json refuses the whole event as invalid JSON
/// (`{"field": ""}`), where `1e-400` was refused naming its field. Both now name it, in an
/// amount, a quantity and a timestamp; in free-form `properties` it is kept as written.
#[test]
fn a_number_too_large_for_a_float_is_refused_naming_its_field() {
    for (event, field) in [
        (
            r#"{"type":"purchase","order":{"id":"o","total":1e400},"items":[{"id":"a","price":1}]}"#,
            "order.total",
        ),
        (
            r#"{"type":"purchase","order":{"id":"o"},"items":[{"id":"a","price":1,"quantity":1e400}]}"#,
            "items[0].quantity",
        ),
        (
            r#"{"type":"page_view","timestamp":-1E+999,"page":{"url":"https://a.test/"}}"#,
            "timestamp",
        ),
    ] {
        let text = native(event).unwrap_err().to_string();
        assert!(text.starts_with(&format!("{field}: ")), "{event}: {text}");
    }
    let text = native(
        r#"{"type":"purchase","order":{"id":"o","total":1e400},"items":[{"id":"a","price":1}]}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(text.contains("too large"), "{text}");
    let text = native(
        r#"{"type":"purchase","order":{"id":"o"},"items":[{"id":"a","price":1,"quantity":1e400}]}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(text.contains("1e400 is beyond the range of a 64-bit float"), "{text}");
    assert!(!text.contains("not a string"), "{text}");
    let event = native(r#"{"type":"custom","name":"x","properties":{"big":1e400}}"#).unwrap();
    assert_eq!(event.properties.unwrap().as_str(), r#"{"big":1e400}"#);
}

/// An amount in a string with an exponent says why it is refused, as `1e-400` and `1e400` do.
#[test]
fn an_amount_text_with_an_exponent_says_why_it_is_refused() {
    let text = native(
        r#"{"type":"purchase","order":{"id":"o","total":"1e2"},"items":[{"id":"a","price":1}]}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(text.starts_with("order.total: ") && text.contains("without an exponent"), "{text}");
    let event = native(
        r#"{"type":"purchase","order":{"id":"o","total":1e2},"items":[{"id":"a","price":1}]}"#,
    )
    .unwrap();
    assert_eq!(event.order.unwrap().total, Some(10_000));
}

/// An order sent by its value alone, whose total is refused (too large), is refused for that
/// total only: not also for lacking line items, which it never meant to send.
#[test]
fn a_refused_order_total_is_not_also_reported_as_missing_line_items() {
    for total in ["\"10000000000000.01\"", "\"abc\"", "1e400"] {
        let errors = errors_of(native(&format!(
            r#"{{"type":"purchase","order":{{"id":"o","total":{total}}}}}"#
        )));
        let fields: Vec<&str> = errors.iter().map(|(field, _)| field.as_str()).collect();
        assert_eq!(fields, ["order.total"], "{total}: {errors:?}");
    }
    let errors = errors_of(native(r#"{"type":"purchase","order":{"id":"o","total":0}}"#));
    assert_eq!(errors.iter().map(|(field, _)| field.as_str()).collect::<Vec<_>>(), ["items"]);
}

/// `"price": 1e-400` is below the smallest float: serde_json reads it as 0, and the line was
/// kept as free. An amount whose digits are not all zero but reads as zero is refused, naming
/// the field, in the native format and from Segment alike; a zero written in any form is 0.
#[test]
fn an_amount_too_small_for_a_float_is_refused_not_read_as_zero() {
    for total in ["1e-400", "-2.5E-330", "0.000000000000000000000000000000000001e-300"] {
        let rejection = native(&format!(
            r#"{{"type":"purchase","order":{{"id":"o","total":{total}}},"items":[{{"id":"a","price":1}}]}}"#
        ))
        .unwrap_err();
        let text = rejection.to_string();
        assert!(text.starts_with("order.total: ") && text.contains("too small"), "{total}: {text}");
    }
    let rejection =
        native(r#"{"type":"add_to_cart","product":{"id":"p","price":5e-324, "quantity": 1}}"#)
            .unwrap_err();
    assert!(rejection.to_string().starts_with("product.price: "), "{rejection}");
    let rejection = segment(
        r#"{"type":"track","event":"Order Completed","userId":"u1","messageId":"m-3",
            "properties":{"order_id":"o-3","revenue":1e-400,
                          "products":[{"product_id":"p1","price":19.99,"quantity":3}]}}"#,
        Some(SegmentCall::Track),
    )
    .unwrap_err();
    assert!(rejection.to_string().contains("too small"), "{rejection}");
    for zero in ["0", "0.0", "-0", "0e-400", "0.000E+5", "0e0"] {
        let event = native(&format!(
            r#"{{"type":"purchase","order":{{"id":"o","total":10,"discount":{zero}}},"items":[{{"id":"a","price":1}}]}}"#
        ))
        .unwrap();
        assert_eq!(event.order.unwrap().discount, Some(0), "{zero}");
    }
    // Float noise is still read as the amount it means.
    let event = native(r#"{"type":"purchase","order":{"id":"o","total":5.997000000000001e1},"items":[{"id":"a","price":1}]}"#)
        .unwrap();
    assert_eq!(event.order.unwrap().total, Some(5997));
}

#[test]
fn type_requirements_table() {
    let cases: &[(&str, &[&str])] = &[
        (r#"{}"#, &["type"]),
        (r#"{"type":"nonsense"}"#, &["type"]),
        (r#"{"type":"page_view"}"#, &["page.url"]),
        (r#"{"type":"product_view"}"#, &["product"]),
        (r#"{"type":"add_to_cart","product":{}}"#, &["product.id"]),
        (r#"{"type":"remove_from_cart"}"#, &["product"]),
        (r#"{"type":"purchase","order":{"id":"o"}}"#, &["items"]),
        (r#"{"type":"purchase","order":{"id":"o","total":0}}"#, &["items"]),
        (r#"{"type":"refund"}"#, &["order.id"]),
        (r#"{"type":"promotion_view"}"#, &["promotion.id"]),
        (r#"{"type":"promotion_click","promotion":{"name":"x"}}"#, &["promotion.id"]),
        (r#"{"type":"search"}"#, &["query"]),
        (r#"{"type":"custom"}"#, &["name"]),
        (r#"{"type":"page_view","page":{"url":"/"},"usr_id":"x"}"#, &["usr_id"]),
        (r#"{"type":"page_view","page":{"url":"/"},"timestamp":"yesterday"}"#, &["timestamp"]),
        (r#"{"type":"page_view","page":{"url":"/"},"store":"bad store!"}"#, &["store"]),
        (r#"{"type":"page_view","page":{"url":"/"},"properties":[1]}"#, &["properties"]),
        (r#"{"type":"page_view","page":{"url":"/"},"device":{"type":"fridge"}}"#, &["device.type"]),
        (
            r#"{"type":"purchase","order":{"id":"o","status":"lost"},"items":[{"id":"a","price":1}]}"#,
            &["order.status"],
        ),
        (
            r#"{"type":"purchase","order":{"id":"o","currency":"USD"},"items":[{"id":"a","price":10,"currency":"EUR"},{"id":"b","price":5}]}"#,
            &["items[0].currency"],
        ),
        (
            r#"{"type":"refund","order":{"id":"o","currency":"GBP"},"product":{"id":"a","price":10,"currency":"EUR"}}"#,
            &["product.currency"],
        ),
    ];
    for (json, expected) in cases {
        let errors = errors_of(native(json));
        assert_eq!(fields(&errors), *expected, "{json}");
    }
    for json in [
        r#"{"type":"product_list_view"}"#,
        r#"{"type":"checkout_started"}"#,
        r#"{"type":"identify","user_id":"u"}"#,
        r#"{"type":"refund","order":{"id":"o"}}"#,
        r#"{"type":"custom","name":"wishlist_add","properties":{"x":1}}"#,
        r#"{"type":"promotion_click","promotion":{"id":"summer","position":3}}"#,
    ] {
        assert!(native(json).is_ok(), "{json}");
    }
}

#[test]
fn limits_are_enforced() {
    let limits = Limits {
        max_items: 2,
        max_id_chars: 8,
        max_properties_bytes: 16,
        max_event_bytes: 400,
        ..Limits::default()
    };
    let check =
        |json: &str| with_context(&limits, None, |context| decode_native_event(json, context));
    let errors = errors_of(check(
        r#"{"type":"purchase","order":{"id":"o"},"items":[{"id":"a"},{"id":"b"},{"id":"c"}]}"#,
    ));
    assert_eq!(errors, vec![("items".into(), ErrorCode::TooLong)]);
    let errors = errors_of(check(r#"{"type":"identify","user_id":"123456789"}"#));
    assert_eq!(errors, vec![("user_id".into(), ErrorCode::TooLong)]);
    let errors = errors_of(check(r#"{"type":"identify","properties":{"a":"0123456789abcdef"}}"#));
    assert_eq!(errors, vec![("properties".into(), ErrorCode::TooLong)]);
    let big = format!(r#"{{"type":"search","query":"{}"}}"#, "x".repeat(500));
    let errors = errors_of(check(&big));
    assert_eq!(errors, vec![("".into(), ErrorCode::TooLong)]);
}

#[test]
fn far_future_event_times_are_not_trusted() {
    let event =
        native(r#"{"type":"identify","user_id":"u","timestamp":"2035-01-01T00:00:00Z"}"#).unwrap();
    assert_eq!(event.event_time, RECEIVED);
    assert!(event.clock_distrusted);
}

#[test]
fn numeric_timestamps_are_read_by_magnitude() {
    for value in ["1762999000", "1762999000000", "1762999000000000"] {
        let json = format!(r#"{{"type":"identify","user_id":"u","timestamp":{value}}}"#);
        assert_eq!(native(&json).unwrap().event_time, Timestamp(1_762_999_000_000), "{value}");
    }
}

fn segment(json: &str, call: Option<SegmentCall>) -> Result<Event, ValidationErrors> {
    with_context(&Limits::default(), None, |context| {
        decode_segment_message(json, call, None, context)
    })
}

#[test]
fn segment_order_completed_becomes_a_purchase() {
    let event = segment(
        r#"{"type":"track","event":"Order Completed","userId":"u1","messageId":"m-1",
            "timestamp":"2025-11-13T01:00:00Z",
            "context":{"ip":"8.8.8.8","userAgent":"Mozilla/5.0 (Windows NT 10.0)","campaign":{"source":"google","name":"fall"},
                       "page":{"url":"https://shop.test/checkout"},"location":{"country":"US"}},
            "properties":{"order_id":"o-9","total":27.50,"currency":"usd","coupon":"FALL",
                          "products":[{"product_id":"p1","sku":"S1","name":"Tee","price":12.5,"quantity":2,"category":"Apparel"},
                                      {"product_id":"p2","price":"2.50"}],
                          "gift_wrap":true}}"#,
        Some(SegmentCall::Track),
    )
    .unwrap();
    assert_eq!(event.event_type, EventType::Purchase);
    assert_eq!(event.name.as_deref(), Some("Order Completed"));
    assert_eq!(event.event_id, "m-1");
    assert_eq!(event.user_id.as_deref(), Some("u1"));
    let order = event.order.unwrap();
    assert_eq!((order.id.as_deref(), order.total), (Some("o-9"), Some(2750)));
    assert_eq!(event.items.len(), 2);
    assert_eq!(event.items[0].price.unwrap().minor, 1250);
    assert_eq!(event.marketing.unwrap().utm_source.as_deref(), Some("google"));
    assert_eq!(event.country.as_deref(), Some("US"));
    assert_eq!(event.device.unwrap().device_type, DeviceType::Desktop);
    assert_eq!(event.properties.as_deref(), Some(r#"{"gift_wrap":true}"#));
}

#[test]
fn segment_ecommerce_names_map_onto_types() {
    let cases = [
        ("Product Viewed", r#"{"product_id":"p"}"#, EventType::ProductView),
        ("Product Added", r#"{"product_id":"p","quantity":2}"#, EventType::AddToCart),
        ("Product Removed", r#"{"product_id":"p"}"#, EventType::RemoveFromCart),
        ("Checkout Started", r#"{"order_id":"o","products":[]}"#, EventType::CheckoutStarted),
        ("Order Refunded", r#"{"order_id":"o","total":5}"#, EventType::Refund),
        ("Order Cancelled", r#"{"order_id":"o"}"#, EventType::Refund),
        ("Promotion Viewed", r#"{"promotion_id":"promo"}"#, EventType::PromotionView),
        (
            "Promotion Clicked",
            r#"{"promotion_id":"promo","position":"top"}"#,
            EventType::PromotionClick,
        ),
        ("Products Searched", r#"{"query":"shoes"}"#, EventType::Search),
        (
            "Product List Viewed",
            r#"{"list_id":"l","products":[{"product_id":"a"}]}"#,
            EventType::ProductListView,
        ),
        ("Wishlist Shared", r#"{}"#, EventType::Custom),
    ];
    for (name, properties, expected) in cases {
        let json = format!(r#"{{"event":"{name}","anonymousId":"a1","properties":{properties}}}"#);
        let event = segment(&json, Some(SegmentCall::Track))
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(event.event_type, expected, "{name}");
        assert_eq!(event.name.as_deref(), Some(name));
    }
    let cancelled = segment(
        r#"{"event":"Order Cancelled","userId":"u","properties":{"order_id":"o"}}"#,
        Some(SegmentCall::Track),
    )
    .unwrap();
    assert_eq!(cancelled.order.unwrap().status, Some(OrderStatus::Cancelled));
}

#[test]
fn segment_errors_use_segment_paths() {
    let errors = errors_of(segment(
        r#"{"event":"Order Completed","userId":"u","properties":{"total":"abc","products":[{"price":1}]}}"#,
        Some(SegmentCall::Track),
    ));
    assert_eq!(
        fields(&errors),
        ["properties.order_id", "properties.products[0].product_id", "properties.total"]
    );
}

/// Segment's `products` is optional: a back office sending "Order Completed" with an order id
/// and its value only had the order refused (and Segment does not retry a 400).
#[test]
fn an_order_sent_by_its_value_alone_is_a_purchase() {
    let event = segment(
        r#"{"event":"Order Completed","userId":"u","properties":{"order_id":"o-3","total":12.5}}"#,
        Some(SegmentCall::Track),
    )
    .unwrap();
    assert_eq!(event.event_type, EventType::Purchase);
    assert!(event.items.is_empty());
    assert_eq!(event.order.unwrap().total, Some(1250));
    let by_revenue = segment(
        r#"{"event":"Order Completed","userId":"u","properties":{"order_id":"o-4","revenue":10,"tax":1}}"#,
        Some(SegmentCall::Track),
    )
    .unwrap();
    assert_eq!(by_revenue.order.unwrap().total, Some(1100));
    let native = native(r#"{"type":"purchase","order":{"id":"o","subtotal":"20.00"}}"#).unwrap();
    assert_eq!(native.order.unwrap().total, Some(2000));
    // Without lines and without a value there is nothing to count.
    let errors = errors_of(segment(
        r#"{"event":"Order Completed","userId":"u","properties":{"order_id":"o-5"}}"#,
        Some(SegmentCall::Track),
    ));
    assert_eq!(fields(&errors), ["properties.products"]);
}

#[test]
fn segment_calls_name_their_user_and_a_known_type() {
    let errors =
        errors_of(segment(r#"{"event":"Signed Up","properties":{}}"#, Some(SegmentCall::Track)));
    assert_eq!(errors, [("userId".to_owned(), ErrorCode::Missing)]);
    let blank = errors_of(segment(r#"{"type":"track","event":"X","userId":" "}"#, None));
    assert!(blank.contains(&("userId".to_owned(), ErrorCode::Missing)), "{blank:?}");
    let anonymous =
        r#"{"type":"page","anonymousId":"a-1","properties":{"url":"https://shop.test/"}}"#;
    assert!(segment(anonymous, None).is_ok());
    let bogus = errors_of(segment(r#"{"type":"bogus","event":"X","userId":"u"}"#, None));
    assert_eq!(bogus, [("type".to_owned(), ErrorCode::InvalidValue)]);
    let untyped = errors_of(segment(r#"{"event":"X","userId":"u"}"#, None));
    assert_eq!(untyped, [("type".to_owned(), ErrorCode::Missing)]);
}

#[test]
fn type_errors_speak_json_not_rust() {
    let message = |json: &str| native(json).unwrap_err().0[0].message.clone();
    let fraction = r#"{"type":"add_to_cart","product":{"id":"a","quantity":1.5}}"#;
    assert_eq!(message(fraction), "must be a whole number");
    let text = r#"{"type":"add_to_cart","product":{"id":"a","quantity":"two"}}"#;
    assert_eq!(message(text), "must be a whole number, not a string");
}

#[test]
fn segment_original_timestamp_is_corrected_by_sent_at() {
    // The device clock is 1 hour fast: sent "at 03:13:20" but it was received at 02:13:20.
    let event = segment(
        r#"{"type":"track","event":"Signed Up","userId":"u","originalTimestamp":"2025-11-13T03:13:10Z","sentAt":"2025-11-13T03:13:20Z"}"#,
        None,
    )
    .unwrap();
    assert_eq!(event.event_time, Timestamp(RECEIVED.0 - 10_000));
}

#[test]
fn segment_page_identify_screen_alias_group_calls() {
    let page = segment(r#"{"type":"page","name":"Home","anonymousId":"a","properties":{"url":"https://s.test/","title":"Home"}}"#, None).unwrap();
    assert_eq!(page.event_type, EventType::PageView);
    assert_eq!(page.page.unwrap().path.as_deref(), Some("/"));
    let screen =
        segment(r#"{"name":"Cart","anonymousId":"a"}"#, Some(SegmentCall::Screen)).unwrap();
    assert_eq!(screen.page.unwrap().path.as_deref(), Some("screen:Cart"));
    let identify =
        segment(r#"{"type":"identify","userId":"u","traits":{"email":"a@b.c"}}"#, None).unwrap();
    assert_eq!(identify.event_type, EventType::Identify);
    assert_eq!(identify.properties.as_deref(), Some(r#"{"email":"a@b.c"}"#));
    let alias = segment(r#"{"type":"alias","userId":"u","previousId":"a"}"#, None).unwrap();
    assert_eq!(alias.name.as_deref(), Some("alias"));
    let group = segment(r#"{"type":"group","userId":"u","groupId":"g"}"#, None).unwrap();
    assert_eq!(group.name.as_deref(), Some("group"));
    let unknown = errors_of(segment(r#"{"type":"explode","userId":"u"}"#, None));
    assert_eq!(fields(&unknown), ["type"]);
}

fn realtime(json: &str) -> Result<Event, ValidationErrors> {
    with_context(&Limits::default(), None, |context| decode_realtime_ingest_event(json, context))
}

#[test]
fn seed3_ingest_payloads() {
    let event = realtime(r#"{"event_type":"page_view","page_url":"/products/shoes","user_id":"user_1","session_id":"s1","timestamp":"2025-11-13T02:00:00Z"}"#).unwrap();
    assert_eq!(event.event_type, EventType::PageView);
    assert_eq!(event.page.unwrap().url.as_deref(), Some("/products/shoes"));
    assert_eq!(event.session_id.as_deref(), Some("s1"));

    let click = realtime(r#"{"event_type":"click","page_url":"/","user_id":"u","session_id":"s","timestamp":"2025-11-13T02:00:00Z"}"#).unwrap();
    assert_eq!((click.event_type, click.name.as_deref()), (EventType::Custom, Some("click")));

    let errors =
        errors_of(realtime(r#"{"event_type":"page_view","user_id":123,"timestamp":"not-a-date"}"#));
    assert_eq!(
        errors,
        vec![
            ("page_url".into(), ErrorCode::Missing),
            ("session_id".into(), ErrorCode::Missing),
            ("timestamp".into(), ErrorCode::InvalidValue),
            ("user_id".into(), ErrorCode::InvalidType),
        ]
    );
    let errors = errors_of(realtime("{ bad json }"));
    assert_eq!(errors, vec![("".into(), ErrorCode::InvalidJson)]);
}

#[test]
fn events_round_trip_through_the_record_codec() {
    let event = native(r#"{"type":"purchase","order":{"id":"o","total":"10.00"},"items":[{"id":"a","price":10}],"properties":{"k":"v"}}"#).unwrap();
    let mut buffer = Vec::new();
    storepulse_model::codec::encode_event(&event, &mut buffer);
    assert_eq!(storepulse_model::codec::decode_event(&buffer).unwrap(), event);
    // The identity is read from the same bytes (it must follow the event's field order).
    let identity = storepulse_model::codec::decode_identity(&buffer).unwrap();
    assert_eq!(
        (identity.event_id, identity.event_id_generated, identity.store),
        (event.event_id.as_str(), event.event_id_generated, event.store.as_str())
    );
    let sent =
        native(r#"{"type":"search","query":"boots","event_id":"retry-me","store":"eu"}"#).unwrap();
    let mut buffer = Vec::new();
    storepulse_model::codec::encode_event(&sent, &mut buffer);
    let identity = storepulse_model::codec::decode_identity(&buffer).unwrap();
    assert_eq!(
        (identity.event_id, identity.event_id_generated, identity.store),
        ("retry-me", false, "eu")
    );
    assert!(storepulse_model::codec::decode_identity(&[9, 1, 2]).is_err());
    assert!(storepulse_model::codec::decode_event(&[9, 1, 2]).is_err());
    assert!(storepulse_model::codec::decode_event(&[]).is_err());
}

#[test]
fn the_record_encoder_writes_exactly_postcards_bytes() {
    // The encoder appends to a reused buffer with its own output adapter; records must still
    // be plain postcard after the version byte, or older records stop decoding.
    let event = native(r#"{"type":"purchase","user_id":"a-user-id-longer-than-twenty-four-bytes","page":{"url":"https://shop.test/checkout?step=3"},"order":{"id":"o-1","total":"1234.56","currency":"EUR"},"items":[{"id":"a","price":10,"quantity":300,"category":"A > B > C"}]}"#).unwrap();
    let mut buffer = vec![0xAA];
    storepulse_model::codec::encode_event(&event, &mut buffer);
    let mut expected = vec![0xAA, storepulse_model::codec::EVENT_RECORD_VERSION];
    expected.extend(postcard::to_allocvec(&event).unwrap());
    assert_eq!(buffer, expected);
}

#[test]
fn an_address_sent_on_a_visitors_behalf_replaces_the_requests() {
    let event = native(r#"{"type":"identify","user_id":"u","ip":"203.0.113.7"}"#).unwrap();
    assert_eq!(event.client.as_deref(), Some("test:203.0.113.7"));
    let event = native(r#"{"type":"identify","user_id":"u"}"#).unwrap();
    assert_eq!(event.client.as_deref(), Some("h:abc"));
    assert_eq!(fields(&errors_of(native(r#"{"type":"identify","ip":"300.1.1.1"}"#))), ["ip"]);

    let event = segment(r#"{"type":"identify","userId":"u","context":{"ip":"2001:db8::1"}}"#, None)
        .unwrap();
    assert_eq!(event.client.as_deref(), Some("test:2001:db8::1"));
    let errors =
        errors_of(segment(r#"{"type":"identify","userId":"u","context":{"ip":"nope"}}"#, None));
    assert_eq!(fields(&errors), ["context.ip"]);
}

/// `event_type` and `type` both sent was "duplicate field `type`" with no field named.
#[test]
fn a_field_sent_under_both_its_names_names_both() {
    let errors = native(r#"{"event_type":"search","type":"page_view","query":"x"}"#).unwrap_err();
    assert_eq!(errors.0.len(), 1, "{errors:?}");
    assert_eq!(errors.0[0].field, "type");
    assert_eq!(errors.0[0].code, ErrorCode::InvalidValue);
    assert_eq!(errors.0[0].message, "given twice, as `type` and `event_type`; send one");
    let errors = errors_of(native(
        r#"{"type":"product_view","product":{"id":"a","product_id":"b"},"usr":1}"#,
    ));
    assert!(errors.contains(&("product.id".into(), ErrorCode::InvalidValue)), "{errors:?}");
    assert!(errors.contains(&("usr".into(), ErrorCode::UnknownField)), "{errors:?}");
}

/// A page view whose path is too long was also told its page was missing.
#[test]
fn a_too_long_page_path_is_reported_once() {
    let path = format!("/{}", "p".repeat(5000));
    let json = format!(r#"{{"type":"page_view","page":{{"path":"{path}"}}}}"#);
    assert_eq!(errors_of(native(&json)), [("page.path".to_owned(), ErrorCode::TooLong)]);
}
