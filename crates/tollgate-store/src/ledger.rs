//! The ledger: spend and budget holds of every scope a request is charged to — its key, user,
//! team, team membership, end user, the proxy as a whole, and each of those per model.
//!
//! Admission holds the request's estimated cost against all of its scopes at once: one
//! transaction of conditional UPDATEs (each "spend + held + amount ≤ max_budget"), taken in a
//! fixed order so concurrent transactions cannot deadlock, and rolled back as a whole when any
//! scope would pass its budget. The store serialises updates of a row, so instances sharing
//! Postgres can never together hold more than a budget. When the request ends its real cost is
//! added and its hold given back ([`Ledger::settle`]).
//!
//! A key's spend stays on its own row (`tollgate_keys`, scope `key`, id = token); every other
//! scope has a row in `tollgate_spend`, made the first time something is held or spent.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use crate::error::StoreError;
use crate::keys::{KeyError, PostgresKeys, SqliteKeys, into_store, now_text};

/// The scope whose spend is kept on the key's own row.
pub const KEY_SCOPE: &str = "key";

/// Hold `amount` against one scope's budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Hold {
    /// `key`, `user`, `team`, `team_member`, `end_user`, `proxy`, `key_model`, …
    pub scope: String,
    pub id: String,
    pub amount: f64,
    /// The budget in force (the entity's own, or its budget tier's).
    pub max_budget: f64,
    /// The start of the scope's current budget period: spend from an earlier one counts as 0.
    pub window: Option<DateTime<Utc>>,
}

/// What [`Ledger::hold`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HoldOutcome {
    Held,
    /// `holds[index]` would pass its budget (nothing was held anywhere): its spend and holds.
    Refused {
        index: usize,
        spend: f64,
        reserved: f64,
    },
}

/// A finished request's charge to one scope: `cost` added, `release` of its hold given back.
#[derive(Debug, Clone, PartialEq)]
pub struct Charge {
    pub scope: String,
    pub id: String,
    pub cost: f64,
    pub release: f64,
    /// The start of the budget period the cost belongs to, for a scope with a budget period: a
    /// row still in an earlier period starts this one from 0 (as a hold would have done).
    pub window: Option<DateTime<Utc>>,
}

impl Charge {
    /// Gives back what `hold` held, adding no cost.
    pub fn release_of(hold: Hold) -> Charge {
        Charge {
            scope: hold.scope,
            id: hold.id,
            cost: 0.0,
            release: hold.amount,
            window: hold.window,
        }
    }
}

/// A scope's spend as stored.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SpendRow {
    pub spend: f64,
    pub reserved: f64,
    pub budget_window: Option<DateTime<Utc>>,
}

/// Spend and holds per scope, in SQLite or Postgres (`tests/entity_store.rs` runs both).
pub trait Ledger: Send + Sync {
    /// Holds every amount, or none of them.
    fn hold(&self, holds: &[Hold]) -> Result<HoldOutcome, StoreError>;
    /// Adds costs and gives back holds; charges of one scope are summed first.
    fn settle(&self, charges: &[Charge]) -> Result<(), StoreError>;
    /// One scope's spend (`None`: nothing spent or held yet). Not for `key` (see the key's row).
    fn spend_of(&self, scope: &str, id: &str) -> Result<Option<SpendRow>, StoreError>;
    /// Every row of `scope` whose id starts with `prefix` (e.g. a user's per-model spend,
    /// `user_model` under `ada/`), as (id, spend).
    fn spend_under(&self, scope: &str, prefix: &str) -> Result<Vec<(String, f64)>, StoreError>;
}

/// Holds in a fixed order (scope, id): two transactions holding the same rows take their locks
/// in the same order, so they wait for each other instead of deadlocking.
fn ordered(holds: &[Hold]) -> Vec<(usize, &Hold)> {
    let mut v: Vec<(usize, &Hold)> = holds.iter().enumerate().collect();
    v.sort_by(|a, b| (&a.1.scope, &a.1.id).cmp(&(&b.1.scope, &b.1.id)));
    v
}

/// Charges summed per scope (cost, release, latest period), in the same fixed order.
type Summed<'a> = BTreeMap<(&'a str, &'a str), (f64, f64, Option<DateTime<Utc>>)>;

fn summed(charges: &[Charge]) -> Summed<'_> {
    let mut m: Summed<'_> = BTreeMap::new();
    for c in charges {
        let e = m.entry((c.scope.as_str(), c.id.as_str())).or_default();
        e.0 += if c.cost.is_finite() { c.cost } else { 0.0 };
        e.1 += c.release;
        e.2 = e.2.max(c.window);
    }
    m
}

impl Ledger for SqliteKeys {
    fn hold(&self, holds: &[Hold]) -> Result<HoldOutcome, StoreError> {
        self.with(|c| {
            let tx = c
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(|e| self.err(e))?;
            for (index, h) in ordered(holds) {
                let key = h.scope == KEY_SCOPE;
                if !key {
                    tx.execute(
                        "INSERT OR IGNORE INTO tollgate_spend (scope, id) VALUES (?1, ?2)",
                        params![h.scope, h.id],
                    )
                    .map_err(|e| self.err(e))?;
                }
                let (tbl, row) = if key {
                    ("tollgate_keys", "token = ?1")
                } else {
                    ("tollgate_spend", "scope = ?5 AND id = ?1")
                };
                // A new period: its spend and holds start from 0.
                let fresh = "(?3 IS NOT NULL AND (budget_window IS NULL OR budget_window < ?3))";
                let sql = format!(
                    "UPDATE {tbl} SET
                        spend = CASE WHEN {fresh} THEN 0 ELSE spend END,
                        reserved = CASE WHEN {fresh} THEN 0 ELSE reserved END + ?2,
                        budget_window = coalesce(?3, budget_window)
                     WHERE {row} AND (CASE WHEN {fresh} THEN 0 ELSE spend + reserved END) + ?2 <= ?4"
                );
                let window = h.window.map(now_text);
                let n = if key {
                    tx.execute(&sql, params![h.id, h.amount, window, h.max_budget])
                } else {
                    tx.execute(&sql, params![h.id, h.amount, window, h.max_budget, h.scope])
                }
                .map_err(|e| self.err(e))?;
                if n == 0 {
                    let found: Option<(f64, f64)> = if key {
                        tx.query_row(
                            "SELECT spend, reserved FROM tollgate_keys WHERE token = ?1",
                            params![h.id],
                            |r| Ok((r.get(0)?, r.get(1)?)),
                        )
                    } else {
                        tx.query_row(
                            "SELECT spend, reserved FROM tollgate_spend WHERE scope = ?1 AND id = ?2",
                            params![h.scope, h.id],
                            |r| Ok((r.get(0)?, r.get(1)?)),
                        )
                    }
                    .optional()
                    .map_err(|e| self.err(e))?;
                    let (spend, reserved) = found.unwrap_or_default();
                    // Dropping the transaction rolls back the holds already taken.
                    return Ok(HoldOutcome::Refused { index, spend, reserved });
                }
            }
            tx.commit().map_err(|e| self.err(e))?;
            Ok(HoldOutcome::Held)
        })
        .map_err(into_store)
    }

    fn settle(&self, charges: &[Charge]) -> Result<(), StoreError> {
        if charges.is_empty() {
            return Ok(());
        }
        self.with(|c| {
            let tx = c.transaction().map_err(|e| self.err(e))?;
            // A row still in an earlier period than the charge's starts from 0.
            let fresh = "(?4 IS NOT NULL AND (budget_window IS NULL OR budget_window < ?4))";
            for ((scope, id), (cost, release, window)) in summed(charges) {
                let window = window.map(now_text);
                if scope == KEY_SCOPE {
                    tx.execute(
                        &format!(
                            "UPDATE tollgate_keys SET
                                spend = CASE WHEN {fresh} THEN 0 ELSE spend END + ?2,
                                reserved = max(CASE WHEN {fresh} THEN 0 ELSE reserved END - ?3, 0),
                                budget_window = CASE WHEN {fresh} THEN ?4 ELSE budget_window END
                             WHERE token = ?1"
                        ),
                        params![id, cost, release, window],
                    )
                } else {
                    tx.execute(
                        "INSERT OR IGNORE INTO tollgate_spend (scope, id) VALUES (?5, ?1)",
                        params![id, cost, release, window, scope],
                    )
                    .and_then(|_| {
                        tx.execute(
                            &format!(
                                "UPDATE tollgate_spend SET
                                    spend = CASE WHEN {fresh} THEN 0 ELSE spend END + ?2,
                                    reserved = max(CASE WHEN {fresh} THEN 0 ELSE reserved END - ?3, 0),
                                    budget_window = CASE WHEN {fresh} THEN ?4 ELSE budget_window END
                                 WHERE scope = ?5 AND id = ?1"
                            ),
                            params![id, cost, release, window, scope],
                        )
                    })
                }
                .map_err(|e| self.err(e))?;
            }
            tx.commit().map_err(|e| KeyError::Store(self.err(e)))
        })
        .map_err(into_store)
    }

    fn spend_of(&self, scope: &str, id: &str) -> Result<Option<SpendRow>, StoreError> {
        self.with(|c| {
            let found: Option<(f64, f64, Option<String>)> = c
                .query_row(
                    "SELECT spend, reserved, budget_window FROM tollgate_spend WHERE scope = ?1 AND id = ?2",
                    params![scope, id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(|e| self.err(e))?;
            Ok(found.map(|(spend, reserved, w)| SpendRow {
                spend,
                reserved,
                budget_window: w.and_then(|w| DateTime::parse_from_rfc3339(&w).ok().map(|t| t.with_timezone(&Utc))),
            }))
        })
        .map_err(into_store)
    }

    fn spend_under(&self, scope: &str, prefix: &str) -> Result<Vec<(String, f64)>, StoreError> {
        self.with(|c| {
            let mut stmt = c
                .prepare(
                    "SELECT id, spend FROM tollgate_spend WHERE scope = ?1 AND substr(id, 1, length(?2)) = ?2 ORDER BY id",
                )
                .map_err(|e| self.err(e))?;
            let rows = stmt
                .query_map(params![scope, prefix], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(|e| self.err(e))?;
            let mut out = Vec::new();
            for r in rows {
                out.push(r.map_err(|e| self.err(e))?);
            }
            Ok(out)
        })
        .map_err(into_store)
    }
}

impl Ledger for PostgresKeys {
    fn hold(&self, holds: &[Hold]) -> Result<HoldOutcome, StoreError> {
        let mut c = self.pool.get()?;
        let mut tx = c.transaction().map_err(|e| self.err(&e))?;
        let fresh = "($3::timestamptz IS NOT NULL AND (budget_window IS NULL OR budget_window < $3))";
        for (index, h) in ordered(holds) {
            let n = if h.scope == KEY_SCOPE {
                tx.execute(
                    &format!(
                        "UPDATE tollgate_keys SET
                            spend = CASE WHEN {fresh} THEN 0 ELSE spend END,
                            reserved = CASE WHEN {fresh} THEN 0 ELSE reserved END + $2,
                            budget_window = coalesce($3, budget_window)
                         WHERE token = $1 AND (CASE WHEN {fresh} THEN 0 ELSE spend + reserved END) + $2 <= $4"
                    ),
                    &[&h.id, &h.amount, &h.window, &h.max_budget],
                )
            } else {
                tx.execute(
                    "INSERT INTO tollgate_spend (scope, id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    &[&h.scope, &h.id],
                )
                .map_err(|e| self.err(&e))?;
                tx.execute(
                    &format!(
                        "UPDATE tollgate_spend SET
                            spend = CASE WHEN {fresh} THEN 0 ELSE spend END,
                            reserved = CASE WHEN {fresh} THEN 0 ELSE reserved END + $2,
                            budget_window = coalesce($3, budget_window)
                         WHERE scope = $5 AND id = $1
                           AND (CASE WHEN {fresh} THEN 0 ELSE spend + reserved END) + $2 <= $4"
                    ),
                    &[&h.id, &h.amount, &h.window, &h.max_budget, &h.scope],
                )
            }
            .map_err(|e| self.err(&e))?;
            if n == 0 {
                let row = if h.scope == KEY_SCOPE {
                    tx.query_opt("SELECT spend, reserved FROM tollgate_keys WHERE token = $1", &[&h.id])
                } else {
                    tx.query_opt(
                        "SELECT spend, reserved FROM tollgate_spend WHERE scope = $1 AND id = $2",
                        &[&h.scope, &h.id],
                    )
                }
                .map_err(|e| self.err(&e))?;
                let (spend, reserved) = row.map(|r| (r.get(0), r.get(1))).unwrap_or_default();
                tx.rollback().map_err(|e| self.err(&e))?;
                return Ok(HoldOutcome::Refused { index, spend, reserved });
            }
        }
        tx.commit().map_err(|e| self.err(&e))?;
        Ok(HoldOutcome::Held)
    }

    fn settle(&self, charges: &[Charge]) -> Result<(), StoreError> {
        if charges.is_empty() {
            return Ok(());
        }
        let mut c = self.pool.get()?;
        let mut tx = c.transaction().map_err(|e| self.err(&e))?;
        // A row still in an earlier period than the charge's starts from 0.
        let fresh = "($4::timestamptz IS NOT NULL AND (budget_window IS NULL OR budget_window < $4))";
        for ((scope, id), (cost, release, window)) in summed(charges) {
            if scope == KEY_SCOPE {
                tx.execute(
                    &format!(
                        "UPDATE tollgate_keys SET
                            spend = CASE WHEN {fresh} THEN 0 ELSE spend END + $2,
                            reserved = GREATEST(CASE WHEN {fresh} THEN 0 ELSE reserved END - $3, 0),
                            budget_window = CASE WHEN {fresh} THEN $4 ELSE budget_window END
                         WHERE token = $1"
                    ),
                    &[&id, &cost, &release, &window],
                )
            } else {
                tx.execute(
                    "INSERT INTO tollgate_spend (scope, id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    &[&scope, &id],
                )
                .map_err(|e| self.err(&e))?;
                tx.execute(
                    &format!(
                        "UPDATE tollgate_spend SET
                            spend = CASE WHEN {fresh} THEN 0 ELSE spend END + $2,
                            reserved = GREATEST(CASE WHEN {fresh} THEN 0 ELSE reserved END - $3, 0),
                            budget_window = CASE WHEN {fresh} THEN $4 ELSE budget_window END
                         WHERE scope = $5 AND id = $1"
                    ),
                    &[&id, &cost, &release, &window, &scope],
                )
            }
            .map_err(|e| self.err(&e))?;
        }
        tx.commit().map_err(|e| self.err(&e))
    }

    fn spend_of(&self, scope: &str, id: &str) -> Result<Option<SpendRow>, StoreError> {
        let mut c = self.pool.get()?;
        let row = c
            .query_opt(
                "SELECT spend, reserved, budget_window FROM tollgate_spend WHERE scope = $1 AND id = $2",
                &[&scope, &id],
            )
            .map_err(|e| self.err(&e))?;
        Ok(row.map(|r| SpendRow {
            spend: r.get(0),
            reserved: r.get(1),
            budget_window: r.get(2),
        }))
    }

    fn spend_under(&self, scope: &str, prefix: &str) -> Result<Vec<(String, f64)>, StoreError> {
        let mut c = self.pool.get()?;
        let rows = c
            .query(
                "SELECT id, spend FROM tollgate_spend WHERE scope = $1 AND left(id, length($2)) = $2 ORDER BY id",
                &[&scope, &prefix],
            )
            .map_err(|e| self.err(&e))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}
