//! Property: a snapshot taken at any point, decoded and fed the rest of the events, answers
//! exactly like the engine that never stopped.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod mixed;

use mixed::{answers, event};
use proptest::prelude::*;
use storepulse_engine::{Engine, EngineConfig, snapshot};
use storepulse_model::event::Event;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn a_snapshot_anywhere_then_the_rest_equals_never_stopping(
        events in proptest::collection::vec((0usize..6, 0u8..12, 0u8..8, 0u16..240), 1..120),
        cut in 0usize..120,
    ) {
        let events: Vec<Event> = events.iter().enumerate().map(|(n, (k, v, p, m))| event(*k, *v, *p, *m, n)).collect();
        let cut = cut.min(events.len());
        let mut whole = Engine::new(EngineConfig::default());
        let mut first = Engine::new(EngineConfig::default());
        for event in &events {
            whole.apply(event);
        }
        for event in &events[..cut] {
            first.apply(event);
        }
        let mut bytes = Vec::new();
        snapshot::encode(&first, &mut bytes).unwrap();
        let mut restored = snapshot::decode(&bytes).unwrap();
        for event in &events[cut..] {
            restored.apply(event);
        }
        prop_assert_eq!(answers(&whole), answers(&restored));
    }
}
