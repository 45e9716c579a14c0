//! Fault injection: the real `swandog run` binary against a scripted fake charon
//! (`tests/common/fake_vici.rs`), for the faults a real charon will not make on demand.
//!
//! For each fault: swandog stays up (same pid), logs it once (not once per frame or per retry),
//! counts it in the status file (`counters.wire_faults`, `counters.command_failures`,
//! `vici.connected`), reconnects with growing delays, keeps its memory flat, and recovers fully
//! once the peer behaves: the fake then answers `list-sas` with the real captured frames and the
//! status shows the route-based children `con2_1` and `con2_2` up again.

#[path = "common/agent.rs"]
mod agent;
mod common;
#[path = "common/fake_vici.rs"]
mod fake_vici;

use std::time::{Duration, Instant, SystemTime};

use agent::{number, test_dir, Agent};
use fake_vici::{captured, FakeVici, Flood, Mode};

/// Generous: these tests share two cores with the rest of the suite.
const SETTLE: Duration = Duration::from_secs(20);

/// A quiet box that never changes, and a CPU budget of a whole core: these tests are about VICI
/// faults, not about the throttle reacting to whatever else loads the test machine.
fn quiet(extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["--cpu-budget-permille", "1000"]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect();
    args.push("--quiet-proc".into());
    args
}

/// A fake in healthy mode and swandog connected to it, both children seen up.
fn healthy_start(name: &str, extra: &[&str]) -> (FakeVici, Agent) {
    let dir = test_dir(name);
    let fake = FakeVici::start(&dir.join("charon.vici"), Mode::Healthy);
    let mut agent = Agent::start(&dir, &fake.uri(), &quiet(extra));
    agent.wait("connected, con2_1 and con2_2 up", SETTLE, |a| {
        a.connected() && a.children_up()
    });
    (fake, agent)
}

/// Gaps between successive times.
fn gaps(times: &[Instant]) -> Vec<Duration> {
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

/// Reconnections after a fault: at least 3, each gap at least 1.5 times the one before (the
/// shell's exponential backoff, 250 ms doubling), never a tight loop.
fn assert_backoff(what: &str, times: &[Instant]) {
    let g = gaps(times);
    eprintln!("{what}: reconnection gaps {g:?}");
    assert!(g.len() >= 3, "{what}: only {} reconnections", g.len());
    assert!(
        g[0] >= Duration::from_millis(200),
        "{what}: first gap {g:?}"
    );
    for w in g.windows(2) {
        assert!(
            w[1].as_millis() * 10 >= w[0].as_millis() * 15,
            "{what}: gaps do not grow: {g:?}"
        );
    }
}

/// Heals the fake and waits for a full recovery: connected again, both children up, seen by a
/// fresh list-sas.
fn heal_and_recover(fake: &FakeVici, agent: &mut Agent) {
    let commands_before = fake.commands().len();
    fake.set_mode(Mode::Healthy);
    agent.wait(
        "recovery after the peer behaves",
        Duration::from_secs(40),
        |a| {
            a.connected()
                && a.children_up()
                && fake.commands()[commands_before..]
                    .iter()
                    .any(|c| c == "list-sas")
        },
    );
}

#[test]
fn garbage_bytes_are_logged_once_counted_and_reconnected_with_backoff() {
    let (fake, mut agent) = healthy_start("garbage", &[]);
    let pid = agent.pid();
    let links_before = fake.event_connections().len();

    fake.set_mode(Mode::Garbage);
    let fault_at = Instant::now();
    agent.wait("garbage noticed", SETTLE, |a| !a.connected());
    std::thread::sleep(Duration::from_secs(8));
    let json = agent.fresh_status(SETTLE);
    eprintln!("during garbage: {json}");
    assert!(number(&json, "wire_faults").unwrap_or(0) >= 3, "{json}");
    assert_eq!(
        agent.log_lines_with("malformed VICI frame"),
        1,
        "{}",
        agent.log()
    );
    let relinks: Vec<Instant> = fake
        .event_connections()
        .into_iter()
        .skip(links_before)
        .filter(|t| *t > fault_at)
        .collect();
    assert_backoff("garbage", &relinks);

    heal_and_recover(&fake, &mut agent);
    assert_eq!(agent.pid(), pid);
    assert_eq!(
        agent.log_lines_with("connected to charon"),
        2,
        "{}",
        agent.log()
    );
}

#[test]
fn truncated_frames_are_logged_once_counted_and_reconnected_with_backoff() {
    let (fake, mut agent) = healthy_start("trunc", &[]);
    let links_before = fake.event_connections().len();

    fake.set_mode(Mode::Truncated);
    let fault_at = Instant::now();
    agent.wait("truncation noticed", SETTLE, |a| !a.connected());
    std::thread::sleep(Duration::from_secs(8));
    let json = agent.fresh_status(SETTLE);
    eprintln!("during truncation: {json}");
    assert!(number(&json, "wire_faults").unwrap_or(0) >= 3, "{json}");
    assert_eq!(
        agent.log_lines_with("truncated VICI data"),
        1,
        "{}",
        agent.log()
    );
    let relinks: Vec<Instant> = fake
        .accepts()
        .into_iter()
        .filter(|t| *t > fault_at)
        .collect();
    let _ = links_before;
    assert_backoff("truncated", &relinks);

    heal_and_recover(&fake, &mut agent);
}

#[test]
fn length_prefix_over_512_kib_is_refused_and_frames_over_the_buffer_are_skipped() {
    let (fake, mut agent) = healthy_start("oversz", &[]);
    let links_before = fake.event_connections().len();

    // Legal VICI, too big for swandog's 16 KiB buffer (VICI_RECV_BUFFER_BYTES): skipped whole, the connection kept.
    fake.set_mode(Mode::BigFrames);
    agent.wait("big frames skipped", SETTLE, |a| {
        a.counter("wire_faults") >= 8
    });
    fake.set_mode(Mode::Healthy);
    assert_eq!(
        fake.event_connections().len(),
        links_before,
        "connection kept"
    );
    assert!(agent.connected());
    let skipped_lines = agent.log_lines_with("skipped a VICI frame");
    let faults = agent.counter("wire_faults");
    eprintln!("{faults} frames over the buffer, {skipped_lines} log lines");
    assert!(
        (skipped_lines as u64) <= 1 + faults.ilog2() as u64,
        "{skipped_lines} lines for {faults} faults"
    );
    let (rss_before, dirty_before) = agent.memory_kib();

    // A length prefix over charon's 512 KiB limit: the stream cannot be trusted any more.
    let faults_before = agent.counter("wire_faults");
    fake.set_mode(Mode::OversizedPrefix);
    let fault_at = Instant::now();
    agent.wait("oversized prefix noticed", SETTLE, |a| !a.connected());
    std::thread::sleep(Duration::from_secs(8));
    let json = agent.fresh_status(SETTLE);
    eprintln!("during oversized prefixes: {json}");
    assert!(number(&json, "wire_faults").unwrap_or(0) >= faults_before + 3);
    assert_eq!(
        agent.log_lines_with("exceeds the 512 KiB limit"),
        1,
        "{}",
        agent.log()
    );
    let relinks: Vec<Instant> = fake
        .event_connections()
        .into_iter()
        .filter(|t| *t > fault_at)
        .collect();
    assert_backoff("oversized prefix", &relinks);
    let (rss_after, dirty_after) = agent.memory_kib();
    eprintln!("memory: VmRSS {rss_before} -> {rss_after} KiB, Private_Dirty {dirty_before} -> {dirty_after} KiB");
    // Each reconnection allocates a fresh 64 KiB receive buffer (the old one freed): the
    // allocator may keep one or two around, but nothing near the 1 MiB the prefix announced.
    assert!(
        dirty_after <= dirty_before + 192,
        "the 1 MiB prefix was not allocated: {dirty_before} -> {dirty_after} KiB"
    );

    heal_and_recover(&fake, &mut agent);
}

#[test]
fn event_flood_of_10000_per_second_keeps_memory_flat_and_events_flowing() {
    let (fake, mut agent) = healthy_start("flood", &[]);
    std::thread::sleep(Duration::from_secs(3));
    let (rss_before, dirty_before) = agent.memory_kib();

    fake.flood(Flood {
        rate_per_s: 10_000,
        duration: Duration::from_secs(10),
    });
    let started = SystemTime::now();
    let mut writes = 0;
    let mut last_written = String::new();
    let mut peak = (0, 0);
    while !fake.flood_result().done {
        std::thread::sleep(Duration::from_millis(500));
        let mem = agent.memory_kib();
        peak = (peak.0.max(mem.0), peak.1.max(mem.1));
        let written = number(&agent.json(), "written").unwrap_or(0).to_string();
        if written != last_written {
            writes += 1;
            last_written = written;
        }
        assert!(
            started.elapsed().unwrap() < Duration::from_secs(60),
            "flood did not finish: {:?}",
            fake.flood_result()
        );
    }
    let flood = fake.flood_result();
    let (rss_after, dirty_after) = agent.memory_kib();
    let rate = flood.sent as f64 / flood.took.as_secs_f64();
    eprintln!(
        "flood: {} events in {:?} ({rate:.0}/s); VmRSS {rss_before} -> {rss_after} KiB (peak {}), \
         Private_Dirty {dirty_before} -> {dirty_after} KiB (peak {}); status rewritten {writes} times",
        flood.sent, flood.took, peak.0, peak.1
    );
    assert!(flood.sent >= 90_000, "{flood:?}");
    assert!(
        rate >= 8_000.0,
        "swandog read the flood at only {rate:.0}/s"
    );
    assert!(writes >= 2, "status file not rewritten during the flood");
    assert!(
        dirty_after <= dirty_before + 128 && peak.1 <= dirty_before + 256,
        "anonymous memory grew: {dirty_before} -> {dirty_after} KiB (peak {})",
        peak.1
    );
    assert!(agent.connected());

    // Still responsive: a child going down right after the flood is seen and brought back.
    fake.take_down("con2_1", captured("child-updown-down-dpd.bin"));
    agent.wait("con2_1 down", SETTLE, |a| {
        a.child_state("con2_1").as_deref() != Some("up")
    });
    agent.wait("con2_1 re-initiated after the flood", SETTLE, |_| {
        fake.commands().iter().any(|c| c == "initiate")
    });
    agent.wait("con2_1 up again", SETTLE, |a| a.children_up());
    let log = agent.log();
    let lines = log.lines().count();
    eprintln!("log lines after the flood: {lines}");
    assert!(lines < 100, "the flood flooded the log:\n{log}");
}

#[test]
fn peer_that_never_answers_times_out_is_counted_and_caught_up_with() {
    // Answers nothing at all, from the first connection on.
    let dir = test_dir("silent");
    let fake = FakeVici::start(&dir.join("charon.vici"), Mode::Silent);
    let mut agent = Agent::start(&dir, &fake.uri(), &quiet(&["--poll-interval-s", "5"]));
    std::thread::sleep(Duration::from_secs(14));
    let json = agent.fresh_status(SETTLE);
    eprintln!("silent peer: {json}\n{}", agent.log());
    assert!(!agent.connected());
    assert!(
        number(&json, "command_failures").unwrap_or(0) >= 2,
        "{json}"
    );
    assert_eq!(
        agent.log_lines_with("did not answer event registration in time"),
        1,
        "{}",
        agent.log()
    );
    // One connection per attempt, each given its full deadline (not one per timer tick).
    let attempts = fake.accepts();
    assert!(
        attempts.len() >= 2 && attempts.len() <= 4,
        "{} attempts",
        attempts.len()
    );

    // Registers, but never answers a command: every call hits its deadline; status keeps coming.
    fake.set_mode(Mode::SilentCommands);
    agent.wait("registered", Duration::from_secs(40), |a| a.connected());
    let failures = agent.counter("command_failures");
    agent.wait("list-sas timed out", SETTLE, |a| {
        a.counter("command_failures") >= failures + 2
    });
    agent.fresh_status(SETTLE);
    assert_eq!(
        agent.log_lines_with("did not answer list-"),
        1,
        "{}",
        agent.log()
    );

    heal_and_recover(&fake, &mut agent);
    assert!(
        agent.log_lines_with("VICI commands work again") >= 1,
        "{}",
        agent.log()
    );
}

#[test]
fn peer_that_closes_mid_reply_fails_the_call_without_losing_the_children() {
    let (fake, mut agent) = healthy_start("midclose", &["--poll-interval-s", "5"]);
    let failures = agent.counter("command_failures");

    fake.set_mode(Mode::CloseMidReply);
    agent.wait("two list-sas cut short", SETTLE, |a| {
        a.counter("command_failures") >= failures + 2
    });
    // Half a list is no list: the children are not declared down from it.
    assert!(agent.children_up(), "{}", agent.json());
    assert!(agent.connected(), "the event connection is unaffected");
    // One line for the kind of failure, whichever listing (list-conns runs first in every
    // reconciling poll) met it first.
    assert_eq!(agent.log_lines_with("VICI list-"), 1, "{}", agent.log());

    heal_and_recover(&fake, &mut agent);
    agent.wait("a good list-sas after the fault", SETTLE, |a| {
        a.log_lines_with("VICI commands work again") == 1
    });
    assert_eq!(agent.child_state("con2_1").as_deref(), Some("up"));
}

/// `/proc/stat` of a 2-CPU box whose busy share the test sets, advanced 100 jiffies per CPU per
/// second by a thread, written atomically (temporary file + rename) so a read is never torn.
struct FakeLoad {
    busy_permille: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeLoad {
    fn start(proc_root: &std::path::Path, busy_permille: u64) -> FakeLoad {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::Arc;
        std::fs::create_dir_all(proc_root).unwrap();
        let busy = Arc::new(AtomicU64::new(busy_permille));
        let stop = Arc::new(AtomicBool::new(false));
        let (b, s, root) = (busy.clone(), stop.clone(), proc_root.to_path_buf());
        let write = move |busy_j: u64, idle_j: u64| {
            let line = |label: &str, n: u64| {
                format!("{label} {} 0 0 {} 0 0 0 0 0 0\n", busy_j * n, idle_j * n)
            };
            let text = format!("{}{}{}", line("cpu ", 2), line("cpu0", 1), line("cpu1", 1));
            let tmp = root.join(".stat.tmp");
            // The directory goes away with the agent at the end of the test.
            let _ =
                std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, root.join("stat")));
        };
        write(1_000, 1_000);
        let thread = std::thread::spawn(move || {
            let (mut busy_j, mut idle_j) = (1_000u64, 1_000u64);
            while !s.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                // 10 jiffies per CPU every 100 ms, split by the busy share.
                let busy_now = b.load(Ordering::Relaxed) * 10 / 1000;
                busy_j += busy_now;
                idle_j += 10 - busy_now;
                write(busy_j, idle_j);
            }
        });
        FakeLoad {
            busy_permille: busy,
            stop,
            thread: Some(thread),
        }
    }

    fn set(&self, busy_permille: u64) {
        self.busy_permille
            .store(busy_permille, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for FakeLoad {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn load_keeps_being_sampled_while_events_pour_in_faster_than_swandog_reads_them() {
    let dir = test_dir("starve");
    let load = FakeLoad::start(&dir.join("fakeproc"), 200);
    let fake = FakeVici::start(&dir.join("charon.vici"), Mode::Healthy);
    let proc_root = dir.join("fakeproc");
    let mut agent = Agent::start(
        &dir,
        &fake.uri(),
        &[
            "--proc-root",
            proc_root.to_str().unwrap(),
            "--sample-interval-ms",
            "500",
            "--busy-threshold-pct",
            "95",
            "--cpu-budget-permille",
            "1000",
            "--poll-interval-s",
            "5",
        ],
    );
    let busy = |a: &Agent| number(&a.json(), "busy").unwrap_or(0);
    agent.wait("connected, load 20 %", SETTLE, |a| {
        a.connected() && a.children_up() && (15..=25).contains(&busy(a))
    });

    // As fast as the socket takes them: swandog always has an event waiting.
    fake.flood(Flood {
        rate_per_s: 1_000_000,
        duration: Duration::from_secs(30),
    });
    std::thread::sleep(Duration::from_secs(1));
    load.set(800);
    let flooding = Instant::now();
    agent.wait(
        "load 80 % sampled during the flood",
        Duration::from_secs(15),
        |a| busy(a) >= 70,
    );
    let seen_after = flooding.elapsed();
    let flood = fake.flood_result();
    eprintln!(
        "load change seen {seen_after:?} into a flood of {} events so far ({:.0}/s)",
        flood.sent,
        flood.sent as f64 / flood.took.as_secs_f64().max(0.001)
    );
    assert!(
        !flood.done,
        "the flood was over before the load was sampled"
    );
    // The command worker runs too: list-sas polls (every 5 s) go out during the flood.
    let polls_before = fake.commands().len();
    agent.wait(
        "a list-sas poll during the flood",
        Duration::from_secs(8),
        |_| fake.commands().len() > polls_before,
    );
    assert!(
        !fake.flood_result().done,
        "the poll came only after the flood"
    );
}
