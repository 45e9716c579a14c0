use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::board::BOARDS;

const FILE: &str = "/etc/swandog.conf";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse_file(text, FILE)
}

fn error(text: &str) -> String {
    match parse(text) {
        Ok(config) => panic!("{text:?} parsed: {config:?}"),
        Err(err) => err.to_string(),
    }
}

#[test]
fn defaults_are_the_documented_values() {
    let c = Config::default();
    assert_eq!(c.vici.as_str(), "unix:///var/run/charon.vici");
    assert_eq!(c.vici_socket_path(), "/var/run/charon.vici");
    assert!(c.watch.is_empty());
    assert_eq!(c.log, LogTarget::Syslog);
    assert_eq!(c.log_level, LevelFilter::Info);
    assert_eq!(c.syslog_facility, Facility::Daemon);
    assert_eq!(c.status_file.as_str(), "/var/run/swandog.status");
    assert_eq!(c.proc_root.as_str(), "/proc");
    assert_eq!(c.metrics_file.as_str(), "");
    assert_eq!(c.swanctl_conf.as_str(), "/etc/swanctl/swanctl.conf");
    assert_eq!(c.role, Role::Initiator);
    assert_eq!(c.stale_action, StaleAction::Report);
    assert_eq!(c.stale_after_s, 60);
    assert_eq!(c.grace_ms, 1_000);
    assert_eq!(c.backoff_min_ms, 1_000);
    assert_eq!(c.backoff_cap_ms, 60_000);
    assert_eq!(c.poll_interval_s, 30);
    assert_eq!(c.sample_interval_ms, 1_000);
    assert_eq!(c.busy_threshold_pct, 85);
    assert_eq!(c.psi_threshold_pct, 40);
    assert_eq!(c.dpd_window_s, 120);
    assert_eq!(c.summary_interval_s, 3_600);
    assert_eq!(c.cpu_budget_permille, 5);
    assert_eq!(c.nice, 0);
    assert_eq!(c.board, Board::None);
    assert!(c.validate().is_ok());
    assert!(Key::ALL.iter().all(|&k| c.origin(k) == Origin::Default));
}

#[test]
fn key_table_is_in_declaration_order_and_names_round_trip() {
    assert_eq!(Key::ALL.len(), KEY_COUNT);
    for (i, key) in Key::ALL.into_iter().enumerate() {
        assert_eq!(key.index(), i);
        assert_eq!(Key::from_name(key.name()), Some(key));
        let flag = key.flag().to_string();
        assert_eq!(Key::from_name(&flag[2..]), Some(key), "{flag}");
        assert!(!key.help().is_empty());
    }
}

#[test]
fn key_value_lines_comments_blank_lines_and_quotes_are_understood() {
    let c = parse(
        "\u{feff}# swandog on site A\n\
         \n\
         role = initiator\n\
         \t watch=con1, con2_1 con3  # three children\n\
         status_file = \"/tmp/swandog status\"\n\
         syslog_facility = 'local3'\r\n\
         log_level = debug\n\
         nice = -5\n\
         vici = unix:///run/charon.vici#not-a-comment\n",
    )
    .unwrap();
    assert_eq!(c.role, Role::Initiator);
    let names: Vec<&str> = c.watch.iter().map(|n| n.as_str()).collect();
    assert_eq!(names, ["con1", "con2_1", "con3"]);
    assert_eq!(c.status_file.as_str(), "/tmp/swandog status");
    assert_eq!(c.syslog_facility, Facility::Local(3));
    assert_eq!(c.log_level, LevelFilter::Debug);
    assert_eq!(c.nice, -5);
    assert_eq!(c.vici.as_str(), "unix:///run/charon.vici#not-a-comment");
    assert_eq!(c.origin(Key::Role), Origin::File { line: 3 });
    assert_eq!(c.origin(Key::Vici), Origin::File { line: 9 });
    assert_eq!(c.origin(Key::GraceMs), Origin::Default);
}

#[test]
fn unknown_key_names_file_line_and_the_closest_key() {
    let text = "role = auto\n\n# x\n\n\n\nrol = initiator\n";
    let message = error(text);
    assert!(
        message.starts_with("/etc/swandog.conf:7: unknown key \"rol\", did you mean \"role\"? (keys: vici, watch, role, "),
        "{message}"
    );
    assert!(
        message.ends_with("status_file, proc_root, metrics_file, swanctl_conf)"),
        "{message}"
    );
    assert_eq!(parse(text).unwrap_err().line(), Some(7));
}

#[test]
fn mistyped_keys_get_prefix_case_and_dash_suggestions() {
    assert!(error("backoff_cap = 1").contains("did you mean \"backoff_cap_ms\"?"));
    assert!(error("Role = auto").contains("did you mean \"role\"?"));
    assert!(error("stale_afte_s = 60").contains("did you mean \"stale_after_s\"?"));
    assert!(error("--role = auto").contains("did you mean \"role\"?"));
    let far = error("colour = blue");
    assert!(!far.contains("did you mean"), "{far}");
    assert!(far.contains("unknown key \"colour\" (keys: "), "{far}");
}

#[test]
fn every_number_key_takes_its_whole_range_and_nothing_beyond() {
    let mut checked = 0;
    for key in Key::ALL {
        let Some(range) = key.range() else {
            continue;
        };
        let mut c = Config::default();
        for n in [range.min, range.max] {
            c.set(key.name(), &n.to_string(), Origin::Flag).unwrap();
            // The field's type holds the whole range: the value reads back unchanged.
            assert_eq!(c.value_text(key), n.to_string(), "{key:?}");
        }
        for n in [range.min - 1, range.max + 1] {
            let message = c
                .set(key.name(), &n.to_string(), Origin::Flag)
                .unwrap_err()
                .to_string();
            // A minus sign is no number at all for a key whose range starts at 0.
            let refused = if n < 0 && range.min >= 0 {
                "expected a whole number of"
            } else {
                "is out of range: use"
            };
            assert!(message.contains(refused), "{message}");
        }
        checked += 1;
    }
    assert_eq!(checked, 12);
}

#[test]
fn bad_number_says_the_unit_and_gives_an_example() {
    assert_eq!(
        error("\n\nbackoff_cap_ms = abc\n"),
        "/etc/swandog.conf:3: backoff_cap_ms = \"abc\": expected a whole number of milliseconds, e.g. 60000"
    );
    assert!(error("stale_after_s = 60s").ends_with("expected a whole number of seconds, e.g. 60"));
    assert!(error("grace_ms = -1").contains("expected a whole number of milliseconds"));
    assert!(error("grace_ms = 1.5").contains("expected a whole number"));
    assert!(error("grace_ms =").contains("grace_ms = \"\": expected a whole number"));
    assert!(error("grace_ms = 99999999999999999999").contains("expected a whole number"));
}

#[test]
fn out_of_range_values_say_the_allowed_range() {
    assert_eq!(
        error("busy_threshold_pct = 150"),
        "/etc/swandog.conf:1: busy_threshold_pct = \"150\" is out of range: use 1 to 100 (percent)"
    );
    assert!(error("nice = 20").contains("use -20 to 19"));
    assert!(error("cpu_budget_permille = 0").contains("use 1 to 1000 (permille of one core)"));
    assert!(error("poll_interval_s = 1").contains("use 5 to 3600 (seconds)"));
}

#[test]
fn words_outside_their_set_list_the_choices() {
    assert_eq!(
        error("role = master"),
        "/etc/swandog.conf:1: role = \"master\": expected one of initiator, responder, auto"
    );
    assert!(error("stale_action = kill").ends_with("expected one of report, restart"));
    assert!(error("log = file").ends_with("expected one of syslog, stderr"));
    assert!(
        error("log_level = verbose").ends_with("expected one of error, warn, info, debug, trace")
    );
    assert!(error("syslog_facility = kern").ends_with("expected one of daemon, user, local0, local1, local2, local3, local4, local5, local6, local7"));
    assert!(error("board = mt7622")
        .ends_with("expected one of none, generic, mt7621, ath79, ipq40xx, filogic"));
}

#[test]
fn a_key_set_twice_in_the_file_is_an_error_naming_both_lines() {
    assert_eq!(
        error("role = auto\ngrace_ms = 10\nrole = initiator\n"),
        "/etc/swandog.conf:3: role is set twice (first on line 1): keep one of the two lines"
    );
}

#[test]
fn line_without_equals_sign_suggests_the_fix() {
    assert_eq!(
        error("role initiator"),
        "/etc/swandog.conf:1: \"role initiator\" is not a `key = value` line: write role = initiator"
    );
    assert!(error("hello").ends_with("write key = value, or start a comment with #"));
}

#[test]
fn backoff_cap_below_minimum_blames_the_later_line_and_names_the_other() {
    assert_eq!(
        error("backoff_min_ms = 5000\nbackoff_cap_ms = 2000\n"),
        "/etc/swandog.conf:2: backoff_cap_ms = \"2000\" conflicts with backoff_min_ms = 5000 (line 1): \
         backoff_cap_ms must be at least backoff_min_ms: raise backoff_cap_ms or lower backoff_min_ms"
    );
    // Only the minimum set: the cap is the default, the minimum is blamed.
    let message = error("backoff_min_ms = 120000\n");
    assert!(message.starts_with("/etc/swandog.conf:1: backoff_min_ms = \"120000\" conflicts with backoff_cap_ms = 60000 (default)"), "{message}");
}

#[test]
fn responder_cannot_restart_stale_children() {
    let message = error("role = responder\nstale_action = restart\n");
    assert!(message.starts_with("/etc/swandog.conf:2: stale_action = \"restart\" conflicts with role = responder (line 1)"), "{message}");
    assert!(message.contains("a responder never initiates"));
    assert!(parse("role = auto\nstale_action = restart\n").is_ok());
}

#[test]
fn watch_names_are_validated_and_bounded() {
    assert!(parse("watch =").unwrap().watch.is_empty());
    assert!(parse("watch = con-1.a_B").is_ok());
    let message = error("watch = con1, con 2/x");
    assert!(
        message.contains("\"2/x\" is not a child name: use 1-64 characters from A-Z a-z 0-9 _ . -"),
        "{message}"
    );
    assert!(error("watch = con1,con1").contains("\"con1\" is listed twice"));
    let long = "a".repeat(65);
    assert!(error(&format!("watch = {long}")).contains("is not a child name"));
    assert!(parse(&format!("watch = {}", "a".repeat(64))).is_ok());
    let many: Vec<String> = (0..=WATCHED_CHILDREN_MAX)
        .map(|i| format!("con{i}"))
        .collect();
    assert!(error(&format!("watch = {}", many.join(",")))
        .contains(&format!("more than {WATCHED_CHILDREN_MAX} children")));
    assert!(parse(&format!(
        "watch = {}",
        many[..WATCHED_CHILDREN_MAX].join(",")
    ))
    .is_ok());
}

#[test]
fn vici_must_be_a_unix_uri_and_paths_absolute() {
    assert!(error("vici = /var/run/charon.vici")
        .ends_with("write it as a URI: unix:///var/run/charon.vici"));
    assert!(error("vici = tcp://127.0.0.1:4502").contains("expected unix:///path/to/socket"));
    assert!(error("status_file = swandog.status")
        .ends_with("expected an absolute path (starting with /)"));
    assert!(error(&format!("proc_root = /{}", "p".repeat(200))).contains("too long"));
    // A NUL would only fail later, at every connection attempt, with a less clear error.
    assert!(error("vici = unix:///run/a\0b").contains("NUL byte"));
    assert!(error("status_file = /run/a\0b").contains("NUL byte"));
}

#[test]
fn metrics_file_and_swanctl_conf_are_absolute_paths_or_empty_for_off() {
    let c = parse("metrics_file = /var/prometheus/swandog.prom\nswanctl_conf =\n").unwrap();
    assert_eq!(c.metrics_file.as_str(), "/var/prometheus/swandog.prom");
    assert_eq!(c.swanctl_conf.as_str(), "");
    assert_eq!(c.origin(Key::SwanctlConf), Origin::File { line: 2 });
    assert_eq!(
        error("\nmetrics_file = swandog.prom"),
        "/etc/swandog.conf:2: metrics_file = \"swandog.prom\": expected an absolute path (starting with /)"
    );
    assert!(error("swanctl_conf = etc/swanctl.conf")
        .ends_with("expected an absolute path (starting with /)"));
    assert!(error("swanctl_conf = /etc/a\0b").contains("NUL byte"));
    assert!(error(&format!("metrics_file = /{}", "m".repeat(200))).contains("too long"));

    let mut c = Config::default();
    c.set("metrics-file", "/run/m.prom", Origin::Flag).unwrap();
    c.set("swanctl-conf", "", Origin::Flag).unwrap();
    assert_eq!(c.metrics_file.as_str(), "/run/m.prom");
    assert!(c.swanctl_conf.is_empty());
    let err = c.set("metrics-file", "m.prom", Origin::Flag).unwrap_err();
    assert_eq!(
        err.to_string(),
        "command line: --metrics-file \"m.prom\": expected an absolute path (starting with /)"
    );
}

#[test]
fn metrics_file_cannot_be_the_status_file() {
    let message = error("status_file = /run/s\nmetrics_file = /run/s\n");
    assert_eq!(
        message,
        "/etc/swandog.conf:2: metrics_file = \"/run/s\" conflicts with status_file = /run/s (line 1): \
         the agent writes both files: give metrics_file its own path"
    );
    assert!(error("metrics_file = /var/run/swandog.status").contains("conflicts with status_file"));
}

#[test]
fn long_bad_values_are_cut_in_messages() {
    let message = error(&format!("role = {}", "x".repeat(500)));
    assert!(message.len() < 200, "{message}");
    assert!(message.contains("..."));
}

#[test]
fn flags_override_the_file_and_share_its_validator() {
    let mut c = parse("role = responder\nbackoff_cap_ms = 30000\n").unwrap();
    c.set("role", "initiator", Origin::Flag).unwrap();
    c.set("backoff-cap-ms", "90000", Origin::Flag).unwrap();
    c.set("--stale-action", "restart", Origin::Flag).unwrap();
    c.validate().unwrap();
    assert_eq!(c.role, Role::Initiator);
    assert_eq!(c.backoff_cap_ms, 90_000);
    assert_eq!(c.origin(Key::Role), Origin::Flag);
    // A flag given twice: the last one counts, no duplicate error.
    c.set("role", "auto", Origin::Flag).unwrap();
    assert_eq!(c.role, Role::Auto);

    let err = c.set("backoff-cap-ms", "abc", Origin::Flag).unwrap_err();
    assert_eq!(
        err.to_string(),
        "command line: --backoff-cap-ms \"abc\": expected a whole number of milliseconds, e.g. 60000"
    );
    let err = c.set("rol", "x", Origin::Flag).unwrap_err().to_string();
    assert!(
        err.starts_with("command line: unknown key \"--rol\", did you mean \"--role\"?"),
        "{err}"
    );
}

#[test]
fn a_flag_that_breaks_a_cross_key_rule_is_blamed_over_the_file() {
    let mut c = parse("backoff_min_ms = 5000\n").unwrap();
    c.set("backoff-cap-ms", "2000", Origin::Flag).unwrap();
    let message = c.validate().unwrap_err().to_string();
    assert!(
        message.starts_with(
            "command line: --backoff-cap-ms \"2000\" conflicts with backoff_min_ms = 5000 (line 1)"
        ),
        "{message}"
    );
}

#[test]
fn board_profile_sets_defaults_but_explicit_keys_win_in_any_order() {
    for text in [
        "busy_threshold_pct = 90\nboard = ath79\n",
        "board = ath79\nbusy_threshold_pct = 90\n",
    ] {
        let c = parse(text).unwrap();
        assert_eq!(c.board, Board::Ath79);
        assert_eq!(c.busy_threshold_pct, 90, "{text}");
        assert_eq!(c.psi_threshold_pct, 50);
        assert_eq!(c.sample_interval_ms, 2_000);
        assert_eq!(c.poll_interval_s, 60);
        assert_eq!(c.nice, 5);
        assert_eq!(c.origin(Key::SampleIntervalMs), Origin::Board);
        assert!(matches!(
            c.origin(Key::BusyThresholdPct),
            Origin::File { .. }
        ));
        // Keys outside the profile keep their defaults.
        assert_eq!(c.backoff_cap_ms, 60_000);
    }
}

#[test]
fn board_flag_replaces_the_file_board_but_not_the_file_keys() {
    let mut c = parse("board = ath79\nsample_interval_ms = 500\n").unwrap();
    c.set("board", "filogic", Origin::Flag).unwrap();
    let filogic = Board::Filogic.profile();
    assert_eq!(c.cpu_budget_permille, filogic.cpu_budget_permille);
    assert_eq!(c.poll_interval_s, filogic.poll_interval_s);
    assert_eq!(c.nice, 0);
    assert_eq!(c.sample_interval_ms, 500);
    c.set("board", "none", Origin::Flag).unwrap();
    assert_eq!(c.busy_threshold_pct, Config::default().busy_threshold_pct);
    assert_eq!(c.origin(Key::BusyThresholdPct), Origin::Default);
}

#[test]
fn describe_lists_every_key_with_value_and_origin() {
    let mut c = parse("role = initiator\nboard = ath79\n").unwrap();
    c.set("grace-ms", "2500", Origin::Flag).unwrap();
    let listing = c.describe().to_string();
    assert_eq!(listing.lines().count(), KEY_COUNT);
    for key in Key::ALL {
        assert!(
            listing
                .lines()
                .any(|l| l.starts_with(&format!("{:<21}= ", key.name()))),
            "{key:?}\n{listing}"
        );
    }
    let line = |key: &str| {
        listing
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap()
            .to_string()
    };
    assert!(
        line("role ").contains("= initiator") && line("role ").ends_with("# /etc/swandog.conf:1")
    );
    assert!(
        line("sample_interval_ms").contains("= 2000")
            && line("sample_interval_ms").ends_with("# board ath79")
    );
    assert!(line("grace_ms").contains("= 2500") && line("grace_ms").ends_with("# --grace-ms"));
    assert!(line("vici").ends_with("# default"));
    assert!(line("watch").ends_with("(empty: every route-based child found)"));
    assert!(line("metrics_file").ends_with("# default (empty: off)"));
    assert!(line("swanctl_conf").ends_with("# default"));
}

#[test]
fn describe_output_parses_back_to_the_same_values() {
    let original = parse("role = initiator\nwatch = con1,con2_1\nbackoff_cap_ms = 120000\nsyslog_facility = local5\nnice = -3\nswanctl_conf =\nmetrics_file = /run/m.prom\n").unwrap();
    let listing = original.describe().to_string();
    let again = parse(&listing).unwrap();
    for key in Key::ALL {
        assert_eq!(
            ValueText(&again, key).to_string(),
            ValueText(&original, key).to_string(),
            "{key:?}"
        );
    }
}

#[test]
fn example_config_documents_every_key_with_its_default() {
    let example = include_str!("../../board/swandog.conf.example");
    let defaults = Config::default();
    for key in Key::ALL {
        let expected = format!("#{} = {}", key.name(), ValueText(&defaults, key));
        assert!(
            example.lines().any(|l| l.trim_end() == expected.trim_end()),
            "board/swandog.conf.example lacks {expected:?}"
        );
    }
}

#[test]
fn example_config_with_every_key_uncommented_gives_the_defaults() {
    let example = include_str!("../../board/swandog.conf.example");
    let uncommented: String = example
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest)
                if !rest.starts_with(' ') && (rest.contains(" = ") || rest.ends_with(" =")) =>
            {
                rest
            }
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let parsed = parse(&uncommented).unwrap();
    for key in Key::ALL {
        assert!(
            matches!(parsed.origin(key), Origin::File { .. }),
            "{key:?} not in the example"
        );
        assert_eq!(
            ValueText(&parsed, key).to_string(),
            ValueText(&Config::default(), key).to_string()
        );
    }
}

#[test]
fn uci_defaults_name_only_swandog_keys_with_their_defaults() {
    let uci = include_str!("../../board/openwrt/swandog.config");
    let defaults = Config::default();
    let mut seen = 0;
    for line in uci.lines() {
        let words: Vec<&str> = line
            .trim()
            .trim_start_matches('#')
            .split_whitespace()
            .collect();
        let [kind @ ("option" | "list"), name, value] = words[..] else {
            continue;
        };
        let value = value.trim_matches('\'');
        if matches!(name, "enabled" | "config") || kind == "list" {
            continue;
        }
        let key =
            Key::from_name(name).unwrap_or_else(|| panic!("UCI option {name} is no swandog key"));
        // On OpenWrt, metrics go where prometheus-node-exporter-lua's textfile collector looks.
        if key == Key::MetricsFile {
            assert_eq!(value, "/var/prometheus/swandog.prom");
            seen += 1;
            continue;
        }
        assert_eq!(
            value,
            ValueText(&defaults, key).to_string(),
            "UCI default of {name}"
        );
        seen += 1;
    }
    // Every key but `watch` (a list) and `log` (always syslog under procd).
    assert_eq!(seen, KEY_COUNT - 2);
}

#[test]
fn config_file_owned_by_root_and_not_writable_by_others_is_accepted() {
    assert!(check_mode_and_owner(FILE, 0o100644, 0, 0).is_ok());
    assert!(check_mode_and_owner(FILE, 0o100600, 0, 0).is_ok());
    assert!(check_mode_and_owner(FILE, 0o100640, 0, 0).is_ok());
    // A developer running swandog as themselves may own the file.
    assert!(check_mode_and_owner(FILE, 0o100644, 1000, 1000).is_ok());
}

#[test]
fn config_file_writable_by_group_or_others_is_refused_with_the_fix() {
    assert_eq!(
        check_mode_and_owner(FILE, 0o100664, 0, 0).unwrap_err().to_string(),
        "/etc/swandog.conf: refusing a config writable by group or others (mode 0664): anyone in them \
         could steer swandog; run chmod go-w /etc/swandog.conf"
    );
    assert!(check_mode_and_owner(FILE, 0o100646, 0, 0).is_err());
}

#[test]
fn config_file_owned_by_another_user_is_refused_with_the_fix() {
    assert_eq!(
        check_mode_and_owner(FILE, 0o100644, 1000, 0).unwrap_err().to_string(),
        "/etc/swandog.conf: refusing a config owned by uid 1000, not by root: run chown root /etc/swandog.conf"
    );
}

#[test]
fn real_file_metadata_is_checked_and_loaded() {
    let dir = std::env::temp_dir().join(format!("swandog-config-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("swandog.conf");
    std::fs::write(&path, "role = initiator\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let euid = nix::unistd::geteuid().as_raw();
    let meta = std::fs::metadata(&path).unwrap();
    assert!(check_config_file_safe_for("x", &meta, euid).is_ok());
    // Seen by a swandog running as some other user, the file is not its own and not root's.
    if euid != 0 {
        assert!(check_config_file_safe_for("x", &meta, euid + 1).is_err());
    }
    assert_eq!(Config::load_file(&path).unwrap().role, Role::Initiator);

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let message = Config::load_file(&path).unwrap_err().to_string();
    assert!(
        message.contains("writable by group or others (mode 0666)"),
        "{message}"
    );

    let dir_meta = std::fs::metadata(&dir).unwrap();
    assert!(check_config_file_safe_for("x", &dir_meta, euid)
        .unwrap_err()
        .to_string()
        .contains("not a regular file"));

    let missing = Config::load_file(&dir.join("absent.conf")).unwrap_err();
    assert!(missing.is_not_found());

    let big = dir.join("big.conf");
    std::fs::write(&big, "#".repeat(CONFIG_FILE_MAX_BYTES + 1)).unwrap();
    std::fs::set_permissions(&big, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(Config::load_file(&big)
        .unwrap_err()
        .to_string()
        .contains("too large"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn edit_distance_counts_insertions_deletions_and_substitutions() {
    assert_eq!(edit_distance(b"role", b"role"), 0);
    assert_eq!(edit_distance(b"rol", b"role"), 1);
    assert_eq!(edit_distance(b"rloe", b"role"), 2);
    assert_eq!(edit_distance(b"", b"nice"), 4);
}

#[test]
fn thresholds_and_throttle_settings_reach_the_core_in_its_units() {
    let c = parse("busy_threshold_pct = 70\npsi_threshold_pct = 25\npoll_interval_s = 45\nsample_interval_ms = 2000\ncpu_budget_permille = 8\n").unwrap();
    let t = c.load_thresholds();
    assert_eq!((t.busy_permille, t.psi_centi), (700, 2_500));
    assert_eq!(
        t.min_above_permille,
        LoadThresholds::default().min_above_permille
    );
    let s = c.throttle_settings();
    assert_eq!((s.busy_permille, s.cpu_budget_permille), (700, 8));
    assert_eq!((s.sample_interval_ms, s.poll_interval_ms), (2_000, 45_000));
    // The defaults agree with the core's own.
    assert_eq!(
        Config::default().load_thresholds(),
        LoadThresholds::default()
    );
    assert_eq!(
        Config::default().throttle_settings(),
        ThrottleSettings::default()
    );
}

#[test]
fn agent_settings_carry_every_key_the_agent_decides_by_in_its_units() {
    let defaults = Config::default().agent_settings();
    let agent = Settings::default();
    // The config's defaults are the agent's own.
    assert_eq!(defaults.keeper, KeeperSettings::default());
    assert_eq!(defaults.throttle, agent.throttle);
    assert_eq!(defaults.thresholds, agent.thresholds);
    assert_eq!(defaults.dpd_window_ms, agent.dpd_window_ms);
    assert_eq!(defaults.summary_interval_ms, agent.summary_interval_ms);
    assert_eq!(defaults.status_interval_ms, agent.status_interval_ms);
    assert!(defaults.watch.is_empty());

    let c = parse(
        "role = auto\nstale_action = restart\nstale_after_s = 90\ngrace_ms = 0\n\
         backoff_min_ms = 2000\nbackoff_cap_ms = 120000\ndpd_window_s = 300\n\
         summary_interval_s = 600\nwatch = con1, con2_1\nbusy_threshold_pct = 70\n\
         poll_interval_s = 45\n",
    )
    .unwrap();
    let s = c.agent_settings();
    assert_eq!(s.keeper.role, Role::Auto);
    assert_eq!(s.keeper.stale_action, StaleAction::Restart);
    assert_eq!(s.keeper.stale_after_ms, 90_000);
    assert_eq!(
        (
            s.keeper.grace_ms,
            s.keeper.backoff_min_ms,
            s.keeper.backoff_cap_ms
        ),
        (0, 2_000, 120_000)
    );
    assert_eq!(
        s.keeper.initiate_timeout_ms,
        KeeperSettings::default().initiate_timeout_ms
    );
    assert_eq!((s.dpd_window_ms, s.summary_interval_ms), (300_000, 600_000));
    let watch: Vec<&str> = s.watch.iter().map(|n| n.as_str()).collect();
    assert_eq!(watch, ["con1", "con2_1"]);
    assert_eq!(s.thresholds.busy_permille, 700);
    assert_eq!(s.throttle.busy_permille, 700);
    assert_eq!(s.throttle.poll_interval_ms, 45_000);
}

#[test]
fn word_keys_name_every_value_once_and_read_it_back() {
    fn round_trip<W: Word + core::fmt::Debug>() -> usize {
        for &value in W::ALL {
            let word = value.name();
            assert_eq!(
                W::ALL.iter().filter(|w| w.name() == word).count(),
                1,
                "{word}"
            );
            assert_eq!(W::parse(Key::Role, word), Ok(value), "{word}");
        }
        W::ALL.len()
    }
    assert_eq!(round_trip::<Role>(), 3);
    assert_eq!(round_trip::<StaleAction>(), 2);
    assert_eq!(round_trip::<Board>(), BOARDS.len());
    assert_eq!(round_trip::<LogTarget>(), 2);
    assert_eq!(round_trip::<Facility>(), 10);
    assert_eq!(round_trip::<LevelFilter>(), 5);
}

#[test]
fn dpd_window_longer_than_the_load_history_is_an_error_with_the_figures() {
    let message = error("sample_interval_ms = 500\ndpd_window_s = 600\n");
    assert!(
        message.starts_with("/etc/swandog.conf:2: dpd_window_s = \"600\" conflicts with sample_interval_ms = 500 (line 1): the load history holds 640 samples, 320 s at this interval"),
        "{message}"
    );
    assert!(parse("dpd_window_s = 600\n").is_ok());
    assert!(parse("board = ath79\ndpd_window_s = 1200\n").is_ok());
}

#[test]
fn config_path_that_is_a_fifo_or_a_symlink_to_a_foreign_file_is_refused_without_hanging() {
    let dir = std::env::temp_dir().join(format!("swandog-config-odd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // A FIFO nobody writes to: opening it blocking would hang swandog at start and on SIGHUP.
    let fifo = dir.join("fifo.conf");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let message = Config::load_file(&fifo).unwrap_err().to_string();
    assert!(message.contains("not a regular file"), "{message}");

    // A symlink is followed, and the file it leads to must be root's (or swandog's own).
    let euid = nix::unistd::geteuid().as_raw();
    let target = dir.join("foreign.conf");
    std::fs::write(&target, "role = responder\n").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
    let link = dir.join("link.conf");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    if euid == 0 {
        nix::unistd::chown(&target, Some(nix::unistd::Uid::from_raw(4242)), None).unwrap();
        let message = Config::load_file(&link).unwrap_err().to_string();
        assert!(message.contains("owned by uid 4242"), "{message}");
    } else {
        assert_eq!(Config::load_file(&link).unwrap().role, Role::Responder);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
