//! A bare axum echo server: the baseline the HTTP ingest benchmark compares against.
//!
//! It answers every POST with the body it received and does nothing else, so the difference
//! between its requests/s and Storepulse's on the same machine, in the same run, is the cost of
//! decoding, validating, logging and fsyncing. Usage: `echo_server 127.0.0.1:18090`.

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;

async fn echo(body: Bytes) -> Bytes {
    body
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:18090".to_owned());
    let app = Router::new()
        .fallback(post(echo))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024 * 1024));
    let listener = tokio::net::TcpListener::bind(&address).await?;
    println!("echo server on {address}");
    axum::serve(listener, app).await
}
