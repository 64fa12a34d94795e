//! Lenient scalar readers. The same LiteLLM field arrives as a number, a string or null depending
//! on who wrote it (the payload callback, the SpendLogs table, its CSV export, `row_to_json`).

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

fn scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    Ok(Option::<Value>::deserialize(d)?.unwrap_or(Value::Null))
}

pub fn value_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub fn f64_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(value_f64(&scalar(d)?).filter(|x| x.is_finite()))
}

/// Any number as read, negative or not finite included, so the caller can reject it by name
/// (see `bounds`) instead of it silently becoming "absent".
pub fn num_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(value_f64(&scalar(d)?))
}

pub fn u64_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(value_f64(&scalar(d)?)
        .filter(|x| x.is_finite() && *x >= 0.0)
        .map(|x| x as u64))
}

/// `true`/`false`/`null`, or SpendLogs' strings `"True"`, `"False"`, `"None"`.
pub fn tri_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match scalar(d)? {
        Value::Bool(b) => Some(b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "t" | "yes" => Some(true),
            "false" | "0" | "f" | "no" => Some(false),
            _ => None,
        },
        Value::Number(n) => n.as_f64().map(|x| x != 0.0),
        _ => None,
    })
}

/// Any scalar as a non-empty string.
pub fn string_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(value_string(scalar(d)?))
}

pub fn value_string(v: Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Epoch seconds (float), or a timestamp string in the shapes LiteLLM, Postgres and ISO 8601 use.
pub fn time_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    Ok(match scalar(d)? {
        Value::Number(n) => n.as_f64().and_then(epoch),
        Value::String(s) => parse_time(&s),
        _ => None,
    })
}

fn epoch(secs: f64) -> Option<DateTime<Utc>> {
    if !secs.is_finite() {
        return None;
    }
    // Milliseconds since the epoch are larger than any plausible seconds value.
    let secs = if secs > 1e11 { secs / 1000.0 } else { secs };
    let whole = secs.floor();
    let nanos = ((secs - whole) * 1e9).round().clamp(0.0, 999_999_999.0) as u32;
    Utc.timestamp_opt(whole as i64, nanos).single()
}

/// Parses `2026-11-27 08:38:38.402550+00:00`, RFC 3339, naive timestamps (taken as UTC) and
/// epoch seconds.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%#z",
        "%Y-%m-%dT%H:%M:%S%.f%#z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(s, f) {
            return Some(t.with_timezone(&Utc));
        }
    }
    for f in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc());
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    }
    s.parse::<f64>().ok().and_then(epoch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_shapes() {
        let want = parse_time("2026-11-27T08:38:38.402550Z").unwrap();
        for s in [
            "2026-11-27 08:38:38.402550+00:00",
            "2026-11-27T08:38:38.40255+00:00",
            "2026-11-27 08:38:38.402550",
            "2026-11-27 10:38:38.402550+02:00",
            "1795768718.40255",
        ] {
            let t = parse_time(s).unwrap();
            assert!((t - want).num_microseconds().unwrap().abs() <= 1, "{s}");
        }
        assert!(parse_time("yesterday").is_none());
    }
}
