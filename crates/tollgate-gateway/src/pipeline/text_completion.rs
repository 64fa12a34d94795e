//! Legacy text completions (`/v1/completions`) answered by chat models: `prompt` becomes one
//! user message, and the chat answer (whole or chunk by chunk) is written back in the
//! text-completion shape (`object: "text_completion"`, `choices[].text`). Deployments that speak
//! `/completions` themselves (`text-completion-openai/`) get the request as it is.

use serde_json::{Map, Value, json};
use tollgate_core::{ErrorKind, GatewayError};

use crate::body::RequestBody;

/// Text-completion fields chat has no place for (`logprobs` is a count here, a flag in chat).
const NOT_IN_CHAT: [&str; 5] = ["prompt", "echo", "suffix", "best_of", "logprobs"];

fn invalid(message: &str) -> GatewayError {
    GatewayError::new(ErrorKind::InvalidRequest, message).with_param("prompt")
}

/// The chat request that stands for a text-completion request.
pub(crate) fn to_chat(body: &RequestBody) -> Result<RequestBody, GatewayError> {
    let prompt = match body.get::<Value>("prompt") {
        Some(Value::String(s)) => s,
        Some(Value::Array(items)) if items.len() == 1 && items[0].is_string() => {
            items[0].as_str().unwrap_or_default().to_string()
        }
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            return Err(invalid(
                "a chat model answers one prompt per request: send the prompts of this list one by one",
            ));
        }
        _ => {
            return Err(invalid(
                "`prompt` must be a string (token ids can only go to a text-completion model)",
            ));
        }
    };
    let mut map: Map<String, Value> = body.to_map();
    for f in NOT_IN_CHAT {
        map.remove(f);
    }
    map.insert("messages".into(), json!([{"role": "user", "content": prompt}]));
    Ok(RequestBody::from_map(&map))
}

/// One chat choice (whole `message` or streamed `delta`) as a text-completion choice.
fn choice(c: &Value, part: &str) -> Value {
    json!({
        "text": c.pointer(&format!("/{part}/content")).and_then(Value::as_str).unwrap_or_default(),
        "index": c.get("index").cloned().unwrap_or(json!(0)),
        "logprobs": Value::Null,
        "finish_reason": c.get("finish_reason").cloned().unwrap_or(Value::Null),
    })
}

/// A `chat.completion` (or one of its chunks) in the text-completion shape; usage, id, model and
/// creation time kept.
fn reshape(chat: &Value, part: &str) -> Value {
    let choices: Vec<Value> = chat
        .get("choices")
        .and_then(Value::as_array)
        .map(|cs| cs.iter().map(|c| choice(c, part)).collect())
        .unwrap_or_default();
    let mut out = json!({
        "id": chat.get("id").cloned().unwrap_or(Value::Null),
        "object": "text_completion",
        "created": chat.get("created").cloned().unwrap_or(json!(0)),
        "model": chat.get("model").cloned().unwrap_or(Value::Null),
        "choices": choices,
    });
    for k in ["usage", "system_fingerprint"] {
        if let Some(v) = chat.get(k).filter(|v| !v.is_null()) {
            out[k] = v.clone();
        }
    }
    out
}

/// A whole chat answer (bytes of a `chat.completion`) as a text completion.
pub(crate) fn from_chat(bytes: &[u8]) -> Result<Vec<u8>, GatewayError> {
    let chat: Value = serde_json::from_slice(bytes).map_err(|e| {
        GatewayError::new(ErrorKind::Upstream, format!("the chat answer is not JSON: {e}"))
            .with_code("upstream_bad_response")
    })?;
    Ok(serde_json::to_vec(&reshape(&chat, "message")).unwrap_or_default())
}

/// One streamed chat chunk as a text-completion chunk; anything else (an error event) as it is.
pub(crate) fn chunk_from_chat(data: String) -> String {
    match serde_json::from_str::<Value>(&data) {
        Ok(chunk) if chunk.get("choices").is_some() => reshape(&chunk, "delta").to_string(),
        _ => data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prompt_becomes_one_user_message_without_completion_only_fields() {
        let body = RequestBody::parse(br#"{"model":"m","prompt":"Say hi","echo":false,"max_tokens":5}"#).unwrap();
        let chat = to_chat(&body).unwrap().to_map();
        assert_eq!(chat["messages"], json!([{"role": "user", "content": "Say hi"}]));
        assert_eq!(chat["max_tokens"], 5);
        assert!(!chat.contains_key("prompt") && !chat.contains_key("echo"));
        let many = RequestBody::parse(br#"{"model":"m","prompt":["a","b"]}"#).unwrap();
        assert_eq!(to_chat(&many).unwrap_err().status, 400);
        let ids = RequestBody::parse(br#"{"model":"m","prompt":[1,2]}"#).unwrap();
        assert_eq!(to_chat(&ids).unwrap_err().status, 400);
    }

    #[test]
    fn chat_answers_and_chunks_take_the_text_completion_shape() {
        let chat = br#"{"id":"c1","object":"chat.completion","created":7,"model":"g","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;
        let out: Value = serde_json::from_slice(&from_chat(chat).unwrap()).unwrap();
        assert_eq!(out["object"], "text_completion");
        assert_eq!(out["choices"][0]["text"], "hi");
        assert_eq!(out["choices"][0]["finish_reason"], "stop");
        assert_eq!(out["usage"]["total_tokens"], 4);
        let chunk = chunk_from_chat(
            r#"{"id":"c1","object":"chat.completion.chunk","created":7,"model":"g","choices":[{"index":0,"delta":{"content":"h"},"finish_reason":null}]}"#.into(),
        );
        let chunk: Value = serde_json::from_str(&chunk).unwrap();
        assert_eq!(chunk["choices"][0]["text"], "h");
        assert_eq!(chunk_from_chat("[DONE]".into()), "[DONE]");
    }
}
