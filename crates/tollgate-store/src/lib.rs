//! Record sinks and readers: where every [`Record`](tollgate_core::Record) the gateway produces
//! ends up, and how the report gets it back.
//!
//! The gateway hands records to a [`RecordWriter`], which never blocks the request path: records
//! go into a bounded channel, a full channel is counted as a drop instead of slowing clients down,
//! and a writer thread drains the channel in batches into SQLite (WAL mode, the embedded default)
//! and, optionally, a JSONL file. A sink that fails keeps its records in a bounded retry buffer
//! and catches up when it works again; each sink's health is visible in [`RecordWriter::status`].
//! [`WriterHandle::shutdown`] drains everything accepted before it returns and says, per sink,
//! what was written and what failed. In `sync` durability, [`RecordWriter::submit`] returns a
//! [`Commit`] that resolves once the record is committed to SQLite (many requests share one commit).
//!
//! With a shared store ([`SharedStore`], Postgres), SQLite is the local outbox: a shipper thread
//! sends its rows to Postgres in batches, idempotently, and an outage only grows the backlog.
//! Both stores sit behind [`RecordStore`] and share one migration mechanism (`migrate.rs`).
//!
//! Each SQLite row keeps the full record as JSON next to a few indexed columns, so the readers
//! ([`read_sqlite`], [`read_jsonl`]) rebuild records from that JSON and new `Record` fields need no
//! migration.

mod access;
mod drain;
mod entities;
mod error;
mod health;
mod jsonl;
mod keys;
mod ledger;
mod migrate;
mod pg;
mod responses;
mod retention;
mod shifts;
mod ship;
mod sqlite;
mod store;
#[cfg(any(test, feature = "test-support"))]
pub mod test_db;
mod writer;

pub use access::AccessStore;
pub use entities::{EntityKind, EntityRow, EntityStore};
pub use error::{StoreError, postgres_text};
pub use health::{SinkKind, SinkStatus};
pub use jsonl::{JsonlRecords, parse_jsonl_line, read_jsonl};
pub use keys::{KeyError, KeyFilter, KeyRow, KeyStore, PostgresKeys, Reservation, SqliteKeys, model_allowed};
pub use ledger::{Charge, Hold, HoldOutcome, KEY_SCOPE, Ledger, SpendRow};
pub use migrate::{HISTORY_TABLE, postgres_version, sqlite_version};
pub use pg::{Pool, PooledClient, PostgresStore, PostgresTarget, has_records_table, redact_url};
pub use responses::{ResponseStore, StoredResponse};
pub use retention::{Pruned, prune_once};
pub use ship::ShipStatus;
pub use sqlite::{
    DB_FILE_NAME, SCHEMA_VERSION, SqliteRecords, SqliteStore, is_tollgate_sqlite, query_records, read_sqlite,
    resolve_db_path,
};
pub use store::{MAX_PAGE, RecordCursor, RecordPage, RecordQuery, RecordStore, StoredRow, TimeRange};
pub use tollgate_core::config::RecordDurability;
pub use writer::{Commit, RecordWriter, SharedStore, SinkTotals, StoreConfig, StoreStatus, WriteSummary, WriterHandle};
