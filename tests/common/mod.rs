//! Shared helpers for the real-strongSwan lab tests: a lab per test, torn down on drop.
#![allow(dead_code)]

pub mod rng;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Whether the lab tests are switched off on purpose (under qemu, where charon cannot run).
/// Anywhere else a missing charon or missing root is a failure, not a skip; and where every real
/// component is required (`SWANDOG_REQUIRE_REAL`, set by scripts/test.sh) the switch itself is.
pub fn lab_disabled(test: &str) -> bool {
    if std::env::var_os("SWANDOG_NO_LAB").is_some() {
        return skip_real(
            test,
            "SWANDOG_NO_LAB is set (emulated run; the lab needs a real kernel and charon)",
        );
    }
    false
}

/// A test that needs a real component this machine lacks (busybox, `unshare`, a syslogd):
/// prints `SKIPPED` and returns true, so the test returns early; but panics, failing the test,
/// when `SWANDOG_REQUIRE_REAL` is set (scripts/test.sh sets it: in CI a skip must not pass).
pub fn skip_real(test: &str, why: &str) -> bool {
    assert!(
        std::env::var_os("SWANDOG_REQUIRE_REAL").is_none(),
        "{test} cannot run: {why}; SWANDOG_REQUIRE_REAL is set (scripts/test.sh), so this is a \
         failure, not a skip: install what is missing (scripts/setup.sh) or run as root"
    );
    eprintln!("SKIPPED {test}: {why}");
    true
}

fn lab_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/lab.sh")
}

/// A running two-site lab, named after the test; `down` on drop.
pub struct Lab {
    pub name: String,
}

/// The lab name for `test` in this run: the test's short name plus this process's pid in base
/// 36, so two suites (say, the same tests against two strongSwan versions) running at once on
/// one machine never share namespaces or a run directory, and a run tears down only its own.
pub fn lab_run_name(test: &str) -> String {
    let mut pid = std::process::id();
    let mut suffix = Vec::new();
    loop {
        suffix.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(pid % 36) as usize]);
        pid /= 36;
        if pid == 0 {
            break;
        }
    }
    suffix.reverse();
    let name = format!("{test}{}", String::from_utf8_lossy(&suffix));
    assert!(
        name.len() <= 12,
        "lab name {name} too long for tests/lab/lab.sh (12 chars)"
    );
    name
}

impl Lab {
    /// Brings up a lab (both sites, all three children INSTALLED).
    pub fn up(name: &str) -> Lab {
        let lab = Lab {
            name: lab_run_name(name),
        };
        // A previous run with the same pid, killed midway, may have left one behind.
        let _ = lab.run(&["down"]);
        let out = lab.run(&["up"]);
        assert!(
            out.status.success(),
            "lab up failed (is this root with strongswan-charon, libcharon-extra-plugins, nftables installed? run the README's test command):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        lab
    }

    /// Runs `lab.sh NAME args…`.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(lab_script())
            .arg(&self.name)
            .args(args)
            .output()
            .expect("cannot run tests/lab/lab.sh")
    }

    /// Runs a lab command that must succeed.
    pub fn must(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "lab {} {:?} failed:\n{}{}",
            self.name,
            args,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The VICI URI of a site.
    pub fn uri(&self, site: &str) -> String {
        self.must(&["uri", site]).trim().to_string()
    }

    /// The charon log of a site.
    pub fn charon_log(&self, site: &str) -> String {
        let path = self.must(&["log", site]);
        std::fs::read_to_string(path.trim()).unwrap_or_default()
    }

    /// Names of INSTALLED children on a site (via swanctl, independent of swandog).
    pub fn installed(&self, site: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .must(&["installed", site])
            .lines()
            .map(str::to_string)
            .collect();
        names.sort();
        names
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.run(&["down"]);
    }
}

/// Polls `f` every 100 ms until it is true or `timeout` passes; returns the time it took.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// The swandog binary built for this test run.
pub fn swandog() -> Command {
    Command::new(env!("CARGO_BIN_EXE_swandog"))
}

/// Running `swandog run` against a lab, timestamped log lines, the status JSON, a CPU burner.
/// Self-contained: everything the agent-level lab tests (lab_verdict, lab_keeper) share.
pub mod labkit {
    use std::collections::BTreeMap;
    use std::io::{BufRead, BufReader, Read};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::thread::JoinHandle;
    use std::time::{Duration, Instant};

    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;

    /// Lines seen so far, each with the moment the test saw it (ms-precise, unlike log stamps).
    #[derive(Clone, Default)]
    pub struct Lines(Arc<Mutex<Vec<(Instant, String)>>>);

    impl Lines {
        fn push(&self, line: String) {
            let mut v = self.0.lock().unwrap_or_else(|e| e.into_inner());
            v.push((Instant::now(), line));
        }

        /// Every line so far.
        pub fn all(&self) -> Vec<(Instant, String)> {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
        }

        /// Every line so far as one text.
        pub fn text(&self) -> String {
            let mut s = String::new();
            for (_, l) in self.all() {
                s.push_str(&l);
                s.push('\n');
            }
            s
        }

        /// The first line seen at or after `since` that matches.
        pub fn find(
            &self,
            since: Instant,
            pred: impl Fn(&str) -> bool,
        ) -> Option<(Instant, String)> {
            self.all()
                .into_iter()
                .find(|(at, l)| *at >= since && pred(l))
        }

        /// Waits up to `timeout` for a line at or after `since` that matches.
        pub fn wait(
            &self,
            since: Instant,
            timeout: Duration,
            pred: impl Fn(&str) -> bool,
        ) -> Option<(Instant, String)> {
            let end = Instant::now() + timeout;
            loop {
                if let Some(hit) = self.find(since, &pred) {
                    return Some(hit);
                }
                if Instant::now() >= end {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Follows a growing file (charon's filelog) from its current end, stamping each new line.
    pub struct Tail {
        pub lines: Lines,
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<()>>,
    }

    impl Tail {
        /// Starts following `path` from its current end.
        pub fn follow(path: &Path) -> Tail {
            let lines = Lines::default();
            let stop = Arc::new(AtomicBool::new(false));
            let start = std::fs::metadata(path).map_or(0, |m| m.len());
            let (l, s, p) = (lines.clone(), stop.clone(), path.to_path_buf());
            let thread = std::thread::spawn(move || {
                let mut pos = start;
                let mut partial = Vec::new();
                while !s.load(Ordering::Relaxed) {
                    if let Ok(mut f) = std::fs::File::open(&p) {
                        let len = f.metadata().map_or(0, |m| m.len());
                        if len < pos {
                            pos = 0; // truncated or replaced
                        }
                        if len > pos {
                            use std::io::Seek;
                            let mut buf = Vec::new();
                            if f.seek(std::io::SeekFrom::Start(pos)).is_ok()
                                && f.read_to_end(&mut buf).is_ok()
                            {
                                pos += buf.len() as u64;
                                partial.extend_from_slice(&buf);
                                while let Some(nl) = partial.iter().position(|&b| b == b'\n') {
                                    let line: Vec<u8> = partial.drain(..=nl).collect();
                                    l.push(String::from_utf8_lossy(&line[..nl]).into_owned());
                                }
                            }
                        }
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
            Tail {
                lines,
                stop,
                thread: Some(thread),
            }
        }
    }

    impl Drop for Tail {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    /// A `swandog run --log stderr` child; SIGTERM (by pid) on drop.
    pub struct Swandog {
        pub child: Child,
        pub dir: PathBuf,
        pub status_file: PathBuf,
        /// stderr lines as they arrive.
        pub lines: Lines,
        pub started: Instant,
        reader: Option<JoinHandle<()>>,
    }

    impl Swandog {
        /// Starts the agent on `uri` with `extra` flags; `tag` names its scratch dir.
        pub fn start(tag: &str, uri: &str, extra: &[&str]) -> Swandog {
            let dir =
                std::env::temp_dir().join(format!("swandog-labkit-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("scratch dir");
            let status_file = dir.join("status");
            let mut child = super::swandog()
                .arg("run")
                .args(["--vici", uri, "--log", "stderr"])
                .arg("--status-file")
                .arg(&status_file)
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("cannot start swandog run");
            let lines = Lines::default();
            let stderr = child.stderr.take().expect("piped stderr");
            let l = lines.clone();
            let reader = std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    match line {
                        Ok(line) => l.push(line),
                        Err(_) => break,
                    }
                }
            });
            Swandog {
                child,
                dir,
                status_file,
                lines,
                started: Instant::now(),
                reader: Some(reader),
            }
        }

        /// The agent's stderr so far.
        pub fn log(&self) -> String {
            self.lines.text()
        }

        /// `swandog status --json`, parsed (None while there is no snapshot yet).
        pub fn status(&self) -> Option<Json> {
            let out = super::swandog()
                .arg("status")
                .arg("--status-file")
                .arg(&self.status_file)
                .arg("--json")
                .output()
                .ok()?;
            if !out.status.success() {
                return None;
            }
            Json::parse(&String::from_utf8_lossy(&out.stdout)).ok()
        }

        /// Waits until the status satisfies `pred`; the last status seen either way.
        pub fn wait_status(
            &self,
            timeout: Duration,
            pred: impl Fn(&Json) -> bool,
        ) -> (bool, Option<Json>) {
            let end = Instant::now() + timeout;
            let mut last = None;
            loop {
                if let Some(s) = self.status() {
                    if pred(&s) {
                        return (true, Some(s));
                    }
                    last = Some(s);
                }
                if Instant::now() >= end {
                    return (false, last);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }

        /// Whether it is still running.
        pub fn alive(&mut self) -> bool {
            matches!(self.child.try_wait(), Ok(None))
        }

        /// SIGTERM by pid, then SIGKILL after 3 s; returns how long it took to exit.
        pub fn stop(&mut self) -> Duration {
            let t = Instant::now();
            if self.alive() {
                let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
                while t.elapsed() < Duration::from_secs(3) && self.alive() {
                    std::thread::sleep(Duration::from_millis(10));
                }
                if self.alive() {
                    let _ = self.child.kill();
                }
            }
            let _ = self.child.wait();
            if let Some(r) = self.reader.take() {
                let _ = r.join();
            }
            t.elapsed()
        }
    }

    impl Drop for Swandog {
        fn drop(&mut self) {
            self.stop();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// Children of the status JSON by name.
    pub fn child<'a>(status: &'a Json, name: &str) -> Option<&'a Json> {
        status
            .get("children")?
            .items()
            .iter()
            .find(|c| c.get("name").and_then(Json::as_str) == Some(name))
    }

    /// The `state` of one child in the status JSON.
    pub fn child_state<'a>(status: &'a Json, name: &str) -> Option<&'a str> {
        child(status, name)?.get("state")?.as_str()
    }

    /// One busy-loop process per CPU (or `n`), killed by pid on drop (also on panic).
    pub struct CpuBurner {
        children: Vec<Child>,
    }

    impl CpuBurner {
        pub fn start(n: usize) -> CpuBurner {
            let children = (0..n)
                .map(|_| {
                    Command::new("sh")
                        .args(["-c", "while :; do :; done"])
                        .stdin(Stdio::null())
                        .spawn()
                        .expect("cannot start a CPU burner")
                })
                .collect();
            CpuBurner { children }
        }

        /// One burner per CPU of this box.
        pub fn all_cpus() -> CpuBurner {
            CpuBurner::start(std::thread::available_parallelism().map_or(2, |n| n.get()))
        }
    }

    impl Drop for CpuBurner {
        fn drop(&mut self) {
            for c in &mut self.children {
                let _ = c.kill();
            }
            for c in &mut self.children {
                let _ = c.wait();
            }
        }
    }

    /// (busy, total) jiffies of the whole box from /proc/stat, as swandog counts busy.
    pub fn cpu_jiffies() -> (u64, u64) {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let line = stat.lines().next().unwrap_or_default();
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        let get = |i: usize| v.get(i).copied().unwrap_or(0);
        // user nice system idle iowait irq softirq steal
        let busy = get(0) + get(1) + get(2) + get(5) + get(6) + get(7);
        let total = busy + get(3) + get(4);
        (busy, total)
    }

    /// `some avg10` of /proc/pressure/cpu, when the kernel has it.
    pub fn psi_some_avg10() -> Option<f64> {
        let text = std::fs::read_to_string("/proc/pressure/cpu").ok()?;
        let some = text.lines().find(|l| l.starts_with("some"))?;
        some.split_whitespace()
            .find_map(|f| f.strip_prefix("avg10="))?
            .parse()
            .ok()
    }

    /// Busy % of the box over `d`.
    pub fn busy_over(d: Duration) -> f64 {
        let (b0, t0) = cpu_jiffies();
        std::thread::sleep(d);
        let (b1, t1) = cpu_jiffies();
        if t1 <= t0 {
            return 0.0;
        }
        (b1 - b0) as f64 * 100.0 / (t1 - t0) as f64
    }

    /// When, busy %, PSI `some avg10`.
    type ProbeSample = (Instant, f64, Option<f64>);

    /// A background sampler of the box's load (busy % per 250 ms, PSI avg10), independent of
    /// swandog: tells a test whether the box really was quiet or loaded over some interval.
    pub struct LoadProbe {
        samples: Arc<Mutex<Vec<ProbeSample>>>,
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<()>>,
    }

    impl LoadProbe {
        pub fn start() -> LoadProbe {
            let samples = Arc::new(Mutex::new(Vec::new()));
            let stop = Arc::new(AtomicBool::new(false));
            let (s, st) = (samples.clone(), stop.clone());
            let thread = std::thread::spawn(move || {
                while !st.load(Ordering::Relaxed) {
                    let busy = busy_over(Duration::from_millis(250));
                    let psi = psi_some_avg10();
                    s.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((Instant::now(), busy, psi));
                }
            });
            LoadProbe {
                samples,
                stop,
                thread: Some(thread),
            }
        }

        /// Samples taken in `[from, to]`: (busy %, PSI avg10).
        pub fn between(&self, from: Instant, to: Instant) -> Vec<(f64, Option<f64>)> {
            self.samples
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .filter(|(at, _, _)| *at >= from && *at <= to)
                .map(|&(_, b, p)| (b, p))
                .collect()
        }

        /// Waits until the last `for_` was quiet (every sample busy < `busy_max`, PSI <
        /// `psi_max`); false after `timeout`. Prints what it saw.
        pub fn wait_quiet(
            &self,
            for_: Duration,
            busy_max: f64,
            psi_max: f64,
            timeout: Duration,
        ) -> bool {
            let start = Instant::now();
            loop {
                let now = Instant::now();
                if now.duration_since(start) >= for_ {
                    let recent = self.between(now - for_, now);
                    if recent.len() >= 2
                        && recent
                            .iter()
                            .all(|&(b, p)| b < busy_max && p.is_none_or(|p| p < psi_max))
                    {
                        eprintln!("box quiet after {:?}: {:?}", start.elapsed(), recent.last());
                        return true;
                    }
                }
                if start.elapsed() >= timeout {
                    eprintln!(
                        "box not quiet within {timeout:?}; recent samples (busy %, psi avg10): {:?}",
                        self.between(now - for_, now)
                    );
                    return false;
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    }

    impl Drop for LoadProbe {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    /// `swandog sas --json` against `uri`: every IKE_SA charon has, parsed.
    pub fn sas(uri: &str) -> Json {
        let out = super::swandog()
            .args(["sas", "--json", "--vici", uri])
            .output()
            .expect("cannot run swandog sas");
        assert!(
            out.status.success(),
            "swandog sas --json --vici {uri} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Json::parse(&String::from_utf8_lossy(&out.stdout)).expect("sas --json is JSON")
    }

    /// The charon log of a lab site, followed from now on.
    pub fn follow_charon(lab: &super::Lab, site: &str) -> Tail {
        Tail::follow(Path::new(lab.must(&["log", site]).trim()))
    }

    /// A JSON value: just enough to read swandog's status and `sas --json`.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Json {
        Null,
        Bool(bool),
        Num(f64),
        Str(String),
        Arr(Vec<Json>),
        Obj(BTreeMap<String, Json>),
    }

    impl Json {
        /// Parses one JSON text (trailing whitespace allowed).
        pub fn parse(text: &str) -> Result<Json, String> {
            let b = text.as_bytes();
            let mut i = 0;
            let v = value(b, &mut i)?;
            ws(b, &mut i);
            if i != b.len() {
                return Err(format!("trailing bytes at {i}: {text:?}"));
            }
            Ok(v)
        }

        pub fn get(&self, key: &str) -> Option<&Json> {
            match self {
                Json::Obj(m) => m.get(key),
                _ => None,
            }
        }

        pub fn items(&self) -> &[Json] {
            match self {
                Json::Arr(v) => v,
                _ => &[],
            }
        }

        pub fn as_str(&self) -> Option<&str> {
            match self {
                Json::Str(s) => Some(s),
                _ => None,
            }
        }

        pub fn as_f64(&self) -> Option<f64> {
            match self {
                Json::Num(n) => Some(*n),
                _ => None,
            }
        }

        pub fn as_bool(&self) -> Option<bool> {
            match self {
                Json::Bool(b) => Some(*b),
                _ => None,
            }
        }
    }

    fn ws(b: &[u8], i: &mut usize) {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    }

    fn value(b: &[u8], i: &mut usize) -> Result<Json, String> {
        ws(b, i);
        let err = |i: usize, what: &str| format!("bad JSON at byte {i}: {what}");
        match b.get(*i) {
            None => Err(err(*i, "end of text")),
            Some(b'{') => {
                *i += 1;
                let mut m = BTreeMap::new();
                ws(b, i);
                if b.get(*i) == Some(&b'}') {
                    *i += 1;
                    return Ok(Json::Obj(m));
                }
                loop {
                    ws(b, i);
                    let Json::Str(k) = value(b, i)? else {
                        return Err(err(*i, "object key"));
                    };
                    ws(b, i);
                    if b.get(*i) != Some(&b':') {
                        return Err(err(*i, "':'"));
                    }
                    *i += 1;
                    m.insert(k, value(b, i)?);
                    ws(b, i);
                    match b.get(*i) {
                        Some(b',') => *i += 1,
                        Some(b'}') => {
                            *i += 1;
                            return Ok(Json::Obj(m));
                        }
                        _ => return Err(err(*i, "',' or '}'")),
                    }
                }
            }
            Some(b'[') => {
                *i += 1;
                let mut v = Vec::new();
                ws(b, i);
                if b.get(*i) == Some(&b']') {
                    *i += 1;
                    return Ok(Json::Arr(v));
                }
                loop {
                    v.push(value(b, i)?);
                    ws(b, i);
                    match b.get(*i) {
                        Some(b',') => *i += 1,
                        Some(b']') => {
                            *i += 1;
                            return Ok(Json::Arr(v));
                        }
                        _ => return Err(err(*i, "',' or ']'")),
                    }
                }
            }
            Some(b'"') => {
                *i += 1;
                let mut s = String::new();
                loop {
                    match b.get(*i) {
                        None => return Err(err(*i, "unterminated string")),
                        Some(b'"') => {
                            *i += 1;
                            return Ok(Json::Str(s));
                        }
                        Some(b'\\') => {
                            let c = match b.get(*i + 1) {
                                Some(b'n') => '\n',
                                Some(b't') => '\t',
                                Some(b'r') => '\r',
                                Some(b'b') => '\u{8}',
                                Some(b'f') => '\u{c}',
                                Some(b'u') => {
                                    let hex =
                                        b.get(*i + 2..*i + 6).ok_or_else(|| err(*i, "\\u"))?;
                                    let code =
                                        u32::from_str_radix(&String::from_utf8_lossy(hex), 16)
                                            .map_err(|_| err(*i, "\\u digits"))?;
                                    *i += 4;
                                    char::from_u32(code).unwrap_or('\u{fffd}')
                                }
                                Some(&c) => c as char,
                                None => return Err(err(*i, "escape")),
                            };
                            s.push(c);
                            *i += 2;
                        }
                        Some(_) => {
                            let start = *i;
                            while *i < b.len() && b[*i] != b'"' && b[*i] != b'\\' {
                                *i += 1;
                            }
                            s.push_str(&String::from_utf8_lossy(&b[start..*i]));
                        }
                    }
                }
            }
            Some(b't') if b[*i..].starts_with(b"true") => {
                *i += 4;
                Ok(Json::Bool(true))
            }
            Some(b'f') if b[*i..].starts_with(b"false") => {
                *i += 5;
                Ok(Json::Bool(false))
            }
            Some(b'n') if b[*i..].starts_with(b"null") => {
                *i += 4;
                Ok(Json::Null)
            }
            Some(_) => {
                let start = *i;
                while *i < b.len()
                    && matches!(b[*i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    *i += 1;
                }
                std::str::from_utf8(&b[start..*i])
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .map(Json::Num)
                    .ok_or_else(|| err(start, "value"))
            }
        }
    }
}

impl Lab {
    /// A lab guard for a lab that is down now (a leftover is taken down); bring it up later
    /// with `lab.must(&["up"])`. `down` on drop like [`Lab::up`].
    pub fn down_for_now(name: &str) -> Lab {
        let lab = Lab {
            name: lab_run_name(name),
        };
        let _ = lab.run(&["down"]);
        lab
    }
}

/// A fresh scratch directory for one test, under the system temp dir.
pub fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("swandog-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Whether busybox is installed (tests that need it skip, loudly, without it).
pub fn have_busybox() -> bool {
    Command::new("busybox")
        .arg("true")
        .status()
        .is_ok_and(|s| s.success())
}

/// One busybox `syslogd` in its own mount namespace with `dir` bind-mounted over `/dev`, so its
/// socket is `dir/log` from outside (and `/dev/log` for anything else that mounts `dir` over
/// `/dev`); it writes to `file`. Killed by its own pid when dropped.
pub struct PrivateSyslogd {
    child: std::process::Child,
}

impl PrivateSyslogd {
    pub fn start(dir: &Path, file: &Path) -> PrivateSyslogd {
        let child = Command::new("unshare")
            .args(["-m", "sh", "-c"])
            .arg(r#"mount --bind "$0" /dev && exec busybox syslogd -n -O "$1""#)
            .arg(dir)
            .arg(file)
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("spawn unshare for busybox syslogd");
        let daemon = PrivateSyslogd { child };
        let socket = dir.join("log");
        let ready = wait_for(Duration::from_secs(5), || {
            std::os::unix::net::UnixDatagram::unbound()
                .and_then(|s| s.connect(&socket))
                .is_ok()
        });
        assert!(
            ready.is_some(),
            "busybox syslogd did not listen on {}",
            socket.display()
        );
        daemon
    }
}

impl Drop for PrivateSyslogd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Pids of the live processes whose parent is `parent`, with their command names.
pub fn children_of(parent: u32) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let mut rest = stat[close + 1..].split_whitespace();
        let state = rest.next().unwrap_or("");
        let ppid = rest.next().and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) && state != "Z" {
            found.push((pid, stat[open + 1..close].to_string()));
        }
    }
    found
}

/// Whether `pid` is gone or a zombie (exited, not yet reaped).
pub fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .is_some_and(|i| stat[i + 1..].trim_start().starts_with('Z')),
        Err(_) => true,
    }
}
