//! A fixed ring of recent [`LoadSample`]s and the window queries the verdict and the status
//! need.
//!
//! Each sample is stored in 8 bytes: its end time as the step from the previous sample in
//! centiseconds (so times telescope exactly, whatever the interval), busy and PSI as they came,
//! busiest-CPU and softirq at 0.5 % resolution. A sample covers `(at - span, at]`; window
//! queries weigh it by how much of that interval falls inside the window.
//!
//! ```
//! use swandog::agent::history::LoadHistory;
//! use swandog::sample::load::LoadSample;
//!
//! let mut h = LoadHistory::new();
//! for (second, busy) in [(1, 200), (2, 900), (3, 1000), (4, 300)] {
//!     h.push(&LoadSample { at: second * 1000, span_ms: 1000, busy_permille: busy, ..Default::default() });
//! }
//! assert_eq!(h.busy_peak_permille(1000, 4000), Some(1000));
//! assert_eq!(h.busy_avg_permille(1000, 3000), Some(950)); // the samples ending at 2 s and 3 s
//! assert_eq!(h.ms_above(0, 4000, 850), 2000);
//! ```

use crate::agent::Millis;
use crate::limits::LOAD_HISTORY_SAMPLES;
use crate::sample::load::LoadSample;

/// Stored "no PSI" (the kernel has none): above any real centi-percent (at most 10000).
const NO_PSI: u16 = u16::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    /// Centiseconds since the previous sample's end (for the oldest: its own span).
    span_cs: u16,
    busy_permille: u16,
    psi_centi: u16,
    busiest_half_percent: u8,
    softirq_half_percent: u8,
}

impl Slot {
    const EMPTY: Slot = Slot {
        span_cs: 0,
        busy_permille: 0,
        psi_centi: NO_PSI,
        busiest_half_percent: 0,
        softirq_half_percent: 0,
    };
}

/// The last [`LOAD_HISTORY_SAMPLES`] load samples, oldest overwritten first.
#[derive(Debug, Clone)]
pub struct LoadHistory {
    slots: [Slot; LOAD_HISTORY_SAMPLES],
    /// Where the next sample goes.
    head: usize,
    len: usize,
    /// The newest sample's end, in centiseconds.
    newest_cs: u64,
}

impl Default for LoadHistory {
    fn default() -> Self {
        Self::new()
    }
}

impl LoadHistory {
    /// An empty history.
    pub const fn new() -> Self {
        LoadHistory {
            slots: [Slot::EMPTY; LOAD_HISTORY_SAMPLES],
            head: 0,
            len: 0,
            newest_cs: 0,
        }
    }

    /// Adds a sample. One not newer than the newest is ignored (the clock is monotonic); after a
    /// gap too long to store (over 10 min) the older samples are dropped.
    pub fn push(&mut self, sample: &LoadSample) {
        let at_cs = sample.at / 10;
        if self.len > 0 && at_cs <= self.newest_cs {
            return;
        }
        let gap_cs = u16::try_from(at_cs - self.newest_cs).ok();
        let span_cs = match gap_cs {
            Some(gap) if self.len > 0 => gap,
            _ => {
                self.len = 0;
                u16::try_from(sample.span_ms / 10).unwrap_or(u16::MAX)
            }
        };
        self.slots[self.head] = Slot {
            span_cs,
            busy_permille: sample.busy_permille.min(1000),
            psi_centi: sample
                .psi_some_avg10_centi
                .map_or(NO_PSI, |p| p.min(10_000)),
            busiest_half_percent: half_percent(sample.busiest_cpu_permille),
            softirq_half_percent: half_percent(sample.softirq_permille),
        };
        self.head = (self.head + 1) % LOAD_HISTORY_SAMPLES;
        self.len = (self.len + 1).min(LOAD_HISTORY_SAMPLES);
        self.newest_cs = at_cs;
    }

    /// Number of samples held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no sample is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// When the newest sample ended.
    pub fn newest_at(&self) -> Option<Millis> {
        (self.len > 0).then_some(self.newest_cs * 10)
    }

    /// How far back the history reaches: the start of the oldest sample's interval.
    pub fn oldest_from(&self) -> Option<Millis> {
        let first = self.samples().next()?;
        Some(first.at - u64::from(first.span_ms))
    }

    /// The samples, oldest first (busiest-CPU and softirq rounded to 0.5 %).
    pub fn samples(&self) -> Samples<'_> {
        let behind: u64 = (1..self.len).map(|i| u64::from(self.slot(i).span_cs)).sum();
        Samples {
            history: self,
            index: 0,
            at_cs: self.newest_cs.saturating_sub(behind),
        }
    }

    /// Time-weighted average busy over `[from, to]`; `None` if no sample covers any of it.
    pub fn busy_avg_permille(&self, from: Millis, to: Millis) -> Option<u16> {
        let (weighted, covered) = self
            .overlapping(from, to)
            .fold((0u64, 0u64), |(w, c), (s, ms)| {
                (w + u64::from(s.busy_permille) * ms, c + ms)
            });
        (covered > 0).then(|| ((weighted + covered / 2) / covered) as u16)
    }

    /// Highest busy of the samples overlapping `[from, to]`.
    pub fn busy_peak_permille(&self, from: Millis, to: Millis) -> Option<u16> {
        self.overlapping(from, to)
            .map(|(s, _)| s.busy_permille)
            .max()
    }

    /// Milliseconds of `[from, to]` covered by samples with busy ≥ `threshold_permille`.
    pub fn ms_above(&self, from: Millis, to: Millis, threshold_permille: u16) -> u64 {
        self.ms_where(from, to, |s| s.busy_permille >= threshold_permille)
    }

    /// Milliseconds of `[from, to]` covered by samples for which `pred` holds.
    pub fn ms_where(&self, from: Millis, to: Millis, pred: impl Fn(&LoadSample) -> bool) -> u64 {
        self.overlapping(from, to)
            .filter(|(s, _)| pred(s))
            .map(|(_, ms)| ms)
            .sum()
    }

    /// Milliseconds of `[from, to]` covered by any sample.
    pub fn covered_ms(&self, from: Millis, to: Millis) -> u64 {
        self.ms_where(from, to, |_| true)
    }

    /// Highest CPU pressure of the samples overlapping `[from, to]`; `None` without PSI.
    pub fn psi_peak_centi(&self, from: Millis, to: Millis) -> Option<u16> {
        self.overlapping(from, to)
            .filter_map(|(s, _)| s.psi_some_avg10_centi)
            .max()
    }

    /// Samples with how many milliseconds of their interval fall inside `[from, to]` (> 0).
    fn overlapping(
        &self,
        from: Millis,
        to: Millis,
    ) -> impl Iterator<Item = (LoadSample, u64)> + '_ {
        self.samples().filter_map(move |s| {
            let start = s.at - u64::from(s.span_ms);
            let ms = s.at.min(to).saturating_sub(start.max(from));
            (ms > 0).then_some((s, ms))
        })
    }

    /// The `i`th sample, oldest first.
    fn slot(&self, i: usize) -> Slot {
        self.slots[(self.head + LOAD_HISTORY_SAMPLES - self.len + i) % LOAD_HISTORY_SAMPLES]
    }
}

fn half_percent(permille: u16) -> u8 {
    (permille.min(1000).div_ceil(5)) as u8
}

/// Iterator over a [`LoadHistory`]'s samples, oldest first.
#[derive(Debug, Clone)]
pub struct Samples<'a> {
    history: &'a LoadHistory,
    index: usize,
    /// End of the sample at `index`, in centiseconds.
    at_cs: u64,
}

impl Iterator for Samples<'_> {
    type Item = LoadSample;

    fn next(&mut self) -> Option<LoadSample> {
        if self.index >= self.history.len {
            return None;
        }
        let slot = self.history.slot(self.index);
        let sample = LoadSample {
            at: self.at_cs * 10,
            span_ms: u32::from(slot.span_cs) * 10,
            busy_permille: slot.busy_permille,
            busiest_cpu_permille: u16::from(slot.busiest_half_percent) * 5,
            softirq_permille: u16::from(slot.softirq_half_percent) * 5,
            psi_some_avg10_centi: (slot.psi_centi != NO_PSI).then_some(slot.psi_centi),
        };
        self.index += 1;
        if self.index < self.history.len {
            self.at_cs += u64::from(self.history.slot(self.index).span_cs);
        }
        Some(sample)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: Millis, busy: u16) -> LoadSample {
        LoadSample {
            at,
            span_ms: 1000,
            busy_permille: busy,
            ..Default::default()
        }
    }

    fn history(busy_per_second: &[u16]) -> LoadHistory {
        let mut h = LoadHistory::new();
        for (i, &b) in busy_per_second.iter().enumerate() {
            h.push(&sample((i as u64 + 1) * 1000, b));
        }
        h
    }

    #[test]
    fn ring_is_a_few_kib() {
        let size = core::mem::size_of::<LoadHistory>();
        println!("size_of::<LoadHistory>() = {size} bytes for {LOAD_HISTORY_SAMPLES} samples");
        assert_eq!(core::mem::size_of::<Slot>(), 8);
        assert!(size <= 8 * LOAD_HISTORY_SAMPLES + 64);
    }

    #[test]
    fn ring_covers_more_than_ten_minutes_at_one_second() {
        let h = history(&[500; 2000]);
        assert_eq!(h.len(), LOAD_HISTORY_SAMPLES);
        let reach = h.newest_at().unwrap() - h.oldest_from().unwrap();
        assert!(reach >= 600_000, "{reach}");
        assert_eq!(h.newest_at(), Some(2_000_000));
    }

    #[test]
    fn samples_come_back_oldest_first_with_their_times() {
        let mut h = LoadHistory::new();
        let s = LoadSample {
            at: 5_000,
            span_ms: 1_000,
            busy_permille: 123,
            busiest_cpu_permille: 998,
            softirq_permille: 41,
            psi_some_avg10_centi: Some(6189),
        };
        h.push(&s);
        h.push(&LoadSample {
            at: 7_500,
            ..sample(0, 1)
        });
        let got: Vec<LoadSample> = h.samples().collect();
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0],
            LoadSample {
                busiest_cpu_permille: 1000,
                softirq_permille: 45,
                ..s
            }
        );
        assert_eq!(
            (got[1].at, got[1].span_ms, got[1].busy_permille),
            (7_500, 2_500, 1)
        );
        assert_eq!(got[1].psi_some_avg10_centi, None);
    }

    #[test]
    fn irregular_intervals_keep_exact_times_after_wrapping() {
        let mut h = LoadHistory::new();
        let mut at = 0;
        for i in 0..(LOAD_HISTORY_SAMPLES as u64 * 3) {
            at += 700 + (i % 5) * 130; // 700..1220 ms
            h.push(&sample(at, 1));
        }
        assert_eq!(h.samples().last().unwrap().at, at);
        let total: u64 = h.samples().skip(1).map(|s| u64::from(s.span_ms)).sum();
        assert_eq!(h.samples().next().unwrap().at + total, at);
    }

    #[test]
    fn stale_or_repeated_timestamps_are_ignored() {
        let mut h = history(&[100, 200]);
        h.push(&sample(2_000, 900));
        h.push(&sample(1_500, 900));
        assert_eq!(h.len(), 2);
        assert_eq!(h.busy_peak_permille(0, 10_000), Some(200));
    }

    #[test]
    fn a_gap_longer_than_a_span_can_hold_drops_older_samples() {
        let mut h = history(&[900, 900]);
        h.push(&sample(2_000 + 700_000, 100));
        assert_eq!(h.len(), 1);
        assert_eq!(h.oldest_from(), Some(701_000));
        assert_eq!(h.busy_peak_permille(0, 800_000), Some(100));
    }

    #[test]
    fn average_is_weighted_by_overlap_with_the_window() {
        let h = history(&[0, 1000]); // (0,1 s] idle, (1 s,2 s] pegged
        assert_eq!(h.busy_avg_permille(0, 2_000), Some(500));
        assert_eq!(h.busy_avg_permille(500, 2_000), Some(667));
        assert_eq!(h.busy_avg_permille(1_500, 1_700), Some(1000));
        assert_eq!(h.ms_above(500, 2_000, 850), 1000);
        assert_eq!(h.covered_ms(500, 5_000), 1_500);
    }

    #[test]
    fn a_window_outside_the_history_has_no_figures() {
        let h = history(&[900; 5]);
        assert_eq!(h.busy_avg_permille(10_000, 20_000), None);
        assert_eq!(h.busy_peak_permille(10_000, 20_000), None);
        assert_eq!(h.ms_above(10_000, 20_000, 0), 0);
        assert_eq!(h.busy_avg_permille(3_000, 3_000), None, "empty window");
        assert_eq!(h.busy_avg_permille(4_000, 2_000), None, "reversed window");
        assert_eq!(LoadHistory::new().busy_avg_permille(0, 1_000), None);
    }

    #[test]
    fn psi_peak_ignores_samples_without_psi() {
        let mut h = LoadHistory::new();
        h.push(&sample(1_000, 0));
        assert_eq!(h.psi_peak_centi(0, 1_000), None);
        for (at, psi) in [(2_000, 1_000), (3_000, 6_200), (4_000, 300)] {
            h.push(&LoadSample {
                psi_some_avg10_centi: Some(psi),
                ..sample(at, 0)
            });
        }
        assert_eq!(h.psi_peak_centi(0, 5_000), Some(6_200));
        assert_eq!(h.psi_peak_centi(3_000, 4_000), Some(300));
    }
}
