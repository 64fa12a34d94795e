//! `tollgate demo`: the whole job offline. A mock provider and the gateway start on free ports
//! with a config shaped like the seed system, a Roo Code-like workload runs plan → code → review
//! tasks through the gateway, and the records are summarised per model.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use futures::StreamExt;
use serde_json::{Value, json};
use tollgate_core::config::{self, ProcessEnv};
use tollgate_core::{Record, RecordStatus};
use tollgate_gateway::{LiveState, ServeOptions};

#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Coding tasks to run (each is a planner, coder and reviewer call).
    #[arg(long, default_value_t = 6)]
    tasks: usize,
    /// Keep the demo's data directory (SQLite and JSONL records) here instead of a temp dir.
    #[arg(long)]
    keep_data: Option<std::path::PathBuf>,
    /// Language of the report at the end.
    #[arg(long, value_enum, default_value = "en")]
    lang: tollgate_report::Lang,
    /// After the workload, keep the gateway running with its dashboard (`/ui`) and print its URL
    /// and the demo's master key to sign in with; Ctrl-C stops it and prints the report.
    #[arg(long)]
    ui: bool,
    /// The port the demo gateway listens on (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
}

/// The seed system's four models, all on the OpenAI-compatible route to the mock. Gemini is
/// priced through `base_model` because its native provider is not used here.
fn demo_config(mock_base: &str, master_key: &str) -> String {
    format!(
        r#"# The seed system: Roo Code → gateway → DeepSeek V3.2, Gemini 2.5 Flash, MiniMax M2.1, Grok 4.1 Fast
model_list:
  - model_name: deepseek-v3.2
    litellm_params:
      model: deepseek/deepseek-v3.2
      api_base: {mock_base}
      api_key: demo-key
  - model_name: gemini-2.5-flash
    litellm_params:
      model: openai/gemini-2.5-flash
      api_base: {mock_base}
      api_key: demo-key
    model_info:
      base_model: gemini/gemini-2.5-flash
  - model_name: minimax-m2.1
    litellm_params:
      model: minimax/MiniMax-M2.1
      api_base: {mock_base}
      api_key: demo-key
  - model_name: grok-4.1-fast
    litellm_params:
      model: xai/grok-4-1-fast-reasoning
      api_base: {mock_base}
      api_key: demo-key
      timeout: 30
router_settings:
  num_retries: 0
workflows:
  cf-x-normal:
    description: Plan with DeepSeek, code with Grok, review with Gemini
    aliases: [cf-x]
    output: combined
    steps:
      - {{role: planner, model: deepseek-v3.2, system: "You are a planning assistant. Break the task into clear steps."}}
      - {{role: coder, model: grok-4.1-fast, fallbacks: [minimax-m2.1], temperature: 0.3, system: "You are a coding assistant. Write the code for the plan."}}
      - {{role: reviewer, model: gemini-2.5-flash, system: "You are a code reviewer. Review the code against the task and plan."}}
general_settings:
  master_key: {master_key}
"#
    )
}

const PLANNER_SYSTEM: &str = "You are Roo, a planning assistant inside VS Code. Break the user's task into small, \
verifiable steps. Name the files to touch and the tests to add. Keep the plan short. ";

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    // A mock provider whose Grok fails one request in four, like the seed's failing coder.
    let mock_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot start the mock provider")?;
    let mock_addr = mock_listener.local_addr()?;
    let failures = vec![tollgate_mock::parse_fail_rule("grok-4-1-fast-reasoning=0.25").map_err(anyhow::Error::msg)?];
    let mock_cfg = tollgate_mock::MockConfig {
        delay_ms: 20,
        failures,
        ..Default::default()
    };
    let mock = tokio::spawn(tollgate_mock::serve(mock_listener, mock_cfg));

    let tmp = tempfile::tempdir().context("cannot create a temporary directory")?;
    let data_dir = args.keep_data.clone().unwrap_or_else(|| tmp.path().join("data"));
    let master_key = format!("sk-demo-{}", uuid_like());
    let config_path = tmp.path().join("config.yaml");
    std::fs::write(
        &config_path,
        demo_config(&format!("http://{mock_addr}/v1"), &master_key),
    )?;
    let cfg = config::load(&config_path, &ProcessEnv)?;
    let live = LiveState::build(cfg, 1, None, &ProcessEnv)?;
    let opts = ServeOptions {
        port: args.port,
        data_dir: data_dir.clone(),
        log_jsonl: Some(data_dir.join("records.jsonl")),
        ..ServeOptions::default()
    };
    eprintln!("demo: mock provider on http://{mock_addr}/v1; starting the gateway");
    let gw = tollgate_gateway::start(live, opts).await?;
    let base = format!("http://{}", gw.addr);

    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
    let mut sent = 0usize;
    for task in 0..args.tasks {
        let session = format!("demo-session-{task}");
        let ask = format!(
            "Task {task}: add input validation to the `parse_config` function in src/config.rs and cover it with tests. {}",
            "Context from the open editor follows. ".repeat(20 + task * 15)
        );
        // Roo Code in its usual mode: DeepSeek with a long, stable system prompt (the provider's
        // prompt cache kicks in from the second task on).
        chat(
            &client,
            &base,
            &master_key,
            &session,
            json!({
                "model": "deepseek-v3.2",
                "messages": [
                    {"role": "system", "content": PLANNER_SYSTEM.repeat(40)},
                    {"role": "user", "content": ask},
                ],
            }),
            task % 2 == 1,
        )
        .await?;
        sent += 1;
        // The same task through the cf-x workflow: plan → code → review inside the gateway,
        // Grok's failures falling back to MiniMax.
        chat(
            &client,
            &base,
            &master_key,
            &session,
            json!({"model": "cf-x", "messages": [{"role": "user", "content": ask}], "max_tokens": 600}),
            task % 3 == 0,
        )
        .await?;
        sent += 1;
    }
    if args.ui {
        println!("\ndashboard: {base}/ui");
        println!("sign in with the demo's master key: {master_key}");
        println!("(Ctrl-C stops the gateway and prints the report)");
        tokio::signal::ctrl_c().await.context("cannot wait for Ctrl-C")?;
    }
    eprintln!("demo: {sent} requests sent through the gateway; stopping it and writing records");
    let summary = gw.shutdown().await?;
    mock.abort();

    let records: Vec<Record> = tollgate_store::read_sqlite(&data_dir)?.collect::<Result<_, _>>()?;
    // Workflow runs have their own rollup records; the summary, like the report, counts steps.
    let records: Vec<Record> = records.into_iter().filter(|r| !r.rollup).collect();
    print_summary(&records);
    println!(
        "\n{} records written to {} ({} dropped).",
        summary.written,
        data_dir.join(tollgate_store::DB_FILE_NAME).display(),
        summary.dropped
    );
    // The same records, analysed as `tollgate report` does.
    println!("\n$ tollgate report {}\n", data_dir.display());
    let lang = args.lang;
    let mut opts = tollgate_report::ReportOptions {
        lang,
        ..Default::default()
    };
    opts.expected_steps.insert(
        "cf-x-normal".into(),
        vec!["planner".into(), "coder".into(), "reviewer".into()],
    );
    let report = tollgate_report::build_report(records, &opts);
    println!(
        "{}",
        tollgate_report::render(&report, tollgate_report::Format::Table, lang)
    );
    Ok(ExitCode::SUCCESS)
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{nanos:x}{:x}", std::process::id())
}

/// One chat call as Roo Code would make it; returns the answer text.
async fn chat(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    session: &str,
    mut body: Value,
    stream: bool,
) -> anyhow::Result<String> {
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    let resp = client
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(key)
        .header("user-agent", "RooCode/1.0.4")
        .header("x-session-id", session)
        .json(&body)
        .send()
        .await?;
    let status = resp.status();
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        anyhow::bail!("HTTP {status}: {text}");
    }
    if !stream {
        let v: Value = resp.json().await?;
        return Ok(v
            .pointer("/choices/0/message/content")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string());
    }
    let mut text = String::new();
    let mut bytes = resp.bytes_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = bytes.next().await {
        buf.extend_from_slice(&chunk?);
    }
    for line in String::from_utf8_lossy(&buf).lines() {
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        if let Ok(v) = serde_json::from_str::<Value>(data)
            && let Some(c) = v.pointer("/choices/0/delta/content").and_then(Value::as_str)
        {
            text.push_str(c);
        }
    }
    Ok(text)
}

#[derive(Default)]
struct ModelTotals {
    requests: u64,
    failed: u64,
    prompt: u64,
    completion: u64,
    reasoning: u64,
    cached: u64,
    cost: f64,
    unpriced: u64,
    latencies: Vec<f64>,
    overheads: Vec<f64>,
}

fn print_summary(records: &[Record]) {
    let mut by_model: BTreeMap<&str, ModelTotals> = BTreeMap::new();
    for r in records {
        let t = by_model.entry(r.model_group.as_str()).or_default();
        t.requests += 1;
        if r.status == RecordStatus::Failure {
            t.failed += 1;
        }
        t.prompt += r.prompt_tokens;
        t.completion += r.completion_tokens;
        t.reasoning += r.reasoning_tokens;
        t.cached += r.cached_tokens;
        match r.cost_usd {
            Some(c) => t.cost += c,
            None if r.status == RecordStatus::Success => t.unpriced += 1,
            None => {}
        }
        t.latencies.push(r.latency_ms);
        if let Some(o) = r.overhead_ms {
            t.overheads.push(o);
        }
    }
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED);
    table.set_header(vec![
        "model",
        "requests",
        "failed",
        "prompt tok",
        "completion tok",
        "reasoning tok",
        "cached tok",
        "cost USD",
        "p50 latency ms",
        "avg overhead ms",
    ]);
    let mut total_cost = 0.0;
    for (model, t) in &mut by_model {
        total_cost += t.cost;
        t.latencies.sort_by(f64::total_cmp);
        let p50 = t
            .latencies
            .get(t.latencies.len().saturating_sub(1) / 2)
            .copied()
            .unwrap_or(0.0);
        let avg_overhead = if t.overheads.is_empty() {
            0.0
        } else {
            t.overheads.iter().sum::<f64>() / t.overheads.len() as f64
        };
        let cost = if t.unpriced > 0 {
            format!("{:.6} (+{} unpriced)", t.cost, t.unpriced)
        } else {
            format!("{:.6}", t.cost)
        };
        table.add_row(vec![
            model.to_string(),
            t.requests.to_string(),
            t.failed.to_string(),
            t.prompt.to_string(),
            t.completion.to_string(),
            format!("{} ({:.0}%)", t.reasoning, pct(t.reasoning, t.completion)),
            t.cached.to_string(),
            cost,
            format!("{p50:.1}"),
            format!("{avg_overhead:.3}"),
        ]);
    }
    println!(
        "Per-model summary ({} requests, total cost ${total_cost:.6}):",
        records.len()
    );
    println!("{table}");
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}
