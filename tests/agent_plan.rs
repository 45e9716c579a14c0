//! The live watch plan and the keeper's work hand-over, through the agent's public API with a
//! simulated charon speaking real VICI frames (see `sim`): configurations as routers have them
//! (dozens of children, configs loaded after swandog, children removed, a site outage of every
//! child at once). The same shapes against a real charon: tests/lab_keeper.rs.

mod sim;

use log::Level;
use swandog::agent::{Job, Millis, Settings};
use swandog::vici::sa::Name;

use sim::{Charon, Down, Seen, Sim};

const S: Millis = 1000;

#[derive(Default)]
struct Record {
    logs: Vec<(Millis, Level, String)>,
    jobs: Vec<(Millis, Job)>,
}

impl Record {
    fn obs(&mut self) -> impl FnMut(Millis, Seen<'_>) + '_ {
        |now, seen| match seen {
            Seen::Log(level, line) => self.logs.push((now, level, line.to_string())),
            Seen::Job(job) => self.jobs.push((now, job.clone())),
            Seen::Status(_) | Seen::Sample(_) => {}
        }
    }

    fn lines_with(&self, text: &str) -> Vec<&str> {
        self.logs
            .iter()
            .filter(|(_, _, l)| l.contains(text))
            .map(|(_, _, l)| l.as_str())
            .collect()
    }

    fn initiates_of(&self, child: &str) -> usize {
        self.jobs
            .iter()
            .filter(|(_, j)| matches!(j, Job::Initiate { child: c, .. } if c == child))
            .count()
    }

    fn dump(&self) -> String {
        self.logs
            .iter()
            .map(|(t, l, s)| format!("{t:>8} {l:<5} {s}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn settings(watch: &[&str]) -> Settings {
    let mut s = Settings::default();
    for w in watch {
        s.watch.push(Name::try_from(*w).unwrap()).unwrap();
    }
    s
}

/// Eight sites of eight route-based children each: 64 watched children, the most swandog keeps.
fn eight_sites() -> (Charon, Vec<String>, Vec<String>) {
    let mut charon = Charon::lab();
    charon.conns.clear();
    let mut conns = Vec::new();
    let mut children = Vec::new();
    for k in 0..8u32 {
        let conn = format!("site{k}");
        let kids: Vec<(String, u32)> = (0..8u32)
            .map(|j| (format!("site{k}_{j}"), 100 + k * 8 + j))
            .collect();
        let refs: Vec<(&str, u32)> = kids.iter().map(|(n, i)| (n.as_str(), *i)).collect();
        charon.add_conn(&conn, &refs);
        children.extend(kids.into_iter().map(|(n, _)| n));
        conns.push(conn);
    }
    (charon, conns, children)
}

#[test]
fn an_outage_of_64_watched_children_brings_every_one_back_with_no_lost_initiate() {
    let (charon, conns, children) = eight_sites();
    assert_eq!(children.len(), 64);
    let mut rec = Record::default();
    let names: Vec<&str> = conns.iter().map(String::as_str).collect();
    let mut sim = Sim::new(settings(&names), charon, String::new(), &mut rec.obs());
    sim.run_until(10 * S, &mut rec.obs());
    let watching = rec.lines_with("watching site0_0, site0_1");
    assert_eq!(
        watching.len(),
        1,
        "one line for the whole plan:\n{}",
        rec.dump()
    );
    assert!(watching[0].ends_with("more"), "{}", watching[0]);

    // The uplink dies: every IKE_SA goes down by DPD at once, and the peers stay away for a
    // minute, so every child is re-initiated, fails, and backs off.
    let t0 = sim.now;
    sim.charon.unreachable = true;
    for conn in &conns {
        let down = sim.charon.ike_updown(conn, false, Down::Dpd);
        sim.event(&down, &mut rec.obs());
    }
    sim.run_until(t0 + 60 * S, &mut rec.obs());
    let failed = rec.lines_with("re-initiation failed").len();
    assert_eq!(
        failed,
        64,
        "every child's first attempt was made and failed:\n{}",
        rec.dump()
    );

    // The uplink is back: every child comes back within the backoff cap.
    sim.charon.unreachable = false;
    sim.run_until(t0 + 60 * S + 70 * S, &mut rec.obs());
    for child in &children {
        assert!(sim.charon.is_up(child), "{child} not back:\n{}", rec.dump());
        assert!(rec.initiates_of(child) >= 2, "{child}");
    }
    assert!(
        rec.lines_with("no answer from charon").is_empty(),
        "an initiate was lost between the keeper and the worker:\n{}",
        rec.dump()
    );
    assert_eq!(
        rec.lines_with(": back up after").len(),
        64,
        "{}",
        rec.dump()
    );
}

#[test]
fn configs_loaded_after_swandog_started_are_picked_up_at_the_next_poll() {
    // The router's boot order: charon's socket answers before `swanctl --load-all` has run.
    let mut charon = Charon::lab();
    let loaded = std::mem::take(&mut charon.conns);
    let mut rec = Record::default();
    let mut sim = Sim::new(
        settings(&["con2_1,con2_2"]),
        charon,
        String::new(),
        &mut rec.obs(),
    );
    sim.run_until(5 * S, &mut rec.obs());
    let missing = rec.lines_with("charon has no connections loaded yet");
    assert_eq!(missing.len(), 1, "{}", rec.dump());

    // `swanctl --load-all` runs; the tunnels are not up yet (start_action none).
    let t0 = sim.now;
    sim.charon.conns = loaded;
    for conn in sim.charon.conns.iter_mut() {
        for c in conn.children.iter_mut() {
            c.up = false;
        }
    }
    sim.run_until(t0 + 40 * S, &mut rec.obs());
    assert!(
        sim.charon.is_up("con2_1") && sim.charon.is_up("con2_2"),
        "{}",
        rec.dump()
    );
    assert_eq!(
        rec.lines_with("watching con2_1, con2_2").len(),
        1,
        "{}",
        rec.dump()
    );
    assert_eq!(
        rec.lines_with("watch: every name is configured in charon now")
            .len(),
        1,
        "{}",
        rec.dump()
    );
    // Reported once while missing, not once per poll.
    assert_eq!(rec.lines_with("no connections loaded").len(), 1);
}

#[test]
fn a_child_removed_from_the_configuration_is_set_aside_not_reinitiated_forever() {
    let mut rec = Record::default();
    let mut sim = Sim::new(
        settings(&["con2_1,con2_2"]),
        Charon::lab(),
        String::new(),
        &mut rec.obs(),
    );
    sim.run_until(5 * S, &mut rec.obs());
    // `swanctl --load-all` after con2_2 was deleted from swanctl.conf, then its SA goes.
    let t0 = sim.now;
    let down = sim.charon.child_updown("con2_2", false, Down::PeerDelete);
    let (i, j) = sim.charon.find("con2_2");
    sim.charon.conns[i].children.remove(j);
    sim.event(&down, &mut rec.obs());
    sim.run_until(t0 + 10 * 60 * S, &mut rec.obs());
    let set_aside = rec.lines_with("con2_2: no longer in charon's configuration");
    assert_eq!(set_aside.len(), 1, "{}", rec.dump());
    assert!(
        rec.initiates_of("con2_2") <= 1,
        "re-initiated {} times after its config was gone:\n{}",
        rec.initiates_of("con2_2"),
        rec.dump()
    );
    assert!(
        rec.lines_with("no known cause").is_empty(),
        "a missing config is not an unknown cause:\n{}",
        rec.dump()
    );
    assert!(sim.charon.is_up("con2_1"), "the other child is kept");
    assert_eq!(
        sim.agent.counters().children_unconfigured,
        1,
        "counted for status"
    );
}

#[test]
fn a_local_child_terminate_is_one_line_with_the_right_cause() {
    let mut rec = Record::default();
    let mut sim = Sim::new(
        settings(&["con2_1,con2_2"]),
        Charon::lab(),
        String::new(),
        &mut rec.obs(),
    );
    sim.run_until(5 * S, &mut rec.obs());
    let t0 = sim.now;
    // `swanctl --terminate --child con2_2`: charon logs the peer's DELETE answer, then the
    // child-updown shows the local CHILD_DELETE task.
    let log = sim.charon.log(
        b"log",
        "con2",
        "received DELETE for ESP CHILD_SA with SPI c1a2b3c4",
    );
    sim.event(&log, &mut rec.obs());
    let down = sim.charon.child_updown("con2_2", false, Down::Local);
    sim.event(&down, &mut rec.obs());
    sim.run_until(t0 + 500, &mut rec.obs());
    let about: Vec<&str> = rec
        .logs
        .iter()
        .filter(|(t, _, l)| *t >= t0 && (l.contains("con2_2") || l.starts_with("con2:")))
        .map(|(_, _, l)| l.as_str())
        .collect();
    assert_eq!(about.len(), 1, "{about:?}");
    assert!(about[0].contains("terminated locally"), "{about:?}");
    assert!(
        rec.lines_with("peer closed it").is_empty(),
        "{}",
        rec.dump()
    );
}

#[test]
fn an_alert_names_the_failure_cause_before_any_log_line() {
    // strongSwan 6.0.3+: charon raises `proposal-mismatch-child` for the failing initiate; its
    // log line alone would have said "no reply". The alert wins, and the line says it once.
    let mut rec = Record::default();
    let mut sim = Sim::new(
        settings(&["con2_1,con2_2"]),
        Charon::lab(),
        String::new(),
        &mut rec.obs(),
    );
    sim.agent.on_vici_link(0, false, false);
    sim.agent.on_vici_link(sim.now, true, true);
    sim.run_until(5 * S, &mut rec.obs());
    let t0 = sim.now;
    sim.charon.unreachable = true;
    sim.charon.alert_on_failure = Some("proposal-mismatch-child");
    let down = sim.charon.child_updown("con2_2", false, Down::PeerDelete);
    sim.event(&down, &mut rec.obs());
    sim.run_until(t0 + 30 * S, &mut rec.obs());
    let failed = rec.lines_with("con2_2: re-initiation failed");
    assert_eq!(failed.len(), 1, "{}", rec.dump());
    assert!(
        failed[0].contains("no proposal chosen (crypto proposals differ)"),
        "{}",
        failed[0]
    );
    assert_eq!(
        rec.lines_with("con2_2: proposal-mismatch:").len(),
        1,
        "one advice line per cause while it lasts:\n{}",
        rec.dump()
    );
    // A DPD give-up alert on an established IKE_SA is not a configuration error: no line.
    let dpd = sim.charon.alert("retransmit-send-timeout", "con1");
    sim.event(&dpd, &mut rec.obs());
    assert!(
        rec.lines_with("con1: no-reply").is_empty(),
        "{}",
        rec.dump()
    );
}
