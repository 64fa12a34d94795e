//! Each input format, read from small fixtures trimmed from the LiteLLM 1.108.7 corpus.

mod common;

use std::io::Write;

use common::*;
use tollgate_core::{CacheState, PriceTable, Record, RecordStatus};
use tollgate_report::ReportError;
use tollgate_report::import::Importer;

fn by_id<'a>(records: &'a [Record], prefix: &str) -> &'a Record {
    records.iter().find(|r| r.request_id.starts_with(prefix)).expect(prefix)
}

#[test]
fn litellm_payload_jsonl() {
    let (records, summaries) = import(&[fixture("payload.jsonl")]);
    assert_eq!(records.len(), 5);
    assert_eq!(
        summaries[0].format.as_deref(),
        Some("LiteLLM StandardLoggingPayload (JSON lines)")
    );
    assert_eq!(summaries[0].corrupt_lines, 0);

    // Plain success: tokens from usage_object, logged and recomputed cost both kept.
    let g = by_id(&records, "836a11bf");
    assert_eq!(g.model_group, "gemini-2.5-flash");
    assert_eq!(g.model, "gemini/gemini-2.5-flash");
    assert_eq!(
        (
            g.prompt_tokens,
            g.completion_tokens,
            g.reasoning_tokens,
            g.cached_tokens
        ),
        (8242, 105, 26, 64)
    );
    assert_eq!(g.reported_cost_usd, Some(0.0027178199999999997));
    // By hand: (8242-64)×0.3e-6 + 64×0.03e-6 + 79×2.5e-6 + 26×2.5e-6 = 0.0024534 + 0.00000192 + 0.0002625
    assert!((g.cost_usd.unwrap() - 0.00271782).abs() < 1e-12);
    assert_eq!(g.cache, CacheState::Unknown);
    assert_eq!(g.user_agent.as_deref(), Some("RooCode/1.0.4"));
    assert_eq!(g.session_id.as_deref(), Some("44ab6cce-8087-7b6f-71e1-f6d2ef8acd12"));
    assert!((g.overhead_ms.unwrap() - 486.975).abs() < 1e-9);
    assert_eq!(g.finish_reason.as_deref(), Some("stop"));
    assert!(!g.stream && g.ttft_ms.is_none());

    // Response-cache hit: same response id as the original, unique litellm_call_id, costs 0,
    // saves what the original cost.
    let hit = by_id(&records, "145f6562");
    assert_eq!(hit.cache, CacheState::Hit);
    assert_eq!(hit.cost_usd, Some(0.0));
    assert!((hit.saved_cost_usd.unwrap() - 0.00271782).abs() < 1e-12);
    assert_eq!(
        hit.prompt_sha256, g.prompt_sha256,
        "identical messages, identical fingerprint"
    );
    assert!(hit.prompt_sha256.is_some());

    // Stream: time to first token = completionStartTime − startTime.
    let s = by_id(&records, "6b622db1");
    assert!(s.stream);
    assert!((s.ttft_ms.unwrap() - 457.958).abs() < 0.01, "{:?}", s.ttft_ms);
    assert!((s.latency_ms - 508.776).abs() < 0.01, "{}", s.latency_ms);

    // Failure: zero tokens, error kept, not unpriced.
    let f = by_id(&records, "ee206161");
    assert_eq!(f.status, RecordStatus::Failure);
    assert_eq!(f.http_status, 500);
    assert!(f.error_message.as_deref().unwrap().contains("upstream overloaded"));
    assert_eq!(f.total_tokens(), 0);
    assert_eq!(f.error_type.as_deref(), Some("InternalServerError"));
}

#[test]
fn gzip_is_detected_by_content() {
    let (plain, _) = import(&[fixture("payload.jsonl")]);
    let (gz, summaries) = import(&[fixture("payload.jsonl.gz")]);
    assert!(summaries[0].gzip);
    assert_eq!(plain, gz);
}

#[test]
fn spendlogs_jsonl_json_array_and_csv_agree() {
    let (jsonl, s1) = import(&[fixture("spend_logs.jsonl")]);
    let (array, s2) = import(&[fixture("spend_logs.json")]);
    let (csv, s3) = import(&[fixture("spend_logs.csv")]);
    assert_eq!(s1[0].format.as_deref(), Some("LiteLLM_SpendLogs (JSON lines)"));
    assert_eq!(s2[0].format.as_deref(), Some("LiteLLM_SpendLogs (JSON array)"));
    assert_eq!(s3[0].format.as_deref(), Some("LiteLLM_SpendLogs (CSV)"));
    assert_eq!(jsonl.len(), 5);
    for other in [&array, &csv] {
        assert_eq!(other.len(), 5);
        for (a, b) in jsonl.iter().zip(other.iter()) {
            assert_eq!(a.request_id, b.request_id);
            assert_eq!(a.start_time, b.start_time);
            assert_eq!(
                (
                    a.prompt_tokens,
                    a.completion_tokens,
                    a.reasoning_tokens,
                    a.cached_tokens
                ),
                (
                    b.prompt_tokens,
                    b.completion_tokens,
                    b.reasoning_tokens,
                    b.cached_tokens
                )
            );
            assert_eq!(a.cache, b.cache);
            assert_eq!(a.cost_usd, b.cost_usd);
            // serde_json's fast float parser may differ from `str::parse` in the last bit.
            assert!((a.reported_cost_usd.unwrap() - b.reported_cost_usd.unwrap()).abs() < 1e-15);
            assert_eq!(a.user_agent, b.user_agent);
        }
    }
    // The key is litellm_call_id: two hits share the original's request_id prefix but stay apart.
    let keys: std::collections::BTreeSet<_> = jsonl.iter().map(|r| r.request_id.clone()).collect();
    assert_eq!(keys.len(), 5);
    let orig = by_id(&jsonl, "836a11bf");
    assert_eq!(
        orig.cache,
        CacheState::Miss,
        "a real cache_key on a miss means the cache is on"
    );
    assert_eq!((orig.reasoning_tokens, orig.cached_tokens), (26, 64));
    let hit = by_id(&jsonl, "145f6562");
    assert_eq!(hit.cache, CacheState::Hit, "cache_hit \"True\" string");
    assert_eq!(hit.cost_usd, Some(0.0));
    let stream = by_id(&jsonl, "6b622db1");
    assert!(stream.stream);
    assert!((stream.ttft_ms.unwrap() - 457.958).abs() < 0.01);
    assert_eq!(
        stream.session_id.as_deref(),
        Some("d95bafc8-f2a4-d27b-dcf4-bb99f4bea973")
    );
}

#[test]
fn spendlogs_cache_off() {
    let (records, _) = import(&[fixture("spend_logs_cache_off.jsonl")]);
    assert_eq!(records.len(), 3);
    assert!(records.iter().all(|r| r.cache == CacheState::Off));
    assert!(records.iter().all(|r| r.overhead_ms.is_some()));
}

fn tollgate_records() -> Vec<Record> {
    let mut a = rec("tg-1", "cf-x-normal", "deepseek/deepseek-v3.2", 1000, 200);
    a.workflow = Some("cf-x".into());
    a.step_role = Some("planner".into());
    a.step_index = Some(0);
    let b = failed("tg-2", "grok-4.1-fast", "xai/grok-4-1-fast-reasoning", "boom");
    vec![a, b]
}

#[test]
fn tollgate_jsonl_and_dedupe() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.jsonl");
    let mut f = std::fs::File::create(&path).unwrap();
    for r in tollgate_records() {
        writeln!(f, "{}", serde_json::to_string(&r).unwrap()).unwrap();
    }
    // The same record again is a duplicate, dropped by the report.
    writeln!(f, "{}", serde_json::to_string(&tollgate_records()[0]).unwrap()).unwrap();
    drop(f);
    let (records, s) = import(std::slice::from_ref(&path));
    assert_eq!(s[0].format.as_deref(), Some("tollgate records (JSON lines)"));
    assert_eq!(records.len(), 3);
    assert_eq!(records[0], tollgate_records()[0]);
    let r = report(&[path]);
    assert_eq!(r.requests.total, 2);
    assert_eq!(r.duplicates, 1);
}

/// Writes records the way the gateway does: through `tollgate-store`'s bounded writer, into a
/// data directory (SQLite) and a JSONL file.
fn write_with_the_store(data_dir: &std::path::Path, jsonl: &std::path::Path, records: &[Record]) {
    let (writer, handle) = tollgate_store::RecordWriter::start(tollgate_store::StoreConfig {
        data_dir: data_dir.to_path_buf(),
        jsonl: Some(jsonl.to_path_buf()),
        capacity: 64,
        durability: Default::default(),
        instance_id: None,
        shared: None,
        retention_days: None,
    })
    .unwrap();
    for r in records {
        writer.submit(r.clone());
    }
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let summary = rt.block_on(handle.shutdown()).unwrap();
    assert_eq!(summary.written, records.len() as u64);
}

#[test]
fn tollgate_sqlite_store_and_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("tollgate-data");
    let jsonl = dir.path().join("records.jsonl");
    write_with_the_store(&data_dir, &jsonl, &tollgate_records());
    let db = data_dir.join(tollgate_store::DB_FILE_NAME);
    // One row the writer would never write, to show corrupt rows are counted by row id.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("INSERT INTO records (json) VALUES ('{not json')", [])
        .unwrap();

    let (records, s) = import(std::slice::from_ref(&db));
    assert_eq!(s[0].format.as_deref(), Some("tollgate SQLite store"));
    assert_eq!(records, tollgate_records());
    assert_eq!(s[0].corrupt_lines, 1);
    assert_eq!(s[0].corrupt[0].line, 3, "row id of the bad row");
    // The data directory itself.
    let (records, _) = import(&[data_dir]);
    assert_eq!(records, tollgate_records());
    // The writer's JSONL holds the same records.
    let (records, s) = import(&[jsonl]);
    assert_eq!(s[0].format.as_deref(), Some("tollgate records (JSON lines)"));
    assert_eq!(records, tollgate_records());
}

#[test]
fn corrupt_lines_are_counted_with_their_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.jsonl");
    let good = std::fs::read_to_string(fixture("payload.jsonl")).unwrap();
    let lines: Vec<&str> = good.lines().collect();
    let text = format!(
        "{}\n{{\"litellm_call_id\": \"x\", truncated\n\n{}\nnot json at all\n",
        lines[0], lines[1]
    );
    std::fs::write(&path, text).unwrap();
    let (records, s) = import(&[path]);
    assert_eq!(records.len(), 2);
    assert_eq!(s[0].corrupt_lines, 2);
    assert_eq!(s[0].corrupt.iter().map(|c| c.line).collect::<Vec<_>>(), vec![2, 5]);
}

#[test]
fn unknown_format_is_a_clear_error_and_empty_is_fine() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "hello\nworld\n").unwrap();
    let prices = PriceTable::builtin();
    let importer = Importer {
        prices: &prices,
        on_bytes: None,
    };
    let err = importer.import(&path.display().to_string(), &mut |_| true).unwrap_err();
    assert!(matches!(err, ReportError::UnknownFormat { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("StandardLoggingPayload") && msg.contains("LiteLLM_SpendLogs") && msg.contains("tollgate"),
        "{msg}"
    );

    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let (records, s) = import(std::slice::from_ref(&empty));
    assert!(records.is_empty());
    assert_eq!(s[0].format.as_deref(), Some("empty"));
    let r = report(&[empty]);
    assert_eq!(r.requests.total, 0);
    for f in [
        tollgate_report::Format::Md,
        tollgate_report::Format::Json,
        tollgate_report::Format::Html,
        tollgate_report::Format::Table,
    ] {
        assert!(!tollgate_report::render(&r, f, tollgate_report::Lang::En).is_empty());
    }
}

#[test]
fn stdin_style_reader() {
    let prices = PriceTable::builtin();
    let importer = Importer {
        prices: &prices,
        on_bytes: None,
    };
    let bytes = std::fs::read(fixture("payload.jsonl.gz")).unwrap();
    let mut n = 0;
    let s = importer.import_reader("-", Box::new(std::io::Cursor::new(bytes)), &mut |_| {
        n += 1;
        true
    });
    assert_eq!(s.unwrap().records, 5);
    assert_eq!(n, 5);
}

#[test]
fn payload_and_spendlogs_of_the_same_requests_merge() {
    // Request 001d2a5b is in both files. The payload's record is kept (read first, richer), the
    // SpendLogs copy is dropped as a duplicate, but its "Cache OFF" settles the cache state that
    // the payload could not tell.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("spend_logs_cache_off.jsonl"), dir.path().join("a_spend.jsonl")).unwrap();
    std::fs::copy(fixture("payload.jsonl"), dir.path().join("b_payload.jsonl")).unwrap();
    let r = report(&[dir.path().to_path_buf()]);
    assert_eq!(r.inputs[0].input, "b_payload.jsonl", "payload files are read first");
    assert_eq!(r.requests.total, 7);
    assert_eq!(r.duplicates, 1);
    assert_eq!(r.cache.records.off, 3);
    assert_eq!(r.cache.records.hit, 1);
    assert_eq!(r.cache.state, "mixed");
}

#[test]
fn workflow_tags_from_request_headers() {
    let line = std::fs::read_to_string(fixture("payload.jsonl"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    let mut v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let headers = &mut v["metadata"]["requester_metadata"]["headers"];
    headers["x-tollgate-workflow"] = "cf-x".into();
    headers["x-tollgate-step"] = "1:coder".into();
    let prices = PriceTable::builtin();
    let r = tollgate_report::import::litellm::payload_to_record(v.to_string().as_bytes(), &prices).unwrap();
    assert_eq!(r.workflow.as_deref(), Some("cf-x"));
    assert_eq!(r.step_role.as_deref(), Some("coder"));
    assert_eq!(r.step_index, Some(1));
}
