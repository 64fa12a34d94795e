//! Anthropic's Messages wire format, both ways.
//!
//! Request: system/developer messages → `system` blocks; user/assistant turns → content blocks
//! (consecutive turns of one role merged; tool results → `tool_result` blocks of a user turn);
//! images and PDFs as `data:` URLs → base64 `source`, other URLs → `url` source; `cache_control`
//! markers on content parts, on a whole message (applied to its last block) and on tools pass
//! through; `tools`/`tool_choice`/`parallel_tool_calls` → Anthropic tools and `tool_choice`;
//! `response_format` JSON → a forced `json_tool_call` tool whose input comes back as the content
//! (LiteLLM's approach); `stop` → `stop_sequences`; `user` → `metadata.user_id`;
//! `reasoning_effort` → `thinking.budget_tokens`; `thinking_blocks` on assistant turns (with
//! their signatures) are sent back first, as Anthropic requires with tool use. `max_tokens` is
//! required by Anthropic: 4096 when the client sets none (LiteLLM's default). Unknown fields are
//! Anthropic's own (`top_k`, `thinking`, `service_tier`, `container`, `mcp_servers`, …) and go
//! to the top level as they are.
//!
//! Response: `thinking` blocks → `reasoning_content` and `thinking_blocks`; `tool_use` →
//! `tool_calls`, with tool-call indices counted over tool calls only (Anthropic's block indices
//! count every block).

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::openai::{self, arguments_object, parse_data_url};
use crate::provider::Route;
use crate::usage::{ParsedUsage, parse_anthropic_usage};
use crate::wire::{TranslateError, UpstreamRequest};

pub const API_VERSION: &str = "2023-06-01";
/// `max_tokens` when the client sets none; Anthropic requires one.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;
/// Anthropic's smallest thinking budget.
const MIN_THINKING_BUDGET: u64 = 1024;
/// The tool that carries a `response_format` answer (LiteLLM's name, so transcripts match).
pub const JSON_TOOL: &str = "json_tool_call";

/// OpenAI fields Anthropic has no place for.
const DROPPED: &[&str] = &[
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "store",
    "modalities",
    "audio",
    "prediction",
    "web_search_options",
];

fn invalid(msg: impl Into<String>) -> TranslateError {
    TranslateError::InvalidRequest(msg.into())
}

fn with_cache_control(mut block: Value, part: &Value) -> Value {
    if let Some(cc) = part.get("cache_control") {
        block["cache_control"] = cc.clone();
    }
    block
}

fn media_block(url: &str, part: &Value) -> Value {
    let block = match parse_data_url(url) {
        Some((media, data)) => {
            let kind = if media == "application/pdf" {
                "document"
            } else {
                "image"
            };
            json!({"type": kind, "source": {"type": "base64", "media_type": media, "data": data}})
        }
        None => {
            let kind = if url.to_ascii_lowercase().ends_with(".pdf") {
                "document"
            } else {
                "image"
            };
            json!({"type": kind, "source": {"type": "url", "url": url}})
        }
    };
    with_cache_control(block, part)
}

/// A message's content as Anthropic blocks (empty text is left out: Anthropic refuses it).
fn blocks_of(content: &Value, out: &mut Vec<Value>) -> Result<(), TranslateError> {
    match content {
        Value::Null => {}
        Value::String(s) => {
            if !s.is_empty() {
                out.push(json!({"type": "text", "text": s}));
            }
        }
        Value::Array(parts) => {
            for p in parts {
                match p.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        if let Some(t) = p.get("text").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                            out.push(with_cache_control(json!({"type": "text", "text": t}), p));
                        }
                    }
                    Some("image_url") => {
                        let url = p
                            .get("image_url")
                            .and_then(|i| i.get("url").or(Some(i)))
                            .and_then(Value::as_str)
                            .ok_or_else(|| invalid("an image_url part needs image_url.url"))?;
                        out.push(media_block(url, p));
                    }
                    Some("file") => {
                        let url = p
                            .pointer("/file/file_data")
                            .and_then(Value::as_str)
                            .ok_or_else(|| invalid("a file part for anthropic/ needs file.file_data"))?;
                        out.push(media_block(url, p));
                    }
                    // Anthropic's own block types (`document`, `image` with a source, …).
                    Some(_) => out.push(p.clone()),
                    None => return Err(invalid("a content part has no `type`")),
                }
            }
        }
        other => {
            return Err(invalid(format!(
                "message content must be a string or a list, not {other}"
            )));
        }
    }
    Ok(())
}

fn push_turn(messages: &mut Vec<Value>, role: &str, blocks: Vec<Value>) {
    crate::turns::push_turn(messages, role, "content", blocks);
}

/// A message-level `cache_control` (LiteLLM accepts it there) marks the message's last block.
fn mark_last(blocks: &mut [Value], message: &Value) {
    if let (Some(cc), Some(last)) = (message.get("cache_control"), blocks.last_mut()) {
        last["cache_control"] = cc.clone();
    }
}

fn messages_of(messages: &[Value]) -> Result<(Vec<Value>, Vec<Value>), TranslateError> {
    let mut system = Vec::new();
    let mut out = Vec::new();
    for m in messages {
        let content = m.get("content").unwrap_or(&Value::Null);
        let mut blocks = Vec::new();
        match m.get("role").and_then(Value::as_str).unwrap_or("user") {
            "system" | "developer" => {
                blocks_of(content, &mut blocks)?;
                mark_last(&mut blocks, m);
                system.extend(blocks);
            }
            "user" => {
                blocks_of(content, &mut blocks)?;
                mark_last(&mut blocks, m);
                push_turn(&mut out, "user", blocks);
            }
            "assistant" => {
                for b in m.get("thinking_blocks").and_then(Value::as_array).into_iter().flatten() {
                    blocks.push(b.clone());
                }
                blocks_of(content, &mut blocks)?;
                for call in m.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
                    blocks.push(json!({
                        "type": "tool_use",
                        "id": call.get("id").cloned().unwrap_or(Value::Null),
                        "name": call.pointer("/function/name").cloned().unwrap_or(Value::Null),
                        "input": arguments_object(call),
                    }));
                }
                mark_last(&mut blocks, m);
                // An assistant turn with neither text nor calls would be refused: it is left out.
                push_turn(&mut out, "assistant", blocks);
            }
            "tool" | "function" => {
                let id = m
                    .get("tool_call_id")
                    .or_else(|| m.get("name"))
                    .cloned()
                    .ok_or_else(|| invalid("a tool message needs tool_call_id"))?;
                let mut result = json!({"type": "tool_result", "tool_use_id": id});
                match content {
                    Value::String(s) => result["content"] = s.clone().into(),
                    Value::Null => {}
                    other => {
                        let mut inner = Vec::new();
                        blocks_of(other, &mut inner)?;
                        result["content"] = Value::Array(inner);
                    }
                }
                if let Some(cc) = m.get("cache_control") {
                    result["cache_control"] = cc.clone();
                }
                push_turn(&mut out, "user", vec![result]);
            }
            other => return Err(invalid(format!("message role `{other}` cannot be sent to anthropic/"))),
        }
    }
    Ok((system, out))
}

fn tools_of(tools: &Value) -> Vec<Value> {
    tools
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| match (t.get("type").and_then(Value::as_str), t.get("function")) {
            (Some("function") | None, Some(f)) => {
                let mut tool = json!({
                    "name": f.get("name").cloned().unwrap_or(Value::Null),
                    "input_schema": f.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                });
                if let Some(d) = f.get("description") {
                    tool["description"] = d.clone();
                }
                with_cache_control(tool, t)
            }
            // Anthropic's server tools (`web_search_20250305`, …) pass as they are.
            _ => t.clone(),
        })
        .collect()
}

fn tool_choice_of(choice: &Value) -> Option<Value> {
    match choice {
        Value::String(s) => Some(match s.as_str() {
            "auto" => json!({"type": "auto"}),
            "none" => json!({"type": "none"}),
            "required" => json!({"type": "any"}),
            _ => return None,
        }),
        Value::Object(_) => choice
            .pointer("/function/name")
            .map(|n| json!({"type": "tool", "name": n}))
            // Already in Anthropic's shape.
            .or_else(|| Some(choice.clone())),
        _ => None,
    }
}

pub fn build_request(
    route: &Route,
    api_key: Option<&str>,
    body: &Map<String, Value>,
    stream: bool,
) -> Result<UpstreamRequest, TranslateError> {
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("missing `messages`"))?;
    let (system, turns) = messages_of(messages)?;
    let mut out = Map::new();
    out.insert("model".into(), route.upstream_model.clone().into());
    let max_tokens = openai::requested_max_tokens(body).unwrap_or(DEFAULT_MAX_TOKENS);
    out.insert("max_tokens".into(), max_tokens.into());
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    out.insert("messages".into(), Value::Array(turns));
    let mut dropped = Vec::new();
    let mut tools = Vec::new();
    let mut tool_choice = None;
    for (k, v) in body {
        match k.as_str() {
            "model"
            | "messages"
            | "max_tokens"
            | "max_completion_tokens"
            | "stream_options"
            | "reasoning_effort"
            | "thinking"
            | "response_format"
            | "parallel_tool_calls" => {}
            "stream" => {}
            "stop" => {
                out.insert("stop_sequences".into(), Value::Array(openai::stop_sequences(v)));
            }
            "tools" => tools = tools_of(v),
            "tool_choice" => tool_choice = tool_choice_of(v),
            "user" => {
                if let Some(u) = v.as_str() {
                    out.insert("metadata".into(), json!({"user_id": u}));
                }
            }
            "n" => {
                if v.as_u64().is_some_and(|n| n != 1) {
                    return Err(invalid("anthropic/ returns one choice per request; send n = 1"));
                }
            }
            name if DROPPED.contains(&name) => dropped.push(name.to_string()),
            "temperature" | "top_p" => {
                if !v.is_null() {
                    out.insert(k.clone(), v.clone());
                }
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    let budget = openai::requested_budget(body)?.filter(|b| *b > 0);
    let thinking = match budget {
        // Anthropic wants budget_tokens ≥ 1024 and < max_tokens; a budget that does not fit
        // shrinks to fit, and thinking is left off when even the minimum does not.
        Some(b) if max_tokens > MIN_THINKING_BUDGET => {
            let b = b.clamp(MIN_THINKING_BUDGET, max_tokens - 1);
            out.insert("thinking".into(), json!({"type": "enabled", "budget_tokens": b}));
            true
        }
        _ => false,
    };
    if thinking {
        // Anthropic refuses these beside thinking; they are left out and reported as dropped.
        if out.get("temperature").and_then(Value::as_f64).is_some_and(|t| t != 1.0) {
            out.remove("temperature");
            dropped.push("temperature (not allowed with thinking)".to_string());
        }
        if out.get("top_p").and_then(Value::as_f64).is_some_and(|p| p < 0.95) {
            out.remove("top_p");
            dropped.push("top_p (below 0.95 is not allowed with thinking)".to_string());
        }
        if out.remove("top_k").is_some() {
            dropped.push("top_k (not allowed with thinking)".to_string());
        }
        if let Some(c) = &mut tool_choice
            && matches!(c.get("type").and_then(Value::as_str), Some("any" | "tool"))
        {
            // Only `auto` and `none` may be combined with thinking.
            let keep_parallel = c.get("disable_parallel_tool_use").cloned();
            *c = json!({"type": "auto"});
            if let Some(p) = keep_parallel {
                c["disable_parallel_tool_use"] = p;
            }
            dropped.push("tool_choice (a forced tool is not allowed with thinking; sent as auto)".to_string());
        }
    }
    if let Some(schema) = body.get("response_format").and_then(openai::json_schema_of) {
        let schema = schema.cloned().unwrap_or_else(|| json!({"type": "object"}));
        let only_tool = tools.is_empty();
        tools.push(json!({
            "name": JSON_TOOL,
            "description": "Respond with a JSON object in this format.",
            "input_schema": schema,
        }));
        // Anthropic refuses a forced tool while thinking; the tool is then only offered.
        if only_tool && tool_choice.is_none() && !thinking {
            tool_choice = Some(json!({"type": "tool", "name": JSON_TOOL}));
        }
    }
    if body.get("parallel_tool_calls").and_then(Value::as_bool) == Some(false) && !tools.is_empty() {
        let choice = tool_choice.get_or_insert_with(|| json!({"type": "auto"}));
        if choice.get("type").and_then(Value::as_str) != Some("none") {
            choice["disable_parallel_tool_use"] = true.into();
        }
    }
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
    }
    if let Some(c) = tool_choice {
        out.insert("tool_choice".into(), c);
    }
    if stream {
        out.insert("stream".into(), true.into());
    }
    let body = serde_json::to_vec(&out).map_err(|e| invalid(e.to_string()))?;
    let mut headers = vec![
        ("content-type".to_string(), "application/json".to_string()),
        ("anthropic-version".to_string(), API_VERSION.to_string()),
    ];
    if let Some(k) = api_key {
        headers.push(("x-api-key".to_string(), k.to_string()));
    }
    Ok(UpstreamRequest {
        url: route.chat_url.clone(),
        headers,
        body,
        dropped,
    })
}

/// Anthropic's `stop_reason` in OpenAI's words.
pub fn finish_reason(reason: &str) -> &'static str {
    match reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

fn chars(s: &str) -> u64 {
    s.chars().count() as u64
}

pub fn translate_response(bytes: &[u8], group: &str, created: u64) -> Result<(Value, ParsedUsage), String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let blocks = v
        .get("content")
        .and_then(Value::as_array)
        .ok_or("the response has no `content` list")?;
    let (mut content, mut reasoning, mut calls, mut thinking_blocks) =
        (String::new(), String::new(), Vec::new(), Vec::new());
    let mut json_answer = false;
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => content.push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("thinking") => {
                reasoning.push_str(b.get("thinking").and_then(Value::as_str).unwrap_or(""));
                thinking_blocks.push(b.clone());
            }
            Some("redacted_thinking") => thinking_blocks.push(b.clone()),
            Some("tool_use") => {
                let input = b.get("input").cloned().unwrap_or_else(|| json!({}));
                if b.get("name").and_then(Value::as_str) == Some(JSON_TOOL) {
                    content.push_str(&input.to_string());
                    json_answer = true;
                } else {
                    calls.push(json!({
                        "id": b.get("id").cloned().unwrap_or(Value::Null),
                        "type": "function",
                        "function": {"name": b.get("name").cloned().unwrap_or(Value::Null), "arguments": input.to_string()},
                    }));
                }
            }
            _ => {}
        }
    }
    let usage = parse_anthropic_usage(v.get("usage").unwrap_or(&Value::Null), chars(&reasoning));
    let reason = v.get("stop_reason").and_then(Value::as_str).unwrap_or("end_turn");
    let finish = if json_answer && calls.is_empty() {
        "stop"
    } else {
        finish_reason(reason)
    };
    let mut extra = Map::new();
    if !thinking_blocks.is_empty() {
        extra.insert("thinking_blocks".into(), Value::Array(thinking_blocks));
    }
    let id = v.get("id").and_then(Value::as_str).unwrap_or("anthropic");
    let choice = json!({
        "index": 0,
        "message": openai::message(&content, &reasoning, calls, extra),
        "logprobs": null,
        "finish_reason": finish,
    });
    Ok((openai::completion(id, created, group, vec![choice], &usage), usage))
}

#[derive(Debug, Clone, Copy)]
enum Block {
    Text,
    Thinking,
    Tool { index: usize },
    JsonTool,
    Other,
}

/// Per-stream state: Anthropic's typed events, content blocks by index, cumulative usage.
#[derive(Debug)]
pub struct StreamState {
    id: String,
    created: u64,
    model: String,
    blocks: HashMap<u64, Block>,
    next_tool: usize,
    usage: Map<String, Value>,
    thinking_chars: u64,
    json_answer: bool,
    finish: Option<&'static str>,
    pub(crate) done: bool,
    pub(crate) error: Option<String>,
}

impl StreamState {
    pub fn new(group: &str, created: u64) -> Self {
        StreamState {
            id: "anthropic".into(),
            created,
            model: group.to_string(),
            blocks: HashMap::new(),
            next_tool: 0,
            usage: Map::new(),
            thinking_chars: 0,
            json_answer: false,
            finish: None,
            done: false,
            error: None,
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> String {
        openai::chunk(&self.id, self.created, &self.model, 0, delta, finish)
    }

    fn merge_usage(&mut self, u: Option<&Value>) {
        if let Some(Value::Object(u)) = u {
            for (k, v) in u {
                // Counts are cumulative: a later value replaces the earlier one.
                if !v.is_null() {
                    self.usage.insert(k.clone(), v.clone());
                }
            }
        }
    }

    pub fn on_event(&mut self, event: &str, data: &str) -> Vec<String> {
        let v: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(e) => {
                self.error = Some(format!("anthropic sent an event that is not JSON: {e}"));
                return Vec::new();
            }
        };
        let kind = v.get("type").and_then(Value::as_str).unwrap_or(event);
        let mut out = Vec::new();
        match kind {
            "message_start" => {
                if let Some(id) = v.pointer("/message/id").and_then(Value::as_str) {
                    self.id = id.to_string();
                }
                self.merge_usage(v.pointer("/message/usage"));
                out.push(self.chunk(json!({"role": "assistant", "content": ""}), None));
            }
            "content_block_start" => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let block = v.get("content_block").unwrap_or(&Value::Null);
                let kind = match block.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        if let Some(t) = block.get("text").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                            out.push(self.chunk(json!({"content": t}), None));
                        }
                        Block::Text
                    }
                    Some("thinking") => Block::Thinking,
                    Some("redacted_thinking") => {
                        out.push(self.chunk(json!({"thinking_blocks": [block]}), None));
                        Block::Other
                    }
                    Some("tool_use") if block.get("name").and_then(Value::as_str) == Some(JSON_TOOL) => {
                        self.json_answer = true;
                        Block::JsonTool
                    }
                    Some("tool_use") => {
                        let index = self.next_tool;
                        self.next_tool += 1;
                        out.push(self.chunk(
                            json!({"tool_calls": [{
                                "index": index,
                                "id": block.get("id").cloned().unwrap_or(Value::Null),
                                "type": "function",
                                "function": {"name": block.get("name").cloned().unwrap_or(Value::Null), "arguments": ""},
                            }]}),
                            None,
                        ));
                        Block::Tool { index }
                    }
                    _ => Block::Other,
                };
                self.blocks.insert(index, kind);
            }
            "content_block_delta" => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let block = self.blocks.get(&index).copied().unwrap_or(Block::Other);
                let delta = v.get("delta").unwrap_or(&Value::Null);
                let text = |k: &str| delta.get(k).and_then(Value::as_str).unwrap_or("");
                match (delta.get("type").and_then(Value::as_str), block) {
                    (Some("text_delta"), _) => out.push(self.chunk(json!({"content": text("text")}), None)),
                    (Some("thinking_delta"), _) => {
                        let t = text("thinking");
                        self.thinking_chars += chars(t);
                        out.push(self.chunk(json!({"reasoning_content": t}), None));
                    }
                    (Some("signature_delta"), _) => out.push(self.chunk(
                        json!({"thinking_blocks": [{"type": "thinking", "thinking": "", "signature": text("signature")}]}),
                        None,
                    )),
                    (Some("input_json_delta"), Block::Tool { index }) => out.push(self.chunk(
                        json!({"tool_calls": [{"index": index, "function": {"arguments": text("partial_json")}}]}),
                        None,
                    )),
                    (Some("input_json_delta"), Block::JsonTool) => {
                        out.push(self.chunk(json!({"content": text("partial_json")}), None))
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                self.merge_usage(v.get("usage"));
                if let Some(r) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    let finish = if self.json_answer && self.next_tool == 0 {
                        "stop"
                    } else {
                        finish_reason(r)
                    };
                    self.finish = Some(finish);
                    out.push(self.chunk(json!({}), Some(finish)));
                }
            }
            "message_stop" => {
                if self.finish.is_none() {
                    self.finish = Some("stop");
                    out.push(self.chunk(json!({}), Some("stop")));
                }
                out.push(openai::usage_chunk(&self.id, self.created, &self.model, &self.usage()));
                out.push("[DONE]".to_string());
                self.done = true;
            }
            "error" => {
                let msg = v
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown error");
                let kind = v.pointer("/error/type").and_then(Value::as_str).unwrap_or("error");
                self.error = Some(format!("anthropic reported {kind} mid-stream: {msg}"));
            }
            // `ping`, `content_block_stop` and event types added later carry nothing to relay.
            _ => {}
        }
        out
    }

    pub fn usage(&self) -> ParsedUsage {
        parse_anthropic_usage(&Value::Object(self.usage.clone()), self.thinking_chars)
    }
}
