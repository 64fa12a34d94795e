//! Budget periods and key lifetimes in LiteLLM's notation (`30s`, `30m`, `30h`, `30d`, `1w`,
//! `1mo`): when a duration ends, and which period a moment falls in. Periods are computed from
//! the clock — fixed lengths count from the Unix epoch (UTC), months from the first of the month —
//! so a budget resets on time on every instance with no reset job.

use chrono::{DateTime, Utc};

/// `30s`, `30m`, `30h`, `30d`, `1w`, `1mo` (calendar months) → the instant that long after `from`.
pub fn duration_end(text: &str, from: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let (n, unit) = duration_parts(text)?;
    match unit {
        "s" => Some(from + chrono::Duration::seconds(n)),
        "m" => Some(from + chrono::Duration::minutes(n)),
        "h" => Some(from + chrono::Duration::hours(n)),
        "d" => Some(from + chrono::Duration::days(n)),
        "w" => Some(from + chrono::Duration::weeks(n)),
        "mo" => from.checked_add_months(chrono::Months::new(u32::try_from(n).ok()?)),
        _ => None,
    }
}

/// A LiteLLM duration's count (> 0) and unit (`s`, `m`, `h`, `d`, `w`, `mo`; not checked here).
pub fn duration_parts(text: &str) -> Option<(i64, &str)> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = t.split_at(split);
    let n: i64 = n.parse().ok().filter(|n| *n > 0)?;
    Some((n, unit))
}

/// The start of the budget period `now` is in: periods of a fixed length count from the Unix
/// epoch (UTC), months from the first of the month. `None` for a duration that does not parse.
pub fn window_start(duration: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let (n, unit) = duration_parts(duration)?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        "w" => n * 7 * 86_400,
        "mo" => {
            use chrono::Datelike;
            let months = now.year() as i64 * 12 + i64::from(now.month0());
            let start = months - months.rem_euclid(n);
            let (y, m) = (start.div_euclid(12), start.rem_euclid(12) + 1);
            return chrono::NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, u32::try_from(m).ok()?, 1)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc());
        }
        _ => return None,
    };
    let epoch = now.timestamp();
    DateTime::from_timestamp(epoch - epoch.rem_euclid(seconds), 0)
}

/// When the period that started at `window` ends.
pub fn reset_at(duration: &str, window: DateTime<Utc>) -> Option<DateTime<Utc>> {
    duration_end(duration, window)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn durations_are_litellms() {
        let t0 = DateTime::parse_from_rfc3339("2026-01-31T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(duration_end("30s", t0), Some(t0 + chrono::Duration::seconds(30)));
        assert_eq!(duration_end("30m", t0), Some(t0 + chrono::Duration::minutes(30)));
        assert_eq!(duration_end("30h", t0), Some(t0 + chrono::Duration::hours(30)));
        assert_eq!(duration_end("30d", t0), Some(t0 + chrono::Duration::days(30)));
        assert_eq!(duration_end("1w", t0), Some(t0 + chrono::Duration::days(7)));
        // Calendar months: January 31st + 1 month is the end of February.
        assert_eq!(
            duration_end("1mo", t0).map(|t| t.to_rfc3339()),
            Some("2026-02-28T00:00:00+00:00".into())
        );
        for bad in ["", "30", "s", "-1d", "0d", "1y", "1.5h"] {
            assert_eq!(duration_end(bad, t0), None, "{bad}");
        }
    }

    #[test]
    fn budget_periods_come_from_the_clock() {
        let now = at("2026-12-07T10:17:45Z");
        assert_eq!(window_start("30s", now), Some(at("2026-12-07T10:17:30Z")));
        assert_eq!(window_start("1h", now), Some(at("2026-12-07T10:00:00Z")));
        assert_eq!(window_start("1d", now), Some(at("2026-12-07T00:00:00Z")));
        assert_eq!(window_start("1mo", now), Some(at("2026-12-01T00:00:00Z")));
        assert_eq!(window_start("3mo", now), Some(at("2026-10-01T00:00:00Z")));
        assert_eq!(window_start("soon", now), None);
        assert_eq!(
            reset_at("30s", at("2026-12-07T10:17:30Z")),
            Some(at("2026-12-07T10:18:00Z"))
        );
    }
}
