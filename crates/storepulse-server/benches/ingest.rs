//! The ingest round trip in process: router → decode → validate → group commit → fsync →
//! answer, without sockets (wrk measures the sockets; see bench/http-ingest.sh).

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use storepulse_server::config::Config;
use storepulse_server::{App, AppState};
use tower::ServiceExt;

const PAGE_VIEW: &str = r#"{"type":"page_view","user_id":"u-1","session_id":"s-1","page":{"url":"https://shop.example/p/sku-00042","title":"Runner 42"},"country":"US","device":{"type":"mobile"}}"#;

fn bench(criterion: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config { data_dir: dir.path().to_path_buf(), ..Config::default() };
    config.rate_limit.enabled = false;
    let app = Arc::new(App::open(config).expect("app"));
    let router = storepulse_server::router(AppState(app.clone()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let post = |body: String| {
        Request::post("/api/v1/events")
            .header("content-type", "application/json")
            .body(Body::from(body))
            .expect("request")
    };

    let mut group = criterion.benchmark_group("http_ingest_in_process");
    group.sample_size(20);
    group.throughput(Throughput::Elements(1));
    group.bench_function("one_event_fsync_always", |bencher| {
        bencher.iter(|| {
            runtime.block_on(router.clone().oneshot(post(PAGE_VIEW.to_owned()))).expect("response")
        })
    });
    let batch = format!("[{}]", vec![PAGE_VIEW; 1000].join(","));
    group.throughput(Throughput::Elements(1000));
    group.bench_function("batch_1000_fsync_always", |bencher| {
        bencher.iter(|| {
            runtime.block_on(router.clone().oneshot(post(batch.clone()))).expect("response")
        })
    });
    // 32 concurrent single-event requests: what group commit buys.
    group.throughput(Throughput::Elements(32));
    group.bench_function("32_concurrent_single_events", |bencher| {
        bencher.iter(|| {
            runtime.block_on(async {
                let requests = (0..32).map(|_| router.clone().oneshot(post(PAGE_VIEW.to_owned())));
                for response in futures_join_all(requests).await {
                    response.expect("response");
                }
            })
        })
    });
    group.finish();
    app.shutdown();
}

async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(handles.len());
    for handle in handles {
        outputs.push(handle.await.expect("task"));
    }
    outputs
}

criterion_group!(benches, bench);
criterion_main!(benches);
