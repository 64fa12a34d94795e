//! Users, teams, organizations, end users, budget tiers and team memberships: the definitions
//! behind LiteLLM's `/user/*`, `/team/*`, `/organization/*`, `/customer/*` and `/budget/*` APIs,
//! in the same database as the keys (SQLite, or the shared Postgres).
//!
//! A row is the entity's kind and id, the parent lists filter by, and a JSON document in
//! LiteLLM's field names, so the API can show what LiteLLM shows without a column per field.
//! Spend is not here: it lives in the ledger (`ledger.rs`), where admission holds against it.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use serde_json::{Map, Value};

use crate::error::StoreError;
use crate::keys::{KeyError, PostgresKeys, SqliteKeys, into_store, now_text};

/// What an entity is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntityKind {
    User,
    Team,
    Organization,
    /// An end user: the OpenAI `user` field of a request (LiteLLM's "customer").
    Customer,
    /// A shareable budget tier (`/budget/new`) that other entities point at with `budget_id`.
    Budget,
    /// A user's membership of a team (`<team_id>/<user_id>`), with its own budget in the team.
    TeamMember,
}

impl EntityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::User => "user",
            EntityKind::Team => "team",
            EntityKind::Organization => "organization",
            EntityKind::Customer => "customer",
            EntityKind::Budget => "budget",
            EntityKind::TeamMember => "team_member",
        }
    }

    /// The ledger scope its spend is kept under (`end_user` for customers, as LiteLLM's
    /// messages name them; the kind's name otherwise). Per-model spend is `<scope>_model`.
    pub fn scope(self) -> &'static str {
        match self {
            EntityKind::Customer => "end_user",
            other => other.as_str(),
        }
    }
}

/// One entity's definition.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityRow {
    pub kind: EntityKind,
    pub id: String,
    /// What lists of this kind filter by: a team's organization, a membership's team.
    pub parent: Option<String>,
    /// LiteLLM's fields (`max_budget`, `models`, `members_with_roles`, …).
    pub doc: Map<String, Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl EntityRow {
    pub fn new(kind: EntityKind, id: impl Into<String>, doc: Map<String, Value>) -> EntityRow {
        let now = Utc::now();
        EntityRow {
            kind,
            id: id.into(),
            parent: None,
            doc,
            created_at: now,
            updated_at: now,
        }
    }

    pub fn f64(&self, field: &str) -> Option<f64> {
        self.doc.get(field).and_then(Value::as_f64)
    }

    pub fn u64(&self, field: &str) -> Option<u64> {
        self.doc.get(field).and_then(Value::as_u64)
    }

    pub fn str(&self, field: &str) -> Option<&str> {
        self.doc.get(field).and_then(Value::as_str)
    }

    pub fn flag(&self, field: &str) -> bool {
        self.doc.get(field).and_then(Value::as_bool).unwrap_or(false)
    }

    /// The `models` list; empty means every model.
    pub fn models(&self) -> Vec<&str> {
        self.doc
            .get("models")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }
}

/// The entity table, in SQLite or Postgres; both pass the same tests (`tests/entity_store.rs`).
pub trait EntityStore: Send + Sync {
    /// Adds a new entity; a conflict when one of that kind and id exists.
    fn create_entity(&self, row: &EntityRow) -> Result<(), KeyError>;
    fn get_entity(&self, kind: EntityKind, id: &str) -> Result<Option<EntityRow>, StoreError>;
    /// One page (1-based) of a kind, optionally under one parent, in creation order; and how many in all.
    fn list_entities(
        &self,
        kind: EntityKind,
        parent: Option<&str>,
        page: u32,
        size: u32,
    ) -> Result<(Vec<EntityRow>, u64), StoreError>;
    /// Replaces the document and parent; `false` when there is no such entity.
    fn update_entity(&self, row: &EntityRow) -> Result<bool, StoreError>;
    /// Moves the entities to the deleted table; returns the ids that existed.
    fn delete_entities(&self, kind: EntityKind, ids: &[String]) -> Result<Vec<String>, StoreError>;
}

fn doc_text(row: &EntityRow) -> Result<String, StoreError> {
    serde_json::to_string(&row.doc).map_err(StoreError::Line)
}

fn doc_of(text: &str, location: &str) -> Result<Map<String, Value>, StoreError> {
    serde_json::from_str(text).map_err(|source| StoreError::Decode {
        path: location.into(),
        location: "tollgate_entities".into(),
        source,
    })
}

fn time_of(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

fn exists(row: &EntityRow) -> KeyError {
    KeyError::Conflict(format!(
        "{} `{}` already exists; choose another id, or change it with the update endpoint",
        row.kind.as_str(),
        row.id
    ))
}

impl EntityStore for SqliteKeys {
    fn create_entity(&self, row: &EntityRow) -> Result<(), KeyError> {
        let doc = doc_text(row)?;
        self.with(|c| {
            c.execute(
                "INSERT INTO tollgate_entities (kind, id, parent, created_at, updated_at, doc)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    row.kind.as_str(),
                    row.id,
                    row.parent,
                    now_text(row.created_at),
                    now_text(row.updated_at),
                    doc
                ],
            )
            .map(|_| ())
            .map_err(|e| match &e {
                rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
                    exists(row)
                }
                _ => KeyError::Store(self.err(e)),
            })
        })
    }

    fn get_entity(&self, kind: EntityKind, id: &str) -> Result<Option<EntityRow>, StoreError> {
        self.with(|c| {
            let found: Option<(Option<String>, String, String, String)> = c
                .query_row(
                    "SELECT parent, created_at, updated_at, doc FROM tollgate_entities WHERE kind = ?1 AND id = ?2",
                    params![kind.as_str(), id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()
                .map_err(|e| self.err(e))?;
            let Some((parent, created, updated, doc)) = found else {
                return Ok(None);
            };
            Ok(Some(EntityRow {
                kind,
                id: id.to_string(),
                parent,
                doc: doc_of(&doc, &self.location)?,
                created_at: time_of(&created),
                updated_at: time_of(&updated),
            }))
        })
        .map_err(into_store)
    }

    fn list_entities(
        &self,
        kind: EntityKind,
        parent: Option<&str>,
        page: u32,
        size: u32,
    ) -> Result<(Vec<EntityRow>, u64), StoreError> {
        self.with(|c| {
            let cond = "kind = ?1 AND (?2 IS NULL OR parent = ?2)";
            let total: i64 = c
                .query_row(
                    &format!("SELECT count(*) FROM tollgate_entities WHERE {cond}"),
                    params![kind.as_str(), parent],
                    |r| r.get(0),
                )
                .map_err(|e| self.err(e))?;
            let offset = i64::from(page.saturating_sub(1)) * i64::from(size);
            let mut stmt = c
                .prepare(&format!(
                    "SELECT id, parent, created_at, updated_at, doc FROM tollgate_entities
                     WHERE {cond} ORDER BY rowid LIMIT ?3 OFFSET ?4"
                ))
                .map_err(|e| self.err(e))?;
            let rows = stmt
                .query_map(params![kind.as_str(), parent, i64::from(size), offset], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                    ))
                })
                .map_err(|e| self.err(e))?;
            let mut out = Vec::new();
            for row in rows {
                let (id, parent, created, updated, doc) = row.map_err(|e| self.err(e))?;
                out.push(EntityRow {
                    kind,
                    id,
                    parent,
                    doc: doc_of(&doc, &self.location)?,
                    created_at: time_of(&created),
                    updated_at: time_of(&updated),
                });
            }
            Ok((out, total.max(0) as u64))
        })
        .map_err(into_store)
    }

    fn update_entity(&self, row: &EntityRow) -> Result<bool, StoreError> {
        let doc = doc_text(row)?;
        self.with(|c| {
            c.execute(
                "UPDATE tollgate_entities SET parent = ?3, updated_at = ?4, doc = ?5 WHERE kind = ?1 AND id = ?2",
                params![row.kind.as_str(), row.id, row.parent, now_text(Utc::now()), doc],
            )
            .map(|n| n > 0)
            .map_err(|e| KeyError::Store(self.err(e)))
        })
        .map_err(into_store)
    }

    fn delete_entities(&self, kind: EntityKind, ids: &[String]) -> Result<Vec<String>, StoreError> {
        self.with(|c| {
            let tx = c.transaction().map_err(|e| self.err(e))?;
            let mut deleted = Vec::new();
            for id in ids {
                let moved = tx
                    .execute(
                        "INSERT INTO tollgate_deleted_entities (kind, id, deleted_at, doc)
                         SELECT kind, id, ?3, doc FROM tollgate_entities WHERE kind = ?1 AND id = ?2",
                        params![kind.as_str(), id, now_text(Utc::now())],
                    )
                    .map_err(|e| self.err(e))?;
                if moved > 0 {
                    tx.execute(
                        "DELETE FROM tollgate_entities WHERE kind = ?1 AND id = ?2",
                        params![kind.as_str(), id],
                    )
                    .map_err(|e| self.err(e))?;
                    deleted.push(id.clone());
                }
            }
            tx.commit().map_err(|e| self.err(e))?;
            Ok(deleted)
        })
        .map_err(into_store)
    }
}

fn pg_row(kind: EntityKind, r: &postgres::Row, location: &str) -> Result<EntityRow, StoreError> {
    Ok(EntityRow {
        kind,
        id: r.get(0),
        parent: r.get(1),
        created_at: r.get(2),
        updated_at: r.get(3),
        doc: doc_of(r.get(4), location)?,
    })
}

impl EntityStore for PostgresKeys {
    fn create_entity(&self, row: &EntityRow) -> Result<(), KeyError> {
        let doc = doc_text(row)?;
        let mut c = self.pool.get()?;
        c.execute(
            "INSERT INTO tollgate_entities (kind, id, parent, created_at, updated_at, doc)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &row.kind.as_str(),
                &row.id,
                &row.parent,
                &row.created_at,
                &row.updated_at,
                &doc,
            ],
        )
        .map(|_| ())
        .map_err(|e| {
            if e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION) {
                exists(row)
            } else {
                KeyError::Store(self.err(&e))
            }
        })
    }

    fn get_entity(&self, kind: EntityKind, id: &str) -> Result<Option<EntityRow>, StoreError> {
        let mut c = self.pool.get()?;
        let row = c
            .query_opt(
                "SELECT id, parent, created_at, updated_at, doc FROM tollgate_entities WHERE kind = $1 AND id = $2",
                &[&kind.as_str(), &id],
            )
            .map_err(|e| self.err(&e))?;
        row.map(|r| pg_row(kind, &r, self.target.location())).transpose()
    }

    fn list_entities(
        &self,
        kind: EntityKind,
        parent: Option<&str>,
        page: u32,
        size: u32,
    ) -> Result<(Vec<EntityRow>, u64), StoreError> {
        let mut c = self.pool.get()?;
        let cond = "kind = $1 AND ($2::text IS NULL OR parent = $2)";
        let total: i64 = c
            .query_one(
                &format!("SELECT count(*) FROM tollgate_entities WHERE {cond}"),
                &[&kind.as_str(), &parent],
            )
            .map_err(|e| self.err(&e))?
            .get(0);
        let offset = i64::from(page.saturating_sub(1)) * i64::from(size);
        let rows = c
            .query(
                &format!(
                    "SELECT id, parent, created_at, updated_at, doc FROM tollgate_entities
                     WHERE {cond} ORDER BY seq LIMIT $3 OFFSET $4"
                ),
                &[&kind.as_str(), &parent, &i64::from(size), &offset],
            )
            .map_err(|e| self.err(&e))?;
        let list = rows
            .iter()
            .map(|r| pg_row(kind, r, self.target.location()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((list, total.max(0) as u64))
    }

    fn update_entity(&self, row: &EntityRow) -> Result<bool, StoreError> {
        let doc = doc_text(row)?;
        let mut c = self.pool.get()?;
        c.execute(
            "UPDATE tollgate_entities SET parent = $3, updated_at = now(), doc = $4 WHERE kind = $1 AND id = $2",
            &[&row.kind.as_str(), &row.id, &row.parent, &doc],
        )
        .map(|n| n > 0)
        .map_err(|e| self.err(&e))
    }

    fn delete_entities(&self, kind: EntityKind, ids: &[String]) -> Result<Vec<String>, StoreError> {
        let mut c = self.pool.get()?;
        let rows = c
            .query(
                "WITH gone AS (DELETE FROM tollgate_entities WHERE kind = $1 AND id = ANY($2) RETURNING kind, id, doc)
                 INSERT INTO tollgate_deleted_entities (kind, id, deleted_at, doc)
                 SELECT kind, id, now(), doc FROM gone RETURNING id",
                &[&kind.as_str(), &ids],
            )
            .map_err(|e| self.err(&e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}
