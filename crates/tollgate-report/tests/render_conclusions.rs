//! Golden files (every format, both languages) for the report's newer sections, on a log written
//! by the real LiteLLM proxy read with a config: the inferred cache-off, the model logged as free,
//! the workflow step that never ran, cache writes beside cache reads, and the over-time view.
//! Plus the checks that need no snapshot.

mod common;

use chrono::{Duration, TimeZone, Utc};
use common::*;
use tollgate_core::{PriceTable, Record};
use tollgate_report::{Format, Lang, Report, ReportOptions, build_report, render};

const SONNET: &str = "anthropic/claude-sonnet-4-5";

/// Claude requests that wrote 4,000 prompt tokens to Anthropic's prompt cache and read 6,000.
fn claude_with_cache_writes(n: usize) -> Vec<Record> {
    let table = PriceTable::builtin();
    (0..n)
        .map(|i| {
            let mut r = rec(&format!("claude-{i}"), "claude-sonnet", SONNET, 12_000, 400);
            r.cache_creation_tokens = 4_000;
            r.cached_tokens = 6_000;
            r.cached_tokens_reported = true;
            // As LiteLLM's payload logs: the response cache's state is not recorded.
            r.cache = tollgate_core::CacheState::Unknown;
            // In the same minute as the LiteLLM fixture's requests.
            r.start_time = Utc.with_ymd_and_hms(2026, 12, 6, 21, 11, 30).single().expect("time");
            r.end_time = r.start_time + Duration::milliseconds(r.latency_ms as i64);
            r.set_cost(table.lookup(SONNET).and_then(|p| p.cost(&r.usage())));
            r
        })
        .collect()
}

fn options() -> ReportOptions {
    options_with_cfx_config()
}

fn conclusions_report() -> Report {
    let opts = options();
    let (mut records, summaries) = import_priced(&[fixture("litellm_cache_off_payload.jsonl")], &opts.prices);
    records.extend(claude_with_cache_writes(3));
    let mut r = build_report(records, &opts);
    r.inputs = summaries;
    for s in &mut r.inputs {
        s.input = "litellm_cache_off_payload.jsonl".into();
    }
    r
}

#[test]
fn golden_files() {
    let r = conclusions_report();
    let ids: Vec<&str> = r.findings.iter().map(|f| f.id.as_str()).collect();
    for id in ["cache_disabled", "unpriced_model", "workflow_step_missing"] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    for (lang, l) in [(Lang::En, "en"), (Lang::Tr, "tr")] {
        insta::assert_snapshot!(format!("conclusions_md_{l}"), render(&r, Format::Md, lang));
        let plain = tollgate_report::render::terminal::Style {
            width: 120,
            color: false,
        };
        insta::assert_snapshot!(
            format!("conclusions_table_{l}"),
            tollgate_report::render::render_table(&r, lang, plain)
        );
        insta::assert_snapshot!(format!("conclusions_html_{l}"), render(&r, Format::Html, lang));
    }
    insta::assert_snapshot!("conclusions_json", render(&r, Format::Json, Lang::En));
}

#[test]
fn cache_writes_are_priced_and_shown_beside_cache_reads_in_every_format() {
    let r = build_report(claude_with_cache_writes(3), &ReportOptions::default());
    let m = &r.models[0];
    assert_eq!(m.cache_creation_tokens, 12_000);
    assert_eq!(m.cached_tokens, 18_000);
    // Anthropic's rates: writes $3.75 / 1M (1.25 × input), reads $0.30 / 1M.
    assert!(
        (m.cache_write_cost_usd - 12_000.0 * 3.75e-6).abs() < 1e-12,
        "{}",
        m.cache_write_cost_usd
    );
    assert!(
        (m.cache_read_cost_usd - 18_000.0 * 3e-7).abs() < 1e-12,
        "{}",
        m.cache_read_cost_usd
    );
    for (format, lang, words, figures) in [
        (
            Format::Md,
            Lang::En,
            ["Cache writes", "Write cost"],
            ["12,000", "$0.0450"],
        ),
        (
            Format::Html,
            Lang::En,
            ["Cache writes", "Write cost"],
            ["12,000", "$0.0450"],
        ),
        (
            Format::Md,
            Lang::Tr,
            ["Cache yazma", "Yazma maliyeti"],
            ["12.000", "$0,0450"],
        ),
    ] {
        let text = render(&r, format, lang);
        for w in words.iter().chain(figures.iter()) {
            assert!(text.contains(w), "{format:?} {lang:?}: no {w:?}");
        }
    }
    let plain = tollgate_report::render::terminal::Style {
        width: 160,
        color: false,
    };
    let table = tollgate_report::render::render_table(&r, Lang::En, plain);
    assert!(table.contains("Cache writes") && table.contains("$0.0450"), "{table}");
    let json: serde_json::Value = serde_json::from_str(&render(&r, Format::Json, Lang::En)).expect("json");
    assert_eq!(json["models"][0]["cache_creation_tokens"], 12_000);
    assert!((json["models"][0]["cache_write_cost_usd"].as_f64().expect("number") - 0.045).abs() < 1e-12);
}

/// Requests spread over `span`, one every `step`, every fifth failing.
fn spread(span: Duration, step: Duration) -> Vec<Record> {
    let start = Utc.with_ymd_and_hms(2026, 3, 1, 9, 30, 0).single().expect("time");
    let mut out = Vec::new();
    let mut t = start;
    let mut i = 0;
    while t < start + span {
        let mut r = if i % 5 == 4 {
            failed(
                &format!("f-{i}"),
                "deepseek-v3.2",
                "deepseek/deepseek-v3.2",
                "upstream 500",
            )
        } else {
            rec(&format!("r-{i}"), "deepseek-v3.2", "deepseek/deepseek-v3.2", 1000, 100)
        };
        r.start_time = t;
        r.latency_ms = 100.0 + (i % 7) as f64 * 10.0;
        r.end_time = t + Duration::milliseconds(r.latency_ms as i64);
        out.push(r);
        t += step;
        i += 1;
    }
    out
}

#[test]
fn the_over_time_view_is_per_hour_for_a_day_and_per_day_for_a_month() {
    let day = build_report(
        spread(Duration::hours(20), Duration::minutes(10)),
        &ReportOptions::default(),
    );
    assert_eq!(day.timeline.bucket_ms, 3_600_000);
    assert_eq!(day.timeline.points.len(), 21, "09:00 … 05:00 the next day");
    assert_eq!(day.timeline.points[0].start.format("%H:%M").to_string(), "09:00");
    let total: u64 = day.timeline.points.iter().map(|p| p.requests).sum();
    assert_eq!(total, day.requests.total);
    let failed: u64 = day.timeline.points.iter().map(|p| p.failed).sum();
    assert_eq!(failed, day.requests.failed);
    let cost: f64 = day.timeline.points.iter().map(|p| p.cost_usd).sum();
    assert!((cost - day.cost.total_usd).abs() < 1e-12);
    // 10:00–10:59 holds requests 3..=8: latencies 130, 140, 150, 160 (r-4 failed: not counted)
    // and 100 (r-7), 110 (r-8).
    let ten = &day.timeline.points[1];
    assert_eq!((ten.requests, ten.failed), (6, 1));
    assert_eq!(ten.latency_p50_ms, Some(130.0));
    assert_eq!(ten.latency_p95_ms, Some(160.0));

    // A quiet hour is a row of its own, so gaps in the traffic show.
    let mut gap = spread(Duration::hours(2), Duration::minutes(20));
    gap.extend(
        spread(Duration::hours(2), Duration::minutes(20))
            .into_iter()
            .map(|mut r| {
                r.request_id.push_str("-later");
                r.start_time += Duration::hours(14);
                r
            }),
    );
    let gap = build_report(gap, &ReportOptions::default());
    assert_eq!(gap.timeline.bucket_ms, 3_600_000);
    let per_hour: Vec<u64> = gap.timeline.points.iter().map(|p| p.requests).collect();
    let mut expected = vec![2, 3, 1];
    expected.extend([0; 11]);
    expected.extend([2, 3, 1]);
    assert_eq!(per_hour, expected, "09:00 … 01:00, quiet from 12:00 to 22:00");
    // Beyond 48 days, weeks.
    let year = build_report(
        spread(Duration::days(300), Duration::days(1)),
        &ReportOptions::default(),
    );
    assert_eq!(year.timeline.bucket_ms, 604_800_000);
    assert!(year.timeline.points.len() <= 44, "{}", year.timeline.points.len());

    let month = build_report(
        spread(Duration::days(40), Duration::hours(6)),
        &ReportOptions::default(),
    );
    assert_eq!(month.timeline.bucket_ms, 86_400_000);
    // The last request is at 03:30 on the 41st calendar day.
    assert_eq!(month.timeline.points.len(), 41);

    let md = render(&day, Format::Md, Lang::En);
    assert!(md.contains("### Over time (per hour, UTC)"), "{md}");
    assert!(md.contains("| 2026-03-01 10:00 | 6 | 1 | 17% |"), "{md}");
    let tr = render(&month, Format::Md, Lang::Tr);
    assert!(tr.contains("### Zaman içinde (her gün, UTC)"));
    assert!(tr.contains("| 2026-03-02 | 4 | 1 | %25 |"), "{tr}");
    // The HTML report draws requests and errors, cost and latency, inline, with nothing fetched.
    let html = render(&day, Format::Html, Lang::En);
    for caption in [
        "Requests and errors over time (per hour)",
        "Cost over time (per hour)",
        "Latency over time (per hour)",
    ] {
        assert!(html.contains(caption), "no {caption}");
    }
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("<script"));
}
