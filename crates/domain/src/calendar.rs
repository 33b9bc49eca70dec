//! China Standard Time (UTC+8) dates, month keys and the business-day calendar.
//!
//! Carrier rules count in CST: a rebind at `2026-11-30T17:00Z` is on
//! 2026-12-01 in Beijing and counts in December. "Working day" is a business
//! day in China: Monday-Friday, minus public holidays, plus the make-up
//! working weekends the State Council announces. The holidays are data
//! (`data/cn-calendar.txt`, replaceable at run time).
//!
//! *Working time* is time that falls on working days (the whole CST day): an
//! SLA of "2 working days" is 48 hours of working time. Deadlines and the
//! simulator's completion delays both use it, so they agree.

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, TimeZone, Utc, Weekday};
use std::collections::{BTreeSet, HashSet};
use std::sync::OnceLock;
use thiserror::Error;

/// UTC+8.
pub fn cst() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("valid offset")
}

/// The CST calendar date of an instant.
pub fn cst_date(t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&cst()).date_naive()
}

/// The calendar month in CST as `yyyymm`, e.g. `202612` (China Mobile and
/// China Telecom bill, and count quotas, per calendar month).
pub fn month_key(t: DateTime<Utc>) -> u32 {
    let d = cst_date(t);
    d.year() as u32 * 100 + d.month()
}

/// China Unicom's billing month: from the 27th of the previous month to the
/// 26th. A CST date on or after the 27th belongs to the next month's period.
pub fn cu_billing_month(t: DateTime<Utc>) -> u32 {
    let d = cst_date(t);
    let (mut y, mut m) = (d.year() as u32, d.month());
    if d.day() >= 27 {
        m += 1;
        if m == 13 {
            m = 1;
            y += 1;
        }
    }
    y * 100 + m
}

/// The billing cycle holding day `d` when cycles start on day `start` of a
/// month (China Unicom: the 27th, domain.md): its first and last day, both
/// included. `start` is clamped to 1..=28 (every month has those days).
pub fn billing_cycle(d: NaiveDate, start: u32) -> (NaiveDate, NaiveDate) {
    let start = start.clamp(1, 28);
    let at = |y: i32, m: u32| NaiveDate::from_ymd_opt(y, m, start).expect("day 1-28 exists");
    let prev = |y: i32, m: u32| if m == 1 { (y - 1, 12) } else { (y, m - 1) };
    let next = |y: i32, m: u32| if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    let (y, m) = if d.day() >= start {
        (d.year(), d.month())
    } else {
        prev(d.year(), d.month())
    };
    let first = at(y, m);
    let (ny, nm) = next(y, m);
    let last = at(ny, nm).pred_opt().expect("a day before");
    (first, last)
}

/// The calendar month holding day `d`: its first and last day.
pub fn calendar_month(d: NaiveDate) -> (NaiveDate, NaiveDate) {
    billing_cycle(d, 1)
}

/// The start of a CST day, as a UTC instant.
pub fn cst_midnight(d: NaiveDate) -> DateTime<Utc> {
    cst()
        .from_local_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight exists"))
        .single()
        .expect("fixed offsets are unambiguous")
        .with_timezone(&Utc)
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CalendarError {
    #[error("calendar line {line}: {reason}")]
    Line { line: usize, reason: String },
    #[error("calendar file {path}: {reason}")]
    Io { path: String, reason: String },
}

/// Public holidays and make-up working days.
#[derive(Debug, Clone, Default)]
pub struct Calendar {
    holidays: HashSet<NaiveDate>,
    workdays: HashSet<NaiveDate>,
    years: BTreeSet<i32>,
    provisional: BTreeSet<i32>,
}

const BUILTIN: &str = include_str!("../data/cn-calendar.txt");

impl Calendar {
    /// The calendar shipped with the crate (2025-2027; 2027 provisional).
    pub fn builtin() -> &'static Calendar {
        static CAL: OnceLock<Calendar> = OnceLock::new();
        CAL.get_or_init(|| Calendar::parse(BUILTIN).expect("builtin calendar parses (tested)"))
    }

    /// Load a replacement calendar file.
    pub fn from_file(path: &str) -> Result<Calendar, CalendarError> {
        let text = std::fs::read_to_string(path).map_err(|e| CalendarError::Io {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Calendar::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Calendar, CalendarError> {
        let mut cal = Calendar::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let err = |reason: &str| CalendarError::Line {
                line: i + 1,
                reason: reason.to_owned(),
            };
            let mut parts = line.split_whitespace();
            let first = parts.next().unwrap_or("");
            if first == "year" {
                let y: i32 = parts
                    .next()
                    .and_then(|y| y.parse().ok())
                    .ok_or_else(|| err("expected `year YYYY provisional`"))?;
                match parts.next() {
                    Some("provisional") => {
                        cal.provisional.insert(y);
                    }
                    _ => return Err(err("expected `year YYYY provisional`")),
                }
                cal.years.insert(y);
                continue;
            }
            let date = NaiveDate::parse_from_str(first, "%Y-%m-%d")
                .map_err(|_| err("expected a YYYY-MM-DD date"))?;
            match parts.next() {
                Some("holiday") => {
                    cal.holidays.insert(date);
                }
                Some("workday") => {
                    cal.workdays.insert(date);
                }
                _ => return Err(err("expected `holiday` or `workday` after the date")),
            }
            if cal.holidays.contains(&date) && cal.workdays.contains(&date) {
                return Err(err("date is both a holiday and a workday"));
            }
            cal.years.insert(date.year());
        }
        Ok(cal)
    }

    /// Years the file covers (outside them only weekends are rest days).
    pub fn years(&self) -> impl Iterator<Item = i32> + '_ {
        self.years.iter().copied()
    }

    /// Years whose schedule is not yet official.
    pub fn is_provisional(&self, year: i32) -> bool {
        self.provisional.contains(&year)
    }

    pub fn is_working_day(&self, d: NaiveDate) -> bool {
        if self.workdays.contains(&d) {
            return true;
        }
        if self.holidays.contains(&d) {
            return false;
        }
        !matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
    }

    /// The instant reached after `work` of working time from `start`.
    pub fn add_working_time(&self, start: DateTime<Utc>, work: Duration) -> DateTime<Utc> {
        let mut left = work.max(Duration::zero());
        let mut t = start;
        // A year of rest days at most separates two working days; bound the walk.
        for _ in 0..4000 {
            let day = cst_date(t);
            let next_midnight = cst_midnight(day + Duration::days(1));
            if self.is_working_day(day) {
                let room = next_midnight - t;
                if left <= room {
                    return t + left;
                }
                left -= room;
            }
            t = next_midnight;
        }
        t + left
    }

    /// Working time between two instants (zero if `end <= start`).
    pub fn working_time_between(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> Duration {
        let mut total = Duration::zero();
        let mut t = start;
        while t < end {
            let day = cst_date(t);
            let next_midnight = cst_midnight(day + Duration::days(1)).min(end);
            if self.is_working_day(day) {
                total += next_midnight - t;
            }
            t = next_midnight;
        }
        total
    }

    /// The next working day strictly after `d`.
    pub fn next_working_day(&self, d: NaiveDate) -> NaiveDate {
        let mut n = d + Duration::days(1);
        while !self.is_working_day(n) {
            n += Duration::days(1);
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn billing_cycles_run_from_the_start_day_to_the_day_before_it() {
        let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).unwrap();
        assert_eq!(
            billing_cycle(d(2026, 12, 4), 27),
            (d(2026, 11, 27), d(2026, 12, 26))
        );
        assert_eq!(
            billing_cycle(d(2026, 12, 27), 27),
            (d(2026, 12, 27), d(2027, 1, 26))
        );
        assert_eq!(
            billing_cycle(d(2027, 1, 26), 27),
            (d(2026, 12, 27), d(2027, 1, 26))
        );
        assert_eq!(
            billing_cycle(d(2026, 3, 1), 27),
            (d(2026, 2, 27), d(2026, 3, 26))
        );
        assert_eq!(
            calendar_month(d(2026, 2, 14)),
            (d(2026, 2, 1), d(2026, 2, 28))
        );
        assert_eq!(
            calendar_month(d(2024, 12, 31)),
            (d(2024, 12, 1), d(2024, 12, 31))
        );
        // The month key and the cycle agree on which billing month a day is in.
        let t = cst_midnight(d(2026, 12, 27));
        assert_eq!(cu_billing_month(t), 202701);
        assert_eq!(billing_cycle(cst_date(t), 27).1, d(2027, 1, 26));
    }
    use proptest::prelude::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }
    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn month_key_uses_cst() {
        // domain.md: a rebind at 2026-11-30T17:00Z counts in December
        assert_eq!(month_key(utc("2026-11-30T17:00:00Z")), 202612);
        assert_eq!(month_key(utc("2026-11-30T15:59:59Z")), 202611);
        assert_eq!(month_key(utc("2026-11-30T16:00:00Z")), 202612);
        assert_eq!(month_key(utc("2026-12-31T16:00:00Z")), 202701);
    }

    #[test]
    fn cu_billing_month_27th_to_26th() {
        assert_eq!(cu_billing_month(utc("2026-11-26T15:59:59Z")), 202611);
        assert_eq!(cu_billing_month(utc("2026-11-26T16:00:00Z")), 202612); // 27th CST
        assert_eq!(cu_billing_month(utc("2026-12-27T00:00:00Z")), 202701);
        assert_eq!(cu_billing_month(utc("2026-01-05T00:00:00Z")), 202601);
    }

    #[test]
    fn builtin_parses_and_covers_2025_to_2027() {
        let cal = Calendar::builtin();
        let years: Vec<i32> = cal.years().collect();
        assert_eq!(years, vec![2025, 2026, 2027]);
        assert!(cal.is_provisional(2027));
        assert!(!cal.is_provisional(2026));
    }

    #[test]
    fn holidays_and_make_up_days() {
        let cal = Calendar::builtin();
        // National Day 2026 is a holiday on a Thursday
        assert!(!cal.is_working_day(date("2026-10-01")));
        // Make-up working Saturday
        assert!(cal.is_working_day(date("2026-10-10")));
        // Make-up working Sunday in 2025
        assert!(cal.is_working_day(date("2025-01-26")));
        // Spring Festival 2026 weekday off
        assert!(!cal.is_working_day(date("2026-02-18")));
        // Plain weekday and plain weekend
        assert!(cal.is_working_day(date("2026-11-23")));
        assert!(!cal.is_working_day(date("2026-11-22")));
        // Outside covered years: weekends only
        assert!(cal.is_working_day(date("2030-10-01")));
    }

    #[test]
    fn working_time_skips_weekends_and_holidays() {
        let cal = Calendar::builtin();
        // Friday 2026-11-27 10:00 CST + 1 working day -> Monday 10:00 CST
        let fri = utc("2026-11-27T02:00:00Z");
        assert_eq!(
            cal.add_working_time(fri, Duration::days(1)),
            utc("2026-11-30T02:00:00Z")
        );
        // Starting on a Saturday: the clock starts Monday 00:00 CST
        let sat = utc("2026-11-28T04:00:00Z");
        assert_eq!(
            cal.add_working_time(sat, Duration::hours(2)),
            utc("2026-11-29T18:00:00Z")
        );
        // Across National Day: Wed 2026-09-30 12:00 CST + 1 wd: 12 h on 09-30, then
        // Oct 1-7 are holidays, then 12 h on Thu 10-08 -> 10-08 12:00 CST.
        let start = utc("2026-09-30T04:00:00Z");
        let end = cal.add_working_time(start, Duration::days(1));
        assert_eq!(end, utc("2026-10-08T04:00:00Z"));
        assert_eq!(cal.working_time_between(start, end), Duration::days(1));
    }

    #[test]
    fn parse_errors_are_typed() {
        assert!(matches!(
            Calendar::parse("2026-13-01 holiday"),
            Err(CalendarError::Line { line: 1, .. })
        ));
        assert!(matches!(
            Calendar::parse("\n2026-01-01 party"),
            Err(CalendarError::Line { line: 2, .. })
        ));
        assert!(Calendar::parse("2026-01-01 holiday\n2026-01-01 workday").is_err());
        assert!(matches!(
            Calendar::from_file("/nonexistent/x"),
            Err(CalendarError::Io { .. })
        ));
        let c =
            Calendar::parse("# only a comment\n2031-01-01 holiday new year # trailing").unwrap();
        assert!(!c.is_working_day(date("2031-01-01")));
    }

    proptest! {
        #[test]
        fn working_time_round_trips(start_s in 1_735_689_600i64..1_830_000_000, mins in 0i64..(20 * 24 * 60)) {
            let cal = Calendar::builtin();
            let start = DateTime::from_timestamp(start_s, 0).unwrap();
            let end = cal.add_working_time(start, Duration::minutes(mins));
            prop_assert!(end >= start);
            prop_assert_eq!(cal.working_time_between(start, end), Duration::minutes(mins));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,60}") {
            let _ = Calendar::parse(&s);
        }
    }
}
