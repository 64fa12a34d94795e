//! The response headers clients read about the key they used and its limits, on every answer to
//! a virtual key, refusals included:
//!
//! - LiteLLM's key headers: spend and budget (`x-litellm-key-spend`, `x-litellm-key-max-budget`),
//!   limits (`x-litellm-key-rpm-limit`, `x-litellm-key-tpm-limit`);
//! - LiteLLM's per-scope rate-limit headers, for each scope the request was counted in:
//!   `x-ratelimit-{scope}-remaining-requests|tokens` and `x-ratelimit-{scope}-limit-requests|tokens`
//!   (scope as LiteLLM names it: `key`, `user`, `team`, `end_user`, `model_per_key`);
//! - OpenAI's `x-ratelimit-limit-requests|tokens`, `x-ratelimit-remaining-requests|tokens` and
//!   `x-ratelimit-reset-requests|tokens`, for the tightest scope (the fewest left).

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue};

use crate::app::App;
use crate::pipeline::authenticate::Caller;
use crate::rate_limits::{Allowance, Standing};

/// `standing`: where the request's rate-limit scopes stood once it was counted (empty when it
/// ended before stage 4c, or no scope has a limit).
pub fn tag(app: &App, caller: &Caller, standing: &[Standing], headers: &mut HeaderMap) {
    let mut set = |name: String, value: String| {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::from_str(&value)) {
            headers.insert(n, v);
        }
    };
    if let Some(key) = &caller.key {
        // Spend as stored plus what this instance has gathered since (this request's cost is in
        // it once its record has closed, which a plain answer's has by now).
        let spend = key.spend + app.keys.pending_spend(&key.token);
        set("x-litellm-key-spend".into(), format!("{spend}"));
        if let Some(b) = key.max_budget {
            set("x-litellm-key-max-budget".into(), format!("{b}"));
        }
        if let Some(rpm) = key.rpm_limit {
            set("x-litellm-key-rpm-limit".into(), rpm.to_string());
            set("x-ratelimit-limit-requests".into(), rpm.to_string());
        }
        if let Some(tpm) = key.tpm_limit {
            set("x-litellm-key-tpm-limit".into(), tpm.to_string());
            set("x-ratelimit-limit-tokens".into(), tpm.to_string());
        }
    }
    for s in standing {
        let scope = litellm_scope(s.scope);
        for (unit, a) in [("requests", s.requests), ("tokens", s.tokens)] {
            if let Some(a) = a {
                set(format!("x-ratelimit-{scope}-remaining-{unit}"), a.remaining.to_string());
                set(format!("x-ratelimit-{scope}-limit-{unit}"), a.limit.to_string());
            }
        }
    }
    let tightest = |of: fn(&Standing) -> Option<Allowance>| standing.iter().filter_map(of).min_by_key(|a| a.remaining);
    for (unit, tightest) in [
        ("requests", tightest(|s| s.requests)),
        ("tokens", tightest(|s| s.tokens)),
    ] {
        if let Some(a) = tightest {
            set(format!("x-ratelimit-limit-{unit}"), a.limit.to_string());
            set(format!("x-ratelimit-remaining-{unit}"), a.remaining.to_string());
            set(format!("x-ratelimit-reset-{unit}"), openai_duration(a.reset));
        }
    }
}

/// LiteLLM's name of a scope in its headers (its "descriptor key").
fn litellm_scope(scope: &str) -> &str {
    match scope {
        "key_model" => "model_per_key",
        other => other,
    }
}

/// A duration as OpenAI writes its resets: `0s`, `250ms`, `6s`, `1.5s`, `1m30s`.
fn openai_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (m, rest_ms) = (ms / 60_000, ms % 60_000);
    let s = format!("{:.3}", rest_ms as f64 / 1000.0);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if m == 0 { format!("{s}s") } else { format!("{m}m{s}s") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resets_read_as_openai_writes_them() {
        assert_eq!(openai_duration(Duration::ZERO), "0s");
        assert_eq!(openai_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(openai_duration(Duration::from_secs(6)), "6s");
        assert_eq!(openai_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(openai_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(openai_duration(Duration::from_secs(360)), "6m0s");
    }
}
