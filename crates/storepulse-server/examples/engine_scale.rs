//! The engine at shop scale: applies N events of `storepulse loadgen`'s shop traffic (default
//! 100 million, about a million a simulated day), then reports apply throughput, memory by
//! part, the snapshot's size and encode/decode times (the restart cost) and the issue-3 query
//! (a 30-day daily series grouped by category with two filters) on the restored engine, and
//! the longest the engine was held at once (the server's queries and acknowledgements wait
//! that long).
//!
//! ```sh
//! cargo run --release -p storepulse-server --example engine_scale -- 100000000
//! ENGINE_SCALE_FRESH_INPUT=1 cargo run ... # events copied just before they are applied
//! ```
//!
//! The events are real loadgen sessions decoded and validated like ingest does; to reach
//! 100 million without generating each one, a pool of one simulated day is replayed day after
//! day with its sessions, anonymous visitors and orders renamed per day (signed-in users keep
//! their ids: they come back). Pruning runs on the simulated clock as the server's housekeeping
//! would. Figures go to docs/performance.md.

use std::time::{Duration, Instant};

use compact_str::{CompactString, format_compact};
use storepulse_engine::engine::RealtimeFilter;
use storepulse_engine::{
    Dimension, Engine, EngineConfig, Filters, Granularity, HistoryPart, Metric, QuerySpec,
};
use storepulse_model::event::{DeviceType, Event};
use storepulse_model::limits::Limits;
use storepulse_model::money::Currency;
use storepulse_model::time::Timestamp;
use storepulse_model::validate::{ValidationContext, decode_native_event};
use storepulse_server::loadgen::shop::ShopGenerator;

// The server's allocator, so the figures are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DAY_MS: i64 = 86_400_000;
/// 2026-11-01T00:00:00Z.
const START_MS: i64 = 1_793_491_200_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("restore") {
        restore(&args[2], args[3].parse().expect("a time"));
        return;
    }
    let total: u64 = args.get(1).map_or(100_000_000, |n| n.parse().expect("a count"));
    let per_day: usize = args.get(2).map_or(1_000_000, |n| n.parse().expect("a count"));
    let started = Instant::now();
    let pool = day_pool(per_day);
    println!(
        "pool: {} events of one simulated day, generated and validated in {:.1?}",
        pool.len(),
        started.elapsed()
    );

    // The server's applier gets a request's events moments after they were decoded, so they
    // are still in cache; this loop's pool of a million events is not. With
    // ENGINE_SCALE_FRESH_INPUT=1 each 1,000 events are copied just before they are applied
    // (the copy untimed), which separates the engine's own cache misses from reading its input.
    let fresh_input = std::env::var_os("ENGINE_SCALE_FRESH_INPUT").is_some();
    // ENGINE_SCALE_ROUNDS=N applies the same events N times, each time into a fresh engine, and
    // reports every round's rate and the fastest: builds compared that way share one pool and
    // one machine state, where separate runs differ by a fifth on these machines. The report
    // below is of the last round.
    let rounds: usize = std::env::var("ENGINE_SCALE_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or(1)
        .max(1);
    let mut rates = Vec::with_capacity(rounds);
    let mut run = None;
    for round in 1..=rounds {
        // The round before is dropped first, so that rounds start from the same heap.
        drop(run.take());
        let this = apply_days(&pool, total, fresh_input);
        if rounds > 1 {
            // Both: a change that moves work from applying into housekeeping (which the
            // server runs on the same engine, a second at a time) must not look like a gain.
            println!(
                "round {round}: {:.3} M events/s ({:.3} M with housekeeping)",
                this.rate() / 1e6,
                this.rate_with_housekeeping() / 1e6
            );
        }
        rates.push(this.rate());
        run = Some(this);
    }
    drop(pool);
    let run = run.expect("at least one round");
    if rounds > 1 {
        rates.sort_by(f64::total_cmp);
        println!(
            "{rounds} rounds: fastest {:.3} M events/s, median {:.3} M events/s",
            rates[rounds - 1] / 1e6,
            rates[rounds / 2] / 1e6
        );
    }
    let (applied, day, applying, pruning) = (run.applied, run.day, run.applying, run.pruning);
    let (longest_apply, longest_history_part) = (run.longest_apply, run.longest_history_part);
    let (longest_history, cpu) = (run.longest_history, run.cpu);
    let mut engine = run.engine;
    let now = Timestamp(START_MS + day * DAY_MS);
    // Distinct figures merge the daily sketches of every row a query admits.
    let mut visitors = issue_query(now);
    visitors.metrics = vec![Metric::Visitors, Metric::Sessions];
    visitors.group_by = None;
    let (median, _) = timed(5, || engine.query(&visitors));
    println!("30-day daily visitors and sessions, two filters: median {median:.2?}");
    // Grouped by country, every row is admitted: its sketches are merged into its day's and
    // country's cell.
    let mut by_country = visitors.clone();
    by_country.filters = Filters::default();
    by_country.group_by = Some(Dimension::Country);
    let (median, _) = timed(3, || engine.query(&by_country));
    println!("30-day daily visitors and sessions by country: median {median:.2?}");
    engine.prune(now);
    let stats = engine.stats();
    println!(
        "applied {applied} events over {day} simulated days in {:.1?} ({:.2} M events/s on one \
         core; pruning another {:.1?}, {:.2} M events/s with it)",
        applying,
        applied as f64 / applying.as_secs_f64() / 1e6,
        pruning,
        applied as f64 / (applying + pruning).as_secs_f64() / 1e6
    );
    println!(
        "longest hold of the engine: {longest_apply:.1?} applying one {}-event group, \
         {longest_history_part:.1?} in one part of a day-scale retention pass \
         ({longest_history:.1?} for a whole pass)",
        if fresh_input { 1000 } else { 4096 }
    );
    if let Some((user, kernel)) = cpu {
        // The kernel's share is page faults on memory the process touches for the first time
        // (the engine's growth, the day's renamed events): on these VMs a hypervisor fault
        // per page, see docs/performance.md.
        println!(
            "this thread over the loop (applying, pruning, renaming the day's events): \
             {user:.2} s user, {kernel:.2} s kernel"
        );
    }
    println!("engine: {}", serde_json::to_string_pretty(&stats).expect("stats serialize"));

    let started = Instant::now();
    let mut bytes = Vec::new();
    storepulse_engine::snapshot::encode(&engine, &mut bytes).expect("encodes");
    let encoded = started.elapsed();
    let path = std::env::temp_dir().join(format!("engine-scale-{}.snapshot", std::process::id()));
    // Synced, as the server writes its snapshots, so that the restore below reads a file the
    // kernel has finished writing back, as a restarted server does.
    let started = Instant::now();
    let mut file = std::fs::File::create(&path).expect("the snapshot is created");
    std::io::Write::write_all(&mut file, &bytes).expect("the snapshot is written");
    file.sync_all().expect("the snapshot is synced");
    drop(file);
    let written = started.elapsed();
    println!(
        "snapshot: {} MB, encoded in {encoded:.1?}, written and synced in {written:.1?}",
        bytes.len() / 1_000_000
    );
    drop(bytes);
    let answers = answers(&engine, now);
    drop(engine);

    // The restart, in a fresh process, as the server does it: read the file, decode.
    let output = std::process::Command::new(std::env::current_exe().expect("own path"))
        .args(["restore", &path.to_string_lossy(), &now.0.to_string()])
        .output()
        .expect("the restore runs");
    if std::env::var_os("ENGINE_SCALE_KEEP_SNAPSHOT").is_some() {
        println!(
            "snapshot kept: {} (restore it: engine_scale restore <path> {})",
            path.display(),
            now.0
        );
    } else {
        let _ = std::fs::remove_file(&path);
    }
    let report = String::from_utf8_lossy(&output.stdout);
    print!("{report}");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        report.contains(&format!("answers {answers}")),
        "the restored engine answers as before"
    );
}

/// One pass over `total` events into a fresh engine, and what it cost.
struct Run {
    engine: Engine,
    applied: u64,
    day: i64,
    applying: Duration,
    pruning: Duration,
    longest_apply: Duration,
    longest_history: Duration,
    longest_history_part: Duration,
    /// User and kernel seconds of this thread over the loop.
    cpu: Option<(f64, f64)>,
}

impl Run {
    /// Events applied per second of applying.
    fn rate(&self) -> f64 {
        self.applied as f64 / self.applying.as_secs_f64()
    }

    /// Events per second of applying and pruning together.
    fn rate_with_housekeeping(&self) -> f64 {
        self.applied as f64 / (self.applying + self.pruning).as_secs_f64()
    }
}

/// Applies `total` events of `pool`'s day, renamed day after day, with the server's pruning
/// on the simulated clock.
fn apply_days(pool: &[Event], total: u64, fresh_input: bool) -> Run {
    let mut engine = Engine::new(EngineConfig::default());
    let mut applying = Duration::ZERO;
    let mut pruning = Duration::ZERO;
    // What holds the server's engine lock longest: one request's events (1,000 with fresh
    // input, else a chunk of 4,096) and one part of a day-scale retention pass (the server
    // runs one part per housekeeping tick); the whole pass is reported beside it.
    let mut longest_apply = Duration::ZERO;
    let mut longest_history = Duration::ZERO;
    let mut longest_history_part = Duration::ZERO;
    let mut applied = 0u64;
    let mut day = 0i64;
    let mut renamed = pool.to_vec();
    let cpu_before = thread_cpu();
    while applied < total {
        rename_for_day(pool, &mut renamed, day);
        let count = (total - applied).min(renamed.len() as u64) as usize;
        // Housekeeping on the simulated clock: live windows every few thousand events,
        // day-scale retention four times a simulated day.
        for (chunk_index, chunk) in renamed[..count].chunks(4096).enumerate() {
            if fresh_input {
                for request in chunk.chunks(1000) {
                    let decoded = request.to_vec();
                    let started = Instant::now();
                    for event in &decoded {
                        engine.apply(event);
                    }
                    let took = started.elapsed();
                    applying += took;
                    longest_apply = longest_apply.max(took);
                }
            } else {
                let started = Instant::now();
                for event in chunk {
                    engine.apply(event);
                }
                let took = started.elapsed();
                applying += took;
                longest_apply = longest_apply.max(took);
            }
            let now = Timestamp(chunk.last().map_or(0, |event| event.event_time.0));
            let started = Instant::now();
            engine.prune_live(now);
            if chunk_index % 64 == 63 && (chunk_index / 64) % 4 == 0 {
                let history_started = Instant::now();
                for part in HistoryPart::ALL {
                    let part_started = Instant::now();
                    engine.prune_history_part(now, part);
                    longest_history_part = longest_history_part.max(part_started.elapsed());
                }
                longest_history = longest_history.max(history_started.elapsed());
            }
            pruning += started.elapsed();
        }
        applied += count as u64;
        day += 1;
        if day % 10 == 0 {
            println!(
                "{applied} events ({day} days): {:.2} M events/s applying, engine estimate {} MB",
                applied as f64 / applying.as_secs_f64() / 1e6,
                engine.stats().approx_memory_bytes / 1_000_000
            );
        }
    }
    // What applying deferred and has not done yet (up to a batch of sketch inserts) is part of
    // applying: any read would do it first.
    let started = Instant::now();
    engine.settle();
    let took = started.elapsed();
    applying += took;
    longest_apply = longest_apply.max(took);
    let cpu = thread_cpu().map(|after| {
        let before = cpu_before.unwrap_or_default();
        (after.0 - before.0, after.1 - before.1)
    });
    Run {
        engine,
        applied,
        day,
        applying,
        pruning,
        longest_apply,
        longest_history,
        longest_history_part,
        cpu,
    }
}

/// Loads a snapshot in this fresh process: the restart's time and the memory the engine
/// really holds (resident memory before and after), then the issue's query.
fn restore(path: &str, now: i64) {
    let resident = || storepulse_server::telemetry::resident_bytes().unwrap_or(0) as f64;
    let rss_before = resident();
    let started = Instant::now();
    // As the server loads it: sections decode while the next ones are read.
    let file = std::fs::File::open(path).expect("the snapshot is readable");
    let engine = storepulse_engine::snapshot::read(file).expect("decodes");
    let total = started.elapsed();
    let grown = resident() - rss_before;
    let events = engine.events_applied() as f64;
    println!(
        "restart: read and decode {total:.1?}; resident memory of the restored engine {:.0} MiB, \
         {:.0} MB per million events",
        grown / (1024.0 * 1024.0),
        grown / 1e6 / (events / 1e6)
    );
    let now = Timestamp(now);
    let spec = issue_query(now);
    let (median, max) = timed(50, || engine.query(&spec));
    println!(
        "30-day daily series by category, two filters: median {median:.2?}, max {max:.2?} over \
         50 runs"
    );
    // Session metrics by category come from the session trails: a walk over every one.
    let mut by_category = issue_query(now);
    by_category.metrics =
        vec![Metric::Sessions, Metric::ConversionRate, Metric::CartAbandonmentRate];
    by_category.filters = Filters::default();
    by_category.granularity = None;
    let (median, _) = timed(5, || engine.query(&by_category));
    println!(
        "30-day conversion and cart abandonment by category ({} session trails): median \
         {median:.2?}",
        engine.stats().session_trails
    );
    // Trending with the default weights (24 h half-life: 20 half-lives back, minutes for two
    // days, hours for the rest of the week, days before).
    let weights = storepulse_engine::trending::TrendingWeights::default();
    let (median, max) =
        timed(20, || Ok::<_, ()>(engine.trending(now, &weights, &Filters::default(), 10)));
    println!("trending products, top 10: median {median:.2?}, max {max:.2?} over 20 runs");
    println!("answers {}", answers(&engine, now));
}

/// The median and the longest of `runs` runs of `query`.
fn timed<T, E: std::fmt::Debug>(
    runs: usize,
    query: impl Fn() -> Result<T, E>,
) -> (Duration, Duration) {
    let mut timings: Vec<Duration> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(query().expect("valid query"));
            started.elapsed()
        })
        .collect();
    timings.sort();
    (timings[runs / 2], timings[runs - 1])
}

/// A digest of the engine's answers (the issue's query and the realtime figures), to show
/// the restored engine answers as the one that wrote the snapshot.
fn answers(engine: &Engine, now: Timestamp) -> u64 {
    let query = engine.query(&issue_query(now)).expect("valid query");
    let realtime = engine.realtime(now, &RealtimeFilter::default(), 5, Currency::USD);
    // "Bought together" for the trending products, so that co-occurrence is compared too.
    let trending = engine.trending(
        now,
        &storepulse_engine::trending::TrendingWeights::default(),
        &Filters::default(),
        5,
    );
    let together: Vec<_> = trending
        .iter()
        .map(|product| engine.together_with_product(&product.product_id, None, 10))
        .collect();
    let text = format!(
        "{}{}{}",
        serde_json::to_string(&query).expect("serializes"),
        serde_json::to_string(&realtime).expect("serializes"),
        serde_json::to_string(&together).expect("serializes")
    );
    fnv1a(text.as_bytes())
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// This thread's CPU time so far, user and kernel, in seconds (Linux; `None` elsewhere).
fn thread_cpu() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the command (which may hold spaces) end with ')'; utime and stime are the
    // 14th and 15th fields, in clock ticks (100 a second on Linux).
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ').skip(11);
    let ticks = |field: Option<&str>| field?.parse::<f64>().ok().map(|t| t / 100.0);
    Some((ticks(fields.next())?, ticks(fields.next())?))
}

/// One simulated day of loadgen sessions, validated, in event-time order.
fn day_pool(events: usize) -> Vec<Event> {
    let limits = Limits::default();
    let new_id = || CompactString::from("generated");
    let received_at = Timestamp(START_MS + 10_000 * DAY_MS);
    let context = ValidationContext::for_trusted_events(received_at, &limits, &new_id);
    let mut generator = ShopGenerator::new(42, "demo");
    let mut sessions = Vec::new();
    let mut count = 0;
    while count < events {
        // ~12 events a session: spread the day's sessions evenly over it.
        let end = START_MS + (count as i64 * DAY_MS) / events as i64;
        let session = generator.session(end.max(START_MS + 60_000));
        count += session.len();
        sessions.push(session);
    }
    let mut pool: Vec<Event> = sessions
        .iter()
        .flatten()
        .map(|value| decode_native_event(&value.to_string(), &context).expect("loadgen is valid"))
        .collect();
    pool.sort_by_key(|event| event.event_time.0);
    pool
}

/// `renamed` = `pool` moved `day` days on, with that day's own sessions, anonymous visitors
/// and orders.
fn rename_for_day(pool: &[Event], renamed: &mut [Event], day: i64) {
    let suffix = |id: &CompactString| format_compact!("{id}~{day}");
    for (original, event) in pool.iter().zip(renamed.iter_mut()) {
        event.event_time = Timestamp(original.event_time.0 + day * DAY_MS);
        event.received_at = event.event_time;
        event.session_id = original.session_id.as_ref().map(suffix);
        event.anonymous_id = original.anonymous_id.as_ref().map(suffix);
        if let (Some(order), Some(original)) = (&mut event.order, &original.order) {
            order.id = original.id.as_ref().map(suffix);
        }
    }
}

/// Issue 3's query: a 30-day daily series grouped by top-level category, filtered by country
/// and device.
fn issue_query(now: Timestamp) -> QuerySpec {
    QuerySpec {
        metrics: vec![Metric::GrossRevenue, Metric::Orders, Metric::Units],
        from: Timestamp(now.0 - 30 * DAY_MS),
        to: now,
        granularity: Some(Granularity::Day),
        filters: Filters {
            country: Some("US".into()),
            device: Some(DeviceType::Mobile),
            ..Filters::default()
        },
        group_by: Some(Dimension::Category(1)),
        limit: 100,
        currency: Currency::USD,
        compare: false,
        previous: None,
    }
}
