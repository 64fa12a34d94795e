//! The playground: a prompt sent to any model or workflow the signed-in key may use, streamed
//! back as it is written. The request goes through the real pipeline (`pipeline::handle`) with
//! the session's key, so auth, limits, budgets, routing and the record are those of any request;
//! the page's script reads the stream and shows the answer, then the usage buckets and a link
//! to the request's page with its cost.

use std::sync::Arc;

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::dashboard::Dashboard;
use super::guard;
use super::signin::LangQuery;
use super::view;
use crate::app::App;
use crate::pipeline::endpoint::Endpoint;

/// The header the page's script sends the session's CSRF token in.
const CSRF_HEADER: &str = "x-csrf-token";

/// The longest prompt the playground sends (it is for trying a model, not for bulk work).
const MAX_PROMPT: usize = 8 * 1024;

/// The session's key as a request's `Authorization` header.
fn with_key(key: &str) -> Option<HeaderMap> {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {key}")).ok()?,
    );
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Some(headers)
}

pub async fn page(
    State(app): State<Arc<App>>,
    Extension(dash): Extension<Arc<Dashboard>>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Response {
    let visit = match guard::visit(&app, &dash.sessions, &headers, q.lang.as_deref()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let live = app.live.load_full();
    // What the key may call, decided as stage 4b decides it.
    let caller = match with_key(visit.session.credential.expose()) {
        Some(h) => crate::pipeline::authenticate::caller(&app, &live, &h).await.ok(),
        None => None,
    };
    let models: Vec<String> = live
        .model_names()
        .into_iter()
        .filter(|m| caller.as_ref().is_some_and(|c| c.may_use(m)))
        .collect();
    let mut ctx = visit.context("playground");
    ctx.insert("models".into(), json!(models));
    view::page(StatusCode::OK, "playground.html", &ctx)
}

#[derive(Deserialize)]
pub struct Ask {
    model: String,
    prompt: String,
}

/// `POST /ui/playground/chat` (JSON `{model, prompt}`, the CSRF token in `x-csrf-token`): the
/// pipeline's streamed answer, as a client of `/v1/chat/completions` would get it.
pub async fn chat(
    State(app): State<Arc<App>>,
    Extension(dash): Extension<Arc<Dashboard>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let visit = match guard::visit(&app, &dash.sessions, &headers, None).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let token = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    if let Some(refused) = visit.csrf_refusal(token) {
        return refused;
    }
    let ask: Ask = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => return bad(&format!("send JSON {{\"model\": …, \"prompt\": …}}: {e}")),
    };
    if ask.prompt.trim().is_empty() || ask.prompt.len() > MAX_PROMPT {
        return bad(&format!("the prompt must be 1 to {MAX_PROMPT} bytes"));
    }
    let Some(key_headers) = with_key(visit.session.credential.expose()) else {
        return bad("the session's key cannot be sent");
    };
    let request = json!({
        "model": ask.model,
        "messages": [{"role": "user", "content": ask.prompt}],
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    crate::pipeline::handle(app, Endpoint::CHAT, key_headers, Body::from(request.to_string())).await
}

fn bad(message: &str) -> Response {
    view::with_headers(
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": {"message": message, "type": "invalid_request_error"}})),
        )
            .into_response(),
    )
}
