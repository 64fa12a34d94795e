//! Teams: `POST /team/new`, `GET /team/info`, `POST /team/update`, `POST /team/delete` (the
//! team's keys and memberships go too, as in LiteLLM), `GET /team/list`, `POST /team/block`,
//! `POST /team/unblock`. A team's `organization_id` is also its row's parent, so an
//! organization lists its teams.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use serde_json::{Map, Value, json};
use tollgate_store::{EntityKind, EntityRow, KeyFilter};

use crate::app::App;
use crate::entity_api::fields::{
    ACCESS, BUDGET, Field, Fields, apply, new_id, optional_id, query_id, required_id, required_ids,
};
use crate::entity_api::membership::{self, members, members_in};
use crate::entity_api::{admin, answer, rows, view};
use crate::key_api::shown as key_shown;
use crate::mgmt::{ApiError, ApiResult, blocking, object};

pub(super) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/team/new", post(new))
        .route("/team/info", get(info))
        .route("/team/update", post(update))
        .route("/team/delete", post(delete))
        .route("/team/list", get(list))
        .route("/team/block", post(block))
        .route("/team/unblock", post(unblock))
}

/// A team's own fields; budgets, limits and model access come from `BUDGET` and `ACCESS`.
const TEAM: Fields = &[
    ("team_alias", Field::Text),
    ("organization_id", Field::Text),
    ("tags", Field::Names),
];

/// Applies a request's team fields; a new `organization_id` must name an organization and
/// becomes the row's parent.
async fn apply_team(app: &App, team: &mut EntityRow, m: &Map<String, Value>) -> Result<(), ApiError> {
    apply(&mut team.doc, m, &[TEAM, ACCESS, BUDGET])?;
    if m.get("organization_id").is_some() {
        team.parent = team.str("organization_id").map(str::to_string);
        if let Some(org) = &team.parent {
            rows::referenced(app, EntityKind::Organization, org, "organization_id").await?;
        }
    }
    if m.get("budget_id").is_some_and(|v| !v.is_null()) {
        rows::check_budget_ref(app, &team.doc).await?;
    }
    Ok(())
}

async fn new(State(app): State<Arc<App>>, headers: HeaderMap, body: axum::body::Bytes) -> ApiResult {
    admin(&app, &headers).await?;
    let team = create_team(&app, &object(&body)?).await?;
    answer(view::shown(&app, &team).await?)
}

/// A new team from a `/team/new` body, with its `members_with_roles` added; the API and the
/// dashboard both call it.
pub(crate) async fn create_team(app: &App, m: &Map<String, Value>) -> Result<EntityRow, ApiError> {
    let team_id = optional_id(m, "team_id")?.unwrap_or_else(new_id);
    let wanted = match m.get("members_with_roles") {
        None | Some(Value::Null) => Vec::new(),
        Some(v @ Value::Array(_)) => members_in(v, "members_with_roles")?,
        Some(other) => {
            return Err(ApiError::bad(
                format!("`members_with_roles` must be a list of {{\"user_id\", \"role\"}}, got {other}"),
                Some("members_with_roles"),
            ));
        }
    };
    let mut doc = Map::new();
    doc.insert("team_id".into(), json!(team_id));
    doc.insert("members_with_roles".into(), json!([]));
    let mut team = EntityRow::new(EntityKind::Team, &team_id, doc);
    apply_team(app, &mut team, m).await?;
    let mut team = rows::create(app, team, "team_id").await?;
    if !wanted.is_empty() {
        for w in &wanted {
            membership::add(app, &mut team, w, &Map::new()).await?;
        }
        rows::save(app, &team).await?;
    }
    Ok(team)
}

/// A team's keys as the API shows them.
async fn keys_of(app: &App, team_id: &str) -> Result<Vec<Value>, ApiError> {
    let filter = KeyFilter {
        team_id: Some(team_id.to_string()),
        ..KeyFilter::default()
    };
    let (keys, gathered) = rows::keys_with_spend(app, filter).await?;
    Ok(keys.iter().map(|k| key_shown(app, k, &gathered)).collect())
}

/// A team's membership rows as the API shows them (LiteLLM's `team_memberships`).
async fn memberships_of(app: &App, team_id: &str) -> Result<Vec<Map<String, Value>>, ApiError> {
    let rows = rows::all(app, EntityKind::TeamMember, Some(team_id.to_string())).await?;
    view::shown_all(app, &rows).await
}

async fn info(State(app): State<Arc<App>>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> ApiResult {
    admin(&app, &headers).await?;
    let team_id = query_id(&q, "team_id")?;
    let team = rows::existing(&app, EntityKind::Team, &team_id, "team_id").await?;
    let mut team_info = view::shown(&app, &team).await?;
    team_info.insert("team_member_budget_table".into(), Value::Null);
    answer(json!({
        "team_id": team_id,
        "team_info": team_info,
        "keys": keys_of(&app, &team_id).await?,
        "team_memberships": memberships_of(&app, &team_id).await?,
    }))
}

async fn update(State(app): State<Arc<App>>, headers: HeaderMap, body: axum::body::Bytes) -> ApiResult {
    admin(&app, &headers).await?;
    let team = update_team(&app, &object(&body)?).await?;
    answer(json!({"team_id": team.id, "data": view::shown(&app, &team).await?}))
}

/// Changes the fields a `/team/update` body gives of the team it names (members change through
/// the member functions); the API and the dashboard both call it.
pub(crate) async fn update_team(app: &App, m: &Map<String, Value>) -> Result<EntityRow, ApiError> {
    let team_id = required_id(m, "team_id")?;
    if m.contains_key("members_with_roles") {
        return Err(ApiError::bad(
            "members_with_roles changes with POST /team/member_add, /team/member_update and /team/member_delete",
            Some("members_with_roles"),
        ));
    }
    let mut team = rows::existing(app, EntityKind::Team, &team_id, "team_id").await?;
    apply_team(app, &mut team, m).await?;
    rows::save(app, &team).await?;
    Ok(team)
}

/// Deletes teams with their keys and memberships (organization deletion uses this too).
pub(super) async fn delete_teams(app: &App, teams: Vec<EntityRow>) -> Result<Vec<String>, ApiError> {
    for team in &teams {
        let filter = KeyFilter {
            team_id: Some(team.id.clone()),
            ..KeyFilter::default()
        };
        rows::remove_keys(app, &rows::keys_of(app, filter).await?).await?;
        let memberships = rows::all(app, EntityKind::TeamMember, Some(team.id.clone())).await?;
        let mut users: Vec<String> = memberships
            .iter()
            .filter_map(|r| r.str("user_id").map(str::to_string))
            .collect();
        users.extend(
            members(team)
                .iter()
                .filter_map(|m| m.get("user_id").and_then(Value::as_str).map(str::to_string)),
        );
        users.sort();
        users.dedup();
        for u in &users {
            membership::leave(app, u, &team.id).await?;
        }
        rows::remove(
            app,
            EntityKind::TeamMember,
            memberships.into_iter().map(|r| r.id).collect(),
        )
        .await?;
    }
    rows::remove(app, EntityKind::Team, teams.into_iter().map(|t| t.id).collect()).await
}

async fn delete(State(app): State<Arc<App>>, headers: HeaderMap, body: axum::body::Bytes) -> ApiResult {
    admin(&app, &headers).await?;
    let ids = delete_named_teams(&app, &object(&body)?).await?;
    answer(json!({"deleted_teams": ids}))
}

/// Deletes the teams a `/team/delete` body names (`team_ids`, every one must exist) with their
/// keys and memberships; returns the ids. The API and the dashboard both call it.
pub(crate) async fn delete_named_teams(app: &App, m: &Map<String, Value>) -> Result<Vec<String>, ApiError> {
    let ids = required_ids(m, "team_ids")?;
    let mut teams = Vec::new();
    for id in &ids {
        teams.push(rows::existing(app, EntityKind::Team, id, "team_ids").await?);
    }
    delete_teams(app, teams).await?;
    Ok(ids)
}

/// One page (1-based) of every team in creation order, as the API shows a team, and how many
/// there are: `/team/list` answers with all of them at once, the dashboard pages.
pub(crate) async fn teams_page(app: &App, page: u32, size: u32) -> Result<(Vec<Map<String, Value>>, u64), ApiError> {
    let (teams, total) = blocking(app, move |s| {
        Ok(s.list_entities(EntityKind::Team, None, page.max(1), size)?)
    })
    .await?;
    Ok((view::shown_all(app, &teams).await?, total))
}

/// Teams as `/team/list` and `/organization/info` show them: each with its memberships and keys.
pub(super) async fn listed(app: &App, teams: &[EntityRow]) -> Result<Vec<Map<String, Value>>, ApiError> {
    let mut shown = view::shown_all(app, teams).await?;
    for (v, t) in shown.iter_mut().zip(teams) {
        v.insert("team_memberships".into(), json!(memberships_of(app, &t.id).await?));
        v.insert("keys".into(), json!(keys_of(app, &t.id).await?));
    }
    Ok(shown)
}

async fn list(State(app): State<Arc<App>>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> ApiResult {
    admin(&app, &headers).await?;
    let org = q.get("organization_id").filter(|s| !s.is_empty()).cloned();
    let mut teams = match q.get("user_id").filter(|s| !s.is_empty()) {
        Some(user_id) => {
            let mut found = Vec::new();
            if let Some(user) = rows::get(&app, EntityKind::User, user_id).await? {
                for t in membership::user_teams(&user) {
                    if let Some(team) = rows::get(&app, EntityKind::Team, &t).await? {
                        found.push(team);
                    }
                }
            }
            found
        }
        None => rows::all(&app, EntityKind::Team, None).await?,
    };
    // LiteLLM: `default_organization` means teams in no organization.
    match org.as_deref() {
        None => {}
        Some("default_organization") => teams.retain(|t| t.parent.is_none()),
        Some(o) => teams.retain(|t| t.parent.as_deref() == Some(o)),
    }
    // LiteLLM sorts the list by alias.
    teams.sort_by(|a, b| a.str("team_alias").unwrap_or("").cmp(b.str("team_alias").unwrap_or("")));
    answer(json!(listed(&app, &teams).await?))
}

async fn set_blocked(app: Arc<App>, headers: HeaderMap, body: axum::body::Bytes, blocked: bool) -> ApiResult {
    admin(&app, &headers).await?;
    let team = block_team(&app, &object(&body)?, blocked).await?;
    answer(view::shown(&app, &team).await?)
}

/// Blocks or unblocks the team a body names (`team_id`): its keys are refused while it is
/// blocked. The API and the dashboard both call it.
pub(crate) async fn block_team(app: &App, m: &Map<String, Value>, blocked: bool) -> Result<EntityRow, ApiError> {
    let team_id = required_id(m, "team_id")?;
    let mut team = rows::existing(app, EntityKind::Team, &team_id, "team_id").await?;
    team.doc.insert("blocked".into(), json!(blocked));
    rows::save(app, &team).await?;
    Ok(team)
}

async fn block(State(app): State<Arc<App>>, headers: HeaderMap, body: axum::body::Bytes) -> ApiResult {
    set_blocked(app, headers, body, true).await
}

async fn unblock(State(app): State<Arc<App>>, headers: HeaderMap, body: axum::body::Bytes) -> ApiResult {
    set_blocked(app, headers, body, false).await
}
