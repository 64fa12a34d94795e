//! The gateway: an OpenAI-compatible HTTP server in front of LLM providers, configured by
//! LiteLLM's `config.yaml`, recording every request with exact usage and cost.
//!
//! `chat` holds the request pipeline (its order is written down there), `state` the live,
//! swappable view of the config, `edge` the HTTP-facing details (auth, errors, headers), and
//! `server` the routes and lifecycle.

pub mod breaker;
pub mod cache;
pub mod chat;
pub mod edge;
pub mod listener;
pub mod metrics;
pub mod prompt_cache;
pub mod reload;
pub mod router;
pub mod server;
pub mod state;
pub mod upstream;
pub mod workflow;

pub use server::{App, RunningGateway, ServeError, ServeOptions, start, startup_summary};
pub use state::{LiveState, StateError};
