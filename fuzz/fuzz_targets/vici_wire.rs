//! VICI framing, packet and element parsing; whatever parses must re-emit byte for byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swandog::vici::wire::{frame_len, split_frame, validate, Packet, Writer, HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    if let Some(header) = data.get(..HEADER_LEN) {
        let _ = frame_len([header[0], header[1], header[2], header[3]]);
    }
    // The input as a whole segment (prefix + payload), as the client reads it.
    if let Ok(Some((payload, used))) = split_frame(data) {
        assert!(used <= data.len() && payload.len() + HEADER_LEN == used);
        round_trip(payload);
    }
    // The input as a bare payload.
    round_trip(data);
    let _ = validate(data);
});

/// A payload that parses is canonical: the writer produces exactly the same bytes again.
fn round_trip(payload: &[u8]) {
    let Ok(packet) = Packet::parse(payload) else {
        return;
    };
    let mut depth_seen = 0;
    let mut elements = packet.elements();
    while let Some(element) = elements.next() {
        element.expect("Packet::parse validated the message");
        depth_seen = depth_seen.max(elements.depth());
    }
    let mut buf = vec![0u8; payload.len() + HEADER_LEN];
    let mut w = Writer::new(&mut buf, packet.kind, packet.name).expect("header fits");
    for element in packet.elements() {
        w.element(element.unwrap())
            .expect("a parsed element re-emits");
    }
    let frame = w.finish().expect("a parsed message is balanced");
    assert_eq!(&frame[HEADER_LEN..], payload);
    let _ = depth_seen;
}
