//! max_tokens hygiene: a request whose `max_tokens` plus its input would not fit the model's
//! context window (or whose `max_tokens` exceeds the model's output limit) is clamped to fit
//! instead of being sent to fail with a 400. Applies to every provider.
//!
//! The input is estimated, not tokenised: one token per three bytes of UTF-8 text (English runs
//! about four characters a token, CJK about one character of three bytes), so the estimate errs
//! high and a clamped request fits. A request whose input alone fills the window is left as it
//! is: the provider's own error then says the prompt is too long, which is the real problem.

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

fn text_bytes(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.len() as u64,
        Value::Array(a) => a.iter().map(text_bytes).sum(),
        Value::Object(o) => o
            .iter()
            // Images are priced by size, not by their base64 text; a data URL would swamp the
            // estimate, so media parts count a flat amount.
            .map(|(k, v)| match k.as_str() {
                "image_url" | "input_audio" | "file" => 3 * 1000,
                _ => text_bytes(v),
            })
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
    let mut limit = max_output.unwrap_or(u64::MAX);
    if let Some(window) = context_window {
        let input = estimate_input_tokens(body);
        if input >= window {
            return None;
        }
        limit = limit.min(window - input);
    }
    if from <= limit || limit == 0 {
        return None;
    }
    for f in ["max_completion_tokens", "max_tokens"] {
        if body.get(f).and_then(Value::as_u64).is_some_and(|v| v > limit) {
            body.insert(f.to_string(), limit.into());
        }
    }
    Some(Clamp { field, from, to: limit })
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
}
