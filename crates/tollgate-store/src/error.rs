//! The store's error type. Messages name the file involved and, where there is one, the fix.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create data directory {}: {source}", path.display())]
    CreateDir { path: PathBuf, source: std::io::Error },

    #[error(
        "no tollgate database at {}: pass a data directory containing tollgate.sqlite, or the .sqlite file itself",
        path.display()
    )]
    Missing { path: PathBuf },

    #[error("SQLite error on {}: {source}", path.display())]
    Sqlite { path: PathBuf, source: rusqlite::Error },

    #[error("{} is not a tollgate database (it has no `records` table)", path.display())]
    NotTollgate { path: PathBuf },

    #[error(
        "{} was written by a newer tollgate (schema version {found}, this build knows up to {supported}); upgrade tollgate to read it",
        path.display()
    )]
    NewerSchema { path: PathBuf, found: i64, supported: i64 },

    /// `location` is the database URL with its password masked.
    #[error("Postgres error on {location}: {message}")]
    Postgres { location: String, message: String },

    #[error("cannot migrate the schema of {location}: {message}")]
    Migration { location: String, message: String },

    /// `tollgate_settings.require_database: true` and the shared store cannot be reached.
    #[error(
        "cannot reach the shared store {location} ({message}); tollgate_settings.require_database is true, so tollgate does not start without it (remove that setting to start anyway and queue records locally)"
    )]
    DatabaseRequired { location: String, message: String },

    #[error("cannot use JSONL file {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },

    /// A stored record that does not parse as a `Record`; `location` is a row id or line number.
    #[error("record at {location} in {} is not a valid tollgate record: {source}", path.display())]
    Decode {
        path: PathBuf,
        location: String,
        source: serde_json::Error,
    },

    #[error("a JSONL line is not a valid tollgate record: {0}")]
    Line(#[source] serde_json::Error),

    #[error("the record writer thread stopped before draining its queue; records may be missing")]
    WriterGone,

    #[error("the record queue is full, so the record was dropped; raise the store capacity or use a faster disk")]
    QueueFull,

    /// `sync` durability: SQLite did not commit the record. It stays in memory and is retried.
    #[error("the record is not committed to SQLite yet ({0}); it is kept in memory and retried")]
    NotCommitted(String),
}

/// A Postgres error with its server-side detail (`Display` alone often says just "db error").
pub fn postgres_text(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            text
        }
    }
}
