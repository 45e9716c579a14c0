//! RFC 3164 syslog lines to `/dev/log`: the [`log::Log`] swandog installs on a router.
//!
//! Each record becomes one datagram `<PRI>Mmm dd hh:mm:ss swandog[pid]: message`, formatted into
//! a fixed stack buffer ([`SYSLOG_LINE_MAX_BYTES`]; longer lines end in `...`) and sent on a
//! non-blocking Unix datagram socket, so logging never waits for syslogd and never allocates.
//!
//! * A full socket buffer drops the line and counts it ([`Counters::dropped`]).
//! * A send error (syslogd restarted: the old socket is gone) reconnects once and retries;
//!   attempts are at most one per [`SYSLOG_RECONNECT_INTERVAL_MS`], failed ones are counted.
//! * When the socket is missing at start (`/dev/log` before syslogd runs, as in a busybox
//!   `inittab` where both start together), lines go to stderr, said once, until syslog appears.
//!
//! ```no_run
//! use swandog::report::syslog::{self, Facility, LogTarget};
//!
//! let handle = syslog::init(LogTarget::Syslog, Facility::Daemon, log::LevelFilter::Info)
//!     .expect("first and only logger");
//! log::info!("con1: child up");          // → <30>Jul  1 14:00:00 swandog[812]: con1: child up
//! let lost = handle.counters().dropped;  // for `swandog status`
//! # let _ = lost;
//! ```

use core::fmt::{self, Write as _};
use std::io::{self, Write as _};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};

use super::localtime::{civil_from_unix, Zone};
use crate::limits::{SYSLOG_LINE_MAX_BYTES, SYSLOG_RECONNECT_INTERVAL_MS};

/// Where syslogd listens on Linux, busybox and OpenWrt alike.
pub const DEFAULT_SOCKET_PATH: &str = "/dev/log";
/// The tag in front of every line.
pub const IDENT: &str = "swandog";

const MONTH_ABBREVIATIONS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const TRUNCATION_MARK: &[u8] = b"...";

/// Where log lines go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogTarget {
    /// RFC 3164 datagrams to `/dev/log` (read with `logread`); stderr while it is missing.
    Syslog,
    /// Plain lines on stderr (simple_logger), for running in the foreground.
    Stderr,
}

impl LogTarget {
    /// Every target, in the order help texts list them.
    pub const ALL: [LogTarget; 2] = [LogTarget::Syslog, LogTarget::Stderr];

    /// The name used in flags and the config file.
    pub fn name(self) -> &'static str {
        match self {
            LogTarget::Syslog => "syslog",
            LogTarget::Stderr => "stderr",
        }
    }

    /// The target called `name` (`syslog`, `stderr`).
    pub fn from_name(name: &str) -> Option<LogTarget> {
        LogTarget::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// The syslog facilities an operator may pick for swandog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Facility {
    /// `user` (1).
    User,
    /// `daemon` (3), the default: where strongSwan's own lines go.
    Daemon,
    /// `local0` (16) … `local7` (23): for routing swandog to its own file or remote host.
    Local(u8),
}

impl Facility {
    /// Every facility, in the order help texts list them.
    pub const ALL: [Facility; 10] = [
        Facility::Daemon,
        Facility::User,
        Facility::Local(0),
        Facility::Local(1),
        Facility::Local(2),
        Facility::Local(3),
        Facility::Local(4),
        Facility::Local(5),
        Facility::Local(6),
        Facility::Local(7),
    ];

    /// The facility number (RFC 3164 table 1).
    pub fn code(self) -> u8 {
        match self {
            Facility::User => 1,
            Facility::Daemon => 3,
            Facility::Local(n) => 16 + n.min(7),
        }
    }

    /// The name used in flags and the config file.
    pub fn name(self) -> &'static str {
        const LOCAL: [&str; 8] = [
            "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
        ];
        match self {
            Facility::User => "user",
            Facility::Daemon => "daemon",
            Facility::Local(n) => LOCAL[usize::from(n.min(7))],
        }
    }

    /// The facility called `name` (`daemon`, `user`, `local0` … `local7`).
    pub fn from_name(name: &str) -> Option<Facility> {
        Facility::ALL.into_iter().find(|f| f.name() == name)
    }

    fn from_code(code: u8) -> Facility {
        match code {
            1 => Facility::User,
            16..=23 => Facility::Local(code - 16),
            _ => Facility::Daemon,
        }
    }
}

/// The syslog severity of a log level: error 3, warning 4, info 6, debug and trace 7.
pub fn severity(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// What the logger has done since it started, for `swandog status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Lines handed to syslogd.
    pub sent: u32,
    /// Lines lost: socket buffer full, or syslogd gone and not back yet.
    pub dropped: u32,
    /// Successful reconnections after syslogd went away.
    pub reconnects: u32,
    /// Connection attempts that failed.
    pub reconnect_failures: u32,
    /// Lines written to stderr because syslog was not there yet at start.
    pub to_stderr: u32,
}

/// What became of one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// In syslogd's socket.
    Sent,
    /// On stderr, because syslog has not been reachable since start.
    Stderr,
    /// Lost and counted.
    Dropped,
}

/// A `log::Log` speaking RFC 3164 to a Unix datagram socket. See the [module docs](self).
#[derive(Debug)]
pub struct SyslogLogger {
    path: PathBuf,
    ident: &'static str,
    pid: u32,
    zone: Zone,
    facility: AtomicU8,
    reconnect_interval: Duration,
    /// True from a failed first connection until the first success.
    stderr_fallback: AtomicBool,
    link: Mutex<Link>,
    sent: AtomicU32,
    dropped: AtomicU32,
    reconnects: AtomicU32,
    reconnect_failures: AtomicU32,
    to_stderr: AtomicU32,
}

#[derive(Debug, Default)]
struct Link {
    socket: Option<UnixDatagram>,
    last_attempt: Option<Instant>,
    ever_connected: bool,
}

impl SyslogLogger {
    /// A logger for the socket at `path`, not connected yet ([`SyslogLogger::start`] connects),
    /// with this process's pid and the zone from `TZ` / `/etc/TZ`.
    pub fn new(path: &Path, facility: Facility) -> SyslogLogger {
        SyslogLogger {
            path: path.to_path_buf(),
            ident: IDENT,
            pid: std::process::id(),
            zone: Zone::from_environment(),
            facility: AtomicU8::new(facility.code()),
            reconnect_interval: Duration::from_millis(SYSLOG_RECONNECT_INTERVAL_MS),
            stderr_fallback: AtomicBool::new(false),
            link: Mutex::new(Link::default()),
            sent: AtomicU32::new(0),
            dropped: AtomicU32::new(0),
            reconnects: AtomicU32::new(0),
            reconnect_failures: AtomicU32::new(0),
            to_stderr: AtomicU32::new(0),
        }
    }

    /// Uses `zone` for timestamps instead of the environment's.
    pub fn with_zone(mut self, zone: Zone) -> SyslogLogger {
        self.zone = zone;
        self
    }

    /// Waits at least `interval` between connection attempts (tests use a short one).
    pub fn with_reconnect_interval(mut self, interval: Duration) -> SyslogLogger {
        self.reconnect_interval = interval;
        self
    }

    /// Connects for the first time. When the socket is not there, says so once on stderr and
    /// sends lines to stderr until a later attempt reaches syslog.
    pub fn start(&self) -> io::Result<()> {
        let mut link = self.lock_link();
        link.last_attempt = Some(Instant::now());
        match connect(&self.path) {
            Ok(socket) => {
                link.socket = Some(socket);
                link.ever_connected = true;
                Ok(())
            }
            Err(err) => {
                self.reconnect_failures.fetch_add(1, Relaxed);
                self.stderr_fallback.store(true, Relaxed);
                let _ = writeln!(
                    io::stderr().lock(),
                    "{}[{}]: syslog socket {} unavailable: {err}; logging to stderr until it appears",
                    self.ident,
                    self.pid,
                    self.path.display(),
                );
                Err(err)
            }
        }
    }

    /// Changes the facility of the following lines (on SIGHUP).
    pub fn set_facility(&self, facility: Facility) {
        self.facility.store(facility.code(), Relaxed);
    }

    /// The facility lines are sent with.
    pub fn facility(&self) -> Facility {
        Facility::from_code(self.facility.load(Relaxed))
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> Counters {
        Counters {
            sent: self.sent.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            reconnect_failures: self.reconnect_failures.load(Relaxed),
            to_stderr: self.to_stderr.load(Relaxed),
        }
    }

    /// True while lines go to stderr because syslog has not been reachable since start.
    pub fn is_on_stderr(&self) -> bool {
        self.stderr_fallback.load(Relaxed)
    }

    /// Formats and sends one line now. Never blocks on syslogd.
    pub fn send(&self, level: Level, message: fmt::Arguments<'_>) -> Delivery {
        let mut line = Line::new();
        let header_end = self.format(&mut line, level, unix_now_s(), message);
        let bytes = line.finish();

        let mut link = self.lock_link();
        if link.socket.is_none() && !self.try_connect(&mut link) {
            return self.undeliverable(bytes, header_end, level);
        }
        let Some(socket) = link.socket.as_ref() else {
            return self.undeliverable(bytes, header_end, level);
        };
        match socket.send(bytes) {
            Ok(_) => return self.count_sent(),
            Err(err) if is_congestion(&err) => return self.count_dropped(),
            Err(_) => link.socket = None, // syslogd went away: its old socket is dead
        }
        if !self.try_connect(&mut link) {
            return self.count_dropped();
        }
        match link.socket.as_ref().map(|s| s.send(bytes)) {
            Some(Ok(_)) => self.count_sent(),
            _ => self.count_dropped(),
        }
    }

    /// Writes `<PRI>Mmm dd hh:mm:ss ident[pid]: message` into `line`; returns where the message
    /// starts.
    fn format(
        &self,
        line: &mut Line,
        level: Level,
        unix_s: i64,
        message: fmt::Arguments<'_>,
    ) -> usize {
        let local = civil_from_unix(unix_s + i64::from(self.zone.offset_at(unix_s)));
        let pri = u16::from(self.facility.load(Relaxed)) * 8 + u16::from(severity(level));
        let month = MONTH_ABBREVIATIONS[usize::from(local.month.clamp(1, 12) - 1)];
        // The header always fits: it is far shorter than the buffer.
        let _ = write!(
            line,
            "<{pri}>{month} {:>2} {:02}:{:02}:{:02} {}[{}]: ",
            local.day, local.hour, local.minute, local.second, self.ident, self.pid
        );
        let header_end = line.len;
        let _ = line.write_fmt(message);
        header_end
    }

    fn lock_link(&self) -> std::sync::MutexGuard<'_, Link> {
        // A panic while holding the lock leaves a usable Link behind.
        self.link
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Connects if the last attempt is old enough; true when a socket is ready.
    fn try_connect(&self, link: &mut Link) -> bool {
        let now = Instant::now();
        if let Some(last) = link.last_attempt {
            if now.duration_since(last) < self.reconnect_interval {
                return false;
            }
        }
        link.last_attempt = Some(now);
        match connect(&self.path) {
            Ok(socket) => {
                if self.stderr_fallback.swap(false, Relaxed) {
                    self.announce_syslog_reachable(&socket);
                }
                link.socket = Some(socket);
                if link.ever_connected {
                    self.reconnects.fetch_add(1, Relaxed);
                }
                link.ever_connected = true;
                true
            }
            Err(_) => {
                self.reconnect_failures.fetch_add(1, Relaxed);
                false
            }
        }
    }

    /// Says on both sides that the stderr fallback is over, so neither reader wonders.
    fn announce_syslog_reachable(&self, socket: &UnixDatagram) {
        let path = self.path.display();
        let on_stderr = self.to_stderr.load(Relaxed);
        let _ = writeln!(
            io::stderr().lock(),
            "{}[{}]: syslog socket {path} is up; logging there from now on",
            self.ident,
            self.pid,
        );
        let mut line = Line::new();
        let unix_s = unix_now_s();
        self.format(
            &mut line,
            Level::Info,
            unix_s,
            format_args!("logging to {path} now; the first {on_stderr} lines went to stderr"),
        );
        if socket.send(line.finish()).is_ok() {
            self.sent.fetch_add(1, Relaxed);
        }
    }

    fn undeliverable(&self, line: &[u8], header_end: usize, level: Level) -> Delivery {
        if !self.stderr_fallback.load(Relaxed) {
            return self.count_dropped();
        }
        // `Mmm dd hh:mm:ss swandog[pid]: WARN message`, without the <PRI>.
        let stamp_start = line.iter().position(|&b| b == b'>').map_or(0, |i| i + 1);
        let mut err = io::stderr().lock();
        let _ = err.write_all(&line[stamp_start..header_end]);
        let _ = write!(err, "{level}: ");
        let _ = err.write_all(&line[header_end..]);
        let _ = err.write_all(b"\n");
        self.to_stderr.fetch_add(1, Relaxed);
        Delivery::Stderr
    }

    fn count_sent(&self) -> Delivery {
        self.sent.fetch_add(1, Relaxed);
        Delivery::Sent
    }

    fn count_dropped(&self) -> Delivery {
        self.dropped.fetch_add(1, Relaxed);
        Delivery::Dropped
    }
}

impl Log for SyslogLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            self.send(record.level(), *record.args());
        }
    }

    fn flush(&self) {}
}

/// Wall-clock seconds since 1970 (0 if the clock is before it, as on a router without RTC).
fn unix_now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2))
}

fn connect(path: &Path) -> io::Result<UnixDatagram> {
    let socket = UnixDatagram::unbound()?;
    socket.connect(path)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// Errors that mean "syslogd is slow", not "syslogd is gone": drop the line, keep the socket.
fn is_congestion(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::WouldBlock || err.raw_os_error() == Some(nix::libc::ENOBUFS)
}

/// One datagram being formatted: a fixed buffer that cuts at a character boundary and turns
/// control characters (a newline would split the line in syslogd) into spaces.
struct Line {
    buf: [u8; SYSLOG_LINE_MAX_BYTES],
    len: usize,
    truncated: bool,
}

impl Line {
    fn new() -> Line {
        Line {
            buf: [0; SYSLOG_LINE_MAX_BYTES],
            len: 0,
            truncated: false,
        }
    }

    /// The bytes to send; a cut line ends in `...`.
    fn finish(&mut self) -> &[u8] {
        if self.truncated {
            let mut end = self.len.min(SYSLOG_LINE_MAX_BYTES - TRUNCATION_MARK.len());
            while end > 0 && is_utf8_continuation(self.buf[end]) {
                end -= 1;
            }
            self.buf[end..end + TRUNCATION_MARK.len()].copy_from_slice(TRUNCATION_MARK);
            self.len = end + TRUNCATION_MARK.len();
        }
        &self.buf[..self.len]
    }
}

fn is_utf8_continuation(byte: u8) -> bool {
    byte & 0b1100_0000 == 0b1000_0000
}

impl fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = SYSLOG_LINE_MAX_BYTES - self.len;
        let mut take = s.len().min(room);
        if take < s.len() {
            self.truncated = true;
            while !s.is_char_boundary(take) {
                take -= 1;
            }
        }
        for (dst, &src) in self.buf[self.len..self.len + take]
            .iter_mut()
            .zip(s.as_bytes())
        {
            *dst = if src < 0x20 || src == 0x7f { b' ' } else { src };
        }
        self.len += take;
        Ok(())
    }
}

/// `--log stderr`: simple_logger's lines, each first passed through a syslog [`Line`]: control
/// characters (a name with a newline or a terminal escape in it) become spaces and an overlong
/// line is cut, as in syslog. No allocation per line.
struct CleanStderr(simple_logger::SimpleLogger);

impl Log for CleanStderr {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut line = Line::new();
        let _ = line.write_fmt(*record.args());
        let text = core::str::from_utf8(line.finish()).unwrap_or("(not UTF-8)");
        self.0.log(
            &Record::builder()
                .args(format_args!("{text}"))
                .metadata(record.metadata().clone())
                .module_path(record.module_path())
                .file(record.file())
                .line(record.line())
                .build(),
        );
    }

    fn flush(&self) {
        self.0.flush();
    }
}

static SYSLOG: OnceLock<SyslogLogger> = OnceLock::new();
static STDERR: OnceLock<CleanStderr> = OnceLock::new();

/// Why [`init`] could not install a logger.
#[derive(Debug)]
pub struct InitError(log::SetLoggerError);

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot install the logger: {}", self.0)
    }
}

impl std::error::Error for InitError {}

/// What [`init`] installed; cheap to copy, for status and SIGHUP.
#[derive(Clone, Copy, Debug)]
pub struct LogHandle {
    syslog: Option<&'static SyslogLogger>,
}

impl LogHandle {
    /// The syslog counters (all zero when logging to stderr).
    pub fn counters(&self) -> Counters {
        self.syslog.map(SyslogLogger::counters).unwrap_or_default()
    }

    /// Changes the facility of the following lines (SIGHUP with a new `syslog_facility`).
    pub fn set_facility(&self, facility: Facility) {
        if let Some(logger) = self.syslog {
            logger.set_facility(facility);
        }
    }

    /// Changes the most verbose level logged (SIGHUP with a new `log_level`).
    pub fn set_level(&self, level: LevelFilter) {
        log::set_max_level(level);
    }

    /// The target chosen at [`init`]; a change needs a restart.
    pub fn target(&self) -> LogTarget {
        match self.syslog {
            Some(_) => LogTarget::Syslog,
            None => LogTarget::Stderr,
        }
    }

    /// True while syslog lines go to stderr because `/dev/log` has not appeared yet.
    pub fn is_on_stderr(&self) -> bool {
        self.syslog.is_none_or(SyslogLogger::is_on_stderr)
    }
}

/// Installs the process-wide logger: syslog at [`DEFAULT_SOCKET_PATH`] or simple_logger on stderr.
pub fn init(
    target: LogTarget,
    facility: Facility,
    level: LevelFilter,
) -> Result<LogHandle, InitError> {
    init_at(Path::new(DEFAULT_SOCKET_PATH), target, facility, level)
}

/// [`init`] with another socket path (tests, chroots).
pub fn init_at(
    socket: &Path,
    target: LogTarget,
    facility: Facility,
    level: LevelFilter,
) -> Result<LogHandle, InitError> {
    match target {
        LogTarget::Stderr => {
            // Filtered by log::max_level instead, so SIGHUP can change it.
            let logger = STDERR.get_or_init(|| {
                CleanStderr(simple_logger::SimpleLogger::new().with_level(LevelFilter::Trace))
            });
            log::set_logger(logger).map_err(InitError)?;
            log::set_max_level(level);
            Ok(LogHandle { syslog: None })
        }
        LogTarget::Syslog => {
            let logger = SYSLOG.get_or_init(|| SyslogLogger::new(socket, facility));
            log::set_logger(logger).map_err(InitError)?;
            log::set_max_level(level);
            // A missing socket is no error: the logger says so and uses stderr meanwhile.
            let _ = logger.start();
            Ok(LogHandle {
                syslog: Some(logger),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn formatted(
        logger: &SyslogLogger,
        level: Level,
        unix_s: i64,
        message: fmt::Arguments<'_>,
    ) -> String {
        let mut line = Line::new();
        logger.format(&mut line, level, unix_s, message);
        String::from_utf8(line.finish().to_vec()).unwrap()
    }

    fn logger() -> SyslogLogger {
        let mut logger =
            SyslogLogger::new(Path::new("/nonexistent/log"), Facility::Daemon).with_zone(Zone::UTC);
        logger.pid = 812;
        logger
    }

    #[test]
    fn line_has_rfc3164_header_with_space_padded_day() {
        let line = formatted(
            &logger(),
            Level::Info,
            1_704_164_645,
            format_args!("con1: child up"),
        );
        // 2024-01-02 03:04:05 UTC
        assert_eq!(line, "<30>Jan  2 03:04:05 swandog[812]: con1: child up");
    }

    #[test]
    fn priority_combines_facility_and_severity() {
        let l = logger();
        assert!(
            formatted(&l, Level::Error, 0, format_args!("x")).starts_with("<27>Jan  1 00:00:00 ")
        );
        assert!(formatted(&l, Level::Warn, 0, format_args!("x")).starts_with("<28>"));
        assert!(formatted(&l, Level::Debug, 0, format_args!("x")).starts_with("<31>"));
        assert!(formatted(&l, Level::Trace, 0, format_args!("x")).starts_with("<31>"));
        l.set_facility(Facility::Local(7));
        assert!(formatted(&l, Level::Info, 0, format_args!("x")).starts_with("<190>"));
        l.set_facility(Facility::User);
        assert!(formatted(&l, Level::Error, 0, format_args!("x")).starts_with("<11>"));
    }

    #[test]
    fn timestamp_is_in_the_configured_zone() {
        let l = logger().with_zone(Zone::from_posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap());
        // 2024-07-01 12:00:00 UTC is 14:00 in Berlin.
        let line = formatted(&l, Level::Info, 1_719_835_200, format_args!("x"));
        assert!(line.starts_with("<30>Jul  1 14:00:00 "), "{line}");
    }

    #[test]
    fn long_messages_are_cut_to_the_buffer_and_marked() {
        let long = "x".repeat(2 * SYSLOG_LINE_MAX_BYTES);
        let line = formatted(&logger(), Level::Info, 0, format_args!("{long}"));
        assert_eq!(line.len(), SYSLOG_LINE_MAX_BYTES);
        assert!(line.ends_with("x..."));
    }

    #[test]
    fn cutting_never_splits_a_multibyte_character() {
        let long = "é".repeat(SYSLOG_LINE_MAX_BYTES);
        let line = formatted(&logger(), Level::Info, 0, format_args!("{long}"));
        assert!(line.len() <= SYSLOG_LINE_MAX_BYTES);
        assert!(line.ends_with("é..."), "{line}");
    }

    #[test]
    fn control_characters_become_spaces_so_one_record_is_one_line() {
        let line = formatted(&logger(), Level::Info, 0, format_args!("a\nb\tc\u{7f}d"));
        assert!(line.ends_with(": a b c d"), "{line}");
    }

    #[test]
    fn facility_and_target_names_round_trip() {
        for f in Facility::ALL {
            assert_eq!(Facility::from_name(f.name()), Some(f));
            assert_eq!(Facility::from_code(f.code()), f);
        }
        assert_eq!(Facility::from_name("local8"), None);
        assert_eq!(Facility::from_name("kern"), None);
        assert_eq!(Facility::Local(0).code(), 16);
        for t in LogTarget::ALL {
            assert_eq!(LogTarget::from_name(t.name()), Some(t));
        }
    }

    #[test]
    fn missing_socket_at_start_falls_back_to_stderr_and_counts_it() {
        let l = logger();
        assert!(l.start().is_err());
        assert!(l.is_on_stderr());
        assert_eq!(l.send(Level::Info, format_args!("hello")), Delivery::Stderr);
        let c = l.counters();
        assert_eq!(
            (c.to_stderr, c.sent, c.dropped, c.reconnect_failures),
            (1, 0, 0, 1)
        );
    }

    #[test]
    fn socket_appearing_later_ends_the_stderr_fallback() {
        let dir = test_dir("appears");
        let path = dir.join("log");
        let l = SyslogLogger::new(&path, Facility::Daemon).with_reconnect_interval(Duration::ZERO);
        assert!(l.start().is_err());
        let server = UnixDatagram::bind(&path).unwrap();
        assert_eq!(
            l.send(Level::Warn, format_args!("now in syslog")),
            Delivery::Sent
        );
        assert!(!l.is_on_stderr());
        let mut buf = [0u8; 600];
        let n = server.recv(&mut buf).unwrap();
        let notice = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(
            notice.ends_with("; the first 0 lines went to stderr"),
            "{notice}"
        );
        let n = server.recv(&mut buf).unwrap();
        assert!(std::str::from_utf8(&buf[..n])
            .unwrap()
            .ends_with("]: now in syslog"));
        // The first connection is not a *re*connection.
        assert_eq!(l.counters().reconnects, 0);
    }

    #[test]
    fn full_socket_buffer_drops_lines_instead_of_blocking() {
        let dir = test_dir("full");
        let path = dir.join("log");
        let _server = UnixDatagram::bind(&path).unwrap(); // never reads
        let l = SyslogLogger::new(&path, Facility::Daemon);
        l.start().unwrap();
        let started = Instant::now();
        let mut dropped = 0;
        for i in 0..5_000 {
            if l.send(Level::Info, format_args!("line {i}")) == Delivery::Dropped {
                dropped += 1;
            }
        }
        assert!(dropped > 0, "the receive queue never filled");
        assert_eq!(l.counters().dropped, dropped);
        assert_eq!(
            l.counters().reconnect_failures,
            0,
            "congestion is not a dead syslogd"
        );
        // A blocking send would hang here for good; the bound only has to be finite. It is wide
        // because a debug build under qemu on a loaded machine takes several seconds.
        assert!(started.elapsed() < Duration::from_secs(60));
    }

    #[test]
    fn restarted_syslogd_is_reconnected_and_the_line_retried() {
        let dir = test_dir("restart");
        let path = dir.join("log");
        let first = UnixDatagram::bind(&path).unwrap();
        let l = SyslogLogger::new(&path, Facility::Daemon).with_reconnect_interval(Duration::ZERO);
        l.start().unwrap();
        assert_eq!(l.send(Level::Info, format_args!("one")), Delivery::Sent);
        drop(first);
        std::fs::remove_file(&path).unwrap();
        let second = UnixDatagram::bind(&path).unwrap();
        assert_eq!(l.send(Level::Info, format_args!("two")), Delivery::Sent);
        let mut buf = [0u8; 600];
        let n = second.recv(&mut buf).unwrap();
        assert!(std::str::from_utf8(&buf[..n]).unwrap().ends_with("]: two"));
        let c = l.counters();
        assert_eq!((c.sent, c.reconnects, c.dropped), (2, 1, 0));
    }

    #[test]
    fn reconnect_attempts_are_throttled_while_syslogd_is_away() {
        let dir = test_dir("throttle");
        let path = dir.join("log");
        let server = UnixDatagram::bind(&path).unwrap();
        let l = SyslogLogger::new(&path, Facility::Daemon)
            .with_reconnect_interval(Duration::from_secs(3600));
        l.start().unwrap();
        drop(server);
        std::fs::remove_file(&path).unwrap();
        for _ in 0..100 {
            assert_eq!(l.send(Level::Info, format_args!("lost")), Delivery::Dropped);
        }
        let c = l.counters();
        assert_eq!(c.dropped, 100);
        assert_eq!(
            c.reconnect_failures, 0,
            "the start attempt was too recent to try again"
        );
    }

    /// A fresh directory, removed again when dropped.
    struct TestDir(PathBuf);

    impl TestDir {
        fn join(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn test_dir(name: &str) -> TestDir {
        let dir =
            std::env::temp_dir().join(format!("swandog-syslog-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TestDir(dir)
    }
}
