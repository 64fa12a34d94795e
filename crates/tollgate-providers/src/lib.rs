//! Wire formats per provider: which provider a LiteLLM model string names, where its API lives,
//! how requests and responses translate to and from OpenAI's chat format, how usage maps onto
//! tollgate's disjoint buckets, and how SSE chunks are read.
//!
//! Every function here is pure (no I/O), so each translation is covered by golden tests and the
//! gateway stays a thin pipeline around them. Entry point: [`translate`].

pub mod anthropic;
pub mod context_window;
pub mod gemini;
pub mod hygiene;
pub mod messages;
pub mod messages_stream;
pub mod openai;
pub mod provider;
pub mod responses;
pub mod sse;
pub mod sse_frames;
pub mod translate;
mod turns;
pub mod usage;
mod wire;

pub use provider::{Provider, ProviderError, Route, WireFormat};
pub use translate::{StreamTranslator, build_request, translate_response};
pub use wire::{TranslateError, UpstreamRequest};
