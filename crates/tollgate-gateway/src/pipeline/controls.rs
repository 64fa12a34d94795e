//! Stage 4e, request controls: the routing settings a LiteLLM client puts in its request —
//! `fallbacks`, `context_window_fallbacks`, `num_retries`, `timeout` in the body and the
//! `x-litellm-timeout` header — read into the [`Plan`] the route stage follows, and the groups
//! they name checked before any attempt: each must exist (400) and be one the key may call (401).
//!
//! A request's own setting wins over `router_settings` for that request, as in LiteLLM.

use std::time::Duration;

use axum::http::HeaderMap;
use serde_json::Value;
use tollgate_core::{ErrorKind, GatewayError};

use crate::body::RequestBody;
use crate::pipeline::authenticate::Caller;
use crate::pipeline::route::{Fallbacks, Plan};
use crate::pipeline::test_hooks::TestHooks;
use crate::state::{LiveState, Target};

/// The request's own routing settings, as read from its body and headers.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Controls {
    pub fallbacks: Option<Vec<String>>,
    pub context_window_fallbacks: Option<Vec<String>>,
    pub num_retries: Option<u32>,
    pub timeout: Option<Duration>,
}

impl Controls {
    /// The route stage's plan for this request (the test hooks ride along: they act per attempt).
    pub(crate) fn plan(&self, hooks: TestHooks) -> Plan<'_> {
        Plan {
            fallbacks: match &self.fallbacks {
                Some(list) => Fallbacks::Only(list),
                None => Fallbacks::Router,
            },
            context_window_fallbacks: self.context_window_fallbacks.as_deref(),
            num_retries: self.num_retries,
            timeout: self.timeout,
            hooks,
            forwarded: Vec::new(),
        }
    }
}

fn bad(param: &str, message: String) -> GatewayError {
    GatewayError::new(ErrorKind::InvalidRequest, message).with_param(param)
}

/// Reads the controls of a request for `group` (the name the client asked for, and the group it
/// resolved to: LiteLLM's `[{"group": [...]}]` form is keyed by either).
pub(crate) fn read(
    headers: &HeaderMap,
    body: &RequestBody,
    requested: &str,
    group: &str,
) -> Result<Controls, GatewayError> {
    let mut c = Controls {
        fallbacks: fallback_list(body, "fallbacks", requested, group)?,
        context_window_fallbacks: fallback_list(body, "context_window_fallbacks", requested, group)?,
        ..Controls::default()
    };
    if let Some(raw) = body.raw("num_retries") {
        c.num_retries = match serde_json::from_str::<Value>(raw) {
            Ok(Value::Null) => None,
            Ok(v) => Some(v.as_u64().filter(|n| *n <= 100).ok_or_else(|| {
                bad(
                    "num_retries",
                    format!("`num_retries` must be a whole number from 0 to 100, not {raw}"),
                )
            })? as u32),
            Err(_) => None,
        };
    }
    if let Some(raw) = body.raw("timeout") {
        c.timeout = seconds("timeout", serde_json::from_str(raw).unwrap_or(Value::Null), raw)?;
    }
    // The header is how a client that cannot add body fields sets it; LiteLLM copies it over
    // the body's `timeout`.
    if let Some(h) = headers.get("x-litellm-timeout") {
        let text = h.to_str().unwrap_or_default().trim();
        let v = text.parse::<f64>().map(Value::from).unwrap_or(Value::Null);
        c.timeout = seconds("x-litellm-timeout", v, text)?;
    }
    Ok(c)
}

/// A positive number of seconds (LiteLLM's float), or `None` for `null`.
fn seconds(param: &str, v: Value, raw: &str) -> Result<Option<Duration>, GatewayError> {
    if v.is_null() && raw.trim() == "null" {
        return Ok(None);
    }
    v.as_f64()
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 86_400.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .map(Some)
        .ok_or_else(|| {
            bad(
                param,
                format!("`{param}` must be a number of seconds above 0 (at most a day), not {raw}"),
            )
        })
}

/// `["b", "c"]`, or LiteLLM's `[{"a": ["b", "c"]}]` keyed by the model group (entries for other
/// groups do not apply to this request). `None` when the field is absent or `null`.
fn fallback_list(
    body: &RequestBody,
    field: &str,
    requested: &str,
    group: &str,
) -> Result<Option<Vec<String>>, GatewayError> {
    let shape = || {
        bad(
            field,
            format!("`{field}` must be a list of model names, or of {{\"model\": [\"fallback\", …]}} objects"),
        )
    };
    let Some(v) = body.get::<Value>(field) else {
        return if body.contains(field) { Err(shape()) } else { Ok(None) };
    };
    let items = match v {
        Value::Null => return Ok(None),
        Value::Array(items) => items,
        _ => return Err(shape()),
    };
    let mut out = Vec::new();
    for item in items {
        match item {
            Value::String(s) => out.push(s),
            Value::Object(map) => {
                for (from, to) in map {
                    let names = to.as_array().ok_or_else(shape)?;
                    let names: Vec<String> = names
                        .iter()
                        .map(|n| n.as_str().map(str::to_string).ok_or_else(shape))
                        .collect::<Result<_, _>>()?;
                    if from == requested || from == group {
                        out.extend(names);
                    }
                }
            }
            _ => return Err(shape()),
        }
    }
    out.retain(|g| g != group && g != requested);
    out.dedup();
    Ok(Some(out))
}

/// Every group the controls name exists as a model group and the caller may call it: refused
/// before any attempt, so a typo is the client's 400, not a fallback failing at the end.
pub(crate) fn check(live: &LiveState, caller: &Caller, c: &Controls) -> Result<(), GatewayError> {
    let named = [
        ("fallbacks", &c.fallbacks),
        ("context_window_fallbacks", &c.context_window_fallbacks),
    ];
    for (field, list) in named {
        for name in list.iter().flatten() {
            let resolved = match live.target(name) {
                Some(Target::Group(g)) => g.name.clone(),
                _ => {
                    return Err(bad(
                        field,
                        format!(
                            "`{field}` names `{name}`, which is not a model group of this gateway; known models: {}",
                            live.model_names().join(", ")
                        ),
                    )
                    .with_code("invalid_fallback"));
                }
            };
            crate::pipeline::access::check(caller, name, &resolved)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(s: &str) -> RequestBody {
        RequestBody::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn both_fallback_forms_are_read() {
        let h = HeaderMap::new();
        let c = read(&h, &body(r#"{"fallbacks":["b","c"]}"#), "a", "a").unwrap();
        assert_eq!(c.fallbacks, Some(vec!["b".to_string(), "c".to_string()]));
        let c = read(&h, &body(r#"{"fallbacks":[{"a":["b"]},{"x":["y"]}]}"#), "a", "a").unwrap();
        assert_eq!(c.fallbacks, Some(vec!["b".to_string()]));
        assert!(read(&h, &body(r#"{"fallbacks":"b"}"#), "a", "a").is_err());
        assert!(read(&h, &body(r#"{"fallbacks":[1]}"#), "a", "a").is_err());
        assert_eq!(read(&h, &body("{}"), "a", "a").unwrap(), Controls::default());
    }

    #[test]
    fn retries_and_timeouts_are_checked() {
        let mut h = HeaderMap::new();
        let c = read(&h, &body(r#"{"num_retries":3,"timeout":1.5}"#), "a", "a").unwrap();
        assert_eq!((c.num_retries, c.timeout), (Some(3), Some(Duration::from_millis(1500))));
        for bad_body in [
            r#"{"num_retries":-1}"#,
            r#"{"timeout":0}"#,
            r#"{"timeout":"x"}"#,
            r#"{"timeout":1e300}"#,
        ] {
            assert!(read(&h, &body(bad_body), "a", "a").is_err(), "{bad_body}");
        }
        h.insert("x-litellm-timeout", "0.25".parse().unwrap());
        let c = read(&h, &body(r#"{"timeout":9}"#), "a", "a").unwrap();
        assert_eq!(c.timeout, Some(Duration::from_millis(250)));
        h.insert("x-litellm-timeout", "soon".parse().unwrap());
        assert!(read(&h, &body("{}"), "a", "a").is_err());
    }
}
