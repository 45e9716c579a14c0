//! The keeper's operator lines: typed reports and the words they become, and the
//! "still down" summary schedule.

use super::*;

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

/// One state change worth one syslog line; see [`KeeperReport`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    /// The child went down.
    Down {
        /// Why.
        cause: Cause,
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
        cause: Cause,
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
        last_cause: Option<Cause>,
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
        last_cause: Option<Cause>,
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

pub(super) fn summaries_due(elapsed: Millis) -> u32 {
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

pub(crate) fn summary_offset(k: u32) -> Millis {
    match KEEPER_SUMMARY_AFTER_MS.get(k as usize) {
        Some(&t) => t,
        None => {
            let n = KEEPER_SUMMARY_AFTER_MS.len() as u32;
            let last = KEEPER_SUMMARY_AFTER_MS[KEEPER_SUMMARY_AFTER_MS.len() - 1];
            last.saturating_add(KEEPER_SUMMARY_EVERY_MS.saturating_mul((k - n + 1) as u64))
        }
    }
}

pub(super) fn plural(n: u32, one: &'static str, many: &'static str) -> &'static str {
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
                write!(f, "{}", cause.down(ike))?;
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
                cause.text(),
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
                    write!(f, ", last cause: {}", cause.text())?;
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
                            Some(c) => write!(f, ", last cause: {}", c.text()),
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

impl Keeper {
    /// Report lines lost to a full queue, ever.
    pub fn reports_dropped(&self) -> u32 {
        self.reports_dropped
    }

    pub(super) fn report(&mut self, subject: Subject, kind: ReportKind) {
        if self.queue.push_back(Queued { subject, kind }).is_err() {
            self.reports_dropped = self.reports_dropped.saturating_add(1);
        }
    }

    /// Hands queued reports out until `emit` refuses one (its line queue is full): the rest
    /// stay here for the next poll, and [`Keeper::next_wake`] says "at once".
    pub(super) fn drain(&mut self, emit: &mut impl FnMut(KeeperAction) -> bool) {
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

    pub(super) fn summarize(&mut self, i: usize, now: Millis) {
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
}
