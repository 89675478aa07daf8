//! Property: applying events together ([`Engine::apply_all`], which loads what the next event
//! needs while it applies one) answers exactly like applying them one by one.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod mixed;

use mixed::{answers, event};
use proptest::prelude::*;
use storepulse_engine::{Engine, EngineConfig};
use storepulse_model::event::Event;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn applying_in_batches_equals_applying_one_by_one(
        events in proptest::collection::vec((0usize..6, 0u8..12, 0u8..8, 0u16..240), 1..120),
        batch in 1usize..40,
    ) {
        let events: Vec<Event> = events.iter().enumerate().map(|(n, (k, v, p, m))| event(*k, *v, *p, *m, n)).collect();
        let mut one_by_one = Engine::new(EngineConfig::default());
        for event in &events {
            one_by_one.apply(event);
        }
        let mut batched = Engine::new(EngineConfig::default());
        for events in events.chunks(batch) {
            batched.apply_all(events);
        }
        prop_assert_eq!(answers(&one_by_one), answers(&batched));
    }
}
