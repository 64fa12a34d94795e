//! Audio transcription from a multipart upload: the transcript names the file's size.
//! `gpt-4o-*transcribe` models report token usage, Whisper its duration (one second per 32 000
//! bytes, 16 kHz 16-bit mono), as OpenAI's do. `response_format: text` answers plain text.

use serde_json::json;

/// A text field's value in a multipart body (the mock reads forms crudely: names are unique).
fn field<'a>(body: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let marker = format!("name=\"{name}\"");
    let at = find(body, marker.as_bytes())? + marker.len();
    let start = at + find(&body[at..], b"\r\n\r\n")? + 4;
    let len = find(&body[start..], b"\r\n--")?;
    Some(&body[start..start + len])
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The model the form names, if any.
pub(crate) fn model(body: &[u8]) -> Option<String> {
    field(body, "model").map(|m| String::from_utf8_lossy(m).trim().to_string())
}

/// `(content type, body)`, or what is wrong with the form.
pub(crate) fn render(body: &[u8]) -> Result<(&'static str, Vec<u8>), String> {
    let model = model(body).ok_or("the form has no `model`")?;
    let file = field(body, "file").ok_or("the form has no `file`")?;
    let text = format!("mock transcript of {} bytes", file.len());
    let format = field(body, "response_format").map(|f| String::from_utf8_lossy(f).trim().to_string());
    if format.as_deref() == Some("text") {
        return Ok(("text/plain; charset=utf-8", text.into_bytes()));
    }
    let usage = if model.contains("transcribe") {
        let input = (file.len() as u64 / 100).max(1);
        let output = (text.len() as u64 / 4).max(1);
        json!({"type": "tokens", "input_tokens": input, "output_tokens": output, "total_tokens": input + output})
    } else {
        json!({"type": "duration", "seconds": (file.len() as u64 / 32_000).max(1)})
    };
    let out = json!({"text": text, "usage": usage});
    Ok(("application/json", serde_json::to_vec(&out).map_err(|e| e.to_string())?))
}
