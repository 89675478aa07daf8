//! Payload shapes of other systems, mapped onto the native event model.
//!
//! Each mapping produces a [`crate::raw::RawEvent`] and reuses the one validator, so a rule
//! lives in one place whatever door an event came in by. Error paths are translated back to
//! the sender's own field names.

pub mod promotion_buy;
pub mod realtime_ingest;
pub mod segment;
