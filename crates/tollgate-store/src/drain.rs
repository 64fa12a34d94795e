//! The writer's rounds: records taken off the queue in batches, SQLite and JSONL kept in step. Its
//! two threads take turns at running them (`shifts.rs`).
//!
//! Each sink is a [`Lane`] with its own retry buffer. A batch a sink cannot write (disk full,
//! permissions, a locked database) stays in that sink's buffer, in order, and is retried with
//! backoff while new records queue behind it; once the sink works again it catches up and both
//! sinks hold the same records. The buffer is bounded: when it overflows, or the writer shuts down
//! with records still waiting, those records are given up and counted as failed for that sink,
//! so the shutdown summary and `/metrics` say exactly how far the sinks diverged. The request path
//! never waits for any of this.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};
use tollgate_core::Record;
use tollgate_core::config::RecordDurability;

use crate::health::SinkHealth;
use crate::jsonl::JsonlAppender;
use crate::ship::ShipState;
use crate::sqlite;

/// Records per transaction taken from the queue. Large enough to amortise the commit, small
/// enough that a burst is visible to readers within milliseconds.
pub(crate) const BATCH: usize = 256;

/// Records per transaction when a sink catches up on its retry buffer.
const CATCH_UP_CHUNK: usize = 4 * BATCH;

/// The writer offers its core to whoever waits for it after this many records (serialised or
/// inserted). This is for its catch-up thread, which runs at the serving threads' priority (its
/// idle-class thread is preempted by them anyway): a batch is a few milliseconds of work, and
/// without a pause a serving thread woken behind it on its core can wait up to a scheduler slice
/// (1.4 ms on the bench machine). With the pause the p99 at 2,000 req/s was lower in six rounds
/// of six, by up to 0.45 ms (bench/notes.md, issue 11, when the writer had one thread at normal
/// priority). A yield with nobody waiting returns at once.
///
/// A full batch ([`BATCH`] records or more) means the writer is behind, and then it does not
/// yield: past saturation the serving threads, the load generator and the upstream always wait
/// for a core, each yield gave the core away for a whole round of them, and the writer fell to
/// ≈ 5,000 records/s against 13,000 requests/s. Its queue then held 30,000 records and the
/// gateway's RSS rose to 84 MB (bench/notes.md, session 12).
const YIELD_EVERY: usize = 8;

/// Yields the core before item `i` of a batch of `n` when [`pauses_before`] says so.
fn pause_before(i: usize, n: usize) {
    if pauses_before(i, n) {
        std::thread::yield_now();
    }
}

/// After every [`YIELD_EVERY`] items, never before the first, and never in a full batch.
fn pauses_before(i: usize, n: usize) -> bool {
    n < BATCH && i > 0 && i.is_multiple_of(YIELD_EVERY)
}

/// How long the writer waits for more records after the first of a batch (`buffered` only),
/// checking every [`LINGER_STEP`] and stopping early once [`GROUP`] records are in hand. A commit
/// rewrites the table's and every index's last page whatever the number of rows: one record
/// alone took 13 page writes and ≈ 150 µs of CPU at 100 req/s, a commit of ten ≈ 55 µs a record.
/// So the linger bounds how stale the store can be (and what a `kill -9` can lose), not how often
/// it commits. `sync` does not linger: its batches are the records that queued during the
/// previous commit (group commit), and its submitters are waiting.
pub(crate) const LINGER: Duration = Duration::from_millis(100);
const LINGER_STEP: Duration = Duration::from_millis(10);

/// Records worth a commit without lingering further: a batch's CPU comes in one run on a core
/// the serving threads share, so it is kept short rather than maximal: 32 records at the 21 µs a
/// record measured at 2,000 req/s is ≈ 0.7 ms.
pub(crate) const GROUP: usize = 32;

/// First retry delay after a failed write; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// While a sink waits for its retry, the queue is polled this often instead of blocked on, so
/// `sync` submitters wait at most this much longer while the *other* sink is failing.
const RETRY_POLL: Duration = Duration::from_millis(5);

/// Answers a `sync` submission: `Ok` once its record is committed to SQLite, or why not.
pub(crate) type Ack = oneshot::Sender<Result<(), String>>;

pub(crate) enum Message {
    /// Boxed: a `Record` is several hundred bytes and the channel sizes every slot for its largest
    /// message; a pointer keeps an idle, high-capacity queue small.
    Record(Box<Record>, Option<Ack>),
    /// Reopen the JSONL file at its path (SIGHUP after a log rotation).
    Reopen,
    /// Sent by shutdown: stop accepting, write what is queued, then finish.
    Close,
    /// Tests: park the writer thread (it says so on `parked`) until `release` fires or closes.
    #[cfg(test)]
    Hold {
        parked: std::sync::mpsc::Sender<()>,
        release: std::sync::mpsc::Receiver<()>,
    },
}

/// What the submitting side and the writer thread share.
pub(crate) struct Shared {
    /// Refused at the queue (full, or the writer shut down).
    pub dropped: AtomicU64,
    /// Accepted into the queue (so, with SQLite's written and failed counts, how many are
    /// still on their way to SQLite: queued or in the writer's current batch).
    pub accepted: AtomicU64,
    /// Stored in every sink.
    pub written: AtomicU64,
    /// Missing from at least one sink for good.
    pub failed: AtomicU64,
    /// Times the writer's catch-up thread took over from the idle one (`shifts.rs`).
    pub catch_ups: AtomicU64,
    pub durability: AtomicU8,
    pub reopen_jsonl: AtomicBool,
    pub sqlite: SinkHealth,
    pub jsonl: Option<SinkHealth>,
    /// Milliseconds since `epoch` of the last drop warning, plus one (0 means never).
    pub last_drop_warning: AtomicU64,
    pub epoch: Instant,
    /// The shipper to wake after each SQLite commit, when there is a shared store.
    pub ship: Option<Arc<ShipState>>,
}

pub(crate) fn durability_code(d: RecordDurability) -> u8 {
    match d {
        RecordDurability::Buffered => 0,
        RecordDurability::Sync => 1,
    }
}

pub(crate) fn durability_from_code(c: u8) -> RecordDurability {
    if c == 1 {
        RecordDurability::Sync
    } else {
        RecordDurability::Buffered
    }
}

/// One accepted record on its way through the sinks. Shared (`Arc`) by the lanes' buffers; only
/// the thread holding the writer's state touches it (`shifts.rs`), so the atomics are never
/// contended: they make the state movable between the writer's two threads.
struct Row {
    record: Record,
    /// Serialised once; SQLite's `json` column and the JSONL line are the same text.
    json: String,
    /// Sinks that have not stored it yet.
    owed: AtomicU8,
    /// Some sink gave up on it.
    lost: AtomicBool,
    ack: Mutex<Option<Ack>>,
}

impl Row {
    fn answer(&self, result: Result<(), String>) {
        if let Some(ack) = self.ack.lock().unwrap_or_else(PoisonError::into_inner).take() {
            // The request may have gone (client left); nobody to tell then.
            let _ = ack.send(result);
        }
    }
}

/// A place records are written to.
trait Target {
    fn write(&mut self, rows: &[Arc<Row>]) -> Result<(), String>;
}

struct SqliteTarget {
    conn: Connection,
    /// Told the newest rowid right after each commit, before the rows stop counting as on
    /// their way, so the shipping backlog never dips below the truth.
    ship: Option<Arc<ShipState>>,
}

impl Target for SqliteTarget {
    fn write(&mut self, rows: &[Arc<Row>]) -> Result<(), String> {
        let n = rows.len();
        sqlite::insert_batch(
            &mut self.conn,
            rows.iter().enumerate().map(|(i, r)| {
                pause_before(i, n);
                (&r.record, r.json.as_str())
            }),
        )
        .map_err(|e| e.to_string())?;
        if let Some(ship) = &self.ship {
            ship.committed(self.conn.last_insert_rowid());
        }
        Ok(())
    }
}

struct JsonlTarget {
    file: JsonlAppender,
    /// Reused for every batch: the lines are written with one `write` call.
    buf: Vec<u8>,
}

impl Target for JsonlTarget {
    fn write(&mut self, rows: &[Arc<Row>]) -> Result<(), String> {
        self.file.follow_path().map_err(|e| e.to_string())?;
        self.buf.clear();
        for r in rows {
            self.buf.extend_from_slice(r.json.as_bytes());
            self.buf.push(b'\n');
        }
        self.file.append(&self.buf).map_err(|e| e.to_string())
    }
}

/// One sink, its retry buffer and its backoff.
struct Lane<T> {
    target: T,
    backlog: VecDeque<Arc<Row>>,
    /// Records the buffer may hold; beyond that the oldest are given up.
    limit: usize,
    retry_at: Option<Instant>,
    backoff: Duration,
    last_error: Option<String>,
}

impl<T: Target> Lane<T> {
    fn new(target: T, limit: usize) -> Self {
        Lane {
            target,
            backlog: VecDeque::new(),
            limit: limit.max(BATCH),
            retry_at: None,
            backoff: MIN_BACKOFF,
            last_error: None,
        }
    }

    /// Writes what waits, oldest first, unless a retry is not due yet (`force` ignores that).
    /// With `acks`, a row's submitter is answered once the row is stored.
    fn flush(&mut self, health: &SinkHealth, shared: &Shared, force: bool, acks: bool) {
        if self.backlog.is_empty() || (!force && self.retry_at.is_some_and(|t| Instant::now() < t)) {
            return;
        }
        while !self.backlog.is_empty() {
            let n = self.backlog.len().min(CATCH_UP_CHUNK);
            let chunk = &self.backlog.make_contiguous()[..n];
            match self.target.write(chunk) {
                Ok(()) => {
                    for row in self.backlog.drain(..n) {
                        let owed = row.owed.load(Ordering::Relaxed).saturating_sub(1);
                        row.owed.store(owed, Ordering::Relaxed);
                        if owed == 0 && !row.lost.load(Ordering::Relaxed) {
                            shared.written.fetch_add(1, Ordering::Relaxed);
                        }
                        if acks {
                            row.answer(Ok(()));
                        }
                    }
                    health.wrote(n as u64);
                    self.retry_at = None;
                    self.backoff = MIN_BACKOFF;
                    self.last_error = None;
                }
                Err(e) => {
                    health.write_failed(&e, n, self.backlog.len());
                    self.last_error = Some(e);
                    self.retry_at = Some(Instant::now() + self.backoff);
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                    return;
                }
            }
        }
    }

    /// Gives up the oldest rows beyond the limit.
    fn trim(&mut self, health: &SinkHealth, shared: &Shared) {
        let excess = self.backlog.len().saturating_sub(self.limit);
        self.give_up(excess, health, shared);
    }

    fn give_up(&mut self, n: usize, health: &SinkHealth, shared: &Shared) {
        if n == 0 {
            return;
        }
        for row in self.backlog.drain(..n) {
            if !row.lost.swap(true, Ordering::Relaxed) {
                shared.failed.fetch_add(1, Ordering::Relaxed);
            }
            row.answer(Err(self.last_error.clone().unwrap_or_default()));
        }
        // Logged by `add_failed` once, then in the failure summary lines.
        health.add_failed(n as u64);
    }
}

/// Every sink of one writer.
pub(crate) struct Sinks {
    sqlite: Lane<SqliteTarget>,
    jsonl: Option<Lane<JsonlTarget>>,
    durability: u8,
    /// Stamped on records that do not say which instance served them.
    instance_id: Option<String>,
}

impl Sinks {
    pub(crate) fn new(
        conn: Connection,
        jsonl: Option<JsonlAppender>,
        retry_limit: usize,
        instance_id: Option<String>,
        ship: Option<Arc<ShipState>>,
    ) -> Self {
        Sinks {
            instance_id,
            sqlite: Lane::new(SqliteTarget { conn, ship }, retry_limit),
            jsonl: jsonl.map(|file| Lane::new(JsonlTarget { file, buf: Vec::new() }, retry_limit)),
            // Applied on the first batch (the connection starts at NORMAL).
            durability: durability_code(RecordDurability::Buffered),
        }
    }

    /// The earliest moment a failing sink wants its retry.
    fn next_retry(&self) -> Option<Instant> {
        let lanes = [
            (!self.sqlite.backlog.is_empty())
                .then_some(self.sqlite.retry_at)
                .flatten(),
            self.jsonl
                .as_ref()
                .filter(|l| !l.backlog.is_empty())
                .and_then(|l| l.retry_at),
        ];
        lanes.into_iter().flatten().min()
    }

    fn apply_durability(&mut self, shared: &Shared) {
        let wanted = shared.durability.load(Ordering::Relaxed);
        if wanted == self.durability {
            return;
        }
        match sqlite::set_fsync_per_commit(&self.sqlite.target.conn, wanted == 1) {
            Ok(()) => self.durability = wanted,
            Err(e) => tracing::error!(error = %e, "cannot change SQLite's synchronous setting"),
        }
    }

    fn reopen_jsonl(&mut self, shared: &Shared) {
        shared.reopen_jsonl.store(false, Ordering::Relaxed);
        if let Some(lane) = &mut self.jsonl {
            match lane.target.file.reopen() {
                Ok(()) => tracing::info!(path = %lane.target.file.path().display(), "JSONL file reopened"),
                Err(e) => tracing::error!(error = %e, "cannot reopen the JSONL file; still writing to the old one"),
            }
        }
    }

    /// Takes a batch through every sink; `closing` makes a failing sink try once more now.
    fn write(&mut self, batch: &mut Vec<(Box<Record>, Option<Ack>)>, shared: &Shared, closing: bool) {
        if shared.reopen_jsonl.load(Ordering::Relaxed) {
            self.reopen_jsonl(shared);
        }
        self.apply_durability(shared);
        let sinks = 1 + u8::from(self.jsonl.is_some());
        let n = batch.len();
        let mut rows: Vec<Arc<Row>> = Vec::with_capacity(n);
        for (i, (mut record, ack)) in batch.drain(..).enumerate() {
            pause_before(i, n);
            if record.instance_id.is_none() {
                record.instance_id.clone_from(&self.instance_id);
            }
            match serde_json::to_string(&record) {
                Ok(json) => rows.push(Arc::new(Row {
                    record: *record,
                    json,
                    owed: AtomicU8::new(sinks),
                    lost: AtomicBool::new(false),
                    ack: Mutex::new(ack),
                })),
                Err(e) => {
                    // Cannot happen for a `Record` (all its fields serialise); counted if it does.
                    tracing::error!(request_id = %record.request_id, error = %e, "cannot serialise record");
                    shared.failed.fetch_add(1, Ordering::Relaxed);
                    shared.sqlite.add_failed(1);
                    if let Some(h) = &shared.jsonl {
                        h.add_failed(1);
                    }
                    if let Some(ack) = ack {
                        let _ = ack.send(Err(e.to_string()));
                    }
                }
            }
        }

        self.sqlite.backlog.extend(rows.iter().cloned());
        self.sqlite.flush(&shared.sqlite, shared, closing, true);
        self.sqlite.trim(&shared.sqlite, shared);
        shared.sqlite.set_pending(self.sqlite.backlog.len());
        // Rows SQLite has not committed yet (failing, or waiting for a retry): their submitters
        // are told now rather than after the outage; the rows stay buffered for the retry.
        let reason = self
            .sqlite
            .last_error
            .as_deref()
            .unwrap_or("the SQLite sink is failing");
        for row in &rows {
            row.answer(Err(reason.to_string()));
        }

        if let (Some(lane), Some(health)) = (&mut self.jsonl, &shared.jsonl) {
            lane.backlog.extend(rows);
            lane.flush(health, shared, closing, false);
            lane.trim(health, shared);
            health.set_pending(lane.backlog.len());
        }
    }

    /// Shutdown: one last try for whatever waits, then whatever still waits is given up.
    fn finish(&mut self, shared: &Shared) {
        let mut none = Vec::new();
        self.write(&mut none, shared, true);
        let n = self.sqlite.backlog.len();
        self.sqlite.give_up(n, &shared.sqlite, shared);
        shared.sqlite.set_pending(0);
        if let (Some(lane), Some(health)) = (&mut self.jsonl, &shared.jsonl) {
            let n = lane.backlog.len();
            lane.give_up(n, health, shared);
            health.set_pending(0);
        }
    }
}

type Batch = Vec<(Box<Record>, Option<Ack>)>;

/// The writer's state: the queue's receiving end, the sinks and the batch in hand. Whichever of
/// the writer's threads writes holds it (`shifts.rs`).
pub(crate) struct Drain {
    rx: mpsc::Receiver<Message>,
    sinks: Sinks,
    batch: Batch,
    closing: bool,
}

impl Drain {
    pub(crate) fn new(rx: mpsc::Receiver<Message>, sinks: Sinks) -> Drain {
        Drain {
            rx,
            sinks,
            batch: Vec::with_capacity(BATCH),
            closing: false,
        }
    }

    /// One round of the writer: wait for a record (or a due retry), take whatever else is
    /// queued, linger briefly for more in `buffered` mode, write. False once the queue is closed
    /// and empty, after a last attempt for anything a failing sink still holds.
    pub(crate) fn round(&mut self, shared: &Shared) -> bool {
        let Drain {
            rx,
            sinks,
            batch,
            closing,
        } = self;
        match sinks.next_retry() {
            None => match rx.blocking_recv() {
                None => return finish(sinks, shared),
                Some(m) => accept(m, rx, sinks, shared, batch, closing),
            },
            // A failing sink needs its retries even when no record arrives, so poll the queue
            // instead of blocking on it.
            Some(retry_at) => match rx.try_recv() {
                Ok(m) => accept(m, rx, sinks, shared, batch, closing),
                Err(mpsc::error::TryRecvError::Disconnected) => return finish(sinks, shared),
                Err(mpsc::error::TryRecvError::Empty) => {
                    let wait = retry_at.saturating_duration_since(Instant::now());
                    if !wait.is_zero() {
                        std::thread::sleep(wait.min(RETRY_POLL));
                        return true;
                    }
                }
            },
        }
        take_queued(rx, sinks, shared, batch, closing);
        // At moderate rates records arrive one at a time, so without a linger every request
        // costs its own SQLite transaction, JSONL write and cross-thread wake-up. While the
        // thread sleeps, submitters push without waking anyone. Shutdown does not wait, and
        // `sync` does not either: its submitters are waiting for the commit.
        let buffered = shared.durability.load(Ordering::Relaxed) == durability_code(RecordDurability::Buffered);
        if buffered && !*closing && !batch.is_empty() {
            linger(rx, sinks, shared, batch, closing);
        }
        sinks.write(batch, shared, *closing);
        true
    }
}

fn finish(sinks: &mut Sinks, shared: &Shared) -> bool {
    sinks.finish(shared);
    false
}

fn accept(
    message: Message,
    rx: &mut mpsc::Receiver<Message>,
    sinks: &mut Sinks,
    shared: &Shared,
    batch: &mut Batch,
    closing: &mut bool,
) {
    match message {
        Message::Record(record, ack) => batch.push((record, ack)),
        Message::Reopen => sinks.reopen_jsonl(shared),
        // Closing the receiver refuses new sends but keeps what is queued for us to drain.
        Message::Close => {
            rx.close();
            *closing = true;
        }
        #[cfg(test)]
        Message::Hold { parked, release } => {
            let _ = parked.send(());
            let _ = release.recv();
        }
    }
}

/// Gathers more records for `batch`, for at most [`LINGER`]: until [`GROUP`] are in hand, the
/// queue closes, or durability turns `sync`.
fn linger(rx: &mut mpsc::Receiver<Message>, sinks: &mut Sinks, shared: &Shared, batch: &mut Batch, closing: &mut bool) {
    let deadline = Instant::now() + LINGER;
    while batch.len() < GROUP && !*closing {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || shared.durability.load(Ordering::Relaxed) != durability_code(RecordDurability::Buffered) {
            break;
        }
        std::thread::sleep(left.min(LINGER_STEP));
        take_queued(rx, sinks, shared, batch, closing);
    }
}

/// Moves records already waiting in the queue into `batch`, without waiting, up to [`BATCH`].
fn take_queued(
    rx: &mut mpsc::Receiver<Message>,
    sinks: &mut Sinks,
    shared: &Shared,
    batch: &mut Batch,
    closing: &mut bool,
) {
    while batch.len() < BATCH {
        match rx.try_recv() {
            Ok(m) => accept(m, rx, sinks, shared, batch, closing),
            Err(_) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_pauses_between_runs_of_records_never_before_the_first() {
        let n = GROUP;
        let pauses: Vec<usize> = (0..=3 * YIELD_EVERY).filter(|&i| pauses_before(i, n)).collect();
        assert_eq!(pauses, [YIELD_EVERY, 2 * YIELD_EVERY, 3 * YIELD_EVERY]);
        // A batch smaller than a run never yields.
        assert!((0..YIELD_EVERY).all(|i| !pauses_before(i, YIELD_EVERY)));
    }

    #[test]
    fn a_writer_that_is_behind_never_pauses() {
        assert!((0..BATCH).all(|i| !pauses_before(i, BATCH)));
        assert!((0..CATCH_UP_CHUNK).all(|i| !pauses_before(i, CATCH_UP_CHUNK)));
        assert!(pauses_before(YIELD_EVERY, BATCH - 1));
    }
}
