//! Fault injection over real HTTP: clients that make mistakes or leave, and upstreams that
//! reset, hang, stall or answer garbage. No client may hurt another, and every request is
//! accounted, broken ones included.

use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use tollgate_core::{Fault, Record, RecordStatus};
use tollgate_mock::MockConfig;

mod common;
use common::{KEY, eventually, gateway, gateway_opts, start_mock, start_mock_with};

fn model(name: &str, mock: SocketAddr, extra: &str) -> String {
    format!(
        "  - model_name: {name}\n    litellm_params:\n      model: openai/{name}\n      api_base: http://{mock}/v1\n      api_key: k\n      input_cost_per_token: 0.000001\n      output_cost_per_token: 0.000002\n{extra}"
    )
}

fn config(models: &[String], router: &str) -> String {
    format!(
        "model_list:\n{}router_settings:\n  num_retries: 0\n{router}general_settings:\n  master_key: {KEY}\n",
        models.concat()
    )
}

/// Cooldown after the second deployment fault, for a minute: long enough that a test would see
/// it, if anything tripped it.
const TRIGGER_HAPPY: &str = "  allowed_fails: 1\n  cooldown_time: 60\n";

/// The records of requests as answered, without the per-attempt records a failed request also
/// leaves (same request id, numbered `attempt`).
fn answered(records: &[Record]) -> Vec<&Record> {
    let mut by_request: std::collections::BTreeMap<&str, &Record> = Default::default();
    for r in records {
        let slot = by_request.entry(r.request_id.as_str()).or_insert(r);
        // A request that failed before any attempt succeeded has its own record, unnumbered.
        if r.attempt.is_none() {
            *slot = r;
        }
    }
    by_request.into_values().collect()
}

fn ask(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Refactor the parser"}]})
}

fn ask_stream(model: &str) -> Value {
    json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "Write a long story about parsers"}]})
}

#[tokio::test]
async fn client_mistakes_never_cool_a_deployment_down() {
    let mock = start_mock(&["broken=1.0:500"]).await;
    let g = gateway(&config(
        &[model("m", mock, ""), model("broken", mock, "")],
        TRIGGER_HAPPY,
    ))
    .await;
    // A malformed body: the provider refuses it with a 400, four times in a row.
    for _ in 0..4 {
        let mut bad = ask("m");
        bad["max_tokens"] = json!("lots");
        let r = g.chat(bad).await;
        assert_eq!(r.status(), 400);
    }
    let r = g.chat(ask("m")).await;
    assert_eq!(r.status(), 200, "another client's mistakes must not take `m` down");

    // The control: the deployment's own faults do cool it down, so the test can see a cooldown.
    assert_eq!(g.chat(ask("broken")).await.status(), 500);
    assert_eq!(g.chat(ask("broken")).await.status(), 500);
    let r = g.chat(ask("broken")).await;
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "no_deployment_available");

    let all = g.records().await;
    let records = answered(&all);
    let faults = |status: u16| -> Vec<Option<Fault>> {
        records
            .iter()
            .filter(|r| r.http_status == status)
            .map(|r| r.fault)
            .collect()
    };
    assert_eq!(faults(400), vec![Some(Fault::Client); 4]);
    assert_eq!(faults(500), vec![Some(Fault::Deployment); 2]);
    assert!(
        records
            .iter()
            .filter(|r| r.http_status == 200)
            .all(|r| r.fault.is_none())
    );
}

type Body = std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// Opens a stream and reads until the first words of the answer: what was read, and the rest.
async fn stream_until_first_words(g: &common::Gw, model: &str) -> (Vec<u8>, Body) {
    let r = g.chat(ask_stream(model)).await;
    assert_eq!(r.status(), 200);
    let mut body: Body = Box::pin(r.bytes_stream());
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("Mock answer") {
        seen.extend_from_slice(&body.next().await.unwrap().unwrap());
    }
    (seen, body)
}

/// Opens a stream, reads until the first words of the answer and hangs up.
async fn cancel_after_first_words(g: &common::Gw, model: &str) {
    drop(stream_until_first_words(g, model).await);
}

#[tokio::test]
async fn cancelled_streams_never_cool_a_deployment_down_and_are_billed_for_what_was_sent() {
    // Chunks 50 ms apart: the client leaves while the answer is still coming.
    let mock = start_mock_with(
        &[],
        MockConfig {
            chunk_delay_ms: 50,
            ..Default::default()
        },
    )
    .await;
    let g = gateway(&config(&[model("m", mock, "")], TRIGGER_HAPPY)).await;
    for _ in 0..3 {
        cancel_after_first_words(&g, "m").await;
    }
    eventually("three cancelled streams recorded", Duration::from_secs(10), || async {
        g.jsonl_so_far().iter().filter(|r| r.http_status == 499).count() == 3
    })
    .await;
    let r = g.chat(ask("m")).await;
    assert_eq!(r.status(), 200, "clients hanging up must not take `m` down");

    let records = g.records().await;
    let cancelled: Vec<&Record> = records.iter().filter(|r| r.http_status == 499).collect();
    assert_eq!(cancelled.len(), 3);
    for r in cancelled {
        assert_eq!(r.fault, Some(Fault::Client));
        assert_eq!(r.status, RecordStatus::Failure);
        // What was relayed before the client left is billed by the provider: accounted, marked
        // as an estimate, and priced.
        assert!(r.usage_estimated, "{r:?}");
        assert!(r.prompt_tokens > 0 && r.completion_tokens > 0, "{r:?}");
        let expected = r.prompt_tokens as f64 * 1e-6 + r.completion_tokens as f64 * 2e-6;
        assert!((r.cost_usd.unwrap() - expected).abs() < 1e-12, "{r:?}");
    }
}

#[tokio::test]
async fn a_broken_stream_is_estimated_from_every_chunk_relayed_also_those_not_parsed() {
    // Text-only chunks after the first token are relayed without being parsed; if the stream
    // breaks, the estimate must still count all of them: 3 bytes a token, per bucket.
    let mock = start_mock(&["resets=1.0:reset"]).await;
    let g = gateway(&config(&[model("resets", mock, "")], "")).await;
    let text = g.chat(ask_stream("resets")).await.text().await.unwrap();
    let (mut content, mut reasoning, mut chunks) = (0u64, 0u64, 0);
    for line in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if v["object"] != "chat.completion.chunk" {
            continue;
        }
        chunks += 1;
        let d = &v["choices"][0]["delta"];
        content += d["content"].as_str().map_or(0, |s| s.len() as u64);
        reasoning += d["reasoning_content"].as_str().map_or(0, |s| s.len() as u64);
    }
    assert!(chunks >= 5 && content + reasoning > 0, "{text}");
    let all = g.records().await;
    let r = answered(&all)[0];
    assert!(r.usage_estimated, "{r:?}");
    let asked = ask_stream("resets");
    let prompt =
        tollgate_providers::context_window::estimate_input_tokens_raw(Some(&asked["messages"].to_string()), None, None);
    assert!(prompt > 0);
    assert_eq!(r.prompt_tokens, prompt, "{r:?}");
    assert_eq!(r.reasoning_tokens, reasoning.div_ceil(3), "{r:?}");
    assert_eq!(
        r.completion_tokens,
        content.div_ceil(3) + reasoning.div_ceil(3),
        "{r:?}"
    );
}

#[tokio::test]
async fn an_upstream_reset_mid_stream_ends_with_an_error_event_and_is_accounted() {
    let mock = start_mock(&["resets=1.0:reset"]).await;
    let g = gateway(&config(&[model("resets", mock, "")], "")).await;
    let r = g.chat(ask_stream("resets")).await;
    assert_eq!(r.status(), 200, "the first events arrived, so the stream had started");
    let text = r.text().await.unwrap();
    assert!(text.contains("chat.completion.chunk"), "{text}");
    assert!(
        text.contains("upstream_stream_broken"),
        "an error event, not a clean end: {text}"
    );
    assert!(!text.contains("[DONE]"), "{text}");
    let all = g.records().await;
    let records = answered(&all);
    assert_eq!(records.len(), 1);
    let r = records[0];
    assert_eq!(r.status, RecordStatus::Failure);
    assert_eq!(r.fault, Some(Fault::Deployment));
    assert!(
        r.usage_estimated && r.completion_tokens > 0 && r.cost_usd.unwrap() > 0.0,
        "{r:?}"
    );
}

#[tokio::test]
async fn an_upstream_that_never_answers_or_stalls_is_cut_at_its_timeout() {
    let mock = start_mock(&["hangs=1.0:timeout", "stalls=1.0:stall"]).await;
    let timeouts = "      timeout: 0.4\n      stream_timeout: 0.4\n";
    let g = gateway(&config(
        &[model("hangs", mock, timeouts), model("stalls", mock, timeouts)],
        "",
    ))
    .await;
    for body in [ask("hangs"), ask_stream("hangs")] {
        let r = g.chat(body).await;
        assert_eq!(r.status(), 504);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "upstream_timeout");
    }
    // A stream that started, then went silent: ended with an error event at the timeout.
    let r = g.chat(ask_stream("stalls")).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("did not answer within"), "{text}");
    assert!(!text.contains("[DONE]"), "{text}");
    let all = g.records().await;
    let records = answered(&all);
    assert_eq!(records.len(), 3);
    assert!(all.iter().all(|r| r.fault == Some(Fault::Deployment)), "{all:?}");
    let stalled = records.iter().find(|r| r.model_group == "stalls").unwrap();
    assert!(stalled.usage_estimated && stalled.completion_tokens > 0, "{stalled:?}");
}

#[tokio::test]
async fn garbage_and_resets_from_the_upstream_are_openai_errors_never_panics() {
    let mock = start_mock(&["junk=1.0:garbage", "resets=1.0:reset"]).await;
    let g = gateway(&config(&[model("junk", mock, ""), model("resets", mock, "")], "")).await;
    let r = g.chat(ask("junk")).await;
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_bad_response");
    let r = g.chat(ask("resets")).await;
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "upstream_error");
    // A stream whose events turn to garbage: relayed as they came (the OpenAI family is passed
    // through), then ended with an error event because no [DONE] came.
    let r = g.chat(ask_stream("junk")).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("upstream_stream_truncated"), "{text}");
    // The gateway still serves.
    assert_eq!(g.chat(ask_stream("junk")).await.status(), 200);
    let all = g.records().await;
    assert_eq!(answered(&all).len(), 4);
    assert!(
        all.iter()
            .all(|r| r.status == RecordStatus::Failure && r.fault == Some(Fault::Deployment))
    );
}

#[tokio::test]
async fn hostile_request_fields_are_bounded_or_refused() {
    let mock = start_mock(&[]).await;
    let g = gateway(&config(&[model("m", mock, "")], "")).await;
    // A 10 KB model name is not echoed back.
    let long = "x".repeat(10_000);
    let r = g.chat(ask(&long)).await;
    assert_eq!(r.status(), 404);
    let text = r.text().await.unwrap();
    assert!(text.len() < 600, "{} bytes: {text}", text.len());
    // An empty conversation is refused here, not forwarded.
    let r = g.chat(json!({"model": "m", "messages": []})).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["param"], "messages");
    let stats: Value = reqwest::get(format!("http://{mock}/mock/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats, json!({}), "nothing reached the provider");
    // A 16 KB session id is stored bounded.
    let r = g
        .http
        .post(format!("{}/v1/chat/completions", g.base))
        .bearer_auth(KEY)
        .header("x-session-id", "s".repeat(16_000))
        .json(&ask("m"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let records = g.records().await;
    let ok = records.iter().find(|r| r.http_status == 200).unwrap();
    assert_eq!(ok.session_id.as_ref().unwrap().len(), 256);
    let not_found = records.iter().find(|r| r.http_status == 404).unwrap();
    assert!(not_found.model_group.len() <= 256);
    assert!(not_found.error_message.as_ref().unwrap().len() < 300);
}

#[tokio::test]
async fn an_unreachable_upstream_says_each_cause_once() {
    // A port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let g = gateway(&config(&[model("gone", closed, "")], "")).await;
    let r = g.chat(ask("gone")).await;
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    let message = v["error"]["message"].as_str().unwrap().to_ascii_lowercase();
    assert_eq!(v["error"]["code"], "upstream_unreachable");
    assert_eq!(message.matches("connection refused").count(), 1, "{message}");
    g.records().await;
}

#[tokio::test]
async fn a_stream_still_running_when_the_shutdown_grace_ends_is_ended_truthfully_and_recorded() {
    // 200 ms between chunks: the answer takes seconds, far past the 300 ms grace period.
    let mock = start_mock_with(
        &[],
        MockConfig {
            chunk_delay_ms: 200,
            ..Default::default()
        },
    )
    .await;
    let g = gateway_opts(&config(&[model("m", mock, "")], ""), |o| {
        o.shutdown_grace = Duration::from_millis(300)
    })
    .await;
    let (mut seen, mut body) = stream_until_first_words(&g, "m").await;
    let reader = tokio::spawn(async move {
        while let Some(Ok(chunk)) = body.next().await {
            seen.extend_from_slice(&chunk);
        }
        String::from_utf8(seen).unwrap()
    });
    let dir = g.dir.path().to_path_buf();
    let summary = g.gw.shutdown().await.unwrap();
    let text = reader.await.unwrap();
    assert!(
        text.contains("gateway_shutting_down"),
        "an error event, not a silent cut: {text}"
    );
    assert!(!text.contains("[DONE]"), "{text}");
    assert_eq!((summary.written, summary.dropped), (1, 0), "{summary:?}");
    let records: Vec<Record> = tollgate_store::read_sqlite(&dir.join("data"))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(
        (r.status, r.http_status, r.fault),
        (RecordStatus::Failure, 503, Some(Fault::Gateway))
    );
    assert!(r.usage_estimated && r.completion_tokens > 0, "{r:?}");
}

#[tokio::test]
async fn readiness_shows_where_files_live_only_to_the_master_key() {
    let mock = start_mock(&[]).await;
    let g = gateway(&config(&[model("m", mock, "")], "")).await;
    let dir = g.dir.path().display().to_string();
    let open: Value = g.readiness().await;
    let text = open.to_string();
    assert!(
        !text.contains(&dir),
        "absolute paths reached an unauthenticated caller: {text}"
    );
    assert_eq!(open["config_path"], "config.yaml");
    assert_eq!(open["store"]["sqlite"], "tollgate.sqlite");
    let full: Value = serde_json::from_str(&g.get_text("/health/readiness", true).await).unwrap();
    assert!(full["config_path"].as_str().unwrap().starts_with(&dir), "{full}");
    g.records().await;
}

#[tokio::test]
async fn a_plain_request_whose_client_leaves_is_recorded_once() {
    let mock = start_mock_with(
        &[],
        MockConfig {
            delay_ms: 400,
            ..Default::default()
        },
    )
    .await;
    let g = gateway(&config(&[model("m", mock, "")], "")).await;
    // The client gives up while the gateway waits on the provider.
    let r = g
        .http
        .post(format!("{}/v1/chat/completions", g.base))
        .bearer_auth(KEY)
        .timeout(Duration::from_millis(100))
        .json(&ask("m"))
        .send()
        .await;
    assert!(r.is_err_and(|e| e.is_timeout()));
    eventually("the abandoned request recorded", Duration::from_secs(10), || async {
        !g.jsonl_so_far().is_empty()
    })
    .await;
    let in_flight = g.gw.app.live.load().groups["m"].deployments[0].stats.in_flight();
    assert_eq!(in_flight, 0, "the abandoned attempt no longer counts as in flight");
    let records = g.records().await;
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(
        (r.http_status, r.fault, r.status),
        (499, Some(Fault::Client), RecordStatus::Failure)
    );
}
