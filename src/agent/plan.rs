//! The watch plan: which children the keeper keeps, resolved against charon's configuration as
//! it is *now*.
//!
//! The operator's `watch` names (children, or connections meaning all their children) are
//! matched against every `list-conns`, streamed one connection at a time ([`WatchNames::conn`]),
//! so a configuration of any size needs no table. A name charon lacks is never fatal: it is
//! reported (once per change of the missing set), counted, and picked up by the first listing
//! that has it; the other names are kept meanwhile. With no names, the route-based children are
//! watched (found in the configuration, or seen up in `list-sas`).
//!
//! ```
//! use swandog::agent::plan::{WatchNames, WatchReason};
//! use swandog::vici::sa::{ChildConf, Conn, Name};
//!
//! let names = [Name::try_from("con2_1").unwrap(), Name::try_from("con2_3x").unwrap()];
//! let mut plan = WatchNames::new(&names);
//! let mut conn = Conn { name: Name::try_from("con2").unwrap(), ..Conn::default() };
//! for c in ["con2_1", "con2_3"] {
//!     let child = ChildConf { name: Name::try_from(c).unwrap(), route_based: false };
//!     conn.children.push(child).unwrap();
//! }
//! plan.begin();
//! let mut watched = Vec::new();
//! plan.conn(&conn, &mut |child, _ike, reason| watched.push((child.to_string(), reason)));
//! plan.end();
//! assert_eq!(watched, [("con2_1".to_string(), WatchReason::Named)]);
//! let missing: Vec<_> = plan.missing().collect();
//! assert_eq!(missing, [("con2_3x", Some("con2_3"))]);
//! ```

use core::fmt;

use heapless::Vec;

use super::table::Table;
use crate::limits::{NAME_MAX_BYTES, ROUTE_BASED_CONFIGURED_MAX, WATCHED_CHILDREN_MAX};
use crate::vici::sa::{Conn, Name};

/// Why a child is on the watch list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchReason {
    /// Named with `--watch` / the config.
    Named,
    /// Its connection was named with `--watch`.
    NamedConnection,
    /// Route-based (if_id or mark) in charon's configuration.
    RouteBased,
    /// Route-based (if-id or mark) as seen on its CHILD_SA in `list-sas` or an updown event.
    RouteBasedSeen,
}

impl WatchReason {
    /// Short label for `status --json` and the metrics.
    pub fn label(self) -> &'static str {
        match self {
            WatchReason::Named => "named",
            WatchReason::NamedConnection => "named-connection",
            WatchReason::RouteBased => "route-based",
            WatchReason::RouteBasedSeen => "route-based-seen",
        }
    }
}

impl fmt::Display for WatchReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WatchReason::Named => "named in `watch`",
            WatchReason::NamedConnection => "its connection is named in `watch`",
            WatchReason::RouteBased => "route-based (if_id or mark) in the configuration",
            WatchReason::RouteBasedSeen => "route-based (if-id or mark), seen in list-sas",
        })
    }
}

/// One `watch` name and what the listing in progress has made of it.
#[derive(Debug, Clone)]
struct NameState {
    name: Name,
    /// Matched a child or a connection in the listing in progress.
    found: bool,
    /// The closest configured name so far, and its edit distance (a typo's likely fix).
    hint: Option<(Name, u8)>,
}

/// The operator's `watch` names, matched against one `list-conns` at a time.
#[derive(Debug, Clone, Default)]
pub struct WatchNames {
    /// Sized to the names given (at most `WATCHED_CHILDREN_MAX`, the config's limit).
    names: Table<NameState>,
    /// Children the configuration files (swanctl.conf and its includes) make route-based: with
    /// no names, they are watched from the first listing, up or not.
    configured: RouteBasedSet,
    /// Connections in the listing in progress (parts after the first not counted).
    conns: u32,
    /// Connections in the last complete listing.
    conns_listed: u32,
    /// Fingerprint of the missing set last reported (`None`: nothing reported yet).
    reported: Option<u64>,
}

/// (connection, child) pairs as 64-bit FNV-1a keys: 8 bytes each, whatever the names' length.
/// Two pairs sharing a key would both count as configured; with a few dozen names that is
/// vanishingly unlikely, and it could only make swandog keep a child that is not route-based.
#[derive(Debug, Clone, Default)]
struct RouteBasedSet {
    keys: Vec<u64, ROUTE_BASED_CONFIGURED_MAX>,
}

impl RouteBasedSet {
    fn key(conn: &str, child: &str) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in conn.bytes().chain([0]).chain(child.bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h
    }

    fn insert(&mut self, conn: &str, child: &str) -> bool {
        let k = Self::key(conn, child);
        self.keys.contains(&k) || self.keys.push(k).is_ok()
    }

    fn contains(&self, conn: &str, child: &str) -> bool {
        self.keys.contains(&Self::key(conn, child))
    }
}

/// Largest edit distance at which a configured name is offered as "did you mean".
const HINT_DISTANCE_MAX: u8 = 2;

impl WatchNames {
    /// The names of `watch` (each may hold several, comma-separated; blanks and repeats are
    /// dropped). More than `WATCHED_CHILDREN_MAX` cannot come: the config refuses them.
    pub fn new(watch: &[Name]) -> WatchNames {
        let given = watch
            .iter()
            .flat_map(|n| n.split(','))
            .filter(|n| !n.trim().is_empty());
        let mut names: Table<NameState> =
            Table::with_capacity(given.count().min(WATCHED_CHILDREN_MAX));
        for name in watch.iter().flat_map(|n| n.split(',')).map(str::trim) {
            if name.is_empty() || names.iter().any(|s| s.name == name) {
                continue;
            }
            let Ok(name) = Name::try_from(name) else {
                continue;
            };
            let _ = names.push(NameState {
                name,
                found: false,
                hint: None,
            });
        }
        WatchNames {
            names,
            ..WatchNames::default()
        }
    }

    /// New names (a reload), keeping the route-based children the configuration files name.
    pub fn rename(&mut self, watch: &[Name]) {
        let configured = core::mem::take(&mut self.configured);
        *self = WatchNames::new(watch);
        self.configured = configured;
    }

    /// No names: every route-based child is watched.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The route-based children (connection, child) the configuration files name, replacing
    /// the ones before; returns how many did not fit (`ROUTE_BASED_CONFIGURED_MAX`).
    pub fn set_configured<'a>(
        &mut self,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> u32 {
        self.configured = RouteBasedSet::default();
        let mut left_out = 0u32;
        for (conn, child) in pairs {
            if !self.configured.insert(conn, child) {
                left_out = left_out.saturating_add(1);
            }
        }
        left_out
    }

    /// How many route-based children the configuration files name.
    pub fn configured_count(&self) -> usize {
        self.configured.keys.len()
    }

    /// A `list-conns` starts.
    pub fn begin(&mut self) {
        self.conns = 0;
        for s in self.names.iter_mut() {
            s.found = false;
            s.hint = None;
        }
    }

    /// One connection (or one part of it) of the listing: `watch(child, ike, reason)` for each
    /// of its children the plan keeps. A name matching a child keeps that child; a name
    /// matching the connection keeps all its children.
    pub fn conn(&mut self, conn: &Conn, watch: &mut dyn FnMut(&Name, &Name, WatchReason)) {
        if conn.part == 0 {
            self.conns = self.conns.saturating_add(1);
        }
        if self.names.is_empty() {
            let configured = &self.configured;
            let route_based = conn
                .children
                .iter()
                .filter(|c| c.route_based || configured.contains(&conn.name, &c.name));
            for child in route_based {
                watch(&child.name, &conn.name, WatchReason::RouteBased);
            }
            return;
        }
        for s in self.names.iter_mut() {
            // A child named itself is `Named`, also when its connection has the same name
            // (`con1 { children { con1 } }`); its siblings are `NamedConnection`.
            for child in conn.children.iter().filter(|c| c.name == s.name) {
                s.found = true;
                watch(&child.name, &conn.name, WatchReason::Named);
            }
            if s.name == conn.name {
                s.found = true;
                for child in conn.children.iter().filter(|c| c.name != s.name) {
                    watch(&child.name, &conn.name, WatchReason::NamedConnection);
                }
            }
            if !s.found {
                let candidates =
                    core::iter::once(&conn.name).chain(conn.children.iter().map(|c| &c.name));
                for candidate in candidates {
                    let d = edit_distance(s.name.as_bytes(), candidate.as_bytes());
                    if d <= HINT_DISTANCE_MAX && s.hint.as_ref().is_none_or(|(_, best)| d < *best) {
                        s.hint = Some((candidate.clone(), d));
                    }
                }
            }
        }
    }

    /// The listing is complete.
    pub fn end(&mut self) {
        self.conns_listed = self.conns;
    }

    /// Names the last complete listing did not have, each with the closest configured name.
    pub fn missing(&self) -> impl Iterator<Item = (&str, Option<&str>)> + '_ {
        self.names
            .iter()
            .filter(|s| !s.found)
            .map(|s| (s.name.as_str(), s.hint.as_ref().map(|(h, _)| h.as_str())))
    }

    /// How many names the last complete listing did not have.
    pub fn missing_count(&self) -> usize {
        self.names.iter().filter(|s| !s.found).count()
    }

    /// Connections in the last complete listing.
    pub fn conns_listed(&self) -> u32 {
        self.conns_listed
    }

    /// Whether the missing names differ from the ones last reported (then they count as
    /// reported now): the line about them is written once per change, not once per poll.
    pub fn missing_changed(&mut self) -> bool {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut mix = |b: u8| {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        };
        for (name, _) in self.missing() {
            name.bytes().for_each(&mut mix);
            mix(0);
        }
        mix(u8::from(self.conns_listed == 0));
        let changed = self.reported != Some(h);
        self.reported = Some(h);
        changed
    }

    /// The operator's line about the missing names (see [`WatchNames::missing_changed`]).
    pub fn missing_line(&self) -> MissingLine<'_> {
        MissingLine(self)
    }
}

/// `watch: con9_1 (did you mean con2_1?), con7 not configured in charon; …`.
pub struct MissingLine<'a>(&'a WatchNames);

impl fmt::Display for MissingLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plan = self.0;
        let n = plan.missing_count();
        if n == 0 {
            return f.write_str("watch: every name is configured in charon now");
        }
        f.write_str("watch: ")?;
        for (i, (name, hint)) in plan.missing().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(name)?;
            if let Some(h) = hint {
                write!(f, " (did you mean {h}?)")?;
            }
        }
        f.write_str(if n == 1 { " is" } else { " are" })?;
        if plan.conns_listed == 0 {
            f.write_str(
                " not configured: charon has no connections loaded yet (swanctl --load-all); kept as soon as it has them",
            )
        } else {
            write!(
                f,
                " not among charon's {} connections and their children; the other names are kept, these as soon as charon has them",
                plan.conns_listed
            )
        }
    }
}

/// Levenshtein distance of two names, capped at `HINT_DISTANCE_MAX + 1`; fixed buffers only.
fn edit_distance(a: &[u8], b: &[u8]) -> u8 {
    const CAP: u8 = HINT_DISTANCE_MAX + 1;
    if a.len().abs_diff(b.len()) > usize::from(HINT_DISTANCE_MAX) {
        return CAP;
    }
    let (a, b) = (
        &a[..a.len().min(NAME_MAX_BYTES)],
        &b[..b.len().min(NAME_MAX_BYTES)],
    );
    let mut prev = [0u8; NAME_MAX_BYTES + 1];
    let mut cur = [0u8; NAME_MAX_BYTES + 1];
    for (j, p) in prev.iter_mut().enumerate().take(b.len() + 1) {
        *p = j.min(usize::from(CAP)) as u8;
    }
    for i in 1..=a.len() {
        cur[0] = i.min(usize::from(CAP)) as u8;
        for j in 1..=b.len() {
            let sub = prev[j - 1] + u8::from(a[i - 1] != b[j - 1]);
            cur[j] = sub.min(prev[j] + 1).min(cur[j - 1] + 1).min(CAP);
        }
        core::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// One child of the plan, as `swandog check` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedChild {
    /// Child name.
    pub child: Name,
    /// Its connection (IKE_SA) name.
    pub ike: Name,
    /// Why it is watched.
    pub reason: WatchReason,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vici::sa::ChildConf;
    use std::string::{String as Text, ToString};
    use std::vec::Vec as List;

    fn name(s: &str) -> Name {
        Name::try_from(s).unwrap()
    }

    fn conn(n: &str, children: &[(&str, bool)]) -> Conn {
        let mut c = Conn {
            name: name(n),
            ..Conn::default()
        };
        for (child, route_based) in children {
            c.children
                .push(ChildConf {
                    name: name(child),
                    route_based: *route_based,
                })
                .unwrap();
        }
        c
    }

    fn lab() -> List<Conn> {
        List::from([
            conn("con1", &[("con1_1", false)]),
            conn("con2", &[("con2_1", true)]),
            conn("con3", &[("con3_1", true), ("con3_2", false)]),
        ])
    }

    fn run(plan: &mut WatchNames, conns: &[Conn]) -> List<(Text, Text, WatchReason)> {
        let mut out = List::new();
        plan.begin();
        for c in conns {
            plan.conn(c, &mut |child, ike, reason| {
                out.push((child.to_string(), ike.to_string(), reason))
            });
        }
        plan.end();
        out
    }

    #[test]
    fn no_names_watch_the_route_based_children() {
        let mut plan = WatchNames::new(&[]);
        let got = run(&mut plan, &lab());
        assert_eq!(
            got,
            [
                ("con2_1".into(), "con2".into(), WatchReason::RouteBased),
                ("con3_1".into(), "con3".into(), WatchReason::RouteBased),
            ]
        );
        assert_eq!(plan.missing_count(), 0);
    }

    #[test]
    fn names_match_children_or_whole_connections() {
        let mut plan = WatchNames::new(&[name("con1_1, con3")]);
        let got = run(&mut plan, &lab());
        assert_eq!(
            got,
            [
                ("con1_1".into(), "con1".into(), WatchReason::Named),
                ("con3_1".into(), "con3".into(), WatchReason::NamedConnection),
                ("con3_2".into(), "con3".into(), WatchReason::NamedConnection),
            ]
        );
    }

    #[test]
    fn a_bad_name_never_stops_the_good_ones_and_gets_a_hint() {
        let mut plan = WatchNames::new(&[name("con1_1,con2_l,office,office")]);
        let got = run(&mut plan, &lab());
        assert_eq!(got.len(), 1, "con1_1 is kept: {got:?}");
        let missing: List<_> = plan.missing().collect();
        assert_eq!(missing, [("con2_l", Some("con2_1")), ("office", None)]);
        assert!(plan.missing_changed(), "first report");
        assert_eq!(
            plan.missing_line().to_string(),
            "watch: con2_l (did you mean con2_1?), office are not among charon's 3 connections and \
             their children; the other names are kept, these as soon as charon has them"
        );
        run(&mut plan, &lab());
        assert!(
            !plan.missing_changed(),
            "the same set is not reported again"
        );
        // The operator loads the office connection: it is found, and the change is reported.
        let mut more = lab();
        more.push(conn("office", &[("office_1", false)]));
        let got = run(&mut plan, &more);
        assert!(got.iter().any(|(c, _, _)| c == "office_1"));
        assert!(plan.missing_changed());
        assert_eq!(plan.missing_count(), 1);
    }

    #[test]
    fn names_before_configs_are_loaded_say_so() {
        let mut plan = WatchNames::new(&[name("con1_1")]);
        assert!(run(&mut plan, &[]).is_empty());
        assert!(plan.missing_changed());
        assert!(plan
            .missing_line()
            .to_string()
            .ends_with("charon has no connections loaded yet (swanctl --load-all); kept as soon as it has them"));
        assert_eq!(run(&mut plan, &lab()).len(), 1);
        assert!(plan.missing_changed());
        assert_eq!(
            plan.missing_line().to_string(),
            "watch: every name is configured in charon now"
        );
    }

    #[test]
    fn children_route_based_in_the_configuration_files_are_watched_up_or_not() {
        // charon's list-conns never shows if_id or marks: only swanctl.conf says so.
        let mut conns = lab();
        for c in conns.iter_mut() {
            for child in c.children.iter_mut() {
                child.route_based = false;
            }
        }
        let mut plan = WatchNames::new(&[]);
        assert!(run(&mut plan, &conns).is_empty());
        assert_eq!(
            plan.set_configured([("con3", "con3_2"), ("con9", "con9_1")]),
            0
        );
        let got = run(&mut plan, &conns);
        assert_eq!(
            got,
            [("con3_2".into(), "con3".into(), WatchReason::RouteBased)]
        );
        // A child of that name under another connection is another child.
        assert!(!plan.configured.contains("con2", "con3_2"));
        // Named children win over discovery.
        let mut named = WatchNames::new(&[name("con1_1")]);
        named.set_configured([("con3", "con3_2")]);
        assert_eq!(run(&mut named, &conns).len(), 1);
    }

    #[test]
    fn edit_distance_is_bounded_and_right() {
        assert_eq!(edit_distance(b"con2_1", b"con2_1"), 0);
        assert_eq!(edit_distance(b"con2_l", b"con2_1"), 1);
        assert_eq!(edit_distance(b"con21", b"con2_1"), 1);
        assert_eq!(edit_distance(b"x", b"con2_1"), HINT_DISTANCE_MAX + 1);
        let long = [b'a'; 200];
        assert!(edit_distance(&long, &long) <= HINT_DISTANCE_MAX + 1);
    }
}
