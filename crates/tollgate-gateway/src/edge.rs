//! The HTTP edge: OpenAI's error JSON, authentication, reading request bodies within bounds, and
//! the response headers every client and dashboard reads. Errors from every stage are mapped
//! here, once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use tollgate_core::config::Secret;
use tollgate_core::{ErrorKind, GatewayError};

/// Wraps [`GatewayError`] so axum can answer with it.
pub struct ApiError(pub GatewayError);

impl From<GatewayError> for ApiError {
    fn from(e: GatewayError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, axum::Json(self.0.to_json())).into_response();
        if self.0.kind == ErrorKind::Authentication {
            resp.headers_mut()
                .insert("www-authenticate", HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.0.retry_after_s {
            resp.headers_mut().insert("retry-after", HeaderValue::from(secs));
        }
        resp
    }
}

/// The bounds one body is read within (from the live config).
#[derive(Debug, Clone, Copy)]
pub struct BodyRules {
    /// `general_settings.max_request_size_mb`, in bytes.
    pub max_bytes: usize,
    /// `tollgate_settings.body_read_timeout`: the longest wait for the next piece of the body.
    pub timeout: Duration,
    /// `tollgate_settings.max_inflight_request_mb`, in bytes: bodies held at once, all requests.
    pub inflight_budget: usize,
}

/// Request-body bytes held in memory right now, over all requests. Without a bound, ten
/// concurrent bodies just under the size limit cost gigabytes.
#[derive(Debug, Default)]
pub struct BodyBudget {
    used: AtomicUsize,
}

impl BodyBudget {
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn reserve(self: &Arc<Self>, n: usize, budget: usize) -> Result<BodyLease, GatewayError> {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let next = used.saturating_add(n);
            if next > budget {
                return Err(GatewayError::new(
                    ErrorKind::RateLimited,
                    format!(
                        "the gateway is already holding {} MB of request bodies (tollgate_settings.max_inflight_request_mb is {} MB); retry shortly",
                        used / (1024 * 1024),
                        budget / (1024 * 1024)
                    ),
                )
                .with_status(503)
                .with_code("server_busy"));
            }
            match self
                .used
                .compare_exchange_weak(used, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    return Ok(BodyLease {
                        budget: self.clone(),
                        bytes: n,
                    });
                }
                Err(now) => used = now,
            }
        }
    }
}

/// A share of the [`BodyBudget`], given back when dropped (keep it while the request's body, in
/// any form, is in memory).
#[derive(Debug)]
pub struct BodyLease {
    budget: Arc<BodyBudget>,
    bytes: usize,
}

impl BodyLease {
    fn grow(&mut self, n: usize, budget: usize) -> Result<(), GatewayError> {
        let mut more = self.budget.reserve(n, budget)?;
        self.bytes += more.bytes;
        // Now part of this lease: `more` must not give it back too.
        more.bytes = 0;
        Ok(())
    }
}

impl Drop for BodyLease {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

fn too_large(rules: &BodyRules) -> GatewayError {
    GatewayError::new(
        ErrorKind::PayloadTooLarge,
        format!(
            "request body is larger than the gateway's limit of {} MB (general_settings.max_request_size_mb)",
            rules.max_bytes as f64 / (1024.0 * 1024.0)
        ),
    )
}

/// Reads a request body into one buffer: of the declared size when there is a `Content-Length`
/// (refused at once when it is over the limit, before a byte is read), else grown as chunks
/// arrive. The body must keep arriving, with no gap longer than `rules.timeout` (408 otherwise;
/// a total would cut off large bodies on slow links), and its bytes are
/// counted against the in-flight budget (503 when it is spent) until the lease is dropped.
pub async fn read_body(
    body: Body,
    headers: &HeaderMap,
    rules: &BodyRules,
    budget: &Arc<BodyBudget>,
) -> Result<(Bytes, BodyLease), GatewayError> {
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    if declared.is_some_and(|n| n > rules.max_bytes) {
        return Err(too_large(rules));
    }
    // A body the whole budget cannot hold would get 503 forever: say what to change instead.
    if declared.is_some_and(|n| n > rules.inflight_budget) {
        return Err(GatewayError::new(
            ErrorKind::PayloadTooLarge,
            format!(
                "request body is larger than all the request bodies the gateway holds at once ({} MB, tollgate_settings.max_inflight_request_mb)",
                rules.inflight_budget / (1024 * 1024)
            ),
        ));
    }
    let mut lease = budget.reserve(declared.unwrap_or(0), rules.inflight_budget)?;
    let mut body = body;
    let mut buf: Vec<u8> = Vec::with_capacity(declared.unwrap_or(0));
    loop {
        // A gap, not a total: a large body on a slow link keeps going as long as it moves.
        let frame = match tokio::time::timeout(rules.timeout, body.frame()).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(_) => return Err(body_timeout(rules, buf.len(), declared)),
        };
        let frame = frame.map_err(|e| {
            GatewayError::new(ErrorKind::InvalidRequest, format!("cannot read the request body: {e}"))
                .with_code("body_read_failed")
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers carry nothing tollgate reads
        };
        if buf.is_empty() && declared == Some(data.len()) {
            // The whole body in one piece (the usual small request): no copy.
            return Ok((data, lease));
        }
        let len = buf.len() + data.len();
        if len > rules.max_bytes {
            return Err(too_large(rules));
        }
        if len > lease.bytes {
            // Chunked bodies: reserve what arrives, in steps so a body sent byte by byte does
            // not touch the shared counter per byte.
            lease.grow((len - lease.bytes).max(64 * 1024), rules.inflight_budget)?;
        }
        buf.extend_from_slice(&data);
    }
    Ok((Bytes::from(buf), lease))
}

fn body_timeout(rules: &BodyRules, got: usize, declared: Option<usize>) -> GatewayError {
    let of = declared.map(|n| format!(" of {n}")).unwrap_or_default();
    GatewayError::new(
        ErrorKind::Timeout,
        format!(
            "the request body stopped arriving: nothing for {} s after {got}{of} bytes (tollgate_settings.body_read_timeout)",
            rules.timeout.as_secs_f64()
        ),
    )
    .with_status(408)
    .with_code("body_read_timeout")
}

/// Checks `Authorization: Bearer` or `x-api-key` against the master key. `None` key means
/// auth is off (only possible with `--insecure-dev`).
pub fn authorize(headers: &HeaderMap, master_key: Option<&Secret>) -> Result<Option<String>, GatewayError> {
    let Some(key) = master_key else {
        return Ok(None);
    };
    match presented_key(headers) {
        None | Some("") => Err(GatewayError::new(
            ErrorKind::Authentication,
            "missing API key: send the gateway's master key as `Authorization: Bearer <key>` or `x-api-key: <key>`",
        )
        .with_code("missing_api_key")),
        Some(p) if constant_time_eq(p.as_bytes(), key.expose().as_bytes()) => Ok(Some("master_key".to_string())),
        Some(_) => Err(GatewayError::new(ErrorKind::Authentication, "invalid API key").with_code("invalid_api_key")),
    }
}

/// The key a request presents: `Authorization: Bearer <key>` or `x-api-key: <key>`.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .unwrap_or(v)
                .trim()
        })
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::trim))
}

/// Compares without an early exit so the key cannot be guessed byte by byte from timings.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The headers tollgate sets on every chat response, with LiteLLM's names beside its own so
/// existing dashboards keep working.
pub struct ResponseTags<'a> {
    pub request_id: &'a str,
    pub model_group: &'a str,
    pub cost_usd: Option<f64>,
    pub overhead_ms: f64,
    pub cache: &'a str,
}

/// The names [`tag_response`] sets, checked once: `HeaderName::from_static` checks its argument
/// each time it runs, and this runs on every answer.
static REQUEST_ID: [HeaderName; 2] = [
    HeaderName::from_static("x-tollgate-request-id"),
    HeaderName::from_static("x-litellm-call-id"),
];
static MODEL_GROUP: [HeaderName; 2] = [
    HeaderName::from_static("x-tollgate-model-group"),
    HeaderName::from_static("x-litellm-model-group"),
];
static OVERHEAD: [HeaderName; 2] = [
    HeaderName::from_static("x-tollgate-overhead-ms"),
    HeaderName::from_static("x-litellm-overhead-duration-ms"),
];
static CACHE: [HeaderName; 1] = [HeaderName::from_static("x-tollgate-cache")];
static COST: [HeaderName; 2] = [
    HeaderName::from_static("x-tollgate-cost-usd"),
    HeaderName::from_static("x-litellm-response-cost"),
];

pub fn tag_response(headers: &mut HeaderMap, t: &ResponseTags<'_>) {
    // Room for all nine at once rather than growing the map on the way.
    headers.reserve(9);
    // Each value is checked once and shared by the header pair that carries it.
    let mut put = |names: &[HeaderName], value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            for name in names {
                headers.insert(name.clone(), v.clone());
            }
        }
    };
    put(&REQUEST_ID, t.request_id);
    put(&MODEL_GROUP, t.model_group);
    put(&OVERHEAD, &format!("{:.3}", t.overhead_ms));
    put(&CACHE, t.cache);
    match t.cost_usd {
        Some(c) => put(&COST, &format!("{c:.10}")),
        // An unpriced model gets no cost header rather than a misleading 0.
        None => put(&COST[..1], "unpriced"),
    }
}

/// Whether an answer is a stream of server-sent events (its `content-type`), for the endpoints
/// that rewrite a pipeline answer into another API's shape.
/// A 413 leaves the rest of the body unread, so its connection cannot carry another request: say
/// so, or a client that pools connections sends its next request on one the server is closing and
/// gets a broken answer (seen in `failed_sign_ins_are_limited_per_address…`). Applied to every
/// route, so the API's body limit and the dashboard's form limit answer alike.
pub(crate) fn close_after_unread_body(mut resp: Response) -> Response {
    if resp.status() == StatusCode::PAYLOAD_TOO_LARGE {
        resp.headers_mut()
            .insert(axum::http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

pub fn is_event_stream(resp: &axum::response::Response) -> bool {
    resp.headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_x_api_key_are_accepted() {
        let key = Secret::new("sk-0123456789abcdef");
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer sk-0123456789abcdef"));
        assert!(authorize(&h, Some(&key)).is_ok());
        let mut h = HeaderMap::new();
        h.insert("x-api-key", HeaderValue::from_static("sk-0123456789abcdef"));
        assert!(authorize(&h, Some(&key)).is_ok());
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer wrong"));
        assert_eq!(authorize(&h, Some(&key)).unwrap_err().status, 401);
        assert_eq!(
            authorize(&HeaderMap::new(), Some(&key)).unwrap_err().code.as_deref(),
            Some("missing_api_key")
        );
        assert!(authorize(&HeaderMap::new(), None).is_ok());
    }

    #[test]
    fn unpriced_cost_header_is_not_zero() {
        let mut h = HeaderMap::new();
        tag_response(
            &mut h,
            &ResponseTags {
                request_id: "r",
                model_group: "g",
                cost_usd: None,
                overhead_ms: 0.2,
                cache: "off",
            },
        );
        assert_eq!(h["x-tollgate-cost-usd"], "unpriced");
        assert!(h.get("x-litellm-response-cost").is_none());
        assert_eq!(h["x-litellm-call-id"], "r");
    }
}
