//! Engine snapshots: the whole engine state in one file, so a restart loads it and replays only
//! the log records written after it.
//!
//! Layout: the magic `SPSNAP`, a format version byte, the log position (u64 LE) the state
//! covers, the payload length (u64 LE), a CRC32C of the payload, then the payload (postcard).
//! A snapshot that fails any check is refused with the reason; the caller then rebuilds from
//! the whole log, which is always correct, only slower.

use crate::engine::Engine;

pub const MAGIC: &[u8; 6] = b"SPSNAP";
/// Bumped whenever the engine's state layout changes (postcard is positional, so an old
/// layout would not fail to decode, it would decode wrong); older snapshots are then refused
/// and the log replayed. 2: carts, folded rollups, per-second deque index. 3: funnel trails
/// keep the device.
pub const FORMAT_VERSION: u8 = 3;
const HEADER_BYTES: usize = 6 + 1 + 8 + 8 + 4;

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

/// Serializes `engine` into `out` (cleared first).
pub fn encode(engine: &Engine, out: &mut Vec<u8>) -> Result<(), postcard::Error> {
    out.clear();
    out.extend_from_slice(&[0; HEADER_BYTES]);
    let payload = postcard::to_extend(engine, std::mem::take(out))?;
    *out = payload;
    let length = (out.len() - HEADER_BYTES) as u64;
    let checksum = crc32c::crc32c(&out[HEADER_BYTES..]);
    out[..6].copy_from_slice(MAGIC);
    out[6] = FORMAT_VERSION;
    out[7..15].copy_from_slice(&engine.log_position().to_le_bytes());
    out[15..23].copy_from_slice(&length.to_le_bytes());
    out[23..27].copy_from_slice(&checksum.to_le_bytes());
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
    let length = u64::from_le_bytes(bytes[15..23].try_into().map_err(|_| SnapshotError::Corrupt)?);
    let checksum =
        u32::from_le_bytes(bytes[23..27].try_into().map_err(|_| SnapshotError::Corrupt)?);
    let payload = &bytes[HEADER_BYTES..];
    if payload.len() as u64 != length || crc32c::crc32c(payload) != checksum {
        return Err(SnapshotError::Corrupt);
    }
    Ok(postcard::from_bytes(payload)?)
}
