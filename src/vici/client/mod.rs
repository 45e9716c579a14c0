//! The VICI client on smol: one connection for commands, one for events, a hard timeout on every
//! call (a wedged charon must never hang swandog), and reconnection after the socket vanishes.
//!
//! * [`connection`]: one socket with its receive buffer (a
//!   [`FrameBuffer`](crate::vici::frame::FrameBuffer)), and the delays between reconnections;
//! * [`commands`]: `version`, `stats`, `list-sas`, `list-conns`, `initiate`, `terminate`, one at a
//!   time, each under its deadline;
//! * [`events`]: the event connection, registered for [`EVENTS`].
//!
//! Here: where the socket is ([`Uri`]) and why a call failed ([`ClientError`]). Replies are typed
//! in [`reply`](super::reply), SAs and events in [`sa`](super::sa).
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

pub mod commands;
pub mod connection;
pub mod events;

use std::io;
use std::path::{Path, PathBuf};

use super::sa::ViewError;
use super::wire::{self, PacketType};

pub use super::reply::{InitiateReply, Stats, Version};
pub use commands::Commands;
pub use connection::{Connection, Reconnect};
pub use events::{Events, EVENTS};

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
    /// A name swandog refuses to pass on (see [`crate::vici::sa::is_safe_name`]); nothing was
    /// sent.
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
