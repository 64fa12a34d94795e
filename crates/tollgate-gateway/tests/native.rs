//! Native Gemini and Anthropic providers end to end: the gateway in front of `tollgate-mock`
//! speaking each wire format, plain and streamed, with reasoning, prompt-cache reads and writes,
//! tool calls, and max_tokens hygiene. Usage and cost are checked against the mock's native
//! figures converted by hand, and streamed usage against plain usage of the same answer.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde_json::{Value, json};
use tollgate_core::{Record, RecordStatus};
use tollgate_gateway::{LiveState, RunningGateway, ServeOptions};

const KEY: &str = "sk-test-native-0123456789";

async fn start_mock() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(tollgate_mock::serve(l, tollgate_mock::MockConfig::default()));
    addr
}

struct Gw {
    gw: RunningGateway,
    base: String,
    dir: tempfile::TempDir,
    http: reqwest::Client,
    mock: SocketAddr,
}

async fn gateway() -> Gw {
    let mock = start_mock().await;
    let yaml = format!(
        r#"model_list:
  - model_name: reviewer
    litellm_params:
      model: gemini/gemini-2.5-flash
      api_base: http://{mock}
      api_key: gemini-key-123
  - model_name: premium
    litellm_params:
      model: anthropic/claude-sonnet-4-5
      api_base: http://{mock}
      api_key: anthropic-key-123
  - model_name: small-window
    litellm_params:
      model: anthropic/claude-sonnet-4-5
      api_base: http://{mock}/v1
      api_key: anthropic-key-123
      max_input_tokens: 2000
general_settings:
  master_key: {KEY}
"#
    );
    let dir = tempfile::tempdir().unwrap();
    let env = BTreeMap::new();
    let cfg = tollgate_core::config::parse(&yaml, &dir.path().join("config.yaml"), &env).unwrap();
    let live = LiveState::build(cfg, 1, None, &env).unwrap();
    assert!(
        !live.warnings.iter().any(|w| w.message.contains("OpenAI-compatible")),
        "no stand-in warning: {:?}",
        live.warnings
    );
    let opts = ServeOptions {
        port: 0,
        data_dir: dir.path().join("data"),
        log_jsonl: None,
        ..ServeOptions::default()
    };
    let gw = tollgate_gateway::start(live, opts).await.unwrap();
    Gw {
        base: format!("http://{}", gw.addr),
        gw,
        dir,
        http: reqwest::Client::new(),
        mock,
    }
}

impl Gw {
    async fn post(&self, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/chat/completions", self.base))
            .bearer_auth(KEY)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// The parsed chunks of a stream (without `[DONE]`) and whether it ended with `[DONE]`.
    async fn stream(&self, body: &Value) -> (Vec<Value>, bool, reqwest::header::HeaderMap) {
        let resp = self.post(body).await;
        assert_eq!(resp.status(), 200);
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let mut chunks = Vec::new();
        let mut done = false;
        for data in text.split("\n\n").filter_map(|e| e.strip_prefix("data: ")) {
            if data == "[DONE]" {
                done = true;
            } else {
                chunks.push(serde_json::from_str(data).unwrap());
            }
        }
        (chunks, done, headers)
    }

    /// What the mock answers to a native request sent directly (bypassing the gateway).
    async fn mock_direct(&self, path: &str, headers: &[(&str, &str)], body: Value) -> Value {
        let mut req = self.http.post(format!("http://{}{path}", self.mock)).json(&body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap().json().await.unwrap()
    }

    async fn records(self) -> Vec<Record> {
        self.gw.shutdown().await.unwrap();
        tollgate_store::read_sqlite(&self.dir.path().join("data"))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    }
}

fn conversation(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "stream": stream,
        "stream_options": {"include_usage": true},
        "reasoning_effort": "low",
        "messages": [
            {"role": "system", "content": [{"type": "text",
              "text": "You review pull requests for a payments company. Be precise and brief. ".repeat(12),
              "cache_control": {"type": "ephemeral"}}]},
            {"role": "user", "content": "Review: fn add(a: i32, b: i32) -> i32 { a - b }"}
        ]
    })
}

fn usage_of_stream(chunks: &[Value]) -> Value {
    let with_usage: Vec<&Value> = chunks
        .iter()
        .filter(|c| c.get("usage").is_some_and(|u| !u.is_null()))
        .collect();
    assert_eq!(with_usage.len(), 1, "exactly one usage chunk");
    with_usage[0]["usage"].clone()
}

fn text_of(chunks: &[Value], key: &str) -> String {
    chunks
        .iter()
        .filter_map(|c| c.pointer(&format!("/choices/0/delta/{key}")).and_then(Value::as_str))
        .collect()
}

#[tokio::test]
async fn gemini_plain_and_streamed_usage_agree_and_count_thinking_outside_candidates() {
    let g = gateway().await;
    // The mock's own Gemini answer to the same conversation, for the expected figures. (It also
    // puts the system prompt in the mock's implicit cache, so both calls below read it.)
    let native = g
        .mock_direct(
            "/v1beta/models/gemini-2.5-flash:generateContent",
            &[("x-goog-api-key", "k")],
            json!({"systemInstruction": {"parts": [{"text": "You review pull requests for a payments company. Be precise and brief. ".repeat(12)}]},
                   "contents": [{"role": "user", "parts": [{"text": "Review: fn add(a: i32, b: i32) -> i32 { a - b }"}]}],
                   "generationConfig": {"thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": true}}}),
        )
        .await;
    let plain: Value = g.post(&conversation("reviewer", false)).await.json().await.unwrap();
    let m = &native["usageMetadata"];
    let (prompt, candidates, thoughts) = (
        m["promptTokenCount"].as_u64().unwrap(),
        m["candidatesTokenCount"].as_u64().unwrap(),
        m["thoughtsTokenCount"].as_u64().unwrap(),
    );
    assert!(thoughts > 0);
    let u = &plain["usage"];
    assert_eq!(u["prompt_tokens"], prompt);
    assert_eq!(
        u["completion_tokens"],
        candidates + thoughts,
        "thoughts are outside candidatesTokenCount"
    );
    assert_eq!(u["completion_tokens_details"]["reasoning_tokens"], thoughts);
    assert_eq!(u["total_tokens"], prompt + candidates + thoughts);
    assert!(
        !plain["choices"][0]["message"]["reasoning_content"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    assert_eq!(plain["choices"][0]["finish_reason"], "stop");
    assert_eq!(plain["model"], "reviewer");

    let (chunks, done, _) = g.stream(&conversation("reviewer", true)).await;
    assert!(done);
    assert_eq!(usage_of_stream(&chunks), *u, "streamed usage equals plain usage");
    assert_eq!(
        text_of(&chunks, "content"),
        plain["choices"][0]["message"]["content"].as_str().unwrap()
    );
    assert_eq!(
        text_of(&chunks, "reasoning_content"),
        plain["choices"][0]["message"]["reasoning_content"].as_str().unwrap()
    );

    let cached = u["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap();
    assert!(cached > 0, "the system prompt was seen before: {u}");
    let records = g.records().await;
    assert_eq!(records.len(), 2);
    for r in &records {
        assert_eq!(r.status, RecordStatus::Success);
        assert_eq!(r.provider, "gemini");
        assert_eq!(
            (r.prompt_tokens, r.reasoning_tokens, r.cached_tokens),
            (prompt, thoughts, cached)
        );
        // gemini-2.5-flash: input 3e-7, cache read 3e-8, output 2.5e-6, reasoning 2.5e-6.
        let expected = (prompt - cached) as f64 * 3e-7
            + cached as f64 * 3e-8
            + candidates as f64 * 2.5e-6
            + thoughts as f64 * 2.5e-6;
        assert!(
            (r.cost_usd.unwrap() - expected).abs() < 1e-12,
            "{} vs {expected}",
            r.cost_usd.unwrap()
        );
        assert!((r.cost_reasoning_usd.unwrap() - thoughts as f64 * 2.5e-6).abs() < 1e-15);
    }
}

#[tokio::test]
async fn gemini_implicit_cache_reads_are_inside_prompt_tokens() {
    let g = gateway().await;
    let mut body = conversation("reviewer", false);
    g.post(&body).await;
    // Same history, new last turn: the mock reports the prefix as cached.
    body["messages"]
        .as_array_mut()
        .unwrap()
        .push(json!({"role": "assistant", "content": "Subtraction bug."}));
    body["messages"]
        .as_array_mut()
        .unwrap()
        .push(json!({"role": "user", "content": "Fix it."}));
    g.post(&body).await;
    let plain: Value = g.post(&body).await.json().await.unwrap();
    let cached = plain["usage"]["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap();
    assert!(cached > 0, "{plain}");
    body["stream"] = json!(true);
    let (chunks, _, _) = g.stream(&body).await;
    assert_eq!(usage_of_stream(&chunks), plain["usage"]);
    let records = g.records().await;
    let r = records.last().unwrap();
    assert_eq!(r.cached_tokens, cached);
    assert_eq!(r.cache_creation_tokens, 0);
    // gemini-2.5-flash cache reads at 3e-8.
    assert!((r.cost_cache_read_usd.unwrap() - cached as f64 * 3e-8).abs() < 1e-15);
    assert!((r.cost_input_usd.unwrap() - (r.prompt_tokens - cached) as f64 * 3e-7).abs() < 1e-15);
}

#[tokio::test]
async fn anthropic_cache_write_then_read_with_thinking_plain_and_streamed() {
    let g = gateway().await;
    let mut body = conversation("premium", false);
    body["messages"]
        .as_array_mut()
        .unwrap()
        .push(json!({"role": "assistant", "content": "It subtracts."}));
    body["messages"]
        .as_array_mut()
        .unwrap()
        .push(json!({"role": "user", "content": "Suggest a fix."}));
    // First time: the cache_control-marked prefix is written.
    let first: Value = g.post(&body).await.json().await.unwrap();
    let u1 = &first["usage"];
    let written = u1["prompt_tokens_details"]["cache_creation_tokens"].as_u64().unwrap();
    assert!(written > 0, "{u1}");
    assert_eq!(u1["prompt_tokens_details"]["cached_tokens"], 0);
    let reasoning = u1["completion_tokens_details"]["reasoning_tokens"].as_u64().unwrap();
    assert!(reasoning > 0, "reasoning_effort turns thinking on: {u1}");
    assert!(
        !first["choices"][0]["message"]["reasoning_content"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    assert!(first["choices"][0]["message"]["thinking_blocks"][0]["signature"].is_string());
    // Second time (plain and streamed): read, and the usage of both agrees.
    let second: Value = g.post(&body).await.json().await.unwrap();
    let u2 = &second["usage"];
    assert_eq!(u2["prompt_tokens_details"]["cached_tokens"], written);
    assert!(u2["prompt_tokens_details"].get("cache_creation_tokens").is_none());
    assert_eq!(
        u2["prompt_tokens"], u1["prompt_tokens"],
        "prompt tokens include cache reads and writes"
    );
    body["stream"] = json!(true);
    let (chunks, done, _) = g.stream(&body).await;
    assert!(done);
    assert_eq!(usage_of_stream(&chunks), *u2, "streamed usage equals plain usage");

    let records = g.records().await;
    assert_eq!(records.len(), 3);
    let prompt = u1["prompt_tokens"].as_u64().unwrap();
    let completion = u1["completion_tokens"].as_u64().unwrap();
    // claude-sonnet-4-5: input 3e-6, cache write 3.75e-6, cache read 3e-7, output (and thinking) 1.5e-5.
    let write_cost = (prompt - written) as f64 * 3e-6 + written as f64 * 3.75e-6 + completion as f64 * 1.5e-5;
    let read_cost = (prompt - written) as f64 * 3e-6 + written as f64 * 3e-7 + completion as f64 * 1.5e-5;
    assert!((records[0].cost_usd.unwrap() - write_cost).abs() < 1e-12);
    assert_eq!(records[0].cache_creation_tokens, written);
    for r in &records[1..] {
        assert!((r.cost_usd.unwrap() - read_cost).abs() < 1e-12, "{r:?}");
        assert_eq!(r.cached_tokens, written);
        assert_eq!(r.provider, "anthropic");
    }
}

fn tool_request(model: &str, stream: bool) -> Value {
    json!({
        "model": model, "stream": stream, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "Use the tool to look up the weather in Paris."}],
        "tools": [{"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "tool_choice": "required"
    })
}

#[tokio::test]
async fn tool_calls_plain_and_streamed_from_both_providers() {
    let g = gateway().await;
    for model in ["reviewer", "premium"] {
        let plain: Value = g.post(&tool_request(model, false)).await.json().await.unwrap();
        let choice = &plain["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls", "{model}: {plain}");
        let call = &choice["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "get_weather");
        assert_eq!(
            serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(),
            json!({"city": "mock"})
        );

        let (chunks, done, _) = g.stream(&tool_request(model, true)).await;
        assert!(done);
        let deltas: Vec<&Value> = chunks
            .iter()
            .filter_map(|c| c.pointer("/choices/0/delta/tool_calls/0"))
            .collect();
        assert!(
            deltas.iter().all(|d| d["index"] == 0),
            "{model}: one call, index 0: {deltas:?}"
        );
        assert_eq!(deltas[0]["id"], call["id"], "{model}: same call id plain and streamed");
        let args: String = deltas
            .iter()
            .filter_map(|d| d.pointer("/function/arguments").and_then(Value::as_str))
            .collect();
        assert_eq!(
            args.replace(' ', ""),
            call["function"]["arguments"].as_str().unwrap().replace(' ', "")
        );
        assert_eq!(usage_of_stream(&chunks), plain["usage"], "{model}");
        let finishes: Vec<&Value> = chunks
            .iter()
            .filter_map(|c| c.pointer("/choices/0/finish_reason"))
            .filter(|f| !f.is_null())
            .collect();
        assert_eq!(finishes, [&json!("tool_calls")]);

        // The call and its result go back to the provider in its own format.
        let mut next = tool_request(model, false);
        let msgs = next["messages"].as_array_mut().unwrap();
        msgs.push(choice["message"].clone());
        msgs.push(json!({"role": "tool", "tool_call_id": call["id"], "content": "{\"temp_c\": 21}"}));
        next["tool_choice"] = json!("none");
        let resp = g.post(&next).await;
        assert_eq!(resp.status(), 200, "{model}: {}", resp.text().await.unwrap());
    }
}

#[tokio::test]
async fn max_tokens_is_clamped_to_the_context_window_with_a_header() {
    let g = gateway().await;
    // small-window: 2000 input tokens; ~1200 bytes of prompt ≈ 400+ tokens estimated.
    let body = json!({"model": "small-window", "max_tokens": 5000,
        "messages": [{"role": "user", "content": "word ".repeat(240)}]});
    let resp = g.post(&body).await;
    assert_eq!(resp.status(), 200);
    let clamped = resp.headers()["x-tollgate-max-tokens-clamped"]
        .to_str()
        .unwrap()
        .to_string();
    let (from, to) = clamped.split_once("->").unwrap();
    assert_eq!(from, "5000");
    let to: u64 = to.parse().unwrap();
    assert!(to < 2000 && to > 1000, "{clamped}");
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let (_, done, headers) = g.stream(&streamed).await;
    assert!(done);
    assert_eq!(headers["x-tollgate-max-tokens-clamped"], clamped.as_str());
    // A request that fits is not touched.
    let resp = g
        .post(&json!({"model": "premium", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert!(resp.headers().get("x-tollgate-max-tokens-clamped").is_none());
    g.records().await;
}
