//! The users page (master key only): users a page at a time, each with its spend against budget
//! (and the budget's next reset), limits, models, keys and teams; create one (with a key, shown
//! once, as `/user/new` makes it), change its budget and limits, delete it (its keys and team
//! memberships go too, as with `/user/delete`). Every change goes through `entity_api`'s own
//! functions — the ones `/user/*` runs — so the page and the API cannot drift apart.
//!
//! There is no block button: LiteLLM has no user block, and admission does not read a user's
//! `blocked` (block the user's keys, or its team).

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::dashboard::Dashboard;
use super::form::{self, Blank};
use super::guard::{self, Visit};
use super::pager::PageQuery;
use super::{limits, pager, view};
use crate::app::App;
use crate::entity_api;
use crate::mgmt::ApiError;

/// Users per page.
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

/// What went wrong with a change: the API's own status and words, or the form's.
type Failure = (StatusCode, String);

fn failed(e: ApiError) -> Failure {
    (e.status(), e.message().to_string())
}

/// The page, with the new user's key (shown once) or the error of the last change.
async fn render(app: &App, visit: &Visit, page: u32, new_key: Option<String>, error: Option<Failure>) -> Response {
    let mut ctx = visit.context("users");
    let page = page.max(1);
    let (users, total) = match entity_api::list_users(app, None, page, PAGE_SIZE).await {
        Ok(u) => u,
        Err(e) => return view::message(ctx, e.status(), e.message()),
    };
    let rows: Vec<Value> = users
        .into_iter()
        .map(|u| {
            let u = Value::Object(u);
            json!({
                "id": u["user_id"],
                "email": u["user_email"],
                "alias": u["user_alias"],
                "limits": limits::cells(visit.lang, &u),
                "models": u["models"],
                "key_count": u["key_count"],
                "teams": u["teams"],
            })
        })
        .collect();
    ctx.insert("users".into(), json!(rows));
    ctx.insert("total".into(), json!(total));
    ctx.insert("pager".into(), pager::links("/ui/users", page, PAGE_SIZE, total));
    ctx.insert("new_key".into(), json!(new_key));
    let status = error.as_ref().map_or(StatusCode::OK, |(s, _)| *s);
    ctx.insert("error".into(), json!(error.map(|(_, m)| m)));
    view::page(status, "users.html", &ctx)
}

/// Every field the page's forms send; each form sends some.
#[derive(Deserialize)]
pub struct UserForm {
    csrf: Option<String>,
    user_id: Option<String>,
    user_email: Option<String>,
    max_budget: Option<String>,
    budget_duration: Option<String>,
    tpm_limit: Option<String>,
    rpm_limit: Option<String>,
    models: Option<String>,
    /// The create form's checkbox: also make the user a key, as `/user/new` does by default.
    create_key: Option<String>,
}

enum Change {
    Create,
    Limits,
    Delete,
}

/// The form as the endpoint's body.
fn body_of(f: &UserForm, what: &Change) -> Result<Map<String, Value>, String> {
    let mut m = Map::new();
    let blank = match what {
        Change::Create => Blank::Omit,
        Change::Limits | Change::Delete => Blank::Clear,
    };
    match what {
        Change::Delete => {
            m.insert("user_ids".into(), json!([f.user_id.as_deref().unwrap_or("").trim()]));
            return Ok(m);
        }
        Change::Create => {
            form::text(&mut m, "user_id", f.user_id.as_deref(), Blank::Omit);
            form::text(&mut m, "user_email", f.user_email.as_deref(), Blank::Omit);
            form::names(&mut m, "models", f.models.as_deref());
            m.insert("auto_create_key".into(), json!(f.create_key.is_some()));
        }
        Change::Limits => {
            // Named, never cleared: an empty id is the API's "name the user".
            form::text(&mut m, "user_id", f.user_id.as_deref(), Blank::Omit);
            form::number(&mut m, "tpm_limit", f.tpm_limit.as_deref(), blank)?;
            form::number(&mut m, "rpm_limit", f.rpm_limit.as_deref(), blank)?;
        }
    }
    form::number(&mut m, "max_budget", f.max_budget.as_deref(), blank)?;
    form::text(&mut m, "budget_duration", f.budget_duration.as_deref(), blank);
    Ok(m)
}

async fn change(app: Arc<App>, dash: Arc<Dashboard>, headers: HeaderMap, f: UserForm, what: Change) -> Response {
    let visit = match guard::admin_change(&app, &dash.sessions, &headers, f.csrf.as_deref()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let m = match body_of(&f, &what) {
        Ok(m) => m,
        Err(msg) => return render(&app, &visit, 1, None, Some((StatusCode::BAD_REQUEST, msg))).await,
    };
    let done = match what {
        Change::Create => entity_api::create_user(&app, &m)
            .await
            .map(|made| made.get("key").and_then(Value::as_str).map(str::to_string)),
        Change::Limits => entity_api::update_user(&app, &m).await.map(|_| None),
        Change::Delete => entity_api::delete_users(&app, &m).await.map(|_| None),
    };
    match done {
        // The user's new key, shown this once.
        Ok(Some(raw)) => render(&app, &visit, 1, Some(raw), None).await,
        Ok(None) => view::redirect("/ui/users"),
        Err(e) => render(&app, &visit, 1, None, Some(failed(e))).await,
    }
}

pub async fn create(
    State(app): State<Arc<App>>,
    Extension(dash): Extension<Arc<Dashboard>>,
    headers: HeaderMap,
    Form(form): Form<UserForm>,
) -> Response {
    change(app, dash, headers, form, Change::Create).await
}

/// `POST /ui/users/{action}`: a change to one user, named by the path.
pub async fn act(
    State(app): State<Arc<App>>,
    Extension(dash): Extension<Arc<Dashboard>>,
    Path(action): Path<String>,
    headers: HeaderMap,
    Form(form): Form<UserForm>,
) -> Response {
    let what = match action.as_str() {
        "limits" => Change::Limits,
        "delete" => Change::Delete,
        _ => return view::not_found(),
    };
    change(app, dash, headers, form, what).await
}
