//! The overview: the report's figures for a range (1 h, 24 h, 7 d, 30 d), computed by
//! `tollgate_report::report_for_store` over this instance's SQLite or, with a shared store, over
//! Postgres — the aggregation `tollgate report --data-dir` (`--db`) runs — so
//! every figure equals the command's for the same bounds, which the page states. A virtual key
//! sees its own records. A large range's report is kept between visits (`snapshots.rs`).

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use tollgate_core::PriceTable;
use tollgate_report::{Lang, OwnKey, Report, ReportOptions};

use super::chart;
use super::dashboard::{Dashboard, ReportStore};
use super::guard::{self, Visit};
use super::session::Viewer;
use super::snapshots::{self, Answer, Built, SnapKey, Snapshot};
use super::text;
use super::view;
use crate::app::App;

/// The ranges offered, as `tollgate report --since` writes them.
pub const RANGES: &[(&str, i64)] = &[("1h", 3600), ("24h", 86_400), ("7d", 7 * 86_400), ("30d", 30 * 86_400)];

/// The report for the range a query names (one of [`RANGES`], else `since`/`until`), over what
/// the visitor may see, by the snapshot policy (`snapshots.rs`); with the range's name (`custom`
/// for a custom one). The report page shares it.
pub async fn build(
    app: &App,
    dash: &Dashboard,
    visit: &Visit,
    q: &OverviewQuery,
) -> Result<(&'static str, Answer), (StatusCode, String)> {
    let named = RANGES
        .iter()
        .find(|(name, _)| Some(*name) == q.range.as_deref())
        .copied()
        .unwrap_or(RANGES[1]);
    let text = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let (since_text, until_text) = (text(&q.since), text(&q.until));
    // Checked now, for the visitor's error; read again at each build (`90m` moves with the clock).
    let now = Utc::now();
    let bound = |v: &Option<String>| {
        v.as_deref()
            .map(|s| tollgate_report::parse_time_bound(s, now))
            .transpose()
            .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))
    };
    let (since, until) = (bound(&since_text)?, bound(&until_text)?);
    let custom = since_text.is_some() || until_text.is_some();
    let (range, span) = if custom {
        let span = until.unwrap_or(now) - since.unwrap_or(DateTime::<Utc>::MIN_UTC);
        ("custom", span)
    } else {
        (named.0, chrono::Duration::seconds(named.1))
    };
    let key = SnapKey {
        scope: match visit.viewer() {
            Viewer::Admin => "admin".into(),
            Viewer::Key { hash16, .. } => hash16.clone(),
        },
        range: if custom {
            format!(
                "{}..{}",
                since_text.as_deref().unwrap_or(""),
                until_text.as_deref().unwrap_or("")
            )
        } else {
            range.to_string()
        },
        lang: text::code(visit.lang),
    };
    let prices_path = app.prices_path.clone();
    let lang = visit.lang;
    let store = ReportStore::of(&app.store);
    let own = match visit.viewer() {
        Viewer::Admin => None,
        Viewer::Key { hash16, name, .. } => Some((hash16.clone(), name.clone())),
    };
    let seconds = named.1;
    // Everything a build needs is read inside it: a visit that is shown a kept report does no
    // more than look it up.
    let build = move || {
        let mut prices = PriceTable::builtin();
        if let Some(p) = &prices_path
            && let Ok(extra) = PriceTable::load_file(p)
        {
            prices.merge(extra);
        }
        let now = Utc::now();
        let (since, until) = if custom {
            let at = |v: &Option<String>| {
                v.as_deref()
                    .map(|s| tollgate_report::parse_time_bound(s, now))
                    .transpose()
                    .map_err(|e| e.to_string())
            };
            (at(&since_text)?, at(&until_text)?.unwrap_or(now))
        } else {
            (Some(now - chrono::Duration::seconds(seconds)), now)
        };
        let opts = ReportOptions {
            since,
            until: Some(until),
            prices,
            lang,
            ..ReportOptions::default()
        };
        let only = own.as_ref().map(|(key_hash, name)| OwnKey { key_hash, name });
        let report = tollgate_report::report_for_store(store.source(), opts, only).map_err(|e| e.to_string())?;
        Ok(Built { report, since, until })
    };
    let refresh = q.refresh.is_some();
    let live_budget = Duration::from_millis(app.live.load().config.dashboard_live_report_ms);
    let ages = (live_budget, snapshots::max_age(span));
    match dash.snapshots.get(key, ages, refresh, build).await {
        Ok(answer) => Ok((range, answer)),
        Err(e) => Err((StatusCode::SERVICE_UNAVAILABLE, e)),
    }
}

#[derive(Deserialize, Default)]
pub struct OverviewQuery {
    pub range: Option<String>,
    /// A custom range, in `tollgate report --since/--until`'s forms (`2026-01-01`, `90m`, …).
    pub since: Option<String>,
    pub until: Option<String>,
    pub lang: Option<String>,
    /// Set: build the report now rather than show a kept one.
    pub refresh: Option<String>,
}

/// What the page says about the figures' time: the exact bounds (for `tollgate report --since
/// --until` to reproduce them), when they were computed and whether they were kept.
pub fn freshness(answer: &Answer, lang: Lang) -> Option<(Value, &Snapshot)> {
    let (snapshot, kept, refreshing) = match answer {
        Answer::Fresh(s) => (s.as_ref(), false, false),
        Answer::Kept { snapshot, refreshing } => (snapshot.as_ref(), true, *refreshing),
        Answer::Building => return None,
    };
    let b = &snapshot.built;
    let stamp = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Micros, true);
    let shown = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    let age = (Utc::now() - snapshot.built_at).num_seconds().max(0);
    let value = json!({
        "since": b.since.map(stamp),
        "until": stamp(b.until),
        "since_text": b.since.map(shown),
        "until_text": shown(b.until),
        "age": lang.int(age as u64),
        "age_s": age,
        "kept": kept,
        "refreshing": refreshing,
        "took_ms": snapshot.took.as_millis() as u64,
    });
    Some((value, snapshot))
}

pub async fn page(
    State(app): State<Arc<App>>,
    Extension(dash): Extension<Arc<Dashboard>>,
    headers: HeaderMap,
    Query(q): Query<OverviewQuery>,
) -> Response {
    let visit = match guard::visit(&app, &dash.sessions, &headers, q.lang.as_deref()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let (range, answer) = match build(&app, &dash, &visit, &q).await {
        Ok(b) => b,
        Err((status, message)) => return view::message(visit.context("overview"), status, &message),
    };
    let mut ctx = visit.context("overview");
    ctx.insert(
        "ranges".into(),
        json!(RANGES.iter().map(|(n, _)| *n).collect::<Vec<_>>()),
    );
    ctx.insert("range".into(), json!(range));
    ctx.insert("since".into(), json!(q.since));
    ctx.insert("until".into(), json!(q.until));
    // The same range for the report page's links.
    let qs = if range == "custom" {
        let part = |v: &Option<String>| view::percent(v.as_deref().unwrap_or(""));
        format!("since={}&until={}", part(&q.since), part(&q.until))
    } else {
        format!("range={range}")
    };
    ctx.insert("report_qs".into(), json!(qs));
    match freshness(&answer, visit.lang) {
        Some((fresh, snapshot)) => {
            let report = &snapshot.built.report;
            ctx.insert("fresh".into(), fresh);
            ctx.insert("report".into(), figures(report, visit.lang));
            let title = visit
                .lang
                .pick("requests and cost over time", "zaman içinde istekler ve maliyet");
            ctx.insert(
                "chart".into(),
                json!(chart::requests_and_cost(&report.timeline.points, title)),
            );
        }
        None => {
            ctx.insert("building".into(), json!(true));
        }
    }
    let mut resp = view::page(StatusCode::OK, "overview.html", &ctx);
    if q.lang.is_some() {
        super::signin::remember_lang(&mut resp, visit.lang, view::behind_tls(&headers));
    }
    resp
}

/// The report's figures, each as a value (for `data-value`, which tests compare with the
/// command's JSON) and as text in the visitor's language.
fn figures(r: &Report, lang: Lang) -> Value {
    let fig = |value: Value, text: String| json!({"value": value, "text": text});
    let sum = |f: &dyn Fn(&tollgate_report::aggregate::ModelReport) -> u64| r.models.iter().map(f).sum::<u64>();
    // The models' OpenAI-style counts, split into disjoint buckets as the records store them.
    let prompt = sum(&|m| m.prompt_tokens);
    let cached = sum(&|m| m.cached_tokens);
    let cache_write = sum(&|m| m.cache_creation_tokens);
    let completion = sum(&|m| m.completion_tokens);
    let reasoning = sum(&|m| m.reasoning_tokens);
    let buckets = [
        ("input", prompt.saturating_sub(cached + cache_write)),
        ("cache_read", cached),
        ("cache_write", cache_write),
        ("output", completion.saturating_sub(reasoning)),
        ("reasoning", reasoning),
    ];
    let ms = |v: Option<f64>| v.map_or_else(|| lang.na().to_string(), |v| lang.ms(v));
    let models: Vec<Value> = r
        .models
        .iter()
        .map(|m| {
            let lat = m.latency_ms.as_ref();
            json!({
                "model": m.model,
                "requests": fig(json!(m.requests), lang.int(m.requests)),
                "failed": fig(json!(m.failed), lang.int(m.failed)),
                "cost": fig(json!(m.cost_usd), lang.usd(m.cost_usd)),
                "prompt_tokens": fig(json!(m.prompt_tokens), lang.int(m.prompt_tokens)),
                "completion_tokens": fig(json!(m.completion_tokens), lang.int(m.completion_tokens)),
                "p50": fig(json!(lat.map(|l| l.p50)), ms(lat.map(|l| l.p50))),
                "p95": fig(json!(lat.map(|l| l.p95)), ms(lat.map(|l| l.p95))),
            })
        })
        .collect();
    let findings: Vec<Value> = r
        .findings
        .iter()
        .map(|f| {
            json!({
                "class": format!("{:?}", f.severity).to_lowercase(),
                "severity": f.severity.label(lang),
                "message": f.message,
                "fix": f.fix,
            })
        })
        .collect();
    let overhead = r.overhead_ms.as_ref();
    json!({
        "requests": fig(json!(r.requests.total), lang.int(r.requests.total)),
        "succeeded": fig(json!(r.requests.succeeded), lang.int(r.requests.succeeded)),
        "failed": fig(json!(r.requests.failed), lang.int(r.requests.failed)),
        "success_rate": fig(json!(r.requests.success_rate), lang.pct_opt(r.requests.success_rate)),
        "cost": fig(json!(r.cost.total_usd), lang.usd(r.cost.total_usd)),
        "saved": fig(json!(r.cost.saved_usd), lang.usd(r.cost.saved_usd)),
        "cache_hit_rate": fig(json!(r.cache.hit_rate), lang.pct_opt(r.cache.hit_rate)),
        "overhead_p50": fig(json!(overhead.map(|o| o.p50)), ms(overhead.map(|o| o.p50))),
        "overhead_p95": fig(json!(overhead.map(|o| o.p95)), ms(overhead.map(|o| o.p95))),
        "tokens": buckets.iter().map(|(name, n)| json!({"name": name, "value": n, "text": lang.int(*n)})).collect::<Vec<_>>(),
        "models": models,
        "findings": findings,
    })
}
