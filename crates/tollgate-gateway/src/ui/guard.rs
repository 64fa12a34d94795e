//! Every dashboard page starts here: who is signed in (the session cookie, checked against
//! the session table and, for a virtual key, against the key itself), in which language, and
//! — for a change — whether the form carries the session's CSRF token; the master-key pages
//! (keys, users, teams) ask for both with `admin_visit` and `admin_change`.

use std::sync::Arc;
use std::time::Instant;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::Utc;
use serde_json::{Value, json};
use tollgate_report::Lang;

use super::session::{Session, Sessions, Viewer, same_secret};
use super::text::{self, LANG_COOKIE};
use super::view;
use crate::app::App;

/// The session cookie: a random id naming a row of the server's session table.
pub const SESSION_COOKIE: &str = "tollgate_session";

/// A signed-in request.
pub struct Visit {
    pub id: String,
    pub session: Session,
    pub lang: Lang,
}

impl Visit {
    pub fn viewer(&self) -> &Viewer {
        &self.session.viewer
    }

    /// What every page's template gets: the phrases, the language, who is signed in, the CSRF
    /// token for its forms.
    pub fn context(&self, page: &str) -> serde_json::Map<String, Value> {
        let mut ctx = base_context(self.lang, page);
        let who = match self.viewer() {
            Viewer::Admin => json!({"admin": true, "name": Value::Null}),
            Viewer::Key { name, .. } => json!({"admin": false, "name": name}),
        };
        ctx.insert("who".into(), who);
        ctx.insert("csrf".into(), json!(self.session.csrf));
        ctx
    }

    /// The 403 to answer unless the master key signed in.
    pub fn refusal_unless_admin(&self) -> Option<Response> {
        if self.viewer().is_admin() {
            return None;
        }
        let mut ctx = self.context("");
        ctx.insert("message".into(), ctx["t"]["forbidden"].clone());
        Some(view::page(StatusCode::FORBIDDEN, "message.html", &ctx))
    }

    /// The 403 to answer when a change's form does not carry this session's CSRF token.
    pub fn csrf_refusal(&self, given: Option<&str>) -> Option<Response> {
        match given {
            Some(g) if same_secret(g, &self.session.csrf) => None,
            _ => Some(csrf_refused()),
        }
    }
}

pub fn csrf_refused() -> Response {
    view::with_headers(axum::response::IntoResponse::into_response((
        StatusCode::FORBIDDEN,
        "refused: the form's CSRF token is missing or wrong; reload the page and try again",
    )))
}

/// The language and phrases, for pages with or without a session.
pub fn base_context(lang: Lang, page: &str) -> serde_json::Map<String, Value> {
    let mut ctx = serde_json::Map::new();
    ctx.insert("t".into(), Value::Object(text::phrases(lang)));
    ctx.insert("lang".into(), json!(text::code(lang)));
    ctx.insert("page".into(), json!(page));
    ctx
}

/// The request's language (`?lang=`, the cookie, `Accept-Language`).
pub fn lang_of(headers: &HeaderMap, query_lang: Option<&str>) -> Lang {
    text::choose(query_lang, view::cookie(headers, LANG_COOKIE), headers)
}

/// The signed-in visit, or a redirect to the sign-in page.
pub async fn visit(
    app: &App,
    sessions: &Arc<Sessions>,
    headers: &HeaderMap,
    query_lang: Option<&str>,
) -> Result<Visit, Response> {
    let to_signin = || view::redirect("/ui/signin");
    let id = view::cookie(headers, SESSION_COOKIE).ok_or_else(to_signin)?;
    let session = sessions.find(id, Instant::now()).ok_or_else(to_signin)?;
    // A key blocked, expired or deleted since sign-in ends its sessions at the next page.
    if let Viewer::Key { token, .. } = &session.viewer {
        let usable = match app.keys.lookup(token).await {
            Ok(Some(k)) => !k.blocked && k.expires.is_none_or(|e| e > Utc::now()),
            Ok(None) => false,
            // The store is unreachable: do not sign the person out for that.
            Err(_) => true,
        };
        if !usable {
            sessions.close(id);
            return Err(to_signin());
        }
    }
    Ok(Visit {
        id: id.to_string(),
        session,
        lang: lang_of(headers, query_lang),
    })
}

/// A master-key visit, or the answer to send instead (sign-in redirect, 403).
pub async fn admin_visit(
    app: &App,
    sessions: &Arc<Sessions>,
    headers: &HeaderMap,
    query_lang: Option<&str>,
) -> Result<Visit, Response> {
    let visit = visit(app, sessions, headers, query_lang).await?;
    match visit.refusal_unless_admin() {
        Some(refused) => Err(refused),
        None => Ok(visit),
    }
}

/// A master-key visit whose form carries the session's CSRF token: what every change needs.
pub async fn admin_change(
    app: &App,
    sessions: &Arc<Sessions>,
    headers: &HeaderMap,
    csrf: Option<&str>,
) -> Result<Visit, Response> {
    let visit = admin_visit(app, sessions, headers, None).await?;
    match visit.csrf_refusal(csrf) {
        Some(refused) => Err(refused),
        None => Ok(visit),
    }
}
