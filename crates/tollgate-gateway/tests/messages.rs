//! Anthropic's Messages API (`/v1/messages`, `/v1/messages/count_tokens`) over real HTTP with
//! `tollgate mock` as the upstream: passed through to an `anthropic/` deployment (the provider
//! sees the client's body with only `model` rewritten, and its events are relayed as written),
//! translated for a `deepseek/` one (Anthropic's event sequence written from chat chunks), both
//! recorded as `endpoint: messages` and priced per bucket; errors in Anthropic's shape.

mod common;

use std::net::SocketAddr;

use common::{Gw, KEY, gateway, start_mock};
use serde_json::{Value, json};
use tollgate_core::Record;

fn config(mock: SocketAddr) -> String {
    format!(
        "model_list:
  - model_name: claude-sonnet-4-5-20250929
    litellm_params:
      model: anthropic/claude-sonnet-4-5
      api_base: http://{mock}
      api_key: ak
  - model_name: claude-haiku-4-5
    litellm_params:
      model: deepseek/deepseek-v3.2
      api_base: http://{mock}/v1
      api_key: dk
  - model_name: broken
    litellm_params:
      model: deepseek/deepseek-broken
      api_base: http://{mock}/v1
      api_key: dk
  - model_name: small-output
    litellm_params:
      model: deepseek/deepseek-chat
      api_base: http://{mock}/v1
      api_key: dk
  - model_name: claude-down
    litellm_params:
      model: anthropic/claude-down
      api_base: http://{mock}
      api_key: ak
router_settings:
  fallbacks: [{{claude-down: [claude-haiku-4-5]}}]
workflows:
  claude-opus-4-1:
    steps:
      - {{role: planner, model: claude-haiku-4-5}}
      - {{role: coder, model: claude-sonnet-4-5-20250929}}
general_settings:
  master_key: {KEY}
"
    )
}

async fn setup() -> (Gw, SocketAddr) {
    let mock = start_mock(&["deepseek-broken=1.0:reset", "claude-down=1.0:500"]).await;
    (gateway(&config(mock)).await, mock)
}

/// `POST path` the way Anthropic's SDKs send it: `x-api-key` and `anthropic-version`.
async fn post(gw: &Gw, path: &str, body: &Value) -> reqwest::Response {
    gw.http
        .post(format!("{}{path}", gw.base))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "interleaved-thinking-2025-05-14")
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn last_request(mock: SocketAddr) -> Value {
    reqwest::get(format!("http://{mock}/mock/last_request"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// (event name, data) of each SSE frame.
fn frames(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|f| !f.trim().is_empty())
        .map(|f| {
            let name = f
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or("")
                .to_string();
            let data = f.lines().find_map(|l| l.strip_prefix("data: ")).unwrap_or("null");
            (name, serde_json::from_str(data).unwrap_or(Value::Null))
        })
        .collect()
}

fn request(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "max_tokens": 300,
        "system": [{"type": "text", "text": "You are terse. ".repeat(30), "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": "Earlier question"},
            {"role": "assistant", "content": [{"type": "text", "text": "Earlier answer"}]},
            {"role": "user", "content": [{"type": "text", "text": "Say hello"}]}
        ],
        "metadata": {"user_id": format!("u-{model}-{stream}")},
        "stream": stream,
        "service_tier": "auto"
    })
}

/// Cost by the buckets of Anthropic's usage: (input, cache read, cache write, output) prices.
fn cost(u: &Value, p: (f64, f64, f64, f64)) -> f64 {
    let n = |k: &str| u[k].as_u64().unwrap_or(0) as f64;
    n("input_tokens") * p.0
        + n("cache_read_input_tokens") * p.1
        + n("cache_creation_input_tokens") * p.2
        + n("output_tokens") * p.3
}

const SONNET: (f64, f64, f64, f64) = (3e-06, 3e-07, 3.75e-06, 1.5e-05);
const DEEPSEEK: (f64, f64, f64, f64) = (2.8e-07, 2.8e-08, 0.0, 4e-07);

fn record<'a>(records: &'a [Record], end_user: &str) -> &'a Record {
    records
        .iter()
        .find(|r| r.end_user.as_deref() == Some(end_user))
        .unwrap_or_else(|| panic!("no record for {end_user}: {records:#?}"))
}

fn check_record(r: &Record, usage: &Value, prices: (f64, f64, f64, f64)) {
    assert_eq!(r.endpoint.as_deref(), Some("messages"));
    let n = |k: &str| usage[k].as_u64().unwrap_or(0);
    assert_eq!(
        r.prompt_tokens,
        n("input_tokens") + n("cache_read_input_tokens") + n("cache_creation_input_tokens")
    );
    assert_eq!(r.cached_tokens, n("cache_read_input_tokens"));
    assert_eq!(r.cache_creation_tokens, n("cache_creation_input_tokens"));
    assert_eq!(r.completion_tokens, n("output_tokens"));
    let want = cost(usage, prices);
    assert!((r.cost_usd.unwrap() - want).abs() < 1e-12, "{:?} vs {want}", r.cost_usd);
}

#[tokio::test]
async fn an_anthropic_deployment_gets_the_body_as_sent_and_answers_as_written() {
    let (gw, mock) = setup().await;
    let body = request("claude-sonnet-4-5-20250929", false);
    let resp = post(&gw, "/v1/messages", &body).await;
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["type"], "message");
    assert!(answer["id"].as_str().unwrap().starts_with("msg_mock_"));
    let seen = last_request(mock).await;
    let mut expected = body.clone();
    expected["model"] = json!("claude-sonnet-4-5");
    assert_eq!(seen["body"], expected, "only `model` differs");
    assert_eq!(seen["headers"]["anthropic-beta"], "interleaved-thinking-2025-05-14");
    // Streamed: the provider's frames are relayed one for one.
    let resp = post(&gw, "/messages", &request("claude-sonnet-4-5-20250929", true)).await;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let events = frames(&resp.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names.get(1), Some(&"ping"));
    assert_eq!(names.last(), Some(&"message_stop"));
    let streamed_usage = events
        .iter()
        .find(|(n, _)| n == "message_delta")
        .map(|(_, d)| d["usage"].clone())
        .unwrap();
    let records = gw.records().await;
    check_record(
        record(&records, "u-claude-sonnet-4-5-20250929-false"),
        &answer["usage"],
        SONNET,
    );
    let streamed = record(&records, "u-claude-sonnet-4-5-20250929-true");
    assert!(streamed.stream);
    check_record(streamed, &streamed_usage, SONNET);
}

#[tokio::test]
async fn other_deployments_are_translated_and_answer_in_anthropics_shape() {
    let (gw, mock) = setup().await;
    let resp = post(&gw, "/v1/messages", &request("claude-haiku-4-5", false)).await;
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["type"], "message");
    assert_eq!(answer["model"], "claude-haiku-4-5");
    let kinds: Vec<&str> = answer["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["thinking", "text"],
        "DeepSeek's reasoning comes back as thinking"
    );
    let seen = last_request(mock).await;
    assert_eq!(seen["path"], "/v1/chat/completions");
    assert_eq!(seen["body"]["user"], "u-claude-haiku-4-5-false");
    assert!(seen["body"].get("service_tier").is_none() && seen["body"].get("metadata").is_none());

    let resp = post(&gw, "/v1/messages", &request("claude-haiku-4-5", true)).await;
    let events = frames(&resp.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(&names[..3], ["message_start", "ping", "content_block_start"]);
    assert_eq!(&names[names.len() - 2..], ["message_delta", "message_stop"]);
    for (name, data) in &events {
        assert_eq!(data["type"], name.as_str(), "every frame names its type");
    }
    let starts = names.iter().filter(|n| **n == "content_block_start").count();
    let stops = names.iter().filter(|n| **n == "content_block_stop").count();
    assert_eq!((starts, stops), (2, 2), "a thinking block, then a text block");
    let delta = &events.iter().find(|(n, _)| n == "message_delta").unwrap().1;
    assert_eq!(delta["delta"]["stop_reason"], answer["stop_reason"]);
    let streamed_usage = delta["usage"].clone();
    // The same prompt again: the provider now reads its prefix from its cache, so only the
    // split of the prompt differs.
    let prompt = |u: &Value| {
        ["input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"]
            .iter()
            .map(|k| u[*k].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    assert_eq!(prompt(&streamed_usage), prompt(&answer["usage"]));
    assert!(streamed_usage["cache_read_input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(streamed_usage["output_tokens"], answer["usage"]["output_tokens"]);

    let records = gw.records().await;
    check_record(record(&records, "u-claude-haiku-4-5-false"), &answer["usage"], DEEPSEEK);
    check_record(record(&records, "u-claude-haiku-4-5-true"), &streamed_usage, DEEPSEEK);
}

#[tokio::test]
async fn a_stream_broken_midway_ends_with_an_anthropic_error_event() {
    let (gw, _mock) = setup().await;
    let resp = post(&gw, "/v1/messages", &request("broken", true)).await;
    assert_eq!(resp.status(), 200);
    let events = frames(&resp.text().await.unwrap());
    let (name, data) = events.last().unwrap();
    assert_eq!(name, "error");
    assert_eq!(data["type"], "error");
    assert_eq!(data["error"]["type"], "api_error");
    assert!(data["error"]["message"].as_str().unwrap().contains("broke midway"));
    assert!(!events.iter().any(|(n, _)| n == "message_stop"));
}

#[tokio::test]
async fn errors_take_anthropics_shape() {
    let (gw, _mock) = setup().await;
    let resp = post(
        &gw,
        "/v1/messages",
        &json!({"model": "nope", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(resp.status(), 404);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "not_found_error");
    assert!(v["error"]["message"].as_str().unwrap().contains("nope"));
    let resp = post(
        &gw,
        "/v1/messages",
        &json!({"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(v["error"]["message"].as_str().unwrap().contains("max_tokens"));
    let resp = post(
        &gw,
        "/v1/messages",
        &json!({"model": "claude-haiku-4-5", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let resp = gw
        .http
        .post(format!("{}/v1/messages", gw.base))
        .header("x-api-key", "sk-wrong-0123456789abcdef")
        .json(&request("claude-haiku-4-5", false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "authentication_error");
}

#[tokio::test]
async fn count_tokens_is_exact_from_anthropic_and_marked_estimated_elsewhere() {
    let (gw, _mock) = setup().await;
    let mut body = request("claude-sonnet-4-5-20250929", false);
    for k in ["max_tokens", "stream", "metadata", "service_tier"] {
        body.as_object_mut().unwrap().remove(k);
    }
    let resp = post(&gw, "/v1/messages/count_tokens", &body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-tollgate-token-count"], "exact");
    let exact: Value = resp.json().await.unwrap();
    let mut plain = request("claude-sonnet-4-5-20250929", false);
    plain["metadata"]["user_id"] = json!("count-check");
    let answer: Value = post(&gw, "/v1/messages", &plain).await.json().await.unwrap();
    let u = &answer["usage"];
    let prompt = ["input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"]
        .iter()
        .map(|k| u[*k].as_u64().unwrap_or(0))
        .sum::<u64>();
    assert_eq!(exact["input_tokens"].as_u64().unwrap(), prompt);

    body["model"] = json!("claude-haiku-4-5");
    let resp = post(&gw, "/v1/messages/count_tokens", &body).await;
    assert_eq!(resp.headers()["x-tollgate-token-count"], "estimated");
    let estimated: Value = resp.json().await.unwrap();
    assert_eq!(estimated["estimated"], true);
    assert!(estimated["input_tokens"].as_u64().unwrap() > 0);

    let resp = post(
        &gw,
        "/v1/messages/count_tokens",
        &json!({"model": "nope", "messages": []}),
    )
    .await;
    assert_eq!(resp.status(), 404);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "not_found_error");
    // count_tokens writes no record: only the one Messages call above is recorded.
    let records = gw.records().await;
    assert_eq!(records.len(), 1, "{records:#?}");
}

/// A request as Claude Code (2.x) sends it: `?beta=true`, its beta headers and user agent,
/// system blocks with `cache_control`, JSON-schema tools, thinking with a large budget, a
/// previous turn's signed thinking and tool call with its result, streaming.
fn claude_code_request(model: &str) -> Value {
    json!({
        "model": model,
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "<system-reminder>\nThis is a reminder that your todo list is currently empty.\n</system-reminder>"},
                {"type": "text", "text": "fix the failing test in src/lib.rs"}
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "I should read the file first.", "signature": "EqQBCkYIBxgCKkBsig"},
                {"type": "tool_use", "id": "toolu_01A", "name": "Read", "input": {"file_path": "/repo/src/lib.rs"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "     1\tpub fn add(a: i32, b: i32) -> i32 { a - b }\n"},
                {"type": "text", "text": "continue", "cache_control": {"type": "ephemeral"}}
            ]}
        ],
        "temperature": 1,
        "system": [
            {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "\nYou are an interactive CLI tool that helps users with software engineering tasks. ".repeat(20), "cache_control": {"type": "ephemeral"}}
        ],
        "tools": [
            {"name": "Bash", "description": "Executes a given bash command",
             "input_schema": {"type": "object", "properties": {"command": {"type": "string"}, "timeout": {"type": "number"}},
                              "required": ["command"], "additionalProperties": false, "$schema": "http://json-schema.org/draft-07/schema#"}},
            {"name": "Read", "description": "Reads a file from the local filesystem.",
             "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}, "offset": {"type": "number"}},
                              "required": ["file_path"], "additionalProperties": false, "$schema": "http://json-schema.org/draft-07/schema#"}},
            {"name": "Edit", "description": "Performs exact string replacements in files.",
             "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}, "old_string": {"type": "string"}, "new_string": {"type": "string"}},
                              "required": ["file_path", "old_string", "new_string"], "additionalProperties": false,
                              "$schema": "http://json-schema.org/draft-07/schema#"},
             "cache_control": {"type": "ephemeral"}}
        ],
        "metadata": {"user_id": format!("user_5f1c0a_account__session_{model}")},
        "max_tokens": 32000,
        "thinking": {"type": "enabled", "budget_tokens": 31999},
        "stream": true
    })
}

/// Checks an Anthropic event sequence: message_start, ping, blocks opened and closed in index
/// order with deltas only inside their block, message_delta, message_stop.
fn check_sequence(events: &[(String, Value)]) -> Vec<String> {
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(&names[..2], ["message_start", "ping"], "{names:?}");
    assert_eq!(
        &names[names.len() - 2..],
        ["message_delta", "message_stop"],
        "{names:?}"
    );
    let mut open: Option<u64> = None;
    let mut next = 0;
    let mut kinds = Vec::new();
    for (name, data) in events {
        assert_eq!(data["type"], name.as_str());
        match name.as_str() {
            "content_block_start" => {
                assert_eq!(open, None, "a block opened inside another");
                assert_eq!(data["index"], next);
                open = Some(next);
                kinds.push(data["content_block"]["type"].as_str().unwrap().to_string());
            }
            "content_block_delta" => assert_eq!(data["index"].as_u64(), open, "a delta outside its block"),
            "content_block_stop" => {
                assert_eq!(data["index"].as_u64(), open);
                open = None;
                next += 1;
            }
            _ => {}
        }
    }
    assert_eq!(open, None);
    kinds
}

#[tokio::test]
async fn a_claude_code_request_is_answered_by_both_routes() {
    let (gw, mock) = setup().await;
    for model in ["claude-sonnet-4-5-20250929", "claude-haiku-4-5"] {
        let body = claude_code_request(model);
        let resp = gw
            .http
            .post(format!("{}/v1/messages?beta=true", gw.base))
            .bearer_auth(KEY)
            .header("anthropic-version", "2023-06-01")
            .header(
                "anthropic-beta",
                "claude-code-20250219,interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14",
            )
            .header("user-agent", "claude-cli/2.0.14 (external, cli)")
            .header("x-app", "cli")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{model}");
        let kinds = check_sequence(&frames(&resp.text().await.unwrap()));
        assert_eq!(
            kinds.first().map(String::as_str),
            Some("thinking"),
            "{model}: {kinds:?}"
        );
        assert!(kinds.iter().any(|k| k == "text"), "{model}: {kinds:?}");
        let seen = last_request(mock).await;
        if model.starts_with("claude-sonnet") {
            let mut expected = body.clone();
            expected["model"] = json!("claude-sonnet-4-5");
            assert_eq!(seen["body"], expected);
            assert!(
                seen["headers"]["anthropic-beta"]
                    .as_str()
                    .unwrap()
                    .contains("claude-code-20250219")
            );
        } else {
            let sent = &seen["body"];
            let roles: Vec<&str> = sent["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["role"].as_str().unwrap())
                .collect();
            assert_eq!(roles, ["system", "user", "assistant", "tool", "user"]);
            assert_eq!(sent["messages"][2]["tool_calls"][0]["id"], "toolu_01A");
            assert_eq!(sent["messages"][3]["tool_call_id"], "toolu_01A");
            assert_eq!(sent["tools"].as_array().unwrap().len(), 3);
            assert_eq!(sent["reasoning_effort"], "high");
            assert_eq!(sent["stream_options"]["include_usage"], true);
        }
    }
    let records = gw.records().await;
    for model in ["claude-sonnet-4-5-20250929", "claude-haiku-4-5"] {
        let r = record(&records, &format!("user_5f1c0a_account__session_{model}"));
        assert_eq!(r.endpoint.as_deref(), Some("messages"));
        assert_eq!(r.user_agent.as_deref(), Some("claude-cli/2.0.14 (external, cli)"));
        assert!(
            r.stream && r.cost_usd.unwrap() > 0.0 && r.reasoning_tokens > 0,
            "{r:#?}"
        );
    }
}

#[tokio::test]
async fn a_failing_anthropic_deployment_falls_back_to_a_translated_one() {
    let (gw, _mock) = setup().await;
    let resp = post(&gw, "/v1/messages", &request("claude-down", true)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-litellm-attempted-fallbacks"], "1");
    // The answering deployment (DeepSeek) decides how the stream is written: translated.
    let kinds = check_sequence(&frames(&resp.text().await.unwrap()));
    assert_eq!(kinds, ["thinking", "text"]);
    let records = gw.records().await;
    let mine: Vec<&Record> = records
        .iter()
        .filter(|r| r.end_user.as_deref() == Some("u-claude-down-true"))
        .collect();
    assert_eq!(mine.len(), 2, "the failed attempt and the answer: {mine:#?}");
    assert!(mine.iter().all(|r| r.endpoint.as_deref() == Some("messages")));
    assert!(mine.iter().any(|r| r.provider == "anthropic" && r.http_status == 500));
    assert!(
        mine.iter()
            .any(|r| r.provider == "deepseek" && r.http_status == 200 && r.cost_usd.unwrap() > 0.0)
    );
}

#[tokio::test]
async fn the_response_cache_answers_repeats_in_anthropics_shape() {
    let mock = start_mock(&[]).await;
    let yaml = config(mock).replace(
        "general_settings:",
        "litellm_settings:\n  cache: true\n  cache_params: {type: local}\ngeneral_settings:",
    );
    let gw = gateway(&yaml).await;
    for model in ["claude-sonnet-4-5-20250929", "claude-haiku-4-5"] {
        let plain = request(model, false);
        let first = post(&gw, "/v1/messages", &plain).await;
        assert_eq!(first.headers()["x-tollgate-cache"], "miss");
        let first: Value = first.json().await.unwrap();
        let again = post(&gw, "/v1/messages", &plain).await;
        assert_eq!(again.headers()["x-tollgate-cache"], "hit", "{model}");
        assert_eq!(again.json::<Value>().await.unwrap(), first);

        // A different system prompt is a different request.
        let mut other = plain.clone();
        other["system"] = json!("Another system prompt.");
        let resp = post(&gw, "/v1/messages", &other).await;
        assert_eq!(resp.headers()["x-tollgate-cache"], "miss", "{model}");

        let streamed = request(model, true);
        let first = frames(&post(&gw, "/v1/messages", &streamed).await.text().await.unwrap());
        let resp = post(&gw, "/v1/messages", &streamed).await;
        assert_eq!(resp.headers()["x-tollgate-cache"], "hit", "{model}");
        let replayed = frames(&resp.text().await.unwrap());
        check_sequence(&replayed);
        let text = |events: &[(String, Value)]| -> String {
            events
                .iter()
                .filter_map(|(_, d)| d.pointer("/delta/text").and_then(Value::as_str))
                .collect()
        };
        assert!(!text(&first).is_empty());
        assert_eq!(text(&replayed), text(&first), "{model}");
    }
    let records = gw.records().await;
    let hits = records
        .iter()
        .filter(|r| r.cache == tollgate_core::CacheState::Hit)
        .count();
    assert_eq!(hits, 4, "{records:#?}");
}

#[tokio::test]
async fn max_tokens_is_fitted_to_the_deployments_output_limit() {
    let (gw, mock) = setup().await;
    // Claude Code's 32,000 to DeepSeek's chat model (8,192 at most): fitted, and said so.
    let mut body = request("small-output", false);
    body["max_tokens"] = json!(32000);
    let resp = post(&gw, "/v1/messages", &body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-tollgate-max-tokens-clamped"], "32000->8192");
    assert_eq!(last_request(mock).await["body"]["max_tokens"], 8192);
    // Within Claude's limit: passed through untouched.
    let mut body = request("claude-sonnet-4-5-20250929", false);
    body["max_tokens"] = json!(32000);
    let resp = post(&gw, "/v1/messages", &body).await;
    assert!(resp.headers().get("x-tollgate-max-tokens-clamped").is_none());
    assert_eq!(last_request(mock).await["body"], {
        let mut b = body.clone();
        b["model"] = json!("claude-sonnet-4-5");
        b
    });
}

#[tokio::test]
async fn a_workflow_named_as_a_model_answers_in_anthropics_shape() {
    let (gw, _mock) = setup().await;
    let resp = post(&gw, "/v1/messages", &request("claude-opus-4-1", false)).await;
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["type"], "message");
    assert_eq!(answer["model"], "claude-opus-4-1");
    assert!(answer["usage"]["output_tokens"].as_u64().unwrap() > 0);
    let resp = post(&gw, "/v1/messages", &request("claude-opus-4-1", true)).await;
    assert_eq!(resp.status(), 200);
    let events = frames(&resp.text().await.unwrap());
    let kinds = check_sequence(&events);
    assert!(kinds.iter().any(|k| k == "text"), "{kinds:?}");
    let delta = &events.iter().find(|(n, _)| n == "message_delta").unwrap().1;
    assert!(
        delta["usage"]["output_tokens"].as_u64().unwrap() > 0,
        "the run's usage: {delta}"
    );
    let records = gw.records().await;
    let runs: Vec<&Record> = records.iter().filter(|r| r.rollup).collect();
    assert_eq!(runs.len(), 2, "{records:#?}");
    assert!(
        records
            .iter()
            .filter(|r| r.workflow.as_deref() == Some("claude-opus-4-1"))
            .all(|r| r.endpoint.as_deref() == Some("messages"))
    );
}
