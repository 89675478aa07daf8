//! Engine apply throughput on a realistic mix (page views, product views, carts, purchases
//! with several lines), one core: `cargo bench -p storepulse-engine --bench apply`. Timed on an
//! empty engine (`mixed_100k`: growing every table is part of it) and on one that has applied
//! the 100,000 events before (`mixed_100k_warm`: a running server's steady state).

#[allow(dead_code)] // each bench uses part of the shared builders
mod events;

// The server's allocator, so the figures are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use storepulse_engine::{Engine, EngineConfig};

fn apply(c: &mut Criterion) {
    let events = events::mixed_workload(100_000);
    let mut group = c.benchmark_group("engine_apply");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.sample_size(10);
    group.bench_function("mixed_100k", |b| {
        // Only applying is timed: the engine is made before and, returned, dropped after
        // (the server's engine lives as long as the server).
        b.iter_batched(
            || Engine::new(EngineConfig::default()),
            |mut engine| {
                for event in &events {
                    engine.apply(event);
                }
                // The work applying deferred (sketch inserts) is part of applying.
                engine.settle();
                engine
            },
            BatchSize::PerIteration,
        )
    });
    // A running server's engine: its tables grown, its visitors, sessions and products known
    // from the 100,000 events before (the same 20,000 visitors, 200 s earlier).
    let mut history = events::mixed_workload(200_000);
    let later = history.split_off(100_000);
    group.bench_function("mixed_100k_warm", |b| {
        b.iter_batched(
            || {
                let mut engine = Engine::new(EngineConfig::default());
                for event in &history {
                    engine.apply(event);
                }
                engine.settle();
                engine
            },
            |mut engine| {
                for event in &later {
                    engine.apply(event);
                }
                engine.settle();
                engine
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, apply);
criterion_main!(benches);
