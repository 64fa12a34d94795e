//! LiteLLM's `config.yaml`, read as it is.
//!
//! The file is parsed into a YAML tree first so that every key can be accounted for: keys tollgate
//! acts on become typed settings, keys it does not act on (yet, or ever, like Python `callbacks`)
//! become warnings naming their YAML path. Nothing is silently ignored: that silence is exactly how
//! the seed system's cache stayed off for weeks.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};

// The error types live in `config_error` so that `routing` can use them without importing this
// module; re-exported here, where callers have always found them.
pub use crate::config_error::{ConfigError, ConfigWarning};
use crate::config_error::{invalid, warn};
use crate::config_seconds::{MAX_SECONDS, seconds_up_to};
use crate::database::{self, DatabaseSettings};
// `Secret` and `Env` live in their own modules so that `database` can use them without importing
// this one; re-exported here, where callers have always found them.
pub use crate::env::{Env, ProcessEnv};
use crate::price::Price;
use crate::redact;
pub use crate::secret::Secret;
use crate::source_map::{Position, SourceMap};

/// Text the source map's reader refuses (it is stricter than the YAML reader on odd flow
/// indentation) still must not merge duplicate keys silently: the YAML reader's own tree refuses
/// them, with a position but without the path.
fn refuse_duplicates_unmapped(file: &str, text: &str) -> Result<(), ConfigError> {
    match serde_norway::from_str::<serde_norway::Value>(text) {
        Err(e) if e.to_string().contains("duplicate entry") => {
            let (line, column) = e.location().map(|l| (l.line(), l.column())).unzip();
            Err(ConfigError::Invalid {
                file: file.to_string(),
                path: "(a mapping)".to_string(),
                message: format!(
                    "{e}: a key is written twice in the same mapping; YAML keeps only the last one, so the first would be \
                     silently ignored. Merge the two into one"
                ),
                line,
                column,
            })
        }
        _ => Ok(()),
    }
}

/// The position maps of the config file and its includes, in merge order.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    files: Vec<(String, SourceMap)>,
}

impl Sources {
    /// The file and position of a YAML path of the merged config (`model_list` indices count
    /// across files in merge order), preferring `file` for other paths.
    pub fn locate(&self, path: &str, file: &str) -> Option<(String, Position)> {
        if let Some(rest) = path.strip_prefix("model_list[")
            && let Some((n, tail)) = rest.split_once(']')
            && let Ok(mut i) = n.parse::<usize>()
        {
            for (f, map) in &self.files {
                let len = map.list_len("model_list");
                if i < len {
                    return map.nearest(&format!("model_list[{i}]{tail}")).map(|p| (f.clone(), p));
                }
                i -= len;
            }
            return None;
        }
        let preferred = self.files.iter().filter(|(f, _)| f == file);
        let others = self.files.iter().filter(|(f, _)| f != file);
        preferred
            .chain(others)
            .find_map(|(f, map)| map.nearest(path).map(|p| (f.clone(), p)))
    }

    /// Adds the position of an error's path, when the error has none yet.
    fn place(&self, e: ConfigError) -> ConfigError {
        match e {
            ConfigError::Invalid {
                file,
                path,
                message,
                line: None,
                column: None,
            } => match self.locate(&path, &file) {
                Some((f, pos)) => ConfigError::Invalid {
                    file: f,
                    path,
                    message,
                    line: Some(pos.line),
                    column: Some(pos.column),
                },
                None => ConfigError::Invalid {
                    file,
                    path,
                    message,
                    line: None,
                    column: None,
                },
            },
            other => other,
        }
    }

    fn add(&mut self, file: &str, text: &str) -> Result<(), ConfigError> {
        let map = SourceMap::build(text).map_err(|d| ConfigError::Invalid {
            file: file.to_string(),
            path: d.path.clone(),
            message: format!(
                "written twice in the same mapping (first at line {}); YAML keeps only the last one, so the first would be \
                 silently ignored. Merge the two into one",
                d.first.line
            ),
            line: Some(d.at.line),
            column: Some(d.at.column),
        })?;
        if map.is_empty() && !text.trim().is_empty() {
            refuse_duplicates_unmapped(file, text)?;
        }
        self.files.push((file.to_string(), map));
        Ok(())
    }
}

/// Where to put a `cache_control` marker: every message of a role, or the message at an index
/// (negative counts from the end).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InjectionPoint {
    pub role: Option<String>,
    pub index: Option<i64>,
}

fn masked_url<S: serde::Serializer>(u: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match u {
        Some(u) => s.serialize_some(&redact::url(u)),
        None => s.serialize_none(),
    }
}

fn masked_headers<S: serde::Serializer>(h: &BTreeMap<String, String>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(h.iter().map(|(k, v)| (k, Secret::new(v.clone()).redacted())))
}

/// One entry of `model_list`: a deployment serving a model group. `Debug` and `Serialize` mask
/// the credentials `api_base` and `extra_headers` may carry.
#[derive(Clone, Serialize)]
pub struct DeploymentConfig {
    /// The model group clients ask for (`model_name`).
    pub model_name: String,
    /// LiteLLM's model string with its provider prefix (`deepseek/deepseek-v3.2`).
    pub model: String,
    /// As written (the real URL, credentials included); serialised masked.
    #[serde(serialize_with = "masked_url")]
    pub api_base: Option<String>,
    pub api_key: Option<Secret>,
    /// Azure OpenAI's `api-version` (`litellm_params.api_version`).
    pub api_version: Option<String>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    /// Seconds.
    pub timeout: Option<f64>,
    /// Seconds until the first byte of a stream.
    pub stream_timeout: Option<f64>,
    pub weight: Option<f64>,
    /// Headers sent upstream with every request (`litellm_params.extra_headers`); serialised
    /// with their values masked.
    #[serde(serialize_with = "masked_headers")]
    pub extra_headers: BTreeMap<String, String>,
    /// LiteLLM's `cache_control_injection_points`: messages that get an Anthropic-style
    /// `cache_control` marker, so a long stable prefix is cached by the provider.
    pub cache_control_injection_points: Vec<InjectionPoint>,
    /// Per-deployment prices and limits from `litellm_params` and `model_info`.
    pub price_override: Price,
    pub model_info: ModelInfoConfig,
    /// Index in the merged `model_list`, for messages.
    pub index: usize,
}

impl fmt::Debug for DeploymentConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: BTreeMap<&String, String> = self
            .extra_headers
            .iter()
            .map(|(k, v)| (k, Secret::new(v.clone()).redacted()))
            .collect();
        f.debug_struct("DeploymentConfig")
            .field("model_name", &self.model_name)
            .field("model", &self.model)
            .field("api_base", &self.api_base.as_deref().map(redact::url))
            .field("api_key", &self.api_key)
            .field("api_version", &self.api_version)
            .field("rpm", &self.rpm)
            .field("tpm", &self.tpm)
            .field("timeout", &self.timeout)
            .field("stream_timeout", &self.stream_timeout)
            .field("weight", &self.weight)
            .field("extra_headers", &headers)
            .field("cache_control_injection_points", &self.cache_control_injection_points)
            .field("price_override", &self.price_override)
            .field("model_info", &self.model_info)
            .field("index", &self.index)
            .finish()
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ModelInfoConfig {
    pub id: Option<String>,
    pub base_model: Option<String>,
    /// Everything else in `model_info`, passed through to `/v1/model/info` as LiteLLM does.
    pub extra: Map<String, Value>,
}

/// Where the response cache keeps entries.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheBackend {
    /// In this process, size-bounded (`max_size_in_memory` entries).
    Local { max_entries: u64 },
    /// Shared by every gateway instance that points at the same Redis.
    Redis { url: Secret },
}

/// `litellm_settings.cache: true` with its `cache_params`, in LiteLLM's names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CacheSettings {
    pub backend: CacheBackend,
    pub namespace: Option<String>,
    /// Seconds an entry lives.
    pub ttl: f64,
    /// `default_off`: only requests that send `cache: {use-cache: true}` use the cache.
    pub default_on: bool,
    /// LiteLLM call types (`acompletion`, `aembedding`, …); empty means all.
    pub supported_call_types: Vec<String>,
}

impl CacheSettings {
    pub fn allows(&self, call_type: &str) -> bool {
        self.supported_call_types.is_empty()
            || self
                .supported_call_types
                .iter()
                .any(|c| c.trim_start_matches('a') == call_type.trim_start_matches('a'))
    }
}

/// Longest cache entry life, seconds (a year).
const MAX_CACHE_TTL_S: f64 = 365.0 * 86_400.0;
/// Largest accepted request body, MB (1 TiB): the limit is kept as bytes in a `usize`.
const MAX_REQUEST_SIZE_MB: f64 = 1_048_576.0;
/// No model costs a dollar per token; a bigger price is a unit mistake.
const MAX_PRICE_PER_TOKEN: f64 = 1.0;
/// `tollgate_settings.redis`: how tollgate treats Redis as a dependency it can live without.
/// LiteLLM has no such settings (its Redis client only has `socket_timeout`), so they are
/// tollgate's own. Not cache-specific: whatever else uses Redis is guarded the same way.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RedisGuard {
    /// Consecutive failed or timed-out operations that open the circuit (Redis is then skipped).
    pub failure_threshold: u32,
    /// Seconds the circuit stays open before one probe operation is let through.
    pub retry_after: f64,
    /// The wait doubles after each failed probe, up to this many seconds.
    pub max_retry_after: f64,
    /// Seconds one operation (connecting included) may take before it counts as a failure.
    pub operation_timeout: f64,
}

/// `litellm_settings.max_budget` and `budget_duration`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProxyBudget {
    pub max_budget: f64,
    /// The period the budget is per (`1mo`, `30d`, …); `None`: it never resets.
    pub budget_duration: Option<String>,
}

impl Default for RedisGuard {
    fn default() -> Self {
        RedisGuard {
            failure_threshold: 3,
            retry_after: 1.0,
            max_retry_after: 30.0,
            operation_timeout: 0.25,
        }
    }
}

/// How `GET /health` checks the deployments, as LiteLLM's general_settings say.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthChecks {
    /// `background_health_checks`: check every deployment every `interval_s` and let `/health`
    /// answer from the latest results (LiteLLM's switch; without it `/health` checks on demand).
    pub background: bool,
    /// `health_check_interval`, seconds (LiteLLM's default 300).
    pub interval_s: f64,
    /// `health_check_details`: `false` shows each endpoint's model only.
    pub details: bool,
}

impl Default for HealthChecks {
    fn default() -> Self {
        HealthChecks {
            background: false,
            interval_s: 300.0,
            details: true,
        }
    }
}

/// `general_settings.token_rate_limit_type` (LiteLLM's setting): which tokens of a request count
/// against `tpm_limit`s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenRateLimitType {
    /// Prompt tokens only.
    Input,
    /// Completion tokens only (reasoning included).
    Output,
    /// Both: LiteLLM's default.
    #[default]
    Total,
}

impl TokenRateLimitType {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenRateLimitType::Input => "input",
            TokenRateLimitType::Output => "output",
            TokenRateLimitType::Total => "total",
        }
    }

    /// The tokens of a request with `input` prompt and `output` completion tokens that count.
    pub fn count(self, input: u64, output: u64) -> u64 {
        match self {
            TokenRateLimitType::Input => input,
            TokenRateLimitType::Output => output,
            TokenRateLimitType::Total => input.saturating_add(output),
        }
    }
}

/// The Redis rate limits are counted in, shared by every instance pointing at it: LiteLLM's
/// `router_settings.redis_url` (or `redis_host`/`redis_port`/`redis_password`), else the response
/// cache's Redis. `None` in [`GatewayConfig::rate_limit_redis`]: limits are counted per process.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RateLimitRedis {
    pub url: Secret,
    /// The setting it came from, for the startup line and messages.
    pub source: &'static str,
}

/// Where rate-limit counters live in Redis unless `tollgate_settings.rate_limit_prefix` says.
pub const DEFAULT_RATE_LIMIT_PREFIX: &str = "tollgate:rl";

/// LiteLLM's in-memory default; an entry lives ten minutes unless `ttl` says otherwise.
const DEFAULT_CACHE_TTL_S: f64 = 600.0;
const DEFAULT_MEMORY_ENTRIES: u64 = 10_000;

/// The parts of the config tollgate acts on, plus every warning about the rest.
/// `tollgate_settings.record_durability`: when a request's record counts as kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordDurability {
    /// Records are written in batches off the request path; a `kill -9` can lose the last
    /// ~10 ms of them. The default: a response never waits for the disk.
    #[default]
    Buffered,
    /// A response is sent only after its record is committed (and fsynced) to SQLite;
    /// concurrent requests share one commit.
    Sync,
}

impl RecordDurability {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordDurability::Buffered => "buffered",
            RecordDurability::Sync => "sync",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct GatewayConfig {
    pub path: PathBuf,
    /// The config file and every file it includes (what a reload watches).
    pub files: Vec<PathBuf>,
    pub deployments: Vec<DeploymentConfig>,
    pub master_key: Option<Secret>,
    /// `general_settings.max_request_size_mb`; requests above it get a 413.
    pub max_request_size_mb: f64,
    /// `litellm_settings.request_timeout`, seconds: the default upstream timeout.
    pub request_timeout: Option<f64>,
    /// `tollgate_settings.store_prompts`: keep prompt and response text in records.
    pub store_prompts: bool,
    /// `tollgate_settings.prices_file`: a LiteLLM-format price map to add to the built-in table.
    pub prices_file: Option<PathBuf>,
    /// `tollgate_settings.record_durability`.
    pub record_durability: RecordDurability,
    /// `tollgate_settings` timeouts and caps of the HTTP server itself.
    pub server: ServerLimits,
    /// `general_settings.database_url` (with `database_connection_pool_limit`): the Postgres
    /// database records are shipped to. `None` when unset (or an unset `os.environ/`); the
    /// `--database-url` flag and `DATABASE_URL` can still name one, see
    /// [`database::choose_database`].
    pub database: Option<DatabaseSettings>,
    /// `general_settings.database_connection_pool_limit`, or [`database::DEFAULT_POOL_SIZE`]:
    /// kept apart from `database` because it also sizes the pool of a URL given by the flag or
    /// `DATABASE_URL`.
    pub database_pool_size: u32,
    /// `tollgate_settings.require_database`: `serve` and `check` refuse a config that ends up
    /// without a shared database (see `database::choose_database`).
    pub require_database: bool,
    /// `tollgate_settings.retention_days`: how many days records are kept; `None` keeps them
    /// forever.
    pub retention_days: Option<u32>,
    /// `tollgate_settings.responses_retention_days`: how many days responses stored for the
    /// Responses API (`previous_response_id`, `GET /v1/responses/{id}`) are kept; 30 by default,
    /// as OpenAI keeps them.
    pub responses_retention_days: u32,
    /// `tollgate_settings.dashboard_live_report_ms`: a dashboard report (overview, report page)
    /// that took at least this long to build is kept and shown with its time instead of built
    /// for every visit; 250 by default, 0 keeps every one.
    pub dashboard_live_report_ms: u64,
    /// `tollgate_settings.trusted_proxies`: reverse proxies (addresses or CIDR ranges) whose
    /// `X-Forwarded-For` names the client; empty trusts none, so a client cannot claim an address.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `tollgate_settings.budget_error_status`: 429 (default) or 400, for clients written
    /// against LiteLLM versions that answered a spent budget with 400.
    pub budget_error_status: u16,
    /// `tollgate_settings.hide_budget_amounts`: budget refusals name the scope and entity but
    /// not the spend and the budget (for keys handed to people who should not see them).
    pub hide_budget_amounts: bool,
    /// `litellm_settings.max_budget` (with `budget_duration`): a budget for all traffic through
    /// the gateway, held like any other scope's (scope `proxy`).
    pub proxy_budget: Option<ProxyBudget>,
    /// `litellm_settings.max_end_user_budget`: the budget of every end user (the request's
    /// `user` field) that has none of its own.
    pub max_end_user_budget: Option<f64>,
    /// `litellm_settings.timezone`: where budget periods start (midnight, Monday, the first of
    /// the month); UTC by default.
    pub budget_timezone: chrono_tz::Tz,
    /// `litellm_settings.cache` as written.
    pub cache_requested: bool,
    /// The response cache, when `cache: true`; `None` means off.
    pub cache: Option<CacheSettings>,
    /// `tollgate_settings.redis`: the circuit breaker around every Redis operation.
    pub redis: RedisGuard,
    /// `general_settings.token_rate_limit_type`: which tokens count against tpm limits.
    pub token_rate_limit_type: TokenRateLimitType,
    /// `general_settings.background_health_checks`, `health_check_interval` and
    /// `health_check_details` (LiteLLM reads them from general_settings only).
    pub health_checks: HealthChecks,
    /// Where rpm, tpm and parallel limits are counted across instances; `None`: per process.
    pub rate_limit_redis: Option<RateLimitRedis>,
    /// `tollgate_settings.rate_limit_prefix`: the start of every rate-limit key in Redis
    /// (`{prefix}:{scope}:{entity}:{rpm|tpm|par}`), so gateways of separate deployments (or
    /// tests) sharing one Redis keep apart.
    pub rate_limit_prefix: String,
    pub router: crate::routing::RouterSettings,
    pub workflows: Vec<crate::routing::WorkflowConfig>,
    pub warnings: Vec<ConfigWarning>,
    /// The whole config after includes and `os.environ/` resolution, secrets redacted.
    pub effective: Value,
    /// Where each setting was written, for messages found after loading.
    #[serde(skip)]
    pub sources: Sources,
}

impl GatewayConfig {
    /// `file:line:column` of a YAML path of this config (`file` alone when it cannot be mapped),
    /// for errors found after loading (an unknown provider prefix, a price file).
    pub fn where_is(&self, path: &str) -> String {
        let file = self.path.display().to_string();
        match self.sources.locate(path, &file) {
            Some((f, p)) => format!("{f}:{}:{}", p.line, p.column),
            None => file,
        }
    }

    pub fn model_groups(&self) -> Vec<&str> {
        let mut groups: Vec<&str> = Vec::new();
        for d in &self.deployments {
            if !groups.contains(&d.model_name.as_str()) {
                groups.push(&d.model_name);
            }
        }
        groups
    }
}

/// How long and how much the HTTP server gives one client before it stops waiting. Without these,
/// a client that sends half a header block, or one byte of a large body, holds a connection (and a
/// file descriptor) forever; enough of them and real requests fail with "Too many open files".
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerLimits {
    /// `header_read_timeout`, seconds: from a new connection (or the first byte of a next request)
    /// to the end of its header block.
    pub header_read_timeout_s: f64,
    /// `body_read_timeout`, seconds: the longest a request body may stop arriving (a gap, not a
    /// total, so large bodies on slow links are not cut off).
    pub body_read_timeout_s: f64,
    /// `keepalive_timeout`, seconds: how long an idle connection is kept between requests
    /// (LiteLLM's `--keepalive_timeout`).
    pub keepalive_timeout_s: f64,
    /// `max_connections`: open client connections; `None` derives it from the open-file limit.
    pub max_connections: Option<usize>,
    /// `max_inflight_request_mb`: request bodies held in memory at once, over all requests.
    pub max_inflight_request_mb: f64,
    /// `general_settings.global_max_parallel_requests` (LiteLLM's key, hence not under
    /// `tollgate_settings`): requests in flight at once, over all endpoints; past it new requests
    /// are refused at once with 429 instead of queueing. `None`: no cap.
    pub max_parallel_requests: Option<u64>,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_read_timeout_s: 10.0,
            body_read_timeout_s: 30.0,
            keepalive_timeout_s: 75.0,
            max_connections: None,
            max_inflight_request_mb: 256.0,
            max_parallel_requests: None,
        }
    }
}

/// A day: longer server timeouts are typos, and would not fit the timers.
const MAX_SERVER_TIMEOUT_S: f64 = 86_400.0;
const MAX_CONNECTIONS_SETTING: u64 = 1_000_000;
/// More requests in flight than this is a typo (each one holds a connection or stream).
const MAX_PARALLEL_REQUESTS_SETTING: u64 = 1_000_000;

/// `general_settings.database_connection_pool_limit`: a whole number of connections from 1 up,
/// digits in a string accepted as for `global_max_parallel_requests`.
fn read_pool_limit(v: &Value, path: &str, file: &str) -> Result<u32, ConfigError> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| (1..=database::MAX_POOL_SIZE).contains(n))
        .ok_or_else(|| {
            invalid(
                file,
                path,
                format!(
                    "expected a whole number of connections from 1 to {}, found {v}; write e.g. \
                     `database_connection_pool_limit: 10`, or remove the key for the default of {}",
                    database::MAX_POOL_SIZE,
                    database::DEFAULT_POOL_SIZE
                ),
            )
        })
}

/// `general_settings.database_url`: a Postgres URL, or nothing when empty or unset.
fn read_database_url(v: &Value, path: &str, file: &str) -> Result<Option<Secret>, ConfigError> {
    let Some(url) = opt_string(v, path, file)?.filter(|u| !u.trim().is_empty()) else {
        return Ok(None);
    };
    database::check_url(&url).map_err(|problem| invalid(file, path, format!("the database URL {problem}")))?;
    Ok(Some(Secret::new(url.trim())))
}

/// Days a stored Responses API response is kept unless `responses_retention_days` says.
pub const DEFAULT_RESPONSES_RETENTION_DAYS: u32 = 30;
/// Milliseconds a dashboard report may take to build and still be built for every visit.
pub const DEFAULT_DASHBOARD_LIVE_REPORT_MS: u64 = 250;

/// `tollgate_settings.retention_days`: a whole number of days from 1 up (digits in a string
/// accepted, for `os.environ/`).
fn read_retention_days(v: &Value, path: &str, file: &str) -> Result<u32, ConfigError> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n >= 1)
        .ok_or_else(|| {
            invalid(
                file,
                path,
                format!(
                    "expected a whole number of days from 1 up, found {v}; write e.g. `retention_days: 90`, \
                     or remove the key to keep records forever"
                ),
            )
        })
}

/// `tollgate_settings.trusted_proxies`: a list of addresses (`127.0.0.1`, `::1`) and CIDR ranges
/// (`10.0.0.0/8`), as strings.
fn read_trusted_proxies(v: &Value, path: &str, file: &str) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    let bad = |found: String| {
        invalid(
            file,
            path,
            format!(
                "expected a list of proxy addresses or CIDR ranges, found {found}; write e.g. \
                 `trusted_proxies: [\"127.0.0.1\", \"10.0.0.0/8\"]`"
            ),
        )
    };
    let items = v.as_array().ok_or_else(|| bad(v.to_string()))?;
    items
        .iter()
        .map(|item| {
            let text = item.as_str().map(str::trim).ok_or_else(|| bad(item.to_string()))?;
            text.parse::<ipnet::IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| bad(format!("{text:?}")))
        })
        .collect()
}

/// `general_settings.global_max_parallel_requests`: a whole number of requests from 1 up. A
/// string of digits is accepted because `os.environ/` references resolve to strings.
fn read_parallel_requests(v: &Value, path: &str, file: &str) -> Result<u64, ConfigError> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .filter(|n| (1..=MAX_PARALLEL_REQUESTS_SETTING).contains(n))
        .ok_or_else(|| {
            invalid(
                file,
                path,
                format!(
                    "expected a whole number of requests from 1 to {MAX_PARALLEL_REQUESTS_SETTING}, found {v}; \
                     write e.g. `global_max_parallel_requests: 100`, or remove the key for no cap"
                ),
            )
        })
}

/// The `tollgate_settings` keys [`ServerLimits`] reads.
const SERVER_LIMIT_KEYS: [&str; 5] = [
    "header_read_timeout",
    "body_read_timeout",
    "keepalive_timeout",
    "max_connections",
    "max_inflight_request_mb",
];

fn read_server_limit(
    limits: &mut ServerLimits,
    key: &str,
    v: &Value,
    path: &str,
    file: &str,
) -> Result<(), ConfigError> {
    // Upper bounds keep the values usable as durations and semaphore sizes (and catch typos).
    let positive = |what: &str, max: f64| {
        v.as_f64().filter(|n| *n > 0.0 && *n <= max).ok_or_else(|| {
            invalid(
                file,
                path,
                format!("expected a positive number of {what}, at most {max}"),
            )
        })
    };
    match key {
        "header_read_timeout" => limits.header_read_timeout_s = positive("seconds", MAX_SERVER_TIMEOUT_S)?,
        "body_read_timeout" => limits.body_read_timeout_s = positive("seconds", MAX_SERVER_TIMEOUT_S)?,
        "keepalive_timeout" => limits.keepalive_timeout_s = positive("seconds", MAX_SERVER_TIMEOUT_S)?,
        "max_inflight_request_mb" => limits.max_inflight_request_mb = positive("megabytes", 1024.0 * 1024.0)?,
        _ => {
            let n = v
                .as_u64()
                .filter(|n| (1..=MAX_CONNECTIONS_SETTING).contains(n))
                .ok_or_else(|| {
                    invalid(
                        file,
                        path,
                        format!("expected a whole number of connections from 1 to {MAX_CONNECTIONS_SETTING}"),
                    )
                })?;
            limits.max_connections = Some(usize::try_from(n).unwrap_or(usize::MAX));
        }
    }
    Ok(())
}

/// Looks in the config's own `environment_variables` first, then the process environment.
struct LayeredEnv<'a> {
    own: BTreeMap<String, String>,
    outer: &'a dyn Env,
}

impl Env for LayeredEnv<'_> {
    fn var(&self, name: &str) -> Option<String> {
        self.own.get(name).cloned().or_else(|| self.outer.var(name))
    }
}

const MIN_MASTER_KEY_LEN: usize = 16;
/// Keys copied from docs and quick-starts; a gateway guarded by one of these is open.
const WELL_KNOWN_KEYS: &[&str] = &[
    "sk-1234",
    "sk-12345",
    "sk-123456",
    "sk-1234567890",
    "sk-test",
    "sk-master",
    "sk-admin",
    "sk-litellm",
    "sk-your-master-key",
    "sk-master-key",
    "changeme",
    "password",
    "litellm_proxy_master_key",
];

/// Why a master key is not safe to serve with, or `None` when it is.
pub fn master_key_problem(key: Option<&Secret>) -> Option<String> {
    let Some(key) = key else {
        return Some(
            "no general_settings.master_key is set, so anyone who can reach the port could spend your provider keys. \
             Set `general_settings: {master_key: os.environ/TOLLGATE_MASTER_KEY}` and export a random key \
             (e.g. `export TOLLGATE_MASTER_KEY=sk-$(openssl rand -hex 24)`), or pass --insecure-dev for local experiments"
                .to_string(),
        );
    };
    let k = key.expose();
    if WELL_KNOWN_KEYS.iter().any(|w| w.eq_ignore_ascii_case(k)) {
        return Some(format!(
            "general_settings.master_key is a well-known example key ({}), which anyone can guess. \
             Use a random key (e.g. `sk-$(openssl rand -hex 24)`) or pass --insecure-dev for local experiments",
            key.redacted()
        ));
    }
    if k.chars().count() < MIN_MASTER_KEY_LEN {
        return Some(format!(
            "general_settings.master_key is only {} characters; use at least {MIN_MASTER_KEY_LEN} random characters \
             (e.g. `sk-$(openssl rand -hex 24)`) or pass --insecure-dev for local experiments",
            k.chars().count()
        ));
    }
    None
}

/// Loads a LiteLLM config file with its `include`s, resolving `os.environ/` references.
pub fn load(path: &Path, env: &dyn Env) -> Result<GatewayConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, path, env)
}

/// Parses config text; `path` names the file in messages and anchors relative `include`s.
/// A semantic error names the file, line and column of the offending node.
pub fn parse(text: &str, path: &Path, env: &dyn Env) -> Result<GatewayConfig, ConfigError> {
    let mut sources = Sources::default();
    match parse_mapped(text, path, env, &mut sources) {
        Ok(mut c) => {
            c.sources = sources;
            Ok(c)
        }
        Err(e) => Err(sources.place(e)),
    }
}

fn parse_mapped(text: &str, path: &Path, env: &dyn Env, sources: &mut Sources) -> Result<GatewayConfig, ConfigError> {
    let mut root = parse_yaml(text, path)?;
    let file = path.display().to_string();
    sources.add(&file, text)?;
    let mut warnings = Vec::new();
    let mut files = vec![path.to_path_buf()];

    // `include` files are merged in before anything is read: model lists are appended, other
    // sections must not be defined twice (LiteLLM's rule), so the result does not depend on order.
    if let Some(includes) = root.as_object_mut().and_then(|m| m.remove("include")) {
        let list = match includes {
            Value::Array(items) => items,
            Value::String(s) => vec![Value::String(s)],
            other => {
                return Err(invalid(
                    &file,
                    "include",
                    format!("expected a list of file names, found {}", kind(&other)),
                ));
            }
        };
        let base = path.parent().unwrap_or(Path::new("."));
        for (i, item) in list.into_iter().enumerate() {
            let Some(name) = item.as_str() else {
                return Err(invalid(&file, &format!("include[{i}]"), "expected a file name".into()));
            };
            let inc_path = base.join(name);
            let inc_text = std::fs::read_to_string(&inc_path).map_err(|source| ConfigError::Io {
                path: inc_path.display().to_string(),
                source,
            })?;
            let inc = parse_yaml(&inc_text, &inc_path)?;
            sources.add(&inc_path.display().to_string(), &inc_text)?;
            files.push(inc_path.clone());
            merge_include(&mut root, inc, &file, &inc_path.display().to_string())?;
        }
    }

    let Value::Object(mut top) = root else {
        return Err(invalid(
            &file,
            "(top level)",
            "expected a mapping with model_list, general_settings, …".into(),
        ));
    };

    // environment_variables first: LiteLLM sets them before reading the rest.
    let mut own_env = BTreeMap::new();
    if let Some(vars) = top.get("environment_variables") {
        match vars {
            Value::Object(m) => {
                for (k, v) in m {
                    let s = match v {
                        Value::String(s) => s.clone(),
                        Value::Null => continue,
                        other => other.to_string(),
                    };
                    own_env.insert(k.clone(), s);
                }
            }
            Value::Null => {}
            other => {
                return Err(invalid(
                    &file,
                    "environment_variables",
                    format!("expected a mapping, found {}", kind(other)),
                ));
            }
        }
    }
    let env = LayeredEnv {
        own: own_env,
        outer: env,
    };
    let mut effective = Value::Object(top.clone());
    resolve_env(&mut effective, "", &env, &mut warnings);
    if let Value::Object(m) = &effective {
        top = m.clone();
    }

    for key in top.keys() {
        match key.as_str() {
            "model_list"
            | "general_settings"
            | "litellm_settings"
            | "router_settings"
            | "environment_variables"
            | "tollgate_settings" => {}
            "workflows" => {}
            other => warnings.push(warn(
                other,
                "unknown top-level key; LiteLLM ignores it and so does tollgate",
            )),
        }
    }

    let deployments = read_model_list(top.get("model_list"), &file, &mut warnings)?;

    let general = section(&top, "general_settings", &file)?;
    let mut master_key = None;
    let mut max_request_size_mb = 32.0;
    let mut max_parallel_requests = None;
    let mut database_url = None;
    let mut database_pool_size = database::DEFAULT_POOL_SIZE;
    let mut token_rate_limit_type = TokenRateLimitType::default();
    let mut health_checks = HealthChecks::default();
    for (k, v) in &general {
        let p = format!("general_settings.{k}");
        match k.as_str() {
            "master_key" => master_key = opt_string(v, &p, &file)?.map(Secret::new),
            "max_request_size_mb" => {
                max_request_size_mb = v
                    .as_f64()
                    .filter(|n| *n > 0.0 && *n <= MAX_REQUEST_SIZE_MB)
                    .ok_or_else(|| {
                        invalid(
                            &file,
                            &p,
                            format!("expected a positive number of megabytes, at most {MAX_REQUEST_SIZE_MB}"),
                        )
                    })?;
            }
            "global_max_parallel_requests" => max_parallel_requests = Some(read_parallel_requests(v, &p, &file)?),
            "cache" | "cache_params" | "redis_url" | "redis_host" | "redis_port" | "redis_password" => {
                warnings.push(warn(
                    &p,
                    "cache settings under general_settings are ignored by LiteLLM (this is why the cache silently stays off); \
                     move them to `litellm_settings: {cache: true, cache_params: {...}}`",
                ))
            }
            "database_url" => database_url = read_database_url(v, &p, &file)?,
            "database_connection_pool_limit" => database_pool_size = read_pool_limit(v, &p, &file)?,
            "token_rate_limit_type" => token_rate_limit_type = read_token_rate_limit_type(v, &p, &file)?,
            "background_health_checks" => health_checks.background = read_flag(v, &p, &file)?,
            "health_check_details" => health_checks.details = read_flag(v, &p, &file)?,
            "health_check_interval" => {
                health_checks.interval_s = seconds(v, &p, &file)?;
                if health_checks.interval_s < 1.0 {
                    return Err(invalid(&file, &p, "expected at least 1 second between health checks".into()));
                }
            }
            _ => warnings.push(not_acted_on(&p)),
        }
    }

    let litellm = section(&top, "litellm_settings", &file)?;
    let mut request_timeout = None;
    let mut cache_requested = false;
    let mut proxy_max_budget = None;
    let mut proxy_budget_duration = None;
    let mut max_end_user_budget = None;
    let mut budget_timezone = chrono_tz::UTC;
    for (k, v) in &litellm {
        let p = format!("litellm_settings.{k}");
        match k.as_str() {
            "request_timeout" => request_timeout = Some(seconds(v, &p, &file)?),
            "max_budget" => proxy_max_budget = Some(read_budget(v, &p, &file)?),
            "max_end_user_budget" => max_end_user_budget = Some(read_budget(v, &p, &file)?),
            "budget_duration" => proxy_budget_duration = Some(read_budget_duration(v, &p, &file)?),
            "timezone" => {
                budget_timezone = v.as_str().and_then(|t| t.trim().parse().ok()).ok_or_else(|| {
                    invalid(
                        &file,
                        &p,
                        "expected an IANA timezone name such as UTC, Europe/Istanbul or US/Eastern (budget periods start at midnight there)".into(),
                    )
                })?
            }
            "cache" => match v {
                Value::Bool(b) => cache_requested = *b,
                Value::Object(_) => warnings.push(warn(
                    &p,
                    "`cache:` written as a mapping is ignored by LiteLLM; write `cache: true` and put the settings in `cache_params`",
                )),
                _ => warnings.push(warn(&p, "expected true or false")),
            },
            "cache_params" => {} // read below, once `cache` is known
            // Routing keys LiteLLM also reads here; `routing::read_router` takes them.
            "num_retries" | "fallbacks" | "context_window_fallbacks" | "default_fallbacks" => {}
            "prompt_cache" | "completion_cache" | "response_cache" | "caching" | "enable_cache" | "cache_type" => {
                warnings.push(warn(
                    &p,
                    "not a LiteLLM setting, so the cache stays off; write `cache: true` with `cache_params: {type: local}` (or redis)",
                ))
            }
            "callbacks" | "success_callback" | "failure_callback" | "service_callback" => warnings.push(warn(
                &p,
                "Python callbacks never run in tollgate; every request is recorded to SQLite (and JSONL with --log-jsonl) instead",
            )),
            _ => warnings.push(not_acted_on(&p)),
        }
    }

    let cache = read_cache(&litellm, cache_requested, &env, &file, &mut warnings)?;

    let router_section = section(&top, "router_settings", &file)?;
    let groups: Vec<&str> = deployments.iter().map(|d| d.model_name.as_str()).collect();
    let (router, _) = crate::routing::read_router(&litellm, &router_section, &groups, &file, &mut warnings)?;
    let workflows = crate::routing::read_workflows(top.get("workflows"), &groups, &router, &file)?;
    let rate_limit_redis = read_rate_limit_redis(&router_section, cache.as_ref(), &file)?;

    let tollgate = section(&top, "tollgate_settings", &file)?;
    let mut store_prompts = false;
    let mut prices_file = None;
    let mut record_durability = RecordDurability::default();
    let mut server = ServerLimits {
        max_parallel_requests,
        ..ServerLimits::default()
    };
    let mut redis = RedisGuard::default();
    let mut require_database = false;
    let mut retention_days = None;
    let mut responses_retention_days = DEFAULT_RESPONSES_RETENTION_DAYS;
    let mut dashboard_live_report_ms = DEFAULT_DASHBOARD_LIVE_REPORT_MS;
    let mut trusted_proxies = Vec::new();
    let mut budget_error_status = 429;
    let mut hide_budget_amounts = false;
    let mut rate_limit_prefix = DEFAULT_RATE_LIMIT_PREFIX.to_string();
    for (k, v) in &tollgate {
        let p = format!("tollgate_settings.{k}");
        match k.as_str() {
            "store_prompts" => {
                store_prompts = v
                    .as_bool()
                    .ok_or_else(|| invalid(&file, &p, "expected true or false".into()))?
            }
            "prices_file" => {
                if let Some(s) = opt_string(v, &p, &file)? {
                    let base = path.parent().unwrap_or(Path::new("."));
                    prices_file = Some(base.join(s));
                }
            }
            "record_durability" => {
                record_durability = match v.as_str() {
                    Some("buffered") => RecordDurability::Buffered,
                    Some("sync") => RecordDurability::Sync,
                    _ => {
                        return Err(invalid(
                            &file,
                            &p,
                            format!("expected `buffered` (the default) or `sync`, got {v}"),
                        ));
                    }
                }
            }
            k if SERVER_LIMIT_KEYS.contains(&k) => read_server_limit(&mut server, k, v, &p, &file)?,
            "redis" => redis = read_redis_guard(v, &p, &file, &mut warnings)?,
            "require_database" => {
                require_database = v
                    .as_bool()
                    .ok_or_else(|| invalid(&file, &p, "expected true or false".into()))?
            }
            "retention_days" => retention_days = Some(read_retention_days(v, &p, &file)?),
            "responses_retention_days" => responses_retention_days = read_retention_days(v, &p, &file)?,
            "trusted_proxies" => trusted_proxies = read_trusted_proxies(v, &p, &file)?,
            "dashboard_live_report_ms" => {
                dashboard_live_report_ms = v
                    .as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                    .ok_or_else(|| {
                        invalid(
                            &file,
                            &p,
                            format!("expected a whole number of milliseconds (0 or more), found {v}; e.g. `dashboard_live_report_ms: 250`"),
                        )
                    })?
            }
            "budget_error_status" => {
                budget_error_status = match v.as_u64() {
                    Some(429) => 429,
                    Some(400) => 400,
                    _ => {
                        return Err(invalid(
                            &file,
                            &p,
                            format!("expected 429 (the default) or 400 (what older LiteLLM answered), got {v}"),
                        ));
                    }
                }
            }
            "hide_budget_amounts" => {
                hide_budget_amounts = v
                    .as_bool()
                    .ok_or_else(|| invalid(&file, &p, "expected true or false".into()))?
            }
            "rate_limit_prefix" => rate_limit_prefix = read_rate_limit_prefix(v, &p, &file)?,
            _ => warnings.push(warn(
                &p,
                &format!(
                    "unknown tollgate setting (known: store_prompts, prices_file, record_durability, redis, \
                     require_database, retention_days, responses_retention_days, dashboard_live_report_ms, trusted_proxies, budget_error_status, hide_budget_amounts, \
                     rate_limit_prefix, {})",
                    SERVER_LIMIT_KEYS.join(", ")
                ),
            )),
        }
    }

    if deployments.is_empty() {
        warnings.push(warn(
            "model_list",
            "no models are configured; every chat request will get 404",
        ));
    }

    redact(&mut effective, "");
    Ok(GatewayConfig {
        path: path.to_path_buf(),
        files,
        deployments,
        master_key,
        max_request_size_mb,
        request_timeout,
        store_prompts,
        prices_file,
        record_durability,
        server,
        database: database_url.map(|url| DatabaseSettings {
            url,
            pool_size: database_pool_size,
        }),
        database_pool_size,
        require_database,
        retention_days,
        responses_retention_days,
        dashboard_live_report_ms,
        trusted_proxies,
        budget_error_status,
        hide_budget_amounts,
        proxy_budget: proxy_max_budget.map(|max_budget| ProxyBudget {
            max_budget,
            budget_duration: proxy_budget_duration,
        }),
        max_end_user_budget,
        budget_timezone,
        cache_requested,
        cache,
        redis,
        token_rate_limit_type,
        health_checks,
        rate_limit_redis,
        rate_limit_prefix,
        router,
        workflows,
        warnings,
        effective,
        sources: Sources::default(),
    })
}

fn parse_yaml(text: &str, path: &Path) -> Result<Value, ConfigError> {
    if text.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    serde_norway::from_str::<Value>(text).map_err(|e| {
        // Some refusals come without a position (a second document); find one, so every
        // syntax error names a line.
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .or_else(|| crate::source_map::trouble_spot(text).map(|p| (p.line, p.column)))
            .unwrap_or((1, 1));
        ConfigError::Syntax {
            path: path.display().to_string(),
            line,
            column,
            message: e.to_string(),
        }
    })
}

fn merge_include(root: &mut Value, inc: Value, file: &str, inc_file: &str) -> Result<(), ConfigError> {
    let Value::Object(inc) = inc else {
        return Err(invalid(
            inc_file,
            "(top level)",
            "an included file must be a mapping".into(),
        ));
    };
    if root.is_null() {
        *root = Value::Object(Map::new());
    }
    let Some(root) = root.as_object_mut() else {
        return Err(invalid(file, "(top level)", "expected a mapping".into()));
    };
    for (k, v) in inc {
        match (root.get_mut(&k), v) {
            (Some(Value::Array(list)), Value::Array(more)) if k == "model_list" => list.extend(more),
            (None, v) => {
                root.insert(k, v);
            }
            (Some(_), _) => {
                return Err(invalid(
                    inc_file,
                    &k,
                    format!("`{k}` is already defined in {file}; define each section once"),
                ));
            }
        }
    }
    Ok(())
}

fn read_model_list(
    list: Option<&Value>,
    file: &str,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<Vec<DeploymentConfig>, ConfigError> {
    let items = match list {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(invalid(
                file,
                "model_list",
                format!("expected a list of models, found {}", kind(other)),
            ));
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let base = format!("model_list[{i}]");
        let Value::Object(entry) = item else {
            return Err(invalid(
                file,
                &base,
                "expected a mapping with model_name and litellm_params".into(),
            ));
        };
        let model_name = match entry.get("model_name") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => {
                return Err(invalid(
                    file,
                    &format!("{base}.model_name"),
                    "missing: every model needs a model_name".into(),
                ));
            }
        };
        let params = match entry.get("litellm_params") {
            Some(Value::Object(m)) => m,
            _ => {
                return Err(invalid(
                    file,
                    &format!("{base}.litellm_params"),
                    "missing: every model needs litellm_params with at least `model: provider/name`".into(),
                ));
            }
        };
        for k in entry.keys() {
            if !matches!(k.as_str(), "model_name" | "litellm_params" | "model_info") {
                warnings.push(warn(&format!("{base}.{k}"), "unknown key in a model_list entry"));
            }
        }
        let pp = format!("{base}.litellm_params");
        let model = match params.get("model") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => {
                return Err(invalid(
                    file,
                    &format!("{pp}.model"),
                    "missing: the upstream model with its provider prefix, e.g. `deepseek/deepseek-chat`".into(),
                ));
            }
        };
        let mut d = DeploymentConfig {
            model_name,
            model,
            api_base: None,
            api_key: None,
            api_version: None,
            rpm: None,
            tpm: None,
            timeout: None,
            stream_timeout: None,
            weight: None,
            extra_headers: BTreeMap::new(),
            cache_control_injection_points: Vec::new(),
            price_override: Price::default(),
            model_info: ModelInfoConfig::default(),
            index: i,
        };
        for (k, v) in params {
            let p = format!("{pp}.{k}");
            match k.as_str() {
                "model" => {}
                "api_base" | "base_url" => {
                    d.api_base = opt_string(v, &p, file)?;
                    if let Some(b) = &d.api_base {
                        check_api_base(b, &d.model_name, &p, file)?;
                    }
                }
                "api_key" => d.api_key = opt_string(v, &p, file)?.map(Secret::new),
                "api_version" => d.api_version = opt_string(v, &p, file)?,
                "rpm" => d.rpm = Some(uint(v, &p, file)?),
                "tpm" => d.tpm = Some(uint(v, &p, file)?),
                "timeout" => d.timeout = Some(seconds(v, &p, file)?),
                "stream_timeout" => d.stream_timeout = Some(seconds(v, &p, file)?),
                "weight" => {
                    d.weight = Some(
                        v.as_f64()
                            .filter(|w| w.is_finite() && *w >= 0.0)
                            .ok_or_else(|| invalid(file, &p, "expected a non-negative number".into()))?,
                    )
                }
                "extra_headers" => {
                    let Value::Object(h) = v else {
                        return Err(invalid(file, &p, "expected a mapping of header names to values".into()));
                    };
                    for (hk, hv) in h {
                        let s = hv.as_str().map(str::to_string).unwrap_or_else(|| hv.to_string());
                        d.extra_headers.insert(hk.clone(), s);
                    }
                }
                "cache_control_injection_points" => {
                    let Value::Array(points) = v else {
                        return Err(invalid(file, &p, "expected a list like [{location: message, role: system}]".into()));
                    };
                    for (i, pt) in points.iter().enumerate() {
                        let role = pt.get("role").and_then(Value::as_str).map(str::to_string);
                        let index = pt.get("index").and_then(Value::as_i64);
                        if pt.get("location").and_then(Value::as_str) != Some("message") || (role.is_none() && index.is_none()) {
                            return Err(invalid(
                                file,
                                &format!("{p}[{i}]"),
                                "expected `{location: message, role: system}` or `{location: message, index: -1}`".into(),
                            ));
                        }
                        d.cache_control_injection_points.push(InjectionPoint { role, index });
                    }
                }
                _ if set_price_field(&mut d.price_override, k, v, &p, file)? => {}
                _ => warnings.push(warn(
                    &p,
                    "not acted on yet: this litellm_params key is not sent upstream (pass it in the request body instead)",
                )),
            }
        }
        match entry.get("model_info") {
            None | Some(Value::Null) => {}
            Some(Value::Object(info)) => {
                for (k, v) in info {
                    match k.as_str() {
                        "id" => d.model_info.id = Some(v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())),
                        "base_model" => {
                            d.model_info.base_model = opt_string(v, &format!("{base}.model_info.base_model"), file)?
                        }
                        _ => {
                            // Prices and limits in model_info override the table like litellm_params'.
                            set_price_field(&mut d.price_override, k, v, &format!("{base}.model_info.{k}"), file)?;
                            d.model_info.extra.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            Some(other) => {
                return Err(invalid(
                    file,
                    &format!("{base}.model_info"),
                    format!("expected a mapping, found {}", kind(other)),
                ));
            }
        }
        out.push(d);
    }
    Ok(out)
}

fn read_cache(
    litellm: &Map<String, Value>,
    cache_on: bool,
    env: &dyn Env,
    file: &str,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<Option<CacheSettings>, ConfigError> {
    let params = match litellm.get("cache_params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(other) => {
            return Err(invalid(
                file,
                "litellm_settings.cache_params",
                format!("expected a mapping, found {}", kind(other)),
            ));
        }
    };
    if !cache_on {
        if !params.is_empty() {
            warnings.push(warn(
                "litellm_settings.cache_params",
                "has no effect without `litellm_settings.cache: true`, so the cache stays off; add `cache: true`",
            ));
        }
        return Ok(None);
    }
    let mut ty = None;
    let (mut host, mut port, mut password, mut url) = (None, None, None, None);
    let mut settings = CacheSettings {
        backend: CacheBackend::Local {
            max_entries: DEFAULT_MEMORY_ENTRIES,
        },
        namespace: None,
        ttl: DEFAULT_CACHE_TTL_S,
        default_on: true,
        supported_call_types: Vec::new(),
    };
    let mut max_entries = DEFAULT_MEMORY_ENTRIES;
    for (k, v) in &params {
        let p = format!("litellm_settings.cache_params.{k}");
        match k.as_str() {
            "type" => ty = opt_string(v, &p, file)?,
            "host" => host = opt_string(v, &p, file)?,
            "port" => port = opt_string(v, &p, file)?,
            "password" => password = opt_string(v, &p, file)?,
            "url" | "redis_url" => {
                url = opt_string(v, &p, file)?;
                if let Some(u) = &url {
                    check_redis_url(u, &p, file)?;
                }
            }
            "namespace" => settings.namespace = opt_string(v, &p, file)?,
            "ttl" | "default_in_memory_ttl" | "default_in_redis_ttl" => {
                settings.ttl = seconds_up_to(v, &p, file, MAX_CACHE_TTL_S)?
            }
            "max_size_in_memory" => max_entries = uint(v, &p, file)?.max(1),
            "mode" => match v.as_str() {
                Some("default_on") => settings.default_on = true,
                Some("default_off") => settings.default_on = false,
                _ => return Err(invalid(file, &p, "expected default_on or default_off".into())),
            },
            "supported_call_types" => {
                let Value::Array(items) = v else {
                    return Err(invalid(
                        file,
                        &p,
                        "expected a list such as [acompletion, aembedding]".into(),
                    ));
                };
                settings.supported_call_types = items.iter().filter_map(|i| i.as_str().map(str::to_string)).collect();
            }
            _ => warnings.push(not_acted_on(&p)),
        }
    }
    let redis_url = || -> Option<String> {
        if let Some(u) = &url {
            return Some(u.clone());
        }
        let host = host.clone().or_else(|| env.var("REDIS_HOST"))?;
        let port = port
            .clone()
            .or_else(|| env.var("REDIS_PORT"))
            .unwrap_or_else(|| "6379".into());
        let password = password.clone().or_else(|| env.var("REDIS_PASSWORD"));
        Some(match password {
            Some(pw) => format!("redis://:{pw}@{host}:{port}/"),
            None => format!("redis://{host}:{port}/"),
        })
    };
    let ty = match ty {
        Some(t) => t,
        None => {
            // LiteLLM assumes Redis when `type` is missing; without a Redis to point at, that
            // cache never works, so say which one tollgate picked and why.
            let picked = if redis_url().is_some() || env.var("REDIS_URL").is_some() {
                "redis"
            } else {
                "local"
            };
            warnings.push(warn(
                "litellm_settings.cache_params.type",
                &format!(
                    "missing: LiteLLM then assumes redis; tollgate uses {picked} here. Write `type: local` or `type: redis` to be explicit"
                ),
            ));
            picked.to_string()
        }
    };
    settings.backend = match ty.as_str() {
        "local" | "in-memory" | "memory" => CacheBackend::Local { max_entries },
        "redis" => {
            let url = redis_url().or_else(|| env.var("REDIS_URL")).ok_or_else(|| {
                invalid(
                    file,
                    "litellm_settings.cache_params",
                    "type redis needs `url` or `host` (or REDIS_URL / REDIS_HOST in the environment)".into(),
                )
            })?;
            CacheBackend::Redis { url: Secret::new(url) }
        }
        other => {
            return Err(invalid(
                file,
                "litellm_settings.cache_params.type",
                format!("`{other}` is not a cache type tollgate serves; use local or redis"),
            ));
        }
    };
    Ok(Some(settings))
}

/// `general_settings.token_rate_limit_type`: `input`, `output` or `total` (LiteLLM's values).
fn read_token_rate_limit_type(v: &Value, path: &str, file: &str) -> Result<TokenRateLimitType, ConfigError> {
    match v.as_str().map(str::trim) {
        Some("input") => Ok(TokenRateLimitType::Input),
        Some("output") => Ok(TokenRateLimitType::Output),
        Some("total") => Ok(TokenRateLimitType::Total),
        _ => Err(invalid(
            file,
            path,
            format!(
                "expected input, output or total (the tokens counted against tpm limits; total is the default), found {v}"
            ),
        )),
    }
}

/// `tollgate_settings.rate_limit_prefix`: a non-empty key prefix without spaces.
fn read_rate_limit_prefix(v: &Value, path: &str, file: &str) -> Result<String, ConfigError> {
    opt_string(v, path, file)?
        .map(|p| p.trim().trim_end_matches(':').to_string())
        .filter(|p| !p.is_empty() && !p.contains(char::is_whitespace))
        .ok_or_else(|| {
            invalid(
                file,
                path,
                format!("expected a Redis key prefix without spaces, e.g. `{DEFAULT_RATE_LIMIT_PREFIX}`, found {v}"),
            )
        })
}

/// The Redis rate limits are counted in. LiteLLM counts rpm/tpm across instances in the Redis
/// of `router_settings` (`redis_url`, or `redis_host` with `redis_port` and `redis_password`),
/// which wins; else the response cache's Redis, when the cache is on and in Redis.
fn read_rate_limit_redis(
    router: &Map<String, Value>,
    cache: Option<&CacheSettings>,
    file: &str,
) -> Result<Option<RateLimitRedis>, ConfigError> {
    let text = |k: &str| -> Result<Option<String>, ConfigError> {
        match router.get(k) {
            None => Ok(None),
            Some(v) => Ok(opt_string(v, &format!("router_settings.{k}"), file)?.filter(|s| !s.trim().is_empty())),
        }
    };
    if let Some(url) = text("redis_url")? {
        check_redis_url(&url, "router_settings.redis_url", file)?;
        return Ok(Some(RateLimitRedis {
            url: Secret::new(url.trim()),
            source: "router_settings.redis_url",
        }));
    }
    if let Some(host) = text("redis_host")? {
        let port = text("redis_port")?.unwrap_or_else(|| "6379".into());
        if port.trim().parse::<u16>().is_err() {
            return Err(invalid(
                file,
                "router_settings.redis_port",
                format!("expected a port number such as 6379, found {port}"),
            ));
        }
        let url = match text("redis_password")? {
            Some(pw) => format!("redis://:{pw}@{}:{}/", host.trim(), port.trim()),
            None => format!("redis://{}:{}/", host.trim(), port.trim()),
        };
        check_redis_url(&url, "router_settings.redis_host", file)?;
        return Ok(Some(RateLimitRedis {
            url: Secret::new(url),
            source: "router_settings.redis_host",
        }));
    }
    if text("redis_port")?.is_some() || text("redis_password")?.is_some() {
        return Err(invalid(
            file,
            "router_settings",
            "redis_port and redis_password need redis_host (or write redis_url)".into(),
        ));
    }
    Ok(match cache.map(|c| &c.backend) {
        Some(CacheBackend::Redis { url }) => Some(RateLimitRedis {
            url: url.clone(),
            source: "litellm_settings.cache_params",
        }),
        _ => None,
    })
}

fn check_redis_url(u: &str, path: &str, file: &str) -> Result<(), ConfigError> {
    let ok = url::Url::parse(u.trim()).is_ok_and(|p| {
        matches!(
            p.scheme(),
            "redis" | "rediss" | "unix" | "redis+unix" | "valkey" | "valkeys"
        )
    });
    if ok {
        Ok(())
    } else {
        Err(invalid(
            file,
            path,
            format!(
                "`{}` is not a Redis URL; write it as redis://[:password@]host:6379/ (or rediss:// for TLS)",
                redact::url(u)
            ),
        ))
    }
}

fn read_redis_guard(
    v: &Value,
    path: &str,
    file: &str,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<RedisGuard, ConfigError> {
    let mut guard = RedisGuard::default();
    let Value::Object(m) = v else {
        return Err(invalid(
            file,
            path,
            format!(
                "expected a mapping such as {{failure_threshold: 3, retry_after: 1, max_retry_after: 30, operation_timeout: 0.25}}, found {}",
                kind(v)
            ),
        ));
    };
    for (k, v) in m {
        let p = format!("{path}.{k}");
        match k.as_str() {
            "failure_threshold" => {
                guard.failure_threshold = u32::try_from(uint(v, &p, file)?)
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| invalid(file, &p, "expected a whole number from 1 up".into()))?
            }
            "retry_after" => guard.retry_after = seconds(v, &p, file)?,
            "max_retry_after" => guard.max_retry_after = seconds(v, &p, file)?,
            "operation_timeout" => guard.operation_timeout = seconds(v, &p, file)?,
            _ => warnings.push(warn(
                &p,
                "unknown Redis setting (known: failure_threshold, retry_after, max_retry_after, operation_timeout)",
            )),
        }
    }
    if guard.max_retry_after < guard.retry_after {
        return Err(invalid(
            file,
            &format!("{path}.max_retry_after"),
            format!(
                "is below retry_after ({} s); the wait only grows from retry_after, so make max_retry_after at least that",
                guard.retry_after
            ),
        ));
    }
    Ok(guard)
}

fn set_price_field(price: &mut Price, key: &str, v: &Value, path: &str, file: &str) -> Result<bool, ConfigError> {
    let f = v.as_f64();
    let u = v.as_u64();
    // A negative or astronomical price makes every cost (and every report total) meaningless.
    if key.contains("cost")
        && let Some(x) = f
        && !(x.is_finite() && (0.0..=MAX_PRICE_PER_TOKEN).contains(&x))
    {
        return Err(invalid(
            file,
            path,
            format!("expected a price in USD per token between 0 and {MAX_PRICE_PER_TOKEN}, found {x}"),
        ));
    }
    match key {
        "input_cost_per_token" => price.input_cost_per_token = f,
        "output_cost_per_token" => price.output_cost_per_token = f,
        "cache_read_input_token_cost" => price.cache_read_input_token_cost = f,
        "cache_creation_input_token_cost" => price.cache_creation_input_token_cost = f,
        "output_cost_per_reasoning_token" => price.output_cost_per_reasoning_token = f,
        "max_input_tokens" => price.max_input_tokens = u,
        "max_output_tokens" => price.max_output_tokens = u,
        "max_tokens" => price.max_tokens = u,
        _ => return Ok(false),
    }
    Ok(true)
}

/// An `api_base` must be an http(s) URL with a host: anything else fails on every request, so it
/// fails at load instead. The value is shown masked (it may carry credentials).
fn check_api_base(base: &str, model_name: &str, path: &str, file: &str) -> Result<(), ConfigError> {
    let b = base.trim();
    if b.is_empty() {
        return Ok(());
    }
    let problem = match url::Url::parse(b) {
        Err(e) => Some(format!("is not a URL ({e})")),
        Ok(u) if !matches!(u.scheme(), "http" | "https") => Some(format!(
            "uses `{}:`; upstreams are called over http or https",
            u.scheme()
        )),
        Ok(u) if u.host_str().is_none_or(str::is_empty) => Some("has no host".to_string()),
        Ok(_) => None,
    };
    match problem {
        None => Ok(()),
        Some(p) => Err(invalid(
            file,
            path,
            format!(
                "api_base `{}` of model `{model_name}` {p}; write it as http://host:port/v1 or https://host/v1",
                redact::url(b)
            ),
        )),
    }
}

fn section(top: &Map<String, Value>, name: &str, file: &str) -> Result<Map<String, Value>, ConfigError> {
    match top.get(name) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(other) => Err(invalid(
            file,
            name,
            format!("expected a mapping, found {}", kind(other)),
        )),
    }
}

/// Replaces `os.environ/NAME` strings anywhere in the tree, as LiteLLM does.
fn resolve_env(v: &mut Value, path: &str, env: &dyn Env, warnings: &mut Vec<ConfigWarning>) {
    match v {
        Value::String(s) => {
            if let Some(name) = s.strip_prefix("os.environ/") {
                match env.var(name) {
                    Some(val) => *s = val,
                    None => {
                        warnings.push(warn(path, &format!("environment variable {name} is not set")));
                        *v = Value::Null;
                    }
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                resolve_env(item, &format!("{path}[{i}]"), env, warnings);
            }
        }
        Value::Object(m) => {
            for (k, item) in m.iter_mut() {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                resolve_env(item, &p, env, warnings);
            }
        }
        _ => {}
    }
}

/// Hides every value whose key names a secret, every header value (`extra_headers` carry
/// `Authorization` and vendor keys under any name), and credentials inside URLs anywhere.
fn redact(v: &mut Value, key: &str) {
    match v {
        // A database URL shows where records go, like the store line does; only its password and
        // secret query values are hidden.
        Value::String(s) if key == "database_url" && s.contains("://") => *s = redact::database_url(s),
        Value::String(s) if is_secret_key(key) => *s = Secret::new(s.clone()).redacted(),
        Value::String(s) if s.contains("://") => *s = redact::text(s),
        Value::Object(m) if key == "extra_headers" || key == "headers" => {
            for item in m.values_mut() {
                *item = Value::String(
                    Secret::new(item.as_str().map_or_else(|| item.to_string(), str::to_string)).redacted(),
                );
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| redact(i, key)),
        Value::Object(m) => {
            for (k, item) in m.iter_mut() {
                redact(item, k);
            }
        }
        _ => {}
    }
}

fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("key")
        || k.contains("password")
        || k.contains("secret")
        || (k.contains("token") && !k.contains("tokens"))
        || k == "database_url"
        || k == "redis_url"
        || k == "authorization"
}

fn opt_string(v: &Value, path: &str, file: &str) -> Result<Option<String>, ConfigError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        other => Err(invalid(file, path, format!("expected a string, found {}", kind(other)))),
    }
}

fn uint(v: &Value, path: &str, file: &str) -> Result<u64, ConfigError> {
    v.as_u64()
        .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
        .ok_or_else(|| invalid(file, path, "expected a whole number".into()))
}

fn read_flag(v: &Value, path: &str, file: &str) -> Result<bool, ConfigError> {
    v.as_bool()
        .ok_or_else(|| invalid(file, path, format!("expected true or false, found {}", kind(v))))
}

fn seconds(v: &Value, path: &str, file: &str) -> Result<f64, ConfigError> {
    seconds_up_to(v, path, file, MAX_SECONDS)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "true/false",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// A budget in dollars: a number ≥ 0.
fn read_budget(v: &Value, p: &str, file: &str) -> Result<f64, ConfigError> {
    v.as_f64().filter(|n| n.is_finite() && *n >= 0.0).ok_or_else(|| {
        invalid(
            file,
            p,
            "expected a budget in dollars, a number of 0 or more (e.g. 100.0)".into(),
        )
    })
}

/// A LiteLLM budget period: a count and a unit, `30s`, `30m`, `30h`, `30d`, `1w` or `1mo`.
fn read_budget_duration(v: &Value, p: &str, file: &str) -> Result<String, ConfigError> {
    let text = v.as_str().map(str::trim).unwrap_or_default();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(0);
    let (n, unit) = text.split_at(split);
    let ok = n.parse::<u64>().is_ok_and(|n| n > 0) && matches!(unit, "s" | "m" | "h" | "d" | "w" | "mo");
    if ok {
        Ok(text.to_string())
    } else {
        Err(invalid(
            file,
            p,
            "expected a budget period: a number and a unit, 30s, 30m, 30h, 30d, 1w or 1mo".into(),
        ))
    }
}

fn not_acted_on(path: &str) -> ConfigWarning {
    warn(path, "not acted on by tollgate yet; the setting has no effect")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    const SEED: &str = r#"
model_list:
  - model_name: deepseek-v3.2
    litellm_params:
      model: deepseek/deepseek-v3.2
      api_key: os.environ/DEEPSEEK_API_KEY
      timeout: 600
      stream_timeout: 60
    model_info:
      id: ds-1
      max_input_tokens: 163840
  - model_name: grok-4.1-fast
    litellm_params:
      model: xai/grok-4-1-fast-reasoning
      api_key: os.environ/XAI_API_KEY
      rpm: 60
      input_cost_per_token: 0.0000002
      output_cost_per_token: 0.0000005
litellm_settings:
  drop_params: true
  callbacks: ["custom_callbacks.proxy_handler_instance"]
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
  cache:
    type: redis
"#;

    #[test]
    fn seed_config_loads_with_named_warnings() {
        let e = env(&[
            ("DEEPSEEK_API_KEY", "sk-ds"),
            ("XAI_API_KEY", "xai-1"),
            ("LITELLM_MASTER_KEY", "sk-abcdefghijklmnopqrstuvwxyz"),
        ]);
        let c = parse(SEED, Path::new("config.yaml"), &e).unwrap();
        assert_eq!(c.model_groups(), vec!["deepseek-v3.2", "grok-4.1-fast"]);
        let ds = &c.deployments[0];
        assert_eq!(ds.model, "deepseek/deepseek-v3.2");
        assert_eq!(ds.api_key.as_ref().unwrap().expose(), "sk-ds");
        assert_eq!(ds.timeout, Some(600.0));
        assert_eq!(ds.stream_timeout, Some(60.0));
        assert_eq!(ds.model_info.id.as_deref(), Some("ds-1"));
        assert_eq!(ds.price_override.max_input_tokens, Some(163840));
        assert_eq!(c.deployments[1].price_override.input_cost_per_token, Some(2e-7));
        assert_eq!(c.deployments[1].rpm, Some(60));
        assert_eq!(c.master_key.as_ref().unwrap().expose(), "sk-abcdefghijklmnopqrstuvwxyz");
        let paths: Vec<&str> = c.warnings.iter().map(|w| w.path.as_str()).collect();
        assert!(paths.contains(&"litellm_settings.drop_params"), "{paths:?}");
        assert!(paths.contains(&"litellm_settings.callbacks"), "{paths:?}");
        assert!(paths.contains(&"general_settings.cache"), "{paths:?}");
        // Secrets never reach the printable config.
        let shown = c.effective.to_string();
        assert!(!shown.contains("sk-ds"), "{shown}");
        assert!(!shown.contains("abcdefghijklmnopqrstuvwxyz"), "{shown}");
    }

    #[test]
    fn server_limits_have_safe_defaults_and_read_tollgate_settings() {
        let c = parse("model_list: []\n", Path::new("c.yaml"), &env(&[])).unwrap();
        assert_eq!(c.server, ServerLimits::default());
        assert_eq!(c.server.header_read_timeout_s, 10.0);
        let text = "tollgate_settings:\n  header_read_timeout: 0.3\n  body_read_timeout: 2\n  keepalive_timeout: 5\n  max_connections: 7\n  max_inflight_request_mb: 64\n";
        let c = parse(text, Path::new("c.yaml"), &env(&[])).unwrap();
        assert_eq!(
            c.server,
            ServerLimits {
                header_read_timeout_s: 0.3,
                body_read_timeout_s: 2.0,
                keepalive_timeout_s: 5.0,
                max_connections: Some(7),
                max_inflight_request_mb: 64.0,
                max_parallel_requests: None,
            }
        );
        assert!(c.warnings.iter().all(|w| !w.path.starts_with("tollgate_settings")));
        let bad = parse(
            "tollgate_settings:\n  max_connections: -3\n",
            Path::new("c.yaml"),
            &env(&[]),
        )
        .unwrap_err()
        .to_string();
        assert!(bad.contains("tollgate_settings.max_connections"), "{bad}");
        assert!(bad.contains("from 1 to 1000000"), "{bad}");
        let bad = parse(
            "tollgate_settings:\n  header_read_timeout: 1e300\n",
            Path::new("c.yaml"),
            &env(&[]),
        )
        .unwrap_err()
        .to_string();
        assert!(bad.contains("tollgate_settings.header_read_timeout"), "{bad}");
    }

    #[test]
    fn global_max_parallel_requests_is_read_into_server_limits_and_refused_where_written() {
        let c = parse("model_list: []\n", Path::new("c.yaml"), &env(&[])).unwrap();
        assert_eq!(c.server.max_parallel_requests, None, "no cap unless asked for");
        for (written, cap) in [("2", 2), ("1", 1), ("'64'", 64), ("1000000", 1_000_000)] {
            let c = parse(
                &format!("general_settings:\n  global_max_parallel_requests: {written}\n"),
                Path::new("c.yaml"),
                &env(&[]),
            )
            .unwrap();
            assert_eq!(c.server.max_parallel_requests, Some(cap), "{written}");
            // Acted on, so no "has no effect" warning.
            assert!(
                c.warnings.iter().all(|w| !w.path.starts_with("general_settings")),
                "{:?}",
                c.warnings
            );
        }
        // From the environment, as LiteLLM configs often write it.
        let c = parse(
            "general_settings:\n  global_max_parallel_requests: os.environ/MAX_PAR\n",
            Path::new("c.yaml"),
            &env(&[("MAX_PAR", "8")]),
        )
        .unwrap();
        assert_eq!(c.server.max_parallel_requests, Some(8));
        for bad in ["0", "-3", "1.5", "2.0", "many", "true", "null", "1000001", "[2]"] {
            let shown = parse(
                &format!("model_list: []\ngeneral_settings:\n  global_max_parallel_requests: {bad}\n"),
                Path::new("c.yaml"),
                &env(&[]),
            )
            .unwrap_err()
            .to_string();
            // file:line:column of the value (of the key for a list), then the setting's path.
            assert!(shown.starts_with("c.yaml:3:"), "{bad}: {shown}");
            assert!(
                shown.contains(": general_settings.global_max_parallel_requests: expected"),
                "{bad}: {shown}"
            );
            assert!(shown.contains("whole number of requests from 1"), "{bad}: {shown}");
            assert!(shown.contains("remove the key for no cap"), "{bad}: {shown}");
        }
    }

    #[test]
    fn missing_env_var_is_a_warning_with_its_path() {
        let c = parse(SEED, Path::new("config.yaml"), &env(&[])).unwrap();
        assert!(c.master_key.is_none());
        assert!(
            c.warnings
                .iter()
                .any(|w| w.path == "model_list[0].litellm_params.api_key" && w.message.contains("DEEPSEEK_API_KEY"))
        );
    }

    #[test]
    fn environment_variables_section_feeds_os_environ() {
        let text = "environment_variables:\n  MY_KEY: sk-from-config\nmodel_list:\n  - model_name: a\n    litellm_params:\n      model: openai/gpt-4o-mini\n      api_key: os.environ/MY_KEY\n";
        let c = parse(text, Path::new("c.yaml"), &env(&[])).unwrap();
        assert_eq!(c.deployments[0].api_key.as_ref().unwrap().expose(), "sk-from-config");
    }

    #[test]
    fn syntax_error_names_file_line_and_column() {
        let err = parse(
            "model_list:\n  - model_name: a\n   bad: [\n",
            Path::new("conf.yaml"),
            &env(&[]),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("conf.yaml:"), "{msg}");
        match err {
            ConfigError::Syntax { line, .. } => assert!(line >= 2, "{msg}"),
            other => panic!("expected a syntax error, got {other}"),
        }
        // The YAML reader gives no position for a second document; one is found anyway.
        match parse("a: 1\n---\nb: 2\n", Path::new("conf.yaml"), &env(&[])).unwrap_err() {
            ConfigError::Syntax { line, .. } => assert_eq!(line, 2),
            other => panic!("expected a syntax error, got {other}"),
        }
    }

    #[test]
    fn missing_model_is_invalid_with_path() {
        let err = parse(
            "model_list:\n  - model_name: a\n    litellm_params: {api_base: x}\n",
            Path::new("c.yaml"),
            &env(&[]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("model_list[0].litellm_params.model"), "{err}");
    }

    #[test]
    fn cache_as_mapping_is_named() {
        let c = parse(
            "litellm_settings:\n  cache:\n    type: local\n",
            Path::new("c.yaml"),
            &env(&[]),
        )
        .unwrap();
        assert!(
            c.warnings
                .iter()
                .any(|w| w.path == "litellm_settings.cache" && w.message.contains("cache: true"))
        );
        assert!(!c.cache_requested);
    }

    fn warned(yaml: &str, path: &str, needle: &str) -> bool {
        let c = parse(yaml, Path::new("c.yaml"), &env(&[])).unwrap();
        c.warnings.iter().any(|w| w.path == path && w.message.contains(needle))
    }

    #[test]
    fn each_silent_cache_mistake_is_named_with_its_fix() {
        assert!(warned(
            "general_settings:\n  cache: true\n",
            "general_settings.cache",
            "litellm_settings"
        ));
        assert!(warned(
            "general_settings:\n  redis_url: redis://x\n",
            "general_settings.redis_url",
            "litellm_settings"
        ));
        assert!(warned(
            "litellm_settings:\n  cache: {type: local}\n",
            "litellm_settings.cache",
            "cache: true"
        ));
        assert!(warned(
            "litellm_settings:\n  cache_params: {type: local}\n",
            "litellm_settings.cache_params",
            "cache: true"
        ));
        assert!(warned(
            "litellm_settings:\n  cache: true\n",
            "litellm_settings.cache_params.type",
            "assumes redis"
        ));
        assert!(warned(
            "litellm_settings:\n  prompt_cache: true\n",
            "litellm_settings.prompt_cache",
            "cache: true"
        ));
        assert!(warned(
            "litellm_settings:\n  completion_cache: true\n",
            "litellm_settings.completion_cache",
            "cache: true"
        ));
        assert!(warned(
            "model_list:\n  - {model_name: a, litellm_params: {model: openai/x}}\nrouter_settings:\n  fallbacks: [{a: [ghost]}]\n",
            "router_settings.fallbacks",
            "`ghost`"
        ));
    }

    #[test]
    fn cache_params_in_litellm_names() {
        let e = env(&[("REDIS_HOST", "10.0.0.5"), ("REDIS_PASSWORD", "pw")]);
        let c = parse(
            "litellm_settings:\n  cache: true\n  cache_params: {type: redis, namespace: team-a, ttl: 30, mode: default_off, supported_call_types: [acompletion]}\n",
            Path::new("c.yaml"),
            &e,
        )
        .unwrap();
        // The Redis password is a secret: it never shows in what `check` and /admin/config print.
        assert!(!serde_json::to_string(&c.cache).unwrap().contains(":pw@"));
        assert!(!format!("{:?}", c.cache).contains(":pw@"));
        let cache = c.cache.unwrap();
        assert_eq!(
            cache.backend,
            CacheBackend::Redis {
                url: Secret::new("redis://:pw@10.0.0.5:6379/")
            }
        );
        assert_eq!(cache.namespace.as_deref(), Some("team-a"));
        assert_eq!(cache.ttl, 30.0);
        assert!(!cache.default_on);
        assert!(cache.allows("completion") && !cache.allows("embedding"));
        let local = parse(
            "litellm_settings:\n  cache: true\n  cache_params: {type: local}\n",
            Path::new("c.yaml"),
            &env(&[]),
        )
        .unwrap()
        .cache
        .unwrap();
        assert!(matches!(local.backend, CacheBackend::Local { .. }));
        assert!(local.default_on);
    }

    #[test]
    fn redis_guard_defaults_and_tollgate_settings() {
        let base = "litellm_settings:\n  cache: true\n  cache_params: {type: redis, host: r}\n";
        let c = parse(base, Path::new("c.yaml"), &env(&[])).unwrap();
        assert_eq!(c.redis, RedisGuard::default());
        let c = parse(
            &format!("{base}tollgate_settings:\n  redis: {{failure_threshold: 5, retry_after: 0.5, max_retry_after: 8, operation_timeout: 0.1, jitter: 1}}\n"),
            Path::new("c.yaml"),
            &env(&[]),
        )
        .unwrap();
        assert_eq!(
            c.redis,
            RedisGuard {
                failure_threshold: 5,
                retry_after: 0.5,
                max_retry_after: 8.0,
                operation_timeout: 0.1
            }
        );
        assert!(c.warnings.iter().any(|w| w.path == "tollgate_settings.redis.jitter"));
        for (bad, path) in [
            (
                "redis: {failure_threshold: 0}",
                "tollgate_settings.redis.failure_threshold",
            ),
            (
                "redis: {retry_after: 10, max_retry_after: 2}",
                "tollgate_settings.redis.max_retry_after",
            ),
            (
                "redis: {operation_timeout: -1}",
                "tollgate_settings.redis.operation_timeout",
            ),
            ("redis: 3", "tollgate_settings.redis"),
        ] {
            let err = parse(
                &format!("{base}tollgate_settings:\n  {bad}\n"),
                Path::new("c.yaml"),
                &env(&[]),
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains(path), "{bad}: {err}");
        }
    }

    #[test]
    fn the_seed_tiers_example_loads_and_validates() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/cf-x-tiers.yaml");
        let c = load(&path, &env(&[])).unwrap();
        let names: Vec<&str> = c.workflows.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(names, vec!["cf-x-cheap", "cf-x-normal", "cf-x-premium"]);
        let normal = c.workflows.iter().find(|w| w.name == "cf-x-normal").unwrap();
        assert_eq!(normal.aliases, vec!["cf-x"]);
        let roles: Vec<(&str, &str)> = normal
            .steps
            .iter()
            .map(|s| (s.role.as_str(), s.model.as_str()))
            .collect();
        assert_eq!(
            roles,
            vec![
                ("planner", "deepseek-v3.2"),
                ("coder", "grok-4.1-fast"),
                ("reviewer", "gemini-2.5-flash")
            ]
        );
        assert_eq!(normal.steps[1].fallbacks, vec!["minimax-m2.1"]);
        assert_eq!(normal.tool_step, "coder");
        assert_eq!(c.router.num_retries, 1);
        assert_eq!(c.router.fallbacks["grok-4.1-fast"], vec!["minimax-m2.1"]);
    }

    #[test]
    fn a_workflow_step_naming_an_undefined_model_is_invalid() {
        let yaml = "model_list:\n  - {model_name: a, litellm_params: {model: openai/x}}\nworkflows:\n  w:\n    steps:\n      - {role: planner, model: a}\n      - {role: coder, model: ghost}\n";
        let err = parse(yaml, Path::new("c.yaml"), &env(&[])).unwrap_err().to_string();
        assert!(
            err.contains("workflows.w.steps[1].model") && err.contains("ghost"),
            "{err}"
        );
        let clash = "model_list:\n  - {model_name: a, litellm_params: {model: openai/x}}\nworkflows:\n  a:\n    steps: [{role: p, model: a}]\n";
        assert!(
            parse(clash, Path::new("c.yaml"), &env(&[]))
                .unwrap_err()
                .to_string()
                .contains("already a model")
        );
    }

    #[test]
    fn router_settings_in_litellm_names() {
        let yaml = "model_list:\n  - {model_name: a, litellm_params: {model: openai/x}}\n  - {model_name: b, litellm_params: {model: openai/y}}\nlitellm_settings:\n  num_retries: 4\nrouter_settings:\n  routing_strategy: latency-based-routing\n  allowed_fails: 2\n  cooldown_time: 9\n  context_window_fallbacks: [{a: [b]}]\n  model_group_alias: {fast: a}\n";
        let c = parse(yaml, Path::new("c.yaml"), &env(&[])).unwrap();
        assert_eq!(c.router.num_retries, 4);
        assert_eq!(c.router.strategy, crate::routing::Strategy::LatencyBasedRouting);
        assert_eq!((c.router.allowed_fails, c.router.cooldown_time), (2, 9.0));
        assert_eq!(c.router.context_window_fallbacks["a"], vec!["b"]);
        assert_eq!(c.router.resolve("fast"), "a");
        assert!(
            c.warnings.iter().all(|w| !w.path.starts_with("router_settings")),
            "{:?}",
            c.warnings
        );
        let bad = yaml.replace("latency-based-routing", "fastest");
        assert!(
            parse(&bad, Path::new("c.yaml"), &env(&[]))
                .unwrap_err()
                .to_string()
                .contains("routing_strategy")
        );
    }

    /// A `config.yaml` that includes `more.yaml` (holding `more`) in a fresh temp dir named by `tag`.
    fn config_with_include(tag: &str, more: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("tollgate-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("more.yaml"), more).unwrap();
        let main = dir.join("config.yaml");
        std::fs::write(
            &main,
            "include: [more.yaml]\nmodel_list:\n  - model_name: a\n    litellm_params: {model: openai/x}\n",
        )
        .unwrap();
        (dir, main)
    }

    #[test]
    fn includes_append_model_lists() {
        let (dir, main) = config_with_include(
            "inc",
            "model_list:\n  - model_name: b\n    litellm_params: {model: groq/llama}\n",
        );
        let c = load(&main, &env(&[])).unwrap();
        assert_eq!(c.model_groups(), vec!["a", "b"]);
        assert_eq!(c.files, vec![main.clone(), dir.join("more.yaml")]);
        std::fs::remove_dir_all(&dir).ok();
    }

    fn invalid_at(yaml: &str) -> (String, Option<usize>, Option<usize>, String) {
        match parse(yaml, Path::new("c.yaml"), &env(&[])) {
            Err(e @ ConfigError::Invalid { .. }) => {
                let shown = e.to_string();
                let ConfigError::Invalid { path, line, column, .. } = e else {
                    unreachable!()
                };
                (path, line, column, shown)
            }
            Err(other) => panic!("expected an invalid config, got {other}"),
            Ok(_) => panic!("expected an invalid config, it loaded:\n{yaml}"),
        }
    }

    #[test]
    fn a_top_level_key_written_twice_is_an_error_at_its_second_place() {
        let yaml = "model_list:\n  - {model_name: a, litellm_params: {model: openai/x}}\ngeneral_settings: {}\nmodel_list:\n  - {model_name: b, litellm_params: {model: openai/y}}\n";
        let (path, line, column, shown) = invalid_at(yaml);
        assert_eq!(
            (path.as_str(), line, column),
            ("model_list", Some(4), Some(1)),
            "{shown}"
        );
        assert!(shown.starts_with("c.yaml:4:1: model_list:"), "{shown}");
        assert!(shown.contains("first at line 1"), "{shown}");
        // Nested too: the second api_key would silently win.
        let (path, line, ..) = invalid_at(
            "model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/x\n      api_key: k1\n      api_key: k2\n",
        );
        assert_eq!((path.as_str(), line), ("model_list[0].litellm_params.api_key", Some(6)));
    }

    #[test]
    fn a_duplicate_is_refused_even_where_positions_cannot_be_mapped() {
        // Flow content continued with too little indentation: the YAML reader accepts it, the
        // position mapper does not.
        let odd = "model_list:\n  - model_name: a\n    litellm_params: {model:\n openai/x}\nmodel_list: []\n";
        assert!(crate::source_map::SourceMap::build(odd).is_ok_and(|m| m.is_empty()));
        let (_, line, _, shown) = invalid_at(odd);
        assert!(line.is_some() && shown.contains("written twice"), "{shown}");
    }

    #[test]
    fn routing_numbers_must_be_finite_and_sane() {
        for (key, value) in [
            ("cooldown_time", "1e308"),
            ("cooldown_time", ".inf"),
            ("cooldown_time", ".nan"),
            ("cooldown_time", "-1"),
            ("retry_after", "1e308"),
            ("num_retries", "1e9"),
            ("allowed_fails", "1e308"),
            ("max_fallbacks", "1e12"),
        ] {
            let yaml = format!("model_list: []\nrouter_settings:\n  {key}: {value}\n");
            let (path, line, column, shown) = invalid_at(&yaml);
            assert_eq!(path, format!("router_settings.{key}"), "{shown}");
            assert_eq!((line, column), (Some(3), Some(key.len() + 5)), "{shown}");
            assert!(
                shown.starts_with(&format!("c.yaml:3:{}: router_settings.{key}:", key.len() + 5)),
                "{shown}"
            );
        }
        let ok = parse(
            "router_settings: {cooldown_time: 86400, num_retries: 3}\n",
            Path::new("c.yaml"),
            &env(&[]),
        )
        .unwrap();
        assert_eq!((ok.router.cooldown_time, ok.router.num_retries), (86400.0, 3));
    }

    #[test]
    fn durations_that_would_overflow_are_refused_where_written() {
        let cases = [
            (
                "model_list:\n  - model_name: a\n    litellm_params: {model: openai/x, timeout: 1e308}\n",
                "model_list[0].litellm_params.timeout",
            ),
            (
                "model_list:\n  - model_name: a\n    litellm_params: {model: openai/x, stream_timeout: .inf}\n",
                "model_list[0].litellm_params.stream_timeout",
            ),
            (
                "litellm_settings: {request_timeout: -5}\n",
                "litellm_settings.request_timeout",
            ),
            (
                "litellm_settings: {cache: true, cache_params: {type: local, ttl: 1e308}}\n",
                "litellm_settings.cache_params.ttl",
            ),
            (
                "model_list:\n  - {model_name: a, litellm_params: {model: openai/x}}\nworkflows:\n  w:\n    steps: [{role: p, model: a, timeout: 1e308}]\n",
                "workflows.w.steps[0].timeout",
            ),
            (
                "model_list:\n  - model_name: a\n    litellm_params: {model: openai/x, input_cost_per_token: -1}\n",
                "model_list[0].litellm_params.input_cost_per_token",
            ),
            (
                "model_list:\n  - model_name: a\n    litellm_params: {model: openai/x, weight: .nan}\n",
                "model_list[0].litellm_params.weight",
            ),
        ];
        for (yaml, want) in cases {
            let (path, line, _, shown) = invalid_at(yaml);
            assert_eq!(path, want, "{shown}");
            assert!(line.is_some(), "{shown}");
        }
    }

    #[test]
    fn a_broken_api_base_is_refused_naming_model_path_and_line() {
        for base in [
            "'ht!tp://bad url'",
            "'http://bad url/v1'",
            "ftp://files/v1",
            "'http://'",
        ] {
            let yaml = format!(
                "model_list:\n  - model_name: mine\n    litellm_params:\n      model: openai/x\n      api_base: {base}\n"
            );
            let (path, line, column, shown) = invalid_at(&yaml);
            assert_eq!(path, "model_list[0].litellm_params.api_base", "{shown}");
            assert_eq!((line, column), (Some(5), Some(17)), "{shown}");
            assert!(shown.contains("`mine`"), "{shown}");
        }
        // The message shows the URL masked: it may carry credentials.
        let (.., shown) = invalid_at(
            "model_list:\n  - model_name: m\n    litellm_params: {model: openai/x, api_base: 'gopher://u:hunter2@h/?key=sk-zz'}\n",
        );
        assert!(!shown.contains("hunter2") && !shown.contains("sk-zz"), "{shown}");
        for good in ["http://127.0.0.1:9/v1", "https://u:p@gpu-box:8000/v1?api-key=x"] {
            let yaml = format!(
                "model_list:\n  - {{model_name: m, litellm_params: {{model: openai/x, api_base: '{good}'}}}}\n"
            );
            assert!(parse(&yaml, Path::new("c.yaml"), &env(&[])).is_ok(), "{good}");
        }
    }

    #[test]
    fn semantic_errors_carry_the_line_and_column_of_their_node() {
        let (path, line, column, shown) = invalid_at(
            "general_settings: {}\nmodel_list:\n  - model_name: a\n    litellm_params: {api_base: 'http://x'}\n",
        );
        // The missing key is reported where its mapping is.
        assert_eq!(path, "model_list[0].litellm_params.model");
        assert_eq!((line, column), (Some(4), Some(5)), "{shown}");
        let (_, line, column, shown) = invalid_at("router_settings:\n  routing_strategy: fastest\n");
        assert_eq!((line, column), (Some(2), Some(21)), "{shown}");
    }

    #[test]
    fn errors_in_an_included_file_name_that_file_and_its_line() {
        let (dir, main) = config_with_include(
            "inc-loc",
            "model_list:\n  - model_name: b\n    litellm_params: {model: groq/llama, timeout: 1e308}\n",
        );
        let err = load(&main, &env(&[])).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).ok();
        let want = format!("{}:3:", dir.join("more.yaml").display());
        assert!(err.starts_with(&want), "{err}");
        assert!(err.contains("model_list[1].litellm_params.timeout"), "{err}");
    }

    #[test]
    fn urls_and_headers_are_masked_in_what_check_and_admin_config_show() {
        let yaml = "model_list:\n  - model_name: m\n    litellm_params:\n      model: openai/x\n      api_base: http://user:hunter2@h:1/v1?api-key=sk-query-secret\n      extra_headers: {X-Vendor-Auth: vendor-header-secret, Authorization: Bearer sk-bearer-secret}\nlitellm_settings:\n  cache: true\n  cache_params: {type: redis, url: 'redis://:redis-pass-secret@10.0.0.5:6379/0'}\n";
        let c = parse(yaml, Path::new("c.yaml"), &env(&[])).unwrap();
        let shown = format!(
            "{}\n{}\n{}",
            c.effective,
            serde_json::to_string(&c.deployments).unwrap(),
            serde_json::to_string(&c.cache).unwrap()
        ) + &format!("{:?}", c.deployments);
        for secret in [
            "hunter2",
            "sk-query-secret",
            "vendor-header-secret",
            "sk-bearer-secret",
            "redis-pass-secret",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        // Still useful: where it goes is visible.
        assert!(shown.contains("http://user:***@h:1/v1?api-key=***"), "{shown}");
        // The real values are kept for sending.
        assert_eq!(
            c.deployments[0].api_base.as_deref(),
            Some("http://user:hunter2@h:1/v1?api-key=sk-query-secret")
        );
    }

    #[test]
    fn master_key_rules() {
        assert!(master_key_problem(None).unwrap().contains("--insecure-dev"));
        assert!(
            master_key_problem(Some(&Secret::new("sk-1234")))
                .unwrap()
                .contains("well-known")
        );
        assert!(
            master_key_problem(Some(&Secret::new("sk-short-key")))
                .unwrap()
                .contains("characters")
        );
        assert!(master_key_problem(Some(&Secret::new("sk-8f3a9c2e71d04b5f9e6a"))).is_none());
        assert!(!format!("{:?}", Secret::new("sk-8f3a9c2e71d04b5f9e6a")).contains("9c2e"));
    }

    #[test]
    fn record_durability_defaults_to_buffered_and_rejects_unknown_modes() {
        let none = env(&[]);
        let c = parse("model_list: []\n", Path::new("c.yaml"), &none).unwrap();
        assert_eq!(c.record_durability, RecordDurability::Buffered);
        let c = parse(
            "tollgate_settings:\n  record_durability: sync\n",
            Path::new("c.yaml"),
            &none,
        )
        .unwrap();
        assert_eq!(c.record_durability, RecordDurability::Sync);
        let err = parse(
            "tollgate_settings:\n  record_durability: fsync\n",
            Path::new("c.yaml"),
            &none,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("tollgate_settings.record_durability"), "{err}");
        assert!(err.contains("`buffered`") && err.contains("`sync`"), "{err}");
    }

    #[test]
    fn database_url_is_read_as_the_shared_record_store() {
        let c = parse(
            "general_settings:\n  database_url: postgres://tg:db-pass-secret@db:5432/app?sslmode=require\n",
            Path::new("c.yaml"),
            &env(&[]),
        )
        .unwrap();
        let db = c.database.as_ref().unwrap();
        assert_eq!(
            db.url.expose(),
            "postgres://tg:db-pass-secret@db:5432/app?sslmode=require"
        );
        assert_eq!(db.pool_size, 10, "LiteLLM's default pool");
        assert_eq!(c.database_pool_size, 10);
        // Acted on, so no warning about it.
        assert!(
            c.warnings.iter().all(|w| !w.path.starts_with("general_settings")),
            "{:?}",
            c.warnings
        );
        // What `check` and /admin/config print shows where, never the password.
        let shown = format!(
            "{} {:?} {}",
            c.effective,
            c.database,
            serde_json::to_string(&c.database).unwrap()
        );
        assert!(!shown.contains("db-pass-secret"), "{shown}");
        assert!(
            shown.contains("postgres://tg:***@db:5432/app?sslmode=require"),
            "{shown}"
        );
        let c = parse(
            "general_settings:\n  database_url: 'postgresql://tg@db/app'\n",
            Path::new("c.yaml"),
            &env(&[]),
        )
        .unwrap();
        assert_eq!(c.database.unwrap().url.expose(), "postgresql://tg@db/app");
        let none = parse("model_list: []\n", Path::new("c.yaml"), &env(&[])).unwrap();
        assert!(none.database.is_none() && !none.require_database && none.retention_days.is_none());
    }

    #[test]
    fn a_database_url_that_is_not_postgres_is_refused_where_written() {
        for (url, scheme) in [
            ("mysql://u:hunter2@h/db", "mysql"),
            ("sqlite:///var/lib/tollgate.db", "sqlite"),
            ("'postgress://h/db'", "postgress"),
        ] {
            let (path, line, column, shown) =
                invalid_at(&format!("model_list: []\ngeneral_settings:\n  database_url: {url}\n"));
            assert_eq!(path, "general_settings.database_url", "{shown}");
            assert_eq!((line, column), (Some(3), Some(17)), "{shown}");
            assert!(shown.contains(&format!("`{scheme}:`")), "{shown}");
            assert!(
                shown.contains("only Postgres") && shown.contains("SQLite under --data-dir"),
                "{shown}"
            );
            assert!(!shown.contains("hunter2"), "{shown}");
        }
        let (path, .., shown) = invalid_at("general_settings:\n  database_url: db-host-only\n");
        assert_eq!(path, "general_settings.database_url");
        assert!(shown.contains("not a URL") && shown.contains("postgres://"), "{shown}");
    }

    #[test]
    fn an_unset_or_empty_database_url_means_no_database() {
        let c = parse(
            "general_settings:\n  database_url: os.environ/DATABASE_URL\n",
            Path::new("c.yaml"),
            &env(&[]),
        )
        .unwrap();
        assert!(c.database.is_none());
        assert!(
            c.warnings
                .iter()
                .any(|w| w.path == "general_settings.database_url" && w.message.contains("DATABASE_URL is not set")),
            "{:?}",
            c.warnings
        );
        let c = parse(
            "general_settings:\n  database_url: os.environ/DATABASE_URL\n",
            Path::new("c.yaml"),
            &env(&[("DATABASE_URL", "postgres://h/db")]),
        )
        .unwrap();
        assert_eq!(c.database.unwrap().url.expose(), "postgres://h/db");
        let c = parse(
            "general_settings:\n  database_url: ''\n",
            Path::new("c.yaml"),
            &env(&[]),
        )
        .unwrap();
        assert!(c.database.is_none());
    }

    #[test]
    fn database_connection_pool_limit_sizes_the_pool_and_is_refused_where_written() {
        for (written, size) in [("1", 1), ("25", 25), ("'40'", 40), ("1000", 1000)] {
            let c = parse(
                &format!(
                    "general_settings:\n  database_url: postgres://h/db\n  database_connection_pool_limit: {written}\n"
                ),
                Path::new("c.yaml"),
                &env(&[]),
            )
            .unwrap();
            assert_eq!(c.database.unwrap().pool_size, size, "{written}");
            assert_eq!(c.database_pool_size, size, "{written}");
            assert!(
                c.warnings.iter().all(|w| !w.path.starts_with("general_settings")),
                "{written}: {:?}",
                c.warnings
            );
        }
        // Without a URL in the config the limit still applies to one from the flag or DATABASE_URL.
        let c = parse(
            "general_settings:\n  database_connection_pool_limit: 5\n",
            Path::new("c.yaml"),
            &env(&[]),
        )
        .unwrap();
        assert!(c.database.is_none());
        assert_eq!(c.database_pool_size, 5);
        for bad in ["0", "-1", "1001", "2.5", "many", "true", "null", "[4]", "4294967297"] {
            let (path, line, _, shown) = invalid_at(&format!(
                "model_list: []\ngeneral_settings:\n  database_connection_pool_limit: {bad}\n"
            ));
            assert_eq!(
                path, "general_settings.database_connection_pool_limit",
                "{bad}: {shown}"
            );
            assert_eq!(line, Some(3), "{bad}: {shown}");
            assert!(shown.contains("from 1 to 1000"), "{bad}: {shown}");
            assert!(shown.contains("remove the key for the default of 10"), "{bad}: {shown}");
        }
        // LiteLLM's connection timeout has no place in tollgate's pool settings: named, not silently dropped.
        assert!(warned(
            "general_settings:\n  database_connection_timeout: 60\n",
            "general_settings.database_connection_timeout",
            "no effect"
        ));
    }

    #[test]
    fn require_database_and_retention_days_are_tollgate_settings() {
        let c = parse(
            "tollgate_settings:\n  require_database: true\n  retention_days: 90\n",
            Path::new("c.yaml"),
            &env(&[]),
        )
        .unwrap();
        assert!(c.require_database);
        assert_eq!(c.retention_days, Some(90));
        assert_eq!((c.budget_error_status, c.hide_budget_amounts), (429, false), "defaults");
        assert!(
            c.warnings.iter().all(|w| !w.path.starts_with("tollgate_settings")),
            "{:?}",
            c.warnings
        );
        let c = parse(
            "tollgate_settings:\n  retention_days: os.environ/KEEP_DAYS\n",
            Path::new("c.yaml"),
            &env(&[("KEEP_DAYS", "30")]),
        )
        .unwrap();
        assert_eq!(c.retention_days, Some(30));
        let (path, _, _, shown) = invalid_at("tollgate_settings:\n  require_database: yes please\n");
        assert_eq!(path, "tollgate_settings.require_database", "{shown}");
        assert!(shown.contains("true or false"), "{shown}");
        for bad in ["0", "-7", "1.5", "forever", "'0'", "4294967296"] {
            let (path, line, _, shown) = invalid_at(&format!("tollgate_settings:\n  retention_days: {bad}\n"));
            assert_eq!(path, "tollgate_settings.retention_days", "{bad}: {shown}");
            assert_eq!(line, Some(2), "{bad}: {shown}");
            assert!(
                shown.contains("remove the key to keep records forever"),
                "{bad}: {shown}"
            );
        }
        // Budget refusals: 429 or 400, amounts shown or hidden.
        let c = parse(
            "tollgate_settings:\n  budget_error_status: 400\n  hide_budget_amounts: true\n",
            Path::new("c.yaml"),
            &env(&[]),
        )
        .unwrap();
        assert_eq!((c.budget_error_status, c.hide_budget_amounts), (400, true));
        let c = parse(
            "litellm_settings:\n  max_budget: 250\n  budget_duration: 1mo\n  max_end_user_budget: 2.5\n",
            Path::new("c.yaml"),
            &env(&[]),
        )
        .unwrap();
        assert_eq!(
            (c.proxy_budget, c.max_end_user_budget),
            (
                Some(ProxyBudget {
                    max_budget: 250.0,
                    budget_duration: Some("1mo".into())
                }),
                Some(2.5)
            )
        );
        let (path, _, _, shown) = invalid_at("litellm_settings:\n  budget_duration: monthly\n");
        assert_eq!(path, "litellm_settings.budget_duration", "{shown}");
        assert!(shown.contains("1mo"), "{shown}");
        let (path, _, _, _) = invalid_at("litellm_settings:\n  max_budget: -1\n");
        assert_eq!(path, "litellm_settings.max_budget");
        assert_eq!(c.budget_timezone, chrono_tz::UTC, "budget periods in UTC by default");
        let c = parse(
            "litellm_settings:\n  timezone: Europe/Istanbul\n",
            Path::new("c.yaml"),
            &env(&[]),
        )
        .unwrap();
        assert_eq!(c.budget_timezone, chrono_tz::Europe::Istanbul);
        let (path, _, _, shown) = invalid_at("litellm_settings:\n  timezone: Mars/Olympus\n");
        assert_eq!(path, "litellm_settings.timezone", "{shown}");
        assert!(shown.contains("IANA timezone"), "{shown}");
        let (path, _, _, shown) = invalid_at("tollgate_settings:\n  budget_error_status: 418\n");
        assert_eq!(path, "tollgate_settings.budget_error_status", "{shown}");
        assert!(shown.contains("429") && shown.contains("400"), "{shown}");
        // The unknown-key warning lists the new keys.
        assert!(warned(
            "tollgate_settings:\n  retention: 3\n",
            "tollgate_settings.retention",
            "require_database, retention_days"
        ));
    }

    #[test]
    fn token_rate_limit_type_is_read_from_general_settings_and_refused_where_written() {
        let c = parse("general_settings: {}\n", Path::new("c.yaml"), &env(&[])).unwrap();
        assert_eq!(c.token_rate_limit_type, TokenRateLimitType::Total);
        for (written, want) in [
            ("input", TokenRateLimitType::Input),
            ("output", TokenRateLimitType::Output),
            ("total", TokenRateLimitType::Total),
        ] {
            let c = parse(
                &format!("general_settings:\n  token_rate_limit_type: {written}\n"),
                Path::new("c.yaml"),
                &env(&[]),
            )
            .unwrap();
            assert_eq!(c.token_rate_limit_type, want);
            assert!(
                c.warnings.iter().all(|w| !w.path.starts_with("general_settings")),
                "{:?}",
                c.warnings
            );
        }
        assert_eq!(TokenRateLimitType::Output.count(10, 3), 3);
        assert_eq!(TokenRateLimitType::Input.count(10, 3), 10);
        assert_eq!(TokenRateLimitType::Total.count(10, 3), 13);
        for bad in ["both", "3", "[total]"] {
            let (path, line, _, shown) = invalid_at(&format!(
                "model_list: []\ngeneral_settings:\n  token_rate_limit_type: {bad}\n"
            ));
            assert_eq!(path, "general_settings.token_rate_limit_type", "{shown}");
            assert_eq!(line, Some(3), "{shown}");
            assert!(shown.starts_with("c.yaml:3:"), "{shown}");
            assert!(shown.contains("input, output or total"), "{shown}");
        }
    }

    #[test]
    fn rate_limits_use_router_settings_redis_else_the_caches() {
        let none = parse("general_settings: {}\n", Path::new("c.yaml"), &env(&[])).unwrap();
        assert_eq!(none.rate_limit_redis, None);
        assert_eq!(none.rate_limit_prefix, DEFAULT_RATE_LIMIT_PREFIX);
        let cache = "litellm_settings:\n  cache: true\n  cache_params: {type: redis, host: cache-host}\n";
        let c = parse(cache, Path::new("c.yaml"), &env(&[])).unwrap();
        let r = c.rate_limit_redis.unwrap();
        assert_eq!(
            (r.url.expose(), r.source),
            ("redis://cache-host:6379/", "litellm_settings.cache_params")
        );
        // A local cache names no Redis.
        let local = "litellm_settings:\n  cache: true\n  cache_params: {type: local}\n";
        assert_eq!(
            parse(local, Path::new("c.yaml"), &env(&[])).unwrap().rate_limit_redis,
            None
        );
        // router_settings wins, and its Redis keys are no longer "not acted on".
        let both =
            format!("{cache}router_settings:\n  redis_host: rl-host\n  redis_port: 6380\n  redis_password: pw\n");
        let c = parse(&both, Path::new("c.yaml"), &env(&[])).unwrap();
        let r = c.rate_limit_redis.unwrap();
        assert_eq!(
            (r.url.expose(), r.source),
            ("redis://:pw@rl-host:6380/", "router_settings.redis_host")
        );
        assert!(
            c.warnings.iter().all(|w| !w.path.starts_with("router_settings")),
            "{:?}",
            c.warnings
        );
        let url = "router_settings:\n  redis_url: redis://r:6379/2\n  redis_host: ignored\ntollgate_settings:\n  rate_limit_prefix: 'team-a:rl:'\n";
        let c = parse(url, Path::new("c.yaml"), &env(&[])).unwrap();
        assert_eq!(c.rate_limit_redis.unwrap().url.expose(), "redis://r:6379/2");
        assert_eq!(c.rate_limit_prefix, "team-a:rl");
        // Mistakes are refused where they are written.
        for (yaml, at) in [
            (
                "router_settings:\n  redis_url: http://r/\n",
                "router_settings.redis_url",
            ),
            (
                "router_settings:\n  redis_host: r\n  redis_port: web\n",
                "router_settings.redis_port",
            ),
            (
                "tollgate_settings:\n  rate_limit_prefix: 'a b'\n",
                "tollgate_settings.rate_limit_prefix",
            ),
        ] {
            let (path, line, _, shown) = invalid_at(yaml);
            assert_eq!(path, at, "{shown}");
            assert!(line.is_some(), "{shown}");
        }
    }

    #[test]
    fn trusted_proxies_are_addresses_and_ranges() {
        let c = parse(
            "tollgate_settings:\n  trusted_proxies: ['127.0.0.1', '10.0.0.0/8', '::1']\n",
            Path::new("c.yaml"),
            &env(&[]),
        )
        .unwrap();
        let shown: Vec<String> = c.trusted_proxies.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["127.0.0.1/32", "10.0.0.0/8", "::1/128"]);
        let none = parse("model_list: []\n", Path::new("c.yaml"), &env(&[])).unwrap();
        assert!(none.trusted_proxies.is_empty(), "none trusted unless said");
        for yaml in [
            "tollgate_settings:\n  trusted_proxies: ['10.0.0.0/33']\n",
            "tollgate_settings:\n  trusted_proxies: 'nginx'\n",
            "tollgate_settings:\n  trusted_proxies: [8080]\n",
        ] {
            let (path, line, _, shown) = invalid_at(yaml);
            assert_eq!(path, "tollgate_settings.trusted_proxies", "{shown}");
            assert!(line.is_some(), "{shown}");
        }
    }

    #[test]
    fn health_check_settings_are_read_from_general_settings() {
        let c = parse(
            "general_settings:\n  background_health_checks: true\n  health_check_interval: 30\n  health_check_details: false\n",
            Path::new("c.yaml"),
            &env(&[]),
        )
        .unwrap();
        assert_eq!(
            c.health_checks,
            HealthChecks {
                background: true,
                interval_s: 30.0,
                details: false
            }
        );
        assert!(
            c.warnings.iter().all(|w| !w.path.starts_with("general_settings")),
            "{:?}",
            c.warnings
        );
        assert_eq!(
            parse("model_list: []\n", Path::new("c.yaml"), &env(&[]))
                .unwrap()
                .health_checks,
            HealthChecks::default()
        );
        for bad in ["health_check_interval: 0", "background_health_checks: 'yes'"] {
            let e = parse(&format!("general_settings:\n  {bad}\n"), Path::new("c.yaml"), &env(&[]));
            assert!(e.is_err(), "{bad}");
        }
    }
}
