//! The report page: the whole `tollgate report` for the overview's range, in the visitor's
//! language, shown in the dashboard (its self-contained HTML) and downloadable as HTML,
//! Markdown or JSON — the renderers the command uses, over the same report.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tollgate_report::Format;

use super::dashboard::Dashboard;
use super::guard;
use super::overview::{self, OverviewQuery};
use super::view;
use crate::app::App;

/// The report's own HTML carries its styles inline and no script: allowed those, nothing else.
const REPORT_CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; base-uri 'none'";

#[derive(Deserialize, Default)]
pub struct ReportQuery {
    #[serde(flatten)]
    range: OverviewQuery,
    /// `html` (the default), `md` or `json`.
    format: Option<String>,
    /// Set: sent as a file to save, not shown.
    download: Option<String>,
}

pub async fn page(
    State(app): State<Arc<App>>,
    Extension(dash): Extension<Arc<Dashboard>>,
    headers: HeaderMap,
    Query(q): Query<ReportQuery>,
) -> Response {
    let visit = match guard::visit(&app, &dash.sessions, &headers, q.range.lang.as_deref()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let (format, extension, content_type) = match q.format.as_deref().unwrap_or("html") {
        "html" => (Format::Html, "html", "text/html; charset=utf-8"),
        "md" => (Format::Md, "md", "text/markdown; charset=utf-8"),
        "json" => (Format::Json, "json", "application/json"),
        other => {
            let text = format!("format {other:?}: use html, md or json");
            return view::message(visit.context("report"), StatusCode::BAD_REQUEST, &text);
        }
    };
    let (range, answer) = match overview::build(&app, &dash, &visit, &q.range).await {
        Ok(b) => b,
        Err((status, message)) => return view::message(visit.context("report"), status, &message),
    };
    let Some((_, snapshot)) = overview::freshness(&answer, visit.lang) else {
        return building(&visit, format);
    };
    let report = &snapshot.built.report;
    let text = tollgate_report::render(report, format, visit.lang);
    let mut resp = view::with_headers(([(header::CONTENT_TYPE, content_type)], text).into_response());
    resp.headers_mut()
        .insert("content-security-policy", HeaderValue::from_static(REPORT_CSP));
    if q.download.is_some() {
        let name = format!("attachment; filename=\"tollgate-report-{range}.{extension}\"");
        if let Ok(v) = HeaderValue::from_str(&name) {
            resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
        }
    }
    resp
}

/// The first build of a large range's report is still running: the HTML page says so and
/// reloads itself; a download gets 503 with `Retry-After`, as an API would.
fn building(visit: &guard::Visit, format: Format) -> Response {
    if format != Format::Html {
        let mut resp = view::with_headers(
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the report for this range is being computed; try again in a few seconds",
            )
                .into_response(),
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        return resp;
    }
    let mut ctx = visit.context("report");
    ctx.insert("building".into(), serde_json::json!(true));
    let text = ctx["t"]["building"].as_str().unwrap_or_default().to_string();
    view::message(ctx, StatusCode::OK, &text)
}
