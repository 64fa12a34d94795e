//! LiteLLM's spend endpoints over tollgate's records: `GET /spend/logs`, `GET /global/spend`,
//! `GET /global/spend/keys`, `GET /global/spend/models`, `GET /global/spend/teams`. Master key
//! only. With a shared store they read Postgres (every instance's records, shipped within a
//! fraction of a second); otherwise this instance's SQLite.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use tollgate_core::Record;
use tollgate_store::{PostgresStore, RecordStore, StoreError, TimeRange};

use crate::app::App;
use crate::keys::{hash_key, is_token};
use crate::mgmt::{ApiError, admin_for};

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/spend/logs", get(spend_logs))
        .route("/global/spend", get(global_spend))
        .route("/global/spend/keys", get(global_keys))
        .route("/global/spend/models", get(global_models))
        .route("/global/spend/teams", get(global_teams))
}

type SpendError = ApiError;

fn error(status: StatusCode, kind: &'static str, message: String) -> SpendError {
    ApiError::new(status, kind, message)
}

/// Per day: spend, and spend per model and per user.
type Daily = BTreeMap<String, (f64, BTreeMap<String, f64>, BTreeMap<String, f64>)>;

async fn admin(app: &App, headers: &HeaderMap) -> Result<(), SpendError> {
    admin_for(
        app,
        headers,
        "only the master key may read spend for the whole gateway; a key reads its own with GET /key/info",
    )
    .await
    .map(|_| ())
}

/// `YYYY-MM-DD` (LiteLLM's format) or RFC 3339; a date is its midnight UTC.
fn parse_bound(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        })
}

/// Every record in `range` that `keep` accepts, from the shared store or the local one.
async fn records(
    app: &Arc<App>,
    range: TimeRange,
    keep: impl Fn(&Record) -> bool + Send + 'static,
) -> Result<Vec<Record>, SpendError> {
    let shared = app.store.shared.as_ref().map(|s| s.target.clone());
    let data_dir = app.store.data_dir.clone();
    let read = tokio::task::spawn_blocking(move || -> Result<Vec<Record>, StoreError> {
        let mut out = Vec::new();
        // Rollups summarise their steps' records: counting both would count the cost twice.
        let mut sink = |r: Record| {
            if !r.rollup && keep(&r) {
                out.push(r);
            }
            true
        };
        match shared {
            Some(target) => {
                PostgresStore::open_read_only(&target)?.read(range, &mut sink)?;
            }
            None => {
                for r in tollgate_store::read_sqlite(&data_dir)? {
                    let r = r?;
                    if range.contains(r.start_time) {
                        sink(r);
                    }
                }
            }
        }
        Ok(out)
    })
    .await;
    match read {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "internal_server_error",
            format!("cannot read the records ({e}); retry shortly"),
        )),
        Err(_) => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_server_error",
            "reading the records failed".into(),
        )),
    }
}

#[derive(Deserialize, Default)]
struct SpendQuery {
    api_key: Option<String>,
    user_id: Option<String>,
    request_id: Option<String>,
    start_date: Option<String>,
    end_date: Option<String>,
    summarize: Option<bool>,
    limit: Option<usize>,
}

impl SpendQuery {
    fn range(&self) -> Result<TimeRange, SpendError> {
        let bound = |v: &Option<String>, name: &str| -> Result<Option<DateTime<Utc>>, SpendError> {
            match v {
                None => Ok(None),
                Some(s) => parse_bound(s).map(Some).ok_or_else(|| {
                    error(
                        StatusCode::BAD_REQUEST,
                        "bad_request_error",
                        format!("`{name}` {s:?} is not a date: send YYYY-MM-DD or an RFC 3339 time"),
                    )
                }),
            }
        };
        let since = bound(&self.start_date, "start_date")?;
        // LiteLLM's end_date is a day, inclusive.
        let until = bound(&self.end_date, "end_date")?.map(|t| {
            if self.end_date.as_deref().is_some_and(|s| s.len() == 10) {
                t + chrono::Duration::days(1)
            } else {
                t
            }
        });
        Ok(TimeRange { since, until })
    }
}

/// A record as a row of LiteLLM's `LiteLLM_SpendLogs`.
fn spend_log(r: &Record) -> Value {
    json!({
        "request_id": r.request_id,
        "api_key": r.key_hash,
        "key_alias": r.key_alias,
        "spend": r.cost_usd.unwrap_or(0.0),
        "startTime": r.start_time.to_rfc3339(),
        "endTime": r.end_time.to_rfc3339(),
        "model": r.model,
        "model_group": r.model_group,
        "custom_llm_provider": r.provider,
        "user": r.user_id,
        "team_id": r.team_id,
        "total_tokens": r.total_tokens(),
        "prompt_tokens": r.prompt_tokens,
        "completion_tokens": r.completion_tokens,
        "cache_hit": r.cache.as_str() == "hit",
        "status": if r.status == tollgate_core::RecordStatus::Success { "success" } else { "failure" },
        "session_id": r.session_id,
    })
}

async fn spend_logs(State(app): State<Arc<App>>, headers: HeaderMap, Query(q): Query<SpendQuery>) -> Response {
    if let Err(r) = admin(&app, &headers).await {
        return r.into_response();
    }
    let range = match q.range() {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    // A key is named by its raw value or its hash; records carry the hash's first 16 digits.
    let key_prefix = q.api_key.as_deref().map(|k| {
        let token = if is_token(k) { k.to_string() } else { hash_key(k) };
        token.chars().take(16).collect::<String>()
    });
    let (user, request_id) = (q.user_id.clone(), q.request_id.clone());
    let rows = match records(&app, range, move |r| {
        key_prefix.as_deref().is_none_or(|p| r.key_hash.as_deref() == Some(p))
            && user.as_deref().is_none_or(|u| r.user_id.as_deref() == Some(u))
            && request_id.as_deref().is_none_or(|id| r.request_id == id)
    })
    .await
    {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    if q.summarize.unwrap_or(false) {
        // Per day: spend, and spend per model and per user (LiteLLM's summarised shape).
        let mut days = Daily::new();
        for r in &rows {
            let cost = r.cost_usd.unwrap_or(0.0);
            let day = days.entry(r.start_time.format("%Y-%m-%d").to_string()).or_default();
            day.0 += cost;
            *day.1.entry(r.model_group.clone()).or_default() += cost;
            *day.2.entry(r.user_id.clone().unwrap_or_default()).or_default() += cost;
        }
        let out: Vec<Value> = days
            .into_iter()
            .map(
                |(d, (spend, models, users))| json!({"startTime": d, "spend": spend, "models": models, "users": users}),
            )
            .collect();
        return axum::Json(out).into_response();
    }
    let limit = q.limit.unwrap_or(1000);
    let out: Vec<Value> = rows.iter().rev().take(limit).map(spend_log).collect();
    axum::Json(out).into_response()
}

async fn all_records(app: &Arc<App>, headers: &HeaderMap, q: &SpendQuery) -> Result<Vec<Record>, SpendError> {
    admin(app, headers).await?;
    let range = q.range()?;
    records(app, range, |_| true).await
}

/// Sums cost by `group`, largest first, at most `limit`.
fn ranked(rows: &[Record], limit: usize, group: impl Fn(&Record) -> Option<String>) -> Vec<(String, f64)> {
    let mut by: BTreeMap<String, f64> = BTreeMap::new();
    for r in rows {
        if let Some(g) = group(r) {
            *by.entry(g).or_default() += r.cost_usd.unwrap_or(0.0);
        }
    }
    let mut v: Vec<(String, f64)> = by.into_iter().collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(limit);
    v
}

async fn global_spend(State(app): State<Arc<App>>, headers: HeaderMap, Query(q): Query<SpendQuery>) -> Response {
    match all_records(&app, &headers, &q).await {
        Ok(rows) => {
            let spend: f64 = rows.iter().filter_map(|r| r.cost_usd).sum();
            axum::Json(json!({"spend": spend, "max_budget": null})).into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn global_keys(State(app): State<Arc<App>>, headers: HeaderMap, Query(q): Query<SpendQuery>) -> Response {
    match all_records(&app, &headers, &q).await {
        Ok(rows) => {
            let mut alias_of: BTreeMap<String, Option<String>> = BTreeMap::new();
            for r in &rows {
                if let Some(h) = &r.key_hash {
                    alias_of.insert(h.clone(), r.key_alias.clone());
                }
            }
            let out: Vec<Value> = ranked(&rows, q.limit.unwrap_or(10), |r| r.key_hash.clone())
                .into_iter()
                .map(|(k, s)| json!({"api_key": k, "key_alias": alias_of.get(&k).cloned().flatten(), "total_spend": s}))
                .collect();
            axum::Json(out).into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn global_models(State(app): State<Arc<App>>, headers: HeaderMap, Query(q): Query<SpendQuery>) -> Response {
    match all_records(&app, &headers, &q).await {
        Ok(rows) => {
            let out: Vec<Value> = ranked(&rows, q.limit.unwrap_or(10), |r| Some(r.model_group.clone()))
                .into_iter()
                .map(|(m, s)| json!({"model": m, "total_spend": s}))
                .collect();
            axum::Json(out).into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn global_teams(State(app): State<Arc<App>>, headers: HeaderMap, Query(q): Query<SpendQuery>) -> Response {
    match all_records(&app, &headers, &q).await {
        Ok(rows) => {
            let teams: Vec<Value> = ranked(&rows, q.limit.unwrap_or(100), |r| r.team_id.clone())
                .into_iter()
                .map(|(t, s)| json!({"team_id": t, "total_spend": s}))
                .collect();
            axum::Json(json!({"teams": teams})).into_response()
        }
        Err(e) => e.into_response(),
    }
}
