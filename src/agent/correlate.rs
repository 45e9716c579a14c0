//! DPD failure ⟷ CPU load: one verdict per failure, and failure rates loaded vs quiet over time.
//!
//! A load sample is *loaded* when busy ≥ [`LoadThresholds::busy_permille`] or CPU pressure ≥
//! [`LoadThresholds::psi_centi`]. A DPD failure is *load-correlated* when the box was loaded for
//! at least [`LoadThresholds::min_above_permille`] of the window before it (the time the history
//! covers). All figures are integers (permille, centi-percent, ms) and are printed with integer
//! arithmetic: no floats on soft-float MIPS.
//!
//! ```
//! use swandog::agent::correlate::{format_dpd_line, verdict, LoadThresholds};
//! use swandog::agent::history::LoadHistory;
//! use swandog::sample::load::LoadSample;
//!
//! let mut history = LoadHistory::new();
//! for s in 1..=45u64 {
//!     let busy = if s > 4 { 990 } else { 300 };
//!     history.push(&LoadSample { at: s * 1000, span_ms: 1000, busy_permille: busy, ..Default::default() });
//! }
//! let v = verdict(&history, 0, 45_000, &LoadThresholds::default());
//! assert!(v.load_correlated);
//! let mut line = String::new();
//! format_dpd_line("con1", &v, &mut line).unwrap();
//! assert_eq!(
//!     line,
//!     "con1: DPD failure [load-correlated]: box busy avg 92.9% peak 99.0%, 41 s of 45 s above 85%\
//!     ; DPD may need disabling on this tunnel, or the hardware is beyond its capacity\
//!     ; busy_avg_pct=92.9 busy_peak_pct=99.0 above_s=41.0 sampled_s=45.0 window_s=45.0"
//! );
//! ```

use core::fmt::{self, Write};

use crate::agent::history::LoadHistory;
use crate::agent::units::{Hours, Millis, Percent, Seconds};
use crate::sample::load::LoadSample;

/// Advice when a DPD failure coincides with load.
pub const ADVICE_LOADED: &str =
    "DPD may need disabling on this tunnel, or the hardware is beyond its capacity";
/// Advice when the box was quiet.
pub const ADVICE_QUIET: &str = "peer down or path blocked: check the peer and UDP 500/4500";

/// When the box counts as loaded, and how much load makes a DPD failure load-correlated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadThresholds {
    /// Busy share (all CPUs) at or above which a sample is loaded. Default 850 (85 %).
    pub busy_permille: u16,
    /// Share of the verdict window that must be loaded. Default 300 (30 %).
    ///
    /// A share rather than an absolute time, because DPD windows range from ~3 s (short
    /// retransmit settings) to ~165 s (strongSwan's defaults) and beyond: an absolute 5 s could
    /// never be reached in the short ones and would be a single spike in the long ones. A reply
    /// is lost to load only if the box is stalled when it arrives, for each retransmit; 30 %
    /// asks for sustained load while leaving room for the coarse 1 s sampling.
    pub min_above_permille: u16,
    /// CPU pressure (`some avg10`) at or above which a sample is loaded even if busy is lower
    /// (one pegged core, or runnable tasks waiting). Default 4000 (40 %).
    pub psi_centi: u16,
}

impl Default for LoadThresholds {
    fn default() -> Self {
        LoadThresholds {
            busy_permille: 850,
            min_above_permille: 300,
            psi_centi: 4000,
        }
    }
}

impl LoadThresholds {
    /// Whether this sample counts as loaded.
    pub fn is_loaded(&self, s: &LoadSample) -> bool {
        s.busy_permille >= self.busy_permille
            || s.psi_some_avg10_centi.is_some_and(|p| p >= self.psi_centi)
    }
}

/// The load before one DPD failure, and what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the failure is blamed on load.
    pub load_correlated: bool,
    /// Time-weighted average busy over the covered part of the window (0 if none is covered).
    pub busy_avg_permille: u16,
    /// Highest busy in the window (0 if none is covered).
    pub busy_peak_permille: u16,
    /// Milliseconds of the window that were loaded.
    pub above_ms: u64,
    /// Highest CPU pressure in the window, when the kernel has PSI.
    pub psi_peak_centi: Option<u16>,
    /// The window's length.
    pub window_ms: u64,
    /// How much of the window the load history covers (less right after start-up).
    pub covered_ms: u64,
    /// The thresholds it was judged by (printed in the line).
    pub thresholds: LoadThresholds,
}

/// Judges the load in `[from, to]` (from the last successful exchange to the give-up).
pub fn verdict(
    history: &LoadHistory,
    from: Millis,
    to: Millis,
    thresholds: &LoadThresholds,
) -> Verdict {
    let above_ms = history.ms_where(from, to, |s| thresholds.is_loaded(s));
    let covered_ms = history.covered_ms(from, to);
    let load_correlated = above_ms > 0
        && u128::from(above_ms) * 1000
            >= u128::from(thresholds.min_above_permille) * u128::from(covered_ms);
    Verdict {
        load_correlated,
        busy_avg_permille: history.busy_avg_permille(from, to).unwrap_or(0),
        busy_peak_permille: history.busy_peak_permille(from, to).unwrap_or(0),
        above_ms,
        psi_peak_centi: history.psi_peak_centi(from, to),
        window_ms: to.saturating_sub(from),
        covered_ms,
        thresholds: *thresholds,
    }
}

impl Verdict {
    /// The stable tag in the syslog line.
    pub fn tag(&self) -> &'static str {
        if self.load_correlated {
            "[load-correlated]"
        } else {
            "[not-load-correlated]"
        }
    }

    /// The advice that fits.
    pub fn advice(&self) -> &'static str {
        if self.load_correlated {
            ADVICE_LOADED
        } else {
            ADVICE_QUIET
        }
    }
}

/// Writes the one syslog line for a DPD failure on IKE_SA `ike`.
pub fn format_dpd_line(ike: &str, v: &Verdict, out: &mut impl Write) -> fmt::Result {
    write!(out, "{ike}: DPD failure {}: ", v.tag())?;
    if v.covered_ms == 0 {
        write!(
            out,
            "no load samples cover the {} before it",
            Seconds(v.window_ms)
        )?;
    } else {
        write!(
            out,
            "box busy avg {} peak {}, {} of {} ",
            Percent(v.busy_avg_permille),
            Percent(v.busy_peak_permille),
            Seconds(v.above_ms),
            Seconds(v.covered_ms),
        )?;
        // Sampling slows down on a busy box: say how much of the window the samples cover.
        if v.covered_ms + 1000 <= v.window_ms {
            write!(out, "sampled in a {} window ", Seconds(v.window_ms))?;
        }
        write!(out, "above {}", Threshold(v.thresholds.busy_permille))?;
        if let Some(psi) = v.psi_peak_centi {
            write!(
                out,
                " busy or {} cpu pressure (pressure peak {})",
                Threshold(v.thresholds.psi_centi / 10),
                Threshold(psi / 10),
            )?;
        }
    }
    write!(out, "; {}", v.advice())?;
    // The same figures as key=value pairs, for remote syslog parsers (docs/OPERATING.md).
    if v.covered_ms > 0 {
        write!(
            out,
            "; busy_avg_pct={} busy_peak_pct={} above_s={}",
            Decimal(v.busy_avg_permille.into()),
            Decimal(v.busy_peak_permille.into()),
            Decimal(tenths(v.above_ms)),
        )?;
    } else {
        out.write_str(";")?;
    }
    write!(
        out,
        " sampled_s={} window_s={}",
        Decimal(tenths(v.covered_ms)),
        Decimal(tenths(v.window_ms))
    )?;
    if let Some(psi) = v.psi_peak_centi {
        write!(out, " psi_peak_pct={}", Decimal(u64::from(psi) / 10))?;
    }
    Ok(())
}

/// Milliseconds in tenths of a second, rounded as [`Seconds`] rounds them.
fn tenths(ms: u64) -> u64 {
    ms.saturating_add(50) / 100
}

/// Tenths as a decimal with one digit: 929 → `92.9`.
struct Decimal(u64);

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0 / 10, self.0 % 10)
    }
}

/// Minimum DPD failures (both states together) before the rate ratio says anything.
pub const RATE_MIN_FAILURES: u32 = 3;
/// Minimum time observed in each state (loaded and quiet) before the ratio says anything.
pub const RATE_MIN_STATE_MS: u64 = 15 * 60 * 1000;
/// Loaded failure rate ÷ quiet failure rate from which load is called worse: 2.00×.
pub const RATE_LOAD_WORSE_RATIO_CENTI: u64 = 200;

/// What the failure rates say so far (log it whenever it changes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RateClass {
    /// Too few failures or too little time in a state.
    #[default]
    InsufficientData,
    /// Tunnels die clearly more often while the box is loaded.
    LoadWorse,
    /// No clear difference (or tunnels die more often when quiet).
    NoDifference,
}

impl RateClass {
    /// A short stable label for logs and the status file.
    pub fn as_str(self) -> &'static str {
        match self {
            RateClass::InsufficientData => "insufficient-data",
            RateClass::LoadWorse => "load-worse",
            RateClass::NoDifference => "no-difference",
        }
    }
}

/// DPD failures per hour while loaded vs while quiet, in constant memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateTracker {
    loaded_ms: u64,
    quiet_ms: u64,
    loaded_failures: u32,
    quiet_failures: u32,
}

impl RateTracker {
    /// Nothing observed yet.
    pub const fn new() -> Self {
        RateTracker {
            loaded_ms: 0,
            quiet_ms: 0,
            loaded_failures: 0,
            quiet_failures: 0,
        }
    }

    /// Counts the sample's interval as loaded or quiet time.
    pub fn on_sample(&mut self, s: &LoadSample, thresholds: &LoadThresholds) {
        let ms = u64::from(s.span_ms);
        if thresholds.is_loaded(s) {
            self.loaded_ms = self.loaded_ms.saturating_add(ms);
        } else {
            self.quiet_ms = self.quiet_ms.saturating_add(ms);
        }
    }

    /// Counts one DPD failure in the state its verdict found.
    pub fn on_dpd_failure(&mut self, v: &Verdict) {
        if v.load_correlated {
            self.loaded_failures = self.loaded_failures.saturating_add(1);
        } else {
            self.quiet_failures = self.quiet_failures.saturating_add(1);
        }
    }

    /// Time observed loaded.
    pub fn loaded_ms(&self) -> u64 {
        self.loaded_ms
    }

    /// Time observed quiet.
    pub fn quiet_ms(&self) -> u64 {
        self.quiet_ms
    }

    /// DPD failures while loaded.
    pub fn loaded_failures(&self) -> u32 {
        self.loaded_failures
    }

    /// DPD failures while quiet.
    pub fn quiet_failures(&self) -> u32 {
        self.quiet_failures
    }

    /// Loaded failures per hour, in thousandths (2.19/h → 2187); `None` before any loaded time.
    pub fn loaded_per_hour_milli(&self) -> Option<u64> {
        per_hour_milli(self.loaded_failures, self.loaded_ms)
    }

    /// Quiet failures per hour, in thousandths; `None` before any quiet time.
    pub fn quiet_per_hour_milli(&self) -> Option<u64> {
        per_hour_milli(self.quiet_failures, self.quiet_ms)
    }

    /// Loaded rate ÷ quiet rate in hundredths (352× → 35175); `None` when either rate is
    /// unknown or the quiet rate is zero.
    pub fn ratio_centi(&self) -> Option<u64> {
        if self.loaded_ms == 0 || self.quiet_failures == 0 {
            return None;
        }
        Some(ratio_centi(
            self.loaded_failures,
            self.loaded_ms,
            self.quiet_failures,
            self.quiet_ms,
        ))
    }

    /// What the rates say so far.
    pub fn class(&self) -> RateClass {
        if self.loaded_failures.saturating_add(self.quiet_failures) < RATE_MIN_FAILURES
            || self.loaded_ms < RATE_MIN_STATE_MS
            || self.quiet_ms < RATE_MIN_STATE_MS
        {
            return RateClass::InsufficientData;
        }
        // No quiet failure yet counts as one, so a short quiet spell cannot make load look worse.
        let conservative = ratio_centi(
            self.loaded_failures,
            self.loaded_ms,
            self.quiet_failures.max(1),
            self.quiet_ms,
        );
        if self.loaded_failures >= 2 && conservative >= RATE_LOAD_WORSE_RATIO_CENTI {
            RateClass::LoadWorse
        } else {
            RateClass::NoDifference
        }
    }

    /// Writes the summary line, e.g. `DPD failures: 7 in 3.2 h loaded (2.19/h) vs 1 in
    /// 160.8 h quiet (0.006/h): tunnels die 352x more often under load`.
    pub fn format_summary(&self, out: &mut impl Write) -> fmt::Result {
        write!(
            out,
            "DPD failures: {} in {} loaded ({}) vs {} in {} quiet ({}): ",
            self.loaded_failures,
            Hours(self.loaded_ms),
            Rate(self.loaded_per_hour_milli()),
            self.quiet_failures,
            Hours(self.quiet_ms),
            Rate(self.quiet_per_hour_milli()),
        )?;
        match (self.class(), self.ratio_centi()) {
            (RateClass::InsufficientData, _) => out.write_str("not enough data yet"),
            (RateClass::LoadWorse, Some(r)) => {
                write!(out, "tunnels die {}x more often under load", Ratio(r))
            }
            (RateClass::LoadWorse, None) => out.write_str("tunnels die only under load"),
            (RateClass::NoDifference, Some(r)) => {
                write!(out, "load makes no clear difference ({}x)", Ratio(r))
            }
            (RateClass::NoDifference, None) => out.write_str("load makes no clear difference"),
        }
    }
}

const MS_PER_HOUR: u128 = 3_600_000;

fn per_hour_milli(failures: u32, ms: u64) -> Option<u64> {
    (ms > 0).then(|| clamp_u64(u128::from(failures) * MS_PER_HOUR * 1000 / u128::from(ms)))
}

/// `(fa / ta) / (fb / tb)` in hundredths; `fb` and `ta` must not be 0.
fn ratio_centi(fa: u32, ta: u64, fb: u32, tb: u64) -> u64 {
    let num = u128::from(fa) * u128::from(tb) * 100;
    let den = u128::from(fb) * u128::from(ta);
    clamp_u64(num / den.max(1))
}

fn clamp_u64(v: u128) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// Permille as a percentage without a needless `.0`: 850 → `85%`, 855 → `85.5%`.
#[derive(Debug, Clone, Copy)]
struct Threshold(u16);

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 % 10 {
            0 => write!(f, "{}%", self.0 / 10),
            tenth => write!(f, "{}.{tenth}%", self.0 / 10),
        }
    }
}

/// A rate per hour in thousandths, to about three significant digits: `2.19/h`, `0.006/h`.
#[derive(Debug, Clone, Copy)]
struct Rate(Option<u64>);

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("-/h"),
            Some(0) => f.write_str("0/h"),
            Some(m) if m >= 100_000 => write!(f, "{}/h", m.saturating_add(500) / 1000),
            Some(m) if m >= 10_000 => {
                let t = m.saturating_add(50) / 100;
                write!(f, "{}.{}/h", t / 10, t % 10)
            }
            Some(m) if m >= 1_000 => {
                let h = m.saturating_add(5) / 10;
                write!(f, "{}.{:02}/h", h / 100, h % 100)
            }
            Some(m) => write!(f, "0.{m:03}/h"),
        }
    }
}

/// A ratio in hundredths: whole from 10 up (`352`), else one decimal (`2.4`).
#[derive(Debug, Clone, Copy)]
struct Ratio(u64);

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 >= 1000 {
            write!(f, "{}", self.0.saturating_add(50) / 100)
        } else {
            let t = (self.0 + 5) / 10;
            write!(f, "{}.{}", t / 10, t % 10)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(busy_psi_per_second: &[(u16, Option<u16>)]) -> LoadHistory {
        let mut h = LoadHistory::new();
        for (i, &(busy, psi)) in busy_psi_per_second.iter().enumerate() {
            h.push(&LoadSample {
                at: (i as u64 + 1) * 1000,
                span_ms: 1000,
                busy_permille: busy,
                psi_some_avg10_centi: psi,
                ..Default::default()
            });
        }
        h
    }

    fn line(ike: &str, v: &Verdict) -> String {
        let mut s = String::new();
        format_dpd_line(ike, v, &mut s).unwrap();
        s
    }

    #[test]
    fn sustained_load_before_the_failure_is_load_correlated() {
        let mut secs = vec![(300, None); 4];
        secs.extend(vec![(990, None); 41]);
        let v = verdict(&history(&secs), 0, 45_000, &LoadThresholds::default());
        assert!(v.load_correlated);
        assert_eq!(v.above_ms, 41_000);
        assert_eq!((v.busy_avg_permille, v.busy_peak_permille), (929, 990));
        assert_eq!(v.window_ms, 45_000);
    }

    #[test]
    fn a_quiet_box_is_not_load_correlated() {
        let v = verdict(
            &history(&[(120, None); 45]),
            0,
            45_000,
            &LoadThresholds::default(),
        );
        assert!(!v.load_correlated);
        assert_eq!(
            line("con2", &v),
            "con2: DPD failure [not-load-correlated]: box busy avg 12.0% peak 12.0%, \
             0.0 s of 45 s above 85%; peer down or path blocked: check the peer and UDP 500/4500\
             ; busy_avg_pct=12.0 busy_peak_pct=12.0 above_s=0.0 sampled_s=45.0 window_s=45.0"
        );
    }

    #[test]
    fn a_single_spike_in_a_long_window_is_not_enough() {
        let mut secs = vec![(100, None); 165];
        secs[100] = (1000, None);
        secs[101] = (1000, None);
        let v = verdict(&history(&secs), 0, 165_000, &LoadThresholds::default());
        assert!(!v.load_correlated);
        assert_eq!(v.busy_peak_permille, 1000);
        assert_eq!(v.above_ms, 2_000);
    }

    #[test]
    fn cpu_pressure_alone_can_mark_the_box_loaded() {
        let v = verdict(
            &history(&[(600, Some(6_200)); 10]),
            0,
            10_000,
            &LoadThresholds::default(),
        );
        assert!(v.load_correlated);
        assert_eq!(v.psi_peak_centi, Some(6_200));
        assert_eq!(
            line("con1", &v),
            "con1: DPD failure [load-correlated]: box busy avg 60.0% peak 60.0%, 10 s of 10 s \
             above 85% busy or 40% cpu pressure (pressure peak 62%); DPD may need disabling on \
             this tunnel, or the hardware is beyond its capacity; busy_avg_pct=60.0 \
             busy_peak_pct=60.0 above_s=10.0 sampled_s=10.0 window_s=10.0 psi_peak_pct=62.0"
        );
    }

    #[test]
    fn no_history_gives_an_honest_not_load_correlated_line() {
        let v = verdict(
            &LoadHistory::new(),
            10_000,
            14_000,
            &LoadThresholds::default(),
        );
        assert!(!v.load_correlated);
        assert_eq!(
            line("con1", &v),
            "con1: DPD failure [not-load-correlated]: no load samples cover the 4.0 s before it\
             ; peer down or path blocked: check the peer and UDP 500/4500; sampled_s=0.0 window_s=4.0"
        );
    }

    #[test]
    fn longest_dpd_line_fits() {
        // A 64-byte name, a stretched window and PSI: every part of the line at its longest.
        let mut v = verdict(
            &history(&[(1000, Some(10_000)); 45]),
            0,
            45_000,
            &LoadThresholds::default(),
        );
        v.window_ms = 86_400_000;
        let name = "n".repeat(crate::limits::NAME_MAX_BYTES);
        let text = line(&name, &v);
        assert!(text.ends_with(" psi_peak_pct=100.0"), "{text}");
        assert!(
            text.len() <= crate::limits::LINE_MAX_BYTES,
            "{} {text}",
            text.len()
        );
        eprintln!("longest DPD line: {} bytes", text.len());
    }

    #[test]
    fn short_lab_windows_print_tenths_of_seconds() {
        let v = verdict(
            &history(&[(1000, None); 4]),
            500,
            3_900,
            &LoadThresholds {
                busy_permille: 855,
                ..Default::default()
            },
        );
        assert!(line("lab", &v).contains("3.4 s of 3.4 s above 85.5%;"));
    }

    #[test]
    fn integer_figures_format_like_decimals() {
        // Percent, Seconds and Hours: agent::units' tests.
        assert_eq!(Rate(Some(2_187)).to_string(), "2.19/h");
        assert_eq!(Rate(Some(6)).to_string(), "0.006/h");
        assert_eq!(Rate(Some(12_345)).to_string(), "12.3/h");
        assert_eq!(Rate(Some(250_000)).to_string(), "250/h");
        assert_eq!(Rate(None).to_string(), "-/h");
        assert_eq!(Ratio(35_175).to_string(), "352");
        assert_eq!(Ratio(243).to_string(), "2.4");
    }

    #[test]
    fn rates_and_ratio_are_integer_per_hour() {
        let mut r = RateTracker::new();
        r.loaded_ms = 11_520_000; // 3.2 h
        r.quiet_ms = 578_880_000; // 160.8 h
        r.loaded_failures = 7;
        r.quiet_failures = 1;
        assert_eq!(r.loaded_per_hour_milli(), Some(2_187));
        assert_eq!(r.quiet_per_hour_milli(), Some(6));
        assert_eq!(r.ratio_centi(), Some(35_175));
        assert_eq!(r.class(), RateClass::LoadWorse);
        let mut s = String::new();
        r.format_summary(&mut s).unwrap();
        assert_eq!(
            s,
            "DPD failures: 7 in 3.2 h loaded (2.19/h) vs 1 in 160.8 h quiet (0.006/h): \
             tunnels die 352x more often under load"
        );
    }

    #[test]
    fn too_little_data_says_so() {
        let mut r = RateTracker::new();
        assert_eq!(r.class(), RateClass::InsufficientData);
        assert_eq!(r.ratio_centi(), None);
        let mut s = String::new();
        r.format_summary(&mut s).unwrap();
        assert_eq!(
            s,
            "DPD failures: 0 in 0.0 h loaded (-/h) vs 0 in 0.0 h quiet (-/h): not enough data yet"
        );
        r.loaded_ms = RATE_MIN_STATE_MS;
        r.quiet_ms = RATE_MIN_STATE_MS;
        r.loaded_failures = 2;
        assert_eq!(r.class(), RateClass::InsufficientData, "only 2 failures");
    }

    #[test]
    fn failures_only_under_load_with_long_quiet_time_is_load_worse() {
        let r = RateTracker {
            loaded_ms: 3_600_000,
            quiet_ms: 100 * 3_600_000,
            loaded_failures: 3,
            quiet_failures: 0,
        };
        assert_eq!(r.class(), RateClass::LoadWorse);
        let mut s = String::new();
        r.format_summary(&mut s).unwrap();
        assert!(s.ends_with("(0/h): tunnels die only under load"), "{s}");
    }

    #[test]
    fn a_short_quiet_spell_without_failures_proves_nothing() {
        let r = RateTracker {
            loaded_ms: 3_600_000,
            quiet_ms: RATE_MIN_STATE_MS,
            loaded_failures: 3,
            quiet_failures: 0,
        };
        assert_eq!(r.class(), RateClass::NoDifference);
    }

    #[test]
    fn equal_rates_make_no_difference() {
        let r = RateTracker {
            loaded_ms: 10 * 3_600_000,
            quiet_ms: 100 * 3_600_000,
            loaded_failures: 2,
            quiet_failures: 20,
        };
        assert_eq!(r.ratio_centi(), Some(100));
        assert_eq!(r.class(), RateClass::NoDifference);
        let mut s = String::new();
        r.format_summary(&mut s).unwrap();
        assert!(s.ends_with("load makes no clear difference (1.0x)"), "{s}");
    }

    #[test]
    fn samples_accumulate_loaded_and_quiet_time() {
        let t = LoadThresholds::default();
        let mut r = RateTracker::new();
        let s = |busy, psi| LoadSample {
            span_ms: 1000,
            busy_permille: busy,
            psi_some_avg10_centi: psi,
            ..Default::default()
        };
        r.on_sample(&s(900, None), &t);
        r.on_sample(&s(100, Some(5_000)), &t);
        r.on_sample(&s(100, Some(100)), &t);
        assert_eq!((r.loaded_ms(), r.quiet_ms()), (2_000, 1_000));
    }
}
