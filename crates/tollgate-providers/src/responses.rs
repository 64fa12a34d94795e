//! OpenAI's Responses API as a front door (what Codex CLI speaks), for deployments reached through
//! chat completions: a Responses request becomes an OpenAI chat request (which
//! [`translate`](crate::translate) then takes to the deployment's own format), and the chat
//! answer — whole, or chunk by chunk — becomes a `response` object or the Responses API's typed
//! event sequence.
//!
//! Request: `instructions` → a system message first; `input` as a string (one user turn) or as
//! items: messages (`input_text`, `output_text`, `input_image`; roles `user`, `assistant`,
//! `system`, `developer` → system), `function_call` → an assistant turn's `tool_calls` (adjacent
//! calls share one turn), `function_call_output` → a `tool` message; `reasoning` items (opaque
//! to every other provider) and `item_reference`s are dropped. Function `tools` (flat in this
//! API) → chat's nested ones, `tool_choice`, `reasoning.effort` → `reasoning_effort`,
//! `max_output_tokens` → `max_tokens`, `text.format` (`json_schema`, `json_object`) →
//! `response_format`, `temperature`, `top_p`, `parallel_tool_calls`, `user`. Built-in tools
//! (web search, file search, computer use) and Responses-only fields are listed in `dropped`.
//! `previous_response_id` is resolved by the caller, which passes the earlier turns in.
//!
//! Usage in the Responses convention: `input_tokens` includes cached ones
//! (`input_tokens_details.cached_tokens`), `output_tokens` includes reasoning
//! (`output_tokens_details.reasoning_tokens`).

use serde_json::{Map, Value, json};
use tollgate_core::Usage;

use crate::wire::TranslateError;

fn invalid(msg: impl Into<String>) -> TranslateError {
    TranslateError::InvalidRequest(msg.into())
}

/// A Responses request as an OpenAI chat request, and the fields that had no place in it.
/// `earlier`: the chat messages of the conversation `previous_response_id` continues (its
/// inputs and answers), placed after the instructions and before this request's input.
pub fn to_chat(
    body: &Map<String, Value>,
    earlier: &[Value],
) -> Result<(Map<String, Value>, Vec<String>), TranslateError> {
    let mut out = Map::new();
    let mut dropped = Vec::new();
    let mut messages = Vec::new();
    match body.get("instructions") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.is_empty() => {}
        Some(Value::String(s)) => messages.push(json!({"role": "system", "content": s})),
        Some(_) => return Err(invalid("`instructions` must be a string")),
    }
    // The earlier turns' own instructions are not carried over (as OpenAI does).
    messages.extend(earlier.iter().filter(|m| m["role"] != "system").cloned());
    messages.extend(input_messages(body.get("input"))?);
    if messages.is_empty() {
        return Err(invalid("`input` is empty: a response needs at least one input item"));
    }
    out.insert("messages".into(), Value::Array(messages));
    for (k, v) in body {
        match k.as_str() {
            "instructions" | "input" | "previous_response_id" | "store" | "metadata" | "include" | "truncation" => {}
            "model" | "temperature" | "top_p" | "stream" | "parallel_tool_calls" | "user" | "top_logprobs" => {
                out.insert(k.clone(), v.clone());
            }
            "max_output_tokens" => {
                if !v.is_null() {
                    out.insert("max_tokens".into(), v.clone());
                }
            }
            "reasoning" => {
                if let Some(effort) = v.get("effort").and_then(Value::as_str) {
                    out.insert("reasoning_effort".into(), effort.into());
                }
            }
            "text" => {
                if let Some(format) = response_format(v)? {
                    out.insert("response_format".into(), format);
                }
            }
            "tools" => {
                let (tools, skipped) = tools(v)?;
                dropped.extend(skipped);
                if !tools.is_empty() {
                    out.insert("tools".into(), Value::Array(tools));
                }
            }
            "tool_choice" => {
                out.insert("tool_choice".into(), tool_choice(v)?);
            }
            other => dropped.push(other.to_string()),
        }
    }
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok((out, dropped))
}

/// `input` as chat messages.
pub fn input_messages(input: Option<&Value>) -> Result<Vec<Value>, TranslateError> {
    let items = match input {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(s)) => return Ok(vec![json!({"role": "user", "content": s})]),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(invalid("`input` must be a string or a list of items")),
    };
    let mut messages: Vec<Value> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let kind = item.get("type").and_then(Value::as_str).unwrap_or("message");
        match kind {
            "message" => messages.push(message_item(item, i)?),
            "function_call" => {
                let call = json!({
                    "id": item.get("call_id").cloned().unwrap_or(Value::Null),
                    "type": "function",
                    "function": {
                        "name": item.get("name").cloned().unwrap_or(Value::Null),
                        "arguments": item.get("arguments").cloned().unwrap_or_else(|| "{}".into()),
                    },
                });
                // Calls made together are one assistant turn with several tool calls.
                match messages.last_mut() {
                    Some(last) if last["role"] == "assistant" && last.get("tool_calls").is_some() => {
                        if let Some(calls) = last["tool_calls"].as_array_mut() {
                            calls.push(call);
                        }
                    }
                    _ => messages.push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
                }
            }
            "function_call_output" => {
                let output = match item.get("output") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(parts)) => text_of(parts),
                    Some(other) => other.to_string(),
                    None => String::new(),
                };
                messages.push(json!({
                    "role": "tool",
                    "tool_call_id": item.get("call_id").cloned().unwrap_or(Value::Null),
                    "content": output,
                }));
            }
            // Opaque reasoning and references to stored items: nothing a chat model can read.
            "reasoning" | "item_reference" => {}
            other => {
                return Err(invalid(format!(
                    "input[{i}]: items of type `{other}` are not supported"
                )));
            }
        }
    }
    Ok(messages)
}

fn text_of(parts: &[Value]) -> String {
    parts
        .iter()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("")
}

fn message_item(item: &Value, i: usize) -> Result<Value, TranslateError> {
    let role = match item.get("role").and_then(Value::as_str) {
        Some("developer") | Some("system") => "system",
        Some("assistant") => "assistant",
        Some("user") | None => "user",
        Some(other) => {
            return Err(invalid(format!(
                "input[{i}].role `{other}` is not user, assistant, system or developer"
            )));
        }
    };
    let content = match item.get("content") {
        Some(Value::String(s)) => Value::String(s.clone()),
        Some(Value::Array(parts)) => {
            let mut out = Vec::new();
            for (j, p) in parts.iter().enumerate() {
                match p.get("type").and_then(Value::as_str) {
                    Some("input_text") | Some("output_text") | Some("text") => {
                        out.push(json!({"type": "text", "text": p.get("text").cloned().unwrap_or_else(|| "".into())}));
                    }
                    Some("refusal") => {
                        out.push(
                            json!({"type": "text", "text": p.get("refusal").cloned().unwrap_or_else(|| "".into())}),
                        );
                    }
                    Some("input_image") => {
                        let url = p.get("image_url").and_then(Value::as_str).ok_or_else(|| {
                            invalid(format!("input[{i}].content[{j}]: an input_image needs an image_url"))
                        })?;
                        let mut image = json!({"url": url});
                        if let Some(d) = p.get("detail") {
                            image["detail"] = d.clone();
                        }
                        out.push(json!({"type": "image_url", "image_url": image}));
                    }
                    Some("input_file") => {
                        let mut file = Map::new();
                        for k in ["file_data", "file_id", "filename"] {
                            if let Some(v) = p.get(k) {
                                file.insert(k.into(), v.clone());
                            }
                        }
                        out.push(json!({"type": "file", "file": file}));
                    }
                    other => {
                        return Err(invalid(format!(
                            "input[{i}].content[{j}]: parts of type `{}` are not supported",
                            other.unwrap_or("(none)")
                        )));
                    }
                }
            }
            // A turn of text only reads as one string, as chat clients write it.
            if out.iter().all(|p| p["type"] == "text") {
                Value::String(
                    out.iter()
                        .filter_map(|p| p["text"].as_str())
                        .collect::<Vec<_>>()
                        .join(""),
                )
            } else {
                Value::Array(out)
            }
        }
        _ => {
            return Err(invalid(format!(
                "input[{i}].content must be a string or a list of parts"
            )));
        }
    };
    Ok(json!({"role": role, "content": content}))
}

fn response_format(text: &Value) -> Result<Option<Value>, TranslateError> {
    let Some(format) = text.get("format") else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        None | Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let mut schema = Map::new();
            for k in ["name", "schema", "strict", "description"] {
                if let Some(v) = format.get(k) {
                    schema.insert(k.into(), v.clone());
                }
            }
            if !schema.contains_key("schema") {
                return Err(invalid("`text.format` of type json_schema needs a `schema`"));
            }
            Ok(Some(json!({"type": "json_schema", "json_schema": schema})))
        }
        Some(other) => Err(invalid(format!(
            "`text.format.type` `{other}` is not text, json_object or json_schema"
        ))),
    }
}

/// Function tools in chat's nested shape; built-in tools are named in the second list.
fn tools(v: &Value) -> Result<(Vec<Value>, Vec<String>), TranslateError> {
    let list = v.as_array().ok_or_else(|| invalid("`tools` must be a list"))?;
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for (i, t) in list.iter().enumerate() {
        match t.get("type").and_then(Value::as_str) {
            Some("function") => {
                let name = t
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(format!("tools[{i}]: a function tool needs a `name`")))?;
                let mut function = Map::new();
                function.insert("name".into(), name.into());
                for k in ["description", "parameters", "strict"] {
                    if let Some(v) = t.get(k).filter(|v| !v.is_null()) {
                        function.insert(k.into(), v.clone());
                    }
                }
                out.push(json!({"type": "function", "function": function}));
            }
            other => skipped.push(format!("tools[{i}] ({})", other.unwrap_or("untyped"))),
        }
    }
    Ok((out, skipped))
}

fn tool_choice(v: &Value) -> Result<Value, TranslateError> {
    match v {
        Value::String(s) if matches!(s.as_str(), "auto" | "none" | "required") => Ok(v.clone()),
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            let name = o
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("`tool_choice` of type function needs a `name`"))?;
            Ok(json!({"type": "function", "function": {"name": name}}))
        }
        _ => Err(invalid(
            "`tool_choice` must be auto, none, required or {type: function, name}",
        )),
    }
}

/// Usage in the Responses convention.
pub fn usage_json(u: &Usage) -> Value {
    let input = u.input + u.cache_read + u.cache_write;
    let output = u.output + u.reasoning;
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": u.cache_read},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": u.reasoning},
        "total_tokens": input + output,
    })
}

/// What a response echoes of its request, and the ids it is written with.
#[derive(Debug, Clone)]
pub struct Echo {
    /// `resp_…`: the response's id (the caller chooses it, so it can store it under that id).
    pub id: String,
    pub created_at: u64,
    /// The model name the client asked for.
    pub model: String,
    /// The request's fields a response repeats (`instructions`, `tools`, `tool_choice`, …).
    pub request: Map<String, Value>,
}

impl Echo {
    /// The `response` object around `output`, `status` and `usage`.
    fn response(&self, status: &str, output: Vec<Value>, usage: Option<&Usage>, incomplete: Option<&str>) -> Value {
        let r = &self.request;
        let get = |k: &str, default: Value| r.get(k).cloned().unwrap_or(default);
        json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": null,
            "incomplete_details": incomplete.map(|reason| json!({"reason": reason})),
            "instructions": get("instructions", Value::Null),
            "max_output_tokens": get("max_output_tokens", Value::Null),
            "model": self.model,
            "output": output,
            "parallel_tool_calls": get("parallel_tool_calls", Value::Bool(true)),
            "previous_response_id": get("previous_response_id", Value::Null),
            "reasoning": {"effort": r.get("reasoning").and_then(|v| v.get("effort")).cloned().unwrap_or(Value::Null), "summary": null},
            "store": get("store", Value::Bool(true)),
            "temperature": get("temperature", json!(1.0)),
            "text": get("text", json!({"format": {"type": "text"}})),
            "tool_choice": get("tool_choice", "auto".into()),
            "tools": get("tools", json!([])),
            "top_p": get("top_p", json!(1.0)),
            "truncation": get("truncation", "disabled".into()),
            "usage": usage.map(usage_json),
            "user": get("user", Value::Null),
            "metadata": get("metadata", json!({})),
        })
    }

    fn item_id(&self, kind: &str, n: usize) -> String {
        let base = self.id.strip_prefix("resp_").unwrap_or(&self.id);
        format!("{kind}_{base}_{n}")
    }
}

/// `completed`, or `incomplete` with its reason, from a chat `finish_reason`.
fn status_of(finish: Option<&str>) -> (&'static str, Option<&'static str>) {
    match finish {
        Some("length") => ("incomplete", Some("max_output_tokens")),
        Some("content_filter") => ("incomplete", Some("content_filter")),
        _ => ("completed", None),
    }
}

/// A whole `chat.completion` as a `response` object; `usage` is the answer's, in buckets.
pub fn from_chat(chat: &Value, usage: &Usage, echo: &Echo) -> Value {
    let message = chat.pointer("/choices/0/message").unwrap_or(&Value::Null);
    let mut output = Vec::new();
    let reasoning = message
        .get("reasoning_content")
        .or_else(|| message.get("reasoning"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if !reasoning.is_empty() {
        output.push(json!({
            "type": "reasoning", "id": echo.item_id("rs", 0),
            "summary": [{"type": "summary_text", "text": reasoning}],
        }));
    }
    if let Some(text) = message.get("content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
        output.push(message_output(&echo.item_id("msg", 0), "completed", text));
    }
    for (n, call) in message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        output.push(json!({
            "type": "function_call",
            "id": echo.item_id("fc", n),
            "call_id": call.get("id").cloned().unwrap_or(Value::Null),
            "name": call.pointer("/function/name").cloned().unwrap_or(Value::Null),
            "arguments": call.pointer("/function/arguments").cloned().unwrap_or_else(|| "{}".into()),
            "status": "completed",
        }));
    }
    let (status, incomplete) = status_of(chat.pointer("/choices/0/finish_reason").and_then(Value::as_str));
    echo.response(status, output, Some(usage), incomplete)
}

fn message_output(id: &str, status: &str, text: &str) -> Value {
    json!({
        "type": "message", "id": id, "status": status, "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    })
}

/// The chat messages a stored response adds to its conversation: its answer, as the assistant
/// turn (text and tool calls) a chat model reads back.
pub fn output_as_messages(response: &Value) -> Vec<Value> {
    let mut text = String::new();
    let mut calls = Vec::new();
    for item in response.get("output").and_then(Value::as_array).into_iter().flatten() {
        match item.get("type").and_then(Value::as_str) {
            Some("message") => {
                if let Some(parts) = item.get("content").and_then(Value::as_array) {
                    text.push_str(&text_of(parts));
                }
            }
            Some("function_call") => calls.push(json!({
                "id": item.get("call_id").cloned().unwrap_or(Value::Null),
                "type": "function",
                "function": {"name": item.get("name").cloned().unwrap_or(Value::Null), "arguments": item.get("arguments").cloned().unwrap_or_else(|| "{}".into())},
            })),
            _ => {}
        }
    }
    let mut m =
        json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { Value::String(text) }});
    if !calls.is_empty() {
        m["tool_calls"] = Value::Array(calls);
    }
    vec![m]
}

/// One streamed event: its SSE event name (= its `type`) and data.
pub type Event = (String, Value);

/// An output item a stream has open.
#[derive(Debug)]
enum Open {
    Reasoning {
        id: String,
        text: String,
    },
    Message {
        id: String,
        text: String,
    },
    Call {
        id: String,
        call_id: String,
        name: String,
        arguments: String,
        index: u64,
    },
}

/// Writes the Responses API's event sequence from OpenAI chunks: `response.created`,
/// `response.in_progress`, per output item `response.output_item.added`, its parts and deltas
/// (`response.reasoning_summary_text.delta`, `response.output_text.delta`,
/// `response.function_call_arguments.delta`) and `.done` events, `response.output_item.done`;
/// at `[DONE]`, `response.completed` (or `response.incomplete`) with the whole response and
/// usage. Every event carries its `sequence_number`.
#[derive(Debug)]
pub struct EventWriter {
    echo: Echo,
    started: bool,
    open: Option<Open>,
    /// Finished output items, in order.
    done_items: Vec<Value>,
    finish: Option<String>,
    usage: Option<Usage>,
    sequence: u64,
    counts: [usize; 3],
    pub finished: bool,
}

impl EventWriter {
    pub fn new(echo: Echo) -> Self {
        EventWriter {
            echo,
            started: false,
            open: None,
            done_items: Vec::new(),
            finish: None,
            usage: None,
            sequence: 0,
            counts: [0; 3],
            finished: false,
        }
    }

    fn emit(&mut self, out: &mut Vec<Event>, kind: &str, mut data: Value) {
        data["type"] = kind.into();
        data["sequence_number"] = self.sequence.into();
        self.sequence += 1;
        out.push((kind.to_string(), data));
    }

    fn start(&mut self, out: &mut Vec<Event>) {
        if self.started {
            return;
        }
        self.started = true;
        let r = self.echo.response("in_progress", Vec::new(), None, None);
        self.emit(out, "response.created", json!({"response": r}));
        let r = self.echo.response("in_progress", Vec::new(), None, None);
        self.emit(out, "response.in_progress", json!({"response": r}));
    }

    fn output_index(&self) -> usize {
        self.done_items.len()
    }

    fn close(&mut self, out: &mut Vec<Event>) {
        let Some(open) = self.open.take() else {
            return;
        };
        let index = self.output_index();
        let item = match open {
            Open::Reasoning { id, text } => {
                let part = json!({"type": "summary_text", "text": text});
                self.emit(
                    out,
                    "response.reasoning_summary_text.done",
                    json!({"item_id": id, "output_index": index, "summary_index": 0, "text": text}),
                );
                self.emit(
                    out,
                    "response.reasoning_summary_part.done",
                    json!({"item_id": id, "output_index": index, "summary_index": 0, "part": part}),
                );
                json!({"type": "reasoning", "id": id, "summary": [part]})
            }
            Open::Message { id, text } => {
                let part = json!({"type": "output_text", "text": text, "annotations": []});
                self.emit(
                    out,
                    "response.output_text.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0, "text": text, "logprobs": []}),
                );
                self.emit(
                    out,
                    "response.content_part.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0, "part": part}),
                );
                message_output(&id, "completed", &text)
            }
            Open::Call {
                id,
                call_id,
                name,
                arguments,
                ..
            } => {
                self.emit(
                    out,
                    "response.function_call_arguments.done",
                    json!({"item_id": id, "output_index": index, "arguments": arguments}),
                );
                json!({"type": "function_call", "id": id, "call_id": call_id, "name": name, "arguments": arguments, "status": "completed"})
            }
        };
        self.emit(
            out,
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
        );
        self.done_items.push(item);
    }

    fn next_id(&mut self, slot: usize, kind: &str) -> String {
        let n = self.counts[slot];
        self.counts[slot] += 1;
        self.echo.item_id(kind, n)
    }

    fn reasoning(&mut self, delta: &str, out: &mut Vec<Event>) {
        if !matches!(self.open, Some(Open::Reasoning { .. })) {
            self.close(out);
            let id = self.next_id(0, "rs");
            let index = self.output_index();
            self.emit(
                out,
                "response.output_item.added",
                json!({"output_index": index, "item": {"type": "reasoning", "id": id, "summary": []}}),
            );
            self.emit(out, "response.reasoning_summary_part.added", json!({"item_id": id, "output_index": index, "summary_index": 0, "part": {"type": "summary_text", "text": ""}}));
            self.open = Some(Open::Reasoning {
                id,
                text: String::new(),
            });
        }
        let index = self.output_index();
        if let Some(Open::Reasoning { id, text }) = &mut self.open {
            text.push_str(delta);
            let id = id.clone();
            self.emit(
                out,
                "response.reasoning_summary_text.delta",
                json!({"item_id": id, "output_index": index, "summary_index": 0, "delta": delta}),
            );
        }
    }

    fn text(&mut self, delta: &str, out: &mut Vec<Event>) {
        if !matches!(self.open, Some(Open::Message { .. })) {
            self.close(out);
            let id = self.next_id(1, "msg");
            let index = self.output_index();
            self.emit(out, "response.output_item.added", json!({"output_index": index, "item": {"type": "message", "id": id, "status": "in_progress", "role": "assistant", "content": []}}));
            self.emit(out, "response.content_part.added", json!({"item_id": id, "output_index": index, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}));
            self.open = Some(Open::Message {
                id,
                text: String::new(),
            });
        }
        let index = self.output_index();
        if let Some(Open::Message { id, text }) = &mut self.open {
            text.push_str(delta);
            let id = id.clone();
            self.emit(
                out,
                "response.output_text.delta",
                json!({"item_id": id, "output_index": index, "content_index": 0, "delta": delta, "logprobs": []}),
            );
        }
    }

    fn tool_call(&mut self, call: &Value, out: &mut Vec<Event>) {
        let index_in_chunk = call.get("index").and_then(Value::as_u64).unwrap_or(0);
        let same = matches!(&self.open, Some(Open::Call { index, .. }) if *index == index_in_chunk);
        if !same {
            self.close(out);
            let id = self.next_id(2, "fc");
            let call_id = call.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
            let name = call
                .pointer("/function/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let index = self.output_index();
            self.emit(out, "response.output_item.added", json!({"output_index": index, "item": {"type": "function_call", "id": id, "call_id": call_id, "name": name, "arguments": "", "status": "in_progress"}}));
            self.open = Some(Open::Call {
                id,
                call_id,
                name,
                arguments: String::new(),
                index: index_in_chunk,
            });
        }
        let delta = call
            .pointer("/function/arguments")
            .and_then(Value::as_str)
            .unwrap_or("");
        if delta.is_empty() {
            return;
        }
        let index = self.output_index();
        if let Some(Open::Call { id, arguments, .. }) = &mut self.open {
            arguments.push_str(delta);
            let id = id.clone();
            self.emit(
                out,
                "response.function_call_arguments.delta",
                json!({"item_id": id, "output_index": index, "delta": delta}),
            );
        }
    }

    /// One OpenAI chunk payload (`[DONE]` included) → the events it stands for.
    pub fn on_chunk(&mut self, data: &str) -> Vec<Event> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        self.start(&mut out);
        if data == "[DONE]" {
            self.close(&mut out);
            let (status, incomplete) = status_of(self.finish.as_deref());
            let usage = self.usage.unwrap_or_default();
            let r = self
                .echo
                .response(status, self.done_items.clone(), Some(&usage), incomplete);
            let kind = if status == "completed" {
                "response.completed"
            } else {
                "response.incomplete"
            };
            self.emit(&mut out, kind, json!({"response": r}));
            self.finished = true;
            return out;
        }
        let Ok(chunk) = serde_json::from_str::<Value>(data) else {
            return out;
        };
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(crate::usage::parse_openai_usage(u).usage);
        }
        let Some(choice) = chunk.pointer("/choices/0") else {
            return out;
        };
        let delta = choice.get("delta").unwrap_or(&Value::Null);
        if let Some(r) = delta
            .get("reasoning_content")
            .or_else(|| delta.get("reasoning"))
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty())
        {
            self.reasoning(r, &mut out);
        }
        if let Some(t) = delta.get("content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
            self.text(t, &mut out);
        }
        for call in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
            self.tool_call(call, &mut out);
        }
        if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(f.to_string());
        }
        out
    }

    /// The response as it stands: complete after `[DONE]` (what is stored for
    /// `previous_response_id` and `GET /v1/responses/{id}`).
    pub fn response(&self) -> Value {
        let (status, incomplete) = status_of(self.finish.as_deref());
        let status = if self.finished { status } else { "in_progress" };
        self.echo
            .response(status, self.done_items.clone(), self.usage.as_ref(), incomplete)
    }

    /// The upstream broke mid-stream: a `response.failed` event with the error.
    pub fn fail(&mut self, code: &str, message: &str) -> Vec<Event> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        self.start(&mut out);
        let mut r = self
            .echo
            .response("failed", self.done_items.clone(), self.usage.as_ref(), None);
        r["error"] = json!({"code": code, "message": message});
        self.emit(&mut out, "response.failed", json!({"response": r}));
        self.finished = true;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo() -> Echo {
        Echo {
            id: "resp_abc".into(),
            created_at: 1,
            model: "m".into(),
            request: Map::new(),
        }
    }

    #[test]
    fn adjacent_function_calls_share_one_assistant_turn_and_outputs_become_tool_messages() {
        let input = json!([
            {"role": "user", "content": "weather in Paris and Rome?"},
            {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{\"city\":\"Paris\"}"},
            {"type": "function_call", "call_id": "c2", "name": "w", "arguments": "{\"city\":\"Rome\"}"},
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
            {"type": "function_call_output", "call_id": "c2", "output": "rain"},
            {"type": "reasoning", "id": "rs_1", "summary": []},
        ]);
        let m = input_messages(Some(&input)).unwrap();
        assert_eq!(m.len(), 4);
        assert_eq!(m[1]["tool_calls"].as_array().unwrap().len(), 2);
        assert_eq!(m[2], json!({"role": "tool", "tool_call_id": "c1", "content": "sunny"}));
        assert!(input_messages(Some(&json!([{"type": "computer_call"}]))).is_err());
        assert!(input_messages(Some(&json!(7))).is_err());
    }

    #[test]
    fn a_length_stop_is_incomplete_and_usage_totals_include_cache_and_reasoning() {
        let chat = json!({"choices": [{"message": {"content": "hi"}, "finish_reason": "length"}]});
        let u = Usage {
            input: 10,
            cache_read: 5,
            cache_write: 0,
            output: 3,
            reasoning: 2,
        };
        let r = from_chat(&chat, &u, &echo());
        assert_eq!(r["status"], "incomplete");
        assert_eq!(r["incomplete_details"]["reason"], "max_output_tokens");
        assert_eq!(r["usage"]["input_tokens"], 15);
        assert_eq!(r["usage"]["input_tokens_details"]["cached_tokens"], 5);
        assert_eq!(r["usage"]["output_tokens"], 5);
        assert_eq!(r["usage"]["output_tokens_details"]["reasoning_tokens"], 2);
        assert_eq!(r["usage"]["total_tokens"], 20);
    }

    #[test]
    fn sequence_numbers_count_every_event_and_done_is_final() {
        let mut w = EventWriter::new(echo());
        let mut all = Vec::new();
        for c in [
            r#"{"choices":[{"delta":{"content":"a"}}]}"#,
            r#"{"choices":[{"delta":{"content":"b"},"finish_reason":"stop"}]}"#,
            "[DONE]",
            "[DONE]",
        ] {
            all.extend(w.on_chunk(c));
        }
        let seq: Vec<u64> = all
            .iter()
            .map(|(_, d)| d["sequence_number"].as_u64().unwrap())
            .collect();
        assert_eq!(seq, (0..seq.len() as u64).collect::<Vec<_>>());
        assert_eq!(all.last().unwrap().0, "response.completed");
        assert_eq!(
            all.last().unwrap().1["response"]["output"][0]["content"][0]["text"],
            "ab"
        );
        assert_eq!(w.response()["status"], "completed");
    }
}
