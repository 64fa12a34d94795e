//! `tollgate check` end to end: it shows where traffic goes without the credentials written into
//! URLs and headers, and it refuses the silent config mistakes naming file, line and column.

use std::path::Path;
use std::process::Command;

struct Checked {
    code: Option<i32>,
    out: String,
}

fn check(dir: &Path, yaml: &str) -> Checked {
    let path = dir.join("config.yaml");
    std::fs::write(&path, yaml).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["check", "--config"])
        .arg(&path)
        .env_remove("TOLLGATE_CONFIG")
        .output()
        .unwrap();
    Checked {
        code: o.status.code(),
        out: format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    }
}

#[test]
fn check_masks_credentials_in_urls_headers_and_redis_url() {
    let dir = tempfile::tempdir().unwrap();
    let c = check(
        dir.path(),
        r#"model_list:
  - model_name: m
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://user:hunter2@gpu-box:8000/v1?api-key=sk-query-secret
      api_key: sk-provider-key-secret
      extra_headers: {X-Vendor-Auth: vendor-header-secret}
litellm_settings:
  cache: true
  cache_params: {type: redis, url: 'redis://:redis-pass-secret@127.0.0.1:6379/0'}
general_settings:
  master_key: sk-a-long-random-master-key-0123
"#,
    );
    assert!(matches!(c.code, Some(0 | 1)), "{}", c.out);
    assert!(
        c.out.contains("http://user:***@gpu-box:8000/v1?api-key=***"),
        "{}",
        c.out
    );
    for secret in [
        "hunter2",
        "sk-query-secret",
        "provider-key-secret",
        "vendor-header-secret",
        "redis-pass-secret",
        "random-master-key",
    ] {
        assert!(!c.out.contains(secret), "`{secret}` shown:\n{}", c.out);
    }
}

#[test]
fn check_refuses_silent_mistakes_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml").display().to_string();
    let model = "model_list:\n  - model_name: m\n    litellm_params: {model: openai/x}\n";
    let cases = [
        (
            format!("{model}router_settings:\n  cooldown_time: 1e308\n"),
            format!("{file}:5:18: router_settings.cooldown_time:"),
        ),
        (
            format!("{model}general_settings: {{}}\n{model}"),
            format!("{file}:5:1: model_list:"),
        ),
        (
            "model_list:\n  - model_name: m\n    litellm_params:\n      model: openai/x\n      api_base: 'ht!tp://bad url'\n"
                .to_string(),
            format!("{file}:5:17: model_list[0].litellm_params.api_base:"),
        ),
        // Found after loading, when the provider is resolved: still located.
        (
            "model_list:\n  - model_name: m\n    litellm_params:\n      model: hosted_vllm/m\n".to_string(),
            format!("{file}:4:14: model_list[0].litellm_params.model:"),
        ),
        (
            "model_list: []\ntollgate_settings:\n  prices_file: nope.json\n".to_string(),
            format!("{file}:3:16: tollgate_settings.prices_file:"),
        ),
    ];
    for (yaml, want) in cases {
        let c = check(dir.path(), &yaml);
        assert_eq!(c.code, Some(2), "{yaml}\n{}", c.out);
        assert!(c.out.contains(&want), "want `{want}` in:\n{}", c.out);
    }
}

#[test]
fn check_warnings_name_the_line_they_are_about() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml").display().to_string();
    let c = check(
        dir.path(),
        "model_list:\n  - model_name: m\n    litellm_params: {model: openai/x, input_cost_per_token: 1e-6, output_cost_per_token: 1e-6}\nlitellm_settings:\n  callbacks: [x]\n",
    );
    assert_eq!(c.code, Some(1), "{}", c.out);
    assert!(
        c.out
            .contains(&format!("warning: {file}:5:3: litellm_settings.callbacks:")),
        "{}",
        c.out
    );
}

/// `tollgate check` with extra flags and a chosen `DATABASE_URL` (removed when `None`, so the
/// machine's own environment cannot decide the outcome).
fn check_with(dir: &Path, yaml: &str, flags: &[&str], database_url_env: Option<&str>) -> Checked {
    let path = dir.join("config.yaml");
    std::fs::write(&path, yaml).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tollgate"));
    cmd.args(["check", "--config"])
        .arg(&path)
        .args(flags)
        .env_remove("TOLLGATE_CONFIG")
        .env_remove("DATABASE_URL");
    if let Some(url) = database_url_env {
        cmd.env("DATABASE_URL", url);
    }
    let o = cmd.output().unwrap();
    Checked {
        code: o.status.code(),
        // The temp dir's random name could contain any two letters; only what tollgate wrote counts.
        out: format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
        .replace(&dir.display().to_string(), "<dir>"),
    }
}

const MODEL: &str = "model_list:\n  - model_name: m\n    litellm_params: {model: openai/x}\n";

#[test]
fn check_names_the_postgres_store_and_where_it_came_from_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let c = check_with(
        dir.path(),
        &format!("{MODEL}general_settings:\n  database_url: postgres://u:pw@h:5432/db\n"),
        &[],
        None,
    );
    assert!(matches!(c.code, Some(0 | 1)), "{}", c.out);
    assert!(
        c.out.contains(
            "  store: postgres postgres://u:***@h:5432/db (from general_settings.database_url, pool 10), records written to sqlite tollgate-data/tollgate.sqlite first and shipped in batches"
        ),
        "{}",
        c.out
    );
    assert!(!c.out.contains("pw"), "the password is shown:\n{}", c.out);
    // LiteLLM's key is acted on now: no warning calls the database unused.
    assert!(!c.out.contains("general_settings.database_url:"), "{}", c.out);
}

#[test]
fn check_uses_the_flag_over_the_config_over_database_url() {
    let dir = tempfile::tempdir().unwrap();
    let with_config = format!(
        "{MODEL}general_settings:\n  database_url: postgres://cfg:cfg-secret@cfg-host/db\n  database_connection_pool_limit: 4\n"
    );
    let env_url = Some("postgresql://env:env-secret@env-host/db");
    let flag = [
        "--database-url",
        "postgres://flag:flag-secret@flag-host/db?sslmode=require",
    ];
    for (yaml, flags, env, want) in [
        (
            with_config.as_str(),
            &flag[..],
            env_url,
            "  store: postgres postgres://flag:***@flag-host/db?sslmode=require (from --database-url, pool 4)",
        ),
        (
            with_config.as_str(),
            &[][..],
            env_url,
            "  store: postgres postgres://cfg:***@cfg-host/db (from general_settings.database_url, pool 4)",
        ),
        (
            MODEL,
            &[][..],
            env_url,
            "  store: postgres postgresql://env:***@env-host/db (from DATABASE_URL, pool 10)",
        ),
        (MODEL, &[][..], None, "  store: sqlite tollgate-data/tollgate.sqlite\n"),
    ] {
        let c = check_with(dir.path(), yaml, flags, env);
        assert!(matches!(c.code, Some(0 | 1)), "{}", c.out);
        assert!(c.out.contains(want), "want `{want}` in:\n{}", c.out);
        assert!(!c.out.contains("-secret"), "a password is shown:\n{}", c.out);
    }
}

#[test]
fn check_refuses_a_database_that_is_not_postgres_naming_where_it_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let c = check_with(dir.path(), MODEL, &[], Some("mysql://u:env-secret@h/db"));
    assert_eq!(c.code, Some(2), "{}", c.out);
    assert!(
        c.out.contains("invalid: DATABASE_URL (environment variable): "),
        "{}",
        c.out
    );
    assert!(
        c.out.contains("`mysql:`") && c.out.contains("only Postgres"),
        "{}",
        c.out
    );
    assert!(!c.out.contains("env-secret"), "{}", c.out);
    let c = check_with(dir.path(), MODEL, &["--database-url", "sqlite:///tmp/x.db"], None);
    assert_eq!(c.code, Some(2), "{}", c.out);
    assert!(c.out.contains("invalid: --database-url: "), "{}", c.out);
    let c = check_with(
        dir.path(),
        &format!("{MODEL}general_settings:\n  database_url: 'mysql://u:cfg-secret@h/db'\n"),
        &[],
        None,
    );
    assert_eq!(c.code, Some(2), "{}", c.out);
    assert!(
        c.out
            .contains("<dir>/config.yaml:5:17: general_settings.database_url: "),
        "{}",
        c.out
    );
    assert!(!c.out.contains("cfg-secret"), "{}", c.out);
    // require_database without any database is refused before serving, not discovered later.
    let c = check_with(
        dir.path(),
        &format!("{MODEL}tollgate_settings:\n  require_database: true\n"),
        &[],
        None,
    );
    assert_eq!(c.code, Some(2), "{}", c.out);
    assert!(
        c.out
            .contains("<dir>/config.yaml:5:21: tollgate_settings.require_database is true but no database is set"),
        "{}",
        c.out
    );
}

#[test]
fn a_provider_tollgate_cannot_reach_is_a_located_warning_not_a_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml").display().to_string();
    let c = check(
        dir.path(),
        "model_list:\n  - model_name: m\n    litellm_params:\n      model: bedrock/claude\n  - model_name: ok\n    litellm_params: {model: openai/x, api_base: 'http://h/v1', input_cost_per_token: 1e-6, output_cost_per_token: 1e-6}\n",
    );
    assert_eq!(c.code, Some(1), "{}", c.out);
    assert!(
        c.out
            .contains("# not served (1 deployment(s) skipped; the rest is served)"),
        "{}",
        c.out
    );
    assert!(
        c.out
            .contains(&format!("{file}:4:14: m (bedrock/claude): bedrock/ is not yet served")),
        "{}",
        c.out
    );
    assert!(
        c.out.contains(&format!(
            "warning: {file}:4:14: model_list[0].litellm_params.model: bedrock/"
        )),
        "{}",
        c.out
    );
    assert!(c.out.contains("model ok: openai/x via http://h/v1"), "{}", c.out);
}

/// A config in the shape of LiteLLM's own example (tests/fixtures/litellm_proxy_config.yaml):
/// it loads, lists what it skips, and warns only about what tollgate skips or does not act on.
#[test]
fn litellm_example_config_loads_with_warnings_only() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/litellm_proxy_config.yaml");
    let o = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["check", "--config"])
        .arg(&fixture)
        .env_remove("TOLLGATE_CONFIG")
        .env_remove("DATABASE_URL")
        .env("AZURE_API_KEY", "azure-test-key")
        .env("OPENAI_API_KEY", "openai-test-key")
        .output()
        .unwrap();
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    // 1 = loaded with warnings (2 would be a refusal).
    assert_eq!(o.status.code(), Some(1), "{out}");
    // The skipped deployments: SageMaker (SigV4), Bedrock, and `azure/` without a deployment.
    assert!(
        out.contains("# not served (3 deployment(s) skipped; the rest is served)"),
        "{out}"
    );
    for skipped in [
        "sagemaker-llama (sagemaker/llama-3-70b-endpoint): sagemaker/ is not yet served",
        "claude-bedrock (bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0): bedrock/ is not yet served",
        "dall-e-3-azure (azure/): `azure/` names no model after its provider prefix",
    ] {
        assert!(out.contains(skipped), "`{skipped}` not in:\n{out}");
    }
    // What is served: Azure natively, bare names as OpenAI, the OpenAI-compatible endpoint.
    for served in [
        "model gpt-4o: azure/chat-deployment via https://example-resource.openai.azure.com?api-version=2024-06-01",
        "model gpt-4o-large: gpt-4o via https://api.openai.com/v1",
        "model instruct: text-completion-openai/gpt-3.5-turbo-instruct",
        "model local-llm: lm_studio/qwen3-8b via http://127.0.0.1:1234/v1",
        "pattern *: openai/* (a name no group holds",
        "pattern anthropic/*: anthropic/*",
        "pattern groq/*: groq/*",
    ] {
        assert!(out.contains(served), "`{served}` not in:\n{out}");
    }
    assert!(
        out.contains("unknown provider prefix `lm_studio/`: served as an OpenAI-compatible endpoint"),
        "{out}"
    );
    // Never the key.
    assert!(
        !out.contains("azure-test-key") && !out.contains("openai-test-key"),
        "{out}"
    );
}
