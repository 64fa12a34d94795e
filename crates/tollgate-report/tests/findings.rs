//! Every finding fires on data that shows the problem and stays silent on clean data and below
//! its minimum sample.

mod common;

use std::collections::BTreeMap;

use common::*;
use tollgate_core::{CacheState, Record};
use tollgate_report::{Report, ReportOptions, build_report};

const DS: &str = "deepseek/deepseek-v3.2";

fn build(records: Vec<Record>) -> Report {
    build_report(records, &ReportOptions::default())
}

fn has(r: &Report, id: &str) -> bool {
    r.findings.iter().any(|f| f.id == id)
}

/// n successful, varied, priced requests with the cache on and hitting sometimes.
fn clean(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let mut r = rec(&format!("ok-{i:03}"), "deepseek-v3.2", DS, 2000 + i as u64, 300);
            r.reasoning_tokens = 60;
            r.cached_tokens = 1500;
            r.set_cost(
                tollgate_core::PriceTable::builtin()
                    .lookup(DS)
                    .and_then(|p| p.cost(&r.usage())),
            );
            r.reported_cost_usd = r.cost_usd;
            r.prompt_sha256 = Some(format!("{i:064x}"));
            r.overhead_ms = Some(3.0);
            r.finish_reason = Some("stop".into());
            r.cache = if i % 10 == 0 { CacheState::Hit } else { CacheState::Miss };
            r
        })
        .collect()
}

#[test]
fn clean_data_has_no_findings() {
    let r = build(clean(40));
    assert!(r.findings.is_empty(), "{:?}", ids(&r));
    assert!(build(vec![]).findings.is_empty());
}

#[test]
fn cache_disabled() {
    let off = |n: usize| {
        clean(n)
            .into_iter()
            .map(|mut r| {
                r.cache = CacheState::Off;
                r
            })
            .collect::<Vec<_>>()
    };
    let r = build(off(12));
    assert!(has(&r, "cache_disabled"));
    let f = &r.findings[0];
    assert_eq!(f.severity, tollgate_report::Severity::Warning);
    assert!(f.fix.contains("cache"));
    assert!(!has(&build(off(5)), "cache_disabled"), "below the minimum sample");
}

#[test]
fn cache_no_hits() {
    let misses = |n: usize| {
        clean(n)
            .into_iter()
            .map(|mut r| {
                r.cache = CacheState::Miss;
                r
            })
            .collect::<Vec<_>>()
    };
    assert!(has(&build(misses(25)), "cache_no_hits"));
    assert!(!has(&build(misses(10)), "cache_no_hits"));
}

#[test]
fn cache_repeats_missed_with_savings() {
    let mut rs = clean(20);
    for r in rs.iter_mut().skip(1).take(3) {
        r.prompt_sha256 = Some("same".into());
    }
    rs[1].cache = CacheState::Miss;
    let r = build(rs.clone());
    let f = r
        .findings
        .iter()
        .find(|f| f.id == "cache_repeats_missed")
        .expect("fires");
    // Three identical prompts reached the provider: the first is needed, two were missed.
    assert_eq!(r.cache.repeat_requests, 2);
    let costs: Vec<f64> = rs[1..4].iter().map(|x| x.cost_usd.unwrap()).collect();
    let want = costs.iter().sum::<f64>() / 3.0 * 2.0;
    assert!((f.savings_usd.unwrap() - want).abs() < 1e-12);
    // One repeat only: below the minimum.
    let mut rs = clean(20);
    rs[1].prompt_sha256 = rs[2].prompt_sha256.clone();
    assert!(!has(&build(rs), "cache_repeats_missed"));
}

#[test]
fn provider_cache_low() {
    let low = |n: usize| {
        clean(n)
            .into_iter()
            .map(|mut r| {
                r.cached_tokens = 10;
                r
            })
            .collect::<Vec<_>>()
    };
    let r = build(low(20));
    assert!(has(&r, "provider_cache_low"));
    assert!(!has(&build(low(8)), "provider_cache_low"));
    // Provider reports nothing: "n/a", not 0%, and no finding.
    let none: Vec<Record> = low(20)
        .into_iter()
        .map(|mut r| {
            r.cached_tokens = 0;
            r
        })
        .collect();
    let r = build(none);
    assert_eq!(r.models[0].provider_cache.share, None);
    assert!(!has(&r, "provider_cache_low"));
}

#[test]
fn model_always_failing_and_high_error_rate() {
    let mut rs = clean(20);
    for i in 0..4 {
        rs.push(failed(
            &format!("grok-{i}"),
            "grok-4.1-fast",
            "xai/grok-4-1-fast-reasoning",
            "500 upstream overloaded",
        ));
    }
    let r = build(rs.clone());
    let f = r
        .findings
        .iter()
        .find(|f| f.id == "model_always_failing")
        .expect("fires");
    assert_eq!(f.model.as_deref(), Some("grok-4.1-fast"));
    assert_eq!(f.severity, tollgate_report::Severity::Critical);
    assert!(f.evidence.contains("upstream overloaded"));
    assert_eq!(f.request_ids.len(), 3);
    assert!(!has(&r, "high_error_rate"));
    // Two failures are not enough to say "always".
    let r = build(rs[..22].to_vec());
    assert!(!has(&r, "model_always_failing"));

    // Failures that were the clients' fault (malformed bodies, hung-up streams) do not make a
    // model "always failing": the same requests would fail anywhere.
    let mut rs = clean(20);
    for i in 0..4 {
        let mut r = failed(
            &format!("bad-{i}"),
            "grok-4.1-fast",
            "xai/grok-4-1-fast-reasoning",
            "400 bad max_tokens",
        );
        r.http_status = 400;
        r.fault = Some(tollgate_core::Fault::Client);
        rs.push(r);
    }
    let r = build(rs);
    assert!(!has(&r, "model_always_failing"), "{:?}", ids(&r));
    let grok = r.models.iter().find(|m| m.model == "grok-4.1-fast").unwrap();
    assert_eq!((grok.failed, grok.client_failed), (4, 4));

    // Some failures among successes: high_error_rate.
    let mut rs = clean(18);
    rs.push(failed("f1", "deepseek-v3.2", DS, "429 rate limited"));
    rs.push(failed("f2", "deepseek-v3.2", DS, "429 rate limited"));
    let r = build(rs);
    let f = r.findings.iter().find(|f| f.id == "high_error_rate").expect("fires");
    assert!(f.evidence.contains("10%"));
    let mut rs = clean(40);
    rs.push(failed("f1", "deepseek-v3.2", DS, "x"));
    assert!(!has(&build(rs), "high_error_rate"), "1 in 41 is below 5%");
}

#[test]
fn unpriced_model() {
    let mut rs = clean(12);
    let mut u = rec("custom-1", "cf-x", "custom/secret-model", 47_000, 500);
    u.reported_cost_usd = Some(0.0);
    assert!(u.cost_usd.is_none() && u.unpriced);
    rs.push(u);
    let r = build(rs);
    let f = r.findings.iter().find(|f| f.id == "unpriced_model").expect("fires");
    assert_eq!(f.model.as_deref(), Some("cf-x"));
    assert!(f.evidence.contains("47,500"));
    assert_eq!(r.cost.unpriced_models, vec!["cf-x".to_string()]);
    assert!(!has(&build(clean(12)), "unpriced_model"));
}

#[test]
fn cost_mismatch() {
    let rs: Vec<Record> = clean(12)
        .into_iter()
        .map(|mut r| {
            r.reported_cost_usd = r.cost_usd.map(|c| c * 0.5);
            r
        })
        .collect();
    assert!(has(&build(rs), "cost_mismatch"));
    // Within 1%: no finding.
    let rs: Vec<Record> = clean(12)
        .into_iter()
        .map(|mut r| {
            r.reported_cost_usd = r.cost_usd.map(|c| c * 1.001);
            r
        })
        .collect();
    assert!(!has(&build(rs), "cost_mismatch"));
}

#[test]
fn reasoning_heavy() {
    let heavy = |n: usize| {
        clean(n)
            .into_iter()
            .map(|mut r| {
                r.reasoning_tokens = 250;
                r
            })
            .collect::<Vec<_>>()
    };
    let r = build(heavy(12));
    let f = r.findings.iter().find(|f| f.id == "reasoning_heavy").expect("fires");
    assert!(f.evidence.contains("83%"), "{}", f.evidence);
    assert!(!has(&build(heavy(5)), "reasoning_heavy"));
}

#[test]
fn slow_requests() {
    let mut rs = clean(20);
    rs[3].latency_ms = 45_000.0;
    assert!(has(&build(rs.clone()), "slow_requests"));
    let mut rs = clean(40);
    rs[3].latency_ms = 45_000.0;
    assert!(!has(&build(rs), "slow_requests"), "1 in 40 is under 5%");
}

#[test]
fn high_overhead() {
    let slow_gateway = |n: usize| {
        clean(n)
            .into_iter()
            .map(|mut r| {
                r.overhead_ms = Some(80.0);
                r
            })
            .collect::<Vec<_>>()
    };
    let r = build(slow_gateway(25));
    assert!(has(&r, "high_overhead"));
    assert!(!has(&build(slow_gateway(10)), "high_overhead"));
    // A cold start alone (a few slow first requests) does not fire.
    let mut rs = clean(40);
    rs[0].overhead_ms = Some(554.0);
    assert!(!has(&build(rs), "high_overhead"));
}

#[test]
fn truncated_outputs() {
    let mut rs = clean(20);
    for r in rs.iter_mut().take(3) {
        r.finish_reason = Some("length".into());
        r.max_tokens = Some(256);
    }
    let r = build(rs);
    let f = r.findings.iter().find(|f| f.id == "truncated_outputs").expect("fires");
    assert!(f.evidence.contains("256"));
    let mut rs = clean(20);
    rs[0].finish_reason = Some("length".into());
    assert!(!has(&build(rs), "truncated_outputs"));
}

#[test]
fn workflow_step_missing() {
    // Runs of plan → code → review where the coder always fails, and one run that skips it.
    let mut rs = Vec::new();
    for run in 0..3 {
        for (i, role) in ["planner", "coder", "reviewer"].iter().enumerate() {
            if run == 2 && *role == "coder" {
                continue;
            }
            let model = if *role == "coder" {
                "xai/grok-4-1-fast-reasoning"
            } else {
                DS
            };
            let mut r = if *role == "coder" {
                failed(&format!("r{run}-{role}"), "grok-4.1-fast", model, "boom")
            } else {
                rec(&format!("r{run}-{role}"), "deepseek-v3.2", model, 1000, 100)
            };
            r.trace_id = format!("run-{run}");
            r.workflow = Some("cf-x".into());
            r.step_role = Some(role.to_string());
            r.step_index = Some(i as u32);
            rs.push(r);
        }
    }
    let r = build(rs.clone());
    let w = &r.workflows[0];
    assert_eq!((w.name.as_str(), w.runs, w.runs_failed), ("cf-x", 3, 2));
    assert_eq!(w.steps.len(), 3);
    assert_eq!(w.steps[1].role, "coder");
    assert_eq!((w.steps[1].calls, w.steps[1].failed, w.steps[1].runs), (2, 2, 2));
    let reasons: Vec<&str> = w.missing_steps.iter().map(|m| m.reason.as_str()).collect();
    assert_eq!(reasons, vec!["skipped", "always_failed"]);
    let missing: Vec<_> = r.findings.iter().filter(|f| f.id == "workflow_step_missing").collect();
    assert_eq!(
        missing.len(),
        1,
        "the skip happened in one run only: below the minimum; the failures fire"
    );
    assert!(missing[0].evidence.contains("coder"));

    // A step configured but never seen.
    let opts = ReportOptions {
        expected_steps: BTreeMap::from([(
            "cf-x".to_string(),
            vec!["planner".into(), "coder".into(), "reviewer".into(), "tester".into()],
        )]),
        ..ReportOptions::default()
    };
    let r = build_report(rs, &opts);
    assert!(
        r.findings
            .iter()
            .any(|f| f.id == "workflow_step_missing" && f.evidence.contains("tester"))
    );

    // Complete, successful runs: nothing.
    let ok: Vec<Record> = (0..3)
        .flat_map(|run| {
            ["planner", "reviewer"].into_iter().enumerate().map(move |(i, role)| {
                let mut r = rec(&format!("ok{run}-{role}"), "deepseek-v3.2", DS, 1000, 100);
                r.trace_id = format!("run-{run}");
                r.workflow = Some("cf-x".into());
                r.step_role = Some(role.into());
                r.step_index = Some(i as u32);
                r
            })
        })
        .collect();
    assert!(!has(&build(ok), "workflow_step_missing"));
}

#[test]
fn oversized_prompts() {
    let mut rs = clean(12);
    // DeepSeek V3.2's window is 163,840 tokens: 150,000 is over 80% of it.
    rs.push(rec("big-1", "deepseek-v3.2", DS, 150_000, 10));
    let mut f = failed(
        "big-2",
        "deepseek-v3.2",
        DS,
        "This model's maximum context length is 163840 tokens",
    );
    f.http_status = 400;
    rs.push(f);
    let r = build(rs);
    let f = r.findings.iter().find(|f| f.id == "oversized_prompts").expect("fires");
    assert!(
        f.evidence.contains("150,000") && f.evidence.contains("163,840"),
        "{}",
        f.evidence
    );
    let mut rs = clean(12);
    rs.push(rec("big-1", "deepseek-v3.2", DS, 150_000, 10));
    assert!(!has(&build(rs), "oversized_prompts"));
}

#[test]
fn findings_speak_turkish() {
    let mut rs = clean(20);
    for i in 0..4 {
        rs.push(failed(
            &format!("grok-{i}"),
            "grok-4.1-fast",
            "xai/grok-4-1-fast-reasoning",
            "boom",
        ));
    }
    let opts = ReportOptions {
        lang: tollgate_report::Lang::Tr,
        ..ReportOptions::default()
    };
    let r = build_report(rs, &opts);
    assert_eq!(r.findings[0].message, "grok-4.1-fast her istekte başarısız oldu");
    let mut en = r.findings[0].clone();
    en.localize(tollgate_report::Lang::En);
    assert_eq!(en.message, "grok-4.1-fast failed on every request");
}
