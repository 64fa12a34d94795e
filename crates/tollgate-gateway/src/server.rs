//! The server: routes, startup summary and graceful shutdown around the shared [`App`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tollgate_core::config::{RecordDurability, master_key_problem};
use tollgate_store::{PostgresTarget, RecordWriter, SharedStore, StoreConfig, WriteSummary, WriterHandle};

use crate::app::App;
use crate::breaker::CircuitState;
use crate::edge::{ApiError, authorize, close_after_unread_body};
use crate::pipeline::endpoint::Endpoint;
use crate::pipeline::handle;
use crate::state::LiveState;

/// How to run the gateway (the `serve` command's flags).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub host: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub log_jsonl: Option<PathBuf>,
    pub insecure_dev: bool,
    /// Records that may wait for the writer before new ones are dropped (and counted).
    pub record_capacity: usize,
    /// A LiteLLM price file added to the built-in table (`--prices`), re-read on reload.
    pub prices_path: Option<PathBuf>,
    /// Reload when the config file (or an included one) changes.
    pub watch_config: bool,
    /// How long in-flight requests may run after a shutdown begins; streams still running then
    /// are ended with an error event (and recorded).
    pub shutdown_grace: Duration,
    /// Serving workers (threads with their own runtime and upstream pool); one per core by
    /// default. 0 serves on the caller's runtime.
    pub workers: usize,
    /// The Postgres database records are shipped to (`--database-url`, `general_settings.database_url`
    /// or `DATABASE_URL`); `None` keeps them in SQLite only.
    pub database: Option<tollgate_core::database::DatabaseChoice>,
    /// `--instance-id`: which gateway wrote a record, when several share one database.
    pub instance_id: Option<String>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            host: "127.0.0.1".into(),
            port: 4000,
            data_dir: PathBuf::from("tollgate-data"),
            log_jsonl: None,
            insecure_dev: false,
            record_capacity: 65_536,
            prices_path: None,
            watch_config: true,
            shutdown_grace: Duration::from_secs(30),
            workers: crate::workers::default_count(),
            database: None,
            instance_id: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("refusing to start: {0}")]
    InsecureKey(String),
    #[error("cannot open the record store: {0}")]
    Store(#[from] tollgate_store::StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] crate::upstream_client::Error),
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
    #[error("{0}")]
    Startup(String),
}

/// A gateway that is listening. Dropping it does not stop it; call [`RunningGateway::shutdown`].
pub struct RunningGateway {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    stop: watch::Sender<bool>,
    cut_streams: tokio::sync::watch::Sender<bool>,
    shutdown_grace: Duration,
    server: tokio::task::JoinHandle<()>,
    writer: WriterHandle,
    connections: Arc<crate::listener::ConnectionStats>,
    _watcher: Option<crate::reload::ConfigWatcher>,
}

impl RunningGateway {
    /// Counters about client connections (open, accepted, closed by a timeout, cap reached).
    pub fn connections(&self) -> &crate::listener::ConnectionStats {
        &self.connections
    }

    /// Stops accepting, lets in-flight requests finish, then writes every accepted record.
    pub async fn shutdown(mut self) -> Result<WriteSummary, tollgate_store::StoreError> {
        let _ = self.stop.send(true);
        // In-flight requests finish within the grace period; streams still running after it are
        // told to end (an error event to the client, their record to the writer) and given a
        // moment to do so, so that no record is lost to the closing store.
        if tokio::time::timeout(self.shutdown_grace, &mut self.server)
            .await
            .is_err()
        {
            let _ = self.cut_streams.send(true);
            if tokio::time::timeout(STREAM_CUT_WAIT, &mut self.server).await.is_err() {
                tracing::warn!("some connections were still open {STREAM_CUT_WAIT:?} after streams were cut");
            }
        }
        // The last requests' spend, written before the store closes.
        let keys = Arc::clone(&self.app.keys);
        let _ = tokio::task::spawn_blocking(move || keys.stop()).await;
        drop(self.app);
        self.writer.shutdown().await
    }
}

/// Lines printed at startup: one per model group, then cache, store and auth state.
pub fn startup_summary(live: &LiveState, addr: &str, opts: &ServeOptions, auth_enabled: bool) -> Vec<String> {
    let mut lines = vec![format!(
        "tollgate listening on http://{addr} (config {} v{})",
        live.config.path.display(),
        live.version
    )];
    for g in &live.group_order {
        let Some(group) = live.groups.get(g) else {
            continue;
        };
        let parts: Vec<String> = group
            .deployments
            .iter()
            .map(|d| {
                let price = match &d.price {
                    Some(p) => format!(
                        "${:.2}/${:.2} per 1M in/out",
                        p.input_cost_per_token.unwrap_or(0.0) * 1e6,
                        p.output_cost_per_token.unwrap_or(0.0) * 1e6
                    ),
                    None => "UNPRICED".to_string(),
                };
                format!("{} via {} ({price})", d.model, d.route.api_base)
            })
            .collect();
        lines.push(format!("  model {g}: {}", parts.join("; ")));
    }
    for pattern in live.wildcards.names() {
        let models: Vec<&str> = live
            .config
            .deployments
            .iter()
            .filter(|d| d.model_name == pattern)
            .map(|d| d.model.as_str())
            .collect();
        lines.push(format!(
            "  pattern {pattern}: {} (a name no group holds, resolved per request; priced by the forwarded name)",
            models.join("; ")
        ));
    }
    for w in &live.config.workflows {
        let steps: Vec<String> = w.steps.iter().map(|s| format!("{} {}", s.role, s.model)).collect();
        let aliases = if w.aliases.is_empty() {
            String::new()
        } else {
            format!(" (also {})", w.aliases.join(", "))
        };
        lines.push(format!("  workflow {}{aliases}: {}", w.name, steps.join(" → ")));
    }
    let r = &live.config.router;
    lines.push(format!(
        "  router: {:?}, {} retries, cooldown after {} fails for {} s, {} fallback rule(s)",
        r.strategy,
        r.num_retries,
        r.allowed_fails,
        r.cooldown_time,
        r.fallbacks.len() + r.context_window_fallbacks.len() + usize::from(!r.default_fallbacks.is_empty())
    ));
    lines.push(match &live.cache {
        Some(c) => format!("  cache: {}", c.describe()),
        None => {
            "  cache: off (turn it on with `litellm_settings: {cache: true, cache_params: {type: local}}`)".to_string()
        }
    });
    let sqlite = opts.data_dir.join(tollgate_store::DB_FILE_NAME);
    let jsonl = opts
        .log_jsonl
        .as_ref()
        .map(|p| format!(" + jsonl {}", p.display()))
        .unwrap_or_default();
    lines.push(match &opts.database {
        // The password is masked: these lines go to logs and to `tollgate check`'s output.
        Some(db) => format!(
            "  store: postgres {} (from {}, pool {}), records written to sqlite {} first and shipped in batches{jsonl}",
            db.redacted_url(),
            db.source,
            db.pool_size,
            sqlite.display()
        ),
        None => format!("  store: sqlite {}{jsonl}", sqlite.display()),
    });
    lines.push(match &opts.database {
        Some(_) => {
            "  keys: virtual keys (/key/*) in the shared Postgres, budgets held exactly across instances".to_string()
        }
        None => "  keys: virtual keys (/key/*) in the SQLite store".to_string(),
    });
    lines.push(rate_limits_line(&live.config));
    lines.push(match live.config.record_durability {
        RecordDurability::Buffered => "  record durability: buffered (records are written within ~10 ms, off the request path; a kill -9 can lose those ms; `tollgate_settings.record_durability: sync` makes answers wait for the commit)".to_string(),
        RecordDurability::Sync => "  record durability: sync (each answer waits until its record is committed and fsynced to SQLite)".to_string(),
    });
    lines.push(if auth_enabled {
        "  auth: master key required (Authorization: Bearer or x-api-key)".to_string()
    } else {
        "  auth: OFF (--insecure-dev): anyone who reaches this port can use your provider keys".to_string()
    });
    let limits = &live.config.server;
    let cap = crate::listener::ConnectionCap::resolve(limits);
    // Only mentioned when set: without it the line reads as it always has.
    let parallel = limits
        .max_parallel_requests
        .map(|max| {
            format!(", at most {max} requests in flight (general_settings.global_max_parallel_requests; 429 beyond)")
        })
        .unwrap_or_default();
    lines.push(format!(
        "  limits: headers within {} s, body pauses up to {} s, idle keep-alive {} s, {} connections ({}), {} MB of request bodies in flight{parallel}",
        limits.header_read_timeout_s,
        limits.body_read_timeout_s,
        limits.keepalive_timeout_s,
        cap.max,
        cap.source,
        limits.max_inflight_request_mb
    ));
    let n = live.all_warnings().count();
    if n > 0 {
        lines.push(format!(
            "  {n} config warning(s); `tollgate check --config {}` lists them",
            live.config.path.display()
        ));
    }
    lines
}

/// Where rpm, tpm and parallel limits are counted, and which tokens count.
fn rate_limits_line(config: &tollgate_core::config::GatewayConfig) -> String {
    let tokens = config.token_rate_limit_type.as_str();
    match &config.rate_limit_redis {
        // The password is masked, as for the store.
        Some(r) => format!(
            "  rate limits: redis {} (from {}, keys {}:*), counted exactly across instances ({tokens} tokens count for tpm); per process while Redis does not answer",
            tollgate_core::redact::url(r.url.expose()),
            r.source,
            config.rate_limit_prefix
        ),
        None => format!(
            "  rate limits: local, counted per process ({tokens} tokens count for tpm); set router_settings.redis_url to count across instances"
        ),
    }
}

/// `hostname:port`: unique per instance on one machine and readable in the records of many.
fn default_instance_id(port: u16) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "localhost".to_string());
    format!("{host}:{port}")
}

/// How long cut streams get to send their error event and hand over their record.
const STREAM_CUT_WAIT: Duration = Duration::from_secs(2);

/// Binds, starts the writer and serves until [`RunningGateway::shutdown`].
pub async fn start(live: LiveState, opts: ServeOptions) -> Result<RunningGateway, ServeError> {
    let auth_enabled = match master_key_problem(live.config.master_key.as_ref()) {
        None => true,
        Some(problem) if !opts.insecure_dev => return Err(ServeError::InsecureKey(problem)),
        // With --insecure-dev a configured key is still enforced; only a missing one turns auth off.
        Some(_) => live.config.master_key.is_some(),
    };
    let http = crate::app::http_client()?;
    let addr = format!("{}:{}", opts.host, opts.port);
    let listener = TcpListener::bind(&addr).await.map_err(|source| ServeError::Bind {
        addr: addr.clone(),
        source,
    })?;
    let local = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: addr.clone(),
        source,
    })?;
    let shared = match &opts.database {
        Some(db) => Some(SharedStore {
            target: PostgresTarget::parse(&db.url, db.pool_size)?,
            require: live.config.require_database,
        }),
        None => None,
    };
    let store = StoreConfig {
        data_dir: opts.data_dir.clone(),
        jsonl: opts.log_jsonl.clone(),
        capacity: opts.record_capacity,
        durability: live.config.record_durability,
        // After binding, so the default names the port really listened on (`--port 0`).
        instance_id: Some(
            opts.instance_id
                .clone()
                .unwrap_or_else(|| default_instance_id(local.port())),
        ),
        shared,
        retention_days: live.config.retention_days,
    };
    let has_shared_store = store.shared.is_some();
    // Keys live beside the records: in the shared Postgres when there is one (every instance
    // sees every key), else in the SQLite file.
    let keys = match &store.shared {
        Some(shared) => crate::keys::Keys::new(
            Arc::new(tollgate_store::PostgresKeys::lazy(&shared.target)),
            format!("postgres {}", shared.target.location()),
        ),
        None => {
            let dir = opts.data_dir.clone();
            let sqlite = tokio::task::spawn_blocking(move || {
                std::fs::create_dir_all(&dir).map_err(|source| tollgate_store::StoreError::CreateDir {
                    path: dir.clone(),
                    source,
                })?;
                tollgate_store::SqliteKeys::open(&dir)
            })
            .await
            .map_err(|e| ServeError::Startup(format!("opening the key store failed: {e}")))??;
            // The only process on this file: budget holds in memory (see local_ledger.rs).
            crate::keys::Keys::new(
                Arc::new(sqlite),
                format!("sqlite {}", opts.data_dir.join(tollgate_store::DB_FILE_NAME).display()),
            )
            .holds_in_memory()
        }
    };
    let keys = Arc::new(keys);
    keys.start_flusher();
    let rate_limits = crate::rate_limits::RateLimits::from_config(&live.config)
        .map_err(|e| ServeError::Startup(format!("{e} ({})", live.config.where_is("router_settings"))))?;
    // Blocking: it opens SQLite and, with a shared store, connects to Postgres once (up to the
    // connect timeout), which must not run on the async workers.
    let for_writer = store.clone();
    let (writer, writer_handle) = tokio::task::spawn_blocking(move || RecordWriter::start(for_writer))
        .await
        .map_err(|e| ServeError::Startup(format!("opening the record store failed: {e}")))??;
    for line in startup_summary(&live, &local.to_string(), &opts, auth_enabled) {
        eprintln!("{line}");
    }
    let (cut_tx, cut_rx) = tokio::sync::watch::channel(false);
    let app = Arc::new(App {
        live: ArcSwap::from_pointee(live),
        http,
        writer,
        auth_enabled,
        store,
        prices_path: opts.prices_path.clone(),
        config_error: std::sync::Mutex::new(None),
        reload_lock: std::sync::Mutex::new(()),
        metrics: crate::metrics::Metrics::new(has_shared_store)?,
        cut_streams: cut_rx,
        body_budget: Arc::default(),
        in_flight: Arc::default(),
        keys,
        rate_limits: Arc::new(rate_limits),
        health: Default::default(),
    });
    crate::health_api::start_background(&app);
    let watcher = if opts.watch_config {
        match crate::reload::watch(app.clone()) {
            Ok(w) => Some(w),
            Err(e) => {
                eprintln!("  config watch: off ({e}); reload with SIGHUP or POST /admin/reload");
                None
            }
        }
    } else {
        None
    };
    let router = router(app.clone());
    // The cap is fixed for the life of the listener; the timeouts follow reloads (new connections).
    let cap = crate::listener::ConnectionCap::resolve(&app.live.load().config.server).max;
    let connections = Arc::new(crate::listener::ConnectionStats::default());
    let app_for_timeouts = app.clone();
    let (stop_tx, stop_rx) = watch::channel(false);
    let serving = crate::workers::Serving {
        router,
        slots: Arc::new(tokio::sync::Semaphore::new(cap)),
        cap,
        timeouts: Arc::new(move || {
            crate::listener::ConnectionTimeouts::from(&app_for_timeouts.live.load().config.server)
        }),
        stats: connections.clone(),
        stop: stop_rx,
    };
    let server = if opts.workers == 0 {
        tokio::spawn(async move {
            let mut stop = serving.stop.clone();
            let stopped = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            let s = serving;
            crate::listener::serve(listener, s.router, s.slots, s.cap, s.timeouts, s.stats, stopped).await;
        })
    } else {
        let listener = listener.into_std().map_err(|source| ServeError::Bind {
            addr: addr.clone(),
            source,
        })?;
        let workers = crate::workers::start(listener, opts.workers, &serving).map_err(|source| ServeError::Bind {
            addr: addr.clone(),
            source,
        })?;
        tokio::spawn(async move {
            for done in workers {
                let _ = done.await;
            }
        })
    };
    Ok(RunningGateway {
        addr: local,
        app,
        stop: stop_tx,
        cut_streams: cut_tx,
        shutdown_grace: opts.shutdown_grace,
        server,
        writer: writer_handle,
        connections,
        _watcher: watcher,
    })
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/chat/completions", post(chat))
        .route("/v1/embeddings", post(embeddings))
        .route("/embeddings", post(embeddings))
        .route("/v1/completions", post(completions))
        .route("/completions", post(completions))
        .route("/v1/moderations", post(moderations))
        .route("/moderations", post(moderations))
        .route("/v1/rerank", post(rerank))
        .route("/rerank", post(rerank))
        .route("/v1/images/generations", post(images))
        .route("/images/generations", post(images))
        .route("/v1/messages", post(messages))
        .route("/messages", post(messages))
        .route("/v1/messages/count_tokens", post(count_tokens))
        .route("/messages/count_tokens", post(count_tokens))
        .route("/v1/audio/transcriptions", post(transcriptions))
        .route("/audio/transcriptions", post(transcriptions))
        .route("/v1/models", get(models))
        .route("/models", get(models))
        .route("/v1/model/info", get(model_info))
        .route("/model/info", get(model_info))
        .route("/health/liveliness", get(liveliness))
        .route("/health/liveness", get(liveliness))
        .route("/health/readiness", get(readiness))
        .route("/metrics", get(metrics))
        .route("/admin/reload", post(admin_reload))
        .route("/admin/config", get(admin_config))
        .merge(crate::health_api::routes())
        .merge(crate::info_api::routes())
        .merge(crate::key_api::routes())
        .merge(crate::entity_api::routes())
        .merge(crate::spend_api::routes())
        .merge(crate::responses_api::routes())
        // The dashboard (`/ui`, and `/` redirects there): pages, sign-in and its assets.
        .merge(crate::ui::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // The body limit is enforced per request from the live config, with OpenAI's error shape.
        .layer(DefaultBodyLimit::disable())
        .layer(tower::util::MapResponseLayer::new(close_after_unread_body))
        .with_state(app)
}

async fn chat(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    handle(app, Endpoint::CHAT, headers, body).await
}

async fn embeddings(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    handle(app, Endpoint::EMBEDDINGS, headers, body).await
}

/// Anthropic's Messages API: the same pipeline, its errors in Anthropic's shape.
async fn messages(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    crate::pipeline::messages::in_anthropic_shape(handle(app, Endpoint::MESSAGES, headers, body).await).await
}

async fn count_tokens(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    crate::pipeline::count_tokens::handle(app, headers, body).await
}

async fn completions(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    handle(app, Endpoint::COMPLETIONS, headers, body).await
}

async fn moderations(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    handle(app, Endpoint::MODERATIONS, headers, body).await
}

async fn rerank(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    handle(app, Endpoint::RERANK, headers, body).await
}

async fn images(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    handle(app, Endpoint::IMAGES, headers, body).await
}

async fn transcriptions(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    handle(app, Endpoint::TRANSCRIPTIONS, headers, body).await
}

fn check_auth(app: &App, headers: &HeaderMap) -> Result<(), ApiError> {
    let live = app.live.load();
    authorize(headers, live.config.master_key.as_ref().filter(|_| app.auth_enabled))?;
    Ok(())
}

/// `/v1/models` and `/v1/model/info` answer any valid key, with only what that key may call.
async fn models(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let live = app.live.load_full();
    match crate::pipeline::authenticate::caller(&app, &live, &headers).await {
        Ok(caller) => axum::Json(live.models_json(&|m: &str| caller.may_use(m))).into_response(),
        Err(e) => ApiError(e).into_response(),
    }
}

#[derive(serde::Deserialize)]
struct ModelQuery {
    model: Option<String>,
}

/// `?model=<name>` narrows the listing to that model group (or workflow), as LiteLLM's does.
async fn model_info(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<ModelQuery>,
) -> Response {
    let live = app.live.load_full();
    let wanted = |m: &str| q.model.as_deref().is_none_or(|w| w == m);
    let caller = match crate::pipeline::authenticate::caller(&app, &live, &headers).await {
        Ok(caller) => caller,
        Err(e) => return ApiError(e).into_response(),
    };
    // A concrete name only a wildcard pattern serves: the deployments it resolves to.
    if let Some(m) = q.model.as_deref().filter(|m| caller.may_use(m))
        && let Some(info) = live.wildcard_model_info_json(m)
    {
        return axum::Json(info).into_response();
    }
    axum::Json(live.model_info_json(&|m: &str| caller.may_use(m) && wanted(m))).into_response()
}

/// Prometheus scrape endpoint. Unauthenticated like the health routes (and LiteLLM's default):
/// it carries counts and timings only, no keys, prompts or model names.
async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    ([("content-type", "text/plain; version=0.0.4; charset=utf-8")], {
        let live = app.live.load();
        let breakers: Vec<&crate::breaker::Breaker> = live
            .cache
            .iter()
            .filter_map(|c| c.breaker())
            .chain(app.rate_limits.breaker())
            .collect();
        app.metrics.set_rate_limit_fallbacks(app.rate_limits.fallbacks());
        app.metrics.render(&app.writer, &breakers, app.in_flight.requests())
    })
}

async fn liveliness() -> impl IntoResponse {
    // LiteLLM answers with this exact JSON string; health checks written for it compare it.
    axum::Json("I'm alive!")
}

/// Readiness is open to health checkers, so without the master key it does not say where
/// files live: paths are cut to their file names, in the fields and in error texts.
struct PathView {
    detail: bool,
    dirs: Vec<String>,
}

impl PathView {
    fn new(detail: bool, paths: &[&Path]) -> PathView {
        let mut dirs: Vec<String> = paths
            .iter()
            .filter_map(|p| p.parent())
            .map(|d| d.display().to_string())
            .filter(|d| !d.is_empty() && d != "/")
            .collect();
        // Longest first, so a directory inside another is cut whole.
        dirs.sort_by_key(|d| std::cmp::Reverse(d.len()));
        PathView { detail, dirs }
    }

    fn path(&self, p: &Path) -> String {
        if self.detail {
            return p.display().to_string();
        }
        p.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    }

    fn text(&self, s: Option<String>) -> Option<String> {
        let mut s = s?;
        if !self.detail {
            for d in &self.dirs {
                s = s.replace(&format!("{d}/"), "");
            }
        }
        Some(s)
    }
}

async fn readiness(State(app): State<Arc<App>>, headers: HeaderMap) -> impl IntoResponse {
    let live = app.live.load();
    let sqlite_path = app.store.data_dir.join(tollgate_store::DB_FILE_NAME);
    let mut known: Vec<&Path> = vec![&live.config.path, &sqlite_path];
    known.extend(app.store.jsonl.as_deref());
    let view = PathView::new(check_auth(&app, &headers).is_ok(), &known);
    let config_error = view.text(app.config_error.lock().ok().and_then(|e| e.clone()));
    let cache = match &live.cache {
        None => json!({"state": "off"}),
        Some(c) => json!({
            "state": "on",
            "backend": c.backend_name(),
            "healthy": c.healthy(),
            "hits": c.stats.hits.load(std::sync::atomic::Ordering::Relaxed),
            "misses": c.stats.misses.load(std::sync::atomic::Ordering::Relaxed),
            "errors": c.stats.errors.load(std::sync::atomic::Ordering::Relaxed),
            "stores": c.stats.stores.load(std::sync::atomic::Ordering::Relaxed),
            "stores_pending": c.stats.stores_pending.load(std::sync::atomic::Ordering::Relaxed),
            "last_error": c.last_error(),
            "redis": c.redis_circuit().map(|s| json!({
                "state": s.state.as_str(),
                "since": chrono::DateTime::<chrono::Utc>::from(s.since).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "consecutive_failures": s.consecutive_failures,
                "connected": c.connected(),
                "attempted": s.attempted,
                "failed": s.failed,
                "skipped": s.skipped,
                "probes": s.probes,
            })),
        }),
    };
    let limits = &app.rate_limits;
    // Counted per process while the circuit is not closed: still serving, but worth a look.
    let limits_healthy = limits
        .breaker()
        .is_none_or(|b| b.snapshot().state == CircuitState::Closed);
    let limits_redis = limits.breaker().map(|b| {
        let s = b.snapshot();
        json!({
            "state": s.state.as_str(),
            "connected": limits.connected(),
            "consecutive_failures": s.consecutive_failures,
            "last_error": s.last_error,
            "counted_locally": limits.fallbacks(),
        })
    });
    let store = app.writer.status();
    let store_error = store.problem();
    // Still serving in every case, so 200: degraded says what needs attention.
    let healthy = config_error.is_none()
        && live.cache.as_ref().is_none_or(|c| c.healthy())
        && store_error.is_none()
        && limits_healthy;
    let sinks: serde_json::Map<String, serde_json::Value> = store
        .sinks
        .iter()
        .map(|s| {
            (
                s.kind.as_str().to_string(),
                json!({
                    "path": view.path(&s.path),
                    "written": s.written,
                    "failed": s.failed,
                    "write_errors": s.write_errors,
                    "pending_retry": s.pending,
                    "last_error": view.text(s.last_error.clone()),
                }),
            )
        })
        .collect();
    axum::Json(json!({
        "status": if healthy { "healthy" } else { "degraded" },
        "config_version": live.version,
        "config_path": view.path(&live.config.path),
        "config_error": config_error,
        "config_warnings": live.all_warnings().count(),
        "model_groups": live.group_order.len(),
        "cache": cache,
        // Where rpm, tpm and parallel limits are counted; with Redis, its circuit and how many
        // requests were counted in this process while it did not answer.
        "rate_limits": limits.backend(),
        "rate_limits_redis": limits_redis,
        "auth": if app.auth_enabled { "master_key" } else { "off" },
        "in_flight": {
            "requests": app.in_flight.requests(),
            "max": live.config.server.max_parallel_requests,
        },
        "store": {
            "sqlite": view.path(&sqlite_path),
            "jsonl": app.store.jsonl.as_deref().map(|p| view.path(p)),
            "durability": store.durability.as_str(),
            "records_written": store.written,
            "records_failed": store.failed,
            "records_dropped": store.dropped,
            "error": view.text(store_error),
            "sinks": sinks,
            // The shared store: where (password masked), whether it is reachable, and how many
            // records wait in SQLite for it.
            "postgres": store.shared.as_ref().map(|s| json!({
                "url": s.location,
                "connected": s.connected,
                "backlog": s.backlog,
                "shipped": s.shipped,
                "failures": s.failures,
                "last_error": s.last_error,
            })),
            "instance_id": app.store.instance_id,
        },
        "tollgate_version": env!("CARGO_PKG_VERSION"),
        // LiteLLM's fields, for health checkers written against it. `cache` keeps tollgate's
        // object above; `success_callbacks` names where every record goes.
        "db": match store.shared.as_ref() {
            None => "Not connected",
            Some(s) if s.connected => "connected",
            Some(_) => "disconnected",
        },
        "litellm_version": env!("CARGO_PKG_VERSION"),
        "success_callbacks": store.sinks.iter().map(|s| s.kind.as_str()).collect::<Vec<_>>(),
        "use_aiohttp_transport": false,
        "log_level": "INFO",
        "is_detailed_debug": false,
    }))
}

async fn admin_reload(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Err(e) = check_auth(&app, &headers) {
        return e.into_response();
    }
    let app2 = app.clone();
    match tokio::task::spawn_blocking(move || app2.reload()).await {
        Ok(Ok(v)) => axum::Json(json!({"status": "reloaded", "config_version": v})).into_response(),
        Ok(Err(msg)) => ApiError(
            tollgate_core::GatewayError::new(tollgate_core::ErrorKind::InvalidRequest, msg).with_code("config_invalid"),
        )
        .into_response(),
        Err(e) => ApiError(tollgate_core::GatewayError::new(
            tollgate_core::ErrorKind::Internal,
            e.to_string(),
        ))
        .into_response(),
    }
}

async fn admin_config(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Err(e) = check_auth(&app, &headers) {
        return e.into_response();
    }
    let live = app.live.load();
    let warnings: Vec<String> = live.all_warnings().map(|w| w.to_string()).collect();
    axum::Json(json!({
        "config_version": live.version,
        "config_path": live.config.path.display().to_string(),
        "config_error": app.config_error.lock().ok().and_then(|e| e.clone()),
        "warnings": warnings,
        "effective": live.config.effective,
    }))
    .into_response()
}

async fn not_found(uri: axum::http::Uri) -> Response {
    ApiError(
        tollgate_core::GatewayError::new(
            tollgate_core::ErrorKind::NotFound,
            format!("no route {}: tollgate serves /v1/chat/completions, /v1/completions, /v1/messages, /v1/responses, /v1/embeddings, /v1/moderations, /v1/rerank, /v1/images/generations, /v1/audio/transcriptions, /v1/models, /v1/model/info, /model_group/info, /routes, /health and /health/*", uri.path()),
        )
        .with_code("not_found"),
    )
    .into_response()
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    // axum adds the route's `Allow` header to this answer.
    ApiError(
        tollgate_core::GatewayError::new(
            tollgate_core::ErrorKind::InvalidRequest,
            format!("method {method} is not allowed on {}", uri.path()),
        )
        .with_status(405)
        .with_code("method_not_allowed"),
    )
    .into_response()
}
