//! The provider side of a chat call, as the pipeline sees it: the upstream request for a
//! deployment (translated to its wire format by `tollgate_providers::translate`), its plain
//! answer read back as OpenAI's, and max_tokens hygiene.
//!
//! The request pipeline in `chat.rs` calls these; the translation itself lives, pure and
//! golden-tested, in `tollgate-providers`.

use axum::http::{HeaderMap, HeaderValue};
use serde_json::{Map, Value};
use tollgate_core::{ErrorKind, GatewayError};
use tollgate_providers::context_window::{Clamp, clamp_max_tokens};
use tollgate_providers::translate::{self, TranslateError, UpstreamRequest};
use tollgate_providers::usage::ParsedUsage;

use crate::state::Deployment;

/// The response header that says a request's max_tokens was clamped: `<original>-><new>`.
pub const CLAMPED_HEADER: &str = "x-tollgate-max-tokens-clamped";

const MAX_FIELDS: [&str; 2] = ["max_completion_tokens", "max_tokens"];

/// max_tokens hygiene across the attempts of one request: the client's values are put back
/// before each deployment's clamp, so a fallback with a larger window is not held to a smaller
/// one's limit.
#[derive(Debug, Default)]
pub struct MaxTokens {
    requested: Option<[Option<Value>; 2]>,
    pub clamp: Option<Clamp>,
}

impl MaxTokens {
    /// Clamps `body`'s max tokens to fit deployment `d` (estimated input + max tokens within its
    /// context window, max tokens within its output limit).
    pub fn fit(&mut self, body: &mut Map<String, Value>, d: &Deployment) {
        match &self.requested {
            None => self.requested = Some(MAX_FIELDS.map(|f| body.get(f).cloned())),
            Some(requested) => {
                for (f, v) in MAX_FIELDS.iter().zip(requested) {
                    match v {
                        Some(v) => body.insert(f.to_string(), v.clone()),
                        None => body.remove(*f),
                    };
                }
            }
        }
        self.clamp = clamp_max_tokens(body, d.max_input_tokens, d.max_output_tokens);
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
/// the caller, after these).
pub fn build(d: &Deployment, body: &Map<String, Value>, stream: bool) -> Result<UpstreamRequest, GatewayError> {
    let key = d.api_key.as_ref().map(|k| k.expose());
    let req = translate::build_request(&d.route, key, body, stream).map_err(|e| translate_error(d, e))?;
    if !req.dropped.is_empty() {
        tracing::debug!(model = %d.model, dropped = ?req.dropped, "fields the provider has no equivalent for were left out");
    }
    Ok(req)
}

/// A plain answer from `d` as an OpenAI `chat.completion`, and its usage.
pub fn read_plain(d: &Deployment, bytes: &[u8], group: &str) -> Result<(Value, ParsedUsage), GatewayError> {
    translate::translate_response(&d.route, bytes, group).map_err(|e| translate_error(d, e))
}
