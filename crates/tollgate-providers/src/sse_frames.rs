//! An upstream's SSE byte stream cut into events, keeping each event's own bytes where it can.
//!
//! OpenAI-family providers send every event as one `data: <json>\n\n` block, and the gateway
//! relays most of them unchanged. Cutting such blocks out of the response's chunks (a search for
//! the blank line, a UTF-8 check) and keeping the block itself ([`UpstreamEvent::raw`]) lets the
//! relay send the upstream's bytes instead of building each event again, and skips a general
//! parser's per-line work. Anything else (comments between data lines, `event:` or `id:` fields,
//! several `data:` lines, CR line ends, a byte order mark, invalid UTF-8) hands the rest of the
//! stream to `sse-parse`, which implements the whole WHATWG algorithm; both give the same events
//! (`tests` checks them against each other over random streams and chunkings).

use std::borrow::Cow;
use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use sse_parse::SseParser;

/// One event of an upstream stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamEvent {
    /// Its type: `message` unless the block named another.
    pub event: Cow<'static, str>,
    /// Its data lines, joined.
    pub data: String,
    /// The block as received, when it was exactly `data: {data}\n\n`: what relaying it unchanged
    /// sends.
    pub raw: Option<Bytes>,
}

/// Cuts events out of the chunks it is fed. Sans-IO: feed chunks, take events, finish at the end.
#[derive(Debug, Default)]
pub struct FrameSplitter {
    /// The start of a block that has not ended yet (a block cut by a chunk boundary).
    partial: BytesMut,
    /// No byte has been fed yet (a byte order mark may only come first).
    started: bool,
    /// Set once a block is not a plain data block: the rest goes through the general parser.
    general: Option<SseParser>,
    ready: VecDeque<UpstreamEvent>,
}

impl FrameSplitter {
    pub fn new() -> FrameSplitter {
        FrameSplitter::default()
    }

    /// Feeds one chunk of the stream.
    pub fn feed(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        if let Some(parser) = &mut self.general {
            parser.feed(&chunk);
            self.take_general();
            return;
        }
        if !self.started {
            self.started = true;
            // A byte order mark (or a first byte of one) is the general parser's to strip.
            if chunk[0] == 0xEF {
                return self.hand_over(chunk);
            }
        }
        // A block cut by the last chunk boundary is completed by copying; the rest is sliced.
        let buf = if self.partial.is_empty() {
            chunk
        } else {
            // Only the new bytes are searched (and the last old one, a blank line's first half),
            // so a long block arriving in many chunks is scanned once.
            let from = self.partial.len() - 1;
            self.partial.extend_from_slice(&chunk);
            if blank_line(&self.partial[from..]).is_none() {
                if memchr::memchr(b'\r', &self.partial[from..]).is_some() {
                    let rest = self.partial.split().freeze();
                    self.hand_over(rest);
                }
                return;
            }
            self.partial.split().freeze()
        };
        let mut at = 0;
        while let Some(len) = blank_line(&buf[at..]) {
            let block = &buf[at..at + len];
            if block.first() == Some(&b':') && memchr::memchr2(b'\n', b'\r', block).is_none() {
                // A comment alone (a keep-alive): no event.
                at += len + 2;
                continue;
            }
            match plain_data(block) {
                Some(data) => {
                    self.ready.push_back(UpstreamEvent {
                        event: Cow::Borrowed("message"),
                        data: data.to_string(),
                        raw: Some(buf.slice(at..at + len + 2)),
                    });
                    at += len + 2;
                }
                None => return self.hand_over(buf.slice(at..)),
            }
        }
        let rest = &buf[at..];
        // A CR may end lines: blocks would then never end with "\n\n" here.
        if memchr::memchr(b'\r', rest).is_some() {
            return self.hand_over(buf.slice(at..));
        }
        self.partial.extend_from_slice(rest);
    }

    /// The next event cut so far.
    pub fn next_event(&mut self) -> Option<UpstreamEvent> {
        self.ready.pop_front()
    }

    /// The stream ended: a block without its closing blank line is dropped (as the WHATWG
    /// algorithm does).
    pub fn finish(&mut self) {
        self.partial.clear();
        if let Some(parser) = &mut self.general {
            parser.finish();
            self.take_general();
        }
    }

    /// From here on the general parser reads the stream, starting with `rest`.
    fn hand_over(&mut self, rest: Bytes) {
        let mut parser = SseParser::new();
        parser.feed(&rest);
        self.general = Some(parser);
        self.take_general();
    }

    fn take_general(&mut self) {
        if let Some(parser) = &mut self.general {
            while let Some(e) = parser.next_event() {
                self.ready.push_back(UpstreamEvent {
                    event: Cow::Owned(e.event),
                    data: e.data,
                    raw: None,
                });
            }
        }
    }
}

/// Where the first blank line's "\n\n" starts. A line search with a look at the next byte:
/// building a substring searcher for each call cost more than the search.
fn blank_line(buf: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = memchr::memchr(b'\n', &buf[from..]) {
        let at = from + i;
        if buf.get(at + 1) == Some(&b'\n') {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// The data of a block that is exactly one `data: ` line of valid UTF-8.
fn plain_data(block: &[u8]) -> Option<&str> {
    let data = block.strip_prefix(b"data: ")?;
    if memchr::memchr2(b'\n', b'\r', data).is_some() {
        return None;
    }
    std::str::from_utf8(data).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn split(stream: &[u8], cuts: &[usize]) -> Vec<UpstreamEvent> {
        let mut s = FrameSplitter::new();
        let mut out = Vec::new();
        let mut from = 0;
        for &cut in cuts.iter().chain([stream.len()].iter()) {
            let to = cut.clamp(from, stream.len());
            s.feed(Bytes::copy_from_slice(&stream[from..to]));
            out.extend(std::iter::from_fn(|| s.next_event()));
            from = to;
        }
        s.finish();
        out.extend(std::iter::from_fn(|| s.next_event()));
        out
    }

    fn general(stream: &[u8]) -> Vec<(String, String)> {
        let mut p = SseParser::new();
        p.feed(stream);
        p.finish();
        std::iter::from_fn(|| p.next_event())
            .map(|e| (e.event, e.data))
            .collect()
    }

    fn pairs(events: &[UpstreamEvent]) -> Vec<(String, String)> {
        events.iter().map(|e| (e.event.to_string(), e.data.clone())).collect()
    }

    #[test]
    fn openai_blocks_keep_their_bytes_also_across_chunk_boundaries() {
        let stream = b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: [DONE]\n\n";
        for cut in 0..stream.len() {
            let events = split(stream, &[cut]);
            assert_eq!(
                pairs(&events),
                [
                    ("message", "{\"a\":1}"),
                    ("message", "{\"b\":2}"),
                    ("message", "[DONE]")
                ]
                .map(|(e, d)| (e.to_string(), d.to_string())),
                "cut at {cut}"
            );
            let raw: Vec<&[u8]> = events.iter().map(|e| e.raw.as_deref().unwrap()).collect();
            assert_eq!(raw.concat(), stream.to_vec());
        }
    }

    #[test]
    fn other_shapes_go_to_the_general_parser_from_where_they_start() {
        let stream = b"data: {\"a\":1}\n\nevent: ping\ndata: x\n\n: keep-alive\n\ndata: y\r\n\r\ndata: z\n\n";
        let events = split(stream, &[]);
        assert_eq!(pairs(&events), general(stream));
        assert!(events[0].raw.is_some());
        assert!(events[1..].iter().all(|e| e.raw.is_none()));
        assert_eq!(events[1].event, "ping");
    }

    #[test]
    fn a_comment_alone_is_skipped_without_leaving_the_fast_path() {
        let events = split(b": OPENROUTER PROCESSING\n\ndata: {}\n\n", &[]);
        assert_eq!(pairs(&events), [("message".to_string(), "{}".to_string())]);
        assert!(events[0].raw.is_some());
    }

    #[test]
    fn an_unfinished_block_at_the_end_is_dropped() {
        assert_eq!(
            pairs(&split(b"data: a\n\ndata: b\n", &[])),
            [("message".to_string(), "a".to_string())]
        );
    }

    /// Lines as upstreams send them, plain and odd.
    fn line() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "[a-z{}\":, ]{0,12}".prop_map(|d| format!("data: {d}\n")),
            1 => "[a-z ]{0,6}".prop_map(|d| format!("data:{d}\n")),
            1 => "[a-z]{0,6}".prop_map(|d| format!("event: {d}\n")),
            1 => "[a-z ]{0,6}".prop_map(|d| format!(":{d}\n")),
            1 => "[a-z]{0,4}".prop_map(|d| format!("id: {d}\n")),
            3 => Just("\n".to_string()),
            1 => Just("\r\n".to_string()),
            1 => Just("data: \u{e9}t\u{e9}\n".to_string()),
        ]
    }

    proptest! {
        #[test]
        fn the_same_events_as_the_general_parser(
            lines in proptest::collection::vec(line(), 0..24),
            cuts in proptest::collection::vec(0usize..200, 0..6),
            bom in proptest::bool::weighted(0.1),
            invalid in proptest::bool::weighted(0.1),
        ) {
            let mut stream: Vec<u8> = Vec::new();
            if bom {
                stream.extend_from_slice(&[0xEF, 0xBB, 0xBF]);
            }
            for l in &lines {
                stream.extend_from_slice(l.as_bytes());
            }
            if invalid {
                stream.extend_from_slice(b"data: \xff\n\n");
            }
            let mut cuts = cuts;
            cuts.sort_unstable();
            let events = split(&stream, &cuts);
            prop_assert_eq!(pairs(&events), general(&stream));
            for e in events.iter().filter(|e| e.raw.is_some()) {
                let framed = format!("data: {}\n\n", e.data);
                prop_assert_eq!(e.raw.as_deref().unwrap(), framed.as_bytes());
            }
        }
    }
}
