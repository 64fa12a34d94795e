//! `tollgate import litellm --db …` then `tollgate serve`: a key issued by LiteLLM keeps working,
//! with its models, spend and budget; a blocked one stays blocked.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sha256_hex(s: &str) -> String {
    // The same hash LiteLLM stores; computed by the gateway's own function.
    tollgate_gateway::keys::hash_key(s)
}

async fn wait_ready(url: &str) {
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        if reqwest::get(url).await.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} did not answer");
}

#[test]
#[cfg_attr(not(tollgate_postgres), ignore = "needs Postgres: set TOLLGATE_TEST_POSTGRES_URL")]
fn a_litellm_key_keeps_working_after_import() {
    let db = tollgate_store::test_db::TestDatabase::create("import").expect("a Postgres test database");
    let mut admin = db.admin().unwrap();
    // The columns of LiteLLM's Prisma schema that the import reads (a subset of the table).
    admin
        .batch_execute(
            r#"CREATE TABLE "LiteLLM_VerificationToken" (
                token TEXT PRIMARY KEY, key_name TEXT, key_alias TEXT, spend DOUBLE PRECISION NOT NULL DEFAULT 0,
                expires TIMESTAMP(3), models TEXT[], user_id TEXT, team_id TEXT, max_budget DOUBLE PRECISION,
                budget_duration TEXT, tpm_limit BIGINT, rpm_limit BIGINT, max_parallel_requests INTEGER,
                metadata JSONB NOT NULL DEFAULT '{}', blocked BOOLEAN, created_at TIMESTAMP(3) DEFAULT now())"#,
        )
        .unwrap();
    admin
        .batch_execute(&format!(
            r#"GRANT SELECT ON "LiteLLM_VerificationToken" TO {}"#,
            db.name
        ))
        .unwrap();
    let alpha = "sk-litellm-alpha-0123456789";
    let beta = "sk-litellm-beta-0123456789";
    for (raw, alias, blocked) in [(alpha, "alpha", false), (beta, "beta", true)] {
        admin
            .execute(
                r#"INSERT INTO "LiteLLM_VerificationToken" (token, key_name, key_alias, spend, models, user_id, max_budget, metadata, blocked)
                   VALUES ($1, $2, $3, 1.25, ARRAY['cheap'], 'ada', 10, '{"team": "core"}', $4)"#,
                &[&sha256_hex(raw), &format!("sk-...{}", &raw[raw.len() - 4..]), &alias, &blocked],
            )
            .unwrap();
    }

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let bin = env!("CARGO_BIN_EXE_tollgate");
    let out = Command::new(bin)
        .args([
            "import",
            "litellm",
            "--db",
            &db.url,
            "--data-dir",
            data.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("imported 2 key(s)"));

    let (mock_port, port) = (free_port(), free_port());
    let _mock = Killed(
        Command::new(bin)
            .args(["mock", "--port", &mock_port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let master = "sk-import-test-0123456789abcdef";
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "model_list:\n  - model_name: cheap\n    litellm_params:\n      model: openai/cheap\n      api_base: http://127.0.0.1:{mock_port}/v1\n      api_key: k\n      input_cost_per_token: 0.000001\n      output_cost_per_token: 0.000002\n  - model_name: dear\n    litellm_params:\n      model: openai/dear\n      api_base: http://127.0.0.1:{mock_port}/v1\n      api_key: k\ngeneral_settings:\n  master_key: {master}\n"
        ),
    )
    .unwrap();
    let _gw = Killed(
        Command::new(bin)
            .args([
                "serve",
                "-c",
                config.to_str().unwrap(),
                "--port",
                &port.to_string(),
                "--data-dir",
                data.to_str().unwrap(),
                "--no-watch",
            ])
            .env_remove("DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    // The Postgres client above is blocking; the HTTP part runs on its own runtime.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(check_gateway(&base, master, alpha, beta));
}

async fn check_gateway(base: &str, master: &str, alpha: &str, beta: &str) {
    wait_ready(&format!("{base}/health/readiness")).await;
    let http = reqwest::Client::new();
    let ask = |key: &str, model: &str| {
        http.post(format!("{base}/v1/chat/completions"))
            .bearer_auth(key)
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };
    assert_eq!(
        ask(alpha, "cheap").await.unwrap().status().as_u16(),
        200,
        "the LiteLLM key works"
    );
    assert_eq!(
        ask(alpha, "dear").await.unwrap().status().as_u16(),
        401,
        "with its model list"
    );
    assert_eq!(
        ask(beta, "cheap").await.unwrap().status().as_u16(),
        401,
        "blocked stays blocked"
    );
    let info: Value = http
        .get(format!("{base}/key/info?key={alpha}"))
        .bearer_auth(master)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["info"]["key_alias"], "alpha");
    assert_eq!(info["info"]["max_budget"], 10.0);
    assert_eq!(info["info"]["metadata"]["team"], "core");
    assert!(
        info["info"]["spend"].as_f64().unwrap() > 1.25,
        "LiteLLM's spend carried over, and this request added"
    );

    // `tollgate keys` against the running gateway.
    let keys = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .arg("keys")
            .args(args)
            .args(["--url", base])
            .env("TOLLGATE_MASTER_KEY", master)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let created = keys(&["create", "--alias", "cli", "--models", "cheap", "--max-budget", "2"]);
    let raw = created.trim().to_string();
    assert!(raw.starts_with("sk-"), "{created}");
    assert_eq!(ask(&raw, "cheap").await.unwrap().status().as_u16(), 200);
    let listed = keys(&["list"]);
    assert!(
        listed.contains("cli") && listed.contains("alpha") && listed.contains("3 key(s)"),
        "{listed}"
    );
    assert!(keys(&["info", &raw]).contains("\"key_alias\": \"cli\""));
    assert!(keys(&["revoke", &raw]).contains("deleted"));
    assert_eq!(ask(&raw, "cheap").await.unwrap().status().as_u16(), 401);
}
