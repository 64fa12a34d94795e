//! The teams page (master key only): teams a page at a time, each with its spend against budget
//! (and the budget's next reset), limits, models and members with their roles; create one,
//! change its budget and limits, add or remove a member, block or unblock it (its keys are
//! refused meanwhile), delete it (its keys and memberships go too, as with `/team/delete`).
//! Every change goes through `entity_api`'s own functions — the ones `/team/*` runs — so the
//! page and the API cannot drift apart.

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

/// Teams per page.
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
    render(&app, &visit, q.page.unwrap_or(1), None).await
}

/// The page, with the error of the last change (the API's own status and words, or the form's).
async fn render(app: &App, visit: &Visit, page: u32, error: Option<(StatusCode, String)>) -> Response {
    let mut ctx = visit.context("teams");
    let page = page.max(1);
    let (teams, total) = match entity_api::teams_page(app, page, PAGE_SIZE).await {
        Ok(t) => t,
        Err(e) => return view::message(ctx, e.status(), e.message()),
    };
    let rows: Vec<Value> = teams
        .into_iter()
        .map(|t| {
            let t = Value::Object(t);
            json!({
                "id": t["team_id"],
                "alias": t["team_alias"],
                "blocked": t["blocked"].as_bool().unwrap_or(false),
                "limits": limits::cells(visit.lang, &t),
                "models": t["models"],
                "members": t["members_with_roles"],
            })
        })
        .collect();
    ctx.insert("teams".into(), json!(rows));
    ctx.insert("total".into(), json!(total));
    ctx.insert("pager".into(), pager::links("/ui/teams", page, PAGE_SIZE, total));
    let status = error.as_ref().map_or(StatusCode::OK, |(s, _)| *s);
    ctx.insert("error".into(), json!(error.map(|(_, m)| m)));
    view::page(status, "teams.html", &ctx)
}

/// Every field the page's forms send; each form sends some.
#[derive(Deserialize)]
pub struct TeamForm {
    csrf: Option<String>,
    team_id: Option<String>,
    team_alias: Option<String>,
    max_budget: Option<String>,
    budget_duration: Option<String>,
    tpm_limit: Option<String>,
    rpm_limit: Option<String>,
    models: Option<String>,
    /// The member forms' user and role.
    user_id: Option<String>,
    role: Option<String>,
}

enum Change {
    Create,
    Limits,
    Block(bool),
    Delete,
    AddMember,
    RemoveMember,
}

/// The form as the endpoint's body.
fn body_of(f: &TeamForm, what: &Change) -> Result<Map<String, Value>, String> {
    let mut m = Map::new();
    let team_id = f.team_id.as_deref().unwrap_or("").trim();
    let user_id = f.user_id.as_deref().unwrap_or("").trim();
    match what {
        Change::Create => {
            form::text(&mut m, "team_id", Some(team_id), Blank::Omit);
            form::text(&mut m, "team_alias", f.team_alias.as_deref(), Blank::Omit);
            form::names(&mut m, "models", f.models.as_deref());
            form::number(&mut m, "max_budget", f.max_budget.as_deref(), Blank::Omit)?;
            form::text(&mut m, "budget_duration", f.budget_duration.as_deref(), Blank::Omit);
        }
        Change::Limits => {
            m.insert("team_id".into(), json!(team_id));
            form::number(&mut m, "max_budget", f.max_budget.as_deref(), Blank::Clear)?;
            form::text(&mut m, "budget_duration", f.budget_duration.as_deref(), Blank::Clear);
            form::number(&mut m, "tpm_limit", f.tpm_limit.as_deref(), Blank::Clear)?;
            form::number(&mut m, "rpm_limit", f.rpm_limit.as_deref(), Blank::Clear)?;
        }
        Change::Block(_) => {
            m.insert("team_id".into(), json!(team_id));
        }
        Change::Delete => {
            m.insert("team_ids".into(), json!([team_id]));
        }
        Change::AddMember => {
            m.insert("team_id".into(), json!(team_id));
            // An empty user id or a role that is neither is the API's to explain.
            let role = f.role.as_deref().unwrap_or("user");
            m.insert("member".into(), json!({"user_id": user_id, "role": role}));
        }
        Change::RemoveMember => {
            m.insert("team_id".into(), json!(team_id));
            m.insert("user_id".into(), json!(user_id));
        }
    }
    Ok(m)
}

async fn change(app: Arc<App>, dash: Arc<Dashboard>, headers: HeaderMap, f: TeamForm, what: Change) -> Response {
    let visit = match guard::admin_change(&app, &dash.sessions, &headers, f.csrf.as_deref()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let m = match body_of(&f, &what) {
        Ok(m) => m,
        Err(msg) => return render(&app, &visit, 1, Some((StatusCode::BAD_REQUEST, msg))).await,
    };
    let done = match what {
        Change::Create => entity_api::create_team(&app, &m).await.map(|_| ()),
        Change::Limits => entity_api::update_team(&app, &m).await.map(|_| ()),
        Change::Block(blocked) => entity_api::block_team(&app, &m, blocked).await.map(|_| ()),
        Change::Delete => entity_api::delete_named_teams(&app, &m).await.map(|_| ()),
        Change::AddMember => entity_api::add_members(&app, &m).await.map(|_| ()),
        Change::RemoveMember => entity_api::remove_member(&app, &m).await.map(|_| ()),
    };
    match done {
        Ok(()) => view::redirect("/ui/teams"),
        Err(e) => render(&app, &visit, 1, Some((e.status(), e.message().to_string()))).await,
    }
}

pub async fn create(
    State(app): State<Arc<App>>,
    Extension(dash): Extension<Arc<Dashboard>>,
    headers: HeaderMap,
    Form(form): Form<TeamForm>,
) -> Response {
    change(app, dash, headers, form, Change::Create).await
}

/// `POST /ui/teams/{action}`: a change to one team, named by the path.
pub async fn act(
    State(app): State<Arc<App>>,
    Extension(dash): Extension<Arc<Dashboard>>,
    Path(action): Path<String>,
    headers: HeaderMap,
    Form(form): Form<TeamForm>,
) -> Response {
    let what = match action.as_str() {
        "limits" => Change::Limits,
        "block" => Change::Block(true),
        "unblock" => Change::Block(false),
        "delete" => Change::Delete,
        "member_add" => Change::AddMember,
        "member_delete" => Change::RemoveMember,
        _ => return view::not_found(),
    };
    change(app, dash, headers, form, what).await
}
