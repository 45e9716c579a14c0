//! A simulated charon and clock around the sans-I/O [`Agent`], for replayed scenarios.
//!
//! Every VICI message goes through the codec and the typed views the way the shell feeds them:
//! captured frames (tests/data/vici) are copied into a receive buffer, frames swandog would get
//! from a bigger setup are written with the wire `Writer` into that same buffer, and both are
//! parsed with `split_frame` → `Packet::parse` → `Event::parse` / `IkeSa::parse_chunked` /
//! `Conn::parse_chunked` / `LogLine::parse`. The clock moves the way `run.rs` moves it: to the agent's
//! `next_wake()` or the next load sample, whichever comes first.
//!
//! Nothing here allocates after `Sim::new` (the zero-growth test relies on it).
#![allow(dead_code)]

use std::path::Path;

use heapless::Vec as HVec;
use log::Level;
use swandog::agent::{Action, Agent, CommandDone, Job, Millis, Settings};
use swandog::agent::{CommandError, CommandErrorKind};
use swandog::limits::VICI_RECV_BUFFER_BYTES;
use swandog::report::render::render_status;
use swandog::sample::load::LoadSample;
use swandog::vici::client::InitiateReply;
use swandog::vici::sa::{Conn, Event, IkeSa, LogLine, Name};
use swandog::vici::wire::{split_frame, Error as WireError, Packet, PacketType, Writer};

/// Connections the simulated charon can hold.
pub const SIM_CONNS_MAX: usize = 16;
/// Children per simulated connection (real installations have dozens under one connection).
pub const SIM_CHILDREN_MAX: usize = 64;

/// The bytes of one captured frame (tests/data/vici/NAME).
pub fn captured(name: &str) -> std::vec::Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/vici")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn name(text: &str) -> Name {
    Name::try_from(text).expect("short name")
}

/// One configured child of the simulated charon.
#[derive(Debug, Clone)]
pub struct SimChild {
    /// Child name.
    pub name: Name,
    /// XFRM interface id (0 = policy-based).
    pub if_id: u32,
    /// INSTALLED right now.
    pub up: bool,
    /// Its CHILD_SA's unique id (changes on every establishment).
    pub uid: u32,
    /// Packets both ways so far (grows while up, so the keeper never sees a stale SA).
    pub packets: u64,
}

/// One configured connection of the simulated charon.
#[derive(Debug, Clone)]
pub struct SimConn {
    /// Connection name.
    pub name: Name,
    /// Its IKE_SA's unique id.
    pub ike_uid: u32,
    /// Its children.
    pub children: HVec<SimChild, SIM_CHILDREN_MAX>,
}

/// How a child or IKE_SA went down (which tasks the updown event shows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Down {
    /// The peer deleted it.
    PeerDelete,
    /// Terminated locally.
    Local,
    /// DPD gave up.
    Dpd,
}

/// A charon that answers from a model of its SAs and speaks real VICI bytes.
pub struct Charon {
    /// The configured connections.
    pub conns: HVec<SimConn, SIM_CONNS_MAX>,
    /// While set, every `initiate` fails with "peer not responding".
    pub unreachable: bool,
    /// strongSwan 6.0.3+: an `alert` of this type arrives while a failing `initiate` runs.
    pub alert_on_failure: Option<&'static str>,
    next_uid: u32,
    /// The receive buffer every frame is parsed from (like the shell's `Connection`).
    buf: Box<[u8]>,
}

/// Writes `text` as decimal into a stack buffer (no allocation).
struct Num {
    buf: [u8; 20],
    len: usize,
}

impl Num {
    fn new(mut n: u64) -> Num {
        let mut digits = [0u8; 20];
        let mut len = 0;
        loop {
            digits[len] = b'0' + (n % 10) as u8;
            len += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let mut buf = [0u8; 20];
        for i in 0..len {
            buf[i] = digits[len - 1 - i];
        }
        Num { buf, len }
    }

    fn hex8(n: u32) -> Num {
        let mut buf = [0u8; 20];
        for (i, b) in buf.iter_mut().take(8).enumerate() {
            let nib = (n >> (28 - 4 * i)) & 0xf;
            *b = b"0123456789abcdef"[nib as usize];
        }
        Num { buf, len: 8 }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Charon {
    /// The lab's charon on site a: con1 {con1}, con2 {con2_1 if_id 42, con2_2 if_id 43}, all up.
    pub fn lab() -> Charon {
        let mut c = Charon {
            conns: HVec::new(),
            unreachable: false,
            alert_on_failure: None,
            next_uid: 100,
            buf: vec![0u8; VICI_RECV_BUFFER_BYTES].into_boxed_slice(),
        };
        c.add_conn("con1", &[("con1", 0)]);
        c.add_conn("con2", &[("con2_1", 42), ("con2_2", 43)]);
        c
    }

    /// Adds a connection with route-based children, all up.
    pub fn add_conn(&mut self, conn: &str, children: &[(&str, u32)]) {
        let ike_uid = self.uid();
        let mut kids = HVec::new();
        for (child, if_id) in children {
            let uid = self.uid();
            let _ = kids.push(SimChild {
                name: name(child),
                if_id: *if_id,
                up: true,
                uid,
                packets: 0,
            });
        }
        self.conns
            .push(SimConn {
                name: name(conn),
                ike_uid,
                children: kids,
            })
            .expect("SIM_CONNS_MAX");
    }

    fn uid(&mut self) -> u32 {
        self.next_uid += 1;
        self.next_uid
    }

    /// (connection index, child index) of a child.
    pub fn find(&self, child: &str) -> (usize, usize) {
        for (i, c) in self.conns.iter().enumerate() {
            if let Some(j) = c.children.iter().position(|k| k.name == child) {
                return (i, j);
            }
        }
        panic!("no child {child} in the simulated charon");
    }

    /// Whether charon has a child of that name configured.
    pub fn has_child(&self, child: &str) -> bool {
        self.conns
            .iter()
            .any(|c| c.children.iter().any(|k| k.name == child))
    }

    /// Sets a child's state in the model only (for captured events that say so).
    pub fn set_up(&mut self, child: &str, up: bool) {
        let (i, j) = self.find(child);
        self.conns[i].children[j].up = up;
    }

    /// Whether a child is INSTALLED.
    pub fn is_up(&self, child: &str) -> bool {
        let (i, j) = self.find(child);
        self.conns[i].children[j].up
    }

    /// Parses the frame in `self.buf[..len]` as an event swandog uses.
    fn parse_event(&self, len: usize) -> Event {
        let (payload, used) = split_frame(&self.buf[..len])
            .expect("frame")
            .expect("whole frame");
        assert_eq!(used, len);
        let packet = Packet::parse(payload).expect("packet");
        assert_eq!(packet.kind, PacketType::Event);
        Event::parse(packet.name.unwrap_or_default(), packet.message)
            .expect("event view")
            .expect("an event swandog uses")
    }

    /// A captured frame, as it would arrive on the event socket.
    pub fn replay(&mut self, frame: &[u8]) -> Event {
        self.buf[..frame.len()].copy_from_slice(frame);
        self.parse_event(frame.len())
    }

    fn write_ike(
        w: &mut Writer<'_>,
        conn: &SimConn,
        state: &[u8],
        only: Option<(usize, &[u8])>,
        active: &[&[u8]],
        passive: &[&[u8]],
    ) -> Result<(), WireError> {
        w.section_start(conn.name.as_bytes())?;
        w.key_value(b"uniqueid", Num::new(conn.ike_uid.into()).bytes())?;
        w.key_value(b"version", b"2")?;
        w.key_value(b"state", state)?;
        w.key_value(b"local-host", b"192.0.2.1")?;
        w.key_value(b"remote-host", b"192.0.2.2")?;
        w.key_value(b"initiator", b"yes")?;
        for (key, tasks) in [(&b"tasks-active"[..], active), (b"tasks-passive", passive)] {
            if !tasks.is_empty() {
                w.list_start(key)?;
                for t in tasks {
                    w.list_item(t)?;
                }
                w.list_end()?;
            }
        }
        w.section_start(b"child-sas")?;
        for (j, c) in conn.children.iter().enumerate() {
            let child_state: &[u8] = match only {
                Some((k, s)) if k == j => s,
                Some(_) => continue,
                None if c.up => b"INSTALLED",
                None => continue,
            };
            let mut sec = [0u8; 96];
            let n = c.name.len();
            sec[..n].copy_from_slice(c.name.as_bytes());
            sec[n] = b'-';
            let uid = Num::new(c.uid.into());
            sec[n + 1..n + 1 + uid.len].copy_from_slice(uid.bytes());
            w.section_start(&sec[..n + 1 + uid.len])?;
            w.key_value(b"name", c.name.as_bytes())?;
            w.key_value(b"uniqueid", uid.bytes())?;
            w.key_value(b"state", child_state)?;
            w.key_value(b"mode", b"TUNNEL")?;
            if c.if_id != 0 {
                w.key_value(b"if-id-in", Num::hex8(c.if_id).bytes())?;
                w.key_value(b"if-id-out", Num::hex8(c.if_id).bytes())?;
            }
            let p = Num::new(c.packets);
            w.key_value(b"packets-in", p.bytes())?;
            w.key_value(b"packets-out", p.bytes())?;
            w.key_value(b"bytes-in", Num::new(c.packets * 100).bytes())?;
            w.key_value(b"bytes-out", Num::new(c.packets * 100).bytes())?;
            w.section_end()?;
        }
        w.section_end()?;
        w.section_end()
    }

    /// `list-sas`: one `list-sa` frame per connection with an INSTALLED child, each parsed and
    /// handed to `each` (the way the shell's worker streams them into the agent).
    pub fn list_sas(&mut self, each: &mut dyn FnMut(&IkeSa)) {
        for i in 0..self.conns.len() {
            for c in self.conns[i].children.iter_mut().filter(|c| c.up) {
                c.packets += 10;
            }
            if !self.conns[i].children.iter().any(|c| c.up) {
                continue;
            }
            let len = {
                let mut w = Writer::new(&mut self.buf, PacketType::Event, Some(b"list-sa"))
                    .expect("writer");
                Self::write_ike(&mut w, &self.conns[i], b"ESTABLISHED", None, &[], &[])
                    .expect("list-sa fits");
                w.finish().expect("finish").len()
            };
            let (payload, _) = split_frame(&self.buf[..len]).unwrap().unwrap();
            let packet = Packet::parse(payload).unwrap();
            IkeSa::parse_chunked(packet.message, each).expect("list-sa view");
        }
    }

    /// `list-conns`: one `list-conn` frame per connection, parsed and handed to `each` in parts
    /// (the way the shell's worker streams them into the agent).
    pub fn list_conns(&mut self, each: &mut dyn FnMut(&Conn)) {
        for i in 0..self.conns.len() {
            let len = {
                let conn = &self.conns[i];
                let mut w = Writer::new(&mut self.buf, PacketType::Event, Some(b"list-conn"))
                    .expect("writer");
                let body = |w: &mut Writer<'_>| -> Result<(), WireError> {
                    w.section_start(conn.name.as_bytes())?;
                    w.list_start(b"local_addrs")?;
                    w.list_item(b"192.0.2.1")?;
                    w.list_end()?;
                    w.list_start(b"remote_addrs")?;
                    w.list_item(b"192.0.2.2")?;
                    w.list_end()?;
                    w.key_value(b"version", b"IKEv2")?;
                    w.section_start(b"children")?;
                    for c in &conn.children {
                        w.section_start(c.name.as_bytes())?;
                        w.key_value(b"mode", b"TUNNEL")?;
                        w.section_end()?;
                    }
                    w.section_end()?;
                    w.section_end()
                };
                body(&mut w).expect("list-conn fits");
                w.finish().expect("finish").len()
            };
            let (payload, _) = split_frame(&self.buf[..len]).unwrap().unwrap();
            let packet = Packet::parse(payload).unwrap();
            Conn::parse_chunked(packet.message, each).expect("list-conn view");
        }
    }

    /// A `child-updown` for one child; the model follows (`up` marks it INSTALLED with a new id).
    pub fn child_updown(&mut self, child: &str, up: bool, how: Down) -> Event {
        let (i, j) = self.find(child);
        if up {
            let uid = self.uid();
            let c = &mut self.conns[i].children[j];
            c.up = true;
            c.uid = uid;
        }
        type Tasks<'a> = &'a [&'a [u8]];
        let (child_state, active, passive): (&[u8], Tasks<'_>, Tasks<'_>) = match (up, how) {
            (true, _) => (b"INSTALLED", &[], &[]),
            (false, Down::PeerDelete) => (b"DELETED", &[], &[b"CHILD_DELETE"]),
            (false, Down::Local) => (b"DELETED", &[b"CHILD_DELETE"], &[]),
            (false, Down::Dpd) => (b"INSTALLED", &[b"IKE_DPD"], &[]),
        };
        let ike_state = b"ESTABLISHED";
        let len = {
            let mut w = Writer::new(&mut self.buf, PacketType::Event, Some(b"child-updown"))
                .expect("writer");
            if up {
                w.key_value(b"up", b"yes").unwrap();
            }
            Self::write_ike(
                &mut w,
                &self.conns[i],
                ike_state,
                Some((j, child_state)),
                active,
                passive,
            )
            .expect("child-updown fits");
            w.finish().expect("finish").len()
        };
        if !up {
            self.conns[i].children[j].up = false;
        }
        self.parse_event(len)
    }

    /// An `ike-updown` for a connection (a down takes its children down in the model).
    pub fn ike_updown(&mut self, conn: &str, up: bool, how: Down) -> Event {
        let i = self
            .conns
            .iter()
            .position(|c| c.name == conn)
            .expect("connection");
        if up {
            self.conns[i].ike_uid = self.uid();
        }
        let (state, active, passive): (&[u8], &[&[u8]], &[&[u8]]) = match (up, how) {
            (true, _) => (b"ESTABLISHED", &[], &[]),
            (false, Down::PeerDelete) => (b"DELETING", &[], &[b"IKE_DELETE"]),
            (false, Down::Local) => (b"DELETING", &[b"IKE_DELETE"], &[]),
            (false, Down::Dpd) => (b"ESTABLISHED", &[b"IKE_DPD"], &[]),
        };
        let len = {
            let mut w =
                Writer::new(&mut self.buf, PacketType::Event, Some(b"ike-updown")).expect("writer");
            if up {
                w.key_value(b"up", b"yes").unwrap();
            }
            Self::write_ike(&mut w, &self.conns[i], state, None, active, passive)
                .expect("ike-updown fits");
            w.finish().expect("finish").len()
        };
        if !up {
            for c in self.conns[i].children.iter_mut() {
                c.up = false;
            }
        }
        self.parse_event(len)
    }

    /// A `log` (or `control-log`) line about an IKE_SA.
    pub fn log(&mut self, kind: &[u8], ike: &str, msg: &str) -> Event {
        let len = {
            let mut w = Writer::new(&mut self.buf, PacketType::Event, Some(kind)).expect("writer");
            let body = |w: &mut Writer<'_>| -> Result<(), WireError> {
                w.key_value(b"group", b"IKE")?;
                w.key_value(b"level", b"1")?;
                w.key_value(b"ikesa-name", ike.as_bytes())?;
                w.key_value(b"ikesa-uniqueid", b"7")?;
                w.key_value(b"msg", msg.as_bytes())
            };
            body(&mut w).expect("log fits");
            w.finish().expect("finish").len()
        };
        self.parse_event(len)
    }

    /// An `alert` about IKE_SA `ike` (strongSwan 6.0.3+).
    pub fn alert(&mut self, kind: &str, ike: &str) -> Event {
        let len = {
            let mut w =
                Writer::new(&mut self.buf, PacketType::Event, Some(b"alert")).expect("writer");
            let body = |w: &mut Writer<'_>| -> Result<(), WireError> {
                w.key_value(b"type", kind.as_bytes())?;
                w.section_start(b"ike-sa")?;
                w.section_start(ike.as_bytes())?;
                w.key_value(b"state", b"CONNECTING")?;
                w.section_end()?;
                w.section_end()
            };
            body(&mut w).expect("alert fits");
            w.finish().expect("finish").len()
        };
        self.parse_event(len)
    }

    fn control_log(&mut self, ike: &str, msg: &str) -> LogLine {
        match self.log(b"control-log", ike, msg) {
            Event::Log(line) => line,
            other => panic!("control-log parsed as {other:?}"),
        }
    }
}

/// What the simulated shell saw the agent do.
pub enum Seen<'a> {
    /// A syslog line.
    Log(Level, &'a str),
    /// A VICI job the worker ran.
    Job(&'a Job),
    /// A status snapshot written.
    Status(&'a str),
    /// A load sample taken; the interval until the next one.
    Sample(u64),
}

/// The agent, the simulated charon and clock: what `run.rs` does, minus the sockets.
pub struct Sim {
    /// The agent under test (boxed, like the shell's `Rc<Shared>`).
    pub agent: Box<Agent>,
    /// The charon it talks to.
    pub charon: Charon,
    /// Simulated monotonic time.
    pub now: Millis,
    /// When the next load sample is due.
    pub next_sample: Millis,
    /// The box's busy share for the following samples.
    pub busy_permille: u16,
    /// swandog's own CPU time so far, as `getrusage` would say.
    pub own_cpu_us: u64,
    /// CPU swandog spends per sample (feeds `own_cpu_us`).
    pub cpu_per_wake_us: u64,
    /// The status text of the last write (the caller's buffer, reused; the shell streams it to
    /// its file instead).
    pub status: String,
    /// Whether the event link is up.
    pub link_up: bool,
    lines: HVec<(Level, swandog::agent::Line), 64>,
    write_status: bool,
    last_sample_at: Millis,
}

impl Sim {
    /// An agent with `settings` talking to `charon`, connected, with its first list-conns and
    /// list-sas answered; status texts are rendered into `status`.
    pub fn new(
        settings: Settings,
        charon: Charon,
        status: String,
        obs: &mut dyn FnMut(Millis, Seen<'_>),
    ) -> Sim {
        let mut sim = Sim {
            agent: Box::new(Agent::new(settings, 7)),
            charon,
            now: 0,
            next_sample: 0,
            busy_permille: 200,
            own_cpu_us: 0,
            cpu_per_wake_us: 30,
            status,
            link_up: false,
            lines: HVec::new(),
            write_status: false,
            last_sample_at: 0,
        };
        sim.agent.on_vici_link(0, true, false);
        sim.link_up = true;
        sim.poll(obs);
        sim
    }

    /// One `poll` and everything it asked for, the way the shell's main loop and worker do it.
    pub fn poll(&mut self, obs: &mut dyn FnMut(Millis, Seen<'_>)) {
        let now = self.now;
        let lines = &mut self.lines;
        let write_status = &mut self.write_status;
        self.agent.poll(now, &mut |action| match action {
            Action::Log(level, line) => {
                lines
                    .push((level, line))
                    .expect("at most 64 lines per poll");
            }
            Action::Work => {}
            Action::WriteStatus => *write_status = true,
        });
        for (level, line) in self.lines.iter() {
            obs(now, Seen::Log(*level, line));
        }
        self.lines.clear();
        if self.write_status {
            self.write_status = false;
            self.status.clear();
            render_status(
                &self.agent.status(now),
                1_800_000_000 + now / 1000,
                &mut self.status,
            );
            obs(now, Seen::Status(&self.status));
        }
        // The worker takes the agent's calls one by one after the main loop's poll (the lines
        // they cause wait for the next poll, as in the shell).
        let mut taken = 0;
        while let Some(job) = self.agent.next_job(now) {
            obs(now, Seen::Job(&job));
            self.run_job(&job);
            taken += 1;
            assert!(
                taken < 1000,
                "at {now} ms the agent hands out calls without end"
            );
        }
    }

    fn run_job(&mut self, job: &Job) {
        let now = self.now;
        match job {
            Job::ListSas => {
                self.agent.on_sas_begin(now);
                let agent = &mut self.agent;
                self.charon.list_sas(&mut |ike| agent.on_sa(ike));
                self.agent.on_sas_done(now, Ok(()));
            }
            Job::ListConns => {
                self.agent.on_conns_begin(now);
                let agent = &mut self.agent;
                self.charon.list_conns(&mut |conn| agent.on_conn(conn));
                self.agent.on_conns_done(now, Ok(()));
            }
            Job::Initiate { child, ike, .. } if !self.charon.has_child(child) => {
                // charon's answer for a child whose config is gone (vici_control.c).
                let mut errmsg = heapless::String::new();
                let _ = core::fmt::Write::write_fmt(
                    &mut errmsg,
                    format_args!("CHILD_SA config '{child}' not found"),
                );
                self.agent.on_command_done(
                    now,
                    CommandDone::Initiated {
                        child,
                        ike,
                        result: &Ok(InitiateReply {
                            success: false,
                            errmsg,
                        }),
                    },
                );
            }
            Job::Initiate { child, ike, .. } => {
                let l = self
                    .charon
                    .control_log(ike, "initiating IKE_SA con[7] to 192.0.2.2");
                self.agent.on_control_log(now, child, &l);
                let result = if self.charon.unreachable {
                    let l = self
                        .charon
                        .control_log(ike, "establishing IKE_SA failed, peer not responding");
                    self.agent.on_control_log(now, child, &l);
                    if let Some(kind) = self.charon.alert_on_failure {
                        let alert = self.charon.alert(kind, ike);
                        self.agent.on_event(now, &alert);
                    }
                    InitiateReply {
                        success: false,
                        errmsg: heapless::String::try_from("establishing CHILD_SA failed").unwrap(),
                    }
                } else {
                    let l = self.charon.control_log(
                        ike,
                        "CHILD_SA con{7} established with SPIs 40c42c2c_i 43d435f2_o",
                    );
                    self.agent.on_control_log(now, child, &l);
                    let up = self.charon.child_updown(child, true, Down::Local);
                    self.agent.on_event(now, &up);
                    InitiateReply {
                        success: true,
                        errmsg: heapless::String::new(),
                    }
                };
                self.agent.on_command_done(
                    now,
                    CommandDone::Initiated {
                        child,
                        ike,
                        result: &Ok(result),
                    },
                );
            }
            Job::Terminate { child, .. } => {
                let down = self.charon.child_updown(child, false, Down::Local);
                self.agent.on_event(now, &down);
                self.agent.on_command_done(
                    now,
                    CommandDone::Terminated {
                        child,
                        result: &Ok(InitiateReply {
                            success: true,
                            errmsg: heapless::String::new(),
                        }),
                    },
                );
            }
        }
    }

    /// A `list-sas` that fails midway (after one IKE_SA): its partial view must be dropped.
    pub fn fail_list_sas(&mut self) {
        self.agent.on_sas_begin(self.now);
        let agent = &mut self.agent;
        let mut first = true;
        self.charon.list_sas(&mut |ike| {
            if first {
                agent.on_sa(ike);
                first = false;
            }
        });
        self.agent.on_sas_done(
            self.now,
            Err(&CommandError::new(
                CommandErrorKind::Timeout,
                "charon did not answer list-sas",
            )),
        );
    }

    /// An event arrives now (the shell hands it over, then polls).
    pub fn event(&mut self, event: &Event, obs: &mut dyn FnMut(Millis, Seen<'_>)) {
        self.agent.on_event(self.now, event);
        self.poll(obs);
    }

    fn sample(&mut self, obs: &mut dyn FnMut(Millis, Seen<'_>)) {
        let now = self.now;
        let span = now.saturating_sub(self.last_sample_at).max(1);
        self.last_sample_at = now;
        let busy = self.busy_permille;
        self.agent.on_load(
            now,
            &LoadSample {
                at: now,
                span_ms: span as u32,
                busy_permille: busy,
                busiest_cpu_permille: busy.saturating_add(30).min(1000),
                softirq_permille: busy / 10,
                psi_some_avg10_centi: Some(busy * 5),
            },
        );
        self.own_cpu_us += self.cpu_per_wake_us;
        self.agent.on_own_cpu(now, self.own_cpu_us);
        let interval = self.agent.sample_interval_ms();
        self.next_sample = now + interval;
        obs(now, Seen::Sample(interval));
    }

    /// Runs the shell's loop until `until`: poll, sleep to the agent's wake-up or the next
    /// sample, sample when due. Panics when the agent asks to be polled again at once, again and
    /// again without time passing: the real shell would spin at 100 % CPU.
    pub fn run_until(&mut self, until: Millis, obs: &mut dyn FnMut(Millis, Seen<'_>)) {
        let mut spins = 0;
        loop {
            self.poll(obs);
            let agent_wake = self.agent.next_wake();
            if agent_wake <= self.now && self.next_sample > self.now {
                spins += 1;
                assert!(
                    spins < 20,
                    "at {} ms the agent keeps asking to be polled at once (next_wake {} ms): the shell would spin",
                    self.now,
                    agent_wake
                );
            } else {
                spins = 0;
            }
            let wake = agent_wake.min(self.next_sample).max(self.now);
            if wake > until {
                self.now = until;
                return;
            }
            self.now = wake;
            if self.now >= self.next_sample {
                self.sample(obs);
            }
        }
    }
}
