//! Reading OpenAI-style SSE chunks without re-serialising the ones the gateway does not change.

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// What the gateway needs to know about one `chat.completion.chunk`.
#[derive(Debug, Default, PartialEq)]
pub struct ChunkInfo {
    /// The chunk carries a `usage` object (the final chunk with `include_usage`).
    pub usage: Option<Value>,
    /// No choices: a usage-only chunk, dropped when the client did not ask for usage.
    pub choices_empty: bool,
    /// Some delta carries content, reasoning or a tool call: the first such chunk is the first token.
    pub has_token: bool,
    pub finish_reason: Option<String>,
    /// Bytes of visible text and tool-call arguments in the deltas: what a broken stream's
    /// output is estimated from when the provider never reported usage.
    pub text_bytes: usize,
    /// Bytes of reasoning text in the deltas.
    pub reasoning_bytes: usize,
}

#[derive(Deserialize)]
struct ChunkPeek<'a> {
    #[serde(default)]
    usage: Option<Value>,
    #[serde(borrow, default)]
    choices: Vec<ChoicePeek<'a>>,
}

#[derive(Deserialize)]
struct ChoicePeek<'a> {
    #[serde(borrow, default)]
    delta: Option<DeltaPeek<'a>>,
    #[serde(default)]
    finish_reason: Option<String>,
}

/// The delta's fields as raw text: a chunk's text is measured without copying it out.
#[derive(Deserialize)]
struct DeltaPeek<'a> {
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
    #[serde(borrow, default)]
    reasoning_content: Option<&'a RawValue>,
    #[serde(borrow, default)]
    reasoning: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tool_calls: Option<&'a RawValue>,
}

/// Bytes of text in a delta field: a string, or the strings nested in it (tool-call arguments).
fn text_len(v: Option<&RawValue>) -> usize {
    fn walk(v: &Value) -> usize {
        match v {
            Value::String(s) => s.len(),
            Value::Array(a) => a.iter().map(walk).sum(),
            Value::Object(o) => o
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "id" | "type" | "index"))
                .map(|(_, v)| walk(v))
                .sum(),
            _ => 0,
        }
    }
    let Some(raw) = v.map(RawValue::get) else { return 0 };
    match raw.as_bytes().first() {
        // A string without escapes is its text between the quotes; one with escapes is unescaped.
        Some(b'"') if !raw.contains('\\') => raw.len().saturating_sub(2),
        Some(b'"') => serde_json::from_str::<String>(raw).map_or(0, |s| s.len()),
        Some(b'[' | b'{') => serde_json::from_str::<Value>(raw).map_or(0, |v| walk(&v)),
        _ => 0,
    }
}

fn non_empty(v: Option<&RawValue>) -> bool {
    !matches!(v.map(RawValue::get), None | Some("null") | Some("\"\""))
}

/// Inspects one SSE `data:` payload. `None` for `[DONE]` or a payload that is not JSON (passed on as is).
pub fn inspect_chunk(data: &str) -> Option<ChunkInfo> {
    let peek: ChunkPeek = serde_json::from_str(data).ok()?;
    let mut info = ChunkInfo {
        usage: peek.usage.filter(|u| !u.is_null()),
        choices_empty: peek.choices.is_empty(),
        ..ChunkInfo::default()
    };
    for c in peek.choices {
        if let Some(d) = &c.delta
            && (non_empty(d.content)
                || non_empty(d.reasoning_content)
                || non_empty(d.reasoning)
                || non_empty(d.tool_calls))
        {
            info.has_token = true;
        }
        if let Some(d) = &c.delta {
            info.text_bytes += text_len(d.content) + text_len(d.tool_calls);
            info.reasoning_bytes += text_len(d.reasoning_content) + text_len(d.reasoning);
        }
        if c.finish_reason.is_some() {
            info.finish_reason = c.finish_reason;
        }
    }
    Some(info)
}

/// Whether an OpenAI-family chunk can carry nothing but text: every `"usage"` key it has is
/// `null` and so is every `"finish_reason"`. Such a chunk (nearly every chunk of a long answer)
/// matters to the gateway only for the size of its text, which is needed only if the stream ends
/// without usage; it can be relayed without being parsed. Anything the patterns do not recognise
/// (spaces after the colon, a non-null value) returns false and is inspected in full, so a wrong
/// answer here can only cost time, never lose usage or a finish reason.
pub fn carries_only_text(data: &str) -> bool {
    use std::sync::LazyLock;

    use memchr::memmem::Finder;
    // Built once: building a searcher costs more than searching a chunk.
    static FINDERS: LazyLock<[Finder<'static>; 2]> =
        LazyLock::new(|| [Finder::new(b"\"usage\""), Finder::new(b"\"finish_reason\"")]);
    let d = data.as_bytes();
    // One pass per key: every place it occurs must go on with `:null`.
    let all_null = |f: &Finder| {
        let n = f.needle().len();
        f.find_iter(d).all(|at| d[at + n..].starts_with(b":null"))
    };
    FINDERS.iter().all(all_null)
}

/// One SSE event as sent to the client.
pub fn event_bytes(data: &str) -> bytes::Bytes {
    let mut s = String::with_capacity(data.len() + 8);
    s.push_str("data: ");
    s.push_str(data);
    s.push_str("\n\n");
    bytes::Bytes::from(s)
}

/// An OpenAI-shaped error event, sent when a stream breaks midway so clients never mistake a
/// truncated answer for a complete one.
pub fn error_event(error: &serde_json::Value) -> bytes::Bytes {
    event_bytes(&error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_chunks_with_null_usage_and_finish_reason_carry_only_text() {
        let text = r#"{"id":"x","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}],"usage":null}"#;
        assert!(carries_only_text(text));
        assert!(carries_only_text(r#"{"choices":[{"delta":{"content":"hi"}}]}"#));
        for inspected in [
            r#"{"choices":[{"delta":{},"finish_reason":"stop"}],"usage":null}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#,
            // Spaced JSON is not recognised: inspected in full, never skipped.
            r#"{"choices":[{"delta":{"content":"hi"},"finish_reason": null}]}"#,
            // Two choices, one finished.
            r#"{"choices":[{"finish_reason":null},{"finish_reason":"length"}]}"#,
        ] {
            assert!(!carries_only_text(inspected), "{inspected}");
        }
        // A key's name inside the text is escaped, so it is not taken for the key.
        assert!(carries_only_text(
            r#"{"choices":[{"delta":{"content":"the \"usage\" field"},"finish_reason":null}]}"#
        ));
        // Whatever it says, a chunk judged text-only has no usage and no finish reason.
        for c in [text, r#"{"choices":[{"delta":{"content":"a"}}],"usage":null}"#] {
            let i = inspect_chunk(c).expect("json");
            assert!(i.usage.is_none() && i.finish_reason.is_none());
        }
    }

    #[test]
    fn usage_chunk_is_recognised() {
        let i = inspect_chunk(r#"{"id":"x","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#).unwrap();
        assert!(i.choices_empty);
        assert_eq!(i.usage.unwrap()["prompt_tokens"], 3);
        assert!(!i.has_token);
    }

    #[test]
    fn content_reasoning_and_tools_are_tokens() {
        for d in [
            r#"{"content":"hi"}"#,
            r#"{"reasoning_content":"hm"}"#,
            r#"{"tool_calls":[{"index":0}]}"#,
        ] {
            let i = inspect_chunk(&format!(r#"{{"choices":[{{"index":0,"delta":{d}}}]}}"#)).unwrap();
            assert!(i.has_token, "{d}");
        }
        let i = inspect_chunk(r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#).unwrap();
        assert!(!i.has_token);
        let i = inspect_chunk(r#"{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#).unwrap();
        assert_eq!(i.finish_reason.as_deref(), Some("length"));
    }

    #[test]
    fn text_and_reasoning_bytes_are_counted_for_estimates() {
        let i = inspect_chunk(
            r#"{"choices":[{"index":0,"delta":{"content":"héllo","reasoning_content":"abc","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]}}]}"#,
        )
        .unwrap();
        // "héllo" is 6 bytes; the tool call counts its name (1) and arguments (7), not ids.
        assert_eq!(i.text_bytes, 6 + 1 + 7);
        assert_eq!(i.reasoning_bytes, 3);
    }

    #[test]
    fn escaped_text_counts_its_unescaped_bytes() {
        let i = inspect_chunk(r#"{"choices":[{"delta":{"content":"a\nb\u00e9\"","reasoning":""}}]}"#).unwrap();
        // a, newline, b, é (2 bytes), quote.
        assert_eq!(i.text_bytes, 6);
        assert_eq!(i.reasoning_bytes, 0);
        assert!(i.has_token);
        let empty = inspect_chunk(r#"{"choices":[{"delta":{"content":"","reasoning_content":null}}]}"#).unwrap();
        assert!(!empty.has_token);
    }

    #[test]
    fn done_is_not_a_chunk() {
        assert!(inspect_chunk("[DONE]").is_none());
        assert_eq!(&event_bytes("[DONE]")[..], b"data: [DONE]\n\n");
    }
}
