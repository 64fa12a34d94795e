//! What one request can plausibly be. A log row outside these bounds is a corrupt row, not a
//! request: a single `prompt_tokens: 1e308` or `response_cost: -1e300` would otherwise outweigh
//! every real figure in the report (one such row made a total of $57 trillion).
//!
//! The bounds are generous on purpose: they reject values no provider bills, not unusual ones.

use tollgate_core::Record;

/// Tokens in any one bucket of one request. The largest context windows are ~10⁷ tokens.
pub const MAX_TOKENS: u64 = 1_000_000_000;

/// US dollars for one request, in any cost field (computed, reported by LiteLLM, or saved).
pub const MAX_COST_USD: f64 = 10_000.0;

/// Why a row is not a record.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RowError {
    /// Not readable as a row of its kind (bad JSON, a missing key, a comment line).
    #[error("{0}")]
    Unreadable(String),
    /// Readable, but holding a value no request has: negative, not finite, or beyond the bounds
    /// above.
    #[error("{0}")]
    Implausible(String),
}

impl From<String> for RowError {
    fn from(s: String) -> Self {
        RowError::Unreadable(s)
    }
}

impl From<&str> for RowError {
    fn from(s: &str) -> Self {
        RowError::Unreadable(s.to_string())
    }
}

/// A logged token count (any number, as read) as a count within bounds. `NaN` is outside every
/// range, so it is rejected too.
pub fn tokens(field: &str, value: Option<f64>) -> Result<Option<u64>, RowError> {
    let Some(v) = value else { return Ok(None) };
    if !(0.0..=MAX_TOKENS as f64).contains(&v) {
        return Err(RowError::Implausible(format!(
            "implausible {field} {}: a request has 0 to {MAX_TOKENS} tokens",
            shown(v)
        )));
    }
    // Some exports write counts as floats (`"12.0"`); the fraction carries no meaning.
    Ok(Some(v as u64))
}

/// A logged cost in US dollars, checked against the bounds.
pub fn cost(field: &str, value: Option<f64>) -> Result<Option<f64>, RowError> {
    let Some(v) = value else { return Ok(None) };
    if !(0.0..=MAX_COST_USD).contains(&v) {
        return Err(RowError::Implausible(format!(
            "implausible {field} {}: a request costs $0 to ${MAX_COST_USD}",
            shown(v)
        )));
    }
    Ok(Some(v))
}

/// A number as written in a message: `1e308`, not 309 digits.
fn shown(v: f64) -> String {
    if v.abs() < 1e15 {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

/// Every token and cost field of a finished record, whatever produced it (a LiteLLM row, a
/// tollgate record edited by hand, a price that turns a huge count into a huge cost).
pub fn check_record(r: &Record) -> Result<(), RowError> {
    for (field, n) in [
        ("prompt_tokens", r.prompt_tokens),
        ("completion_tokens", r.completion_tokens),
        ("reasoning_tokens", r.reasoning_tokens),
        ("cached_tokens", r.cached_tokens),
        ("cache_creation_tokens", r.cache_creation_tokens),
    ] {
        if n > MAX_TOKENS {
            return Err(RowError::Implausible(format!(
                "implausible {field} {n}: a request has 0 to {MAX_TOKENS} tokens"
            )));
        }
    }
    for (field, c) in [
        ("cost_usd", r.cost_usd),
        ("cost_input_usd", r.cost_input_usd),
        ("cost_cache_read_usd", r.cost_cache_read_usd),
        ("cost_cache_write_usd", r.cost_cache_write_usd),
        ("cost_output_usd", r.cost_output_usd),
        ("cost_reasoning_usd", r.cost_reasoning_usd),
        ("saved_cost_usd", r.saved_cost_usd),
        ("reported_cost_usd", r.reported_cost_usd),
    ] {
        cost(field, c)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert_eq!(tokens("t", Some(12.0)), Ok(Some(12)));
        assert_eq!(tokens("t", None), Ok(None));
        assert_eq!(tokens("t", Some(1e9)), Ok(Some(1_000_000_000)));
        for bad in [-1.0, 1e9 + 1.0, 1e308, f64::NAN, f64::INFINITY] {
            assert!(matches!(tokens("t", Some(bad)), Err(RowError::Implausible(_))), "{bad}");
        }
        assert_eq!(cost("c", Some(0.0)), Ok(Some(0.0)));
        for bad in [-1e-9, -1e300, 10_000.01, f64::NAN] {
            assert!(matches!(cost("c", Some(bad)), Err(RowError::Implausible(_))), "{bad}");
        }
        let mut r = Record {
            prompt_tokens: MAX_TOKENS + 1,
            ..Record::default()
        };
        assert!(check_record(&r).is_err());
        r.prompt_tokens = 5;
        r.reported_cost_usd = Some(-1.0);
        let e = check_record(&r).unwrap_err().to_string();
        assert!(e.contains("reported_cost_usd"), "{e}");
        let e = tokens("prompt_tokens", Some(1e308)).unwrap_err().to_string();
        assert_eq!(
            e,
            "implausible prompt_tokens 1e308: a request has 0 to 1000000000 tokens"
        );
        let e = cost("spend", Some(-1e300)).unwrap_err().to_string();
        assert!(e.starts_with("implausible spend -1e300:"), "{e}");
    }
}
