//! The signals of `swandog run`, sent to the real binary while it watches a real two-site
//! strongSwan lab: SIGHUP rereads the config file and keeps history and tunnel state, a broken
//! file is refused with a clear line and the old config kept, SIGUSR1 logs a summary (lines
//! starting `status:`), SIGTERM / SIGINT stop it within a second — also while charon hangs.
//! Also checks `swandog status`'s human form after a break and heal. Needs root and the lab's
//! packages. Without a lab (no charon needed): a SIGHUP or SIGTERM at any moment of start-up
//! (hundreds of starts), and SIGHUP with an overrides file (the OpenWrt init script's UCI file).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{lab_disabled, scratch_dir, swandog, wait_for, Lab};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const STOP_LIMIT: Duration = Duration::from_secs(1);

/// One `swandog run --config FILE` logging to a file (stderr), killed on drop if still running.
struct Running {
    child: Child,
    dir: PathBuf,
    conf: PathBuf,
}

impl Running {
    /// Writes `settings` (plus the lab socket, status file and `log = stderr`) as the config
    /// file and starts swandog on it.
    fn start(dir: PathBuf, vici: &str, settings: &str) -> Running {
        let conf = dir.join("swandog.conf");
        write_conf(&dir, vici, settings);
        let log = fs::File::create(dir.join("log")).unwrap();
        let child = swandog()
            .args(["run", "--config"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start swandog run");
        Running { child, dir, conf }
    }

    fn write_conf(&self, vici: &str, settings: &str) {
        write_conf(&self.dir, vici, settings);
    }

    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).expect("signal swandog");
    }

    /// Log messages (after simple_logger's `LEVEL [target] `).
    fn lines(&self) -> Vec<String> {
        fs::read_to_string(self.dir.join("log"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.split_once("] ").map_or(l, |(_, m)| m).to_string())
            .collect()
    }

    fn count(&self, needle: &str) -> usize {
        self.lines().iter().filter(|l| l.contains(needle)).count()
    }

    /// Waits for the `n`th line containing `needle`.
    fn wait_line(&self, needle: &str, n: usize, timeout: Duration) {
        if wait_for(timeout, || self.count(needle) >= n).is_none() {
            panic!(
                "no {needle:?} (#{n}) within {timeout:?}; log:\n{}",
                self.lines().join("\n")
            );
        }
    }

    fn status(&self, json: bool) -> String {
        let mut cmd = swandog();
        cmd.args(["status", "--status-file"])
            .arg(self.dir.join("status"));
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the status JSON satisfies `f`; returns it.
    fn wait_status(&self, what: &str, timeout: Duration, f: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        let ok = wait_for(timeout, || {
            last = self.status(true);
            f(&last)
        });
        assert!(
            ok.is_some(),
            "status never showed {what}; last:\n{last}\nlog:\n{}",
            self.lines().join("\n")
        );
        last
    }

    /// Sends `signal` and returns how long swandog took to exit; asserts a clean exit.
    fn stop(&mut self, signal: Signal) -> Duration {
        let sent = Instant::now();
        self.signal(signal);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let took = sent.elapsed();
                assert!(status.success(), "swandog exited with {status} on {signal}");
                return took;
            }
            assert!(
                sent.elapsed() < Duration::from_secs(10),
                "swandog ignored {signal}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Writes `dir/swandog.conf` (atomically, mode 0600): `settings` plus the lab socket, a status
/// file in `dir` and `log = stderr`.
fn write_conf(dir: &Path, vici: &str, settings: &str) {
    let text = format!(
        "# written by tests/signals_real.rs\nvici = {vici}\nstatus_file = {}\nlog = stderr\n{settings}",
        dir.join("status").display()
    );
    let tmp = dir.join("swandog.conf.tmp");
    fs::write(&tmp, text).unwrap();
    fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    fs::rename(&tmp, dir.join("swandog.conf")).unwrap();
}

/// The JSON object of child `name` in a status line, if listed.
fn child_json<'a>(status: &'a str, name: &str) -> Option<&'a str> {
    let start = status.find(&format!("{{\"name\":\"{name}\""))?;
    let rest = &status[start..];
    Some(&rest[..=rest.find('}')?])
}

/// A number field of a JSON object text.
fn number(object: &str, key: &str) -> Option<u64> {
    let at = object.find(&format!("\"{key}\":"))? + key.len() + 3;
    let digits: String = object[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn state_of(status: &str, name: &str) -> Option<String> {
    let object = child_json(status, name)?;
    let at = object.find("\"state\":\"")? + 9;
    Some(object[at..].split('"').next()?.to_string())
}

fn dpd_failures(status: &str) -> usize {
    status.matches("\"verdict\":").count()
}

#[test]
fn sighup_rereads_the_config_keeping_history_and_refuses_a_broken_file() {
    if lab_disabled("sighup_rereads_the_config_keeping_history_and_refuses_a_broken_file") {
        return;
    }
    let lab = Lab::up("thup");
    let vici = lab.uri("a");
    let mut agent = Running::start(scratch_dir("signals-hup"), &vici, "");
    agent.wait_line("con2_1: watching", 1, Duration::from_secs(15));
    agent.wait_line("con2_2: watching", 1, Duration::from_secs(5));

    // History to keep: a DPD failure, and both route-based children re-initiated.
    lab.must(&["break"]);
    agent.wait_status("a DPD failure", Duration::from_secs(30), |s| {
        dpd_failures(s) >= 1 && state_of(s, "con2_1").as_deref() != Some("up")
    });
    lab.must(&["heal"]);
    let before = agent.wait_status("both children back up", Duration::from_secs(60), |s| {
        ["con2_1", "con2_2"].iter().all(|c| {
            state_of(s, c).as_deref() == Some("up")
                && child_json(s, c).and_then(|o| number(o, "reinitiations")) >= Some(1)
        })
    });
    let failures = dpd_failures(&before);
    let reinit = |s: &str, c: &str| child_json(s, c).and_then(|o| number(o, "reinitiations"));

    // The human form an operator reads after that: 80 columns, every part present.
    let human = agent.status(false);
    eprintln!("swandog status after a break and heal:\n{human}");
    for line in human.lines() {
        assert!(
            line.chars().count() <= 80,
            "wider than 80 columns ({}): {line}",
            line.chars().count()
        );
    }
    for part in [
        "charon: connected",
        "load, last 10 min",
        "DPD failure while the box was loaded",
        "con2_1",
        "route-based",
        "DPD failures (the last",
        "-correlated",
        "in 0.0 h loaded",
    ] {
        assert!(human.contains(part), "no {part:?} in:\n{human}");
    }
    let marks = human
        .lines()
        .skip_while(|l| !l.starts_with("load, last 10 min"))
        .nth(2)
        .expect("the DPD mark row under the sparkline");
    assert!(marks.contains('L') || marks.contains('x'), "{human}");

    // SIGHUP with a changed file: con1 (policy-based, left down by the DPD failure) is now
    // named, so it is watched and brought back; the history stays.
    agent.write_conf(&vici, "watch = con1\n");
    agent.signal(Signal::SIGHUP);
    agent.wait_line("config reloaded", 1, Duration::from_secs(5));
    agent.wait_line("watching con1", 1, Duration::from_secs(10));
    assert!(
        wait_for(Duration::from_secs(30), || lab
            .installed("a")
            .contains(&"con1".to_string()))
        .is_some(),
        "con1 was not brought back after the reload:\n{}",
        agent.lines().join("\n")
    );
    let after = agent.wait_status("con1 watched", Duration::from_secs(15), |s| {
        child_json(s, "con1").is_some()
    });
    assert_eq!(dpd_failures(&after), failures, "DPD history lost:\n{after}");
    for c in ["con2_1", "con2_2"] {
        assert_eq!(
            reinit(&after, c),
            reinit(&before, c),
            "{c} history lost:\n{after}"
        );
    }

    // A broken file on SIGHUP: refused with file, line and fix; the old config stays.
    agent.write_conf(&vici, "watch = con1\nbackoff_cap_ms = soon\n");
    agent.signal(Signal::SIGHUP);
    agent.wait_line("config not reloaded", 1, Duration::from_secs(5));
    let refused = agent
        .lines()
        .into_iter()
        .find(|l| l.contains("config not reloaded"))
        .unwrap();
    eprintln!("broken config on SIGHUP: {refused}");
    let conf = agent.conf.display().to_string();
    assert!(
        refused.contains(&format!("{conf}:6")) && refused.contains("backoff_cap_ms"),
        "the line should name the file, the line and the key: {refused}"
    );
    assert_eq!(agent.count("config reloaded"), 1);
    assert!(matches!(agent.child.try_wait(), Ok(None)), "swandog exited");

    // SIGUSR1: a summary, every line starting "status:"; con1 shows the good config is kept.
    agent.signal(Signal::SIGUSR1);
    agent.wait_line("status: DPD failures:", 1, Duration::from_secs(5));
    let summary: Vec<String> = agent
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("status:"))
        .collect();
    eprintln!("SIGUSR1 summary:\n{}", summary.join("\n"));
    assert!(
        summary[0].starts_with("status: charon connected"),
        "{summary:?}"
    );
    // `watch = con1` names only con1: the route-based children found before are set aside.
    for child in [
        "con1 (con1): up",
        "con2_1 (con2): not-kept",
        "con2_2 (con2): not-kept",
    ] {
        assert!(
            summary.iter().any(|l| l.contains(child)),
            "no {child:?} in {summary:?}"
        );
    }

    let took = agent.stop(Signal::SIGTERM);
    eprintln!(
        "SIGTERM with a lab under watch: exited in {} ms",
        took.as_millis()
    );
    assert!(took < STOP_LIMIT, "took {took:?}");
    assert_eq!(
        agent.lines().last().map(String::as_str),
        Some("stopping on signal")
    );
    let _ = fs::remove_dir_all(&agent.dir);
}

#[test]
fn sigint_and_sigterm_stop_within_a_second_even_while_charon_hangs() {
    if lab_disabled("sigint_and_sigterm_stop_within_a_second_even_while_charon_hangs") {
        return;
    }
    let lab = Lab::up("tstop");
    let vici = lab.uri("a");

    let mut idle = Running::start(scratch_dir("signals-int"), &vici, "");
    idle.wait_line("con2_1: watching", 1, Duration::from_secs(15));
    let int = idle.stop(Signal::SIGINT);

    let mut busy = Running::start(scratch_dir("signals-term"), &vici, "");
    busy.wait_line("con2_1: watching", 1, Duration::from_secs(15));
    // charon stops answering; a reload queues list-conns / list-sas, which now hang in the
    // command worker (each has a 5 s deadline).
    lab.must(&["pause", "a"]);
    busy.signal(Signal::SIGHUP);
    busy.wait_line("config reloaded", 1, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(500));
    let term = busy.stop(Signal::SIGTERM);
    lab.must(&["resume", "a"]);

    eprintln!(
        "SIGINT (idle): exited in {} ms; SIGTERM (charon hung, command in flight): {} ms",
        int.as_millis(),
        term.as_millis()
    );
    assert!(int < STOP_LIMIT, "SIGINT took {int:?}");
    assert!(term < STOP_LIMIT, "SIGTERM took {term:?}");
    for agent in [&idle, &busy] {
        assert_eq!(
            agent.lines().last().map(String::as_str),
            Some("stopping on signal")
        );
        let _ = fs::remove_dir_all(&agent.dir);
    }
}

/// A child process killed (by its pid) if the test ends before it exits.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Whether the Rust runtime of process `pid` is up: it ignores SIGPIPE (std sets that before
/// `main`). Until then the dynamic loader is still at work, and a SIGHUP kills any program.
fn runtime_up(pid: u32) -> bool {
    const SIGPIPE_BIT: u64 = 1 << (13 - 1);
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("SigIgn:"))?;
            u64::from_str_radix(line["SigIgn:".len()..].trim(), 16).ok()
        })
        .is_some_and(|ignored| ignored & SIGPIPE_BIT != 0)
}

/// procd restarts swandog and sends SIGHUP right after (its `reload` did, issue 16): a HUP at
/// any moment of start-up must be survived and honoured once (one "config reloaded"), never
/// fatal. Hundreds of starts, the HUP 0 to 4 ms after the runtime is up. No charon needed: the
/// socket named is absent and swandog waits inside.
#[test]
fn sighup_at_any_moment_of_start_up_is_honoured_never_fatal() {
    // Starts the swandog binary, which a qemu-user test process cannot exec (emulated runs).
    if lab_disabled("sighup_at_any_moment_of_start_up_is_honoured_never_fatal") {
        return;
    }
    const STARTS: u32 = 300;
    const DELAY_MAX_US: u32 = 4_000;
    let dir = scratch_dir("signals-hup-storm");
    let vici = format!("unix://{}", dir.join("no-charon.vici").display());
    write_conf(&dir, &vici, "");
    let conf = dir.join("swandog.conf");
    let log = dir.join("log");
    let mut deaths = Vec::new();
    let mut started = Duration::ZERO;
    for i in 0..STARTS {
        // Spread evenly over 0..=4 ms, in an order that is not monotonic.
        let delay = Duration::from_micros(u64::from(i * 7_919 % (DELAY_MAX_US + 1)));
        let mut child = swandog()
            .args(["run", "--config"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .map(KillOnDrop)
            .expect("start swandog run");
        let pid = child.0.id();
        let spawned = Instant::now();
        while !runtime_up(pid) {
            if let Some(status) = child.0.try_wait().unwrap() {
                panic!("swandog exited before its runtime was up: {status}");
            }
            assert!(spawned.elapsed() < Duration::from_secs(5), "never started");
            std::hint::spin_loop();
        }
        started += spawned.elapsed();
        let at = Instant::now() + delay;
        while Instant::now() < at {
            std::hint::spin_loop();
        }
        kill(Pid::from_raw(pid as i32), Signal::SIGHUP).expect("send SIGHUP");
        let text = || fs::read_to_string(&log).unwrap_or_default();
        let deadline = Instant::now() + Duration::from_secs(10);
        let exited = loop {
            if let Some(status) = child.0.try_wait().unwrap() {
                break Some(status);
            }
            if text().contains("config reloaded") {
                break None;
            }
            assert!(
                Instant::now() < deadline,
                "start {i}: SIGHUP {delay:?} after start-up neither honoured nor fatal:\n{}",
                text()
            );
            std::thread::sleep(Duration::from_millis(2));
        };
        if let Some(status) = exited {
            deaths.push(format!("start {i}, HUP after {delay:?}: {status}"));
            continue;
        }
        kill(Pid::from_raw(pid as i32), Signal::SIGTERM).expect("send SIGTERM");
        let status = child.0.wait().unwrap();
        assert!(
            status.success(),
            "start {i}: exited with {status} on SIGTERM"
        );
        assert_eq!(
            text().matches("config reloaded").count(),
            1,
            "one HUP, one reload:\n{}",
            text()
        );
    }
    eprintln!(
        "{STARTS} starts, SIGHUP 0..{DELAY_MAX_US} us after the runtime was up ({} us after \
         spawn on average): {} died",
        started.as_micros() / u128::from(STARTS),
        deaths.len()
    );
    assert!(
        deaths.is_empty(),
        "{} of {STARTS} starts died of SIGHUP:\n{}",
        deaths.len(),
        deaths.join("\n")
    );
    let _ = fs::remove_dir_all(&dir);
}

/// SIGTERM during start-up still stops swandog at once: it is not deferred like SIGHUP.
#[test]
fn sigterm_at_any_moment_of_start_up_stops_swandog_promptly() {
    // Starts the swandog binary, which a qemu-user test process cannot exec (emulated runs).
    if lab_disabled("sigterm_at_any_moment_of_start_up_stops_swandog_promptly") {
        return;
    }
    use std::os::unix::process::ExitStatusExt;
    const STARTS: u32 = 100;
    // Not STOP_LIMIT: a start-up on a loaded 2-core test machine took up to 0.8 s to exit
    // (old and new binary alike); a deferred SIGTERM would never be read at all.
    const STARTUP_STOP_LIMIT: Duration = Duration::from_secs(3);
    let dir = scratch_dir("signals-term-storm");
    let vici = format!("unix://{}", dir.join("no-charon.vici").display());
    write_conf(&dir, &vici, "");
    let mut slowest = Duration::ZERO;
    for i in 0..STARTS {
        let delay = Duration::from_micros(u64::from(i * 7_919 % 4_001));
        let mut child = swandog()
            .args(["run", "--config"])
            .arg(dir.join("swandog.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(KillOnDrop)
            .expect("start swandog run");
        let pid = child.0.id();
        while !runtime_up(pid) {
            assert!(child.0.try_wait().unwrap().is_none(), "exited early");
            std::hint::spin_loop();
        }
        let at = Instant::now() + delay;
        while Instant::now() < at {
            std::hint::spin_loop();
        }
        let sent = Instant::now();
        kill(Pid::from_raw(pid as i32), Signal::SIGTERM).expect("send SIGTERM");
        let status = loop {
            if let Some(status) = child.0.try_wait().unwrap() {
                break status;
            }
            assert!(
                sent.elapsed() < STARTUP_STOP_LIMIT,
                "start {i}: SIGTERM {delay:?} into start-up ignored for {STARTUP_STOP_LIMIT:?}"
            );
            std::thread::sleep(Duration::from_millis(1));
        };
        slowest = slowest.max(sent.elapsed());
        assert!(
            status.success() || status.signal() == Some(nix::libc::SIGTERM),
            "start {i}: {status}"
        );
    }
    eprintln!(
        "{STARTS} starts, SIGTERM 0..4 ms into start-up: slowest exit {} ms",
        slowest.as_millis()
    );
    let _ = fs::remove_dir_all(&dir);
}

/// The OpenWrt way (board/openwrt/swandog.init): UCI options in an overrides file over the
/// config file, reread on SIGHUP; a bad value keeps the old settings, naming file and line; a
/// new `vici` (fixed at start) is said, not silently ignored.
#[test]
fn sighup_rereads_the_overrides_file_and_says_a_new_socket_needs_a_restart() {
    // Starts the swandog binary, which a qemu-user test process cannot exec (emulated runs).
    if lab_disabled("sighup_rereads_the_overrides_file_and_says_a_new_socket_needs_a_restart") {
        return;
    }
    let dir = scratch_dir("signals-overrides");
    write_conf(&dir, "unix:///nonexistent/file.vici", "");
    let overrides = dir.join("uci.conf");
    let write_overrides = |text: &str| {
        let tmp = dir.join("uci.conf.tmp");
        fs::write(&tmp, text).unwrap();
        fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        fs::rename(&tmp, &overrides).unwrap();
    };
    let a = format!("unix://{}", dir.join("a.vici").display());
    let b = format!("unix://{}", dir.join("b.vici").display());
    write_overrides(&format!(
        "# UCI\nconfig = \"{}\"\nvici = \"{a}\"\n",
        dir.join("swandog.conf").display()
    ));
    let log = dir.join("log");
    let mut child = KillOnDrop(
        swandog()
            .args(["run", "--overrides"])
            .arg(&overrides)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("start swandog run"),
    );
    let pid = Pid::from_raw(child.0.id() as i32);
    let text = || fs::read_to_string(&log).unwrap_or_default();
    let wait = |needle: &str, n: usize| {
        let found = wait_for(Duration::from_secs(10), || {
            text().matches(needle).count() >= n
        });
        assert!(found.is_some(), "no {needle:?} (#{n}):\n{}", text());
    };
    wait(&format!("starting: charon at {a}"), 1);

    write_overrides(&format!(
        "config = {}\nvici = \"{a}\"\nbackoff_cap_ms = \"soon\"\n",
        dir.join("swandog.conf").display()
    ));
    kill(pid, Signal::SIGHUP).unwrap();
    wait("config not reloaded", 1);
    assert!(
        text().contains(&format!("{}:3: ", overrides.display())),
        "names the file and line:\n{}",
        text()
    );

    write_overrides(&format!(
        "config = {}\nvici = \"{b}\"\nbackoff_cap_ms = 120000\n",
        dir.join("swandog.conf").display()
    ));
    kill(pid, Signal::SIGHUP).unwrap();
    wait(
        &format!("vici {a} -> {b} is fixed at start: restart swandog to apply it"),
        1,
    );
    wait("config reloaded", 1);
    assert!(child.0.try_wait().unwrap().is_none(), "exited:\n{}", text());
    assert_eq!(text().matches("starting: charon at").count(), 1);

    kill(pid, Signal::SIGTERM).unwrap();
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status}:\n{}", text());
    let _ = fs::remove_dir_all(&dir);
}
