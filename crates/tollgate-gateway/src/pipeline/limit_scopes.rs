//! Which rate-limit scopes a request is counted in, and their limits: the one place that knows
//! where each scope's limits are configured. Stage 4c ([`super::limits`]) counts them.

use serde_json::{Map, Value};

use crate::owners::Owner;
use crate::pipeline::authenticate::Caller;
use crate::pipeline::end_user::EndUser;
use crate::rate_limits::LimitScope;

/// The scopes of a request by `caller` to `model` (the model group or workflow it resolved to),
/// for `end_user` (the body's `user`). Only scopes with at least one limit are listed: the key's,
/// its per-model ones, the key's user's (all their keys together), team's and team membership's,
/// and the end user's; none for the master key but the end user's.
pub fn scopes(caller: &Caller, model: &str, end_user: Option<&EndUser>) -> Vec<LimitScope> {
    let mut out = Vec::new();
    if let Some(key) = &caller.key {
        // Named by alias (or `sk-...abcd`) in messages, never by the key or its hash.
        let label = caller.key_alias.clone().unwrap_or_else(|| key.key_name.clone());
        let own = LimitScope {
            scope: "key",
            entity: key.token.clone(),
            label: label.clone(),
            rpm: key.rpm_limit,
            tpm: key.tpm_limit,
            parallel: key.max_parallel_requests,
        };
        if own.limited() {
            out.push(own);
        }
        // `model_rpm_limit` / `model_tpm_limit`: `{"model-group-name": n}` on the key.
        let per_model = LimitScope {
            scope: "key_model",
            entity: format!("{}/{model}", key.token),
            label: format!("{label}/{model}"),
            rpm: model_limit(key.model_rpm_limit.as_ref(), model),
            tpm: model_limit(key.model_tpm_limit.as_ref(), model),
            parallel: None,
        };
        if per_model.limited() {
            out.push(per_model);
        }
    }
    let owners = &caller.owners;
    let end_user_owner = end_user.and_then(|e| e.owner.as_ref());
    for owner in [
        owners.user.as_ref(),
        owners.team.as_ref(),
        owners.member.as_ref(),
        end_user_owner,
    ]
    .into_iter()
    .flatten()
    {
        let s = entity_scope(owner);
        if s.limited() {
            out.push(s);
        }
    }
    out
}

/// An entity's limits: its own `rpm_limit`, `tpm_limit`, `max_parallel_requests`, or its budget
/// tier's.
fn entity_scope(owner: &Owner) -> LimitScope {
    LimitScope {
        scope: owner.scope(),
        entity: owner.id().to_string(),
        label: owner.label(),
        rpm: owner.terms.rpm_limit,
        tpm: owner.terms.tpm_limit,
        parallel: owner.terms.max_parallel_requests,
    }
}

/// The limit a `{"model": n}` map gives `model`: a whole number (or one written as a string).
fn model_limit(map: Option<&Map<String, Value>>, model: &str) -> Option<u64> {
    let v = map?.get(model)?;
    v.as_u64()
        .or_else(|| v.as_f64().filter(|f| f.is_finite() && *f >= 0.0).map(|f| f as u64))
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;
    use tollgate_store::KeyRow;

    use super::*;

    fn caller(row: KeyRow) -> Caller {
        Caller {
            key_alias: Some(row.key_alias.clone().unwrap_or_else(|| row.key_name.clone())),
            key: Some(Arc::new(row)),
            ..Caller::default()
        }
    }

    #[test]
    fn the_key_and_its_model_limits_are_separate_scopes() {
        let row = KeyRow {
            token: "ab12".into(),
            key_name: "sk-...wxyz".into(),
            key_alias: Some("ci".into()),
            rpm_limit: Some(100),
            max_parallel_requests: Some(3),
            model_rpm_limit: json!({"gpt": 10, "other": 5}).as_object().cloned(),
            model_tpm_limit: json!({"gpt": "2000"}).as_object().cloned(),
            ..KeyRow::default()
        };
        let s = scopes(&caller(row.clone()), "gpt", None);
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!(
            (s[0].scope, s[0].entity.as_str(), s[0].label.as_str()),
            ("key", "ab12", "ci")
        );
        assert_eq!((s[0].rpm, s[0].tpm, s[0].parallel), (Some(100), None, Some(3)));
        assert_eq!(
            (s[1].scope, s[1].entity.as_str(), s[1].label.as_str()),
            ("key_model", "ab12/gpt", "ci/gpt")
        );
        assert_eq!((s[1].rpm, s[1].tpm, s[1].parallel), (Some(10), Some(2000), None));
        // A model the maps do not name has only the key's own scope.
        assert_eq!(scopes(&caller(row), "cheap", None).len(), 1);
    }

    #[test]
    fn no_limits_no_scopes() {
        assert!(scopes(&Caller::default(), "gpt", None).is_empty());
        let plain = KeyRow {
            token: "t".into(),
            key_name: "sk-...abcd".into(),
            ..KeyRow::default()
        };
        assert!(scopes(&caller(plain), "gpt", None).is_empty());
    }
}
