//! `tollgate import litellm --db …`: a LiteLLM database copied into tollgate's store, read in
//! one read-only transaction. Keys keep their hashes, so clients keep their keys; users, teams,
//! team memberships, organizations, end users and budget tiers become entities
//! (`litellm_rows.rs`), and the spend LiteLLM recorded for them goes into the ledger, so their
//! budgets continue where LiteLLM left them. What already exists in tollgate is skipped and
//! named; a table this LiteLLM version does not have is skipped with a line saying so.

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use clap::{Args, Subcommand};
use postgres::fallible_iterator::FallibleIterator;
use serde_json::Value;
use tollgate_store::{AccessStore, Charge, EntityKind, KeyError, PostgresKeys, PostgresTarget, SqliteKeys};

use crate::litellm_rows::{self, Imported, Tiers};

#[derive(Args)]
pub struct ImportArgs {
    #[command(subcommand)]
    source: ImportSource,
}

#[derive(Subcommand)]
enum ImportSource {
    /// Copy a LiteLLM database into tollgate's store: virtual keys (hashes as they are) with
    /// their spend, budgets and limits, and the users, teams and their members, organizations,
    /// end users and budget tiers, with their spend.
    Litellm {
        /// LiteLLM's database, read-only.
        #[arg(long)]
        db: String,
        /// tollgate's store: the data dir of a single gateway…
        #[arg(long, default_value = "tollgate-data")]
        data_dir: std::path::PathBuf,
        /// … or the shared Postgres many gateways use (wins over --data-dir).
        #[arg(long)]
        database_url: Option<String>,
    },
}

pub fn import(args: ImportArgs) -> anyhow::Result<()> {
    let ImportSource::Litellm {
        db,
        data_dir,
        database_url,
    } = args.source;
    let source = PostgresTarget::parse(&db, 1)?;
    let mut client = source.connect()?;
    let store: Box<dyn AccessStore> = match &database_url {
        Some(url) => Box::new(PostgresKeys::open(&PostgresTarget::parse(url, 2)?)?),
        None => {
            std::fs::create_dir_all(&data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
            Box::new(SqliteKeys::open(&data_dir)?)
        }
    };
    let mut tx = client.build_transaction().read_only(true).start()?;
    let from = Source {
        location: source.location().to_string(),
    };
    keys(&mut tx, store.as_ref(), &from)?;
    entities(&mut tx, store.as_ref(), &from)
}

/// Where the rows come from, for the report lines.
struct Source {
    location: String,
}

impl Source {
    fn missing(&self, table: &str, what: &str) {
        println!("{table} is not in {}: no {what} imported", self.location);
    }
}

fn has_table(tx: &mut postgres::Transaction<'_>, table: &str) -> anyhow::Result<bool> {
    let quoted = format!("\"{table}\"");
    Ok(tx.query_one("SELECT to_regclass($1) IS NOT NULL", &[&quoted])?.get(0))
}

/// Every row of a LiteLLM table as JSON, or `None` when the database has no such table.
fn table(tx: &mut postgres::Transaction<'_>, table: &str, source: &Source) -> anyhow::Result<Option<Vec<Value>>> {
    if !has_table(tx, table)? {
        return Ok(None);
    }
    let rows = tx
        .query(&format!(r#"SELECT row_to_json(t)::text FROM "{table}" t"#), &[])
        .with_context(|| format!("cannot read {table} from {}", source.location))?;
    rows.iter()
        .map(|r| Ok(serde_json::from_str(r.try_get::<_, &str>(0)?)?))
        .collect::<anyhow::Result<Vec<Value>>>()
        .map(Some)
}

/// Keys, streamed (there may be many).
fn keys(tx: &mut postgres::Transaction<'_>, store: &dyn AccessStore, from: &Source) -> anyhow::Result<()> {
    const TABLE: &str = "LiteLLM_VerificationToken";
    if !has_table(tx, TABLE)? {
        from.missing(TABLE, "keys");
        return Ok(());
    }
    let mut rows = tx
        .query_raw(
            &format!(r#"SELECT row_to_json(t)::text FROM "{TABLE}" t"#),
            std::iter::empty::<&str>(),
        )
        .with_context(|| format!("cannot read {TABLE} from {}", from.location))?;
    let (mut imported, mut skipped) = (0u64, 0u64);
    while let Some(row) = rows.next()? {
        let text: String = row.try_get(0)?;
        let v: Value = serde_json::from_str(&text)?;
        let Some(key) = litellm_rows::key_of(&v) else {
            skipped += 1;
            continue;
        };
        match store.create(&key) {
            Ok(()) => imported += 1,
            Err(KeyError::Conflict(m)) => {
                eprintln!("skipped {}: {m}", key.key_alias.as_deref().unwrap_or(&key.key_name));
                skipped += 1;
            }
            Err(KeyError::Store(e)) => return Err(e.into()),
        }
    }
    println!("imported {imported} key(s) from {}; {skipped} skipped", from.location);
    Ok(())
}

/// Users, teams, memberships, organizations, end users and tiers; then their spend, in one
/// ledger transaction.
fn entities(tx: &mut postgres::Transaction<'_>, store: &dyn AccessStore, from: &Source) -> anyhow::Result<()> {
    let mut charges = Vec::new();

    let budgets = table(tx, "LiteLLM_BudgetTable", from)?;
    let tiers: Tiers = budgets
        .iter()
        .flatten()
        .filter_map(litellm_rows::budget_of)
        .map(|b| (b.row.id.clone(), b.row.doc))
        .collect();
    let converted = budgets.map(|rows| rows.iter().filter_map(litellm_rows::budget_of).collect());
    put(
        store,
        converted,
        "LiteLLM_BudgetTable",
        "budget tier(s)",
        from,
        &mut charges,
    )?;

    let converted = table(tx, "LiteLLM_OrganizationTable", from)?.map(|rows| {
        rows.iter()
            .filter_map(|v| litellm_rows::organization_of(v, &tiers))
            .collect()
    });
    put(
        store,
        converted,
        "LiteLLM_OrganizationTable",
        "organization(s)",
        from,
        &mut charges,
    )?;

    let teams = table(tx, "LiteLLM_TeamTable", from)?;
    // Each member's role, and who has no membership row yet.
    let mut roles: HashMap<(String, String), String> = HashMap::new();
    for team in teams.iter().flatten() {
        let Some(team_id) = team["team_id"].as_str() else {
            continue;
        };
        for m in litellm_rows::members_of(team) {
            if let Some(user) = m["user_id"].as_str() {
                let role = m["role"].as_str().unwrap_or("user").to_string();
                roles.insert((team_id.to_string(), user.to_string()), role);
            }
        }
    }
    let converted = teams.map(|rows| rows.iter().filter_map(litellm_rows::team_of).collect());
    put(store, converted, "LiteLLM_TeamTable", "team(s)", from, &mut charges)?;

    let converted =
        table(tx, "LiteLLM_UserTable", from)?.map(|rows| rows.iter().filter_map(litellm_rows::user_of).collect());
    put(store, converted, "LiteLLM_UserTable", "user(s)", from, &mut charges)?;

    let memberships = table(tx, "LiteLLM_TeamMembership", from)?;
    let mut converted: Vec<Imported> = memberships
        .iter()
        .flatten()
        .filter_map(|v| litellm_rows::membership_of(v, &roles, &tiers))
        .collect();
    let has_row: HashSet<String> = converted.iter().map(|m| m.row.id.clone()).collect();
    let mut bare: Vec<Imported> = roles
        .iter()
        .map(|((team, user), role)| litellm_rows::bare_membership(team, user, role))
        .filter(|m| !has_row.contains(&m.row.id))
        .collect();
    bare.sort_by(|a, b| a.row.id.cmp(&b.row.id));
    converted.extend(bare);
    if memberships.is_none() {
        from.missing("LiteLLM_TeamMembership", "members' budgets");
    }
    put(
        store,
        Some(converted),
        "LiteLLM_TeamMembership",
        "team membership(s)",
        from,
        &mut charges,
    )?;

    let converted = table(tx, "LiteLLM_EndUserTable", from)?.map(|rows| {
        rows.iter()
            .filter_map(|v| litellm_rows::customer_of(v, &tiers))
            .collect()
    });
    put(
        store,
        converted,
        "LiteLLM_EndUserTable",
        "end user(s)",
        from,
        &mut charges,
    )?;

    store.settle(&charges)?;
    Ok(())
}

/// Creates the entities of one table (skipping, and naming, those tollgate has already) and
/// gathers the spend of those created as ledger charges: cost = LiteLLM's spend, nothing held.
fn put(
    store: &dyn AccessStore,
    converted: Option<Vec<Imported>>,
    table: &str,
    what: &str,
    from: &Source,
    charges: &mut Vec<Charge>,
) -> anyhow::Result<()> {
    let Some(converted) = converted else {
        from.missing(table, what);
        return Ok(());
    };
    let (mut imported, mut skipped) = (0u64, 0u64);
    for item in converted {
        match store.create_entity(&item.row) {
            Ok(()) => imported += 1,
            Err(KeyError::Conflict(m)) => {
                eprintln!("skipped {m}");
                skipped += 1;
                continue;
            }
            Err(KeyError::Store(e)) => return Err(e.into()),
        }
        let kind: EntityKind = item.row.kind;
        let charge = |scope: String, id: String, cost: f64| Charge {
            scope,
            id,
            cost,
            release: 0.0,
            window: None,
        };
        if item.spend != 0.0 {
            charges.push(charge(kind.scope().to_string(), item.row.id.clone(), item.spend));
        }
        for (model, spend) in item.model_spend.into_iter().filter(|(_, s)| *s != 0.0) {
            charges.push(charge(
                format!("{}_model", kind.scope()),
                format!("{}/{model}", item.row.id),
                spend,
            ));
        }
    }
    println!("imported {imported} {what} from {}; {skipped} skipped", from.location);
    Ok(())
}
