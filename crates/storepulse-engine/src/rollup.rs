//! Rollup tables: measures per time bucket and row key, at minute, hour and day resolution.
//!
//! A row goes into its minute bucket. Once event time has moved [`FOLD_LAG_MS`] past an hour,
//! its minutes are folded (summed) into the hour together, once; once it has moved past a
//! day, its hours are folded into the day together (so a day reads 24 hours' rows, not 1,440
//! minutes'). Summing many buckets at once lets them be summed in pieces that stay in the
//! core's cache (see [`Bucket::sum_of`]); folded a minute (or an hour) at a time, each row met
//! an hour's (or a day's) map that had left the cache since the fold before: a miss per row,
//! a quarter of the time of applying shop traffic. A busy hour's complete minutes are folded
//! sooner, once there are [`HOUR_FOLD_AT_ROWS`] rows to fold and at least as many as the hour
//! holds, and a busy day's complete hours likewise ([`DAY_FOLD_AT_ROWS`]), so that no fold
//! holds the engine long and each row is summed again a few times at most. Queries read
//! minutes wherever their hour is not whole in the hour table yet, and hours wherever their
//! day is not. A row for a minute already folded (a late event) goes into its minute and
//! hour, and into its day too when that hour is folded. So every coarse bucket is exactly the
//! sum of its fine buckets (a property test holds this), and the common case writes one
//! table, not three. Old fine buckets are dropped by retention (folded first): minutes after
//! two days, hours after 90 days by default. A scan covers a range with the coarsest buckets
//! that fit inside it, are folded and still exist, and finer ones at the edges. Buckets are
//! sealed once complete (a minute once event time is [`FOLD_LAG_MS`] past it; their rows in
//! one vector sized exactly, see [`crate::bucket`]), which is where nearly all rows live.

use std::collections::VecDeque;

use crate::bucket::{Bucket, SumScratch};
use crate::facts::{FactKey, Measures};

pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 60 * MINUTE_MS;
pub const DAY_MS: i64 = 24 * HOUR_MS;
/// How far event time must move past a minute before it is complete (sealed, and folded into
/// hours and days with the rest of its hour).
pub const FOLD_LAG_MS: i64 = 2 * MINUTE_MS;
/// Complete minutes are folded before their hour ends once they hold this many rows (and at
/// least as many as their hour holds already), see the module's documentation.
const HOUR_FOLD_AT_ROWS: usize = 1 << 15;
/// The same for complete hours before their day ends. A shop sending a million events a day
/// has ~10,000 rows an hour, ~240,000 a day: its day is folded in one go when it ends (~20 ms,
/// once a day); a busier shop's in several, of about this many rows and what the day holds.
const DAY_FOLD_AT_ROWS: usize = 1 << 18;

/// How long each resolution is kept, in milliseconds of event time before the newest event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RollupRetention {
    pub minutes_ms: i64,
    pub hours_ms: i64,
    /// 0 keeps days forever.
    pub days_ms: i64,
}

impl Default for RollupRetention {
    fn default() -> Self {
        Self { minutes_ms: 2 * DAY_MS, hours_ms: 90 * DAY_MS, days_ms: 0 }
    }
}

/// One resolution: buckets (start in ms, aligned to the width) in time order. Nearly every
/// event lands in the newest bucket, so that one is found first; others by binary search.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Table<M = Measures> {
    width_ms: i64,
    buckets: VecDeque<(i64, Bucket<M>)>,
    /// Buckets before this start were dropped by retention (and the table no longer covers them).
    kept_from: i64,
    /// Buckets before this start are complete and were sealed (see [`Bucket::seal`]).
    sealed_until: i64,
}

impl Table {
    fn new(width_ms: i64) -> Self {
        Self { width_ms, buckets: VecDeque::new(), kept_from: i64::MIN, sealed_until: i64::MIN }
    }

    /// The start of the bucket holding `time_ms`. Every event asks: dividing by the table's
    /// width as a variable is a hardware division (tens of cycles, invisible in instruction
    /// counts), by each of the three widths as a constant a multiplication.
    #[inline]
    fn start_of(&self, time_ms: i64) -> i64 {
        match self.width_ms {
            MINUTE_MS => time_ms.div_euclid(MINUTE_MS) * MINUTE_MS,
            HOUR_MS => time_ms.div_euclid(HOUR_MS) * HOUR_MS,
            DAY_MS => time_ms.div_euclid(DAY_MS) * DAY_MS,
            width => time_ms.div_euclid(width) * width,
        }
    }

    fn bucket_mut(&mut self, time_ms: i64) -> Option<&mut Bucket> {
        self.bucket_with_room(time_ms, true)
    }

    /// The bucket holding `time_ms`, made when missing: with room for as many rows as the
    /// bucket before has when `room` and it is the newest (a busy bucket otherwise rehashes
    /// its way up through every power of two, each time into fresh memory: on shop traffic a
    /// fifth of applying was that growth). `None` before retention's edge.
    fn bucket_with_room(&mut self, time_ms: i64, room: bool) -> Option<&mut Bucket> {
        let start = self.start_of(time_ms);
        if start < self.kept_from {
            return None;
        }
        let index = match self.buckets.back() {
            Some((last, _)) if *last == start => self.buckets.len() - 1,
            Some((last, rows)) if *last < start => {
                let bucket = if room { Bucket::with_room(rows.len()) } else { Bucket::default() };
                self.buckets.push_back((start, bucket));
                self.buckets.len() - 1
            }
            None => {
                self.buckets.push_back((start, Bucket::default()));
                0
            }
            Some(_) => match self.buckets.binary_search_by_key(&start, |(s, _)| *s) {
                Ok(index) => index,
                Err(index) => {
                    self.buckets.insert(index, (start, Bucket::default()));
                    index
                }
            },
        };
        self.buckets.get_mut(index).map(|(_, bucket)| bucket)
    }

    fn get(&self, start: i64) -> Option<&Bucket> {
        self.buckets
            .binary_search_by_key(&start, |(s, _)| *s)
            .ok()
            .and_then(|index| self.buckets.get(index))
            .map(|(_, bucket)| bucket)
    }

    fn prune_before(&mut self, start: i64) {
        let start = self.start_of(start);
        if start > self.kept_from {
            self.kept_from = start;
            while self.buckets.front().is_some_and(|(s, _)| *s < start) {
                self.buckets.pop_front();
            }
        }
    }

    /// Seals the buckets that end at or before `limit` and were not sealed yet.
    fn seal_before(&mut self, limit: i64) {
        let end = self.start_of(limit);
        if end <= self.sealed_until {
            return;
        }
        let first = self.buckets.partition_point(|(start, _)| *start < self.sealed_until);
        let last = self.buckets.partition_point(|(start, _)| *start < end);
        for index in first..last {
            self.buckets[index].1.seal();
        }
        self.sealed_until = end;
    }

    /// Seals again the sealed buckets that late rows with new keys reopened.
    fn reseal(&mut self) {
        let end = self.buckets.partition_point(|(start, _)| *start < self.sealed_until);
        for (_, bucket) in self.buckets.range_mut(..end) {
            if bucket.has_open_rows() {
                bucket.seal();
            }
        }
    }

    /// Whether the bucket starting at `start` is still kept (it may also simply be empty).
    fn covers(&self, start: i64) -> bool {
        start >= self.kept_from
    }

    pub fn width_ms(&self) -> i64 {
        self.width_ms
    }

    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    pub fn row_count(&self) -> usize {
        self.buckets.iter().map(|(_, rows)| rows.len()).sum()
    }

    pub fn heap_bytes(&self) -> usize {
        let buckets = self.buckets.capacity() * std::mem::size_of::<(i64, Bucket)>();
        buckets + self.buckets.iter().map(|(_, rows)| rows.heap_bytes()).sum::<usize>()
    }

    /// Every kept bucket, oldest first.
    pub fn buckets(&self) -> impl Iterator<Item = (i64, &Bucket)> {
        self.buckets.iter().map(|(start, rows)| (*start, rows))
    }
}

/// How [`Rollups::period_before`] moves a time to a bucket edge.
#[derive(Clone, Copy, Debug)]
enum Rounding {
    Down,
    /// To the nearer edge; down on a tie.
    Nearest,
}

impl Rounding {
    /// `down` or `up` (the edges at or before and after `time`) as this rounding picks.
    fn pick(self, time: i64, down: i64, up: i64) -> i64 {
        match self {
            Rounding::Nearest if time != down && up - time < time - down => up,
            _ => down,
        }
    }
}

/// A visited bucket: its start and width (ms).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub start: i64,
    pub width_ms: i64,
}

/// The minute, hour and day tables.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Rollups {
    pub minutes: Table,
    pub hours: Table,
    pub days: Table,
    retention: RollupRetention,
    /// Minute buckets that start before this have been summed into the hour table.
    folded_until: i64,
    /// Hour buckets that end at or before this have been summed into the day table: the end
    /// of the last day folded (or of the last hour, in a snapshot before format 16, which
    /// folded each hour into its day once the hour was complete).
    days_until: i64,
    #[serde(skip)]
    scratch: SumScratch,
}

/// [`Rollups`] as snapshot formats up to 15 stored them: each hour was added to its day once
/// complete, up to the end of the hour `folded_until` is in. `M` is the rows' layout (an
/// older one up to format 13, see [`crate::facts::MeasuresUpToV13`]).
#[derive(serde::Deserialize)]
pub struct RollupsUpToV15<M = Measures> {
    minutes: Table<M>,
    hours: Table<M>,
    days: Table<M>,
    retention: RollupRetention,
    folded_until: i64,
}

impl<M: Into<Measures>> Table<M> {
    fn upgraded(self) -> Table {
        let Table { width_ms, buckets, kept_from, sealed_until } = self;
        let buckets = buckets.into_iter().map(|(start, rows)| (start, rows.upgraded())).collect();
        Table { width_ms, buckets, kept_from, sealed_until }
    }
}

impl<M: Into<Measures>> From<RollupsUpToV15<M>> for Rollups {
    fn from(old: RollupsUpToV15<M>) -> Self {
        let RollupsUpToV15 { minutes, hours, days, retention, folded_until } = old;
        Rollups {
            minutes: minutes.upgraded(),
            hours: hours.upgraded(),
            days: days.upgraded(),
            retention,
            folded_until,
            scratch: SumScratch::default(),
            days_until: if folded_until == i64::MIN {
                i64::MIN
            } else {
                folded_until.div_euclid(HOUR_MS) * HOUR_MS
            },
        }
    }
}

impl Rollups {
    pub fn new(retention: RollupRetention) -> Self {
        Self {
            minutes: Table::new(MINUTE_MS),
            hours: Table::new(HOUR_MS),
            days: Table::new(DAY_MS),
            retention,
            folded_until: i64::MIN,
            days_until: i64::MIN,
            scratch: SumScratch::default(),
        }
    }

    pub fn set_retention(&mut self, retention: RollupRetention) {
        self.retention = retention;
    }

    /// Adds rows at `time_ms`: to its minute while that minute is not folded yet, else to every
    /// resolution that still keeps that time and has it folded in.
    pub fn add(&mut self, time_ms: i64, rows: &[(FactKey, Measures)]) {
        let minute = time_ms.div_euclid(MINUTE_MS) * MINUTE_MS;
        if minute >= self.folded_until
            && let Some(bucket) = self.minutes.bucket_mut(time_ms)
        {
            add_rows(bucket, rows);
            let complete = minute - FOLD_LAG_MS;
            if complete > self.minutes.sealed_until {
                // Once a minute: seal the minutes now complete, fold the hours now complete,
                // or a busy hour's complete minutes.
                self.minutes.seal_before(complete);
                let whole_hours = complete.div_euclid(HOUR_MS) * HOUR_MS;
                if whole_hours > self.folded_until {
                    self.fold_until(whole_hours);
                } else {
                    let range = (self.folded_until, complete);
                    let (to_fold, held) = rows_to_fold(&self.hours, &self.minutes, range);
                    if to_fold >= HOUR_FOLD_AT_ROWS.max(held) {
                        self.fold_until(complete);
                    }
                }
            }
            return;
        }
        for table in [&mut self.minutes, &mut self.hours] {
            if let Some(bucket) = table.bucket_mut(time_ms) {
                add_rows(bucket, rows);
            }
        }
        let hour = time_ms.div_euclid(HOUR_MS) * HOUR_MS;
        if hour + HOUR_MS <= self.days_until
            && let Some(bucket) = self.days.bucket_mut(time_ms)
        {
            add_rows(bucket, rows);
        }
    }

    /// Sums every minute bucket starting in `[folded_until, limit)` into its hour, and every
    /// hour of the days this completes into its day (each with what it holds already).
    fn fold_until(&mut self, limit: i64) {
        let limit = limit.div_euclid(MINUTE_MS) * MINUTE_MS;
        if limit <= self.folded_until {
            return;
        }
        let scratch = &mut self.scratch;
        sum_into(&mut self.hours, &self.minutes, (self.folded_until, limit), scratch);
        // Folded minutes are sealed too: kept two days as hash maps (sized in powers of two,
        // ~1.7 times their rows) they were a third of a 3 M-event engine's rollup memory, and
        // each new minute took fresh memory where the sealed one's freed map now serves.
        self.minutes.seal_before(limit);
        self.hours.seal_before(limit);
        self.folded_until = limit;
        let whole_days = limit.div_euclid(DAY_MS) * DAY_MS;
        let days_to = if whole_days > self.days_until {
            whole_days
        } else {
            // A busy day's complete hours are folded sooner, as a busy hour's minutes are.
            let whole_hours = limit.div_euclid(HOUR_MS) * HOUR_MS;
            let range = (self.days_until, whole_hours);
            let (to_fold, held) = rows_to_fold(&self.days, &self.hours, range);
            if to_fold >= DAY_FOLD_AT_ROWS.max(held) { whole_hours } else { self.days_until }
        };
        if days_to > self.days_until {
            sum_into(&mut self.days, &self.hours, (self.days_until, days_to), &mut self.scratch);
            self.days_until = days_to;
        }
        self.days.seal_before(limit);
    }

    /// Makes the state of a format 8 snapshot, which folded every minute into its hour and its
    /// day, what this build keeps (a day holds whole hours only): the rest of the hour in
    /// progress is folded the old way, into both, so that its day then holds that whole hour.
    pub(crate) fn upgrade_from_minute_folded_days(&mut self) {
        if self.folded_until == i64::MIN || self.folded_until % HOUR_MS == 0 {
            return;
        }
        let hour_end = self.folded_until.div_euclid(HOUR_MS) * HOUR_MS + HOUR_MS;
        let first = self.minutes.buckets.partition_point(|(start, _)| *start < self.folded_until);
        let last = self.minutes.buckets.partition_point(|(start, _)| *start < hour_end);
        for index in first..last {
            let (start, rows) = &self.minutes.buckets[index];
            for table in [&mut self.hours, &mut self.days] {
                if let Some(bucket) = table.bucket_mut(*start) {
                    bucket.add_bucket(rows);
                }
            }
        }
        self.folded_until = hour_end;
        self.days_until = hour_end;
        self.hours.seal_before(hour_end);
        self.days.seal_before(hour_end);
    }

    /// Folds every minute and hour, however recent (tests; a query never needs it): up to the
    /// end of the newest minute's day, so rows later in that day go into all three tables.
    pub fn fold_all(&mut self) {
        let Some((newest, _)) = self.minutes.buckets.back() else { return };
        self.fold_until(newest.div_euclid(DAY_MS) * DAY_MS + DAY_MS);
    }

    /// Drops buckets that retention no longer keeps, relative to `now_ms`; minutes and hours
    /// are folded before they are dropped (an hour not folded into its day yet is kept until
    /// it is, whatever the retention).
    pub fn prune(&mut self, now_ms: i64) {
        self.fold_until(now_ms - self.retention.minutes_ms);
        self.minutes.prune_before(now_ms - self.retention.minutes_ms);
        if self.days_until != i64::MIN {
            self.hours.prune_before((now_ms - self.retention.hours_ms).min(self.days_until));
        }
        if self.retention.days_ms > 0 {
            self.days.prune_before(now_ms - self.retention.days_ms);
        }
    }

    /// Seals again the complete buckets that late events reopened (see [`Bucket::seal`]);
    /// housekeeping calls this now and then, since late rows only cost a little memory.
    pub fn reseal(&mut self) {
        for table in [&mut self.minutes, &mut self.hours, &mut self.days] {
            table.reseal();
        }
    }

    /// Visits the buckets that together cover `[from, to)` exactly, coarsest first where they
    /// fit: whole days, then whole hours, then minutes. Where a fine resolution was dropped by
    /// retention the coarser bucket that contains the edge is used, so the covered span can
    /// start earlier than `from` (never by more than one bucket); the returned span says so.
    /// Buckets wider than `max_width_ms` are not used (a series by hour must not read days).
    pub fn scan(
        &self,
        from: i64,
        to: i64,
        max_width_ms: i64,
        mut visit: impl FnMut(Span, &Bucket),
    ) -> (i64, i64) {
        self.tiles(from, to, max_width_ms, |span, table| {
            if let Some(bucket) = table.get(span.start) {
                visit(span, bucket);
            }
        })
    }

    /// The buckets (held or not) a [`Rollups::scan`] of `[from, to)` reads, each with its
    /// table, in time order; returns the span they cover.
    fn tiles(
        &self,
        from: i64,
        to: i64,
        max_width_ms: i64,
        mut each: impl FnMut(Span, &Table),
    ) -> (i64, i64) {
        let mut time = from.div_euclid(MINUTE_MS) * MINUTE_MS;
        let end =
            to.div_euclid(MINUTE_MS) * MINUTE_MS + if to % MINUTE_MS == 0 { 0 } else { MINUTE_MS };
        let mut covered_from = time;
        let mut first = true;
        while time < end {
            let table = self.pick(time, end, max_width_ms);
            let start = table.start_of(time);
            if first {
                covered_from = start;
                first = false;
            }
            each(Span { start, width_ms: table.width_ms }, table);
            time = start + table.width_ms;
        }
        (covered_from, time.max(end))
    }

    fn pick(&self, time: i64, end: i64, max_width_ms: i64) -> &Table {
        for (table, folded_until) in
            [(&self.days, self.days_until), (&self.hours, self.folded_until)]
        {
            let width = table.width_ms;
            if width <= max_width_ms
                && time % width == 0
                && time + width <= end
                && time + width <= folded_until
                && table.covers(time)
            {
                return table;
            }
        }
        if self.minutes.covers(time) || time >= self.folded_until {
            &self.minutes
        } else if self.hours.covers(time.div_euclid(HOUR_MS) * HOUR_MS) {
            &self.hours
        } else {
            &self.days
        }
    }

    /// The period to compare a scanned one with (`covered`, as [`Rollups::scan`] returns it):
    /// ending where it starts, or at the latest edge before that where a scan can end (so no
    /// bucket counts in both), and as long as it as far as the buckets kept there allow. A scan
    /// widens its range to whole buckets, so the nominal period before (`[from − length,
    /// from)`) would read again the bucket holding `from`; and where the earlier period lies
    /// in coarser buckets (past a retention edge: minutes after two days, hours after 90 by
    /// default) its ends are the edges of those buckets nearest to its nominal ones, rather
    /// than the whole buckets holding them, which made it up to a bucket longer than the
    /// period it was compared with (−2.7 % on perfectly flat traffic for `last_24_hours`).
    /// Reading the span returned covers exactly it.
    pub fn period_before(&self, covered: (i64, i64)) -> (i64, i64) {
        let (from, to) = covered;
        let end = self.end_edge(from, Rounding::Down);
        let start = self.start_edge(end - (to - from), Rounding::Nearest);
        (start.min(end), end)
    }

    /// `[from, to)` moved to the nearest edges a scan can start and end at exactly (see
    /// [`Rollups::period_before`]): for a named period (a calendar month) whose ends lie in
    /// coarser buckets.
    pub fn readable_span(&self, from: i64, to: i64) -> (i64, i64) {
        let end = self.end_edge(to, Rounding::Nearest);
        (self.start_edge(from, Rounding::Nearest).min(end), end)
    }

    /// An edge where a scan can start exactly, near `time`: an edge of the finest buckets kept
    /// at `time` (rounding down stays in them, as retention drops whole buckets), or up to the
    /// next one of those or where finer buckets begin to be kept, whichever comes first.
    fn start_edge(&self, time: i64, rounding: Rounding) -> i64 {
        let width = self.finest_width_at(time);
        let down = time.div_euclid(width) * width;
        let mut up = down + width;
        for table in [&self.minutes, &self.hours] {
            if table.width_ms < width && table.kept_from > time {
                up = up.min(table.kept_from);
            }
        }
        rounding.pick(time, down, up)
    }

    /// An edge where a scan from earlier data can end exactly, near `time`: `time` when the
    /// bucket such a scan reads last ends there, else that bucket's start or end. (Not simply
    /// an edge of the finest buckets kept at `time`: a scan arriving from coarser buckets
    /// reads the whole hour in which minutes begin to be kept, and the whole day in which
    /// hours do.) Every scan passes through each midnight, so one from the midnight before
    /// reads the same last bucket as one from any earlier time.
    fn end_edge(&self, time: i64, rounding: Rounding) -> i64 {
        let midnight = (time - 1).div_euclid(DAY_MS) * DAY_MS;
        let mut last = Span { start: midnight, width_ms: 0 };
        let (_, end) = self.tiles(midnight, time, DAY_MS, |span, _| last = span);
        if end == time {
            return time;
        }
        rounding.pick(time, last.start, end)
    }

    /// The finest bucket width still kept for data at `time_ms`.
    pub fn finest_width_at(&self, time_ms: i64) -> i64 {
        if self.minutes.covers(time_ms.div_euclid(MINUTE_MS) * MINUTE_MS) {
            MINUTE_MS
        } else if self.hours.covers(time_ms.div_euclid(HOUR_MS) * HOUR_MS) {
            HOUR_MS
        } else {
            DAY_MS
        }
    }

    pub fn heap_bytes(&self) -> usize {
        let tables = self.minutes.heap_bytes() + self.hours.heap_bytes() + self.days.heap_bytes();
        tables + self.scratch.heap_bytes()
    }

    /// (buckets, rows) per resolution: minutes, hours, days.
    pub fn sizes(&self) -> [(usize, usize); 3] {
        [
            (self.minutes.bucket_count(), self.minutes.row_count()),
            (self.hours.bucket_count(), self.hours.row_count()),
            (self.days.bucket_count(), self.days.row_count()),
        ]
    }
}

/// Rows of the `fine` buckets starting in `[from, to)` (all in one `coarse` bucket: the ones
/// before it are folded), and rows that coarse bucket holds already.
fn rows_to_fold(coarse: &Table, fine: &Table, (from, to): (i64, i64)) -> (usize, usize) {
    if to <= from {
        return (0, 0);
    }
    let first = fine.buckets.partition_point(|(start, _)| *start < from);
    let last = fine.buckets.partition_point(|(start, _)| *start < to);
    let to_fold = fine.buckets.range(first..last).map(|(_, rows)| rows.len()).sum();
    (to_fold, coarse.get(coarse.start_of(to - 1)).map_or(0, Bucket::len))
}

/// Sums the `fine` buckets starting in `[from, to)` into the `coarse` buckets holding them,
/// each coarse bucket with what it holds already (see [`Bucket::sum_of`]). A coarse bucket
/// retention has dropped takes nothing.
fn sum_into(coarse: &mut Table, fine: &Table, (from, to): (i64, i64), scratch: &mut SumScratch) {
    let first = fine.buckets.partition_point(|(start, _)| *start < from);
    let last = fine.buckets.partition_point(|(start, _)| *start < to);
    let mut next = first;
    while next < last {
        let start = coarse.start_of(fine.buckets[next].0);
        let parts: Vec<&Bucket> = fine
            .buckets
            .range(next..last)
            .take_while(|(fine_start, _)| *fine_start < start + coarse.width_ms)
            .map(|(_, rows)| rows)
            .collect();
        next += parts.len();
        if let Some(bucket) = coarse.bucket_with_room(start, false) {
            let held = std::mem::take(bucket);
            let mut parts = parts;
            parts.push(&held);
            *bucket = Bucket::sum_of(&parts, scratch);
        }
    }
}

fn add_rows(bucket: &mut Bucket, rows: &[(FactKey, Measures)]) {
    for (key, measures) in rows {
        bucket.add(*key, measures);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_event(product: u32) -> [(FactKey, Measures); 1] {
        [(FactKey { product, ..FactKey::default() }, Measures { events: 1, ..Measures::default() })]
    }

    /// Events in the hour table's bucket starting at `start`.
    fn hour_events(rollups: &Rollups, start: i64) -> u32 {
        rollups.hours.get(start).map_or(0, |rows| rows.iter().map(|(_, m)| m.events).sum())
    }

    #[test]
    fn hours_fold_into_their_day_once_the_day_is_complete() {
        let mut rollups = Rollups::new(RollupRetention::default());
        for hour in 0..24 {
            rollups.add(hour * HOUR_MS, &one_event(hour as u32));
        }
        rollups.add(DAY_MS + MINUTE_MS, &one_event(1));
        assert_eq!(rollups.folded_until, 23 * HOUR_MS, "the day's first 23 hours are folded");
        assert_eq!(rollups.sizes()[2], (0, 0), "but not into a day before it is complete");
        rollups.add(DAY_MS + FOLD_LAG_MS, &one_event(1));
        assert_eq!(rollups.days_until, DAY_MS);
        let day_events = |rollups: &Rollups| -> u32 {
            rollups.days.get(0).map_or(0, |rows| rows.iter().map(|(_, m)| m.events).sum())
        };
        assert_eq!(day_events(&rollups), 24);
        assert_eq!(rollups.days.get(0).map_or(0, Bucket::len), 24, "a row per product");
        // A late event for the folded day goes into its minute, hour and day.
        rollups.add(5 * HOUR_MS + 30 * MINUTE_MS, &one_event(99));
        assert_eq!(day_events(&rollups), 25);
        assert_eq!(hour_events(&rollups, 5 * HOUR_MS), 2);
        let mut read = Vec::new();
        rollups.scan(0, DAY_MS, DAY_MS, |span, rows| {
            read.push((span.width_ms, rows.iter().map(|(_, m)| m.events).sum::<u32>()));
        });
        assert_eq!(read, [(DAY_MS, 25)], "a whole folded day is read from its bucket");

        // A busy day's complete hours are folded sooner, but the day is read from its hours
        // until it is whole.
        let busy = DAY_MS + 3 * HOUR_MS;
        for product in 0..DAY_FOLD_AT_ROWS as u32 {
            rollups.add(busy, &one_event(product));
        }
        rollups.add(busy + HOUR_MS + FOLD_LAG_MS, &one_event(1));
        assert_eq!(rollups.days_until, busy + HOUR_MS);
        let held = rollups.days.get(DAY_MS).map_or(0, Bucket::len);
        assert_eq!(held, DAY_FOLD_AT_ROWS, "the busy hour and the ones before it");
        let mut widths = Vec::new();
        let mut events = 0;
        rollups.scan(DAY_MS, 2 * DAY_MS, DAY_MS, |span, rows| {
            widths.push(span.width_ms);
            events += rows.iter().map(|(_, m)| m.events).sum::<u32>();
        });
        assert!(!widths.contains(&DAY_MS), "an incomplete day is not read from its bucket");
        assert_eq!(events, 2 + DAY_FOLD_AT_ROWS as u32 + 1);
    }

    #[test]
    fn minutes_fold_when_their_hour_ends_or_sooner_when_busy() {
        let mut rollups = Rollups::new(RollupRetention::default());
        for minute in 0..50 {
            rollups.add(minute * MINUTE_MS, &one_event(1));
        }
        assert_eq!(rollups.sizes()[1], (0, 0), "no minute of an hour in progress is folded");
        // Event time two minutes past the hour: its minutes are folded, all at once.
        rollups.add(HOUR_MS + FOLD_LAG_MS, &one_event(1));
        assert_eq!(hour_events(&rollups, 0), 50);
        assert_eq!(rollups.folded_until, HOUR_MS);

        // A busy minute is folded as soon as it is complete ...
        let (hour, busy_rows) = (2 * HOUR_MS, 2 * HOUR_FOLD_AT_ROWS as u32);
        let busy = hour + 10 * MINUTE_MS;
        for product in 0..busy_rows {
            rollups.add(busy, &one_event(product));
        }
        rollups.add(busy + FOLD_LAG_MS + MINUTE_MS, &one_event(1));
        assert_eq!(rollups.folded_until, busy + MINUTE_MS);
        assert_eq!(hour_events(&rollups, hour), busy_rows);
        // ... but a later one only with as many rows as the hour holds by then (so that each
        // row is summed again a few times at most).
        let (second, second_rows) = (busy + 5 * MINUTE_MS, HOUR_FOLD_AT_ROWS as u32 + 10);
        for product in 0..second_rows {
            rollups.add(second, &one_event(product + 1));
        }
        rollups.add(second + FOLD_LAG_MS + MINUTE_MS, &one_event(1));
        assert_eq!(rollups.folded_until, busy + MINUTE_MS, "fewer rows to fold than held");
        rollups.add(3 * HOUR_MS + FOLD_LAG_MS, &one_event(1));
        assert_eq!(rollups.folded_until, 3 * HOUR_MS);
        assert_eq!(hour_events(&rollups, hour), busy_rows + second_rows + 2);
        let hour_rows = rollups.hours.get(hour).map_or(0, Bucket::len);
        assert_eq!(hour_rows, busy_rows as usize, "each key once");

        // Whatever was folded when, each event is read once.
        let mut events = 0;
        rollups.scan(0, 4 * HOUR_MS, DAY_MS, |_, rows| {
            events += rows.iter().map(|(_, m)| m.events).sum::<u32>();
        });
        assert_eq!(events, 50 + 1 + busy_rows + second_rows + 3);
    }
}
