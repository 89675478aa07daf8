//! The command line: `serve`, `config print`, `log verify|inspect|repair`,
//! `dead-letters replay`, `loadgen`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::app::App;
use crate::config::{Config, ConfigOverrides, FsyncMode};
use crate::loadgen::{LoadgenOptions, Profile};

#[derive(Debug, Parser)]
#[command(name = "storepulse", version, about = "Real-time e-commerce analytics in one binary")]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// TOML configuration file (default: ./storepulse.toml if it exists).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Data directory (overrides the config file and STOREPULSE_DATA_DIR).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:8080.
        #[arg(long, value_parser = crate::config::parse_listen_address)]
        listen: Option<SocketAddr>,
        /// When an append is durable: always (default), interval, none.
        #[arg(long, value_parser = parse_fsync)]
        fsync: Option<FsyncMode>,
        /// Also send labelled demo traffic (store "demo") to this server so there is live data at once.
        #[arg(long)]
        demo: bool,
    },
    /// Configuration commands.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Event log commands.
    #[command(subcommand)]
    Log(LogCommand),
    /// Dead-letter commands.
    #[command(subcommand, name = "dead-letters")]
    DeadLetters(DeadLetterCommand),
    /// Send realistic shop traffic to a Storepulse server and report acknowledgements and latency.
    Loadgen(LoadgenArgs),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration (defaults, file, environment, flags) as TOML.
    Print,
    /// Print the commented example configuration.
    Example,
}

#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Check every frame of the event log (safe while the server runs).
    Verify {
        /// Check the dead-letter log instead.
        #[arg(long)]
        dead_letters: bool,
    },
    /// Print records as JSON lines (server must be stopped).
    Inspect {
        #[arg(long)]
        from: Option<u64>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        dead_letters: bool,
    },
    /// Cut the log at its first corrupt frame, moving later data to quarantine/ (server must be stopped).
    Repair {
        #[arg(long)]
        dead_letters: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeadLetterCommand {
    /// Re-validate dead letters and ingest those that now pass (server must be stopped; while it runs use POST /api/v1/dead-letters/replay).
    Replay {
        #[arg(long)]
        from: Option<u64>,
        /// How many entries to examine, at least 1.
        #[arg(long, default_value_t = 10_000, value_parser = parse_at_least_one)]
        limit: usize,
        /// Only entries with this reason (e.g. invalid_value).
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct LoadgenArgs {
    /// Base URL of the server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub target: String,
    /// Events per second to send (0 = as fast as acknowledgements allow).
    #[arg(long, default_value_t = 100)]
    pub rate: u32,
    /// How long to run, e.g. 30s, 5m.
    #[arg(long, default_value = "10s", value_parser = parse_run_duration)]
    pub duration: Duration,
    /// Random seed: the same seed sends the same events.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// shop (sessions, carts, orders, refunds, promotions) or realtime (seed 3's mock generator).
    #[arg(long, default_value = "shop", value_parser = parse_profile)]
    pub profile: Profile,
    /// Events per request (1 = one POST per event).
    #[arg(long, default_value_t = 1, value_parser = parse_at_least_one)]
    pub batch: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8, value_parser = parse_at_least_one)]
    pub concurrency: usize,
    /// Store to write to.
    #[arg(long, default_value = "default")]
    pub store: String,
}

fn parse_fsync(text: &str) -> Result<FsyncMode, String> {
    match text {
        "always" => Ok(FsyncMode::Always),
        "interval" => Ok(FsyncMode::Interval),
        "none" => Ok(FsyncMode::None),
        other => Err(format!("{other:?}: use always, interval or none")),
    }
}

/// A count of 1 or more: 0 was quietly run as 1.
fn parse_at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(count) => Ok(count),
        Err(_) => Err("must be a whole number, at least 1".to_owned()),
    }
}

/// A run's duration, above zero: `0s` sent nothing and reported success.
fn parse_run_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(duration) if duration.is_zero() => {
            Err("must be longer than 0, e.g. 10s or 5m".to_owned())
        }
        Ok(duration) => Ok(duration),
        Err(error) => Err(format!("{error}; e.g. 10s or 5m")),
    }
}

fn parse_profile(text: &str) -> Result<Profile, String> {
    match text {
        "shop" => Ok(Profile::Shop),
        "realtime" | "seed3" => Ok(Profile::Realtime),
        other => Err(format!("{other:?}: use shop or realtime")),
    }
}

/// Refuses a directory that is not a Storepulse data directory (missing, or without the log
/// `log_dir` an offline command reads), before anything there is created or read.
fn require_data_dir(data_dir: &Path, log_dir: &Path) -> anyhow::Result<()> {
    let hint = "check --data-dir (or data_dir in the configuration)";
    if !data_dir.is_dir() {
        anyhow::bail!(
            "{} is not a Storepulse data directory: it does not exist; {hint}",
            data_dir.display()
        );
    }
    if !log_dir.is_dir() {
        let log = log_dir.file_name().map_or_else(
            || log_dir.display().to_string(),
            |name| name.to_string_lossy().into_owned(),
        );
        anyhow::bail!(
            "{} is not a Storepulse data directory: it has no {log}/ log; {hint}",
            data_dir.display()
        );
    }
    Ok(())
}

/// `error` and its causes on one line, each said once: a cause whose text its parent already
/// quotes (error messages that embed their source) is not repeated ("No such file or directory
/// (os error 2): No such file or directory (os error 2)").
pub fn error_message(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut overrides =
        ConfigOverrides { data_dir: cli.global.data_dir.clone(), ..ConfigOverrides::default() };
    if let Command::Serve { listen, fsync, .. } = &cli.command {
        overrides.listen = *listen;
        overrides.fsync = *fsync;
    }
    let load = || Config::load(cli.global.config.as_deref(), std::env::vars(), &overrides);
    match cli.command {
        Command::Serve { demo, .. } => serve(load()?, demo),
        Command::Config(ConfigCommand::Print) => {
            print!("{}", load()?.to_toml());
            Ok(())
        }
        Command::Config(ConfigCommand::Example) => {
            print!("{}", crate::config::EXAMPLE_CONFIG);
            Ok(())
        }
        Command::Log(command) => {
            let config = load()?;
            let dir = |dead_letters: bool| {
                if dead_letters { config.dead_letters_dir() } else { config.events_dir() }
            };
            let dead_letters = match &command {
                LogCommand::Verify { dead_letters }
                | LogCommand::Inspect { dead_letters, .. }
                | LogCommand::Repair { dead_letters } => *dead_letters,
            };
            require_data_dir(&config.data_dir, &dir(dead_letters))?;
            match command {
                LogCommand::Verify { dead_letters } => {
                    crate::log_commands::verify(&dir(dead_letters), &config.data_dir, dead_letters)
                }
                LogCommand::Inspect { from, limit, dead_letters } => {
                    crate::log_commands::inspect(&dir(dead_letters), from, limit, !dead_letters)
                }
                LogCommand::Repair { dead_letters } => {
                    crate::log_commands::repair(&dir(dead_letters))
                }
            }
        }
        Command::DeadLetters(DeadLetterCommand::Replay { from, limit, reason }) => {
            let reason = match reason {
                Some(text) => Some(
                    storepulse_model::ErrorCode::parse(&text)
                        .with_context(|| format!("{text:?} is not a reason code"))?,
                ),
                None => None,
            };
            let config = load()?;
            // Opening the app creates a data directory: a typo in --data-dir made a new one.
            require_data_dir(&config.data_dir, &config.events_dir())?;
            let app = App::open(config).context("cannot open the data directory (if the server is running, use POST /api/v1/dead-letters/replay)")?;
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let report = runtime.block_on(crate::dead_letter::replay::replay_dead_letters(
                &app, from, limit, reason,
            ))?;
            app.shutdown();
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        Command::Loadgen(args) => {
            reqwest::Url::parse(&args.target)
                .ok()
                .filter(|url| matches!(url.scheme(), "http" | "https"))
                .with_context(|| {
                    format!(
                        "--target {:?} is not an http(s) URL such as http://127.0.0.1:8080",
                        args.target
                    )
                })?;
            if args.profile == Profile::Realtime && args.batch > 1 {
                anyhow::bail!(
                    "--batch {}: seed 3's /ingest takes one event per request, so the realtime profile sends one at a time",
                    args.batch
                );
            }
            let options = LoadgenOptions {
                target: args.target,
                rate: args.rate,
                duration: args.duration,
                seed: args.seed,
                profile: args.profile,
                batch: args.batch,
                concurrency: args.concurrency,
                store: args.store,
                quiet: false,
            };
            let runtime = tokio::runtime::Runtime::new()?;
            let report = runtime.block_on(crate::loadgen::run(options))?;
            println!("{}", report.render());
            // A duplicate is acknowledged too: it is stored, by an earlier run.
            if report.acked_events + report.duplicate_events == 0 && report.requests > 0 {
                anyhow::bail!(
                    "nothing was acknowledged{}",
                    report
                        .first_failure
                        .as_deref()
                        .map(|why| format!(": {why}"))
                        .unwrap_or_default()
                );
            }
            Ok(())
        }
    }
}

fn serve(config: Config, demo: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.http.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.http.listen))?;
        let address = listener.local_addr()?;
        let demo_options = demo.then(|| LoadgenOptions::demo(&config, address));
        let app = Arc::new(App::open(config)?);
        let (shutdown, receiver) = crate::serve::ShutdownSignal::new();
        let signal = shutdown.clone();
        tokio::spawn(async move {
            crate::serve::termination_signal().await;
            signal.trigger();
        });
        if let Some(options) = demo_options {
            tracing::info!(rate = options.rate, store = %options.store, "demo traffic on: generated events go to the demo store");
            tokio::spawn(async move {
                if let Err(error) = crate::loadgen::run(options).await {
                    tracing::warn!(%error, "demo traffic stopped");
                }
            });
        }
        crate::serve::serve(app, listener, receiver).await
    })
}

#[cfg(test)]
mod tests {
    use super::error_message;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot list log directory /x/events: {source}")]
    struct Quoting {
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn a_cause_its_parent_already_quotes_is_said_once() {
        let io = std::io::Error::from_raw_os_error(2);
        let error = anyhow::Error::new(Quoting { source: io }).context("cannot verify /x/events");
        assert_eq!(
            error_message(&error),
            "cannot verify /x/events: cannot list log directory /x/events: No such file or directory (os error 2)"
        );
    }
}
