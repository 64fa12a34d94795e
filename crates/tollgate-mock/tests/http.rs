//! The mock over real HTTP on loopback, as the gateway and the benchmarks see it.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use tollgate_mock::{MockConfig, parse_fail_rule};

/// A mock on an ephemeral loopback port, stopped when dropped.
struct Mock {
    base: String,
    client: reqwest::Client,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Mock {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Mock {
    async fn start(config: MockConfig) -> Mock {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(tollgate_mock::serve(listener, config));
        Mock {
            base,
            client: reqwest::Client::new(),
            task,
        }
    }

    async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.base))
            .bearer_auth("sk-any-key")
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn chat(&self, body: &Value) -> Value {
        let response = self.post("/v1/chat/completions", body).await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// The `data:` payloads of a streamed response, `[DONE]` excluded (asserted present, last).
    async fn chat_stream(&self, body: &Value) -> Vec<Value> {
        let response = self.post("/v1/chat/completions", body).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let text = response.text().await.unwrap();
        let events: Vec<&str> = text
            .split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| e.strip_prefix("data: ").unwrap())
            .collect();
        assert_eq!(events.last(), Some(&"[DONE]"));
        events[..events.len() - 1]
            .iter()
            .map(|e| serde_json::from_str(e).unwrap())
            .collect()
    }

    async fn stats(&self) -> Value {
        self.client
            .get(format!("{}/mock/stats", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn reset(&self) {
        let response = self
            .client
            .post(format!("{}/mock/reset", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
}

fn ask(model: &str, question: &str) -> Value {
    json!({"model": model, "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": question}
    ]})
}

fn with(mut body: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// Concatenates one delta field over all chunks.
fn collect_delta(chunks: &[Value], field: &str) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"].get(0))
        .filter_map(|choice| choice["delta"][field].as_str())
        .collect()
}

#[tokio::test]
async fn plain_completion_has_openai_shape_and_consistent_usage() {
    let mock = Mock::start(MockConfig::default()).await;
    let body = ask("gpt-4o-mini", "What is 2+2? Answer with one number please.");
    let v = mock.chat(&body).await;

    assert_eq!(v["object"], "chat.completion");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-mock-"));
    assert_eq!(v["model"], "gpt-4o-mini");
    assert!(v["created"].as_u64().unwrap() > 1_700_000_000);
    let message = &v["choices"][0]["message"];
    assert_eq!(message["role"], "assistant");
    let content = message["content"].as_str().unwrap();
    assert!(
        content.starts_with("Mock answer to: What is 2+2? Answer with one number"),
        "{content}"
    );
    assert!(message.get("reasoning_content").is_none());
    assert_eq!(v["choices"][0]["finish_reason"], "stop");

    let usage = &v["usage"];
    let chars = "You are terse.".len() + "What is 2+2? Answer with one number please.".len();
    assert_eq!(usage["prompt_tokens"], (chars / 4) as u64);
    let completion = usage["completion_tokens"].as_u64().unwrap();
    assert!((20..=400).contains(&completion), "{completion}");
    assert_eq!(
        usage["total_tokens"],
        usage["prompt_tokens"].as_u64().unwrap() + completion
    );
    assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 0);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 0);
    assert!(usage.get("prompt_cache_hit_tokens").is_none());
    // One word per visible token.
    assert_eq!(content.split(' ').count() as u64, completion);

    // Deterministic: the same request, the same answer.
    let again = mock.chat(&body).await;
    assert_eq!(again["id"], v["id"]);
    assert_eq!(again["choices"], v["choices"]);
    assert_eq!(again["usage"], v["usage"]);
}

#[tokio::test]
async fn max_tokens_cuts_the_answer_with_finish_reason_length() {
    let mock = Mock::start(MockConfig::default()).await;
    for limit in [
        json!({"max_tokens": 5}),
        json!({"max_completion_tokens": 5, "max_tokens": 900}),
    ] {
        let v = mock
            .chat(&with(ask("gpt-4o-mini", "Tell me a long story"), limit))
            .await;
        assert_eq!(v["usage"]["completion_tokens"], 5);
        assert_eq!(v["choices"][0]["finish_reason"], "length");
        assert_eq!(v["choices"][0]["message"]["content"], "Mock answer to: Tell me");
    }
}

#[tokio::test]
async fn streamed_chunks_reassemble_to_the_plain_answer_and_usage() {
    let mock = Mock::start(MockConfig::default()).await;
    for model in ["gpt-4o-mini", "deepseek-reasoner"] {
        let body = ask(model, "Explain streaming in a few words");
        mock.reset().await;
        let plain = mock.chat(&body).await;
        mock.reset().await;
        let chunks = mock
            .chat_stream(&with(
                body.clone(),
                json!({"stream": true, "stream_options": {"include_usage": true}}),
            ))
            .await;

        for c in &chunks {
            assert_eq!(c["object"], "chat.completion.chunk");
            assert_eq!(c["id"], plain["id"]);
            assert_eq!(c["model"], model);
        }
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        let message = &plain["choices"][0]["message"];
        assert_eq!(collect_delta(&chunks, "content"), message["content"].as_str().unwrap());
        assert!(
            chunks
                .iter()
                .filter(|c| c["choices"][0]["delta"]["content"].is_string())
                .count()
                > 3
        );
        assert_eq!(
            collect_delta(&chunks, "reasoning_content"),
            message["reasoning_content"].as_str().unwrap_or("")
        );

        // The finish chunk, then the usage chunk with no choices; `usage: null` before that.
        let (usage_chunk, rest) = chunks.split_last().unwrap();
        assert_eq!(usage_chunk["choices"], json!([]));
        assert_eq!(usage_chunk["usage"], plain["usage"]);
        assert_eq!(rest.last().unwrap()["choices"][0]["finish_reason"], "stop");
        assert!(rest.iter().all(|c| c["usage"].is_null()));
        assert!(
            rest[..rest.len() - 1]
                .iter()
                .all(|c| c["choices"][0]["finish_reason"].is_null())
        );

        // Without include_usage there is no usage at all.
        let chunks = mock.chat_stream(&with(body, json!({"stream": true}))).await;
        assert!(chunks.iter().all(|c| c.get("usage").is_none()));
        assert_eq!(chunks.last().unwrap()["choices"][0]["finish_reason"], "stop");
    }
}

#[tokio::test]
async fn reasoning_models_report_reasoning_tokens_and_content() {
    let mock = Mock::start(MockConfig::default()).await;
    for model in [
        "deepseek-reasoner",
        "grok-4-1-fast-reasoning",
        "MiniMax-M2.1",
        "gemini-2.5-flash",
    ] {
        let v = mock.chat(&ask(model, "Think hard about this")).await;
        let usage = &v["usage"];
        let reasoning = usage["completion_tokens_details"]["reasoning_tokens"].as_u64().unwrap();
        let completion = usage["completion_tokens"].as_u64().unwrap();
        assert!(
            reasoning > 0 && reasoning < completion,
            "{model}: {reasoning} of {completion}"
        );
        let thought = v["choices"][0]["message"]["reasoning_content"].as_str().unwrap();
        assert_eq!(thought.split(' ').count() as u64, reasoning, "{model}");
        let visible = v["choices"][0]["message"]["content"].as_str().unwrap();
        assert_eq!(visible.split(' ').count() as u64, completion - reasoning, "{model}");
    }
    let v = mock.chat(&ask("gpt-4o-mini", "Think hard about this")).await;
    assert_eq!(v["usage"]["completion_tokens_details"]["reasoning_tokens"], 0);
    assert!(v["choices"][0]["message"].get("reasoning_content").is_none());
}

#[tokio::test]
async fn a_repeated_prefix_reports_cached_tokens() {
    let mock = Mock::start(MockConfig::default()).await;
    let system = "You are a meticulous assistant. ".repeat(63); // 2016 chars = 504 tokens
    let turn = |model: &str, question: &str| {
        json!({"model": model, "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": question}
        ]})
    };

    let first = mock.chat(&turn("gpt-4o-mini", "First question?")).await;
    assert_eq!(first["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    let second = mock.chat(&turn("gpt-4o-mini", "A different second question?")).await;
    // 504 prefix tokens round down to whole 64-token blocks.
    assert_eq!(second["usage"]["prompt_tokens_details"]["cached_tokens"], 448);
    assert!(second["usage"].get("prompt_cache_hit_tokens").is_none());

    // The cache is per model, and DeepSeek also reports its native fields.
    let first = mock.chat(&turn("deepseek-chat", "First question?")).await;
    let prompt = first["usage"]["prompt_tokens"].as_u64().unwrap();
    assert_eq!(first["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(first["usage"]["prompt_cache_hit_tokens"], 0);
    assert_eq!(first["usage"]["prompt_cache_miss_tokens"], prompt);
    let second = mock.chat(&turn("deepseek-chat", "First question?")).await;
    assert_eq!(second["usage"]["prompt_tokens_details"]["cached_tokens"], 448);
    assert_eq!(second["usage"]["prompt_cache_hit_tokens"], 448);
    assert_eq!(second["usage"]["prompt_cache_miss_tokens"], prompt - 448);

    // Reset forgets cached prefixes.
    mock.reset().await;
    let after = mock.chat(&turn("deepseek-chat", "First question?")).await;
    assert_eq!(after["usage"]["prompt_cache_hit_tokens"], 0);
}

fn weather_request(stream: bool) -> Value {
    json!({
        "model": "gpt-4o-mini",
        "stream": stream,
        "messages": [{"role": "user", "content": "Use the weather tool for Paris"}],
        "tools": [{"type": "function", "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
        }}]
    })
}

#[tokio::test]
async fn tools_produce_tool_calls_plain_and_streamed() {
    let mock = Mock::start(MockConfig::default()).await;
    let v = mock.chat(&weather_request(false)).await;
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert!(choice["message"]["content"].is_null());
    let call = &choice["message"]["tool_calls"][0];
    assert!(call["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let arguments: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"city": "mock"}));

    let chunks = mock.chat_stream(&weather_request(true)).await;
    let deltas: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    assert!(deltas.len() >= 2, "name first, then argument pieces");
    assert!(deltas.iter().all(|d| d["index"] == 0));
    assert_eq!(deltas[0]["id"], call["id"]);
    assert_eq!(deltas[0]["function"]["name"], "get_weather");
    let streamed_args: String = deltas
        .iter()
        .filter_map(|d| d["function"]["arguments"].as_str())
        .collect();
    assert_eq!(streamed_args, call["function"]["arguments"].as_str().unwrap());
    assert_eq!(collect_delta(&chunks, "content"), "");
    assert_eq!(chunks.last().unwrap()["choices"][0]["finish_reason"], "tool_calls");

    // Tools offered but not asked for: a normal answer.
    let mut plain = weather_request(false);
    plain["messages"][0]["content"] = json!("What is the weather like?");
    let v = mock.chat(&plain).await;
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(v["choices"][0]["message"].get("tool_calls").is_none());
}

#[tokio::test]
async fn failure_rate_one_fails_every_request_of_the_model() {
    let config = MockConfig {
        failures: vec![parse_fail_rule("grok-4-1-fast-reasoning=1.0").unwrap()],
        ..MockConfig::default()
    };
    let mock = Mock::start(config).await;
    for model in [
        "grok-4-1-fast-reasoning",
        "xai/grok-4-1-fast-reasoning",
        "grok-4-1-fast-reasoning",
    ] {
        let response = mock.post("/v1/chat/completions", &ask(model, "hi")).await;
        assert_eq!(response.status(), 500);
        let v: Value = response.json().await.unwrap();
        assert_eq!(
            v,
            json!({"error": {"message": "mock injected failure", "type": "server_error", "param": null, "code": "500"}})
        );
    }
    mock.chat(&ask("gpt-4o-mini", "hi")).await;
    assert_eq!(
        mock.stats().await,
        json!({"grok-4-1-fast-reasoning": 2, "xai/grok-4-1-fast-reasoning": 1, "gpt-4o-mini": 1})
    );
}

#[tokio::test]
async fn failure_rate_half_fails_every_other_request_with_retry_after() {
    let config = MockConfig {
        failures: vec![parse_fail_rule("flaky=0.5:429").unwrap()],
        ..MockConfig::default()
    };
    let mock = Mock::start(config).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let response = mock.post("/v1/chat/completions", &ask("flaky", "hi")).await;
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            assert_eq!(response.headers()["retry-after"], "1");
            let v: Value = response.json().await.unwrap();
            assert_eq!(v["error"]["type"], "rate_limit_error");
            assert_eq!(v["error"]["code"], "429");
        }
    }
    assert_eq!(statuses, [429, 200, 429, 200]);
    assert_eq!(mock.stats().await, json!({"flaky": 4}));

    // Reset restarts the schedule.
    mock.reset().await;
    assert_eq!(mock.stats().await, json!({}));
    assert_eq!(
        mock.post("/v1/chat/completions", &ask("flaky", "hi")).await.status(),
        429
    );
}

#[tokio::test]
async fn headers_inject_one_off_failures_and_delays() {
    let mock = Mock::start(MockConfig::default()).await;
    let url = format!("{}/v1/chat/completions", mock.base);
    let body = ask("gpt-4o-mini", "hi");

    let response = mock
        .client
        .post(&url)
        .header("x-mock-fail", "500")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    let response = mock
        .client
        .post(&url)
        .header("x-mock-fail", "429")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");

    let started = Instant::now();
    let err = mock
        .client
        .post(&url)
        .header("x-mock-fail", "timeout")
        .timeout(Duration::from_millis(300))
        .json(&body)
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));

    let started = Instant::now();
    let response = mock
        .client
        .post(&url)
        .header("x-mock-delay-ms", "200")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(200));

    // The header is one-off: the next request succeeds.
    assert_eq!(mock.post("/v1/chat/completions", &body).await.status(), 200);
    assert_eq!(mock.stats().await, json!({"gpt-4o-mini": 5}));
}

#[tokio::test]
async fn configured_delays_hold_the_first_byte_and_space_the_chunks() {
    let mock = Mock::start(MockConfig {
        delay_ms: 150,
        chunk_delay_ms: 5,
        ..MockConfig::default()
    })
    .await;
    let started = Instant::now();
    let response = mock
        .post(
            "/v1/chat/completions",
            &with(ask("gpt-4o-mini", "hi"), json!({"stream": true})),
        )
        .await;
    let mut body = response.bytes_stream();
    body.next().await.unwrap().unwrap();
    let first_byte = started.elapsed();
    let mut frames = 1;
    while let Some(bytes) = body.next().await {
        frames += bytes.unwrap().windows(6).filter(|w| w == b"data: ").count();
    }
    assert!(first_byte >= Duration::from_millis(150), "{first_byte:?}");
    assert!(frames > 5);
    assert!(started.elapsed() >= first_byte + Duration::from_millis(5 * (frames as u64 - 2)));
}

#[tokio::test]
async fn bad_requests_get_openai_errors() {
    let mock = Mock::start(MockConfig::default()).await;
    let response = mock
        .client
        .post(format!("{}/v1/chat/completions", mock.base))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let v: Value = response.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");

    let response = mock.post("/v1/chat/completions", &json!({"messages": []})).await;
    assert_eq!(response.status(), 400, "model is required");

    let response = mock.post("/v1/nothing", &json!({})).await;
    assert_eq!(response.status(), 404);
    let response = mock
        .client
        .get(format!("{}/v1/chat/completions", mock.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(mock.stats().await, json!({}), "rejected requests are not counted");
}

#[tokio::test]
async fn any_path_prefix_reaches_the_endpoints() {
    let mock = Mock::start(MockConfig::default()).await;
    for path in [
        "/chat/completions",
        "/anything/v1/chat/completions",
        "/openai/v1/chat/completions/",
    ] {
        let response = mock.post(path, &ask("custom-model", "hi")).await;
        assert_eq!(response.status(), 200, "{path}");
    }
    let v: Value = mock
        .client
        .get(format!("{}/proxy/v1/models", mock.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["object"], "list");
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"custom-model") && ids.contains(&"gpt-4o-mini"), "{ids:?}");
}

/// Decodes standard base64, enough to check the mock's encoding independently.
fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let mut out = Vec::new();
    for quad in text.as_bytes().chunks(4) {
        let digits: Vec<u8> = quad.iter().copied().filter(|&c| c != b'=').map(value).collect();
        let n = digits.iter().fold(0u32, |n, &d| (n << 6) | u32::from(d)) << (6 * (4 - digits.len()));
        out.extend_from_slice(&n.to_be_bytes()[1..digits.len()]);
    }
    out
}

#[tokio::test]
async fn embeddings_are_deterministic_vectors_with_usage() {
    let mock = Mock::start(MockConfig::default()).await;
    let body = json!({"model": "text-embedding-3-small", "input": ["hello world!", "another input"]});
    let response = mock.post("/v1/embeddings", &body).await;
    assert_eq!(response.status(), 200);
    let v: Value = response.json().await.unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "text-embedding-3-small");
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[1]["index"], 1);
    // The mock computes in f32, as OpenAI's vectors are.
    let first: Vec<f32> = data[0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(first.len(), 8);
    assert!((first.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-4);
    // Components spread over [-1, 1], not a pattern.
    let steps: Vec<f32> = first.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(steps.windows(2).any(|s| (s[0] - s[1]).abs() > 0.01), "{first:?}");
    assert_ne!(data[0]["embedding"], data[1]["embedding"]);
    assert_eq!(v["usage"], json!({"prompt_tokens": 3 + 3, "total_tokens": 6}));

    // A single string, and base64 as the official Python SDK requests by default.
    let b64 = json!({"model": "text-embedding-3-small", "input": "hello world!", "encoding_format": "base64"});
    let v: Value = mock.post("/v1/embeddings", &b64).await.json().await.unwrap();
    let bytes = decode_base64(v["data"][0]["embedding"].as_str().unwrap());
    let decoded: Vec<f32> = bytes
        .chunks(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(decoded, first);
    assert_eq!(mock.stats().await, json!({"text-embedding-3-small": 2}));
}

#[tokio::test]
async fn stopping_the_server_releases_hung_requests() {
    let mock = Mock::start(MockConfig::default()).await;
    let hung = mock
        .client
        .post(format!("{}/v1/chat/completions", mock.base))
        .header("x-mock-fail", "timeout")
        .json(&ask("gpt-4o-mini", "hi"))
        .send();
    let hung = tokio::spawn(hung);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!hung.is_finished());
    let base = mock.base.clone();
    drop(mock);

    // Without the release the request would hang for ten minutes.
    let outcome = tokio::time::timeout(Duration::from_secs(5), hung)
        .await
        .expect("released")
        .unwrap();
    assert!(outcome.is_err() || outcome.is_ok_and(|r| r.status() == 504));
    assert!(
        reqwest::get(format!("{base}/v1/models")).await.is_err(),
        "no longer listening"
    );
}
