//! Every knob of swandog: defaults, the `/etc/swandog.conf` parser, flag overrides, and the
//! listing `swandog check` prints.
//!
//! One validator for both sources: the file's `key = value` lines and the command-line flags go
//! through [`Config::set`], so a value means the same wherever it is written. Precedence, lowest
//! first: built-in defaults < the board profile (`board = …`) < keys in the file < flags. Errors
//! name the file, the line and the fix:
//!
//! ```text
//! /etc/swandog.conf:7: unknown key "rol", did you mean "role"? (keys: vici, watch, ...)
//! /etc/swandog.conf:3: backoff_cap_ms = "abc": expected a whole number of milliseconds, e.g. 60000
//! ```
//!
//! ```
//! use swandog::config::{Config, Origin, Role};
//!
//! let text = "# site A\nrole = initiator\nwatch = con1, con2_1\nboard = ath79\n";
//! let mut config = Config::parse_file(text, "/etc/swandog.conf")?;
//! config.set("stale-action", "restart", Origin::Flag)?; // `--stale-action restart`
//! config.validate()?;
//! assert_eq!(config.role, Role::Initiator);
//! assert_eq!(config.watch.len(), 2);
//! assert_eq!(config.sample_interval_ms, 2_000); // from the ath79 profile
//! println!("{}", config.describe());
//! # Ok::<(), swandog::config::ConfigError>(())
//! ```

use core::fmt;
use std::fs::Metadata;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use log::LevelFilter;

use crate::agent::correlate::LoadThresholds;
use crate::agent::throttle::ThrottleSettings;
use crate::board::{Board, Profile};
use crate::limits::{
    CONFIG_FILE_MAX_BYTES, CONFIG_PATH_MAX_BYTES, LOAD_HISTORY_SAMPLES, NAME_MAX_BYTES,
    WATCHED_CHILDREN_MAX,
};
use crate::report::syslog::{Facility, LogTarget};

/// Where swandog reads its config unless told otherwise.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/swandog.conf";
/// strongSwan's default VICI socket.
pub const DEFAULT_VICI_URI: &str = "unix:///var/run/charon.vici";
/// Where the running agent writes its status snapshot.
pub const DEFAULT_STATUS_FILE: &str = "/var/run/swandog.status";
/// Where `/proc` is (tests point it at a recorded tree).
pub const DEFAULT_PROC_ROOT: &str = "/proc";
const VICI_URI_SCHEME: &str = "unix://";
/// Longest echo of a bad value in an error message.
const ECHO_MAX_CHARS: usize = 40;

/// A CHILD_SA config name (pfSense: `con1`, `con2_1`): 1–64 of `A-Z a-z 0-9 _ . -`.
pub type ChildName = heapless::String<NAME_MAX_BYTES>;
/// The children named in `watch`; empty means "every route-based child found".
pub type WatchList = heapless::Vec<ChildName, WATCHED_CHILDREN_MAX>;
/// A path or URI from the config.
pub type ConfigPath = heapless::String<CONFIG_PATH_MAX_BYTES>;

/// Which side re-initiates dropped tunnels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Always re-initiates.
    Initiator,
    /// Never initiates; reports only.
    Responder,
    /// Picks a side from the two endpoint addresses, so two swandogs never both initiate.
    Auto,
}

impl Role {
    const NAMES: [(&'static str, Role); 3] = [
        ("initiator", Role::Initiator),
        ("responder", Role::Responder),
        ("auto", Role::Auto),
    ];

    /// The name used in flags and the config file.
    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, r)| *r == self)
            .map_or("auto", |(n, _)| n)
    }
}

/// What to do with a one-sided (stale) CHILD_SA: packets out grow, packets in stay frozen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StaleAction {
    /// Log it.
    Report,
    /// Log it, terminate the child and initiate it again.
    Restart,
}

impl StaleAction {
    const NAMES: [(&'static str, StaleAction); 2] = [
        ("report", StaleAction::Report),
        ("restart", StaleAction::Restart),
    ];

    /// The name used in flags and the config file.
    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, a)| *a == self)
            .map_or("report", |(n, _)| n)
    }
}

const LEVEL_NAMES: [(&str, LevelFilter); 5] = [
    ("error", LevelFilter::Error),
    ("warn", LevelFilter::Warn),
    ("info", LevelFilter::Info),
    ("debug", LevelFilter::Debug),
    ("trace", LevelFilter::Trace),
];

fn level_name(level: LevelFilter) -> &'static str {
    LEVEL_NAMES
        .iter()
        .find(|(_, l)| *l == level)
        .map_or("off", |(n, _)| n)
}

/// Every config key. The file spells them `snake_case`, flags `--kebab-case`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    /// `vici`: charon's VICI socket URI.
    Vici,
    /// `watch`: child names to keep up.
    Watch,
    /// `role`: initiator, responder or auto.
    Role,
    /// `board`: board profile.
    Board,
    /// `stale_action`: report or restart.
    StaleAction,
    /// `stale_after_s`.
    StaleAfterS,
    /// `grace_ms`.
    GraceMs,
    /// `backoff_min_ms`.
    BackoffMinMs,
    /// `backoff_cap_ms`.
    BackoffCapMs,
    /// `poll_interval_s`.
    PollIntervalS,
    /// `sample_interval_ms`.
    SampleIntervalMs,
    /// `busy_threshold_pct`.
    BusyThresholdPct,
    /// `psi_threshold_pct`.
    PsiThresholdPct,
    /// `dpd_window_s`.
    DpdWindowS,
    /// `summary_interval_s`.
    SummaryIntervalS,
    /// `cpu_budget_permille`.
    CpuBudgetPermille,
    /// `nice`.
    Nice,
    /// `log`: syslog or stderr.
    Log,
    /// `log_level`.
    LogLevel,
    /// `syslog_facility`.
    SyslogFacility,
    /// `status_file`.
    StatusFile,
    /// `proc_root`.
    ProcRoot,
}

/// Number of keys.
pub const KEY_COUNT: usize = 22;

/// A whole-number key's allowed range, unit and an example, for checks and error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Range {
    min: i64,
    max: i64,
    unit: &'static str,
    example: i64,
}

impl Key {
    /// Every key, in the order the example config and `swandog check` list them.
    pub const ALL: [Key; KEY_COUNT] = [
        Key::Vici,
        Key::Watch,
        Key::Role,
        Key::Board,
        Key::StaleAction,
        Key::StaleAfterS,
        Key::GraceMs,
        Key::BackoffMinMs,
        Key::BackoffCapMs,
        Key::PollIntervalS,
        Key::SampleIntervalMs,
        Key::BusyThresholdPct,
        Key::PsiThresholdPct,
        Key::DpdWindowS,
        Key::SummaryIntervalS,
        Key::CpuBudgetPermille,
        Key::Nice,
        Key::Log,
        Key::LogLevel,
        Key::SyslogFacility,
        Key::StatusFile,
        Key::ProcRoot,
    ];

    /// The key as the config file spells it.
    pub fn name(self) -> &'static str {
        match self {
            Key::Vici => "vici",
            Key::Watch => "watch",
            Key::Role => "role",
            Key::Board => "board",
            Key::StaleAction => "stale_action",
            Key::StaleAfterS => "stale_after_s",
            Key::GraceMs => "grace_ms",
            Key::BackoffMinMs => "backoff_min_ms",
            Key::BackoffCapMs => "backoff_cap_ms",
            Key::PollIntervalS => "poll_interval_s",
            Key::SampleIntervalMs => "sample_interval_ms",
            Key::BusyThresholdPct => "busy_threshold_pct",
            Key::PsiThresholdPct => "psi_threshold_pct",
            Key::DpdWindowS => "dpd_window_s",
            Key::SummaryIntervalS => "summary_interval_s",
            Key::CpuBudgetPermille => "cpu_budget_permille",
            Key::Nice => "nice",
            Key::Log => "log",
            Key::LogLevel => "log_level",
            Key::SyslogFacility => "syslog_facility",
            Key::StatusFile => "status_file",
            Key::ProcRoot => "proc_root",
        }
    }

    /// The flag for this key: `--stale-after-s`.
    pub fn flag(self) -> FlagName {
        FlagName(self)
    }

    /// The key spelled `name`: `stale_after_s` or `stale-after-s` (a flag without its `--`).
    pub fn from_name(name: &str) -> Option<Key> {
        Key::ALL.into_iter().find(|k| {
            let canonical = k.name().as_bytes();
            canonical.len() == name.len()
                && canonical
                    .iter()
                    .zip(name.bytes())
                    .all(|(&c, n)| c == n || (c == b'_' && n == b'-'))
        })
    }

    /// One line saying what the key does (for the example config and help texts).
    pub fn help(self) -> &'static str {
        match self {
            Key::Vici => "charon's VICI socket",
            Key::Watch => "children to keep up, comma-separated; empty: every route-based (VTI) child found",
            Key::Role => "initiator | responder (never initiates) | auto (one side, picked from the addresses)",
            Key::Board => "board profile: none | generic | mt7621 | ath79 | ipq40xx | filogic (see board/README.md)",
            Key::StaleAction => "one-sided SA (out grows, in frozen): report | restart",
            Key::StaleAfterS => "seconds packets-in may stay frozen while packets-out grow",
            Key::GraceMs => "wait after a child goes down before re-initiating (lets charon's own action win)",
            Key::BackoffMinMs => "first re-initiation backoff",
            Key::BackoffCapMs => "longest re-initiation backoff (attempts never stop)",
            Key::PollIntervalS => "list-sas reconciling poll (stretched under load)",
            Key::SampleIntervalMs => "/proc/stat load sampling (stretched under load)",
            Key::BusyThresholdPct => "whole-box busy % above which the box counts as loaded",
            Key::PsiThresholdPct => "CPU pressure (PSI some avg10) % above which the box counts as loaded",
            Key::DpdWindowS => "load window looked at before a DPD failure whose exchange start is unknown",
            Key::SummaryIntervalS => "seconds between summary lines (DPD rate ratio, repeats)",
            Key::CpuBudgetPermille => "own CPU budget in thousandths of one core (5 = 0.5 %)",
            Key::Nice => "process niceness, -20 to 19",
            Key::Log => "syslog | stderr",
            Key::LogLevel => "error | warn | info | debug | trace",
            Key::SyslogFacility => "daemon | user | local0 ... local7",
            Key::StatusFile => "status snapshot read by `swandog status`",
            Key::ProcRoot => "where /proc is",
        }
    }

    /// Position in [`Key::ALL`] (the variants are declared in that order; tested).
    fn index(self) -> usize {
        self as usize
    }

    fn range(self) -> Option<Range> {
        let (min, max, unit, example) = match self {
            Key::StaleAfterS => (10, 86_400, "seconds", 60),
            Key::GraceMs => (0, 60_000, "milliseconds", 1_000),
            Key::BackoffMinMs => (100, 600_000, "milliseconds", 1_000),
            Key::BackoffCapMs => (1_000, 86_400_000, "milliseconds", 60_000),
            Key::PollIntervalS => (5, 3_600, "seconds", 30),
            Key::SampleIntervalMs => (100, 60_000, "milliseconds", 1_000),
            Key::BusyThresholdPct => (1, 100, "percent", 85),
            Key::PsiThresholdPct => (1, 100, "percent", 40),
            Key::DpdWindowS => (10, 3_600, "seconds", 120),
            Key::SummaryIntervalS => (60, 604_800, "seconds", 3_600),
            Key::CpuBudgetPermille => (1, 1_000, "permille of one core", 5),
            Key::Nice => (-20, 19, "niceness steps", 0),
            _ => return None,
        };
        Some(Range {
            min,
            max,
            unit,
            example,
        })
    }

    /// Keys a board profile sets.
    fn profile_value(self, p: &Profile) -> Option<i64> {
        Some(match self {
            Key::BusyThresholdPct => i64::from(p.busy_threshold_pct),
            Key::PsiThresholdPct => i64::from(p.psi_threshold_pct),
            Key::SampleIntervalMs => i64::from(p.sample_interval_ms),
            Key::PollIntervalS => i64::from(p.poll_interval_s),
            Key::CpuBudgetPermille => i64::from(p.cpu_budget_permille),
            Key::Nice => i64::from(p.nice),
            _ => return None,
        })
    }
}

/// Displays as the flag for a key: `--stale-after-s`.
#[derive(Clone, Copy, Debug)]
pub struct FlagName(Key);

impl fmt::Display for FlagName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("--")?;
        for c in self.0.name().chars() {
            fmt::Write::write_char(f, if c == '_' { '-' } else { c })?;
        }
        Ok(())
    }
}

/// Where a value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The built-in default.
    Default,
    /// The board profile.
    Board,
    /// A line of the config file (1-based).
    File {
        /// Line number.
        line: u32,
    },
    /// A command-line flag.
    Flag,
}

impl Origin {
    fn is_explicit(self) -> bool {
        matches!(self, Origin::File { .. } | Origin::Flag)
    }
}

/// Every setting of swandog, validated. `Config::default()` is the documented defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// charon's VICI socket (`unix:///var/run/charon.vici`).
    pub vici: ConfigPath,
    /// Children to keep up; empty (default): every route-based child discovered.
    pub watch: WatchList,
    /// Which side re-initiates (`initiator`).
    pub role: Role,
    /// The board profile in effect (`none`).
    pub board: Board,
    /// What to do with a one-sided SA (`report`).
    pub stale_action: StaleAction,
    /// Seconds packets-in may stay frozen while packets-out grow (60).
    pub stale_after_s: u32,
    /// Milliseconds to wait after a child goes down before re-initiating (1000).
    pub grace_ms: u32,
    /// First backoff in milliseconds (1000).
    pub backoff_min_ms: u32,
    /// Backoff cap in milliseconds (60000).
    pub backoff_cap_ms: u32,
    /// Seconds between reconciling `list-sas` polls (30).
    pub poll_interval_s: u32,
    /// Milliseconds between load samples (1000).
    pub sample_interval_ms: u32,
    /// Whole-box busy % above which the box is loaded (85).
    pub busy_threshold_pct: u8,
    /// CPU pressure % above which the box is loaded (40).
    pub psi_threshold_pct: u8,
    /// Seconds of load looked at before a DPD failure with unknown exchange start (120).
    pub dpd_window_s: u32,
    /// Seconds between summary lines (3600).
    pub summary_interval_s: u32,
    /// Own CPU budget in thousandths of one core (5 = 0.5 %).
    pub cpu_budget_permille: u16,
    /// Process niceness (0).
    pub nice: i8,
    /// Where log lines go (`syslog`).
    pub log: LogTarget,
    /// Most verbose level logged (`info`).
    pub log_level: LevelFilter,
    /// Syslog facility (`daemon`).
    pub syslog_facility: Facility,
    /// Status snapshot path (`/var/run/swandog.status`).
    pub status_file: ConfigPath,
    /// Where `/proc` is (`/proc`).
    pub proc_root: ConfigPath,
    origins: [Origin; KEY_COUNT],
    source: ConfigPath,
}

impl Default for Config {
    fn default() -> Config {
        let generic = Board::None.profile();
        Config {
            vici: path_or_empty(DEFAULT_VICI_URI),
            watch: WatchList::new(),
            role: Role::Initiator,
            board: Board::None,
            stale_action: StaleAction::Report,
            stale_after_s: 60,
            grace_ms: 1_000,
            backoff_min_ms: 1_000,
            backoff_cap_ms: 60_000,
            poll_interval_s: generic.poll_interval_s,
            sample_interval_ms: generic.sample_interval_ms,
            busy_threshold_pct: generic.busy_threshold_pct,
            psi_threshold_pct: generic.psi_threshold_pct,
            dpd_window_s: 120,
            summary_interval_s: 3_600,
            cpu_budget_permille: generic.cpu_budget_permille,
            nice: generic.nice,
            log: LogTarget::Syslog,
            log_level: LevelFilter::Info,
            syslog_facility: Facility::Daemon,
            status_file: path_or_empty(DEFAULT_STATUS_FILE),
            proc_root: path_or_empty(DEFAULT_PROC_ROOT),
            origins: [Origin::Default; KEY_COUNT],
            source: ConfigPath::new(),
        }
    }
}

fn path_or_empty(text: &str) -> ConfigPath {
    ConfigPath::try_from(text).unwrap_or_default()
}

impl Config {
    /// Parses a config file's text: `key = value` lines, `#` comments (whole lines, or after
    /// whitespace), blank lines, optional quotes around values. `source_name` names the file in
    /// errors. The result is validated ([`Config::validate`]).
    pub fn parse_file(text: &str, source_name: &str) -> Result<Config, ConfigError> {
        let mut config = Config {
            source: truncated_path(source_name),
            ..Config::default()
        };
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (index, raw) in text.lines().enumerate() {
            let line = u32::try_from(index + 1).unwrap_or(u32::MAX);
            let content = strip_comment(raw).trim();
            if content.is_empty() {
                continue;
            }
            let Some((key, value)) = content.split_once('=') else {
                return Err(config.error(Place::Line(line), Problem::NotKeyValue(content.into())));
            };
            config.set(key.trim(), unquote(value.trim()), Origin::File { line })?;
        }
        config.validate()?;
        Ok(config)
    }

    /// Reads, checks ([`check_config_file_safe`]) and parses the config file at `path`.
    /// A missing file is an error whose [`ConfigError::is_not_found`] is true.
    pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
        use std::io::Read;
        let name = path.display().to_string();
        let fail = |problem| Err(ConfigError::new(&name, Place::File, problem));
        // Checked and read through one open file: a file swapped in between cannot slip past.
        // O_NONBLOCK: a FIFO planted at the path is refused below instead of hanging the open.
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
            .open(path);
        let file = match opened {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return fail(Problem::NotFound)
            }
            Err(err) => return fail(Problem::Unreadable(err.to_string())),
        };
        let meta = match file.metadata() {
            Ok(meta) => meta,
            Err(err) => return fail(Problem::Unreadable(err.to_string())),
        };
        check_config_file_safe(&name, &meta)?;
        if meta.len() > CONFIG_FILE_MAX_BYTES as u64 {
            return fail(Problem::TooLarge(meta.len()));
        }
        let mut text = String::new();
        // A file growing after the check is cut at the limit, and then refused.
        match file
            .take(CONFIG_FILE_MAX_BYTES as u64 + 1)
            .read_to_string(&mut text)
        {
            Ok(len) if len > CONFIG_FILE_MAX_BYTES => fail(Problem::TooLarge(len as u64)),
            Ok(_) => Config::parse_file(&text, &name),
            Err(err) => fail(Problem::Unreadable(err.to_string())),
        }
    }

    /// Sets `key` (file or flag spelling) from its text `value`, checking the value alone;
    /// cross-key rules are checked by [`Config::validate`]. A key set twice in the file is an
    /// error; a flag overrides whatever the file said. Setting `board` applies its profile to
    /// every key not set explicitly, before or after.
    pub fn set(&mut self, key: &str, value: &str, origin: Origin) -> Result<(), ConfigError> {
        let place = Place::of(origin);
        let key = match origin {
            Origin::Flag => key.strip_prefix("--").unwrap_or(key),
            _ => key,
        };
        let Some(k) = Key::from_name(key) else {
            return Err(self.error(place, Problem::UnknownKey(echo(key), suggest_key(key))));
        };
        if let (Origin::File { .. }, Origin::File { line: first }) =
            (origin, self.origins[k.index()])
        {
            return Err(self.error(place, Problem::Duplicate(k, first)));
        }
        self.apply(k, value)
            .map_err(|problem| self.error(place, problem))?;
        self.origins[k.index()] = origin;
        if k == Key::Board {
            self.apply_board_profile();
        }
        Ok(())
    }

    /// Checks rules between keys (backoff cap ≥ minimum; a responder cannot restart; the DPD
    /// window fits the load history at the sampling interval). Run it
    /// after the last [`Config::set`]; [`Config::parse_file`] already does.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.backoff_cap_ms < self.backoff_min_ms {
            let (blamed, other) = self.later_of(Key::BackoffCapMs, Key::BackoffMinMs);
            return Err(self.conflict(
                blamed,
                other,
                "backoff_cap_ms must be at least backoff_min_ms: raise backoff_cap_ms or lower backoff_min_ms",
            ));
        }
        if self.stale_action == StaleAction::Restart && self.role == Role::Responder {
            let (blamed, other) = self.later_of(Key::StaleAction, Key::Role);
            return Err(self.conflict(
                blamed,
                other,
                "a responder never initiates, so it cannot restart a stale child: \
                 use stale_action = report, or role = auto / initiator",
            ));
        }
        let history_ms = LOAD_HISTORY_SAMPLES as u64 * u64::from(self.sample_interval_ms);
        if u64::from(self.dpd_window_s) * 1_000 > history_ms {
            let (blamed, other) = self.later_of(Key::DpdWindowS, Key::SampleIntervalMs);
            return Err(self.conflict(
                blamed,
                other,
                format!(
                    "the load history holds {LOAD_HISTORY_SAMPLES} samples, {} s at this interval: \
                     lower dpd_window_s or raise sample_interval_ms",
                    history_ms / 1_000
                ),
            ));
        }
        Ok(())
    }

    /// Where `key`'s value came from.
    pub fn origin(&self, key: Key) -> Origin {
        self.origins[key.index()]
    }

    /// The file name given to [`Config::parse_file`] (empty for defaults only).
    pub fn source_name(&self) -> &str {
        &self.source
    }

    /// The VICI socket path (the URI without `unix://`).
    pub fn vici_socket_path(&self) -> &str {
        self.vici
            .strip_prefix(VICI_URI_SCHEME)
            .unwrap_or(&self.vici)
    }

    /// The load thresholds of the DPD verdict (`busy_threshold_pct`, `psi_threshold_pct`), in
    /// the core's units; the share of the window that must be loaded keeps its default.
    pub fn load_thresholds(&self) -> LoadThresholds {
        LoadThresholds {
            busy_permille: u16::from(self.busy_threshold_pct) * 10,
            psi_centi: u16::from(self.psi_threshold_pct) * 100,
            ..LoadThresholds::default()
        }
    }

    /// The self-throttling knobs (`busy_threshold_pct`, `cpu_budget_permille`,
    /// `sample_interval_ms`, `poll_interval_s`) in the core's units; the stretch factor keeps
    /// its default.
    pub fn throttle_settings(&self) -> ThrottleSettings {
        ThrottleSettings {
            busy_permille: u16::from(self.busy_threshold_pct) * 10,
            cpu_budget_permille: self.cpu_budget_permille,
            sample_interval_ms: u64::from(self.sample_interval_ms),
            poll_interval_ms: u64::from(self.poll_interval_s) * 1_000,
            ..ThrottleSettings::default()
        }
    }

    /// The "what would be used" listing for `swandog check`: every key, its value and where the
    /// value came from, in config-file syntax.
    pub fn describe(&self) -> Describe<'_> {
        Describe(self)
    }

    fn apply(&mut self, key: Key, value: &str) -> Result<(), Problem> {
        let bad = |expected: String| Problem::BadValue(key, echo(value), expected);
        let one_of = |names: &[&str]| bad(format!("expected one of {}", names.join(", ")));
        match key {
            Key::Vici => self.vici = parse_vici(value).map_err(bad)?,
            Key::Watch => self.watch = parse_watch(value).map_err(bad)?,
            Key::Role => {
                self.role =
                    lookup(&Role::NAMES, value).ok_or_else(|| one_of(&names_of(&Role::NAMES)))?;
            }
            Key::StaleAction => {
                self.stale_action = lookup(&StaleAction::NAMES, value)
                    .ok_or_else(|| one_of(&names_of(&StaleAction::NAMES)))?;
            }
            Key::Board => {
                self.board = Board::from_name(value).ok_or_else(|| {
                    one_of(
                        &crate::board::BOARDS
                            .iter()
                            .map(|b| b.name)
                            .collect::<Vec<_>>(),
                    )
                })?;
            }
            Key::Log => {
                self.log = LogTarget::from_name(value)
                    .ok_or_else(|| one_of(&LogTarget::ALL.map(LogTarget::name)))?;
            }
            Key::LogLevel => {
                self.log_level =
                    lookup(&LEVEL_NAMES, value).ok_or_else(|| one_of(&names_of(&LEVEL_NAMES)))?;
            }
            Key::SyslogFacility => {
                self.syslog_facility = Facility::from_name(value)
                    .ok_or_else(|| one_of(&Facility::ALL.map(Facility::name)))?;
            }
            Key::StatusFile => self.status_file = parse_path(value).map_err(bad)?,
            Key::ProcRoot => self.proc_root = parse_path(value).map_err(bad)?,
            _ => {
                let number = parse_whole(key, value)?;
                self.set_number(key, number);
            }
        }
        Ok(())
    }

    /// Stores an already range-checked number.
    fn set_number(&mut self, key: Key, n: i64) {
        let u32_of = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
        match key {
            Key::StaleAfterS => self.stale_after_s = u32_of(n),
            Key::GraceMs => self.grace_ms = u32_of(n),
            Key::BackoffMinMs => self.backoff_min_ms = u32_of(n),
            Key::BackoffCapMs => self.backoff_cap_ms = u32_of(n),
            Key::PollIntervalS => self.poll_interval_s = u32_of(n),
            Key::SampleIntervalMs => self.sample_interval_ms = u32_of(n),
            Key::BusyThresholdPct => self.busy_threshold_pct = u8::try_from(n).unwrap_or(100),
            Key::PsiThresholdPct => self.psi_threshold_pct = u8::try_from(n).unwrap_or(100),
            Key::DpdWindowS => self.dpd_window_s = u32_of(n),
            Key::SummaryIntervalS => self.summary_interval_s = u32_of(n),
            Key::CpuBudgetPermille => self.cpu_budget_permille = u16::try_from(n).unwrap_or(1_000),
            Key::Nice => self.nice = i8::try_from(n).unwrap_or(0),
            _ => {}
        }
    }

    /// Gives every key the board profile covers, unless set explicitly, the board's value.
    fn apply_board_profile(&mut self) {
        let profile = self.board.profile();
        let origin = if self.board == Board::None {
            Origin::Default
        } else {
            Origin::Board
        };
        for key in Key::ALL {
            let Some(value) = key.profile_value(&profile) else {
                continue;
            };
            if !self.origins[key.index()].is_explicit() {
                self.set_number(key, value);
                self.origins[key.index()] = origin;
            }
        }
    }

    /// Of two keys in conflict, the one set later (a flag, or the later file line) is blamed.
    fn later_of(&self, a: Key, b: Key) -> (Key, Key) {
        let rank = |o: Origin| match o {
            Origin::Default | Origin::Board => 0,
            Origin::File { line } => u64::from(line),
            Origin::Flag => u64::MAX,
        };
        if rank(self.origin(b)) > rank(self.origin(a)) {
            (b, a)
        } else {
            (a, b)
        }
    }

    fn conflict(&self, blamed: Key, other: Key, fix: impl Into<String>) -> ConfigError {
        let place = Place::of(self.origin(blamed));
        let problem = Problem::Conflict {
            key: blamed,
            value: self.value_text(blamed),
            other,
            other_value: self.value_text(other),
            other_origin: self.origin(other),
            fix: fix.into(),
        };
        self.error(place, problem)
    }

    fn error(&self, place: Place, problem: Problem) -> ConfigError {
        ConfigError::new(&self.source, place, problem)
    }

    fn value_text(&self, key: Key) -> String {
        ValueText(self, key).to_string()
    }
}

/// Displays one key's value in config-file syntax.
struct ValueText<'a>(&'a Config, Key);

impl fmt::Display for ValueText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.0;
        match self.1 {
            Key::Vici => f.write_str(&c.vici),
            Key::Watch => {
                for (i, name) in c.watch.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    f.write_str(name)?;
                }
                Ok(())
            }
            Key::Role => f.write_str(c.role.name()),
            Key::Board => f.write_str(c.board.name()),
            Key::StaleAction => f.write_str(c.stale_action.name()),
            Key::StaleAfterS => write!(f, "{}", c.stale_after_s),
            Key::GraceMs => write!(f, "{}", c.grace_ms),
            Key::BackoffMinMs => write!(f, "{}", c.backoff_min_ms),
            Key::BackoffCapMs => write!(f, "{}", c.backoff_cap_ms),
            Key::PollIntervalS => write!(f, "{}", c.poll_interval_s),
            Key::SampleIntervalMs => write!(f, "{}", c.sample_interval_ms),
            Key::BusyThresholdPct => write!(f, "{}", c.busy_threshold_pct),
            Key::PsiThresholdPct => write!(f, "{}", c.psi_threshold_pct),
            Key::DpdWindowS => write!(f, "{}", c.dpd_window_s),
            Key::SummaryIntervalS => write!(f, "{}", c.summary_interval_s),
            Key::CpuBudgetPermille => write!(f, "{}", c.cpu_budget_permille),
            Key::Nice => write!(f, "{}", c.nice),
            Key::Log => f.write_str(c.log.name()),
            Key::LogLevel => f.write_str(level_name(c.log_level)),
            Key::SyslogFacility => f.write_str(c.syslog_facility.name()),
            Key::StatusFile => f.write_str(&c.status_file),
            Key::ProcRoot => f.write_str(&c.proc_root),
        }
    }
}

/// The listing of [`Config::describe`].
pub struct Describe<'a>(&'a Config);

impl fmt::Display for Describe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const VALUE_COLUMN: usize = 21;
        const ORIGIN_COLUMN: usize = 58;
        let c = self.0;
        for key in Key::ALL {
            let setting = format!(
                "{:<w$}= {}",
                key.name(),
                ValueText(c, key),
                w = VALUE_COLUMN
            );
            write!(f, "{setting:<ORIGIN_COLUMN$} # ")?;
            match c.origin(key) {
                Origin::Default => f.write_str("default")?,
                Origin::Board => write!(f, "board {}", c.board.name())?,
                Origin::File { line } => write!(f, "{}:{line}", c.source)?,
                Origin::Flag => write!(f, "{}", key.flag())?,
            }
            if key == Key::Watch && c.watch.is_empty() {
                f.write_str(" (empty: every route-based child found)")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// Where in the input a problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    /// A line of the config file.
    Line(u32),
    /// A command-line flag.
    Flag,
    /// The config file as a whole.
    File,
    /// Built-in values (never wrong, but named for completeness).
    Defaults,
}

impl Place {
    fn of(origin: Origin) -> Place {
        match origin {
            Origin::File { line } => Place::Line(line),
            Origin::Flag => Place::Flag,
            Origin::Default | Origin::Board => Place::Defaults,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Problem {
    NotKeyValue(String),
    UnknownKey(String, Option<Key>),
    Duplicate(Key, u32),
    BadValue(Key, String, String),
    OutOfRange(Key, String, Range),
    Conflict {
        key: Key,
        value: String,
        other: Key,
        other_value: String,
        other_origin: Origin,
        fix: String,
    },
    NotFound,
    Unreadable(String),
    TooLarge(u64),
    NotRegularFile,
    WritableByOthers(u32),
    NotOwnedByRoot(u32),
}

/// A config problem, with the file, line or flag it is in and how to fix it. Displays as one
/// ASCII line: `/etc/swandog.conf:7: unknown key "rol", did you mean "role"? (keys: ...)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    source: String,
    place: Place,
    problem: Problem,
}

impl ConfigError {
    fn new(source: &str, place: Place, problem: Problem) -> ConfigError {
        ConfigError {
            source: source.into(),
            place,
            problem,
        }
    }

    /// True when the config file does not exist (fine for the default path).
    pub fn is_not_found(&self) -> bool {
        self.problem == Problem::NotFound
    }

    /// The file line the problem is on, if it is on one.
    pub fn line(&self) -> Option<u32> {
        match self.place {
            Place::Line(line) => Some(line),
            _ => None,
        }
    }

    fn setting(&self, key: Key, value: &str) -> String {
        match self.place {
            Place::Flag => format!("{} {value:?}", key.flag()),
            _ => format!("{} = {value:?}", key.name()),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = if self.source.is_empty() {
            "config"
        } else {
            &self.source
        };
        match self.place {
            Place::Line(line) => write!(f, "{source}:{line}: ")?,
            Place::File => write!(f, "{source}: ")?,
            Place::Flag => f.write_str("command line: ")?,
            Place::Defaults => f.write_str("built-in defaults: ")?,
        }
        match &self.problem {
            Problem::NotKeyValue(text) => {
                write!(f, "{:?} is not a `key = value` line", echo(text))?;
                match text.split_once(char::is_whitespace) {
                    Some((k, v)) if Key::from_name(k).is_some() => {
                        write!(f, ": write {} = {}", k, v.trim())
                    }
                    _ => f.write_str(": write key = value, or start a comment with #"),
                }
            }
            Problem::UnknownKey(key, suggestion) => {
                let shown = match self.place {
                    Place::Flag => format!("--{}", key.trim_start_matches('-')),
                    _ => key.clone(),
                };
                write!(f, "unknown key {shown:?}")?;
                if let Some(s) = suggestion {
                    match self.place {
                        Place::Flag => write!(f, ", did you mean \"{}\"?", s.flag())?,
                        _ => write!(f, ", did you mean {:?}?", s.name())?,
                    }
                }
                f.write_str(" (keys: ")?;
                for (i, k) in Key::ALL.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(k.name())?;
                }
                f.write_str(")")
            }
            Problem::Duplicate(key, first) => write!(
                f,
                "{} is set twice (first on line {first}): keep one of the two lines",
                key.name()
            ),
            Problem::BadValue(key, value, expected) => {
                write!(f, "{}: {expected}", self.setting(*key, value))
            }
            Problem::OutOfRange(key, value, range) => write!(
                f,
                "{} is out of range: use {} to {} ({})",
                self.setting(*key, value),
                range.min,
                range.max,
                range.unit
            ),
            Problem::Conflict {
                key,
                value,
                other,
                other_value,
                other_origin,
                fix,
            } => {
                write!(f, "{} conflicts with {} = {other_value}", self.setting(*key, value), other.name())?;
                match other_origin {
                    Origin::File { line } => write!(f, " (line {line})")?,
                    Origin::Flag => write!(f, " (from {})", other.flag())?,
                    Origin::Board => f.write_str(" (board profile)")?,
                    Origin::Default => f.write_str(" (default)")?,
                }
                write!(f, ": {fix}")
            }
            Problem::NotFound => f.write_str("no such file: create it (see board/swandog.conf.example) or pass --config"),
            Problem::Unreadable(err) => write!(f, "cannot read it: {err}"),
            Problem::TooLarge(len) => write!(
                f,
                "{len} bytes is too large for a config file (limit {CONFIG_FILE_MAX_BYTES}): is this the right file?"
            ),
            Problem::NotRegularFile => f.write_str("not a regular file: point --config at the config file"),
            Problem::WritableByOthers(mode) => write!(
                f,
                "refusing a config writable by group or others (mode {:04o}): anyone in them could steer \
                 swandog; run chmod go-w {source}",
                mode & 0o7777
            ),
            Problem::NotOwnedByRoot(uid) => write!(
                f,
                "refusing a config owned by uid {uid}, not by root: run chown root {source}"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Refuses a config file that someone other than root (or the user swandog runs as) could
/// change: not a regular file, writable by group or others, or owned by another user. The file
/// steers a root daemon (socket paths, the status file it writes), so it must be as trusted as
/// the binary.
pub fn check_config_file_safe(name: &str, meta: &Metadata) -> Result<(), ConfigError> {
    check_config_file_safe_for(name, meta, nix::unistd::geteuid().as_raw())
}

/// [`check_config_file_safe`] with the effective uid given (tests).
pub fn check_config_file_safe_for(
    name: &str,
    meta: &Metadata,
    euid: u32,
) -> Result<(), ConfigError> {
    if !meta.is_file() {
        return Err(ConfigError::new(name, Place::File, Problem::NotRegularFile));
    }
    check_mode_and_owner(name, meta.mode(), meta.uid(), euid)
}

fn check_mode_and_owner(name: &str, mode: u32, owner: u32, euid: u32) -> Result<(), ConfigError> {
    const GROUP_OR_OTHER_WRITE: u32 = 0o022;
    const ROOT_UID: u32 = 0;
    if owner != ROOT_UID && owner != euid {
        return Err(ConfigError::new(
            name,
            Place::File,
            Problem::NotOwnedByRoot(owner),
        ));
    }
    if mode & GROUP_OR_OTHER_WRITE != 0 {
        return Err(ConfigError::new(
            name,
            Place::File,
            Problem::WritableByOthers(mode),
        ));
    }
    Ok(())
}

/// Cuts a comment: the rest of the line after a `#` at its start or after whitespace.
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    let cut = (0..bytes.len())
        .find(|&i| bytes[i] == b'#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()));
    cut.map_or(line, |i| &line[..i])
}

fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|v| v.strip_suffix(quote))
        {
            return inner;
        }
    }
    value
}

fn echo(text: &str) -> String {
    match text.char_indices().nth(ECHO_MAX_CHARS) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

fn lookup<T: Copy>(table: &[(&str, T)], name: &str) -> Option<T> {
    table.iter().find(|(n, _)| *n == name).map(|&(_, v)| v)
}

fn names_of<T>(table: &[(&'static str, T)]) -> Vec<&'static str> {
    table.iter().map(|(n, _)| *n).collect()
}

fn parse_whole(key: Key, value: &str) -> Result<i64, Problem> {
    let Some(range) = key.range() else {
        return Err(Problem::BadValue(
            key,
            echo(value),
            "expected a value".into(),
        ));
    };
    let digits = value.strip_prefix('-').unwrap_or(value);
    let allowed_sign = range.min < 0 || !value.starts_with('-');
    let parsed = if !digits.is_empty()
        && digits.len() <= 12
        && digits.bytes().all(|b| b.is_ascii_digit())
        && allowed_sign
    {
        value.parse::<i64>().ok()
    } else {
        None
    };
    let Some(n) = parsed else {
        return Err(Problem::BadValue(
            key,
            echo(value),
            format!(
                "expected a whole number of {}, e.g. {}",
                range.unit, range.example
            ),
        ));
    };
    if n < range.min || n > range.max {
        return Err(Problem::OutOfRange(key, echo(value), range));
    }
    Ok(n)
}

fn parse_vici(value: &str) -> Result<ConfigPath, String> {
    if value.contains('\0') {
        return Err("a path cannot contain a NUL byte".into());
    }
    let path = value.strip_prefix(VICI_URI_SCHEME);
    match path {
        Some(p) if p.starts_with('/') && p.len() > 1 => ConfigPath::try_from(value)
            .map_err(|_| format!("too long: at most {CONFIG_PATH_MAX_BYTES} bytes")),
        _ if value.starts_with('/') => Err(format!("write it as a URI: unix://{value}")),
        _ => Err(format!(
            "expected unix:///path/to/socket, e.g. {DEFAULT_VICI_URI}"
        )),
    }
}

fn parse_path(value: &str) -> Result<ConfigPath, String> {
    if !value.starts_with('/') {
        return Err("expected an absolute path (starting with /)".into());
    }
    if value.contains('\0') {
        return Err("a path cannot contain a NUL byte".into());
    }
    ConfigPath::try_from(value)
        .map_err(|_| format!("too long: at most {CONFIG_PATH_MAX_BYTES} bytes"))
}

/// `con1, con2_1` or `con1 con2_1`; empty is the empty list.
fn parse_watch(value: &str) -> Result<WatchList, String> {
    let mut list = WatchList::new();
    for name in value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|n| !n.is_empty())
    {
        let valid = name.len() <= NAME_MAX_BYTES
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        let child = match ChildName::try_from(name) {
            Ok(child) if valid => child,
            _ => {
                return Err(format!(
                    "{:?} is not a child name: use 1-{NAME_MAX_BYTES} characters from A-Z a-z 0-9 _ . -",
                    echo(name)
                ))
            }
        };
        if list.contains(&child) {
            return Err(format!("{name:?} is listed twice"));
        }
        list.push(child)
            .map_err(|_| format!("more than {WATCHED_CHILDREN_MAX} children: swandog watches at most {WATCHED_CHILDREN_MAX}"))?;
    }
    Ok(list)
}

fn truncated_path(text: &str) -> ConfigPath {
    let mut path = ConfigPath::new();
    for c in text.chars() {
        if path.push(c).is_err() {
            break;
        }
    }
    path
}

/// The key closest to a mistyped one: a prefix of it, or at most two edits away.
fn suggest_key(typed: &str) -> Option<Key> {
    const TYPED_MAX_CHARS: usize = 32;
    let typed = typed.trim_start_matches('-');
    if typed.is_empty() || typed.len() > TYPED_MAX_CHARS {
        return None;
    }
    let normalized: String = typed
        .chars()
        .map(|c| {
            if c == '-' {
                '_'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    if let Some(key) = Key::from_name(&normalized) {
        return Some(key); // only the case was wrong
    }
    let mut best: Option<(usize, Key)> = None;
    for key in Key::ALL {
        let distance = if normalized.len() >= 3 && key.name().starts_with(&normalized) {
            1
        } else {
            edit_distance(normalized.as_bytes(), key.name().as_bytes())
        };
        if distance <= 2 && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, key));
        }
    }
    best.map(|(_, key)| key)
}

/// Levenshtein distance of two short byte strings (≤ 32 bytes), on the stack.
fn edit_distance(a: &[u8], b: &[u8]) -> usize {
    const MAX: usize = 33;
    if a.len() >= MAX || b.len() >= MAX {
        return usize::MAX;
    }
    let mut prev = [0usize; MAX];
    let mut cur = [0usize; MAX];
    for (j, slot) in prev.iter_mut().enumerate().take(b.len() + 1) {
        *slot = j;
    }
    for (i, &ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = prev[j] + usize::from(ca != cb);
            cur[j + 1] = substitution.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests;
