//! `GET /metrics` over real HTTP: the overhead histogram counts the requests that went through.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde_json::json;
use tollgate_gateway::{LiveState, ServeOptions};

const KEY: &str = "sk-test-0123456789abcdef";

async fn start_mock() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(tollgate_mock::serve(l, tollgate_mock::MockConfig::default()));
    addr
}

/// The value of the first sample line that starts with `prefix` (name plus labels).
fn sample(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no sample {prefix} in:\n{text}"))
}

#[tokio::test]
async fn metrics_expose_the_overhead_histogram_with_counts_after_requests() {
    let mock = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "model_list:\n  - model_name: deepseek-v3.2\n    litellm_params:\n      model: deepseek/deepseek-v3.2\n      api_base: http://{mock}/v1\n      api_key: upstream-key\ngeneral_settings:\n  master_key: {KEY}\n"
    );
    let env = BTreeMap::new();
    let cfg = tollgate_core::config::parse(&yaml, &dir.path().join("config.yaml"), &env).unwrap();
    let live = LiveState::build(cfg, 1, None, &env).unwrap();
    let gw = tollgate_gateway::start(
        live,
        ServeOptions {
            port: 0,
            data_dir: dir.path().join("data"),
            watch_config: false,
            ..ServeOptions::default()
        },
    )
    .await
    .unwrap();
    let base = format!("http://{}", gw.addr);
    let http = reqwest::Client::new();

    // Before any request: the series exist (so dashboards do not break) with zero counts.
    let before = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(before.status(), 200);
    assert!(
        before
            .headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let before = before.text().await.unwrap();
    assert!(
        before.contains("# TYPE tollgate_overhead_seconds histogram"),
        "{before}"
    );
    assert_eq!(sample(&before, "tollgate_requests_total"), 0.0);

    for i in 0..5 {
        let stream = i == 4;
        let mut body = json!({"model": "deepseek-v3.2", "messages": [{"role": "user", "content": format!("hi {i}")}]});
        if stream {
            body["stream"] = json!(true);
        }
        let resp = http
            .post(format!("{base}/v1/chat/completions"))
            .bearer_auth(KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
    }
    // A request that never reaches a provider counts as a request but has no overhead split.
    let bad = http
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&json!({"model": "nope", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 404);

    // A stream is recorded when its body ends, which can be a moment after the client saw [DONE].
    let mut text = String::new();
    for _ in 0..50 {
        text = http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if sample(&text, "tollgate_requests_total") >= 6.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(sample(&text, "tollgate_requests_total"), 6.0);
    assert_eq!(sample(&text, "tollgate_overhead_seconds_count{stream=\"false\"}"), 4.0);
    assert_eq!(sample(&text, "tollgate_overhead_seconds_count{stream=\"true\"}"), 1.0);
    assert_eq!(
        sample(&text, "tollgate_overhead_seconds_bucket{stream=\"false\",le=\"+Inf\"}"),
        4.0
    );
    assert!(sample(&text, "tollgate_overhead_seconds_sum{stream=\"false\"}") > 0.0);
    assert_eq!(sample(&text, "tollgate_upstream_seconds_count"), 5.0);
    gw.shutdown().await.unwrap();
}
