//! The watch list: children kept, set aside when charon's configuration no longer has them,
//! and their places reused when the list is full.

use super::*;

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

impl Keeper {
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

    pub(super) fn set_aside(&mut self, i: usize, now: Millis) {
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

    pub(super) fn purge_reports(&mut self, subject: Subject) {
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

    /// Whether a child of that name is watched (under any connection; a child set aside by
    /// [`Keeper::end_conns`] is not).
    pub fn is_watched(&self, child: &str) -> bool {
        self.children
            .iter()
            .any(|w| w.configured && w.name == child)
    }

    /// A watched child (not one set aside).
    pub(super) fn find(&self, child: &str, ike: &str) -> Option<usize> {
        self.find_any(child, ike)
            .filter(|&i| self.children[i].configured)
    }

    pub(super) fn find_any(&self, child: &str, ike: &str) -> Option<usize> {
        self.children
            .iter()
            .position(|w| w.name == child && self.ikes[w.ike].name == ike)
    }

    pub(super) fn ike_index(&self, name: &str) -> Option<usize> {
        self.ikes.iter().position(|e| e.name == name)
    }
}
