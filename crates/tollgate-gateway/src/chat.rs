//! The request pipeline for `/v1/chat/completions` and `/v1/embeddings`, in order:
//!
//! 1. authenticate (master key) — 401
//! 2. read the body within `max_request_size_mb` — 413
//! 3. parse JSON, keeping every field — 400
//! 4. resolve the model group — 404 listing the known groups
//! 5. pick a deployment, rewrite only what the upstream must see differently
//! 6. call the upstream (timeouts → 504, 429/5xx passed through with their status)
//! 7. normalise usage, price it per bucket, tag the response
//! 8. hand one [`Record`] to the bounded writer, off the request path
//!
//! Streams run steps 7–8 as chunks pass, and record when the stream ends or the client leaves.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde_json::{Map, Value};
use tollgate_core::record::prompt_sha256;
use tollgate_core::redact;
use tollgate_core::{CacheState, Cost, ErrorKind, Fault, GatewayError, Record, RecordStatus};
use tollgate_providers::sse::{error_event, event_bytes, inspect_chunk};
use tollgate_providers::translate::StreamTranslator;
use tollgate_providers::usage::{ParsedUsage, normalize_openai_usage};
use tollgate_store::{Commit, RecordDurability};

use crate::cache::{CachedEntry, Lookup, RequestCache, ResponseCache, request_controls};
use crate::edge::{ApiError, ResponseTags, authorize, tag_response};
use crate::server::App;
use crate::state::{Deployment, LiveState, Target};

/// Bytes per token when a token count must be estimated (see `estimate_input_tokens`).
const BYTES_PER_TOKEN: u64 = 3;

/// Body fields that configure the gateway (LiteLLM's names) and must not reach the provider.
const GATEWAY_ONLY_FIELDS: &[&str] = &[
    "metadata",
    "litellm_session_id",
    "litellm_trace_id",
    "litellm_metadata",
    "cache",
    "mock_response",
    "user_config",
    "tags",
];

/// Fields that decide the answer; their hash finds exact repeats without storing prompts.
const ANSWER_FIELDS: &[&str] = &[
    "messages",
    "input",
    "tools",
    "tool_choice",
    "functions",
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "response_format",
    "seed",
    "stop",
    "n",
    "reasoning_effort",
    "thinking",
    "frequency_penalty",
    "presence_penalty",
];

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Embeddings,
}

/// What is known about a request before the upstream answers; becomes its [`Record`].
pub(crate) struct Draft {
    app: Arc<App>,
    started: Instant,
    pub(crate) record: Record,
    /// The deployment this request went to; told how it went when the record is finished.
    deployment: Option<Arc<Deployment>>,
    /// Upstream attempts so far, across retries and fallbacks (numbers each attempt's record).
    attempts: u32,
    /// Time spent on failed attempts and their backoff: the providers' time, not overhead.
    failed_upstream_ms: f64,
    /// max_tokens hygiene: the client's values and the clamp applied for the chosen deployment.
    max_tokens: crate::upstream::MaxTokens,
    /// Estimated prompt tokens (streams only): what a stream that breaks before the provider
    /// reports usage is accounted with.
    pub(crate) input_estimate: u64,
    /// The record has been handed to the writer.
    closed: bool,
    /// Why the request ended if its handler is dropped before it answers; by default the
    /// client closed the connection.
    abandoned_because: Option<GatewayError>,
}

impl Drop for Draft {
    /// A request whose handler is dropped before it answered: the client closed the connection
    /// (the server drops the handlers of closed connections) while the gateway waited on the
    /// provider. It is recorded like a stream the client left, so every request has its record.
    fn drop(&mut self) {
        if !self.closed {
            let e = self.abandoned_because.take().unwrap_or_else(|| {
                GatewayError::new(
                    ErrorKind::InvalidRequest,
                    "client closed the connection before the answer",
                )
                .with_status(499)
                .with_code("client_closed_request")
                .with_fault(Fault::Client)
            });
            let _ = self.close(e.status, None, Some(&e));
        }
    }
}

impl Draft {
    fn new(app: Arc<App>, live: &LiveState, headers: &HeaderMap) -> Self {
        let request_id = uuid::Uuid::new_v4().to_string();
        // Client-chosen strings go into every record: bounded, so one client cannot bloat the store.
        let header = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(|v| bounded(v, MAX_CLIENT_STRING).to_string())
        };
        let record = Record {
            trace_id: header("x-tollgate-trace-id").unwrap_or_else(|| request_id.clone()),
            request_id,
            session_id: header("x-session-id"),
            start_time: Utc::now(),
            user_agent: header("user-agent"),
            config_version: Some(live.version),
            cache: CacheState::Off,
            workflow: header("x-tollgate-workflow"),
            step_role: header("x-tollgate-step"),
            source: "tollgate".into(),
            ..Record::default()
        };
        Draft {
            app,
            started: Instant::now(),
            record,
            deployment: None,
            attempts: 0,
            failed_upstream_ms: 0.0,
            max_tokens: Default::default(),
            input_estimate: 0,
            closed: false,
            abandoned_because: None,
        }
    }

    /// The request as a workflow run (its steps become child drafts). The run's own record is
    /// a rollup the workflow writes from its steps' totals, so this draft never closes itself.
    pub(crate) fn into_run(mut self) -> Draft {
        self.closed = true;
        self
    }

    /// A step of a workflow run: its own request id, the run's trace and client details.
    pub(crate) fn step(&self, workflow: &str, role: &str, index: usize) -> Draft {
        let request_id = uuid::Uuid::new_v4().to_string();
        let record = Record {
            request_id,
            trace_id: self.record.request_id.clone(),
            session_id: self.record.session_id.clone(),
            start_time: Utc::now(),
            user_agent: self.record.user_agent.clone(),
            key_alias: self.record.key_alias.clone(),
            config_version: self.record.config_version,
            prompt_sha256: self.record.prompt_sha256.clone(),
            stream: false,
            workflow: Some(workflow.to_string()),
            step_role: Some(role.to_string()),
            step_index: Some(index as u32),
            source: "tollgate".into(),
            ..Record::default()
        };
        Draft {
            app: self.app.clone(),
            started: Instant::now(),
            record,
            deployment: None,
            attempts: 0,
            failed_upstream_ms: 0.0,
            max_tokens: Default::default(),
            input_estimate: 0,
            closed: false,
            abandoned_because: None,
        }
    }

    /// What the record says if this request is dropped before it answers (e.g. cut short by a
    /// workflow step's timeout).
    pub(crate) fn abandon_as(&mut self, e: GatewayError) {
        self.abandoned_because = Some(e);
    }

    /// The gateway's own share of `elapsed_ms`: what is left after the wait on the answering
    /// upstream (`upstream_ms`) and on failed attempts and their backoff.
    fn gateway_ms(&self, elapsed_ms: f64, upstream_ms: f64) -> f64 {
        (elapsed_ms - upstream_ms - self.failed_upstream_ms).max(0.0)
    }

    pub(crate) fn elapsed_ms(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1000.0
    }

    /// Fills the per-request fields the body carries.
    fn read_body(&mut self, body: &Map<String, Value>) {
        if self.record.session_id.is_none() {
            self.record.session_id = body
                .get("litellm_session_id")
                .or_else(|| body.get("metadata").and_then(|m| m.get("session_id")))
                .and_then(Value::as_str)
                .map(|s| bounded(s, MAX_CLIENT_STRING).to_string());
        }
        if let Some(t) = body.get("litellm_trace_id").and_then(Value::as_str) {
            self.record.trace_id = bounded(t, MAX_CLIENT_STRING).to_string();
        }
        self.record.stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
        self.record.max_tokens = body
            .get("max_completion_tokens")
            .or_else(|| body.get("max_tokens"))
            .and_then(Value::as_u64);
        self.record.prompt_sha256 = Some(fingerprint(&self.record.model_group, body));
        if self.record.stream {
            self.input_estimate = tollgate_providers::context_window::estimate_input_tokens(body);
        }
    }

    fn use_deployment(&mut self, d: &Arc<Deployment>) {
        self.record.model_group = d.model_group.clone();
        self.record.model = d.model.clone();
        self.record.provider = d.route.provider.prefix().to_string();
        self.record.api_base = Some(d.route.api_base.clone());
        self.deployment = Some(d.clone());
    }

    /// Writes the record of one failed upstream attempt; the request goes on with another.
    fn attempt_failed(&mut self, d: &Deployment, attempt: u32, f: &Failure) {
        self.failed_upstream_ms += f.upstream_ms;
        let mut r = self.record.clone();
        r.model_group = d.model_group.clone();
        r.model = d.model.clone();
        r.provider = d.route.provider.prefix().to_string();
        r.api_base = Some(d.route.api_base.clone());
        r.attempt = Some(attempt);
        r.status = RecordStatus::Failure;
        r.http_status = f.error.status;
        r.error_type = Some(f.error.type_str().to_string());
        r.error_message = Some(f.error.message.clone());
        r.fault = Some(f.error.fault());
        r.end_time = Utc::now();
        r.latency_ms = self.elapsed_ms();
        r.upstream_ms = Some(f.upstream_ms);
        // This attempt's wait is in `failed_upstream_ms` already, with earlier ones and backoff.
        r.overhead_ms = Some(self.gateway_ms(r.latency_ms, 0.0));
        r.set_cost(Some(Cost::default()));
        d.stats.finished(
            Some(f.error.fault()),
            r.latency_ms,
            0,
            &self.app.live.load().config.router,
        );
        let _ = self.app.writer.submit(r);
    }

    pub(crate) fn set_usage(&mut self, parsed: &ParsedUsage, price: Option<&tollgate_core::Price>) {
        self.record.set_usage(&parsed.usage);
        self.record.set_cost(price.and_then(|p| p.cost(&parsed.usage)));
        self.record.reported_cost_usd = parsed.reported_cost_usd;
        self.record.cached_tokens_reported = parsed.cache_reported;
    }

    /// What a cache hit on this answer will replay and account.
    fn cache_entry(&self, ttl_s: f64, body: Option<String>, chunks: Vec<String>) -> CachedEntry {
        CachedEntry {
            stored_at_ms: self.record.start_time.timestamp_millis().max(0) as u64,
            ttl_s,
            body,
            chunks,
            usage: self.record.usage(),
            cost_usd: self.record.cost_usd,
            model: self.record.model.clone(),
            provider: self.record.provider.clone(),
            finish_reason: self.record.finish_reason.clone(),
        }
    }

    /// Closes the record and hands it to the writer. `upstream_ms` is time spent waiting on the
    /// provider; everything else is the gateway's overhead. The returned commit matters only in
    /// `sync` durability: the final record of an answer is awaited with [`committed`].
    pub(crate) fn finish(mut self, status: u16, upstream_ms: Option<f64>, error: Option<&GatewayError>) -> Commit {
        self.close(status, upstream_ms, error)
    }

    fn close(&mut self, status: u16, upstream_ms: Option<f64>, error: Option<&GatewayError>) -> Commit {
        self.closed = true;
        let latency = self.elapsed_ms();
        self.record.end_time = Utc::now();
        self.record.latency_ms = latency;
        self.record.http_status = status;
        self.record.upstream_ms = upstream_ms;
        if self.record.overhead_ms.is_none() {
            self.record.overhead_ms = upstream_ms.map(|u| self.gateway_ms(latency, u));
        }
        if let Some(e) = error {
            self.record.status = RecordStatus::Failure;
            self.record.error_type = Some(e.type_str().to_string());
            self.record.error_message = Some(e.message.clone());
            self.record.fault = Some(e.fault());
        }
        if self.record.cost_usd.is_none() && self.record.status == RecordStatus::Success && !self.record.unpriced {
            self.record.unpriced = true;
        }
        if let Some(d) = self.deployment.take() {
            // A failure with no error (a workflow marking a step failed) is counted as the
            // deployment's: it answered, but not usably.
            let failure = match self.record.status {
                RecordStatus::Success => None,
                RecordStatus::Failure => Some(self.record.fault.unwrap_or(Fault::Deployment)),
            };
            let tokens = self.record.total_tokens();
            d.stats
                .finished(failure, latency, tokens, &self.app.live.load().config.router);
        }
        self.app
            .metrics
            .observe(self.record.stream, self.record.overhead_ms, upstream_ms);
        self.app.writer.submit(std::mem::take(&mut self.record))
    }

    /// Records a request that failed before reaching an upstream, and answers it.
    fn fail(self, e: GatewayError) -> Response {
        let status = e.status;
        let mut resp = ApiError(e.clone()).into_response();
        set_id_headers(resp.headers_mut(), &self.record.request_id, &self.record.model_group);
        let _ = self.finish(status, None, Some(&e));
        resp
    }
}

/// `record_durability: sync`: the answer waits here until its record is committed to SQLite
/// (at once in `buffered` mode). If SQLite refuses it, the answer still goes out (the provider
/// has been paid for it); the record stays queued for a retry and readiness shows the failure.
async fn committed(commit: Commit) {
    if let Err(e) = commit.wait().await {
        tracing::debug!("answering before the record is committed: {e}");
    }
}

fn set_id_headers(h: &mut HeaderMap, request_id: &str, group: &str) {
    for (k, v) in [
        ("x-tollgate-request-id", request_id),
        ("x-litellm-call-id", request_id),
        ("x-tollgate-model-group", group),
    ] {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    }
}

/// Hex SHA-256 over the model group and the answer-deciding fields, streamed into the hasher so
/// large prompts are not copied.
fn fingerprint(group: &str, body: &Map<String, Value>) -> String {
    let mut sel = Map::new();
    sel.insert("model".into(), Value::String(group.to_string()));
    let mut canonical = serde_json::to_vec(&sel).unwrap_or_default();
    for k in ANSWER_FIELDS {
        if let Some(v) = body.get(*k) {
            canonical.extend_from_slice(k.as_bytes());
            canonical.push(b'=');
            // Serialising a Value cannot fail.
            let _ = serde_json::to_writer(&mut canonical, v);
            canonical.push(b'\n');
        }
    }
    prompt_sha256(&canonical)
}

pub async fn handle(app: Arc<App>, endpoint: Endpoint, headers: HeaderMap, body: Body) -> Response {
    let live = app.live.load_full();
    let key_alias = match authorize(&headers, live.config.master_key.as_ref().filter(|_| app.auth_enabled)) {
        Ok(alias) => alias,
        // Unauthenticated traffic is not recorded: it would let anyone fill the store.
        Err(e) => return ApiError(e).into_response(),
    };
    let mut draft = Draft::new(app.clone(), &live, &headers);
    draft.record.key_alias = key_alias;

    let rules = crate::edge::BodyRules {
        max_bytes: live.max_body_bytes,
        timeout: crate::listener::seconds(live.config.server.body_read_timeout_s),
        inflight_budget: (live.config.server.max_inflight_request_mb * 1024.0 * 1024.0) as usize,
    };
    // The lease keeps this request's share of the in-flight body budget until it is answered.
    let (bytes, _body_lease) = match crate::edge::read_body(body, &headers, &rules, &app.body_budget).await {
        Ok(b) => b,
        Err(e) => return draft.fail(e),
    };
    let parsed = serde_json::from_slice(&bytes);
    // The parsed map is all that is needed from here on; the raw bytes are not kept beside it.
    drop(bytes);
    let mut body: Map<String, Value> = match parsed {
        Ok(Value::Object(m)) => m,
        Ok(_) => {
            return draft.fail(GatewayError::new(
                ErrorKind::InvalidRequest,
                "request body must be a JSON object",
            ));
        }
        Err(e) => {
            return draft.fail(GatewayError::new(
                ErrorKind::InvalidRequest,
                format!("request body is not valid JSON: {e}"),
            ));
        }
    };
    let group_name = match body.get("model") {
        Some(Value::String(s)) if s.len() <= MAX_CLIENT_STRING => s.clone(),
        // No configured name is this long; echoing it would put kilobytes into the error and
        // the record.
        Some(Value::String(s)) => {
            return draft.fail(
                GatewayError::new(
                    ErrorKind::NotFound,
                    format!(
                        "model `{}…` ({} bytes) is not served by this gateway; ask GET /v1/models for the names",
                        bounded(s, 40),
                        s.len()
                    ),
                )
                .with_code("model_not_found")
                .with_param("model"),
            );
        }
        _ => {
            return draft.fail(
                GatewayError::new(
                    ErrorKind::InvalidRequest,
                    "missing `model`: name one of the gateway's models",
                )
                .with_param("model"),
            );
        }
    };
    draft.record.model_group = group_name.clone();
    draft.read_body(&body);
    if endpoint == Endpoint::Chat && !matches!(body.get("messages"), Some(Value::Array(_))) {
        return draft.fail(
            GatewayError::new(
                ErrorKind::InvalidRequest,
                "missing `messages`: a chat request needs a list of messages",
            )
            .with_param("messages"),
        );
    }
    let target = match live.target(&group_name) {
        Some(Target::Workflow(_)) if endpoint != Endpoint::Chat => None,
        t => t,
    };
    let Some(target) = target else {
        let known = live.model_names().join(", ");
        return draft.fail(
            GatewayError::new(
                ErrorKind::NotFound,
                format!("model `{group_name}` is not served by this gateway; known models: {known}"),
            )
            .with_code("model_not_found")
            .with_param("model"),
        );
    };
    // Every provider refuses an empty conversation; answering here saves a round trip and keeps
    // the refusal from looking like a deployment's failure.
    if endpoint == Endpoint::Chat
        && body
            .get("messages")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
    {
        return draft.fail(
            GatewayError::new(
                ErrorKind::InvalidRequest,
                "`messages` is empty: a chat request needs at least one message",
            )
            .with_param("messages"),
        );
    }
    let group = match target {
        Target::Group(g) => g,
        Target::Workflow(wf) => {
            draft.record.workflow = Some(wf.name.clone());
            return crate::workflow::run(app.clone(), live.clone(), wf, draft.into_run(), body).await;
        }
    };
    let stream = endpoint == Endpoint::Chat && draft.record.stream;
    let client_wants_usage = !stream
        || body
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);

    // The response cache answers before any deployment is chosen: it is per model group.
    let mut store_to: Option<(Arc<ResponseCache>, RequestCache)> = None;
    if let Some(cache) = &live.cache {
        let call_type = match endpoint {
            Endpoint::Chat => "completion",
            Endpoint::Embeddings => "embedding",
        };
        let fingerprint = draft.record.prompt_sha256.clone().unwrap_or_default();
        match request_controls(&cache.settings, call_type, &fingerprint, stream, &body, &headers) {
            None => draft.record.cache = CacheState::Bypass,
            Some(rc) => {
                draft.record.cache = if rc.lookup {
                    CacheState::Miss
                } else {
                    CacheState::Bypass
                };
                if rc.lookup {
                    match cache.get(&rc).await {
                        Lookup::Hit(entry) => return cache_hit(draft, &entry, &rc.key, client_wants_usage),
                        Lookup::Miss => {}
                        Lookup::Unavailable => draft.record.cache = CacheState::Bypass,
                    }
                }
                if rc.store {
                    store_to = Some((cache.clone(), rc));
                }
            }
        }
    }

    for k in GATEWAY_ONLY_FIELDS {
        body.remove(*k);
    }
    if stream {
        // Usage is needed for the record whether or not the client asked; the extra chunk is
        // removed again for clients that did not ask.
        let opts = body
            .entry("stream_options")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(o) = opts {
            o.insert("include_usage".into(), Value::Bool(true));
        }
    }
    let group = group.name.clone();
    let (outcome, tries) = route_request(&app, &live, endpoint, &mut body, stream, &mut draft, &group).await;
    let mut resp = match outcome {
        Err(f) => {
            let status = f.error.status;
            let mut resp = ApiError(f.error.clone()).into_response();
            set_id_headers(resp.headers_mut(), &draft.record.request_id, &draft.record.model_group);
            if let Some(ra) = f.retry_after {
                resp.headers_mut().insert("retry-after", ra);
            }
            committed(draft.finish(status, Some(f.upstream_ms), Some(&f.error))).await;
            resp
        }
        Ok((deployment, Sent::Plain(bytes), sent, _)) => {
            let upstream_ms = sent.elapsed().as_secs_f64() * 1000.0;
            plain_response(draft, &deployment, bytes, upstream_ms, store_to).await
        }
        Ok((deployment, Sent::Stream(events), sent, pre_ms)) => stream_response(
            draft,
            deployment,
            events,
            sent,
            pre_ms,
            client_wants_usage,
            store_to,
            StreamExtras::default(),
        ),
    };
    tries.tag(resp.headers_mut());
    resp
}

/// How many upstream attempts a request took.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Tries {
    pub attempts: u32,
    pub retries: u32,
    pub fallbacks: u32,
}

impl Tries {
    fn tag(&self, h: &mut HeaderMap) {
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

type Events = std::pin::Pin<
    Box<
        dyn futures::Stream<
                Item = Result<eventsource_stream::Event, eventsource_stream::EventStreamError<reqwest::Error>>,
            > + Send,
    >,
>;

/// An upstream answer that will be relayed: a whole body, or a stream whose first event has
/// arrived (so a stream that dies before its first byte can still fall back).
pub(crate) enum Sent {
    Plain(Bytes),
    Stream(Events),
}

type Routed = Result<(Arc<Deployment>, Sent, Instant, f64), Failure>;

/// Sends the request to the group, retrying and falling back as `router_settings` say. Every
/// failed attempt leaves a record; the returned deployment is already on `draft`.
pub(crate) async fn route_request(
    app: &Arc<App>,
    live: &LiveState,
    endpoint: Endpoint,
    body: &mut Map<String, Value>,
    stream: bool,
    draft: &mut Draft,
    group: &str,
) -> (Routed, Tries) {
    let settings = &live.config.router;
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
        if let Some(g) = live.groups.get(settings.resolve(&gname)) {
            for retry in 0..=settings.num_retries {
                let Some(d) = crate::router::pick(g, settings) else {
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
                body.insert("model".into(), Value::String(d.route.upstream_model.clone()));
                if endpoint == Endpoint::Chat {
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
                let to_send: &Map<String, Value> = if d.config.cache_control_injection_points.is_empty() {
                    body
                } else {
                    let mut b = body.clone();
                    crate::prompt_cache::inject(&mut b, &d.config.cache_control_injection_points);
                    marked = b;
                    &marked
                };
                match send_once(app, &d, endpoint, to_send, stream).await {
                    Ok((sent, at)) => {
                        // `started` was counted above; the draft's finish reports the outcome.
                        draft.use_deployment(&d);
                        draft.record.attempt = Some(attempt);
                        return (Ok((d, sent, at, pre_ms)), tries);
                    }
                    Err(f) => {
                        // The attempt's own record tells the deployment how it went.
                        draft.deployment = None;
                        draft.attempt_failed(&d, attempt, &f);
                        context_window = crate::router::is_context_window_error(f.error.status, &f.error.message);
                        let again = crate::router::retryable(&f.error);
                        let wait = crate::router::backoff(retry, settings, f.retry_after());
                        // The record of the request names the last group tried.
                        draft.record.model_group = d.model_group.clone();
                        last = Some(f);
                        if !again {
                            break;
                        }
                        if retry < settings.num_retries {
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
            chain.extend(crate::router::fallbacks(live, &gname, true));
        } else if !extended && retryable_end {
            extended = true;
            chain.extend(crate::router::fallbacks(live, group, false));
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

/// One upstream call. A stream counts as sent once its first event has arrived.
async fn send_once(
    app: &Arc<App>,
    d: &Deployment,
    endpoint: Endpoint,
    body: &Map<String, Value>,
    stream: bool,
) -> Result<(Sent, Instant), Failure> {
    let sent = Instant::now();
    let fail = |error: GatewayError| Failure {
        error,
        retry_after: None,
        upstream_ms: sent.elapsed().as_secs_f64() * 1000.0,
    };
    let mut req = match endpoint {
        // Chat speaks the deployment's wire format (OpenAI's, Gemini's, Anthropic's).
        Endpoint::Chat => {
            let up = crate::upstream::build(d, body, stream).map_err(fail)?;
            let mut req = app.http.post(up.url).body(up.body);
            for (k, v) in &up.headers {
                req = req.header(k, v);
            }
            req
        }
        Endpoint::Embeddings => {
            let upstream_body = serde_json::to_vec(body).map_err(|e| {
                fail(GatewayError::new(
                    ErrorKind::Internal,
                    format!("cannot encode request: {e}"),
                ))
            })?;
            let mut req = app
                .http
                .post(&d.route.embeddings_url)
                .header("content-type", "application/json")
                .body(upstream_body);
            if let Some(k) = &d.api_key {
                req = req.bearer_auth(k.expose());
            }
            req
        }
    };
    for (k, v) in &d.extra_headers {
        req = req.header(k, v);
    }
    // For streams the stream timeout covers the wait for the first byte; the deployment timeout the rest.
    let first_wait = if stream { d.stream_timeout } else { d.timeout };
    let resp = match tokio::time::timeout(first_wait, req.send()).await {
        Err(_) => return Err(fail(timeout_error(d, first_wait))),
        Ok(Err(e)) => return Err(fail(transport_error(d, &e))),
        Ok(Ok(r)) => r,
    };
    if !resp.status().is_success() {
        return Err(upstream_status(d, resp, sent).await);
    }
    if stream {
        let mut events: Events = Box::pin(resp.bytes_stream().eventsource());
        let remaining = d.stream_timeout.saturating_sub(sent.elapsed());
        let first = match tokio::time::timeout(remaining, events.next()).await {
            Err(_) => return Err(fail(timeout_error(d, d.stream_timeout))),
            Ok(None) => {
                return Err(fail(
                    GatewayError::new(
                        ErrorKind::Upstream,
                        format!("{} ended the stream before sending anything", d.route.provider.prefix()),
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
                            d.route.provider.prefix()
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
    let remaining = d.timeout.saturating_sub(sent.elapsed());
    match tokio::time::timeout(remaining, resp.bytes()).await {
        Err(_) => Err(fail(timeout_error(d, d.timeout))),
        Ok(Err(e)) => Err(fail(transport_error(d, &e))),
        Ok(Ok(b)) => Ok((Sent::Plain(b), sent)),
    }
}

async fn plain_response(
    mut draft: Draft,
    deployment: &Deployment,
    bytes: Bytes,
    upstream_ms: f64,
    store_to: Option<(Arc<ResponseCache>, RequestCache)>,
) -> Response {
    // The provider's answer as OpenAI's, usage in buckets, response hygiene applied.
    let (mut value, parsed) = match crate::upstream::read_plain(deployment, &bytes, &draft.record.model_group) {
        Ok(v) => v,
        Err(err) => {
            let status = err.status;
            let mut resp = ApiError(err.clone()).into_response();
            set_id_headers(resp.headers_mut(), &draft.record.request_id, &draft.record.model_group);
            committed(draft.finish(status, Some(upstream_ms), Some(&err))).await;
            return resp;
        }
    };
    draft.set_usage(&parsed, deployment.price.as_ref());
    draft.record.finish_reason = value
        .pointer("/choices/0/finish_reason")
        .and_then(Value::as_str)
        .map(str::to_string);
    // Clients see the group name they asked for, as with LiteLLM.
    if let Some(obj) = value.as_object_mut() {
        obj.insert("model".into(), Value::String(draft.record.model_group.clone()));
    }
    let out = serde_json::to_vec(&value).unwrap_or_else(|_| bytes.to_vec());
    if let Some((cache, rc)) = store_to
        && let Ok(body) = String::from_utf8(out.clone())
    {
        let entry = draft.cache_entry(rc.ttl_s, Some(body), Vec::new());
        // Storing must not delay the answer (Redis is a network round trip).
        cache.store_later(rc.key, entry);
    }
    // Failed attempts and their backoff were waiting on providers too.
    let overhead = draft.gateway_ms(draft.elapsed_ms(), upstream_ms);
    let mut resp = (StatusCode::OK, [("content-type", "application/json")], out).into_response();
    tag_response(
        resp.headers_mut(),
        &ResponseTags {
            request_id: &draft.record.request_id,
            model_group: &draft.record.model_group,
            cost_usd: draft.record.cost_usd,
            overhead_ms: overhead,
            cache: draft.record.cache.as_str(),
        },
    );
    draft.max_tokens.tag(resp.headers_mut());
    committed(draft.finish(200, Some(upstream_ms), None)).await;
    resp
}

/// Answers from the cache: the stored body, or the stored chunks as SSE. The record keeps the
/// original usage, costs nothing, and notes what the hit saved.
fn cache_hit(mut draft: Draft, entry: &CachedEntry, key: &str, client_wants_usage: bool) -> Response {
    draft.record.cache = CacheState::Hit;
    draft.record.model = entry.model.clone();
    draft.record.provider = entry.provider.clone();
    draft.record.finish_reason = entry.finish_reason.clone();
    draft.record.set_usage(&entry.usage);
    draft.record.set_cost(Some(Cost::default()));
    draft.record.saved_cost_usd = entry.cost_usd;
    let mut resp = match &entry.body {
        Some(body) => (StatusCode::OK, [("content-type", "application/json")], body.clone()).into_response(),
        None => {
            let mut events: Vec<Result<Bytes, std::io::Error>> = Vec::with_capacity(entry.chunks.len() + 1);
            for c in &entry.chunks {
                let usage_only = inspect_chunk(c).is_some_and(|i| i.choices_empty && i.usage.is_some());
                if usage_only && !client_wants_usage {
                    continue;
                }
                events.push(Ok(event_bytes(c)));
            }
            events.push(Ok(event_bytes("[DONE]")));
            draft.record.ttft_ms = Some(draft.elapsed_ms());
            let mut r = Response::new(Body::from_stream(coalesce(futures::stream::iter(events))));
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static("text/event-stream"));
            r
        }
    };
    let h = resp.headers_mut();
    tag_response(
        h,
        &ResponseTags {
            request_id: &draft.record.request_id,
            model_group: &draft.record.model_group,
            cost_usd: Some(0.0),
            overhead_ms: draft.elapsed_ms(),
            cache: CacheState::Hit.as_str(),
        },
    );
    if let Ok(v) = HeaderValue::from_str(key) {
        h.insert("x-litellm-cache-key", v);
    }
    if let Some(saved) = entry.cost_usd
        && let Ok(v) = HeaderValue::from_str(&format!("{saved:.10}"))
    {
        h.insert("x-tollgate-cache-saved-usd", v);
    }
    let _ = draft.finish(200, Some(0.0), None);
    resp
}

fn timeout_error(d: &Deployment, after: Duration) -> GatewayError {
    GatewayError::new(
        ErrorKind::Timeout,
        format!(
            "{} did not answer within {:.1} s (litellm_params.timeout / stream_timeout of model `{}`)",
            d.route.provider.prefix(),
            after.as_secs_f64(),
            d.model_group
        ),
    )
    .with_code("upstream_timeout")
}

fn transport_error(d: &Deployment, e: &reqwest::Error) -> GatewayError {
    if e.is_timeout() {
        return timeout_error(d, d.timeout);
    }
    // `api_base` is shown masked; the HTTP client's own message embeds the full URL, so it is
    // masked too before it reaches the client and the record.
    GatewayError::new(
        ErrorKind::Upstream,
        format!(
            "cannot reach {} at {}: {}",
            d.route.provider.prefix(),
            d.route.api_base,
            redact::text(&error_chain(e))
        ),
    )
    .with_code("upstream_unreachable")
}

/// An error and its causes, each said once: reqwest and hyper often repeat their cause in their
/// own message, which would print "connection refused" two or three times.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
    s
}

/// Longest client-chosen string (model name, session or trace id, user agent) kept as given.
const MAX_CLIENT_STRING: usize = 256;

/// `s` cut to at most `max` bytes, at a character boundary.
fn bounded(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A non-2xx answer from the provider: its status is passed through, its error message kept
/// (in OpenAI's shape if it was not already), and `Retry-After` forwarded.
async fn upstream_status(d: &Deployment, resp: reqwest::Response, sent: Instant) -> Failure {
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
    let provider = d.route.provider.prefix();
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

/// Ensures a streamed request is recorded exactly once, also when the client disconnects and
/// the stream is dropped midway.
struct StreamGuard {
    draft: Option<Draft>,
    sent: Instant,
    upstream_done_ms: Option<f64>,
    gateway_ms: f64,
    on_done: Option<OnDone>,
    /// Text and reasoning bytes relayed so far, for the estimate of a stream that ends early.
    text_bytes: usize,
    reasoning_bytes: usize,
    /// Prices the estimate.
    deployment: Arc<Deployment>,
}

impl StreamGuard {
    /// A stream that ended before the provider reported usage is still billed by the provider
    /// for what it generated: account what was relayed, marked as an estimate (the same
    /// bytes-per-token heuristic as the max_tokens clamp).
    fn estimate_usage(&self, draft: &mut Draft) {
        let r = &draft.record;
        if r.prompt_tokens > 0 || r.completion_tokens > 0 {
            return;
        }
        let usage = tollgate_core::Usage {
            input: draft.input_estimate,
            output: (self.text_bytes as u64).div_ceil(BYTES_PER_TOKEN),
            reasoning: (self.reasoning_bytes as u64).div_ceil(BYTES_PER_TOKEN),
            ..Default::default()
        };
        if usage.input + usage.output + usage.reasoning == 0 {
            return;
        }
        let parsed = ParsedUsage {
            usage,
            ..Default::default()
        };
        draft.set_usage(&parsed, self.deployment.price.as_ref());
        draft.record.usage_estimated = true;
    }

    /// Records the stream; `None` if it was recorded already.
    fn complete(&mut self, error: Option<GatewayError>) -> Option<Commit> {
        if let Some(mut draft) = self.draft.take() {
            if error.is_some() {
                self.estimate_usage(&mut draft);
            }
            let upstream_ms = self
                .upstream_done_ms
                .unwrap_or_else(|| self.sent.elapsed().as_secs_f64() * 1000.0);
            let status = error.as_ref().map(|e| e.status).unwrap_or(200);
            // A stream's wall time is set by the provider and the client's reading speed; the
            // gateway's own share is what it spent before sending and on each chunk.
            draft.record.overhead_ms = Some(self.gateway_ms);
            if let Some(done) = self.on_done.take() {
                let mut r = draft.record.clone();
                if error.is_some() {
                    r.status = RecordStatus::Failure;
                }
                r.latency_ms = draft.elapsed_ms();
                done(&r);
            }
            Some(draft.finish(status, Some(upstream_ms), error.as_ref()))
        } else {
            None
        }
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if self.draft.is_some() {
            let e = GatewayError::new(ErrorKind::InvalidRequest, "client closed the stream before it ended")
                .with_status(499)
                .with_code("client_closed_request")
                .with_fault(Fault::Client);
            let _ = self.complete(Some(e));
        }
    }
}

/// Sends the SSE events that are already waiting as one HTTP chunk instead of one chunk each:
/// an upstream that delivers a whole answer in one read would otherwise cost a write and a
/// client wake-up per event. Nothing waits for more: only what is ready is joined.
fn coalesce(
    events: impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    events.ready_chunks(64).map(|batch| {
        if batch.len() == 1 {
            return batch.into_iter().next().unwrap_or_else(|| Ok(Bytes::new()));
        }
        let mut joined = Vec::with_capacity(batch.iter().map(|b| b.as_ref().map_or(0, Bytes::len)).sum());
        for b in batch {
            joined.extend_from_slice(&b?);
        }
        Ok(Bytes::from(joined))
    })
}

/// Told the finished record of a streamed request (a workflow writes its run record from it).
pub(crate) type OnDone = Box<dyn FnOnce(&Record) + Send>;

/// What a workflow adds around the stream of its last step.
#[derive(Default)]
pub(crate) struct StreamExtras {
    /// Chunks sent before the upstream's (progress of earlier steps).
    pub prelude: Vec<Bytes>,
    /// The name chunks carry instead of the group (the workflow's).
    pub rename: Option<String>,
    /// Usage of earlier steps, added to the usage chunk the client sees.
    pub prior_usage: Option<tollgate_core::Usage>,
    /// Called with the step's finished record, so the workflow can write its run record.
    pub on_done: Option<OnDone>,
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn stream_response(
    draft: Draft,
    deployment: Arc<Deployment>,
    events: Events,
    sent: Instant,
    pre_ms: f64,
    client_wants_usage: bool,
    store_to: Option<(Arc<ResponseCache>, RequestCache)>,
    extras: StreamExtras,
) -> Response {
    let request_id = draft.record.request_id.clone();
    let cache_state = draft.record.cache;
    let group = extras
        .rename
        .clone()
        .unwrap_or_else(|| draft.record.model_group.clone());
    let stream_group = group.clone();
    let prelude = extras.prelude;
    let prior_usage = extras.prior_usage;
    // Gemini and Anthropic events become OpenAI chunks; the OpenAI family has no translator.
    let mut translator = StreamTranslator::for_route(&deployment.route, &group);
    // Re-serialising every chunk costs a little; skip it when the names already agree
    // (translated chunks already carry the group's name).
    let rename_model = translator.is_none() && deployment.route.upstream_model != group;
    let mut max_tokens_headers = HeaderMap::new();
    draft.max_tokens.tag(&mut max_tokens_headers);
    let sync_records = draft.app.writer.durability() == RecordDurability::Sync;
    let mut guard = StreamGuard {
        draft: Some(draft),
        sent,
        upstream_done_ms: None,
        gateway_ms: pre_ms,
        on_done: extras.on_done,
        text_bytes: 0,
        reasoning_bytes: 0,
        deployment: deployment.clone(),
    };
    let mut events = events;
    let stream_timeout = deployment.timeout;
    let mut cut = guard
        .draft
        .as_ref()
        .map(|d| d.app.cut_streams.clone())
        .unwrap_or_else(|| tokio::sync::watch::channel(false).1);
    let body_stream = async_stream::stream! {
        for b in prelude {
            yield Ok::<Bytes, std::io::Error>(b);
        }
        let mut saw_done = false;
        // Chunks as the client would get them with usage, kept only when the answer will be cached.
        let mut collected: Option<Vec<String>> = store_to.as_ref().map(|_| Vec::new());
        let mut upstream_closed = false;
        loop {
            if upstream_closed {
                break;
            }
            let remaining = stream_timeout.saturating_sub(sent.elapsed());
            let waited = tokio::select! {
                // The shutdown grace period is over: end the stream truthfully and record it.
                _ = cut.wait_for(|cut| *cut) => None,
                n = tokio::time::timeout(remaining, events.next()) => Some(n),
            };
            let next = match waited {
                None => {
                    let e = GatewayError::new(
                        ErrorKind::Upstream,
                        "the gateway is shutting down and its grace period is over; retry the request",
                    )
                    .with_status(503)
                    .with_code("gateway_shutting_down")
                    .with_fault(Fault::Gateway);
                    yield Ok::<Bytes, std::io::Error>(error_event(&e.to_json()));
                    guard.complete(Some(e));
                    return;
                }
                Some(Ok(n)) => n,
                Some(Err(_)) => {
                    let e = timeout_error(&deployment, stream_timeout);
                    yield Ok::<Bytes, std::io::Error>(error_event(&e.to_json()));
                    guard.complete(Some(e));
                    return;
                }
            };
            let t = Instant::now();
            // One upstream event → the OpenAI payloads it stands for: itself (OpenAI family,
            // relayed as is), or what the translator makes of it.
            let (relayed, translated): (Option<String>, Vec<String>) = match next {
                None => match translator.as_mut() {
                    // Gemini has no end event: its usage chunk and [DONE] come when it closes.
                    Some(tr) => {
                        upstream_closed = true;
                        (None, tr.finish())
                    }
                    None => break,
                },
                Some(Err(e)) => {
                    let err = GatewayError::new(
                        ErrorKind::Upstream,
                        redact::text(&format!("{} stream broke midway: {e}", deployment.route.provider.prefix())),
                    ).with_code("upstream_stream_broken");
                    yield Ok(error_event(&err.to_json()));
                    guard.complete(Some(err));
                    return;
                }
                Some(Ok(ev)) => match translator.as_mut() {
                    None => (Some(ev.data), Vec::new()),
                    Some(tr) => {
                        let out = tr.on_event(&ev.event, &ev.data);
                        if let Some(message) = tr.error() {
                            let err = GatewayError::new(ErrorKind::Upstream, message.to_string())
                                .with_code("upstream_stream_error");
                            yield Ok(error_event(&err.to_json()));
                            guard.complete(Some(err));
                            return;
                        }
                        (None, out)
                    }
                },
            };
            guard.gateway_ms += t.elapsed().as_secs_f64() * 1000.0;
            for data in relayed.into_iter().chain(translated) {
                let t = Instant::now();
                if data == "[DONE]" {
                    saw_done = true;
                    if let (Some((cache, rc)), Some(chunks), Some(d)) = (store_to.clone(), collected.take(), guard.draft.as_ref()) {
                        let entry = d.cache_entry(rc.ttl_s, None, chunks);
                        cache.store_later(rc.key, entry);
                    }
                    guard.upstream_done_ms = Some(sent.elapsed().as_secs_f64() * 1000.0);
                    guard.gateway_ms += t.elapsed().as_secs_f64() * 1000.0;
                    if sync_records {
                        // The stream is complete: its record is committed before the client
                        // sees the end (nothing follows [DONE] in any provider's stream).
                        if let Some(commit) = guard.complete(None) {
                            committed(commit).await;
                        }
                        yield Ok(event_bytes("[DONE]"));
                        return;
                    }
                    yield Ok(event_bytes("[DONE]"));
                    continue;
                }
                let out = match inspect_chunk(&data) {
                    None => {
                        if let Some(c) = collected.as_mut() {
                            c.push(data.clone());
                        }
                        Some(event_bytes(&data))
                    }
                    Some(info) => {
                        guard.text_bytes += info.text_bytes;
                        guard.reasoning_bytes += info.reasoning_bytes;
                        if let Some(d) = guard.draft.as_mut() {
                            if info.has_token && d.record.ttft_ms.is_none() {
                                d.record.ttft_ms = Some(d.elapsed_ms());
                            }
                            if info.finish_reason.is_some() {
                                d.record.finish_reason = info.finish_reason.clone();
                            }
                        }
                        if info.usage.is_some() {
                            let mut chunk: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
                            let parsed = chunk.get_mut("usage").map(normalize_openai_usage).unwrap_or_default();
                            if let Some(d) = guard.draft.as_mut() {
                                d.set_usage(&parsed, deployment.price.as_ref());
                            }
                            if let Some(prior) = prior_usage {
                                // The client is billed for the whole workflow run.
                                let mut total = parsed.usage;
                                total.add(&prior);
                                chunk["usage"] = total.to_openai_json();
                            }
                            if let Some(o) = chunk.as_object_mut() {
                                o.insert("model".into(), Value::String(stream_group.clone()));
                            }
                            let text = chunk.to_string();
                            let out = (!info.choices_empty || client_wants_usage).then(|| event_bytes(&text));
                            if let Some(c) = collected.as_mut() {
                                c.push(text);
                            }
                            out
                        } else if rename_model {
                            // Chunks name the group the client asked for, as plain responses do.
                            let mut chunk: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
                            if let Some(o) = chunk.as_object_mut() {
                                o.insert("model".into(), Value::String(stream_group.clone()));
                            }
                            let text = chunk.to_string();
                            let out = Some(event_bytes(&text));
                            if let Some(c) = collected.as_mut() {
                                c.push(text);
                            }
                            out
                        } else {
                            if let Some(c) = collected.as_mut() {
                                c.push(data.clone());
                            }
                            Some(event_bytes(&data))
                        }
                    }
                };
                guard.gateway_ms += t.elapsed().as_secs_f64() * 1000.0;
                if let Some(b) = out {
                    yield Ok(b);
                }
            }
        }
        if saw_done {
            guard.complete(None);
        } else {
            // A stream that ends without [DONE] is truncated: say so instead of ending cleanly.
            let err = GatewayError::new(
                ErrorKind::Upstream,
                format!("{} closed the stream before [DONE]", deployment.route.provider.prefix()),
            ).with_code("upstream_stream_truncated");
            yield Ok(error_event(&err.to_json()));
            guard.complete(Some(err));
        }
    };
    let mut resp = Response::new(Body::from_stream(coalesce(body_stream)));
    let h = resp.headers_mut();
    h.insert("content-type", HeaderValue::from_static("text/event-stream"));
    h.insert("cache-control", HeaderValue::from_static("no-cache"));
    h.extend(max_tokens_headers);
    tag_response(
        h,
        &ResponseTags {
            request_id: &request_id,
            model_group: &group,
            // The cost of a stream is known only at its end: it is in the record and usage chunk.
            cost_usd: None,
            overhead_ms: pre_ms,
            cache: cache_state.as_str(),
        },
    );
    h.remove("x-tollgate-cost-usd");
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_ignores_user_and_stream_but_not_messages() {
        let a: Map<String, Value> = serde_json::from_str(
            r#"{"model":"g","messages":[{"role":"user","content":"hi"}],"stream":true,"user":"u1"}"#,
        )
        .unwrap();
        let b: Map<String, Value> =
            serde_json::from_str(r#"{"model":"g","messages":[{"role":"user","content":"hi"}],"user":"u2"}"#).unwrap();
        let c: Map<String, Value> =
            serde_json::from_str(r#"{"model":"g","messages":[{"role":"user","content":"ho"}]}"#).unwrap();
        assert_eq!(fingerprint("g", &a), fingerprint("g", &b));
        assert_ne!(fingerprint("g", &a), fingerprint("g", &c));
        assert_ne!(fingerprint("g", &a), fingerprint("h", &a));
    }

    #[test]
    fn bounded_cuts_at_a_char_boundary() {
        assert_eq!(bounded("abc", 5), "abc");
        assert_eq!(bounded("abcdef", 3), "abc");
        // "é" is two bytes: a cut in its middle backs off to before it.
        assert_eq!(bounded("aé", 2), "a");
    }

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);
    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as &(dyn std::error::Error + 'static))
        }
    }

    #[test]
    fn error_chain_says_each_cause_once() {
        let e = Layer(
            "error sending request: connection refused",
            Some(Box::new(Layer(
                "client error (Connect)",
                Some(Box::new(Layer("connection refused", None))),
            ))),
        );
        let text = error_chain(&e);
        assert_eq!(text.matches("connection refused").count(), 1, "{text}");
        assert!(text.contains("client error (Connect)"), "{text}");
    }

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
