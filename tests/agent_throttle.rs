//! The agent's own pace under a simulated load spike, through its public API only: what `poll`
//! hands the shell (list-sas jobs, status writes, log lines, initiates) and how long the shell is
//! told to wait between load samples. Simulated clock, a simulated charon speaking real VICI
//! frames (see `sim`).

mod sim;

use log::Level;
use swandog::agent::{Job, Millis, Settings};
use swandog::limits::{KEEPER_PACED_GAP_MS, KEEPER_RECONCILE_WAIT_MS};
use swandog::vici::sa::Name;

use sim::{captured, Charon, Down, Seen, Sim};

const BUSY: u16 = 970;
const QUIET: u16 = 200;

/// Everything the simulated shell saw, with times.
#[derive(Default)]
struct Record {
    logs: Vec<(Millis, Level, String)>,
    jobs: Vec<(Millis, Job)>,
    statuses: Vec<(Millis, String)>,
    samples: Vec<(Millis, u64)>,
}

impl Record {
    fn obs(&mut self) -> impl FnMut(Millis, Seen<'_>) + '_ {
        |now, seen| match seen {
            Seen::Log(level, line) => self.logs.push((now, level, line.to_string())),
            Seen::Job(job) => self.jobs.push((now, job.clone())),
            Seen::Status(text) => self.statuses.push((now, text.to_string())),
            Seen::Sample(next) => self.samples.push((now, next)),
        }
    }

    fn list_sas_between(&self, from: Millis, to: Millis) -> Vec<Millis> {
        self.jobs
            .iter()
            .filter(|(t, j)| *j == Job::ListSas && (from..to).contains(t))
            .map(|(t, _)| *t)
            .collect()
    }

    fn sample_gaps_between(&self, from: Millis, to: Millis) -> Vec<Millis> {
        let times: Vec<Millis> = self
            .samples
            .iter()
            .map(|(t, _)| *t)
            .filter(|t| (from..to).contains(t))
            .collect();
        gaps(&times)
    }

    fn lines_with(&self, text: &str) -> Vec<Millis> {
        self.logs
            .iter()
            .filter(|(_, _, l)| l.contains(text))
            .map(|(t, _, _)| *t)
            .collect()
    }

    fn initiates_of(&self, child: &str) -> Vec<Millis> {
        self.jobs
            .iter()
            .filter(|(_, j)| matches!(j, Job::Initiate { child: c, .. } if c == child))
            .map(|(t, _)| *t)
            .collect()
    }

    fn dump(&self) -> String {
        let mut out = String::new();
        for (t, level, line) in &self.logs {
            out.push_str(&format!("{:>8} ms {level:<5} {line}\n", t));
        }
        out
    }
}

/// `items` is not empty and every one passes (`.all()` alone holds for an empty list).
fn every<T>(items: &[T], f: impl FnMut(&T) -> bool) -> bool {
    !items.is_empty() && items.iter().all(f)
}

fn gaps(times: &[Millis]) -> Vec<Millis> {
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

fn settings() -> Settings {
    let mut s = Settings::default();
    for n in ["con1", "con2_1", "con2_2"] {
        s.watch.push(Name::try_from(n).unwrap()).unwrap();
    }
    s
}

fn pace_in(status: &str) -> &str {
    let at = status.find("\"pace\":\"").expect("pace in status JSON") + 8;
    let end = status[at..].find('"').unwrap();
    &status[at..at + end]
}

#[test]
fn load_spike_stretches_sampling_and_list_sas_polls_and_they_return_after_it() {
    let base = Settings::default().throttle;
    let mut r = Record::default();
    let mut sim = Sim::new(settings(), Charon::lab(), String::new(), &mut r.obs());

    sim.busy_permille = QUIET;
    sim.run_until(300_000, &mut r.obs());
    assert!(every(&r.sample_gaps_between(10_000, 300_000), |&g| {
        g == base.sample_interval_ms
    }));
    let polls = r.list_sas_between(1, 300_000);
    assert!(
        every(&gaps(&polls), |&g| g == base.poll_interval_ms),
        "{polls:?}"
    );
    assert_eq!(pace_in(&r.statuses.last().unwrap().1), "normal");

    // The spike: five minutes at 97 %.
    sim.busy_permille = BUSY;
    sim.run_until(900_000, &mut r.obs());
    let slowed = r.lines_with("throttle: box busy");
    assert_eq!(slowed.len(), 1, "logged once:\n{}", r.dump());
    assert!(
        slowed[0] <= 300_000 + 3 * base.sample_interval_ms,
        "busy after 3 samples, at {}",
        slowed[0]
    );
    let stretched = r.sample_gaps_between(310_000, 900_000);
    assert!(
        every(&stretched, |&g| g == 2 * base.sample_interval_ms),
        "sampling every 2 s while busy: {stretched:?}"
    );
    let polls = r.list_sas_between(310_000, 900_000);
    let poll_gaps = gaps(&polls);
    assert!(
        !poll_gaps.is_empty()
            && poll_gaps
                .iter()
                .all(|&g| g == base.poll_interval_ms * base.stretch),
        "list-sas every {} s while busy: {polls:?}",
        base.poll_interval_ms * base.stretch / 1000
    );
    let during: Vec<&str> = r
        .statuses
        .iter()
        .filter(|(t, _)| (310_000..900_000).contains(t))
        .map(|(_, s)| pace_in(s))
        .collect();
    assert!(!during.is_empty() && during.iter().all(|p| *p == "box-busy"));

    // Quiet again.
    sim.busy_permille = QUIET;
    sim.run_until(1_500_000, &mut r.obs());
    let back = r.lines_with("back to normal pace");
    assert_eq!(back.len(), 1, "{}", r.dump());
    assert!(
        back[0] <= 900_000 + 10 * 2 * base.sample_interval_ms,
        "normal after 10 quiet samples, at {}",
        back[0]
    );
    assert!(every(
        &r.sample_gaps_between(back[0] + 1, 1_500_000),
        |&g| { g == base.sample_interval_ms }
    ));
    // The poll scheduled at the slow pace runs, then the normal interval is back.
    let polls = r.list_sas_between(back[0] + base.poll_interval_ms * base.stretch, 1_500_000);
    assert!(
        polls.len() >= 3 && gaps(&polls).iter().all(|&g| g == base.poll_interval_ms),
        "{polls:?}"
    );
    assert_eq!(pace_in(&r.statuses.last().unwrap().1), "normal");
    assert!(r.statuses.last().unwrap().1.contains("\"pace_changes\":2"));
}

#[test]
fn deferred_summary_and_status_writes_happen_later_not_never() {
    let mut s = settings();
    s.summary_interval_ms = 600_000;
    s.status_interval_ms = 10_000;
    let mut r = Record::default();
    let mut sim = Sim::new(s, Charon::lab(), String::new(), &mut r.obs());
    sim.busy_permille = BUSY;
    // Busy for 50 minutes without a break: the run itself asserts that the shell is never told
    // to wake at once again and again (a deferred summary must not make it spin).
    sim.run_until(3_000_000, &mut r.obs());
    let summaries = r.lines_with("DPD failures:");
    assert!(
        !summaries.is_empty(),
        "deferred, not dropped:\n{}",
        r.dump()
    );
    assert!(
        summaries[0] > 600_000 && summaries[0] <= 600_000 + 3 * 600_000,
        "first summary deferred past its time, at most 3 intervals: {summaries:?}"
    );
    // Periodic status rewrites stretch from 10 s to 60 s while busy; changes (here: each
    // list-sas snapshot, every 120 s) still go out.
    let writes: Vec<Millis> = r
        .statuses
        .iter()
        .map(|(t, _)| *t)
        .filter(|t| (100_000..3_000_000).contains(t))
        .collect();
    let span = 2_900_000;
    assert!(
        writes.len() as u64 <= span / 60_000 + span / 120_000 + 2,
        "{} writes: {writes:?}",
        writes.len()
    );
    assert!(every(&gaps(&writes), |&g| g <= 60_000), "{writes:?}");

    // The load ends: the next deferred summary goes out as soon as the pace is normal again.
    let next_due = summaries.last().unwrap() + 600_000;
    sim.run_until(next_due + 60_000, &mut r.obs());
    sim.busy_permille = QUIET;
    let quiet_from = sim.now;
    sim.run_until(next_due + 600_000, &mut r.obs());
    let back = r.lines_with("back to normal pace");
    assert_eq!(back.len(), 1, "{}", r.dump());
    let late = r.lines_with("DPD failures:");
    let after: Vec<_> = late.iter().filter(|&&t| t > quiet_from).collect();
    assert_eq!(
        after.first().copied(),
        Some(&back[0]),
        "the deferred summary goes out with the return to normal pace: {late:?}"
    );
    let writes: Vec<Millis> = r
        .statuses
        .iter()
        .map(|(t, _)| *t)
        .filter(|t| *t > back[0] + 60_000)
        .collect();
    assert!(
        writes.len() >= 10 && gaps(&writes).iter().all(|&g| g <= 10_000),
        "status every 10 s again: {writes:?}"
    );
}

#[test]
fn dropped_watched_children_are_reinitiated_within_the_backoff_cap_while_busy() {
    let s = settings();
    let cap = s.keeper.backoff_cap_ms;
    let mut r = Record::default();
    let mut sim = Sim::new(s, Charon::lab(), String::new(), &mut r.obs());
    sim.busy_permille = BUSY;
    sim.run_until(100_000, &mut r.obs());
    assert_eq!(r.lines_with("throttle: box busy").len(), 1);

    // The peer is gone: it deleted con2_1 (captured frame), then its whole con2 IKE_SA and con1.
    sim.charon.unreachable = true;
    let frame = captured("child-updown-down-peer-delete.bin");
    let event = sim.charon.replay(&frame);
    sim.charon.set_up("con2_1", false);
    sim.event(&event, &mut r.obs());
    let event = sim.charon.ike_updown("con2", false, Down::PeerDelete);
    sim.event(&event, &mut r.obs());
    let event = sim.charon.child_updown("con1", false, Down::PeerDelete);
    sim.event(&event, &mut r.obs());
    let dropped_at = sim.now;

    sim.run_until(dropped_at + 600_000, &mut r.obs());
    let back_at = sim.now;
    sim.charon.unreachable = false;
    sim.run_until(back_at + 300_000, &mut r.obs());

    let mut all = Vec::new();
    for child in ["con1", "con2_1", "con2_2"] {
        let tries = r.initiates_of(child);
        assert!(tries.len() >= 5, "{child}: {tries:?}\n{}", r.dump());
        assert!(
            tries[0] - dropped_at <= cap,
            "{child}: first try {} ms after the drop",
            tries[0] - dropped_at
        );
        let mut times = vec![dropped_at];
        times.extend(&tries);
        let worst = gaps(&times).into_iter().max().unwrap();
        assert!(
            worst <= cap + KEEPER_RECONCILE_WAIT_MS,
            "{child}: {worst} ms between tries while busy (cap {cap}): {tries:?}"
        );
        let last = *tries.last().unwrap();
        assert!(
            last > back_at && last - back_at <= cap + KEEPER_RECONCILE_WAIT_MS,
            "{child}: back within the cap once the peer answers"
        );
        assert!(sim.charon.is_up(child), "{child} is up again");
        all.extend(tries);
    }
    // Paced while busy: children that dropped together are not initiated together, but one
    // after the other, KEEPER_PACED_GAP_MS apart (later, a child whose cap is reached goes at once).
    let mut firsts: Vec<Millis> = ["con1", "con2_1", "con2_2"]
        .iter()
        .map(|c| r.initiates_of(c)[0])
        .collect();
    firsts.sort();
    assert!(
        gaps(&firsts).iter().all(|&g| g >= KEEPER_PACED_GAP_MS),
        "paced first tries: {firsts:?}"
    );
    all.sort();
    assert_eq!(r.lines_with("back up after").len(), 3, "{}", r.dump());
    assert!(r.lines_with("back to normal pace").is_empty());
}

#[test]
fn a_site_outage_queues_an_initiate_for_every_watched_child_none_dropped() {
    let mut s = settings();
    s.watch.clear();
    let mut charon = Charon::lab();
    let kids: Vec<(String, u32)> = (0..8u32).map(|j| (format!("hub_{j}"), 200 + j)).collect();
    let kids: Vec<(&str, u32)> = kids.iter().map(|(n, i)| (n.as_str(), *i)).collect();
    charon.add_conn("hub", &kids);
    let mut r = Record::default();
    let mut sim = Sim::new(s, charon, String::new(), &mut r.obs());
    sim.busy_permille = QUIET;
    sim.run_until(60_000, &mut r.obs());
    // The whole hub goes down at once, and the peer answers again right away.
    let e = sim.charon.ike_updown("hub", false, Down::PeerDelete);
    sim.event(&e, &mut r.obs());
    let down_at = sim.now;
    sim.run_until(down_at + 30_000, &mut r.obs());
    for j in 0..8 {
        let child = format!("hub_{j}");
        let tries = r.initiates_of(&child);
        assert!(
            !tries.is_empty() && tries[0] - down_at <= 5_000,
            "{child}: {tries:?}\n{}",
            r.dump()
        );
        assert!(sim.charon.is_up(&child), "{child}");
    }
    let last = &r.statuses.last().unwrap().1;
    assert!(last.contains("\"table_overflows\":0,"), "{last}");
}
