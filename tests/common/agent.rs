//! A running `swandog run` for integration tests: its own directory, status file and log,
//! helpers to read the status JSON and /proc/PID memory figures; killed (by its pid) on drop.
//!
//! Used by `tests/faults.rs` and `tests/lab_faults.rs` (`#[path]`-included).
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::{swandog, wait_for};

/// A running `swandog run` with its own directory, killed (by its pid) when dropped.
pub struct Agent {
    pub child: Child,
    pub dir: PathBuf,
    pub status: PathBuf,
    pub log: PathBuf,
}

impl Agent {
    /// `swandog run --vici URI --log stderr --status-file DIR/status EXTRA…`, stderr to
    /// DIR/swandog.log. `--quiet-proc` in `extra` becomes `--proc-root` of a recorded /proc that
    /// never changes (a quiet box, whatever else loads the test machine).
    pub fn start<S: AsRef<str>>(dir: &Path, uri: &str, extra: &[S]) -> Agent {
        let mut cmd = swandog();
        Self::add_args(&mut cmd, dir, uri, &["--log", "stderr"], extra);
        Self::spawn(cmd, dir)
    }

    /// Like [`Agent::start`], but run through `wrapper` (e.g. `unshare -m sh -c …`), which ends
    /// by exec-ing its arguments, so the pid is swandog's; `log` chooses where lines go.
    pub fn start_wrapped<S: AsRef<str>>(
        wrapper: &[&str],
        dir: &Path,
        uri: &str,
        log: &[&str],
        extra: &[S],
    ) -> Agent {
        let mut cmd = Command::new(wrapper[0]);
        cmd.args(&wrapper[1..]).arg(swandog().get_program());
        Self::add_args(&mut cmd, dir, uri, log, extra);
        Self::spawn(cmd, dir)
    }

    fn add_args<S: AsRef<str>>(
        cmd: &mut Command,
        dir: &Path,
        uri: &str,
        log: &[&str],
        extra: &[S],
    ) {
        let config = dir.join("swandog.conf");
        fs::write(&config, "# empty: flags only\n").unwrap();
        cmd.args(["run", "--config"])
            .arg(&config)
            .args(["--vici", uri, "--status-file"])
            .arg(dir.join("status"))
            .args(log);
        for arg in extra {
            if arg.as_ref() == "--quiet-proc" {
                cmd.arg("--proc-root").arg(quiet_proc(dir));
            } else {
                cmd.arg(arg.as_ref());
            }
        }
    }

    fn spawn(mut cmd: Command, dir: &Path) -> Agent {
        let log = dir.join("swandog.log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn swandog run");
        Agent {
            child,
            dir: dir.to_path_buf(),
            status: dir.join("status"),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The status JSON line.
    pub fn json(&self) -> String {
        fs::read_to_string(&self.status)
            .unwrap_or_default()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_lines_with(&self, needle: &str) -> usize {
        self.log().lines().filter(|l| l.contains(needle)).count()
    }

    /// A counter of the status snapshot, by name. Panics when the snapshot has no such counter
    /// (or there is no snapshot yet): a renamed or dropped counter must fail the test, not read
    /// as 0. The snapshot is replaced by `rename`, so a written one is never half there.
    pub fn counter(&self, name: &str) -> u64 {
        let json = self.json();
        number(&json, name).unwrap_or_else(|| panic!("no counter {name:?} in the status: {json:?}"))
    }

    pub fn connected(&self) -> bool {
        self.json().contains("\"vici\":{\"connected\":true")
    }

    pub fn child_state(&self, name: &str) -> Option<String> {
        child_state(&self.json(), name)
    }

    /// Both route-based children of the captured frames (`con2_1`, `con2_2`) up.
    pub fn children_up(&self) -> bool {
        self.all_up(&["con2_1", "con2_2"])
    }

    /// Every named child up in the status.
    pub fn all_up(&self, names: &[&str]) -> bool {
        let json = self.json();
        names
            .iter()
            .all(|c| child_state(&json, c).as_deref() == Some("up"))
    }

    /// VmRSS and Private_Dirty (anonymous memory written), KiB.
    pub fn memory_kib(&self) -> (u64, u64) {
        memory_kib(self.pid())
    }

    pub fn wait(&mut self, what: &str, timeout: Duration, mut f: impl FnMut(&Agent) -> bool) {
        let agent = &*self;
        let ok = wait_for(timeout, || f(agent));
        assert!(
            ok.is_some(),
            "{what}: not within {timeout:?}\nstatus: {}\nlog:\n{}",
            self.json(),
            self.log()
        );
        assert!(self.alive(), "swandog exited:\n{}", self.log());
    }

    /// Waits until the status file is rewritten after now.
    pub fn fresh_status(&mut self, timeout: Duration) -> String {
        let before = fs::metadata(&self.status).and_then(|m| m.modified()).ok();
        self.wait("status rewritten", timeout, |a| {
            fs::metadata(&a.status).and_then(|m| m.modified()).ok() != before
        });
        self.json()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

pub fn memory_kib(pid: u32) -> (u64, u64) {
    let field = |text: &str, key: &str| -> u64 {
        text.lines()
            .filter(|l| l.starts_with(key))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum()
    };
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rollup = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    (field(&status, "VmRSS:"), field(&rollup, "Private_Dirty:"))
}

pub fn number(json: &str, key: &str) -> Option<u64> {
    let at = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let digits: String = json[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

pub fn child_state(json: &str, name: &str) -> Option<String> {
    let at = json.find(&format!("{{\"name\":\"{name}\""))?;
    let rest = &json[at..];
    let state = rest.find("\"state\":\"")? + 9;
    Some(rest[state..].split('"').next()?.to_string())
}

pub fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("swandog-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// A recorded /proc/stat and an idle PSI file that never change: load 0, pace normal.
fn quiet_proc(dir: &Path) -> PathBuf {
    let proc_root = dir.join("proc");
    fs::create_dir_all(proc_root.join("pressure")).unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/proc");
    fs::copy(data.join("stat-x86_64-2cpu-t0"), proc_root.join("stat")).unwrap();
    fs::write(
        proc_root.join("pressure/cpu"),
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
    )
    .unwrap();
    proc_root
}
