//! The gateway's shared state: what the request stages, the server and config reloads all use.
//! It lives apart from each of them so that they can all depend on it without depending on
//! one another.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tollgate_store::{RecordWriter, StoreConfig};

use crate::state::LiveState;

/// Everything the handlers share. The live state is swapped whole; the rest lives as long as
/// the server.
pub struct App {
    pub live: ArcSwap<LiveState>,
    pub http: reqwest::Client,
    pub writer: RecordWriter,
    /// False only with `--insecure-dev` and no usable master key.
    pub auth_enabled: bool,
    pub store: StoreConfig,
    /// `--prices`, read again on every reload.
    pub prices_path: Option<PathBuf>,
    /// Why the last reload failed, until one succeeds.
    pub config_error: std::sync::Mutex<Option<String>>,
    pub reload_lock: std::sync::Mutex<()>,
    /// The overhead histogram and counters served on `GET /metrics`.
    pub metrics: crate::metrics::Metrics,
    /// Turns true when the shutdown grace period is over: streams still running end with an
    /// error event and write their record before the store closes.
    pub cut_streams: tokio::sync::watch::Receiver<bool>,
    /// Request bodies held in memory, over all requests (`tollgate_settings.max_inflight_request_mb`).
    pub body_budget: Arc<crate::edge::BodyBudget>,
    /// Requests in flight, over all endpoints (`general_settings.global_max_parallel_requests`).
    pub in_flight: Arc<crate::in_flight::InFlight>,
}
