//! The SQLite sink: schema, batched inserts, and the streaming reader.
//!
//! A row holds a few columns for indexing and ad-hoc SQL (`start_time`, `model_group`, …) and the
//! whole record as JSON in `json`. Readers rebuild records from `json` only, so a field added to
//! `Record` is stored and read back without a migration; the columns are a convenience that may lag.

use std::collections::VecDeque;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::SecondsFormat;
use rusqlite::{Connection, OpenFlags, params};
use tollgate_core::{Record, RecordStatus};

use crate::error::StoreError;

/// The database's file name inside a data directory.
pub const DB_FILE_NAME: &str = "tollgate.sqlite";

/// `PRAGMA user_version` of the schema this build writes. Bump it with a migration when the
/// columns change; readers refuse databases from a newer build instead of misreading them.
pub const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS records (
    request_id  TEXT,
    trace_id    TEXT,
    start_time  TEXT,
    model_group TEXT,
    model       TEXT,
    status      TEXT,
    cost_usd    REAL,
    json        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_start_time ON records (start_time);
";

const INSERT: &str = "INSERT INTO records
    (request_id, trace_id, start_time, model_group, model, status, cost_usd, json)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

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
    let conn = Connection::open(path).map_err(sqlite_err(path))?;
    // A reader (the report, run while the gateway serves) may hold the lock briefly; waiting is
    // better than failing a batch.
    conn.busy_timeout(Duration::from_secs(5)).map_err(sqlite_err(path))?;
    // WAL lets readers run alongside the writer; NORMAL sync is safe in WAL mode (a power loss
    // can lose the last commits, never corrupt the file) and avoids an fsync per batch.
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))
        .map_err(sqlite_err(path))?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(sqlite_err(path))?;
    let version = user_version(&conn).map_err(sqlite_err(path))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    conn.execute_batch(SCHEMA).map_err(sqlite_err(path))?;
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(sqlite_err(path))?;
    Ok(conn)
}

fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}

fn status_str(status: RecordStatus) -> &'static str {
    match status {
        RecordStatus::Success => "success",
        RecordStatus::Failure => "failure",
    }
}

/// `synchronous=FULL` makes each commit wait for the WAL's fsync (`sync` durability: a committed
/// record survives a power loss); `NORMAL`, the default, leaves flushing to checkpoints.
pub(crate) fn set_fsync_per_commit(conn: &Connection, on: bool) -> rusqlite::Result<()> {
    conn.pragma_update(None, "synchronous", if on { "FULL" } else { "NORMAL" })
}

/// Inserts one batch in one transaction: one commit per batch is what makes the writer keep up
/// with thousands of requests per second. Each record comes with its JSON, serialised once for
/// both sinks. A failed batch is rolled back whole, so retrying it cannot store a record twice.
pub(crate) fn insert_batch<'a>(
    conn: &mut Connection,
    rows: impl IntoIterator<Item = (&'a Record, &'a str)>,
) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare_cached(INSERT)?;
        for (record, json) in rows {
            // Fixed-width UTC timestamps sort as text, so the start_time index serves range scans.
            let start_time = record.start_time.to_rfc3339_opts(SecondsFormat::Micros, true);
            stmt.execute(params![
                record.request_id,
                record.trace_id,
                start_time,
                record.model_group,
                record.model,
                status_str(record.status),
                record.cost_usd,
                json,
            ])?;
        }
    }
    tx.commit()
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
