//! RFC 3164 syslog lines to `/dev/log`: the [`log::Log`] swandog installs on a router.
//!
//! Each record becomes one datagram `<PRI>Mmm dd hh:mm:ss swandog[pid]: message`, formatted into
//! a fixed stack buffer ([`SYSLOG_LINE_MAX_BYTES`]; longer lines end in `...`) and sent on a
//! non-blocking Unix datagram socket, so logging never waits for syslogd and never allocates.
//!
//! * A line syslog cannot take (`/dev/log` missing at start, syslogd restarting, its buffer
//!   full) is held back in a fixed backlog ([`SYSLOG_BACKLOG_BYTES`]) as formatted, so with its
//!   own time and level, and sent once syslog takes lines again: before the next line, or on the
//!   main loop's tick ([`flush_held`]). The first line then delivered says how many were held and
//!   how many lost to a full backlog ([`Counters::dropped`]).
//! * A send error on a working socket (syslogd restarted: the old socket is gone) reconnects at
//!   once, so the line that finds syslogd back is delivered; after a failed attempt the next one
//!   waits [`SYSLOG_RECONNECT_INTERVAL_MS`]. Failed attempts are counted.
//! * stderr gets no syslog line, except on a terminal (shown there at once, while held back)
//!   and at exit when syslog never came back ([`finish`]: the warnings and errors). Without a
//!   time stamp, and without the `swandog:` tag when procd reads stderr: it adds both.
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
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use heapless::Deque;
use log::{Level, LevelFilter, Log, Metadata, Record};

use super::localtime::{civil_from_unix, Zone};
use crate::limits::{SYSLOG_BACKLOG_BYTES, SYSLOG_LINE_MAX_BYTES, SYSLOG_RECONNECT_INTERVAL_MS};

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
    /// Lines handed to syslogd (held-back lines included, once replayed).
    pub sent: u32,
    /// Lines that waited in the backlog because syslog could not take them at once.
    pub held: u32,
    /// Lines lost: the backlog was full.
    pub dropped: u32,
    /// Successful reconnections after syslogd went away.
    pub reconnects: u32,
    /// Connection attempts that failed.
    pub reconnect_failures: u32,
    /// Lines also written to stderr: to a terminal while syslog was away, or at exit when
    /// syslog never came back.
    pub to_stderr: u32,
}

/// What became of one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// In syslogd's socket.
    Sent,
    /// In the backlog, sent (with its own time stamp and level) once syslog takes lines again.
    Held,
    /// Lost and counted: the backlog was full.
    Dropped,
}

/// The connection to syslogd. One per logger.
#[derive(Debug, Default)]
struct LinkState {
    socket: Option<UnixDatagram>,
    /// The last failed connection attempt: the next one waits `reconnect_interval`.
    failed_at: Option<Instant>,
    ever_connected: bool,
}

impl LinkState {
    const fn new() -> LinkState {
        LinkState {
            socket: None,
            failed_at: None,
            ever_connected: false,
        }
    }
}

/// Lines held back while syslog cannot take them, oldest first, each a 2-byte length (little
/// endian) and the datagram as formatted when it was logged (priority and time stamp kept).
/// When full, newer lines are refused and counted: the oldest (the start-up line, the first
/// error) say most about what happened.
#[derive(Debug)]
pub struct Backlog {
    bytes: Deque<u8, SYSLOG_BACKLOG_BYTES>,
    lines: u32,
    /// Lines refused since the last announcement.
    lost: u32,
    /// When the oldest line now held (or lost) was logged.
    since_s: Option<i64>,
    /// Whether the notice in front of the held lines went out (it goes again only when more
    /// were lost since, so a slow syslogd does not get one per line).
    announced: bool,
}

const LENGTH_PREFIX_BYTES: usize = 2;

impl Default for Backlog {
    fn default() -> Backlog {
        Backlog::new()
    }
}

impl Backlog {
    /// Empty.
    pub const fn new() -> Backlog {
        Backlog {
            bytes: Deque::new(),
            lines: 0,
            lost: 0,
            since_s: None,
            announced: false,
        }
    }

    fn is_empty(&self) -> bool {
        self.lines == 0 && self.lost == 0
    }

    /// Holds `line`; false (and counted) when it does not fit.
    fn push(&mut self, line: &[u8], unix_s: i64) -> bool {
        self.since_s.get_or_insert(unix_s);
        let room = SYSLOG_BACKLOG_BYTES - self.bytes.len();
        if line.len() + LENGTH_PREFIX_BYTES > room {
            self.lost = self.lost.saturating_add(1);
            return false;
        }
        let len = u16::try_from(line.len()).unwrap_or(u16::MAX);
        for byte in len.to_le_bytes().into_iter().chain(line.iter().copied()) {
            let _ = self.bytes.push_back(byte);
        }
        self.lines += 1;
        true
    }

    /// Copies the oldest line into `buf`; returns its length.
    fn front(&self, buf: &mut [u8; SYSLOG_LINE_MAX_BYTES]) -> Option<usize> {
        let mut bytes = self.bytes.iter();
        let len = u16::from_le_bytes([*bytes.next()?, *bytes.next()?]);
        let len = usize::from(len).min(SYSLOG_LINE_MAX_BYTES);
        for (dst, src) in buf.iter_mut().zip(bytes.take(len)) {
            *dst = *src;
        }
        Some(len)
    }

    fn pop(&mut self) {
        let mut buf = [0; SYSLOG_LINE_MAX_BYTES];
        let len = self.front(&mut buf).unwrap_or(0);
        for _ in 0..len + LENGTH_PREFIX_BYTES {
            let _ = self.bytes.pop_front();
        }
        self.lines = self.lines.saturating_sub(1);
        if self.lines == 0 && self.lost == 0 {
            self.since_s = None;
            self.announced = false;
        }
    }
}

/// The backlog of `swandog run`'s logger: a `static` of its own, all zero, so it sits in `.bss` (no flash, no stack copy)
/// and never grows.
static PROCESS_BACKLOG: Mutex<Backlog> = Mutex::new(Backlog::new());

/// A `log::Log` speaking RFC 3164 to a Unix datagram socket. See the [module docs](self).
#[derive(Debug)]
pub struct SyslogLogger {
    path: PathBuf,
    ident: &'static str,
    pid: u32,
    zone: Zone,
    facility: AtomicU8,
    reconnect_interval: Duration,
    /// Whether stderr is a terminal: then lines held back are shown there too, at once.
    echo_to_terminal: bool,
    link: Mutex<LinkState>,
    backlog: &'static Mutex<Backlog>,
    sent: AtomicU32,
    held: AtomicU32,
    dropped: AtomicU32,
    reconnects: AtomicU32,
    reconnect_failures: AtomicU32,
    to_stderr: AtomicU32,
}

impl SyslogLogger {
    /// A logger for the socket at `path`, not connected yet ([`SyslogLogger::start`] connects),
    /// with this process's pid and the zone from `TZ` / `/etc/TZ`. Its backlog is allocated
    /// once, here.
    pub fn new(path: &Path, facility: Facility) -> SyslogLogger {
        SyslogLogger::with_backlog(path, facility, Box::leak(Box::default()))
    }

    /// A logger holding lines back in `backlog` (a `static` for the process's own logger).
    pub fn with_backlog(
        path: &Path,
        facility: Facility,
        backlog: &'static Mutex<Backlog>,
    ) -> SyslogLogger {
        SyslogLogger {
            path: path.to_path_buf(),
            ident: IDENT,
            pid: std::process::id(),
            zone: Zone::from_environment(),
            facility: AtomicU8::new(facility.code()),
            reconnect_interval: Duration::from_millis(SYSLOG_RECONNECT_INTERVAL_MS),
            echo_to_terminal: false,
            link: Mutex::new(LinkState::new()),
            backlog,
            sent: AtomicU32::new(0),
            held: AtomicU32::new(0),
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

    /// Waits at least `interval` after a failed connection attempt before the next one (tests
    /// use a short one).
    pub fn with_reconnect_interval(mut self, interval: Duration) -> SyslogLogger {
        self.reconnect_interval = interval;
        self
    }

    /// Also shows held-back lines on stderr at once (when it is a terminal).
    pub fn with_terminal_echo(mut self, echo: bool) -> SyslogLogger {
        self.echo_to_terminal = echo;
        self
    }

    /// Connects for the first time. When the socket is not there, lines are held back (and
    /// shown on a terminal) until a later attempt reaches syslog.
    pub fn start(&self) -> io::Result<()> {
        let mut link = self.lock_link();
        match connect(&self.path) {
            Ok(socket) => {
                link.socket = Some(socket);
                link.ever_connected = true;
                Ok(())
            }
            Err(err) => {
                link.failed_at = Some(Instant::now());
                self.reconnect_failures.fetch_add(1, Relaxed);
                if self.echo_to_terminal {
                    let _ = writeln!(
                        io::stderr().lock(),
                        "{}: syslog socket {} unavailable: {err}; lines are shown here and held \
                         back for syslog until it appears",
                        self.ident,
                        self.path.display(),
                    );
                }
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
            held: self.held.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            reconnect_failures: self.reconnect_failures.load(Relaxed),
            to_stderr: self.to_stderr.load(Relaxed),
        }
    }

    /// Lines held back now, waiting for syslog.
    pub fn held_lines(&self) -> u32 {
        self.lock_backlog().lines
    }

    /// Formats and sends one line now, after any held back before it; holds it when syslog
    /// cannot take it. Never blocks on syslogd.
    pub fn send(&self, level: Level, message: fmt::Arguments<'_>) -> Delivery {
        let mut line = Line::new();
        let unix_s = unix_now_s();
        let header_end = self.format(&mut line, level, unix_s, message);
        let bytes = line.finish();

        let mut link = self.lock_link();
        let mut held = self.lock_backlog();
        self.replay(&mut link, &mut held, false);
        if held.is_empty() {
            if let Some(socket) = link.socket.as_ref() {
                match socket.send(bytes) {
                    Ok(_) => return self.count_sent(),
                    Err(err) if is_congestion(&err) => {}
                    Err(_) => {
                        // syslogd went away (restarted: its old socket is dead). Try the new
                        // one at once: a restart must not cost the line that finds it back.
                        link.socket = None;
                        if self.try_connect(&mut link, true) {
                            if let Some(Ok(_)) = link.socket.as_ref().map(|s| s.send(bytes)) {
                                return self.count_sent();
                            }
                        }
                    }
                }
            }
        }
        if self.echo_to_terminal {
            self.write_stderr(level, &bytes[header_end..]);
        }
        if held.push(bytes, unix_s) {
            self.held.fetch_add(1, Relaxed);
            Delivery::Held
        } else {
            self.dropped.fetch_add(1, Relaxed);
            Delivery::Dropped
        }
    }

    /// Sends what the backlog holds, if syslog takes lines again (connecting when the last
    /// failed attempt is old enough). For the main loop's tick: held lines must not wait for
    /// the next line logged.
    pub fn flush(&self) {
        let mut link = self.lock_link();
        let mut held = self.lock_backlog();
        self.replay(&mut link, &mut held, false);
    }

    /// At exit: one last try to hand held lines to syslog; the warnings and errors that still
    /// could not be delivered go to stderr (the init system's log), the rest is counted there.
    pub fn finish(&self) {
        let mut link = self.lock_link();
        let mut backlog = self.lock_backlog();
        self.replay(&mut link, &mut backlog, true);
        if backlog.is_empty() {
            return;
        }
        let (held, lost) = (backlog.lines, backlog.lost);
        let mut err = io::stderr().lock();
        let _ = writeln!(
            err,
            "{}warning: syslog socket {} never came back: {held} lines held back for it{}; \
             its warnings and errors follow",
            stderr_tag(),
            self.path.display(),
            Lost(lost)
        );
        drop(err);
        let mut buf = [0; SYSLOG_LINE_MAX_BYTES];
        while let Some(len) = backlog.front(&mut buf) {
            let line = &buf[..len];
            if let Some((sev, message)) = split_datagram(line) {
                if sev <= severity(Level::Warn) {
                    let level = if sev <= severity(Level::Error) {
                        Level::Error
                    } else {
                        Level::Warn
                    };
                    self.write_stderr(level, message);
                }
            }
            backlog.pop();
        }
        *backlog = Backlog::new();
    }

    /// Hands held lines to syslog, oldest first, after one line saying how many were held and
    /// lost. Stops (keeping the rest) when syslog cannot take more. `now`: connect even if the
    /// last attempt failed just now.
    fn replay(&self, link: &mut LinkState, backlog: &mut Backlog, now: bool) {
        if backlog.is_empty() {
            return;
        }
        if link.socket.is_none() && !self.try_connect(link, now) {
            return;
        }
        let Some(open) = link.socket.as_ref() else {
            return;
        };
        let mut result = Ok(());
        if !backlog.announced || backlog.lost > 0 {
            let mut line = Line::new();
            let unix_s = unix_now_s();
            let away_s = (unix_s - backlog.since_s.unwrap_or(unix_s)).max(0);
            let level = if backlog.lost > 0 {
                Level::Warn
            } else {
                Level::Info
            };
            self.format(
                &mut line,
                level,
                unix_s,
                format_args!(
                    "syslog socket {} takes lines again after {away_s} s: the {} lines held \
                     back meanwhile follow, with their own time{}",
                    self.path.display(),
                    backlog.lines,
                    Lost(backlog.lost)
                ),
            );
            result = open.send(line.finish()).map(|_| {
                backlog.lost = 0;
                backlog.announced = true;
            });
            self.sent.fetch_add(u32::from(result.is_ok()), Relaxed);
        }
        let mut buf = [0; SYSLOG_LINE_MAX_BYTES];
        while result.is_ok() {
            let Some(len) = backlog.front(&mut buf) else {
                break;
            };
            result = open.send(&buf[..len]).map(|_| backlog.pop());
            self.sent.fetch_add(u32::from(result.is_ok()), Relaxed);
        }
        match result {
            Ok(()) => {
                backlog.since_s = None;
                backlog.announced = false;
            }
            // Congested: the rest waits. Gone: the next attempt reconnects.
            Err(err) if is_congestion(&err) => {}
            Err(_) => link.socket = None,
        }
    }

    /// `[swandog: ]level: message` on stderr, without a time stamp (procd and init add theirs).
    fn write_stderr(&self, level: Level, message: &[u8]) {
        let mut err = io::stderr().lock();
        let _ = write!(
            err,
            "{}{}: ",
            stderr_tag(),
            level.as_str().to_ascii_lowercase()
        );
        let _ = err.write_all(message);
        let _ = err.write_all(b"\n");
        self.to_stderr.fetch_add(1, Relaxed);
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

    // A panic while holding a lock leaves usable state behind. Lock order: link, then backlog.
    fn lock_link(&self) -> std::sync::MutexGuard<'_, LinkState> {
        self.link
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_backlog(&self) -> std::sync::MutexGuard<'_, Backlog> {
        self.backlog
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Connects unless the last attempt failed less than an interval ago (`now`: try anyway);
    /// true when a socket is ready.
    fn try_connect(&self, link: &mut LinkState, now: bool) -> bool {
        let at = Instant::now();
        if let (false, Some(failed)) = (now, link.failed_at) {
            if at.duration_since(failed) < self.reconnect_interval {
                return false;
            }
        }
        match connect(&self.path) {
            Ok(socket) => {
                link.socket = Some(socket);
                link.failed_at = None;
                if link.ever_connected {
                    self.reconnects.fetch_add(1, Relaxed);
                }
                link.ever_connected = true;
                true
            }
            Err(_) => {
                link.failed_at = Some(at);
                self.reconnect_failures.fetch_add(1, Relaxed);
                false
            }
        }
    }

    fn count_sent(&self) -> Delivery {
        self.sent.fetch_add(1, Relaxed);
        Delivery::Sent
    }
}

/// `; N more were lost (...)` when N > 0.
struct Lost(u32);

impl fmt::Display for Lost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => Ok(()),
            n => write!(
                f,
                "; {n} more were lost (backlog of {SYSLOG_BACKLOG_BYTES} bytes full)"
            ),
        }
    }
}

/// A formatted datagram's severity and message (after `ident[pid]: `).
fn split_datagram(line: &[u8]) -> Option<(u8, &[u8])> {
    let close = line.iter().position(|&b| b == b'>')?;
    let pri: u16 = core::str::from_utf8(line.get(1..close)?)
        .ok()?
        .parse()
        .ok()?;
    let tag_end = line.windows(3).position(|w| w == b"]: ")? + 3;
    Some(((pri % 8) as u8, &line[tag_end..]))
}

/// `swandog: ` in front of stderr lines, except when procd reads them: it tags them itself
/// (stderr is a pipe to our parent, pid 1).
pub fn stderr_tag() -> &'static str {
    use std::io::IsTerminal;
    if nix::unistd::getppid().as_raw() == 1 && !io::stderr().is_terminal() {
        ""
    } else {
        "swandog: "
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

    fn flush(&self) {
        SyslogLogger::flush(self);
    }
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

    /// Lines held back now, waiting for syslog (0 when logging to stderr).
    pub fn held_lines(&self) -> u32 {
        self.syslog.map_or(0, SyslogLogger::held_lines)
    }
}

/// Hands lines held back to syslog if it takes lines again; the main loop calls it on its
/// sampling tick, so held lines do not wait for the next line logged. Cheap when none are held.
pub fn flush_held() {
    if let Some(logger) = SYSLOG.get() {
        logger.flush();
    }
}

/// Lines the process's syslog logger holds back now (0 without one).
pub fn held_lines() -> u32 {
    SYSLOG.get().map_or(0, SyslogLogger::held_lines)
}

/// At exit: a last try to deliver held lines; the warnings and errors syslog never took go to
/// stderr. A no-op when nothing is held.
pub fn finish() {
    if let Some(logger) = SYSLOG.get() {
        logger.finish();
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
            use std::io::IsTerminal;
            let logger = SYSLOG.get_or_init(|| {
                SyslogLogger::with_backlog(socket, facility, &PROCESS_BACKLOG)
                    .with_terminal_echo(io::stderr().is_terminal())
            });
            log::set_logger(logger).map_err(InitError)?;
            log::set_max_level(level);
            // A missing socket is no error: lines are held back until it appears.
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

    fn recv_text(server: &UnixDatagram) -> String {
        let mut buf = [0u8; 600];
        let n = server.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn missing_socket_at_start_holds_lines_back_and_counts_them() {
        let l = logger();
        assert!(l.start().is_err());
        assert_eq!(l.send(Level::Info, format_args!("hello")), Delivery::Held);
        assert_eq!(l.held_lines(), 1);
        let c = l.counters();
        assert_eq!(
            (c.held, c.to_stderr, c.sent, c.dropped, c.reconnect_failures),
            (1, 0, 0, 0, 1)
        );
    }

    #[test]
    fn lines_held_at_start_reach_syslog_later_with_their_level_and_time_after_a_notice() {
        let dir = test_dir("appears");
        let path = dir.join("log");
        let l = SyslogLogger::new(&path, Facility::Daemon).with_reconnect_interval(Duration::ZERO);
        assert!(l.start().is_err());
        assert_eq!(
            l.send(Level::Debug, format_args!("early debug")),
            Delivery::Held
        );
        assert_eq!(
            l.send(Level::Error, format_args!("early error")),
            Delivery::Held
        );
        let server = UnixDatagram::bind(&path).unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        assert_eq!(
            l.send(Level::Warn, format_args!("now in syslog")),
            Delivery::Sent
        );
        let notice = recv_text(&server);
        assert!(notice.starts_with("<30>"), "{notice}");
        assert!(
            notice.contains("the 2 lines held back meanwhile follow"),
            "{notice}"
        );
        let first = recv_text(&server);
        assert!(
            first.starts_with("<31>") && first.ends_with("]: early debug"),
            "{first}"
        );
        let second = recv_text(&server);
        assert!(
            second.starts_with("<27>") && second.ends_with("]: early error"),
            "{second}"
        );
        let third = recv_text(&server);
        assert!(
            third.starts_with("<28>") && third.ends_with("]: now in syslog"),
            "{third}"
        );
        assert_eq!(l.held_lines(), 0);
        let c = l.counters();
        // The first connection is not a *re*connection.
        assert_eq!((c.sent, c.held, c.dropped, c.reconnects), (4, 2, 0, 0));
    }

    #[test]
    fn flush_delivers_held_lines_without_a_new_line() {
        let dir = test_dir("flush");
        let path = dir.join("log");
        let l = SyslogLogger::new(&path, Facility::Daemon).with_reconnect_interval(Duration::ZERO);
        assert!(l.start().is_err());
        l.send(Level::Info, format_args!("waiting"));
        l.flush();
        assert_eq!(l.held_lines(), 1, "nobody listens yet");
        let server = UnixDatagram::bind(&path).unwrap();
        l.flush();
        assert!(recv_text(&server).contains("1 lines held back"));
        assert!(recv_text(&server).ends_with("]: waiting"));
        assert_eq!(l.held_lines(), 0);
    }

    #[test]
    fn a_full_backlog_counts_the_lost_lines_and_says_so_in_the_first_line_delivered() {
        let dir = test_dir("overflow");
        let path = dir.join("log");
        let l = SyslogLogger::new(&path, Facility::Daemon).with_reconnect_interval(Duration::ZERO);
        assert!(l.start().is_err());
        let long = "y".repeat(200);
        let mut held = 0;
        let mut lost = 0;
        for i in 0..100 {
            match l.send(Level::Info, format_args!("{i} {long}")) {
                Delivery::Held => held += 1,
                Delivery::Dropped => lost += 1,
                Delivery::Sent => panic!("nobody listens"),
            }
        }
        assert!(held > 10 && lost > 0, "{held} held, {lost} lost");
        assert_eq!(l.counters().dropped, lost);
        let server = UnixDatagram::bind(&path).unwrap();
        // The receive queue of a fresh socket is short: read while flushing.
        l.flush();
        let notice = recv_text(&server);
        assert!(
            notice.starts_with("<28>"),
            "lost lines make it a warning: {notice}"
        );
        assert!(
            notice.contains(&format!("the {held} lines held back"))
                && notice.contains(&format!("; {lost} more were lost (backlog of")),
            "{notice}"
        );
        // The oldest are kept: the first held line is line 0.
        assert!(recv_text(&server).contains("]: 0 yyy"));
    }

    #[test]
    fn full_socket_buffer_holds_lines_instead_of_blocking_then_counts_them_lost() {
        let dir = test_dir("full");
        let path = dir.join("log");
        // A server that never reads. The sends run on their own thread and must be done within
        // the bound: a blocking send fails the test instead of hanging it. The bound only has to
        // be finite; it is wide because a debug build under qemu on a loaded machine takes
        // several seconds.
        let _server = UnixDatagram::bind(&path).unwrap();
        let (done, result) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let l = SyslogLogger::new(&path, Facility::Daemon);
            l.start().unwrap();
            let (mut dropped, mut held) = (0, 0);
            for i in 0..5_000 {
                match l.send(Level::Info, format_args!("line {i}")) {
                    Delivery::Dropped => dropped += 1,
                    Delivery::Held => held += 1,
                    Delivery::Sent => {}
                }
            }
            let _ = done.send((dropped, held, l.counters()));
        });
        let (dropped, held, counters) = result
            .recv_timeout(Duration::from_secs(60))
            .expect("5 000 sends to a full socket did not finish within 60 s: a send blocks");
        assert!(held > 0, "the receive queue never filled");
        assert!(dropped > 0, "the backlog never filled");
        assert_eq!(counters.dropped, dropped);
        assert_eq!(
            counters.reconnect_failures, 0,
            "congestion is not a dead syslogd"
        );
    }

    #[test]
    fn restarted_syslogd_gets_the_next_line_at_once_even_right_after_a_failed_attempt() {
        let dir = test_dir("restart");
        let path = dir.join("log");
        let first = UnixDatagram::bind(&path).unwrap();
        // An hour between attempts after a failure: only the immediate reconnect can deliver.
        let l = SyslogLogger::new(&path, Facility::Daemon)
            .with_reconnect_interval(Duration::from_secs(3600));
        l.start().unwrap();
        assert_eq!(l.send(Level::Info, format_args!("one")), Delivery::Sent);
        drop(first);
        std::fs::remove_file(&path).unwrap();
        let second = UnixDatagram::bind(&path).unwrap();
        second
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        assert_eq!(l.send(Level::Info, format_args!("two")), Delivery::Sent);
        assert!(recv_text(&second).ends_with("]: two"));
        let c = l.counters();
        assert_eq!((c.sent, c.reconnects, c.dropped, c.held), (2, 1, 0, 0));
    }

    #[test]
    fn reconnect_attempts_are_throttled_while_syslogd_is_away_and_lines_are_held() {
        let dir = test_dir("throttle");
        let path = dir.join("log");
        let server = UnixDatagram::bind(&path).unwrap();
        let l = SyslogLogger::new(&path, Facility::Daemon)
            .with_reconnect_interval(Duration::from_secs(3600));
        l.start().unwrap();
        drop(server);
        std::fs::remove_file(&path).unwrap();
        for _ in 0..20 {
            assert_eq!(l.send(Level::Info, format_args!("held")), Delivery::Held);
        }
        let c = l.counters();
        assert_eq!((c.held, c.dropped), (20, 0));
        assert_eq!(
            c.reconnect_failures, 1,
            "one immediate attempt when the socket died, then none within the interval"
        );
    }

    #[test]
    fn datagrams_split_into_severity_and_message() {
        let line = formatted(&logger(), Level::Warn, 0, format_args!("a: b]: c"));
        assert_eq!(split_datagram(line.as_bytes()), Some((4, &b"a: b]: c"[..])));
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
