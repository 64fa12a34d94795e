//! Anthropic's Messages API as a front door (what Claude Code speaks), for deployments that do
//! not speak it themselves: a Messages request becomes an OpenAI chat request (which
//! [`translate`](crate::translate) then takes to the deployment's own format), and the chat
//! answer — whole, or chunk by chunk — becomes an Anthropic message or Anthropic's exact event
//! sequence. `anthropic/` deployments never come here: they get the client's body as it is.
//!
//! The reverse direction of [`anthropic`](crate::anthropic) (its `finish_reason` is inverted
//! by [`stop_reason`]); it shares [`openai`](crate::openai)'s readers and imports nothing that
//! imports it. The stream direction (chat chunks → Anthropic's events) is
//! [`messages_stream`](crate::messages_stream).
//!
//! Request: `system` (string or text blocks) → a system message; text blocks → text (joined
//! when a turn has only text); `image` (base64 or URL) → `image_url`; `document` (base64 PDF →
//! a `file` part, plain text → text); `tool_use` → `tool_calls`; `tool_result` → `tool` messages
//! placed before the rest of their turn; `tools` → functions; `tool_choice` (`auto`, `any`,
//! `tool`, `none`, `disable_parallel_tool_use`); `thinking.budget_tokens` → `reasoning_effort`;
//! `stop_sequences` → `stop`; `metadata.user_id` → `user`. `cache_control` markers and
//! `thinking` blocks of earlier turns (whose signatures only Anthropic can check) are dropped;
//! so are Anthropic-only fields (`top_k`, `service_tier`, server tools, …), listed in `dropped`.

use serde_json::{Map, Value, json};
use tollgate_core::Usage;

use crate::wire::TranslateError;

fn invalid(msg: impl Into<String>) -> TranslateError {
    TranslateError::InvalidRequest(msg.into())
}

/// A Messages request as an OpenAI chat request, and the fields that had no place in it.
pub fn to_chat(body: &Map<String, Value>) -> Result<(Map<String, Value>, Vec<String>), TranslateError> {
    let mut out = Map::new();
    let mut dropped = Vec::new();
    let mut messages = Vec::new();
    match body.get("system") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => messages.push(json!({"role": "system", "content": s})),
        Some(Value::Array(blocks)) => {
            let text = joined_text(blocks);
            if !text.is_empty() {
                messages.push(json!({"role": "system", "content": text}));
            }
        }
        Some(_) => return Err(invalid("`system` must be a string or a list of text blocks")),
    }
    let turns = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("`messages` must be a list"))?;
    for (i, turn) in turns.iter().enumerate() {
        turn_to_chat(turn, i, &mut messages)?;
    }
    out.insert("messages".into(), Value::Array(messages));
    for (k, v) in body {
        match k.as_str() {
            "system" | "messages" | "thinking" | "metadata" | "tool_choice" => {}
            "model" | "max_tokens" | "temperature" | "top_p" | "stream" => {
                out.insert(k.clone(), v.clone());
            }
            "stop_sequences" => {
                if v.as_array().is_some_and(|a| !a.is_empty()) {
                    out.insert("stop".into(), v.clone());
                }
            }
            "tools" => {
                let (tools, skipped) = tools_to_chat(v);
                dropped.extend(skipped);
                if !tools.is_empty() {
                    out.insert("tools".into(), Value::Array(tools));
                }
            }
            other => dropped.push(other.to_string()),
        }
    }
    if let Some(choice) = body.get("tool_choice").filter(|c| !c.is_null()) {
        let (choice, parallel) = tool_choice_to_chat(choice)?;
        if out.contains_key("tools") || choice == "none" {
            out.insert("tool_choice".into(), choice);
        }
        if let Some(p) = parallel {
            out.insert("parallel_tool_calls".into(), p.into());
        }
    }
    if let Some(t) = body
        .get("thinking")
        .filter(|t| t.get("type").and_then(Value::as_str) == Some("enabled"))
    {
        let budget = t.get("budget_tokens").and_then(Value::as_u64).unwrap_or(0);
        out.insert("reasoning_effort".into(), effort_of_budget(budget).into());
    }
    if let Some(u) = body
        .get("metadata")
        .and_then(|m| m.get("user_id"))
        .and_then(Value::as_str)
    {
        out.insert("user".into(), u.into());
    }
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        // The record needs the usage the last chunk carries.
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok((out, dropped))
}

/// A thinking budget as OpenAI's `reasoning_effort` (the inverse of LiteLLM's mapping the other
/// way: 1024 low, 2048 medium, 4096 high).
fn effort_of_budget(budget: u64) -> &'static str {
    match budget {
        0..=1024 => "low",
        1025..=2048 => "medium",
        _ => "high",
    }
}

fn joined_text(blocks: &[Value]) -> String {
    blocks
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("\n")
}

/// An Anthropic `source` (base64 or URL) as a URL an OpenAI part can carry.
fn source_url(source: &Value) -> Option<String> {
    match source.get("type").and_then(Value::as_str) {
        Some("base64") => Some(format!(
            "data:{};base64,{}",
            source.get("media_type").and_then(Value::as_str)?,
            source.get("data").and_then(Value::as_str)?
        )),
        Some("url") => source.get("url").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

/// One content block of a user turn as an OpenAI content part.
fn user_part(block: &Value, turn: usize) -> Result<Option<Value>, TranslateError> {
    let unsupported = |what: &str| invalid(format!("messages[{turn}]: {what} cannot be sent to this model"));
    Ok(match block.get("type").and_then(Value::as_str) {
        Some("text") => Some(json!({"type": "text", "text": block.get("text").cloned().unwrap_or_default()})),
        Some("image") => {
            let url = source_url(block.get("source").unwrap_or(&Value::Null))
                .ok_or_else(|| unsupported("an image without a base64 or url source"))?;
            Some(json!({"type": "image_url", "image_url": {"url": url}}))
        }
        Some("document") => {
            let source = block.get("source").unwrap_or(&Value::Null);
            match source.get("type").and_then(Value::as_str) {
                Some("text") => Some(json!({"type": "text", "text": source.get("data").cloned().unwrap_or_default()})),
                _ => {
                    let url = source_url(source).ok_or_else(|| unsupported("a document of this source type"))?;
                    Some(json!({"type": "file", "file": {"file_data": url}}))
                }
            }
        }
        // Earlier thinking is only meaningful (and signed) for Anthropic.
        Some("thinking" | "redacted_thinking") => None,
        Some(other) => return Err(unsupported(&format!("a `{other}` block"))),
        None => return Err(invalid(format!("messages[{turn}]: a content block without `type`"))),
    })
}

/// A `tool_result`'s content as the text of a `tool` message.
fn tool_result_text(block: &Value) -> String {
    let text = match block.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => joined_text(parts),
        _ => String::new(),
    };
    if block.get("is_error").and_then(Value::as_bool) == Some(true) {
        format!("Error: {text}")
    } else {
        text
    }
}

/// Text-only content as one string (what every OpenAI-compatible server takes), anything
/// richer as a list of parts.
fn content_of(parts: Vec<Value>) -> Value {
    if parts
        .iter()
        .all(|p| p.get("type").and_then(Value::as_str) == Some("text"))
    {
        let texts: Vec<&str> = parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect();
        Value::String(texts.join("\n"))
    } else {
        Value::Array(parts)
    }
}

fn turn_to_chat(turn: &Value, i: usize, out: &mut Vec<Value>) -> Result<(), TranslateError> {
    let role = turn
        .get("role")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("messages[{i}]: missing `role`")))?;
    if role != "user" && role != "assistant" {
        return Err(invalid(format!(
            "messages[{i}]: role `{role}` is not `user` or `assistant` (the system prompt goes in `system`)"
        )));
    }
    let blocks = match turn.get("content") {
        Some(Value::String(s)) => {
            out.push(json!({"role": role, "content": s}));
            return Ok(());
        }
        Some(Value::Array(blocks)) => blocks,
        _ => {
            return Err(invalid(format!(
                "messages[{i}]: `content` must be a string or a list of blocks"
            )));
        }
    };
    if role == "assistant" {
        let mut text = String::new();
        let mut calls = Vec::new();
        for b in blocks {
            match b.get("type").and_then(Value::as_str) {
                Some("text") => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
                Some("tool_use") => calls.push(json!({
                    "id": b.get("id").cloned().unwrap_or(Value::Null),
                    "type": "function",
                    "function": {
                        "name": b.get("name").cloned().unwrap_or(Value::Null),
                        "arguments": b.get("input").cloned().unwrap_or_else(|| json!({})).to_string(),
                    },
                })),
                _ => {}
            }
        }
        let mut m = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { text.into() }});
        if !calls.is_empty() {
            m["tool_calls"] = Value::Array(calls);
        }
        out.push(m);
        return Ok(());
    }
    // A user turn: its tool results answer the assistant's calls, so they come first.
    let mut parts = Vec::new();
    for b in blocks {
        if b.get("type").and_then(Value::as_str) == Some("tool_result") {
            out.push(json!({
                "role": "tool",
                "tool_call_id": b.get("tool_use_id").cloned().unwrap_or(Value::Null),
                "content": tool_result_text(b),
            }));
        } else if let Some(p) = user_part(b, i)? {
            parts.push(p);
        }
    }
    if !parts.is_empty() {
        out.push(json!({"role": "user", "content": content_of(parts)}));
    }
    Ok(())
}

/// Client tools as OpenAI functions; Anthropic's server tools (a `type` such as
/// `web_search_20250305`) have no equivalent elsewhere and are named in the second list.
fn tools_to_chat(tools: &Value) -> (Vec<Value>, Vec<String>) {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for t in tools.as_array().into_iter().flatten() {
        let kind = t.get("type").and_then(Value::as_str).unwrap_or("custom");
        if kind != "custom" {
            skipped.push(format!("tools[{kind}]"));
            continue;
        }
        let mut f = Map::new();
        f.insert("name".into(), t.get("name").cloned().unwrap_or(Value::Null));
        if let Some(d) = t.get("description") {
            f.insert("description".into(), d.clone());
        }
        f.insert(
            "parameters".into(),
            t.get("input_schema")
                .cloned()
                .unwrap_or_else(|| json!({"type": "object"})),
        );
        out.push(json!({"type": "function", "function": f}));
    }
    (out, skipped)
}

/// Anthropic's `tool_choice` as OpenAI's, and `parallel_tool_calls` when it says.
fn tool_choice_to_chat(choice: &Value) -> Result<(Value, Option<bool>), TranslateError> {
    let parallel = choice
        .get("disable_parallel_tool_use")
        .and_then(Value::as_bool)
        .map(|d| !d);
    let c = match choice.get("type").and_then(Value::as_str) {
        Some("auto") => json!("auto"),
        Some("any") => json!("required"),
        Some("none") => json!("none"),
        Some("tool") => {
            let name = choice
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("`tool_choice` of type `tool` needs a `name`"))?;
            json!({"type": "function", "function": {"name": name}})
        }
        _ => return Err(invalid("`tool_choice.type` must be auto, any, tool or none")),
    };
    Ok((c, parallel))
}

/// OpenAI's `finish_reason` in Anthropic's words (the inverse of `anthropic::finish_reason`).
pub fn stop_reason(finish: &str) -> &'static str {
    match finish {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// Usage buckets as Anthropic reports them: `input_tokens` excludes cache reads and writes,
/// `output_tokens` includes thinking.
pub fn usage_json(u: &Usage) -> Value {
    json!({
        "input_tokens": u.input,
        "cache_creation_input_tokens": u.cache_write,
        "cache_read_input_tokens": u.cache_read,
        "output_tokens": u.output + u.reasoning,
    })
}

pub(crate) fn message_id(chat_id: Option<&str>) -> String {
    match chat_id {
        Some(id) if id.starts_with("msg_") => id.to_string(),
        Some(id) if !id.is_empty() => format!("msg_{id}"),
        _ => "msg_tollgate".to_string(),
    }
}

/// The signature a thinking block carries: the one the chat answer kept (`thinking_blocks`),
/// else empty (only Anthropic signs thinking).
pub(crate) fn signature_of(message: &Value) -> String {
    message
        .get("thinking_blocks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|b| b.get("signature").and_then(Value::as_str))
        .collect()
}

/// A whole `chat.completion` as an Anthropic message; `usage` is the answer's, in buckets.
pub fn from_chat(chat: &Value, usage: &Usage) -> Value {
    let message = chat.pointer("/choices/0/message").unwrap_or(&Value::Null);
    let mut content = Vec::new();
    let reasoning = message
        .get("reasoning_content")
        .or_else(|| message.get("reasoning"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if !reasoning.is_empty() {
        content.push(json!({"type": "thinking", "thinking": reasoning, "signature": signature_of(message)}));
    }
    if let Some(text) = message.get("content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
        content.push(json!({"type": "text", "text": text}));
    }
    for call in message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        content.push(json!({
            "type": "tool_use",
            "id": call.get("id").cloned().unwrap_or(Value::Null),
            "name": call.pointer("/function/name").cloned().unwrap_or(Value::Null),
            "input": crate::openai::arguments_object(call),
        }));
    }
    if content.is_empty() {
        content.push(json!({"type": "text", "text": ""}));
    }
    let finish = chat
        .pointer("/choices/0/finish_reason")
        .and_then(Value::as_str)
        .unwrap_or("stop");
    json!({
        "id": message_id(chat.get("id").and_then(Value::as_str)),
        "type": "message",
        "role": "assistant",
        "model": chat.get("model").cloned().unwrap_or(Value::Null),
        "content": content,
        "stop_reason": stop_reason(finish),
        "stop_sequence": null,
        "usage": usage_json(usage),
    })
}

/// Anthropic's error `type` for an HTTP status.
pub fn error_type(status: u16) -> &'static str {
    match status {
        400 | 405 | 409 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        408 | 504 => "timeout_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

/// An error in Anthropic's shape.
pub fn error_body(status: u16, message: &str) -> Value {
    json!({"type": "error", "error": {"type": error_type(status), "message": message}})
}

/// The prompt's tokens estimated from its text (for `count_tokens` where the deployment has no
/// counting endpoint): 4 characters per token over the system prompt, the turns' text and
/// tool results, tool definitions and tool inputs; images and documents at a flat 1,600 (an
/// image of about a megapixel, Anthropic's rule of thumb).
pub fn estimate_input_tokens(body: &Map<String, Value>) -> u64 {
    const PER_MEDIA: u64 = 1600;
    fn walk(v: &Value, chars: &mut u64, media: &mut u64) {
        match v {
            Value::String(s) => *chars += s.chars().count() as u64,
            Value::Array(a) => a.iter().for_each(|x| walk(x, chars, media)),
            Value::Object(o) => {
                if matches!(o.get("type").and_then(Value::as_str), Some("image" | "document"))
                    && o.get("source").and_then(|s| s.get("type")).and_then(Value::as_str) != Some("text")
                {
                    *media += 1;
                    return;
                }
                for (k, x) in o {
                    // Markers and ids are not prompt text.
                    if !matches!(
                        k.as_str(),
                        "cache_control" | "type" | "id" | "tool_use_id" | "signature"
                    ) {
                        walk(x, chars, media);
                    }
                }
            }
            _ => {}
        }
    }
    let (mut chars, mut media) = (0, 0);
    for f in ["system", "messages", "tools"] {
        if let Some(v) = body.get(f) {
            walk(v, &mut chars, &mut media);
        }
    }
    chars.div_ceil(4) + media * PER_MEDIA
}
