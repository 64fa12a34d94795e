//! Anthropic's event sequence written from OpenAI chat chunks, for Messages API clients of
//! deployments that stream chat (the stream half of [`messages`](crate::messages)).

use serde_json::{Value, json};
use tollgate_core::Usage;

use crate::messages::{message_id, signature_of, stop_reason, usage_json};
use crate::usage::parse_openai_usage;

/// The kind of content block a stream has open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Thinking,
    /// A tool call, by its OpenAI tool-call index.
    Tool(u64),
}

/// Writes Anthropic's stream from OpenAI chunks: `message_start`, `ping`, then per content
/// block `content_block_start`, its deltas (`text_delta`, `thinking_delta`, `signature_delta`,
/// `input_json_delta`) and `content_block_stop`, and at `[DONE]` a `message_delta` with the
/// stop reason and the whole usage (Anthropic's counts are cumulative), then `message_stop`.
#[derive(Debug)]
pub struct EventWriter {
    model: String,
    started: bool,
    open: Option<Open>,
    /// Index of the open block; the next block gets the one after it.
    index: u64,
    blocks: u64,
    finish: Option<String>,
    usage: Usage,
    pub stopped: bool,
}

/// One Anthropic SSE event: its name and data.
pub type Event = (&'static str, Value);

impl EventWriter {
    pub fn new(model: &str) -> Self {
        EventWriter {
            model: model.to_string(),
            started: false,
            open: None,
            index: 0,
            blocks: 0,
            finish: None,
            usage: Usage::default(),
            stopped: false,
        }
    }

    fn start(&mut self, chunk: &Value, out: &mut Vec<Event>) {
        if self.started {
            return;
        }
        self.started = true;
        out.push((
            "message_start",
            json!({"type": "message_start", "message": {
                "id": message_id(chunk.get("id").and_then(Value::as_str)),
                "type": "message", "role": "assistant", "model": self.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                // Known only at the end for OpenAI-style streams: the full counts come in
                // `message_delta`, which replaces these.
                "usage": usage_json(&Usage::default()),
            }}),
        ));
        out.push(("ping", json!({"type": "ping"})));
    }

    fn close(&mut self, out: &mut Vec<Event>) {
        if self.open.take().is_some() {
            out.push((
                "content_block_stop",
                json!({"type": "content_block_stop", "index": self.index}),
            ));
        }
    }

    /// Makes `kind` the open block, closing another; `start` is its `content_block`.
    fn open(&mut self, kind: Open, start: Value, out: &mut Vec<Event>) {
        if self.open == Some(kind) {
            return;
        }
        self.close(out);
        self.index = self.blocks;
        self.blocks += 1;
        self.open = Some(kind);
        out.push((
            "content_block_start",
            json!({"type": "content_block_start", "index": self.index, "content_block": start}),
        ));
    }

    fn delta(&self, delta: Value, out: &mut Vec<Event>) {
        out.push((
            "content_block_delta",
            json!({"type": "content_block_delta", "index": self.index, "delta": delta}),
        ));
    }

    /// One OpenAI chunk payload (`[DONE]` included) → the Anthropic events it stands for.
    pub fn on_chunk(&mut self, data: &str) -> Vec<Event> {
        let mut out = Vec::new();
        if self.stopped {
            return out;
        }
        if data == "[DONE]" {
            self.start(&Value::Null, &mut out);
            self.close(&mut out);
            out.push((
                "message_delta",
                json!({"type": "message_delta",
                       "delta": {"stop_reason": stop_reason(self.finish.as_deref().unwrap_or("stop")), "stop_sequence": null},
                       "usage": usage_json(&self.usage)}),
            ));
            out.push(("message_stop", json!({"type": "message_stop"})));
            self.stopped = true;
            return out;
        }
        let Ok(chunk) = serde_json::from_str::<Value>(data) else {
            return out;
        };
        self.start(&chunk, &mut out);
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = parse_openai_usage(u).usage;
        }
        let Some(choice) = chunk.pointer("/choices/0") else {
            return out;
        };
        let delta = choice.get("delta").unwrap_or(&Value::Null);
        let reasoning = delta
            .get("reasoning_content")
            .or_else(|| delta.get("reasoning"))
            .and_then(Value::as_str)
            .unwrap_or("");
        if !reasoning.is_empty() {
            self.open(
                Open::Thinking,
                json!({"type": "thinking", "thinking": "", "signature": ""}),
                &mut out,
            );
            self.delta(json!({"type": "thinking_delta", "thinking": reasoning}), &mut out);
        }
        let signature = signature_of(delta);
        if !signature.is_empty() {
            self.open(
                Open::Thinking,
                json!({"type": "thinking", "thinking": "", "signature": ""}),
                &mut out,
            );
            self.delta(json!({"type": "signature_delta", "signature": signature}), &mut out);
        }
        if let Some(text) = delta.get("content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
            self.open(Open::Text, json!({"type": "text", "text": ""}), &mut out);
            self.delta(json!({"type": "text_delta", "text": text}), &mut out);
        }
        for call in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
            let at = call.get("index").and_then(Value::as_u64).unwrap_or(0);
            if self.open != Some(Open::Tool(at)) {
                let name = call.pointer("/function/name").and_then(Value::as_str).unwrap_or("");
                self.open(
                    Open::Tool(at),
                    json!({"type": "tool_use",
                           "id": call.get("id").cloned().unwrap_or_else(|| format!("toolu_{at}").into()),
                           "name": name, "input": {}}),
                    &mut out,
                );
            }
            if let Some(args) = call
                .pointer("/function/arguments")
                .and_then(Value::as_str)
                .filter(|a| !a.is_empty())
            {
                self.delta(json!({"type": "input_json_delta", "partial_json": args}), &mut out);
            }
        }
        if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(f.to_string());
        }
        out
    }
}
