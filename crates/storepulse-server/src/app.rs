//! The application: everything a request handler may need, built once per node.
//!
//! [`App`] owns the config, the ingest pipeline, the dead-letter log, the client anonymizer,
//! the rate limiters and the metrics registry. [`AppState`] is the cheap clone handlers get.
//! Tests build an `App` on a temporary directory and drive `http::router(state)` directly.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;

use prometheus_client::registry::Registry;
use storepulse_model::time::ClockPolicy;
use storepulse_model::{Currency, Timestamp};

use crate::config::Config;
use crate::dead_letter::DeadLetterLog;
use crate::http::rate_limit::RateLimiters;
use crate::ingest::IngestPipeline;
use crate::privacy::ClientAnonymizer;
use crate::telemetry::Metrics;

pub struct App {
    pub config: Config,
    pub ingest: IngestPipeline,
    pub dead_letters: DeadLetterLog,
    pub anonymizer: ClientAnonymizer,
    pub rate_limiters: RateLimiters,
    pub metrics: Metrics,
    pub registry: Registry,
    pub started: Instant,
    pub started_at: Timestamp,
    pub clock: ClockPolicy,
    pub default_currency: Currency,
    pub engine: SharedEngine,
    pub trending: crate::trending_registry::RegistryStore,
    pub imported_trends: crate::category_trends::ImportedTrends,
    pub maintenance: crate::engine_maintenance::Maintenance,
}

/// The analytics engine, shared (see [`crate::shared_engine`]).
pub type SharedEngine = Arc<crate::shared_engine::EngineCell>;

#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

impl App {
    /// Opens the data directory and starts the background writers.
    pub fn open(config: Config) -> anyhow::Result<App> {
        std::fs::create_dir_all(&config.data_dir).map_err(|error| {
            anyhow::anyhow!("cannot create data dir {}: {error}", config.data_dir.display())
        })?;
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        let engine: SharedEngine = Arc::new(crate::shared_engine::EngineCell::new(
            storepulse_engine::Engine::new(config.engine.engine_config()),
        ));
        let ingest = IngestPipeline::open(&config, metrics.clone(), engine.clone())?;
        let dead_letters = DeadLetterLog::open(&config, metrics.clone())?;
        let trending = crate::trending_registry::RegistryStore::open(&config.data_dir)?;
        let imported_trends = crate::category_trends::ImportedTrends::open(&config.data_dir)?;
        let maintenance = crate::engine_maintenance::Maintenance::start(
            engine.clone(),
            metrics.clone(),
            config.data_dir.clone(),
            config.engine.snapshot_interval,
            ingest.status().clone(),
        )?;
        let anonymizer = ClientAnonymizer::new(config.privacy.client_ip, &config.data_dir);
        let rate_limiters = RateLimiters::new(&config.rate_limit);
        let default_currency =
            Currency::parse(&config.ingest.default_currency).unwrap_or(Currency::USD);
        let clock =
            ClockPolicy { max_future_skew_ms: config.ingest.max_clock_skew.as_millis() as i64 };
        Ok(App {
            config,
            ingest,
            dead_letters,
            anonymizer,
            rate_limiters,
            metrics,
            registry,
            started: Instant::now(),
            started_at: Timestamp(crate::ingest::writer::now_unix_ms()),
            clock,
            default_currency,
            engine,
            trending,
            imported_trends,
            maintenance,
        })
    }

    /// Flushes and stops the background writers (idempotent).
    pub fn shutdown(&self) {
        self.ingest.shutdown();
        self.dead_letters.shutdown();
        self.maintenance.stop();
        // The writer has stopped: the engine holds exactly the stored events.
        let covered = self.ingest.status();
        if let Err(error) =
            crate::engine_snapshots::write(&self.config.data_dir, &self.engine, covered)
        {
            tracing::warn!(%error, "engine snapshot at shutdown failed; the next start replays the log");
        }
    }
}
