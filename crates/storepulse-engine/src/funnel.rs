//! Funnels: how many sessions go through configured steps in order (default
//! product_view → add_to_cart → checkout_started → purchase), each step within a window of the
//! session's first step, overall or per product, category, country or marketing source.
//!
//! Every session keeps a short trail of its events (time, type, product, the source the event
//! counted under; at most
//! [`MAX_TRAIL`] marks, 12 bytes each, times as offsets from the trail's first event, so a
//! trail covers a session's first 49 days) for `retention` after its last event. A session
//! counts in a range when a first step falls in it, from the first step in it that gets
//! furthest. Per product, a step counts when its event names that product, or names no
//! product at all (a page view, a checkout sent without lines). Each step is matched by a
//! later event than the previous step's, so a repeated step (`page_view,page_view`) needs as
//! many events (two events in the same millisecond are two). By source, or with a source
//! filter, a step counts when its event counted under that source. The trails also give the
//! exact session metrics by product and below a day (see `engine::sessions`).

use std::str::FromStr;

use serde::Serialize;
use storepulse_model::event::EventType;

use crate::FastMap;
use crate::carts::SessionCart;
use crate::chunked::ChunkedVec;
use crate::id_table::IdTable;
use crate::live::{LiveFilter, Place};

pub const MAX_TRAIL: usize = 256;
pub const MAX_STEPS: usize = 10;
/// Room a new trail starts with.
const FIRST_MARKS: usize = 8;
/// Free slots are compacted away once there are at least this many and they are the majority.
const COMPACT_MIN_FREE: usize = 1024;
/// A session without events for this long is taken as ended (see [`FunnelLog::prune`]).
const ENDED_AFTER_MS: i64 = 30 * 60_000;

/// One event of a session, or one product of it: an event naming three products leaves
/// three marks with the same time (no allocation per event), the first of them starting it.
/// Packed into 12 bytes (trails are a third of the engine's memory at scale): the event type
/// and whether the mark starts its event share a byte, and the source takes three.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
struct Mark {
    /// Milliseconds after the trail's `base_ms`.
    offset_ms: u32,
    /// The product this mark is about; 0 when the event names none.
    product: u32,
    /// The event type (its place in [`EventType::ALL`]) in the low seven bits, and
    /// [`STARTS_EVENT`]: two events of one type in the same millisecond (three cart adds
    /// sent with one whole-second timestamp) are two events, not one event naming two
    /// products.
    kind: u8,
    /// The marketing source the event counted under in the rollups (its own, else its
    /// session's as of then; 0 = none), little-endian, so that session metrics counted from
    /// trails filter and group by source as the rows and the daily sketches do;
    /// [`WIDE_SOURCE`] for an id that does not fit.
    source: [u8; 3],
}

const _: () = assert!(std::mem::size_of::<Mark>() == 12);

/// [`Mark::kind`]'s bit for the first mark of an event.
const STARTS_EVENT: u8 = 0x80;

impl Mark {
    fn new(offset_ms: u32, product: u32, event_type: EventType, starts: bool, source: u32) -> Self {
        let kind = event_type as u8 | if starts { STARTS_EVENT } else { 0 };
        Mark { offset_ms, product, kind, source: MarkSource::stored(source) }
    }

    fn event_type(&self) -> EventType {
        // Written from an `EventType` (snapshots are checksummed): always in range.
        let index = usize::from(self.kind & !STARTS_EVENT);
        EventType::ALL.get(index).copied().unwrap_or(EventType::Custom)
    }

    fn starts_event(&self) -> bool {
        self.kind & STARTS_EVENT != 0
    }

    /// The source id, [`WIDE_SOURCE`] for one that did not fit.
    fn source_id(&self) -> u32 {
        let [low, middle, high] = self.source;
        u32::from_le_bytes([low, middle, high, 0])
    }
}

/// A mark's source for a source id of 16,777,215 or more (sources are interned for the whole
/// server, every store's `utm_source`s and referrer hosts): the mark is not under any source
/// below that, and which of those above it is, only its rows know (see [`MarkSource::of`]).
pub const WIDE_SOURCE: u32 = (1 << 24) - 1;

/// A mark's source as [`KeptTrail::marks`] lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkSource {
    /// This interned source id (0 = none).
    Id(u32),
    /// Some id of [`WIDE_SOURCE`] or more.
    Wide,
}

impl MarkSource {
    fn of(mark: &Mark) -> MarkSource {
        match mark.source_id() {
            WIDE_SOURCE => MarkSource::Wide,
            id => MarkSource::Id(id),
        }
    }

    fn stored(source: u32) -> [u8; 3] {
        let [low, middle, high, _] = source.min(WIDE_SOURCE).to_le_bytes();
        [low, middle, high]
    }
}

/// A [`Mark`] as snapshot formats 13 and 14 stored it, without `source`: converted marks take
/// their session's source (that of its earliest event naming one), which is what every event
/// of a session without a change of source counted under.
#[derive(Clone, Copy, serde::Deserialize)]
pub(crate) struct MarkUpToV14 {
    offset_ms: u32,
    product: u32,
    event_type: EventType,
    starts_event: bool,
}

/// A [`Mark`] as snapshot formats up to 12 stored it, without `starts_event`: marks of one
/// time and type were taken as one event, as they are when converted.
#[derive(Clone, Copy, serde::Deserialize)]
pub(crate) struct MarkUpToV12 {
    offset_ms: u32,
    product: u32,
    event_type: EventType,
}

fn marks_from(old: Vec<MarkUpToV12>) -> Vec<Mark> {
    let mut marks: Vec<Mark> = Vec::with_capacity(old.len());
    for mark in old {
        let starts_event = marks.last().is_none_or(|last: &Mark| {
            last.offset_ms != mark.offset_ms || last.event_type() != mark.event_type
        });
        let MarkUpToV12 { offset_ms, product, event_type } = mark;
        // Formats up to 12 kept no session source either: these sessions count under none.
        marks.push(Mark::new(offset_ms, product, event_type, starts_event, 0));
    }
    marks
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Trail {
    /// The session's id hash.
    session: u64,
    /// Where the session was seen (country and device of its latest event that named them).
    pub place: Place,
    /// The session's latest event, in milliseconds after `base_ms`.
    last_offset_ms: u32,
    /// The session's earliest event.
    base_ms: i64,
    /// The hash of the visitor of the session's latest event naming one; 0 = none.
    visitor: u64,
    marks: Vec<Mark>,
    /// The session's marketing source (interned; 0 = none yet): that of its earliest event
    /// naming one (see [`FunnelLog::attribute`]).
    source: u32,
    /// When the event that named `source` was, in milliseconds after `base_ms`.
    source_offset_ms: u32,
    /// The session's cart, once it had a cart or purchase event (see [`crate::carts`]):
    /// written in the snapshot's carts section, not with the trail.
    #[serde(skip)]
    cart: Option<Box<SessionCart>>,
}

/// A [`Trail`] as snapshot formats up to 12 stored it, before trails kept their session's
/// source: such a session counts its later events under no source unless they name one.
#[derive(serde::Deserialize)]
pub(crate) struct TrailUpToV12 {
    session: u64,
    place: Place,
    last_offset_ms: u32,
    base_ms: i64,
    visitor: u64,
    marks: Vec<MarkUpToV12>,
}

impl From<TrailUpToV12> for Trail {
    fn from(old: TrailUpToV12) -> Self {
        let TrailUpToV12 { session, place, last_offset_ms, base_ms, visitor, marks } = old;
        Trail {
            session,
            place,
            last_offset_ms,
            base_ms,
            visitor,
            marks: marks_from(marks),
            source: 0,
            source_offset_ms: 0,
            cart: None,
        }
    }
}

impl Trail {
    /// A slot whose trail was pruned, until a new session takes it.
    const FREE: Trail = Trail {
        session: 0,
        place: Place { store: 0, country: 0, device: 0 },
        last_offset_ms: 0,
        base_ms: i64::MIN,
        visitor: 0,
        marks: Vec::new(),
        source: 0,
        source_offset_ms: 0,
        cart: None,
    };

    fn is_free(&self) -> bool {
        self.base_ms == i64::MIN
    }

    /// Whether this is a visitor's day of events sent without a session (see
    /// [`FunnelLog::observe_sessionless`]): such a trail counts its visitor, not a session.
    /// Told by its key, which is derived from its visitor and day (a session id's hash equals
    /// it by a 1 in 2^64 chance), so trails and snapshots need no mark of their own.
    fn is_sessionless(&self) -> bool {
        self.visitor != 0 && self.session == sessionless_key(self.visitor, self.base_ms)
    }

    fn time_of(&self, mark: &Mark) -> i64 {
        self.base_ms + i64::from(mark.offset_ms)
    }

    fn last_ms(&self) -> i64 {
        self.base_ms + i64::from(self.last_offset_ms)
    }

    /// `time_ms` as an offset, moving the base back first when the event is earlier than any
    /// so far; `None` when it would not fit (more than 49 days from the session's other
    /// events).
    fn offset_of(&mut self, time_ms: i64) -> Option<u32> {
        if time_ms < self.base_ms {
            // Every offset grows by the shift; the latest must still fit.
            let shift = u32::try_from(self.base_ms - time_ms).ok()?;
            self.last_offset_ms = self.last_offset_ms.checked_add(shift)?;
            for mark in &mut self.marks {
                mark.offset_ms += shift;
            }
            // Not past `last_offset_ms`, which had room for the shift.
            self.source_offset_ms += shift;
            self.base_ms = time_ms;
        }
        u32::try_from(time_ms - self.base_ms).ok()
    }
}

/// The trail key of `visitor`'s events without a session on the UTC day of `time_ms`. Stable
/// across builds: snapshots keep trails by it.
fn sessionless_key(visitor: u64, time_ms: i64) -> u64 {
    const SEED: u64 = 0x5e55_1011_e55b_0ff1;
    let day = time_ms.div_euclid(24 * 60 * 60 * 1000);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&visitor.to_le_bytes());
    bytes[8..].copy_from_slice(&day.to_le_bytes());
    wyhash::wyhash(&bytes, SEED)
}

/// In a snapshot only the trails and the retention are written; the slot map, the free slots,
/// the mark count and the session-less count follow from the trails and are rebuilt when it
/// is read.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(from = "StoredFunnelLog")]
pub struct FunnelLog {
    /// Every trail in a slot of its own (pruned trails leave free slots that new sessions
    /// take; once most slots are free they are compacted away), so that a session's live entry
    /// can remember its slot: an event of a session seen in the last minutes goes straight to
    /// its trail without a lookup in `slots` (a cache miss per event at shop scale). Queries
    /// walk the slots contiguously.
    trails: ChunkedVec<Trail>,
    /// Session id hash → slot.
    slots: IdTable<u32>,
    free: Vec<u32>,
    retention_ms: i64,
    /// Marks held by all trails (for the size estimate without walking them).
    marks: usize,
    /// Carts held by the trails (likewise).
    carts: usize,
    /// Kept trails that are a visitor's day of events sent without a session (see
    /// [`FunnelLog::observe_sessionless`]), counted apart from sessions without a walk.
    sessionless: usize,
    /// Marks of events before this time may not know their source: trails converted from a
    /// snapshot format before marks kept it, whose marks took their session's landing source.
    /// 0 (before any event) when every mark knows it.
    sources_known_from: i64,
}

/// What a snapshot holds of a [`FunnelLog`].
#[derive(serde::Deserialize)]
struct StoredFunnelLog {
    trails: ChunkedVec<Trail>,
    retention_ms: i64,
    sources_known_from: i64,
}

/// A [`FunnelLog`] as snapshot formats 8 and 9 held it, slot map and all (already decoded,
/// so it is kept rather than rebuilt).
#[derive(serde::Deserialize)]
pub(crate) struct FunnelLogUpToV9 {
    trails: ChunkedVec<TrailUpToV12>,
    slots: IdTable<u32>,
    free: Vec<u32>,
    retention_ms: i64,
    marks: usize,
}

impl From<FunnelLogUpToV9> for FunnelLog {
    fn from(old: FunnelLogUpToV9) -> Self {
        let FunnelLogUpToV9 { trails, slots, free, retention_ms, marks } = old;
        // Slot for slot, so the slot map stays right.
        let trails: ChunkedVec<Trail> = trails.into_iter().map(Trail::from).collect();
        let sources_known_from = sources_known_after(&trails);
        FunnelLog::loaded(trails, (slots, free, marks), retention_ms, sources_known_from)
    }
}

/// What snapshot formats 10 to 14 held of a [`FunnelLog`]: its trails in an older layout `T`
/// and its retention, without the time from which marks know their source (see
/// [`StoredFunnelLogUpToV12`], [`StoredFunnelLogUpToV14`]).
#[derive(serde::Deserialize)]
pub(crate) struct StoredFunnelLogOf<T> {
    trails: ChunkedVec<T>,
    retention_ms: i64,
}

/// Formats 10 to 12: trails without their session's source.
pub(crate) type StoredFunnelLogUpToV12 = StoredFunnelLogOf<TrailUpToV12>;
/// Formats 13 and 14: marks without their source (see [`TrailUpToV14`]).
pub(crate) type StoredFunnelLogUpToV14 = StoredFunnelLogOf<TrailUpToV14>;

impl<T: Into<Trail>> From<StoredFunnelLogOf<T>> for FunnelLog {
    fn from(old: StoredFunnelLogOf<T>) -> Self {
        let trails = old.trails.into_iter().map(Into::into).collect();
        let sources_known_from = sources_known_after(&trails);
        FunnelLog::from(StoredFunnelLog {
            trails,
            retention_ms: old.retention_ms,
            sources_known_from,
        })
    }
}

/// A [`Trail`] as snapshot formats 13 and 14 stored it, with marks without their source.
#[derive(serde::Deserialize)]
pub(crate) struct TrailUpToV14 {
    session: u64,
    place: Place,
    last_offset_ms: u32,
    base_ms: i64,
    visitor: u64,
    marks: Vec<MarkUpToV14>,
    source: u32,
    source_offset_ms: u32,
}

impl From<TrailUpToV14> for Trail {
    fn from(old: TrailUpToV14) -> Self {
        let TrailUpToV14 {
            session,
            place,
            last_offset_ms,
            base_ms,
            visitor,
            marks,
            source,
            source_offset_ms,
        } = old;
        let marks = marks
            .into_iter()
            .map(|MarkUpToV14 { offset_ms, product, event_type, starts_event }| {
                Mark::new(offset_ms, product, event_type, starts_event, source)
            })
            .collect();
        let cart = None;
        Trail {
            session,
            place,
            last_offset_ms,
            base_ms,
            visitor,
            marks,
            source,
            source_offset_ms,
            cart,
        }
    }
}

/// [`StoredFunnelLog`] borrowed, for writing without a copy of the trails.
#[derive(serde::Serialize)]
struct StoredFunnelLogRef<'a> {
    trails: &'a ChunkedVec<Trail>,
    retention_ms: i64,
    sources_known_from: i64,
}

impl serde::Serialize for FunnelLog {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        StoredFunnelLogRef {
            trails: &self.trails,
            retention_ms: self.retention_ms,
            sources_known_from: self.sources_known_from,
        }
        .serialize(serializer)
    }
}

impl From<StoredFunnelLog> for FunnelLog {
    fn from(stored: StoredFunnelLog) -> Self {
        let StoredFunnelLog { trails, retention_ms, sources_known_from } = stored;
        let mut slots = IdTable::with_capacity(trails.len());
        let mut free = Vec::new();
        let mut marks = 0;
        for (slot, trail) in trails.iter().enumerate() {
            let slot = u32::try_from(slot).unwrap_or(u32::MAX);
            if trail.is_free() {
                free.push(slot);
            } else {
                slots.insert(trail.session, slot);
                marks += trail.marks.len();
            }
        }
        FunnelLog::loaded(trails, (slots, free, marks), retention_ms, sources_known_from)
    }
}

impl FunnelLog {
    /// A log read from a snapshot: its trails with their slot map, free slots and mark count.
    fn loaded(
        trails: ChunkedVec<Trail>,
        (slots, free, marks): (IdTable<u32>, Vec<u32>, usize),
        retention_ms: i64,
        sources_known_from: i64,
    ) -> Self {
        let sessionless = count_sessionless(&trails);
        FunnelLog {
            trails,
            slots,
            free,
            retention_ms,
            marks,
            // Carts come in their own section (see `FunnelLog::attach_carts`).
            carts: 0,
            sessionless,
            sources_known_from,
        }
    }
}

/// When the marks of `trails`, converted from a format that did not keep each event's source,
/// start to know it: after the latest of them.
fn sources_known_after(trails: &ChunkedVec<Trail>) -> i64 {
    trails
        .iter()
        .filter(|trail| !trail.is_free())
        .map(|trail| trail.last_ms() + 1)
        .max()
        .unwrap_or(0)
}

/// The kept trails of `trails` that are no session's (see [`Trail::is_sessionless`]).
fn count_sessionless(trails: &ChunkedVec<Trail>) -> usize {
    trails.iter().filter(|trail| !trail.is_free() && trail.is_sessionless()).count()
}

/// A trail as [`FunnelLog::trails`] lists it.
pub struct KeptTrail<'a> {
    pub place: Place,
    /// The visitor's hash; 0 = none.
    pub visitor: u64,
    /// A session's trail, not a visitor's events sent without one.
    pub is_session: bool,
    trail: &'a Trail,
}

/// A mark as [`KeptTrail::marks`] lists it.
#[derive(Clone, Copy, Debug)]
pub struct KeptMark {
    pub time_ms: i64,
    pub event_type: EventType,
    /// 0 = none.
    pub product: u32,
    /// The marketing source the event counted under.
    pub source: MarkSource,
}

impl KeptTrail<'_> {
    /// The marks, in time order.
    pub fn marks(&self) -> impl Iterator<Item = KeptMark> + '_ {
        let trail = self.trail;
        trail.marks.iter().map(|mark| KeptMark {
            time_ms: trail.time_of(mark),
            event_type: mark.event_type(),
            product: mark.product,
            source: MarkSource::of(mark),
        })
    }
}

/// Where a session's trail was last found (see [`FunnelLog::observe_remembering`]), kept in
/// the session's live entry. Only ever a shortcut: a stale hint is noticed and corrected, so
/// hints are not part of snapshots.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrailHint(u32);

impl TrailHint {
    /// The slot, if one is remembered (stored plus one, so that the default remembers none).
    fn slot(self) -> Option<usize> {
        (self.0 > 0).then(|| self.0 as usize - 1)
    }
}

/// What a funnel is split by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FunnelSplit {
    None,
    Country,
    /// The marketing source of the steps' events: a session that changed source counts in
    /// each source's funnel with the steps it made under it.
    Source,
    Product,
    /// Category at this level (1 = top).
    Category(u8),
}

/// A funnel definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunnelSpec {
    pub steps: Vec<EventType>,
    pub window_ms: i64,
    pub from_ms: i64,
    pub to_ms: i64,
    /// Only steps made by events under this marketing source (the source their rows counted
    /// under): the funnel of one campaign's traffic.
    pub source: Option<String>,
}

impl FunnelSpec {
    pub fn default_steps() -> Vec<EventType> {
        vec![
            EventType::ProductView,
            EventType::AddToCart,
            EventType::CheckoutStarted,
            EventType::Purchase,
        ]
    }

    /// Parses `product_view,add_to_cart,...`.
    pub fn parse_steps(text: &str) -> Result<Vec<EventType>, String> {
        let steps: Vec<EventType> =
            text.split(',')
                .map(str::trim)
                .map(|name| match name {
                    // `page_view,,purchase` is a typo, not a two-step funnel.
                    "" => Err("an empty step (two commas in a row, or one at an end)".to_owned()),
                    name => EventType::parse(name)
                        .ok_or_else(|| format!("{name:?} is not an event type")),
                })
                .collect::<Result<_, _>>()?;
        if !(2..=MAX_STEPS).contains(&steps.len()) {
            return Err(format!("name 2 to {MAX_STEPS} steps"));
        }
        Ok(steps)
    }
}

impl FromStr for FunnelSplit {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        Ok(match text {
            "" | "none" => FunnelSplit::None,
            "country" => FunnelSplit::Country,
            "source" => FunnelSplit::Source,
            "product" => FunnelSplit::Product,
            "category" | "category_1" => FunnelSplit::Category(1),
            "category_2" => FunnelSplit::Category(2),
            "category_3" => FunnelSplit::Category(3),
            other => {
                return Err(format!(
                    "{other:?}: one of country, source, product, category, category_2, \
                     category_3"
                ));
            }
        })
    }
}

/// Sessions reaching each step, for one group.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FunnelSteps {
    pub steps: Vec<StepFigures>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepFigures {
    pub step: &'static str,
    pub sessions: u64,
    /// Sessions of this step / sessions of the previous step (`null` for the first step or
    /// when the previous step had none).
    pub conversion_from_previous: Option<f64>,
    /// Sessions of this step / sessions of the first step.
    pub conversion_from_start: Option<f64>,
    /// Sessions that reached the previous step but not this one.
    pub drop_off: u64,
}

impl FunnelSteps {
    pub fn from_counts(steps: &[EventType], counts: &[u64]) -> Self {
        let first = counts.first().copied().unwrap_or(0);
        let ratio =
            |n: u64, d: u64| (d > 0).then(|| ((n as f64 / d as f64) * 10_000.0).round() / 10_000.0);
        FunnelSteps {
            steps: steps
                .iter()
                .zip(counts)
                .enumerate()
                .map(|(index, (step, count))| {
                    let previous = index.checked_sub(1).map(|i| counts[i]);
                    StepFigures {
                        step: step.as_str(),
                        sessions: *count,
                        conversion_from_previous: previous.and_then(|p| ratio(*count, p)),
                        conversion_from_start: ratio(*count, first),
                        drop_off: previous.map_or(0, |p| p.saturating_sub(*count)),
                    }
                })
                .collect(),
        }
    }
}

impl FunnelLog {
    pub fn new(retention_ms: i64) -> Self {
        Self { retention_ms, ..Self::default() }
    }

    /// Records an event of the session whose id hashes to `session` ([`crate::distinct::hash_id`]),
    /// by the visitor whose id hashes to `visitor`, under no marketing source.
    pub fn observe(
        &mut self,
        session: u64,
        visitor: Option<u64>,
        place: Place,
        time_ms: i64,
        event_type: EventType,
        products: &[u32],
    ) {
        self.observe_remembering(
            session,
            &mut TrailHint::default(),
            visitor,
            place,
            time_ms,
            (event_type, 0),
            products,
        );
    }

    /// The marketing source an event of `session` at `time_ms` counts under: its own
    /// (`source`; 0 = none) when it names one, else its session's, that of the session's
    /// earliest event naming one among those applied so far. So a purchase on a later page
    /// counts under the campaign the session landed from. Makes the session's trail (at
    /// `place`) when it has none; `hint` as in [`FunnelLog::observe_remembering`].
    pub fn attribute(
        &mut self,
        session: u64,
        hint: &mut TrailHint,
        place: Place,
        time_ms: i64,
        source: u32,
    ) -> u32 {
        let slot = self.slot_of(session, hint, place, time_ms);
        let trail = &mut self.trails[slot];
        if source == 0 {
            return trail.source;
        }
        if let Some(offset_ms) = trail.offset_of(time_ms)
            && (trail.source == 0 || offset_ms < trail.source_offset_ms)
        {
            trail.source = source;
            trail.source_offset_ms = offset_ms;
        }
        source
    }

    /// [`FunnelLog::observe`] with the session's remembered slot, which is checked before it is
    /// used and updated after, under the marketing source the event's rows counted under.
    /// Inlined: every event with a session comes here, and with a second caller
    /// ([`FunnelLog::observe_sessionless`]) the compiler made it a call (+69 instructions an
    /// event on the bench's mix, eight arguments passed).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub fn observe_remembering(
        &mut self,
        session: u64,
        hint: &mut TrailHint,
        visitor: Option<u64>,
        place: Place,
        time_ms: i64,
        (event_type, source): (EventType, u32),
        products: &[u32],
    ) {
        if matches!(event_type, EventType::Identify) {
            return;
        }
        let slot = self.slot_of(session, hint, place, time_ms);
        let trail = &mut self.trails[slot];
        let before = trail.marks.len();
        let Some(offset_ms) = trail.offset_of(time_ms) else { return };
        // The session's visitor, country and device are those of its latest event (by event
        // time) naming them: a late or backfilled event fills in what is unknown but does not
        // move a session to another country, device or visitor.
        let latest = offset_ms >= trail.last_offset_ms;
        if let Some(visitor) = visitor
            && (latest || trail.visitor == 0)
        {
            trail.visitor = visitor;
        }
        if place.country != 0 && (latest || trail.place.country == 0) {
            trail.place.country = place.country;
        }
        if place.device != 0 && (latest || trail.place.device == 0) {
            trail.place.device = place.device;
        }
        trail.last_offset_ms = trail.last_offset_ms.max(offset_ms);
        if before < MAX_TRAIL {
            // Usually in order (checked first: no search); a late event is put in its place.
            let in_order = trail.marks.last().is_none_or(|mark| mark.offset_ms <= offset_ms);
            let index = if in_order {
                trail.marks.len()
            } else {
                trail.marks.partition_point(|mark| mark.offset_ms <= offset_ms)
            };
            let marks = products
                .iter()
                .enumerate()
                .map(|(at, &product)| Mark::new(offset_ms, product, event_type, at == 0, source));
            if products.is_empty() {
                let mark = Mark::new(offset_ms, 0, event_type, true, source);
                trail.marks.insert(index, mark);
            } else if index == trail.marks.len() {
                trail.marks.extend(marks);
            } else {
                trail.marks.splice(index..index, marks);
            }
        }
        self.marks += trail.marks.len() - before;
    }

    /// Records an event sent without a session id by the visitor whose key is `visitor` (an
    /// order a back office sends), under its own marketing source: in a trail of that
    /// visitor's such events of the day, which counts the visitor (and buyer) in the exact
    /// counts by product and below a day, but is no session (nor a funnel's).
    pub fn observe_sessionless(
        &mut self,
        visitor: u64,
        place: Place,
        time_ms: i64,
        (event_type, source): (EventType, u32),
        products: &[u32],
    ) {
        let key = sessionless_key(visitor, time_ms);
        let mut hint = TrailHint::default();
        let trails_before = self.slots.len();
        self.observe_remembering(
            key,
            &mut hint,
            Some(visitor),
            place,
            time_ms,
            (event_type, source),
            products,
        );
        // The slot map grows only when a trail is made: this visitor's day is new.
        if self.slots.len() > trails_before {
            self.sessionless += 1;
        }
    }

    /// A sign-in (an identify event) in `session` at `time_ms` by the visitor whose key is
    /// `visitor`: not a step of the session, but from then on its visitor (if the session has
    /// a trail and no later event names another).
    /// Returns the session's marketing source (0 = none or no trail), which the sign-in's own
    /// rows count under, as any event's naming none do (see [`FunnelLog::attribute`]).
    pub fn identify(&mut self, session: u64, visitor: u64, time_ms: i64) -> u32 {
        let Some(&slot) = self.slots.get(session) else { return 0 };
        let trail = &mut self.trails[slot as usize];
        if time_ms >= trail.last_ms() {
            trail.visitor = visitor;
        }
        trail.source
    }

    /// The slot of `session`'s trail, made (at `time_ms`, `place`) when it has none. Each event
    /// asks twice ([`FunnelLog::attribute`], then [`FunnelLog::observe_remembering`]): the
    /// second finds it by the hint the first left, inlined (the compiler kept a call for
    /// each: +43 instructions an event on the bench's mix).
    #[inline(always)]
    fn slot_of(&mut self, session: u64, hint: &mut TrailHint, place: Place, time_ms: i64) -> usize {
        if let Some(slot) = hint.slot()
            && self
                .trails
                .get(slot)
                .is_some_and(|trail| !trail.is_free() && trail.session == session)
        {
            return slot;
        }
        self.find_or_make_slot(session, hint, place, time_ms)
    }

    /// [`FunnelLog::slot_of`] without a hint that holds.
    fn find_or_make_slot(
        &mut self,
        session: u64,
        hint: &mut TrailHint,
        place: Place,
        time_ms: i64,
    ) -> usize {
        let (trails, free) = (&mut self.trails, &mut self.free);
        let (slot, _) = self.slots.get_or_insert_with(session, || {
            let trail = Trail {
                session,
                place,
                last_offset_ms: 0,
                base_ms: time_ms,
                visitor: 0,
                // Most sessions leave a handful of marks: one allocation instead of growing
                // through 4 and 8.
                marks: Vec::with_capacity(FIRST_MARKS),
                source: 0,
                source_offset_ms: 0,
                cart: None,
            };
            match free.pop() {
                Some(slot) => {
                    trails[slot as usize] = trail;
                    slot
                }
                None => {
                    trails.push(trail);
                    u32::try_from(trails.len() - 1).unwrap_or(u32::MAX)
                }
            }
        });
        let slot = *slot as usize;
        // (Beyond 4 billion trails a slot is simply not remembered.)
        *hint = TrailHint(u32::try_from(slot + 1).unwrap_or(0));
        slot
    }

    /// Updates the cart of `session` (whose trail an event just made or found, the hint
    /// showing where) with `update` (see [`crate::carts`]).
    pub(crate) fn update_cart(
        &mut self,
        session: u64,
        hint: &TrailHint,
        update: impl FnOnce(&mut Option<Box<SessionCart>>),
    ) {
        let slot = match hint.slot() {
            Some(slot)
                if self
                    .trails
                    .get(slot)
                    .is_some_and(|trail| !trail.is_free() && trail.session == session) =>
            {
                slot
            }
            _ => match self.slots.get(session) {
                Some(&slot) => slot as usize,
                None => return,
            },
        };
        let cart = &mut self.trails[slot].cart;
        let had = cart.is_some();
        update(cart);
        self.carts += usize::from(!had && cart.is_some());
    }

    /// Every cart the trails hold, by session id hash.
    pub(crate) fn carts(&self) -> impl Iterator<Item = (u64, &SessionCart)> {
        let held = self.trails.iter().filter(|trail| !trail.is_free());
        held.filter_map(|trail| Some((trail.session, trail.cart.as_deref()?)))
    }

    /// How many carts the trails hold.
    pub fn cart_count(&self) -> usize {
        self.carts
    }

    /// Gives each of `carts` (by session id hash, from a snapshot) to its session's trail. A
    /// cart whose trail retention has dropped is dropped too (the next pass would drop it).
    pub(crate) fn attach_carts(&mut self, carts: IdTable<SessionCart>) {
        for (session, cart) in carts.into_entries() {
            if let Some(&slot) = self.slots.get(session) {
                let trail = &mut self.trails[slot as usize];
                self.carts += usize::from(trail.cart.is_none());
                trail.cart = Some(Box::new(cart));
            }
        }
    }

    pub fn set_retention(&mut self, retention_ms: i64) {
        self.retention_ms = retention_ms;
    }

    pub fn prune(&mut self, now_ms: i64) {
        let from = now_ms - self.retention_ms;
        // Sessions quiet for this long have (nearly always) ended: their trails stop growing,
        // so they give back what their vectors reserved for growth.
        let ended = now_ms - ENDED_AFTER_MS;
        let mut removed = 0;
        for (slot, trail) in self.trails.iter_mut().enumerate() {
            if trail.is_free() {
                continue;
            }
            let last = trail.last_ms();
            if last < from {
                removed += trail.marks.len();
                self.carts -= usize::from(trail.cart.is_some());
                self.sessionless =
                    self.sessionless.saturating_sub(usize::from(trail.is_sessionless()));
                self.slots.remove(trail.session);
                *trail = Trail::FREE;
                self.free.push(slot as u32);
            } else {
                if last < ended {
                    trail.marks.shrink_to_fit();
                }
                // A cart is kept retention after its last cart or purchase event, which may
                // be before the trail's last event.
                if trail.cart.as_ref().is_some_and(|cart| cart.last_ms() < from) {
                    trail.cart = None;
                    self.carts -= 1;
                }
            }
        }
        self.marks -= removed;
        if self.free.len() >= COMPACT_MIN_FREE && self.free.len() * 2 > self.trails.len() {
            self.compact();
        }
    }

    /// Moves the live trails together and drops the free slots, once most slots are free (a
    /// traffic peak's sessions have passed retention): memory and query walks then follow the
    /// trails kept, not the peak. Hints in live entries now point at other slots; each is
    /// noticed as stale (the slot's session differs) and corrected on its session's next event.
    fn compact(&mut self) {
        self.trails.retain(|trail| !trail.is_free());
        self.free = Vec::new();
        self.slots = IdTable::with_capacity(self.trails.len());
        for (slot, trail) in self.trails.iter().enumerate() {
            self.slots.insert(trail.session, u32::try_from(slot).unwrap_or(u32::MAX));
        }
    }

    /// Runs a funnel. `group_of(store, product)` maps a product of a session in that store to
    /// its group for product and category splits (`None` = the product has no such group);
    /// `filter` keeps sessions by store, country and device, and `source` (an interned id
    /// below [`WIDE_SOURCE`]) the steps made by events under that marketing source.
    pub fn run(
        &self,
        spec: &FunnelSpec,
        split: FunnelSplit,
        (filter, source): (&LiveFilter, Option<u32>),
        group_of: impl Fn(u32, u32) -> Option<u32>,
    ) -> FastMap<u32, Vec<u64>> {
        let mut groups: FastMap<u32, Vec<u64>> = FastMap::default();
        let steps = &spec.steps;
        let source = source.map(MarkSource::stored);
        let under_source = |mark: &Mark| source.is_none_or(|source| mark.source == source);
        let first_step = |mark: &Mark| mark.event_type() == steps[0] && under_source(mark);
        for trail in self.trails.iter().filter(|trail| !trail.is_free()) {
            if !filter.admits(&trail.place) || trail.is_sessionless() {
                continue;
            }
            match split {
                FunnelSplit::None | FunnelSplit::Country => {
                    let reached = progress(trail, steps, spec, under_source);
                    if reached > 0 {
                        let group =
                            if split == FunnelSplit::Country { trail.place.country } else { 0 };
                        let counts = groups.entry(group).or_insert_with(|| vec![0; steps.len()]);
                        for count in &mut counts[..reached] {
                            *count += 1;
                        }
                    }
                }
                FunnelSplit::Source => {
                    // The sources this session's first steps were made under (a wide one is
                    // none of them: the engine refuses this split when there may be one).
                    let mut candidates: Vec<u32> = trail
                        .marks
                        .iter()
                        .filter(|mark| first_step(mark))
                        .map(Mark::source_id)
                        .filter(|source| *source != WIDE_SOURCE)
                        .collect();
                    candidates.sort_unstable();
                    candidates.dedup();
                    for group in candidates {
                        let reached =
                            progress(trail, steps, spec, |mark| mark.source_id() == group);
                        if reached > 0 {
                            let counts =
                                groups.entry(group).or_insert_with(|| vec![0; steps.len()]);
                            for count in &mut counts[..reached] {
                                *count += 1;
                            }
                        }
                    }
                }
                FunnelSplit::Product | FunnelSplit::Category(_) => {
                    let store = trail.place.store;
                    // The groups this session's first steps name.
                    let mut candidates: Vec<u32> = trail
                        .marks
                        .iter()
                        .filter(|mark| first_step(mark))
                        .filter_map(|mark| {
                            (mark.product != 0).then(|| group_of(store, mark.product)).flatten()
                        })
                        .collect();
                    candidates.sort_unstable();
                    candidates.dedup();
                    for group in candidates {
                        let reached = progress(trail, steps, spec, |mark| {
                            under_source(mark)
                                && (mark.product == 0
                                    || group_of(store, mark.product) == Some(group))
                        });
                        if reached > 0 {
                            let counts =
                                groups.entry(group).or_insert_with(|| vec![0; steps.len()]);
                            for count in &mut counts[..reached] {
                                *count += 1;
                            }
                        }
                    }
                }
            }
        }
        groups
    }

    /// Kept trails of sessions.
    pub fn sessions(&self) -> usize {
        self.slots.len().saturating_sub(self.sessionless)
    }

    /// Kept trails of a visitor's day of events sent without a session (back-office orders):
    /// no session, counted apart.
    pub fn sessionless_trails(&self) -> usize {
        self.sessionless
    }

    pub fn retention_ms(&self) -> i64 {
        self.retention_ms
    }

    /// Since when every mark knows the source its event counted under (see
    /// `sources_known_from`); 0 when all do.
    pub fn sources_known_from(&self) -> i64 {
        self.sources_known_from
    }

    /// Every kept trail with an event in `[from_ms, to_ms)`: where it was seen, its visitor's
    /// hash (0 = none), whether it is a session (not a visitor's events sent without one) and
    /// its marks as (time, event type, product; 0 = none), in time order.
    pub fn trails(&self, from_ms: i64, to_ms: i64) -> impl Iterator<Item = KeptTrail<'_>> + '_ {
        self.trails
            .iter()
            .filter(move |trail| {
                !trail.is_free() && trail.last_ms() >= from_ms && trail.base_ms < to_ms
            })
            .map(|trail| KeptTrail {
                place: trail.place,
                visitor: trail.visitor,
                is_session: !trail.is_sessionless(),
                trail,
            })
    }

    pub fn heap_bytes(&self) -> usize {
        self.trails.heap_bytes()
            + self.slots.heap_bytes()
            + self.free.capacity() * 4
            // Ended sessions' trails are shrunk to their marks (see `prune`); the few live
            // ones may hold up to FIRST_MARKS of room beyond theirs, not counted.
            + self.marks * std::mem::size_of::<Mark>()
    }
}

/// How many steps a session reached: from a first step in range, each next step matched by a
/// later event than the one that matched the previous step (later in the trail, which is in
/// time order) within the window of that first step; the most any first step in range reaches
/// (a session that browsed three hours ago and came back to buy is counted from the visit that
/// bought, whatever range holds both). One event never counts at two steps, so
/// `page_view,page_view` counts sessions with two page views, not every session with one.
fn progress(
    trail: &Trail,
    steps: &[EventType],
    spec: &FunnelSpec,
    matches: impl Fn(&Mark) -> bool,
) -> usize {
    let marks = &trail.marks;
    let mut best = 0;
    for (start, mark) in marks.iter().enumerate() {
        let time = trail.time_of(mark);
        if mark.event_type() != steps[0]
            || time < spec.from_ms
            || time >= spec.to_ms
            || !matches(mark)
        {
            continue;
        }
        let deadline = time + spec.window_ms;
        let mut reached = 1;
        let mut previous = start;
        for step in &steps[1..] {
            let after = end_of_event(marks, previous);
            let next = marks[after..].iter().position(|mark| {
                mark.event_type() == *step && trail.time_of(mark) <= deadline && matches(mark)
            });
            match next {
                Some(offset) => {
                    reached += 1;
                    previous = after + offset;
                }
                None => break,
            }
        }
        best = best.max(reached);
        if best == steps.len() {
            break;
        }
    }
    best
}

/// The index after the last mark of the event that left `marks[index]` (an event naming
/// several products leaves one mark per product, side by side).
fn end_of_event(marks: &[Mark], index: usize) -> usize {
    index + 1 + marks[index + 1..].iter().take_while(|next| !next.starts_event()).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Marks of formats 13 and 14 kept no source: they take their session's, which every
    /// event of a session that never changed source counted under; a mark's source past 16
    /// bits reads as wide, never as another source.
    #[test]
    fn older_marks_take_their_sessions_source_and_wide_ids_stay_wide() {
        let mark = |offset_ms| MarkUpToV14 {
            offset_ms,
            product: 3,
            event_type: EventType::ProductView,
            starts_event: true,
        };
        let old = TrailUpToV14 {
            session: 9,
            place: Place::default(),
            last_offset_ms: 5,
            base_ms: 1_000,
            visitor: 0,
            marks: vec![mark(0), mark(5)],
            source: 7,
            source_offset_ms: 0,
        };
        let trail = Trail::from(old);
        let kept = KeptTrail { place: trail.place, visitor: 0, is_session: true, trail: &trail };
        let sources: Vec<MarkSource> = kept.marks().map(|mark| mark.source).collect();
        assert_eq!(sources, [MarkSource::Id(7), MarkSource::Id(7)]);

        let mut log = FunnelLog::new(30 * 24 * HOUR);
        let mut hint = TrailHint::default();
        for (at, source) in [(0, WIDE_SOURCE - 1), (1, WIDE_SOURCE), (2, u32::MAX), (3, 0)] {
            let marked = (EventType::PageView, source);
            log.observe_remembering(1, &mut hint, None, Place::default(), 1_000 + at, marked, &[]);
        }
        let sources: Vec<MarkSource> = log
            .trails(0, i64::MAX)
            .flat_map(|trail| trail.marks().collect::<Vec<_>>())
            .map(|mark| mark.source)
            .collect();
        assert_eq!(
            sources,
            [
                MarkSource::Id(WIDE_SOURCE - 1),
                MarkSource::Wide,
                MarkSource::Wide,
                MarkSource::Id(0)
            ]
        );
    }

    /// A mark keeps its event type as its place in `EventType::ALL`, beside the bit saying it
    /// starts its event.
    #[test]
    fn marks_keep_every_event_type_and_whether_they_start_an_event() {
        for event_type in EventType::ALL {
            for starts in [false, true] {
                let mark = Mark::new(1, 2, event_type, starts, 3);
                assert_eq!((mark.event_type(), mark.starts_event()), (event_type, starts));
            }
        }
    }

    const HOUR: i64 = 3_600_000;

    fn spec(from_ms: i64, to_ms: i64) -> FunnelSpec {
        FunnelSpec {
            steps: FunnelSpec::default_steps(),
            window_ms: HOUR,
            from_ms,
            to_ms,
            source: None,
        }
    }

    fn reached(log: &FunnelLog, spec: &FunnelSpec) -> Vec<u64> {
        let groups = log.run(spec, FunnelSplit::None, (&LiveFilter::default(), None), |_, _| None);
        groups.get(&0).cloned().unwrap_or_default()
    }

    /// Three cart adds sent with one whole-second timestamp are three events, not one event
    /// naming three products.
    #[test]
    fn events_of_one_millisecond_are_separate_steps() {
        let mut log = FunnelLog::new(30 * 24 * HOUR);
        let base = 1_800_000_000_000;
        for product in [1, 2, 3] {
            log.observe(7, None, Place::default(), base, EventType::AddToCart, &[product]);
        }
        // And one event naming two products is still one event.
        log.observe(8, None, Place::default(), base, EventType::AddToCart, &[1, 2]);
        let steps = vec![EventType::AddToCart; 3];
        let spec =
            FunnelSpec { steps, window_ms: HOUR, from_ms: base, to_ms: base + HOUR, source: None };
        assert_eq!(reached(&log, &spec), [2, 1, 1]);
    }

    /// A session that browsed hours ago and came back to buy counts from the visit that
    /// bought: a wider range never shows less conversion.
    #[test]
    fn every_first_step_in_range_is_tried() {
        let mut log = FunnelLog::new(30 * 24 * HOUR);
        let base = 1_800_000_000_000;
        let place = Place::default();
        log.observe(7, None, place, base, EventType::ProductView, &[]);
        log.observe(7, None, place, base + 3 * HOUR, EventType::ProductView, &[]);
        log.observe(7, None, place, base + 3 * HOUR + 10_000, EventType::AddToCart, &[]);
        let steps = vec![EventType::ProductView, EventType::AddToCart];
        let spec = |from_ms| FunnelSpec {
            steps: steps.clone(),
            window_ms: HOUR,
            from_ms,
            to_ms: base + 4 * HOUR,
            source: None,
        };
        assert_eq!(reached(&log, &spec(base + 2 * HOUR)), [1, 1]);
        assert_eq!(reached(&log, &spec(base)), [1, 1]);
    }

    /// A late event (earlier event time) fills in what a session does not know yet but does
    /// not move it to its country, device or visitor.
    #[test]
    fn a_sessions_place_and_visitor_are_its_latest_events() {
        let mut log = FunnelLog::new(30 * 24 * HOUR);
        let base = 1_800_000_000_000;
        let us = Place { store: 1, country: 1, device: 1 };
        let de = Place { store: 1, country: 2, device: 2 };
        log.observe(7, Some(11), us, base, EventType::PageView, &[]);
        log.observe(7, Some(12), de, base - 60_000, EventType::PageView, &[]);
        let trail = &log.trails[0];
        assert_eq!((trail.place, trail.visitor), (us, 11));
        log.observe(7, Some(13), de, base + 60_000, EventType::PageView, &[]);
        let trail = &log.trails[0];
        assert_eq!((trail.place, trail.visitor), (de, 13));
    }

    #[test]
    fn late_events_earlier_than_the_trail_move_its_base_back() {
        let mut log = FunnelLog::new(30 * 24 * HOUR);
        let place = Place::default();
        let base = 1_800_000_000_000;
        log.observe(7, None, place, base + 10_000, EventType::Purchase, &[]);
        log.observe(7, None, place, base + 8_000, EventType::CheckoutStarted, &[]);
        log.observe(7, None, place, base + 2_000, EventType::ProductView, &[3]);
        log.observe(7, None, place, base + 5_000, EventType::AddToCart, &[3]);
        assert_eq!(reached(&log, &spec(base, base + HOUR)), [1, 1, 1, 1]);
        // The range is by the first step's time, which the rebase kept exact.
        assert!(reached(&log, &spec(base + 2_001, base + HOUR)).is_empty());
    }

    /// A late event takes its place in time order, so a funnel reads the same whatever order
    /// the events came in: the cart add at minute 70 is past the hour of the first product
    /// view (minute 0) but within that of the view at minute 20, which counts.
    #[test]
    fn a_late_event_is_read_in_its_place() {
        let place = Place::default();
        let base = 1_800_000_000_000;
        let minute = 60_000;
        let events = [
            (20 * minute, EventType::ProductView),
            (70 * minute, EventType::AddToCart),
            (0, EventType::ProductView),
            (30 * minute, EventType::ProductView),
        ];
        let mut in_time_order = events;
        in_time_order.sort_by_key(|(offset, _)| *offset);
        let range = spec(base, base + 2 * HOUR);
        for order in [events, in_time_order] {
            let mut log = FunnelLog::new(30 * 24 * HOUR);
            for (offset, event_type) in order {
                log.observe(7, None, place, base + offset, event_type, &[3]);
            }
            assert_eq!(reached(&log, &range), [1, 1, 0, 0], "{order:?}");
        }
    }

    /// A hint left from a pruned trail, whose slot another session took since, must not send
    /// events to that other session's trail.
    #[test]
    fn a_stale_trail_hint_finds_its_own_trail() {
        let mut log = FunnelLog::new(HOUR);
        let place = Place::default();
        let base = 1_800_000_000_000;
        let mut hint_a = TrailHint::default();
        log.observe_remembering(
            1,
            &mut hint_a,
            None,
            place,
            base,
            (EventType::ProductView, 0),
            &[],
        );
        log.prune(base + 2 * HOUR);
        assert_eq!(log.sessions(), 0);
        let mut hint_b = TrailHint::default();
        let later = base + 3 * HOUR;
        log.observe_remembering(
            2,
            &mut hint_b,
            None,
            place,
            later,
            (EventType::ProductView, 0),
            &[],
        );
        assert_eq!(hint_a, hint_b, "session 2 took the freed slot");
        for step in [EventType::AddToCart, EventType::CheckoutStarted] {
            log.observe_remembering(1, &mut hint_a, None, place, later + 1, (step, 0), &[]);
        }
        assert_ne!(hint_a, hint_b);
        assert_eq!(log.sessions(), 2);
        let mut marks: Vec<usize> =
            log.trails(later, later + HOUR).map(|trail| trail.marks().count()).collect();
        marks.sort_unstable();
        assert_eq!(marks, [1, 2], "session 2 keeps its one mark, session 1 has its two");
    }

    /// After a peak of sessions has passed retention, the free slots are given back, and a
    /// surviving session's events (its hint now stale) still reach its own trail.
    #[test]
    fn a_peak_of_pruned_trails_is_compacted_away() {
        let mut log = FunnelLog::new(HOUR);
        let place = Place::default();
        let base = 1_800_000_000_000;
        for session in 1..=3_000u64 {
            log.observe(session, None, place, base, EventType::ProductView, &[]);
        }
        // The last session stays active: its hint points at the last slot.
        let survivor = 3_001;
        let mut hint = TrailHint::default();
        let later = base + 2 * HOUR;
        log.observe_remembering(
            survivor,
            &mut hint,
            None,
            place,
            later,
            (EventType::ProductView, 0),
            &[],
        );
        assert_eq!(hint.slot(), Some(3_000));
        log.prune(later + 1);
        assert_eq!(log.sessions(), 1);
        assert_eq!(log.trails.len(), 1, "the 3,000 free slots are gone");
        assert!(log.free.is_empty());
        for step in [EventType::AddToCart, EventType::CheckoutStarted, EventType::Purchase] {
            log.observe_remembering(
                survivor,
                &mut hint,
                None,
                place,
                later + 1_000,
                (step, 0),
                &[],
            );
        }
        assert_eq!(hint.slot(), Some(0), "the stale hint was corrected");
        assert_eq!(reached(&log, &spec(later, later + HOUR)), [1, 1, 1, 1]);
        // New sessions are appended after the survivor.
        log.observe(9, None, place, later + 2_000, EventType::ProductView, &[]);
        assert_eq!((log.sessions(), log.trails.len()), (2, 2));
    }

    #[test]
    fn a_stored_log_rebuilds_its_slots_free_list_and_mark_count() {
        let mut log = FunnelLog::new(HOUR);
        let place = Place::default();
        let base = 1_800_000_000_000;
        for session in 1..=4u64 {
            log.observe(session, None, place, base, EventType::ProductView, &[]);
        }
        log.observe(5, None, place, base + 2 * HOUR, EventType::ProductView, &[7, 8]);
        log.prune(base + 2 * HOUR);
        assert_eq!((log.sessions(), log.free.len(), log.marks), (1, 4, 2));

        let bytes = postcard::to_stdvec(&log).unwrap();
        let mut stored: FunnelLog = postcard::from_bytes(&bytes).unwrap();
        assert_eq!((stored.sessions(), stored.free.len(), stored.marks), (1, 4, 2));
        // The kept session still finds its trail; a new one takes a free slot.
        let later = base + 2 * HOUR + 1_000;
        stored.observe(5, None, place, later, EventType::AddToCart, &[7]);
        stored.observe(6, None, place, later, EventType::ProductView, &[]);
        assert_eq!((stored.sessions(), stored.trails.len(), stored.marks), (2, 5, 4));
        assert_eq!(reached(&stored, &spec(base + HOUR, later + 1)), [2, 1, 0, 0]);
    }

    /// A repeated step needs another event: one page view counted at both steps of
    /// `page_view,page_view`, so "viewed two or more" funnels counted every viewer.
    #[test]
    fn a_repeated_step_is_matched_by_a_later_event() {
        let place = Place::default();
        let base = 1_800_000_000_000;
        let twice = |steps: Vec<EventType>| FunnelSpec {
            steps,
            window_ms: HOUR,
            from_ms: base,
            to_ms: base + HOUR,
            source: None,
        };
        let views = twice(vec![EventType::PageView, EventType::PageView]);
        let mut log = FunnelLog::new(30 * 24 * HOUR);
        log.observe(1, None, place, base + 1_000, EventType::PageView, &[]);
        assert_eq!(reached(&log, &views), [1, 0], "one page view: the first step only");
        log.observe(1, None, place, base + 2_000, EventType::PageView, &[]);
        assert_eq!(reached(&log, &views), [1, 1], "two page views: both steps");
        let thrice = twice(vec![EventType::PageView; 3]);
        assert_eq!(reached(&log, &thrice), [1, 1, 0]);

        // One product view naming two products is one event, whichever split.
        let product_views = twice(vec![EventType::ProductView, EventType::ProductView]);
        let mut log = FunnelLog::new(30 * 24 * HOUR);
        log.observe(2, None, place, base + 1_000, EventType::ProductView, &[7, 8]);
        assert_eq!(reached(&log, &product_views), [1, 0]);
        let filter = LiveFilter::default();
        let by_product =
            log.run(&product_views, FunnelSplit::Product, (&filter, None), |_, product| {
                Some(product)
            });
        assert_eq!(by_product.get(&7), Some(&vec![1, 0]));
        assert_eq!(by_product.get(&8), Some(&vec![1, 0]));
        log.observe(2, None, place, base + 2_000, EventType::ProductView, &[7]);
        assert_eq!(reached(&log, &product_views), [1, 1]);
        let by_product =
            log.run(&product_views, FunnelSplit::Product, (&filter, None), |_, product| {
                Some(product)
            });
        assert_eq!(by_product.get(&7), Some(&vec![1, 1]));
        assert_eq!(by_product.get(&8), Some(&vec![1, 0]));
    }

    #[test]
    fn a_mark_takes_twelve_bytes() {
        // The module docs and the memory figures in docs/performance.md rely on it.
        assert_eq!(std::mem::size_of::<Mark>(), 12);
    }

    #[test]
    fn events_beyond_what_a_trail_spans_are_left_out() {
        let mut log = FunnelLog::new(365 * 24 * HOUR);
        let place = Place::default();
        let base = 1_800_000_000_000;
        log.observe(1, None, place, base, EventType::ProductView, &[]);
        log.observe(1, None, place, base + 60 * 24 * HOUR, EventType::AddToCart, &[]);
        log.observe(1, None, place, base - 60 * 24 * HOUR, EventType::AddToCart, &[]);
        log.observe(1, None, place, base + 1_000, EventType::AddToCart, &[]);
        assert_eq!(reached(&log, &spec(base - 100 * 24 * HOUR, base + HOUR)), [1, 1, 0, 0]);
    }
}
