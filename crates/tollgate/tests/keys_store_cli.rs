//! `tollgate keys … --data-dir`: keys made and revoked on the store itself, with no gateway
//! running; a gateway on that store honours them (a revocation within its cache's second).

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

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

fn tollgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("TOLLGATE_MASTER_KEY")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn keys_made_on_the_store_work_on_a_gateway_and_revoking_them_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let out = tollgate(&[
        "keys",
        "create",
        "--data-dir",
        d,
        "--alias",
        "ci-bot",
        "--models",
        "cheap",
        "--max-budget",
        "2.5",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let raw = text(&out.stdout).trim().to_string();
    assert!(raw.starts_with("sk-") && raw.len() == 25, "{raw}");
    assert!(text(&out.stderr).contains("shown this once"));

    let out = tollgate(&["keys", "list", "--data-dir", d]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = text(&out.stdout);
    assert!(
        listed.contains("ci-bot") && listed.contains("2.5") && listed.contains("1 key(s)"),
        "{listed}"
    );
    let out = tollgate(&["keys", "info", &raw, "--data-dir", d]);
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (info["key_alias"].as_str(), info["max_budget"].as_f64()),
        (Some("ci-bot"), Some(2.5))
    );
    assert!(
        !text(&out.stdout).contains(&raw),
        "the raw key is never stored or shown again"
    );

    // Bad input names the flag and what to send.
    let out = tollgate(&["keys", "create", "--data-dir", d, "--duration", "forever"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--duration `forever`"),
        "{}",
        text(&out.stderr)
    );

    let (mock_port, port) = (free_port(), free_port());
    let bin = env!("CARGO_BIN_EXE_tollgate");
    let _mock = Killed(
        Command::new(bin)
            .args(["mock", "--port", &mock_port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "model_list:\n  - model_name: cheap\n    litellm_params:\n      model: openai/cheap\n      api_base: http://127.0.0.1:{mock_port}/v1\n      api_key: k\n  - model_name: dear\n    litellm_params:\n      model: openai/dear\n      api_base: http://127.0.0.1:{mock_port}/v1\n      api_key: k\ngeneral_settings:\n  master_key: sk-master-0123456789\n"
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
                d,
                "--no-watch",
            ])
            .env_remove("DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let chat = |model: &'static str| {
        let (base, raw) = (base.clone(), raw.clone());
        async move {
            reqwest::Client::new()
                .post(format!("{base}/v1/chat/completions"))
                .bearer_auth(raw)
                .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    };
    rt.block_on(async {
        let until = Instant::now() + Duration::from_secs(20);
        while reqwest::get(format!("{base}/health/readiness")).await.is_err() {
            assert!(Instant::now() < until, "the gateway did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(chat("cheap").await, 200);
        assert_eq!(chat("dear").await, 401, "the key may call `cheap` only");
    });

    let out = tollgate(&["keys", "revoke", &raw, "--data-dir", d]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    rt.block_on(async {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(chat("cheap").await, 401, "revoked on the store, refused by the gateway");
    });
    let out = tollgate(&["keys", "revoke", &raw, "--data-dir", d]);
    assert!(!out.status.success() && text(&out.stderr).contains("no such key"));
}
