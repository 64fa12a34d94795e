//! The one place the gateway calls to speak to any upstream: build the upstream request, read
//! a plain response, translate a stream event by event. Dispatch is static, over
//! [`WireFormat`]; each format's module holds pure functions covered by golden tests.
//!
//! The OpenAI-compatible family is the identity path: its requests are written from the
//! client's map with only `model` (and `stream_options`) overlaid, and its stream has no
//! translator at all ([`StreamTranslator::for_route`] is `None`), so its chunks are relayed
//! without being parsed into a tree and written again.
//!
//! Where a later provider fits: transport and auth are chosen by [`Provider`](crate::Provider),
//! the body by [`WireFormat`]. Vertex AI is a provider with the Gemini wire format (its URL and
//! an OAuth bearer header replace `x-goog-api-key`); Bedrock's Claude is a provider with the
//! Anthropic wire format (the model moves into the URL, `anthropic_version` into the body, and
//! the request is SigV4-signed, which needs the final body bytes this function returns). Neither
//! changes these signatures or the translation modules.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::provider::{Route, WireFormat};
use crate::usage::ParsedUsage;
// Re-exported so `tollgate_providers::translate::{TranslateError, UpstreamRequest}` keep naming them.
use crate::openai::Relayed;
pub use crate::wire::{TranslateError, UpstreamRequest};
use crate::{anthropic, gemini, hygiene, openai};

/// The upstream request for one chat call to `route`.
pub fn build_request(
    route: &Route,
    api_key: Option<&str>,
    body: &Map<String, Value>,
    stream: bool,
) -> Result<UpstreamRequest, TranslateError> {
    match route.provider.wire_format() {
        WireFormat::OpenAi => openai::build_request(route, api_key, body, stream),
        WireFormat::Gemini => gemini::build_request(route, api_key, body, stream),
        WireFormat::Anthropic => anthropic::build_request(route, api_key, body, stream),
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A plain upstream response as an OpenAI `chat.completion` (usage in OpenAI's convention,
/// response hygiene applied) and its usage in buckets. The gateway sets `model` to `group`.
pub fn translate_response(route: &Route, bytes: &[u8], group: &str) -> Result<(Value, ParsedUsage), TranslateError> {
    let provider = route.provider.prefix();
    let format_error = |message: String| TranslateError::UpstreamFormat { provider, message };
    let (mut value, usage) = match route.provider.wire_format() {
        WireFormat::OpenAi => openai::translate_response(bytes).map_err(format_error)?,
        WireFormat::Gemini => gemini::translate_response(bytes, group, unix_now()).map_err(format_error)?,
        WireFormat::Anthropic => anthropic::translate_response(bytes, group, unix_now()).map_err(format_error)?,
    };
    hygiene::repair_response(&mut value);
    Ok((value, usage))
}

/// A plain upstream response as the client gets it: OpenAI's `chat.completion` with `model` set
/// to `group`, as bytes, with its usage and first finish reason. OpenAI-family answers that need
/// no repair are relayed without being built into values ([`openai::relay_response`]).
pub fn relay_response(route: &Route, bytes: &[u8], group: &str) -> Result<Relayed, TranslateError> {
    if route.provider.wire_format() == WireFormat::OpenAi
        && let Some(relayed) = openai::relay_response(bytes, group)
    {
        return Ok(relayed);
    }
    let (mut value, usage) = translate_response(route, bytes, group)?;
    let finish_reason = value
        .pointer("/choices/0/finish_reason")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(obj) = value.as_object_mut() {
        obj.insert("model".into(), Value::String(group.to_string()));
    }
    // Serialising a value tree cannot fail.
    let body = serde_json::to_vec(&value).unwrap_or_default();
    Ok(Relayed {
        body,
        usage,
        finish_reason,
    })
}

/// Turns one provider's SSE events into OpenAI `chat.completion.chunk` payloads, ending with a
/// usage chunk (choices empty, usage in OpenAI's convention) and `[DONE]`.
#[derive(Debug)]
pub enum StreamTranslator {
    Gemini(gemini::StreamState),
    Anthropic(anthropic::StreamState),
}

impl StreamTranslator {
    /// `None` for the OpenAI family, whose chunks are relayed as they come.
    pub fn for_route(route: &Route, group: &str) -> Option<Self> {
        let created = unix_now();
        match route.provider.wire_format() {
            WireFormat::OpenAi => None,
            WireFormat::Gemini => Some(StreamTranslator::Gemini(gemini::StreamState::new(group, created))),
            WireFormat::Anthropic => Some(StreamTranslator::Anthropic(anthropic::StreamState::new(group, created))),
        }
    }

    /// One SSE event (`event` is the SSE event name, `message` when absent) → zero or more
    /// OpenAI chunk payloads (`[DONE]` included, as its literal).
    pub fn on_event(&mut self, event: &str, data: &str) -> Vec<String> {
        match self {
            StreamTranslator::Gemini(s) => s.on_event(data),
            StreamTranslator::Anthropic(s) => s.on_event(event, data),
        }
    }

    /// Called when the upstream closes the stream: Gemini has no end event, so its usage chunk
    /// and `[DONE]` come from here (only if the answer was complete).
    pub fn finish(&mut self) -> Vec<String> {
        match self {
            StreamTranslator::Gemini(s) => s.finish(),
            StreamTranslator::Anthropic(_) => Vec::new(),
        }
    }

    pub fn usage(&self) -> ParsedUsage {
        match self {
            StreamTranslator::Gemini(s) => s.usage(),
            StreamTranslator::Anthropic(s) => s.usage(),
        }
    }

    /// `[DONE]` has been emitted.
    pub fn done(&self) -> bool {
        match self {
            StreamTranslator::Gemini(s) => s.done,
            StreamTranslator::Anthropic(s) => s.done,
        }
    }

    /// An error the provider reported inside the stream.
    pub fn error(&self) -> Option<&str> {
        match self {
            StreamTranslator::Gemini(s) => s.error.as_deref(),
            StreamTranslator::Anthropic(s) => s.error.as_deref(),
        }
    }
}
