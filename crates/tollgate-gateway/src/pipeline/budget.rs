//! Stage 4d, budget: the request's estimated cost held against every budget it is charged to —
//! its key's, the key's user's (personal keys), team's and team membership's, its end user's, the
//! key's budget for this model (`model_max_budget`) and the gateway's (`litellm_settings.max_budget`)
//! — before any provider is called, all at once in the store (one transaction of conditional
//! UPDATEs: exact across instances sharing Postgres, and under any concurrency). When the
//! request's record closes, each scope gets the real cost and its hold back ([`Charges::settle`]).
//! A burst of concurrent requests therefore cannot spend past any budget: the ones that would
//! are refused up front, naming the scope.
//!
//! The estimate is deliberately high: the prompt at one token per two bytes, and `max_tokens`
//! (else the deployment's `max_output_tokens`, else 4,096) of output, each at the group's
//! highest price.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use tollgate_core::{ErrorKind, GatewayError};
use tollgate_store::{Hold, HoldOutcome, KEY_SCOPE};

use crate::app::App;
use crate::periods::{Period, period};
use crate::pipeline::authenticate::Caller;
use crate::pipeline::charges::{Charges, Payer};
use crate::pipeline::end_user::EndUser;
use crate::pipeline::parse::Request;
use crate::state::{LiveState, ModelGroup};

/// Output tokens assumed when neither the request nor the deployment bounds them.
const DEFAULT_OUTPUT_ESTIMATE: u64 = 4096;

/// Every scope the request is charged to, with its budget.
fn payers(live: &LiveState, caller: &Caller, end_user: Option<&EndUser>, model: &str) -> Vec<Payer> {
    let mut out = Vec::new();
    let payer = |scope, id: &str, label: String, budget, per_model| Payer {
        scope,
        id: id.to_string(),
        label,
        budget,
        per_model,
        costed: true,
        held: 0.0,
        window: None,
    };
    if let Some(key) = &caller.key {
        let label = key.key_alias.clone().unwrap_or_else(|| key.key_name.clone());
        let budget = key.max_budget.map(|b| (b, key.budget_duration.clone()));
        out.push(payer(KEY_SCOPE, &key.token, label.clone(), budget, true));
        if let Some((limit, period)) = model_budget(key.model_max_budget.as_ref(), model) {
            out.push(Payer {
                costed: false,
                ..payer(
                    "key_model",
                    &format!("{}/{model}", key.token),
                    format!("{label} on model {model}"),
                    Some((limit, period)),
                    false,
                )
            });
        }
    }
    let owners = &caller.owners;
    let personal = caller.key.as_ref().is_some_and(|k| k.team_id.is_none());
    for (owner, budgeted, per_model) in [
        // A user's budget covers their personal keys (LiteLLM's rule); their spend counts always.
        (&owners.user, personal, true),
        (&owners.team, true, true),
        (&owners.member, true, false),
    ] {
        if let Some(o) = owner {
            let budget = budgeted
                .then(|| o.terms.max_budget.map(|b| (b, o.terms.budget_duration.clone())))
                .flatten();
            out.push(payer(o.scope(), o.id(), o.label(), budget, per_model));
        }
    }
    if let Some(eu) = end_user {
        let terms = eu.owner.as_ref().map(|o| &o.terms);
        let budget = terms
            .and_then(|t| t.max_budget.map(|b| (b, t.budget_duration.clone())))
            .or_else(|| live.config.max_end_user_budget.map(|b| (b, None)));
        let label = eu.owner.as_ref().map_or_else(|| eu.id.clone(), |o| o.label());
        out.push(payer("end_user", &eu.id, label, budget, true));
    }
    if let Some(p) = &live.config.proxy_budget {
        out.push(payer(
            "proxy",
            "global",
            "litellm_settings.max_budget".into(),
            Some((p.max_budget, p.budget_duration.clone())),
            false,
        ));
    }
    out
}

/// A key's budget for one model: LiteLLM's `{"budget_limit": 0.5, "time_period": "1d"}`, or a
/// plain number of dollars.
fn model_budget(budgets: Option<&Map<String, Value>>, model: &str) -> Option<(f64, Option<String>)> {
    let v = budgets?.get(model)?;
    if let Some(n) = v.as_f64() {
        return Some((n, None));
    }
    let limit = v.get("budget_limit").and_then(Value::as_f64)?;
    let period = v.get("time_period").and_then(Value::as_str).map(str::to_string);
    Some((limit, period))
}

/// For a request whose cost cannot be estimated up front (a workflow run): refused when a
/// budget's spend and holds already pass it, nothing held otherwise.
pub async fn check(
    app: &App,
    live: &LiveState,
    caller: &Caller,
    end_user: Option<&EndUser>,
    model: &str,
) -> Result<Charges, GatewayError> {
    hold_all(app, live, payers(live, caller, end_user, model), 0.0).await
}

/// Holds the estimate against every budget the request is charged to; the charges to settle
/// when it ends. 429 `budget_exceeded` (naming the scope) when one would be passed. A request
/// naming several groups (a comma list, any of which may answer) holds the dearest one's
/// estimate, charged as that group (its `model_max_budget` entry).
pub async fn hold(
    app: &App,
    live: &LiveState,
    caller: &Caller,
    end_user: Option<&EndUser>,
    groups: &[&ModelGroup],
    request: &Request,
) -> Result<Charges, GatewayError> {
    let (group, worst) = groups
        .iter()
        .map(|g| (*g, estimate(g, request)))
        .fold(None, |best: Option<(&ModelGroup, f64)>, (g, cost)| match best {
            Some((_, c)) if c >= cost => best,
            _ => Some((g, cost)),
        })
        .unzip();
    let payers = payers(live, caller, end_user, group.map_or("", |g| g.name.as_str()));
    let amount = if payers.iter().any(|p| p.budget.is_some()) {
        worst.unwrap_or(0.0)
    } else {
        0.0
    };
    hold_all(app, live, payers, amount).await
}

/// Holds `amount` (0: only checks) against each payer with a budget, all or none.
async fn hold_all(app: &App, live: &LiveState, mut payers: Vec<Payer>, amount: f64) -> Result<Charges, GatewayError> {
    let now = Utc::now();
    let tz = live.config.budget_timezone;
    let mut holds = Vec::new();
    let mut held_by = Vec::new();
    let mut periods = Vec::new();
    for (i, p) in payers.iter().enumerate() {
        if let Some((max_budget, duration)) = &p.budget {
            let current = duration.as_deref().and_then(|d| period(d, now, tz));
            holds.push(Hold {
                scope: p.scope.to_string(),
                id: p.id.clone(),
                amount,
                max_budget: *max_budget,
                window: current.map(|c| c.start),
            });
            held_by.push(i);
            periods.push(current);
        }
    }
    if holds.is_empty() {
        return Ok(Charges { payers });
    }
    let outcome = app.keys.hold(holds.clone()).await.map_err(|e| {
        tracing::warn!(error = %e, "cannot hold against a budget");
        unavailable()
    })?;
    match outcome {
        HoldOutcome::Held => {
            for (i, h) in held_by.into_iter().zip(&holds) {
                payers[i].held = amount;
                payers[i].window = h.window;
            }
            Ok(Charges { payers })
        }
        HoldOutcome::Refused { index, spend, reserved } => {
            let refused = &payers[held_by[index]];
            let hold = &holds[index];
            let mut e = exceeded(
                refused,
                spend + reserved,
                hold,
                periods[index],
                now,
                live.config.hide_budget_amounts,
            );
            e.status = live.config.budget_error_status;
            Err(e)
        }
    }
}

/// The request's cost if it used all it may: prompt bytes / 2 tokens and the output bound.
fn estimate(group: &ModelGroup, request: &Request) -> f64 {
    let input_tokens = (request.prompt_bytes() / 2).max(1);
    let asked: Option<u64> = request
        .body
        .get::<u64>("max_completion_tokens")
        .or_else(|| request.body.get::<u64>("max_tokens"));
    let mut worst: f64 = 0.0;
    for d in &group.deployments {
        let Some(p) = &d.price else {
            continue;
        };
        let output_tokens = asked.or(d.max_output_tokens).unwrap_or(DEFAULT_OUTPUT_ESTIMATE);
        let cost = input_tokens as f64 * p.input_cost_per_token.unwrap_or(0.0)
            + output_tokens as f64 * p.output_cost_per_token.unwrap_or(0.0);
        worst = worst.max(cost);
    }
    worst
}

fn exceeded(
    payer: &Payer,
    spent: f64,
    hold: &Hold,
    current: Option<Period>,
    now: DateTime<Utc>,
    hide_amounts: bool,
) -> GatewayError {
    let reset = current.map(|c| c.end);
    let (what, raise) = match payer.scope {
        KEY_SCOPE => ("key", "raise max_budget with POST /key/update"),
        "key_model" => ("key", "raise its model_max_budget with POST /key/update"),
        "user" => ("user", "raise max_budget with POST /user/update"),
        "team" => ("team", "raise max_budget with POST /team/update"),
        "team_member" => ("team member", "raise max_budget_in_team with POST /team/member_update"),
        "end_user" => ("end user", "raise max_budget with POST /customer/update"),
        _ => ("the gateway's budget", "raise litellm_settings.max_budget"),
    };
    let when = reset.map_or_else(
        || format!("it does not reset (no budget_duration); {raise}"),
        |r| format!("it resets at {}", r.to_rfc3339()),
    );
    let max_budget = hold.max_budget;
    let mut details = Map::new();
    details.insert("scope".into(), json!(payer.scope));
    details.insert("entity_id".into(), json!(payer.label));
    if !hide_amounts {
        details.insert("spend".into(), json!(spent));
        details.insert("max_budget".into(), json!(max_budget));
    }
    details.insert(
        "budget_reset_at".into(),
        reset.map_or(Value::Null, |r| json!(r.to_rfc3339())),
    );
    let amounts = if hide_amounts {
        String::new()
    } else {
        format!(": spend and requests in flight ${spent:.6} of max_budget ${max_budget:.6}")
    };
    let mut e = GatewayError::new(
        ErrorKind::BudgetExceeded,
        format!("budget exceeded for {what} {}{amounts}; {when}", payer.label),
    )
    .with_code("budget_exceeded")
    .with_details(details);
    if let Some(r) = reset {
        e = e.with_retry_after(u64::try_from((r - now).num_seconds().max(1)).unwrap_or(1));
    }
    e
}

fn unavailable() -> GatewayError {
    GatewayError::new(
        ErrorKind::Internal,
        "cannot check the key's budget right now (the key store is unreachable); retry shortly",
    )
    .with_status(503)
    .with_code("key_store_unavailable")
    .with_retry_after(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_budget_is_litellms_object_or_a_number() {
        let budgets = json!({
            "dear": {"budget_limit": 0.5, "time_period": "1d"},
            "cheap": 2,
            "odd": {"time_period": "1d"}
        });
        let m = budgets.as_object();
        assert_eq!(model_budget(m, "dear"), Some((0.5, Some("1d".into()))));
        assert_eq!(model_budget(m, "cheap"), Some((2.0, None)));
        assert_eq!(model_budget(m, "odd"), None, "no limit, no budget");
        assert_eq!(model_budget(m, "other"), None);
        assert_eq!(model_budget(None, "dear"), None);
    }
}
