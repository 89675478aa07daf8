//! A fixed engine workload for instruction counting, which unlike wall time is repeatable on
//! a noisy machine: `valgrind --tool=callgrind target/release/examples/apply_instructions`
//! (100,000 events of the `apply` bench's mix).

#[path = "../benches/events/mod.rs"]
#[allow(dead_code)]
mod events;

fn main() {
    let workload = events::mixed_workload(100_000);
    let mut engine = storepulse_engine::Engine::new(storepulse_engine::EngineConfig::default());
    for event in &workload {
        engine.apply(event);
    }
    println!("{} events applied", engine.events_applied());
}
