//! Budget tiers, which users, teams, organizations, customers, members and keys share by
//! `budget_id`: `POST /budget/new`, `GET /budget/info?budget_id=` and LiteLLM's
//! `POST /budget/info` (`{"budgets": […]}`), `POST /budget/update`, `POST /budget/delete`
//! (`{"id": …}`; refused while anything still names the tier), `GET /budget/list`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use serde_json::{Map, json};
use tollgate_store::{EntityKind, EntityRow, KeyFilter};

use crate::app::App;
use crate::entity_api::fields::{Field, Fields, apply, new_id, optional_id, query_id, required_ids};
use crate::entity_api::{admin, answer, rows, view};
use crate::mgmt::{ApiError, ApiResult, object};

pub(super) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/budget/new", post(new))
        .route("/budget/info", get(info).post(info_many))
        .route("/budget/update", post(update))
        .route("/budget/delete", post(delete))
        .route("/budget/list", get(list))
}

/// A tier's fields (LiteLLM's `BudgetNewRequest`).
const TIER: Fields = &[
    ("max_budget", Field::Money),
    ("soft_budget", Field::Money),
    ("budget_duration", Field::Duration),
    ("rpm_limit", Field::Count),
    ("tpm_limit", Field::Count),
    ("max_parallel_requests", Field::Count),
    ("model_max_budget", Field::Object),
];

async fn new(State(app): State<Arc<App>>, headers: HeaderMap, body: axum::body::Bytes) -> ApiResult {
    admin(&app, &headers).await?;
    let m = object(&body)?;
    let id = optional_id(&m, "budget_id")?.unwrap_or_else(new_id);
    let mut doc = Map::new();
    doc.insert("budget_id".into(), json!(id));
    apply(&mut doc, &m, &[TIER])?;
    let row = rows::create(&app, EntityRow::new(EntityKind::Budget, &id, doc), "budget_id").await?;
    answer(view::shown(&app, &row).await?)
}

async fn info(State(app): State<Arc<App>>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> ApiResult {
    admin(&app, &headers).await?;
    let id = query_id(&q, "budget_id")?;
    let row = rows::existing(&app, EntityKind::Budget, &id, "budget_id").await?;
    answer(view::shown(&app, &row).await?)
}

/// LiteLLM's form: the tiers of a list that exist.
async fn info_many(State(app): State<Arc<App>>, headers: HeaderMap, body: axum::body::Bytes) -> ApiResult {
    admin(&app, &headers).await?;
    let m = object(&body)?;
    let mut found = Vec::new();
    for id in required_ids(&m, "budgets")? {
        if let Some(row) = rows::get(&app, EntityKind::Budget, &id).await? {
            found.push(row);
        }
    }
    answer(json!(view::shown_all(&app, &found).await?))
}

/// The tier an update or delete names: LiteLLM's `budget_id` (update) or `id` (delete).
fn tier_id(m: &Map<String, serde_json::Value>) -> Result<String, ApiError> {
    match (optional_id(m, "budget_id")?, optional_id(m, "id")?) {
        (Some(id), _) | (None, Some(id)) => Ok(id),
        (None, None) => Err(ApiError::bad(
            "name the tier: {\"budget_id\": \"…\"}",
            Some("budget_id"),
        )),
    }
}

async fn update(State(app): State<Arc<App>>, headers: HeaderMap, body: axum::body::Bytes) -> ApiResult {
    admin(&app, &headers).await?;
    let m = object(&body)?;
    let id = tier_id(&m)?;
    let mut row = rows::existing(&app, EntityKind::Budget, &id, "budget_id").await?;
    apply(&mut row.doc, &m, &[TIER])?;
    rows::save(&app, &row).await?;
    answer(view::shown(&app, &row).await?)
}

/// What still names a tier, as `kind id` (at most a few, for the message).
async fn users_of(app: &App, id: &str) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::new();
    for kind in [
        EntityKind::User,
        EntityKind::Team,
        EntityKind::Organization,
        EntityKind::Customer,
        EntityKind::TeamMember,
    ] {
        for row in rows::all(app, kind, None).await? {
            if row.str("budget_id") == Some(id) {
                out.push(format!("{} {}", rows::noun(kind), row.id));
            }
        }
    }
    for key in rows::keys_of(app, KeyFilter::default()).await? {
        if key.budget_id.as_deref() == Some(id) {
            out.push(format!("key {}", key.key_alias.unwrap_or(key.key_name)));
        }
    }
    Ok(out)
}

async fn delete(State(app): State<Arc<App>>, headers: HeaderMap, body: axum::body::Bytes) -> ApiResult {
    admin(&app, &headers).await?;
    let m = object(&body)?;
    let id = tier_id(&m)?;
    let row = rows::existing(&app, EntityKind::Budget, &id, "id").await?;
    let users = users_of(&app, &id).await?;
    if !users.is_empty() {
        let shown: Vec<&str> = users.iter().take(5).map(String::as_str).collect();
        let more = users.len().saturating_sub(shown.len());
        return Err(ApiError::bad(
            format!(
                "budget `{id}` is still used by {}{}; give them another budget_id (or none) first",
                shown.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            ),
            Some("id"),
        ));
    }
    let shown = view::shown(&app, &row).await?;
    rows::remove(&app, EntityKind::Budget, vec![id]).await?;
    answer(shown)
}

async fn list(State(app): State<Arc<App>>, headers: HeaderMap) -> ApiResult {
    admin(&app, &headers).await?;
    let all = rows::all(&app, EntityKind::Budget, None).await?;
    answer(json!(view::shown_all(&app, &all).await?))
}
