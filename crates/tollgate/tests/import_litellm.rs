//! `tollgate import litellm --db …` then `tollgate serve`: a key issued by LiteLLM keeps working,
//! with its models, spend and budget; a blocked one stays blocked. LiteLLM's users, teams and
//! their members, organizations, end users and budget tiers arrive with their spend; a table the
//! LiteLLM database lacks is skipped, saying so.

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
    let import = || {
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
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    // A database with only keys: the other tables are skipped, each with a line.
    let first = import();
    assert!(first.contains("imported 2 key(s)"), "{first}");
    for table in [
        "LiteLLM_UserTable",
        "LiteLLM_TeamTable",
        "LiteLLM_EndUserTable",
        "LiteLLM_BudgetTable",
    ] {
        assert!(first.contains(&format!("{table} is not in")), "{table}: {first}");
    }

    // LiteLLM's entity tables (the columns the import reads), then a second import: the keys
    // are there already, the entities arrive with their spend.
    litellm_entities(&mut admin, &db.name);
    let second = import();
    for line in [
        "imported 0 key(s)",
        "imported 3 budget tier(s)",
        "imported 1 organization(s)",
        "imported 1 team(s)",
        "imported 2 user(s)",
        "imported 2 team membership(s)",
        "imported 1 end user(s)",
    ] {
        assert!(second.contains(line), "{line}: {second}");
    }

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

/// LiteLLM's entity tables with a few rows: a team in an organization, two members (one with a
/// budget in the team), an end user on a tier, and their spend.
fn litellm_entities(admin: &mut postgres::Client, role: &str) {
    admin
        .batch_execute(
            r#"CREATE TABLE "LiteLLM_BudgetTable" (
                budget_id TEXT PRIMARY KEY, max_budget DOUBLE PRECISION, soft_budget DOUBLE PRECISION,
                max_parallel_requests INTEGER, tpm_limit BIGINT, rpm_limit BIGINT, model_max_budget JSONB,
                budget_duration TEXT, created_by TEXT NOT NULL DEFAULT 'admin', updated_by TEXT NOT NULL DEFAULT 'admin');
            CREATE TABLE "LiteLLM_OrganizationTable" (
                organization_id TEXT PRIMARY KEY, organization_alias TEXT NOT NULL, budget_id TEXT NOT NULL,
                metadata JSONB NOT NULL DEFAULT '{}', models TEXT[], spend DOUBLE PRECISION NOT NULL DEFAULT 0,
                model_spend JSONB NOT NULL DEFAULT '{}');
            CREATE TABLE "LiteLLM_TeamTable" (
                team_id TEXT PRIMARY KEY, team_alias TEXT, organization_id TEXT, members_with_roles JSONB NOT NULL DEFAULT '{}',
                metadata JSONB NOT NULL DEFAULT '{}', max_budget DOUBLE PRECISION, spend DOUBLE PRECISION NOT NULL DEFAULT 0,
                models TEXT[], tpm_limit BIGINT, rpm_limit BIGINT, budget_duration TEXT, blocked BOOLEAN NOT NULL DEFAULT false,
                model_spend JSONB NOT NULL DEFAULT '{}', created_at TIMESTAMP(3) DEFAULT now());
            CREATE TABLE "LiteLLM_UserTable" (
                user_id TEXT PRIMARY KEY, user_alias TEXT, teams TEXT[] DEFAULT '{}', user_role TEXT, max_budget DOUBLE PRECISION,
                spend DOUBLE PRECISION NOT NULL DEFAULT 0, user_email TEXT, models TEXT[], metadata JSONB NOT NULL DEFAULT '{}',
                budget_duration TEXT, model_spend JSONB NOT NULL DEFAULT '{}');
            CREATE TABLE "LiteLLM_TeamMembership" (
                user_id TEXT, team_id TEXT, spend DOUBLE PRECISION NOT NULL DEFAULT 0, budget_id TEXT, PRIMARY KEY (user_id, team_id));
            CREATE TABLE "LiteLLM_EndUserTable" (
                user_id TEXT PRIMARY KEY, alias TEXT, spend DOUBLE PRECISION NOT NULL DEFAULT 0, allowed_model_region TEXT,
                default_model TEXT, budget_id TEXT, blocked BOOLEAN NOT NULL DEFAULT false);
            INSERT INTO "LiteLLM_BudgetTable" (budget_id, max_budget, budget_duration, rpm_limit) VALUES
                ('org-budget', 100, '30d', NULL), ('member-budget', 3, NULL, NULL), ('tier-free', 0.5, '1d', 5);
            INSERT INTO "LiteLLM_OrganizationTable" (organization_id, organization_alias, budget_id, models, spend) VALUES
                ('acme', 'Acme', 'org-budget', ARRAY['cheap'], 4.5);
            INSERT INTO "LiteLLM_TeamTable" (team_id, team_alias, organization_id, members_with_roles, max_budget, spend, models, model_spend) VALUES
                ('core', 'Core', 'acme', '[{"user_id": "ada", "role": "admin", "user_email": null}, {"user_id": "bob", "role": "user", "user_email": null}]',
                 50, 2.5, ARRAY['cheap'], '{"cheap": 2.5}');
            INSERT INTO "LiteLLM_UserTable" (user_id, user_email, teams, user_role, max_budget, spend, models, model_spend) VALUES
                ('ada', 'ada@x.test', ARRAY['core'], 'internal_user', 20, 1.25, ARRAY[]::TEXT[], '{"cheap": 1.25}'),
                ('bob', NULL, ARRAY['core'], 'internal_user', NULL, 0, ARRAY[]::TEXT[], '{}');
            INSERT INTO "LiteLLM_TeamMembership" (user_id, team_id, spend, budget_id) VALUES ('ada', 'core', 1.0, 'member-budget');
            INSERT INTO "LiteLLM_EndUserTable" (user_id, alias, spend, budget_id) VALUES ('shop-1', 'Shop', 0.75, 'tier-free');"#,
        )
        .unwrap();
    admin
        .batch_execute(&format!("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"))
        .unwrap();
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

    // The entities, with LiteLLM's spend; budgets LiteLLM keeps in a tier are on the entity.
    let get = |path: String| {
        let http = http.clone();
        async move {
            let r = http
                .get(format!("{base}{path}"))
                .bearer_auth(master)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200, "{path}");
            r.json::<Value>().await.unwrap()
        }
    };
    let ada = get("/user/info?user_id=ada".into()).await;
    assert!(ada["user_info"]["spend"].as_f64().unwrap() >= 1.25, "{ada}");
    assert_eq!(ada["user_info"]["max_budget"], 20.0);
    // The imported 1.25, plus what the requests above (ada's key, on `cheap`) cost since.
    let cheap = ada["user_info"]["model_spend"]["cheap"].as_f64().unwrap();
    assert!((1.25..1.3).contains(&cheap), "{ada}");
    assert_eq!(ada["teams"][0]["team_id"], "core");
    assert_eq!(
        ada["keys"].as_array().unwrap().len(),
        2,
        "the imported keys of ada: {ada}"
    );
    let core = get("/team/info?team_id=core".into()).await;
    assert_eq!(
        (
            core["team_info"]["spend"].as_f64(),
            core["team_info"]["organization_id"].as_str()
        ),
        (Some(2.5), Some("acme"))
    );
    assert_eq!(core["team_info"]["members_with_roles"][0]["role"], "admin");
    let memberships = core["team_memberships"].as_array().unwrap();
    assert_eq!(memberships.len(), 2, "ada's row, and one made for bob: {core}");
    let ada_in_core = memberships.iter().find(|m| m["user_id"] == "ada").unwrap();
    assert_eq!(
        (ada_in_core["spend"].as_f64(), ada_in_core["max_budget"].as_f64()),
        (Some(1.0), Some(3.0))
    );
    assert_eq!(ada_in_core["role"], "admin");
    let acme = get("/organization/info?organization_id=acme".into()).await;
    assert_eq!(
        (acme["spend"].as_f64(), acme["max_budget"].as_f64()),
        (Some(4.5), Some(100.0))
    );
    assert_eq!(acme["litellm_budget_table"]["budget_id"], "org-budget");
    assert_eq!(acme["teams"][0]["team_id"], "core");
    let shop = get("/customer/info?end_user_id=shop-1".into()).await;
    assert_eq!(
        (shop["spend"].as_f64(), shop["max_budget"].as_f64()),
        (Some(0.75), Some(0.5))
    );
    assert_eq!(shop["litellm_budget_table"]["rpm_limit"], 5);
    assert_eq!(get("/budget/list".into()).await.as_array().unwrap().len(), 3);

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
