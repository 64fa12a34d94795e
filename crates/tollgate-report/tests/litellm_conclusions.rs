//! The seed's conclusions drawn from logs written by the real LiteLLM proxy (1.108.7, in front of
//! `tollgate mock`, made by `tests/litellm-fixtures/gen.sh`), each with its guard against a false
//! alarm on a log that looks alike.

mod common;

use common::*;
use tollgate_core::PriceTable;
use tollgate_report::expectations::ConfigFacts;
use tollgate_report::findings::{FindingData, Severity};
use tollgate_report::{Report, ReportOptions, build_report};

fn report(file: &str, opts: &ReportOptions) -> Report {
    let (records, _) = import_priced(&[fixture(file)], &opts.prices);
    build_report(records, opts)
}

fn ids(r: &Report) -> Vec<String> {
    r.findings
        .iter()
        .map(|f| format!("{}:{}", f.id, f.model.as_deref().unwrap_or("")))
        .collect()
}

#[test]
fn payload_logs_alone_show_the_cache_off_when_repeats_reached_the_provider() {
    let r = report("litellm_cache_off_payload.jsonl", &ReportOptions::default());
    // Nothing in the lines says "Cache OFF": a payload names the cache only on a hit.
    assert_eq!(r.cache.records.off, 0);
    assert_eq!(r.cache.records.unknown, r.requests.total);
    assert_eq!(r.cache.hits, 0);
    assert_eq!(r.cache.state, "off");
    assert!(r.cache.inferred);
    assert_eq!(r.cache.enabled, Some(false));
    let f = r
        .findings
        .iter()
        .find(|f| f.id == "cache_disabled")
        .unwrap_or_else(|| panic!("no cache_disabled in {:?}", ids(&r)));
    assert_eq!(f.severity, Severity::Warning);
    let FindingData::CacheOffInferred {
        requests,
        repeats,
        potential_usd,
        litellm,
        ..
    } = &f.data
    else {
        panic!("{:?}", f.data)
    };
    assert_eq!(*requests, 30);
    // drive.py repeats every third prompt: 10 of 30 requests were exact repeats.
    assert_eq!(*repeats, 10);
    assert!(*potential_usd > 0.0);
    assert_eq!(f.savings_usd, Some(*potential_usd));
    assert!(*litellm);
    assert!(f.fix.contains("litellm_settings: {cache: true"), "{}", f.fix);
    assert!(f.evidence.contains("10 of them repeated"), "{}", f.evidence);
    assert!(!f.request_ids.is_empty());
    // The weaker "repeats missed, cache state unknown" note is replaced, not repeated.
    assert!(
        !ids(&r).iter().any(|i| i.starts_with("cache_repeats_missed")),
        "{:?}",
        ids(&r)
    );
}

#[test]
fn a_log_with_cache_hits_is_not_called_cache_off() {
    let r = report("litellm_cache_on_payload.jsonl", &ReportOptions::default());
    assert!(r.cache.hits > 0);
    assert_eq!(r.cache.state, "on");
    assert!(!r.cache.inferred);
    assert!(
        !ids(&r).iter().any(|i| i.starts_with("cache_disabled")),
        "{:?}",
        ids(&r)
    );
}

#[test]
fn costs_logged_as_zero_for_a_model_the_logger_could_not_price_are_unpriced_model() {
    let r = report("litellm_cache_off_payload.jsonl", &ReportOptions::default());
    let grok = r.models.iter().find(|m| m.model == "grok-4.1-fast").expect("grok row");
    assert_eq!(grok.logged_cost_usd, Some(0.0));
    assert!(grok.cost_usd > 0.0, "tollgate prices grok itself");
    let f = r
        .findings
        .iter()
        .find(|f| f.id == "unpriced_model")
        .unwrap_or_else(|| panic!("no unpriced_model in {:?}", ids(&r)));
    assert_eq!(f.model.as_deref(), Some("grok-4.1-fast"));
    let FindingData::LoggedAsFree {
        requests,
        tokens,
        upstream,
        recomputed_usd,
        input_per_token,
        litellm,
        ..
    } = &f.data
    else {
        panic!("{:?}", f.data)
    };
    assert_eq!(*requests, 12);
    assert_eq!(*tokens, grok.prompt_tokens + grok.completion_tokens);
    assert_eq!(upstream, "xai/grok-4-1-fast-reasoning");
    assert!(
        (recomputed_usd - grok.cost_usd).abs() < 1e-12,
        "{recomputed_usd} vs {}",
        grok.cost_usd
    );
    let table = PriceTable::builtin();
    assert_eq!(
        *input_per_token,
        table.lookup(upstream).and_then(|p| p.input_cost_per_token)
    );
    assert!(*litellm);
    assert!(f.message.contains("xai/grok-4-1-fast-reasoning"), "{}", f.message);
    assert!(f.evidence.contains("understates"), "{}", f.evidence);
    assert!(
        f.fix.contains("input_cost_per_token") && f.fix.contains("tollgate already prices"),
        "{}",
        f.fix
    );
    // One cause, one finding: not also a generic price mismatch.
    assert!(!ids(&r).iter().any(|i| i.starts_with("cost_mismatch")), "{:?}", ids(&r));
    // The totals say by how much the logged spend is short.
    let diff = r.cost.difference_usd.expect("difference");
    assert!(diff >= *recomputed_usd - 1e-12, "{diff}");
}

#[test]
fn openrouter_free_models_logged_at_zero_are_really_free() {
    let r = report("litellm_openrouter_free_payload.jsonl", &ReportOptions::default());
    let free = r
        .models
        .iter()
        .find(|m| m.model == "llama-free")
        .expect("llama-free row");
    assert!(free.prompt_tokens > 0);
    assert_eq!(free.logged_cost_usd, Some(0.0));
    assert_eq!(free.cost_usd, 0.0);
    assert_eq!(free.unpriced_requests, 0);
    assert!(r.cost.unpriced_models.is_empty(), "{:?}", r.cost.unpriced_models);
    let bad: Vec<String> = ids(&r)
        .into_iter()
        .filter(|i| i.starts_with("unpriced_model") || i.starts_with("cost_mismatch"))
        .collect();
    assert!(bad.is_empty(), "{bad:?}");
}

fn with_config() -> ReportOptions {
    options_with_cfx_config()
}

#[test]
fn a_config_names_the_workflow_steps_that_never_ran() {
    // The seed: `cf-x-normal` was a model name in LiteLLM pointing at DeepSeek; the config says it
    // is planner -> coder -> reviewer. Only the planner's model ever answered.
    let r = report("litellm_cache_off_payload.jsonl", &with_config());
    let w = r
        .workflows
        .iter()
        .find(|w| w.name == "cf-x-normal")
        .expect("workflow row");
    assert_eq!(w.runs, 6);
    let roles: Vec<&str> = w.steps.iter().map(|s| s.role.as_str()).collect();
    assert_eq!(roles, ["planner"]);
    assert_eq!(w.steps[0].calls, 6);
    let missing: Vec<(&str, &str)> = w
        .missing_steps
        .iter()
        .map(|m| (m.role.as_str(), m.reason.as_str()))
        .collect();
    assert_eq!(missing, [("coder", "never_ran"), ("reviewer", "never_ran")]);
    let f: Vec<_> = r.findings.iter().filter(|f| f.id == "workflow_step_missing").collect();
    assert_eq!(f.len(), 2, "{:?}", ids(&r));
    assert!(f.iter().all(|f| f.severity == Severity::Critical));
    assert_eq!(
        f[0].model.as_deref(),
        None,
        "a step that never ran has no model in the logs"
    );
    // Without the config nothing says cf-x-normal is a workflow.
    let plain = report("litellm_cache_off_payload.jsonl", &ReportOptions::default());
    assert!(plain.workflows.is_empty());
    assert!(!ids(&plain).iter().any(|i| i.starts_with("workflow_step_missing")));
}

#[test]
fn a_config_s_deployment_prices_and_context_windows_are_used() {
    let r = report("litellm_cache_off_payload.jsonl", &with_config());
    let grok = r.models.iter().find(|m| m.model == "grok-4.1-fast").expect("grok row");
    // The config's own grok rates ($1 / $2 per 1M tokens) over the built-in ones ($0.2 / $0.5).
    let opts = with_config();
    let price = opts.prices.lookup("xai/grok-4-1-fast-reasoning").expect("grok price");
    assert_eq!(
        (price.input_cost_per_token, price.output_cost_per_token),
        (Some(1e-6), Some(2e-6))
    );
    let (records, _) = import_priced(&[fixture("litellm_cache_off_payload.jsonl")], &opts.prices);
    let expected: f64 = records
        .iter()
        .filter(|r| r.model_group == "grok-4.1-fast")
        .filter_map(|r| price.cost(&r.usage()).map(|c| c.total()))
        .sum();
    assert!(
        (grok.cost_usd - expected).abs() < 1e-12,
        "{} vs {expected}",
        grok.cost_usd
    );
    let builtin = report("litellm_cache_off_payload.jsonl", &ReportOptions::default());
    let builtin_grok = builtin
        .models
        .iter()
        .find(|m| m.model == "grok-4.1-fast")
        .expect("grok row");
    assert!(
        grok.cost_usd > 3.0 * builtin_grok.cost_usd,
        "{} vs {}",
        grok.cost_usd,
        builtin_grok.cost_usd
    );
    // DeepSeek's window is 300 tokens in this config: every ~245-token prompt is over 80 % of it.
    assert!(
        r.findings
            .iter()
            .any(|f| f.id == "oversized_prompts" && f.model.as_deref() == Some("deepseek-v3.2")),
        "{:?}",
        ids(&r)
    );
    let plain = report("litellm_cache_off_payload.jsonl", &ReportOptions::default());
    assert!(!ids(&plain).iter().any(|i| i.starts_with("oversized_prompts")));
}

#[test]
fn a_config_that_does_not_load_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("broken.yaml");
    std::fs::write(
        &p,
        "model_list:\n  - model_name: a\n    litellm_params: {model: nosuch/x}\n  bad: [\n",
    )
    .expect("write");
    let e = ConfigFacts::load(&p, &PriceTable::builtin()).expect_err("must fail");
    assert!(e.contains("broken.yaml"), "{e}");
}
