//! Issue 5 against the real lab: `swandog run` alone brings dropped tunnels back — after a DPD
//! failure, after the peer's charon was gone for longer than strongSwan's keyingtries last,
//! from one side only when both sites run it, and only the child the peer deleted.
//! Needs root and the lab packages (see tests/lab/lab.sh); SWANDOG_NO_LAB skips (qemu only).
//!
//! Every test prints its measured timings (child-down line → first initiate in charon's log;
//! heal / peer start → INSTALLED, checked with swanctl independently of swandog).

mod common;

use std::time::{Duration, Instant};

use common::labkit::{child, child_state, follow_charon, sas, Json, Lines, Swandog};
use common::{lab_disabled, wait_for, Lab};

/// A short backoff cap keeps the tests fast; "within cap + a few seconds" is the promise.
const CAP_MS: u64 = 8000;
const SLACK_MS: u64 = 6000;
/// Grace (1 s) then the first attempt; on a busy box attempts are paced (5 s apart, one child
/// at a time) but no child waits longer than the cap.
const FIRST_TRY_MAX: Duration = Duration::from_millis(1000 + CAP_MS + 1000);

fn cap_flags() -> Vec<String> {
    vec!["--backoff-cap-ms".into(), CAP_MS.to_string()]
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn ike_of(child: &str) -> &'static str {
    if child.starts_with("con2") {
        "con2"
    } else {
        "con1"
    }
}

fn wait_up(agent: &Swandog, children: &[&str]) {
    let (ok, st) = agent.wait_status(Duration::from_secs(15), |s| {
        children.iter().all(|c| child_state(s, c) == Some("up"))
    });
    assert!(
        ok,
        "swandog never showed {children:?} up: {st:?}\n{}",
        agent.log()
    );
}

/// Whether every child in `want` is INSTALLED on `site` (swanctl, not swandog).
fn installed_all(lab: &Lab, site: &str, want: &[&str]) -> bool {
    let got = lab.installed(site);
    want.iter().all(|w| got.iter().any(|g| g == w))
}

/// Waits for swandog's "CHILD: down (...)" line after `since`.
fn down_line(agent: &Swandog, child: &str, since: Instant, timeout: Duration) -> (Instant, String) {
    let tag = format!("] {child}: down (");
    agent
        .lines
        .wait(since, timeout, |l| l.contains(&tag))
        .unwrap_or_else(|| {
            panic!(
                "no '{child}: down' line within {timeout:?}:\n{}",
                agent.log()
            )
        })
}

/// The first line of charon's log (site `a`) at or after `since` showing an initiation for
/// `child`: a new IKE_SA of its connection, or the child on an existing one.
fn first_initiate(
    charon: &Lines,
    child: &str,
    since: Instant,
    timeout: Duration,
) -> Option<(Instant, String)> {
    let ike = format!("initiating IKE_SA {}[", ike_of(child));
    let ch = format!("establishing CHILD_SA {child}{{");
    charon.wait(since, timeout, |l| l.contains(&ike) || l.contains(&ch))
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// (a): break past DPD's give-up, keep it broken while swandog backs off, heal, and see every
/// watched child INSTALLED again with no other command.
fn dpd_break_then_heal(name: &str, watch: Option<&str>, watched: &[&str]) {
    let lab = Lab::up(name);
    let charon = follow_charon(&lab, "a");
    let mut flags = cap_flags();
    if let Some(w) = watch {
        flags.extend(["--watch".to_string(), w.to_string()]);
    }
    let agent = Swandog::start(name, &lab.uri("a"), &args(&flags));
    wait_up(&agent, watched);

    let broke = Instant::now();
    lab.must(&["break"]);
    let mut downs = Vec::new();
    for c in watched {
        let (at, line) = down_line(&agent, c, broke, Duration::from_secs(20));
        assert!(line.contains("deleted by DPD"), "{line}");
        downs.push(at);
        let init =
            first_initiate(&charon.lines, c, at, Duration::from_secs(10)).unwrap_or_else(|| {
                panic!(
                    "no initiation for {c} after its down line:\n{}",
                    agent.log()
                )
            });
        eprintln!(
            "[{name}] {c}: down line {} ms after break; first initiate of its IKE_SA {} ms after the down line ({})",
            ms(at - broke),
            ms(init.0.saturating_duration_since(at)),
            init.1
        );
        assert!(
            init.0 - at <= FIRST_TRY_MAX,
            "first initiate too late for {c}"
        );
    }
    // Stay broken well past the give-up: several attempts fail, the backoff grows.
    let hold = Duration::from_secs(16);
    std::thread::sleep(hold.saturating_sub(broke.elapsed()));
    let st = agent.status().expect("status");
    let mut failed = 0;
    for c in watched {
        let ch = child(&st, c).expect("child in status").clone();
        eprintln!("[{name}] while broken: {ch:?}");
        assert_ne!(ch.get("state").and_then(Json::as_str), Some("up"), "{ch:?}");
        assert!(
            ch.get("attempts").and_then(Json::as_f64).unwrap_or(0.0) >= 1.0,
            "{ch:?}"
        );
        // An attempt may still be in flight (paced on a busy box): then no cause yet.
        let cause = ch.get("last_failure").and_then(Json::as_str);
        assert!(matches!(cause, None | Some("no-reply")), "{ch:?}");
        failed += usize::from(cause.is_some());
    }
    assert!(
        failed > 0,
        "no failed attempt classified as no-reply while broken"
    );

    lab.must(&["heal"]);
    let healed = Instant::now();
    let limit = Duration::from_millis(CAP_MS + SLACK_MS);
    let back = wait_for(limit, || installed_all(&lab, "a", watched));
    eprintln!("[{name}] heal -> {watched:?} INSTALLED on a: {back:?} (cap {CAP_MS} ms)");
    assert!(
        back.is_some(),
        "{watched:?} not INSTALLED within {limit:?} of the heal (have {:?}):\n{}",
        lab.installed("a"),
        agent.log()
    );
    for c in watched {
        let (at, line) = agent
            .lines
            .wait(healed, Duration::from_secs(5), |l| {
                l.contains(&format!("] {c}: back up after"))
            })
            .unwrap_or_else(|| panic!("no 'back up' line for {c}:\n{}", agent.log()));
        eprintln!("[{name}] {} ms after heal: {line}", ms(at - healed));
    }
    if watch.is_none() {
        // con1 is policy-based and not named: swandog leaves it alone.
        assert!(!lab.installed("a").contains(&"con1".to_string()));
        assert!(!agent.log().contains("] con1: down"), "{}", agent.log());
    }
    let _ = downs;
}

#[test]
fn route_based_children_return_after_dpd_failure_and_heal_without_any_command() {
    if lab_disabled("route_based_children_return_after_dpd_failure_and_heal_without_any_command") {
        return;
    }
    dpd_break_then_heal("kdpd", None, &["con2_1", "con2_2"]);
}

#[test]
fn named_children_return_after_dpd_failure_and_heal_without_any_command() {
    if lab_disabled("named_children_return_after_dpd_failure_and_heal_without_any_command") {
        return;
    }
    dpd_break_then_heal(
        "kdpdw",
        Some("con1,con2_1,con2_2"),
        &["con1", "con2_1", "con2_2"],
    );
}

#[test]
fn tunnels_return_after_the_peer_was_down_longer_than_keyingtries_last() {
    if lab_disabled("tunnels_return_after_the_peer_was_down_longer_than_keyingtries_last") {
        return;
    }
    let name = "kstop";
    let watched = ["con2_1", "con2_2"];
    let lab = Lab::up(name);
    let charon = follow_charon(&lab, "a");
    let agent = Swandog::start(name, &lab.uri("a"), &args(&cap_flags()));
    wait_up(&agent, &watched);

    let stopped = Instant::now();
    lab.must(&["stop", "b"]);
    for c in watched {
        let (at, line) = down_line(&agent, c, stopped, Duration::from_secs(20));
        let init = first_initiate(&charon.lines, c, at, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("no initiation for {c}:\n{}", agent.log()));
        eprintln!(
            "[{name}] {c}: '{line}' {} ms after stop; first initiate {} ms after it",
            ms(at - stopped),
            ms(init.0.saturating_duration_since(at))
        );
        assert!(
            init.0 - at <= FIRST_TRY_MAX,
            "first initiate too late for {c}"
        );
    }
    // keyingtries = 1 (swanctl's default) gives up after one ~3 s try; stay down far longer.
    std::thread::sleep(Duration::from_secs(25).saturating_sub(stopped.elapsed()));
    let tries = charon
        .lines
        .all()
        .iter()
        .filter(|(_, l)| l.contains("initiating IKE_SA con2["))
        .count();
    eprintln!("[{name}] IKE_SA initiations of con2 while the peer was down 25 s: {tries}");
    assert!(tries >= 3, "swandog kept trying: {tries}\n{}", agent.log());
    let st = agent.status().expect("status");
    for c in watched {
        let ch = child(&st, c).expect("child");
        assert_ne!(ch.get("state").and_then(Json::as_str), Some("up"), "{ch:?}");
        eprintln!("[{name}] while the peer is down: {ch:?}");
    }

    lab.must(&["start", "b"]);
    let limit = Duration::from_millis(CAP_MS + SLACK_MS);
    let back = wait_for(limit, || installed_all(&lab, "a", &watched));
    eprintln!("[{name}] peer start -> {watched:?} INSTALLED on a: {back:?} (cap {CAP_MS} ms)");
    assert!(
        back.is_some(),
        "not back within {limit:?} of the peer's start (have {:?}):\n{}",
        lab.installed("a"),
        agent.log()
    );
    assert!(
        installed_all(&lab, "b", &watched),
        "b: {:?}",
        lab.installed("b")
    );
}

/// (name, how many), sorted by name.
type Counts = Vec<(String, usize)>;

/// IKE_SA count per connection name, and INSTALLED count per child name, from `sas --json`.
fn sa_counts(ikes: &Json) -> (Counts, Counts) {
    let mut by_ike = std::collections::BTreeMap::<String, usize>::new();
    let mut by_child = std::collections::BTreeMap::<String, usize>::new();
    for ike in ikes.items() {
        *by_ike
            .entry(
                ike.get("name")
                    .and_then(Json::as_str)
                    .unwrap_or("?")
                    .to_string(),
            )
            .or_default() += 1;
        for c in ike.get("children").map(Json::items).unwrap_or(&[]) {
            if c.get("state").and_then(Json::as_str) == Some("INSTALLED") {
                *by_child
                    .entry(
                        c.get("name")
                            .and_then(Json::as_str)
                            .unwrap_or("?")
                            .to_string(),
                    )
                    .or_default() += 1;
            }
        }
    }
    (by_ike.into_iter().collect(), by_child.into_iter().collect())
}

#[test]
fn swandog_on_both_sites_with_role_auto_leaves_one_ike_sa_per_connection() {
    if lab_disabled("swandog_on_both_sites_with_role_auto_leaves_one_ike_sa_per_connection") {
        return;
    }
    let name = "kauto";
    let all = ["con1", "con2_1", "con2_2"];
    let lab = Lab::up(name);
    let charon_a = follow_charon(&lab, "a");
    let charon_b = follow_charon(&lab, "b");
    let mut flags = cap_flags();
    flags.extend(["--role", "auto", "--watch", "con1,con2_1,con2_2"].map(String::from));
    let agent_a = Swandog::start("kauto-a", &lab.uri("a"), &args(&flags));
    let agent_b = Swandog::start("kauto-b", &lab.uri("b"), &args(&flags));
    wait_up(&agent_a, &all);
    wait_up(&agent_b, &all);

    let broke = Instant::now();
    lab.must(&["break"]);
    for (site, agent, charon) in [("a", &agent_a, &charon_a), ("b", &agent_b, &charon_b)] {
        for c in all {
            let (at, _) = down_line(agent, c, broke, Duration::from_secs(20));
            let init = first_initiate(&charon.lines, c, at, Duration::from_secs(4));
            eprintln!(
                "[{name}] site {site}: {c} down {} ms after break; initiate within 4 s: {:?}",
                ms(at - broke),
                init.map(|(t, _)| ms(t.saturating_duration_since(at)))
            );
        }
    }
    std::thread::sleep(Duration::from_secs(12).saturating_sub(broke.elapsed()));
    lab.must(&["heal"]);
    let limit = Duration::from_millis(CAP_MS + SLACK_MS);
    let back = wait_for(limit, || {
        installed_all(&lab, "a", &all) && installed_all(&lab, "b", &all)
    });
    eprintln!("[{name}] heal -> all INSTALLED on both sites: {back:?} (cap {CAP_MS} ms)");
    assert!(
        back.is_some(),
        "a {:?} b {:?}\n--- a ---\n{}\n--- b ---\n{}",
        lab.installed("a"),
        lab.installed("b"),
        agent_a.log(),
        agent_b.log()
    );

    // Stable: one IKE_SA per connection and one INSTALLED CHILD_SA per child, on each site.
    let want_ikes = vec![("con1".to_string(), 1), ("con2".to_string(), 1)];
    let want_children: Vec<_> = all.iter().map(|c| (c.to_string(), 1)).collect();
    for round in 0..5 {
        for site in ["a", "b"] {
            let (ikes, children) = sa_counts(&sas(&lab.uri(site)));
            assert_eq!(ikes, want_ikes, "site {site}, {round} s after recovery");
            assert_eq!(
                children, want_children,
                "site {site}, {round} s after recovery"
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    // Only the side with the lower address (a) initiated; b's charon never did. (b notes a's
    // initiation as "192.0.2.1 is initiating an IKE_SA" on 5.9, "... is initiating IKE_SA
    // (unnamed)[N]" on 6.0; its own reads "initiating IKE_SA con1[N] to 192.0.2.1".)
    let b_inits: Vec<_> = charon_b
        .lines
        .all()
        .into_iter()
        .filter(|(at, l)| {
            *at >= broke
                && ((l.contains("initiating IKE_SA") && !l.contains(" is initiating "))
                    || l.contains("establishing CHILD_SA"))
        })
        .map(|(_, l)| l)
        .collect();
    assert!(
        b_inits.is_empty(),
        "site b initiated: {b_inits:#?}\n{}",
        agent_b.log()
    );
    for agent in [&agent_a, &agent_b] {
        assert!(
            !agent.log().to_lowercase().contains("duplicate"),
            "{}",
            agent.log()
        );
    }
    // The responder side sees its children back up too (from charon's events, not by acting).
    wait_up(&agent_b, &all);
    eprintln!(
        "[{name}] swandog on b (responder by address):\n{}",
        agent_b.log()
    );
}

/// uniqueid of the IKE_SA `ike` and of its INSTALLED child `child` on one site.
fn uniqueids(ikes: &Json, ike: &str, child: &str) -> (Option<f64>, Option<f64>) {
    let Some(i) = ikes
        .items()
        .iter()
        .find(|i| i.get("name").and_then(Json::as_str) == Some(ike))
    else {
        return (None, None);
    };
    let c = i
        .get("children")
        .map(Json::items)
        .unwrap_or(&[])
        .iter()
        .find(|c| {
            c.get("name").and_then(Json::as_str) == Some(child)
                && c.get("state").and_then(Json::as_str) == Some("INSTALLED")
        })
        .and_then(|c| c.get("uniqueid")?.as_f64());
    (i.get("uniqueid").and_then(Json::as_f64), c)
}

#[test]
fn a_child_deleted_by_the_peer_is_reinitiated_alone() {
    if lab_disabled("a_child_deleted_by_the_peer_is_reinitiated_alone") {
        return;
    }
    let name = "kdel";
    let lab = Lab::up(name);
    let charon = follow_charon(&lab, "a");
    let mut agent = Swandog::start(name, &lab.uri("a"), &args(&cap_flags()));
    wait_up(&agent, &["con2_1", "con2_2"]);
    let uri = lab.uri("a");
    let before = sas(&uri);
    let (ike_before, keep_before) = uniqueids(&before, "con2", "con2_2");
    let (_, gone_before) = uniqueids(&before, "con2", "con2_1");
    assert!(keep_before.is_some() && gone_before.is_some(), "{before:?}");

    let cut = Instant::now();
    lab.must(&["terminate", "b", "con2_1"]);
    let (down, line) = down_line(&agent, "con2_1", cut, Duration::from_secs(10));
    assert!(
        line.to_lowercase().contains("peer"),
        "cause names the peer: {line}"
    );
    let init = first_initiate(&charon.lines, "con2_1", down, Duration::from_secs(6))
        .unwrap_or_else(|| panic!("con2_1 not re-initiated:\n{}", agent.log()));
    let back = wait_for(Duration::from_secs(10), || {
        uniqueids(&sas(&uri), "con2", "con2_1")
            .1
            .is_some_and(|u| Some(u) != gone_before)
    })
    .map(|_| down.elapsed());
    eprintln!(
        "[{name}] '{line}' {} ms after the peer's terminate; first initiate {} ms after it ({}); \
         down line -> INSTALLED again {:?}",
        ms(down - cut),
        ms(init.0.saturating_duration_since(down)),
        init.1,
        back
    );
    assert!(back.is_some(), "con2_1 not back:\n{}", agent.log());

    // Let any wrongful reaction to con2_2 show.
    std::thread::sleep(Duration::from_secs(3));
    let after = sas(&uri);
    let (ike_after, keep_after) = uniqueids(&after, "con2", "con2_2");
    assert_eq!(ike_after, ike_before, "same IKE_SA: {after:?}");
    assert_eq!(keep_after, keep_before, "con2_2 untouched: {after:?}");
    let (_, children) = sa_counts(&after);
    assert_eq!(
        children,
        [
            ("con1".to_string(), 1),
            ("con2_1".to_string(), 1),
            ("con2_2".to_string(), 1)
        ]
    );
    let log_after: Vec<_> = agent
        .lines
        .all()
        .into_iter()
        .filter(|(at, _)| *at >= cut)
        .map(|(_, l)| l)
        .collect();
    assert!(
        !log_after.iter().any(|l| l.contains("] con2_2:")),
        "nothing about con2_2: {log_after:#?}"
    );
    let took = agent.stop();
    eprintln!("[{name}] swandog exited {} ms after SIGTERM", ms(took));
    assert!(
        took < Duration::from_secs(2),
        "slow exit on SIGTERM: {took:?}"
    );
    let con2_2_inits = charon
        .lines
        .all()
        .iter()
        .filter(|(at, l)| *at >= cut && l.contains("establishing CHILD_SA con2_2"))
        .count();
    assert_eq!(con2_2_inits, 0, "con2_2 was not re-initiated");
    let st = agent.status().expect("status");
    assert_eq!(
        child(&st, "con2_1").and_then(|c| c.get("reinitiations")?.as_f64()),
        Some(1.0),
        "{st:?}"
    );
    assert_eq!(
        child(&st, "con2_2").and_then(|c| c.get("reinitiations")?.as_f64()),
        Some(0.0),
        "{st:?}"
    );
    eprintln!(
        "[{name}] swandog after the peer's delete:\n{}",
        log_after.join("\n")
    );
}

#[test]
fn after_a_restart_of_the_local_charon_swandog_reconnects_and_brings_the_tunnels_back() {
    if lab_disabled(
        "after_a_restart_of_the_local_charon_swandog_reconnects_and_brings_the_tunnels_back",
    ) {
        return;
    }
    let name = "krest";
    let watched = ["con2_1", "con2_2"];
    let lab = Lab::up(name);
    let agent = Swandog::start(name, &lab.uri("a"), &args(&cap_flags()));
    wait_up(&agent, &watched);

    let stopped = Instant::now();
    lab.must(&["stop", "a"]);
    lab.must(&["start", "a"]);
    let started = Instant::now();
    // The restarted charon has no SA at all (start_action = none): only swandog brings them.
    let limit = Duration::from_millis(CAP_MS + SLACK_MS);
    let back = wait_for(limit, || installed_all(&lab, "a", &watched));
    eprintln!(
        "[{name}] local charon restarted in {} ms; start -> {watched:?} INSTALLED: {back:?}",
        ms(started - stopped)
    );
    assert!(
        back.is_some(),
        "not back after charon's restart:\n{}",
        agent.log()
    );
    let reconnected = agent
        .lines
        .find(stopped, |l| l.contains("connected to charon"))
        .is_some();
    assert!(reconnected, "{}", agent.log());
    std::thread::sleep(Duration::from_secs(2));
    // The command connection to the old charon is dead: it must not be used for the first
    // command to the new one (that fails and loses a re-learn or an attempt).
    let log = agent.log();
    assert!(
        !log.contains("Broken pipe") && !log.contains("Connection reset"),
        "a command went to the dead connection:\n{log}"
    );
}

// ---- the shapes routers have (issue 12): names, configs that change, many children -----------

/// Lines of the agent's log at or after `since` that contain `text`.
fn lines_since(agent: &Swandog, since: Instant, text: &str) -> Vec<String> {
    agent
        .lines
        .all()
        .into_iter()
        .filter(|(at, l)| *at >= since && l.contains(text))
        .map(|(_, l)| l)
        .collect()
}

#[test]
fn a_bad_watch_name_among_good_ones_never_stops_the_good_ones() {
    if lab_disabled("a_bad_watch_name_among_good_ones_never_stops_the_good_ones") {
        return;
    }
    let name = "kbadnm";
    let lab = Lab::up(name);
    let mut flags = cap_flags();
    // A typo (con2_l for con2_1's sibling) and a name that was never configured.
    flags.extend(["--watch".into(), "con1,con2_1,con2_l,office".into()]);
    let agent = Swandog::start(name, &lab.uri("a"), &args(&flags));
    wait_up(&agent, &["con1", "con2_1"]);
    let warned = agent
        .lines
        .wait(agent.started, Duration::from_secs(10), |l| {
            l.contains("watch: con2_l (did you mean con2_1?), office are not among")
        });
    assert!(warned.is_some(), "{}", agent.log());

    // The good names are kept: both dropped children come back by themselves.
    let t0 = Instant::now();
    lab.must(&["terminate", "a", "con1"]);
    lab.must(&["terminate", "a", "con2_1"]);
    let back = wait_for(Duration::from_millis(CAP_MS + SLACK_MS), || {
        installed_all(&lab, "a", &["con1", "con2_1"])
    });
    eprintln!("[{name}] con1 and con2_1 back {back:?} after a local terminate");
    assert!(back.is_some(), "{}", agent.log());
    // The missing names were said once, not once per poll.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        lines_since(&agent, agent.started, "are not among").len(),
        1,
        "{}",
        agent.log()
    );
    assert!(lines_since(&agent, t0, "no known cause").is_empty());
}

#[test]
fn configs_loaded_after_swandog_started_are_picked_up_and_brought_up() {
    if lab_disabled("configs_loaded_after_swandog_started_are_picked_up_and_brought_up") {
        return;
    }
    let name = "klate";
    let lab = Lab::up(name);
    // The router's boot order: charon's socket answers before `swanctl --load-all` has run.
    lab.must(&["stop", "a"]);
    lab.must(&["noconns", "a"]);
    lab.must(&["start", "a"]);
    let mut flags = cap_flags();
    flags.extend([
        "--watch".into(),
        "con1,con2_1,con2_2".into(),
        "--poll-interval-s".into(),
        "5".into(),
    ]);
    let agent = Swandog::start(name, &lab.uri("a"), &args(&flags));
    let said = agent
        .lines
        .wait(agent.started, Duration::from_secs(10), |l| {
            l.contains("charon has no connections loaded yet")
        });
    assert!(said.is_some(), "{}", agent.log());

    let loaded = Instant::now();
    lab.must(&["conns", "a"]);
    let back = wait_for(
        // The reconciling poll (5 s; stretched to 20 s on a busy box), the grace, and on a busy
        // box the paced attempts (one child at a time, 5 s apart).
        Duration::from_secs(20 + 1 + 2 * 5) + Duration::from_millis(SLACK_MS),
        || installed_all(&lab, "a", &["con1", "con2_1", "con2_2"]),
    );
    eprintln!("[{name}] swanctl --load-all -> all three INSTALLED by swandog: {back:?}");
    assert!(back.is_some(), "{}", agent.log());
    assert_eq!(
        lines_since(&agent, loaded, "watching con1, con2_1, con2_2").len(),
        1,
        "{}",
        agent.log()
    );
}

#[test]
fn a_child_removed_from_the_configuration_is_set_aside_not_reinitiated() {
    if lab_disabled("a_child_removed_from_the_configuration_is_set_aside_not_reinitiated") {
        return;
    }
    let name = "kdrop";
    let lab = Lab::up(name);
    let mut flags = cap_flags();
    flags.extend([
        "--watch".into(),
        "con2_1,con2_2".into(),
        "--poll-interval-s".into(),
        "5".into(),
    ]);
    let agent = Swandog::start(name, &lab.uri("a"), &args(&flags));
    wait_up(&agent, &["con2_1", "con2_2"]);

    // The operator deletes con2_2 from swanctl.conf and runs swanctl --load-all; its SA goes.
    let t0 = Instant::now();
    lab.must(&["drop", "a", "con2_2"]);
    lab.must(&["terminate", "a", "con2_2"]);
    let set_aside = agent.lines.wait(t0, Duration::from_secs(12), |l| {
        l.contains("con2_2: no longer in charon's configuration")
    });
    assert!(set_aside.is_some(), "{}", agent.log());
    std::thread::sleep(Duration::from_millis(CAP_MS + 2000));
    let failures = lines_since(&agent, t0, "con2_2: re-initiation failed");
    assert!(
        failures.len() <= 1 && failures.iter().all(|l| l.contains("no such configuration")),
        "re-initiated after its config was gone: {failures:?}\n{}",
        agent.log()
    );
    assert!(
        lines_since(&agent, t0, "no known cause").is_empty(),
        "{}",
        agent.log()
    );
    assert!(
        installed_all(&lab, "a", &["con2_1"]),
        "the other child is kept"
    );
    let (ok, st) = agent.wait_status(Duration::from_secs(5), |s| {
        child_state(s, "con2_2") == Some("not-kept")
    });
    assert!(ok, "status: {st:?}");
}

#[test]
fn a_local_child_terminate_is_one_line_with_the_right_cause() {
    if lab_disabled("a_local_child_terminate_is_one_line_with_the_right_cause") {
        return;
    }
    let name = "kterm";
    let lab = Lab::up(name);
    let agent = Swandog::start(name, &lab.uri("a"), &args(&cap_flags()));
    wait_up(&agent, &["con2_1", "con2_2"]);
    let t0 = Instant::now();
    lab.must(&["terminate", "a", "con2_2"]);
    let (_, down) = down_line(&agent, "con2_2", t0, Duration::from_secs(10));
    assert!(down.contains("terminated locally"), "{down}");
    std::thread::sleep(Duration::from_millis(500));
    let about: Vec<String> = agent
        .lines
        .all()
        .into_iter()
        .filter(|(at, l)| {
            *at >= t0
                && (l.contains("] con2_2:") || l.contains("] con2:"))
                && !l.contains("back up")
        })
        .map(|(_, l)| l)
        .collect();
    assert_eq!(about.len(), 1, "one line, one cause: {about:?}");
    assert!(
        lines_since(&agent, t0, "peer closed it").is_empty(),
        "{}",
        agent.log()
    );
}

#[test]
fn a_connection_with_18_children_comes_back_whole_after_an_outage() {
    if lab_disabled("a_connection_with_18_children_comes_back_whole_after_an_outage") {
        return;
    }
    let name = "kmany";
    let lab = Lab::up(name);
    lab.must(&["extra", "a", "18"]);
    lab.must(&["extra", "b", "18"]);
    let children: Vec<String> = (1..=18).map(|i| format!("con3_{i}")).collect();
    let want: Vec<&str> = children.iter().map(String::as_str).collect();
    let mut flags = cap_flags();
    flags.extend(["--watch".into(), "con3".into()]);
    let agent = Swandog::start(name, &lab.uri("a"), &args(&flags));
    // None is up yet: swandog brings up all 18 from the configuration.
    let up = wait_for(Duration::from_secs(30), || installed_all(&lab, "a", &want));
    eprintln!("[{name}] 18 configured children INSTALLED by swandog: {up:?}");
    assert!(up.is_some(), "{}", agent.log());
    wait_up(&agent, &want);

    let broke = Instant::now();
    lab.must(&["break"]);
    down_line(&agent, "con3_18", broke, Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(4));
    let healed = Instant::now();
    lab.must(&["heal"]);
    let back = wait_for(Duration::from_millis(CAP_MS + SLACK_MS + 10_000), || {
        installed_all(&lab, "a", &want)
    });
    eprintln!("[{name}] heal -> all 18 INSTALLED again: {back:?}");
    assert!(back.is_some(), "{}", agent.log());
    assert!(
        lines_since(&agent, broke, "no answer from charon").is_empty(),
        "an initiate was lost:\n{}",
        agent.log()
    );
    assert_eq!(
        lines_since(&agent, healed, "back up after").len(),
        18,
        "{}",
        agent.log()
    );
}

#[test]
fn a_route_based_child_never_seen_up_is_brought_up_from_swanctl_conf_and_a_policy_one_left() {
    if lab_disabled(
        "a_route_based_child_never_seen_up_is_brought_up_from_swanctl_conf_and_a_policy_one_left",
    ) {
        return;
    }
    let name = "kconf";
    let lab = Lab::up(name);
    // The router rebooted while the peer was away: nothing is up, and swandog never saw the
    // route-based children up. Only swanctl.conf says they are route-based (if_id_in/out).
    for c in ["con1", "con2_1", "con2_2"] {
        lab.must(&["terminate", "a", c]);
    }
    assert!(lab.installed("a").is_empty(), "{:?}", lab.installed("a"));
    let log = lab.must(&["log", "a"]);
    let conf = std::path::Path::new(log.trim())
        .parent()
        .expect("site dir")
        .join("swanctl/swanctl.conf");
    let mut flags = cap_flags();
    flags.extend(["--swanctl-conf".into(), conf.display().to_string()]);
    let agent = Swandog::start(name, &lab.uri("a"), &args(&flags));
    let back = wait_for(Duration::from_millis(CAP_MS + SLACK_MS), || {
        installed_all(&lab, "a", &["con2_1", "con2_2"])
    });
    eprintln!("[{name}] start -> con2_1, con2_2 INSTALLED from swanctl.conf: {back:?}");
    assert!(back.is_some(), "{}", agent.log());
    assert!(
        agent
            .log()
            .contains("2 route-based children: con2_1, con2_2"),
        "{}",
        agent.log()
    );
    // con1 is policy-based: left alone (no trap policy to replace, not swandog's to keep).
    std::thread::sleep(Duration::from_secs(3));
    assert!(!lab.installed("a").contains(&"con1".to_string()));
    assert!(!agent.log().contains("] con1:"), "{}", agent.log());
    // `check` says where each was found.
    let out = common::swandog()
        .args(["check", "--vici", &lab.uri("a"), "--swanctl-conf"])
        .arg(&conf)
        .output()
        .expect("swandog check");
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert!(
        text.contains("con2_1 (IKE con2): route-based (if_id_in) in swanctl.conf at ")
            && text.contains("swanctl.conf:"),
        "{text}"
    );
}
