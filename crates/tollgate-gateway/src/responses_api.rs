//! OpenAI's Responses API (`/v1/responses`, what Codex CLI speaks) as an endpoint configuration
//! of the chat pipeline: the request is translated to chat (with the conversation a
//! `previous_response_id` continues put before its input), answered by the same stages as any
//! chat request (keys, limits, budgets, cache, routing, workflows, records with
//! `endpoint: responses`), and its answer — whole, or chunk by chunk — written back as a
//! `response` object or the typed event sequence (`tollgate_providers::responses`). A response
//! is stored (unless `store: false`) for its key only, and purged after
//! `tollgate_settings.responses_retention_days`.
//!
//! Every deployment is reached through chat completions, OpenAI's too: the Responses API's own
//! server-side state and built-in tools are not proxied.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use serde_json::{Map, Value, json};
use tollgate_core::{ErrorKind, GatewayError};
use tollgate_providers::responses::{self as wire, Echo, EventWriter};
use tollgate_store::{StoreError, StoredResponse};

use crate::app::App;
use crate::edge::ApiError;
use crate::pipeline::authenticate::{self, Caller};
use crate::pipeline::endpoint::Endpoint;

/// Seconds between purges of expired stored responses (each instance purges at most this often).
const PURGE_EVERY_S: i64 = 3600;

/// When this process last purged; 0 = never.
static LAST_PURGE: AtomicI64 = AtomicI64::new(0);

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/v1/responses", post(create))
        .route("/responses", post(create))
        .route("/v1/responses/{id}", get(retrieve).delete(delete))
        .route("/responses/{id}", get(retrieve).delete(delete))
}

/// Whose stored responses a caller reads: its virtual key's hash, or the master key's.
fn owner(caller: &Caller) -> String {
    match &caller.key {
        Some(k) => k.token.clone(),
        None => "master".to_string(),
    }
}

fn not_found(id: &str) -> Response {
    ApiError(
        GatewayError::new(ErrorKind::NotFound, format!("Response with id '{id}' not found."))
            .with_code("not_found")
            .with_param("response_id"),
    )
    .into_response()
}

/// A store call off the async threads (the Postgres client blocks), its failure as a 503.
async fn store_call<T: Send + 'static>(
    app: &App,
    f: impl FnOnce(&dyn tollgate_store::AccessStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = Arc::clone(app.keys.store());
    let unavailable = |e: String| {
        ApiError(
            GatewayError::new(ErrorKind::Upstream, format!("the response store is unavailable: {e}"))
                .with_status(503)
                .with_code("store_unavailable"),
        )
    };
    match tokio::task::spawn_blocking(move || f(store.as_ref())).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(unavailable(e.to_string())),
        Err(e) => Err(unavailable(e.to_string())),
    }
}

fn bad_request(message: String, param: Option<&str>) -> Response {
    let mut e = GatewayError::new(ErrorKind::InvalidRequest, message);
    if let Some(p) = param {
        e = e.with_param(p);
    }
    ApiError(e).into_response()
}

/// `POST /v1/responses`.
async fn create(State(app): State<Arc<App>>, mut headers: HeaderMap, body: Body) -> Response {
    let live = app.live.load_full();
    let caller = match authenticate::caller(&app, &live, &headers).await {
        Ok(c) => c,
        Err(e) => return ApiError(e).into_response(),
    };
    let bytes = match axum::body::to_bytes(body, live.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError(
                GatewayError::new(
                    ErrorKind::InvalidRequest,
                    format!(
                        "the request body is larger than general_settings.max_request_size_mb ({} bytes) or was cut off",
                        live.max_body_bytes
                    ),
                )
                .with_status(413),
            )
            .into_response();
        }
    };
    let request: Map<String, Value> = match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return bad_request("the body must be a JSON object".into(), None),
        Err(e) => return bad_request(format!("the body is not valid JSON: {e}"), None),
    };
    let Some(model) = request.get("model").and_then(Value::as_str).map(str::to_string) else {
        return bad_request("`model` is required".into(), Some("model"));
    };
    let owner = owner(&caller);
    // The conversation a previous response continues: its inputs and answers, as chat turns.
    let earlier = match request.get("previous_response_id") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(id)) => {
            let (key, who) = (id.clone(), owner.clone());
            match store_call(&app, move |s| s.get_response(&key, &who)).await {
                Ok(Some(previous)) => previous.messages,
                Ok(None) => {
                    return ApiError(
                        GatewayError::new(
                            ErrorKind::NotFound,
                            format!("Previous response with id '{id}' not found."),
                        )
                        .with_code("previous_response_not_found")
                        .with_param("previous_response_id"),
                    )
                    .into_response();
                }
                Err(e) => return e.into_response(),
            }
        }
        Some(_) => {
            return bad_request(
                "`previous_response_id` must be a string".into(),
                Some("previous_response_id"),
            );
        }
    };
    let (chat, dropped) = match wire::to_chat(&request, &earlier) {
        Ok(c) => c,
        Err(e) => return bad_request(e.to_string(), None),
    };
    if !dropped.is_empty() {
        tracing::debug!(?dropped, "Responses API fields with no chat equivalent were left out");
    }
    let echo = Echo {
        id: format!("resp_{}", uuid::Uuid::new_v4().simple()),
        created_at: Utc::now().timestamp().max(0) as u64,
        model,
        request: request.clone(),
    };
    let keep = request.get("store").and_then(Value::as_bool) != Some(false);
    let stored = keep.then(|| Saver {
        app: Arc::clone(&app),
        owner,
        id: echo.id.clone(),
        // The conversation so far, without the instructions (a next turn brings its own).
        messages: chat
            .get("messages")
            .and_then(Value::as_array)
            .map(|m| m.iter().filter(|m| m["role"] != "system").cloned().collect())
            .unwrap_or_default(),
        retention_days: live.config.responses_retention_days,
    });
    let chat_bytes = match serde_json::to_vec(&Value::Object(chat)) {
        Ok(b) => b,
        Err(e) => return bad_request(e.to_string(), None),
    };
    // The body the pipeline reads is the chat request, not what the client sent.
    headers.remove(axum::http::header::CONTENT_LENGTH);
    let resp = crate::pipeline::handle(Arc::clone(&app), Endpoint::RESPONSES, headers, Body::from(chat_bytes)).await;
    answer(resp, echo, stored).await
}

/// Stores a finished response for its key.
struct Saver {
    app: Arc<App>,
    owner: String,
    id: String,
    messages: Vec<Value>,
    retention_days: u32,
}

impl Saver {
    async fn save(self, response: &Value) {
        let mut messages = self.messages;
        messages.extend(wire::output_as_messages(response));
        let row = StoredResponse {
            id: self.id,
            owner: self.owner,
            response: response.clone(),
            messages,
            created_at: Utc::now(),
        };
        let now = Utc::now().timestamp();
        let purge = now - LAST_PURGE.load(Ordering::Relaxed) >= PURGE_EVERY_S;
        if purge {
            LAST_PURGE.store(now, Ordering::Relaxed);
        }
        let cutoff = Utc::now() - chrono::Duration::days(i64::from(self.retention_days));
        let saved = store_call(&self.app, move |s| {
            s.put_response(&row)?;
            if purge {
                s.purge_responses(cutoff)?;
            }
            Ok(())
        })
        .await;
        if saved.is_err() {
            tracing::warn!("a Responses API response could not be stored; previous_response_id will not find it");
        }
    }
}

/// The pipeline's chat answer as the Responses API gives it.
async fn answer(resp: Response, echo: Echo, stored: Option<Saver>) -> Response {
    // Errors are OpenAI's shape already, which the Responses API shares.
    if !resp.status().is_success() {
        return resp;
    }
    let streamed = crate::edge::is_event_stream(&resp);
    let (mut parts, body) = resp.into_parts();
    parts.headers.remove("content-length");
    if !streamed {
        // A plain chat answer is small next to the limit it was read under upstream.
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
        let chat: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let usage = chat
            .get("usage")
            .map(|u| tollgate_providers::usage::parse_openai_usage(u).usage)
            .unwrap_or_default();
        let response = wire::from_chat(&chat, &usage, &echo);
        if let Some(s) = stored {
            s.save(&response).await;
        }
        return Response::from_parts(parts, Body::from(response.to_string()));
    }
    let mut writer = EventWriter::new(echo);
    let mut events = sse_parse::EventStream::new(body.into_data_stream());
    let out = async_stream::stream! {
        use futures::StreamExt;
        while let Some(ev) = events.next().await {
            let frames = match ev {
                Err(e) => writer.fail("stream_error", &format!("the stream broke: {e}")),
                Ok(ev) => match serde_json::from_str::<Value>(&ev.data) {
                    // The gateway's own error event mid-stream (OpenAI's shape).
                    Ok(v) if v.get("error").is_some() => {
                        let code = v.pointer("/error/type").and_then(Value::as_str).unwrap_or("server_error");
                        let message = v.pointer("/error/message").and_then(Value::as_str).unwrap_or("the upstream failed");
                        writer.fail(code, message)
                    }
                    _ => writer.on_chunk(&ev.data),
                },
            };
            if !frames.is_empty() {
                yield Ok::<Bytes, std::io::Error>(Bytes::from(sse_frames(&frames)));
            }
            if writer.finished {
                break;
            }
        }
        // A client reading to the end gets a stored response it can continue from.
        let response = writer.response();
        if let Some(s) = stored
            && matches!(response["status"].as_str(), Some("completed" | "incomplete"))
        {
            s.save(&response).await;
        }
    };
    Response::from_parts(parts, Body::from_stream(out))
}

fn sse_frames(events: &[wire::Event]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in events {
        out.extend_from_slice(format!("event: {name}\ndata: {data}\n\n").as_bytes());
    }
    out
}

/// `GET /v1/responses/{id}`: a stored response, for the key that created it.
async fn retrieve(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let live = app.live.load_full();
    let caller = match authenticate::caller(&app, &live, &headers).await {
        Ok(c) => c,
        Err(e) => return ApiError(e).into_response(),
    };
    let (key, who) = (id.clone(), owner(&caller));
    match store_call(&app, move |s| s.get_response(&key, &who)).await {
        Ok(Some(r)) => axum::Json(r.response).into_response(),
        Ok(None) => not_found(&id),
        Err(e) => e.into_response(),
    }
}

/// `DELETE /v1/responses/{id}`.
async fn delete(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let live = app.live.load_full();
    let caller = match authenticate::caller(&app, &live, &headers).await {
        Ok(c) => c,
        Err(e) => return ApiError(e).into_response(),
    };
    let (key, who) = (id.clone(), owner(&caller));
    match store_call(&app, move |s| s.delete_response(&key, &who)).await {
        Ok(true) => axum::Json(json!({"id": id, "object": "response", "deleted": true})).into_response(),
        Ok(false) => not_found(&id),
        Err(e) => e.into_response(),
    }
}
