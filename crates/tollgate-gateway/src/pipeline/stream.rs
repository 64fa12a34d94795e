//! Stage 7 for a stream: the provider's events relayed as OpenAI chunks as they arrive
//! (translated for Gemini and Anthropic), usage read from the stream and priced, the answer's
//! chunks stored in the response cache when asked, and the record closed exactly once — when
//! the stream ends, breaks, is cut at shutdown, or the client leaves.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use futures::StreamExt;
use serde_json::Value;
use tollgate_core::redact;
use tollgate_core::{ErrorKind, Fault, GatewayError, Record, RecordStatus};
use tollgate_providers::sse::{carries_only_text, inspect_chunk};
use tollgate_providers::translate::StreamTranslator;
use tollgate_providers::usage::{ParsedUsage, normalize_openai_usage};
use tollgate_store::{Commit, RecordDurability};

use crate::cache::{RequestCache, ResponseCache};
use crate::edge::{ResponseTags, tag_response};
use crate::pipeline::draft::{Draft, committed};
use crate::pipeline::egress::{Egress, chunk_out, error_out};
use crate::pipeline::route::{Events, timeout_error};
use crate::state::Deployment;

/// Bytes per token when a token count must be estimated (see `estimate_input_tokens`).
const BYTES_PER_TOKEN: u64 = 3;

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
    /// Chunks relayed without being parsed (text only, see `carries_only_text`): measured only
    /// if the stream ends before the provider reports usage.
    unmeasured: Vec<String>,
    unmeasured_bytes: usize,
    /// Prices the estimate.
    deployment: Arc<Deployment>,
}

/// Unmeasured chunks kept before they are measured anyway, so a very long answer's chunks are
/// not all held until its end.
const UNMEASURED_LIMIT: usize = 1 << 20;

impl StreamGuard {
    /// Keeps a chunk relayed unparsed, for an estimate that will most likely never be needed.
    fn defer(&mut self, data: String) {
        self.unmeasured_bytes += data.len();
        self.unmeasured.push(data);
        if self.unmeasured_bytes > UNMEASURED_LIMIT {
            self.measure_deferred();
        }
    }

    fn measure_deferred(&mut self) {
        for data in self.unmeasured.drain(..) {
            if let Some(info) = inspect_chunk(&data) {
                self.text_bytes += info.text_bytes;
                self.reasoning_bytes += info.reasoning_bytes;
            }
        }
        self.unmeasured_bytes = 0;
    }

    /// The provider reported usage: no estimate will be made.
    fn forget_deferred(&mut self) {
        self.unmeasured.clear();
        self.unmeasured_bytes = 0;
    }

    /// A stream that ended before the provider reported usage is still billed by the provider
    /// for what it generated: account what was relayed, marked as an estimate (the same
    /// bytes-per-token heuristic as the max_tokens clamp).
    fn estimate_usage(&mut self, draft: &mut Draft) {
        let r = &draft.record;
        if r.prompt_tokens > 0 || r.completion_tokens > 0 {
            return;
        }
        self.measure_deferred();
        let usage = tollgate_core::Usage {
            input: draft.input_estimate(),
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
pub(crate) fn coalesce(
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
    /// Rewrites each OpenAI chunk before it is read and relayed (a text completion answered
    /// by chat: `pipeline/text_completion.rs`).
    pub reshape: Option<fn(String) -> String>,
    /// Writes the client's stream in another API's shape (`pipeline/messages.rs`).
    pub egress: Option<Box<dyn Egress>>,
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn respond(
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
    let reshape = extras.reshape;
    let mut egress = extras.egress;
    // An egress reads the usage chunk whether or not the client asked for it.
    let client_wants_usage = client_wants_usage || egress.is_some();
    // Gemini and Anthropic events become OpenAI chunks; the OpenAI family has no translator.
    let mut translator = StreamTranslator::for_route(&deployment.route, &group);
    // Re-serialising every chunk costs a little; skip it when the names already agree
    // (translated chunks already carry the group's name).
    let rename_model = translator.is_none() && deployment.route.upstream_model != group;
    // An event relayed unchanged can go out as the upstream's own bytes (`data: {data}\n\n`)
    // unless the client's events are written in another shape (an egress, a reshaped chunk):
    // the same bytes, without an allocation and a copy per event.
    let relay_as_sent = egress.is_none() && reshape.is_none();
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
        unmeasured: Vec::new(),
        unmeasured_bytes: 0,
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
        // Both are made once and kept pinned across events. Made afresh per event (a `select!`
        // over a new `wait_for` and a new `timeout`), about half the events of every stream
        // (`select!` starts at a random branch) locked the one shutdown channel all serving
        // threads share to wait on it and again to stop waiting, and each event built a timer.
        let cut_now = cut.wait_for(|cut| *cut);
        tokio::pin!(cut_now);
        let deadline = tokio::time::sleep_until(match sent.checked_add(stream_timeout) {
            Some(at) => at.into(),
            // A timeout past what the clock can hold: never, as `tokio::time::timeout` has it.
            None => tokio::time::Instant::now() + std::time::Duration::from_secs(86_400 * 365 * 30),
        });
        tokio::pin!(deadline);
        loop {
            if upstream_closed {
                break;
            }
            let waited = tokio::select! {
                biased;
                // The shutdown grace period is over: end the stream truthfully and record it.
                _ = &mut cut_now => None,
                n = events.next() => Some(Ok(n)),
                () = &mut deadline => Some(Err(())),
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
                    yield Ok::<Bytes, std::io::Error>(error_out(&mut egress, &e));
                    guard.complete(Some(e));
                    return;
                }
                Some(Ok(n)) => n,
                Some(Err(_)) => {
                    let e = timeout_error(&deployment, stream_timeout);
                    yield Ok::<Bytes, std::io::Error>(error_out(&mut egress, &e));
                    guard.complete(Some(e));
                    return;
                }
            };
            let t = Instant::now();
            // The upstream's own bytes for the event, when it may be relayed as it came.
            let mut raw: Option<Bytes> = None;
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
                        redact::text(&format!("{} stream broke midway: {e}", deployment.route.provider_name.as_str())),
                    ).with_code("upstream_stream_broken");
                    yield Ok(error_out(&mut egress, &err));
                    guard.complete(Some(err));
                    return;
                }
                Some(Ok(ev)) => {
                    // An egress that relays the upstream's own events sends them first, as
                    // they came; the translation below is then only read for the record.
                    if let Some(raw) = egress.as_mut().and_then(|e| e.upstream(&ev.event, &ev.data)) {
                        yield Ok(raw);
                    }
                    match translator.as_mut() {
                    None => {
                        raw = ev.raw.filter(|_| relay_as_sent);
                        (Some(ev.data), Vec::new())
                    }
                    Some(tr) => {
                        let out = tr.on_event(&ev.event, &ev.data);
                        if let Some(message) = tr.error() {
                            let err = GatewayError::new(ErrorKind::Upstream, message.to_string())
                                .with_code("upstream_stream_error");
                            yield Ok(error_out(&mut egress, &err));
                            guard.complete(Some(err));
                            return;
                        }
                        (None, out)
                    }
                    }
                }
            };
            // The first payload's time runs from the event's arrival, so a one-payload event
            // (every OpenAI-family event) reads the clock twice, not four times: on this VM the
            // clock reads were ≈ 1.5 % of a 16 KB stream's CPU (perf, session 9).
            let mut arrived = Some(t);
            for data in relayed.into_iter().chain(translated) {
                let t = arrived.take().unwrap_or_else(Instant::now);
                let raw = raw.take();
                let data = match reshape {
                    Some(f) if data != "[DONE]" => f(data),
                    _ => data,
                };
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
                        if let Some(b) = chunk_out(&mut egress, "[DONE]") {
                            yield Ok(b);
                        }
                        return;
                    }
                    if let Some(b) = chunk_out(&mut egress, "[DONE]") {
                        yield Ok(b);
                    }
                    continue;
                }
                // After the first token, a chunk of plain text (the bulk of a long answer)
                // is relayed as is and measured only if the stream ends without usage.
                let first_token_seen = guard.draft.as_ref().is_none_or(|d| d.record.ttft_ms.is_some());
                if first_token_seen && !rename_model && carries_only_text(&data) {
                    if let Some(c) = collected.as_mut() {
                        c.push(data.clone());
                    }
                    let out = raw.or_else(|| chunk_out(&mut egress, &data));
                    guard.defer(data);
                    guard.gateway_ms += t.elapsed().as_secs_f64() * 1000.0;
                    if let Some(out) = out {
                        yield Ok(out);
                    }
                    continue;
                }
                let out = match inspect_chunk(&data) {
                    None => {
                        if let Some(c) = collected.as_mut() {
                            c.push(data.clone());
                        }
                        raw.or_else(|| chunk_out(&mut egress, &data))
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
                            guard.forget_deferred();
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
                            let out = if !info.choices_empty || client_wants_usage {
                                chunk_out(&mut egress, &text)
                            } else {
                                None
                            };
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
                            let out = chunk_out(&mut egress, &text);
                            if let Some(c) = collected.as_mut() {
                                c.push(text);
                            }
                            out
                        } else {
                            if let Some(c) = collected.as_mut() {
                                c.push(data.clone());
                            }
                            raw.or_else(|| chunk_out(&mut egress, &data))
                        }
                    }
                };
                guard.gateway_ms += t.elapsed().as_secs_f64() * 1000.0;
                if let Some(b) = out {
                    yield Ok(b);
                }
            }
            // An event that stood for no payload (a translator's ping): its time still counts.
            if let Some(t) = arrived {
                guard.gateway_ms += t.elapsed().as_secs_f64() * 1000.0;
            }
        }
        if saw_done {
            guard.complete(None);
        } else {
            // A stream that ends without [DONE] is truncated: say so instead of ending cleanly.
            let err = GatewayError::new(
                ErrorKind::Upstream,
                format!("{} closed the stream before [DONE]", deployment.route.provider_name.as_str()),
            ).with_code("upstream_stream_truncated");
            yield Ok(error_out(&mut egress, &err));
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
