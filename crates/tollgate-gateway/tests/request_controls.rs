//! A request's own routing controls (`fallbacks`, `num_retries`, `timeout`, `x-litellm-timeout`)
//! and LiteLLM's test hooks (`mock_response`, `mock_testing_*`, `mock_timeout`), over real HTTP
//! with the mock as the provider.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tollgate_core::RecordStatus;

mod common;
use common::{Gw, KEY, call, gateway, start_mock, start_mock_with};

fn group(name: &str, mock: SocketAddr) -> String {
    format!(
        "  - model_name: {name}\n    litellm_params:\n      model: openai/{name}\n      api_base: http://{mock}/v1\n      api_key: k\n      input_cost_per_token: 0.000001\n      output_cost_per_token: 0.000002\n"
    )
}

/// Groups `broken` (always 500 when the mock is told so), `good` and `other`, no router fallbacks.
fn config(mock: SocketAddr, router: &str) -> String {
    format!(
        "model_list:\n{}{}{}router_settings:\n{router}general_settings:\n  master_key: {KEY}\n",
        group("broken", mock),
        group("good", mock),
        group("other", mock)
    )
}

fn ask(model: &str, extra: Value) -> Value {
    let mut body = json!({"model": model, "messages": [{"role": "user", "content": "Refactor the parser"}]});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

async fn mock_requests(mock: SocketAddr) -> u64 {
    let stats: BTreeMap<String, u64> = reqwest::get(format!("http://{mock}/mock/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    stats.values().sum()
}

#[tokio::test]
async fn fallbacks_from_the_body_replace_the_routers_in_both_forms() {
    let mock = start_mock(&["broken=1:500"]).await;
    let g = gateway(&config(mock, "  num_retries: 0\n")).await;
    for fallbacks in [json!(["good"]), json!([{"broken": ["good"]}])] {
        let r = g.chat(ask("broken", json!({"fallbacks": fallbacks}))).await;
        assert_eq!(r.status(), 200, "{fallbacks}");
        assert_eq!(header(&r, "x-litellm-attempted-fallbacks"), "1");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["model"], "good");
    }
    // Without them the router has none: the failure is the client's answer.
    let r = g.chat(ask("broken", json!({}))).await;
    assert_eq!(r.status(), 500);
    let records = g.records().await;
    let ok: Vec<_> = records.iter().filter(|r| r.status == RecordStatus::Success).collect();
    assert_eq!(ok.len(), 2);
    assert!(ok.iter().all(|r| r.model_group == "good" && r.attempt == Some(2)));
}

#[tokio::test]
async fn a_fallback_that_does_not_exist_or_the_key_may_not_call_is_refused_before_any_attempt() {
    let mock = start_mock(&[]).await;
    let g = gateway(&config(mock, "  num_retries: 0\n")).await;
    let r = g.chat(ask("good", json!({"fallbacks": ["nope"]}))).await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "invalid_fallback", "{e}");
    assert_eq!(e["error"]["param"], "fallbacks", "{e}");
    let r = g.chat(ask("good", json!({"fallbacks": "good"}))).await;
    assert_eq!(r.status(), 400);

    let (s, created) = call(&g, "POST", "/key/generate", KEY, Some(json!({"models": ["good"]}))).await;
    assert_eq!(s, 200, "{created}");
    let key = created["key"].as_str().unwrap();
    let (s, e) = call(
        &g,
        "POST",
        "/v1/chat/completions",
        key,
        Some(ask("good", json!({"fallbacks": ["other"]}))),
    )
    .await;
    assert_eq!(s, 401, "{e}");
    assert_eq!(e["error"]["code"], "key_model_access_denied", "{e}");
    let r = g
        .chat(ask("good", json!({"context_window_fallbacks": [{"good": ["nope"]}]})))
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(mock_requests(mock).await, 0, "nothing reached the provider");
}

#[tokio::test]
async fn num_retries_from_the_body_replaces_the_routers() {
    // `broken` fails every other request, starting with the first.
    let mock = start_mock(&["broken=0.5:500"]).await;
    let g = gateway(&config(mock, "  num_retries: 0\n  retry_after: 0\n")).await;
    let r = g.chat(ask("broken", json!({"num_retries": 1}))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-litellm-attempted-retries"), "1");
    let r = g.chat(ask("broken", json!({"num_retries": 0}))).await;
    assert_eq!(r.status(), 500);
    assert_eq!(header(&r, "x-tollgate-attempts"), "1");
    let r = g.chat(ask("broken", json!({"num_retries": -2}))).await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn a_timeout_from_the_header_or_the_body_cuts_the_wait() {
    let mock = start_mock_with(
        &[],
        tollgate_mock::MockConfig {
            delay_ms: 3000,
            ..Default::default()
        },
    )
    .await;
    let g = gateway(&config(mock, "  num_retries: 0\n")).await;
    let t = Instant::now();
    let r = g
        .http
        .post(format!("{}/v1/chat/completions", g.base))
        .bearer_auth(KEY)
        .header("x-litellm-timeout", "0.2")
        .json(&ask("good", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["type"], "timeout", "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("0.2 s"), "{e}");

    let t = Instant::now();
    let r = g.chat(ask("good", json!({"timeout": 0.2, "stream": true}))).await;
    assert_eq!(r.status(), 504);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

async fn stream_text(r: reqwest::Response) -> (String, Value) {
    let text = r.text().await.unwrap();
    let mut content = String::new();
    let mut usage = Value::Null;
    for line in text.lines() {
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        if data == "[DONE]" {
            continue;
        }
        let v: Value = serde_json::from_str(data).unwrap();
        if let Some(c) = v["choices"][0]["delta"]["content"].as_str() {
            content.push_str(c);
        }
        if !v["usage"].is_null() {
            usage = v["usage"].clone();
        }
    }
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    (content, usage)
}

#[tokio::test]
async fn mock_response_answers_plain_and_streamed_priced_and_recorded_as_mocked() {
    let mock = start_mock(&[]).await;
    let g = gateway(&config(mock, "  num_retries: 0\n")).await;
    let r = g.chat(ask("good", json!({"mock_response": "It is mocked."}))).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "It is mocked.");
    assert_eq!(v["model"], "good");
    assert_eq!(v["usage"]["completion_tokens"], 5, "13 bytes at 3 per token: {v}");
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0, "{v}");

    let r = g
        .chat(ask(
            "good",
            json!({"mock_response": "It is mocked.", "stream": true, "stream_options": {"include_usage": true}}),
        ))
        .await;
    assert_eq!(r.status(), 200);
    let (content, usage) = stream_text(r).await;
    assert_eq!(content, "It is mocked.");
    assert_eq!(usage["completion_tokens"], 5, "{usage}");

    let r = g
        .chat(ask("good", json!({"mock_response": "litellm.RateLimitError"})))
        .await;
    assert_eq!(r.status(), 429);
    let r = g.chat(ask("good", json!({"mock_response": 7}))).await;
    assert_eq!(r.status(), 400);
    assert_eq!(mock_requests(mock).await, 0, "nothing reached the provider");

    let (records, jsonl) = g.records_and_jsonl().await;
    let ok: Vec<_> = records.iter().filter(|r| r.status == RecordStatus::Success).collect();
    assert_eq!(ok.len(), 2);
    for r in &ok {
        assert!(r.mocked, "{r:?}");
        assert_eq!((r.model_group.as_str(), r.provider.as_str()), ("good", "openai"));
        assert_eq!(r.completion_tokens, 5);
        let expected = r.prompt_tokens as f64 * 1e-6 + 5.0 * 2e-6;
        assert!((r.cost_usd.unwrap() - expected).abs() < 1e-12, "{r:?}");
    }
    assert_eq!(jsonl.matches("\"mocked\":true").count(), 2, "{jsonl}");
    // The failed one was not answered by a hook: no `mocked` on its line.
    let failed = records.iter().find(|r| r.http_status == 429).unwrap();
    assert!(!failed.mocked);
}

#[tokio::test]
async fn mock_testing_fallbacks_fails_the_requested_group_so_its_fallbacks_run() {
    let mock = start_mock(&[]).await;
    let g = gateway(&config(
        mock,
        "  num_retries: 1\n  retry_after: 0\n  fallbacks:\n    - broken: [good]\n",
    ))
    .await;
    let r = g.chat(ask("broken", json!({"mock_testing_fallbacks": true}))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-litellm-attempted-fallbacks"), "1");
    assert_eq!(header(&r, "x-tollgate-attempts"), "3");
    let records = g.records().await;
    let failed: Vec<_> = records.iter().filter(|r| r.status == RecordStatus::Failure).collect();
    assert_eq!(failed.len(), 2);
    assert!(failed.iter().all(|r| r.model_group == "broken" && r.http_status == 500));
    let ok = records.iter().find(|r| r.status == RecordStatus::Success).unwrap();
    assert_eq!(ok.model_group, "good");
    // The fallback's answer is the provider's own.
    assert!(!ok.mocked);
}

#[tokio::test]
async fn mock_testing_rate_limit_error_fails_the_first_attempt_with_429_and_the_retry_answers() {
    let mock = start_mock(&[]).await;
    let g = gateway(&config(mock, "  num_retries: 1\n  retry_after: 0\n")).await;
    let r = g
        .chat(ask("good", json!({"mock_testing_rate_limit_error": true})))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-litellm-attempted-retries"), "1");
    let r = g
        .chat(ask(
            "good",
            json!({"mock_testing_rate_limit_error": true, "num_retries": 0}),
        ))
        .await;
    assert_eq!(r.status(), 429);
    let e: Value = r.json().await.unwrap();
    assert!(e["error"]["message"].as_str().unwrap().contains("rate limit"), "{e}");
    assert_eq!(mock_requests(mock).await, 1, "only the retry reached the provider");
    let records = g.records().await;
    // The first request's first attempt; the second's attempt and the request itself.
    assert_eq!(records.iter().filter(|r| r.http_status == 429).count(), 3);
}

#[tokio::test]
async fn mock_timeout_waits_out_the_timeout_and_fails_as_one() {
    let mock = start_mock(&[]).await;
    let g: Gw = gateway(&config(mock, "  num_retries: 0\n")).await;
    let t = Instant::now();
    let r = g.chat(ask("good", json!({"mock_timeout": true, "timeout": 0.3}))).await;
    assert_eq!(r.status(), 504);
    assert!(t.elapsed() >= Duration::from_millis(300), "{:?}", t.elapsed());
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["type"], "timeout", "{e}");
    assert_eq!(mock_requests(mock).await, 0);
}

#[tokio::test]
async fn a_comma_list_asks_every_group_at_once_and_keeps_the_first_answer() {
    // `broken` hangs (never answers), `other` fails at once: `good` answers.
    let mock = start_mock(&["broken=1:timeout", "other=1:500"]).await;
    let g = gateway(&config(mock, "  num_retries: 0\n")).await;
    let t = Instant::now();
    let r = g.chat(ask("broken,good, other", json!({}))).await;
    assert_eq!(r.status(), 200);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let rid = header(&r, "x-tollgate-request-id");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["model"], "good");

    let r = g
        .chat(ask(
            "broken,good",
            json!({"stream": true, "stream_options": {"include_usage": true}}),
        ))
        .await;
    assert_eq!(r.status(), 200);
    let (content, usage) = stream_text(r).await;
    assert!(!content.is_empty());
    assert!(usage["completion_tokens"].as_u64().unwrap() > 0, "{usage}");

    // Every group must be one the key may call.
    let (s, created) = call(&g, "POST", "/key/generate", KEY, Some(json!({"models": ["good"]}))).await;
    assert_eq!(s, 200, "{created}");
    let key = created["key"].as_str().unwrap();
    let (s, e) = call(
        &g,
        "POST",
        "/v1/chat/completions",
        key,
        Some(ask("good,other", json!({}))),
    )
    .await;
    assert_eq!(s, 401, "{e}");
    let r = g.chat(ask("good,nope", json!({}))).await;
    assert_eq!(r.status(), 404);
    let r = g.chat(ask("broken,other", json!({"timeout": 0.5}))).await;
    assert_eq!(r.status(), 504);
    let lost_id = header(&r, "x-tollgate-request-id");

    let records = g.records().await;
    let answer = records.iter().find(|r| r.request_id == rid).unwrap();
    assert_eq!(
        (answer.model_group.as_str(), answer.status),
        ("good", RecordStatus::Success)
    );
    let trace: Vec<_> = records.iter().filter(|r| r.trace_id == answer.trace_id).collect();
    let cancelled = trace.iter().find(|r| r.model_group == "broken").unwrap();
    assert_eq!(cancelled.http_status, 499, "{cancelled:?}");
    assert_eq!(cancelled.fault, Some(tollgate_core::Fault::Client));
    assert!(
        cancelled.error_message.as_deref().unwrap().contains("cancelled"),
        "{cancelled:?}"
    );
    assert_eq!(cancelled.model, "openai/broken");
    // `other` failed (500) or was still waiting (cancelled), whichever came first.
    let other = trace.iter().find(|r| r.model_group == "other").unwrap();
    match other.http_status {
        500 => assert_eq!(other.fault, Some(tollgate_core::Fault::Deployment)),
        499 => assert_eq!(other.fault, Some(tollgate_core::Fault::Client)),
        s => panic!("{s}: {other:?}"),
    }
    // When no group answers, the last failure is the answer and each failure its provider's.
    let lost = records.iter().find(|r| r.request_id == lost_id).unwrap();
    assert_eq!(lost.http_status, 504, "{lost:?}");
    let tries: Vec<_> = records
        .iter()
        .filter(|r| r.trace_id == lost.trace_id && r.attempt.is_some())
        .collect();
    assert_eq!(tries.len(), 2, "{tries:?}");
    assert!(
        tries.iter().all(|r| r.fault == Some(tollgate_core::Fault::Deployment)),
        "{tries:?}"
    );
    // Streamed race: one answer, one cancelled.
    assert_eq!(
        records
            .iter()
            .filter(|r| r.stream && r.http_status == 499 && r.model_group == "broken")
            .count(),
        1
    );
}

#[tokio::test]
async fn litellms_dict_mock_response_mock_delay_and_context_fallback_hook() {
    let mock = start_mock(&[]).await;
    let g = gateway(&config(
        mock,
        "  num_retries: 0\n  context_window_fallbacks:\n    - broken: [other]\n",
    ))
    .await;
    // The dict form: a whole response, or just a message.
    for mock_response in [
        json!({"choices": [{"message": {"role": "assistant", "content": "From a dict."}}]}),
        json!({"role": "assistant", "content": "From a dict."}),
    ] {
        let r = g.chat(ask("good", json!({"mock_response": mock_response}))).await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "From a dict.");
    }
    let r = g.chat(ask("good", json!({"mock_response": {"choices": []}}))).await;
    assert_eq!(r.status(), 400);

    // mock_delay: the answer comes after the delay; past the timeout it is a timeout.
    let t = Instant::now();
    let r = g
        .chat(ask("good", json!({"mock_response": "late", "mock_delay": 0.3})))
        .await;
    assert_eq!(r.status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(300), "{:?}", t.elapsed());
    let r = g
        .chat(ask(
            "good",
            json!({"mock_response": "too late", "mock_delay": 5, "timeout": 0.2}),
        ))
        .await;
    assert_eq!(r.status(), 504);
    let r = g
        .chat(ask("good", json!({"mock_response": "x", "mock_delay": "soon"})))
        .await;
    assert_eq!(r.status(), 400);

    // mock_testing_context_fallbacks: the requested group is "too long", its context-window
    // fallback answers (for real: the hook fails only the requested group).
    let r = g
        .chat(ask("broken", json!({"mock_testing_context_fallbacks": true})))
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["model"], "other", "{v}");
    assert_eq!(mock_requests(mock).await, 1, "only the fallback reached the provider");
}
