//! A field-selective reader for one JSON object per line, for the rows whose bulk the report
//! never looks at (a LiteLLM payload is ~50 KB, nearly all of it the prompt in `messages` and
//! the model map; the report needs a few hundred bytes of it).
//!
//! [`Members`] walks the top-level object once, finding where each value ends without building
//! anything, and hands only the members a serde struct names to that struct's own `Deserialize`,
//! each value read by `serde_json` from its own slice. One member can be held back by name to be
//! used as raw text (the prompt, which is only hashed).
//!
//! The walk accepts a subset of what `serde_json::from_slice` accepts for the same struct: any
//! line it is unsure of (a control character, invalid UTF-8 anywhere, an escaped key, a repeated
//! held-back key) is refused with [`Refused`], and the caller then reads the
//! line the ordinary way. So a line read here gives exactly what the ordinary read gives, and a
//! damaged line gets the ordinary read's error message.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};

/// The walk gave up on a line; read it the ordinary way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused;

/// One line's top-level object, ready to be deserialized into a struct with `#[serde(default)]`
/// (members the struct does not name are skipped unread; the held-back one is left out).
pub struct Members<'a> {
    line: &'a [u8],
    held_name: &'static str,
    held: Option<&'a [u8]>,
}

impl<'a> Members<'a> {
    /// Checks the line as a whole: after trimming JSON whitespace it must be valid UTF-8 with no
    /// byte below 0x20. Inside strings such a byte is an error for serde_json too; between tokens
    /// (a tab) it is legal, but no JSON-lines writer puts one there, so it is simply not vouched for.
    pub fn new(line: &'a [u8], held_name: &'static str) -> Result<Members<'a>, Refused> {
        let line = trim_json_ws(line);
        let (control, ascii) = control_and_ascii(line);
        if control || (!ascii && std::str::from_utf8(line).is_err()) {
            return Err(Refused);
        }
        Ok(Members {
            line,
            held_name,
            held: None,
        })
    }

    /// The held-back member's value as written, valid UTF-8 (`None` if absent or `null`); set
    /// once the struct was deserialized.
    pub fn held(&self) -> Option<&'a [u8]> {
        self.held.filter(|v| *v != b"null")
    }

    /// Walks the object, keeping the members named in `fields`.
    fn walk(&mut self, fields: &[&'static str]) -> Result<Vec<(&'static str, &'a [u8])>, Refused> {
        let b = self.line;
        let mut kept = Vec::with_capacity(fields.len());
        // The fields by name length (a bit per field), so that most keys are ruled out at once.
        let mut by_len = [0u64; 64];
        for (n, f) in fields.iter().enumerate().take(64) {
            if let Some(m) = by_len.get_mut(f.len()) {
                *m |= 1 << n;
            }
        }
        let wanted = |key: &[u8]| {
            let mut m = by_len.get(key.len()).copied().unwrap_or(0);
            while m != 0 {
                let n = m.trailing_zeros() as usize;
                if fields[n].as_bytes() == key {
                    return Some(fields[n]);
                }
                m &= m - 1;
            }
            None
        };
        let mut i = expect(b, 0, b'{')?;
        i = ws(b, i);
        if b.get(i) == Some(&b'}') {
            return if ws(b, i + 1) == b.len() {
                Ok(kept)
            } else {
                Err(Refused)
            };
        }
        loop {
            // Keys with escapes are left to serde (it unescapes before matching field names).
            let key_start = expect(b, i, b'"')?;
            let key_end = quote_or_backslash(b, key_start).ok_or(Refused)?;
            if b[key_end] != b'"' {
                return Err(Refused);
            }
            let key = &b[key_start..key_end];
            i = expect(b, ws(b, key_end + 1), b':')?;
            let value_start = ws(b, i);
            let skipped = key != self.held_name.as_bytes() && wanted(key).is_none();
            let value_end = if skipped && matches!(b.get(value_start), Some(b'{' | b'[')) {
                skip_known_or_check(key, b, value_start)?
            } else {
                skip_value(b, value_start)?
            };
            let value = &b[value_start..value_end];
            if key == self.held_name.as_bytes() {
                if self.held.is_some() {
                    return Err(Refused);
                }
                self.held = Some(value);
            } else if let Some(name) = wanted(key) {
                kept.push((name, value));
            }
            i = ws(b, value_end);
            match b.get(i) {
                Some(b',') => i = ws(b, i + 1),
                Some(b'}') => {
                    return if ws(b, i + 1) == b.len() {
                        Ok(kept)
                    } else {
                        Err(Refused)
                    };
                }
                _ => return Err(Refused),
            }
        }
    }
}

/// Large skipped objects and arrays already checked on this thread, with their key, newest
/// last. A LiteLLM payload repeats its model's `model_map_information` (8 KB of short tokens,
/// the costliest part of a line to check) on every request to that model, byte for byte:
/// comparing it with one already checked is ~20× cheaper than checking it again.
type Checked = Vec<(Box<[u8]>, Box<[u8]>)>;

thread_local! {
    static CHECKED: std::cell::RefCell<Checked> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Values smaller than this are checked each time; the cache holds this many values.
const CHECKED_MIN: usize = 1024;
const CHECKED_MAX_LEN: usize = 256 << 10;
const CHECKED_ENTRIES: usize = 16;

/// [`skip_value`] for a skipped member's object or array, unless the bytes at `i` begin with a
/// value this thread already checked under the same key: a complete object or array ends at its
/// closing bracket, so bytes that begin with one are that value, and it is valid.
fn skip_known_or_check(key: &[u8], b: &[u8], i: usize) -> Result<usize, Refused> {
    let rest = &b[i..];
    let known = CHECKED.with(|c| {
        c.borrow()
            .iter()
            .rev()
            .find(|(k, v)| **k == *key && rest.starts_with(v))
            .map(|(_, v)| v.len())
    });
    if let Some(len) = known {
        return Ok(i + len);
    }
    let end = skip_value(b, i)?;
    if (CHECKED_MIN..=CHECKED_MAX_LEN).contains(&(end - i)) {
        CHECKED.with(|c| {
            let mut c = c.borrow_mut();
            if c.len() == CHECKED_ENTRIES {
                c.remove(0);
            }
            c.push((key.into(), b[i..end].into()));
        });
    }
    Ok(end)
}

fn trim_json_ws(b: &[u8]) -> &[u8] {
    let is_ws = |c: &u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r');
    let start = b.iter().position(|c| !is_ws(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !is_ws(c)).map_or(start, |e| e + 1);
    &b[start..end]
}

/// Whether any byte is below 0x20, and whether all are ASCII (then the line is UTF-8 without
/// checking it again). One branch-free pass that the compiler vectorizes: it is the only pass
/// over every byte besides the walk itself.
fn control_and_ascii(b: &[u8]) -> (bool, bool) {
    let (mut control, mut high) = (0u8, 0u8);
    for c in b {
        control |= u8::from(*c < 0x20);
        high |= c & 0x80;
    }
    (control != 0, high == 0)
}

#[inline]
fn ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i] == b' ' {
        i += 1;
    }
    i
}

/// Position after `c` at `i`.
#[inline]
fn expect(b: &[u8], i: usize, c: u8) -> Result<usize, Refused> {
    if b.get(i) == Some(&c) { Ok(i + 1) } else { Err(Refused) }
}

/// Where the value starting at `i` ends, checking it as serde_json checks a value it skips:
/// structure, literals, number syntax, string escapes (control bytes and UTF-8 were checked for
/// the whole line). Nesting is tracked in a bit stack; deeper than 512 levels is refused.
fn skip_value(b: &[u8], mut i: usize) -> Result<usize, Refused> {
    // One bit per open container: 1 for an object, 0 for an array.
    let mut stack = [0u64; 8];
    let mut depth = 0usize;
    loop {
        // A value.
        match b.get(i).copied().ok_or(Refused)? {
            b'"' => i = skip_string(b, i + 1)?,
            b'{' | b'[' => {
                let object = b[i] == b'{';
                if depth == stack.len() * 64 {
                    return Err(Refused);
                }
                let (word, bit) = (depth / 64, depth % 64);
                stack[word] = (stack[word] & !(1u64 << bit)) | (u64::from(object) << bit);
                depth += 1;
                i = ws(b, i + 1);
                let close = if object { b'}' } else { b']' };
                if b.get(i) == Some(&close) {
                    i += 1;
                    depth -= 1;
                } else {
                    if object {
                        i = key(b, i)?;
                    }
                    continue;
                }
            }
            b't' => i = literal(b, i, b"true")?,
            b'f' => i = literal(b, i, b"false")?,
            b'n' => i = literal(b, i, b"null")?,
            b'-' | b'0'..=b'9' => i = number(b, i)?,
            _ => return Err(Refused),
        }
        // After a value: close containers or move to the next element.
        loop {
            if depth == 0 {
                return Ok(i);
            }
            let (word, bit) = ((depth - 1) / 64, (depth - 1) % 64);
            let object = stack[word] >> bit & 1 == 1;
            i = ws(b, i);
            match b.get(i).copied() {
                Some(b',') => {
                    i = ws(b, i + 1);
                    if object {
                        i = key(b, i)?;
                    }
                    break;
                }
                Some(b'}') if object => {
                    i += 1;
                    depth -= 1;
                }
                Some(b']') if !object => {
                    i += 1;
                    depth -= 1;
                }
                _ => return Err(Refused),
            }
        }
    }
}

/// A member's key and colon; returns where its value starts.
#[inline]
fn key(b: &[u8], i: usize) -> Result<usize, Refused> {
    let i = skip_string(b, expect(b, i, b'"')?)?;
    Ok(ws(b, expect(b, ws(b, i), b':')?))
}

/// The first `"` or `\\` at or after `i`. Most strings are short keys and values, for which a
/// call into memchr costs more than looking at a few words here; long ones (the prompt) go to
/// memchr's vector loop.
#[inline]
fn quote_or_backslash(b: &[u8], i: usize) -> Option<usize> {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES << 7;
    let mut j = i;
    while j + 8 <= b.len() && j < i + 64 {
        let mut word = [0u8; 8];
        word.copy_from_slice(&b[j..j + 8]);
        let w = u64::from_le_bytes(word);
        // A zero byte of `w ^ c` is a byte equal to c; the lowest flagged byte is exact.
        let q = w ^ (ONES * u64::from(b'"'));
        let s = w ^ (ONES * u64::from(b'\\'));
        let found = (q.wrapping_sub(ONES) & !q | s.wrapping_sub(ONES) & !s) & HIGH;
        if found != 0 {
            return Some(j + found.trailing_zeros() as usize / 8);
        }
        j += 8;
    }
    memchr::memchr2(b'"', b'\\', b.get(j..)?).map(|k| j + k)
}

/// From just after an opening quote to just after the closing one.
#[inline]
fn skip_string(b: &[u8], mut i: usize) -> Result<usize, Refused> {
    loop {
        let at = quote_or_backslash(b, i).ok_or(Refused)?;
        if b[at] == b'"' {
            return Ok(at + 1);
        }
        i = match b.get(at + 1).copied() {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => at + 2,
            Some(b'u')
                if b.get(at + 2..at + 6)
                    .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) =>
            {
                at + 6
            }
            _ => return Err(Refused),
        };
    }
}

#[inline]
fn literal<const N: usize>(b: &[u8], i: usize, word: &[u8; N]) -> Result<usize, Refused> {
    // A fixed-size comparison, not a call to memcmp.
    match b.get(i..i + N).and_then(|s| <&[u8; N]>::try_from(s).ok()) {
        Some(s) if s == word => Ok(i + N),
        _ => Err(Refused),
    }
}

/// JSON's number grammar, as serde_json checks it.
#[inline]
fn number(b: &[u8], mut i: usize) -> Result<usize, Refused> {
    let digits = |b: &[u8], mut i: usize| {
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        (i, i > start)
    };
    if b[i] == b'-' {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = digits(b, i).0,
        _ => return Err(Refused),
    }
    if b.get(i) == Some(&b'.') {
        let (j, any) = digits(b, i + 1);
        if !any {
            return Err(Refused);
        }
        i = j;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let (j, any) = digits(b, i);
        if !any {
            return Err(Refused);
        }
        i = j;
    }
    Ok(i)
}

impl<'de> Deserializer<'de> for &mut Members<'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("only a struct is read field by field"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let kept = self
            .walk(fields)
            .map_err(|_| de::Error::custom("refused by the field-selective reader"))?;
        visitor.visit_map(Kept {
            members: kept.into_iter(),
            value: None,
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

struct Kept<'a> {
    members: std::vec::IntoIter<(&'a str, &'a [u8])>,
    value: Option<&'a [u8]>,
}

impl<'de> MapAccess<'de> for Kept<'de> {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Self::Error> {
        let Some((key, value)) = self.members.next() else {
            return Ok(None);
        };
        self.value = Some(value);
        seed.deserialize(de::value::BorrowedStrDeserializer::new(key)).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Self::Error> {
        let bytes = self
            .value
            .take()
            .ok_or_else(|| de::Error::custom("a value without its key"))?;
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let v = seed.deserialize(&mut de)?;
        de.end()?;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    struct Row<'a> {
        a: Option<u64>,
        b: Option<String>,
        #[serde(borrow)]
        c: Option<&'a serde_json::value::RawValue>,
        d: Option<Vec<bool>>,
    }

    fn fast(line: &str) -> Result<(Row<'_>, Option<&str>), Refused> {
        let mut m = Members::new(line.as_bytes(), "h")?;
        let row = Row::deserialize(&mut m).map_err(|_| Refused)?;
        Ok((row, m.held().map(|h| std::str::from_utf8(h).unwrap())))
    }

    #[test]
    fn reads_what_serde_reads() {
        let line = r#" {"x": {"y": [1, -2.5e+3, "s\"\\\u00e9", true, false, null, {}, []]}, "a": 7, "h": [{"k": "v"}], "b": "t\n", "c": {"z": 1}, "d": [true]}"#;
        let (row, held) = fast(line).unwrap();
        let want: Row = serde_json::from_str(line).unwrap();
        assert_eq!(row.a, want.a);
        assert_eq!(row.b, want.b);
        assert_eq!(row.c.map(|c| c.get()), want.c.map(|c| c.get()));
        assert_eq!(row.d, want.d);
        assert_eq!(held, Some(r#"[{"k": "v"}]"#));
        assert_eq!(fast(r#"{"h": null}"#).unwrap().1, None);
        let (empty, held) = fast("{}").unwrap();
        assert!(empty.a.is_none() && empty.b.is_none() && empty.c.is_none() && empty.d.is_none() && held.is_none());
    }

    #[test]
    fn refuses_what_it_does_not_vouch_for() {
        for bad in [
            r#"{"a": 1,}"#,
            r#"{"a": 01}"#,
            r#"{"a": 1.}"#,
            r#"{"a": 1e}"#,
            r#"{"x": "\q"}"#,
            r#"{"x": "\u12"}"#,
            r#"{"x": [1 2]}"#,
            r#"{"x": {"k" 1}}"#,
            r#"{"x": tru}"#,
            r#"{"x": [}"#,
            r#"{"a\u0062": 1}"#,
            r#"{"h": 1, "h": 2}"#,
            "{\"x\": \"\t\"}",
            r#"{"a": 1} x"#,
            r#"{"a": 1"#,
            r#"["a"]"#,
            "",
        ] {
            assert!(fast(bad).is_err(), "{bad}");
        }
        // A type serde rejects is an error too (not a default).
        assert!(fast(r#"{"a": "seven"}"#).is_err());
        assert!(fast(r#"{"a": 1, "a": 2}"#).is_err());
        let deep = format!("{{\"x\": {}{}}}", "[".repeat(600), "]".repeat(600));
        assert!(fast(&deep).is_err());
        let ok = format!("{{\"x\": {}{}}}", "[".repeat(500), "]".repeat(500));
        assert!(fast(&ok).is_ok());
        assert!(Members::new(b"{\"x\": \"\xff\"}", "h").is_err());
        // A large skipped value seen before is recognised, and what follows it still checked.
        let big = format!("{{\"m\": [{}0]}}", "1, ".repeat(600));
        let line = format!("{{\"x\": {big}, \"a\": 3}}");
        assert_eq!(fast(&line).unwrap().0.a, Some(3));
        assert_eq!(fast(&line).unwrap().0.a, Some(3));
        assert!(fast(&format!("{{\"x\": {big} \"a\": 3}}")).is_err());
        assert!(fast(&format!("{{\"x\": {big}1, \"a\": 3}}")).is_err());
        let broken = big.replacen("1, ", "1,, ", 1);
        assert!(fast(&format!("{{\"x\": {broken}, \"a\": 3}}")).is_err());
        assert!(Members::new("{\"x\": \"é\"}".as_bytes(), "h").is_ok());
        // Every position of the word-at-a-time search, and long strings.
        for n in 0..100 {
            let s = format!("{{\"x\": \"{}\\n{}\", \"a\": 1}}", "y".repeat(n), "z".repeat(n));
            assert_eq!(fast(&s).unwrap().0.a, Some(1), "{n}");
        }
    }
}
