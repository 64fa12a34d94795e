//! The latency a Redis outage adds to every request (issue 10, D6).
//!
//! ```text
//! cargo bench -p tollgate-gateway --bench redis_outage -- --requests 200
//! ```
//!
//! The mock provider and the gateway run in-process on loopback; requests are sent one at a
//! time (closed loop) on a keep-alive client, each with distinct content (so every one is a cache
//! lookup, a miss or bypass, and a store). Scenarios, each on a fresh gateway:
//!
//! - `no cache`: the cache off, the baseline;
//! - `redis up`: a healthy `redis-server` of the bench's own;
//! - `redis killed`: the same, killed after the gateway connected;
//! - `redis frozen`: the same, frozen with SIGSTOP after the gateway connected (a hung Redis);
//! - `hung listener`: a port that accepts connections and never answers, from the start.
//!
//! Prints p50/p90/p99/max of the client-side latency per scenario. Without `--requests` (as under
//! `cargo test --benches`) it does a small smoke run. Scenarios needing `redis-server` are skipped
//! with a note when it cannot be started.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Instant;

use hdrhistogram::Histogram;

#[path = "../tests/common/redis.rs"]
#[allow(dead_code)]
mod redis;
use redis::RedisProcess;
use serde_json::json;

const MASTER_KEY: &str = "sk-bench-7f3a9c1e5b2d4f6a8c0e1b3d5f7a9c2e";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let requests = args
        .iter()
        .position(|a| a == "--requests")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse::<u64>().ok());
    let smoke = requests.is_none();
    let n = requests.unwrap_or(10);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(n, smoke));
}

fn config(mock: SocketAddr, cache: Option<u16>) -> String {
    let mut y = format!(
        "model_list:\n  - model_name: m\n    litellm_params:\n      model: deepseek/deepseek-v3.2\n      api_base: http://{mock}/v1\n      api_key: k\ngeneral_settings:\n  master_key: {MASTER_KEY}\n"
    );
    if let Some(port) = cache {
        y.push_str(&format!(
            "litellm_settings:\n  cache: true\n  cache_params: {{type: redis, host: 127.0.0.1, port: {port}}}\n"
        ));
    }
    y
}

struct Gateway {
    gw: tollgate_gateway::RunningGateway,
    base: String,
    _dir: tempfile::TempDir,
}

async fn gateway(yaml: &str) -> Gateway {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = std::collections::BTreeMap::new();
    let cfg = tollgate_core::config::parse(yaml, Path::new("bench.yaml"), &env).expect("config");
    let live = tollgate_gateway::LiveState::build(cfg, 1, None, &env).expect("live state");
    let opts = tollgate_gateway::ServeOptions {
        port: 0,
        data_dir: dir.path().join("data"),
        watch_config: false,
        ..tollgate_gateway::ServeOptions::default()
    };
    let gw = tollgate_gateway::start(live, opts).await.expect("gateway");
    let base = format!("http://{}", gw.addr);
    Gateway { gw, base, _dir: dir }
}

/// Sends `n` distinct requests one after another; returns their latencies in µs.
async fn measure(http: &reqwest::Client, base: &str, label: &str, n: u64) -> Histogram<u64> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    let mut states = std::collections::BTreeMap::<String, u64>::new();
    for i in 0..n {
        let body = json!({"model": "m", "messages": [{"role": "user", "content": format!("{label} request {i}")}]});
        let t = Instant::now();
        let r = http
            .post(format!("{base}/v1/chat/completions"))
            .bearer_auth(MASTER_KEY)
            .json(&body)
            .send()
            .await
            .expect("send");
        let state = r
            .headers()
            .get("x-tollgate-cache")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("?")
            .to_string();
        assert_eq!(r.status(), 200);
        let _ = r.bytes().await.expect("body");
        h.record(t.elapsed().as_micros().max(1) as u64).expect("record");
        *states.entry(state).or_default() += 1;
    }
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{label:14} n={n:5}  p50 {:8.3} ms  p90 {:8.3} ms  p99 {:8.3} ms  max {:8.3} ms  cache {states:?}",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        h.max() as f64 / 1000.0
    );
    h
}

async fn run(n: u64, smoke: bool) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mock = l.local_addr().expect("addr");
    tokio::spawn(tollgate_mock::serve(l, tollgate_mock::MockConfig::default()));
    let http = reqwest::Client::new();
    let warm = if smoke { 2 } else { 20 };

    let g = gateway(&config(mock, None)).await;
    measure(&http, &g.base, "warm-up", warm).await;
    measure(&http, &g.base, "no cache", n).await;
    let _ = g.gw.shutdown().await;

    // The same redis-server helper the fault tests use (tests/common/redis.rs).
    if cfg!(tollgate_redis_server) {
        let mut redis = RedisProcess::start();
        let g = gateway(&config(mock, Some(redis.port))).await;
        measure(&http, &g.base, "warm-up", warm).await;
        measure(&http, &g.base, "redis up", n).await;
        redis.kill();
        measure(&http, &g.base, "redis killed", n).await;
        let _ = g.gw.shutdown().await;

        let redis = RedisProcess::start();
        let g = gateway(&config(mock, Some(redis.port))).await;
        measure(&http, &g.base, "warm-up", warm).await;
        redis.freeze();
        measure(&http, &g.base, "redis frozen", n).await;
        let _ = g.gw.shutdown().await;
        redis.thaw();
    } else {
        println!("redis-server is not on PATH: Redis scenarios skipped");
    }

    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = hung.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = hung.accept().await {
            held.push(s);
        }
    });
    let g = gateway(&config(mock, Some(port))).await;
    measure(&http, &g.base, "hung listener", n).await;
    let _ = g.gw.shutdown().await;
}
