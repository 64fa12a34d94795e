//! The report itself: what [`build_report`](crate::build_report) fills in and every renderer
//! reads. Its serde form is the `--format json` schema. Kept apart from the aggregation so the
//! findings, which read a finished report, and the aggregation, which calls them, point one way.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::finding::Finding;
use crate::import::InputSummary;
use crate::stats::Summary;

pub const SCHEMA_VERSION: u32 = 1;

/// The whole report. Its serde form is the `--format json` schema (see `docs/report-schema.md`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub inputs: Vec<InputSummary>,
    /// Records dropped because their request id was already seen.
    pub duplicates: u64,
    /// Records outside `--since`/`--until`/`--model`.
    pub filtered_out: u64,
    /// Where the records came from: `tollgate`, `litellm-payload`, `litellm-spendlogs`.
    pub sources: Vec<String>,
    pub period: Period,
    pub requests: Requests,
    pub cost: CostTotals,
    pub models: Vec<ModelReport>,
    pub clients: Vec<NamedCount>,
    /// Requests and cost per endpoint (`chat`, `messages`, `responses`, …) and client (the
    /// User-Agent's product: `claude-cli`, `codex_cli_rs`, `OpenAI`), most expensive first.
    /// Empty (and left out of the JSON) when no record names its endpoint.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<EndpointTraffic>,
    /// Spend per virtual key, user and team. Empty (and left out of the JSON) unless the traffic
    /// came through more than one key, user or team, or any key but the master key: a report of
    /// master-key-only traffic has nothing to break down.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeySpend>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<UserSpend>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub teams: Vec<TeamSpend>,
    pub sessions: Sessions,
    pub cache: CacheReport,
    pub reasoning: ReasoningReport,
    pub tokens: TokenReport,
    pub latency: LatencyReport,
    pub overhead_ms: Option<Overhead>,
    pub timeline: Timeline,
    pub workflows: Vec<WorkflowReport>,
    pub findings: Vec<Finding>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Period {
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub duration_s: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Requests {
    pub total: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// succeeded / total; null when there are no requests.
    pub success_rate: Option<f64>,
    pub streamed: u64,
    pub cache_hits: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CostTotals {
    /// Recomputed from the price table where the model is priced, else as logged.
    pub total_usd: f64,
    /// Sum of the cost the logs reported (LiteLLM's `response_cost`/`spend`); null if none did.
    pub logged_usd: Option<f64>,
    /// Over requests that have both: recomputed − logged.
    pub difference_usd: Option<f64>,
    pub reasoning_usd: f64,
    pub saved_usd: f64,
    pub unpriced_models: Vec<String>,
    pub unpriced_requests: u64,
}

/// min/avg/p50/p95/p99/max (and count), nearest-rank.
pub type LatencyStats = Summary;

#[derive(Debug, Clone, Default, Serialize)]
pub struct ProviderCache {
    /// Prompt tokens of requests that reached the provider (cache hits excluded).
    pub prompt_tokens: u64,
    pub cached_tokens: u64,
    /// cached / prompt; null ("n/a") when the provider reported no cached tokens at all.
    pub share: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ErrorExample {
    pub message: String,
    pub count: u64,
    pub request_id: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelReport {
    /// The model group: what the client asked for.
    pub model: String,
    pub upstream_models: Vec<String>,
    pub requests: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Failures that were the client's fault (a malformed request, a client that left): they
    /// say nothing about the model's health. Left out of the JSON when zero.
    #[serde(skip_serializing_if = "is_zero")]
    pub client_failed: u64,
    pub cache_hits: u64,
    pub streamed: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub reasoning_tokens: u64,
    pub cached_tokens: u64,
    pub cache_creation_tokens: u64,
    pub cost_usd: f64,
    pub reasoning_cost_usd: f64,
    /// Cost of the prompt tokens read from the provider's prompt cache (their own, lower rate).
    pub cache_read_cost_usd: f64,
    /// Cost of the prompt tokens written to the provider's prompt cache (Anthropic bills them at
    /// 1.25× input; most providers have no separate write rate).
    pub cache_write_cost_usd: f64,
    pub logged_cost_usd: Option<f64>,
    pub cost_per_1k_tokens: Option<f64>,
    /// Share of the report's total cost.
    pub cost_share: Option<f64>,
    /// reasoning / completion tokens.
    pub reasoning_share: Option<f64>,
    pub provider_cache: ProviderCache,
    pub unpriced_requests: u64,
    /// Successful requests that reached the provider (cache hits excluded).
    pub latency_ms: Option<LatencyStats>,
    /// Streams only.
    pub ttft_ms: Option<LatencyStats>,
    pub truncated: u64,
    pub errors: Vec<ErrorExample>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NamedCount {
    pub name: String,
    pub requests: u64,
}

/// One endpoint × client pair's traffic.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EndpointTraffic {
    /// `chat`, `messages`, `responses`, …; `-` for records that do not say.
    pub endpoint: String,
    /// The User-Agent's product token (before its first `/` or space); `-` without one.
    pub client: String,
    pub requests: u64,
    pub cost_usd: f64,
}

/// What one key, user or team spent; the same figures for all three.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Spend {
    pub requests: u64,
    pub failed: u64,
    /// Tokens per bucket, disjoint (`input` excludes cache reads and writes, `output` excludes
    /// reasoning); cache hits included, as in `models[]`.
    pub input_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
    /// Computed as `models[].cost_usd` is (recomputed where priced, else as logged), so the rows
    /// add up to the report's total.
    pub cost_usd: f64,
    /// Requests whose cost is unknown (no price): `cost_usd` leaves them out.
    pub unpriced_requests: u64,
    /// The model groups with the most cost (then requests), at most three.
    pub top_models: Vec<ModelSpend>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelSpend {
    pub model: String,
    pub requests: u64,
    pub cost_usd: f64,
}

/// A virtual key (or the master key): known by its alias, and by its hash prefix when it has one.
#[derive(Debug, Clone, Serialize)]
pub struct KeySpend {
    /// The alias (`sk-...abcd` for a tollgate key without one, `master_key` for the master key);
    /// null for a LiteLLM key logged without an alias.
    pub key_alias: Option<String>,
    /// The first 16 hex digits of the key's SHA-256; null for the master key.
    pub key_hash: Option<String>,
    #[serde(flatten)]
    pub spend: Spend,
}

#[derive(Debug, Clone, Serialize)]
pub struct UserSpend {
    pub user_id: String,
    #[serde(flatten)]
    pub spend: Spend,
}

#[derive(Debug, Clone, Serialize)]
pub struct TeamSpend {
    pub team_id: String,
    #[serde(flatten)]
    pub spend: Spend,
}

#[derive(Debug, Clone, Serialize)]
pub struct SessionPattern {
    /// Model groups in call order; a failed call is marked `✗`.
    pub steps: Vec<String>,
    pub sessions: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Sessions {
    pub total: u64,
    pub requests_with_session: u64,
    pub avg_requests: Option<f64>,
    pub max_requests: u64,
    pub with_failures: u64,
    pub patterns: Vec<SessionPattern>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CacheCounts {
    pub off: u64,
    pub miss: u64,
    pub hit: u64,
    pub bypass: u64,
    pub unknown: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CacheReport {
    /// `on`, `off`, `mixed` (both seen in the window) or `unknown` (the logs do not say).
    pub state: String,
    /// `state` is inferred from the traffic (no hit anywhere, exact repeats still sent to the
    /// provider) rather than read from the records.
    pub inferred: bool,
    /// true/false, or null when unknown.
    pub enabled: Option<bool>,
    pub records: CacheCounts,
    pub hits: u64,
    /// hits / successful requests, when the cache is on.
    pub hit_rate: Option<f64>,
    pub saved_usd: f64,
    /// Successful requests that repeated an earlier prompt exactly and still went to the provider.
    pub repeat_requests: u64,
    /// What those repeats cost: what a working response cache would have saved.
    pub potential_savings_usd: f64,
    pub repeats_streamed: u64,
    pub repeat_examples: Vec<String>,
    /// Requests whose prompt could be fingerprinted (the logs kept the messages).
    pub fingerprinted: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReasoningRow {
    pub request_id: String,
    pub model: String,
    pub reasoning_tokens: u64,
    pub completion_tokens: u64,
    pub share: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ReasoningReport {
    pub top: Vec<ReasoningRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TokenBucket {
    pub label: String,
    /// Inclusive lower bound, exclusive upper bound (null: no upper bound).
    pub lower: u64,
    pub upper: Option<u64>,
    pub requests: u64,
    pub min: Option<u64>,
    pub max: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TokenDistribution {
    pub buckets: Vec<TokenBucket>,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TokenReport {
    pub prompt: TokenDistribution,
    pub completion: TokenDistribution,
}

#[derive(Debug, Clone, Serialize)]
pub struct RequestRef {
    pub request_id: String,
    pub model: String,
    pub start: DateTime<Utc>,
    pub latency_ms: f64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub reasoning_tokens: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct LatencyReport {
    pub percentile_method: String,
    pub fastest: Vec<RequestRef>,
    pub slowest: Vec<RequestRef>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Overhead {
    pub samples: u64,
    pub avg: f64,
    pub p50: f64,
    pub p95: f64,
    pub max: f64,
    pub max_request_id: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimePoint {
    pub start: DateTime<Utc>,
    pub requests: u64,
    pub failed: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_usd: f64,
    /// Of the bucket's successful requests that reached the provider.
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Timeline {
    pub bucket_ms: i64,
    pub points: Vec<TimePoint>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub index: Option<u32>,
    pub role: String,
    pub calls: u64,
    pub failed: u64,
    pub runs: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_usd: f64,
    pub latency_ms: Option<LatencyStats>,
    pub models: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MissingStep {
    pub role: String,
    pub index: Option<u32>,
    /// Runs in which the step did not appear (or, for `always_failed`, failed).
    pub runs: u64,
    /// `never_ran`, `skipped` (absent from runs that reached a later step) or `always_failed`.
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkflowReport {
    pub name: String,
    pub runs: u64,
    pub runs_failed: u64,
    pub steps: Vec<StepReport>,
    pub missing_steps: Vec<MissingStep>,
}
