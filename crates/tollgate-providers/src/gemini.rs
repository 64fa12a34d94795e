//! Gemini's `generateContent` wire format (Google AI Studio), both ways.
//!
//! Request: system/developer messages → `systemInstruction`; user/assistant/tool turns →
//! `contents` with roles `user`/`model` (tool results are `functionResponse` parts of a user turn,
//! consecutive turns of one role merged, as Gemini wants); images and files as `data:` URLs →
//! `inlineData`, other URLs → `fileData`; sampling, `stop`, `max_(completion_)tokens`, `n`,
//! `seed`, penalties, logprobs and `response_format` → `generationConfig` (JSON schemas as
//! `responseJsonSchema`, tools as `parametersJsonSchema`, so no schema is rewritten);
//! `reasoning_effort`/`thinking` → `thinkingConfig` with `includeThoughts`; `tool_choice` →
//! `toolConfig`. Gemini's own fields (`safetySettings`, `cachedContent`, `labels`, a
//! `generationConfig` object whose keys win) travel to the top level untouched.
//!
//! Response: `thought` parts → `reasoning_content`; `functionCall` parts → `tool_calls` (the
//! `thoughtSignature` Gemini attaches rides in `extra_content.google.thought_signature`, as on
//! Google's OpenAI-compatible endpoint, and is sent back on the next turn).

use serde_json::{Map, Value, json};

use crate::openai::{self, arguments_object, media_type_of_url, parse_data_url, tool_name_for};
use crate::provider::Route;
use crate::usage::{ParsedUsage, parse_gemini_usage};
use crate::wire::{TranslateError, UpstreamRequest};

/// OpenAI fields Gemini has no place for.
const DROPPED: &[&str] = &[
    "user",
    "store",
    "service_tier",
    "modalities",
    "audio",
    "prediction",
    "logit_bias",
    "parallel_tool_calls",
    "web_search_options",
];

fn invalid(msg: impl Into<String>) -> TranslateError {
    TranslateError::InvalidRequest(msg.into())
}

/// One OpenAI content part (or a whole string content) as Gemini parts.
fn parts_of(content: &Value, out: &mut Vec<Value>) -> Result<(), TranslateError> {
    match content {
        Value::Null => {}
        Value::String(s) => {
            if !s.is_empty() {
                out.push(json!({"text": s}));
            }
        }
        Value::Array(parts) => {
            for p in parts {
                match p.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        if let Some(t) = p.get("text").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                            out.push(json!({"text": t}));
                        }
                    }
                    Some("image_url") => {
                        let url = p
                            .get("image_url")
                            .and_then(|i| i.get("url").or(Some(i)))
                            .and_then(Value::as_str)
                            .ok_or_else(|| invalid("an image_url part needs image_url.url"))?;
                        out.push(media_part(url, None));
                    }
                    Some("input_audio") => {
                        let data = p.pointer("/input_audio/data").and_then(Value::as_str).unwrap_or("");
                        let format = p
                            .pointer("/input_audio/format")
                            .and_then(Value::as_str)
                            .unwrap_or("wav");
                        out.push(json!({"inlineData": {"mimeType": format!("audio/{format}"), "data": data}}));
                    }
                    Some("file") => {
                        let url = p
                            .pointer("/file/file_data")
                            .or_else(|| p.pointer("/file/file_id"))
                            .and_then(Value::as_str)
                            .ok_or_else(|| invalid("a file part needs file.file_data or file.file_id"))?;
                        let format = p.pointer("/file/format").and_then(Value::as_str);
                        out.push(media_part(url, format));
                    }
                    other => {
                        return Err(invalid(format!(
                            "content part type {} cannot be sent to gemini/",
                            other.unwrap_or("(none)")
                        )));
                    }
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

fn media_part(url: &str, mime: Option<&str>) -> Value {
    match parse_data_url(url) {
        Some((media, data)) => json!({"inlineData": {"mimeType": mime.unwrap_or(media), "data": data}}),
        None => json!({"fileData": {"mimeType": mime.unwrap_or(media_type_of_url(url)), "fileUri": url}}),
    }
}

fn push_turn(contents: &mut Vec<Value>, role: &str, parts: Vec<Value>) {
    crate::turns::push_turn(contents, role, "parts", parts);
}

fn contents_of(messages: &[Value]) -> Result<(Vec<Value>, Vec<Value>), TranslateError> {
    let mut system = Vec::new();
    let mut contents = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let content = m.get("content").unwrap_or(&Value::Null);
        match m.get("role").and_then(Value::as_str).unwrap_or("user") {
            "system" | "developer" => parts_of(content, &mut system)?,
            "user" => {
                let mut parts = Vec::new();
                parts_of(content, &mut parts)?;
                push_turn(&mut contents, "user", parts);
            }
            "assistant" => {
                let mut parts = Vec::new();
                parts_of(content, &mut parts)?;
                for call in m.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
                    let name = call.pointer("/function/name").and_then(Value::as_str).unwrap_or("");
                    let mut part = json!({"functionCall": {"name": name, "args": arguments_object(call)}});
                    if let Some(sig) = call.pointer("/extra_content/google/thought_signature") {
                        part["thoughtSignature"] = sig.clone();
                    }
                    parts.push(part);
                }
                // An assistant turn with neither text nor calls would be refused: it is left out.
                push_turn(&mut contents, "model", parts);
            }
            role @ ("tool" | "function") => {
                let name = m
                    .get("name")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .or_else(|| {
                        let id = m.get("tool_call_id").and_then(Value::as_str)?;
                        tool_name_for(messages, i, id)
                    })
                    .ok_or_else(|| invalid(format!("a {role} message names no tool call gemini/ can match")))?;
                let text = match content {
                    Value::String(s) => s.clone(),
                    Value::Array(parts) => parts
                        .iter()
                        .filter_map(|p| p.get("text").and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join(""),
                    other => other.to_string(),
                };
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(v @ Value::Object(_)) => v,
                    Ok(v) => json!({"content": v}),
                    Err(_) => json!({"content": text}),
                };
                push_turn(
                    &mut contents,
                    "user",
                    vec![json!({"functionResponse": {"name": name, "response": response}})],
                );
            }
            other => return Err(invalid(format!("message role `{other}` cannot be sent to gemini/"))),
        }
    }
    Ok((system, contents))
}

fn tools_of(tools: &Value) -> Vec<Value> {
    let mut declarations = Vec::new();
    let mut native = Vec::new();
    for t in tools.as_array().into_iter().flatten() {
        match (t.get("type").and_then(Value::as_str), t.get("function")) {
            (Some("function") | None, Some(f)) => {
                let mut d = Map::new();
                d.insert("name".into(), f.get("name").cloned().unwrap_or(Value::Null));
                if let Some(desc) = f.get("description") {
                    d.insert("description".into(), desc.clone());
                }
                if let Some(p) = f.get("parameters") {
                    d.insert("parametersJsonSchema".into(), p.clone());
                }
                declarations.push(Value::Object(d));
            }
            // Gemini's own tools (`{"googleSearch": {}}`, `{"codeExecution": {}}`) pass as they are.
            _ => native.push(t.clone()),
        }
    }
    let mut out = Vec::new();
    if !declarations.is_empty() {
        out.push(json!({"functionDeclarations": declarations}));
    }
    out.extend(native);
    out
}

fn tool_config_of(choice: &Value) -> Option<Value> {
    let config = match choice {
        Value::String(s) => match s.as_str() {
            "auto" => json!({"mode": "AUTO"}),
            "none" => json!({"mode": "NONE"}),
            "required" => json!({"mode": "ANY"}),
            _ => return None,
        },
        Value::Object(_) => {
            let name = choice.pointer("/function/name")?.clone();
            json!({"mode": "ANY", "allowedFunctionNames": [name]})
        }
        _ => return None,
    };
    Some(json!({"functionCallingConfig": config}))
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
    let (system, contents) = contents_of(messages)?;
    let mut out = Map::new();
    let mut gen_config = Map::new();
    let mut dropped = Vec::new();
    let mut user_gen_config = None;
    for (k, v) in body {
        let rename = match k.as_str() {
            "temperature" => "temperature",
            "top_p" => "topP",
            "top_k" => "topK",
            "n" => "candidateCount",
            "seed" => "seed",
            "presence_penalty" => "presencePenalty",
            "frequency_penalty" => "frequencyPenalty",
            "logprobs" => "responseLogprobs",
            "top_logprobs" => "logprobs",
            "stop" => {
                gen_config.insert("stopSequences".into(), Value::Array(openai::stop_sequences(v)));
                continue;
            }
            "response_format" => {
                if let Some(schema) = openai::json_schema_of(v) {
                    gen_config.insert("responseMimeType".into(), "application/json".into());
                    if let Some(s) = schema {
                        gen_config.insert("responseJsonSchema".into(), s.clone());
                    }
                }
                continue;
            }
            "tools" => {
                let tools = tools_of(v);
                if !tools.is_empty() {
                    out.insert("tools".into(), Value::Array(tools));
                }
                continue;
            }
            "tool_choice" => {
                if let Some(c) = tool_config_of(v) {
                    out.insert("toolConfig".into(), c);
                }
                continue;
            }
            "generationConfig" | "generation_config" => {
                user_gen_config = v.as_object();
                continue;
            }
            "model"
            | "messages"
            | "stream"
            | "stream_options"
            | "max_tokens"
            | "max_completion_tokens"
            | "reasoning_effort"
            | "thinking" => continue,
            name if DROPPED.contains(&name) => {
                dropped.push(name.to_string());
                continue;
            }
            // Gemini's own top-level fields (`safetySettings`, `cachedContent`, `labels`, …).
            _ => {
                out.insert(k.clone(), v.clone());
                continue;
            }
        };
        if !v.is_null() {
            gen_config.insert(rename.into(), v.clone());
        }
    }
    if let Some(max) = openai::requested_max_tokens(body) {
        gen_config.insert("maxOutputTokens".into(), max.into());
    }
    if let Some(budget) = openai::requested_budget(body)? {
        let mut thinking = json!({"thinkingBudget": budget});
        if budget > 0 {
            thinking["includeThoughts"] = true.into();
        }
        gen_config.insert("thinkingConfig".into(), thinking);
    }
    if let Some(user) = user_gen_config {
        gen_config.extend(user.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    out.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        out.insert("systemInstruction".into(), json!({"parts": system}));
    }
    if !gen_config.is_empty() {
        out.insert("generationConfig".into(), Value::Object(gen_config));
    }
    let body = serde_json::to_vec(&out).map_err(|e| invalid(e.to_string()))?;
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    if let Some(k) = api_key {
        headers.push(("x-goog-api-key".to_string(), k.to_string()));
    }
    Ok(UpstreamRequest {
        url: if stream {
            route.stream_url.clone()
        } else {
            route.chat_url.clone()
        },
        headers,
        body,
        dropped,
    })
}

/// Gemini's `finishReason` in OpenAI's words.
pub fn finish_reason(reason: &str, has_tool_calls: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => "content_filter",
        _ if has_tool_calls => "tool_calls",
        _ => "stop",
    }
}

fn call_id(response_id: &str, index: usize) -> String {
    let short: String = response_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(16)
        .collect();
    format!("call_{short}_{index}")
}

/// A `functionCall` part as an OpenAI tool call (`index` is set only for stream deltas).
fn tool_call(part: &Value, id: String, index: Option<usize>) -> Value {
    let call = &part["functionCall"];
    let args = call.get("args").cloned().unwrap_or_else(|| json!({}));
    let mut v = json!({
        "id": call.get("id").and_then(Value::as_str).map(str::to_string).unwrap_or(id),
        "type": "function",
        "function": {"name": call.get("name").cloned().unwrap_or(Value::Null), "arguments": args.to_string()},
    });
    if let Some(i) = index {
        v["index"] = i.into();
    }
    if let Some(sig) = part.get("thoughtSignature") {
        v["extra_content"] = json!({"google": {"thought_signature": sig}});
    }
    v
}

fn parts(candidate: &Value) -> &[Value] {
    candidate
        .pointer("/content/parts")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn is_thought(part: &Value) -> bool {
    part.get("thought").and_then(Value::as_bool) == Some(true)
}

pub fn translate_response(bytes: &[u8], group: &str, created: u64) -> Result<(Value, ParsedUsage), String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if !v.is_object() {
        return Err("the response is not a JSON object".into());
    }
    let response_id = v.get("responseId").and_then(Value::as_str).unwrap_or("gemini");
    let usage = v.get("usageMetadata").map(parse_gemini_usage).unwrap_or_default();
    let mut choices = Vec::new();
    let mut next_call = 0;
    for (i, c) in v
        .get("candidates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let (mut content, mut reasoning, mut calls) = (String::new(), String::new(), Vec::new());
        for p in parts(c) {
            if p.get("functionCall").is_some() {
                calls.push(tool_call(p, call_id(response_id, next_call), None));
                next_call += 1;
            } else if let Some(t) = p.get("text").and_then(Value::as_str) {
                (if is_thought(p) { &mut reasoning } else { &mut content }).push_str(t);
            }
        }
        let reason = c.get("finishReason").and_then(Value::as_str).unwrap_or("STOP");
        let finish = finish_reason(reason, !calls.is_empty());
        choices.push(json!({
            "index": c.get("index").and_then(Value::as_u64).unwrap_or(i as u64),
            "message": openai::message(&content, &reasoning, calls, Map::new()),
            "logprobs": null,
            "finish_reason": finish,
        }));
    }
    if choices.is_empty() {
        // A prompt blocked before any candidate: an empty, filtered answer rather than an error,
        // as OpenAI answers a refused prompt.
        choices.push(json!({
            "index": 0,
            "message": openai::message("", "", Vec::new(), Map::new()),
            "logprobs": null,
            "finish_reason": "content_filter",
        }));
    }
    let id = format!("chatcmpl-{response_id}");
    Ok((openai::completion(&id, created, group, choices, &usage), usage))
}

/// Per-stream state: Gemini streams whole `GenerateContentResponse`s, each with running usage.
#[derive(Debug)]
pub struct StreamState {
    id: String,
    created: u64,
    model: String,
    started: bool,
    /// Tool calls seen so far per candidate: the next call's OpenAI `index`.
    tool_calls: Vec<usize>,
    /// Candidates that have finished.
    finished: Vec<u64>,
    usage_metadata: Option<Value>,
    pub(crate) done: bool,
    pub(crate) error: Option<String>,
}

impl StreamState {
    pub fn new(group: &str, created: u64) -> Self {
        StreamState {
            id: String::new(),
            created,
            model: group.to_string(),
            started: false,
            tool_calls: Vec::new(),
            finished: Vec::new(),
            usage_metadata: None,
            done: false,
            error: None,
        }
    }

    fn chunk(&self, index: u64, delta: Value, finish: Option<&str>) -> String {
        openai::chunk(&self.id, self.created, &self.model, index, delta, finish)
    }

    pub fn on_event(&mut self, data: &str) -> Vec<String> {
        let v: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(e) => {
                self.error = Some(format!("gemini sent an event that is not JSON: {e}"));
                return Vec::new();
            }
        };
        if let Some(err) = v.get("error") {
            let msg = err.get("message").and_then(Value::as_str).unwrap_or("unknown error");
            self.error = Some(format!("gemini reported an error mid-stream: {msg}"));
            return Vec::new();
        }
        let mut out = Vec::new();
        if !self.started {
            let rid = v.get("responseId").and_then(Value::as_str).unwrap_or("gemini");
            self.id = format!("chatcmpl-{rid}");
            self.started = true;
            out.push(self.chunk(0, json!({"role": "assistant", "content": ""}), None));
        }
        if let Some(m) = v.get("usageMetadata") {
            // Running totals: the latest replaces the earlier ones.
            self.usage_metadata = Some(m.clone());
        }
        let response_id = self.id.trim_start_matches("chatcmpl-").to_string();
        for (i, c) in v
            .get("candidates")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let index = c.get("index").and_then(Value::as_u64).unwrap_or(i as u64);
            let slot = index as usize;
            if self.tool_calls.len() <= slot {
                self.tool_calls.resize(slot + 1, 0);
            }
            for p in parts(c) {
                if p.get("functionCall").is_some() {
                    let n = self.tool_calls[slot];
                    let call = tool_call(p, call_id(&response_id, n), Some(n));
                    self.tool_calls[slot] += 1;
                    out.push(self.chunk(index, json!({"tool_calls": [call]}), None));
                } else if let Some(t) = p.get("text").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                    let key = if is_thought(p) { "reasoning_content" } else { "content" };
                    out.push(self.chunk(index, json!({ key: t }), None));
                }
            }
            if let Some(reason) = c.get("finishReason").and_then(Value::as_str)
                && !self.finished.contains(&index)
            {
                self.finished.push(index);
                let finish = finish_reason(reason, self.tool_calls[slot] > 0);
                out.push(self.chunk(index, json!({}), Some(finish)));
            }
        }
        if v.get("candidates").is_none()
            && v.pointer("/promptFeedback/blockReason").is_some()
            && self.finished.is_empty()
        {
            self.finished.push(0);
            out.push(self.chunk(0, json!({}), Some("content_filter")));
        }
        out
    }

    /// The end of the upstream stream: usage and `[DONE]`, if the answer finished.
    pub fn finish(&mut self) -> Vec<String> {
        if self.done || self.finished.is_empty() || self.error.is_some() {
            return Vec::new();
        }
        self.done = true;
        vec![
            openai::usage_chunk(&self.id, self.created, &self.model, &self.usage()),
            "[DONE]".to_string(),
        ]
    }

    pub fn usage(&self) -> ParsedUsage {
        self.usage_metadata.as_ref().map(parse_gemini_usage).unwrap_or_default()
    }
}
