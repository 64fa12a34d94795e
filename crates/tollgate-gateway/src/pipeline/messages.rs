//! Anthropic's Messages API (`/v1/messages`, what Claude Code speaks) on the wire. An Anthropic
//! deployment gets the client's body as it came (`model` rewritten) and its answer and events
//! are relayed as written, so prompt caching markers and thinking signatures survive; any other
//! deployment gets the request translated to chat (`tollgate_providers::messages`), and its
//! answer and chunks are written back as Anthropic's message and event sequence. Usage is read
//! either way through the chat view of the answer, so records are priced by the same buckets.
//! Errors leave in Anthropic's shape.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use serde_json::Value;
use tollgate_core::{ErrorKind, GatewayError};
use tollgate_providers::anthropic::{self, API_VERSION};
use tollgate_providers::messages as wire;
use tollgate_providers::messages_stream::EventWriter;
use tollgate_providers::provider::WireFormat;
use tollgate_providers::usage::ParsedUsage;

use crate::body::RequestBody;
use crate::pipeline::egress::Egress;
use crate::state::Deployment;
use crate::upstream_client::{Client, RequestBuilder, parse_uri};

/// Client headers an Anthropic deployment is sent along with a passed-through request.
const FORWARDED: [&str; 2] = ["anthropic-version", "anthropic-beta"];

/// Whether a Messages request to `d` is passed through (else translated to chat).
pub(crate) fn passes_through(d: &Deployment) -> bool {
    d.route.provider.wire_format() == WireFormat::Anthropic
}

/// The client's `anthropic-version` and `anthropic-beta`, for a passed-through request.
pub(crate) fn forwarded_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    FORWARDED
        .iter()
        .filter_map(|k| Some((k.to_string(), headers.get(*k)?.to_str().ok()?.to_string())))
        .collect()
}

fn translate_error(d: &Deployment, e: tollgate_providers::TranslateError) -> GatewayError {
    GatewayError::new(
        ErrorKind::InvalidRequest,
        format!("cannot send this request to {}: {e}", d.model),
    )
}

/// The HTTP request of one Messages call to `d` (before the deployment's `extra_headers`).
pub(crate) fn request(
    http: &Client,
    d: &Deployment,
    body: &RequestBody,
    stream: bool,
    forwarded: &[(String, String)],
) -> Result<RequestBuilder, GatewayError> {
    if !passes_through(d) {
        let (chat, dropped) = wire::to_chat(&body.to_map()).map_err(|e| translate_error(d, e))?;
        if !dropped.is_empty() {
            tracing::debug!(model = %d.model, ?dropped, "Messages fields with no chat equivalent were left out");
        }
        return crate::upstream::chat_request(http, d, &RequestBody::from_map(&chat), stream);
    }
    let url = parse_uri(&d.route.chat_url)
        .map_err(|e| GatewayError::new(ErrorKind::Internal, format!("bad upstream URL: {e}")))?;
    let mut req = http
        .post(url)
        .header("content-type", "application/json")
        .segments(body.segments());
    if !forwarded.iter().any(|(k, _)| k == "anthropic-version") {
        req = req.header("anthropic-version", API_VERSION);
    }
    for (k, v) in forwarded {
        req = req.header(k, v);
    }
    if let Some(k) = &d.api_key {
        req = req.header("x-api-key", k.expose());
    }
    Ok(req)
}

/// A whole answer from `d`, for the client: its body in Anthropic's shape, its usage and its
/// finish reason (OpenAI's word, as records keep it).
pub(crate) fn relay(
    d: &Deployment,
    bytes: &[u8],
    group: &str,
) -> Result<(Vec<u8>, ParsedUsage, Option<String>), GatewayError> {
    if passes_through(d) {
        // Read through the chat view only for its usage (thinking split out) and finish reason.
        let (chat, usage) = anthropic::translate_response(bytes, group, 0).map_err(|m| {
            GatewayError::new(
                ErrorKind::Upstream,
                format!("anthropic answered with something tollgate cannot read: {m}"),
            )
            .with_code("upstream_bad_response")
        })?;
        return Ok((bytes.to_vec(), usage, finish_of(&chat)));
    }
    let relayed = crate::upstream::relay_plain(d, bytes, group)?;
    let chat: Value = serde_json::from_slice(&relayed.body).unwrap_or(Value::Null);
    let message = wire::from_chat(&chat, &relayed.usage.usage);
    Ok((
        serde_json::to_vec(&message).unwrap_or_default(),
        relayed.usage,
        relayed.finish_reason,
    ))
}

fn finish_of(chat: &Value) -> Option<String> {
    chat.pointer("/choices/0/finish_reason")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// One SSE frame with an event name, as Anthropic writes them.
fn frame(event: &str, data: &str) -> Bytes {
    let mut s = String::with_capacity(data.len() + event.len() + 16);
    if event != "message" && !event.is_empty() {
        s.push_str("event: ");
        s.push_str(event);
        s.push('\n');
    }
    s.push_str("data: ");
    s.push_str(data);
    s.push_str("\n\n");
    Bytes::from(s)
}

/// How a Messages stream reaches the client.
pub(crate) enum MessagesEgress {
    /// An Anthropic deployment's events, relayed as they came (the OpenAI chunks the stage reads
    /// them as are only for the record). `error_relayed`: the deployment's own `error` event
    /// went out, whose type (`overloaded_error`, …) clients act on; the gateway adds none.
    Relay { error_relayed: bool },
    /// OpenAI chunks written as Anthropic's events.
    Write(EventWriter),
}

impl MessagesEgress {
    pub(crate) fn for_deployment(d: &Deployment, group: &str) -> Self {
        if passes_through(d) {
            MessagesEgress::Relay { error_relayed: false }
        } else {
            MessagesEgress::Write(EventWriter::new(group))
        }
    }
}

impl MessagesEgress {
    /// For a stream replayed from the cache: its stored chunks are OpenAI's, whichever
    /// deployment first answered.
    pub(crate) fn replaying(group: &str) -> Self {
        MessagesEgress::Write(EventWriter::new(group))
    }
}

impl Egress for MessagesEgress {
    fn upstream(&mut self, event: &str, data: &str) -> Option<Bytes> {
        match self {
            MessagesEgress::Relay { error_relayed } => {
                *error_relayed |= event == "error";
                Some(frame(event, data))
            }
            MessagesEgress::Write(_) => None,
        }
    }

    fn chunk(&mut self, data: &str) -> Option<Bytes> {
        let MessagesEgress::Write(w) = self else {
            return None;
        };
        let frames: Vec<u8> = w
            .on_chunk(data)
            .into_iter()
            .flat_map(|(event, v)| frame(event, &v.to_string()).to_vec())
            .collect();
        (!frames.is_empty()).then(|| Bytes::from(frames))
    }

    fn error(&mut self, e: &GatewayError) -> Bytes {
        match self {
            MessagesEgress::Relay { error_relayed: true } => Bytes::new(),
            _ => frame("error", &wire::error_body(e.status, &e.message).to_string()),
        }
    }
}

/// A Messages request to a workflow: its body as the chat request the workflow's steps take.
pub(crate) fn workflow_body(body: &RequestBody) -> Result<serde_json::Map<String, Value>, GatewayError> {
    wire::to_chat(&body.to_map())
        .map(|(chat, _)| chat)
        .map_err(|e| GatewayError::new(ErrorKind::InvalidRequest, e.to_string()))
}

/// A workflow's answer (a `chat.completion`, or its chunks as SSE) as the Messages API gives
/// it: an Anthropic message, or Anthropic's event sequence; errors are left to
/// [`in_anthropic_shape`].
pub(crate) async fn workflow_answer(resp: Response, group: &str) -> Response {
    if !resp.status().is_success() {
        return resp;
    }
    let streamed = crate::edge::is_event_stream(&resp);
    let (parts, body) = resp.into_parts();
    if !streamed {
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
        let chat: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let usage = chat
            .get("usage")
            .map(|u| tollgate_providers::usage::parse_openai_usage(u).usage)
            .unwrap_or_default();
        let out = serde_json::to_vec(&wire::from_chat(&chat, &usage)).unwrap_or_default();
        let mut resp = Response::from_parts(parts, Body::from(out));
        resp.headers_mut().remove("content-length");
        return resp;
    }
    let mut egress = MessagesEgress::replaying(group);
    let mut events = sse_parse::EventStream::new(body.into_data_stream());
    let anthropic = async_stream::stream! {
        use futures::StreamExt;
        while let Some(ev) = events.next().await {
            let out = match ev {
                Err(e) => Some(egress.error(&GatewayError::new(ErrorKind::Upstream, format!("the workflow's stream broke: {e}")))),
                Ok(ev) => match serde_json::from_str::<Value>(&ev.data) {
                    // The workflow's own error event (OpenAI's shape).
                    Ok(v) if v.get("error").is_some() => {
                        let status = v.pointer("/error/code").and_then(Value::as_str).and_then(|c| c.parse().ok()).unwrap_or(502);
                        let message = v.pointer("/error/message").and_then(Value::as_str).unwrap_or("the workflow failed");
                        Some(egress.error(&GatewayError::new(ErrorKind::Upstream, message).with_status(status)))
                    }
                    _ => egress.chunk(&ev.data),
                },
            };
            if let Some(b) = out {
                yield Ok::<Bytes, std::io::Error>(b);
            }
        }
    };
    let mut resp = Response::from_parts(parts, Body::from_stream(anthropic));
    resp.headers_mut().remove("content-length");
    resp
}

/// Bodies of error answers are small; anything larger is not one of the gateway's errors.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// An answer of the pipeline as the Messages API gives it: an error (OpenAI's shape, as every
/// stage writes it) rewritten in Anthropic's (`{"type":"error","error":{"type","message"}}`),
/// with its status and headers kept; anything else as it is.
pub(crate) async fn in_anthropic_shape(resp: Response) -> Response {
    let status = resp.status();
    if status.is_success() {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_ERROR_BODY).await.unwrap_or_default();
    let message = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v.pointer("/error/message").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
    let out = wire::error_body(status.as_u16(), &message).to_string();
    parts
        .headers
        .insert("content-type", HeaderValue::from_static("application/json"));
    parts.headers.remove("content-length");
    Response::from_parts(parts, Body::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;

    #[tokio::test]
    async fn errors_take_anthropics_shape_and_keep_status_and_headers() {
        let e = GatewayError::new(ErrorKind::RateLimited, "slow down").with_retry_after(3);
        let resp = in_anthropic_shape(crate::edge::ApiError(e).into_response()).await;
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()["retry-after"], "3");
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16).await.unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})
        );
        let ok = in_anthropic_shape((StatusCode::OK, "fine").into_response()).await;
        assert_eq!(ok.status(), StatusCode::OK);
    }

    #[test]
    fn frames_carry_their_event_name() {
        assert_eq!(&frame("ping", "{}")[..], b"event: ping\ndata: {}\n\n");
        assert_eq!(&frame("message", "{}")[..], b"data: {}\n\n");
        let e = GatewayError::new(ErrorKind::Upstream, "broke").with_status(502);
        let mut relay = MessagesEgress::Relay { error_relayed: false };
        let b = relay.error(&e);
        let data: Value = serde_json::from_slice(b.strip_prefix(b"event: error\ndata: ").unwrap()).unwrap();
        assert_eq!(
            data,
            serde_json::json!({"type": "error", "error": {"type": "api_error", "message": "broke"}})
        );
        // An upstream's own error event is relayed as it is, and the gateway adds none.
        let own = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(relay.upstream("error", own).unwrap(), frame("error", own));
        assert!(relay.error(&e).is_empty());
    }
}
