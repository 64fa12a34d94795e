//! The JSONL sink's format: one `Record` as JSON per line, exactly its serde field names, so other
//! tools (jq, DuckDB, a spreadsheet import) read it without tollgate.

use std::fs::File;
use std::io::{BufRead, BufReader, Lines};
use std::path::{Path, PathBuf};

use tollgate_core::Record;

use crate::error::StoreError;

/// Parses one JSONL line. Blank lines (a trailing newline, a hand-edited file) are `Ok(None)`.
pub fn parse_jsonl_line(line: &str) -> Result<Option<Record>, StoreError> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    serde_json::from_str(line).map(Some).map_err(StoreError::Line)
}

/// Streams the records of a JSONL file, skipping blank lines; errors name the line number.
pub fn read_jsonl(path: &Path) -> Result<JsonlRecords, StoreError> {
    let file = File::open(path).map_err(|source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(JsonlRecords {
        lines: BufReader::new(file).lines(),
        path: path.to_path_buf(),
        line_no: 0,
    })
}

/// Iterator over a JSONL file's records; see [`read_jsonl`].
pub struct JsonlRecords {
    lines: Lines<BufReader<File>>,
    path: PathBuf,
    line_no: usize,
}

impl Iterator for JsonlRecords {
    type Item = Result<Record, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.line_no += 1;
            let line = match self.lines.next()? {
                Ok(line) => line,
                Err(source) => {
                    return Some(Err(StoreError::Io {
                        path: self.path.clone(),
                        source,
                    }));
                }
            };
            match parse_jsonl_line(&line) {
                Ok(None) => continue,
                Ok(Some(record)) => return Some(Ok(record)),
                Err(StoreError::Line(source)) => {
                    return Some(Err(StoreError::Decode {
                        path: self.path.clone(),
                        location: format!("line {}", self.line_no),
                        source,
                    }));
                }
                Err(other) => return Some(Err(other)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_lines_are_skipped_and_bad_lines_rejected() {
        assert!(parse_jsonl_line("  \n").unwrap().is_none());
        let r = parse_jsonl_line(r#"{"request_id":"a","model":"m"}"#).unwrap().unwrap();
        assert_eq!(r.request_id, "a");
        assert_eq!(r.model, "m");
        assert!(parse_jsonl_line("{not json").is_err());
    }
}
