//! `general_settings.global_max_parallel_requests` over real HTTP: past the cap a request is
//! refused at once (429, OpenAI's shape, `retry-after`), and every way a request can end gives
//! its slot back: an answer, a stream's end, a client that leaves. Waits poll readiness with a
//! generous deadline, so a slow machine makes a test slower, never wrong.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use tollgate_core::{Fault, RecordStatus};
use tollgate_mock::MockConfig;

mod common;
use common::{Gw, KEY, eventually, gateway, start_mock_with};

const DEADLINE: Duration = Duration::from_secs(15);

/// How long the mock takes to answer: long enough that requests overlap for certain, also on a
/// busy machine.
const SLOW_MS: u64 = 1000;

fn config(mock: SocketAddr, general: &str) -> String {
    format!(
        "model_list:\n  - model_name: m\n    litellm_params:\n      model: openai/m\n      api_base: http://{mock}/v1\n      api_key: k\n      input_cost_per_token: 0.000001\n      output_cost_per_token: 0.000002\ngeneral_settings:\n  master_key: {KEY}\n{general}"
    )
}

async fn slow_mock(delay_ms: u64) -> SocketAddr {
    start_mock_with(
        &[],
        MockConfig {
            delay_ms,
            ..Default::default()
        },
    )
    .await
}

fn ask() -> Value {
    json!({"model": "m", "messages": [{"role": "user", "content": "Refactor the parser"}]})
}

/// A stream of a few chunks: the mock sends four words a chunk, `max_tokens` of them.
fn ask_stream() -> Value {
    json!({"model": "m", "stream": true, "max_tokens": 20, "messages": [{"role": "user", "content": "Write a story about parsers"}]})
}

/// Readiness's `in_flight`, as `(requests, max)`.
async fn in_flight(g: &Gw) -> (u64, Option<u64>) {
    let v = g.readiness().await;
    (
        v["in_flight"]["requests"].as_u64().unwrap(),
        v["in_flight"]["max"].as_u64(),
    )
}

async fn wait_in_flight(g: &Gw, n: u64) {
    eventually(&format!("{n} requests in flight"), DEADLINE, || async {
        in_flight(g).await.0 == n
    })
    .await;
}

/// A request sent in the background, answered with its status.
fn send_in_background(g: &Gw, path: &str, body: Value) -> tokio::task::JoinHandle<u16> {
    let req = g.http.post(format!("{}{path}", g.base)).bearer_auth(KEY).json(&body);
    tokio::spawn(async move { req.send().await.unwrap().status().as_u16() })
}

/// The refusal a full gateway answers with, checked in full; returns how long it took.
async fn assert_refused(g: &Gw, path: &str, body: Value) -> Duration {
    let t = Instant::now();
    let r = g.post(path, body).await;
    let took = t.elapsed();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    assert!(
        r.headers().contains_key("x-tollgate-request-id"),
        "refusals are recorded"
    );
    let v: Value = r.json().await.unwrap();
    let e = &v["error"];
    assert_eq!(e["type"], "rate_limit_error", "{v}");
    assert_eq!(e["code"], "global_max_parallel_requests", "{v}");
    assert!(e["param"].is_null(), "{v}");
    let msg = e["message"].as_str().unwrap();
    assert!(
        msg.contains("general_settings.global_max_parallel_requests: 2"),
        "{msg}"
    );
    took
}

fn refused_total(metrics: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with("tollgate_requests_refused_total{reason=\"global_max_parallel_requests\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no refusal counter in:\n{metrics}"))
}

#[tokio::test]
async fn past_the_cap_requests_are_refused_at_once_and_the_slots_come_back() {
    let mock = slow_mock(SLOW_MS).await;
    let g = gateway(&config(mock, "  global_max_parallel_requests: 2\n")).await;
    assert_eq!(in_flight(&g).await, (0, Some(2)));
    assert_eq!(refused_total(&g.get_text("/metrics", false).await), 0.0);

    let first = send_in_background(&g, "/v1/chat/completions", ask());
    let second = send_in_background(&g, "/v1/chat/completions", ask());
    wait_in_flight(&g, 2).await;
    // Both endpoints share the cap; the refusal comes at once, not after a slot frees up.
    let took = assert_refused(&g, "/v1/chat/completions", ask()).await;
    assert!(
        took < Duration::from_millis(SLOW_MS / 2),
        "refused in {took:?}, not queued"
    );
    assert_refused(
        &g,
        "/v1/embeddings",
        json!({"model": "m", "input": "the parser is slow"}),
    )
    .await;
    assert_eq!(in_flight(&g).await.0, 2, "refused requests never held a slot");

    assert_eq!((first.await.unwrap(), second.await.unwrap()), (200, 200));
    wait_in_flight(&g, 0).await;
    assert_eq!(g.chat(ask()).await.status(), 200, "the slots came back");
    let metrics = g.get_text("/metrics", false).await;
    assert_eq!(refused_total(&metrics), 2.0);
    assert!(metrics.contains("tollgate_requests_in_flight 0"), "{metrics}");

    let records = g.records().await;
    assert_eq!(records.len(), 5, "{records:?}");
    let refused: Vec<_> = records.iter().filter(|r| r.http_status == 429).collect();
    assert_eq!(refused.len(), 2, "{records:?}");
    for r in refused {
        assert_eq!(r.status, RecordStatus::Failure);
        assert_eq!(
            r.fault,
            Some(Fault::Gateway),
            "the gateway is at capacity, not the client at fault"
        );
        assert_eq!(r.error_type.as_deref(), Some("rate_limit_error"));
        assert!(r.upstream_ms.is_none(), "no provider was asked: {r:?}");
    }
    assert_eq!(records.iter().filter(|r| r.http_status == 200).count(), 3);
}

#[tokio::test]
async fn a_stream_holds_its_slot_until_it_ends_or_its_client_leaves() {
    // Chunks 400 ms apart (a stream of a few seconds): still running while the next request comes.
    let mock = start_mock_with(
        &[],
        MockConfig {
            chunk_delay_ms: 400,
            ..Default::default()
        },
    )
    .await;
    let g = gateway(&config(mock, "  global_max_parallel_requests: 2\n")).await;
    let open_stream = || async {
        let r = g.chat(ask_stream()).await;
        assert_eq!(r.status(), 200);
        let mut body = Box::pin(r.bytes_stream());
        let mut seen = Vec::new();
        while !String::from_utf8_lossy(&seen).contains("Mock answer") {
            seen.extend_from_slice(&body.next().await.unwrap().unwrap());
        }
        (seen, body)
    };

    // Two streams past their headers and first words: the gateway is full.
    let (mut seen, mut finishing) = open_stream().await;
    let (_, leaving) = open_stream().await;
    assert_eq!(in_flight(&g).await.0, 2);
    assert_refused(&g, "/v1/chat/completions", ask_stream()).await;

    // One ends normally: its slot comes back once it is over.
    while let Some(chunk) = finishing.next().await {
        seen.extend_from_slice(&chunk.unwrap());
    }
    assert!(String::from_utf8_lossy(&seen).ends_with("data: [DONE]\n\n"));
    wait_in_flight(&g, 1).await;
    // The other's client hangs up midway: its slot comes back too.
    drop(leaving);
    wait_in_flight(&g, 0).await;

    let r = g.chat(ask_stream()).await;
    assert_eq!(r.status(), 200, "both slots came back");
    assert!(r.text().await.unwrap().ends_with("data: [DONE]\n\n"));
    let records = g.records().await;
    let statuses: Vec<u16> = records.iter().map(|r| r.http_status).collect();
    assert_eq!(records.len(), 4, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 499).count(), 1, "{statuses:?}");
}

#[tokio::test]
async fn a_plain_request_whose_client_leaves_gives_its_slot_back() {
    let mock = slow_mock(SLOW_MS).await;
    let g = gateway(&config(mock, "  global_max_parallel_requests: 1\n")).await;
    // The client gives up while the gateway waits on the provider.
    let r = g
        .http
        .post(format!("{}/v1/chat/completions", g.base))
        .bearer_auth(KEY)
        .timeout(Duration::from_millis(100))
        .json(&ask())
        .send()
        .await;
    assert!(r.is_err_and(|e| e.is_timeout()));
    wait_in_flight(&g, 0).await;
    assert_eq!(g.chat(ask()).await.status(), 200);
    let records = g.records().await;
    let statuses: Vec<u16> = records.iter().map(|r| r.http_status).collect();
    assert_eq!(statuses.len(), 2, "{statuses:?}");
    assert!(statuses.contains(&499) && statuses.contains(&200), "{statuses:?}");
}

#[tokio::test]
async fn without_the_setting_nothing_is_refused() {
    let mock = slow_mock(SLOW_MS).await;
    let g = gateway(&config(mock, "")).await;
    assert_eq!(in_flight(&g).await, (0, None));
    let many: Vec<_> = (0..12)
        .map(|_| send_in_background(&g, "/v1/chat/completions", ask()))
        .collect();
    // Counted all the same, so readiness shows the load a cap would have to carry.
    wait_in_flight(&g, 12).await;
    for r in many {
        assert_eq!(r.await.unwrap(), 200);
    }
    wait_in_flight(&g, 0).await;
    assert_eq!(refused_total(&g.get_text("/metrics", false).await), 0.0);
    g.records().await;
}

#[tokio::test]
async fn a_reloaded_cap_applies_to_new_requests() {
    // Slower still: the first request must outlast a reload and two checks.
    let mock = slow_mock(3 * SLOW_MS).await;
    let g = gateway(&config(mock, "  global_max_parallel_requests: 1\n")).await;
    let first = send_in_background(&g, "/v1/chat/completions", ask());
    wait_in_flight(&g, 1).await;
    assert_eq!(g.chat(ask()).await.status(), 429);

    let path = g.dir.path().join("config.yaml");
    std::fs::write(&path, config(mock, "  global_max_parallel_requests: 2\n")).unwrap();
    let reload = g.post("/admin/reload", json!({})).await;
    assert_eq!(reload.status(), 200, "{}", reload.text().await.unwrap());
    assert_eq!(
        in_flight(&g).await,
        (1, Some(2)),
        "the request in flight keeps its slot"
    );
    assert_eq!(g.chat(ask()).await.status(), 200, "the raised cap lets a second one in");
    assert_eq!(first.await.unwrap(), 200);

    // Removed: no cap at all.
    std::fs::write(&path, config(mock, "")).unwrap();
    assert_eq!(g.post("/admin/reload", json!({})).await.status(), 200);
    assert_eq!(in_flight(&g).await.1, None);
    g.records().await;
}

#[tokio::test]
async fn the_cap_is_named_in_the_startup_summary_only_when_set() {
    let mock = slow_mock(SLOW_MS).await;
    let limits_line = |g: &Gw| {
        tollgate_gateway::startup_summary(
            &g.gw.app.live.load(),
            "x",
            &tollgate_gateway::ServeOptions::default(),
            true,
        )
        .into_iter()
        .find(|l| l.trim_start().starts_with("limits:"))
        .unwrap()
    };
    let capped = gateway(&config(mock, "  global_max_parallel_requests: 64\n")).await;
    let l = limits_line(&capped);
    assert!(
        l.contains("at most 64 requests in flight (general_settings.global_max_parallel_requests"),
        "{l}"
    );
    let open = gateway(&config(mock, "")).await;
    let l = limits_line(&open);
    assert!(!l.contains("requests in flight"), "{l}");
}
