//! Time and the figures swandog prints, in integers only (no floats on a router's soft FPU):
//! the agent's clock, and how durations, shares and rates read in lines and in `status`.
//!
//! ```
//! use swandog::agent::units::{Hours, HoursValue, Percent, PercentValue, Seconds, Span};
//!
//! assert_eq!(Span(125_000).to_string(), "2 min 5 s");
//! assert_eq!(Seconds(3_400).to_string(), "3.4 s");
//! assert_eq!(Percent(931).to_string(), "93.1%");
//! assert_eq!(format!("{:>6}", PercentValue(875)), "  87.5");
//! assert_eq!(Hours(11_520_000).to_string(), "3.2 h");
//! assert_eq!(HoursValue(11_520_000).to_string(), "3.20");
//! ```

use core::fmt;
use core::fmt::Write;

/// Monotonic time in milliseconds since the agent started (the shell's clock, simulated in tests).
pub type Millis = u64;

/// A duration in words, integers only: `1.0 s`, `12.4 s`, `10 min`, `2 min 5 s`, `1 h 5 min`,
/// `2 d 3 h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub Millis);

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MIN: u64 = 60_000;
        const HOUR: u64 = 60 * MIN;
        const DAY: u64 = 24 * HOUR;
        let ms = self.0;
        let pair = |f: &mut fmt::Formatter<'_>, big: u64, bu: &str, small: u64, su: &str| {
            if small == 0 {
                write!(f, "{big} {bu}")
            } else {
                write!(f, "{big} {bu} {small} {su}")
            }
        };
        if ms < MIN {
            write!(f, "{}.{} s", ms / 1000, ms % 1000 / 100)
        } else if ms < HOUR {
            pair(f, ms / MIN, "min", ms % MIN / 1000, "s")
        } else if ms < DAY {
            pair(f, ms / HOUR, "h", ms % HOUR / MIN, "min")
        } else {
            pair(f, ms / DAY, "d", ms % DAY / HOUR, "h")
        }
    }
}

/// Milliseconds as seconds: one decimal below 10 s (`3.4 s`), whole above (`41 s`).
#[derive(Debug, Clone, Copy)]
pub struct Seconds(pub Millis);

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tenths = self.0.saturating_add(50) / 100;
        if tenths < 100 {
            write!(f, "{}.{} s", tenths / 10, tenths % 10)
        } else {
            write!(f, "{} s", self.0.saturating_add(500) / 1000)
        }
    }
}

/// Milliseconds as hours with one decimal and the unit: `160.8 h`.
#[derive(Debug, Clone, Copy)]
pub struct Hours(pub Millis);

impl fmt::Display for Hours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tenths = self.0.saturating_add(180_000) / 360_000;
        write!(f, "{}.{} h", tenths / 10, tenths % 10)
    }
}

/// Milliseconds as a number of hours with two decimals and no unit (`3.20`), for JSON.
#[derive(Debug, Clone, Copy)]
pub struct HoursValue(pub Millis);

impl fmt::Display for HoursValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let centi = self.0 / 36_000;
        write!(f, "{}.{:02}", centi / 100, centi % 100)
    }
}

/// A share in permille as a percentage with one decimal and the sign: 931 → `93.1%`.
#[derive(Debug, Clone, Copy)]
pub struct Percent(pub u16);

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}%", self.0 / 10, self.0 % 10)
    }
}

/// A share in permille as a percentage number with one decimal, no sign (`87.5`), padded to the
/// caller's column width: for tables and JSON.
#[derive(Debug, Clone, Copy)]
pub struct PercentValue(pub u16);

impl fmt::Display for PercentValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = heapless::String::<8>::new();
        write!(text, "{}.{}", self.0 / 10, self.0 % 10)?;
        f.pad(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn figures_read_as_documented() {
        assert_eq!(Span(59_999).to_string(), "59.9 s");
        assert_eq!(Span(2 * 86_400_000 + 3 * 3_600_000).to_string(), "2 d 3 h");
        assert_eq!(Span(u64::MAX).to_string(), "213503982334 d 14 h");
        assert_eq!(Seconds(41_400).to_string(), "41 s");
        assert_eq!(Seconds(9_949).to_string(), "9.9 s");
        assert_eq!(Seconds(9_950).to_string(), "10 s");
        assert_eq!(Percent(5).to_string(), "0.5%");
        assert_eq!(Percent(1000).to_string(), "100.0%");
        assert_eq!(PercentValue(1000).to_string(), "100.0");
        assert_eq!(HoursValue(35_999).to_string(), "0.00");
    }
}
