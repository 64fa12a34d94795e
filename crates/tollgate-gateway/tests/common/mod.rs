//! What the gateway's HTTP tests share: the mock as upstream, a gateway on a config written to a
//! temp dir, and reading back the records it wrote.

// Each test crate uses its own subset of these helpers.
#![allow(dead_code)]

pub mod redis;
pub mod ui;

use std::net::SocketAddr;
use std::path::Path;

use serde_json::Value;
use tollgate_core::Record;
use tollgate_core::config::ProcessEnv;
use tollgate_gateway::{LiveState, RunningGateway, ServeOptions};

pub const KEY: &str = "sk-test-0123456789abcdef";

/// `tollgate mock` on a free port, failing as the rules say (`MODEL=RATE[:STATUS|:timeout]`).
pub async fn start_mock(rules: &[&str]) -> SocketAddr {
    start_mock_with(rules, tollgate_mock::MockConfig::default()).await
}

/// `tollgate mock` with its other settings (delays) too.
pub async fn start_mock_with(rules: &[&str], config: tollgate_mock::MockConfig) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let failures = rules
        .iter()
        .map(|r| tollgate_mock::parse_fail_rule(r).unwrap())
        .collect();
    tokio::spawn(tollgate_mock::serve(
        l,
        tollgate_mock::MockConfig { failures, ..config },
    ));
    addr
}

/// Polls until `done` holds, failing the test with `what` after `deadline`. Tests wait for
/// asynchronous effects this way instead of sleeping a fixed time.
pub async fn eventually<F, Fut>(what: &str, deadline: std::time::Duration, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = std::time::Instant::now() + deadline;
    loop {
        if done().await {
            return;
        }
        assert!(
            std::time::Instant::now() < until,
            "timed out after {deadline:?} waiting for: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

pub struct Gw {
    pub gw: RunningGateway,
    pub base: String,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

/// A gateway on `yaml`, written to `config.yaml` in a temp dir (so reloads can edit it), recording
/// to SQLite and JSONL there. Config version 1; the file is not watched.
pub async fn gateway(yaml: &str) -> Gw {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, yaml).unwrap();
    gateway_at(&path, dir, false).await
}

pub async fn gateway_at(config_path: &Path, dir: tempfile::TempDir, watch: bool) -> Gw {
    gateway_with(config_path, dir, |o| o.watch_config = watch).await
}

/// A gateway on `yaml` with its serve options adjusted by `adjust`.
pub async fn gateway_opts(yaml: &str, adjust: impl FnOnce(&mut ServeOptions)) -> Gw {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, yaml).unwrap();
    gateway_with(&path, dir, adjust).await
}

async fn gateway_with(config_path: &Path, dir: tempfile::TempDir, adjust: impl FnOnce(&mut ServeOptions)) -> Gw {
    let cfg = tollgate_core::config::load(config_path, &ProcessEnv).unwrap();
    let live = LiveState::build(cfg, 1, None, &ProcessEnv).unwrap();
    let mut opts = ServeOptions {
        port: 0,
        data_dir: dir.path().join("data"),
        log_jsonl: Some(dir.path().join("records.jsonl")),
        watch_config: false,
        ..ServeOptions::default()
    };
    adjust(&mut opts);
    let gw = tollgate_gateway::start(live, opts).await.unwrap();
    let base = format!("http://{}", gw.addr);
    Gw {
        gw,
        base,
        dir,
        http: reqwest::Client::new(),
    }
}

impl Gw {
    pub async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(KEY)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// `GET path`, with the master key when `as_admin`, as text.
    pub async fn get_text(&self, path: &str, as_admin: bool) -> String {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if as_admin {
            req = req.bearer_auth(KEY);
        }
        req.send().await.unwrap().text().await.unwrap()
    }

    pub async fn readiness(&self) -> Value {
        serde_json::from_str(&self.get_text("/health/readiness", false).await).unwrap()
    }

    /// The names `/v1/models` lists.
    pub async fn model_ids(&self) -> Vec<String> {
        let v: Value = serde_json::from_str(&self.get_text("/v1/models", true).await).unwrap();
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect()
    }

    pub async fn chat(&self, body: Value) -> reqwest::Response {
        self.post("/v1/chat/completions", body).await
    }

    /// Stops the gateway (which writes every record), then reads SQLite and the JSONL text.
    pub async fn records_and_jsonl(self) -> (Vec<Record>, String) {
        let summary = self.gw.shutdown().await.unwrap();
        assert_eq!(summary.dropped, 0);
        let records: Vec<Record> = tollgate_store::read_sqlite(&self.dir.path().join("data"))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        let jsonl = std::fs::read_to_string(self.dir.path().join("records.jsonl")).unwrap_or_default();
        assert_eq!(
            jsonl.lines().count(),
            records.len(),
            "JSONL and SQLite hold the same records"
        );
        (records, jsonl)
    }

    pub async fn records(self) -> Vec<Record> {
        self.records_and_jsonl().await.0
    }

    /// The records written to the JSONL file so far (the writer batches, so poll for them).
    pub fn jsonl_so_far(&self) -> Vec<Record> {
        std::fs::read_to_string(self.dir.path().join("records.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// Two model groups on the mock, `cheap` and ten times dearer `dear`, and the master key [`KEY`].
pub fn two_priced_groups(mock: SocketAddr) -> String {
    format!(
        "model_list:
  - model_name: cheap
    litellm_params:
      model: openai/cheap
      api_base: http://{mock}/v1
      api_key: k
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
  - model_name: dear
    litellm_params:
      model: openai/dear
      api_base: http://{mock}/v1
      api_key: k
      input_cost_per_token: 0.00001
      output_cost_per_token: 0.00002
general_settings:
  master_key: {KEY}
"
    )
}

/// `method path` with `key` as bearer and an optional JSON body: the status and the JSON answer
/// (its text as a string when it is not JSON).
pub async fn call(gw: &Gw, method: &str, path: &str, key: &str, body: Option<Value>) -> (u16, Value) {
    let url = format!("{}{path}", gw.base);
    let req = match method {
        "GET" => gw.http.get(url),
        "PATCH" => gw.http.patch(url),
        "DELETE" => gw.http.delete(url),
        _ => gw.http.post(url),
    };
    let req = req.bearer_auth(key);
    let req = match body {
        Some(b) => req.json(&b),
        None => req,
    };
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}
