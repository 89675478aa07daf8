//! The command line as an operator uses it: config print, log verify/inspect, offline
//! dead-letter replay, the load generator against a live server, and the header timeout.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::support::{free_port, run_cli, start, start_with_env, stop_gracefully};

#[test]
fn config_print_shows_the_effective_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let (ok, out) = run_cli(
        &["config", "print", "--data-dir", data_dir],
        &[("STOREPULSE_LOG__FSYNC", "interval")],
    );
    assert!(ok);
    let config: toml::Value = toml::from_str(&out).expect("TOML");
    assert_eq!(config["log"]["fsync"].as_str(), Some("interval"));
    assert_eq!(config["data_dir"].as_str(), Some(data_dir));
    let (ok, _) = run_cli(&["config", "print"], &[("STOREPULSE_LOG__FSYNK", "none")]);
    assert!(!ok, "a misspelt variable stops the program");
}

/// A configuration given as a pipe (`--config /dev/stdin`, `--config <(envsubst < t.toml)`)
/// was read once to check it could be, then again to parse it, found empty: the server ran on
/// its defaults (listen address, fsync, write keys) without a word.
#[test]
fn a_configuration_piped_in_is_read() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_storepulse"))
        .args(["config", "print", "--config", "/dev/stdin"])
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the storepulse binary runs");
    child.stdin.take().unwrap().write_all(b"[http]\nlisten = \"127.0.0.1:18709\"\n").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let printed: toml::Value = toml::from_str(&String::from_utf8_lossy(&output.stdout)).unwrap();
    assert_eq!(printed["http"]["listen"].as_str(), Some("127.0.0.1:18709"));
}

/// `config print` wrote 90 days as humantime's "2months 29days 2h 52m 48s": durations are
/// printed as the example file and docs/operations.md write them, and read back the same.
#[test]
fn config_print_writes_durations_as_the_example_file_does() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let (ok, out) = run_cli(&["config", "print", "--data-dir", data_dir], &[]);
    assert!(ok);
    let printed: toml::Value = toml::from_str(&out).expect("TOML");
    let example: toml::Value =
        toml::from_str(storepulse_server::config::EXAMPLE_CONFIG).expect("TOML");
    // Every string the example file sets (durations among them) is printed as written there.
    let mut compared = 0;
    for (section, table) in example.as_table().unwrap() {
        let Some(table) = table.as_table() else { continue };
        for (key, value) in table {
            if let Some(text) = value.as_str() {
                assert_eq!(printed[section][key].as_str(), Some(text), "{section}.{key}\n{out}");
                compared += 1;
            }
        }
    }
    assert!(compared >= 15, "{compared}");
    for (key, text) in [("hour_retention", "90days"), ("order_memory", "180days")] {
        assert_eq!(printed["engine"][key].as_str(), Some(text), "{out}");
    }
    assert!(!out.contains("month"), "{out}");

    let file = dir.path().join("storepulse.toml");
    std::fs::write(
        &file,
        "[log]\nretention_max_age = \"400days\"\n[ingest]\ndedup_window = \"1day 2h\"\n",
    )
    .unwrap();
    let (ok, out) = run_cli(&["config", "print", "--config", file.to_str().unwrap()], &[]);
    assert!(ok);
    let printed: toml::Value = toml::from_str(&out).expect("TOML");
    assert_eq!(printed["log"]["retention_max_age"].as_str(), Some("400days"), "{out}");
    assert_eq!(printed["ingest"]["dedup_window"].as_str(), Some("26h"), "{out}");
    // What was printed is a configuration that loads to the same values.
    std::fs::write(&file, &out).unwrap();
    let (ok, again) = run_cli(&["config", "print", "--config", file.to_str().unwrap()], &[]);
    assert!(ok);
    assert_eq!(again, out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_then_verify_inspect_and_replay_offline() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap().to_owned();
    let port = free_port();
    let mut server = start(dir.path(), port);
    let target = format!("http://127.0.0.1:{port}");
    let (ok, report) = tokio::task::spawn_blocking({
        let target = target.clone();
        move || {
            run_cli(
                &[
                    "loadgen",
                    "--target",
                    &target,
                    "--rate",
                    "400",
                    "--duration",
                    "1s",
                    "--batch",
                    "5",
                    "--seed",
                    "7",
                ],
                &[],
            )
        }
    })
    .await
    .unwrap();
    assert!(ok, "{report}");
    assert!(report.contains("failed requests 0"), "{report}");
    let acked: u64 = report
        .split("acked ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(acked > 50, "{report}");
    // The same seed again, slower: every event is a duplicate of the first run's, which is an
    // acknowledgement ("nothing was acknowledged" and exit 1 before).
    let (ok, report) = tokio::task::spawn_blocking({
        let target = target.clone();
        move || {
            let args = ["--rate", "100", "--duration", "1s", "--batch", "5", "--seed", "7"];
            run_cli(&[&["loadgen", "--target", &target][..], &args].concat(), &[])
        }
    })
    .await
    .unwrap();
    assert!(ok, "{report}");
    assert!(
        report.contains("acked 0 ") && report.contains("every event was a duplicate"),
        "{report}"
    );
    assert!(report.contains("--seed"), "{report}");

    let (ok, report) = tokio::task::spawn_blocking(move || {
        run_cli(
            &[
                "loadgen",
                "--target",
                &target,
                "--profile",
                "realtime",
                "--rate",
                "100",
                "--duration",
                "1s",
            ],
            &[],
        )
    })
    .await
    .unwrap();
    assert!(ok && report.contains("failed requests 0"), "{report}");

    stop_gracefully(&mut server);

    let (ok, out) = run_cli(&["log", "verify", "--data-dir", &data_dir], &[]);
    assert!(ok && out.contains("ok: every frame checks out"), "{out}");
    let (ok, out) = run_cli(&["log", "inspect", "--data-dir", &data_dir, "--limit", "3"], &[]);
    assert!(ok);
    let lines: Vec<serde_json::Value> =
        out.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["offset"], 0);
    assert!(lines[0]["record"]["event_id"].as_str().unwrap().starts_with("lg-7-"));

    // An order refused under a two-line limit is dead-lettered...
    let limits = [("STOREPULSE_INGEST__LIMITS__MAX_ITEMS", "2")];
    let mut server = start_with_env(dir.path(), port, &limits);
    let order = serde_json::json!({"type": "purchase", "order": {"id": "o1"}, "items": [{"id": "a"}, {"id": "b"}, {"id": "c"}]});
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/api/v1/events"))
        .json(&order)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    stop_gracefully(&mut server);
    let (ok, out) = run_cli(&["log", "verify", "--dead-letters", "--data-dir", &data_dir], &[]);
    assert!(ok, "{out}");
    // ...and replayed offline once the default limits apply again.
    let (ok, out) = run_cli(&["dead-letters", "replay", "--data-dir", &data_dir], &[]);
    assert!(ok, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["replayed"], 1, "{out}");
}

/// A load run that gets nothing acknowledged says why and fails; bad options are refused.
#[test]
fn loadgen_says_why_nothing_was_acknowledged() {
    let output = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_storepulse"))
            .args(args)
            .env("RUST_LOG", "off")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        (output.status.success(), text)
    };
    let closed = format!("http://127.0.0.1:{}", free_port());
    let (ok, text) = output(&["loadgen", "--target", &closed, "--duration", "1s", "--rate", "5"]);
    assert!(!ok, "{text}");
    assert!(text.contains("first failure") && text.contains("nothing was acknowledged"), "{text}");
    assert!(text.contains("latency ms: n/a"), "{text}");
    let (ok, text) = output(&["loadgen", "--target", "notaurl", "--duration", "1s"]);
    assert!(!ok && text.contains("--target"), "{text}");
    // Zero was quietly run as one (batch, concurrency) or sent nothing and succeeded (duration).
    for (flag, value) in [("--batch", "0"), ("--concurrency", "0"), ("--duration", "0s")] {
        let (ok, text) = output(&["loadgen", "--target", &closed, flag, value]);
        assert!(!ok && text.contains(flag), "{flag} {value}: {text}");
    }
    let realtime = ["loadgen", "--target", &closed, "--profile", "realtime", "--batch", "10"];
    let (ok, text) = output(&realtime);
    assert!(!ok && text.contains("--batch 10"), "{text}");
    // A big batch at a low rate still stops at --duration.
    let started = Instant::now();
    let slow =
        ["loadgen", "--target", &closed, "--duration", "1s", "--rate", "10", "--batch", "1000"];
    let _ = output(&slow);
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
}

/// Offline tools given a wrong `--data-dir` or a bad option: a typo made `dead-letters
/// replay` create a whole data directory and succeed; the log commands repeated the OS error;
/// `--limit 0` did nothing; a missing `--config` was "invalid" over two lines; a host name as
/// `--listen` got only "invalid socket address syntax".
#[test]
fn offline_tools_refuse_what_is_not_a_data_directory_in_one_clear_line() {
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_storepulse"))
            .args(args)
            .env("RUST_LOG", "off")
            .output()
            .unwrap();
        (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo");
    let typo_text = typo.to_str().unwrap();
    for command in [
        &["dead-letters", "replay"][..],
        &["log", "verify"],
        &["log", "inspect"],
        &["log", "repair"],
        &["log", "verify", "--dead-letters"],
    ] {
        let (ok, stderr) = run(&[command, &["--data-dir", typo_text]].concat());
        assert!(!ok, "{command:?}");
        assert!(stderr.contains("is not a Storepulse data directory"), "{command:?}: {stderr}");
        assert!(!typo.exists(), "{command:?} created {typo_text}");
    }
    let empty = dir.path().to_str().unwrap();
    let (ok, stderr) = run(&["dead-letters", "replay", "--data-dir", empty]);
    assert!(!ok && stderr.contains("has no events/ log"), "{stderr}");
    assert!(!dir.path().join("events").exists());

    let (ok, stderr) = run(&["dead-letters", "replay", "--limit", "0", "--data-dir", empty]);
    assert!(!ok && stderr.contains("--limit") && stderr.contains("at least 1"), "{stderr}");
    let missing = dir.path().join("x.toml");
    let (ok, stderr) = run(&["config", "print", "--config", missing.to_str().unwrap()]);
    assert!(!ok);
    assert_eq!(
        stderr.trim_end(),
        format!(
            "error: cannot read configuration file {}: No such file or directory",
            missing.display()
        )
    );
    let (ok, stderr) = run(&["serve", "--listen", "localhost:8080", "--data-dir", typo_text]);
    assert!(!ok && stderr.contains("127.0.0.1:8080"), "{stderr}");
}

/// `log verify` beside a running server: the frame being written at the end of the active
/// segment is a write in progress, not a torn write; with no server holding the log the same
/// tail is a problem, and the advice names the real data directory.
#[test]
fn verify_reports_a_frame_being_written_as_a_write_in_progress() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events");
    let (mut log, _) =
        storepulse_log::EventLog::open(storepulse_log::LogConfig::new(&events)).unwrap();
    log.append_batch(&[b"{}", b"{}"], 1).unwrap();
    let segment = std::fs::read_dir(&events)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .unwrap();
    // As a large batch (written without zeros ahead of it) looks while it is being written.
    let data_end = std::fs::metadata(&segment).unwrap().len() - zeros_at_the_end(&segment);
    let mut file = std::fs::OpenOptions::new().append(true).open(&segment).unwrap();
    file.set_len(data_end).unwrap();
    file.write_all(b"half a header").unwrap();
    drop(file);
    let data_dir = dir.path().to_str().unwrap();
    let verify = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_storepulse"))
            .args(["log", "verify", "--data-dir", data_dir])
            .output()
            .unwrap()
    };
    let running = verify();
    let stdout = String::from_utf8_lossy(&running.stdout);
    assert!(running.status.success(), "{stdout}");
    assert!(stdout.contains("write in progress"), "{stdout}");

    drop(log);
    let stopped = verify();
    let stderr = String::from_utf8_lossy(&stopped.stderr);
    assert!(!stopped.status.success());
    assert!(stderr.contains(&format!("log repair --data-dir {data_dir}`")), "{stderr}");
}

fn zeros_at_the_end(path: &std::path::Path) -> u64 {
    std::fs::read(path).unwrap().iter().rev().take_while(|byte| **byte == 0).count() as u64
}

/// `log inspect` only reads: on a log with a torn tail it says so and changes nothing (opening
/// the log would have cut the tail).
#[test]
fn inspect_does_not_change_a_damaged_log() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events");
    let (mut log, _) =
        storepulse_log::EventLog::open(storepulse_log::LogConfig::new(&events)).unwrap();
    log.append_batch(&[b"{}", b"{}"], 1).unwrap();
    drop(log);
    let segment = std::fs::read_dir(&events)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .unwrap();
    let mut file = std::fs::OpenOptions::new().append(true).open(&segment).unwrap();
    file.write_all(b"torn garbage").unwrap();
    drop(file);
    let before = std::fs::read(&segment).unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let (ok, out) = run_cli(&["log", "inspect", "--data-dir", data_dir], &[]);
    assert!(!ok, "{out}");
    assert_eq!(std::fs::read(&segment).unwrap(), before, "inspect left the log as it was");
    assert!(!events.join("quarantine").exists());
}

#[test]
fn slow_header_senders_are_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server =
        start_with_env(dir.path(), port, &[("STOREPULSE_HTTP__HEADER_READ_TIMEOUT", "1s")]);
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\n").unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    let mut buffer = Vec::new();
    let _ = stream.read_to_end(&mut buffer);
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(8),
        "the connection was closed by the server, not our read timeout ({waited:?})"
    );
    stop_gracefully(&mut server);
}

/// Sends `head` (a request without its body) and returns the answer as text.
fn answer_to_head(port: u16, head: &str) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    // A bound on waiting, not a measurement: the server's own timeout is longer.
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buffer = Vec::new();
    let _ = stream.read_to_end(&mut buffer);
    String::from_utf8_lossy(&buffer).into_owned()
}

#[test]
fn a_declared_body_over_the_limit_is_refused_at_once_with_413() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server =
        start_with_env(dir.path(), port, &[("STOREPULSE_HTTP__REQUEST_TIMEOUT", "60s")]);
    for length in [17 * 1024 * 1024_u64, 100_000_000_000] {
        let answer = answer_to_head(
            port,
            &format!(
                "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 Content-Length: {length}\r\n\r\n"
            ),
        );
        assert!(answer.starts_with("HTTP/1.1 413"), "{length}: {answer}");
        assert!(answer.contains(r#""code":"payload_too_large""#), "{answer}");
    }
    stop_gracefully(&mut server);
}

#[test]
fn a_request_that_times_out_gets_a_json_408() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server =
        start_with_env(dir.path(), port, &[("STOREPULSE_HTTP__REQUEST_TIMEOUT", "300ms")]);
    let answer = answer_to_head(
        port,
        "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: 10\r\n\r\n{",
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("content-type: application/json"), "{answer}");
    assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
    stop_gracefully(&mut server);
}
