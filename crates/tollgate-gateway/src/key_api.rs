//! LiteLLM's key management API, with its paths, fields and response shapes, so scripts written
//! against LiteLLM keep working: `/key/generate`, `/key/info`, `/key/list`, `/key/update`,
//! `/key/delete`, `/key/regenerate`, `/key/block`, `/key/unblock`.
//!
//! Only the master key manages keys; a virtual key may read its own `/key/info`. A key is named
//! in requests by its raw value or by its stored hash (an identifier here, never a credential).
//! Errors use LiteLLM's envelope: `{"error": {"message", "type", "param", "code": "<status>"}}`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tollgate_store::{EntityKind, KEY_SCOPE, KeyFilter, KeyRow, StoreError};

use crate::app::App;
use crate::keys::{Gathered, display_name, hash_key, is_token, new_raw_key};
// The duration readers moved to `mgmt`; the budget stage still names them here.
use crate::mgmt::{
    ApiError, ApiResult, DURATION_HELP, admin_for, blocking, blocking_settled, caller_of, object, opt_bool, opt_count,
    opt_duration, opt_map, opt_money, opt_string, opt_strings,
};
use crate::pipeline::authenticate::Caller;

/// The routes, to merge into the server's router.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/key/generate", post(generate))
        .route("/key/info", get(info))
        .route("/key/list", get(list))
        .route("/key/update", post(update))
        .route("/key/delete", post(delete))
        .route("/key/regenerate", post(regenerate))
        .route("/key/block", post(block))
        .route("/key/unblock", post(unblock))
}

/// The caller, who must hold the master key (or run without auth).
async fn admin(app: &App, headers: &HeaderMap) -> Result<Caller, ApiError> {
    admin_for(
        app,
        headers,
        "only the master key may manage keys; a virtual key may read its own GET /key/info",
    )
    .await
}

/// The stored token a request names: a raw key is hashed, a hash is taken as it is.
fn token_of(id: &str) -> String {
    if is_token(id) { id.to_string() } else { hash_key(id) }
}

use crate::periods::{duration_end, period};

/// Applies the fields present in `m` to `key` (generate and update share this: only what is
/// given changes).
fn apply(key: &mut KeyRow, m: &Map<String, Value>, now: DateTime<Utc>) -> Result<(), ApiError> {
    if let Some(a) = opt_string(m, "key_alias")? {
        key.key_alias = a.filter(|s| !s.is_empty());
    }
    if let Some(d) = opt_string(m, "duration")? {
        key.expires =
            match d {
                None => None,
                Some(d) => Some(duration_end(&d, now).ok_or_else(|| {
                    ApiError::bad(format!("`duration` {d:?} is not {DURATION_HELP}"), Some("duration"))
                })?),
            };
    }
    if let Some(v) = opt_strings(m, "models", "model names ([] = all)")? {
        key.models = v.unwrap_or_default();
    }
    if let Some(v) = opt_money(m, "max_budget")? {
        key.max_budget = v;
    }
    if let Some(v) = opt_money(m, "soft_budget")? {
        key.soft_budget = v;
    }
    if let Some(v) = opt_duration(m, "budget_duration")? {
        key.budget_duration = v;
    }
    for (k, slot) in [
        ("budget_id", &mut key.budget_id),
        ("user_id", &mut key.user_id),
        ("team_id", &mut key.team_id),
    ] {
        if let Some(v) = opt_string(m, k)? {
            *slot = v;
        }
    }
    for (k, slot) in [
        ("max_parallel_requests", &mut key.max_parallel_requests),
        ("tpm_limit", &mut key.tpm_limit),
        ("rpm_limit", &mut key.rpm_limit),
    ] {
        if let Some(v) = opt_count(m, k)? {
            *slot = v;
        }
    }
    for (k, slot) in [
        ("model_rpm_limit", &mut key.model_rpm_limit),
        ("model_tpm_limit", &mut key.model_tpm_limit),
        ("model_max_budget", &mut key.model_max_budget),
    ] {
        if let Some(v) = opt_map(m, k)? {
            *slot = v;
        }
    }
    if let Some(v) = opt_map(m, "metadata")? {
        key.metadata = v.unwrap_or_default();
    }
    if let Some(Some(b)) = opt_bool(m, "blocked")? {
        key.blocked = b;
    }
    Ok(())
}

/// The team and budget tier a request gives a key must exist (LiteLLM accepts unknown user ids,
/// so a `user_id` is taken as it is), and a key of a team with a model list may only ask for
/// some of the team's models.
async fn check_refs(app: &App, key: &KeyRow, given: &Map<String, Value>) -> Result<(), ApiError> {
    let names_team = given.get("team_id").is_some_and(|v| !v.is_null());
    if let Some(team_id) = key
        .team_id
        .clone()
        .filter(|_| names_team || given.contains_key("models"))
    {
        let id = team_id.clone();
        let team = blocking(app, move |s| Ok(s.get_entity(EntityKind::Team, &id)?)).await?;
        let Some(team) = team else {
            return Err(ApiError::bad(
                format!("team_id `{team_id}` does not exist; create the team with POST /team/new first"),
                Some("team_id"),
            ));
        };
        let allowed = team.models();
        let open = allowed.is_empty() || allowed.contains(&"all-proxy-models");
        let outside: Vec<&str> = key
            .models
            .iter()
            .map(String::as_str)
            .filter(|m| {
                !open && *m != "all-team-models" && !allowed.iter().any(|a| tollgate_store::model_allowed(a, m))
            })
            .collect();
        if !outside.is_empty() {
            return Err(ApiError::bad(
                format!(
                    "team `{team_id}` may use only {allowed:?}, so its keys may not ask for {outside:?}; \
                     ask for some of the team's models, or [] for all of them"
                ),
                Some("models"),
            ));
        }
    }
    if let Some(budget_id) = key
        .budget_id
        .clone()
        .filter(|_| given.get("budget_id").is_some_and(|v| !v.is_null()))
    {
        let id = budget_id.clone();
        if blocking(app, move |s| Ok(s.get_entity(EntityKind::Budget, &id)?))
            .await?
            .is_none()
        {
            return Err(ApiError::bad(
                format!("budget_id `{budget_id}` does not exist; create the tier with POST /budget/new first"),
                Some("budget_id"),
            ));
        }
    }
    Ok(())
}

/// A new key from a `/key/generate` body (also `/user/new`'s key): validated, references
/// checked, stored. Returns the row and the raw key, which exists only in this answer.
pub(crate) async fn create_key(app: &App, m: &Map<String, Value>) -> Result<(KeyRow, String), ApiError> {
    let now = Utc::now();
    let raw = match opt_string(m, "key")?.flatten() {
        Some(custom) if custom.starts_with("sk-") && custom.len() >= 8 => custom,
        Some(_) => {
            return Err(ApiError::bad(
                "a custom `key` must start with `sk-` and be at least 8 characters",
                Some("key"),
            ));
        }
        None => new_raw_key().map_err(|e| ApiError::from(StoreError::NotCommitted(format!("no randomness: {e}"))))?,
    };
    let mut key = KeyRow {
        token: hash_key(&raw),
        key_name: display_name(&raw),
        created_at: Some(now),
        updated_at: Some(now),
        ..KeyRow::default()
    };
    apply(&mut key, m, now)?;
    check_refs(app, &key, m).await?;
    let row = key.clone();
    blocking(app, move |s| s.create(&row)).await?;
    Ok((key, raw))
}

/// A key as the API shows it: the row, with the spend still being gathered added (`gathered`,
/// taken with the row's read; a key just made has none).
pub(crate) fn shown(app: &App, key: &KeyRow, gathered: &Gathered) -> Value {
    let mut v = serde_json::to_value(key).unwrap_or(Value::Null);
    let tz = app.live.load().config.budget_timezone;
    let current = key.budget_duration.as_deref().and_then(|d| period(d, Utc::now(), tz));
    // Spend stored for an earlier budget period no longer counts (the store resets it at the
    // next hold); what this instance gathered since belongs to the current one.
    let stale = current.is_some_and(|c| key.budget_window.is_some_and(|w| w < c.start));
    let stored = if stale { 0.0 } else { key.spend };
    if let Value::Object(m) = &mut v {
        m.insert("spend".into(), json!(stored + gathered.of(KEY_SCOPE, &key.token)));
        m.insert("token_id".into(), json!(key.token));
        m.insert(
            "budget_reset_at".into(),
            current.map_or(Value::Null, |c| json!(c.end.to_rfc3339())),
        );
    }
    v
}

async fn generate(State(app): State<Arc<App>>, headers: HeaderMap, body: axum::body::Bytes) -> ApiResult {
    let _admin = admin(&app, &headers).await?;
    let m = object(&body)?;
    let (key, raw) = create_key(&app, &m).await?;
    let mut v = shown(&app, &key, &Gathered::default());
    if let Value::Object(o) = &mut v {
        // The raw key, this once; from now on only its hash exists.
        o.insert("key".into(), json!(raw));
    }
    Ok(axum::Json(v).into_response())
}

#[derive(Deserialize)]
struct InfoQuery {
    key: Option<String>,
}

async fn info(State(app): State<Arc<App>>, headers: HeaderMap, Query(q): Query<InfoQuery>) -> ApiResult {
    let who = caller_of(&app, &headers).await?;
    let token = match (&q.key, &who.key) {
        (Some(k), _) => token_of(k),
        (None, Some(own)) => own.token.clone(),
        (None, None) => return Err(ApiError::bad("name the key: GET /key/info?key=sk-…", Some("key"))),
    };
    if let Some(own) = &who.key
        && own.token != token
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "auth_error",
            "a virtual key may read only its own /key/info",
        )
        .with_param("key"));
    }
    let t = token.clone();
    let (key, gathered) = blocking_settled(&app, move |s| Ok(s.get(&t)?)).await?;
    let key = key.ok_or_else(|| ApiError::not_found("no such key", "key"))?;
    Ok(axum::Json(json!({"key": q.key.unwrap_or(token), "info": shown(&app, &key, &gathered)})).into_response())
}

#[derive(Deserialize)]
struct ListQuery {
    page: Option<u32>,
    size: Option<u32>,
    user_id: Option<String>,
    team_id: Option<String>,
    key_alias: Option<String>,
    return_full_object: Option<bool>,
}

async fn list(State(app): State<Arc<App>>, headers: HeaderMap, Query(q): Query<ListQuery>) -> ApiResult {
    let _admin = admin(&app, &headers).await?;
    let page = q.page.unwrap_or(1).max(1);
    let size = q.size.unwrap_or(10).clamp(1, 100);
    let filter = KeyFilter {
        user_id: q.user_id,
        team_id: q.team_id,
        key_alias: q.key_alias,
    };
    let ((keys, total), gathered) = list_keys(&app, filter, page, size).await?;
    let items: Vec<Value> = if q.return_full_object.unwrap_or(false) {
        keys.iter().map(|k| shown(&app, k, &gathered)).collect()
    } else {
        keys.iter().map(|k| json!(k.token)).collect()
    };
    Ok(axum::Json(json!({
        "keys": items,
        "total_count": total,
        "current_page": page,
        "total_pages": total.div_ceil(u64::from(size)),
    }))
    .into_response())
}

/// One page of keys (1-based) and how many match, with the spend gathered for them; the API and
/// the dashboard both call it.
pub(crate) async fn list_keys(
    app: &App,
    filter: KeyFilter,
    page: u32,
    size: u32,
) -> Result<((Vec<KeyRow>, u64), Gathered), ApiError> {
    blocking_settled(app, move |s| Ok(s.list(&filter, page, size)?)).await
}

/// The named key's row, or 404.
async fn existing(app: &App, m: &Map<String, Value>) -> Result<KeyRow, ApiError> {
    let id = opt_string(m, "key")?
        .flatten()
        .ok_or_else(|| ApiError::bad("name the key: {\"key\": \"sk-…\"}", Some("key")))?;
    let token = token_of(&id);
    blocking(app, move |s| Ok(s.get(&token)?))
        .await?
        .ok_or_else(|| ApiError::not_found("no such key", "key"))
}

async fn update(State(app): State<Arc<App>>, headers: HeaderMap, body: axum::body::Bytes) -> ApiResult {
    let _admin = admin(&app, &headers).await?;
    let m = object(&body)?;
    let key = update_key(&app, &m).await?;
    Ok(axum::Json(shown_stored(&app, key).await?).into_response())
}

/// A key just changed, as the API shows it: re-read with its spend, which a request may have
/// added to meanwhile (the row is `key` itself if it is gone by now).
async fn shown_stored(app: &App, key: KeyRow) -> Result<Value, ApiError> {
    let token = key.token.clone();
    let (stored, gathered) = blocking_settled(app, move |s| Ok(s.get(&token)?)).await?;
    Ok(shown(app, &stored.unwrap_or(key), &gathered))
}

/// Changes the fields `m` gives of the key it names (`{"key": …, …}`), as `/key/update` does;
/// the API and the dashboard both call it.
pub(crate) async fn update_key(app: &App, m: &Map<String, Value>) -> Result<KeyRow, ApiError> {
    let mut key = existing(app, m).await?;
    let mut changes = m.clone();
    changes.remove("key");
    apply(&mut key, &changes, Utc::now())?;
    check_refs(app, &key, &changes).await?;
    key.updated_at = Some(Utc::now());
    store(app, &key).await?;
    Ok(key)
}

/// Writes a changed key and drops the cached copy requests authenticate against.
async fn store(app: &App, key: &KeyRow) -> Result<(), ApiError> {
    let row = key.clone();
    if !blocking(app, move |s| s.update(&row)).await? {
        return Err(ApiError::not_found("no such key", "key"));
    }
    app.keys.forget(&key.token);
    Ok(())
}

async fn set_blocked(app: Arc<App>, headers: HeaderMap, body: axum::body::Bytes, blocked: bool) -> ApiResult {
    let _admin = admin(&app, &headers).await?;
    let m = object(&body)?;
    let key = block_key(&app, &m, blocked).await?;
    Ok(axum::Json(shown_stored(&app, key).await?).into_response())
}

/// Blocks or unblocks the key `m` names (`{"key": …}`); the API and the dashboard both call it.
pub(crate) async fn block_key(app: &App, m: &Map<String, Value>, blocked: bool) -> Result<KeyRow, ApiError> {
    let mut key = existing(app, m).await?;
    key.blocked = blocked;
    key.updated_at = Some(Utc::now());
    store(app, &key).await?;
    Ok(key)
}

async fn block(State(app): State<Arc<App>>, headers: HeaderMap, body: axum::body::Bytes) -> ApiResult {
    set_blocked(app, headers, body, true).await
}

async fn unblock(State(app): State<Arc<App>>, headers: HeaderMap, body: axum::body::Bytes) -> ApiResult {
    set_blocked(app, headers, body, false).await
}

async fn delete(State(app): State<Arc<App>>, headers: HeaderMap, body: axum::body::Bytes) -> ApiResult {
    let _admin = admin(&app, &headers).await?;
    let m = object(&body)?;
    let names = delete_keys(&app, &m).await?;
    Ok(axum::Json(json!({"deleted_keys": names})).into_response())
}

/// Deletes the keys `m` names (`keys`: raw keys or hashes, `key_aliases`); returns the names
/// of those that existed. The API and the dashboard both call it.
pub(crate) async fn delete_keys(app: &App, m: &Map<String, Value>) -> Result<Vec<String>, ApiError> {
    let list = |k: &'static str| -> Result<Vec<String>, ApiError> {
        match m.get(k) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| ApiError::bad(format!("`{k}` must be a list of strings"), Some(k))),
            Some(other) => Err(ApiError::bad(
                format!("`{k}` must be a list of strings, got {other}"),
                Some(k),
            )),
        }
    };
    let keys = list("keys")?;
    let aliases = list("key_aliases")?;
    if keys.is_empty() && aliases.is_empty() {
        return Err(ApiError::bad(
            "name what to delete: {\"keys\": [\"sk-…\"]} or {\"key_aliases\": [\"ci\"]}",
            Some("keys"),
        ));
    }
    let (keys2, aliases2) = (keys.clone(), aliases.clone());
    let deleted = blocking(app, move |s| {
        let mut tokens: Vec<(String, String)> = keys2.iter().map(|k| (k.clone(), token_of(k))).collect();
        for a in &aliases2 {
            if let Some(row) = s.find_alias(a)? {
                tokens.push((a.clone(), row.token));
            }
        }
        let gone = s.delete(&tokens.iter().map(|(_, t)| t.clone()).collect::<Vec<_>>())?;
        Ok(tokens.into_iter().filter(|(_, t)| gone.contains(t)).collect::<Vec<_>>())
    })
    .await?;
    if deleted.is_empty() {
        return Err(ApiError::not_found("none of these keys exist", "key"));
    }
    for (_, t) in &deleted {
        app.keys.forget(t);
    }
    Ok(deleted.into_iter().map(|(given, _)| given).collect())
}

async fn regenerate(State(app): State<Arc<App>>, headers: HeaderMap, body: axum::body::Bytes) -> ApiResult {
    let _admin = admin(&app, &headers).await?;
    let m = object(&body)?;
    let (key, raw) = regenerate_key(&app, &m).await?;
    // Re-read: its spend includes what was written under the old token just now.
    let mut v = shown_stored(&app, key).await?;
    if let Value::Object(o) = &mut v {
        o.insert("key".into(), json!(raw));
    }
    Ok(axum::Json(v).into_response())
}

/// A new value for the key `m` names, as `/key/regenerate` makes it (with its `grace_period`
/// and field changes); returns the row as written (its spend as read before) and the raw key,
/// shown once. The API and the dashboard both call it.
pub(crate) async fn regenerate_key(app: &App, m: &Map<String, Value>) -> Result<(KeyRow, String), ApiError> {
    let old = existing(app, m).await?;
    let raw = match opt_string(m, "new_key")?.flatten() {
        Some(custom) if custom.starts_with("sk-") && custom.len() >= 8 => custom,
        Some(_) => {
            return Err(ApiError::bad(
                "`new_key` must start with `sk-` and be at least 8 characters",
                Some("new_key"),
            ));
        }
        None => new_raw_key().map_err(|e| ApiError::from(StoreError::NotCommitted(format!("no randomness: {e}"))))?,
    };
    let mut key = old.clone();
    key.token = hash_key(&raw);
    key.key_name = display_name(&raw);
    key.updated_at = Some(Utc::now());
    let mut changes = m.clone();
    for k in ["key", "new_key", "grace_period"] {
        changes.remove(k);
    }
    apply(&mut key, &changes, Utc::now())?;
    // `grace_period`: the old key keeps working for that long, so clients can be moved over
    // without an outage. Without one it stops at once.
    (key.previous_token, key.previous_token_expires) = match opt_string(m, "grace_period")?.flatten() {
        None => (None, None),
        Some(period) => match duration_end(&period, Utc::now()) {
            Some(until) => (Some(old.token.clone()), Some(until)),
            None => {
                return Err(ApiError::bad(
                    format!("`grace_period` must be {DURATION_HELP}, got `{period}`"),
                    Some("grace_period"),
                ));
            }
        },
    };
    check_refs(app, &key, &changes).await?;
    let (old_token, row) = (old.token.clone(), key.clone());
    // Spend still gathering under the old token is written first: once the row has the new
    // token, a write to the old one would find no row and the spend would be lost.
    let keys = Arc::clone(&app.keys);
    tokio::task::spawn_blocking(move || keys.flush())
        .await
        .map_err(|_| ApiError::from(StoreError::WriterGone))?;
    if !blocking(app, move |s| s.replace_token(&old_token, &row)).await? {
        return Err(ApiError::not_found("no such key", "key"));
    }
    app.keys.forget(&old.token);
    // The value the old row still honoured in its own grace period ends here too.
    if let Some(previous) = &old.previous_token {
        app.keys.forget(previous);
    }
    Ok((key, raw))
}
