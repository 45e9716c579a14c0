//! The event connection: registers for the events swandog listens to ([`EVENTS`]) and yields
//! them one by one as typed [`Event`]s, reconnecting after the socket breaks.
//!
//! ```no_run
//! # smol::block_on(async {
//! use swandog::vici::client::{Events, Uri};
//! let mut events = Events::new(&Uri::parse("unix:///var/run/charon.vici").unwrap());
//! loop {
//!     match events.next().await {
//!         Ok(event) => println!("{event:?}"),
//!         Err(e) if e.breaks_connection() => break,
//!         Err(e) => eprintln!("skipped: {e}"),
//!     }
//! }
//! # });
//! ```

use std::path::PathBuf;
use std::time::{Duration, Instant};

use smol::Timer;

use super::connection::Connection;
use super::{ClientError, Uri};
use crate::limits::VICI_CALL_TIMEOUT_MS;
use crate::vici::sa::Event;
use crate::vici::wire::{PacketType, Writer};

/// Events the agent listens to; `alert` exists from strongSwan 6.0.3 on.
pub const EVENTS: [&str; 4] = ["ike-updown", "child-updown", "log", "alert"];

/// The event connection: registers for [`EVENTS`] and yields them one by one.
///
/// Both [`Events::connect`] and [`Events::next`] are cancellation-safe: the shell races them
/// against its timers, so a registration that takes longer than one timer tick (a slow or wedged
/// charon) resumes where it stopped, on the same connection and under the same deadline, instead
/// of starting over on a new connection every tick and never timing out.
pub struct Events {
    path: PathBuf,
    conn: Option<Connection>,
    /// A connection still being registered, kept across cancellations.
    pending: Option<Registration>,
    /// The deadline of the registration under way.
    deadline: Option<Instant>,
    /// Whether charon offers the `alert` event (strongSwan ≥ 6.0.3).
    pub alerts: bool,
}

/// How far the registration of one new event connection got.
struct Registration {
    conn: Connection,
    /// Index in [`EVENTS`] of the event being registered.
    next: usize,
    /// Bytes of its EVENT_REGISTER already written.
    written: usize,
    alerts: bool,
}

impl Events {
    /// An event client for `uri`; connects on the first [`Events::next`].
    pub fn new(uri: &Uri) -> Events {
        Events {
            path: uri.path().to_path_buf(),
            conn: None,
            pending: None,
            deadline: None,
            alerts: false,
        }
    }

    /// Whether the connection is open and registered.
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Connects and registers, unless already done, within `VICI_CALL_TIMEOUT_MS`.
    /// Cancellation-safe (see [`Events`]).
    pub async fn connect(&mut self) -> Result<(), ClientError> {
        if self.conn.is_some() {
            return Ok(());
        }
        let deadline = *self
            .deadline
            .get_or_insert_with(|| Instant::now() + Duration::from_millis(VICI_CALL_TIMEOUT_MS));
        let result = smol::future::or(self.register_all(), async {
            Timer::at(deadline).await;
            Err(ClientError::Timeout("event registration"))
        })
        .await;
        self.deadline = None;
        if result.is_err() {
            self.pending = None;
        }
        result
    }

    /// Opens a connection and registers every event, resuming a registration under way.
    async fn register_all(&mut self) -> Result<(), ClientError> {
        if self.pending.is_none() {
            let conn = Connection::connect(&self.path).await?;
            self.pending = Some(Registration {
                conn,
                next: 0,
                written: 0,
                alerts: false,
            });
        }
        let mut buf = [0u8; 64];
        loop {
            let p = self.pending.as_mut().ok_or(ClientError::Closed)?;
            let Some(&event) = EVENTS.get(p.next) else {
                break;
            };
            let frame = Writer::new(&mut buf, PacketType::EventRegister, Some(event.as_bytes()))?
                .finish()?;
            while p.written < frame.len() {
                p.written += p.conn.send_some(&frame[p.written..]).await?;
            }
            match p.conn.recv().await?.kind {
                PacketType::EventConfirm => p.alerts |= event == "alert",
                // strongSwan before 6.0.3 has no `alert` event.
                PacketType::EventUnknown if event == "alert" => {}
                PacketType::EventUnknown => return Err(ClientError::UnknownEvent(event)),
                // An event registered earlier on this connection may slip in before the confirm.
                PacketType::Event => continue,
                other => return Err(ClientError::Unexpected(other)),
            }
            p.next += 1;
            p.written = 0;
        }
        let p = self.pending.take().ok_or(ClientError::Closed)?;
        self.alerts = p.alerts;
        self.conn = Some(p.conn);
        Ok(())
    }

    /// The next event swandog uses. Cancellation-safe. Malformed or oversized frames come back as
    /// errors that leave the connection open; a broken connection is dropped.
    pub async fn next(&mut self) -> Result<Event, ClientError> {
        self.connect().await?;
        loop {
            let conn = self.conn.as_mut().ok_or(ClientError::Closed)?;
            let result = match conn.recv().await {
                Ok(packet) if packet.kind == PacketType::Event => {
                    match Event::parse(packet.name.unwrap_or_default(), packet.message) {
                        Ok(Some(event)) => Ok(event),
                        Ok(None) => continue,
                        Err(e) => Err(ClientError::View(e)),
                    }
                }
                Ok(packet) => Err(ClientError::Unexpected(packet.kind)),
                Err(e) => Err(e),
            };
            if result.as_ref().is_err_and(ClientError::breaks_connection) {
                self.conn = None;
            }
            return result;
        }
    }
}
