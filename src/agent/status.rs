//! The status view: what the agent knows at one moment, as plain data borrowed from it.
//!
//! [`Agent::status`](super::Agent::status) returns a [`Status`]; `report/` renders it (the
//! status file's JSON line and human form, the SIGUSR1 summary lines, the Prometheus metrics
//! file). Nothing here formats anything.
//!
//! ```
//! use swandog::agent::{Agent, Settings};
//!
//! let agent = Agent::new(Settings::default(), 1);
//! let status = agent.status(5_000);
//! assert!(!status.link.connected);
//! assert_eq!(status.children().count(), 0);
//! assert_eq!(status.dpd_records().count(), 0);
//! ```

use heapless::Deque;

use super::cause::Cause;
use super::correlate::RateTracker;
use super::history::LoadHistory;
use super::keeper::{ChildStatus, Keeper};
use super::plan::WatchNames;
use super::throttle::Pace;
use super::{Counters, DpdRecord, Millis};
use crate::limits::{DPD_RECORDS_MAX, METRIC_DPD_IKES_MAX, METRIC_FAILURE_SERIES_MAX};
use crate::sample::load::LoadSample;
use crate::vici::sa::Name;

/// The event link to charon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// Registered for events.
    pub connected: bool,
    /// charon sends `alert` events (strongSwan 6.0.3+).
    pub alerts: bool,
    /// Since when it is up (or down).
    pub since: Millis,
}

/// The agent's own pace and CPU use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaceView {
    /// The current pace.
    pub pace: Pace,
    /// Times the pace changed.
    pub changes: u32,
    /// swandog's own CPU over the last window, in hundredths of a permille of one core.
    pub own_cpu_centi_permille: u32,
}

/// A snapshot of the agent for rendering. Borrowed: build it, render it, drop it.
#[derive(Clone, Copy)]
pub struct Status<'a> {
    /// The moment it describes.
    pub now: Millis,
    /// The VICI event link.
    pub link: Link,
    /// The newest load sample, if any.
    pub load: Option<LoadSample>,
    /// The load history (for the sparkline).
    pub history: &'a LoadHistory,
    /// Pace and own CPU.
    pub pace: PaceView,
    /// DPD failures per hour, loaded vs quiet.
    pub rate: RateTracker,
    /// What went wrong, and how often.
    pub counters: Counters,
    /// Keeper report lines lost because its queue was full.
    pub keeper_reports_dropped: u32,
    /// Per-IKE DPD and per-child failure counts since start.
    pub tallies: &'a Tallies,
    pub(super) dpd_records: &'a Deque<DpdRecord, DPD_RECORDS_MAX>,
    pub(super) keeper: &'a Keeper,
    pub(super) plan: &'a WatchNames,
}

impl<'a> Status<'a> {
    /// The watched children, in the keeper's order.
    pub fn children(&self) -> impl Iterator<Item = ChildStatus<'a>> + 'a {
        self.keeper.children()
    }

    /// The last DPD failures with their verdicts, oldest first.
    pub fn dpd_records(&self) -> impl Iterator<Item = &'a DpdRecord> + 'a {
        self.dpd_records.iter()
    }

    /// Names in `watch` that charon's configuration lacks, each with a close configured name
    /// when there is one.
    pub fn missing_names(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> + 'a {
        self.plan.missing()
    }

    /// How many names in `watch` charon's configuration lacks.
    pub fn missing_count(&self) -> usize {
        self.plan.missing_count()
    }

    /// How many DPD failures are recorded (at most [`DPD_RECORDS_MAX`]).
    pub fn dpd_record_count(&self) -> usize {
        self.dpd_records.len()
    }
}

/// DPD failures of one IKE_SA (connection) since start, by verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpdTally {
    /// The IKE_SA's name.
    pub ike: Name,
    /// Failures while the box was loaded.
    pub load_correlated: u32,
    /// Failures on a quiet box.
    pub not_load_correlated: u32,
}

/// Failed re-initiations of one child with one cause, since start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureTally {
    /// The child's name.
    pub child: Name,
    /// Why it failed (its label: `no-reply`, `proposal-mismatch`, …).
    pub cause: Cause,
    /// How many.
    pub count: u32,
}

/// Counts behind the metrics' per-name counters: they must only grow, so they cannot be read
/// off the bounded DPD records. The tables are reserved once at their capacity and never grow;
/// their pages are touched only as entries come in (a router with a few tunnels uses a few
/// entries). A name beyond capacity is not counted here: the caller logs and counts it.
#[derive(Debug, Clone)]
pub struct Tallies {
    dpd: std::vec::Vec<DpdTally>,
    failures: std::vec::Vec<FailureTally>,
}

impl Default for Tallies {
    fn default() -> Self {
        Tallies::new()
    }
}

impl Tallies {
    /// Empty tables with their capacity reserved.
    pub fn new() -> Tallies {
        Tallies {
            dpd: std::vec::Vec::with_capacity(METRIC_DPD_IKES_MAX),
            failures: std::vec::Vec::with_capacity(METRIC_FAILURE_SERIES_MAX),
        }
    }

    /// Counts one DPD failure of `ike`; `false` when the table is full and `ike` is new.
    pub fn on_dpd(&mut self, ike: &Name, load_correlated: bool) -> bool {
        let i = match self.dpd.iter().position(|t| t.ike == *ike) {
            Some(i) => i,
            None if self.dpd.len() < METRIC_DPD_IKES_MAX => {
                self.dpd.push(DpdTally {
                    ike: ike.clone(),
                    load_correlated: 0,
                    not_load_correlated: 0,
                });
                self.dpd.len() - 1
            }
            None => return false,
        };
        let t = &mut self.dpd[i];
        if load_correlated {
            t.load_correlated = t.load_correlated.saturating_add(1);
        } else {
            t.not_load_correlated = t.not_load_correlated.saturating_add(1);
        }
        true
    }

    /// Counts one failed initiate of `child`; `false` when the table is full and the pair new.
    pub fn on_failure(&mut self, child: &Name, cause: Cause) -> bool {
        let known = self
            .failures
            .iter()
            .position(|t| t.cause == cause && t.child == *child);
        match known {
            Some(i) => self.failures[i].count = self.failures[i].count.saturating_add(1),
            None if self.failures.len() < METRIC_FAILURE_SERIES_MAX => {
                self.failures.push(FailureTally {
                    child: child.clone(),
                    cause,
                    count: 1,
                })
            }
            None => return false,
        }
        true
    }

    /// DPD failures per IKE_SA.
    pub fn dpd(&self) -> &[DpdTally] {
        &self.dpd
    }

    /// Failed initiates per child and cause.
    pub fn failures(&self) -> &[FailureTally] {
        &self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::try_from(s).unwrap()
    }

    #[test]
    fn tallies_count_per_name_and_refuse_new_names_when_full() {
        let mut t = Tallies::new();
        assert!(t.on_dpd(&name("con1"), true));
        assert!(t.on_dpd(&name("con1"), false));
        assert!(t.on_dpd(&name("con1"), true));
        assert_eq!(t.dpd()[0].load_correlated, 2);
        assert_eq!(t.dpd()[0].not_load_correlated, 1);
        for i in 1..METRIC_DPD_IKES_MAX {
            assert!(t.on_dpd(&name(&format!("c{i}")), false));
        }
        assert!(!t.on_dpd(&name("one-too-many"), false));
        assert!(t.on_dpd(&name("con1"), false), "known names still count");
        assert_eq!(t.dpd().len(), METRIC_DPD_IKES_MAX);

        assert!(t.on_failure(&name("con1_1"), Cause::NoReply));
        assert!(t.on_failure(&name("con1_1"), Cause::NoReply));
        assert!(t.on_failure(&name("con1_1"), Cause::AuthFailed));
        assert_eq!(t.failures().len(), 2);
        assert_eq!(t.failures()[0].count, 2);
        for i in 2..METRIC_FAILURE_SERIES_MAX {
            assert!(t.on_failure(&name(&format!("c{i}")), Cause::NoReply));
        }
        assert!(!t.on_failure(&name("late"), Cause::NoReply));
        assert_eq!(
            t.failures.capacity(),
            METRIC_FAILURE_SERIES_MAX,
            "never grew"
        );
    }
}
