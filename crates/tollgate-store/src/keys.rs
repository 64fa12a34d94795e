//! Virtual keys: the rows behind LiteLLM's `/key/*` API, in the same database as the records
//! (SQLite under `--data-dir`, or the shared Postgres so every instance sees every key).
//!
//! Only the SHA-256 hex of a raw key is stored (`token`); the raw key exists once, in the create
//! response. A row is a JSON document ([`KeyRow`]) beside the columns that constraints and
//! lookups need: the token, the unique alias, user and team, and `spend`, which is incremented in
//! place so concurrent instances never overwrite each other's spend.

use std::sync::Mutex;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::StoreError;
use crate::pg::{Pool, PostgresTarget};

/// One virtual key, as `/key/info` shows it (never the raw key).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeyRow {
    /// SHA-256 hex of the raw key.
    pub token: String,
    /// `sk-...abcd`: enough to recognise a key in a list, not to use it.
    pub key_name: String,
    pub key_alias: Option<String>,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    /// Model groups (or workflows) the key may call; empty means all.
    pub models: Vec<String>,
    pub max_budget: Option<f64>,
    pub soft_budget: Option<f64>,
    pub budget_duration: Option<String>,
    pub budget_id: Option<String>,
    pub max_parallel_requests: Option<u64>,
    pub tpm_limit: Option<u64>,
    pub rpm_limit: Option<u64>,
    pub model_rpm_limit: Option<Map<String, Value>>,
    pub model_tpm_limit: Option<Map<String, Value>>,
    pub model_max_budget: Option<Map<String, Value>>,
    pub metadata: Map<String, Value>,
    pub blocked: bool,
    pub expires: Option<DateTime<Utc>>,
    /// Dollars spent; kept in its own column and added to atomically.
    pub spend: f64,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub created_by: Option<String>,
    /// After `/key/regenerate` with a `grace_period`: the replaced key's hash, which still
    /// authenticates until `previous_token_expires`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_token_expires: Option<DateTime<Utc>>,
    /// The start of the budget period `spend` belongs to (kept in its own column, beside
    /// `spend`): spend from an earlier period than the current one is no longer counted.
    #[serde(skip)]
    pub budget_window: Option<DateTime<Utc>>,
}

/// Whether one entry of a key's or team's `models` lets it call `model`: the name itself,
/// LiteLLM's `*` / `all-proxy-models`, or a wildcard entry (`anthropic/*`, `claude-*`), where each
/// `*` stands for any run of characters.
pub fn model_allowed(entry: &str, model: &str) -> bool {
    if entry == model || entry == "*" || entry == "all-proxy-models" {
        return true;
    }
    if !entry.contains('*') {
        return false;
    }
    let parts: Vec<&str> = entry.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !model.starts_with(first) || model.len() < first.len() + last.len() || !model.ends_with(last) {
        return false;
    }
    // The middle parts in order, each after the previous, inside what the ends leave.
    let mut rest = &model[first.len()..model.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

impl KeyRow {
    /// Whether the key may call `model` (a model group or workflow name).
    pub fn allows(&self, model: &str) -> bool {
        self.models.is_empty() || self.models.iter().any(|m| model_allowed(m, model))
    }

    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        self.expires.is_some_and(|e| e <= now)
    }

    /// Whether `token` is the key this row replaced, still inside its grace period.
    pub fn in_grace(&self, token: &str, now: DateTime<Utc>) -> bool {
        self.previous_token.as_deref() == Some(token) && self.previous_token_expires.is_some_and(|e| e > now)
    }
}

/// Filters and paging of `/key/list`.
#[derive(Debug, Clone, Default)]
pub struct KeyFilter {
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub key_alias: Option<String>,
}

/// Why a key write was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A unique value (the alias, or the key itself) is taken.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The key table, in SQLite or Postgres; both pass the same tests (`tests/key_store.rs`).
pub trait KeyStore: Send + Sync {
    fn create(&self, key: &KeyRow) -> Result<(), KeyError>;
    /// The key with this token, or the key that replaced it (see [`KeyRow::in_grace`]).
    fn get(&self, token: &str) -> Result<Option<KeyRow>, StoreError>;
    fn find_alias(&self, alias: &str) -> Result<Option<KeyRow>, StoreError>;
    /// One page (1-based) in a stable order (creation, then token), and how many match in all.
    fn list(&self, filter: &KeyFilter, page: u32, size: u32) -> Result<(Vec<KeyRow>, u64), StoreError>;
    /// Replaces the row with `key.token`, spend excepted; `false` when there is none.
    fn update(&self, key: &KeyRow) -> Result<bool, KeyError>;
    /// Moves the rows to the deleted table; returns the tokens that existed.
    fn delete(&self, tokens: &[String]) -> Result<Vec<String>, StoreError>;
    /// Regenerate: the row of `old` gets `new.token` (spend carried over) and `new.previous_token`;
    /// `false` when `old` is gone.
    fn replace_token(&self, old: &str, new: &KeyRow) -> Result<bool, KeyError>;
    /// Settles requests: each `(token, cost, reserved)` adds `cost` to the key's spend and gives
    /// back `reserved` of what admission held.
    fn add_spend(&self, spends: &[(String, f64, f64)]) -> Result<(), StoreError>;
    /// Holds `amount` against the key's `max_budget`, atomically (one conditional UPDATE), unless
    /// spend + held + amount would pass it. `window`: the start of the current budget period;
    /// spend from an earlier period counts as 0.
    fn reserve(&self, token: &str, amount: f64, window: Option<DateTime<Utc>>) -> Result<Reservation, StoreError>;
}

/// What [`KeyStore::reserve`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reservation {
    Held,
    /// The budget would be passed: the spend and holds as they stand.
    Refused {
        spend: f64,
        reserved: f64,
        max_budget: f64,
    },
}

/// A time column written by [`now_text`].
fn time_of(text: Option<String>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(&text?).ok().map(|t| t.with_timezone(&Utc))
}

pub(crate) fn now_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn doc_of(key: &KeyRow) -> Result<String, StoreError> {
    serde_json::to_string(key).map_err(StoreError::Line)
}

fn row_of(doc: &str, spend: f64, budget_window: Option<DateTime<Utc>>, location: &str) -> Result<KeyRow, StoreError> {
    let mut key: KeyRow = serde_json::from_str(doc).map_err(|source| StoreError::Decode {
        path: location.into(),
        location: "tollgate_keys".into(),
        source,
    })?;
    key.spend = spend;
    key.budget_window = budget_window;
    Ok(key)
}

fn alias_taken(alias: Option<&str>) -> KeyError {
    KeyError::Conflict(match alias {
        Some(a) => format!("key_alias `{a}` is already used by another key; choose another alias"),
        None => "this key already exists".into(),
    })
}

/// Keys in the local SQLite database.
pub struct SqliteKeys {
    pub(crate) conn: Mutex<rusqlite::Connection>,
    pub(crate) location: String,
}

impl SqliteKeys {
    /// Opens (and migrates) the database in a data directory.
    pub fn open(data_dir: &std::path::Path) -> Result<SqliteKeys, StoreError> {
        let path = crate::sqlite::resolve_db_path(data_dir);
        let conn = crate::sqlite::open_for_writing(&path)?;
        Ok(SqliteKeys {
            conn: Mutex::new(conn),
            location: path.display().to_string(),
        })
    }

    pub(crate) fn err(&self, e: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.location.clone().into(),
            source: e,
        }
    }

    pub(crate) fn with<T>(
        &self,
        f: impl FnOnce(&mut rusqlite::Connection) -> Result<T, KeyError>,
    ) -> Result<T, KeyError> {
        let mut conn = self.conn.lock().map_err(|_| KeyError::Store(StoreError::WriterGone))?;
        f(&mut conn)
    }

    fn write_err(&self, e: rusqlite::Error, alias: Option<&str>) -> KeyError {
        match &e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
                alias_taken(alias)
            }
            _ => KeyError::Store(self.err(e)),
        }
    }

    fn select(&self, conn: &rusqlite::Connection, column: &str, value: &str) -> Result<Option<KeyRow>, StoreError> {
        let sql = format!("SELECT doc, spend, budget_window FROM tollgate_keys WHERE {column} = ?1");
        let found: Option<(String, f64, Option<String>)> = conn
            .query_row(&sql, params![value], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()
            .map_err(|e| self.err(e))?;
        found
            .map(|(doc, spend, w)| row_of(&doc, spend, time_of(w), &self.location))
            .transpose()
    }
}

impl KeyStore for SqliteKeys {
    fn create(&self, key: &KeyRow) -> Result<(), KeyError> {
        let doc = doc_of(key)?;
        self.with(|c| {
            c.execute(
                "INSERT INTO tollgate_keys (token, key_alias, user_id, team_id, spend, updated_at, doc, max_budget)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    key.token,
                    key.key_alias,
                    key.user_id,
                    key.team_id,
                    key.spend,
                    now_text(Utc::now()),
                    doc,
                    key.max_budget
                ],
            )
            .map(|_| ())
            .map_err(|e| self.write_err(e, key.key_alias.as_deref()))
        })
    }

    fn get(&self, token: &str) -> Result<Option<KeyRow>, StoreError> {
        self.with(|c| match self.select(c, "token", token)? {
            Some(k) => Ok(Some(k)),
            None => Ok(self.select(c, "previous_token", token)?),
        })
        .map_err(into_store)
    }

    fn find_alias(&self, alias: &str) -> Result<Option<KeyRow>, StoreError> {
        self.with(|c| Ok(self.select(c, "key_alias", alias)?))
            .map_err(into_store)
    }

    fn list(&self, filter: &KeyFilter, page: u32, size: u32) -> Result<(Vec<KeyRow>, u64), StoreError> {
        self.with(|c| {
            let cond =
                "(?1 IS NULL OR user_id = ?1) AND (?2 IS NULL OR team_id = ?2) AND (?3 IS NULL OR key_alias = ?3)";
            let total: i64 = c
                .query_row(
                    &format!("SELECT count(*) FROM tollgate_keys WHERE {cond}"),
                    params![filter.user_id, filter.team_id, filter.key_alias],
                    |r| r.get(0),
                )
                .map_err(|e| self.err(e))?;
            let mut stmt = c
                .prepare(&format!(
                    "SELECT doc, spend, budget_window FROM tollgate_keys WHERE {cond} ORDER BY rowid LIMIT ?4 OFFSET ?5"
                ))
                .map_err(|e| self.err(e))?;
            let offset = i64::from(page.saturating_sub(1)) * i64::from(size);
            let rows = stmt
                .query_map(
                    params![
                        filter.user_id,
                        filter.team_id,
                        filter.key_alias,
                        i64::from(size),
                        offset
                    ],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, f64>(1)?,
                            r.get::<_, Option<String>>(2)?,
                        ))
                    },
                )
                .map_err(|e| self.err(e))?;
            let mut keys = Vec::new();
            for row in rows {
                let (doc, spend, w) = row.map_err(|e| self.err(e))?;
                keys.push(row_of(&doc, spend, time_of(w), &self.location)?);
            }
            Ok((keys, total.max(0) as u64))
        })
        .map_err(into_store)
    }

    fn update(&self, key: &KeyRow) -> Result<bool, KeyError> {
        let doc = doc_of(key)?;
        self.with(|c| {
            c.execute(
                "UPDATE tollgate_keys SET key_alias = ?2, user_id = ?3, team_id = ?4, updated_at = ?5, doc = ?6,
                     max_budget = ?7
                 WHERE token = ?1",
                params![
                    key.token,
                    key.key_alias,
                    key.user_id,
                    key.team_id,
                    now_text(Utc::now()),
                    doc,
                    key.max_budget
                ],
            )
            .map(|n| n > 0)
            .map_err(|e| self.write_err(e, key.key_alias.as_deref()))
        })
    }

    fn delete(&self, tokens: &[String]) -> Result<Vec<String>, StoreError> {
        self.with(|c| {
            let tx = c.transaction().map_err(|e| self.err(e))?;
            let mut deleted = Vec::new();
            for t in tokens {
                let moved = tx
                    .execute(
                        "INSERT INTO tollgate_deleted_keys (token, deleted_at, doc)
                         SELECT token, ?2, doc FROM tollgate_keys WHERE token = ?1",
                        params![t, now_text(Utc::now())],
                    )
                    .map_err(|e| self.err(e))?;
                if moved > 0 {
                    tx.execute("DELETE FROM tollgate_keys WHERE token = ?1", params![t])
                        .map_err(|e| self.err(e))?;
                    deleted.push(t.clone());
                }
            }
            tx.commit().map_err(|e| self.err(e))?;
            Ok(deleted)
        })
        .map_err(into_store)
    }

    fn replace_token(&self, old: &str, new: &KeyRow) -> Result<bool, KeyError> {
        let doc = doc_of(new)?;
        self.with(|c| {
            c.execute(
                "UPDATE tollgate_keys SET token = ?2, key_alias = ?3, updated_at = ?4, doc = ?5, previous_token = ?6
                 WHERE token = ?1",
                params![
                    old,
                    new.token,
                    new.key_alias,
                    now_text(Utc::now()),
                    doc,
                    new.previous_token
                ],
            )
            .map(|n| n > 0)
            .map_err(|e| self.write_err(e, new.key_alias.as_deref()))
        })
    }

    fn add_spend(&self, spends: &[(String, f64, f64)]) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction().map_err(|e| self.err(e))?;
            for (token, amount, release) in spends {
                tx.execute(
                    "UPDATE tollgate_keys SET spend = spend + ?2, reserved = max(reserved - ?3, 0) WHERE token = ?1",
                    params![token, amount, release],
                )
                .map_err(|e| self.err(e))?;
            }
            tx.commit().map_err(|e| self.err(e))?;
            Ok(())
        })
        .map_err(into_store)
    }

    fn reserve(&self, token: &str, amount: f64, window: Option<DateTime<Utc>>) -> Result<Reservation, StoreError> {
        let window = window.map(now_text);
        self.with(|c| {
            // A new period: its spend and holds start from 0.
            let fresh = "(?3 IS NOT NULL AND (budget_window IS NULL OR budget_window < ?3))";
            let held = c
                .execute(
                    &format!(
                        "UPDATE tollgate_keys SET
                            spend = CASE WHEN {fresh} THEN 0 ELSE spend END,
                            reserved = CASE WHEN {fresh} THEN 0 ELSE reserved END + ?2,
                            budget_window = coalesce(?3, budget_window)
                         WHERE token = ?1 AND (max_budget IS NULL
                            OR (CASE WHEN {fresh} THEN 0 ELSE spend + reserved END) + ?2 <= max_budget)"
                    ),
                    params![token, amount, window],
                )
                .map_err(|e| self.err(e))?;
            if held > 0 {
                return Ok(Reservation::Held);
            }
            let (spend, reserved, max_budget): (f64, f64, Option<f64>) = c
                .query_row(
                    "SELECT spend, reserved, max_budget FROM tollgate_keys WHERE token = ?1",
                    params![token],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .map_err(|e| self.err(e))?;
            Ok(Reservation::Refused {
                spend,
                reserved,
                max_budget: max_budget.unwrap_or(0.0),
            })
        })
        .map_err(into_store)
    }
}

pub(crate) fn into_store(e: KeyError) -> StoreError {
    match e {
        KeyError::Store(s) => s,
        KeyError::Conflict(m) => StoreError::NotCommitted(m),
    }
}

/// Keys in the shared Postgres.
pub struct PostgresKeys {
    pub(crate) pool: Pool,
    pub(crate) target: PostgresTarget,
}

impl PostgresKeys {
    /// Connects once and migrates, so a broken database is found at startup.
    pub fn open(target: &PostgresTarget) -> Result<PostgresKeys, StoreError> {
        let mut client = target.connect()?;
        crate::migrate::postgres(&mut client, target.location())?;
        Ok(PostgresKeys {
            pool: target.pool(),
            target: target.clone(),
        })
    }

    /// Without connecting: the schema is migrated by whoever reaches Postgres first (the
    /// shipper at startup or when Postgres is back), and lookups fail until then.
    pub fn lazy(target: &PostgresTarget) -> PostgresKeys {
        PostgresKeys {
            pool: target.pool(),
            target: target.clone(),
        }
    }

    pub(crate) fn err(&self, e: &postgres::Error) -> StoreError {
        self.target.error(e)
    }

    fn write_err(&self, e: &postgres::Error, alias: Option<&str>) -> KeyError {
        if e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION) {
            alias_taken(alias)
        } else {
            KeyError::Store(self.err(e))
        }
    }

    fn select(&self, column: &str, value: &str) -> Result<Option<KeyRow>, StoreError> {
        let mut c = self.pool.get()?;
        let sql = format!("SELECT doc, spend, budget_window FROM tollgate_keys WHERE {column} = $1");
        let row = c.query_opt(&sql, &[&value]).map_err(|e| self.err(&e))?;
        row.map(|r| row_of(r.get(0), r.get(1), r.get(2), self.target.location()))
            .transpose()
    }
}

impl KeyStore for PostgresKeys {
    fn create(&self, key: &KeyRow) -> Result<(), KeyError> {
        let doc = doc_of(key)?;
        let mut c = self.pool.get()?;
        c.execute(
            "INSERT INTO tollgate_keys (token, key_alias, user_id, team_id, spend, updated_at, doc, max_budget)
             VALUES ($1, $2, $3, $4, $5, now(), $6, $7)",
            &[
                &key.token,
                &key.key_alias,
                &key.user_id,
                &key.team_id,
                &key.spend,
                &doc,
                &key.max_budget,
            ],
        )
        .map(|_| ())
        .map_err(|e| self.write_err(&e, key.key_alias.as_deref()))
    }

    fn get(&self, token: &str) -> Result<Option<KeyRow>, StoreError> {
        match self.select("token", token)? {
            Some(k) => Ok(Some(k)),
            None => self.select("previous_token", token),
        }
    }

    fn find_alias(&self, alias: &str) -> Result<Option<KeyRow>, StoreError> {
        self.select("key_alias", alias)
    }

    fn list(&self, filter: &KeyFilter, page: u32, size: u32) -> Result<(Vec<KeyRow>, u64), StoreError> {
        let mut c = self.pool.get()?;
        let cond = "($1::text IS NULL OR user_id = $1) AND ($2::text IS NULL OR team_id = $2) AND ($3::text IS NULL OR key_alias = $3)";
        let total: i64 = c
            .query_one(
                &format!("SELECT count(*) FROM tollgate_keys WHERE {cond}"),
                &[&filter.user_id, &filter.team_id, &filter.key_alias],
            )
            .map_err(|e| self.err(&e))?
            .get(0);
        let offset = i64::from(page.saturating_sub(1)) * i64::from(size);
        let rows = c
            .query(
                &format!(
                    "SELECT doc, spend, budget_window FROM tollgate_keys WHERE {cond} ORDER BY seq LIMIT $4 OFFSET $5"
                ),
                &[
                    &filter.user_id,
                    &filter.team_id,
                    &filter.key_alias,
                    &i64::from(size),
                    &offset,
                ],
            )
            .map_err(|e| self.err(&e))?;
        let keys = rows
            .iter()
            .map(|r| row_of(r.get(0), r.get(1), r.get(2), self.target.location()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((keys, total.max(0) as u64))
    }

    fn update(&self, key: &KeyRow) -> Result<bool, KeyError> {
        let doc = doc_of(key)?;
        let mut c = self.pool.get()?;
        c.execute(
            "UPDATE tollgate_keys SET key_alias = $2, user_id = $3, team_id = $4, updated_at = now(), doc = $5, max_budget = $6 WHERE token = $1",
            &[&key.token, &key.key_alias, &key.user_id, &key.team_id, &doc, &key.max_budget],
        )
        .map(|n| n > 0)
        .map_err(|e| self.write_err(&e, key.key_alias.as_deref()))
    }

    fn delete(&self, tokens: &[String]) -> Result<Vec<String>, StoreError> {
        let mut c = self.pool.get()?;
        let mut tx = c.transaction().map_err(|e| self.err(&e))?;
        let rows = tx
            .query(
                "WITH gone AS (DELETE FROM tollgate_keys WHERE token = ANY($1) RETURNING token, doc)
                 INSERT INTO tollgate_deleted_keys (token, deleted_at, doc) SELECT token, now(), doc FROM gone
                 RETURNING token",
                &[&tokens],
            )
            .map_err(|e| self.err(&e))?;
        tx.commit().map_err(|e| self.err(&e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn replace_token(&self, old: &str, new: &KeyRow) -> Result<bool, KeyError> {
        let doc = doc_of(new)?;
        let mut c = self.pool.get()?;
        c.execute(
            "UPDATE tollgate_keys SET token = $2, key_alias = $3, updated_at = now(), doc = $4, previous_token = $5
             WHERE token = $1",
            &[&old, &new.token, &new.key_alias, &doc, &new.previous_token],
        )
        .map(|n| n > 0)
        .map_err(|e| self.write_err(&e, new.key_alias.as_deref()))
    }

    fn add_spend(&self, spends: &[(String, f64, f64)]) -> Result<(), StoreError> {
        if spends.is_empty() {
            return Ok(());
        }
        let tokens: Vec<&str> = spends.iter().map(|(t, _, _)| t.as_str()).collect();
        let amounts: Vec<f64> = spends.iter().map(|(_, a, _)| *a).collect();
        let releases: Vec<f64> = spends.iter().map(|(_, _, r)| *r).collect();
        let mut c = self.pool.get()?;
        // One statement for the batch; `spend = spend + …` in place, so instances never race.
        c.execute(
            "UPDATE tollgate_keys k SET spend = k.spend + s.amount, reserved = GREATEST(k.reserved - s.release, 0)
             FROM (SELECT t, sum(a) AS amount, sum(r) AS release
                   FROM unnest($1::text[], $2::float8[], $3::float8[]) AS u(t, a, r) GROUP BY t) s
             WHERE k.token = s.t",
            &[&tokens, &amounts, &releases],
        )
        .map(|_| ())
        .map_err(|e| self.err(&e))
    }

    fn reserve(&self, token: &str, amount: f64, window: Option<DateTime<Utc>>) -> Result<Reservation, StoreError> {
        let mut c = self.pool.get()?;
        let fresh = "($3::timestamptz IS NOT NULL AND (budget_window IS NULL OR budget_window < $3))";
        // One conditional UPDATE: Postgres serialises it per row, so concurrent instances can
        // never together hold more than the budget.
        let held = c
            .execute(
                &format!(
                    "UPDATE tollgate_keys SET
                        spend = CASE WHEN {fresh} THEN 0 ELSE spend END,
                        reserved = CASE WHEN {fresh} THEN 0 ELSE reserved END + $2,
                        budget_window = coalesce($3, budget_window)
                     WHERE token = $1 AND (max_budget IS NULL
                        OR (CASE WHEN {fresh} THEN 0 ELSE spend + reserved END) + $2 <= max_budget)"
                ),
                &[&token, &amount, &window],
            )
            .map_err(|e| self.err(&e))?;
        if held > 0 {
            return Ok(Reservation::Held);
        }
        let row = c
            .query_one(
                "SELECT spend, reserved, max_budget FROM tollgate_keys WHERE token = $1",
                &[&token],
            )
            .map_err(|e| self.err(&e))?;
        Ok(Reservation::Refused {
            spend: row.get(0),
            reserved: row.get(1),
            max_budget: row.get::<_, Option<f64>>(2).unwrap_or(0.0),
        })
    }
}

#[cfg(test)]
mod model_access_tests {
    use super::model_allowed;

    #[test]
    fn wildcard_model_entries_match_like_litellms() {
        assert!(model_allowed("anthropic/*", "anthropic/claude-sonnet-4-5"));
        assert!(!model_allowed("anthropic/*", "openai/gpt-4o"));
        assert!(model_allowed("claude-*-4-5", "claude-sonnet-4-5"));
        assert!(!model_allowed("claude-*-4-5", "claude-sonnet-4-1"));
        assert!(model_allowed("a*b*c", "abc") && model_allowed("a*b*c", "axxbyyc"));
        assert!(!model_allowed("a*b*c", "acb"));
        assert!(!model_allowed("ab*ba", "aba"));
        assert!(model_allowed("*", "x") && model_allowed("gpt-4o", "gpt-4o"));
        assert!(!model_allowed("gpt-4o", "gpt-4o-mini"));
    }
}
