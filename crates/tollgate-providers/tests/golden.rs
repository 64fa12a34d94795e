//! Golden tests for every translation pair, plain and streamed, with tools and reasoning:
//! OpenAI request → Gemini/Anthropic request, Gemini/Anthropic response → OpenAI response,
//! Gemini/Anthropic stream → OpenAI chunks, and the OpenAI family's identity path.
//! Snapshots live in `tests/snapshots`; review changes with `cargo insta review`.

use serde_json::{Map, Value, json};
use tollgate_providers::provider::route;
use tollgate_providers::translate::{UpstreamRequest, build_request};
use tollgate_providers::{anthropic, gemini};

const CREATED: u64 = 1_750_000_000;

/// A conversation that exercises every request feature: system, multi-turn, an image as a data
/// URL, tools with `tool_choice`, a tool call and its result, `response_format`, `stop`,
/// sampling, `max_completion_tokens`, `reasoning_effort`, and fields only the provider knows.
fn rich_request() -> Map<String, Value> {
    serde_json::from_value(json!({
        "model": "group",
        "messages": [
            {"role": "system", "content": "You are terse.", "cache_control": {"type": "ephemeral"}},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in this picture, and the weather in Paris?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
            ]},
            {"role": "assistant", "content": "Let me check.",
             "thinking_blocks": [{"type": "thinking", "thinking": "Need weather.", "signature": "sig-1"}],
             "tool_calls": [{"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
                 "extra_content": {"google": {"thought_signature": "dGhvdWdodA=="}}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp_c\": 21}"},
            {"role": "assistant", "content": null},
            {"role": "user", "content": [{"type": "text", "text": "Thanks. Summarise.", "cache_control": {"type": "ephemeral"}}]}
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": false,
        "stop": ["END"],
        "temperature": 0.2,
        "top_p": 0.9,
        "max_completion_tokens": 8000,
        "reasoning_effort": "medium",
        "user": "user-42",
        "seed": 7,
        "stream": true,
        "stream_options": {"include_usage": true},
        "top_k": 40
    }))
    .unwrap()
}

fn shown(req: &UpstreamRequest) -> Value {
    json!({
        "url": req.url,
        "headers": req.headers,
        "body": serde_json::from_slice::<Value>(&req.body).unwrap(),
        "dropped": req.dropped,
    })
}

fn stream_chunks(events: &[(&str, Value)], mut on: impl FnMut(&str, &str) -> Vec<String>) -> Vec<Value> {
    events
        .iter()
        .flat_map(|(e, d)| on(e, &d.to_string()))
        .map(|c| serde_json::from_str(&c).unwrap_or(Value::String(c)))
        .collect()
}

// ---------------------------------------------------------------- requests

#[test]
fn openai_family_request_is_the_identity() {
    let r = route("deepseek/deepseek-v3.2", Some("http://up/v1")).unwrap();
    insta::assert_json_snapshot!(shown(&build_request(&r, Some("sk-x"), &rich_request(), true).unwrap()));
}

#[test]
fn gemini_request_plain() {
    let r = route("gemini/gemini-2.5-flash", None).unwrap();
    let mut body = rich_request();
    body.remove("stream");
    body.insert(
        "response_format".into(),
        json!({"type": "json_schema", "json_schema": {"name": "s",
        "schema": {"type": "object", "properties": {"summary": {"type": "string"}}}}}),
    );
    body.insert(
        "safetySettings".into(),
        json!([{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}]),
    );
    insta::assert_json_snapshot!(shown(&build_request(&r, Some("AIza-x"), &body, false).unwrap()));
}

#[test]
fn gemini_request_stream() {
    let r = route("gemini/gemini-2.5-flash", Some("http://mock:1")).unwrap();
    let mut body = rich_request();
    body.insert("tool_choice".into(), json!("auto"));
    body.insert("reasoning_effort".into(), json!("none"));
    insta::assert_json_snapshot!(shown(&build_request(&r, Some("AIza-x"), &body, true).unwrap()));
}

#[test]
fn anthropic_request_plain() {
    let r = route("anthropic/claude-sonnet-4-5", None).unwrap();
    let mut body = rich_request();
    body.remove("stream");
    insta::assert_json_snapshot!(shown(&build_request(&r, Some("sk-ant-x"), &body, false).unwrap()));
}

#[test]
fn anthropic_request_stream_with_json_response_format() {
    let r = route("anthropic/claude-sonnet-4-5", Some("http://mock:1/v1")).unwrap();
    let body: Map<String, Value> = serde_json::from_value(json!({
        "model": "g", "stream": true,
        "messages": [{"role": "developer", "content": "Answer in JSON."}, {"role": "user", "content": "List two colours."}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "c", "schema":
            {"type": "object", "properties": {"colours": {"type": "array", "items": {"type": "string"}}}}}},
        "max_tokens": 500, "stop": "STOP", "tool_choice": "required"
    }))
    .unwrap();
    insta::assert_json_snapshot!(shown(&build_request(&r, Some("sk-ant-x"), &body, true).unwrap()));
}

#[test]
fn anthropic_thinking_budget_fits_under_max_tokens() {
    let r = route("anthropic/claude-sonnet-4-5", None).unwrap();
    let mut body = rich_request();
    body.insert("max_completion_tokens".into(), json!(1500));
    body.insert("reasoning_effort".into(), json!("high"));
    let sent: Value = serde_json::from_slice(&build_request(&r, None, &body, false).unwrap().body).unwrap();
    assert_eq!(sent["thinking"], json!({"type": "enabled", "budget_tokens": 1499}));
    body.insert("max_completion_tokens".into(), json!(800));
    let sent: Value = serde_json::from_slice(&build_request(&r, None, &body, false).unwrap().body).unwrap();
    assert!(sent.get("thinking").is_none(), "no room for the minimum budget");
    body.insert("n".into(), json!(2));
    assert!(build_request(&r, None, &body, false).is_err());
}

// ---------------------------------------------------------------- plain responses

#[test]
fn gemini_response_with_thoughts_text_and_tool_calls() {
    let resp = json!({
        "candidates": [{"content": {"role": "model", "parts": [
            {"text": "The user wants weather.", "thought": true},
            {"text": "Checking both."},
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2lnLTE="},
            {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}
        ]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 120, "cachedContentTokenCount": 64, "candidatesTokenCount": 30,
                          "thoughtsTokenCount": 45, "totalTokenCount": 195},
        "modelVersion": "gemini-2.5-flash", "responseId": "resp-abc"
    });
    let (v, u) = gemini::translate_response(resp.to_string().as_bytes(), "reviewer", CREATED).unwrap();
    insta::assert_json_snapshot!(json!({"response": v, "buckets": u.usage}));
}

#[test]
fn gemini_blocked_prompt_is_a_filtered_empty_answer() {
    let resp = json!({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}});
    let (v, _) = gemini::translate_response(resp.to_string().as_bytes(), "g", CREATED).unwrap();
    insta::assert_json_snapshot!(v);
}

#[test]
fn anthropic_response_with_thinking_text_and_tool_calls() {
    let resp = json!({
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [
            {"type": "thinking", "thinking": "Two cities, two calls.", "signature": "sig-abc"},
            {"type": "text", "text": "Checking both."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}}
        ],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 20, "cache_creation_input_tokens": 1000, "cache_read_input_tokens": 2000, "output_tokens": 90}
    });
    let (v, u) = anthropic::translate_response(resp.to_string().as_bytes(), "premium", CREATED).unwrap();
    insta::assert_json_snapshot!(json!({"response": v, "buckets": u.usage}));
}

#[test]
fn anthropic_json_tool_answer_becomes_content() {
    let resp = json!({
        "id": "msg_02", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [{"type": "tool_use", "id": "toolu_j", "name": "json_tool_call", "input": {"colours": ["red", "blue"]}}],
        "stop_reason": "tool_use", "usage": {"input_tokens": 30, "output_tokens": 12}
    });
    let (v, _) = anthropic::translate_response(resp.to_string().as_bytes(), "g", CREATED).unwrap();
    insta::assert_json_snapshot!(v["choices"]);
}

// ---------------------------------------------------------------- streams

#[test]
fn gemini_stream_with_thoughts_text_and_tool_calls() {
    let events = vec![
        (
            "message",
            json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Weather needed.", "thought": true}]}, "index": 0}],
            "usageMetadata": {"promptTokenCount": 120, "totalTokenCount": 120}, "responseId": "resp-s"}),
        ),
        (
            "message",
            json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Checking "}]}, "index": 0}],
            "usageMetadata": {"promptTokenCount": 120, "totalTokenCount": 125}, "responseId": "resp-s"}),
        ),
        (
            "message",
            json!({"candidates": [{"content": {"role": "model", "parts": [
            {"text": "both."},
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2ln"},
            {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}
        ]}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 120, "candidatesTokenCount": 30, "thoughtsTokenCount": 45, "totalTokenCount": 195},
            "responseId": "resp-s"}),
        ),
    ];
    let mut s = gemini::StreamState::new("reviewer", CREATED);
    let mut chunks = stream_chunks(&events, |_, d| s.on_event(d));
    chunks.extend(
        s.finish()
            .into_iter()
            .map(|c| serde_json::from_str(&c).unwrap_or(Value::String(c))),
    );
    insta::assert_json_snapshot!(chunks);
}

#[test]
fn gemini_stream_that_never_finishes_has_no_done() {
    let mut s = gemini::StreamState::new("g", CREATED);
    s.on_event(&json!({"candidates": [{"content": {"parts": [{"text": "Hi"}]}, "index": 0}]}).to_string());
    assert!(s.finish().is_empty(), "no finishReason: truncated, so no [DONE]");
}

#[test]
fn anthropic_stream_with_thinking_text_and_tool_calls() {
    let ev = |kind: &'static str, v: Value| (kind, v);
    let events = vec![
        ev(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_s", "type": "message", "role": "assistant",
            "content": [], "model": "claude-sonnet-4-5", "stop_reason": null,
            "usage": {"input_tokens": 20, "cache_creation_input_tokens": 1000, "cache_read_input_tokens": 2000, "output_tokens": 1}}}),
        ),
        ev("ping", json!({"type": "ping"})),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Two cities, "}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "two calls."}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "sig-abc"}}),
        ),
        ev("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Checking both."}}),
        ),
        ev("content_block_stop", json!({"type": "content_block_stop", "index": 1})),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{\"city\": "}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "\"Paris\"}"}}),
        ),
        ev("content_block_stop", json!({"type": "content_block_stop", "index": 2})),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 3, "content_block": {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {}}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 3, "delta": {"type": "input_json_delta", "partial_json": "{\"city\": \"Rome\"}"}}),
        ),
        ev("content_block_stop", json!({"type": "content_block_stop", "index": 3})),
        ev(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
            "usage": {"input_tokens": 20, "cache_creation_input_tokens": 1000, "cache_read_input_tokens": 2000, "output_tokens": 90}}),
        ),
        ev("message_stop", json!({"type": "message_stop"})),
    ];
    let mut s = anthropic::StreamState::new("premium", CREATED);
    let chunks = stream_chunks(&events, |e, d| s.on_event(e, d));
    insta::assert_json_snapshot!(chunks);
}

#[test]
fn anthropic_stream_error_event_is_reported() {
    let mut s = anthropic::StreamState::new("g", CREATED);
    s.on_event(
        "error",
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    );
    let t = tollgate_providers::translate::StreamTranslator::Anthropic(s);
    assert_eq!(
        t.error(),
        Some("anthropic reported overloaded_error mid-stream: Overloaded")
    );
}
