//! The dashboard: server-rendered pages at `/ui`, from templates and assets compiled into the
//! binary (no CDN, no Node build). Sign-in exchanges the master key or a virtual key for a
//! server-side session (`session.rs`, `signin.rs`); each page checks it first (`guard.rs`).
//! The pages read what the rest of tollgate already computes: the overview is the report's
//! aggregation over the store (`overview.rs`), the logs the store's query (`logs.rs`), the keys
//! page `key_api`'s own functions (`keys_page.rs`), the users and teams pages `entity_api`'s
//! (`users_page.rs`, `teams_page.rs`), the report page the report's renderers
//! (`report_page.rs`), the models page the live state (`models_page.rs`), the playground the
//! pipeline itself (`playground.rs`). The master-key pages share how a form becomes an API body
//! (`form.rs`), how spend, budget and limits are shown (`limits.rs`) and the page links
//! (`pager.rs`). Charts are inline SVG (`chart.rs`); the words are English or Turkish (`text.rs`).
//!
//! It lives in the gateway, not a crate of its own, because it needs the gateway's insides (the
//! live config, the key cache, stage 1's key check, `key_api`) and the gateway must serve it:
//! a separate crate would have to depend on the gateway and be plugged back into its router.

mod chart;
mod dashboard;
mod form;
mod guard;
mod keys_page;
mod limits;
mod logs;
mod models_page;
mod overview;
mod pager;
mod playground;
mod report_page;
mod session;
mod signin;
mod snapshots;
mod teams_page;
mod text;
mod users_page;
mod view;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::{Extension, Router};

use crate::app::App;

/// The largest form the dashboard reads.
const FORM_LIMIT: usize = 16 * 1024;

/// The dashboard's routes, with their own state (sessions, limiter), to merge into the server's.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/", get(|| async { view::redirect("/ui") }))
        .route("/ui", get(|| async { view::redirect("/ui/overview") }))
        .route("/ui/", get(|| async { view::redirect("/ui/overview") }))
        .route("/ui/signin", get(signin::form).post(signin::sign_in))
        .route("/ui/signout", post(signin::sign_out))
        .route("/ui/overview", get(overview::page))
        .route("/ui/logs", get(logs::list))
        .route("/ui/logs/{request_id}", get(logs::detail))
        .route("/ui/report", get(report_page::page))
        .route("/ui/models", get(models_page::page))
        .route("/ui/playground", get(playground::page))
        .route("/ui/playground/chat", post(playground::chat))
        .route("/ui/keys", get(keys_page::list).post(keys_page::create))
        .route("/ui/keys/block", post(keys_page::block))
        .route("/ui/keys/unblock", post(keys_page::unblock))
        .route("/ui/keys/delete", post(keys_page::delete))
        .route("/ui/keys/budget", post(keys_page::budget))
        .route("/ui/keys/regenerate", post(keys_page::regenerate))
        .route("/ui/keys/limits", post(keys_page::set_limits))
        .route("/ui/users", get(users_page::list).post(users_page::create))
        .route("/ui/users/{action}", post(users_page::act))
        .route("/ui/teams", get(teams_page::list).post(teams_page::create))
        .route("/ui/teams/{action}", post(teams_page::act))
        .route(
            "/ui/assets/app.css",
            get(|| async { view::asset("text/css; charset=utf-8", view::APP_CSS) }),
        )
        .route(
            "/ui/assets/app.js",
            get(|| async { view::asset("text/javascript; charset=utf-8", view::APP_JS) }),
        )
        .layer(Extension(Arc::new(dashboard::Dashboard::default())))
        // The server reads API bodies under its own limit; the dashboard's forms are small, and
        // the sign-in form is open to anyone, so its bodies are capped here (413 beyond).
        .layer(DefaultBodyLimit::max(FORM_LIMIT))
}
