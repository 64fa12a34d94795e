//! Who a request is charged to besides its key: the key's user, its team, the user's membership
//! of that team, and the end user the request names (the OpenAI `user` field). Each comes with
//! the terms it is held to — budget, budget period, rate limits — its own, or else those of the
//! budget tier its `budget_id` names (LiteLLM's `/budget/new`).
//!
//! Rows come through the key cache (`Keys::entity`, one second), so a request with a key that
//! has a user and a team costs no store round trip once they are cached.

use std::sync::Arc;

use tollgate_store::{EntityKind, EntityRow, KeyRow, StoreError, model_allowed};

use crate::keys::Keys;

/// The budget and limits an entity is held to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Terms {
    pub max_budget: Option<f64>,
    pub budget_duration: Option<String>,
    pub soft_budget: Option<f64>,
    pub rpm_limit: Option<u64>,
    pub tpm_limit: Option<u64>,
    pub max_parallel_requests: Option<u64>,
}

impl Terms {
    /// The entity's own terms, each missing one taken from its budget tier.
    fn of(row: &EntityRow, tier: Option<&EntityRow>) -> Terms {
        let f = |name: &str| row.f64(name).or_else(|| tier.and_then(|t| t.f64(name)));
        let n = |name: &str| row.u64(name).or_else(|| tier.and_then(|t| t.u64(name)));
        Terms {
            max_budget: f("max_budget"),
            budget_duration: row
                .str("budget_duration")
                .or_else(|| tier.and_then(|t| t.str("budget_duration")))
                .map(str::to_string),
            soft_budget: f("soft_budget"),
            rpm_limit: n("rpm_limit"),
            tpm_limit: n("tpm_limit"),
            max_parallel_requests: n("max_parallel_requests"),
        }
    }
}

/// One entity a request is charged to.
#[derive(Debug, Clone)]
pub struct Owner {
    pub kind: EntityKind,
    pub row: Arc<EntityRow>,
    pub terms: Terms,
}

impl Owner {
    /// The ledger scope its spend is kept under.
    pub fn scope(&self) -> &'static str {
        self.kind.scope()
    }

    pub fn id(&self) -> &str {
        &self.row.id
    }

    /// How messages name it: a team's alias, else the id.
    pub fn label(&self) -> String {
        let alias = match self.kind {
            EntityKind::Team => self.row.str("team_alias"),
            EntityKind::Customer => self.row.str("alias"),
            EntityKind::Organization => self.row.str("organization_alias"),
            _ => None,
        };
        alias.unwrap_or(&self.row.id).to_string()
    }

    /// The models it may use (empty: every model).
    pub fn allows(&self, model: &str) -> bool {
        let models = self.row.models();
        models.is_empty() || models.iter().any(|m| model_allowed(m, model))
    }
}

/// The entities behind a virtual key.
#[derive(Debug, Clone, Default)]
pub struct Owners {
    pub user: Option<Owner>,
    pub team: Option<Owner>,
    /// The user's membership of the key's team, when it has a budget or limits of its own.
    pub member: Option<Owner>,
}

/// An entity with its terms; `None` when there is no such entity.
pub async fn owner(keys: &Keys, kind: EntityKind, id: &str) -> Result<Option<Owner>, StoreError> {
    let Some(row) = keys.entity(kind, id).await? else {
        return Ok(None);
    };
    let tier = match row.str("budget_id") {
        Some(b) => keys.entity(EntityKind::Budget, b).await?,
        None => None,
    };
    let terms = Terms::of(&row, tier.as_deref());
    Ok(Some(Owner { kind, row, terms }))
}

/// The user, team and membership of a key. An id naming nothing (LiteLLM accepts any
/// `user_id` on a key) charges nobody.
pub async fn of_key(keys: &Keys, key: &KeyRow) -> Result<Owners, StoreError> {
    let user = match &key.user_id {
        Some(u) => owner(keys, EntityKind::User, u).await?,
        None => None,
    };
    let team = match &key.team_id {
        Some(t) => owner(keys, EntityKind::Team, t).await?,
        None => None,
    };
    let member = match (&key.team_id, &key.user_id) {
        (Some(t), Some(u)) if team.is_some() => owner(keys, EntityKind::TeamMember, &format!("{t}/{u}")).await?,
        _ => None,
    };
    Ok(Owners { user, team, member })
}
