//! `tollgate report`: the log-analysis report, from tollgate's records and from LiteLLM's logs.
//!
//! Pipeline: inputs are detected by content and converted to [`Record`]s ([`import`]), folded
//! into a [`Report`] by one pure function ([`build_report`]) that also derives the findings,
//! then rendered as a terminal table, markdown, self-contained HTML or JSON ([`render()`]), in
//! English or Turkish. With `--baseline` a previous JSON report's figures are shown beside the
//! new ones ([`baseline`]).
//!
//! Reading runs on its own thread (parsing chunks in parallel with rayon) and hands records to
//! the aggregating thread in batches over a bounded channel (`handoff.rs`), so both cores work
//! and memory stays bounded.

pub mod aggregate;
pub mod baseline;
pub mod expectations;
mod finding;
pub mod findings;
mod handoff;
pub mod i18n;
pub mod import;
pub mod render;
mod report;
pub mod stats;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use tollgate_core::{PriceTable, Record};

pub use aggregate::{ReportOptions, build_report};
pub use finding::{Finding, Severity};
pub use i18n::Lang;
pub use import::InputSummary;
pub use render::{Format, render};
pub use report::Report;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: unrecognised input format; expected {expected}")]
    UnknownFormat { path: String, expected: String },
    #[error("{path}: {message}")]
    Sqlite { path: String, message: String },
    #[error("Postgres: {0} (the URL looks like postgres://user:password@host:5432/litellm)")]
    Postgres(String),
    #[error(
        "--baseline {path}: not a tollgate JSON report: {message}; give a file written by `tollgate report --format json`"
    )]
    Baseline { path: String, message: String },
    #[error("{0}")]
    Usage(String),
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error(transparent)]
    Prices(#[from] tollgate_core::price::PriceError),
}

/// `tollgate report`'s arguments.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ReportArgs {
    /// Log files or directories (gzip is fine), or `-` for stdin. Detected by content: tollgate
    /// records (JSONL or tollgate.sqlite), LiteLLM StandardLoggingPayload JSON lines, LiteLLM_SpendLogs
    /// rows (JSON lines, /spend/logs JSON array, CSV export).
    #[arg(value_name = "INPUT")]
    pub inputs: Vec<String>,
    /// Output format [default: table on a terminal, else md; or from the -o file's extension].
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Language of the report.
    #[arg(long, value_enum, default_value = "en")]
    pub lang: Lang,
    /// Write the report to FILE instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Only requests that started at or after T (RFC 3339, `2026-01-01`, `2026-01-01 13:33`, or `24h`/`7d` ago).
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// Only requests that started before T (same forms as --since).
    #[arg(long, value_name = "T")]
    pub until: Option<String>,
    /// Only this model group or upstream model (repeatable).
    #[arg(long = "model", value_name = "M")]
    pub models: Vec<String>,
    /// Read LiteLLM_SpendLogs from LiteLLM's Postgres (read-only), e.g. postgres://user:pw@host/litellm.
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
    /// tollgate data directory (reads its tollgate.sqlite).
    #[arg(long = "data-dir", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Extra prices in LiteLLM's model_prices_and_context_window.json format; they win over the built-ins.
    #[arg(long, value_name = "FILE")]
    pub prices: Option<PathBuf>,
    /// A tollgate or LiteLLM config.yaml: its workflows' steps are expected in the logs (a step
    /// that never ran is a finding) and its per-deployment prices and context windows are used.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A previous `tollgate report --format json` output: every headline figure and finding is
    /// shown as before → after with the change, to see whether a fix worked.
    #[arg(long, value_name = "BEFORE.json")]
    pub baseline: Option<PathBuf>,
    /// Never show a progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

/// A time bound: absolute, or a duration ago (`90m`, `24h`, `7d`) relative to `now`.
pub fn parse_time_bound(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, ReportError> {
    let t = s.trim();
    let unit = t.chars().last().unwrap_or(' ');
    if let (Ok(n), true) = (t[..t.len().saturating_sub(1)].parse::<i64>(), "smhdw".contains(unit)) {
        let secs = n * match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => 604_800,
        };
        return Ok(now - chrono::Duration::seconds(secs));
    }
    import::flex::parse_time(t).ok_or_else(|| {
        ReportError::Usage(format!(
            "cannot read time {s:?}: use RFC 3339 (2026-01-01T13:33:00Z), a date (2026-01-01), \"2026-01-01 13:33\" or a duration ago (90m, 24h, 7d)"
        ))
    })
}

/// The budgets of the keys stored beside the records: in each tollgate SQLite store among the
/// inputs (a data directory or its `tollgate.sqlite`) and in `--db`. Read before the records, as
/// the aggregation is handed them up front. Budgets only add a finding, so a table that cannot
/// be read is a warning, not a failed report.
fn key_budgets(inputs: &[String], db: Option<&str>) -> Vec<import::keys::KeyBudget> {
    let mut budgets = Vec::new();
    let mut read = |source: &str, result: Result<Vec<import::keys::KeyBudget>, ReportError>| match result {
        Ok(b) => budgets.extend(b),
        Err(e) => eprintln!("warning: {source}: key budgets not read: {e}"),
    };
    for input in inputs {
        if let Some(path) = import::keys::sqlite_of(input) {
            read(input, import::keys::read_sqlite(&path));
        }
    }
    if let Some(url) = db {
        read(&import::postgres_source::redact(url), import::keys::read_postgres(url));
    }
    budgets
}

/// One virtual key's share of a store: its records (by the key hash records carry) and its
/// budget (by the name the report gives it).
#[derive(Debug, Clone, Copy)]
pub struct OwnKey<'a> {
    /// The first 16 hex digits of the key's SHA-256, as in `Record::key_hash`.
    pub key_hash: &'a str,
    /// Its alias, else `sk-...abcd`: what [`import::keys::KeyBudget::name`] says.
    pub name: &'a str,
}

/// Where a gateway's records are read from.
#[derive(Debug, Clone, Copy)]
pub enum RecordSource<'a> {
    /// A data directory's `tollgate.sqlite`: this instance's records.
    Sqlite(&'a std::path::Path),
    /// The shared store many instances ship their records to (`tollgate_records`).
    Postgres(&'a tollgate_store::PostgresTarget),
}

/// The report over a gateway's records, built as `tollgate report --data-dir` (or `--db`)
/// `--since … --until …` builds it (the same record reader, key budgets and aggregation), so a
/// figure shown elsewhere (the dashboard) equals the command's. `opts` gives the range, prices
/// and language; `only` narrows it to one key's records and budget. Unlike the command, the
/// range (and the key) is applied while reading, through the store's indexes: only
/// `filtered_out` differs (the rows outside were never read).
pub fn report_for_store(
    source: RecordSource<'_>,
    mut opts: ReportOptions,
    only: Option<OwnKey<'_>>,
) -> Result<Report, ReportError> {
    opts.key_budgets = match source {
        RecordSource::Sqlite(data_dir) => {
            let input = data_dir.join("tollgate.sqlite").display().to_string();
            key_budgets(std::slice::from_ref(&input), None)
        }
        RecordSource::Postgres(target) => import::keys::read_postgres_at(target).unwrap_or_else(|e| {
            eprintln!("warning: {}: key budgets not read: {e}", target.location());
            Vec::new()
        }),
    };
    if let Some(own) = only {
        opts.key_budgets.retain(|b| b.name() == own.name);
    }
    opts.records_unique = match source {
        RecordSource::Sqlite(data_dir) => import::tollgate::one_row_per_attempt(&data_dir.join("tollgate.sqlite")),
        // Its table has had the constraint from the start.
        RecordSource::Postgres(_) => true,
    };
    // As `run` does: the reader hands records over a bounded channel, so memory stays bounded
    // whatever the store's size (a server must not hold a year of records to show a day).
    let (mut tx, rx) = handoff::channel();
    let (mut report, summaries) = std::thread::scope(|scope| {
        let prices = &opts.prices;
        let (since, until) = (opts.since, opts.until);
        let key_hash = only.map(|own| own.key_hash);
        // The range and the key are read through the store's indexes; the aggregation applies
        // the range again, as for the command, which changes nothing for rows inside it.
        let reader = scope.spawn(move || {
            let mut sink = |r: Record| tx.push(r);
            match source {
                RecordSource::Sqlite(data_dir) => {
                    let slice = import::tollgate::StoreSlice {
                        since,
                        until,
                        key_hash: key_hash.map(str::to_string),
                    };
                    let path = data_dir.join("tollgate.sqlite");
                    import::tollgate::import_sqlite_slice(&path, prices, &slice, &mut sink)
                }
                RecordSource::Postgres(target) => {
                    import::postgres_source::import_tollgate_records(target, since, until, key_hash, prices, &mut sink)
                }
            }
            .map(|s| vec![s])
        });
        let report = build_report(rx, &opts);
        let summaries = reader
            .join()
            .map_err(|_| ReportError::Usage("the reader thread stopped unexpectedly".into()));
        (report, summaries)
    });
    report.inputs = summaries??;
    Ok(report)
}

fn format_from_output(path: &std::path::Path) -> Option<Format> {
    match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
        "html" | "htm" => Some(Format::Html),
        "md" | "markdown" => Some(Format::Md),
        "json" => Some(Format::Json),
        "txt" => Some(Format::Table),
        _ => None,
    }
}

/// Runs `tollgate report`: reads, builds, renders, writes. Returns the exit code (0, also for an
/// empty input).
pub fn run(args: &ReportArgs) -> Result<i32, ReportError> {
    let now = Utc::now();
    let since = args.since.as_deref().map(|s| parse_time_bound(s, now)).transpose()?;
    let until = args.until.as_deref().map(|s| parse_time_bound(s, now)).transpose()?;
    // Read first: a wrong file should not cost the time of reading the logs.
    let baseline = args.baseline.as_deref().map(baseline::Baseline::read).transpose()?;
    let mut prices = PriceTable::builtin();
    if let Some(p) = &args.prices {
        prices.merge(PriceTable::load_file(p)?);
    }
    let facts = match &args.config {
        Some(path) => Some(
            expectations::ConfigFacts::load(path, &prices).map_err(|e| ReportError::Usage(format!("--config: {e}")))?,
        ),
        None => None,
    };
    if let Some(f) = &facts {
        f.apply_prices(&mut prices);
    }
    let mut inputs = args.inputs.clone();
    if let Some(dir) = &args.data_dir {
        inputs.push(dir.join("tollgate.sqlite").display().to_string());
    }
    if inputs.is_empty() && args.db.is_none() {
        if std::io::stdin().is_terminal() {
            return Err(ReportError::Usage(
                "no input: give log files or directories, `-` for stdin, --data-dir DIR or --db postgres://… (see --help)".into(),
            ));
        }
        inputs.push("-".into());
    }
    let mut opts = ReportOptions {
        since,
        until,
        models: args.models.clone(),
        prices: prices.clone(),
        lang: args.lang,
        ..ReportOptions::default()
    };
    if let Some(f) = facts {
        opts.expect_workflows(f.workflows);
    }
    // One data directory alone: its store holds each request and attempt once.
    opts.records_unique = match (&args.data_dir, args.inputs.is_empty(), &args.db) {
        (Some(dir), true, None) => import::tollgate::one_row_per_attempt(&dir.join("tollgate.sqlite")),
        _ => false,
    };
    opts.key_budgets = key_budgets(&inputs, args.db.as_deref());

    let total_bytes: u64 = inputs
        .iter()
        .filter_map(|i| std::fs::metadata(i).ok())
        .map(|m| m.len())
        .sum();
    let progress = (!args.no_progress && std::io::stderr().is_terminal() && total_bytes > 64 << 20).then(|| {
        let pb = indicatif::ProgressBar::new(total_bytes);
        pb.set_style(
            indicatif::ProgressStyle::with_template("{spinner} reading logs {bytes}/{total_bytes} {bar:30} {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        pb
    });

    let (mut tx, rx) = handoff::channel();
    let db = args.db.clone();
    let reader = {
        let progress = progress.clone();
        std::thread::spawn(move || -> Result<Vec<InputSummary>, ReportError> {
            let on_bytes = |n: u64| {
                if let Some(p) = &progress {
                    p.inc(n);
                }
            };
            let importer = import::Importer {
                prices: &prices,
                on_bytes: Some(&on_bytes),
            };
            let mut sink = |r: Record| tx.push(r);
            let mut summaries = Vec::new();
            for input in &inputs {
                summaries.extend(importer.import(input, &mut sink)?);
            }
            if let Some(url) = &db {
                summaries.extend(import::postgres_source::import_postgres(
                    url, since, until, &prices, &mut sink,
                )?);
            }
            Ok(summaries)
        })
    };
    let mut report = build_report(rx, &opts);
    let summaries = reader
        .join()
        .map_err(|_| ReportError::Usage("the reader thread stopped unexpectedly".into()))??;
    if let Some(p) = progress {
        p.finish_and_clear();
    }
    report.inputs = summaries;
    for s in &report.inputs {
        if let Some(f) = &s.format {
            let implausible = if s.implausible_rows > 0 {
                format!(", {} of them with implausible values", s.implausible_rows)
            } else {
                String::new()
            };
            eprintln!(
                "{}: {} ({} records, {} corrupt lines{implausible})",
                s.input, f, s.records, s.corrupt_lines
            );
        }
        if let Some(w) = &s.warning {
            eprintln!("warning: {}: {w}", s.input);
        }
    }

    let format = args
        .format
        .or_else(|| args.output.as_deref().and_then(format_from_output))
        .unwrap_or(if args.output.is_none() && std::io::stdout().is_terminal() {
            Format::Table
        } else {
            Format::Md
        });
    let mut text = match &baseline {
        Some(b) => baseline::render(&report, b, format, args.lang),
        None => render(&report, format, args.lang),
    };
    if !text.ends_with('\n') {
        text.push('\n');
    }
    match &args.output {
        Some(path) => std::fs::write(path, text).map_err(|source| ReportError::Write {
            path: path.display().to_string(),
            source,
        })?,
        None => {
            let mut out = std::io::stdout().lock();
            // A closed pipe (`| head`) is not an error worth reporting.
            let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
        }
    }
    Ok(0)
}
