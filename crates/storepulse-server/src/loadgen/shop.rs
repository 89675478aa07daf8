//! The shop traffic model: a seeded catalog and sessions that browse, search, add to cart,
//! check out, buy, sometimes get refunded, and see and click promotions.
//!
//! Same seed, same events (ids, products, orders, amounts); only timestamps follow the clock.

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

const DEPARTMENTS: [(&str, [&str; 4]); 8] = [
    ("Apparel", ["Shoes", "Tops", "Outerwear", "Accessories"]),
    ("Electronics", ["Phones", "Audio", "Computers", "Cameras"]),
    ("Home", ["Kitchen", "Furniture", "Decor", "Bedding"]),
    ("Sports", ["Running", "Cycling", "Fitness", "Outdoor"]),
    ("Beauty", ["Skincare", "Makeup", "Fragrance", "Hair"]),
    ("Toys", ["Building", "Dolls", "Games", "Outdoor Play"]),
    ("Grocery", ["Coffee", "Snacks", "Pantry", "Beverages"]),
    ("Books", ["Fiction", "Cooking", "Children", "Business"]),
];
const LEAVES: [&str; 3] = ["Classic", "Premium", "Essentials"];
const BRANDS: [&str; 10] = [
    "Northwind",
    "Contoso",
    "Fabrikam",
    "Tailspin",
    "Litware",
    "Adatum",
    "Proseware",
    "Wingtip",
    "Lucerne",
    "Alpine",
];

/// (country, currency, weight)
const COUNTRIES: [(&str, &str, u32); 8] = [
    ("US", "USD", 50),
    ("GB", "GBP", 12),
    ("DE", "EUR", 10),
    ("FR", "EUR", 8),
    ("CA", "CAD", 6),
    ("AU", "AUD", 5),
    ("JP", "JPY", 5),
    ("NL", "EUR", 4),
];
const DEVICES: [(&str, &str, u32); 3] = [
    (
        "mobile",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
        55,
    ),
    (
        "desktop",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36",
        38,
    ),
    ("tablet", "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Tablet", 7),
];
/// Marketing source of a session: (utm_source, utm_medium, utm_campaign); `None` is direct.
type Campaign = Option<(&'static str, &'static str, &'static str)>;
const SOURCES: [(Campaign, u32); 5] = [
    (None, 45),
    (Some(("google", "cpc", "brand-search")), 20),
    (Some(("newsletter", "email", "weekly-deals")), 12),
    (Some(("instagram", "social", "spring-lookbook")), 13),
    (Some(("partner-blog", "referral", "gift-guide")), 10),
];
const PROMOTIONS: [(&str, &str, &str); 6] = [
    ("spring-sale", "Spring Sale", "hero-banner"),
    ("free-shipping", "Free Shipping over 50", "top-strip"),
    ("bundle-audio", "Audio Bundle", "sidebar"),
    ("new-arrivals", "New Arrivals", "hero-banner"),
    ("loyalty-x2", "Double Points", "checkout"),
    ("clearance", "Clearance", "category-tile"),
];
const SEARCHES: [&str; 8] = [
    "running shoes",
    "wireless earbuds",
    "coffee beans",
    "yoga mat",
    "rain jacket",
    "desk lamp",
    "gift for dad",
    "lego",
];

pub struct Product {
    pub id: String,
    pub name: String,
    pub category: String,
    pub brand: &'static str,
    /// Price in USD cents; other currencies scale it.
    pub price_cents: i64,
}

pub fn catalog(rng: &mut StdRng) -> Vec<Product> {
    let mut products = Vec::new();
    for (department, subcategories) in DEPARTMENTS {
        for subcategory in subcategories {
            for leaf in LEAVES {
                for index in 0..rng.random_range(4..=7) {
                    let id = format!("sku-{:05}", products.len() + 1);
                    products.push(Product {
                        name: format!("{leaf} {subcategory} {}", index + 1),
                        category: format!("{department} > {subcategory} > {leaf}"),
                        brand: BRANDS.choose(rng).copied().unwrap_or("Northwind"),
                        price_cents: rng.random_range(3..=400) * 100
                            - if rng.random_bool(0.6) { 1 } else { 0 },
                        id,
                    });
                }
            }
        }
    }
    products
}

fn weighted<'a, T>(rng: &mut StdRng, items: &'a [(T, u32)]) -> &'a T {
    let total: u32 = items.iter().map(|(_, weight)| weight).sum();
    let mut pick = rng.random_range(0..total);
    for (item, weight) in items {
        if pick < *weight {
            return item;
        }
        pick -= weight;
    }
    &items[0].0
}

/// Converts a USD price into the session currency, rounded to that currency's minor unit.
fn price_in(currency: &str, usd_cents: i64) -> Value {
    match currency {
        "JPY" => json!((usd_cents * 150 / 100).to_string()),
        "EUR" => json!(format!("{:.2}", (usd_cents * 92 / 100) as f64 / 100.0)),
        "GBP" => json!(format!("{:.2}", (usd_cents * 79 / 100) as f64 / 100.0)),
        "CAD" => json!(format!("{:.2}", (usd_cents * 137 / 100) as f64 / 100.0)),
        "AUD" => json!(format!("{:.2}", (usd_cents * 152 / 100) as f64 / 100.0)),
        _ => json!(format!("{:.2}", usd_cents as f64 / 100.0)),
    }
}

pub struct ShopGenerator {
    rng: StdRng,
    products: Vec<Product>,
    seed: u64,
    next_event: u64,
    next_session: u64,
    next_order: u64,
    store: String,
    /// Orders that may still be refunded: (order id, currency, lines).
    recent_orders: Vec<(String, String, Vec<Value>, String)>,
}

impl ShopGenerator {
    pub fn new(seed: u64, store: &str) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let products = catalog(&mut rng);
        Self {
            rng,
            products,
            seed,
            next_event: 0,
            next_session: 0,
            next_order: 0,
            store: store.to_owned(),
            recent_orders: Vec::new(),
        }
    }

    pub fn product_count(&self) -> usize {
        self.products.len()
    }

    /// One visitor session's events, in order, the last one at `now_ms` (a live shop sees
    /// sessions as they finish, never events from the future).
    pub fn session(&mut self, now_ms: i64) -> Vec<Value> {
        let mut events = self.session_from(now_ms);
        let last = events.last().and_then(|event| event["timestamp"].as_i64()).unwrap_or(now_ms);
        let shift = last - now_ms;
        for event in &mut events {
            if let Some(time) = event["timestamp"].as_i64() {
                event["timestamp"] = json!(time - shift);
            }
        }
        events
    }

    fn session_from(&mut self, now_ms: i64) -> Vec<Value> {
        self.next_session += 1;
        let session_id = format!("s-{}-{}", self.seed, self.next_session);
        let anonymous_id = format!("a-{}-{}", self.seed, self.rng.random_range(0..50_000));
        let user_id =
            self.rng.random_bool(0.4).then(|| format!("u-{}", self.rng.random_range(0..20_000)));
        let (country, currency, _) =
            *weighted(&mut self.rng, &COUNTRIES.map(|c| ((c.0, c.1, c.2), c.2)));
        let (device, agent, _) = *weighted(&mut self.rng, &DEVICES.map(|d| ((d.0, d.1, d.2), d.2)));
        let source = *weighted(&mut self.rng, &SOURCES);
        let mut events = Vec::new();
        let mut clock = now_ms;
        let base = |generator: &mut ShopGenerator, event_type: &str, clock: i64| -> Value {
            generator.next_event += 1;
            let mut event = json!({
                "event_id": format!("lg-{}-{}", generator.seed, generator.next_event),
                "type": event_type,
                "store": generator.store,
                "timestamp": clock,
                "anonymous_id": anonymous_id,
                "session_id": session_id,
                "country": country,
                "device": { "type": device, "user_agent": agent },
            });
            if let Some(user_id) = &user_id {
                event["user_id"] = json!(user_id);
            }
            event
        };

        let landing = "https://shop.example/".to_owned();
        let mut page = base(self, "page_view", clock);
        page["page"] = json!({ "url": landing, "path": "/", "title": "Home" });
        if let Some((utm_source, utm_medium, campaign)) = source {
            page["marketing"] = json!({ "utm_source": utm_source, "utm_medium": utm_medium, "utm_campaign": campaign });
        }
        events.push(page);
        if user_id.is_some() && self.rng.random_bool(0.3) {
            clock += 800;
            events.push(base(self, "identify", clock));
        }

        let mut clicked_promotion = None;
        if self.rng.random_bool(0.35) {
            let (id, name, position) = *PROMOTIONS.choose(&mut self.rng).unwrap_or(&PROMOTIONS[0]);
            clock += 500;
            let mut view = base(self, "promotion_view", clock);
            view["promotion"] = json!({ "id": id, "name": name, "position": position });
            events.push(view);
            if self.rng.random_bool(0.25) {
                clock += 1500;
                let mut click = base(self, "promotion_click", clock);
                click["promotion"] = json!({ "id": id, "name": name, "position": position });
                events.push(click);
                clicked_promotion = Some(id);
            }
        }
        if self.rng.random_bool(0.25) {
            clock += 2000;
            let mut search = base(self, "search", clock);
            search["query"] = json!(SEARCHES.choose(&mut self.rng).copied().unwrap_or("shoes"));
            events.push(search);
        }
        let viewed: Vec<usize> = (0..self.rng.random_range(1..=5))
            .map(|_| self.rng.random_range(0..self.products.len()))
            .collect();
        let category = self.products[viewed[0]].category.clone();
        clock += 1500;
        // Trackers send a page view for every page load, and the commerce event beside it.
        let mut listing = base(self, "page_view", clock);
        listing["page"] = json!({
            "url": format!("https://shop.example/c/{}", slug(&category)),
            "title": category,
        });
        events.push(listing);
        let mut list = base(self, "product_list_view", clock);
        list["list"] = json!({ "id": "category", "category": category });
        events.push(list);
        let mut cart = Vec::new();
        for &index in &viewed {
            clock += self.rng.random_range(2000..20_000);
            let product = self.product_json(index, currency, 1);
            let product_page =
                json!({ "url": format!("https://shop.example/p/{}", self.products[index].id) });
            let mut page_load = base(self, "page_view", clock);
            page_load["page"] = product_page.clone();
            events.push(page_load);
            let mut view = base(self, "product_view", clock);
            view["product"] = product.clone();
            view["page"] = product_page;
            events.push(view);
            if self.rng.random_bool(0.3) {
                let quantity =
                    if self.rng.random_bool(0.8) { 1 } else { self.rng.random_range(2..=4) };
                clock += 3000;
                let mut add = base(self, "add_to_cart", clock);
                add["product"] = self.product_json(index, currency, quantity);
                events.push(add);
                cart.push((index, quantity));
            }
        }
        if cart.len() > 1 && self.rng.random_bool(0.15) {
            let (index, quantity) = cart.remove(0);
            clock += 4000;
            let mut remove = base(self, "remove_from_cart", clock);
            remove["product"] = self.product_json(index, currency, quantity);
            events.push(remove);
        }
        if cart.is_empty() || !self.rng.random_bool(0.55) {
            return events;
        }
        let lines: Vec<Value> = cart
            .iter()
            .map(|&(index, quantity)| self.product_json(index, currency, quantity))
            .collect();
        clock += 10_000;
        let mut checkout_page = base(self, "page_view", clock);
        checkout_page["page"] =
            json!({ "url": "https://shop.example/checkout", "title": "Checkout" });
        events.push(checkout_page);
        let mut checkout = base(self, "checkout_started", clock);
        checkout["order"] = json!({ "currency": currency });
        checkout["items"] = json!(lines);
        events.push(checkout);
        if !self.rng.random_bool(0.7) {
            return events;
        }
        self.next_order += 1;
        let order_id = format!("o-{}-{}", self.seed, self.next_order);
        clock += 30_000;
        let mut purchase = base(self, "purchase", clock);
        let mut order = json!({ "id": order_id, "currency": currency, "shipping": if currency == "JPY" { json!("500") } else { json!("4.99") } });
        if let Some(user_id) = &user_id {
            order["customer_id"] = json!(user_id);
        }
        if self.rng.random_bool(0.3) {
            order["sales_rep_id"] = json!(format!("rep-{:02}", self.rng.random_range(1..=12)));
        }
        if let Some(promotion) = clicked_promotion {
            order["coupon"] = json!(promotion.to_uppercase());
            purchase["promotion"] = json!({ "id": promotion });
        }
        purchase["order"] = order;
        purchase["items"] = json!(lines);
        events.push(purchase);
        self.recent_orders.push((order_id, currency.to_owned(), lines, session_id.clone()));
        if self.recent_orders.len() > 200 {
            self.recent_orders.remove(0);
        }
        // Now and then an earlier order comes back.
        if self.rng.random_bool(0.08) && !self.recent_orders.is_empty() {
            let pick = self.rng.random_range(0..self.recent_orders.len());
            let (order_id, currency, lines, _) = self.recent_orders.swap_remove(pick);
            clock += 1000;
            let mut refund = base(self, "refund", clock);
            refund["order"] = json!({ "id": order_id, "currency": currency });
            if lines.len() > 1 && self.rng.random_bool(0.5) {
                refund["items"] = json!([lines[0]]);
            }
            events.push(refund);
        }
        events
    }

    fn product_json(&self, index: usize, currency: &str, quantity: u32) -> Value {
        let product = &self.products[index];
        json!({
            "id": product.id,
            "name": product.name,
            "category": product.category,
            "brand": product.brand,
            "price": price_in(currency, product.price_cents),
            "currency": currency,
            "quantity": quantity,
        })
    }
}

/// `"Apparel > Shoes"` → `"apparel-shoes"`, for category page URLs.
fn slug(category: &str) -> String {
    let mut slug = String::with_capacity(category.len());
    for word in category.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()) {
        if !slug.is_empty() {
            slug.push('-');
        }
        slug.push_str(&word.to_ascii_lowercase());
    }
    slug
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generator sends what shops send, so ingest's fast reader must take all of it, and
    /// read it as serde does (see `storepulse_model::decode::WalkElement`).
    #[test]
    fn every_generated_event_takes_the_fast_reader() {
        use storepulse_model::decode::WalkElement;
        use storepulse_model::raw::RawEvent;
        let mut generator = ShopGenerator::new(11, "default");
        for _ in 0..300 {
            for event in generator.session(1_700_000_000_000) {
                let json = event.to_string();
                let mut fast = RawEvent::default();
                let length = <RawEvent as WalkElement>::read_fast(&json, &mut fast)
                    .unwrap_or_else(|| panic!("the fast reader declined {json}"));
                assert_eq!(length, json.len());
                let slow: RawEvent = serde_json::from_str(&json).unwrap();
                assert_eq!(format!("{fast:?}"), format!("{slow:?}"));
            }
        }
    }

    #[test]
    fn category_pages_have_readable_slugs() {
        assert_eq!(slug("Apparel > Shoes > Running"), "apparel-shoes-running");
        assert_eq!(slug("Home & Garden > Lamps"), "home-garden-lamps");
    }

    #[test]
    fn same_seed_same_events() {
        let mut first = ShopGenerator::new(7, "default");
        let mut second = ShopGenerator::new(7, "default");
        for _ in 0..50 {
            assert_eq!(first.session(1_700_000_000_000), second.session(1_700_000_000_000));
        }
    }

    #[test]
    fn sessions_end_now_and_never_in_the_future() {
        let mut generator = ShopGenerator::new(9, "default");
        for _ in 0..100 {
            let events = generator.session(1_700_000_000_000);
            let times: Vec<i64> =
                events.iter().map(|event| event["timestamp"].as_i64().unwrap()).collect();
            assert_eq!(*times.last().unwrap(), 1_700_000_000_000);
            assert!(times.windows(2).all(|pair| pair[0] <= pair[1]));
        }
    }

    #[test]
    fn the_catalog_has_hundreds_of_products_in_a_tree() {
        let generator = ShopGenerator::new(1, "default");
        assert!(generator.product_count() >= 300, "{}", generator.product_count());
        assert!(
            generator.products.iter().all(|product| product.category.matches(" > ").count() == 2)
        );
    }

    #[test]
    fn sessions_reach_every_event_type() {
        let mut generator = ShopGenerator::new(3, "default");
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..2000 {
            for event in generator.session(1_700_000_000_000) {
                seen.insert(event["type"].as_str().unwrap().to_owned());
            }
        }
        for expected in [
            "page_view",
            "identify",
            "promotion_view",
            "promotion_click",
            "search",
            "product_list_view",
            "product_view",
            "add_to_cart",
            "remove_from_cart",
            "checkout_started",
            "purchase",
            "refund",
        ] {
            assert!(seen.contains(expected), "{expected} never generated");
        }
    }
}
