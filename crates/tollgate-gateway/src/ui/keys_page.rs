//! The keys page (master key only): list, create (the raw key shown once), change the budget,
//! regenerate (the new value shown once), block, unblock, delete. Every change goes through `key_api`'s own functions — the ones `/key/*` runs — so
//! the page and the API cannot drift apart.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tollgate_store::KeyFilter;

use super::dashboard::Dashboard;
use super::guard::{self, Visit};
use super::view;
use crate::app::App;
use crate::key_api;

#[derive(Deserialize, Default)]
pub struct KeysQuery {
    page: Option<u32>,
    lang: Option<String>,
}

/// An admin visit, or the answer to send instead (sign-in redirect, 403).
async fn admin_visit(app: &App, dash: &Dashboard, headers: &HeaderMap, lang: Option<&str>) -> Result<Visit, Response> {
    let visit = guard::visit(app, &dash.sessions, headers, lang).await?;
    match visit.refusal_unless_admin() {
        Some(refused) => Err(refused),
        None => Ok(visit),
    }
}

pub async fn list(
    State(app): State<Arc<App>>,
    Extension(dash): Extension<Arc<Dashboard>>,
    headers: HeaderMap,
    Query(q): Query<KeysQuery>,
) -> Response {
    let visit = match admin_visit(&app, &dash, &headers, q.lang.as_deref()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    render(&app, &visit, q.page.unwrap_or(1), None, None).await
}

/// The page, with the key just created (shown once) or the error of the last change.
async fn render(app: &App, visit: &Visit, page: u32, new_key: Option<String>, error: Option<String>) -> Response {
    let mut ctx = visit.context("keys");
    let page = page.max(1);
    let (keys, total) = match key_api::list_keys(app, KeyFilter::default(), page, 100).await {
        Ok(k) => k,
        Err(e) => return view::message(ctx, e.status(), e.message()),
    };
    let lang = visit.lang;
    let rows: Vec<Value> = keys
        .iter()
        .map(|k| {
            let shown = key_api::shown(app, k);
            let spend = shown["spend"].as_f64().unwrap_or(0.0);
            json!({
                "token": k.token,
                "alias": k.key_alias,
                "name": k.key_name,
                "blocked": k.blocked,
                "spend": lang.usd(spend),
                "spend_value": spend,
                "budget": k.max_budget.map(|b| lang.usd(b)),
                "budget_value": k.max_budget,
                // Spend against budget, for the bar (0–100).
                "budget_pct": k.max_budget.filter(|b| *b > 0.0).map(|b| (spend / b * 100.0).clamp(0.0, 100.0).round()),
                "reset": shown["budget_reset_at"],
                "models": k.models,
                "created": k.created_at.map(|c| c.format("%Y-%m-%d %H:%M").to_string()),
            })
        })
        .collect();
    ctx.insert("keys".into(), json!(rows));
    ctx.insert("total".into(), json!(total));
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
    #[serde(default)]
    alias: String,
    #[serde(default)]
    max_budget: String,
    #[serde(default)]
    models: String,
}

pub async fn create(
    State(app): State<Arc<App>>,
    Extension(dash): Extension<Arc<Dashboard>>,
    headers: HeaderMap,
    Form(form): Form<CreateForm>,
) -> Response {
    let visit = match admin_visit(&app, &dash, &headers, None).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Some(refused) = visit.csrf_refusal(form.csrf.as_deref()) {
        return refused;
    }
    // The form's fields as `/key/generate`'s body, so the API's own checks apply.
    let mut m = Map::new();
    if !form.alias.trim().is_empty() {
        m.insert("key_alias".into(), json!(form.alias.trim()));
    }
    if !form.max_budget.trim().is_empty() {
        match form.max_budget.trim().parse::<f64>() {
            Ok(b) => m.insert("max_budget".into(), json!(b)),
            Err(_) => {
                let msg = format!("max budget {:?} is not a number", form.max_budget.trim());
                return render(&app, &visit, 1, None, Some(msg)).await;
            }
        };
    }
    let models: Vec<&str> = form
        .models
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if !models.is_empty() {
        m.insert("models".into(), json!(models));
    }
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
}

async fn change(app: Arc<App>, dash: Arc<Dashboard>, headers: HeaderMap, form: KeyForm, what: Change) -> Response {
    let visit = match admin_visit(&app, &dash, &headers, None).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Some(refused) = visit.csrf_refusal(form.csrf.as_deref()) {
        return refused;
    }
    let mut m = Map::new();
    m.insert("key".into(), json!(form.key));
    let done = match what {
        Change::Block(blocked) => key_api::block_key(&app, &m, blocked).await.map(|_| None),
        Change::Delete => {
            m.remove("key");
            m.insert("keys".into(), json!([form.key]));
            key_api::delete_keys(&app, &m).await.map(|_| None)
        }
        Change::Budget => {
            let given = form.max_budget.as_deref().map(str::trim).unwrap_or("");
            let budget = if given.is_empty() {
                Value::Null
            } else {
                match given.parse::<f64>() {
                    Ok(b) => json!(b),
                    Err(_) => {
                        let msg = format!("max budget {given:?} is not a number");
                        return render(&app, &visit, 1, None, Some(msg)).await;
                    }
                }
            };
            m.insert("max_budget".into(), budget);
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

pub async fn regenerate(
    State(app): State<Arc<App>>,
    Extension(dash): Extension<Arc<Dashboard>>,
    headers: HeaderMap,
    Form(form): Form<KeyForm>,
) -> Response {
    change(app, dash, headers, form, Change::Regenerate).await
}
