//! Local wall-clock time for syslog stamps, without a time crate and without floats.
//!
//! Routers keep their zone as a POSIX `TZ` string (OpenWrt writes it to `/etc/TZ`, e.g.
//! `CET-1CEST,M3.5.0,M10.5.0/3`), and most run on plain UTC. [`Zone`] understands that form,
//! including its daylight-saving rules; anything else (an Olson name like `Europe/Berlin`, a
//! `:file` reference) means UTC. Dates come from integer arithmetic on the Unix time
//! ([`civil_from_unix`], Howard Hinnant's days-from-civil algorithm), which is cheap on a
//! soft-float MIPS core.
//!
//! ```
//! use swandog::report::localtime::{civil_from_unix, Zone};
//!
//! let berlin = Zone::from_posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
//! let t = 1_719_835_200; // 2024-07-01 12:00:00 UTC
//! let local = civil_from_unix(t + i64::from(berlin.offset_at(t)));
//! assert_eq!((local.month, local.day, local.hour), (7, 1, 14)); // summer time, UTC+2
//! ```

use crate::limits::TZ_TEXT_MAX_BYTES;

const SECS_PER_DAY: i64 = 86_400;
const SECS_PER_HOUR: i32 = 3_600;
/// Largest hour count in a POSIX offset or rule time (RFC 8536 allows rule times up to 167 h).
const TZ_HOURS_MAX: i32 = 167;
/// Where OpenWrt (and its musl) keeps the zone when `TZ` is not in the environment.
pub const TZ_FILE_PATH: &str = "/etc/TZ";

/// A calendar date and time of day (proleptic Gregorian), as syslog prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CivilTime {
    /// Full year, e.g. 2024.
    pub year: i64,
    /// 1 = January … 12 = December.
    pub month: u8,
    /// Day of the month, 1–31.
    pub day: u8,
    /// 0–23.
    pub hour: u8,
    /// 0–59.
    pub minute: u8,
    /// 0–59.
    pub second: u8,
}

/// The calendar time of `unix_s` seconds after 1970-01-01 00:00:00 (shift by a zone offset
/// first to get local time).
pub fn civil_from_unix(unix_s: i64) -> CivilTime {
    let days = unix_s.div_euclid(SECS_PER_DAY);
    let secs_of_day = unix_s.rem_euclid(SECS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    CivilTime {
        year,
        month,
        day,
        // secs_of_day < 86 400, so each part fits a u8.
        hour: (secs_of_day / 3600) as u8,
        minute: (secs_of_day / 60 % 60) as u8,
        second: (secs_of_day % 60) as u8,
    }
}

/// (year, month 1–12, day 1–31) of the day `days` after 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097; // day of era, 0..=146096
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // year of era, 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of year from March 1st, 0..=365
    let mp = (5 * doy + 2) / 153; // month from March, 0..=11
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days from 1970-01-01 to the given date (month 1–12, day 1–31).
pub fn days_from_civil(year: i64, month: u8, day: u8) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let mp = (i64::from(month) + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn month_len(year: i64, month: u8) -> u8 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A time zone: a standard offset and, optionally, daylight-saving rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Zone {
    /// Seconds east of UTC in standard time (`CET-1` → +3600).
    std_offset_s: i32,
    dst: Option<Dst>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Dst {
    offset_s: i32,
    start: Rule,
    end: Rule,
}

/// One transition: a day of the year and a local time of day (seconds, may exceed a day).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rule {
    day: RuleDay,
    time_s: i32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RuleDay {
    /// `Mm.w.d`: day `d` (0 = Sunday) of week `w` (5 = last) of month `m`.
    Month { month: u8, week: u8, weekday: u8 },
    /// `Jn`: day 1–365, February 29th never counted.
    JulianNoLeap(u16),
    /// `n`: day 0–365, February 29th counted.
    ZeroBased(u16),
}

impl Zone {
    /// Coordinated Universal Time: what swandog uses when it knows nothing better.
    pub const UTC: Zone = Zone {
        std_offset_s: 0,
        dst: None,
    };

    /// Parses a POSIX `TZ` string such as `UTC`, `CET-1`, `<+03>-3` or
    /// `CET-1CEST,M3.5.0,M10.5.0/3`. A daylight-saving name without rules keeps standard time all
    /// year. `None` for anything that is not this form (Olson names, `:file`).
    pub fn from_posix(text: &str) -> Option<Zone> {
        let mut p = Parser {
            rest: text.trim().as_bytes(),
        };
        p.name()?;
        if p.rest.is_empty() {
            // "UTC", "GMT": a bare name is offset zero.
            return Some(Zone::UTC);
        }
        let std_offset_s = -p.offset()?;
        if p.rest.is_empty() {
            return Some(Zone {
                std_offset_s,
                dst: None,
            });
        }
        p.name()?;
        let dst_offset_s = match p.rest.first() {
            Some(b',') | None => std_offset_s + SECS_PER_HOUR,
            Some(_) => -p.offset()?,
        };
        if p.rest.is_empty() {
            return Some(Zone {
                std_offset_s,
                dst: None,
            });
        }
        p.expect(b',')?;
        let start = p.rule()?;
        p.expect(b',')?;
        let end = p.rule()?;
        if !p.rest.is_empty() {
            return None;
        }
        Some(Zone {
            std_offset_s,
            dst: Some(Dst {
                offset_s: dst_offset_s,
                start,
                end,
            }),
        })
    }

    /// The zone the way the C library on the router would pick it: the `TZ` environment
    /// variable if set, else OpenWrt's `/etc/TZ`, else UTC; unparsable text means UTC.
    pub fn from_environment() -> Zone {
        let env = std::env::var("TZ").ok();
        let mut file_buf = [0u8; TZ_TEXT_MAX_BYTES];
        let file = match env {
            Some(_) => None,
            None => read_small_file(TZ_FILE_PATH, &mut file_buf),
        };
        Zone::from_sources(env.as_deref(), file)
    }

    /// [`Zone::from_environment`] with its inputs given: `tz_env` wins when set and not empty.
    pub fn from_sources(tz_env: Option<&str>, tz_file: Option<&str>) -> Zone {
        let text = match tz_env {
            Some(env) if !env.trim().is_empty() => env,
            _ => tz_file.unwrap_or(""),
        };
        Zone::from_posix(text).unwrap_or(Zone::UTC)
    }

    /// Seconds east of UTC in effect at `unix_s`.
    pub fn offset_at(&self, unix_s: i64) -> i32 {
        let Some(dst) = self.dst else {
            return self.std_offset_s;
        };
        let (year, _, _) =
            civil_from_days((unix_s + i64::from(self.std_offset_s)).div_euclid(SECS_PER_DAY));
        // The start is given in standard local time, the end in daylight local time.
        let start = transition_utc(year, dst.start, self.std_offset_s);
        let end = transition_utc(year, dst.end, dst.offset_s);
        let in_dst = if start < end {
            start <= unix_s && unix_s < end
        } else {
            // Southern hemisphere: daylight time spans the new year.
            !(end <= unix_s && unix_s < start)
        };
        if in_dst {
            dst.offset_s
        } else {
            self.std_offset_s
        }
    }
}

fn transition_utc(year: i64, rule: Rule, offset_s: i32) -> i64 {
    let day = match rule.day {
        RuleDay::Month {
            month,
            week,
            weekday,
        } => {
            let first = days_from_civil(year, month, 1);
            let first_weekday = (first + 4).rem_euclid(7); // 1970-01-01 was a Thursday
            let mut offset =
                (i64::from(weekday) - first_weekday).rem_euclid(7) + i64::from(week - 1) * 7;
            while offset >= i64::from(month_len(year, month)) {
                offset -= 7;
            }
            first + offset
        }
        RuleDay::JulianNoLeap(n) => {
            let leap_shift = i64::from(is_leap(year) && n >= 60);
            days_from_civil(year, 1, 1) + i64::from(n) - 1 + leap_shift
        }
        RuleDay::ZeroBased(n) => days_from_civil(year, 1, 1) + i64::from(n),
    };
    day * SECS_PER_DAY + i64::from(rule.time_s) - i64::from(offset_s)
}

/// Reads a small text file into `buf`; `None` if missing, unreadable, too long or not UTF-8.
fn read_small_file<'b>(path: &str, buf: &'b mut [u8]) -> Option<&'b str> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).ok()?;
    let mut len = 0;
    while len < buf.len() {
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(_) => return None,
        }
    }
    if len == buf.len() {
        return None; // longer than any TZ string we understand
    }
    core::str::from_utf8(&buf[..len]).ok()
}

/// Cursor over a POSIX TZ string.
struct Parser<'a> {
    rest: &'a [u8],
}

impl Parser<'_> {
    fn expect(&mut self, byte: u8) -> Option<()> {
        let (&first, rest) = self.rest.split_first()?;
        (first == byte).then(|| self.rest = rest)
    }

    /// `<+03>` or three or more letters.
    fn name(&mut self) -> Option<()> {
        if self.expect(b'<').is_some() {
            let close = self.rest.iter().position(|&b| b == b'>')?;
            self.rest = &self.rest[close + 1..];
            return (close >= 3).then_some(());
        }
        let len = self
            .rest
            .iter()
            .take_while(|b| b.is_ascii_alphabetic())
            .count();
        self.rest = &self.rest[len..];
        (len >= 3).then_some(())
    }

    /// `[+-]hh[:mm[:ss]]` in seconds, sign as written (POSIX: positive = west of UTC).
    fn offset(&mut self) -> Option<i32> {
        let negative = match self.rest.first() {
            Some(b'-') => true,
            Some(b'+') => false,
            _ => return self.time(),
        };
        self.rest = &self.rest[1..];
        let t = self.time()?;
        Some(if negative { -t } else { t })
    }

    /// `hh[:mm[:ss]]` in seconds.
    fn time(&mut self) -> Option<i32> {
        let hours = self.number(3)?;
        if hours > TZ_HOURS_MAX {
            return None;
        }
        let mut secs = hours * SECS_PER_HOUR;
        for scale in [60, 1] {
            if self.expect(b':').is_none() {
                break;
            }
            let part = self.number(2)?;
            if part > 59 {
                return None;
            }
            secs += part * scale;
        }
        Some(secs)
    }

    /// `Mm.w.d`, `Jn` or `n`, then an optional `/time` (default 02:00:00).
    fn rule(&mut self) -> Option<Rule> {
        let day = if self.expect(b'M').is_some() {
            let month = self.number(2)?;
            self.expect(b'.')?;
            let week = self.number(1)?;
            self.expect(b'.')?;
            let weekday = self.number(1)?;
            if !(1..=12).contains(&month) || !(1..=5).contains(&week) || weekday > 6 {
                return None;
            }
            RuleDay::Month {
                month: month as u8,
                week: week as u8,
                weekday: weekday as u8,
            }
        } else if self.expect(b'J').is_some() {
            let n = self.number(3)?;
            if !(1..=365).contains(&n) {
                return None;
            }
            RuleDay::JulianNoLeap(n as u16)
        } else {
            let n = self.number(3)?;
            if n > 365 {
                return None;
            }
            RuleDay::ZeroBased(n as u16)
        };
        let time_s = if self.expect(b'/').is_some() {
            self.offset()?
        } else {
            2 * SECS_PER_HOUR
        };
        Some(Rule { day, time_s })
    }

    /// 1 to `max_digits` decimal digits.
    fn number(&mut self, max_digits: usize) -> Option<i32> {
        let len = self.rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if len == 0 || len > max_digits {
            return None;
        }
        let value = self.rest[..len]
            .iter()
            .fold(0i32, |acc, &b| acc * 10 + i32::from(b - b'0'));
        self.rest = &self.rest[len..];
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(year: i64, month: u8, day: u8, hour: i64, minute: i64) -> i64 {
        days_from_civil(year, month, day) * SECS_PER_DAY + hour * 3600 + minute * 60
    }

    #[test]
    fn epoch_and_known_dates_convert_to_the_right_calendar_day() {
        let epoch = civil_from_unix(0);
        assert_eq!(
            (epoch.year, epoch.month, epoch.day, epoch.hour),
            (1970, 1, 1, 0)
        );
        let leap_day = civil_from_unix(951_782_400);
        assert_eq!((leap_day.year, leap_day.month, leap_day.day), (2000, 2, 29));
        let t = civil_from_unix(1_709_217_296); // 2024-02-29 14:34:56 UTC
        assert_eq!(
            t,
            CivilTime {
                year: 2024,
                month: 2,
                day: 29,
                hour: 14,
                minute: 34,
                second: 56
            }
        );
        let c2100 = civil_from_unix(4_102_444_800);
        assert_eq!((c2100.year, c2100.month, c2100.day), (2100, 1, 1));
    }

    #[test]
    fn one_second_before_the_epoch_is_the_last_second_of_1969() {
        let t = civil_from_unix(-1);
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.minute, t.second),
            (1969, 12, 31, 23, 59, 59)
        );
    }

    #[test]
    fn days_round_trip_through_the_calendar_for_three_centuries() {
        for days in -25_000..120_000 {
            let (y, m, d) = civil_from_days(days);
            assert!((1..=12).contains(&m) && d >= 1 && d <= month_len(y, m));
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn plain_utc_names_and_simple_offsets_parse() {
        assert_eq!(Zone::from_posix("UTC"), Some(Zone::UTC));
        assert_eq!(Zone::from_posix("UTC0").map(|z| z.offset_at(0)), Some(0));
        assert_eq!(Zone::from_posix("GMT0").map(|z| z.offset_at(0)), Some(0));
        assert_eq!(
            Zone::from_posix("CET-1").map(|z| z.offset_at(0)),
            Some(3600)
        );
        assert_eq!(
            Zone::from_posix("EST5").map(|z| z.offset_at(0)),
            Some(-5 * 3600)
        );
        assert_eq!(
            Zone::from_posix("IST-5:30").map(|z| z.offset_at(0)),
            Some(5 * 3600 + 1800)
        );
        assert_eq!(
            Zone::from_posix("<+03>-3").map(|z| z.offset_at(0)),
            Some(3 * 3600)
        );
        assert_eq!(
            Zone::from_posix("<-03>3").map(|z| z.offset_at(0)),
            Some(-3 * 3600)
        );
    }

    #[test]
    fn olson_names_and_garbage_are_not_posix_zones() {
        for text in [
            "Europe/Berlin",
            ":/etc/localtime",
            "",
            "C",
            "CET-1CEST,M3.5.0",
            "CET-1x",
            "CET-1CEST,M13.5.0,M10.5.0",
        ] {
            assert_eq!(Zone::from_posix(text), None, "{text:?}");
        }
    }

    #[test]
    fn central_european_summer_time_starts_and_ends_on_the_last_sundays() {
        let z = Zone::from_posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        // 2024: starts 31 March 01:00 UTC, ends 27 October 01:00 UTC.
        assert_eq!(z.offset_at(at(2024, 3, 31, 0, 59)), 3600);
        assert_eq!(z.offset_at(at(2024, 3, 31, 1, 0)), 7200);
        assert_eq!(z.offset_at(at(2024, 10, 27, 0, 59)), 7200);
        assert_eq!(z.offset_at(at(2024, 10, 27, 1, 0)), 3600);
        assert_eq!(z.offset_at(at(2024, 1, 15, 12, 0)), 3600);
    }

    #[test]
    fn us_eastern_time_uses_second_and_first_sundays() {
        let z = Zone::from_posix("EST5EDT,M3.2.0,M11.1.0").unwrap();
        // 2024: starts 10 March 07:00 UTC, ends 3 November 06:00 UTC.
        assert_eq!(z.offset_at(at(2024, 3, 10, 6, 59)), -5 * 3600);
        assert_eq!(z.offset_at(at(2024, 3, 10, 7, 0)), -4 * 3600);
        assert_eq!(z.offset_at(at(2024, 11, 3, 5, 59)), -4 * 3600);
        assert_eq!(z.offset_at(at(2024, 11, 3, 6, 0)), -5 * 3600);
    }

    #[test]
    fn southern_hemisphere_daylight_time_spans_the_new_year() {
        let z = Zone::from_posix("AEST-10AEDT,M10.1.0,M4.1.0/3").unwrap();
        // 2024: ends 7 April 03:00 AEDT (6 April 16:00 UTC), starts 6 October 02:00 AEST (5 Oct 16:00 UTC).
        assert_eq!(z.offset_at(at(2024, 1, 1, 0, 0)), 11 * 3600);
        assert_eq!(z.offset_at(at(2024, 4, 6, 15, 59)), 11 * 3600);
        assert_eq!(z.offset_at(at(2024, 4, 6, 16, 0)), 10 * 3600);
        assert_eq!(z.offset_at(at(2024, 10, 5, 15, 59)), 10 * 3600);
        assert_eq!(z.offset_at(at(2024, 10, 5, 16, 0)), 11 * 3600);
    }

    #[test]
    fn julian_day_rules_pick_the_same_date_in_leap_years() {
        // J60 is always 1 March; 59 (zero-based) is 29 February in a leap year.
        let z = Zone::from_posix("XXX0YYY,J60/0,J300/0").unwrap();
        assert_eq!(z.offset_at(at(2024, 2, 29, 23, 59)), 0);
        assert_eq!(z.offset_at(at(2024, 3, 1, 0, 0)), 3600);
        let z = Zone::from_posix("XXX0YYY,59/0,300/0").unwrap();
        assert_eq!(z.offset_at(at(2024, 2, 28, 23, 59)), 0);
        assert_eq!(z.offset_at(at(2024, 2, 29, 0, 0)), 3600);
    }

    #[test]
    fn daylight_name_without_rules_keeps_standard_time() {
        let z = Zone::from_posix("CET-1CEST").unwrap();
        assert_eq!(z.offset_at(at(2024, 7, 1, 12, 0)), 3600);
    }

    #[test]
    fn environment_wins_over_the_tz_file_and_garbage_means_utc() {
        assert_eq!(
            Zone::from_sources(Some("CET-1"), Some("EST5")).offset_at(0),
            3600
        );
        assert_eq!(
            Zone::from_sources(None, Some("EST5\n")).offset_at(0),
            -5 * 3600
        );
        assert_eq!(
            Zone::from_sources(Some(""), Some("EST5")).offset_at(0),
            -5 * 3600
        );
        assert_eq!(
            Zone::from_sources(Some("Europe/Berlin"), Some("EST5")),
            Zone::UTC
        );
        assert_eq!(Zone::from_sources(None, None), Zone::UTC);
    }
}
