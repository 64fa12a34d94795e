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
            "model_list:\n  - model_name: m\n    litellm_params:\n      model: bedrock/claude\n".to_string(),
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
