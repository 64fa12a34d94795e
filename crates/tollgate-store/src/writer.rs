//! The bounded record writer: records leave the request path through a channel and are written
//! in batches by a dedicated thread (see `drain.rs` for what happens when a sink fails).
//!
//! A dedicated std thread (not a tokio task) owns the SQLite connection because rusqlite is
//! blocking; keeping it off the runtime means a slow disk can never stall request handling.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use tollgate_core::Record;
use tollgate_core::config::RecordDurability;

use crate::drain::{self, Drain, Message, Shared, Sinks};
use crate::error::StoreError;
use crate::health::{SinkHealth, SinkKind, SinkStatus};
use crate::jsonl::JsonlAppender;
use crate::pg::PostgresTarget;
use crate::shifts::{self, Shifts};
use crate::ship::{ShipState, ShipStatus, Shipper};
use crate::sqlite::{self, DB_FILE_NAME};

/// Minimum time between two "records dropped" warnings, so a saturated writer does not also
/// flood the log.
const DROP_WARN_INTERVAL_MS: u64 = 5_000;

/// Where records go and how many may wait in memory.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Directory for `tollgate.sqlite`; created if missing.
    pub data_dir: PathBuf,
    /// Also append every record as one JSON line to this file.
    pub jsonl: Option<PathBuf>,
    /// Records that may wait for the writer; beyond this, new records are dropped and counted.
    /// Each failing sink also keeps up to this many records in memory for its retries.
    pub capacity: usize,
    /// When a record counts as kept; can be changed later with [`RecordWriter::set_durability`].
    pub durability: RecordDurability,
    /// Written on every record that has none: which gateway instance served it.
    pub instance_id: Option<String>,
    /// Ship every record to a shared Postgres as well (SQLite stays the local outbox).
    pub shared: Option<SharedStore>,
    /// Delete records older than this many days, locally and in the shared store.
    pub retention_days: Option<u32>,
}

impl StoreConfig {
    /// SQLite under `data_dir` only, no retention: what tests, the demo and the report use.
    pub fn local(data_dir: PathBuf) -> StoreConfig {
        StoreConfig {
            data_dir,
            jsonl: None,
            capacity: 65_536,
            durability: RecordDurability::Buffered,
            instance_id: None,
            shared: None,
            retention_days: None,
        }
    }
}

/// The shared store and how much the gateway depends on it.
#[derive(Debug, Clone)]
pub struct SharedStore {
    pub target: PostgresTarget,
    /// `tollgate_settings.require_database`: refuse to start when it cannot be reached.
    pub require: bool,
}

/// The submitting side: cheap to clone, one per request handler if need be.
#[derive(Clone)]
pub struct RecordWriter {
    tx: mpsc::Sender<Message>,
    shared: Arc<Shared>,
    #[cfg(test)]
    shifts: Arc<Shifts>,
}

/// Owns the writer thread (and the shipper's); [`WriterHandle::shutdown`] drains them.
pub struct WriterHandle {
    tx: mpsc::Sender<Message>,
    done: oneshot::Receiver<()>,
    shared: Arc<Shared>,
    shipper: Option<(Arc<ShipState>, std::thread::JoinHandle<()>)>,
    _retention: Option<crate::retention::RetentionJob>,
}

/// One sink's totals in a [`WriteSummary`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkTotals {
    /// Records this sink stored.
    pub written: u64,
    /// Records this sink never stored because of write errors.
    pub failed: u64,
}

/// What the writer did over its life, as returned by [`WriterHandle::shutdown`]. Every accepted
/// record is either `written` or `failed`, in total and per sink; `dropped` ones were never accepted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteSummary {
    /// Records stored in every configured sink.
    pub written: u64,
    /// Records accepted but missing from at least one sink (disk full, permissions).
    pub failed: u64,
    /// Records refused because the queue was full or the writer had shut down.
    pub dropped: u64,
    pub sqlite: SinkTotals,
    /// `None` without a JSONL sink.
    pub jsonl: Option<SinkTotals>,
}

impl std::fmt::Display for WriteSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // "failed" are write errors, "dropped" were refused at a full queue.
        write!(
            f,
            "{} records written, {} failed, {} dropped (sqlite: {} written, {} failed",
            self.written, self.failed, self.dropped, self.sqlite.written, self.sqlite.failed
        )?;
        if let Some(j) = self.jsonl {
            write!(f, "; jsonl: {} written, {} failed", j.written, j.failed)?;
        }
        f.write_str(")")
    }
}

/// The writer's state right now, for readiness and `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreStatus {
    pub durability: RecordDurability,
    /// Records stored in every sink.
    pub written: u64,
    /// Records missing from at least one sink for good.
    pub failed: u64,
    /// Records refused at the queue.
    pub dropped: u64,
    /// Times the writer's normal-priority thread took over from its idle-time one (saturation,
    /// or `sync` durability).
    pub catch_ups: u64,
    /// SQLite first, then JSONL if configured.
    pub sinks: Vec<SinkStatus>,
    /// Shipping to the shared store, when there is one.
    pub shared: Option<ShipStatus>,
}

impl StoreStatus {
    /// Why the store is degraded: every sink whose last write failed, with its error. `None` when
    /// the last write of every sink succeeded.
    pub fn problem(&self) -> Option<String> {
        let failing: Vec<String> = self
            .sinks
            .iter()
            .filter_map(|s| {
                s.last_error.as_ref().map(|e| {
                    format!(
                        "{} sink {} is failing ({e}); {} records wait in memory for a retry",
                        s.kind.as_str(),
                        s.path.display(),
                        s.pending
                    )
                })
            })
            .collect();
        let shipping = self.shared.as_ref().and_then(|s| {
            s.last_error.as_ref().map(|e| {
                format!(
                    "the shared store {} is unreachable ({e}); {} records wait in SQLite and are shipped when it is back",
                    s.location, s.backlog
                )
            })
        });
        let failing: Vec<String> = failing.into_iter().chain(shipping).collect();
        (!failing.is_empty()).then(|| failing.join("; "))
    }
}

/// The answer to one submission; see [`Commit::wait`].
/// Buffered mode's commits are ready at once, so dropping one is fine; in `sync` mode the caller
/// awaits it before answering.
pub struct Commit(CommitState);

enum CommitState {
    Done(Result<(), StoreError>),
    Waiting(oneshot::Receiver<Result<(), String>>),
}

impl Commit {
    /// Resolves when the durability mode's promise holds: at once in `buffered` mode (the record
    /// is queued), after the SQLite commit of the record's batch in `sync` mode. An error means the
    /// record was dropped (queue full) or SQLite refused it (it is kept in memory and retried).
    pub async fn wait(self) -> Result<(), StoreError> {
        match self.0 {
            CommitState::Done(result) => result,
            CommitState::Waiting(rx) => match rx.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(reason)) => Err(StoreError::NotCommitted(reason)),
                Err(_) => Err(StoreError::WriterGone),
            },
        }
    }
}

impl RecordWriter {
    /// Opens the sinks (so a bad data dir fails at startup, not on the first request) and starts
    /// the writer thread.
    pub fn start(config: StoreConfig) -> Result<(RecordWriter, WriterHandle), StoreError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| StoreError::CreateDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let db_path = config.data_dir.join(DB_FILE_NAME);
        let conn = sqlite::open_for_writing(&db_path)?;
        let shipping = match &config.shared {
            Some(shared) => Some(prepare_shipping(shared, &db_path, config.instance_id.clone())?),
            None => None,
        };
        let jsonl = match &config.jsonl {
            Some(path) => Some(JsonlAppender::open(path)?),
            None => None,
        };

        let capacity = config.capacity.max(1);
        let (tx, rx) = mpsc::channel(capacity);
        let (done_tx, done) = oneshot::channel();
        let shared = Arc::new(Shared {
            dropped: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            written: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            catch_ups: AtomicU64::new(0),
            durability: AtomicU8::new(drain::durability_code(config.durability)),
            reopen_jsonl: AtomicBool::new(false),
            sqlite: SinkHealth::new(SinkKind::Sqlite, &db_path),
            jsonl: config.jsonl.as_deref().map(|p| SinkHealth::new(SinkKind::Jsonl, p)),
            last_drop_warning: AtomicU64::new(0),
            epoch: Instant::now(),
            ship: shipping.as_ref().map(|(state, _)| Arc::clone(state)),
        });
        let sinks = Sinks::new(conn, jsonl, capacity, config.instance_id.clone(), shared.ship.clone());
        let shifts = Arc::new(Shifts::new(Drain::new(rx, sinks), done_tx));
        // Two threads take turns at the writing (`shifts.rs`): this one in the machine's idle
        // time, the other at normal priority when the first cannot keep up.
        for (name, shift) in [
            ("tollgate-record-writer", shifts::idle_shift as fn(&Shifts, &Shared)),
            ("tollgate-catch-up", shifts::catch_up_shift),
        ] {
            let (thread_shifts, thread_shared) = (Arc::clone(&shifts), Arc::clone(&shared));
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || shift(&thread_shifts, &thread_shared))
                .map_err(|source| StoreError::Io {
                    path: config.data_dir.clone(),
                    source,
                })?;
        }

        let shipper = match shipping {
            Some((state, shipper)) => {
                let thread_state = Arc::clone(&state);
                let thread = std::thread::Builder::new()
                    .name("tollgate-shipper".into())
                    .spawn(move || shipper.run(&thread_state))
                    .map_err(|source| StoreError::Io {
                        path: config.data_dir.clone(),
                        source,
                    })?;
                Some((state, thread))
            }
            None => None,
        };
        let retention = config.retention_days.map(|days| {
            crate::retention::start(days, db_path.clone(), config.shared.as_ref().map(|s| s.target.clone()))
        });

        let writer = RecordWriter {
            tx: tx.clone(),
            shared: Arc::clone(&shared),
            #[cfg(test)]
            shifts,
        };
        Ok((
            writer,
            WriterHandle {
                tx,
                done,
                shared,
                shipper,
                _retention: retention,
            },
        ))
    }

    /// Queues a record without ever waiting. When the queue is full (the disk cannot keep up) the
    /// record is dropped and counted: losing a log line is better than slowing every client. In
    /// `sync` durability the returned [`Commit`] resolves once the record is in SQLite.
    pub fn submit(&self, record: Record) -> Commit {
        let sync = self.durability() == RecordDurability::Sync;
        let (ack, waiting) = if sync {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        // Counted before the send, so the writer can never have written more than was accepted.
        self.shared.accepted.fetch_add(1, Ordering::Relaxed);
        if self.tx.try_send(Message::Record(Box::new(record), ack)).is_err() {
            self.shared.accepted.fetch_sub(1, Ordering::Relaxed);
            let dropped = self.shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            self.warn_drop(dropped);
            return Commit(CommitState::Done(Err(StoreError::QueueFull)));
        }
        Commit(match waiting {
            Some(rx) => CommitState::Waiting(rx),
            None => CommitState::Done(Ok(())),
        })
    }

    fn warn_drop(&self, dropped: u64) {
        let now = self.shared.epoch.elapsed().as_millis() as u64 + 1;
        let last = self.shared.last_drop_warning.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < DROP_WARN_INTERVAL_MS {
            return;
        }
        // Only the thread that wins the swap logs, so concurrent drops give one warning.
        if self
            .shared
            .last_drop_warning
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            tracing::warn!(
                dropped_total = dropped,
                "record queue full or closed: records are being dropped; raise the store capacity or use a faster disk"
            );
        }
    }

    /// Opens the JSONL file again at its path, for log rotation (SIGHUP). The writer also notices
    /// a moved or deleted file by itself before each batch.
    pub fn reopen_jsonl(&self) {
        self.shared.reopen_jsonl.store(true, Ordering::Relaxed);
        // Wakes an idle writer; a full queue means it is busy and sees the flag before its next batch.
        let _ = self.tx.try_send(Message::Reopen);
    }

    /// Switches durability for records submitted from now on (a config reload).
    pub fn set_durability(&self, durability: RecordDurability) {
        self.shared
            .durability
            .store(drain::durability_code(durability), Ordering::Relaxed);
    }

    pub fn durability(&self) -> RecordDurability {
        drain::durability_from_code(self.shared.durability.load(Ordering::Relaxed))
    }

    /// Records refused so far (queue full or writer shut down).
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Records stored in every sink so far.
    pub fn written(&self) -> u64 {
        self.shared.written.load(Ordering::Relaxed)
    }

    /// Records missing for good from at least one sink so far.
    pub fn failed(&self) -> u64 {
        self.shared.failed.load(Ordering::Relaxed)
    }

    /// Counters and per-sink health, for readiness and `/metrics`.
    pub fn status(&self) -> StoreStatus {
        status(&self.shared)
    }

    /// Tests: parks the writer thread until the returned sender is dropped or sent to; returns
    /// once the thread is parked, so the queue is empty and nothing drains it.
    #[cfg(test)]
    pub(crate) fn hold(&self) -> std::sync::mpsc::Sender<()> {
        let (parked_tx, parked_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel();
        if self
            .tx
            .try_send(Message::Hold {
                parked: parked_tx,
                release: release_rx,
            })
            .is_ok()
        {
            let _ = parked_rx.recv();
        }
        release_tx
    }
}

/// Connects to the shared store once at startup: a newer schema there refuses the start, so
/// does an unreachable one with `require`; otherwise an outage only means shipping starts later.
fn prepare_shipping(
    shared: &SharedStore,
    db_path: &std::path::Path,
    instance_id: Option<String>,
) -> Result<(Arc<ShipState>, Shipper), StoreError> {
    let target = &shared.target;
    let state = Arc::new(ShipState::new(target.location()));
    let migrated = match crate::pg::PostgresStore::open(target) {
        Ok(_) => {
            state.reached();
            true
        }
        Err(e @ (StoreError::NewerSchema { .. } | StoreError::Migration { .. })) => return Err(e),
        Err(e) if shared.require => {
            return Err(StoreError::DatabaseRequired {
                location: target.location().to_string(),
                message: e.to_string(),
            });
        }
        Err(e) => {
            tracing::warn!(error = %e, "the shared store is unreachable at startup; serving anyway, records queue in SQLite until it is back");
            // Readiness says so from the start, not only once a record waits.
            state.unreachable(&e);
            false
        }
    };
    let shipper = Shipper {
        db_path: db_path.to_path_buf(),
        target: target.clone(),
        pool: target.pool(),
        instance_id,
        migrated,
    };
    Ok((state, shipper))
}

fn status(shared: &Shared) -> StoreStatus {
    let mut sinks = vec![shared.sqlite.status()];
    sinks.extend(shared.jsonl.as_ref().map(SinkHealth::status));
    StoreStatus {
        durability: drain::durability_from_code(shared.durability.load(Ordering::Relaxed)),
        written: shared.written.load(Ordering::Relaxed),
        failed: shared.failed.load(Ordering::Relaxed),
        dropped: shared.dropped.load(Ordering::Relaxed),
        catch_ups: shared.catch_ups.load(Ordering::Relaxed),
        sinks,
        shared: shared.ship.as_ref().map(|s| {
            // Records on their way to SQLite (queued, or in the writer's batch) wait for shipping too.
            let sqlite = shared.sqlite.status();
            let on_the_way = shared
                .accepted
                .load(Ordering::Relaxed)
                .saturating_sub(sqlite.written + sqlite.failed);
            s.status(on_the_way)
        }),
    }
}

impl std::fmt::Debug for RecordWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordWriter")
            .field("queued", &(self.tx.max_capacity() - self.tx.capacity()))
            .field("written", &self.written())
            .field("failed", &self.failed())
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl WriterHandle {
    /// Stops accepting records, writes every record accepted before (a failing sink gets one last
    /// try), and returns the totals. Submissions racing with shutdown are either written or
    /// counted as dropped, never lost silently.
    pub async fn shutdown(self) -> Result<WriteSummary, StoreError> {
        // `send` (not `try_send`) so a full queue delays shutdown rather than skipping it; the
        // writer is draining, so space appears.
        self.tx.send(Message::Close).await.map_err(|_| StoreError::WriterGone)?;
        drop(self.tx);
        self.done.await.map_err(|_| StoreError::WriterGone)?;
        // Everything is in SQLite now; the shipper sends what it can in its drain time.
        if let Some((state, thread)) = self.shipper {
            state.stop();
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        Ok(summary(&self.shared))
    }

    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    pub fn written(&self) -> u64 {
        self.shared.written.load(Ordering::Relaxed)
    }
}

fn summary(shared: &Shared) -> WriteSummary {
    let totals = |h: &SinkHealth| {
        let s = h.status();
        SinkTotals {
            written: s.written,
            failed: s.failed,
        }
    };
    WriteSummary {
        written: shared.written.load(Ordering::Relaxed),
        failed: shared.failed.load(Ordering::Relaxed),
        dropped: shared.dropped.load(Ordering::Relaxed),
        sqlite: totals(&shared.sqlite),
        jsonl: shared.jsonl.as_ref().map(totals),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use rusqlite::Connection;

    use chrono::DateTime;
    use tollgate_core::{CacheState, RecordStatus};

    use super::*;
    use crate::{StoreError, is_tollgate_sqlite, read_jsonl, read_sqlite};

    /// A unique directory under the system temp dir, removed when dropped.
    struct TestDir(PathBuf);

    impl TestDir {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("tollgate-store-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TestDir(dir)
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn record(i: u64) -> Record {
        let start = DateTime::from_timestamp_micros(1_767_225_600_000_000 + i as i64 * 1_234).unwrap();
        Record {
            request_id: format!("req-{i}"),
            trace_id: format!("trace-{}", i / 3),
            session_id: i.is_multiple_of(2).then(|| format!("s{i}")),
            model_group: "chat".into(),
            model: if i.is_multiple_of(3) {
                "deepseek/deepseek-v3.2".into()
            } else {
                "gpt-4o-mini".into()
            },
            provider: "openai".into(),
            status: if i.is_multiple_of(7) {
                RecordStatus::Failure
            } else {
                RecordStatus::Success
            },
            http_status: if i.is_multiple_of(7) { 502 } else { 200 },
            stream: i % 2 == 1,
            start_time: start,
            end_time: start + chrono::Duration::milliseconds(250),
            ttft_ms: Some(12.5),
            latency_ms: 250.25,
            prompt_tokens: 100 + i,
            completion_tokens: 20,
            reasoning_tokens: i % 5,
            cached_tokens: 64,
            cost_usd: (!i.is_multiple_of(4)).then_some(0.000_123 * i as f64),
            unpriced: i.is_multiple_of(4),
            cache: CacheState::Miss,
            error_message: i.is_multiple_of(7).then(|| "upstream said \"no\"\nline two".into()),
            attempt: Some(1),
            source: "tollgate".into(),
            ..Record::default()
        }
    }

    fn config(dir: &TestDir, jsonl: bool, capacity: usize) -> StoreConfig {
        StoreConfig {
            data_dir: dir.0.join("data"),
            jsonl: jsonl.then(|| dir.0.join("logs/records.jsonl")),
            capacity,
            durability: RecordDurability::Buffered,
            instance_id: None,
            shared: None,
            retention_days: None,
        }
    }

    /// Every accepted record written to every sink, none failed or dropped.
    fn all_written(n: u64, jsonl: bool) -> WriteSummary {
        let each = SinkTotals { written: n, failed: 0 };
        WriteSummary {
            written: n,
            failed: 0,
            dropped: 0,
            sqlite: each,
            jsonl: jsonl.then_some(each),
        }
    }

    /// Returns once `n` records are written; fails the test after 10 s.
    async fn written_reaches(writer: RecordWriter, n: u64) {
        let t = Instant::now();
        while writer.written() < n {
            assert!(t.elapsed() < Duration::from_secs(10), "{n} records never written");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    fn read_all_sqlite(path: &Path) -> Vec<Record> {
        read_sqlite(path).unwrap().collect::<Result<_, _>>().unwrap()
    }

    #[tokio::test]
    async fn records_round_trip_through_sqlite_and_jsonl() {
        let dir = TestDir::new("round-trip");
        let (writer, handle) = RecordWriter::start(config(&dir, true, 4096)).unwrap();
        // More than one read page and several batches.
        let expected: Vec<Record> = (0..2_500).map(record).collect();
        for r in &expected {
            writer.clone().submit(r.clone());
        }

        // Readers work while the writer is live (WAL, read-only connection).
        while writer.written() < expected.len() as u64 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Costs such as 9 × 0.000123 only survive the JSON round trip bit for bit with
        // serde_json's `float_roundtrip` feature; this comparison is what would catch its loss.
        assert_eq!(read_all_sqlite(&dir.0.join("data")), expected);

        let summary = handle.shutdown().await.unwrap();
        assert_eq!(summary, all_written(2_500, true));

        // A data dir and the file itself both work.
        assert_eq!(read_all_sqlite(&dir.0.join("data")), expected);
        assert_eq!(read_all_sqlite(&dir.0.join("data").join(DB_FILE_NAME)), expected);
        let from_jsonl: Vec<Record> = read_jsonl(&dir.0.join("logs/records.jsonl"))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(from_jsonl, expected);

        // The JSONL lines use the Record's own field names at the top level.
        let text = std::fs::read_to_string(dir.0.join("logs/records.jsonl")).unwrap();
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first, serde_json::to_value(&expected[0]).unwrap());
    }

    #[tokio::test]
    async fn a_lone_record_waits_to_share_its_commit_and_every_record_is_written() {
        let dir = TestDir::new("linger");
        let (writer, handle) = RecordWriter::start(config(&dir, false, 4096)).unwrap();
        let first = Instant::now();
        writer.submit(record(0));
        // A record alone is not committed at once: more may come to share the commit. (Checked
        // only while the linger can still be running, so a stalled test thread cannot fail it.)
        tokio::time::sleep(Duration::from_millis(40)).await;
        let written = writer.written();
        if first.elapsed() < drain::LINGER {
            assert_eq!(written, 0, "a lone record was committed before the linger ended");
        }
        // A group's worth is written; so is a record that no other joins, once the linger is over.
        for i in 1..drain::GROUP as u64 {
            writer.submit(record(i));
        }
        let wait_for = |n: u64| written_reaches(writer.clone(), n);
        wait_for(drain::GROUP as u64).await;
        writer.submit(record(1_000));
        wait_for(drain::GROUP as u64 + 1).await;
        assert_eq!(
            handle.shutdown().await.unwrap(),
            all_written(drain::GROUP as u64 + 1, false)
        );
    }

    /// The scheduling policy of every thread of this process whose name starts with `name`.
    #[cfg(target_os = "linux")]
    fn policies(name: &str) -> Vec<i32> {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| {
                let t = t.ok()?.path();
                let comm = std::fs::read_to_string(t.join("comm")).ok()?;
                if !name.starts_with(comm.trim()) {
                    return None;
                }
                let stat = std::fs::read_to_string(t.join("stat")).ok()?;
                // Field 41, counted from the one after the command's closing parenthesis (3).
                stat.rsplit_once(')')?.1.split_whitespace().nth(41 - 3)?.parse().ok()
            })
            .collect()
    }

    #[tokio::test]
    async fn the_writer_works_in_idle_time_and_a_normal_thread_catches_up_when_it_gets_none() {
        let dir = TestDir::new("shifts");
        let (writer, handle) = RecordWriter::start(config(&dir, false, 4096)).unwrap();
        #[cfg(target_os = "linux")]
        {
            let (idle, normal) = (policies("tollgate-record-writer"), policies("tollgate-catch-up"));
            assert!(
                !idle.is_empty() && idle.iter().all(|p| *p == libc::SCHED_IDLE),
                "{idle:?}"
            );
            assert!(
                !normal.is_empty() && normal.iter().all(|p| *p == libc::SCHED_OTHER),
                "{normal:?}"
            );
        }
        let wait_for = |n: u64| written_reaches(writer.clone(), n);
        // The idle thread gets no more turns, as on a machine whose every core is busy; the one
        // record that ends the round it is in is written by it (or already by the other thread,
        // when the tests running beside this one left it no time).
        writer.shifts.idle_starved.store(true, Ordering::Release);
        writer.submit(record(0));
        wait_for(1).await;
        for i in 1..=100 {
            writer.submit(record(i));
        }
        wait_for(101).await;
        assert!(writer.shared.catch_ups.load(Ordering::Relaxed) >= 1);
        // The idle thread may write again: after a calm second the state is handed back.
        writer.shifts.idle_starved.store(false, Ordering::Release);
        let t = Instant::now();
        let mut i = 101;
        while writer.shifts.catching_up() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "the catch-up thread never handed back"
            );
            writer.submit(record(i));
            i += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(handle.shutdown().await.unwrap(), all_written(i, false));
    }

    #[tokio::test]
    async fn schema_has_indexed_columns_wal_and_version() {
        let dir = TestDir::new("schema");
        let (writer, handle) = RecordWriter::start(config(&dir, false, 16)).unwrap();
        writer.submit(record(1));
        handle.shutdown().await.unwrap();

        let conn = Connection::open(dir.0.join("data").join(DB_FILE_NAME)).unwrap();
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(version, crate::SCHEMA_VERSION);
        assert_eq!(
            version,
            crate::sqlite_version(),
            "the migrations set user_version to their own version"
        );
        let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        let (request_id, trace_id, start_time, model_group, model, status, cost): (
            String,
            String,
            String,
            String,
            String,
            String,
            f64,
        ) = conn
            .query_row(
                "SELECT request_id, trace_id, start_time, model_group, model, status, cost_usd FROM records",
                [],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                },
            )
            .unwrap();
        assert_eq!(
            (
                request_id.as_str(),
                trace_id.as_str(),
                model_group.as_str(),
                model.as_str(),
                status.as_str()
            ),
            ("req-1", "trace-0", "chat", "gpt-4o-mini", "success")
        );
        assert_eq!(start_time, "2026-01-01T00:00:00.001234Z");
        assert!((cost - 0.000_123).abs() < 1e-15);
        let indexed: bool = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM pragma_index_info('records_start_time') WHERE name = 'start_time')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(indexed);
    }

    #[tokio::test]
    async fn full_queue_drops_and_counts_instead_of_blocking() {
        let dir = TestDir::new("drops");
        let (writer, handle) = RecordWriter::start(config(&dir, false, 4)).unwrap();

        // Park the writer thread: from here on nothing drains the queue until `release`.
        let release = writer.hold();
        for i in 0..10 {
            // Returns at once even though nobody is taking records: a full queue is a drop,
            // never a wait (this test would hang otherwise).
            let commit = writer.submit(record(i));
            let outcome = commit.wait().await;
            if i < 4 {
                assert!(outcome.is_ok(), "record {i} fits in the queue");
            } else {
                assert!(matches!(outcome, Err(StoreError::QueueFull)), "record {i}: {outcome:?}");
            }
        }
        assert_eq!(writer.dropped(), 6, "4 fit in the queue, 6 are dropped");

        drop(release);
        let summary = handle.shutdown().await.unwrap();
        assert_eq!(
            summary,
            WriteSummary {
                dropped: 6,
                ..all_written(4, false)
            }
        );
        let ids: Vec<String> = read_all_sqlite(&dir.0.join("data"))
            .into_iter()
            .map(|r| r.request_id)
            .collect();
        assert_eq!(ids, ["req-0", "req-1", "req-2", "req-3"]);

        // After shutdown, submissions are refused and counted, not lost silently.
        let _ = writer.submit(record(99));
        assert_eq!(writer.dropped(), 7);
    }

    #[tokio::test]
    async fn a_sync_commit_is_pending_until_the_writer_has_committed_the_record() {
        use std::future::Future;
        use std::task::{Context, Poll, Waker};

        let dir = TestDir::new("sync-commit");
        let mut cfg = config(&dir, false, 16);
        cfg.durability = RecordDurability::Sync;
        let (writer, handle) = RecordWriter::start(cfg).unwrap();
        let mut cx = Context::from_waker(Waker::noop());

        let release = writer.hold();
        let mut commit = Box::pin(writer.submit(record(1)).wait());
        // The writer is parked, so nothing can have been committed: the wait must not be over.
        assert!(commit.as_mut().poll(&mut cx).is_pending());
        assert!(read_all_sqlite(&dir.0.join("data")).is_empty());
        drop(release);
        commit.await.unwrap();
        // Done means stored: another connection sees it at once.
        assert_eq!(read_all_sqlite(&dir.0.join("data")), vec![record(1)]);

        // Buffered: the wait is over at once, before the writer has seen the record.
        writer.set_durability(RecordDurability::Buffered);
        let release = writer.hold();
        let mut commit = Box::pin(writer.submit(record(2)).wait());
        assert!(matches!(commit.as_mut().poll(&mut cx), Poll::Ready(Ok(()))));
        drop(release);
        assert_eq!(handle.shutdown().await.unwrap(), all_written(2, false));
    }

    #[tokio::test]
    async fn shutdown_drains_every_accepted_record() {
        let dir = TestDir::new("drain");
        let (writer, handle) = RecordWriter::start(config(&dir, true, 10_000)).unwrap();
        for i in 0..10_000 {
            writer.submit(record(i));
        }
        // No waiting: shutdown itself must wait for the queue to empty.
        let summary = handle.shutdown().await.unwrap();
        assert_eq!(summary, all_written(10_000, true));
        assert_eq!(read_sqlite(&dir.0.join("data")).unwrap().count(), 10_000);
        assert_eq!(read_jsonl(&dir.0.join("logs/records.jsonl")).unwrap().count(), 10_000);
    }

    #[tokio::test]
    async fn restart_appends_to_the_same_database() {
        let dir = TestDir::new("restart");
        for round in 0..2 {
            let (writer, handle) = RecordWriter::start(config(&dir, true, 64)).unwrap();
            writer.submit(record(round));
            handle.shutdown().await.unwrap();
        }
        assert_eq!(read_all_sqlite(&dir.0.join("data")), vec![record(0), record(1)]);
        assert_eq!(read_jsonl(&dir.0.join("logs/records.jsonl")).unwrap().count(), 2);
    }

    #[tokio::test]
    async fn sniffing_tells_tollgate_databases_from_other_files() {
        let dir = TestDir::new("sniff");
        let (writer, handle) = RecordWriter::start(config(&dir, true, 64)).unwrap();
        writer.submit(record(1));
        handle.shutdown().await.unwrap();

        assert!(is_tollgate_sqlite(&dir.0.join("data")));
        assert!(is_tollgate_sqlite(&dir.0.join("data").join(DB_FILE_NAME)));
        assert!(!is_tollgate_sqlite(&dir.0.join("logs/records.jsonl")));
        assert!(!is_tollgate_sqlite(&dir.0.join("nowhere")));

        let foreign = dir.0.join("other.sqlite");
        Connection::open(&foreign)
            .unwrap()
            .execute_batch("CREATE TABLE spend (x INTEGER)")
            .unwrap();
        assert!(!is_tollgate_sqlite(&foreign));
        assert!(matches!(read_sqlite(&foreign), Err(StoreError::NotTollgate { .. })));
        assert!(matches!(
            read_sqlite(&dir.0.join("nowhere")),
            Err(StoreError::Missing { .. })
        ));
    }

    #[tokio::test]
    async fn a_newer_schema_is_refused_not_misread() {
        let dir = TestDir::new("newer");
        let (_writer, handle) = RecordWriter::start(config(&dir, false, 8)).unwrap();
        handle.shutdown().await.unwrap();
        let db = dir.0.join("data").join(DB_FILE_NAME);
        Connection::open(&db)
            .unwrap()
            .pragma_update(None, "user_version", crate::SCHEMA_VERSION + 1)
            .unwrap();

        let err = read_sqlite(&db).err().unwrap();
        assert!(
            matches!(
                err,
                StoreError::NewerSchema { found, supported, .. }
                    if found == crate::SCHEMA_VERSION + 1 && supported == crate::SCHEMA_VERSION
            ),
            "{err}"
        );
        assert!(matches!(
            RecordWriter::start(config(&dir, false, 8)).err().unwrap(),
            StoreError::NewerSchema { .. }
        ));
    }

    #[test]
    fn a_bad_stored_row_is_reported_with_its_location() {
        let dir = TestDir::new("bad-row");
        let db = dir.0.join(DB_FILE_NAME);
        let conn = sqlite::open_for_writing(&db).unwrap();
        conn.execute("INSERT INTO records (json) VALUES ('{\"request_id\": 5}')", [])
            .unwrap();
        drop(conn);
        let err = read_sqlite(&db).unwrap().next().unwrap().unwrap_err();
        assert!(err.to_string().contains("rowid 1"), "{err}");
    }
}
