//! Sketch inserts deferred and made row by row.
//!
//! An event whose visitor or session is new to its day's row inserts into that row's sketches.
//! Made at once, each insert was a cache miss or several on sketch data spread over thousands
//! of allocations (the twenty-fifth session measured ~4 last-level misses an inserting event,
//! ~90 % of what the sketches cost). Here an event's inserts are appended to a buffer instead;
//! when it holds [`DEFERRED_BATCH`] events it is grouped by row, and the rows are then folded
//! into their sketches a few hundred inserts at a time (one step per event applied), so that
//! each row's sketches come into cache once a batch and are updated back to back, without one
//! event holding the engine for the whole batch.
//!
//! Deferring changes no answer: inserting into a sketch does not depend on order, and every
//! read of the sketches (queries, snapshots, pruning) first folds what is deferred.

use crate::FastMap;
use crate::facts::FactKey;

use super::{DistinctSets, SKETCH_BITS, VISITOR_SKETCHES};

/// Events whose inserts are kept before they are grouped: 2^17 (7 MiB of 56-byte entries) is
/// about 60 % of the inserting events of a shop-traffic day of a million events, so a busy row
/// gets hundreds of inserts a batch. A throwaway build at 2^15 gained half as much; 2^16 and
/// 2^18 were within the noise of 2^17 (`docs/performance.md`, twenty-sixth session).
pub const DEFERRED_BATCH: usize = 1 << 17;

/// Inserts folded per step (one step per event that defers any): bounded work each, and a
/// batch is folded within the next ~260 such events, long before the next batch fills.
const FOLD_STEP: usize = 512;

/// One event's inserts into its day's row.
#[derive(Clone, Copy, Debug)]
pub struct DeferredInsert {
    pub key: FactKey,
    /// The UTC day's first millisecond.
    pub day_ms: i64,
    pub visitor: u64,
    pub session: u64,
    /// Which of the row's sketches: bits `VISITORS` to `CART_OR_PURCHASE_SESSIONS` of the
    /// parent module (the visitor's hash goes into `VISITOR_SKETCHES`, the session's into
    /// the others).
    pub sketches: u8,
}

/// Inserts waiting to be made, and the batch being folded.
#[derive(Debug)]
pub struct Deferred {
    /// [`DEFERRED_BATCH`] and [`FOLD_STEP`] but in tests, which make them small.
    batch_size: usize,
    fold_step: usize,
    /// Inserts since the last batch was taken, in arrival order.
    pending: Vec<DeferredInsert>,
    folding: Batch,
    /// Reused for grouping each batch (capacities kept from batch to batch): row numbers by
    /// (day, key), and each entry's row number.
    rows: FastMap<(i64, FactKey), u32>,
    row_of: Vec<u32>,
    /// Reused for one row's hashes per sketch (in the order of `SKETCH_BITS`) while they are
    /// folded.
    hashes: [Vec<u64>; 6],
}

/// A batch grouped by row: `entries[order[..]]` row after row, each row's run ending at its
/// `ends` value; folded up to `cursor`.
#[derive(Debug, Default)]
struct Batch {
    entries: Vec<DeferredInsert>,
    order: Vec<u32>,
    ends: Vec<u32>,
    cursor: usize,
    row: usize,
}

impl Default for Deferred {
    fn default() -> Self {
        Self::with_sizes(DEFERRED_BATCH, FOLD_STEP)
    }
}

impl Batch {
    fn is_done(&self) -> bool {
        self.row == self.ends.len()
    }
}

/// Where a batch's rows are folded: a row's day (created presized when new) and its sketches.
pub trait RowSketches {
    fn row(&mut self, day_ms: i64, key: FactKey) -> &mut DistinctSets;
    /// A row's sketches went from holding `before` heap bytes to `after`.
    fn sketches_grew(&mut self, before: usize, after: usize);
}

impl Deferred {
    /// Grouping every `batch_size` events' inserts, folding `fold_step` a step.
    pub fn with_sizes(batch_size: usize, fold_step: usize) -> Self {
        Self {
            batch_size: batch_size.max(1),
            fold_step: fold_step.max(1),
            pending: Vec::new(),
            folding: Batch::default(),
            rows: FastMap::default(),
            row_of: Vec::new(),
            hashes: Default::default(),
        }
    }

    /// Keeps `insert`, then folds a step of the batch in hand, or takes the next one when
    /// `pending` is full.
    pub fn push(&mut self, insert: DeferredInsert, rows: &mut impl RowSketches) {
        self.pending.push(insert);
        if !self.folding.is_done() {
            self.fold(self.fold_step, rows);
        } else if self.pending.len() >= self.batch_size {
            self.take_batch();
            self.fold(self.fold_step, rows);
        }
    }

    /// Whether any insert is still to be made.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.folding.is_done()
    }

    /// Whether an insert still to be made is for a day before `day_ms`.
    pub fn holds_days_before(&self, day_ms: i64) -> bool {
        let folding = &self.folding;
        let unfolded =
            folding.order[folding.cursor..].iter().map(|i| &folding.entries[*i as usize]);
        self.pending.iter().chain(unfolded).any(|entry| entry.day_ms < day_ms)
    }

    /// Makes every insert kept, so that the sketches hold all events applied.
    pub fn settle(&mut self, rows: &mut impl RowSketches) {
        self.fold(usize::MAX, rows);
        if !self.pending.is_empty() {
            self.take_batch();
            self.fold(usize::MAX, rows);
        }
    }

    /// Bytes the buffers hold.
    pub fn heap_bytes(&self) -> usize {
        let entry = std::mem::size_of::<DeferredInsert>();
        (self.pending.capacity() + self.folding.entries.capacity()) * entry
            + (self.folding.order.capacity() + self.folding.ends.capacity()) * 4
            + self.row_of.capacity() * 4
            + self.rows.capacity() * (std::mem::size_of::<((i64, FactKey), u32)>() + 1)
            + self.hashes.iter().map(|hashes| hashes.capacity() * 8).sum::<usize>()
    }

    /// Groups `pending` by row (a counting sort on each row's first appearance) into the
    /// batch to fold; the folded batch's buffer becomes the next `pending`.
    fn take_batch(&mut self) {
        debug_assert!(self.folding.is_done());
        let batch = &mut self.folding;
        std::mem::swap(&mut batch.entries, &mut self.pending);
        self.pending.clear();
        self.rows.clear();
        batch.ends.clear();
        let row_of = &mut self.row_of;
        row_of.clear();
        for entry in &batch.entries {
            let next = self.rows.len() as u32;
            let row = *self.rows.entry((entry.day_ms, entry.key)).or_insert(next);
            if row == next {
                batch.ends.push(0);
            }
            batch.ends[row as usize] += 1;
            row_of.push(row);
        }
        // Counts to starts; each row's start becomes its end as its entries are placed.
        let mut start = 0;
        for count in &mut batch.ends {
            let rows_entries = *count;
            *count = start;
            start += rows_entries;
        }
        batch.order.clear();
        batch.order.resize(batch.entries.len(), 0);
        for (index, row) in row_of.iter().enumerate() {
            let at = &mut batch.ends[*row as usize];
            batch.order[*at as usize] = index as u32;
            *at += 1;
        }
        batch.cursor = 0;
        batch.row = 0;
    }

    /// Folds up to `budget` inserts of the batch (at least one row's part when any is left).
    fn fold(&mut self, budget: usize, rows: &mut impl RowSketches) {
        let batch = &mut self.folding;
        let mut left = budget;
        while !batch.is_done() && left > 0 {
            let end = batch.ends[batch.row] as usize;
            let part_end = end.min(batch.cursor.saturating_add(left));
            let part = &batch.order[batch.cursor..part_end];
            left -= part.len();
            let first = batch.entries[part[0] as usize];
            for hashes in &mut self.hashes {
                hashes.clear();
            }
            for index in part {
                let entry = &batch.entries[*index as usize];
                for (bit, hashes) in SKETCH_BITS.into_iter().zip(&mut self.hashes) {
                    if entry.sketches & bit != 0 {
                        let visitor = bit & VISITOR_SKETCHES != 0;
                        hashes.push(if visitor { entry.visitor } else { entry.session });
                    }
                }
            }
            let sets = rows.row(first.day_ms, first.key);
            let before = sets.heap_bytes();
            // In arrival order: sorted by register (a HyperLogLog register is picked by the
            // hash's low 16 bits) was no faster, as a row's registers (48 KiB then) stayed in
            // cache while its part was folded anyway.
            for ((_, sketch), hashes) in sets.each_mut().into_iter().zip(&self.hashes) {
                for hash in hashes {
                    sketch.insert_hash(*hash);
                }
            }
            let after = sets.heap_bytes();
            rows.sketches_grew(before, after);
            batch.cursor = part_end;
            if part_end == end {
                batch.row += 1;
            }
        }
    }
}
