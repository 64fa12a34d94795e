//! Criterion benchmarks of the gateway's request path.
//!
//! HTTP group: the mock provider and the gateway run in-process on loopback, each request is a
//! real HTTP round trip on a keep-alive `reqwest` client with a ~1 KB chat body:
//! - `http/direct_mock_plain`: straight to the mock (the baseline),
//! - `http/gateway_plain`: the same request through the gateway,
//! - `http/direct_mock_stream`, `http/gateway_stream`: a streamed request (with usage) read to
//!   `[DONE]`, straight to the mock and through the gateway,
//! - `http/gateway_plain_cache_hit`: the plain request answered from the gateway's memory cache.
//!   The cache runs `mode: default_off`, so only this benchmark's requests (which send
//!   `cache: {use-cache: true}`) use it and the others measure the uncached path.
//!
//! The gateway runs as `tollgate serve` would: master key checked, every request priced and
//! recorded to SQLite and JSONL in a temp data dir.
//!
//! Pure group: the hot functions the gateway calls on every request.
//!
//! `cargo bench -p tollgate-gateway --bench request_path`; under `cargo test` every benchmark runs
//! once as a smoke test.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Map, Value, json};
use tollgate_core::PriceTable;
use tollgate_gateway::{LiveState, ServeOptions};
use tollgate_providers::sse::inspect_chunk;
use tollgate_providers::usage::normalize_openai_usage;

const MASTER_KEY: &str = "sk-bench-7f3a9c1e5b2d4f6a8c0e1b3d5f7a9c2e";
const MODEL: &str = "deepseek-v3.2";

fn config_yaml(mock_base: &str) -> String {
    format!(
        "model_list:\n  - model_name: {MODEL}\n    litellm_params:\n      model: deepseek/deepseek-v3.2\n      api_base: {mock_base}\n      api_key: bench-upstream-key\nlitellm_settings:\n  cache: true\n  cache_params: {{type: local, mode: default_off}}\ngeneral_settings:\n  master_key: {MASTER_KEY}\n"
    )
}

/// A chat request of about `target` bytes: a system prompt and a user turn padded with prose.
fn chat_body(target: usize, stream: bool) -> Value {
    let system = "You are a careful coding assistant inside an editor. Answer briefly and cite the files you change.";
    let mut user = String::from("Add input validation to parse_config in src/config.rs and cover it with tests. ");
    let filler = "The editor context follows: fn parse_config(text: &str) -> Result<Config, Error> { todo!() } ";
    let mut body = json!({
        "model": MODEL,
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": user.clone()},
        ],
        "temperature": 0.2,
        "max_tokens": 256,
    });
    while serde_json::to_vec(&body).map(|b| b.len()).unwrap_or(0) + filler.len() <= target {
        user.push_str(filler);
        body["messages"][1]["content"] = Value::String(user.clone());
    }
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

struct Rig {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
    mock_url: String,
    gateway_url: String,
    gateway: Option<tollgate_gateway::RunningGateway>,
    mock: tokio::task::JoinHandle<std::io::Result<()>>,
    _tmp: tempfile::TempDir,
}

impl Rig {
    fn start() -> Rig {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let tmp = tempfile::tempdir().expect("temp dir");
        let data_dir = tmp.path().join("data");
        let (mock, mock_addr, gateway) = rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind mock");
            let mock_addr = listener.local_addr().expect("mock addr");
            let mock = tokio::spawn(tollgate_mock::serve(listener, tollgate_mock::MockConfig::default()));
            let env = BTreeMap::new();
            let cfg = tollgate_core::config::parse(
                &config_yaml(&format!("http://{mock_addr}/v1")),
                Path::new("bench-config.yaml"),
                &env,
            )
            .expect("config");
            let live = LiveState::build(cfg, 1, None, &env).expect("live state");
            let opts = ServeOptions {
                port: 0,
                data_dir: data_dir.clone(),
                log_jsonl: Some(data_dir.join("records.jsonl")),
                ..ServeOptions::default()
            };
            let gw = tollgate_gateway::start(live, opts).await.expect("gateway");
            (mock, mock_addr, gw)
        });
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(16)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        Rig {
            mock_url: format!("http://{mock_addr}/v1/chat/completions"),
            gateway_url: format!("http://{}/v1/chat/completions", gateway.addr),
            gateway: Some(gateway),
            mock,
            rt,
            client,
            _tmp: tmp,
        }
    }

    fn stop(mut self) {
        if let Some(gw) = self.gateway.take() {
            let summary = self.rt.block_on(gw.shutdown()).expect("writer shutdown");
            assert_eq!(summary.failed, 0, "record writes failed: {summary:?}");
        }
        self.mock.abort();
    }
}

async fn plain(client: &reqwest::Client, url: &str, body: &[u8]) -> usize {
    let resp = client
        .post(url)
        .bearer_auth(MASTER_KEY)
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .expect("send");
    assert!(resp.status().is_success(), "HTTP {}", resp.status());
    resp.bytes().await.expect("body").len()
}

/// Reads a stream to the end; returns (bytes, HTTP body chunks the client received).
async fn streamed(client: &reqwest::Client, url: &str, body: &[u8]) -> (usize, usize) {
    let mut resp = client
        .post(url)
        .bearer_auth(MASTER_KEY)
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .expect("send");
    assert!(resp.status().is_success(), "HTTP {}", resp.status());
    let (mut n, mut chunks) = (0, 0);
    let mut tail: Vec<u8> = Vec::new();
    while let Some(chunk) = resp.chunk().await.expect("chunk") {
        n += chunk.len();
        chunks += 1;
        tail.extend_from_slice(&chunk);
        if tail.len() > 64 {
            tail.drain(..tail.len() - 64);
        }
    }
    assert!(
        String::from_utf8_lossy(&tail).contains("[DONE]"),
        "stream did not end with [DONE]"
    );
    (n, chunks)
}

fn http_benches(c: &mut Criterion) {
    let rig = Rig::start();
    let plain_body = serde_json::to_vec(&chat_body(1024, false)).expect("encode");
    let stream_body = serde_json::to_vec(&chat_body(1024, true)).expect("encode");
    let mut cached = chat_body(1024, false);
    cached["cache"] = json!({"use-cache": true});
    let cached_body = serde_json::to_vec(&cached).expect("encode");
    // Warm the connection pools (client → mock, client → gateway, gateway → mock) and report
    // what one exchange looks like.
    let (resp_plain, direct_stream, resp_stream) = rig.rt.block_on(async {
        plain(&rig.client, &rig.mock_url, &plain_body).await;
        // Fills the cache entry the cache-hit benchmark reads.
        plain(&rig.client, &rig.gateway_url, &cached_body).await;
        (
            plain(&rig.client, &rig.gateway_url, &plain_body).await,
            streamed(&rig.client, &rig.mock_url, &stream_body).await,
            streamed(&rig.client, &rig.gateway_url, &stream_body).await,
        )
    });
    // The cache-hit benchmark must measure hits, not misses.
    let cache_state = rig.rt.block_on(async {
        let r = rig
            .client
            .post(&rig.gateway_url)
            .bearer_auth(MASTER_KEY)
            .header("content-type", "application/json")
            .body(cached_body.clone())
            .send()
            .await
            .expect("send");
        r.headers()
            .get("x-tollgate-cache")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    });
    assert_eq!(cache_state, "hit", "the cache-hit benchmark would not hit the cache");
    let events = rig.rt.block_on(async {
        let text = rig
            .client
            .post(&rig.gateway_url)
            .bearer_auth(MASTER_KEY)
            .header("content-type", "application/json")
            .body(stream_body.clone())
            .send()
            .await
            .expect("send")
            .text()
            .await
            .expect("body");
        text.matches("data: ").count()
    });
    eprintln!(
        "request_path: request body {} B (stream {} B); gateway answer {} B plain, {} B streamed in {} SSE events; \
         the client read the stream in {} HTTP body chunks from the mock, {} through the gateway",
        plain_body.len(),
        stream_body.len(),
        resp_plain,
        resp_stream.0,
        events,
        direct_stream.1,
        resp_stream.1
    );

    let mut g = c.benchmark_group("http");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    g.bench_function("direct_mock_plain", |b| {
        b.to_async(&rig.rt)
            .iter(|| plain(&rig.client, &rig.mock_url, &plain_body))
    });
    g.bench_function("gateway_plain", |b| {
        b.to_async(&rig.rt)
            .iter(|| plain(&rig.client, &rig.gateway_url, &plain_body))
    });
    g.bench_function("gateway_plain_cache_hit", |b| {
        b.to_async(&rig.rt)
            .iter(|| plain(&rig.client, &rig.gateway_url, &cached_body))
    });
    g.bench_function("direct_mock_stream", |b| {
        b.to_async(&rig.rt)
            .iter(|| streamed(&rig.client, &rig.mock_url, &stream_body))
    });
    g.bench_function("gateway_stream", |b| {
        b.to_async(&rig.rt)
            .iter(|| streamed(&rig.client, &rig.gateway_url, &stream_body))
    });
    g.finish();
    rig.stop();
}

fn pure_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("pure");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));

    // A DeepSeek answer's usage: cache hit fields, reasoning details.
    let usage = json!({
        "prompt_tokens": 1834, "completion_tokens": 412, "total_tokens": 2246,
        "prompt_tokens_details": {"cached_tokens": 1536},
        "completion_tokens_details": {"reasoning_tokens": 190},
        "prompt_cache_hit_tokens": 1536, "prompt_cache_miss_tokens": 298
    });
    let price = PriceTable::builtin()
        .lookup("deepseek/deepseek-v3.2")
        .cloned()
        .expect("deepseek is in the built-in price table");
    g.bench_function("normalize_usage_and_cost", |b| {
        b.iter_batched(
            || usage.clone(),
            |mut u| {
                let parsed = normalize_openai_usage(&mut u);
                black_box(price.cost(&parsed.usage));
                u
            },
            BatchSize::SmallInput,
        )
    });

    let content_chunk = r#"{"id":"chatcmpl-5f0c2a","object":"chat.completion.chunk","created":1767225600,"model":"deepseek-v3.2","choices":[{"index":0,"delta":{"content":" the parser now rejects"},"logprobs":null,"finish_reason":null}],"usage":null}"#;
    let usage_chunk = r#"{"id":"chatcmpl-5f0c2a","object":"chat.completion.chunk","created":1767225600,"model":"deepseek-v3.2","choices":[],"usage":{"prompt_tokens":1834,"completion_tokens":412,"total_tokens":2246,"prompt_tokens_details":{"cached_tokens":1536},"completion_tokens_details":{"reasoning_tokens":190},"prompt_cache_hit_tokens":1536,"prompt_cache_miss_tokens":298}}"#;
    g.bench_function("inspect_chunk_content", |b| {
        b.iter(|| inspect_chunk(black_box(content_chunk)))
    });
    g.bench_function("inspect_chunk_usage", |b| {
        b.iter(|| inspect_chunk(black_box(usage_chunk)))
    });

    // What the gateway does with every request body: parse to a map, rewrite `model`, drop the
    // gateway-only fields, serialise again for the upstream.
    let body16k = serde_json::to_vec(&chat_body(16 * 1024, false)).expect("encode");
    g.throughput(Throughput::Bytes(body16k.len() as u64));
    g.bench_function("body_16k_parse_reserialize", |b| {
        b.iter(|| {
            let mut m: Map<String, Value> = serde_json::from_slice(black_box(&body16k)).expect("parse");
            m.insert("model".into(), Value::String("deepseek-v3.2-upstream".into()));
            m.remove("metadata");
            serde_json::to_vec(&m).expect("encode")
        })
    });
    // The gateway also fingerprints the answer-deciding fields (serialise them again, SHA-256);
    // this mirrors `chat::fingerprint`, which is private.
    let parsed: Map<String, Value> = serde_json::from_slice(&body16k).expect("parse");
    g.bench_function("body_16k_fingerprint", |b| {
        b.iter(|| {
            let mut canonical = br#"{"model":"deepseek-v3.2"}"#.to_vec();
            for k in ["messages", "temperature", "max_tokens"] {
                if let Some(v) = parsed.get(k) {
                    canonical.extend_from_slice(k.as_bytes());
                    canonical.push(b'=');
                    serde_json::to_writer(&mut canonical, v).expect("encode");
                    canonical.push(b'\n');
                }
            }
            tollgate_core::record::prompt_sha256(black_box(&canonical))
        })
    });
    g.finish();
}

criterion_group!(benches, pure_benches, http_benches);
criterion_main!(benches);
