//! Engine snapshots: the whole engine state in one file, so a restart loads it and replays only
//! the log records written after it.
//!
//! Layout: the magic `SPSNAP`, a format version byte, the log position (u64 LE) the state
//! covers, then [`SECTIONS`] sections, each its payload length (u64 LE), a CRC32C of the
//! payload and the payload (postcard). The sections are independent parts of the state (the
//! rollups, the funnel trails, everything else), encoded and decoded on threads of their own:
//! on a restart with a large state the decode is most of the time, and it then uses every core.
//! A snapshot that fails any check is refused with the reason; the caller then rebuilds from
//! the whole log, which is always correct, only slower.

use crate::FastMap;
use crate::buys::BuyLedger;
use crate::carts::CartTracker;
use crate::distinct::DailyDistinct;
use crate::engine::{Engine, EngineConfig};
use crate::facts::{Dimensions, OrderRecord};
use crate::funnel::FunnelLog;
use crate::live::LiveWindows;
use crate::recommend::CoOccurrence;
use crate::rollup::Rollups;

pub const MAGIC: &[u8; 6] = b"SPSNAP";
/// Bumped whenever the engine's state layout changes (postcard is positional, so an old
/// layout would not fail to decode, it would decode wrong); older snapshots are then refused
/// and the log replayed. 2: carts, folded rollups, per-second deque index. 3: funnel trails
/// keep the device. 4: sections decoded in parallel; compact rollup buckets (sealed rows,
/// 32-bit counters) and funnel marks (time offsets).
pub const FORMAT_VERSION: u8 = 4;
const HEADER_BYTES: usize = 6 + 1 + 8;
const SECTION_HEADER_BYTES: usize = 8 + 4;
/// Core (everything below), rollups, funnel trails.
pub const SECTIONS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("not a Storepulse engine snapshot")]
    NotASnapshot,
    #[error("snapshot format {found}, this build reads {FORMAT_VERSION}")]
    Version { found: u8 },
    #[error("snapshot is truncated or its checksum does not match")]
    Corrupt,
    #[error("snapshot does not decode: {0}")]
    Decode(#[from] postcard::Error),
}

/// The engine's state other than its two largest parts, in one section.
type Core = (
    EngineConfig,
    Dimensions,
    FastMap<(u32, compact_str::CompactString), OrderRecord>,
    LiveWindows,
    BuyLedger,
    CoOccurrence,
    DailyDistinct,
    CartTracker,
    // newest event time, events applied, log position
    (i64, u64, u64),
);

/// Serializes `engine` into `out` (cleared first).
pub fn encode(engine: &Engine, out: &mut Vec<u8>) -> Result<(), postcard::Error> {
    let core = (
        &engine.config,
        &engine.dims,
        &engine.orders,
        &engine.live,
        &engine.buys,
        &engine.together,
        &engine.distinct,
        &engine.carts,
        (engine.newest_ms, engine.applied, engine.log_position),
    );
    let [core, rollups, funnels] = std::thread::scope(|scope| {
        let rollups = scope.spawn(|| postcard::to_stdvec(&engine.rollups));
        let funnels = scope.spawn(|| postcard::to_stdvec(&engine.funnels));
        let core = postcard::to_stdvec(&core);
        [core, joined(rollups), joined(funnels)]
    });
    out.clear();
    out.extend_from_slice(MAGIC);
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&engine.log_position.to_le_bytes());
    for payload in [core?, rollups?, funnels?] {
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
        out.extend_from_slice(&payload);
    }
    Ok(())
}

/// Reads a snapshot written by [`encode`].
pub fn decode(bytes: &[u8]) -> Result<Engine, SnapshotError> {
    if bytes.len() < HEADER_BYTES || &bytes[..6] != MAGIC {
        return Err(SnapshotError::NotASnapshot);
    }
    if bytes[6] != FORMAT_VERSION {
        return Err(SnapshotError::Version { found: bytes[6] });
    }
    let mut rest = &bytes[HEADER_BYTES..];
    let mut sections = [&[][..]; SECTIONS];
    for section in &mut sections {
        (*section, rest) = split_section(rest)?;
    }
    if !rest.is_empty() {
        return Err(SnapshotError::Corrupt);
    }
    let [core, rollups, funnels] = sections;
    let (core, rollups, funnels) = std::thread::scope(|scope| {
        let rollups = scope.spawn(|| postcard::from_bytes::<Rollups>(rollups));
        let funnels = scope.spawn(|| postcard::from_bytes::<FunnelLog>(funnels));
        let core = postcard::from_bytes::<Core>(core);
        (core, joined(rollups), joined(funnels))
    });
    let (config, dims, orders, live, buys, together, distinct, carts, counters) = core?;
    let (newest_ms, applied, log_position) = counters;
    Ok(Engine::from_parts(
        config,
        dims,
        orders,
        rollups?,
        live,
        buys,
        together,
        distinct,
        funnels?,
        carts,
        (newest_ms, applied, log_position),
    ))
}

/// One section off the front of `bytes`, checked: (its payload, what follows).
fn split_section(bytes: &[u8]) -> Result<(&[u8], &[u8]), SnapshotError> {
    let header = bytes.get(..SECTION_HEADER_BYTES).ok_or(SnapshotError::Corrupt)?;
    let (length, checksum) = header.split_at(8);
    let length = u64::from_le_bytes(length.try_into().map_err(|_| SnapshotError::Corrupt)?);
    let checksum = u32::from_le_bytes(checksum.try_into().map_err(|_| SnapshotError::Corrupt)?);
    let rest = &bytes[SECTION_HEADER_BYTES..];
    let length = usize::try_from(length).map_err(|_| SnapshotError::Corrupt)?;
    if rest.len() < length {
        return Err(SnapshotError::Corrupt);
    }
    let (payload, rest) = rest.split_at(length);
    if crc32c::crc32c(payload) != checksum {
        return Err(SnapshotError::Corrupt);
    }
    Ok((payload, rest))
}

/// A scoped thread's result; a panic in it is resumed here (encoding and decoding do not
/// panic on any input, so this only passes a bug on).
fn joined<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}
