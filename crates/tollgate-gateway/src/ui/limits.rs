//! Spend against budget, the budget's next reset and the rate limits of a key, user or team, as
//! the pages show them: read from what the management API answers for it (`spend` already
//! counts what is still gathering in memory), so the keys, users and teams pages agree with
//! the API and with each other.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tollgate_report::Lang;

/// The cells a row's `limits` template part (`limits.html`) reads.
pub fn cells(lang: Lang, shown: &Value) -> Value {
    let spend = shown["spend"].as_f64().unwrap_or(0.0);
    let budget = shown["max_budget"].as_f64();
    let reset = shown["budget_reset_at"]
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc).format("%Y-%m-%d %H:%M UTC").to_string());
    json!({
        "spend": lang.usd(spend),
        "spend_value": spend,
        "budget": budget.map(|b| lang.usd(b)),
        "budget_value": budget,
        "budget_pct": budget.map(|b| share(spend, b)),
        "duration": shown["budget_duration"],
        "reset": reset,
        "tpm": shown["tpm_limit"],
        "rpm": shown["rpm_limit"],
        "parallel": shown["max_parallel_requests"],
    })
}

/// Spend as a share of the budget, 0–100, for the bar; a budget of 0 allows nothing: full.
fn share(spend: f64, budget: f64) -> f64 {
    if budget <= 0.0 {
        return 100.0;
    }
    (spend / budget * 100.0).clamp(0.0, 100.0).round()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_and_the_reset() {
        let c = cells(
            Lang::En,
            &json!({"spend": 2.5, "max_budget": 10.0, "budget_reset_at": "2026-01-31T00:00:00+00:00", "tpm_limit": 1000}),
        );
        assert_eq!(c["budget_pct"], 25.0);
        assert_eq!(c["reset"], "2026-01-31 00:00 UTC");
        assert_eq!((c["tpm"].as_u64(), c["rpm"].is_null()), (Some(1000), true));
        let none = cells(Lang::En, &json!({"spend": 3.0}));
        assert!(none["budget"].is_null() && none["budget_pct"].is_null() && none["reset"].is_null());
        assert_eq!(share(50.0, 10.0), 100.0);
        assert_eq!(share(0.0, 0.0), 100.0);
    }
}
