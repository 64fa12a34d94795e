//! Provider prompt caching (the other cache): LiteLLM's `cache_control_injection_points` mark
//! chosen messages with Anthropic's `cache_control`, so a long, stable system prompt is read from
//! the provider's cache on later requests at a tenth of the input price.

use serde_json::{Map, Value, json};
use tollgate_core::config::InjectionPoint;

/// Adds `cache_control: {type: ephemeral}` to the last content block of each message an
/// injection point selects; a string content becomes one text block so it can carry the marker.
pub fn inject(body: &mut Map<String, Value>, points: &[InjectionPoint]) {
    let Some(Value::Array(messages)) = body.get_mut("messages") else {
        return;
    };
    let n = messages.len() as i64;
    for (i, m) in messages.iter_mut().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or_default().to_string();
        let selected = points.iter().any(|p| {
            p.role.as_deref() == Some(role.as_str())
                || p.index.is_some_and(|ix| (if ix < 0 { n + ix } else { ix }) == i as i64)
        });
        if !selected {
            continue;
        }
        let marker = json!({"type": "ephemeral"});
        match m.get_mut("content") {
            Some(Value::String(text)) => {
                let block = json!([{"type": "text", "text": text.clone(), "cache_control": marker}]);
                m["content"] = block;
            }
            Some(Value::Array(blocks)) => {
                if let Some(Value::Object(last)) = blocks.last_mut() {
                    last.insert("cache_control".into(), marker);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_messages_and_indexed_messages_get_the_marker() {
        let mut body: Map<String, Value> = serde_json::from_value(json!({"messages": [
            {"role": "system", "content": "long stable instructions"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "user", "content": "latest"},
        ]}))
        .unwrap();
        inject(
            &mut body,
            &[
                InjectionPoint {
                    role: Some("system".into()),
                    index: None,
                },
                InjectionPoint {
                    role: None,
                    index: Some(1),
                },
            ],
        );
        let m = &body["messages"];
        assert_eq!(m[0]["content"][0]["text"], "long stable instructions");
        assert_eq!(m[0]["content"][0]["cache_control"]["type"], "ephemeral");
        assert!(m[1]["content"][0].get("cache_control").is_none());
        assert_eq!(m[1]["content"][1]["cache_control"]["type"], "ephemeral");
        assert_eq!(m[2]["content"], "latest", "unselected messages are untouched");
        let mut last: Map<String, Value> = serde_json::from_value(
            json!({"messages": [{"role": "user", "content": "x"}, {"role": "user", "content": "y"}]}),
        )
        .unwrap();
        inject(
            &mut last,
            &[InjectionPoint {
                role: None,
                index: Some(-1),
            }],
        );
        assert_eq!(last["messages"][1]["content"][0]["cache_control"]["type"], "ephemeral");
        assert_eq!(last["messages"][0]["content"], "x");
    }
}
