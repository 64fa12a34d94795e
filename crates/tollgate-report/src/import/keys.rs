//! Key budgets from the store's `tollgate_keys` table, for the `budget_near_limit` finding.
//! Records say what each request cost, not what a key may spend: budgets live with the keys, in
//! the database the records are in (a data directory's SQLite, or the shared Postgres). A
//! database without the table (LiteLLM's, a tollgate from before keys) has no budgets, and the
//! report is what it was.
//!
//! Only what a finding may show leaves this module: the alias or `key_name` (`sk-...abcd`),
//! never the token.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags};
use tollgate_store::{KeyRow, PostgresTarget};

use crate::ReportError;

/// A key with a budget, as the store holds it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyBudget {
    pub key_alias: Option<String>,
    /// `sk-...abcd`: what names a key that has no alias.
    pub key_name: String,
    /// Dollars spent as the store counts them (its `spend` column). With a `budget_duration`,
    /// the spend of the period that started at `budget_window`: the gateway starts the next
    /// period from 0 at its first request, so a period that has ended still shows here.
    pub spend: f64,
    pub max_budget: Option<f64>,
    pub soft_budget: Option<f64>,
    pub budget_duration: Option<String>,
    /// The start of the budget period `spend` belongs to; unknown before a request held against
    /// the budget, and in stores from before budgets.
    pub budget_window: Option<DateTime<Utc>>,
}

impl KeyBudget {
    /// The key's row (`doc`) with the spend and period from their own columns; `None` for a key
    /// without any budget, and for a row that does not read as a key.
    fn from_row(doc: &str, spend: f64, window: Option<&str>) -> Option<KeyBudget> {
        let key: KeyRow = serde_json::from_str(doc).ok()?;
        if key.max_budget.is_none() && key.soft_budget.is_none() {
            return None;
        }
        Some(KeyBudget {
            key_alias: key.key_alias.filter(|a| !a.is_empty()),
            key_name: key.key_name,
            spend,
            max_budget: key.max_budget,
            soft_budget: key.soft_budget,
            budget_duration: key.budget_duration.filter(|d| !d.trim().is_empty()),
            budget_window: window
                .and_then(|w| DateTime::parse_from_rfc3339(w).ok())
                .map(|w| w.with_timezone(&Utc)),
        })
    }

    /// What the report calls the key: its alias, else its `key_name`.
    pub fn name(&self) -> &str {
        self.key_alias.as_deref().unwrap_or(&self.key_name)
    }
}

/// The SQLite store an input names: a SQLite file (`tollgate.sqlite`) or a data directory
/// holding one. `None` for anything else, which has no keys.
pub fn sqlite_of(input: &str) -> Option<PathBuf> {
    if input == "-" {
        return None;
    }
    let path = tollgate_store::resolve_db_path(Path::new(input));
    // Only a regular file is sniffed: reading a pipe's first bytes (`<(zcat logs.gz)`,
    // /dev/stdin) would take them from the importer that reads it next.
    let regular = std::fs::metadata(&path).is_ok_and(|m| m.is_file());
    (regular && super::is_sqlite(&path).ok()?).then_some(path)
}

fn by_name(mut budgets: Vec<KeyBudget>) -> Vec<KeyBudget> {
    budgets.sort_by(|a, b| a.name().cmp(b.name()));
    budgets
}

/// The keys with a budget in a SQLite store, read-only; none when it has no key table.
pub fn read_sqlite(path: &Path) -> Result<Vec<KeyBudget>, ReportError> {
    let name = path.display().to_string();
    let err = |e: rusqlite::Error| ReportError::Sqlite {
        path: name.clone(),
        message: format!("tollgate_keys: {e}"),
    };
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(err)?;
    let has_keys: bool = conn
        .query_row(
            "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'tollgate_keys')",
            [],
            |r| r.get(0),
        )
        .map_err(err)?;
    if !has_keys {
        return Ok(vec![]);
    }
    // `budget_window` came with enforced budgets; a store from before has the spend and the row.
    let has_window = conn
        .prepare("SELECT * FROM tollgate_keys LIMIT 0")
        .map_err(err)?
        .column_names()
        .any(|c| c == "budget_window");
    let window = if has_window { "budget_window" } else { "NULL" };
    let mut stmt = conn
        .prepare(&format!(
            "SELECT doc, spend, {window} FROM tollgate_keys ORDER BY rowid"
        ))
        .map_err(err)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, f64>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })
        .map_err(err)?;
    let mut out = Vec::new();
    for row in rows {
        let (doc, spend, window) = row.map_err(err)?;
        out.extend(KeyBudget::from_row(&doc, spend, window.as_deref()));
    }
    Ok(by_name(out))
}

/// The keys with a budget in a Postgres database (`--db`), in a read-only transaction; none
/// when it has no key table (LiteLLM's database).
pub fn read_postgres(url: &str) -> Result<Vec<KeyBudget>, ReportError> {
    let target = PostgresTarget::parse(url, 1).map_err(|e| ReportError::Postgres(e.to_string()))?;
    read_postgres_at(&target)
}

/// [`read_postgres`] at a parsed target (the gateway's own shared store).
pub fn read_postgres_at(target: &PostgresTarget) -> Result<Vec<KeyBudget>, ReportError> {
    let err = |e: postgres::Error| ReportError::Postgres(tollgate_store::postgres_text(&e));
    let mut client = target.connect().map_err(|e| ReportError::Postgres(e.to_string()))?;
    let mut tx = client.build_transaction().read_only(true).start().map_err(err)?;
    let present: bool = tx
        .query_one("SELECT to_regclass('tollgate_keys') IS NOT NULL", &[])
        .and_then(|r| r.try_get(0))
        .map_err(err)?;
    if !present {
        return Ok(vec![]);
    }
    // The period through the row's JSON: null where the column does not exist (a store from
    // before budgets), and RFC 3339 text where it does.
    let rows = tx
        .query(
            "SELECT doc, spend, to_jsonb(k)->>'budget_window' FROM tollgate_keys k ORDER BY seq",
            &[],
        )
        .map_err(err)?;
    let mut out = Vec::new();
    for row in rows {
        let doc: String = row.try_get(0).map_err(err)?;
        let spend: f64 = row.try_get(1).map_err(err)?;
        let window: Option<String> = row.try_get(2).map_err(err)?;
        out.extend(KeyBudget::from_row(&doc, spend, window.as_deref()));
    }
    tx.rollback().map_err(err)?;
    Ok(by_name(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_without_a_budget_is_no_budget() {
        let doc = r#"{"token": "ab", "key_name": "sk-...abcd", "key_alias": "ci"}"#;
        assert_eq!(KeyBudget::from_row(doc, 3.0, None), None);
        assert_eq!(KeyBudget::from_row("not json", 3.0, None), None);
    }

    #[test]
    fn the_name_is_the_alias_else_the_key_name() {
        let doc = r#"{"token": "ab", "key_name": "sk-...abcd", "key_alias": "", "max_budget": 10.0,
            "budget_duration": "30d"}"#;
        let b = KeyBudget::from_row(doc, 9.5, Some("2026-12-01T00:00:00.000000Z")).unwrap();
        assert_eq!(b.name(), "sk-...abcd");
        assert_eq!((b.spend, b.max_budget, b.soft_budget), (9.5, Some(10.0), None));
        assert_eq!(b.budget_duration.as_deref(), Some("30d"));
        assert_eq!(
            b.budget_window.map(|w| w.to_rfc3339()).as_deref(),
            Some("2026-12-01T00:00:00+00:00")
        );
        // Postgres' JSON form of a timestamptz.
        let b = KeyBudget::from_row(doc, 9.5, Some("2026-12-01T00:00:00+00:00")).unwrap();
        assert!(b.budget_window.is_some());
    }
}
