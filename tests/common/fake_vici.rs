//! A scripted fake charon on a Unix socket, for the faults a real charon will not make on demand:
//! garbage bytes, truncated frames, a length prefix over 512 KiB, frames over swandog's receive
//! buffer, an event flood, silence, a close in the middle of a reply.
//!
//! In [`Mode::Healthy`] it speaks VICI as charon does (see STRONGSWAN.md): EVENT_CONFIRM for every
//! known event registration, EVENT_UNKNOWN for others (`alert`, as on 5.9.8), and for commands
//! the real CMD_RESPONSE segments captured in `tests/data/vici` — `list-sas` and `list-conns`
//! first stream the captured `list-sa` / `list-conn` EVENTs when that stream is registered.
//! The test switches the mode at any time; connections already open follow the new mode at their
//! next request, and an idle event connection gets the mode's fault injected at once.
//!
//! Used by `tests/faults.rs` and `tests/lab_faults.rs` (`#[path]`-included).
#![allow(dead_code)]

use std::collections::HashSet;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use swandog::vici::wire::{split_frame, Packet, PacketType, Writer};

/// How the fake behaves from now on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Like charon.
    Healthy,
    /// Every request (and an idle event connection, once) gets bytes that are not VICI: a sane
    /// length prefix over an unknown packet type, then noise.
    Garbage,
    /// Every request gets the first half of a real reply, then the connection is closed; an idle
    /// event connection gets half of a real event, then the close.
    Truncated,
    /// Every request (and an idle event connection) gets a length prefix of 1 MiB, over VICI's
    /// 512 KiB limit.
    OversizedPrefix,
    /// Healthy, but an idle event connection also gets well-formed `log` EVENTs of 100 KiB:
    /// legal VICI, larger than swandog's 64 KiB receive buffer.
    BigFrames,
    /// Accepts and reads, never answers anything.
    Silent,
    /// Answers registrations, never answers a command.
    SilentCommands,
    /// Answers registrations; a command gets part of its reply (for `list-sas`: one whole
    /// `list-sa` event, then half of the next), then the connection is closed.
    CloseMidReply,
}

/// An event flood for the event connection: `rate` EVENTs a second for `duration`.
#[derive(Debug, Clone, Copy)]
pub struct Flood {
    pub rate_per_s: u32,
    pub duration: Duration,
}

/// What the flood achieved.
#[derive(Debug, Clone, Copy, Default)]
pub struct FloodResult {
    pub sent: u64,
    pub took: Duration,
    pub done: bool,
}

#[derive(Default)]
struct Counts {
    accepts: Vec<Instant>,
    event_accepts: Vec<Instant>,
    commands: Vec<String>,
    registrations: u32,
}

struct Shared {
    mode: Mutex<Mode>,
    stop: AtomicBool,
    counts: Mutex<Counts>,
    /// EVENT segments to send on the next event connection that registered their name.
    pushes: Mutex<Vec<Vec<u8>>>,
    flood: Mutex<Option<Flood>>,
    flood_result: Mutex<FloodResult>,
    /// Children `list-sas` leaves out until an `initiate` names them.
    down: Mutex<HashSet<String>>,
    /// Extra copies of con1's `list-sa` event each `list-sas` streams (a big installation).
    extra_sas: Mutex<usize>,
    /// Extra copies of con1's `list-conn` event each `list-conns` streams.
    extra_conns: Mutex<usize>,
    data: PathBuf,
}

/// The fake; stops (and removes its socket) when dropped.
pub struct FakeVici {
    pub path: PathBuf,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

const TYPE_CMD_REQUEST: u8 = 0;
const TYPE_EVENT_REGISTER: u8 = 3;
const TYPE_EVENT_UNREGISTER: u8 = 4;
const POLL: Duration = Duration::from_millis(10);
const BIG_FRAME_BYTES: usize = 100 * 1024;

/// Events charon 5.9.8 knows (its vici README); `alert` is not among them.
const KNOWN_EVENTS: &[&str] = &[
    "list-sa",
    "list-pol",
    "list-conn",
    "list-cert",
    "list-authority",
    "control-log",
    "log",
    "ike-updown",
    "ike-rekey",
    "ike-update",
    "child-updown",
    "child-rekey",
];

/// One captured segment from `tests/data/vici`.
pub fn captured(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/vici")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn segment(kind: PacketType, name: Option<&[u8]>) -> Vec<u8> {
    let mut buf = [0u8; 300];
    Writer::new(&mut buf, kind, name)
        .and_then(|w| w.finish())
        .expect("small segment")
        .to_vec()
}

/// A well-formed `log` EVENT of about `bytes` bytes.
pub fn big_log_event(bytes: usize) -> Vec<u8> {
    let mut buf = vec![0u8; bytes + 1024];
    let mut w = Writer::new(&mut buf, PacketType::Event, Some(b"log")).unwrap();
    w.key_value(b"group", b"IKE").unwrap();
    w.key_value(b"level", b"1").unwrap();
    let chunk = vec![b'x'; 60_000];
    let mut left = bytes;
    let mut i = 0;
    while left > 0 {
        let n = left.min(chunk.len());
        w.key_value(format!("pad{i}").as_bytes(), &chunk[..n])
            .unwrap();
        left -= n;
        i += 1;
    }
    w.key_value(b"msg", b"a frame larger than the receive buffer")
        .unwrap();
    w.finish().unwrap().to_vec()
}

/// Not VICI: a plausible length (so the reader takes it whole) over an unknown packet type, then
/// noise that is not a frame either.
fn garbage() -> Vec<u8> {
    let mut bytes = vec![0, 0, 0, 16, 0xee];
    bytes.extend((0u8..15).map(|i| i.wrapping_mul(37)));
    bytes.extend_from_slice(b"\x7fELF HTTP/1.0 400 Bad Request\r\n\r\n");
    bytes
}

fn oversized_prefix() -> Vec<u8> {
    let mut bytes = (1024u32 * 1024).to_be_bytes().to_vec();
    bytes.push(1);
    bytes.extend_from_slice(&[0u8; 64]);
    bytes
}

impl FakeVici {
    /// Listens on `path` (removed first if it exists) in `mode`.
    pub fn start(path: &Path, mode: Mode) -> FakeVici {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).expect("bind fake VICI socket");
        listener.set_nonblocking(true).expect("nonblocking");
        let shared = Arc::new(Shared {
            mode: Mutex::new(mode),
            stop: AtomicBool::new(false),
            counts: Mutex::new(Counts::default()),
            pushes: Mutex::new(Vec::new()),
            flood: Mutex::new(None),
            flood_result: Mutex::new(FloodResult::default()),
            down: Mutex::new(HashSet::new()),
            extra_sas: Mutex::new(0),
            extra_conns: Mutex::new(0),
            data: Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/vici"),
        });
        let s = shared.clone();
        let thread = thread::spawn(move || {
            while !s.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        s.counts.lock().unwrap().accepts.push(Instant::now());
                        let s = s.clone();
                        thread::spawn(move || serve(stream, &s));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(POLL),
                    Err(_) => thread::sleep(POLL),
                }
            }
        });
        FakeVici {
            path: path.to_path_buf(),
            shared,
            thread: Some(thread),
        }
    }

    /// The URI to give swandog.
    pub fn uri(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    /// Connections accepted so far (all kinds), with their times.
    pub fn accepts(&self) -> Vec<Instant> {
        self.shared.counts.lock().unwrap().accepts.clone()
    }

    /// Connections that registered for `ike-updown` (swandog's event connection), with times.
    pub fn event_connections(&self) -> Vec<Instant> {
        self.shared.counts.lock().unwrap().event_accepts.clone()
    }

    /// Names of the commands received so far, in order.
    pub fn commands(&self) -> Vec<String> {
        self.shared.counts.lock().unwrap().commands.clone()
    }

    /// Queues an EVENT segment for the event connection (sent once it registered that event).
    pub fn push(&self, segment: Vec<u8>) {
        self.shared.pushes.lock().unwrap().push(segment);
    }

    /// Starts a flood on the event connection.
    pub fn flood(&self, flood: Flood) {
        *self.shared.flood_result.lock().unwrap() = FloodResult::default();
        *self.shared.flood.lock().unwrap() = Some(flood);
    }

    /// Takes `child` down: its captured child-updown (`down_event`) goes to the event
    /// connection, and `list-sas` leaves it out until swandog initiates it.
    pub fn take_down(&self, child: &str, down_event: Vec<u8>) {
        self.shared.down.lock().unwrap().insert(child.to_string());
        self.push(down_event);
    }

    /// From now on `list-sas` also streams `n` more copies of con1's `list-sa` event.
    pub fn extra_sas(&self, n: usize) {
        *self.shared.extra_sas.lock().unwrap() = n;
    }

    /// From now on `list-conns` also streams `n` more copies of con1's `list-conn` event.
    pub fn extra_conns(&self, n: usize) {
        *self.shared.extra_conns.lock().unwrap() = n;
    }

    pub fn flood_result(&self) -> FloodResult {
        *self.shared.flood_result.lock().unwrap()
    }
}

impl Drop for FakeVici {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn load(shared: &Shared, name: &str) -> Vec<u8> {
    std::fs::read(shared.data.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn response_for(shared: &Shared, command: &str) -> Option<Vec<u8>> {
    let file = match command {
        "version" => "version-response.bin",
        "stats" => "stats-response.bin",
        "list-sas" => "list-sas-response.bin",
        "list-conns" => "list-conns-response.bin",
        "initiate" => "initiate-response-success.bin",
        "terminate" => "terminate-child-response.bin",
        _ => return None,
    };
    Some(load(shared, file))
}

/// What one connection knows about itself.
struct Conn {
    stream: UnixStream,
    registered: HashSet<String>,
    is_events: bool,
    /// The mode whose fault was injected on this idle event connection.
    injected: Option<Mode>,
}

impl Conn {
    fn send(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).is_ok()
    }
}

fn serve(stream: UnixStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(POLL));
    let mut conn = Conn {
        stream,
        registered: HashSet::new(),
        is_events: false,
        injected: None,
    };
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        match conn.stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
        loop {
            let (payload, used) = match split_frame(&buf) {
                Ok(Some((payload, used))) => (payload.to_vec(), used),
                Ok(None) => break,
                Err(_) => return, // swandog never sends a bad frame; charon would drop it
            };
            buf.drain(..used);
            if !request(&mut conn, shared, &payload) {
                return;
            }
        }
        if conn.is_events && !idle_event_work(&mut conn, shared) {
            return;
        }
    }
}

/// Answers one request; false closes the connection.
fn request(conn: &mut Conn, shared: &Shared, payload: &[u8]) -> bool {
    let Ok(packet) = Packet::parse(payload) else {
        return false;
    };
    let name = String::from_utf8_lossy(packet.name.unwrap_or_default()).into_owned();
    let mode = *shared.mode.lock().unwrap();
    let kind = payload[0];
    if kind == TYPE_EVENT_REGISTER && name == "ike-updown" && !conn.is_events {
        conn.is_events = true;
        shared
            .counts
            .lock()
            .unwrap()
            .event_accepts
            .push(Instant::now());
    }
    if kind == TYPE_CMD_REQUEST {
        shared.counts.lock().unwrap().commands.push(name.clone());
    }
    match mode {
        Mode::Silent => return true,
        Mode::Garbage => return conn.send(&garbage()),
        Mode::OversizedPrefix => return conn.send(&oversized_prefix()),
        Mode::Truncated => {
            let whole = match kind {
                TYPE_CMD_REQUEST => {
                    response_for(shared, &name).unwrap_or_else(|| load(shared, "cmd-unknown.bin"))
                }
                _ => load(shared, "event-confirm.bin"),
            };
            conn.send(&whole[..whole.len() / 2]);
            return false;
        }
        Mode::SilentCommands if kind == TYPE_CMD_REQUEST => return true,
        Mode::CloseMidReply if kind == TYPE_CMD_REQUEST => {
            if name == "list-sas" && conn.registered.contains("list-sa") {
                let first = load(shared, "list-sa-con1.bin");
                let second = load(shared, "list-sa-con2.bin");
                conn.send(&first);
                conn.send(&second[..second.len() / 2]);
            } else if let Some(reply) = response_for(shared, &name) {
                conn.send(&reply[..reply.len() / 2]);
            }
            return false;
        }
        _ => {}
    }
    match kind {
        TYPE_EVENT_REGISTER => {
            shared.counts.lock().unwrap().registrations += 1;
            if KNOWN_EVENTS.contains(&name.as_str()) {
                conn.registered.insert(name);
                conn.send(&segment(PacketType::EventConfirm, None))
            } else {
                conn.send(&segment(PacketType::EventUnknown, None))
            }
        }
        TYPE_EVENT_UNREGISTER => {
            let known = conn.registered.remove(&name);
            let kind = if known || KNOWN_EVENTS.contains(&name.as_str()) {
                PacketType::EventConfirm
            } else {
                PacketType::EventUnknown
            };
            conn.send(&segment(kind, None))
        }
        TYPE_CMD_REQUEST => {
            let Some(reply) = response_for(shared, &name) else {
                return conn.send(&segment(PacketType::CmdUnknown, None));
            };
            if name == "initiate" {
                if let Some(child) = top_value(packet.message, b"child") {
                    shared.down.lock().unwrap().remove(&child);
                }
            }
            let stream = match name.as_str() {
                "list-sas" if conn.registered.contains("list-sa") => {
                    let down = shared.down.lock().unwrap().clone();
                    let extra = *shared.extra_sas.lock().unwrap();
                    let files = ["list-sa-con1.bin", "list-sa-con2.bin"]
                        .into_iter()
                        .chain(std::iter::repeat_n("list-sa-con1.bin", extra));
                    for file in files {
                        let mut frame = load(shared, file);
                        for child in &down {
                            frame = without_child(&frame, child);
                        }
                        if !conn.send(&frame) {
                            return false;
                        }
                    }
                    vec![]
                }
                "list-conns" if conn.registered.contains("list-conn") => {
                    let extra = *shared.extra_conns.lock().unwrap();
                    let mut files = vec!["list-conn-con1.bin", "list-conn-con2.bin"];
                    files.extend(std::iter::repeat_n("list-conn-con1.bin", extra));
                    files
                }
                "initiate" if conn.registered.contains("control-log") => {
                    vec![
                        "control-log-initiate-first.bin",
                        "control-log-child-established.bin",
                    ]
                }
                _ => vec![],
            };
            for file in stream {
                if !conn.send(&load(shared, file)) {
                    return false;
                }
            }
            conn.send(&reply)
        }
        // charon drops a connection that sends a type it does not accept.
        _ => false,
    }
}

/// Pushed events, floods and injected faults on an event connection; false closes it.
fn idle_event_work(conn: &mut Conn, shared: &Shared) -> bool {
    let mode = *shared.mode.lock().unwrap();
    if conn.injected != Some(mode) {
        conn.injected = Some(mode);
        let ok = match mode {
            Mode::Garbage => conn.send(&garbage()),
            Mode::OversizedPrefix => conn.send(&oversized_prefix()),
            Mode::Truncated => {
                let event = load(shared, "log-retransmit.bin");
                conn.send(&event[..event.len() / 2]);
                return false;
            }
            _ => true,
        };
        if !ok {
            return false;
        }
    }
    if mode == Mode::BigFrames {
        thread::sleep(Duration::from_millis(200));
        if !conn.send(&big_log_event(BIG_FRAME_BYTES)) {
            return false;
        }
    }
    let pushes: Vec<Vec<u8>> = {
        let mut queue = shared.pushes.lock().unwrap();
        let (now, later): (Vec<_>, Vec<_>) = queue
            .drain(..)
            .partition(|seg| segment_name(seg).is_some_and(|n| conn.registered.contains(&n)));
        *queue = later;
        now
    };
    for seg in pushes {
        if !conn.send(&seg) {
            return false;
        }
    }
    let flood = shared.flood.lock().unwrap().take();
    if let Some(flood) = flood {
        return run_flood(conn, shared, flood);
    }
    true
}

fn top_value(message: &[u8], key: &[u8]) -> Option<String> {
    let mut elements = swandog::vici::wire::Elements::new(message);
    while let Some(Ok(e)) = elements.next() {
        if let swandog::vici::wire::Element::KeyValue(k, v) = e {
            if k == key && elements.depth() == 0 {
                return Some(String::from_utf8_lossy(v).into_owned());
            }
        }
    }
    None
}

/// A `list-sa` EVENT segment without the CHILD_SA sections of `child` (`<child>-<uniqueid>`).
fn without_child(frame: &[u8], child: &str) -> Vec<u8> {
    use swandog::vici::wire::Element;
    let Ok(Some((payload, _))) = split_frame(frame) else {
        return frame.to_vec();
    };
    let Ok(packet) = Packet::parse(payload) else {
        return frame.to_vec();
    };
    let prefix = format!("{child}-");
    let mut buf = vec![0u8; frame.len()];
    let mut w = Writer::new(&mut buf, packet.kind, packet.name).unwrap();
    let mut elements = packet.elements();
    let mut skip_to: Option<usize> = None;
    while let Some(Ok(e)) = elements.next() {
        let depth = elements.depth();
        if let Some(level) = skip_to {
            if matches!(e, Element::SectionEnd) && depth < level {
                skip_to = None;
            }
            continue;
        }
        if let Element::SectionStart(name) = e {
            if depth == 3 && name.starts_with(prefix.as_bytes()) {
                skip_to = Some(depth);
                continue;
            }
        }
        w.element(e).unwrap();
    }
    w.finish().unwrap().to_vec()
}

fn segment_name(seg: &[u8]) -> Option<String> {
    let (payload, _) = split_frame(seg).ok()??;
    let packet = Packet::parse(payload).ok()?;
    packet.name.map(|n| String::from_utf8_lossy(n).into_owned())
}

/// `rate` events a second, paced every 10 ms, mixing the captured `log` lines (most of a real
/// flood) with child-updown events of a child nobody watches.
fn run_flood(conn: &mut Conn, shared: &Shared, flood: Flood) -> bool {
    let kinds = [
        load(shared, "log-retransmit.bin"),
        load(shared, "log-dpd-request.bin"),
        load(shared, "log-peer-not-responding.bin"),
        load(shared, "log-no-proposal.bin"),
        load(shared, "log-giving-up.bin"),
    ];
    let per_tick = (flood.rate_per_s / 100).max(1) as usize;
    let mut batch = Vec::new();
    let start = Instant::now();
    let mut sent = 0u64;
    let mut tick = 0u32;
    while start.elapsed() < flood.duration {
        batch.clear();
        for i in 0..per_tick {
            batch.extend_from_slice(&kinds[(sent as usize + i) % kinds.len()]);
        }
        if !conn.send(&batch) {
            return false;
        }
        sent += per_tick as u64;
        tick += 1;
        let next = start + POLL * tick;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        let mut r = shared.flood_result.lock().unwrap();
        r.sent = sent;
        r.took = start.elapsed();
    }
    let mut r = shared.flood_result.lock().unwrap();
    r.sent = sent;
    r.took = start.elapsed();
    r.done = true;
    true
}
