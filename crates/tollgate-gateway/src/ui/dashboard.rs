//! What the dashboard keeps while the server runs: the session table, the sign-in limiter, the
//! reports kept for large ranges and the log pages' connection to the record store. Handed to its
//! routes as an axum `Extension`, so the gateway's `App` carries nothing of the UI.
//!
//! The pages read the shared Postgres when the gateway ships its records there (every instance's
//! records, a fraction of a second after they are written), else this instance's SQLite: the log
//! pages through [`Dashboard::query`], the overview and report through [`ReportStore`]. This is
//! the one place that knows which.

use std::sync::Mutex;

use tollgate_store::{PostgresStore, RecordPage, RecordQuery, RecordStore, SqliteStore, StoreConfig, StoreError};

use super::session::{Sessions, SignInLimiter};
use super::snapshots::Snapshots;

#[derive(Default)]
pub struct Dashboard {
    pub sessions: std::sync::Arc<Sessions>,
    pub limiter: SignInLimiter,
    /// The overview's and report page's reports, kept by range (`snapshots.rs`).
    pub snapshots: Snapshots,
    /// Opened at the first log page, then kept; dropped after an error, so the next page
    /// reconnects (Postgres restarted, the network came back).
    records: Mutex<Option<Records>>,
}

/// Which store the log pages read, as the pages name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSource {
    /// This instance's SQLite (in WAL mode: read beside the writer).
    Local,
    /// The shared Postgres the instances ship to.
    Shared,
}

impl LogSource {
    pub fn of(store: &StoreConfig) -> LogSource {
        if store.shared.is_some() {
            LogSource::Shared
        } else {
            LogSource::Local
        }
    }

    /// The name of its phrase in `text.rs`.
    pub fn phrase(self) -> &'static str {
        match self {
            LogSource::Local => "store_local",
            LogSource::Shared => "store_shared",
        }
    }
}

/// Where a report's records are read, owned so a build on another thread can take it.
pub enum ReportStore {
    Local(std::path::PathBuf),
    Shared(Box<tollgate_store::PostgresTarget>),
}

impl ReportStore {
    pub fn of(store: &StoreConfig) -> ReportStore {
        match &store.shared {
            Some(shared) => ReportStore::Shared(Box::new(shared.target.clone())),
            None => ReportStore::Local(store.data_dir.clone()),
        }
    }

    pub fn source(&self) -> tollgate_report::RecordSource<'_> {
        match self {
            ReportStore::Local(data_dir) => tollgate_report::RecordSource::Sqlite(data_dir),
            ReportStore::Shared(target) => tollgate_report::RecordSource::Postgres(target),
        }
    }
}

/// An open store, of either kind.
enum Records {
    Local(SqliteStore),
    Shared(SharedRecords),
}

impl Records {
    fn open(store: &StoreConfig) -> Result<Records, StoreError> {
        match &store.shared {
            // `open` migrates (a no-op once the writer has), so the log view's columns exist.
            Some(shared) => {
                let store = PostgresStore::open(&shared.target)?;
                Ok(Records::Shared(SharedRecords(Some(Box::new(store)))))
            }
            None => Ok(Records::Local(SqliteStore::open(&store.data_dir)?)),
        }
    }

    fn query(&mut self, query: &RecordQuery) -> Result<RecordPage, StoreError> {
        match self {
            Records::Local(s) => s.query(query),
            Records::Shared(SharedRecords(Some(s))) => s.query(query),
            Records::Shared(SharedRecords(None)) => Err(StoreError::WriterGone),
        }
    }
}

/// The shared store's connection, closed on a thread of its own: the blocking Postgres client's
/// `Drop` runs a small runtime, which panics on an async worker, and the dashboard's last
/// reference may well go on one (when the server stops).
struct SharedRecords(Option<Box<PostgresStore>>);

impl Drop for SharedRecords {
    fn drop(&mut self) {
        if let Some(store) = self.0.take() {
            let closed = std::thread::Builder::new()
                .name("tollgate-pg-close".into())
                .spawn(move || drop(store));
            if let Err(e) = closed {
                // No thread to close it on: leak the connection rather than abort; the server
                // ends it when the process exits.
                tracing::debug!(error = %e, "cannot close the dashboard's Postgres connection on a thread of its own");
            }
        }
    }
}

impl Dashboard {
    /// One page of the log view (blocking: call off the async workers).
    pub fn query(&self, store: &StoreConfig, query: &RecordQuery) -> Result<RecordPage, StoreError> {
        let mut slot = self.records.lock().map_err(|_| StoreError::WriterGone)?;
        // A kept connection may have died since the last page (a restarted Postgres): one retry
        // on a fresh one, so the visitor does not see that error.
        if let Some(records) = slot.as_mut() {
            match records.query(query) {
                Ok(page) => return Ok(page),
                Err(e) => {
                    tracing::debug!(error = %e, "the dashboard's record store failed; reconnecting");
                    *slot = None;
                }
            }
        }
        let page = slot.insert(Records::open(store)?).query(query);
        if page.is_err() {
            *slot = None;
        }
        page
    }
}
