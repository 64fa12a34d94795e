//! A circuit breaker for a dependency the gateway can live without (Redis today: the response
//! cache; tomorrow the shared rate-limit counters).
//!
//! Without it, a dead or hung dependency costs every request a full operation timeout for the
//! whole outage, and logs a warning per operation. With it:
//!
//! - **closed**: operations run, each within `operation_timeout`; `failure_threshold` consecutive
//!   failures or timeouts open the circuit;
//! - **open**: operations are skipped at once (the caller degrades, e.g. the cache bypasses),
//!   and counted; after `retry_after` one probe operation is let through (**half-open**);
//! - a probe that succeeds closes the circuit; one that fails opens it again for twice as long,
//!   up to `max_retry_after`.
//!
//! Logging is rate-limited: one warning when the circuit opens (with the error), one line when it
//! closes, and at most one summary per [`SUMMARY_EVERY`] in between.
//!
//! The state machine takes the time as an argument, so unit tests drive the clock themselves.

use std::fmt::Display;
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tollgate_core::config::RedisGuard;

/// How often a circuit that stays open may repeat its warning.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

impl CircuitState {
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BreakerSettings {
    pub failure_threshold: u32,
    pub retry_after: Duration,
    pub max_retry_after: Duration,
    pub operation_timeout: Duration,
}

impl From<&RedisGuard> for BreakerSettings {
    fn from(g: &RedisGuard) -> Self {
        // The config loader only lets positive, finite numbers through.
        let secs = |s: f64| Duration::try_from_secs_f64(s).unwrap_or(Duration::from_secs(1));
        BreakerSettings {
            failure_threshold: g.failure_threshold.max(1),
            retry_after: secs(g.retry_after),
            max_retry_after: secs(g.max_retry_after.max(g.retry_after)),
            operation_timeout: secs(g.operation_timeout),
        }
    }
}

/// Why an operation did not produce a value.
#[derive(Debug, thiserror::Error)]
pub enum BreakerError<E> {
    #[error("skipped: the circuit is open")]
    Open,
    #[error("{0}")]
    Failed(E),
    #[error("timed out after {0:?}")]
    TimedOut(Duration),
}

/// A consistent view for readiness and metrics.
#[derive(Debug, Clone)]
pub struct BreakerSnapshot {
    pub state: CircuitState,
    /// When the current outage began (open/half-open) or when the circuit last closed.
    pub since: SystemTime,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    /// Operations let through (each one a real round trip, probes included).
    pub attempted: u64,
    pub failed: u64,
    /// Operations skipped at once because the circuit was open.
    pub skipped: u64,
    /// Operations let through while half-open, to test whether the dependency is back.
    pub probes: u64,
}

/// What the state machine asks to be logged; kept apart from the logging so tests can count it.
#[derive(Debug, Clone, PartialEq)]
enum Event {
    Opened {
        failures: u32,
        error: String,
        retry_in: Duration,
    },
    StillOpen {
        skipped: u64,
        error: String,
        retry_in: Duration,
    },
    Closed {
        outage: Duration,
        skipped: u64,
    },
}

struct Inner {
    state: CircuitState,
    since: SystemTime,
    /// Start of the current outage (monotonic), for the closing line.
    outage_start: Instant,
    consecutive_failures: u32,
    /// The current wait between probes.
    backoff: Duration,
    /// While open: when the next probe may go.
    retry_at: Instant,
    probe_in_flight: bool,
    last_error: Option<String>,
    skipped_since_summary: u64,
    last_summary: Instant,
}

pub struct Breaker {
    /// The dependency's name in log lines ("redis").
    name: &'static str,
    settings: BreakerSettings,
    inner: Mutex<Inner>,
    attempted: AtomicU64,
    failed: AtomicU64,
    skipped: AtomicU64,
    probes: AtomicU64,
    /// Every line logged, so tests can check the rate limit.
    #[cfg(test)]
    logged: Mutex<Vec<Event>>,
}

impl std::fmt::Debug for Breaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Breaker")
            .field("name", &self.name)
            .field("settings", &self.settings)
            .finish()
    }
}

/// Leave to run one operation. A probe dropped before it reports (its request went away) hands
/// the probe to the next caller instead of leaving the circuit half-open for ever.
struct Permit<'a> {
    breaker: &'a Breaker,
    probe: bool,
    reported: bool,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probe
            && !self.reported
            && let Ok(mut inner) = self.breaker.inner.lock()
        {
            inner.probe_in_flight = false;
        }
    }
}

impl Breaker {
    pub fn new(name: &'static str, settings: BreakerSettings) -> Self {
        let now = Instant::now();
        Breaker {
            name,
            inner: Mutex::new(Inner {
                state: CircuitState::Closed,
                since: SystemTime::now(),
                outage_start: now,
                consecutive_failures: 0,
                backoff: settings.retry_after,
                retry_at: now,
                probe_in_flight: false,
                last_error: None,
                skipped_since_summary: 0,
                last_summary: now,
            }),
            settings,
            attempted: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            probes: AtomicU64::new(0),
            #[cfg(test)]
            logged: Mutex::new(Vec::new()),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn operation_timeout(&self) -> Duration {
        self.settings.operation_timeout
    }

    /// Runs `op` within the operation timeout when the circuit lets it, and learns from the
    /// outcome. `op` is not polled at all when the circuit is open.
    pub async fn call<T, E, F>(&self, op: F) -> Result<T, BreakerError<E>>
    where
        E: Display,
        F: Future<Output = Result<T, E>>,
    {
        let Some(mut permit) = self.admit(Instant::now()) else {
            return Err(BreakerError::Open);
        };
        let outcome = tokio::time::timeout(self.settings.operation_timeout, op).await;
        permit.reported = true;
        match outcome {
            Ok(Ok(v)) => {
                self.succeeded(Instant::now());
                Ok(v)
            }
            Ok(Err(e)) => {
                self.failed(e.to_string(), Instant::now());
                Err(BreakerError::Failed(e))
            }
            Err(_) => {
                let t = self.settings.operation_timeout;
                self.failed(format!("timed out after {} ms", t.as_millis()), Instant::now());
                Err(BreakerError::TimedOut(t))
            }
        }
    }

    pub fn snapshot(&self) -> BreakerSnapshot {
        let (state, since, consecutive_failures, last_error) = match self.inner.lock() {
            Ok(i) => (i.state, i.since, i.consecutive_failures, i.last_error.clone()),
            Err(_) => (CircuitState::Open, SystemTime::now(), 0, None),
        };
        BreakerSnapshot {
            state,
            since,
            consecutive_failures,
            last_error,
            attempted: self.attempted.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            probes: self.probes.load(Ordering::Relaxed),
        }
    }

    fn admit(&self, now: Instant) -> Option<Permit<'_>> {
        let (probe, event) = {
            let Ok(mut inner) = self.inner.lock() else {
                // A panic while holding the lock cannot happen in this module; if it ever did,
                // skipping is the safe side.
                self.skipped.fetch_add(1, Ordering::Relaxed);
                return None;
            };
            let admitted = match inner.state {
                CircuitState::Closed => Some(false),
                CircuitState::Open if now >= inner.retry_at && !inner.probe_in_flight => {
                    inner.state = CircuitState::HalfOpen;
                    inner.probe_in_flight = true;
                    Some(true)
                }
                CircuitState::HalfOpen if !inner.probe_in_flight => {
                    inner.probe_in_flight = true;
                    Some(true)
                }
                CircuitState::Open | CircuitState::HalfOpen => None,
            };
            match admitted {
                Some(probe) => (Some(probe), None),
                None => {
                    inner.skipped_since_summary += 1;
                    (None, self.summary_due(&mut inner, now))
                }
            }
        };
        self.log(event);
        match probe {
            Some(probe) => {
                self.attempted.fetch_add(1, Ordering::Relaxed);
                if probe {
                    self.probes.fetch_add(1, Ordering::Relaxed);
                }
                Some(Permit {
                    breaker: self,
                    probe,
                    reported: false,
                })
            }
            None => {
                self.skipped.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    fn succeeded(&self, now: Instant) {
        let event = match self.inner.lock() {
            Ok(mut inner) => {
                inner.consecutive_failures = 0;
                inner.probe_in_flight = false;
                // Any success is evidence the dependency answers, probe or not.
                if inner.state == CircuitState::Closed {
                    None
                } else {
                    let event = Event::Closed {
                        outage: now.saturating_duration_since(inner.outage_start),
                        skipped: inner.skipped_since_summary,
                    };
                    inner.state = CircuitState::Closed;
                    inner.since = SystemTime::now();
                    inner.backoff = self.settings.retry_after;
                    inner.skipped_since_summary = 0;
                    Some(event)
                }
            }
            Err(_) => None,
        };
        self.log(event);
    }

    fn failed(&self, error: String, now: Instant) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let event = match self.inner.lock() {
            Ok(mut inner) => {
                inner.consecutive_failures = inner.consecutive_failures.saturating_add(1);
                inner.last_error = Some(error.clone());
                match inner.state {
                    CircuitState::Closed if inner.consecutive_failures >= self.settings.failure_threshold => {
                        inner.state = CircuitState::Open;
                        inner.since = SystemTime::now();
                        inner.outage_start = now;
                        inner.backoff = self.settings.retry_after;
                        inner.retry_at = now + inner.backoff;
                        inner.skipped_since_summary = 0;
                        inner.last_summary = now;
                        Some(Event::Opened {
                            failures: inner.consecutive_failures,
                            error,
                            retry_in: inner.backoff,
                        })
                    }
                    CircuitState::Closed => {
                        // Below the threshold: counted, not logged as a warning (one slow reply
                        // is not an outage).
                        tracing::debug!("{} operation failed: {error}", self.name);
                        None
                    }
                    CircuitState::HalfOpen => {
                        // The probe failed: wait twice as long before the next one.
                        inner.probe_in_flight = false;
                        inner.backoff = (inner.backoff * 2).min(self.settings.max_retry_after);
                        inner.state = CircuitState::Open;
                        inner.retry_at = now + inner.backoff;
                        self.summary_due(&mut inner, now)
                    }
                    // An operation admitted before the circuit opened, failing late.
                    CircuitState::Open => None,
                }
            }
            Err(_) => None,
        };
        self.log(event);
    }

    /// A summary of the outage at most once per [`SUMMARY_EVERY`].
    fn summary_due(&self, inner: &mut Inner, now: Instant) -> Option<Event> {
        if now.saturating_duration_since(inner.last_summary) < SUMMARY_EVERY {
            return None;
        }
        inner.last_summary = now;
        Some(Event::StillOpen {
            skipped: inner.skipped_since_summary,
            error: inner.last_error.clone().unwrap_or_default(),
            retry_in: inner.retry_at.saturating_duration_since(now),
        })
    }

    fn write_log(&self, event: Option<Event>) {
        let name = self.name;
        match event {
            None => {}
            Some(Event::Opened {
                failures,
                error,
                retry_in,
            }) => tracing::warn!(
                "{name} circuit open after {failures} consecutive failures ({error}); skipping {name} operations, next try in {} ms",
                retry_in.as_millis()
            ),
            Some(Event::StillOpen {
                skipped,
                error,
                retry_in,
            }) => tracing::warn!(
                "{name} circuit still open: {skipped} operations skipped so far, last error: {error}; next try in {} ms",
                retry_in.as_millis()
            ),
            Some(Event::Closed { outage, skipped }) => tracing::info!(
                "{name} circuit closed: {name} answers again after {} ms ({skipped} operations skipped meanwhile)",
                outage.as_millis()
            ),
        }
    }

    fn log(&self, event: Option<Event>) {
        #[cfg(test)]
        if let (Some(e), Ok(mut logged)) = (&event, self.logged.lock()) {
            logged.push(e.clone());
        }
        self.write_log(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(
            "redis",
            BreakerSettings {
                failure_threshold: 3,
                retry_after: Duration::from_secs(1),
                max_retry_after: Duration::from_secs(4),
                operation_timeout: Duration::from_millis(250),
            },
        )
    }

    /// One operation at `now` that fails (`ok == false`) or succeeds; `None` when it was skipped.
    fn op(b: &Breaker, now: Instant, ok: bool) -> Option<()> {
        let mut permit = b.admit(now)?;
        permit.reported = true;
        if ok {
            b.succeeded(now);
        } else {
            b.failed("connection refused".into(), now);
        }
        Some(())
    }

    #[test]
    fn opens_after_the_threshold_probes_with_doubling_backoff_and_closes_on_success() {
        let b = breaker();
        let t0 = Instant::now();
        let s = |secs: f64| t0 + Duration::from_secs_f64(secs);
        // A success in between resets the count: failures must be consecutive.
        op(&b, t0, false).unwrap();
        op(&b, t0, false).unwrap();
        op(&b, t0, true).unwrap();
        assert_eq!(b.snapshot().consecutive_failures, 0);
        for _ in 0..3 {
            op(&b, t0, false).unwrap();
        }
        assert_eq!(b.snapshot().state, CircuitState::Open);
        // Open: every operation is skipped until retry_after has passed.
        for _ in 0..100 {
            assert!(op(&b, s(0.5), true).is_none());
        }
        // One probe at 1 s; it fails, so the next one waits 2 s, then 4 s (the cap), then 4 s.
        let mut probe_times = Vec::new();
        let mut t = 0.0;
        while t < 12.0 {
            if op(&b, s(t), false).is_some() {
                probe_times.push(t);
            }
            t += 0.25;
        }
        assert_eq!(probe_times, vec![1.0, 3.0, 7.0, 11.0]);
        let snap = b.snapshot();
        assert_eq!(snap.state, CircuitState::Open);
        assert_eq!((snap.attempted, snap.failed, snap.probes), (10, 9, 4));
        assert_eq!(snap.skipped, 100 + 48 - 4);
        assert_eq!(snap.last_error.as_deref(), Some("connection refused"));
        // A probe that succeeds closes the circuit and resets the wait.
        op(&b, s(15.0), true).unwrap();
        assert_eq!(b.snapshot().state, CircuitState::Closed);
        for _ in 0..3 {
            op(&b, s(16.0), false).unwrap();
        }
        assert!(op(&b, s(16.5), true).is_none());
        assert!(op(&b, s(17.0), true).is_some(), "back to retry_after, not 4 s");
    }

    #[test]
    fn only_one_probe_at_a_time_and_an_abandoned_probe_is_handed_on() {
        let b = breaker();
        let t0 = Instant::now();
        for _ in 0..3 {
            op(&b, t0, false).unwrap();
        }
        let later = t0 + Duration::from_secs(2);
        let probe = b.admit(later).unwrap();
        assert_eq!(b.snapshot().state, CircuitState::HalfOpen);
        assert!(b.admit(later).is_none(), "a second probe while one is in flight");
        // The probe's request went away before Redis answered.
        drop(probe);
        assert!(b.admit(later).is_some(), "the next caller probes instead");
    }

    #[test]
    fn an_outage_logs_one_line_when_it_opens_one_summary_per_period_and_one_when_it_closes() {
        let b = breaker();
        let t0 = Instant::now();
        let mut t = t0;
        // Ten minutes of outage with an operation every 100 ms.
        while t < t0 + Duration::from_secs(600) {
            let _ = op(&b, t, false);
            t += Duration::from_millis(100);
        }
        op(&b, t + Duration::from_secs(60), true).unwrap();
        let logged = b.logged.lock().unwrap().clone();
        let opened = logged.iter().filter(|e| matches!(e, Event::Opened { .. })).count();
        let summaries = logged.iter().filter(|e| matches!(e, Event::StillOpen { .. })).count();
        let closed = logged.iter().filter(|e| matches!(e, Event::Closed { .. })).count();
        assert_eq!((opened, closed), (1, 1), "{logged:?}");
        assert!((9..=10).contains(&summaries), "one summary a minute: {summaries}");
        assert!(matches!(&logged[0], Event::Opened { failures: 3, error, .. } if error == "connection refused"));
    }

    #[tokio::test]
    async fn call_times_out_a_hung_operation_and_never_polls_a_skipped_one() {
        let b = Breaker::new(
            "redis",
            BreakerSettings {
                failure_threshold: 1,
                retry_after: Duration::from_secs(3600),
                max_retry_after: Duration::from_secs(3600),
                operation_timeout: Duration::from_millis(20),
            },
        );
        let hung = b.call(std::future::pending::<Result<(), String>>()).await;
        assert!(matches!(hung, Err(BreakerError::TimedOut(_))));
        assert_eq!(b.snapshot().state, CircuitState::Open);
        let polled = std::sync::atomic::AtomicBool::new(false);
        let skipped = b
            .call(async {
                polled.store(true, Ordering::Relaxed);
                Ok::<_, String>(())
            })
            .await;
        assert!(matches!(skipped, Err(BreakerError::Open)));
        assert!(!polled.load(Ordering::Relaxed));
    }
}
