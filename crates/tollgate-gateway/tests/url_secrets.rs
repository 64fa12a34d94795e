//! Credentials written into URLs (`api_base: http://user:pass@host/v1?api-key=…`, a Redis URL
//! with a password) and `extra_headers` values never leave the gateway: not in the error a client
//! gets, not in records, not in the startup lines, `/admin/config` or `/v1/model/info`. And an
//! `api_base` with a query still reaches the upstream's path.

mod common;

use common::{KEY, gateway, start_mock};
use serde_json::{Value, json};
use tollgate_core::config::ProcessEnv;
use tollgate_gateway::{LiveState, ServeOptions, startup_summary};

const SECRETS: [&str; 4] = [
    "hunter2",
    "sk-query-secret",
    "vendor-header-secret",
    "redis-pass-secret",
];

fn assert_no_secret(place: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{place} shows `{s}`:\n{text}");
    }
}

fn config(mock: std::net::SocketAddr) -> String {
    format!(
        r#"model_list:
  - model_name: reachable
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://user:hunter2@{mock}/v1?api-key=sk-query-secret
      api_key: k
      extra_headers: {{X-Vendor-Auth: vendor-header-secret}}
  - model_name: unreachable
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://user:hunter2@127.0.0.1:9/v1?api-key=sk-query-secret
      api_key: k
litellm_settings:
  cache: true
  cache_params: {{type: redis, url: 'redis://:redis-pass-secret@127.0.0.1:9/0', mode: default_off}}
general_settings:
  master_key: {KEY}
"#
    )
}

#[tokio::test]
async fn credentials_in_urls_never_reach_clients_records_or_listings() {
    let mock = start_mock(&[]).await;
    let yaml = config(mock);
    let g = gateway(&yaml).await;

    // The query string stays at the end of the URL, so the upstream's path is right.
    let r = g
        .chat(json!({"model": "reachable", "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());

    // A connection failure: reqwest's message embeds the whole URL.
    let r = g
        .chat(json!({"model": "unreachable", "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(r.status(), 502);
    let body = r.text().await.unwrap();
    let err: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["error"]["code"], "upstream_unreachable", "{body}");
    assert!(body.contains("127.0.0.1:9"), "the message still says where: {body}");
    assert_no_secret("the error body", &body);

    // Streamed, too (the stream path builds its own error).
    let r = g
        .chat(json!({"model": "unreachable", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_no_secret("the streamed error", &r.text().await.unwrap());

    for path in ["/admin/config", "/v1/model/info"] {
        let text = g.get_text(path, true).await;
        assert!(text.contains("127.0.0.1:9"), "{path} still lists the upstream: {text}");
        assert_no_secret(path, &text);
    }

    let (records, jsonl) = g.records_and_jsonl().await;
    assert!(records.len() >= 3, "{records:?}");
    assert!(
        records
            .iter()
            .any(|r| r.error_message.as_deref().is_some_and(|m| m.contains("cannot reach"))),
        "{records:?}"
    );
    for r in &records {
        assert_no_secret("a record", &serde_json::to_string(r).unwrap());
    }
    let bases: Vec<&str> = records.iter().filter_map(|r| r.api_base.as_deref()).collect();
    assert!(
        !bases.is_empty() && bases.iter().all(|b| b.contains("user:***@")),
        "{bases:?}"
    );
    assert_no_secret("the JSONL records", &jsonl);
}

#[tokio::test]
async fn startup_lines_show_where_but_not_the_credentials() {
    let mock = start_mock(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config(mock)).unwrap();
    let cfg = tollgate_core::config::load(&path, &ProcessEnv).unwrap();
    let live = LiveState::build(cfg, 1, None, &ProcessEnv).unwrap();
    let lines = startup_summary(&live, "127.0.0.1:4000", &ServeOptions::default(), true).join("\n");
    assert!(lines.contains("http://user:***@127.0.0.1:9/v1?api-key=***"), "{lines}");
    assert_no_secret("the startup lines", &lines);
    let warnings: Vec<String> = live.all_warnings().map(|w| w.to_string()).collect();
    assert_no_secret("the warnings", &warnings.join("\n"));
}
