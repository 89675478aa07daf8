//! Serving HTTP until shutdown, then shutting down in order.
//!
//! Connections are HTTP/1.1 (keep-alive) with a header-read timeout, so a slow client cannot
//! hold a connection open without ever sending a request. On SIGINT/SIGTERM: stop accepting,
//! let in-flight requests finish (up to `http.shutdown_grace`), then drain the ingest queue,
//! fsync the log and exit 0.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

use crate::app::{App, AppState};

/// A handle that asks a running server to stop.
#[derive(Clone)]
pub struct ShutdownSignal(watch::Sender<bool>);

impl ShutdownSignal {
    pub fn new() -> (ShutdownSignal, watch::Receiver<bool>) {
        let (sender, receiver) = watch::channel(false);
        (ShutdownSignal(sender), receiver)
    }

    pub fn trigger(&self) {
        let _ = self.0.send(true);
    }
}

/// Waits for SIGINT or SIGTERM.
pub async fn termination_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// Serves `app` on `listener` until `shutdown` fires; then drains, flushes and returns.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let state = AppState(app.clone());
    let router = crate::http::router(state);
    let graceful = GracefulShutdown::new();
    let header_timeout = app.config.http.header_read_timeout;
    let housekeeping = tokio::spawn(rate_limiter_housekeeping(app.clone()));
    tracing::info!(address = %listener.local_addr()?, "listening");
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let service = router.clone().map_request(move |mut request: axum::http::Request<Incoming>| {
                    request.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                    request
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(header_timeout)
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
                let watched = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(error) = watched.await {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                });
            }
            _ = shutdown.changed() => break,
        }
    }
    tracing::info!("shutting down: no new connections; finishing in-flight requests");
    drop(listener);
    housekeeping.abort();
    let grace = app.config.http.shutdown_grace;
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(?grace, "in-flight requests did not finish within the grace period");
    }
    let flushing = app.clone();
    tokio::task::spawn_blocking(move || flushing.shutdown()).await?;
    tracing::info!("event log flushed and synced; bye");
    Ok(())
}

async fn rate_limiter_housekeeping(app: Arc<App>) {
    let mut interval = tokio::time::interval(Duration::from_secs(60));
    loop {
        interval.tick().await;
        app.rate_limiters.forget_idle();
    }
}
