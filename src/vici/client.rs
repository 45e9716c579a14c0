//! The VICI client on smol: one connection for commands, one for events, a hard timeout on every
//! call (a wedged charon must never hang swandog), and reconnection after the socket vanishes.
//!
//! Each connection owns one fixed receive buffer ([`VICI_RECV_BUFFER_BYTES`]); a frame larger than
//! that (but within charon's 512 KiB) is skipped whole, counted and reported, so the stream stays
//! in step without growing memory.
//!
//! ```no_run
//! # smol::block_on(async {
//! use swandog::vici::client::{Commands, Uri};
//! let uri = Uri::parse("unix:///var/run/charon.vici").unwrap();
//! let mut commands = Commands::new(&uri);
//! let version = commands.version().await.unwrap();
//! println!("{} {}", version.daemon, version.version);
//! # });
//! ```

use std::io;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use heapless::String;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::{Async, Timer};

use super::sa::{is_safe_name, lossy_truncated, top_value, Conn, Event, IkeSa, LogLine, ViewError};
use super::wire::{self, split_frame, Packet, PacketType, Writer, HEADER_LEN};
use crate::limits::{
    VICI_CALL_TIMEOUT_MS, VICI_RECONNECT_MAX_MS, VICI_RECONNECT_MIN_MS, VICI_RECV_BUFFER_BYTES,
    VICI_RECV_INITIAL_BYTES, VICI_REQUEST_BUFFER_BYTES,
};

/// The default control socket of charon.
pub const DEFAULT_URI: &str = "unix:///var/run/charon.vici";

/// Events the agent listens to; `alert` exists from strongSwan 6.0.3 on.
pub const EVENTS: [&str; 4] = ["ike-updown", "child-updown", "log", "alert"];

/// Where charon's VICI socket is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    path: PathBuf,
}

impl Uri {
    /// Parses `unix:///path` (or a bare absolute path); the error says how to write it.
    pub fn parse(text: &str) -> Result<Uri, &'static str> {
        let path = match text.strip_prefix("unix://") {
            Some(path) => path,
            None if text.starts_with('/') => text,
            None => {
                return Err("only unix:// VICI URIs are supported: use unix:///path/to/charon.vici")
            }
        };
        if !path.starts_with('/') {
            return Err("the VICI URI needs an absolute path: unix:///var/run/charon.vici");
        }
        Ok(Uri {
            path: PathBuf::from(path),
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl core::fmt::Display for Uri {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "unix://{}", self.path.display())
    }
}

/// Why a VICI call failed.
#[derive(Debug)]
pub enum ClientError {
    /// The socket file does not exist (charon not running, or another path).
    NotFound(PathBuf),
    /// Not allowed to open the socket (swandog must run as root, like swanctl).
    PermissionDenied(PathBuf),
    /// The socket exists but nobody listens (charon died and left it).
    Refused(PathBuf),
    /// Any other I/O failure.
    Io(io::Error),
    /// charon did not answer within the deadline.
    Timeout(&'static str),
    /// charon closed the connection.
    Closed,
    /// charon sent bytes that are not VICI.
    Wire(wire::Error),
    /// A well-framed message whose content could not be read.
    View(ViewError),
    /// A frame bigger than swandog's receive buffer was skipped.
    Oversized(usize),
    /// charon does not know this command (an older or trimmed build).
    UnknownCommand(&'static str),
    /// charon does not know this event.
    UnknownEvent(&'static str),
    /// charon answered with something that does not fit the exchange.
    Unexpected(PacketType),
    /// A name swandog refuses to pass on (see [`is_safe_name`]); nothing was sent.
    UnsafeName(&'static str),
}

impl core::fmt::Display for ClientError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ClientError::NotFound(p) => write!(
                f,
                "no VICI socket at {}: is charon running with the vici plugin? (or pass --vici unix:///path)",
                p.display()
            ),
            ClientError::PermissionDenied(p) => write!(
                f,
                "permission denied on {}: run swandog as root, like swanctl",
                p.display()
            ),
            ClientError::Refused(p) => write!(
                f,
                "nobody listens on {}: charon is not running (stale socket)",
                p.display()
            ),
            ClientError::Io(e) => write!(f, "VICI I/O error: {e}"),
            ClientError::Timeout(what) => write!(f, "charon did not answer {what} in time"),
            ClientError::Closed => f.write_str("charon closed the VICI connection"),
            ClientError::Wire(e) => write!(f, "malformed VICI frame: {e}"),
            ClientError::View(e) => write!(f, "unreadable VICI message: {e}"),
            ClientError::Oversized(n) => write!(f, "skipped a VICI frame of {n} bytes (over the receive buffer)"),
            ClientError::UnknownCommand(c) => write!(f, "charon does not know the VICI command {c}"),
            ClientError::UnknownEvent(e) => write!(f, "charon does not know the VICI event {e}"),
            ClientError::Unexpected(t) => write!(f, "unexpected VICI packet {t:?}"),
            ClientError::UnsafeName(what) => write!(
                f,
                "refusing to pass on a {what} name that is not 1-64 printable ASCII characters"
            ),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<wire::Error> for ClientError {
    fn from(e: wire::Error) -> Self {
        ClientError::Wire(e)
    }
}

impl From<ViewError> for ClientError {
    fn from(e: ViewError) -> Self {
        ClientError::View(e)
    }
}

impl ClientError {
    /// Whether the connection is unusable afterwards and must be reopened.
    pub fn breaks_connection(&self) -> bool {
        !matches!(
            self,
            ClientError::View(_)
                | ClientError::Oversized(_)
                | ClientError::UnknownCommand(_)
                | ClientError::UnknownEvent(_)
                | ClientError::UnsafeName(_)
        )
    }
}

fn connect_error(path: &Path, e: io::Error) -> ClientError {
    match e.kind() {
        io::ErrorKind::NotFound => ClientError::NotFound(path.to_path_buf()),
        io::ErrorKind::PermissionDenied => ClientError::PermissionDenied(path.to_path_buf()),
        io::ErrorKind::ConnectionRefused => ClientError::Refused(path.to_path_buf()),
        _ => ClientError::Io(e),
    }
}

/// Counters of what went wrong on the wire, for `status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WireCounters {
    /// Frames that failed to parse.
    pub malformed: u32,
    /// Frames skipped for their size.
    pub oversized: u32,
    /// Connections opened (the first one included).
    pub connects: u32,
    /// Calls that hit their deadline.
    pub timeouts: u32,
}

/// One VICI stream connection with its receive buffer.
pub struct Connection {
    stream: Async<UnixStream>,
    /// Reserved at `VICI_RECV_BUFFER_BYTES` and never reallocated; its length only grows to the
    /// largest frame seen (from `VICI_RECV_INITIAL_BYTES`), so pages no frame ever needed are
    /// never touched and never become resident.
    buf: Vec<u8>,
    filled: usize,
    /// Bytes of the last returned frame, dropped at the next `recv`.
    consumed: usize,
    /// Bytes still to discard of an oversized frame.
    skip: usize,
    skipped_len: usize,
}

impl Connection {
    /// Connects to the socket at `path`.
    pub async fn connect(path: &Path) -> Result<Connection, ClientError> {
        let stream = Async::<UnixStream>::connect(path)
            .await
            .map_err(|e| connect_error(path, e))?;
        let mut buf = Vec::with_capacity(VICI_RECV_BUFFER_BYTES);
        buf.resize(VICI_RECV_INITIAL_BYTES, 0);
        Ok(Connection {
            stream,
            buf,
            filled: 0,
            consumed: 0,
            skip: 0,
            skipped_len: 0,
        })
    }

    /// Whether the peer has closed this connection (end of stream or a pending error), checked
    /// without waiting or consuming anything. A charon that exited leaves its connections so.
    pub fn peer_closed(&self) -> bool {
        use nix::errno::Errno;
        use nix::sys::socket::{recv, MsgFlags};
        use std::os::fd::AsRawFd;
        let mut byte = [0u8; 1];
        let flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT;
        match recv(self.stream.get_ref().as_raw_fd(), &mut byte, flags) {
            Ok(n) => n == 0,
            Err(Errno::EAGAIN | Errno::EINTR) => false,
            Err(_) => true,
        }
    }

    /// Sends one whole segment.
    pub async fn send(&mut self, frame: &[u8]) -> Result<(), ClientError> {
        self.stream.write_all(frame).await.map_err(ClientError::Io)
    }

    /// Writes some of `bytes`; returns how many. Cancellation-safe: bytes are either written and
    /// counted, or not written.
    pub async fn send_some(&mut self, bytes: &[u8]) -> Result<usize, ClientError> {
        match self.stream.write(bytes).await {
            Ok(0) => Err(ClientError::Closed),
            Ok(n) => Ok(n),
            Err(e) => Err(ClientError::Io(e)),
        }
    }

    /// Receives the next packet. Cancellation-safe: partial frames stay in the buffer.
    pub async fn recv(&mut self) -> Result<Packet<'_>, ClientError> {
        if self.consumed > 0 {
            self.buf.copy_within(self.consumed..self.filled, 0);
            self.filled -= self.consumed;
            self.consumed = 0;
        }
        loop {
            if self.skip > 0 {
                let drop = self.skip.min(self.filled);
                self.buf.copy_within(drop..self.filled, 0);
                self.filled -= drop;
                self.skip -= drop;
                if self.skip == 0 {
                    return Err(ClientError::Oversized(self.skipped_len));
                }
            } else if self.filled >= HEADER_LEN {
                let header = [self.buf[0], self.buf[1], self.buf[2], self.buf[3]];
                let len = wire::frame_len(header)?;
                if HEADER_LEN + len > VICI_RECV_BUFFER_BYTES {
                    self.skip = HEADER_LEN + len;
                    self.skipped_len = len;
                    continue;
                }
                if HEADER_LEN + len > self.buf.len() {
                    // Within the reserved capacity: no reallocation, ever.
                    self.buf.resize(HEADER_LEN + len, 0);
                }
                if let Some((_, used)) = split_frame(&self.buf[..self.filled])? {
                    self.consumed = used;
                    return Ok(Packet::parse(&self.buf[HEADER_LEN..used])?);
                }
            }
            let n = self
                .stream
                .read(&mut self.buf[self.filled..])
                .await
                .map_err(ClientError::Io)?;
            if n == 0 {
                // Closed in the middle of a frame: the peer sent a truncated one.
                let partial = self.filled > 0 || self.skip > 0;
                return Err(if partial {
                    ClientError::Wire(wire::Error::Truncated)
                } else {
                    ClientError::Closed
                });
            }
            self.filled += n;
        }
    }
}

async fn with_deadline<T>(
    what: &'static str,
    timeout: Duration,
    fut: impl core::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    smol::future::or(fut, async {
        Timer::after(timeout).await;
        Err(ClientError::Timeout(what))
    })
    .await
}

/// Exponential reconnect delays, from `VICI_RECONNECT_MIN_MS` doubling to `VICI_RECONNECT_MAX_MS`.
#[derive(Debug, Clone, Copy)]
pub struct Reconnect {
    next_ms: u64,
}

impl Default for Reconnect {
    fn default() -> Self {
        Reconnect {
            next_ms: VICI_RECONNECT_MIN_MS,
        }
    }
}

impl Reconnect {
    /// The delay before the next attempt; each call doubles the following one up to the cap.
    pub fn next_delay_ms(&mut self) -> u64 {
        let delay = self.next_ms;
        self.next_ms = (self.next_ms * 2).min(VICI_RECONNECT_MAX_MS);
        delay
    }

    /// Back to the shortest delay after a success.
    pub fn reset(&mut self) {
        self.next_ms = VICI_RECONNECT_MIN_MS;
    }
}

/// charon's identity, from `version`.
#[derive(Debug, Clone, Default)]
pub struct Version {
    /// `charon`.
    pub daemon: String<32>,
    /// e.g. `5.9.8`.
    pub version: String<32>,
    /// e.g. `Linux`.
    pub sysname: String<32>,
    /// Kernel release.
    pub release: String<64>,
    /// e.g. `x86_64`.
    pub machine: String<32>,
}

/// charon's own load signal, from `stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Seconds since charon started.
    pub uptime_s: u64,
    /// Worker threads.
    pub workers_total: u32,
    /// Idle worker threads.
    pub workers_idle: u32,
    /// Jobs queued, all priorities.
    pub queued: u32,
    /// IKE_SAs.
    pub ike_sas: u32,
    /// Half-open IKE_SAs.
    pub ike_sas_half_open: u32,
}

/// What `initiate` answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InitiateReply {
    /// charon's `success`.
    pub success: bool,
    /// charon's `errmsg`, when it failed.
    pub errmsg: String<128>,
}

/// The command connection: one call at a time, each with a hard deadline.
pub struct Commands {
    path: PathBuf,
    conn: Option<Connection>,
    timeout: Duration,
    request: Box<[u8]>,
    /// What went wrong so far.
    pub counters: WireCounters,
}

impl Commands {
    /// A client for the socket at `uri`; connects lazily on the first call.
    pub fn new(uri: &Uri) -> Commands {
        Commands {
            path: uri.path().to_path_buf(),
            conn: None,
            timeout: Duration::from_millis(VICI_CALL_TIMEOUT_MS),
            request: vec![0u8; VICI_REQUEST_BUFFER_BYTES].into_boxed_slice(),
            counters: WireCounters::default(),
        }
    }

    /// Sets the deadline for each call (including streamed replies).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Whether a connection is open right now.
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Drops the connection (the next call reconnects).
    pub fn disconnect(&mut self) {
        self.conn = None;
    }

    /// Runs one command: optionally registers `stream` first, hands each streamed event message
    /// to `on_event`, and the response message to `on_response`.
    pub async fn call<T>(
        &mut self,
        command: &'static str,
        args: impl FnOnce(&mut Writer<'_>) -> Result<(), wire::Error>,
        stream: Option<&'static str>,
        on_event: &mut dyn FnMut(&[u8]) -> Result<(), ClientError>,
        on_response: impl FnOnce(&[u8]) -> Result<T, ClientError>,
        timeout: Option<Duration>,
    ) -> Result<T, ClientError> {
        let timeout = timeout.unwrap_or(self.timeout);
        let mut w = Writer::new(
            &mut self.request,
            PacketType::CmdRequest,
            Some(command.as_bytes()),
        )?;
        args(&mut w)?;
        let len = w.finish()?.len();
        let result = with_deadline(command, timeout, async {
            // After a charon restart the old connection is dead: the first command must not
            // fail on it (nothing else notices, since commands are idle between calls).
            if self.conn.as_ref().is_some_and(Connection::peer_closed) {
                self.conn = None;
            }
            if self.conn.is_none() {
                self.conn = Some(Connection::connect(&self.path).await?);
                self.counters.connects += 1;
            }
            let conn = self.conn.as_mut().ok_or(ClientError::Closed)?;
            if let Some(event) = stream {
                register(conn, PacketType::EventRegister, event).await?;
            }
            conn.send(&self.request[..len]).await?;
            let mut outcome = None;
            loop {
                let packet = match conn.recv().await {
                    Ok(p) => p,
                    Err(e) if !e.breaks_connection() => {
                        outcome.get_or_insert(Err(e));
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                match packet.kind {
                    PacketType::Event => {
                        if let Err(e) = on_event(packet.message) {
                            outcome.get_or_insert(Err(e));
                        }
                    }
                    PacketType::CmdResponse => {
                        let response = on_response(packet.message);
                        outcome = Some(match outcome {
                            Some(Err(e)) => Err(e),
                            _ => response,
                        });
                        break;
                    }
                    PacketType::CmdUnknown => {
                        outcome = Some(Err(ClientError::UnknownCommand(command)));
                        break;
                    }
                    other => return Err(ClientError::Unexpected(other)),
                }
            }
            if let Some(event) = stream {
                register(conn, PacketType::EventUnregister, event).await?;
            }
            outcome.unwrap_or(Err(ClientError::Closed))
        })
        .await;
        if let Err(e) = &result {
            self.note_error(e);
        }
        result
    }

    fn note_error(&mut self, e: &ClientError) {
        match e {
            ClientError::Timeout(_) => self.counters.timeouts += 1,
            ClientError::Wire(_) | ClientError::View(_) => self.counters.malformed += 1,
            ClientError::Oversized(_) => self.counters.oversized += 1,
            _ => {}
        }
        if e.breaks_connection() {
            self.conn = None;
        }
    }

    /// `version`.
    pub async fn version(&mut self) -> Result<Version, ClientError> {
        self.call(
            "version",
            |_| Ok(()),
            None,
            &mut |_| Ok(()),
            parse_version,
            None,
        )
        .await
    }

    /// `stats`.
    pub async fn stats(&mut self) -> Result<Stats, ClientError> {
        self.call(
            "stats",
            |_| Ok(()),
            None,
            &mut |_| Ok(()),
            parse_stats,
            None,
        )
        .await
    }

    /// `list-sas {noblock = yes}`: hands every IKE_SA to `on_ike`; returns how many came.
    pub async fn list_sas(&mut self, on_ike: &mut dyn FnMut(IkeSa)) -> Result<u32, ClientError> {
        let mut count = 0;
        let mut on_event = |message: &[u8]| {
            let ikes: heapless::Vec<IkeSa, 1> = IkeSa::parse_all(message)?;
            for ike in ikes {
                count += 1;
                on_ike(ike);
            }
            Ok(())
        };
        self.call(
            "list-sas",
            |w| w.key_value(b"noblock", b"yes"),
            Some("list-sa"),
            &mut on_event,
            |_| Ok(()),
            None,
        )
        .await?;
        Ok(count)
    }

    /// `list-sas {noblock = yes}`, each IKE_SA handed to `on_part` in parts of at most
    /// `CHILD_SAS_PER_IKE_MAX` children ([`IkeSa::parse_chunked`]): the agent's streamed view,
    /// with no limit on children per IKE_SA. Returns how many IKE_SAs came.
    pub async fn list_sas_parts(
        &mut self,
        on_part: &mut dyn FnMut(&IkeSa),
    ) -> Result<u32, ClientError> {
        let mut count = 0;
        let mut on_event = |message: &[u8]| {
            if IkeSa::parse_chunked(message, on_part)? > 0 {
                count += 1;
            }
            Ok(())
        };
        self.call(
            "list-sas",
            |w| w.key_value(b"noblock", b"yes"),
            Some("list-sa"),
            &mut on_event,
            |_| Ok(()),
            None,
        )
        .await?;
        Ok(count)
    }

    /// `list-conns`: hands every configured connection to `on_conn`, in parts of at most
    /// `CHILD_SAS_PER_IKE_MAX` children each ([`Conn::parse_chunked`]).
    pub async fn list_conns(&mut self, on_conn: &mut dyn FnMut(&Conn)) -> Result<(), ClientError> {
        let mut on_event = |message: &[u8]| {
            Conn::parse_chunked(message, on_conn)?;
            Ok(())
        };
        self.call(
            "list-conns",
            |_| Ok(()),
            Some("list-conn"),
            &mut on_event,
            |_| Ok(()),
            None,
        )
        .await
    }

    /// `initiate {child, ike, timeout, init-limits = yes, loglevel = 1}`; each `control-log` line
    /// goes to `on_log`. The call's own deadline is `timeout_ms` plus a margin.
    pub async fn initiate(
        &mut self,
        child: &str,
        ike: Option<&str>,
        timeout_ms: u32,
        on_log: &mut dyn FnMut(LogLine),
    ) -> Result<InitiateReply, ClientError> {
        // Names come from the config (validated there) or from charon's own list-sas.
        if !is_safe_name(child) {
            return Err(ClientError::UnsafeName("child"));
        }
        if ike.is_some_and(|ike| !is_safe_name(ike)) {
            return Err(ClientError::UnsafeName("connection"));
        }
        let mut timeout_text: String<12> = String::new();
        let _ = core::fmt::write(&mut timeout_text, format_args!("{timeout_ms}"));
        let mut on_event = |message: &[u8]| {
            on_log(LogLine::parse(message)?);
            Ok(())
        };
        self.call(
            "initiate",
            |w| {
                w.key_value(b"child", child.as_bytes())?;
                if let Some(ike) = ike {
                    w.key_value(b"ike", ike.as_bytes())?;
                }
                w.key_value(b"timeout", timeout_text.as_bytes())?;
                w.key_value(b"init-limits", b"yes")?;
                w.key_value(b"loglevel", b"1")
            },
            Some("control-log"),
            &mut on_event,
            parse_reply,
            Some(Duration::from_millis(u64::from(timeout_ms)) + self.timeout),
        )
        .await
    }

    /// `terminate` one CHILD_SA by its unique id (or a whole IKE_SA with `ike_id`).
    pub async fn terminate(
        &mut self,
        child_id: Option<u32>,
        ike_id: Option<u32>,
        timeout_ms: u32,
    ) -> Result<InitiateReply, ClientError> {
        let mut child_text: String<12> = String::new();
        let mut ike_text: String<12> = String::new();
        let mut timeout_text: String<12> = String::new();
        if let Some(id) = child_id {
            let _ = core::fmt::write(&mut child_text, format_args!("{id}"));
        }
        if let Some(id) = ike_id {
            let _ = core::fmt::write(&mut ike_text, format_args!("{id}"));
        }
        let _ = core::fmt::write(&mut timeout_text, format_args!("{timeout_ms}"));
        self.call(
            "terminate",
            |w| {
                if !child_text.is_empty() {
                    w.key_value(b"child-id", child_text.as_bytes())?;
                }
                if !ike_text.is_empty() {
                    w.key_value(b"ike-id", ike_text.as_bytes())?;
                }
                w.key_value(b"timeout", timeout_text.as_bytes())
            },
            Some("control-log"),
            &mut |_| Ok(()),
            parse_reply,
            Some(Duration::from_millis(u64::from(timeout_ms)) + self.timeout),
        )
        .await
    }
}

async fn register(
    conn: &mut Connection,
    kind: PacketType,
    event: &'static str,
) -> Result<(), ClientError> {
    let mut buf = [0u8; 64];
    let frame = Writer::new(&mut buf, kind, Some(event.as_bytes()))?.finish()?;
    conn.send(frame).await?;
    loop {
        let packet = conn.recv().await?;
        match packet.kind {
            PacketType::EventConfirm => return Ok(()),
            PacketType::EventUnknown => return Err(ClientError::UnknownEvent(event)),
            // An event registered earlier on this connection may slip in before the confirm.
            PacketType::Event => continue,
            other => return Err(ClientError::Unexpected(other)),
        }
    }
}

fn text<const N: usize>(message: &[u8], key: &[u8]) -> Result<String<N>, ClientError> {
    Ok(top_value(message, key)?
        .map(lossy_truncated)
        .unwrap_or_default())
}

fn number(message: &[u8], path: &[&[u8]]) -> Result<u64, ClientError> {
    let mut elements = wire::Elements::new(message);
    let mut matched = 0usize;
    while let Some(element) = elements.next() {
        match element? {
            wire::Element::SectionStart(name)
                if matched + 1 == elements.depth() && path.get(matched) == Some(&name) =>
            {
                matched += 1;
            }
            wire::Element::SectionEnd if elements.depth() < matched => matched = elements.depth(),
            wire::Element::KeyValue(key, value)
                if elements.depth() == matched
                    && matched + 1 == path.len()
                    && path[matched] == key =>
            {
                return Ok(core::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0));
            }
            _ => {}
        }
    }
    Ok(0)
}

fn parse_version(message: &[u8]) -> Result<Version, ClientError> {
    Ok(Version {
        daemon: text(message, b"daemon")?,
        version: text(message, b"version")?,
        sysname: text(message, b"sysname")?,
        release: text(message, b"release")?,
        machine: text(message, b"machine")?,
    })
}

fn parse_stats(message: &[u8]) -> Result<Stats, ClientError> {
    let queued = [&b"critical"[..], b"high", b"medium", b"low"]
        .iter()
        .map(|p| number(message, &[b"queues", p]))
        .sum::<Result<u64, _>>()?;
    Ok(Stats {
        uptime_s: number(message, &[b"uptime", b"running"])
            .ok()
            .filter(|&n| n > 0)
            .unwrap_or(0),
        workers_total: number(message, &[b"workers", b"total"])? as u32,
        workers_idle: number(message, &[b"workers", b"idle"])? as u32,
        queued: queued as u32,
        ike_sas: number(message, &[b"ikesas", b"total"])? as u32,
        ike_sas_half_open: number(message, &[b"ikesas", b"half-open"])? as u32,
    })
}

fn parse_reply(message: &[u8]) -> Result<InitiateReply, ClientError> {
    Ok(InitiateReply {
        success: top_value(message, b"success")? == Some(b"yes"),
        errmsg: text(message, b"errmsg")?,
    })
}

/// The event connection: registers for [`EVENTS`] and yields them one by one.
///
/// Both [`Events::connect`] and [`Events::next`] are cancellation-safe: the shell races them
/// against its timers, so a registration that takes longer than one timer tick (a slow or wedged
/// charon) resumes where it stopped, on the same connection and under the same deadline, instead
/// of starting over on a new connection every tick and never timing out.
pub struct Events {
    path: PathBuf,
    conn: Option<Connection>,
    timeout: Duration,
    /// A connection still being registered, kept across cancellations.
    pending: Option<Registration>,
    /// The deadline of the registration under way.
    deadline: Option<Instant>,
    /// Whether charon offers the `alert` event (strongSwan ≥ 6.0.3).
    pub alerts: bool,
    /// What went wrong so far.
    pub counters: WireCounters,
}

/// How far the registration of one new event connection got.
struct Registration {
    conn: Connection,
    /// Index in [`EVENTS`] of the event being registered.
    next: usize,
    /// Bytes of its EVENT_REGISTER already written.
    written: usize,
    alerts: bool,
}

impl Events {
    /// An event client for `uri`; connects on the first [`Events::next`].
    pub fn new(uri: &Uri) -> Events {
        Events {
            path: uri.path().to_path_buf(),
            conn: None,
            timeout: Duration::from_millis(VICI_CALL_TIMEOUT_MS),
            pending: None,
            deadline: None,
            alerts: false,
            counters: WireCounters::default(),
        }
    }

    /// Sets the registration deadline.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Whether the connection is open and registered.
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Drops the connection (the next call reconnects).
    pub fn disconnect(&mut self) {
        self.conn = None;
        self.pending = None;
        self.deadline = None;
    }

    /// Connects and registers, unless already done. Cancellation-safe (see [`Events`]).
    pub async fn connect(&mut self) -> Result<(), ClientError> {
        if self.conn.is_some() {
            return Ok(());
        }
        let deadline = *self
            .deadline
            .get_or_insert_with(|| Instant::now() + self.timeout);
        let result = smol::future::or(self.register_all(), async {
            Timer::at(deadline).await;
            Err(ClientError::Timeout("event registration"))
        })
        .await;
        self.deadline = None;
        if result.is_err() {
            self.pending = None;
        }
        result
    }

    /// Opens a connection and registers every event, resuming a registration under way.
    async fn register_all(&mut self) -> Result<(), ClientError> {
        if self.pending.is_none() {
            let conn = Connection::connect(&self.path).await?;
            self.pending = Some(Registration {
                conn,
                next: 0,
                written: 0,
                alerts: false,
            });
        }
        let mut buf = [0u8; 64];
        loop {
            let p = self.pending.as_mut().ok_or(ClientError::Closed)?;
            let Some(&event) = EVENTS.get(p.next) else {
                break;
            };
            let frame = Writer::new(&mut buf, PacketType::EventRegister, Some(event.as_bytes()))?
                .finish()?;
            while p.written < frame.len() {
                p.written += p.conn.send_some(&frame[p.written..]).await?;
            }
            match p.conn.recv().await?.kind {
                PacketType::EventConfirm => p.alerts |= event == "alert",
                // strongSwan before 6.0.3 has no `alert` event.
                PacketType::EventUnknown if event == "alert" => {}
                PacketType::EventUnknown => return Err(ClientError::UnknownEvent(event)),
                // An event registered earlier on this connection may slip in before the confirm.
                PacketType::Event => continue,
                other => return Err(ClientError::Unexpected(other)),
            }
            p.next += 1;
            p.written = 0;
        }
        let p = self.pending.take().ok_or(ClientError::Closed)?;
        self.counters.connects += 1;
        self.alerts = p.alerts;
        self.conn = Some(p.conn);
        Ok(())
    }

    /// The next event swandog uses. Cancellation-safe. Malformed or oversized frames come back as
    /// errors that leave the connection open; a broken connection is dropped.
    pub async fn next(&mut self) -> Result<Event, ClientError> {
        self.connect().await?;
        loop {
            let conn = self.conn.as_mut().ok_or(ClientError::Closed)?;
            let result = match conn.recv().await {
                Ok(packet) if packet.kind == PacketType::Event => {
                    match Event::parse(packet.name.unwrap_or_default(), packet.message) {
                        Ok(Some(event)) => Ok(event),
                        Ok(None) => continue,
                        Err(e) => Err(ClientError::View(e)),
                    }
                }
                Ok(packet) => Err(ClientError::Unexpected(packet.kind)),
                Err(e) => Err(e),
            };
            if let Err(e) = &result {
                match e {
                    ClientError::Wire(_) | ClientError::View(_) => self.counters.malformed += 1,
                    ClientError::Oversized(_) => self.counters.oversized += 1,
                    _ => {}
                }
                if e.breaks_connection() {
                    self.conn = None;
                }
            }
            return result;
        }
    }
}
