//! LiteLLM configs written for providers tollgate does not know, Azure OpenAI, and wildcard model
//! names (issue 15): over real HTTP, with the mock (or a capturing upstream) behind the gateway.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::response::IntoResponse;
use common::{KEY, call, gateway, start_mock};
use serde_json::{Value, json};

/// What a capturing upstream saw: method, path with query, and headers.
#[derive(Debug, Clone)]
struct Seen {
    path_and_query: String,
    headers: Vec<(String, String)>,
}

/// An OpenAI-style upstream that answers every chat request and remembers what it was sent.
async fn capturing_upstream() -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    async fn answer(State(seen): State<Arc<Mutex<Vec<Seen>>>>, req: Request) -> axum::response::Response {
        let headers = req
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let path_and_query = req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
        seen.lock().unwrap().push(Seen {
            path_and_query,
            headers,
        });
        axum::Json(json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        }))
        .into_response()
    }
    let app = axum::Router::new().fallback(answer).with_state(Arc::clone(&seen));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    (addr, seen)
}

fn ask(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hello"}]})
}

#[tokio::test]
async fn providers_tollgate_cannot_reach_are_skipped_and_the_rest_is_served() {
    let mock = start_mock(&[]).await;
    let yaml = format!(
        "model_list:
  - model_name: claude-bedrock
    litellm_params: {{model: bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0, aws_region_name: us-east-1}}
  - model_name: gemini-vertex
    litellm_params: {{model: vertex_ai/gemini-2.5-pro, api_base: 'http://{mock}/v1'}}
  - model_name: local
    litellm_params: {{model: lm_studio/qwen3-8b, api_base: 'http://{mock}/v1', input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}}
  - model_name: nowhere
    litellm_params: {{model: mystery_ai/m1}}
  - model_name: ds
    litellm_params: {{model: deepseek/deepseek-chat, api_base: 'http://{mock}/v1', api_key: k}}
general_settings: {{master_key: {KEY}}}
"
    );
    let gw = gateway(&yaml).await;
    let live = gw.gw.app.live.load_full();
    let skipped: Vec<(&str, &str)> = live
        .unserved
        .iter()
        .map(|u| (u.model_name.as_str(), u.reason.as_str()))
        .collect();
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    assert!(skipped[0].0 == "claude-bedrock" && skipped[0].1.contains("bedrock/ is not yet served"));
    // An api_base does not make Vertex AI's OAuth an OpenAI endpoint.
    assert!(skipped[1].0 == "gemini-vertex" && skipped[1].1.contains("vertex_ai/ is not yet served"));
    assert!(skipped[2].0 == "nowhere" && skipped[2].1.contains("set litellm_params.api_base"));
    let warned: Vec<String> = live
        .all_warnings()
        .map(|w| format!("{}: {}", w.path, w.message))
        .collect();
    assert!(
        warned
            .iter()
            .any(|w| w.starts_with("model_list[2].litellm_params.model: unknown provider prefix `lm_studio/`")),
        "{warned:?}"
    );
    assert!(
        warned
            .iter()
            .any(|w| w.starts_with("model_list[0].litellm_params.model: bedrock/"))
    );

    // The known provider and the OpenAI-compatible one both answer.
    assert_eq!(gw.chat(ask("ds")).await.status(), 200);
    let r = gw.chat(ask("local")).await;
    assert_eq!(r.status(), 200);
    // A skipped group's name says why it is not served.
    let r = gw.chat(ask("claude-bedrock")).await;
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("is skipped: bedrock/ is not yet served"), "{msg}");

    let records = gw.records().await;
    let local = records.iter().find(|r| r.model_group == "local").unwrap();
    // The prefix as written names the provider; the upstream got the model without it.
    assert_eq!(local.provider, "lm_studio");
    assert_eq!(local.model, "lm_studio/qwen3-8b");
    assert!(local.cost_usd.unwrap() > 0.0);
}

#[tokio::test]
async fn azure_deployments_use_the_deployment_path_api_version_and_api_key_header() {
    let (upstream, seen) = capturing_upstream().await;
    let yaml = format!(
        "model_list:
  - model_name: gpt-4o
    litellm_params:
      model: azure/gpt4o-prod
      api_base: http://{upstream}
      api_key: azure-key-123
      api_version: 2025-01-01-preview
      input_cost_per_token: 0.0000025
      output_cost_per_token: 0.00001
  - model_name: gpt-4o-default-version
    litellm_params: {{model: azure/other, api_base: 'http://{upstream}/openai', api_key: azure-key-123}}
general_settings: {{master_key: {KEY}}}
"
    );
    let gw = gateway(&yaml).await;
    assert_eq!(gw.chat(ask("gpt-4o")).await.status(), 200);
    assert_eq!(gw.chat(ask("gpt-4o-default-version")).await.status(), 200);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen[0].path_and_query,
        "/openai/deployments/gpt4o-prod/chat/completions?api-version=2025-01-01-preview"
    );
    assert_eq!(
        seen[1].path_and_query,
        "/openai/deployments/other/chat/completions?api-version=2024-10-21"
    );
    for s in &seen {
        let header = |name: &str| s.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        assert_eq!(header("api-key").as_deref(), Some("azure-key-123"));
        assert_eq!(header("authorization"), None, "Azure takes the key in api-key only");
    }
    let records = gw.records().await;
    let r = records.iter().find(|r| r.model_group == "gpt-4o").unwrap();
    assert_eq!(r.provider, "azure");
    // 10 × 2.5e-6 + 5 × 1e-5
    assert!((r.cost_usd.unwrap() - 7.5e-5).abs() < 1e-12, "{:?}", r.cost_usd);
}

fn wildcard_config(mock: SocketAddr) -> String {
    format!(
        "model_list:
  - model_name: \"*\"
    litellm_params: {{model: \"openai/*\", api_base: 'http://{mock}/v1', api_key: k}}
  - model_name: \"anthropic/*\"
    litellm_params: {{model: \"anthropic/*\", api_base: 'http://{mock}', api_key: k}}
  - model_name: \"claude-haiku-*\"
    litellm_params: {{model: deepseek/deepseek-chat, api_base: 'http://{mock}/v1', api_key: k}}
  - model_name: exact
    litellm_params: {{model: openai/exact-model, api_base: 'http://{mock}/v1', api_key: k}}
router_settings:
  model_group_alias: {{fast: claude-haiku-4-5}}
general_settings: {{master_key: {KEY}}}
"
    )
}

#[tokio::test]
async fn wildcard_names_route_to_the_most_specific_pattern_and_forward_the_name() {
    let mock = start_mock(&[]).await;
    let gw = gateway(&wildcard_config(mock)).await;
    for (model, answered_as) in [
        ("anthropic/claude-sonnet-4-5", "anthropic/claude-sonnet-4-5"),
        ("gpt-4o", "gpt-4o"),
        ("claude-haiku-4-5", "claude-haiku-4-5"),
        ("exact", "exact"),
        // An alias answers as the name it points at, as for a configured group.
        ("fast", "claude-haiku-4-5"),
    ] {
        let r = gw.chat(ask(model)).await;
        assert_eq!(r.status(), 200, "{model}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["model"], answered_as, "{model}");
    }
    // The same name twice shares one resolved group (its deployments' statistics carry over).
    let live = gw.gw.app.live.load_full();
    let a = live.group("gpt-4o").unwrap();
    let b = live.group("gpt-4o").unwrap();
    assert!(Arc::ptr_eq(&a, &b));

    // /v1/models lists the patterns as written; /v1/model/info resolves a concrete name.
    let ids = gw.model_ids().await;
    assert_eq!(
        ids,
        ["exact", "fast", "*", "anthropic/*", "claude-haiku-*"].map(String::from)
    );
    let (status, info) = call(
        &gw,
        "GET",
        "/v1/model/info?model=anthropic/claude-sonnet-4-5",
        KEY,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let entry = &info["data"][0];
    assert_eq!(entry["model_name"], "anthropic/claude-sonnet-4-5");
    assert_eq!(entry["litellm_params"]["model"], "anthropic/claude-sonnet-4-5");
    assert_eq!(entry["model_info"]["litellm_provider"], "anthropic");
    assert_eq!(entry["model_info"]["input_cost_per_token"], 3e-6);

    let records = gw.records().await;
    let by_group = |g: &str| records.iter().find(|r| r.model_group == g).unwrap();
    // `anthropic/*` beats `*` for an anthropic/ name, and the name is forwarded as asked.
    let r = by_group("anthropic/claude-sonnet-4-5");
    assert_eq!(
        (r.model.as_str(), r.provider.as_str()),
        ("anthropic/claude-sonnet-4-5", "anthropic")
    );
    // Priced by the forwarded name (the built-in table's Claude Sonnet 4.5).
    let expect = r.prompt_tokens as f64 * 3e-6 + r.completion_tokens as f64 * 15e-6;
    assert!(
        (r.cost_usd.unwrap() - expect).abs() < 1e-12,
        "{:?} vs {expect}",
        r.cost_usd
    );
    // `*` with `openai/*`: the bare name gets the entry's provider.
    let r = by_group("gpt-4o");
    assert_eq!(r.model, "openai/gpt-4o");
    assert!(r.cost_usd.is_some(), "openai/gpt-4o is in the price table");
    // An entry without `*` in its model serves every name its pattern matches.
    assert_eq!(by_group("claude-haiku-4-5").model, "deepseek/deepseek-chat");
    // An exact group wins over every pattern; an alias resolves before the patterns.
    assert_eq!(by_group("exact").model, "openai/exact-model");
    assert_eq!(
        records.iter().filter(|r| r.model == "deepseek/deepseek-chat").count(),
        2
    );
}

#[tokio::test]
async fn keys_may_be_limited_to_wildcard_model_names() {
    let mock = start_mock(&[]).await;
    let gw = gateway(&wildcard_config(mock)).await;
    let (status, key) = call(
        &gw,
        "POST",
        "/key/generate",
        KEY,
        Some(json!({"models": ["anthropic/*"]})),
    )
    .await;
    assert_eq!(status, 200, "{key}");
    let key = key["key"].as_str().unwrap().to_string();
    let ask_as = |model: &str| {
        gw.http
            .post(format!("{}/v1/chat/completions", gw.base))
            .bearer_auth(&key)
            .json(&ask(model))
            .send()
    };
    assert_eq!(ask_as("anthropic/claude-sonnet-4-5").await.unwrap().status(), 200);
    assert_eq!(ask_as("gpt-4o").await.unwrap().status(), 401);
}

/// Claude Code sends dated Claude names (`claude-sonnet-4-5-20250929`); a `claude-*` pattern
/// sends every one of them to another provider, on the Messages API as on chat.
#[tokio::test]
async fn claude_codes_model_names_reach_any_provider_through_a_pattern() {
    let mock = start_mock(&[]).await;
    let yaml = format!(
        "model_list:
  - model_name: \"claude-*\"
    litellm_params: {{model: deepseek/deepseek-chat, api_base: 'http://{mock}/v1', api_key: k}}
general_settings: {{master_key: {KEY}}}
"
    );
    let gw = gateway(&yaml).await;
    let (status, msg) = call(
        &gw,
        "POST",
        "/v1/messages",
        KEY,
        Some(json!({"model": "claude-sonnet-4-5-20250929", "max_tokens": 64,
            "messages": [{"role": "user", "content": "hello"}]})),
    )
    .await;
    assert_eq!(status, 200, "{msg}");
    assert_eq!(msg["type"], "message");
    let (status, _) = call(
        &gw,
        "POST",
        "/v1/messages",
        KEY,
        Some(json!({"model": "gpt-4o", "max_tokens": 64, "messages": [{"role": "user", "content": "hello"}]})),
    )
    .await;
    assert_eq!(status, 404, "only claude-* names match");
    let records = gw.records().await;
    let r = records
        .iter()
        .find(|r| r.status == tollgate_core::RecordStatus::Success)
        .unwrap();
    assert_eq!(r.model_group, "claude-sonnet-4-5-20250929");
    assert_eq!(r.model, "deepseek/deepseek-chat");
    assert_eq!(r.endpoint.as_deref(), Some("messages"));
}
