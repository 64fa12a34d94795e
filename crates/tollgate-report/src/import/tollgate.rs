//! tollgate's own records: JSON lines (one serde_json `Record` per line) and the SQLite store
//! (`<data_dir>/tollgate.sqlite`, table `records`, column `json`), opened read-only.

use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OpenFlags};
use tollgate_core::{PriceTable, Record};

use super::bounds::{self, RowError};
use super::{Detected, InputSummary};
use crate::ReportError;

pub fn record_from_json(bytes: &[u8], prices: &PriceTable) -> Result<Record, RowError> {
    let mut r: Record = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    // Before anything adds counts up: `u64::MAX` tokens would overflow the sum.
    bounds::check_record(&r)?;
    if r.source.is_empty() {
        r.source = "tollgate".into();
    }
    // A record the gateway could not price may be priceable with `--prices`.
    if r.cost_usd.is_none() && r.total_tokens() > 0 {
        let price = prices
            .lookup(&r.model)
            .or_else(|| prices.lookup(&r.model_group))
            .filter(|p| p.is_priced());
        if let Some(p) = price {
            let cost = p.cost(&r.usage());
            r.set_cost(cost);
        }
        // The price just turned the counts into a cost: that too must be plausible.
        bounds::check_record(&r)?;
    }
    Ok(r)
}

pub fn import_sqlite(
    path: &Path,
    prices: &PriceTable,
    sink: &mut dyn FnMut(Record) -> bool,
) -> Result<InputSummary, ReportError> {
    import_sqlite_slice(path, prices, &StoreSlice::default(), sink)
}

/// Which rows of a store to read: a time range and one key, applied by SQLite through the
/// store's indexes (the dashboard shows a day of a year's records without reading the year).
/// Records outside it are never read, so they are not counted as `filtered_out`.
#[derive(Debug, Clone, Default)]
pub struct StoreSlice {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// The first 16 hex digits of a key's hash (`Record::key_hash`).
    pub key_hash: Option<String>,
}

impl StoreSlice {
    /// The `WHERE` conditions and their values. The key's expression is the store's index's
    /// (migration V6), so the planner uses it.
    fn conditions(&self) -> (String, Vec<String>) {
        let text = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Micros, true);
        let mut conds = Vec::new();
        let mut values = Vec::new();
        if let Some(t) = self.since {
            values.push(text(t));
            conds.push(format!("start_time >= ?{}", values.len()));
        }
        if let Some(t) = self.until {
            values.push(text(t));
            conds.push(format!("start_time < ?{}", values.len()));
        }
        if let Some(k) = &self.key_hash {
            values.push(k.clone());
            // The column the writer fills (schema 6), indexed with the time.
            conds.push(format!("key_hash = ?{}", values.len()));
        }
        let sql = if conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conds.join(" AND "))
        };
        (sql, values)
    }
}

/// [`import_sqlite`] over a slice of the store.
pub fn import_sqlite_slice(
    path: &Path,
    prices: &PriceTable,
    slice: &StoreSlice,
    sink: &mut dyn FnMut(Record) -> bool,
) -> Result<InputSummary, ReportError> {
    let name = path.display().to_string();
    let err = |e: rusqlite::Error| ReportError::Sqlite {
        path: name.clone(),
        message: e.to_string(),
    };
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(err)?;
    let has_records: bool = conn
        .query_row(
            "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'records')",
            [],
            |r| r.get(0),
        )
        .map_err(err)?;
    if !has_records {
        return Err(ReportError::UnknownFormat {
            path: name.clone(),
            expected: "a tollgate SQLite store with a `records` table (column `json`)".into(),
        });
    }
    let mut summary = InputSummary::new(&name, Some(Detected::TollgateSqlite.describe()), false);
    let (sql, values) = slice_sql(&conn, slice);
    let mut stmt = conn.prepare(&sql).map_err(err)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(values)).map_err(err)?;
    loop {
        let row = match rows.next() {
            Ok(Some(row)) => row,
            Ok(None) => break,
            // A damaged page part-way through: what came before it stands, as for a cut gzip.
            Err(e) if summary.records > 0 || summary.corrupt_lines > 0 => {
                summary.warning = Some(format!(
                    "reading stopped at an error ({e}); the {} records before it are counted",
                    summary.records
                ));
                break;
            }
            Err(e) => return Err(err(e)),
        };
        let rowid: i64 = row.get(0).map_err(err)?;
        // The text as SQLite holds it, not copied into a String first: the JSON parser checks
        // it as it reads.
        let parsed = row
            .get_ref(1)
            .and_then(|v| v.as_bytes().map_err(Into::into))
            .map_err(|e| RowError::Unreadable(e.to_string()))
            .and_then(|json| record_from_json(json, prices));
        match parsed {
            Ok(rec) => {
                summary.records += 1;
                if !sink(rec) {
                    break;
                }
            }
            Err(error) => summary.reject(rowid.max(0) as u64, &error),
        }
    }
    Ok(summary)
}

/// The statement reading a slice, and its values.
fn slice_sql(conn: &Connection, slice: &StoreSlice) -> (String, Vec<String>) {
    let (conditions, values) = slice.conditions();
    if conditions.is_empty() {
        return ("SELECT rowid, json FROM records ORDER BY rowid".to_string(), values);
    }
    // Asked plainly, SQLite answers `ORDER BY rowid` by scanning the whole table (it is already
    // in that order) and testing each row: a day of a year's store read the year. The rows are
    // picked through an index first, then read in rowid order — the command's order, so the
    // dashboard's report equals it. Without a key, the planner is told which index (it has no
    // statistics to prefer it over the scan).
    let hint = if slice.key_hash.is_none() && has_index(conn, "records_start_time") {
        "INDEXED BY records_start_time"
    } else {
        ""
    };
    let sql = format!(
        "SELECT rowid, json FROM records WHERE rowid IN (SELECT rowid FROM records {hint} {conditions}) ORDER BY rowid"
    );
    (sql, values)
}

/// Whether a store holds each request and attempt at most once: its unique index (schema 2 on)
/// says so. A store too old for it, or one that cannot be opened, may not.
pub fn one_row_per_attempt(path: &Path) -> bool {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map(|conn| has_index(&conn, "records_request_attempt"))
        .unwrap_or(false)
}

fn has_index(conn: &Connection, name: &str) -> bool {
    conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?1)",
        [name],
        |r| r.get(0),
    )
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What SQLite will do for a slice: its query plan, one line per step.
    fn plan(conn: &Connection, slice: &StoreSlice) -> String {
        let (sql, values) = slice_sql(conn, slice);
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = stmt
            .query_map(rusqlite::params_from_iter(values), |r| r.get::<_, String>(3))
            .unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("\n")
    }

    #[test]
    fn a_slice_reads_through_an_index_not_the_whole_table() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE records (start_time TEXT, key_hash TEXT, json TEXT NOT NULL);
             CREATE INDEX records_start_time ON records (start_time);
             CREATE INDEX records_key_hash ON records (key_hash, start_time);",
        )
        .unwrap();
        let day = StoreSlice {
            since: Some("2026-12-01T00:00:00Z".parse().unwrap()),
            until: Some("2026-12-02T00:00:00Z".parse().unwrap()),
            key_hash: None,
        };
        let p = plan(&conn, &day);
        assert!(p.contains("INDEX records_start_time"), "{p}");
        assert!(!p.contains("SCAN records"), "{p}");
        let key = StoreSlice {
            key_hash: Some("0123456789abcdef".into()),
            ..day
        };
        let p = plan(&conn, &key);
        assert!(p.contains("INDEX records_key_hash"), "{p}");
        assert!(!p.contains("SCAN records"), "{p}");
        // The whole store is read in one pass.
        assert!(plan(&conn, &StoreSlice::default()).contains("SCAN records"));
    }
}
