//! Properties of every importer (tollgate JSONL and SQLite, LiteLLM payload JSONL, SpendLogs
//! JSONL / JSON array / CSV), over generated record sets:
//! 1. a valid file round-trips: as many records, and the same token and cost totals, as generated;
//! 2. blank and comment lines inserted between rows change nothing but the corrupt-line count;
//! 3. any mutation (truncation, byte flips, inserted lines, garbage) or arbitrary bytes never
//!    panics and never yields more records than the valid file had;
//! 4. a gzip cut anywhere yields a prefix of the records, never an error after data.
//!
//! The seed is fixed so a run is reproducible; failures are not persisted to files.

mod common;

use std::io::Write;

use chrono::Duration;
use common::t0;
use flate2::Compression;
use flate2::write::GzEncoder;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use serde_json::json;
use tollgate_core::{CacheState, PriceTable, Record, RecordStatus};
use tollgate_report::import::{Importer, InputSummary};

fn config(cases: u32) -> Config {
    Config {
        rng_seed: RngSeed::Fixed(0x7011_6a7e),
        failure_persistence: None,
        ..Config::with_cases(cases)
    }
}

/// One generated request. Costs are whole micro-dollars so that totals compare exactly enough.
#[derive(Debug, Clone)]
struct Row {
    prompt: u64,
    completion: u64,
    cost_micros: u64,
}

impl Row {
    fn cost(&self) -> f64 {
        self.cost_micros as f64 / 1e6
    }
}

fn rows() -> impl Strategy<Value = Vec<Row>> {
    prop::collection::vec(
        (0u64..300_000, 0u64..40_000, 0u64..20_000_000).prop_map(|(prompt, completion, cost_micros)| Row {
            prompt,
            completion,
            cost_micros,
        }),
        1..30,
    )
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Format {
    TollgateJsonl,
    PayloadJsonl,
    SpendLogsJsonl,
    SpendLogsArray,
    SpendLogsCsv,
}

const FORMATS: [Format; 5] = [
    Format::TollgateJsonl,
    Format::PayloadJsonl,
    Format::SpendLogsJsonl,
    Format::SpendLogsArray,
    Format::SpendLogsCsv,
];

fn tollgate_record(i: usize, row: &Row) -> Record {
    let start = t0() + Duration::seconds(i as i64);
    Record {
        request_id: format!("tg-{i}"),
        trace_id: format!("tg-{i}"),
        model_group: "deepseek-v3.2".into(),
        model: "deepseek/deepseek-v3.2".into(),
        status: RecordStatus::Success,
        http_status: 200,
        start_time: start,
        end_time: start + Duration::milliseconds(800),
        latency_ms: 800.0,
        prompt_tokens: row.prompt,
        completion_tokens: row.completion,
        cost_usd: Some(row.cost()),
        cache: CacheState::Miss,
        source: "tollgate".into(),
        ..Record::default()
    }
}

fn spendlog_row(i: usize, row: &Row) -> serde_json::Value {
    let start = t0() + Duration::seconds(i as i64);
    json!({
        "request_id": format!("req-{i}"),
        "startTime": start.format("%Y-%m-%d %H:%M:%S%.6f+00:00").to_string(),
        "endTime": (start + Duration::milliseconds(800)).format("%Y-%m-%d %H:%M:%S%.6f+00:00").to_string(),
        "model": "deepseek/deepseek-v3.2",
        "model_group": "deepseek-v3.2",
        "spend": row.cost(),
        "prompt_tokens": row.prompt,
        "completion_tokens": row.completion,
        "cache_key": "Cache OFF",
        "status": "success",
        "metadata": "{}",
    })
}

/// A valid file of `format` holding `rows`, one row per line (the array and CSV too), so that
/// line boundaries are row boundaries.
fn valid_file(format: Format, rows: &[Row]) -> Vec<u8> {
    let mut out = Vec::new();
    match format {
        Format::TollgateJsonl => {
            for (i, r) in rows.iter().enumerate() {
                writeln!(out, "{}", serde_json::to_string(&tollgate_record(i, r)).unwrap()).unwrap();
            }
        }
        Format::PayloadJsonl => {
            for (i, r) in rows.iter().enumerate() {
                let start = 1_795_768_726.0 + i as f64;
                let line = json!({
                    "id": format!("chatcmpl-{i}"),
                    "litellm_call_id": format!("call-{i}"),
                    "status": "success",
                    "startTime": start,
                    "endTime": start + 0.8,
                    "model": "deepseek/deepseek-v3.2",
                    "model_group": "deepseek-v3.2",
                    "custom_llm_provider": "deepseek",
                    "response_cost": r.cost(),
                    "prompt_tokens": r.prompt,
                    "completion_tokens": r.completion,
                    "hidden_params": {},
                });
                writeln!(out, "{line}").unwrap();
            }
        }
        Format::SpendLogsJsonl => {
            for (i, r) in rows.iter().enumerate() {
                writeln!(out, "{}", spendlog_row(i, r)).unwrap();
            }
        }
        Format::SpendLogsArray => {
            writeln!(out, "[").unwrap();
            for (i, r) in rows.iter().enumerate() {
                let sep = if i + 1 < rows.len() { "," } else { "" };
                writeln!(out, "{}{sep}", spendlog_row(i, r)).unwrap();
            }
            writeln!(out, "]").unwrap();
        }
        Format::SpendLogsCsv => {
            let columns = [
                "request_id",
                "startTime",
                "endTime",
                "model",
                "model_group",
                "spend",
                "prompt_tokens",
                "completion_tokens",
                "cache_key",
                "status",
            ];
            let mut w = csv::Writer::from_writer(&mut out);
            w.write_record(columns).unwrap();
            for (i, r) in rows.iter().enumerate() {
                let v = spendlog_row(i, r);
                let cells: Vec<String> = columns
                    .iter()
                    .map(|c| match &v[*c] {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                w.write_record(&cells).unwrap();
            }
            w.flush().unwrap();
        }
    }
    out
}

/// The cost figure each source carries: tollgate's own, or the one LiteLLM logged.
fn logged_cost(format: Format, r: &Record) -> f64 {
    match format {
        Format::TollgateJsonl => r.cost_usd.unwrap_or(0.0),
        _ => r.reported_cost_usd.unwrap_or(0.0),
    }
}

/// Built once: parsing the built-in price map costs more than importing a generated file.
static PRICES: std::sync::LazyLock<PriceTable> = std::sync::LazyLock::new(PriceTable::builtin);

fn import_bytes(bytes: Vec<u8>) -> (Result<InputSummary, tollgate_report::ReportError>, Vec<Record>) {
    let importer = Importer {
        prices: &PRICES,
        on_bytes: None,
    };
    let mut records = Vec::new();
    let summary = importer.import_reader("generated", Box::new(std::io::Cursor::new(bytes)), &mut |r| {
        records.push(r);
        true
    });
    (summary, records)
}

fn assert_totals(format: Format, rows: &[Row], records: &[Record]) -> Result<(), TestCaseError> {
    prop_assert_eq!(records.len(), rows.len(), "{:?}", format);
    let prompt: u64 = records.iter().map(|r| r.prompt_tokens).sum();
    let completion: u64 = records.iter().map(|r| r.completion_tokens).sum();
    prop_assert_eq!(prompt, rows.iter().map(|r| r.prompt).sum::<u64>(), "{:?}", format);
    prop_assert_eq!(
        completion,
        rows.iter().map(|r| r.completion).sum::<u64>(),
        "{:?}",
        format
    );
    let cost: f64 = records.iter().map(|r| logged_cost(format, r)).sum();
    let want: f64 = rows.iter().map(Row::cost).sum();
    prop_assert!((cost - want).abs() < 1e-9, "{:?}: cost {} != {}", format, cost, want);
    Ok(())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// Inserts each `line` before line `at` of `bytes` (0 = before the first; `at` wraps around the
/// number of line starts), in one pass.
fn insert_lines(bytes: &[u8], inserts: &[(usize, &str)]) -> Vec<u8> {
    let starts: Vec<usize> = std::iter::once(0)
        .chain(memchr_newlines(bytes).map(|i| i + 1))
        .collect();
    let mut at: Vec<(usize, &str)> = inserts.iter().map(|(a, l)| (starts[a % starts.len()], *l)).collect();
    at.sort_by_key(|(pos, _)| *pos);
    let mut out = Vec::with_capacity(bytes.len() + inserts.len() * 8);
    let mut from = 0;
    for (pos, line) in at {
        out.extend_from_slice(&bytes[from..pos]);
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
        from = pos;
    }
    out.extend_from_slice(&bytes[from..]);
    out
}

fn memchr_newlines(bytes: &[u8]) -> impl Iterator<Item = usize> + '_ {
    bytes.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i)
}

#[derive(Debug, Clone)]
enum Mutation {
    Truncate(prop::sample::Index),
    Flip(prop::sample::Index, u8),
    Line(usize, &'static str),
    Garbage(prop::sample::Index, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        (any::<prop::sample::Index>(), 1u8..=255).prop_map(|(i, x)| Mutation::Flip(i, x)),
        (
            0usize..64,
            prop::sample::select(vec!["", "   ", "# comment", "// comment", "{", "[", "]", "\u{feff}"])
        )
            .prop_map(|(at, l)| Mutation::Line(at, l)),
        (any::<prop::sample::Index>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, g)| Mutation::Garbage(i, g)),
    ]
}

fn apply(mut bytes: Vec<u8>, m: &Mutation) -> Vec<u8> {
    if bytes.is_empty() {
        return bytes;
    }
    match m {
        Mutation::Truncate(i) => {
            bytes.truncate(i.index(bytes.len()));
            bytes
        }
        Mutation::Flip(i, x) => {
            let at = i.index(bytes.len());
            bytes[at] ^= x;
            bytes
        }
        Mutation::Line(at, l) => insert_lines(&bytes, &[(*at, l)]),
        Mutation::Garbage(i, g) => {
            let at = i.index(bytes.len());
            bytes.splice(at..at, g.iter().copied());
            bytes
        }
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// (1) Round trip, every text format.
    #[test]
    fn valid_files_round_trip(rows in rows()) {
        for format in FORMATS {
            let (summary, records) = import_bytes(valid_file(format, &rows));
            let summary = summary.map_err(|e| TestCaseError::fail(format!("{format:?}: {e}")))?;
            prop_assert_eq!(summary.corrupt_lines, 0, "{:?}: {:?}", format, summary.corrupt);
            prop_assert!(summary.warning.is_none());
            assert_totals(format, &rows, &records)?;
            // The same, gzipped.
            let (summary, gz_records) = import_bytes(gzip(&valid_file(format, &rows)));
            prop_assert!(summary.map(|s| s.gzip).unwrap_or(false));
            prop_assert_eq!(&gz_records, &records);
        }
    }

    /// (2) Blank lines anywhere, and comment lines between JSON lines or CSV rows, are skipped
    /// (comments counted as corrupt) and every record is still read.
    #[test]
    fn blank_and_comment_lines_lose_nothing(
        rows in rows(),
        inserts in prop::collection::vec((0usize..64, prop::sample::select(vec!["", " \t", "# note", "// note"])), 1..80),
    ) {
        for format in FORMATS {
            // A JSON array cannot hold comments; in a CSV, a comment above the header is skipped
            // and one below it is a row without a start time: counted either way.
            let lines: Vec<(usize, &str)> = inserts
                .iter()
                .filter(|(_, l)| format != Format::SpendLogsArray || l.trim().is_empty())
                .copied()
                .collect();
            let comments = lines.iter().filter(|(_, l)| !l.trim().is_empty()).count();
            let (summary, records) = import_bytes(insert_lines(&valid_file(format, &rows), &lines));
            let summary = summary.map_err(|e| TestCaseError::fail(format!("{format:?}: {e}")))?;
            assert_totals(format, &rows, &records)?;
            prop_assert_eq!(summary.corrupt_lines as usize, comments, "{:?}: {:?}", format, summary.corrupt);
        }
    }

    /// (3) Mutations of a valid file: no panic, never more records than it had.
    #[test]
    fn mutations_never_panic_nor_invent_records(
        rows in rows(),
        mutations in prop::collection::vec(mutation(), 1..5),
        gzipped in any::<bool>(),
    ) {
        for format in FORMATS {
            let mut bytes = valid_file(format, &rows);
            for m in &mutations {
                bytes = apply(bytes, m);
            }
            if gzipped {
                bytes = gzip(&bytes);
            }
            let (summary, records) = import_bytes(bytes);
            prop_assert!(records.len() <= rows.len(), "{:?}: {} > {}", format, records.len(), rows.len());
            if let Ok(s) = summary {
                prop_assert_eq!(s.records as usize, records.len());
            }
        }
    }

    /// (3) Arbitrary bytes, plain or behind a gzip magic number: no panic.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048), gz_magic in any::<bool>()) {
        let bytes = if gz_magic { [&[0x1f, 0x8b][..], &bytes].concat() } else { bytes };
        let (summary, records) = import_bytes(bytes);
        if let Ok(s) = summary {
            prop_assert_eq!(s.records as usize, records.len());
        }
    }

    /// (4) A gzip cut anywhere: what is read is a prefix of the records, and once anything
    /// was read the cut is a warning, not an error.
    #[test]
    fn a_cut_gzip_yields_a_prefix(rows in rows(), cut in any::<prop::sample::Index>()) {
        for format in [Format::TollgateJsonl, Format::PayloadJsonl, Format::SpendLogsCsv] {
            let full = gzip(&valid_file(format, &rows));
            let (_, all) = import_bytes(full.clone());
            let at = cut.index(full.len());
            let (summary, records) = import_bytes(full[..at].to_vec());
            prop_assert!(records.len() <= all.len());
            prop_assert_eq!(&records[..], &all[..records.len()], "{:?}", format);
            match summary {
                Ok(s) => prop_assert!(s.warning.is_some() || s.records == 0, "{:?}: {:?}", format, s),
                Err(e) => prop_assert!(records.is_empty(), "{:?}: error {} after {} records", format, e, records.len()),
            }
        }
    }
}

proptest! {
    // Each case starts the real writer thread; fewer cases keep this quick.
    #![proptest_config(config(48))]

    /// (1) and (3) for tollgate's SQLite store, written by tollgate-store's writer.
    #[test]
    fn sqlite_store_round_trips_and_survives_damage(
        rows in rows(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 0..6),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let (writer, handle) = tollgate_store::RecordWriter::start(tollgate_store::StoreConfig {
            data_dir: data_dir.clone(),
            jsonl: None,
            capacity: 64,
            durability: Default::default(),
            instance_id: None,
            shared: None,
            retention_days: None,
        })
        .unwrap();
        for (i, r) in rows.iter().enumerate() {
            writer.submit(tollgate_record(i, r));
        }
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(handle.shutdown()).unwrap();
        let db = data_dir.join(tollgate_store::DB_FILE_NAME);

        let importer = Importer { prices: &PRICES, on_bytes: None };
        let mut records = Vec::new();
        let s = importer
            .import(&db.display().to_string(), &mut |r| { records.push(r); true })
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(s[0].corrupt_lines, 0);
        assert_totals(Format::TollgateJsonl, &rows, &records)?;

        // Damage the file: no panic, never more records.
        let mut bytes = std::fs::read(&db).unwrap();
        for (i, x) in &flips {
            let at = i.index(bytes.len());
            bytes[at] ^= x;
        }
        if let Some(c) = cut {
            bytes.truncate(c.index(bytes.len()));
        }
        std::fs::write(&db, &bytes).unwrap();
        let mut damaged = 0usize;
        let _ = importer.import(&db.display().to_string(), &mut |_| { damaged += 1; true });
        prop_assert!(damaged <= rows.len());
    }
}
