//! Replayed tunnel life with a simulated clock: load from generated `/proc/stat` text, charon's
//! log lines and down events, through the pure pieces exactly as the agent wires them.

use swandog::agent::correlate::{format_dpd_line, verdict, LoadThresholds, RateClass, RateTracker};
use swandog::agent::diagnose::{classify_ike_down, classify_log, DpdTracker};
use swandog::agent::history::LoadHistory;
use swandog::agent::Millis;
use swandog::limits::VERDICT_FALLBACK_WINDOW_MS;
use swandog::sample::load::{parse_stat, LoadSample, LoadSampler, Reading};

/// Jiffies per CPU per second (USER_HZ).
const HZ: u64 = 100;
const CPUS: usize = 2;

/// The pure core of the agent for these scenarios.
struct Sim {
    now: Millis,
    /// Per CPU: user, system, idle, softirq jiffies.
    jiffies: [[u64; 4]; CPUS],
    sampler: LoadSampler,
    history: LoadHistory,
    rates: RateTracker,
    dpd: DpdTracker,
    thresholds: LoadThresholds,
    lines: Vec<String>,
}

impl Sim {
    fn new() -> Sim {
        let mut sim = Sim {
            now: 0,
            jiffies: [[1_000, 500, 50_000, 100]; CPUS],
            sampler: LoadSampler::new(),
            history: LoadHistory::new(),
            rates: RateTracker::new(),
            dpd: DpdTracker::new(),
            thresholds: LoadThresholds::default(),
            lines: Vec::new(),
        };
        sim.read_proc();
        sim
    }

    fn proc_stat(&self) -> String {
        let line = |label: &str, [user, system, idle, softirq]: [u64; 4]| {
            format!("{label} {user} 0 {system} {idle} 0 0 {softirq} 0 0 0\n")
        };
        let mut all = [0; 4];
        for cpu in &self.jiffies {
            for (a, j) in all.iter_mut().zip(cpu) {
                *a += j;
            }
        }
        let mut text = line("cpu ", all);
        for (n, cpu) in self.jiffies.iter().enumerate() {
            text.push_str(&line(&format!("cpu{n}"), *cpu));
        }
        text.push_str("intr 1 0 0\nctxt 2\n");
        text
    }

    fn read_proc(&mut self) {
        let reading = Reading {
            stat: parse_stat(self.proc_stat().as_bytes()).unwrap(),
            psi_some_avg10_centi: None,
        };
        if let Some(s) = self.sampler.sample(self.now, &reading) {
            self.on_load(&s);
        }
    }

    fn on_load(&mut self, s: &LoadSample) {
        self.history.push(s);
        self.rates.on_sample(s, &self.thresholds);
    }

    /// Runs `secs` seconds with every CPU `busy_percent` busy (a third of it in softirq).
    fn run(&mut self, secs: u64, busy_percent: u64) {
        for _ in 0..secs {
            for cpu in &mut self.jiffies {
                let busy = HZ * busy_percent / 100;
                cpu[0] += busy - busy / 3;
                cpu[3] += busy / 3;
                cpu[2] += HZ - busy;
            }
            self.now += 1000;
            self.read_proc();
        }
    }

    fn log(&mut self, ike: &str, msg: &str) {
        if let Some(signal) = classify_log(msg) {
            self.dpd.on_log(ike, signal, self.now);
        }
    }

    /// An `ike-updown` down: logs one verdict line if it is a DPD failure.
    fn ike_down(&mut self, ike: &str, state: &str, active: &[&str], passive: &[&str]) {
        let cause = classify_ike_down(state, active.iter().copied(), passive.iter().copied());
        let unanswered = self.dpd.take(ike, self.now);
        let dpd_failure = cause.is_dpd_failure() || unanswered.is_some_and(|u| u.is_dpd_failure());
        if !dpd_failure {
            return;
        }
        let from = unanswered.map_or(self.now.saturating_sub(VERDICT_FALLBACK_WINDOW_MS), |u| {
            u.since
        });
        let v = verdict(&self.history, from, self.now, &self.thresholds);
        self.rates.on_dpd_failure(&v);
        let mut line = String::new();
        format_dpd_line(ike, &v, &mut line).unwrap();
        self.lines.push(line);
    }

    /// An IKEv2 DPD with strongSwan's default retransmissions (4 s × 1.8^n, 5 tries): the peer
    /// is declared dead 165 s after the request, while the box runs at `busy_percent`.
    fn ikev2_dpd_failure(&mut self, ike: &str, busy_percent: u64) {
        self.log(ike, "sending DPD request");
        let mut elapsed = 0;
        for (n, at) in [4, 11, 24, 48, 90].into_iter().enumerate() {
            self.run(at - elapsed, busy_percent);
            elapsed = at;
            self.log(
                ike,
                &format!("retransmit {} of request with message ID 9", n + 1),
            );
        }
        self.run(165 - elapsed, busy_percent);
        self.log(ike, "giving up after 5 retransmits");
        self.ike_down(ike, "ESTABLISHED", &["IKE_DPD"], &[]);
    }
}

#[test]
fn the_same_dpd_failure_gets_opposite_verdicts_with_and_without_load() {
    let mut loaded = Sim::new();
    loaded.run(300, 10);
    loaded.ikev2_dpd_failure("con1", 98);

    let mut quiet = Sim::new();
    quiet.run(300, 10);
    quiet.ikev2_dpd_failure("con1", 10);

    assert_eq!(loaded.lines.len(), 1);
    assert_eq!(
        loaded.lines[0],
        "con1: DPD failure [load-correlated]: box busy avg 98.0% peak 98.0%, 165 s of 165 s \
         above 85%; DPD may need disabling on this tunnel, or the hardware is beyond its capacity\
         ; busy_avg_pct=98.0 busy_peak_pct=98.0 above_s=165.0 sampled_s=165.0 window_s=165.0"
    );
    assert_eq!(quiet.lines.len(), 1);
    assert_eq!(
        quiet.lines[0],
        "con1: DPD failure [not-load-correlated]: box busy avg 10.0% peak 10.0%, 0.0 s of 165 s \
         above 85%; peer down or path blocked: check the peer and UDP 500/4500\
         ; busy_avg_pct=10.0 busy_peak_pct=10.0 above_s=0.0 sampled_s=165.0 window_s=165.0"
    );
}

#[test]
fn a_load_spike_that_ended_before_the_dpd_request_does_not_count() {
    let mut sim = Sim::new();
    sim.run(100, 10);
    sim.run(200, 100);
    sim.run(30, 10); // idle dpd_delay, then the DPD request
    sim.ikev2_dpd_failure("con1", 10);
    assert!(
        sim.lines[0].contains("[not-load-correlated]"),
        "{}",
        sim.lines[0]
    );
}

#[test]
fn a_spike_over_part_of_the_window_counts_when_it_is_long_enough() {
    let mut sim = Sim::new();
    sim.run(60, 10);
    sim.log("con1", "sending DPD request");
    sim.run(60, 10);
    sim.run(60, 95);
    sim.run(45, 10);
    sim.log("con1", "giving up after 5 retransmits");
    sim.ike_down("con1", "ESTABLISHED", &["IKE_DPD"], &[]);
    assert!(sim.lines[0].starts_with("con1: DPD failure [load-correlated]"));
    assert!(
        sim.lines[0].contains("60 s of 165 s above 85%"),
        "{}",
        sim.lines[0]
    );
}

#[test]
fn peer_delete_and_local_terminate_are_not_dpd_failures() {
    let mut sim = Sim::new();
    sim.run(300, 99);
    sim.log("con1", "sending DPD request");
    sim.log("con1", "received DELETE for IKE_SA con1[3]");
    sim.ike_down("con1", "DELETING", &[], &["IKE_DELETE"]);
    sim.run(10, 99);
    sim.log("con2", "retransmit 1 of request with message ID 4");
    sim.ike_down("con2", "DELETING", &["IKE_DELETE"], &[]);
    assert!(sim.lines.is_empty(), "{:?}", sim.lines);
    assert_eq!(sim.rates.loaded_failures() + sim.rates.quiet_failures(), 0);
}

#[test]
fn ikev1_dpd_timeout_is_a_dpd_failure_though_the_down_event_does_not_say_so() {
    let mut sim = Sim::new();
    sim.run(120, 5);
    sim.log("v1", "sending DPD request");
    sim.run(30, 5);
    sim.log("v1", "sending DPD request");
    sim.run(120, 5);
    sim.log("v1", "DPD check timed out, enforcing DPD action");
    sim.ike_down("v1", "ESTABLISHED", &[], &[]);
    assert_eq!(sim.lines.len(), 1);
    assert!(sim.lines[0].contains("[not-load-correlated]"));
    assert!(sim.lines[0].contains("of 150 s above"), "{}", sim.lines[0]);
}

#[test]
fn rate_ratio_over_a_simulated_week_blames_load() {
    // One sample per second for 7 days; a 2-hour backup at 20:00 pegs the box every evening.
    // One DPD failure in each backup, one on a quiet afternoon.
    const DAY_S: u64 = 86_400;
    let t = LoadThresholds::default();
    let mut history = LoadHistory::new();
    let mut rates = RateTracker::new();
    let mut dpd = DpdTracker::new();
    let mut classes = vec![rates.class()];
    let mut summaries = Vec::new();
    for second in 1..=7 * DAY_S {
        let at = second * 1000;
        let of_day = second % DAY_S;
        let busy = if (72_000..79_200).contains(&of_day) {
            970
        } else {
            150
        };
        let s = LoadSample {
            at,
            span_ms: 1000,
            busy_permille: busy,
            softirq_permille: busy / 3,
            ..Default::default()
        };
        history.push(&s);
        rates.on_sample(&s, &t);
        let failure_in_backup = of_day == 75_000;
        let quiet_failure = second == 3 * DAY_S + 50_000;
        if of_day + 165 == 75_000 || second + 165 == 3 * DAY_S + 50_000 {
            dpd.on_log("con1", classify_log("sending DPD request").unwrap(), at);
        }
        if failure_in_backup || quiet_failure {
            dpd.on_log(
                "con1",
                classify_log("giving up after 5 retransmits").unwrap(),
                at,
            );
            let u = dpd.take("con1", at).unwrap();
            let v = verdict(&history, u.since, at, &t);
            assert_eq!(v.load_correlated, failure_in_backup);
            rates.on_dpd_failure(&v);
        }
        if rates.class() != *classes.last().unwrap() {
            classes.push(rates.class());
        }
        if second % DAY_S == 0 {
            let mut line = String::new();
            rates.format_summary(&mut line).unwrap();
            summaries.push(line);
        }
    }
    for line in &summaries {
        println!("{line}");
    }
    assert_eq!((rates.loaded_failures(), rates.quiet_failures()), (7, 1));
    assert_eq!(rates.loaded_ms(), 7 * 2 * 3_600_000);
    assert_eq!(rates.class(), RateClass::LoadWorse);
    // 7 in 14 h vs 1 in 154 h: 77 times as often.
    assert_eq!(rates.ratio_centi(), Some(7_700));
    assert_eq!(
        summaries.last().unwrap(),
        "DPD failures: 7 in 14.0 h loaded (0.500/h) vs 1 in 154.0 h quiet (0.006/h): \
         tunnels die 77x more often under load"
    );
    assert_eq!(classes, [RateClass::InsufficientData, RateClass::LoadWorse]);
}
