//! Rate limits: `rpm_limit`, `tpm_limit` and `max_parallel_requests` per scope (key, user, team,
//! end user, key × model), each scope and limit type with its own counter. A request refused by
//! one limit takes nothing from any other: every limit is checked, then all are taken.
//!
//! - **rpm and tpm** are GCRA over a minute: a scope may use its whole minute at once, then one
//!   request per 60/rpm s (and tokens likewise); see [`scope`].
//! - **tokens**: the prompt's tokens are estimated up front (the caller's estimate: prompt bytes
//!   / 4) and counted at admission, so a burst of large prompts cannot all pass a nearly full
//!   window; when the request ends the estimate is corrected with the real usage, counted as
//!   `general_settings.token_rate_limit_type` says (total by default). A tpm limit trips only
//!   once the window is over its value, never below it.
//! - **parallel slots** are held by the [`LimitPermit`], which lives on the request's draft and
//!   gives them back when dropped: on completion, error, client disconnect and abort alike.
//!
//! Counted in Redis across instances when the config names one ([`redis`]), else in this
//! process ([`local`]). While that Redis does not answer, requests are counted in this process
//! instead: refusing every request because a counter store is down would turn a Redis outage
//! into a gateway outage, while per-process counters still hold each instance to the limits
//! (a scope may then get up to one full allowance per instance). The circuit breaker keeps that
//! from costing a timeout per request; the fallback is logged, counted and shown in readiness.

mod local;
mod redis;
mod scope;

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use tollgate_core::config::{GatewayConfig, RedisGuard, TokenRateLimitType};

pub use self::redis::{DEFAULT_LEASE, RedisUrlError};
pub use scope::{Allowance, LimitScope, OverLimit, PARALLEL, RPM, Standing, TPM};

use self::redis::{Answer, RedisHold, RedisLimits};
use crate::breaker::Breaker;
use local::{LocalHold, LocalLimits};

/// The gateway's rate limits, in Redis or in this process.
pub struct RateLimits {
    local: Arc<LocalLimits>,
    redis: Option<Arc<RedisLimits>>,
    token_type: AtomicU8,
    /// Admissions counted in this process because Redis did not answer.
    fallbacks: AtomicU64,
    /// The last admission fell back (so the next success says Redis is back).
    degraded: AtomicBool,
}

impl RateLimits {
    /// Counted in this process.
    pub fn local() -> RateLimits {
        RateLimits {
            local: Arc::default(),
            redis: None,
            token_type: AtomicU8::new(type_code(TokenRateLimitType::default())),
            fallbacks: AtomicU64::new(0),
            degraded: AtomicBool::new(false),
        }
    }

    /// Counted in the Redis at `url` under `prefix`; parallel slots leased for `lease`.
    pub fn redis(url: &str, guard: &RedisGuard, prefix: &str, lease: Duration) -> Result<RateLimits, RedisUrlError> {
        Ok(RateLimits {
            redis: Some(RedisLimits::new(url, guard, prefix, lease)?),
            ..RateLimits::local()
        })
    }

    /// As the config says: its rate-limit Redis when it names one, else local.
    pub fn from_config(config: &GatewayConfig) -> Result<RateLimits, RedisUrlError> {
        let limits = match &config.rate_limit_redis {
            Some(r) => RateLimits::redis(r.url.expose(), &config.redis, &config.rate_limit_prefix, DEFAULT_LEASE)?,
            None => RateLimits::local(),
        };
        limits.set_token_type(config.token_rate_limit_type);
        Ok(limits)
    }

    /// `general_settings.token_rate_limit_type` for requests admitted from now on.
    pub fn set_token_type(&self, t: TokenRateLimitType) {
        self.token_type.store(type_code(t), Ordering::Relaxed);
    }

    /// `redis` or `local`: where limits are counted (while Redis answers).
    pub fn backend(&self) -> &'static str {
        if self.redis.is_some() { "redis" } else { "local" }
    }

    /// The Redis circuit; `None` when counting locally.
    pub fn breaker(&self) -> Option<&Breaker> {
        self.redis.as_ref().map(|r| r.breaker())
    }

    pub fn connected(&self) -> bool {
        self.redis.as_ref().is_some_and(|r| r.connected())
    }

    /// Admissions counted in this process because Redis did not answer.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// Admits `request_id` under the limits of every scope (scopes without limits are skipped),
    /// taking one request, `estimated_tokens` prompt tokens and a parallel slot where limited;
    /// or refuses it having taken nothing.
    pub async fn admit(
        &self,
        request_id: &str,
        scopes: &[LimitScope],
        estimated_tokens: u64,
    ) -> Result<LimitPermit, OverLimit> {
        let token_type = type_of(self.token_type.load(Ordering::Relaxed));
        // Output-only counting has nothing to estimate up front: the prompt does not count.
        let estimate = if token_type == TokenRateLimitType::Output {
            0
        } else {
            estimated_tokens
        };
        // `limit_scopes` lists limited scopes only; another caller's unlimited ones are skipped.
        let limited: Cow<'_, [LimitScope]> = if scopes.iter().all(LimitScope::limited) {
            Cow::Borrowed(scopes)
        } else {
            Cow::Owned(scopes.iter().filter(|s| s.limited()).cloned().collect())
        };
        let permit = |standing, hold| LimitPermit {
            standing,
            token_type,
            estimate,
            counted: AtomicU64::new(0),
            hold,
        };
        if limited.is_empty() {
            return Ok(permit(Vec::new(), Hold::Nothing));
        }
        if let Some(r) = &self.redis {
            match r.admit(request_id, &limited, estimate).await {
                Answer::Admitted(standing, hold) => {
                    if self.degraded.swap(false, Ordering::Relaxed) {
                        tracing::info!("rate limits: Redis answers again; counting across instances");
                    }
                    return Ok(permit(standing, Hold::Redis(hold)));
                }
                Answer::Refused(over) => {
                    self.degraded.store(false, Ordering::Relaxed);
                    return Err(over);
                }
                Answer::Unreachable(why) => {
                    self.fallbacks.fetch_add(1, Ordering::Relaxed);
                    if !self.degraded.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            "rate limits: Redis did not answer ({why}); counting in this process until it does"
                        );
                    }
                }
            }
        }
        let (standing, hold) = self.local.admit(&limited, estimate)?;
        Ok(permit(standing, Hold::Local(hold)))
    }
}

fn type_code(t: TokenRateLimitType) -> u8 {
    match t {
        TokenRateLimitType::Input => 0,
        TokenRateLimitType::Output => 1,
        TokenRateLimitType::Total => 2,
    }
}

fn type_of(code: u8) -> TokenRateLimitType {
    match code {
        0 => TokenRateLimitType::Input,
        1 => TokenRateLimitType::Output,
        _ => TokenRateLimitType::Total,
    }
}

enum Hold {
    Nothing,
    Local(LocalHold),
    Redis(RedisHold),
}

/// An admitted request's share of its scopes' limits. Dropped with the request's draft, when
/// its record closes: parallel slots come back and the token estimate is corrected then.
pub struct LimitPermit {
    standing: Vec<Standing>,
    token_type: TokenRateLimitType,
    /// Tokens taken from each tpm limit at admission.
    estimate: u64,
    /// Tokens the request really used, as they count ([`LimitPermit::used_tokens`]).
    counted: AtomicU64,
    hold: Hold,
}

impl std::fmt::Debug for LimitPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimitPermit")
            .field("standing", &self.standing)
            .field("estimate", &self.estimate)
            .finish()
    }
}

impl LimitPermit {
    /// Where each scope stood right after admission (for the `x-ratelimit-*` headers).
    pub fn standing(&self) -> &[Standing] {
        &self.standing
    }

    /// The request (or, for a workflow run, one of its steps) used `input` prompt and `output`
    /// completion tokens. They replace the estimate when the permit is dropped; a run's steps
    /// add up.
    pub fn used_tokens(&self, input: u64, output: u64) {
        self.counted
            .fetch_add(self.token_type.count(input, output), Ordering::Relaxed);
    }
}

impl Drop for LimitPermit {
    fn drop(&mut self) {
        let counted = self.counted.load(Ordering::Relaxed);
        let delta = i64::try_from(counted).unwrap_or(i64::MAX) - i64::try_from(self.estimate).unwrap_or(i64::MAX);
        match &self.hold {
            Hold::Nothing => {}
            Hold::Local(h) => h.release(delta),
            Hold::Redis(h) => h.release(delta),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `actual` is `want`, or a little above it: counters drain as time passes (a tpm of 1,000
    /// frees a token every 60 ms), so a slow machine may see a few units back, never fewer.
    #[track_caller]
    fn about(actual: u64, want: u64, slack: u64) {
        assert!(
            (want..=want + slack).contains(&actual),
            "{actual}, expected {want} (+{slack})"
        );
    }

    fn key(rpm: Option<u64>, tpm: Option<u64>, parallel: Option<u64>) -> LimitScope {
        LimitScope {
            scope: "key",
            entity: "tok".into(),
            label: "k".into(),
            rpm,
            tpm,
            parallel,
        }
    }

    #[tokio::test]
    async fn a_permit_gives_its_slot_back_and_corrects_the_estimate_when_dropped() {
        let l = RateLimits::local();
        assert_eq!(l.backend(), "local");
        let k = [key(None, Some(1000), Some(1))];
        let p = l.admit("r1", &k, 400).await.unwrap();
        about(p.standing()[0].tokens.unwrap().remaining, 600, 5);
        assert_eq!(l.admit("r2", &k, 0).await.unwrap_err().limit, PARALLEL);
        p.used_tokens(30, 20);
        drop(p);
        let p = l.admit("r3", &k, 0).await.unwrap();
        about(p.standing()[0].tokens.unwrap().remaining, 950, 5);
    }

    #[tokio::test]
    async fn token_rate_limit_type_decides_what_counts() {
        let l = RateLimits::local();
        l.set_token_type(TokenRateLimitType::Output);
        let k = [key(None, Some(1000), None)];
        // Output only: the prompt's estimate is not taken, its tokens are not counted.
        let p = l.admit("r1", &k, 400).await.unwrap();
        about(p.standing()[0].tokens.unwrap().remaining, 1000, 5);
        p.used_tokens(300, 100);
        drop(p);
        let p = l.admit("r2", &k, 400).await.unwrap();
        about(p.standing()[0].tokens.unwrap().remaining, 900, 5);
        drop(p);
        l.set_token_type(TokenRateLimitType::Input);
        let p = l.admit("r3", &k, 50).await.unwrap();
        p.used_tokens(50, 500);
        drop(p);
        let p = l.admit("r4", &k, 0).await.unwrap();
        about(p.standing()[0].tokens.unwrap().remaining, 850, 5);
    }

    #[tokio::test]
    async fn a_workflow_runs_steps_add_up_on_its_one_permit() {
        let l = RateLimits::local();
        let k = [key(Some(10), Some(1000), None)];
        let run = std::sync::Arc::new(l.admit("run", &k, 100).await.unwrap());
        // Each step's draft holds the run's permit and reports its own tokens.
        let steps = [std::sync::Arc::clone(&run), std::sync::Arc::clone(&run)];
        steps[0].used_tokens(100, 50);
        steps[1].used_tokens(200, 50);
        drop(steps);
        drop(run);
        let p = l.admit("next", &k, 0).await.unwrap();
        about(p.standing()[0].tokens.unwrap().remaining, 600, 5);
        assert_eq!(
            p.standing()[0].requests.unwrap().remaining,
            8,
            "the run was one request"
        );
    }

    #[tokio::test]
    async fn scopes_without_limits_are_not_counted() {
        let l = RateLimits::local();
        let p = l.admit("r", &[key(None, None, None)], 10).await.unwrap();
        assert!(p.standing().is_empty());
    }
}
