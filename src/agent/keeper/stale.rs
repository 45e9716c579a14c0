//! One-sided (stale) SAs: packets go out, none come in, for `stale_after_ms`.

use super::*;

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

impl Keeper {
    pub(super) fn check_stale(&mut self, i: usize, t: Millis, c: Counters) {
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
            self.go_down(i, t, Cause::Stale, false);
        }
    }
}
