//! `--baseline`: a previous JSON report beside the new one. The figures and the matching of
//! findings checked by hand, every format in both languages as golden files, and a before file
//! that is sparse (read) or not a report at all (refused, naming it).

mod common;

use common::*;
use tollgate_core::{CacheState, PriceTable, Record};
use tollgate_report::baseline::{self, Baseline, Comparison, FindingStatus, Verdict};
use tollgate_report::render::terminal::Style;
use tollgate_report::{Format, Lang, Report, ReportOptions, build_report, render};

const DS: &str = "deepseek/deepseek-v3.2";
const GROK: &str = "xai/grok-4-1-fast-reasoning";
const MINIMAX: &str = "minimax/MiniMax-M2.1";

fn priced(mut r: Record) -> Record {
    r.set_cost(PriceTable::builtin().lookup(&r.model).and_then(|p| p.cost(&r.usage())));
    r
}

/// The week after: the same clock, seven days on.
fn week_later(mut r: Record) -> Record {
    r.start_time += chrono::Duration::days(7);
    r.end_time += chrono::Duration::days(7);
    r
}

/// 12 DeepSeek calls with the cache off, reasoning 240 of 300 completion tokens, four calls
/// with the same prompt, 40 ms of overhead; and a Grok coder failing every time.
fn before_records() -> Vec<Record> {
    let mut rs: Vec<Record> = (0..12)
        .map(|i| {
            let mut r = rec(&format!("before-ds-{i:02}"), "deepseek-v3.2", DS, 3000, 300);
            r.reasoning_tokens = 240;
            r.latency_ms = 2000.0 + 100.0 * i as f64;
            r.overhead_ms = Some(40.0);
            r.cache = CacheState::Off;
            r.prompt_sha256 = Some(if i < 4 { "same".into() } else { format!("{i:064x}") });
            priced(r)
        })
        .collect();
    for i in 0..3 {
        let mut r = failed(
            &format!("before-grok-{i}"),
            "grok-4.1-fast",
            GROK,
            "xai returned HTTP 500: upstream overloaded",
        );
        r.cache = CacheState::Off;
        rs.push(r);
    }
    rs
}

/// After the fixes: the cache on (every fourth call a hit), less reasoning, 8 ms of overhead;
/// the coder moved to MiniMax, which failed once in 11.
fn after_records() -> Vec<Record> {
    let mut rs: Vec<Record> = (0..12)
        .map(|i| {
            let mut r = rec(&format!("after-ds-{i:02}"), "deepseek-v3.2", DS, 3000, 300);
            r.reasoning_tokens = 200;
            r.latency_ms = 1500.0 + 50.0 * i as f64;
            r.overhead_ms = Some(8.0);
            r.prompt_sha256 = Some(format!("{i:064x}"));
            let mut r = priced(r);
            if i % 4 == 0 {
                // Answered from the cache: no provider call, its price saved.
                r.cache = CacheState::Hit;
                r.saved_cost_usd = r.cost_usd;
                r.set_cost(Some(tollgate_core::Cost::default()));
            } else {
                r.cache = CacheState::Miss;
            }
            week_later(r)
        })
        .collect();
    for i in 0..10 {
        let mut r = rec(&format!("after-mm-{i:02}"), "minimax-m2.1", MINIMAX, 800, 400);
        r.latency_ms = 900.0 + 10.0 * i as f64;
        r.overhead_ms = Some(8.0);
        r.prompt_sha256 = Some(format!("mm{i:062x}"));
        rs.push(week_later(priced(r)));
    }
    rs.push(week_later(failed(
        "after-mm-fail",
        "minimax-m2.1",
        MINIMAX,
        "minimax returned HTTP 503: busy",
    )));
    rs
}

fn build(records: Vec<Record>) -> Report {
    build_report(records, &ReportOptions::default())
}

/// The before report as the user kept it: `tollgate report --format json -o before.json`.
fn before_file(lang: Lang) -> Baseline {
    let json = render(&build(before_records()), Format::Json, lang);
    Baseline::parse("before.json", json.as_bytes()).expect("a report's JSON reads back")
}

fn comparison() -> Comparison {
    let after = tollgate_report::render::localized(&build(after_records()), Lang::En);
    Comparison::new(&before_file(Lang::En), &after)
}

fn figure<'a>(c: &'a Comparison, id: &str) -> &'a baseline::Figure {
    c.figures
        .iter()
        .find(|f| f.id == id)
        .unwrap_or_else(|| panic!("no figure {id}"))
}

#[test]
fn figures_match_the_two_reports() {
    let before = build(before_records());
    let after = build(after_records());
    let c = comparison();
    let requests = figure(&c, "requests");
    assert_eq!(
        (requests.change.before, requests.change.after),
        (Some(15.0), Some(23.0))
    );
    assert_eq!(requests.change.change, Some(8.0));
    assert!((requests.change.relative_change.unwrap() - 8.0 / 15.0).abs() < 1e-12);
    assert_eq!(requests.verdict, None, "volume is neither better nor worse");

    let success = figure(&c, "success_rate");
    assert_eq!(success.change.before, before.requests.success_rate);
    assert_eq!(success.change.after, after.requests.success_rate);
    assert_eq!(success.verdict, Some(Verdict::Better));

    let cost = figure(&c, "total_cost_usd");
    assert_eq!(cost.change.before, Some(before.cost.total_usd));
    assert_eq!(cost.change.after, Some(after.cost.total_usd));

    // The cache was off: a hit rate of 0, then 3 hits in 22 successful requests.
    let hits = figure(&c, "cache_hit_rate");
    assert_eq!(hits.change.before, Some(0.0));
    assert_eq!(hits.change.after, after.cache.hit_rate);
    assert_eq!(hits.verdict, Some(Verdict::Better));
    let repeats = figure(&c, "cache_repeats");
    assert_eq!((repeats.change.before, repeats.change.after), (Some(3.0), Some(0.0)));

    // Reasoning over completion tokens of every model: 2880/3600, then 2400/(3600 + 4000).
    let share = figure(&c, "reasoning_share");
    assert!((share.change.before.unwrap() - 2880.0 / 3600.0).abs() < 1e-12);
    assert!((share.change.after.unwrap() - 2400.0 / 7600.0).abs() < 1e-12);
    assert_eq!(share.verdict, Some(Verdict::Better));

    let overhead = figure(&c, "overhead_p50_ms");
    assert_eq!((overhead.change.before, overhead.change.after), (Some(40.0), Some(8.0)));
    assert!((overhead.change.relative_change.unwrap() + 0.8).abs() < 1e-12);
    assert_eq!(overhead.verdict, Some(Verdict::Better));

    // DeepSeek's latency per model: p95 of 2000..3100 by 100 is 3100; of 1500..2050 by 50, 2050.
    let ds = c.models.iter().find(|m| m.model == "deepseek-v3.2").unwrap();
    assert_eq!(
        (ds.latency_p95_ms.before, ds.latency_p95_ms.after),
        (Some(3100.0), Some(2050.0))
    );
    let grok = c.models.iter().find(|m| m.model == "grok-4.1-fast").unwrap();
    assert_eq!((grok.requests.before, grok.requests.after), (Some(3.0), None));
}

#[test]
fn findings_are_matched_by_id_and_model() {
    let c = comparison();
    let got: Vec<(FindingStatus, &str, Option<&str>)> = c
        .findings
        .iter()
        .map(|f| (f.status, f.id.as_str(), f.model.as_deref()))
        .collect();
    assert_eq!(
        got,
        vec![
            (FindingStatus::Fixed, "model_always_failing", Some("grok-4.1-fast")),
            (FindingStatus::Fixed, "cache_disabled", None),
            (FindingStatus::Still, "reasoning_heavy", Some("deepseek-v3.2")),
            (FindingStatus::New, "high_error_rate", Some("minimax-m2.1")),
        ]
    );
    let still = &c.findings[2];
    let (b, a) = (still.before.as_ref().unwrap(), still.after.as_ref().unwrap());
    assert_eq!(b.data["share"], 0.8);
    assert!((a.data["share"].as_f64().unwrap() - 200.0 / 300.0).abs() < 1e-12);
    let figure = figure(&c, "findings");
    assert_eq!((figure.change.before, figure.change.after), (Some(3.0), Some(2.0)));
}

#[test]
fn golden_files() {
    let after = build(after_records());
    for (lang, l) in [(Lang::En, "en"), (Lang::Tr, "tr")] {
        let before = before_file(lang);
        insta::assert_snapshot!(
            format!("baseline_md_{l}"),
            baseline::render(&after, &before, Format::Md, lang)
        );
        let plain = Style {
            width: 100,
            color: false,
        };
        insta::assert_snapshot!(
            format!("baseline_table_{l}"),
            baseline::render_table(&after, &before, lang, plain)
        );
        insta::assert_snapshot!(
            format!("baseline_html_{l}"),
            baseline::render(&after, &before, Format::Html, lang)
        );
        insta::assert_snapshot!(
            format!("baseline_json_{l}"),
            baseline::render(&after, &before, Format::Json, lang)
        );
    }
}

#[test]
fn the_comparison_comes_before_the_first_section() {
    let md = baseline::render(&build(after_records()), &before_file(Lang::En), Format::Md, Lang::En);
    let at = |s: &str| md.find(s).unwrap_or_else(|| panic!("no {s:?} in\n{md}"));
    assert!(at("# LLM gateway log analysis") < at("## Before → after"));
    assert!(at("## Before → after") < at("## 1. Overview"));
    assert!(
        md.contains("| Success rate | 80% | 96% | +15.7 pp (+20%) | better |"),
        "{md}"
    );
}

#[test]
fn the_json_output_is_a_report_that_can_be_the_next_baseline() {
    let json = baseline::render(&build(after_records()), &before_file(Lang::En), Format::Json, Lang::En);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["requests"]["total"], 23);
    assert_eq!(v["comparison"]["baseline"], "before.json");
    assert_eq!(v["comparison"]["figures"][0]["id"], "requests");
    let next = Baseline::parse("after.json", json.as_bytes()).unwrap();
    let again = Comparison::new(&next, &build(after_records()));
    assert!(
        again
            .figures
            .iter()
            .all(|f| f.verdict.is_none() || f.verdict == Some(Verdict::Unchanged)),
        "{:?}",
        again.figures
    );
    assert!(again.findings.iter().all(|f| f.status == FindingStatus::Still));
}

#[test]
fn a_sparse_or_older_report_compares_on_what_it_has() {
    let before = Baseline::parse(
        "old.json",
        br#"{"schema_version": 1, "requests": {"total": 10}, "cost": {}, "findings": [{"id": "cache_disabled"}]}"#,
    )
    .unwrap();
    let c = Comparison::new(&before, &build(after_records()));
    let requests = figure(&c, "requests");
    assert_eq!(
        (requests.change.before, requests.change.change),
        (Some(10.0), Some(13.0))
    );
    let cost = figure(&c, "total_cost_usd");
    assert_eq!(
        (cost.change.before, cost.change.change, cost.verdict),
        (None, None, None)
    );
    assert_eq!(c.count(FindingStatus::Fixed), 1);
    let md = baseline::render(&build(after_records()), &before, Format::Md, Lang::En);
    assert!(md.contains("| Total cost | n/a | $"), "{md}");
}

#[test]
fn a_file_that_is_not_a_report_is_refused_naming_it() {
    for (name, bytes) in [
        (
            "records.jsonl",
            &b"{\"request_id\": \"a\"}\n{\"request_id\": \"b\"}\n"[..],
        ),
        ("record.json", &b"{\"request_id\": \"a\", \"model\": \"x\"}"[..]),
        ("list.json", &b"[1, 2, 3]"[..]),
        ("notes.txt", &b"hello"[..]),
        (
            "wrong.json",
            &br#"{"schema_version": 1, "requests": {"total": "many"}}"#[..],
        ),
    ] {
        let err = Baseline::parse(name, bytes).unwrap_err().to_string();
        assert!(
            err.contains(name) && err.contains("not a tollgate JSON report") && err.contains("--format json"),
            "{name}: {err}"
        );
    }
    let missing = std::path::Path::new("/nonexistent/before.json");
    let err = Baseline::read(missing).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/before.json"), "{err}");
}
