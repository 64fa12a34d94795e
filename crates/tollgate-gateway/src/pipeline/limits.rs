//! Stage 4c, limits: the caller's rpm, tpm and parallel limits in every scope the request counts
//! in ([`super::limit_scopes`]), once the model is known. A workflow run counts as one request to
//! the workflow's name.
//!
//! The prompt's tokens are estimated here as its bytes / 4 (the `messages`, `input`, `prompt`,
//! `tools` and `system` fields as sent) and corrected with the real usage when the record closes.

use tollgate_core::{ErrorKind, GatewayError};

use crate::app::App;
use crate::pipeline::authenticate::Caller;
use crate::pipeline::end_user::EndUser;
use crate::pipeline::limit_scopes::scopes;
use crate::pipeline::parse::Request;
use crate::rate_limits::{LimitPermit, OverLimit, Standing};

/// What the stage decided, and where the caller's scopes stand (for the response headers, set
/// on refusals too).
pub enum Limited {
    /// No scope of the request has a limit.
    Unlimited,
    Admitted(LimitPermit),
    Refused(GatewayError, Vec<Standing>),
}

pub async fn admit(
    app: &App,
    caller: &Caller,
    end_user: Option<&EndUser>,
    model: &str,
    request: &Request,
    request_id: &str,
) -> Limited {
    let scopes = scopes(caller, model, end_user);
    if scopes.is_empty() {
        return Limited::Unlimited;
    }
    // Boxed: the shared counters' future is larger than the rest of the request's (see `handle`).
    match Box::pin(app.rate_limits.admit(request_id, &scopes, estimate(request))).await {
        Ok(permit) => Limited::Admitted(permit),
        Err(over) => {
            app.metrics.count_refusal(over.limit);
            let standing = over.standing.clone();
            Limited::Refused(refusal(&over), standing)
        }
    }
}

/// Prompt tokens, estimated before the answer: one per four bytes of the prompt's fields.
fn estimate(request: &Request) -> u64 {
    request.prompt_bytes().div_ceil(4)
}

/// 429 naming the scope, who (an alias, never a key), the limit and its value; `Retry-After`
/// is when a unit of it frees up.
pub fn refusal(over: &OverLimit) -> GatewayError {
    let retry = over.retry_after_s();
    let who = match over.scope {
        "key" => format!("key {}", over.label),
        "key_model" => format!("key × model {}", over.label),
        "end_user" => format!("end user {}", over.label),
        other => format!("{other} {}", over.label),
    };
    let setting = match (over.scope, over.limit) {
        ("key_model", "rpm_limit") => "model_rpm_limit",
        ("key_model", "tpm_limit") => "model_tpm_limit",
        (_, limit) => limit,
    };
    let unit = match over.limit {
        "rpm_limit" => " requests per minute",
        "tpm_limit" => " tokens per minute",
        _ => " requests in flight",
    };
    let counted = if over.shared {
        "counted across gateway instances"
    } else {
        "counted in this gateway process"
    };
    let mut details = serde_json::Map::new();
    details.insert("scope".into(), over.scope.into());
    details.insert("entity_id".into(), over.label.clone().into());
    details.insert("limit".into(), over.value.into());
    GatewayError::new(
        ErrorKind::RateLimited,
        format!(
            "rate limit exceeded: {who} is over its {setting} of {}{unit} ({counted}); retry after {retry} s",
            over.value
        ),
    )
    .with_code(over.limit)
    .with_retry_after(retry)
    .with_details(details)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_refusal_names_scope_entity_limit_and_value() {
        let over = OverLimit {
            scope: "key_model",
            label: "ci/gpt".into(),
            limit: "rpm_limit",
            value: 10,
            retry_after: Duration::from_millis(5_200),
            shared: true,
            standing: Vec::new(),
        };
        let e = refusal(&over);
        assert_eq!((e.status, e.retry_after_s), (429, Some(6)));
        let v = e.to_json();
        assert_eq!(v["error"]["code"], "rpm_limit");
        assert_eq!(v["error"]["type"], "rate_limit_error");
        assert_eq!(v["error"]["scope"], "key_model");
        assert_eq!(v["error"]["entity_id"], "ci/gpt");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("key × model ci/gpt is over its model_rpm_limit of 10 requests per minute"),
            "{msg}"
        );
        assert!(msg.contains("across gateway instances"), "{msg}");
    }
}
