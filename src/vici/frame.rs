//! The receive buffer of one VICI stream, without I/O: bytes read from the socket go in, whole
//! segments come out.
//!
//! One buffer per connection, reserved once at [`VICI_RECV_BUFFER_BYTES`] and never reallocated.
//! Only its first [`VICI_RECV_INITIAL_BYTES`] are in use at first; it grows (within the
//! reservation) to the largest segment seen, so pages no segment needed never become resident. A
//! segment larger than the reservation (but within charon's own limit,
//! [`VICI_SEGMENT_MAX_BYTES`](crate::limits::VICI_SEGMENT_MAX_BYTES)) is skipped whole and
//! reported once as [`Ready::Skipped`], so the stream stays in step without growing memory; the
//! caller counts it.
//!
//! ```
//! use swandog::vici::frame::{FrameBuffer, Ready};
//!
//! let mut frames = FrameBuffer::new();
//! // A CMD_RESPONSE (type 1) with an empty message, arriving in two reads.
//! for part in [&[0u8, 0, 0][..], &[1, 1][..]] {
//!     assert_eq!(frames.advance(), Ok(Ready::NeedMore));
//!     frames.spare()[..part.len()].copy_from_slice(part);
//!     frames.commit(part.len());
//! }
//! assert_eq!(frames.advance(), Ok(Ready::Frame));
//! assert_eq!(frames.frame(), [1]);
//! ```

use super::wire::{self, HEADER_LEN};
use crate::limits::{VICI_RECV_BUFFER_BYTES, VICI_RECV_INITIAL_BYTES};

/// What [`FrameBuffer::advance`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// A whole segment: its payload is [`FrameBuffer::frame`] until the next `advance`.
    Frame,
    /// A segment too big for the buffer was discarded whole; its announced payload length.
    Skipped(usize),
    /// More bytes are needed: read into [`FrameBuffer::spare`], then [`FrameBuffer::commit`].
    NeedMore,
}

/// Reassembles VICI segments from the bytes of one stream, in a fixed reservation.
pub struct FrameBuffer {
    /// Reserved at `VICI_RECV_BUFFER_BYTES` and never reallocated; its length is the part in use.
    buf: Vec<u8>,
    /// Bytes received and not yet dropped.
    filled: usize,
    /// Bytes of the segment last handed out, dropped at the next `advance`.
    consumed: usize,
    /// Bytes still to discard of an oversized segment.
    skip: usize,
    /// Payload length of the oversized segment being discarded.
    skipped_len: usize,
}

impl Default for FrameBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameBuffer {
    /// An empty buffer: `VICI_RECV_BUFFER_BYTES` reserved, `VICI_RECV_INITIAL_BYTES` of it in use.
    pub fn new() -> FrameBuffer {
        let mut buf = Vec::with_capacity(VICI_RECV_BUFFER_BYTES);
        buf.resize(VICI_RECV_INITIAL_BYTES, 0);
        FrameBuffer {
            buf,
            filled: 0,
            consumed: 0,
            skip: 0,
            skipped_len: 0,
        }
    }

    /// Drops the segment handed out last and looks for the next one.
    ///
    /// An error means the length prefix is not VICI (zero, or over charon's limit,
    /// [`VICI_SEGMENT_MAX_BYTES`](crate::limits::VICI_SEGMENT_MAX_BYTES)): the stream is out of
    /// step for good, and the buffer keeps answering the same error; drop the connection.
    pub fn advance(&mut self) -> Result<Ready, wire::Error> {
        if self.consumed > 0 {
            self.drop_front(self.consumed);
            self.consumed = 0;
        }
        if self.skip > 0 {
            let drop = self.skip.min(self.filled);
            self.drop_front(drop);
            self.skip -= drop;
            return Ok(if self.skip == 0 {
                Ready::Skipped(self.skipped_len)
            } else {
                Ready::NeedMore
            });
        }
        let Some(header) = self.buf[..self.filled].first_chunk::<HEADER_LEN>() else {
            return Ok(Ready::NeedMore);
        };
        let len = wire::frame_len(*header)?;
        let whole = HEADER_LEN + len;
        if whole > VICI_RECV_BUFFER_BYTES {
            self.skip = whole;
            self.skipped_len = len;
            return self.advance();
        }
        if whole > self.buf.len() {
            // Within the reservation: no reallocation, ever.
            self.buf.resize(whole, 0);
        }
        if self.filled < whole {
            return Ok(Ready::NeedMore);
        }
        self.consumed = whole;
        Ok(Ready::Frame)
    }

    /// The payload (without its length prefix) of the segment [`advance`](Self::advance) last
    /// reported as [`Ready::Frame`]; empty otherwise.
    pub fn frame(&self) -> &[u8] {
        self.buf.get(HEADER_LEN..self.consumed).unwrap_or_default()
    }

    /// Where to put the next bytes read; never empty after `advance` said [`Ready::NeedMore`].
    pub fn spare(&mut self) -> &mut [u8] {
        &mut self.buf[self.filled..]
    }

    /// Takes in `n` bytes just written at the start of [`spare`](Self::spare).
    pub fn commit(&mut self, n: usize) {
        self.filled = (self.filled + n).min(self.buf.len());
    }

    /// Whether a segment has begun and not ended (a stream closed now was cut short).
    pub fn mid_frame(&self) -> bool {
        self.filled > self.consumed || self.skip > 0
    }

    fn drop_front(&mut self, n: usize) {
        self.buf.copy_within(n..self.filled, 0);
        self.filled -= n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::VICI_SEGMENT_MAX_BYTES;
    use crate::vici::wire::{Error, Packet, PacketType};

    /// What came out of the buffer, owned so a test can compare it whole.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Out {
        Frame(Vec<u8>),
        Skipped(usize),
        Error(Error),
    }

    /// Drains everything the buffer has ready.
    fn drain(frames: &mut FrameBuffer, out: &mut Vec<Out>) {
        loop {
            match frames.advance() {
                Ok(Ready::Frame) => out.push(Out::Frame(frames.frame().to_vec())),
                Ok(Ready::Skipped(n)) => out.push(Out::Skipped(n)),
                Ok(Ready::NeedMore) => {
                    assert!(!frames.spare().is_empty(), "room to read into");
                    return;
                }
                Err(e) => {
                    out.push(Out::Error(e));
                    return;
                }
            }
        }
    }

    /// Feeds `stream` in reads of at most `chunk` bytes (as a socket would hand them over),
    /// draining after each read.
    fn feed(frames: &mut FrameBuffer, stream: &[u8], chunk: usize) -> Vec<Out> {
        let mut out = Vec::new();
        drain(frames, &mut out);
        for piece in stream.chunks(chunk) {
            let mut rest = piece;
            while !rest.is_empty() {
                if matches!(out.last(), Some(Out::Error(_))) {
                    return out;
                }
                let spare = frames.spare();
                let n = spare.len().min(rest.len());
                spare[..n].copy_from_slice(&rest[..n]);
                frames.commit(n);
                rest = &rest[n..];
                drain(frames, &mut out);
            }
        }
        out
    }

    /// One segment: big-endian length, then the payload.
    fn segment(payload: &[u8]) -> Vec<u8> {
        let mut out = (payload.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(payload);
        out
    }

    /// A CMD_RESPONSE payload padded with one key/value to exactly `len` bytes (len >= 6).
    fn response_of_len(len: usize) -> Vec<u8> {
        // type, KEY_VALUE, key length 1, "k", u16 value length, value
        let value = len - 6;
        let mut payload = vec![PacketType::CmdResponse as u8, 3, 1, b'k'];
        payload.extend_from_slice(&(value as u16).to_be_bytes());
        payload.resize(len, b'v');
        payload
    }

    const VERSION: &[u8] = include_bytes!("../../tests/data/vici/version-response.bin");
    const LIST_SA: &[u8] = include_bytes!("../../tests/data/vici/list-sa-con2.bin");
    const CONFIRM: &[u8] = include_bytes!("../../tests/data/vici/event-confirm.bin");

    #[test]
    fn a_captured_segment_read_whole_comes_out_whole_and_parses() {
        let mut frames = FrameBuffer::new();
        let out = feed(&mut frames, VERSION, VERSION.len());
        assert_eq!(out, [Out::Frame(VERSION[HEADER_LEN..].to_vec())]);
        let Out::Frame(payload) = &out[0] else {
            unreachable!()
        };
        assert_eq!(
            Packet::parse(payload).map(|p| p.kind),
            Ok(PacketType::CmdResponse)
        );
        assert!(!frames.mid_frame());
    }

    #[test]
    fn a_segment_split_at_every_byte_comes_out_once_when_its_last_byte_arrives() {
        for cut in 1..LIST_SA.len() {
            let mut frames = FrameBuffer::new();
            let first = feed(&mut frames, &LIST_SA[..cut], cut);
            assert_eq!(first, [], "cut at {cut}");
            assert!(frames.mid_frame(), "cut at {cut}");
            let second = feed(&mut frames, &LIST_SA[cut..], LIST_SA.len());
            assert_eq!(second, [Out::Frame(LIST_SA[HEADER_LEN..].to_vec())]);
            assert!(!frames.mid_frame());
        }
    }

    #[test]
    fn a_segment_fed_one_byte_at_a_time_comes_out_once() {
        let mut frames = FrameBuffer::new();
        let out = feed(&mut frames, LIST_SA, 1);
        assert_eq!(out, [Out::Frame(LIST_SA[HEADER_LEN..].to_vec())]);
    }

    #[test]
    fn a_length_prefix_split_across_reads_is_put_back_together() {
        let mut frames = FrameBuffer::new();
        for cut in 1..HEADER_LEN {
            assert_eq!(feed(&mut frames, &CONFIRM[..cut], cut), []);
            assert!(frames.mid_frame());
            assert_eq!(
                feed(&mut frames, &CONFIRM[cut..], CONFIRM.len()),
                [Out::Frame(CONFIRM[HEADER_LEN..].to_vec())]
            );
        }
    }

    #[test]
    fn several_segments_in_one_read_come_out_in_order() {
        let stream = [VERSION, LIST_SA, CONFIRM, VERSION].concat();
        let want: Vec<Out> = [VERSION, LIST_SA, CONFIRM, VERSION]
            .iter()
            .map(|s| Out::Frame(s[HEADER_LEN..].to_vec()))
            .collect();
        for chunk in [stream.len(), 7, 100, 1000] {
            let mut frames = FrameBuffer::new();
            assert_eq!(feed(&mut frames, &stream, chunk), want, "reads of {chunk}");
            assert!(!frames.mid_frame());
        }
    }

    #[test]
    fn an_oversized_segment_is_skipped_whole_counted_once_and_the_next_one_survives() {
        let big = segment(&response_of_len(VICI_RECV_BUFFER_BYTES));
        let stream = [CONFIRM, &big, VERSION].concat();
        for chunk in [stream.len(), 1, 333, VICI_RECV_BUFFER_BYTES - 1] {
            let mut frames = FrameBuffer::new();
            let out = feed(&mut frames, &stream, chunk);
            assert_eq!(
                out,
                [
                    Out::Frame(CONFIRM[HEADER_LEN..].to_vec()),
                    Out::Skipped(VICI_RECV_BUFFER_BYTES),
                    Out::Frame(VERSION[HEADER_LEN..].to_vec()),
                ],
                "reads of {chunk}"
            );
            // Skipping never grows the part in use, and nothing is reallocated.
            assert_eq!(frames.buf.len(), VICI_RECV_INITIAL_BYTES);
            assert_eq!(frames.buf.capacity(), VICI_RECV_BUFFER_BYTES);
        }
    }

    #[test]
    fn a_stream_cut_inside_a_skipped_segment_is_mid_frame() {
        let big = segment(&response_of_len(VICI_RECV_BUFFER_BYTES * 2));
        let mut frames = FrameBuffer::new();
        assert_eq!(feed(&mut frames, &big[..big.len() - 1], 1000), []);
        assert!(frames.mid_frame());
        assert_eq!(
            feed(&mut frames, &big[big.len() - 1..], 1),
            [Out::Skipped(VICI_RECV_BUFFER_BYTES * 2)]
        );
        assert!(!frames.mid_frame());
    }

    #[test]
    fn the_buffer_grows_to_the_largest_segment_within_its_reservation_and_stays() {
        let mut frames = FrameBuffer::new();
        let at = frames.buf.as_ptr();
        feed(&mut frames, &[VERSION, LIST_SA].concat(), 512);
        assert_eq!(frames.buf.len(), VICI_RECV_INITIAL_BYTES, "small ones fit");

        let mid = segment(&response_of_len(5000));
        assert_eq!(feed(&mut frames, &mid, 4096).len(), 1);
        assert_eq!(frames.buf.len(), HEADER_LEN + 5000);

        let largest = segment(&response_of_len(VICI_RECV_BUFFER_BYTES - HEADER_LEN));
        let out = feed(&mut frames, &[&largest[..], VERSION].concat(), 4096);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0], Out::Frame(largest[HEADER_LEN..].to_vec()));
        assert_eq!(frames.buf.len(), VICI_RECV_BUFFER_BYTES);

        assert_eq!(feed(&mut frames, VERSION, 64).len(), 1);
        assert_eq!(frames.buf.len(), VICI_RECV_BUFFER_BYTES, "never shrinks");
        assert_eq!(frames.buf.capacity(), VICI_RECV_BUFFER_BYTES);
        assert_eq!(frames.buf.as_ptr(), at, "never reallocated");
    }

    #[test]
    fn a_zero_length_segment_is_an_error_that_stays() {
        let mut frames = FrameBuffer::new();
        let out = feed(&mut frames, &[CONFIRM, &[0, 0, 0, 0], VERSION].concat(), 64);
        assert_eq!(
            out,
            [
                Out::Frame(CONFIRM[HEADER_LEN..].to_vec()),
                Out::Error(Error::EmptyPacket)
            ]
        );
        assert_eq!(frames.advance(), Err(Error::EmptyPacket));
    }

    #[test]
    fn garbage_with_an_impossible_length_is_an_error() {
        let mut frames = FrameBuffer::new();
        let out = feed(&mut frames, b"GET / HTTP/1.1\r\n\r\n", 64);
        assert_eq!(out, [Out::Error(Error::FrameTooLarge(0x4745_5420))]);
        assert_eq!(frames.advance(), Err(Error::FrameTooLarge(0x4745_5420)));

        let just_over = (VICI_SEGMENT_MAX_BYTES as u32 + 1).to_be_bytes();
        let out = feed(&mut FrameBuffer::new(), &just_over, 4);
        assert_eq!(
            out,
            [Out::Error(Error::FrameTooLarge(VICI_SEGMENT_MAX_BYTES + 1))]
        );
    }

    #[test]
    fn garbage_with_a_plausible_length_comes_out_as_a_frame_for_the_codec_to_refuse() {
        let stream = segment(&[0xff, 1, 2]);
        let out = feed(&mut FrameBuffer::new(), &stream, 2);
        assert_eq!(out, [Out::Frame(vec![0xff, 1, 2])]);
        assert_eq!(
            Packet::parse(&[0xff, 1, 2]),
            Err(Error::UnknownPacketType(0xff))
        );
    }

    #[test]
    fn frame_is_empty_until_a_segment_is_ready_and_after_it_is_dropped() {
        let mut frames = FrameBuffer::new();
        assert_eq!(frames.frame(), b"");
        feed(&mut frames, &CONFIRM[..3], 3);
        assert_eq!(frames.frame(), b"");
        feed(&mut frames, &CONFIRM[3..], 64);
        // `feed` drained it: the frame was handed out and dropped by the next advance.
        assert_eq!(frames.frame(), b"");
        assert!(!frames.mid_frame());
    }
}
