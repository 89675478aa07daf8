//! Storepulse's analytics engine: the event stream turned into numbers.
//!
//! The engine is derived state: it can always be rebuilt by applying the event log again.
//! It is synchronous and deterministic — time is passed in, never read inside — so tests,
//! replay and the live server all get the same answers for the same events.
//!
//! - [`facts`]: what one event adds (rows of additive measures keyed by dimension ids);
//! - [`rollup`]: those rows per minute, hour and day, with retention; [`bucket`]: one
//!   bucket's rows, compact;
//! - [`distinct`]: visitors, sessions and buyers over long ranges (mergeable sketches);
//! - [`funnel`]: sessions through ordered steps, per product, category or country;
//! - [`live`]: active visitors and sessions, page views and top pages (seed 3);
//! - [`carts`]: each session's cart value, for the value of abandoned carts;
//! - [`buys`]: promotion buys in a trailing window (seed 4's `/stats`);
//! - [`query`]: the one typed query model every front end builds;
//! - [`trending`]: decayed weighted product scores and the versioned weight registry;
//! - [`category_trends`]: revenue change by category and country (seed 1), computed or imported;
//! - [`recommend`]: products viewed or bought together (item co-occurrence);
//! - [`engine`]: the whole, answering queries as of a given time;
//! - [`snapshot`]: the engine state in a file, so a restart replays only the log's tail.

/// The engine's hash maps: foldhash is several times faster than the standard SipHash on
/// short keys, and seeded per process, so client-chosen ids cannot be crafted to collide.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

pub mod bucket;
pub mod buys;
pub mod carts;
pub mod category_trends;
pub mod chunked;
pub mod distinct;
pub mod engine;
pub mod facts;
pub mod funnel;
pub mod id_table;
pub mod intern;
pub mod live;
mod presized;
pub mod query;
pub mod recommend;
pub mod rollup;
pub mod snapshot;
pub mod trending;

pub use engine::{Engine, EngineConfig, HistoryPart, QueryResult, Realtime, RealtimeFilter};
pub use query::{Dimension, Filters, Granularity, Metric, QueryError, QuerySpec};
