//! Per-key rate limits, in this process: `rpm_limit` and `tpm_limit` over a sliding minute
//! (GCRA: a key may use its whole minute at once, then one request per 60/rpm s), and
//! `max_parallel_requests` as slots held until the request's record closes (answer, end of a
//! stream, error, client gone).
//!
//! Each limit keeps its own state, and a request refused by one does not use up another. Tokens
//! are counted when the request ends (its total, as LiteLLM does by default): a key under its
//! tpm is admitted, and what it used moves its window on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The window every limit is per.
const WINDOW: Duration = Duration::from_secs(60);

/// A refusal: which limit, its value, and when to try again.
#[derive(Debug, Clone, PartialEq)]
pub struct OverLimit {
    /// `rpm_limit`, `tpm_limit` or `max_parallel_requests`.
    pub limit: &'static str,
    pub value: u64,
    pub retry_after: Duration,
}

#[derive(Default)]
struct KeyState {
    /// GCRA's theoretical arrival time of the next request / token.
    requests_tat: Option<Instant>,
    tokens_tat: Option<Instant>,
    in_flight: u64,
}

/// Every key's limit state.
#[derive(Default)]
pub struct KeyLimits {
    keys: Mutex<HashMap<String, KeyState>>,
}

/// A parallel slot (and the key's token accounting) held by a request; given back on drop.
pub struct KeySlot {
    limits: Arc<KeyLimits>,
    token: String,
    parallel: bool,
    tpm: Option<u64>,
}

impl std::fmt::Debug for KeySlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySlot").field("parallel", &self.parallel).finish()
    }
}

impl Drop for KeySlot {
    fn drop(&mut self) {
        if self.parallel
            && let Ok(mut keys) = self.limits.keys.lock()
            && let Some(s) = keys.get_mut(&self.token)
        {
            s.in_flight = s.in_flight.saturating_sub(1);
        }
    }
}

impl KeySlot {
    /// The request used `tokens`: they count against the key's tpm from now.
    pub fn used_tokens(&self, tokens: u64) {
        let Some(limit) = self.tpm.filter(|l| *l > 0) else {
            return;
        };
        if tokens == 0 {
            return;
        }
        let now = Instant::now();
        if let Ok(mut keys) = self.limits.keys.lock() {
            let s = keys.entry(self.token.clone()).or_default();
            let per_token = WINDOW.as_secs_f64() / limit as f64;
            let tat = s.tokens_tat.map_or(now, |t| t.max(now));
            s.tokens_tat = Some(tat + Duration::from_secs_f64(per_token * tokens as f64));
        }
    }
}

impl KeyLimits {
    /// Requests the key may still send in the current minute under `rpm`.
    pub fn remaining_requests(&self, token: &str, rpm: u64) -> u64 {
        if rpm == 0 {
            return 0;
        }
        let now = Instant::now();
        let Ok(keys) = self.keys.lock() else {
            return 0;
        };
        let Some(tat) = keys.get(token).and_then(|s| s.requests_tat) else {
            return rpm;
        };
        let interval = WINDOW.as_secs_f64() / rpm as f64;
        let used = tat.saturating_duration_since(now).as_secs_f64() / interval;
        rpm.saturating_sub(used.ceil() as u64)
    }

    /// Admits a request of the key `token` under its limits, or says which limit refuses it.
    /// Checks all limits first and changes state only when all admit, so a refusal by one never
    /// uses up another.
    pub fn admit(
        self: &Arc<Self>,
        token: &str,
        rpm: Option<u64>,
        tpm: Option<u64>,
        parallel: Option<u64>,
    ) -> Result<KeySlot, OverLimit> {
        let now = Instant::now();
        let mut keys = match self.keys.lock() {
            Ok(k) => k,
            Err(p) => p.into_inner(),
        };
        let s = keys.entry(token.to_string()).or_default();
        if let Some(max) = parallel
            && s.in_flight >= max
        {
            return Err(OverLimit {
                limit: "max_parallel_requests",
                value: max,
                retry_after: Duration::from_secs(1),
            });
        }
        // tpm: admitted while the tokens already used leave room (the window is not full).
        if let Some(limit) = tpm.filter(|l| *l > 0)
            && let Some(tat) = s.tokens_tat
            && tat > now + WINDOW
        {
            return Err(OverLimit {
                limit: "tpm_limit",
                value: limit,
                retry_after: tat - (now + WINDOW),
            });
        }
        let mut next_requests_tat = s.requests_tat;
        if let Some(limit) = rpm {
            if limit == 0 {
                return Err(OverLimit {
                    limit: "rpm_limit",
                    value: 0,
                    retry_after: WINDOW,
                });
            }
            let interval = Duration::from_secs_f64(WINDOW.as_secs_f64() / limit as f64);
            let tat = s.requests_tat.map_or(now, |t| t.max(now)) + interval;
            if tat > now + WINDOW {
                return Err(OverLimit {
                    limit: "rpm_limit",
                    value: limit,
                    retry_after: tat - (now + WINDOW),
                });
            }
            next_requests_tat = Some(tat);
        }
        s.requests_tat = next_requests_tat;
        let counted = parallel.is_some();
        if counted {
            s.in_flight += 1;
        }
        Ok(KeySlot {
            limits: Arc::clone(self),
            token: token.to_string(),
            parallel: counted,
            tpm,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpm_admits_the_limit_then_refuses_with_the_wait() {
        let l = Arc::new(KeyLimits::default());
        let slots: Vec<_> = (0..10).map(|_| l.admit("k", Some(10), None, None).unwrap()).collect();
        let e = l.admit("k", Some(10), None, None).unwrap_err();
        assert_eq!((e.limit, e.value), ("rpm_limit", 10));
        assert!(
            e.retry_after <= Duration::from_secs(6) && e.retry_after > Duration::ZERO,
            "{e:?}"
        );
        // Another key is not affected.
        assert!(l.admit("other", Some(10), None, None).is_ok());
        drop(slots);
    }

    #[test]
    fn parallel_slots_come_back_when_requests_end_and_a_refusal_uses_nothing() {
        let l = Arc::new(KeyLimits::default());
        let a = l.admit("k", Some(100), None, Some(2)).unwrap();
        let _b = l.admit("k", Some(100), None, Some(2)).unwrap();
        let e = l.admit("k", Some(100), None, Some(2)).unwrap_err();
        assert_eq!(e.limit, "max_parallel_requests");
        drop(a);
        assert!(l.admit("k", Some(100), None, Some(2)).is_ok());
        // The refused request did not take an rpm unit: 2 + 1 admitted of 100, so 97 more fit.
        for _ in 0..97 {
            drop(l.admit("k", Some(100), None, None).unwrap());
        }
        assert_eq!(l.admit("k", Some(100), None, None).unwrap_err().limit, "rpm_limit");
    }

    #[test]
    fn tpm_is_not_tripped_below_its_value() {
        let l = Arc::new(KeyLimits::default());
        // 1,000 tpm: nine requests of 100 tokens, then one more still fits (900 < 1,000).
        for _ in 0..10 {
            let slot = l.admit("k", None, Some(1000), None).unwrap();
            slot.used_tokens(100);
        }
        // 1,000 used: the next one waits.
        let slot = l.admit("k", None, Some(1000), None);
        assert!(slot.is_ok(), "exactly at the limit the window is full but not over");
        slot.unwrap().used_tokens(100);
        let e = l.admit("k", None, Some(1000), None).unwrap_err();
        assert_eq!(e.limit, "tpm_limit");
    }
}
