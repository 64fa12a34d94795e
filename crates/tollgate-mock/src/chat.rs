//! Chat completions: a deterministic answer derived from the request, rendered as OpenAI's plain
//! response or as its SSE chunks.
//!
//! The answer is computed once ([`Answer::for_request`]) and both renderings read from it, which
//! is what guarantees that a request gives the same usage streamed and plain.

use axum::body::Bytes;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::measure::{PromptMeasure, Turn, for_each_text};
use crate::prompt_cache;

#[derive(Debug, Deserialize)]
pub(crate) struct ChatRequest {
    pub model: String,
    pub messages: Vec<Message>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub max_tokens: Option<u64>,
    #[serde(default)]
    pub max_completion_tokens: Option<u64>,
    #[serde(default)]
    pub tools: Option<Vec<Tool>>,
    #[serde(default)]
    pub tool_choice: Option<Value>,
    /// OpenAI's structured output: a `json_schema` answer is an instance of the schema, a
    /// `json_object` one a small object, so clients parsing the answer can be tested.
    #[serde(default)]
    pub response_format: Option<Value>,
    /// Set by the native formats, which say in the request whether to think (Anthropic's
    /// `thinking`, Gemini's `thinkingBudget: 0`); OpenAI-format requests go by model name.
    #[serde(skip)]
    pub reasoning: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Message {
    #[serde(default)]
    pub role: String,
    /// A string, an array of content parts, or null (an assistant turn with tool calls).
    #[serde(default)]
    pub content: Value,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct StreamOptions {
    #[serde(default)]
    pub include_usage: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Tool {
    #[serde(default)]
    pub function: Option<ToolFunction>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ToolFunction {
    pub name: String,
    #[serde(default)]
    pub parameters: Option<Value>,
}

impl ChatRequest {
    pub(crate) fn is_stream(&self) -> bool {
        self.stream == Some(true)
    }

    pub(crate) fn include_usage(&self) -> bool {
        self.stream_options.as_ref().and_then(|o| o.include_usage) == Some(true)
    }

    /// The messages as the prompt measure reads them.
    pub(crate) fn turns(&self) -> impl ExactSizeIterator<Item = Turn<'_>> {
        self.messages.iter().map(|m| Turn {
            role: &m.role,
            content: &m.content,
        })
    }
}

/// Models that think before answering. Matching by name mirrors how the seed system's models
/// (DeepSeek, MiniMax, Grok reasoning, Gemini 2.5) report reasoning tokens.
pub(crate) fn is_reasoning_model(model: &str) -> bool {
    let model = model.to_ascii_lowercase();
    ["reason", "deepseek", "minimax", "grok", "r1", "thinking", "gemini-2.5"]
        .iter()
        .any(|marker| model.contains(marker))
}

/// DeepSeek reports prompt caching in its own usage fields besides OpenAI's.
fn reports_deepseek_cache_fields(model: &str) -> bool {
    model.to_ascii_lowercase().contains("deepseek")
}

/// Words used to pad answers to their token count; one word stands for one token.
const FILLER: [&str; 16] = [
    "the", "gateway", "counts", "every", "token", "and", "each", "request", "becomes", "one", "record", "so", "costs",
    "add", "up", "exactly",
];

/// A completion is 20..=400 tokens (reasoning included) before `max_tokens` cuts it: varied
/// enough that per-request costs differ, small enough to keep the mock fast.
const MIN_COMPLETION: u64 = 20;
const COMPLETION_SPREAD: u64 = 381;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// Everything about the mock's answer to one request, before rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub id: String,
    pub prompt_tokens: u64,
    pub cached_tokens: u64,
    /// What a provider that caches on request (Anthropic's `cache_control`) would cache or read:
    /// the prompt prefix in whole blocks. `cached_tokens` is this when the prefix was seen.
    pub cacheable_tokens: u64,
    pub completion_tokens: u64,
    pub reasoning_tokens: u64,
    pub content: Option<String>,
    pub reasoning_content: Option<String>,
    pub tool_call: Option<ToolCall>,
    pub finish_reason: &'static str,
    pub deepseek_cache_fields: bool,
}

impl Answer {
    /// Computes the answer. `prefix_seen` is asked (and remembers) whether the prompt prefix was
    /// sent before; it is the only state the answer depends on.
    pub(crate) fn for_request(req: &ChatRequest, prefix_seen: impl FnOnce(u64) -> bool) -> Answer {
        Answer::for_measured_request(req, PromptMeasure::of(&req.model, req.turns()), prefix_seen)
    }

    /// [`Answer::for_request`] with the prompt already measured (the server remembers measures).
    pub(crate) fn for_measured_request(
        req: &ChatRequest,
        measure: PromptMeasure,
        prefix_seen: impl FnOnce(u64) -> bool,
    ) -> Answer {
        let PromptMeasure {
            whole,
            prefix,
            total_chars,
            prefix_chars,
        } = measure;
        let prompt_hash = whole;
        let prompt_tokens = (total_chars / 4).max(1);

        // Only a conversation with history has a prefix a provider could have cached.
        let cacheable_tokens = if req.messages.len() >= 2 {
            prompt_cache::cached_tokens(prefix_chars / 4, prompt_tokens)
        } else {
            0
        };
        let cached_tokens = if req.messages.len() >= 2 && prefix_seen(prefix) {
            cacheable_tokens
        } else {
            0
        };

        let natural = MIN_COMPLETION + prompt_hash % COMPLETION_SPREAD;
        let limit = req.max_completion_tokens.or(req.max_tokens);
        let completion_tokens = limit.map_or(natural, |l| natural.min(l));
        let truncated = completion_tokens < natural;
        let reasoning_tokens = if req.reasoning.unwrap_or_else(|| is_reasoning_model(&req.model)) {
            // 30–70 % of the completion spent thinking, fixed per prompt.
            completion_tokens * (30 + (prompt_hash >> 20) % 41) / 100
        } else {
            0
        };
        let visible_tokens = completion_tokens - reasoning_tokens;

        let question = last_user_text(req);
        let snippet: String = question
            .chars()
            .take(40)
            .map(|c| if c.is_whitespace() { ' ' } else { c })
            .collect();
        let snippet = snippet.trim();

        let tool_call = wanted_tool(req, &question).map(|(name, parameters)| ToolCall {
            id: format!("call_mock_{:08x}", prompt_hash as u32),
            name: name.to_string(),
            arguments: sample_arguments(parameters),
        });
        let content = if tool_call.is_some() {
            None
        } else {
            let text = words(&format!("Mock answer to: {snippet}"), visible_tokens, prompt_hash);
            Some(match structured(req.response_format.as_ref(), &text) {
                Some(json) => json,
                None => text,
            })
        };
        let reasoning_content = (reasoning_tokens > 0).then(|| {
            words(
                &format!("Thinking about: {snippet}"),
                reasoning_tokens,
                prompt_hash >> 7,
            )
        });

        let finish_reason = if tool_call.is_some() {
            "tool_calls"
        } else if truncated {
            "length"
        } else {
            "stop"
        };
        Answer {
            id: format!("chatcmpl-mock-{prompt_hash:016x}"),
            prompt_tokens,
            cached_tokens,
            cacheable_tokens,
            completion_tokens,
            reasoning_tokens,
            content,
            reasoning_content,
            tool_call,
            finish_reason,
            deepseek_cache_fields: reports_deepseek_cache_fields(&req.model),
        }
    }

    fn usage(&self) -> UsageOut {
        UsageOut {
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            total_tokens: self.prompt_tokens + self.completion_tokens,
            prompt_tokens_details: PromptDetails {
                cached_tokens: self.cached_tokens,
            },
            completion_tokens_details: CompletionDetails {
                reasoning_tokens: self.reasoning_tokens,
            },
            prompt_cache_hit_tokens: self.deepseek_cache_fields.then_some(self.cached_tokens),
            prompt_cache_miss_tokens: self
                .deepseek_cache_fields
                .then_some(self.prompt_tokens - self.cached_tokens),
        }
    }
}

/// The text of the last user message (the question being answered), or of the last message.
fn last_user_text(req: &ChatRequest) -> String {
    let message = req
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .or(req.messages.last());
    let mut text = String::new();
    if let Some(message) = message {
        for_each_text(&message.content, &mut |t| text.push_str(t));
    }
    text
}

/// The tool to call, if the request wants one: `tool_choice` naming a function, `required`, or a
/// question that mentions a tool. `tool_choice: "none"` always wins.
fn wanted_tool<'r>(req: &'r ChatRequest, question: &str) -> Option<(&'r str, Option<&'r Value>)> {
    let tools: Vec<&ToolFunction> = req.tools.iter().flatten().filter_map(|t| t.function.as_ref()).collect();
    let first = tools.first()?;
    let named = req
        .tool_choice
        .as_ref()
        .and_then(|c| c.get("function"))
        .and_then(|f| f.get("name"))
        .and_then(Value::as_str);
    if let Some(name) = named {
        let tool = tools.iter().find(|t| t.name == name).unwrap_or(first);
        return Some((tool.name.as_str(), tool.parameters.as_ref()));
    }
    let choice = req.tool_choice.as_ref().and_then(Value::as_str);
    let wanted = match choice {
        Some("none") => false,
        Some("required") => true,
        _ => question.to_ascii_lowercase().contains("tool"),
    };
    wanted.then_some((first.name.as_str(), first.parameters.as_ref()))
}

/// The answer as structured output when the request asks for it (the usage stays the text's).
fn structured(format: Option<&Value>, text: &str) -> Option<String> {
    let format = format?;
    match format.get("type").and_then(Value::as_str)? {
        "json_schema" => {
            let schema = format.pointer("/json_schema/schema")?;
            Some(sample_instance(schema, text).to_string())
        }
        "json_object" => Some(serde_json::json!({"answer": text}).to_string()),
        _ => None,
    }
}

/// A value valid for a (simple) JSON schema: every property of an object, the first of an
/// `enum`, one item of an array, `text` for strings.
fn sample_instance(schema: &Value, text: &str) -> Value {
    if let Some(first) = schema.get("enum").and_then(Value::as_array).and_then(|e| e.first()) {
        return first.clone();
    }
    let kind = schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or(if schema.get("properties").is_some() {
            "object"
        } else {
            "string"
        });
    match kind {
        "object" => {
            let mut out = serde_json::Map::new();
            for (name, prop) in schema
                .get("properties")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                out.insert(name.clone(), sample_instance(prop, text));
            }
            Value::Object(out)
        }
        "array" => Value::Array(vec![sample_instance(schema.get("items").unwrap_or(&Value::Null), text)]),
        "integer" | "number" => Value::from(1),
        "boolean" => Value::Bool(true),
        "null" => Value::Null,
        _ => Value::from(text),
    }
}

/// Small, valid arguments for a function's JSON schema: its first property with a value of the
/// declared type, or `{}`.
fn sample_arguments(parameters: Option<&Value>) -> String {
    let first = parameters
        .and_then(|p| p.get("properties"))
        .and_then(Value::as_object)
        .and_then(|props| props.iter().next());
    let Some((name, schema)) = first else {
        return "{}".to_string();
    };
    let value = match schema.get("type").and_then(Value::as_str) {
        Some("integer" | "number") => Value::from(1),
        Some("boolean") => Value::Bool(true),
        Some("array") => Value::Array(Vec::new()),
        Some("object") => Value::Object(serde_json::Map::new()),
        _ => Value::from("mock"),
    };
    let mut args = serde_json::Map::new();
    args.insert(name.clone(), value);
    Value::Object(args).to_string()
}

/// `lead` followed by filler, cut to exactly `count` words.
fn words(lead: &str, count: u64, seed: u64) -> String {
    let count = count as usize;
    let mut out = String::with_capacity(count * 7);
    let mut n = 0;
    for word in lead.split_whitespace().take(count) {
        if n > 0 {
            out.push(' ');
        }
        out.push_str(word);
        n += 1;
    }
    let seed = seed as usize;
    while n < count {
        if n > 0 {
            out.push(' ');
        }
        out.push_str(FILLER[(seed.wrapping_add(n * 7)) % FILLER.len()]);
        n += 1;
    }
    out
}

#[derive(Debug, Serialize)]
struct UsageOut {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: PromptDetails,
    completion_tokens_details: CompletionDetails,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_cache_hit_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_cache_miss_tokens: Option<u64>,
}

#[derive(Debug, Serialize)]
struct PromptDetails {
    cached_tokens: u64,
}

#[derive(Debug, Serialize)]
struct CompletionDetails {
    reasoning_tokens: u64,
}

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [Choice<'a>; 1],
    usage: UsageOut,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: MessageOut<'a>,
    logprobs: Option<()>,
    finish_reason: &'a str,
}

#[derive(Serialize)]
struct MessageOut<'a> {
    role: &'static str,
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallOut<'a>; 1]>,
}

#[derive(Serialize)]
struct ToolCallOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionOut<'a>,
}

#[derive(Serialize)]
struct FunctionOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

/// The plain (non-streamed) response body.
pub(crate) fn render_completion(answer: &Answer, model: &str, created: u64) -> serde_json::Result<Vec<u8>> {
    let tool_calls = answer.tool_call.as_ref().map(|call| {
        [ToolCallOut {
            index: None,
            id: Some(&call.id),
            kind: Some("function"),
            function: FunctionOut {
                name: Some(&call.name),
                arguments: &call.arguments,
            },
        }]
    });
    serde_json::to_vec(&Completion {
        id: &answer.id,
        object: "chat.completion",
        created,
        model,
        choices: [Choice {
            index: 0,
            message: MessageOut {
                role: "assistant",
                content: answer.content.as_deref(),
                reasoning_content: answer.reasoning_content.as_deref(),
                tool_calls,
            },
            logprobs: None,
            finish_reason: answer.finish_reason,
        }],
        usage: answer.usage(),
    })
}

/// What a chunk says about usage. With `include_usage`, OpenAI sends `"usage": null` on every
/// chunk and the figures on a last, choice-less chunk; without it, no `usage` key at all.
enum UsageSlot {
    Absent,
    Null,
    Final(UsageOut),
}

impl UsageSlot {
    fn is_absent(&self) -> bool {
        matches!(self, UsageSlot::Absent)
    }
}

impl Serialize for UsageSlot {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            UsageSlot::Final(usage) => usage.serialize(serializer),
            UsageSlot::Absent | UsageSlot::Null => serializer.serialize_none(),
        }
    }
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: Vec<ChunkChoice<'a>>,
    #[serde(skip_serializing_if = "UsageSlot::is_absent")]
    usage: UsageSlot,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'a str>,
}

#[derive(Default, Serialize)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallOut<'a>; 1]>,
}

/// Splits text into pieces of about `words_per_piece` words, keeping every character, so the
/// pieces concatenate back to the text exactly.
pub(crate) fn pieces(text: &str, words_per_piece: usize) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let cut = rest
            .match_indices(' ')
            .nth(words_per_piece - 1)
            .map_or(rest.len(), |(i, _)| i + 1);
        let (piece, tail) = rest.split_at(cut);
        rest = tail;
        Some(piece)
    })
}

/// The SSE frames of a streamed response, `[DONE]` included.
pub(crate) fn render_stream(
    answer: &Answer,
    model: &str,
    created: u64,
    include_usage: bool,
) -> serde_json::Result<Vec<Bytes>> {
    let mut frames = Vec::new();
    let usage_slot = || {
        if include_usage {
            UsageSlot::Null
        } else {
            UsageSlot::Absent
        }
    };
    let mut push = |delta: Delta<'_>, finish_reason: Option<&str>| -> serde_json::Result<()> {
        let chunk = Chunk {
            id: &answer.id,
            object: "chat.completion.chunk",
            created,
            model,
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                logprobs: None,
                finish_reason,
            }],
            usage: usage_slot(),
        };
        frames.push(sse_frame(&chunk)?);
        Ok(())
    };

    push(
        Delta {
            role: Some("assistant"),
            content: Some(""),
            ..Delta::default()
        },
        None,
    )?;
    for piece in answer.reasoning_content.iter().flat_map(|r| pieces(r, 4)) {
        push(
            Delta {
                reasoning_content: Some(piece),
                ..Delta::default()
            },
            None,
        )?;
    }
    for piece in answer.content.iter().flat_map(|c| pieces(c, 4)) {
        push(
            Delta {
                content: Some(piece),
                ..Delta::default()
            },
            None,
        )?;
    }
    if let Some(call) = &answer.tool_call {
        // OpenAI's shape: the first delta names the call, later ones append argument text.
        let head = ToolCallOut {
            index: Some(0),
            id: Some(&call.id),
            kind: Some("function"),
            function: FunctionOut {
                name: Some(&call.name),
                arguments: "",
            },
        };
        push(
            Delta {
                tool_calls: Some([head]),
                ..Delta::default()
            },
            None,
        )?;
        let mid = call
            .arguments
            .char_indices()
            .nth(call.arguments.chars().count() / 2)
            .map_or(0, |(i, _)| i);
        let (a, b) = call.arguments.split_at(mid);
        for part in [a, b].into_iter().filter(|p| !p.is_empty()) {
            let delta = ToolCallOut {
                index: Some(0),
                id: None,
                kind: None,
                function: FunctionOut {
                    name: None,
                    arguments: part,
                },
            };
            push(
                Delta {
                    tool_calls: Some([delta]),
                    ..Delta::default()
                },
                None,
            )?;
        }
    }
    push(Delta::default(), Some(answer.finish_reason))?;
    if include_usage {
        let chunk = Chunk {
            id: &answer.id,
            object: "chat.completion.chunk",
            created,
            model,
            choices: Vec::new(),
            usage: UsageSlot::Final(answer.usage()),
        };
        frames.push(sse_frame(&chunk)?);
    }
    frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
    Ok(frames)
}

fn sse_frame(chunk: &Chunk<'_>) -> serde_json::Result<Bytes> {
    let mut frame = Vec::with_capacity(256);
    frame.extend_from_slice(b"data: ");
    serde_json::to_writer(&mut frame, chunk)?;
    frame.extend_from_slice(b"\n\n");
    Ok(Bytes::from(frame))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: Value) -> ChatRequest {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn pieces_concatenate_to_the_text() {
        let text = "one two three four five six seven eight nine";
        let parts: Vec<&str> = pieces(text, 4).collect();
        assert_eq!(parts, ["one two three four ", "five six seven eight ", "nine"]);
        assert_eq!(parts.concat(), text);
        assert_eq!(pieces("", 4).count(), 0);
    }

    #[test]
    fn words_cuts_and_pads_to_the_count() {
        assert_eq!(words("Mock answer to: hi", 2, 0), "Mock answer");
        assert_eq!(words("a", 5, 0).split(' ').count(), 5);
        assert_eq!(words("a", 0, 0), "");
    }

    #[test]
    fn visible_words_match_visible_tokens() {
        let req = request(serde_json::json!({
            "model": "deepseek-reasoner",
            "messages": [{"role": "user", "content": "Why is the sky blue?"}]
        }));
        let a = Answer::for_request(&req, |_| false);
        let visible = a.completion_tokens - a.reasoning_tokens;
        assert_eq!(a.content.as_deref().unwrap().split(' ').count() as u64, visible);
        assert_eq!(
            a.reasoning_content.as_deref().unwrap().split(' ').count() as u64,
            a.reasoning_tokens
        );
    }

    #[test]
    fn content_parts_count_as_text() {
        let parts = request(serde_json::json!({
            "model": "m",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "abcdefgh"}, {"type": "image_url", "image_url": {"url": "x"}}]}]
        }));
        let plain = request(serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "abcdefgh"}]}));
        let (a, b) = (
            Answer::for_request(&parts, |_| false),
            Answer::for_request(&plain, |_| false),
        );
        assert_eq!(a.prompt_tokens, 2);
        assert_eq!(a, b);
    }

    #[test]
    fn tool_choice_none_wins_and_named_function_is_used() {
        let tools = serde_json::json!([
            {"type": "function", "function": {"name": "first", "parameters": {"type": "object", "properties": {"n": {"type": "integer"}}}}},
            {"type": "function", "function": {"name": "second"}}
        ]);
        let none = request(serde_json::json!({
            "model": "m", "tools": tools, "tool_choice": "none",
            "messages": [{"role": "user", "content": "use a tool"}]
        }));
        assert!(Answer::for_request(&none, |_| false).tool_call.is_none());
        let named = request(serde_json::json!({
            "model": "m", "tools": tools, "tool_choice": {"type": "function", "function": {"name": "second"}},
            "messages": [{"role": "user", "content": "hello"}]
        }));
        let call = Answer::for_request(&named, |_| false).tool_call.unwrap();
        assert_eq!((call.name.as_str(), call.arguments.as_str()), ("second", "{}"));
        let required = request(serde_json::json!({
            "model": "m", "tools": tools, "tool_choice": "required",
            "messages": [{"role": "user", "content": "hello"}]
        }));
        let call = Answer::for_request(&required, |_| false).tool_call.unwrap();
        assert_eq!((call.name.as_str(), call.arguments.as_str()), ("first", r#"{"n":1}"#));
    }

    #[test]
    fn structured_output_follows_the_schema() {
        let req = request(serde_json::json!({
            "model": "m", "messages": [{"role": "user", "content": "verdict?"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "v", "schema": {
                "type": "object", "required": ["ok", "reason", "tags", "level"],
                "properties": {"ok": {"type": "boolean"}, "reason": {"type": "string"},
                    "tags": {"type": "array", "items": {"type": "string"}}, "level": {"enum": ["low", "high"]}}}}}
        }));
        let a = Answer::for_request(&req, |_| false);
        let v: Value = serde_json::from_str(a.content.as_deref().unwrap()).unwrap();
        assert_eq!(v["ok"], true);
        assert!(v["reason"].as_str().unwrap().starts_with("Mock answer to: verdict?"));
        assert_eq!(v["tags"].as_array().unwrap().len(), 1);
        assert_eq!(v["level"], "low");
    }

    #[test]
    fn reasoning_models_by_name() {
        for m in [
            "deepseek-chat",
            "grok-4-1-fast-reasoning",
            "MiniMax-M2.1",
            "gemini-2.5-flash",
            "deepseek-r1",
            "o3-thinking",
        ] {
            assert!(is_reasoning_model(m), "{m}");
        }
        for m in ["gpt-4o-mini", "claude-sonnet-4-5", "gemini-2.0-flash"] {
            assert!(!is_reasoning_model(m), "{m}");
        }
    }
}
