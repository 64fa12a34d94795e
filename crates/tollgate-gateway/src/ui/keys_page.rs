//! The keys page (master key only): list a page at a time with each key's models, spend against
//! budget and limits; create (the raw key shown once), change the budget, change the rate limits
//! (`tpm_limit`, `rpm_limit`, `max_parallel_requests`), regenerate (the new value shown once),
//! block, unblock, delete. Every change goes through `key_api`'s own functions — the ones
//! `/key/*` runs — so the page and the API cannot drift apart.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tollgate_store::KeyFilter;

use super::dashboard::Dashboard;
use super::form::{self, Blank};
use super::guard::{self, Visit};
use super::pager::PageQuery;
use super::{limits, pager, view};
use crate::app::App;
use crate::key_api;

/// Keys per page.
const PAGE_SIZE: u32 = 100;

pub async fn list(
    State(app): State<Arc<App>>,
    Extension(dash): Extension<Arc<Dashboard>>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Response {
    let visit = match guard::admin_visit(&app, &dash.sessions, &headers, q.lang.as_deref()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    render(&app, &visit, q.page.unwrap_or(1), None, None).await
}

/// The page, with the key just created (shown once) or the error of the last change.
async fn render(app: &App, visit: &Visit, page: u32, new_key: Option<String>, error: Option<String>) -> Response {
    let mut ctx = visit.context("keys");
    let page = page.max(1);
    let ((keys, total), gathered) = match key_api::list_keys(app, KeyFilter::default(), page, PAGE_SIZE).await {
        Ok(k) => k,
        Err(e) => return view::message(ctx, e.status(), e.message()),
    };
    let lang = visit.lang;
    let rows: Vec<Value> = keys
        .iter()
        .map(|k| {
            let shown = key_api::shown(app, k, &gathered);
            json!({
                "token": k.token,
                "alias": k.key_alias,
                "name": k.key_name,
                "blocked": k.blocked,
                "limits": limits::cells(lang, &shown),
                "models": k.models,
                "created": k.created_at.map(|c| c.format("%Y-%m-%d %H:%M").to_string()),
            })
        })
        .collect();
    ctx.insert("keys".into(), json!(rows));
    ctx.insert("total".into(), json!(total));
    ctx.insert("pager".into(), pager::links("/ui/keys", page, PAGE_SIZE, total));
    ctx.insert("new_key".into(), json!(new_key));
    ctx.insert("error".into(), json!(error));
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    view::page(status, "keys.html", &ctx)
}

#[derive(Deserialize)]
pub struct CreateForm {
    csrf: Option<String>,
    alias: Option<String>,
    max_budget: Option<String>,
    models: Option<String>,
}

pub async fn create(
    State(app): State<Arc<App>>,
    Extension(dash): Extension<Arc<Dashboard>>,
    headers: HeaderMap,
    Form(f): Form<CreateForm>,
) -> Response {
    let visit = match guard::admin_change(&app, &dash.sessions, &headers, f.csrf.as_deref()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    // The form's fields as `/key/generate`'s body, so the API's own checks apply.
    let mut m = Map::new();
    form::text(&mut m, "key_alias", f.alias.as_deref(), Blank::Omit);
    if let Err(msg) = form::number(&mut m, "max_budget", f.max_budget.as_deref(), Blank::Omit) {
        return render(&app, &visit, 1, None, Some(msg)).await;
    }
    form::names(&mut m, "models", f.models.as_deref());
    match key_api::create_key(&app, &m).await {
        Ok((_, raw)) => render(&app, &visit, 1, Some(raw), None).await,
        Err(e) => render(&app, &visit, 1, None, Some(e.message().to_string())).await,
    }
}

#[derive(Deserialize)]
pub struct KeyForm {
    csrf: Option<String>,
    #[serde(default)]
    key: String,
    /// The budget form's value: empty removes the budget.
    max_budget: Option<String>,
    /// The limits form's values: empty removes a limit.
    tpm_limit: Option<String>,
    rpm_limit: Option<String>,
    max_parallel_requests: Option<String>,
}

async fn change(app: Arc<App>, dash: Arc<Dashboard>, headers: HeaderMap, f: KeyForm, what: Change) -> Response {
    let visit = match guard::admin_change(&app, &dash.sessions, &headers, f.csrf.as_deref()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut m = Map::new();
    m.insert("key".into(), json!(f.key));
    let done = match what {
        Change::Block(blocked) => key_api::block_key(&app, &m, blocked).await.map(|_| None),
        Change::Delete => {
            m.remove("key");
            m.insert("keys".into(), json!([f.key]));
            key_api::delete_keys(&app, &m).await.map(|_| None)
        }
        Change::Budget | Change::Limits => {
            let fields = match what {
                Change::Budget => vec![("max_budget", f.max_budget.as_deref().or(Some("")))],
                _ => vec![
                    ("tpm_limit", f.tpm_limit.as_deref()),
                    ("rpm_limit", f.rpm_limit.as_deref()),
                    ("max_parallel_requests", f.max_parallel_requests.as_deref()),
                ],
            };
            for (name, given) in fields {
                if let Err(msg) = form::number(&mut m, name, given, Blank::Clear) {
                    return render(&app, &visit, 1, None, Some(msg)).await;
                }
            }
            key_api::update_key(&app, &m).await.map(|_| None)
        }
        Change::Regenerate => key_api::regenerate_key(&app, &m).await.map(|(_, raw)| Some(raw)),
    };
    match done {
        Ok(None) => view::redirect("/ui/keys"),
        // The new value, shown this once.
        Ok(Some(raw)) => render(&app, &visit, 1, Some(raw), None).await,
        Err(e) => render(&app, &visit, 1, None, Some(e.message().to_string())).await,
    }
}

enum Change {
    Block(bool),
    Delete,
    Budget,
    Limits,
    Regenerate,
}

pub async fn block(
    State(app): State<Arc<App>>,
    Extension(dash): Extension<Arc<Dashboard>>,
    headers: HeaderMap,
    Form(form): Form<KeyForm>,
) -> Response {
    change(app, dash, headers, form, Change::Block(true)).await
}

pub async fn unblock(
    State(app): State<Arc<App>>,
    Extension(dash): Extension<Arc<Dashboard>>,
    headers: HeaderMap,
    Form(form): Form<KeyForm>,
) -> Response {
    change(app, dash, headers, form, Change::Block(false)).await
}

pub async fn delete(
    State(app): State<Arc<App>>,
    Extension(dash): Extension<Arc<Dashboard>>,
    headers: HeaderMap,
    Form(form): Form<KeyForm>,
) -> Response {
    change(app, dash, headers, form, Change::Delete).await
}

pub async fn budget(
    State(app): State<Arc<App>>,
    Extension(dash): Extension<Arc<Dashboard>>,
    headers: HeaderMap,
    Form(form): Form<KeyForm>,
) -> Response {
    change(app, dash, headers, form, Change::Budget).await
}

pub async fn set_limits(
    State(app): State<Arc<App>>,
    Extension(dash): Extension<Arc<Dashboard>>,
    headers: HeaderMap,
    Form(form): Form<KeyForm>,
) -> Response {
    change(app, dash, headers, form, Change::Limits).await
}

pub async fn regenerate(
    State(app): State<Arc<App>>,
    Extension(dash): Extension<Arc<Dashboard>>,
    headers: HeaderMap,
    Form(form): Form<KeyForm>,
) -> Response {
    change(app, dash, headers, form, Change::Regenerate).await
}
