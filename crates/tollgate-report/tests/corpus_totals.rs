//! Totals over the full shared corpus equal `reference_stats.json`, computed independently.

mod common;

use common::*;

fn check(folder: &str, inputs: &[&str]) {
    let dir = corpus(folder);
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference_stats.json")).unwrap()).unwrap();
    let paths: Vec<_> = if inputs.is_empty() {
        vec![dir.clone()]
    } else {
        inputs.iter().map(|i| dir.join(i)).collect()
    };
    let r = report(&paths);
    let spend_only = inputs == ["spend_logs.jsonl"];
    let label = format!("{folder} {inputs:?}");
    if spend_only {
        // SpendLogs has successes only in this LiteLLM version.
        assert_eq!(r.requests.total, reference["succeeded"].as_u64().unwrap(), "{label}");
    } else {
        assert_eq!(r.requests.total, reference["total"].as_u64().unwrap(), "{label}");
        assert_eq!(r.requests.failed, reference["failed"].as_u64().unwrap(), "{label}");
    }
    assert_eq!(
        r.requests.succeeded,
        reference["succeeded"].as_u64().unwrap(),
        "{label}"
    );
    assert!(
        (r.cost.total_usd - reference["cost_usd"].as_f64().unwrap()).abs() < 1e-9,
        "{label}: {}",
        r.cost.total_usd
    );
    assert_eq!(r.cache.hits, reference["cache_hits"].as_u64().unwrap(), "{label}");
    for (name, want) in reference["models"].as_object().unwrap() {
        let m = r.models.iter().find(|m| &m.model == name);
        if spend_only && want.get("prompt_tokens").is_none() {
            assert!(m.is_none());
            continue;
        }
        let m = m.unwrap_or_else(|| panic!("{label}: model {name} missing"));
        if !spend_only {
            assert_eq!(m.requests, want["requests"].as_u64().unwrap(), "{label} {name}");
            assert_eq!(
                m.failed,
                want.get("failed").and_then(|v| v.as_u64()).unwrap_or(0),
                "{label} {name}"
            );
        }
        for k in [
            "prompt_tokens",
            "completion_tokens",
            "reasoning_tokens",
            "cached_tokens",
        ] {
            let got = match k {
                "prompt_tokens" => m.prompt_tokens,
                "completion_tokens" => m.completion_tokens,
                "reasoning_tokens" => m.reasoning_tokens,
                _ => m.cached_tokens,
            };
            assert_eq!(
                got,
                want.get(k).and_then(|v| v.as_u64()).unwrap_or(0),
                "{label} {name} {k}"
            );
        }
        assert!(
            (m.cost_usd - want.get("cost_usd").and_then(|v| v.as_f64()).unwrap_or(0.0)).abs() < 1e-9,
            "{label} {name} cost"
        );
        if let Some(h) = want.get("cache_hits") {
            assert_eq!(m.cache_hits, h.as_u64().unwrap(), "{label} {name} hits");
        }
    }
    if !spend_only {
        let always: Vec<String> = r
            .findings
            .iter()
            .filter(|f| f.id == "model_always_failing")
            .filter_map(|f| f.model.clone())
            .collect();
        let want: Vec<String> = reference["always_failing_models"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert_eq!(always, want, "{label}");
    }
    // Logged and recomputed cost agree on this corpus.
    assert!(r.cost.difference_usd.unwrap().abs() < 1e-9, "{label}");
    assert!(
        r.findings
            .iter()
            .all(|f| f.id != "cost_mismatch" && f.id != "unpriced_model"),
        "{label}"
    );
}

#[test]
#[cfg_attr(
    not(tollgate_corpus),
    ignore = "needs the LiteLLM corpus at ../shared/corpus beside the checkout"
)]
fn seedlike_cache_off_matches_reference() {
    check("seedlike-cache-off", &["standard_logging.jsonl"]);
    check("seedlike-cache-off", &["spend_logs.jsonl"]);
    check("seedlike-cache-off", &[]);
}

#[test]
#[cfg_attr(
    not(tollgate_corpus),
    ignore = "needs the LiteLLM corpus at ../shared/corpus beside the checkout"
)]
fn cache_on_matches_reference() {
    check("cache-on", &["standard_logging.jsonl"]);
    check("cache-on", &["spend_logs.jsonl"]);
    check("cache-on", &[]);
}

#[test]
#[cfg_attr(
    not(tollgate_corpus),
    ignore = "needs the LiteLLM corpus at ../shared/corpus beside the checkout"
)]
fn seedlike_answers_the_seed_questions() {
    let dir = corpus("seedlike-cache-off");
    let r = report(&[dir]);
    // Cache off, and why.
    assert_eq!(r.cache.state, "off");
    assert_eq!(r.cache.enabled, Some(false));
    let f = r
        .findings
        .iter()
        .find(|f| f.id == "cache_disabled")
        .expect("cache_disabled");
    assert!(f.cause.contains("Cache OFF") && f.cause.contains("general_settings"));
    assert!(f.fix.contains("litellm_settings") && f.fix.contains("cache: true") && f.fix.contains("cache_params"));
    // The coder that never shows up.
    let f = r
        .findings
        .iter()
        .find(|f| f.id == "model_always_failing")
        .expect("always failing");
    assert_eq!(f.model.as_deref(), Some("grok-4.1-fast"));
    // The planner → coder ✗ → reviewer sequence is visible per session.
    assert!(
        r.sessions
            .patterns
            .iter()
            .any(|p| p.steps == ["deepseek-v3.2", "grok-4.1-fast ✗", "gemini-2.5-flash"])
    );
    assert_eq!(r.clients[0].name, "RooCode/1.0.4");
    // Overhead and reasoning figures exist.
    assert!(r.overhead_ms.is_some());
    let ds = r.models.iter().find(|m| m.model == "deepseek-v3.2").unwrap();
    assert!((ds.reasoning_share.unwrap() - 2312.0 / 5560.0).abs() < 1e-12);
}

#[test]
#[cfg_attr(
    not(tollgate_corpus),
    ignore = "needs the LiteLLM corpus at ../shared/corpus beside the checkout"
)]
fn cache_on_finds_the_missed_repeats() {
    let dir = corpus("cache-on");
    let r = report(&[dir]);
    assert_eq!(r.cache.state, "on");
    assert!((r.cache.hit_rate.unwrap() - 7.0 / 51.0).abs() < 1e-12);
    // By hand from the fingerprints: gemini prompt 9a67… reached the provider 3× (2 missed),
    // minimax a1ef… 2×, deepseek b1d5… 2×, minimax 51da… 2× → 5 missed repeats, all streams.
    assert_eq!(r.cache.repeat_requests, 5);
    assert_eq!(r.cache.repeats_streamed, 5);
    assert!(r.findings.iter().any(|f| f.id == "cache_repeats_missed"));
    assert!(
        r.findings
            .iter()
            .all(|f| f.id != "cache_disabled" && f.id != "cache_no_hits")
    );
}
