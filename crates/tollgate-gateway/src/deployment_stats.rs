//! How each deployment has been doing: in-flight requests, a moving latency average, the
//! current minute's requests, tokens and failures, and the cooldown that `allowed_fails` and
//! `cooldown_time` start. The router reads it to choose; the pipeline writes it as attempts end.
//!
//! State is per deployment and lives in the live state, so a reload starts it afresh.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tollgate_core::Fault;
use tollgate_core::routing::RouterSettings;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Requests, tokens and failures in the current minute (LiteLLM's windows are per minute too).
#[derive(Debug, Default)]
struct Window {
    minute: u64,
    requests: u64,
    tokens: u64,
    fails: u32,
}

impl Window {
    fn roll(&mut self, now_ms: u64) {
        let minute = now_ms / 60_000;
        if minute != self.minute {
            *self = Window {
                minute,
                ..Window::default()
            };
        }
    }
}

#[derive(Debug, Default)]
pub struct DeploymentStats {
    in_flight: AtomicU64,
    /// Moving average of successful latencies, microseconds (0: no sample yet).
    latency_us: AtomicU64,
    cooldown_until_ms: AtomicU64,
    window: Mutex<Window>,
}

impl DeploymentStats {
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Moving average of successful latencies in microseconds (0 before the first success).
    pub fn latency_us(&self) -> u64 {
        self.latency_us.load(Ordering::Relaxed)
    }

    pub fn cooling_down(&self) -> bool {
        self.cooldown_until_ms.load(Ordering::Relaxed) > now_ms()
    }

    /// Requests and tokens in the current minute.
    pub(crate) fn usage(&self) -> (u64, u64) {
        match self.window.lock() {
            Ok(mut w) => {
                w.roll(now_ms());
                (w.requests, w.tokens)
            }
            Err(_) => (0, 0),
        }
    }

    /// Called when a request is sent to this deployment.
    pub fn started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut w) = self.window.lock() {
            w.roll(now_ms());
            w.requests += 1;
        }
    }

    /// An attempt that ended without saying anything about the deployment (a test hook answered
    /// in its place, a concurrent attempt was cancelled): its in-flight count is given back only.
    pub fn released(&self) {
        let _ = self
            .in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| Some(n.saturating_sub(1)));
    }

    /// Called once per started request when it ends: `None` on success, else whose fault the
    /// failure was. Only the deployment's own faults count toward `allowed_fails`: a client's
    /// malformed body or cancelled stream says nothing about the deployment's health.
    pub fn finished(&self, failure: Option<Fault>, latency_ms: f64, tokens: u64, settings: &RouterSettings) {
        let _ = self
            .in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| Some(n.saturating_sub(1)));
        let Ok(mut w) = self.window.lock() else { return };
        w.roll(now_ms());
        w.tokens += tokens;
        match failure {
            None => {
                let sample = (latency_ms * 1000.0) as u64;
                let old = self.latency_us.load(Ordering::Relaxed);
                // An average that forgets: recent latency matters, one outlier does not dominate.
                let new = if old == 0 { sample } else { (old * 4 + sample) / 5 };
                self.latency_us.store(new.max(1), Ordering::Relaxed);
            }
            Some(Fault::Deployment) => {
                w.fails += 1;
                if w.fails > settings.allowed_fails {
                    // Saturating: a huge `cooldown_time` must mean "long", never wrap to "over".
                    let until = now_ms().saturating_add((settings.cooldown_time * 1000.0) as u64);
                    self.cooldown_until_ms.store(until, Ordering::Relaxed);
                    w.fails = 0;
                    tracing::warn!(
                        "deployment cooling down for {} s after repeated failures",
                        settings.cooldown_time
                    );
                }
            }
            Some(Fault::Client | Fault::Gateway) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_deployment_faults_cool_a_deployment_down() {
        let s = RouterSettings {
            allowed_fails: 1,
            cooldown_time: 60.0,
            ..RouterSettings::default()
        };
        let stats = DeploymentStats::default();
        for _ in 0..10 {
            stats.started();
            stats.finished(Some(Fault::Client), 1.0, 0, &s);
        }
        assert!(!stats.cooling_down(), "client faults must not cool a deployment down");
        for _ in 0..2 {
            stats.started();
            stats.finished(Some(Fault::Deployment), 1.0, 0, &s);
        }
        assert!(stats.cooling_down());
    }

    #[test]
    fn a_huge_cooldown_time_does_not_wrap_around() {
        let s = RouterSettings {
            allowed_fails: 0,
            cooldown_time: 1e308,
            ..RouterSettings::default()
        };
        let stats = DeploymentStats::default();
        stats.started();
        stats.finished(Some(Fault::Deployment), 1.0, 0, &s);
        assert!(stats.cooling_down());
    }
}
