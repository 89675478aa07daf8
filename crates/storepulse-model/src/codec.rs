//! The binary form of an [`Event`] inside a log record.
//!
//! A record is one version byte followed by the postcard encoding of the event. postcard is
//! compact (varints, no field names) and fast, which matters because every event is encoded
//! once on ingest and decoded on every replay. The version byte lets a later release read
//! records written by this one. Records are written by [`writer`] (postcard's format, by
//! hand, for speed) and read by postcard itself.

mod writer;

use crate::event::Event;

/// The record format this build writes.
pub const EVENT_RECORD_VERSION: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("event record is empty")]
    Empty,
    #[error("event record has version {0}, this build reads version {EVENT_RECORD_VERSION}")]
    UnknownVersion(u8),
    #[error("event record does not decode: {0}")]
    Malformed(#[from] postcard::Error),
}

/// Appends the record form of `event` to `buffer`.
pub fn encode_event(event: &Event, buffer: &mut Vec<u8>) {
    buffer.push(EVENT_RECORD_VERSION);
    writer::write_event(event, buffer);
}

/// What de-duplication needs of a record: the first fields of [`Event`], in its order (postcard
/// is positional), read without decoding the rest or copying the text.
#[derive(Debug, PartialEq, Eq, serde::Deserialize)]
pub struct RecordIdentity<'a> {
    pub event_id: &'a str,
    pub event_id_generated: bool,
    pub store: &'a str,
}

/// Reads a record's [`RecordIdentity`]: a restart re-learns a million recent event ids this
/// way in a fraction of what decoding the events would take.
pub fn decode_identity(record: &[u8]) -> Result<RecordIdentity<'_>, CodecError> {
    let (&version, body) = record.split_first().ok_or(CodecError::Empty)?;
    if version != EVENT_RECORD_VERSION {
        return Err(CodecError::UnknownVersion(version));
    }
    Ok(postcard::take_from_bytes(body)?.0)
}

/// Decodes a record written by [`encode_event`].
pub fn decode_event(record: &[u8]) -> Result<Event, CodecError> {
    let (&version, body) = record.split_first().ok_or(CodecError::Empty)?;
    if version != EVENT_RECORD_VERSION {
        return Err(CodecError::UnknownVersion(version));
    }
    Ok(postcard::from_bytes(body)?)
}
