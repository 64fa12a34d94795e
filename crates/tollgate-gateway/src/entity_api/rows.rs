//! Entity rows in the store, as the management endpoints use them: reads that always go to the
//! store (never the request path's cache), writes that drop the cached row at once so the next
//! request sees the change, and the keys and ledger rows that go when an entity goes.

use serde_json::{Map, Value};
use tollgate_store::{Charge, EntityKind, EntityRow, KeyError, KeyFilter, KeyRow, StoreError};

use crate::app::App;
use crate::keys::Gathered;
use crate::mgmt::{ApiError, blocking, blocking_settled};

/// How messages name a kind.
pub(super) fn noun(kind: EntityKind) -> &'static str {
    match kind {
        EntityKind::User => "user",
        EntityKind::Team => "team",
        EntityKind::Organization => "organization",
        EntityKind::Customer => "customer",
        EntityKind::Budget => "budget",
        EntityKind::TeamMember => "team member",
    }
}

/// Where an entity of this kind is made.
fn maker(kind: EntityKind) -> &'static str {
    match kind {
        EntityKind::User => "POST /user/new",
        EntityKind::Team => "POST /team/new",
        EntityKind::Organization => "POST /organization/new",
        EntityKind::Customer => "POST /customer/new",
        EntityKind::Budget => "POST /budget/new",
        EntityKind::TeamMember => "POST /team/member_add",
    }
}

/// The entity as stored now.
pub(super) async fn get(app: &App, kind: EntityKind, id: &str) -> Result<Option<EntityRow>, ApiError> {
    let id = id.to_string();
    blocking(app, move |s| Ok(s.get_entity(kind, &id)?)).await
}

/// The entity a request acts on; 404 naming `param` when there is none.
pub(super) async fn existing(
    app: &App,
    kind: EntityKind,
    id: &str,
    param: &'static str,
) -> Result<EntityRow, ApiError> {
    get(app, kind, id).await?.ok_or_else(|| {
        ApiError::not_found(
            format!("{} `{id}` does not exist (create it with {})", noun(kind), maker(kind)),
            param,
        )
    })
}

/// An entity a request points at (a team's organization, a budget tier); 400 naming `param`
/// when there is none: the request is what needs fixing.
pub(super) async fn referenced(
    app: &App,
    kind: EntityKind,
    id: &str,
    param: &'static str,
) -> Result<EntityRow, ApiError> {
    get(app, kind, id).await?.ok_or_else(|| {
        ApiError::bad(
            format!(
                "{param} `{id}` names no {}; create it with {} first, or leave {param} out",
                noun(kind),
                maker(kind)
            ),
            Some(param),
        )
    })
}

/// The budget tier a document names in `budget_id` must exist.
pub(super) async fn check_budget_ref(app: &App, doc: &Map<String, Value>) -> Result<(), ApiError> {
    match doc.get("budget_id").and_then(Value::as_str) {
        Some(id) => referenced(app, EntityKind::Budget, id, "budget_id").await.map(|_| ()),
        None => Ok(()),
    }
}

/// Adds a new entity; an existing one of that kind and id is a 400 naming `param`.
pub(super) async fn create(app: &App, row: EntityRow, param: &'static str) -> Result<EntityRow, ApiError> {
    let stored = row.clone();
    match blocking(app, move |s| Ok(s.create_entity(&stored))).await? {
        Ok(()) => {}
        Err(KeyError::Conflict(_)) => {
            return Err(ApiError::bad(
                format!(
                    "{} `{}` already exists; choose another {param}, or change it with its update endpoint",
                    noun(row.kind),
                    row.id
                ),
                Some(param),
            ));
        }
        Err(other) => return Err(other.into()),
    }
    app.keys.forget_entity(row.kind, &row.id);
    Ok(row)
}

/// Replaces the entity's document and parent.
pub(super) async fn save(app: &App, row: &EntityRow) -> Result<(), ApiError> {
    let stored = row.clone();
    let found = blocking(app, move |s| Ok(s.update_entity(&stored)?)).await?;
    app.keys.forget_entity(row.kind, &row.id);
    if found {
        Ok(())
    } else {
        Err(ApiError::not_found(
            format!("{} `{}` was deleted meanwhile", noun(row.kind), row.id),
            "id",
        ))
    }
}

/// Deletes entities (moved to the deleted table) and their spend in the ledger, so an entity
/// made again under the same id starts from nothing, as in LiteLLM where the row is gone.
/// Returns the ids that existed.
pub(super) async fn remove(app: &App, kind: EntityKind, ids: Vec<String>) -> Result<Vec<String>, ApiError> {
    if ids.is_empty() {
        return Ok(ids);
    }
    let gone = blocking(app, move |s| {
        let gone = s.delete_entities(kind, &ids)?;
        let scope = kind.scope();
        let per_model = format!("{scope}_model");
        let mut charges = Vec::new();
        for id in &gone {
            if let Some(row) = s.spend_of(scope, id)? {
                charges.push(zero(scope, id, row.spend));
            }
            for (model_id, spend) in s.spend_under(&per_model, &format!("{id}/"))? {
                charges.push(zero(&per_model, &model_id, spend));
            }
        }
        s.settle(&charges)?;
        Ok(gone)
    })
    .await?;
    for id in &gone {
        app.keys.forget_entity(kind, id);
    }
    Ok(gone)
}

/// The charge that brings a scope's spend back to 0.
fn zero(scope: &str, id: &str, spend: f64) -> Charge {
    Charge {
        scope: scope.to_string(),
        id: id.to_string(),
        cost: -spend,
        release: 0.0,
        window: None,
    }
}

/// Every entity of a kind (under one parent), in creation order.
pub(super) async fn all(app: &App, kind: EntityKind, parent: Option<String>) -> Result<Vec<EntityRow>, ApiError> {
    blocking(app, move |s| {
        Ok(every(|page| s.list_entities(kind, parent.as_deref(), page, PAGE))?)
    })
    .await
}

/// Every key of a user or team (or every key).
pub(super) async fn keys_of(app: &App, filter: KeyFilter) -> Result<Vec<KeyRow>, ApiError> {
    blocking(app, move |s| Ok(every(|page| s.list(&filter, page, PAGE))?)).await
}

/// [`keys_of`] to be shown, with the spend gathered for them.
pub(super) async fn keys_with_spend(app: &App, filter: KeyFilter) -> Result<(Vec<KeyRow>, Gathered), ApiError> {
    blocking_settled(app, move |s| Ok(every(|page| s.list(&filter, page, PAGE))?)).await
}

/// How many rows a listing of everything reads at a time.
const PAGE: u32 = 500;

/// All pages of a paged listing (`page_of(n)`: page n and the total), until one comes back short.
fn every<T>(mut page_of: impl FnMut(u32) -> Result<(Vec<T>, u64), StoreError>) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    for page in 1.. {
        let (rows, total) = page_of(page)?;
        let done = rows.len() < PAGE as usize || out.len() + rows.len() >= total as usize;
        out.extend(rows);
        if done {
            break;
        }
    }
    Ok(out)
}

/// How many keys a user has.
pub(super) async fn key_count(app: &App, filter: KeyFilter) -> Result<u64, ApiError> {
    blocking(app, move |s| Ok(s.list(&filter, 1, 1)?.1)).await
}

/// Deletes keys (to the deleted-keys table) and drops them from the key cache at once.
pub(super) async fn remove_keys(app: &App, keys: &[KeyRow]) -> Result<(), ApiError> {
    let tokens: Vec<String> = keys.iter().map(|k| k.token.clone()).collect();
    if tokens.is_empty() {
        return Ok(());
    }
    let gone = blocking(app, move |s| Ok(s.delete(&tokens)?)).await?;
    for t in &gone {
        app.keys.forget(t);
    }
    Ok(())
}

/// The user with this email (LiteLLM looks members up by email too); 400 when several share it.
pub(super) async fn user_by_email(app: &App, email: &str) -> Result<Option<EntityRow>, ApiError> {
    let mut found: Vec<EntityRow> = all(app, EntityKind::User, None)
        .await?
        .into_iter()
        .filter(|u| u.str("user_email") == Some(email))
        .collect();
    if found.len() > 1 {
        return Err(ApiError::bad(
            format!("several users have the email {email:?}; name the member by user_id instead"),
            Some("user_email"),
        ));
    }
    Ok(found.pop())
}
