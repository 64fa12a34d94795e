//! Role turns for the native formats (Anthropic, Gemini), which both require roles to alternate.

use serde_json::{Map, Value};

/// Appends items to the last turn when it has the same role, else starts a turn. Both native
/// formats require alternating roles, so consecutive OpenAI messages of one role (a tool result
/// after another, a system note) become one turn; `field` is `content` (Anthropic) or `parts`
/// (Gemini).
pub(crate) fn push_turn(turns: &mut Vec<Value>, role: &str, field: &str, items: Vec<Value>) {
    if items.is_empty() {
        return;
    }
    if let Some(last) = turns.last_mut()
        && last.get("role").and_then(Value::as_str) == Some(role)
        && let Some(Value::Array(existing)) = last.get_mut(field)
    {
        existing.extend(items);
        return;
    }
    let mut turn = Map::new();
    turn.insert("role".into(), Value::String(role.to_string()));
    turn.insert(field.into(), Value::Array(items));
    turns.push(Value::Object(turn));
}
