//! The HTTP edge: OpenAI's error JSON, authentication and the response headers every client and
//! dashboard reads. Errors from every stage are mapped here, once.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
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
        resp
    }
}

/// Checks `Authorization: Bearer` or `x-api-key` against the master key. `None` key means
/// auth is off (only possible with `--insecure-dev`).
pub fn authorize(headers: &HeaderMap, master_key: Option<&Secret>) -> Result<Option<String>, GatewayError> {
    let Some(key) = master_key else {
        return Ok(None);
    };
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .unwrap_or(v)
                .trim()
        })
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::trim));
    match presented {
        None | Some("") => Err(GatewayError::new(
            ErrorKind::Authentication,
            "missing API key: send the gateway's master key as `Authorization: Bearer <key>` or `x-api-key: <key>`",
        )
        .with_code("missing_api_key")),
        Some(p) if constant_time_eq(p.as_bytes(), key.expose().as_bytes()) => Ok(Some("master_key".to_string())),
        Some(_) => Err(GatewayError::new(ErrorKind::Authentication, "invalid API key").with_code("invalid_api_key")),
    }
}

/// Compares without an early exit so the key cannot be guessed byte by byte from timings.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
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

pub fn tag_response(headers: &mut HeaderMap, t: &ResponseTags<'_>) {
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    put("x-tollgate-request-id", t.request_id.to_string());
    put("x-litellm-call-id", t.request_id.to_string());
    put("x-tollgate-model-group", t.model_group.to_string());
    put("x-litellm-model-group", t.model_group.to_string());
    let overhead = format!("{:.3}", t.overhead_ms);
    put("x-tollgate-overhead-ms", overhead.clone());
    put("x-litellm-overhead-duration-ms", overhead);
    put("x-tollgate-cache", t.cache.to_string());
    // An unpriced model gets no cost header rather than a misleading 0.
    let cost = t
        .cost_usd
        .map(|c| format!("{c:.10}"))
        .unwrap_or_else(|| "unpriced".to_string());
    if t.cost_usd.is_some() {
        put("x-litellm-response-cost", cost.clone());
    }
    put("x-tollgate-cost-usd", cost);
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
