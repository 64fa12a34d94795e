//! The HTTP surface: routing by path suffix, failure injection, delays, and OpenAI-style errors.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::MockConfig;
use crate::chat::{Answer, ChatRequest, render_completion, render_stream};
use crate::embeddings::{self, EmbeddingRequest};
use crate::failure::{FailMode, parse_fail_header, scheduled_failure};
use crate::measure::{MeasureMemo, PromptKey, PromptMeasure};
use crate::prompt_cache::PromptCache;
use crate::{audio, images, moderation, native, rerank, text_completion};

/// Benchmarks send long prompts; axum's 2 MB default would turn them into 413s.
const BODY_LIMIT: usize = 64 * 1024 * 1024;

/// How long a `timeout` failure keeps the client waiting: far past any sane client timeout.
const HANG: Duration = Duration::from_secs(600);

/// Listed by `GET /v1/models` besides every model the mock has been asked for.
const LISTED_MODELS: [&str; 4] = [
    "gpt-4o-mini",
    "deepseek-chat",
    "deepseek-reasoner",
    "grok-4-1-fast-reasoning",
];

struct MockState {
    config: MockConfig,
    /// Ends when the server that owns this state stops, so hung (`timeout`) requests end with it
    /// instead of outliving the server for minutes.
    server_stopped: Option<watch::Receiver<()>>,
    /// Requests per model as sent (`/mock/stats`); also the `n` of the failure schedule.
    requests: Mutex<HashMap<String, u64>>,
    prompt_cache: Mutex<PromptCache>,
    measures: Mutex<MeasureMemo>,
    /// The last request a provider endpoint received (`GET /mock/last_request`), so a test can
    /// check what a gateway sent on. Kept as received and read as JSON only when asked for:
    /// parsing every body would cost the mock more than answering it.
    last_request: Mutex<Option<Received>>,
}

/// A request as a provider endpoint received it.
struct Received {
    path: String,
    anthropic_version: Option<String>,
    anthropic_beta: Option<String>,
    body: Bytes,
}

/// Poisoning only means another request panicked mid-update of a counter; the data is still
/// usable, and a mock that stops answering would be worse.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MockState {
    /// Counts a request for `model` and returns its 1-based number since the last reset.
    fn count(&self, model: &str) -> u64 {
        let mut requests = lock(&self.requests);
        if let Some(n) = requests.get_mut(model) {
            *n += 1;
            return *n;
        }
        requests.insert(model.to_string(), 1);
        1
    }

    /// The answer to a chat request, with its prompt measured once per distinct prompt (and
    /// outside the lock, so a new long prompt does not hold up the other requests).
    fn answer(&self, req: &ChatRequest) -> Answer {
        let key = PromptKey::of(&req.model, req.turns());
        let known = lock(&self.measures).get(key);
        let measure = known.unwrap_or_else(|| {
            let measure = PromptMeasure::of(&req.model, req.turns());
            lock(&self.measures).remember(key, measure);
            measure
        });
        Answer::for_measured_request(req, measure, |prefix| {
            lock(&self.prompt_cache).check_and_remember(prefix)
        })
    }
}

/// `server_stopped`: a channel whose sender the server holds while it runs.
pub(crate) fn router(config: MockConfig, server_stopped: Option<watch::Receiver<()>>) -> Router {
    let state = Arc::new(MockState {
        config,
        server_stopped,
        requests: Mutex::new(HashMap::new()),
        prompt_cache: Mutex::new(PromptCache::default()),
        measures: Mutex::new(MeasureMemo::default()),
        last_request: Mutex::new(None),
    });
    Router::new()
        .route("/mock/stats", get(stats))
        .route("/mock/reset", post(reset))
        .route("/mock/last_request", get(last_request))
        // api_base may carry any path (`http://mock/anything/v1`), so endpoints are matched by
        // how the path ends rather than by fixed routes.
        .fallback(dispatch)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

async fn stats(State(state): State<Arc<MockState>>) -> Response {
    let counts: BTreeMap<String, u64> = lock(&state.requests).iter().map(|(k, v)| (k.clone(), *v)).collect();
    axum::Json(counts).into_response()
}

/// Path, Anthropic's headers and the body (JSON, else null) of the last request; null before any.
async fn last_request(State(state): State<Arc<MockState>>) -> Response {
    let shown = match &*lock(&state.last_request) {
        None => Value::Null,
        Some(r) => json!({
            "path": r.path,
            "headers": {"anthropic-version": r.anthropic_version, "anthropic-beta": r.anthropic_beta},
            "body": serde_json::from_slice::<Value>(&r.body).unwrap_or(Value::Null),
        }),
    };
    axum::Json(shown).into_response()
}

/// Keeps what a provider endpoint was sent (the body is shared, not copied).
fn remember(state: &MockState, path: &str, headers: &HeaderMap, body: &Bytes) {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    *lock(&state.last_request) = Some(Received {
        path: path.to_string(),
        anthropic_version: header("anthropic-version"),
        anthropic_beta: header("anthropic-beta"),
        body: body.clone(),
    });
}

async fn reset(State(state): State<Arc<MockState>>) -> Response {
    lock(&state.requests).clear();
    lock(&state.prompt_cache).clear();
    axum::Json(json!({"reset": true})).into_response()
}

async fn dispatch(
    State(state): State<Arc<MockState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().trim_end_matches('/');
    let (endpoint_method, endpoint) = if let Some((model, stream)) = gemini_method(path) {
        (Method::POST, Endpoint::Gemini { model, stream })
    } else if path.ends_with("/v1/messages/count_tokens") {
        (Method::POST, Endpoint::AnthropicCountTokens)
    } else if path.ends_with("/v1/messages") {
        (Method::POST, Endpoint::Anthropic)
    } else if path.ends_with("/chat/completions") {
        (Method::POST, Endpoint::Chat)
    } else if path.ends_with("/completions") {
        (Method::POST, Endpoint::Completions)
    } else if path.ends_with("/moderations") {
        (Method::POST, Endpoint::Moderations)
    } else if path.ends_with("/images/generations") {
        (Method::POST, Endpoint::Images)
    } else if path.ends_with("/audio/transcriptions") {
        (Method::POST, Endpoint::Transcriptions)
    } else if path.ends_with("/rerank") {
        (Method::POST, Endpoint::Rerank)
    } else if path.ends_with("/embeddings") {
        (Method::POST, Endpoint::Embeddings)
    } else if path.ends_with("/models") {
        (Method::GET, Endpoint::Models)
    } else {
        return openai_error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            &format!(
                "the mock serves */chat/completions, */completions, */embeddings, */moderations, \
                 */images/generations, */audio/transcriptions, */rerank, */models, */models/M:generateContent, \
                 */models/M:streamGenerateContent, */v1/messages and */v1/messages/count_tokens, not {path}"
            ),
        );
    };
    if method != endpoint_method {
        return openai_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            &format!("{path} takes {endpoint_method}, not {method}"),
        );
    }
    if method == Method::POST {
        remember(&state, path, &headers, &body);
    }
    match endpoint {
        Endpoint::AnthropicCountTokens => anthropic_count_tokens(&headers, &body),
        Endpoint::Chat => chat(&state, &headers, &body).await,
        Endpoint::Embeddings => embed(&state, &headers, &body).await,
        Endpoint::Models => models(&state),
        Endpoint::Gemini { model, stream } => gemini(&state, &headers, &model, stream, &body).await,
        Endpoint::Anthropic => anthropic(&state, &headers, &body).await,
        Endpoint::Completions => completions(&state, &headers, &body).await,
        Endpoint::Moderations => moderations(&state, &headers, &body).await,
        Endpoint::Images => images(&state, &headers, &body).await,
        Endpoint::Transcriptions => transcriptions(&state, &headers, &body).await,
        Endpoint::Rerank => rerank(&state, &headers, &body).await,
    }
}

enum Endpoint {
    Chat,
    Completions,
    Moderations,
    Images,
    Transcriptions,
    Rerank,
    Embeddings,
    Models,
    Gemini { model: String, stream: bool },
    Anthropic,
    AnthropicCountTokens,
}

/// `…/models/{model}:generateContent` or `…:streamGenerateContent` → the model and whether it
/// streams.
fn gemini_method(path: &str) -> Option<(String, bool)> {
    let (_, tail) = path.rsplit_once("/models/")?;
    let (model, method) = tail.split_once(':')?;
    match method {
        "generateContent" => Some((model.to_string(), false)),
        "streamGenerateContent" => Some((model.to_string(), true)),
        _ => None,
    }
}

fn json_status(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// Gemini: the key in `x-goog-api-key`; streams only with `alt=sse` (the gateway's form).
async fn gemini(state: &MockState, headers: &HeaderMap, model: &str, stream: bool, body: &[u8]) -> Response {
    if headers.get("x-goog-api-key").is_none() {
        return json_status(
            StatusCode::FORBIDDEN,
            native::gemini_error(
                403,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
            ),
        );
    }
    let value: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return json_status(
                StatusCode::BAD_REQUEST,
                native::gemini_error(400, "INVALID_ARGUMENT", &format!("Invalid JSON payload received. {e}")),
            );
        }
    };
    let (req, include_thoughts) = match native::gemini_request(model, &value) {
        Ok(r) => r,
        Err(m) => {
            return json_status(
                StatusCode::BAD_REQUEST,
                native::gemini_error(400, "INVALID_ARGUMENT", &m),
            );
        }
    };
    let sabotage = match before_answer(state, headers, model).await {
        Ok(s) => s,
        Err(failure) => return failure,
    };
    let answer = state.answer(&req);
    if stream {
        match native::render_gemini_stream(&answer, model, include_thoughts) {
            Ok(frames) => sse_response(state, frames, sabotage),
            Err(e) => internal_error(&e.to_string()),
        }
    } else {
        match native::render_gemini(&answer, model, include_thoughts) {
            Ok(body) => answer_response(state, body, sabotage),
            Err(e) => internal_error(&e.to_string()),
        }
    }
}

/// Anthropic: the key in `x-api-key` and an `anthropic-version`, both required.
async fn anthropic(state: &MockState, headers: &HeaderMap, body: &[u8]) -> Response {
    if headers.get("x-api-key").is_none() {
        return json_status(
            StatusCode::UNAUTHORIZED,
            native::anthropic_error("authentication_error", "x-api-key header is required"),
        );
    }
    if headers.get("anthropic-version").is_none() {
        return json_status(
            StatusCode::BAD_REQUEST,
            native::anthropic_error("invalid_request_error", "anthropic-version: header is required"),
        );
    }
    let value: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return json_status(
                StatusCode::BAD_REQUEST,
                native::anthropic_error("invalid_request_error", &e.to_string()),
            );
        }
    };
    let (req, caching, stream) = match native::anthropic_request(&value) {
        Ok(r) => r,
        Err(m) => {
            return json_status(
                StatusCode::BAD_REQUEST,
                native::anthropic_error("invalid_request_error", &m),
            );
        }
    };
    let sabotage = match before_answer(state, headers, &req.model).await {
        Ok(s) => s,
        Err(failure) => return failure,
    };
    let answer = state.answer(&req);
    if stream {
        match native::render_anthropic_stream(&answer, &req.model, caching) {
            Ok(frames) => sse_response(state, frames, sabotage),
            Err(e) => internal_error(&e.to_string()),
        }
    } else {
        match native::render_anthropic(&answer, &req.model, caching) {
            Ok(body) => answer_response(state, body, sabotage),
            Err(e) => internal_error(&e.to_string()),
        }
    }
}

/// Anthropic's `count_tokens`: the prompt tokens the same request to `/v1/messages` would
/// report (input, cache reads and writes together), with no answer and nothing counted.
fn anthropic_count_tokens(headers: &HeaderMap, body: &[u8]) -> Response {
    if headers.get("x-api-key").is_none() {
        return json_status(
            StatusCode::UNAUTHORIZED,
            native::anthropic_error("authentication_error", "x-api-key header is required"),
        );
    }
    let mut value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return json_status(
                StatusCode::BAD_REQUEST,
                native::anthropic_error("invalid_request_error", &e.to_string()),
            );
        }
    };
    // count_tokens takes no `max_tokens`; the reader of a Messages request needs one.
    if let Some(o) = value.as_object_mut() {
        o.entry("max_tokens").or_insert(json!(1));
    }
    match native::anthropic_request(&value) {
        Ok((req, _, _)) => {
            let answer = Answer::for_request(&req, |_| false);
            axum::Json(json!({"input_tokens": answer.prompt_tokens})).into_response()
        }
        Err(m) => json_status(
            StatusCode::BAD_REQUEST,
            native::anthropic_error("invalid_request_error", &m),
        ),
    }
}

fn invalid_json(e: &serde_json::Error) -> Response {
    openai_error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        &format!("We could not parse the JSON body of your request: {e}"),
    )
}

/// Counts the request, then applies the delay and any failure due. `Err` is the response to send
/// instead of an answer; `Ok(Some(..))` a fault to apply to the answer's body as it is sent.
async fn before_answer(state: &MockState, headers: &HeaderMap, model: &str) -> Result<Option<FailMode>, Response> {
    let n = state.count(model);
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let failure = header("x-mock-fail")
        .and_then(parse_fail_header)
        .or_else(|| scheduled_failure(&state.config.failures, model, n));
    let delay_ms = header("x-mock-delay-ms")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(state.config.delay_ms);
    if delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    }
    match failure {
        None => Ok(None),
        Some(mode @ (FailMode::Garbage | FailMode::Reset | FailMode::Stall)) => Ok(Some(mode)),
        Some(FailMode::Timeout) => {
            hang(state).await;
            Err(openai_error(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                "mock injected timeout",
            ))
        }
        Some(FailMode::Status(status)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let kind = match status.as_u16() {
                429 => "rate_limit_error",
                400..=499 => "invalid_request_error",
                _ => "server_error",
            };
            let mut response = openai_error(status, kind, "mock injected failure");
            if status == StatusCode::TOO_MANY_REQUESTS {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Err(response)
        }
    }
}

/// Waits like a hung upstream: for a long time, or until the server stops.
async fn hang(state: &MockState) {
    hang_until(state.server_stopped.clone()).await;
}

async fn hang_until(server_stopped: Option<watch::Receiver<()>>) {
    let stopped = async {
        match server_stopped {
            // `changed` fails once the sender is dropped, i.e. the server stopped.
            Some(mut rx) => while rx.changed().await.is_ok() {},
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = tokio::time::sleep(HANG) => {}
        () = stopped => {}
    }
}

/// The body of a broken answer: `head` is sent, then the connection is reset or stalls.
fn broken_body(state: &MockState, head: Bytes, mode: FailMode) -> Body {
    let stopped = state.server_stopped.clone();
    let tail = async move {
        if mode == FailMode::Stall {
            hang_until(stopped).await;
        } else {
            // Give the head time to reach the client, so the reset comes mid-body as it would
            // from a crashing provider, not before the first byte.
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        // An error from the body stream makes the server abort the connection mid-body.
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "mock injected reset",
        ))
    };
    Body::from_stream(futures::stream::iter([Ok(head)]).chain(futures::stream::once(tail)))
}

async fn chat(state: &MockState, headers: &HeaderMap, body: &[u8]) -> Response {
    let req: ChatRequest = match serde_json::from_slice(body) {
        Ok(req) => req,
        Err(e) => return invalid_json(&e),
    };
    let sabotage = match before_answer(state, headers, &req.model).await {
        Ok(s) => s,
        Err(failure) => return failure,
    };
    let answer = state.answer(&req);
    let created = unix_now();
    if req.is_stream() {
        match render_stream(&answer, &req.model, created, req.include_usage()) {
            Ok(frames) => sse_response(state, frames, sabotage),
            Err(e) => internal_error(&e.to_string()),
        }
    } else {
        match render_completion(&answer, &req.model, created) {
            Ok(body) => answer_response(state, body, sabotage),
            Err(e) => internal_error(&e.to_string()),
        }
    }
}

async fn embed(state: &MockState, headers: &HeaderMap, body: &[u8]) -> Response {
    let req: EmbeddingRequest = match serde_json::from_slice(body) {
        Ok(req) => req,
        Err(e) => return invalid_json(&e),
    };
    let sabotage = match before_answer(state, headers, &req.model).await {
        Ok(s) => s,
        Err(failure) => return failure,
    };
    match embeddings::render(&req) {
        Ok(body) => answer_response(state, body, sabotage),
        Err(message) => openai_error(StatusCode::BAD_REQUEST, "invalid_request_error", &message),
    }
}

fn rendered(state: &MockState, out: Result<Vec<u8>, String>, sabotage: Option<FailMode>) -> Response {
    match out {
        Ok(body) => answer_response(state, body, sabotage),
        Err(message) => openai_error(StatusCode::BAD_REQUEST, "invalid_request_error", &message),
    }
}

async fn completions(state: &MockState, headers: &HeaderMap, body: &[u8]) -> Response {
    let req: text_completion::CompletionRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return invalid_json(&e),
    };
    let sabotage = match before_answer(state, headers, &req.model).await {
        Ok(s) => s,
        Err(failure) => return failure,
    };
    if req.stream {
        return match text_completion::render_stream(&req, unix_now()) {
            Ok(frames) => {
                let frames = frames
                    .into_iter()
                    .map(|f| Bytes::from(format!("data: {f}\n\n")))
                    .collect();
                sse_response(state, frames, sabotage)
            }
            Err(message) => openai_error(StatusCode::BAD_REQUEST, "invalid_request_error", &message),
        };
    }
    rendered(state, text_completion::render(&req, unix_now()), sabotage)
}

async fn moderations(state: &MockState, headers: &HeaderMap, body: &[u8]) -> Response {
    let req: moderation::ModerationRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return invalid_json(&e),
    };
    match before_answer(state, headers, &req.model).await {
        Ok(sabotage) => rendered(state, moderation::render(&req), sabotage),
        Err(failure) => failure,
    }
}

async fn images(state: &MockState, headers: &HeaderMap, body: &[u8]) -> Response {
    let req: images::ImageRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return invalid_json(&e),
    };
    match before_answer(state, headers, &req.model).await {
        Ok(sabotage) => rendered(state, images::render(&req, unix_now()), sabotage),
        Err(failure) => failure,
    }
}

async fn rerank(state: &MockState, headers: &HeaderMap, body: &[u8]) -> Response {
    let req: rerank::RerankRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return invalid_json(&e),
    };
    match before_answer(state, headers, &req.model).await {
        Ok(sabotage) => rendered(state, rerank::render(&req), sabotage),
        Err(failure) => failure,
    }
}

async fn transcriptions(state: &MockState, headers: &HeaderMap, body: &[u8]) -> Response {
    let model = audio::model(body).unwrap_or_default();
    if let Err(failure) = before_answer(state, headers, &model).await {
        return failure;
    }
    match audio::render(body) {
        Ok((content_type, out)) => {
            ([(header::CONTENT_TYPE, HeaderValue::from_static(content_type))], out).into_response()
        }
        Err(message) => openai_error(StatusCode::BAD_REQUEST, "invalid_request_error", &message),
    }
}

fn models(state: &MockState) -> Response {
    let mut ids: Vec<String> = LISTED_MODELS.iter().map(|m| m.to_string()).collect();
    ids.extend(lock(&state.requests).keys().cloned());
    ids.sort();
    ids.dedup();
    let data: Vec<_> = ids
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "tollgate-mock"}))
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn json_response(body: Vec<u8>) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body,
    )
        .into_response()
}

/// A plain answer, or the broken version of it that `sabotage` asks for.
fn answer_response(state: &MockState, body: Vec<u8>, sabotage: Option<FailMode>) -> Response {
    match sabotage {
        None => json_response(body),
        Some(FailMode::Garbage) => {
            // Valid JSON cut short: what a provider's crashed worker or a proxy's error page gives.
            let cut = body.len() / 2;
            json_response(body.get(..cut).unwrap_or_default().to_vec())
        }
        Some(mode) => {
            let cut = body.len() / 2;
            let head = Bytes::from(body.get(..cut).unwrap_or_default().to_vec());
            (
                [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                broken_body(state, head, mode),
            )
                .into_response()
        }
    }
}

fn sse_response(state: &MockState, frames: Vec<Bytes>, sabotage: Option<FailMode>) -> Response {
    let chunk_delay_ms = state.config.chunk_delay_ms;
    let body = if let Some(mode) = sabotage {
        // Half the events (at least one), then the fault; never `[DONE]`.
        let keep = (frames.len() / 2).max(1);
        let mut head: Vec<Bytes> = frames.into_iter().take(keep).collect();
        if mode == FailMode::Garbage {
            head.push(Bytes::from_static(
                b"data: {\"id\": \"chatcmpl-garbage\", \"choices\": [\n\n",
            ));
            head.push(Bytes::from_static(b"data: <html>502 Bad Gateway</html>\n\n"));
            Body::from(head.concat())
        } else {
            broken_body(state, Bytes::from(head.concat()), mode)
        }
    } else if chunk_delay_ms == 0 {
        // One buffer, one write: about four times the throughput of a body chunk per frame
        // (measured over loopback), and clients must cope with any split of an SSE stream anyway.
        Body::from(frames.concat())
    } else {
        // Spacing the chunks gives time-to-first-token and stream-relay measurements something
        // to measure.
        let delay = Duration::from_millis(chunk_delay_ms);
        Body::from_stream(
            futures::stream::iter(frames.into_iter().enumerate()).then(move |(i, frame)| async move {
                if i > 0 {
                    tokio::time::sleep(delay).await;
                }
                Ok::<_, Infallible>(frame)
            }),
        )
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// `{"error": {"message", "type", "param", "code"}}`, the shape OpenAI's SDKs parse.
fn openai_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = json!({
        "error": {"message": message, "type": kind, "param": null, "code": status.as_u16().to_string()}
    });
    (status, axum::Json(body)).into_response()
}

fn internal_error(message: &str) -> Response {
    openai_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
}
