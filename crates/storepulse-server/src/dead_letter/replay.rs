//! Replaying dead letters: re-validate each entry with today's rules and ingest what passes.
//!
//! Typical use: a tracker sent values an older configuration refused (a limit since raised,
//! a currency since allowed). Replayed events keep their original receive time and what their
//! request's headers gave them (a header time, the device from the `User-Agent`, a trusted
//! proxy's country; entries written before those were kept have none), and get deterministic
//! ids (`dl-<offset>-<n>`) when they had none, so replaying the same range twice stores nothing
//! twice within the de-duplication window.

use serde::Serialize;
use storepulse_model::compat::promotion_buy::decode_promotion_buy;
use storepulse_model::compat::realtime_ingest::decode_realtime_ingest_event;
use storepulse_model::compat::segment::decode_segment_message;
use storepulse_model::decode::{BodyFormat, replace_lone_surrogates, split_body};
use storepulse_model::validate::decode_native_event;
use storepulse_model::{ErrorCode, Event, ValidationContext};

use super::DeadLetter;
use crate::app::App;
use crate::http::segment::SINGLE_CALLS;
use crate::ingest::writer::EventOutcome;

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct ReplayReport {
    /// Entries read.
    pub examined: usize,
    /// Events that now pass and were stored.
    pub replayed: usize,
    /// Events that pass but were already stored.
    pub duplicates: usize,
    /// Entries that still fail validation.
    pub still_invalid: usize,
    /// Entries whose payload was cut at capture, so they cannot be replayed.
    pub truncated: usize,
    /// Entries whose payload was not UTF-8 text: what is kept of it is not what was sent
    /// (the door refused it as such), so they are not replayed.
    pub not_utf8: usize,
    /// Offset to continue from, when the limit stopped the replay.
    pub next: Option<u64>,
}

/// Replays up to `limit` entries from `from`, optionally only those with `reason`.
pub async fn replay_dead_letters(
    app: &App,
    from: Option<u64>,
    limit: usize,
    reason: Option<ErrorCode>,
) -> anyhow::Result<ReplayReport> {
    let page = app.dead_letters.page(from, limit, reason)?;
    let mut report =
        ReplayReport { examined: page.entries.len(), next: page.next, ..ReplayReport::default() };
    for entry in page.entries {
        if entry.payload_truncated {
            report.truncated += 1;
            continue;
        }
        if entry.payload_not_utf8 {
            report.not_utf8 += 1;
            continue;
        }
        let events = revalidate(app, &entry);
        if events.is_empty() {
            report.still_invalid += 1;
            continue;
        }
        let outcomes = app.ingest.commit(events, "dead_letter_replay").await?;
        for outcome in outcomes {
            match outcome {
                EventOutcome::Stored { .. } => report.replayed += 1,
                EventOutcome::Duplicate => report.duplicates += 1,
            }
        }
    }
    Ok(report)
}

fn revalidate(app: &App, entry: &DeadLetter) -> Vec<Event> {
    let counter = std::sync::atomic::AtomicUsize::new(0);
    let offset = entry.offset;
    let new_id = move || {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        compact_str::format_compact!("dl-{offset}-{n}")
    };
    let context = ValidationContext {
        received_at: entry.received_at,
        header_time: entry.header_time,
        clock: app.clock,
        default_store: entry.store.as_deref().unwrap_or(&app.config.ingest.default_store),
        default_currency: app.default_currency,
        client: entry.client.as_deref(),
        user_agent: entry.user_agent.as_deref(),
        country: entry.country.as_deref(),
        limits: &app.config.ingest.limits,
        new_event_id: &new_id,
        address_policy: Some(&app.anonymizer),
    };
    let payload = entry.payload.as_str();
    // The seeds' doors skip a byte order mark before the JSON, as their FastAPI did.
    let seed_payload = payload.strip_prefix('\u{feff}').unwrap_or(payload);
    let mut events: Vec<Event> = match entry.endpoint.as_str() {
        "/ingest" => decode_realtime_ingest_event(seed_payload, &context).into_iter().collect(),
        // A seed-4 buy becomes an order of its own: named by the entry, so that a second
        // replay finds it stored.
        "/buy" => decode_promotion_buy(seed_payload, &format!("buy-dl-{offset}"), &context)
            .into_iter()
            .collect(),
        "/v1/batch" | "/v1/b" if entry.index.is_some() => {
            decode_segment_message(payload, None, None, &context).into_iter().collect()
        }
        "/v1/batch" | "/v1/b" => Vec::new(),
        segment if segment.starts_with("/v1/") => {
            // The call the path stood for, as when it came in (`/v1/t` is a track call
            // whatever its body's `type` says).
            let call = SINGLE_CALLS.iter().find(|(path, _)| *path == segment).map(|(_, c)| *c);
            decode_segment_message(payload, call, None, &context).into_iter().collect()
        }
        _ => decode_native_body(payload, &context),
    };
    for event in &mut events {
        // Deterministic ids are safe to de-duplicate on.
        event.event_id_generated = false;
    }
    events
}

/// The valid events of a native body. One stored before lone surrogate escapes were read as
/// U+FFFD (so refused as a whole) is read that way now.
fn decode_native_body(payload: &str, context: &ValidationContext<'_>) -> Vec<Event> {
    let mut repaired = None;
    let elements = match split_body(payload, BodyFormat::Sniff) {
        Ok(elements) => elements,
        Err(_) => match replace_lone_surrogates(payload) {
            Some(copy) => split_body(repaired.insert(copy), BodyFormat::Sniff).unwrap_or_default(),
            None => Vec::new(),
        },
    };
    elements
        .into_iter()
        .filter_map(|element| element.json.ok())
        .filter_map(|json| decode_native_event(json, context).ok())
        .collect()
}
