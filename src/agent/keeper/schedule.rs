//! When the next attempt may go: backoff with jitter, pacing under load, and the fresh
//! `list-sas` every attempt waits for.

use super::*;

impl Keeper {
    /// Backoff after `level` failures (≥ 1): `min · 2^(level-1)`, capped, minus 0..=20 % jitter.
    pub(super) fn backoff_ms(&mut self, level: u32) -> Millis {
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

    pub(super) fn delay_for(&mut self, level: u32) -> Millis {
        if level == 0 {
            self.settings.grace_ms
        } else {
            self.backoff_ms(level)
        }
    }

    /// Earliest time the child may be initiated, pacing included; `None` if nothing is planned.
    pub(super) fn ready_at(&self, i: usize) -> Option<Millis> {
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
    pub(super) fn gate(&self, i: usize, now: Millis) -> Gate {
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
    pub(super) fn postpone(&mut self, i: usize, now: Millis) {
        let level = self.children[i].level.saturating_add(1);
        let d = self.backoff_ms(level);
        let cap = self.settings.backoff_cap_ms;
        let w = &mut self.children[i];
        w.level = level;
        w.next_attempt_at = Some(now.saturating_add(d));
        w.latest_at = now.saturating_add(cap);
    }
}
