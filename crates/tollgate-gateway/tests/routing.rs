//! Retries, fallbacks, cooldown and workflows against the mock with failure injection, over
//! real HTTP.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tollgate_core::{Record, RecordStatus};

mod common;
use common::{KEY, gateway, start_mock};

/// An upstream that always answers 400 "maximum context length", like a provider whose context
/// window the prompt exceeds.
async fn small_context_upstream() -> SocketAddr {
    let app = axum::Router::new().fallback(|| async {
        (
            axum::http::StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": {"message": "This model's maximum context length is 4096 tokens", "type": "invalid_request_error", "code": "context_length_exceeded"}})),
        )
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    addr
}

fn model(name: &str, upstream: &str, mock: SocketAddr) -> String {
    format!(
        "  - model_name: {name}\n    litellm_params:\n      model: {upstream}\n      api_base: http://{mock}/v1\n      api_key: k\n      input_cost_per_token: 0.000001\n      output_cost_per_token: 0.000002\n"
    )
}

fn ask(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Refactor the parser"}]})
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn retries_with_backoff_record_every_attempt_under_one_trace() {
    // `flaky` fails every other request, starting with the first.
    let mock = start_mock(&["flaky=0.5:500"]).await;
    // `retry_after: 0.3`: the first backoff is 0.3 s with jitter down to half of it.
    let yaml = format!(
        "model_list:\n{}router_settings:\n  num_retries: 2\n  retry_after: 0.3\ngeneral_settings:\n  master_key: {KEY}\n",
        model("flaky", "openai/flaky", mock)
    );
    let g = gateway(&yaml).await;
    let t = Instant::now();
    let r = g.chat(ask("flaky")).await;
    assert_eq!(r.status(), 200);
    assert!(
        t.elapsed() >= Duration::from_millis(150),
        "the retry waited its backoff: {:?}",
        t.elapsed()
    );
    assert_eq!(header(&r, "x-tollgate-attempts"), "2");
    assert_eq!(header(&r, "x-litellm-attempted-retries"), "1");
    assert_eq!(header(&r, "x-litellm-attempted-fallbacks"), "0");
    let rid = header(&r, "x-tollgate-request-id");
    let records = g.records().await;
    assert_eq!(records.len(), 2);
    let failed = records.iter().find(|r| r.status == RecordStatus::Failure).unwrap();
    let ok = records.iter().find(|r| r.status == RecordStatus::Success).unwrap();
    assert_eq!((failed.attempt, ok.attempt), (Some(1), Some(2)));
    assert_eq!(failed.http_status, 500);
    assert_eq!(failed.model_group, "flaky");
    assert_eq!(failed.trace_id, ok.trace_id);
    assert_eq!(ok.request_id, rid);
    // The backoff is the provider's time, not the gateway's: the answer's overhead excludes it.
    assert!(ok.latency_ms >= 150.0, "{ok:?}");
    assert!(ok.overhead_ms.unwrap() <= ok.latency_ms - 150.0, "{ok:?}");
}

#[tokio::test]
async fn overhead_excludes_upstream_wait_failed_attempts_and_backoff() {
    // Every answer takes 200 ms; the first attempt fails after its 200 ms, then 0.2 s of backoff
    // (at least 0.1 s with jitter), then the second attempt takes 200 ms.
    let mock = common::start_mock_with(
        &["slow=0.5:500"],
        tollgate_mock::MockConfig {
            delay_ms: 200,
            ..Default::default()
        },
    )
    .await;
    let yaml = format!(
        "model_list:\n{}router_settings:\n  num_retries: 1\n  retry_after: 0.2\ngeneral_settings:\n  master_key: {KEY}\n",
        model("slow", "openai/slow", mock)
    );
    let g = gateway(&yaml).await;
    let r = g.chat(ask("slow")).await;
    assert_eq!(r.status(), 200);
    let header_overhead: f64 = header(&r, "x-tollgate-overhead-ms").parse().unwrap();
    // The same for a stream (the schedule fails its first attempt too).
    let mut body = ask("slow");
    body["stream"] = json!(true);
    let r = g.chat(body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-tollgate-attempts"), "2");
    let stream_header_overhead: f64 = header(&r, "x-tollgate-overhead-ms").parse().unwrap();
    assert!(r.text().await.unwrap().ends_with("data: [DONE]\n\n"));
    assert!(stream_header_overhead < 100.0, "{stream_header_overhead}");
    let records = g.records().await;
    let streamed = records
        .iter()
        .find(|r| r.status == RecordStatus::Success && r.stream)
        .unwrap();
    assert!(streamed.overhead_ms.unwrap() < 100.0, "{streamed:?}");
    let ok = records
        .iter()
        .find(|r| r.status == RecordStatus::Success && !r.stream)
        .unwrap();
    let (latency, upstream, overhead) = (ok.latency_ms, ok.upstream_ms.unwrap(), ok.overhead_ms.unwrap());
    assert!(latency >= 500.0, "{ok:?}");
    assert!(upstream >= 200.0, "the successful attempt's own wait: {ok:?}");
    // What is neither the answer's wait nor overhead is the failed attempt and the backoff.
    assert!(latency - upstream - overhead >= 300.0, "{ok:?}");
    // Had any of the waiting been counted, overhead would be at least 100 ms.
    assert!(overhead < 100.0 && header_overhead < 100.0, "{ok:?}");
}

#[tokio::test]
async fn a_failed_attempts_overhead_excludes_earlier_attempts_and_backoff() {
    let mock = common::start_mock_with(
        &["down=1.0:500"],
        tollgate_mock::MockConfig {
            delay_ms: 200,
            ..Default::default()
        },
    )
    .await;
    let yaml = format!(
        "model_list:\n{}router_settings:\n  num_retries: 1\n  retry_after: 0.2\ngeneral_settings:\n  master_key: {KEY}\n",
        model("down", "openai/down", mock)
    );
    let g = gateway(&yaml).await;
    assert_eq!(g.chat(ask("down")).await.status(), 500);
    let records = g.records().await;
    let second = records.iter().find(|r| r.attempt == Some(2)).unwrap();
    // Its latency holds the first attempt (200 ms), the backoff and its own 200 ms wait.
    assert!(second.latency_ms >= 500.0, "{second:?}");
    assert!(second.overhead_ms.unwrap() < 100.0, "{second:?}");
}

/// The minute the router's rpm/tpm windows are in.
fn minute() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 60
}

#[tokio::test]
async fn per_deployment_rpm_and_tpm_limits_are_enforced() {
    let mock = start_mock(&[]).await;
    let yaml = format!(
        "model_list:\n{}      rpm: 2\n{}      tpm: 1\nrouter_settings:\n  num_retries: 0\ngeneral_settings:\n  master_key: {KEY}\n",
        model("two-a-minute", "openai/two", mock),
        model("one-token", "openai/one", mock),
    );
    let g = gateway(&yaml).await;
    // The windows are calendar minutes: a run that straddles a minute boundary is repeated.
    let mut checked = false;
    for _ in 0..3 {
        let start = minute();
        let mut rpm = Vec::new();
        for _ in 0..3 {
            rpm.push(g.chat(ask("two-a-minute")).await.status().as_u16());
        }
        let mut tpm = Vec::new();
        for _ in 0..2 {
            tpm.push(g.chat(ask("one-token")).await.status().as_u16());
        }
        if minute() == start {
            assert_eq!(rpm, [200, 200, 503], "the third request in a minute is over rpm: 2");
            assert_eq!(tpm, [200, 503], "the first answer used up tpm: 1");
            checked = true;
            break;
        }
    }
    assert!(checked, "three runs straddled a minute boundary");
    g.records().await;
}

#[tokio::test]
async fn retry_after_is_honoured_and_non_retryable_errors_are_not_retried() {
    let mock = start_mock(&["limited=0.5:429", "refuses=1.0:400"]).await;
    let yaml = format!(
        "model_list:\n{}{}router_settings:\n  num_retries: 3\ngeneral_settings:\n  master_key: {KEY}\n",
        model("limited", "openai/limited", mock),
        model("refuses", "openai/refuses", mock)
    );
    let g = gateway(&yaml).await;
    let t = Instant::now();
    let r = g.chat(ask("limited")).await;
    assert_eq!(r.status(), 200);
    // The mock's 429 says Retry-After: 1; the retry waited for it.
    assert!(t.elapsed() >= Duration::from_millis(950), "{:?}", t.elapsed());
    let r = g.chat(ask("refuses")).await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        header(&r, "x-tollgate-attempts"),
        "1",
        "a 400 is the client's problem: no retry"
    );
    g.records().await;
}

#[tokio::test]
async fn fallbacks_default_fallbacks_and_aliases() {
    let mock = start_mock(&["broken=1.0:500", "also-broken=1.0:503"]).await;
    let yaml = format!(
        "model_list:\n{}{}{}router_settings:\n  fallbacks: [{{broken: [good]}}]\n  default_fallbacks: [good]\n  model_group_alias: {{nice: good}}\ngeneral_settings:\n  master_key: {KEY}\n",
        model("broken", "openai/broken", mock),
        model("also-broken", "openai/also-broken", mock),
        model("good", "openai/good", mock)
    );
    let g = gateway(&yaml).await;
    let r = g.chat(ask("broken")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-litellm-attempted-fallbacks"), "1");
    assert_eq!(header(&r, "x-tollgate-model-group"), "good");
    let r = g.chat(ask("also-broken")).await;
    assert_eq!(r.status(), 200, "default_fallbacks cover groups without their own");
    let r = g.chat(ask("nice")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-tollgate-model-group"), "good");
    let ids = g.model_ids().await;
    assert!(ids.iter().any(|m| m == "nice"));
    let records = g.records().await;
    let failures: Vec<&str> = records
        .iter()
        .filter(|r| r.status == RecordStatus::Failure)
        .map(|r| r.model_group.as_str())
        .collect();
    assert_eq!(failures, vec!["broken", "also-broken"]);
}

#[tokio::test]
async fn context_window_errors_go_to_context_window_fallbacks() {
    let small = small_context_upstream().await;
    let mock = start_mock(&[]).await;
    let yaml = format!(
        "model_list:\n{}{}router_settings:\n  num_retries: 2\n  context_window_fallbacks: [{{small: [large]}}]\ngeneral_settings:\n  master_key: {KEY}\n",
        model("small", "openai/small", small),
        model("large", "openai/large", mock)
    );
    let g = gateway(&yaml).await;
    let r = g.chat(ask("small")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "x-tollgate-attempts"),
        "2",
        "no retry of the same group on a context error"
    );
    assert_eq!(header(&r, "x-tollgate-model-group"), "large");
    g.records().await;
}

#[tokio::test]
async fn failing_deployments_cool_down_and_recover() {
    let mock = start_mock(&["dead-end=1.0:500"]).await;
    let mut yaml = String::from("model_list:\n");
    yaml.push_str(&model("pool", "openai/dead-end", mock));
    yaml.push_str(&model("pool", "openai/healthy", mock));
    yaml.push_str(&format!(
        "router_settings:\n  num_retries: 3\n  allowed_fails: 0\n  cooldown_time: 3\ngeneral_settings:\n  master_key: {KEY}\n"
    ));
    let g = gateway(&yaml).await;
    let stats = |m: SocketAddr| async move {
        let v: BTreeMap<String, u64> = reqwest::get(format!("http://{m}/mock/stats"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v.get("dead-end").copied().unwrap_or(0)
    };
    // The shuffle picks either deployment; send until the dead one has been tried (the chance
    // of 200 misses in a row is 2^-200). Retries hide its failure from the client.
    let mut sent = 0;
    while stats(mock).await == 0 {
        assert_eq!(g.chat(ask("pool")).await.status(), 200);
        sent += 1;
        assert!(sent < 200, "the dead deployment was never picked");
    }
    // After its first failure it cools down for 3 s: nothing more reaches it meanwhile.
    for _ in 0..10 {
        assert_eq!(g.chat(ask("pool")).await.status(), 200);
    }
    assert_eq!(stats(mock).await, 1);
    // After the cooldown it is tried again.
    common::eventually(
        "the dead deployment is tried again after its cooldown",
        Duration::from_secs(15),
        || async {
            assert_eq!(g.chat(ask("pool")).await.status(), 200);
            stats(mock).await >= 2
        },
    )
    .await;
    assert_eq!(stats(mock).await, 2, "once, then it cools down again");
    let records = g.records().await;
    assert_eq!(records.iter().filter(|r| r.status == RecordStatus::Failure).count(), 2);
}

#[tokio::test]
async fn a_stream_that_fails_before_its_first_byte_falls_back() {
    let mock = start_mock(&["broken=1.0:502"]).await;
    let yaml = format!(
        "model_list:\n{}{}router_settings:\n  fallbacks: [{{broken: [good]}}]\ngeneral_settings:\n  master_key: {KEY}\n",
        model("broken", "openai/broken", mock),
        model("good", "openai/good", mock)
    );
    let g = gateway(&yaml).await;
    let mut body = ask("broken");
    body["stream"] = json!(true);
    let r = g.chat(body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-litellm-attempted-fallbacks"), "1");
    let text = r.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    g.records().await;
}

fn workflow_config(mock: SocketAddr) -> String {
    format!(
        "model_list:\n{}{}{}{}workflows:\n  cf-x-normal:\n    description: plan, code, review\n    aliases: [cf-x]\n    output: combined\n    steps:\n      - {{role: planner, model: deepseek-v3.2, system: You plan.}}\n      - {{role: coder, model: grok-4.1-fast, fallbacks: [minimax-m2.1], system: You code., temperature: 0.3}}\n      - {{role: reviewer, model: gemini-2.5-flash, system: You review.}}\ngeneral_settings:\n  master_key: {KEY}\n",
        model("deepseek-v3.2", "deepseek/deepseek-v3.2", mock),
        model("grok-4.1-fast", "xai/grok-4-1-fast-reasoning", mock),
        model("minimax-m2.1", "minimax/MiniMax-M2.1", mock),
        model("gemini-2.5-flash", "openai/gemini-2.5-flash", mock),
    )
}

#[tokio::test]
async fn a_workflow_runs_as_one_model_with_a_failing_step_falling_back() {
    let mock = start_mock(&["grok-4-1-fast-reasoning=1.0:500"]).await;
    let g = gateway(&workflow_config(mock)).await;
    let ids = g.model_ids().await;
    assert!(
        ids.iter().any(|i| i == "cf-x-normal") && ids.iter().any(|i| i == "cf-x"),
        "{ids:?}"
    );

    let r = g.chat(ask("cf-x")).await;
    assert_eq!(r.status(), 200);
    let rid = header(&r, "x-tollgate-request-id");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["model"], "cf-x-normal");
    let content = v["choices"][0]["message"]["content"].as_str().unwrap();
    for h in ["## Planner", "## Coder", "## Reviewer"] {
        assert!(content.contains(h), "{content}");
    }
    let records = g.records().await;
    let steps: Vec<&Record> = records
        .iter()
        .filter(|r| r.workflow.as_deref() == Some("cf-x-normal") && !r.rollup)
        .collect();
    // planner, the failed grok attempt, minimax (the coder's fallback), reviewer.
    assert_eq!(steps.len(), 4, "{steps:#?}");
    assert!(
        steps.iter().all(|s| s.trace_id == rid),
        "every step shares the run's trace"
    );
    let failed = steps.iter().find(|s| s.status == RecordStatus::Failure).unwrap();
    assert_eq!(
        (failed.step_role.as_deref(), failed.model_group.as_str()),
        (Some("coder"), "grok-4.1-fast")
    );
    let coder = steps
        .iter()
        .find(|s| s.step_role.as_deref() == Some("coder") && s.status == RecordStatus::Success)
        .unwrap();
    assert_eq!(coder.model_group, "minimax-m2.1");
    assert_eq!(coder.step_index, Some(1));
    // The response's usage is the sum of the successful steps; the run record says the same.
    let ok: Vec<&&Record> = steps.iter().filter(|s| s.status == RecordStatus::Success).collect();
    let prompt: u64 = ok.iter().map(|s| s.prompt_tokens).sum();
    let completion: u64 = ok.iter().map(|s| s.completion_tokens).sum();
    assert_eq!(v["usage"]["prompt_tokens"].as_u64(), Some(prompt));
    assert_eq!(v["usage"]["completion_tokens"].as_u64(), Some(completion));
    let run = records.iter().find(|r| r.rollup).unwrap();
    assert_eq!(run.request_id, rid);
    assert_eq!(run.prompt_tokens, prompt);
    let step_cost: f64 = ok.iter().map(|s| s.cost_usd.unwrap()).sum();
    assert!((run.cost_usd.unwrap() - step_cost).abs() < 1e-12);

    // The report shows the workflow, its steps and the failed attempt, without double counting.
    let report = tollgate_report::build_report(records.clone(), &tollgate_report::ReportOptions::default());
    let json = serde_json::to_value(&report).unwrap();
    let wf = json["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "cf-x-normal")
        .unwrap();
    assert_eq!(wf["runs"], 1);
    assert!(wf.to_string().contains("coder"));
    assert_eq!(json["requests"]["total"].as_u64(), Some(4));
    assert!((json["cost"]["total_usd"].as_f64().unwrap() - step_cost).abs() < 1e-12);
}

#[tokio::test]
async fn a_streamed_workflow_shows_progress_and_ends_with_the_whole_runs_usage() {
    let mock = start_mock(&[]).await;
    let g = gateway(&workflow_config(mock)).await;
    let mut body = ask("cf-x-normal");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let r = g.chat(body).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"));
    let chunks: Vec<Value> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(
        chunks.iter().all(|c| c["model"] == "cf-x-normal"),
        "every chunk names the workflow"
    );
    let content: String = chunks
        .iter()
        .filter_map(|c| c.pointer("/choices/0/delta/content").and_then(Value::as_str))
        .collect();
    assert!(
        content.contains("## Planner") && content.contains("## Reviewer"),
        "{content}"
    );
    let usage = &chunks
        .iter()
        .rev()
        .find(|c| c.get("usage").is_some_and(|u| !u.is_null()))
        .unwrap()["usage"];
    let records = g.records().await;
    let steps: Vec<&Record> = records.iter().filter(|r| r.step_role.is_some() && !r.rollup).collect();
    assert_eq!(steps.len(), 3);
    let prompt: u64 = steps.iter().map(|s| s.prompt_tokens).sum();
    assert_eq!(usage["prompt_tokens"].as_u64(), Some(prompt));
    let run = records.iter().find(|r| r.rollup).unwrap();
    assert_eq!(run.prompt_tokens, prompt);
}

#[tokio::test]
async fn client_tools_surface_as_tool_calls_from_the_coder() {
    let mock = start_mock(&[]).await;
    let g = gateway(&workflow_config(mock)).await;
    let body = json!({
        "model": "cf-x",
        "messages": [{"role": "user", "content": "Use the tool to read the file first"}],
        "tools": [{"type": "function", "function": {"name": "read_file", "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}}],
    });
    let v: Value = g.chat(body).await.json().await.unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls", "{v}");
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "read_file"
    );
    let records = g.records().await;
    let roles: Vec<&str> = records.iter().filter_map(|r| r.step_role.as_deref()).collect();
    assert!(
        !roles.contains(&"reviewer"),
        "the run stops at the tool call: {roles:?}"
    );
}

#[tokio::test]
async fn a_step_that_fails_after_its_fallbacks_ends_the_run_with_an_error_naming_it() {
    let mock = start_mock(&["grok-4-1-fast-reasoning=1.0:500", "MiniMax-M2.1=1.0:timeout"]).await;
    let yaml = workflow_config(mock).replace(
        "fallbacks: [minimax-m2.1], system: You code., temperature: 0.3}",
        "fallbacks: [minimax-m2.1], system: You code., temperature: 0.3, timeout: 1}",
    );
    let g = gateway(&yaml).await;
    let r = g.chat(ask("cf-x")).await;
    assert_eq!(r.status(), 504);
    let v: Value = r.json().await.unwrap();
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("step `coder`") && msg.contains("timeout"), "{msg}");
    let records = g.records().await;
    let run = records.iter().find(|r| r.rollup).unwrap();
    assert_eq!(run.status, RecordStatus::Failure);
    assert!(
        !records.iter().any(|r| r.step_role.as_deref() == Some("reviewer")),
        "the run stopped at the coder"
    );
}

/// Requests per upstream model that reached the mock.
async fn mock_calls(mock: SocketAddr) -> BTreeMap<String, u64> {
    reqwest::get(format!("http://{mock}/mock/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The router sends a failing Grok to DeepSeek; the coder step may name its own fallbacks.
/// `coder-last` ends on the coder, so a stream reaches it live.
fn step_over_router_config(mock: SocketAddr, coder_fallbacks: Option<&str>) -> String {
    let list = coder_fallbacks
        .map(|f| format!("fallbacks: [{f}], "))
        .unwrap_or_default();
    workflow_config(mock)
        .replace("fallbacks: [minimax-m2.1], ", &list)
        .replace(
            "general_settings:",
            &format!(
                "  coder-last:\n    output: final\n    steps:\n      - {{role: planner, model: deepseek-v3.2}}\n      - {{role: coder, {list}model: grok-4.1-fast}}\nrouter_settings:\n  num_retries: 1\n  fallbacks: [{{grok-4.1-fast: [deepseek-v3.2]}}]\ngeneral_settings:"
            ),
        )
}

/// The coder's records per run, in call order: (model group, succeeded).
fn coder_calls(records: &[Record]) -> Vec<Vec<(String, bool)>> {
    let mut runs: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    for r in records
        .iter()
        .filter(|r| r.step_role.as_deref() == Some("coder") && !r.rollup)
    {
        runs.entry(r.trace_id.as_str()).or_default().push(r);
    }
    runs.into_values()
        .map(|mut calls| {
            calls.sort_by_key(|r| r.attempt);
            calls
                .iter()
                .map(|r| (r.model_group.clone(), r.status == RecordStatus::Success))
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn a_steps_own_fallbacks_replace_the_routers_for_its_model() {
    let mock = start_mock(&["grok-4-1-fast-reasoning=1.0:500"]).await;
    let g = gateway(&step_over_router_config(mock, Some("minimax-m2.1"))).await;
    let r = g.chat(ask("cf-x")).await;
    assert_eq!(r.status(), 200);
    let mut body = ask("coder-last");
    body["stream"] = json!(true);
    let r = g.chat(body).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    // Grok with its retry, then the step's MiniMax; the router's DeepSeek only as the planner.
    let calls = mock_calls(mock).await;
    assert_eq!(calls.get("grok-4-1-fast-reasoning"), Some(&4), "{calls:?}");
    assert_eq!(calls.get("MiniMax-M2.1"), Some(&2), "{calls:?}");
    assert_eq!(calls.get("deepseek-v3.2"), Some(&2), "{calls:?}");
    let grok_then_minimax = vec![
        ("grok-4.1-fast".to_string(), false),
        ("grok-4.1-fast".to_string(), false),
        ("minimax-m2.1".to_string(), true),
    ];
    let runs = coder_calls(&g.records().await);
    assert_eq!(
        runs,
        vec![grok_then_minimax.clone(), grok_then_minimax],
        "plain and streamed run"
    );
}

#[tokio::test]
async fn a_step_without_its_own_fallbacks_follows_the_router() {
    let mock = start_mock(&["grok-4-1-fast-reasoning=1.0:500"]).await;
    let g = gateway(&step_over_router_config(mock, None)).await;
    assert_eq!(g.chat(ask("cf-x")).await.status(), 200);
    let calls = mock_calls(mock).await;
    assert_eq!(calls.get("MiniMax-M2.1"), None, "{calls:?}");
    let runs = coder_calls(&g.records().await);
    let grok_then_deepseek = vec![
        ("grok-4.1-fast".to_string(), false),
        ("grok-4.1-fast".to_string(), false),
        ("deepseek-v3.2".to_string(), true),
    ];
    assert_eq!(runs, vec![grok_then_deepseek], "the router's grok → deepseek");
}

#[tokio::test]
async fn a_workflow_over_native_anthropic_and_gemini_steps_reads_their_answers() {
    let mock = start_mock(&[]).await;
    let yaml = format!(
        "model_list:\n{}{}workflows:\n  cf-x-premium:\n    steps:\n      - {{role: planner, model: claude}}\n      - {{role: coder, model: claude}}\n      - {{role: reviewer, model: gemini}}\ngeneral_settings:\n  master_key: {KEY}\n",
        model("claude", "anthropic/claude-sonnet-4-5", mock),
        model("gemini", "gemini/gemini-2.5-flash", mock),
    );
    let g = gateway(&yaml).await;
    let v: Value = g.chat(ask("cf-x-premium")).await.json().await.unwrap();
    let content = v["choices"][0]["message"]["content"].as_str().unwrap();
    for section in content.split("## ").filter(|s| !s.is_empty()) {
        let (_, body) = section.split_once('\n').unwrap();
        assert!(!body.trim().is_empty(), "every step answered: {content}");
    }
    let records = g.records().await;
    let steps: Vec<&Record> = records.iter().filter(|r| r.step_role.is_some() && !r.rollup).collect();
    assert_eq!(steps.len(), 3);
    assert!(
        steps
            .iter()
            .all(|s| s.status == RecordStatus::Success && s.prompt_tokens > 0 && s.completion_tokens > 0)
    );
    assert_eq!(
        v["usage"]["prompt_tokens"].as_u64(),
        Some(steps.iter().map(|s| s.prompt_tokens).sum())
    );
}
