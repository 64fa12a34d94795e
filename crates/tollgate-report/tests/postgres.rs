//! `--db`: LiteLLM_SpendLogs read straight from Postgres, in a fresh schema of the database
//! named by `TOLLGATE_TEST_POSTGRES_URL`.

mod common;

use common::*;
use tollgate_core::{CacheState, PriceTable, Record};

#[test]
#[cfg_attr(
    not(tollgate_postgres),
    ignore = "needs Postgres: set TOLLGATE_TEST_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/test)"
)]
fn spendlogs_from_postgres() {
    let url = std::env::var("TOLLGATE_TEST_POSTGRES_URL").expect("TOLLGATE_TEST_POSTGRES_URL");
    let schema = format!("tollgate_report_test_{}", std::process::id());
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    admin
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};"
        ))
        .unwrap();
    // The columns LiteLLM's Prisma schema gives the table (a subset is enough for the reader).
    admin
        .batch_execute(&format!(
            r#"CREATE TABLE {schema}."LiteLLM_SpendLogs" (
                request_id TEXT PRIMARY KEY, call_type TEXT, api_key TEXT, spend DOUBLE PRECISION,
                total_tokens INTEGER, prompt_tokens INTEGER, completion_tokens INTEGER,
                "startTime" TIMESTAMP(3), "endTime" TIMESTAMP(3), "completionStartTime" TIMESTAMP(3),
                model TEXT, model_id TEXT, model_group TEXT, custom_llm_provider TEXT, api_base TEXT,
                "user" TEXT, metadata JSONB, cache_hit TEXT, cache_key TEXT, request_tags JSONB,
                team_id TEXT, end_user TEXT, requester_ip_address TEXT, messages JSONB, response JSONB,
                session_id TEXT, status TEXT, proxy_server_request JSONB)"#
        ))
        .unwrap();
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(fixture("spend_logs.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for r in &rows {
        let s = |k: &str| r[k].as_str().map(str::to_string);
        // Timestamps as Postgres stores them for Prisma's DateTime: UTC without a zone.
        let ts = |k: &str| s(k).map(|t| t.replace("+00:00", ""));
        admin
            .execute(
                &format!(
                    r#"INSERT INTO {schema}."LiteLLM_SpendLogs" (request_id, call_type, spend, total_tokens, prompt_tokens,
                    completion_tokens, "startTime", "endTime", "completionStartTime", model, model_group, custom_llm_provider,
                    metadata, cache_hit, cache_key, request_tags, session_id, status)
                    VALUES ($1, $2, $3, $4, $5, $6, $7::text::timestamp, $8::text::timestamp, $9::text::timestamp, $10, $11, $12,
                    $13::text::jsonb, $14, $15, $16::text::jsonb, $17, $18)"#
                ),
                &[
                    // The primary key is request_id; the two hits of one response share its id
                    // in LiteLLM (suffixed), so keep them apart the way LiteLLM does.
                    &format!("{}-{}", s("request_id").unwrap(), s("litellm_call_id").unwrap()),
                    &s("call_type"),
                    &r["spend"].as_f64(),
                    &(r["total_tokens"].as_i64().map(|v| v as i32)),
                    &(r["prompt_tokens"].as_i64().map(|v| v as i32)),
                    &(r["completion_tokens"].as_i64().map(|v| v as i32)),
                    &ts("startTime"),
                    &ts("endTime"),
                    &ts("completionStartTime"),
                    &s("model"),
                    &s("model_group"),
                    &s("custom_llm_provider"),
                    &s("metadata"),
                    &s("cache_hit"),
                    &s("cache_key"),
                    &s("request_tags"),
                    &s("session_id"),
                    &s("status"),
                ],
            )
            .unwrap();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    let db_url = format!("{url}{sep}options=-csearch_path%3D{schema}");
    let prices = PriceTable::builtin();
    let mut records: Vec<Record> = Vec::new();
    let summaries = tollgate_report::import::postgres_source::import_postgres(&db_url, None, None, &prices, &mut |r| {
        records.push(r);
        true
    })
    .expect("read");
    assert_eq!(summaries.len(), 1, "only LiteLLM's table is in this schema");
    let summary = &summaries[0];
    assert_eq!(summary.records, 5);
    assert_eq!(summary.corrupt_lines, 0);
    assert_eq!(summary.format.as_deref(), Some("LiteLLM_SpendLogs (Postgres)"));
    // The same records as the JSON lines of the same rows (the key is litellm_call_id from metadata).
    let (from_file, _) = import(&[fixture("spend_logs.jsonl")]);
    for want in &from_file {
        let got = records
            .iter()
            .find(|r| r.request_id == want.request_id)
            .expect(&want.request_id);
        assert_eq!(
            (
                got.prompt_tokens,
                got.completion_tokens,
                got.reasoning_tokens,
                got.cached_tokens
            ),
            (
                want.prompt_tokens,
                want.completion_tokens,
                want.reasoning_tokens,
                want.cached_tokens
            )
        );
        assert_eq!(got.cache, want.cache);
        assert_eq!(got.cost_usd, want.cost_usd);
        assert!(
            (got.start_time - want.start_time).num_milliseconds().abs() <= 1,
            "timestamp(3) keeps milliseconds"
        );
    }
    assert_eq!(records.iter().filter(|r| r.cache == CacheState::Hit).count(), 3);
    // --since filters in SQL.
    let since = from_file.iter().map(|r| r.start_time).max().unwrap() - chrono::Duration::milliseconds(1);
    let mut n = 0;
    tollgate_report::import::postgres_source::import_postgres(&db_url, Some(since), None, &prices, &mut |_| {
        n += 1;
        true
    })
    .unwrap();
    assert_eq!(n, 1);
    admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).unwrap();
}

/// `--db` on the shared store gives the same report as `--data-dir` on the instance that shipped
/// the records: same records, same figures, findings and all.
#[test]
#[cfg_attr(
    not(tollgate_postgres),
    ignore = "needs Postgres: set TOLLGATE_TEST_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/test)"
)]
fn the_shared_store_reports_what_the_data_dir_reports() {
    use tollgate_store::{PostgresTarget, RecordWriter, SharedStore, StoreConfig};
    let db = tollgate_store::test_db::TestDatabase::create("report_eq").expect("a Postgres test database");
    let dir = tempfile::tempdir().unwrap();
    // Real traffic shapes: LiteLLM's own logs of a cache-off day and a cache-on day, with
    // failures, unpriced models and repeats.
    let (records, _) = import(&[
        fixture("litellm_cache_off_payload.jsonl"),
        fixture("litellm_cache_on_payload.jsonl"),
    ]);
    assert!(records.len() > 20);
    let mut config = StoreConfig::local(dir.path().to_path_buf());
    config.instance_id = Some("gw-1:4000".into());
    config.shared = Some(SharedStore {
        target: PostgresTarget::parse(&db.url, 2).unwrap(),
        require: true,
    });
    let (writer, handle) = RecordWriter::start(config).unwrap();
    for r in &records {
        writer.submit(r.clone());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let summary = rt.block_on(handle.shutdown()).unwrap();
    assert_eq!(summary.written, records.len() as u64);

    let report_of = |source: &[&str], out: &std::path::Path| -> serde_json::Value {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: tollgate_report::ReportArgs,
        }
        let mut argv = vec!["report"];
        argv.extend_from_slice(source);
        argv.extend_from_slice(&["--format", "json", "-o", out.to_str().unwrap()]);
        let args = Cli::try_parse_from(argv).unwrap().args;
        tollgate_report::run(&args).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
        // Where the records came from differs by design; everything computed from them must not.
        v.as_object_mut().unwrap().remove("inputs");
        v
    };
    let data_dir = dir.path().to_str().unwrap().to_string();
    let from_sqlite = report_of(&["--data-dir", &data_dir], &dir.path().join("sqlite.json"));
    let from_postgres = report_of(&["--db", &db.url], &dir.path().join("postgres.json"));
    assert_eq!(from_sqlite, from_postgres);
    let findings = from_postgres["findings"].as_array().map_or(0, Vec::len);
    assert!(
        findings > 0,
        "the figures compared include the findings: {:?}",
        from_postgres.get("findings")
    );
}
