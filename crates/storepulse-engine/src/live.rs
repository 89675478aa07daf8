//! Live windows (seed 3, with its bugs fixed): who is active now, and what they look at.
//!
//! A visitor (user id, else anonymous id) or a session is active when its *latest* event time
//! is within the active window (5 minutes by default), to the second: counts come from an
//! index of last-seen seconds, and the second in which the window starts counts whole. Last-seen only ever moves forward, so a
//! late or replayed event never makes someone look older (seed 3 overwrote it). Page views
//! are counted in 10-second buckets, so "the last 15 minutes" is exact to 10 seconds (seed 3
//! counted whole minutes and covered 15–16 of them). Everything here is pruned by
//! [`LiveWindows::prune`], so memory follows the active set, not history.

use std::collections::{BTreeMap, VecDeque};

use crate::FastMap;

use compact_str::CompactString;
use smallvec::SmallVec;

use crate::distinct::SketchMemo;
use crate::funnel::TrailHint;
use crate::id_table::IdTable;
use crate::intern::Interner;

pub const PAGE_BUCKET_MS: i64 = 10_000;

/// The dimensions a live figure can be filtered by, as ids (`None` = any).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveFilter {
    pub store: Option<u32>,
    pub country: Option<u32>,
    pub device: Option<u8>,
}

impl LiveFilter {
    pub(crate) fn admits(&self, place: &Place) -> bool {
        self.store.is_none_or(|store| store == place.store)
            && self.country.is_none_or(|country| country == place.country)
            && self.device.is_none_or(|device| device == place.device)
    }
}

/// Where an active visitor or session was last seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Place {
    pub store: u32,
    pub country: u32,
    pub device: u8,
}

/// One word instead of three fields: page-view counts hash a place on every page view. Ids
/// past 2^24 only share hash bits; equality still compares every field.
impl std::hash::Hash for Place {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let word =
            u64::from(self.store) << 40 ^ u64::from(self.country) << 8 ^ u64::from(self.device);
        state.write_u64(word);
    }
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Presence {
    last_seen: i64,
    place: Place,
    /// Kept here for [`crate::distinct`] and [`crate::funnel`], which run right after on the
    /// same event: this entry is in cache by then, their own maps may not be.
    #[serde(skip)]
    sketched: SketchMemo,
    #[serde(skip)]
    trail: TrailHint,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct VisitorPresence {
    last_seen: i64,
    place: Place,
    id: CompactString,
    /// The visitor's sessions, each with its last-seen, for `GET /users/{id}/sessions`. Kept
    /// in the visitor's own entry (nearly always one or two, inline) because a separate map
    /// cost every event one more cache miss.
    sessions: SmallVec<[(u64, i64); 2]>,
    #[serde(skip)]
    sketched: SketchMemo,
}

/// Which visitors (or sessions) were last seen in each second, and how many the table holds
/// per place: "active now" is the held count less those last seen before the window, and
/// expiry visits only the ids of the seconds that left the window.
///
/// An event only lists its id under a new second when its last-seen moves into one. Nothing
/// is taken out of the second it leaves: an id stays listed there and counts only where its
/// entry's last-seen is. An index that counted per second and place instead (before the
/// thirteenth session) moved a count from one second to another on nearly every event, four
/// list searches that were 15 % of applying the bench's mix.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
struct ActiveIndex {
    /// In time order; nearly every update lands in the newest second. The ids whose last-seen
    /// moved into the second (an id may since have moved on).
    by_second: VecDeque<(i64, SmallVec<[u64; 4]>)>,
    /// Entries the table holds, by the place each was last seen in.
    held: PlaceCounts,
}

/// Counts of more places than this are kept in a hash map.
const FEW_PLACES: usize = 16;

/// How many visitors (or sessions) are held per place. Most shops see a handful of places
/// (store, country, device), so a short list scanned in order (no allocation, no hashing)
/// beats a hash map until [`FEW_PLACES`]; more move to a map. Serialized as a map either way.
#[derive(Clone, Debug)]
enum PlaceCounts {
    Few(SmallVec<[(Place, u32); 4]>),
    Many(FastMap<Place, u32>),
}

impl Default for PlaceCounts {
    fn default() -> Self {
        PlaceCounts::Few(SmallVec::new())
    }
}

impl PlaceCounts {
    fn add(&mut self, place: Place) {
        match self {
            PlaceCounts::Few(list) => {
                if let Some((_, count)) = list.iter_mut().find(|(held, _)| *held == place) {
                    *count += 1;
                } else if list.len() < FEW_PLACES {
                    list.push((place, 1));
                } else {
                    let mut map: FastMap<Place, u32> = list.drain(..).collect();
                    map.insert(place, 1);
                    *self = PlaceCounts::Many(map);
                }
            }
            PlaceCounts::Many(map) => *map.entry(place).or_default() += 1,
        }
    }

    /// One fewer at `place` (a place whose count reaches zero is dropped).
    fn remove(&mut self, place: Place) {
        match self {
            PlaceCounts::Few(list) => {
                if let Some(index) = list.iter().position(|(held, _)| *held == place) {
                    list[index].1 -= 1;
                    if list[index].1 == 0 {
                        list.swap_remove(index);
                    }
                }
            }
            PlaceCounts::Many(map) => {
                if let Some(count) = map.get_mut(&place) {
                    *count -= 1;
                    if *count == 0 {
                        map.remove(&place);
                    }
                }
            }
        }
    }

    fn iter(&self) -> impl Iterator<Item = (&Place, &u32)> {
        let (few, many) = match self {
            PlaceCounts::Few(list) => {
                (Some(list.iter().map(|(place, count)| (place, count))), None)
            }
            PlaceCounts::Many(map) => (None, Some(map.iter())),
        };
        few.into_iter().flatten().chain(many.into_iter().flatten())
    }
}

impl serde::Serialize for PlaceCounts {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let held = match self {
            PlaceCounts::Few(list) => list.len(),
            PlaceCounts::Many(map) => map.len(),
        };
        let mut map = serializer.serialize_map(Some(held))?;
        for (place, count) in self.iter() {
            map.serialize_entry(place, count)?;
        }
        map.end()
    }
}

impl<'de> serde::Deserialize<'de> for PlaceCounts {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = FastMap::<Place, u32>::deserialize(deserializer)?;
        Ok(if map.len() <= FEW_PLACES {
            PlaceCounts::Few(map.into_iter().collect())
        } else {
            PlaceCounts::Many(map)
        })
    }
}

impl ActiveIndex {
    /// Lists `id` under `second`. Inline for the newest second, where nearly every id goes.
    #[inline]
    fn list(&mut self, second: i64, id: u64) {
        match self.by_second.back_mut() {
            Some((last, ids)) if *last == second => ids.push(id),
            _ => self.list_elsewhere(second, id),
        }
    }

    /// Lists `id` under a second that is not the newest held, making it when it is not held.
    #[inline(never)]
    fn list_elsewhere(&mut self, second: i64, id: u64) {
        match self.by_second.back() {
            Some((last, _)) if *last > second => {
                match self.by_second.binary_search_by_key(&second, |(s, _)| *s) {
                    Ok(index) => self.by_second[index].1.push(id),
                    Err(index) => self.by_second.insert(index, (second, smallvec::smallvec![id])),
                }
            }
            _ => {
                // Sized like the second before: one allocation each instead of growing
                // through every power of two.
                let room = self.by_second.back().map_or(1, |(_, last)| last.len().max(1));
                let mut ids = SmallVec::with_capacity(room);
                ids.push(id);
                self.by_second.push_back((second, ids));
            }
        }
    }

    /// A new entry, last seen in `second` in `place`.
    #[inline]
    fn arrive(&mut self, second: i64, place: Place, id: u64) {
        self.list(second, id);
        self.held.add(place);
    }

    /// Entries of `table` last seen in a second that overlaps `[from_ms, ∞)`.
    fn count<P: Seen>(&self, table: &IdTable<P>, from_ms: i64, filter: &LiveFilter) -> u64 {
        let held: u64 = self
            .held
            .iter()
            .filter(|(place, _)| filter.admits(place))
            .map(|(_, count)| u64::from(*count))
            .sum();
        // Those last seen before the window, not yet expired: at most the seconds since the
        // last `LiveWindows::prune` (the server prunes every second), each id looked up.
        let from = from_ms.div_euclid(1000);
        let before = self.by_second.partition_point(|(second, _)| *second < from);
        let mut left: u64 = 0;
        for (second, ids) in self.by_second.range(..before) {
            for id in ids {
                if let Some(entry) = table.get(*id) {
                    let (last_seen, place) = entry.last_seen();
                    if last_seen.div_euclid(1000) == *second && filter.admits(&place) {
                        left += 1;
                    }
                }
            }
        }
        debug_assert!(left <= held, "each id left behind is also held");
        held.saturating_sub(left)
    }

    /// Drops the seconds before `from_ms` and returns the ids they listed.
    fn expire_before(&mut self, from_ms: i64) -> Vec<u64> {
        let cutoff = from_ms.div_euclid(1000);
        let mut expired = Vec::new();
        while self.by_second.front().is_some_and(|(s, _)| *s < cutoff) {
            if let Some((_, ids)) = self.by_second.pop_front() {
                expired.extend(ids);
            }
        }
        expired
    }

    /// Removes from `table` the entries among `ids` last seen before `from_ms`.
    fn forget<P: Seen>(&mut self, table: &mut IdTable<P>, ids: Vec<u64>, from_ms: i64) {
        for id in ids {
            if let Some(entry) = table.get(id)
                && let (last_seen, place) = entry.last_seen()
                && last_seen < from_ms
            {
                table.remove(id);
                self.held.remove(place);
            }
        }
    }

    /// `held` counted again from `table` (for snapshots of formats that did not keep it).
    fn recount<P: Seen>(&mut self, table: &IdTable<P>) {
        self.held = PlaceCounts::default();
        for entry in table.values() {
            self.held.add(entry.last_seen().1);
        }
    }
}

/// The active index as snapshot formats 8 to 10 stored it: each second also held its counts
/// per place, which the index no longer keeps (see [`ActiveIndex`]).
#[derive(serde::Deserialize)]
struct ActiveIndexUpToV10 {
    by_second: VecDeque<(i64, SecondUpToV10)>,
}

#[derive(serde::Deserialize)]
struct SecondUpToV10 {
    _places: PlaceCounts,
    ids: SmallVec<[u64; 4]>,
}

impl ActiveIndexUpToV10 {
    /// The index of this build over `table`, whose entries it counts per place again.
    fn upgrade<P: Seen>(self, table: &IdTable<P>) -> ActiveIndex {
        let by_second = self.by_second.into_iter().map(|(second, old)| (second, old.ids));
        let mut index =
            ActiveIndex { by_second: by_second.collect(), held: PlaceCounts::default() };
        index.recount(table);
        index
    }
}

/// [`LiveWindows`] as snapshot formats 8 to 10 stored them, converted on load.
#[derive(serde::Deserialize)]
pub(crate) struct LiveWindowsUpToV10 {
    active_window_ms: i64,
    page_window_ms: i64,
    visitors: IdTable<VisitorPresence>,
    sessions: IdTable<Presence>,
    active_visitors: ActiveIndexUpToV10,
    active_sessions: ActiveIndexUpToV10,
    page_views: BTreeMap<i64, FastMap<PageKey, u64>>,
    pages: Interner,
}

impl From<LiveWindowsUpToV10> for LiveWindows {
    fn from(old: LiveWindowsUpToV10) -> Self {
        LiveWindows {
            active_visitors: old.active_visitors.upgrade(&old.visitors),
            active_sessions: old.active_sessions.upgrade(&old.sessions),
            active_window_ms: old.active_window_ms,
            page_window_ms: old.page_window_ms,
            visitors: old.visitors,
            sessions: old.sessions,
            page_views: old.page_views,
            pages: old.pages,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
struct PageKey {
    place: Place,
    page: u32,
}

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct LiveWindows {
    active_window_ms: i64,
    page_window_ms: i64,
    /// Keyed by the id's 64-bit hash ([`crate::distinct::hash_id`]), computed once per event.
    visitors: IdTable<VisitorPresence>,
    sessions: IdTable<Presence>,
    active_visitors: ActiveIndex,
    active_sessions: ActiveIndex,
    page_views: BTreeMap<i64, FastMap<PageKey, u64>>,
    pages: Interner,
}

/// What other parts of the engine keep in the live entries of an event's visitor and session
/// (none for an event older than the active window).
#[derive(Debug, Default)]
pub struct Remembered<'a> {
    pub visitor_sketches: Option<&'a mut SketchMemo>,
    pub session_sketches: Option<&'a mut SketchMemo>,
    pub trail: Option<&'a mut TrailHint>,
}

/// One visitor's or session's observation, as the engine passes it in.
pub struct Sighting<'a> {
    pub time_ms: i64,
    pub place: Place,
    pub visitor: Option<(&'a str, u64)>,
    /// The session id's hash.
    pub session: Option<u64>,
    /// The page of a page view.
    pub page_view: Option<&'a str>,
}

impl LiveWindows {
    pub fn new(active_window_ms: i64, page_window_ms: i64) -> Self {
        Self { active_window_ms, page_window_ms, ..Self::default() }
    }

    pub fn set_windows(&mut self, active_window_ms: i64, page_window_ms: i64) {
        self.active_window_ms = active_window_ms;
        self.page_window_ms = page_window_ms;
    }

    pub fn active_window_ms(&self) -> i64 {
        self.active_window_ms
    }

    pub fn page_window_ms(&self) -> i64 {
        self.page_window_ms
    }

    /// Records a sighting. Events older than the windows as of `newest_ms` (the latest event
    /// time applied that was not ahead of its receive time, see the engine) change nothing
    /// here; they still count in the rollups. Returns what the rest of the engine remembers in
    /// the visitor's and session's entries.
    pub fn observe(&mut self, sighting: &Sighting<'_>, newest_ms: i64) -> Remembered<'_> {
        let time = sighting.time_ms;
        let mut remembered = Remembered::default();
        let window = self.active_window_ms;
        if time >= newest_ms - window {
            let place = sighting.place;
            let mut visitor_sessions = None;
            if let Some((id, visitor)) = sighting.visitor {
                let presence = sight(
                    &mut self.visitors,
                    &mut self.active_visitors,
                    (time, place, visitor),
                    || VisitorPresence {
                        last_seen: time,
                        place,
                        id: id.into(),
                        sessions: SmallVec::new(),
                        sketched: SketchMemo::default(),
                    },
                );
                visitor_sessions = Some(&mut presence.sessions);
                remembered.visitor_sketches = Some(&mut presence.sketched);
            }
            if let Some(session) = sighting.session {
                let presence = sight(
                    &mut self.sessions,
                    &mut self.active_sessions,
                    (time, place, session),
                    || Presence {
                        last_seen: time,
                        place,
                        sketched: SketchMemo::default(),
                        trail: TrailHint::default(),
                    },
                );
                remembered.session_sketches = Some(&mut presence.sketched);
                remembered.trail = Some(&mut presence.trail);
                if let Some(sessions) = visitor_sessions {
                    match sessions.iter_mut().find(|(id, _)| *id == session) {
                        Some((_, last_seen)) => *last_seen = (*last_seen).max(time),
                        None => {
                            // A visitor opening session after session (a bot, a broken tracker)
                            // must not grow a list scanned on each of its events: sessions
                            // that left the window no longer count anyway.
                            if sessions.len() >= 8 {
                                let from = (newest_ms - window).div_euclid(1000) * 1000;
                                sessions.retain(|(_, seen)| *seen >= from);
                            }
                            sessions.push((session, time));
                        }
                    }
                }
            }
        }
        if let Some(page) = sighting.page_view
            && time >= newest_ms - self.page_window_ms
        {
            let page = self.pages.intern(page);
            let bucket = time.div_euclid(PAGE_BUCKET_MS) * PAGE_BUCKET_MS;
            // Nearly every page view is in the newest bucket: checked before a tree search.
            let counts = match self.page_views.last_entry() {
                Some(newest) if *newest.key() == bucket => newest.into_mut(),
                newest => {
                    // Room for as many pages as the bucket before had, so that a new bucket
                    // does not rehash its way up through every power of two.
                    let room = newest.map_or(0, |newest| newest.get().len());
                    self.page_views.entry(bucket).or_insert_with(|| {
                        FastMap::with_capacity_and_hasher(room, Default::default())
                    })
                }
            };
            *counts.entry(PageKey { place: sighting.place, page }).or_default() += 1;
        }
        remembered
    }

    /// Forgets what is outside every window as of `now_ms`. Visits only the ids whose
    /// last-seen second left the window, so it costs what expired, not what is active.
    pub fn prune(&mut self, now_ms: i64) {
        // Kept to the start of the second the window begins in, like the index.
        let active_from = (now_ms - self.active_window_ms).div_euclid(1000) * 1000;
        let visitors = self.active_visitors.expire_before(active_from);
        self.active_visitors.forget(&mut self.visitors, visitors, active_from);
        let sessions = self.active_sessions.expire_before(active_from);
        self.active_sessions.forget(&mut self.sessions, sessions, active_from);
        // After a spike, or a replay that applied days of events before its first prune, the
        // tables would otherwise keep the size of the largest crowd they ever held.
        self.visitors.shrink_if_sparse();
        self.sessions.shrink_if_sparse();
        let pages_from = page_window_start(now_ms, self.page_window_ms);
        self.page_views = self.page_views.split_off(&pages_from);
    }

    /// Distinct active visitors and sessions as of `now_ms`.
    pub fn active_counts(&self, now_ms: i64, filter: &LiveFilter) -> (u64, u64) {
        let from = now_ms - self.active_window_ms;
        (
            self.active_visitors.count(&self.visitors, from, filter),
            self.active_sessions.count(&self.sessions, from, filter),
        )
    }

    /// The active visitors' ids, sorted, each once (one id may be a visitor of several stores).
    pub fn active_visitors(&self, now_ms: i64, filter: &LiveFilter) -> Vec<&str> {
        let from = (now_ms - self.active_window_ms).div_euclid(1000) * 1000;
        let mut ids: Vec<&str> = self
            .visitors
            .values()
            .filter(|p| p.last_seen >= from && filter.admits(&p.place))
            .map(|p| p.id.as_str())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The active sessions as of `now_ms` that `filter` admits of the visitor whose key is
    /// `visitor` (its id's hash in one store, see [`crate::distinct::in_store`]).
    pub fn visitor_active_sessions(&self, now_ms: i64, visitor: u64, filter: &LiveFilter) -> u64 {
        let from = (now_ms - self.active_window_ms).div_euclid(1000) * 1000;
        let any_place = *filter == LiveFilter::default();
        self.visitors.get(visitor).map_or(0, |presence| {
            let admitted = |session: u64| {
                any_place
                    || self.sessions.get(session).is_some_and(|entry| filter.admits(&entry.place))
            };
            presence
                .sessions
                .iter()
                .filter(|(session, seen)| *seen >= from && admitted(*session))
                .count() as u64
        })
    }

    /// Page views in the page window and the `top` pages by count (ties by page, ascending).
    pub fn page_views(
        &self,
        now_ms: i64,
        filter: &LiveFilter,
        top: usize,
    ) -> (u64, Vec<(&str, u64)>) {
        let from = page_window_start(now_ms, self.page_window_ms);
        let mut counts: FastMap<u32, u64> = FastMap::default();
        let mut total = 0;
        for bucket in self.page_views.range(from..).map(|(_, bucket)| bucket) {
            for (key, count) in bucket {
                if filter.admits(&key.place) {
                    *counts.entry(key.page).or_default() += count;
                    total += count;
                }
            }
        }
        let mut ranked: Vec<(&str, u64)> = counts
            .into_iter()
            .filter_map(|(page, count)| Some((self.pages.name(page)?, count)))
            .collect();
        ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        ranked.truncate(top);
        (total, ranked)
    }

    pub fn sizes(&self) -> (usize, usize, usize) {
        (self.visitors.len(), self.sessions.len(), self.page_views.len())
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        let visitors = self.visitors.heap_bytes();
        let sessions = self.sessions.heap_bytes();
        let pages: usize = self.page_views.values().map(|b| b.capacity() * 32).sum();
        visitors + sessions + pages + self.pages.heap_bytes()
    }
}

/// A live entry the per-second index follows: a visitor's or a session's.
trait Seen {
    fn seen(&mut self) -> (&mut i64, &mut Place);
    fn last_seen(&self) -> (i64, Place);
}

impl Seen for Presence {
    fn seen(&mut self) -> (&mut i64, &mut Place) {
        (&mut self.last_seen, &mut self.place)
    }

    fn last_seen(&self) -> (i64, Place) {
        (self.last_seen, self.place)
    }
}

impl Seen for VisitorPresence {
    fn seen(&mut self) -> (&mut i64, &mut Place) {
        (&mut self.last_seen, &mut self.place)
    }

    fn last_seen(&self) -> (i64, Place) {
        (self.last_seen, self.place)
    }
}

/// The entry of `id`, made by `make` when it is new; either way `index` lists it under the
/// second it was last seen in and counts it in its place.
#[inline]
fn sight<'m, P: Seen>(
    map: &'m mut IdTable<P>,
    index: &mut ActiveIndex,
    (time, place, id): (i64, Place, u64),
    make: impl FnOnce() -> P,
) -> &'m mut P {
    let (presence, known) = map.get_or_insert_with(id, make);
    let second = time.div_euclid(1000);
    if known {
        let (last_seen, seen_at) = presence.seen();
        advance(index, last_seen, seen_at, (time, second, place, id));
    } else {
        index.arrive(second, place, id);
    }
    presence
}

/// Moves a known visitor's or session's last-seen forward to `time` (never back: a late event
/// changes nothing), keeping the index in step: the id is listed under the new second when
/// the second changes, so that expiry finds it there, and counted in its new place.
// Always inline: most calls return at the first comparison (an event in a second already
// held), and a call costs more than that.
#[inline(always)]
fn advance(
    index: &mut ActiveIndex,
    last_seen: &mut i64,
    seen_at: &mut Place,
    (time, second, place, id): (i64, i64, Place, u64),
) {
    if *last_seen >= time {
        return;
    }
    // Earlier than `time`, so in `second` or before it.
    if *last_seen < second * 1000 {
        index.list(second, id);
    }
    if *seen_at != place {
        index.held.remove(*seen_at);
        index.held.add(place);
        *seen_at = place;
    }
    *last_seen = time;
}

/// The first 10-second bucket inside the page window ending at `now_ms`.
fn page_window_start(now_ms: i64, window_ms: i64) -> i64 {
    let from = now_ms - window_ms;
    // A bucket counts when it starts inside the window.
    from.div_euclid(PAGE_BUCKET_MS) * PAGE_BUCKET_MS
        + if from % PAGE_BUCKET_MS == 0 { 0 } else { PAGE_BUCKET_MS }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A visitor that opens a new session every minute keeps a short list, and the count of
    /// its active sessions stays right.
    #[test]
    fn a_visitor_with_many_sessions_keeps_only_those_in_the_window() {
        let mut live = LiveWindows::new(300_000, 900_000);
        let id = "bot";
        let visitor = Some((id, crate::distinct::hash_id(id)));
        let mut newest = 0;
        for minute in 0..20 {
            newest = minute * 60_000;
            let place = Place::default();
            let sighting = Sighting {
                time_ms: newest,
                place,
                visitor,
                session: Some(minute as u64 + 1),
                page_view: None,
            };
            live.observe(&sighting, newest);
        }
        // Sessions seen at minutes 14..=19 are within five minutes (to the second) of minute 19.
        assert_eq!(
            live.visitor_active_sessions(
                newest,
                crate::distinct::hash_id(id),
                &LiveFilter::default()
            ),
            6
        );
        let kept = live.visitors.values().map(|p| p.sessions.len()).sum::<usize>();
        assert!(kept <= 9, "{kept} sessions kept");
    }

    /// Memory follows the active set: once a crowd has left the window, the tables that held
    /// it shrink, and those who stayed are still found.
    #[test]
    fn the_tables_shrink_when_the_crowd_leaves() {
        let mut live = LiveWindows::new(300_000, 900_000);
        let sighting = |n: u64, time_ms: i64| Sighting {
            time_ms,
            place: Place::default(),
            visitor: None,
            session: Some(n),
            page_view: None,
        };
        for n in 0..20_000 {
            live.observe(&sighting(n, 1_000), 1_000);
        }
        let crowded = live.heap_bytes();
        // Ten of them come back later; everyone else leaves the window.
        for n in 0..10 {
            live.observe(&sighting(n, 400_000), 400_000);
        }
        live.prune(400_000);
        assert_eq!(live.sizes().1, 10);
        assert!(live.heap_bytes() * 100 < crowded, "{} of {crowded} bytes", live.heap_bytes());
        assert_eq!(live.active_counts(400_000, &LiveFilter::default()), (0, 10));
        for n in 0..10 {
            live.observe(&sighting(n, 401_000), 401_000);
        }
        assert_eq!(live.sizes().1, 10, "the ten are found again, not added twice");
    }

    /// The per-second index agrees with a walk over every visitor and session: visitors move
    /// between places and seconds, arrive late and are queried well after the last prune (so
    /// that ids last seen before the window must be found and left out). Also with 40
    /// countries (the counts per place then move from the short list to a map), with an hour's
    /// window (which spans the index's gap) and after a snapshot of the live windows.
    #[test]
    fn the_active_index_matches_a_full_walk() {
        for (countries, window_ms) in [(3, 300_000), (40, 300_000), (3, 3_600_000)] {
            active_index_matches_a_full_walk(countries, window_ms);
        }
    }

    fn active_index_matches_a_full_walk(countries: u64, window_ms: i64) {
        let mut live = LiveWindows::new(window_ms, 900_000);
        let mut newest = 0;
        let mut state: u64 = 7;
        for n in 0..20_000i64 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let visitor = state >> 54;
            // Out of order by up to 90 s (late events land in seconds before the newest), with
            // a quiet spell of 4 s every 2,000 events and one of 20 minutes halfway.
            let quiet = (n / 2_000) * 4_000 + if n >= 10_000 { 1_200_000 } else { 0 };
            let time = n * 37 + quiet - ((state >> 20) % 90_000) as i64;
            newest = newest.max(time);
            let place = Place { store: 1, country: (state % countries) as u32, device: 0 };
            let id = format!("v{visitor}");
            let sighting = Sighting {
                time_ms: time,
                place,
                visitor: Some((&id, crate::distinct::hash_id(&id))),
                session: Some(visitor * 7),
                page_view: None,
            };
            live.observe(&sighting, newest);
            if n % 5_000 == 4_999 {
                live.prune(newest);
            }
        }
        let bytes = postcard::to_allocvec(&live).expect("live windows encode");
        let restored: LiveWindows = postcard::from_bytes(&bytes).expect("live windows decode");
        for now in [newest, newest + 60_000, newest + 200_000, newest + window_ms - 1_000] {
            let from = (now - window_ms).div_euclid(1000) * 1000;
            for filter in
                [LiveFilter::default(), LiveFilter { country: Some(1), ..LiveFilter::default() }]
            {
                let walk = live
                    .visitors
                    .values()
                    .filter(|p| p.last_seen >= from && filter.admits(&p.place))
                    .count();
                let sessions = live
                    .sessions
                    .values()
                    .filter(|p| p.last_seen >= from && filter.admits(&p.place))
                    .count();
                assert_eq!(live.active_counts(now, &filter), (walk as u64, sessions as u64));
                assert_eq!(restored.active_counts(now, &filter), (walk as u64, sessions as u64));
            }
        }
        // Once the window has passed everyone, expiry leaves nothing behind.
        live.prune(newest + window_ms + 100_000);
        assert_eq!(live.sizes().0 + live.sizes().1, 0);
        assert!(live.active_visitors.by_second.is_empty());
    }
}
