//! Golden tests for the Responses API front door (`responses.rs`), both directions: a Codex-style
//! Responses request → an OpenAI chat request; a chat answer → a `response` object; chat chunks
//! → the Responses API's typed events. Review changes with `cargo insta review`.

use serde_json::{Map, Value, json};
use tollgate_core::Usage;
use tollgate_providers::responses::{Echo, EventWriter, from_chat, output_as_messages, to_chat};

/// A request with every supported feature: instructions, a developer message, an image, an
/// earlier function call with its output, a reasoning item, function and built-in tools,
/// `tool_choice`, reasoning effort, JSON-schema output and Responses-only fields.
fn codex_like_request() -> Map<String, Value> {
    serde_json::from_value(json!({
        "model": "gpt-5-codex",
        "instructions": "You are a coding agent.",
        "input": [
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Work in /repo."}]},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "Fix the failing test shown here."},
                {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}
            ]},
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "opaque"},
            {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "shell", "arguments": "{\"cmd\":[\"cargo\",\"test\"]}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "test result: FAILED"},
            {"role": "assistant", "content": [{"type": "output_text", "text": "The parser is wrong."}]}
        ],
        "tools": [
            {"type": "function", "name": "shell", "description": "Run a command", "strict": false,
             "parameters": {"type": "object", "properties": {"cmd": {"type": "array", "items": {"type": "string"}}}, "required": ["cmd"]}},
            {"type": "web_search"}
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": false,
        "reasoning": {"effort": "medium", "summary": "auto"},
        "max_output_tokens": 2048,
        "text": {"format": {"type": "json_schema", "name": "verdict", "strict": true,
                  "schema": {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}}},
        "store": true,
        "stream": true,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "session-1"
    }))
    .unwrap()
}

#[test]
fn responses_request_becomes_chat() {
    let earlier = vec![
        json!({"role": "system", "content": "Old instructions are not carried over."}),
        json!({"role": "user", "content": "Earlier question"}),
        json!({"role": "assistant", "content": "Earlier answer"}),
    ];
    let (chat, dropped) = to_chat(&codex_like_request(), &earlier).unwrap();
    insta::assert_json_snapshot!(json!({"chat": chat, "dropped": dropped}));
}

#[test]
fn a_string_input_is_one_user_turn_and_bad_input_is_refused_with_its_path() {
    let body: Map<String, Value> = serde_json::from_value(json!({"model": "m", "input": "hi"})).unwrap();
    let (chat, _) = to_chat(&body, &[]).unwrap();
    assert_eq!(chat["messages"], json!([{"role": "user", "content": "hi"}]));
    for (bad, says) in [
        (
            json!({"input": [{"role": "user", "content": [{"type": "input_audio"}]}]}),
            "input[0].content[0]",
        ),
        (json!({"input": [{"role": "tool", "content": "x"}]}), "input[0].role"),
        (json!({"input": []}), "`input` is empty"),
        (
            json!({"input": "x", "text": {"format": {"type": "json_schema", "name": "n"}}}),
            "needs a `schema`",
        ),
        (json!({"input": "x", "tool_choice": "any"}), "`tool_choice`"),
    ] {
        let body: Map<String, Value> = serde_json::from_value(bad).unwrap();
        let e = to_chat(&body, &[]).unwrap_err().to_string();
        assert!(e.contains(says), "`{says}` not in `{e}`");
    }
}

fn echo() -> Echo {
    let request: Map<String, Value> = serde_json::from_value(json!({
        "instructions": "You are a coding agent.",
        "tools": [{"type": "function", "name": "shell", "parameters": {"type": "object"}}],
        "store": true,
    }))
    .unwrap();
    Echo {
        id: "resp_0123".into(),
        created_at: 1_750_000_000,
        model: "gpt-5-codex".into(),
        request,
    }
}

#[test]
fn chat_answer_becomes_response() {
    let chat = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "deepseek-chat",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Running the tests.", "reasoning_content": "Check the parser first.",
            "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "shell", "arguments": "{\"cmd\":[\"cargo\",\"test\"]}"}}]
        }}]
    });
    let usage = Usage {
        input: 900,
        cache_read: 100,
        cache_write: 0,
        output: 40,
        reasoning: 12,
    };
    let response = from_chat(&chat, &usage, &echo());
    // What a stored response gives back to the next turn.
    let next_turn = output_as_messages(&response);
    insta::assert_json_snapshot!(json!({"response": response, "next_turn": next_turn}));
}

#[test]
fn chat_chunks_become_response_events() {
    let chunks = [
        r#"{"id":"c","choices":[{"index":0,"delta":{"role":"assistant","reasoning_content":"Think"}}]}"#,
        r#"{"id":"c","choices":[{"index":0,"delta":{"reasoning_content":"ing."}}]}"#,
        r#"{"id":"c","choices":[{"index":0,"delta":{"content":"Hello"}}]}"#,
        r#"{"id":"c","choices":[{"index":0,"delta":{"content":" world"}}]}"#,
        r#"{"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"shell","arguments":""}}]}}]}"#,
        r#"{"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"cmd\":"}}]}}]}"#,
        r#"{"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"[\"ls\"]}"}}]}}]}"#,
        r#"{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
        r#"{"id":"c","choices":[],"usage":{"prompt_tokens":50,"completion_tokens":20,"prompt_tokens_details":{"cached_tokens":30},"completion_tokens_details":{"reasoning_tokens":4}}}"#,
        "[DONE]",
    ];
    let mut w = EventWriter::new(echo());
    let events: Vec<Value> = chunks
        .iter()
        .flat_map(|c| w.on_chunk(c))
        .map(|(name, data)| json!({"event": name, "data": data}))
        .collect();
    insta::assert_json_snapshot!(events);
}

#[test]
fn a_stream_broken_midway_ends_with_response_failed() {
    let mut w = EventWriter::new(echo());
    let mut events = w.on_chunk(r#"{"choices":[{"index":0,"delta":{"content":"Hal"}}]}"#);
    events.extend(w.fail("upstream_error", "deepseek stream broke midway"));
    events.extend(w.on_chunk("[DONE]"));
    let last = events.last().unwrap();
    assert_eq!(last.0, "response.failed");
    assert_eq!(last.1["response"]["status"], "failed");
    assert_eq!(last.1["response"]["error"]["message"], "deepseek stream broke midway");
}
