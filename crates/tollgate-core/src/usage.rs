//! Token usage kept in disjoint buckets.
//!
//! Providers disagree on what "prompt tokens" means (Anthropic excludes cached input, OpenAI
//! includes it; Gemini reports thinking outside the candidate count). Storing the five disjoint
//! buckets and deriving OpenAI's view from them means no token is ever counted twice or lost.

use serde::{Deserialize, Serialize};

/// Token counts in disjoint buckets. `prompt = input + cache_read + cache_write`,
/// `completion = output + reasoning`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens neither read from nor written to the provider's prompt cache.
    pub input: u64,
    /// Prompt tokens served from the provider's prompt cache.
    pub cache_read: u64,
    /// Prompt tokens written to the provider's prompt cache (priced above plain input).
    pub cache_write: u64,
    /// Visible completion tokens (text and tool calls), reasoning excluded.
    pub output: u64,
    /// Reasoning ("thinking") tokens.
    pub reasoning: u64,
}

impl Usage {
    /// Builds buckets from OpenAI's convention, where `prompt_tokens` includes cached tokens and
    /// `completion_tokens` includes reasoning. Inconsistent inputs (a detail larger than its
    /// total) are clamped so that buckets never go negative; the totals win.
    pub fn from_openai(
        prompt_tokens: u64,
        completion_tokens: u64,
        cached_tokens: u64,
        cache_creation_tokens: u64,
        reasoning_tokens: u64,
    ) -> Self {
        let cache_read = cached_tokens.min(prompt_tokens);
        let cache_write = cache_creation_tokens.min(prompt_tokens - cache_read);
        let reasoning = reasoning_tokens.min(completion_tokens);
        Usage {
            input: prompt_tokens - cache_read - cache_write,
            cache_read,
            cache_write,
            output: completion_tokens - reasoning,
            reasoning,
        }
    }

    /// OpenAI's `prompt_tokens`: every input token, cached or not.
    pub fn prompt_tokens(&self) -> u64 {
        self.input + self.cache_read + self.cache_write
    }

    /// OpenAI's `completion_tokens`: visible output plus reasoning.
    pub fn completion_tokens(&self) -> u64 {
        self.output + self.reasoning
    }

    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens() + self.completion_tokens()
    }

    /// Adds another usage bucket by bucket (workflow runs sum their steps).
    pub fn add(&mut self, other: &Usage) {
        self.input += other.input;
        self.cache_read += other.cache_read;
        self.cache_write += other.cache_write;
        self.output += other.output;
        self.reasoning += other.reasoning;
    }

    /// OpenAI's `usage` object for this usage, with the detail objects clients read.
    pub fn to_openai_json(&self) -> serde_json::Value {
        let mut prompt_details = serde_json::json!({ "cached_tokens": self.cache_read });
        if self.cache_write > 0 {
            // Not an OpenAI field; LiteLLM reports Anthropic cache writes under this name.
            prompt_details["cache_creation_tokens"] = self.cache_write.into();
        }
        serde_json::json!({
            "prompt_tokens": self.prompt_tokens(),
            "completion_tokens": self.completion_tokens(),
            "total_tokens": self.total_tokens(),
            "prompt_tokens_details": prompt_details,
            "completion_tokens_details": { "reasoning_tokens": self.reasoning },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_view_round_trips_through_buckets() {
        let u = Usage::from_openai(1000, 300, 400, 100, 120);
        assert_eq!(u.input, 500);
        assert_eq!(u.cache_read, 400);
        assert_eq!(u.cache_write, 100);
        assert_eq!(u.output, 180);
        assert_eq!(u.reasoning, 120);
        assert_eq!(u.prompt_tokens(), 1000);
        assert_eq!(u.completion_tokens(), 300);
        assert_eq!(u.total_tokens(), 1300);
    }

    #[test]
    fn details_larger_than_totals_are_clamped() {
        let u = Usage::from_openai(10, 5, 50, 50, 9);
        assert_eq!(
            u,
            Usage {
                input: 0,
                cache_read: 10,
                cache_write: 0,
                output: 0,
                reasoning: 5
            }
        );
    }

    #[test]
    fn openai_json_has_detail_objects() {
        let v = Usage::from_openai(100, 50, 20, 0, 10).to_openai_json();
        assert_eq!(v["prompt_tokens"], 100);
        assert_eq!(v["completion_tokens"], 50);
        assert_eq!(v["total_tokens"], 150);
        assert_eq!(v["prompt_tokens_details"]["cached_tokens"], 20);
        assert_eq!(v["completion_tokens_details"]["reasoning_tokens"], 10);
        assert!(v["prompt_tokens_details"].get("cache_creation_tokens").is_none());
    }
}
