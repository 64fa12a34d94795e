//! The fast LiteLLM payload path gives exactly what the full serde path gives: the same record for
//! every line of the fixtures and of the shared corpus (ignored, with the reason, where the corpus
//! is missing), the same error for
//! damaged lines, and the same records, order and corrupt-line numbers when whole files are read
//! in parallel blocks (plain and gzipped, across block boundaries).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use common::fixture;
use tollgate_core::{PriceTable, Record};
use tollgate_report::import::bounds::RowError;
use tollgate_report::import::litellm::{payload_to_record, payload_to_record_fast};
use tollgate_report::import::{Importer, InputSummary};

fn corpus_payload_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/litellm");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.path().join("standard_logging.jsonl"))
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn payload_files() -> Vec<PathBuf> {
    let mut files = vec![fixture("payload.jsonl")];
    files.extend(corpus_payload_files());
    files
}

fn lines_of(path: &Path) -> Vec<Vec<u8>> {
    let text = std::fs::read(path).unwrap();
    text.split_inclusive(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .map(<[u8]>::to_vec)
        .collect()
}

fn same(line: &[u8], prices: &PriceTable) -> Result<Record, RowError> {
    let full = payload_to_record(line, prices);
    let fast = payload_to_record_fast(line, prices);
    assert_eq!(
        fast,
        full,
        "line: {}",
        String::from_utf8_lossy(&line[..line.len().min(300)])
    );
    full
}

fn every_line_reads_the_same(files: Vec<PathBuf>) {
    let prices = PriceTable::builtin();
    let (mut records, mut hashed) = (0, 0);
    for path in files {
        for line in lines_of(&path) {
            let r = same(&line, &prices);
            let r = r.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            hashed += usize::from(r.prompt_sha256.is_some());
            records += 1;
        }
    }
    assert!(
        records >= 5 && hashed > 0,
        "{records} records, {hashed} with a prompt hash"
    );
}

#[test]
fn every_fixture_line_reads_the_same() {
    every_line_reads_the_same(vec![fixture("payload.jsonl")]);
}

/// Listed as ignored, with the reason, where the corpus is not beside the checkout (CI sets
/// `TOLLGATE_CI`, which runs it and fails without the corpus).
#[test]
#[cfg_attr(
    not(tollgate_corpus),
    ignore = "needs the LiteLLM corpus at ../shared/corpus beside the checkout"
)]
fn every_corpus_line_reads_the_same() {
    let files = corpus_payload_files();
    assert!(
        !files.is_empty(),
        "no ../shared/corpus/litellm/*/standard_logging.jsonl"
    );
    every_line_reads_the_same(files);
}

/// Damaged lines: cut anywhere, a byte changed, a control byte or bad UTF-8 inserted, keys
/// repeated or escaped, values of the wrong type. Both paths agree on each, error text included.
#[test]
fn damaged_lines_read_the_same() {
    let prices = PriceTable::builtin();
    let lines = lines_of(&fixture("payload.jsonl"));
    let line = &lines[0];
    let mut cases: Vec<Vec<u8>> = Vec::new();
    for cut in (0..line.len()).step_by(97).chain([1, 2, line.len() - 2]) {
        cases.push(line[..cut].to_vec());
    }
    for at in (1..line.len() - 2).step_by(53) {
        for b in [
            b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', b'0', b'x', b'\t', 0x01, 0xff, b' ',
        ] {
            let mut l = line.clone();
            l[at] = b;
            cases.push(l);
        }
    }
    let text = String::from_utf8(line.clone()).unwrap();
    for (from, to) in [
        (
            "\"litellm_call_id\":",
            "\"litellm_call_id\": \"dup\", \"litellm_call_id\":",
        ),
        ("\"messages\":", "\"messages\": null, \"messages\":"),
        ("\"messages\":", "\"mess\\u0061ges\":"),
        ("\"model\":", "\"m\\u006fdel\":"),
        ("\"metadata\":", "\"metadata\": 7, \"x\":"),
        ("\"startTime\":", "\"startTime\": \"soon\", \"y\":"),
        ("\"messages\": [", "\"messages\": [\"\\ud800\", "),
        ("\"messages\": [", "\"messages\": [-01, "),
        ("\"messages\": [", "\"messages\": [1.e5, "),
        ("{", "\u{feff}{"),
        ("{", "\t{ "),
        (", ", ",\t"),
    ] {
        assert!(text.contains(from), "{from}");
        cases.push(text.replacen(from, to, 1).into_bytes());
    }
    cases.push(format!("{}x", text.trim_end()).into_bytes());
    cases.push(format!("[{}]", text.trim_end()).into_bytes());
    cases.push(text.replace("\"messages\":", "\"messages\": null, \"_\":").into_bytes());
    let mut deep = text.trim_end().to_string();
    deep.insert_str(1, &format!("\"deep\": {}{}, ", "[".repeat(2000), "]".repeat(2000)));
    cases.push(deep.into_bytes());
    let mut failed = 0;
    for case in &cases {
        failed += usize::from(same(case, &prices).is_err());
    }
    assert!(failed > cases.len() / 2, "{failed} of {}", cases.len());
}

fn import(path: &Path) -> (Vec<Record>, InputSummary) {
    let prices = PriceTable::builtin();
    let importer = Importer {
        prices: &prices,
        on_bytes: None,
    };
    let mut records = Vec::new();
    let mut sink = |r: Record| {
        records.push(r);
        true
    };
    let mut s = importer.import(&path.display().to_string(), &mut sink).unwrap();
    assert_eq!(s.len(), 1);
    (records, s.remove(0))
}

/// A file of several blocks (the parallel reader cuts at 4 MiB), with blank, comment and damaged
/// lines placed around the cuts, read whole: the records are the full path's, in order, and the
/// bad lines carry their numbers in the file.
#[test]
fn whole_files_read_the_same_in_parallel_blocks() {
    let prices = PriceTable::builtin();
    let mut templates: Vec<Vec<u8>> = Vec::new();
    for path in payload_files() {
        templates.extend(lines_of(&path));
    }
    let dir = tempfile::tempdir().unwrap();
    let mut text: Vec<u8> = Vec::new();
    let mut want: Vec<Result<Record, String>> = Vec::new();
    let mut want_bad: Vec<u64> = Vec::new();
    let mut line_no = 0u64;
    let mut i = 0usize;
    while text.len() < 13 << 20 {
        let t = &templates[i % templates.len()];
        line_no += 1;
        match i % 29 {
            7 => {
                text.extend_from_slice(b"\n");
            }
            11 => {
                text.extend_from_slice(b"# a comment\n");
                want_bad.push(line_no);
            }
            13 => {
                let cut = &t[..t.len() / 3];
                text.extend_from_slice(cut);
                text.push(b'\n');
                want_bad.push(line_no);
            }
            _ => {
                let r = payload_to_record(t, &prices);
                match &r {
                    Ok(_) => {}
                    Err(_) => want_bad.push(line_no),
                }
                want.push(r.map_err(|e| e.to_string()));
                text.extend_from_slice(t);
                if !t.ends_with(b"\n") {
                    text.push(b'\n');
                }
            }
        }
        i += 1;
    }
    // A last line without its newline.
    let last = templates[0].strip_suffix(b"\n").unwrap_or(&templates[0]);
    text.extend_from_slice(last);
    want.push(payload_to_record(last, &prices).map_err(|e| e.to_string()));
    let want: Vec<Record> = want.into_iter().filter_map(Result::ok).collect();

    let plain = dir.path().join("big.jsonl");
    std::fs::write(&plain, &text).unwrap();
    let gz = dir.path().join("big.jsonl.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&text).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();

    for path in [&plain, &gz] {
        let (records, summary) = import(path);
        assert_eq!(records.len(), want.len(), "{}", path.display());
        assert!(records == want, "{}: records differ", path.display());
        assert_eq!(summary.records, want.len() as u64);
        assert_eq!(summary.corrupt_lines, want_bad.len() as u64);
        let got_bad: Vec<u64> = summary.corrupt.iter().map(|c| c.line).collect();
        assert_eq!(got_bad, want_bad[..got_bad.len()], "{}", path.display());
        assert_eq!(summary.gzip, path == &gz);
    }
}
