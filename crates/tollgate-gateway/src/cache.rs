//! The response cache: exact-match, keyed on what decides the upstream's answer, in memory (moka)
//! or in Redis (shared by every gateway instance pointing at it).
//!
//! The cache is never a reason for a request to fail: a Redis that is down or slow turns lookups
//! into bypasses (counted, and shown in `/health/readiness`), and the request goes upstream.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tollgate_core::Usage;
use tollgate_core::config::{CacheBackend, CacheSettings};

/// A Redis round trip slower than this is treated as Redis being down for this request.
const REDIS_OP_TIMEOUT: Duration = Duration::from_millis(250);
/// How often a request may trigger a reconnect attempt while Redis is unreachable.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);
/// Redis errors younger than this mark the gateway `degraded` in readiness.
const DEGRADED_FOR: Duration = Duration::from_secs(30);

/// A stored answer, replayable as JSON or as the SSE stream it came from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedEntry {
    pub stored_at_ms: u64,
    pub ttl_s: f64,
    /// Plain: the response body as sent to the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Streamed: every chunk's `data:` payload in order, the usage chunk included, `[DONE]` not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chunks: Vec<String>,
    pub usage: Usage,
    /// What the original request cost: what each hit saves.
    pub cost_usd: Option<f64>,
    pub model: String,
    pub provider: String,
    pub finish_reason: Option<String>,
}

impl CachedEntry {
    pub fn age_s(&self) -> f64 {
        now_ms().saturating_sub(self.stored_at_ms) as f64 / 1000.0
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What one request may do with the cache, from the config and its own controls.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestCache {
    pub key: String,
    pub lookup: bool,
    pub store: bool,
    pub ttl_s: f64,
    /// Accept only entries younger than this (`s-maxage`, `Cache-Control: max-age`).
    pub max_age_s: Option<f64>,
}

/// LiteLLM's per-request controls (`"cache": {"no-cache": true, …}` in the body) and HTTP's
/// `Cache-Control` request header. `None`: the cache is skipped for this request (bypass).
pub fn request_controls(
    settings: &CacheSettings,
    call_type: &str,
    fingerprint: &str,
    stream: bool,
    body: &Map<String, Value>,
    headers: &HeaderMap,
) -> Option<RequestCache> {
    if !settings.allows(call_type) {
        return None;
    }
    let ctl = body.get("cache").and_then(Value::as_object);
    let flag = |name: &str| ctl.and_then(|c| c.get(name)).and_then(Value::as_bool).unwrap_or(false);
    let num = |name: &str| ctl.and_then(|c| c.get(name)).and_then(Value::as_f64);
    if !settings.default_on && !flag("use-cache") {
        return None;
    }
    let mut rc = RequestCache {
        key: String::new(),
        lookup: !flag("no-cache"),
        store: !flag("no-store"),
        ttl_s: num("ttl").filter(|t| *t > 0.0).unwrap_or(settings.ttl),
        max_age_s: num("s-maxage"),
    };
    if let Some(cc) = headers.get("cache-control").and_then(|v| v.to_str().ok()) {
        for directive in cc.split(',').map(str::trim) {
            match directive {
                "no-cache" => rc.lookup = false,
                "no-store" => rc.store = false,
                d => {
                    if let Some(age) = d.strip_prefix("max-age=").or_else(|| d.strip_prefix("s-maxage=")) {
                        rc.max_age_s = age.parse().ok();
                    }
                }
            }
        }
    }
    let namespace = ctl
        .and_then(|c| c.get("namespace"))
        .and_then(Value::as_str)
        .or(settings.namespace.as_deref())
        .unwrap_or("tollgate");
    let kind = if stream { "stream" } else { "plain" };
    rc.key = format!("{namespace}:{call_type}:{kind}:{fingerprint}");
    Some(rc)
}

/// Counters for readiness and the startup line.
#[derive(Debug, Default)]
pub struct CacheStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    /// Lookups or stores skipped because the backend failed.
    pub errors: AtomicU64,
}

pub enum Lookup {
    Hit(Arc<CachedEntry>),
    Miss,
    /// The backend failed; the request goes upstream and is recorded as a bypass.
    Unavailable,
}

pub struct ResponseCache {
    pub settings: CacheSettings,
    pub stats: CacheStats,
    store: Store,
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("settings", &self.settings)
            .field("stats", &self.stats)
            .finish()
    }
}

enum Store {
    Memory(moka::future::Cache<String, Arc<CachedEntry>>),
    Redis(RedisStore),
}

struct RedisStore {
    client: redis::Client,
    /// Shared with the background connect task, which fills it.
    conn: Arc<ArcSwapOption<redis::aio::ConnectionManager>>,
    last_attempt: std::sync::Mutex<Option<Instant>>,
    /// Cleared when a connection is (re)established, so readiness recovers with Redis.
    last_error: Arc<std::sync::Mutex<Option<(Instant, String)>>>,
}

/// Entries expire after their own TTL (a request may set a shorter or longer one than the config).
struct EntryTtl;

impl moka::Expiry<String, Arc<CachedEntry>> for EntryTtl {
    fn expire_after_create(&self, _key: &String, value: &Arc<CachedEntry>, _created_at: Instant) -> Option<Duration> {
        Some(Duration::from_secs_f64(value.ttl_s.max(0.0)))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid Redis URL for the response cache: {0}")]
pub struct CacheError(String);

impl ResponseCache {
    /// Builds the backend without connecting: Redis connects on first use, so a Redis that is
    /// down at startup delays nothing and fails nothing.
    pub fn new(settings: CacheSettings) -> Result<Self, CacheError> {
        let store = match &settings.backend {
            CacheBackend::Local { max_entries } => Store::Memory(
                moka::future::Cache::builder()
                    .max_capacity(*max_entries)
                    .expire_after(EntryTtl)
                    .build(),
            ),
            CacheBackend::Redis { url } => {
                let client = redis::Client::open(url.expose()).map_err(|e| CacheError(e.to_string()))?;
                let store = RedisStore {
                    client,
                    conn: Arc::new(ArcSwapOption::empty()),
                    last_attempt: std::sync::Mutex::new(Some(Instant::now())),
                    last_error: Arc::new(std::sync::Mutex::new(None)),
                };
                // Connect now when there is a runtime to do it on, so the first requests find
                // the connection up; without one, the first request starts it.
                if tokio::runtime::Handle::try_current().is_ok() {
                    store.spawn_connect();
                }
                Store::Redis(store)
            }
        };
        Ok(ResponseCache {
            settings,
            stats: CacheStats::default(),
            store,
        })
    }

    pub fn backend_name(&self) -> &'static str {
        match self.store {
            Store::Memory(_) => "local",
            Store::Redis(_) => "redis",
        }
    }

    pub async fn get(&self, rc: &RequestCache) -> Lookup {
        let entry = match &self.store {
            Store::Memory(m) => m.get(&rc.key).await,
            Store::Redis(r) => match r.get(&rc.key, &self.stats).await {
                Ok(e) => e.map(Arc::new),
                Err(()) => return Lookup::Unavailable,
            },
        };
        let fresh = entry.filter(|e| rc.max_age_s.is_none_or(|max| e.age_s() <= max) && e.age_s() <= e.ttl_s);
        match fresh {
            Some(e) => {
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
                Lookup::Hit(e)
            }
            None => {
                self.stats.misses.fetch_add(1, Ordering::Relaxed);
                Lookup::Miss
            }
        }
    }

    pub async fn put(&self, key: String, entry: CachedEntry) {
        match &self.store {
            Store::Memory(m) => m.insert(key, Arc::new(entry)).await,
            Store::Redis(r) => r.put(key, &entry, &self.stats).await,
        }
    }

    /// True while the backend works (always for memory).
    pub fn healthy(&self) -> bool {
        match &self.store {
            Store::Memory(_) => true,
            Store::Redis(r) => {
                let recent_error = r
                    .last_error
                    .lock()
                    .ok()
                    .and_then(|e| e.as_ref().map(|(at, _)| at.elapsed() < DEGRADED_FOR))
                    .unwrap_or(false);
                r.conn.load().is_some() && !recent_error
            }
        }
    }

    pub fn last_error(&self) -> Option<String> {
        match &self.store {
            Store::Memory(_) => None,
            Store::Redis(r) => r
                .last_error
                .lock()
                .ok()
                .and_then(|e| e.as_ref().map(|(_, m)| m.clone())),
        }
    }

    pub fn describe(&self) -> String {
        let s = &self.settings;
        format!(
            "on ({}, ttl {}s{}{})",
            self.backend_name(),
            s.ttl,
            s.namespace
                .as_ref()
                .map(|n| format!(", namespace {n}"))
                .unwrap_or_default(),
            if s.default_on {
                ""
            } else {
                ", default_off: only requests with cache.use-cache"
            }
        )
    }
}

impl RedisStore {
    /// The live connection, or `None` (and a reconnect in the background at most once a second).
    fn connection(&self) -> Option<redis::aio::ConnectionManager> {
        if let Some(c) = self.conn.load_full() {
            return Some((*c).clone());
        }
        let due = match self.last_attempt.lock() {
            Ok(mut last) => {
                let due = last.is_none_or(|t| t.elapsed() >= RECONNECT_EVERY);
                if due {
                    *last = Some(Instant::now());
                }
                due
            }
            Err(_) => false,
        };
        if due {
            self.spawn_connect();
        }
        None
    }

    fn spawn_connect(&self) {
        let client = self.client.clone();
        let slot = self.conn.clone();
        let last_error = self.last_error.clone();
        tokio::spawn(async move {
            let cfg = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(1)))
                .set_response_timeout(Some(REDIS_OP_TIMEOUT));
            match tokio::time::timeout(
                Duration::from_secs(2),
                redis::aio::ConnectionManager::new_with_config(client, cfg),
            )
            .await
            {
                Ok(Ok(conn)) => {
                    slot.store(Some(Arc::new(conn)));
                    if let Ok(mut e) = last_error.lock() {
                        *e = None;
                    }
                }
                Ok(Err(e)) => tracing::warn!("response cache: cannot connect to Redis: {e}"),
                Err(_) => tracing::warn!("response cache: Redis connect timed out"),
            }
        });
    }

    fn failed(&self, stats: &CacheStats, what: &str) {
        stats.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut e) = self.last_error.lock() {
            *e = Some((Instant::now(), what.to_string()));
        }
        tracing::warn!("response cache bypassed: {what}");
    }

    async fn get(&self, key: &str, stats: &CacheStats) -> Result<Option<CachedEntry>, ()> {
        let Some(mut conn) = self.connection() else {
            self.failed(stats, "Redis is not connected");
            return Err(());
        };
        let cmd = redis::cmd("GET").arg(key).to_owned();
        let fut = cmd.query_async::<Option<Vec<u8>>>(&mut conn);
        match tokio::time::timeout(REDIS_OP_TIMEOUT, fut).await {
            // An entry that no longer parses (another version wrote it) is a miss.
            Ok(Ok(Some(bytes))) => Ok(serde_json::from_slice(&bytes).ok()),
            Ok(Ok(None)) => Ok(None),
            Ok(Err(e)) => {
                self.failed(stats, &format!("Redis GET failed: {e}"));
                Err(())
            }
            Err(_) => {
                self.failed(stats, "Redis GET timed out");
                Err(())
            }
        }
    }

    async fn put(&self, key: String, entry: &CachedEntry, stats: &CacheStats) {
        let Some(mut conn) = self.connection() else {
            self.failed(stats, "Redis is not connected");
            return;
        };
        let Ok(bytes) = serde_json::to_vec(entry) else { return };
        let ttl_ms = (entry.ttl_s * 1000.0).max(1.0) as u64;
        let cmd = redis::cmd("SET").arg(&key).arg(bytes).arg("PX").arg(ttl_ms).to_owned();
        let fut = cmd.query_async::<()>(&mut conn);
        match tokio::time::timeout(REDIS_OP_TIMEOUT, fut).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.failed(stats, &format!("Redis SET failed: {e}")),
            Err(_) => self.failed(stats, "Redis SET timed out"),
        }
    }
}
