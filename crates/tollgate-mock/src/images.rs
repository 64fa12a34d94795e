//! Image generation: `n` images named by the prompt, as URLs (or a 1×1 PNG as `b64_json`).
//! `gpt-image-*` models report token usage as OpenAI's do; DALL·E models report none.

use serde::Deserialize;
use serde_json::{Value, json};

/// A 1×1 transparent PNG.
const PIXEL_PNG_B64: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

#[derive(Debug, Deserialize)]
pub(crate) struct ImageRequest {
    pub model: String,
    pub prompt: String,
    #[serde(default)]
    pub n: Option<u32>,
    #[serde(default)]
    pub response_format: Option<String>,
}

pub(crate) fn render(req: &ImageRequest, created: u64) -> Result<Vec<u8>, String> {
    let n = req.n.unwrap_or(1);
    if !(1..=10).contains(&n) {
        return Err("`n` must be between 1 and 10".into());
    }
    let data: Vec<Value> = (0..n)
        .map(|i| match req.response_format.as_deref() {
            Some("b64_json") => json!({"b64_json": PIXEL_PNG_B64, "revised_prompt": req.prompt}),
            _ => json!({"url": format!("https://mock.invalid/images/{i}.png"), "revised_prompt": req.prompt}),
        })
        .collect();
    let mut body = json!({"created": created, "data": data});
    if req.model.starts_with("gpt-image") {
        let input = (req.prompt.chars().count() as u64 / 4).max(1);
        let output = 272 * u64::from(n);
        body["usage"] = json!({
            "input_tokens": input,
            "output_tokens": output,
            "total_tokens": input + output,
            "input_tokens_details": {"text_tokens": input, "image_tokens": 0},
        });
    }
    serde_json::to_vec(&body).map_err(|e| e.to_string())
}
