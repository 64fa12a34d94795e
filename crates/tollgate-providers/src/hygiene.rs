//! Response hygiene, applied to every plain answer whichever provider gave it:
//!
//! - an assistant turn never comes back with neither content nor tool calls (`content: null`
//!   alone becomes `""`, which every provider accepts when the turn is sent back);
//! - tool calls a model wrote as text markup in its content (DeepSeek's
//!   `<｜tool▁call▁begin｜>name<｜tool▁sep｜>{…}<｜tool▁call▁end｜>`, its older
//!   `function<｜tool▁sep｜>name` + fenced JSON form, and Hermes/Qwen `<tool_call>{…}</tool_call>`)
//!   become structured `tool_calls`, and `finish_reason` becomes `tool_calls`. Markup whose
//!   arguments are not JSON is left alone rather than guessed at.

use serde_json::{Value, json};

/// DeepSeek writes these with full-width bars; some hosts convert them to ASCII.
const BARS: [char; 2] = ['｜', '|'];

struct Markup {
    name: String,
    arguments: String,
}

fn marker(bar: char, word: &str) -> String {
    format!("<{bar}{word}{bar}>")
}

/// DeepSeek markup: the text before the first call, the calls, the text after the last.
fn parse_deepseek(text: &str) -> Option<(String, Vec<Markup>)> {
    for bar in BARS {
        let begin = marker(bar, "tool▁call▁begin");
        if !text.contains(&begin) {
            continue;
        }
        let (sep, end) = (marker(bar, "tool▁sep"), marker(bar, "tool▁call▁end"));
        let (all_begin, all_end) = (marker(bar, "tool▁calls▁begin"), marker(bar, "tool▁calls▁end"));
        let start = text.find(&all_begin).or_else(|| text.find(&begin))?;
        let mut rest = &text[start..];
        let mut calls = Vec::new();
        while let Some(b) = rest.find(&begin) {
            let after = &rest[b + begin.len()..];
            let e = after.find(&end)?;
            let (head, body) = after[..e].split_once(&sep)?;
            let (name, args) = if head.trim() == "function" {
                let (name, args) = body.split_once('\n').unwrap_or((body, "{}"));
                (name.trim(), strip_fence(args))
            } else {
                (head.trim(), strip_fence(body))
            };
            serde_json::from_str::<Value>(args).ok().filter(Value::is_object)?;
            calls.push(Markup {
                name: name.to_string(),
                arguments: args.to_string(),
            });
            rest = &after[e + end.len()..];
        }
        let tail = rest.find(&all_end).map_or(rest, |i| &rest[i + all_end.len()..]);
        let kept = format!("{}{}", &text[..start], tail).trim().to_string();
        return (!calls.is_empty()).then_some((kept, calls));
    }
    None
}

fn strip_fence(s: &str) -> &str {
    let s = s.trim();
    let s = s.strip_prefix("```json").or_else(|| s.strip_prefix("```")).unwrap_or(s);
    s.strip_suffix("```").unwrap_or(s).trim()
}

/// Hermes/Qwen markup: `<tool_call>{"name": …, "arguments": {…}}</tool_call>`.
fn parse_hermes(text: &str) -> Option<(String, Vec<Markup>)> {
    const OPEN: &str = "<tool_call>";
    const CLOSE: &str = "</tool_call>";
    if !text.contains(OPEN) {
        return None;
    }
    let mut kept = String::new();
    let mut calls = Vec::new();
    let mut rest = text;
    while let Some(b) = rest.find(OPEN) {
        kept.push_str(&rest[..b]);
        let after = &rest[b + OPEN.len()..];
        let e = after.find(CLOSE)?;
        let v: Value = serde_json::from_str(after[..e].trim()).ok()?;
        let name = v.get("name")?.as_str()?.to_string();
        let arguments = match v.get("arguments").or_else(|| v.get("parameters")) {
            Some(Value::String(s)) => s.clone(),
            Some(a @ Value::Object(_)) => a.to_string(),
            _ => "{}".to_string(),
        };
        calls.push(Markup { name, arguments });
        rest = &after[e + CLOSE.len()..];
    }
    kept.push_str(rest);
    Some((kept.trim().to_string(), calls))
}

/// A stable id for a recovered call, so a replayed answer names its calls the same way.
fn markup_id(i: usize, m: &Markup) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in m.name.bytes().chain(m.arguments.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("call_{:012x}_{i}", h & 0xffff_ffff_ffff)
}

/// Repairs each choice of an OpenAI `chat.completion` in place.
/// Whether [`repair_response`] would change a message with this content (`None`: absent or
/// null; `Some(None)`: not a string) and, when `has_calls`, non-empty `tool_calls`.
pub fn message_needs_repair(content: Option<Option<&str>>, has_calls: bool) -> bool {
    if has_calls {
        return false;
    }
    match content {
        None => true,
        Some(None) => false,
        Some(Some(text)) => parse_deepseek(text).is_some() || parse_hermes(text).is_some(),
    }
}

pub fn repair_response(v: &mut Value) {
    let Some(choices) = v.get_mut("choices").and_then(Value::as_array_mut) else {
        return;
    };
    for choice in choices {
        let Some(message) = choice.get_mut("message").and_then(Value::as_object_mut) else {
            continue;
        };
        let has_calls = message
            .get("tool_calls")
            .and_then(Value::as_array)
            .is_some_and(|c| !c.is_empty());
        let mut recovered = false;
        if !has_calls
            && let Some(text) = message.get("content").and_then(Value::as_str)
            && let Some((kept, calls)) = parse_deepseek(text).or_else(|| parse_hermes(text))
        {
            let calls: Vec<Value> = calls
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    json!({"id": markup_id(i, m), "type": "function",
                           "function": {"name": m.name, "arguments": m.arguments}})
                })
                .collect();
            message.insert(
                "content".into(),
                if kept.is_empty() { Value::Null } else { kept.into() },
            );
            message.insert("tool_calls".into(), Value::Array(calls));
            recovered = true;
        }
        if !has_calls && !recovered && message.get("content").is_none_or(Value::is_null) {
            message.insert("content".into(), "".into());
        }
        if recovered && let Some(obj) = choice.as_object_mut() {
            obj.insert("finish_reason".into(), "tool_calls".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repaired(message: Value) -> Value {
        let mut v = json!({"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]});
        repair_response(&mut v);
        v["choices"][0].clone()
    }

    #[test]
    fn empty_turn_gets_empty_content() {
        let c = repaired(json!({"role": "assistant", "content": null, "reasoning_content": "hm"}));
        assert_eq!(c["message"]["content"], "");
        let c = repaired(json!({"role": "assistant", "content": null, "tool_calls": [{"id": "a"}]}));
        assert!(c["message"]["content"].is_null());
    }

    #[test]
    fn deepseek_markup_becomes_tool_calls() {
        let text = "Let me check.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{\"city\": \"Paris\"}<｜tool▁call▁end｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_time\n```json\n{\"tz\": \"CET\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>";
        let c = repaired(json!({"role": "assistant", "content": text}));
        assert_eq!(c["finish_reason"], "tool_calls");
        assert_eq!(c["message"]["content"], "Let me check.");
        let calls = c["message"]["tool_calls"].as_array().unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0]["function"]["name"], "get_weather");
        assert_eq!(calls[0]["function"]["arguments"], "{\"city\": \"Paris\"}");
        assert_eq!(calls[1]["function"]["name"], "get_time");
        assert_eq!(calls[1]["function"]["arguments"], "{\"tz\": \"CET\"}");
        assert!(calls[0]["id"].as_str().unwrap().starts_with("call_"));
    }

    #[test]
    fn hermes_markup_and_ascii_bars() {
        let c = repaired(json!({"role": "assistant",
            "content": "<tool_call>{\"name\": \"f\", \"arguments\": {\"x\": 1}}</tool_call>"}));
        assert_eq!(c["message"]["tool_calls"][0]["function"]["arguments"], "{\"x\":1}");
        assert!(c["message"]["content"].is_null());
        let c = repaired(json!({"role": "assistant",
            "content": "<|tool▁call▁begin|>f<|tool▁sep|>{}<|tool▁call▁end|>"}));
        assert_eq!(c["message"]["tool_calls"][0]["function"]["name"], "f");
    }

    #[test]
    fn broken_markup_is_left_alone() {
        let text = "<｜tool▁call▁begin｜>f<｜tool▁sep｜>{not json<｜tool▁call▁end｜>";
        let c = repaired(json!({"role": "assistant", "content": text}));
        assert_eq!(c["message"]["content"], text);
        assert!(c["message"].get("tool_calls").is_none());
        assert_eq!(c["finish_reason"], "stop");
    }
}
