//! Promotion buys over a trailing window (seed 4's `/stats`), answered in O(log n).
//!
//! Buys are kept as a time-ordered list of running totals, so "how many buys in the last
//! `h` hours" is one binary search and a subtraction, however many buys are stored. Buys
//! nearly always arrive in time order; a late one is inserted in place and the totals after it
//! are shifted (rare, and still exact).

/// One instant with the running totals up to and including it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Mark {
    time_ms: i64,
    records: u64,
    units: u64,
}

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct BuyLedger {
    marks: Vec<Mark>,
}

/// Totals of buys: how many records, how many units.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BuyTotals {
    pub records: u64,
    pub units: u64,
}

impl BuyLedger {
    pub fn record(&mut self, time_ms: i64, units: u64) {
        let (records, total_units) = self.marks.last().map_or((0, 0), |m| (m.records, m.units));
        match self.marks.last_mut() {
            None => self.marks.push(Mark { time_ms, records: 1, units }),
            Some(last) if last.time_ms == time_ms => {
                last.records += 1;
                last.units += units;
            }
            Some(last) if last.time_ms < time_ms => {
                self.marks.push(Mark { time_ms, records: records + 1, units: total_units + units })
            }
            Some(_) => self.insert_late(time_ms, units),
        }
    }

    fn insert_late(&mut self, time_ms: i64, units: u64) {
        let index = self.marks.partition_point(|mark| mark.time_ms < time_ms);
        if self.marks.get(index).is_none_or(|mark| mark.time_ms != time_ms) {
            let before = index
                .checked_sub(1)
                .map_or(Mark { time_ms, records: 0, units: 0 }, |i| self.marks[i]);
            self.marks
                .insert(index, Mark { time_ms, records: before.records, units: before.units });
        }
        for mark in &mut self.marks[index..] {
            mark.records += 1;
            mark.units += units;
        }
    }

    pub fn total(&self) -> BuyTotals {
        self.marks
            .last()
            .map_or(BuyTotals::default(), |m| BuyTotals { records: m.records, units: m.units })
    }

    /// Buys with a time at or after `from_ms` (later times, even future ones, included — as in
    /// seed 4, whose window was `now - time <= hours`).
    pub fn since(&self, from_ms: i64) -> BuyTotals {
        let total = self.total();
        let index = self.marks.partition_point(|mark| mark.time_ms < from_ms);
        match index.checked_sub(1).map(|i| self.marks[i]) {
            Some(before) => BuyTotals {
                records: total.records - before.records,
                units: total.units - before.units,
            },
            None => total,
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.marks.capacity() * std::mem::size_of::<Mark>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_count_records_and_units_including_late_arrivals() {
        let mut ledger = BuyLedger::default();
        ledger.record(1_000, 3);
        ledger.record(2_000, 5);
        ledger.record(2_000, 1);
        ledger.record(1_500, 2); // late
        ledger.record(500, 4); // late, before everything
        assert_eq!(ledger.total(), BuyTotals { records: 5, units: 15 });
        assert_eq!(ledger.since(1_500), BuyTotals { records: 3, units: 8 });
        assert_eq!(ledger.since(1_501), BuyTotals { records: 2, units: 6 });
        assert_eq!(ledger.since(0), BuyTotals { records: 5, units: 15 });
        assert_eq!(ledger.since(9_000), BuyTotals::default());
    }
}
