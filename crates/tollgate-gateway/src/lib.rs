//! The gateway: an OpenAI-compatible HTTP server in front of LLM providers, configured by
//! LiteLLM's `config.yaml`, recording every request with exact usage and cost.
//!
//! `pipeline` holds the request path (its stages are listed there), `state` the live,
//! swappable view of the config, `edge` the HTTP-facing details (auth, errors, headers), and
//! `server` the routes and lifecycle.

pub mod app;
pub mod body;
pub mod breaker;
pub mod cache;
pub mod client_addr;
pub mod deployment;
pub mod deployment_stats;
pub mod edge;
pub mod entity_api;
pub mod health_api;
pub mod health_check;
pub mod in_flight;
pub mod info_api;
pub mod key_api;
pub mod keys;
pub mod listener;
pub mod local_ledger;
pub mod metrics;
pub mod mgmt;
pub mod owners;
pub mod periods;
pub mod pipeline;
pub mod prompt_cache;
pub mod rate_limits;
pub mod redis_link;
pub mod reload;
pub mod responses_api;
pub mod router;
pub mod server;
pub mod spend_api;
pub mod state;
pub mod ui;
pub mod upstream;
pub mod upstream_client;
pub mod upstream_events;
pub mod wildcard;
pub mod workers;

pub use app::App;
pub use server::{RunningGateway, ServeError, ServeOptions, start, startup_summary};
pub use state::{LiveState, StateError};
