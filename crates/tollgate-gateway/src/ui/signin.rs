//! Signing in and out. The key is posted once over the form, checked exactly as a request's
//! `Authorization` header would be (stage 1, `pipeline/authenticate.rs`), and exchanged for a
//! session; it is never stored in the browser. The form itself carries a one-time token bound
//! to a cookie (login CSRF), and failed attempts are limited per client address.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::{Extension, http::header};
use serde::Deserialize;
use serde_json::json;

use super::dashboard::Dashboard;
use super::guard::{self, SESSION_COOKIE};
use super::session::{Credential, SESSION_TTL, Viewer, random_token, same_secret};
use super::text::{self, LANG_COOKIE};
use super::view;
use crate::app::App;
use crate::client_addr;

/// The cookie binding the sign-in form to the browser that loaded it.
const FORM_COOKIE: &str = "tollgate_signin";

#[derive(Deserialize, Default)]
pub struct LangQuery {
    pub lang: Option<String>,
}

pub async fn form(headers: HeaderMap, Query(q): Query<LangQuery>) -> Response {
    render_form(&headers, q.lang.as_deref(), StatusCode::OK, None)
}

fn render_form(headers: &HeaderMap, query_lang: Option<&str>, status: StatusCode, error: Option<&str>) -> Response {
    let lang = guard::lang_of(headers, query_lang);
    let Ok(token) = random_token() else {
        return view::with_headers(axum::response::IntoResponse::into_response((
            StatusCode::INTERNAL_SERVER_ERROR,
            "no randomness available",
        )));
    };
    let mut ctx = guard::base_context(lang, "signin");
    ctx.insert("csrf".into(), json!(token));
    if let Some(e) = error {
        ctx.insert("error".into(), json!(ctx["t"][e].clone()));
    }
    let mut resp = view::page(status, "signin.html", &ctx);
    let secure = view::behind_tls(headers);
    view::add_cookie(&mut resp, view::set_cookie(FORM_COOKIE, &token, 600, true, secure));
    if query_lang.and_then(text::parse).is_some() {
        remember_lang(&mut resp, lang, secure);
    }
    resp
}

/// The switch's choice, kept for a year (it is a preference, readable by the page's script).
pub fn remember_lang(resp: &mut Response, lang: tollgate_report::Lang, secure: bool) {
    view::add_cookie(
        resp,
        view::set_cookie(LANG_COOKIE, text::code(lang), 365 * 86_400, false, secure),
    );
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    key: String,
    csrf: Option<String>,
}

pub async fn sign_in(
    State(app): State<Arc<App>>,
    Extension(dash): Extension<Arc<Dashboard>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    // Behind no listener (a test's oneshot) every attempt shares one bucket; behind a trusted
    // proxy, each client has its own.
    let peer = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |Extension(ConnectInfo(a))| a.ip());
    let ip = client_addr::client_ip(peer, &headers, &app.live.load().config.trusted_proxies);
    let now = Instant::now();
    if let Some(wait) = dash.limiter.blocked(ip, now) {
        let mut resp = render_form(&headers, None, StatusCode::TOO_MANY_REQUESTS, Some("too_many"));
        if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return resp;
    }
    let bound = view::cookie(&headers, FORM_COOKIE);
    match (bound, form.csrf.as_deref()) {
        (Some(b), Some(f)) if same_secret(b, f) => {}
        _ => return guard::csrf_refused(),
    }
    let Some(viewer) = viewer_of(&app, form.key.trim()).await else {
        dash.limiter.failed(ip, now);
        tracing::info!(client = %ip, "dashboard sign-in refused");
        return render_form(&headers, None, StatusCode::UNAUTHORIZED, Some("bad_key"));
    };
    dash.limiter.succeeded(ip);
    let Ok((id, _)) = dash.sessions.open(viewer, Credential::new(form.key.trim()), now) else {
        return render_form(&headers, None, StatusCode::INTERNAL_SERVER_ERROR, None);
    };
    let secure = view::behind_tls(&headers);
    let mut resp = view::redirect("/ui/overview");
    view::add_cookie(
        &mut resp,
        view::set_cookie(SESSION_COOKIE, &id, SESSION_TTL.as_secs() as i64, true, secure),
    );
    view::add_cookie(&mut resp, view::set_cookie(FORM_COOKIE, "", 0, true, secure));
    resp
}

/// Who the key is, checked as stage 1 checks a request's key (master key, or a virtual key
/// that is not blocked or expired); `None` for anything else.
async fn viewer_of(app: &App, key: &str) -> Option<Viewer> {
    if key.is_empty() {
        return None;
    }
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {key}")).ok()?,
    );
    let live = app.live.load_full();
    let caller = crate::pipeline::authenticate::caller(app, &live, &headers).await.ok()?;
    Some(match caller.key {
        None => Viewer::Admin,
        Some(k) => Viewer::Key {
            token: k.token.clone(),
            hash16: k.token.chars().take(16).collect(),
            name: k
                .key_alias
                .clone()
                .filter(|a| !a.is_empty())
                .unwrap_or_else(|| k.key_name.clone()),
        },
    })
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

pub async fn sign_out(
    State(app): State<Arc<App>>,
    Extension(dash): Extension<Arc<Dashboard>>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let visit = match guard::visit(&app, &dash.sessions, &headers, None).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Some(refused) = visit.csrf_refusal(form.csrf.as_deref()) {
        return refused;
    }
    dash.sessions.close(&visit.id);
    let mut resp = view::redirect("/ui/signin");
    view::add_cookie(
        &mut resp,
        view::set_cookie(SESSION_COOKIE, "", 0, true, view::behind_tls(&headers)),
    );
    resp
}
