//! The bounded record writer: records leave the request path through a channel and are written
//! in batches by a dedicated thread.
//!
//! A dedicated std thread (not a tokio task) owns the SQLite connection because rusqlite is
//! blocking; keeping it off the runtime means a slow disk can never stall request handling.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};
use tollgate_core::Record;

use crate::error::StoreError;
use crate::sqlite::{self, DB_FILE_NAME};

/// Records per transaction. Large enough to amortise the commit, small enough that a burst is
/// visible to readers within milliseconds.
const BATCH: usize = 256;

/// How long the writer waits for more records after the first of a batch. Bounds how stale the
/// store can be (readers see a record at most this much later) and caps wake-ups at ~100/s.
const LINGER: Duration = Duration::from_millis(10);

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
    pub capacity: usize,
}

enum Message {
    /// Boxed: a `Record` is several hundred bytes and the channel sizes every slot for its largest
    /// message; a pointer keeps an idle, high-capacity queue small.
    Record(Box<Record>),
    /// Sent by [`WriterHandle::shutdown`]: stop accepting, write what is queued, then finish.
    Close,
}

/// Counters shared between the submitting side and the writer thread.
struct Counters {
    dropped: AtomicU64,
    written: AtomicU64,
    failed: AtomicU64,
    /// Milliseconds since `epoch` of the last drop warning, plus one (0 means never).
    last_drop_warning: AtomicU64,
    epoch: Instant,
}

/// The submitting side: cheap to clone, one per request handler if need be.
#[derive(Clone)]
pub struct RecordWriter {
    tx: mpsc::Sender<Message>,
    counters: Arc<Counters>,
}

/// Owns the writer thread; [`WriterHandle::shutdown`] drains it.
pub struct WriterHandle {
    tx: mpsc::Sender<Message>,
    done: oneshot::Receiver<WriteSummary>,
    counters: Arc<Counters>,
}

/// What the writer did over its life, as returned by [`WriterHandle::shutdown`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteSummary {
    /// Records stored in every configured sink.
    pub written: u64,
    /// Records accepted but rejected by a sink (disk full, permissions); each failure is logged.
    pub failed: u64,
    /// Records refused because the queue was full or the writer had shut down.
    pub dropped: u64,
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
        let jsonl = match &config.jsonl {
            Some(path) => Some(JsonlSink::open(path)?),
            None => None,
        };

        let (tx, rx) = mpsc::channel(config.capacity.max(1));
        let (done_tx, done) = oneshot::channel();
        let counters = Arc::new(Counters {
            dropped: AtomicU64::new(0),
            written: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            last_drop_warning: AtomicU64::new(0),
            epoch: Instant::now(),
        });
        let sinks = Sinks { db_path, conn, jsonl };
        let thread_counters = Arc::clone(&counters);
        std::thread::Builder::new()
            .name("tollgate-record-writer".into())
            .spawn(move || {
                drain(rx, sinks, &thread_counters);
                let _ = done_tx.send(summary(&thread_counters));
            })
            .map_err(|source| StoreError::Io {
                path: config.data_dir.clone(),
                source,
            })?;

        let writer = RecordWriter {
            tx: tx.clone(),
            counters: Arc::clone(&counters),
        };
        Ok((writer, WriterHandle { tx, done, counters }))
    }

    /// Queues a record without ever waiting. When the queue is full (the disk cannot keep up) the
    /// record is dropped and counted: losing a log line is better than slowing every client.
    pub fn submit(&self, record: Record) {
        if self.tx.try_send(Message::Record(Box::new(record))).is_err() {
            let dropped = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            self.warn_drop(dropped);
        }
    }

    fn warn_drop(&self, dropped: u64) {
        let now = self.counters.epoch.elapsed().as_millis() as u64 + 1;
        let last = self.counters.last_drop_warning.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < DROP_WARN_INTERVAL_MS {
            return;
        }
        // Only the thread that wins the swap logs, so concurrent drops give one warning.
        if self
            .counters
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

    /// Records refused so far (queue full or writer shut down).
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Records stored in every sink so far.
    pub fn written(&self) -> u64 {
        self.counters.written.load(Ordering::Relaxed)
    }

    /// Records a sink rejected so far.
    pub fn failed(&self) -> u64 {
        self.counters.failed.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for RecordWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordWriter")
            .field("queued", &(self.tx.max_capacity() - self.tx.capacity()))
            .field("written", &self.written())
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl WriterHandle {
    /// Stops accepting records, writes every record accepted before, and returns the totals.
    /// Submissions racing with shutdown are either written or counted as dropped, never lost
    /// silently.
    pub async fn shutdown(self) -> Result<WriteSummary, StoreError> {
        // `send` (not `try_send`) so a full queue delays shutdown rather than skipping it; the
        // writer is draining, so space appears.
        self.tx.send(Message::Close).await.map_err(|_| StoreError::WriterGone)?;
        drop(self.tx);
        self.done.await.map_err(|_| StoreError::WriterGone)
    }

    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    pub fn written(&self) -> u64 {
        self.counters.written.load(Ordering::Relaxed)
    }
}

fn summary(counters: &Counters) -> WriteSummary {
    WriteSummary {
        written: counters.written.load(Ordering::Relaxed),
        failed: counters.failed.load(Ordering::Relaxed),
        dropped: counters.dropped.load(Ordering::Relaxed),
    }
}

struct JsonlSink {
    path: PathBuf,
    out: BufWriter<File>,
}

impl JsonlSink {
    fn open(path: &Path) -> Result<Self, StoreError> {
        let io_err = |source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io_err)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io_err)?;
        Ok(JsonlSink {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
        })
    }

    fn append(&mut self, rows: &[(&Record, String)]) -> std::io::Result<()> {
        for (_, line) in rows {
            self.out.write_all(line.as_bytes())?;
            self.out.write_all(b"\n")?;
        }
        // Flush per batch so `tail -f` and a crash both see whole batches.
        self.out.flush()
    }
}

struct Sinks {
    db_path: PathBuf,
    conn: Connection,
    jsonl: Option<JsonlSink>,
}

impl Sinks {
    fn write(&mut self, batch: &[Record], counters: &Counters) {
        // Serialise once; SQLite's `json` column and the JSONL line are the same text.
        let mut rows: Vec<(&Record, String)> = Vec::with_capacity(batch.len());
        for record in batch {
            match serde_json::to_string(record) {
                Ok(json) => rows.push((record, json)),
                Err(e) => {
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(request_id = %record.request_id, error = %e, "cannot serialise record");
                }
            }
        }
        let n = rows.len() as u64;

        let mut ok = true;
        if let Err(e) = sqlite::insert_batch(&mut self.conn, &rows) {
            ok = false;
            tracing::error!(path = %self.db_path.display(), error = %e, records = n, "cannot write records to SQLite");
        }
        if let Some(sink) = &mut self.jsonl
            && let Err(e) = sink.append(&rows)
        {
            ok = false;
            tracing::error!(path = %sink.path.display(), error = %e, records = n, "cannot append records to JSONL");
        }
        let counter = if ok { &counters.written } else { &counters.failed };
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// The writer thread's loop: block for one record, take whatever else is queued, linger briefly
/// for more (up to a batch), write, repeat. Ends once the channel is closed and empty.
fn drain(mut rx: mpsc::Receiver<Message>, mut sinks: Sinks, counters: &Counters) {
    let mut batch: Vec<Record> = Vec::with_capacity(BATCH);
    let mut closing = false;
    loop {
        match rx.blocking_recv() {
            None => break,
            Some(Message::Record(record)) => batch.push(*record),
            // Closing the receiver refuses new sends but keeps what is queued for us to drain.
            Some(Message::Close) => {
                rx.close();
                closing = true;
            }
        }
        take_queued(&mut rx, &mut batch, &mut closing);
        // At moderate rates records arrive one at a time, so without a linger every request
        // costs its own SQLite transaction, JSONL flush and cross-thread wake-up. While the
        // thread sleeps, submitters push without waking anyone. Shutdown does not wait.
        if !closing && !batch.is_empty() && batch.len() < BATCH {
            std::thread::sleep(LINGER);
            take_queued(&mut rx, &mut batch, &mut closing);
        }
        if !batch.is_empty() {
            sinks.write(&batch, counters);
            batch.clear();
        }
    }
}

/// Moves what is already queued into `batch`, without waiting, up to [`BATCH`].
fn take_queued(rx: &mut mpsc::Receiver<Message>, batch: &mut Vec<Record>, closing: &mut bool) {
    while batch.len() < BATCH {
        match rx.try_recv() {
            Ok(Message::Record(record)) => batch.push(*record),
            Ok(Message::Close) => {
                rx.close();
                *closing = true;
            }
            Err(_) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
        assert_eq!(
            summary,
            WriteSummary {
                written: 2_500,
                failed: 0,
                dropped: 0
            }
        );

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
    async fn schema_has_indexed_columns_wal_and_version() {
        let dir = TestDir::new("schema");
        let (writer, handle) = RecordWriter::start(config(&dir, false, 16)).unwrap();
        writer.submit(record(1));
        handle.shutdown().await.unwrap();

        let conn = Connection::open(dir.0.join("data").join(DB_FILE_NAME)).unwrap();
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(version, 1);
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

        // Stall the writer: another connection holds the write lock, so the writer's first batch
        // waits in SQLite's busy handler while the queue fills behind it.
        let blocker = Connection::open(dir.0.join("data").join(DB_FILE_NAME)).unwrap();
        blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
        writer.submit(record(0));
        tokio::time::sleep(Duration::from_millis(300)).await;

        let started = Instant::now();
        for i in 1..=10 {
            writer.submit(record(i));
        }
        assert!(started.elapsed() < Duration::from_millis(100), "submit must not wait");
        assert_eq!(writer.dropped(), 6, "4 fit in the queue, 6 are dropped");

        blocker.execute_batch("COMMIT").unwrap();
        let summary = handle.shutdown().await.unwrap();
        assert_eq!(
            summary,
            WriteSummary {
                written: 5,
                failed: 0,
                dropped: 6
            }
        );
        let ids: Vec<String> = read_all_sqlite(&dir.0.join("data"))
            .into_iter()
            .map(|r| r.request_id)
            .collect();
        assert_eq!(ids, ["req-0", "req-1", "req-2", "req-3", "req-4"]);

        // After shutdown, submissions are refused and counted, not lost silently.
        writer.submit(record(99));
        assert_eq!(writer.dropped(), 7);
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
        assert_eq!(
            summary,
            WriteSummary {
                written: 10_000,
                failed: 0,
                dropped: 0
            }
        );
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
            .pragma_update(None, "user_version", 2)
            .unwrap();

        let err = read_sqlite(&db).err().unwrap();
        assert!(
            matches!(
                err,
                StoreError::NewerSchema {
                    found: 2,
                    supported: 1,
                    ..
                }
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
