//! Real faults, against the real two-site strongSwan lab (`tests/lab/lab.sh`) and a real busybox
//! syslogd: charon killed with SIGKILL while the tunnels are down, charon stopped (SIGSTOP) for
//! longer than the 5 s VICI deadline, the VICI socket removed and recreated, `/dev/log` gone and
//! back. `swandog run` (the real binary) watches site a throughout; each test checks that it
//! never hangs or dies (same pid), says what happened once, and restores every watched child.
//!
//! The load swandog sees is a recorded, unchanging `/proc` (`--quiet-proc`): these tests are about
//! charon and syslog faults, not about the throttle reacting to the rest of the test suite.

#[path = "common/agent.rs"]
mod agent;
mod common;
#[path = "common/fake_vici.rs"]
mod fake_vici;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use agent::{test_dir, Agent};
use common::{lab_disabled, wait_for, Lab};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const ALL: [&str; 3] = ["con1", "con2_1", "con2_2"];
/// Time for swandog to bring every child back (grace + a few backoff steps + IKE).
const RESTORE: Duration = Duration::from_secs(60);

/// swandog on site a of `lab`, watching every child, re-initiating briskly.
fn watch_site_a(lab: &Lab, name: &str, extra: &[&str]) -> Agent {
    let dir = test_dir(name);
    let mut args = vec![
        "--quiet-proc",
        "--cpu-budget-permille",
        "1000",
        "--watch",
        "con1,con2_1,con2_2",
        "--grace-ms",
        "500",
        "--backoff-min-ms",
        "1000",
        "--backoff-cap-ms",
        "5000",
    ];
    args.extend_from_slice(extra);
    let mut agent = Agent::start(&dir, &lab.uri("a"), &args);
    agent.wait("every child seen up", Duration::from_secs(30), |a| {
        a.connected() && a.all_up(&ALL)
    });
    agent
}

fn signal(agent: &Agent, sig: Signal) {
    kill(Pid::from_raw(agent.pid() as i32), sig).expect("signal swandog");
}

/// Every child INSTALLED on site a (asked of charon with swanctl) and up in swandog's status.
fn assert_restored(lab: &Lab, agent: &mut Agent, what: &str) {
    let started = Instant::now();
    agent.wait(what, RESTORE, |a| a.connected() && a.all_up(&ALL));
    let installed = wait_for(Duration::from_secs(10), || lab.installed("a") == ALL);
    assert!(
        installed.is_some(),
        "{what}: charon has {:?}\n{}",
        lab.installed("a"),
        agent.log()
    );
    eprintln!(
        "{what}: restored {:?} after the fault ended",
        started.elapsed()
    );
}

#[test]
fn charon_killed_while_tunnels_are_down_is_reconnected_to_and_every_child_restored() {
    if lab_disabled("charon_killed_while_tunnels_are_down") {
        return;
    }
    let lab = Lab::up("lfkill");
    let mut agent = watch_site_a(&lab, "lfkill", &[]);
    let pid = agent.pid();

    lab.must(&["break"]);
    agent.wait("every child down by DPD", Duration::from_secs(30), |a| {
        ALL.iter()
            .all(|c| a.child_state(c).as_deref() != Some("up"))
    });
    let dpd_failures = agent.json().matches("\"verdict\":").count();
    assert!(
        dpd_failures >= 2,
        "both IKE_SAs die by DPD: {}",
        agent.json()
    );

    lab.must(&["kill", "a"]);
    agent.wait("link loss noticed", Duration::from_secs(10), |a| {
        !a.connected()
    });
    sleep(Duration::from_secs(3));
    lab.must(&["heal"]);
    lab.must(&["start", "a"]);
    assert_restored(&lab, &mut agent, "after kill -9 and restart");

    assert_eq!(agent.pid(), pid);
    assert!(
        agent.log_lines_with("connected to charon") >= 2,
        "{}",
        agent.log()
    );
    // While charon was gone: one line for the lost link and one per distinct reason after it.
    let link_lines = agent.log_lines_with("retrying with backoff");
    assert!(link_lines <= 3, "{link_lines} link lines:\n{}", agent.log());
}

#[test]
fn charon_stopped_longer_than_the_call_deadline_never_hangs_swandog_and_is_caught_up_with() {
    if lab_disabled("charon_stopped_longer_than_the_call_deadline") {
        return;
    }
    // 30 s in the issue; 12 s shows the same (over two 5 s deadlines) in less time.
    let pause = Duration::from_secs(
        std::env::var("SWANDOG_PAUSE_S")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(12),
    );
    let lab = Lab::up("lfstop");
    let mut agent = watch_site_a(&lab, "lfstop", &["--poll-interval-s", "5"]);
    let pid = agent.pid();
    let failures = agent.counter("command_failures");

    lab.must(&["pause", "a"]);
    let paused = Instant::now();
    let mut writes = 0;
    let mut last = agent.counter("written");
    let mut summary_after = None;
    while paused.elapsed() < pause {
        sleep(Duration::from_millis(500));
        let written = agent.counter("written");
        if written != last {
            writes += 1;
            last = written;
        }
        if summary_after.is_none() && paused.elapsed() > Duration::from_secs(6) {
            // The main loop answers a signal at once, whatever charon does.
            let before = agent.log_lines_with("status: charon");
            let asked = Instant::now();
            signal(&agent, Signal::SIGUSR1);
            let answered = wait_for(Duration::from_secs(3), || {
                agent.log_lines_with("status: charon") > before
            });
            assert!(answered.is_some(), "no summary while charon is stopped");
            summary_after = Some(asked.elapsed());
        }
    }
    let during = agent.json();
    lab.must(&["resume", "a"]);
    eprintln!(
        "charon stopped {pause:?}: status rewritten {writes} times, summary answered in {:?}\n{during}",
        summary_after
    );
    // Rewritten every 10 s at least (and at once after a failed call), whatever charon does.
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        writes as u64 >= pause.as_secs() / 10 && agent.counter("written") + 11 >= now_s,
        "status not kept up while charon was stopped ({writes} writes)"
    );
    assert!(
        agent.counter("command_failures") > failures,
        "no call timed out: {during}"
    );
    assert_eq!(agent.log_lines_with("in time"), 1, "{}", agent.log());

    agent.wait("calls work again", Duration::from_secs(30), |a| {
        a.log_lines_with("VICI commands work again") >= 1
    });
    // A pause longer than site b's DPD window makes b drop the SAs; a finds out by its own DPD
    // after SIGCONT, and swandog brings them back. Let that settle first.
    assert_restored(&lab, &mut agent, "after SIGCONT");
    sleep(Duration::from_secs(6));
    assert_restored(&lab, &mut agent, "settled after SIGCONT");
    // Caught up: a child charon drops now is seen and brought back (the status file may never
    // show the short outage; the log does).
    let downs = agent.log_lines_with("con2_1: down");
    lab.must(&["terminate", "a", "con2_1"]);
    agent.wait("con2_1 seen down", Duration::from_secs(15), |a| {
        a.log_lines_with("con2_1: down") > downs
    });
    assert_restored(&lab, &mut agent, "after a terminate");
    assert_eq!(agent.pid(), pid);
}

#[test]
fn vici_socket_removed_and_recreated_is_found_again() {
    if lab_disabled("vici_socket_removed_and_recreated") {
        return;
    }
    let lab = Lab::up("lfsock");
    let mut agent = watch_site_a(&lab, "lfsock", &[]);
    let pid = agent.pid();
    let uri = lab.uri("a");
    let socket = Path::new(uri.trim_start_matches("unix://")).to_path_buf();

    lab.must(&["stop", "a"]);
    let _ = std::fs::remove_file(&socket);
    assert!(!socket.exists());
    agent.wait("link loss noticed", Duration::from_secs(10), |a| {
        !a.connected()
    });
    sleep(Duration::from_secs(6));
    assert_eq!(
        agent.log_lines_with("no VICI socket at"),
        1,
        "{}",
        agent.log()
    );

    lab.must(&["start", "a"]);
    assert!(socket.exists());
    assert_restored(&lab, &mut agent, "after the socket came back");
    assert_eq!(agent.pid(), pid);
}

/// One busybox syslogd whose `/dev` is `dev` (its own mount namespace); killed by its pid.
struct Syslogd {
    child: Child,
}

impl Syslogd {
    fn start(dev: &Path, file: &Path) -> Syslogd {
        let child = Command::new("unshare")
            .args([
                "-m",
                "sh",
                "-c",
                r#"mount --bind "$0" /dev && exec busybox syslogd -n -O "$1""#,
            ])
            .arg(dev)
            .arg(file)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn syslogd");
        let ok = wait_for(Duration::from_secs(5), || {
            UnixDatagram::unbound()
                .and_then(|s| s.connect(dev.join("log")))
                .is_ok()
        });
        assert!(ok.is_some(), "busybox syslogd did not listen");
        Syslogd { child }
    }

    fn stop(mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

impl Drop for Syslogd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn syslog_lines(file: &Path, needle: &str) -> usize {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

#[test]
fn dev_log_gone_and_back_holds_lines_meanwhile_never_blocks_and_logging_resumes() {
    let usable = Command::new("busybox")
        .arg("true")
        .status()
        .is_ok_and(|s| s.success())
        && Command::new("unshare")
            .args(["-m", "true"])
            .status()
            .is_ok_and(|s| s.success());
    if !usable {
        common::skip_real(
            "dev_log_gone_and_back_loses_lines_meanwhile_but_never_blocks_and_logging_resumes",
            "needs busybox and `unshare -m` (root)",
        );
        return;
    }
    let dir = test_dir("devlog");
    let dev = dir.join("dev");
    std::fs::create_dir_all(&dev).unwrap();
    let first_file = dir.join("messages-1");
    let second_file = dir.join("messages-2");
    let fake = fake_vici::FakeVici::start(&dir.join("charon.vici"), fake_vici::Mode::Healthy);

    let syslogd = Syslogd::start(&dev, &first_file);
    // swandog in its own mount namespace whose /dev is `dev`: its /dev/log is syslogd's socket.
    let mut agent = Agent::start_wrapped(
        &[
            "unshare",
            "-m",
            "sh",
            "-c",
            r#"mount --bind "$0" /dev && exec "$@""#,
            dev.to_str().unwrap(),
        ],
        &dir,
        &fake.uri(),
        &["--log", "syslog", "--syslog-facility", "local3"],
        &["--quiet-proc", "--cpu-budget-permille", "1000"],
    );
    let pid = agent.pid();
    let ok = wait_for(Duration::from_secs(20), || {
        syslog_lines(&first_file, "connected to charon") == 1
    });
    assert!(ok.is_some(), "no line reached syslogd:\n{}", agent.log());

    // /dev/log gone: syslogd stopped and its socket removed.
    syslogd.stop();
    let _ = std::fs::remove_file(dev.join("log"));
    let written = agent.counter("written");
    for _ in 0..3 {
        signal(&agent, Signal::SIGUSR1);
        sleep(Duration::from_millis(400));
    }
    agent.wait(
        "status still written without syslog",
        Duration::from_secs(25),
        |a| a.counter("written") > written,
    );
    assert!(
        agent.alive(),
        "swandog died without syslog:\n{}",
        agent.log()
    );

    // Back: a new syslogd on the same path. The next line after the reconnect interval gets
    // through (lines in between are held back and replayed).
    let second = Syslogd::start(&dev, &second_file);
    sleep(Duration::from_millis(1_500));
    let ok = wait_for(Duration::from_secs(10), || {
        signal(&agent, Signal::SIGUSR1);
        sleep(Duration::from_millis(300));
        syslog_lines(&second_file, "status: charon connected") >= 1
    });
    assert!(ok.is_some(), "logging did not resume:\n{}", agent.log());
    let text = std::fs::read_to_string(&second_file).unwrap_or_default();
    eprintln!("second syslogd saw:\n{text}");
    assert!(text.contains("local3.info swandog["), "{text}");
    assert_eq!(agent.pid(), pid);
    assert!(agent.alive());
    second.stop();
}
