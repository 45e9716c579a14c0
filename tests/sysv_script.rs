//! `board/busybox/S95swandog` driving a stand-in daemon under busybox sh: start, status,
//! reload (SIGHUP; a restart without a signal when the flags changed), stop (SIGTERM), with and without `start-stop-daemon`, and never signalling a
//! process that merely reuses the pid in the pidfile. Skipped without busybox.
//!
//! The daemon detaches from the script, so this test process makes itself the child subreaper and
//! reaps it; that is why this file holds one test (a reaper must not race other tests' children).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread::{self, sleep, JoinHandle};
use std::time::{Duration, Instant};

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

const TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);

/// Stand-in for swandog: records its arguments, SIGHUPs and SIGTERM next to itself.
const FAKE_DAEMON: &str = r#"#!/bin/sh
dir=$(dirname "$0")
if [ "$1" = status ]; then echo "fake status"; exit 0; fi
trap 'echo hup >> "$dir/hups"' HUP
trap 'echo term > "$dir/term"; exit 0' TERM
echo "$*" > "$dir/args"
while :; do sleep 1 & wait $!; done
"#;

struct Rig {
    dir: PathBuf,
    path: PathBuf,
}

impl Rig {
    fn new(name: &str, with_start_stop_daemon: bool) -> Rig {
        let dir = std::env::temp_dir().join(format!("swandog-sysv-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let bin = dir.join("bin");
        fs::create_dir_all(&bin).unwrap();
        let installed = Command::new("busybox")
            .args(["--install", "-s"])
            .arg(&bin)
            .status()
            .unwrap();
        assert!(installed.success(), "busybox --install -s failed");
        if !with_start_stop_daemon {
            let _ = fs::remove_file(bin.join("start-stop-daemon"));
        }
        let daemon = dir.join("swandog");
        fs::write(&daemon, FAKE_DAEMON).unwrap();
        fs::set_permissions(&daemon, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(dir.join("defaults"), "SWANDOG_ARGS=\"--board ath79\"\n").unwrap();
        Rig { path: bin, dir }
    }

    fn run(&self, action: &str) -> Output {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("board/busybox/S95swandog");
        // busybox's own `sh` applet, found before PATH is replaced.
        Command::new(self.path.join("sh"))
            .arg(script)
            .arg(action)
            .env("PATH", &self.path)
            .env("DAEMON", self.dir.join("swandog"))
            .env("PIDFILE", self.pidfile())
            .env("DEFAULTS", self.dir.join("defaults"))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn pidfile(&self) -> PathBuf {
        self.dir.join("swandog.pid")
    }

    fn pid(&self) -> i32 {
        fs::read_to_string(self.pidfile())
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    fn wait_for_file(&self, name: &str) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Ok(text) = fs::read_to_string(self.dir.join(name)) {
                if !text.is_empty() {
                    return text;
                }
            }
            assert!(Instant::now() < deadline, "{name} never written");
            sleep(POLL);
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Reaps `pid` once it exits (it was reparented to us, the subreaper).
fn reap_when_done(pid: i32) -> JoinHandle<bool> {
    thread::spawn(move || {
        let deadline = Instant::now() + TIMEOUT * 2;
        while Instant::now() < deadline {
            match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => sleep(POLL),
                Ok(_) => return true,
                // Not (yet) our child: it is reparented to us only when its parent exits. Then
                // whether it still exists is what tells.
                Err(_) => {
                    if nix::sys::signal::kill(Pid::from_raw(pid), None).is_err() {
                        return true;
                    }
                    sleep(POLL)
                }
            }
        }
        false
    })
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn lifecycle(rig: &Rig) {
    let out = rig.run("start");
    assert!(out.status.success(), "start: {}", text(&out));
    let pid = rig.pid();
    let reaper = reap_when_done(pid);
    assert_eq!(
        rig.wait_for_file("args").trim(),
        "run --log syslog --board ath79"
    );

    let again = rig.run("start");
    assert!(
        text(&again).contains(&format!("already running (pid {pid})")),
        "{}",
        text(&again)
    );
    assert_eq!(rig.pid(), pid);

    let status = rig.run("status");
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    assert!(text(&status).contains(&format!("swandog is running (pid {pid})")));
    assert!(text(&status).contains("fake status"));

    let reload = rig.run("reload");
    assert!(reload.status.success(), "reload: {}", text(&reload));
    assert_eq!(rig.wait_for_file("hups").trim(), "hup");

    // Changed flags: a HUP cannot apply them, so reload restarts swandog, and signals nothing.
    fs::write(
        rig.dir.join("defaults"),
        "SWANDOG_ARGS=\"--board mt7621\"\n",
    )
    .unwrap();
    fs::remove_file(rig.dir.join("args")).unwrap();
    let reload = rig.run("reload");
    assert!(reload.status.success(), "reload: {}", text(&reload));
    assert!(text(&reload).contains("restarting"), "{}", text(&reload));
    assert_eq!(rig.wait_for_file("term").trim(), "term");
    assert!(reaper.join().unwrap(), "the old daemon did not exit");
    assert_eq!(
        rig.wait_for_file("args").trim(),
        "run --log syslog --board mt7621"
    );
    let pid = rig.pid();
    let reaper = reap_when_done(pid);
    assert_eq!(
        fs::read_to_string(rig.dir.join("hups")).unwrap(),
        "hup\n",
        "a signal besides the restart"
    );
    fs::remove_file(rig.dir.join("term")).unwrap();

    // Unchanged flags: SIGHUP.
    let reload = rig.run("reload");
    assert!(text(&reload).contains("Reloading"), "{}", text(&reload));
    let deadline = Instant::now() + TIMEOUT;
    while fs::read_to_string(rig.dir.join("hups")).unwrap() != "hup\nhup\n" {
        assert!(Instant::now() < deadline, "no SIGHUP for unchanged flags");
        sleep(POLL);
    }

    let stop = rig.run("stop");
    assert!(stop.status.success(), "stop: {}", text(&stop));
    assert_eq!(rig.wait_for_file("term").trim(), "term");
    assert!(!rig.pidfile().exists(), "pidfile left behind");
    assert!(reaper.join().unwrap(), "daemon did not exit");

    let status = rig.run("status");
    assert_eq!(status.status.code(), Some(3), "{}", text(&status));
    assert!(text(&status).contains("not running"));
    assert!(rig.run("stop").status.success());
}

#[test]
fn sysv_script_starts_reloads_and_stops_swandog_and_spares_reused_pids() {
    let have_busybox = Command::new("busybox")
        .arg("true")
        .status()
        .is_ok_and(|s| s.success());
    if !have_busybox {
        eprintln!("SKIPPED: busybox not installed");
        assert!(std::env::var_os("SWANDOG_REQUIRE_REAL").is_none(), "busybox not installed: a failure, not a skip, under SWANDOG_REQUIRE_REAL (scripts/test.sh)");
        return;
    }
    nix::sys::prctl::set_child_subreaper(true).expect("become child subreaper");

    lifecycle(&Rig::new("ssd", true));
    lifecycle(&Rig::new("plain", false));

    // A pidfile naming a live process that is not swandog: left alone.
    let rig = Rig::new("reused", true);
    let mut stranger = Command::new("sleep").arg("30").spawn().unwrap();
    fs::write(rig.pidfile(), format!("{}\n", stranger.id())).unwrap();
    assert_eq!(rig.run("status").status.code(), Some(3));
    assert!(text(&rig.run("stop")).contains("not running"));
    assert!(rig.run("reload").status.code() == Some(1));
    assert!(
        stranger.try_wait().unwrap().is_none(),
        "the stranger was signalled"
    );
    stranger.kill().unwrap();
    stranger.wait().unwrap();
}
