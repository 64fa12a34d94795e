//! Versioned schema migrations for both stores, by one mechanism: refinery, with the SQL of each
//! version embedded in the binary (`migrations/sqlite`, `migrations/postgres`) and the applied
//! versions kept in `tollgate_schema_history` in the database itself.
//!
//! Running them again is a no-op. A database that has a version this build does not know (a
//! newer tollgate migrated it) is refused: writing old-shaped rows into a newer schema, or
//! reading its rows as if they were ours, would lose or misread records.

use refinery::error::Kind;

use crate::error::StoreError;

mod embedded {
    pub mod sqlite {
        refinery::embed_migrations!("migrations/sqlite");
    }
    pub mod postgres {
        refinery::embed_migrations!("migrations/postgres");
    }
}

/// The history table (not refinery's default name, so it cannot clash with another tool's
/// migrations in a Postgres database shared with LiteLLM or anything else).
pub const HISTORY_TABLE: &str = "tollgate_schema_history";

/// Postgres: the advisory lock key migrations are run under, so instances starting together do
/// not race each other through `CREATE TABLE` (an arbitrary constant: "tollgate" in ASCII).
const PG_MIGRATION_LOCK: i64 = 0x746f_6c6c_6761_7465;

/// Which store a migration error is about, for the message.
fn describe(err: refinery::Error, location: &str, known: i64) -> StoreError {
    match err.kind() {
        Kind::MissingVersion(applied) => StoreError::NewerSchema {
            path: location.into(),
            found: i64::from(applied.version()),
            supported: known,
        },
        _ => StoreError::Migration {
            location: location.to_string(),
            message: err.to_string(),
        },
    }
}

/// The highest version this build embeds for SQLite.
pub fn sqlite_version() -> i64 {
    last_version(embedded::sqlite::migrations::runner())
}

/// The highest version this build embeds for Postgres.
pub fn postgres_version() -> i64 {
    last_version(embedded::postgres::migrations::runner())
}

fn last_version(runner: refinery::Runner) -> i64 {
    runner
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .max()
        .unwrap_or(0)
}

/// Brings a SQLite database to this build's schema (or refuses a newer one).
pub(crate) fn sqlite(conn: &mut rusqlite::Connection, location: &str) -> Result<(), StoreError> {
    let exists: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
            [HISTORY_TABLE],
            |row| row.get(0),
        )
        .map_err(|e| sqlite_error(location, &e))?;
    if exists {
        let newest: Option<i64> = conn
            .query_row(&format!("SELECT max(version) FROM {HISTORY_TABLE}"), [], |row| {
                row.get(0)
            })
            .map_err(|e| sqlite_error(location, &e))?;
        refuse_newer(newest, sqlite_version(), location)?;
    }
    embedded::sqlite::migrations::runner()
        .set_migration_table_name(HISTORY_TABLE)
        .run(conn)
        .map(|_| ())
        .map_err(|e| describe(e, location, sqlite_version()))
}

/// Brings a Postgres database to this build's schema (or refuses a newer one), holding an
/// advisory lock so concurrent instances migrate one after the other.
pub(crate) fn postgres(client: &mut postgres::Client, location: &str) -> Result<(), StoreError> {
    let pg = |e: postgres::Error| StoreError::Postgres {
        location: location.to_string(),
        message: crate::error::postgres_text(&e),
    };
    client
        .execute("SELECT pg_advisory_lock($1)", &[&PG_MIGRATION_LOCK])
        .map_err(pg)?;
    let result = newest_postgres(client)
        .map_err(pg)
        .and_then(|newest| refuse_newer(newest, postgres_version(), location))
        .and_then(|()| run_postgres(client, location));
    // Session-level: released when the connection ends anyway, so a failed unlock is harmless.
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&PG_MIGRATION_LOCK]);
    result
}

fn run_postgres(client: &mut postgres::Client, location: &str) -> Result<(), StoreError> {
    embedded::postgres::migrations::runner()
        .set_migration_table_name(HISTORY_TABLE)
        .run(client)
        .map(|_| ())
        .map_err(|e| describe(e, location, postgres_version()))
}

/// Brings a Postgres database up to `version` only: a database as an older build left it, for
/// tests of the next migration's backfill.
#[cfg(any(test, feature = "test-support"))]
pub(crate) fn postgres_up_to(client: &mut postgres::Client, version: u16, location: &str) -> Result<(), StoreError> {
    embedded::postgres::migrations::runner()
        .set_target(refinery::Target::Version(version.into()))
        .set_migration_table_name(HISTORY_TABLE)
        .run(client)
        .map(|_| ())
        .map_err(|e| describe(e, location, postgres_version()))
}

/// The newest version in the history table, if there is one.
fn newest_postgres(client: &mut postgres::Client) -> Result<Option<i64>, postgres::Error> {
    let row = client.query_one("SELECT to_regclass($1)::text", &[&HISTORY_TABLE])?;
    if row.try_get::<_, Option<String>>(0)?.is_none() {
        return Ok(None);
    }
    let row = client.query_one(&format!("SELECT max(version)::int8 FROM {HISTORY_TABLE}"), &[])?;
    row.try_get(0)
}

/// Checked before refinery reads the history: a newer build's rows are refused by version
/// alone, whatever else those rows hold.
fn refuse_newer(newest: Option<i64>, known: i64, location: &str) -> Result<(), StoreError> {
    match newest {
        Some(found) if found > known => Err(StoreError::NewerSchema {
            path: location.into(),
            found,
            supported: known,
        }),
        _ => Ok(()),
    }
}

fn sqlite_error(location: &str, e: &rusqlite::Error) -> StoreError {
    StoreError::Migration {
        location: location.to_string(),
        message: e.to_string(),
    }
}
