//! The one interface both record stores implement: SQLite (the embedded default, and the local
//! outbox of every instance) and Postgres (the shared store many instances ship to).
//!
//! A row is the whole record as JSON plus the columns queries filter on. Rows are unique by
//! `(request_id, attempt)`, and inserting one that is already there does nothing: shipping is
//! at-least-once (a batch may be sent again after a crash), the table stays exactly-once.

use chrono::{DateTime, SecondsFormat, Utc};
use tollgate_core::{CacheState, Record, RecordStatus};

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
    /// The log view's filters that live in the record's JSON, copied into columns so no
    /// database parses the JSON to index or filter them (SQLite V6, Postgres V7).
    pub key_hash: Option<String>,
    pub cache: Option<String>,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
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
            key_hash: record.key_hash.clone(),
            cache: Some(record.cache.as_str().to_string()),
            user_id: record.user_id.clone(),
            team_id: record.team_id.clone(),
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

    /// One page of the records matching `query`, newest first (the dashboard's log view).
    fn query(&mut self, query: &RecordQuery) -> Result<RecordPage, StoreError>;
}

/// Which records the log view lists: every filter is optional, and a page continues after the
/// cursor the previous page ended with (keyset pagination: a page costs the same however deep).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordQuery {
    pub range: TimeRange,
    /// The model group the client asked for.
    pub model_group: Option<String>,
    pub key_alias: Option<String>,
    /// The first 16 hex digits of a virtual key's hash: a key's own view.
    pub key_hash: Option<String>,
    pub status: Option<RecordStatus>,
    pub cache: Option<CacheState>,
    /// Part of a request id (or a whole one).
    pub request_id: Option<String>,
    /// One request id exactly (its attempts): a request's page.
    pub exact_request_id: Option<String>,
    /// The records of one trace (a workflow run and its steps, a request and its attempts).
    pub trace_id: Option<String>,
    /// LiteLLM's `litellm_session_id` (or `session_id`) the client sent.
    pub session_id: Option<String>,
    /// The workflow a record belongs to (its run and its steps).
    pub workflow: Option<String>,
    /// The virtual key's user and team.
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    /// Continue after this record (exclusive), from [`RecordPage::next`].
    pub after: Option<RecordCursor>,
    /// Records per page (at least 1, at most [`MAX_PAGE`]).
    pub limit: usize,
}

/// The largest page a query returns, whatever it asks for.
pub const MAX_PAGE: usize = 500;

/// Where a page ended: the sort key of its last record (start time, request id, attempt),
/// which is unique, so no record is skipped or shown twice between pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordCursor {
    pub start_time: DateTime<Utc>,
    pub request_id: String,
    pub attempt: i64,
}

impl RecordCursor {
    pub fn of(record: &Record) -> RecordCursor {
        RecordCursor {
            start_time: record.start_time,
            request_id: record.request_id.clone(),
            attempt: i64::from(record.attempt.unwrap_or(0)),
        }
    }

    /// The cursor as one URL-safe token (`<micros>.<attempt>.<request id>`).
    pub fn token(&self) -> String {
        format!(
            "{}.{}.{}",
            self.start_time.timestamp_micros(),
            self.attempt,
            self.request_id
        )
    }

    /// Reads [`RecordCursor::token`]'s form back; `None` for anything else.
    pub fn parse(token: &str) -> Option<RecordCursor> {
        let mut parts = token.splitn(3, '.');
        let micros: i64 = parts.next()?.parse().ok()?;
        let attempt: i64 = parts.next()?.parse().ok()?;
        let request_id = parts.next()?.to_string();
        Some(RecordCursor {
            start_time: DateTime::from_timestamp_micros(micros)?,
            request_id,
            attempt,
        })
    }
}

/// A page of records, newest first, and where the next page starts (`None` on the last).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordPage {
    pub records: Vec<Record>,
    pub next: Option<RecordCursor>,
}

/// A value a query condition compares with, converted by each database to its own type.
#[derive(Debug, Clone)]
pub(crate) enum QueryValue {
    Text(String),
    Time(DateTime<Utc>),
    Int(i64),
}

/// How one database spells the parts of a query that differ: its placeholders and its
/// substring function. (Every filter is a plain column in both: SQLite V6, Postgres V7.)
pub(crate) struct Dialect {
    pub placeholder: fn(usize) -> String,
    /// The function giving a substring's position (SQLite `instr`, Postgres `strpos`).
    pub position: &'static str,
}

impl RecordQuery {
    /// Whether a filter with an index of its own narrows the query (model group, key, request,
    /// trace, session); otherwise the newest page is read along the time index.
    pub fn has_indexed_filter(&self) -> bool {
        self.model_group.is_some()
            || self.key_alias.is_some()
            || self.key_hash.is_some()
            || self.exact_request_id.is_some()
            || self.trace_id.is_some()
            || self.session_id.is_some()
    }

    pub fn page_size(&self) -> usize {
        self.limit.clamp(1, MAX_PAGE)
    }

    /// The `WHERE` conditions (only the filters given, so each database's planner sees plain
    /// conditions its indexes serve) and their values, in placeholder order.
    pub(crate) fn conditions(&self, d: &Dialect) -> (String, Vec<QueryValue>) {
        let mut values = Vec::new();
        let mut conds: Vec<String> = Vec::new();
        let push = |conds: &mut Vec<String>, values: &mut Vec<QueryValue>, sql: &str, v: QueryValue| {
            values.push(v);
            conds.push(sql.replace('?', &(d.placeholder)(values.len())));
        };
        if let Some(t) = self.range.since {
            push(&mut conds, &mut values, "start_time >= ?", QueryValue::Time(t));
        }
        if let Some(t) = self.range.until {
            push(&mut conds, &mut values, "start_time < ?", QueryValue::Time(t));
        }
        if let Some(m) = &self.model_group {
            push(&mut conds, &mut values, "model_group = ?", QueryValue::Text(m.clone()));
        }
        if let Some(k) = &self.key_alias {
            push(&mut conds, &mut values, "key_alias = ?", QueryValue::Text(k.clone()));
        }
        if let Some(k) = &self.key_hash {
            push(&mut conds, &mut values, "key_hash = ?", QueryValue::Text(k.clone()));
        }
        if let Some(s) = self.status {
            push(
                &mut conds,
                &mut values,
                "status = ?",
                QueryValue::Text(status_str(s).into()),
            );
        }
        if let Some(c) = self.cache {
            push(
                &mut conds,
                &mut values,
                "cache = ?",
                QueryValue::Text(c.as_str().into()),
            );
        }
        if let Some(id) = self.request_id.as_deref().filter(|s| !s.is_empty()) {
            // Not LIKE: a request id may hold `%` or `_`, which must match themselves.
            let sql = format!("{}(request_id, ?) > 0", d.position);
            push(&mut conds, &mut values, &sql, QueryValue::Text(id.into()));
        }
        if let Some(id) = &self.exact_request_id {
            push(&mut conds, &mut values, "request_id = ?", QueryValue::Text(id.clone()));
        }
        if let Some(t) = &self.trace_id {
            push(&mut conds, &mut values, "trace_id = ?", QueryValue::Text(t.clone()));
        }
        if let Some(v) = &self.session_id {
            push(&mut conds, &mut values, "session_id = ?", QueryValue::Text(v.clone()));
        }
        if let Some(v) = &self.workflow {
            push(&mut conds, &mut values, "workflow = ?", QueryValue::Text(v.clone()));
        }
        if let Some(v) = &self.user_id {
            push(&mut conds, &mut values, "user_id = ?", QueryValue::Text(v.clone()));
        }
        if let Some(v) = &self.team_id {
            push(&mut conds, &mut values, "team_id = ?", QueryValue::Text(v.clone()));
        }
        if let Some(c) = &self.after {
            values.push(QueryValue::Time(c.start_time));
            values.push(QueryValue::Text(c.request_id.clone()));
            values.push(QueryValue::Int(c.attempt));
            let n = values.len();
            conds.push(format!(
                "(start_time, request_id, attempt) < ({}, {}, {})",
                (d.placeholder)(n - 2),
                (d.placeholder)(n - 1),
                (d.placeholder)(n)
            ));
        }
        let sql = if conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conds.join(" AND "))
        };
        (sql, values)
    }

    /// The page's records from the rows read (one more than the page size, if there were
    /// that many: then there is a next page).
    pub(crate) fn page(&self, mut records: Vec<Record>) -> RecordPage {
        let size = self.page_size();
        let next = if records.len() > size {
            records.truncate(size);
            records.last().map(RecordCursor::of)
        } else {
            None
        };
        RecordPage { records, next }
    }
}

/// The log view's order: newest first, then by request id and attempt, which makes it total.
pub(crate) const NEWEST_FIRST: &str = "ORDER BY start_time DESC, request_id DESC, attempt DESC";
