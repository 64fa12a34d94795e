//! Virtual keys in the report: spend by key, user and team (from the records' `key_alias`,
//! `key_hash`, `user_id`, `team_id`, tollgate's or LiteLLM's), and `budget_near_limit` (from the
//! store's `tollgate_keys`, read beside the records).

mod common;

use chrono::TimeZone;
use common::*;
use tollgate_core::{PriceTable, Record};
use tollgate_report::import::keys::KeyBudget;
use tollgate_report::{Format, Lang, Report, ReportOptions, Severity, build_report, render};

const DS: &str = "deepseek/deepseek-v3.2";
const GEMINI: &str = "gemini/gemini-2.5-flash";
const CI_HASH: &str = "3f2a9c0d1e2b4a5c";
const BOB_HASH: &str = "9b8c7d6e5f4a3b2c";

/// A record made with a key.
fn keyed(mut r: Record, alias: Option<&str>, hash: Option<&str>, user: Option<&str>, team: Option<&str>) -> Record {
    r.key_alias = alias.map(str::to_string);
    r.key_hash = hash.map(str::to_string);
    r.user_id = user.map(str::to_string);
    r.team_id = team.map(str::to_string);
    r
}

fn ci(r: Record) -> Record {
    keyed(r, Some("ci-bot"), Some(CI_HASH), Some("alice"), Some("platform"))
}

fn bob(r: Record) -> Record {
    keyed(r, Some("sk-...wxyz"), Some(BOB_HASH), Some("bob"), Some("platform"))
}

fn master(r: Record) -> Record {
    keyed(r, Some("master_key"), None, None, None)
}

/// Re-prices a record after its token counts were changed.
fn priced(mut r: Record) -> Record {
    let cost = PriceTable::builtin().lookup(&r.model).and_then(|p| p.cost(&r.usage()));
    r.set_cost(cost);
    r
}

/// ci-bot (alice, platform): three DeepSeek calls (one reading 600 tokens from the provider's
/// cache and reasoning 40) and a failure; bob's key without an alias: two Gemini calls and one
/// of a model without a price; the master key: one call; one call without any key.
fn traffic() -> Vec<Record> {
    let mut cached = rec("ci-cached", "deepseek-v3.2", DS, 1000, 200);
    cached.cached_tokens = 600;
    cached.reasoning_tokens = 40;
    let mut unpriced = rec("bob-unpriced", "mystery", "mystery/model-x", 500, 50);
    unpriced.set_cost(None);
    vec![
        ci(rec("ci-1", "deepseek-v3.2", DS, 2000, 300)),
        ci(rec("ci-2", "deepseek-v3.2", DS, 3000, 400)),
        ci(priced(cached)),
        ci(failed("ci-fail", "deepseek-v3.2", DS, "upstream 500")),
        bob(rec("bob-1", "gemini-2.5-flash", GEMINI, 8000, 900)),
        bob(rec("bob-2", "gemini-2.5-flash", GEMINI, 4000, 100)),
        bob(unpriced),
        master(rec("admin-1", "deepseek-v3.2", DS, 100, 10)),
        rec("anonymous-1", "deepseek-v3.2", DS, 100, 10),
    ]
}

fn cost(id: &str, rs: &[Record]) -> f64 {
    rs.iter().find(|r| r.request_id == id).and_then(|r| r.cost_usd).unwrap()
}

#[test]
fn spend_by_key_user_and_team_adds_up() {
    let rs = traffic();
    let r = build_report(rs.clone(), &ReportOptions::default());
    // Most expensive first: bob's Gemini calls cost more than ci-bot's DeepSeek ones.
    let names: Vec<(Option<&str>, Option<&str>)> = r
        .keys
        .iter()
        .map(|k| (k.key_alias.as_deref(), k.key_hash.as_deref()))
        .collect();
    assert_eq!(
        names,
        vec![
            (Some("sk-...wxyz"), Some(BOB_HASH)),
            (Some("ci-bot"), Some(CI_HASH)),
            (Some("master_key"), None),
        ],
        "the call without a key is no key's"
    );
    let k = &r.keys[1].spend;
    assert_eq!((k.requests, k.failed), (4, 1));
    // Disjoint buckets: 2000 + 3000 + (1000 − 600) uncached input, 600 read; 300 + 400 + 160
    // visible output, 40 reasoning.
    assert_eq!(
        (
            k.input_tokens,
            k.cache_read_tokens,
            k.cache_write_tokens,
            k.output_tokens,
            k.reasoning_tokens
        ),
        (5400, 600, 0, 860, 40)
    );
    let ci_cost = cost("ci-1", &rs) + cost("ci-2", &rs) + cost("ci-cached", &rs);
    assert!((k.cost_usd - ci_cost).abs() < 1e-12, "{} vs {ci_cost}", k.cost_usd);
    assert_eq!(k.unpriced_requests, 0);
    assert_eq!(k.top_models.len(), 1);
    assert_eq!(
        (k.top_models[0].model.as_str(), k.top_models[0].requests),
        ("deepseek-v3.2", 4)
    );

    let b = &r.keys[0].spend;
    assert_eq!(
        (b.requests, b.unpriced_requests),
        (3, 1),
        "the unpriced call is flagged"
    );
    assert!((b.cost_usd - cost("bob-1", &rs) - cost("bob-2", &rs)).abs() < 1e-12);
    let models: Vec<&str> = b.top_models.iter().map(|m| m.model.as_str()).collect();
    assert_eq!(models, vec!["gemini-2.5-flash", "mystery"]);

    let users: Vec<&str> = r.users.iter().map(|u| u.user_id.as_str()).collect();
    assert_eq!(users, vec!["bob", "alice"], "the master key has no user");
    assert_eq!(r.users[1].spend.requests, 4);
    assert_eq!(r.teams.len(), 1);
    let t = &r.teams[0];
    assert_eq!(
        (t.team_id.as_str(), t.spend.requests, t.spend.failed),
        ("platform", 7, 1)
    );
    assert!((t.spend.cost_usd - r.keys[0].spend.cost_usd - r.keys[1].spend.cost_usd).abs() < 1e-12);
    // Every key's cost (and the keyless call's) makes the report's total.
    let keyless = cost("anonymous-1", &rs);
    let sum: f64 = r.keys.iter().map(|k| k.spend.cost_usd).sum::<f64>() + keyless;
    assert!((sum - r.cost.total_usd).abs() < 1e-12);
}

#[test]
fn spend_skips_rollups_duplicates_and_filtered_records() {
    let mut rs = traffic();
    let mut run = ci(rec("ci-run", "cf-x", DS, 9000, 900));
    run.rollup = true;
    rs.push(run);
    rs.push(ci(rec("ci-1", "deepseek-v3.2", DS, 2000, 300)));
    let r = build_report(rs, &ReportOptions::default());
    let k = r
        .keys
        .iter()
        .find(|k| k.key_alias.as_deref() == Some("ci-bot"))
        .unwrap();
    assert_eq!(
        k.spend.requests, 4,
        "a workflow run's own record and a duplicate are not calls"
    );
    let only_gemini = ReportOptions {
        models: vec!["gemini-2.5-flash".into()],
        ..ReportOptions::default()
    };
    let r = build_report(traffic(), &only_gemini);
    let names: Vec<&str> = r.keys.iter().filter_map(|k| k.key_alias.as_deref()).collect();
    assert_eq!(names, vec!["sk-...wxyz"]);
}

#[test]
fn master_key_only_traffic_has_no_key_sections() {
    let rs: Vec<Record> = traffic().into_iter().map(master).collect();
    let r = build_report(rs.clone(), &ReportOptions::default());
    assert!(r.keys.is_empty() && r.users.is_empty() && r.teams.is_empty());
    // Nor does traffic without keys.
    let plain: Vec<Record> = rs.into_iter().map(|r| keyed(r, None, None, None, None)).collect();
    let without = build_report(plain, &ReportOptions::default());
    assert!(without.keys.is_empty());
    // Both look the same in every format: no new section, no new JSON field.
    for format in [Format::Md, Format::Json, Format::Html] {
        assert_eq!(render(&r, format, Lang::En), render(&without, format, Lang::En));
    }
    let json: serde_json::Value = serde_json::from_str(&render(&r, Format::Json, Lang::En)).unwrap();
    for k in ["keys", "users", "teams"] {
        assert!(json.get(k).is_none(), "{k}");
    }
}

#[test]
fn one_virtual_key_is_shown() {
    let rs: Vec<Record> = traffic().into_iter().map(ci).collect();
    let r = build_report(rs, &ReportOptions::default());
    assert_eq!(r.keys.len(), 1);
    assert_eq!(r.keys[0].spend.requests, 9);
    assert!(render(&r, Format::Md, Lang::En).contains("### Spend by key"));
}

#[test]
fn a_key_is_its_hash_whatever_its_alias_was() {
    let mut first = ci(rec("a", "deepseek-v3.2", DS, 100, 10));
    first.key_alias = Some("old-name".into());
    let mut later = ci(rec("bbbbbb", "deepseek-v3.2", DS, 100, 10));
    later.key_alias = Some("new-name".into());
    // LiteLLM logs a key without an alias by its hash alone.
    let hash_only = keyed(rec("c", "deepseek-v3.2", DS, 100, 10), None, Some(BOB_HASH), None, None);
    let r = build_report(vec![later, first, hash_only], &ReportOptions::default());
    assert_eq!(r.keys.len(), 2);
    let ci = r.keys.iter().find(|k| k.key_hash.as_deref() == Some(CI_HASH)).unwrap();
    assert_eq!(ci.key_alias.as_deref(), Some("new-name"), "the alias last seen");
    assert_eq!(ci.spend.requests, 2);
    let other = r.keys.iter().find(|k| k.key_hash.as_deref() == Some(BOB_HASH)).unwrap();
    assert_eq!(other.key_alias, None);
    assert!(render(&r, Format::Md, Lang::En).contains("no alias (`9b8c7d6e5f4a3b2c`)"));
}

/// ci-bot at 92% of its max_budget in a 30-day period; bob's key past its soft budget; a key
/// far from its budget; a key without one is never read (see `import::keys`).
fn budgets() -> Vec<KeyBudget> {
    vec![
        KeyBudget {
            key_alias: Some("ci-bot".into()),
            key_name: "sk-...abcd".into(),
            spend: 9.2,
            max_budget: Some(10.0),
            soft_budget: None,
            budget_duration: Some("30d".into()),
            budget_window: Some(chrono::Utc.with_ymd_and_hms(2025, 12, 17, 0, 0, 0).unwrap()),
        },
        KeyBudget {
            key_alias: None,
            key_name: "sk-...wxyz".into(),
            spend: 6.0,
            max_budget: Some(50.0),
            soft_budget: Some(5.0),
            budget_duration: None,
            budget_window: None,
        },
        KeyBudget {
            key_alias: Some("quiet".into()),
            key_name: "sk-...qqqq".into(),
            spend: 1.0,
            max_budget: Some(100.0),
            soft_budget: Some(50.0),
            budget_duration: None,
            budget_window: None,
        },
    ]
}

fn with_budgets(budgets: Vec<KeyBudget>) -> ReportOptions {
    ReportOptions {
        key_budgets: budgets,
        ..ReportOptions::default()
    }
}

fn budget_findings(r: &Report) -> Vec<&tollgate_report::Finding> {
    r.findings.iter().filter(|f| f.id == "budget_near_limit").collect()
}

#[test]
fn budget_near_limit_fires_at_80_percent_and_past_a_soft_budget() {
    let r = build_report(traffic(), &with_budgets(budgets()));
    let found = budget_findings(&r);
    assert_eq!(found.len(), 2, "the quiet key is far from its budget");
    let f = found[0];
    assert_eq!(f.severity, Severity::Warning);
    assert_eq!(f.model, None);
    assert_eq!(f.message, "Key ci-bot is near its budget");
    assert_eq!(
        f.evidence,
        "The key store records $9.2000 spent in the budget period that started 2025-12-17 00:00 UTC (budget_duration 30d): 92% of max_budget $10.0000. At max_budget the gateway refuses the key's requests with 429 budget_exceeded."
    );
    assert!(f.fix.contains("POST /key/update") && f.fix.contains("max_budget") && f.fix.contains("budget_duration"));
    let v = serde_json::to_value(&f.data).unwrap();
    assert_eq!(v["kind"], "budget_near_limit");
    assert_eq!(v["key"], "ci-bot");
    assert_eq!(v["limit"], "max_budget");
    assert_eq!(v["spend_usd"], 9.2);
    assert_eq!(v["budget_usd"], 10.0);
    assert!((v["share"].as_f64().unwrap() - 0.92).abs() < 1e-12);
    assert_eq!(v["period_start"], "2025-12-17T00:00:00Z");

    let s = found[1];
    assert_eq!(s.severity, Severity::Info);
    assert_eq!(
        s.message, "Key sk-...wxyz is past its soft budget",
        "named by key_name without an alias"
    );
    assert!(s.evidence.contains("120% of soft_budget $5.0000") && s.evidence.contains("max_budget is $50.0000 (12%)"));
    assert!(s.evidence.contains("no budget_duration"));
    // Warnings come before information among all findings.
    let severities: Vec<Severity> = r.findings.iter().map(|f| f.severity).collect();
    let mut sorted = severities.clone();
    sorted.sort();
    assert_eq!(severities, sorted);
}

#[test]
fn budget_thresholds() {
    let one = |spend: f64, max: Option<f64>, soft: Option<f64>| {
        let b = KeyBudget {
            key_alias: Some("k".into()),
            key_name: "sk-...kkkk".into(),
            spend,
            max_budget: max,
            soft_budget: soft,
            ..KeyBudget::default()
        };
        let r = build_report(vec![], &with_budgets(vec![b]));
        budget_findings(&r).first().map(|f| (f.severity, f.message.clone()))
    };
    assert_eq!(one(7.99, Some(10.0), None), None);
    assert_eq!(
        one(8.0, Some(10.0), None),
        Some((Severity::Warning, "Key k is near its budget".into()))
    );
    assert_eq!(
        one(10.5, Some(10.0), None),
        Some((Severity::Warning, "Key k has used up its budget".into()))
    );
    // Near max_budget and past soft_budget: one finding, the warning.
    assert_eq!(one(9.0, Some(10.0), Some(5.0)).map(|f| f.0), Some(Severity::Warning));
    assert_eq!(one(4.99, Some(100.0), Some(5.0)), None);
    assert_eq!(one(5.0, None, Some(5.0)).map(|f| f.0), Some(Severity::Info));
    // A zero budget is no limit to be near.
    assert_eq!(one(0.0, Some(0.0), Some(0.0)), None);
    assert_eq!(one(3.0, None, None), None);
}

#[test]
fn budget_findings_speak_turkish() {
    let opts = ReportOptions {
        lang: Lang::Tr,
        ..with_budgets(budgets())
    };
    let r = build_report(vec![], &opts);
    let found = budget_findings(&r);
    assert_eq!(found[0].message, "ci-bot anahtarı bütçesinin sınırına yaklaştı");
    assert!(found[0].evidence.contains("$9,2000") && found[0].evidence.contains("(%92)"));
    assert_eq!(found[1].message, "sk-...wxyz anahtarı soft_budget sınırını geçti");
    let mut en = found[0].clone();
    en.localize(Lang::En);
    assert_eq!(en.message, "Key ci-bot is near its budget");
}

/// The report of [`traffic`] with [`budgets`], as the renderers see it.
fn keys_report() -> Report {
    build_report(traffic(), &with_budgets(budgets()))
}

#[test]
fn golden_files() {
    let r = keys_report();
    for (lang, l) in [(Lang::En, "en"), (Lang::Tr, "tr")] {
        insta::assert_snapshot!(format!("keys_md_{l}"), render(&r, Format::Md, lang));
        let plain = tollgate_report::render::terminal::Style {
            width: 100,
            color: false,
        };
        insta::assert_snapshot!(
            format!("keys_table_{l}"),
            tollgate_report::render::render_table(&r, lang, plain)
        );
        insta::assert_snapshot!(format!("keys_html_{l}"), render(&r, Format::Html, lang));
    }
    insta::assert_snapshot!("keys_json", render(&r, Format::Json, Lang::En));
}

#[test]
fn narrow_terminal_tables_fit() {
    let narrow = tollgate_report::render::terminal::Style {
        width: 60,
        color: false,
    };
    for lang in [Lang::En, Lang::Tr] {
        let text = tollgate_report::render::render_table(&keys_report(), lang, narrow);
        assert!(text.contains(if lang == Lang::En {
            "Spend by team"
        } else {
            "Takıma göre harcama"
        }));
        for line in text.lines() {
            assert!(line.chars().count() <= 60, "{line}");
        }
    }
}

#[test]
fn json_names_the_key_fields() {
    let v: serde_json::Value = serde_json::from_str(&render(&keys_report(), Format::Json, Lang::En)).unwrap();
    let k = &v["keys"][0];
    for f in [
        "key_alias",
        "key_hash",
        "requests",
        "failed",
        "input_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "output_tokens",
        "reasoning_tokens",
        "cost_usd",
        "unpriced_requests",
        "top_models",
    ] {
        assert!(k.get(f).is_some(), "keys[].{f}");
    }
    assert!(v["users"][0]["user_id"].is_string());
    assert!(v["teams"][0]["team_id"].is_string());
    assert!(v["keys"][0]["top_models"][0]["cost_usd"].is_number());
}

/// `--baseline`: a budget finding is the same finding again only for the same key.
#[test]
fn baseline_pairs_budget_findings_by_key() {
    use tollgate_report::baseline::{Baseline, Comparison, FindingStatus};
    // Before, only bob's key; after, ci-bot's first and then bob's again.
    let before = build_report(vec![], &with_budgets(budgets()[1..2].to_vec()));
    let baseline = Baseline::parse("before.json", render(&before, Format::Json, Lang::En).as_bytes()).unwrap();
    let after = build_report(vec![], &with_budgets(budgets()));
    let c = Comparison::new(&baseline, &after);
    let status: Vec<(&str, FindingStatus)> = c.findings.iter().map(|f| (f.message.as_str(), f.status)).collect();
    assert_eq!(
        status,
        vec![
            ("Key sk-...wxyz is past its soft budget", FindingStatus::Still),
            ("Key ci-bot is near its budget", FindingStatus::New),
        ]
    );
}

/// LiteLLM's logs name the same key as tollgate's records: alias, hash prefix, user, team.
#[test]
fn litellm_logs_carry_the_key_user_and_team() {
    let hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let prices = PriceTable::builtin();
    let payload_line = |alias: &str, key_hash: &str, user: &str, team: &str| {
        let mut v: serde_json::Value = serde_json::from_str(
            std::fs::read_to_string(fixture("payload.jsonl"))
                .unwrap()
                .lines()
                .next()
                .unwrap(),
        )
        .unwrap();
        let m = &mut v["metadata"];
        m["user_api_key_alias"] = if alias.is_empty() {
            serde_json::Value::Null
        } else {
            alias.into()
        };
        m["user_api_key_hash"] = key_hash.into();
        m["user_api_key_user_id"] = user.into();
        m["user_api_key_team_id"] = team.into();
        serde_json::to_vec(&v).unwrap()
    };
    for read in [
        tollgate_report::import::litellm::payload_to_record,
        tollgate_report::import::litellm::payload_to_record_fast,
    ] {
        let r = read(&payload_line("ci-bot", hash, "alice", "platform"), &prices).unwrap();
        assert_eq!(r.key_alias.as_deref(), Some("ci-bot"));
        assert_eq!(r.key_hash.as_deref(), Some("e3b0c44298fc1c14"));
        assert_eq!(
            (r.user_id.as_deref(), r.team_id.as_deref()),
            (Some("alice"), Some("platform"))
        );
        // The master key: LiteLLM logs a placeholder for its hash.
        let r = read(
            &payload_line("", "litellm_proxy_master_key", "default_user_id", ""),
            &prices,
        )
        .unwrap();
        assert_eq!(
            (r.key_alias.as_deref(), r.key_hash.as_deref()),
            (Some("master_key"), None)
        );
        assert_eq!((r.user_id.as_deref(), r.team_id), (Some("default_user_id"), None));
    }
    // The fixtures' own lines: the master key, as LiteLLM logged it.
    let (records, _) = import(&[fixture("payload.jsonl"), fixture("spend_logs.jsonl")]);
    assert!(
        records
            .iter()
            .all(|r| r.key_alias.as_deref() == Some("master_key") && r.key_hash.is_none())
    );

    // SpendLogs: the row's `api_key`, `user` and `team_id`; the alias from the metadata.
    let mut row: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(fixture("spend_logs.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    row["api_key"] = hash.into();
    row["user"] = "bob".into();
    row["team_id"] = "research".into();
    let mut meta: serde_json::Value = serde_json::from_str(row["metadata"].as_str().unwrap()).unwrap();
    meta["user_api_key_alias"] = "nightly".into();
    row["metadata"] = meta.to_string().into();
    let r = tollgate_report::import::litellm::spendlog_to_record(&serde_json::to_vec(&row).unwrap(), &prices).unwrap();
    assert_eq!(r.key_alias.as_deref(), Some("nightly"));
    assert_eq!(r.key_hash.as_deref(), Some("e3b0c44298fc1c14"));
    assert_eq!(
        (r.user_id.as_deref(), r.team_id.as_deref()),
        (Some("bob"), Some("research"))
    );
    // Empty columns fall back to the metadata's copies.
    row["team_id"] = "".into();
    row["user"] = "".into();
    meta["user_api_key_team_id"] = "from-meta".into();
    meta["user_api_key_user_id"] = "meta-user".into();
    row["metadata"] = meta.to_string().into();
    let r = tollgate_report::import::litellm::spendlog_to_record(&serde_json::to_vec(&row).unwrap(), &prices).unwrap();
    assert_eq!(
        (r.user_id.as_deref(), r.team_id.as_deref()),
        (Some("meta-user"), Some("from-meta"))
    );
}

// ---------------------------------------------------------------------------------------------
// End to end: a data directory as the gateway leaves it (records and keys in its SQLite), read
// by `tollgate report` as a user runs it.

const CI_TOKEN: &str = "3f2a9c0d1e2b4a5c77e1d0c9b8a7f6e5d4c3b2a1908f7e6d5c4b3a2918f7e6d5";
const BOB_TOKEN: &str = "9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c";

fn key_rows() -> Vec<tollgate_store::KeyRow> {
    vec![
        tollgate_store::KeyRow {
            token: CI_TOKEN.into(),
            key_name: "sk-...abcd".into(),
            key_alias: Some("ci-bot".into()),
            user_id: Some("alice".into()),
            team_id: Some("platform".into()),
            max_budget: Some(10.0),
            budget_duration: Some("30d".into()),
            spend: 9.2,
            ..Default::default()
        },
        tollgate_store::KeyRow {
            token: BOB_TOKEN.into(),
            key_name: "sk-...wxyz".into(),
            user_id: Some("bob".into()),
            team_id: Some("platform".into()),
            max_budget: Some(50.0),
            soft_budget: Some(5.0),
            spend: 6.0,
            ..Default::default()
        },
    ]
}

fn write_records(data_dir: &std::path::Path, records: &[Record]) {
    let (writer, handle) =
        tollgate_store::RecordWriter::start(tollgate_store::StoreConfig::local(data_dir.to_path_buf())).unwrap();
    for r in records {
        writer.submit(r.clone());
    }
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let summary = rt.block_on(handle.shutdown()).unwrap();
    assert_eq!(summary.written, records.len() as u64);
}

/// `tollgate report ARGS --format json -o FILE`, parsed as the CLI parses it.
fn report_json(args: &[&str], out: &std::path::Path) -> serde_json::Value {
    report_as(args, "json", out);
    serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap()
}

fn report_as(args: &[&str], format: &str, out: &std::path::Path) -> String {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: tollgate_report::ReportArgs,
    }
    let mut argv = vec!["report", "--no-progress"];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["--format", format, "-o", out.to_str().unwrap()]);
    let args = Cli::try_parse_from(argv).unwrap().args;
    assert_eq!(tollgate_report::run(&args).unwrap(), 0);
    std::fs::read_to_string(out).unwrap()
}

#[test]
fn a_data_dir_with_keys_reports_their_spend_and_budgets() {
    use tollgate_store::KeyStore;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_records(&data, &traffic());
    let keys = tollgate_store::SqliteKeys::open(&data).unwrap();
    for k in key_rows() {
        keys.create(&k).unwrap();
    }
    drop(keys);
    let data_arg = data.to_str().unwrap();
    let json = report_json(&["--data-dir", data_arg], &dir.path().join("r.json"));
    let aliases: Vec<&str> = json["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["key_alias"].as_str())
        .collect();
    assert_eq!(aliases, vec!["sk-...wxyz", "ci-bot", "master_key"]);
    assert_eq!(json["keys"][1]["key_hash"], CI_HASH);
    assert_eq!(json["users"].as_array().unwrap().len(), 2);
    let budget: Vec<&serde_json::Value> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == "budget_near_limit")
        .collect();
    assert_eq!(budget.len(), 2);
    assert_eq!(budget[0]["data"]["key"], "ci-bot");
    assert_eq!(budget[0]["severity"], "warning");
    assert_eq!(budget[1]["data"]["key"], "sk-...wxyz");
    assert_eq!(budget[1]["severity"], "info");
    let text = std::fs::read_to_string(dir.path().join("r.json")).unwrap();
    for token in [CI_TOKEN, BOB_TOKEN] {
        assert!(!text.contains(token), "the report never shows a key's token");
    }

    // The same from the store's file given as an input, and from the directory given as one.
    let db = data.join(tollgate_store::DB_FILE_NAME);
    for input in [db.to_str().unwrap(), data_arg] {
        let again = report_json(&[input], &dir.path().join("again.json"));
        assert_eq!(again["findings"], json["findings"], "{input}");
        assert_eq!(again["keys"], json["keys"], "{input}");
    }
    // Markdown, in Turkish, as a user reads it.
    let md = report_as(
        &["--data-dir", data_arg, "--lang", "tr"],
        "md",
        &dir.path().join("r.md"),
    );
    assert!(md.contains("### Anahtara göre harcama"));
    assert!(md.contains("ci-bot (`3f2a9c0d1e2b4a5c`)"));
    assert!(md.contains("### Kullanıcıya göre harcama") && md.contains("### Takıma göre harcama"));
    assert!(md.contains("ci-bot anahtarı bütçesinin sınırına yaklaştı (`budget_near_limit`)"));
}

#[test]
fn without_the_keys_table_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Master-key traffic only, as before virtual keys.
    let records: Vec<Record> = traffic().into_iter().map(master).collect();
    write_records(&data, &records);
    let data_arg = data.to_str().unwrap();
    let with_table = report_as(&["--data-dir", data_arg], "md", &dir.path().join("a.md"));
    rusqlite::Connection::open(data.join(tollgate_store::DB_FILE_NAME))
        .unwrap()
        .execute_batch("DROP TABLE tollgate_keys")
        .unwrap();
    let without_table = report_as(&["--data-dir", data_arg], "md", &dir.path().join("b.md"));
    assert_eq!(with_table, without_table);
    assert!(!with_table.contains("Spend by key") && !with_table.contains("budget_near_limit"));
    // LiteLLM's logs have no key table either.
    let json = report_json(
        &[fixture("payload.jsonl").to_str().unwrap()],
        &dir.path().join("l.json"),
    );
    assert!(json.get("keys").is_none());
}

/// `--db` on the shared store reads the keys there too.
#[test]
#[cfg_attr(
    not(tollgate_postgres),
    ignore = "needs Postgres: set TOLLGATE_TEST_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/test)"
)]
fn the_shared_store_reports_key_budgets() {
    use tollgate_store::{KeyStore, PostgresKeys, PostgresTarget};
    let db = tollgate_store::test_db::TestDatabase::create("report_keys").expect("a Postgres test database");
    let target = PostgresTarget::parse(&db.url, 1).unwrap();
    let keys = PostgresKeys::open(&target).unwrap();
    for k in key_rows() {
        keys.create(&k).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let json = report_json(&["--db", &db.url], &dir.path().join("r.json"));
    let budget: Vec<&str> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == "budget_near_limit")
        .filter_map(|f| f["data"]["key"].as_str())
        .collect();
    assert_eq!(budget, vec!["ci-bot", "sk-...wxyz"]);
}

/// `report_for_store` (the dashboard's overview) is the command's report over the same store;
/// narrowed to one key, it counts that key's records only.
#[test]
fn a_stores_report_equals_the_commands_and_narrows_to_one_key() {
    use tollgate_store::{RecordStore, SqliteStore, StoredRow};
    let dir = tempfile::tempdir().unwrap();
    let records = traffic();
    {
        let mut store = SqliteStore::open(dir.path()).unwrap();
        let rows: Vec<StoredRow> = records.iter().map(|r| StoredRow::from_record(r).unwrap()).collect();
        store.insert(&rows).unwrap();
    }
    let opts = ReportOptions::default();
    let all = tollgate_report::report_for_store(tollgate_report::RecordSource::Sqlite(dir.path()), opts.clone(), None)
        .unwrap();
    let expected = build_report(records.clone(), &opts);
    assert_eq!(all.requests.total, expected.requests.total);
    assert_eq!(all.requests.failed, expected.requests.failed);
    assert!((all.cost.total_usd - expected.cost.total_usd).abs() < 1e-12);
    assert_eq!(all.models.len(), expected.models.len());

    let own = tollgate_report::OwnKey {
        key_hash: CI_HASH,
        name: "ci-bot",
    };
    let mine = tollgate_report::report_for_store(
        tollgate_report::RecordSource::Sqlite(dir.path()),
        opts.clone(),
        Some(own),
    )
    .unwrap();
    let ci_only: Vec<Record> = records
        .into_iter()
        .filter(|r| r.key_hash.as_deref() == Some(CI_HASH))
        .collect();
    assert_eq!(mine.requests.total, 4);
    assert_eq!(mine.requests.total, build_report(ci_only, &opts).requests.total);
    assert!(mine.keys.iter().all(|k| k.key_hash.as_deref() == Some(CI_HASH)));
}
