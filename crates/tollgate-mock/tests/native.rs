//! The mock's Gemini and Anthropic wire formats over HTTP: auth headers as each provider wants
//! them, thinking and cache usage in each provider's own fields, plain and streamed alike.

use serde_json::{Value, json};

async fn start() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(tollgate_mock::serve(l, tollgate_mock::MockConfig::default()));
    base
}

async fn post(url: &str, headers: &[(&str, &str)], body: &Value) -> (u16, String) {
    let mut req = reqwest::Client::new().post(url).json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

fn sse_data(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .flat_map(|e| e.lines())
        .filter_map(|l| l.trim_end_matches('\r').strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[tokio::test]
async fn gemini_wants_its_key_header_and_reports_thoughts_outside_candidates() {
    let base = start().await;
    let url = format!("{base}/v1beta/models/gemini-2.5-flash:generateContent");
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "Why is the sky blue?"}]}],
        "generationConfig": {"thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": true}}});
    let (status, text) = post(&url, &[("authorization", "Bearer k")], &body).await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("PERMISSION_DENIED"));

    let (status, text) = post(&url, &[("x-goog-api-key", "k")], &body).await;
    assert_eq!(status, 200, "{text}");
    let plain: Value = serde_json::from_str(&text).unwrap();
    let u = &plain["usageMetadata"];
    let thoughts = u["thoughtsTokenCount"].as_u64().unwrap();
    assert!(thoughts > 0);
    assert_eq!(
        u["totalTokenCount"].as_u64().unwrap(),
        u["promptTokenCount"].as_u64().unwrap() + u["candidatesTokenCount"].as_u64().unwrap() + thoughts
    );
    assert_eq!(plain["candidates"][0]["content"]["parts"][0]["thought"], true);

    let stream_url = format!("{base}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
    let (status, text) = post(&stream_url, &[("x-goog-api-key", "k")], &body).await;
    assert_eq!(status, 200);
    let events = sse_data(&text);
    assert_eq!(
        events.last().unwrap()["usageMetadata"],
        *u,
        "the last chunk has the whole usage"
    );
    assert_eq!(events.last().unwrap()["candidates"][0]["finishReason"], "STOP");

    // thinkingBudget 0 turns thinking off.
    let off = json!({"contents": body["contents"], "generationConfig": {"thinkingConfig": {"thinkingBudget": 0}}});
    let (_, text) = post(&url, &[("x-goog-api-key", "k")], &off).await;
    let v: Value = serde_json::from_str(&text).unwrap();
    assert!(v["usageMetadata"].get("thoughtsTokenCount").is_none());
}

#[tokio::test]
async fn anthropic_wants_key_and_version_and_writes_then_reads_the_cache() {
    let base = start().await;
    let url = format!("{base}/v1/messages");
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 2000,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "system": [{"type": "text", "text": "You are a careful reviewer. ".repeat(40), "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "Review this."}, {"role": "assistant", "content": "Sure."},
                     {"role": "user", "content": [{"type": "text", "text": "Go."}]}]});
    let (status, _) = post(&url, &[("anthropic-version", "2023-06-01")], &body).await;
    assert_eq!(status, 401);
    let (status, _) = post(&url, &[("x-api-key", "k")], &body).await;
    assert_eq!(status, 400);
    let h = [("x-api-key", "k"), ("anthropic-version", "2023-06-01")];

    let (status, text) = post(&url, &h, &body).await;
    assert_eq!(status, 200, "{text}");
    let first: Value = serde_json::from_str(&text).unwrap();
    let written = first["usage"]["cache_creation_input_tokens"].as_u64().unwrap();
    assert!(written > 0);
    assert_eq!(first["usage"]["cache_read_input_tokens"], 0);
    assert_eq!(first["content"][0]["type"], "thinking");

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let (_, text) = post(&url, &h, &streamed).await;
    let events = sse_data(&text);
    let start = &events[0]["message"]["usage"];
    assert_eq!(start["cache_read_input_tokens"], written, "second time: read");
    assert_eq!(start["input_tokens"], first["usage"]["input_tokens"]);
    let delta = events.iter().find(|e| e["type"] == "message_delta").unwrap();
    assert_eq!(
        delta["usage"]["output_tokens"], first["usage"]["output_tokens"],
        "cumulative"
    );
    assert_eq!(events.last().unwrap()["type"], "message_stop");

    // Without cache_control, Anthropic caches nothing.
    let mut plain = body.clone();
    plain["system"] = json!("No marker here.");
    let (_, text) = post(&url, &h, &plain).await;
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (
            v["usage"]["cache_creation_input_tokens"].as_u64(),
            v["usage"]["cache_read_input_tokens"].as_u64()
        ),
        (Some(0), Some(0))
    );
}
