//! Stage 3, read and parse: the body read within `max_request_size_mb` (413) and the in-flight
//! body budget, parsed as a JSON object keeping every field as the client's text (400), `model` taken and the
//! request's own details (session, trace, stream, max tokens, fingerprint) put on the draft.

use axum::body::Body;
use axum::http::HeaderMap;
use serde_json::Value;
use tollgate_core::{ErrorKind, GatewayError};

use crate::app::App;
use crate::body::RequestBody;
use crate::edge::{BodyLease, BodyRules, read_body};
use crate::pipeline::draft::{Draft, MAX_CLIENT_STRING, bounded};
use crate::pipeline::endpoint::{Endpoint, Wire};
use crate::state::LiveState;

/// The fields that make up a request's prompt, whatever its endpoint.
const PROMPT_FIELDS: [&str; 5] = ["messages", "input", "prompt", "tools", "system"];

/// A parsed request, ready to be resolved.
pub struct Request {
    /// What the client named in `model`.
    pub model: String,
    pub body: RequestBody,
    /// A streamed answer was asked for (and the endpoint streams).
    pub stream: bool,
    /// The client asked for the usage chunk at the end of a stream (plain answers always carry
    /// usage).
    pub client_wants_usage: bool,
    /// Keeps this request's share of the in-flight body budget until it is answered.
    pub _lease: BodyLease,
}

impl Request {
    /// The size of the prompt as sent, in bytes: what estimates its tokens before any answer.
    pub fn prompt_bytes(&self) -> u64 {
        PROMPT_FIELDS
            .iter()
            .filter_map(|f| self.body.raw(f))
            .map(|r| r.len() as u64)
            .sum()
    }
}

pub async fn read(
    app: &App,
    live: &LiveState,
    endpoint: Endpoint,
    headers: &HeaderMap,
    body: Body,
    draft: &mut Draft,
) -> Result<Request, GatewayError> {
    let rules = BodyRules {
        max_bytes: live.max_body_bytes,
        timeout: crate::listener::seconds(live.config.server.body_read_timeout_s),
        inflight_budget: (live.config.server.max_inflight_request_mb * 1024.0 * 1024.0) as usize,
    };
    let (bytes, lease) = read_body(body, headers, &rules, &app.body_budget).await?;
    let body = match endpoint.wire {
        Wire::Form { .. } => crate::pipeline::form::read(&bytes, headers)?,
        // The fields are slices of the read buffer, which they keep (and the lease counts).
        _ => RequestBody::from_bytes(bytes)?,
    };
    let model = match body.get::<String>("model") {
        Some(s) if s.len() <= MAX_CLIENT_STRING => s,
        // No configured name is this long; echoing it would put kilobytes into the error and
        // the record.
        Some(s) => {
            return Err(GatewayError::new(
                ErrorKind::NotFound,
                format!(
                    "model `{}…` ({} bytes) is not served by this gateway; ask GET /v1/models for the names",
                    bounded(&s, 40),
                    s.len()
                ),
            )
            .with_code("model_not_found")
            .with_param("model"));
        }
        None => {
            return Err(GatewayError::new(
                ErrorKind::InvalidRequest,
                "missing `model`: name one of the gateway's models",
            )
            .with_param("model"));
        }
    };
    draft.record.model_group = model.clone();
    draft.read_body(&body);
    if endpoint.needs_messages && body.array("messages").is_none() {
        return Err(GatewayError::new(
            ErrorKind::InvalidRequest,
            "missing `messages`: a chat request needs a list of messages",
        )
        .with_param("messages"));
    }
    if let Some(missing) = endpoint.requires.iter().find(|f| !body.contains(f)) {
        return Err(GatewayError::new(
            ErrorKind::InvalidRequest,
            format!(
                "missing `{missing}`: this endpoint needs {}",
                endpoint.requires.join(" and ")
            ),
        )
        .with_param(*missing));
    }
    let stream = endpoint.streams && draft.record.stream;
    let client_wants_usage = !stream
        || body
            .get::<Value>("stream_options")
            .and_then(|o| o.get("include_usage").and_then(Value::as_bool))
            .unwrap_or(false);
    Ok(Request {
        model,
        body,
        stream,
        client_wants_usage,
        _lease: lease,
    })
}
