//! max_tokens hygiene: a request whose `max_tokens` plus its input would not fit the model's
//! context window (or whose `max_tokens` exceeds the model's output limit) is clamped to fit
//! instead of being sent to fail with a 400. Applies to every provider.
//!
//! The input is estimated, not tokenised: one token per three bytes of UTF-8 text (English runs
//! about four characters a token, CJK about one character of three bytes), so the estimate errs
//! high and a clamped request fits. A request whose input alone fills the window is left as it
//! is: the provider's own error then says the prompt is too long, which is the real problem.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Per-message framing tokens (role markers and separators).
const PER_MESSAGE: u64 = 4;

/// A clamp that was applied: which field, from what, to what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clamp {
    pub field: &'static str,
    pub from: u64,
    pub to: u64,
}

impl Clamp {
    /// The `x-tollgate-max-tokens-clamped` header value: `<original>-><new>`.
    pub fn header_value(&self) -> String {
        format!("{}->{}", self.from, self.to)
    }
}

/// Images are priced by size, not by their base64 text; a data URL would swamp the estimate, so
/// media parts count a flat amount.
const MEDIA_BYTES: u64 = 3 * 1000;

fn is_media_key(k: &str) -> bool {
    matches!(k, "image_url" | "input_audio" | "file")
}

fn text_bytes(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.len() as u64,
        Value::Array(a) => a.iter().map(text_bytes).sum(),
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| if is_media_key(k) { MEDIA_BYTES } else { text_bytes(v) })
            .sum(),
        _ => 0,
    }
}

/// Estimated input tokens of a chat request: messages, tools and response schema.
pub fn estimate_input_tokens(body: &Map<String, Value>) -> u64 {
    let messages = body.get("messages").and_then(Value::as_array);
    let framing = messages.map_or(0, |m| m.len() as u64) * PER_MESSAGE;
    let bytes: u64 = ["messages", "tools", "response_format"]
        .iter()
        .filter_map(|k| body.get(*k))
        .map(text_bytes)
        .sum();
    bytes.div_ceil(3) + framing
}

/// Clamps `max_completion_tokens`/`max_tokens` so that estimated input + max tokens fits
/// `context_window` and max tokens fits `max_output`. Returns the clamp applied, if any.
pub fn clamp_max_tokens(
    body: &mut Map<String, Value>,
    context_window: Option<u64>,
    max_output: Option<u64>,
) -> Option<Clamp> {
    let field = ["max_completion_tokens", "max_tokens"]
        .into_iter()
        .find(|f| body.get(*f).is_some_and(Value::is_u64))?;
    let from = body.get(field).and_then(Value::as_u64)?;
    let limit = clamp_limit(from, context_window, max_output, || estimate_input_tokens(body))?;
    for f in ["max_completion_tokens", "max_tokens"] {
        if body.get(f).and_then(Value::as_u64).is_some_and(|v| v > limit) {
            body.insert(f.to_string(), limit.into());
        }
    }
    Some(Clamp { field, from, to: limit })
}

/// The max tokens a request asking for `from` may have: `None` when `from` fits (or nothing can
/// be done), else the limit. `input` (estimated input tokens) is asked only when a window is known.
pub fn clamp_limit(
    from: u64,
    context_window: Option<u64>,
    max_output: Option<u64>,
    input: impl FnOnce() -> u64,
) -> Option<u64> {
    let mut limit = max_output.unwrap_or(u64::MAX);
    if let Some(window) = context_window {
        let input = input();
        if input >= window {
            return None;
        }
        limit = limit.min(window - input);
    }
    if from <= limit || limit == 0 {
        return None;
    }
    Some(limit)
}

/// [`estimate_input_tokens`] from the fields' raw JSON text, without building them into values
/// (the same count: strings' lengths, media parts a flat amount, framing per message).
pub fn estimate_input_tokens_raw(messages: Option<&str>, tools: Option<&str>, response_format: Option<&str>) -> u64 {
    let mut framing = 0;
    let mut bytes = 0;
    if let Some(m) = messages {
        match serde_json::from_str::<Vec<TextBytes>>(m) {
            Ok(list) => {
                framing = list.len() as u64 * PER_MESSAGE;
                bytes += list.iter().map(|t| t.0).sum::<u64>();
            }
            Err(_) => bytes += text_bytes_raw(m),
        }
    }
    bytes += tools.map_or(0, text_bytes_raw) + response_format.map_or(0, text_bytes_raw);
    bytes.div_ceil(3) + framing
}

fn text_bytes_raw(raw: &str) -> u64 {
    serde_json::from_str::<TextBytes>(raw).map_or(0, |t| t.0)
}

/// The text bytes of a JSON value, counted as it is read (see `text_bytes`).
struct TextBytes(u64);

impl<'de> Deserialize<'de> for TextBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextBytesVisitor)
    }
}

struct TextBytesVisitor;

impl<'de> Visitor<'de> for TextBytesVisitor {
    type Value = TextBytes;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<TextBytes, E> {
        Ok(TextBytes(s.len() as u64))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<TextBytes, E> {
        Ok(TextBytes(0))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<TextBytes, E> {
        Ok(TextBytes(0))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<TextBytes, E> {
        Ok(TextBytes(0))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<TextBytes, E> {
        Ok(TextBytes(0))
    }

    fn visit_unit<E: de::Error>(self) -> Result<TextBytes, E> {
        Ok(TextBytes(0))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TextBytes, A::Error> {
        let mut n = 0;
        while let Some(t) = seq.next_element::<TextBytes>()? {
            n += t.0;
        }
        Ok(TextBytes(n))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TextBytes, A::Error> {
        let mut n = 0;
        while let Some(key) = map.next_key::<KeyKind>()? {
            n += match key {
                KeyKind::Media => {
                    map.next_value::<de::IgnoredAny>()?;
                    MEDIA_BYTES
                }
                KeyKind::Other => map.next_value::<TextBytes>()?.0,
            };
        }
        Ok(TextBytes(n))
    }
}

/// Whether an object key names a media part (read without allocating the key).
enum KeyKind {
    Media,
    Other,
}

impl<'de> Deserialize<'de> for KeyKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = KeyKind;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<KeyKind, E> {
                Ok(if is_media_key(s) {
                    KeyKind::Media
                } else {
                    KeyKind::Other
                })
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Map<String, Value> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn clamps_to_the_window_left_after_the_input() {
        // 300 bytes of text + "user" → 102 tokens, + 4 framing.
        let mut b = body(json!({"messages": [{"role": "user", "content": "x".repeat(300)}], "max_tokens": 1000}));
        let c = clamp_max_tokens(&mut b, Some(600), None).unwrap();
        assert_eq!(
            c,
            Clamp {
                field: "max_tokens",
                from: 1000,
                to: 494
            }
        );
        assert_eq!(b["max_tokens"], 494);
        assert_eq!(c.header_value(), "1000->494");
    }

    #[test]
    fn clamps_to_the_output_limit_and_leaves_fitting_requests_alone() {
        let mut b = body(json!({"messages": [], "max_completion_tokens": 100000, "max_tokens": 100000}));
        let c = clamp_max_tokens(&mut b, Some(1_000_000), Some(65536)).unwrap();
        assert_eq!((c.field, c.to), ("max_completion_tokens", 65536));
        assert_eq!(b["max_tokens"], 65536);
        let mut b = body(json!({"messages": [], "max_tokens": 10}));
        assert_eq!(clamp_max_tokens(&mut b, Some(1000), Some(100)), None);
        let mut b = body(json!({"messages": []}));
        assert_eq!(clamp_max_tokens(&mut b, Some(1), Some(1)), None);
    }

    #[test]
    fn input_larger_than_the_window_is_left_to_the_provider() {
        let mut b = body(json!({"messages": [{"role": "user", "content": "x".repeat(3000)}], "max_tokens": 10}));
        assert_eq!(clamp_max_tokens(&mut b, Some(100), None), None);
        assert_eq!(b["max_tokens"], 10);
    }

    #[test]
    fn images_count_a_flat_amount() {
        let b = body(json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{}", "A".repeat(90000))}}]}]}));
        // "user" + "image_url" + a flat 3000 bytes for the image, + framing.
        assert_eq!(estimate_input_tokens(&b), (4 + 9 + 3000u64).div_ceil(3) + 4);
    }

    #[test]
    fn the_raw_estimate_is_the_value_estimate() {
        let bodies = [
            json!({"messages": [{"role": "user", "content": "x".repeat(300)}], "max_tokens": 1000}),
            json!({"messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "text", "text": "caf\u{e9} \"quoted\" ünïcode"}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "1", "function": {"name": "f", "arguments": "{}"}}]}],
                "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
                "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object"}}}}),
            json!({"messages": "not a list", "tools": 5}),
            json!({}),
        ];
        for v in bodies {
            let b = body(v);
            let raw = |k: &str| b.get(k).map(|v| v.to_string());
            let (m, t, r) = (raw("messages"), raw("tools"), raw("response_format"));
            assert_eq!(
                estimate_input_tokens_raw(m.as_deref(), t.as_deref(), r.as_deref()),
                estimate_input_tokens(&b),
                "{b:?}"
            );
        }
    }
}
