//! Stage 8, account and record: what is known about a request as it passes the stages, and the
//! one [`Record`] it becomes. Every request that got past authentication leaves a record,
//! also when its client leaves early (the draft records itself when dropped).

use std::sync::Arc;
use std::time::Instant;

use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytestring::ByteString;
use chrono::Utc;
use serde_json::Value;
use tollgate_core::{CacheState, ErrorKind, Fault, GatewayError, Record, RecordStatus};
use tollgate_providers::usage::ParsedUsage;
use tollgate_store::Commit;

use crate::app::App;
use crate::body::{RequestBody, compact_runs};
use crate::cache::CachedEntry;
use crate::edge::ApiError;
use crate::rate_limits::LimitPermit;
use crate::state::{Deployment, LiveState};

/// Longest client-chosen string (model name, session or trace id, user agent) kept as given.
pub(crate) const MAX_CLIENT_STRING: usize = 256;

/// `s` cut to at most `max` bytes, at a character boundary.
pub(crate) fn bounded(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Fields that decide the answer; their hash finds exact repeats without storing prompts.
const ANSWER_FIELDS: &[&str] = &[
    "messages",
    "input",
    "prompt",
    "query",
    "documents",
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
    // Anthropic's Messages API (`/v1/messages`): its system prompt and stop sequences.
    "system",
    "stop_sequences",
    "top_k",
    "frequency_penalty",
    "presence_penalty",
    // A mocked answer (`pipeline/test_hooks.rs`) is cached apart from the provider's.
    "mock_response",
];

/// Hex SHA-256 over the model group and the answer-deciding fields as the client wrote them,
/// whitespace between tokens left out (so two spellings of one request match). Computed once
/// per request, from the raw text: nothing is parsed or copied into values for it.
pub(crate) fn fingerprint(group: &str, body: &RequestBody) -> String {
    use sha2::{Digest, Sha256};
    // The canonical text is hashed as it is produced, not built first: for a 16 KB prompt the
    // copy cost more than the hash (SHA-NI), in a buffer the cache had not seen (`perf`).
    let mut hash = Sha256::new();
    // The group as a JSON object, so a group name cannot run into the first field.
    hash.update(b"{\"model\":");
    // Escaped straight into the hash (writing to a hash cannot fail).
    let _ = serde_json::to_writer(HashWriter(&mut hash), group);
    hash.update(b"}");
    for k in ANSWER_FIELDS {
        if let Some(raw) = body.raw(k) {
            hash.update(k.as_bytes());
            hash.update(b"=");
            compact_runs(raw, |run| hash.update(run));
            hash.update(b"\n");
        }
    }
    hex::encode(hash.finalize())
}

/// Writes into a hash (`sha2` 0.11 has no `io::Write` of its own).
struct HashWriter<'a>(&'a mut sha2::Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        sha2::Digest::update(self.0, buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What is known about a request before the upstream answers; becomes its [`Record`].
pub(crate) struct Draft {
    pub(crate) app: Arc<App>,
    pub(crate) started: Instant,
    pub(crate) record: Record,
    /// The deployment this request went to; told how it went when the record is finished.
    pub(crate) deployment: Option<Arc<Deployment>>,
    /// Upstream attempts so far, across retries and fallbacks (numbers each attempt's record).
    pub(crate) attempts: u32,
    /// Time spent on failed attempts and their backoff: the providers' time, not overhead.
    pub(crate) failed_upstream_ms: f64,
    /// max_tokens hygiene: the client's values and the clamp applied for the chosen deployment.
    pub(crate) max_tokens: crate::upstream::MaxTokens,
    /// The prompt's fields as sent (streams only): what a stream that breaks before the provider
    /// reports usage is accounted with (`input_estimate`). Kept as text and estimated only then,
    /// because nearly every stream ends with the provider's own usage.
    pub(crate) input_text: Option<Box<InputText>>,
    /// The record has been handed to the writer.
    pub(crate) closed: bool,
    /// Why the request ended if its handler is dropped before it answers; by default the
    /// client closed the connection.
    pub(crate) abandoned_because: Option<GatewayError>,
    /// The request's leave from stage 2 (its in-flight slot): held as long as the draft, so it
    /// is given back when the record is closed, also for streams and dropped requests.
    pub(crate) admission: Option<crate::pipeline::admit::Admission>,
    /// Who this request's cost is charged to (key, user, team, end user, …) and what was held
    /// against their budgets at admission: settled when the record closes.
    pub(crate) charges: crate::pipeline::charges::Charges,
    /// The request's share of its rate limits (stage 4c): its parallel slots, given back when
    /// the draft is dropped like the admission, and its token estimate, corrected by the tokens
    /// the record says it used. Shared with a workflow run's steps, whose tokens add up.
    pub(crate) limits: Option<Arc<LimitPermit>>,
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

/// The raw text of the request fields that make up the prompt: slices of the client's body,
/// shared, not copied.
pub(crate) struct InputText {
    messages: Option<ByteString>,
    tools: Option<ByteString>,
    response_format: Option<ByteString>,
}

impl Draft {
    /// Estimated prompt tokens of a stream (0 for other requests).
    pub(crate) fn input_estimate(&self) -> u64 {
        self.input_text.as_deref().map_or(0, |t| {
            tollgate_providers::context_window::estimate_input_tokens_raw(
                t.messages.as_deref(),
                t.tools.as_deref(),
                t.response_format.as_deref(),
            )
        })
    }

    pub(crate) fn new(app: Arc<App>, live: &LiveState, headers: &HeaderMap) -> Self {
        let request_id = new_request_id();
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
        Draft::starting(app, record)
    }

    /// A draft for `record`, starting now.
    fn starting(app: Arc<App>, record: Record) -> Draft {
        Draft {
            app,
            started: Instant::now(),
            record,
            deployment: None,
            attempts: 0,
            failed_upstream_ms: 0.0,
            max_tokens: Default::default(),
            input_text: None,
            charges: Default::default(),
            closed: false,
            abandoned_because: None,
            admission: None,
            limits: None,
        }
    }

    /// Who is calling, on the record (the key's alias and hash prefix, its user and team) and
    /// for the key's spend.
    pub(crate) fn identify(&mut self, caller: &crate::pipeline::authenticate::Caller) {
        self.record.key_alias = caller.key_alias.clone();
        if let Some(k) = &caller.key {
            self.record.key_hash = Some(k.token.chars().take(16).collect());
            self.record.user_id = k.user_id.clone();
            self.record.team_id = k.team_id.clone();
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
        let mut record = self.child_record(self.record.request_id.clone());
        record.stream = false;
        record.workflow = Some(workflow.to_string());
        record.step_role = Some(role.to_string());
        record.step_index = Some(index as u32);
        let mut step = Draft::starting(self.app.clone(), record);
        step.charges = self.charges.for_step();
        step.limits = self.limits.clone();
        step
    }

    /// One of the concurrent routes of a request naming several models (`pipeline/race.rs`):
    /// its own request id, the request's trace and client details, no charges or limits (the
    /// request's own draft carries them).
    pub(crate) fn contestant(&self, group: &str) -> Draft {
        let mut record = self.child_record(self.record.trace_id.clone());
        record.stream = self.record.stream;
        record.model_group = group.to_string();
        Draft::starting(self.app.clone(), record)
    }

    /// A record for work done on this request's behalf (a workflow step, a raced route): a new
    /// request id in `trace_id`, and this request's client, caller and prompt details.
    fn child_record(&self, trace_id: String) -> Record {
        Record {
            request_id: new_request_id(),
            trace_id,
            session_id: self.record.session_id.clone(),
            start_time: Utc::now(),
            user_agent: self.record.user_agent.clone(),
            key_alias: self.record.key_alias.clone(),
            key_hash: self.record.key_hash.clone(),
            user_id: self.record.user_id.clone(),
            team_id: self.record.team_id.clone(),
            end_user: self.record.end_user.clone(),
            endpoint: self.record.endpoint.clone(),
            config_version: self.record.config_version,
            prompt_sha256: self.record.prompt_sha256.clone(),
            source: "tollgate".into(),
            ..Record::default()
        }
    }

    /// What the record says if this request is dropped before it answers (e.g. cut short by a
    /// workflow step's timeout).
    pub(crate) fn abandon_as(&mut self, e: GatewayError) {
        self.abandoned_because = Some(e);
    }

    /// The gateway's own share of `elapsed_ms`: what is left after the wait on the answering
    /// upstream (`upstream_ms`) and on failed attempts and their backoff.
    pub(crate) fn gateway_ms(&self, elapsed_ms: f64, upstream_ms: f64) -> f64 {
        (elapsed_ms - upstream_ms - self.failed_upstream_ms).max(0.0)
    }

    pub(crate) fn elapsed_ms(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1000.0
    }

    /// Fills the per-request fields the body carries.
    pub(crate) fn read_body(&mut self, body: &RequestBody) {
        if self.record.session_id.is_none() {
            // A `litellm_session_id` of another type hides the metadata's, as before.
            let session = if body.contains("litellm_session_id") {
                body.get::<String>("litellm_session_id")
            } else {
                body.get::<Value>("metadata")
                    .and_then(|m| m.get("session_id").and_then(Value::as_str).map(str::to_string))
            };
            self.record.session_id = session.map(|s| bounded(&s, MAX_CLIENT_STRING).to_string());
        }
        if let Some(t) = body.get::<String>("litellm_trace_id") {
            self.record.trace_id = bounded(&t, MAX_CLIENT_STRING).to_string();
        }
        self.record.stream = body.get::<bool>("stream").unwrap_or(false);
        self.record.max_tokens = if body.contains("max_completion_tokens") {
            body.get::<u64>("max_completion_tokens")
        } else {
            body.get::<u64>("max_tokens")
        };
        self.record.prompt_sha256 = Some(fingerprint(&self.record.model_group, body));
        if self.record.stream {
            self.input_text = Some(Box::new(InputText {
                messages: body.field("messages").cloned(),
                tools: body.field("tools").cloned(),
                response_format: body.field("response_format").cloned(),
            }));
        }
    }

    pub(crate) fn use_deployment(&mut self, d: &Arc<Deployment>) {
        self.record.model_group = d.model_group.clone();
        self.record.model = d.model.clone();
        self.record.provider = d.route.provider_name.clone();
        self.record.api_base = Some(d.route.api_base.clone());
        self.deployment = Some(d.clone());
    }

    pub(crate) fn set_usage(&mut self, parsed: &ParsedUsage, price: Option<&tollgate_core::Price>) {
        self.record.set_usage(&parsed.usage);
        self.record.set_cost(price.and_then(|p| p.cost(&parsed.usage)));
        self.record.reported_cost_usd = parsed.reported_cost_usd;
        self.record.cached_tokens_reported = parsed.cache_reported;
    }

    /// What a cache hit on this answer will replay and account.
    pub(crate) fn cache_entry(&self, ttl_s: f64, body: Option<String>, chunks: Vec<String>) -> CachedEntry {
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

    pub(crate) fn close(&mut self, status: u16, upstream_ms: Option<f64>, error: Option<&GatewayError>) -> Commit {
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
            // Dropped while waiting on `d` (cancelled): the record names what it waited on.
            if self.record.model.is_empty() {
                self.record.model = d.model.clone();
                self.record.provider = d.route.provider_name.clone();
                self.record.api_base = Some(d.route.api_base.clone());
            }
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
        if let Some(l) = &self.limits {
            l.used_tokens(self.record.prompt_tokens, self.record.completion_tokens);
        }
        // Every way a request ends closes its record, so every hold always comes back.
        let cost = self.record.cost_usd.unwrap_or(0.0);
        let model = Some(self.record.model_group.as_str()).filter(|m| !m.is_empty());
        self.charges.settle(&self.app.keys, model, cost);
        self.app.writer.submit(std::mem::take(&mut self.record))
    }

    /// Records a request that failed before reaching an upstream, and answers it.
    pub(crate) fn fail(self, e: GatewayError) -> Response {
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
pub(crate) async fn committed(commit: Commit) {
    if let Err(e) = commit.wait().await {
        tracing::debug!("answering before the record is committed: {e}");
    }
}

pub(crate) fn set_id_headers(h: &mut HeaderMap, request_id: &str, group: &str) {
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

/// A new request id: a time-ordered UUID (version 7). Records are indexed by request and trace id;
/// random ids land each new record on a random page of both indexes, so every batch the writer
/// commits rewrites a page per record per index. Ids that grow with time append instead.
fn new_request_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_core::record::prompt_sha256;

    #[test]
    fn fingerprint_ignores_user_and_stream_but_not_messages() {
        let body = |s: &str| RequestBody::parse(s.as_bytes()).unwrap();
        let a = body(r#"{"model":"g","messages":[{"role":"user","content":"hi"}],"stream":true,"user":"u1"}"#);
        let b = body(r#"{"model":"g","messages":[{"role":"user","content":"hi"}],"user":"u2"}"#);
        let c = body(r#"{"model":"g","messages":[{"role":"user","content":"ho"}]}"#);
        assert_eq!(fingerprint("g", &a), fingerprint("g", &b));
        assert_ne!(fingerprint("g", &a), fingerprint("g", &c));
        assert_ne!(fingerprint("g", &a), fingerprint("h", &a));
    }

    #[test]
    fn fingerprint_ignores_whitespace_between_tokens_but_not_inside_strings() {
        let body = |s: &str| RequestBody::parse(s.as_bytes()).unwrap();
        let compact = body(r#"{"model":"g","messages":[{"role":"user","content":"hi there"}],"temperature":0.5}"#);
        let spaced = body(
            "{\"model\": \"g\",\n \"temperature\": 0.5, \"messages\": [ {\"role\": \"user\", \"content\": \"hi there\"} ]}",
        );
        let inner = body(r#"{"model":"g","messages":[{"role":"user","content":"hi  there"}],"temperature":0.5}"#);
        assert_eq!(fingerprint("g", &compact), fingerprint("g", &spaced));
        assert_ne!(fingerprint("g", &compact), fingerprint("g", &inner));
    }

    #[test]
    fn fingerprint_is_the_sha256_of_the_group_and_the_compacted_fields_in_their_order() {
        // Records of earlier versions carry this value: the canonical text must not change.
        let body = RequestBody::parse(
            br#"{"temperature": 0.5, "messages": [ {"role": "user", "content": "hi  there"} ], "user": "u"}"#,
        )
        .unwrap();
        let canonical = "{\"model\":\"g\"}messages=[{\"role\":\"user\",\"content\":\"hi  there\"}]\ntemperature=0.5\n";
        assert_eq!(fingerprint("g", &body), prompt_sha256(canonical.as_bytes()));
    }

    #[test]
    fn bounded_cuts_at_a_char_boundary() {
        assert_eq!(bounded("abc", 5), "abc");
        assert_eq!(bounded("abcdef", 3), "abc");
        // "é" is two bytes: a cut in its middle backs off to before it.
        assert_eq!(bounded("aé", 2), "a");
    }

    #[test]
    fn request_ids_are_uuids_that_sort_in_the_order_they_were_made() {
        let ids: Vec<String> = (0..200).map(|_| new_request_id()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(sorted, ids, "ids made later sort later");
        for id in &ids {
            let parsed = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(parsed.get_version_num(), 7, "{id}");
        }
    }
}
