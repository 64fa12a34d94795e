//! The reports behind the overview and report pages, kept per viewer, range and language.
//!
//! A report is the whole aggregation over every record of its range (exact percentiles, the
//! findings), so its cost grows with the records: milliseconds for an hour of a team's traffic,
//! seconds for a month of a million records. A page must answer in well under a second either
//! way, so the policy is set by what the last build of the same report cost:
//!
//! - **cheap** (built within the live budget, `tollgate_settings.dashboard_live_report_ms`): built again for every visit, so the page
//!   is always current — what a small or quiet store gets;
//! - **expensive**: the kept snapshot is shown, with the time it was taken, until it is older than
//!   its range's `max_age`; then it is still shown while a new one is built in the background
//!   (stale-while-revalidate), and the next visit gets the new one. "Refresh" asks for a build now.
//!
//! A visit waits for a build at most [`Snapshots::wait`]; past that the page answers with what it
//! has (the older snapshot, marked as being refreshed, or "being computed" on the first visit),
//! and the build goes on. At most two builds run at once (two cores: a build reads on one thread
//! and aggregates on another), at a lower CPU priority than serving, and a build is never started
//! twice for the same report.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::{Semaphore, watch};
use tollgate_report::Report;

/// Reports kept at most (per viewer × range × language); the least recently built go first.
const KEPT: usize = 64;
/// Builds running at once.
const BUILDS: usize = 2;

/// Which report: who sees it (`admin` or a key's hash), its range (`24h`, or a custom
/// `since..until` as written) and its language.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SnapKey {
    pub scope: String,
    pub range: String,
    pub lang: &'static str,
}

/// What a build produces: the report and the exact bounds it covers (`until` is when the build
/// started unless the range ends earlier), so the command can reproduce it.
pub struct Built {
    pub report: Report,
    pub since: Option<DateTime<Utc>>,
    pub until: DateTime<Utc>,
}

/// A finished build.
pub struct Snapshot {
    pub built: Built,
    /// How long the build took (not counting a wait for a free build slot).
    pub took: Duration,
    /// When it finished.
    pub built_at: DateTime<Utc>,
}

type Outcome = Result<Arc<Snapshot>, String>;

#[derive(Default)]
struct Slot {
    done: Option<(Arc<Snapshot>, Instant)>,
    running: Option<watch::Receiver<Option<Outcome>>>,
}

/// What a page gets to show.
pub enum Answer {
    /// Built for this visit.
    Fresh(Arc<Snapshot>),
    /// Kept from an earlier build; `refreshing` when a newer one is being built.
    Kept { snapshot: Arc<Snapshot>, refreshing: bool },
    /// The first build of this report is still running.
    Building,
}

pub struct Snapshots {
    slots: Arc<Mutex<HashMap<SnapKey, Slot>>>,
    builds: Arc<Semaphore>,
    /// How long a visit waits for a build.
    wait: Duration,
}

impl Default for Snapshots {
    fn default() -> Self {
        // A page answers within about 300 ms: a 250 ms wait plus rendering.
        Snapshots::new(Duration::from_millis(250))
    }
}

/// How long an expensive report is shown before a new one is built: a thousandth of its range
/// (1 h → 5 s, 24 h → 86 s, 7 d → 10 min, 30 d → 15 min): at least 5 s, at most 15 min.
pub fn max_age(span: chrono::Duration) -> Duration {
    let secs = span.num_seconds().max(0) as u64 / 1000;
    Duration::from_secs(secs.clamp(5, 15 * 60))
}

impl Snapshots {
    pub fn new(wait: Duration) -> Snapshots {
        Snapshots {
            slots: Arc::default(),
            builds: Arc::new(Semaphore::new(BUILDS)),
            wait,
        }
    }

    /// The report `key` names, by the policy above: kept when its last build took at least
    /// `live_budget`, shown until `max_age`. `build` runs on a blocking thread.
    pub async fn get<F>(
        &self,
        key: SnapKey,
        (live_budget, max_age): (Duration, Duration),
        refresh: bool,
        build: F,
    ) -> Result<Answer, String>
    where
        F: FnOnce() -> Result<Built, String> + Send + 'static,
    {
        let (rx, kept) = {
            let mut slots = self
                .slots
                .lock()
                .map_err(|_| "the report cache is poisoned".to_string())?;
            if !slots.contains_key(&key) && slots.len() >= KEPT {
                evict_oldest(&mut slots);
            }
            let slot = slots.entry(key.clone()).or_default();
            if let Some((snapshot, at)) = &slot.done
                && snapshot.took >= live_budget
                && !refresh
            {
                let snapshot = snapshot.clone();
                if at.elapsed() >= max_age && slot.running.is_none() {
                    slot.running = Some(self.start(key, build));
                }
                let refreshing = slot.running.is_some();
                return Ok(Answer::Kept { snapshot, refreshing });
            }
            let rx = match &slot.running {
                Some(rx) => rx.clone(),
                None => {
                    let rx = self.start(key, build);
                    slot.running = Some(rx.clone());
                    rx
                }
            };
            (rx, slot.done.as_ref().map(|(s, _)| s.clone()))
        };
        match tokio::time::timeout(self.wait, finished(rx)).await {
            Ok(outcome) => outcome.map(Answer::Fresh),
            Err(_) => Ok(match kept {
                Some(snapshot) => Answer::Kept {
                    snapshot,
                    refreshing: true,
                },
                None => Answer::Building,
            }),
        }
    }

    /// Starts a build in the background; its outcome goes to the slot and to every waiter.
    fn start<F>(&self, key: SnapKey, build: F) -> watch::Receiver<Option<Outcome>>
    where
        F: FnOnce() -> Result<Built, String> + Send + 'static,
    {
        let (tx, rx) = watch::channel(None);
        let slots = self.slots.clone();
        let builds = self.builds.clone();
        tokio::spawn(async move {
            let outcome = match builds.acquire_owned().await {
                Ok(_permit) => {
                    let started = Instant::now();
                    match in_background(build).await {
                        Ok(built) => Ok(Arc::new(Snapshot {
                            built,
                            took: started.elapsed(),
                            built_at: Utc::now(),
                        })),
                        Err(e) => Err(e),
                    }
                }
                Err(_) => Err("the report builder is closed".to_string()),
            };
            if let Ok(mut slots) = slots.lock()
                && let Some(slot) = slots.get_mut(&key)
            {
                slot.running = None;
                // A failed build keeps the last good snapshot; the error goes to the waiters.
                if let Ok(s) = &outcome {
                    slot.done = Some((s.clone(), Instant::now()));
                }
            }
            let _ = tx.send(Some(outcome));
        });
        rx
    }
}

/// Runs a build on a thread of its own at a lower CPU priority (nice 10, inherited by the
/// reader thread it starts), so seconds of aggregation over a month of records yield the cores
/// to the requests the gateway serves. Its own thread, not the blocking pool's: a pool thread
/// would stay at the lower priority for whatever runs on it next, and an unprivileged process
/// cannot raise it back.
async fn in_background<F>(build: F) -> Result<Built, String>
where
    F: FnOnce() -> Result<Built, String> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("tollgate-report".into())
        .spawn(move || {
            lower_priority();
            let _ = tx.send(build());
        })
        .map_err(|e| format!("cannot start the report's thread: {e}"))?;
    rx.await
        .unwrap_or_else(|_| Err("the report stopped unexpectedly".into()))
}

/// Nice 10 for the calling thread (Linux: `setpriority` with `PRIO_PROCESS` and 0 applies to
/// the calling thread only). Failing leaves it as it was: the report is still right, only less
/// polite.
#[cfg(target_os = "linux")]
fn lower_priority() {
    // SAFETY: setpriority takes plain integers and touches no memory of ours.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

async fn finished(mut rx: watch::Receiver<Option<Outcome>>) -> Outcome {
    match rx.wait_for(Option::is_some).await {
        Ok(v) => v
            .clone()
            .unwrap_or_else(|| Err("the report build ended without a result".into())),
        Err(_) => Err("the report build ended without a result".into()),
    }
}

/// Makes room: the slot whose snapshot is oldest and that is not being built goes.
fn evict_oldest(slots: &mut HashMap<SnapKey, Slot>) {
    let oldest = slots
        .iter()
        .filter(|(_, s)| s.running.is_none())
        .min_by_key(|(_, s)| s.done.as_ref().map(|(_, at)| *at))
        .map(|(k, _)| k.clone());
    if let Some(k) = oldest {
        slots.remove(&k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn key(range: &str) -> SnapKey {
        SnapKey {
            scope: "admin".into(),
            range: range.into(),
            lang: "en",
        }
    }

    /// A build that takes `ms` and counts itself; the report's `filtered_out` carries the count,
    /// so a test can tell builds apart.
    fn build(counter: &Arc<AtomicU32>, ms: u64) -> impl FnOnce() -> Result<Built, String> + Send + 'static {
        let counter = counter.clone();
        move || {
            std::thread::sleep(Duration::from_millis(ms));
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            let mut report = tollgate_report::build_report(Vec::new(), &tollgate_report::ReportOptions::default());
            report.filtered_out = u64::from(n);
            Ok(Built {
                report,
                since: None,
                until: Utc::now(),
            })
        }
    }

    fn nth(a: &Answer) -> (u64, &'static str) {
        match a {
            Answer::Fresh(s) => (s.built.report.filtered_out, "fresh"),
            Answer::Kept { snapshot, refreshing } => (
                snapshot.built.report.filtered_out,
                if *refreshing { "refreshing" } else { "kept" },
            ),
            Answer::Building => (0, "building"),
        }
    }

    #[tokio::test]
    async fn a_cheap_report_is_built_for_every_visit() {
        let s = Snapshots::new(Duration::from_secs(5));
        let n = Arc::new(AtomicU32::new(0));
        let age = (Duration::from_millis(200), Duration::from_secs(3600));
        for i in 1..=3 {
            let a = s.get(key("1h"), age, false, build(&n, 1)).await.unwrap();
            assert_eq!(nth(&a), (i, "fresh"));
        }
    }

    #[tokio::test]
    async fn an_expensive_report_is_kept_then_refreshed_in_the_background() {
        // Every build counts as expensive (budget 0); visits wait long enough for a build.
        let s = Snapshots::new(Duration::from_secs(5));
        let n = Arc::new(AtomicU32::new(0));
        let age = (Duration::ZERO, Duration::from_millis(300));
        let first = s.get(key("30d"), age, false, build(&n, 1)).await.unwrap();
        assert_eq!(nth(&first), (1, "fresh"));
        // Young: the kept one, no build.
        let again = s.get(key("30d"), age, false, build(&n, 1)).await.unwrap();
        assert_eq!(nth(&again), (1, "kept"));
        assert_eq!(n.load(Ordering::SeqCst), 1);
        // Old: still the kept one, and a new one is being built.
        tokio::time::sleep(age.1).await;
        let stale = s.get(key("30d"), age, false, build(&n, 50)).await.unwrap();
        assert_eq!(nth(&stale), (1, "refreshing"));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let next = s.get(key("30d"), age, false, build(&n, 1)).await.unwrap();
        assert_eq!(nth(&next), (2, "kept"));
        // Refresh builds now.
        let now = s.get(key("30d"), age, true, build(&n, 1)).await.unwrap();
        assert_eq!(nth(&now), (3, "fresh"));
        // Another range, language or viewer is another report.
        let other = s.get(key("7d"), age, false, build(&n, 1)).await.unwrap();
        assert_eq!(nth(&other), (4, "fresh"));
    }

    #[tokio::test]
    async fn a_slow_first_build_answers_building_and_goes_on() {
        let s = Snapshots::new(Duration::from_millis(20));
        let n = Arc::new(AtomicU32::new(0));
        let age = (Duration::ZERO, Duration::from_secs(60));
        let first = s.get(key("30d"), age, false, build(&n, 300)).await.unwrap();
        assert_eq!(nth(&first), (0, "building"));
        // A second visit joins the running build instead of starting one.
        let second = s.get(key("30d"), age, false, build(&n, 300)).await.unwrap();
        assert_eq!(nth(&second), (0, "building"));
        tokio::time::sleep(Duration::from_millis(500)).await;
        let done = s.get(key("30d"), age, false, build(&n, 1)).await.unwrap();
        assert_eq!(nth(&done), (1, "kept"));
        assert_eq!(n.load(Ordering::SeqCst), 1, "one build for three visits");
    }

    #[tokio::test]
    async fn a_failed_build_is_an_error_and_keeps_nothing() {
        let s = Snapshots::new(Duration::from_secs(5));
        let age = (Duration::ZERO, Duration::from_secs(60));
        let err = s.get(key("1h"), age, false, || Err("no store".to_string())).await;
        assert_eq!(err.err().as_deref(), Some("no store"));
        let n = Arc::new(AtomicU32::new(0));
        let ok = s.get(key("1h"), age, false, build(&n, 1)).await.unwrap();
        assert_eq!(nth(&ok), (1, "fresh"));
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_build_runs_at_a_lower_priority_than_serving() {
        // Measured against the niceness the tests run at (a CI runner may itself run niced).
        // SAFETY: getpriority takes plain integers.
        let serving = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let nice_inside = || -> Result<Built, String> {
            // SAFETY: getpriority takes plain integers.
            let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
            let mut report = tollgate_report::build_report(Vec::new(), &tollgate_report::ReportOptions::default());
            report.filtered_out = nice as u64;
            Ok(Built {
                report,
                since: None,
                until: Utc::now(),
            })
        };
        let built = in_background(nice_inside).await.unwrap();
        // Nice 10, or lower still if serving already ran below it (a thread cannot raise itself).
        assert_eq!(built.report.filtered_out, serving.max(10) as u64);
        // SAFETY: as above.
        assert_eq!(
            unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) },
            serving,
            "this thread unchanged"
        );
    }

    #[test]
    fn max_age_is_a_thousandth_of_the_range_within_bounds() {
        assert_eq!(max_age(chrono::Duration::hours(1)), Duration::from_secs(5));
        assert_eq!(max_age(chrono::Duration::hours(24)), Duration::from_secs(86));
        assert_eq!(max_age(chrono::Duration::days(30)), Duration::from_secs(900));
        assert_eq!(max_age(chrono::Duration::seconds(-5)), Duration::from_secs(5));
    }

    #[tokio::test]
    async fn the_cache_is_bounded() {
        let s = Snapshots::new(Duration::from_secs(5));
        let n = Arc::new(AtomicU32::new(0));
        let age = (Duration::from_secs(60), Duration::from_secs(60));
        for i in 0..(KEPT + 10) {
            s.get(key(&format!("r{i}")), age, false, build(&n, 0)).await.unwrap();
        }
        assert!(s.slots.lock().unwrap().len() <= KEPT);
    }
}
