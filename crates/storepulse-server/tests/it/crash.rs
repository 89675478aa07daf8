//! End to end with the real binary: ingest under load, SIGKILL, restart, and find every
//! acknowledged event exactly once; and a graceful SIGTERM exits 0 with everything flushed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{free_port, read_log_offline, start, stop_gracefully};

/// Sends batches from several clients until `stop`; returns the ids the server acknowledged.
async fn load(port: u16, clients: usize, run_for: Duration) -> HashSet<String> {
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let client = reqwest::Client::new();
    let deadline = Instant::now() + run_for;
    let mut tasks = Vec::new();
    for worker in 0..clients {
        let client = client.clone();
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            let mut sequence = 0u64;
            while Instant::now() < deadline {
                let ids: Vec<String> = (0..20).map(|n| format!("w{worker}-{sequence}-{n}")).collect();
                sequence += 1;
                let events: Vec<serde_json::Value> = ids
                    .iter()
                    .map(|id| serde_json::json!({"event_id": id, "type": "page_view", "page": {"url": "/"}, "user_id": "u"}))
                    .collect();
                let response = client.post(format!("http://127.0.0.1:{port}/api/v1/events")).json(&events).send().await;
                match response {
                    Ok(response) if response.status().is_success() => {
                        acked.lock().unwrap().extend(ids);
                    }
                    // The server died mid-request: not acknowledged, nothing promised.
                    _ => break,
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    Arc::try_unwrap(acked).unwrap().into_inner().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = start(dir.path(), port);
    // Kill while requests are in flight.
    let loader = tokio::spawn(load(port, 8, Duration::from_secs(10)));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill().expect("SIGKILL");
    let _ = server.wait();
    let acked = loader.await.unwrap();
    assert!(acked.len() > 100, "the load reached the server ({} acked)", acked.len());

    // Restart on the same data, accept more, stop cleanly.
    let mut server = start(dir.path(), port);
    let after_restart = load(port, 2, Duration::from_millis(300)).await;
    assert!(!after_restart.is_empty(), "the restarted server accepts events");
    stop_gracefully(&mut server);

    let stored = read_log_offline(&dir.path().join("events"));
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for event in &stored {
        *counts.entry(event.event_id.as_str()).or_default() += 1;
    }
    let lost: Vec<&String> = acked
        .iter()
        .chain(after_restart.iter())
        .filter(|id| !counts.contains_key(id.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged events lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    let doubled: Vec<(&&str, &usize)> = counts.iter().filter(|(_, count)| **count > 1).collect();
    assert!(doubled.is_empty(), "events stored twice: {:?}", &doubled[..doubled.len().min(5)]);
    assert!(stored.iter().all(|event| event.event_id.starts_with('w')), "nothing invented");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_flushes_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = start(dir.path(), port);
    let acked = load(port, 2, Duration::from_millis(500)).await;
    let status = stop_gracefully(&mut server);
    assert!(status.success(), "exit status {status:?}");
    let stored: HashSet<String> = read_log_offline(&dir.path().join("events"))
        .into_iter()
        .map(|event| event.event_id.into())
        .collect();
    assert!(acked.iter().all(|id| stored.contains(id)));
}

/// The engine's numbers survive SIGKILL: the snapshot taken mid-way plus the log's tail
/// rebuild exactly what was there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_numbers_are_the_same_after_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let env = [("STOREPULSE_ENGINE__SNAPSHOT_INTERVAL", "1s")];
    let mut server = crate::support::start_with_env(dir.path(), port, &env);
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let send = |body: &'static str| {
        client
            .post(format!("{base}/api/v1/events"))
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
    };
    let day = include_str!("../fixtures/shop_day.ndjson");
    assert!(send(day).await.unwrap().status().is_success());
    // Let a scheduled snapshot happen, then add a tail it does not contain.
    let snapshot = dir.path().join("engine/snapshot.bin");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !snapshot.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(snapshot.exists(), "a scheduled snapshot was written");
    // In s2, which came from google.com before the snapshot: the purchase names no source, so
    // it counts under google.com only if the session's source survives.
    let tail = r#"{"event_id":"t1","type":"purchase","store":"north","timestamp":"2026-11-02T18:00:00Z","user_id":"u2","session_id":"s2","order":{"id":"o9"},"items":[{"id":"lamp","category":"Home > Lighting","price":"12.50"}]}"#;
    assert!(send(tail).await.unwrap().status().is_success());

    let queries = [
        "/api/v1/query?from=2026-11-02T00:00:00Z&to=2026-11-03T00:00:00Z&metrics=orders,gross_revenue,net_revenue,units,sessions,visitors&group_by=store",
        "/api/v1/promotions?from=2026-11-02T00:00:00Z&to=2026-11-03T00:00:00Z",
        "/api/v1/funnels?from=2026-11-02T00:00:00Z&to=2026-11-03T00:00:00Z&group_by=product",
        "/api/v1/query?from=2026-11-02T00:00:00Z&to=2026-11-03T00:00:00Z&metrics=orders,gross_revenue,sessions&group_by=source",
        "/api/v1/query?from=2026-11-02T00:00:00Z&to=2026-11-03T00:00:00Z&metrics=units,gross_revenue&group_by=category",
    ];
    let mut before = Vec::new();
    for query in queries {
        before.push(
            client
                .get(format!("{base}{query}"))
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap(),
        );
    }
    assert_eq!(before[0]["totals"]["gross_revenue"], "217.50", "the tail is counted");
    let google = before[3]["groups"].as_array().unwrap().iter().find(|g| g["key"] == "google.com");
    assert_eq!(google.unwrap()["values"]["gross_revenue"], "12.50", "{:?}", before[3]);

    server.kill().expect("SIGKILL");
    let _ = server.wait();
    let mut server = crate::support::start_with_env(dir.path(), port, &env);
    for (query, expected) in queries.iter().zip(&before) {
        let after: serde_json::Value =
            client.get(format!("{base}{query}")).send().await.unwrap().json().await.unwrap();
        assert_eq!(&after["totals"], &expected["totals"], "{query}");
        assert_eq!(&after["groups"], &expected["groups"], "{query}");
        assert_eq!(&after["overall"], &expected["overall"], "{query}");
    }
    assert!(stop_gracefully(&mut server).success());
}

/// Log retention deleted segments past the last engine snapshot's position: a crash then
/// restarted from the snapshot and the log after it, and the deleted events were gone from
/// every figure (171,200 acknowledged, 87,640 counted after a kill -9). Retention now waits
/// for a snapshot to hold what it deletes.
#[tokio::test]
async fn log_retention_never_deletes_what_no_snapshot_holds() {
    use crate::support::TestApp;
    let small_log = |config: &mut storepulse_server::config::Config| {
        config.log.segment_bytes = 4096;
        config.log.retention_max_bytes = Some(8192);
        // No scheduled snapshot during the test: only the one at the clean restart.
        config.engine.snapshot_interval = Some(Duration::from_secs(3600));
    };
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
            as i64;
    let batch = |from: usize, count: usize| {
        let events: Vec<serde_json::Value> = (from..from + count)
            .map(|n| {
                serde_json::json!({"type": "page_view", "event_id": format!("e{n}"),
                    "timestamp": storepulse_model::Timestamp(now - 60_000).to_rfc3339(), "user_id": format!("u{n}"),
                    "page": {"path": format!("/page/{n}")}})
            })
            .collect();
        serde_json::Value::Array(events).to_string()
    };
    let test = TestApp::with_config(small_log);
    assert!(test.post_json("/api/v1/events", &batch(0, 20)).await.status.is_success());
    // A clean restart: the snapshot holds the first 20.
    let test = test.restart(|_| {});
    let snapshot = std::fs::read(test.dir.path().join("engine/snapshot.bin")).unwrap();
    for part in 0..6 {
        let body = batch(20 + part * 50, 50);
        assert!(test.post_json("/api/v1/events", &body).await.status.is_success());
    }
    // The writer applies retention every second: the log is far over its 8 KiB.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let query = "/api/v1/query?metrics=events&range=last_24_hours";
    assert_eq!(test.get(query).await.json()["totals"]["events"], 320);
    // A crash: the snapshot on disk is still the one of the clean restart.
    let test = crash_and_restart(test, &snapshot);
    assert_eq!(test.get(query).await.json()["totals"]["events"], 320, "nothing acknowledged lost");
    // Once a snapshot holds them, retention trims the log to its budget again.
    let test = test.restart(|_| {});
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let health = test.get("/health").await.json();
    assert!(health["log"]["segments"].as_u64().unwrap() <= 3, "{health}");
    assert_eq!(test.get(query).await.json()["totals"]["events"], 320);
}

/// Stops `test` and starts it again as after a crash: with `snapshot`, the engine snapshot on
/// disk before it, rather than the one a clean shutdown writes.
fn crash_and_restart(test: crate::support::TestApp, snapshot: &[u8]) -> crate::support::TestApp {
    let crate::support::TestApp { app, dir } = test;
    let config = app.config.clone();
    app.shutdown();
    drop(app);
    std::fs::write(dir.path().join("engine/snapshot.bin"), snapshot).unwrap();
    let app = Arc::new(storepulse_server::App::open(config).expect("app reopens"));
    crate::support::TestApp { app, dir }
}
