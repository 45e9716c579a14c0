//! The codec and typed views against frames captured from a real charon (strongSwan 5.9.8, see
//! tests/data/vici/README.md), plus a fixed-seed randomized never-panics run over mutations of
//! them. Runs everywhere, including under qemu for the big-endian MIPS target.

mod common;

use common::rng::Rng;
use std::path::Path;

use swandog::vici::sa::{ChildState, Conn, Event, IkeSa, IkeState, LogLine};
use swandog::vici::wire::{split_frame, Packet, PacketType, Writer};

fn frame(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/vici")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn all_frames() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/vici");
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn event(name: &str) -> Event {
    let bytes = frame(name);
    let (payload, _) = split_frame(&bytes).unwrap().unwrap();
    let packet = Packet::parse(payload).unwrap();
    assert_eq!(packet.kind, PacketType::Event, "{name}");
    Event::parse(packet.name.unwrap(), packet.message)
        .unwrap()
        .unwrap_or_else(|| panic!("{name} is an event swandog uses"))
}

#[test]
fn every_captured_frame_parses_and_reemits_byte_for_byte() {
    let frames = all_frames();
    assert!(frames.len() >= 30, "captured frames are checked in");
    let mut buf = vec![0u8; 64 * 1024];
    for (name, bytes) in frames {
        let (payload, used) = split_frame(&bytes)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .unwrap_or_else(|| panic!("{name}: incomplete"));
        assert_eq!(used, bytes.len(), "{name}: one whole segment");
        let packet = Packet::parse(payload).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut w = Writer::new(&mut buf, packet.kind, packet.name).unwrap();
        for element in packet.elements() {
            w.element(element.unwrap()).unwrap();
        }
        assert_eq!(w.finish().unwrap(), &bytes[..], "{name}: round trip");
    }
}

#[test]
fn ike_down_events_carry_the_tasks_that_tell_why() {
    let Event::IkeUpDown { up: false, ike } = event("ike-updown-down-dpd.bin") else {
        panic!("not an IKE down");
    };
    assert_eq!(ike.state, IkeState::Established);
    assert!(ike.tasks_active.contains("IKE_DPD"));

    let Event::IkeUpDown { up: false, ike } = event("ike-updown-down-peer-delete.bin") else {
        panic!("not an IKE down");
    };
    assert_eq!(ike.state, IkeState::Deleting);
    assert!(ike.tasks_passive.contains("IKE_DELETE"));
    assert!(!ike.tasks_active.contains("IKE_DPD"));

    let Event::IkeUpDown { up: false, ike } = event("ike-updown-down-local.bin") else {
        panic!("not an IKE down");
    };
    assert_eq!(ike.state, IkeState::Deleting);
    assert!(ike.tasks_active.contains("IKE_DELETE"));

    let Event::IkeUpDown { up: true, ike } = event("ike-updown-up.bin") else {
        panic!("not an IKE up");
    };
    assert_eq!(ike.state, IkeState::Established);
    assert_eq!(ike.remote_host, "192.0.2.2");
}

#[test]
fn child_updown_events_name_the_child_and_its_route_based_ids() {
    let Event::ChildUpDown { up: false, ike } = event("child-updown-down-dpd.bin") else {
        panic!("not a child down");
    };
    assert_eq!(ike.name, "con2");
    assert_eq!(ike.children.len(), 1);
    let child = &ike.children[0];
    assert_eq!(child.name, "con2_1");
    assert_eq!((child.if_id_in, child.if_id_out), (42, 42));
    assert!(child.is_route_based());

    let Event::ChildUpDown { up: true, ike } = event("child-updown-up.bin") else {
        panic!("not a child up");
    };
    assert_eq!(ike.children.len(), 1);
    assert_eq!(ike.children[0].state, ChildState::Installed);
}

#[test]
fn list_sa_events_give_all_children_with_counters() {
    let bytes = frame("list-sa-con2.bin");
    let (payload, _) = split_frame(&bytes).unwrap().unwrap();
    let packet = Packet::parse(payload).unwrap();
    let ikes: heapless::Vec<IkeSa, 2> = IkeSa::parse_all(packet.message).unwrap();
    assert_eq!(ikes.len(), 1);
    let names: Vec<_> = ikes[0].children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["con2_1", "con2_2"]);
    assert!(ikes[0]
        .children
        .iter()
        .all(|c| c.state == ChildState::Installed));
    assert_eq!(ikes[0].children[1].if_id_out, 43);
}

#[test]
fn log_and_control_log_lines_keep_charons_text() {
    let Event::Log(line) = event("log-giving-up.bin") else {
        panic!("not a log");
    };
    assert!(line.msg.contains("giving up after"), "{}", line.msg);
    assert!(line.ike.is_some());
    let Event::Log(line) = event("control-log-duplicate.bin") else {
        panic!("not a control-log");
    };
    assert!(line.msg.contains("existing duplicate"), "{}", line.msg);
    let Event::Log(line) = event("log-no-proposal.bin") else {
        panic!("not a log");
    };
    assert!(!line.msg.is_empty());
}

#[test]
fn list_conn_events_give_children_and_addresses() {
    let bytes = frame("list-conn-con2.bin");
    let (payload, _) = split_frame(&bytes).unwrap().unwrap();
    let packet = Packet::parse(payload).unwrap();
    let conn = Conn::parse(packet.message).unwrap().unwrap();
    assert_eq!(conn.name, "con2");
    assert_eq!(conn.remote_addr, "192.0.2.2");
    let names: Vec<_> = conn.children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["con2_1", "con2_2"]);
}

fn exercise(bytes: &[u8]) {
    let _ = split_frame(bytes);
    for start in [0usize, 4] {
        let Some(payload) = bytes.get(start..) else {
            continue;
        };
        if let Ok(packet) = Packet::parse(payload) {
            for e in packet.elements() {
                let _ = e;
            }
            let _ = Event::parse(packet.name.unwrap_or_default(), packet.message);
            let _: Result<heapless::Vec<IkeSa, 4>, _> = IkeSa::parse_all(packet.message);
            let _ = Conn::parse(packet.message);
            let _ = LogLine::parse(packet.message);
        }
        let _: Result<heapless::Vec<IkeSa, 4>, _> = IkeSa::parse_all(payload);
        let _ = Conn::parse(payload);
    }
}

#[test]
fn randomized_mutations_of_real_frames_never_panic() {
    let frames = all_frames();
    let mut rng = Rng(0x5eed_5a4d_0d06);
    let mut cases = 0;
    for _ in 0..40_000 {
        let (_, base) = &frames[rng.below(frames.len())];
        let mut bytes = base.clone();
        match rng.below(5) {
            0 => {
                let i = rng.below(bytes.len());
                bytes[i] ^= 1 << rng.below(8);
            }
            1 => bytes.truncate(rng.below(bytes.len())),
            2 => {
                let i = rng.below(bytes.len());
                bytes[i] = rng.next() as u8;
                let j = rng.below(bytes.len());
                bytes[j] = [0, 1, 2, 3, 4, 5, 6, 7, 0xff][rng.below(9)];
            }
            3 => {
                let i = rng.below(bytes.len());
                let j = rng.below(bytes.len());
                bytes.swap(i, j);
            }
            _ => bytes = (0..rng.below(300)).map(|_| rng.next() as u8).collect(),
        }
        exercise(&bytes);
        cases += 1;
    }
    assert_eq!(cases, 40_000);
}
