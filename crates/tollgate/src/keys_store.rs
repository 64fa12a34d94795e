//! `tollgate keys … --data-dir DIR | --database-url URL`: the same commands against the key
//! store itself, for when no gateway is running (setting up a new instance, a CI job, a script
//! on the database host). Gateways using that store see a change within a second (their key
//! cache's lifetime). Output is the same as through the API.

use anyhow::{Context, bail};
use chrono::Utc;
use serde_json::{Value, json};
use tollgate_gateway::keys::{display_name, hash_key, is_token, new_raw_key};
use tollgate_gateway::periods::duration_end;
use tollgate_store::{AccessStore, KeyError, KeyFilter, KeyRow, PostgresKeys, PostgresTarget, SqliteKeys};

use crate::keys_cli::{KeysArgs, KeysCommand, generate_body, print_created, print_list};

/// Blocking (SQLite, or the synchronous Postgres client): run it off the async runtime.
pub fn run(args: KeysArgs) -> anyhow::Result<()> {
    let store = open(args.data_dir.clone(), args.database_url.clone())?;
    match args.into_command() {
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
            let key = key_of(&body)?;
            let raw = new_raw_key().map_err(|e| anyhow::anyhow!("no randomness for a new key: {e}"))?;
            let key = KeyRow {
                token: hash_key(&raw),
                key_name: display_name(&raw),
                ..key
            };
            match store.create(&key) {
                Ok(()) => {}
                Err(KeyError::Conflict(m)) => bail!("{m}"),
                Err(KeyError::Store(e)) => return Err(e.into()),
            }
            let mut v = serde_json::to_value(&key)?;
            v["key"] = json!(raw);
            print_created(&v);
        }
        KeysCommand::List { user_id, team_id } => {
            let filter = KeyFilter {
                user_id,
                team_id,
                ..KeyFilter::default()
            };
            let (keys, total) = store.list(&filter, 1, 100)?;
            print_list(&json!({"keys": keys, "total_count": total}));
        }
        KeysCommand::Info { key } => {
            let found = store
                .get(&token_of(&key))?
                .context("no such key: give the raw key (sk-…) or its 64-digit hash")?;
            println!("{}", serde_json::to_string_pretty(&found)?);
        }
        KeysCommand::Revoke { key } => {
            let deleted = store.delete(&[token_of(&key)])?;
            if deleted.is_empty() {
                bail!("no such key: give the raw key (sk-…) or its 64-digit hash");
            }
            println!("deleted: {}", json!([key]));
        }
    }
    Ok(())
}

fn open(data_dir: Option<std::path::PathBuf>, database_url: Option<String>) -> anyhow::Result<Box<dyn AccessStore>> {
    Ok(match (database_url, data_dir) {
        (Some(url), _) => Box::new(PostgresKeys::open(&PostgresTarget::parse(&url, 2)?)?),
        (None, Some(dir)) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            Box::new(SqliteKeys::open(&dir)?)
        }
        (None, None) => bail!("no store: pass --data-dir or --database-url"),
    })
}

/// The raw key hashed, or a hash as it is (an identifier here, never a credential).
fn token_of(key: &str) -> String {
    if is_token(key) { key.to_string() } else { hash_key(key) }
}

/// The new key's row from the flags (the raw key and its hash are set by the caller).
fn key_of(body: &serde_json::Map<String, Value>) -> anyhow::Result<KeyRow> {
    let now = Utc::now();
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    let count = |k: &str| body.get(k).and_then(Value::as_u64);
    let expires = match text("duration") {
        None => None,
        Some(d) => Some(
            duration_end(&d, now).with_context(|| format!("--duration `{d}`: use 30s, 30m, 30h, 30d, 1w or 1mo"))?,
        ),
    };
    if let Some(d) = text("budget_duration")
        && duration_end(&d, now).is_none()
    {
        bail!("--budget-duration `{d}`: use 30s, 30m, 30h, 30d, 1w or 1mo");
    }
    let max_budget = body.get("max_budget").and_then(Value::as_f64);
    if max_budget.is_some_and(|b| !b.is_finite() || b < 0.0) {
        bail!("--max-budget must be 0 or more dollars");
    }
    Ok(KeyRow {
        key_alias: text("key_alias"),
        user_id: text("user_id"),
        team_id: text("team_id"),
        models: body
            .get("models")
            .and_then(Value::as_array)
            .map(|m| m.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default(),
        max_budget,
        budget_duration: text("budget_duration"),
        rpm_limit: count("rpm_limit"),
        tpm_limit: count("tpm_limit"),
        max_parallel_requests: count("max_parallel_requests"),
        expires,
        created_at: Some(now),
        updated_at: Some(now),
        created_by: Some("tollgate keys (store)".into()),
        ..KeyRow::default()
    })
}
