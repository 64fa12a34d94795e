//! Rate limits counted in this process: one GCRA counter per scope and limit type, and parallel
//! slots as a count. The backend when no Redis is configured, and the fallback while the
//! configured one is unreachable.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use super::scope::{
    LimitScope, OverLimit, PARALLEL, RPM, Standing, TPM, WINDOW_US, Worst, request_cost_us, tokens_cost_us,
};

/// Counters kept before idle ones are swept (the sweep then waits for twice as many).
const SWEEP_FROM: usize = 4096;

/// A counter's name: its scope and entity.
type CounterId = (&'static str, String);

/// One scope's state. TATs are µs on this backend's clock; at or before now means empty.
#[derive(Debug, Default)]
struct Counter {
    rpm_tat: u64,
    tpm_tat: u64,
    in_flight: u64,
}

impl Counter {
    fn idle(&self, now: u64) -> bool {
        self.rpm_tat <= now && self.tpm_tat <= now && self.in_flight == 0
    }
}

/// Counters by scope, then entity: found by borrowed names, so checking a request allocates
/// nothing.
#[derive(Default)]
struct Counters(HashMap<&'static str, HashMap<String, Counter>>);

impl Counters {
    fn get(&self, scope: &str, entity: &str) -> Option<&Counter> {
        self.0.get(scope)?.get(entity)
    }

    fn get_mut(&mut self, scope: &str, entity: &str) -> Option<&mut Counter> {
        self.0.get_mut(scope)?.get_mut(entity)
    }

    /// The counter, made when missing (the one allocation of an admission, per scope).
    fn entry(&mut self, scope: &'static str, entity: &str) -> &mut Counter {
        self.0.entry(scope).or_default().entry(entity.to_string()).or_default()
    }

    fn len(&self) -> usize {
        self.0.values().map(HashMap::len).sum()
    }

    fn retain_busy(&mut self, now: u64) {
        for of_scope in self.0.values_mut() {
            of_scope.retain(|_, c| !c.idle(now));
        }
    }
}

struct Table {
    counters: Counters,
    sweep_at: usize,
}

pub struct LocalLimits {
    epoch: Instant,
    table: Mutex<Table>,
}

impl Default for LocalLimits {
    fn default() -> Self {
        LocalLimits {
            epoch: Instant::now(),
            table: Mutex::new(Table {
                counters: Counters::default(),
                sweep_at: SWEEP_FROM,
            }),
        }
    }
}

/// What an admitted request holds here: its parallel slots, and the tpm counters its token
/// estimate went to (corrected when it ends).
pub struct LocalHold {
    limits: Arc<LocalLimits>,
    parallel: Vec<CounterId>,
    tpm: Vec<(CounterId, u64)>,
}

impl LocalHold {
    /// The request ended: its slots come back, and `token_delta` (tokens counted minus the
    /// estimate taken at admission) moves its tpm counters.
    pub fn release(&self, token_delta: i64) {
        let mut t = self.limits.lock();
        let now = self.limits.now();
        for (scope, entity) in &self.parallel {
            if let Some(c) = t.counters.get_mut(scope, entity) {
                c.in_flight = c.in_flight.saturating_sub(1);
            }
        }
        if token_delta != 0 {
            for ((scope, entity), tpm) in &self.tpm {
                if let Some(c) = t.counters.get_mut(scope, entity) {
                    c.tpm_tat = corrected(c.tpm_tat, now, token_delta, *tpm);
                }
            }
        }
    }
}

/// A TAT moved by `delta` tokens under `tpm`: more used starts from now at the earliest, less
/// used never goes below empty.
pub fn corrected(tat: u64, now: u64, delta: i64, tpm: u64) -> u64 {
    let cost = tokens_cost_us(delta.unsigned_abs(), tpm);
    if delta > 0 {
        tat.max(now).saturating_add(cost)
    } else {
        tat.saturating_sub(cost).max(now)
    }
}

impl LocalLimits {
    fn lock(&self) -> MutexGuard<'_, Table> {
        // Every change under the lock is a few integer updates that cannot panic half-way, so
        // a poisoned table is still consistent.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// µs since this backend started; never 0 after the first µs, so a TAT of 0 is "empty".
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Admits one request under every scope's limits, taking a request from each rpm, the
    /// estimate from each tpm and a slot from each parallel limit; or refuses it having taken
    /// nothing (every limit is checked before any is changed).
    pub fn admit(
        self: &Arc<Self>,
        scopes: &[LimitScope],
        estimated_tokens: u64,
    ) -> Result<(Vec<Standing>, LocalHold), OverLimit> {
        let mut t = self.lock();
        let now = self.now();
        let empty = Counter::default();
        let mut worst = Worst::default();
        for s in scopes {
            let c = t.counters.get(s.scope, &s.entity).unwrap_or(&empty);
            if let Some(max) = s.parallel
                && c.in_flight >= max
            {
                worst.over(s, PARALLEL, 1_000_000);
            }
            if let Some(tpm) = s.tpm {
                // Admitted while the window is not over its value: a tpm limit never trips
                // below it, and this request's own estimate is taken only once admitted.
                let ahead = c.tpm_tat.saturating_sub(now);
                if tpm == 0 {
                    worst.over(s, TPM, WINDOW_US);
                } else if ahead > WINDOW_US {
                    worst.over(s, TPM, ahead - WINDOW_US);
                }
            }
            if let Some(rpm) = s.rpm {
                match request_cost_us(rpm) {
                    None => worst.over(s, RPM, WINDOW_US),
                    Some(cost) => {
                        let ahead = c.rpm_tat.max(now) + cost - now;
                        if ahead > WINDOW_US {
                            worst.over(s, RPM, ahead - WINDOW_US);
                        }
                    }
                }
            }
        }
        let refusal = worst.refusal(false, || {
            scopes
                .iter()
                .map(|s| {
                    let c = t.counters.get(s.scope, &s.entity).unwrap_or(&empty);
                    Standing::of(s, c.rpm_tat.saturating_sub(now), c.tpm_tat.saturating_sub(now))
                })
                .collect()
        });
        if let Some(over) = refusal {
            return Err(over);
        }
        let mut hold = LocalHold {
            limits: Arc::clone(self),
            parallel: Vec::new(),
            tpm: Vec::new(),
        };
        let mut standing = Vec::with_capacity(scopes.len());
        for s in scopes {
            let c = t.counters.entry(s.scope, &s.entity);
            if let Some(cost) = s.rpm.and_then(request_cost_us) {
                c.rpm_tat = c.rpm_tat.max(now) + cost;
            }
            if let Some(tpm) = s.tpm {
                c.tpm_tat = c.tpm_tat.max(now) + tokens_cost_us(estimated_tokens, tpm);
                hold.tpm.push(((s.scope, s.entity.clone()), tpm));
            }
            if s.parallel.is_some() {
                c.in_flight += 1;
                hold.parallel.push((s.scope, s.entity.clone()));
            }
            standing.push(Standing::of(
                s,
                c.rpm_tat.saturating_sub(now),
                c.tpm_tat.saturating_sub(now),
            ));
        }
        sweep(&mut t, now);
        Ok((standing, hold))
    }
}

/// Drops counters that hold nothing any more, once there are many: scopes that stopped sending
/// must not stay in memory for ever.
fn sweep(t: &mut Table, now: u64) {
    if t.counters.len() < t.sweep_at {
        return;
    }
    t.counters.retain_busy(now);
    t.sweep_at = (t.counters.len() * 2).max(SWEEP_FROM);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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

    fn key(entity: &str, rpm: Option<u64>, tpm: Option<u64>, parallel: Option<u64>) -> LimitScope {
        LimitScope {
            scope: "key",
            entity: entity.into(),
            label: format!("alias-{entity}"),
            rpm,
            tpm,
            parallel,
        }
    }

    /// Admits with no token estimate and releases having used `tokens` at once.
    fn admit(l: &Arc<LocalLimits>, scopes: &[LimitScope]) -> Result<LocalHold, OverLimit> {
        l.admit(scopes, 0).map(|(_, h)| h)
    }

    #[test]
    fn rpm_admits_the_limit_then_refuses_with_the_wait() {
        let l = Arc::new(LocalLimits::default());
        let k = [key("k", Some(10), None, None)];
        let slots: Vec<_> = (0..10).map(|_| admit(&l, &k).unwrap()).collect();
        let e = admit(&l, &k).err().unwrap();
        assert_eq!(
            (e.limit, e.value, e.scope, e.label.as_str()),
            (RPM, 10, "key", "alias-k")
        );
        assert!(
            e.retry_after <= Duration::from_secs(6) && e.retry_after > Duration::ZERO,
            "{e:?}"
        );
        assert_eq!(e.standing[0].requests.unwrap().remaining, 0);
        // Another key is not affected.
        assert!(admit(&l, &[key("other", Some(10), None, None)]).is_ok());
        drop(slots);
    }

    #[test]
    fn parallel_slots_come_back_when_requests_end_and_a_refusal_uses_nothing() {
        let l = Arc::new(LocalLimits::default());
        let k = [key("k", Some(100), None, Some(2))];
        let a = admit(&l, &k).unwrap();
        let b = admit(&l, &k).unwrap();
        let e = admit(&l, &k).err().unwrap();
        assert_eq!(e.limit, PARALLEL);
        assert_eq!(e.retry_after_s(), 1);
        a.release(0);
        let c = admit(&l, &k).unwrap();
        // The refused request did not take an rpm unit: 3 admitted of 100, so 97 more fit.
        let rpm_only = [key("k", Some(100), None, None)];
        for _ in 0..97 {
            admit(&l, &rpm_only).unwrap().release(0);
        }
        assert_eq!(admit(&l, &rpm_only).err().unwrap().limit, RPM);
        b.release(0);
        c.release(0);
    }

    #[test]
    fn tpm_is_not_tripped_below_its_value() {
        let l = Arc::new(LocalLimits::default());
        let k = [key("k", None, Some(1000), None)];
        // 1,000 tpm: ten requests of 100 tokens, estimated at 0 and corrected when they end.
        for _ in 0..10 {
            let (standing, hold) = l.admit(&k, 0).unwrap();
            assert!(standing[0].tokens.unwrap().remaining > 0);
            hold.release(100);
        }
        // 1,000 used: the window is full but not over, so the next one is still admitted.
        let (standing, hold) = l.admit(&k, 0).expect("exactly at the limit is not over it");
        about(standing[0].tokens.unwrap().remaining, 0, 5);
        hold.release(100);
        let e = l.admit(&k, 0).err().unwrap();
        assert_eq!((e.limit, e.value), (TPM, 1000));
        // Over by 100 tokens: 6 s until the window is back at its value.
        assert!(e.retry_after <= Duration::from_secs(6), "{e:?}");
    }

    #[test]
    fn the_estimate_counts_at_once_and_is_corrected_when_the_request_ends() {
        let l = Arc::new(LocalLimits::default());
        let k = [key("k", None, Some(1000), None)];
        // A burst of large prompts: each takes its estimate when admitted, so the burst stops
        // once the window is over, before any of them has ended.
        // (The second still fits: 600 used is not over 1,000; 1,200 is.)
        let held: Vec<_> = (0..2).map(|_| l.admit(&k, 600).unwrap().1).collect();
        assert_eq!(l.admit(&k, 600).err().unwrap().limit, TPM);
        // They used far less than estimated: the correction gives the room back.
        for h in &held {
            h.release(10 - 600);
        }
        let (standing, _) = l.admit(&k, 0).unwrap();
        about(standing[0].tokens.unwrap().remaining, 980, 5);
    }

    #[test]
    fn scopes_are_independent_and_a_refusal_by_one_takes_nothing_from_another() {
        let l = Arc::new(LocalLimits::default());
        let key_scope = key("tok", Some(100), None, Some(5));
        let per_model = LimitScope {
            scope: "key_model",
            entity: "tok/m".into(),
            label: "alias-tok/m".into(),
            rpm: Some(2),
            tpm: None,
            parallel: None,
        };
        let both = [key_scope.clone(), per_model.clone()];
        let _a = admit(&l, &both).unwrap();
        let _b = admit(&l, &both).unwrap();
        let e = admit(&l, &both).err().unwrap();
        assert_eq!((e.scope, e.limit, e.value), ("key_model", RPM, 2));
        assert_eq!(e.label, "alias-tok/m");
        // The refusal took neither a request nor a parallel slot from the key's scope.
        let standing = &e.standing;
        assert_eq!(standing[0].requests.unwrap().remaining, 98);
        let (standing, _c) = l.admit(std::slice::from_ref(&key_scope), 0).unwrap();
        assert_eq!(standing[0].requests.unwrap().remaining, 97);
        // The same entity in another scope, and the same scope with another entity, are other counters.
        let user = LimitScope {
            scope: "user",
            ..key_scope.clone()
        };
        assert_eq!(l.admit(&[user], 0).unwrap().0[0].requests.unwrap().remaining, 99);
        let other_model = LimitScope {
            entity: "tok/n".into(),
            ..per_model
        };
        assert!(admit(&l, std::slice::from_ref(&other_model)).is_ok());
        assert!(admit(&l, &[other_model]).is_ok());
    }

    #[test]
    fn idle_counters_are_swept_once_there_are_many() {
        let l = Arc::new(LocalLimits::default());
        for i in 0..SWEEP_FROM + 10 {
            // Parallel only: released at once, so each counter is idle right away.
            admit(&l, &[key(&format!("k{i}"), None, None, Some(1))])
                .unwrap()
                .release(0);
        }
        assert!(l.lock().counters.len() < SWEEP_FROM, "{}", l.lock().counters.len());
    }
}
