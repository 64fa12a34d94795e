//! The part of an answer that reads every byte of the prompt: its two fingerprints and its
//! length, remembered per distinct prompt.
//!
//! The fingerprints are FNV-1a, one multiply per byte in a chain no CPU can overlap: two passes
//! over a 16 KB prompt took about a quarter of the mock's CPU samples in the stream benchmark,
//! where the mock shares two cores with the gateway being measured and the same prompt arrives
//! thousands of times. A repeated prompt is recognised by a 128-bit XXH3 of the same fields
//! (≈ 20 times faster per byte) and gets the values computed the first time, so every answer
//! stays what it was.

use std::collections::HashMap;

use serde_json::Value;
use xxhash_rust::xxh3::Xxh3;

use crate::fingerprint::Fingerprint;

/// A prompt's fingerprints and lengths in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PromptMeasure {
    /// Every message's role and text.
    pub whole: u64,
    /// The model, then every message but the last: what a provider could have cached.
    pub prefix: u64,
    pub total_chars: u64,
    pub prefix_chars: u64,
}

/// The messages of a request as the measure reads them.
pub(crate) struct Turn<'a> {
    pub role: &'a str,
    pub content: &'a Value,
}

impl PromptMeasure {
    pub(crate) fn of<'a>(model: &str, turns: impl ExactSizeIterator<Item = Turn<'a>>) -> PromptMeasure {
        let mut whole = Fingerprint::default();
        let mut prefix = Fingerprint::default();
        prefix.field(model);
        let mut total_chars = 0u64;
        let mut prefix_chars = 0u64;
        let last = turns.len().saturating_sub(1);
        for (i, turn) in turns.enumerate() {
            whole.field(turn.role);
            if i < last {
                prefix.field(turn.role);
            }
            for_each_text(turn.content, &mut |text| {
                let chars = text.chars().count() as u64;
                total_chars += chars;
                whole.field(text);
                if i < last {
                    prefix_chars += chars;
                    prefix.field(text);
                }
            });
        }
        PromptMeasure {
            whole: whole.value(),
            prefix: prefix.value(),
            total_chars,
            prefix_chars,
        }
    }
}

/// Calls `visit` with each piece of text in a message's content: the string itself, or the
/// `text` of each content part (images and audio carry no text and count as nothing).
pub(crate) fn for_each_text(content: &Value, visit: &mut impl FnMut(&str)) {
    match content {
        Value::String(s) => visit(s),
        Value::Array(parts) => {
            for part in parts {
                if let Some(text) = part.get("text").and_then(Value::as_str) {
                    visit(text);
                }
            }
        }
        _ => {}
    }
}

/// Distinct prompts remembered; past this the memo starts over (a benchmark repeats a handful
/// of prompts, a test suite sends each a few times).
const MEMO_CAPACITY: usize = 4096;

/// Measures remembered by their prompt's [`PromptKey`].
#[derive(Debug, Default)]
pub(crate) struct MeasureMemo {
    known: HashMap<PromptKey, PromptMeasure>,
}

impl MeasureMemo {
    pub(crate) fn get(&self, key: PromptKey) -> Option<PromptMeasure> {
        self.known.get(&key).copied()
    }

    pub(crate) fn remember(&mut self, key: PromptKey, measure: PromptMeasure) {
        if self.known.len() >= MEMO_CAPACITY && !self.known.contains_key(&key) {
            self.known.clear();
        }
        self.known.insert(key, measure);
    }
}

/// XXH3-128 over the model and each message's role and texts: the same fields the measure
/// reads. 0xFF ends a field and 0xFE a message; neither byte occurs in UTF-8, so two different
/// prompts never hash the same bytes (which message is the last, the one the prefix leaves out,
/// follows from the message ends).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct PromptKey(u128);

impl PromptKey {
    pub(crate) fn of<'a>(model: &str, turns: impl Iterator<Item = Turn<'a>>) -> PromptKey {
        let mut h = Xxh3::new();
        h.update(model.as_bytes());
        h.update(&[0xff]);
        for turn in turns {
            h.update(turn.role.as_bytes());
            h.update(&[0xff]);
            for_each_text(turn.content, &mut |text| {
                h.update(text.as_bytes());
                h.update(&[0xff]);
            });
            h.update(&[0xfe]);
        }
        PromptKey(h.digest128())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// As the server uses the memo: look the prompt up, measure and remember it if it is new.
    fn memo_measure(memo: &mut MeasureMemo, model: &str, messages: &[(&str, Value)]) -> PromptMeasure {
        let turns = || messages.iter().map(|(role, content)| Turn { role, content });
        let key = PromptKey::of(model, turns());
        memo.get(key).unwrap_or_else(|| {
            let measure = PromptMeasure::of(model, turns());
            memo.remember(key, measure);
            measure
        })
    }

    fn direct(model: &str, messages: &[(&str, Value)]) -> PromptMeasure {
        PromptMeasure::of(model, messages.iter().map(|(role, content)| Turn { role, content }))
    }

    #[test]
    fn a_remembered_measure_is_the_one_computed() {
        let mut memo = MeasureMemo::default();
        let a = vec![("system", json!("be brief")), ("user", json!("hi"))];
        let first = memo_measure(&mut memo, "m", &a);
        assert_eq!(first, direct("m", &a));
        assert_eq!(memo_measure(&mut memo, "m", &a), first);
        assert_eq!(memo.known.len(), 1);
    }

    #[test]
    fn prompts_that_differ_anywhere_are_measured_apart() {
        let mut memo = MeasureMemo::default();
        let cases = [
            ("m", vec![("system", json!("ab")), ("user", json!("c"))]),
            ("m", vec![("system", json!("a")), ("user", json!("bc"))]),
            // The same fields in the same order, the boundary between messages moved (the
            // prefix leaves out a different last message).
            (
                "m",
                vec![("user", json!([{"text": "x"}, {"text": "user"}, {"text": "y"}]))],
            ),
            ("m", vec![("user", json!("x")), ("user", json!("y"))]),
            (
                "m",
                vec![(
                    "system",
                    json!([{"type": "text", "text": "ab"}, {"type": "text", "text": "c"}]),
                )],
            ),
            ("m", vec![("system", json!("abc"))]),
            ("n", vec![("system", json!("ab")), ("user", json!("c"))]),
            ("m", vec![("user", json!("ab")), ("user", json!("c"))]),
        ];
        for (model, messages) in &cases {
            assert_eq!(memo_measure(&mut memo, model, messages), direct(model, messages));
        }
        assert_eq!(memo.known.len(), cases.len(), "every case has its own key");
        // Asked again, each case gets its own measure back.
        for (model, messages) in &cases {
            assert_eq!(memo_measure(&mut memo, model, messages), direct(model, messages));
        }
    }

    #[test]
    fn a_full_memo_starts_over() {
        let mut memo = MeasureMemo::default();
        for i in 0..MEMO_CAPACITY + 1 {
            let messages = [("user", json!(format!("prompt {i}")))];
            memo_measure(&mut memo, "m", &messages);
        }
        assert_eq!(memo.known.len(), 1);
    }
}
