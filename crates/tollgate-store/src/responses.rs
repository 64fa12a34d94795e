//! Responses stored for OpenAI's Responses API (`store: true`, the default): what
//! `previous_response_id` continues and `GET /v1/responses/{id}` returns. Each row belongs to the
//! key that created it (its hash; the master key's is `master`), so one key cannot read or
//! continue another's conversation, and rows older than the retention setting are purged.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use serde_json::Value;

use crate::error::StoreError;
use crate::keys::{KeyError, PostgresKeys, SqliteKeys, into_store, now_text};

/// One stored response.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    /// `resp_…`.
    pub id: String,
    /// Who may read it: the creating key's hash, or `master`.
    pub owner: String,
    /// The `response` object as the client got it.
    pub response: Value,
    /// The conversation up to and including this response, as chat messages (what the next
    /// turn's `previous_response_id` puts before its own input).
    pub messages: Vec<Value>,
    pub created_at: DateTime<Utc>,
}

/// The stored responses, in SQLite or Postgres (both pass `tests/response_store.rs`).
pub trait ResponseStore: Send + Sync {
    fn put_response(&self, r: &StoredResponse) -> Result<(), StoreError>;
    /// The response `id` if `owner` stored it.
    fn get_response(&self, id: &str, owner: &str) -> Result<Option<StoredResponse>, StoreError>;
    /// `true` when `owner`'s response `id` existed.
    fn delete_response(&self, id: &str, owner: &str) -> Result<bool, StoreError>;
    /// Deletes the responses created before `before`; how many.
    fn purge_responses(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}

fn doc_of(r: &StoredResponse) -> Result<String, StoreError> {
    serde_json::to_string(&serde_json::json!({"response": r.response, "messages": r.messages}))
        .map_err(StoreError::Line)
}

fn from_doc(
    id: &str,
    owner: String,
    doc: &str,
    created_at: DateTime<Utc>,
    location: &str,
) -> Result<StoredResponse, StoreError> {
    let mut v: Value = serde_json::from_str(doc).map_err(|source| StoreError::Decode {
        path: location.into(),
        location: "tollgate_responses".into(),
        source,
    })?;
    let messages = match v.get_mut("messages").map(Value::take) {
        Some(Value::Array(m)) => m,
        _ => Vec::new(),
    };
    Ok(StoredResponse {
        id: id.to_string(),
        owner,
        response: v.get_mut("response").map(Value::take).unwrap_or(Value::Null),
        messages,
        created_at,
    })
}

impl ResponseStore for SqliteKeys {
    fn put_response(&self, r: &StoredResponse) -> Result<(), StoreError> {
        let doc = doc_of(r)?;
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO tollgate_responses (id, owner, created_at, doc) VALUES (?1, ?2, ?3, ?4)",
                params![r.id, r.owner, now_text(r.created_at), doc],
            )
            .map(|_| ())
            .map_err(|e| KeyError::Store(self.err(e)))
        })
        .map_err(into_store)
    }

    fn get_response(&self, id: &str, owner: &str) -> Result<Option<StoredResponse>, StoreError> {
        self.with(|c| {
            let found: Option<(String, String)> = c
                .query_row(
                    "SELECT created_at, doc FROM tollgate_responses WHERE id = ?1 AND owner = ?2",
                    params![id, owner],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(|e| KeyError::Store(self.err(e)))?;
            let Some((created, doc)) = found else {
                return Ok(None);
            };
            let created = DateTime::parse_from_rfc3339(&created)
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_default();
            Ok(Some(from_doc(id, owner.to_string(), &doc, created, &self.location)?))
        })
        .map_err(into_store)
    }

    fn delete_response(&self, id: &str, owner: &str) -> Result<bool, StoreError> {
        self.with(|c| {
            c.execute(
                "DELETE FROM tollgate_responses WHERE id = ?1 AND owner = ?2",
                params![id, owner],
            )
            .map(|n| n > 0)
            .map_err(|e| KeyError::Store(self.err(e)))
        })
        .map_err(into_store)
    }

    fn purge_responses(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.with(|c| {
            c.execute(
                "DELETE FROM tollgate_responses WHERE created_at < ?1",
                params![now_text(before)],
            )
            .map(|n| n as u64)
            .map_err(|e| KeyError::Store(self.err(e)))
        })
        .map_err(into_store)
    }
}

impl ResponseStore for PostgresKeys {
    fn put_response(&self, r: &StoredResponse) -> Result<(), StoreError> {
        let doc = doc_of(r)?;
        let mut c = self.pool.get()?;
        c.execute(
            "INSERT INTO tollgate_responses (id, owner, created_at, doc) VALUES ($1, $2, $3, $4)
             ON CONFLICT (id) DO UPDATE SET owner = EXCLUDED.owner, created_at = EXCLUDED.created_at, doc = EXCLUDED.doc",
            &[&r.id, &r.owner, &r.created_at, &doc],
        )
        .map(|_| ())
        .map_err(|e| self.err(&e))
    }

    fn get_response(&self, id: &str, owner: &str) -> Result<Option<StoredResponse>, StoreError> {
        let mut c = self.pool.get()?;
        let row = c
            .query_opt(
                "SELECT created_at, doc FROM tollgate_responses WHERE id = $1 AND owner = $2",
                &[&id, &owner],
            )
            .map_err(|e| self.err(&e))?;
        row.map(|r| {
            let created: DateTime<Utc> = r.get(0);
            let doc: String = r.get(1);
            from_doc(id, owner.to_string(), &doc, created, self.target.location())
        })
        .transpose()
    }

    fn delete_response(&self, id: &str, owner: &str) -> Result<bool, StoreError> {
        let mut c = self.pool.get()?;
        c.execute(
            "DELETE FROM tollgate_responses WHERE id = $1 AND owner = $2",
            &[&id, &owner],
        )
        .map(|n| n > 0)
        .map_err(|e| self.err(&e))
    }

    fn purge_responses(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut c = self.pool.get()?;
        c.execute("DELETE FROM tollgate_responses WHERE created_at < $1", &[&before])
            .map_err(|e| self.err(&e))
    }
}
