//! `POST /v1/messages/count_tokens` (Claude Code asks it before long requests): how many input
//! tokens a Messages request would use on the deployment its `model` routes to. An Anthropic
//! deployment is asked (its `/v1/messages/count_tokens`, exact); for any other the count is
//! estimated from the prompt's text (`tollgate_providers::messages::estimate_input_tokens`),
//! and the answer says so: `"estimated": true` in the body and `x-tollgate-token-count:
//! estimated` (else `exact`). Nothing is generated or billed, so no record is written and no
//! limit or budget is counted; the caller is still authenticated and checked against the
//! model (stages 1, 4 and 4b).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tollgate_core::{ErrorKind, GatewayError};
use tollgate_providers::messages::estimate_input_tokens;

use crate::app::App;
use crate::edge::{ApiError, BodyRules, read_body};
use crate::pipeline::{access, authenticate, messages};
use crate::state::{Deployment, Target};

/// Says whether a count is the deployment's own or the gateway's estimate.
pub const COUNT_HEADER: &str = "x-tollgate-token-count";

pub async fn handle(app: Arc<App>, headers: HeaderMap, body: Body) -> Response {
    let answer = match count(&app, &headers, body).await {
        Ok(r) => r,
        Err(e) => ApiError(e).into_response(),
    };
    messages::in_anthropic_shape(answer).await
}

fn invalid(message: &str, param: &str) -> GatewayError {
    GatewayError::new(ErrorKind::InvalidRequest, message).with_param(param)
}

async fn count(app: &Arc<App>, headers: &HeaderMap, body: Body) -> Result<Response, GatewayError> {
    let live = app.live.load_full();
    let caller = authenticate::caller(app, &live, headers).await?;
    let rules = BodyRules {
        max_bytes: live.max_body_bytes,
        timeout: crate::listener::seconds(live.config.server.body_read_timeout_s),
        inflight_budget: (live.config.server.max_inflight_request_mb * 1024.0 * 1024.0) as usize,
    };
    let (bytes, _lease) = read_body(body, headers, &rules, &app.body_budget).await?;
    let mut map: Map<String, Value> =
        serde_json::from_slice(&bytes).map_err(|e| invalid(&format!("the body is not a JSON object: {e}"), "body"))?;
    let model = map
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("missing `model`: name one of the gateway's models", "model"))?
        .to_string();
    if !map.get("messages").is_some_and(Value::is_array) {
        return Err(invalid("missing `messages`: a list of messages to count", "messages"));
    }
    let group = match live.target(&model) {
        Some(Target::Group(g)) => g,
        _ => {
            return Err(GatewayError::new(
                ErrorKind::NotFound,
                format!(
                    "model `{model}` is not served by this gateway; known models: {}",
                    live.model_names().join(", ")
                ),
            )
            .with_code("model_not_found")
            .with_param("model"));
        }
    };
    access::check(&caller, &model, &group.name)?;
    let Some(d) = crate::router::pick(&group, &live.config.router) else {
        return Err(GatewayError::new(
            ErrorKind::Upstream,
            format!("every deployment of `{}` is cooling down or at its limits", group.name),
        )
        .with_status(503)
        .with_code("no_deployment_available"));
    };
    if !messages::passes_through(&d) {
        let tokens = estimate_input_tokens(&map);
        let mut resp = axum::Json(json!({"input_tokens": tokens, "estimated": true})).into_response();
        resp.headers_mut()
            .insert(COUNT_HEADER, HeaderValue::from_static("estimated"));
        return Ok(resp);
    }
    map.insert("model".into(), d.route.upstream_model.clone().into());
    ask(app, &d, headers, &map).await
}

/// Anthropic's own count, relayed as it answers.
async fn ask(
    app: &App,
    d: &Deployment,
    headers: &HeaderMap,
    body: &Map<String, Value>,
) -> Result<Response, GatewayError> {
    let url = format!("{}/count_tokens", d.route.chat_url.trim_end_matches('/'));
    let url = crate::upstream_client::parse_uri(&url)
        .map_err(|e| GatewayError::new(ErrorKind::Internal, format!("bad upstream URL: {e}")))?;
    let mut req = app
        .http()
        .post(url)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body).unwrap_or_default());
    let forwarded = messages::forwarded_headers(headers);
    if !forwarded.iter().any(|(k, _)| k == "anthropic-version") {
        req = req.header("anthropic-version", tollgate_providers::anthropic::API_VERSION);
    }
    for (k, v) in &forwarded {
        req = req.header(k, v);
    }
    if let Some(k) = &d.api_key {
        req = req.header("x-api-key", k.expose());
    }
    for (k, v) in &d.extra_headers {
        req = req.header(k, v);
    }
    let unreachable = |why: String| {
        GatewayError::new(
            ErrorKind::Upstream,
            format!(
                "cannot reach anthropic at {} to count tokens: {}",
                d.route.api_base,
                tollgate_core::redact::text(&why)
            ),
        )
        .with_code("upstream_unreachable")
    };
    // The deployment's timeout covers the whole call, its answer included.
    let call = async {
        let resp = req.send().await?;
        let status = resp.status();
        Ok::<_, crate::upstream_client::Error>((status, resp.bytes().await.unwrap_or_default()))
    };
    let (status, bytes) = match tokio::time::timeout(d.timeout, call).await {
        Err(_) => {
            return Err(unreachable(format!(
                "no answer within {:.1} s",
                d.timeout.as_secs_f64()
            )));
        }
        Ok(Err(e)) => return Err(unreachable(e.to_string())),
        Ok(Ok(answer)) => answer,
    };
    let status = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    if !status.is_success() {
        let message = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v.pointer("/error/message").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(500).collect());
        return Err(GatewayError::new(
            ErrorKind::Upstream,
            format!("anthropic returned HTTP {} counting tokens: {message}", status.as_u16()),
        )
        .with_status(status.as_u16()));
    }
    let mut out = (status, [("content-type", "application/json")], bytes).into_response();
    out.headers_mut()
        .insert(COUNT_HEADER, HeaderValue::from_static("exact"));
    Ok(out)
}
