//! A test application on a temporary data directory, driven through the router.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode};
use serde_json::Value;
use storepulse_log::{EventLog, LogConfig};
use storepulse_model::Event;
use storepulse_model::codec::decode_event;
use storepulse_server::config::Config;
use storepulse_server::{App, AppState};
use tower::ServiceExt;

pub struct TestApp {
    pub app: Arc<App>,
    pub dir: tempfile::TempDir,
}

pub fn test_config(dir: &std::path::Path) -> Config {
    let mut config = Config { data_dir: dir.to_path_buf(), ..Config::default() };
    // Tests send bursts from one address; rate limiting has its own tests.
    config.rate_limit.enabled = false;
    // The fixtures are dated (November 2026); with the default retention, which counts back
    // from today's clock, their funnels, carts and hourly rollups would be pruned as the
    // calendar moves on. Retention itself is tested in the engine with a clock passed in.
    let engine = &mut config.engine;
    engine.hour_retention = FIXTURE_RETENTION;
    engine.funnel_retention = FIXTURE_RETENTION;
    engine.order_memory = FIXTURE_RETENTION;
    config
}

/// Retention long enough that the dated fixtures stay inside it for as long as they are used.
const FIXTURE_RETENTION: std::time::Duration =
    std::time::Duration::from_secs(100 * 365 * 24 * 3600);

/// The same retention for a server started as a process, as `STOREPULSE_*` variables.
const FIXTURE_RETENTION_ENV: [(&str, &str); 3] = [
    ("STOREPULSE_ENGINE__HOUR_RETENTION", "100years"),
    ("STOREPULSE_ENGINE__FUNNEL_RETENTION", "100years"),
    ("STOREPULSE_ENGINE__ORDER_MEMORY", "100years"),
];

impl TestApp {
    pub fn new() -> Self {
        Self::with_config(|_| {})
    }

    pub fn with_config(change: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = test_config(dir.path());
        change(&mut config);
        let app = Arc::new(App::open(config).expect("app opens"));
        Self { app, dir }
    }

    /// Closes this app and opens a new one on the same directory (a clean restart).
    pub fn restart(self, change: impl FnOnce(&mut Config)) -> Self {
        let TestApp { app, dir } = self;
        let mut config = app.config.clone();
        app.shutdown();
        drop(app);
        change(&mut config);
        let app = Arc::new(App::open(config).expect("app reopens"));
        Self { app, dir }
    }

    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        self.send_from(request, "127.0.0.1:5000").await
    }

    pub async fn send_from(&self, mut request: Request<Body>, peer: &str) -> TestResponse {
        let peer: SocketAddr = peer.parse().expect("peer address");
        request.extensions_mut().insert(ConnectInfo(peer));
        let router = storepulse_server::router(AppState(self.app.clone()));
        let response = router.oneshot(request).await.expect("router never fails");
        TestResponse::read(response).await
    }

    pub async fn post_json(&self, path: &str, body: &str) -> TestResponse {
        self.send(
            post(path)
                .header("content-type", "application/json")
                .body(Body::from(body.to_owned()))
                .unwrap(),
        )
        .await
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        self.send(Request::get(path).body(Body::empty()).unwrap()).await
    }

    /// Every event in the log, in order.
    pub fn stored_events(&self) -> Vec<Event> {
        let log = self.app.ingest.log().lock().unwrap();
        log.reader(log.first_offset())
            .unwrap()
            .map(|record| decode_event(&record.unwrap().payload).unwrap())
            .collect()
    }

    pub fn flush_dead_letters(&self) {
        self.app.dead_letters.flush();
    }
}

pub fn post(path: &str) -> axum::http::request::Builder {
    Request::post(path)
}

pub struct TestResponse {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub bytes: Vec<u8>,
}

impl TestResponse {
    async fn read(response: Response<Body>) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes =
            axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body").to_vec();
        Self { status, headers, bytes }
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or_else(|error| {
            panic!("not JSON ({error}): {}", String::from_utf8_lossy(&self.bytes))
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// Reads a log directory offline (the server must be stopped).
pub fn read_log_offline(dir: &std::path::Path) -> Vec<Event> {
    let (log, _) = EventLog::open(LogConfig::new(dir)).expect("log opens");
    log.reader(log.first_offset())
        .unwrap()
        .map(|record| decode_event(&record.unwrap().payload).unwrap())
        .collect()
}

// ---- Running the real binary ----

/// A port nothing listens on now, never the same one twice in this test process: the tests
/// run in parallel and each server binds its port only after the probe released it, so two
/// tests handed the same port would race for it (or one would talk to the other's server).
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if HANDED_OUT.lock().unwrap().insert(port) {
            return port;
        }
    }
}

/// A `storepulse serve` process that is killed when dropped, so a failing assertion does not
/// leave a server running (and holding the test runner's output open) after the test.
pub struct Server(std::process::Child);

impl std::ops::Deref for Server {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Server {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Both fail harmlessly when the test already stopped the process.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `storepulse serve` on `data_dir` and waits until it listens.
pub fn start(data_dir: &std::path::Path, port: u16) -> Server {
    start_with_env(data_dir, port, &[])
}

// The child is waited on when the `Server` guard drops.
#[allow(clippy::zombie_processes)]
pub fn start_with_env(data_dir: &std::path::Path, port: u16, env: &[(&str, &str)]) -> Server {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_storepulse"));
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data_dir)
        .env("STOREPULSE_RATE_LIMIT__ENABLED", "false")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit());
    for (key, value) in FIXTURE_RETENTION_ENV.iter().chain(env) {
        command.env(key, value);
    }
    let child = Server(command.spawn().expect("the storepulse binary starts"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return child;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("server did not start listening on {port}");
}

/// Sends SIGTERM and waits for the exit status.
pub fn stop_gracefully(server: &mut std::process::Child) -> std::process::ExitStatus {
    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(server.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Some(status) = server.try_wait().unwrap() {
            return status;
        }
        assert!(std::time::Instant::now() < deadline, "server did not stop after SIGTERM");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Runs the binary with `args` and returns (success, stdout).
pub fn run_cli(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_storepulse"));
    command.args(args).env("RUST_LOG", "warn");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("the storepulse binary runs");
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned())
}
