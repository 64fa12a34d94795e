//! The SQLite sink: schema, batched inserts, and the streaming reader.
//!
//! A row holds a few columns for indexing and ad-hoc SQL (`start_time`, `model_group`, …) and the
//! whole record as JSON in `json`. Readers rebuild records from `json` only, so a field added to
//! `Record` is stored and read back without a migration; the columns are a convenience that may lag.

use std::collections::VecDeque;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OpenFlags, params};
use tollgate_core::Record;

use crate::error::StoreError;
use crate::store::{
    Dialect, NEWEST_FIRST, QueryValue, RecordPage, RecordQuery, RecordStore, StoredRow, TimeRange, status_str,
};

/// The database's file name inside a data directory.
pub const DB_FILE_NAME: &str = "tollgate.sqlite";

/// `PRAGMA user_version` of the schema this build writes; each migration sets it, so read-only
/// readers (which must not migrate) can refuse a database from a newer build with one pragma.
pub const SCHEMA_VERSION: i64 = 7;

/// `INSERT OR IGNORE`: a row whose `(request_id, attempt)` is stored already is skipped, which
/// makes inserting a batch twice harmless.
const INSERT: &str = "INSERT OR IGNORE INTO records
    (request_id, trace_id, start_time, model_group, model, status, cost_usd, json,
     attempt, instance_id, session_id, key_alias, workflow, key_hash, cache, user_id, team_id)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)";

/// Rows fetched per query while reading; bounds the reader's memory whatever the table's size.
const READ_PAGE: usize = 1000;

/// The first 16 bytes of every SQLite 3 database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// A data directory means the `tollgate.sqlite` inside it; anything else is taken as the file.
pub fn resolve_db_path(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(DB_FILE_NAME)
    } else {
        path.to_path_buf()
    }
}

fn sqlite_err(path: &Path) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

/// Opens (creating if needed) the database the writer appends to.
pub(crate) fn open_for_writing(path: &Path) -> Result<Connection, StoreError> {
    let mut conn = Connection::open(path).map_err(sqlite_err(path))?;
    // A reader (the report, run while the gateway serves) may hold the lock briefly; waiting is
    // better than failing a batch.
    conn.busy_timeout(Duration::from_secs(5)).map_err(sqlite_err(path))?;
    // WAL lets readers run alongside the writer; NORMAL sync is safe in WAL mode (a power loss
    // can lose the last commits, never corrupt the file) and avoids an fsync per batch.
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))
        .map_err(sqlite_err(path))?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(sqlite_err(path))?;
    // Before refinery's own check: it names the version, this names the pre-refinery case too.
    let version = user_version(&conn).map_err(sqlite_err(path))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    crate::migrate::sqlite(&mut conn, &path.display().to_string())?;
    Ok(conn)
}

fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}

/// `synchronous=FULL` makes each commit wait for the WAL's fsync (`sync` durability: a committed
/// record survives a power loss); `NORMAL`, the default, leaves flushing to checkpoints.
pub(crate) fn set_fsync_per_commit(conn: &Connection, on: bool) -> rusqlite::Result<()> {
    conn.pragma_update(None, "synchronous", if on { "FULL" } else { "NORMAL" })
}

/// Inserts one batch in one transaction: one commit per batch is what makes the writer keep up
/// with thousands of requests per second. Each record comes with its JSON, serialised once for
/// both sinks. A failed batch is rolled back whole, and a row already stored is skipped, so
/// retrying a batch cannot store a record twice. Returns how many rows were new.
pub(crate) fn insert_batch<'a>(
    conn: &mut Connection,
    rows: impl IntoIterator<Item = (&'a Record, &'a str)>,
) -> rusqlite::Result<u64> {
    let tx = conn.transaction()?;
    let mut inserted = 0;
    {
        let mut stmt = tx.prepare_cached(INSERT)?;
        for (record, json) in rows {
            let start_time = record.start_time.to_rfc3339_opts(SecondsFormat::Micros, true);
            inserted += stmt.execute(params![
                record.request_id,
                record.trace_id,
                start_time,
                record.model_group,
                record.model,
                status_str(record.status),
                record.cost_usd,
                json,
                i64::from(record.attempt.unwrap_or(0)),
                record.instance_id,
                record.session_id,
                record.key_alias,
                record.workflow,
                record.key_hash,
                record.cache.as_str(),
                record.user_id,
                record.team_id,
            ])? as u64;
        }
    }
    tx.commit()?;
    Ok(inserted)
}

/// [`insert_batch`] for rows that are already columns (the store interface, tests).
pub(crate) fn insert_rows(conn: &mut Connection, rows: &[StoredRow]) -> rusqlite::Result<u64> {
    let tx = conn.transaction()?;
    let mut inserted = 0;
    {
        let mut stmt = tx.prepare_cached(INSERT)?;
        for r in rows {
            inserted += stmt.execute(params![
                r.request_id,
                r.trace_id,
                r.start_time_text(),
                r.model_group,
                r.model,
                r.status,
                r.cost_usd,
                r.json,
                r.attempt,
                r.instance_id,
                r.session_id,
                r.key_alias,
                r.workflow,
                r.key_hash,
                r.cache,
                r.user_id,
                r.team_id,
            ])? as u64;
        }
    }
    tx.commit()?;
    Ok(inserted)
}

/// Whether `path` (a data directory or a file) is a tollgate SQLite database. Cheap enough to
/// sniff input files: it reads the 16-byte header before asking SQLite anything.
pub fn is_tollgate_sqlite(path: &Path) -> bool {
    let path = resolve_db_path(path);
    let mut header = [0u8; 16];
    let has_magic = std::fs::File::open(&path)
        .and_then(|mut f| f.read_exact(&mut header))
        .is_ok_and(|()| &header == SQLITE_MAGIC);
    has_magic && open_for_reading(&path).is_ok()
}

fn open_for_reading(path: &Path) -> Result<Connection, StoreError> {
    if !path.is_file() {
        return Err(StoreError::Missing {
            path: path.to_path_buf(),
        });
    }
    // Read-only, so pointing the report at a live gateway's database can never change it.
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(sqlite_err(path))?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(sqlite_err(path))?;
    let version = user_version(&conn).map_err(sqlite_err(path))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    let has_records: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM pragma_table_info('records') WHERE name = 'json')",
            [],
            |row| row.get(0),
        )
        .map_err(sqlite_err(path))?;
    if !has_records {
        return Err(StoreError::NotTollgate {
            path: path.to_path_buf(),
        });
    }
    Ok(conn)
}

/// Streams every record of a tollgate database in insertion order. `path` is a data directory or
/// the `.sqlite` file; it is opened read-only. Memory stays bounded: rows are fetched a page at a
/// time.
pub fn read_sqlite(path: &Path) -> Result<SqliteRecords, StoreError> {
    let path = resolve_db_path(path);
    let conn = open_for_reading(&path)?;
    Ok(SqliteRecords {
        conn,
        path,
        after_rowid: 0,
        page: VecDeque::new(),
        finished: false,
    })
}

/// Iterator over a database's records; see [`read_sqlite`].
///
/// It pages by `rowid` rather than holding one statement open, which keeps the iterator a plain
/// owned value (no borrow of the connection) and never pins an old WAL snapshot for the whole read.
pub struct SqliteRecords {
    conn: Connection,
    path: PathBuf,
    after_rowid: i64,
    page: VecDeque<(i64, String)>,
    finished: bool,
}

impl SqliteRecords {
    fn fetch_page(&mut self) -> rusqlite::Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT rowid, json FROM records WHERE rowid > ?1 ORDER BY rowid LIMIT ?2")?;
        let rows = stmt.query_map(params![self.after_rowid, READ_PAGE as i64], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
        })?;
        for row in rows {
            self.page.push_back(row?);
        }
        if self.page.len() < READ_PAGE {
            self.finished = true;
        }
        Ok(())
    }
}

impl Iterator for SqliteRecords {
    type Item = Result<Record, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.page.is_empty()
            && !self.finished
            && let Err(source) = self.fetch_page()
        {
            self.finished = true;
            self.page.clear();
            return Some(Err(StoreError::Sqlite {
                path: self.path.clone(),
                source,
            }));
        }
        let (rowid, json) = self.page.pop_front()?;
        self.after_rowid = rowid;
        Some(serde_json::from_str(&json).map_err(|source| StoreError::Decode {
            path: self.path.clone(),
            location: format!("rowid {rowid}"),
            source,
        }))
    }
}

/// A SQLite database behind the [`RecordStore`] interface (the report, tests, retention).
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating and migrating if needed) the database in a data directory or file.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let path = resolve_db_path(path);
        let conn = open_for_writing(&path)?;
        Ok(SqliteStore { conn, path })
    }

    /// How far this database's rows have gone to the shared store at `destination` (a masked
    /// URL); 0 when nothing has.
    pub fn shipped_upto(&self, destination: &str) -> Result<i64, StoreError> {
        self.conn
            .query_row(
                "SELECT coalesce((SELECT last_rowid FROM shipped WHERE destination = ?1), 0)",
                params![destination],
                |row| row.get(0),
            )
            .map_err(sqlite_err(&self.path))
    }

    /// Deletes records that started before `before`, except those after `keep_after_rowid` (not
    /// yet shipped to the shared store) and the newest row. The newest row stays because SQLite
    /// hands out `max(rowid) + 1`: with the table emptied, new rows would reuse old rowids and a
    /// shipping cursor past them would never send them.
    pub fn prune_keeping(&mut self, before: DateTime<Utc>, keep_after_rowid: Option<i64>) -> Result<u64, StoreError> {
        let before = before.to_rfc3339_opts(SecondsFormat::Micros, true);
        let n = self
            .conn
            .execute(
                "DELETE FROM records WHERE start_time < ?1
                   AND rowid < (SELECT max(rowid) FROM records)
                   AND (?2 IS NULL OR rowid <= ?2)",
                params![before, keep_after_rowid],
            )
            .map_err(sqlite_err(&self.path))?;
        Ok(n as u64)
    }
}

impl RecordStore for SqliteStore {
    fn location(&self) -> String {
        format!("sqlite {}", self.path.display())
    }

    fn insert(&mut self, rows: &[StoredRow]) -> Result<u64, StoreError> {
        insert_rows(&mut self.conn, rows).map_err(sqlite_err(&self.path))
    }

    fn read(&mut self, range: TimeRange, sink: &mut dyn FnMut(Record) -> bool) -> Result<u64, StoreError> {
        let text = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Micros, true);
        let (since, until) = (range.since.map(text), range.until.map(text));
        let mut after = 0i64;
        let mut n = 0u64;
        loop {
            let page: Vec<(i64, String)> = {
                let mut stmt = self
                    .conn
                    .prepare_cached(
                        "SELECT rowid, json FROM records WHERE rowid > ?1
                           AND (?2 IS NULL OR start_time >= ?2) AND (?3 IS NULL OR start_time < ?3)
                         ORDER BY rowid LIMIT ?4",
                    )
                    .map_err(sqlite_err(&self.path))?;
                let rows = stmt
                    .query_map(params![after, since, until, READ_PAGE as i64], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })
                    .map_err(sqlite_err(&self.path))?;
                rows.collect::<rusqlite::Result<_>>().map_err(sqlite_err(&self.path))?
            };
            let full = page.len() == READ_PAGE;
            for (rowid, json) in page {
                after = rowid;
                let record: Record = serde_json::from_str(&json).map_err(|source| StoreError::Decode {
                    path: self.path.clone(),
                    location: format!("rowid {rowid}"),
                    source,
                })?;
                n += 1;
                if !sink(record) {
                    return Ok(n);
                }
            }
            if !full {
                return Ok(n);
            }
        }
    }

    fn prune(&mut self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.prune_keeping(before, None)
    }

    fn schema_version(&mut self) -> Result<i64, StoreError> {
        let path = self.path.clone();
        user_version(&self.conn).map_err(sqlite_err(&path))
    }

    fn query(&mut self, query: &RecordQuery) -> Result<RecordPage, StoreError> {
        query_records(&self.conn, &self.path, query)
    }
}

/// SQLite's spelling of the log view's query (its filters are the V6 columns).
const SQLITE_DIALECT: Dialect = Dialect {
    placeholder: |n| format!("?{n}"),
    position: "instr",
};

/// One page of the log view from any connection to a tollgate SQLite file (the dashboard
/// reads through a read-only one).
pub fn query_records(conn: &Connection, path: &Path, query: &RecordQuery) -> Result<RecordPage, StoreError> {
    let (conditions, values) = query.conditions(&SQLITE_DIALECT);
    // Without a filter an index of its own serves, walk the time index newest first and stop at
    // the page's end: SQLite's planner otherwise sorts every matching row first (0.5–0.7 s at a
    // million records, bench/dashboard_pages.py), however few the page needs.
    let index = if query.has_indexed_filter() {
        ""
    } else {
        "INDEXED BY records_start_time"
    };
    let sql = format!(
        "SELECT rowid, json FROM records {index} {conditions} {NEWEST_FIRST} LIMIT {}",
        query.page_size() + 1
    );
    let values: Vec<rusqlite::types::Value> = values
        .into_iter()
        .map(|v| match v {
            QueryValue::Text(s) => rusqlite::types::Value::Text(s),
            // The column's fixed-width text, which sorts as the times do.
            QueryValue::Time(t) => rusqlite::types::Value::Text(t.to_rfc3339_opts(SecondsFormat::Micros, true)),
            QueryValue::Int(n) => rusqlite::types::Value::Integer(n),
        })
        .collect();
    let mut stmt = conn.prepare(&sql).map_err(sqlite_err(path))?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(values), |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
        })
        .map_err(sqlite_err(path))?;
    let mut records = Vec::new();
    for row in rows {
        let (rowid, json) = row.map_err(sqlite_err(path))?;
        // A damaged row is left out of the view (the report counts it as corrupt) rather than
        // making every page that reaches it fail.
        match serde_json::from_str::<Record>(&json) {
            Ok(record) => records.push(record),
            Err(e) => {
                tracing::warn!(path = %path.display(), rowid, error = %e, "a record that does not decode is left out")
            }
        }
    }
    Ok(query.page(records))
}
