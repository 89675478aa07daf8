//! Engine snapshots: the whole engine state in one file, so a restart loads it and replays only
//! the log records written after it.
//!
//! Layout: the magic `SPSNAP`, a format version byte, the log position (u64 LE) the state
//! covers, then [`SECTIONS`] sections, each its payload length (u64 LE), a CRC32C of the
//! payload and the payload (postcard). The sections are independent parts of the state
//! (funnel trails, rollups, remembered orders, carts, co-occurrence, distinct sketches, the
//! rest), encoded on threads of their own and decoded each on its own thread as soon as it
//! has been read: on a restart with a large state the decode is most of the time, and this way
//! it uses every core and overlaps the reading of the file. Large maps and vectors are read at
//! their full size at once ([`crate::presized`]).
//!
//! A snapshot that fails any check is refused with the reason; the caller then rebuilds from
//! the whole log, which is always correct, only slower.

use std::io::Read;
use std::thread::{Scope, ScopedJoinHandle};

use serde::de::DeserializeOwned;

use crate::buys::BuyLedger;
use crate::carts::{StoredCarts, StoredCartsRef};
use crate::distinct::DailyDistinct;
use crate::engine::{Engine, EngineConfig};
use crate::facts::{
    Dimensions, DimensionsUpToV12, MeasuresUpToV13, OrderMemory, OrderRecord, OrderRecordUpToV11,
};
use crate::funnel::{FunnelLog, FunnelLogUpToV9, StoredFunnelLogUpToV12, StoredFunnelLogUpToV14};
use crate::live::{LiveWindows, LiveWindowsUpToV10};
use crate::recommend::{CoOccurrence, CoOccurrenceUpToV11};
use crate::rollup::{Rollups, RollupsUpToV15};

pub const MAGIC: &[u8; 6] = b"SPSNAP";
/// Bumped whenever the engine's state layout changes (postcard is positional, so an old
/// layout would not fail to decode, it would decode wrong); older snapshots are then
/// converted ([`OLDER_FORMATS_READ`]) or refused and the log replayed. 2: carts, folded
/// rollups, per-second deque index. 3: funnel trails keep the device. 4: three sections;
/// compact rollup buckets (sealed rows, 32-bit counters) and funnel marks (time offsets).
/// 5: seven sections. 6: trails keep their visitor. 7: a visitor's live sessions live in its
/// presence entry. 8: funnel trails in slots. 9: days hold the hours folded into them, no
/// longer every folded minute. 10: funnel trails without their slot map (rebuilt from the
/// trails). 11: the live windows' active index counts per place, no longer per second.
/// 12: remembered orders keep what was refunded of them and of each line; co-occurrence keeps
/// visitors per store and each product's stores; the live windows' reference time.
/// 13: funnel trails keep their session's marketing source; product categories per store.
/// 14: rollup rows count orders of unknown value (for the average order value).
/// 15: funnel marks keep the marketing source their event counted under, and the funnel log
/// since when they all do. 16: rollups fold a day's hours into it once the day is complete,
/// no longer each hour once complete, and keep where days are folded to. 17: a distinct
/// sketch of 129 to 12,288 values is stored as its values (a tag `cardinality-estimator`, whose
/// stored form the sketches kept, never wrote), no longer as registers.
pub const FORMAT_VERSION: u8 = 17;
/// Older formats still read, converted on load, so that an upgrade keeps history the log no
/// longer holds (with log retention): 8 and 9 also stored the funnel log's slot map, 8's days
/// held every folded minute rather than whole hours, and 8 to 10 counted active visitors and
/// sessions per second and place; up to 11 remembered orders without their refunds and
/// co-occurrence without stores; up to 12 kept trails without their session's source and
/// one category path per product for all stores; up to 13 rollup rows without their orders
/// of unknown value (read as none: every order then counted as valued in averages, as it did);
/// up to 14 funnel marks without their source (read as their session's, and questions by
/// source over them refused); up to 15 rollups whose days hold every complete hour (days are
/// then folded from the hour after the last one folded); 16's sketches of more than 128
/// values are registers, as they were made then.
pub const OLDER_FORMATS_READ: [u8; 9] = [8, 9, 10, 11, 12, 13, 14, 15, 16];
const HEADER_BYTES: usize = 6 + 1 + 8;
const SECTION_HEADER_BYTES: usize = 8 + 4;
/// In file order: funnel trails, rollups, orders, carts, co-occurrence, distinct sketches,
/// the rest ([`Rest`]); the slowest to decode first, so they start first.
pub const SECTIONS: usize = 7;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("not a Storepulse engine snapshot")]
    NotASnapshot,
    #[error(
        "snapshot format {found}, this build reads {FORMAT_VERSION} and {OLDER_FORMATS_READ:?}"
    )]
    Version { found: u8 },
    #[error("snapshot is truncated or its checksum does not match")]
    Corrupt,
    #[error("snapshot does not decode: {0}")]
    Decode(#[from] postcard::Error),
}

/// The remembered orders' section, read at its full size at once.
#[derive(serde::Deserialize)]
struct StoredOrders(#[serde(deserialize_with = "crate::presized::map")] OrderMemory);

/// The remembered orders' section of formats up to 11 (see [`OrderRecordUpToV11`]).
#[derive(serde::Deserialize)]
struct StoredOrdersUpToV11(
    #[serde(deserialize_with = "crate::presized::map")]
    griddle::HashMap<
        (u32, compact_str::CompactString),
        OrderRecordUpToV11,
        foldhash::fast::RandomState,
    >,
);

impl From<StoredOrdersUpToV11> for StoredOrders {
    fn from(old: StoredOrdersUpToV11) -> Self {
        let mut orders = OrderMemory::default();
        orders.reserve(old.0.len());
        orders.extend(old.0.into_iter().map(|(id, record)| (id, OrderRecord::from(record))));
        StoredOrders(orders)
    }
}

/// The engine's state outside the large parts, in one section.
type Rest<Live = LiveWindows, Counters = (i64, u64, u64, i64), Dims = Dimensions> = (
    EngineConfig,
    Dims,
    Live,
    BuyLedger,
    // newest event time, events applied, log position, the live windows' reference time
    Counters,
);

/// The counters of formats up to 11, before the live windows' reference time: it is taken to
/// be the newest event time, which it was then.
fn with_live_reference((newest, applied, position): (i64, u64, u64)) -> (i64, u64, u64, i64) {
    (newest, applied, position, newest)
}

/// Serializes `engine` into `out` (cleared first).
pub fn encode(engine: &Engine, out: &mut Vec<u8>) -> Result<(), postcard::Error> {
    let rest = (
        &engine.config,
        &engine.dims,
        &engine.live,
        &engine.buys,
        (engine.newest_ms, engine.applied, engine.log_position, engine.live_reference_ms),
    );
    let sections = std::thread::scope(|scope| {
        let encoding = [
            scope.spawn(|| postcard::to_stdvec(&engine.funnels)),
            scope.spawn(|| postcard::to_stdvec(&engine.rollups)),
            scope.spawn(|| postcard::to_stdvec(&engine.orders)),
            scope.spawn(|| {
                let carts = engine.funnels.carts().collect();
                let retention_ms = engine.config.funnel_retention_ms;
                postcard::to_stdvec(&StoredCartsRef::new(carts, retention_ms))
            }),
            scope.spawn(|| postcard::to_stdvec(&engine.together)),
            scope.spawn(|| postcard::to_stdvec(&engine.distinct)),
            scope.spawn(|| postcard::to_stdvec(&rest)),
        ];
        encoding.map(joined)
    });
    out.clear();
    out.extend_from_slice(MAGIC);
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&engine.log_position.to_le_bytes());
    for payload in sections {
        let payload = payload?;
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
        out.extend_from_slice(&payload);
    }
    Ok(())
}

/// Reads a snapshot written by [`encode`].
pub fn decode(bytes: &[u8]) -> Result<Engine, SnapshotError> {
    read(bytes)
}

/// Reads a snapshot written by [`encode`] from `reader` (a file), decoding each section while
/// the next is read.
pub fn read(mut reader: impl Read) -> Result<Engine, SnapshotError> {
    let mut header = [0; HEADER_BYTES];
    reader.read_exact(&mut header).map_err(|_| SnapshotError::NotASnapshot)?;
    if &header[..6] != MAGIC {
        return Err(SnapshotError::NotASnapshot);
    }
    let version = header[6];
    if version != FORMAT_VERSION && !OLDER_FORMATS_READ.contains(&version) {
        return Err(SnapshotError::Version { found: version });
    }
    std::thread::scope(|scope| {
        let funnels =
            scope.spawn({
                let payload = next_section(&mut reader)?;
                move || match version {
                    ..10 => postcard::from_bytes::<FunnelLogUpToV9>(&payload).map(FunnelLog::from),
                    10..13 => postcard::from_bytes::<StoredFunnelLogUpToV12>(&payload)
                        .map(FunnelLog::from),
                    13..15 => postcard::from_bytes::<StoredFunnelLogUpToV14>(&payload)
                        .map(FunnelLog::from),
                    _ => postcard::from_bytes::<FunnelLog>(&payload),
                }
            });
        let rollups = scope.spawn({
            let payload = next_section(&mut reader)?;
            move || match version {
                ..14 => postcard::from_bytes::<RollupsUpToV15<MeasuresUpToV13>>(&payload)
                    .map(Rollups::from),
                14..16 => postcard::from_bytes::<RollupsUpToV15>(&payload).map(Rollups::from),
                _ => postcard::from_bytes::<Rollups>(&payload),
            }
        });
        let orders = decoding_from::<StoredOrdersUpToV11, StoredOrders>(
            scope,
            next_section(&mut reader)?,
            version < 12,
        );
        let carts = decoding::<StoredCarts>(scope, next_section(&mut reader)?);
        let together = decoding_from::<CoOccurrenceUpToV11, CoOccurrence>(
            scope,
            next_section(&mut reader)?,
            version < 12,
        );
        let distinct = decoding::<DailyDistinct>(scope, next_section(&mut reader)?);
        let rest_payload = next_section(&mut reader)?;
        let rest: Rest = if version < 11 {
            let (config, dims, live, buys, counters) = postcard::from_bytes::<
                Rest<LiveWindowsUpToV10, _, DimensionsUpToV12>,
            >(&rest_payload)?;
            let live = LiveWindows::from(live);
            (config, dims.into(), live, buys, with_live_reference(counters))
        } else if version < 12 {
            let (config, dims, live, buys, counters) =
                postcard::from_bytes::<Rest<LiveWindows, _, DimensionsUpToV12>>(&rest_payload)?;
            (config, dims.into(), live, buys, with_live_reference(counters))
        } else if version < 13 {
            let (config, dims, live, buys, counters) =
                postcard::from_bytes::<Rest<LiveWindows, _, DimensionsUpToV12>>(&rest_payload)?;
            (config, dims.into(), live, buys, counters)
        } else {
            postcard::from_bytes(&rest_payload)?
        };
        let mut trailing = [0; 1];
        if !matches!(reader.read(&mut trailing), Ok(0)) {
            return Err(SnapshotError::Corrupt);
        }
        let (config, dims, live, buys, counters) = rest;
        let StoredOrders(orders) = joined(orders)?;
        let mut rollups = joined(rollups)?;
        if version < 9 {
            rollups.upgrade_from_minute_folded_days();
        }
        Ok(Engine::from_parts(
            config,
            dims,
            orders,
            rollups,
            live,
            buys,
            joined(together)?,
            joined(distinct)?,
            joined(funnels)?,
            Some(joined(carts)?),
            counters,
        ))
    })
}

/// The next section's payload, checked.
fn next_section(reader: &mut impl Read) -> Result<Vec<u8>, SnapshotError> {
    let mut header = [0; SECTION_HEADER_BYTES];
    reader.read_exact(&mut header).map_err(|_| SnapshotError::Corrupt)?;
    let (length, checksum) = header.split_at(8);
    let length = u64::from_le_bytes(length.try_into().map_err(|_| SnapshotError::Corrupt)?);
    let checksum = u32::from_le_bytes(checksum.try_into().map_err(|_| SnapshotError::Corrupt)?);
    // Reserved whole so the read lands in place; a damaged length fails here or in the read.
    let mut payload = Vec::new();
    payload
        .try_reserve_exact(usize::try_from(length).map_err(|_| SnapshotError::Corrupt)?)
        .map_err(|_| SnapshotError::Corrupt)?;
    reader.take(length).read_to_end(&mut payload).map_err(|_| SnapshotError::Corrupt)?;
    if payload.len() as u64 != length || crc32c::crc32c(&payload) != checksum {
        return Err(SnapshotError::Corrupt);
    }
    Ok(payload)
}

/// Decodes `payload` on a thread of its own.
fn decoding<'scope, T: DeserializeOwned + Send + 'scope>(
    scope: &'scope Scope<'scope, '_>,
    payload: Vec<u8>,
) -> ScopedJoinHandle<'scope, Result<T, postcard::Error>> {
    scope.spawn(move || postcard::from_bytes(&payload))
}

/// Decodes `payload` on a thread of its own, as an `Old` layout converted to `New` when
/// `old_layout` (a section written by an older format), else as `New`.
fn decoding_from<'scope, Old, New>(
    scope: &'scope Scope<'scope, '_>,
    payload: Vec<u8>,
    old_layout: bool,
) -> ScopedJoinHandle<'scope, Result<New, postcard::Error>>
where
    Old: DeserializeOwned + Into<New>,
    New: DeserializeOwned + Send + 'scope,
{
    scope.spawn(move || {
        if old_layout {
            postcard::from_bytes::<Old>(&payload).map(Into::into)
        } else {
            postcard::from_bytes::<New>(&payload)
        }
    })
}

/// A scoped thread's result; a panic in it is resumed here (encoding and decoding do not
/// panic on any input, so this only passes a bug on).
fn joined<T>(handle: ScopedJoinHandle<'_, T>) -> T {
    handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}
