//! Inputs, detected by content: tollgate's records (JSONL, its SQLite store or data directory),
//! LiteLLM `StandardLoggingPayload` JSON lines, and `LiteLLM_SpendLogs` rows (JSON lines, the JSON
//! array of `/spend/logs`, a CSV export, or Postgres). Any file may be gzipped; `-` is stdin.
//!
//! JSON lines are parsed in parallel (rayon) and handed on in input order, with memory bounded
//! by the blocks in flight whatever the file size (see `lines`): a regular file is memory-mapped
//! and cut into byte ranges, a stream (gzip, stdin) is read in blocks. A LiteLLM payload line is
//! read field by field, skipping the prompt and the model map (see [`scan`]), and prompts are
//! fingerprinted two at a time; any line the fast reader does not vouch for is read whole by
//! serde, so records and errors are those of the full read. Arrays and CSV are read as before.
//!
//! Hostile or damaged inputs cost only what is damaged: a line that cannot be read (truncated,
//! a comment, an implausible value, see [`bounds`]) is counted with its number and reason; a
//! read that fails part-way (a truncated gzip, a disk error) keeps every line before the fault
//! and becomes a warning; inside a directory, an entry that cannot be read at all (a symlink
//! loop, a permission, a file of another kind) is a warning and the other files are read.

pub mod bounds;
pub mod flex;
pub mod keys;
mod lines;
pub mod litellm;
pub mod postgres_source;
pub mod scan;
mod sha_pairs;
pub mod tollgate;

use std::cell::RefCell;
use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use flate2::read::MultiGzDecoder;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tollgate_core::{PriceTable, Record};

use crate::ReportError;
use bounds::RowError;

/// What a row is, whatever the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RowKind {
    Tollgate,
    LitellmPayload,
    LitellmSpendLogs,
}

impl RowKind {
    fn label(self) -> &'static str {
        match self {
            RowKind::Tollgate => "tollgate records",
            RowKind::LitellmPayload => "LiteLLM StandardLoggingPayload",
            RowKind::LitellmSpendLogs => "LiteLLM_SpendLogs",
        }
    }

    fn convert(self, bytes: &[u8], prices: &PriceTable) -> Result<Record, RowError> {
        match self {
            RowKind::Tollgate => tollgate::record_from_json(bytes, prices),
            RowKind::LitellmPayload => litellm::payload_to_record_fast(bytes, prices),
            RowKind::LitellmSpendLogs => litellm::spendlog_to_record(bytes, prices),
        }
    }

    /// Directory inputs are read richest first, so that when the same request is in both a
    /// payload file and SpendLogs, the payload's record is the one kept.
    fn order(self) -> u8 {
        match self {
            RowKind::Tollgate => 0,
            RowKind::LitellmPayload => 1,
            RowKind::LitellmSpendLogs => 2,
        }
    }
}

/// The keys that tell the row kinds apart; every other key is skipped unparsed.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Signature {
    request_id: Option<serde::de::IgnoredAny>,
    model_group: Option<serde::de::IgnoredAny>,
    status: Option<serde::de::IgnoredAny>,
    spend: Option<serde::de::IgnoredAny>,
    cache_key: Option<serde::de::IgnoredAny>,
    litellm_call_id: Option<serde::de::IgnoredAny>,
    response_cost: Option<serde::de::IgnoredAny>,
    hidden_params: Option<serde::de::IgnoredAny>,
    latency_ms: Option<serde::de::IgnoredAny>,
}

fn classify(bytes: &[u8]) -> Option<RowKind> {
    let s: Signature = serde_json::from_slice(bytes).ok()?;
    if s.request_id.is_some() && (s.spend.is_some() || s.cache_key.is_some()) {
        Some(RowKind::LitellmSpendLogs)
    } else if s.litellm_call_id.is_some() && (s.response_cost.is_some() || s.hidden_params.is_some()) {
        Some(RowKind::LitellmPayload)
    } else if s.request_id.is_some() && s.model_group.is_some() && s.status.is_some() {
        let _ = s.latency_ms;
        Some(RowKind::Tollgate)
    } else {
        None
    }
}

/// How an input was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "container", content = "rows")]
pub enum Detected {
    JsonLines(RowKind),
    JsonArray(RowKind),
    SpendLogsCsv,
    TollgateSqlite,
    Postgres,
    /// tollgate's own `tollgate_records` table in a shared Postgres.
    TollgatePostgres,
    Empty,
}

impl Detected {
    pub fn describe(&self) -> String {
        match self {
            Detected::JsonLines(k) => format!("{} (JSON lines)", k.label()),
            Detected::JsonArray(k) => format!("{} (JSON array)", k.label()),
            Detected::SpendLogsCsv => "LiteLLM_SpendLogs (CSV)".into(),
            Detected::TollgateSqlite => "tollgate SQLite store".into(),
            Detected::Postgres => "LiteLLM_SpendLogs (Postgres)".into(),
            Detected::TollgatePostgres => "tollgate records (Postgres)".into(),
            Detected::Empty => "empty".into(),
        }
    }
}

/// A line that could not be read, by its 1-based line (or array element / CSV row) number.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CorruptLine {
    pub line: u64,
    pub error: String,
}

/// What one input contributed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InputSummary {
    pub input: String,
    /// `None` for a file skipped inside a directory because its format is not a log, or because
    /// it could not be read at all (then `warning` says why).
    pub format: Option<String>,
    pub records: u64,
    pub corrupt_lines: u64,
    /// The first few corrupt lines, with their numbers.
    pub corrupt: Vec<CorruptLine>,
    pub gzip: bool,
    /// Of `corrupt_lines`, the rows rejected for a value no request has (see [`bounds`]).
    #[serde(skip_serializing_if = "is_zero")]
    pub implausible_rows: u64,
    /// Why the input was not read to its end (a truncated gzip, a read error) or not at all (a
    /// symlink loop, a permission); what was read before is counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl InputSummary {
    pub fn new(input: &str, format: Option<String>, gzip: bool) -> InputSummary {
        InputSummary {
            input: input.to_string(),
            format,
            records: 0,
            corrupt_lines: 0,
            corrupt: vec![],
            gzip,
            implausible_rows: 0,
            warning: None,
        }
    }

    /// An input that could not be read, kept in the summary so the report says so.
    fn unreadable(input: &str, warning: String) -> InputSummary {
        InputSummary {
            warning: Some(warning),
            ..InputSummary::new(input, None, false)
        }
    }

    /// Counts a row that is not a record, keeping the first few with their numbers.
    pub fn reject(&mut self, line: u64, error: &RowError) {
        self.corrupt_lines += 1;
        if matches!(error, RowError::Implausible(_)) {
            self.implausible_rows += 1;
        }
        if self.corrupt.len() < MAX_CORRUPT_KEPT {
            self.corrupt.push(CorruptLine {
                line,
                error: error.to_string(),
            });
        }
    }
}

const MAX_CORRUPT_KEPT: usize = 20;
/// The smallest page size of the platforms built for; released ranges are rounded down to it.
const PAGE: usize = 4096;
const CHUNK_LINES: usize = 2048;

pub const EXPECTED: &str = "tollgate records (JSON lines, tollgate.sqlite or a --data-dir), LiteLLM \
StandardLoggingPayload JSON lines, or LiteLLM_SpendLogs rows (JSON lines, the JSON array from /spend/logs, \
or a CSV export with a request_id column; for Postgres use --db postgres://…)";

/// Reads every input and hands each record to `sink` (which returns false to stop early).
pub struct Importer<'a> {
    pub prices: &'a PriceTable,
    /// Counts bytes read, for the progress bar.
    pub on_bytes: Option<&'a (dyn Fn(u64) + Sync)>,
}

struct Counting<'a, R> {
    inner: R,
    on_bytes: Option<&'a (dyn Fn(u64) + Sync)>,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(f) = self.on_bytes {
            f(n as u64);
        }
        Ok(n)
    }
}

fn io_err(path: &str) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_string(),
        source,
    }
}

impl Importer<'_> {
    /// One command-line input: a file, a directory or `-`.
    pub fn import(&self, input: &str, sink: &mut dyn FnMut(Record) -> bool) -> Result<Vec<InputSummary>, ReportError> {
        if input == "-" {
            let stdin = std::io::stdin();
            return Ok(vec![self.import_stream(input, Box::new(stdin.lock()), true, sink)?]);
        }
        let path = Path::new(input);
        let meta = std::fs::metadata(path).map_err(io_err(input))?;
        if meta.is_dir() {
            return self.import_dir(path, sink);
        }
        Ok(vec![self.import_file(path, true, sink)?])
    }

    /// Every file under `dir`. Only `dir` itself failing is an error: a file or entry inside it
    /// that cannot be read is a warning in its summary, and the other files are read.
    fn import_dir(&self, dir: &Path, sink: &mut dyn FnMut(Record) -> bool) -> Result<Vec<InputSummary>, ReportError> {
        let mut listing = Listing::default();
        listing.collect(dir).map_err(io_err(&dir.display().to_string()))?;
        // Detect first, then read in a stable order: richest kind first, then by name.
        let mut detected = Vec::new();
        let mut out: Vec<InputSummary> = listing
            .problems
            .into_iter()
            .map(|(p, why)| InputSummary::unreadable(&p.display().to_string(), why))
            .collect();
        for f in listing.files {
            let name = f.display().to_string();
            match sniff_path(&f) {
                Ok(Some(d)) => detected.push((d, f)),
                Ok(None) => out.push(InputSummary::new(&name, None, false)),
                Err(e) => out.push(InputSummary::unreadable(&name, reason(&e))),
            }
        }
        detected.sort_by_key(|(d, f)| {
            let rank = match d {
                Detected::TollgateSqlite | Detected::TollgatePostgres => 0,
                Detected::JsonLines(k) | Detected::JsonArray(k) => k.order(),
                Detected::SpendLogsCsv | Detected::Postgres => 2,
                Detected::Empty => 3,
            };
            (rank, f.clone())
        });
        let mut read = Vec::new();
        for (_, f) in detected {
            match self.import_file(&f, false, sink) {
                Ok(s) => read.push(s),
                Err(e) => read.push(InputSummary::unreadable(&f.display().to_string(), reason(&e))),
            }
        }
        read.extend(out);
        Ok(read)
    }

    /// Reads one stream (plain or gzipped) whose format is detected from its content.
    pub fn import_reader(
        &self,
        name: &str,
        reader: Box<dyn Read + '_>,
        sink: &mut dyn FnMut(Record) -> bool,
    ) -> Result<InputSummary, ReportError> {
        self.import_stream(name, reader, true, sink)
    }

    fn import_file(
        &self,
        path: &Path,
        explicit: bool,
        sink: &mut dyn FnMut(Record) -> bool,
    ) -> Result<InputSummary, ReportError> {
        let name = path.display().to_string();
        let file = File::open(path).map_err(io_err(&name))?;
        // Only a regular file can be opened twice from its start: the SQLite check would eat the
        // first bytes of a pipe (`tollgate report <(zcat logs.gz)`).
        let regular = file.metadata().is_ok_and(|m| m.is_file());
        if regular && is_sqlite(path).map_err(io_err(&name))? {
            return tollgate::import_sqlite(path, self.prices, sink);
        }
        if regular {
            if let Some(summary) = self.import_lines_file(&name, &file, sink) {
                return Ok(summary);
            }
            (&file).rewind().map_err(io_err(&name))?;
        }
        self.import_stream(&name, Box::new(file), explicit, sink)
    }

    /// A regular, uncompressed file of JSON lines, read by the workers themselves (see
    /// [`lines`]). `None` for anything else, and for a file whose start cannot be read, which the
    /// streaming reader then reads from its start and reports on as usual.
    fn import_lines_file(&self, name: &str, file: &File, sink: &mut dyn FnMut(Record) -> bool) -> Option<InputSummary> {
        let end = file.metadata().ok()?.len();
        let mut magic = [0u8; 2];
        if lines::read_at(file, &mut magic, 0).ok()? < 2 || magic == [0x1f, 0x8b] {
            return None;
        }
        let mut head = BufReader::new(PositionalReader { file, at: 0 });
        let sniffed = sniff(&mut head).ok()?;
        let (Some(Detected::JsonLines(kind)), Some(start)) = (sniffed.detected.as_ref(), sniffed.head_at) else {
            return None;
        };
        let mut summary = InputSummary::new(name, sniffed.detected.as_ref().map(Detected::describe), false);
        for (line, why) in sniffed.skipped {
            summary.reject(line, &RowError::Unreadable(why));
        }
        // SAFETY: the map is read-only and lives until the lines are read. Another process
        // could change the file meanwhile: appended bytes are outside the map, rewritten ones
        // give wrong lines (as a read racing a writer would), and a truncation makes reading
        // past the new end a SIGBUS. Logs are appended to, not rewritten; the copy a read would
        // make instead costs as much as a fifth of the report (BENCHMARKS.md).
        let map = usize::try_from(end)
            .ok()
            .and_then(|len| unsafe { memmap2::MmapOptions::new().len(len).map(file) }.ok());
        let fault = match &map {
            Some(map) => {
                // Pages handed back so far: without this the whole file would count in the
                // process's resident memory by the end.
                let released = std::cell::Cell::new(0usize);
                let release = |upto: usize| {
                    // Whole pages only; the next range may still need the page `upto` is in.
                    let done = upto - upto % PAGE;
                    let from = released.replace(done.max(released.get()));
                    if done > from {
                        // SAFETY: dropping a read-only file mapping's pages only unmaps them;
                        // the next access reads them from the page cache again.
                        let _ = unsafe {
                            map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, from, done - from)
                        };
                    }
                };
                // One call per range maps its pages, instead of a fault per few pages.
                let prepare = |r: std::ops::Range<usize>| {
                    let from = r.start - r.start % PAGE;
                    let _ = map.advise_range(memmap2::Advice::PopulateRead, from, r.end - from);
                };
                let start = usize::try_from(start).unwrap_or(map.len());
                lines::read_mapped(
                    map,
                    start,
                    *kind,
                    sniffed.lines_before,
                    self.prices,
                    self.on_bytes,
                    (&prepare, &release),
                    &mut summary,
                    sink,
                );
                None
            }
            None => lines::read_file(
                file,
                (start, end),
                *kind,
                sniffed.lines_before,
                self.prices,
                self.on_bytes,
                &mut summary,
                sink,
            ),
        };
        if let Some(e) = fault {
            summary.warning = Some(format!(
                "reading stopped at an error ({e}); the {} records before it are counted",
                summary.records
            ));
        }
        Some(summary)
    }

    fn import_stream(
        &self,
        name: &str,
        raw: Box<dyn Read + '_>,
        explicit: bool,
        sink: &mut dyn FnMut(Record) -> bool,
    ) -> Result<InputSummary, ReportError> {
        let counted = Counting {
            inner: raw,
            on_bytes: self.on_bytes,
        };
        let (reader, gzip) = decompress(counted).map_err(io_err(name))?;
        let fault = FaultCell::default();
        let mut reader = StopAtFault {
            inner: reader,
            fault: Rc::clone(&fault),
        };
        let sniffed = sniff(&mut reader).map_err(io_err(name))?;
        // Nothing recognisable before a read error: the error is the news, not the format.
        if matches!(sniffed.detected, None | Some(Detected::Empty))
            && let Some(e) = fault.borrow_mut().error.take()
        {
            return Err(ReportError::Io {
                path: name.to_string(),
                source: nothing_before_fault(e, gzip),
            });
        }
        let Some(detected) = sniffed.detected else {
            return if explicit {
                Err(ReportError::UnknownFormat {
                    path: name.to_string(),
                    expected: EXPECTED.to_string(),
                })
            } else {
                Ok(InputSummary::new(name, None, gzip))
            };
        };
        if matches!(
            detected,
            Detected::TollgateSqlite | Detected::Postgres | Detected::TollgatePostgres
        ) {
            return Err(ReportError::UnknownFormat {
                path: name.to_string(),
                expected: "a SQLite store given by its path (not on stdin, not gzipped)".into(),
            });
        }
        let mut summary = InputSummary::new(name, Some(detected.describe()), gzip);
        for (line, why) in sniffed.skipped {
            summary.reject(line, &RowError::Unreadable(why));
        }
        let first_line = sniffed.lines_before;
        let rest = std::io::Cursor::new(sniffed.head).chain(reader);
        let mut buffered = BufReader::with_capacity(1 << 20, rest);
        match detected {
            Detected::JsonLines(kind) => self.read_lines(&mut buffered, kind, first_line, &mut summary, sink),
            Detected::JsonArray(kind) => self.read_array(buffered, kind, first_line, &mut summary, sink),
            Detected::SpendLogsCsv => self.read_csv(buffered, first_line, &fault, &mut summary, sink),
            Detected::Empty | Detected::TollgateSqlite | Detected::Postgres | Detected::TollgatePostgres => Ok(()),
        }
        .map_err(io_err(name))?;
        if let Some(e) = fault.borrow_mut().error.take() {
            summary.warning = Some(if gzip {
                format!(
                    "the gzip stream ends early or is damaged ({e}); the {} records before that point are counted",
                    summary.records
                )
            } else {
                format!(
                    "reading stopped at an error ({e}); the {} records before it are counted",
                    summary.records
                )
            });
        }
        Ok(summary)
    }

    /// Parses a chunk in parallel, then emits in order. Returns false when the sink stopped.
    fn flush(
        &self,
        kind: RowKind,
        chunk: &mut Vec<(u64, Vec<u8>)>,
        summary: &mut InputSummary,
        sink: &mut dyn FnMut(Record) -> bool,
    ) -> bool {
        let prices = self.prices;
        let parsed: Vec<(u64, Result<Record, RowError>)> = chunk
            .par_iter()
            .map(|(n, bytes)| (*n, parse_row(kind, bytes, prices)))
            .collect();
        chunk.clear();
        for (line, r) in parsed {
            match r {
                Ok(rec) => {
                    summary.records += 1;
                    if !sink(rec) {
                        return false;
                    }
                }
                Err(error) => summary.reject(line, &error),
            }
        }
        true
    }

    /// JSON lines; `first_line` lines of the file came before the reader's start.
    fn read_lines(
        &self,
        reader: &mut dyn BufRead,
        kind: RowKind,
        first_line: u64,
        summary: &mut InputSummary,
        sink: &mut dyn FnMut(Record) -> bool,
    ) -> std::io::Result<()> {
        lines::read_stream(reader, kind, first_line, self.prices, summary, sink)
    }

    fn read_array(
        &self,
        reader: impl Read,
        kind: RowKind,
        first_line: u64,
        summary: &mut InputSummary,
        sink: &mut dyn FnMut(Record) -> bool,
    ) -> std::io::Result<()> {
        use serde::de::{Deserializer as _, SeqAccess, Visitor};
        struct Elements<'s, 'i> {
            importer: &'s Importer<'i>,
            kind: RowKind,
            summary: &'s mut InputSummary,
            sink: &'s mut dyn FnMut(Record) -> bool,
        }
        impl<'de> Visitor<'de> for Elements<'_, '_> {
            type Value = ();
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON array of rows")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
                let mut chunk = Vec::new();
                let mut n = 0u64;
                while let Some(el) = seq.next_element::<Box<RawValue>>()? {
                    n += 1;
                    chunk.push((n, el.get().as_bytes().to_vec()));
                    if chunk.len() >= CHUNK_LINES
                        && !self.importer.flush(self.kind, &mut chunk, self.summary, self.sink)
                    {
                        return Ok(());
                    }
                }
                self.importer.flush(self.kind, &mut chunk, self.summary, self.sink);
                Ok(())
            }
        }
        let mut de = serde_json::Deserializer::from_reader(reader);
        let result = (&mut de).deserialize_seq(Elements {
            importer: self,
            kind,
            summary,
            sink,
        });
        if let Err(e) = result {
            // A truncated or malformed array: count it, keep what was read.
            summary.reject(first_line + e.line() as u64, &RowError::Unreadable(e.to_string()));
        }
        Ok(())
    }

    fn read_csv(
        &self,
        reader: impl Read,
        first_line: u64,
        fault: &FaultCell,
        summary: &mut InputSummary,
        sink: &mut dyn FnMut(Record) -> bool,
    ) -> std::io::Result<()> {
        let lines = Rc::new(RefCell::new(LineIndex::default()));
        let reader = Newlines {
            inner: reader,
            index: Rc::clone(&lines),
        };
        // The line a row starts on, from its byte offset (the csv crate's own line count is one
        // short for CRLF files, which LiteLLM's export writes).
        let line_of = |byte: u64| first_line + 1 + lines.borrow_mut().newlines_through(byte);
        let mut csv = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
        let headers = match csv.headers() {
            Ok(h) => h.clone(),
            Err(e) => {
                summary.reject(first_line + 1, &RowError::Unreadable(format!("CSV header: {e}")));
                return Ok(());
            }
        };
        let mut chunk = Vec::new();
        let mut row = csv::StringRecord::new();
        // The newest row is held back until the next one: a fault may have cut it short.
        let mut newest: Option<(u64, Vec<u8>)> = None;
        loop {
            match csv.read_record(&mut row) {
                Ok(false) => break,
                Ok(true) => {
                    // A line of spaces is a blank line, not a row without a request id.
                    if row.iter().all(|v| v.trim().is_empty()) {
                        continue;
                    }
                    let line = line_of(row.position().map_or(0, |p| p.byte()));
                    // Re-encode as one JSON object so the JSON path reads it; empty cells are absent.
                    let mut obj = serde_json::Map::new();
                    for (h, v) in headers.iter().zip(row.iter()) {
                        if !v.is_empty() {
                            obj.insert(h.to_string(), serde_json::Value::String(v.to_string()));
                        }
                    }
                    chunk.extend(newest.replace((line, serde_json::to_vec(&obj).unwrap_or_default())));
                }
                // The reader ends at a fault (see `StopAtFault`); were one to get here, retrying
                // would only repeat it.
                Err(e) if matches!(e.kind(), csv::ErrorKind::Io(_)) => break,
                Err(e) => {
                    chunk.extend(newest.take());
                    let line = e.position().map_or(first_line + 1, |p| line_of(p.byte()));
                    summary.reject(line, &RowError::Unreadable(e.to_string()));
                }
            }
            if chunk.len() >= CHUNK_LINES && !self.flush(RowKind::LitellmSpendLogs, &mut chunk, summary, sink) {
                return Ok(());
            }
        }
        // A CSV row cut by a fault still parses, with its last cell cut (`2026-01-01` read as
        // `20`, a time in 1970): a row the fault ended mid-line is not a record.
        match newest {
            Some((line, _)) if fault.borrow().cut_mid_line() => {
                summary.reject(line, &RowError::Unreadable("row cut short where the input ends".into()));
            }
            last => chunk.extend(last),
        }
        self.flush(RowKind::LitellmSpendLogs, &mut chunk, summary, sink);
        Ok(())
    }
}

/// One row's bytes (a line with its newline, an array element, a CSV row as JSON) as a record.
fn parse_row(kind: RowKind, bytes: &[u8], prices: &PriceTable) -> Result<Record, RowError> {
    let t = trim_ascii(bytes);
    // Say what the line is rather than where JSON parsing gave up on it.
    if is_comment(t) || (!t.starts_with(b"{") && serde_json::from_slice::<serde::de::IgnoredAny>(t).is_err()) {
        Err(RowError::Unreadable(unreadable_reason(t)))
    } else {
        kind.convert(bytes, prices)
    }
}

/// Reads a file from an offset without moving the file's own position, so the file can still be
/// handed to the streaming reader from its start.
struct PositionalReader<'a> {
    file: &'a File,
    at: u64,
}

impl Read for PositionalReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = lines::read_at(self.file, buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// A row parsed but for its prompt fingerprint, which is computed for a block of rows at once
/// (two at a time, see `sha_pairs`): the record, and the prompt bytes still to hash.
type Deferred<'a> = Result<(Record, Option<&'a [u8]>), RowError>;

/// [`parse_row`], leaving a LiteLLM payload's prompt fingerprint to [`finish_rows`].
fn parse_row_deferred<'a>(kind: RowKind, bytes: &'a [u8], prices: &PriceTable) -> Deferred<'a> {
    let t = trim_ascii(bytes);
    if kind != RowKind::LitellmPayload || is_comment(t) || !t.starts_with(b"{") {
        return parse_row(kind, bytes, prices).map(|r| (r, None));
    }
    litellm::payload_to_record_deferred(bytes, prices)
}

/// Fills in the deferred prompt fingerprints: `prompt_sha256` = SHA-256 of the model group, a
/// newline and the prompt (as `litellm::prompt_hash` computes it one at a time).
fn finish_rows<T>(rows: Vec<(T, Deferred<'_>)>) -> Vec<(T, Result<Record, RowError>)> {
    let inputs: Vec<[&[u8]; 3]> = rows
        .iter()
        .filter_map(|(_, r)| match r {
            Ok((rec, Some(m))) => Some([rec.model_group.as_bytes(), b"\n".as_slice(), *m]),
            _ => None,
        })
        .collect();
    let mut hashes = sha_pairs::sha256_hex_many(&inputs).into_iter();
    rows.into_iter()
        .map(|(n, r)| {
            let r = r.map(|(mut rec, prompt)| {
                if prompt.is_some() {
                    rec.prompt_sha256 = hashes.next();
                }
                rec
            });
            (n, r)
        })
        .collect()
}

/// An error as a warning about an input whose name the summary already gives.
fn reason(e: &ReportError) -> String {
    match e {
        ReportError::Io { source, .. } => source.to_string(),
        ReportError::Sqlite { message, .. } => message.clone(),
        ReportError::UnknownFormat { expected, .. } => format!("not read: expected {expected}"),
        other => other.to_string(),
    }
}

/// Where the newlines are, so a byte offset can be turned into a line number. Offsets are asked
/// for in increasing order, so only the newlines read ahead of the last answer are kept.
#[derive(Default)]
struct LineIndex {
    /// Offsets of newlines seen but not yet counted.
    pending: VecDeque<u64>,
    /// Newlines before the last offset asked for.
    counted: u64,
    /// Bytes seen so far.
    offset: u64,
}

impl LineIndex {
    /// Newlines at or before `byte`: "at" because the csv crate starts a record after a CRLF
    /// at the LF.
    fn newlines_through(&mut self, byte: u64) -> u64 {
        while self.pending.front().is_some_and(|n| *n <= byte) {
            self.pending.pop_front();
            self.counted += 1;
        }
        self.counted
    }
}

/// Passes bytes through, noting where the newlines are.
struct Newlines<R> {
    inner: R,
    index: Rc<RefCell<LineIndex>>,
}

impl<R: Read> Read for Newlines<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut index = self.index.borrow_mut();
        let start = index.offset;
        for (i, b) in buf[..n].iter().enumerate() {
            if *b == b'\n' {
                index.pending.push_back(start + i as u64);
            }
        }
        index.offset += n as u64;
        Ok(n)
    }
}

/// A read error that came before any recognisable line.
fn nothing_before_fault(e: std::io::Error, gzip: bool) -> std::io::Error {
    let what = if gzip {
        "the gzip stream ends early or is damaged"
    } else {
        "reading failed"
    };
    std::io::Error::new(e.kind(), format!("{what} ({e}) before the first complete record"))
}

/// Ends the input at the first read error instead of failing, and keeps the error: a truncated
/// gzip or a failing disk still yields every line before the fault, and the fault becomes the
/// input's warning.
struct StopAtFault<R> {
    inner: R,
    fault: FaultCell,
}

/// Shared between a [`StopAtFault`] and the code that reads through it.
type FaultCell = Rc<RefCell<Fault>>;

#[derive(Default)]
struct Fault {
    error: Option<std::io::Error>,
    /// The last byte handed on, to tell whether the fault cut a line.
    last_byte: Option<u8>,
}

impl Fault {
    fn cut_mid_line(&self) -> bool {
        self.error.is_some() && self.last_byte.is_some_and(|b| b != b'\n')
    }
}

impl<R: BufRead> Read for StopAtFault<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for StopAtFault<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.fault.borrow().error.is_some() {
            return Ok(&[]);
        }
        match self.inner.fill_buf() {
            Ok(bytes) => {
                // The inner reader refills only once all it handed on was consumed, so at a
                // fault this is the last byte of the input.
                if let Some(b) = bytes.last() {
                    self.fault.borrow_mut().last_byte = Some(*b);
                }
                Ok(bytes)
            }
            // Retried by every std reader; not a fault.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                self.fault.borrow_mut().error = Some(e);
                Ok(&[])
            }
        }
    }

    fn consume(&mut self, n: usize) {
        self.inner.consume(n);
    }
}

/// The files under a directory, depth first in name order, and the entries that could not be
/// read. A directory reached a second time (a symlink loop, or two links to one directory) is
/// read once.
#[derive(Default)]
struct Listing {
    files: Vec<PathBuf>,
    problems: Vec<(PathBuf, String)>,
    visited: HashSet<PathBuf>,
}

impl Listing {
    /// Fails only when `dir` itself cannot be listed.
    fn collect(&mut self, dir: &Path) -> std::io::Result<()> {
        let canonical = std::fs::canonicalize(dir)?;
        if !self.visited.insert(canonical.clone()) {
            self.problems.push((
                dir.to_path_buf(),
                format!(
                    "skipped: a symlink loop back to {}, which is already read",
                    canonical.display()
                ),
            ));
            return Ok(());
        }
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            match entry {
                Ok(e) => entries.push(e.path()),
                Err(e) => self
                    .problems
                    .push((dir.to_path_buf(), format!("an entry cannot be listed: {e}"))),
            }
        }
        entries.sort();
        for p in entries {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name.starts_with('.') || name.ends_with("-wal") || name.ends_with("-shm") || name.ends_with("-journal") {
                continue;
            }
            // Follows symlinks: a loop or a dangling link is an error here, named with the entry.
            match std::fs::metadata(&p) {
                Err(e) => self.problems.push((p, e.to_string())),
                Ok(m) if m.is_dir() => {
                    if let Err(e) = self.collect(&p) {
                        self.problems.push((p, e.to_string()));
                    }
                }
                Ok(m) if m.is_file() => self.files.push(p),
                Ok(_) => self.problems.push((
                    p,
                    "skipped: not a regular file (a pipe or device could block the report forever)".into(),
                )),
            }
        }
        Ok(())
    }
}

fn is_sqlite(path: &Path) -> std::io::Result<bool> {
    let mut magic = [0u8; 16];
    let mut f = File::open(path)?;
    let n = f.read(&mut magic)?;
    Ok(n == 16 && &magic == b"SQLite format 3\0")
}

fn sniff_path(path: &Path) -> Result<Option<Detected>, ReportError> {
    let name = path.display().to_string();
    if is_sqlite(path).map_err(io_err(&name))? {
        return Ok(Some(Detected::TollgateSqlite));
    }
    let file = File::open(path).map_err(io_err(&name))?;
    let (reader, gzip) = decompress(file).map_err(io_err(&name))?;
    let fault = FaultCell::default();
    let mut reader = StopAtFault {
        inner: reader,
        fault: Rc::clone(&fault),
    };
    let detected = sniff(&mut reader).map_err(io_err(&name))?.detected;
    match (detected, fault.borrow_mut().error.take()) {
        // Damaged before anything recognisable: a warning, not "not a log".
        (None | Some(Detected::Empty), Some(e)) => Err(ReportError::Io {
            path: name,
            source: nothing_before_fault(e, gzip),
        }),
        // A file that is neither text nor gzip (an image, a binary) is simply not a log.
        (detected, _) => Ok(detected),
    }
}

fn decompress<'a, R: Read + 'a>(raw: R) -> std::io::Result<(Box<dyn BufRead + 'a>, bool)> {
    let mut br = BufReader::new(raw);
    let gz = br.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    Ok(if gz {
        (Box::new(BufReader::new(MultiGzDecoder::new(br))), true)
    } else {
        (Box::new(br), false)
    })
}

/// What detection found, and what it read to find it.
struct Sniffed {
    detected: Option<Detected>,
    /// The input from its first line of data on, as far as detection read it; replayed before
    /// the rest.
    head: Vec<u8>,
    /// Lines before `head` (blank or unreadable), so later line numbers stay those of the file.
    lines_before: u64,
    /// The unreadable lines among them (a line cut short, a comment), by number, with why.
    skipped: Vec<(u64, String)>,
    /// Bytes of the input before `head`, when `head` is one line read straight from the input
    /// (not replayed after a failed array probe): where a reader of the file itself starts.
    head_at: Option<u64>,
}

/// Unreadable lines looked past before deciding an input is not a log. Blank lines do not count,
/// however many there are.
const MAX_PROBE_LINES: usize = 50;
/// Bytes read while detecting, so a large binary file is not read whole.
const MAX_PROBE_BYTES: u64 = 64 << 20;

/// Reads until the first line that shows what the input is, skipping blank lines and looking
/// past unreadable ones (a first line copied mid-record, comments), which are kept in `skipped`
/// so they are counted as corrupt rather than dropped.
fn sniff(reader: &mut dyn BufRead) -> std::io::Result<Sniffed> {
    let mut out = Sniffed {
        detected: None,
        head: Vec::new(),
        lines_before: 0,
        skipped: Vec::new(),
        head_at: None,
    };
    let mut budget = MAX_PROBE_BYTES;
    // Bytes taken from the reader line by line, before the line in hand.
    let mut consumed = 0u64;
    // Lines an array probe read past a `[` line that was not an array after all.
    let mut pending: VecDeque<Vec<u8>> = VecDeque::new();
    loop {
        let from_reader = pending.is_empty();
        let line = match pending.pop_front() {
            Some(l) => l,
            None => {
                let mut l = Vec::new();
                let n = (&mut *reader).take(budget).read_until(b'\n', &mut l)?;
                if n == 0 {
                    break;
                }
                budget = budget.saturating_sub(n as u64);
                consumed += n as u64;
                l
            }
        };
        let line_at = from_reader.then(|| consumed - line.len() as u64);
        let trimmed = trim_ascii(&line);
        if trimmed.is_empty() {
            out.lines_before += 1;
            continue;
        }
        if trimmed.contains(&0) {
            // Not text.
            return Ok(out);
        }
        if trimmed.starts_with(b"[") && from_reader {
            let mut probe = line.clone();
            let probed = probe.len();
            let found = sniff_array(reader, &mut probe, &mut budget);
            consumed += (probe.len() - probed) as u64;
            if let Some(d) = found {
                out.detected = Some(d);
                out.head = probe;
                return Ok(out);
            }
            for l in probe[line.len()..].split_inclusive(|b| *b == b'\n') {
                pending.push_back(l.to_vec());
            }
        } else if trimmed.starts_with(b"{") {
            if let Some(kind) = classify(trimmed) {
                out.detected = Some(Detected::JsonLines(kind));
                out.head = line;
                out.head_at = line_at;
                return Ok(out);
            }
        } else if is_spendlogs_csv_header(trimmed) {
            out.detected = Some(Detected::SpendLogsCsv);
            out.head = line;
            return Ok(out);
        }
        out.lines_before += 1;
        out.skipped.push((out.lines_before, unreadable_reason(trimmed)));
        if out.skipped.len() >= MAX_PROBE_LINES || budget == 0 {
            return Ok(out);
        }
    }
    if out.skipped.is_empty() {
        out.detected = Some(Detected::Empty);
    }
    Ok(out)
}

fn is_spendlogs_csv_header(line: &[u8]) -> bool {
    let lower = String::from_utf8_lossy(line).to_ascii_lowercase();
    lower.contains(',')
        && lower.split(',').any(|h| h.trim_matches('"') == "request_id")
        && (lower.contains("spend") || lower.contains("starttime"))
}

fn is_comment(trimmed: &[u8]) -> bool {
    trimmed.starts_with(b"#") || trimmed.starts_with(b"//")
}

/// Why a line that is not a row is not one, for the corrupt-line list.
fn unreadable_reason(trimmed: &[u8]) -> String {
    if is_comment(trimmed) {
        "comment line".into()
    } else if trimmed.starts_with(b"{") || trimmed.starts_with(b"[") {
        match serde_json::from_slice::<serde::de::IgnoredAny>(trimmed) {
            Err(e) => e.to_string(),
            Ok(_) => "JSON, but not a log row of a known kind".into(),
        }
    } else {
        "not JSON (a line cut short, or text that is not a log)".into()
    }
}

/// A JSON array: reads on until the first element is complete and classifies it.
fn sniff_array(reader: &mut dyn BufRead, head: &mut Vec<u8>, budget: &mut u64) -> Option<Detected> {
    loop {
        let text = trim_ascii(head);
        let body = trim_ascii(text.strip_prefix(b"[").unwrap_or(text));
        if body.starts_with(b"]") {
            return Some(Detected::Empty);
        }
        // The first element is the first JSON value after `[`.
        let mut values = serde_json::Deserializer::from_slice(body).into_iter::<Box<RawValue>>();
        match values.next() {
            Some(Ok(el)) => return classify(el.get().as_bytes()).map(Detected::JsonArray),
            Some(Err(e)) if !e.is_eof() => return None,
            _ => {}
        }
        match (&mut *reader).take(*budget).read_until(b'\n', head) {
            Ok(0) | Err(_) => return None,
            Ok(n) => *budget = budget.saturating_sub(n as u64),
        }
    }
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    let b = &b[start..end.max(start)];
    // A UTF-8 byte-order mark in front of the first line.
    b.strip_prefix(b"\xef\xbb\xbf").unwrap_or(b)
}
