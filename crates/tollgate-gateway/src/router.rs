//! Choosing a deployment and deciding what to do after a failure, with LiteLLM's
//! `router_settings` semantics: strategies, per-deployment rpm/tpm limits, cooldown after
//! `allowed_fails`, retries with exponential backoff and jitter (honouring `Retry-After`), and the
//! order of fallback groups.

use std::time::Duration;

use tollgate_core::routing::{RouterSettings, Strategy};
use tollgate_core::{Fault, GatewayError};

use crate::state::{Deployment, LiveState, ModelGroup};

/// Longest wait between two retries, whatever `Retry-After` asks for: a client is waiting.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// First backoff step when `retry_after` is not set.
const BASE_BACKOFF: Duration = Duration::from_millis(100);

fn within_limits(d: &Deployment) -> bool {
    let (requests, tokens) = d.stats.usage();
    d.config.rpm.is_none_or(|rpm| requests < rpm) && d.config.tpm.is_none_or(|tpm| tokens < tpm)
}

/// Picks a deployment of the group by the configured strategy, skipping deployments that are
/// cooling down or at their rpm/tpm limit. `None` when every deployment is unavailable.
pub fn pick(group: &ModelGroup, settings: &RouterSettings) -> Option<std::sync::Arc<Deployment>> {
    let ready: Vec<&std::sync::Arc<Deployment>> = group
        .deployments
        .iter()
        .filter(|d| !d.stats.cooling_down() && within_limits(d))
        .collect();
    if ready.is_empty() {
        return None;
    }
    let chosen = match settings.strategy {
        Strategy::SimpleShuffle => {
            let weight = |d: &Deployment| {
                d.config
                    .weight
                    .or(d.config.rpm.map(|r| r as f64))
                    .or(d.config.tpm.map(|t| t as f64))
                    .unwrap_or(1.0)
                    .max(0.0)
            };
            let total: f64 = ready.iter().map(|d| weight(d)).sum();
            let mut x = fastrand::f64() * total;
            let mut pick = ready[ready.len() - 1];
            for d in &ready {
                x -= weight(d);
                if x < 0.0 {
                    pick = d;
                    break;
                }
            }
            pick
        }
        Strategy::LeastBusy => *ready.iter().min_by_key(|d| d.stats.in_flight())?,
        // Untried deployments (0) go first, so every deployment gets measured.
        Strategy::LatencyBasedRouting => *ready.iter().min_by_key(|d| d.stats.latency_us())?,
        Strategy::UsageBasedRouting => *ready.iter().min_by_key(|d| d.stats.usage().1)?,
    };
    Some(chosen.clone())
}

/// Failures worth another try on the same group: rate limits, server errors, timeouts. A
/// client's fault is never retried or sent to a fallback: the same request fails the same way.
pub fn retryable(e: &GatewayError) -> bool {
    e.fault() == Fault::Deployment && matches!(e.status, 408 | 409 | 425 | 429 | 500..=599)
}

/// A provider saying the prompt does not fit: `context_window_fallbacks` apply.
pub fn is_context_window_error(status: u16, message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    (status == 400 || status == 413)
        && [
            "context length",
            "context window",
            "maximum context",
            "too many tokens",
            "prompt is too long",
        ]
        .iter()
        .any(|p| m.contains(p))
}

/// Exponential backoff with full jitter, at least `retry_after` (config) and the provider's
/// `Retry-After`.
pub fn backoff(retry: u32, settings: &RouterSettings, provider_retry_after: Option<Duration>) -> Duration {
    let base = Duration::from_secs_f64(settings.retry_after).max(BASE_BACKOFF);
    let exp = base.saturating_mul(1u32 << retry.min(6));
    let jittered = exp.mul_f64(0.5 + fastrand::f64() * 0.5);
    jittered.max(provider_retry_after.unwrap_or_default()).min(MAX_BACKOFF)
}

/// Groups to try after `group` fails: its own fallbacks, else the defaults, at most
/// `max_fallbacks`, never the group itself.
pub fn fallbacks(live: &LiveState, group: &str, context_window: bool) -> Vec<String> {
    let s = &live.config.router;
    let own = if context_window {
        s.context_window_fallbacks.get(group)
    } else {
        s.fallbacks.get(group)
    };
    let list = match own {
        Some(l) => l.clone(),
        None if !context_window => s.default_fallbacks.clone(),
        None => Vec::new(),
    };
    list.into_iter().filter(|g| g != group).take(s.max_fallbacks).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_honours_retry_after_and_is_capped() {
        let s = RouterSettings::default();
        let b0 = backoff(0, &s, None);
        assert!(
            b0 >= Duration::from_millis(50) && b0 <= Duration::from_millis(100),
            "{b0:?}"
        );
        let b3 = backoff(3, &s, None);
        assert!(
            b3 >= Duration::from_millis(400) && b3 <= Duration::from_millis(800),
            "{b3:?}"
        );
        assert_eq!(backoff(0, &s, Some(Duration::from_secs(2))), Duration::from_secs(2));
        assert_eq!(backoff(0, &s, Some(Duration::from_secs(600))), MAX_BACKOFF);
    }

    #[test]
    fn context_window_errors_are_recognised() {
        assert!(is_context_window_error(
            400,
            "This model's maximum context length is 8192 tokens"
        ));
        assert!(is_context_window_error(
            400,
            "prompt is too long: 210000 tokens > 200000 maximum"
        ));
        assert!(!is_context_window_error(400, "invalid temperature"));
        assert!(!is_context_window_error(500, "maximum context length"));
    }

    #[test]
    fn retryable_statuses() {
        let upstream = |s: u16| {
            GatewayError::new(tollgate_core::ErrorKind::Upstream, "x")
                .with_status(s)
                .with_fault(Fault::of_upstream_status(s))
        };
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(retryable(&upstream(s)), "{s}");
        }
        for s in [400, 401, 403, 404, 422] {
            assert!(!retryable(&upstream(s)), "{s}");
        }
        // A 5xx the gateway reports about the client (e.g. a client that left) is not retried.
        let client = GatewayError::new(tollgate_core::ErrorKind::Upstream, "x")
            .with_status(502)
            .with_fault(Fault::Client);
        assert!(!retryable(&client));
    }
}
