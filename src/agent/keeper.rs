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

use super::{diagnose, Millis};
use crate::config::Config;
use crate::limits::{
    HOST_MAX_BYTES, KEEPER_BACKOFF_CAP_MS, KEEPER_BACKOFF_MIN_MS, KEEPER_DUPLICATE_CONFIRM_MS,
    KEEPER_FLAPS_BEFORE_QUIET, KEEPER_GRACE_MS, KEEPER_INITIATE_MARGIN_MS,
    KEEPER_INITIATE_TIMEOUT_MS, KEEPER_JITTER_PERCENT, KEEPER_PACED_GAP_MS,
    KEEPER_QUIET_EXIT_UP_MS, KEEPER_RECONCILE_WAIT_MS, KEEPER_REPORT_QUEUE_MAX,
    KEEPER_SAS_PER_CHILD_MAX, KEEPER_STABLE_UP_MS, KEEPER_STALE_AFTER_MS, KEEPER_SUMMARY_AFTER_MS,
    KEEPER_SUMMARY_EVERY_MS, WATCHED_CHILDREN_MAX,
};
use crate::vici::sa::{lossy_truncated, ChildState, IkeSa, IkeState, Name};

/// Failure label the keeper uses when charon never answered an `initiate` in time.
pub const CAUSE_NO_RESULT: &str = "no-result";
/// Failure label when charon answers that the child's configuration does not exist.
pub const CAUSE_NOT_CONFIGURED: &str = "not-configured";

// ---------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------

pub use crate::config::{Role, StaleAction};

/// The keeper's knobs; [`Default`] gives the defaults from `limits.rs` with `Role::Initiator`,
/// [`KeeperSettings::from_config`] what the operator configured.
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
    /// The keeper's part of the validated configuration.
    pub fn from_config(config: &Config) -> KeeperSettings {
        KeeperSettings {
            role: config.role,
            grace_ms: config.grace_ms.into(),
            backoff_min_ms: config.backoff_min_ms.into(),
            backoff_cap_ms: config.backoff_cap_ms.into(),
            stale_after_ms: Millis::from(config.stale_after_s).saturating_mul(1000),
            stale_action: config.stale_action,
            initiate_timeout_ms: KEEPER_INITIATE_TIMEOUT_MS,
        }
        .sanitized()
    }

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

/// The watch list is full, or a name does not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchError {
    /// `WATCHED_CHILDREN_MAX` children are already watched.
    Full,
    /// A name longer than `NAME_MAX_BYTES`.
    NameTooLong,
}

impl fmt::Display for WatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WatchError::Full => write!(f, "at most {WATCHED_CHILDREN_MAX} children can be watched"),
            WatchError::NameTooLong => f.write_str("name too long"),
        }
    }
}

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
    /// Short failure label from the classifier (`no-reply`, `proposal-mismatch`, `ts-mismatch`,
    /// `auth-failed`, …), when known.
    pub cause: Option<&'static str>,
}

/// Why the keeper believes a child went down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownCause {
    /// Its IKE_SA was declared dead by DPD (state ESTABLISHED, tasks-active IKE_DPD).
    Dpd,
    /// The peer deleted the IKE_SA (tasks-passive IKE_DELETE).
    PeerDeletedIke,
    /// The IKE_SA was terminated on this side (tasks-active IKE_DELETE).
    LocalDeletedIke,
    /// The peer deleted this CHILD_SA (tasks-passive CHILD_DELETE).
    PeerDeletedChild,
    /// The CHILD_SA was terminated on this side (tasks-active CHILD_DELETE).
    LocalDeletedChild,
    /// Its IKE_SA went down for a reason the event does not show.
    IkeDown,
    /// The CHILD_SA went down for a reason the event does not show.
    ChildDown,
    /// Not established when first seen (agent start).
    NotEstablished,
    /// Gone from `list-sas` without an event (missed while reconnecting?).
    Vanished,
    /// Terminated by swandog because it was one-sided.
    Stale,
}

impl DownCause {
    /// Reads the cause from the IKE section of an updown event, with `diagnose`'s classifier.
    pub fn classify(ike: &IkeSa, child_event: bool) -> DownCause {
        let state = ike.state.as_str();
        let (active, passive) = (ike.tasks_active.names(), ike.tasks_passive.names());
        let cause = if child_event {
            diagnose::classify_child_down(state, active, passive)
        } else {
            diagnose::classify_ike_down(state, active, passive)
        };
        match cause {
            diagnose::DownCause::Dpd => DownCause::Dpd,
            diagnose::DownCause::PeerDeleted => DownCause::PeerDeletedIke,
            diagnose::DownCause::LocalTerminate => DownCause::LocalDeletedIke,
            diagnose::DownCause::PeerDeletedChild => DownCause::PeerDeletedChild,
            diagnose::DownCause::LocalDeletedChild => DownCause::LocalDeletedChild,
            diagnose::DownCause::Other if child_event => DownCause::ChildDown,
            diagnose::DownCause::Other => DownCause::IkeDown,
        }
    }
}

/// Why this side does or does not initiate a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// `--role initiator`.
    RoleInitiator,
    /// `--role responder`.
    RoleResponder,
    /// `auto`, and this side has the lower address.
    AutoLocalLower,
    /// `auto`, and the peer has the lower address.
    AutoPeerLower,
    /// `auto`, but the addresses are unknown or equal: initiate rather than risk nobody doing it.
    AutoUnknown,
}

impl Basis {
    /// Whether this side initiates.
    pub fn initiates(self) -> bool {
        !matches!(self, Basis::RoleResponder | Basis::AutoPeerLower)
    }
}

impl fmt::Display for Basis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Basis::RoleInitiator => "role initiator",
            Basis::RoleResponder => "role responder: the peer initiates",
            Basis::AutoLocalLower => "role auto: this side has the lower address",
            Basis::AutoPeerLower => "role auto: the peer has the lower address and initiates",
            Basis::AutoUnknown => "role auto, endpoints unknown: initiating",
        })
    }
}

/// What the keeper will do about a child that just went down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// First attempt in `in_ms`.
    Retry {
        /// Delay to the first attempt.
        in_ms: Millis,
        /// Why this side initiates.
        basis: Basis,
    },
    /// This side does not initiate.
    LeaveToPeer {
        /// Why not.
        basis: Basis,
    },
}

/// What the keeper did about a stale child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleResponse {
    /// Reported only (`--stale-action report`).
    ReportOnly,
    /// Terminating and re-initiating.
    Restarting,
    /// A restart already happened and the new SA is one-sided too: left alone until traffic
    /// comes in again.
    RestartDidNotHelp,
    /// `--stale-action restart`, but this side does not initiate.
    LeftToPeer,
}

/// One state change worth one syslog line; see [`KeeperReport`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    /// The child went down.
    Down {
        /// Why.
        cause: DownCause,
        /// What happens next.
        plan: Plan,
    },
    /// The child is up again.
    Up {
        /// Time it was down.
        after_ms: Millis,
        /// Initiates swandog made meanwhile (0: charon or the peer brought it back).
        attempts: u32,
    },
    /// The first attempt of a down episode failed (later failures go into summaries).
    AttemptFailed {
        /// Failure label.
        cause: &'static str,
        /// Delay to the next attempt.
        retry_in_ms: Millis,
        /// The backoff cap.
        cap_ms: Millis,
    },
    /// Summary of a long outage (after 1 min, 10 min, 1 h, then every 6 h).
    StillDown {
        /// Time down so far.
        for_ms: Millis,
        /// Initiates made so far in this outage.
        attempts: u32,
        /// Label of the last failure.
        last_cause: Option<&'static str>,
        /// Set when this side does not initiate.
        left_to_peer: Option<Basis>,
    },
    /// The child dropped `KEEPER_FLAPS_BEFORE_QUIET` times in a row soon after coming up; its
    /// per-change lines give way to summaries.
    Flapping {
        /// Short-lived ups in a row.
        drops: u32,
    },
    /// Summary while flapping.
    StillUnstable {
        /// Time since flapping began.
        for_ms: Millis,
        /// Drops since then.
        drops: u32,
        /// Current state: `Some(ms)` down that long, `None` up.
        down_for_ms: Option<Millis>,
        /// Initiates in the current outage.
        attempts: u32,
        /// Label of the last failure.
        last_cause: Option<&'static str>,
    },
    /// Up for `KEEPER_QUIET_EXIT_UP_MS` after flapping: per-change lines resume.
    Stable {
        /// Time it was unstable.
        after_ms: Millis,
        /// Drops meanwhile.
        drops: u32,
    },
    /// Packets out grew while packets in stayed frozen.
    Stale {
        /// Growth of packets-out while packets-in were frozen.
        out_grew_by: u64,
        /// How long packets-in have been frozen.
        in_frozen_ms: Millis,
        /// What the keeper does about it.
        response: StaleResponse,
    },
    /// More than one established IKE_SA for one connection (subject: the connection).
    DuplicateIke {
        /// Established IKE_SAs of that name.
        count: u8,
    },
    /// Back to at most one IKE_SA (subject: the connection).
    DuplicateIkeGone,
    /// Report lines lost because the queue was full (subject: `keeper`).
    ReportsDropped {
        /// Lines lost.
        count: u32,
    },
}

/// A typed report; its `Display` is the operator's syslog line, starting with the subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeeperReport {
    /// The child (or connection, or `keeper`) the line is about.
    pub subject: Name,
    /// Its connection.
    pub ike: Name,
    /// What happened.
    pub kind: ReportKind,
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
    pub last_failure: Option<&'static str>,
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
    last_failure: Option<&'static str>,
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

impl Watched {
    fn new(name: Name, ike: usize, reason: WatchReason) -> Watched {
        Watched {
            name,
            ike,
            reason,
            phase: Phase::Unknown,
            since: 0,
            up_observed: false,
            last_event_at: None,
            sas: Vec::new(),
            level: 0,
            attempts: 0,
            initiates: 0,
            reinitiations: 0,
            last_failure: None,
            failure_reported: false,
            next_attempt_at: None,
            latest_at: 0,
            busy: false,
            summaries: 0,
            basis: Basis::RoleInitiator,
            flaps: 0,
            quiet_since: None,
            quiet_drops: 0,
            quiet_summaries: 0,
            stale: StaleWatch {
                tracked: None,
                frozen_since: 0,
                reported: false,
                restart_armed: true,
            },
            terminate: None,
            terminating: None,
            seen: Seen::default(),
            configured: true,
            listed: false,
            planned: true,
        }
    }
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
    children: Vec<Watched, WATCHED_CHILDREN_MAX>,
    ikes: Vec<IkeEntry, WATCHED_CHILDREN_MAX>,
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

/// Whether an address says nothing about one endpoint (`%any`, a subnet, a range, empty).
fn is_vague(addr: &str) -> bool {
    let addr = addr.trim();
    if addr.is_empty() || addr.starts_with('%') || addr.contains('/') || addr.contains(',') {
        return true;
    }
    if let Ok(ip) = addr.parse::<IpAddr>() {
        return ip.is_unspecified();
    }
    match addr.split_once('-') {
        Some((a, b)) => a.trim().parse::<IpAddr>().is_ok() && b.trim().parse::<IpAddr>().is_ok(),
        None => false,
    }
}

/// Orders two endpoints: as parsed IP addresses when both parse, else as text.
fn address_order(local: &str, remote: &str) -> Ordering {
    match (
        local.trim().parse::<IpAddr>(),
        remote.trim().parse::<IpAddr>(),
    ) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        _ => local.trim().as_bytes().cmp(remote.trim().as_bytes()),
    }
}

/// The side that initiates under `Role::Auto`, from this side's view of the two endpoints.
pub fn auto_basis(local: &str, remote: &str) -> Basis {
    if is_vague(local) || is_vague(remote) {
        return Basis::AutoUnknown;
    }
    match address_order(local, remote) {
        Ordering::Less => Basis::AutoLocalLower,
        Ordering::Greater => Basis::AutoPeerLower,
        Ordering::Equal => Basis::AutoUnknown,
    }
}

fn summaries_due(elapsed: Millis) -> u32 {
    let passed = KEEPER_SUMMARY_AFTER_MS
        .iter()
        .filter(|&&t| t <= elapsed)
        .count() as u32;
    let last = KEEPER_SUMMARY_AFTER_MS[KEEPER_SUMMARY_AFTER_MS.len() - 1];
    if elapsed < last {
        return passed;
    }
    let every = ((elapsed - last) / KEEPER_SUMMARY_EVERY_MS.max(1)).min(u32::MAX as u64) as u32;
    passed.saturating_add(every)
}

fn summary_offset(k: u32) -> Millis {
    match KEEPER_SUMMARY_AFTER_MS.get(k as usize) {
        Some(&t) => t,
        None => {
            let n = KEEPER_SUMMARY_AFTER_MS.len() as u32;
            let last = KEEPER_SUMMARY_AFTER_MS[KEEPER_SUMMARY_AFTER_MS.len() - 1];
            last.saturating_add(KEEPER_SUMMARY_EVERY_MS.saturating_mul((k - n + 1) as u64))
        }
    }
}

impl Keeper {
    /// A keeper with nothing watched; `seed` drives the jitter (pass something that differs per
    /// box and per start, e.g. time and pid mixed).
    pub fn new(settings: KeeperSettings, seed: u64) -> Keeper {
        Keeper {
            settings: settings.sanitized(),
            rng: SplitMix(seed),
            slow: false,
            children: Vec::new(),
            ikes: Vec::new(),
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

    /// Watches `child` of connection `ike`; watching it again only updates the reason. Returns
    /// whether it is new to the watch list (or back on it after [`Keeper::end_conns`] set it
    /// aside). When the list is full, a set-aside child's place is taken; only when none is left
    /// is the list [`WatchError::Full`].
    pub fn watch(
        &mut self,
        child: &str,
        ike: &str,
        reason: WatchReason,
    ) -> Result<bool, WatchError> {
        let child_name = Name::try_from(child).map_err(|_| WatchError::NameTooLong)?;
        let ike_name = Name::try_from(ike).map_err(|_| WatchError::NameTooLong)?;
        let listing = self.listing;
        if let Some(i) = self.find_any(child, ike) {
            let w = &mut self.children[i];
            w.reason = reason;
            w.planned = true;
            w.listed |= listing;
            if w.configured {
                return Ok(false);
            }
            w.configured = true;
            return Ok(true);
        }
        // A place: a free one, else one of a child set aside (its queued lines go with it).
        let slot = if self.children.is_full() {
            let j = self
                .children
                .iter()
                .position(|w| !w.configured)
                .ok_or(WatchError::Full)?;
            Some(j)
        } else {
            None
        };
        let ike = match self.ikes.iter().position(|e| e.name == ike_name) {
            Some(e) => e,
            None => {
                let entry = IkeEntry {
                    name: ike_name,
                    local: String::new(),
                    remote: String::new(),
                    from_sa: false,
                    established_seen: 0,
                    dup_reported: 0,
                    dup_first_seen: None,
                };
                if !self.ikes.is_full() {
                    let _ = self.ikes.push(entry);
                    self.ikes.len() - 1
                } else {
                    // At most one entry per watched child, so with a place taken from a child
                    // set aside, one entry no other child uses is there to reuse.
                    let children = &self.children;
                    let unused = (0..self.ikes.len()).find(|&e| {
                        !children
                            .iter()
                            .enumerate()
                            .any(|(k, w)| Some(k) != slot && w.ike == e)
                    });
                    let e = unused.ok_or(WatchError::Full)?;
                    self.purge_reports(Subject::Ike(e));
                    self.ikes[e] = entry;
                    e
                }
            }
        };
        let mut watched = Watched::new(child_name, ike, reason);
        watched.listed = listing;
        match slot {
            Some(j) => {
                self.purge_reports(Subject::Child(j));
                self.children[j] = watched;
                Ok(true)
            }
            None => self
                .children
                .push(watched)
                .map(|()| true)
                .map_err(|_| WatchError::Full),
        }
    }

    /// A `list-conns` starts: every watched child must show up in it again to stay watched.
    pub fn begin_conns(&mut self) {
        self.listing = true;
        for w in self.children.iter_mut() {
            w.listed = false;
            w.planned = false;
        }
    }

    /// A child that the running `list-conns` shows configured (watched or not).
    pub fn conn_child(&mut self, child: &str, ike: &str) {
        if let Some(i) = self.find_any(child, ike) {
            self.children[i].listed = true;
        }
    }

    /// The running `list-conns` is complete: a watched child charon no longer has configured
    /// (or, when the plan names children, that the plan no longer names) is set aside: no
    /// re-initiation, shown as such in `status`. Each one set aside goes to `on_set_aside` with
    /// whether charon still has it configured (the caller words one line for all of them). With
    /// `keep_seen`, children found route-based in `list-sas` stay watched while charon has them
    /// configured.
    pub fn end_conns(
        &mut self,
        now: Millis,
        keep_seen: bool,
        on_set_aside: &mut dyn FnMut(&Name, bool),
    ) {
        if !core::mem::replace(&mut self.listing, false) {
            return;
        }
        for i in 0..self.children.len() {
            let w = &self.children[i];
            let seen_kept = keep_seen && w.reason == WatchReason::RouteBasedSeen;
            if !w.configured || (w.listed && (w.planned || seen_kept)) {
                continue;
            }
            let listed = w.listed;
            self.set_aside(i, now);
            on_set_aside(&self.children[i].name, listed);
        }
    }

    /// A `list-conns` that failed midway: nothing is set aside on its partial view.
    pub fn abort_conns(&mut self) {
        self.listing = false;
    }

    fn set_aside(&mut self, i: usize, now: Millis) {
        let w = &mut self.children[i];
        let fresh = Watched::new(w.name.clone(), w.ike, w.reason);
        *w = Watched {
            configured: false,
            since: now,
            initiates: w.initiates,
            reinitiations: w.reinitiations,
            ..fresh
        };
    }

    fn purge_reports(&mut self, subject: Subject) {
        for _ in 0..self.queue.len() {
            if let Some(q) = self.queue.pop_front() {
                let same = match (q.subject, subject) {
                    (Subject::Child(a), Subject::Child(b)) | (Subject::Ike(a), Subject::Ike(b)) => {
                        a == b
                    }
                    _ => false,
                };
                if !same {
                    let _ = self.queue.push_back(q);
                }
            }
        }
    }

    /// Configured endpoints of a connection (from `list-conns`), used by `Role::Auto` until an
    /// IKE_SA shows the real ones. Returns `false` when no watched child uses that connection.
    pub fn set_endpoints(&mut self, ike: &str, local: &str, remote: &str) -> bool {
        let Some(e) = self.ikes.iter_mut().find(|e| e.name == ike) else {
            return false;
        };
        if !e.from_sa {
            e.local = lossy_truncated(local.as_bytes());
            e.remote = lossy_truncated(remote.as_bytes());
        }
        true
    }

    /// New knobs (SIGHUP): watched children, their state and backoff are kept.
    pub fn set_settings(&mut self, settings: KeeperSettings) {
        self.settings = settings.sanitized();
    }

    /// Whether a child of that name is watched (under any connection; a child set aside by
    /// [`Keeper::end_conns`] is not).
    pub fn is_watched(&self, child: &str) -> bool {
        self.children
            .iter()
            .any(|w| w.configured && w.name == child)
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

    /// Report lines lost to a full queue, ever.
    pub fn reports_dropped(&self) -> u32 {
        self.reports_dropped
    }

    /// Whether, and why, this side initiates connection `ike` (for `status` and `check`).
    pub fn basis(&self, ike: &str) -> Option<Basis> {
        let i = self.ikes.iter().position(|e| e.name == ike)?;
        Some(self.decide(i))
    }

    // ---- inputs ------------------------------------------------------------------------------

    /// A `child-updown` event; `ike.children` holds the child.
    pub fn on_child_updown(&mut self, now: Millis, up: bool, ike: &IkeSa) {
        self.learn_endpoints(ike);
        let cause = DownCause::classify(ike, true);
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
    pub fn on_ike_updown(&mut self, now: Millis, up: bool, ike: &IkeSa) {
        self.learn_endpoints(ike);
        let Some(e) = self.ike_index(&ike.name) else {
            return;
        };
        let cause = DownCause::classify(ike, false);
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

    /// Starts a complete `list-sas` snapshot taken at `now` (call before the command is sent).
    pub fn begin_snapshot(&mut self, now: Millis) {
        self.snapshot_at = Some(now);
        for w in self.children.iter_mut() {
            w.seen = Seen::default();
        }
        for e in self.ikes.iter_mut() {
            e.established_seen = 0;
        }
    }

    /// One IKE_SA of the snapshot (one `list-sa` event). Only connections with a watched child
    /// are looked at (duplicates included).
    pub fn snapshot_ike(&mut self, ike: &IkeSa) {
        if self.snapshot_at.is_none() {
            return;
        }
        self.learn_endpoints(ike);
        let Some(e) = self.ike_index(&ike.name) else {
            return;
        };
        if matches!(ike.state, IkeState::Established | IkeState::Rekeying) {
            let entry = &mut self.ikes[e];
            entry.established_seen = entry.established_seen.saturating_add(1);
        }
        for w in self
            .children
            .iter_mut()
            .filter(|w| w.ike == e && w.configured)
        {
            let seen = &mut w.seen;
            if ike.state == IkeState::Connecting {
                seen.busy = true;
            }
            if ike.children_dropped > 0 {
                seen.uncertain = true;
            }
            for c in ike.children.iter().filter(|c| c.name == w.name) {
                if w.terminating == Some(c.uniqueid) {
                    seen.terminating_listed = true;
                } else if c.state.is_up() {
                    seen.up = true;
                    let id = SaId {
                        ike: ike.uniqueid,
                        child: c.uniqueid,
                    };
                    let _ = seen.ids.push(id);
                    let counters = Counters {
                        child: c.uniqueid,
                        packets_in: c.packets_in,
                        packets_out: c.packets_out,
                    };
                    if seen.newest.is_none_or(|n| n.child < c.uniqueid) {
                        seen.newest = Some(counters);
                    }
                } else if matches!(c.state, ChildState::Created | ChildState::Installing) {
                    seen.busy = true;
                }
            }
        }
    }

    /// Ends the snapshot: reconciles every watched child, checks counters for stale SAs and
    /// counts duplicate IKE_SAs.
    pub fn end_snapshot(&mut self) {
        let Some(t) = self.snapshot_at.take() else {
            return;
        };
        self.last_snapshot_at = Some(t);
        if self.reconcile_requested_at.is_some_and(|r| r <= t) {
            self.reconcile_requested_at = None;
        }
        for i in 0..self.children.len() {
            let w = &mut self.children[i];
            let seen = core::mem::take(&mut w.seen);
            if !w.configured {
                continue;
            }
            if !seen.terminating_listed && !seen.uncertain {
                w.terminating = None;
            }
            if w.last_event_at.is_some_and(|e| e >= t) {
                continue; // an event after the snapshot began knows better
            }
            w.busy = seen.busy && !seen.up;
            if seen.up {
                w.sas = seen.ids;
                self.mark_up(i, t);
                if let Some(c) = seen.newest {
                    self.check_stale(i, t, c);
                }
            } else if !seen.uncertain {
                w.sas.clear();
                let cause = match w.phase {
                    Phase::Unknown => DownCause::NotEstablished,
                    _ => DownCause::Vanished,
                };
                if matches!(w.phase, Phase::Unknown | Phase::Up) {
                    self.go_down(i, t, cause, true);
                }
            }
        }
        for e in 0..self.ikes.len() {
            let entry = &mut self.ikes[e];
            let count = entry.established_seen;
            if count >= 2 {
                let first = *entry.dup_first_seen.get_or_insert(t);
                if count != entry.dup_reported
                    && t.saturating_sub(first) >= KEEPER_DUPLICATE_CONFIRM_MS
                {
                    entry.dup_reported = count;
                    self.report(Subject::Ike(e), ReportKind::DuplicateIke { count });
                }
            } else {
                entry.dup_first_seen = None;
                if entry.dup_reported >= 2 {
                    entry.dup_reported = count;
                    self.report(Subject::Ike(e), ReportKind::DuplicateIkeGone);
                }
            }
        }
    }

    /// Drops a snapshot that will not complete (the `list-sas` failed midway): nothing is
    /// reconciled from its partial view.
    pub fn abort_snapshot(&mut self) {
        self.snapshot_at = None;
    }

    /// A whole `list-sas` snapshot at once ([`Keeper::begin_snapshot`], [`Keeper::snapshot_ike`]
    /// for each, [`Keeper::end_snapshot`]).
    pub fn on_snapshot<'a>(&mut self, now: Millis, ikes: impl IntoIterator<Item = &'a IkeSa>) {
        self.begin_snapshot(now);
        for ike in ikes {
            self.snapshot_ike(ike);
        }
        self.end_snapshot();
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
            self.fail(i, now, outcome.cause.unwrap_or("unknown"));
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
                    self.fail(i, now, CAUSE_NO_RESULT);
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

    /// A watched child (not one set aside).
    fn find(&self, child: &str, ike: &str) -> Option<usize> {
        self.find_any(child, ike)
            .filter(|&i| self.children[i].configured)
    }

    fn find_any(&self, child: &str, ike: &str) -> Option<usize> {
        self.children
            .iter()
            .position(|w| w.name == child && self.ikes[w.ike].name == ike)
    }

    fn ike_index(&self, name: &str) -> Option<usize> {
        self.ikes.iter().position(|e| e.name == name)
    }

    fn learn_endpoints(&mut self, ike: &IkeSa) {
        if is_vague(&ike.local_host) || is_vague(&ike.remote_host) {
            return;
        }
        if let Some(e) = self.ikes.iter_mut().find(|e| e.name == ike.name) {
            e.local = ike.local_host.clone();
            e.remote = ike.remote_host.clone();
            e.from_sa = true;
        }
    }

    fn decide(&self, ike: usize) -> Basis {
        match self.settings.role {
            Role::Initiator => Basis::RoleInitiator,
            Role::Responder => Basis::RoleResponder,
            Role::Auto => match self.ikes.get(ike) {
                Some(e) => auto_basis(&e.local, &e.remote),
                None => Basis::AutoUnknown,
            },
        }
    }

    fn report(&mut self, subject: Subject, kind: ReportKind) {
        if self.queue.push_back(Queued { subject, kind }).is_err() {
            self.reports_dropped = self.reports_dropped.saturating_add(1);
        }
    }

    /// Hands queued reports out until `emit` refuses one (its line queue is full): the rest
    /// stay here for the next poll, and [`Keeper::next_wake`] says "at once".
    fn drain(&mut self, emit: &mut impl FnMut(KeeperAction) -> bool) {
        while let Some(q) = self.queue.front().copied() {
            let named = match q.subject {
                Subject::Child(i) => self
                    .children
                    .get(i)
                    .map(|w| (w.name.clone(), self.ikes[w.ike].name.clone())),
                Subject::Ike(e) => self
                    .ikes
                    .get(e)
                    .map(|entry| (entry.name.clone(), entry.name.clone())),
            };
            if let Some((subject, ike)) = named {
                let report = KeeperReport {
                    subject,
                    ike,
                    kind: q.kind,
                };
                if !emit(KeeperAction::Report(report)) {
                    return;
                }
            }
            self.queue.pop_front();
        }
        if self.reports_dropped != self.reports_dropped_told {
            let count = self.reports_dropped.wrapping_sub(self.reports_dropped_told);
            let report = KeeperReport {
                subject: lossy_truncated(b"keeper"),
                ike: Name::new(),
                kind: ReportKind::ReportsDropped { count },
            };
            if emit(KeeperAction::Report(report)) {
                self.reports_dropped_told = self.reports_dropped;
            }
        }
    }

    /// Backoff after `level` failures (≥ 1): `min · 2^(level-1)`, capped, minus 0..=20 % jitter.
    fn backoff_ms(&mut self, level: u32) -> Millis {
        let s = &self.settings;
        let exp = level.saturating_sub(1).min(62);
        let nominal = s
            .backoff_min_ms
            .saturating_mul(1u64 << exp)
            .min(s.backoff_cap_ms);
        let spread = (nominal / 100).saturating_mul(KEEPER_JITTER_PERCENT)
            + (nominal % 100) * KEEPER_JITTER_PERCENT / 100;
        nominal - self.rng.up_to(spread)
    }

    fn delay_for(&mut self, level: u32) -> Millis {
        if level == 0 {
            self.settings.grace_ms
        } else {
            self.backoff_ms(level)
        }
    }

    /// Earliest time the child may be initiated, pacing included; `None` if nothing is planned.
    fn ready_at(&self, i: usize) -> Option<Millis> {
        let w = &self.children[i];
        if w.phase != Phase::Down {
            return None;
        }
        let due = w.next_attempt_at?;
        if !self.slow {
            return Some(due);
        }
        let force = w.latest_at.max(due);
        let other_in_flight = self.children.iter().enumerate().any(|(j, o)| {
            j != i && matches!(o.phase, Phase::Queued { .. } | Phase::Initiating { .. })
        });
        if other_in_flight {
            return Some(force);
        }
        let gap = self
            .last_initiate_at
            .map_or(0, |t| t.saturating_add(KEEPER_PACED_GAP_MS));
        Some(due.max(gap.min(force)))
    }

    /// Whether a due child may go now: only on a `list-sas` taken since it fell due (or after
    /// waiting `KEEPER_RECONCILE_WAIT_MS` for one), and not while charon is connecting it.
    fn gate(&self, i: usize, now: Millis) -> Gate {
        let w = &self.children[i];
        let Some(due) = w.next_attempt_at else {
            return Gate::Wait;
        };
        if self.last_snapshot_at.is_some_and(|s| s >= due) {
            return if w.busy { Gate::Postpone } else { Gate::Fire };
        }
        match self.reconcile_requested_at {
            Some(r) if r >= due => {
                if now >= r.saturating_add(KEEPER_RECONCILE_WAIT_MS) {
                    Gate::Fire
                } else {
                    Gate::Wait
                }
            }
            _ => Gate::NeedReconcile,
        }
    }

    /// charon is already connecting the child: look again one (growing) backoff step later, so a
    /// long charon retry does not become a `list-sas` every second.
    fn postpone(&mut self, i: usize, now: Millis) {
        let level = self.children[i].level.saturating_add(1);
        let d = self.backoff_ms(level);
        let cap = self.settings.backoff_cap_ms;
        let w = &mut self.children[i];
        w.level = level;
        w.next_attempt_at = Some(now.saturating_add(d));
        w.latest_at = now.saturating_add(cap);
    }

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
    fn sa_gone(&mut self, i: usize, now: Millis, gone: impl Fn(&SaId) -> bool, cause: DownCause) {
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

    fn go_down(&mut self, i: usize, now: Millis, cause: DownCause, report: bool) {
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

    fn fail(&mut self, i: usize, now: Millis, cause: &'static str) {
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

    fn summarize(&mut self, i: usize, now: Millis) {
        let w = &mut self.children[i];
        if let Some(q) = w.quiet_since {
            if w.phase == Phase::Up && now.saturating_sub(w.since) >= KEEPER_QUIET_EXIT_UP_MS {
                let kind = ReportKind::Stable {
                    after_ms: now.saturating_sub(q),
                    drops: w.quiet_drops,
                };
                w.quiet_since = None;
                w.flaps = 0;
                w.level = 0;
                self.report(Subject::Child(i), kind);
                return;
            }
            let due = summaries_due(now.saturating_sub(q));
            if due > w.quiet_summaries {
                w.quiet_summaries = due;
                let down = !matches!(w.phase, Phase::Up | Phase::Unknown);
                let kind = ReportKind::StillUnstable {
                    for_ms: now.saturating_sub(q),
                    drops: w.quiet_drops,
                    down_for_ms: down.then(|| now.saturating_sub(w.since)),
                    attempts: w.attempts,
                    last_cause: w.last_failure,
                };
                self.report(Subject::Child(i), kind);
            }
        } else if matches!(
            w.phase,
            Phase::Down | Phase::Queued { .. } | Phase::Initiating { .. }
        ) {
            let due = summaries_due(now.saturating_sub(w.since));
            if due > w.summaries {
                w.summaries = due;
                let kind = ReportKind::StillDown {
                    for_ms: now.saturating_sub(w.since),
                    attempts: w.attempts,
                    last_cause: w.last_failure,
                    left_to_peer: (!w.basis.initiates()).then_some(w.basis),
                };
                self.report(Subject::Child(i), kind);
            }
        }
    }

    fn check_stale(&mut self, i: usize, t: Millis, c: Counters) {
        let stale_after = self.settings.stale_after_ms;
        let action = self.settings.stale_action;
        let basis = self.decide(self.children[i].ike);
        let s = &mut self.children[i].stale;
        let tracked = match s.tracked {
            Some(tr) if tr.child == c.child => tr,
            _ => {
                // A new SA: start watching it from here.
                s.tracked = Some(c);
                s.frozen_since = t;
                return;
            }
        };
        if c.packets_in != tracked.packets_in {
            s.tracked = Some(c);
            s.frozen_since = t;
            s.reported = false;
            s.restart_armed = true;
            return;
        }
        let frozen = t.saturating_sub(s.frozen_since);
        if s.reported || c.packets_out <= tracked.packets_out || frozen < stale_after {
            return;
        }
        s.reported = true;
        let response = match action {
            StaleAction::Report => StaleResponse::ReportOnly,
            StaleAction::Restart if !basis.initiates() => StaleResponse::LeftToPeer,
            StaleAction::Restart if !s.restart_armed => StaleResponse::RestartDidNotHelp,
            StaleAction::Restart => StaleResponse::Restarting,
        };
        let kind = ReportKind::Stale {
            out_grew_by: c.packets_out - tracked.packets_out,
            in_frozen_ms: frozen,
            response,
        };
        self.report(Subject::Child(i), kind);
        if response == StaleResponse::Restarting {
            let w = &mut self.children[i];
            w.stale.restart_armed = false;
            w.stale.reported = false; // one more line if the new SA is one-sided too
            w.terminate = Some(c.child);
            w.terminating = Some(c.child);
            self.go_down(i, t, DownCause::Stale, false);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Operator lines
// ---------------------------------------------------------------------------------------------

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

/// Operator wording for the failure labels of `diagnose::FailureCause::as_str` (and the
/// keeper's own `no-result`); other labels pass through.
pub fn cause_text(label: &'static str) -> &'static str {
    match label {
        "no-reply" => "no reply (peer down or UDP 500/4500 blocked)",
        "proposal-mismatch" => "no proposal chosen (crypto proposals differ)",
        "ts-mismatch" => "traffic selectors unacceptable (subnets differ)",
        "auth-failed" => "authentication failed (PSK, certificate or identity)",
        "peer-deleted" => "the peer closed it",
        "dpd" => "dead peer detection gave up",
        "unknown" => "no known cause in charon's log",
        "timeout" => "initiate timed out",
        CAUSE_NO_RESULT => "no answer from charon to initiate",
        CAUSE_NOT_CONFIGURED => "charon has no such configuration (removed by swanctl --load-all?)",
        other => other,
    }
}

fn plural(n: u32, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 {
        one
    } else {
        many
    }
}

impl fmt::Display for KeeperReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.subject)?;
        let ike = &self.ike;
        match self.kind {
            ReportKind::Down { cause, plan } => {
                f.write_str("down (")?;
                match cause {
                    DownCause::Dpd => write!(f, "IKE {ike} deleted by DPD")?,
                    DownCause::PeerDeletedIke => write!(f, "peer deleted IKE {ike}")?,
                    DownCause::LocalDeletedIke => write!(f, "IKE {ike} terminated locally")?,
                    DownCause::PeerDeletedChild => f.write_str("peer deleted the CHILD_SA")?,
                    DownCause::LocalDeletedChild => f.write_str("CHILD_SA terminated locally")?,
                    DownCause::IkeDown => write!(f, "IKE {ike} went down")?,
                    DownCause::ChildDown => f.write_str("CHILD_SA went down")?,
                    DownCause::NotEstablished => f.write_str("not established")?,
                    DownCause::Vanished => f.write_str("gone from list-sas")?,
                    DownCause::Stale => f.write_str("one-sided, terminated by swandog")?,
                }
                match plan {
                    Plan::Retry { in_ms, basis } => {
                        write!(f, "); re-initiating in {}", Span(in_ms))?;
                        if basis == Basis::AutoUnknown {
                            write!(f, " ({basis})")?;
                        }
                        Ok(())
                    }
                    Plan::LeaveToPeer { basis } => write!(f, "); not re-initiating ({basis})"),
                }
            }
            ReportKind::Up {
                after_ms,
                attempts: 0,
            } => write!(
                f,
                "back up after {} (re-established by charon or the peer)",
                Span(after_ms)
            ),
            ReportKind::Up { after_ms, attempts } => write!(
                f,
                "back up after {}, {attempts} {}",
                Span(after_ms),
                plural(attempts, "attempt", "attempts")
            ),
            ReportKind::AttemptFailed {
                cause,
                retry_in_ms,
                cap_ms,
            } => write!(
                f,
                "re-initiation failed: {}; retrying in {}, backing off up to {}",
                cause_text(cause),
                Span(retry_in_ms),
                Span(cap_ms)
            ),
            ReportKind::StillDown {
                for_ms,
                attempts,
                last_cause,
                left_to_peer,
            } => {
                write!(f, "still down after {}", Span(for_ms))?;
                if let Some(basis) = left_to_peer {
                    return write!(f, ", not re-initiating ({basis})");
                }
                write!(
                    f,
                    ", {attempts} {}",
                    plural(attempts, "attempt", "attempts")
                )?;
                if let Some(cause) = last_cause {
                    write!(f, ", last cause: {}", cause_text(cause))?;
                }
                Ok(())
            }
            ReportKind::Flapping { drops } => write!(
                f,
                "flapping: dropped {drops} times in a row within {} of coming up; \
                 re-initiating with backoff, summarizing from now on",
                Span(KEEPER_STABLE_UP_MS)
            ),
            ReportKind::StillUnstable {
                for_ms,
                drops,
                down_for_ms,
                attempts,
                last_cause,
            } => {
                write!(f, "unstable for {}: {drops} drops", Span(for_ms))?;
                match down_for_ms {
                    None => f.write_str("; up now"),
                    Some(d) => {
                        write!(f, "; down for {}, {attempts} ", Span(d))?;
                        f.write_str(plural(attempts, "attempt", "attempts"))?;
                        match last_cause {
                            Some(c) => write!(f, ", last cause: {}", cause_text(c)),
                            None => Ok(()),
                        }
                    }
                }
            }
            ReportKind::Stable { after_ms, drops } => write!(
                f,
                "stable again after {} of flapping ({drops} drops)",
                Span(after_ms)
            ),
            ReportKind::Stale {
                out_grew_by,
                in_frozen_ms,
                response,
            } => {
                write!(
                    f,
                    "one-sided SA (peer probably lost it): {out_grew_by} packets out, \
                     none in for {}; ",
                    Span(in_frozen_ms)
                )?;
                f.write_str(match response {
                    StaleResponse::ReportOnly => "reporting only (--stale-action restart fixes it)",
                    StaleResponse::Restarting => "terminating and re-initiating",
                    StaleResponse::RestartDidNotHelp => {
                        "a restart did not help; leaving it until traffic comes in"
                    }
                    StaleResponse::LeftToPeer => "not restarting: this side does not initiate",
                })
            }
            ReportKind::DuplicateIke { count } => write!(
                f,
                "{count} IKE_SAs established for one connection (both sides initiating?); \
                 set --role auto on both ends or responder on one"
            ),
            ReportKind::DuplicateIkeGone => f.write_str("duplicate IKE_SAs gone"),
            ReportKind::ReportsDropped { count } => {
                write!(f, "{count} report lines dropped (queue full)")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vici::sa::ChildSa;
    use std::collections::BTreeMap;
    use std::string::{String as Text, ToString};
    use std::vec::Vec as List;

    const S: Millis = 1000;
    const MIN: Millis = 60 * S;
    const H: Millis = 60 * MIN;

    fn name(s: &str) -> Name {
        Name::try_from(s).unwrap()
    }

    fn child_sa(n: &str, uid: u32, state: ChildState) -> ChildSa {
        ChildSa {
            name: name(n),
            uniqueid: uid,
            state,
            ..ChildSa::default()
        }
    }

    fn ike_sa(n: &str, uid: u32, state: IkeState, children: &[ChildSa]) -> IkeSa {
        let mut ike = IkeSa {
            name: name(n),
            uniqueid: uid,
            state,
            ..IkeSa::default()
        };
        ike.local_host = lossy_truncated(b"192.0.2.1");
        ike.remote_host = lossy_truncated(b"192.0.2.2");
        for c in children {
            ike.children.push(c.clone()).unwrap();
        }
        ike
    }

    fn with_task(mut ike: IkeSa, active: &[&str], passive: &[&str]) -> IkeSa {
        for t in active {
            ike.tasks_active.insert(t.as_bytes());
        }
        for t in passive {
            ike.tasks_passive.insert(t.as_bytes());
        }
        ike
    }

    fn drain(k: &mut Keeper, now: Millis) -> List<KeeperAction> {
        let mut out = List::new();
        k.poll(now, &mut |a| {
            out.push(a);
            true
        });
        while let Some(job) = k.next_job(now) {
            out.push(job);
        }
        out
    }

    fn lines(actions: &[KeeperAction]) -> List<Text> {
        actions
            .iter()
            .filter_map(|a| match a {
                KeeperAction::Report(r) => Some(r.to_string()),
                _ => None,
            })
            .collect()
    }

    fn initiates(actions: &[KeeperAction]) -> usize {
        actions
            .iter()
            .filter(|a| matches!(a, KeeperAction::Initiate { .. }))
            .count()
    }

    enum Later {
        Result { child: Text, ok: bool },
        PeerDeletesChild { child: Text, uid: u32 },
    }

    /// A simulated charon and peer that answer the keeper's actions, in simulated time.
    struct Lab {
        k: Keeper,
        now: Millis,
        lines: List<(Millis, Text)>,
        initiates: List<(Millis, Text)>,
        results: List<(Millis, Text)>,
        terminates: List<(Millis, u32)>,
        reconciles: u32,
        reachable: bool,
        ok_after: Millis,
        fail_after: Millis,
        fail_cause: &'static str,
        charon_connecting: bool,
        drop_after: Option<Millis>,
        up: BTreeMap<Text, (u32, u32)>,
        ike_of: BTreeMap<Text, Text>,
        next_uid: u32,
        later: List<(Millis, Later)>,
        snapshot_every: Option<Millis>,
        next_snapshot: Millis,
    }

    impl Lab {
        fn new(settings: KeeperSettings, children: &[(&str, &str)]) -> Lab {
            let mut k = Keeper::new(settings, 7);
            let mut ike_of = BTreeMap::new();
            for (c, i) in children {
                k.watch(c, i, WatchReason::RouteBased).unwrap();
                ike_of.insert(c.to_string(), i.to_string());
            }
            Lab {
                k,
                now: 0,
                lines: List::new(),
                initiates: List::new(),
                results: List::new(),
                terminates: List::new(),
                reconciles: 0,
                reachable: true,
                ok_after: 300,
                fail_after: 10 * S,
                fail_cause: "no-reply",
                charon_connecting: false,
                drop_after: None,
                up: BTreeMap::new(),
                ike_of,
                next_uid: 1,
                later: List::new(),
                snapshot_every: None,
                next_snapshot: 0,
            }
        }

        /// All children installed, then the keeper's first look.
        fn start_up(&mut self) {
            let children: List<Text> = self.ike_of.keys().cloned().collect();
            for c in children {
                self.install(&c, false);
            }
            self.run_until(self.now + 10);
        }

        fn uid(&mut self) -> u32 {
            self.next_uid += 1;
            self.next_uid
        }

        fn ike_view(&self, ike: &str, uid: u32, children: &[ChildSa]) -> IkeSa {
            ike_sa(ike, uid, IkeState::Established, children)
        }

        fn install(&mut self, child: &str, event: bool) {
            let ike = self.ike_of[child].clone();
            let ike_uid = self
                .up
                .iter()
                .find(|(c, _)| self.ike_of[*c] == ike)
                .map(|(_, (i, _))| *i);
            let ike_uid = match ike_uid {
                Some(u) => u,
                None => self.uid(),
            };
            let child_uid = self.uid();
            self.up.insert(child.to_string(), (ike_uid, child_uid));
            if event {
                let view = self.ike_view(
                    &ike,
                    ike_uid,
                    &[child_sa(child, child_uid, ChildState::Installed)],
                );
                self.k.on_child_updown(self.now, true, &view);
            }
            if let Some(after) = self.drop_after {
                let at = self.now + after;
                self.later.push((
                    at,
                    Later::PeerDeletesChild {
                        child: child.to_string(),
                        uid: child_uid,
                    },
                ));
            }
        }

        /// DPD declares the peer of `ike` dead: IKE down, then each child down.
        fn dpd_failure(&mut self, ike: &str) {
            let gone: List<(Text, (u32, u32))> = self
                .up
                .iter()
                .filter(|(c, _)| self.ike_of[*c] == ike)
                .map(|(c, ids)| (c.clone(), *ids))
                .collect();
            let Some((_, (ike_uid, _))) = gone.first().cloned() else {
                return;
            };
            let children: List<ChildSa> = gone
                .iter()
                .map(|(c, (_, u))| child_sa(c, *u, ChildState::Installed))
                .collect();
            let view = with_task(self.ike_view(ike, ike_uid, &children), &["IKE_DPD"], &[]);
            self.k.on_ike_updown(self.now, false, &view);
            for (c, (_, u)) in &gone {
                self.up.remove(c);
                let one = with_task(
                    self.ike_view(ike, ike_uid, &[child_sa(c, *u, ChildState::Installed)]),
                    &["IKE_DPD"],
                    &[],
                );
                self.k.on_child_updown(self.now, false, &one);
            }
        }

        fn snapshot(&mut self) {
            let mut by_ike: BTreeMap<Text, (u32, List<ChildSa>)> = BTreeMap::new();
            for (c, (i, u)) in &self.up {
                let e = by_ike
                    .entry(self.ike_of[c].clone())
                    .or_insert((*i, List::new()));
                e.1.push(child_sa(c, *u, ChildState::Installed));
            }
            let mut ikes: List<IkeSa> = by_ike
                .iter()
                .map(|(n, (u, cs))| self.ike_view(n, *u, cs))
                .collect();
            if self.charon_connecting {
                for ike in self.ike_of.values() {
                    if !by_ike.contains_key(ike) {
                        ikes.push(ike_sa(ike, 999, IkeState::Connecting, &[]));
                    }
                }
            }
            self.k.on_snapshot(self.now, ikes.iter());
        }

        fn handle(&mut self, actions: List<KeeperAction>) {
            for a in actions {
                match a {
                    KeeperAction::Report(r) => self.lines.push((self.now, r.to_string())),
                    KeeperAction::Reconcile => {
                        self.reconciles += 1;
                        self.snapshot();
                    }
                    KeeperAction::Terminate { child_uniqueid, .. } => {
                        self.terminates.push((self.now, child_uniqueid));
                        let hit = self
                            .up
                            .iter()
                            .find(|(_, (_, u))| *u == child_uniqueid)
                            .map(|(c, ids)| (c.clone(), *ids));
                        if let Some((c, (i, u))) = hit {
                            self.up.remove(&c);
                            let ike = self.ike_of[&c].clone();
                            let view = with_task(
                                self.ike_view(&ike, i, &[child_sa(&c, u, ChildState::Installed)]),
                                &["CHILD_DELETE"],
                                &[],
                            );
                            self.k.on_child_updown(self.now, false, &view);
                        }
                    }
                    KeeperAction::Initiate { child, .. } => {
                        let child = child.to_string();
                        self.initiates.push((self.now, child.clone()));
                        if self.up.contains_key(&child) {
                            let outcome = InitiateOutcome {
                                duplicate: true,
                                ..InitiateOutcome::default()
                            };
                            let ike = self.ike_of[&child].clone();
                            self.k.on_initiate_result(self.now, &child, &ike, outcome);
                        } else if self.reachable {
                            let at = self.now + self.ok_after;
                            self.later.push((at, Later::Result { child, ok: true }));
                        } else {
                            let at = self.now + self.fail_after;
                            self.later.push((at, Later::Result { child, ok: false }));
                        }
                    }
                }
            }
        }

        fn step(&mut self, until: Millis) -> bool {
            let mut next = self.k.next_wake().map(|w| w.max(self.now));
            let mut consider = |t: Millis| next = Some(next.map_or(t, |n| n.min(t)));
            for (t, _) in &self.later {
                consider(*t);
            }
            if self.snapshot_every.is_some() {
                consider(self.next_snapshot);
            }
            let Some(next) = next.map(|n| n.max(self.now)).filter(|&n| n <= until) else {
                return false;
            };
            self.now = next;
            let mut i = 0;
            while i < self.later.len() {
                if self.later[i].0 > self.now {
                    i += 1;
                    continue;
                }
                let (_, what) = self.later.remove(i);
                match what {
                    Later::Result { child, ok } => {
                        self.results.push((self.now, child.clone()));
                        if ok {
                            self.install(&child, true);
                        }
                        let outcome = InitiateOutcome {
                            ok,
                            duplicate: false,
                            cause: (!ok).then_some(self.fail_cause),
                        };
                        let ike = self.ike_of[&child].clone();
                        self.k.on_initiate_result(self.now, &child, &ike, outcome);
                    }
                    Later::PeerDeletesChild { child, uid } => {
                        if self.up.get(&child).is_some_and(|(_, u)| *u == uid) {
                            let (i, _) = self.up.remove(&child).unwrap();
                            let ike = self.ike_of[&child].clone();
                            let view = with_task(
                                self.ike_view(
                                    &ike,
                                    i,
                                    &[child_sa(&child, uid, ChildState::Installed)],
                                ),
                                &[],
                                &["CHILD_DELETE"],
                            );
                            self.k.on_child_updown(self.now, false, &view);
                        }
                    }
                }
            }
            if let Some(every) = self.snapshot_every {
                if self.now >= self.next_snapshot {
                    self.next_snapshot = self.now + every;
                    self.snapshot();
                }
            }
            let actions = drain(&mut self.k, self.now);
            if let Some(w) = self.k.next_wake() {
                assert!(w > self.now, "wake {w} not after now {}", self.now);
            }
            self.handle(actions);
            true
        }

        fn run_until(&mut self, until: Millis) {
            let (mut same, mut last) = (0, self.now);
            while self.step(until) {
                if self.now == last {
                    same += 1;
                    assert!(same < 1000, "busy loop at {}", self.now);
                } else {
                    (same, last) = (0, self.now);
                }
            }
            self.now = self.now.max(until);
        }

        fn starts(&self, child: &str) -> List<Millis> {
            self.initiates
                .iter()
                .filter(|(_, c)| c == child)
                .map(|(t, _)| *t)
                .collect()
        }

        fn lines_since(&self, t: Millis) -> List<&str> {
            self.lines
                .iter()
                .filter(|(at, _)| *at >= t)
                .map(|(_, l)| l.as_str())
                .collect()
        }
    }

    fn one_child(settings: KeeperSettings) -> Lab {
        let mut lab = Lab::new(settings, &[("con2_1", "con2")]);
        lab.start_up();
        lab
    }

    #[test]
    fn first_attempt_waits_for_the_grace_then_backoff_doubles_up_to_the_cap() {
        let mut lab = one_child(KeeperSettings::default());
        lab.reachable = false;
        lab.fail_after = 0;
        lab.run_until(10 * S);
        lab.dpd_failure("con2");
        lab.run_until(15 * MIN);
        let starts = lab.starts("con2_1");
        assert_eq!(starts[0], 10 * S + 1000, "first attempt after the grace");
        for (i, pair) in starts.windows(2).enumerate() {
            let nominal = (1000u64 << i.min(20)).min(60 * S);
            let interval = pair[1] - pair[0];
            let lowest = (nominal * 8 / 10).max(1000);
            assert!(
                (lowest..=nominal).contains(&interval),
                "attempt {}: {interval} ms not in {lowest}..={nominal}",
                i + 1
            );
        }
        assert!(starts.len() > 15, "keeps trying: {}", starts.len());
    }

    #[test]
    fn settings_come_from_the_config_in_its_units() {
        let s = KeeperSettings::from_config(&Config::default());
        assert_eq!(s.role, Role::Initiator);
        assert_eq!(s.stale_after_ms, 60_000);
        assert_eq!(
            (s.grace_ms, s.backoff_min_ms, s.backoff_cap_ms),
            (1000, 1000, 60_000)
        );
    }

    #[test]
    fn jitter_stays_within_twenty_percent_below_nominal_and_never_beyond_the_cap() {
        for seed in 0..20u64 {
            let mut k = Keeper::new(KeeperSettings::default(), seed);
            for level in 1..=70u32 {
                let nominal = (1000u64.saturating_mul(1 << (level - 1).min(62))).min(60_000);
                let (mut lo, mut hi) = (u64::MAX, 0);
                for _ in 0..200 {
                    let d = k.backoff_ms(level);
                    assert!(d <= nominal && d <= 60_000, "level {level}: {d}");
                    assert!(d >= nominal * 8 / 10, "level {level}: {d}");
                    (lo, hi) = (lo.min(d), hi.max(d));
                }
                // The draws really spread over the band.
                assert!(
                    lo < nominal * 85 / 100 && hi > nominal * 95 / 100,
                    "{lo}..{hi}"
                );
            }
        }
        // Odd settings are made consistent rather than trusted.
        let odd = KeeperSettings {
            backoff_min_ms: 0,
            backoff_cap_ms: 0,
            grace_ms: u64::MAX,
            ..KeeperSettings::default()
        };
        let mut k = Keeper::new(odd, 1);
        assert_eq!(k.settings().grace_ms, 1);
        for level in [1, 2, 63, u32::MAX] {
            assert_eq!(k.backoff_ms(level), 1);
        }
    }

    #[test]
    fn success_resets_the_backoff_so_the_next_outage_starts_with_the_grace() {
        let mut lab = one_child(KeeperSettings::default());
        lab.reachable = false;
        lab.fail_after = 0;
        lab.dpd_failure("con2");
        lab.run_until(10 * MIN);
        let before = lab.starts("con2_1");
        let last_gap = before[before.len() - 1] - before[before.len() - 2];
        assert!(last_gap >= 48 * S, "at the cap by now: {last_gap}");
        lab.reachable = true;
        lab.run_until(12 * MIN);
        assert!(lab.up.contains_key("con2_1"));
        lab.run_until(20 * MIN);
        let down_at = lab.now;
        lab.dpd_failure("con2");
        lab.run_until(down_at + 5 * S);
        let after: List<Millis> = lab
            .starts("con2_1")
            .into_iter()
            .filter(|&t| t >= down_at)
            .collect();
        assert_eq!(after, [down_at + 1000]);
    }

    #[test]
    fn no_attempt_is_made_while_charon_is_connecting_the_child_itself() {
        let mut lab = one_child(KeeperSettings::default());
        lab.charon_connecting = true; // e.g. dpd_action = restart
        let down_at = lab.now;
        lab.dpd_failure("con2");
        lab.run_until(down_at + 40 * S);
        assert!(lab.initiates.is_empty(), "{:?}", lab.initiates);
        // It looked again and again, at a growing interval (not a list-sas every second).
        assert!(
            (3..=8).contains(&lab.reconciles),
            "{} looks",
            lab.reconciles
        );
        // charon gets there on its own.
        lab.install("con2_1", true);
        lab.run_until(down_at + 41 * S);
        assert!(lab.initiates.is_empty());
        let last = &lab.lines.last().unwrap().1;
        assert!(last.contains("back up after") && last.contains("charon or the peer"));

        // This time charon gives up: the keeper takes over within the cap.
        let down_at = lab.now + 5 * MIN;
        lab.run_until(down_at);
        lab.dpd_failure("con2");
        lab.run_until(down_at + 30 * S);
        assert!(lab.starts("con2_1").is_empty());
        lab.charon_connecting = false;
        lab.run_until(down_at + 30 * S + 60 * S);
        assert_eq!(lab.starts("con2_1").len(), 1);
        assert!(lab.up.contains_key("con2_1"));
    }

    #[test]
    fn charon_reestablishing_within_the_grace_wins_and_no_initiate_is_made() {
        let mut lab = one_child(KeeperSettings::default());
        let down_at = lab.now;
        lab.dpd_failure("con2");
        lab.run_until(down_at + 500);
        lab.install("con2_1", true);
        lab.run_until(down_at + 10 * MIN);
        assert!(lab.initiates.is_empty());
        assert_eq!(
            lab.lines_since(down_at),
            [
                "con2_1: down (IKE con2 deleted by DPD); re-initiating in 1.0 s",
                "con2_1: back up after 0.5 s (re-established by charon or the peer)",
            ]
        );
    }

    #[test]
    fn responder_never_initiates_and_says_so() {
        let settings = KeeperSettings {
            role: Role::Responder,
            ..KeeperSettings::default()
        };
        let mut lab = one_child(settings);
        lab.reachable = false;
        lab.dpd_failure("con2");
        lab.run_until(24 * H);
        assert!(lab.initiates.is_empty());
        let lines = lab.lines_since(0);
        assert_eq!(
            lines[0],
            "con2_1: down (IKE con2 deleted by DPD); not re-initiating \
             (role responder: the peer initiates)"
        );
        assert!(lines.len() <= 10, "{lines:#?}");
        assert!(lines[1].starts_with("con2_1: still down after 1 min, not re-initiating"));
        let status = lab.k.children().next().unwrap();
        assert_eq!(status.state, KeptState::Down);
        assert!(!status.basis.initiates());
    }

    #[test]
    fn auto_role_is_antisymmetric_for_any_two_distinct_addresses() {
        let mut rng = SplitMix(99);
        let pick = |rng: &mut SplitMix| -> Text {
            let r = rng.next_u64();
            match r % 4 {
                0 => format!("192.0.2.{}", r >> 8 & 0xff),
                1 => format!("10.{}.{}.1", r >> 8 & 0xff, r >> 16 & 3),
                2 => format!("2001:db8::{:x}", r >> 8 & 0xffff),
                _ => format!("vpn{}.example.net", r >> 8 & 7),
            }
        };
        let mut checked = 0;
        for _ in 0..20_000 {
            let (a, b) = (pick(&mut rng), pick(&mut rng));
            if a == b {
                continue;
            }
            let here = auto_basis(&a, &b);
            let there = auto_basis(&b, &a);
            assert!(
                here.initiates() != there.initiates(),
                "{a} vs {b}: {here:?} / {there:?}"
            );
            checked += 1;
        }
        assert!(checked > 15_000);
        // Compared as addresses, not as text: 192.0.2.10 > 192.0.2.9.
        assert_eq!(auto_basis("192.0.2.9", "192.0.2.10"), Basis::AutoLocalLower);
        assert_eq!(auto_basis("192.0.2.10", "192.0.2.9"), Basis::AutoPeerLower);
    }

    #[test]
    fn auto_role_uses_conn_addresses_until_an_sa_shows_real_ones_and_initiates_when_unknown() {
        let settings = KeeperSettings {
            role: Role::Auto,
            ..KeeperSettings::default()
        };
        let mut k = Keeper::new(settings, 1);
        k.watch("con2_1", "con2", WatchReason::Named).unwrap();
        assert_eq!(k.basis("con2"), Some(Basis::AutoUnknown));
        k.set_endpoints("con2", "%any", "192.0.2.2");
        assert_eq!(k.basis("con2"), Some(Basis::AutoUnknown));
        k.set_endpoints("con2", "192.0.2.3", "192.0.2.2");
        assert_eq!(k.basis("con2"), Some(Basis::AutoPeerLower));
        // The SA's own view wins over the configuration, and sticks.
        let sa = ike_sa("con2", 1, IkeState::Established, &[]); // 192.0.2.1 ↔ 192.0.2.2
        k.on_ike_updown(0, true, &sa);
        assert_eq!(k.basis("con2"), Some(Basis::AutoLocalLower));
        k.set_endpoints("con2", "192.0.2.3", "192.0.2.2");
        assert_eq!(k.basis("con2"), Some(Basis::AutoLocalLower));

        // Unknown endpoints: it initiates, and the down line says why.
        let mut k = Keeper::new(settings, 1);
        k.watch("con3_1", "con3", WatchReason::Named).unwrap();
        k.on_snapshot(0, []);
        let l = lines(&drain(&mut k, 0));
        assert_eq!(
            l,
            ["con3_1: down (not established); re-initiating in 1.0 s \
              (role auto, endpoints unknown: initiating)"]
        );
    }

    #[test]
    fn a_day_long_outage_yields_a_handful_of_lines_while_attempts_continue_within_the_cap() {
        let mut lab = one_child(KeeperSettings::default());
        lab.snapshot_every = Some(30 * S);
        lab.reachable = false;
        let down_at = lab.now;
        lab.dpd_failure("con2");
        lab.run_until(down_at + 24 * H);
        let starts = lab.starts("con2_1");
        assert!(starts.len() > 1300, "attempts: {}", starts.len());
        let widest = starts.windows(2).map(|p| p[1] - p[0]).max().unwrap();
        assert!(widest <= 60 * S, "widest gap {widest}");
        let lines = lab.lines_since(down_at);
        assert!(lines.len() <= 10, "{lines:#?}");
        assert_eq!(
            lines[1],
            "con2_1: re-initiation failed: no reply (peer down or UDP 500/4500 blocked); \
             retrying in 1.0 s, backing off up to 1 min"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("con2_1: still down after 10 min")
                    && l.ends_with(
                        "attempts, last cause: no reply (peer down or UDP 500/4500 blocked)"
                    )),
            "{lines:#?}"
        );
        // Heal: back within the cap plus the attempt's own time.
        let healed = lab.now;
        lab.reachable = true;
        lab.run_until(healed + 2 * MIN);
        let up_line = lab.lines_since(healed)[0];
        assert!(
            up_line.starts_with("con2_1: back up after 1 d"),
            "{up_line}"
        );
        let status = lab.k.children().next().unwrap();
        assert_eq!(status.state, KeptState::Up);
        assert!(status.since <= healed + 60 * S + 10 * S + 300);
        assert_eq!(status.reinitiations, 1);
    }

    #[test]
    fn at_most_one_initiate_is_in_flight_per_child_until_its_result_or_timeout() {
        let mut k = Keeper::new(KeeperSettings::default(), 3);
        k.watch("con2_1", "con2", WatchReason::Named).unwrap();
        k.on_snapshot(0, []);
        drain(&mut k, 0);
        k.on_snapshot(1000, []);
        assert_eq!(initiates(&drain(&mut k, 1000)), 1);
        // No answer: nothing more until initiate timeout + margin.
        let mut t = 1000;
        while t < 1000 + 15 * S {
            t = k.next_wake().unwrap().max(t + 1);
            if t >= 1000 + 15 * S {
                break;
            }
            k.on_snapshot(t, []);
            assert_eq!(initiates(&drain(&mut k, t)), 0, "at {t}");
        }
        let status = k.children().next().unwrap();
        assert_eq!(status.state, KeptState::Connecting);
        // Timed out: counted as a failure, retried after backoff.
        let l = lines(&drain(&mut k, 16 * S));
        assert!(l[0].contains("no answer from charon"), "{l:?}");
        let next = k.next_wake().unwrap();
        k.on_snapshot(next, []);
        assert_eq!(initiates(&drain(&mut k, next)), 1);
        let ok = InitiateOutcome {
            ok: true,
            ..InitiateOutcome::default()
        };
        k.on_initiate_result(next + 400, "con2_1", "con2", ok);
        let l = lines(&drain(&mut k, next + 400));
        assert_eq!(l.len(), 1);
        assert!(l[0].ends_with(", 2 attempts"), "{l:?}");
    }

    #[test]
    fn existing_duplicate_counts_as_up() {
        let mut k = Keeper::new(KeeperSettings::default(), 3);
        k.watch("con2_1", "con2", WatchReason::Named).unwrap();
        k.on_snapshot(0, []);
        drain(&mut k, 0);
        k.on_snapshot(1000, []);
        assert_eq!(initiates(&drain(&mut k, 1000)), 1);
        let dup = InitiateOutcome {
            ok: false,
            duplicate: true,
            cause: Some("existing duplicate"),
        };
        k.on_initiate_result(1200, "con2_1", "con2", dup);
        let l = lines(&drain(&mut k, 1200));
        assert_eq!(l, ["con2_1: back up after 1.2 s, 1 attempt"]);
        assert_eq!(k.children().next().unwrap().state, KeptState::Up);
        assert_eq!(k.next_wake(), None);
    }

    #[test]
    fn slow_pace_initiates_one_child_at_a_time_yet_none_waits_beyond_the_cap() {
        let names = [("a_1", "a"), ("b_1", "b"), ("c_1", "c"), ("d_1", "d")];
        for slow in [false, true] {
            let mut lab = Lab::new(KeeperSettings::default(), &names);
            lab.start_up();
            lab.k.set_pace(slow);
            lab.reachable = false;
            let down_at = lab.now;
            for (_, ike) in names {
                lab.dpd_failure(ike);
            }
            lab.run_until(down_at + 30 * MIN);
            let firsts: List<Millis> = names.iter().map(|(c, _)| lab.starts(c)[0]).collect();
            if !slow {
                assert!(firsts.iter().all(|&t| t == down_at + 1000), "{firsts:?}");
                continue;
            }
            let mut sorted = firsts.clone();
            sorted.sort();
            for p in sorted.windows(2) {
                assert!(p[1] - p[0] >= 10 * S, "one at a time: {firsts:?}");
            }
            for (c, _) in names {
                let starts = lab.starts(c);
                assert!(starts[0] - down_at <= 60 * S, "{c}: first at {}", starts[0]);
                for p in starts.windows(2) {
                    assert!(p[1] - p[0] <= 60 * S, "{c}: gap {}", p[1] - p[0]);
                }
            }
            // Mostly serial: overlapping attempts only when the cap forces one.
            let mut spans: List<(Millis, Millis)> = lab
                .initiates
                .iter()
                .map(|(t, _)| (*t, *t + lab.fail_after))
                .collect();
            spans.sort();
            let overlaps = spans.windows(2).filter(|p| p[1].0 < p[0].1).count();
            assert!(overlaps * 4 < spans.len(), "{overlaps} of {}", spans.len());
        }
    }

    #[test]
    fn an_old_sa_going_down_after_make_before_break_leaves_the_child_up() {
        let mut k = Keeper::new(KeeperSettings::default(), 3);
        k.watch("con2_1", "con2", WatchReason::Named).unwrap();
        let old = ike_sa(
            "con2",
            1,
            IkeState::Established,
            &[child_sa("con2_1", 10, ChildState::Installed)],
        );
        k.on_snapshot(0, [&old]);
        let new = ike_sa(
            "con2",
            2,
            IkeState::Established,
            &[child_sa("con2_1", 11, ChildState::Installed)],
        );
        k.on_ike_updown(5 * S, true, &new);
        k.on_child_updown(5 * S, true, &new);
        let old_going = with_task(old.clone(), &["IKE_DELETE"], &[]);
        k.on_ike_updown(6 * S, false, &old_going);
        k.on_child_updown(6 * S, false, &old_going);
        assert!(drain(&mut k, 6 * S).is_empty());
        assert_eq!(k.children().next().unwrap().state, KeptState::Up);
        // The new one going down is a real down.
        let new_going = with_task(new, &[], &["IKE_DELETE"]);
        k.on_ike_updown(7 * S, false, &new_going);
        assert_eq!(
            lines(&drain(&mut k, 7 * S)),
            ["con2_1: down (peer deleted IKE con2); re-initiating in 1.0 s"]
        );
    }

    #[test]
    fn peer_deleting_one_child_reinitiates_only_that_child() {
        let mut lab = Lab::new(
            KeeperSettings::default(),
            &[("con2_1", "con2"), ("con2_2", "con2")],
        );
        lab.start_up();
        let (i, u) = lab.up.remove("con2_1").unwrap();
        let view = with_task(
            ike_sa(
                "con2",
                i,
                IkeState::Established,
                &[child_sa("con2_1", u, ChildState::Installed)],
            ),
            &[],
            &["CHILD_DELETE"],
        );
        let t = lab.now;
        lab.k.on_child_updown(t, false, &view);
        lab.run_until(t + MIN);
        assert_eq!(lab.starts("con2_1"), [t + 1000]);
        assert!(lab.starts("con2_2").is_empty());
        assert_eq!(
            lab.lines_since(t),
            [
                "con2_1: down (peer deleted the CHILD_SA); re-initiating in 1.0 s",
                "con2_1: back up after 1.3 s, 1 attempt",
            ]
        );
    }

    #[test]
    fn a_child_coming_back_hurries_its_siblings_past_their_backoff() {
        let mut lab = Lab::new(
            KeeperSettings::default(),
            &[("con2_1", "con2"), ("con2_2", "con2")],
        );
        lab.start_up();
        lab.reachable = false;
        lab.fail_after = 0;
        lab.dpd_failure("con2");
        let down_at = lab.now;
        lab.run_until(down_at + 10 * MIN);
        lab.reachable = true;
        let healed = lab.now;
        lab.run_until(healed + 2 * MIN);
        let first_after = |lab: &Lab, child: &str| {
            lab.starts(child)
                .into_iter()
                .find(|&t| t >= healed)
                .expect("an attempt after the heal")
        };
        let (a, b) = (first_after(&lab, "con2_1"), first_after(&lab, "con2_2"));
        assert!(lab.up.contains_key("con2_1") && lab.up.contains_key("con2_2"));
        // Both sit near the 60 s cap; the second follows the first's success, not its own slot.
        assert!(
            a.abs_diff(b) <= 2 * S,
            "attempts {a} and {b} after the heal at {healed}"
        );
    }

    fn stale_view(uid: u32, packets_in: u64, packets_out: u64) -> IkeSa {
        let mut child = child_sa("con2_1", uid, ChildState::Installed);
        child.packets_in = packets_in;
        child.packets_out = packets_out;
        ike_sa("con2", 1, IkeState::Established, &[child])
    }

    #[test]
    fn one_sided_sa_is_reported_once_while_out_grows_and_in_stays_frozen() {
        let mut k = Keeper::new(KeeperSettings::default(), 3);
        k.watch("con2_1", "con2", WatchReason::Named).unwrap();
        let mut all = List::new();
        for step in 0..10u64 {
            let t = step * 30 * S;
            k.on_snapshot(t, [&stale_view(5, 100, 100 + step * 10)]);
            all.extend(lines(&drain(&mut k, t)));
        }
        assert_eq!(
            all,
            [
                "con2_1: one-sided SA (peer probably lost it): 20 packets out, none in for 1 min; \
              reporting only (--stale-action restart fixes it)"
            ]
        );
        assert!(k.children().next().unwrap().stale);
        // Traffic comes in: healed; frozen again later: reported again.
        k.on_snapshot(300 * S, [&stale_view(5, 101, 200)]);
        assert!(!k.children().next().unwrap().stale);
        k.on_snapshot(330 * S, [&stale_view(5, 101, 210)]);
        k.on_snapshot(360 * S, [&stale_view(5, 101, 220)]);
        assert_eq!(lines(&drain(&mut k, 360 * S)).len(), 1);
        // Idle both ways is not stale.
        let mut k = Keeper::new(KeeperSettings::default(), 3);
        k.watch("con2_1", "con2", WatchReason::Named).unwrap();
        for step in 0..10u64 {
            k.on_snapshot(step * 30 * S, [&stale_view(5, 100, 100)]);
        }
        assert!(drain(&mut k, 300 * S).is_empty());
    }

    #[test]
    fn stale_restart_terminates_then_reinitiates_and_does_not_loop() {
        let settings = KeeperSettings {
            stale_action: StaleAction::Restart,
            ..KeeperSettings::default()
        };
        let mut k = Keeper::new(settings, 3);
        k.watch("con2_1", "con2", WatchReason::Named).unwrap();
        k.on_snapshot(0, [&stale_view(5, 100, 100)]);
        k.on_snapshot(30 * S, [&stale_view(5, 100, 110)]);
        k.on_snapshot(60 * S, [&stale_view(5, 100, 120)]);
        let a = drain(&mut k, 60 * S);
        assert!(
            lines(&a)[0].ends_with("terminating and re-initiating"),
            "{a:?}"
        );
        assert!(a.iter().any(|a| matches!(
            a,
            KeeperAction::Terminate {
                child_uniqueid: 5,
                ..
            }
        )));
        // Terminated; the grace, a fresh look, then an initiate.
        let due = k.next_wake().unwrap();
        assert_eq!(due, 61 * S);
        assert!(matches!(drain(&mut k, due)[..], [KeeperAction::Reconcile]));
        // The terminated SA may linger a moment: it does not count as up.
        k.on_snapshot(due, [&stale_view(5, 100, 130)]);
        let a = drain(&mut k, due);
        assert!(matches!(a[..], [KeeperAction::Initiate { .. }]), "{a:?}");
        let ok = InitiateOutcome {
            ok: true,
            ..InitiateOutcome::default()
        };
        k.on_initiate_result(due + 300, "con2_1", "con2", ok);
        drain(&mut k, due + 300);
        // The new SA is one-sided too: said once, no second restart.
        let mut all = List::new();
        for step in 1..20u64 {
            let t = due + step * 30 * S;
            k.on_snapshot(t, [&stale_view(6, 0, step * 10)]);
            all.extend(drain(&mut k, t));
        }
        assert!(!all.iter().any(|a| matches!(
            a,
            KeeperAction::Terminate { .. } | KeeperAction::Initiate { .. }
        )));
        let l = lines(&all);
        assert_eq!(l.len(), 1, "{l:?}");
        assert!(l[0].ends_with("a restart did not help; leaving it until traffic comes in"));
    }

    #[test]
    fn duplicate_ike_sas_are_reported_once_per_change() {
        let mut k = Keeper::new(KeeperSettings::default(), 3);
        k.watch("con2_1", "con2", WatchReason::Named).unwrap();
        let c = |uid| child_sa("con2_1", uid, ChildState::Installed);
        let one = ike_sa("con2", 1, IkeState::Established, &[c(10)]);
        let two = ike_sa("con2", 2, IkeState::Established, &[c(11)]);
        let three = ike_sa("con2", 3, IkeState::Established, &[c(12)]);
        let mut l = List::new();
        for (t, set) in [
            (0, List::from([&one, &two])),
            (30 * S, List::from([&one, &two])),
            (60 * S, List::from([&one, &two])),
            (90 * S, List::from([&one, &two, &three])),
            (120 * S, List::from([&one])),
            (150 * S, List::from([&one])),
        ] {
            k.on_snapshot(t, set);
            l.extend(lines(&drain(&mut k, t)));
        }
        assert_eq!(
            l,
            [
                "con2: 2 IKE_SAs established for one connection (both sides initiating?); \
                 set --role auto on both ends or responder on one",
                "con2: 3 IKE_SAs established for one connection (both sides initiating?); \
                 set --role auto on both ends or responder on one",
                "con2: duplicate IKE_SAs gone",
            ]
        );
    }

    #[test]
    fn a_flapping_child_is_summarized_instead_of_logged_per_drop_and_backs_off() {
        let mut lab = one_child(KeeperSettings::default());
        lab.drop_after = Some(10 * S);
        let t0 = lab.now;
        lab.dpd_failure("con2");
        lab.run_until(t0 + 6 * H);
        let starts = lab.starts("con2_1");
        assert!(starts.len() > 200, "{}", starts.len());
        for p in starts[starts.len() - 20..].windows(2) {
            assert!(
                p[1] - p[0] >= 48 * S + 10 * S,
                "backed off: {}",
                p[1] - p[0]
            );
        }
        let l = lab.lines_since(t0);
        assert!(l.len() <= 15, "{l:#?}");
        assert_eq!(l.iter().filter(|l| l.contains("flapping:")).count(), 1);
        assert!(
            l.iter().any(|l| l.starts_with("con2_1: unstable for 1 h:")),
            "{l:#?}"
        );
        // The peer stops deleting it: after ten quiet minutes, one line, then normal again.
        lab.drop_after = None;
        let calm = lab.now;
        lab.run_until(calm + 20 * MIN);
        let l = lab.lines_since(calm);
        assert_eq!(l.len(), 1, "{l:#?}");
        assert!(l[0].starts_with("con2_1: stable again after 6 h"), "{l:?}");
        assert!(!lab.k.children().next().unwrap().flapping);
    }

    #[test]
    fn report_lines_read_well() {
        let line = |subject: &str, kind| {
            KeeperReport {
                subject: name(subject),
                ike: name("con2"),
                kind,
            }
            .to_string()
        };
        let retry = Plan::Retry {
            in_ms: 1000,
            basis: Basis::RoleInitiator,
        };
        assert_eq!(
            line(
                "con2_1",
                ReportKind::Down {
                    cause: DownCause::Dpd,
                    plan: retry
                }
            ),
            "con2_1: down (IKE con2 deleted by DPD); re-initiating in 1.0 s"
        );
        assert_eq!(
            line(
                "con2_1",
                ReportKind::Up {
                    after_ms: 12_400,
                    attempts: 3
                }
            ),
            "con2_1: back up after 12.4 s, 3 attempts"
        );
        assert_eq!(
            line(
                "con2_1",
                ReportKind::StillDown {
                    for_ms: 600_000,
                    attempts: 14,
                    last_cause: Some("no-reply"),
                    left_to_peer: None
                }
            ),
            "con2_1: still down after 10 min, 14 attempts, last cause: \
             no reply (peer down or UDP 500/4500 blocked)"
        );
        assert_eq!(
            line(
                "con2_1",
                ReportKind::StillDown {
                    for_ms: 3_600_000 + 5 * 60_000,
                    attempts: 1,
                    last_cause: Some("some-new-label"),
                    left_to_peer: None
                }
            ),
            "con2_1: still down after 1 h 5 min, 1 attempt, last cause: some-new-label"
        );
        assert_eq!(Span(59_999).to_string(), "59.9 s");
        assert_eq!(Span(125_000).to_string(), "2 min 5 s");
        assert_eq!(Span(2 * 86_400_000 + 3 * 3_600_000).to_string(), "2 d 3 h");
        assert_eq!(Span(u64::MAX).to_string(), "213503982334 d 14 h");
    }

    #[test]
    fn a_full_watch_list_is_an_error_not_a_crash() {
        let mut k = Keeper::new(KeeperSettings::default(), 1);
        for i in 0..WATCHED_CHILDREN_MAX {
            k.watch(&format!("c{i}"), &format!("i{i}"), WatchReason::Named)
                .unwrap();
        }
        assert_eq!(k.watch("x", "y", WatchReason::Named), Err(WatchError::Full));
        assert_eq!(
            k.watch(&"n".repeat(100), "y", WatchReason::Named),
            Err(WatchError::NameTooLong)
        );
        // Every child down at once still fits the report queue.
        k.on_snapshot(0, []);
        let l = lines(&drain(&mut k, 0));
        assert_eq!(l.len(), WATCHED_CHILDREN_MAX);
        assert_eq!(k.reports_dropped(), 0);
    }

    /// Random inputs in random order: no panic, and `poll` never leaves a wake in the past.
    #[test]
    fn random_inputs_never_panic_and_poll_never_leaves_a_past_wake() {
        let children = ["a_1", "a_2", "b_1", "zz"];
        let ikes = ["a", "a", "b", "zz"];
        let states = [
            ChildState::Installed,
            ChildState::Installing,
            ChildState::Rekeyed,
            ChildState::Deleting,
            ChildState::Created,
        ];
        let ike_states = [
            IkeState::Established,
            IkeState::Connecting,
            IkeState::Deleting,
        ];
        let causes = [Some("no-reply"), None, Some("auth-failed")];
        for seed in 0..30u64 {
            let mut rng = SplitMix(seed);
            let settings = KeeperSettings {
                role: [Role::Initiator, Role::Responder, Role::Auto][seed as usize % 3],
                stale_action: [StaleAction::Report, StaleAction::Restart][seed as usize % 2],
                stale_after_ms: 1 + rng.up_to(90_000),
                grace_ms: rng.up_to(3000),
                ..KeeperSettings::default()
            };
            let mut k = Keeper::new(settings, seed);
            for i in 0..3 {
                k.watch(children[i], ikes[i], WatchReason::Named).unwrap();
            }
            let mut now: Millis = 0;
            for _ in 0..5_000 {
                now += rng.up_to(40_000);
                let r = rng.next_u64();
                let pick = |n: u64| (r >> 8) as usize % n as usize;
                let ci = pick(4);
                let mut child = child_sa(children[ci], (r >> 16) as u32 % 5, states[pick(5)]);
                child.packets_in = (r >> 24) % 3;
                child.packets_out = (r >> 28) % 50;
                let mut ike = ike_sa(
                    ikes[ci],
                    (r >> 32) as u32 % 4,
                    ike_states[pick(3)],
                    &[child],
                );
                if r & 1 == 1 {
                    ike.local_host = lossy_truncated(b"192.0.2.9");
                    ike.children_dropped = (r >> 40) as u16 % 2;
                }
                ike = with_task(ike, &[["IKE_DPD", "CHILD_DELETE"][pick(2)]], &[]);
                match r % 9 {
                    0 => k.on_child_updown(now, r & 2 == 0, &ike),
                    1 => k.on_ike_updown(now, r & 2 == 0, &ike),
                    2 => {
                        let other = ike_sa("a", 7, IkeState::Established, &[]);
                        k.on_snapshot(now, [&ike, &other, &ike]);
                    }
                    3 => {
                        k.begin_snapshot(now);
                        k.snapshot_ike(&ike); // never ended: aborted
                    }
                    4 => {
                        let outcome = InitiateOutcome {
                            ok: r & 2 == 0,
                            duplicate: r & 4 == 0,
                            cause: causes[pick(3)],
                        };
                        k.on_initiate_result(now, children[ci], ikes[ci], outcome);
                    }
                    5 => k.set_pace(r & 2 == 0),
                    6 => {
                        k.set_endpoints(ikes[ci], "192.0.2.5", "%any");
                    }
                    _ => {
                        if let Some(w) = k.next_wake() {
                            now = now.max(w);
                        }
                    }
                }
                let actions = drain(&mut k, now);
                for a in &actions {
                    if let KeeperAction::Report(rep) = a {
                        let text = rep.to_string();
                        assert!(text.starts_with(rep.subject.as_str()), "{text}");
                        assert!(text.is_ascii(), "syslog lines are ASCII: {text}");
                    }
                }
                if let Some(w) = k.next_wake() {
                    assert!(w > now, "seed {seed}: wake {w} <= now {now}");
                }
                for s in k.children() {
                    if let KeptState::Waiting { until } = s.state {
                        assert_eq!(Some(until), s.next_attempt_at);
                    }
                }
            }
        }
    }
}
