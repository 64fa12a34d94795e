//! The response headers LiteLLM's clients read about the key they used: its spend and budget
//! (`x-litellm-key-spend`, `x-litellm-key-max-budget`), its limits (`x-litellm-key-rpm-limit`,
//! `x-litellm-key-tpm-limit`) and OpenAI's `x-ratelimit-limit-requests` /
//! `x-ratelimit-remaining-requests`. Set on every answer to a virtual key, refusals included.

use axum::http::{HeaderMap, HeaderName, HeaderValue};

use crate::app::App;
use crate::pipeline::authenticate::Caller;

pub fn tag(app: &App, caller: &Caller, headers: &mut HeaderMap) {
    let Some(key) = &caller.key else {
        return;
    };
    // Spend as stored plus what this instance has gathered since (this request's cost is in
    // it once its record has closed, which a plain answer's has by now).
    let spend = key.spend + app.keys.pending_spend(&key.token);
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    set("x-litellm-key-spend", format!("{spend}"));
    if let Some(b) = key.max_budget {
        set("x-litellm-key-max-budget", format!("{b}"));
    }
    if let Some(rpm) = key.rpm_limit {
        set("x-litellm-key-rpm-limit", rpm.to_string());
        set("x-ratelimit-limit-requests", rpm.to_string());
        set(
            "x-ratelimit-remaining-requests",
            app.key_limits.remaining_requests(&key.token, rpm).to_string(),
        );
    }
    if let Some(tpm) = key.tpm_limit {
        set("x-litellm-key-tpm-limit", tpm.to_string());
        set("x-ratelimit-limit-tokens", tpm.to_string());
    }
}
