//! Integration tests of the server, one binary: in-process HTTP tests through the router
//! (no sockets) and end-to-end tests that run the real binary.

mod support;

mod crash;
mod dead_letters;
mod ingest;
mod operations;
mod segment;
