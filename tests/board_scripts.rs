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
        assert!(std::env::var_os("SWANDOG_REQUIRE_REAL").is_none(), "busybox not installed: a failure, not a skip, under SWANDOG_REQUIRE_REAL (scripts/test.sh)");
    }
    found
}

/// Stand-ins for OpenWrt's UCI and procd shell functions: UCI values come from `UCI_<section>_
/// <option>` variables, procd calls are printed one per line with each argument in brackets.
/// `procd_close_instance` then decides as procd's `instance_update` does, against the instance
/// it kept in `$PROCD_STATE` (the command, every parameter, and the md5 of each `file`): first
/// time `procd: start`; changed: `procd: signal N` when `reload_signal` is set, else
/// `procd: restart`; unchanged: nothing. `procd_send_signal` prints `procd: signal ...` too.
const OPENWRT_STUBS: &str = r#"
config_load() { :; }
config_get() { eval "$1=\"\${UCI_$2_$3:-$4}\""; }
config_get_bool() { config_get "$@"; }
config_list_foreach() { eval "_items=\"\$UCI_$1_$2\""; for _i in $_items; do "$3" "$_i"; done; }
procd_open_instance() { echo "open [$1]"; _blob="instance $1"; _reload_signal=""; }
procd_blob() {
	_p="$1"; shift
	_blob="$_blob
$_p $*"
	case "$_p" in
		file) for _f in "$@"; do _blob="$_blob $(md5sum "$_f" 2>/dev/null | cut -d' ' -f1)"; done ;;
		reload_signal) _reload_signal=$(kill -l "$1") ;;
	esac
}
procd_set_param() { procd_blob "$@"; _p="$1"; shift; printf 'set %s' "$_p"; printf ' [%s]' "$@"; echo; }
procd_append_param() { procd_blob "$@"; _p="$1"; shift; printf 'append %s' "$_p"; printf ' [%s]' "$@"; echo; }
procd_close_instance() {
	echo "close"
	if [ ! -e "$PROCD_STATE" ]; then
		echo "procd: start"
	elif [ "$(cat "$PROCD_STATE")" != "$_blob" ]; then
		if [ -n "$_old_reload_signal" ]; then echo "procd: signal $_old_reload_signal"; else echo "procd: restart"; fi
	fi
	printf '%s' "$_blob" > "$PROCD_STATE"
	printf '%s' "$_reload_signal" > "$PROCD_STATE.signal"
}
procd_send_signal() { echo "procd: signal $3 (procd_send_signal $*)"; }
stop() { echo "procd: stop"; rm -f "$PROCD_STATE" "$PROCD_STATE.signal"; }
procd_add_reload_trigger() { :; }
start() { _old_reload_signal=$(cat "$PROCD_STATE.signal" 2>/dev/null); start_service; }
"#;

/// A stubbed procd with its state, and the directory the script writes its UCI file into.
struct Procd {
    dir: PathBuf,
}

impl Procd {
    fn new(name: &str) -> Procd {
        let dir = std::env::temp_dir().join(format!("swandog-procd-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Procd { dir }
    }

    fn uci_conf(&self) -> PathBuf {
        self.dir.join("etc/swandog.uci.conf")
    }

    /// Runs the OpenWrt init script's `function` (`start_service`, `reload_service`) with `uci`
    /// settings; returns the procd calls and decisions.
    fn run(&self, function: &str, uci: &str) -> Vec<String> {
        let script = board_dir().join("openwrt/swandog.init");
        let program = format!(
            "{OPENWRT_STUBS}\n{uci}\n. '{}'\nUCI_CONF='{}'\nPROCD_STATE='{}'\n{function}\n",
            script.display(),
            self.uci_conf().display(),
            self.dir.join("procd-state").display()
        );
        let out = Command::new("busybox")
            .args(["sh", "-c", &program])
            .output()
            .expect("run busybox sh");
        assert!(
            out.status.success(),
            "{function} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// What procd did: its `procd: ...` lines.
    fn decisions(&self, function: &str, uci: &str) -> Vec<String> {
        self.run(function, uci)
            .into_iter()
            .filter(|l| l.starts_with("procd: "))
            .collect()
    }
}

impl Drop for Procd {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs the OpenWrt init script's `start_service` with `uci` settings; returns the procd calls
/// and the UCI file it wrote.
fn procd_calls(uci: &str) -> (Vec<String>, String) {
    let procd = Procd::new("calls");
    let calls = procd.run("start_service", uci);
    let written = std::fs::read_to_string(procd.uci_conf()).unwrap_or_default();
    (calls, written)
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
    let procd = Procd::new("foreground");
    let calls = procd.run("start_service", "");
    let uci_conf = procd.uci_conf().display().to_string();
    assert_eq!(calls.first().map(String::as_str), Some("open [main]"));
    assert_eq!(
        args_of(&calls, "command"),
        [
            "/usr/sbin/swandog",
            "run",
            "--log",
            "syslog",
            "--overrides",
            &uci_conf
        ]
    );
    assert_eq!(args_of(&calls, "respawn"), ["3600", "5", "0"]);
    assert_eq!(args_of(&calls, "file"), [&uci_conf, "/etc/swandog.conf"]);
    assert_eq!(args_of(&calls, "reload_signal"), ["HUP"]);
    assert!(calls.contains(&"close".to_string()));
    let meta = std::fs::metadata(procd.uci_conf()).expect("the UCI file is written");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o077,
        0,
        "swandog refuses a settings file others can read or write"
    );
}

#[test]
fn openwrt_script_maps_uci_options_to_settings_swandog_accepts() {
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
    let (calls, written) = procd_calls(uci);
    assert_eq!(
        args_of(&calls, "command")[..5],
        ["/usr/sbin/swandog", "run", "--log", "syslog", "--overrides"]
    );
    assert_eq!(args_of(&calls, "file")[1], "/etc/swandog-site-a.conf");
    let settings: Vec<&str> = written.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        settings,
        [
            "config = \"/etc/swandog-site-a.conf\"",
            "role = \"initiator\"",
            "board = \"ath79\"",
            "stale_after_s = \"90\"",
            "backoff_cap_ms = \"120000\"",
            "nice = \"-2\"",
            "syslog_facility = \"local2\"",
            "watch = \"con1,con2_1\"",
        ]
    );

    // Every setting but `config` is a config key whose value passes the shared validator.
    let mut config = Config::default();
    for line in &settings[1..] {
        let (key, value) = line.split_once(" = ").unwrap();
        let value = value.trim_matches('"');
        config
            .set(key, value, Origin::Flag)
            .unwrap_or_else(|e| panic!("{key} {value}: {e}"));
    }
    config.validate().unwrap();
    assert_eq!(config.watch.len(), 2);
    assert_eq!(config.backoff_cap_ms, 120_000);
}

#[test]
fn openwrt_script_refuses_a_uci_value_with_a_line_break_and_keeps_the_old_file() {
    if !have_busybox() {
        return;
    }
    let procd = Procd::new("linebreak");
    procd.run("start_service", "UCI_main_role=initiator");
    let before = std::fs::read_to_string(procd.uci_conf()).unwrap();
    let decisions = procd.decisions(
        "reload_service",
        "UCI_main_role='initiator\nvici = unix:///elsewhere'",
    );
    assert_eq!(std::fs::read_to_string(procd.uci_conf()).unwrap(), before);
    assert!(decisions.is_empty(), "{decisions:?}");
}

/// procd restarted swandog with the new flags and the script then sent SIGHUP too, which
/// reached the new process during its start-up and killed it (issue 16). Now a reload either
/// signals (a file changed) or does nothing: never a restart, never two actions.
#[test]
fn openwrt_reload_after_a_changed_option_signals_once_and_never_restarts() {
    if !have_busybox() {
        return;
    }
    let procd = Procd::new("reload");
    let conf = procd.dir.join("swandog.conf");
    std::fs::write(&conf, "poll_interval_s = 30\n").unwrap();
    let uci = |cap: &str| {
        format!(
            "UCI_main_config='{}'\nUCI_main_backoff_cap_ms={cap}",
            conf.display()
        )
    };
    assert_eq!(
        procd.decisions("start_service", &uci("60000")),
        ["procd: start"]
    );

    // A changed UCI option: one SIGHUP (1), no restart, no second signal.
    assert_eq!(
        procd.decisions("reload_service", &uci("120000")),
        ["procd: signal 1"]
    );
    assert!(std::fs::read_to_string(procd.uci_conf())
        .unwrap()
        .contains("backoff_cap_ms = \"120000\""));

    // Nothing changed: nothing to do.
    assert!(procd.decisions("reload_service", &uci("120000")).is_empty());

    // The config file edited: one SIGHUP.
    std::fs::write(&conf, "poll_interval_s = 60\n").unwrap();
    assert_eq!(
        procd.decisions("reload_service", &uci("120000")),
        ["procd: signal 1"]
    );

    // A new vici socket is fixed at start: a stop and a start, no signal.
    let moved = format!(
        "{}\nUCI_main_vici=unix:///var/run/charon2.vici",
        uci("120000")
    );
    assert_eq!(
        procd.decisions("reload_service", &moved),
        ["procd: stop", "procd: start"]
    );
    assert!(procd.decisions("reload_service", &moved).is_empty());
}

#[test]
fn openwrt_script_starts_nothing_when_disabled() {
    if !have_busybox() {
        return;
    }
    assert!(procd_calls("UCI_main_enabled=0").0.is_empty());
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

#[test]
fn openwrt_script_passes_the_metrics_file_and_creates_its_directory() {
    if !have_busybox() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("swandog-board-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let file = dir.join("prometheus/swandog.prom");
    let uci = format!(
        "UCI_main_enabled=1\nUCI_main_metrics_file='{}'",
        file.display()
    );
    let (_, written) = procd_calls(&uci);
    assert!(
        written
            .lines()
            .any(|l| l == format!("metrics_file = \"{}\"", file.display())),
        "{written}"
    );
    assert!(dir.join("prometheus").is_dir(), "directory not created");
    std::fs::remove_dir_all(&dir).unwrap();
    // The shipped UCI file points it where OpenWrt's collector looks.
    let uci_file = std::fs::read_to_string(board_dir().join("openwrt/swandog.config")).unwrap();
    assert!(uci_file.contains("\toption metrics_file '/var/prometheus/swandog.prom'"));
}
