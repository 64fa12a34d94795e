//! How each sink is doing: counters the gateway exports, the error readiness shows while a sink
//! is failing, and the rate limit on failure logs (a full disk fails every batch, ~100 a second;
//! one line per failure would bury everything else on stderr).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// At most one summary line per sink per interval while writes keep failing.
const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Where records are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SinkKind {
    Sqlite,
    Jsonl,
}

impl SinkKind {
    /// The `sink` label on metrics and the key in readiness.
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::Sqlite => "sqlite",
            SinkKind::Jsonl => "jsonl",
        }
    }
}

/// One sink's counters, as of now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkStatus {
    pub kind: SinkKind,
    pub path: PathBuf,
    /// Records this sink stored.
    pub written: u64,
    /// Records this sink will never store: given up after write errors (its retry buffer was
    /// full, or the writer shut down while they were still waiting).
    pub failed: u64,
    /// Write attempts that failed (each retry of a batch counts).
    pub write_errors: u64,
    /// Records waiting in memory for a retry because this sink's last write failed.
    pub pending: u64,
    /// The last write error, while the sink is failing; `None` once a write succeeds.
    pub last_error: Option<String>,
}

/// What the writer thread updates and everyone else reads.
pub(crate) struct SinkHealth {
    kind: SinkKind,
    path: PathBuf,
    written: AtomicU64,
    failed: AtomicU64,
    write_errors: AtomicU64,
    pending: AtomicU64,
    state: Mutex<FailureState>,
}

#[derive(Default)]
struct FailureState {
    last_error: Option<String>,
    /// Failures since the last line logged about them.
    unlogged: u64,
    /// Failures since the sink last worked.
    streak: u64,
    last_logged: Option<Instant>,
}

impl SinkHealth {
    pub(crate) fn new(kind: SinkKind, path: &Path) -> Self {
        SinkHealth {
            kind,
            path: path.to_path_buf(),
            written: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            pending: AtomicU64::new(0),
            state: Mutex::new(FailureState::default()),
        }
    }

    pub(crate) fn set_pending(&self, n: usize) {
        self.pending.store(n as u64, Ordering::Relaxed);
    }

    /// Records this sink gave up on. Only the first give-up is logged: a long outage gives up
    /// records with every batch, and the failure summary lines carry the running count.
    pub(crate) fn add_failed(&self, n: u64) {
        if self.failed.fetch_add(n, Ordering::Relaxed) == 0 && n > 0 {
            tracing::error!(
                sink = self.kind.as_str(),
                path = %self.path.display(),
                records = n,
                "giving up on records this sink could not store (its retry buffer is full, or the writer is stopping); they will be missing from it"
            );
        }
    }

    /// A write of `n` records succeeded; logs the recovery if the sink was failing.
    pub(crate) fn wrote(&self, n: u64) {
        self.written.fetch_add(n, Ordering::Relaxed);
        let Ok(mut s) = self.state.lock() else { return };
        if s.last_error.take().is_some() {
            tracing::warn!(
                sink = self.kind.as_str(),
                path = %self.path.display(),
                failed_attempts = s.streak,
                "record writes work again"
            );
        }
        *s = FailureState::default();
    }

    /// A write failed. The first failure of a streak is logged at once, then at most one line
    /// per [`FAILURE_LOG_INTERVAL`] with the count since the previous line.
    pub(crate) fn write_failed(&self, error: &str, records: usize, pending: usize) {
        self.write_errors.fetch_add(1, Ordering::Relaxed);
        let Ok(mut s) = self.state.lock() else { return };
        s.streak += 1;
        s.unlogged += 1;
        s.last_error = Some(error.to_string());
        let due = s.last_logged.is_none_or(|t| t.elapsed() >= FAILURE_LOG_INTERVAL);
        if !due {
            return;
        }
        if s.streak == 1 {
            tracing::error!(
                sink = self.kind.as_str(),
                path = %self.path.display(),
                error,
                records,
                "cannot write records; keeping them in memory and retrying (readiness says degraded until a write succeeds)"
            );
        } else {
            tracing::error!(
                sink = self.kind.as_str(),
                path = %self.path.display(),
                error,
                failed_attempts = s.unlogged,
                pending,
                failed_records = self.failed.load(Ordering::Relaxed),
                "record writes still failing"
            );
        }
        s.unlogged = 0;
        s.last_logged = Some(Instant::now());
    }

    pub(crate) fn status(&self) -> SinkStatus {
        SinkStatus {
            kind: self.kind,
            path: self.path.clone(),
            written: self.written.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            write_errors: self.write_errors.load(Ordering::Relaxed),
            pending: self.pending.load(Ordering::Relaxed),
            last_error: self.state.lock().ok().and_then(|s| s.last_error.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Collects what the fmt subscriber prints.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn lines(&self) -> Vec<String> {
            String::from_utf8(self.0.lock().unwrap().clone())
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect()
        }
    }

    #[test]
    fn a_failure_storm_logs_one_line_and_the_recovery_one_more() {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let health = SinkHealth::new(SinkKind::Sqlite, Path::new("/data/tollgate.sqlite"));
        tracing::subscriber::with_default(subscriber, || {
            // A full disk fails every batch: ~100 a second.
            for _ in 0..2_000 {
                health.write_failed("database or disk is full", 256, 1_000);
            }
            let status = health.status();
            assert_eq!(status.write_errors, 2_000);
            assert_eq!(status.last_error.as_deref(), Some("database or disk is full"));
            health.wrote(256);
            assert_eq!(health.status().last_error, None, "healthy after one success");
            // A new streak is news again.
            health.write_failed("disk I/O error", 256, 256);
        });
        let lines = out.lines();
        assert_eq!(lines.len(), 3, "{lines:#?}");
        assert!(lines[0].contains("cannot write records") && lines[0].contains("database or disk is full"));
        assert!(lines[1].contains("record writes work again") && lines[1].contains("failed_attempts=2000"));
        assert!(lines[2].contains("cannot write records") && lines[2].contains("disk I/O error"));
    }
}
