//! LiteLLM's management API for everything around keys, with its paths, fields and response
//! shapes: users (`user.rs`), teams (`team.rs`) and their members (`team_member.rs`),
//! organizations (`organization.rs`), customers, i.e. end users (`customer.rs`), and budget
//! tiers (`budget.rs`). Master key only, LiteLLM's error envelope (`mgmt.rs`).
//!
//! Every entity is a row of `tollgate-store`'s entity table: a kind, an id, a parent and a
//! document in LiteLLM's field names (`fields.rs` turns requests into documents, `view.rs`
//! documents into answers, `rows.rs` reads and writes them). Spend lives in the ledger, per
//! scope; admission enforces budgets and limits from the same documents. Each endpoint's work
//! is a function of its own (`create_user`, `update_team`, `add_members`, …) that the handler
//! and the dashboard's users and teams pages both call.

mod budget;
mod customer;
mod fields;
mod membership;
mod organization;
mod rows;
mod team;
mod team_member;
mod user;
mod view;

// What the dashboard's users and teams pages call: the functions these endpoints run, so a page
// and the API cannot drift apart.
pub(crate) use team::{block_team, create_team, delete_named_teams, teams_page, update_team};
pub(crate) use team_member::{add_members, remove_member};
pub(crate) use user::{create_user, delete_users, list_users, update_user};

use std::sync::Arc;

use axum::Router;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use serde_json::Value;

use crate::app::App;
use crate::mgmt::{ApiError, ApiResult, admin_for};

/// The routes, to merge into the server's router.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .merge(user::routes())
        .merge(team::routes())
        .merge(team_member::routes())
        .merge(organization::routes())
        .merge(customer::routes())
        .merge(budget::routes())
}

/// Only the master key manages entities.
async fn admin(app: &App, headers: &HeaderMap) -> Result<(), ApiError> {
    admin_for(
        app,
        headers,
        "only the master key may manage users, teams, organizations, customers and budgets",
    )
    .await
    .map(|_| ())
}

/// A 200 with this JSON.
fn answer(v: impl Into<Value>) -> ApiResult {
    Ok(axum::Json(v.into()).into_response())
}
