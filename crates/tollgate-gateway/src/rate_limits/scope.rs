//! The vocabulary both backends speak: a scope with its limits, where a scope stands after a
//! request (what the rate-limit headers show), a refusal, and the one clock rule (GCRA over a
//! minute) they share.
//!
//! Every counter is a GCRA "theoretical arrival time" (TAT) in microseconds: how far ahead of now
//! the scope has used its allowance. A request costs `60 s / rpm`, a token `60 s / tpm`; the scope
//! is full when its TAT is a whole window ahead. Stored relative to now it reads directly as
//! "used" (µs ahead / cost of one unit) and "reset" (µs until the window is empty again).

use std::time::Duration;

/// The window every limit is per: a minute.
pub const WINDOW_US: u64 = 60_000_000;

/// Error codes, as LiteLLM names the settings.
pub const RPM: &str = "rpm_limit";
pub const TPM: &str = "tpm_limit";
pub const PARALLEL: &str = "max_parallel_requests";

/// One scope a request is counted in, with the limits that apply to it there.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitScope {
    /// `key`, `user`, `team`, `end_user` or `key_model`.
    pub scope: &'static str,
    /// Counter identity: the key's token (SHA-256 hex), a user or team id, an end user's id,
    /// `<token>/<model>`. Never shown.
    pub entity: String,
    /// What messages name it by: the key's alias (or `sk-...abcd`), a user id, …
    pub label: String,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub parallel: Option<u64>,
}

impl LimitScope {
    /// Whether any limit applies here (a scope without one is not counted at all).
    pub fn limited(&self) -> bool {
        self.rpm.is_some() || self.tpm.is_some() || self.parallel.is_some()
    }
}

/// How much of one limit is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    pub limit: u64,
    pub remaining: u64,
    /// Until the whole limit is available again.
    pub reset: Duration,
}

/// Where one scope stands right after a request was admitted (or refused): its requests and
/// tokens left in the window, for the `x-ratelimit-*` headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    pub scope: &'static str,
    pub requests: Option<Allowance>,
    pub tokens: Option<Allowance>,
}

impl Standing {
    /// From the scope's limits and its TATs relative to now (µs ahead, 0 when empty).
    pub fn of(scope: &LimitScope, rpm_ahead_us: u64, tpm_ahead_us: u64) -> Standing {
        Standing {
            scope: scope.scope,
            requests: scope.rpm.map(|limit| allowance(limit, rpm_ahead_us)),
            tokens: scope.tpm.map(|limit| allowance(limit, tpm_ahead_us)),
        }
    }
}

/// `limit` units a minute, with the TAT `ahead_us` ahead of now: units used are the TAT's
/// lead over the cost of one unit, rounded up.
fn allowance(limit: u64, ahead_us: u64) -> Allowance {
    let used = if limit == 0 {
        0
    } else {
        (u128::from(ahead_us) * u128::from(limit)).div_ceil(u128::from(WINDOW_US))
    };
    Allowance {
        limit,
        remaining: u128::from(limit).saturating_sub(used) as u64,
        reset: Duration::from_micros(ahead_us),
    }
}

/// The cost of one request under `rpm`, µs (rounded down, so the limit never trips below its
/// value). `None` for a limit of 0 (nothing is admitted).
pub fn request_cost_us(rpm: u64) -> Option<u64> {
    (rpm > 0).then(|| WINDOW_US / rpm)
}

/// The cost of `tokens` under `tpm`, µs (rounded down).
pub fn tokens_cost_us(tokens: u64, tpm: u64) -> u64 {
    if tpm == 0 {
        return 0;
    }
    u64::try_from(u128::from(tokens) * u128::from(WINDOW_US) / u128::from(tpm)).unwrap_or(u64::MAX)
}

/// A request refused: by which scope and limit, and when to try again.
#[derive(Debug, Clone, PartialEq)]
pub struct OverLimit {
    pub scope: &'static str,
    pub label: String,
    /// [`RPM`], [`TPM`] or [`PARALLEL`].
    pub limit: &'static str,
    pub value: u64,
    /// Until a unit of the limit frees (a parallel slot: unknown, so a second).
    pub retry_after: Duration,
    /// Counted across instances (Redis) rather than in this process.
    pub shared: bool,
    /// Where every scope of the request stood (nothing was taken from any of them).
    pub standing: Vec<Standing>,
}

impl OverLimit {
    /// `Retry-After` in whole seconds, at least 1.
    pub fn retry_after_s(&self) -> u64 {
        self.retry_after.as_micros().div_ceil(1_000_000).max(1) as u64
    }
}

/// The refusal with the longest wait among the limits a request is over: a client that waits
/// that long is not refused again by another of them.
#[derive(Debug, Default)]
pub struct Worst {
    found: Option<(LimitScope, &'static str, u64)>,
}

impl Worst {
    /// `scope` is over `limit`, which frees a unit in `wait_us`.
    pub fn over(&mut self, scope: &LimitScope, limit: &'static str, wait_us: u64) {
        if self.found.as_ref().is_none_or(|(_, _, w)| wait_us > *w) {
            self.found = Some((scope.clone(), limit, wait_us));
        }
    }

    /// The refusal, if any limit was over.
    pub fn refusal(self, shared: bool, standing: impl FnOnce() -> Vec<Standing>) -> Option<OverLimit> {
        let (s, limit, wait_us) = self.found?;
        let value = match limit {
            RPM => s.rpm,
            TPM => s.tpm,
            _ => s.parallel,
        }
        .unwrap_or(0);
        Some(OverLimit {
            scope: s.scope,
            label: s.label,
            limit,
            value,
            retry_after: Duration::from_micros(wait_us),
            shared,
            standing: standing(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(rpm: Option<u64>, tpm: Option<u64>) -> LimitScope {
        LimitScope {
            scope: "key",
            entity: "t".into(),
            label: "k".into(),
            rpm,
            tpm,
            parallel: None,
        }
    }

    #[test]
    fn standing_reads_units_used_from_the_tat() {
        // rpm 7: each request costs 8,571,428 µs; all seven leave nothing, none leaves seven.
        let cost = request_cost_us(7).unwrap();
        let s = Standing::of(&scope(Some(7), None), 7 * cost, 0);
        assert_eq!(s.requests.unwrap().remaining, 0);
        assert_eq!(Standing::of(&scope(Some(7), None), 0, 0).requests.unwrap().remaining, 7);
        assert_eq!(
            Standing::of(&scope(Some(7), None), cost, 0).requests.unwrap().remaining,
            6
        );
        // Part of a unit drained is still a unit used.
        assert_eq!(
            Standing::of(&scope(Some(7), None), cost - 5, 0)
                .requests
                .unwrap()
                .remaining,
            6
        );
        // tpm 1000: 250 tokens used leave 750, reset when the 15 s of lead have passed.
        let t = Standing::of(&scope(None, Some(1000)), 0, tokens_cost_us(250, 1000))
            .tokens
            .unwrap();
        assert_eq!((t.remaining, t.reset), (750, Duration::from_secs(15)));
    }

    #[test]
    fn the_longest_wait_is_the_refusal() {
        let scopes = [scope(Some(1), None), scope(None, Some(5))];
        assert!(Worst::default().refusal(false, Vec::new).is_none());
        let mut w = Worst::default();
        w.over(&scopes[0], RPM, 2_000_000);
        w.over(&scopes[1], TPM, 9_000_000);
        w.over(&scopes[0], PARALLEL, 1_000_000);
        let r = w.refusal(false, Vec::new).unwrap();
        assert_eq!((r.limit, r.value, r.retry_after_s()), (TPM, 5, 9));
        let mut short = Worst::default();
        short.over(&scopes[0], RPM, 1);
        assert_eq!(short.refusal(false, Vec::new).unwrap().retry_after_s(), 1);
    }
}
