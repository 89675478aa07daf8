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
