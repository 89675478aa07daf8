//! `storepulse log verify | inspect | repair`: looking at and mending the event log offline.
//!
//! `verify` reads every frame of every segment without taking the lock (safe while the server
//! runs). `repair` cuts the log at the first corrupt frame — the bytes cut and any later
//! segments are moved to `quarantine/`, never deleted — and must run with the server stopped.
//! `inspect` prints records as JSON lines.

use std::path::Path;

use anyhow::{Context, bail};
use storepulse_log::{EventLog, LogConfig};
use storepulse_model::codec::decode_event;

/// Prints a verification report; fails when problems were found.
pub fn verify(dir: &Path) -> anyhow::Result<()> {
    let report =
        storepulse_log::verify(dir).with_context(|| format!("cannot verify {}", dir.display()))?;
    println!(
        "{}: {} segments, {} records (offsets {}..{}), {} bytes",
        dir.display(),
        report.segments,
        report.records,
        report.first_offset,
        report.next_offset,
        report.bytes
    );
    if report.is_clean() {
        println!("ok: every frame checks out");
        return Ok(());
    }
    for problem in &report.problems {
        println!(
            "problem: {} at byte {}: {}",
            problem.path.display(),
            problem.position,
            problem.description
        );
    }
    bail!(
        "{} problem(s) found; stop the server and run `storepulse log repair --data-dir <dir>` to cut the log at the first one (later data is moved to quarantine/)",
        report.problems.len()
    )
}

/// `error` from opening a log, with the exact repair command for this data directory when the
/// log refused to open as corrupt (the log itself only knows its own directory).
pub fn with_repair_command(
    error: storepulse_log::LogError,
    data_dir: &Path,
    dead_letters: bool,
) -> anyhow::Error {
    let corrupt = matches!(error, storepulse_log::LogError::Corrupt { .. });
    let error = anyhow::anyhow!("{error}");
    if !corrupt {
        return error;
    }
    let which = if dead_letters { " --dead-letters" } else { "" };
    error.context(format!(
        "the log is damaged; with the server stopped, run `storepulse log repair{which} --data-dir {}`",
        data_dir.display()
    ))
}

pub fn repair(dir: &Path) -> anyhow::Result<()> {
    let report =
        storepulse_log::repair(dir).with_context(|| format!("cannot repair {}", dir.display()))?;
    match (&report.problem, &report.truncated) {
        (None, _) => println!("nothing to repair: the log is clean"),
        (Some(problem), truncated) => {
            println!(
                "found: {} at byte {}: {}",
                problem.path.display(),
                problem.position,
                problem.description
            );
            if let Some(cut) = truncated {
                println!(
                    "cut {} bytes from {} (saved to {})",
                    cut.cut_bytes,
                    cut.path.display(),
                    cut.saved_to.display()
                );
            }
            for path in &report.quarantined {
                println!("moved to quarantine: {}", path.display());
            }
        }
    }
    println!("the log now ends at offset {}", report.next_offset);
    Ok(())
}

/// Prints up to `limit` records from `from` as JSON lines (events decoded, others raw).
pub fn inspect(dir: &Path, from: Option<u64>, limit: usize, events: bool) -> anyhow::Result<()> {
    // Opening the log recovers it, which may cut a torn tail: a command that prints must not
    // change the log, so a damaged one is reported, not opened.
    let checked = storepulse_log::verify(dir)
        .with_context(|| format!("cannot read the log in {}", dir.display()))?;
    if let Some(problem) = checked.problems.first() {
        anyhow::bail!(
            "the log has a bad frame ({problem}); inspect only reads, so it stops here: \
             `storepulse serve` cuts a torn tail left by a crash (keeping its bytes in \
             quarantine/), `storepulse log repair` cuts damage"
        );
    }
    let (log, _) = EventLog::open(LogConfig::new(dir)).with_context(|| {
        format!(
            "cannot open {} (is a server running on it? use the HTTP API instead)",
            dir.display()
        )
    })?;
    let from = from.unwrap_or(log.first_offset());
    for record in log.reader(from)?.take(limit) {
        let record = record?;
        let body = if events {
            match decode_event(&record.payload) {
                Ok(event) => serde_json::to_value(&event)?,
                Err(error) => serde_json::json!({ "undecodable": error.to_string() }),
            }
        } else {
            serde_json::from_slice(&record.payload).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&record.payload).into_owned())
            })
        };
        println!(
            "{}",
            serde_json::json!({ "offset": record.offset, "appended_at_unix_ms": record.appended_at_unix_ms, "record": body })
        );
    }
    Ok(())
}
