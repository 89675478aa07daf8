//! The one configuration of a Storepulse node.
//!
//! Layers, later ones winning: built-in defaults → TOML file (`--config`, default
//! `storepulse.toml` if present) → `STOREPULSE_*` environment variables (nested keys joined
//! with `__`, e.g. `STOREPULSE_LOG__FSYNC=interval`) → command-line flags. `ALLOWED_HOSTS`
//! and `PORT` are also read, for compatibility with seed 1's deployments, just below the
//! `STOREPULSE_*` variables (so `STOREPULSE_HTTP__LISTEN` wins over `PORT`).
//! `storepulse config print` shows the effective result. Unknown keys are errors, so a typo
//! never silently falls back to a default; only `STOREPULSE_TEST_*`, reserved for test
//! harnesses, is ignored.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Format, Serialized, Toml};
use figment::{Figment, Provider};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use storepulse_model::Limits;

mod duration_text;

/// The commented default configuration, shipped in the binary.
pub const EXAMPLE_CONFIG: &str = include_str!("../../../config/storepulse.example.toml");

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the event log, dead letters and privacy salts live.
    pub data_dir: PathBuf,
    pub http: HttpConfig,
    pub ingest: IngestConfig,
    pub log: LogSettings,
    pub engine: EngineSettings,
    pub category_trends: storepulse_engine::category_trends::TrendSettings,
    pub dead_letters: DeadLetterConfig,
    pub privacy: PrivacyConfig,
    pub rate_limit: RateLimitConfig,
    pub demo: DemoConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("storepulse-data"),
            http: HttpConfig::default(),
            ingest: IngestConfig::default(),
            log: LogSettings::default(),
            engine: EngineSettings::default(),
            category_trends: Default::default(),
            dead_letters: DeadLetterConfig::default(),
            privacy: PrivacyConfig::default(),
            rate_limit: RateLimitConfig::default(),
            demo: DemoConfig::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    #[serde(deserialize_with = "listen_address")]
    pub listen: SocketAddr,
    /// Host header values accepted (`*` = any; `*.example.com` wildcards allowed).
    pub allowed_hosts: Vec<String>,
    /// Origins allowed to call from browsers (`*` = any).
    pub cors_origins: Vec<String>,
    /// Other origins whose pages may call the admin routes (registry changes, imports, dead
    /// letters); the server's own origin always may. Empty by default: see `http::edge`.
    pub admin_origins: Vec<String>,
    /// Largest request body, in bytes (after decompression).
    pub max_body_bytes: usize,
    /// Time allowed to receive the request headers.
    #[serde(with = "duration_text")]
    pub header_read_timeout: Duration,
    /// Time allowed for a whole request, body included.
    #[serde(with = "duration_text")]
    pub request_timeout: Duration,
    /// Peers whose forwarding headers (X-Forwarded-For, Forwarded, ...) are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Time given to in-flight requests at shutdown.
    #[serde(with = "duration_text")]
    pub shutdown_grace: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            allowed_hosts: vec!["*".into()],
            cors_origins: vec!["*".into()],
            admin_origins: Vec::new(),
            max_body_bytes: 16 * 1024 * 1024,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            trusted_proxies: [
                "127.0.0.0/8",
                "::1/128",
                "10.0.0.0/8",
                "172.16.0.0/12",
                "192.168.0.0/16",
                "fc00::/7",
            ]
            .iter()
            .filter_map(|net| net.parse().ok())
            .collect(),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Store used for events that name none.
    pub default_store: String,
    /// Currency used for amounts that name none.
    pub default_currency: String,
    /// How far in the future an event's own time may be before it is distrusted.
    #[serde(with = "duration_text")]
    pub max_clock_skew: Duration,
    /// A retried event (same store and event_id) within this window is kept once.
    #[serde(with = "duration_text")]
    pub dedup_window: Duration,
    /// Most event ids remembered for de-duplication (bounds memory: ~40 bytes each).
    pub dedup_max_ids: usize,
    /// Events waiting for the log writer before new requests are refused with 503.
    pub queue_capacity: usize,
    /// Largest group commit, in bytes.
    pub max_commit_bytes: usize,
    /// Segment write keys and the store each one writes to. Empty (default): any write key is
    /// accepted and events go to `default_store`. Non-empty: Segment requests must carry one of
    /// these keys (Basic auth user or `writeKey` in the body), else 401.
    pub write_keys: std::collections::BTreeMap<String, String>,
    pub limits: Limits,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            default_store: "default".into(),
            default_currency: "USD".into(),
            max_clock_skew: Duration::from_secs(10 * 60),
            dedup_window: Duration::from_secs(24 * 3600),
            dedup_max_ids: 1_000_000,
            queue_capacity: 4096,
            max_commit_bytes: 8 * 1024 * 1024,
            write_keys: std::collections::BTreeMap::new(),
            limits: Limits::default(),
        }
    }
}

/// When an append counts as durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncMode {
    /// fsync before acknowledging (default): an acknowledged event survives power loss.
    Always,
    /// fsync every `fsync_interval`: a crash may lose that much acknowledged data.
    Interval,
    /// Leave it to the OS: survives a process crash, not a power loss.
    None,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub fsync: FsyncMode,
    #[serde(with = "duration_text")]
    pub fsync_interval: Duration,
    pub segment_bytes: u64,
    /// Delete sealed segments older than this (unset = keep forever).
    #[serde(with = "duration_text")]
    pub retention_max_age: Option<Duration>,
    /// Delete the oldest sealed segments while the log is larger than this.
    pub retention_max_bytes: Option<u64>,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            fsync: FsyncMode::Always,
            fsync_interval: Duration::from_millis(200),
            segment_bytes: 128 * 1024 * 1024,
            retention_max_age: None,
            retention_max_bytes: None,
        }
    }
}

/// The analytics engine's windows and how long each rollup resolution is kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSettings {
    /// A visitor or session counts as active this long after its latest event.
    #[serde(with = "duration_text")]
    pub active_window: Duration,
    /// Page views and top pages of `/api/v1/realtime` cover this long.
    #[serde(with = "duration_text")]
    pub page_window: Duration,
    /// The live commerce figures (revenue, orders, carts) cover this long.
    #[serde(with = "duration_text")]
    pub commerce_window: Duration,
    #[serde(with = "duration_text")]
    pub minute_retention: Duration,
    #[serde(with = "duration_text")]
    pub hour_retention: Duration,
    /// Unset keeps daily rollups (and daily distinct sketches) forever.
    #[serde(with = "duration_text")]
    pub day_retention: Option<Duration>,
    /// How long a session's trail is kept for funnels after its last event.
    #[serde(with = "duration_text")]
    pub funnel_retention: Duration,
    /// How long an order is remembered so that a refund naming only its id is a full refund.
    #[serde(with = "duration_text")]
    pub order_memory: Duration,
    /// Write an engine snapshot this often (and always at shutdown); unset: only at shutdown.
    #[serde(with = "duration_text")]
    pub snapshot_interval: Option<Duration>,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            active_window: Duration::from_secs(5 * 60),
            page_window: Duration::from_secs(15 * 60),
            commerce_window: Duration::from_secs(3600),
            minute_retention: Duration::from_secs(2 * 24 * 3600),
            hour_retention: Duration::from_secs(90 * 24 * 3600),
            day_retention: None,
            funnel_retention: Duration::from_secs(30 * 24 * 3600),
            order_memory: Duration::from_secs(180 * 24 * 3600),
            snapshot_interval: Some(Duration::from_secs(300)),
        }
    }
}

impl EngineSettings {
    pub fn engine_config(&self) -> storepulse_engine::EngineConfig {
        let ms = |duration: Duration| i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        storepulse_engine::EngineConfig {
            active_window_ms: ms(self.active_window),
            page_window_ms: ms(self.page_window),
            commerce_window_ms: ms(self.commerce_window),
            retention: storepulse_engine::rollup::RollupRetention {
                minutes_ms: ms(self.minute_retention),
                hours_ms: ms(self.hour_retention),
                days_ms: self.day_retention.map_or(0, ms),
            },
            funnel_retention_ms: ms(self.funnel_retention),
            order_memory_ms: ms(self.order_memory),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeadLetterConfig {
    /// Raw payloads are kept up to this many bytes.
    pub max_payload_bytes: usize,
    #[serde(with = "duration_text")]
    pub retention_max_age: Option<Duration>,
    pub retention_max_bytes: Option<u64>,
}

impl Default for DeadLetterConfig {
    fn default() -> Self {
        Self {
            max_payload_bytes: 64 * 1024,
            retention_max_age: Some(Duration::from_secs(30 * 24 * 3600)),
            retention_max_bytes: Some(1024 * 1024 * 1024),
        }
    }
}

/// How client addresses are written to disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IpStorage {
    /// A keyed hash whose key changes every UTC day and is then forgotten (default).
    Hashed,
    /// The address itself.
    Raw,
    /// Nothing.
    None,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    pub client_ip: IpStorage,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        Self { client_ip: IpStorage::Hashed }
    }
}

/// A token bucket: `per_second` sustained, `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateQuota {
    pub per_second: u32,
    pub burst: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    pub enabled: bool,
    /// Clients are told apart by this header when present, else by address; empty: by
    /// address only. Any value names a client (seed 2: "a unique X-API-Key per virtual
    /// user"), so a client rotating values draws from fresh buckets: use it behind a gateway
    /// that authenticates the key, or leave it empty.
    pub key_header: String,
    /// Event intake: /api/v1/events, /v1/*, /ingest.
    pub ingest: RateQuota,
    /// Reads and admin calls.
    pub api: RateQuota,
    /// /health, /ready, /metrics.
    pub ops: RateQuota,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            key_header: "x-api-key".into(),
            ingest: RateQuota { per_second: 1000, burst: 2000 },
            api: RateQuota { per_second: 50, burst: 100 },
            ops: RateQuota { per_second: 20, burst: 100 },
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DemoConfig {
    /// Events per second the built-in demo traffic sends (`serve --demo`).
    pub events_per_second: u32,
    /// Store the demo data is written to, so it never mixes with real data.
    pub store: String,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self { events_per_second: 20, store: "demo".into() }
    }
}

/// Flags that override the file and environment.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ConfigOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fsync: Option<FsyncMode>,
}

/// Parses an address to listen on, saying what is needed when it is not one: `localhost:8080`
/// was refused as only "invalid socket address syntax".
pub fn parse_listen_address(text: &str) -> Result<SocketAddr, String> {
    text.trim().parse().map_err(|_| {
        format!(
            "{text:?} is not an IP address and port (a host name such as localhost is not \
             resolved); e.g. 127.0.0.1:8080, or 0.0.0.0:8080 for every interface"
        )
    })
}

/// `http.listen` read with [`parse_listen_address`]'s message.
fn listen_address<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_listen_address(&text).map_err(serde::de::Error::custom)
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file named by `--config` is missing or unreadable: not an invalid configuration.
    #[error("cannot read configuration file {}: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("configuration is invalid: {0}")]
    Invalid(Box<figment::Error>),
    /// `field` is the key as the user wrote it: `http.listen`, `STOREPULSE_HTTP__LISTEN` or
    /// `PORT`, so the message points at the line or variable to change.
    #[error("configuration is invalid: {field}: {message}")]
    Value { field: String, message: String },
}

/// Reads a configuration file named on the command line, refusing one that cannot be read
/// (missing, a directory, no permission) in one line; figment's own message called it invalid
/// and split across lines. Read once, here: a pipe (`--config <(envsubst < template)`,
/// `/dev/stdin`) can be read only once, and reading it again to parse it found it empty, so
/// the server ran on defaults without a word.
fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|error| {
        let text = error.to_string();
        // "No such file or directory (os error 2)": the number tells an operator nothing.
        let reason = text.split(" (os error").next().unwrap_or(&text).to_owned();
        ConfigError::Unreadable { path: path.to_path_buf(), reason }
    })
}

impl Config {
    /// Loads the layered configuration. `env` is passed in so tests control it.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &ConfigOverrides,
    ) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        let (toml, toml_metadata) = match file {
            Some(path) => {
                (Toml::string(&read_file(path)?), figment::Metadata::from("TOML file", path))
            }
            None => {
                let toml = Toml::file("storepulse.toml");
                let metadata = toml.metadata();
                (toml, metadata)
            }
        };
        // figment names a key `default.log.fsync` (its profile first); say it as written.
        let toml_metadata = toml_metadata.interpolater(|_, keys| keys.join("."));
        figment = figment.merge(Named { inner: toml, metadata: toml_metadata });
        let env: Vec<(String, String)> = env.into_iter().collect();
        // Seed 1's names sit below `STOREPULSE_*`: a deployment that sets both meant the
        // Storepulse one, which is the documented name.
        figment = figment.merge(seed_env_provider(&env)?);
        let prefixed: Vec<(String, String)> = env
            .iter()
            .filter_map(|(key, value)| {
                Some((key.strip_prefix("STOREPULSE_")?.to_owned(), value.clone()))
            })
            // STOREPULSE_TEST_* steer test harnesses (e.g. which services must be present).
            .filter(|(key, _)| !key.starts_with("TEST_"))
            .collect();
        figment = figment.merge(env_provider(prefixed));
        if let Some(data_dir) = &overrides.data_dir {
            figment = figment.merge(Serialized::default("data_dir", data_dir));
        }
        if let Some(listen) = overrides.listen {
            figment = figment.merge(Serialized::default("http.listen", listen));
        }
        if let Some(fsync) = overrides.fsync {
            figment = figment.merge(Serialized::default("log.fsync", fsync));
        }
        let config: Config =
            figment.extract().map_err(|error| ConfigError::Invalid(Box::new(error)))?;
        config.validate().map_err(|(key, message)| ConfigError::Value {
            field: key_as_written(&figment, key),
            message,
        })?;
        Ok(config)
    }

    /// Values that deserialize but would break the server: each is refused with the key
    /// and the reason, rather than found later as a spinning thread or a 400 on every request.
    fn validate(&self) -> Result<(), (&'static str, String)> {
        fn check(ok: bool, key: &'static str, message: &str) -> Result<(), (&'static str, String)> {
            if ok { Ok(()) } else { Err((key, message.to_owned())) }
        }
        // The de-duplication window is rebuilt from the log at start: ids the log no longer
        // holds cannot be caught after a restart.
        check(
            self.log.retention_max_age.is_none_or(|age| age >= self.ingest.dedup_window),
            "log.retention_max_age",
            "is shorter than ingest.dedup_window: after a restart, retries of events older than the log keeps would be stored twice; keep the log at least as long, or shorten the window",
        )?;
        // Log retention deletes only records an engine snapshot holds: with snapshots at
        // shutdown only, a running server's log would grow past its budget until a restart.
        check(
            (self.log.retention_max_age.is_none() && self.log.retention_max_bytes.is_none())
                || self.engine.snapshot_interval.is_some(),
            "engine.snapshot_interval",
            "is unset while log retention is on (log.retention_max_age or log.retention_max_bytes): retention deletes only log records an engine snapshot holds, so without periodic snapshots the log would grow until a restart; set an interval such as \"5m\"",
        )?;
        check(
            !self.http.allowed_hosts.is_empty(),
            "http.allowed_hosts",
            "is empty, so every request (/health too) would be refused; use [\"*\"] to accept any host",
        )?;
        let is_origin = |origin: &str| {
            origin.split_once("://").is_some_and(|(scheme, host)| {
                !scheme.is_empty() && !host.is_empty() && !host.contains(['/', ' '])
            })
        };
        for origin in &self.http.admin_origins {
            check(
                is_origin(origin),
                "http.admin_origins",
                &format!("{origin:?} is not an origin (\"https://admin.shop.example\")"),
            )?;
        }
        // A browser never sends anything else: such an entry would silently match nothing.
        for origin in &self.http.cors_origins {
            check(
                origin == "*" || is_origin(origin),
                "http.cors_origins",
                &format!("{origin:?} is not an origin (\"https://shop.example\") nor \"*\""),
            )?;
        }
        for host in &self.http.allowed_hosts {
            check(
                !host.trim().is_empty() && !host.contains(['/', ' ', ',']),
                "http.allowed_hosts",
                &format!(
                    "{host:?} is not a host name (\"shop.example\", \"*.shop.example\", \"127.0.0.1:8080\" or \"*\")"
                ),
            )?;
        }
        check(self.http.max_body_bytes > 0, "http.max_body_bytes", "must be > 0")?;
        check(
            !self.http.header_read_timeout.is_zero(),
            "http.header_read_timeout",
            "must be longer than 0s",
        )?;
        check(
            !self.http.request_timeout.is_zero(),
            "http.request_timeout",
            "must be longer than 0s",
        )?;
        if storepulse_model::Currency::parse(&self.ingest.default_currency).is_none() {
            return Err((
                "ingest.default_currency",
                format!("{:?} is not an ISO 4217 currency code", self.ingest.default_currency),
            ));
        }
        check(
            storepulse_model::validate::is_valid_store(&self.ingest.default_store),
            "ingest.default_store",
            &format!("{:?}: {}", self.ingest.default_store, storepulse_model::validate::STORE_RULE),
        )?;
        check(
            storepulse_model::validate::is_valid_store(&self.demo.store),
            "demo.store",
            &format!("{:?}: {}", self.demo.store, storepulse_model::validate::STORE_RULE),
        )?;
        for (key, store) in &self.ingest.write_keys {
            if key.is_empty() || !storepulse_model::validate::is_valid_store(store) {
                return Err((
                    "ingest.write_keys",
                    format!(
                        "{key:?} = {store:?}: keys must be non-empty and stores 1 to 64 letters, digits, '.', '_' or '-'"
                    ),
                ));
            }
        }
        // A limit of 0 refuses every event that carries the thing limited (every event has an
        // id, most have a URL or items): the server would run and store almost nothing.
        let limits = &self.ingest.limits;
        for (key, value) in [
            ("ingest.limits.max_event_bytes", limits.max_event_bytes),
            ("ingest.limits.max_batch_events", limits.max_batch_events),
            ("ingest.limits.max_id_chars", limits.max_id_chars),
            ("ingest.limits.max_url_chars", limits.max_url_chars),
            ("ingest.limits.max_text_chars", limits.max_text_chars),
            ("ingest.limits.max_items", limits.max_items),
            ("ingest.limits.max_properties_bytes", limits.max_properties_bytes),
            ("ingest.limits.max_category_depth", limits.max_category_depth),
            ("ingest.limits.max_quantity", limits.max_quantity as usize),
        ] {
            check(value > 0, key, "must be > 0 (0 would refuse every event that has one)")?;
        }
        for (field, quota) in [
            ("rate_limit.ingest", self.rate_limit.ingest),
            ("rate_limit.api", self.rate_limit.api),
            ("rate_limit.ops", self.rate_limit.ops),
        ] {
            check(
                quota.per_second > 0 && quota.burst > 0,
                field,
                "per_second and burst must be > 0",
            )?;
        }
        check(
            self.rate_limit.key_header.is_empty()
                || axum::http::HeaderName::try_from(self.rate_limit.key_header.as_str()).is_ok(),
            "rate_limit.key_header",
            &format!("{:?} is not a valid HTTP header name", self.rate_limit.key_header),
        )?;
        check(self.log.segment_bytes >= 4096, "log.segment_bytes", "must be at least 4096")?;
        // A zero interval makes the fsync thread wake without pause (a core at 100 %).
        check(
            self.log.fsync_interval >= Duration::from_millis(1),
            "log.fsync_interval",
            "must be at least 1ms",
        )?;
        if let Some(interval) = self.engine.snapshot_interval {
            check(
                interval >= Duration::from_secs(1),
                "engine.snapshot_interval",
                "must be at least 1s",
            )?;
        }
        // Windows and retentions that would leave the figures empty or contradict each other:
        // refused at start-up rather than answered with zeros.
        let engine = &self.engine;
        for (key, value, least) in [
            ("engine.active_window", engine.active_window, Duration::from_secs(1)),
            // Page views are counted in 10-second buckets.
            ("engine.page_window", engine.page_window, Duration::from_secs(10)),
            ("engine.commerce_window", engine.commerce_window, Duration::from_secs(60)),
            ("engine.minute_retention", engine.minute_retention, Duration::from_secs(3600)),
            ("engine.funnel_retention", engine.funnel_retention, Duration::from_secs(86_400)),
            ("engine.order_memory", engine.order_memory, Duration::from_secs(86_400)),
        ] {
            check(
                value >= least,
                key,
                &format!("must be at least {}", duration_text::format(least)),
            )?;
        }
        check(
            engine.hour_retention >= engine.minute_retention,
            "engine.hour_retention",
            "must be at least engine.minute_retention (hours are folded from minutes)",
        )?;
        if let Some(days) = engine.day_retention {
            check(
                days >= engine.hour_retention,
                "engine.day_retention",
                "must be at least engine.hour_retention (days are folded from hours)",
            )?;
        }
        let trends = &self.category_trends;
        for (key, value) in [
            ("category_trends.daily_weight", trends.daily_weight),
            ("category_trends.weekly_weight", trends.weekly_weight),
            ("category_trends.max_daily_change", trends.max_daily_change),
            ("category_trends.max_weekly_change", trends.max_weekly_change),
            ("category_trends.min_weekly_change", trends.min_weekly_change),
            ("category_trends.min_revenue", trends.min_revenue),
        ] {
            check(value.is_finite(), key, &format!("{value} is not a finite number"))?;
        }
        // Caps at or below 0, or a floor above the cap, leave no row to rank: every ranking
        // would answer empty, without a word.
        for (key, cap) in [
            ("category_trends.max_daily_change", trends.max_daily_change),
            ("category_trends.max_weekly_change", trends.max_weekly_change),
        ] {
            check(cap > 0.0, key, &format!("{cap} must be above 0 (a fraction: 3.0 = 300 %)"))?;
        }
        check(
            (0.0..=trends.max_weekly_change).contains(&trends.min_weekly_change),
            "category_trends.min_weekly_change",
            &format!(
                "{} must be from 0 to category_trends.max_weekly_change ({}): no row could be kept",
                trends.min_weekly_change, trends.max_weekly_change
            ),
        )?;
        Ok(())
    }

    /// The effective configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|error| format!("# cannot render: {error}"))
    }

    pub fn events_dir(&self) -> PathBuf {
        self.data_dir.join("events")
    }

    pub fn dead_letters_dir(&self) -> PathBuf {
        self.data_dir.join("dead-letters")
    }
}

/// A provider under another name: values it gives are reported with this metadata.
struct Named<P> {
    inner: P,
    metadata: figment::Metadata,
}

impl<P: figment::Provider> figment::Provider for Named<P> {
    fn metadata(&self) -> figment::Metadata {
        self.metadata.clone()
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        self.inner.data()
    }
}

/// `key` as the user set it: the environment variable's name when one set it, else the key.
fn key_as_written(figment: &Figment, key: &str) -> String {
    match figment.find_metadata(key) {
        Some(metadata) if metadata.name == ENV_NAME || metadata.name == SEED_ENV_NAME => {
            let keys: Vec<&str> = key.split('.').collect();
            metadata.interpolate(&figment::Profile::Default, &keys)
        }
        _ => key.to_owned(),
    }
}

const ENV_NAME: &str = "the environment";
const SEED_ENV_NAME: &str = "the environment (seed 1's name)";

/// Keys that take a list, so that one item from the environment (`ALLOWED_HOSTS=shop.test`) is
/// a list of one rather than a type error.
const LIST_KEYS: [&str; 5] = [
    "http.allowed_hosts",
    "http.cors_origins",
    "http.admin_origins",
    "http.trusted_proxies",
    "category_trends.excluded_categories",
];

/// Values set from the environment, as one provider whose metadata names the variables.
struct EnvLayer {
    values: figment::value::Dict,
    metadata: figment::Metadata,
}

impl EnvLayer {
    fn new(metadata: figment::Metadata) -> Self {
        Self { values: figment::value::Dict::new(), metadata }
    }

    /// Sets `path` (`log.fsync`), creating the tables on the way. Values are left untagged so
    /// that figment tags them with this layer's metadata (a nested `Figment` would keep the
    /// tags of its own providers, which name this file's lines).
    fn set(&mut self, path: &str, value: figment::value::Value) {
        let mut table = &mut self.values;
        let mut keys = path.split('.').peekable();
        while let Some(key) = keys.next() {
            if keys.peek().is_none() {
                table.insert(key.to_owned(), value);
                return;
            }
            let entry =
                table.entry(key.to_owned()).or_insert_with(|| figment::value::Dict::new().into());
            if !matches!(entry, figment::value::Value::Dict(..)) {
                *entry = figment::value::Dict::new().into();
            }
            let figment::value::Value::Dict(_, inner) = entry else { return };
            table = inner;
        }
    }
}

impl figment::Provider for EnvLayer {
    fn metadata(&self) -> figment::Metadata {
        self.metadata.clone()
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        Ok(figment::Profile::Default.collect(self.values.clone()))
    }
}

/// `ALLOWED_HOSTS` and `PORT`, as seed 1's deployments set them.
fn seed_env_provider(env: &[(String, String)]) -> Result<EnvLayer, ConfigError> {
    let metadata = figment::Metadata::named(SEED_ENV_NAME).interpolater(|_, keys| match keys {
        ["http", "listen"] => "PORT".to_owned(),
        ["http", "allowed_hosts", ..] => "ALLOWED_HOSTS".to_owned(),
        _ => keys.join("."),
    });
    let mut layer = EnvLayer::new(metadata);
    for (key, value) in env {
        match key.as_str() {
            "ALLOWED_HOSTS" => {
                let hosts: Vec<String> = value
                    .split(',')
                    .map(|host| host.trim().to_owned())
                    .filter(|h| !h.is_empty())
                    .collect();
                layer.set("http.allowed_hosts", hosts.into());
            }
            "PORT" => {
                let port = value.trim().parse::<u16>().map_err(|_| ConfigError::Value {
                    field: "PORT".into(),
                    message: format!("{value:?} is not a port number (0 to 65535)"),
                })?;
                layer.set("http.listen", SocketAddr::from(([0, 0, 0, 0], port)).to_string().into());
            }
            _ => {}
        }
    }
    Ok(layer)
}

fn env_provider(pairs: Vec<(String, String)>) -> EnvLayer {
    // Errors name the variable (`STOREPULSE_LOG__FSYNC`), not this file's line.
    let metadata = figment::Metadata::named(ENV_NAME).interpolater(|_, keys| {
        let mut path = String::new();
        let keys: Vec<String> = keys
            .iter()
            .map(|key| {
                // A map's key is written as it was set (see `env_key_path`).
                let written = if MAP_KEYS.contains(&path.as_str()) {
                    (*key).to_owned()
                } else {
                    key.to_ascii_uppercase()
                };
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                written
            })
            .collect();
        format!("STOREPULSE_{}", keys.join("__"))
    });
    // figment's Env reads the process environment; build the same map from the pairs we were
    // given so tests stay hermetic.
    let mut layer = EnvLayer::new(metadata);
    for (key, value) in pairs {
        let path = env_key_path(&key);
        let parsed =
            value.parse::<figment::value::Value>().unwrap_or_else(|_| value.clone().into());
        let is_list = LIST_KEYS.contains(&path.as_str());
        let parsed = match (&parsed, value.contains(',')) {
            // `a,b` lists for list-valued keys like allowed_hosts.
            (figment::value::Value::String(..), true) if path.ends_with('s') => split_list(&value),
            (figment::value::Value::String(..), _) if is_list => split_list(&value),
            _ => parsed,
        };
        layer.set(&path, parsed);
    }
    layer
}

/// Keys that hold a map whose keys are data, not field names: a Segment write key is a
/// mixed-case random string, and lower-casing it made every request with it a 401.
const MAP_KEYS: [&str; 1] = ["ingest.write_keys"];

/// The config path a variable sets (`LOG__FSYNC` → `log.fsync`). Field names are matched
/// whatever their case, as variables are usually written in capitals; the key just below a
/// [`MAP_KEYS`] map keeps its case (`INGEST__WRITE_KEYS__AbC123` → `ingest.write_keys.AbC123`).
fn env_key_path(variable: &str) -> String {
    let mut path = String::new();
    let mut below_map = false;
    for segment in variable.split("__") {
        if !path.is_empty() {
            path.push('.');
        }
        if below_map {
            path.push_str(segment);
        } else {
            path.push_str(&segment.to_ascii_lowercase());
        }
        below_map = MAP_KEYS.contains(&path.as_str());
    }
    path
}

fn split_list(value: &str) -> figment::value::Value {
    figment::value::Value::from(
        value
            .split(',')
            .map(|item| item.trim().to_owned())
            .filter(|item| !item.is_empty())
            .collect::<Vec<_>>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect()
    }

    #[test]
    fn defaults_load_without_any_file() {
        let config =
            Config::load(Some(Path::new("/nonexistent-ok")), env(&[]), &ConfigOverrides::default());
        assert!(config.is_err(), "an explicit missing file is an error");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("empty.toml");
        std::fs::write(&file, "").unwrap();
        let config = Config::load(Some(&file), env(&[]), &ConfigOverrides::default()).unwrap();
        assert_eq!(config, Config::default());
    }

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("storepulse.toml");
        std::fs::write(&file, "data_dir = \"/from-file\"\n[log]\nfsync = \"interval\"\n[http]\nlisten = \"127.0.0.1:9000\"\n").unwrap();
        let config = Config::load(
            Some(&file),
            env(&[
                ("STOREPULSE_LOG__FSYNC", "none"),
                ("STOREPULSE_INGEST__LIMITS__MAX_ITEMS", "7"),
            ]),
            &ConfigOverrides {
                listen: Some("127.0.0.1:9100".parse().unwrap()),
                ..ConfigOverrides::default()
            },
        )
        .unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/from-file"));
        assert_eq!(config.log.fsync, FsyncMode::None);
        assert_eq!(config.ingest.limits.max_items, 7);
        assert_eq!(config.http.listen, "127.0.0.1:9100".parse().unwrap());
    }

    /// `STOREPULSE_INGEST__WRITE_KEYS__AbC123` set the key `abc123`, so Segment requests with
    /// the real key `AbC123` were refused with 401.
    #[test]
    fn write_keys_from_the_environment_keep_their_case() {
        let config = load_file_and_env(
            "",
            &[
                ("STOREPULSE_INGEST__WRITE_KEYS__AbC123", "shop-eu"),
                ("STOREPULSE_Ingest__Default_Store", "main"),
            ],
        )
        .unwrap();
        let keys: Vec<(&str, &str)> = config
            .ingest
            .write_keys
            .iter()
            .map(|(key, store)| (key.as_str(), store.as_str()))
            .collect();
        assert_eq!(keys, [("AbC123", "shop-eu")]);
        assert_eq!(config.ingest.default_store, "main");
        let error = load_file_and_env("", &[("STOREPULSE_INGEST__WRITE_KEYS__AbC123", "[1]")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("STOREPULSE_INGEST__WRITE_KEYS__AbC123"), "{error}");
    }

    #[test]
    fn seed_environment_names_are_honoured() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("empty.toml");
        std::fs::write(&file, "").unwrap();
        let config = Config::load(
            Some(&file),
            env(&[("ALLOWED_HOSTS", "shop.test, *.shop.test"), ("PORT", "8123")]),
            &ConfigOverrides::default(),
        )
        .unwrap();
        assert_eq!(config.http.allowed_hosts, ["shop.test", "*.shop.test"]);
        assert_eq!(config.http.listen.port(), 8123);
    }

    fn load_file_and_env(toml: &str, pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("storepulse.toml");
        std::fs::write(&file, toml).unwrap();
        Config::load(Some(&file), env(pairs), &ConfigOverrides::default())
    }

    #[test]
    fn storepulse_variables_win_over_seed_names_which_win_over_the_file() {
        let config = load_file_and_env(
            "",
            &[("PORT", "9999"), ("STOREPULSE_HTTP__LISTEN", "127.0.0.1:7777")],
        )
        .unwrap();
        assert_eq!(config.http.listen, "127.0.0.1:7777".parse().unwrap());
        let config = load_file_and_env(
            "[http]\nallowed_hosts = [\"file.test\"]\n",
            &[("ALLOWED_HOSTS", "seed.test"), ("STOREPULSE_HTTP__ALLOWED_HOSTS", "env.test")],
        )
        .unwrap();
        assert_eq!(config.http.allowed_hosts, ["env.test"]);
        let config =
            load_file_and_env("[http]\nlisten = \"127.0.0.1:7000\"\n", &[("PORT", "9999")])
                .unwrap();
        assert_eq!(config.http.listen, "0.0.0.0:9999".parse().unwrap());
    }

    #[test]
    fn a_port_that_is_not_a_number_is_refused_naming_port() {
        let error = load_file_and_env("", &[("PORT", "abc")]).unwrap_err().to_string();
        assert!(error.contains("PORT") && error.contains("\"abc\""), "{error}");
    }

    #[test]
    fn a_missing_or_unreadable_file_is_named_on_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("x.toml");
        let error = Config::load(Some(&missing), env(&[]), &ConfigOverrides::default())
            .unwrap_err()
            .to_string();
        let expected = format!(
            "cannot read configuration file {}: No such file or directory",
            missing.display()
        );
        assert_eq!(error, expected);
        let error = Config::load(Some(dir.path()), env(&[]), &ConfigOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("cannot read configuration file") && !error.contains('\n'),
            "{error}"
        );
    }

    #[test]
    fn a_host_name_as_listen_address_says_an_ip_address_is_needed() {
        let error = load_file_and_env("[http]\nlisten = \"localhost:8080\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("not an IP address and port") && error.contains("127.0.0.1:8080"),
            "{error}"
        );
    }

    #[test]
    fn empty_allowed_hosts_are_refused_naming_the_key_as_set() {
        let error = load_file_and_env("", &[("ALLOWED_HOSTS", "")]).unwrap_err().to_string();
        assert!(error.contains("ALLOWED_HOSTS: is empty"), "{error}");
        let error = load_file_and_env("[http]\nallowed_hosts = []\n", &[]).unwrap_err().to_string();
        assert!(error.contains("http.allowed_hosts: is empty"), "{error}");
    }

    /// Log retention waits for a snapshot to hold what it deletes: without periodic snapshots
    /// a running server's log would never shrink.
    #[test]
    fn log_retention_needs_periodic_snapshots() {
        let mut config = Config::default();
        config.log.retention_max_bytes = Some(1 << 30);
        assert!(config.validate().is_ok());
        config.engine.snapshot_interval = None;
        let (key, _) = config.validate().unwrap_err();
        assert_eq!(key, "engine.snapshot_interval");
        config.log.retention_max_bytes = None;
        assert!(config.validate().is_ok(), "snapshots at shutdown only, and no retention");
    }

    #[test]
    fn harmful_values_are_refused_naming_the_key() {
        for (toml, key) in [
            ("[log]\nfsync = \"interval\"\nfsync_interval = \"0s\"\n", "log.fsync_interval"),
            ("[engine]\nsnapshot_interval = \"0s\"\n", "engine.snapshot_interval"),
            ("[engine]\nactive_window = \"0s\"\n", "engine.active_window"),
            ("[engine]\npage_window = \"5s\"\n", "engine.page_window"),
            ("[engine]\nfunnel_retention = \"0s\"\n", "engine.funnel_retention"),
            ("[engine]\nhour_retention = \"1h\"\n", "engine.hour_retention"),
            ("[engine]\nday_retention = \"1day\"\n", "engine.day_retention"),
            ("[http]\nmax_body_bytes = 0\n", "http.max_body_bytes"),
            ("[http]\nheader_read_timeout = \"0s\"\n", "http.header_read_timeout"),
            ("[http]\nrequest_timeout = \"0s\"\n", "http.request_timeout"),
            ("[category_trends]\ndaily_weight = nan\n", "category_trends.daily_weight"),
            ("[category_trends]\nweekly_weight = inf\n", "category_trends.weekly_weight"),
            ("[rate_limit]\nkey_header = \"bad header\"\n", "rate_limit.key_header"),
            ("[ingest]\ndefault_store = \"bad store!\"\n", "ingest.default_store"),
            ("[demo]\nstore = \"\"\n", "demo.store"),
            ("[http]\ncors_origins = [\"not an origin\"]\n", "http.cors_origins"),
            ("[http]\nadmin_origins = [\"admin.shop.test\"]\n", "http.admin_origins"),
            ("[log]\nretention_max_age = \"12h\"\n", "log.retention_max_age"),
            // Values that leave nothing to count or rank (exploratory round 12).
            ("[ingest.limits]\nmax_items = 0\n", "ingest.limits.max_items"),
            ("[ingest.limits]\nmax_id_chars = 0\n", "ingest.limits.max_id_chars"),
            ("[category_trends]\nmax_daily_change = -3\n", "category_trends.max_daily_change"),
            ("[category_trends]\nmax_weekly_change = 0\n", "category_trends.max_weekly_change"),
            (
                "[category_trends]\nmin_weekly_change = 5\nmax_weekly_change = 3\n",
                "category_trends.min_weekly_change",
            ),
        ] {
            let error = load_file_and_env(toml, &[]).unwrap_err().to_string();
            assert!(error.contains(&format!("{key}: ")), "{toml}: {error}");
        }
        let error = load_file_and_env("", &[("STOREPULSE_LOG__FSYNC_INTERVAL", "0s")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("STOREPULSE_LOG__FSYNC_INTERVAL: must be"), "{error}");
    }

    #[test]
    fn type_errors_name_the_variable_or_the_key_as_written() {
        let error = load_file_and_env("", &[("STOREPULSE_LOG__FSYNC", "sometimes")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("STOREPULSE_LOG__FSYNC"), "{error}");
        assert!(!error.contains("config.rs"), "{error}");
        let error =
            load_file_and_env("[log]\nfsync = \"sometimes\"\n", &[]).unwrap_err().to_string();
        assert!(error.contains("\"log.fsync\""), "{error}");
        assert!(!error.contains("default.log.fsync"), "{error}");
    }

    #[test]
    fn test_harness_variables_are_not_config() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("empty.toml");
        std::fs::write(&file, "").unwrap();
        let config = Config::load(
            Some(&file),
            env(&[("STOREPULSE_TEST_REQUIRE_SERVICES", "1")]),
            &ConfigOverrides::default(),
        );
        assert_eq!(config.unwrap(), Config::default());
        let error = Config::load(
            Some(&file),
            env(&[("STOREPULSE_LOGG__FSYNC", "none")]),
            &ConfigOverrides::default(),
        )
        .unwrap_err();
        assert!(error.to_string().contains("logg"), "{error}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "[log]\nfsynk = \"always\"\n").unwrap();
        let error = Config::load(Some(&file), env(&[]), &ConfigOverrides::default()).unwrap_err();
        assert!(error.to_string().contains("fsynk"), "{error}");
        std::fs::write(&file, "[ingest]\ndefault_currency = \"XXZ\"\n").unwrap();
        let error = Config::load(Some(&file), env(&[]), &ConfigOverrides::default()).unwrap_err();
        assert!(error.to_string().contains("ingest.default_currency"), "{error}");
    }

    #[test]
    fn the_example_file_is_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("example.toml");
        std::fs::write(&file, EXAMPLE_CONFIG).unwrap();
        let config = Config::load(Some(&file), env(&[]), &ConfigOverrides::default()).unwrap();
        assert_eq!(config, Config::default());
    }
}
