//! Golden tests for Anthropic's Messages API at the front door, both directions: a Messages
//! request → an OpenAI chat request, a `chat.completion` → an Anthropic message, OpenAI chunks
//! → Anthropic's event sequence. Snapshots live in `tests/snapshots`.

use serde_json::{Map, Value, json};
use tollgate_core::Usage;
use tollgate_providers::messages::{error_body, estimate_input_tokens, from_chat, to_chat};
use tollgate_providers::messages_stream::EventWriter;

/// What Claude Code sends: system blocks with `cache_control`, a tool round trip with an
/// earlier signed thinking block, an image, a PDF, tools (one a server tool), `tool_choice`,
/// thinking, stop sequences, metadata, and Anthropic-only fields.
fn claude_code_request() -> Map<String, Value> {
    serde_json::from_value(json!({
        "model": "claude-sonnet-4-5-20250929",
        "max_tokens": 32000,
        "system": [
            {"type": "text", "text": "You are Claude Code."},
            {"type": "text", "text": "Be concise.", "cache_control": {"type": "ephemeral"}}
        ],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}}
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Need the weather.", "signature": "sig-1"},
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "21 C"}]},
                {"type": "text", "text": "Thanks. Summarise.", "cache_control": {"type": "ephemeral"}}
            ]}
        ],
        "tools": [
            {"name": "get_weather", "description": "Weather by city",
             "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
             "cache_control": {"type": "ephemeral"}},
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}
        ],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
        "thinking": {"type": "enabled", "budget_tokens": 31999},
        "stop_sequences": ["END"],
        "temperature": 1,
        "top_k": 40,
        "metadata": {"user_id": "user_abc_account__session_1"},
        "stream": true
    }))
    .unwrap()
}

#[test]
fn messages_request_becomes_chat() {
    let (chat, dropped) = to_chat(&claude_code_request()).unwrap();
    insta::assert_json_snapshot!(json!({"chat": chat, "dropped": dropped}));
}

#[test]
fn messages_request_refusals_are_clear() {
    let bad_role: Map<String, Value> = serde_json::from_value(
        json!({"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}),
    )
    .unwrap();
    assert!(to_chat(&bad_role).unwrap_err().to_string().contains("`system`"));
    let bad_choice: Map<String, Value> = serde_json::from_value(json!({
        "model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
        "tools": [{"name": "t", "input_schema": {}}], "tool_choice": {"type": "tool"}
    }))
    .unwrap();
    assert!(to_chat(&bad_choice).unwrap_err().to_string().contains("name"));
    let forced: Map<String, Value> = serde_json::from_value(json!({
        "model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
        "tools": [{"name": "t", "input_schema": {}}], "tool_choice": {"type": "tool", "name": "t"}
    }))
    .unwrap();
    let (chat, _) = to_chat(&forced).unwrap();
    assert_eq!(
        chat["tool_choice"],
        json!({"type": "function", "function": {"name": "t"}})
    );
    assert!(!chat.contains_key("stream_options"));
}

#[test]
fn chat_answer_becomes_message() {
    let chat = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "claude-haiku-4-5",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Checking.", "reasoning_content": "The user wants weather.",
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]
        }}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 40, "prompt_tokens_details": {"cached_tokens": 100},
                  "completion_tokens_details": {"reasoning_tokens": 15}}
    });
    let usage = Usage {
        input: 20,
        cache_read: 100,
        cache_write: 0,
        output: 25,
        reasoning: 15,
    };
    insta::assert_json_snapshot!(from_chat(&chat, &usage));
}

#[test]
fn chat_answer_without_content_is_one_empty_text_block() {
    let chat = json!({"id": "x", "model": "m", "choices": [{"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": null}}]});
    let m = from_chat(&chat, &Usage::default());
    assert_eq!(m["content"], json!([{"type": "text", "text": ""}]));
    assert_eq!(m["stop_reason"], "max_tokens");
}

fn chunk(delta: Value, finish: Option<&str>) -> String {
    json!({"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1, "model": "m",
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    .to_string()
}

#[test]
fn chat_chunks_become_anthropic_events() {
    let chunks = vec![
        chunk(json!({"role": "assistant", "content": ""}), None),
        chunk(json!({"reasoning_content": "Think"}), None),
        chunk(json!({"reasoning_content": "ing."}), None),
        chunk(json!({"content": "Hello"}), None),
        chunk(json!({"content": " there."}), None),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 1, "id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]}),
            None,
        ),
        chunk(json!({}), Some("tool_calls")),
        json!({"id": "chatcmpl-9", "choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": 30,
               "prompt_tokens_details": {"cached_tokens": 10}, "completion_tokens_details": {"reasoning_tokens": 4}}})
        .to_string(),
        "[DONE]".to_string(),
    ];
    let mut w = EventWriter::new("claude-haiku-4-5");
    let events: Vec<Value> = chunks
        .iter()
        .flat_map(|c| w.on_chunk(c))
        .map(|(name, data)| {
            assert_eq!(data["type"], name, "the event name is the data's type");
            data
        })
        .collect();
    assert!(w.stopped);
    assert!(w.on_chunk("[DONE]").is_empty(), "nothing follows message_stop");
    insta::assert_json_snapshot!(events);
}

#[test]
fn a_signature_opens_or_continues_the_thinking_block() {
    let mut w = EventWriter::new("m");
    let mut names = Vec::new();
    for c in [
        chunk(json!({"reasoning_content": "Hm."}), None),
        chunk(
            json!({"thinking_blocks": [{"type": "thinking", "thinking": "", "signature": "sig"}]}),
            None,
        ),
        chunk(json!({"content": "Yes."}), Some("stop")),
        "[DONE]".to_string(),
    ] {
        for (name, data) in w.on_chunk(&c) {
            names.push(format!(
                "{name}:{}",
                data.pointer("/delta/type").and_then(Value::as_str).unwrap_or("")
            ));
        }
    }
    assert_eq!(
        names,
        [
            "message_start:",
            "ping:",
            "content_block_start:",
            "content_block_delta:thinking_delta",
            "content_block_delta:signature_delta",
            "content_block_stop:",
            "content_block_start:",
            "content_block_delta:text_delta",
            "content_block_stop:",
            "message_delta:",
            "message_stop:",
        ]
    );
}

#[test]
fn errors_and_estimates() {
    assert_eq!(
        error_body(429, "slow down"),
        json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})
    );
    assert_eq!(error_body(529, "x")["error"]["type"], "overloaded_error");
    assert_eq!(error_body(404, "x")["error"]["type"], "not_found_error");
    assert_eq!(error_body(500, "x")["error"]["type"], "api_error");
    let body: Map<String, Value> = serde_json::from_value(json!({
        "model": "m", "system": "abcd",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "efgh", "cache_control": {"type": "ephemeral"}},
                                                     {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}]}]
    }))
    .unwrap();
    // 8 characters of text (roles count too: "user" is 4 more) → 3 tokens, plus one image.
    assert_eq!(estimate_input_tokens(&body), 3 + 1600);
}
