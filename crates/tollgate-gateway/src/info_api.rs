//! What LiteLLM clients and dashboards ask the proxy about itself: `GET /routes` (every route
//! with its methods) and `GET /model_group/info` (per model group: providers, limits, prices,
//! mode, capabilities). Any valid key may ask; a virtual key sees only the groups it may call.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::edge::ApiError;
use crate::state::ModelGroup;

/// Every route the server answers: path, methods, what it is. Kept beside the router by a
/// test that reads the routers' sources (`tests/endpoints.rs`).
pub const ROUTES: &[(&str, &[&str], &str)] = &[
    ("/v1/chat/completions", &["POST"], "chat_completion"),
    ("/chat/completions", &["POST"], "chat_completion"),
    ("/v1/completions", &["POST"], "completion"),
    ("/completions", &["POST"], "completion"),
    ("/v1/embeddings", &["POST"], "embeddings"),
    ("/embeddings", &["POST"], "embeddings"),
    ("/v1/moderations", &["POST"], "moderations"),
    ("/moderations", &["POST"], "moderations"),
    ("/v1/rerank", &["POST"], "rerank"),
    ("/rerank", &["POST"], "rerank"),
    ("/v1/images/generations", &["POST"], "image_generation"),
    ("/images/generations", &["POST"], "image_generation"),
    ("/v1/messages", &["POST"], "anthropic_response"),
    ("/messages", &["POST"], "anthropic_response"),
    ("/v1/messages/count_tokens", &["POST"], "count_tokens"),
    ("/messages/count_tokens", &["POST"], "count_tokens"),
    ("/v1/responses", &["POST"], "responses"),
    ("/responses", &["POST"], "responses"),
    ("/v1/responses/{id}", &["GET", "DELETE"], "responses_api"),
    ("/responses/{id}", &["GET", "DELETE"], "responses_api"),
    ("/v1/audio/transcriptions", &["POST"], "audio_transcriptions"),
    ("/audio/transcriptions", &["POST"], "audio_transcriptions"),
    ("/v1/models", &["GET"], "model_list"),
    ("/models", &["GET"], "model_list"),
    ("/v1/model/info", &["GET"], "model_info"),
    ("/model/info", &["GET"], "model_info"),
    ("/model_group/info", &["GET"], "model_group_info"),
    ("/routes", &["GET"], "get_routes"),
    ("/health", &["GET"], "health_endpoint"),
    ("/health/liveliness", &["GET"], "health_liveliness"),
    ("/health/liveness", &["GET"], "health_liveliness"),
    ("/health/readiness", &["GET"], "health_readiness"),
    ("/metrics", &["GET"], "metrics"),
    ("/admin/reload", &["POST"], "admin_reload"),
    ("/admin/config", &["GET"], "admin_config"),
    ("/key/generate", &["POST"], "generate_key"),
    ("/key/info", &["GET"], "key_info"),
    ("/key/list", &["GET"], "list_keys"),
    ("/key/update", &["POST"], "update_key"),
    ("/key/delete", &["POST"], "delete_key"),
    ("/key/regenerate", &["POST"], "regenerate_key"),
    ("/key/block", &["POST"], "block_key"),
    ("/key/unblock", &["POST"], "unblock_key"),
    ("/spend/logs", &["GET"], "view_spend_logs"),
    ("/global/spend", &["GET"], "global_spend"),
    ("/global/spend/keys", &["GET"], "global_spend_keys"),
    ("/global/spend/models", &["GET"], "global_spend_models"),
    ("/global/spend/teams", &["GET"], "global_spend_teams"),
    ("/user/new", &["POST"], "new_user"),
    ("/user/info", &["GET"], "user_info"),
    ("/user/update", &["POST"], "user_update"),
    ("/user/delete", &["POST"], "delete_user"),
    ("/user/list", &["GET"], "get_users"),
    ("/team/new", &["POST"], "new_team"),
    ("/team/info", &["GET"], "team_info"),
    ("/team/update", &["POST"], "update_team"),
    ("/team/delete", &["POST"], "delete_team"),
    ("/team/list", &["GET"], "list_team"),
    ("/team/block", &["POST"], "block_team"),
    ("/team/unblock", &["POST"], "unblock_team"),
    ("/team/member_add", &["POST"], "team_member_add"),
    ("/team/member_update", &["POST"], "team_member_update"),
    ("/team/member_delete", &["POST"], "team_member_delete"),
    ("/organization/new", &["POST"], "new_organization"),
    ("/organization/info", &["GET", "POST"], "info_organization"),
    ("/organization/update", &["POST", "PATCH"], "update_organization"),
    ("/organization/delete", &["POST", "DELETE"], "delete_organization"),
    ("/organization/list", &["GET"], "list_organization"),
    ("/customer/new", &["POST"], "new_end_user"),
    ("/customer/info", &["GET"], "end_user_info"),
    ("/customer/update", &["POST"], "update_end_user"),
    ("/customer/delete", &["POST"], "delete_end_user"),
    ("/customer/block", &["POST"], "block_user"),
    ("/customer/unblock", &["POST"], "unblock_user"),
    ("/customer/list", &["GET"], "list_end_user"),
    ("/end_user/new", &["POST"], "new_end_user"),
    ("/end_user/info", &["GET"], "end_user_info"),
    ("/end_user/update", &["POST"], "update_end_user"),
    ("/end_user/delete", &["POST"], "delete_end_user"),
    ("/end_user/block", &["POST"], "block_user"),
    ("/end_user/unblock", &["POST"], "unblock_user"),
    ("/end_user/list", &["GET"], "list_end_user"),
    ("/budget/new", &["POST"], "new_budget"),
    ("/budget/info", &["GET", "POST"], "info_budget"),
    ("/budget/update", &["POST"], "update_budget"),
    ("/budget/delete", &["POST"], "delete_budget"),
    ("/budget/list", &["GET"], "list_budget"),
    // The dashboard (`ui/`): pages for a browser, signed in with a session cookie.
    ("/", &["GET"], "dashboard_redirect"),
    ("/ui", &["GET"], "dashboard"),
    ("/ui/", &["GET"], "dashboard"),
    ("/ui/signin", &["GET", "POST"], "dashboard_sign_in"),
    ("/ui/signout", &["POST"], "dashboard_sign_out"),
    ("/ui/overview", &["GET"], "dashboard_overview"),
    ("/ui/logs", &["GET"], "dashboard_logs"),
    ("/ui/logs/{request_id}", &["GET"], "dashboard_request"),
    ("/ui/report", &["GET"], "dashboard_report"),
    ("/ui/models", &["GET"], "dashboard_models"),
    ("/ui/playground", &["GET"], "dashboard_playground"),
    ("/ui/playground/chat", &["POST"], "dashboard_playground_chat"),
    ("/ui/keys", &["GET", "POST"], "dashboard_keys"),
    ("/ui/keys/block", &["POST"], "dashboard_block_key"),
    ("/ui/keys/unblock", &["POST"], "dashboard_unblock_key"),
    ("/ui/keys/delete", &["POST"], "dashboard_delete_key"),
    ("/ui/keys/budget", &["POST"], "dashboard_key_budget"),
    ("/ui/keys/regenerate", &["POST"], "dashboard_regenerate_key"),
    ("/ui/keys/limits", &["POST"], "dashboard_key_limits"),
    ("/ui/users", &["GET", "POST"], "dashboard_users"),
    ("/ui/users/{action}", &["POST"], "dashboard_user_change"),
    ("/ui/teams", &["GET", "POST"], "dashboard_teams"),
    ("/ui/teams/{action}", &["POST"], "dashboard_team_change"),
    ("/ui/assets/app.css", &["GET"], "dashboard_asset"),
    ("/ui/assets/app.js", &["GET"], "dashboard_asset"),
];

/// The OpenAI parameters a chat group takes: tollgate passes these on (translated for Gemini
/// and Anthropic).
const CHAT_PARAMS: &[&str] = &[
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "presence_penalty",
    "response_format",
    "seed",
    "stop",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "reasoning_effort",
    "user",
];

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/routes", get(list_routes))
        .route("/model_group/info", get(model_group_info))
}

async fn list_routes(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let live = app.live.load_full();
    if let Err(e) = crate::pipeline::authenticate::caller(&app, &live, &headers).await {
        return ApiError(e).into_response();
    }
    let routes: Vec<Value> = ROUTES
        .iter()
        .map(|(path, methods, name)| json!({"path": path, "methods": methods, "name": name, "endpoint": name}))
        .collect();
    axum::Json(json!({"routes": routes})).into_response()
}

#[derive(Deserialize)]
struct GroupQuery {
    model_group: Option<String>,
}

async fn model_group_info(State(app): State<Arc<App>>, headers: HeaderMap, Query(q): Query<GroupQuery>) -> Response {
    let live = app.live.load_full();
    let caller = match crate::pipeline::authenticate::caller(&app, &live, &headers).await {
        Ok(c) => c,
        Err(e) => return ApiError(e).into_response(),
    };
    let data: Vec<Value> = live
        .group_order
        .iter()
        .filter(|g| caller.may_use(g) && q.model_group.as_ref().is_none_or(|want| want == *g))
        .filter_map(|g| live.groups.get(g).map(|group| group_info(g, group)))
        .collect();
    axum::Json(json!({"data": data})).into_response()
}

/// A flag from the deployments' `model_info`: set when any deployment says so.
fn flag(group: &ModelGroup, name: &str, default: bool) -> bool {
    let said: Vec<bool> = group
        .deployments
        .iter()
        .filter_map(|d| d.config.model_info.extra.get(name).and_then(Value::as_bool))
        .collect();
    if said.is_empty() { default } else { said.contains(&true) }
}

/// LiteLLM's `ModelGroupInfo` for one group: limits and prices are the largest over its
/// deployments (what a client must be ready for), rpm and tpm their sum.
fn group_info(name: &str, group: &ModelGroup) -> Value {
    let ds = &group.deployments;
    let providers: BTreeSet<&str> = ds.iter().map(|d| d.route.provider_name.as_str()).collect();
    let max_u = |f: &dyn Fn(&crate::state::Deployment) -> Option<u64>| ds.iter().filter_map(|d| f(d)).max();
    let max_f = |f: &dyn Fn(&crate::state::Deployment) -> Option<f64>| {
        ds.iter()
            .filter_map(|d| f(d))
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
    };
    let sum = |f: &dyn Fn(&crate::state::Deployment) -> Option<u64>| {
        let v: Vec<u64> = ds.iter().filter_map(|d| f(d)).collect();
        (!v.is_empty()).then(|| v.iter().sum::<u64>())
    };
    let mode = ds
        .iter()
        .find_map(|d| d.config.model_info.extra.get("mode").and_then(Value::as_str))
        .unwrap_or("chat");
    let params: Vec<&str> = if mode == "chat" {
        CHAT_PARAMS.to_vec()
    } else {
        Vec::new()
    };
    json!({
        "model_group": name,
        "providers": providers,
        "max_input_tokens": max_u(&|d| d.max_input_tokens),
        "max_output_tokens": max_u(&|d| d.max_output_tokens),
        "input_cost_per_token": max_f(&|d| d.price.as_ref().and_then(|p| p.input_cost_per_token)),
        "output_cost_per_token": max_f(&|d| d.price.as_ref().and_then(|p| p.output_cost_per_token)),
        "mode": mode,
        "tpm": sum(&|d| d.config.tpm),
        "rpm": sum(&|d| d.config.rpm),
        "supports_parallel_function_calling": flag(group, "supports_parallel_function_calling", false),
        "supports_vision": flag(group, "supports_vision", false),
        "supports_function_calling": flag(group, "supports_function_calling", mode == "chat"),
        "supports_reasoning": flag(group, "supports_reasoning", false),
        "supports_web_search": flag(group, "supports_web_search", false),
        "supported_openai_params": params,
    })
}
