//! The log view: records newest first, filtered by model, key, status, cache state and request
//! id, a page at a time (keyset pagination through the store's `query`), and one request's page
//! with its usage buckets, cost per bucket, latency split and every attempt. A virtual key's
//! session sees only its own records: the key filter is forced, not offered. With a shared
//! store the pages list every instance's records (the dashboard reads Postgres, `dashboard.rs`)
//! and say so.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use tollgate_core::{CacheState, Record, RecordStatus};
use tollgate_report::Lang;
use tollgate_store::{RecordCursor, RecordPage, RecordQuery};

use super::chart;
use super::dashboard::{Dashboard, LogSource};
use super::guard::{self, Visit};
use super::session::Viewer;
use super::view;
use crate::app::App;

const PAGE_SIZE: usize = 50;

#[derive(Deserialize, Default)]
pub struct LogQuery {
    model: Option<String>,
    key: Option<String>,
    status: Option<String>,
    cache: Option<String>,
    q: Option<String>,
    session: Option<String>,
    workflow: Option<String>,
    user: Option<String>,
    team: Option<String>,
    after: Option<String>,
    lang: Option<String>,
}

fn given(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn cache_state(s: &str) -> Option<CacheState> {
    [
        CacheState::Off,
        CacheState::Miss,
        CacheState::Hit,
        CacheState::Bypass,
        CacheState::Unknown,
    ]
    .into_iter()
    .find(|c| c.as_str() == s)
}

/// The store query a visit may run: a virtual key's own records whatever the form says.
fn restrict(visit: &Visit, mut query: RecordQuery) -> RecordQuery {
    if let Viewer::Key { hash16, .. } = visit.viewer() {
        query.key_hash = Some(hash16.clone());
        query.key_alias = None;
    }
    query
}

/// One page from the store the dashboard reads, off the async workers; an error as the status
/// and text the page shows.
async fn fetch(app: &Arc<App>, dash: &Arc<Dashboard>, query: RecordQuery) -> Result<RecordPage, (StatusCode, String)> {
    let (app, dash) = (Arc::clone(app), Arc::clone(dash));
    match tokio::task::spawn_blocking(move || dash.query(&app.store, &query)).await {
        Ok(Ok(page)) => Ok(page),
        Ok(Err(e)) => Err((StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
        Err(e) => Err((StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

/// [`fetch`], with a request id searched for as a whole id first: an id pasted whole (the usual
/// search) is then one index lookup, where a part of an id has to be looked for in every record
/// newer than the first page's worth of matches (all of them, when few or none match). Request ids
/// are UUIDs, so a whole one is part of no other.
async fn search(app: &Arc<App>, dash: &Arc<Dashboard>, query: RecordQuery) -> Result<RecordPage, (StatusCode, String)> {
    if let (Some(id), None) = (&query.request_id, &query.after) {
        let whole = RecordQuery {
            exact_request_id: Some(id.clone()),
            request_id: None,
            ..query.clone()
        };
        let page = fetch(app, dash, whole).await?;
        if !page.records.is_empty() {
            return Ok(page);
        }
    }
    fetch(app, dash, query).await
}

/// The log pages' template context: the visit's, and which store the records come from.
fn context(visit: &Visit, app: &App) -> serde_json::Map<String, Value> {
    let mut ctx = visit.context("logs");
    let source = ctx["t"][LogSource::of(&app.store).phrase()].clone();
    ctx.insert("record_source".into(), source);
    ctx
}

pub async fn list(
    State(app): State<Arc<App>>,
    Extension(dash): Extension<Arc<Dashboard>>,
    headers: HeaderMap,
    Query(q): Query<LogQuery>,
) -> Response {
    let visit = match guard::visit(&app, &dash.sessions, &headers, q.lang.as_deref()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let query = restrict(
        &visit,
        RecordQuery {
            model_group: given(&q.model),
            key_alias: given(&q.key),
            status: match given(&q.status).as_deref() {
                Some("success") => Some(RecordStatus::Success),
                Some("failure") => Some(RecordStatus::Failure),
                _ => None,
            },
            cache: given(&q.cache).as_deref().and_then(cache_state),
            request_id: given(&q.q),
            session_id: given(&q.session),
            workflow: given(&q.workflow),
            user_id: given(&q.user),
            team_id: given(&q.team),
            after: given(&q.after).as_deref().and_then(RecordCursor::parse),
            limit: PAGE_SIZE,
            ..RecordQuery::default()
        },
    );
    let found = search(&app, &dash, query).await;
    let mut ctx = context(&visit, &app);
    let page = match found {
        Ok(p) => p,
        Err((status, text)) => return view::message(ctx, status, &text),
    };
    let rows: Vec<Value> = page.records.iter().map(|r| row(r, visit.lang)).collect();
    // The filters as given, so the next page keeps them.
    let filters = json!({
        "model": given(&q.model), "key": given(&q.key), "status": given(&q.status),
        "cache": given(&q.cache), "q": given(&q.q), "session": given(&q.session),
        "workflow": given(&q.workflow), "user": given(&q.user), "team": given(&q.team),
    });
    let mut next_params: Vec<(String, String)> = [
        "model", "key", "status", "cache", "q", "session", "workflow", "user", "team",
    ]
    .iter()
    .filter_map(|k| filters[*k].as_str().map(|v| (k.to_string(), v.to_string())))
    .collect();
    let next = page.next.map(|c| {
        next_params.push(("after".into(), c.token()));
        format!("/ui/logs?{}", encode(&next_params))
    });
    let live = app.live.load();
    ctx.insert("models".into(), json!(live.group_order));
    let workflows: Vec<&str> = live.config.workflows.iter().map(|w| w.name.as_str()).collect();
    ctx.insert("workflows".into(), json!(workflows));
    ctx.insert("filters".into(), filters);
    ctx.insert("rows".into(), json!(rows));
    ctx.insert("next".into(), json!(next));
    ctx.insert("paged".into(), json!(q.after.is_some()));
    view::page(StatusCode::OK, "logs.html", &ctx)
}

fn encode(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{k}={}", view::percent(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn row(r: &Record, lang: Lang) -> Value {
    json!({
        "time": r.start_time.format("%Y-%m-%d %H:%M:%S").to_string(),
        "request_id": r.request_id,
        "link": format!("/ui/logs/{}", view::percent(&r.request_id)),
        "model": r.model_group,
        "key": r.key_alias,
        "status": if r.status == RecordStatus::Success { "success" } else { "failure" },
        "http_status": r.http_status,
        "cache": r.cache.as_str(),
        "tokens": lang.int(r.total_tokens()),
        "cost": r.cost_usd.map_or_else(|| lang.na().to_string(), |c| lang.usd(c)),
        "latency": lang.ms(r.latency_ms),
        "attempt": r.attempt,
        "step": r.step_role,
    })
}

pub async fn detail(
    State(app): State<Arc<App>>,
    Extension(dash): Extension<Arc<Dashboard>>,
    headers: HeaderMap,
    Path(request_id): Path<String>,
    Query(q): Query<LogQuery>,
) -> Response {
    let visit = match guard::visit(&app, &dash.sessions, &headers, q.lang.as_deref()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let query = restrict(
        &visit,
        RecordQuery {
            exact_request_id: Some(request_id.clone()),
            limit: tollgate_store::MAX_PAGE,
            ..RecordQuery::default()
        },
    );
    let found = fetch(&app, &dash, query).await;
    let mut ctx = context(&visit, &app);
    let mut attempts: Vec<Record> = match found {
        Ok(p) => p.records.into_iter().filter(|r| r.request_id == request_id).collect(),
        Err((status, text)) => return view::message(ctx, status, &text),
    };
    if attempts.is_empty() {
        let text = ctx["t"]["not_found"].as_str().unwrap_or_default().to_string();
        return view::message(ctx, StatusCode::NOT_FOUND, &text);
    }
    attempts.sort_by_key(|r| (r.attempt.unwrap_or(0), r.start_time));
    let lang = visit.lang;
    // A workflow run: its steps are the other records of its trace.
    let steps = match attempts.iter().find(|r| r.rollup) {
        Some(run) => {
            let query = restrict(
                &visit,
                RecordQuery {
                    trace_id: Some(run.trace_id.clone()),
                    limit: tollgate_store::MAX_PAGE,
                    ..RecordQuery::default()
                },
            );
            match fetch(&app, &dash, query).await {
                Ok(p) => p.records.into_iter().filter(|r| !r.rollup).collect(),
                Err(_) => Vec::new(),
            }
        }
        None => Vec::new(),
    };
    let shown: Vec<Value> = attempts.iter().map(|r| attempt(r, lang)).collect();
    ctx.insert("request_id".into(), json!(request_id));
    ctx.insert("attempts".into(), json!(shown));
    if !steps.is_empty() {
        let (rows, svg) = workflow_steps(steps, lang);
        ctx.insert("steps".into(), json!(rows));
        ctx.insert("timeline".into(), json!(svg));
    }
    view::page(StatusCode::OK, "record.html", &ctx)
}

/// A run's steps in order, as rows and as a timeline.
fn workflow_steps(mut steps: Vec<Record>, lang: Lang) -> (Vec<Value>, String) {
    steps.sort_by_key(|r| (r.start_time, r.step_index, r.attempt));
    let start = steps.first().map(|r| r.start_time);
    let spans: Vec<chart::Span> = steps
        .iter()
        .map(|r| chart::Span {
            label: format!(
                "{} {}",
                r.step_index.map(|i| (i + 1).to_string()).unwrap_or_default(),
                r.step_role.as_deref().unwrap_or(&r.model_group)
            ),
            offset_ms: start.map_or(0.0, |s| {
                (r.start_time - s).num_microseconds().unwrap_or(0) as f64 / 1000.0
            }),
            duration_ms: r.latency_ms,
            failed: r.status != RecordStatus::Success,
        })
        .collect();
    let rows = steps.iter().map(|r| row(r, lang)).collect();
    (rows, chart::timeline(&spans))
}

/// One attempt (or the request's own record): buckets with their cost, the latency split.
fn attempt(r: &Record, lang: Lang) -> Value {
    let u = r.usage();
    let usd = |c: Option<f64>| c.map_or_else(|| lang.na().to_string(), |c| lang.usd(c));
    let ms = |v: Option<f64>| v.map_or_else(|| lang.na().to_string(), |v| lang.ms(v));
    json!({
        "row": row(r, lang),
        "provider": r.provider,
        "upstream_model": r.model,
        "buckets": [
            {"name": "input", "tokens": lang.int(u.input), "cost": usd(r.cost_input_usd)},
            {"name": "cache_read", "tokens": lang.int(u.cache_read), "cost": usd(r.cost_cache_read_usd)},
            {"name": "cache_write", "tokens": lang.int(u.cache_write), "cost": usd(r.cost_cache_write_usd)},
            {"name": "output", "tokens": lang.int(u.output), "cost": usd(r.cost_output_usd)},
            {"name": "reasoning", "tokens": lang.int(u.reasoning), "cost": usd(r.cost_reasoning_usd)},
        ],
        "total_cost": usd(r.cost_usd),
        "latency": ms(Some(r.latency_ms)),
        "ttft": ms(r.ttft_ms),
        "upstream": ms(r.upstream_ms),
        "overhead": ms(r.overhead_ms),
        "error": r.error_message,
        "error_type": r.error_type,
        "workflow": r.workflow,
    })
}
