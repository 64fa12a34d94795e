//! Inputs as they arrive in real life: copied mid-record, commented, padded with blank lines,
//! truncated while being compressed, in directories with broken links, or holding values no
//! request can have. None of them may hide the good records, and none may count as a request.

mod common;

use std::io::Write;
use std::path::Path;

use common::*;
use flate2::Compression;
use flate2::write::GzEncoder;
use tollgate_core::{PriceTable, Record};
use tollgate_report::import::{Importer, InputSummary};

fn payload_lines() -> Vec<String> {
    std::fs::read_to_string(fixture("payload.jsonl"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// `n` distinct payload records: the fixture's first line with a fresh `litellm_call_id` each.
fn many_payload_lines(n: usize) -> Vec<String> {
    let base: serde_json::Value = serde_json::from_str(&payload_lines()[0]).unwrap();
    (0..n)
        .map(|i| {
            let mut v = base.clone();
            v["litellm_call_id"] = format!("call-{i:05}").into();
            v.to_string()
        })
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn gzip(text: &str) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(text.as_bytes()).unwrap();
    enc.finish().unwrap()
}

fn import_one(path: &Path) -> Result<(Vec<Record>, Vec<InputSummary>), tollgate_report::ReportError> {
    let prices = PriceTable::builtin();
    let importer = Importer {
        prices: &prices,
        on_bytes: None,
    };
    let mut records = Vec::new();
    let summaries = importer.import(&path.display().to_string(), &mut |r| {
        records.push(r);
        true
    })?;
    Ok((records, summaries))
}

#[test]
fn leading_blank_lines_do_not_hide_the_records() {
    let dir = tempfile::tempdir().unwrap();
    let lines = many_payload_lines(200);
    let text = format!("{}{}\n", "\n \t\r\n".repeat(60), lines.join("\n"));
    let path = write(dir.path(), "padded.jsonl", &text);
    let (records, s) = import_one(&path).unwrap();
    assert_eq!(
        s[0].format.as_deref(),
        Some("LiteLLM StandardLoggingPayload (JSON lines)")
    );
    assert_eq!(records.len(), 200);
    assert_eq!(s[0].corrupt_lines, 0, "blank lines are not corrupt");
}

#[test]
fn a_truncated_first_line_is_counted_and_the_rest_read() {
    let dir = tempfile::tempdir().unwrap();
    let lines = payload_lines();
    // A log copied from the middle of a record: the first line starts mid-way.
    let cut = &lines[0][lines[0].len() / 2..];
    let text = format!("{cut}\n{}\n", lines[1..].join("\n"));
    let path = write(dir.path(), "copied.jsonl", &text);
    let (records, s) = import_one(&path).unwrap();
    assert_eq!(
        s[0].format.as_deref(),
        Some("LiteLLM StandardLoggingPayload (JSON lines)")
    );
    assert_eq!(records.len(), 4);
    assert_eq!(s[0].corrupt_lines, 1);
    assert_eq!(s[0].corrupt[0].line, 1, "{:?}", s[0].corrupt);
    assert!(s[0].corrupt[0].error.contains("cut short"), "{:?}", s[0].corrupt);
}

#[test]
fn comment_lines_are_counted_and_the_rest_read() {
    let dir = tempfile::tempdir().unwrap();
    let lines = payload_lines();
    let text = format!(
        "# exported from litellm on 2026-11-27\n// second comment\n\n{}\n# trailing note\n",
        lines.join("\n")
    );
    let path = write(dir.path(), "commented.jsonl", &text);
    let (records, s) = import_one(&path).unwrap();
    assert_eq!(records.len(), 5);
    assert_eq!(s[0].corrupt_lines, 3);
    let numbers: Vec<u64> = s[0].corrupt.iter().map(|c| c.line).collect();
    assert_eq!(numbers, vec![1, 2, 9], "line numbers are those of the file");
    assert!(
        s[0].corrupt.iter().all(|c| c.error == "comment line"),
        "{:?}",
        s[0].corrupt
    );

    // A CSV export with a comment above its header.
    let csv = std::fs::read_to_string(fixture("spend_logs.csv")).unwrap();
    let path = write(dir.path(), "commented.csv", &format!("# spend logs\n\n{csv}"));
    let (records, s) = import_one(&path).unwrap();
    assert_eq!(s[0].format.as_deref(), Some("LiteLLM_SpendLogs (CSV)"));
    assert_eq!(records.len(), 5);
    assert_eq!(s[0].corrupt_lines, 1);
}

#[test]
fn a_truncated_gzip_keeps_what_decompresses() {
    let dir = tempfile::tempdir().unwrap();
    let lines = many_payload_lines(400);
    let gz = gzip(&(lines.join("\n") + "\n"));
    let path = dir.path().join("cut.jsonl.gz");
    std::fs::write(&path, &gz[..gz.len() * 6 / 10]).unwrap();
    let (records, s) = import_one(&path).unwrap();
    assert!(s[0].gzip);
    assert!(
        records.len() > 100 && records.len() < 400,
        "salvaged {} records",
        records.len()
    );
    assert_eq!(s[0].records as usize, records.len());
    let warning = s[0].warning.as_deref().expect("a warning");
    assert!(
        warning.contains("gzip") && warning.contains(&format!("{} records", records.len())),
        "{warning}"
    );
    // What was salvaged is exactly a prefix of the input, in order.
    let ids: Vec<String> = records.iter().map(|r| r.request_id.clone()).collect();
    let want: Vec<String> = (0..ids.len()).map(|i| format!("call-{i:05}")).collect();
    assert_eq!(ids, want);

    // Cut inside the first block: nothing decompresses to a whole line, so there is nothing to
    // salvage, and the error names the file and the fault.
    std::fs::write(&path, &gz[..20]).unwrap();
    let err = import_one(&path).unwrap_err().to_string();
    assert!(err.contains("cut.jsonl.gz") && err.contains("deflate"), "{err}");
}

#[test]
fn a_bad_entry_in_a_directory_does_not_stop_the_report() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("payload.jsonl"), dir.path().join("a_payload.jsonl")).unwrap();
    let gz = gzip(&(many_payload_lines(400).join("\n") + "\n"));
    std::fs::write(dir.path().join("b_cut.jsonl.gz"), &gz[..gz.len() * 6 / 10]).unwrap();
    // Cut so early that no whole line decompresses: a warning, the rest still read.
    std::fs::write(dir.path().join("c_stub.jsonl.gz"), &gz[..gz.len() / 20]).unwrap();
    // A link to itself and a directory linking back to its parent.
    std::os::unix::fs::symlink("self_loop", dir.path().join("self_loop")).unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::os::unix::fs::symlink("..", dir.path().join("sub/up")).unwrap();
    let (records, s) = import_one(dir.path()).unwrap();
    let warning_of = |name: &str| -> String {
        s.iter()
            .find(|i| i.input.ends_with(name))
            .and_then(|i| i.warning.clone())
            .unwrap_or_else(|| panic!("no warning for {name}: {s:#?}"))
    };
    assert!(
        warning_of("self_loop").contains("symbolic links"),
        "{}",
        warning_of("self_loop")
    );
    assert!(warning_of("up").contains("symlink loop"), "{}", warning_of("up"));
    let cut = s.iter().find(|i| i.input.ends_with("b_cut.jsonl.gz")).unwrap();
    assert!(
        cut.records > 0 && cut.warning.as_deref().unwrap().contains("gzip"),
        "{cut:?}"
    );
    assert!(warning_of("c_stub.jsonl.gz").contains("before the first complete record"));
    let full = s.iter().find(|i| i.input.ends_with("a_payload.jsonl")).unwrap();
    assert_eq!((full.records, full.warning.as_deref()), (5, None));
    assert_eq!(records.len() as u64, 5 + cut.records);
}

#[test]
fn implausible_litellm_values_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let lines = payload_lines();
    let mut huge: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    huge["prompt_tokens"] = serde_json::json!(1e308);
    let mut negative: serde_json::Value = serde_json::from_str(&lines[2]).unwrap();
    negative["response_cost"] = serde_json::json!(-1e300);
    let mut minus_tokens: serde_json::Value = serde_json::from_str(&lines[4]).unwrap();
    minus_tokens["completion_tokens"] = serde_json::json!(-5);
    let text = format!("{huge}\n{}\n{negative}\n{}\n{minus_tokens}\n", lines[1], lines[3]);
    let path = write(dir.path(), "bad_values.jsonl", &text);
    let (records, s) = import_one(&path).unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!((s[0].corrupt_lines, s[0].implausible_rows), (3, 3));
    let reasons: Vec<(u64, &str)> = s[0].corrupt.iter().map(|c| (c.line, c.error.as_str())).collect();
    assert!(
        reasons[0].1.contains("prompt_tokens") && reasons[0].0 == 1,
        "{reasons:?}"
    );
    assert!(
        reasons[1].1.contains("response_cost") && reasons[1].0 == 3,
        "{reasons:?}"
    );
    assert!(
        reasons[2].1.contains("completion_tokens") && reasons[2].0 == 5,
        "{reasons:?}"
    );
    let r = report(&[path]);
    assert!(r.cost.total_usd < 1.0, "total cost {}", r.cost.total_usd);
    // The report says how many rows were rejected, and why.
    let md = tollgate_report::render(&r, tollgate_report::Format::Md, tollgate_report::Lang::En);
    assert!(md.contains("Rows rejected for implausible values"), "{md}");
    assert!(md.contains("$10,000 for one request): 3."), "{md}");
    assert!(md.contains("implausible prompt_tokens"), "{md}");
    let tr = tollgate_report::render(&r, tollgate_report::Format::Md, tollgate_report::Lang::Tr);
    assert!(tr.contains("Olanaksız değerler nedeniyle reddedilen satırlar"), "{tr}");
    assert!(tr.contains("10.000 $ üstü): 3."), "{tr}");

    // SpendLogs: the same through `spend` and the token columns, as JSON lines and as CSV.
    let rows: Vec<String> = std::fs::read_to_string(fixture("spend_logs.jsonl"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let mut a: serde_json::Value = serde_json::from_str(&rows[0]).unwrap();
    a["spend"] = serde_json::json!(-1e300);
    let mut b: serde_json::Value = serde_json::from_str(&rows[2]).unwrap();
    b["prompt_tokens"] = "1e308".into();
    let text = format!("{a}\n{}\n{b}\n", rows[1]);
    let path = write(dir.path(), "bad_spend.jsonl", &text);
    let (records, s) = import_one(&path).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!((s[0].corrupt_lines, s[0].implausible_rows), (2, 2));
    let csv = std::fs::read_to_string(fixture("spend_logs.csv")).unwrap();
    let mut rows: Vec<String> = csv.lines().map(str::to_string).collect();
    // The CSV's spend column, set to a negative value in the first data row.
    let header: Vec<&str> = rows[0].split(',').collect();
    let spend_col = header.iter().position(|h| *h == "spend").unwrap();
    let mut cells = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(rows[1].as_bytes())
        .records()
        .next()
        .unwrap()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect::<Vec<_>>();
    cells[spend_col] = "-1e300".into();
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&cells).unwrap();
    rows[1] = String::from_utf8(w.into_inner().unwrap())
        .unwrap()
        .trim_end()
        .to_string();
    let path = write(dir.path(), "bad_spend.csv", &(rows.join("\n") + "\n"));
    let (records, s) = import_one(&path).unwrap();
    assert_eq!(records.len(), 4);
    assert_eq!((s[0].corrupt_lines, s[0].implausible_rows), (1, 1));
    assert!(s[0].corrupt[0].error.contains("spend"), "{:?}", s[0].corrupt);
}

#[test]
fn implausible_tollgate_records_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let good = rec("tg-1", "g", "deepseek/deepseek-v3.2", 1000, 200);
    let mut huge = serde_json::to_value(rec("tg-2", "g", "deepseek/deepseek-v3.2", 1, 1)).unwrap();
    huge["prompt_tokens"] = serde_json::json!(u64::MAX);
    huge["cost_usd"] = serde_json::Value::Null;
    let mut negative = serde_json::to_value(rec("tg-3", "g", "deepseek/deepseek-v3.2", 1, 1)).unwrap();
    negative["cost_usd"] = serde_json::json!(-1e300);
    let text = format!("{}\n{huge}\n{negative}\n", serde_json::to_string(&good).unwrap());
    let path = write(dir.path(), "records.jsonl", &text);
    let (records, s) = import_one(&path).unwrap();
    assert_eq!(records, vec![good]);
    assert_eq!((s[0].corrupt_lines, s[0].implausible_rows), (2, 2));
}

#[test]
fn a_csv_line_of_spaces_is_blank() {
    let dir = tempfile::tempdir().unwrap();
    let csv = std::fs::read_to_string(fixture("spend_logs.csv")).unwrap();
    let mut lines: Vec<&str> = csv.lines().collect();
    lines.insert(3, " \t ");
    let path = write(dir.path(), "spaces.csv", &(lines.join("\n") + "\n"));
    let (records, s) = import_one(&path).unwrap();
    assert_eq!(records.len(), 5);
    assert_eq!(s[0].corrupt_lines, 0, "{:?}", s[0].corrupt);

    // A row that is not a record is named by its line, with LF or CRLF line ends.
    lines.insert(5, "bogus-row");
    for (name, end) in [("lf.csv", "\n"), ("crlf.csv", "\r\n")] {
        let path = write(dir.path(), name, &(lines.join(end) + end));
        let (records, s) = import_one(&path).unwrap();
        assert_eq!(records.len(), 5);
        assert_eq!(
            s[0].corrupt.iter().map(|c| c.line).collect::<Vec<_>>(),
            vec![6],
            "{name}"
        );
    }
}

/// Hands out `data` up to `limit` bytes, then fails like a dying disk.
struct FailAfter {
    data: std::io::Cursor<Vec<u8>>,
    limit: u64,
}

impl std::io::Read for FailAfter {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.limit - self.data.position();
        if left == 0 {
            return Err(std::io::Error::other("input/output error"));
        }
        let n = buf.len().min(left as usize);
        std::io::Read::read(&mut self.data, &mut buf[..n])
    }
}

#[test]
fn a_csv_row_cut_by_a_read_error_is_not_a_record() {
    let csv = std::fs::read(fixture("spend_logs.csv")).unwrap();
    // Cut inside the third data row, two characters into its start time: the cell `20` would
    // read as epoch second 20.
    let text = String::from_utf8(csv.clone()).unwrap();
    let row3 = text.match_indices('\n').nth(2).unwrap().0 + 1;
    let cut = row3 + text[row3..].find(",2026-").unwrap() + 3;
    let prices = PriceTable::builtin();
    let importer = Importer {
        prices: &prices,
        on_bytes: None,
    };
    let mut records = Vec::new();
    let reader = FailAfter {
        data: std::io::Cursor::new(csv),
        limit: cut as u64,
    };
    let s = importer
        .import_reader("spend.csv", Box::new(reader), &mut |r| {
            records.push(r);
            true
        })
        .unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(s.corrupt_lines, 1);
    assert_eq!(s.corrupt[0].line, 4);
    assert!(s.corrupt[0].error.contains("cut short"), "{:?}", s.corrupt);
    let warning = s.warning.unwrap();
    assert!(
        warning.contains("input/output error") && warning.contains("2 records"),
        "{warning}"
    );
}

#[test]
fn a_damaged_sqlite_page_keeps_the_rows_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let (writer, handle) = tollgate_store::RecordWriter::start(tollgate_store::StoreConfig {
        data_dir: data_dir.clone(),
        jsonl: None,
        capacity: 4096,
        durability: Default::default(),
        instance_id: None,
        shared: None,
        retention_days: None,
    })
    .unwrap();
    let n = 2000;
    for i in 0..n {
        writer.submit(rec(&format!("tg-{i:05}"), "g", "deepseek/deepseek-v3.2", 1000, 100));
    }
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    assert_eq!(rt.block_on(handle.shutdown()).unwrap().written, n);
    let db = data_dir.join(tollgate_store::DB_FILE_NAME);
    // Fold the WAL into the file, then damage the last leaf page of the records table (page type
    // 0x0D) that is not the first page.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode = DELETE;")
        .unwrap();
    let mut bytes = std::fs::read(&db).unwrap();
    let page = u16::from_be_bytes([bytes[16], bytes[17]]) as usize;
    let leaf = (1..bytes.len() / page)
        .rev()
        .find(|p| bytes[p * page] == 0x0D)
        .expect("a table leaf page");
    bytes[leaf * page..(leaf + 1) * page].fill(0xA5);
    std::fs::write(&db, &bytes).unwrap();

    let (records, s) = import_one(&db).unwrap();
    assert!(
        !records.is_empty() && records.len() < n as usize,
        "{} records",
        records.len()
    );
    assert_eq!(s[0].records as usize, records.len());
    let warning = s[0].warning.as_deref().expect("a warning");
    assert!(warning.contains("malformed"), "{warning}");
}
