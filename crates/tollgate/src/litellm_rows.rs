//! LiteLLM's database rows (as `row_to_json` gives them) as tollgate's: pure conversions, so
//! `import_litellm.rs` only reads, writes and reports.
//!
//! Keys keep their hashes. Entities keep LiteLLM's field names, with every budget field flat
//! on the entity: where LiteLLM keeps an organization's, an end user's or a team member's budget
//! in the `LiteLLM_BudgetTable` row `budget_id` names, its fields are copied onto the entity
//! (and `budget_id` kept), so admission finds them where it looks.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value, json};
use tollgate_store::{EntityKind, EntityRow, KeyRow};

/// A LiteLLM timestamp: RFC 3339, or Postgres' `timestamp(3)` without a zone (UTC).
fn time(v: &Value, k: &str) -> Option<DateTime<Utc>> {
    let s = v[k].as_str()?;
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc())
        })
}

/// A LiteLLM key row as tollgate's: the hash stays the hash (LiteLLM's SHA-256 hex of the key).
pub fn key_of(v: &Value) -> Option<KeyRow> {
    let token = v["token"].as_str()?.to_string();
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let count = |k: &str| v[k].as_u64();
    let map = |k: &str| v[k].as_object().cloned().filter(|m| !m.is_empty());
    Some(KeyRow {
        key_name: v["key_name"]
            .as_str()
            .map_or_else(|| format!("sk-...{}", &token[60..]), str::to_string),
        token,
        key_alias: v["key_alias"].as_str().map(str::to_string),
        user_id: v["user_id"].as_str().map(str::to_string),
        team_id: v["team_id"].as_str().map(str::to_string),
        models: v["models"]
            .as_array()
            .map(|m| m.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default(),
        max_budget: v["max_budget"].as_f64(),
        soft_budget: v["soft_budget"].as_f64(),
        budget_duration: v["budget_duration"].as_str().map(str::to_string),
        budget_id: v["budget_id"].as_str().map(str::to_string),
        max_parallel_requests: count("max_parallel_requests"),
        tpm_limit: count("tpm_limit"),
        rpm_limit: count("rpm_limit"),
        model_max_budget: map("model_max_budget"),
        metadata: v["metadata"].as_object().cloned().unwrap_or_default(),
        blocked: v["blocked"].as_bool().unwrap_or(false),
        expires: time(v, "expires"),
        spend: v["spend"].as_f64().unwrap_or(0.0),
        created_at: time(v, "created_at"),
        updated_at: time(v, "updated_at"),
        created_by: v["created_by"].as_str().map(str::to_string),
        ..KeyRow::default()
    })
}

/// An entity to create, with the spend LiteLLM had recorded for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    pub row: EntityRow,
    pub spend: f64,
    /// `model_spend`: (model, dollars).
    pub model_spend: Vec<(String, f64)>,
}

/// The budget fields of a `LiteLLM_BudgetTable` row (and of the entities that point at one).
const TIER_FIELDS: [&str; 7] = [
    "max_budget",
    "soft_budget",
    "budget_duration",
    "rpm_limit",
    "tpm_limit",
    "max_parallel_requests",
    "model_max_budget",
];

/// Budget tiers by id, for copying their fields onto the entities that name them.
pub type Tiers = HashMap<String, Map<String, Value>>;

/// Copies the fields of `v` that are set (not null, not an empty object) into `doc`.
fn copy(doc: &mut Map<String, Value>, v: &Value, fields: &[&str]) {
    for f in fields {
        match &v[*f] {
            Value::Null => {}
            Value::Object(o) if o.is_empty() => {}
            x => {
                doc.insert(f.to_string(), x.clone());
            }
        }
    }
}

/// The tier's budget fields, onto a document that does not set them itself.
fn flatten_tier(doc: &mut Map<String, Value>, tiers: &Tiers) {
    let Some(tier) = doc
        .get("budget_id")
        .and_then(Value::as_str)
        .and_then(|id| tiers.get(id))
    else {
        return;
    };
    for (k, v) in tier {
        if k != "budget_id" && !doc.contains_key(k) {
            doc.insert(k.clone(), v.clone());
        }
    }
}

fn imported(kind: EntityKind, id: &str, doc: Map<String, Value>, v: &Value) -> Imported {
    let mut row = EntityRow::new(kind, id, doc);
    if let Some(t) = time(v, "created_at") {
        row.created_at = t;
    }
    if let Some(t) = time(v, "updated_at") {
        row.updated_at = t;
    }
    let model_spend = v["model_spend"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(model, s)| s.as_f64().map(|s| (model.clone(), s)))
                .collect()
        })
        .unwrap_or_default();
    Imported {
        row,
        spend: v["spend"].as_f64().unwrap_or(0.0),
        model_spend,
    }
}

fn id_of<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v[k].as_str().filter(|s| !s.is_empty())
}

/// A `LiteLLM_BudgetTable` row.
pub fn budget_of(v: &Value) -> Option<Imported> {
    let id = id_of(v, "budget_id")?;
    let mut doc = Map::new();
    doc.insert("budget_id".into(), json!(id));
    copy(&mut doc, v, &TIER_FIELDS);
    Some(imported(EntityKind::Budget, id, doc, v))
}

/// A `LiteLLM_OrganizationTable` row (its budget is the tier it names).
pub fn organization_of(v: &Value, tiers: &Tiers) -> Option<Imported> {
    let id = id_of(v, "organization_id")?;
    let mut doc = Map::new();
    doc.insert("organization_id".into(), json!(id));
    copy(
        &mut doc,
        v,
        &["organization_alias", "models", "metadata", "budget_id", "blocked"],
    );
    flatten_tier(&mut doc, tiers);
    Some(imported(EntityKind::Organization, id, doc, v))
}

/// A `LiteLLM_TeamTable` row; its organization is its parent.
pub fn team_of(v: &Value) -> Option<Imported> {
    let id = id_of(v, "team_id")?;
    let mut doc = Map::new();
    doc.insert("team_id".into(), json!(id));
    copy(
        &mut doc,
        v,
        &[
            "team_alias",
            "organization_id",
            "metadata",
            "models",
            "blocked",
            "max_budget",
            "soft_budget",
            "budget_duration",
            "tpm_limit",
            "rpm_limit",
            "max_parallel_requests",
            "model_max_budget",
        ],
    );
    doc.insert("members_with_roles".into(), json!(members_of(v)));
    let mut out = imported(EntityKind::Team, id, doc, v);
    out.row.parent = id_of(v, "organization_id").map(str::to_string);
    Some(out)
}

/// A team row's `members_with_roles` (LiteLLM stores an empty one as `{}`).
pub fn members_of(team: &Value) -> Vec<Value> {
    team["members_with_roles"]
        .as_array()
        .map(|a| a.iter().filter(|m| m["user_id"].is_string()).cloned().collect())
        .unwrap_or_default()
}

/// A `LiteLLM_UserTable` row.
pub fn user_of(v: &Value) -> Option<Imported> {
    let id = id_of(v, "user_id")?;
    let mut doc = Map::new();
    doc.insert("user_id".into(), json!(id));
    copy(
        &mut doc,
        v,
        &[
            "user_alias",
            "user_email",
            "user_role",
            "teams",
            "models",
            "metadata",
            "sso_user_id",
            "max_budget",
            "budget_duration",
            "tpm_limit",
            "rpm_limit",
            "max_parallel_requests",
            "model_max_budget",
        ],
    );
    Some(imported(EntityKind::User, id, doc, v))
}

/// A `LiteLLM_TeamMembership` row: `<team_id>/<user_id>` under its team, with the member's role
/// from the team's `members_with_roles` and its budget from the tier it names.
pub fn membership_of(v: &Value, roles: &HashMap<(String, String), String>, tiers: &Tiers) -> Option<Imported> {
    let (team, user) = (id_of(v, "team_id")?, id_of(v, "user_id")?);
    let mut doc = Map::new();
    doc.insert("team_id".into(), json!(team));
    doc.insert("user_id".into(), json!(user));
    let role = roles.get(&(team.to_string(), user.to_string()));
    doc.insert("role".into(), json!(role.map_or("user", String::as_str)));
    copy(&mut doc, v, &["budget_id"]);
    flatten_tier(&mut doc, tiers);
    let mut out = imported(EntityKind::TeamMember, &format!("{team}/{user}"), doc, v);
    out.row.parent = Some(team.to_string());
    Some(out)
}

/// A membership row for a member LiteLLM lists in `members_with_roles` without one (LiteLLM
/// makes a row only for a member with a budget; tollgate keeps one per member).
pub fn bare_membership(team: &str, user: &str, role: &str) -> Imported {
    let mut doc = Map::new();
    doc.insert("team_id".into(), json!(team));
    doc.insert("user_id".into(), json!(user));
    doc.insert("role".into(), json!(role));
    let mut row = EntityRow::new(EntityKind::TeamMember, format!("{team}/{user}"), doc);
    row.parent = Some(team.to_string());
    Imported {
        row,
        spend: 0.0,
        model_spend: Vec::new(),
    }
}

/// A `LiteLLM_EndUserTable` row (a customer).
pub fn customer_of(v: &Value, tiers: &Tiers) -> Option<Imported> {
    let id = id_of(v, "user_id")?;
    let mut doc = Map::new();
    doc.insert("user_id".into(), json!(id));
    doc.insert("blocked".into(), json!(v["blocked"].as_bool().unwrap_or(false)));
    copy(
        &mut doc,
        v,
        &["alias", "allowed_model_region", "default_model", "budget_id"],
    );
    flatten_tier(&mut doc, tiers);
    Some(imported(EntityKind::Customer, id, doc, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tiers_budget_is_copied_flat_onto_what_names_it() {
        let tier = budget_of(&json!({"budget_id": "free", "max_budget": 1.5, "budget_duration": "1d", "rpm_limit": null, "model_max_budget": {}})).unwrap();
        assert_eq!(
            Value::Object(tier.row.doc.clone()),
            json!({"budget_id": "free", "max_budget": 1.5, "budget_duration": "1d"})
        );
        let tiers: Tiers = [("free".to_string(), tier.row.doc)].into();
        let c = customer_of(
            &json!({"user_id": "c1", "spend": 0.5, "budget_id": "free", "blocked": true}),
            &tiers,
        )
        .unwrap();
        assert_eq!(c.row.f64("max_budget"), Some(1.5));
        assert_eq!(
            (c.row.str("budget_id"), c.row.flag("blocked"), c.spend),
            (Some("free"), true, 0.5)
        );
        let o = organization_of(
            &json!({"organization_id": "o", "organization_alias": "O", "budget_id": "free", "models": ["a"]}),
            &tiers,
        )
        .unwrap();
        assert_eq!(
            (o.row.f64("max_budget"), o.row.str("budget_duration")),
            (Some(1.5), Some("1d"))
        );
        assert_eq!(o.row.models(), ["a"]);
    }

    #[test]
    fn teams_keep_members_and_organization_and_per_model_spend() {
        let t = team_of(&json!({
            "team_id": "core", "organization_id": "acme", "spend": 2.0, "model_spend": {"cheap": 2.0},
            "members_with_roles": [{"user_id": "ada", "role": "admin", "user_email": null}],
            "created_at": "2025-01-02T03:04:05.678"
        }))
        .unwrap();
        assert_eq!(t.row.parent.as_deref(), Some("acme"));
        assert_eq!(t.row.doc["members_with_roles"][0]["role"], "admin");
        assert_eq!(t.model_spend, vec![("cheap".to_string(), 2.0)]);
        assert_eq!(t.row.created_at.to_rfc3339(), "2025-01-02T03:04:05.678+00:00");
        let empty = team_of(&json!({"team_id": "e", "members_with_roles": {}})).unwrap();
        assert_eq!(empty.row.doc["members_with_roles"], json!([]));
        let roles = [(("core".to_string(), "ada".to_string()), "admin".to_string())].into();
        let m = membership_of(
            &json!({"team_id": "core", "user_id": "ada", "spend": 0.25}),
            &roles,
            &Tiers::new(),
        )
        .unwrap();
        assert_eq!(
            (m.row.id.as_str(), m.row.str("role"), m.spend),
            ("core/ada", Some("admin"), 0.25)
        );
        assert!(user_of(&json!({"user_id": ""})).is_none());
    }
}
