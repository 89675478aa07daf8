//! Wall-clock engine apply on the `apply` bench's mix, for comparing builds on a noisy
//! machine: many rounds, each on a fresh engine, reporting the fastest and the median round
//! (noise only ever adds time, so the fastest round is the steadiest figure). Only applying is
//! timed, not making or dropping the engine.
//! `cargo run --release -p storepulse-engine --example apply_timing [ROUNDS] [fresh] [warm]`.
//!
//! With `fresh`, each 1,000 events are copied just before they are applied (the copy and the
//! drop untimed), as the server's applier gets a request's events moments after they were
//! decoded, still in cache; without it the rounds read a pool of 100,000 events (~50 MB: 456
//! bytes each, and their strings) that is not, so they also time fetching the input from
//! memory.
//!
//! With `warm`, each round's engine first applies, untimed, the 100,000 events before the timed
//! ones (the same 20,000 visitors, 200 s earlier), as a running server's engine has: its
//! tables are grown and its visitors, sessions and products known. Without it, each round
//! starts from an empty engine and also times growing every table from nothing.

#[path = "../benches/events/mod.rs"]
#[allow(dead_code)]
mod events;

// The server's allocator, so the figures are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};
use storepulse_engine::{Engine, EngineConfig};

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(15);
    let fresh = std::env::args().any(|arg| arg == "fresh");
    let warm = std::env::args().any(|arg| arg == "warm");
    let mut events = events::mixed_workload(if warm { 200_000 } else { 100_000 });
    let before = events.drain(..events.len() - 100_000).collect::<Vec<_>>();
    let mut times: Vec<Duration> = Vec::with_capacity(rounds);
    for _ in 0..rounds.max(1) {
        let mut engine = Engine::new(EngineConfig::default());
        for event in &before {
            engine.apply(event);
        }
        engine.settle();
        let mut applying = Duration::ZERO;
        if fresh {
            for request in events.chunks(1000) {
                let decoded = request.to_vec();
                let started = Instant::now();
                for event in &decoded {
                    engine.apply(event);
                }
                applying += started.elapsed();
            }
        } else {
            let started = Instant::now();
            for event in &events {
                engine.apply(event);
            }
            applying = started.elapsed();
        }
        // The work applying deferred (sketch inserts) is part of applying.
        let started = Instant::now();
        engine.settle();
        applying += started.elapsed();
        times.push(applying);
        assert_eq!(engine.events_applied(), (before.len() + events.len()) as u64);
    }
    times.sort_unstable();
    let rate = |time: Duration| events.len() as f64 / time.as_secs_f64() / 1e6;
    println!(
        "engine apply{}{}: fastest {:.3} M events/s, median {:.3} M events/s ({} rounds)",
        if warm { " (warm engine)" } else { "" },
        if fresh { " (fresh input)" } else { "" },
        rate(times[0]),
        rate(times[times.len() / 2]),
        times.len(),
    );
}
