//! The record store seen from outside the gateway: a failing sink shows in readiness and
//! `/metrics` while requests keep working, the shutdown summary tells what each sink got,
//! SIGHUP reopens the JSONL file, and `record_durability: sync` answers only after the commit.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tollgate_store::{RecordDurability, SinkTotals, WriteSummary};

mod common;
use common::{Gw, KEY, gateway_at};

fn config(upstream: SocketAddr, tollgate_settings: &str) -> String {
    format!(
        "model_list:\n  - model_name: chat\n    litellm_params:\n      model: openai/gpt-4o-mini\n      api_base: http://{upstream}/v1\n      api_key: upstream-key\ngeneral_settings:\n  master_key: {KEY}\n{tollgate_settings}"
    )
}

fn chat(content: &str, stream: bool) -> Value {
    json!({"model": "chat", "stream": stream, "messages": [{"role": "user", "content": content}]})
}

/// A gateway on `yaml` whose JSONL sink (`records.jsonl` in its dir) is prepared by `jsonl_setup`.
async fn gateway_with(yaml: &str, jsonl_setup: impl FnOnce(&Path)) -> Gw {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, yaml).unwrap();
    jsonl_setup(&dir.path().join("records.jsonl"));
    gateway_at(&path, dir, false).await
}

async fn metrics(g: &Gw) -> String {
    g.get_text("/metrics", false).await
}

/// The value of the sample named exactly `series` (name plus labels).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

/// Polls readiness until `cond` holds; a deadline for a hung test, not a performance threshold.
async fn readiness_until(g: &Gw, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = g.readiness().await;
        if cond(&ready) {
            return ready;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {ready:#}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_full_jsonl_disk_degrades_readiness_counts_failures_and_recovers() {
    if !Path::new("/dev/full").exists() {
        eprintln!("skipped: no /dev/full on this system (it makes every JSONL write fail with ENOSPC)");
        return;
    }
    let mock = common::start_mock(&[]).await;
    // Every write to /dev/full fails with "No space left on device": a real disk-full error.
    let g = gateway_with(&config(mock, ""), |jsonl| {
        std::os::unix::fs::symlink("/dev/full", jsonl).unwrap()
    })
    .await;
    assert_eq!(g.readiness().await["status"], "healthy");

    for i in 0..5 {
        let resp = g.chat(chat(&format!("hi {i}"), i == 4)).await;
        assert_eq!(resp.status(), 200, "a failing sink never fails a request");
        resp.bytes().await.unwrap();
    }
    let ready = readiness_until(&g, "the failure to show", |r| {
        r["store"]["sinks"]["sqlite"]["written"] == 5 && r["store"]["sinks"]["jsonl"]["pending_retry"] == 5
    })
    .await;
    assert_eq!(ready["status"], "degraded");
    let error = ready["store"]["error"].as_str().unwrap();
    assert!(
        error.contains("jsonl sink") && error.contains("No space left on device"),
        "{error}"
    );
    assert!(ready["store"]["sinks"]["jsonl"]["write_errors"].as_u64().unwrap() >= 1);
    assert_eq!(ready["store"]["records_written"], 0, "no record is in both sinks yet");

    let text = metrics(&g).await;
    assert!(sample(&text, "tollgate_records_write_failures_total{sink=\"jsonl\"}") >= 1.0);
    assert_eq!(
        sample(&text, "tollgate_records_write_failures_total{sink=\"sqlite\"}"),
        0.0
    );
    assert_eq!(
        sample(&text, "tollgate_records_sink_written_total{sink=\"sqlite\"}"),
        5.0
    );
    assert_eq!(sample(&text, "tollgate_records_retry_pending{sink=\"jsonl\"}"), 5.0);
    assert_eq!(sample(&text, "tollgate_records_dropped_total"), 0.0);

    // Space again: the path now names a regular file; the writer follows it and catches up.
    let jsonl = g.dir.path().join("records.jsonl");
    let fresh = g.dir.path().join("fresh.jsonl");
    std::fs::write(&fresh, "").unwrap();
    std::fs::rename(&fresh, &jsonl).unwrap();
    let ready = readiness_until(&g, "recovery", |r| r["status"] == "healthy").await;
    assert_eq!(ready["store"]["records_written"], 5);
    assert!(ready["store"]["error"].is_null());

    let summary = g.gw.shutdown().await.unwrap();
    let each = SinkTotals { written: 5, failed: 0 };
    assert_eq!(
        summary,
        WriteSummary {
            written: 5,
            failed: 0,
            dropped: 0,
            sqlite: each,
            jsonl: Some(each),
        }
    );
    assert_eq!(tollgate_store::read_jsonl(&jsonl).unwrap().count(), 5);
}

#[tokio::test]
async fn sighup_reopens_the_jsonl_file_after_logrotate_moves_it() {
    let mock = common::start_mock(&[]).await;
    let g = gateway_with(&config(mock, ""), |_| {}).await;
    let jsonl = g.dir.path().join("records.jsonl");
    let rotated = g.dir.path().join("records.jsonl.1");
    assert_eq!(g.chat(chat("before", false)).await.status(), 200);
    readiness_until(&g, "the first record", |r| r["store"]["records_written"] == 1).await;

    std::fs::rename(&jsonl, &rotated).unwrap();
    let app = g.gw.app.clone();
    tokio::task::spawn_blocking(move || app.hangup())
        .await
        .unwrap()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !jsonl.exists() {
        assert!(Instant::now() < deadline, "SIGHUP did not reopen {}", jsonl.display());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(g.chat(chat("after", false)).await.status(), 200);
    let summary = g.gw.shutdown().await.unwrap();
    assert_eq!(summary.jsonl, Some(SinkTotals { written: 2, failed: 0 }));
    let ids = |p: &Path| -> Vec<String> {
        tollgate_store::read_jsonl(p)
            .unwrap()
            .map(|r| r.unwrap().request_id)
            .collect()
    };
    let (old, new) = (ids(&rotated), ids(&jsonl));
    assert_eq!(
        (old.len(), new.len()),
        (1, 1),
        "one record before the rotation, one after"
    );
    let in_sqlite: Vec<String> = tollgate_store::read_sqlite(&g.dir.path().join("data"))
        .unwrap()
        .map(|r| r.unwrap().request_id)
        .collect();
    assert_eq!(in_sqlite, [old[0].clone(), new[0].clone()]);
}

#[tokio::test]
async fn sync_durability_commits_each_record_before_the_answer_ends() {
    let mock = common::start_mock(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    // Start buffered, switch to sync by a reload: the mode follows the live config.
    std::fs::write(&path, config(mock, "")).unwrap();
    let g = gateway_at(&path, dir, false).await;
    assert_eq!(g.readiness().await["store"]["durability"], "buffered");
    std::fs::write(&path, config(mock, "tollgate_settings:\n  record_durability: sync\n")).unwrap();
    let reload = g.post("/admin/reload", json!({})).await;
    assert_eq!(reload.status(), 200);
    assert_eq!(g.gw.app.writer.durability(), RecordDurability::Sync);
    assert_eq!(g.readiness().await["store"]["durability"], "sync");
    // What `tollgate check` and the startup summary say about it.
    let summary = tollgate_gateway::startup_summary(
        &g.gw.app.live.load(),
        "127.0.0.1:0",
        &tollgate_gateway::ServeOptions::default(),
        true,
    );
    assert!(
        summary.iter().any(|l| l.starts_with("  record durability: sync (")),
        "{summary:#?}"
    );

    let data = g.dir.path().join("data");
    let stored = |data: &Path| tollgate_store::read_sqlite(data).unwrap().count();
    // Read right after each answer, with no waiting: in `buffered` mode the record would still
    // be lingering in the writer's queue at this point.
    for i in 0..5 {
        let resp = g.chat(chat(&format!("plain {i}"), false)).await;
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
        assert_eq!(stored(&data), i + 1, "plain answer {i}: its record is committed");
    }
    let resp = g.chat(chat("streamed", true)).await;
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.unwrap();
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
    assert_eq!(stored(&data), 6, "a stream's record is committed before its [DONE]");

    // Concurrent requests share commits and all are stored when their answers arrive.
    let answers = futures::future::join_all((0..20).map(|i| g.chat(chat(&format!("many {i}"), false)))).await;
    assert!(answers.iter().all(|r| r.status() == 200));
    assert_eq!(stored(&data), 26);
    let records = g.records().await;
    assert_eq!(records.len(), 26);
}
