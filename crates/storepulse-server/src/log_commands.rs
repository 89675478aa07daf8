//! `storepulse log verify | inspect | repair`: looking at and mending the event log offline.
//!
//! `verify` reads every frame of every segment without taking the lock (safe while the server
//! runs: a frame still being written at the end is reported as such, not as damage). `repair` cuts the log at the first corrupt frame — the bytes cut and any later
//! segments are moved to `quarantine/`, never deleted — and must run with the server stopped.
//! `inspect` prints records as JSON lines.

use std::path::Path;

use anyhow::{Context, bail};
use storepulse_log::{EventLog, LogConfig};
use storepulse_model::codec::decode_event;

/// Prints a verification report; fails when problems were found. `data_dir` is the data
/// directory the log belongs to, for the repair command the report advises.
///
/// With a server running, the end of the active segment may be a frame it is still writing;
/// read without the lock, that looks like a torn write. So while the log is locked such a
/// tail is reported as a write in progress, not as damage.
pub fn verify(dir: &Path, data_dir: &Path, dead_letters: bool) -> anyhow::Result<()> {
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
    let (in_progress, problems) = split_writes_in_progress(dir, &report.problems)?;
    for problem in &in_progress {
        println!(
            "note: {} ends inside a frame at byte {}: a write in progress (the log is held by a \
             running server), not damage",
            problem.path.display(),
            problem.position
        );
    }
    if problems.is_empty() {
        println!("ok: every frame checks out");
        return Ok(());
    }
    for problem in &problems {
        println!(
            "problem: {} at byte {}: {}",
            problem.path.display(),
            problem.position,
            problem.description
        );
    }
    let which = if dead_letters { " --dead-letters" } else { "" };
    bail!(
        "{} problem(s) found; stop the server and run `storepulse log repair{which} --data-dir {}` to cut the log at the first one (later data is moved to quarantine/)",
        problems.len(),
        data_dir.display()
    )
}

/// The problems that are a frame being written by the server holding the log, and the rest.
fn split_writes_in_progress<'p>(
    dir: &Path,
    problems: &'p [storepulse_log::VerifyProblem],
) -> anyhow::Result<(Vec<&'p storepulse_log::VerifyProblem>, Vec<&'p storepulse_log::VerifyProblem>)>
{
    let has_unfinished_tail =
        problems.iter().any(storepulse_log::VerifyProblem::is_unfinished_tail);
    // Asked only when it matters: testing the lock takes it for an instant.
    let locked = has_unfinished_tail
        && storepulse_log::is_locked(dir)
            .with_context(|| format!("cannot tell whether a server holds {}", dir.display()))?;
    Ok(problems.iter().partition(|problem| locked && problem.is_unfinished_tail()))
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
