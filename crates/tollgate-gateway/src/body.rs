//! A request body as the gateway keeps it: the client's bytes, and its top-level fields as
//! slices of them, each the raw JSON text the client sent.
//!
//! The stages read the few small fields they act on (`model`, `stream`, the max tokens, the
//! cache controls) by parsing just those. The large ones (`messages`, `tools`) go to OpenAI-family
//! providers as the client's own bytes: never built into a tree of values and written back out,
//! which was the largest share of the gateway's own CPU per request, and never copied either
//! ([`RequestBody::segments`] hands them to the socket as slices of the buffer they arrived in;
//! the copies of a 16 KB prompt were most of the serving threads' `memcpy`, bench/notes.md
//! session 12). Translating to another wire format, a workflow's steps and prompt-cache markers
//! ask for the whole tree ([`RequestBody::to_map`]).
//!
//! Fields are kept sorted by name, as the value tree kept them before, so what the provider
//! receives is unchanged; a repeated field keeps its last value, as before.

use std::borrow::Cow;
use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tollgate_core::{ErrorKind, GatewayError};

use crate::upstream_client::Segments;

/// A field this long or longer is sent as its own segment (a slice of the client's buffer);
/// shorter ones are copied together with the keys around them, so a body is a handful of
/// segments (the socket takes them in one `writev`) rather than one per field.
const OWN_SEGMENT: usize = 512;

#[derive(Debug, Clone, Default)]
pub struct RequestBody {
    /// Name → raw JSON text; both slices of the client's buffer where they can be.
    fields: BTreeMap<ByteString, ByteString>,
}

/// A key as parsed: borrowed from the body unless it held an escape.
#[derive(Deserialize, PartialEq, Eq, PartialOrd, Ord)]
struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

impl RequestBody {
    /// [`RequestBody::from_bytes`] of a copy of `bytes`.
    #[cfg(test)]
    pub fn parse(bytes: &[u8]) -> Result<RequestBody, GatewayError> {
        RequestBody::from_bytes(Bytes::copy_from_slice(bytes))
    }

    /// Parses a client's body: a JSON object, or 400 saying what is wrong. The fields keep the
    /// buffer alive and point into it.
    pub fn from_bytes(bytes: Bytes) -> Result<RequestBody, GatewayError> {
        // UTF-8 is checked once here, and the parse below then does not check it again.
        let text = ByteString::try_from(bytes).map_err(|e| {
            // JSON is UTF-8 (RFC 8259); the value parser passed such a body as "not an object".
            GatewayError::new(
                ErrorKind::InvalidRequest,
                format!(
                    "request body is not valid JSON: it is not UTF-8 (byte {} starts an invalid sequence)",
                    e.valid_up_to()
                ),
            )
        })?;
        let parsed = match serde_json::from_str::<BTreeMap<Key<'_>, &RawValue>>(&text) {
            Ok(parsed) => parsed,
            Err(_) => return Err(syntax_error(text.as_bytes())),
        };
        let fields = parsed
            .into_iter()
            .map(|(Key(k), v)| {
                let key = match k {
                    Cow::Borrowed(k) => text.slice_ref(k),
                    Cow::Owned(k) => ByteString::from(k),
                };
                (key, text.slice_ref(v.get()))
            })
            .collect();
        Ok(RequestBody { fields })
    }

    /// A body from a value tree (workflow steps build theirs that way).
    pub fn from_map(map: &Map<String, Value>) -> RequestBody {
        let fields = map
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    ByteString::from(k.as_str()),
                    ByteString::from(serde_json::to_string(v).ok()?),
                ))
            })
            .collect();
        RequestBody { fields }
    }

    /// The whole body as a value tree, for the stages that rewrite its content.
    pub fn to_map(&self) -> Map<String, Value> {
        self.fields
            .iter()
            .filter_map(|(k, v)| Some((k.to_string(), serde_json::from_str(v).ok()?)))
            .collect()
    }

    /// The field's raw JSON text.
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(|v| &**v)
    }

    /// The field's raw JSON text as held: a copy of it shares the client's buffer.
    pub fn field(&self, name: &str) -> Option<&ByteString> {
        self.fields.get(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.fields.contains_key(name)
    }

    /// The field read as `T`; `None` when it is absent or not a `T` (as `Value::as_str` and its
    /// kin answer for a value of another type).
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Option<T> {
        serde_json::from_str(self.raw(name)?).ok()
    }

    /// Whether the field is a JSON array, and whether that array is empty.
    pub fn array(&self, name: &str) -> Option<ArrayShape> {
        let raw = self.raw(name)?.trim_start();
        let inner = raw.strip_prefix('[')?;
        Some(if inner.trim_start().starts_with(']') {
            ArrayShape::Empty
        } else {
            ArrayShape::NonEmpty
        })
    }

    /// Sets a field to `value`.
    pub fn set(&mut self, name: &str, value: &impl Serialize) {
        // Serialising the gateway's own values (strings, numbers, small objects) cannot fail.
        if let Ok(raw) = serde_json::to_string(value) {
            self.set_raw(name, ByteString::from(raw));
        }
    }

    /// Sets a field to raw JSON text the caller took from a body (a [`RequestBody::field`]).
    pub fn set_raw(&mut self, name: &str, raw: ByteString) {
        match self.fields.get_mut(name) {
            Some(slot) => *slot = raw,
            None => {
                self.fields.insert(ByteString::from(name), raw);
            }
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<ByteString> {
        self.fields.remove(name)
    }

    /// The body as JSON, as the segments to send it from: the fields' text as it is held, the
    /// long ones as slices of the client's buffer, the rest (keys, punctuation, short fields)
    /// copied into the segments between them.
    pub fn segments(&self) -> Segments {
        let mut out = Segments::new();
        let mut glue = BytesMut::with_capacity(256);
        glue.extend_from_slice(b"{");
        for (i, (k, v)) in self.fields.iter().enumerate() {
            if i > 0 {
                glue.extend_from_slice(b",");
            }
            // A key needs JSON escaping; writing a string into a buffer cannot fail.
            let _ = serde_json::to_writer(bytes::BufMut::writer(&mut glue), &**k);
            glue.extend_from_slice(b":");
            if v.len() >= OWN_SEGMENT {
                out.push(glue.split().freeze());
                out.push(v.as_bytes().clone());
            } else {
                glue.extend_from_slice(v.as_bytes());
            }
        }
        glue.extend_from_slice(b"}");
        out.push(glue.freeze());
        out
    }

    /// The body as JSON bytes in one buffer.
    #[cfg(test)]
    pub fn to_vec(&self) -> Vec<u8> {
        use bytes::{Buf, BufMut};
        let segments = self.segments();
        let mut out = Vec::with_capacity(segments.remaining());
        out.put(segments);
        out
    }
}

/// Said as the value parser says it (its messages are what clients have seen so far): valid
/// JSON that is not an object, or the syntax error.
fn syntax_error(bytes: &[u8]) -> GatewayError {
    match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
        Ok(_) => GatewayError::new(ErrorKind::InvalidRequest, "request body must be a JSON object"),
        Err(e) => GatewayError::new(
            ErrorKind::InvalidRequest,
            format!("request body is not valid JSON: {e}"),
        ),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrayShape {
    Empty,
    NonEmpty,
}

/// `raw` JSON text without the whitespace between its tokens (strings are kept as written), so
/// that two clients' spellings of the same value compare equal. It is handed to `emit` as the
/// runs of text between such whitespace (a compact value is one run), so a hash can take it
/// without a copy.
pub fn compact_runs(raw: &str, mut emit: impl FnMut(&[u8])) {
    let bytes = raw.as_bytes();
    let mut run = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b' ' | b'\n' | b'\r' | b'\t' => {
                if run < i {
                    emit(&bytes[run..i]);
                }
                i += 1;
                run = i;
            }
            b'"' => {
                // Through the closing quote, jumping between quotes and escapes.
                i += 1;
                loop {
                    match memchr::memchr2(b'"', b'\\', &bytes[i.min(bytes.len())..]) {
                        None => {
                            i = bytes.len();
                            break;
                        }
                        Some(n) if bytes[i + n] == b'\\' => i += n + 2,
                        Some(n) => {
                            i += n + 1;
                            break;
                        }
                    }
                }
            }
            _ => i += 1,
        }
    }
    let end = i.min(bytes.len());
    if run < end {
        emit(&bytes[run..end]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_say_what_the_value_parser_said() {
        assert!(
            RequestBody::parse(b"[1,2]")
                .unwrap_err()
                .message
                .contains("must be a JSON object")
        );
        let e = RequestBody::parse(b"{\"model\": ").unwrap_err();
        assert!(
            e.message.starts_with("request body is not valid JSON: EOF"),
            "{}",
            e.message
        );
    }

    #[test]
    fn fields_round_trip_sorted_with_the_last_repeat_winning() {
        let b = RequestBody::parse(br#"{"z": 1, "model": "a", "messages": [ {"role": "user"} ], "z": 2}"#).unwrap();
        assert_eq!(
            String::from_utf8(b.to_vec()).unwrap(),
            r#"{"messages":[ {"role": "user"} ],"model":"a","z":2}"#
        );
        let v: Value = serde_json::from_slice(&b.to_vec()).unwrap();
        assert_eq!(Value::Object(b.to_map()), v);
        assert_eq!(b.get::<String>("model").as_deref(), Some("a"));
        assert_eq!(b.get::<String>("z"), None);
        assert_eq!(b.array("messages"), Some(ArrayShape::NonEmpty));
        let e = RequestBody::parse(br#"{"messages": [ ] }"#).unwrap();
        assert_eq!(e.array("messages"), Some(ArrayShape::Empty));
        assert_eq!(e.array("model"), None);
    }

    #[test]
    fn a_long_field_is_sent_from_the_clients_buffer_and_the_rest_joined_around_it() {
        let prompt = "y".repeat(OWN_SEGMENT);
        let sent = Bytes::from(format!(
            r#"{{"model": "a", "messages": [{{"role": "user", "content": "{prompt}"}}], "stream": true, "k\u0065y": 1}}"#
        ));
        let b = RequestBody::from_bytes(sent.clone()).unwrap();
        let messages = b.raw("messages").unwrap();
        assert!(
            sent.as_ptr_range().contains(&messages.as_ptr()),
            "the field is a slice of the client's buffer"
        );
        assert!(sent.as_ptr_range().contains(&b.field("model").unwrap().as_ptr()));
        // A key with an escape is held unescaped, as the value parser held it.
        assert!(b.contains("key"));
        let segments = b.segments().into_inner();
        assert_eq!(segments.len(), 3, "{segments:?}");
        assert_eq!(segments[0], &br#"{"key":1,"messages":"#[..]);
        assert_eq!(segments[1].as_ptr(), messages.as_ptr(), "sent without a copy");
        assert_eq!(segments[1].len(), messages.len());
        assert_eq!(segments[2], &br#","model":"a","stream":true}"#[..]);
        let v: Value = serde_json::from_slice(&b.to_vec()).unwrap();
        assert_eq!(Value::Object(b.to_map()), v);
    }

    #[test]
    fn a_body_that_is_not_utf8_is_refused_as_the_value_parser_says() {
        let e = RequestBody::parse(b"{\"model\": \"\xff\"}").unwrap_err();
        assert_eq!(
            e.message,
            "request body is not valid JSON: it is not UTF-8 (byte 11 starts an invalid sequence)"
        );
    }

    #[test]
    fn compact_drops_whitespace_between_tokens_only() {
        let mut out = Vec::new();
        compact_runs("{ \"a b\" : [1, \"x\\\" y\" ,\n true] }", |run| {
            out.extend_from_slice(run)
        });
        assert_eq!(String::from_utf8(out).unwrap(), r#"{"a b":[1,"x\" y",true]}"#);
    }
}
