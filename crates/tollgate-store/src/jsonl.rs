//! The JSONL sink: one `Record` as JSON per line, exactly its serde field names, so other tools
//! (jq, DuckDB, a spreadsheet import) read it without tollgate. The appender follows the path, not
//! the file: after logrotate renames or deletes it, the next batch goes to a new file at the path.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Lines, Write};
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

/// Appends whole batches of lines to the file at `path`.
pub(crate) struct JsonlAppender {
    path: PathBuf,
    file: File,
}

impl JsonlAppender {
    /// Opens (creating it and its directory if need be) the file for appending.
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        let io_err = |source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io_err)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io_err)?;
        Ok(JsonlAppender {
            path: path.to_path_buf(),
            file,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the path again (SIGHUP after a rotation). On failure the old handle stays, so
    /// nothing is lost that could still be written somewhere.
    pub(crate) fn reopen(&mut self) -> Result<(), StoreError> {
        *self = JsonlAppender::open(&self.path)?;
        Ok(())
    }

    /// Reopens when the path no longer names the open file (renamed or deleted by logrotate).
    /// One `stat` per batch: at most ~100 a second.
    pub(crate) fn follow_path(&mut self) -> Result<(), StoreError> {
        if !self.path_moved() {
            return Ok(());
        }
        tracing::info!(path = %self.path.display(), "JSONL file was moved or deleted; opening a new one at its path");
        self.reopen()
    }

    #[cfg(unix)]
    fn path_moved(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        let (Ok(at_path), Ok(open)) = (std::fs::metadata(&self.path), self.file.metadata()) else {
            // Missing path (deleted): a new file belongs there. An unreadable handle: try anew.
            return true;
        };
        (at_path.dev(), at_path.ino()) != (open.dev(), open.ino())
    }

    #[cfg(not(unix))]
    fn path_moved(&self) -> bool {
        !self.path.exists()
    }

    /// Appends `lines` (whole lines, each ending in `\n`) in one write. When the write fails
    /// midway (disk full) the file is cut back to where it was, so a retry of the batch neither
    /// tears a line nor writes one twice.
    pub(crate) fn append(&mut self, lines: &[u8]) -> std::io::Result<()> {
        let before = self.file.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
        let result = self.file.write_all(lines);
        if result.is_err()
            && let Some(len) = before
            && let Err(e) = self.file.set_len(len)
        {
            tracing::debug!(path = %self.path.display(), error = %e, "cannot cut back a partly written JSONL batch");
        }
        result
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
