//! Findings: what is wrong, the numbers that show it, the likely cause and the fix. Each has a
//! stable `id` and fires only above a minimum sample, so clean data gives none.
//!
//! This module detects them in a finished report; what a finding is, and its text, is in the
//! `finding` module ([`Finding`] is re-exported here).

use std::collections::HashMap;

use tollgate_core::{Price, Record, RecordStatus};

// Re-exported so `tollgate_report::findings::{Finding, FindingData, Severity}` keep naming them.
pub use crate::finding::{Finding, FindingData, Severity};
use crate::i18n::Lang;
use crate::import::keys::KeyBudget;
use crate::report::Report;

/// A request slower than this is "slow".
pub const SLOW_MS: f64 = 30_000.0;
/// Prompt size buckets (tokens): lower bound inclusive, upper exclusive.
pub const PROMPT_BUCKETS: [(&str, u64, Option<u64>); 3] = [
    ("small", 0, Some(1_000)),
    ("medium", 1_000, Some(8_000)),
    ("large", 8_000, None),
];
pub const COMPLETION_BUCKETS: [(&str, u64, Option<u64>); 3] = [
    ("small", 0, Some(100)),
    ("medium", 100, Some(1_000)),
    ("large", 1_000, None),
];

/// Minimum samples before a finding may fire.
pub const MIN_REQUESTS: u64 = 10;
const MIN_FAILURES_ALWAYS: u64 = 3;
const MIN_REPEATS: u64 = 2;
const MIN_CACHE_LOOKUPS: u64 = 20;
const MIN_OVERHEAD_SAMPLES: u64 = 20;
const ERROR_RATE: f64 = 0.05;
const PROVIDER_CACHE_LOW: f64 = 0.10;
const PROVIDER_CACHE_MIN_PROMPT: f64 = 1_024.0;
const REASONING_HEAVY: f64 = 0.60;
const SLOW_SHARE: f64 = 0.05;
const OVERHEAD_P50_MS: f64 = 50.0;
const OVERHEAD_P95_MS: f64 = 500.0;
const COST_MISMATCH: f64 = 0.01;
/// Requests logged at $0 before the logger is said to have no price (one could be a rounding).
const MIN_LOGGED_AS_FREE: u64 = 2;
/// Missed exact repeats, with no hit anywhere, before an unknown cache state is called off.
pub const MIN_REPEATS_CACHE_OFF: u64 = 3;
const TRUNCATED_SHARE: f64 = 0.05;
const OVERSIZED_SHARE_OF_WINDOW: f64 = 0.8;
/// Share of `max_budget` spent before a key is said to be near it: early enough to raise the
/// budget before the gateway starts refusing the key (429 `budget_exceeded`).
pub const BUDGET_NEAR_SHARE: f64 = 0.8;

/// Per-model facts that the report itself does not keep.
#[derive(Debug, Clone, Default)]
pub struct ModelEvidence {
    pub slow_ids: Vec<String>,
    pub slow_count: u64,
    pub failure_ids: Vec<String>,
    pub truncated_ids: Vec<String>,
    pub truncated_max_tokens: Vec<u64>,
    pub oversized: u64,
    pub oversized_ids: Vec<String>,
    pub oversized_max_prompt: u64,
    pub unpriced_logged_zero: u64,
    pub unpriced_tokens: u64,
    /// (requests, recomputed, logged) over requests with both.
    pub recomputed_vs_logged: (u64, f64, f64),
    /// (requests, tokens, recomputed USD) logged at $0 although priced.
    pub logged_as_free: (u64, u64, f64),
    pub median_provider_prompt: Option<f64>,
}

#[derive(Debug, Clone, Default)]
pub struct Evidence {
    pub models: HashMap<String, ModelEvidence>,
    pub max_input: HashMap<String, u64>,
    /// Per model group: the id its price was found under, and its input and output rates.
    pub rates: HashMap<String, (String, Option<f64>, Option<f64>)>,
    /// Keys with a budget, from the store (`--data-dir`, `--db`).
    pub key_budgets: Vec<KeyBudget>,
}

impl Evidence {
    pub fn from_accs<'a>(it: impl Iterator<Item = (&'a str, ModelEvidence)>) -> Self {
        Evidence {
            models: it.map(|(k, v)| (k.to_string(), v)).collect(),
            max_input: HashMap::new(),
            rates: HashMap::new(),
            key_budgets: vec![],
        }
    }
}

const CONTEXT_ERRORS: [&str; 6] = [
    "context length",
    "context_length",
    "maximum context",
    "context window",
    "too many tokens",
    "prompt is too long",
];

/// A prompt near the model's context window, a `max_tokens` above the model's output limit, or a
/// failure that says the context was exceeded.
pub fn is_oversized(r: &Record, price: Option<&Price>) -> bool {
    if let Some(p) = price {
        if p.max_input_tokens
            .is_some_and(|m| m > 0 && r.prompt_tokens as f64 >= OVERSIZED_SHARE_OF_WINDOW * m as f64)
        {
            return true;
        }
        if let (Some(asked), Some(limit)) = (r.max_tokens, p.max_output())
            && asked > limit
        {
            return true;
        }
    }
    r.status == RecordStatus::Failure
        && r.error_message.as_deref().is_some_and(|m| {
            let m = m.to_ascii_lowercase();
            CONTEXT_ERRORS.iter().any(|e| m.contains(e))
                || (m.contains("max_tokens")
                    && (m.contains("exceed") || m.contains("too large") || m.contains("must be")))
        })
}

pub fn detect(report: &Report, ev: &Evidence, lang: Lang) -> Vec<Finding> {
    let mut out = Vec::new();
    let litellm = report.sources.iter().any(|s| s.starts_with("litellm"));
    let c = &report.cache;
    let total = report.requests.total;

    if c.state == "off" && c.inferred && total >= MIN_REQUESTS {
        out.push(Finding::new(
            Severity::Warning,
            None,
            Some(c.potential_savings_usd),
            c.repeat_examples.clone(),
            FindingData::CacheOffInferred {
                requests: total,
                repeats: c.repeat_requests,
                streamed: c.repeats_streamed,
                potential_usd: c.potential_savings_usd,
                litellm,
            },
            lang,
        ));
    } else if c.state == "off" && total >= MIN_REQUESTS {
        let savings = (c.potential_savings_usd > 0.0).then_some(c.potential_savings_usd);
        out.push(Finding::new(
            Severity::Warning,
            None,
            savings,
            c.repeat_examples.clone(),
            FindingData::CacheDisabled {
                off_records: c.records.off,
                total,
                litellm,
                repeats: c.repeat_requests,
                potential_usd: c.potential_savings_usd,
            },
            lang,
        ));
    }
    if matches!(c.state.as_str(), "on" | "mixed") && c.hits == 0 && report.requests.succeeded >= MIN_CACHE_LOOKUPS {
        out.push(Finding::new(
            Severity::Warning,
            None,
            None,
            vec![],
            FindingData::CacheNoHits {
                requests: report.requests.succeeded,
                litellm,
            },
            lang,
        ));
    }
    if c.state != "off" && c.repeat_requests >= MIN_REPEATS {
        let severity = if c.state == "unknown" {
            Severity::Info
        } else {
            Severity::Warning
        };
        out.push(Finding::new(
            severity,
            None,
            Some(c.potential_savings_usd),
            c.repeat_examples.clone(),
            FindingData::CacheRepeatsMissed {
                repeats: c.repeat_requests,
                streamed: c.repeats_streamed,
                potential_usd: c.potential_savings_usd,
                cache_state: c.state.clone(),
                litellm,
            },
            lang,
        ));
    }

    for m in &report.models {
        let e = ev.models.get(&m.model).cloned().unwrap_or_default();
        let provider_requests = m.succeeded.saturating_sub(m.cache_hits);
        if let (Some(share), Some(median)) = (m.provider_cache.share, e.median_provider_prompt)
            && provider_requests >= MIN_REQUESTS
            && median >= PROVIDER_CACHE_MIN_PROMPT
            && share < PROVIDER_CACHE_LOW
        {
            out.push(Finding::new(
                Severity::Info,
                Some(&m.model),
                None,
                vec![],
                FindingData::ProviderCacheLow {
                    prompt_tokens: m.provider_cache.prompt_tokens,
                    cached_tokens: m.provider_cache.cached_tokens,
                    share,
                    median_prompt: median,
                    requests: provider_requests,
                },
                lang,
            ));
        }
        let first_error = m.errors.first().map(|e| e.message.clone()).unwrap_or_default();
        // A model is failing when its deployments fail; requests the clients got wrong (or left)
        // would fail anywhere.
        if m.succeeded == 0 && m.failed - m.client_failed >= MIN_FAILURES_ALWAYS {
            out.push(Finding::new(
                Severity::Critical,
                Some(&m.model),
                None,
                e.failure_ids.clone(),
                FindingData::ModelAlwaysFailing {
                    failures: m.failed,
                    error: first_error.clone(),
                    upstream: m.upstream_models.join(", "),
                },
                lang,
            ));
        } else if m.requests >= MIN_REQUESTS && m.failed as f64 / m.requests as f64 >= ERROR_RATE {
            out.push(Finding::new(
                Severity::Warning,
                Some(&m.model),
                None,
                e.failure_ids.clone(),
                FindingData::HighErrorRate {
                    failures: m.failed,
                    requests: m.requests,
                    rate: m.failed as f64 / m.requests as f64,
                    error: first_error,
                },
                lang,
            ));
        }
        if e.unpriced_logged_zero > 0 && e.unpriced_tokens > 0 {
            out.push(Finding::new(
                Severity::Warning,
                Some(&m.model),
                None,
                vec![],
                FindingData::UnpricedModel {
                    requests: m.unpriced_requests,
                    tokens: e.unpriced_tokens,
                    upstream: m.upstream_models.join(", "),
                },
                lang,
            ));
        }
        let (free_n, free_tokens, free_usd) = e.logged_as_free;
        if free_n >= MIN_LOGGED_AS_FREE && free_usd > 0.0 {
            let (priced_as, input, output) = ev
                .rates
                .get(&m.model)
                .cloned()
                .unwrap_or_else(|| (m.upstream_models.join(", "), None, None));
            out.push(Finding::new(
                Severity::Warning,
                Some(&m.model),
                None,
                vec![],
                FindingData::LoggedAsFree {
                    requests: free_n,
                    tokens: free_tokens,
                    upstream: m.upstream_models.first().cloned().unwrap_or(priced_as),
                    recomputed_usd: free_usd,
                    input_per_token: input,
                    output_per_token: output,
                    litellm,
                },
                lang,
            ));
        }
        let (n, rec, logged) = e.recomputed_vs_logged;
        if n >= 3 && (rec - logged).abs() > (COST_MISMATCH * rec.abs().max(logged.abs())).max(1e-6) {
            out.push(Finding::new(
                Severity::Warning,
                Some(&m.model),
                None,
                vec![],
                FindingData::CostMismatch {
                    requests: n,
                    recomputed_usd: rec,
                    logged_usd: logged,
                },
                lang,
            ));
        }
        if let Some(share) = m.reasoning_share
            && m.succeeded >= MIN_REQUESTS
            && share >= REASONING_HEAVY
        {
            out.push(Finding::new(
                Severity::Info,
                Some(&m.model),
                None,
                vec![],
                FindingData::ReasoningHeavy {
                    reasoning_tokens: m.reasoning_tokens,
                    completion_tokens: m.completion_tokens,
                    share,
                    cost_usd: m.reasoning_cost_usd,
                },
                lang,
            ));
        }
        if let Some(l) = &m.latency_ms
            && l.count >= MIN_REQUESTS
            && e.slow_count > 0
            && e.slow_count as f64 / l.count as f64 >= SLOW_SHARE
        {
            out.push(Finding::new(
                Severity::Warning,
                Some(&m.model),
                None,
                e.slow_ids.clone(),
                FindingData::SlowRequests {
                    slow: e.slow_count,
                    requests: l.count,
                    p95_ms: l.p95,
                    threshold_ms: SLOW_MS,
                },
                lang,
            ));
        }
        if m.truncated >= 3 && m.succeeded > 0 && m.truncated as f64 / m.succeeded as f64 >= TRUNCATED_SHARE {
            out.push(Finding::new(
                Severity::Warning,
                Some(&m.model),
                None,
                e.truncated_ids.clone(),
                FindingData::TruncatedOutputs {
                    truncated: m.truncated,
                    requests: m.succeeded,
                    max_tokens: e.truncated_max_tokens.clone(),
                },
                lang,
            ));
        }
        if e.oversized >= 2 {
            out.push(Finding::new(
                Severity::Warning,
                Some(&m.model),
                None,
                e.oversized_ids.clone(),
                FindingData::OversizedPrompts {
                    requests: e.oversized,
                    max_prompt: e.oversized_max_prompt,
                    max_input: ev.max_input.get(&m.model).copied(),
                },
                lang,
            ));
        }
    }

    if let Some(o) = &report.overhead_ms
        && o.samples >= MIN_OVERHEAD_SAMPLES
        && (o.p50 > OVERHEAD_P50_MS || o.p95 > OVERHEAD_P95_MS)
    {
        out.push(Finding::new(
            Severity::Warning,
            None,
            None,
            vec![o.max_request_id.clone()],
            FindingData::HighOverhead {
                samples: o.samples,
                p50_ms: o.p50,
                p95_ms: o.p95,
                max_ms: o.max,
            },
            lang,
        ));
    }

    for w in &report.workflows {
        for s in &w.missing_steps {
            let enough = match s.reason.as_str() {
                "never_ran" => w.runs >= 1,
                _ => s.runs >= 2,
            };
            if !enough {
                continue;
            }
            let model = w
                .steps
                .iter()
                .find(|st| st.role == s.role && st.index == s.index)
                .and_then(|st| st.models.first().cloned());
            out.push(Finding::new(
                if s.reason == "skipped" {
                    Severity::Warning
                } else {
                    Severity::Critical
                },
                model.as_deref(),
                None,
                vec![],
                FindingData::WorkflowStepMissing {
                    workflow: w.name.clone(),
                    role: s.role.clone(),
                    index: s.index,
                    runs: s.runs,
                    total_runs: w.runs,
                    reason: s.reason.clone(),
                },
                lang,
            ));
        }
    }

    budget_findings(&ev.key_budgets, lang, &mut out);

    out.sort_by(|a, b| {
        a.severity
            .cmp(&b.severity)
            .then_with(|| b.savings_usd.unwrap_or(0.0).total_cmp(&a.savings_usd.unwrap_or(0.0)))
            .then_with(|| a.id.cmp(&b.id))
            .then_with(|| a.model.cmp(&b.model))
    });
    out
}

/// A key at 80 % or more of its `max_budget` (a warning: at 100 % the gateway refuses it), else
/// past its `soft_budget` (information: a soft budget only alerts). Closest to the limit first.
fn budget_findings(budgets: &[KeyBudget], lang: Lang, out: &mut Vec<Finding>) {
    let mut found: Vec<(Severity, f64, &str, Finding)> = Vec::new();
    for k in budgets {
        let (severity, limit, budget) = match (k.max_budget, k.soft_budget) {
            (Some(max), _) if max > 0.0 && k.spend >= BUDGET_NEAR_SHARE * max => (Severity::Warning, "max_budget", max),
            (_, Some(soft)) if soft > 0.0 && k.spend >= soft => (Severity::Info, "soft_budget", soft),
            _ => continue,
        };
        let share = k.spend / budget;
        found.push((
            severity,
            share,
            k.name(),
            Finding::new(
                severity,
                None,
                None,
                vec![],
                FindingData::BudgetNearLimit {
                    key: k.name().to_string(),
                    limit: limit.into(),
                    spend_usd: k.spend,
                    budget_usd: budget,
                    share,
                    max_budget_usd: k.max_budget,
                    soft_budget_usd: k.soft_budget,
                    budget_duration: k.budget_duration.clone(),
                    period_start: k.budget_window,
                },
                lang,
            ),
        ));
    }
    found.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| b.1.total_cmp(&a.1))
            .then_with(|| a.2.cmp(b.2))
    });
    out.extend(found.into_iter().map(|(_, _, _, f)| f));
}
