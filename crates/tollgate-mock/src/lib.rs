//! A fast, deterministic mock LLM provider speaking OpenAI's, Gemini's and Anthropic's wire formats, used as the upstream
//! by tests, `tollgate demo` and benchmarks.
//!
//! The same request always gets the same answer and the same usage, plain or streamed, so tests
//! can assert exact token counts and costs. The usage deliberately exercises the accounting:
//! reasoning models report `reasoning_tokens` (and DeepSeek-style `reasoning_content`), a repeated
//! conversation prefix reports `cached_tokens` (and DeepSeek's `prompt_cache_hit_tokens` /
//! `prompt_cache_miss_tokens`), and tools produce `tool_calls`.
//!
//! Endpoints (any path prefix, since an `api_base` may carry one):
//! - `POST …/chat/completions`, `POST …/embeddings`, `GET …/models` (OpenAI's format)
//! - `POST …/completions` (legacy text completions, streamed too), `POST …/moderations`,
//!   `POST …/images/generations`, `POST …/audio/transcriptions` (multipart), and
//!   `POST …/rerank` (Cohere's shape, also Jina's usage)
//! - `POST …/models/{model}:generateContent` and `…:streamGenerateContent?alt=sse` (Gemini's,
//!   key in `x-goog-api-key`), `POST …/v1/messages` (Anthropic's, `x-api-key` and
//!   `anthropic-version` required); see `native.rs` for what each reports
//!   and `POST …/v1/messages/count_tokens` (the prompt tokens `/v1/messages` would report)
//! - `GET /mock/stats`: requests per model, to check retries or that cache hits never arrived
//! - `GET /mock/last_request`: the last request a provider endpoint received (path, Anthropic's
//!   headers, JSON body), to check what a gateway sent on
//! - `POST /mock/reset`: forget counts and cached prefixes
//!
//! Failures are injected per model by [`FailRule`]s (deterministically spread: a rate of 0.5 fails
//! every other request) or per request with the `x-mock-fail: 500|429|timeout` header;
//! `x-mock-delay-ms: N` delays one request.

mod audio;
mod chat;
mod embeddings;
mod failure;
mod fingerprint;
mod http;
mod images;
mod measure;
mod moderation;
mod native;
mod prompt_cache;
mod rerank;
mod text_completion;

use axum::serve::ListenerExt;

pub use failure::{FailMode, FailRule, parse_fail_rule};

/// How the mock behaves.
#[derive(Debug, Clone, Default)]
pub struct MockConfig {
    /// Wait this long before answering (for streams, before the first byte).
    pub delay_ms: u64,
    /// Wait this long between stream chunks, so time-to-first-token differs from total time.
    /// At 0 a stream is written in one piece (fastest, for benchmarks); set it to see chunks
    /// arrive one by one.
    pub chunk_delay_ms: u64,
    /// Per-model failure injection; the first rule that matches a model applies.
    pub failures: Vec<FailRule>,
}

/// The mock as a router, to embed in another server or drive in-process.
pub fn router(config: MockConfig) -> axum::Router {
    http::router(config, None)
}

/// Serves the mock on `listener` until the task is dropped or aborted.
pub async fn serve(listener: tokio::net::TcpListener, config: MockConfig) -> std::io::Result<()> {
    // Without TCP_NODELAY, small SSE chunks wait on Nagle's algorithm and delayed ACKs (tens of
    // milliseconds), which would show up as gateway overhead in benchmarks.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    // Held for as long as this future lives: dropping or aborting it releases requests hanging
    // in an injected timeout (axum lets in-flight requests finish when the server stops).
    let (_running, stopped) = tokio::sync::watch::channel(());
    axum::serve(listener, http::router(config, Some(stopped))).await
}
