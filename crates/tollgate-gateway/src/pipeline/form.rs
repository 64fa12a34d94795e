//! Multipart uploads (`/v1/audio/transcriptions`) inside a pipeline that holds bodies as JSON:
//! the form is read into a JSON object — text fields as strings (a repeated name, such as
//! `timestamp_granularities[]`, as a list), files as `{"filename", "content_type", "base64"}` —
//! so every stage (model, access, limits, the route's `model` rewrite) works on it unchanged,
//! and written back as multipart for the deployment.

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use memchr::memmem;
use serde_json::{Map, Value, json};
use tollgate_core::{ErrorKind, GatewayError};

use crate::body::RequestBody;

/// The key that marks a field as an uploaded file.
const FILE_DATA: &str = "base64";

fn invalid(message: impl Into<String>) -> GatewayError {
    GatewayError::new(ErrorKind::InvalidRequest, message).with_code("invalid_multipart")
}

/// The boundary of a `multipart/form-data` content type.
fn boundary(headers: &HeaderMap) -> Result<String, GatewayError> {
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !ct.trim_start().to_ascii_lowercase().starts_with("multipart/form-data") {
        return Err(invalid(format!(
            "this endpoint takes multipart/form-data (a `file` and a `model`), not `{ct}`"
        )));
    }
    ct.split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
        .filter(|b| !b.is_empty())
        .ok_or_else(|| invalid("multipart/form-data without a boundary"))
}

/// A `name="value"` parameter of a Content-Disposition header.
fn disposition_param(header: &str, name: &str) -> Option<String> {
    let lower = header.to_ascii_lowercase();
    let needle = format!("{name}=\"");
    let mut from = 0;
    // `filename=` must not be found inside `name=`'s search and the other way round.
    while let Some(i) = lower[from..].find(&needle) {
        let at = from + i;
        let before = lower[..at].chars().last();
        if matches!(before, Some(' ') | Some(';')) {
            let start = at + needle.len();
            let end = header[start..].find('"')? + start;
            return Some(header[start..end].to_string());
        }
        from = at + needle.len();
    }
    None
}

/// Reads a multipart body into the JSON object the pipeline carries.
pub(crate) fn read(bytes: &[u8], headers: &HeaderMap) -> Result<RequestBody, GatewayError> {
    let boundary = boundary(headers)?;
    let delimiter = format!("--{boundary}");
    let next_part = format!("\r\n--{boundary}");
    let mut map = Map::new();
    let mut at = memmem::find(bytes, delimiter.as_bytes())
        .ok_or_else(|| invalid("the multipart body holds no part"))?
        + delimiter.len();
    loop {
        let rest = &bytes[at..];
        if rest.starts_with(b"--") {
            break;
        }
        if !rest.starts_with(b"\r\n") {
            return Err(invalid("a multipart delimiter is not followed by a line break"));
        }
        let part_start = at + 2;
        let rest = &bytes[part_start..];
        let head_end =
            memmem::find(rest, b"\r\n\r\n").ok_or_else(|| invalid("a multipart part has no end to its headers"))?;
        let head = String::from_utf8_lossy(&rest[..head_end]);
        let content = &rest[head_end + 4..];
        let end = memmem::find(content, next_part.as_bytes())
            .ok_or_else(|| invalid("the multipart body ends before its closing delimiter"))?;
        let data = &content[..end];
        let mut name = None;
        let mut filename = None;
        let mut content_type = None;
        for line in head.split("\r\n") {
            let Some((k, v)) = line.split_once(':') else { continue };
            if k.trim().eq_ignore_ascii_case("content-disposition") {
                name = disposition_param(v, "name");
                filename = disposition_param(v, "filename");
            } else if k.trim().eq_ignore_ascii_case("content-type") {
                content_type = Some(v.trim().to_string());
            }
        }
        let name = name.ok_or_else(|| invalid("a multipart part has no name"))?;
        let value = match filename {
            Some(filename) => json!({
                "filename": filename,
                "content_type": content_type.unwrap_or_else(|| "application/octet-stream".into()),
                FILE_DATA: STANDARD.encode(data),
            }),
            None => Value::String(String::from_utf8_lossy(data).into_owned()),
        };
        match map.get_mut(&name) {
            Some(Value::Array(items)) => items.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
            None => {
                map.insert(name, value);
            }
        }
        // Past the part's content and the line break before its delimiter.
        at = part_start + head_end + 4 + end + next_part.len();
    }
    Ok(RequestBody::from_map(&map))
}

/// Writes the pipeline's JSON object as a multipart body: `(content type, bytes)`.
pub(crate) fn write(body: &RequestBody) -> Result<(String, Vec<u8>), GatewayError> {
    let boundary = format!("tollgate-{}", uuid::Uuid::new_v4().simple());
    let mut out = Vec::new();
    for (name, value) in body.to_map() {
        let values = match value {
            Value::Array(items) => items,
            v => vec![v],
        };
        for v in values {
            out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            let name = name.replace('"', "%22");
            match &v {
                Value::Object(file) if file.contains_key(FILE_DATA) => {
                    let text = |k: &str| file.get(k).and_then(Value::as_str).unwrap_or_default();
                    let data = STANDARD
                        .decode(text(FILE_DATA))
                        .map_err(|e| invalid(format!("file `{name}` cannot be decoded: {e}")))?;
                    out.extend_from_slice(
                        format!(
                            "Content-Disposition: form-data; name=\"{name}\"; filename=\"{}\"\r\nContent-Type: {}\r\n\r\n",
                            text("filename").replace('"', "%22"),
                            text("content_type")
                        )
                        .as_bytes(),
                    );
                    out.extend_from_slice(&data);
                }
                other => {
                    out.extend_from_slice(
                        format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
                    );
                    match other {
                        Value::String(s) => out.extend_from_slice(s.as_bytes()),
                        v => out.extend_from_slice(v.to_string().as_bytes()),
                    }
                }
            }
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Ok((format!("multipart/form-data; boundary={boundary}"), out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(boundary: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "content-type",
            format!("multipart/form-data; boundary={boundary}").parse().unwrap(),
        );
        h
    }

    #[test]
    fn a_form_survives_the_round_trip_with_its_model_rewritten() {
        let body = b"--XX\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper\r\n\
--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFF\x00\x01\r\n--XX\r\n\
Content-Disposition: form-data; name=\"g[]\"\r\n\r\nword\r\n--XX\r\nContent-Disposition: form-data; name=\"g[]\"\r\n\r\nsegment\r\n--XX--\r\n";
        let mut form = read(body, &headers("XX")).unwrap();
        assert_eq!(form.get::<String>("model").as_deref(), Some("whisper"));
        assert_eq!(form.get::<Vec<String>>("g[]").unwrap(), ["word", "segment"]);
        form.set("model", &"whisper-1");
        let (ct, bytes) = write(&form).unwrap();
        let b = ct.split_once("boundary=").unwrap().1.to_string();
        let again = read(&bytes, &headers(&b)).unwrap();
        assert_eq!(again.get::<String>("model").as_deref(), Some("whisper-1"));
        let file: Value = again.get("file").unwrap();
        assert_eq!(file["filename"], "a.wav");
        assert_eq!(
            STANDARD.decode(file["base64"].as_str().unwrap()).unwrap(),
            b"RIFF\x00\x01"
        );
        assert_eq!(again.get::<Vec<String>>("g[]").unwrap(), ["word", "segment"]);
    }

    #[test]
    fn broken_forms_are_the_clients_400() {
        assert!(read(b"{}", &HeaderMap::new()).is_err());
        assert!(read(b"--XX\r\nno headers end", &headers("XX")).is_err());
        assert!(
            read(
                b"--XX\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nunterminated",
                &headers("XX")
            )
            .is_err()
        );
    }
}
