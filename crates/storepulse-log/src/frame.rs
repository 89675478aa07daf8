//! The frame: the unit written to a segment file, its encoding, its checksum and its validation.
//!
//! # Frame layout
//!
//! ```text
//! 0        4          8                16                      24
//! +--------+----------+----------------+-----------------------+----------------------+
//! | len    | crc32c   | offset         | appended_at_unix_ms   | payload (len bytes)  |
//! | u32 LE | u32 LE   | u64 LE         | i64 LE                |                      |
//! +--------+----------+----------------+-----------------------+----------------------+
//! ```
//!
//! - `len` is the payload length. Its top bit ([`SEAL_FLAG`]) marks a *seal frame*; record
//!   payloads are therefore limited to [`MAX_RECORD_BYTES_LIMIT`] bytes.
//! - `crc32c` (Castagnoli) covers, in this order, the `len` field as stored (flag included), the
//!   `offset`, `appended_at_unix_ms` and the payload. Covering `len` means a flipped length bit
//!   is caught by the checksum rather than silently misframing the rest of the file; covering
//!   `offset` means a stale frame left from an earlier write (or a copy of a frame) is rejected
//!   when it is not the next expected one.
//! - `offset` of a record frame is its global sequence number. The first frame of segment
//!   `{base:020}.seg` has offset `base` and each next frame `+1`.
//! - A seal frame closes a segment when the log rolls. Its `offset` is the segment's next offset
//!   (`base + record_count`), its `appended_at_unix_ms` the newest record time in the segment, and
//!   its 16-byte payload repeats both as `record_count: u64 LE | newest_appended_at: i64 LE`, so a
//!   sealed segment can be checked at startup by reading only its last 40 bytes.
//!
//! A frame is *bad* when the file ends inside it, when `len` exceeds the configured
//! `max_record_bytes`, when the checksum does not match, or when its offset is not the expected
//! next one. What a bad frame means (torn tail or corruption) is decided in `recovery`.

use std::fs::File;
use std::io::{self, BufReader, Read};

/// Size of a frame header in bytes.
pub const HEADER_LEN: usize = 24;
/// Top bit of `len`: set on seal frames.
pub const SEAL_FLAG: u32 = 1 << 31;
/// Payload length of a seal frame.
pub const SEAL_PAYLOAD_LEN: usize = 16;
/// Total size of a seal frame.
pub const SEAL_FRAME_LEN: usize = HEADER_LEN + SEAL_PAYLOAD_LEN;
/// The largest record payload the format can carry (configs are checked against it, and
/// `verify`/`repair`, which have no config, use it as the length sanity bound).
pub const MAX_RECORD_BYTES_LIMIT: u32 = 1 << 30;

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Raw `len` field, seal flag included.
    pub raw_len: u32,
    pub crc: u32,
    pub offset: u64,
    pub appended_at_unix_ms: i64,
}

impl FrameHeader {
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Self {
        let mut len = [0u8; 4];
        let mut crc = [0u8; 4];
        let mut offset = [0u8; 8];
        let mut appended = [0u8; 8];
        len.copy_from_slice(&bytes[0..4]);
        crc.copy_from_slice(&bytes[4..8]);
        offset.copy_from_slice(&bytes[8..16]);
        appended.copy_from_slice(&bytes[16..24]);
        FrameHeader {
            raw_len: u32::from_le_bytes(len),
            crc: u32::from_le_bytes(crc),
            offset: u64::from_le_bytes(offset),
            appended_at_unix_ms: i64::from_le_bytes(appended),
        }
    }

    pub fn is_seal(&self) -> bool {
        self.raw_len & SEAL_FLAG != 0
    }

    pub fn payload_len(&self) -> u32 {
        self.raw_len & !SEAL_FLAG
    }

    /// Checks what can be checked before reading the payload. `Err` carries a description.
    pub fn check_shape(&self, expected_offset: u64, max_record_bytes: u32) -> Result<(), String> {
        if self.is_seal() {
            if self.payload_len() as usize != SEAL_PAYLOAD_LEN {
                return Err(format!(
                    "seal frame has payload length {} instead of {SEAL_PAYLOAD_LEN}",
                    self.payload_len()
                ));
            }
        } else if self.payload_len() > max_record_bytes {
            return Err(format!(
                "frame length {} exceeds max_record_bytes {max_record_bytes} (damaged header)",
                self.payload_len()
            ));
        }
        if self.offset != expected_offset {
            return Err(format!(
                "frame carries offset {} but offset {expected_offset} was expected",
                self.offset
            ));
        }
        Ok(())
    }
}

/// The checksum of a frame. The three header fields are laid side by side and checksummed in
/// one call: each call of the crc32c crate has a fixed cost before its first byte (register
/// saves, alignment), and with four calls a 180-byte record's checksum took 600 instructions,
/// with two 370 (`bench/server-instructions.sh`, fourteenth session). The result is the same
/// CRC over the same bytes.
pub fn checksum(raw_len: u32, offset: u64, appended_at_unix_ms: i64, payload: &[u8]) -> u32 {
    let mut header = [0; 20];
    header[..4].copy_from_slice(&raw_len.to_le_bytes());
    header[4..12].copy_from_slice(&offset.to_le_bytes());
    header[12..].copy_from_slice(&appended_at_unix_ms.to_le_bytes());
    crc32c::crc32c_append(crc32c::crc32c(&header), payload)
}

fn encode_frame(buf: &mut Vec<u8>, raw_len: u32, offset: u64, appended_at: i64, payload: &[u8]) {
    let crc = checksum(raw_len, offset, appended_at, payload);
    buf.extend_from_slice(&raw_len.to_le_bytes());
    buf.extend_from_slice(&crc.to_le_bytes());
    buf.extend_from_slice(&offset.to_le_bytes());
    buf.extend_from_slice(&appended_at.to_le_bytes());
    buf.extend_from_slice(payload);
}

/// Appends a record frame to `buf`. The caller has checked `payload.len() <= max_record_bytes`
/// (which is at most [`MAX_RECORD_BYTES_LIMIT`], so the length fits without the seal bit).
pub fn encode_record(buf: &mut Vec<u8>, offset: u64, appended_at_unix_ms: i64, payload: &[u8]) {
    debug_assert!(payload.len() <= MAX_RECORD_BYTES_LIMIT as usize);
    let raw_len = (payload.len() as u32) & !SEAL_FLAG;
    encode_frame(buf, raw_len, offset, appended_at_unix_ms, payload);
}

/// Appends a seal frame to `buf`.
pub fn encode_seal(buf: &mut Vec<u8>, next_offset: u64, record_count: u64, newest_at: i64) {
    let mut payload = [0u8; SEAL_PAYLOAD_LEN];
    payload[0..8].copy_from_slice(&record_count.to_le_bytes());
    payload[8..16].copy_from_slice(&newest_at.to_le_bytes());
    encode_frame(buf, SEAL_FLAG | SEAL_PAYLOAD_LEN as u32, next_offset, newest_at, &payload);
}

/// Record count and newest time carried by a seal frame payload.
pub fn decode_seal_payload(payload: &[u8]) -> Option<(u64, i64)> {
    if payload.len() != SEAL_PAYLOAD_LEN {
        return None;
    }
    let mut count = [0u8; 8];
    let mut newest = [0u8; 8];
    count.copy_from_slice(&payload[0..8]);
    newest.copy_from_slice(&payload[8..16]);
    Some((u64::from_le_bytes(count), i64::from_le_bytes(newest)))
}

/// Validates a complete seal frame (header + payload, `SEAL_FRAME_LEN` bytes) for a segment
/// starting at `base`. Returns `(record_count, newest_appended_at)`.
pub fn check_seal(bytes: &[u8], base: u64) -> Result<(u64, i64), String> {
    let Some(header_bytes) =
        bytes.get(..HEADER_LEN).and_then(|h| <&[u8; HEADER_LEN]>::try_from(h).ok())
    else {
        return Err("segment is too short to hold a seal frame".to_owned());
    };
    let header = FrameHeader::decode(header_bytes);
    if !header.is_seal() || header.payload_len() as usize != SEAL_PAYLOAD_LEN {
        return Err("the segment does not end with a seal frame (missing or damaged seal)".into());
    }
    let payload = &bytes[HEADER_LEN..];
    let computed = checksum(header.raw_len, header.offset, header.appended_at_unix_ms, payload);
    if computed != header.crc {
        return Err(format!(
            "seal frame checksum mismatch (stored {:#010x}, computed {computed:#010x})",
            header.crc
        ));
    }
    let Some((count, newest)) = decode_seal_payload(payload) else {
        return Err("seal frame payload has the wrong size".into());
    };
    if base.checked_add(count) != Some(header.offset) {
        return Err(format!(
            "seal frame says {count} records and next offset {}, which does not match the \
             segment base {base}",
            header.offset
        ));
    }
    Ok((count, newest))
}

/// Checks whether a complete, valid frame starts at `buf[at..]` with an offset inside
/// `offsets` (inclusive). Returns the end position of the frame. Used to look for valid frames
/// past a bad one, where the exact next offset is unknown.
pub fn valid_frame_at(
    buf: &[u8],
    at: usize,
    offsets: (u64, u64),
    max_record_bytes: u32,
) -> Option<usize> {
    let header_bytes =
        <&[u8; HEADER_LEN]>::try_from(buf.get(at..at.checked_add(HEADER_LEN)?)?).ok()?;
    let header = FrameHeader::decode(header_bytes);
    // The offset filter comes first: random bytes almost never pass it, which keeps the
    // byte-by-byte search cheap (the checksum is only computed for plausible headers).
    if header.offset < offsets.0 || header.offset > offsets.1 {
        return None;
    }
    let len = header.payload_len();
    if header.is_seal() {
        if len as usize != SEAL_PAYLOAD_LEN {
            return None;
        }
    } else if len > max_record_bytes {
        return None;
    }
    let start = at + HEADER_LEN;
    let end = start.checked_add(len as usize)?;
    let payload = buf.get(start..end)?;
    let computed = checksum(header.raw_len, header.offset, header.appended_at_unix_ms, payload);
    (computed == header.crc).then_some(end)
}

/// One step of a sequential scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scanned {
    /// A valid record frame; its payload is in [`FrameScanner::payload`] unless skipped.
    Record { position: u64, offset: u64, appended_at_unix_ms: i64 },
    /// A valid seal frame.
    Seal { position: u64, record_count: u64, newest_appended_at: i64 },
    /// The file ends exactly at a frame boundary.
    End,
    /// A bad frame starts at `position`.
    Bad { position: u64, reason: String },
}

/// Reads frames one after another from a segment file, checking each.
pub struct FrameScanner {
    reader: BufReader<File>,
    position: u64,
    file_len: u64,
    base: u64,
    expected_offset: u64,
    max_record_bytes: u32,
    payload: Vec<u8>,
    cut_short: bool,
}

impl FrameScanner {
    pub fn new(file: File, file_len: u64, base: u64, max_record_bytes: u32) -> Self {
        FrameScanner {
            reader: BufReader::with_capacity(256 * 1024, file),
            position: 0,
            file_len,
            base,
            expected_offset: base,
            max_record_bytes,
            payload: Vec::new(),
            cut_short: false,
        }
    }

    /// Byte position of the next frame.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Offset the next record frame must carry.
    pub fn expected_offset(&self) -> u64 {
        self.expected_offset
    }

    /// True when the last `Bad` was a frame the file ends inside: what a torn write leaves,
    /// and what a reader sees of a frame the writer is still writing.
    pub fn cut_short(&self) -> bool {
        self.cut_short
    }

    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// Payload of the last record returned by [`FrameScanner::next_frame`] with `read_payload`.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    pub fn take_payload(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.payload)
    }

    /// Reads the next frame. With `read_payload == false` record payloads are skipped without
    /// checksum verification (used to seek a reader forward to its start offset).
    /// After `Bad` or `End` the scanner must not be used again.
    pub fn next_frame(&mut self, read_payload: bool) -> io::Result<Scanned> {
        let position = self.position;
        let remaining = self.file_len.saturating_sub(position);
        if remaining == 0 {
            return Ok(Scanned::End);
        }
        if remaining < HEADER_LEN as u64 {
            self.cut_short = true;
            return Ok(Scanned::Bad {
                position,
                reason: format!("file ends {remaining} bytes into a frame header (torn write)"),
            });
        }
        let mut header_bytes = [0u8; HEADER_LEN];
        self.reader.read_exact(&mut header_bytes)?;
        let header = FrameHeader::decode(&header_bytes);
        if let Err(reason) = header.check_shape(self.expected_offset, self.max_record_bytes) {
            return Ok(Scanned::Bad { position, reason });
        }
        let len = u64::from(header.payload_len());
        if remaining - (HEADER_LEN as u64) < len {
            self.cut_short = true;
            return Ok(Scanned::Bad {
                position,
                reason: format!(
                    "file ends inside a frame: header announces {len} payload bytes but only {} \
                     remain (torn write)",
                    remaining - HEADER_LEN as u64
                ),
            });
        }
        let verify = read_payload || header.is_seal();
        if verify {
            self.payload.clear();
            self.payload.resize(len as usize, 0);
            self.reader.read_exact(&mut self.payload)?;
            let computed =
                checksum(header.raw_len, header.offset, header.appended_at_unix_ms, &self.payload);
            if computed != header.crc {
                return Ok(Scanned::Bad {
                    position,
                    reason: format!(
                        "checksum mismatch (stored {:#010x}, computed {computed:#010x})",
                        header.crc
                    ),
                });
            }
        } else {
            self.reader.seek_relative(len as i64)?;
        }
        self.position = position + HEADER_LEN as u64 + len;
        if header.is_seal() {
            let Some((record_count, newest_appended_at)) = decode_seal_payload(&self.payload)
            else {
                return Ok(Scanned::Bad {
                    position,
                    reason: "seal payload has the wrong size".into(),
                });
            };
            if self.base + record_count != header.offset {
                return Ok(Scanned::Bad {
                    position,
                    reason: format!(
                        "seal frame counts {record_count} records but the segment holds {}",
                        header.offset - self.base
                    ),
                });
            }
            return Ok(Scanned::Seal { position, record_count, newest_appended_at });
        }
        self.expected_offset += 1;
        Ok(Scanned::Record {
            position,
            offset: header.offset,
            appended_at_unix_ms: header.appended_at_unix_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_frame_round_trips_through_header_decode() {
        let mut buf = Vec::new();
        encode_record(&mut buf, 42, -7, b"hello");
        assert_eq!(buf.len(), HEADER_LEN + 5);
        let header = FrameHeader::decode(buf[..HEADER_LEN].try_into().unwrap());
        assert_eq!(header.offset, 42);
        assert_eq!(header.appended_at_unix_ms, -7);
        assert_eq!(header.payload_len(), 5);
        assert!(!header.is_seal());
        assert_eq!(header.crc, checksum(5, 42, -7, b"hello"));
        assert_eq!(valid_frame_at(&buf, 0, (42, 42), 100), Some(buf.len()));
        assert_eq!(valid_frame_at(&buf, 0, (43, 50), 100), None);
    }

    #[test]
    fn checksum_covers_length_offset_time_and_payload() {
        let base = checksum(5, 1, 2, b"abcde");
        assert_ne!(base, checksum(6, 1, 2, b"abcde"));
        assert_ne!(base, checksum(5, 2, 2, b"abcde"));
        assert_ne!(base, checksum(5, 1, 3, b"abcde"));
        assert_ne!(base, checksum(5, 1, 2, b"abcdf"));
    }

    /// The format: CRC-32C over `len`, `offset` and `appended_at` as stored (little-endian),
    /// then the payload. Pinned by value, so logs written by earlier builds stay readable.
    #[test]
    fn checksum_is_crc32c_of_the_stored_fields_then_the_payload() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&5u32.to_le_bytes());
        bytes.extend_from_slice(&42u64.to_le_bytes());
        bytes.extend_from_slice(&(-7i64).to_le_bytes());
        bytes.extend_from_slice(b"hello");
        assert_eq!(checksum(5, 42, -7, b"hello"), crc32c::crc32c(&bytes));
        assert_eq!(checksum(5, 42, -7, b"hello"), 0x27e3_14ea);
    }

    #[test]
    fn seal_frame_is_checked_against_the_segment_base() {
        let mut buf = Vec::new();
        encode_seal(&mut buf, 110, 10, 1234);
        assert_eq!(buf.len(), SEAL_FRAME_LEN);
        assert_eq!(check_seal(&buf, 100), Ok((10, 1234)));
        assert!(check_seal(&buf, 99).is_err());
        let mut damaged = buf.clone();
        damaged[30] ^= 1;
        assert!(check_seal(&damaged, 100).unwrap_err().contains("checksum"));
    }

    #[test]
    fn every_single_bit_flip_in_a_frame_is_detected() {
        let mut buf = Vec::new();
        encode_record(&mut buf, 7, 99, b"payload bytes");
        for bit in 0..buf.len() * 8 {
            let mut damaged = buf.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(valid_frame_at(&damaged, 0, (7, 7), 1 << 20), None, "bit {bit}");
        }
    }
}
