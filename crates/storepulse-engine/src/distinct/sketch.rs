//! The distinct-count sketch: exact up to 12,288 values, then HyperLogLog++ with 2^16 one-byte
//! registers.
//!
//! It keeps the value encoding and the estimator of Cloudflare's `cardinality-estimator`
//! (which the engine used up to the twenty-seventh session), and reads every form that crate
//! stored, so snapshots written before still read. A 64-bit hash becomes a 31-bit value: 25
//! of its bits, and its rank (one more than the number of ones above its 16 lowest bits).
//! A sketch lists its distinct values: up to 128 in a plain list (as the crate did), then up
//! to 12,288 in an open-addressed set (a few bytes a value); counts are exact while values are
//! listed, unless two hashes share an encoding (about n²/2^27 for n values). Past 12,288 each
//! value raises one register (picked by 16 of its 25 bits) to its rank, and the count is
//! estimated from the registers (standard error 1.04 / √65536 ≈ 0.41 %).
//!
//! Why not the crate itself: it turned a sketch into registers at 129 values, 48 KiB each
//! (56 KiB as allocated), so that on shop traffic, where most day rows of more than 128
//! visitors have a few hundred, sketches took ~35 MB a simulated day: half the engine's memory
//! at 100 days, kept as long as day rollups (forever by default). Listed, those rows take
//! kilobytes. And it packs registers in 6 bits and merges two sketches one register at a time
//! (unpacking, comparing, repacking, updating a running sum), ~0.3 ms a merge, while a
//! distinct query merges a sketch per day and row: 0.2–0.6 s for a month of daily visitors by
//! country. Here a merge of registers is a byte-wise maximum over 64 KiB that the compiler
//! vectorizes, and the estimate sums the registers in independent lanes.

use serde::de::Error as _;
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Register-picking bits of a hash.
const PRECISION: u32 = 16;
const REGISTERS: usize = 1 << PRECISION;
/// Bits of an encoded value that hold its rank (the rest hold 25 bits of the hash).
const RANK_BITS: u32 = 6;
/// Distinct values a sketch lists in a plain list (scanned); the next one moves them into a
/// set.
const FEW_MAX: usize = 128;
/// Slots of a set when it is made, and at most: past 3/4 of the most slots (12,288 values)
/// the values become registers, which then take the same 64 KiB.
const SET_SLOTS: usize = 256;
const SET_SLOTS_MAX: usize = REGISTERS / 4;

/// The stored form's tag (the two low bits of its first element), as the crate wrote it.
const STORED_TWO: usize = 0;
const STORED_FEW: usize = 1;
/// A tag the crate never wrote: a set's values (snapshot format 17 on).
const STORED_SET: usize = 2;
const STORED_REGISTERS: usize = 3;
/// The stored registers' length in 32-bit words: the count of zero registers, their harmonic
/// sum (an `f32`), the registers packed 6 bits each, and a spare word.
const STORED_REGISTER_WORDS: usize = REGISTERS * RANK_BITS as usize / 32 + 3;

/// A set of 64-bit hashes, counted exactly while small and estimated beyond.
#[derive(Clone, Default)]
pub struct Sketch(Repr);

#[derive(Clone)]
enum Repr {
    /// Up to two values, in the order they came; 0 is no value (a value's rank is at least 1,
    /// so no value is 0).
    Two([u32; 2]),
    /// 3 to [`FEW_MAX`] distinct values, then zeros; 4 to 128 long, a power of two.
    Few(Box<[u32]>),
    /// More values, each in the slot its hash bits pick or the next free one after it (0 is a
    /// free slot), at most 3/4 of the slots taken.
    Set { len: u32, slots: Box<[u32]> },
    /// A rank per register.
    Registers(Box<[u8]>),
}

impl Default for Repr {
    fn default() -> Self {
        Repr::Two([0; 2])
    }
}

/// The 31-bit value a hash is kept as (the crate's `encode_hash`).
fn encode(hash: u64) -> u32 {
    let bits = (hash as u32) & ((1 << (32 - RANK_BITS - 1)) - 1);
    let rank = (!hash >> PRECISION).trailing_zeros() + 1;
    (bits << RANK_BITS) | rank
}

/// Raises the register of `value` to its rank.
#[inline]
fn raise(registers: &mut [u8], value: u32) {
    let register = ((value >> RANK_BITS) as usize) & (REGISTERS - 1);
    let rank = (value & ((1 << RANK_BITS) - 1)) as u8;
    let held = &mut registers[register];
    *held = (*held).max(rank);
}

fn registers_of(values: impl IntoIterator<Item = u32>) -> Box<[u8]> {
    let mut registers = vec![0u8; REGISTERS].into_boxed_slice();
    values.into_iter().for_each(|value| raise(&mut registers, value));
    registers
}

impl Sketch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a hash (the engine's are [`super::hash_id`]s; sketches merge only if fed the same
    /// hash function).
    pub fn insert_hash(&mut self, hash: u64) {
        self.insert_value(encode(hash));
    }

    fn insert_value(&mut self, value: u32) {
        match &mut self.0 {
            Repr::Two(values) => {
                for held in values.iter_mut() {
                    if *held == value {
                        return;
                    }
                    if *held == 0 {
                        *held = value;
                        return;
                    }
                }
                self.0 = Repr::Few(Box::new([values[0], values[1], value, 0]));
            }
            Repr::Few(values) => {
                let held = values.iter().take_while(|held| **held != 0).count();
                if values[..held].contains(&value) {
                    return;
                }
                if held < values.len() {
                    values[held] = value;
                } else if held < FEW_MAX {
                    let mut grown = vec![0; held * 2];
                    grown[..held].copy_from_slice(values);
                    grown[held] = value;
                    *values = grown.into_boxed_slice();
                } else {
                    let listed = values.iter().copied().chain([value]);
                    self.0 = set_of(SET_SLOTS, listed);
                }
            }
            Repr::Set { len, slots } => {
                if !set_insert(slots, value) {
                    return;
                }
                *len += 1;
                if *len as usize * 4 > slots.len() * 3 {
                    let held = slots.iter().copied().filter(|value| *value != 0);
                    self.0 = if slots.len() < SET_SLOTS_MAX {
                        set_of(slots.len() * 2, held)
                    } else {
                        Repr::Registers(registers_of(held))
                    };
                }
            }
            Repr::Registers(registers) => raise(registers, value),
        }
    }

    /// The values listed, with zeros for free places (none once registers are kept).
    fn listed(&self) -> &[u32] {
        match &self.0 {
            Repr::Two(values) => values,
            Repr::Few(values) => values,
            Repr::Set { slots, .. } => slots,
            Repr::Registers(_) => &[],
        }
    }

    fn values(&self) -> impl Iterator<Item = u32> + '_ {
        self.listed().iter().copied().filter(|value| *value != 0)
    }

    /// Makes this the union of itself and `other`.
    pub fn merge(&mut self, other: &Sketch) {
        match (&mut self.0, &other.0) {
            (Repr::Registers(mine), Repr::Registers(theirs)) => {
                // A plain loop over equal lengths: compiled to vector maxima, 64 bytes at a
                // time where the machine has them.
                for (mine, theirs) in mine.iter_mut().zip(theirs.iter()) {
                    *mine = (*mine).max(*theirs);
                }
            }
            (_, Repr::Registers(theirs)) => {
                let mut registers = theirs.clone();
                self.values().for_each(|value| raise(&mut registers, value));
                self.0 = Repr::Registers(registers);
            }
            // An empty sketch (a query's new cell, point or group) takes a copy: one
            // allocation and a copy of the slots, not an insert per value through every size.
            (Repr::Two([0, _]), _) => *self = other.clone(),
            _ => other.values().for_each(|value| self.insert_value(value)),
        }
    }

    /// How many distinct hashes were added: exact while the values are listed (up to 12,288;
    /// but for hashes that share an encoding), estimated from the registers beyond.
    pub fn estimate(&self) -> usize {
        match &self.0 {
            Repr::Set { len, .. } => *len as usize,
            Repr::Registers(registers) => estimate(registers),
            _ => self.values().count(),
        }
    }

    /// Bytes this sketch holds on the heap: none up to two values.
    pub fn heap_bytes(&self) -> usize {
        match &self.0 {
            Repr::Two(_) => 0,
            Repr::Few(values) | Repr::Set { slots: values, .. } => values.len() * 4,
            Repr::Registers(registers) => registers.len(),
        }
    }
}

/// A set of `slots` slots holding `values` (distinct, non-zero, fewer than 3/4 of `slots`).
fn set_of(slots: usize, values: impl Iterator<Item = u32>) -> Repr {
    let mut table = vec![0; slots].into_boxed_slice();
    let mut len = 0;
    for value in values {
        len += u32::from(set_insert(&mut table, value));
    }
    Repr::Set { len, slots: table }
}

/// Adds `value` to the set in `slots` (a power of two long, never full); whether it was new.
fn set_insert(slots: &mut [u32], value: u32) -> bool {
    let mask = slots.len() - 1;
    // The bits above the rank are hash bits: uniform, so they pick the slot as they are.
    let mut at = (value >> RANK_BITS) as usize & mask;
    loop {
        match slots[at] {
            0 => {
                slots[at] = value;
                return true;
            }
            held if held == value => return false,
            _ => at = (at + 1) & mask,
        }
    }
}

/// Lanes summed apart (so that the compiler may vectorize the sums, which it may not reorder).
const LANES: usize = 16;

/// The zero registers and the harmonic sum Σ 2^-rank.
fn zeros_and_sum(registers: &[u8]) -> (u32, f64) {
    let mut zeros = [0u32; LANES];
    let mut sums = [0f64; LANES];
    for chunk in registers.chunks_exact(LANES) {
        for ((rank, zero), sum) in chunk.iter().zip(&mut zeros).zip(&mut sums) {
            *zero += u32::from(*rank == 0);
            // 2^-rank, built from its exponent bits.
            *sum += f64::from_bits((1023 - u64::from(*rank)) << 52);
        }
    }
    (zeros.iter().sum(), sums.iter().sum())
}

/// HyperLogLog++ with LogLog-Beta bias correction, as the crate computes it (which kept the
/// harmonic sum as a running `f32`; here it is summed anew in `f64`, so at high counts the two
/// may differ in the last unit).
fn estimate(registers: &[u8]) -> usize {
    let (zeros, sum) = zeros_and_sum(registers);
    let registers = REGISTERS as f64;
    let alpha = 0.7213 / (1.0 + 1.079 / registers);
    let zeros = f64::from(zeros);
    let estimate = alpha * registers * (registers - zeros) / (sum + beta(zeros));
    (estimate + 0.5) as usize
}

/// LogLog-Beta's bias correction for 2^16 registers (https://arxiv.org/pdf/1612.02284.pdf),
/// by Horner's method.
fn beta(zeros: f64) -> f64 {
    const BETA: [f64; 8] = [
        -0.3733187664375306,
        -1.41704077448123,
        0.40729184796612533,
        1.5615203390658416,
        -0.9924223353428613,
        0.2606468139948309,
        -0.03053811369682807,
        0.00155770210179105,
    ];
    let zl = (zeros + 1.0).ln();
    let polynomial = BETA[1..].iter().rev().fold(0.0, |sum, beta| sum * zl + beta);
    polynomial * zl + BETA[0] * zeros
}

/// Registers packed in three words: 16 of 6 bits fill 96 bits exactly, so packing works a
/// group at a time with fixed shifts (one register at a time took ~150 ms a snapshot at 3
/// million events).
const GROUP: usize = 16;

/// The registers packed 6 bits each after the crate's two header words.
fn pack(registers: &[u8]) -> Vec<u32> {
    let (zeros, sum) = zeros_and_sum(registers);
    let mut words = vec![0u32; STORED_REGISTER_WORDS];
    words[0] = zeros;
    words[1] = (sum as f32).to_bits();
    for (group, packed) in registers.chunks_exact(GROUP).zip(words[2..].chunks_exact_mut(3)) {
        let bits = group
            .iter()
            .enumerate()
            .fold(0u128, |bits, (at, rank)| bits | u128::from(*rank) << (at * RANK_BITS as usize));
        packed[0] = bits as u32;
        packed[1] = (bits >> 32) as u32;
        packed[2] = (bits >> 64) as u32;
    }
    words
}

fn unpack(words: &[u32]) -> Box<[u8]> {
    let mut registers = vec![0u8; REGISTERS].into_boxed_slice();
    for (group, packed) in registers.chunks_exact_mut(GROUP).zip(words[2..].chunks_exact(3)) {
        let bits =
            u128::from(packed[0]) | u128::from(packed[1]) << 32 | u128::from(packed[2]) << 64;
        for (at, rank) in group.iter_mut().enumerate() {
            *rank = (bits >> (at * RANK_BITS as usize)) as u8 & ((1 << RANK_BITS) - 1);
        }
    }
    registers
}

/// As the crate stored it: a tuple of a tagged word (holding up to two values itself) and the
/// listed values or packed registers.
impl Serialize for Sketch {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(2)?;
        match &self.0 {
            Repr::Two([first, second]) => {
                let word = (*first as usize) << 2 | (*second as usize) << 33 | STORED_TWO;
                tuple.serialize_element(&word)?;
                tuple.serialize_element(&None::<Vec<u32>>)?;
            }
            Repr::Few(_) | Repr::Set { .. } => {
                let values: Vec<u32> = self.values().collect();
                let tag = if values.len() <= FEW_MAX { STORED_FEW } else { STORED_SET };
                tuple.serialize_element(&(values.len() << 56 | tag))?;
                tuple.serialize_element(&Some(values))?;
            }
            Repr::Registers(registers) => {
                tuple.serialize_element(&STORED_REGISTERS)?;
                tuple.serialize_element(&Some(pack(registers)))?;
            }
        }
        tuple.end()
    }
}

impl<'de> Deserialize<'de> for Sketch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (word, words): (usize, Option<Vec<u32>>) = Deserialize::deserialize(deserializer)?;
        const VALUE_MASK: usize = 0x7fff_ffff;
        match (word & 3, words) {
            (STORED_TWO, None) => {
                let values = [(word >> 2) & VALUE_MASK, (word >> 33) & VALUE_MASK];
                let mut sketch = Sketch::new();
                values.into_iter().filter(|value| *value != 0).for_each(|value| {
                    sketch.insert_value(value as u32);
                });
                Ok(sketch)
            }
            (STORED_FEW | STORED_SET, Some(values)) if values.len() <= SET_SLOTS_MAX * 3 / 4 => {
                if values.contains(&0) {
                    return Err(D::Error::custom("a sketch lists the value 0, which none has"));
                }
                if values.len() <= FEW_MAX {
                    let mut sketch = Sketch::new();
                    values.into_iter().for_each(|value| sketch.insert_value(value));
                    return Ok(sketch);
                }
                // Sized once for all of them: inserted one by one, a set doubled its way up,
                // and a 100 M-event snapshot holds tens of millions of listed values.
                let room = (values.len() * 4).div_ceil(3).next_power_of_two();
                Ok(Sketch(set_of(room.clamp(SET_SLOTS, SET_SLOTS_MAX), values.into_iter())))
            }
            (STORED_REGISTERS, Some(words)) if words.len() == STORED_REGISTER_WORDS => {
                Ok(Sketch(Repr::Registers(unpack(&words))))
            }
            (tag, words) => Err(D::Error::custom(format_args!(
                "not a stored sketch: tag {tag} with {} words",
                words.map_or(0, |words| words.len())
            ))),
        }
    }
}

/// Equal when they hold the same values, or the same registers (a set's layout depends on the
/// order its values came in).
impl PartialEq for Sketch {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Repr::Registers(mine), Repr::Registers(theirs)) => mine == theirs,
            (Repr::Registers(_), _) | (_, Repr::Registers(_)) => false,
            _ => {
                let sorted = |sketch: &Sketch| {
                    let mut values: Vec<u32> = sketch.values().collect();
                    values.sort_unstable();
                    values
                };
                sorted(self) == sorted(other)
            }
        }
    }
}

impl Eq for Sketch {}

impl std::fmt::Debug for Sketch {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.0 {
            Repr::Two(_) | Repr::Few(_) | Repr::Set { .. } => "listed",
            Repr::Registers(_) => "registers",
        };
        write!(formatter, "Sketch({kind}, estimate {})", self.estimate())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distinct::hash_id;

    use proptest::prelude::*;

    type CrateSketch = cardinality_estimator::CardinalityEstimator<str, wyhash::WyHash, 16, 6>;

    fn sketches_of(ids: impl IntoIterator<Item = String>) -> (Sketch, CrateSketch) {
        let (mut ours, mut theirs) = (Sketch::new(), CrateSketch::new());
        for id in ids {
            ours.insert_hash(hash_id(&id));
            theirs.insert_hash(hash_id(&id));
        }
        (ours, theirs)
    }

    /// How many values the ids' hashes encode to (hashes sharing an encoding count once).
    fn distinct_encodings(ids: &[String]) -> usize {
        let encoded: std::collections::HashSet<u32> =
            ids.iter().map(|id| encode(hash_id(id))).collect();
        encoded.len()
    }

    /// Within a unit per ten thousand: the crate's running `f32` sum drifts a little from the
    /// sum taken anew (and is what old snapshots stored).
    fn close(ours: usize, theirs: usize) -> bool {
        ours.abs_diff(theirs) as f64 <= 1.0 + theirs as f64 * 1e-4
    }

    /// Up to 128 values counts and is stored as the crate counted and stored them; past
    /// 12,288 likewise (the same registers); between, the values are listed in a set and
    /// counted exactly where the crate estimated. Every form the crate stored reads.
    #[test]
    fn counts_and_reads_as_cardinality_estimator_did() {
        for n in [0, 1, 2, 3, 4, 5, 100, 128, 129, 130, 1_000, 12_288, 12_289, 20_000, 300_000] {
            let (ours, theirs) = sketches_of((0..n).map(|i| format!("visitor-{i}")));
            let from_theirs: Sketch =
                postcard::from_bytes(&postcard::to_allocvec(&theirs).unwrap())
                    .expect("the crate's stored sketch reads");
            assert!(close(from_theirs.estimate(), theirs.estimate()), "{n}");
            let bytes = postcard::to_allocvec(&ours).unwrap();
            let again: Sketch = postcard::from_bytes(&bytes).unwrap();
            assert_eq!(again, ours, "{n} values round trip");
            assert_eq!(again.estimate(), ours.estimate());
            if n <= 128 || n > 12_288 {
                assert_eq!(from_theirs, ours, "{n} values: the crate's form, read, is ours");
                let to_theirs: CrateSketch = postcard::from_bytes(&bytes).expect("crate reads it");
                assert!(close(to_theirs.estimate(), theirs.estimate()), "{n}");
            }
            if n <= 12_288 {
                let ids: Vec<String> = (0..n).map(|i| format!("visitor-{i}")).collect();
                assert_eq!(ours.estimate(), distinct_encodings(&ids), "listed counts are exact");
            } else {
                assert!(close(ours.estimate(), theirs.estimate()), "{n}: {}", ours.estimate());
            }
        }
    }

    /// What a day row's sketch takes: a few hundred values (most rows past 128 on shop
    /// traffic) take kilobytes, not the 64 KiB of registers.
    #[test]
    fn listed_values_take_a_few_bytes_each() {
        let heap = |n: u64| sketches_of((0..n).map(|i| format!("v{i}"))).0.heap_bytes();
        assert_eq!(heap(2), 0);
        assert_eq!(heap(100), 128 * 4);
        assert_eq!(heap(300), 512 * 4);
        assert_eq!(heap(1_000), 2_048 * 4);
        assert_eq!(heap(12_288), 65_536);
        assert_eq!(heap(12_289), 65_536, "registers");
    }

    #[test]
    fn a_stored_form_that_is_no_sketch_is_refused() {
        let bad: [(usize, Option<Vec<u32>>); 4] = [
            (STORED_TWO, Some(vec![1])),
            (STORED_FEW, Some(vec![64, 0, 65])),
            (STORED_REGISTERS, Some(vec![0; 10])),
            (2, None),
        ];
        for stored in bad {
            let bytes = postcard::to_allocvec(&stored).unwrap();
            assert!(postcard::from_bytes::<Sketch>(&bytes).is_err(), "{stored:?}");
        }
    }

    proptest! {
        /// A merge holds what one sketch fed both sides' values holds, whichever forms the
        /// two sides are in (listed, registers, one of each).
        #[test]
        fn a_merge_is_the_sketch_of_the_union(
            left in prop::collection::vec(0u32..400, 0..300),
            right in prop::collection::vec(0u32..400, 0..300),
            big in 0u64..2,
        ) {
            // Each value one id, or 40 (up to 16,000 in all: past the listed stage).
            let per_value = if big == 1 { 40 } else { 1 };
            let ids = |values: &Vec<u32>| {
                let each = |value: u32| (0..per_value).map(move |k| format!("id-{value}-{k}"));
                values.iter().copied().flat_map(each).collect::<Vec<_>>()
            };
            let (mut merged, _) = sketches_of(ids(&left));
            let (other, _) = sketches_of(ids(&right));
            merged.merge(&other);
            let all = ids(&left).into_iter().chain(ids(&right)).collect::<Vec<_>>();
            let (union, _) = sketches_of(all.clone());
            prop_assert_eq!(&merged, &union);
            let encodings = distinct_encodings(&all);
            if encodings <= 12_288 {
                prop_assert_eq!(merged.estimate(), encodings);
            }
        }
    }
}
