//! `tollgate keys create|list|info|revoke` against a running gateway (its `/key/*` API, with the
//! master key) or, with `--data-dir`/`--database-url`, the key store itself (`keys_store.rs`).
//! `tollgate import litellm` is `import_litellm.rs`.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use comfy_table::Table;
use serde_json::{Map, Value, json};

#[derive(Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
    /// The gateway to manage.
    #[arg(long, env = "TOLLGATE_URL", default_value = "http://127.0.0.1:4000", global = true)]
    url: String,
    /// Its master key.
    #[arg(long, env = "TOLLGATE_MASTER_KEY", global = true, hide_env_values = true)]
    master_key: Option<String>,
    /// Work on the key store in this data dir instead of a running gateway (gateways using it
    /// see the change within a second).
    #[arg(long, global = true)]
    pub(crate) data_dir: Option<std::path::PathBuf>,
    /// Work on the key store in this shared Postgres instead of a running gateway.
    #[arg(long, global = true, hide_env_values = true)]
    pub(crate) database_url: Option<String>,
}

impl KeysArgs {
    /// Whether the command works on the store rather than a gateway's API.
    pub fn uses_store(&self) -> bool {
        self.data_dir.is_some() || self.database_url.is_some()
    }

    pub(crate) fn into_command(self) -> KeysCommand {
        self.command
    }
}

#[derive(Subcommand)]
pub(crate) enum KeysCommand {
    /// Create a key; prints it once.
    Create {
        #[arg(long)]
        alias: Option<String>,
        /// Model groups or workflows it may call, comma-separated (default: all).
        #[arg(long, value_delimiter = ',')]
        models: Vec<String>,
        #[arg(long)]
        max_budget: Option<f64>,
        /// How long the key is valid: 30s, 30m, 30h, 30d, 1w, 1mo.
        #[arg(long)]
        duration: Option<String>,
        /// Budget period: 30s … 1mo.
        #[arg(long)]
        budget_duration: Option<String>,
        #[arg(long)]
        user_id: Option<String>,
        #[arg(long)]
        team_id: Option<String>,
        #[arg(long)]
        rpm: Option<u64>,
        #[arg(long)]
        tpm: Option<u64>,
        #[arg(long)]
        parallel: Option<u64>,
    },
    /// List keys (alias, name, user, team, spend, budget).
    List {
        #[arg(long)]
        user_id: Option<String>,
        #[arg(long)]
        team_id: Option<String>,
    },
    /// One key's details and spend (KEY: the raw key or its hash).
    Info { key: String },
    /// Delete a key (kept in the deleted-keys table for audit).
    Revoke { key: String },
}

pub async fn run(args: KeysArgs) -> anyhow::Result<()> {
    let master = args
        .master_key
        .context("no master key: pass --master-key or set TOLLGATE_MASTER_KEY")?;
    let base = args.url.trim_end_matches('/').to_string();
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: String, body: Option<Value>| {
        let mut req = http.request(method, format!("{base}{path}")).bearer_auth(&master);
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move {
            let resp = req
                .send()
                .await
                .with_context(|| format!("cannot reach the gateway at {path}"))?;
            let status = resp.status();
            let v: Value = resp.json().await.context("the gateway's answer is not JSON")?;
            if !status.is_success() {
                let msg = v["error"]["message"].as_str().unwrap_or("no message").to_string();
                bail!("{status}: {msg}");
            }
            Ok(v)
        }
    };
    match args.command {
        KeysCommand::Create {
            alias,
            models,
            max_budget,
            duration,
            budget_duration,
            user_id,
            team_id,
            rpm,
            tpm,
            parallel,
        } => {
            let body = generate_body(
                alias,
                models,
                max_budget,
                duration,
                budget_duration,
                user_id,
                team_id,
                [rpm, tpm, parallel],
            );
            let v = call(reqwest::Method::POST, "/key/generate".into(), Some(Value::Object(body))).await?;
            print_created(&v);
        }
        KeysCommand::List { user_id, team_id } => {
            let mut q = String::from("/key/list?return_full_object=true&size=100");
            for (k, v) in [("user_id", user_id), ("team_id", team_id)] {
                if let Some(v) = v {
                    q.push_str(&format!("&{k}={v}"));
                }
            }
            let v = call(reqwest::Method::GET, q, None).await?;
            print_list(&v);
        }
        KeysCommand::Info { key } => {
            let v = call(reqwest::Method::GET, format!("/key/info?key={key}"), None).await?;
            println!("{}", serde_json::to_string_pretty(&v["info"])?);
        }
        KeysCommand::Revoke { key } => {
            let v = call(
                reqwest::Method::POST,
                "/key/delete".into(),
                Some(json!({"keys": [key]})),
            )
            .await?;
            println!("deleted: {}", v["deleted_keys"]);
        }
    }
    Ok(())
}

/// `/key/generate`'s body from the command's flags.
#[allow(clippy::too_many_arguments)]
pub(crate) fn generate_body(
    alias: Option<String>,
    models: Vec<String>,
    max_budget: Option<f64>,
    duration: Option<String>,
    budget_duration: Option<String>,
    user_id: Option<String>,
    team_id: Option<String>,
    [rpm, tpm, parallel]: [Option<u64>; 3],
) -> Map<String, Value> {
    let mut body = Map::new();
    let mut put = |k: &str, v: Value| {
        if !v.is_null() {
            body.insert(k.into(), v);
        }
    };
    put("key_alias", json!(alias));
    put("models", json!(models));
    put("max_budget", json!(max_budget));
    put("duration", json!(duration));
    put("budget_duration", json!(budget_duration));
    put("user_id", json!(user_id));
    put("team_id", json!(team_id));
    put("rpm_limit", json!(rpm));
    put("tpm_limit", json!(tpm));
    put("max_parallel_requests", json!(parallel));
    body
}

/// A created key: the raw key on stdout (for scripts), what it is on stderr.
pub(crate) fn print_created(v: &Value) {
    println!("{}", v["key"].as_str().unwrap_or_default());
    eprintln!(
        "created {} ({}); the key is shown this once, only its hash is kept",
        v["key_alias"].as_str().unwrap_or("key without alias"),
        v["key_name"].as_str().unwrap_or_default()
    );
}

/// `/key/list?return_full_object=true` as a table.
pub(crate) fn print_list(v: &Value) {
    let mut table = Table::new();
    table.set_header([
        "alias",
        "key",
        "user",
        "team",
        "spend $",
        "max budget $",
        "models",
        "blocked",
    ]);
    for k in v["keys"].as_array().into_iter().flatten() {
        let s = |f: &str| k[f].as_str().unwrap_or("").to_string();
        table.add_row([
            s("key_alias"),
            s("key_name"),
            s("user_id"),
            s("team_id"),
            format!("{:.6}", k["spend"].as_f64().unwrap_or(0.0)),
            k["max_budget"].as_f64().map(|b| format!("{b}")).unwrap_or_default(),
            k["models"]
                .as_array()
                .map(|m| m.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","))
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "all".into()),
            if k["blocked"].as_bool().unwrap_or(false) {
                "yes"
            } else {
                ""
            }
            .into(),
        ]);
    }
    println!("{table}");
    println!("{} key(s)", v["total_count"]);
}
