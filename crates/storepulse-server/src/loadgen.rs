//! `storepulse loadgen`: send realistic traffic to a server and report what was acknowledged.
//!
//! Profiles: [`shop`] (a seeded shop: sessions that browse, search, cart, check out, buy and
//! sometimes refund, with promotions, countries, devices and sales reps) and [`realtime`]
//! (seed 3's mock generator, posted to `/ingest`). Events go to `/api/v1/events` in batches of
//! `--batch`; every request waits for its acknowledgement, so "acked" means durable.
//! `serve --demo` runs the shop profile against the server itself, into the `demo` store.
//!
//! Sends are paced on a grid of `--batch / --rate` seconds ([`Pacer`]); one that falls behind (a
//! paused server, every `--concurrency` request in flight) skips the ticks it missed instead
//! of sending them in a burst above `--rate`, and the report says how many. A 429 is retried
//! after the server's `Retry-After`, a few times at most ([`MAX_RATE_LIMITED_TRIES`]).

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
    /// 429 answers (each retried after its `Retry-After`, or given up on: see
    /// `rate_limited_given_up`). Not failures while a retry went through.
    pub rate_limited: u64,
    /// Requests still refused with 429 after [`MAX_RATE_LIMITED_TRIES`], or whose
    /// `Retry-After` ran past the end of the run (also counted in `failed_requests`).
    pub rate_limited_given_up: u64,
    /// Sends skipped because the run fell behind its pace (see [`Pacer`]), and by how much at
    /// most it was behind.
    pub skipped_sends: u64,
    pub max_behind: Duration,
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
        if self.rate_limited > 0 {
            text.push_str(&format!(
                "\nrate-limited {} times (429, retried after Retry-After); gave up on {} requests",
                self.rate_limited, self.rate_limited_given_up
            ));
        }
        if self.skipped_sends > 0 {
            text.push_str(&format!(
                "\nfell behind the rate by up to {:.1} s: skipped {} sends rather than burst to \
                 catch up",
                self.max_behind.as_secs_f64(),
                self.skipped_sends
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
    rate_limited: AtomicU64,
    rate_limited_given_up: AtomicU64,
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

/// Send times at a steady pace: one per `interval`, on a grid from the start. A send that is
/// due is made at once; when whole ticks have passed since it was due (the server paused, or
/// every permitted request was in flight), they are skipped and counted rather than sent back
/// to back: catching up would send far above the rate the run was asked for.
#[derive(Debug)]
struct Pacer {
    interval: Duration,
    next: Instant,
    skipped: u64,
    max_behind: Duration,
}

impl Pacer {
    fn new(start: Instant, interval: Duration) -> Self {
        Pacer { interval, next: start, skipped: 0, max_behind: Duration::ZERO }
    }

    /// When the next send is due, asked at `now`: in the future (wait for it) or at most one
    /// interval in the past (send at once).
    fn next_send(&mut self, now: Instant) -> Instant {
        let mut due = self.next;
        if now > due {
            let behind = now - due;
            self.max_behind = self.max_behind.max(behind);
            let missed = (behind.as_nanos() / self.interval.as_nanos().max(1)) as u64;
            if missed > 0 {
                self.skipped += missed;
                let missed_time = self.interval.as_nanos().saturating_mul(u128::from(missed));
                due += Duration::from_nanos(u64::try_from(missed_time).unwrap_or(u64::MAX));
            }
        }
        self.next = due + self.interval;
        due
    }
}

/// How often one request is sent while the server answers 429 (the first try included).
pub const MAX_RATE_LIMITED_TRIES: u32 = 5;
/// The longest `Retry-After` waited for; a longer one is waited for this long.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

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
    let mut pacer = (options.rate > 0).then(|| {
        Pacer::new(started, Duration::from_secs_f64(batch as f64 / f64::from(options.rate)))
    });
    let mut tasks = tokio::task::JoinSet::new();
    while Instant::now() < deadline {
        if let Some(pacer) = &mut pacer {
            let now = Instant::now();
            let send_at = pacer.next_send(now);
            if send_at > now {
                // Never past the deadline: a big batch at a low rate waits long between sends.
                tokio::time::sleep(send_at.min(deadline) - now).await;
                if Instant::now() >= deadline {
                    break;
                }
            }
        }
        let Ok(permit) = permits.clone().acquire_owned().await else { break };
        let events = source.lock().await.next_batch(batch);
        let client = client.clone();
        let url = url.clone();
        let counters = counters.clone();
        let latencies = latencies.clone();
        tasks.spawn(async move {
            let _permit = permit;
            send(&client, &url, events, batch, deadline, &counters, &latencies).await;
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
        rate_limited: counters.rate_limited.load(Ordering::Relaxed),
        rate_limited_given_up: counters.rate_limited_given_up.load(Ordering::Relaxed),
        skipped_sends: pacer.as_ref().map_or(0, |pacer| pacer.skipped),
        max_behind: pacer.as_ref().map_or(Duration::ZERO, |pacer| pacer.max_behind),
        latencies_us,
        first_failure: counters
            .first_failure
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take(),
    };
    Ok(report)
}

/// How long a 429 asks to wait: its `Retry-After` in seconds (1 s when it has none or one
/// this does not read, such as an HTTP date), at most [`MAX_RETRY_AFTER`].
fn retry_after(response: &reqwest::Response) -> Duration {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse::<u64>().ok())
        .map_or(Duration::from_secs(1), Duration::from_secs)
        .min(MAX_RETRY_AFTER)
}

async fn send(
    client: &reqwest::Client,
    url: &str,
    events: Vec<Value>,
    batch: usize,
    deadline: Instant,
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
    counters.sent.fetch_add(count, Ordering::Relaxed);
    let mut tries = 0;
    let (response, elapsed) = loop {
        let started = Instant::now();
        counters.requests.fetch_add(1, Ordering::Relaxed);
        tries += 1;
        let response = client.post(url).json(&body).send().await;
        let elapsed = started.elapsed().as_micros() as u64;
        match response {
            // Rate-limited: not a failure of the server, but a request to send later.
            Ok(response) if response.status() == reqwest::StatusCode::TOO_MANY_REQUESTS => {
                counters.rate_limited.fetch_add(1, Ordering::Relaxed);
                let wait = retry_after(&response);
                if tries < MAX_RATE_LIMITED_TRIES && Instant::now() + wait < deadline {
                    tokio::time::sleep(wait).await;
                    continue;
                }
                counters.rate_limited_given_up.fetch_add(1, Ordering::Relaxed);
                break (Ok(response), elapsed);
            }
            response => break (response, elapsed),
        }
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(100);

    /// After a pause (the server stalled for a second) the pacer sent every missed tick back to
    /// back, ten times `--rate` until it had caught up; it now skips them and counts them.
    #[test]
    fn a_pacer_that_fell_behind_skips_the_missed_ticks_instead_of_bursting() {
        let start = Instant::now();
        let mut pacer = Pacer::new(start, TICK);
        assert_eq!(pacer.next_send(start), start);
        assert_eq!(pacer.next_send(start + Duration::from_millis(10)), start + TICK);
        // Stalled until 1.05 s: due at 0.2 s, 8 ticks (0.2 … 0.9 s) missed; the one at 1.0 s
        // is sent at once, and the next waits for 1.1 s.
        let after_pause = start + Duration::from_millis(1_050);
        assert_eq!(pacer.next_send(after_pause), start + 10 * TICK);
        assert_eq!(pacer.next_send(after_pause), start + 11 * TICK);
        assert_eq!(pacer.skipped, 8);
        assert_eq!(pacer.max_behind, Duration::from_millis(850));
        // Late by less than a tick: sent at once, nothing skipped.
        assert_eq!(pacer.next_send(start + Duration::from_millis(1_250)), start + 12 * TICK);
        assert_eq!(pacer.next_send(start + Duration::from_millis(1_250)), start + 13 * TICK);
        assert_eq!(pacer.skipped, 8);
    }

    /// A 429 counted as a failed request and its events were lost to the run; it is retried
    /// after the server's `Retry-After` and counted apart.
    #[tokio::test]
    async fn a_rate_limited_request_is_retried_after_retry_after() {
        use axum::http::{HeaderValue, StatusCode, header};
        use axum::response::IntoResponse;
        let calls = Arc::new(AtomicU64::new(0));
        let app = axum::Router::new().route(
            "/api/v1/events",
            axum::routing::post({
                let calls = calls.clone();
                move || async move {
                    if calls.fetch_add(1, Ordering::Relaxed) == 0 {
                        let mut refusal =
                            (StatusCode::TOO_MANY_REQUESTS, "slow down").into_response();
                        refusal.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(1));
                        refusal
                    } else {
                        axum::Json(
                            serde_json::json!({"accepted": 1, "duplicates": 0, "rejected": []}),
                        )
                        .into_response()
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let options = LoadgenOptions {
            target: format!("http://{address}"),
            rate: 1,
            duration: Duration::from_millis(2_500),
            seed: 7,
            profile: Profile::Shop,
            batch: 1,
            concurrency: 1,
            store: "default".into(),
            quiet: true,
        };
        let started = Instant::now();
        let report = run(options).await.unwrap();
        assert!(started.elapsed() >= Duration::from_secs(1), "waited for Retry-After");
        assert_eq!((report.rate_limited, report.rate_limited_given_up), (1, 0), "{report:?}");
        assert_eq!(report.failed_requests, 0, "{report:?}");
        assert!(report.acked_events >= 1, "{report:?}");
        assert_eq!(report.acked_events, report.sent_events, "{report:?}");
        assert!(report.render().contains("rate-limited 1 times"), "{}", report.render());
    }
}
