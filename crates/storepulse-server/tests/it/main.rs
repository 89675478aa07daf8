//! Integration tests of the server, one binary: in-process HTTP tests through the router
//! (no sockets) and end-to-end tests that run the real binary.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod analytics;
mod buys;
mod category_trends;
mod cli;
mod crash;
mod dead_letters;
mod golden;
mod ingest;
mod operations;
mod segment;
mod trending;
