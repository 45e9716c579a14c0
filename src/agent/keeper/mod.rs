//! The keeper: which watched children must be up, and when to re-initiate them — fast, gently,
//! forever, and from one side only.
//!
//! Sans-I/O, in the manner of `quinn-proto`: the shell feeds it what charon reports (updown events,
//! `list-sas` snapshots, `initiate` results) together with its monotonic `now`, then calls
//! [`Keeper::poll`] for what to do and [`Keeper::next_wake`] for when to call again. No sockets,
//! clocks or files; everything in fixed capacity; it never panics.
//!
//! What it does, in order of a child's life:
//! * **Down** (a `child-updown`/`ike-updown` down for the SA it knew, or a snapshot without an
//!   installed SA of that name): one report line, then a first attempt after the *grace*, so that
//!   charon's own dpd/close action can win and no duplicate is made.
//! * **Before every attempt** it wants a `list-sas` taken after the attempt fell due
//!   ([`KeeperAction::Reconcile`]); if that shows the child or its IKE_SA CONNECTING, charon is
//!   already at it and the attempt is postponed by one backoff step.
//! * **Attempts** ([`KeeperAction::Initiate`]), at most one in flight per child, back off
//!   exponentially from `backoff_min_ms` to `backoff_cap_ms` with downward jitter, and never stop.
//!   Repeats are summarized (after 1 min, 10 min, 1 h, then every 6 h), not logged one by one.
//!   A child that keeps dropping soon after coming up (*flapping*) keeps backing off instead of
//!   resetting, and its per-change lines give way to the same summaries.
//! * **Pacing** ([`Keeper::set_pace`], for the throttle): one child at a time, spaced out, but
//!   no child ever waits longer than the cap.
//! * **Role**: a responder never initiates; `auto` lets the side with the lower address do it
//!   (from the IKE_SA's own view, else the configured addresses; unknown: initiate). Use `auto`
//!   only with swandog `auto` on both ends and no NAT between them: behind NAT each side sees a
//!   different pair of addresses, and both, or neither, may initiate.
//! * **Stale** (one-sided) SAs and **duplicate** IKE_SAs are reported; with
//!   [`StaleAction::Restart`] a stale child is terminated and re-initiated.
//!
//! ```
//! use swandog::agent::keeper::{Keeper, KeeperAction, KeeperSettings, WatchReason};
//!
//! let mut keeper = Keeper::new(KeeperSettings::default(), 42);
//! keeper.watch("con2_1", "con2", WatchReason::RouteBased).unwrap();
//! let mut actions = Vec::new();
//!
//! // First poll: the keeper asks for a `list-sas`; here charon has no SA at all.
//! keeper.poll(0, &mut |a| { actions.push(a); true });
//! assert!(matches!(actions[..], [KeeperAction::Reconcile]));
//! keeper.begin_snapshot(3);
//! keeper.end_snapshot();
//!
//! actions.clear();
//! keeper.poll(3, &mut |a| { actions.push(a); true });
//! let KeeperAction::Report(line) = &actions[0] else { panic!() };
//! assert_eq!(line.to_string(), "con2_1: down (not established); re-initiating in 1.0 s");
//!
//! // After the grace it wants a fresh view, then initiates.
//! let due = keeper.next_wake().unwrap();
//! actions.clear();
//! keeper.poll(due, &mut |a| { actions.push(a); true });
//! assert!(matches!(actions[..], [KeeperAction::Reconcile]));
//! keeper.on_snapshot(due + 2, []);
//! actions.clear();
//! keeper.poll(due + 2, &mut |a| { actions.push(a); true });
//! assert!(actions.is_empty(), "the attempt is queued, not handed out with the reports");
//! // The shell's worker takes it when it is free; the attempt's deadline starts then.
//! let job = keeper.next_job(due + 2);
//! assert!(matches!(&job, Some(KeeperAction::Initiate { child, .. }) if child == "con2_1"));
//! ```
//!
//! # Where things are
//! This file: the inputs (events, snapshots, results), `poll`, `next_job` and the state machine of
//! one child (up, down, queued, initiating). Beside it: `watch` (the watch list and how it
//! follows charon's configuration), `snapshot` (reconciling with `list-sas`), `schedule`
//! (backoff, jitter, pacing, the fresh `list-sas` before an attempt), `basis` (role), `stale`
//! (one-sided SAs), `report` (the operator's lines and the summary schedule), `tests`.
//!
//! # Driving it (the shell's side)
//! * Follow charon's configuration: for every `list-conns`, [`Keeper::begin_conns`], then for
//!   each connection [`Keeper::set_endpoints`], [`Keeper::conn_child`] for each of its children
//!   and [`Keeper::watch`] for those the plan keeps (`super::plan`), then
//!   [`Keeper::end_conns`]: a watched child charon no longer has is set aside, not re-initiated.
//! * Feed every `ike-updown` / `child-updown` event, every complete `list-sas`
//!   ([`Keeper::begin_snapshot`], [`Keeper::snapshot_ike`] per IKE_SA, [`Keeper::end_snapshot`])
//!   and every `initiate` result ([`Keeper::on_initiate_result`]).
//! * After any input, call [`Keeper::poll`] and carry out the actions in the order given, then
//!   sleep until [`Keeper::next_wake`] (a time at or before `now` means poll again at once).
//! * Whenever the VICI command worker is free, take one call with [`Keeper::next_job`]
//!   (`Initiate` or `Terminate`). Work waits inside the keeper, one flag per child, so nothing
//!   can overflow a queue between the two.
//! * `Initiate`: VICI `initiate {child, ike, timeout = initiate_timeout_ms, init-limits = yes}`;
//!   report the outcome (classified) within `initiate_timeout_ms + KEEPER_INITIATE_MARGIN_MS`,
//!   after which the keeper counts the attempt as failed. `Reconcile`: run `list-sas` soon (the
//!   attempt waits up to `KEEPER_RECONCILE_WAIT_MS` for it). `Terminate`: VICI `terminate
//!   {child-id}`; the re-initiation follows by itself. `Report`: one syslog line.
//! * Keep the periodic `list-sas` (it also feeds stale detection, which compares counters
//!   between snapshots); seed [`Keeper::new`] differently per box and start.

use core::cmp::Ordering;
use core::fmt;
use core::net::IpAddr;

use heapless::{Deque, String, Vec};

pub use super::cause::Cause;
use super::table::Table;
use super::Millis;
use crate::limits::{
    HOST_MAX_BYTES, KEEPER_BACKOFF_CAP_MS, KEEPER_BACKOFF_MIN_MS, KEEPER_DUPLICATE_CONFIRM_MS,
    KEEPER_FLAPS_BEFORE_QUIET, KEEPER_GRACE_MS, KEEPER_INITIATE_MARGIN_MS,
    KEEPER_INITIATE_TIMEOUT_MS, KEEPER_JITTER_PERCENT, KEEPER_PACED_GAP_MS,
    KEEPER_QUIET_EXIT_UP_MS, KEEPER_RECONCILE_WAIT_MS, KEEPER_REPORT_QUEUE_MAX,
    KEEPER_SAS_PER_CHILD_MAX, KEEPER_STABLE_UP_MS, KEEPER_STALE_AFTER_MS, KEEPER_SUMMARY_AFTER_MS,
    KEEPER_SUMMARY_EVERY_MS, WATCHED_CHILDREN_MAX,
};
use crate::vici::sa::{lossy_truncated, ChildState, IkeSa, IkeState, Name};

mod basis;
mod report;
mod schedule;
mod snapshot;
mod stale;
#[cfg(test)]
mod tests;
mod watch;

pub use super::units::Span;
pub use basis::{auto_basis, Basis};
pub(crate) use report::summary_offset;
pub use report::{KeeperReport, Plan, ReportKind};
pub use stale::StaleResponse;
pub use watch::WatchError;

// ---------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------

pub use super::role::{Role, StaleAction};

/// The keeper's knobs; [`Default`] gives the defaults from `limits.rs` with `Role::Initiator`,
/// the config's `agent_settings` what the operator configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeeperSettings {
    /// Which side re-initiates.
    pub role: Role,
    /// Wait after a down before the first attempt.
    pub grace_ms: Millis,
    /// First backoff delay after a failed attempt.
    pub backoff_min_ms: Millis,
    /// Longest delay between two attempts (the grace is clamped to it as well).
    pub backoff_cap_ms: Millis,
    /// Packets-in frozen this long while packets-out grow → stale.
    pub stale_after_ms: Millis,
    /// What to do about a stale child.
    pub stale_action: StaleAction,
    /// The `timeout` the shell passes to VICI `initiate`; the keeper waits this plus
    /// `KEEPER_INITIATE_MARGIN_MS` for a result.
    pub initiate_timeout_ms: Millis,
}

impl Default for KeeperSettings {
    fn default() -> Self {
        KeeperSettings {
            role: Role::Initiator,
            grace_ms: KEEPER_GRACE_MS,
            backoff_min_ms: KEEPER_BACKOFF_MIN_MS,
            backoff_cap_ms: KEEPER_BACKOFF_CAP_MS,
            stale_after_ms: KEEPER_STALE_AFTER_MS,
            stale_action: StaleAction::Report,
            initiate_timeout_ms: KEEPER_INITIATE_TIMEOUT_MS,
        }
    }
}

impl KeeperSettings {
    /// Makes the timings consistent: cap ≥ 1 ms, 1 ms ≤ min ≤ cap, grace ≤ cap, timeouts ≥ 1 ms.
    pub fn sanitized(mut self) -> Self {
        self.backoff_cap_ms = self.backoff_cap_ms.max(1);
        self.backoff_min_ms = self.backoff_min_ms.clamp(1, self.backoff_cap_ms);
        self.grace_ms = self.grace_ms.min(self.backoff_cap_ms);
        self.stale_after_ms = self.stale_after_ms.max(1);
        self.initiate_timeout_ms = self.initiate_timeout_ms.max(1);
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Watch list
// ---------------------------------------------------------------------------------------------

pub use super::plan::WatchReason;

// ---------------------------------------------------------------------------------------------
// Inputs and outputs
// ---------------------------------------------------------------------------------------------

/// What a VICI `initiate` came back with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InitiateOutcome {
    /// `success = yes`.
    pub ok: bool,
    /// Failed "due to existing duplicate": the child is up, which is what was wanted.
    pub duplicate: bool,
    /// Why it failed, when charon's log or answer said.
    pub cause: Option<Cause>,
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeeperAction {
    /// VICI `initiate {child, ike, timeout = initiate_timeout_ms, init-limits = yes}`, then
    /// [`Keeper::on_initiate_result`].
    Initiate {
        /// Child name.
        child: Name,
        /// Its connection.
        ike: Name,
    },
    /// VICI `terminate {child-id}` (a stale restart; the re-initiation follows by itself).
    Terminate {
        /// Child name (for the log).
        child: Name,
        /// The CHILD_SA's unique id.
        child_uniqueid: u32,
    },
    /// Run a `list-sas` now and feed it ([`Keeper::begin_snapshot`] …).
    Reconcile,
    /// Write one syslog line (`Display`).
    Report(KeeperReport),
}

/// A watched child's state as the status view shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeptState {
    /// Not seen yet (no snapshot or event).
    Unknown,
    /// An SA of that name is installed.
    Up,
    /// Down, and this side does not initiate.
    Down,
    /// An attempt is in flight (ours, or charon's own as seen in `list-sas`).
    Connecting,
    /// Down; next attempt at `until`.
    Waiting {
        /// Time of the next attempt.
        until: Millis,
    },
    /// Set aside: charon no longer has it configured, or `watch` no longer names it.
    NotKept,
}

impl fmt::Display for KeptState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeptState::Unknown => "unknown",
            KeptState::Up => "up",
            KeptState::Down => "down",
            KeptState::Connecting => "connecting",
            KeptState::Waiting { .. } => "waiting",
            KeptState::NotKept => "not kept",
        })
    }
}

/// One line of the status view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildStatus<'a> {
    /// Child name.
    pub name: &'a str,
    /// Its connection.
    pub ike: &'a str,
    /// Why it is watched.
    pub reason: WatchReason,
    /// Current state.
    pub state: KeptState,
    /// Since when it is up (or down).
    pub since: Millis,
    /// Times swandog's initiates brought it back.
    pub reinitiations: u32,
    /// Initiates sent for it, ever.
    pub initiates: u32,
    /// Initiates sent in the current outage.
    pub attempts_since_down: u32,
    /// Label of the last failed attempt.
    pub last_failure: Option<Cause>,
    /// Time of the next attempt, when one is scheduled.
    pub next_attempt_at: Option<Millis>,
    /// Whether, and why, this side initiates it.
    pub basis: Basis,
    /// Reported as one-sided and not yet healed.
    pub stale: bool,
    /// Flapping: per-change lines are summarized.
    pub flapping: bool,
}

// ---------------------------------------------------------------------------------------------
// Internal state
// ---------------------------------------------------------------------------------------------

/// Tiny deterministic PRNG (splitmix64) for jitter; seeded by the shell.
#[derive(Debug, Clone)]
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-ish in `0..=max` (modulo bias is irrelevant for jitter).
    fn up_to(&mut self, max: u64) -> u64 {
        match max.checked_add(1) {
            Some(n) => self.next_u64() % n,
            None => self.next_u64(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SaId {
    ike: u32,
    child: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Unknown,
    Up,
    Down,
    /// Due and handed over: waiting for the shell's worker to take the `initiate`
    /// ([`Keeper::next_job`]). No deadline runs yet: the worker runs one call at a time, each
    /// with its own deadline, so a long queue is not charon failing to answer.
    Queued {
        at: Millis,
    },
    Initiating {
        started: Millis,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counters {
    child: u32,
    packets_in: u64,
    packets_out: u64,
}

/// What the snapshot being read says about one child.
#[derive(Debug, Clone, Default)]
struct Seen {
    up: bool,
    ids: Vec<SaId, KEEPER_SAS_PER_CHILD_MAX>,
    newest: Option<Counters>,
    busy: bool,
    uncertain: bool,
    terminating_listed: bool,
}

#[derive(Debug, Clone)]
struct StaleWatch {
    /// SA id, packets-in seen, packets-out when packets-in last moved.
    tracked: Option<Counters>,
    frozen_since: Millis,
    reported: bool,
    restart_armed: bool,
}

#[derive(Debug, Clone)]
struct Watched {
    name: Name,
    ike: usize,
    reason: WatchReason,
    phase: Phase,
    since: Millis,
    /// Up since an observed re-establishment (not merely found up at start): a quick drop
    /// after it is a flap.
    up_observed: bool,
    last_event_at: Option<Millis>,
    sas: Vec<SaId, KEEPER_SAS_PER_CHILD_MAX>,
    level: u32,
    attempts: u32,
    initiates: u32,
    reinitiations: u32,
    last_failure: Option<Cause>,
    failure_reported: bool,
    next_attempt_at: Option<Millis>,
    latest_at: Millis,
    busy: bool,
    summaries: u32,
    basis: Basis,
    flaps: u32,
    quiet_since: Option<Millis>,
    quiet_drops: u32,
    quiet_summaries: u32,
    stale: StaleWatch,
    /// A stale restart's Terminate, not yet handed to the shell.
    terminate: Option<u32>,
    /// The CHILD_SA a stale restart terminates: not counted as up while it lingers.
    terminating: Option<u32>,
    seen: Seen,
    /// Kept: configured in charon (and planned) as of the last `list-conns`. A child set aside
    /// keeps its place and counters until a new child needs the place.
    configured: bool,
    /// Shown by the running `list-conns`.
    listed: bool,
    /// Kept by the plan in the running `list-conns`.
    planned: bool,
}

#[derive(Debug, Clone)]
struct IkeEntry {
    name: Name,
    local: String<HOST_MAX_BYTES>,
    remote: String<HOST_MAX_BYTES>,
    from_sa: bool,
    established_seen: u8,
    dup_reported: u8,
    dup_first_seen: Option<Millis>,
}

#[derive(Debug, Clone, Copy)]
enum Subject {
    Child(usize),
    Ike(usize),
}

#[derive(Debug, Clone, Copy)]
struct Queued {
    subject: Subject,
    kind: ReportKind,
}

enum Gate {
    Fire,
    Postpone,
    Wait,
    NeedReconcile,
}

/// The keeper state machine; see the module documentation.
#[derive(Debug, Clone)]
pub struct Keeper {
    settings: KeeperSettings,
    rng: SplitMix,
    slow: bool,
    // Reserved at start, touched as used (see `table`): 25 + 13 KiB at 64 children.
    children: Table<Watched>,
    ikes: Table<IkeEntry>,
    queue: Deque<Queued, KEEPER_REPORT_QUEUE_MAX>,
    reports_dropped: u32,
    reports_dropped_told: u32,
    snapshot_at: Option<Millis>,
    last_snapshot_at: Option<Millis>,
    reconcile_requested_at: Option<Millis>,
    last_initiate_at: Option<Millis>,
    /// A `list-conns` is being read ([`Keeper::begin_conns`]).
    listing: bool,
}

impl Keeper {
    /// A keeper with nothing watched; `seed` drives the jitter (pass something that differs per
    /// box and per start, e.g. time and pid mixed).
    pub fn new(settings: KeeperSettings, seed: u64) -> Keeper {
        Keeper {
            settings: settings.sanitized(),
            rng: SplitMix(seed),
            slow: false,
            children: Table::with_capacity(WATCHED_CHILDREN_MAX),
            ikes: Table::with_capacity(WATCHED_CHILDREN_MAX),
            queue: Deque::new(),
            reports_dropped: 0,
            reports_dropped_told: 0,
            snapshot_at: None,
            last_snapshot_at: None,
            reconcile_requested_at: None,
            last_initiate_at: None,
            listing: false,
        }
    }

    /// The settings in force (after [`KeeperSettings::sanitized`]).
    pub fn settings(&self) -> &KeeperSettings {
        &self.settings
    }

    /// New knobs (SIGHUP): watched children, their state and backoff are kept.
    pub fn set_settings(&mut self, settings: KeeperSettings) {
        self.settings = settings.sanitized();
    }

    /// Throttle hook (issue 6): when `slow`, re-initiations go one child at a time, at least
    /// `KEEPER_PACED_GAP_MS` apart — but no child waits longer than the backoff cap for it.
    pub fn set_pace(&mut self, slow: bool) {
        self.slow = slow;
    }

    /// Whether re-initiations are paced.
    pub fn is_paced(&self) -> bool {
        self.slow
    }

    // ---- inputs ------------------------------------------------------------------------------

    /// A `child-updown` event; `ike.children` holds the child.
    /// `cause` is the down's classification (`diagnose::classify_down`); ignored for an up.
    pub fn on_child_updown(&mut self, now: Millis, up: bool, ike: &IkeSa, cause: Cause) {
        self.learn_endpoints(ike);
        for c in &ike.children {
            let Some(i) = self.find(&c.name, &ike.name) else {
                continue;
            };
            let id = SaId {
                ike: ike.uniqueid,
                child: c.uniqueid,
            };
            let w = &mut self.children[i];
            w.last_event_at = Some(now);
            w.busy = false;
            if up {
                if !w.sas.contains(&id) {
                    let _ = w.sas.push(id);
                }
                self.mark_up(i, now);
                self.hurry_siblings(i, now);
            } else {
                if w.terminating == Some(c.uniqueid) {
                    w.terminating = None;
                }
                self.sa_gone(i, now, |s| *s == id, cause);
            }
        }
    }

    /// A child of `i`'s connection came up, so the peer answers again: siblings still waiting
    /// out their backoff are tried now instead of at their next slot.
    fn hurry_siblings(&mut self, i: usize, now: Millis) {
        let ike = self.children[i].ike;
        for (j, w) in self.children.iter_mut().enumerate() {
            if j != i && w.ike == ike && w.phase == Phase::Down {
                if let Some(at) = w.next_attempt_at.as_mut() {
                    *at = (*at).min(now);
                }
            }
        }
    }

    /// An `ike-updown` event: a down takes every child of that IKE_SA with it.
    /// `cause` is the down's classification (`diagnose::classify_down`); ignored for an up.
    pub fn on_ike_updown(&mut self, now: Millis, up: bool, ike: &IkeSa, cause: Cause) {
        self.learn_endpoints(ike);
        let Some(e) = self.ike_index(&ike.name) else {
            return;
        };
        for i in 0..self.children.len() {
            if self.children[i].ike != e || !self.children[i].configured {
                continue;
            }
            let w = &mut self.children[i];
            w.last_event_at = Some(now);
            w.busy = false;
            if up {
                continue;
            }
            let listed = ike.child(&w.name).is_some();
            let uid = ike.uniqueid;
            if w.sas.is_empty() && !listed {
                continue; // not known to be this IKE_SA's child: its own child-down will tell
            }
            self.sa_gone(i, now, |s| s.ike == uid, cause);
        }
    }

    /// The result of an `initiate` the keeper asked for. Success or "existing duplicate" marks
    /// the child up; a failure schedules the next attempt (unless the attempt had already timed
    /// out: results are not numbered, so report each one within the timeout).
    pub fn on_initiate_result(
        &mut self,
        now: Millis,
        child: &str,
        ike: &str,
        outcome: InitiateOutcome,
    ) {
        let Some(i) = self.find(child, ike) else {
            return;
        };
        if outcome.ok || outcome.duplicate {
            self.mark_up(i, now);
        } else {
            self.fail(i, now, outcome.cause.unwrap_or(Cause::Unknown));
        }
    }

    // ---- output ------------------------------------------------------------------------------

    /// Hands every due action to `emit`, in the order the shell should carry them out.
    ///
    /// `emit` returns whether it took the action; a refused report waits for the next poll.
    pub fn poll(&mut self, now: Millis, emit: &mut impl FnMut(KeeperAction) -> bool) {
        self.drain(emit);
        if self.last_snapshot_at.is_none()
            && self.reconcile_requested_at.is_none()
            && !self.children.is_empty()
        {
            self.reconcile_requested_at = Some(now);
            emit(KeeperAction::Reconcile);
        }
        let timeout = self
            .settings
            .initiate_timeout_ms
            .saturating_add(KEEPER_INITIATE_MARGIN_MS);
        for i in 0..self.children.len() {
            if let Phase::Initiating { started } = self.children[i].phase {
                if now >= started.saturating_add(timeout) {
                    self.fail(i, now, Cause::NoResult);
                }
            }
            self.summarize(i, now);
        }

        let mut need_reconcile = false;
        for i in 0..self.children.len() {
            if self.ready_at(i).is_none_or(|r| r > now) {
                continue;
            }
            match self.gate(i, now) {
                Gate::Postpone => self.postpone(i, now),
                Gate::NeedReconcile => need_reconcile = true,
                Gate::Fire | Gate::Wait => {}
            }
        }
        if need_reconcile {
            self.reconcile_requested_at = Some(now);
            emit(KeeperAction::Reconcile);
        }
        // Fire in order of due time; under pacing each fire blocks the rest (≤ n rounds).
        for _ in 0..self.children.len() {
            let next = (0..self.children.len())
                .filter(|&i| self.ready_at(i).is_some_and(|r| r <= now))
                .filter(|&i| matches!(self.gate(i, now), Gate::Fire))
                .min_by_key(|&i| self.children[i].next_attempt_at);
            let Some(i) = next else {
                break;
            };
            let w = &mut self.children[i];
            w.phase = Phase::Queued { at: now };
            w.next_attempt_at = None;
            self.last_initiate_at = Some(now);
        }
        self.drain(emit);
    }

    /// The next VICI call to make, one at a time, when the shell's worker is free: a stale
    /// restart's `Terminate` first, then the `Initiate` queued longest ago. An `Initiate` taken
    /// here counts as sent, and its deadline (`initiate_timeout_ms` plus
    /// `KEEPER_INITIATE_MARGIN_MS`) starts now — not when it was queued, so a site outage that
    /// queues every child at once is not read as charon failing to answer the last of them.
    pub fn next_job(&mut self, now: Millis) -> Option<KeeperAction> {
        if let Some(w) = self.children.iter_mut().find(|w| w.terminate.is_some()) {
            let uid = w.terminate.take()?;
            return Some(KeeperAction::Terminate {
                child: w.name.clone(),
                child_uniqueid: uid,
            });
        }
        let i = (0..self.children.len())
            .filter_map(|i| match self.children[i].phase {
                Phase::Queued { at } => Some((at, i)),
                _ => None,
            })
            .min()?
            .1;
        let w = &mut self.children[i];
        w.phase = Phase::Initiating { started: now };
        w.attempts = w.attempts.saturating_add(1);
        w.initiates = w.initiates.saturating_add(1);
        Some(KeeperAction::Initiate {
            child: w.name.clone(),
            ike: self.ikes[w.ike].name.clone(),
        })
    }

    /// Whether [`Keeper::next_job`] has something.
    pub fn has_job(&self) -> bool {
        self.children
            .iter()
            .any(|w| w.terminate.is_some() || matches!(w.phase, Phase::Queued { .. }))
    }

    /// When [`Keeper::poll`] next has something to do; `None` when only an input can change
    /// anything. A time at or before the last `now` means "poll again at once".
    pub fn next_wake(&self) -> Option<Millis> {
        if !self.queue.is_empty()
            || self.reports_dropped != self.reports_dropped_told
            || (self.last_snapshot_at.is_none()
                && self.reconcile_requested_at.is_none()
                && !self.children.is_empty())
        {
            return Some(0);
        }
        let timeout = self
            .settings
            .initiate_timeout_ms
            .saturating_add(KEEPER_INITIATE_MARGIN_MS);
        let mut wake: Option<Millis> = None;
        let mut at = |t: Millis| wake = Some(wake.map_or(t, |w| w.min(t)));
        for (i, w) in self.children.iter().enumerate() {
            if let Phase::Initiating { started } = w.phase {
                at(started.saturating_add(timeout));
            }
            if let (Some(ready), Some(due)) = (self.ready_at(i), w.next_attempt_at) {
                let fresh = self.last_snapshot_at.is_some_and(|s| s >= due);
                match self.reconcile_requested_at {
                    Some(r) if !fresh && r >= due => {
                        at(ready.max(r.saturating_add(KEEPER_RECONCILE_WAIT_MS)))
                    }
                    _ => at(ready),
                }
            }
            if let Some(q) = w.quiet_since {
                if w.phase == Phase::Up {
                    at(w.since.saturating_add(KEEPER_QUIET_EXIT_UP_MS));
                }
                at(q.saturating_add(summary_offset(w.quiet_summaries)));
            } else if matches!(
                w.phase,
                Phase::Down | Phase::Queued { .. } | Phase::Initiating { .. }
            ) {
                at(w.since.saturating_add(summary_offset(w.summaries)));
            }
        }
        wake
    }

    /// The status view, one entry per watched child.
    pub fn children(&self) -> impl Iterator<Item = ChildStatus<'_>> + '_ {
        self.children.iter().map(move |w| {
            let state = match w.phase {
                _ if !w.configured => KeptState::NotKept,
                Phase::Unknown => KeptState::Unknown,
                Phase::Up => KeptState::Up,
                Phase::Queued { .. } | Phase::Initiating { .. } => KeptState::Connecting,
                Phase::Down if w.busy => KeptState::Connecting,
                Phase::Down => match w.next_attempt_at {
                    Some(until) => KeptState::Waiting { until },
                    None => KeptState::Down,
                },
            };
            ChildStatus {
                name: &w.name,
                ike: &self.ikes[w.ike].name,
                reason: w.reason,
                state,
                since: w.since,
                reinitiations: w.reinitiations,
                initiates: w.initiates,
                attempts_since_down: w.attempts,
                last_failure: w.last_failure,
                next_attempt_at: w.next_attempt_at,
                basis: self.decide(w.ike),
                stale: w.stale.reported,
                flapping: w.quiet_since.is_some(),
            }
        })
    }

    // ---- internals ---------------------------------------------------------------------------

    fn mark_up(&mut self, i: usize, now: Millis) {
        let w = &mut self.children[i];
        w.busy = false;
        match w.phase {
            Phase::Up => {}
            Phase::Unknown => {
                w.phase = Phase::Up;
                w.since = now;
                w.up_observed = false;
            }
            Phase::Down | Phase::Queued { .. } | Phase::Initiating { .. } => {
                let after_ms = now.saturating_sub(w.since);
                let attempts = w.attempts;
                if attempts > 0 {
                    w.reinitiations = w.reinitiations.saturating_add(1);
                }
                w.phase = Phase::Up;
                w.since = now;
                w.up_observed = true;
                w.attempts = 0;
                w.next_attempt_at = None;
                w.failure_reported = false;
                w.summaries = 0;
                w.stale.tracked = None;
                if w.quiet_since.is_none() {
                    self.report(Subject::Child(i), ReportKind::Up { after_ms, attempts });
                }
            }
        }
    }

    /// An SA of the child went away; `gone` picks which remembered SAs it was.
    fn sa_gone(&mut self, i: usize, now: Millis, gone: impl Fn(&SaId) -> bool, cause: Cause) {
        let w = &mut self.children[i];
        if !w.sas.is_empty() {
            let before = w.sas.len();
            w.sas.retain(|s| !gone(s));
            if w.sas.len() == before || !w.sas.is_empty() {
                return; // an older SA (rekey, reauth) or one of several: still up
            }
        }
        if matches!(w.phase, Phase::Up | Phase::Unknown) {
            self.go_down(i, now, cause, true);
        }
    }

    fn go_down(&mut self, i: usize, now: Millis, cause: Cause, report: bool) {
        let basis = self.decide(self.children[i].ike);
        let w = &mut self.children[i];
        match w.phase {
            Phase::Up if w.up_observed && now.saturating_sub(w.since) < KEEPER_STABLE_UP_MS => {
                w.flaps = w.flaps.saturating_add(1);
                w.level = w.level.saturating_add(1);
            }
            _ => {
                w.flaps = 0;
                w.level = 0;
            }
        }
        w.phase = Phase::Down;
        w.since = now;
        w.attempts = 0;
        w.summaries = 0;
        w.failure_reported = false;
        w.sas.clear();
        w.stale.tracked = None;
        w.basis = basis;
        let mut quiet_entered = false;
        if w.quiet_since.is_some() {
            w.quiet_drops = w.quiet_drops.saturating_add(1);
        } else if w.flaps >= KEEPER_FLAPS_BEFORE_QUIET {
            w.quiet_since = Some(now);
            w.quiet_drops = w.flaps;
            w.quiet_summaries = 0;
            quiet_entered = true;
        }
        let quiet = w.quiet_since.is_some();
        let flaps = w.flaps;
        let level = w.level;
        let plan = if basis.initiates() {
            let d = self.delay_for(level);
            let cap = self.settings.backoff_cap_ms;
            let w = &mut self.children[i];
            w.next_attempt_at = Some(now.saturating_add(d));
            w.latest_at = now.saturating_add(cap.max(d));
            Plan::Retry { in_ms: d, basis }
        } else {
            self.children[i].next_attempt_at = None;
            Plan::LeaveToPeer { basis }
        };
        if quiet_entered {
            self.report(Subject::Child(i), ReportKind::Flapping { drops: flaps });
        } else if report && !quiet {
            self.report(Subject::Child(i), ReportKind::Down { cause, plan });
        }
    }

    fn fail(&mut self, i: usize, now: Millis, cause: Cause) {
        let Phase::Initiating { started } = self.children[i].phase else {
            return; // a late answer to an attempt already given up on
        };
        let level = self.children[i].level.saturating_add(1);
        let d = self.backoff_ms(level);
        let (min, cap) = (self.settings.backoff_min_ms, self.settings.backoff_cap_ms);
        let w = &mut self.children[i];
        w.level = level;
        w.phase = Phase::Down;
        w.last_failure = Some(cause);
        let next = started.saturating_add(d).max(now.saturating_add(min));
        w.next_attempt_at = Some(next);
        w.latest_at = started.saturating_add(cap).max(next);
        if !w.failure_reported && w.quiet_since.is_none() {
            w.failure_reported = true;
            let kind = ReportKind::AttemptFailed {
                cause,
                retry_in_ms: next - now,
                cap_ms: cap,
            };
            self.report(Subject::Child(i), kind);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Operator lines
// ---------------------------------------------------------------------------------------------
