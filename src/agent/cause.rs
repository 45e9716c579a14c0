//! Why a tunnel went down or failed to come back: one enum from charon's words (updown task
//! lists, log lines, `initiate` answers) to the operator's line. Each event is classified once,
//! where it arrives (`diagnose`), and the same value travels to the keeper, the log line, the
//! status file and the metrics.
//!
//! ```
//! use swandog::agent::cause::Cause;
//!
//! assert_eq!(Cause::ProposalMismatch.label(), "proposal-mismatch");
//! assert_eq!(
//!     Cause::ProposalMismatch.text(),
//!     "no proposal chosen (crypto proposals differ)"
//! );
//! assert_eq!(Cause::Dpd.down("con1").to_string(), "IKE con1 deleted by DPD");
//! ```

use core::fmt;

/// Why a CHILD_SA or IKE_SA went down, or why an attempt to bring one up failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    // ---- a down (the updown event's state and task lists, or the keeper's own view)
    /// Dead peer detection gave up (IKE_DPD, ISAKMP_DPD or, with MOBIKE, IKE_MOBIKE running on an
    /// established IKE_SA; or IKEv1's "DPD check timed out").
    Dpd,
    /// The peer deleted the IKE_SA (tasks-passive IKE_DELETE).
    PeerDeletedIke,
    /// This side deleted the IKE_SA (tasks-active IKE_DELETE: terminate, reload, shutdown).
    LocalDeletedIke,
    /// The peer deleted one CHILD_SA; the IKE_SA lives on.
    PeerDeletedChild,
    /// This side deleted one CHILD_SA; the IKE_SA lives on.
    LocalDeletedChild,
    /// The IKE_SA went down for a reason the event does not show.
    IkeDown,
    /// The CHILD_SA went down for a reason the event does not show.
    ChildDown,
    /// Not established when first seen (swandog started, or its configuration just appeared).
    NotEstablished,
    /// Gone from `list-sas` without an event (missed while reconnecting?).
    Vanished,
    /// One-sided, terminated by swandog (`stale_action = restart`).
    Stale,
    // ---- a failed attempt (charon's log lines and answers)
    /// No answer at all: peer down or UDP 500/4500 blocked.
    NoReply,
    /// NO_PROPOSAL_CHOSEN, or no acceptable proposal here.
    ProposalMismatch,
    /// TS_UNACCEPTABLE, or no matching traffic selectors here.
    TsMismatch,
    /// AUTHENTICATION_FAILED, or the peer's AUTH payload did not verify.
    AuthFailed,
    /// charon has no such configuration ("CHILD_SA config '…' not found").
    NotConfigured,
    /// charon could not install the CHILD_SA or its policies in the kernel (alert
    /// `install-child-sa-failed` / `install-child-policy-failed`).
    InstallFailed,
    /// charon never answered the `initiate` within its deadline plus a margin.
    NoResult,
    /// The `initiate` call itself hit swandog's deadline (charon wedged or overloaded).
    CharonTimeout,
    /// The `initiate` call failed on the socket.
    ViciError,
    /// Failed, and nothing in charon's log said why.
    Unknown,
}

impl Cause {
    /// Short stable label: status file, metrics, `key=value` figures.
    pub fn label(self) -> &'static str {
        match self {
            Cause::Dpd => "dpd",
            Cause::PeerDeletedIke => "peer-deleted",
            Cause::LocalDeletedIke => "local-terminate",
            Cause::PeerDeletedChild => "peer-deleted-child",
            Cause::LocalDeletedChild => "local-deleted-child",
            Cause::IkeDown => "ike-down",
            Cause::ChildDown => "child-down",
            Cause::NotEstablished => "not-established",
            Cause::Vanished => "vanished",
            Cause::Stale => "stale",
            Cause::NoReply => "no-reply",
            Cause::ProposalMismatch => "proposal-mismatch",
            Cause::TsMismatch => "ts-mismatch",
            Cause::AuthFailed => "auth-failed",
            Cause::NotConfigured => "not-configured",
            Cause::InstallFailed => "install-failed",
            Cause::NoResult => "no-result",
            Cause::CharonTimeout => "charon-timeout",
            Cause::ViciError => "vici-error",
            Cause::Unknown => "unknown",
        }
    }

    /// The operator's words for it, as a failure cause (`last cause: …`).
    pub fn text(self) -> &'static str {
        match self {
            Cause::NoReply => "no reply (peer down or UDP 500/4500 blocked)",
            Cause::ProposalMismatch => "no proposal chosen (crypto proposals differ)",
            Cause::TsMismatch => "traffic selectors unacceptable (subnets differ)",
            Cause::AuthFailed => "authentication failed (PSK, certificate or identity)",
            Cause::PeerDeletedIke | Cause::PeerDeletedChild => "the peer closed it",
            Cause::Dpd => "dead peer detection gave up",
            Cause::Unknown => "no known cause in charon's log",
            Cause::CharonTimeout => "initiate timed out",
            Cause::NoResult => "no answer from charon to initiate",
            Cause::NotConfigured => {
                "charon has no such configuration (removed by swanctl --load-all?)"
            }
            Cause::ViciError => "the VICI call failed",
            Cause::InstallFailed => {
                "charon could not install the SA or its policies (kernel, XFRM)"
            }
            Cause::LocalDeletedIke | Cause::LocalDeletedChild => "terminated locally",
            Cause::IkeDown | Cause::ChildDown => "went down, the event does not say why",
            Cause::NotEstablished => "not established",
            Cause::Vanished => "gone from list-sas",
            Cause::Stale => "one-sided, terminated by swandog",
        }
    }

    /// What to do about it, for the causes that are the operator's to fix.
    pub fn advice(self) -> &'static str {
        match self {
            Cause::NoReply => "peer down or UDP 500/4500 blocked: check the peer and the path",
            Cause::ProposalMismatch => {
                "proposal / DH group mismatch: make the IKE and ESP proposals match on both sides"
            }
            Cause::TsMismatch => {
                "traffic selector mismatch (e.g. /24 vs /32): make local_ts/remote_ts match the peer"
            }
            Cause::AuthFailed => "PSK or identity mismatch: check the secret and local/remote id",
            Cause::PeerDeletedIke | Cause::PeerDeletedChild => {
                "the peer closed it: check the peer's log for why (restart, config change, lifetime)"
            }
            Cause::Dpd => "dead peer detection gave up: see the load verdict for this tunnel",
            Cause::NotConfigured => "load the connection again, or drop it from `watch`",
            Cause::InstallFailed => {
                "the kernel refused the SA or policy: check charon's log, XFRM support, if_id and marks"
            }
            _ => "no known cause in charon's log: run charon with more logging",
        }
    }

    /// A cause the operator fixes in a configuration (worth a line of its own each time).
    pub fn is_config_error(self) -> bool {
        matches!(
            self,
            Cause::ProposalMismatch
                | Cause::TsMismatch
                | Cause::AuthFailed
                | Cause::NotConfigured
                | Cause::InstallFailed
        )
    }

    /// Whether this is a DPD failure, the kind the load verdict is about.
    pub fn is_dpd_failure(self) -> bool {
        self == Cause::Dpd
    }

    /// How a down reads in the keeper's line for a child of IKE_SA `ike`
    /// (`con2_1: down (IKE con2 deleted by DPD)`).
    pub fn down(self, ike: &str) -> Down<'_> {
        Down { cause: self, ike }
    }
}

/// [`Cause::down`].
pub struct Down<'a> {
    cause: Cause,
    ike: &'a str,
}

impl fmt::Display for Down<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ike = self.ike;
        match self.cause {
            Cause::Dpd => write!(f, "IKE {ike} deleted by DPD"),
            Cause::PeerDeletedIke => write!(f, "peer deleted IKE {ike}"),
            Cause::LocalDeletedIke => write!(f, "IKE {ike} terminated locally"),
            Cause::PeerDeletedChild => f.write_str("peer deleted the CHILD_SA"),
            Cause::LocalDeletedChild => f.write_str("CHILD_SA terminated locally"),
            Cause::IkeDown => write!(f, "IKE {ike} went down"),
            Cause::ChildDown => f.write_str("CHILD_SA went down"),
            other => f.write_str(other.text()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    const ALL: [Cause; 20] = [
        Cause::InstallFailed,
        Cause::Dpd,
        Cause::PeerDeletedIke,
        Cause::LocalDeletedIke,
        Cause::PeerDeletedChild,
        Cause::LocalDeletedChild,
        Cause::IkeDown,
        Cause::ChildDown,
        Cause::NotEstablished,
        Cause::Vanished,
        Cause::Stale,
        Cause::NoReply,
        Cause::ProposalMismatch,
        Cause::TsMismatch,
        Cause::AuthFailed,
        Cause::NotConfigured,
        Cause::NoResult,
        Cause::CharonTimeout,
        Cause::ViciError,
        Cause::Unknown,
    ];

    #[test]
    fn every_cause_has_a_distinct_label_and_words() {
        for (i, a) in ALL.iter().enumerate() {
            assert!(!a.text().is_empty() && !a.advice().is_empty());
            assert!(
                a.label()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{a:?}: a metrics label value"
            );
            for b in &ALL[i + 1..] {
                assert_ne!(a.label(), b.label(), "{a:?} and {b:?}");
            }
        }
    }

    #[test]
    fn downs_name_the_ike_sa_when_it_went_with_them() {
        assert_eq!(
            Cause::LocalDeletedIke.down("con2").to_string(),
            "IKE con2 terminated locally"
        );
        assert_eq!(
            Cause::LocalDeletedChild.down("con2").to_string(),
            "CHILD_SA terminated locally"
        );
        assert_eq!(
            Cause::NotEstablished.down("con2").to_string(),
            "not established"
        );
    }
}
