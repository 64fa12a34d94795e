//! Failure injection: which requests fail, and how.
//!
//! Failures are scheduled, not random, so a test that sets a rate of 0.5 sees exactly every other
//! request fail and a retry test is reproducible.

use std::fmt;

/// How an injected failure shows itself to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// Answer with this HTTP status and an OpenAI error body.
    Status(u16),
    /// Accept the request and never answer (until a long sleep ends), like a hung upstream.
    Timeout,
    /// Answer 200 with a body that is not the provider's format (truncated JSON; for streams,
    /// one valid event, then events that are not JSON, and no end).
    Garbage,
    /// Send part of the answer, then abort the connection (a reset mid-body or mid-stream).
    Reset,
    /// Send part of the answer, then go silent with the connection open (a stalled upstream).
    Stall,
}

impl fmt::Display for FailMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailMode::Status(status) => write!(f, "{status}"),
            FailMode::Timeout => f.write_str("timeout"),
            FailMode::Garbage => f.write_str("garbage"),
            FailMode::Reset => f.write_str("reset"),
            FailMode::Stall => f.write_str("stall"),
        }
    }
}

/// `MODEL=RATE[:STATUS|:timeout|:garbage|:reset|:stall]`: fail this share of the model's requests.
#[derive(Debug, Clone, PartialEq)]
pub struct FailRule {
    /// A model name as requested, its name after a provider prefix, or `*` for every model.
    pub model: String,
    /// Share of requests to fail, 0.0 to 1.0.
    pub rate: f64,
    pub mode: FailMode,
}

const RULE_HELP: &str =
    "expected MODEL=RATE[:STATUS|:timeout|:garbage|:reset|:stall] with RATE from 0 to 1, e.g. gpt-4o-mini=0.5:429";

/// Parses `MODEL=RATE`, `MODEL=RATE:STATUS` or `MODEL=RATE:timeout`. The status defaults to 500.
pub fn parse_fail_rule(s: &str) -> Result<FailRule, String> {
    // The last `=` separates the model, so model names with `:` (ollama tags) still work.
    let (model, spec) = s.rsplit_once('=').ok_or_else(|| format!("`{s}`: {RULE_HELP}"))?;
    let model = model.trim();
    if model.is_empty() {
        return Err(format!("`{s}`: the model name is empty; {RULE_HELP}"));
    }
    let (rate, mode) = match spec.split_once(':') {
        Some((rate, mode)) => (rate, Some(mode.trim())),
        None => (spec, None),
    };
    let rate: f64 = rate
        .trim()
        .parse()
        .map_err(|_| format!("`{s}`: `{rate}` is not a number; {RULE_HELP}"))?;
    if !(0.0..=1.0).contains(&rate) {
        return Err(format!("`{s}`: rate {rate} is outside 0..1; {RULE_HELP}"));
    }
    let mode = match mode {
        None => FailMode::Status(500),
        Some(m) if let Some(mode) = named_mode(m) => mode,
        Some(m) => match m.parse::<u16>() {
            Ok(status) if (400..=599).contains(&status) => FailMode::Status(status),
            _ => {
                return Err(format!(
                    "`{s}`: `{m}` is neither an HTTP error status (400-599) nor timeout, garbage, reset or stall"
                ));
            }
        },
    };
    Ok(FailRule {
        model: model.to_string(),
        rate,
        mode,
    })
}

fn named_mode(m: &str) -> Option<FailMode> {
    [
        ("timeout", FailMode::Timeout),
        ("garbage", FailMode::Garbage),
        ("reset", FailMode::Reset),
        ("stall", FailMode::Stall),
    ]
    .into_iter()
    .find(|(name, _)| m.eq_ignore_ascii_case(name))
    .map(|(_, mode)| mode)
}

/// Parses the `x-mock-fail` header's value: a status (`500`, `429`) or a named mode.
pub(crate) fn parse_fail_header(value: &str) -> Option<FailMode> {
    let value = value.trim();
    if let Some(mode) = named_mode(value) {
        return Some(mode);
    }
    value
        .parse::<u16>()
        .ok()
        .filter(|s| (400..=599).contains(s))
        .map(FailMode::Status)
}

impl FailRule {
    /// Whether the rule covers `model`: the exact name, the name after any provider prefix
    /// (`xai/grok-4` matches a rule for `grok-4`), or a `*` rule.
    pub fn matches(&self, model: &str) -> bool {
        self.model == "*" || self.model == model || model.rsplit_once('/').is_some_and(|(_, bare)| bare == self.model)
    }

    /// Whether the model's `n`-th request (1-based) fails. Failures are spread evenly: request n
    /// fails when ⌈n·rate⌉ steps up, so 0.5 fails requests 1, 3, 5…, 1.0 fails all, 0.0 none.
    pub fn fails_request(&self, n: u64) -> bool {
        // Integer parts-per-million keep the schedule exact where `n * 0.1` in floats would drift.
        let ppm = (self.rate * 1_000_000.0).round() as u64;
        let failures_through = |k: u64| (k.saturating_mul(ppm)).div_ceil(1_000_000);
        n > 0 && failures_through(n) > failures_through(n - 1)
    }
}

/// The failure, if any, for the `n`-th request of `model`: the first matching rule decides.
pub(crate) fn scheduled_failure(rules: &[FailRule], model: &str, n: u64) -> Option<FailMode> {
    let rule = rules.iter().find(|r| r.matches(model))?;
    rule.fails_request(n).then_some(rule.mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(
            parse_fail_rule("grok-4-1-fast-reasoning=1.0").unwrap(),
            FailRule {
                model: "grok-4-1-fast-reasoning".into(),
                rate: 1.0,
                mode: FailMode::Status(500)
            }
        );
        assert_eq!(parse_fail_rule("x=0.5:429").unwrap().mode, FailMode::Status(429));
        assert_eq!(parse_fail_rule("x=0.25:timeout").unwrap().mode, FailMode::Timeout);
        assert_eq!(parse_fail_rule("x=1:garbage").unwrap().mode, FailMode::Garbage);
        assert_eq!(parse_fail_rule("x=1:reset").unwrap().mode, FailMode::Reset);
        assert_eq!(parse_fail_rule("x=1:stall").unwrap().mode, FailMode::Stall);
        assert_eq!(parse_fail_rule("ollama/llama3:8b=1").unwrap().model, "ollama/llama3:8b");
    }

    #[test]
    fn rejects_bad_rules_with_a_hint() {
        for bad in ["x", "=0.5", "x=abc", "x=1.5", "x=-0.1", "x=0.5:200", "x=0.5:slow"] {
            let err = parse_fail_rule(bad).unwrap_err();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn schedule_is_even_and_exact() {
        let rule = |rate| FailRule {
            model: "m".into(),
            rate,
            mode: FailMode::Status(500),
        };
        let fails = |rate, n: u64| (1..=n).filter(|&i| rule(rate).fails_request(i)).count();
        assert_eq!(fails(1.0, 100), 100);
        assert_eq!(fails(0.0, 100), 0);
        assert_eq!(fails(0.5, 100), 50);
        assert_eq!(fails(0.1, 1000), 100);
        assert_eq!(fails(0.3, 10), 3);
        let half: Vec<bool> = (1..=4).map(|i| rule(0.5).fails_request(i)).collect();
        assert_eq!(half, [true, false, true, false]);
    }

    #[test]
    fn matches_bare_names_behind_a_provider_prefix() {
        let r = parse_fail_rule("grok-4-1-fast-reasoning=1").unwrap();
        assert!(r.matches("grok-4-1-fast-reasoning"));
        assert!(r.matches("xai/grok-4-1-fast-reasoning"));
        assert!(!r.matches("grok-4-1-fast-non-reasoning"));
        assert!(parse_fail_rule("*=1").unwrap().matches("anything"));
    }

    #[test]
    fn header_values() {
        assert_eq!(parse_fail_header("429"), Some(FailMode::Status(429)));
        assert_eq!(parse_fail_header("timeout"), Some(FailMode::Timeout));
        assert_eq!(parse_fail_header("ok"), None);
    }
}
