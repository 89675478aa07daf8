//! Seed 3's `mock_gen.py`, reproduced: 100 users (`user_<i>`) with sticky sessions; every
//! 5 seconds 5 users leave, 5 new ones (`user_<8 hex>`) arrive and 5 existing users start a new
//! session; every event is a `page_view` of one of twelve URLs with seed 3's weights.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

const PAGES: [(&str, u32); 12] = [
    ("/home", 5),
    ("/products/shoes", 2),
    ("/products/electronics", 3),
    ("/products/furniture", 1),
    ("/products/clothing", 3),
    ("/cart", 2),
    ("/checkout", 1),
    ("/blog/trends", 1),
    ("/blog/news", 1),
    ("/about", 1),
    ("/contact", 1),
    ("/faq", 1),
];

pub struct RealtimeGenerator {
    rng: StdRng,
    /// (user id, session id)
    users: Vec<(String, String)>,
    last_churn_ms: i64,
}

impl RealtimeGenerator {
    pub fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let users = (0..100).map(|index| (format!("user_{index}"), session_id(&mut rng))).collect();
        Self { rng, users, last_churn_ms: i64::MIN }
    }

    /// The next event in seed 3's `/ingest` shape.
    pub fn next_event(&mut self, now_ms: i64) -> Value {
        if self.last_churn_ms == i64::MIN {
            self.last_churn_ms = now_ms;
        }
        while now_ms - self.last_churn_ms >= 5000 {
            self.last_churn_ms += 5000;
            self.churn();
        }
        let index = self.rng.random_range(0..self.users.len());
        let (user_id, session_id) = &self.users[index];
        let total: u32 = PAGES.iter().map(|(_, weight)| weight).sum();
        let mut pick = self.rng.random_range(0..total);
        let mut page = PAGES[0].0;
        for (url, weight) in PAGES {
            if pick < weight {
                page = url;
                break;
            }
            pick -= weight;
        }
        let timestamp = storepulse_model::Timestamp(now_ms).to_rfc3339();
        json!({ "event_type": "page_view", "page_url": page, "user_id": user_id, "session_id": session_id, "timestamp": timestamp })
    }

    fn churn(&mut self) {
        for _ in 0..5 {
            if !self.users.is_empty() {
                let leaving = self.rng.random_range(0..self.users.len());
                self.users.swap_remove(leaving);
            }
        }
        for _ in 0..5 {
            let user = format!("user_{:08x}", self.rng.random::<u32>());
            let session = session_id(&mut self.rng);
            self.users.push((user, session));
        }
        for _ in 0..5 {
            let index = self.rng.random_range(0..self.users.len());
            self.users[index].1 = session_id(&mut self.rng);
        }
    }

    pub fn active_users(&self) -> usize {
        self.users.len()
    }
}

fn session_id(rng: &mut StdRng) -> String {
    uuid::Builder::from_random_bytes(rng.random()).into_uuid().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn churn_keeps_a_hundred_users() {
        let mut generator = RealtimeGenerator::new(1);
        let first = generator.next_event(0);
        assert_eq!(first["event_type"], "page_view");
        generator.next_event(60_000);
        assert_eq!(generator.active_users(), 100);
        assert!(generator.users.iter().any(|(user, _)| user.len() == "user_".len() + 8));
    }
}
