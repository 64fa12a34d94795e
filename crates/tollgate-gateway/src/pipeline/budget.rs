//! Stage 4c, budget: a key with `max_budget` holds the request's estimated cost against it before
//! any provider is called, atomically in the key store (one conditional UPDATE: exact across
//! instances sharing Postgres, and under any concurrency), and the request's record gives the
//! hold back and adds the real cost. A burst of concurrent requests therefore cannot spend past
//! the budget: the ones that would are refused up front.
//!
//! The estimate is deliberately high: the prompt at one token per two bytes, and `max_tokens`
//! (else the deployment's `max_output_tokens`, else 4,096) of output, each at the group's
//! highest price.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use tollgate_core::{ErrorKind, GatewayError};
use tollgate_store::{KeyRow, Reservation};

use crate::app::App;
use crate::pipeline::authenticate::Caller;
use crate::pipeline::parse::Request;
use crate::state::ModelGroup;

/// Output tokens assumed when neither the request nor the deployment bounds them.
const DEFAULT_OUTPUT_ESTIMATE: u64 = 4096;

/// For a request whose cost cannot be estimated up front (a workflow run): refused when the
/// key's spend and holds already reach its budget, nothing held otherwise.
pub async fn check(app: &App, caller: &Caller) -> Result<(), GatewayError> {
    let Some(key) = caller.key.as_ref().filter(|k| k.max_budget.is_some()) else {
        return Ok(());
    };
    reserve(app, key, 0.0).await.map(|_| ())
}

/// Holds the estimate against the caller's key budget; returns the dollars held (0 without a
/// budget). 429 `budget_exceeded` when the budget would be passed.
pub async fn hold(app: &App, caller: &Caller, group: &ModelGroup, request: &Request) -> Result<f64, GatewayError> {
    let Some(key) = caller.key.as_ref().filter(|k| k.max_budget.is_some()) else {
        return Ok(0.0);
    };
    let amount = estimate(group, request);
    reserve(app, key, amount).await
}

/// Holds `amount` (0: only checks) against the key's budget in the key store.
async fn reserve(app: &App, key: &KeyRow, amount: f64) -> Result<f64, GatewayError> {
    let now = Utc::now();
    let window = key.budget_duration.as_deref().and_then(|d| window_start(d, now));
    let store = std::sync::Arc::clone(app.keys.store());
    let token = key.token.clone();
    let outcome = tokio::task::spawn_blocking(move || store.reserve(&token, amount, window))
        .await
        .map_err(|_| unavailable())?
        .map_err(|e| {
            tracing::warn!(error = %e, "cannot hold against a key budget");
            unavailable()
        })?;
    match outcome {
        Reservation::Held => Ok(amount),
        Reservation::Refused {
            spend,
            reserved,
            max_budget,
        } => {
            let live = app.live.load();
            let mut e = exceeded(
                key,
                spend + reserved,
                max_budget,
                window,
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
    let prompt_bytes: u64 = ["messages", "input", "prompt", "tools", "system"]
        .iter()
        .filter_map(|f| request.body.raw(f))
        .map(|r| r.len() as u64)
        .sum();
    let input_tokens = (prompt_bytes / 2).max(1);
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

/// The start of the budget period `now` is in: periods of a fixed length count from the Unix
/// epoch (UTC), months from the first of the month. `None` for a duration that does not parse.
pub fn window_start(duration: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let (n, unit) = crate::key_api::duration_parts(duration)?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        "w" => n * 7 * 86_400,
        "mo" => {
            use chrono::Datelike;
            let months = now.year() as i64 * 12 + i64::from(now.month0());
            let start = months - months.rem_euclid(n);
            let (y, m) = (start.div_euclid(12), start.rem_euclid(12) + 1);
            return chrono::NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, u32::try_from(m).ok()?, 1)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc());
        }
        _ => return None,
    };
    let epoch = now.timestamp();
    DateTime::from_timestamp(epoch - epoch.rem_euclid(seconds), 0)
}

/// When the period that started at `window` ends.
fn reset_at(duration: &str, window: DateTime<Utc>) -> Option<DateTime<Utc>> {
    crate::key_api::duration_end(duration, window)
}

fn exceeded(
    key: &KeyRow,
    spent: f64,
    max_budget: f64,
    window: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    hide_amounts: bool,
) -> GatewayError {
    let entity = key.key_alias.clone().unwrap_or_else(|| key.key_name.clone());
    let reset = window.and_then(|w| key.budget_duration.as_deref().and_then(|d| reset_at(d, w)));
    let when = reset.map_or_else(
        || "it does not reset (no budget_duration); raise max_budget with POST /key/update".to_string(),
        |r| format!("it resets at {}", r.to_rfc3339()),
    );
    let mut details = Map::new();
    details.insert("scope".into(), json!("key"));
    details.insert("entity_id".into(), json!(entity));
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
        format!("budget exceeded for key {entity}{amounts}; {when}"),
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

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn budget_periods_come_from_the_clock() {
        let now = at("2026-12-07T10:17:45Z");
        assert_eq!(window_start("30s", now), Some(at("2026-12-07T10:17:30Z")));
        assert_eq!(window_start("1h", now), Some(at("2026-12-07T10:00:00Z")));
        assert_eq!(window_start("1d", now), Some(at("2026-12-07T00:00:00Z")));
        assert_eq!(window_start("1mo", now), Some(at("2026-12-01T00:00:00Z")));
        assert_eq!(window_start("3mo", now), Some(at("2026-10-01T00:00:00Z")));
        assert_eq!(window_start("soon", now), None);
        assert_eq!(
            reset_at("30s", at("2026-12-07T10:17:30Z")),
            Some(at("2026-12-07T10:18:00Z"))
        );
    }
}
