//! Record sinks and readers: where every [`Record`](tollgate_core::Record) the gateway produces
//! ends up, and how the report gets it back.
//!
//! The gateway hands records to a [`RecordWriter`], which never blocks the request path: records
//! go into a bounded channel, a full channel is counted as a drop instead of slowing clients down,
//! and a writer thread drains the channel in batches into SQLite (WAL mode, the embedded default)
//! and, optionally, a JSONL file. [`WriterHandle::shutdown`] drains everything accepted before it
//! returns, so a graceful shutdown loses nothing.
//!
//! Each SQLite row keeps the full record as JSON next to a few indexed columns, so the readers
//! ([`read_sqlite`], [`read_jsonl`]) rebuild records from that JSON and new `Record` fields need no
//! migration.

mod error;
mod jsonl;
mod sqlite;
mod writer;

pub use error::StoreError;
pub use jsonl::{JsonlRecords, parse_jsonl_line, read_jsonl};
pub use sqlite::{DB_FILE_NAME, SCHEMA_VERSION, SqliteRecords, is_tollgate_sqlite, read_sqlite, resolve_db_path};
pub use writer::{RecordWriter, StoreConfig, WriteSummary, WriterHandle};
