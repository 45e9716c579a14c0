//! Typed views of charon's messages: Event::parse, IkeSa::parse_all, Conn::parse, LogLine::parse.
//!
//! Input: a VICI segment (as captured in tests/data/vici), or, when it does not frame, a bare
//! message whose event name is picked by the first byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swandog::limits::{CHILD_SAS_PER_IKE_MAX, LOG_MSG_MAX_BYTES, NAME_MAX_BYTES};
use swandog::vici::sa::{Conn, Event, IkeSa, LogLine};
use swandog::vici::wire::{split_frame, Packet};

const NAMES: [&[u8]; 7] = [
    b"ike-updown",
    b"child-updown",
    b"log",
    b"control-log",
    b"alert",
    b"list-sa",
    b"list-conn",
];

fuzz_target!(|data: &[u8]| {
    let framed = match split_frame(data) {
        Ok(Some((payload, _))) => Packet::parse(payload).ok(),
        _ => None,
    };
    match framed {
        Some(packet) => views(packet.name.unwrap_or_default(), packet.message),
        None => {
            let (&pick, message) = data.split_first().unwrap_or((&0, &[]));
            views(NAMES[usize::from(pick) % NAMES.len()], message);
        }
    }
});

fn views(name: &[u8], message: &[u8]) {
    if let Ok(Some(event)) = Event::parse(name, message) {
        match event {
            Event::IkeUpDown { ike, .. } | Event::ChildUpDown { ike, .. } => check_ike(&ike),
            Event::Log(line) => check_log(&line),
            Event::Alert { kind, ike } => {
                assert!(kind.len() <= NAME_MAX_BYTES);
                assert!(ike.is_none_or(|n| n.len() <= NAME_MAX_BYTES));
            }
        }
    }
    if let Ok(ikes) = IkeSa::parse_all::<4>(message) {
        ikes.iter().for_each(check_ike);
    }
    if let Ok(Some(conn)) = Conn::parse(message) {
        assert!(conn.children.len() <= CHILD_SAS_PER_IKE_MAX);
        let _ = format!("{conn:?}");
    }
    if let Ok(line) = LogLine::parse(message) {
        check_log(&line);
    }
}

fn check_ike(ike: &IkeSa) {
    assert!(ike.name.len() <= NAME_MAX_BYTES);
    assert!(ike.children.len() <= CHILD_SAS_PER_IKE_MAX);
    for child in &ike.children {
        let _ = child.is_route_based();
        let _ = child.state.is_up();
        assert!(child.name.len() <= NAME_MAX_BYTES);
    }
    let _ = ike.tasks_active.names().count() + ike.tasks_passive.names().count();
}

fn check_log(line: &LogLine) {
    assert!(line.msg.len() <= LOG_MSG_MAX_BYTES);
    let _ = swandog::agent::diagnose::classify_log(&line.msg);
}
