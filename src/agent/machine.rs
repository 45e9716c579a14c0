//! [`Agent`]: the one state machine the shell drives. It ties the load history, the DPD
//! verdicts, the failure diagnosis, the keeper and the throttle together, and answers with
//! [`Action`]s: syslog lines, VICI jobs, status writes.
//!
//! ```
//! use swandog::agent::{Agent, Job, Settings};
//!
//! let mut agent = Agent::new(Settings::default(), 1);
//! agent.on_vici_link(0, true, false);
//! agent.poll(0, &mut |_| {});
//! // The shell's worker takes VICI calls one at a time, when it is free.
//! assert_eq!(agent.next_job(0), Some(Job::ListConns), "a fresh link learns the configuration");
//! assert_eq!(agent.next_job(0), Some(Job::ListSas), "then the SAs");
//! assert_eq!(agent.next_job(0), None);
//! ```

use core::fmt::Write;

use heapless::{Deque, String, Vec};

use super::plan::WatchNames;
use log::Level;

use super::cause::Cause;
use super::command::{CommandError, CommandErrorKind, Job, KindsSeen};
use super::correlate::{format_dpd_line, verdict, LoadThresholds, RateClass, RateTracker, Verdict};
use super::diagnose::{classify_alert, classify_down, classify_log, DpdTracker, LogSignal};
use super::history::LoadHistory;
use super::keeper::summary_offset;
use super::keeper::{
    InitiateOutcome, Keeper, KeeperAction, KeeperReport, KeeperSettings, ReportKind, Span,
    WatchError, WatchReason,
};
use super::lines::LineQueue;
use super::status::{Link, PaceView, Status, Tallies};
use super::throttle::{Pace, Throttle, ThrottleSettings};
use super::units::Millis;
use crate::limits::{
    DPD_RECORDS_MAX, INITIATES_IN_FLIGHT_MAX, LINE_MAX_BYTES, RECENT_CAUSES_MAX, STATUS_MIN_GAP_MS,
    VICI_RECONNECT_MAX_MS, WATCHED_CHILDREN_MAX,
};
use crate::sample::load::{LoadSample, ReadError};
use crate::vici::reply::InitiateReply;
use crate::vici::sa::{Conn, Event, IkeSa, IkeState, LogLine, Name};

/// One syslog line.
pub type Line = String<LINE_MAX_BYTES>;

/// Everything the agent decides by; built from the config.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Pace and own CPU budget.
    pub throttle: ThrottleSettings,
    /// When load makes a DPD failure load-correlated.
    pub thresholds: LoadThresholds,
    /// Window of load judged before a DPD failure whose start is unknown.
    pub dpd_window_ms: u64,
    /// Interval of the DPD-rate summary line (deferred while the box is busy).
    pub summary_interval_ms: u64,
    /// Interval of status snapshot rewrites when nothing changed.
    pub status_interval_ms: u64,
    /// Re-initiation policy.
    pub keeper: KeeperSettings,
    /// Children named by the operator; empty = every route-based child.
    pub watch: Vec<Name, WATCHED_CHILDREN_MAX>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            throttle: ThrottleSettings::default(),
            thresholds: LoadThresholds::default(),
            dpd_window_ms: 120_000,
            summary_interval_ms: 3_600_000,
            status_interval_ms: 10_000,
            keeper: KeeperSettings::default(),
            watch: Vec::new(),
        }
    }
}

/// What the agent wants done.
// Lines are the common action; boxing them would allocate for every line logged.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Log one line.
    Log(Level, Line),
    /// VICI calls are waiting: wake the worker, which takes them one at a time with
    /// [`Agent::next_job`] (they wait in the agent, so none can be lost to a full queue).
    Work,
    /// Rewrite the status snapshot (render [`Agent::status`] with `report::render`).
    WriteStatus,
}

/// A finished VICI command, as the worker hands it back (`list-sas` and `list-conns` are
/// streamed instead: [`Agent::on_sa`], [`Agent::on_conn`]).
pub enum CommandDone<'a> {
    /// `initiate` finished.
    Initiated {
        /// Which child.
        child: &'a Name,
        /// Its connection.
        ike: &'a Name,
        /// charon's answer.
        result: &'a Result<InitiateReply, CommandError>,
    },
    /// `terminate` finished.
    Terminated {
        /// Which child.
        child: &'a Name,
        /// charon's answer.
        result: &'a Result<InitiateReply, CommandError>,
    },
}

/// One DPD failure and its verdict, kept for `status`.
#[derive(Debug, Clone)]
pub struct DpdRecord {
    /// The IKE_SA (connection) name.
    pub ike: Name,
    /// When charon gave up.
    pub at: Millis,
    /// The verdict.
    pub verdict: Verdict,
}

/// Counters for status: what went wrong and how often.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    /// Malformed / oversized frames seen.
    pub wire_faults: u32,
    /// VICI command failures (timeouts included).
    pub command_failures: u32,
    /// Lines dropped because the pending queue was full.
    pub lines_dropped: u32,
    /// IKE_SAs or connections beyond table capacity.
    pub table_overflows: u32,
    /// /proc read failures.
    pub sample_errors: u32,
    /// VICI link losses.
    pub link_losses: u32,
    /// `watch` names the last `list-conns` did not have.
    pub watch_names_missing: u32,
    /// Children the plan would keep that did not fit the watch list (`WATCHED_CHILDREN_MAX`),
    /// as of the last `list-conns`.
    pub watch_left_out: u32,
    /// Watched children set aside because charon's configuration no longer has them.
    pub children_unconfigured: u32,
}

/// A running `initiate` and what charon said about it so far.
#[derive(Debug, Clone)]
struct Initiating {
    child: Name,
    /// Its connection (known once the worker took the job).
    ike: Option<Name>,
    /// The cause from its control-log lines.
    logged: Option<Cause>,
    /// The cause from an `alert` about its IKE_SA (strongSwan 6.0.3+): wins over the log's.
    alerted: Option<Cause>,
    /// Failed "due to existing duplicate": up after all.
    duplicate: bool,
}

/// The agent.
pub struct Agent {
    settings: Settings,
    history: LoadHistory,
    last_sample: Option<LoadSample>,
    dpd: DpdTracker,
    rate: RateTracker,
    rate_class: RateClass,
    dpd_records: Deque<DpdRecord, DPD_RECORDS_MAX>,
    recent_causes: Vec<(Name, Cause, Millis), RECENT_CAUSES_MAX>,
    /// What the control-log of each running `initiate` said: last failure cause, duplicate.
    initiating: Vec<Initiating, INITIATES_IN_FLIGHT_MAX>,
    keeper: Keeper,
    throttle: Throttle,
    pending: LineQueue,
    /// The operator's `watch` names, resolved against every `list-conns`.
    plan: WatchNames,
    /// VICI calls wanted besides the keeper's (which wait inside the keeper).
    want_conns: bool,
    want_sas: bool,
    /// The `list-conns` being read; children left out of a full watch list in it, the first one.
    conns_reading: bool,
    left_out: u32,
    left_out_first: Option<Name>,
    /// Children the running `list-conns` added to the watch list.
    added: NameList,
    link_up: bool,
    link_since: Millis,
    alerts: bool,
    next_poll: Millis,
    next_summary: Millis,
    next_status: Millis,
    status_dirty: bool,
    last_status: Millis,
    sample_error_logged: bool,
    counters: Counters,
    /// VICI calls failed in a row, and the kinds of failure already logged in this streak.
    command_streak: u32,
    command_errors_logged: KindsSeen,
    /// Why the event link is down (the last line said), since when, reminders said since.
    link_error: Line,
    unreachable_since: Millis,
    reminders: u32,
    /// Tables whose overflow was logged (once each; `counters.table_overflows` counts on). Sized
    /// for every `table_overflow` call site.
    overflows_logged: Vec<&'static str, 8>,
    /// Per-name counts for the metrics file.
    tallies: Tallies,
}

fn line(args: core::fmt::Arguments<'_>) -> Line {
    let mut l = Line::new();
    // A line longer than LINE_MAX_BYTES is cut; never an error.
    let _ = l.write_fmt(args);
    l
}

impl Agent {
    /// A fresh agent; `seed` feeds the keeper's jitter.
    pub fn new(settings: Settings, seed: u64) -> Agent {
        Agent {
            history: LoadHistory::new(),
            last_sample: None,
            dpd: DpdTracker::new(),
            rate: RateTracker::default(),
            rate_class: RateClass::default(),
            dpd_records: Deque::new(),
            recent_causes: Vec::new(),
            initiating: Vec::new(),
            keeper: Keeper::new(settings.keeper, seed),
            throttle: Throttle::new(settings.throttle),
            pending: LineQueue::new(),
            plan: WatchNames::new(&settings.watch),
            want_conns: false,
            want_sas: false,
            conns_reading: false,
            left_out: 0,
            left_out_first: None,
            added: NameList::new(LINE_MAX_BYTES - 40),
            link_up: false,
            link_since: 0,
            alerts: false,
            next_poll: 0,
            next_summary: settings.summary_interval_ms,
            next_status: 0,
            status_dirty: true,
            last_status: 0,
            sample_error_logged: false,
            counters: Counters::default(),
            command_streak: 0,
            command_errors_logged: KindsSeen::default(),
            link_error: Line::new(),
            unreachable_since: 0,
            reminders: 0,
            overflows_logged: Vec::new(),
            tallies: Tallies::new(),
            settings,
        }
    }

    fn say(&mut self, level: Level, text: Line) {
        if !self.pending.push(level, &text) {
            self.counters.lines_dropped = self.counters.lines_dropped.saturating_add(1);
        }
    }

    /// The next VICI call for the shell's worker, which runs them one at a time: the
    /// configuration first (the plan follows it), then the SAs, then the keeper's terminates and
    /// initiates. An `initiate` taken here counts as started now.
    pub fn next_job(&mut self, now: Millis) -> Option<Job> {
        if !self.link_up {
            return None;
        }
        if core::mem::take(&mut self.want_conns) {
            return Some(Job::ListConns);
        }
        if core::mem::take(&mut self.want_sas) {
            return Some(Job::ListSas);
        }
        let timeout_ms = self
            .settings
            .keeper
            .initiate_timeout_ms
            .min(u64::from(u32::MAX)) as u32;
        match self.keeper.next_job(now)? {
            KeeperAction::Initiate { child, ike } => {
                self.initiating.retain(|e| e.child != child);
                if self.initiating.is_full() {
                    self.initiating.remove(0);
                }
                let _ = self.initiating.push(Initiating {
                    child: child.clone(),
                    ike: Some(ike.clone()),
                    logged: None,
                    alerted: None,
                    duplicate: false,
                });
                Some(Job::Initiate {
                    child,
                    ike,
                    timeout_ms,
                })
            }
            KeeperAction::Terminate {
                child,
                child_uniqueid,
            } => Some(Job::Terminate {
                child,
                child_id: child_uniqueid,
                timeout_ms,
            }),
            KeeperAction::Reconcile | KeeperAction::Report(_) => None,
        }
    }

    /// Whether [`Agent::next_job`] has something.
    pub fn has_job(&self) -> bool {
        self.link_up && (self.want_conns || self.want_sas || self.keeper.has_job())
    }

    /// New settings (SIGHUP): history, DPD records, rates and tunnel state are kept.
    pub fn reload(&mut self, now: Millis, settings: Settings) {
        self.throttle.set_settings(settings.throttle);
        self.keeper.set_settings(settings.keeper);
        if settings.watch != self.settings.watch {
            self.plan.rename(&settings.watch);
        }
        if settings.summary_interval_ms != self.settings.summary_interval_ms {
            // The next summary on the new schedule, not one interval of the old one away.
            self.next_summary = now.saturating_add(settings.summary_interval_ms);
        }
        self.settings = settings;
        self.status_dirty = true;
        self.want_conns = true;
        self.want_sas = true;
        self.next_poll = now;
    }

    /// The route-based children (connection, child) the configuration files name, read by the
    /// shell at start, on SIGHUP and when a file changes: with `watch` empty they are kept from
    /// the next `list-conns` on, up or not (charon's `list-conns` never shows if_id or marks).
    pub fn on_configured_route_based<'a>(
        &mut self,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) {
        let left_out = self.plan.set_configured(pairs);
        if left_out > 0 {
            self.table_overflow(
                "route-based children from the configuration files",
                left_out,
            );
        }
        self.want_conns = true;
        self.want_sas = true;
    }

    /// What went wrong so far, and what is left out or missing now.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Load sampling interval right now (stretched when busy).
    pub fn sample_interval_ms(&self) -> u64 {
        self.throttle.sample_interval_ms()
    }

    /// One load sample.
    pub fn on_load(&mut self, now: Millis, sample: &LoadSample) {
        self.history.push(sample);
        self.rate.on_sample(sample, &self.settings.thresholds);
        self.throttle.on_load(now, sample.busy_permille);
        self.last_sample = Some(*sample);
        self.sample_error_logged = false;
    }

    /// /proc could not be read.
    pub fn on_sample_error(&mut self, _now: Millis, error: &ReadError) {
        self.counters.sample_errors = self.counters.sample_errors.saturating_add(1);
        if !self.sample_error_logged {
            self.sample_error_logged = true;
            self.say(
                Level::Warn,
                line(format_args!(
                    "cannot sample CPU load: {error} (verdicts will say so)"
                )),
            );
        }
    }

    /// swandog's own CPU time so far.
    pub fn on_own_cpu(&mut self, now: Millis, cpu_us: u64) {
        self.throttle.on_own_cpu(now, cpu_us);
    }

    /// The event connection came up (registered) or went down.
    pub fn on_vici_link(&mut self, now: Millis, up: bool, alerts: bool) {
        if up == self.link_up {
            return;
        }
        self.link_up = up;
        self.link_since = now;
        if up {
            self.link_error.clear();
        }
        self.alerts = alerts;
        self.status_dirty = true;
        if up {
            self.say(
                Level::Info,
                line(format_args!(
                    "connected to charon{}",
                    if alerts { " (alerts supported)" } else { "" }
                )),
            );
            // After a (re)connect, charon may have restarted: learn everything again.
            self.want_conns = true;
            self.want_sas = true;
            self.next_poll = now.saturating_add(self.throttle.poll_interval_ms());
        } else {
            self.counters.link_losses = self.counters.link_losses.saturating_add(1);
        }
    }

    /// A malformed or oversized frame (the connection survived).
    pub fn on_wire_fault(&mut self, _now: Millis, error: &CommandError) {
        self.counters.wire_faults = self.counters.wire_faults.saturating_add(1);
        // The first of each burst is logged; the count goes to status.
        if self.counters.wire_faults.is_power_of_two() {
            self.say(
                Level::Warn,
                line(format_args!(
                    "{error} ({} so far; connection kept)",
                    self.counters.wire_faults
                )),
            );
        }
    }

    /// The event connection broke or could not be made (the shell reconnects with backoff):
    /// the link is down. One line when the wait starts or its cause changes, then reminders on
    /// the keeper's "still down" schedule (1 min, 10 min, 1 h, then every 6 h), never one per
    /// attempt, whatever init does with our exit. Bytes that are not VICI count as wire faults,
    /// a deadline missed as a failed call.
    pub fn on_link_error(&mut self, now: Millis, error: &CommandError) {
        match error.kind {
            CommandErrorKind::Malformed => {
                self.counters.wire_faults = self.counters.wire_faults.saturating_add(1);
            }
            CommandErrorKind::Timeout => {
                self.counters.command_failures = self.counters.command_failures.saturating_add(1);
            }
            _ => {}
        }
        self.status_dirty = true;
        if self.link_up || error.text != self.link_error {
            self.link_error.clone_from(&error.text);
            self.unreachable_since = now;
            self.reminders = 0;
            self.say(
                Level::Warn,
                line(format_args!(
                    "{}; waiting for charon, retrying with backoff up to {}",
                    error.text,
                    Span(VICI_RECONNECT_MAX_MS)
                )),
            );
        } else {
            let down_for = now.saturating_sub(self.unreachable_since);
            if down_for >= summary_offset(self.reminders) {
                self.reminders = self.reminders.saturating_add(1);
                self.say(
                    Level::Warn,
                    line(format_args!(
                        "still no charon after {}: {}",
                        Span(down_for),
                        error.text
                    )),
                );
            }
        }
        self.on_vici_link(now, false, false);
    }

    /// One VICI event.
    pub fn on_event(&mut self, now: Millis, event: &Event) {
        match event {
            Event::Log(log) => self.on_log(now, log, None),
            Event::Alert { kind, ike } => self.on_alert(now, kind, ike.as_ref()),
            Event::IkeUpDown { up: true, ike } => {
                self.dpd.forget(&ike.name);
                self.keeper.on_ike_updown(now, true, ike, Cause::IkeDown);
                self.status_dirty = true;
            }
            Event::IkeUpDown { up: false, ike } => self.on_ike_down(now, ike),
            Event::ChildUpDown { up, ike } => {
                // Classified once, here; the keeper's line and ours say the same.
                let cause = classify_down(ike, true);
                if *up {
                    // A route-based child that comes up is watched at once, not at the next
                    // poll (charon started after swandog; a new connection loaded).
                    self.discover(core::slice::from_ref(ike));
                } else {
                    self.on_child_down(now, ike, cause);
                }
                self.keeper.on_child_updown(now, *up, ike, cause);
                self.status_dirty = true;
            }
        }
    }

    /// An `alert` (strongSwan 6.0.3+): charon's own word for what failed, taken before any
    /// log line's. `retransmit-send-timeout` also ends the DPD tracker's unanswered request.
    fn on_alert(&mut self, now: Millis, kind: &str, ike: Option<&Name>) {
        if kind == "retransmit-send-timeout" {
            if let Some(ike) = ike {
                self.dpd
                    .on_log(ike, LogSignal::GaveUp { retransmits: 0 }, now);
            }
        }
        let (Some(cause), Some(ike)) = (classify_alert(kind), ike) else {
            return;
        };
        // The running initiate of a child of this IKE_SA failed for this reason.
        let mut child = None;
        for e in self.initiating.iter_mut() {
            if e.ike.as_ref() == Some(ike) {
                e.alerted = Some(cause);
                child = Some(e.child.clone());
            }
        }
        let subject = child.unwrap_or_else(|| ike.clone());
        self.say_cause(now, subject, cause);
    }

    fn on_log(&mut self, now: Millis, log: &LogLine, initiating: Option<&Name>) {
        let Some(signal) = classify_log(&log.msg) else {
            return;
        };
        if let Some(ike) = &log.ike {
            self.dpd.on_log(ike, signal, now);
        }
        let Some(cause) = signal.failure_cause() else {
            return;
        };
        let subject = match (initiating, &log.ike) {
            (Some(child), _) => child.clone(),
            (None, Some(ike)) => ike.clone(),
            (None, None) => return,
        };
        self.say_cause(now, subject, cause);
    }

    /// The line for a failure cause the operator fixes in a configuration: once per (tunnel,
    /// cause) while it lasts, whether charon said it in an alert, a log line, or both.
    fn say_cause(&mut self, now: Millis, subject: Name, cause: Cause) {
        // One line per (tunnel, cause) while it lasts, not one per charon retry, even when
        // charon's lines alternate between causes.
        let fresh = match self
            .recent_causes
            .iter_mut()
            .find(|(n, c, _)| *n == subject && *c == cause)
        {
            Some(entry) if now.saturating_sub(entry.2) < 600_000 => false,
            Some(entry) => {
                entry.2 = now;
                true
            }
            None => {
                if self.recent_causes.is_full() {
                    self.recent_causes.remove(0);
                }
                let _ = self.recent_causes.push((subject.clone(), cause, now));
                true
            }
        };
        // No reply and DPD have their own lines (keeper summaries, verdicts), and so do deletes:
        // the updown event that follows says who deleted (a local terminate also logs "received
        // DELETE" for the peer's answer), so the log line is never a second verdict.
        if fresh && cause.is_config_error() {
            self.say(
                Level::Warn,
                line(format_args!(
                    "{subject}: {}: {}",
                    cause.label(),
                    cause.advice()
                )),
            );
        }
    }

    fn on_ike_down(&mut self, now: Millis, ike: &IkeSa) {
        let cause = classify_down(ike, false);
        let unanswered = self.dpd.take(&ike.name, now);
        // With MOBIKE, the initiator's liveness check runs as IKE_MOBIKE, not IKE_DPD.
        let mobike_dpd = ike.state == IkeState::Established
            && ike.tasks_active.contains("IKE_MOBIKE")
            && unanswered.is_some_and(|u| u.gave_up_at.is_some());
        let is_dpd =
            cause == Cause::Dpd || mobike_dpd || unanswered.is_some_and(|u| u.is_dpd_failure());
        // What the log and the task lists say together is the one cause the keeper gets too.
        let cause = if is_dpd { Cause::Dpd } else { cause };
        if is_dpd {
            let window = self.settings.dpd_window_ms;
            let from = unanswered
                .map(|u| u.since)
                .filter(|&since| now.saturating_sub(since) <= window)
                .unwrap_or(now.saturating_sub(window));
            let v = verdict(&self.history, from, now, &self.settings.thresholds);
            self.rate.on_dpd_failure(&v);
            if !self.tallies.on_dpd(&ike.name, v.load_correlated) {
                self.table_overflow("IKE_SAs in the metrics' DPD counts", 1);
            }
            let mut text = Line::new();
            let _ = format_dpd_line(&ike.name, &v, &mut text);
            self.say(Level::Warn, text);
            if self.dpd_records.is_full() {
                self.dpd_records.pop_front();
            }
            let _ = self.dpd_records.push_back(DpdRecord {
                ike: ike.name.clone(),
                at: now,
                verdict: v,
            });
            let class = self.rate.class();
            if class != self.rate_class {
                self.rate_class = class;
                self.say_rate(Level::Info);
            }
        } else {
            self.say(
                Level::Info,
                line(format_args!(
                    "{}: IKE_SA down ({})",
                    ike.name,
                    cause.label()
                )),
            );
        }
        self.keeper.on_ike_updown(now, false, ike, cause);
        self.status_dirty = true;
    }

    fn on_child_down(&mut self, _now: Millis, ike: &IkeSa, cause: Cause) {
        // A child that goes down with its IKE_SA was reported on the IKE_SA.
        if matches!(cause, Cause::PeerDeletedChild | Cause::LocalDeletedChild) {
            for child in &ike.children {
                if !self.keeper.is_watched(&child.name) {
                    self.say(
                        Level::Info,
                        line(format_args!(
                            "{}: CHILD_SA of {} down ({})",
                            child.name,
                            ike.name,
                            cause.label()
                        )),
                    );
                }
            }
        }
    }

    fn say_rate(&mut self, level: Level) {
        let mut text = Line::new();
        let _ = self.rate.format_summary(&mut text);
        self.say(level, text);
    }

    /// The control-log line of an `initiate` the worker is running for `child`.
    pub fn on_control_log(&mut self, now: Millis, child: &Name, log: &LogLine) {
        let signal = classify_log(&log.msg);
        let entry = match self.initiating.iter().position(|e| e.child == *child) {
            Some(i) => Some(i),
            None => self
                .initiating
                .push(Initiating {
                    child: child.clone(),
                    ike: None,
                    logged: None,
                    alerted: None,
                    duplicate: false,
                })
                .ok()
                .map(|()| self.initiating.len() - 1),
        };
        if let (Some(i), Some(signal)) = (entry, signal) {
            if signal == LogSignal::DuplicateChild {
                self.initiating[i].duplicate = true;
            }
            if let Some(cause) = signal.failure_cause() {
                self.initiating[i].logged = Some(cause);
            }
        }
        self.on_log(now, log, Some(child));
    }

    /// A `list-sas` starts (the worker is about to send it). Its IKE_SAs follow one by one
    /// through [`Agent::on_sa`] as they are read, then [`Agent::on_sas_done`]: nothing is
    /// collected in a table, so the number of IKE_SAs charon has is not limited by one. Events
    /// that arrive meanwhile know better than the snapshot and win.
    pub fn on_sas_begin(&mut self, now: Millis) {
        self.keeper.begin_snapshot(now);
    }

    /// One IKE_SA of the running `list-sas`.
    pub fn on_sa(&mut self, ike: &IkeSa) {
        self.discover(core::slice::from_ref(ike));
        self.keeper.snapshot_ike(ike);
    }

    /// The running `list-sas` ended; after a failure its partial view is dropped.
    pub fn on_sas_done(&mut self, _now: Millis, result: Result<(), &CommandError>) {
        match result {
            Ok(()) => {
                self.command_succeeded();
                self.keeper.end_snapshot();
                self.status_dirty = true;
            }
            Err(e) => {
                self.keeper.abort_snapshot();
                self.command_failed("list-sas", e);
            }
        }
    }

    /// A `list-conns` starts (the worker is about to send it). Its connections follow one by one
    /// (in parts of at most `CHILD_SAS_PER_IKE_MAX` children) through [`Agent::on_conn`], then
    /// [`Agent::on_conns_done`]: the watch plan is resolved against charon's configuration as it
    /// is now, with no table of it.
    pub fn on_conns_begin(&mut self, _now: Millis) {
        self.conns_reading = true;
        self.added = NameList::new(LINE_MAX_BYTES - 40);
        self.left_out = 0;
        self.left_out_first = None;
        self.plan.begin();
        self.keeper.begin_conns();
    }

    /// One connection (or one part of it) of the running `list-conns`.
    pub fn on_conn(&mut self, conn: &Conn) {
        if !self.conns_reading {
            return;
        }
        self.keeper
            .set_endpoints(&conn.name, &conn.local_addr, &conn.remote_addr);
        for child in &conn.children {
            self.keeper.conn_child(&child.name, &conn.name);
        }
        let Agent {
            plan,
            keeper,
            added,
            left_out,
            left_out_first,
            ..
        } = self;
        plan.conn(
            conn,
            &mut |child, ike, reason| match keeper.watch(child, ike, reason) {
                // One line per listing for everything added: a dozen children under one
                // connection is one line, not a dozen.
                Ok(true) => added.push(child),
                Ok(false) => {}
                Err(WatchError::Full | WatchError::NameTooLong) => {
                    *left_out = left_out.saturating_add(1);
                    if left_out_first.is_none() {
                        *left_out_first = Some(child.clone());
                    }
                }
            },
        );
    }

    /// The running `list-conns` ended; after a failure nothing is decided on its partial view.
    pub fn on_conns_done(&mut self, now: Millis, result: Result<(), &CommandError>) {
        if !core::mem::replace(&mut self.conns_reading, false) {
            return;
        }
        if let Err(e) = result {
            self.keeper.abort_conns();
            self.command_failed("list-conns", e);
            return;
        }
        self.command_succeeded();
        self.plan.end();
        if !self.added.is_empty() {
            let text = line(format_args!("watching {}", self.added));
            self.added = NameList::new(LINE_MAX_BYTES - 40);
            self.say(Level::Info, text);
        }
        // Children set aside: one line for those charon dropped, one for those `watch` no longer
        // names (a reload), whatever their number.
        let mut gone = NameList::new(LINE_MAX_BYTES - 120);
        let mut unnamed = NameList::new(LINE_MAX_BYTES - 120);
        self.keeper
            .end_conns(now, self.plan.is_empty(), &mut |child, configured| {
                if configured {
                    unnamed.push(child);
                } else {
                    gone.push(child);
                }
            });
        let unconfigured = gone.count;
        self.counters.children_unconfigured = self
            .counters
            .children_unconfigured
            .saturating_add(unconfigured);
        if !gone.is_empty() {
            self.say(
                Level::Warn,
                line(format_args!(
                    "{gone}: no longer in charon's configuration (swanctl --load-all dropped it?); not re-initiated until it is configured again"
                )),
            );
        }
        if !unnamed.is_empty() {
            self.say(
                Level::Info,
                line(format_args!(
                    "{unnamed}: no longer named in `watch`; not kept any more"
                )),
            );
        }
        let missing = self.plan.missing_count() as u32;
        // Once per change of the missing names; "all found" only after some were missing.
        let was_missing = self.counters.watch_names_missing > 0;
        if self.plan.missing_changed() && (missing > 0 || was_missing) {
            let level = if missing > 0 {
                Level::Warn
            } else {
                Level::Info
            };
            let text = line(format_args!("{}", self.plan.missing_line()));
            self.say(level, text);
        }
        self.counters.watch_names_missing = missing;
        if self.left_out != self.counters.watch_left_out {
            self.counters.watch_left_out = self.left_out;
            if self.left_out > 0 {
                self.counters.table_overflows =
                    self.counters.table_overflows.saturating_add(self.left_out);
                let first = self.left_out_first.clone().unwrap_or_default();
                self.say(
                    Level::Warn,
                    line(format_args!(
                        "watch list full: {} children not kept, {first} first (at most {WATCHED_CHILDREN_MAX} watched children, WATCHED_CHILDREN_MAX); name fewer in `watch`",
                        self.left_out
                    )),
                );
            }
        }
        // A child whose configuration just appeared is judged by the next snapshot.
        self.want_sas = true;
        self.status_dirty = true;
    }

    /// A VICI command finished.
    pub fn on_command_done(&mut self, now: Millis, done: CommandDone<'_>) {
        match done {
            CommandDone::Initiated { child, ike, result } => {
                let (cause, duplicate) =
                    match self.initiating.iter().position(|e| e.child == *child) {
                        Some(i) => {
                            let e = self.initiating.swap_remove(i);
                            (e.alerted.or(e.logged), e.duplicate)
                        }
                        None => (None, false),
                    };
                let outcome = match result {
                    Ok(reply) => {
                        self.command_succeeded();
                        // charon's own answer when the child's config is gone: "CHILD_SA config
                        // 'con2_2' not found" (vici_control.c). The plan follows at once.
                        let unconfigured = !reply.success
                            && reply.errmsg.contains("config '")
                            && reply.errmsg.ends_with("not found");
                        if unconfigured {
                            self.want_conns = true;
                        }
                        InitiateOutcome {
                            ok: reply.success,
                            duplicate,
                            cause: if unconfigured {
                                Some(Cause::NotConfigured)
                            } else {
                                cause
                            },
                        }
                    }
                    Err(e) => {
                        self.command_failed("initiate", e);
                        InitiateOutcome {
                            ok: false,
                            duplicate: false,
                            cause: Some(match e.kind {
                                CommandErrorKind::Timeout => Cause::CharonTimeout,
                                _ => Cause::ViciError,
                            }),
                        }
                    }
                };
                if !outcome.ok && !outcome.duplicate {
                    let cause = outcome.cause.unwrap_or(Cause::Unknown);
                    if !self.tallies.on_failure(child, cause) {
                        self.table_overflow("children in the metrics' failure counts", 1);
                    }
                }
                self.keeper.on_initiate_result(now, child, ike, outcome);
                self.status_dirty = true;
            }
            CommandDone::Terminated { child, result } => {
                if let Err(e) = result {
                    self.command_failed("terminate", e);
                } else {
                    self.command_succeeded();
                    self.say(
                        Level::Info,
                        line(format_args!(
                            "{child}: stale CHILD_SA terminated, re-initiating"
                        )),
                    );
                }
            }
        }
    }

    fn table_overflow(&mut self, what: &'static str, n: u32) {
        self.counters.table_overflows = self.counters.table_overflows.saturating_add(n);
        // An installation bigger than the tables stays so: say it once per table, then count.
        if self.overflows_logged.contains(&what) || self.overflows_logged.push(what).is_err() {
            return;
        }
        self.say(
            Level::Warn,
            line(format_args!(
                "table full: {n} {what} beyond capacity were not tracked (see limits; from now on only counted)"
            )),
        );
    }

    fn command_failed(&mut self, what: &str, error: &CommandError) {
        self.counters.command_failures = self.counters.command_failures.saturating_add(1);
        self.command_streak = self.command_streak.saturating_add(1);
        self.status_dirty = true;
        // A wedged or broken charon fails every call: one line per kind of failure, not per call.
        if self.command_errors_logged.insert(error.kind) {
            self.say(
                Level::Warn,
                line(format_args!(
                    "VICI {what} failed: {error} (further failures of this kind are only counted)"
                )),
            );
        }
    }

    fn command_succeeded(&mut self) {
        if self.command_streak > 0 {
            self.say(
                Level::Info,
                line(format_args!(
                    "VICI commands work again ({} failed calls before)",
                    self.command_streak
                )),
            );
        }
        self.command_streak = 0;
        self.command_errors_logged.clear();
    }

    /// Route-based children seen up are watched when the operator named none.
    fn discover(&mut self, ikes: &[IkeSa]) {
        if !self.plan.is_empty() {
            return;
        }
        for ike in ikes {
            for child in ike.children.iter().filter(|c| c.is_route_based()) {
                if !self.keeper.is_watched(&child.name) {
                    match self
                        .keeper
                        .watch(&child.name, &ike.name, WatchReason::RouteBasedSeen)
                    {
                        Ok(_) => self.say(
                            Level::Info,
                            line(format_args!(
                                "{}: watching (route-based child of {}, if-id {}/{})",
                                child.name, ike.name, child.if_id_in, child.if_id_out
                            )),
                        ),
                        Err(_) => self.table_overflow("watched children", 1),
                    }
                }
            }
            self.keeper
                .set_endpoints(&ike.name, &ike.local_host, &ike.remote_host);
        }
    }

    /// Runs what is due and hands out actions.
    pub fn poll(&mut self, now: Millis, emit: &mut dyn FnMut(Action)) {
        if let Some(change) = self.throttle.take_change() {
            self.keeper.set_pace(change.pace != Pace::Normal);
            let text = line(format_args!("{change}"));
            self.say(Level::Info, text);
            self.status_dirty = true;
        }
        if self.link_up && now >= self.next_poll {
            // The reconciling poll: the configuration (the plan follows it), then the SAs.
            self.want_conns = true;
            self.want_sas = true;
            self.next_poll = now.saturating_add(self.throttle.poll_interval_ms());
        }
        if self.link_up {
            // Reports go straight to the line queue; calls wait in the keeper (`next_job`).
            let Agent {
                keeper,
                pending,
                want_sas,
                status_dirty,
                ..
            } = self;
            // A report that does not fit the line queue stays in the keeper for the next poll
            // (`next_wake` is then "at once"): a site outage's burst of lines comes out over a
            // few polls instead of being dropped.
            keeper.poll(now, &mut |action| match action {
                KeeperAction::Reconcile => {
                    *want_sas = true;
                    true
                }
                KeeperAction::Report(report) => {
                    let text = line(format_args!("{report}"));
                    *status_dirty = true;
                    pending.push(report_level(&report), &text)
                }
                // Handed out by `next_job` only.
                KeeperAction::Initiate { .. } | KeeperAction::Terminate { .. } => true,
            });
        }
        if now >= self.summary_due() {
            self.say_rate(Level::Info);
            self.next_summary = now.saturating_add(self.settings.summary_interval_ms);
        }
        let status_every = if self.throttle.defer_non_urgent() {
            self.settings.status_interval_ms.saturating_mul(6)
        } else {
            self.settings.status_interval_ms
        };
        let dirty_due = self.status_dirty && now >= self.last_status + STATUS_MIN_GAP_MS;
        if dirty_due || now >= self.next_status {
            self.status_dirty = false;
            self.last_status = now;
            self.next_status = now.saturating_add(status_every);
            emit(Action::WriteStatus);
        }
        if self.has_job() {
            emit(Action::Work);
        }
        while let Some((level, text)) = self.pending.pop() {
            emit(Action::Log(level, text));
        }
    }

    /// When the DPD-rate summary goes out: deferred while busy, but never more than 4 intervals
    /// apart. A deferred one goes out on the first poll at normal pace (the pace only changes on
    /// a load sample, and the shell polls after each), so waking for it earlier would only spin.
    fn summary_due(&self) -> Millis {
        if self.throttle.defer_non_urgent() {
            let most = self.settings.summary_interval_ms.saturating_mul(3);
            self.next_summary.saturating_add(most)
        } else {
            self.next_summary
        }
    }

    /// When `poll` next has something to do (the shell sleeps until then, or until an input).
    pub fn next_wake(&self) -> Millis {
        let mut wake = self.next_status.min(self.summary_due());
        if self.status_dirty {
            wake = wake.min(self.last_status + STATUS_MIN_GAP_MS);
        }
        if self.link_up {
            wake = wake.min(self.next_poll);
            if let Some(k) = self.keeper.next_wake() {
                wake = wake.min(k);
            }
        }
        wake
    }

    /// The status view that `report/` renders (status file, `swandog status`, SIGUSR1 lines,
    /// metrics file).
    pub fn status(&self, now: Millis) -> Status<'_> {
        Status {
            now,
            link: Link {
                connected: self.link_up,
                alerts: self.alerts,
                since: self.link_since,
            },
            load: self.last_sample,
            history: &self.history,
            pace: PaceView {
                pace: self.throttle.pace(),
                changes: self.throttle.changes(),
                own_cpu_centi_permille: self.throttle.own_cpu_centi_permille(),
            },
            rate: self.rate,
            counters: self.counters,
            keeper_reports_dropped: self.keeper.reports_dropped(),
            tallies: &self.tallies,
            dpd_records: &self.dpd_records,
            keeper: &self.keeper,
            plan: &self.plan,
        }
    }
}

/// Names for one line, comma-separated while they fit in `room` bytes, then counted: displays
/// as `con2_1, con2_2 and 3 more`.
struct NameList {
    names: Line,
    room: usize,
    /// Names pushed in all.
    count: u32,
    /// Names that did not fit.
    more: u32,
}

impl NameList {
    fn new(room: usize) -> NameList {
        NameList {
            names: Line::new(),
            room,
            count: 0,
            more: 0,
        }
    }

    fn push(&mut self, name: &str) {
        self.count = self.count.saturating_add(1);
        let sep = if self.names.is_empty() { "" } else { ", " };
        if self.names.len() + sep.len() + name.len() <= self.room {
            let _ = write!(self.names, "{sep}{name}");
        } else {
            self.more = self.more.saturating_add(1);
        }
    }

    fn is_empty(&self) -> bool {
        self.count == 0
    }
}

impl core::fmt::Display for NameList {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.names)?;
        if self.more > 0 {
            write!(f, " and {} more", self.more)?;
        }
        Ok(())
    }
}

/// Going down and staying down are warnings; coming back is news.
fn report_level(report: &KeeperReport) -> Level {
    match report.kind {
        ReportKind::Up { .. } | ReportKind::Stable { .. } | ReportKind::DuplicateIkeGone => {
            Level::Info
        }
        _ => Level::Warn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reload_moves_the_next_summary_to_the_new_interval() {
        let mut agent = Agent::new(Settings::default(), 1);
        let shorter = Settings {
            summary_interval_ms: 600_000,
            ..Settings::default()
        };
        agent.reload(1_000, shorter.clone());
        assert_eq!(agent.summary_due(), 601_000);
        // The same interval again keeps the schedule.
        agent.reload(5_000, shorter);
        assert_eq!(agent.summary_due(), 601_000);
    }
}
