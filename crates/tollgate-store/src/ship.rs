//! Shipping records from the local SQLite database (the durable outbox) to the shared Postgres.
//!
//! Every record is committed to SQLite first, as without a shared store; this thread then sends
//! the rows after a cursor (`shipped.last_rowid`, per destination) in batches, one multi-row
//! insert per batch, and moves the cursor once Postgres has committed. Postgres skips rows it
//! already holds (`request_id` + `attempt` are unique), so a batch sent twice (a crash between
//! the Postgres commit and the cursor update) is harmless. While Postgres is down the rows wait
//! on disk, the backlog grows and readiness says so; no request ever waits for Postgres.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::StoreError;
use crate::pg::{Pool, PooledClient, PostgresTarget};
use crate::store::{StoredRow, status_from};

/// Rows per insert: large enough that the round trip and commit are amortised, small enough
/// that one batch's arrays stay a few MB.
const SHIP_BATCH: usize = 2000;

/// After a batch that was not full, how long the reader lets records gather before the next.
const SHIP_LINGER: Duration = Duration::from_millis(250);

/// How long an idle shipper sleeps when nobody wakes it (the writer wakes it after commits).
const IDLE_POLL: Duration = Duration::from_millis(200);

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// At shutdown, how long the shipper may keep sending what is left (the rest waits on disk and
/// goes at the next start).
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(5);

/// The shipper's state, as readiness and `/metrics` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipStatus {
    /// The Postgres URL, password masked.
    pub location: String,
    /// The last attempt to reach Postgres worked.
    pub connected: bool,
    /// Records in SQLite not yet in Postgres.
    pub backlog: u64,
    /// Records sent since start (duplicates Postgres skipped included).
    pub shipped: u64,
    /// Batches that failed since start.
    pub failures: u64,
    /// Why the last attempt failed, while it is failing.
    pub last_error: Option<String>,
}

pub(crate) struct ShipState {
    location: String,
    connected: AtomicBool,
    /// The newest rowid committed to SQLite (set by the writer at each commit, so the backlog
    /// is right the moment a record is kept, not at the shipper's next look).
    newest: AtomicI64,
    /// The newest rowid Postgres has.
    cursor: AtomicI64,
    shipped: AtomicU64,
    failures: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// Set by the writer after each commit, so new rows go out at once.
    wake: (Mutex<bool>, Condvar),
    stop: AtomicBool,
}

impl ShipState {
    pub(crate) fn new(location: &str) -> ShipState {
        ShipState {
            location: location.to_string(),
            connected: AtomicBool::new(false),
            newest: AtomicI64::new(0),
            cursor: AtomicI64::new(0),
            shipped: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            last_error: Mutex::new(None),
            wake: (Mutex::new(false), Condvar::new()),
            stop: AtomicBool::new(false),
        }
    }

    /// `queued`: records accepted by the writer and not yet in SQLite; they wait for shipping too.
    pub(crate) fn status(&self, queued: u64) -> ShipStatus {
        let in_sqlite = (self.newest.load(Ordering::Relaxed) - self.cursor.load(Ordering::Relaxed)).max(0) as u64;
        ShipStatus {
            location: self.location.clone(),
            connected: self.connected.load(Ordering::Relaxed),
            backlog: in_sqlite + queued,
            shipped: self.shipped.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            last_error: self.last_error.lock().ok().and_then(|e| e.clone()),
        }
    }

    /// The writer committed rows up to `rowid`.
    pub(crate) fn committed(&self, rowid: i64) {
        self.newest.fetch_max(rowid, Ordering::Relaxed);
        self.nudge();
    }

    /// New rows are in SQLite.
    pub(crate) fn nudge(&self) {
        let (lock, cv) = &self.wake;
        if let Ok(mut woken) = lock.lock() {
            *woken = true;
            cv.notify_all();
        }
    }

    /// Waits for a nudge, at most `at_most`.
    fn sleep(&self, at_most: Duration) {
        let (lock, cv) = &self.wake;
        let Ok(guard) = lock.lock() else {
            return;
        };
        let mut guard = if *guard {
            guard
        } else {
            match cv.wait_timeout(guard, at_most) {
                Ok((g, _)) => g,
                Err(_) => return,
            }
        };
        *guard = false;
    }

    /// Waits out a retry delay. Nudges do not cut it short (during an outage every commit
    /// nudges, and each would be a reconnect attempt), a stop does.
    fn back_off(&self, wait: Duration) {
        let until = Instant::now() + wait;
        while !self.stop.load(Ordering::Relaxed) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }

    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.nudge();
    }

    /// The startup connection worked.
    pub(crate) fn reached(&self) {
        self.connected.store(true, Ordering::Relaxed);
    }

    /// The startup connection failed: shown at once (it is not a failed batch).
    pub(crate) fn unreachable(&self, error: &StoreError) {
        self.connected.store(false, Ordering::Relaxed);
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(error.to_string());
        }
    }

    fn failed(&self, error: &StoreError) {
        self.connected.store(false, Ordering::Relaxed);
        self.failures.fetch_add(1, Ordering::Relaxed);
        let text = error.to_string();
        if let Ok(mut last) = self.last_error.lock() {
            if last.as_deref() != Some(text.as_str()) {
                tracing::warn!(error = %text, "cannot ship records to the shared store; they wait in SQLite and are retried");
            }
            *last = Some(text);
        }
    }

    fn worked(&self) {
        self.connected.store(true, Ordering::Relaxed);
        if let Ok(mut last) = self.last_error.lock()
            && last.take().is_some()
        {
            tracing::info!(location = %self.location, "shipping records to the shared store again");
        }
    }
}

/// What the shipping thread needs.
pub(crate) struct Shipper {
    pub db_path: PathBuf,
    pub target: PostgresTarget,
    pub pool: Pool,
    /// Stamped on rows that have none (written before instance ids existed).
    pub instance_id: Option<String>,
    /// The schema was migrated at startup already.
    pub migrated: bool,
}

impl Shipper {
    /// The thread's loop; returns after [`ShipState::stop`] once the backlog is sent or the
    /// shutdown drain time is over.
    ///
    /// Reading SQLite and inserting into Postgres overlap: a prefetch thread reads the next
    /// batches while this one waits on Postgres (on two cores that is what lets shipping keep up
    /// with the server's insert rate).
    pub(crate) fn run(mut self, state: &ShipState) {
        let local = match open_outbox(&self.db_path) {
            Ok(c) => c,
            Err(e) => {
                state.failed(&e);
                tracing::error!(error = %e, "the shipper cannot open the local database; records stay in SQLite only");
                return;
            }
        };
        let destination = state.location.clone();
        let mut cursor = read_cursor(&local, &destination).unwrap_or(0);
        state.cursor.store(cursor, Ordering::Relaxed);
        state
            .newest
            .fetch_max(newest_rowid(&local).unwrap_or(cursor), Ordering::Relaxed);
        let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(PREFETCHED);
        let db_path = self.db_path.clone();
        let instance_id = self.instance_id.clone();
        std::thread::scope(|scope| {
            let prefetcher = Prefetcher {
                db_path: &db_path,
                instance_id: instance_id.as_deref(),
                after: cursor,
            };
            let spawned = std::thread::Builder::new()
                .name("tollgate-ship-read".into())
                .spawn_scoped(scope, move || prefetcher.run(state, tx));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start the shipper's reader; records stay in SQLite only");
                return;
            }
            self.send_loop(state, &local, &destination, &mut cursor, rx);
            // Dropping `rx` (end of `send_loop`) ends the prefetcher at its next send.
        });
    }

    fn send_loop(
        &mut self,
        state: &ShipState,
        local: &Connection,
        destination: &str,
        cursor: &mut i64,
        rx: std::sync::mpsc::Receiver<Batch>,
    ) {
        let mut client: Option<PooledClient> = None;
        let mut backoff = MIN_BACKOFF;
        let mut stop_by: Option<Instant> = None;
        // A batch that failed is sent again, as it is (rows never change once committed).
        let mut pending: Option<Batch> = None;
        loop {
            if stop_by.is_none() && state.stop.load(Ordering::Relaxed) {
                stop_by = Some(Instant::now() + SHUTDOWN_DRAIN);
            }
            let newest = newest_rowid(local).unwrap_or(*cursor);
            state.newest.fetch_max(newest, Ordering::Relaxed);
            state.cursor.store(*cursor, Ordering::Relaxed);
            let backlog = newest.saturating_sub(*cursor).max(0) as u64;
            if let Some(deadline) = stop_by
                && (backlog == 0 || Instant::now() >= deadline)
            {
                if backlog > 0 {
                    tracing::warn!(
                        backlog,
                        "stopping with records not yet shipped; they are sent at the next start"
                    );
                }
                return;
            }
            let batch = match pending.take() {
                Some(b) => b,
                None => match rx.recv_timeout(IDLE_POLL) {
                    Ok(b) => b,
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        // Idle but last seen unreachable: probe, so readiness recovers without
                        // waiting for traffic (and the schema is ready for it).
                        if !state.connected.load(Ordering::Relaxed) && stop_by.is_none() {
                            match self.connect(&mut client) {
                                Ok(_) => state.worked(),
                                Err(e) => {
                                    client = None;
                                    state.unreachable(&e);
                                    state.back_off(backoff);
                                    backoff = (backoff * 2).min(MAX_BACKOFF);
                                }
                            }
                        }
                        continue;
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                },
            };
            match self.send(&batch, &mut client) {
                Ok(()) => {
                    *cursor = batch.last;
                    state.cursor.store(batch.last, Ordering::Relaxed);
                    if let Err(e) = write_cursor(local, destination, batch.last) {
                        // Postgres has the rows; a cursor left behind only means re-sending
                        // them after a restart, which the unique key absorbs.
                        tracing::warn!(error = %e, "cannot record how far shipping got; some records may be sent again after a restart");
                    }
                    backoff = MIN_BACKOFF;
                    state.shipped.fetch_add(batch.rows.len() as u64, Ordering::Relaxed);
                    state.worked();
                }
                Err(e) => {
                    state.failed(&e);
                    pending = Some(batch);
                    client = None;
                    if stop_by.is_some() {
                        std::thread::sleep(MIN_BACKOFF);
                    } else {
                        state.back_off(backoff);
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// A connection (and the schema migrated, once).
    fn connect<'c>(&mut self, client: &'c mut Option<PooledClient>) -> Result<&'c mut PooledClient, StoreError> {
        let conn = match client {
            Some(c) => c,
            None => client.insert(self.pool.get()?),
        };
        if !self.migrated {
            crate::migrate::postgres(conn, self.target.location())?;
            self.migrated = true;
        }
        Ok(conn)
    }

    /// One batch to Postgres (connecting, and migrating once, if need be).
    fn send(&mut self, batch: &Batch, client: &mut Option<PooledClient>) -> Result<(), StoreError> {
        let conn = self.connect(client)?;
        crate::pg::insert_rows(conn, &batch.rows)
            .map(|_| ())
            .map_err(|e| self.target.error(&e))
    }
}

/// Rows read from the outbox, in rowid order, and the rowid of the last one.
struct Batch {
    rows: Vec<StoredRow>,
    last: i64,
}

/// Batches read ahead of the one being sent.
const PREFETCHED: usize = 2;

/// Reads the outbox in order, from the shipped cursor on, a batch at a time.
struct Prefetcher<'a> {
    db_path: &'a std::path::Path,
    instance_id: Option<&'a str>,
    after: i64,
}

impl Prefetcher<'_> {
    fn run(mut self, state: &ShipState, tx: std::sync::mpsc::SyncSender<Batch>) {
        let local = match open_outbox(self.db_path) {
            Ok(c) => c,
            Err(e) => {
                state.failed(&e);
                return;
            }
        };
        loop {
            match read_outbox(&local, self.after, SHIP_BATCH, self.instance_id) {
                Ok((rows, Some(last))) => {
                    self.after = last;
                    let full = rows.len() == SHIP_BATCH;
                    // Blocks while the sender is behind; fails once it has stopped.
                    if tx.send(Batch { rows, last }).is_err() {
                        return;
                    }
                    // Under steady traffic, gather for a moment rather than ship every commit's
                    // few rows: a transaction per ~100 ms of records instead of per 10 ms costs
                    // Postgres and this process a fraction of the CPU (which, on a machine the
                    // gateway shares, is latency). A backlog (full batches) goes at full speed,
                    // and the first record after a quiet spell goes at once.
                    if !full {
                        state.back_off(SHIP_LINGER);
                    }
                }
                Ok((_, None)) => {
                    if state.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    state.sleep(IDLE_POLL);
                }
                Err(e) => {
                    state.failed(&StoreError::Sqlite {
                        path: self.db_path.to_path_buf(),
                        source: e,
                    });
                    state.back_off(MAX_BACKOFF);
                    if state.stop.load(Ordering::Relaxed) {
                        return;
                    }
                }
            }
        }
    }
}

/// The shipper's own connection to the local database: it reads rows and moves its cursor, the
/// writer thread keeps writing (WAL lets both run).
fn open_outbox(path: &std::path::Path) -> Result<Connection, StoreError> {
    let err = |source| StoreError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let conn = Connection::open(path).map_err(err)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(err)?;
    Ok(conn)
}

fn read_cursor(conn: &Connection, destination: &str) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT last_rowid FROM shipped WHERE destination = ?1",
        params![destination],
        |row| row.get(0),
    )
    .optional()
    .map(|c| c.unwrap_or(0))
}

fn write_cursor(conn: &Connection, destination: &str, last: i64) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO shipped (destination, last_rowid) VALUES (?1, ?2)
         ON CONFLICT (destination) DO UPDATE SET last_rowid = excluded.last_rowid",
        params![destination, last],
    )
    .map(|_| ())
}

fn newest_rowid(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT coalesce(max(rowid), 0) FROM records", [], |row| row.get(0))
}

/// Up to `limit` rows after `cursor`, in order, and the rowid of the last one.
fn read_outbox(
    conn: &Connection,
    cursor: i64,
    limit: usize,
    instance_id: Option<&str>,
) -> rusqlite::Result<(Vec<StoredRow>, Option<i64>)> {
    let mut stmt = conn.prepare_cached(
        "SELECT rowid, request_id, attempt, instance_id, trace_id, session_id, start_time,
                model_group, model, status, key_alias, workflow, cost_usd, json,
                key_hash, cache, user_id, team_id
         FROM records WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
    )?;
    let mut rows = Vec::with_capacity(limit);
    let mut last = None;
    let mut q = stmt.query(params![cursor, limit as i64])?;
    while let Some(row) = q.next()? {
        last = Some(row.get::<_, i64>(0)?);
        let start: String = row.get::<_, Option<String>>(6)?.unwrap_or_default();
        let start_time = DateTime::parse_from_rfc3339(&start)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        let status: Option<String> = row.get(9)?;
        rows.push(StoredRow {
            request_id: row.get::<_, Option<String>>(1)?.unwrap_or_default(),
            attempt: row.get(2)?,
            instance_id: row
                .get::<_, Option<String>>(3)?
                .or_else(|| instance_id.map(str::to_string)),
            trace_id: row.get::<_, Option<String>>(4)?.unwrap_or_default(),
            session_id: row.get(5)?,
            start_time,
            model_group: row.get::<_, Option<String>>(7)?.unwrap_or_default(),
            model: row.get::<_, Option<String>>(8)?.unwrap_or_default(),
            status: status_from(status.as_deref().unwrap_or("success")),
            key_alias: row.get(10)?,
            workflow: row.get(11)?,
            cost_usd: row.get(12)?,
            json: row.get(13)?,
            // Filled by the writer (SQLite V6 backfilled older rows), so Postgres gets the log
            // view's columns without parsing the JSON.
            key_hash: row.get(14)?,
            cache: row.get(15)?,
            user_id: row.get(16)?,
            team_id: row.get(17)?,
        });
    }
    Ok((rows, last))
}
