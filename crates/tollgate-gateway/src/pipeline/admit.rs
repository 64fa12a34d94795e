//! Stage 2, admit: whether the gateway may take another request now, before its body is read:
//! the gateway-wide concurrency cap, `general_settings.global_max_parallel_requests`, protects
//! memory and connections, so it is checked before anything is buffered. The caller's own rate
//! limits need the model, so they are stage 4c's (`limits`, after access).

use tollgate_core::{ErrorKind, Fault, GatewayError};

use crate::app::App;
use crate::in_flight::{CAP_SETTING, InFlightSlot};
use crate::state::LiveState;

/// What `Retry-After` tells a client refused by the cap: requests finish in about that time, and
/// clients that honour it spread their retries instead of hammering a full gateway.
const CAP_RETRY_AFTER_S: u64 = 1;

/// Leave to go on: holds the request's in-flight slot and gives it back when dropped. Kept on
/// the request's draft, which lives until its record is closed: after the answer, at the end
/// of a stream, or when the client leaves.
#[derive(Debug)]
pub struct Admission {
    _slot: InFlightSlot,
}

/// `Ok` when the gateway may take the request; otherwise 429 with `retry-after`.
pub fn admit(app: &App, live: &LiveState) -> Result<Admission, GatewayError> {
    // The cap is read from this request's snapshot, so a reload applies to new requests while
    // the ones in flight keep their slots.
    let max = live.config.server.max_parallel_requests;
    let Some(slot) = app.in_flight.enter(max) else {
        app.metrics.count_refusal(CAP_SETTING);
        return Err(over_global_cap(max.unwrap_or_default()));
    };
    Ok(Admission { _slot: slot })
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
