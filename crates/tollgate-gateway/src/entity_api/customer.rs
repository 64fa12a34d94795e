//! Customers (LiteLLM's end users: the OpenAI `user` field of a request): `POST /customer/new`,
//! `GET /customer/info?end_user_id=`, `POST /customer/update`, `POST /customer/delete`,
//! `POST /customer/block`, `POST /customer/unblock`, `GET /customer/list`, each also under
//! LiteLLM's older `/end_user/…` path. Budget fields are stored flat on the customer; LiteLLM's
//! nested `litellm_budget_table` is shown from them (or from the tier `budget_id` names).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use serde_json::{Map, Value, json};
use tollgate_store::{EntityKind, EntityRow};

use crate::app::App;
use crate::entity_api::fields::{BUDGET, Field, Fields, apply, query_id, required_id, required_ids};
use crate::entity_api::{admin, answer, rows, view};
use crate::mgmt::{ApiError, ApiResult, object};

pub(super) fn routes() -> Router<Arc<App>> {
    let mut r = Router::new();
    for base in ["/customer", "/end_user"] {
        r = r
            .route(&format!("{base}/new"), post(new))
            .route(&format!("{base}/info"), get(info))
            .route(&format!("{base}/update"), post(update))
            .route(&format!("{base}/delete"), post(delete))
            .route(&format!("{base}/block"), post(block))
            .route(&format!("{base}/unblock"), post(unblock))
            .route(&format!("{base}/list"), get(list));
    }
    r
}

const CUSTOMER: Fields = &[
    ("alias", Field::Text),
    ("blocked", Field::Flag),
    ("default_model", Field::Text),
    ("allowed_model_region", Field::OneOf(&["eu", "us"])),
    ("metadata", Field::Object),
];

/// Applies a request's fields with LiteLLM's checks: `max_budget` or `budget_id`, not both; a
/// `default_model` the proxy serves; a tier that exists.
async fn apply_customer(app: &App, doc: &mut Map<String, Value>, m: &Map<String, Value>) -> Result<(), ApiError> {
    let given = |k: &str| m.get(k).is_some_and(|v| !v.is_null());
    if given("max_budget") && given("budget_id") {
        return Err(ApiError::bad(
            "set either `max_budget` or `budget_id`, not both",
            Some("budget_id"),
        ));
    }
    apply(doc, m, &[CUSTOMER, BUDGET])?;
    if let Some(model) = m.get("default_model").and_then(Value::as_str) {
        let names = app.live.load().model_names();
        if !names.iter().any(|n| n == model) {
            return Err(ApiError::bad(
                format!("default_model `{model}` is not served here; choose one of {names:?}"),
                Some("default_model"),
            ));
        }
    }
    if given("budget_id") {
        rows::check_budget_ref(app, doc).await?;
    }
    Ok(())
}

async fn new(State(app): State<Arc<App>>, headers: HeaderMap, body: axum::body::Bytes) -> ApiResult {
    admin(&app, &headers).await?;
    let m = object(&body)?;
    let id = required_id(&m, "user_id")?;
    let mut doc = Map::new();
    doc.insert("user_id".into(), json!(id));
    doc.insert("blocked".into(), json!(false));
    apply_customer(&app, &mut doc, &m).await?;
    let row = rows::create(&app, EntityRow::new(EntityKind::Customer, &id, doc), "user_id").await?;
    answer(view::shown(&app, &row).await?)
}

async fn info(State(app): State<Arc<App>>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> ApiResult {
    admin(&app, &headers).await?;
    let id = query_id(&q, "end_user_id")?;
    let row = rows::existing(&app, EntityKind::Customer, &id, "end_user_id").await?;
    answer(view::shown(&app, &row).await?)
}

async fn update(State(app): State<Arc<App>>, headers: HeaderMap, body: axum::body::Bytes) -> ApiResult {
    admin(&app, &headers).await?;
    let m = object(&body)?;
    let id = required_id(&m, "user_id")?;
    let mut row = rows::existing(&app, EntityKind::Customer, &id, "user_id").await?;
    apply_customer(&app, &mut row.doc, &m).await?;
    rows::save(&app, &row).await?;
    answer(view::shown(&app, &row).await?)
}

/// The customers a request names, all of which must exist (404 naming those that do not).
async fn all_named(app: &App, ids: &[String]) -> Result<Vec<EntityRow>, ApiError> {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for id in ids {
        match rows::get(app, EntityKind::Customer, id).await? {
            Some(r) => found.push(r),
            None => missing.push(id.as_str()),
        }
    }
    if !missing.is_empty() {
        return Err(ApiError::not_found(
            format!("no customer has the id(s) {}", missing.join(", ")),
            "user_ids",
        ));
    }
    Ok(found)
}

async fn delete(State(app): State<Arc<App>>, headers: HeaderMap, body: axum::body::Bytes) -> ApiResult {
    admin(&app, &headers).await?;
    let m = object(&body)?;
    let ids = required_ids(&m, "user_ids")?;
    all_named(&app, &ids).await?;
    let gone = rows::remove(&app, EntityKind::Customer, ids.clone()).await?;
    answer(json!({
        "deleted_customers": gone.len(),
        "message": format!("Successfully deleted customers with ids: {ids:?}"),
    }))
}

/// Blocks (making customers not seen before, as LiteLLM does) or unblocks customers.
async fn set_blocked(app: Arc<App>, headers: HeaderMap, body: axum::body::Bytes, blocked: bool) -> ApiResult {
    admin(&app, &headers).await?;
    let m = object(&body)?;
    let ids = required_ids(&m, "user_ids")?;
    let mut rows_changed = Vec::new();
    if blocked {
        for id in &ids {
            let row = match rows::get(&app, EntityKind::Customer, id).await? {
                Some(mut row) => {
                    row.doc.insert("blocked".into(), json!(true));
                    rows::save(&app, &row).await?;
                    row
                }
                None => {
                    let mut doc = Map::new();
                    doc.insert("user_id".into(), json!(id));
                    doc.insert("blocked".into(), json!(true));
                    rows::create(&app, EntityRow::new(EntityKind::Customer, id, doc), "user_ids").await?
                }
            };
            rows_changed.push(row);
        }
    } else {
        for mut row in all_named(&app, &ids).await? {
            row.doc.insert("blocked".into(), json!(false));
            rows::save(&app, &row).await?;
            rows_changed.push(row);
        }
    }
    let field = if blocked { "blocked_users" } else { "unblocked_users" };
    answer(json!({ field: view::shown_all(&app, &rows_changed).await? }))
}

async fn block(State(app): State<Arc<App>>, headers: HeaderMap, body: axum::body::Bytes) -> ApiResult {
    set_blocked(app, headers, body, true).await
}

async fn unblock(State(app): State<Arc<App>>, headers: HeaderMap, body: axum::body::Bytes) -> ApiResult {
    set_blocked(app, headers, body, false).await
}

async fn list(State(app): State<Arc<App>>, headers: HeaderMap) -> ApiResult {
    admin(&app, &headers).await?;
    let all = rows::all(&app, EntityKind::Customer, None).await?;
    answer(json!(view::shown_all(&app, &all).await?))
}
