//! The Storepulse server: one binary that accepts e-commerce events over HTTP, keeps every
//! accepted one durably before acknowledging it, keeps every rejected one in a dead-letter
//! log, and exposes health and metrics.
//!
//! - [`config`]: the layered configuration.
//! - [`app`]: the application state shared by handlers.
//! - [`ingest`]: the pipeline from validated events to durable log records (group commit).
//! - [`dead_letter`]: rejected input, paging and replay.
//! - [`http`]: router, middleware and handlers; [`serve`]: the listener and shutdown.
//! - [`privacy`]: what of a client address is stored.
//! - [`shared_engine`], [`engine_snapshots`], [`engine_maintenance`]: the analytics engine as
//!   the server shares, snapshots and tends it.
//! - [`telemetry`]: Prometheus metrics and tracing.
//! - [`cli`], [`log_commands`], [`loadgen`]: the command line.

pub mod app;
pub mod category_trends;
pub mod cli;
pub mod config;
pub mod dead_letter;
pub mod engine_maintenance;
pub mod engine_snapshots;
pub mod error;
pub mod files;
pub mod http;
pub mod ingest;
pub mod loadgen;
pub mod log_commands;
pub mod privacy;
pub mod serve;
pub mod shared_engine;
pub mod sync;
pub mod telemetry;
pub mod trending_registry;

pub use app::{App, AppState};
pub use config::Config;
pub use http::router;
