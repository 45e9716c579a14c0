//! Every knob of swandog: defaults, the `/etc/swandog.conf` parser, flag overrides, and the
//! listing `swandog check` prints.
//!
//! Every key is one row of [`config_key_table!`](crate::config_key_table): its name (the file's
//! `snake_case` key, the `Config` field and the `--kebab-case` flag), its help text, its type,
//! default, kind of value (with range and unit) and whether the board profile sets it. The
//! [`Key`] enum, the [`Config`] struct, the parser, `swandog check`'s listing and the flags of
//! `swandog run` / `swandog check` are all made from that table, so adding a key is one row
//! (plus its line in `board/swandog.conf.example`, which a test asks for).
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
//! use swandog::agent::role::Role;
//! use swandog::config::{Config, Origin};
//!
//! let text = "# site A\nrole = initiator\nwatch = con1, con2_1\nboard = ath79\n";
//! let mut config = Config::parse_file(text, "/etc/swandog.conf")?;
//! config.set("stale-action", "restart", Origin::Flag)?; // `--stale-action restart`
//! config.validate()?;
//! assert_eq!(config.role, Role::Initiator);
//! assert_eq!(config.watch.len(), 2);
//! assert_eq!(config.sample_interval_ms, 2_000); // from the ath79 profile
//! assert_eq!(config.agent_settings().keeper.stale_after_ms, 60_000);
//! println!("{}", config.describe());
//! # Ok::<(), swandog::config::ConfigError>(())
//! ```

use core::fmt;
use std::fs::Metadata;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use log::LevelFilter;

use crate::agent::correlate::LoadThresholds;
use crate::agent::keeper::KeeperSettings;
use crate::agent::role::{Role, StaleAction};
use crate::agent::throttle::ThrottleSettings;
use crate::agent::Settings;
use crate::board::{Board, GENERIC};
use crate::limits::{
    CONFIG_FILE_MAX_BYTES, CONFIG_PATH_MAX_BYTES, KEEPER_BACKOFF_CAP_MS, KEEPER_BACKOFF_MIN_MS,
    KEEPER_GRACE_MS, KEEPER_STALE_AFTER_MS, LOAD_HISTORY_SAMPLES, NAME_MAX_BYTES,
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
/// Where swanctl keeps its configuration (strongSwan's default `swanctl` directory).
pub const DEFAULT_SWANCTL_CONF: &str = "/etc/swanctl/swanctl.conf";
const VICI_URI_SCHEME: &str = "unix://";
/// Longest echo of a bad value in an error message.
const ECHO_MAX_CHARS: usize = 40;

/// A CHILD_SA config name (pfSense: `con1`, `con2_1`): 1–64 of `A-Z a-z 0-9 _ . -`.
pub type ChildName = heapless::String<NAME_MAX_BYTES>;
/// The children named in `watch`; empty means "every route-based child found".
pub type WatchList = heapless::Vec<ChildName, WATCHED_CHILDREN_MAX>;
/// A path or URI from the config.
pub type ConfigPath = heapless::String<CONFIG_PATH_MAX_BYTES>;

/// The table of every config key, in the order `swandog check` and the example config list them.
/// It hands its rows to the macro `$then` (with `$extra` first): [`Config`] and [`Key`] here, the
/// flags of `swandog run` / `swandog check` in `main.rs`. One row:
///
/// ```text
/// FLAG  Key  name  "help"  { field type = default, value kind [, board] }
/// ```
///
/// `FLAG` is `one` (the flag may be given once) or `list` (repeatable, joined with commas);
/// `name` is the file key, the [`Config`] field and, in kebab-case, the flag; `help` is its flag's
/// help and the field's doc; `board` means the board profile sets it (the
/// [`Profile`](crate::board::Profile) field of the same name), unless the file or a flag does.
#[macro_export]
macro_rules! config_key_table {
    ($then:ident ! $extra:tt) => { $then! { $extra
        one Vici vici "charon's VICI socket"
            { ConfigPath = path_or_empty(DEFAULT_VICI_URI), Kind::Uri }
        list Watch watch
            "children to keep up, comma-separated (or repeated flags); empty: every route-based (VTI) child found"
            { WatchList = WatchList::new(), Kind::ChildNames }
        one Role role
            "who re-initiates: initiator, responder (never initiates) or auto (one side, picked from the addresses)"
            { Role = Role::Initiator, Kind::Word }
        one Board board
            "board profile: none, generic, mt7621, ath79, ipq40xx, filogic (see board/README.md)"
            { Board = Board::None, Kind::Word }
        one StaleAction stale_action "one-sided SA (packets-out grow, packets-in frozen): report or restart"
            { StaleAction = StaleAction::Report, Kind::Word }
        one StaleAfterS stale_after_s "seconds packets-in may stay frozen while packets-out grow"
            { u32 = seconds_u32(KEEPER_STALE_AFTER_MS), Kind::number(10, 86_400, Unit::Seconds) }
        one GraceMs grace_ms
            "wait after a child goes down before re-initiating, ms (lets charon's own action win)"
            { u32 = millis_u32(KEEPER_GRACE_MS), Kind::number(0, 60_000, Unit::Milliseconds) }
        one BackoffMinMs backoff_min_ms "first re-initiation backoff, ms"
            { u32 = millis_u32(KEEPER_BACKOFF_MIN_MS), Kind::number(100, 600_000, Unit::Milliseconds) }
        one BackoffCapMs backoff_cap_ms "longest re-initiation backoff, ms (attempts never stop)"
            { u32 = millis_u32(KEEPER_BACKOFF_CAP_MS), Kind::number(1_000, 86_400_000, Unit::Milliseconds) }
        one PollIntervalS poll_interval_s "reconciling list-sas poll, s (stretched under load)"
            { u32 = GENERIC.poll_interval_s, Kind::number(5, 3_600, Unit::Seconds), board }
        one SampleIntervalMs sample_interval_ms "load sampling (/proc/stat) interval, ms (stretched under load)"
            { u32 = GENERIC.sample_interval_ms, Kind::number(100, 60_000, Unit::Milliseconds), board }
        one BusyThresholdPct busy_threshold_pct "whole-box busy % above which the box counts as loaded"
            { u8 = GENERIC.busy_threshold_pct, Kind::number(1, 100, Unit::Percent), board }
        one PsiThresholdPct psi_threshold_pct
            "CPU pressure (PSI some avg10) % above which the box counts as loaded"
            { u8 = GENERIC.psi_threshold_pct, Kind::number(1, 100, Unit::Percent), board }
        one DpdWindowS dpd_window_s
            "load window judged before a DPD failure whose exchange start is unknown, s"
            { u32 = 120, Kind::number(10, 3_600, Unit::Seconds) }
        one SummaryIntervalS summary_interval_s
            "seconds between summary lines (DPD rate loaded vs quiet, repeated failures)"
            { u32 = 3_600, Kind::number(60, 604_800, Unit::Seconds) }
        one CpuBudgetPermille cpu_budget_permille "own CPU budget in thousandths of one core (5 = 0.5 %)"
            { u16 = GENERIC.cpu_budget_permille, Kind::number(1, 1_000, Unit::PermilleOfOneCore), board }
        one Nice nice "process niceness, -20 (first) to 19 (last)"
            { i8 = GENERIC.nice, Kind::number(-20, 19, Unit::NicenessSteps), board }
        one Log log "where log lines go: syslog or stderr"
            { LogTarget = LogTarget::Syslog, Kind::Word }
        one LogLevel log_level "most verbose level logged: error, warn, info, debug or trace"
            { LevelFilter = LevelFilter::Info, Kind::Word }
        one SyslogFacility syslog_facility "syslog facility: daemon, user, local0 ... local7"
            { Facility = Facility::Daemon, Kind::Word }
        one StatusFile status_file "status snapshot the agent writes and `swandog status` reads"
            { ConfigPath = path_or_empty(DEFAULT_STATUS_FILE), Kind::Path }
        one ProcRoot proc_root "where /proc is (tests point it at a recorded tree)"
            { ConfigPath = path_or_empty(DEFAULT_PROC_ROOT), Kind::Path }
        one MetricsFile metrics_file
            "metrics file in Prometheus text format (node exporter's textfile collector); empty: off"
            { ConfigPath = ConfigPath::new(), Kind::OptionalPath }
        one SwanctlConf swanctl_conf
            "swanctl.conf read to find route-based children (if_id / mark); empty: not read"
            { ConfigPath = path_or_empty(DEFAULT_SWANCTL_CONF), Kind::OptionalPath }
    } };
}

/// The last word of a table row that the board profile covers: only `board` is accepted.
macro_rules! board_marker {
    (board) => {};
}

/// Makes [`Key`], [`KEY_COUNT`], [`Config`] and the per-key code from the rows of
/// [`config_key_table!`](crate::config_key_table).
macro_rules! define_config {
    ([] $(
        $form:ident $key:ident $name:ident $help:literal
        { $ty:ty = $default:expr, $kind:expr $(, $board:ident)? }
    )*) => {
        /// Every config key. The file spells them `snake_case`, flags `--kebab-case`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Key {
            $(
                #[doc = concat!("`", stringify!($name), "`: ", $help, ".")]
                $key,
            )*
        }

        /// Number of keys.
        pub const KEY_COUNT: usize = [$(Key::$key),*].len();

        impl Key {
            /// Every key, in the order the example config and `swandog check` list them.
            pub const ALL: [Key; KEY_COUNT] = [$(Key::$key),*];

            /// The key as the config file spells it.
            pub fn name(self) -> &'static str {
                match self {
                    $(Key::$key => stringify!($name),)*
                }
            }

            /// One line saying what the key does (the flag's help text).
            pub fn help(self) -> &'static str {
                match self {
                    $(Key::$key => $help,)*
                }
            }

            fn kind(self) -> Kind {
                match self {
                    $(Key::$key => $kind,)*
                }
            }
        }

        /// Every setting of swandog, validated. `Config::default()` is the documented defaults.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct Config {
            $(
                #[doc = concat!($help, ".")]
                pub $name: $ty,
            )*
            origins: [Origin; KEY_COUNT],
            source: ConfigPath,
        }

        impl Default for Config {
            fn default() -> Config {
                Config {
                    $($name: $default,)*
                    origins: [Origin::Default; KEY_COUNT],
                    source: ConfigPath::new(),
                }
            }
        }

        impl Config {
            /// Sets `key` from its text, checked alone (cross-key rules: [`Config::validate`]).
            fn apply(&mut self, key: Key, value: &str) -> Result<(), Problem> {
                match key {
                    $(Key::$key => self.$name = Setting::parse(key, value)?,)*
                }
                Ok(())
            }

            /// Writes `key`'s value in config-file syntax.
            fn write_value(&self, key: Key, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match key {
                    $(Key::$key => self.$name.show(f),)*
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
                $($(
                    board_marker!($board);
                    if !self.origins[Key::$key.index()].is_explicit() {
                        self.$name = profile.$name;
                        self.origins[Key::$key.index()] = origin;
                    }
                )?)*
            }
        }
    };
}

config_key_table!(define_config![]);

/// What a key's value is: how its text is parsed, and what errors say about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// `unix:///path/to/socket`.
    Uri,
    /// An absolute path.
    Path,
    /// An absolute path, or empty for "off".
    OptionalPath,
    /// Child names, separated by commas or spaces.
    ChildNames,
    /// One word of the value type's [`Word`] list.
    Word,
    /// A whole number.
    Number(Range),
}

impl Kind {
    const fn number(min: i64, max: i64, unit: Unit) -> Kind {
        Kind::Number(Range { min, max, unit })
    }
}

/// The unit of a whole-number key, named in error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unit {
    Seconds,
    Milliseconds,
    Percent,
    PermilleOfOneCore,
    NicenessSteps,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Seconds => "seconds",
            Unit::Milliseconds => "milliseconds",
            Unit::Percent => "percent",
            Unit::PermilleOfOneCore => "permille of one core",
            Unit::NicenessSteps => "niceness steps",
        }
    }
}

/// A whole-number key's allowed range and unit, for checks and error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Range {
    min: i64,
    max: i64,
    unit: Unit,
}

const fn millis_u32(ms: u64) -> u32 {
    if ms > u32::MAX as u64 {
        u32::MAX
    } else {
        ms as u32
    }
}

const fn seconds_u32(ms: u64) -> u32 {
    millis_u32(ms / 1_000)
}

/// A setting whose value is one word of a fixed list (`role = auto`, `log_level = debug`).
pub trait Word: Copy + PartialEq + 'static {
    /// Every value, in the order error messages list them.
    const ALL: &'static [Self];

    /// This value's word.
    fn name(self) -> &'static str;
}

impl Word for Role {
    const ALL: &'static [Role] = &[Role::Initiator, Role::Responder, Role::Auto];

    fn name(self) -> &'static str {
        match self {
            Role::Initiator => "initiator",
            Role::Responder => "responder",
            Role::Auto => "auto",
        }
    }
}

impl Word for StaleAction {
    const ALL: &'static [StaleAction] = &[StaleAction::Report, StaleAction::Restart];

    fn name(self) -> &'static str {
        match self {
            StaleAction::Report => "report",
            StaleAction::Restart => "restart",
        }
    }
}

impl Word for Board {
    const ALL: &'static [Board] = &Board::ALL;

    fn name(self) -> &'static str {
        Board::name(self)
    }
}

impl Word for LogTarget {
    const ALL: &'static [LogTarget] = &LogTarget::ALL;

    fn name(self) -> &'static str {
        LogTarget::name(self)
    }
}

impl Word for Facility {
    const ALL: &'static [Facility] = &Facility::ALL;

    fn name(self) -> &'static str {
        Facility::name(self)
    }
}

impl Word for LevelFilter {
    const ALL: &'static [LevelFilter] = &[
        LevelFilter::Error,
        LevelFilter::Warn,
        LevelFilter::Info,
        LevelFilter::Debug,
        LevelFilter::Trace,
    ];

    fn name(self) -> &'static str {
        match self {
            LevelFilter::Off => "off",
            LevelFilter::Error => "error",
            LevelFilter::Warn => "warn",
            LevelFilter::Info => "info",
            LevelFilter::Debug => "debug",
            LevelFilter::Trace => "trace",
        }
    }
}

/// Where `text` is among `words`, or the error listing them (one copy for every [`Word`] type).
fn find_word(
    key: Key,
    text: &str,
    words: &mut dyn Iterator<Item = &'static str>,
) -> Result<usize, Problem> {
    let mut expected = String::from("expected one of ");
    for (index, word) in words.enumerate() {
        if word == text {
            return Ok(index);
        }
        if index > 0 {
            expected.push_str(", ");
        }
        expected.push_str(word);
    }
    Err(bad_value(key, text, expected))
}

/// A [`Config`] field's type: parsed from a key's text, written back in config-file syntax.
trait Setting: Sized {
    fn parse(key: Key, text: &str) -> Result<Self, Problem>;
    fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

fn bad_value(key: Key, text: &str, expected: String) -> Problem {
    Problem::BadValue(key, echo(text), expected)
}

impl<W: Word> Setting for W {
    fn parse(key: Key, text: &str) -> Result<W, Problem> {
        let index = find_word(key, text, &mut W::ALL.iter().map(|w| w.name()))?;
        W::ALL
            .get(index)
            .copied()
            .ok_or_else(|| bad_value(key, text, "no such value".into()))
    }

    fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Setting for ConfigPath {
    fn parse(key: Key, text: &str) -> Result<ConfigPath, Problem> {
        match key.kind() {
            Kind::Uri => parse_vici(text),
            Kind::OptionalPath if text.is_empty() => Ok(ConfigPath::new()),
            _ => parse_path(text),
        }
        .map_err(|expected| bad_value(key, text, expected))
    }

    fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

impl Setting for WatchList {
    fn parse(key: Key, text: &str) -> Result<WatchList, Problem> {
        parse_watch(text).map_err(|expected| bad_value(key, text, expected))
    }

    fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, name) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(name)?;
        }
        Ok(())
    }
}

/// Whole numbers: range-checked by [`parse_whole`]; the type only has to hold the range (tested).
macro_rules! number_setting {
    ($($t:ty),*) => {$(
        impl Setting for $t {
            fn parse(key: Key, text: &str) -> Result<$t, Problem> {
                let n = parse_whole(key, text)?;
                // In range, so it fits (tested); saturating only for the form's sake.
                Ok(<$t>::try_from(n).unwrap_or(if n < 0 { <$t>::MIN } else { <$t>::MAX }))
            }

            fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{self}")
            }
        }
    )*};
}

number_setting!(u8, u16, u32, i8);

impl Key {
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

    /// Position in [`Key::ALL`] (the variants are declared in that order; tested).
    fn index(self) -> usize {
        self as usize
    }

    fn range(self) -> Option<Range> {
        match self.kind() {
            Kind::Number(range) => Some(range),
            _ => None,
        }
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
    /// window fits the load history at the sampling interval; the metrics file is not the status
    /// file). Run it after the last [`Config::set`]; [`Config::parse_file`] already does.
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
        if !self.metrics_file.is_empty() && self.metrics_file == self.status_file {
            let (blamed, other) = self.later_of(Key::MetricsFile, Key::StatusFile);
            return Err(self.conflict(
                blamed,
                other,
                "the agent writes both files: give metrics_file its own path",
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

    /// Everything the agent decides by, in its units: the keeper's policy, the DPD verdict's
    /// thresholds and window, the self-throttling pace, the summary interval and the watch list.
    /// What the config has no key for keeps the agent's own default.
    pub fn agent_settings(&self) -> Settings {
        let seconds = |s: u32| u64::from(s) * 1_000;
        Settings {
            throttle: self.throttle_settings(),
            thresholds: self.load_thresholds(),
            dpd_window_ms: seconds(self.dpd_window_s),
            summary_interval_ms: seconds(self.summary_interval_s),
            keeper: KeeperSettings {
                role: self.role,
                grace_ms: self.grace_ms.into(),
                backoff_min_ms: self.backoff_min_ms.into(),
                backoff_cap_ms: self.backoff_cap_ms.into(),
                stale_after_ms: seconds(self.stale_after_s),
                stale_action: self.stale_action,
                ..KeeperSettings::default()
            }
            .sanitized(),
            watch: self.watch.clone(),
            ..Settings::default()
        }
    }

    /// The load thresholds of the DPD verdict (`busy_threshold_pct`, `psi_threshold_pct`); the
    /// share of the window that must be loaded keeps its default.
    fn load_thresholds(&self) -> LoadThresholds {
        LoadThresholds {
            busy_permille: u16::from(self.busy_threshold_pct) * 10,
            psi_centi: u16::from(self.psi_threshold_pct) * 100,
            ..LoadThresholds::default()
        }
    }

    /// The self-throttling knobs (`busy_threshold_pct`, `cpu_budget_permille`,
    /// `sample_interval_ms`, `poll_interval_s`); the stretch factor keeps its default.
    fn throttle_settings(&self) -> ThrottleSettings {
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
        self.0.write_value(self.1, f)
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
            if key.kind() == Kind::OptionalPath && c.value_text(key).is_empty() {
                f.write_str(" (empty: off)")?;
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
                range.unit.name()
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

#[inline(never)] // one copy for every number type
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
                range.unit.name(),
                Config::default().value_text(key)
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
