//! Prices per token and the cost of a [`Usage`].
//!
//! The table uses LiteLLM's `model_prices_and_context_window.json` format, so the same loader
//! reads tollgate's built-in facts (`prices.json`), a user's copy of LiteLLM's file, and
//! per-deployment overrides from a LiteLLM `config.yaml`.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::usage::Usage;

/// One model's prices (USD per token) and limits, as LiteLLM names them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Price {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_cost_per_token: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_cost_per_token: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_token_cost: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_token_cost: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_cost_per_reasoning_token: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    /// LiteLLM's older single limit; read as a fallback for `max_output_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub litellm_provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

/// Cost of one request, per bucket, in USD. The buckets are disjoint and add up to [`Cost::total`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    pub input: f64,
    pub cache_read: f64,
    pub cache_write: f64,
    pub output: f64,
    pub reasoning: f64,
}

impl Cost {
    pub fn total(&self) -> f64 {
        self.input + self.cache_read + self.cache_write + self.output + self.reasoning
    }
}

impl Price {
    /// A price can cost a request only when both base rates are known; anything less would
    /// produce a silent, wrong $0.
    pub fn is_priced(&self) -> bool {
        self.input_cost_per_token.is_some() && self.output_cost_per_token.is_some()
    }

    /// Cost per bucket, or `None` when the model is unpriced. Cache reads and writes fall back to
    /// the input rate and reasoning to the output rate when the provider has no separate rate.
    pub fn cost(&self, usage: &Usage) -> Option<Cost> {
        let input = self.input_cost_per_token?;
        let output = self.output_cost_per_token?;
        let read = self.cache_read_input_token_cost.unwrap_or(input);
        let write = self.cache_creation_input_token_cost.unwrap_or(input);
        let reasoning = self.output_cost_per_reasoning_token.unwrap_or(output);
        Some(Cost {
            input: usage.input as f64 * input,
            cache_read: usage.cache_read as f64 * read,
            cache_write: usage.cache_write as f64 * write,
            output: usage.output as f64 * output,
            reasoning: usage.reasoning as f64 * reasoning,
        })
    }

    /// The largest completion the model allows.
    pub fn max_output(&self) -> Option<u64> {
        self.max_output_tokens.or(self.max_tokens)
    }

    /// Overlays the fields `other` sets (per-deployment overrides on top of the table).
    pub fn overlay(&mut self, other: &Price) {
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f.clone(); } )* };
        }
        take!(
            input_cost_per_token,
            output_cost_per_token,
            cache_read_input_token_cost,
            cache_creation_input_token_cost,
            output_cost_per_reasoning_token,
            max_input_tokens,
            max_output_tokens,
            max_tokens,
            litellm_provider,
            mode
        );
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PriceError {
    #[error("cannot read price file {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error(
        "price file {path} is not in LiteLLM's model_prices_and_context_window.json format (line {line}, column {column}): {message}"
    )]
    Format {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
}

/// Prices by model name. Keys are matched case-insensitively; see [`PriceTable::lookup`].
#[derive(Debug, Clone)]
pub struct PriceTable {
    entries: HashMap<String, Price>,
    /// What an OpenRouter `:free` variant costs: nothing, in every bucket.
    free: Price,
}

/// OpenRouter serves some models at no charge under the id `vendor/model:free`; their price is a
/// real $0, not an unknown one.
fn free_price() -> Price {
    Price {
        input_cost_per_token: Some(0.0),
        output_cost_per_token: Some(0.0),
        cache_read_input_token_cost: Some(0.0),
        cache_creation_input_token_cost: Some(0.0),
        output_cost_per_reasoning_token: Some(0.0),
        litellm_provider: Some("openrouter".into()),
        mode: Some("chat".into()),
        ..Price::default()
    }
}

const BUILTIN: &str = include_str!("prices.json");

impl Default for PriceTable {
    fn default() -> Self {
        PriceTable {
            entries: HashMap::new(),
            free: free_price(),
        }
    }
}

impl PriceTable {
    /// tollgate's own table, covering every model of the seed system and common neighbours.
    pub fn builtin() -> Self {
        // The file is part of the binary and covered by a test, so a parse failure is a build bug;
        // fall back to an empty table (every model unpriced, loudly) rather than panic.
        Self::parse(BUILTIN).unwrap_or_default()
    }

    /// Parses LiteLLM's price-map JSON. Non-object entries (LiteLLM's `sample_spec` docs) and
    /// unknown fields are skipped.
    pub fn parse(json: &str) -> Result<Self, serde_json::Error> {
        let raw: HashMap<String, serde_json::Value> = serde_json::from_str(json)?;
        let mut table = PriceTable::default();
        for (name, value) in raw {
            if name == "sample_spec" || !value.is_object() {
                continue;
            }
            if let Ok(price) = serde_json::from_value::<Price>(value) {
                table.insert(&name, price);
            }
        }
        Ok(table)
    }

    pub fn load_file(path: &Path) -> Result<Self, PriceError> {
        let text = std::fs::read_to_string(path).map_err(|source| PriceError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|e| PriceError::Format {
            path: path.display().to_string(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })
    }

    /// Adds or replaces an entry. A `provider/model` key is also reachable by its bare model name
    /// unless another entry already owns that name.
    pub fn insert(&mut self, name: &str, price: Price) {
        let key = name.to_ascii_lowercase();
        if let Some((_, bare)) = key.split_once('/') {
            self.entries.entry(bare.to_string()).or_insert_with(|| price.clone());
        }
        self.entries.insert(key, price);
    }

    /// Entries from `other` win over this table's (a user's price file over the built-ins).
    pub fn merge(&mut self, other: PriceTable) {
        for (k, v) in other.entries {
            self.entries.insert(k, v);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Finds the price for a LiteLLM model string such as `deepseek/deepseek-v3.2`,
    /// `openrouter/x-ai/grok-4.1-fast` or `gpt-4o-mini`: the exact name first, then the name
    /// without its provider prefix, then as an OpenAI model.
    pub fn lookup(&self, model: &str) -> Option<&Price> {
        let key = model.to_ascii_lowercase();
        if let Some(p) = self.entries.get(&key) {
            return Some(p);
        }
        if let Some((_, rest)) = key.split_once('/') {
            if let Some(p) = self.entries.get(rest) {
                return Some(p);
            }
            // `openrouter/vendor/model` → `model`
            if let Some(p) = rest.rsplit_once('/').and_then(|(_, last)| self.entries.get(last)) {
                return Some(p);
            }
        }
        if let Some(p) = self.entries.get(&format!("openai/{key}")) {
            return Some(p);
        }
        // `openrouter/meta-llama/llama-3.3-70b-instruct:free`: an explicit entry wins (above);
        // otherwise the `:free` tier of a vendor's model costs nothing.
        (key.ends_with(":free") && key.contains('/')).then_some(&self.free)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openrouter_free_models_cost_nothing_and_are_priced() {
        let t = PriceTable::builtin();
        for m in [
            "openrouter/meta-llama/llama-3.3-70b-instruct:free",
            "meta-llama/llama-3.3-70b-instruct:free",
            "OpenRouter/deepseek/deepseek-r1:free",
        ] {
            let p = t.lookup(m).unwrap_or_else(|| panic!("{m} not found"));
            assert!(p.is_priced(), "{m}");
            let usage = Usage {
                input: 1000,
                output: 500,
                ..Usage::default()
            };
            assert_eq!(p.cost(&usage).map(|c| c.total()), Some(0.0), "{m}");
        }
        // Only OpenRouter-style `vendor/model:free` ids; a bare name is not guessed at.
        assert!(t.lookup("mystery:free").is_none());
    }

    #[test]
    fn builtin_table_parses_and_covers_the_seed_models() {
        let t = PriceTable::builtin();
        assert!(t.len() > 10);
        for m in [
            "deepseek/deepseek-v3.2",
            "gemini/gemini-2.5-flash",
            "minimax/MiniMax-M2.1",
            "xai/grok-4-1-fast-reasoning",
            "anthropic/claude-sonnet-4-5",
            "gpt-4o-mini",
            "openrouter/deepseek/deepseek-v3.2",
            "openrouter/x-ai/grok-4.1-fast",
        ] {
            assert!(t.lookup(m).is_some_and(Price::is_priced), "{m} has no price");
        }
        assert!(t.lookup("nobody/unknown-model").is_none());
    }

    #[test]
    fn cost_uses_each_bucket_rate() {
        // DeepSeek V3.2 at LiteLLM's list prices, computed by hand:
        // 600 uncached × 0.28/M + 400 cached × 0.028/M + 200 output × 0.4/M + 100 reasoning × 0.4/M
        let p = PriceTable::builtin().lookup("deepseek/deepseek-v3.2").cloned().unwrap();
        let u = Usage {
            input: 600,
            cache_read: 400,
            cache_write: 0,
            output: 200,
            reasoning: 100,
        };
        let c = p.cost(&u).unwrap();
        assert!((c.input - 0.000168).abs() < 1e-12);
        assert!((c.cache_read - 0.0000112).abs() < 1e-12);
        assert!((c.output - 0.00008).abs() < 1e-12);
        assert!((c.reasoning - 0.00004).abs() < 1e-12);
        assert!((c.total() - 0.0002992).abs() < 1e-12);
    }

    #[test]
    fn cache_write_and_reasoning_rates_fall_back() {
        let p = Price {
            input_cost_per_token: Some(1e-6),
            output_cost_per_token: Some(2e-6),
            ..Price::default()
        };
        let c = p
            .cost(&Usage {
                input: 1,
                cache_read: 1,
                cache_write: 1,
                output: 1,
                reasoning: 1,
            })
            .unwrap();
        assert_eq!(c.cache_read, 1e-6);
        assert_eq!(c.cache_write, 1e-6);
        assert_eq!(c.reasoning, 2e-6);
    }

    #[test]
    fn missing_rate_means_unpriced_not_zero() {
        let p = Price {
            input_cost_per_token: Some(1e-6),
            ..Price::default()
        };
        assert!(!p.is_priced());
        assert!(p.cost(&Usage::default()).is_none());
    }

    #[test]
    fn litellm_format_with_sample_spec_loads() {
        let t = PriceTable::parse(
            r#"{"sample_spec": {"input_cost_per_token": 0, "supports_vision": "doc"},
                "my/model": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6, "supports_vision": true}}"#,
        )
        .unwrap();
        assert!(t.lookup("my/model").is_some());
        assert!(t.lookup("sample_spec").is_none());
    }
}
