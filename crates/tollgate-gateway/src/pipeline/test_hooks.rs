//! LiteLLM's test hooks: request fields that make the gateway answer as a provider would without
//! calling one, so a client can test its own handling (and the gateway's auth, limits, budgets,
//! cache and records) for free.
//!
//! - `mock_response: "text"` — a chat completion with that content (streamed too), usage
//!   estimated from the messages and the text, priced with the group's price, recorded `mocked`;
//!   `"litellm.RateLimitError"`, `"litellm.InternalServerError"` and
//!   `"litellm.ContextWindowExceededError"` fail as those errors instead; LiteLLM's dict form (a
//!   response with `choices[0].message.content`, or a message with `content`) gives its text
//! - `mock_delay: seconds` — the mocked answer comes after that long (a timeout if it is longer)
//! - `mock_testing_context_fallbacks: true` — the requested group fails with a context-window
//!   error, so its `context_window_fallbacks` run
//! - `mock_testing_fallbacks: true` — every attempt on the requested group fails (500), so its
//!   fallbacks run
//! - `mock_testing_rate_limit_error: true` — the request's first attempt fails with 429, so
//!   retries and cooldowns run
//! - `mock_timeout: true` — each attempt waits out its timeout and fails as a timeout
//!
//! The hooks act where the provider would answer: the route stage asks [`TestHooks::intercept`]
//! before each attempt, so retries, fallbacks, cooldowns and the answer's accounting are the real
//! ones, and no other stage knows about them. The fields never reach a provider (the route stage
//! strips them).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use serde_json::{Value, json};
use tollgate_core::{ErrorKind, Fault, GatewayError};
use tollgate_providers::provider::Provider;

use crate::body::RequestBody;
use crate::deployment_stats::DeploymentStats;
use crate::state::Deployment;

/// The fields this module reads; none of them goes upstream.
pub(crate) const FIELDS: &[&str] = &[
    "mock_response",
    "mock_delay",
    "mock_testing_context_fallbacks",
    "mock_testing_fallbacks",
    "mock_testing_rate_limit_error",
    "mock_timeout",
];

/// Bytes per token of the answer's estimate (as for a stream that broke before its usage).
const BYTES_PER_TOKEN: u64 = 3;

/// The test hooks a request asked for.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct TestHooks {
    pub mock_response: Option<String>,
    /// `mock_delay`: how long the mocked answer takes.
    pub delay: Option<Duration>,
    pub fail_requested_group: bool,
    /// `mock_testing_context_fallbacks`: the requested group's attempts fail as too long.
    pub context_window_on_requested_group: bool,
    pub rate_limit_first: bool,
    pub timeout: bool,
    /// The prompt's estimated tokens (the mocked answer's `prompt_tokens`).
    prompt_tokens: u64,
}

/// What the route stage does with one attempt.
pub(crate) enum Hooked {
    /// Call the provider.
    Pass,
    /// The provider would have failed so.
    Fail(GatewayError),
    /// Wait this long, then fail as a timeout.
    Timeout(Duration),
    /// Answer with this OpenAI `chat.completion` body, as `deployment` (an OpenAI-format twin of
    /// the chosen one: same group, model and price) would have.
    Plain(Arc<Deployment>, Bytes),
    /// Answer with these OpenAI SSE bytes, ending with usage and `[DONE]`.
    Stream(Arc<Deployment>, Bytes),
}

/// Where an attempt stands in its request.
pub(crate) struct Attempt {
    /// 1-based across the request's retries and fallbacks.
    pub number: u32,
    /// The attempt is on the group the client asked for (not a fallback).
    pub requested_group: bool,
    pub stream: bool,
    /// How long the attempt may take (the request's `timeout` or the deployment's).
    pub timeout: Duration,
}

fn truthy(body: &RequestBody, field: &str) -> bool {
    body.get::<bool>(field).unwrap_or(false)
}

impl TestHooks {
    /// The hooks `body` asks for; 400 when `mock_response` is not a string.
    pub(crate) fn read(body: &RequestBody) -> Result<TestHooks, GatewayError> {
        let mock_response = match body.get::<Value>("mock_response") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(v @ Value::Object(_)) => {
                let text = v
                    .pointer("/choices/0/message/content")
                    .or_else(|| v.get("content"))
                    .and_then(Value::as_str);
                match text {
                    Some(t) => Some(t.to_string()),
                    None => return Err(bad_mock_response()),
                }
            }
            Some(_) => return Err(bad_mock_response()),
        };
        let delay = match body.get::<Value>("mock_delay") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_f64().filter(|s| s.is_finite() && *s >= 0.0 && *s <= 3600.0) {
                Some(s) => Some(Duration::from_secs_f64(s)),
                None => {
                    return Err(GatewayError::new(
                        ErrorKind::InvalidRequest,
                        "`mock_delay` must be a number of seconds between 0 and 3600",
                    )
                    .with_param("mock_delay"));
                }
            },
        };
        let hooks = TestHooks {
            mock_response,
            delay,
            fail_requested_group: truthy(body, "mock_testing_fallbacks"),
            context_window_on_requested_group: truthy(body, "mock_testing_context_fallbacks"),
            rate_limit_first: truthy(body, "mock_testing_rate_limit_error"),
            timeout: truthy(body, "mock_timeout"),
            prompt_tokens: 0,
        };
        if hooks == TestHooks::default() {
            return Ok(hooks);
        }
        let prompt_tokens = tollgate_providers::context_window::estimate_input_tokens_raw(
            body.raw("messages"),
            body.raw("tools"),
            None,
        );
        Ok(TestHooks { prompt_tokens, ..hooks })
    }

    pub(crate) fn any(&self) -> bool {
        self.mock_response.is_some()
            || self.fail_requested_group
            || self.context_window_on_requested_group
            || self.rate_limit_first
            || self.timeout
    }

    /// What attempt `at` on deployment `d` does instead of (or before) calling the provider.
    pub(crate) fn intercept(&self, d: &Deployment, at: &Attempt) -> Hooked {
        let provider = d.route.provider_name.as_str();
        if self.timeout {
            return Hooked::Timeout(at.timeout);
        }
        if self.rate_limit_first && at.number == 1 {
            return Hooked::Fail(mock_error(
                429,
                format!(
                    "{provider} returned HTTP 429: This is a mock exception for model={}, to trigger a rate limit error.",
                    d.model_group
                ),
            ));
        }
        if self.fail_requested_group && at.requested_group {
            return Hooked::Fail(mock_error(
                500,
                format!(
                    "{provider} returned HTTP 500: This is a mock exception for model={}, to trigger a fallback.",
                    d.model_group
                ),
            ));
        }
        if self.context_window_on_requested_group && at.requested_group {
            return Hooked::Fail(mock_error(
                400,
                format!(
                    "{provider} returned HTTP 400: This is a mock context window exceeded error for model={}, to trigger a context window fallback.",
                    d.model_group
                ),
            ));
        }
        let Some(text) = &self.mock_response else {
            return Hooked::Pass;
        };
        if self.delay.is_some_and(|wait| wait >= at.timeout) {
            return Hooked::Timeout(at.timeout);
        }
        let error = match text.as_str() {
            "litellm.RateLimitError" => Some((429, "this is a mock rate limit error")),
            "litellm.InternalServerError" => Some((500, "this is a mock internal server error")),
            "litellm.ContextWindowExceededError" => Some((400, "this is a mock context window exceeded error")),
            _ => None,
        };
        if let Some((status, message)) = error {
            return Hooked::Fail(mock_error(
                status,
                format!("{provider} returned HTTP {status}: {message}"),
            ));
        }
        let twin = twin(d);
        let completion_tokens = (text.len() as u64).div_ceil(BYTES_PER_TOKEN);
        let usage = json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": self.prompt_tokens + completion_tokens,
        });
        let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
        let created = chrono::Utc::now().timestamp();
        let model = &d.route.upstream_model;
        if at.stream {
            Hooked::Stream(twin, Bytes::from(sse(&id, created, model, text, &usage)))
        } else {
            let body = json!({
                "id": id,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }],
                "usage": usage,
            });
            Hooked::Plain(twin, Bytes::from(body.to_string()))
        }
    }
}

fn bad_mock_response() -> GatewayError {
    GatewayError::new(
        ErrorKind::InvalidRequest,
        "`mock_response` must be a string (the answer's text, or litellm.RateLimitError, litellm.InternalServerError, litellm.ContextWindowExceededError) or a response with `choices[0].message.content`",
    )
    .with_param("mock_response")
}

/// A failure as the provider would have sent it: its status, counted as the deployment's fault
/// (so retries, fallbacks and cooldowns act as for a real one). A context-window message stays
/// the client's, like a real one.
fn mock_error(status: u16, message: String) -> GatewayError {
    let kind = match status {
        429 => ErrorKind::RateLimited,
        400 => ErrorKind::InvalidRequest,
        _ => ErrorKind::Upstream,
    };
    GatewayError::new(kind, message)
        .with_status(status)
        .with_fault(Fault::of_upstream_status(status))
        .with_code(status.to_string())
}

/// The chosen deployment as an OpenAI-format one, so the mocked OpenAI answer is read back as
/// such whatever the deployment's own wire format. It has stats of its own: a mocked answer
/// tells the router nothing about the provider's latency or health.
fn twin(d: &Deployment) -> Arc<Deployment> {
    let mut route = d.route.clone();
    route.provider = Provider::OpenAi;
    Arc::new(Deployment {
        model_group: d.model_group.clone(),
        model: d.model.clone(),
        route,
        urls: d.urls.clone(),
        api_key: None,
        extra_headers: Vec::new(),
        timeout: d.timeout,
        stream_timeout: d.stream_timeout,
        price: d.price.clone(),
        max_input_tokens: d.max_input_tokens,
        max_output_tokens: d.max_output_tokens,
        model_id: d.model_id.clone(),
        config: d.config.clone(),
        stats: DeploymentStats::default(),
    })
}

/// The answer as OpenAI streams it: a role chunk, the text a word at a time, the finish, the
/// usage, `[DONE]`.
fn sse(id: &str, created: i64, model: &str, text: &str, usage: &Value) -> String {
    let chunk = |delta: Value, finish: Value| {
        json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        })
    };
    let mut events = vec![chunk(json!({"role": "assistant", "content": ""}), Value::Null)];
    events.extend(
        text.split_inclusive(' ')
            .map(|piece| chunk(json!({"content": piece}), Value::Null)),
    );
    events.push(chunk(json!({}), json!("stop")));
    events.push(json!({
        "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
        "choices": [], "usage": usage,
    }));
    let mut out = String::new();
    for e in events {
        out.push_str("data: ");
        out.push_str(&e.to_string());
        out.push_str("\n\n");
    }
    out.push_str("data: [DONE]\n\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_without_hooks_has_none_and_a_bad_mock_response_is_refused() {
        let body = |s: &str| RequestBody::parse(s.as_bytes()).unwrap();
        let none = TestHooks::read(&body(r#"{"model":"m","messages":[]}"#)).unwrap();
        assert!(!none.any());
        let some = TestHooks::read(&body(
            r#"{"messages":[{"role":"user","content":"hello there"}],"mock_response":"hi"}"#,
        ))
        .unwrap();
        assert!(some.any() && some.prompt_tokens > 0);
        assert!(TestHooks::read(&body(r#"{"mock_response":{"a":1}}"#)).is_err());
    }

    #[test]
    fn the_stream_ends_with_usage_and_done() {
        let s = sse("x", 1, "m", "two words", &json!({"prompt_tokens": 1}));
        assert!(
            s.contains(r#""content":"two ""#) && s.contains(r#""content":"words""#),
            "{s}"
        );
        assert!(s.ends_with("data: [DONE]\n\n"));
        assert!(s.contains(r#""usage":{"prompt_tokens":1}"#));
    }
}
