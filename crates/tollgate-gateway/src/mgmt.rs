//! What every LiteLLM management endpoint shares (`/key/*`, `/spend/*`, `/user/*`, `/team/*`,
//! `/organization/*`, `/customer/*`, `/budget/*`): LiteLLM's error envelope, the master-key
//! check, store calls off the async workers, and the readers that validate a request's fields
//! and say what to send instead.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::{Map, Value, json};
use tollgate_store::{AccessStore, KeyError, StoreError};

use crate::app::App;
use crate::keys::Gathered;
use crate::pipeline::authenticate::{Caller, caller};

/// A refusal in LiteLLM's error envelope:
/// `{"error": {"message", "type", "param", "code": "<status>"}}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    param: Option<&'static str>,
}

pub(crate) type ApiResult = Result<Response, ApiError>;

impl ApiError {
    pub(crate) fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            message: message.into(),
            param: None,
        }
    }

    /// 400: the request is wrong; `param` names the field to fix.
    pub(crate) fn bad(message: impl Into<String>, param: Option<&'static str>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            kind: "bad_request_error",
            message: message.into(),
            param,
        }
    }

    /// 404: what the request names does not exist; `param` is the field that named it.
    pub(crate) fn not_found(message: impl Into<String>, param: &'static str) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            kind: "not_found_error",
            message: message.into(),
            param: Some(param),
        }
    }

    /// 400 for a unique value that is taken (a conflict from the store), naming the field.
    pub(crate) fn conflict(e: KeyError, param: &'static str) -> Self {
        match e {
            KeyError::Conflict(m) => ApiError::bad(m, Some(param)),
            KeyError::Store(s) => s.into(),
        }
    }

    /// What went wrong, for a page that shows it (the dashboard).
    pub(crate) fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    pub(crate) fn with_param(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.status.as_u16().to_string(),
        }});
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::warn!(error = %e, "management store error");
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind: "internal_server_error",
            message: format!("the key store cannot be used right now ({e}); retry shortly"),
            param: None,
        }
    }
}

/// A key write's conflict is its alias (the only unique value a key request sets).
impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> Self {
        ApiError::conflict(e, "key_alias")
    }
}

/// The caller, who must hold the master key (or run without auth); `refusal` tells a virtual key
/// what it may do instead.
pub(crate) async fn admin_for(app: &App, headers: &HeaderMap, refusal: &str) -> Result<Caller, ApiError> {
    let who = caller_of(app, headers).await?;
    if !who.is_admin() {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "auth_error", refusal));
    }
    Ok(who)
}

/// Whoever presented the request's key; 401 when it is no valid key.
pub(crate) async fn caller_of(app: &App, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let live = app.live.load_full();
    caller(app, &live, headers)
        .await
        .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, "auth_error", e.message))
}

/// Runs a store call off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    app: &App,
    f: impl FnOnce(&dyn AccessStore) -> Result<T, KeyError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = Arc::clone(app.keys.store());
    tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .map_err(|_| ApiError::from(StoreError::WriterGone))?
        .map_err(ApiError::from)
}

/// [`blocking`] for a read whose answer shows a spend: the spend still gathering in memory is
/// taken with it, so the two add up to each amount once (see [`crate::keys::Keys::settled_read`]).
pub(crate) async fn blocking_settled<T: Send + 'static>(
    app: &App,
    f: impl FnOnce(&dyn AccessStore) -> Result<T, KeyError> + Send + 'static,
) -> Result<(T, Gathered), ApiError> {
    let keys = Arc::clone(&app.keys);
    tokio::task::spawn_blocking(move || keys.settled_read(f))
        .await
        .map_err(|_| ApiError::from(StoreError::WriterGone))?
        .map_err(ApiError::from)
}

/// The JSON object of a request body (an empty body is an empty object), or what to send instead.
pub(crate) fn object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::bad(
            "send a JSON object, e.g. {\"models\": [\"gpt-4o\"]}",
            None,
        )),
        Err(e) => Err(ApiError::bad(format!("the body is not valid JSON: {e}"), None)),
    }
}

pub use crate::periods::{duration_end, duration_parts};

pub(crate) const DURATION_HELP: &str = "a number and a unit: 30s, 30m, 30h, 30d, 1w or 1mo";

// The readers below return `None` when the field is absent, `Some(None)` for an explicit
// `null` (which clears it), and `Some(Some(v))` for a value: updates change only what is given.

pub(crate) fn opt_string(m: &Map<String, Value>, k: &'static str) -> Result<Option<Option<String>>, ApiError> {
    match m.get(k) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
        Some(other) => Err(ApiError::bad(format!("`{k}` must be a string, got {other}"), Some(k))),
    }
}

pub(crate) fn opt_money(m: &Map<String, Value>, k: &'static str) -> Result<Option<Option<f64>>, ApiError> {
    match m.get(k) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(v) => match v.as_f64() {
            Some(x) if x.is_finite() && x >= 0.0 => Ok(Some(Some(x))),
            _ => Err(ApiError::bad(
                format!("`{k}` must be a number of dollars, 0 or more, got {v}"),
                Some(k),
            )),
        },
    }
}

pub(crate) fn opt_count(m: &Map<String, Value>, k: &'static str) -> Result<Option<Option<u64>>, ApiError> {
    match m.get(k) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(v) => v
            .as_u64()
            .map(|n| Some(Some(n)))
            .ok_or_else(|| ApiError::bad(format!("`{k}` must be a whole number, 0 or more, got {v}"), Some(k))),
    }
}

pub(crate) fn opt_map(m: &Map<String, Value>, k: &'static str) -> Result<Option<Option<Map<String, Value>>>, ApiError> {
    match m.get(k) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::Object(o)) => Ok(Some(Some(o.clone()))),
        Some(other) => Err(ApiError::bad(
            format!("`{k}` must be a JSON object, got {other}"),
            Some(k),
        )),
    }
}

pub(crate) fn opt_bool(m: &Map<String, Value>, k: &'static str) -> Result<Option<Option<bool>>, ApiError> {
    match m.get(k) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::Bool(b)) => Ok(Some(Some(*b))),
        Some(other) => Err(ApiError::bad(
            format!("`{k}` must be true or false, got {other}"),
            Some(k),
        )),
    }
}

/// A list of strings (`models`, `user_ids`, …); `help` says what the strings are.
pub(crate) fn opt_strings(
    m: &Map<String, Value>,
    k: &'static str,
    help: &str,
) -> Result<Option<Option<Vec<String>>>, ApiError> {
    let wrong = |got: &Value| ApiError::bad(format!("`{k}` must be a list of {help}, got {got}"), Some(k));
    match m.get(k) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(|| wrong(v)))
            .collect::<Result<Vec<_>, _>>()
            .map(|v| Some(Some(v))),
        Some(other) => Err(wrong(other)),
    }
}

/// A budget period (`budget_duration`, `duration`): checked to parse.
pub(crate) fn opt_duration(m: &Map<String, Value>, k: &'static str) -> Result<Option<Option<String>>, ApiError> {
    let v = opt_string(m, k)?;
    if let Some(Some(d)) = &v
        && duration_end(d, Utc::now()).is_none()
    {
        return Err(ApiError::bad(format!("`{k}` {d:?} is not {DURATION_HELP}"), Some(k)));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_tell_absent_from_null_and_name_the_field() {
        let m = json!({"a": null, "b": "x", "n": -1, "d": "soon", "l": ["x", 1]});
        let m = m.as_object().unwrap();
        assert_eq!(opt_string(m, "a").ok(), Some(Some(None)));
        assert_eq!(opt_string(m, "zz").ok(), Some(None));
        assert_eq!(opt_string(m, "b").ok(), Some(Some(Some("x".into()))));
        for e in [
            opt_money(m, "n").err(),
            opt_count(m, "n").err(),
            opt_duration(m, "d").err(),
            opt_strings(m, "l", "model names").err(),
            opt_bool(m, "b").err(),
        ] {
            let e = e.expect("refused");
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert!(e.param.is_some_and(|p| e.message.contains(p)), "{}", e.message);
        }
    }
}
