//! The endpoints beside chat and embeddings, on the wire: where their requests go and how their
//! answers come back. Text completions go to `/completions` of a text-completion deployment or
//! to chat (`pipeline/text_completion.rs`); moderations, images and rerank pass the client's JSON
//! on; transcriptions pass its form on as multipart (`pipeline/form.rs`). Answers of the
//! passed-through endpoints are relayed as the deployment wrote them, their usage read where
//! they report one.

use http::Uri;
use serde_json::Value;
use tollgate_core::{ErrorKind, GatewayError, Usage};
use tollgate_providers::provider::Provider;
use tollgate_providers::usage::{ParsedUsage, parse_openai_usage};

use crate::body::RequestBody;
use crate::pipeline::endpoint::{Endpoint, Wire};
use crate::state::Deployment;
use crate::upstream_client::{Client, RequestBuilder, Segments, parse_uri};

/// Whether a text-completion request to `d` is sent as chat (and answered reshaped).
pub(crate) fn completes_as_chat(d: &Deployment) -> bool {
    d.route.provider != Provider::TextCompletionOpenAi
}

fn parse_url(url: &str) -> Result<Uri, GatewayError> {
    parse_uri(url).map_err(|e| GatewayError::new(ErrorKind::Internal, format!("bad upstream URL: {e}")))
}

/// The HTTP request of one call to `d` on `wire` (not chat or embeddings; before the
/// deployment's `extra_headers`).
pub(crate) fn request(
    http: &Client,
    d: &Deployment,
    wire: Wire,
    body: &RequestBody,
    stream: bool,
) -> Result<RequestBuilder, GatewayError> {
    if !wire.reaches(d.route.provider) {
        return Err(GatewayError::new(
            ErrorKind::InvalidRequest,
            format!(
                "model `{}` is served by `{}`, which this endpoint cannot reach",
                d.model_group, d.model
            ),
        )
        .with_code("endpoint_not_supported")
        .with_param("model"));
    }
    let (path, content_type, segments) = match wire {
        Wire::TextCompletion if completes_as_chat(d) => {
            let chat = crate::pipeline::text_completion::to_chat(body)?;
            return crate::upstream::chat_request(http, d, &chat, stream);
        }
        Wire::TextCompletion => ("completions", "application/json".to_string(), body.segments()),
        Wire::Json { path, .. } => (path, "application/json".to_string(), body.segments()),
        Wire::Form { path } => {
            let (ct, bytes) = crate::pipeline::form::write(body)?;
            let mut segments = Segments::new();
            segments.push(bytes.into());
            (path, ct, segments)
        }
        Wire::Chat | Wire::Embeddings | Wire::Messages => {
            return Err(GatewayError::new(
                ErrorKind::Internal,
                "chat, embeddings and messages are sent by the route stage",
            ));
        }
    };
    let req = http
        .post(parse_url(&d.route.sibling_url(path))?)
        .header("content-type", content_type)
        .segments(segments);
    Ok(d.authorize(req))
}

/// A whole answer as the client gets it.
pub(crate) struct Answer {
    pub body: Vec<u8>,
    /// `None` when the answer reports no tokens (moderations, Whisper, Cohere's search units):
    /// the record then has no cost and is flagged unpriced, never $0.
    pub usage: Option<ParsedUsage>,
    pub finish_reason: Option<String>,
    pub content_type: &'static str,
}

/// A plain answer from `d` to a request on `endpoint`, for the client.
pub(crate) fn relay(endpoint: Endpoint, d: &Deployment, bytes: &[u8], group: &str) -> Result<Answer, GatewayError> {
    let chat = |bytes: &[u8]| -> Result<Answer, GatewayError> {
        let r = crate::upstream::relay_plain(d, bytes, group)?;
        Ok(Answer {
            body: r.body,
            usage: Some(r.usage),
            finish_reason: r.finish_reason,
            content_type: "application/json",
        })
    };
    match endpoint.wire {
        Wire::Chat | Wire::Embeddings => chat(bytes),
        Wire::TextCompletion if completes_as_chat(d) => {
            let mut a = chat(bytes)?;
            a.body = crate::pipeline::text_completion::from_chat(&a.body)?;
            Ok(a)
        }
        // A text completion relays like a chat answer whose choices have no message.
        Wire::TextCompletion => chat(bytes),
        Wire::Json { .. } | Wire::Form { .. } => Ok(as_written(bytes)),
        Wire::Messages => {
            let (body, usage, finish_reason) = crate::pipeline::messages::relay(d, bytes, group)?;
            Ok(Answer {
                body,
                usage: Some(usage),
                finish_reason,
                content_type: "application/json",
            })
        }
    }
}

/// An answer relayed byte for byte; JSON is read for its usage, anything else (a transcript
/// asked for as `text`, `srt` or `vtt`) is text.
fn as_written(bytes: &[u8]) -> Answer {
    let parsed: Option<Value> = serde_json::from_slice(bytes).ok();
    Answer {
        body: bytes.to_vec(),
        usage: parsed.as_ref().and_then(reported_usage),
        finish_reason: None,
        content_type: if parsed.is_some() {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        },
    }
}

/// Tokens an answer reports, in whichever convention: OpenAI chat's `prompt_tokens`, the
/// images and audio APIs' `input_tokens`/`output_tokens`, or only `total_tokens` (Jina AI's
/// rerank, all input).
fn reported_usage(answer: &Value) -> Option<ParsedUsage> {
    let u = answer.get("usage").filter(|u| u.is_object())?;
    let n = |k: &str| u.get(k).and_then(Value::as_u64);
    if u.get("prompt_tokens").is_some() {
        return Some(parse_openai_usage(u));
    }
    let usage = match (n("input_tokens"), n("output_tokens"), n("total_tokens")) {
        (None, None, None) => return None,
        (None, None, Some(total)) => Usage {
            input: total,
            ..Default::default()
        },
        (input, output, _) => Usage {
            input: input.unwrap_or(0),
            output: output.unwrap_or(0),
            ..Default::default()
        },
    };
    Some(ParsedUsage {
        usage,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn usage_is_read_in_each_convention_and_absent_usage_stays_unknown() {
        let images =
            reported_usage(&json!({"usage": {"input_tokens": 10, "output_tokens": 4160, "total_tokens": 4170}}));
        assert_eq!(images.unwrap().usage.output, 4160);
        let jina = reported_usage(&json!({"usage": {"total_tokens": 37}}));
        assert_eq!(jina.unwrap().usage.input, 37);
        assert!(reported_usage(&json!({"results": [], "meta": {"billed_units": {"search_units": 1}}})).is_none());
        assert!(reported_usage(&json!({"text": "hi", "usage": {"type": "duration", "seconds": 3}})).is_none());
        let text = as_written(b"hello there");
        assert!(text.usage.is_none());
        assert!(text.content_type.starts_with("text/plain"));
    }
}
