//! Stage 6, route: sends the request to a model group's deployments, retrying and falling back
//! as `router_settings` say, and hands back the answering deployment with its answer (a whole
//! body, or a stream whose first event has arrived). Every failed attempt leaves its record.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use futures::StreamExt;
use serde_json::{Map, Value};
use tollgate_core::redact;
use tollgate_core::{Cost, ErrorKind, Fault, GatewayError, RecordStatus};
use tollgate_providers::sse_frames::UpstreamEvent;

use crate::app::App;
use crate::body::RequestBody;
use crate::edge::ApiError;
use crate::pipeline::draft::{Draft, committed, set_id_headers};
use crate::pipeline::endpoint::{Endpoint, Wire};
use crate::pipeline::test_hooks::{self, Attempt, Hooked, TestHooks};
use crate::state::{Deployment, LiveState};
use crate::upstream_client;
use crate::upstream_events::UpstreamEvents;

/// Body fields that configure the gateway (LiteLLM's names) and must not reach the provider.
const GATEWAY_ONLY_FIELDS: &[&str] = &[
    "metadata",
    "litellm_session_id",
    "litellm_trace_id",
    "litellm_metadata",
    "cache",
    "user_config",
    "tags",
    // The request's routing controls (`pipeline/controls.rs`).
    "fallbacks",
    "context_window_fallbacks",
    "num_retries",
    "timeout",
];

/// The body the deployments are sent: the client's, without the fields that configure the
/// gateway, and asking a stream for its usage (needed for the record whether or not the client
/// asked; the extra chunk is removed again for clients that did not ask). A Messages body is
/// the client's as it came: its `metadata` is Anthropic's, and it is passed through to Anthropic
/// or translated whole (`pipeline/messages.rs`).
pub fn upstream_body(endpoint: Endpoint, mut body: RequestBody, stream: bool) -> RequestBody {
    if endpoint.wire == Wire::Messages {
        return body;
    }
    for k in GATEWAY_ONLY_FIELDS.iter().chain(test_hooks::FIELDS) {
        body.remove(k);
    }
    if stream {
        let mut opts = match body.get::<Value>("stream_options") {
            Some(Value::Object(o)) => o,
            _ => Map::new(),
        };
        opts.insert("include_usage".into(), Value::Bool(true));
        body.set("stream_options", &opts);
    }
    body
}

/// Answers a request whose every attempt failed with the last failure (and its `Retry-After`),
/// and closes its record.
pub async fn answer_failure(draft: Draft, f: Failure) -> Response {
    let status = f.error.status;
    let mut resp = ApiError(f.error.clone()).into_response();
    set_id_headers(resp.headers_mut(), &draft.record.request_id, &draft.record.model_group);
    if let Some(ra) = f.retry_after {
        resp.headers_mut().insert("retry-after", ra);
    }
    committed(draft.finish(status, Some(f.upstream_ms), Some(&f.error))).await;
    resp
}

/// Writes the record of one failed upstream attempt; the request goes on with another.
fn attempt_failed(draft: &mut Draft, d: &Deployment, attempt: u32, f: &Failure) {
    draft.failed_upstream_ms += f.upstream_ms;
    let mut r = draft.record.clone();
    r.model_group = d.model_group.clone();
    r.model = d.model.clone();
    r.provider = d.route.provider_name.clone();
    r.api_base = Some(d.route.api_base.clone());
    r.attempt = Some(attempt);
    r.status = RecordStatus::Failure;
    r.http_status = f.error.status;
    r.error_type = Some(f.error.type_str().to_string());
    r.error_message = Some(f.error.message.clone());
    r.fault = Some(f.error.fault());
    r.end_time = Utc::now();
    r.latency_ms = draft.elapsed_ms();
    r.upstream_ms = Some(f.upstream_ms);
    // This attempt's wait is in `failed_upstream_ms` already, with earlier ones and backoff.
    r.overhead_ms = Some(draft.gateway_ms(r.latency_ms, 0.0));
    r.set_cost(Some(Cost::default()));
    d.stats.finished(
        Some(f.error.fault()),
        r.latency_ms,
        0,
        &draft.app.live.load().config.router,
    );
    let _ = draft.app.writer.submit(r);
}

/// How many upstream attempts a request took.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Tries {
    pub attempts: u32,
    pub retries: u32,
    pub fallbacks: u32,
}

impl Tries {
    pub(crate) fn tag(&self, h: &mut HeaderMap) {
        for (k, v) in [
            ("x-tollgate-attempts", self.attempts),
            ("x-litellm-attempted-retries", self.retries),
            ("x-litellm-attempted-fallbacks", self.fallbacks),
        ] {
            h.insert(k, HeaderValue::from(v));
        }
    }
}

/// A failed upstream attempt: what to tell the client if it is the last one.
pub(crate) struct Failure {
    pub error: GatewayError,
    pub retry_after: Option<HeaderValue>,
    pub upstream_ms: f64,
}

impl Failure {
    fn retry_after(&self) -> Option<Duration> {
        let secs: f64 = self.retry_after.as_ref()?.to_str().ok()?.trim().parse().ok()?;
        // The header is the upstream's to write: `inf` or `1e308` must not panic the request
        // (`from_secs_f64` would); the backoff caps whatever is asked anyway.
        Duration::try_from_secs_f64(secs.max(0.0)).ok()
    }
}

pub(crate) type Events = std::pin::Pin<
    Box<dyn futures::Stream<Item = Result<UpstreamEvent, sse_parse::Error<upstream_client::Error>>> + Send>,
>;

/// An upstream answer that will be relayed: a whole body, or a stream whose first event has
/// arrived (so a stream that dies before its first byte can still fall back).
pub(crate) enum Sent {
    Plain(Bytes),
    Stream(Events),
}

pub(crate) type Routed = Result<(Arc<Deployment>, Sent, Instant, f64), Failure>;

/// The groups a request moves on to when its group fails for the deployment's own reasons
/// (after its retries). The caller hands this to the stage as data, so a more specific list (a
/// workflow step's own `fallbacks`) is a configuration of the one routing loop, not a second
/// loop wrapped around it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) enum Fallbacks<'a> {
    /// `router_settings.fallbacks` for the group, else `default_fallbacks`, at most `max_fallbacks`.
    #[default]
    Router,
    /// Exactly these groups, in order, each with its retries; the router's `fallbacks` and
    /// `default_fallbacks` are not consulted.
    Only(&'a [String]),
}

/// How one request is routed: `router_settings` unless the request (`pipeline/controls.rs`) or a
/// workflow step says otherwise, and the test hooks it asked for.
#[derive(Debug, Default, Clone)]
pub(crate) struct Plan<'a> {
    pub fallbacks: Fallbacks<'a>,
    /// Replaces `router_settings.context_window_fallbacks` for the requested group.
    pub context_window_fallbacks: Option<&'a [String]>,
    /// Replaces `router_settings.num_retries`.
    pub num_retries: Option<u32>,
    /// Replaces each deployment's `timeout` and `stream_timeout` for the wait on its answer.
    pub timeout: Option<Duration>,
    pub hooks: TestHooks,
    /// Client headers a passed-through Messages request carries to an Anthropic deployment
    /// (`anthropic-version`, `anthropic-beta`).
    pub forwarded: Vec<(String, String)>,
}

impl Fallbacks<'_> {
    fn after(self, live: &LiveState, group: &str) -> Vec<String> {
        match self {
            Fallbacks::Router => crate::router::fallbacks(live, group, false),
            Fallbacks::Only(groups) => groups.to_vec(),
        }
    }
}

/// Sends the request to the group, retrying as `router_settings` say and then falling back as
/// `fallbacks` says. A prompt too long for a group goes to its `context_window_fallbacks`
/// whichever list applies: that is a different trigger (a bigger window, not a healthy
/// provider). Every failed attempt leaves a record; the returned deployment is already on
/// `draft`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn route_request(
    app: &Arc<App>,
    live: &LiveState,
    endpoint: Endpoint,
    body: &mut RequestBody,
    stream: bool,
    draft: &mut Draft,
    group: &str,
    plan: &Plan<'_>,
) -> (Routed, Tries) {
    let settings = &live.config.router;
    let num_retries = plan.num_retries.unwrap_or(settings.num_retries);
    let mut tries = Tries::default();
    let mut chain = vec![group.to_string()];
    let mut extended = false;
    let mut last: Option<Failure> = None;
    let mut gi = 0;
    while gi < chain.len() {
        let gname = chain[gi].clone();
        if gi > 0 {
            tries.fallbacks += 1;
        }
        let mut context_window = false;
        if let Some(g) = live.group(&gname) {
            for retry in 0..=num_retries {
                let Some(d) = crate::router::pick(&g, settings) else {
                    last = Some(Failure {
                        error: GatewayError::new(
                            ErrorKind::Upstream,
                            format!("every deployment of `{gname}` is cooling down after repeated failures or at its rpm/tpm limit"),
                        )
                        .with_status(503)
                        .with_code("no_deployment_available"),
                        retry_after: None,
                        upstream_ms: 0.0,
                    });
                    break;
                };
                tries.attempts += 1;
                draft.attempts += 1;
                let attempt = draft.attempts;
                if retry > 0 {
                    tries.retries += 1;
                }
                body.set("model", &d.route.upstream_model);
                // Claude Code asks for 32,000 tokens whatever the model: a Messages request is
                // fitted like chat, or a deployment with a smaller output limit refuses it.
                if matches!(endpoint.wire, Wire::Chat | Wire::Messages) {
                    draft.max_tokens.fit(body, &d);
                }
                // The gateway's time before this attempt: failed attempts and backoff excluded.
                let pre_ms = draft.gateway_ms(draft.elapsed_ms(), 0.0);
                d.stats.started();
                // Held by the draft while the attempt is in flight, so a request dropped meanwhile
                // (its client left) still tells the deployment it ended.
                draft.deployment = Some(d.clone());
                // Provider prompt caching markers are per deployment, so they go on a copy.
                let marked;
                let to_send: &RequestBody = if d.config.cache_control_injection_points.is_empty() {
                    body
                } else {
                    let mut b = body.to_map();
                    crate::prompt_cache::inject(&mut b, &d.config.cache_control_injection_points);
                    marked = RequestBody::from_map(&b);
                    &marked
                };
                let at = Attempt {
                    number: attempt,
                    requested_group: gi == 0,
                    stream,
                    timeout: plan
                        .timeout
                        .unwrap_or(if stream { d.stream_timeout } else { d.timeout }),
                };
                match attempt_once(app, &d, endpoint, to_send, stream, plan, &at).await {
                    Ok((answering, sent, at)) => {
                        // `started` was counted above; the draft's finish reports the outcome.
                        draft.use_deployment(&answering);
                        if !Arc::ptr_eq(&answering, &d) {
                            // A mocked answer: its twin has stats of its own, so the chosen
                            // deployment's in-flight count is given back here.
                            d.stats.released();
                            draft.record.provider = d.route.provider_name.clone();
                            draft.record.mocked = true;
                        }
                        draft.record.attempt = Some(attempt);
                        return (Ok((answering, sent, at, pre_ms)), tries);
                    }
                    Err(f) => {
                        // The attempt's own record tells the deployment how it went.
                        draft.deployment = None;
                        attempt_failed(draft, &d, attempt, &f);
                        context_window = crate::router::is_context_window_error(f.error.status, &f.error.message);
                        let again = crate::router::retryable(&f.error);
                        let wait = crate::router::backoff(retry, settings, f.retry_after());
                        // The record of the request names the last group tried.
                        draft.record.model_group = d.model_group.clone();
                        last = Some(f);
                        if !again {
                            break;
                        }
                        if retry < num_retries {
                            // Backoff is waiting on the provider too, not gateway overhead.
                            draft.failed_upstream_ms += wait.as_secs_f64() * 1000.0;
                            tokio::time::sleep(wait).await;
                        }
                    }
                }
            }
        }
        let retryable_end = last
            .as_ref()
            .is_some_and(|f| crate::router::retryable(&f.error) || f.error.status == 503);
        if context_window {
            match plan.context_window_fallbacks {
                Some(own) if gi == 0 => chain.extend(own.iter().cloned()),
                _ => chain.extend(crate::router::fallbacks(live, &gname, true)),
            }
        } else if !extended && retryable_end {
            extended = true;
            chain.extend(plan.fallbacks.after(live, group));
        } else if !retryable_end {
            break;
        }
        gi += 1;
    }
    let failure = last.unwrap_or_else(|| Failure {
        error: GatewayError::new(ErrorKind::Internal, format!("no deployment was tried for `{group}`")),
        retry_after: None,
        upstream_ms: 0.0,
    });
    (Err(failure), tries)
}

/// One attempt: the test hooks' answer if they have one (`pipeline/test_hooks.rs`), else the
/// provider's. The deployment that answered is returned (a mocked answer's is the chosen one's
/// OpenAI-format twin).
async fn attempt_once(
    app: &Arc<App>,
    d: &Arc<Deployment>,
    endpoint: Endpoint,
    body: &RequestBody,
    stream: bool,
    plan: &Plan<'_>,
    at: &Attempt,
) -> Result<(Arc<Deployment>, Sent, Instant), Failure> {
    let sent = Instant::now();
    let fail = |error: GatewayError| Failure {
        error,
        retry_after: None,
        upstream_ms: sent.elapsed().as_secs_f64() * 1000.0,
    };
    let hooked = if plan.hooks.any() && endpoint.wire == Wire::Chat {
        plan.hooks.intercept(d, at)
    } else {
        Hooked::Pass
    };
    match hooked {
        Hooked::Pass => {
            let (answer, sent) = send_once(app, d, endpoint, body, stream, plan).await?;
            Ok((d.clone(), answer, sent))
        }
        Hooked::Fail(e) => Err(fail(e)),
        Hooked::Timeout(after) => {
            tokio::time::sleep(after).await;
            Err(fail(timeout_error(d, after)))
        }
        Hooked::Plain(twin, bytes) => {
            if let Some(wait) = plan.hooks.delay {
                tokio::time::sleep(wait).await;
            }
            Ok((twin, Sent::Plain(bytes), sent))
        }
        Hooked::Stream(twin, bytes) => {
            if let Some(wait) = plan.hooks.delay {
                tokio::time::sleep(wait).await;
            }
            let chunks = futures::stream::iter([Ok::<Bytes, upstream_client::Error>(bytes)]);
            Ok((twin, Sent::Stream(Box::pin(UpstreamEvents::new(chunks))), sent))
        }
    }
}

/// One upstream call. A stream counts as sent once its first event has arrived. `plan.timeout`:
/// the request's own, replacing the deployment's.
async fn send_once(
    app: &Arc<App>,
    d: &Deployment,
    endpoint: Endpoint,
    body: &RequestBody,
    stream: bool,
    plan: &Plan<'_>,
) -> Result<(Sent, Instant), Failure> {
    let timeout = plan.timeout;
    let sent = Instant::now();
    let fail = |error: GatewayError| Failure {
        error,
        retry_after: None,
        upstream_ms: sent.elapsed().as_secs_f64() * 1000.0,
    };
    let mut req = match endpoint.wire {
        // Chat speaks the deployment's wire format (OpenAI's, Gemini's, Anthropic's).
        Wire::Chat => crate::upstream::chat_request(&app.http(), d, body, stream).map_err(fail)?,
        Wire::Embeddings => d.authorize(
            app.http()
                .post(d.urls.embeddings.clone())
                .header("content-type", "application/json")
                .segments(body.segments()),
        ),
        Wire::Messages => {
            crate::pipeline::messages::request(&app.http(), d, body, stream, &plan.forwarded).map_err(fail)?
        }
        // The other endpoints' requests (`pipeline/passthrough.rs`).
        wire => crate::pipeline::passthrough::request(&app.http(), d, wire, body, stream).map_err(fail)?,
    };
    for (k, v) in &d.extra_headers {
        req = req.header(k, v);
    }
    // For streams the stream timeout covers the wait for the first byte; the deployment timeout the rest.
    let (d_timeout, d_stream_timeout) = match timeout {
        Some(t) => (t, t),
        None => (d.timeout, d.stream_timeout),
    };
    let first_wait = if stream { d_stream_timeout } else { d_timeout };
    let resp = match tokio::time::timeout(first_wait, req.send()).await {
        Err(_) => return Err(fail(timeout_error(d, first_wait))),
        Ok(Err(e)) => return Err(fail(transport_error(d, &e))),
        Ok(Ok(r)) => r,
    };
    if !resp.status().is_success() {
        return Err(upstream_status(d, resp, sent).await);
    }
    if stream {
        let mut events: Events = Box::pin(UpstreamEvents::new(resp.bytes_stream()));
        let remaining = d_stream_timeout.saturating_sub(sent.elapsed());
        let first = match tokio::time::timeout(remaining, events.next()).await {
            Err(_) => return Err(fail(timeout_error(d, d_stream_timeout))),
            Ok(None) => {
                return Err(fail(
                    GatewayError::new(
                        ErrorKind::Upstream,
                        format!(
                            "{} ended the stream before sending anything",
                            d.route.provider_name.as_str()
                        ),
                    )
                    .with_code("upstream_stream_empty"),
                ));
            }
            Ok(Some(Err(e))) => {
                return Err(fail(
                    GatewayError::new(
                        ErrorKind::Upstream,
                        // The HTTP client's message embeds the URL, credentials and all.
                        redact::text(&format!(
                            "{} stream failed before its first event: {e}",
                            d.route.provider_name.as_str()
                        )),
                    )
                    .with_code("upstream_stream_broken"),
                ));
            }
            Ok(Some(Ok(ev))) => ev,
        };
        let events: Events = Box::pin(futures::stream::iter([Ok(first)]).chain(events));
        return Ok((Sent::Stream(events), sent));
    }
    let remaining = d_timeout.saturating_sub(sent.elapsed());
    match tokio::time::timeout(remaining, resp.bytes()).await {
        Err(_) => Err(fail(timeout_error(d, d_timeout))),
        Ok(Err(e)) => Err(fail(transport_error(d, &e))),
        Ok(Ok(b)) => Ok((Sent::Plain(b), sent)),
    }
}

pub(crate) fn timeout_error(d: &Deployment, after: Duration) -> GatewayError {
    GatewayError::new(
        ErrorKind::Timeout,
        format!(
            "{} did not answer within {:.1} s (the request's timeout, else litellm_params.timeout / stream_timeout of model `{}`)",
            d.route.provider_name.as_str(),
            after.as_secs_f64(),
            d.model_group
        ),
    )
    .with_code("upstream_timeout")
}

fn transport_error(d: &Deployment, e: &upstream_client::Error) -> GatewayError {
    if e.is_timeout() {
        return timeout_error(d, d.timeout);
    }
    // `api_base` is shown masked; the client's message is masked too, in case a cause (a
    // proxy's refusal, say) carries a URL.
    GatewayError::new(
        ErrorKind::Upstream,
        format!(
            "cannot reach {} at {}: {}",
            d.route.provider_name.as_str(),
            d.route.api_base,
            redact::text(&e.to_string())
        ),
    )
    .with_code("upstream_unreachable")
}

/// A non-2xx answer from the provider: its status is passed through, its error message kept
/// (in OpenAI's shape if it was not already), and `Retry-After` forwarded.
async fn upstream_status(d: &Deployment, resp: upstream_client::Response, sent: Instant) -> Failure {
    let status = resp.status().as_u16();
    let retry_after = resp.headers().get("retry-after").cloned();
    let body = resp.bytes().await.unwrap_or_default();
    let upstream_ms = sent.elapsed().as_secs_f64() * 1000.0;
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.get("message"))
                .or_else(|| v.get("error"))
        })
        .and_then(|m| m.as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(500).collect());
    let kind = match status {
        429 => ErrorKind::RateLimited,
        400 | 404 | 413 | 422 => ErrorKind::InvalidRequest,
        401 | 403 => ErrorKind::Authentication,
        _ => ErrorKind::Upstream,
    };
    let provider = d.route.provider_name.as_str();
    // An upstream (or a proxy in front of it) may echo the URL it was called with.
    let message = redact::text(&message);
    let err = GatewayError::new(kind, format!("{provider} returned HTTP {status}: {message}"))
        .with_status(status)
        .with_fault(Fault::of_upstream_status(status))
        .with_code(
            parsed
                .as_ref()
                .and_then(|v| v.pointer("/error/code"))
                .and_then(|c| {
                    c.as_str()
                        .map(str::to_string)
                        .or_else(|| c.as_u64().map(|n| n.to_string()))
                })
                .unwrap_or_else(|| status.to_string()),
        );
    Failure {
        error: err,
        retry_after,
        upstream_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hostile_retry_after_does_not_panic() {
        let failure = |v: &'static str| Failure {
            error: GatewayError::new(ErrorKind::Upstream, "x"),
            retry_after: Some(HeaderValue::from_static(v)),
            upstream_ms: 0.0,
        };
        assert_eq!(failure("2").retry_after(), Some(Duration::from_secs(2)));
        for v in ["1e308", "inf", "-inf", "NaN", "-5"] {
            let wait = failure(v).retry_after();
            assert!(wait.is_none() || wait == Some(Duration::ZERO), "{v}: {wait:?}");
        }
    }
}
