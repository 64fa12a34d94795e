//! Organizations, which own teams: `POST /organization/new`, `GET /organization/info`
//! (LiteLLM's older `POST /organization/info` with `{"organizations": […]}` too),
//! `PATCH|POST /organization/update`, `DELETE|POST /organization/delete` (the organization's
//! teams go too, as in LiteLLM, and with them their keys), `GET /organization/list`.
//! An organization's budget fields are stored flat on it; LiteLLM's nested
//! `litellm_budget_table` is shown from them (or from the tier `budget_id` names).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use serde_json::{Map, Value, json};
use tollgate_store::{EntityKind, EntityRow};

use crate::app::App;
use crate::entity_api::fields::{
    ACCESS, BUDGET, Field, Fields, apply, new_id, optional_id, query_id, required_id, required_ids,
};
use crate::entity_api::team::{delete_teams, listed};
use crate::entity_api::{admin, answer, rows, view};
use crate::mgmt::{ApiError, ApiResult, object, opt_strings};

pub(super) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/organization/new", post(new))
        .route("/organization/info", get(info).post(info_many))
        .route("/organization/update", post(update).patch(update))
        .route("/organization/delete", post(delete).delete(delete))
        .route("/organization/list", get(list))
}

const ORGANIZATION: Fields = &[("organization_alias", Field::Text)];

async fn new(State(app): State<Arc<App>>, headers: HeaderMap, body: axum::body::Bytes) -> ApiResult {
    admin(&app, &headers).await?;
    let m = object(&body)?;
    // LiteLLM requires the alias.
    required_id(&m, "organization_alias")?;
    let id = optional_id(&m, "organization_id")?.unwrap_or_else(new_id);
    let mut doc = Map::new();
    doc.insert("organization_id".into(), json!(id));
    apply(&mut doc, &m, &[ORGANIZATION, ACCESS, BUDGET])?;
    rows::check_budget_ref(&app, &doc).await?;
    let org = rows::create(
        &app,
        EntityRow::new(EntityKind::Organization, &id, doc),
        "organization_id",
    )
    .await?;
    answer(view::shown(&app, &org).await?)
}

/// Organizations as LiteLLM's info and list show them: with their teams (and `members`, the
/// organization memberships tollgate does not keep: always empty).
async fn with_teams(app: &App, orgs: &[EntityRow]) -> Result<Vec<Map<String, Value>>, ApiError> {
    let mut shown = view::shown_all(app, orgs).await?;
    for (v, o) in shown.iter_mut().zip(orgs) {
        let teams = rows::all(app, EntityKind::Team, Some(o.id.clone())).await?;
        v.insert("teams".into(), json!(listed(app, &teams).await?));
        v.insert("members".into(), json!([]));
    }
    Ok(shown)
}

async fn info(State(app): State<Arc<App>>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> ApiResult {
    admin(&app, &headers).await?;
    let id = query_id(&q, "organization_id")?;
    let org = rows::existing(&app, EntityKind::Organization, &id, "organization_id").await?;
    answer(json!(with_teams(&app, &[org]).await?.pop()))
}

/// LiteLLM's older form: the organizations of a list that exist.
async fn info_many(State(app): State<Arc<App>>, headers: HeaderMap, body: axum::body::Bytes) -> ApiResult {
    admin(&app, &headers).await?;
    let m = object(&body)?;
    let ids = opt_strings(&m, "organizations", "organization ids")?
        .flatten()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::bad("name them: {\"organizations\": [\"…\"]}", Some("organizations")))?;
    let mut found = Vec::new();
    for id in &ids {
        if let Some(o) = rows::get(&app, EntityKind::Organization, id).await? {
            found.push(o);
        }
    }
    answer(json!(with_teams(&app, &found).await?))
}

async fn update(State(app): State<Arc<App>>, headers: HeaderMap, body: axum::body::Bytes) -> ApiResult {
    admin(&app, &headers).await?;
    let m = object(&body)?;
    let id = required_id(&m, "organization_id")?;
    let mut org = rows::existing(&app, EntityKind::Organization, &id, "organization_id").await?;
    apply(&mut org.doc, &m, &[ORGANIZATION, ACCESS, BUDGET])?;
    if m.get("budget_id").is_some_and(|v| !v.is_null()) {
        rows::check_budget_ref(&app, &org.doc).await?;
    }
    rows::save(&app, &org).await?;
    answer(json!(with_teams(&app, &[org]).await?.pop()))
}

async fn delete(State(app): State<Arc<App>>, headers: HeaderMap, body: axum::body::Bytes) -> ApiResult {
    admin(&app, &headers).await?;
    let m = object(&body)?;
    let ids = required_ids(&m, "organization_ids")?;
    let mut orgs = Vec::new();
    for id in &ids {
        orgs.push(rows::existing(&app, EntityKind::Organization, id, "organization_ids").await?);
    }
    // LiteLLM answers with the deleted organizations, as they were.
    let shown = with_teams(&app, &orgs).await?;
    for org in &orgs {
        let teams = rows::all(&app, EntityKind::Team, Some(org.id.clone())).await?;
        delete_teams(&app, teams).await?;
    }
    rows::remove(&app, EntityKind::Organization, ids).await?;
    answer(json!(shown))
}

async fn list(State(app): State<Arc<App>>, headers: HeaderMap) -> ApiResult {
    admin(&app, &headers).await?;
    let orgs = rows::all(&app, EntityKind::Organization, None).await?;
    answer(json!(with_teams(&app, &orgs).await?))
}
