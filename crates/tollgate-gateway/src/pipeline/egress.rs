//! The seam between a stream's reading (OpenAI chunks, for the record: `pipeline/stream.rs`)
//! and what the client is sent, for endpoints whose clients read another API's stream
//! (`pipeline/messages.rs`). Its own module so both sides use it without using each other.

use axum::body::Bytes;
use tollgate_core::GatewayError;
use tollgate_providers::sse::{error_event, event_bytes};

/// How the chunks of a stream reach a client that does not read OpenAI's chunks (Anthropic's
/// Messages API: `pipeline/messages.rs`). The stage still reads every chunk as OpenAI's for the
/// record; the egress decides what the client is sent instead.
pub(crate) trait Egress: Send {
    /// An upstream event as it arrived, before translation: bytes to relay as they are, if any.
    fn upstream(&mut self, event: &str, data: &str) -> Option<Bytes>;
    /// An OpenAI chunk payload (`[DONE]` included) the client would have been sent: what to send
    /// instead, if anything.
    fn chunk(&mut self, data: &str) -> Option<Bytes>;
    /// The event that tells the client the stream broke (empty if the upstream's own error
    /// event was relayed already).
    fn error(&mut self, e: &GatewayError) -> Bytes;
}

/// The bytes an OpenAI chunk payload becomes for the client.
pub(crate) fn chunk_out(egress: &mut Option<Box<dyn Egress>>, data: &str) -> Option<Bytes> {
    match egress {
        None => Some(event_bytes(data)),
        Some(e) => e.chunk(data),
    }
}

/// The event that ends a broken stream, in the client's shape.
pub(crate) fn error_out(egress: &mut Option<Box<dyn Egress>>, e: &GatewayError) -> Bytes {
    match egress {
        None => error_event(&e.to_json()),
        Some(eg) => eg.error(e),
    }
}
