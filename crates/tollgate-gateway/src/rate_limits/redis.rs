//! Rate limits counted in Redis, exact across every gateway instance sharing it: all scopes of a
//! request are checked and taken in one Lua script (`admit.lua`, run by EVALSHA), so no two
//! instances can both take the last unit.
//!
//! Keys are `{prefix}:{scope}:{entity}:{rpm|tpm|par}`, each with a TTL so an idle scope's keys
//! vanish. Parallel slots are leases: a sorted set of request ids scored by when their lease ends,
//! pruned by every admission. A request still running has its lease renewed every third of the
//! lease by one task per instance, so a slot outlives a long stream but not a crashed instance.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tollgate_core::config::RedisGuard;

use super::scope::{LimitScope, OverLimit, PARALLEL, RPM, Standing, TPM, Worst, tokens_cost_us};
use crate::breaker::{Breaker, BreakerError};
use crate::redis_link::RedisLink;

/// How long a parallel slot is held without renewal: what a crashed instance's requests keep
/// their slots for at most.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

pub struct RedisLimits {
    link: RedisLink,
    prefix: String,
    lease: Duration,
    /// Requests holding parallel slots on this instance, with their par keys: what is renewed.
    leases: Mutex<HashMap<String, Vec<String>>>,
    renewing: AtomicBool,
    admit: redis::Script,
    release: redis::Script,
    renew: redis::Script,
}

/// What Redis said about a request.
pub enum Answer {
    Admitted(Vec<Standing>, RedisHold),
    Refused(OverLimit),
    /// Redis did not answer (down, slow, circuit open, or a reply that makes no sense): the
    /// caller counts the request elsewhere.
    Unreachable(String),
}

/// What an admitted request holds in Redis, given back by [`RedisHold::release`].
pub struct RedisHold {
    /// Weak: a hold outliving its gateway (shut down) leaves its lease to expire.
    limits: Weak<RedisLimits>,
    request_id: String,
    par_keys: Vec<String>,
    tpm: Vec<(String, u64)>,
}

impl RedisHold {
    /// The request ended: off the request path (a spawned task; nothing here waits on Redis),
    /// its slots are removed and its tpm counters moved by `token_delta` tokens. When Redis is
    /// down this is lost: the leases then expire, and the estimate stays counted.
    pub fn release(&self, token_delta: i64) {
        let Some(limits) = self.limits.upgrade() else {
            return;
        };
        if !self.par_keys.is_empty()
            && let Ok(mut leases) = limits.leases.lock()
        {
            leases.remove(&self.request_id);
        }
        let corrections: Vec<(String, i64)> = if token_delta == 0 {
            Vec::new()
        } else {
            self.tpm
                .iter()
                .map(|(key, tpm)| {
                    let us = i64::try_from(tokens_cost_us(token_delta.unsigned_abs(), *tpm)).unwrap_or(i64::MAX);
                    (key.clone(), if token_delta < 0 { -us } else { us })
                })
                .filter(|(_, us)| *us != 0)
                .collect()
        };
        if self.par_keys.is_empty() && corrections.is_empty() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (id, par_keys) = (self.request_id.clone(), self.par_keys.clone());
        rt.spawn(async move {
            let mut inv = limits.release.prepare_invoke();
            for k in &par_keys {
                inv.key(k);
            }
            for (k, _) in &corrections {
                inv.key(k);
            }
            inv.arg(&id).arg(par_keys.len());
            for (_, us) in &corrections {
                inv.arg(*us);
            }
            let outcome = limits
                .link
                .run(|mut c| async move { inv.invoke_async::<i64>(&mut c).await })
                .await;
            if let Err(e) = outcome
                && !matches!(e, BreakerError::Open)
            {
                tracing::debug!("rate limits: releasing request {id} in Redis failed ({e}); its lease will expire");
            }
        });
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid Redis URL for rate limits: {0}")]
pub struct RedisUrlError(String);

impl RedisLimits {
    /// Does not connect: the first request with a limit does (most gateways sharing the cache's
    /// Redis never need a second connection to it). `guard`: the circuit breaker's settings
    /// (`tollgate_settings.redis`).
    pub fn new(url: &str, guard: &RedisGuard, prefix: &str, lease: Duration) -> Result<Arc<Self>, RedisUrlError> {
        let client = redis::Client::open(url).map_err(|e| RedisUrlError(e.to_string()))?;
        let limits = Arc::new(RedisLimits {
            // Its own circuit, apart from the cache's, so each outage is reported as its own.
            link: RedisLink::new(client, Breaker::new("redis_rate_limits", guard.into())),
            prefix: prefix.to_string(),
            lease: lease.max(Duration::from_millis(10)),
            leases: Mutex::new(HashMap::new()),
            renewing: AtomicBool::new(false),
            admit: redis::Script::new(include_str!("admit.lua")),
            release: redis::Script::new(include_str!("release.lua")),
            renew: redis::Script::new(include_str!("renew.lua")),
        });
        Ok(limits)
    }

    pub fn breaker(&self) -> &Breaker {
        self.link.breaker()
    }

    pub fn connected(&self) -> bool {
        self.link.connected()
    }

    fn key(&self, s: &LimitScope, kind: &str) -> String {
        format!("{}:{}:{}:{kind}", self.prefix, s.scope, s.entity)
    }

    /// Admits `request_id` under every scope's limits in one script, or says which refuses it.
    pub async fn admit(self: &Arc<Self>, request_id: &str, scopes: &[LimitScope], estimated_tokens: u64) -> Answer {
        let lease_us = u64::try_from(self.lease.as_micros()).unwrap_or(u64::MAX);
        let mut inv = self.admit.prepare_invoke();
        for s in scopes {
            inv.key(self.key(s, "rpm"))
                .key(self.key(s, "tpm"))
                .key(self.key(s, "par"));
        }
        inv.arg(lease_us).arg(request_id);
        let limit = |v: Option<u64>| v.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        for s in scopes {
            let cost = s.tpm.map_or(0, |tpm| tokens_cost_us(estimated_tokens, tpm));
            inv.arg(limit(s.rpm)).arg(limit(s.tpm)).arg(limit(s.parallel)).arg(cost);
        }
        let reply = match self
            .link
            .run(|mut c| async move { inv.invoke_async::<Vec<i64>>(&mut c).await })
            .await
        {
            Ok(r) => r,
            Err(e) => return Answer::Unreachable(e.to_string()),
        };
        self.read_reply(request_id, scopes, &reply)
    }

    fn read_reply(self: &Arc<Self>, request_id: &str, scopes: &[LimitScope], reply: &[i64]) -> Answer {
        if reply.len() != 4 + 2 * scopes.len() {
            return Answer::Unreachable(format!("unexpected reply from the rate-limit script: {reply:?}"));
        }
        let ahead = |i: usize, which: usize| u64::try_from(reply[4 + 2 * i + which]).unwrap_or(0);
        let standing = || {
            scopes
                .iter()
                .enumerate()
                .map(|(i, s)| Standing::of(s, ahead(i, 0), ahead(i, 1)))
                .collect::<Vec<_>>()
        };
        if reply[0] != 1 {
            let limit = match reply[2] {
                1 => RPM,
                2 => TPM,
                _ => PARALLEL,
            };
            let Some(s) = usize::try_from(reply[1] - 1).ok().and_then(|i| scopes.get(i)) else {
                return Answer::Unreachable(format!("the rate-limit script refused with no scope: {reply:?}"));
            };
            let mut worst = Worst::default();
            worst.over(s, limit, u64::try_from(reply[3]).unwrap_or(0));
            return match worst.refusal(true, standing) {
                Some(over) => Answer::Refused(over),
                None => Answer::Unreachable("no refusal".into()),
            };
        }
        let par_keys: Vec<String> = scopes
            .iter()
            .filter(|s| s.parallel.is_some())
            .map(|s| self.key(s, "par"))
            .collect();
        if !par_keys.is_empty() {
            if let Ok(mut leases) = self.leases.lock() {
                leases.insert(request_id.to_string(), par_keys.clone());
            }
            self.keep_renewing();
        }
        let hold = RedisHold {
            limits: Arc::downgrade(self),
            request_id: request_id.to_string(),
            par_keys,
            tpm: scopes
                .iter()
                .filter_map(|s| s.tpm.map(|tpm| (self.key(s, "tpm"), tpm)))
                .collect(),
        };
        Answer::Admitted(standing(), hold)
    }

    /// Starts the renewal task once. It holds the limits weakly and ends with them.
    fn keep_renewing(self: &Arc<Self>) {
        if self.renewing.swap(true, Ordering::Relaxed) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.renewing.store(false, Ordering::Relaxed);
            return;
        };
        let me = Arc::downgrade(self);
        let every = self.lease / 3;
        rt.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(limits) = me.upgrade() else {
                    return;
                };
                limits.renew_leases().await;
            }
        });
    }

    /// One script renewing every slot this instance holds.
    async fn renew_leases(&self) {
        let held: Vec<(String, String)> = match self.leases.lock() {
            Ok(l) => l
                .iter()
                .flat_map(|(id, keys)| keys.iter().map(move |k| (k.clone(), id.clone())))
                .collect(),
            Err(_) => return,
        };
        if held.is_empty() {
            return;
        }
        let lease_us = u64::try_from(self.lease.as_micros()).unwrap_or(u64::MAX);
        let mut inv = self.renew.prepare_invoke();
        for (k, _) in &held {
            inv.key(k);
        }
        inv.arg(lease_us);
        for (_, id) in &held {
            inv.arg(id);
        }
        if let Err(e) = self
            .link
            .run(|mut c| async move { inv.invoke_async::<i64>(&mut c).await })
            .await
            && !matches!(e, BreakerError::Open)
        {
            tracing::debug!(
                "rate limits: renewing {} parallel slot lease(s) failed: {e}",
                held.len()
            );
        }
    }
}
