//! What the dashboard keeps while the server runs: the session table, the sign-in limiter, the
//! reports kept for large ranges and its connection to the record store. Handed to its routes as an axum `Extension`, so the
//! gateway's `App` carries nothing of the UI.

use std::path::Path;
use std::sync::Mutex;

use tollgate_store::{RecordPage, RecordQuery, RecordStore, SqliteStore, StoreError};

use super::session::{Sessions, SignInLimiter};
use super::snapshots::Snapshots;

#[derive(Default)]
pub struct Dashboard {
    pub sessions: std::sync::Arc<Sessions>,
    pub limiter: SignInLimiter,
    /// The overview's and report page's reports, kept by range (`snapshots.rs`).
    pub snapshots: Snapshots,
    /// Opened at the first log page, then kept (SQLite in WAL mode: reading beside the writer).
    records: Mutex<Option<SqliteStore>>,
}

impl Dashboard {
    /// One page of the log view from the local store (blocking: call off the async workers).
    pub fn query(&self, data_dir: &Path, query: &RecordQuery) -> Result<RecordPage, StoreError> {
        let mut slot = self.records.lock().map_err(|_| StoreError::WriterGone)?;
        if slot.is_none() {
            *slot = Some(SqliteStore::open(data_dir)?);
        }
        match slot.as_mut() {
            Some(store) => store.query(query),
            None => Err(StoreError::WriterGone),
        }
    }
}
