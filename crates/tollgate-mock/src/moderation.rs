//! Moderations: an input is flagged for violence when it mentions `violence` or `kill`, so
//! tests can see both answers.

use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Deserialize)]
pub(crate) struct ModerationRequest {
    #[serde(default = "default_model")]
    pub model: String,
    pub input: Value,
}

fn default_model() -> String {
    "omni-moderation-latest".into()
}

pub(crate) fn render(req: &ModerationRequest) -> Result<Vec<u8>, String> {
    let inputs: Vec<String> = match &req.input {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => s.clone(),
                other => other
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            })
            .collect(),
        _ => return Err("`input` must be a string or a list".into()),
    };
    let results: Vec<Value> = inputs
        .iter()
        .map(|text| {
            let lower = text.to_lowercase();
            let violent = lower.contains("violence") || lower.contains("kill");
            let score = if violent { 0.91 } else { 0.01 };
            json!({
                "flagged": violent,
                "categories": {"violence": violent, "harassment": false, "hate": false, "self-harm": false, "sexual": false},
                "category_scores": {"violence": score, "harassment": 0.0, "hate": 0.0, "self-harm": 0.0, "sexual": 0.0},
            })
        })
        .collect();
    serde_json::to_vec(&json!({"id": "modr-mock", "model": req.model, "results": results})).map_err(|e| e.to_string())
}
