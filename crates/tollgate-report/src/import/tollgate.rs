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
    let (conditions, values) = slice.conditions();
    let mut stmt = conn
        .prepare(&format!("SELECT rowid, json FROM records {conditions} ORDER BY rowid"))
        .map_err(err)?;
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
        let parsed = row
            .get::<_, String>(1)
            .map_err(|e| RowError::Unreadable(e.to_string()))
            .and_then(|json| record_from_json(json.as_bytes(), prices));
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
