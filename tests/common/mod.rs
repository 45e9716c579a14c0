//! Shared helpers for the real-strongSwan lab tests: a lab per test, torn down on drop.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Whether the lab tests are switched off on purpose (under qemu, where charon cannot run).
/// Anywhere else a missing charon or missing root is a failure, not a skip.
pub fn lab_disabled(test: &str) -> bool {
    if std::env::var_os("SWANDOG_NO_LAB").is_some() {
        eprintln!("skipping {test}: SWANDOG_NO_LAB is set (emulated run; the lab needs a real kernel and charon)");
        return true;
    }
    false
}

fn lab_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/lab.sh")
}

/// A running two-site lab, named after the test; `down` on drop.
pub struct Lab {
    pub name: String,
}

impl Lab {
    /// Brings up a lab (both sites, all three children INSTALLED).
    pub fn up(name: &str) -> Lab {
        let lab = Lab {
            name: name.to_string(),
        };
        // A previous run killed midway may have left one behind.
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
