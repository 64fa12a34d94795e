//! Users: `POST /user/new` (with a key for the user unless `auto_create_key` is false),
//! `GET /user/info`, `POST /user/update`, `POST /user/delete` (the user's keys and team
//! memberships go too, as in LiteLLM), `GET /user/list`.

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
    ACCESS, BUDGET, Field, Fields, apply, new_id, optional_id, paging, query_id, required_ids,
};
use crate::entity_api::membership::{self, Member, user_teams};
use crate::entity_api::{admin, answer, rows, view};
use crate::key_api::{create_key, shown as key_shown};
use crate::keys::Gathered;
use crate::mgmt::{ApiError, ApiResult, object, opt_bool, opt_money};

pub(super) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/user/new", post(new))
        .route("/user/info", get(info))
        .route("/user/update", post(update))
        .route("/user/delete", post(delete))
        .route("/user/list", get(list))
}

const ROLES: &[&str] = &[
    "proxy_admin",
    "proxy_admin_viewer",
    "internal_user",
    "internal_user_viewer",
];

/// A user's own fields; budgets, limits and model access come from `BUDGET` and `ACCESS`.
const USER: Fields = &[
    ("user_alias", Field::Text),
    ("user_email", Field::Text),
    ("user_role", Field::OneOf(ROLES)),
    ("sso_user_id", Field::Text),
];

/// The fields of a `/user/new` body that LiteLLM also gives the user's key. Its budget is the
/// user's, not the key's: LiteLLM leaves the key's `max_budget` and `budget_duration` unset.
const KEY_FIELDS: [&str; 11] = [
    "key_alias",
    "duration",
    "models",
    "team_id",
    "max_parallel_requests",
    "metadata",
    "tpm_limit",
    "rpm_limit",
    "model_max_budget",
    "budget_id",
    "blocked",
];

/// A team `/user/new` puts the user in: `"team-id"` or `{"team_id", "max_budget_in_team", "user_role"}`.
struct Joining {
    team: EntityRow,
    role: String,
    max_budget: Option<f64>,
}

async fn teams_to_join(app: &App, m: &Map<String, Value>) -> Result<Vec<Joining>, ApiError> {
    let mut wanted: Vec<(String, String, Option<f64>)> = Vec::new();
    match m.get("teams") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for t in items {
                match t {
                    Value::String(id) => wanted.push((id.clone(), "user".into(), None)),
                    Value::Object(o) => {
                        let id = o
                            .get("team_id")
                            .and_then(Value::as_str)
                            .ok_or_else(|| ApiError::bad("each of `teams` needs a `team_id`", Some("teams")))?;
                        let role = o.get("user_role").and_then(Value::as_str).unwrap_or("user");
                        if !["admin", "user"].contains(&role) {
                            return Err(ApiError::bad(
                                format!("a team's `user_role` must be \"admin\" or \"user\", got {role:?}"),
                                Some("teams"),
                            ));
                        }
                        let budget = opt_money(o, "max_budget_in_team")
                            .map_err(|_| {
                                ApiError::bad("`max_budget_in_team` must be dollars, 0 or more", Some("teams"))
                            })?
                            .flatten();
                        wanted.push((id.to_string(), role.to_string(), budget));
                    }
                    other => {
                        return Err(ApiError::bad(
                            format!("`teams` must list team ids or {{\"team_id\": …}} objects, got {other}"),
                            Some("teams"),
                        ));
                    }
                }
            }
        }
        Some(other) => {
            return Err(ApiError::bad(
                format!("`teams` must be a list, got {other}"),
                Some("teams"),
            ));
        }
    }
    // LiteLLM's older single `team_id` puts the user in that team as a member.
    if let Some(id) = optional_id(m, "team_id")?
        && !wanted.iter().any(|(t, _, _)| *t == id)
    {
        wanted.push((id, "user".into(), None));
    }
    let mut out = Vec::new();
    for (id, role, max_budget) in wanted {
        let param = if m.contains_key("teams") { "teams" } else { "team_id" };
        let team = rows::referenced(app, EntityKind::Team, &id, param).await?;
        out.push(Joining { team, role, max_budget });
    }
    Ok(out)
}

async fn new(State(app): State<Arc<App>>, headers: HeaderMap, body: axum::body::Bytes) -> ApiResult {
    admin(&app, &headers).await?;
    answer(create_user(&app, &object(&body)?).await?)
}

/// A new user from a `/user/new` body, with its key unless `auto_create_key` is false, and its
/// teams joined; LiteLLM's answer (`key` is the raw key, shown this once). The API and the
/// dashboard both call it.
pub(crate) async fn create_user(app: &App, m: &Map<String, Value>) -> Result<Map<String, Value>, ApiError> {
    let user_id = optional_id(m, "user_id")?.unwrap_or_else(new_id);
    let mut doc = Map::new();
    doc.insert("user_id".into(), json!(user_id));
    apply(&mut doc, m, &[USER, ACCESS, BUDGET])?;
    rows::check_budget_ref(app, &doc).await?;
    let joining = teams_to_join(app, m).await?;
    let auto_create_key = opt_bool(m, "auto_create_key")?.flatten().unwrap_or(true);
    if rows::get(app, EntityKind::User, &user_id).await?.is_some() {
        return Err(ApiError::bad(
            format!("user `{user_id}` already exists; choose another user_id, or change it with POST /user/update"),
            Some("user_id"),
        ));
    }
    // The key first: its fields may still be refused, and then nothing has been made.
    let key = if auto_create_key {
        let mut key_body: Map<String, Value> = KEY_FIELDS
            .iter()
            .filter_map(|k| m.get(*k).map(|v| (k.to_string(), v.clone())))
            .collect();
        key_body.insert("user_id".into(), json!(user_id));
        Some(create_key(app, &key_body).await?)
    } else {
        None
    };
    if let Err(e) = rows::create(app, EntityRow::new(EntityKind::User, &user_id, doc), "user_id").await {
        if let Some((k, _)) = &key {
            rows::remove_keys(app, std::slice::from_ref(k)).await?;
        }
        return Err(e);
    }
    let email = m.get("user_email").and_then(Value::as_str).map(str::to_string);
    for mut j in joining {
        let member = Member {
            user_id: Some(user_id.clone()),
            user_email: email.clone(),
            role: j.role,
        };
        let mut budget = Map::new();
        budget.insert("max_budget".into(), json!(j.max_budget));
        membership::add(app, &mut j.team, &member, &budget).await?;
        rows::save(app, &j.team).await?;
    }
    let user = rows::existing(app, EntityKind::User, &user_id, "user_id").await?;
    // LiteLLM answers with the key's fields and the user's over them; `key` is the raw key.
    let mut out = Map::new();
    if let Some((k, _)) = &key
        && let Value::Object(kv) = key_shown(app, k, &Gathered::default())
    {
        out.extend(kv.into_iter().filter(|(f, _)| f != "token" && f != "token_id"));
    }
    out.extend(view::shown(app, &user).await?);
    out.insert("key".into(), key.map_or(Value::Null, |(_, raw)| json!(raw)));
    Ok(out)
}

/// The user's keys as LiteLLM's `/user/info` lists them: each with its team's alias.
async fn keys_of(app: &App, user_id: &str) -> Result<Vec<Value>, ApiError> {
    let (keys, gathered) = rows::keys_with_spend(
        app,
        KeyFilter {
            user_id: Some(user_id.to_string()),
            ..KeyFilter::default()
        },
    )
    .await?;
    let mut aliases: HashMap<String, Value> = HashMap::new();
    let mut out = Vec::new();
    for k in &keys {
        let mut v = key_shown(app, k, &gathered);
        let alias = match &k.team_id {
            None => Value::Null,
            Some(t) => match aliases.get(t) {
                Some(a) => a.clone(),
                None => {
                    let a = rows::get(app, EntityKind::Team, t)
                        .await?
                        .and_then(|team| team.doc.get("team_alias").cloned())
                        .unwrap_or(Value::Null);
                    aliases.insert(t.clone(), a.clone());
                    a
                }
            },
        };
        if let Value::Object(o) = &mut v {
            o.insert("team_alias".into(), alias);
        }
        out.push(v);
    }
    Ok(out)
}

async fn info(State(app): State<Arc<App>>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> ApiResult {
    admin(&app, &headers).await?;
    let user_id = query_id(&q, "user_id")?;
    let user = rows::existing(&app, EntityKind::User, &user_id, "user_id").await?;
    let mut teams = Vec::new();
    for t in user_teams(&user) {
        if let Some(team) = rows::get(&app, EntityKind::Team, &t).await? {
            teams.push(team);
        }
    }
    let teams = view::shown_all(&app, &teams).await?;
    answer(json!({
        "user_id": user_id,
        "user_info": view::shown(&app, &user).await?,
        "keys": keys_of(&app, &user_id).await?,
        "teams": teams,
    }))
}

/// The user an update or delete names: `user_id`, else `user_email` (as LiteLLM allows).
async fn named(app: &App, m: &Map<String, Value>) -> Result<EntityRow, ApiError> {
    if let Some(id) = optional_id(m, "user_id")? {
        return rows::existing(app, EntityKind::User, &id, "user_id").await;
    }
    match optional_id(m, "user_email")? {
        Some(email) => rows::user_by_email(app, &email)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no user has the email {email:?}"), "user_email")),
        None => Err(ApiError::bad(
            "name the user: {\"user_id\": \"…\"} or {\"user_email\": \"…\"}",
            Some("user_id"),
        )),
    }
}

async fn update(State(app): State<Arc<App>>, headers: HeaderMap, body: axum::body::Bytes) -> ApiResult {
    admin(&app, &headers).await?;
    let user = update_user(&app, &object(&body)?).await?;
    answer(json!({"user_id": user.id, "data": view::shown(&app, &user).await?}))
}

/// Changes the fields a `/user/update` body gives of the user it names; the API and the
/// dashboard both call it.
pub(crate) async fn update_user(app: &App, m: &Map<String, Value>) -> Result<EntityRow, ApiError> {
    let mut user = named(app, m).await?;
    apply(&mut user.doc, m, &[USER, ACCESS, BUDGET])?;
    if m.get("budget_id").is_some_and(|v| !v.is_null()) {
        rows::check_budget_ref(app, &user.doc).await?;
    }
    rows::save(app, &user).await?;
    Ok(user)
}

async fn delete(State(app): State<Arc<App>>, headers: HeaderMap, body: axum::body::Bytes) -> ApiResult {
    admin(&app, &headers).await?;
    let gone = delete_users(&app, &object(&body)?).await?;
    // LiteLLM answers with the count its `delete_many` returns.
    answer(json!(gone.len()))
}

/// Deletes the users a `/user/delete` body names (`user_ids`), with their keys and team
/// memberships; returns the ids deleted. The API and the dashboard both call it.
pub(crate) async fn delete_users(app: &App, m: &Map<String, Value>) -> Result<Vec<String>, ApiError> {
    let ids = required_ids(m, "user_ids")?;
    // Every user must exist before anything is deleted.
    let mut users = Vec::new();
    for id in &ids {
        users.push(rows::existing(app, EntityKind::User, id, "user_ids").await?);
    }
    for user in &users {
        let keys = rows::keys_of(
            app,
            KeyFilter {
                user_id: Some(user.id.clone()),
                ..KeyFilter::default()
            },
        )
        .await?;
        rows::remove_keys(app, &keys).await?;
        for t in user_teams(user) {
            if let Some(mut team) = rows::get(app, EntityKind::Team, &t).await? {
                membership::remove(app, &mut team, &user.id).await?;
                rows::save(app, &team).await?;
            }
        }
    }
    rows::remove(app, EntityKind::User, ids).await
}

async fn list(State(app): State<Arc<App>>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> ApiResult {
    admin(&app, &headers).await?;
    let (page, size) = paging(&q, "page_size", 25)?;
    let ids = q.get("user_ids").map(String::as_str);
    let (shown, total) = list_users(&app, ids, page, size).await?;
    answer(json!({
        "users": shown,
        "total": total,
        "page": page,
        "page_size": size,
        "total_pages": total.div_ceil(u64::from(size)),
    }))
}

/// One page (1-based) of users as `/user/list` shows them, each with its `key_count`, and how
/// many there are; only those of `ids` (comma-separated) when given. The API and the dashboard
/// both call it.
pub(crate) async fn list_users(
    app: &App,
    ids: Option<&str>,
    page: u32,
    size: u32,
) -> Result<(Vec<Map<String, Value>>, u64), ApiError> {
    let (users, total) = match ids.filter(|s| !s.is_empty()) {
        Some(ids) => {
            let mut found = Vec::new();
            for id in ids.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                if let Some(u) = rows::get(app, EntityKind::User, id).await? {
                    found.push(u);
                }
            }
            let total = found.len() as u64;
            let start = (page.saturating_sub(1) as usize).saturating_mul(size as usize);
            (found.into_iter().skip(start).take(size as usize).collect(), total)
        }
        None => crate::mgmt::blocking(app, move |s| Ok(s.list_entities(EntityKind::User, None, page, size)?)).await?,
    };
    let mut shown = view::shown_all(app, &users).await?;
    for (v, u) in shown.iter_mut().zip(&users) {
        let filter = KeyFilter {
            user_id: Some(u.id.clone()),
            ..KeyFilter::default()
        };
        v.insert("key_count".into(), json!(rows::key_count(app, filter).await?));
    }
    Ok((shown, total))
}
