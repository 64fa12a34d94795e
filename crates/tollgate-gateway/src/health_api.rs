//! `GET /health` (LiteLLM's model health check, master key only as in LiteLLM) and the
//! background checks `general_settings.background_health_checks` turns on. The checks
//! themselves are `health_check.rs`.

use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tollgate_core::{ErrorKind, GatewayError};

use crate::app::App;
use crate::edge::{ApiError, authorize};
use crate::health_check::{answer, check_all};

pub fn routes() -> Router<Arc<App>> {
    Router::new().route("/health", get(health))
}

#[derive(Deserialize)]
struct HealthQuery {
    model: Option<String>,
}

async fn health(State(app): State<Arc<App>>, headers: HeaderMap, Query(q): Query<HealthQuery>) -> Response {
    let live = app.live.load_full();
    if let Err(e) = authorize(&headers, live.config.master_key.as_ref().filter(|_| app.auth_enabled)) {
        return ApiError(e).into_response();
    }
    let group = match q.model.as_deref() {
        None => None,
        Some(m) => match live.group(m) {
            Some(g) => Some(g.name.clone()),
            None => {
                return ApiError(
                    GatewayError::new(
                        ErrorKind::NotFound,
                        format!(
                            "model `{m}` is not served by this gateway; known models: {}",
                            live.model_names().join(", ")
                        ),
                    )
                    .with_code("model_not_found")
                    .with_param("model"),
                )
                .into_response();
            }
        },
    };
    let settings = &live.config.health_checks;
    // With background checks on, the latest round answers (as LiteLLM); before the first round
    // has ended, the checks run now.
    if settings.background
        && let Some((results, _age)) = app.health.latest()
    {
        return axum::Json(answer(&results, group.as_deref(), settings.details)).into_response();
    }
    let results = check_all(&app.http(), &live, group.as_deref()).await;
    axum::Json(answer(&results, group.as_deref(), settings.details)).into_response()
}

/// Runs the background checks while the gateway lives: a round every `health_check_interval`
/// seconds when `background_health_checks` is on (both re-read after each round, so a reload
/// turns them on or off).
pub fn start_background(app: &Arc<App>) {
    let weak: Weak<App> = Arc::downgrade(app);
    tokio::spawn(async move {
        loop {
            let Some(app) = weak.upgrade() else { return };
            let live = app.live.load_full();
            let settings = live.config.health_checks.clone();
            if settings.background {
                let results = check_all(&app.http, &live, None).await;
                app.health.publish(results);
            }
            drop(live);
            drop(app);
            // Off: look again later, a reload may turn the checks on.
            let wait = if settings.background { settings.interval_s } else { 5.0 };
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
    });
}
