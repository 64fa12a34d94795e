//! The per-request record: what the gateway writes, the store keeps and the report reads.
//! LiteLLM's logs are converted into the same shape, so one piece of code computes every figure.
//!
//! The JSON field names are a public contract (JSONL top level, report inputs); add fields, never
//! rename them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::Fault;
use crate::price::Cost;
use crate::usage::Usage;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordStatus {
    #[default]
    Success,
    Failure,
}

/// The gateway response cache's part in a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheState {
    /// No response cache configured.
    #[default]
    Off,
    Miss,
    Hit,
    /// Cache configured but skipped for this request (per-request control or backend down).
    Bypass,
    /// Imported logs that do not say.
    Unknown,
}

impl CacheState {
    pub fn as_str(&self) -> &'static str {
        match self {
            CacheState::Off => "off",
            CacheState::Miss => "miss",
            CacheState::Hit => "hit",
            CacheState::Bypass => "bypass",
            CacheState::Unknown => "unknown",
        }
    }
}

/// One client request, or one upstream attempt / workflow step (then `trace_id` ties them together).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Record {
    pub request_id: String,
    pub trace_id: String,
    pub session_id: Option<String>,
    /// What the client asked for (a `model_name` from the config, a workflow or an alias).
    pub model_group: String,
    /// The upstream model, as LiteLLM spells it (`deepseek/deepseek-v3.2`).
    pub model: String,
    pub provider: String,
    pub api_base: Option<String>,
    pub status: RecordStatus,
    pub http_status: u16,
    pub stream: bool,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub ttft_ms: Option<f64>,
    pub latency_ms: f64,
    pub upstream_ms: Option<f64>,
    pub overhead_ms: Option<f64>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub reasoning_tokens: u64,
    pub cached_tokens: u64,
    /// The provider reported its prompt-cache reads (even 0); false when it said nothing.
    pub cached_tokens_reported: bool,
    pub cache_creation_tokens: u64,
    /// `None` when the model has no price: never a silent $0.
    pub cost_usd: Option<f64>,
    /// Uncached input only; cache reads and writes have their own buckets.
    pub cost_input_usd: Option<f64>,
    pub cost_cache_read_usd: Option<f64>,
    pub cost_cache_write_usd: Option<f64>,
    /// Visible output only; reasoning has its own bucket.
    pub cost_output_usd: Option<f64>,
    pub cost_reasoning_usd: Option<f64>,
    /// Cost a response-cache hit avoided.
    pub saved_cost_usd: Option<f64>,
    /// Cost as the upstream (e.g. OpenRouter's `usage.cost`) or the original log reported it.
    pub reported_cost_usd: Option<f64>,
    pub unpriced: bool,
    pub cache: CacheState,
    pub user_agent: Option<String>,
    pub key_alias: Option<String>,
    pub config_version: Option<u64>,
    pub error_type: Option<String>,
    pub error_message: Option<String>,
    /// Whose fault a failure was (client, deployment, gateway); `None` on success and in
    /// imported logs that do not say.
    pub fault: Option<Fault>,
    /// The token counts were estimated by the gateway (a stream that broke or was cancelled
    /// before the provider reported usage), not reported by the provider.
    pub usage_estimated: bool,
    pub prompt_sha256: Option<String>,
    pub finish_reason: Option<String>,
    /// Requested `max_tokens` / `max_completion_tokens`, for truncation findings.
    pub max_tokens: Option<u64>,
    pub workflow: Option<String>,
    pub step_role: Option<String>,
    pub step_index: Option<u32>,
    /// Upstream attempt number within the trace (1-based) once retries exist.
    pub attempt: Option<u32>,
    /// Where the record came from: `tollgate`, `litellm-payload`, `litellm-spendlogs`.
    pub source: String,
    /// A summary of other records (a workflow run, whose steps have records of their own):
    /// totals must skip it or they count its tokens and cost twice.
    pub rollup: bool,
    /// The gateway instance that served it (`--instance-id`, hostname:port by default), so
    /// records of many instances in one shared store can be told apart. Absent on imported logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// The first 16 hex digits of the virtual key's SHA-256 (never the key itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_hash: Option<String>,
    /// The virtual key's user and team.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
    /// The end user the request was for: the OpenAI `user` field (LiteLLM's customer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_user: Option<String>,
    /// Answered by a test hook (LiteLLM's `mock_response`) instead of a provider: priced as if
    /// real, so budgets and reports can be tested, but no provider was paid.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub mocked: bool,
    /// The API the client called: `chat`, `embeddings`, `completions`, `messages` (Anthropic's
    /// Messages API), `moderations`, `rerank`, `images`, `transcriptions`. Absent on imported
    /// logs and on records written before it existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

impl Record {
    /// The usage buckets this record's OpenAI-convention counts describe.
    pub fn usage(&self) -> Usage {
        Usage::from_openai(
            self.prompt_tokens,
            self.completion_tokens,
            self.cached_tokens,
            self.cache_creation_tokens,
            self.reasoning_tokens,
        )
    }

    /// Fills the token fields from buckets.
    pub fn set_usage(&mut self, u: &Usage) {
        self.prompt_tokens = u.prompt_tokens();
        self.completion_tokens = u.completion_tokens();
        self.reasoning_tokens = u.reasoning;
        self.cached_tokens = u.cache_read;
        self.cache_creation_tokens = u.cache_write;
    }

    /// Fills the cost fields; `None` marks the record unpriced.
    pub fn set_cost(&mut self, cost: Option<Cost>) {
        match cost {
            Some(c) => {
                self.cost_usd = Some(c.total());
                self.cost_input_usd = Some(c.input);
                self.cost_cache_read_usd = Some(c.cache_read);
                self.cost_cache_write_usd = Some(c.cache_write);
                self.cost_output_usd = Some(c.output);
                self.cost_reasoning_usd = Some(c.reasoning);
                self.unpriced = false;
            }
            None => {
                self.cost_usd = None;
                self.cost_input_usd = None;
                self.cost_cache_read_usd = None;
                self.cost_cache_write_usd = None;
                self.cost_output_usd = None;
                self.cost_reasoning_usd = None;
                self.unpriced = true;
            }
        }
    }

    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }
}

/// Hex SHA-256 of the parts of a request that determine the answer, so the report can find
/// exact repeats without storing prompts.
pub fn prompt_sha256(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_uses_the_contract_names() {
        let mut r = Record {
            request_id: "r1".into(),
            model_group: "g".into(),
            ..Record::default()
        };
        r.set_usage(&Usage {
            input: 10,
            cache_read: 5,
            cache_write: 0,
            output: 3,
            reasoning: 2,
        });
        r.set_cost(None);
        let v = serde_json::to_value(&r).unwrap();
        for k in [
            "request_id",
            "trace_id",
            "session_id",
            "model_group",
            "model",
            "provider",
            "api_base",
            "status",
            "http_status",
            "stream",
            "start_time",
            "end_time",
            "ttft_ms",
            "latency_ms",
            "upstream_ms",
            "overhead_ms",
            "prompt_tokens",
            "completion_tokens",
            "reasoning_tokens",
            "cached_tokens",
            "cache_creation_tokens",
            "cost_usd",
            "cost_input_usd",
            "cost_output_usd",
            "cost_reasoning_usd",
            "unpriced",
            "cache",
            "user_agent",
            "key_alias",
            "config_version",
            "error_type",
            "error_message",
            "prompt_sha256",
        ] {
            assert!(v.get(k).is_some(), "missing {k}");
        }
        assert_eq!(v["status"], "success");
        assert_eq!(v["cache"], "off");
        assert_eq!(v["prompt_tokens"], 15);
        assert_eq!(v["completion_tokens"], 5);
        assert!(v["cost_usd"].is_null());
        assert_eq!(v["unpriced"], true);
        let back: Record = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn sha_is_lowercase_hex_of_sha256() {
        // FIPS 180-2's test vector for "abc".
        assert_eq!(
            prompt_sha256(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
