//! Typed, owned views of what charon reports: IKE and CHILD SAs, updown, log and alert events,
//! configured connections.
//!
//! Built from [`wire`](super::wire) elements in one pass, into fixed-capacity values (heapless), so
//! they can be handed to the sans-I/O agent after the receive buffer is reused.
//!
//! ```
//! use swandog::vici::sa::{ChildState, IkeSa};
//! use swandog::vici::wire::{Packet, PacketType, Writer};
//!
//! let mut buf = [0u8; 256];
//! let mut w = Writer::new(&mut buf, PacketType::Event, Some(b"list-sa")).unwrap();
//! w.section_start(b"con1").unwrap();
//! w.key_value(b"uniqueid", b"7").unwrap();
//! w.key_value(b"state", b"ESTABLISHED").unwrap();
//! w.section_start(b"child-sas").unwrap();
//! w.section_start(b"con1-3").unwrap();
//! w.key_value(b"name", b"con1").unwrap();
//! w.key_value(b"state", b"INSTALLED").unwrap();
//! w.key_value(b"if-id-in", b"0000002a").unwrap();
//! for _ in 0..3 { w.section_end().unwrap(); }
//! let frame = w.finish().unwrap();
//!
//! let packet = Packet::parse(&frame[4..]).unwrap();
//! let ikes: heapless::Vec<IkeSa, 4> = IkeSa::parse_all(packet.message).unwrap();
//! assert_eq!(ikes[0].name.as_str(), "con1");
//! assert_eq!(ikes[0].children[0].state, ChildState::Installed);
//! assert!(ikes[0].children[0].is_route_based());
//! ```

use core::fmt;

use heapless::{String, Vec};

use super::wire::{Element, Elements, Error};
use crate::limits::{CHILD_SAS_PER_IKE_MAX, HOST_MAX_BYTES, LOG_MSG_MAX_BYTES, NAME_MAX_BYTES};

/// A connection, child or IKE_SA name as charon reports it.
pub type Name = String<NAME_MAX_BYTES>;

/// Why a message could not be turned into a typed view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewError {
    /// The message itself is malformed.
    Wire(Error),
    /// A name longer than swandog stores (see `NAME_MAX_BYTES`).
    NameTooLong,
    /// An expected section is missing.
    Missing(&'static str),
}

impl From<Error> for ViewError {
    fn from(e: Error) -> Self {
        ViewError::Wire(e)
    }
}

impl fmt::Display for ViewError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ViewError::Wire(e) => e.fmt(f),
            ViewError::NameTooLong => write!(f, "name longer than {NAME_MAX_BYTES} bytes"),
            ViewError::Missing(what) => write!(f, "message lacks {what}"),
        }
    }
}

/// Whether a connection or child name may be passed on: back to charon in `initiate`, and into
/// log lines and the status file. 1 to [`NAME_MAX_BYTES`] bytes of printable ASCII without
/// spaces (pfSense's `con2_1`, and anything a sane swanctl.conf holds). Names in charon's messages
/// are kept as they come (so a list stays whole); this is checked where one is passed on.
///
/// ```
/// use swandog::vici::sa::is_safe_name;
/// assert!(is_safe_name("con2_1") && is_safe_name("site-b.vti@42"));
/// assert!(!is_safe_name("") && !is_safe_name("con1\nfake line") && !is_safe_name("tünnel"));
/// ```
pub fn is_safe_name(name: &str) -> bool {
    (1..=NAME_MAX_BYTES).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_graphic())
}

fn name_from(bytes: &[u8]) -> Result<Name, ViewError> {
    let text = core::str::from_utf8(bytes).map_err(|_| ViewError::NameTooLong)?;
    Name::try_from(text).map_err(|_| ViewError::NameTooLong)
}

/// Copies as much of `bytes` as fits (on a char boundary, lossy for invalid UTF-8).
pub fn lossy_truncated<const N: usize>(bytes: &[u8]) -> String<N> {
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        for c in chunk
            .valid()
            .chars()
            .chain(chunk.invalid().iter().map(|_| '?'))
        {
            if out.push(c).is_err() {
                return out;
            }
        }
    }
    out
}

fn parse_u64(value: &[u8]) -> Option<u64> {
    core::str::from_utf8(value).ok()?.trim().parse().ok()
}

/// `if-id` and marks come as hex (`0000002a`, `00000001/ffffffff`): the value before the mask.
fn parse_hex_u32(value: &[u8]) -> Option<u32> {
    let text = core::str::from_utf8(value).ok()?;
    let text = text.split('/').next()?.trim();
    let text = text.strip_prefix("0x").unwrap_or(text);
    u32::from_str_radix(text, 16).ok()
}

macro_rules! states {
    ($(#[$doc:meta])* $ty:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub enum $ty {
            $(#[doc = $text] $variant,)*
            /// A state swandog does not know (a newer charon).
            #[default]
            Unknown,
        }

        impl $ty {
            /// Parses charon's spelling.
            pub fn parse(value: &[u8]) -> Self {
                $(if value == $text.as_bytes() {
                    return $ty::$variant;
                })*
                $ty::Unknown
            }

            /// charon's spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $text,)*
                    $ty::Unknown => "UNKNOWN",
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

states!(
    /// IKE_SA states (`ike_sa_state_t`).
    IkeState {
        Created = "CREATED",
        Connecting = "CONNECTING",
        Established = "ESTABLISHED",
        Passive = "PASSIVE",
        Rekeying = "REKEYING",
        Rekeyed = "REKEYED",
        Deleting = "DELETING",
        Destroying = "DESTROYING",
    }
);

states!(
    /// CHILD_SA states (`child_sa_state_t`).
    ChildState {
        Created = "CREATED",
        Routed = "ROUTED",
        Installing = "INSTALLING",
        Installed = "INSTALLED",
        Updating = "UPDATING",
        Rekeying = "REKEYING",
        Rekeyed = "REKEYED",
        Retrying = "RETRYING",
        Deleting = "DELETING",
        Deleted = "DELETED",
        Destroying = "DESTROYING",
    }
);

impl ChildState {
    /// Whether traffic flows: installed, or being rekeyed (the old SA still carries it).
    pub fn is_up(self) -> bool {
        matches!(
            self,
            ChildState::Installed
                | ChildState::Rekeying
                | ChildState::Rekeyed
                | ChildState::Updating
        )
    }
}

/// The IKE tasks swandog cares about, as a small set (charon lists them by name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tasks(u16);

impl Tasks {
    const NAMES: [&'static str; 11] = [
        "IKE_DPD",
        "IKE_DELETE",
        "CHILD_DELETE",
        "CHILD_CREATE",
        "CHILD_REKEY",
        "IKE_REKEY",
        "IKE_REAUTH",
        "IKE_INIT",
        "IKE_AUTH",
        "IKE_MOBIKE",
        "ISAKMP_DPD",
    ];

    /// Adds a task by charon's name; unknown names are ignored.
    pub fn insert(&mut self, name: &[u8]) {
        if let Some(i) = Self::NAMES.iter().position(|n| n.as_bytes() == name) {
            self.0 |= 1 << i;
        }
    }

    /// Whether the named task is in the set.
    pub fn contains(self, name: &str) -> bool {
        Self::NAMES
            .iter()
            .position(|n| *n == name)
            .is_some_and(|i| self.0 & (1 << i) != 0)
    }

    /// The names in the set.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES
            .iter()
            .enumerate()
            .filter(move |(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, n)| *n)
    }
}

/// One CHILD_SA as `list-sas` and `child-updown` describe it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChildSa {
    /// The configured child name (`con2_1`): what swandog matches on.
    pub name: Name,
    /// Changes on every re-establishment.
    pub uniqueid: u32,
    /// The CHILD_SA state.
    pub state: ChildState,
    /// XFRM interface ids (0 = none).
    pub if_id_in: u32,
    /// XFRM interface id outbound (0 = none).
    pub if_id_out: u32,
    /// Inbound mark (0 = none).
    pub mark_in: u32,
    /// Outbound mark (0 = none).
    pub mark_out: u32,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Packets received.
    pub packets_in: u64,
    /// Packets sent.
    pub packets_out: u64,
    /// Seconds since the last inbound packet, when there was one.
    pub use_in_s: Option<u32>,
    /// Seconds since the last outbound packet, when there was one.
    pub use_out_s: Option<u32>,
}

impl ChildSa {
    /// Route-based (VTI / XFRM interface): has an interface id or a mark, so no trap policy helps.
    pub fn is_route_based(&self) -> bool {
        self.if_id_in != 0 || self.if_id_out != 0 || self.mark_in != 0 || self.mark_out != 0
    }

    fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), ViewError> {
        let num = || parse_u64(value);
        match key {
            b"name" => self.name = name_from(value)?,
            b"uniqueid" => self.uniqueid = num().unwrap_or(0) as u32,
            b"state" => self.state = ChildState::parse(value),
            b"if-id-in" => self.if_id_in = parse_hex_u32(value).unwrap_or(0),
            b"if-id-out" => self.if_id_out = parse_hex_u32(value).unwrap_or(0),
            b"mark-in" => self.mark_in = parse_hex_u32(value).unwrap_or(0),
            b"mark-out" => self.mark_out = parse_hex_u32(value).unwrap_or(0),
            b"bytes-in" => self.bytes_in = num().unwrap_or(0),
            b"bytes-out" => self.bytes_out = num().unwrap_or(0),
            b"packets-in" => self.packets_in = num().unwrap_or(0),
            b"packets-out" => self.packets_out = num().unwrap_or(0),
            b"use-in" => self.use_in_s = num().map(|n| n as u32),
            b"use-out" => self.use_out_s = num().map(|n| n as u32),
            _ => {}
        }
        Ok(())
    }
}

/// One IKE_SA with its CHILD_SAs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IkeSa {
    /// The connection name (`con2`).
    pub name: Name,
    /// Changes on every re-establishment.
    pub uniqueid: u32,
    /// IKE version (1 or 2; 0 when not reported).
    pub version: u8,
    /// The IKE_SA state.
    pub state: IkeState,
    /// Whether this side initiated it.
    pub initiator: bool,
    /// Local address.
    pub local_host: String<HOST_MAX_BYTES>,
    /// Remote address.
    pub remote_host: String<HOST_MAX_BYTES>,
    /// XFRM interface id inbound for the IKE_SA (0 = none).
    pub if_id_in: u32,
    /// XFRM interface id outbound for the IKE_SA (0 = none).
    pub if_id_out: u32,
    /// Tasks being run by this side.
    pub tasks_active: Tasks,
    /// Tasks being run on the peer's request.
    pub tasks_passive: Tasks,
    /// The children (first `CHILD_SAS_PER_IKE_MAX`; [`IkeSa::parse_chunked`] hands out the
    /// rest in further parts).
    pub children: Vec<ChildSa, CHILD_SAS_PER_IKE_MAX>,
    /// Children beyond capacity, counted and not stored.
    pub children_dropped: u16,
    /// Which part of its IKE_SA this is: 0 for the first (or only) one; [`IkeSa::parse_chunked`]
    /// repeats the IKE_SA's own fields with the next `CHILD_SAS_PER_IKE_MAX` children in parts
    /// 1, 2, …
    pub part: u16,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum List {
    None,
    Active,
    Passive,
    Other,
}

impl IkeSa {
    /// Parses every top-level IKE section of a message (`list-sa` carries one, `ike-updown` one
    /// beside `up`).
    pub fn parse_all<const N: usize>(message: &[u8]) -> Result<Vec<IkeSa, N>, ViewError> {
        let mut out = Vec::new();
        let mut elements = Elements::new(message);
        while let Some(element) = elements.next() {
            if let Element::SectionStart(name) = element? {
                let ike = IkeSa::parse_body(name, &mut elements)?;
                if out.push(ike).is_err() {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Parses the first IKE section of a message (one `list-sa` event) and hands it to `on` in
    /// parts of at most `CHILD_SAS_PER_IKE_MAX` children each ([`IkeSa::part`] 0, 1, …), so an
    /// IKE_SA with a hundred children is seen whole without a table that large. Returns the
    /// number of parts (0: no IKE section).
    pub fn parse_chunked(message: &[u8], on: &mut dyn FnMut(&IkeSa)) -> Result<u16, ViewError> {
        let mut elements = Elements::new(message);
        while let Some(element) = elements.next() {
            if let Element::SectionStart(name) = element? {
                let mut parts = 0u16;
                let mut on_part = |ike: &IkeSa| {
                    parts = parts.saturating_add(1);
                    on(ike)
                };
                IkeSa::parse_into(name, &mut elements, Some(&mut on_part))?;
                return Ok(parts);
            }
        }
        Ok(0)
    }

    /// Parses the body of an IKE section whose start (`name`) was just read.
    fn parse_body(name: &[u8], elements: &mut Elements<'_>) -> Result<IkeSa, ViewError> {
        IkeSa::parse_into(name, elements, None)
    }

    /// [`IkeSa::parse_body`]; with `parts`, a full children table is handed to it and emptied
    /// instead of counting further children as dropped, and the last part goes to it too.
    fn parse_into(
        name: &[u8],
        elements: &mut Elements<'_>,
        mut parts: Option<&mut dyn FnMut(&IkeSa)>,
    ) -> Result<IkeSa, ViewError> {
        let mut ike = IkeSa {
            name: name_from(name)?,
            ..IkeSa::default()
        };
        let base = elements.depth();
        let mut list = List::None;
        let mut in_children = false;
        let mut child: Option<ChildSa> = None;
        while let Some(element) = elements.next() {
            let element = element?;
            let depth = elements.depth();
            match element {
                Element::SectionEnd if depth < base => {
                    if let Some(on) = parts.as_mut() {
                        on(&ike);
                    }
                    return Ok(ike);
                }
                Element::SectionEnd => {
                    if let Some(done) = child.take() {
                        if ike.children.is_full() {
                            if let Some(on) = parts.as_mut() {
                                on(&ike);
                                ike.children.clear();
                                ike.part = ike.part.saturating_add(1);
                            }
                        }
                        if ike.children.push(done).is_err() {
                            ike.children_dropped = ike.children_dropped.saturating_add(1);
                        }
                    } else if depth == base {
                        in_children = false;
                    }
                }
                Element::SectionStart(b"child-sas") if depth == base + 1 => in_children = true,
                Element::SectionStart(_) if in_children && depth == base + 2 => {
                    child = Some(ChildSa::default());
                }
                Element::SectionStart(_) => {}
                Element::KeyValue(key, value) => match (&mut child, depth == base) {
                    (Some(c), _) if depth == base + 2 => c.set(key, value)?,
                    (_, true) => ike.set(key, value),
                    _ => {}
                },
                Element::ListStart(key) if depth == base => {
                    list = match key {
                        b"tasks-active" => List::Active,
                        b"tasks-passive" => List::Passive,
                        _ => List::Other,
                    }
                }
                Element::ListStart(_) => list = List::Other,
                Element::ListItem(item) => match list {
                    List::Active => ike.tasks_active.insert(item),
                    List::Passive => ike.tasks_passive.insert(item),
                    _ => {}
                },
                Element::ListEnd => list = List::None,
            }
        }
        Err(ViewError::Wire(Error::UnclosedSection))
    }

    fn set(&mut self, key: &[u8], value: &[u8]) {
        match key {
            b"uniqueid" => self.uniqueid = parse_u64(value).unwrap_or(0) as u32,
            b"version" => self.version = parse_u64(value).unwrap_or(0) as u8,
            b"state" => self.state = IkeState::parse(value),
            b"initiator" => self.initiator = value == b"yes",
            b"local-host" => self.local_host = lossy_truncated(value),
            b"remote-host" => self.remote_host = lossy_truncated(value),
            b"if-id-in" => self.if_id_in = parse_hex_u32(value).unwrap_or(0),
            b"if-id-out" => self.if_id_out = parse_hex_u32(value).unwrap_or(0),
            _ => {}
        }
    }

    /// The first child of that name, if any.
    pub fn child(&self, name: &str) -> Option<&ChildSa> {
        self.children.iter().find(|c| c.name == name)
    }
}

/// A `log` or `control-log` line from charon.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogLine {
    /// Subsystem (`IKE`, `CHD`, `NET`, `CFG`, …).
    pub group: String<4>,
    /// charon's log level (0–4).
    pub level: i8,
    /// The IKE_SA it is about, when any.
    pub ike: Option<Name>,
    /// That IKE_SA's unique id, when any.
    pub ike_id: u32,
    /// The text (truncated to `LOG_MSG_MAX_BYTES`).
    pub msg: String<LOG_MSG_MAX_BYTES>,
}

impl LogLine {
    /// Parses a `log` / `control-log` event message.
    pub fn parse(message: &[u8]) -> Result<LogLine, ViewError> {
        let mut line = LogLine::default();
        for element in Elements::new(message) {
            if let Element::KeyValue(key, value) = element? {
                match key {
                    b"group" => line.group = lossy_truncated(value),
                    b"level" => {
                        line.level = core::str::from_utf8(value)
                            .ok()
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0)
                    }
                    b"ikesa-name" => line.ike = name_from(value).ok(),
                    b"ikesa-uniqueid" => line.ike_id = parse_u64(value).unwrap_or(0) as u32,
                    b"msg" => line.msg = lossy_truncated(value),
                    _ => {}
                }
            }
        }
        Ok(line)
    }
}

/// One event from the event connection, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An IKE_SA went up or down (an IKE down is followed by one child down per child).
    IkeUpDown {
        /// `true` on up.
        up: bool,
        /// The IKE_SA as it was at that moment.
        ike: IkeSa,
    },
    /// A CHILD_SA went up or down; `ike.children` holds that one child.
    ChildUpDown {
        /// `true` on up.
        up: bool,
        /// The IKE_SA with that child.
        ike: IkeSa,
    },
    /// A charon log line.
    Log(LogLine),
    /// A strongSwan ≥ 6.0.3 alert (`retransmit-send-timeout`, …).
    Alert {
        /// The alert type.
        kind: Name,
        /// The IKE_SA named in it, when any.
        ike: Option<Name>,
    },
}

impl Event {
    /// Builds an event from an EVENT packet's name and message; `Ok(None)` for events swandog
    /// does not use.
    pub fn parse(name: &[u8], message: &[u8]) -> Result<Option<Event>, ViewError> {
        match name {
            b"ike-updown" | b"child-updown" => {
                let up = updown_flag(message)?;
                let ikes: Vec<IkeSa, 1> = IkeSa::parse_all(message)?;
                let ike = ikes
                    .into_iter()
                    .next()
                    .ok_or(ViewError::Missing("an IKE_SA section"))?;
                Ok(Some(if name == b"ike-updown" {
                    Event::IkeUpDown { up, ike }
                } else {
                    Event::ChildUpDown { up, ike }
                }))
            }
            b"log" | b"control-log" => Ok(Some(Event::Log(LogLine::parse(message)?))),
            b"alert" => parse_alert(message).map(Some),
            _ => Ok(None),
        }
    }
}

fn updown_flag(message: &[u8]) -> Result<bool, ViewError> {
    let mut elements = Elements::new(message);
    let mut up = false;
    while let Some(element) = elements.next() {
        if let Element::KeyValue(b"up", value) = element? {
            if elements.depth() == 0 {
                up = value == b"yes";
            }
        }
    }
    Ok(up)
}

/// `{type = <alert>, ike-sa = {<IKE_SA config name> = {…}}}` (vici README, strongSwan 6.0.3+):
/// the IKE_SA's name is the section's name under `ike-sa`.
fn parse_alert(message: &[u8]) -> Result<Event, ViewError> {
    let mut kind = Name::new();
    let mut ike = None;
    let mut in_ike_sa = false;
    let mut elements = Elements::new(message);
    while let Some(element) = elements.next() {
        let element = element?;
        let depth = elements.depth();
        match element {
            Element::KeyValue(b"type", value) if depth == 0 => kind = lossy_truncated(value),
            Element::SectionStart(b"ike-sa") if depth == 1 => in_ike_sa = true,
            Element::SectionStart(name) if in_ike_sa && depth == 2 && ike.is_none() => {
                ike = name_from(name).ok()
            }
            Element::SectionEnd if depth == 0 => in_ike_sa = false,
            _ => {}
        }
    }
    Ok(Event::Alert { kind, ike })
}

/// One configured child of a connection, from `list-conns`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChildConf {
    /// Child name.
    pub name: Name,
    /// Has an interface id or a mark: route-based.
    pub route_based: bool,
}

/// One configured connection, from `list-conns`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conn {
    /// Connection name.
    pub name: Name,
    /// First local address (`%any` when unset).
    pub local_addr: String<HOST_MAX_BYTES>,
    /// First remote address.
    pub remote_addr: String<HOST_MAX_BYTES>,
    /// Its children (first `CHILD_SAS_PER_IKE_MAX`; [`Conn::parse_chunked`] hands out the rest
    /// in further parts).
    pub children: Vec<ChildConf, CHILD_SAS_PER_IKE_MAX>,
    /// Children beyond capacity, counted and not stored ([`Conn::parse`] only).
    pub children_dropped: u16,
    /// Which part of its connection this is: 0 for the first (or only) one.
    pub part: u16,
}

impl Conn {
    /// Parses a `list-conn` event message (one top-level section per connection; first kept).
    pub fn parse(message: &[u8]) -> Result<Option<Conn>, ViewError> {
        Conn::parse_into(message, None)
    }

    /// Parses a `list-conn` event message and hands its connection to `on` in parts of at most
    /// `CHILD_SAS_PER_IKE_MAX` children ([`Conn::part`] 0, 1, …): a connection with a hundred
    /// children (pfSense's `conX_1` … `conX_N`) is seen whole. Returns the number of parts.
    pub fn parse_chunked(message: &[u8], on: &mut dyn FnMut(&Conn)) -> Result<u16, ViewError> {
        let mut parts = 0u16;
        let mut on_part = |c: &Conn| {
            parts = parts.saturating_add(1);
            on(c)
        };
        if let Some(last) = Conn::parse_into(message, Some(&mut on_part))? {
            on_part(&last);
        }
        Ok(parts)
    }

    fn parse_into(
        message: &[u8],
        mut parts: Option<&mut dyn FnMut(&Conn)>,
    ) -> Result<Option<Conn>, ViewError> {
        let mut elements = Elements::new(message);
        let mut conn: Option<Conn> = None;
        let mut list: &[u8] = b"";
        let mut in_children = false;
        while let Some(element) = elements.next() {
            let element = element?;
            let depth = elements.depth();
            match element {
                Element::SectionStart(name) if depth == 1 => {
                    if conn.is_some() {
                        break;
                    }
                    conn = Some(Conn {
                        name: name_from(name)?,
                        ..Conn::default()
                    });
                }
                Element::SectionStart(b"children") if depth == 2 => in_children = true,
                Element::SectionStart(name) if in_children && depth == 3 => {
                    if let Some(c) = conn.as_mut() {
                        let child = ChildConf {
                            name: name_from(name)?,
                            route_based: false,
                        };
                        if c.children.is_full() {
                            if let Some(on) = parts.as_mut() {
                                on(c);
                                c.children.clear();
                                c.part = c.part.saturating_add(1);
                            }
                        }
                        if c.children.push(child).is_err() {
                            c.children_dropped = c.children_dropped.saturating_add(1);
                        }
                    }
                }
                Element::SectionEnd if depth == 1 => in_children = false,
                Element::KeyValue(key, value) if in_children && depth == 3 => {
                    let routing =
                        matches!(key, b"if_id_in" | b"if_id_out" | b"mark_in" | b"mark_out");
                    if routing && parse_hex_u32(value).is_some_and(|v| v != 0) {
                        if let Some(child) = conn.as_mut().and_then(|c| c.children.last_mut()) {
                            child.route_based = true;
                        }
                    }
                }
                Element::ListStart(name) => list = name,
                Element::ListItem(item) if depth == 1 => {
                    if let Some(c) = conn.as_mut() {
                        if list == b"local_addrs" && c.local_addr.is_empty() {
                            c.local_addr = lossy_truncated(item);
                        } else if list == b"remote_addrs" && c.remote_addr.is_empty() {
                            c.remote_addr = lossy_truncated(item);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(conn)
    }
}

/// Looks up a top-level key of a message (e.g. `success`, `errmsg`, `daemon`).
pub fn top_value<'a>(message: &'a [u8], key: &[u8]) -> Result<Option<&'a [u8]>, ViewError> {
    let mut elements = Elements::new(message);
    while let Some(element) = elements.next() {
        if let Element::KeyValue(k, v) = element? {
            if elements.depth() == 0 && k == key {
                return Ok(Some(v));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vici::wire::{PacketType, Writer};

    fn updown(up: bool) -> std::vec::Vec<u8> {
        let mut buf = [0u8; 1024];
        let mut w = Writer::new(&mut buf, PacketType::Event, Some(b"ike-updown")).unwrap();
        if up {
            w.key_value(b"up", b"yes").unwrap();
        }
        w.section_start(b"con2").unwrap();
        w.key_value(b"uniqueid", b"12").unwrap();
        w.key_value(b"state", b"ESTABLISHED").unwrap();
        w.key_value(b"remote-host", b"192.0.2.2").unwrap();
        w.list_start(b"tasks-active").unwrap();
        w.list_item(b"IKE_DPD").unwrap();
        w.list_end().unwrap();
        w.list_start(b"tasks-passive").unwrap();
        w.list_item(b"CHILD_DELETE").unwrap();
        w.list_end().unwrap();
        w.section_start(b"child-sas").unwrap();
        for (key, name, uid) in [
            (&b"con2_1-5"[..], &b"con2_1"[..], &b"5"[..]),
            (b"con2_2-6", b"con2_2", b"6"),
        ] {
            w.section_start(key).unwrap();
            w.key_value(b"name", name).unwrap();
            w.key_value(b"uniqueid", uid).unwrap();
            w.key_value(b"state", b"REKEYED").unwrap();
            w.key_value(b"packets-out", b"18446744073709551615")
                .unwrap();
            w.key_value(b"mark-out", b"00000000/ffffffff").unwrap();
            w.list_start(b"local-ts").unwrap();
            w.list_item(b"198.51.100.64/26").unwrap();
            w.list_end().unwrap();
            w.section_end().unwrap();
        }
        w.section_end().unwrap();
        w.section_end().unwrap();
        w.finish().unwrap()[4..].to_vec()
    }

    #[test]
    fn alert_event_names_its_ike_sa_from_the_section_under_ike_sa() {
        let mut buf = [0u8; 512];
        let mut w = Writer::new(&mut buf, PacketType::Event, Some(b"alert")).unwrap();
        w.key_value(b"type", b"proposal-mismatch-child").unwrap();
        w.section_start(b"ike-sa").unwrap();
        w.section_start(b"con2").unwrap();
        w.key_value(b"uniqueid", b"7").unwrap();
        w.key_value(b"state", b"ESTABLISHED").unwrap();
        w.section_end().unwrap();
        w.section_end().unwrap();
        let frame = w.finish().unwrap().to_vec();
        let packet = crate::vici::wire::Packet::parse(&frame[4..]).unwrap();
        let event = Event::parse(packet.name.unwrap(), packet.message).unwrap();
        let Some(Event::Alert { kind, ike }) = event else {
            panic!("{event:?}")
        };
        assert_eq!(kind, "proposal-mismatch-child");
        assert_eq!(ike.as_deref(), Some("con2"));
        // An alert about no IKE_SA (e.g. radius-not-responding) has none.
        let mut buf = [0u8; 128];
        let mut w = Writer::new(&mut buf, PacketType::Event, Some(b"alert")).unwrap();
        w.key_value(b"type", b"radius-not-responding").unwrap();
        let frame = w.finish().unwrap().to_vec();
        let packet = crate::vici::wire::Packet::parse(&frame[4..]).unwrap();
        let event = Event::parse(packet.name.unwrap(), packet.message).unwrap();
        assert!(
            matches!(event, Some(Event::Alert { ike: None, .. })),
            "{event:?}"
        );
    }

    #[test]
    fn updown_event_yields_ike_with_tasks_and_children() {
        for up in [true, false] {
            let payload = updown(up);
            let p = crate::vici::wire::Packet::parse(&payload).unwrap();
            let Some(Event::IkeUpDown { up: got, ike }) =
                Event::parse(p.name.unwrap(), p.message).unwrap()
            else {
                panic!("not an ike-updown");
            };
            assert_eq!(got, up);
            assert_eq!(ike.name, "con2");
            assert_eq!(ike.uniqueid, 12);
            assert_eq!(ike.state, IkeState::Established);
            assert!(ike.tasks_active.contains("IKE_DPD"));
            assert!(!ike.tasks_active.contains("IKE_DELETE"));
            assert!(ike.tasks_passive.contains("CHILD_DELETE"));
            assert_eq!(ike.remote_host, "192.0.2.2");
            let names: std::vec::Vec<_> = ike.children.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(names, ["con2_1", "con2_2"]);
            assert_eq!(ike.children[1].uniqueid, 6);
            assert_eq!(ike.children[0].packets_out, u64::MAX);
            assert!(ike.children[0].state.is_up());
            assert!(!ike.children[0].is_route_based());
        }
    }

    #[test]
    fn log_event_fields_are_read_and_long_text_truncated() {
        let mut buf = vec![0u8; 4096];
        let mut w = Writer::new(&mut buf, PacketType::Event, Some(b"log")).unwrap();
        w.key_value(b"group", b"IKE").unwrap();
        w.key_value(b"level", b"1").unwrap();
        w.key_value(b"ikesa-name", b"con1").unwrap();
        w.key_value(b"ikesa-uniqueid", b"3").unwrap();
        let long = [b'x'; 1000];
        w.key_value(b"msg", &long).unwrap();
        let frame = w.finish().unwrap().to_vec();
        let p = crate::vici::wire::Packet::parse(&frame[4..]).unwrap();
        let Some(Event::Log(line)) = Event::parse(b"log", p.message).unwrap() else {
            panic!("not a log");
        };
        assert_eq!(
            (line.group.as_str(), line.level, line.ike_id),
            ("IKE", 1, 3)
        );
        assert_eq!(line.ike.as_deref(), Some("con1"));
        assert_eq!(line.msg.len(), LOG_MSG_MAX_BYTES);
    }

    #[test]
    fn names_beyond_capacity_are_an_error_not_a_panic() {
        let mut buf = [0u8; 512];
        let mut w = Writer::new(&mut buf, PacketType::Event, Some(b"list-sa")).unwrap();
        w.section_start(&[b'n'; 200]).unwrap();
        w.section_end().unwrap();
        let frame = w.finish().unwrap();
        let r: Result<Vec<IkeSa, 1>, _> = IkeSa::parse_all(&frame[13..]);
        assert_eq!(r, Err(ViewError::NameTooLong));
    }

    #[test]
    fn hex_ids_and_marks_parse() {
        assert_eq!(parse_hex_u32(b"0000002a"), Some(42));
        assert_eq!(parse_hex_u32(b"00000001/ffffffff"), Some(1));
        assert_eq!(parse_hex_u32(b"zz"), None);
    }
}
