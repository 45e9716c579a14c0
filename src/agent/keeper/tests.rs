use super::*;
use crate::agent::diagnose::classify_down;
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
    fail_cause: Cause,
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
            fail_cause: Cause::NoReply,
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
            self.k
                .on_child_updown(self.now, true, &view, classify_down(&view, true));
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
        self.k
            .on_ike_updown(self.now, false, &view, classify_down(&view, false));
        for (c, (_, u)) in &gone {
            self.up.remove(c);
            let one = with_task(
                self.ike_view(ike, ike_uid, &[child_sa(c, *u, ChildState::Installed)]),
                &["IKE_DPD"],
                &[],
            );
            self.k
                .on_child_updown(self.now, false, &one, classify_down(&one, true));
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
                        self.k
                            .on_child_updown(self.now, false, &view, classify_down(&view, true));
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
                            self.ike_view(&ike, i, &[child_sa(&child, uid, ChildState::Installed)]),
                            &[],
                            &["CHILD_DELETE"],
                        );
                        self.k
                            .on_child_updown(self.now, false, &view, classify_down(&view, true));
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
    k.on_ike_updown(0, true, &sa, classify_down(&sa, false));
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
        cause: None,
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
    k.on_ike_updown(5 * S, true, &new, classify_down(&new, false));
    k.on_child_updown(5 * S, true, &new, classify_down(&new, true));
    let old_going = with_task(old.clone(), &["IKE_DELETE"], &[]);
    k.on_ike_updown(6 * S, false, &old_going, classify_down(&old_going, false));
    k.on_child_updown(6 * S, false, &old_going, classify_down(&old_going, true));
    assert!(drain(&mut k, 6 * S).is_empty());
    assert_eq!(k.children().next().unwrap().state, KeptState::Up);
    // The new one going down is a real down.
    let new_going = with_task(new, &[], &["IKE_DELETE"]);
    k.on_ike_updown(7 * S, false, &new_going, classify_down(&new_going, false));
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
    lab.k
        .on_child_updown(t, false, &view, classify_down(&view, true));
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
                cause: Cause::Dpd,
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
                last_cause: Some(Cause::NoReply),
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
                last_cause: Some(Cause::NotConfigured),
                left_to_peer: None
            }
        ),
        "con2_1: still down after 1 h 5 min, 1 attempt, last cause: \
         charon has no such configuration (removed by swanctl --load-all?)"
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
    let causes = [Some(Cause::NoReply), None, Some(Cause::AuthFailed)];
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
                0 => k.on_child_updown(now, r & 2 == 0, &ike, classify_down(&ike, true)),
                1 => k.on_ike_updown(now, r & 2 == 0, &ike, classify_down(&ike, false)),
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
