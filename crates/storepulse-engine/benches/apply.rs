//! Engine apply throughput on a realistic mix (page views, product views, carts, purchases
//! with several lines), one core: `cargo bench -p storepulse-engine --bench apply`.

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
                engine
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, apply);
criterion_main!(benches);
