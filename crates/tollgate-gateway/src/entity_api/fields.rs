//! A request's fields → an entity's document. Each kind lists the fields it takes and their
//! types; one function validates what a request gives and applies it, so `/…/new` and
//! `/…/update` share it and an update changes only what is given (`null` clears a field).
//!
//! Budget and limit fields are stored flat, under LiteLLM's names, on every entity that has
//! them: the enforcement code reads them there (and from the tier `budget_id` names).

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::mgmt::{ApiError, opt_bool, opt_count, opt_duration, opt_map, opt_money, opt_string, opt_strings};

/// What a field holds.
#[derive(Debug, Clone, Copy)]
pub(super) enum Field {
    Text,
    /// Dollars, 0 or more.
    Money,
    /// A whole number, 0 or more.
    Count,
    /// A budget period: `30s` … `1mo`.
    Duration,
    /// A list of names (`models`: empty means all).
    Names,
    /// A JSON object (`metadata`, `model_max_budget`).
    Object,
    Flag,
    /// One of these strings.
    OneOf(&'static [&'static str]),
}

pub(super) type Fields = &'static [(&'static str, Field)];

/// The budget and limit fields every budgeted entity (and a budget tier) stores flat.
pub(super) const BUDGET: Fields = &[
    ("max_budget", Field::Money),
    ("soft_budget", Field::Money),
    ("budget_duration", Field::Duration),
    ("budget_id", Field::Text),
    ("rpm_limit", Field::Count),
    ("tpm_limit", Field::Count),
    ("max_parallel_requests", Field::Count),
    ("model_max_budget", Field::Object),
];

/// Model access and per-model limits, for users and teams (as on keys).
pub(super) const ACCESS: Fields = &[
    ("models", Field::Names),
    ("model_rpm_limit", Field::Object),
    ("model_tpm_limit", Field::Object),
    ("metadata", Field::Object),
    ("blocked", Field::Flag),
];

/// Applies the fields of `lists` that `m` gives to `doc`; an explicit `null` removes one.
/// Nothing changes unless every given field is valid.
pub(super) fn apply(doc: &mut Map<String, Value>, m: &Map<String, Value>, lists: &[Fields]) -> Result<(), ApiError> {
    let mut changes: Vec<(&'static str, Option<Value>)> = Vec::new();
    for (name, field) in lists.iter().flat_map(|l| l.iter()) {
        if let Some(v) = read(m, name, *field)? {
            changes.push((name, v));
        }
    }
    for (name, v) in changes {
        match v {
            Some(v) => doc.insert(name.to_string(), v),
            None => doc.remove(name),
        };
    }
    Ok(())
}

/// One field: `None` absent, `Some(None)` null, `Some(Some(v))` a valid value.
fn read(m: &Map<String, Value>, k: &'static str, field: Field) -> Result<Option<Option<Value>>, ApiError> {
    fn lift<T: Into<Value>>(v: Option<Option<T>>) -> Option<Option<Value>> {
        v.map(|v| v.map(Into::into))
    }
    Ok(match field {
        Field::Text => lift(opt_string(m, k)?),
        Field::Money => lift(opt_money(m, k)?),
        Field::Count => lift(opt_count(m, k)?),
        Field::Duration => lift(opt_duration(m, k)?),
        Field::Names => {
            let help = if k == "models" {
                "model names ([] = all)"
            } else {
                "names"
            };
            lift(opt_strings(m, k, help)?)
        }
        Field::Object => lift(opt_map(m, k)?),
        Field::Flag => lift(opt_bool(m, k)?),
        Field::OneOf(allowed) => {
            let v = opt_string(m, k)?;
            if let Some(Some(s)) = &v
                && !allowed.contains(&s.as_str())
            {
                return Err(ApiError::bad(
                    format!("`{k}` must be one of {allowed:?}, got {s:?}"),
                    Some(k),
                ));
            }
            lift(v)
        }
    })
}

/// The id a request names in `k` (required, non-empty), or what to send.
pub(super) fn required_id(m: &Map<String, Value>, k: &'static str) -> Result<String, ApiError> {
    opt_string(m, k)?
        .flatten()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad(format!("name it: {{\"{k}\": \"…\"}}"), Some(k)))
}

/// An optional id in `k`; `None` when absent, null or empty.
pub(super) fn optional_id(m: &Map<String, Value>, k: &'static str) -> Result<Option<String>, ApiError> {
    Ok(opt_string(m, k)?.flatten().filter(|s| !s.is_empty()))
}

/// A required, non-empty list of ids (`user_ids`, `team_ids`, …).
pub(super) fn required_ids(m: &Map<String, Value>, k: &'static str) -> Result<Vec<String>, ApiError> {
    opt_strings(m, k, "ids")?
        .flatten()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::bad(format!("name what to act on: {{\"{k}\": [\"…\"]}}"), Some(k)))
}

/// A query parameter that must be present (`?team_id=…`).
pub(super) fn query_id(q: &HashMap<String, String>, k: &'static str) -> Result<String, ApiError> {
    q.get(k)
        .filter(|s| !s.is_empty())
        .cloned()
        .ok_or_else(|| ApiError::bad(format!("name it: ?{k}=…"), Some(k)))
}

/// Paging from the query: 1-based `page` and a page size (`size_key`, 1..=100).
pub(super) fn paging(
    q: &HashMap<String, String>,
    size_key: &'static str,
    default_size: u32,
) -> Result<(u32, u32), ApiError> {
    let number = |k: &'static str, default: u32| -> Result<u32, ApiError> {
        match q.get(k) {
            None => Ok(default),
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| ApiError::bad(format!("`{k}` must be a whole number from 1, got {v:?}"), Some(k))),
        }
    };
    Ok((number("page", 1)?, number(size_key, default_size)?.min(100)))
}

/// A fresh id for an entity created without one (LiteLLM's uuid4).
pub(super) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ROLE: Fields = &[("role", Field::OneOf(&["admin", "user"]))];

    #[test]
    fn only_given_fields_change_and_null_clears() {
        let mut doc = json!({"max_budget": 5.0, "models": ["a"], "tpm_limit": 9})
            .as_object()
            .unwrap()
            .clone();
        let m = json!({"max_budget": null, "models": ["b"], "rpm_limit": 3, "ignored": 1});
        apply(&mut doc, m.as_object().unwrap(), &[BUDGET, ACCESS]).unwrap();
        assert_eq!(
            Value::Object(doc),
            json!({"models": ["b"], "tpm_limit": 9, "rpm_limit": 3})
        );
    }

    #[test]
    fn a_bad_field_changes_nothing_and_is_named() {
        let mut doc = Map::new();
        for (body, field) in [
            (json!({"max_budget": 1, "soft_budget": -1}), "soft_budget"),
            (json!({"budget_duration": "soon"}), "budget_duration"),
            (json!({"models": "a"}), "models"),
            (json!({"rpm_limit": 1.5}), "rpm_limit"),
            (json!({"metadata": []}), "metadata"),
            (json!({"blocked": "yes"}), "blocked"),
        ] {
            let e = apply(&mut doc, body.as_object().unwrap(), &[BUDGET, ACCESS]).unwrap_err();
            let e = format!("{e:?}");
            assert!(e.contains("400") && e.contains(field), "{field}: {e}");
            assert!(doc.is_empty(), "{field}: nothing applied");
        }
        let e = apply(&mut doc, json!({"role": "owner"}).as_object().unwrap(), &[ROLE]);
        assert!(e.is_err());
    }

    #[test]
    fn paging_is_checked() {
        let q: HashMap<String, String> = [("page".to_string(), "0".to_string())].into();
        assert!(paging(&q, "size", 10).is_err());
        let q: HashMap<String, String> = [("size".to_string(), "500".to_string())].into();
        assert_eq!(paging(&q, "size", 10).ok(), Some((1, 100)));
    }
}
