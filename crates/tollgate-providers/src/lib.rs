//! Wire formats per provider: which provider a LiteLLM model string names, where its API lives,
//! how its usage maps onto tollgate's disjoint buckets, and how SSE chunks are read.
//!
//! Every function here is pure (no I/O), so each translation is covered by golden tests and the
//! gateway stays a thin pipeline around them.

pub mod provider;
pub mod sse;
pub mod usage;

pub use provider::{Provider, ProviderError, Route};
