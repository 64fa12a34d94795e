//! After the answer, soft budgets: a key whose spend has reached its `soft_budget` keeps
//! working (that is what makes it soft), but the crossing is made visible where operators look —
//! one warning line naming the key, and `tollgate_soft_budget_crossed_total` for alert rules —
//! once per key and budget period on each instance, not on every request after it.

use chrono::Utc;

use crate::app::App;
use crate::periods::period;
use crate::pipeline::authenticate::Caller;

pub fn report(app: &App, caller: &Caller) {
    let Some(key) = &caller.key else {
        return;
    };
    let Some(soft) = key.soft_budget else {
        return;
    };
    let spend = key.spend + app.keys.pending_spend(&key.token);
    if spend < soft {
        return;
    }
    let period = key
        .budget_duration
        .as_deref()
        .and_then(|d| period(d, Utc::now(), app.live.load().config.budget_timezone))
        .map_or_else(|| "all time".to_string(), |p| p.start.to_rfc3339());
    if app.keys.first_soft_report(&key.token, &period) {
        app.metrics.count_soft_budget_crossed();
        tracing::warn!(
            key = key.key_alias.as_deref().unwrap_or(&key.key_name),
            spend,
            soft_budget = soft,
            max_budget = key.max_budget,
            "a virtual key reached its soft budget; it keeps working until max_budget"
        );
    }
}
