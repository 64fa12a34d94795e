//! Team members: `POST /team/member_add` (`member`: one or a list, `max_budget_in_team`),
//! `POST /team/member_update` (role and budget in the team), `POST /team/member_delete`
//! (`user_id` or `user_email`). Besides LiteLLM's `max_budget_in_team`, a member's
//! `budget_duration` and `budget_id` (a tier) may be given; they are stored on the membership.

use std::collections::HashSet;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::{Map, Value, json};
use tollgate_store::{EntityKind, EntityRow};

use crate::app::App;
use crate::entity_api::fields::{Field, Fields, apply, optional_id, required_id};
use crate::entity_api::membership::{self, member_id, members, members_in, membership_id};
use crate::entity_api::{admin, answer, rows, view};
use crate::mgmt::{ApiError, ApiResult, object};

pub(super) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/team/member_add", post(member_add))
        .route("/team/member_update", post(member_update))
        .route("/team/member_delete", post(member_delete))
}

/// A member's budget in the team, as requests give it.
const IN_TEAM: Fields = &[
    ("max_budget_in_team", Field::Money),
    ("budget_duration", Field::Duration),
    ("budget_id", Field::Text),
];

/// A request's budget fields under the names the membership row stores them by.
async fn budget_in_team(app: &App, m: &Map<String, Value>) -> Result<Map<String, Value>, ApiError> {
    let mut given = Map::new();
    apply(&mut given, m, &[IN_TEAM])?;
    // `null` clears a field: keep the field, with null, so an update can tell.
    for (k, _) in IN_TEAM {
        if m.get(*k).is_some_and(Value::is_null) {
            given.insert(k.to_string(), Value::Null);
        }
    }
    if let Some(v) = given.remove("max_budget_in_team") {
        given.insert("max_budget".into(), v);
    }
    rows::check_budget_ref(app, &given).await?;
    Ok(given)
}

async fn member_add(State(app): State<Arc<App>>, headers: HeaderMap, body: axum::body::Bytes) -> ApiResult {
    admin(&app, &headers).await?;
    answer(add_members(&app, &object(&body)?).await?)
}

/// Adds the members a `/team/member_add` body names to its team (a user is made for one that
/// does not exist, as in LiteLLM); LiteLLM's answer. The API and the dashboard both call it.
pub(crate) async fn add_members(app: &App, m: &Map<String, Value>) -> Result<Map<String, Value>, ApiError> {
    let team_id = required_id(m, "team_id")?;
    let wanted = match m.get("member") {
        None | Some(Value::Null) => {
            return Err(ApiError::bad(
                "name the member: {\"member\": {\"user_id\": \"…\", \"role\": \"user\"}} (or a list of them)",
                Some("member"),
            ));
        }
        Some(v) => members_in(v, "member")?,
    };
    let mut seen = HashSet::new();
    if let Some(dup) = wanted
        .iter()
        .filter_map(|w| w.user_id.clone().or_else(|| w.user_email.clone()))
        .find(|u| !seen.insert(u.clone()))
    {
        return Err(ApiError::bad(
            format!("`{dup}` is listed twice in member"),
            Some("member"),
        ));
    }
    let budget = budget_in_team(app, m).await?;
    let mut team = rows::existing(app, EntityKind::Team, &team_id, "team_id").await?;
    let mut users = Vec::new();
    let mut memberships = Vec::new();
    for w in &wanted {
        let (user, membership) = membership::add(app, &mut team, w, &budget).await?;
        users.push(user);
        memberships.push(membership);
    }
    rows::save(app, &team).await?;
    // LiteLLM answers with the team and what changed.
    let mut out = view::shown(app, &team).await?;
    out.insert("updated_users".into(), json!(view::shown_all(app, &users).await?));
    out.insert(
        "updated_team_memberships".into(),
        json!(view::shown_all(app, &memberships).await?),
    );
    Ok(out)
}

/// The team and the id of the member a request names (404 for either).
async fn team_and_member(app: &App, m: &Map<String, Value>) -> Result<(EntityRow, String), ApiError> {
    let team_id = required_id(m, "team_id")?;
    let user_id = optional_id(m, "user_id")?;
    let user_email = optional_id(m, "user_email")?;
    if user_id.is_none() && user_email.is_none() {
        return Err(ApiError::bad(
            "name the member: {\"user_id\": \"…\"} or {\"user_email\": \"…\"}",
            Some("user_id"),
        ));
    }
    let team = rows::existing(app, EntityKind::Team, &team_id, "team_id").await?;
    let id = member_id(&team, user_id.as_deref(), user_email.as_deref()).ok_or_else(|| {
        let who = user_id.clone().or(user_email.clone()).unwrap_or_default();
        ApiError::not_found(
            format!("`{who}` is not a member of team `{team_id}`; add it with POST /team/member_add"),
            if user_id.is_some() { "user_id" } else { "user_email" },
        )
    })?;
    Ok((team, id))
}

async fn member_update(State(app): State<Arc<App>>, headers: HeaderMap, body: axum::body::Bytes) -> ApiResult {
    admin(&app, &headers).await?;
    let m = object(&body)?;
    let role = match m.get("role") {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) if r == "admin" || r == "user" => Some(r.clone()),
        Some(other) => {
            return Err(ApiError::bad(
                format!("`role` must be \"admin\" or \"user\", got {other}"),
                Some("role"),
            ));
        }
    };
    let budget = budget_in_team(&app, &m).await?;
    let (mut team, user_id) = team_and_member(&app, &m).await?;
    let id = membership_id(&team.id, &user_id);
    let mut row = match rows::get(&app, EntityKind::TeamMember, &id).await? {
        Some(row) => row,
        None => {
            // A member without a row (made before rows were kept): make it now.
            let mut doc = Map::new();
            doc.insert("team_id".into(), json!(team.id));
            doc.insert("user_id".into(), json!(user_id));
            let mut row = EntityRow::new(EntityKind::TeamMember, &id, doc);
            row.parent = Some(team.id.clone());
            rows::create(&app, row, "user_id").await?
        }
    };
    for (k, v) in budget {
        if v.is_null() {
            row.doc.remove(&k);
        } else {
            row.doc.insert(k, v);
        }
    }
    if let Some(r) = &role {
        row.doc.insert("role".into(), json!(r));
        let list: Vec<Value> = members(&team)
            .into_iter()
            .map(|mut mm| {
                if mm.get("user_id").and_then(Value::as_str) == Some(user_id.as_str()) {
                    mm.insert("role".into(), json!(r));
                }
                Value::Object(mm)
            })
            .collect();
        team.doc.insert("members_with_roles".into(), Value::Array(list));
        rows::save(&app, &team).await?;
    }
    rows::save(&app, &row).await?;
    let email = members(&team)
        .into_iter()
        .find(|mm| mm.get("user_id").and_then(Value::as_str) == Some(user_id.as_str()))
        .and_then(|mm| mm.get("user_email").cloned())
        .unwrap_or(Value::Null);
    answer(json!({
        "team_id": team.id,
        "user_id": user_id,
        "user_email": email,
        "max_budget_in_team": row.doc.get("max_budget").cloned().unwrap_or(Value::Null),
    }))
}

async fn member_delete(State(app): State<Arc<App>>, headers: HeaderMap, body: axum::body::Bytes) -> ApiResult {
    admin(&app, &headers).await?;
    let team = remove_member(&app, &object(&body)?).await?;
    answer(view::shown(&app, &team).await?)
}

/// Takes the member a `/team/member_delete` body names (`user_id` or `user_email`) out of its
/// team; the team as it is now. The API and the dashboard both call it.
pub(crate) async fn remove_member(app: &App, m: &Map<String, Value>) -> Result<EntityRow, ApiError> {
    let (mut team, user_id) = team_and_member(app, m).await?;
    membership::remove(app, &mut team, &user_id).await?;
    rows::save(app, &team).await?;
    Ok(team)
}
