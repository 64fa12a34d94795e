//! The mock's Gemini (`generateContent`, `streamGenerateContent?alt=sse`) and Anthropic
//! (`/v1/messages`) wire formats.
//!
//! A native request is read into the same [`ChatRequest`] the OpenAI format uses, so the answer
//! (text, thinking, tool call, token counts) is the one [`Answer::for_request`] computes for any
//! format; only the rendering differs. What each format adds:
//!
//! - Gemini: thinking is reported as `thoughtsTokenCount`, outside `candidatesTokenCount`, and
//!   its text is returned only when `thinkingConfig.includeThoughts` is set; a `thinkingBudget`
//!   of 0 turns it off. A repeated prefix is reported as `cachedContentTokenCount`, inside
//!   `promptTokenCount` (implicit caching). Function calls carry a `thoughtSignature`. Every
//!   streamed chunk carries `usageMetadata`: running totals, complete on the last chunk.
//! - Anthropic: thinking only with `thinking: {type: enabled}`, billed inside `output_tokens`.
//!   Caching only when the request has a `cache_control` marker: the first time a prefix is seen
//!   it is written (`cache_creation_input_tokens`), afterwards read (`cache_read_input_tokens`);
//!   `input_tokens` excludes both. The stream's `message_delta.usage` repeats every count
//!   cumulatively, as Anthropic does, so a client that adds instead of replacing is caught.

use axum::body::Bytes;
use serde_json::{Map, Value, json};

use crate::chat::{Answer, ChatRequest, Message, Tool, ToolFunction, pieces};

fn text_of_parts(parts: &[Value], key: &str, skip_thoughts: bool) -> String {
    parts
        .iter()
        .filter(|p| !(skip_thoughts && p.get("thought").and_then(Value::as_bool) == Some(true)))
        .filter_map(|p| p.get(key).and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("")
}

fn message(role: &str, text: String) -> Message {
    Message {
        role: role.to_string(),
        content: Value::String(text),
    }
}

/// A Gemini request as the mock's chat request, and whether thoughts are to be returned.
pub(crate) fn gemini_request(model: &str, body: &Value) -> Result<(ChatRequest, bool), String> {
    let contents = body
        .get("contents")
        .and_then(Value::as_array)
        .ok_or("GenerateContentRequest.contents is required")?;
    let mut messages = Vec::new();
    if let Some(parts) = body.pointer("/systemInstruction/parts").and_then(Value::as_array) {
        messages.push(message("system", text_of_parts(parts, "text", false)));
    }
    for c in contents {
        let parts = c
            .get("parts")
            .and_then(Value::as_array)
            .ok_or("contents[].parts is required")?;
        let role = match c.get("role").and_then(Value::as_str) {
            Some("model") => "assistant",
            _ => "user",
        };
        for p in parts.iter().filter_map(|p| p.get("functionResponse")) {
            messages.push(message(
                "tool",
                p.get("response").map(Value::to_string).unwrap_or_default(),
            ));
        }
        let text = text_of_parts(parts, "text", true);
        let calls = parts.iter().any(|p| p.get("functionCall").is_some());
        let responses = parts.iter().any(|p| p.get("functionResponse").is_some());
        if !text.is_empty() || (!calls && !responses) {
            messages.push(message(role, text));
        } else if calls {
            messages.push(message(role, String::new()));
        }
    }
    let config = body.get("generationConfig");
    let tools: Vec<Tool> = body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("functionDeclarations").and_then(Value::as_array))
        .flatten()
        .map(|d| Tool {
            function: Some(ToolFunction {
                name: d.get("name").and_then(Value::as_str).unwrap_or("").to_string(),
                parameters: d.get("parametersJsonSchema").or_else(|| d.get("parameters")).cloned(),
            }),
        })
        .collect();
    let calling = body.pointer("/toolConfig/functionCallingConfig");
    let tool_choice = match calling.and_then(|c| c.get("mode")).and_then(Value::as_str) {
        Some("NONE") => Some(json!("none")),
        Some("ANY") => match calling.and_then(|c| c.pointer("/allowedFunctionNames/0")) {
            Some(name) => Some(json!({"type": "function", "function": {"name": name}})),
            None => Some(json!("required")),
        },
        _ => None,
    };
    let thinking = config.and_then(|c| c.get("thinkingConfig"));
    let budget_off = thinking.and_then(|t| t.get("thinkingBudget")).and_then(Value::as_u64) == Some(0);
    let include_thoughts = thinking.and_then(|t| t.get("includeThoughts")).and_then(Value::as_bool) == Some(true);
    let req = ChatRequest {
        model: model.to_string(),
        messages,
        stream: None,
        stream_options: None,
        max_tokens: config.and_then(|c| c.get("maxOutputTokens")).and_then(Value::as_u64),
        max_completion_tokens: None,
        tools: (!tools.is_empty()).then_some(tools),
        tool_choice,
        response_format: None,
        reasoning: budget_off.then_some(false),
    };
    Ok((req, include_thoughts))
}

fn any_cache_control(v: &Value) -> bool {
    match v {
        Value::Object(o) => o.contains_key("cache_control") || o.values().any(any_cache_control),
        Value::Array(a) => a.iter().any(any_cache_control),
        _ => false,
    }
}

/// An Anthropic request as the mock's chat request, whether it asks for caching, and whether it
/// streams.
pub(crate) fn anthropic_request(body: &Value) -> Result<(ChatRequest, bool, bool), String> {
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .ok_or("model: Field required")?;
    let max_tokens = body
        .get("max_tokens")
        .and_then(Value::as_u64)
        .ok_or("max_tokens: Field required")?;
    let turns = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or("messages: Field required")?;
    let mut messages = Vec::new();
    match body.get("system") {
        Some(Value::String(s)) => messages.push(message("system", s.clone())),
        Some(Value::Array(blocks)) => messages.push(message("system", text_of_parts(blocks, "text", false))),
        _ => {}
    }
    for t in turns {
        let role = t
            .get("role")
            .and_then(Value::as_str)
            .ok_or("messages[].role: Field required")?;
        match t.get("content") {
            Some(Value::String(s)) => messages.push(message(role, s.clone())),
            Some(Value::Array(blocks)) => {
                if blocks.iter().any(|b| {
                    b.get("type").and_then(Value::as_str) == Some("text")
                        && b.get("text").and_then(Value::as_str) == Some("")
                }) {
                    return Err("messages: text content blocks must be non-empty".into());
                }
                for b in blocks
                    .iter()
                    .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
                {
                    let text = match b.get("content") {
                        Some(Value::String(s)) => s.clone(),
                        Some(Value::Array(inner)) => text_of_parts(inner, "text", false),
                        _ => String::new(),
                    };
                    messages.push(message("tool", text));
                }
                let text = text_of_parts(blocks, "text", false);
                let tool_use = blocks
                    .iter()
                    .any(|b| b.get("type").and_then(Value::as_str) == Some("tool_use"));
                if !text.is_empty()
                    || tool_use
                    || !blocks
                        .iter()
                        .any(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
                {
                    messages.push(message(role, text));
                }
            }
            _ => return Err("messages[].content: Field required".into()),
        }
    }
    let tools: Vec<Tool> = body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| {
            Some(Tool {
                function: Some(ToolFunction {
                    name: t.get("name")?.as_str()?.to_string(),
                    parameters: t.get("input_schema").cloned(),
                }),
            })
        })
        .collect();
    let tool_choice = match body.pointer("/tool_choice/type").and_then(Value::as_str) {
        Some("none") => Some(json!("none")),
        Some("any") => Some(json!("required")),
        Some("tool") => body
            .pointer("/tool_choice/name")
            .map(|n| json!({"type": "function", "function": {"name": n}})),
        _ => None,
    };
    let thinking = body.pointer("/thinking/type").and_then(Value::as_str) == Some("enabled");
    let caching = any_cache_control(body.get("system").unwrap_or(&Value::Null))
        || any_cache_control(body.get("messages").unwrap_or(&Value::Null))
        || any_cache_control(body.get("tools").unwrap_or(&Value::Null));
    let stream = body.get("stream").and_then(Value::as_bool) == Some(true);
    let req = ChatRequest {
        model: model.to_string(),
        messages,
        stream: None,
        stream_options: None,
        max_tokens: Some(max_tokens),
        max_completion_tokens: None,
        tools: (!tools.is_empty()).then_some(tools),
        tool_choice,
        response_format: None,
        reasoning: Some(thinking),
    };
    Ok((req, caching, stream))
}

fn hex_of(answer: &Answer) -> &str {
    answer.id.rsplit('-').next().unwrap_or("0")
}

fn args_object(arguments: &str) -> Value {
    serde_json::from_str(arguments).unwrap_or_else(|_| json!({}))
}

// ---------------------------------------------------------------- Gemini

fn gemini_usage(answer: &Answer, complete: bool) -> Value {
    let mut u = json!({"promptTokenCount": answer.prompt_tokens});
    if !complete {
        u["totalTokenCount"] = answer.prompt_tokens.into();
        return u;
    }
    u["candidatesTokenCount"] = (answer.completion_tokens - answer.reasoning_tokens).into();
    u["totalTokenCount"] = (answer.prompt_tokens + answer.completion_tokens).into();
    if answer.reasoning_tokens > 0 {
        u["thoughtsTokenCount"] = answer.reasoning_tokens.into();
    }
    if answer.cached_tokens > 0 {
        u["cachedContentTokenCount"] = answer.cached_tokens.into();
    }
    u["promptTokensDetails"] = json!([{"modality": "TEXT", "tokenCount": answer.prompt_tokens}]);
    u
}

fn gemini_finish(answer: &Answer) -> &'static str {
    if answer.finish_reason == "length" {
        "MAX_TOKENS"
    } else {
        "STOP"
    }
}

fn gemini_call_part(answer: &Answer) -> Option<Value> {
    let call = answer.tool_call.as_ref()?;
    let mut part = json!({"functionCall": {"name": call.name, "args": args_object(&call.arguments)}});
    if answer.reasoning_tokens > 0 {
        part["thoughtSignature"] = format!("c2lnLW1vY2st{}", hex_of(answer)).into();
    }
    Some(part)
}

fn gemini_response(answer: &Answer, model: &str, parts: Vec<Value>, finish: Option<&str>, complete: bool) -> Value {
    let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
    if let Some(f) = finish {
        candidate["finishReason"] = f.into();
    }
    json!({
        "candidates": [candidate],
        "usageMetadata": gemini_usage(answer, complete),
        "modelVersion": model,
        "responseId": format!("mock{}", hex_of(answer)),
    })
}

pub(crate) fn render_gemini(answer: &Answer, model: &str, include_thoughts: bool) -> serde_json::Result<Vec<u8>> {
    let mut parts = Vec::new();
    if include_thoughts && let Some(r) = &answer.reasoning_content {
        parts.push(json!({"text": r, "thought": true}));
    }
    if let Some(c) = &answer.content {
        parts.push(json!({"text": c}));
    }
    parts.extend(gemini_call_part(answer));
    serde_json::to_vec(&gemini_response(
        answer,
        model,
        parts,
        Some(gemini_finish(answer)),
        true,
    ))
}

pub(crate) fn render_gemini_stream(
    answer: &Answer,
    model: &str,
    include_thoughts: bool,
) -> serde_json::Result<Vec<Bytes>> {
    let mut parts: Vec<Value> = Vec::new();
    if include_thoughts {
        for piece in answer.reasoning_content.iter().flat_map(|r| pieces(r, 4)) {
            parts.push(json!({"text": piece, "thought": true}));
        }
    }
    for piece in answer.content.iter().flat_map(|c| pieces(c, 4)) {
        parts.push(json!({"text": piece}));
    }
    parts.extend(gemini_call_part(answer));
    if parts.is_empty() {
        parts.push(json!({"text": ""}));
    }
    let last = parts.len() - 1;
    let mut frames = Vec::with_capacity(parts.len());
    for (i, part) in parts.into_iter().enumerate() {
        let done = i == last;
        let v = gemini_response(answer, model, vec![part], done.then(|| gemini_finish(answer)), done);
        // Google ends SSE lines with CRLF.
        let mut frame = b"data: ".to_vec();
        serde_json::to_writer(&mut frame, &v)?;
        frame.extend_from_slice(b"\r\n\r\n");
        frames.push(Bytes::from(frame));
    }
    Ok(frames)
}

// ---------------------------------------------------------------- Anthropic

fn anthropic_usage(answer: &Answer, caching: bool, output_tokens: u64) -> Value {
    let (read, write) = match (caching, answer.cached_tokens > 0) {
        (false, _) => (0, 0),
        (true, true) => (answer.cached_tokens, 0),
        (true, false) => (0, answer.cacheable_tokens),
    };
    json!({
        "input_tokens": answer.prompt_tokens - read - write,
        "cache_creation_input_tokens": write,
        "cache_read_input_tokens": read,
        "output_tokens": output_tokens,
    })
}

fn anthropic_stop(answer: &Answer) -> &'static str {
    match answer.finish_reason {
        "tool_calls" => "tool_use",
        "length" => "max_tokens",
        _ => "end_turn",
    }
}

fn anthropic_signature(answer: &Answer) -> String {
    format!("RXJtb2NrLXNpZ25hdHVyZS0{}", hex_of(answer))
}

fn anthropic_tool_id(answer: &Answer) -> String {
    format!("toolu_mock_{}", hex_of(answer))
}

pub(crate) fn render_anthropic(answer: &Answer, model: &str, caching: bool) -> serde_json::Result<Vec<u8>> {
    let mut content = Vec::new();
    if let Some(r) = &answer.reasoning_content {
        content.push(json!({"type": "thinking", "thinking": r, "signature": anthropic_signature(answer)}));
    }
    if let Some(c) = &answer.content {
        content.push(json!({"type": "text", "text": c}));
    }
    if let Some(call) = &answer.tool_call {
        content.push(
            json!({"type": "tool_use", "id": anthropic_tool_id(answer), "name": call.name,
                            "input": args_object(&call.arguments)}),
        );
    }
    serde_json::to_vec(&json!({
        "id": format!("msg_mock_{}", hex_of(answer)),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": anthropic_stop(answer),
        "stop_sequence": null,
        "usage": anthropic_usage(answer, caching, answer.completion_tokens),
    }))
}

fn event(frames: &mut Vec<Bytes>, name: &str, data: &Value) -> serde_json::Result<()> {
    let mut frame = format!("event: {name}\ndata: ").into_bytes();
    serde_json::to_writer(&mut frame, data)?;
    frame.extend_from_slice(b"\n\n");
    frames.push(Bytes::from(frame));
    Ok(())
}

pub(crate) fn render_anthropic_stream(answer: &Answer, model: &str, caching: bool) -> serde_json::Result<Vec<Bytes>> {
    let mut f = Vec::new();
    event(
        &mut f,
        "message_start",
        &json!({"type": "message_start", "message": {
            "id": format!("msg_mock_{}", hex_of(answer)), "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": anthropic_usage(answer, caching, 1),
        }}),
    )?;
    event(&mut f, "ping", &json!({"type": "ping"}))?;
    let mut index = 0;
    let mut block = |f: &mut Vec<Bytes>, start: Value, deltas: Vec<Value>| -> serde_json::Result<()> {
        event(
            f,
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": start}),
        )?;
        for d in deltas {
            event(
                f,
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index, "delta": d}),
            )?;
        }
        event(
            f,
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        )?;
        index += 1;
        Ok(())
    };
    if let Some(r) = &answer.reasoning_content {
        let mut deltas: Vec<Value> = pieces(r, 4)
            .map(|p| json!({"type": "thinking_delta", "thinking": p}))
            .collect();
        deltas.push(json!({"type": "signature_delta", "signature": anthropic_signature(answer)}));
        block(
            &mut f,
            json!({"type": "thinking", "thinking": "", "signature": ""}),
            deltas,
        )?;
    }
    if let Some(c) = &answer.content {
        let deltas = pieces(c, 4).map(|p| json!({"type": "text_delta", "text": p})).collect();
        block(&mut f, json!({"type": "text", "text": ""}), deltas)?;
    }
    if let Some(call) = &answer.tool_call {
        let mid = call
            .arguments
            .char_indices()
            .nth(call.arguments.chars().count() / 2)
            .map_or(0, |(i, _)| i);
        let (a, b) = call.arguments.split_at(mid);
        let deltas = [a, b]
            .into_iter()
            .filter(|p| !p.is_empty())
            .map(|p| json!({"type": "input_json_delta", "partial_json": p}))
            .collect();
        block(
            &mut f,
            json!({"type": "tool_use", "id": anthropic_tool_id(answer), "name": call.name, "input": {}}),
            deltas,
        )?;
    }
    event(
        &mut f,
        "message_delta",
        &json!({"type": "message_delta", "delta": {"stop_reason": anthropic_stop(answer), "stop_sequence": null},
                "usage": anthropic_usage(answer, caching, answer.completion_tokens)}),
    )?;
    event(&mut f, "message_stop", &json!({"type": "message_stop"}))?;
    Ok(f)
}

/// Gemini's error shape.
pub(crate) fn gemini_error(code: u16, status: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message, "status": status}})
}

/// Anthropic's error shape.
pub(crate) fn anthropic_error(kind: &str, message: &str) -> Value {
    let mut e = Map::new();
    e.insert("type".into(), kind.into());
    e.insert("message".into(), message.into());
    json!({"type": "error", "error": e})
}
