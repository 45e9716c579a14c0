//! swandog under a real `busybox init`, as PID 1 of its own PID namespace, started by the
//! project's inittab line (`board/busybox/inittab.line`) verbatim.
//!
//! The firmware is faked with mounts only, inside the namespace: an overlay over `/etc` holds the
//! test's `/etc/inittab` (the line as shipped) and `/etc/swandog.conf` (this test's charon socket
//! and status file), an overlay over `/usr/sbin` makes `/usr/sbin/swandog` the binary under test,
//! and a private directory over `/dev` holds the `/dev/log` of a busybox syslogd that the test
//! runs outside the namespace — so it outlives the namespace's shutdown and records swandog's last
//! line. busybox init logs its own spawns there too (`init: starting pid N ...`).
//!
//! Checked: start, respawn after `kill -9`, a clean stop within busybox's one second between
//! SIGTERM and SIGKILL; and that swandog never exits into init's once-a-second respawn loop,
//! neither while charon is missing nor with a broken config.
//!
//! Needs root, busybox, overlayfs and the lab's packages; skipped (loudly) without busybox.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{children_of, exited, have_busybox, lab_disabled, scratch_dir, wait_for, Lab};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// busybox init sends SIGTERM to everything, waits one second, then SIGKILL: swandog must be
/// gone before that.
const STOP_LIMIT: Duration = Duration::from_secs(1);
/// busybox init respawns once per pass of its main loop, which sleeps one second.
const RESPAWN_LIMIT: Duration = Duration::from_secs(5);

/// The shipped inittab line, exactly.
fn inittab_line() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("board/busybox/inittab.line");
    let text = fs::read_to_string(&path).expect("read board/busybox/inittab.line");
    let line = text
        .lines()
        .find(|l| l.starts_with("::respawn:"))
        .expect("a ::respawn: line in board/busybox/inittab.line");
    assert!(
        line.contains("/usr/sbin/swandog run"),
        "the test installs the binary as /usr/sbin/swandog: {line}"
    );
    line.to_string()
}

/// A busybox firmware in a PID + mount namespace, with its syslogd outside.
struct Firmware {
    dir: PathBuf,
    /// `unshare`, whose only child is busybox init.
    unshare: Child,
    _syslogd: common::PrivateSyslogd,
}

impl Firmware {
    /// Boots `busybox init` with the shipped inittab line; `/etc/swandog.conf` points swandog at
    /// `vici` and a status file in the test's directory, followed by `extra` lines.
    fn boot(test: &str, vici: &str, extra: &str) -> Firmware {
        let dir = scratch_dir(test);
        for sub in ["dev", "etc-up", "etc-work", "sbin-up", "sbin-work"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        fs::write(dir.join("dev/null"), "").unwrap();
        fs::write(dir.join("etc-up/inittab"), format!("{}\n", inittab_line())).unwrap();
        let conf_path = dir.join("etc-up/swandog.conf");
        let conf = format!(
            "# written by tests/busybox_init.rs\nvici = {vici}\nstatus_file = {}\n{extra}",
            dir.join("status").display()
        );
        fs::write(&conf_path, conf).unwrap();
        // swandog refuses a config file others could write.
        fs::set_permissions(
            &conf_path,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_swandog"), dir.join("sbin-up/swandog"))
            .unwrap();

        let syslogd = common::PrivateSyslogd::start(&dir.join("dev"), &dir.join("messages"));
        let boot = r#"set -e
d=$0
mount --bind /dev/null "$d/dev/null"
mount --rbind "$d/dev" /dev
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$d/etc-up,workdir=$d/etc-work" /etc
mount -t overlay overlay -o "lowerdir=/usr/sbin,upperdir=$d/sbin-up,workdir=$d/sbin-work" /usr/sbin
exec busybox init"#;
        let console = fs::File::create(dir.join("console")).unwrap();
        let unshare = Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc", "sh", "-c", boot])
            .arg(&dir)
            .env_remove("CONSOLE")
            .env_remove("console")
            .stdin(Stdio::null())
            .stdout(console.try_clone().unwrap())
            .stderr(console)
            .spawn()
            .expect("spawn unshare");
        Firmware {
            dir,
            unshare,
            _syslogd: syslogd,
        }
    }

    /// busybox init's pid (as seen from here).
    fn init_pid(&self) -> u32 {
        let mut pid = None;
        wait_for(Duration::from_secs(5), || {
            pid = children_of(self.unshare.id())
                .into_iter()
                .find(|(_, comm)| comm == "busybox" || comm == "init")
                .map(|(p, _)| p);
            pid.is_some()
        });
        pid.unwrap_or_else(|| panic!("busybox init did not start:\n{}", self.console()))
    }

    /// The swandog that init runs now, waiting up to `timeout` for one other than `not`.
    fn swandog_pid(&self, not: Option<u32>, timeout: Duration) -> Option<u32> {
        let init = self.init_pid();
        let mut pid = None;
        wait_for(timeout, || {
            pid = children_of(init)
                .into_iter()
                .find(|(p, comm)| comm == "swandog" && Some(*p) != not)
                .map(|(p, _)| p);
            pid.is_some()
        });
        pid
    }

    /// Rewrites `/etc/swandog.conf` from inside the firmware's mount namespace (the overlay's
    /// upper layer must not be changed behind its back).
    fn write_conf(&self, text: &str) {
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &self.init_pid().to_string(), "-m", "sh", "-c"])
            .arg("cat > /etc/swandog.conf.new && mv /etc/swandog.conf.new /etc/swandog.conf")
            .stdin(Stdio::piped());
        let mut child = cmd.spawn().expect("nsenter");
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success());
    }

    fn messages(&self) -> String {
        fs::read_to_string(self.dir.join("messages")).unwrap_or_default()
    }

    fn console(&self) -> String {
        fs::read_to_string(self.dir.join("console")).unwrap_or_default()
    }

    /// swandog's syslog lines (any pid), message part only.
    fn swandog_lines(&self) -> Vec<String> {
        self.messages()
            .lines()
            .filter_map(|l| l.split_once(" swandog[")?.1.split_once("]: "))
            .map(|(_, message)| message.to_string())
            .collect()
    }

    /// Waits until a swandog line containing `needle` has been logged `n` times.
    fn wait_line(&self, needle: &str, n: usize, timeout: Duration) -> Option<Duration> {
        wait_for(timeout, || {
            self.swandog_lines()
                .iter()
                .filter(|l| l.contains(needle))
                .count()
                >= n
        })
    }

    /// `init: starting pid ...` lines for swandog: one per (re)spawn.
    fn spawns(&self) -> usize {
        self.messages()
            .lines()
            .filter(|l| l.contains("init: starting pid") && l.contains("/usr/sbin/swandog"))
            .count()
    }

    /// Halts the firmware the way `reboot` does (SIGTERM to init); returns how long swandog
    /// `pid` took to exit.
    fn shut_down(mut self, pid: u32) -> (Duration, String) {
        let init = self.init_pid();
        let sent = Instant::now();
        kill(Pid::from_raw(init as i32), Signal::SIGTERM).expect("signal busybox init");
        while !exited(pid) && sent.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let took = sent.elapsed();
        let gone = wait_for(Duration::from_secs(10), || {
            matches!(self.unshare.try_wait(), Ok(Some(_)))
        });
        if gone.is_none() {
            let _ = self.unshare.kill();
            let _ = self.unshare.wait();
            panic!("busybox init did not halt:\n{}", self.console());
        }
        let messages = self.messages();
        let _ = fs::remove_dir_all(&self.dir);
        (took, messages)
    }
}

fn skip(test: &str) -> bool {
    if lab_disabled(test) {
        return true;
    }
    if !have_busybox() {
        return common::skip_real(test, "busybox not installed");
    }
    false
}

#[test]
fn busybox_init_starts_swandog_respawns_it_after_kill_9_and_stops_it_within_a_second() {
    let test = "busybox_init_starts_swandog_respawns_it_after_kill_9_and_stops_it_within_a_second";
    if skip(test) {
        return;
    }
    let lab = Lab::up("tinit");
    let fw = Firmware::boot("init-respawn", &lab.uri("a"), "");

    // Starts, connects, finds the route-based children.
    let first = fw
        .swandog_pid(None, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no swandog under init:\n{}{}", fw.console(), fw.messages()));
    assert!(
        fw.wait_line("con2_2: watching", 1, Duration::from_secs(15))
            .is_some()
            && fw
                .wait_line("con2_1: watching", 1, Duration::from_secs(1))
                .is_some(),
        "swandog did not find the route-based children:\n{}",
        fw.messages()
    );
    assert_eq!(fw.spawns(), 1, "{}", fw.messages());

    // kill -9: init starts a new one, which connects again.
    let killed = Instant::now();
    kill(Pid::from_raw(first as i32), Signal::SIGKILL).unwrap();
    let second = fw
        .swandog_pid(Some(first), RESPAWN_LIMIT)
        .unwrap_or_else(|| panic!("swandog was not respawned:\n{}", fw.messages()));
    let respawn = killed.elapsed();
    assert_ne!(first, second);
    assert!(
        fw.wait_line("connected to charon", 2, Duration::from_secs(10))
            .is_some(),
        "the respawned swandog did not reconnect:\n{}",
        fw.messages()
    );
    assert_eq!(fw.spawns(), 2, "{}", fw.messages());
    fs::read_to_string(fw.dir.join("status")).expect("the status file is written");

    // Shutdown: busybox init SIGTERMs everything, then SIGKILLs after one second.
    let (stop, messages) = fw.shut_down(second);
    eprintln!(
        "busybox init: respawned swandog {} ms after kill -9; swandog exited {} ms after the \
         shutdown began",
        respawn.as_millis(),
        stop.as_millis()
    );
    assert!(
        stop < STOP_LIMIT,
        "swandog took {stop:?} to stop; busybox init SIGKILLs after 1 s:\n{messages}"
    );
    assert!(
        messages
            .lines()
            .any(|l| l.contains("swandog[") && l.ends_with(": stopping on signal")),
        "no clean stop line:\n{messages}"
    );
}

#[test]
fn without_charon_swandog_waits_inside_instead_of_exiting_into_a_respawn_loop() {
    let test = "without_charon_swandog_waits_inside_instead_of_exiting_into_a_respawn_loop";
    if skip(test) {
        return;
    }
    // The lab's socket path, with no charon behind it yet: a firmware whose charon starts late.
    let lab = Lab::down_for_now("tnoch");
    let fw = Firmware::boot("init-nocharon", &lab.uri("a"), "");
    let pid = fw
        .swandog_pid(None, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no swandog under init:\n{}{}", fw.console(), fw.messages()));

    std::thread::sleep(Duration::from_secs(10));
    let lines = fw.swandog_lines();
    eprintln!("10 s without charon, swandog logged:\n{}", lines.join("\n"));
    assert!(
        !exited(pid),
        "swandog exited without charon:\n{}",
        fw.messages()
    );
    assert_eq!(fw.spawns(), 1, "respawned:\n{}", fw.messages());
    let waiting: Vec<&String> = lines.iter().filter(|l| l.contains("VICI socket")).collect();
    assert_eq!(
        waiting.len(),
        1,
        "one line when the wait starts, not one per attempt:\n{}",
        lines.join("\n")
    );
    assert!(waiting[0].contains("waiting for charon"), "{}", waiting[0]);
    assert!(
        lines.len() <= 4,
        "too chatty while waiting:\n{}",
        lines.join("\n")
    );

    // charon appears: swandog finds it by itself within one backoff cap.
    let t = Instant::now();
    lab.must(&["up"]);
    let found = fw.wait_line("connected to charon", 1, Duration::from_secs(40));
    assert!(found.is_some(), "never connected:\n{}", fw.messages());
    assert!(fw
        .wait_line("con2_1: watching", 1, Duration::from_secs(10))
        .is_some());
    eprintln!(
        "connected {} ms after charon started",
        t.elapsed().as_millis()
    );
    assert_eq!(fw.spawns(), 1);

    let (stop, messages) = fw.shut_down(pid);
    assert!(stop < STOP_LIMIT, "took {stop:?} to stop:\n{messages}");
}

#[test]
fn a_broken_config_under_init_is_reported_once_and_waits_for_a_fix_instead_of_respawning() {
    let test =
        "a_broken_config_under_init_is_reported_once_and_waits_for_a_fix_instead_of_respawning";
    if skip(test) {
        return;
    }
    let lab = Lab::up("tbadc");
    let vici = lab.uri("a");
    let fw = Firmware::boot("init-badconf", &vici, "backoff_cap_ms = soon\n");
    let pid = fw
        .swandog_pid(None, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no swandog under init:\n{}{}", fw.console(), fw.messages()));
    assert!(
        fw.wait_line("cannot start:", 1, Duration::from_secs(5))
            .is_some(),
        "{}",
        fw.messages()
    );
    std::thread::sleep(Duration::from_secs(5));
    let lines = fw.swandog_lines();
    eprintln!("broken config under init:\n{}", lines.join("\n"));
    assert!(!exited(pid), "swandog exited:\n{}", fw.messages());
    assert_eq!(fw.spawns(), 1, "respawned:\n{}", fw.messages());
    assert_eq!(
        lines.len(),
        1,
        "one line, not one per second:\n{}",
        lines.join("\n")
    );
    assert!(
        lines[0].contains("/etc/swandog.conf:4") && lines[0].contains("waiting for a fixed config"),
        "{}",
        lines[0]
    );

    // The operator fixes the file and sends SIGHUP, as the line says: swandog starts.
    fw.write_conf(&format!(
        "vici = {vici}\nstatus_file = {}\n",
        fw.dir.join("status").display()
    ));
    kill(Pid::from_raw(pid as i32), Signal::SIGHUP).unwrap();
    assert!(
        fw.wait_line("connected to charon", 1, Duration::from_secs(10))
            .is_some(),
        "did not start after the fix:\n{}",
        fw.messages()
    );
    assert_eq!(fw.spawns(), 1);
    let (stop, messages) = fw.shut_down(pid);
    assert!(stop < STOP_LIMIT, "took {stop:?} to stop:\n{messages}");
}
