//! The one interface both record stores implement: SQLite (the embedded default, and the local
//! outbox of every instance) and Postgres (the shared store many instances ship to).
//!
//! A row is the whole record as JSON plus the columns queries filter on. Rows are unique by
//! `(request_id, attempt)`, and inserting one that is already there does nothing: shipping is
//! at-least-once (a batch may be sent again after a crash), the table stays exactly-once.

use chrono::{DateTime, SecondsFormat, Utc};
use tollgate_core::{Record, RecordStatus};

use crate::error::StoreError;

/// One record as stored: the indexed columns and the JSON the record is rebuilt from.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRow {
    pub request_id: String,
    /// The upstream attempt (0 for a request that never reached one).
    pub attempt: i64,
    pub instance_id: Option<String>,
    pub trace_id: String,
    pub session_id: Option<String>,
    pub start_time: DateTime<Utc>,
    pub model_group: String,
    pub model: String,
    pub status: &'static str,
    pub key_alias: Option<String>,
    pub workflow: Option<String>,
    pub cost_usd: Option<f64>,
    pub json: String,
}

impl StoredRow {
    /// The row of a record already serialised as `json`.
    pub fn new(record: &Record, json: String) -> StoredRow {
        StoredRow {
            request_id: record.request_id.clone(),
            attempt: i64::from(record.attempt.unwrap_or(0)),
            instance_id: record.instance_id.clone(),
            trace_id: record.trace_id.clone(),
            session_id: record.session_id.clone(),
            start_time: record.start_time,
            model_group: record.model_group.clone(),
            model: record.model.clone(),
            status: status_str(record.status),
            key_alias: record.key_alias.clone(),
            workflow: record.workflow.clone(),
            cost_usd: record.cost_usd,
            json,
        }
    }

    /// Serialises a record (tests, imports): what the writer does once per record.
    pub fn from_record(record: &Record) -> Result<StoredRow, StoreError> {
        let json = serde_json::to_string(record).map_err(StoreError::Line)?;
        Ok(StoredRow::new(record, json))
    }

    /// Fixed-width UTC text: sorts as text, so SQLite's start_time index serves range scans.
    pub(crate) fn start_time_text(&self) -> String {
        self.start_time.to_rfc3339_opts(SecondsFormat::Micros, true)
    }
}

pub(crate) fn status_str(status: RecordStatus) -> &'static str {
    match status {
        RecordStatus::Success => "success",
        RecordStatus::Failure => "failure",
    }
}

pub(crate) fn status_from(text: &str) -> &'static str {
    if text == "failure" { "failure" } else { "success" }
}

/// Which records to read: `since <= start_time < until`, each bound optional. Applied by the
/// database (an index range scan), so reading one day of a year of records reads one day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

impl TimeRange {
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u)
    }
}

/// A record store. Both implementations pass the same test suite (`tests/store_contract.rs`).
pub trait RecordStore {
    /// Where the records are, for messages (a database password is masked).
    fn location(&self) -> String;

    /// Stores `rows` in one transaction; a row whose `(request_id, attempt)` is already stored
    /// is skipped. Returns how many rows were new.
    fn insert(&mut self, rows: &[StoredRow]) -> Result<u64, StoreError>;

    /// Calls `sink` with every record in `range`, in insertion order, until it returns false.
    /// Returns how many records were read.
    fn read(&mut self, range: TimeRange, sink: &mut dyn FnMut(Record) -> bool) -> Result<u64, StoreError>;

    /// Deletes records that started before `before`; returns how many went.
    fn prune(&mut self, before: DateTime<Utc>) -> Result<u64, StoreError>;

    /// The schema version applied to this store (the highest migration run).
    fn schema_version(&mut self) -> Result<i64, StoreError>;
}
