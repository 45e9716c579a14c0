//! The init glue under `board/`, run by busybox sh: syntax, and the OpenWrt script's UCI → flag
//! mapping (with procd's and UCI's shell functions stubbed), checked against the config
//! validator so every flag it passes is one swandog accepts. Skipped without busybox.

use std::path::{Path, PathBuf};
use std::process::Command;

use swandog::config::{Config, Origin};

fn board_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("board")
}

fn have_busybox() -> bool {
    let found = Command::new("busybox")
        .arg("true")
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        eprintln!("SKIPPED: busybox not installed");
    }
    found
}

/// Stand-ins for OpenWrt's UCI and procd shell functions: UCI values come from `UCI_<section>_
/// <option>` variables, procd calls are printed one per line with each argument in brackets.
const OPENWRT_STUBS: &str = r#"
config_load() { :; }
config_get() { eval "$1=\"\${UCI_$2_$3:-$4}\""; }
config_get_bool() { config_get "$@"; }
config_list_foreach() { eval "_items=\"\$UCI_$1_$2\""; for _i in $_items; do "$3" "$_i"; done; }
procd_open_instance() { echo "open [$1]"; }
procd_close_instance() { echo "close"; }
procd_set_param() { _p="$1"; shift; printf 'set %s' "$_p"; printf ' [%s]' "$@"; echo; }
procd_append_param() { _p="$1"; shift; printf 'append %s' "$_p"; printf ' [%s]' "$@"; echo; }
"#;

/// Runs the OpenWrt init script's `start_service` with `uci` settings; returns the procd calls.
fn procd_calls(uci: &str) -> Vec<String> {
    let script = board_dir().join("openwrt/swandog.init");
    let program = format!(
        "{OPENWRT_STUBS}\n{uci}\n. '{}'\nstart_service\n",
        script.display()
    );
    let out = Command::new("busybox")
        .args(["sh", "-c", &program])
        .output()
        .expect("run busybox sh");
    assert!(
        out.status.success(),
        "start_service failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The arguments in `[...]` of the procd lines about `param`, in order.
fn args_of(calls: &[String], param: &str) -> Vec<String> {
    let mut args = Vec::new();
    for line in calls {
        let Some(rest) = line
            .strip_prefix(&format!("set {param} "))
            .or_else(|| line.strip_prefix(&format!("append {param} ")))
        else {
            continue;
        };
        args.extend(
            rest.split(" [")
                .map(|a| a.trim_start_matches('[').trim_end_matches(']').to_string()),
        );
    }
    args
}

#[test]
fn every_board_script_passes_busybox_sh_syntax_check() {
    if !have_busybox() {
        return;
    }
    let out = Command::new("busybox")
        .arg("sh")
        .arg(board_dir().join("check.sh"))
        .output()
        .expect("run board/check.sh");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "board/check.sh failed:\n{text}");
    assert_eq!(
        text.lines().filter(|l| l.starts_with("ok ")).count(),
        3,
        "{text}"
    );
}

#[test]
fn openwrt_script_runs_swandog_in_the_foreground_respawned_forever() {
    if !have_busybox() {
        return;
    }
    let calls = procd_calls("");
    assert_eq!(calls.first().map(String::as_str), Some("open [main]"));
    assert_eq!(
        args_of(&calls, "command"),
        ["/usr/sbin/swandog", "run", "--log", "syslog"]
    );
    assert_eq!(args_of(&calls, "respawn"), ["3600", "5", "0"]);
    assert_eq!(args_of(&calls, "file"), ["/etc/config/swandog"]);
    assert!(calls.contains(&"close".to_string()));
}

#[test]
fn openwrt_script_maps_uci_options_to_flags_swandog_accepts() {
    if !have_busybox() {
        return;
    }
    let uci = "UCI_main_enabled=1
        UCI_main_config=/etc/swandog-site-a.conf
        UCI_main_role=initiator
        UCI_main_board=ath79
        UCI_main_backoff_cap_ms=120000
        UCI_main_stale_after_s=90
        UCI_main_syslog_facility=local2
        UCI_main_nice=-2
        UCI_main_watch='con1 con2_1'";
    let args = args_of(&procd_calls(uci), "command");
    let mut expected: Vec<&str> = vec!["/usr/sbin/swandog", "run", "--log", "syslog"];
    expected.extend([
        "--config",
        "/etc/swandog-site-a.conf",
        "--role",
        "initiator",
        "--board",
        "ath79",
        "--stale-after-s",
        "90",
        "--backoff-cap-ms",
        "120000",
        "--nice",
        "-2",
        "--syslog-facility",
        "local2",
        "--watch",
        "con1,con2_1",
    ]);
    assert_eq!(args, expected);

    // Every flag but --config is a config key whose value passes the shared validator.
    let mut config = Config::default();
    for pair in args[2..].chunks(2) {
        let [flag, value] = pair else {
            panic!("flag without value in {args:?}");
        };
        if flag == "--config" {
            continue;
        }
        config
            .set(flag, value, Origin::Flag)
            .unwrap_or_else(|e| panic!("{flag} {value}: {e}"));
    }
    config.validate().unwrap();
    assert_eq!(config.watch.len(), 2);
    assert_eq!(config.backoff_cap_ms, 120_000);
}

#[test]
fn openwrt_script_starts_nothing_when_disabled() {
    if !have_busybox() {
        return;
    }
    assert!(procd_calls("UCI_main_enabled=0").is_empty());
}

#[test]
fn inittab_line_respawns_swandog_logging_to_syslog() {
    let text = std::fs::read_to_string(board_dir().join("busybox/inittab.line")).unwrap();
    let entries: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(entries, ["::respawn:/usr/sbin/swandog run --log syslog"]);
}
