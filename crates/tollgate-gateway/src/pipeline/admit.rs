//! Stage 2, admit: whether this caller may send a request now. The place where per-key model
//! lists, budgets and rate limits are checked; the master key is always admitted. Today it
//! enforces the gateway-wide concurrency cap, `general_settings.global_max_parallel_requests`.

use tollgate_core::{ErrorKind, Fault, GatewayError};

use crate::app::App;
use crate::in_flight::{CAP_SETTING, InFlightSlot};
use crate::key_limits::{KeySlot, OverLimit};
use crate::pipeline::authenticate::Caller;
use crate::state::LiveState;

/// What `Retry-After` tells a client refused by the cap: requests finish in about that time, and
/// clients that honour it spread their retries instead of hammering a full gateway.
const CAP_RETRY_AFTER_S: u64 = 1;

/// Leave to go on: holds what the request takes from shared limits (its in-flight slot) and
/// gives it back when dropped. Kept on the request's draft, which lives until its record is
/// closed: after the answer, at the end of a stream, or when the client leaves.
#[derive(Debug)]
pub struct Admission {
    _slot: InFlightSlot,
    /// The key's parallel slot and tpm accounting, for a virtual key with limits.
    key_slot: Option<KeySlot>,
}

impl Admission {
    /// The request ended having used `tokens`: they count against its key's tpm.
    pub fn used_tokens(&self, tokens: u64) {
        if let Some(k) = &self.key_slot {
            k.used_tokens(tokens);
        }
    }
}

/// `Ok` when the caller may go on; otherwise the refusal (403, 429 with `retry-after`, …).
pub fn admit(app: &App, caller: &Caller, live: &LiveState) -> Result<Admission, GatewayError> {
    // The cap is read from this request's snapshot, so a reload applies to new requests while
    // the ones in flight keep their slots.
    let max = live.config.server.max_parallel_requests;
    let Some(slot) = app.in_flight.enter(max) else {
        app.metrics.count_refusal(CAP_SETTING);
        return Err(over_global_cap(max.unwrap_or_default()));
    };
    let key_slot = match &caller.key {
        Some(k) if k.rpm_limit.is_some() || k.tpm_limit.is_some() || k.max_parallel_requests.is_some() => match app
            .key_limits
            .admit(&k.token, k.rpm_limit, k.tpm_limit, k.max_parallel_requests)
        {
            Ok(s) => Some(s),
            Err(over) => {
                app.metrics.count_refusal(over.limit);
                let entity = k.key_alias.clone().unwrap_or_else(|| k.key_name.clone());
                return Err(over_key_limit(&entity, &over));
            }
        },
        _ => None,
    };
    Ok(Admission { _slot: slot, key_slot })
}

/// 429 naming the key, the limit and its value; `Retry-After` is when a unit frees up.
fn over_key_limit(entity: &str, over: &OverLimit) -> GatewayError {
    let retry = over.retry_after.as_secs_f64().ceil().max(1.0) as u64;
    GatewayError::new(
        ErrorKind::RateLimited,
        format!(
            "key {entity} is over its {} of {} (counted in this gateway process); retry after {retry} s",
            over.limit, over.value
        ),
    )
    .with_code(over.limit)
    .with_retry_after(retry)
}

/// 429 in OpenAI's shape. The gateway's fault, not the client's: this request was fine, the
/// gateway is at the capacity it was configured for (and the client should retry, not fix it).
fn over_global_cap(max: u64) -> GatewayError {
    GatewayError::new(
        ErrorKind::RateLimited,
        format!(
            "the gateway is at its limit of {max} requests in flight (general_settings.global_max_parallel_requests: {max}); \
             retry after {CAP_RETRY_AFTER_S} s, or raise the setting"
        ),
    )
    .with_code(CAP_SETTING)
    .with_fault(Fault::Gateway)
    .with_retry_after(CAP_RETRY_AFTER_S)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_by_the_cap_is_a_429_naming_the_setting() {
        let e = over_global_cap(2);
        assert_eq!(
            (e.status, e.type_str(), e.fault()),
            (429, "rate_limit_error", Fault::Gateway)
        );
        assert_eq!(e.retry_after_s, Some(1));
        let v = e.to_json();
        assert_eq!(v["error"]["code"], "global_max_parallel_requests");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains("global_max_parallel_requests: 2"), "{msg}");
    }
}
