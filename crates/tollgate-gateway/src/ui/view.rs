//! Turning a page's data into a response: the templates (compiled into the binary, rendered by
//! minijinja with HTML escaping on), the static assets, cookies, and the headers every
//! dashboard answer carries.

use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cookie::{Cookie, SameSite};
use minijinja::Environment;
use serde::Serialize;

/// Sent with every page: scripts and styles only from the binary itself, no framing, no
/// referrer leaking a request id to another site.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("signin.html", include_str!("templates/signin.html")),
    ("overview.html", include_str!("templates/overview.html")),
    ("logs.html", include_str!("templates/logs.html")),
    ("record.html", include_str!("templates/record.html")),
    ("keys.html", include_str!("templates/keys.html")),
    ("message.html", include_str!("templates/message.html")),
    ("playground.html", include_str!("templates/playground.html")),
    ("models.html", include_str!("templates/models.html")),
    ("users.html", include_str!("templates/users.html")),
    ("teams.html", include_str!("templates/teams.html")),
    ("limits.html", include_str!("templates/limits.html")),
    ("pager.html", include_str!("templates/pager.html")),
];

pub const APP_CSS: &str = include_str!("assets/app.css");
pub const APP_JS: &str = include_str!("assets/app.js");

fn templates() -> &'static Result<Environment<'static>, String> {
    static ENV: OnceLock<Result<Environment<'static>, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .map_err(|e| format!("template {name}: {e}"))?;
        }
        Ok(env)
    })
}

/// A rendered page with the dashboard's headers; a template error is a plain 500 (and a bug:
/// a test renders every template).
pub fn page(status: StatusCode, template: &str, ctx: &impl Serialize) -> Response {
    let rendered = templates().as_ref().map_err(String::clone).and_then(|env| {
        env.get_template(template)
            .and_then(|t| t.render(ctx))
            .map_err(|e| format!("{e:#}"))
    });
    match rendered {
        Ok(html) => with_headers((status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()),
        Err(e) => {
            tracing::error!("dashboard template {template}: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the dashboard page could not be rendered",
            )
                .into_response()
        }
    }
}

/// A page that only says something (an error, a refusal), in the dashboard's frame.
pub fn message(mut ctx: serde_json::Map<String, serde_json::Value>, status: StatusCode, text: &str) -> Response {
    ctx.insert("message".into(), serde_json::Value::from(text));
    page(status, "message.html", &ctx)
}

/// A plain 404 for a dashboard path that names nothing (a change the page does not make).
pub fn not_found() -> Response {
    with_headers((StatusCode::NOT_FOUND, "no such page").into_response())
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The headers every dashboard answer carries.
pub fn with_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    // Pages show keys' spend and records: not for shared caches or the back button after sign-out.
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}

/// A 303 to `to` (after a form: the browser then GETs, so a reload does not post again).
pub fn redirect(to: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    with_headers(resp)
}

/// A cookie's value in the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the browser reached us over TLS (a proxy in front says so): then cookies are `Secure`.
pub fn behind_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .next()
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
        })
}

/// A `Set-Cookie` value: `HttpOnly` unless it is the language preference, always
/// `SameSite=Strict` (another site's form never carries it), `Secure` behind TLS.
pub fn set_cookie(name: &str, value: &str, max_age_s: i64, http_only: bool, secure: bool) -> Option<HeaderValue> {
    let c = Cookie::build((name.to_string(), value.to_string()))
        .path("/ui")
        .http_only(http_only)
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(cookie::time::Duration::seconds(max_age_s))
        .build();
    HeaderValue::from_str(&c.to_string()).ok()
}

pub fn add_cookie(resp: &mut Response, value: Option<HeaderValue>) {
    if let Some(v) = value {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

pub fn asset(content_type: &'static str, body: &'static str) -> Response {
    with_headers(
        (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            body,
        )
            .into_response(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles() {
        let env = templates().as_ref().unwrap();
        for (name, _) in TEMPLATES {
            env.get_template(name).unwrap();
        }
    }

    #[test]
    fn cookies_are_strict_and_secure_behind_tls() {
        let c = set_cookie("s", "v", 60, true, true).unwrap();
        let c = c.to_str().unwrap();
        for part in ["s=v", "HttpOnly", "SameSite=Strict", "Secure", "Path=/ui", "Max-Age=60"] {
            assert!(c.contains(part), "{c} lacks {part}");
        }
        let plain = set_cookie("s", "v", 60, true, false).unwrap();
        assert!(!plain.to_str().unwrap().contains("Secure"));
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        assert!(behind_tls(&h));
        h.insert("cookie", "a=1; tollgate_session=abc".parse().unwrap());
        assert_eq!(cookie(&h, "tollgate_session"), Some("abc"));
        assert_eq!(cookie(&h, "b"), None);
    }
}
