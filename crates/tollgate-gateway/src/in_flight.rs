//! Requests in flight in the gateway, over all endpoints: the count behind
//! `general_settings.global_max_parallel_requests` and readiness's `in_flight`.
//!
//! A counter, not a semaphore: past the cap a request is refused at once (429), because waiting
//! for a slot is exactly the unbounded queue (and memory) the cap exists to prevent.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The cap's LiteLLM setting name; also the `code` of its 429 and its `reason` on `/metrics`,
/// so an alert, a log line and the config all say the same word.
pub const CAP_SETTING: &str = "global_max_parallel_requests";

/// How many requests hold an [`InFlightSlot`] right now.
#[derive(Debug, Default)]
pub struct InFlight {
    requests: AtomicU64,
}

impl InFlight {
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// A slot for one more request, or `None` when `max` requests are in flight already. With no
    /// cap the request is only counted (so readiness shows the load a cap would have to carry).
    pub fn enter(self: &Arc<Self>, max: Option<u64>) -> Option<InFlightSlot> {
        let max = max.unwrap_or(u64::MAX);
        // Compare-and-swap rather than add-then-check: a refused request never shows in the
        // count, even for a moment, so a burst past the cap cannot refuse requests under it.
        let mut now = self.requests.load(Ordering::Relaxed);
        loop {
            if now >= max {
                return None;
            }
            match self
                .requests
                .compare_exchange_weak(now, now + 1, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return Some(InFlightSlot { of: self.clone() }),
                Err(seen) => now = seen,
            }
        }
    }
}

/// One request's place in [`InFlight`], given back when dropped: hold it for as long as the
/// request is in flight (for a stream, until it ends or its client leaves).
#[derive(Debug)]
pub struct InFlightSlot {
    of: Arc<InFlight>,
}

impl Drop for InFlightSlot {
    fn drop(&mut self) {
        self.of.requests.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_up_to_the_cap_and_back_when_dropped() {
        let f = Arc::new(InFlight::default());
        let a = f.enter(Some(2)).unwrap();
        let b = f.enter(Some(2)).unwrap();
        assert!(f.enter(Some(2)).is_none(), "a third request past a cap of 2");
        assert_eq!(f.requests(), 2, "a refused request is not counted");
        drop(a);
        let c = f.enter(Some(2)).unwrap();
        assert_eq!(f.requests(), 2);
        drop((b, c));
        assert_eq!(f.requests(), 0);
    }

    #[test]
    fn without_a_cap_every_request_is_counted_and_admitted() {
        let f = Arc::new(InFlight::default());
        let slots: Vec<_> = (0..1000).map(|_| f.enter(None).unwrap()).collect();
        assert_eq!(f.requests(), 1000);
        drop(slots);
        assert_eq!(f.requests(), 0);
    }

    #[test]
    fn a_lowered_cap_admits_nothing_until_the_count_is_under_it() {
        let f = Arc::new(InFlight::default());
        let held: Vec<_> = (0..3).map(|_| f.enter(Some(3)).unwrap()).collect();
        // A reload lowered the cap to 1: the 3 in flight finish, new ones wait for the count.
        assert!(f.enter(Some(1)).is_none());
        drop(held);
        assert!(f.enter(Some(1)).is_some());
    }

    #[test]
    fn concurrent_entries_never_exceed_the_cap() {
        let f = Arc::new(InFlight::default());
        let admitted = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..100 {
                        if let Some(slot) = f.enter(Some(5)) {
                            admitted.lock().unwrap().push(slot);
                        }
                    }
                });
            }
        });
        assert_eq!(admitted.lock().unwrap().len(), 5);
        assert_eq!(f.requests(), 5);
    }
}
