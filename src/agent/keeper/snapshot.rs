//! Reconciling with a complete `list-sas`: what it shows up or not, one IKE_SA at a time, and
//! duplicate IKE_SAs.

use super::*;

impl Keeper {
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
                    Phase::Unknown => Cause::NotEstablished,
                    _ => Cause::Vanished,
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
}
