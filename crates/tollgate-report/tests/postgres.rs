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
    let summary = tollgate_report::import::postgres_source::import_postgres(&db_url, None, None, &prices, &mut |r| {
        records.push(r);
        true
    })
    .expect("read");
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
