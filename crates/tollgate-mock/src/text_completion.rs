//! Legacy text completions (`/completions`, `gpt-3.5-turbo-instruct`): the answer names the
//! prompt's first words, tokens count one per four characters, as chat's do.

use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Deserialize)]
pub(crate) struct CompletionRequest {
    pub model: String,
    pub prompt: Value,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub stream_options: Option<Value>,
}

fn tokens(s: &str) -> u64 {
    (s.chars().count() as u64 / 4).max(1)
}

/// The answer's text and usage.
fn answer(req: &CompletionRequest) -> Result<(String, Value), String> {
    let prompt = match &req.prompt {
        Value::String(s) => s.clone(),
        Value::Array(items) if items.iter().all(Value::is_string) && !items.is_empty() => {
            items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("\n")
        }
        _ => return Err("`prompt` must be a string or a list of strings".into()),
    };
    let first: Vec<&str> = prompt.split_whitespace().take(4).collect();
    let text = format!(" completed: {}", first.join(" "));
    let (p, c) = (tokens(&prompt), tokens(&text));
    Ok((
        text,
        json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}),
    ))
}

pub(crate) fn render(req: &CompletionRequest, created: u64) -> Result<Vec<u8>, String> {
    let (text, usage) = answer(req)?;
    let body = json!({
        "id": "cmpl-mock",
        "object": "text_completion",
        "created": created,
        "model": req.model,
        "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": "stop"}],
        "usage": usage,
    });
    serde_json::to_vec(&body).map_err(|e| e.to_string())
}

/// SSE frames: the text word by word, the finish, the usage chunk when asked, `[DONE]`.
pub(crate) fn render_stream(req: &CompletionRequest, created: u64) -> Result<Vec<String>, String> {
    let (text, usage) = answer(req)?;
    let chunk = |text: &str, finish: Value| {
        json!({"id": "cmpl-mock", "object": "text_completion", "created": created, "model": req.model,
               "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": finish}]})
        .to_string()
    };
    let mut frames: Vec<String> = text.split_inclusive(' ').map(|w| chunk(w, Value::Null)).collect();
    frames.push(chunk("", json!("stop")));
    let include_usage = req
        .stream_options
        .as_ref()
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if include_usage {
        frames.push(
            json!({"id": "cmpl-mock", "object": "text_completion", "created": created, "model": req.model,
                   "choices": [], "usage": usage})
            .to_string(),
        );
    }
    frames.push("[DONE]".into());
    Ok(frames)
}
