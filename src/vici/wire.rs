//! VICI packet and message codec: parse and emit over caller-owned buffers, never allocating.
//!
//! A segment on the stream is a big-endian `u32` length followed by a payload; the payload's first
//! byte is the [`PacketType`], named types carry a `u8`-length name, and the rest is a message made
//! of [`Element`]s. Parsing is zero-copy and checks every length; it never panics, whatever bytes
//! come in: each fault is an [`Error`] value.
//!
//! ```
//! use swandog::vici::wire::{Element, Packet, PacketType, Writer};
//!
//! let mut buf = [0u8; 64];
//! let mut w = Writer::new(&mut buf, PacketType::CmdRequest, Some(b"initiate")).unwrap();
//! w.key_value(b"child", b"con1").unwrap();
//! let frame = w.finish().unwrap();
//! assert_eq!(frame[..4], [0, 0, 0, 0x17]);
//!
//! let packet = Packet::parse(&frame[4..]).unwrap();
//! assert_eq!(packet.kind, PacketType::CmdRequest);
//! assert_eq!(packet.name, Some(&b"initiate"[..]));
//! let first = packet.elements().next().unwrap().unwrap();
//! assert_eq!(first, Element::KeyValue(b"child", b"con1"));
//! ```

use core::fmt;

use crate::limits::{VICI_SECTION_DEPTH_MAX, VICI_SEGMENT_MAX_BYTES};

/// Bytes of the length prefix before every payload.
pub const HEADER_LEN: usize = 4;
/// Largest name: its length is one byte.
pub const NAME_MAX_LEN: usize = u8::MAX as usize;
/// Largest value: its length is two bytes.
pub const VALUE_MAX_LEN: usize = u16::MAX as usize;

/// What went wrong with a frame, a packet or a message; every fault has its own value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The bytes end before the length fields say they should.
    Truncated,
    /// A segment longer than charon's limit, [`VICI_SEGMENT_MAX_BYTES`] (the announced length).
    FrameTooLarge(usize),
    /// A segment with no payload at all.
    EmptyPacket,
    /// A packet type byte that is not 0..=7.
    UnknownPacketType(u8),
    /// An element type byte that is not 1..=6.
    UnknownElementType(u8),
    /// A SECTION_END with no open section.
    UnbalancedSectionEnd,
    /// A LIST_END with no open list.
    UnbalancedListEnd,
    /// A LIST_ITEM outside a list.
    ItemOutsideList,
    /// A section, key/value or another list opened inside a list (lists hold only items).
    NestedInList,
    /// The message ends with a section still open.
    UnclosedSection,
    /// The message ends with a list still open.
    UnclosedList,
    /// Sections nested deeper than swandog accepts.
    TooDeep,
    /// A name longer than 255 bytes (cannot be encoded).
    NameTooLong(usize),
    /// A value longer than 65535 bytes (cannot be encoded).
    ValueTooLong(usize),
    /// The caller's buffer cannot hold what is being written.
    BufferFull,
    /// A packet type that must carry a name was written without one, or the other way round.
    NameMismatch,
    /// Bytes after a packet whose type carries no message.
    TrailingBytes,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => f.write_str("truncated VICI data"),
            Error::FrameTooLarge(n) => {
                write!(f, "VICI frame of {n} bytes exceeds the 512 KiB limit")
            }
            Error::EmptyPacket => f.write_str("empty VICI packet"),
            Error::UnknownPacketType(t) => write!(f, "unknown VICI packet type {t}"),
            Error::UnknownElementType(t) => write!(f, "unknown VICI element type {t}"),
            Error::UnbalancedSectionEnd => f.write_str("VICI section end without a section"),
            Error::UnbalancedListEnd => f.write_str("VICI list end without a list"),
            Error::ItemOutsideList => f.write_str("VICI list item outside a list"),
            Error::NestedInList => f.write_str("VICI list holds something other than items"),
            Error::UnclosedSection => f.write_str("VICI message ends inside a section"),
            Error::UnclosedList => f.write_str("VICI message ends inside a list"),
            Error::TooDeep => write!(
                f,
                "VICI sections nested deeper than {VICI_SECTION_DEPTH_MAX}"
            ),
            Error::NameTooLong(n) => write!(f, "VICI name of {n} bytes exceeds {NAME_MAX_LEN}"),
            Error::ValueTooLong(n) => write!(f, "VICI value of {n} bytes exceeds {VALUE_MAX_LEN}"),
            Error::BufferFull => f.write_str("VICI buffer full"),
            Error::NameMismatch => f.write_str("VICI packet type and name do not agree"),
            Error::TrailingBytes => f.write_str("VICI packet has bytes after its end"),
        }
    }
}

impl std::error::Error for Error {}

/// The first byte of every payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketType {
    /// A named command with a message of arguments.
    CmdRequest = 0,
    /// The answer to a command.
    CmdResponse = 1,
    /// The daemon does not know the command.
    CmdUnknown = 2,
    /// Subscribe to a named event.
    EventRegister = 3,
    /// Unsubscribe from a named event.
    EventUnregister = 4,
    /// A (un)registration succeeded.
    EventConfirm = 5,
    /// The daemon does not know the event.
    EventUnknown = 6,
    /// A named event with a message.
    Event = 7,
}

impl PacketType {
    /// The type for a byte, or `None` for bytes 8..=255.
    pub fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            0 => PacketType::CmdRequest,
            1 => PacketType::CmdResponse,
            2 => PacketType::CmdUnknown,
            3 => PacketType::EventRegister,
            4 => PacketType::EventUnregister,
            5 => PacketType::EventConfirm,
            6 => PacketType::EventUnknown,
            7 => PacketType::Event,
            _ => return None,
        })
    }

    /// Whether a name follows the type byte.
    pub fn is_named(self) -> bool {
        matches!(
            self,
            PacketType::CmdRequest
                | PacketType::EventRegister
                | PacketType::EventUnregister
                | PacketType::Event
        )
    }

    /// Whether a message (possibly empty) follows.
    pub fn has_message(self) -> bool {
        matches!(
            self,
            PacketType::CmdRequest | PacketType::CmdResponse | PacketType::Event
        )
    }
}

/// Reads a segment's length prefix: how many payload bytes follow it.
pub fn frame_len(header: [u8; HEADER_LEN]) -> Result<usize, Error> {
    let len = u32::from_be_bytes(header) as usize;
    if len > VICI_SEGMENT_MAX_BYTES {
        return Err(Error::FrameTooLarge(len));
    }
    if len == 0 {
        return Err(Error::EmptyPacket);
    }
    Ok(len)
}

/// Splits one whole segment (prefix + payload) off the front of `bytes`.
///
/// `Ok(None)` means more bytes are needed; `Ok(Some((payload, used)))` gives the payload and the
/// number of bytes the segment took.
pub fn split_frame(bytes: &[u8]) -> Result<Option<(&[u8], usize)>, Error> {
    let Some(header) = bytes.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let len = frame_len([header[0], header[1], header[2], header[3]])?;
    match bytes.get(HEADER_LEN..HEADER_LEN + len) {
        Some(payload) => Ok(Some((payload, HEADER_LEN + len))),
        None => Ok(None),
    }
}

/// A parsed payload: type, name (for named types) and the raw message bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// The packet type.
    pub kind: PacketType,
    /// The command or event name, for named types.
    pub name: Option<&'a [u8]>,
    /// The message bytes (empty for types without one).
    pub message: &'a [u8],
}

impl<'a> Packet<'a> {
    /// Parses a payload (without the length prefix) and validates its message structure.
    pub fn parse(payload: &'a [u8]) -> Result<Self, Error> {
        let (&type_byte, rest) = payload.split_first().ok_or(Error::EmptyPacket)?;
        let kind = PacketType::from_byte(type_byte).ok_or(Error::UnknownPacketType(type_byte))?;
        let (name, message) = if kind.is_named() {
            let (name, rest) = take_name(rest)?;
            (Some(name), rest)
        } else {
            (None, rest)
        };
        if !kind.has_message() && !message.is_empty() {
            return Err(Error::TrailingBytes);
        }
        let packet = Packet {
            kind,
            name,
            message,
        };
        validate(message)?;
        Ok(packet)
    }

    /// The message's elements, in order.
    pub fn elements(&self) -> Elements<'a> {
        Elements::new(self.message)
    }
}

/// One message element, borrowing names and values from the message bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Element<'a> {
    /// Opens a named section.
    SectionStart(&'a [u8]),
    /// Closes the innermost section.
    SectionEnd,
    /// A named value.
    KeyValue(&'a [u8], &'a [u8]),
    /// Opens a named list.
    ListStart(&'a [u8]),
    /// One value of the open list.
    ListItem(&'a [u8]),
    /// Closes the open list.
    ListEnd,
}

const SECTION_START: u8 = 1;
const SECTION_END: u8 = 2;
const KEY_VALUE: u8 = 3;
const LIST_START: u8 = 4;
const LIST_ITEM: u8 = 5;
const LIST_END: u8 = 6;

fn take_name(bytes: &[u8]) -> Result<(&[u8], &[u8]), Error> {
    let (&len, rest) = bytes.split_first().ok_or(Error::Truncated)?;
    let len = len as usize;
    if rest.len() < len {
        return Err(Error::Truncated);
    }
    Ok(rest.split_at(len))
}

fn take_value(bytes: &[u8]) -> Result<(&[u8], &[u8]), Error> {
    let Some(len) = bytes.get(..2) else {
        return Err(Error::Truncated);
    };
    let len = u16::from_be_bytes([len[0], len[1]]) as usize;
    let rest = &bytes[2..];
    if rest.len() < len {
        return Err(Error::Truncated);
    }
    Ok(rest.split_at(len))
}

/// Checks a whole message: every element well formed, sections and lists balanced.
pub fn validate(message: &[u8]) -> Result<(), Error> {
    Elements::new(message).try_for_each(|e| e.map(|_| ()))
}

/// Iterator over a message's elements that also checks nesting; stops after the first error.
#[derive(Debug, Clone)]
pub struct Elements<'a> {
    rest: &'a [u8],
    depth: usize,
    in_list: bool,
    failed: bool,
}

impl<'a> Elements<'a> {
    /// Iterates over `message` (the bytes after the packet type and name).
    pub fn new(message: &'a [u8]) -> Self {
        Elements {
            rest: message,
            depth: 0,
            in_list: false,
            failed: false,
        }
    }

    /// Current section depth (0 at top level).
    pub fn depth(&self) -> usize {
        self.depth
    }

    fn step(&mut self) -> Result<Element<'a>, Error> {
        let (&kind, rest) = self.rest.split_first().ok_or(Error::Truncated)?;
        let (element, rest) = match kind {
            SECTION_START => {
                let (name, rest) = take_name(rest)?;
                (Element::SectionStart(name), rest)
            }
            SECTION_END => (Element::SectionEnd, rest),
            KEY_VALUE => {
                let (name, rest) = take_name(rest)?;
                let (value, rest) = take_value(rest)?;
                (Element::KeyValue(name, value), rest)
            }
            LIST_START => {
                let (name, rest) = take_name(rest)?;
                (Element::ListStart(name), rest)
            }
            LIST_ITEM => {
                let (value, rest) = take_value(rest)?;
                (Element::ListItem(value), rest)
            }
            LIST_END => (Element::ListEnd, rest),
            other => return Err(Error::UnknownElementType(other)),
        };
        match element {
            Element::ListItem(_) if !self.in_list => return Err(Error::ItemOutsideList),
            Element::ListItem(_) => {}
            Element::ListEnd if !self.in_list => return Err(Error::UnbalancedListEnd),
            Element::ListEnd => self.in_list = false,
            _ if self.in_list => return Err(Error::NestedInList),
            Element::SectionStart(_) => {
                if self.depth >= VICI_SECTION_DEPTH_MAX {
                    return Err(Error::TooDeep);
                }
                self.depth += 1;
            }
            Element::SectionEnd if self.depth == 0 => return Err(Error::UnbalancedSectionEnd),
            Element::SectionEnd => self.depth -= 1,
            Element::ListStart(_) => self.in_list = true,
            Element::KeyValue(..) => {}
        }
        self.rest = rest;
        Ok(element)
    }
}

impl<'a> Iterator for Elements<'a> {
    type Item = Result<Element<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.rest.is_empty() {
            let unclosed = if self.in_list {
                Some(Error::UnclosedList)
            } else if self.depth > 0 {
                Some(Error::UnclosedSection)
            } else {
                None
            };
            self.failed = unclosed.is_some();
            return unclosed.map(Err);
        }
        let item = self.step();
        self.failed = item.is_err();
        Some(item)
    }
}

/// Writes one segment (length prefix, type, name, message) into a caller's buffer.
///
/// The writer keeps the same nesting rules as the parser, so whatever it finishes parses back.
#[derive(Debug)]
pub struct Writer<'a> {
    buf: &'a mut [u8],
    len: usize,
    depth: usize,
    in_list: bool,
}

impl<'a> Writer<'a> {
    /// Starts a packet of `kind`; `name` must be given exactly for the named types.
    pub fn new(buf: &'a mut [u8], kind: PacketType, name: Option<&[u8]>) -> Result<Self, Error> {
        let mut w = Writer {
            buf,
            len: 0,
            depth: 0,
            in_list: false,
        };
        w.put(&[0; HEADER_LEN])?;
        w.put(&[kind as u8])?;
        match (kind.is_named(), name) {
            (true, Some(name)) => w.put_name(name)?,
            (false, None) => {}
            _ => return Err(Error::NameMismatch),
        }
        Ok(w)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let end = self.len.checked_add(bytes.len()).ok_or(Error::BufferFull)?;
        if end > self.buf.len() || end > HEADER_LEN + VICI_SEGMENT_MAX_BYTES {
            return Err(Error::BufferFull);
        }
        self.buf[self.len..end].copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }

    fn put_name(&mut self, name: &[u8]) -> Result<(), Error> {
        let len = u8::try_from(name.len()).map_err(|_| Error::NameTooLong(name.len()))?;
        self.put(&[len])?;
        self.put(name)
    }

    fn put_value(&mut self, value: &[u8]) -> Result<(), Error> {
        let len = u16::try_from(value.len()).map_err(|_| Error::ValueTooLong(value.len()))?;
        self.put(&len.to_be_bytes())?;
        self.put(value)
    }

    fn outside_list(&self) -> Result<(), Error> {
        if self.in_list {
            Err(Error::NestedInList)
        } else {
            Ok(())
        }
    }

    /// Opens a section.
    pub fn section_start(&mut self, name: &[u8]) -> Result<(), Error> {
        self.outside_list()?;
        if self.depth >= VICI_SECTION_DEPTH_MAX {
            return Err(Error::TooDeep);
        }
        self.put(&[SECTION_START])?;
        self.put_name(name)?;
        self.depth += 1;
        Ok(())
    }

    /// Closes the innermost section.
    pub fn section_end(&mut self) -> Result<(), Error> {
        self.outside_list()?;
        if self.depth == 0 {
            return Err(Error::UnbalancedSectionEnd);
        }
        self.put(&[SECTION_END])?;
        self.depth -= 1;
        Ok(())
    }

    /// Adds a named value.
    pub fn key_value(&mut self, name: &[u8], value: &[u8]) -> Result<(), Error> {
        self.outside_list()?;
        self.put(&[KEY_VALUE])?;
        self.put_name(name)?;
        self.put_value(value)
    }

    /// Opens a list.
    pub fn list_start(&mut self, name: &[u8]) -> Result<(), Error> {
        self.outside_list()?;
        self.put(&[LIST_START])?;
        self.put_name(name)?;
        self.in_list = true;
        Ok(())
    }

    /// Adds an item to the open list.
    pub fn list_item(&mut self, value: &[u8]) -> Result<(), Error> {
        if !self.in_list {
            return Err(Error::ItemOutsideList);
        }
        self.put(&[LIST_ITEM])?;
        self.put_value(value)
    }

    /// Closes the open list.
    pub fn list_end(&mut self) -> Result<(), Error> {
        if !self.in_list {
            return Err(Error::UnbalancedListEnd);
        }
        self.put(&[LIST_END])?;
        self.in_list = false;
        Ok(())
    }

    /// Writes one element, as the parser yields it (useful for round-trips).
    pub fn element(&mut self, element: Element<'_>) -> Result<(), Error> {
        match element {
            Element::SectionStart(name) => self.section_start(name),
            Element::SectionEnd => self.section_end(),
            Element::KeyValue(name, value) => self.key_value(name, value),
            Element::ListStart(name) => self.list_start(name),
            Element::ListItem(value) => self.list_item(value),
            Element::ListEnd => self.list_end(),
        }
    }

    /// Checks balance, fills in the length prefix and returns the whole segment.
    pub fn finish(self) -> Result<&'a [u8], Error> {
        if self.in_list {
            return Err(Error::UnclosedList);
        }
        if self.depth > 0 {
            return Err(Error::UnclosedSection);
        }
        let payload_len = (self.len - HEADER_LEN) as u32;
        self.buf[..HEADER_LEN].copy_from_slice(&payload_len.to_be_bytes());
        Ok(&self.buf[..self.len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `initiate {child = con1}` exactly as STRONGSWAN.md spells it.
    const INITIATE_CON1: [u8; 27] = [
        0x00, 0x00, 0x00, 0x17, 0x00, 0x08, b'i', b'n', b'i', b't', b'i', b'a', b't', b'e', 0x03,
        0x05, b'c', b'h', b'i', b'l', b'd', 0x00, 0x04, b'c', b'o', b'n', b'1',
    ];

    #[test]
    fn writer_emits_the_documented_initiate_bytes() {
        let mut buf = [0u8; 64];
        let mut w = Writer::new(&mut buf, PacketType::CmdRequest, Some(b"initiate")).unwrap();
        w.key_value(b"child", b"con1").unwrap();
        assert_eq!(w.finish().unwrap(), &INITIATE_CON1[..]);
    }

    #[test]
    fn parser_reads_the_documented_initiate_bytes() {
        let (payload, used) = split_frame(&INITIATE_CON1).unwrap().unwrap();
        assert_eq!(used, INITIATE_CON1.len());
        let p = Packet::parse(payload).unwrap();
        assert_eq!(p.kind, PacketType::CmdRequest);
        assert_eq!(p.name, Some(&b"initiate"[..]));
        let all: Vec<_> = p.elements().map(|e| e.unwrap()).collect();
        assert_eq!(all, [Element::KeyValue(b"child", b"con1")]);
    }

    #[test]
    fn every_element_kind_round_trips() {
        let mut buf = [0u8; 256];
        let mut w = Writer::new(&mut buf, PacketType::Event, Some(b"list-sa")).unwrap();
        w.section_start(b"con2").unwrap();
        w.key_value(b"state", b"ESTABLISHED").unwrap();
        w.list_start(b"tasks-active").unwrap();
        w.list_item(b"IKE_DPD").unwrap();
        w.list_item(b"").unwrap();
        w.list_end().unwrap();
        w.section_start(b"child-sas").unwrap();
        w.section_end().unwrap();
        w.section_end().unwrap();
        let frame = w.finish().unwrap().to_vec();

        let p = Packet::parse(&frame[4..]).unwrap();
        let mut again = [0u8; 256];
        let mut w2 = Writer::new(&mut again, p.kind, p.name).unwrap();
        for e in p.elements() {
            w2.element(e.unwrap()).unwrap();
        }
        assert_eq!(w2.finish().unwrap(), &frame[..]);
    }

    #[test]
    fn unnamed_packet_types_parse_without_name() {
        for (byte, kind) in [
            (1, PacketType::CmdResponse),
            (2, PacketType::CmdUnknown),
            (5, PacketType::EventConfirm),
            (6, PacketType::EventUnknown),
        ] {
            let payload = [byte];
            let p = Packet::parse(&payload).unwrap();
            assert_eq!(p.kind, kind);
            assert_eq!(p.name, None);
            assert!(p.message.is_empty());
        }
        let p = Packet::parse(&[3, 3, b'l', b'o', b'g', b's']).unwrap_err();
        assert_eq!(p, Error::TrailingBytes);
        assert_eq!(Packet::parse(&[5, 2]), Err(Error::TrailingBytes));
        let p = Packet::parse(&[3, 3, b'l', b'o', b'g']).unwrap();
        assert_eq!(
            (p.kind, p.name),
            (PacketType::EventRegister, Some(&b"log"[..]))
        );
    }

    #[test]
    fn every_malformation_has_its_own_error() {
        let cases: &[(&[u8], Error)] = &[
            (&[], Error::EmptyPacket),
            (&[9], Error::UnknownPacketType(9)),
            (&[0, 5, b'a'], Error::Truncated),
            (&[1, 3, 4, b'k'], Error::Truncated),
            (&[1, 3, 1, b'k', 0, 5, b'v'], Error::Truncated),
            (&[1, 3, 1, b'k', 0], Error::Truncated),
            (&[1, 7], Error::UnknownElementType(7)),
            (&[1, 2], Error::UnbalancedSectionEnd),
            (&[1, 6], Error::UnbalancedListEnd),
            (&[1, 5, 0, 0], Error::ItemOutsideList),
            (&[1, 4, 1, b'l', 4, 1, b'm'], Error::NestedInList),
            (&[1, 4, 1, b'l', 1, 1, b's'], Error::NestedInList),
            (&[1, 4, 1, b'l', 3, 1, b'k', 0, 0], Error::NestedInList),
            (&[1, 4, 1, b'l', 2], Error::NestedInList),
            (&[1, 1, 1, b's'], Error::UnclosedSection),
            (&[1, 4, 1, b'l', 5, 0, 0], Error::UnclosedList),
        ];
        for (bytes, want) in cases {
            assert_eq!(Packet::parse(bytes), Err(*want), "input {bytes:?}");
        }
    }

    #[test]
    fn sections_nested_too_deep_are_refused() {
        let mut msg = vec![1u8];
        for _ in 0..=VICI_SECTION_DEPTH_MAX {
            msg.extend_from_slice(&[1, 1, b's']);
        }
        assert_eq!(Packet::parse(&msg), Err(Error::TooDeep));
    }

    #[test]
    fn frame_length_limits_are_enforced() {
        assert_eq!(frame_len([0, 8, 0, 0]), Ok(512 * 1024));
        assert_eq!(
            frame_len([0, 8, 0, 1]),
            Err(Error::FrameTooLarge(512 * 1024 + 1))
        );
        assert_eq!(
            frame_len([0xff; 4]),
            Err(Error::FrameTooLarge(u32::MAX as usize))
        );
        assert_eq!(frame_len([0; 4]), Err(Error::EmptyPacket));
        assert_eq!(split_frame(&[0, 0, 0, 2, 1]), Ok(None));
        assert_eq!(split_frame(&[0, 0]), Ok(None));
    }

    #[test]
    fn writer_refuses_what_cannot_be_encoded() {
        let mut buf = vec![0u8; 70_000];
        let long_name = [b'n'; 256];
        assert_eq!(
            Writer::new(&mut buf, PacketType::Event, Some(&long_name)).unwrap_err(),
            Error::NameTooLong(256)
        );
        let mut w = Writer::new(&mut buf, PacketType::CmdResponse, None).unwrap();
        assert_eq!(w.key_value(&long_name, b"v"), Err(Error::NameTooLong(256)));
        let long_value = vec![b'v'; 65_536];
        assert_eq!(
            w.key_value(b"k", &long_value),
            Err(Error::ValueTooLong(65_536))
        );
        assert_eq!(w.list_item(b"x"), Err(Error::ItemOutsideList));
        assert_eq!(w.section_end(), Err(Error::UnbalancedSectionEnd));
        w.list_start(b"l").unwrap();
        assert_eq!(w.section_start(b"s"), Err(Error::NestedInList));
        assert_eq!(w.finish(), Err(Error::UnclosedList));
        assert_eq!(
            Writer::new(&mut buf, PacketType::CmdRequest, None).unwrap_err(),
            Error::NameMismatch
        );
        let mut tiny = [0u8; 8];
        let mut w = Writer::new(&mut tiny, PacketType::CmdResponse, None).unwrap();
        assert_eq!(w.key_value(b"key", b"value"), Err(Error::BufferFull));
    }

    #[test]
    fn values_of_exactly_65535_bytes_round_trip() {
        let mut buf = vec![0u8; 70_000];
        let value = vec![b'x'; 65_535];
        let mut w = Writer::new(&mut buf, PacketType::CmdResponse, None).unwrap();
        w.key_value(&[b'n'; 255], &value).unwrap();
        let frame = w.finish().unwrap();
        let p = Packet::parse(&frame[4..]).unwrap();
        match p.elements().next().unwrap().unwrap() {
            Element::KeyValue(n, v) => assert_eq!((n.len(), v.len()), (255, 65_535)),
            other => panic!("unexpected {other:?}"),
        }
    }
}
