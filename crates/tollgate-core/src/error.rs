//! The gateway's error vocabulary, mapped once at the HTTP edge to OpenAI's error JSON.

use serde::{Deserialize, Serialize};
use serde_json::json;

/// Whose fault a failure is. One classification, used by the router (only a deployment's own
/// faults cool it down, trigger retries and fallbacks), by records and by the report: a client's
/// malformed body or its cancelled stream must never take a model down for everyone else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fault {
    /// The request itself was wrong (bad body, unknown model, too large) or the client left.
    Client,
    /// The deployment failed: timeouts, connection errors, 5xx, 429, and 401/403/404 from the
    /// provider (a bad configured key or a model the provider does not have).
    Deployment,
    /// The gateway itself failed (a bug, or a resource of its own such as the record store).
    Gateway,
}

impl Fault {
    pub fn as_str(&self) -> &'static str {
        match self {
            Fault::Client => "client",
            Fault::Deployment => "deployment",
            Fault::Gateway => "gateway",
        }
    }

    /// The fault of an HTTP error status a provider answered with. Statuses that say the request
    /// was malformed are the client's; everything else (rate limits, server errors, and auth or
    /// not-found answers about the gateway's own key and model name) is the deployment's.
    pub fn of_upstream_status(status: u16) -> Fault {
        match status {
            400 | 413 | 415 | 422 => Fault::Client,
            _ => Fault::Deployment,
        }
    }
}

/// What went wrong, in OpenAI's `type` terms, with the HTTP status it maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidRequest,
    Authentication,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Upstream,
    Timeout,
    Internal,
    /// A key's (or user's, team's…) budget would be passed: 429, LiteLLM's `budget_exceeded`.
    BudgetExceeded,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct GatewayError {
    pub kind: ErrorKind,
    /// HTTP status to answer with; upstream errors keep the upstream's status.
    pub status: u16,
    pub message: String,
    /// OpenAI's `code` field (`model_not_found`, `invalid_api_key`, …).
    pub code: Option<String>,
    pub param: Option<String>,
    /// Whose fault it is; `None` means the default for `kind` (see [`GatewayError::fault`]).
    pub fault: Option<Fault>,
    /// Seconds a client should wait before trying again, sent as `Retry-After` (refusals the
    /// gateway makes itself, such as a full concurrency cap; an upstream's own `Retry-After`
    /// travels separately).
    pub retry_after_s: Option<u64>,
    /// Extra fields of the error object (see [`GatewayError::with_details`]).
    pub details: Option<Box<serde_json::Map<String, serde_json::Value>>>,
}

impl GatewayError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let status = match kind {
            ErrorKind::InvalidRequest => 400,
            ErrorKind::Authentication => 401,
            ErrorKind::NotFound => 404,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::RateLimited | ErrorKind::BudgetExceeded => 429,
            ErrorKind::Upstream => 502,
            ErrorKind::Timeout => 504,
            ErrorKind::Internal => 500,
        };
        GatewayError {
            kind,
            status,
            message: message.into(),
            code: None,
            param: None,
            fault: None,
            retry_after_s: None,
            details: None,
        }
    }

    /// Fields added to the error object beside message, type, param and code (a budget
    /// refusal's `scope`, `spend`, `max_budget`, …), for clients that act on them.
    pub fn with_details(mut self, details: serde_json::Map<String, serde_json::Value>) -> Self {
        self.details = Some(Box::new(details));
        self
    }

    /// Marks whose fault this is when the kind alone does not tell (an upstream's 400 is the
    /// client's, an upstream's 401 the deployment's).
    pub fn with_fault(mut self, fault: Fault) -> Self {
        self.fault = Some(fault);
        self
    }

    /// Whose fault this error is: as marked, else by kind. Errors the gateway raises about a
    /// request before it reaches a provider are the client's; upstream errors and timeouts the
    /// deployment's; internal errors the gateway's.
    pub fn fault(&self) -> Fault {
        self.fault.unwrap_or(match self.kind {
            ErrorKind::InvalidRequest
            | ErrorKind::Authentication
            | ErrorKind::NotFound
            | ErrorKind::PayloadTooLarge
            | ErrorKind::RateLimited
            | ErrorKind::BudgetExceeded => Fault::Client,
            ErrorKind::Upstream | ErrorKind::Timeout => Fault::Deployment,
            ErrorKind::Internal => Fault::Gateway,
        })
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// Tells the client when to try again (`Retry-After`, in seconds).
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_s = Some(seconds);
        self
    }

    /// OpenAI's `type` string.
    pub fn type_str(&self) -> &'static str {
        match self.kind {
            ErrorKind::InvalidRequest | ErrorKind::NotFound | ErrorKind::PayloadTooLarge => "invalid_request_error",
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::RateLimited => "rate_limit_error",
            ErrorKind::Upstream => "upstream_error",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Internal => "internal_error",
            ErrorKind::BudgetExceeded => "budget_exceeded",
        }
    }

    /// `{"error": {"message", "type", "param", "code"}}` as OpenAI's SDKs parse it.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = json!({
            "error": {
                "message": self.message,
                "type": self.type_str(),
                "param": self.param,
                "code": self.code.clone().unwrap_or_else(|| self.status.to_string()),
            }
        });
        if let (Some(details), Some(obj)) = (&self.details, v["error"].as_object_mut()) {
            for (k, val) in details.iter() {
                obj.entry(k.clone()).or_insert_with(|| val.clone());
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_to_openai_shape() {
        let e = GatewayError::new(ErrorKind::NotFound, "no such model").with_code("model_not_found");
        let v = e.to_json();
        assert_eq!(e.status, 404);
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "model_not_found");
        assert_eq!(v["error"]["message"], "no such model");
    }

    #[test]
    fn faults_follow_kind_unless_marked() {
        assert_eq!(GatewayError::new(ErrorKind::InvalidRequest, "x").fault(), Fault::Client);
        assert_eq!(GatewayError::new(ErrorKind::Timeout, "x").fault(), Fault::Deployment);
        assert_eq!(GatewayError::new(ErrorKind::Upstream, "x").fault(), Fault::Deployment);
        assert_eq!(GatewayError::new(ErrorKind::Internal, "x").fault(), Fault::Gateway);
        let provider_auth = GatewayError::new(ErrorKind::Authentication, "bad key").with_fault(Fault::Deployment);
        assert_eq!(provider_auth.fault(), Fault::Deployment);
        for s in [400, 413, 422] {
            assert_eq!(Fault::of_upstream_status(s), Fault::Client, "{s}");
        }
        for s in [401, 403, 404, 408, 429, 500, 502, 503, 504] {
            assert_eq!(Fault::of_upstream_status(s), Fault::Deployment, "{s}");
        }
    }
}
