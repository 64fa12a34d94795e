//! The provider side of a chat call, as the pipeline sees it: the upstream request for a
//! deployment (translated to its wire format by `tollgate_providers::translate`), its plain
//! answer read back as OpenAI's, and max_tokens hygiene.
//!
//! The route stage (`pipeline/route.rs`) and the plain responder call these; the translation
//! itself lives, pure and golden-tested, in `tollgate-providers`.

use axum::http::{HeaderMap, HeaderValue};
use bytestring::ByteString;
use serde_json::Value;
use tollgate_core::{ErrorKind, GatewayError};
use tollgate_providers::context_window::{Clamp, clamp_limit, estimate_input_tokens_raw};
use tollgate_providers::openai::{self, Relayed};
use tollgate_providers::provider::{Provider, WireFormat};
use tollgate_providers::translate::{self, TranslateError, UpstreamRequest};
use tollgate_providers::usage::ParsedUsage;

use crate::body::RequestBody;
use crate::state::Deployment;
use crate::upstream_client::{Client, RequestBuilder, Segments};

/// The response header that says a request's max_tokens was clamped: `<original>-><new>`.
pub const CLAMPED_HEADER: &str = "x-tollgate-max-tokens-clamped";

const MAX_FIELDS: [&str; 2] = ["max_completion_tokens", "max_tokens"];

/// max_tokens hygiene across the attempts of one request: the client's values are put back
/// before each deployment's clamp, so a fallback with a larger window is not held to a smaller
/// one's limit.
#[derive(Debug, Default)]
pub struct MaxTokens {
    requested: Option<[Option<ByteString>; 2]>,
    pub clamp: Option<Clamp>,
}

impl MaxTokens {
    /// Clamps `body`'s max tokens to fit deployment `d` (estimated input + max tokens within its
    /// context window, max tokens within its output limit).
    pub fn fit(&mut self, body: &mut RequestBody, d: &Deployment) {
        match &self.requested {
            None => self.requested = Some(MAX_FIELDS.map(|f| body.field(f).cloned())),
            Some(requested) => {
                for (f, v) in MAX_FIELDS.iter().zip(requested) {
                    match v {
                        Some(v) => body.set_raw(f, v.clone()),
                        None => {
                            body.remove(f);
                        }
                    };
                }
            }
        }
        self.clamp = clamp(body, d.max_input_tokens, d.max_output_tokens);
        if let Some(c) = self.clamp {
            tracing::info!(
                model = %d.model,
                field = c.field,
                from = c.from,
                to = c.to,
                "max tokens clamped so the estimated input plus the answer fits the model's context window and output limit"
            );
        }
    }

    pub fn tag(&self, h: &mut HeaderMap) {
        if let Some(c) = self.clamp
            && let Ok(v) = HeaderValue::from_str(&c.header_value())
        {
            h.insert(CLAMPED_HEADER, v);
        }
    }
}

/// `tollgate_providers::context_window::clamp_max_tokens` on the raw body: the input is
/// estimated from the fields' text without building them into values.
fn clamp(body: &mut RequestBody, context_window: Option<u64>, max_output: Option<u64>) -> Option<Clamp> {
    let (field, from) = MAX_FIELDS.into_iter().find_map(|f| Some((f, body.get::<u64>(f)?)))?;
    let limit = clamp_limit(from, context_window, max_output, || {
        estimate_input_tokens_raw(body.raw("messages"), body.raw("tools"), body.raw("response_format"))
    })?;
    for f in MAX_FIELDS {
        if body.get::<u64>(f).is_some_and(|v| v > limit) {
            body.set(f, &limit);
        }
    }
    Some(Clamp { field, from, to: limit })
}

fn translate_error(d: &Deployment, e: TranslateError) -> GatewayError {
    match e {
        TranslateError::InvalidRequest(m) => GatewayError::new(
            ErrorKind::InvalidRequest,
            format!("cannot send this request to {}: {m}", d.model),
        ),
        e @ TranslateError::UpstreamFormat { .. } => {
            GatewayError::new(ErrorKind::Upstream, e.to_string()).with_code("upstream_bad_response")
        }
    }
}

/// The upstream chat request for deployment `d` (the deployment's `extra_headers` are added by
/// the caller, after these), its body apart. OpenAI-family deployments get the body as it is
/// held (`model` and stream options already set by the route stage), sent from the client's own
/// buffer; the others get it translated.
pub fn build(d: &Deployment, body: &RequestBody, stream: bool) -> Result<(UpstreamRequest, Segments), GatewayError> {
    let key = d.api_key.as_ref().map(|k| k.expose());
    if d.route.provider.wire_format() == WireFormat::OpenAi {
        // The provider crate writes the head; the body goes as the client's segments.
        return Ok((
            openai::request_with_body(&d.route, key, Vec::new(), stream),
            body.segments(),
        ));
    }
    let mut req = translate::build_request(&d.route, key, &body.to_map(), stream).map_err(|e| translate_error(d, e))?;
    if !req.dropped.is_empty() {
        tracing::debug!(model = %d.model, dropped = ?req.dropped, "fields the provider has no equivalent for were left out");
    }
    let mut segments = Segments::new();
    segments.push(bytes::Bytes::from(std::mem::take(&mut req.body)));
    Ok((req, segments))
}

/// A plain answer from `d` as the client gets it (bytes of an OpenAI `chat.completion` naming
/// `group`), with its usage and finish reason.
pub fn relay_plain(d: &Deployment, bytes: &[u8], group: &str) -> Result<Relayed, GatewayError> {
    translate::relay_response(&d.route, bytes, group).map_err(|e| translate_error(d, e))
}

/// A plain answer from `d` as an OpenAI `chat.completion`, and its usage.
pub fn read_plain(d: &Deployment, bytes: &[u8], group: &str) -> Result<(Value, ParsedUsage), GatewayError> {
    translate::translate_response(&d.route, bytes, group).map_err(|e| translate_error(d, e))
}

/// The HTTP request of one chat call to `d` (before the deployment's `extra_headers`).
pub fn chat_request(
    http: &Client,
    d: &Deployment,
    body: &RequestBody,
    stream: bool,
) -> Result<RequestBuilder, GatewayError> {
    // Reached for rerank only: their chat APIs speak neither OpenAI's format nor a translated one.
    if matches!(d.route.provider, Provider::Cohere | Provider::JinaAi) {
        return Err(GatewayError::new(
            ErrorKind::InvalidRequest,
            format!(
                "model `{}` is served by `{}`, which tollgate reaches for /v1/rerank only",
                d.model_group, d.model
            ),
        )
        .with_code("endpoint_not_supported")
        .with_param("model"));
    }
    let (up, segments) = build(d, body, stream)?;
    let url = d
        .urls
        .resolve(&up.url)
        .map_err(|m| GatewayError::new(ErrorKind::Internal, m))?;
    let mut req = http.post(url).segments(segments);
    for (k, v) in &up.headers {
        req = req.header(k, v);
    }
    Ok(req)
}
