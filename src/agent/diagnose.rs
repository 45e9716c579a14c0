//! Why an SA went down or failed to come up, from `ike-updown` / `child-updown` task lists and
//! charon's log lines; and when the request that was never answered began.
//!
//! The log texts are charon's own (strongSwan 5.9.8 – 6.0: `task_manager_v2.c`,
//! `task_manager_v1.c`, `ike_sa.c`, `dpd_timeout_job.c`, `ike_init.c`, `child_create.c`,
//! `quick_mode.c`, `psk_authenticator.c`, `ike_delete.c`, `child_delete.c`,
//! `message.c`), as the VICI `log` event carries them (level ≤ 1, no `[IKE]` prefix).
//!
//! ```
//! use swandog::agent::diagnose::{classify_ike_down, classify_log, Cause, LogSignal};
//!
//! let cause = classify_ike_down("ESTABLISHED", ["IKE_DPD"], []);
//! assert_eq!(cause, Cause::Dpd);
//!
//! let signal = classify_log("received NO_PROPOSAL_CHOSEN notify error").unwrap();
//! assert_eq!(signal, LogSignal::ProposalMismatch);
//! assert_eq!(signal.failure_cause(), Some(Cause::ProposalMismatch));
//! assert!(Cause::ProposalMismatch.advice().starts_with("proposal / DH group mismatch"));
//! ```

use heapless::{String, Vec};

pub use crate::agent::cause::Cause;
use crate::agent::Millis;
use crate::limits::{DPD_TRACKED_IKES_MAX, DPD_UNANSWERED_MAX_MS, NAME_MAX_BYTES};
use crate::vici::sa::IkeSa;

/// The cause an `alert` (strongSwan 6.0.3+, vici README) names, when it names one the keeper
/// and the operator act on: charon's own classification, taken before any log line's.
pub fn classify_alert(kind: &str) -> Option<Cause> {
    Some(match kind {
        "retransmit-send-timeout" | "peer-init-unreachable" | "half-open-timeout" => Cause::NoReply,
        "proposal-mismatch-ike" | "proposal-mismatch-child" => Cause::ProposalMismatch,
        "ts-mismatch" => Cause::TsMismatch,
        "local-auth-failed" | "peer-auth-failed" => Cause::AuthFailed,
        "install-child-sa-failed" | "install-child-policy-failed" => Cause::InstallFailed,
        _ => return None,
    })
}

/// Classifies the down of an updown event: `child_event` for a `child-updown` (then a child
/// that went with its IKE_SA gets the IKE_SA's cause), else an `ike-updown`. The one place a
/// down is classified; everything after it passes the [`Cause`] on.
pub fn classify_down(ike: &IkeSa, child_event: bool) -> Cause {
    let state = ike.state.as_str();
    let (active, passive) = (ike.tasks_active.names(), ike.tasks_passive.names());
    if child_event {
        classify_child_down(state, active, passive)
    } else {
        classify_ike_down(state, active, passive)
    }
}

/// Classifies an `ike-updown` *down* by the IKE section's `state`, `tasks-active` and
/// `tasks-passive` (charon's names, e.g. `vici::sa::Tasks::names()`).
pub fn classify_ike_down<'a>(
    state: &str,
    tasks_active: impl IntoIterator<Item = &'a str>,
    tasks_passive: impl IntoIterator<Item = &'a str>,
) -> Cause {
    ike_cause(state, &Seen::of(tasks_active), &Seen::of(tasks_passive))
}

/// Classifies a `child-updown` *down* by its IKE section. A child that goes down with its IKE_SA
/// gets the IKE_SA's cause — the caller should count that failure once, on the `ike-updown`.
pub fn classify_child_down<'a>(
    ike_state: &str,
    tasks_active: impl IntoIterator<Item = &'a str>,
    tasks_passive: impl IntoIterator<Item = &'a str>,
) -> Cause {
    let active = Seen::of(tasks_active);
    let passive = Seen::of(tasks_passive);
    let ike_lives = ike_state != "DELETING" && ike_state != "DESTROYING";
    if ike_lives && passive.child_delete && !passive.ike_delete {
        Cause::PeerDeletedChild
    } else if ike_lives && active.child_delete && !active.ike_delete {
        Cause::LocalDeletedChild
    } else {
        match ike_cause(ike_state, &active, &passive) {
            Cause::IkeDown => Cause::ChildDown,
            cause => cause,
        }
    }
}

fn ike_cause(state: &str, active: &Seen, passive: &Seen) -> Cause {
    if passive.ike_delete {
        Cause::PeerDeletedIke
    } else if active.ike_delete {
        Cause::LocalDeletedIke
    } else if active.dpd && state != "DELETING" {
        Cause::Dpd
    } else {
        Cause::IkeDown
    }
}

#[derive(Default)]
struct Seen {
    ike_delete: bool,
    child_delete: bool,
    dpd: bool,
}

impl Seen {
    fn of<'a>(tasks: impl IntoIterator<Item = &'a str>) -> Seen {
        let mut seen = Seen::default();
        for task in tasks {
            match task {
                "IKE_DELETE" => seen.ike_delete = true,
                "CHILD_DELETE" => seen.child_delete = true,
                // With MOBIKE, charon's original initiator runs DPD as an IKE_MOBIKE task
                // (`queue_dpd` in task_manager_v2.c); a MOBIKE update that gets no reply is the
                // same dead path.
                "IKE_DPD" | "ISAKMP_DPD" | "IKE_MOBIKE" => seen.dpd = true,
                _ => {}
            }
        }
        seen
    }
}

/// A charon log line that matters to swandog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSignal {
    /// `sending DPD request`.
    DpdRequestSent,
    /// `retransmit N of request with message ID M` (IKEv2) or
    /// `sending retransmit N of request message ID M, seq S` (IKEv1).
    Retransmit {
        /// N.
        attempt: u32,
    },
    /// `parsed <EXCHANGE> response <ID> [ … ]`, or an IKEv1 `N(DPD_ACK)`: the peer answered.
    ResponseReceived,
    /// `giving up after N retransmits`: any IKEv2 (or IKEv1) request; a DPD failure when a DPD
    /// request was the one outstanding.
    GaveUp {
        /// N.
        retransmits: u32,
    },
    /// `DPD check timed out, enforcing DPD action` (IKEv1).
    DpdTimedOut,
    /// `establishing IKE_SA failed, peer not responding` (`retrying` false) or
    /// `peer not responding, trying again (x/y)` (`retrying` true).
    PeerNotResponding {
        /// Whether charon tries again by itself (keyingtries left).
        retrying: bool,
    },
    /// `received NO_PROPOSAL_CHOSEN notify error`, `no acceptable proposal found`,
    /// `no matching proposal found…`, `received proposals unacceptable`, `N(NO_PROP)`.
    ProposalMismatch,
    /// `received TS_UNACCEPTABLE notify, no CHILD_SA built`, `traffic selectors … unacceptable`,
    /// `no acceptable traffic selectors found`, `no matching CHILD_SA config found for …`,
    /// `N(TS_UNACCEPT)`.
    TsMismatch,
    /// `received AUTHENTICATION_FAILED notify error`, `tried N shared key… but MAC mismatched`,
    /// `no shared key found for …`, `no matching peer config found`, `constraint check failed…`,
    /// `N(AUTH_FAILED)`.
    AuthFailed,
    /// `received DELETE for IKE_SA <name>[<id>]`.
    PeerDeletedIke,
    /// `received DELETE for ESP CHILD_SA with SPI …` (or AH).
    PeerDeletedChild,
    /// `… due to existing duplicate …`: harmless, the child is already up.
    DuplicateChild,
}

impl LogSignal {
    /// The failure this line points to, if it is one.
    pub fn failure_cause(self) -> Option<Cause> {
        match self {
            LogSignal::GaveUp { .. } | LogSignal::PeerNotResponding { .. } => Some(Cause::NoReply),
            LogSignal::DpdTimedOut => Some(Cause::Dpd),
            LogSignal::ProposalMismatch => Some(Cause::ProposalMismatch),
            LogSignal::TsMismatch => Some(Cause::TsMismatch),
            LogSignal::AuthFailed => Some(Cause::AuthFailed),
            LogSignal::PeerDeletedIke => Some(Cause::PeerDeletedIke),
            LogSignal::PeerDeletedChild => Some(Cause::PeerDeletedChild),
            LogSignal::DpdRequestSent
            | LogSignal::Retransmit { .. }
            | LogSignal::ResponseReceived
            | LogSignal::DuplicateChild => None,
        }
    }
}

/// Recognises one charon log message (the VICI `log` event's `msg`).
pub fn classify_log(msg: &str) -> Option<LogSignal> {
    let msg = msg.trim();
    if msg.starts_with("sending DPD request") {
        return Some(LogSignal::DpdRequestSent);
    }
    if let Some(rest) = msg
        .strip_prefix("retransmit ")
        .or_else(|| msg.strip_prefix("sending retransmit "))
    {
        let (n, rest) = leading_number(rest)?;
        let request = rest.starts_with(" of request with message ID")
            || rest.starts_with(" of request message ID");
        return request.then_some(LogSignal::Retransmit { attempt: n });
    }
    if let Some(rest) = msg.strip_prefix("giving up after ") {
        let (n, rest) = leading_number(rest)?;
        return (rest == " retransmits").then_some(LogSignal::GaveUp { retransmits: n });
    }
    if msg.starts_with("DPD check timed out") {
        return Some(LogSignal::DpdTimedOut);
    }
    if msg.starts_with("establishing IKE_SA failed, peer not responding") {
        return Some(LogSignal::PeerNotResponding { retrying: false });
    }
    if msg.starts_with("peer not responding, trying again") {
        return Some(LogSignal::PeerNotResponding { retrying: true });
    }
    if let Some(signal) = mismatch(msg) {
        return Some(signal);
    }
    if msg.starts_with("received DELETE for IKE_SA ") {
        return Some(LogSignal::PeerDeletedIke);
    }
    if msg.starts_with("received DELETE for ESP CHILD_SA with SPI ")
        || msg.starts_with("received DELETE for AH CHILD_SA with SPI ")
    {
        return Some(LogSignal::PeerDeletedChild);
    }
    if msg.contains("due to existing duplicate") {
        return Some(LogSignal::DuplicateChild);
    }
    if let Some(rest) = msg.strip_prefix("parsed ") {
        let mut words = rest.split(' ');
        let _exchange = words.next();
        if words.next() == Some("response") || rest.contains("N(DPD_ACK)") {
            return Some(LogSignal::ResponseReceived);
        }
    }
    None
}

/// Proposal, traffic selector and authentication failures, seen from either side.
fn mismatch(msg: &str) -> Option<LogSignal> {
    let received = msg.starts_with("received ");
    // The `parsed …` / `generating …` message summaries name notifies by their short names.
    let summary = msg.starts_with("parsed ") || msg.starts_with("generating ");
    if (received && msg.contains("NO_PROPOSAL_CHOSEN"))
        || (summary && msg.contains("N(NO_PROP)"))
        || msg.starts_with("no acceptable proposal found")
        || msg.starts_with("no matching proposal found")
        || msg.starts_with("received proposals unacceptable")
    {
        return Some(LogSignal::ProposalMismatch);
    }
    if (received && msg.contains("TS_UNACCEPTABLE"))
        || (summary && msg.contains("N(TS_UNACCEPT)"))
        || msg.starts_with("no acceptable traffic selectors found")
        || msg.starts_with("no matching CHILD_SA config found for ")
        || (msg.starts_with("traffic selectors ") && msg.ends_with(" unacceptable"))
    {
        return Some(LogSignal::TsMismatch);
    }
    if (received && msg.contains("AUTHENTICATION_FAILED"))
        || (summary && msg.contains("N(AUTH_FAILED)"))
        || (msg.starts_with("tried ") && msg.ends_with("but MAC mismatched"))
        || msg.starts_with("no shared key found for ")
        || msg.starts_with("no matching peer config found")
        || msg.starts_with("constraint check failed")
    {
        return Some(LogSignal::AuthFailed);
    }
    None
}

/// The decimal number at the start of `text` and what follows it.
fn leading_number(text: &str) -> Option<(u32, &str)> {
    let end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    Some((text[..end].parse().ok()?, &text[end..]))
}

/// The request an IKE_SA is waiting on an answer for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unanswered {
    /// When it began: the `sending DPD request` line, or — for other requests — their first
    /// retransmit (one retransmit timeout, 4 s by default, after the request really went out).
    pub since: Millis,
    /// Whether a DPD request was among what went unanswered.
    pub dpd: bool,
    /// When charon gave up on it, if it did.
    pub gave_up_at: Option<Millis>,
}

impl Unanswered {
    /// Whether charon gave up on a DPD request: a DPD failure even if the down event says
    /// [`Cause::IkeDown`] (IKEv1).
    pub fn is_dpd_failure(&self) -> bool {
        self.dpd && self.gave_up_at.is_some()
    }
}

/// Per IKE_SA name: since when a request has gone unanswered (so a verdict window can start at
/// the last successful exchange), in fixed capacity.
///
/// Feed it every classified log line with its `ikesa-name`; on an `ike-updown` down, [`take`]
/// the entry; on an up, [`forget`] it.
///
/// [`take`]: DpdTracker::take
/// [`forget`]: DpdTracker::forget
#[derive(Debug, Clone, Default)]
pub struct DpdTracker {
    open: Vec<(String<NAME_MAX_BYTES>, Unanswered), DPD_TRACKED_IKES_MAX>,
    dropped: u32,
}

impl DpdTracker {
    /// An empty tracker.
    pub const fn new() -> Self {
        DpdTracker {
            open: Vec::new(),
            dropped: 0,
        }
    }

    /// Takes in one classified log line about IKE_SA `ike`, seen at `at`.
    pub fn on_log(&mut self, ike: &str, signal: LogSignal, at: Millis) {
        let current = self.position(ike, at);
        match signal {
            LogSignal::DpdRequestSent => match current {
                // An IKEv1 DPD repeats while the first is unanswered: keep the first.
                Some(i) => self.open[i].1.dpd = true,
                None => self.open_new(ike, at, true, None),
            },
            LogSignal::Retransmit { .. } if current.is_none() => {
                self.open_new(ike, at, false, None)
            }
            LogSignal::GaveUp { .. } | LogSignal::DpdTimedOut => {
                let dpd = signal == LogSignal::DpdTimedOut;
                match current {
                    Some(i) => {
                        let entry = &mut self.open[i].1;
                        entry.dpd |= dpd;
                        entry.gave_up_at = Some(at);
                    }
                    None => self.open_new(ike, at, dpd, Some(at)),
                }
            }
            // Answered, or a failed IKE_SA_INIT that will never see an `ike-updown`.
            LogSignal::ResponseReceived | LogSignal::PeerNotResponding { .. } => {
                if let Some(i) = current {
                    self.open.swap_remove(i);
                }
            }
            _ => {}
        }
    }

    /// What `ike` is waiting on at `now`, if anything (entries older than
    /// [`DPD_UNANSWERED_MAX_MS`] are stale).
    pub fn get(&self, ike: &str, now: Millis) -> Option<Unanswered> {
        self.open
            .iter()
            .find(|(name, u)| name == ike && !stale(u, now))
            .map(|(_, u)| *u)
    }

    /// Like [`get`](DpdTracker::get), and forgets it: call on the `ike-updown` down.
    pub fn take(&mut self, ike: &str, now: Millis) -> Option<Unanswered> {
        let found = self.get(ike, now);
        self.forget(ike);
        found
    }

    /// Forgets `ike` (it came up, or went down for a reason that is not a DPD failure).
    pub fn forget(&mut self, ike: &str) {
        self.open.retain(|(name, _)| name != ike);
    }

    /// Entries not kept: evicted when full, or names longer than `NAME_MAX_BYTES`.
    pub fn dropped(&self) -> u32 {
        self.dropped
    }

    /// The live entry for `ike`; a stale one is removed.
    fn position(&mut self, ike: &str, at: Millis) -> Option<usize> {
        let i = self.open.iter().position(|(name, _)| name == ike)?;
        if stale(&self.open[i].1, at) {
            self.open.swap_remove(i);
            return None;
        }
        Some(i)
    }

    fn open_new(&mut self, ike: &str, at: Millis, dpd: bool, gave_up_at: Option<Millis>) {
        let Ok(name) = String::try_from(ike) else {
            self.dropped = self.dropped.saturating_add(1);
            return;
        };
        if self.open.is_full() {
            if let Some(oldest) = (0..self.open.len()).min_by_key(|&i| self.open[i].1.since) {
                self.open.swap_remove(oldest);
                self.dropped = self.dropped.saturating_add(1);
            }
        }
        let entry = Unanswered {
            since: at,
            dpd,
            gave_up_at,
        };
        // Cannot fail: one slot was freed above if needed.
        let _ = self.open.push((name, entry));
    }
}

fn stale(u: &Unanswered, now: Millis) -> bool {
    now.saturating_sub(u.since) > DPD_UNANSWERED_MAX_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpd_task_on_established_ike_down_is_a_dpd_failure() {
        assert_eq!(
            classify_ike_down("ESTABLISHED", ["IKE_DPD"], []),
            Cause::Dpd
        );
        assert_eq!(
            classify_ike_down("ESTABLISHED", ["CHILD_REKEY", "ISAKMP_DPD"], []),
            Cause::Dpd
        );
        assert!(Cause::Dpd.is_dpd_failure());
    }

    #[test]
    fn mobike_initiator_dpd_failure_is_a_dpd_failure() {
        assert_eq!(
            classify_ike_down("ESTABLISHED", ["IKE_MOBIKE"], []),
            Cause::Dpd
        );
    }

    #[test]
    fn peer_delete_is_not_a_dpd_failure() {
        let cause = classify_ike_down("DELETING", [], ["IKE_DELETE"]);
        assert_eq!(cause, Cause::PeerDeletedIke);
        assert!(!cause.is_dpd_failure());
        // Even with a DPD queued on this side at the time.
        assert_eq!(
            classify_ike_down("DELETING", ["IKE_DPD"], ["IKE_DELETE"]),
            Cause::PeerDeletedIke
        );
    }

    #[test]
    fn local_terminate_is_not_a_dpd_failure() {
        let cause = classify_ike_down("DELETING", ["IKE_DELETE"], []);
        assert_eq!(cause, Cause::LocalDeletedIke);
        assert!(!cause.is_dpd_failure());
        assert_eq!(
            classify_ike_down("DELETING", ["IKE_DELETE", "IKE_DPD"], []),
            Cause::LocalDeletedIke
        );
    }

    #[test]
    fn vici_task_sets_plug_straight_in() {
        use crate::vici::sa::{IkeState, Tasks};
        let mut active = Tasks::default();
        active.insert(b"IKE_DPD");
        let passive = Tasks::default();
        let state = IkeState::Established.as_str();
        assert_eq!(
            classify_ike_down(state, active.names(), passive.names()),
            Cause::Dpd
        );
        assert_eq!(
            classify_child_down(state, active.names(), passive.names()),
            Cause::Dpd
        );
    }

    #[test]
    fn down_without_telling_tasks_is_ike_down() {
        assert_eq!(classify_ike_down("ESTABLISHED", [], []), Cause::IkeDown);
        assert_eq!(
            classify_ike_down("DELETING", ["IKE_DPD"], []),
            Cause::IkeDown
        );
    }

    #[test]
    fn child_delete_under_living_ike_is_child_only() {
        assert_eq!(
            classify_child_down("ESTABLISHED", [], ["CHILD_DELETE"]),
            Cause::PeerDeletedChild
        );
        assert_eq!(
            classify_child_down("ESTABLISHED", ["CHILD_DELETE"], []),
            Cause::LocalDeletedChild
        );
    }

    #[test]
    fn child_going_down_with_its_ike_gets_the_ike_cause() {
        assert_eq!(
            classify_child_down("ESTABLISHED", ["IKE_DPD"], []),
            Cause::Dpd
        );
        assert_eq!(
            classify_child_down("DELETING", [], ["IKE_DELETE", "CHILD_DELETE"]),
            Cause::PeerDeletedIke
        );
    }

    /// Exact lines from charon's sources / a 5.9.8 lab log, with what they must mean.
    const LINES: &[(&str, Option<LogSignal>)] = &[
        ("sending DPD request", Some(LogSignal::DpdRequestSent)),
        (
            "retransmit 1 of request with message ID 12",
            Some(LogSignal::Retransmit { attempt: 1 }),
        ),
        (
            "sending retransmit 3 of request message ID 1716263386, seq 4",
            Some(LogSignal::Retransmit { attempt: 3 }),
        ),
        (
            "sending retransmit 1 of response message ID 0, seq 2",
            None,
        ),
        (
            "giving up after 5 retransmits",
            Some(LogSignal::GaveUp { retransmits: 5 }),
        ),
        ("giving up after 2 path probings", None),
        ("giving up after 5 retries", None),
        (
            "DPD check timed out, enforcing DPD action",
            Some(LogSignal::DpdTimedOut),
        ),
        (
            "establishing IKE_SA failed, peer not responding",
            Some(LogSignal::PeerNotResponding { retrying: false }),
        ),
        (
            "peer not responding, trying again (2/3)",
            Some(LogSignal::PeerNotResponding { retrying: true }),
        ),
        ("proper IKE_SA delete failed, peer not responding", None),
        (
            "received NO_PROPOSAL_CHOSEN notify error",
            Some(LogSignal::ProposalMismatch),
        ),
        (
            "received NO_PROPOSAL_CHOSEN notify, no CHILD_SA built",
            Some(LogSignal::ProposalMismatch),
        ),
        (
            "received NO_PROPOSAL_CHOSEN error notify",
            Some(LogSignal::ProposalMismatch),
        ),
        ("no acceptable proposal found", Some(LogSignal::ProposalMismatch)),
        (
            "no matching proposal found, trying alternative config",
            Some(LogSignal::ProposalMismatch),
        ),
        (
            "no matching proposal found, sending NO_PROPOSAL_CHOSEN",
            Some(LogSignal::ProposalMismatch),
        ),
        (
            "received proposals unacceptable",
            Some(LogSignal::ProposalMismatch),
        ),
        (
            "parsed IKE_SA_INIT response 0 [ N(NO_PROP) ]",
            Some(LogSignal::ProposalMismatch),
        ),
        (
            "generating CREATE_CHILD_SA response 2 [ N(NO_PROP) ]",
            Some(LogSignal::ProposalMismatch),
        ),
        (
            "received TS_UNACCEPTABLE notify, no CHILD_SA built",
            Some(LogSignal::TsMismatch),
        ),
        (
            "traffic selectors 10.1.0.0/24 === 10.2.0.0/32 unacceptable",
            Some(LogSignal::TsMismatch),
        ),
        (
            "no acceptable traffic selectors found",
            Some(LogSignal::TsMismatch),
        ),
        (
            "no matching CHILD_SA config found for 10.1.0.0/24 === 10.2.0.0/24",
            Some(LogSignal::TsMismatch),
        ),
        (
            "parsed IKE_AUTH response 1 [ IDr AUTH N(TS_UNACCEPT) ]",
            Some(LogSignal::TsMismatch),
        ),
        (
            "received AUTHENTICATION_FAILED notify error",
            Some(LogSignal::AuthFailed),
        ),
        (
            "received AUTHENTICATION_FAILED error notify",
            Some(LogSignal::AuthFailed),
        ),
        (
            "tried 1 shared key for 'moon' - 'sun', but MAC mismatched",
            Some(LogSignal::AuthFailed),
        ),
        (
            "no shared key found for 'moon' - 'sun'",
            Some(LogSignal::AuthFailed),
        ),
        ("no matching peer config found", Some(LogSignal::AuthFailed)),
        (
            "generating IKE_AUTH response 1 [ N(AUTH_FAILED) ]",
            Some(LogSignal::AuthFailed),
        ),
        (
            "received DELETE for IKE_SA con1[3]",
            Some(LogSignal::PeerDeletedIke),
        ),
        ("received DELETE for different IKE_SA, ignored", None),
        (
            "received DELETE for ESP CHILD_SA with SPI c1a2b3c4",
            Some(LogSignal::PeerDeletedChild),
        ),
        (
            "received DELETE for unknown ESP CHILD_SA with SPI c1a2b3c4",
            None,
        ),
        (
            "not establishing CHILD_SA con1{5} due to existing duplicate {3} with SPIs c2e0f1a0_i c8b1d2e3_o and TS 198.51.100.0/24 === 203.0.113.0/24",
            Some(LogSignal::DuplicateChild),
        ),
        (
            "parsed INFORMATIONAL response 5 [ ]",
            Some(LogSignal::ResponseReceived),
        ),
        (
            "parsed INFORMATIONAL_V1 request 2817364502 [ HASH N(DPD_ACK) ]",
            Some(LogSignal::ResponseReceived),
        ),
        ("parsed INFORMATIONAL request 7 [ ]", None),
        ("parsed INFORMATIONAL request 2 [ D ]", None),
        ("sending packet: from 192.0.2.1[4500] to 192.0.2.2[4500] (80 bytes)", None),
        ("", None),
        ("retransmit x of request", None),
        ("giving up after 99999999999 retransmits", None),
    ];

    #[test]
    fn charon_log_lines_are_recognised_exactly() {
        for (line, want) in LINES {
            assert_eq!(classify_log(line), *want, "{line:?}");
        }
    }

    #[test]
    fn each_failure_line_maps_to_its_cause_and_advice() {
        let cause = |l: &str| classify_log(l).and_then(LogSignal::failure_cause);
        assert_eq!(
            cause("establishing IKE_SA failed, peer not responding"),
            Some(Cause::NoReply)
        );
        assert_eq!(
            cause("received TS_UNACCEPTABLE notify, no CHILD_SA built"),
            Some(Cause::TsMismatch)
        );
        assert_eq!(
            cause("DPD check timed out, enforcing DPD action"),
            Some(Cause::Dpd)
        );
        assert_eq!(cause("sending DPD request"), None);
        assert_eq!(
            Cause::NoReply.advice(),
            "peer down or UDP 500/4500 blocked: check the peer and the path"
        );
        assert_eq!(
            Cause::TsMismatch.advice(),
            "traffic selector mismatch (e.g. /24 vs /32): make local_ts/remote_ts match the peer"
        );
        assert_eq!(
            Cause::AuthFailed.advice(),
            "PSK or identity mismatch: check the secret and local/remote id"
        );
        assert_eq!(Cause::AuthFailed.label(), "auth-failed");
    }

    fn feed(t: &mut DpdTracker, ike: &str, at: Millis, line: &str) {
        let signal = classify_log(line).unwrap();
        t.on_log(ike, signal, at);
    }

    #[test]
    fn unanswered_dpd_is_dated_from_its_first_request() {
        let mut t = DpdTracker::new();
        feed(&mut t, "con1", 10_000, "sending DPD request");
        feed(
            &mut t,
            "con1",
            14_000,
            "retransmit 1 of request with message ID 7",
        );
        feed(
            &mut t,
            "con1",
            21_200,
            "retransmit 2 of request with message ID 7",
        );
        feed(&mut t, "con1", 175_000, "giving up after 5 retransmits");
        let u = t.take("con1", 175_000).unwrap();
        assert_eq!(u.since, 10_000);
        assert!(u.is_dpd_failure());
        assert_eq!(t.get("con1", 175_000), None, "taken");
    }

    #[test]
    fn an_answered_dpd_is_forgotten() {
        let mut t = DpdTracker::new();
        feed(&mut t, "con1", 10_000, "sending DPD request");
        feed(
            &mut t,
            "con1",
            10_020,
            "parsed INFORMATIONAL response 5 [ ]",
        );
        assert_eq!(t.get("con1", 10_020), None);
        feed(&mut t, "con1", 40_000, "sending DPD request");
        assert_eq!(t.get("con1", 40_000).unwrap().since, 40_000);
    }

    #[test]
    fn a_retransmitted_rekey_opens_the_window_at_its_first_retransmit() {
        let mut t = DpdTracker::new();
        feed(
            &mut t,
            "con2",
            5_000,
            "retransmit 1 of request with message ID 3",
        );
        feed(
            &mut t,
            "con2",
            12_000,
            "retransmit 2 of request with message ID 3",
        );
        let u = t.get("con2", 12_000).unwrap();
        assert_eq!((u.since, u.dpd, u.gave_up_at), (5_000, false, None));
        assert!(!u.is_dpd_failure());
    }

    #[test]
    fn ikev1_dpd_timeout_keeps_the_first_of_repeated_requests() {
        let mut t = DpdTracker::new();
        feed(&mut t, "v1", 30_000, "sending DPD request");
        feed(&mut t, "v1", 60_000, "sending DPD request");
        feed(
            &mut t,
            "v1",
            150_000,
            "DPD check timed out, enforcing DPD action",
        );
        let u = t.take("v1", 150_000).unwrap();
        assert_eq!((u.since, u.gave_up_at), (30_000, Some(150_000)));
        assert!(u.is_dpd_failure());
    }

    #[test]
    fn ikes_are_tracked_separately() {
        let mut t = DpdTracker::new();
        feed(&mut t, "a", 1_000, "sending DPD request");
        feed(&mut t, "b", 2_000, "sending DPD request");
        feed(&mut t, "a", 1_010, "parsed INFORMATIONAL response 9 [ ]");
        assert_eq!(t.get("a", 3_000), None);
        assert_eq!(t.get("b", 3_000).unwrap().since, 2_000);
    }

    #[test]
    fn a_failed_initiation_leaves_nothing_behind() {
        let mut t = DpdTracker::new();
        feed(
            &mut t,
            "c",
            1_000,
            "retransmit 1 of request with message ID 0",
        );
        feed(&mut t, "c", 9_000, "giving up after 5 retransmits");
        feed(
            &mut t,
            "c",
            9_000,
            "establishing IKE_SA failed, peer not responding",
        );
        assert_eq!(t.get("c", 9_000), None);
    }

    #[test]
    fn stale_entries_do_not_stretch_a_window() {
        let mut t = DpdTracker::new();
        feed(&mut t, "con1", 0, "sending DPD request");
        let later = DPD_UNANSWERED_MAX_MS + 1;
        assert_eq!(t.get("con1", later), None);
        feed(&mut t, "con1", later, "sending DPD request");
        assert_eq!(t.get("con1", later).unwrap().since, later);
    }

    #[test]
    fn tracker_size_is_small() {
        let size = core::mem::size_of::<DpdTracker>();
        println!("size_of::<DpdTracker>() = {size} bytes for {DPD_TRACKED_IKES_MAX} IKE_SAs");
        // Per IKE_SA its name plus at most 48 bytes of bookkeeping (the name's length and three
        // timestamps); measured 1 680 B on x86_64 (this test, `-- --nocapture`), less on 32-bit
        // targets. Fails on a table that grows by accident (a heap type, a second copy).
        let bound = DPD_TRACKED_IKES_MAX * (crate::limits::NAME_MAX_BYTES + 48);
        assert!(
            size <= bound,
            "size_of::<DpdTracker>() = {size} B > {bound} B"
        );
    }

    #[test]
    fn a_full_tracker_evicts_the_oldest_and_counts_it() {
        let mut t = DpdTracker::new();
        for i in 0..=DPD_TRACKED_IKES_MAX as u64 {
            t.on_log(&format!("ike{i}"), LogSignal::DpdRequestSent, 1_000 + i);
        }
        assert_eq!(t.dropped(), 1);
        assert_eq!(t.get("ike0", 2_000), None);
        assert!(t
            .get(&format!("ike{DPD_TRACKED_IKES_MAX}"), 2_000)
            .is_some());
        t.on_log(
            &"x".repeat(NAME_MAX_BYTES + 1),
            LogSignal::DpdRequestSent,
            0,
        );
        assert_eq!(t.dropped(), 2);
    }
}
