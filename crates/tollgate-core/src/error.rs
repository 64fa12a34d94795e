//! The gateway's error vocabulary, mapped once at the HTTP edge to OpenAI's error JSON.

use serde_json::json;

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
}

impl GatewayError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let status = match kind {
            ErrorKind::InvalidRequest => 400,
            ErrorKind::Authentication => 401,
            ErrorKind::NotFound => 404,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::RateLimited => 429,
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
        }
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

    /// OpenAI's `type` string.
    pub fn type_str(&self) -> &'static str {
        match self.kind {
            ErrorKind::InvalidRequest | ErrorKind::NotFound | ErrorKind::PayloadTooLarge => "invalid_request_error",
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::RateLimited => "rate_limit_error",
            ErrorKind::Upstream => "upstream_error",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Internal => "internal_error",
        }
    }

    /// `{"error": {"message", "type", "param", "code"}}` as OpenAI's SDKs parse it.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "error": {
                "message": self.message,
                "type": self.type_str(),
                "param": self.param,
                "code": self.code.clone().unwrap_or_else(|| self.status.to_string()),
            }
        })
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
}
