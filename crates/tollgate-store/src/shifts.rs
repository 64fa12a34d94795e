//! The record writer's two threads, taking turns at its state ([`Drain`]).
//!
//! Records are written in the machine's spare time: the writer's own thread puts itself in the
//! idle scheduling class (`SCHED_IDLE`), so a serving thread woken on its core takes the core at
//! once instead of waiting behind a batch of inserts (each batch is up to a millisecond of CPU on
//! the cores the serving threads share). At 2,000 streamed 16 KB requests/s the p99 was lower
//! in seven rounds of seven with the writer in the idle class (bench/notes.md, session 13).
//!
//! A thread in the idle class gets almost no CPU while every core is busy, so it cannot be the
//! only writer: past saturation its queue would fill and records would be dropped. A second
//! thread, at normal priority, watches the queue and takes the state over when the idle one is
//! behind or has made no progress for a while, or when durability is `sync` (its submitters wait
//! for the commit); it hands the state back once the queue has been calm for a second. Two
//! threads, because a thread may lower its own priority but needs `CAP_SYS_NICE` to raise it back.
//!
//! Each thread holds the state for one round at a time (a batch). A round the idle thread began
//! may finish slowly on a saturated machine, and the catch-up thread waits for it: that bounds
//! how late records get, not whether they are written.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tollgate_core::config::RecordDurability;

use crate::drain::{BATCH, Drain, GROUP, LINGER, Shared, durability_code};

/// How often the catch-up thread looks at the queue (and the idle thread, while the other one
/// writes, at whether it may take its turn again).
const WATCH: Duration = Duration::from_millis(50);

/// No record written for this long while some wait: the idle thread is not getting the CPU.
/// Longer than a round lingers, so a quiet round at low rates is not taken for a stall.
const STALL: Duration = Duration::from_millis(LINGER.as_millis() as u64 + 150);

/// Records queued that mean the idle thread is behind whatever its progress.
const BEHIND: u64 = 4 * BATCH as u64;

/// The catch-up thread hands the state back once fewer than [`GROUP`] records have waited for
/// this long.
const CALM: Duration = Duration::from_secs(1);

/// The writer's state and which thread may take it.
pub(crate) struct Shifts {
    drain: Mutex<Option<Drain>>,
    /// The catch-up thread wants or holds the state: the idle thread keeps off the lock.
    catching_up: AtomicBool,
    /// The queue is closed and drained: both threads end.
    finished: AtomicBool,
    done: Mutex<Option<oneshot::Sender<()>>>,
    /// Tests: the idle thread takes no turn, as if the machine gave it no CPU.
    #[cfg(test)]
    pub(crate) idle_starved: AtomicBool,
}

impl Shifts {
    pub(crate) fn new(drain: Drain, done: oneshot::Sender<()>) -> Shifts {
        Shifts {
            drain: Mutex::new(Some(drain)),
            catching_up: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            done: Mutex::new(Some(done)),
            #[cfg(test)]
            idle_starved: AtomicBool::new(false),
        }
    }

    /// One round with the state held; on the last one the state is dropped and shutdown told.
    fn round(&self, drain: &mut MutexGuard<'_, Option<Drain>>, shared: &Shared) -> bool {
        let Some(d) = drain.as_mut() else {
            return false;
        };
        if d.round(shared) {
            return true;
        }
        **drain = None;
        self.finished.store(true, Ordering::Release);
        if let Some(done) = lock(&self.done).take() {
            let _ = done.send(());
        }
        false
    }

    #[cfg(test)]
    pub(crate) fn catching_up(&self) -> bool {
        self.catching_up.load(Ordering::Acquire)
    }

    fn idle_may_write(&self) -> bool {
        #[cfg(test)]
        if self.idle_starved.load(Ordering::Acquire) {
            return false;
        }
        !self.catching_up.load(Ordering::Acquire)
    }
}

/// The writer's own thread: in the idle class, writing whenever the other thread does not.
pub(crate) fn idle_shift(shifts: &Shifts, shared: &Shared) {
    lower_to_idle_class();
    while !shifts.finished.load(Ordering::Acquire) {
        if !shifts.idle_may_write() {
            std::thread::sleep(WATCH);
            continue;
        }
        let mut drain = lock(&shifts.drain);
        if !shifts.round(&mut drain, shared) {
            return;
        }
    }
}

/// The catch-up thread, at normal priority: writes while the idle thread cannot keep up.
pub(crate) fn catch_up_shift(shifts: &Shifts, shared: &Shared) {
    let mut progress = (settled(shared), Instant::now());
    loop {
        std::thread::sleep(WATCH);
        if shifts.finished.load(Ordering::Acquire) {
            return;
        }
        let now = settled(shared);
        if now != progress.0 || waiting(shared) == 0 {
            progress = (now, Instant::now());
        }
        let stalled = waiting(shared) > 0 && progress.1.elapsed() >= STALL;
        if !(stalled || waiting(shared) >= BEHIND || sync(shared)) {
            continue;
        }
        shifts.catching_up.store(true, Ordering::Release);
        shared.catch_ups.fetch_add(1, Ordering::Relaxed);
        let mut drain = lock(&shifts.drain);
        let mut calm_since: Option<Instant> = None;
        loop {
            if !shifts.round(&mut drain, shared) {
                return;
            }
            if sync(shared) || waiting(shared) >= GROUP as u64 {
                calm_since = None;
            } else if calm_since.get_or_insert_with(Instant::now).elapsed() >= CALM {
                break;
            }
        }
        drop(drain);
        shifts.catching_up.store(false, Ordering::Release);
        progress = (settled(shared), Instant::now());
    }
}

/// Records the writer is done with, stored or given up.
fn settled(shared: &Shared) -> u64 {
    shared.written.load(Ordering::Relaxed) + shared.failed.load(Ordering::Relaxed)
}

/// Records accepted and not yet settled: queued, or in the batch in hand.
fn waiting(shared: &Shared) -> u64 {
    shared.accepted.load(Ordering::Relaxed).saturating_sub(settled(shared))
}

fn sync(shared: &Shared) -> bool {
    shared.durability.load(Ordering::Relaxed) == durability_code(RecordDurability::Sync)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Puts the calling thread in the idle scheduling class. Where that is refused (or not Linux)
/// the thread stays at normal priority, and the writer behaves as one thread did before.
fn lower_to_idle_class() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is a valid `sched_param` for the duration of the call; pid 0 is the
        // calling thread (Linux applies scheduling policies per thread).
        let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
        if r != 0 {
            tracing::debug!(
                error = %std::io::Error::last_os_error(),
                "the record writer stays at normal priority"
            );
        }
    }
}
