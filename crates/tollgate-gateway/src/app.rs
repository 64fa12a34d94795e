//! The gateway's shared state: what the request stages, the server and config reloads all use.
//! It lives apart from each of them so that they can all depend on it without depending on
//! one another.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tollgate_store::{RecordWriter, StoreConfig};

use crate::state::LiveState;
use crate::upstream_client::Client;

/// Everything the handlers share. The live state is swapped whole; the rest lives as long as
/// the server.
pub struct App {
    pub live: ArcSwap<LiveState>,
    /// The HTTP client of threads that are not serving workers (see [`App::http`]).
    pub http: Client,
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
    /// Virtual keys (`/key/*`), in the same store as the records.
    pub keys: Arc<crate::keys::Keys>,
    /// rpm, tpm and parallel limits per scope, in Redis or in this process (chosen at startup).
    pub rate_limits: Arc<crate::rate_limits::RateLimits>,
    /// The latest background health checks (`GET /health`).
    pub health: crate::health_check::HealthBoard,
}

thread_local! {
    /// The upstream HTTP client of the serving worker this thread is (see `workers`). Each
    /// worker has its own connection pool, so a request's upstream call is driven on the
    /// thread that serves the request and never wakes another one.
    static WORKER_HTTP: RefCell<Option<Client>> = const { RefCell::new(None) };
}

impl App {
    /// The upstream HTTP client for a request on this thread: the worker's own, or the shared
    /// one on any other thread. Cheap (a reference count).
    pub fn http(&self) -> Client {
        WORKER_HTTP
            .with(|c| c.borrow().clone())
            .unwrap_or_else(|| self.http.clone())
    }
}

/// Gives this thread (a serving worker) its own upstream client.
pub(crate) fn use_worker_http(client: Client) {
    WORKER_HTTP.with(|c| *c.borrow_mut() = Some(client));
}

/// The upstream HTTP client: pooled keep-alive connections, no Nagle delay on small writes,
/// the environment's proxies (`upstream_client.rs`).
pub fn http_client() -> Result<Client, crate::upstream_client::Error> {
    Client::new()
}
