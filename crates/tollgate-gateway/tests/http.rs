//! The gateway over real HTTP on loopback, with `tollgate-mock` (or a purpose-built upstream) as
//! the provider: responses, headers, errors, streams and the records they leave.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::response::Response;
use serde_json::{Value, json};
use tollgate_core::{Record, RecordStatus};
use tollgate_gateway::{LiveState, ServeOptions};

mod common;
use common::{KEY, gateway};

/// The mock, with failures injected for the upstream models the error tests route to.
async fn start_mock() -> SocketAddr {
    common::start_mock(&["rate-limited=1.0:429", "broken=1.0:500", "hangs=1.0:timeout"]).await
}

fn config(upstream: SocketAddr, extra: &str) -> String {
    format!(
        r#"model_list:
  - model_name: deepseek-v3.2
    litellm_params:
      model: deepseek/deepseek-v3.2
      api_base: http://{upstream}/v1
      api_key: upstream-secret-key-123
      timeout: 2
  - model_name: gpt-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://{upstream}/v1
      api_key: upstream-secret-key-123
  - model_name: house-model
    litellm_params:
      model: openai/house-finetune
      api_base: http://{upstream}/v1
  - model_name: embed
    litellm_params:
      model: openai/text-embedding-3-small
      api_base: http://{upstream}/v1
  - model_name: dead
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:9/v1
  - model_name: rate-limited
    litellm_params: {{model: openai/rate-limited, api_base: "http://{upstream}/v1", input_cost_per_token: 1e-6, output_cost_per_token: 1e-6}}
  - model_name: broken
    litellm_params: {{model: openai/broken, api_base: "http://{upstream}/v1", input_cost_per_token: 1e-6, output_cost_per_token: 1e-6}}
  - model_name: hangs
    litellm_params: {{model: openai/hangs, api_base: "http://{upstream}/v1", timeout: 1, input_cost_per_token: 1e-6, output_cost_per_token: 1e-6}}
general_settings:
  master_key: {KEY}
{extra}"#
    )
}

fn chat(model: &str, content: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": content}]})
}

#[tokio::test]
async fn plain_chat_is_priced_at_list_prices_and_tagged() {
    let mock = start_mock().await;
    let g = gateway(&config(mock, "")).await;
    let resp = g
        .post(
            "/v1/chat/completions",
            chat("deepseek-v3.2", "Write a function that adds two numbers"),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["model"], "deepseek-v3.2", "clients see the group they asked for");
    let rid = h["x-tollgate-request-id"].to_str().unwrap().to_string();
    assert_eq!(h["x-litellm-call-id"], rid.as_str());
    assert_eq!(h["x-tollgate-model-group"], "deepseek-v3.2");
    assert_eq!(h["x-litellm-model-group"], "deepseek-v3.2");
    assert_eq!(h["x-tollgate-cache"], "off");
    let overhead: f64 = h["x-tollgate-overhead-ms"].to_str().unwrap().parse().unwrap();
    let header_cost: f64 = h["x-tollgate-cost-usd"].to_str().unwrap().parse().unwrap();
    assert_eq!(h["x-litellm-response-cost"], h["x-tollgate-cost-usd"]);

    let u = &body["usage"];
    let prompt = u["prompt_tokens"].as_u64().unwrap();
    let completion = u["completion_tokens"].as_u64().unwrap();
    let reasoning = u["completion_tokens_details"]["reasoning_tokens"].as_u64().unwrap();
    let cached = u["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap();
    assert!(
        reasoning > 0 && reasoning <= completion,
        "the mock reasons for deepseek"
    );
    // DeepSeek V3.2 list prices: $0.28/M input, $0.028/M cached input, $0.40/M output (reasoning at the output rate).
    let expected = (prompt - cached) as f64 * 0.28e-6 + cached as f64 * 0.028e-6 + completion as f64 * 0.40e-6;
    assert!(
        (header_cost - expected).abs() < 1e-9,
        "header {header_cost} vs {expected}"
    );

    let (records, jsonl) = g.records_and_jsonl().await;
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r.request_id, rid);
    assert_eq!(r.status, RecordStatus::Success);
    assert_eq!(r.model_group, "deepseek-v3.2");
    assert_eq!(r.model, "deepseek/deepseek-v3.2");
    assert_eq!(r.provider, "deepseek");
    assert_eq!(
        (r.prompt_tokens, r.completion_tokens, r.reasoning_tokens),
        (prompt, completion, reasoning)
    );
    assert!((r.cost_usd.unwrap() - expected).abs() < 1e-12);
    let buckets = r.cost_input_usd.unwrap()
        + r.cost_cache_read_usd.unwrap()
        + r.cost_cache_write_usd.unwrap()
        + r.cost_output_usd.unwrap()
        + r.cost_reasoning_usd.unwrap();
    assert!(
        (buckets - r.cost_usd.unwrap()).abs() < 1e-15,
        "buckets add up to the total"
    );
    assert!((r.cost_reasoning_usd.unwrap() - reasoning as f64 * 0.40e-6).abs() < 1e-15);
    assert_eq!(r.config_version, Some(1));
    // Overhead is the request's time minus the wait on the provider: positive, and the header
    // (taken as the response left) is at most the record's (taken when the request closed).
    let (upstream, recorded_overhead) = (r.upstream_ms.unwrap(), r.overhead_ms.unwrap());
    assert!(
        overhead > 0.0 && overhead <= recorded_overhead + 1e-3,
        "{overhead} vs {recorded_overhead}"
    );
    assert!((recorded_overhead + upstream - r.latency_ms).abs() < 1e-6, "{r:?}");
    assert_eq!(r.prompt_sha256.as_ref().map(String::len), Some(64));
    assert!(
        !jsonl.contains("upstream-secret-key-123") && !jsonl.contains(KEY),
        "secrets never reach records"
    );
}

#[tokio::test]
async fn repeated_prefix_reports_provider_cache_reads_priced_at_the_cache_rate() {
    let mock = start_mock().await;
    let g = gateway(&config(mock, "")).await;
    let body = json!({"model": "deepseek-v3.2", "messages": [
        {"role": "system", "content": "You are a careful planner. ".repeat(200)},
        {"role": "user", "content": "Plan the refactor"}]});
    g.post("/v1/chat/completions", body.clone()).await;
    let second: Value = g.post("/v1/chat/completions", body).await.json().await.unwrap();
    let cached = second["usage"]["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap();
    assert!(cached > 0, "second request hits the provider's prompt cache: {second}");
    assert_eq!(
        second["usage"]["prompt_cache_hit_tokens"].as_u64(),
        Some(cached),
        "DeepSeek's own field survives"
    );
    let (records, _) = g.records_and_jsonl().await;
    let r = records.iter().find(|r| r.cached_tokens > 0).unwrap();
    assert!((r.cost_cache_read_usd.unwrap() - r.cached_tokens as f64 * 0.028e-6).abs() < 1e-15);
}

async fn read_sse(resp: reqwest::Response) -> Vec<String> {
    let text = resp.text().await.unwrap();
    text.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: ").map(str::to_string))
        .collect()
}

#[tokio::test]
async fn streamed_usage_equals_plain_usage_and_is_recorded() {
    let mock = start_mock().await;
    let g = gateway(&config(mock, "")).await;
    let req = chat("deepseek-v3.2", "Explain the borrow checker briefly");
    let plain: Value = g.post("/v1/chat/completions", req.clone()).await.json().await.unwrap();

    let mut with_usage = req.clone();
    with_usage["stream"] = json!(true);
    with_usage["stream_options"] = json!({"include_usage": true});
    let resp = g.post("/v1/chat/completions", with_usage).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let events = read_sse(resp).await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let usage_chunk: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(usage_chunk["usage"]["prompt_tokens"], plain["usage"]["prompt_tokens"]);
    assert_eq!(
        usage_chunk["usage"]["completion_tokens"],
        plain["usage"]["completion_tokens"]
    );
    assert_eq!(
        usage_chunk["usage"]["completion_tokens_details"]["reasoning_tokens"],
        plain["usage"]["completion_tokens_details"]["reasoning_tokens"]
    );
    let content: String = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|v| {
            v.pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect();
    assert_eq!(content, plain["choices"][0]["message"]["content"].as_str().unwrap());

    // Without include_usage the client gets no usage chunk, but the record still has usage.
    let mut no_usage = req.clone();
    no_usage["stream"] = json!(true);
    let events = read_sse(g.post("/v1/chat/completions", no_usage).await).await;
    let with_usage = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter(|v| v.get("usage").is_some_and(|u| !u.is_null()))
        .count();
    assert_eq!(with_usage, 0, "{events:?}");
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));

    let (records, _) = g.records_and_jsonl().await;
    assert_eq!(records.len(), 3);
    let streams: Vec<&Record> = records.iter().filter(|r| r.stream).collect();
    assert_eq!(streams.len(), 2);
    for r in streams {
        assert_eq!(r.status, RecordStatus::Success);
        assert_eq!(r.prompt_tokens, plain["usage"]["prompt_tokens"].as_u64().unwrap());
        assert_eq!(
            r.completion_tokens,
            plain["usage"]["completion_tokens"].as_u64().unwrap()
        );
        assert!(r.ttft_ms.is_some_and(|t| t <= r.latency_ms));
        assert!(r.cost_usd.is_some());
    }
}

#[tokio::test]
async fn errors_use_openai_shape_and_status() {
    let mock = start_mock().await;
    let g = gateway(&config(mock, "  max_request_size_mb: 0.01\n")).await;
    let url = format!("{}/v1/chat/completions", g.base);

    let check = |v: &Value| {
        assert!(
            v["error"]["message"].is_string() && v["error"]["type"].is_string() && !v["error"]["code"].is_null(),
            "{v}"
        );
    };

    let r = g
        .http
        .post(&url)
        .bearer_auth(KEY)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    check(&r.json().await.unwrap());

    let r = g.post("/v1/chat/completions", chat("nope", "hi")).await;
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    check(&v);
    assert_eq!(v["error"]["code"], "model_not_found");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("deepseek-v3.2, gpt-mini"),
        "{v}"
    );

    let r = g
        .post("/v1/chat/completions", chat("gpt-mini", &"x".repeat(20_000)))
        .await;
    assert_eq!(r.status(), 413);
    check(&r.json().await.unwrap());

    let r = g
        .http
        .post(&url)
        .bearer_auth("sk-wrong")
        .json(&chat("gpt-mini", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    check(&r.json().await.unwrap());
    let r = g
        .http
        .post(&url)
        .header("x-api-key", KEY)
        .json(&chat("gpt-mini", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "x-api-key works like Bearer");

    let r = g.post("/v1/chat/completions", chat("rate-limited", "hi")).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"), "Retry-After is passed through");
    check(&r.json().await.unwrap());

    let r = g.post("/v1/chat/completions", chat("broken", "hi")).await;
    assert_eq!(r.status(), 500);
    check(&r.json().await.unwrap());

    // `hangs` has `timeout: 1`; the mock never answers it.
    let r = g.post("/v1/chat/completions", chat("hangs", "hi")).await;
    assert_eq!(r.status(), 504);
    check(&r.json().await.unwrap());

    let r = g.post("/v1/chat/completions", chat("dead", "hi")).await;
    assert_eq!(r.status(), 502);
    check(&r.json().await.unwrap());

    let r = g.post("/v1/chat/completions", json!({"model": "gpt-mini"})).await;
    assert_eq!(r.status(), 400, "messages are required");

    let (records, _) = g.records_and_jsonl().await;
    assert!(
        records.iter().all(|r| r.http_status != 401),
        "a failed authentication leaves no record"
    );
    let failures: Vec<(u16, &str)> = records
        .iter()
        .filter(|r| r.status == RecordStatus::Failure)
        .map(|r| (r.http_status, r.model_group.as_str()))
        .collect();
    // Authentication failures are not recorded; every other request is.
    for expected in [
        (400, ""),
        (404, "nope"),
        (413, ""),
        (429, "rate-limited"),
        (500, "broken"),
        (504, "hangs"),
        (502, "dead"),
    ] {
        assert!(
            failures.contains(&expected),
            "missing failure record {expected:?} in {failures:?}"
        );
    }
    assert!(
        records
            .iter()
            .all(|r| r.status == RecordStatus::Success || r.error_message.is_some())
    );
}

#[tokio::test]
async fn unpriced_models_are_flagged_never_zero() {
    let mock = start_mock().await;
    let g = gateway(&config(mock, "")).await;
    let r = g.post("/v1/chat/completions", chat("house-model", "hi")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-tollgate-cost-usd"], "unpriced");
    assert!(r.headers().get("x-litellm-response-cost").is_none());
    let (records, _) = g.records_and_jsonl().await;
    assert!(records[0].unpriced);
    assert_eq!(records[0].cost_usd, None);
    assert!(records[0].prompt_tokens > 0);
}

#[tokio::test]
async fn sessions_come_from_header_body_or_metadata() {
    let mock = start_mock().await;
    let g = gateway(&config(mock, "")).await;
    g.http
        .post(format!("{}/chat/completions", g.base))
        .bearer_auth(KEY)
        .header("x-session-id", "s-header")
        .header("user-agent", "RooCode/1.0.4")
        .json(&chat("gpt-mini", "a"))
        .send()
        .await
        .unwrap();
    let mut b = chat("gpt-mini", "b");
    b["litellm_session_id"] = json!("s-body");
    g.post("/v1/chat/completions", b).await;
    let mut c = chat("gpt-mini", "c");
    c["metadata"] = json!({"session_id": "s-meta"});
    g.post("/v1/chat/completions", c).await;
    let (records, _) = g.records_and_jsonl().await;
    let mut sessions: Vec<String> = records.iter().filter_map(|r| r.session_id.clone()).collect();
    sessions.sort();
    assert_eq!(sessions, vec!["s-body", "s-header", "s-meta"]);
    assert!(records.iter().any(|r| r.user_agent.as_deref() == Some("RooCode/1.0.4")));
}

/// An upstream that remembers what it was sent, and can break a stream midway.
async fn capture_upstream() -> (SocketAddr, Arc<Mutex<Vec<(axum::http::HeaderMap, Value)>>>) {
    let seen: Arc<Mutex<Vec<(axum::http::HeaderMap, Value)>>> = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |headers: axum::http::HeaderMap, axum::Json(body): axum::Json<Value>| {
            let s = s.clone();
            async move {
                let stream = body["stream"].as_bool().unwrap_or(false);
                s.lock().unwrap().push((headers, body));
                if stream {
                    // Two content chunks, then the connection ends without [DONE].
                    let chunks = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hel\"}}]}\n\n\
                                  data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"}}]}\n\n";
                    return Response::builder().header("content-type", "text/event-stream").body(Body::from(chunks)).unwrap();
                }
                let v = json!({"id": "c", "object": "chat.completion", "model": "m",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}});
                Response::builder().header("content-type", "application/json").body(Body::from(v.to_string())).unwrap()
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    (addr, seen)
}

#[tokio::test]
async fn unknown_fields_pass_through_and_gateway_fields_do_not() {
    let (up, seen) = capture_upstream().await;
    let yaml = config(up, "").replace(
        "upstream-secret-key-123\n      timeout: 2",
        "upstream-secret-key-123\n      extra_headers: {x-team: blue}",
    );
    let g = gateway(&yaml).await;
    let mut body = chat("deepseek-v3.2", "hi");
    body["some_vendor_field"] = json!({"nested": [1, 2]});
    body["tools"] = json!([{"type": "function", "function": {"name": "read_file", "parameters": {"type": "object"}}}]);
    body["metadata"] = json!({"session_id": "s"});
    body["litellm_session_id"] = json!("s");
    body["cache"] = json!({"no-cache": true});
    body["litellm_trace_id"] = json!("t");
    body["tags"] = json!(["team-a"]);
    let r = g.post("/v1/chat/completions", body).await;
    assert_eq!(r.status(), 200);
    let (headers, sent) = seen.lock().unwrap()[0].clone();
    assert_eq!(sent["model"], "deepseek-v3.2", "the provider prefix is removed");
    assert_eq!(sent["some_vendor_field"], json!({"nested": [1, 2]}));
    assert_eq!(sent["tools"][0]["function"]["name"], "read_file");
    for gateway_only in ["metadata", "litellm_session_id", "cache", "litellm_trace_id", "tags"] {
        assert!(
            sent.get(gateway_only).is_none(),
            "{gateway_only} reached the provider: {sent}"
        );
    }
    assert_eq!(headers["authorization"], "Bearer upstream-secret-key-123");
    assert_eq!(headers["x-team"], "blue");
    g.records_and_jsonl().await;
}

#[tokio::test]
async fn a_stream_that_breaks_midway_ends_with_an_error_event() {
    let (up, seen) = capture_upstream().await;
    let g = gateway(&config(up, "")).await;
    let mut body = chat("deepseek-v3.2", "hi");
    body["stream"] = json!(true);
    let events = read_sse(g.post("/v1/chat/completions", body).await).await;
    assert_ne!(events.last().map(String::as_str), Some("[DONE]"), "{events:?}");
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert!(last["error"]["message"].as_str().unwrap().contains("before [DONE]"));
    // The gateway asked the upstream for usage even though the client did not.
    assert_eq!(seen.lock().unwrap()[0].1["stream_options"]["include_usage"], true);
    let (records, _) = g.records_and_jsonl().await;
    assert_eq!(records[0].status, RecordStatus::Failure);
    assert_eq!(records[0].error_type.as_deref(), Some("upstream_error"));
}

#[tokio::test]
async fn models_info_health_and_embeddings() {
    let mock = start_mock().await;
    let g = gateway(&config(mock, "")).await;
    let get = |p: &str| g.http.get(format!("{}{p}", g.base)).bearer_auth(KEY).send();
    let models: Value = get("/v1/models").await.unwrap().json().await.unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids[..5], ["deepseek-v3.2", "gpt-mini", "house-model", "embed", "dead"]);
    let info = get("/v1/model/info").await.unwrap().text().await.unwrap();
    assert!(!info.contains("upstream-secret-key-123"));
    let info: Value = serde_json::from_str(&info).unwrap();
    let ds = info["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model_name"] == "deepseek-v3.2")
        .unwrap();
    assert_eq!(ds["model_info"]["max_input_tokens"], 163840);
    assert_eq!(ds["litellm_params"]["model"], "deepseek/deepseek-v3.2");

    let live: Value = g
        .http
        .get(format!("{}/health/liveliness", g.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(live, json!("I'm alive!"));
    let ready: Value = g.readiness().await;
    assert_eq!(ready["status"], "healthy");
    assert_eq!(ready["config_version"], 1);
    assert!(ready["config_error"].is_null());
    assert_eq!(ready["cache"]["state"], "off");

    let r = g
        .post("/v1/embeddings", json!({"model": "embed", "input": ["a b c", "d"]}))
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    let (records, _) = g.records_and_jsonl().await;
    let e = records.iter().find(|r| r.model_group == "embed").unwrap();
    assert!(e.prompt_tokens > 0);
    assert!((e.cost_usd.unwrap() - e.prompt_tokens as f64 * 2e-8).abs() < 1e-15);
}

#[tokio::test]
async fn refuses_weak_master_keys_unless_insecure_dev() {
    let env = BTreeMap::new();
    let yaml = "model_list: []\ngeneral_settings:\n  master_key: sk-1234\n";
    let build = || {
        LiveState::build(
            tollgate_core::config::parse(yaml, Path::new("c.yaml"), &env).unwrap(),
            1,
            None,
            &env,
        )
        .unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let opts = ServeOptions {
        port: 0,
        data_dir: dir.path().to_path_buf(),
        ..ServeOptions::default()
    };
    let err = tollgate_gateway::start(build(), opts.clone())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("well-known") && err.contains("--insecure-dev"), "{err}");
    let gw = tollgate_gateway::start(
        build(),
        ServeOptions {
            insecure_dev: true,
            ..opts
        },
    )
    .await
    .unwrap();
    // The configured key is still enforced under --insecure-dev.
    let r = reqwest::Client::new()
        .get(format!("http://{}/v1/models", gw.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    gw.shutdown().await.unwrap();
}

#[tokio::test]
async fn cache_control_injection_points_mark_the_system_prompt_upstream() {
    let (up, seen) = capture_upstream().await;
    let yaml = config(up, "").replace(
        "api_key: upstream-secret-key-123\n      timeout: 2",
        "api_key: upstream-secret-key-123\n      cache_control_injection_points: [{location: message, role: system}]",
    );
    let g = gateway(&yaml).await;
    let body = json!({"model": "deepseek-v3.2", "messages": [
        {"role": "system", "content": "A long, stable system prompt."},
        {"role": "user", "content": "hi"}]});
    assert_eq!(g.post("/v1/chat/completions", body).await.status(), 200);
    let sent = seen.lock().unwrap()[0].1.clone();
    assert_eq!(sent["messages"][0]["content"][0]["cache_control"]["type"], "ephemeral");
    assert_eq!(sent["messages"][1]["content"], "hi");
    g.records_and_jsonl().await;
}
