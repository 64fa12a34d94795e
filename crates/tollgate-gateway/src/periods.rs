//! Budget periods and key lifetimes in LiteLLM's notation (`30s`, `30m`, `30h`, `30d`, `1w`,
//! `1mo`): when a duration ends, and which period a moment falls in. Periods are computed from
//! the clock — fixed lengths count from the Unix epoch (UTC), months from the first of the month —
//! so a budget resets on time on every instance with no reset job.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

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

/// One budget period: when it started and when it ends (the reset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// The budget period `now` falls in, in the budget timezone (`litellm_settings.timezone`),
/// following LiteLLM's calendar: `1d` from midnight to midnight, `7d` (and `Nw`) from Monday
/// midnight, `30d` and `Nmo` from the first of the month; other day counts in blocks of N days
/// counted from 1970-01-01; `Ns`, `Nm` and `Nh` in steps from midnight, the day's last step
/// ending at the next midnight. `None` for a duration that does not parse.
///
/// Computed from the clock alone, so every instance agrees on the period and a reset needs no
/// job: a hold in a later period than the stored spend's starts the spend from 0.
pub fn period(duration: &str, now: DateTime<Utc>, tz: Tz) -> Option<Period> {
    let (n, unit) = duration_parts(duration)?;
    let today = now.with_timezone(&tz).date_naive();
    let midnight = |date: NaiveDate| -> Option<DateTime<Utc>> {
        // The first moment of that date there (a DST gap at midnight moves it later).
        tz.from_local_datetime(&date.and_hms_opt(0, 0, 0)?)
            .earliest()
            .or_else(|| tz.from_local_datetime(&date.and_hms_opt(1, 0, 0)?).earliest())
            .map(|t| t.with_timezone(&Utc))
    };
    let days = |from: NaiveDate, count: i64| -> Option<Period> {
        Some(Period {
            start: midnight(from)?,
            end: midnight(from.checked_add_signed(chrono::Duration::days(count))?)?,
        })
    };
    let months = |count: i64| -> Option<Period> {
        let index = i64::from(today.year()) * 12 + i64::from(today.month0());
        let first = index - index.rem_euclid(count);
        let date_of = |i: i64| {
            NaiveDate::from_ymd_opt(
                i32::try_from(i.div_euclid(12)).ok()?,
                u32::try_from(i.rem_euclid(12) + 1).ok()?,
                1,
            )
        };
        Some(Period {
            start: midnight(date_of(first)?)?,
            end: midnight(date_of(first + count)?)?,
        })
    };
    let epoch_day = i64::from(today.num_days_from_ce()) - i64::from(EPOCH_DAY);
    match unit {
        "s" | "m" | "h" => {
            let step = n * match unit {
                "s" => 1,
                "m" => 60,
                _ => 3600,
            };
            let day = days(today, 1)?;
            let since = (now - day.start).num_seconds();
            let start = day.start + chrono::Duration::seconds(since - since.rem_euclid(step));
            Some(Period {
                start,
                end: (start + chrono::Duration::seconds(step)).min(day.end),
            })
        }
        "d" if n == 30 => months(1),
        "d" if n == 7 => weeks(today, 1, &days),
        "d" => days(today - chrono::Duration::days(epoch_day.rem_euclid(n)), n),
        "w" => weeks(today, n, &days),
        "mo" => months(n),
        _ => None,
    }
}

/// 1970-01-01 as days from the common era (what `num_days_from_ce` counts).
const EPOCH_DAY: i32 = 719_163;

/// Blocks of `n` weeks starting on a Monday (counted from Monday 1970-01-05).
fn weeks(today: NaiveDate, n: i64, days: &dyn Fn(NaiveDate, i64) -> Option<Period>) -> Option<Period> {
    let since_monday = i64::from(today.num_days_from_ce()) - i64::from(EPOCH_DAY + 4);
    let back = since_monday.rem_euclid(7 * n);
    days(today - chrono::Duration::days(back), 7 * n)
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
    fn budget_periods_follow_the_calendar_in_the_budget_timezone() {
        let utc = chrono_tz::UTC;
        let now = at("2026-12-07T10:17:45Z"); // a Monday
        let p = |d: &str, tz: Tz| period(d, now, tz).map(|p| (p.start.to_rfc3339(), p.end.to_rfc3339()));
        let span = |a: &str, b: &str| Some((at(a).to_rfc3339(), at(b).to_rfc3339()));
        assert_eq!(p("30s", utc), span("2026-12-07T10:17:30Z", "2026-12-07T10:18:00Z"));
        assert_eq!(p("15m", utc), span("2026-12-07T10:15:00Z", "2026-12-07T10:30:00Z"));
        assert_eq!(p("1h", utc), span("2026-12-07T10:00:00Z", "2026-12-07T11:00:00Z"));
        // Steps count from midnight; the day's last one ends at the next midnight.
        assert_eq!(p("7h", utc), span("2026-12-07T07:00:00Z", "2026-12-07T14:00:00Z"));
        let late = |d: &str| period(d, at("2026-12-07T22:30:00Z"), utc).map(|p| p.end.to_rfc3339());
        assert_eq!(late("7h"), Some(at("2026-12-08T00:00:00Z").to_rfc3339()));
        assert_eq!(p("1d", utc), span("2026-12-07T00:00:00Z", "2026-12-08T00:00:00Z"));
        // LiteLLM's calendar: 7d from Monday, 30d from the first of the month.
        assert_eq!(p("7d", utc), span("2026-12-07T00:00:00Z", "2026-12-14T00:00:00Z"));
        assert_eq!(p("1w", utc), span("2026-12-07T00:00:00Z", "2026-12-14T00:00:00Z"));
        assert_eq!(p("30d", utc), span("2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"));
        assert_eq!(p("1mo", utc), span("2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"));
        assert_eq!(p("3mo", utc), span("2026-10-01T00:00:00Z", "2027-01-01T00:00:00Z"));
        assert_eq!(p("soon", utc), None);
        assert_eq!(p("5y", utc), None);
        // In the budget timezone: midnight in Istanbul (UTC+3) is 21:00 UTC the day before.
        let ist: Tz = "Europe/Istanbul".parse().unwrap();
        assert_eq!(p("1d", ist), span("2026-12-06T21:00:00Z", "2026-12-07T21:00:00Z"));
        assert_eq!(p("30d", ist), span("2026-11-30T21:00:00Z", "2026-12-31T21:00:00Z"));
        // A month across a DST change keeps local midnights (US/Eastern: UTC-4 in October, UTC-5 in November).
        let east: Tz = "US/Eastern".parse().unwrap();
        let oct = period("1mo", at("2026-10-15T12:00:00Z"), east).unwrap();
        assert_eq!(
            (oct.start, oct.end),
            (at("2026-10-01T04:00:00Z"), at("2026-11-01T04:00:00Z"))
        );
        let nov = period("1mo", at("2026-11-15T12:00:00Z"), east).unwrap();
        assert_eq!(
            (nov.start, nov.end),
            (at("2026-11-01T04:00:00Z"), at("2026-12-01T05:00:00Z"))
        );
    }
}
