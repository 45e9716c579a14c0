//! swandog's syslog logger against a real syslog daemon: busybox `syslogd`, started by the test.
//!
//! busybox syslogd always listens on `/dev/log`, so each daemon runs in its own mount namespace
//! (`unshare -m`) with a private directory bind-mounted over `/dev`; its socket is then
//! `<dir>/log` from the test's point of view. The test logs through the installed `log` facade,
//! finds the lines in the daemon's file with the right facility, severity, tag and local
//! timestamp, stops the daemon, starts a new one on the same socket path and sees logging come
//! back by itself, without losing the lines logged around the restart. A second test runs the
//! real `swandog run` before any syslogd exists and sees its start-up lines arrive, at their own
//! level, once one appears. Skipped (with a message) where busybox or mount namespaces are
//! unavailable.

use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use swandog::limits::SYSLOG_RECONNECT_INTERVAL_MS;
use swandog::report::localtime::civil_from_unix;
use swandog::report::syslog::{self, Facility, LogTarget};

const READY_TIMEOUT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(20);
/// `XST-1:30`: local time is UTC + 1 h 30, so a stamp in UTC would be caught.
const TEST_TZ: &str = "XST-1:30";
const TEST_TZ_OFFSET_S: i64 = 5_400;

/// One busybox syslogd in its own mount namespace, killed by its pid when dropped.
struct Syslogd {
    child: Child,
}

impl Syslogd {
    fn start(unshare_args: &[&str], dir: &Path, file: &Path) -> Syslogd {
        let child = Command::new("unshare")
            .args(unshare_args)
            .args([
                "sh",
                "-c",
                r#"mount --bind "$0" /dev && exec busybox syslogd -n -O "$1""#,
            ])
            .arg(dir)
            .arg(file)
            // syslogd's own stamps in UTC: ours (TZ below) must survive, not be replaced.
            .env_remove("TZ")
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn unshare");
        let daemon = Syslogd { child };
        let socket = dir.join("log");
        let deadline = Instant::now() + READY_TIMEOUT;
        // Ready when a datagram socket can connect: a stale socket file refuses.
        while UnixDatagram::unbound()
            .and_then(|s| s.connect(&socket))
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "busybox syslogd did not listen on {}",
                socket.display()
            );
            sleep(POLL);
        }
        daemon
    }

    /// SIGTERM, as `/etc/init.d/log restart` would; SIGKILL if it lingers.
    fn stop(mut self) {
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            sleep(POLL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Syslogd {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The `unshare` arguments that give this process a private mount namespace, if any do.
fn namespace_args() -> Option<&'static [&'static str]> {
    let have_busybox = Command::new("busybox")
        .arg("true")
        .status()
        .is_ok_and(|s| s.success());
    if !have_busybox {
        return None;
    }
    let candidates: [&'static [&'static str]; 2] = [&["-m"], &["-r", "-m"]];
    candidates.into_iter().find(|args| {
        Command::new("unshare")
            .args(*args)
            .args(["sh", "-c", "mount -t tmpfs none /mnt"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

fn wait_for_line(file: &Path, needle: &str) -> String {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let text = fs::read_to_string(file).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains(needle)) {
            return line.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} never reached syslogd; file has:\n{text}"
        );
        sleep(POLL);
    }
}

/// The `Mmm dd hh:mm:ss` stamps swandog may have written around now, in the test zone.
fn plausible_stamps() -> Vec<String> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    (now - 10..=now + 1)
        .map(|t| {
            let c = civil_from_unix(t + TEST_TZ_OFFSET_S);
            format!(
                "{} {:>2} {:02}:{:02}:{:02}",
                MONTHS[usize::from(c.month - 1)],
                c.day,
                c.hour,
                c.minute,
                c.second
            )
        })
        .collect()
}

fn assert_well_formed(line: &str, level: &str, message: &str) {
    // busybox writes `<stamp> <host> <facility>.<level> <tag>[<pid>]: <message>`, keeping our stamp.
    let stamp = &line[..15.min(line.len())];
    assert!(
        plausible_stamps().iter().any(|s| s == stamp),
        "stamp {stamp:?} is not local time (TZ={TEST_TZ}) of now: {line}"
    );
    let tail = format!(" local3.{level} swandog[{}]: {message}", std::process::id());
    assert!(line.ends_with(&tail), "expected …{tail:?}, got {line:?}");
}

fn test_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("swandog-syslogd-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create test dir");
    dir
}

#[test]
fn lines_reach_a_real_syslogd_formatted_and_come_back_after_it_restarts() {
    let Some(unshare_args) = namespace_args() else {
        eprintln!("SKIPPED: needs busybox and `unshare -m` (root or user namespaces)");
        assert!(std::env::var_os("SWANDOG_REQUIRE_REAL").is_none(), "needs busybox and `unshare -m`: a failure, not a skip, under SWANDOG_REQUIRE_REAL (scripts/test.sh)");
        return;
    };
    // Set before the logger reads it; this binary holds one test, so no other thread reads env.
    std::env::set_var("TZ", TEST_TZ);
    let dir = test_dir();
    let socket = dir.join("log");
    let file = dir.join("messages");

    let first = Syslogd::start(unshare_args, &dir, &file);
    let handle = syslog::init_at(
        &socket,
        LogTarget::Syslog,
        Facility::Local(3),
        log::LevelFilter::Info,
    )
    .expect("install logger");

    log::warn!("con1: DPD failure [load-correlated] busy avg 91%");
    log::info!("con2_1: child up");
    log::debug!("not logged at level info");
    let line = wait_for_line(&file, "DPD failure");
    assert_well_formed(
        &line,
        "warn",
        "con1: DPD failure [load-correlated] busy avg 91%",
    );
    assert_well_formed(&wait_for_line(&file, "con2_1"), "info", "con2_1: child up");
    assert_eq!(handle.counters().sent, 2);

    // syslogd restarts between two lines, and a line is logged while it is away (its failed
    // reconnect starts the wait before the next attempt): neither line may be lost, and both
    // keep their level. `flush` is what the main loop's tick does.
    first.stop();
    log::error!("while syslogd is down");
    let second = Syslogd::start(unshare_args, &dir, &file);
    log::warn!("right after the restart: con1 initiate failed");
    let delivered = || {
        log::logger().flush();
        let text = fs::read_to_string(&file).unwrap_or_default();
        text.contains("while syslogd is down") && text.contains("right after the restart")
    };
    let deadline = Instant::now() + Duration::from_millis(3 * SYSLOG_RECONNECT_INTERVAL_MS);
    while !delivered() {
        assert!(
            Instant::now() < deadline,
            "lines logged around a syslogd restart were lost ({:?}); syslogd has:\n{}",
            handle.counters(),
            fs::read_to_string(&file).unwrap_or_default()
        );
        sleep(POLL);
    }
    assert_well_formed(
        &wait_for_line(&file, "while syslogd is down"),
        "err",
        "while syslogd is down",
    );
    assert_well_formed(
        &wait_for_line(&file, "right after the restart"),
        "warn",
        "right after the restart: con1 initiate failed",
    );
    log::info!("after restart, next line");
    wait_for_line(&file, "next line");

    let counters = handle.counters();
    assert_eq!(counters.reconnects, 1, "{counters:?}");
    assert_eq!(counters.dropped, 0, "{counters:?}");
    let text = fs::read_to_string(&file).unwrap_or_default();
    assert!(
        !text.contains("not logged"),
        "debug line leaked at level info"
    );
    eprintln!("syslogd saw:\n{text}");

    second.stop();
    let _ = fs::remove_dir_all(&dir);
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

/// `swandog run` starts while no syslogd runs (logd restarting, or crashed and respawning, under
/// procd): its first lines are held back and reach syslog, each at its own level, once a syslogd
/// appears; none goes to stderr (procd would log it again as daemon.err, tag and time doubled).
#[test]
fn lines_logged_before_syslogd_exists_arrive_once_it_appears_at_their_own_level() {
    // Starts the swandog binary, which a qemu-user test process cannot exec (emulated runs).
    if std::env::var_os("SWANDOG_NO_LAB").is_some() {
        eprintln!("skipping lines_logged_before_syslogd_exists_arrive_once_it_appears_at_their_own_level: SWANDOG_NO_LAB is set (emulated run: the binary cannot be started)");
        return;
    }
    let Some(unshare_args) = namespace_args() else {
        eprintln!("SKIPPED: needs busybox and `unshare -m` (root or user namespaces)");
        assert!(std::env::var_os("SWANDOG_REQUIRE_REAL").is_none(), "needs busybox and `unshare -m`: a failure, not a skip, under SWANDOG_REQUIRE_REAL (scripts/test.sh)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("swandog-syslogd-late-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let dev = dir.join("dev");
    fs::create_dir_all(&dev).expect("create test dir");
    let file = dir.join("messages");
    let conf = dir.join("swandog.conf");
    fs::write(
        &conf,
        format!(
            "vici = unix://{}\nstatus_file = {}\nlog_level = debug\n",
            dir.join("no-charon.vici").display(),
            dir.join("status").display()
        ),
    )
    .unwrap();
    fs::set_permissions(&conf, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let stderr = dir.join("stderr");
    // Its own mount namespace whose /dev is `dev`: /dev/log is missing until syslogd binds it.
    let mut agent = KillOnDrop(
        Command::new("unshare")
            .args(unshare_args)
            .args(["sh", "-c", r#"mount --bind "$0" /dev && exec "$@""#])
            .arg(&dev)
            .arg(env!("CARGO_BIN_EXE_swandog"))
            .args(["run", "--log", "syslog", "--config"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("spawn swandog"),
    );
    // Long enough for the start-up lines and the first "charon unreachable" ones.
    sleep(Duration::from_millis(1_500));
    assert!(
        agent.0.try_wait().unwrap().is_none(),
        "swandog exited without syslog"
    );
    let daemon = Syslogd::start(unshare_args, &dev, &file);
    let pid = agent.0.id();
    let find = |needle: &str| wait_for_line(&file, needle);
    let started = find("starting: charon at");
    let waiting = find("waiting for charon");
    let debug = find("charon unreachable");
    let notice = find("lines held back meanwhile follow");
    let tag = format!(" swandog[{pid}]: ");
    for (line, level) in [
        (&started, "info"),
        (&waiting, "warn"),
        (&debug, "debug"),
        (&notice, "info"),
    ] {
        assert!(
            line.contains(&format!(" daemon.{level}{tag}")) && line.matches(&tag).count() == 1,
            "expected one daemon.{level} line tagged once: {line}"
        );
    }
    let text = fs::read_to_string(&file).unwrap_or_default();
    let at = |needle: &str| text.find(needle).unwrap();
    assert!(
        at("lines held back") < at("starting: charon at"),
        "the notice comes first, then the held lines in order:\n{text}"
    );
    kill(Pid::from_raw(pid as i32), Signal::SIGTERM).unwrap();
    let status = agent.0.wait().unwrap();
    assert!(status.success(), "{status}");
    find("stopping on signal");
    let errors = fs::read_to_string(&stderr).unwrap_or_default();
    assert!(
        errors.is_empty(),
        "syslog lines went to stderr too:\n{errors}"
    );
    eprintln!("syslogd saw:\n{text}");
    daemon.stop();
    let _ = fs::remove_dir_all(&dir);
}
