#![allow(dead_code)]

use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeZone, Utc};
use tollgate_core::{CacheState, PriceTable, Record, RecordStatus};
use tollgate_report::import::{Importer, InputSummary};
use tollgate_report::{Report, ReportOptions, build_report};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// A folder of the shared LiteLLM corpus beside the repository. Tests that call this are
/// ignored (with the reason) where the corpus is missing, and run, failing here, in CI.
pub fn corpus(folder: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus/litellm")
        .join(folder);
    assert!(p.is_dir(), "the LiteLLM corpus folder {} is missing", p.display());
    p
}

/// Imports inputs (files or directories) into records, with their summaries.
pub fn import(inputs: &[PathBuf]) -> (Vec<Record>, Vec<InputSummary>) {
    import_priced(inputs, &PriceTable::builtin())
}

/// As [`import`], pricing records with `prices`.
pub fn import_priced(inputs: &[PathBuf], prices: &PriceTable) -> (Vec<Record>, Vec<InputSummary>) {
    let importer = Importer { prices, on_bytes: None };
    let mut records = Vec::new();
    let mut summaries = Vec::new();
    for i in inputs {
        let mut sink = |r: Record| {
            records.push(r);
            true
        };
        summaries.extend(importer.import(&i.display().to_string(), &mut sink).expect("import"));
    }
    (records, summaries)
}

/// A report over inputs, with input names shortened to file names so output is machine-independent.
pub fn report(inputs: &[PathBuf]) -> Report {
    let (records, mut summaries) = import(inputs);
    let mut r = build_report(records, &ReportOptions::default());
    for s in &mut summaries {
        s.input = Path::new(&s.input)
            .file_name()
            .map(|f| f.to_string_lossy().to_string())
            .unwrap_or_default();
    }
    r.inputs = summaries;
    r
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 13, 33, 0)
        .single()
        .expect("valid time")
}

/// A successful, priced record built in code.
pub fn rec(id: &str, group: &str, model: &str, prompt: u64, completion: u64) -> Record {
    let prices = PriceTable::builtin();
    let start = t0() + chrono::Duration::seconds(id.len() as i64);
    let mut r = Record {
        request_id: id.into(),
        trace_id: id.into(),
        model_group: group.into(),
        model: model.into(),
        status: RecordStatus::Success,
        http_status: 200,
        start_time: start,
        end_time: start + chrono::Duration::milliseconds(1000),
        latency_ms: 1000.0,
        prompt_tokens: prompt,
        completion_tokens: completion,
        cache: CacheState::Miss,
        source: "tollgate".into(),
        ..Record::default()
    };
    let cost = prices.lookup(model).and_then(|p| p.cost(&r.usage()));
    r.set_cost(cost);
    r
}

pub fn failed(id: &str, group: &str, model: &str, msg: &str) -> Record {
    let mut r = rec(id, group, model, 0, 0);
    r.status = RecordStatus::Failure;
    r.http_status = 500;
    r.error_message = Some(msg.into());
    r
}

pub fn ids(r: &Report) -> Vec<(String, Option<String>)> {
    r.findings.iter().map(|f| (f.id.clone(), f.model.clone())).collect()
}

/// Report options with `tests/fixtures/cfx_workflow.yaml` read as `--config` reads it.
pub fn options_with_cfx_config() -> ReportOptions {
    let mut prices = PriceTable::builtin();
    let facts =
        tollgate_report::expectations::ConfigFacts::load(&fixture("cfx_workflow.yaml"), &prices).expect("config loads");
    facts.apply_prices(&mut prices);
    let mut opts = ReportOptions {
        prices,
        ..ReportOptions::default()
    };
    opts.expect_workflows(facts.workflows);
    opts
}
