//! Provider usage → tollgate's disjoint buckets → OpenAI's convention.
//!
//! One table for every provider. Buckets: **in** (uncached input), **read** (cache read),
//! **write** (cache write), **out** (visible output), **reason** (reasoning). The client's
//! `usage` is rebuilt from the buckets: `prompt_tokens = in + read + write`,
//! `completion_tokens = out + reason`, `prompt_tokens_details.cached_tokens = read`,
//! `prompt_tokens_details.cache_creation_tokens = write` (when > 0, LiteLLM's name),
//! `completion_tokens_details.reasoning_tokens = reason`.
//!
//! ### OpenAI-compatible family (plain `usage`; streamed: the final choice-less chunk, same fields)
//!
//! | provider field                                          | bucket                                       |
//! |---------------------------------------------------------|----------------------------------------------|
//! | `prompt_tokens`                                         | in + read + write (OpenAI convention)        |
//! | `prompt_tokens_details.cached_tokens`                   | read                                         |
//! | DeepSeek `prompt_cache_hit_tokens`                      | read (when `cached_tokens` is absent)        |
//! | `prompt_tokens_details.cache_creation_tokens`, OpenRouter `cache_write_tokens`, `cache_creation_input_tokens` | write |
//! | `completion_tokens`                                     | out + reason                                 |
//! | `completion_tokens_details.reasoning_tokens`            | reason                                       |
//! | Gemini-compat `total_tokens` > prompt + completion       | the excess is reason left out of completion  |
//! | OpenRouter `usage.cost`                                 | reported cost (kept beside tollgate's own)   |
//!
//! ### Gemini `generateContent` (plain `usageMetadata`; streamed: `usageMetadata` of the LAST chunk —
//! every chunk carries running totals, so they are replaced, never added)
//!
//! | provider field               | bucket                                                         |
//! |------------------------------|----------------------------------------------------------------|
//! | `promptTokenCount`           | in + read (it INCLUDES `cachedContentTokenCount`)              |
//! | `toolUsePromptTokenCount`    | in (tool results fed back by server-side tools)                |
//! | `cachedContentTokenCount`    | read (Gemini has no cache-write charge per request)            |
//! | `candidatesTokenCount`       | out (it EXCLUDES thinking)                                     |
//! | `thoughtsTokenCount`         | reason (outside `candidatesTokenCount`, so added to completion)|
//! | `totalTokenCount`            | not read (derived)                                             |
//!
//! ### Anthropic Messages (plain `usage`; streamed: `message_start.message.usage`, overwritten
//! field by field by `message_delta.usage`, whose counts are CUMULATIVE — replaced, never added)
//!
//! | provider field                 | bucket                                                       |
//! |--------------------------------|--------------------------------------------------------------|
//! | `input_tokens`                 | in (it EXCLUDES cache reads and writes)                      |
//! | `cache_read_input_tokens`      | read                                                         |
//! | `cache_creation_input_tokens`  | write (priced at `cache_creation_input_token_cost`)          |
//! | `output_tokens`                | out + reason (thinking is billed as output)                  |
//! | length of the thinking text    | reason = ⌈chars / 4⌉, at most `output_tokens`: Anthropic does not count thinking separately, so this split is an estimate (as LiteLLM's); the total and the cost at Claude's single output rate are exact |
//!
//! The buckets are the truth; the `usage` object sent back to the client is rebuilt from them so
//! every client sees OpenAI's convention whichever provider answered.

use serde_json::Value;
use tollgate_core::Usage;

/// What a provider's `usage` object says, in buckets, plus any cost the provider reported.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ParsedUsage {
    pub usage: Usage,
    pub reported_cost_usd: Option<f64>,
    /// The provider said how many prompt tokens came from its cache (even 0). Without it a
    /// report cannot tell "no caching" from "caching not reported".
    pub cache_reported: bool,
}

fn uint(v: &Value, path: &[&str]) -> Option<u64> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_u64().or_else(|| cur.as_f64().map(|f| f.max(0.0) as u64))
}

/// Reads an OpenAI-compatible `usage` object from any provider of the OpenAI family.
pub fn parse_openai_usage(u: &Value) -> ParsedUsage {
    let prompt = uint(u, &["prompt_tokens"]).unwrap_or(0);
    let mut completion = uint(u, &["completion_tokens"]).unwrap_or(0);
    let cached = uint(u, &["prompt_tokens_details", "cached_tokens"])
        .or_else(|| uint(u, &["prompt_cache_hit_tokens"]))
        .unwrap_or(0);
    let cache_write = uint(u, &["prompt_tokens_details", "cache_creation_tokens"])
        .or_else(|| uint(u, &["prompt_tokens_details", "cache_write_tokens"]))
        .or_else(|| uint(u, &["cache_creation_input_tokens"]))
        .unwrap_or(0);
    let mut reasoning = uint(u, &["completion_tokens_details", "reasoning_tokens"]).unwrap_or(0);
    if let Some(total) = uint(u, &["total_tokens"]) {
        // Gemini's OpenAI-compatible endpoint counts thinking in total_tokens only.
        let excess = total.saturating_sub(prompt + completion);
        if excess > 0 && reasoning == 0 {
            reasoning = excess;
            completion += excess;
        }
    }
    ParsedUsage {
        usage: Usage::from_openai(prompt, completion, cached, cache_write, reasoning),
        reported_cost_usd: u.get("cost").and_then(Value::as_f64),
        cache_reported: u
            .pointer("/prompt_tokens_details/cached_tokens")
            .is_some_and(|c| !c.is_null())
            || u.get("prompt_cache_hit_tokens").is_some_and(|c| !c.is_null()),
    }
}

/// Rewrites `usage` in place into OpenAI's convention, keeping provider-specific fields
/// (DeepSeek's `prompt_cache_hit_tokens`, OpenRouter's `cost`) that clients may read.
pub fn normalize_openai_usage(u: &mut Value) -> ParsedUsage {
    let parsed = parse_openai_usage(u);
    let fresh = parsed.usage.to_openai_json();
    if let (Value::Object(target), Value::Object(src)) = (u, fresh) {
        for (k, v) in src {
            match (target.get_mut(&k), v) {
                // Merge detail objects so fields like `audio_tokens` survive.
                (Some(Value::Object(existing)), Value::Object(new)) => existing.extend(new),
                (_, v) => {
                    target.insert(k, v);
                }
            }
        }
    }
    parsed
}

/// Reads Gemini's `usageMetadata` (see the table above).
pub fn parse_gemini_usage(m: &Value) -> ParsedUsage {
    let prompt = uint(m, &["promptTokenCount"]).unwrap_or(0) + uint(m, &["toolUsePromptTokenCount"]).unwrap_or(0);
    let cached = uint(m, &["cachedContentTokenCount"]).unwrap_or(0);
    let candidates = uint(m, &["candidatesTokenCount"]).unwrap_or(0);
    let thoughts = uint(m, &["thoughtsTokenCount"]).unwrap_or(0);
    ParsedUsage {
        usage: Usage::from_openai(prompt, candidates + thoughts, cached, 0, thoughts),
        reported_cost_usd: None,
        cache_reported: m.get("cachedContentTokenCount").is_some(),
    }
}

/// Reads Anthropic's `usage` (see the table above). `thinking_chars` is the length of the
/// thinking text of the answer, the only measure of reasoning Anthropic gives.
pub fn parse_anthropic_usage(u: &Value, thinking_chars: u64) -> ParsedUsage {
    let output = uint(u, &["output_tokens"]).unwrap_or(0);
    let reasoning = estimate_reasoning_tokens(thinking_chars).min(output);
    ParsedUsage {
        usage: Usage {
            input: uint(u, &["input_tokens"]).unwrap_or(0),
            cache_read: uint(u, &["cache_read_input_tokens"]).unwrap_or(0),
            cache_write: uint(u, &["cache_creation_input_tokens"]).unwrap_or(0),
            output: output - reasoning,
            reasoning,
        },
        reported_cost_usd: None,
        cache_reported: u.get("cache_read_input_tokens").is_some(),
    }
}

/// Reasoning tokens of a thinking text Anthropic reports only inside `output_tokens`.
pub fn estimate_reasoning_tokens(thinking_chars: u64) -> u64 {
    thinking_chars.div_ceil(4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn openai_usage_maps_to_buckets() {
        let p = parse_openai_usage(&json!({
            "prompt_tokens": 1000, "completion_tokens": 300, "total_tokens": 1300,
            "prompt_tokens_details": {"cached_tokens": 640},
            "completion_tokens_details": {"reasoning_tokens": 200}
        }));
        assert_eq!(
            p.usage,
            Usage {
                input: 360,
                cache_read: 640,
                cache_write: 0,
                output: 100,
                reasoning: 200
            }
        );
        assert_eq!(p.reported_cost_usd, None);
    }

    #[test]
    fn a_reported_zero_is_not_the_same_as_nothing_reported() {
        assert!(
            parse_openai_usage(&json!({"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": 0}}))
                .cache_reported
        );
        assert!(parse_openai_usage(&json!({"prompt_tokens": 5, "prompt_cache_hit_tokens": 0})).cache_reported);
        assert!(!parse_openai_usage(&json!({"prompt_tokens": 5, "completion_tokens": 1})).cache_reported);
        assert!(parse_anthropic_usage(&json!({"input_tokens": 5, "cache_read_input_tokens": 0}), 0).cache_reported);
        assert!(!parse_gemini_usage(&json!({"promptTokenCount": 5})).cache_reported);
    }

    #[test]
    fn deepseek_native_cache_fields_count_as_cache_reads() {
        let mut u = json!({
            "prompt_tokens": 500, "completion_tokens": 50, "total_tokens": 550,
            "prompt_cache_hit_tokens": 384, "prompt_cache_miss_tokens": 116,
            "completion_tokens_details": {"reasoning_tokens": 30}
        });
        let p = normalize_openai_usage(&mut u);
        assert_eq!(p.usage.cache_read, 384);
        assert_eq!(p.usage.input, 116);
        assert_eq!(u["prompt_tokens_details"]["cached_tokens"], 384);
        assert_eq!(u["prompt_cache_hit_tokens"], 384, "native fields stay");
        assert_eq!(u["completion_tokens_details"]["reasoning_tokens"], 30);
    }

    #[test]
    fn openrouter_cost_and_cache_writes() {
        let p = parse_openai_usage(&json!({
            "prompt_tokens": 2000, "completion_tokens": 10, "total_tokens": 2010, "cost": 0.0123,
            "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 1500}
        }));
        assert_eq!(p.usage.cache_write, 1500);
        assert_eq!(p.usage.input, 500);
        assert_eq!(p.reported_cost_usd, Some(0.0123));
    }

    #[test]
    fn gemini_compat_thinking_outside_completion_is_recovered() {
        let mut u = json!({"prompt_tokens": 100, "completion_tokens": 40, "total_tokens": 190});
        let p = normalize_openai_usage(&mut u);
        assert_eq!(p.usage.reasoning, 50);
        assert_eq!(p.usage.output, 40);
        assert_eq!(u["completion_tokens"], 90);
        assert_eq!(u["total_tokens"], 190);
    }

    #[test]
    fn detail_objects_keep_unknown_fields() {
        let mut u = json!({"prompt_tokens": 10, "completion_tokens": 1,
            "prompt_tokens_details": {"audio_tokens": 0, "cached_tokens": 5}});
        normalize_openai_usage(&mut u);
        assert_eq!(u["prompt_tokens_details"]["audio_tokens"], 0);
        assert_eq!(u["prompt_tokens_details"]["cached_tokens"], 5);
    }

    #[test]
    fn gemini_thoughts_are_outside_candidates_and_cache_inside_prompt() {
        let p = parse_gemini_usage(&json!({
            "promptTokenCount": 1000, "cachedContentTokenCount": 600, "candidatesTokenCount": 50,
            "thoughtsTokenCount": 200, "totalTokenCount": 1250
        }));
        assert_eq!(
            p.usage,
            Usage {
                input: 400,
                cache_read: 600,
                cache_write: 0,
                output: 50,
                reasoning: 200
            }
        );
        assert_eq!(p.usage.total_tokens(), 1250);
    }

    #[test]
    fn anthropic_input_excludes_cache_and_thinking_is_split_out_of_output() {
        let p = parse_anthropic_usage(
            &json!({"input_tokens": 10, "cache_read_input_tokens": 500, "cache_creation_input_tokens": 300,
                    "output_tokens": 120}),
            401,
        );
        assert_eq!(
            p.usage,
            Usage {
                input: 10,
                cache_read: 500,
                cache_write: 300,
                output: 19,
                reasoning: 101
            }
        );
        assert_eq!(p.usage.prompt_tokens(), 810);
        // Never more reasoning than output.
        assert_eq!(
            parse_anthropic_usage(&json!({"output_tokens": 3}), 400).usage.reasoning,
            3
        );
    }
}
