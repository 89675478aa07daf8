//! `storepulse loadgen`: send realistic traffic to a server and report what was acknowledged.
//!
//! Profiles: [`shop`] (a seeded shop: sessions that browse, search, cart, check out, buy and
//! sometimes refund, with promotions, countries, devices and sales reps) and [`realtime`]
//! (seed 3's mock generator, posted to `/ingest`). Events go to `/api/v1/events` in batches of
//! `--batch`; every request waits for its acknowledgement, so "acked" means durable.
//! `serve --demo` runs the shop profile against the server itself, into the `demo` store.

pub mod realtime;
pub mod shop;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{Mutex, Semaphore};

use crate::config::Config;
use crate::ingest::writer::now_unix_ms;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    Shop,
    Realtime,
}

#[derive(Clone, Debug)]
pub struct LoadgenOptions {
    pub target: String,
    /// Events per second; 0 = as fast as acknowledgements allow.
    pub rate: u32,
    pub duration: Duration,
    pub seed: u64,
    pub profile: Profile,
    pub batch: usize,
    pub concurrency: usize,
    pub store: String,
    pub quiet: bool,
}

impl LoadgenOptions {
    /// The gentle self-traffic of `serve --demo`.
    pub fn demo(config: &Config, address: SocketAddr) -> Self {
        let host = if address.ip().is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            address.ip().to_string()
        };
        Self {
            target: format!("http://{host}:{}", address.port()),
            rate: config.demo.events_per_second.max(1),
            duration: Duration::from_secs(100 * 365 * 24 * 3600),
            seed: now_unix_ms() as u64,
            profile: Profile::Shop,
            batch: 1,
            concurrency: 2,
            store: config.demo.store.clone(),
            quiet: true,
        }
    }
}

/// What a run achieved.
#[derive(Debug, Default)]
pub struct LoadgenReport {
    pub elapsed: Duration,
    pub sent_events: u64,
    pub acked_events: u64,
    pub duplicate_events: u64,
    pub rejected_events: u64,
    pub failed_requests: u64,
    pub requests: u64,
    /// Request latencies in microseconds, sorted.
    pub latencies_us: Vec<u64>,
    /// Why the first failed or refused request failed (connection refused, a status and its
    /// error body), so that a run that acknowledged nothing says why.
    pub first_failure: Option<String>,
}

impl LoadgenReport {
    pub fn percentile_ms(&self, percentile: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let rank = ((percentile / 100.0) * (self.latencies_us.len() - 1) as f64).round() as usize;
        self.latencies_us[rank.min(self.latencies_us.len() - 1)] as f64 / 1000.0
    }

    pub fn render(&self) -> String {
        let seconds = self.elapsed.as_secs_f64().max(1e-9);
        let latency = if self.latencies_us.is_empty() {
            "latency ms: n/a (no request succeeded)".to_owned()
        } else {
            format!(
                "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
                self.percentile_ms(50.0),
                self.percentile_ms(90.0),
                self.percentile_ms(99.0),
                self.percentile_ms(100.0),
            )
        };
        let mut text = format!(
            "requests {} ({:.0}/s), events sent {}, acked {} ({:.0}/s), duplicates {}, rejected {}, failed requests {}\n{latency}",
            self.requests,
            self.requests as f64 / seconds,
            self.sent_events,
            self.acked_events,
            self.acked_events as f64 / seconds,
            self.duplicate_events,
            self.rejected_events,
            self.failed_requests,
        );
        if self.duplicate_events > 0 {
            let all = if self.acked_events == 0 { "every event was" } else { "some events were" };
            text.push_str(&format!(
                "\nnote: {all} a duplicate of an earlier run with the same seed (event ids come \
                 from the seed), so the server kept them once; pass another --seed to store new \
                 events"
            ));
        }
        if let Some(why) = &self.first_failure {
            text.push_str(&format!("\nfirst failure: {why}"));
        }
        text
    }
}

enum Source {
    Shop(shop::ShopGenerator, VecDeque<Value>),
    Realtime(realtime::RealtimeGenerator),
}

impl Source {
    fn next_batch(&mut self, size: usize) -> Vec<Value> {
        let now = now_unix_ms();
        match self {
            Source::Shop(generator, pending) => {
                while pending.len() < size {
                    pending.extend(generator.session(now));
                }
                pending.drain(..size).collect()
            }
            Source::Realtime(generator) => (0..size).map(|_| generator.next_event(now)).collect(),
        }
    }
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    acked: AtomicU64,
    duplicates: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
    requests: AtomicU64,
    first_failure: std::sync::Mutex<Option<String>>,
}

impl Counters {
    fn failure(&self, why: impl FnOnce() -> String) {
        let mut first = self.first_failure.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if first.is_none() {
            *first = Some(why());
        }
    }
}

pub async fn run(options: LoadgenOptions) -> anyhow::Result<LoadgenReport> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(options.concurrency)
        .timeout(Duration::from_secs(30))
        .build()?;
    let source = Arc::new(Mutex::new(match options.profile {
        Profile::Shop => {
            Source::Shop(shop::ShopGenerator::new(options.seed, &options.store), VecDeque::new())
        }
        Profile::Realtime => Source::Realtime(realtime::RealtimeGenerator::new(options.seed)),
    }));
    // Seed 3's payload has no batch form: one event per POST /ingest.
    let (url, batch) = match (options.profile, options.batch) {
        (Profile::Realtime, 1) => (format!("{}/ingest", options.target.trim_end_matches('/')), 1),
        _ => (format!("{}/api/v1/events", options.target.trim_end_matches('/')), options.batch),
    };
    let counters = Arc::new(Counters::default());
    let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let permits = Arc::new(Semaphore::new(options.concurrency));
    let started = Instant::now();
    let deadline = started + options.duration;
    let interval =
        (options.rate > 0).then(|| Duration::from_secs_f64(batch as f64 / f64::from(options.rate)));
    let mut next_send = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    while Instant::now() < deadline {
        if let Some(interval) = interval {
            let now = Instant::now();
            if next_send > now {
                // Never past the deadline: a big batch at a low rate waits long between sends.
                tokio::time::sleep(next_send.min(deadline) - now).await;
                if Instant::now() >= deadline {
                    break;
                }
            }
            next_send += interval;
        }
        let Ok(permit) = permits.clone().acquire_owned().await else { break };
        let events = source.lock().await.next_batch(batch);
        let client = client.clone();
        let url = url.clone();
        let counters = counters.clone();
        let latencies = latencies.clone();
        tasks.spawn(async move {
            let _permit = permit;
            send(&client, &url, events, batch, &counters, &latencies).await;
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let mut latencies_us =
        std::mem::take(&mut *latencies.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
    latencies_us.sort_unstable();
    let report = LoadgenReport {
        elapsed: started.elapsed(),
        sent_events: counters.sent.load(Ordering::Relaxed),
        acked_events: counters.acked.load(Ordering::Relaxed),
        duplicate_events: counters.duplicates.load(Ordering::Relaxed),
        rejected_events: counters.rejected.load(Ordering::Relaxed),
        failed_requests: counters.failed.load(Ordering::Relaxed),
        requests: counters.requests.load(Ordering::Relaxed),
        latencies_us,
        first_failure: counters
            .first_failure
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take(),
    };
    Ok(report)
}

async fn send(
    client: &reqwest::Client,
    url: &str,
    events: Vec<Value>,
    batch: usize,
    counters: &Counters,
    latencies: &std::sync::Mutex<Vec<u64>>,
) {
    let count = events.len() as u64;
    // One event per request is posted as a plain object (the shape `/ingest` requires).
    let body = if batch == 1 {
        events.into_iter().next().unwrap_or(Value::Null)
    } else {
        Value::Array(events)
    };
    let started = Instant::now();
    counters.sent.fetch_add(count, Ordering::Relaxed);
    counters.requests.fetch_add(1, Ordering::Relaxed);
    let response = client.post(url).json(&body).send().await;
    let elapsed = started.elapsed().as_micros() as u64;
    match response {
        Ok(response) if response.status().is_success() => {
            latencies.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(elapsed);
            match response.json::<Value>().await {
                Ok(answer) if answer.get("accepted").is_some() => {
                    let accepted = answer["accepted"].as_u64().unwrap_or(0);
                    let duplicates = answer["duplicates"].as_u64().unwrap_or(0);
                    let rejected = answer["rejected"].as_array().map_or(0, Vec::len) as u64;
                    counters.acked.fetch_add(accepted, Ordering::Relaxed);
                    counters.duplicates.fetch_add(duplicates, Ordering::Relaxed);
                    counters.rejected.fetch_add(rejected, Ordering::Relaxed);
                }
                // `/ingest` answers {"status": "accepted", "id"} for its one event.
                Ok(_) => {
                    counters.acked.fetch_add(count, Ordering::Relaxed);
                }
                Err(error) => {
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    counters.failure(|| format!("unreadable answer: {error}"));
                }
            }
        }
        Ok(response) => {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            let why = || format!("{status}: {}", body.chars().take(300).collect::<String>());
            if status == reqwest::StatusCode::UNPROCESSABLE_ENTITY {
                counters.rejected.fetch_add(count, Ordering::Relaxed);
            } else {
                counters.failed.fetch_add(1, Ordering::Relaxed);
            }
            counters.failure(why);
        }
        Err(error) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            // reqwest's own text is terse ("error sending request"); its source says why.
            let source = std::error::Error::source(&error).map(ToString::to_string);
            counters.failure(|| match source {
                Some(source) => format!("{error}: {source}"),
                None => error.to_string(),
            });
        }
    }
}
