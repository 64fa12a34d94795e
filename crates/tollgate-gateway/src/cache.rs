//! The response cache: exact-match, keyed on what decides the upstream's answer, in memory (moka)
//! or in Redis (shared by every gateway instance pointing at it).
//!
//! The cache is never a reason for a request to fail: a Redis that is down or slow turns lookups
//! into bypasses (counted, and shown in `/health/readiness`), and the request goes upstream.
//! Every Redis operation goes through a [`Breaker`], so an outage costs a few operation timeouts
//! and then nothing: while the circuit is open, Redis is skipped without a round trip.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tollgate_core::Usage;
use tollgate_core::config::{CacheBackend, CacheSettings, RedisGuard};

use crate::breaker::{Breaker, BreakerError, BreakerSnapshot, CircuitState};
use crate::redis_link::RedisLink;

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

/// LiteLLM's per-request controls (`cache_field`: `"cache": {"no-cache": true, …}` in the body) and HTTP's
/// `Cache-Control` request header. `None`: the cache is skipped for this request (bypass).
pub fn request_controls(
    settings: &CacheSettings,
    call_type: &str,
    fingerprint: &str,
    stream: bool,
    cache_field: Option<&Value>,
    headers: &HeaderMap,
) -> Option<RequestCache> {
    if !settings.allows(call_type) {
        return None;
    }
    let ctl = cache_field.and_then(Value::as_object);
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
    /// Lookups or stores that did not happen because the backend failed or its circuit was open.
    pub errors: AtomicU64,
    /// Answers stored (kept by the backend).
    pub stores: AtomicU64,
    /// Stores handed to [`ResponseCache::store_later`] and not finished yet: with `stores`, tells
    /// when every answer already sent has landed in the cache.
    pub stores_pending: AtomicU64,
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
    /// One connection shared by every request, every operation through the breaker.
    Redis(Arc<RedisLink>),
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
    /// down at startup delays nothing and fails nothing. `guard` is the circuit breaker's
    /// settings (`tollgate_settings.redis`).
    pub fn new(settings: CacheSettings, guard: &RedisGuard) -> Result<Self, CacheError> {
        let store = match &settings.backend {
            CacheBackend::Local { max_entries } => Store::Memory(
                moka::future::Cache::builder()
                    .max_capacity(*max_entries)
                    .expire_after(EntryTtl)
                    .build(),
            ),
            CacheBackend::Redis { url } => {
                let client = redis::Client::open(url.expose()).map_err(|e| CacheError(e.to_string()))?;
                Store::Redis(Arc::new(RedisLink::new(client, Breaker::new("redis", guard.into()))))
            }
        };
        let cache = ResponseCache {
            settings,
            stats: CacheStats::default(),
            store,
        };
        cache.warm_up();
        Ok(cache)
    }

    /// Connects now when there is a runtime to do it on, so the first requests find the
    /// connection up; without one, the first request connects. Through the breaker like any
    /// operation: a Redis that is down at startup counts one failure.
    fn warm_up(&self) {
        let Store::Redis(r) = &self.store else { return };
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let r = r.clone();
        tokio::spawn(async move { r.warm_up().await });
    }

    /// The Redis circuit breaker's state; `None` for the memory cache.
    pub fn breaker(&self) -> Option<&Breaker> {
        match &self.store {
            Store::Memory(_) => None,
            Store::Redis(r) => Some(r.breaker()),
        }
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
            Store::Redis(r) => match redis_get(r, &rc.key).await {
                Ok(e) => e.map(Arc::new),
                Err(e) => {
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    // Skips are silent here: the breaker logs the outage, rate-limited.
                    if !matches!(e, BreakerError::Open) {
                        tracing::debug!("response cache bypassed: Redis GET: {e}");
                    }
                    return Lookup::Unavailable;
                }
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

    /// Stores off the request path: storing must not delay the answer (Redis is a network round
    /// trip). Counted as pending from the moment it is handed over, before the client has the
    /// answer, so a caller that sees no pending stores knows the answer is in the cache.
    pub fn store_later(self: &Arc<Self>, key: String, entry: CachedEntry) {
        self.stats.stores_pending.fetch_add(1, Ordering::Relaxed);
        let cache = self.clone();
        tokio::spawn(async move {
            cache.put(key, entry).await;
            cache.stats.stores_pending.fetch_sub(1, Ordering::Relaxed);
        });
    }

    pub async fn put(&self, key: String, entry: CachedEntry) {
        match &self.store {
            Store::Memory(m) => m.insert(key, Arc::new(entry)).await,
            Store::Redis(r) => {
                if let Err(e) = redis_put(r, &key, &entry).await {
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    if !matches!(e, BreakerError::Open) {
                        tracing::debug!("response cache not stored: Redis SET: {e}");
                    }
                    return;
                }
            }
        }
        self.stats.stores.fetch_add(1, Ordering::Relaxed);
    }

    /// True while the backend works (always for memory): for Redis, the circuit is closed and
    /// the last operation did not fail.
    pub fn healthy(&self) -> bool {
        self.breaker().is_none_or(|b| {
            let s = b.snapshot();
            s.state == CircuitState::Closed && s.consecutive_failures == 0
        })
    }

    pub fn last_error(&self) -> Option<String> {
        self.breaker().and_then(|b| b.snapshot().last_error)
    }

    /// The Redis circuit for readiness; `None` for the memory cache.
    pub fn redis_circuit(&self) -> Option<BreakerSnapshot> {
        self.breaker().map(Breaker::snapshot)
    }

    /// Whether a Redis connection is open right now (false for memory).
    pub fn connected(&self) -> bool {
        match &self.store {
            Store::Memory(_) => false,
            Store::Redis(r) => r.connected(),
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

async fn redis_get(r: &RedisLink, key: &str) -> Result<Option<CachedEntry>, BreakerError<redis::RedisError>> {
    let bytes: Option<Vec<u8>> = r.cmd(redis::cmd("GET").arg(key)).await?;
    // An entry that no longer parses (another version wrote it) is a miss.
    Ok(bytes.and_then(|b| serde_json::from_slice(&b).ok()))
}

async fn redis_put(r: &RedisLink, key: &str, entry: &CachedEntry) -> Result<(), BreakerError<redis::RedisError>> {
    let Ok(bytes) = serde_json::to_vec(entry) else {
        return Ok(());
    };
    let ttl_ms = (entry.ttl_s * 1000.0).max(1.0) as u64;
    r.cmd(redis::cmd("SET").arg(key).arg(bytes).arg("PX").arg(ttl_ms)).await
}
