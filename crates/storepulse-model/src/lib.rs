//! Storepulse's event model: what an e-commerce event is, how it arrives on the wire, and how
//! it is validated. No I/O and no clock: the receive time and header-derived facts come in
//! through [`validate::ValidationContext`].
//!
//! - [`event`]: the validated [`Event`] that the log stores and the engine reads.
//! - [`raw`]: the native JSON wire format, all fields optional so errors can be collected.
//! - [`decode`]: body splitting (JSON, arrays, NDJSON) and decoding with every type error.
//! - [`validate`]: presence, value and limit checks with field paths.
//! - [`compat`]: Segment's tracking API and seed 3's `/ingest` shapes.
//! - [`time`], [`money`]: event-time resolution and exact money.
//! - [`codec`]: the binary record form in the log.

pub mod codec;
pub mod compat;
pub mod decode;
pub mod error;
pub mod event;
pub mod limits;
pub mod money;
pub mod raw;
pub mod time;
pub mod validate;

pub use error::{ErrorCode, FieldError, ValidationErrors};
pub use event::{Event, EventType};
pub use limits::Limits;
pub use money::{Currency, Money};
pub use time::{TimeSource, Timestamp};
pub use validate::ValidationContext;
