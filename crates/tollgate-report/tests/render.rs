//! Every format in both languages, as golden files (insta snapshots), plus the checks that do
//! not need a snapshot: HTML is self-contained, numbers follow the locale, figures match hand
//! computation.

mod common;

use common::*;
use tollgate_report::{Format, Lang, Report, render};

/// payload.jsonl: gemini 836a (8242/105, $0.00271782), its cache hit 145f, a deepseek stream 6b62
/// (1210/121, $0.0003872), a failed grok call ee20, a minimax call 001d (283/223, $0.0003525).
fn fixture_report() -> Report {
    report(&[fixture("payload.jsonl")])
}

/// The fixture plus two more failures of the grok coder, so one finding fires.
fn report_with_findings() -> Report {
    let (mut records, summaries) = import(&[fixture("payload.jsonl")]);
    let fail = records
        .iter()
        .find(|r| r.request_id.starts_with("ee206161"))
        .unwrap()
        .clone();
    for i in 0..2 {
        let mut f = fail.clone();
        f.request_id = format!("grok-fail-{i}");
        records.push(f);
    }
    let mut r = tollgate_report::build_report(records, &tollgate_report::ReportOptions::default());
    r.inputs = summaries;
    for s in &mut r.inputs {
        s.input = "payload.jsonl".into();
    }
    r
}

#[test]
fn figures_match_hand_computation() {
    let r = fixture_report();
    assert_eq!((r.requests.total, r.requests.succeeded, r.requests.failed), (5, 4, 1));
    assert_eq!(r.requests.success_rate, Some(0.8));
    assert!((r.cost.total_usd - (0.00271782 + 0.0003872 + 0.0003525)).abs() < 1e-12);
    assert_eq!(r.cache.state, "on", "a hit proves the cache is on");
    assert_eq!(r.cache.hit_rate, Some(0.25));
    assert!((r.cache.saved_usd - 0.00271782).abs() < 1e-12);
    assert_eq!(r.cache.repeat_requests, 0, "the repeat was a hit");
    let g = r.models.iter().find(|m| m.model == "gemini-2.5-flash").unwrap();
    assert_eq!(
        (g.requests, g.cache_hits, g.prompt_tokens, g.completion_tokens),
        (2, 1, 16484, 210)
    );
    // Provider cache share counts only the call that reached the provider: 64 / 8242.
    assert!((g.provider_cache.share.unwrap() - 64.0 / 8242.0).abs() < 1e-12);
    assert_eq!(g.cost_share, Some(0.00271782 / (0.00271782 + 0.0003872 + 0.0003525)));
    // Latency of the one provider call (the hit is excluded): 124.204 ms.
    let l = g.latency_ms.unwrap();
    assert_eq!(l.count, 1);
    assert!((l.p50 - 124.204).abs() < 0.001);
    let grok = r.models.iter().find(|m| m.model == "grok-4.1-fast").unwrap();
    assert!(grok.latency_ms.is_none());
    // Overhead over the 4 records that report it: 486.975, 13.2267…, 554.2963 (+ none for the
    // stream, none for the failure).
    let o = r.overhead_ms.as_ref().unwrap();
    assert_eq!(o.samples, 3);
    assert!((o.max - 554.2963).abs() < 1e-9);
    // Prompt buckets: 283 small; 1210 medium; 8242 ×2 large.
    let b: Vec<u64> = r.tokens.prompt.buckets.iter().map(|b| b.requests).collect();
    assert_eq!(b, vec![1, 1, 2]);
    assert_eq!(r.tokens.prompt.p50, Some(1210.0));
}

#[test]
fn json_uses_the_contract_names() {
    let v: serde_json::Value = serde_json::from_str(&render(&report_with_findings(), Format::Json, Lang::En)).unwrap();
    for k in [
        "period",
        "requests",
        "cost",
        "models",
        "cache",
        "overhead_ms",
        "workflows",
        "findings",
    ] {
        assert!(v.get(k).is_some(), "{k}");
    }
    for k in ["start", "end"] {
        assert!(v["period"].get(k).is_some());
    }
    for k in ["total", "succeeded", "failed", "success_rate"] {
        assert!(v["requests"].get(k).is_some());
    }
    assert!(v["cost"]["total_usd"].is_number());
    let m = &v["models"][0];
    for k in [
        "model",
        "requests",
        "failed",
        "prompt_tokens",
        "completion_tokens",
        "reasoning_tokens",
        "cached_tokens",
        "cost_usd",
        "latency_ms",
    ] {
        assert!(m.get(k).is_some(), "models[].{k}");
    }
    for k in ["min", "avg", "p50", "p95", "p99", "max"] {
        assert!(m["latency_ms"].get(k).is_some(), "latency_ms.{k}");
    }
    for k in [
        "enabled",
        "hits",
        "hit_rate",
        "saved_usd",
        "repeat_requests",
        "potential_savings_usd",
    ] {
        assert!(v["cache"].get(k).is_some(), "cache.{k}");
    }
    for k in ["avg", "p95", "max"] {
        assert!(v["overhead_ms"].get(k).is_some());
    }
    let f = &v["findings"][0];
    for k in [
        "id",
        "severity",
        "model",
        "message",
        "evidence",
        "cause",
        "fix",
        "savings_usd",
    ] {
        assert!(f.get(k).is_some(), "findings[].{k}");
    }
}

#[test]
fn html_is_self_contained() {
    for lang in [Lang::En, Lang::Tr] {
        let html = render(&fixture_report(), Format::Html, lang);
        let lower = html.to_ascii_lowercase();
        assert!(lower.starts_with("<!doctype html>"));
        assert!(
            !lower.contains("http://") && !lower.contains("https://"),
            "no network references"
        );
        assert!(
            !lower.contains("<script")
                && !lower.contains("<link")
                && !lower.contains("@import")
                && !lower.contains("url(")
        );
        // The fixture's requests fall in one minute: no over-time charts, only its table row.
        assert_eq!(lower.matches("<svg").count(), 3, "cost, latency and tokens charts");
        // Well-formed enough: every opened element we emit is closed.
        for tag in ["html", "head", "body", "main", "table", "svg", "figure", "ul", "style"] {
            assert_eq!(
                lower.matches(&format!("<{tag}")).count(),
                lower.matches(&format!("</{tag}>")).count(),
                "{tag}"
            );
        }
        assert!(lower.contains(&format!(
            "<html lang=\"{}\">",
            if lang == Lang::En { "en" } else { "tr" }
        )));
    }
}

#[test]
fn turkish_numbers_and_headings() {
    let md = render(&fixture_report(), Format::Md, Lang::Tr);
    assert!(md.contains("## 2. Önbellek (Cache) Durumu"));
    assert!(md.contains("Başarı oranı: %80 (4 / 5)"));
    assert!(md.contains("16.484"), "Turkish thousands separator");
    assert!(md.contains("$0,003458"), "Turkish decimal comma: 0.00345752 rounded");
    let en = render(&fixture_report(), Format::Md, Lang::En);
    assert!(en.contains("Success rate: 80% (4 / 5)"));
    assert!(en.contains("16,484"));
}

#[test]
fn golden_files() {
    let r = report_with_findings();
    assert_eq!(r.findings.len(), 1);
    for (lang, l) in [(Lang::En, "en"), (Lang::Tr, "tr")] {
        insta::assert_snapshot!(format!("fixture_md_{l}"), render(&r, Format::Md, lang));
        let plain = tollgate_report::render::terminal::Style {
            width: 100,
            color: false,
        };
        insta::assert_snapshot!(
            format!("fixture_table_{l}"),
            tollgate_report::render::render_table(&r, lang, plain)
        );
        insta::assert_snapshot!(format!("fixture_html_{l}"), render(&r, Format::Html, lang));
    }
    insta::assert_snapshot!("fixture_json", render(&r, Format::Json, Lang::En));
}

#[test]
#[cfg_attr(
    not(tollgate_corpus),
    ignore = "needs the LiteLLM corpus at ../shared/corpus beside the checkout"
)]
fn golden_seedlike_corpus() {
    let dir = corpus("seedlike-cache-off");
    let r = report(&[dir]);
    insta::assert_snapshot!("seedlike_md_tr", render(&r, Format::Md, Lang::Tr));
    insta::assert_snapshot!("seedlike_md_en", render(&r, Format::Md, Lang::En));
}

#[test]
fn narrow_terminal_tables_fit() {
    let narrow = tollgate_report::render::terminal::Style {
        width: 60,
        color: false,
    };
    let text = tollgate_report::render::render_table(&report_with_findings(), Lang::En, narrow);
    for line in text.lines() {
        assert!(line.chars().count() <= 60, "{line}");
    }
    assert!(!text.contains('\x1b'), "no colour when disabled");
}

/// Traffic per endpoint and client: Claude Code on the Messages API, Codex on the Responses API,
/// an SDK on chat, most expensive first, in every format.
#[test]
fn traffic_is_broken_down_by_endpoint_and_client() {
    let mut records = Vec::new();
    for (i, (endpoint, ua, prompt)) in [
        ("messages", "claude-cli/2.0.14 (external, cli)", 9000),
        ("messages", "claude-cli/2.0.14 (external, cli)", 9000),
        ("responses", "codex_cli_rs/0.46.0 (Ubuntu 24.4.0; x86_64) xterm", 4000),
        ("chat", "OpenAI/Python 2.54.0", 100),
    ]
    .into_iter()
    .enumerate()
    {
        let mut r = rec(&format!("r{i}"), "deepseek-v3.2", "deepseek/deepseek-v3.2", prompt, 100);
        r.endpoint = Some(endpoint.into());
        r.user_agent = Some(ua.into());
        records.push(r);
    }
    let r = tollgate_report::build_report(records, &tollgate_report::ReportOptions::default());
    let rows: Vec<(&str, &str, u64)> = r
        .endpoints
        .iter()
        .map(|e| (e.endpoint.as_str(), e.client.as_str(), e.requests))
        .collect();
    assert_eq!(
        rows,
        [
            ("messages", "claude-cli", 2),
            ("responses", "codex_cli_rs", 1),
            ("chat", "OpenAI", 1)
        ]
    );
    let md = render(&r, Format::Md, Lang::En);
    assert!(
        md.contains("- Traffic by endpoint and client: `messages` · claude-cli (2, $"),
        "{md}"
    );
    let tr = render(&r, Format::Md, Lang::Tr);
    assert!(
        tr.contains("Uç nokta ve istemciye göre trafik: `messages` · claude-cli (2, $"),
        "{tr}"
    );
    let json: serde_json::Value = serde_json::from_str(&render(&r, Format::Json, Lang::En)).unwrap();
    assert_eq!(json["endpoints"][1]["client"], "codex_cli_rs");
    assert!(render(&r, Format::Html, Lang::En).contains("<code>responses</code> · codex_cli_rs (1, $"));
}
