//! One VICI stream socket: connect, send, receive whole packets, notice a peer that left; and the
//! delays between reconnection attempts.
//!
//! The bytes received go through a [`FrameBuffer`] (fixed, never reallocated: see
//! [`crate::vici::frame`]); this module only moves them between it and the socket.
//!
//! ```no_run
//! # smol::block_on(async {
//! use swandog::vici::client::Connection;
//! let mut conn = Connection::connect("/var/run/charon.vici".as_ref()).await.unwrap();
//! // A CMD_REQUEST (type 0) for `version`, with an empty message.
//! conn.send(b"\x00\x00\x00\x09\x00\x07version").await.unwrap();
//! let reply = conn.recv().await.unwrap();
//! println!("{:?}: {} bytes", reply.kind, reply.message.len());
//! # });
//! ```

use std::io;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::{Async, Timer};

use super::ClientError;
use crate::limits::{VICI_RECONNECT_MAX_MS, VICI_RECONNECT_MIN_MS};
use crate::vici::frame::{FrameBuffer, Ready};
use crate::vici::wire::{self, Packet};

/// One VICI stream connection with its receive buffer.
pub struct Connection {
    stream: Async<UnixStream>,
    frames: FrameBuffer,
}

fn connect_error(path: &Path, e: io::Error) -> ClientError {
    match e.kind() {
        io::ErrorKind::NotFound => ClientError::NotFound(path.to_path_buf()),
        io::ErrorKind::PermissionDenied => ClientError::PermissionDenied(path.to_path_buf()),
        io::ErrorKind::ConnectionRefused => ClientError::Refused(path.to_path_buf()),
        _ => ClientError::Io(e),
    }
}

impl Connection {
    /// Connects to the socket at `path`.
    pub async fn connect(path: &Path) -> Result<Connection, ClientError> {
        let stream = Async::<UnixStream>::connect(path)
            .await
            .map_err(|e| connect_error(path, e))?;
        Ok(Connection {
            stream,
            frames: FrameBuffer::new(),
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

    /// Receives the next packet. Cancellation-safe: partial frames stay in the buffer. A frame
    /// too big for the buffer comes back as [`ClientError::Oversized`], once, and the connection
    /// stays usable.
    pub async fn recv(&mut self) -> Result<Packet<'_>, ClientError> {
        loop {
            match self.frames.advance()? {
                Ready::Frame => return Ok(Packet::parse(self.frames.frame())?),
                Ready::Skipped(len) => return Err(ClientError::Oversized(len)),
                Ready::NeedMore => {}
            }
            let n = self
                .stream
                .read(self.frames.spare())
                .await
                .map_err(ClientError::Io)?;
            if n == 0 {
                // Closed in the middle of a frame: the peer sent a truncated one.
                return Err(if self.frames.mid_frame() {
                    ClientError::Wire(wire::Error::Truncated)
                } else {
                    ClientError::Closed
                });
            }
            self.frames.commit(n);
        }
    }
}

/// Runs `fut`, or fails with [`ClientError::Timeout`] naming `what` once `timeout` has passed.
pub(super) async fn with_deadline<T>(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_delays_double_up_to_the_cap_and_reset_to_the_floor() {
        let mut r = Reconnect::default();
        let mut delays = Vec::new();
        let mut want = VICI_RECONNECT_MIN_MS;
        for _ in 0..12 {
            delays.push(r.next_delay_ms());
            assert_eq!(*delays.last().unwrap(), want);
            want = (want * 2).min(VICI_RECONNECT_MAX_MS);
        }
        assert_eq!(delays[1], 2 * VICI_RECONNECT_MIN_MS);
        assert_eq!(*delays.last().unwrap(), VICI_RECONNECT_MAX_MS);
        r.reset();
        assert_eq!(r.next_delay_ms(), VICI_RECONNECT_MIN_MS);
    }
}
