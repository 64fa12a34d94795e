//! Workflows served as models: plan → code → review (the seed's cf-x tiers) behind one model
//! name that any OpenAI client calls, plain or streamed.
//!
//! Each step is an ordinary routed request (retries, fallbacks, one record per attempt) that sees
//! the client's conversation plus the answers of the steps before it. A step's own `fallbacks`
//! replace the router's for its model; without them the router's apply. All steps of a run share
//! its `trace_id`; the run itself gets one more record, marked `rollup` so totals skip it.
//! The workflow never runs tools: when the client sent tools, the tool step may answer with
//! `tool_calls`, which end the run and go back to the client as any model's would.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Map, Value, json};
use tollgate_core::routing::{StepConfig, WorkflowConfig, WorkflowOutput};
use tollgate_core::{ErrorKind, GatewayError, Record, RecordStatus, Usage};
use tollgate_providers::sse::{error_event, event_bytes};

use crate::app::App;
use crate::body::RequestBody;
use crate::edge::{ApiError, ResponseTags, tag_response};
use crate::pipeline::draft::Draft;
use crate::pipeline::endpoint::Endpoint;
use crate::pipeline::route::{Failure, Fallbacks, Plan, Sent, route_request};
use crate::pipeline::stream::{self, StreamExtras};
use crate::state::LiveState;

/// What one finished (plain) step produced.
struct StepResult {
    content: String,
    tool_calls: Option<Value>,
    finish_reason: Option<String>,
}

/// A role as a heading: `planner` → `Planner`.
fn heading(role: &str) -> String {
    let mut c = role.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// The body one step sends: the client's request with the step's model, system prompt and
/// settings, and the earlier steps' answers as context.
fn step_body(
    client: &Map<String, Value>,
    wf: &WorkflowConfig,
    step: &StepConfig,
    earlier: &[(String, String)],
) -> Map<String, Value> {
    let mut body = client.clone();
    body.insert("model".into(), Value::String(step.model.clone()));
    let mut messages: Vec<Value> = Vec::new();
    if let Some(system) = &step.system {
        messages.push(json!({"role": "system", "content": system}));
    }
    // Earlier work goes before the conversation, so the client's last message stays last: the
    // model answers it, and tool use keeps its usual shape.
    if !earlier.is_empty() {
        let mut context = format!(
            "You are the {} in a multi-step workflow. Work of the earlier steps:\n",
            step.role
        );
        for (role, text) in earlier {
            context.push_str(&format!("\n## {}\n{}\n", heading(role), text));
        }
        messages.push(json!({"role": "system", "content": context}));
    }
    if let Some(Value::Array(m)) = client.get("messages") {
        messages.extend(m.iter().cloned());
    }
    body.insert("messages".into(), Value::Array(messages));
    for (k, v) in [
        ("temperature", step.temperature.map(Value::from)),
        ("max_tokens", step.max_tokens.map(Value::from)),
        ("reasoning_effort", step.reasoning_effort.clone().map(Value::from)),
    ] {
        if let Some(v) = v {
            body.insert(k.into(), v);
        }
    }
    if step.role != wf.tool_step {
        for k in [
            "tools",
            "tool_choice",
            "parallel_tool_calls",
            "functions",
            "function_call",
        ] {
            body.remove(k);
        }
    }
    body.remove("stream");
    body.remove("stream_options");
    body
}

/// Where a step goes when its model fails. A step's own `fallbacks` are the more specific
/// setting, so they replace the router's for its model (as a request's own `fallbacks` do in
/// LiteLLM): the step model with its retries, then exactly the step's list, in order. A step
/// without a list falls back as the router says, like any request for its model.
fn step_fallbacks(step: &StepConfig) -> Fallbacks<'_> {
    if step.fallbacks.is_empty() {
        Fallbacks::Router
    } else {
        Fallbacks::Only(&step.fallbacks)
    }
}

/// Routes one step through the route stage, with the step's fallbacks.
async fn route_step(
    app: &Arc<App>,
    live: &LiveState,
    step: &StepConfig,
    body: &Map<String, Value>,
    stream: bool,
    draft: &mut Draft,
) -> Result<(Arc<crate::state::Deployment>, Sent, std::time::Instant, f64), Failure> {
    let mut body = RequestBody::from_map(body);
    let group = live.config.router.resolve(&step.model).to_string();
    let (routed, _) = route_request(
        app,
        live,
        Endpoint::CHAT,
        &mut body,
        stream,
        draft,
        &group,
        &Plan {
            fallbacks: step_fallbacks(step),
            ..Plan::default()
        },
    )
    .await;
    routed
}

/// Runs a plain step to completion and records it.
async fn plain_step(
    app: &Arc<App>,
    live: &LiveState,
    step: &StepConfig,
    body: Map<String, Value>,
    mut draft: Draft,
) -> Result<(StepResult, Usage, Option<f64>), GatewayError> {
    match route_step(app, live, step, &body, false, &mut draft).await {
        Err(f) => {
            let e = f.error.clone();
            draft.finish(f.error.status, Some(f.upstream_ms), Some(&f.error));
            Err(e)
        }
        Ok((d, Sent::Plain(bytes), sent, _)) => {
            let upstream_ms = sent.elapsed().as_secs_f64() * 1000.0;
            // Every wire format (OpenAI family, Gemini, Anthropic) comes back in OpenAI's shape.
            let (v, parsed) = match crate::upstream::read_plain(&d, &bytes, &d.model_group) {
                Ok(ok) => ok,
                Err(e) => {
                    draft.finish(e.status, Some(upstream_ms), Some(&e));
                    return Err(e);
                }
            };
            draft.set_usage(&parsed, d.price.as_ref());
            let msg = v.pointer("/choices/0/message").cloned().unwrap_or(Value::Null);
            let result = StepResult {
                content: msg
                    .get("content")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                tool_calls: msg
                    .get("tool_calls")
                    .filter(|t| t.as_array().is_some_and(|a| !a.is_empty()))
                    .cloned(),
                finish_reason: v
                    .pointer("/choices/0/finish_reason")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            };
            draft.record.finish_reason = result.finish_reason.clone();
            let cost = draft.record.cost_usd;
            draft.finish(200, Some(upstream_ms), None);
            Ok((result, parsed.usage, cost))
        }
        Ok((_, Sent::Stream(_), _, _)) => Err(GatewayError::new(
            ErrorKind::Internal,
            "a plain step came back as a stream",
        )),
    }
}

/// A plain step bounded by the step's own `timeout`, when it has one.
async fn timed_step(
    app: &Arc<App>,
    live: &LiveState,
    step: &StepConfig,
    body: Map<String, Value>,
    mut draft: Draft,
) -> Result<(StepResult, Usage, Option<f64>), GatewayError> {
    let Some(secs) = step.timeout else {
        return plain_step(app, live, step, body, draft).await;
    };
    let timed_out = GatewayError::new(
        ErrorKind::Timeout,
        format!("the step took longer than its timeout of {secs} s"),
    )
    .with_code("workflow_step_timeout");
    // A step cut short is recorded with this error when its draft is dropped.
    draft.abandon_as(timed_out.clone());
    match tokio::time::timeout(
        std::time::Duration::from_secs_f64(secs),
        plain_step(app, live, step, body, draft),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => Err(timed_out),
    }
}

/// The run's own record: the totals of its steps, marked as a rollup.
fn write_run_record(
    app: &App,
    mut run: Record,
    usage: &Usage,
    cost: Option<f64>,
    error: Option<&GatewayError>,
    latency_ms: f64,
) {
    run.rollup = true;
    run.set_usage(usage);
    run.cost_usd = cost;
    run.unpriced = cost.is_none();
    run.end_time = chrono::Utc::now();
    run.latency_ms = latency_ms;
    run.http_status = error.map(|e| e.status).unwrap_or(200);
    if let Some(e) = error {
        run.status = RecordStatus::Failure;
        run.error_type = Some(e.type_str().to_string());
        run.error_message = Some(e.message.clone());
    }
    app.writer.submit(run);
}

fn add_cost(total: Option<f64>, step: Option<f64>) -> Option<f64> {
    Some(total? + step?)
}

fn step_error(wf: &WorkflowConfig, step: &StepConfig, e: &GatewayError) -> GatewayError {
    let mut err = e.clone();
    err.message = format!(
        "workflow `{}` step `{}` ({}) failed: {}",
        wf.name, step.role, step.model, e.message
    );
    err
}

/// The answer of a run in OpenAI's shape.
fn answer_text(wf: &WorkflowConfig, outputs: &[(String, String)]) -> String {
    match wf.output {
        WorkflowOutput::Final => outputs.last().map(|(_, t)| t.clone()).unwrap_or_default(),
        WorkflowOutput::Combined => outputs
            .iter()
            .map(|(role, text)| format!("## {}\n\n{}", heading(role), text))
            .collect::<Vec<_>>()
            .join("\n\n"),
    }
}

fn chunk(id: &str, model: &str, delta: Value, finish: Option<&str>) -> Bytes {
    event_bytes(
        &json!({"id": id, "object": "chat.completion.chunk", "created": chrono::Utc::now().timestamp(), "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        .to_string(),
    )
}

pub(crate) async fn run(
    app: Arc<App>,
    live: Arc<LiveState>,
    wf: &WorkflowConfig,
    mut run: Draft,
    body: Map<String, Value>,
) -> Response {
    let wf = wf.clone();
    run.record.model_group = wf.name.clone();
    run.record.model = format!("workflow/{}", wf.name);
    run.record.provider = "workflow".into();
    run.record.trace_id = run.record.request_id.clone();
    let run_id = run.record.request_id.clone();
    let completion_id = format!("chatcmpl-wf-{run_id}");
    if run.record.stream {
        let wants_usage = body
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        return stream_run(app, live, wf, run, body, completion_id, wants_usage);
    }

    let mut outputs: Vec<(String, String)> = Vec::new();
    let mut total = Usage::default();
    let mut cost = Some(0.0);
    let mut last: Option<StepResult> = None;
    for (i, step) in wf.steps.iter().enumerate() {
        let sbody = step_body(&body, &wf, step, &outputs);
        let draft = run.step(&wf.name, &step.role, i);
        match timed_step(&app, &live, step, sbody, draft).await {
            Err(e) => {
                let err = step_error(&wf, step, &e);
                let latency = run.elapsed_ms();
                write_run_record(&app, run.record.clone(), &total, cost, Some(&err), latency);
                return ApiError(err).into_response();
            }
            Ok((result, usage, step_cost)) => {
                total.add(&usage);
                cost = add_cost(cost, step_cost);
                let tool_stop = result.tool_calls.is_some() && step.role == wf.tool_step;
                outputs.push((step.role.clone(), result.content.clone()));
                last = Some(result);
                if tool_stop {
                    break;
                }
            }
        }
    }
    let last = last.unwrap_or(StepResult {
        content: String::new(),
        tool_calls: None,
        finish_reason: None,
    });
    let mut message = json!({"role": "assistant", "content": answer_text(&wf, &outputs)});
    let mut finish = last.finish_reason.clone().unwrap_or_else(|| "stop".into());
    if let Some(calls) = &last.tool_calls {
        message["tool_calls"] = calls.clone();
        finish = "tool_calls".into();
    }
    let out = json!({
        "id": completion_id, "object": "chat.completion", "created": chrono::Utc::now().timestamp(), "model": wf.name,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": total.to_openai_json(),
    });
    let latency = run.elapsed_ms();
    let mut resp = (StatusCode::OK, axum::Json(out)).into_response();
    tag_response(
        resp.headers_mut(),
        &ResponseTags {
            request_id: &run_id,
            model_group: &wf.name,
            cost_usd: cost,
            overhead_ms: 0.0,
            cache: run.record.cache.as_str(),
        },
    );
    resp.headers_mut()
        .insert("x-tollgate-workflow-steps", HeaderValue::from(outputs.len()));
    write_run_record(&app, run.record.clone(), &total, cost, None, latency);
    resp
}

/// A streamed run: progress of the earlier steps as content while they run, then the last
/// step live; the usage chunk covers the whole run.
fn stream_run(
    app: Arc<App>,
    live: Arc<LiveState>,
    wf: WorkflowConfig,
    run: Draft,
    body: Map<String, Value>,
    id: String,
    wants_usage: bool,
) -> Response {
    let run_id = run.record.request_id.clone();
    let name = wf.name.clone();
    let body_stream = async_stream::stream! {
        yield Ok::<Bytes, std::io::Error>(chunk(&id, &wf.name, json!({"role": "assistant", "content": ""}), None));
        let mut outputs: Vec<(String, String)> = Vec::new();
        let mut total = Usage::default();
        let mut cost = Some(0.0);
        let n = wf.steps.len();
        for (i, step) in wf.steps.iter().enumerate() {
            let mut sbody = step_body(&body, &wf, step, &outputs);
            let mut draft = run.step(&wf.name, &step.role, i);
            if wf.output == WorkflowOutput::Combined || i + 1 == n {
                yield Ok(chunk(&id, &wf.name, json!({"content": format!("## {}\n\n", heading(&step.role))}), None));
            } else {
                yield Ok(chunk(&id, &wf.name, json!({"content": format!("> {} ({}) working…\n\n", step.role, step.model)}), None));
            }
            if i + 1 < n {
                match timed_step(&app, &live, step, sbody, draft).await {
                    Err(e) => {
                        let err = step_error(&wf, step, &e);
                        yield Ok(error_event(&err.to_json()));
                        write_run_record(&app, run.record.clone(), &total, cost, Some(&err), run.elapsed_ms());
                        return;
                    }
                    Ok((result, usage, step_cost)) => {
                        total.add(&usage);
                        cost = add_cost(cost, step_cost);
                        if wf.output == WorkflowOutput::Combined {
                            yield Ok(chunk(&id, &wf.name, json!({"content": format!("{}\n\n", result.content)}), None));
                        }
                        let tool_stop = result.tool_calls.is_some() && step.role == wf.tool_step;
                        outputs.push((step.role.clone(), result.content));
                        if tool_stop {
                            let calls = result.tool_calls.unwrap_or(Value::Null);
                            yield Ok(chunk(&id, &wf.name, json!({"tool_calls": calls}), Some("tool_calls")));
                            if wants_usage {
                                yield Ok(event_bytes(&json!({"id": id, "object": "chat.completion.chunk", "model": wf.name, "choices": [], "usage": total.to_openai_json()}).to_string()));
                            }
                            yield Ok(event_bytes("[DONE]"));
                            write_run_record(&app, run.record.clone(), &total, cost, None, run.elapsed_ms());
                            return;
                        }
                    }
                }
                continue;
            }
            // The last step streams live through the ordinary stream relay.
            sbody.insert("stream".into(), Value::Bool(true));
            sbody.insert("stream_options".into(), json!({"include_usage": true}));
            match route_step(&app, &live, step, &sbody, true, &mut draft).await {
                Err(f) => {
                    let err = step_error(&wf, step, &f.error);
                    draft.finish(f.error.status, Some(f.upstream_ms), Some(&f.error));
                    yield Ok(error_event(&err.to_json()));
                    write_run_record(&app, run.record.clone(), &total, cost, Some(&err), run.elapsed_ms());
                    return;
                }
                Ok((_, Sent::Plain(_), _, _)) => return,
                Ok((d, Sent::Stream(events), sent, pre_ms)) => {
                    let app2 = app.clone();
                    let run_record = run.record.clone();
                    let started = std::time::Instant::now();
                    let run_elapsed = run.elapsed_ms();
                    let prior = total;
                    let prior_cost = cost;
                    let extras = StreamExtras {
                        prelude: Vec::new(),
                        rename: Some(wf.name.clone()),
                        prior_usage: Some(prior),
                        on_done: Some(Box::new(move |step: &Record| {
                            let mut usage = prior;
                            usage.add(&step.usage());
                            let err = (step.status == RecordStatus::Failure)
                                .then(|| GatewayError::new(ErrorKind::Upstream, step.error_message.clone().unwrap_or_default()));
                            let latency = run_elapsed + started.elapsed().as_secs_f64() * 1000.0;
                            write_run_record(&app2, run_record, &usage, add_cost(prior_cost, step.cost_usd), err.as_ref(), latency);
                        })),
                        reshape: None,
                        egress: None,
                    };
                    let inner = stream::respond(draft, d, events, sent, pre_ms, wants_usage, None, extras);
                    let mut data = inner.into_body().into_data_stream();
                    while let Some(b) = data.next().await {
                        match b {
                            Ok(b) => yield Ok(b),
                            Err(_) => return,
                        }
                    }
                }
            }
        }
    };
    let mut resp = Response::new(Body::from_stream(body_stream));
    let h = resp.headers_mut();
    h.insert("content-type", HeaderValue::from_static("text/event-stream"));
    h.insert("cache-control", HeaderValue::from_static("no-cache"));
    tag_response(
        h,
        &ResponseTags {
            request_id: &run_id,
            model_group: &name,
            cost_usd: None,
            overhead_ms: 0.0,
            cache: "off",
        },
    );
    h.remove("x-tollgate-cost-usd");
    resp
}
