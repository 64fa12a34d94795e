//! How an entity is shown: its stored document (LiteLLM's field names) with what LiteLLM
//! computes beside it: `spend` (the ledger plus spend still gathering in memory, so it equals the
//! records), `model_spend`, `budget_reset_at`, the timestamps, and `litellm_budget_table` (the
//! tier `budget_id` names, else the entity's own budget fields) where LiteLLM nests one.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use tollgate_store::{EntityKind, EntityRow};

use crate::app::App;
use crate::keys::Gathered;
use crate::mgmt::{ApiError, blocking_settled};
use crate::periods::period;

/// The fields of LiteLLM's `LiteLLM_BudgetTable`.
const TIER_FIELDS: [&str; 8] = [
    "budget_id",
    "max_budget",
    "soft_budget",
    "max_parallel_requests",
    "tpm_limit",
    "rpm_limit",
    "model_max_budget",
    "budget_duration",
];

/// What LiteLLM shows for a field the entity has never set.
#[derive(Clone, Copy)]
enum Unset {
    List,
    Object,
    No,
}

fn defaults(kind: EntityKind) -> &'static [(&'static str, Unset)] {
    match kind {
        EntityKind::User => &[
            ("models", Unset::List),
            ("teams", Unset::List),
            ("metadata", Unset::Object),
        ],
        EntityKind::Team => &[
            ("models", Unset::List),
            ("members_with_roles", Unset::List),
            ("admins", Unset::List),
            ("members", Unset::List),
            ("metadata", Unset::Object),
            ("blocked", Unset::No),
        ],
        EntityKind::Organization => &[("models", Unset::List), ("metadata", Unset::Object)],
        EntityKind::Customer => &[("blocked", Unset::No)],
        EntityKind::Budget | EntityKind::TeamMember => &[],
    }
}

/// An entity as the API shows it.
pub(super) async fn shown(app: &App, row: &EntityRow) -> Result<Map<String, Value>, ApiError> {
    let mut views = shown_all(app, std::slice::from_ref(row)).await?;
    Ok(views.pop().unwrap_or_default())
}

/// Entities as the API shows them, their store reads in one trip off the async workers.
pub(super) async fn shown_all(app: &App, rows: &[EntityRow]) -> Result<Vec<Map<String, Value>>, ApiError> {
    let wanted: Vec<(EntityKind, String, Option<String>)> = rows
        .iter()
        .map(|r| (r.kind, r.id.clone(), r.str("budget_id").map(str::to_string)))
        .collect();
    let (stored, gathered) = blocking_settled(app, move |s| {
        let mut tiers: HashMap<String, Option<EntityRow>> = HashMap::new();
        let mut out = Vec::new();
        for (kind, id, tier) in &wanted {
            let scope = kind.scope();
            let spend = s
                .spend_of(scope, id)?
                .map_or((0.0, None), |r| (r.spend, r.budget_window));
            let per_model = if matches!(kind, EntityKind::User | EntityKind::Team | EntityKind::Organization) {
                s.spend_under(&format!("{scope}_model"), &format!("{id}/"))?
            } else {
                Vec::new()
            };
            if let Some(t) = tier
                && !tiers.contains_key(t)
            {
                tiers.insert(t.clone(), s.get_entity(EntityKind::Budget, t)?);
            }
            out.push((spend, per_model));
        }
        Ok((out, tiers))
    })
    .await?;
    let (spends, tiers) = stored;
    let now = Utc::now();
    let tz = app.live.load().config.budget_timezone;
    Ok(rows
        .iter()
        .zip(spends)
        .map(|(row, (spend, per_model))| {
            let tier = row.str("budget_id").and_then(|t| tiers.get(t)).and_then(Option::as_ref);
            view(row, spend, per_model, &gathered, tier, now, tz)
        })
        .collect())
}

fn view(
    row: &EntityRow,
    (stored_spend, spend_window): (f64, Option<DateTime<Utc>>),
    per_model: Vec<(String, f64)>,
    gathered: &Gathered,
    tier: Option<&EntityRow>,
    now: DateTime<Utc>,
    tz: chrono_tz::Tz,
) -> Map<String, Value> {
    // The period in force: the entity's own, else its tier's. Spend stored for an earlier period
    // no longer counts (the ledger resets it at the next hold).
    let current = row
        .str("budget_duration")
        .or_else(|| tier.and_then(|t| t.str("budget_duration")))
        .and_then(|d| period(d, now, tz));
    let stale = current.is_some_and(|c| spend_window.is_some_and(|w| w < c.start));
    let stored_spend = if stale { 0.0 } else { stored_spend };
    let mut v = row.doc.clone();
    for (field, unset) in defaults(row.kind) {
        if v.get(*field).is_none_or(Value::is_null) {
            let shown = match unset {
                Unset::List => json!([]),
                Unset::Object => json!({}),
                Unset::No => json!(false),
            };
            v.insert(field.to_string(), shown);
        }
    }
    let scope = row.kind.scope();
    if row.kind != EntityKind::Budget {
        v.insert("spend".into(), json!(stored_spend + gathered.of(scope, &row.id)));
    }
    if matches!(row.kind, EntityKind::User | EntityKind::Team | EntityKind::Organization) {
        let per_model_scope = format!("{scope}_model");
        let prefix = format!("{}/", row.id);
        // Stored per model, plus what is gathered (for a model first spent on since the last
        // flush too).
        let mut totals: HashMap<String, f64> = per_model.into_iter().collect();
        for (id, cost) in gathered.under(&per_model_scope, &prefix) {
            *totals.entry(id.to_string()).or_default() += cost;
        }
        let mut totals: Vec<(String, f64)> = totals.into_iter().collect();
        totals.sort_by(|a, b| a.0.cmp(&b.0));
        let model_spend: Map<String, Value> = totals
            .into_iter()
            .filter_map(|(id, total)| {
                // LiteLLM lists the models a scope has spent on.
                let model = id.strip_prefix(&prefix).filter(|_| total != 0.0)?;
                Some((model.to_string(), json!(total)))
            })
            .collect();
        v.insert("model_spend".into(), Value::Object(model_spend));
    }
    v.insert(
        "budget_reset_at".into(),
        current.map_or(Value::Null, |c| json!(c.end.to_rfc3339())),
    );
    if matches!(
        row.kind,
        EntityKind::Customer | EntityKind::Organization | EntityKind::TeamMember
    ) {
        v.insert("litellm_budget_table".into(), budget_table(row, tier));
    }
    v.insert("created_at".into(), json!(row.created_at.to_rfc3339()));
    v.insert("updated_at".into(), json!(row.updated_at.to_rfc3339()));
    v
}

/// LiteLLM's nested `litellm_budget_table`: the tier `budget_id` names, else the entity's own
/// budget fields, else null.
fn budget_table(row: &EntityRow, tier: Option<&EntityRow>) -> Value {
    let source = tier.unwrap_or(row);
    let table: Map<String, Value> = TIER_FIELDS
        .iter()
        .map(|f| (f.to_string(), source.doc.get(*f).cloned().unwrap_or(Value::Null)))
        .collect();
    if tier.is_none() && table.values().all(Value::is_null) {
        return Value::Null;
    }
    Value::Object(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_table_is_the_tier_or_the_entitys_own_fields() {
        let doc = |v: Value| v.as_object().unwrap().clone();
        let own = EntityRow::new(EntityKind::Customer, "c", doc(json!({"max_budget": 2.0})));
        assert_eq!(budget_table(&own, None)["max_budget"], 2.0);
        let none = EntityRow::new(EntityKind::Customer, "c", doc(json!({"alias": "x"})));
        assert_eq!(budget_table(&none, None), Value::Null);
        let tier = EntityRow::new(
            EntityKind::Budget,
            "free",
            doc(json!({"budget_id": "free", "max_budget": 1.0, "budget_duration": "1d"})),
        );
        let table = budget_table(&own, Some(&tier));
        assert_eq!(
            (table["budget_id"].as_str(), table["max_budget"].as_f64()),
            (Some("free"), Some(1.0))
        );
    }
}
