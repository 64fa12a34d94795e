//! `/v1/responses` over real HTTP (the SDK's view is in tests/e2e/test_responses_api.py): stored
//! responses belong to the key that created them, bad bodies get OpenAI's error shape, and a
//! workflow answers as a response.

mod common;

use common::{KEY, call, gateway, start_mock};
use serde_json::{Value, json};

fn config(mock: std::net::SocketAddr) -> String {
    format!(
        "model_list:
  - model_name: m
    litellm_params: {{model: openai/m, api_base: 'http://{mock}/v1', api_key: k, input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}}
general_settings: {{master_key: {KEY}, max_request_size_mb: 0.01}}
"
    )
}

#[tokio::test]
async fn stored_responses_belong_to_the_key_that_created_them() {
    let mock = start_mock(&[]).await;
    let gw = gateway(&config(mock)).await;
    let (status, key) = call(&gw, "POST", "/key/generate", KEY, Some(json!({}))).await;
    assert_eq!(status, 200);
    let key = key["key"].as_str().unwrap().to_string();

    let (status, mine) = call(
        &gw,
        "POST",
        "/v1/responses",
        &key,
        Some(json!({"model": "m", "input": "hi"})),
    )
    .await;
    assert_eq!(status, 200, "{mine}");
    let id = mine["id"].as_str().unwrap();
    assert_eq!(mine["object"], "response");
    let (status, got) = call(&gw, "GET", &format!("/v1/responses/{id}"), &key, None).await;
    assert_eq!((status, &got["id"]), (200, &mine["id"]));
    // The master key is another owner: it neither reads nor continues nor deletes it.
    let (status, e) = call(&gw, "GET", &format!("/v1/responses/{id}"), KEY, None).await;
    assert_eq!(status, 404);
    assert_eq!(e["error"]["code"], "not_found");
    let (status, e) = call(
        &gw,
        "POST",
        "/v1/responses",
        KEY,
        Some(json!({"model": "m", "input": "more", "previous_response_id": id})),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(e["error"]["param"], "previous_response_id");
    let (status, _) = call(&gw, "DELETE", &format!("/v1/responses/{id}"), KEY, None).await;
    assert_eq!(status, 404);
    let (status, deleted) = call(&gw, "DELETE", &format!("/v1/responses/{id}"), &key, None).await;
    assert_eq!(
        (status, deleted),
        (200, json!({"id": id, "object": "response", "deleted": true}))
    );

    let records = gw.records().await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].endpoint.as_deref(), Some("responses"));
    assert!(records[0].key_hash.is_some());
}

#[tokio::test]
async fn bad_bodies_get_openai_errors() {
    let mock = start_mock(&[]).await;
    let gw = gateway(&config(mock)).await;
    let raw = |body: &'static str| {
        gw.http
            .post(format!("{}/v1/responses", gw.base))
            .bearer_auth(KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let r = raw("{not json").await.unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert!(
        e["error"]["message"].as_str().unwrap().contains("not valid JSON"),
        "{e}"
    );
    let (status, e) = call(&gw, "POST", "/v1/responses", KEY, Some(json!({"input": "hi"}))).await;
    assert_eq!((status, &e["error"]["param"]), (400, &json!("model")));
    let (status, e) = call(
        &gw,
        "POST",
        "/v1/responses",
        KEY,
        Some(json!({"model": "m", "input": 7})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        e["error"]["message"].as_str().unwrap().contains("`input` must be"),
        "{e}"
    );
    // max_request_size_mb: 0.01 (10 KB).
    let big = json!({"model": "m", "input": "x".repeat(20_000)});
    let (status, _) = call(&gw, "POST", "/v1/responses", KEY, Some(big)).await;
    assert_eq!(status, 413);
    let (status, _) = call(
        &gw,
        "POST",
        "/v1/responses",
        "sk-wrong",
        Some(json!({"model": "m", "input": "hi"})),
    )
    .await;
    assert_eq!(status, 401);
    let records = gw.records().await;
    assert!(records.is_empty(), "refused before the pipeline: {records:?}");
}

/// A request in the shape Codex CLI sends (its headers, long instructions, environment context as
/// an input message, the shell tool, reasoning with encrypted content asked for, `store: false`,
/// streamed), answered as the Responses API's event stream and recorded with its client.
#[tokio::test]
async fn a_codex_cli_request_is_answered_as_a_stream_of_typed_events() {
    let mock = start_mock(&[]).await;
    let gw = gateway(&config(mock).replace("max_request_size_mb: 0.01", "max_request_size_mb: 4")).await;
    let body = json!({
        "model": "m",
        "instructions": "You are Codex, based on GPT-5. You are running as a coding agent in the Codex CLI on a user's computer.\n\n## General\n\n- Prefer `rg` over `grep`.",
        "input": [
            {"type": "message", "role": "user", "content": [{"type": "input_text",
                "text": "<environment_context>\n  <cwd>/home/dev/repo</cwd>\n  <approval_policy>on-request</approval_policy>\n  <sandbox_mode>workspace-write</sandbox_mode>\n  <network_access>restricted</network_access>\n  <shell>bash</shell>\n</environment_context>"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Run the tests with the shell tool and fix what fails."}]}
        ],
        "tools": [{"type": "function", "name": "shell", "description": "Runs a shell command and returns its output.", "strict": false,
            "parameters": {"type": "object", "properties": {"command": {"type": "array", "items": {"type": "string"}},
                "workdir": {"type": "string"}, "timeout_ms": {"type": "number"}}, "required": ["command"], "additionalProperties": false}}],
        "tool_choice": "auto",
        "parallel_tool_calls": false,
        "reasoning": {"effort": "medium", "summary": "auto"},
        "store": false,
        "stream": true,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
    });
    let resp = gw
        .http
        .post(format!("{}/v1/responses", gw.base))
        .bearer_auth(KEY)
        .header(
            "user-agent",
            "codex_cli_rs/0.46.0 (Ubuntu 24.4.0; x86_64) xterm-256color",
        )
        .header("originator", "codex_cli_rs")
        .header("session_id", "0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
        .header("openai-beta", "responses=experimental")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let text = resp.text().await.unwrap();
    let events: Vec<(String, Value)> = text
        .split("\n\n")
        .filter(|f| !f.trim().is_empty())
        .map(|f| {
            let name = f.lines().find_map(|l| l.strip_prefix("event: ")).unwrap().to_string();
            let data = f.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            (name, serde_json::from_str(data).unwrap())
        })
        .collect();
    let mut names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    // Argument deltas come as the upstream splits them.
    names.dedup();
    // The mock calls the tool: the question names it.
    assert_eq!(
        names,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ],
        "{text}"
    );
    for (name, data) in &events {
        assert_eq!(data["type"], name.as_str());
    }
    let done = &events.last().unwrap().1["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"][0]["type"], "function_call");
    assert_eq!(done["output"][0]["name"], "shell");
    let args: Value = serde_json::from_str(done["output"][0]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(
        args,
        json!({"command": []}),
        "the mock fills the first property with an empty array"
    );
    assert!(done["usage"]["input_tokens"].as_u64().unwrap() > 0);
    // `store: false`: nothing to read back.
    let id = done["id"].as_str().unwrap();
    let (status, _) = call(&gw, "GET", &format!("/v1/responses/{id}"), KEY, None).await;
    assert_eq!(status, 404);
    let records = gw.records().await;
    let r = &records[0];
    assert_eq!(r.endpoint.as_deref(), Some("responses"));
    assert!(r.stream);
    assert!(r.user_agent.as_deref().unwrap().starts_with("codex_cli_rs/0.46.0"));
}
