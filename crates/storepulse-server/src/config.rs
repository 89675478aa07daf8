//! The one configuration of a Storepulse node.
//!
//! Layers, later ones winning: built-in defaults → TOML file (`--config`, default
//! `storepulse.toml` if present) → `STOREPULSE_*` environment variables (nested keys joined
//! with `__`, e.g. `STOREPULSE_LOG__FSYNC=interval`) → command-line flags. `ALLOWED_HOSTS`
//! and `PORT` are also read, for compatibility with seed 1's deployments.
//! `storepulse config print` shows the effective result. Unknown keys are errors, so a typo
//! never silently falls back to a default; only `STOREPULSE_TEST_*`, reserved for test
//! harnesses, is ignored.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use storepulse_model::Limits;

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
    pub listen: SocketAddr,
    /// Host header values accepted (`*` = any; `*.example.com` wildcards allowed).
    pub allowed_hosts: Vec<String>,
    /// Origins allowed to call from browsers (`*` = any).
    pub cors_origins: Vec<String>,
    /// Largest request body, in bytes (after decompression).
    pub max_body_bytes: usize,
    /// Time allowed to receive the request headers.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Time allowed for a whole request, body included.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Peers whose forwarding headers (X-Forwarded-For, Forwarded, ...) are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Time given to in-flight requests at shutdown.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            allowed_hosts: vec!["*".into()],
            cors_origins: vec!["*".into()],
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
    #[serde(with = "humantime_serde")]
    pub max_clock_skew: Duration,
    /// A retried event (same store and event_id) within this window is kept once.
    #[serde(with = "humantime_serde")]
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
    #[serde(with = "humantime_serde")]
    pub fsync_interval: Duration,
    pub segment_bytes: u64,
    /// Delete sealed segments older than this (unset = keep forever).
    #[serde(with = "humantime_serde")]
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
    #[serde(with = "humantime_serde")]
    pub active_window: Duration,
    /// Page views and top pages of `/api/v1/realtime` cover this long.
    #[serde(with = "humantime_serde")]
    pub page_window: Duration,
    /// The live commerce figures (revenue, orders, carts) cover this long.
    #[serde(with = "humantime_serde")]
    pub commerce_window: Duration,
    #[serde(with = "humantime_serde")]
    pub minute_retention: Duration,
    #[serde(with = "humantime_serde")]
    pub hour_retention: Duration,
    /// Unset keeps daily rollups (and daily distinct sketches) forever.
    #[serde(with = "humantime_serde")]
    pub day_retention: Option<Duration>,
    /// How long a session's trail is kept for funnels after its last event.
    #[serde(with = "humantime_serde")]
    pub funnel_retention: Duration,
    /// How long an order is remembered so that a refund naming only its id is a full refund.
    #[serde(with = "humantime_serde")]
    pub order_memory: Duration,
    /// Write an engine snapshot this often (and always at shutdown); unset: only at shutdown.
    #[serde(with = "humantime_serde")]
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
    #[serde(with = "humantime_serde")]
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
    /// Clients are told apart by this header when present, else by address.
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

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration is invalid: {0}")]
    Invalid(Box<figment::Error>),
    #[error("configuration is invalid: {field}: {message}")]
    Value { field: &'static str, message: String },
}

impl Config {
    /// Loads the layered configuration. `env` is passed in so tests control it.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &ConfigOverrides,
    ) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None => figment = figment.merge(Toml::file("storepulse.toml")),
        }
        let env: Vec<(String, String)> = env.into_iter().collect();
        let prefixed: Vec<(String, String)> = env
            .iter()
            .filter_map(|(key, value)| {
                Some((key.strip_prefix("STOREPULSE_")?.to_owned(), value.clone()))
            })
            // STOREPULSE_TEST_* steer test harnesses (e.g. which services must be present).
            .filter(|(key, _)| !key.starts_with("TEST_"))
            .collect();
        figment = figment.merge(env_provider(prefixed));
        for (key, value) in &env {
            match key.as_str() {
                "ALLOWED_HOSTS" => {
                    let hosts: Vec<String> = value
                        .split(',')
                        .map(|host| host.trim().to_owned())
                        .filter(|h| !h.is_empty())
                        .collect();
                    figment = figment.merge(Serialized::default("http.allowed_hosts", hosts));
                }
                "PORT" => {
                    if let Ok(port) = value.parse::<u16>() {
                        let listen =
                            SocketAddr::new(SocketAddr::from(([0, 0, 0, 0], 0)).ip(), port);
                        figment = figment.merge(Serialized::default("http.listen", listen));
                    }
                }
                _ => {}
            }
        }
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
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if storepulse_model::Currency::parse(&self.ingest.default_currency).is_none() {
            return Err(ConfigError::Value {
                field: "ingest.default_currency",
                message: format!(
                    "{:?} is not an ISO 4217 currency code",
                    self.ingest.default_currency
                ),
            });
        }
        for (key, store) in &self.ingest.write_keys {
            let valid = !store.is_empty()
                && store.len() <= 64
                && store.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"._-".contains(&byte));
            if key.is_empty() || !valid {
                return Err(ConfigError::Value {
                    field: "ingest.write_keys",
                    message: format!(
                        "{key:?} = {store:?}: keys must be non-empty and stores 1 to 64 letters, digits, '.', '_' or '-'"
                    ),
                });
            }
        }
        if self.ingest.limits.max_batch_events == 0 {
            return Err(ConfigError::Value {
                field: "ingest.limits.max_batch_events",
                message: "must be > 0".into(),
            });
        }
        for (field, quota) in [
            ("rate_limit.ingest", self.rate_limit.ingest),
            ("rate_limit.api", self.rate_limit.api),
            ("rate_limit.ops", self.rate_limit.ops),
        ] {
            if quota.per_second == 0 || quota.burst == 0 {
                return Err(ConfigError::Value {
                    field,
                    message: "per_second and burst must be > 0".into(),
                });
            }
        }
        if self.log.segment_bytes < 4096 {
            return Err(ConfigError::Value {
                field: "log.segment_bytes",
                message: "must be at least 4096".into(),
            });
        }
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

fn env_provider(pairs: Vec<(String, String)>) -> impl figment::Provider {
    // figment's Env reads the process environment; build the same map from the pairs we were
    // given so tests stay hermetic.
    let mut figment = Figment::new();
    for (key, value) in pairs {
        let path = key.to_ascii_lowercase().replace("__", ".");
        let parsed =
            value.parse::<figment::value::Value>().unwrap_or_else(|_| value.clone().into());
        let parsed = match (&parsed, value.contains(',')) {
            // `a,b` lists for list-valued keys like allowed_hosts.
            (figment::value::Value::String(..), true) if path.ends_with('s') => {
                figment::value::Value::from(
                    value.split(',').map(|item| item.trim().to_owned()).collect::<Vec<_>>(),
                )
            }
            _ => parsed,
        };
        figment = figment.merge(Serialized::default(&path, parsed));
    }
    figment
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
