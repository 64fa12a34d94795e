//! The models page (master key only): what the live config serves — each model group's
//! deployments with their prices, context windows and health (in flight, latency, cooldown, the
//! last health check's error) — its workflows with their steps, the config's version and
//! whether the last reload failed (and why).

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::dashboard::Dashboard;
use super::guard;
use super::signin::LangQuery;
use super::view;
use crate::app::App;

pub async fn page(
    State(app): State<Arc<App>>,
    Extension(dash): Extension<Arc<Dashboard>>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Response {
    let visit = match guard::visit(&app, &dash.sessions, &headers, q.lang.as_deref()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Some(refused) = visit.refusal_unless_admin() {
        return refused;
    }
    let lang = visit.lang;
    let live = app.live.load_full();
    // The last background or on-demand health round, by deployment.
    let checks = app.health.latest().map(|(c, _)| c).unwrap_or_default();
    let per_million = |p: Option<f64>| p.map(|v| lang.usd(v * 1e6));
    let groups: Vec<Value> = live
        .group_order
        .iter()
        .filter_map(|name| live.groups.get(name))
        .map(|g| {
            let deployments: Vec<Value> = g
                .deployments
                .iter()
                .map(|d| {
                    // Already masked: a route never shows the credentials its URL may hold.
                    let api_base = d.route.api_base.clone();
                    let check = checks
                        .iter()
                        .find(|c| c.model_group == g.name && c.model == d.model && c.api_base == api_base);
                    let latency_us = d.stats.latency_us();
                    json!({
                        "model": d.model,
                        "api_base": api_base,
                        "input": per_million(d.price.as_ref().and_then(|p| p.input_cost_per_token)),
                        "output": per_million(d.price.as_ref().and_then(|p| p.output_cost_per_token)),
                        "cache_read": per_million(d.price.as_ref().and_then(|p| p.cache_read_input_token_cost)),
                        "max_input_tokens": d.max_input_tokens.map(|n| lang.int(n)),
                        "max_output_tokens": d.max_output_tokens.map(|n| lang.int(n)),
                        "in_flight": d.stats.in_flight(),
                        "latency": (latency_us > 0).then(|| lang.ms(latency_us as f64 / 1000.0)),
                        "cooling_down": d.stats.cooling_down(),
                        "checked": check.is_some(),
                        "check_error": check.and_then(|c| c.error.clone()),
                    })
                })
                .collect();
            json!({"name": g.name, "deployments": deployments})
        })
        .collect();
    let workflows: Vec<Value> = live
        .config
        .workflows
        .iter()
        .map(|w| {
            let steps: Vec<Value> = w
                .steps
                .iter()
                .map(|s| json!({"role": s.role, "model": s.model, "fallbacks": s.fallbacks}))
                .collect();
            json!({"name": w.name, "aliases": w.aliases, "steps": steps})
        })
        .collect();
    let mut ctx = visit.context("models");
    ctx.insert("config_version".into(), json!(live.version));
    ctx.insert("config_path".into(), json!(live.config.path.display().to_string()));
    ctx.insert(
        "config_error".into(),
        json!(app.config_error.lock().ok().and_then(|e| e.clone())),
    );
    ctx.insert("warnings".into(), json!(live.all_warnings().count()));
    ctx.insert("groups".into(), json!(groups));
    ctx.insert("workflows".into(), json!(workflows));
    view::page(StatusCode::OK, "models.html", &ctx)
}
