//! OpenAI's chat-completions wire format: the identity path for the OpenAI-compatible family,
//! and the OpenAI-side readers and writers the native translators share.
//!
//! Requests of the OpenAI family are serialised straight from the client's map with `model`
//! and `stream_options` overlaid, so a large prompt is never cloned.

use serde::Deserialize;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::provider::Route;
use crate::usage::{ParsedUsage, normalize_openai_usage};
use crate::wire::{TranslateError, UpstreamRequest};

/// The client's body with `model` replaced and, for streams, `stream_options.include_usage`
/// forced on, written without copying the rest.
struct Overlay<'a> {
    body: &'a Map<String, Value>,
    model: &'a str,
    stream: bool,
}

impl Serialize for Overlay<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("model", self.model)?;
        for (k, v) in self.body {
            match k.as_str() {
                "model" => {}
                "stream_options" if self.stream => {}
                _ => map.serialize_entry(k, v)?,
            }
        }
        if self.stream {
            // Usage is needed for the record whether or not the client asked; the gateway drops
            // the extra chunk again for clients that did not ask.
            let mut opts = self
                .body
                .get("stream_options")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            opts.insert("include_usage".into(), Value::Bool(true));
            map.serialize_entry("stream_options", &opts)?;
        }
        map.end()
    }
}

pub fn build_request(
    route: &Route,
    api_key: Option<&str>,
    body: &Map<String, Value>,
    stream: bool,
) -> Result<UpstreamRequest, TranslateError> {
    let overlay = Overlay {
        body,
        model: &route.upstream_model,
        stream,
    };
    let bytes = serde_json::to_vec(&overlay).map_err(|e| TranslateError::InvalidRequest(e.to_string()))?;
    Ok(request_with_body(route, api_key, bytes, stream))
}

/// An OpenAI-family chat request whose body the caller has written already, with `model` set to
/// the route's upstream model and, for a stream, `stream_options.include_usage` on (the gateway
/// does so without re-serialising the client's messages).
pub fn request_with_body(route: &Route, api_key: Option<&str>, body: Vec<u8>, stream: bool) -> UpstreamRequest {
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    if let Some(k) = api_key {
        let (name, value) = route.auth_header(k);
        headers.push((name.to_string(), value));
    }
    UpstreamRequest {
        url: if stream {
            route.stream_url.clone()
        } else {
            route.chat_url.clone()
        },
        headers,
        body,
        dropped: Vec::new(),
    }
}

/// A plain response relayed as bytes.
#[derive(Debug)]
pub struct Relayed {
    pub body: Vec<u8>,
    pub usage: ParsedUsage,
    pub finish_reason: Option<String>,
}

/// The common case of [`translate_response`] without building the answer into values: a
/// `chat.completion` whose messages need no repair is relayed with only `model` (set to
/// `group`) and `usage` (OpenAI's convention) rewritten; the choices pass as the provider wrote
/// them. `None` when that does not apply (not an object, a message to repair, …): the caller
/// takes the general path, which also says what is wrong.
pub fn relay_response(bytes: &[u8], group: &str) -> Option<Relayed> {
    // A struct reads the choices in the same pass as the rest (a map of raw values would scan
    // them twice) and builds nothing for the fields it does not name. Serde would also read a
    // struct from an array, which is no chat.completion; a repeated field fails it, so such an
    // answer takes the general path like any other it cannot relay as is.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return None;
    }
    let answer: AnswerView<'_> = serde_json::from_slice(bytes).ok()?;
    let mut finish_reason = None;
    if let Some(choices) = &answer.choices {
        finish_reason = choices
            .first()
            .and_then(|c| c.finish_reason.as_deref().map(str::to_string));
        for message in choices.iter().filter_map(|c| c.message.as_ref()) {
            let has_calls = message
                .tool_calls
                .is_some_and(|c| c.get().starts_with('[') && !c.get()[1..].trim_start().starts_with(']'));
            let text: Option<String>;
            let content = match message.content.map(RawValue::get) {
                None => None,
                // Markup starts with `<`; a text without one (spelled plainly or escaped) has none,
                // and is not unescaped just to look.
                Some(raw) if raw.starts_with('"') && (raw.contains('<') || raw.contains("\\u003")) => {
                    text = serde_json::from_str(raw).ok();
                    Some(Some(text.as_deref()?))
                }
                Some(raw) if raw.starts_with('"') => Some(Some("")),
                Some(_) => Some(None),
            };
            if crate::hygiene::message_needs_repair(content, has_calls) {
                return None;
            }
        }
    }
    // The answer is copied as the provider wrote it, with two values replaced in place: `model`
    // (added at the end when missing) and `usage` in OpenAI's convention.
    let mut usage = ParsedUsage::default();
    let usage_raw;
    let model = serde_json::value::to_raw_value(group).ok()?;
    let mut edits: Vec<(std::ops::Range<usize>, &str)> = Vec::with_capacity(2);
    if let Some(raw) = answer.usage {
        let mut u: Value = serde_json::from_str(raw.get()).ok()?;
        if u.is_object() {
            usage = normalize_openai_usage(&mut u);
            usage_raw = serde_json::value::to_raw_value(&u).ok()?;
            edits.push((span_in(bytes, raw)?, usage_raw.get()));
        }
    }
    let appended;
    match answer.model {
        Some(m) => edits.push((span_in(bytes, m)?, model.get())),
        None => {
            let end = bytes.iter().rposition(|&b| b == b'}')?;
            let empty = bytes[..end].iter().rev().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
            appended = format!("{}\"model\":{}", if empty { "" } else { "," }, model.get());
            edits.push((end..end, appended.as_str()));
        }
    }
    edits.sort_by_key(|(at, _)| at.start);
    let mut body = Vec::with_capacity(bytes.len() + group.len() + 64);
    let mut from = 0;
    for (at, with) in edits {
        body.extend_from_slice(bytes.get(from..at.start)?);
        body.extend_from_slice(with.as_bytes());
        from = at.end;
    }
    body.extend_from_slice(&bytes[from..]);
    Some(Relayed {
        body,
        usage,
        finish_reason,
    })
}

/// Where `value`, borrowed from `bytes` by the parser, sits in it.
fn span_in(bytes: &[u8], value: &RawValue) -> Option<std::ops::Range<usize>> {
    let start = (value.get().as_ptr() as usize).checked_sub(bytes.as_ptr() as usize)?;
    let end = start + value.get().len();
    (end <= bytes.len()).then_some(start..end)
}

/// What the relay reads of a whole answer; every other field is skipped unread. `None` means
/// absent: a `null` is kept as a value (`model: null` is replaced, not added to), and `choices`
/// that are not a list fail the relay.
#[derive(Deserialize)]
struct AnswerView<'a> {
    #[serde(borrow, default, deserialize_with = "present_list")]
    choices: Option<Vec<ChoiceView<'a>>>,
    #[serde(borrow, default, deserialize_with = "present")]
    usage: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    model: Option<&'a RawValue>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

fn present_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<ChoiceView<'de>>>, D::Error> {
    Vec::deserialize(d).map(Some)
}

/// What the relay looks at in a choice; the rest passes through unread.
#[derive(Deserialize)]
struct ChoiceView<'a> {
    #[serde(borrow, default)]
    message: Option<MessageView<'a>>,
    #[serde(borrow, default)]
    finish_reason: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize)]
struct MessageView<'a> {
    /// `None` when absent or null.
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tool_calls: Option<&'a RawValue>,
}

/// Reads a plain response and rewrites its usage into OpenAI's convention.
pub fn translate_response(bytes: &[u8]) -> Result<(Value, ParsedUsage), String> {
    let mut value: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    // A 200 whose body is JSON but not an object (`[]`, `42`) is no chat.completion: relayed, it
    // would reach the client as a success it cannot read, and be recorded as one.
    if !value.is_object() {
        return Err(format!(
            "expected a chat.completion object, found {}",
            match value {
                Value::Array(_) => "a list",
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                Value::Bool(_) => "true/false",
                _ => "null",
            }
        ));
    }
    let parsed = value
        .get_mut("usage")
        .filter(|u| u.is_object())
        .map(normalize_openai_usage)
        .unwrap_or_default();
    Ok((value, parsed))
}

// ---- Readers of OpenAI requests, shared by the native translators ----

/// A `data:` URL split into its media type and base64 payload.
pub(crate) fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media = meta.strip_suffix(";base64")?;
    Some((
        if media.is_empty() {
            "application/octet-stream"
        } else {
            media
        },
        data,
    ))
}

/// A media type guessed from a URL's extension, for providers that want one with a link.
pub(crate) fn media_type_of_url(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or(url).to_ascii_lowercase();
    match path.rsplit('.').next() {
        Some("png") => "image/png",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("pdf") => "application/pdf",
        Some("mp3") => "audio/mp3",
        Some("wav") => "audio/wav",
        _ => "image/jpeg",
    }
}

/// `reasoning_effort` as a thinking budget in tokens (LiteLLM's mapping); `Some(0)` turns
/// thinking off.
pub(crate) fn effort_budget(effort: &str) -> Option<u64> {
    Some(match effort {
        "none" | "disable" => 0,
        "minimal" => 128,
        "low" => 1024,
        "medium" => 2048,
        "high" => 4096,
        _ => return None,
    })
}

/// The thinking budget a request asks for: LiteLLM's Anthropic-style `thinking` object first,
/// then `reasoning_effort`.
pub(crate) fn requested_budget(body: &Map<String, Value>) -> Result<Option<u64>, TranslateError> {
    if let Some(t) = body.get("thinking").filter(|t| !t.is_null()) {
        return Ok(match t.get("type").and_then(Value::as_str) {
            Some("disabled") => Some(0),
            _ => t.get("budget_tokens").and_then(Value::as_u64),
        });
    }
    match body.get("reasoning_effort") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(e)) => effort_budget(e).map(Some).ok_or_else(|| {
            TranslateError::InvalidRequest(format!(
                "reasoning_effort `{e}` is not one of none, minimal, low, medium, high"
            ))
        }),
        Some(other) => Err(TranslateError::InvalidRequest(format!(
            "reasoning_effort must be a string, not {other}"
        ))),
    }
}

/// `max_completion_tokens`, else `max_tokens`.
pub(crate) fn requested_max_tokens(body: &Map<String, Value>) -> Option<u64> {
    body.get("max_completion_tokens")
        .and_then(Value::as_u64)
        .or_else(|| body.get("max_tokens").and_then(Value::as_u64))
}

/// `stop` as a list.
pub(crate) fn stop_sequences(stop: &Value) -> Vec<Value> {
    match stop {
        Value::String(s) => vec![Value::String(s.clone())],
        Value::Array(a) => a.iter().filter(|s| s.is_string()).cloned().collect(),
        _ => Vec::new(),
    }
}

/// The JSON schema a `response_format` asks for: `Some(None)` for any JSON object.
pub(crate) fn json_schema_of(response_format: &Value) -> Option<Option<&Value>> {
    match response_format.get("type").and_then(Value::as_str) {
        Some("json_object") => Some(None),
        Some("json_schema") => Some(response_format.pointer("/json_schema/schema")),
        _ => None,
    }
}

/// The name of the function a tool call with `id` called, searched from the latest turn back,
/// since tool messages name only the call id.
pub(crate) fn tool_name_for(messages: &[Value], upto: usize, id: &str) -> Option<String> {
    messages[..upto].iter().rev().find_map(|m| {
        m.get("tool_calls")?
            .as_array()?
            .iter()
            .find(|c| c.get("id").and_then(Value::as_str) == Some(id))?
            .pointer("/function/name")?
            .as_str()
            .map(str::to_string)
    })
}

/// A tool call's `arguments` string as a JSON object (providers want objects).
pub(crate) fn arguments_object(call: &Value) -> Value {
    match call.pointer("/function/arguments") {
        Some(Value::String(s)) if !s.trim().is_empty() => {
            serde_json::from_str(s).unwrap_or_else(|_| json!({ "_raw_arguments": s }))
        }
        Some(v @ Value::Object(_)) => v.clone(),
        _ => json!({}),
    }
}

// ---- Writers of OpenAI responses and chunks ----

/// One `chat.completion.chunk` with a single choice.
pub(crate) fn chunk(id: &str, created: u64, model: &str, index: u64, delta: Value, finish: Option<&str>) -> String {
    json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": index, "delta": delta, "logprobs": null, "finish_reason": finish}],
    })
    .to_string()
}

/// The last, choice-less chunk that carries usage (OpenAI's `include_usage` shape).
pub(crate) fn usage_chunk(id: &str, created: u64, model: &str, usage: &ParsedUsage) -> String {
    json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage.usage.to_openai_json(),
    })
    .to_string()
}

/// A plain `chat.completion`.
pub(crate) fn completion(id: &str, created: u64, model: &str, choices: Vec<Value>, usage: &ParsedUsage) -> Value {
    json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": usage.usage.to_openai_json(),
    })
}

/// An assistant message; absent parts are left out, and `content` is null only beside tool calls.
pub(crate) fn message(content: &str, reasoning: &str, tool_calls: Vec<Value>, extra: Map<String, Value>) -> Value {
    let mut m = Map::new();
    m.insert("role".into(), "assistant".into());
    m.insert(
        "content".into(),
        if content.is_empty() && !tool_calls.is_empty() {
            Value::Null
        } else {
            content.into()
        },
    );
    if !reasoning.is_empty() {
        m.insert("reasoning_content".into(), reasoning.into());
    }
    if !tool_calls.is_empty() {
        m.insert("tool_calls".into(), Value::Array(tool_calls));
    }
    m.extend(extra);
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::route;

    #[test]
    fn a_json_answer_that_is_not_an_object_is_an_upstream_format_error() {
        for body in ["[]", "42", "\"ok\"", "null", "true"] {
            let e = translate_response(body.as_bytes()).unwrap_err();
            assert!(e.contains("chat.completion"), "{body}: {e}");
        }
        assert!(translate_response(br#"{"choices":[]}"#).is_ok());
    }

    #[test]
    fn overlay_rewrites_model_and_forces_usage_only() {
        let r = route("deepseek/deepseek-v3.2", Some("http://m/v1")).unwrap();
        let body: Map<String, Value> = serde_json::from_value(json!({
            "model": "group", "messages": [], "x_unknown": 1, "stream_options": {"other": true}
        }))
        .unwrap();
        let req = build_request(&r, Some("k"), &body, true).unwrap();
        let sent: Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(
            sent,
            json!({"model": "deepseek-v3.2", "messages": [], "x_unknown": 1,
                   "stream_options": {"other": true, "include_usage": true}})
        );
        assert!(req.headers.contains(&("authorization".into(), "Bearer k".into())));
        let plain = build_request(&r, None, &body, false).unwrap();
        let sent: Value = serde_json::from_slice(&plain.body).unwrap();
        assert_eq!(sent["stream_options"], json!({"other": true}));
    }

    #[test]
    fn data_urls() {
        assert_eq!(parse_data_url("data:image/png;base64,AAA"), Some(("image/png", "AAA")));
        assert_eq!(parse_data_url("https://x/y.png"), None);
        assert_eq!(media_type_of_url("https://x/y.PNG?s=1"), "image/png");
    }

    #[test]
    fn relaying_without_values_gives_what_the_general_path_gives() {
        let route = crate::provider::route("deepseek/deepseek-chat", Some("http://127.0.0.1:1/v1")).unwrap();
        let general = |bytes: &[u8]| {
            let (mut v, usage) = crate::translate::translate_response(&route, bytes, "g").unwrap();
            v["model"] = json!("g");
            (v, usage)
        };
        let answers = [
            json!({"id": "c1", "object": "chat.completion", "model": "deepseek-chat", "created": 1,
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "line\nwith \"quotes\""}}],
                "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
                          "prompt_cache_hit_tokens": 64, "prompt_cache_miss_tokens": 36,
                          "completion_tokens_details": {"reasoning_tokens": 5}}}),
            json!({"id": "c2", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
                "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}]}),
            json!({"id": "c3", "choices": []}),
            json!({"id": "c4", "model": null, "choices": [], "usage": null}),
            json!({}),
        ];
        for a in answers {
            // Compact and pretty-printed: the answer is copied as written, two values replaced.
            for bytes in [serde_json::to_vec(&a).unwrap(), serde_json::to_vec_pretty(&a).unwrap()] {
                let relayed = relay_response(&bytes, "g").expect("relayed without values");
                let (v, usage) = general(&bytes);
                assert_eq!(serde_json::from_slice::<Value>(&relayed.body).unwrap(), v);
                let text = String::from_utf8(relayed.body).unwrap();
                assert_eq!(text.matches("\"model\"").count(), 1, "{text}");
                assert_eq!(relayed.usage.usage, usage.usage);
                assert_eq!(
                    relayed.finish_reason.as_deref(),
                    v.pointer("/choices/0/finish_reason").and_then(Value::as_str)
                );
            }
        }
        // The provider's field order is kept.
        let relayed = relay_response(
            br#"{"id":"c5","object":"chat.completion","model":"m","choices":[]}"#,
            "g",
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(relayed.body).unwrap(),
            r#"{"id":"c5","object":"chat.completion","model":"g","choices":[]}"#
        );
        // What the repair would change, and what is no chat.completion, take the general path.
        for a in [
            json!({"choices": [{"message": {"role": "assistant", "content": null}}]}),
            json!({"choices": [{"message": {"role": "assistant", "content": "<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>"}}]}),
            json!([1, 2]),
            json!({"choices": null}),
        ] {
            assert!(relay_response(&serde_json::to_vec(&a).unwrap(), "g").is_none(), "{a}");
        }
        // A field given twice is left to the general path (which keeps the last, as a map does).
        assert!(relay_response(br#"{"model":"a","choices":[],"model":"b"}"#, "g").is_none());
    }
}
