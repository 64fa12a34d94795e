//! Inputs, detected by content: tollgate's records (JSONL, its SQLite store or data directory),
//! LiteLLM `StandardLoggingPayload` JSON lines, and `LiteLLM_SpendLogs` rows (JSON lines, the JSON
//! array of `/spend/logs`, a CSV export, or Postgres). Any file may be gzipped; `-` is stdin.
//!
//! Lines are read sequentially and parsed in parallel chunks (rayon), then handed on in input
//! order, so memory stays bounded by one chunk whatever the file size.

pub mod flex;
pub mod litellm;
pub mod postgres_source;
pub mod tollgate;

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tollgate_core::{PriceTable, Record};

use crate::ReportError;

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

    fn convert(self, bytes: &[u8], prices: &PriceTable) -> Result<Record, String> {
        match self {
            RowKind::Tollgate => tollgate::record_from_json(bytes, prices),
            RowKind::LitellmPayload => litellm::payload_to_record(bytes, prices),
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
    /// `None` for a file skipped inside a directory because its format is not a log.
    pub format: Option<String>,
    pub records: u64,
    pub corrupt_lines: u64,
    /// The first few corrupt lines, with their numbers.
    pub corrupt: Vec<CorruptLine>,
    pub gzip: bool,
}

const MAX_CORRUPT_KEPT: usize = 20;
const CHUNK_LINES: usize = 2048;
const CHUNK_BYTES: usize = 16 << 20;

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

    fn import_dir(&self, dir: &Path, sink: &mut dyn FnMut(Record) -> bool) -> Result<Vec<InputSummary>, ReportError> {
        let mut files = Vec::new();
        collect_files(dir, &mut files).map_err(io_err(&dir.display().to_string()))?;
        // Detect first, then read in a stable order: richest kind first, then by name.
        let mut detected = Vec::new();
        let mut out = Vec::new();
        for f in files {
            let name = f.display().to_string();
            match sniff_path(&f) {
                Ok(Some(d)) => detected.push((d, f)),
                Ok(None) => out.push(InputSummary {
                    input: name,
                    format: None,
                    records: 0,
                    corrupt_lines: 0,
                    corrupt: vec![],
                    gzip: false,
                }),
                Err(e) => return Err(e),
            }
        }
        detected.sort_by_key(|(d, f)| {
            let rank = match d {
                Detected::TollgateSqlite => 0,
                Detected::JsonLines(k) | Detected::JsonArray(k) => k.order(),
                Detected::SpendLogsCsv | Detected::Postgres => 2,
                Detected::Empty => 3,
            };
            (rank, f.clone())
        });
        let mut read = Vec::new();
        for (_, f) in detected {
            read.push(self.import_file(&f, false, sink)?);
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
        if is_sqlite(path).map_err(io_err(&name))? {
            return tollgate::import_sqlite(path, self.prices, sink);
        }
        let file = File::open(path).map_err(io_err(&name))?;
        self.import_stream(&name, Box::new(file), explicit, sink)
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
        let (mut reader, gzip) = decompress(counted).map_err(io_err(name))?;
        let mut head = Vec::new();
        let detected = sniff(&mut reader, &mut head).map_err(io_err(name))?;
        let Some(detected) = detected else {
            return if explicit {
                Err(ReportError::UnknownFormat {
                    path: name.to_string(),
                    expected: EXPECTED.to_string(),
                })
            } else {
                Ok(InputSummary {
                    input: name.into(),
                    format: None,
                    records: 0,
                    corrupt_lines: 0,
                    corrupt: vec![],
                    gzip,
                })
            };
        };
        if matches!(detected, Detected::TollgateSqlite | Detected::Postgres) {
            return Err(ReportError::UnknownFormat {
                path: name.to_string(),
                expected: "a SQLite store given by its path (not on stdin, not gzipped)".into(),
            });
        }
        let mut summary = InputSummary {
            input: name.to_string(),
            format: Some(detected.describe()),
            records: 0,
            corrupt_lines: 0,
            corrupt: vec![],
            gzip,
        };
        let rest = std::io::Cursor::new(head).chain(reader);
        let mut buffered = BufReader::with_capacity(1 << 20, rest);
        match detected {
            Detected::JsonLines(kind) => self.read_lines(&mut buffered, kind, &mut summary, sink),
            Detected::JsonArray(kind) => self.read_array(buffered, kind, &mut summary, sink),
            Detected::SpendLogsCsv => self.read_csv(buffered, &mut summary, sink),
            Detected::Empty | Detected::TollgateSqlite | Detected::Postgres => Ok(()),
        }
        .map_err(io_err(name))?;
        Ok(summary)
    }

    /// Parses a chunk in parallel, then emits in order. Returns false when the sink stopped.
    fn flush(
        &self,
        kind: Option<RowKind>,
        chunk: &mut Vec<(u64, Vec<u8>)>,
        summary: &mut InputSummary,
        sink: &mut dyn FnMut(Record) -> bool,
    ) -> bool {
        let prices = self.prices;
        let parsed: Vec<(u64, Result<Record, String>)> = chunk
            .par_iter()
            .map(|(n, bytes)| {
                let kind = kind.or_else(|| classify(bytes));
                let r = match kind {
                    Some(k) => k.convert(bytes, prices),
                    None => Err(serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
                        .err()
                        .map_or_else(|| "not a record of this file's kind".to_string(), |e| e.to_string())),
                };
                (*n, r)
            })
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
                Err(error) => {
                    summary.corrupt_lines += 1;
                    if summary.corrupt.len() < MAX_CORRUPT_KEPT {
                        summary.corrupt.push(CorruptLine { line, error });
                    }
                }
            }
        }
        true
    }

    fn read_lines(
        &self,
        reader: &mut dyn BufRead,
        kind: RowKind,
        summary: &mut InputSummary,
        sink: &mut dyn FnMut(Record) -> bool,
    ) -> std::io::Result<()> {
        let mut chunk: Vec<(u64, Vec<u8>)> = Vec::with_capacity(CHUNK_LINES);
        let mut bytes = 0usize;
        let mut line_no = 0u64;
        loop {
            let mut buf = Vec::new();
            let n = reader.read_until(b'\n', &mut buf)?;
            if n == 0 {
                break;
            }
            line_no += 1;
            if buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            bytes += buf.len();
            chunk.push((line_no, buf));
            if (chunk.len() >= CHUNK_LINES || bytes >= CHUNK_BYTES) && {
                bytes = 0;
                !self.flush(Some(kind), &mut chunk, summary, sink)
            } {
                return Ok(());
            }
        }
        self.flush(Some(kind), &mut chunk, summary, sink);
        Ok(())
    }

    fn read_array(
        &self,
        reader: impl Read,
        kind: RowKind,
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
                        && !self
                            .importer
                            .flush(Some(self.kind), &mut chunk, self.summary, self.sink)
                    {
                        return Ok(());
                    }
                }
                self.importer
                    .flush(Some(self.kind), &mut chunk, self.summary, self.sink);
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
            summary.corrupt_lines += 1;
            summary.corrupt.push(CorruptLine {
                line: e.line() as u64,
                error: e.to_string(),
            });
        }
        Ok(())
    }

    fn read_csv(
        &self,
        reader: impl Read,
        summary: &mut InputSummary,
        sink: &mut dyn FnMut(Record) -> bool,
    ) -> std::io::Result<()> {
        let mut csv = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
        let headers = csv.headers().map_err(std::io::Error::other)?.clone();
        let mut chunk = Vec::new();
        let mut row = csv::StringRecord::new();
        let mut n = 1u64; // the header is line 1
        loop {
            match csv.read_record(&mut row) {
                Ok(false) => break,
                Ok(true) => {
                    n = row.position().map_or(n + 1, |p| p.line());
                    // Re-encode as one JSON object so the JSON path reads it; empty cells are absent.
                    let mut obj = serde_json::Map::new();
                    for (h, v) in headers.iter().zip(row.iter()) {
                        if !v.is_empty() {
                            obj.insert(h.to_string(), serde_json::Value::String(v.to_string()));
                        }
                    }
                    chunk.push((n, serde_json::to_vec(&obj).unwrap_or_default()));
                }
                Err(e) => {
                    n += 1;
                    summary.corrupt_lines += 1;
                    if summary.corrupt.len() < MAX_CORRUPT_KEPT {
                        summary.corrupt.push(CorruptLine {
                            line: n,
                            error: e.to_string(),
                        });
                    }
                }
            }
            if chunk.len() >= CHUNK_LINES && !self.flush(Some(RowKind::LitellmSpendLogs), &mut chunk, summary, sink) {
                return Ok(());
            }
        }
        self.flush(Some(RowKind::LitellmSpendLogs), &mut chunk, summary, sink);
        Ok(())
    }
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with('.') || name.ends_with("-wal") || name.ends_with("-shm") || name.ends_with("-journal") {
            continue;
        }
        if p.is_dir() {
            collect_files(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
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
    let (mut reader, _) = decompress(file).map_err(io_err(&name))?;
    let mut head = Vec::new();
    // A file that is neither text nor gzip (an image, a binary) is simply not a log.
    Ok(sniff(&mut reader, &mut head).ok().flatten())
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

/// Reads the first lines into `head` and decides what the input is.
fn sniff(reader: &mut dyn BufRead, head: &mut Vec<u8>) -> std::io::Result<Option<Detected>> {
    const MAX_PROBE_LINES: usize = 50;
    let mut first_line: Option<(usize, usize)> = None;
    for _ in 0..MAX_PROBE_LINES {
        let start = head.len();
        let n = reader.read_until(b'\n', head)?;
        if n == 0 {
            break;
        }
        let line = &head[start..];
        let trimmed = trim_ascii(line);
        if trimmed.is_empty() {
            continue;
        }
        if first_line.is_none() {
            first_line = Some((start, head.len()));
            if trimmed.starts_with(b"[") {
                return Ok(sniff_array(reader, head, start));
            }
            if !trimmed.starts_with(b"{") {
                let text = String::from_utf8_lossy(trimmed);
                let lower = text.to_ascii_lowercase();
                let is_csv = lower.contains(',')
                    && lower.split(',').any(|h| h.trim_matches('"') == "request_id")
                    && (lower.contains("spend") || lower.contains("starttime"));
                return Ok(is_csv.then_some(Detected::SpendLogsCsv));
            }
        }
        if let Some(kind) = classify(trimmed) {
            return Ok(Some(Detected::JsonLines(kind)));
        }
    }
    Ok(if first_line.is_none() {
        Some(Detected::Empty)
    } else {
        None
    })
}

/// A JSON array: reads on until the first element is complete and classifies it.
fn sniff_array(reader: &mut dyn BufRead, head: &mut Vec<u8>, start: usize) -> Option<Detected> {
    const MAX_PROBE_BYTES: usize = 64 << 20;
    loop {
        let text = trim_ascii(&head[start..]);
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
        if head.len() > MAX_PROBE_BYTES {
            return None;
        }
        match reader.read_until(b'\n', head) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
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
