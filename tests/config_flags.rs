//! The flags of `swandog run` and `swandog check` are made from the config's key table: every key
//! is a flag in `--help`, with its help text, and every flag reaches the config's validator.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output};

use swandog::config::Key;

fn swandog(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_swandog"))
        .args(args)
        .output()
        .expect("run swandog")
}

/// An empty config file that passes the ownership and mode checks, so the flags alone count.
fn empty_config() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("swandog-flags-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("empty.conf");
    std::fs::write(&path, "# nothing\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

#[test]
fn every_key_is_a_flag_of_run_and_check_with_its_help() {
    for command in ["run", "check"] {
        let out = swandog(&[command, "--help"]);
        assert!(out.status.success(), "{command} --help: {out:?}");
        // argh wraps help at 80 columns: compare with whitespace folded.
        let help = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        for key in Key::ALL {
            let flag = key.flag().to_string();
            assert!(
                help.contains(&format!("[{flag} <")),
                "{command} --help lacks {flag} in its usage:\n{help}"
            );
            let text = key.help().split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(
                help.contains(&format!("{flag} {text}")),
                "{command} --help lacks {flag}'s help {text:?}:\n{help}"
            );
        }
    }
}

#[test]
fn every_flag_reaches_the_config_validator() {
    let config = empty_config();
    let config = config.to_str().unwrap();
    // Wrong for every kind of key: not a URI, not a child name, no word, no number, no absolute path.
    let bad = "bad/value";
    for key in Key::ALL {
        let flag = key.flag().to_string();
        let out = swandog(&["check", "--config", config, &flag, bad]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flag} {bad} accepted");
        assert!(
            stderr.contains(&format!("command line: {flag} \"{bad}\"")),
            "{flag}: {stderr}"
        );
    }
}

#[test]
fn repeated_watch_flags_are_joined_into_one_list() {
    let config = empty_config();
    let config = config.to_str().unwrap();
    // Only the joined list "con1,con1" names a child twice.
    let out = swandog(&[
        "check", "--config", config, "--watch", "con1", "--watch", "con1",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("command line: --watch \"con1,con1\": \"con1\" is listed twice"),
        "{stderr}"
    );
}
