//! JSON lines, parsed in parallel and handed on in input order.
//!
//! A regular file is memory-mapped and cut into byte ranges that the rayon workers parse in
//! place ([`read_mapped`]); a range owns the lines that start in it. Where the file cannot be
//! mapped, the workers read their ranges themselves with positional reads into reused buffers
//! ([`read_file`]). A stream (gzip, stdin, a pipe) is read in blocks cut at a newline by the
//! importing thread, which decompresses while the workers parse ([`read_stream`]). Either way at
//! most [`in_flight`] ranges or blocks exist at once and records reach the sink in input order,
//! so memory stays bounded whatever the input's size.
//!
//! Read buffers are a quarter MiB on purpose: on a 2-core VM copying from the page cache into a
//! 1 MiB buffer (larger than the core's L2) cost 3.5× what copying into a 256 KiB one did, and a
//! line parsed right after its copy is still in cache.

use std::collections::VecDeque;
use std::fs::File;
use std::io::BufRead;
use std::sync::mpsc;

use tollgate_core::{PriceTable, Record};

use super::bounds::RowError;
use super::{Deferred, InputSummary, RowKind, finish_rows, parse_row_deferred};

/// Bytes read at once, and a stream block's size.
const PIECE: usize = 256 << 10;
/// Bytes of a file one worker task covers: enough pieces that per-task costs vanish, few enough
/// that both workers finish together.
const RANGE: u64 = 2 << 20;
/// Past its range's end a task reads only what finishes its last line, this much at a time.
const TAIL_STEP: usize = 64 << 10;

/// Ranges or blocks read or parsed at once: two per worker keeps every worker busy while the
/// importing thread hands the oldest one's records on.
fn in_flight() -> usize {
    2 * rayon::current_num_threads() + 1
}

type Rows = Vec<(u64, Result<Record, RowError>)>;

/// One range or block, parsed.
struct Parsed {
    /// Lines in it, blank ones included, so the next one's numbers follow on.
    lines: u64,
    /// Bytes of the input it covers, for the progress bar.
    bytes: u64,
    /// Rows by their 1-based line number within it.
    rows: Rows,
    /// Its buffer, back for reuse.
    buf: Vec<u8>,
}

/// Counts a line (with its newline, as the sequential reader passed it, so that serde's error
/// positions stay the same) and parses it unless blank.
fn line<'a>(kind: RowKind, line: &'a [u8], prices: &PriceTable, n: &mut u64, rows: &mut Vec<(u64, Deferred<'a>)>) {
    *n += 1;
    if !line.iter().all(u8::is_ascii_whitespace) {
        rows.push((*n, parse_row_deferred(kind, line, prices)));
    }
}

/// Parses whole lines (the last one may lack its newline); the block's prompt fingerprints are
/// computed together at its end, two at a time (see `sha_pairs`).
fn parse_block(kind: RowKind, text: &[u8], prices: &PriceTable) -> (u64, Rows) {
    let (mut n, mut rows) = (0, Vec::new());
    let mut rest = text;
    while !rest.is_empty() {
        let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
        let (l, tail) = rest.split_at(end);
        line(kind, l, prices, &mut n, &mut rows);
        rest = tail;
    }
    (n, finish_rows(rows))
}

/// Reads and parses the lines that start in `[from, to)` of the file, a piece at a time into
/// `buf`. `start` is where the data begins (the range starting there owns its first byte); no
/// read goes past `end`, the file's length when the import began, and a file that shrank since
/// ends early, as a sequential read would.
fn parse_range(
    file: &File,
    (start, from, to, end): (u64, u64, u64, u64),
    buf: &mut Vec<u8>,
    kind: RowKind,
    prices: &PriceTable,
) -> std::io::Result<(u64, Rows)> {
    let (mut n, mut rows) = (0, Vec::new());
    if buf.is_empty() {
        buf.resize(PIECE, 0);
    }
    // The byte before the range tells whether a line starts at its first byte.
    let mut pos = if from == start { from } else { from - 1 };
    // File offset of buf[0]; bytes held; where the line in hand starts (None: before the first
    // line this range owns).
    let (mut base, mut len) = (pos, 0usize);
    let mut at = (from == start).then_some(0usize);
    loop {
        // Keep only the unfinished line, at the front.
        let keep = at.unwrap_or(len);
        buf.copy_within(keep..len, 0);
        base += keep as u64;
        len -= keep;
        if at.is_some() {
            at = Some(0);
        }
        if len == buf.len() {
            buf.resize(len * 2, 0);
        }
        // Up to the range's end in pieces, then only enough to finish the last line.
        let want = if pos < to { (to - pos) as usize } else { TAIL_STEP };
        let want = want.min(buf.len() - len).min((end - pos.min(end)) as usize);
        let got = if want == 0 {
            0
        } else {
            read_at_retrying(file, &mut buf[len..len + want], pos)?
        };
        if got == 0 {
            // The end: a last line without a newline is still a line.
            if let Some(a) = at.filter(|a| *a < len && base + (*a as u64) < to) {
                let mut one = Vec::new();
                line(kind, &buf[a..len], prices, &mut n, &mut one);
                rows.extend(finish_rows(one));
            }
            return Ok((n, rows));
        }
        pos += got as u64;
        let mut search = len;
        len += got;
        while let Some(i) = memchr::memchr(b'\n', &buf[search..len]) {
            let next = search + i + 1;
            if let Some(a) = at {
                // The buffer moves on: this line's fingerprint is computed now.
                let mut one = Vec::new();
                line(kind, &buf[a..next], prices, &mut n, &mut one);
                rows.extend(finish_rows(one));
            }
            at = Some(next);
            search = next;
            if base + next as u64 >= to {
                return Ok((n, rows));
            }
        }
    }
}

fn read_at_retrying(file: &File, buf: &mut [u8], at: u64) -> std::io::Result<usize> {
    loop {
        match read_at(file, buf, at) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            r => return r,
        }
    }
}

/// A positional read. On Windows it moves the file's position too, so a caller that hands the
/// file on afterwards rewinds it first.
pub fn read_at(file: &File, buf: &mut [u8], at: u64) -> std::io::Result<usize> {
    #[cfg(unix)]
    return std::os::unix::fs::FileExt::read_at(file, buf, at);
    #[cfg(windows)]
    return std::os::windows::fs::FileExt::seek_read(file, buf, at);
    #[cfg(not(any(unix, windows)))]
    return Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "no positional reads on this platform",
    ));
}

/// Hands parsed rows to the sink in order, counting bad ones; false when the sink stopped.
struct Emitter<'s> {
    /// Lines before the next range or block.
    line: u64,
    summary: &'s mut InputSummary,
    sink: &'s mut dyn FnMut(Record) -> bool,
}

impl Emitter<'_> {
    fn emit(&mut self, parsed: &mut Parsed) -> bool {
        for (n, r) in parsed.rows.drain(..) {
            match r {
                Ok(rec) => {
                    self.summary.records += 1;
                    if !(self.sink)(rec) {
                        return false;
                    }
                }
                Err(error) => self.summary.reject(self.line + n, &error),
            }
        }
        self.line += parsed.lines;
        true
    }
}

/// What reading the lines met: `Some` when a read failed and the lines from there on were not
/// read.
pub type Fault = Option<std::io::Error>;

/// Reads a regular file's lines from byte `start` (line `first_line` + 1) to `end`.
#[allow(clippy::too_many_arguments)]
pub fn read_file(
    file: &File,
    (start, end): (u64, u64),
    kind: RowKind,
    first_line: u64,
    prices: &PriceTable,
    on_bytes: Option<&(dyn Fn(u64) + Sync)>,
    summary: &mut InputSummary,
    sink: &mut dyn FnMut(Record) -> bool,
) -> Fault {
    let mut ranges = (start..end)
        .step_by(RANGE as usize)
        .map(|from| (from, (from + RANGE).min(end)));
    let mut out = Emitter {
        line: first_line,
        summary,
        sink,
    };
    let mut fault = None;
    rayon::in_place_scope(|scope| {
        let mut pending: VecDeque<mpsc::Receiver<std::io::Result<Parsed>>> = VecDeque::new();
        let mut free: Vec<Vec<u8>> = Vec::new();
        let mut go_on = true;
        loop {
            while go_on && pending.len() < in_flight() {
                let Some((from, to)) = ranges.next() else { break };
                let (tx, rx) = mpsc::channel();
                let mut buf = free.pop().unwrap_or_default();
                scope.spawn(move |_| {
                    let parsed = parse_range(file, (start, from, to, end), &mut buf, kind, prices);
                    let _ = tx.send(parsed.map(|(lines, rows)| Parsed {
                        lines,
                        bytes: to - from,
                        rows,
                        buf,
                    }));
                });
                pending.push_back(rx);
            }
            let Some(rx) = pending.pop_front() else { break };
            if !go_on {
                // Stopped: the ones still in flight finish, unread.
                continue;
            }
            match rx.recv() {
                Ok(Ok(mut parsed)) => {
                    go_on = out.emit(&mut parsed);
                    if let Some(f) = on_bytes {
                        f(parsed.bytes);
                    }
                    free.push(parsed.buf);
                }
                Ok(Err(e)) => {
                    fault = Some(e);
                    go_on = false;
                }
                // The worker panicked; the scope passes the panic on when it ends.
                Err(_) => go_on = false,
            }
        }
    });
    fault
}

/// The lines that start in `data[from..to]`, whole; `start` is where the data begins.
fn owned_lines(data: &[u8], start: usize, from: usize, to: usize) -> &[u8] {
    // A line starts after a newline; the byte before the range says whether one starts at `from`.
    let first = if from == start {
        from
    } else {
        match memchr::memchr(b'\n', &data[from - 1..to - 1]) {
            Some(i) => from + i,
            None => return &[],
        }
    };
    let last = memchr::memchr(b'\n', &data[to - 1..]).map_or(data.len(), |i| to + i);
    &data[first..last]
}

/// What [`read_mapped`] gets to say that the pages before a byte offset are done with.
pub type Release<'a> = &'a dyn Fn(usize);
/// What [`read_mapped`] calls in a worker before it reads a byte range, to map it in one go.
pub type Prepare<'a> = &'a (dyn Fn(std::ops::Range<usize>) + Sync);

/// Reads a memory-mapped file's lines from byte `start` (line `first_line` + 1) to its end,
/// without copying them. `release(n)` is called once the lines before byte `n` are handed on,
/// so the caller can drop those pages from the process (the page cache keeps them).
#[allow(clippy::too_many_arguments)]
pub fn read_mapped(
    data: &[u8],
    start: usize,
    kind: RowKind,
    first_line: u64,
    prices: &PriceTable,
    on_bytes: Option<&(dyn Fn(u64) + Sync)>,
    (prepare, release): (Prepare<'_>, Release<'_>),
    summary: &mut InputSummary,
    sink: &mut dyn FnMut(Record) -> bool,
) {
    let end = data.len();
    let mut ranges = (start..end)
        .step_by(RANGE as usize)
        .map(|from| (from, (from + RANGE as usize).min(end)));
    let mut out = Emitter {
        line: first_line,
        summary,
        sink,
    };
    rayon::in_place_scope(|scope| {
        let mut pending: VecDeque<(usize, mpsc::Receiver<Parsed>)> = VecDeque::new();
        let mut go_on = true;
        loop {
            while go_on && pending.len() < in_flight() {
                let Some((from, to)) = ranges.next() else { break };
                let (tx, rx) = mpsc::channel();
                scope.spawn(move |_| {
                    prepare(from..to);
                    let (lines, rows) = parse_block(kind, owned_lines(data, start, from, to), prices);
                    let _ = tx.send(Parsed {
                        lines,
                        bytes: (to - from) as u64,
                        rows,
                        buf: Vec::new(),
                    });
                });
                pending.push_back((to, rx));
            }
            let Some((to, rx)) = pending.pop_front() else { break };
            if !go_on {
                continue;
            }
            match rx.recv() {
                Ok(mut parsed) => {
                    go_on = out.emit(&mut parsed);
                    if let Some(f) = on_bytes {
                        f(parsed.bytes);
                    }
                    // The next range reads from the byte before its start.
                    release(to - 1);
                }
                Err(_) => go_on = false,
            }
        }
    });
}

/// Reads a stream's lines (line `first_line` + 1 on) to its end; the reader ends the stream at a
/// fault itself (see `StopAtFault`).
pub fn read_stream(
    reader: &mut dyn BufRead,
    kind: RowKind,
    first_line: u64,
    prices: &PriceTable,
    summary: &mut InputSummary,
    sink: &mut dyn FnMut(Record) -> bool,
) -> std::io::Result<()> {
    let mut out = Emitter {
        line: first_line,
        summary,
        sink,
    };
    let mut result = Ok(());
    rayon::in_place_scope(|scope| {
        let mut pending: VecDeque<mpsc::Receiver<Parsed>> = VecDeque::new();
        let mut free: Vec<Vec<u8>> = Vec::new();
        // The part of the last read after its last newline, carried into the next block.
        let mut carry: Vec<u8> = Vec::new();
        let mut eof = false;
        let mut go_on = true;
        loop {
            while go_on && !eof && pending.len() < in_flight() {
                let mut buf = free.pop().unwrap_or_default();
                if buf.len() < PIECE.max(carry.len() + TAIL_STEP) {
                    buf.resize(PIECE.max(carry.len() + TAIL_STEP), 0);
                }
                buf[..carry.len()].copy_from_slice(&carry);
                let mut len = carry.len();
                carry.clear();
                // Fill the block, and on past its size until a newline if one line is longer.
                // `clean`: how much of the buffer is known to hold no newline.
                let mut clean = 0;
                loop {
                    if len == buf.len() {
                        match memchr::memrchr(b'\n', &buf[clean..len]) {
                            Some(i) => {
                                carry.extend_from_slice(&buf[clean + i + 1..len]);
                                len = clean + i + 1;
                                break;
                            }
                            None => {
                                clean = len;
                                buf.resize(len * 2, 0);
                            }
                        }
                    }
                    match reader.read(&mut buf[len..]) {
                        Ok(0) => {
                            eof = true;
                            break;
                        }
                        Ok(n) => len += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            result = Err(e);
                            eof = true;
                            break;
                        }
                    }
                }
                if len == 0 {
                    free.push(buf);
                    break;
                }
                let (tx, rx) = mpsc::channel();
                scope.spawn(move |_| {
                    let (lines, rows) = parse_block(kind, &buf[..len], prices);
                    let _ = tx.send(Parsed {
                        lines,
                        bytes: len as u64,
                        rows,
                        buf,
                    });
                });
                pending.push_back(rx);
            }
            let Some(rx) = pending.pop_front() else { break };
            if !go_on {
                continue;
            }
            match rx.recv() {
                Ok(mut parsed) => {
                    go_on = out.emit(&mut parsed);
                    free.push(parsed.buf);
                }
                Err(_) => go_on = false,
            }
        }
    });
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every way of cutting a file into ranges gives each line to exactly one range, in order,
    /// whatever the buffer's size.
    #[test]
    fn ranges_own_each_line_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let text = b"# a\n\n# bb\n# ccc\n\n\n# dddd\n  \n# eeeee";
        std::fs::write(&path, text).unwrap();
        let file = File::open(&path).unwrap();
        let prices = PriceTable::default();
        let want = parse_block(RowKind::Tollgate, text, &prices);
        let lines = |r: &Rows| r.iter().map(|(n, e)| (*n, e.clone().unwrap_err())).collect::<Vec<_>>();
        for start in [0u64, 4, 5] {
            let want = parse_block(RowKind::Tollgate, &text[start as usize..], &prices);
            for step in 1..=text.len() as u64 {
                for buf_len in [1, 3, PIECE] {
                    let (mut n, mut rows) = (0, Vec::new());
                    let mut from = start;
                    while from < text.len() as u64 {
                        let to = (from + step).min(text.len() as u64);
                        let mut buf = vec![b'x'; buf_len];
                        let end = text.len() as u64;
                        let (k, r) =
                            parse_range(&file, (start, from, to, end), &mut buf, RowKind::Tollgate, &prices).unwrap();
                        rows.extend(r.into_iter().map(|(i, e)| (n + i, e)));
                        n += k;
                        from = to;
                    }
                    assert_eq!(
                        (n, lines(&rows)),
                        (want.0, lines(&want.1)),
                        "start {start} step {step} buf {buf_len}"
                    );
                }
            }
        }
        assert_eq!(want.0, 9);
    }

    #[test]
    fn mapped_ranges_own_each_line_once() {
        let text = b"a\n\nbb\nccc\n\n\ndddd\neeeee";
        for start in [0usize, 2, 3] {
            for step in 1..=text.len() {
                let mut got = Vec::new();
                for from in (start..text.len()).step_by(step) {
                    got.extend_from_slice(owned_lines(text, start, from, (from + step).min(text.len())));
                }
                assert_eq!(got, &text[start..], "start {start} step {step}");
            }
        }
    }
}
