//! swandog's own pace: longer intervals and deferred work while the box is busy or swandog is
//! over its CPU budget, normal pace when both are fine again.
//!
//! Pure: fed the box's busy share (from the load sampler) and swandog's own CPU time (from
//! `getrusage`, read by the shell), it answers how long to wait between samples and polls and
//! whether non-urgent work should wait. Each change of pace is returned once, for one log line.
//!
//! ```
//! use swandog::agent::throttle::{Pace, Throttle, ThrottleSettings};
//!
//! let mut t = Throttle::new(ThrottleSettings::default());
//! assert_eq!(t.pace(), Pace::Normal);
//! for s in 0..5 {
//!     t.on_load(s * 1000, 990);
//! }
//! assert_eq!(t.pace(), Pace::BoxBusy);
//! assert!(t.sample_interval_ms() > ThrottleSettings::default().sample_interval_ms);
//! ```

use core::fmt;

use super::Millis;
use crate::limits::{
    THROTTLE_BUDGET_WINDOW_MS, THROTTLE_BUSY_ENTER_SAMPLES, THROTTLE_BUSY_LEAVE_SAMPLES,
    THROTTLE_HYSTERESIS_PERMILLE,
};

/// Knobs, all from the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// Box busy share at or above which swandog slows down.
    pub busy_permille: u16,
    /// swandog's own CPU budget, in thousandths of one core.
    pub cpu_budget_permille: u16,
    /// Load sampling interval at normal pace.
    pub sample_interval_ms: u64,
    /// Reconciling `list-sas` poll interval at normal pace.
    pub poll_interval_ms: u64,
    /// How much longer intervals get when slowed (×).
    pub stretch: u64,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        ThrottleSettings {
            busy_permille: 850,
            cpu_budget_permille: 5,
            sample_interval_ms: 1_000,
            poll_interval_ms: 30_000,
            stretch: 4,
        }
    }
}

/// How fast swandog works right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Normal intervals.
    Normal,
    /// The box is busy: stretch intervals, defer non-urgent work, pace re-initiations.
    BoxBusy,
    /// swandog used more CPU than its budget: stretch intervals until it is back under.
    OverBudget,
}

impl Pace {
    /// A word for logs and status.
    pub fn as_str(self) -> &'static str {
        match self {
            Pace::Normal => "normal",
            Pace::BoxBusy => "box-busy",
            Pace::OverBudget => "over-budget",
        }
    }
}

/// A change of pace, to be logged once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaceChange {
    /// The new pace.
    pub pace: Pace,
    /// Box busy share when it changed.
    pub busy_permille: u16,
    /// swandog's own CPU share over the last budget window, in 1/100 000 of one core.
    pub own_cpu_centi_permille: u32,
    /// The sampling interval from now on.
    pub sample_interval_ms: u64,
    /// The poll interval from now on.
    pub poll_interval_ms: u64,
}

impl fmt::Display for PaceChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.pace {
            Pace::Normal => "back to normal pace",
            Pace::BoxBusy => "box busy: slowing down and deferring non-urgent work",
            Pace::OverBudget => "over own CPU budget: slowing down",
        };
        write!(
            f,
            "throttle: {why} (box {}.{}% busy, swandog {}.{:03}% of a core); sampling every {} ms, polling every {} s",
            self.busy_permille / 10,
            self.busy_permille % 10,
            self.own_cpu_centi_permille / 1000,
            self.own_cpu_centi_permille % 1000,
            self.sample_interval_ms,
            self.poll_interval_ms / 1000
        )
    }
}

/// The throttle state machine.
#[derive(Debug, Clone)]
pub struct Throttle {
    settings: ThrottleSettings,
    pace: Pace,
    busy_run: u32,
    quiet_run: u32,
    last_busy: u16,
    window_start: Option<(Millis, u64)>,
    own_cpu_centi_permille: u32,
    over_budget: bool,
    pending: Option<PaceChange>,
    changes: u32,
}

impl Throttle {
    /// Starts at normal pace.
    pub fn new(settings: ThrottleSettings) -> Throttle {
        Throttle {
            settings,
            pace: Pace::Normal,
            busy_run: 0,
            quiet_run: 0,
            last_busy: 0,
            window_start: None,
            own_cpu_centi_permille: 0,
            over_budget: false,
            pending: None,
            changes: 0,
        }
    }

    /// New knobs (SIGHUP); the pace is kept.
    pub fn set_settings(&mut self, settings: ThrottleSettings) {
        self.settings = settings;
    }

    /// The current pace.
    pub fn pace(&self) -> Pace {
        self.pace
    }

    /// How many times the pace changed.
    pub fn changes(&self) -> u32 {
        self.changes
    }

    /// swandog's own CPU over the last window, in hundredths of a permille of one core.
    pub fn own_cpu_centi_permille(&self) -> u32 {
        self.own_cpu_centi_permille
    }

    /// One load sample of the whole box.
    pub fn on_load(&mut self, _now: Millis, busy_permille: u16) {
        self.last_busy = busy_permille;
        let leave_below = self
            .settings
            .busy_permille
            .saturating_sub(THROTTLE_HYSTERESIS_PERMILLE);
        if busy_permille >= self.settings.busy_permille {
            self.busy_run = self.busy_run.saturating_add(1);
            self.quiet_run = 0;
        } else if busy_permille < leave_below {
            self.quiet_run = self.quiet_run.saturating_add(1);
            self.busy_run = 0;
        }
        self.update();
    }

    /// swandog's own total CPU time so far (user + system), from `getrusage`.
    pub fn on_own_cpu(&mut self, now: Millis, cpu_us: u64) {
        let Some((start, start_cpu)) = self.window_start else {
            self.window_start = Some((now, cpu_us));
            return;
        };
        let elapsed_ms = now.saturating_sub(start);
        if elapsed_ms < THROTTLE_BUDGET_WINDOW_MS {
            return;
        }
        let used_us = cpu_us.saturating_sub(start_cpu);
        // used_us / (elapsed_ms × 1000) of a core, in 1/100 000 of a core.
        self.own_cpu_centi_permille = (used_us.saturating_mul(100) / elapsed_ms.max(1)) as u32;
        self.over_budget =
            self.own_cpu_centi_permille > u32::from(self.settings.cpu_budget_permille) * 100;
        self.window_start = Some((now, cpu_us));
        self.update();
    }

    fn update(&mut self) {
        let busy = match self.pace {
            Pace::BoxBusy => self.quiet_run < THROTTLE_BUSY_LEAVE_SAMPLES,
            _ => self.busy_run >= THROTTLE_BUSY_ENTER_SAMPLES,
        };
        let pace = if busy {
            Pace::BoxBusy
        } else if self.over_budget {
            Pace::OverBudget
        } else {
            Pace::Normal
        };
        if pace != self.pace {
            self.pace = pace;
            self.changes = self.changes.saturating_add(1);
            self.pending = Some(PaceChange {
                pace,
                busy_permille: self.last_busy,
                own_cpu_centi_permille: self.own_cpu_centi_permille,
                sample_interval_ms: self.sample_interval_ms(),
                poll_interval_ms: self.poll_interval_ms(),
            });
        }
    }

    /// The change of pace since the last call, if any (log it once).
    pub fn take_change(&mut self) -> Option<PaceChange> {
        self.pending.take()
    }

    fn stretch(&self) -> u64 {
        match self.pace {
            Pace::Normal => 1,
            Pace::BoxBusy | Pace::OverBudget => self.settings.stretch.max(1),
        }
    }

    /// Wait between load samples. Busy boxes are still sampled (the verdicts need it), less often.
    pub fn sample_interval_ms(&self) -> u64 {
        let stretch = self.stretch().min(2);
        self.settings.sample_interval_ms.saturating_mul(stretch)
    }

    /// Wait between reconciling `list-sas` polls.
    pub fn poll_interval_ms(&self) -> u64 {
        self.settings
            .poll_interval_ms
            .saturating_mul(self.stretch())
    }

    /// Whether non-urgent work (summaries, status rewrites, slow polls) should wait.
    pub fn defer_non_urgent(&self) -> bool {
        self.pace != Pace::Normal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(t: &mut Throttle, from_s: u64, to_s: u64, busy: u16) {
        for s in from_s..to_s {
            t.on_load(s * 1000, busy);
        }
    }

    #[test]
    fn load_spike_stretches_intervals_and_they_return_after_it() {
        let base = ThrottleSettings::default();
        let mut t = Throttle::new(base);
        feed(&mut t, 0, 60, 300);
        assert_eq!(t.pace(), Pace::Normal);
        assert_eq!(t.poll_interval_ms(), base.poll_interval_ms);
        assert!(!t.defer_non_urgent());

        feed(&mut t, 60, 120, 970);
        assert_eq!(t.pace(), Pace::BoxBusy);
        assert_eq!(t.poll_interval_ms(), base.poll_interval_ms * base.stretch);
        assert_eq!(t.sample_interval_ms(), base.sample_interval_ms * 2);
        assert!(t.defer_non_urgent());
        let change = t.take_change().expect("one change logged");
        assert_eq!(change.pace, Pace::BoxBusy);
        assert!(t.take_change().is_none(), "logged once per change");

        feed(&mut t, 120, 200, 200);
        assert_eq!(t.pace(), Pace::Normal);
        assert_eq!(t.poll_interval_ms(), base.poll_interval_ms);
        assert_eq!(t.take_change().map(|c| c.pace), Some(Pace::Normal));
        assert_eq!(t.changes(), 2);
    }

    #[test]
    fn a_single_busy_sample_does_not_throttle_and_hysteresis_prevents_flapping() {
        let mut t = Throttle::new(ThrottleSettings::default());
        t.on_load(0, 999);
        t.on_load(1000, 100);
        assert_eq!(t.pace(), Pace::Normal);
        feed(&mut t, 2, 10, 900);
        assert_eq!(t.pace(), Pace::BoxBusy);
        // Hovering just under the threshold (inside the hysteresis band) keeps it busy.
        feed(&mut t, 10, 100, 820);
        assert_eq!(t.pace(), Pace::BoxBusy);
        assert_eq!(t.changes(), 1);
    }

    #[test]
    fn own_cpu_over_budget_slows_down_until_back_under() {
        let mut t = Throttle::new(ThrottleSettings::default());
        t.on_own_cpu(0, 0);
        // 1 s of CPU in 60 s = 1.67 % of a core, over the 0.5 % budget.
        t.on_own_cpu(60_000, 1_000_000);
        assert_eq!(t.pace(), Pace::OverBudget);
        assert_eq!(t.own_cpu_centi_permille(), 1666);
        let line = t.take_change().unwrap().to_string();
        assert!(line.contains("over own CPU budget"), "{line}");
        assert!(line.contains("swandog 1.666% of a core"), "{line}");
        // 10 ms in the next 60 s is well under.
        t.on_own_cpu(120_000, 1_010_000);
        assert_eq!(t.pace(), Pace::Normal);
    }
}
