//! The command connection: the VICI commands swandog sends, one at a time, each under a hard
//! deadline, with the connection opened on first use and reopened after charon restarts.
//!
//! Streamed answers (`list-sa`, `list-conn`, `control-log` events) are handed to a callback as
//! they arrive, so no list is ever tabled here; the final reply is typed by
//! [`crate::vici::reply`].
//!
//! ```no_run
//! # smol::block_on(async {
//! use swandog::vici::client::{Commands, Uri};
//! let mut commands = Commands::new(&Uri::parse("unix:///var/run/charon.vici").unwrap());
//! commands
//!     .list_sas(&mut |ike| println!("{} {:?}", ike.name, ike.state))
//!     .await
//!     .unwrap();
//! let reply = commands.initiate("con2_1", Some("con2"), 10_000, &mut |_| {}).await.unwrap();
//! println!("initiate: {}", if reply.success { "ok" } else { reply.errmsg.as_str() });
//! # });
//! ```

use std::path::PathBuf;
use std::time::Duration;

use heapless::String;

use super::connection::{with_deadline, Connection};
use super::{ClientError, Uri};
use crate::limits::{VICI_CALL_TIMEOUT_MS, VICI_REQUEST_BUFFER_BYTES};
use crate::vici::reply::{InitiateReply, Stats, Version};
use crate::vici::sa::{is_safe_name, Conn, IkeSa, LogLine};
use crate::vici::wire::{self, PacketType, Writer};

/// The command connection: one call at a time, each with a hard deadline.
pub struct Commands {
    path: PathBuf,
    conn: Option<Connection>,
    timeout: Duration,
    request: Box<[u8]>,
}

impl Commands {
    /// A client for the socket at `uri`; connects lazily on the first call.
    pub fn new(uri: &Uri) -> Commands {
        Commands {
            path: uri.path().to_path_buf(),
            conn: None,
            timeout: Duration::from_millis(VICI_CALL_TIMEOUT_MS),
            request: vec![0u8; VICI_REQUEST_BUFFER_BYTES].into_boxed_slice(),
        }
    }

    /// Sets the deadline for each call (including streamed replies).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Runs one command: optionally registers `stream` first, hands each streamed event message
    /// to `on_event`, and the response message to `on_response`.
    async fn call<T>(
        &mut self,
        command: &'static str,
        args: impl FnOnce(&mut Writer<'_>) -> Result<(), wire::Error>,
        stream: Option<&'static str>,
        on_event: &mut dyn FnMut(&[u8]) -> Result<(), ClientError>,
        on_response: impl FnOnce(&[u8]) -> Result<T, ClientError>,
        timeout: Option<Duration>,
    ) -> Result<T, ClientError> {
        let timeout = timeout.unwrap_or(self.timeout);
        let mut w = Writer::new(
            &mut self.request,
            PacketType::CmdRequest,
            Some(command.as_bytes()),
        )?;
        args(&mut w)?;
        let len = w.finish()?.len();
        let result = with_deadline(command, timeout, async {
            // After a charon restart the old connection is dead: the first command must not
            // fail on it (nothing else notices, since commands are idle between calls).
            if self.conn.as_ref().is_some_and(Connection::peer_closed) {
                self.conn = None;
            }
            if self.conn.is_none() {
                self.conn = Some(Connection::connect(&self.path).await?);
            }
            let conn = self.conn.as_mut().ok_or(ClientError::Closed)?;
            if let Some(event) = stream {
                register(conn, PacketType::EventRegister, event).await?;
            }
            conn.send(&self.request[..len]).await?;
            let mut outcome = None;
            loop {
                let packet = match conn.recv().await {
                    Ok(p) => p,
                    Err(e) if !e.breaks_connection() => {
                        outcome.get_or_insert(Err(e));
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                match packet.kind {
                    PacketType::Event => {
                        if let Err(e) = on_event(packet.message) {
                            outcome.get_or_insert(Err(e));
                        }
                    }
                    PacketType::CmdResponse => {
                        let response = on_response(packet.message);
                        outcome = Some(match outcome {
                            Some(Err(e)) => Err(e),
                            _ => response,
                        });
                        break;
                    }
                    PacketType::CmdUnknown => {
                        outcome = Some(Err(ClientError::UnknownCommand(command)));
                        break;
                    }
                    other => return Err(ClientError::Unexpected(other)),
                }
            }
            if let Some(event) = stream {
                register(conn, PacketType::EventUnregister, event).await?;
            }
            outcome.unwrap_or(Err(ClientError::Closed))
        })
        .await;
        if result.as_ref().is_err_and(ClientError::breaks_connection) {
            self.conn = None;
        }
        result
    }

    /// `version`.
    pub async fn version(&mut self) -> Result<Version, ClientError> {
        let parse = |m: &[u8]| Ok(Version::parse(m)?);
        self.call("version", |_| Ok(()), None, &mut |_| Ok(()), parse, None)
            .await
    }

    /// `stats`.
    pub async fn stats(&mut self) -> Result<Stats, ClientError> {
        let parse = |m: &[u8]| Ok(Stats::parse(m)?);
        self.call("stats", |_| Ok(()), None, &mut |_| Ok(()), parse, None)
            .await
    }

    /// `list-sas {noblock = yes}`: hands every IKE_SA to `on_ike` as it arrives.
    pub async fn list_sas(&mut self, on_ike: &mut dyn FnMut(IkeSa)) -> Result<(), ClientError> {
        let mut on_event = |message: &[u8]| {
            let ikes: heapless::Vec<IkeSa, 1> = IkeSa::parse_all(message)?;
            for ike in ikes {
                on_ike(ike);
            }
            Ok(())
        };
        self.list_sa_events(&mut on_event).await
    }

    /// `list-sas {noblock = yes}`, each IKE_SA handed to `on_part` in parts of at most
    /// `CHILD_SAS_PER_IKE_MAX` children ([`IkeSa::parse_chunked`]): the agent's streamed view,
    /// with no limit on children per IKE_SA.
    pub async fn list_sas_parts(
        &mut self,
        on_part: &mut dyn FnMut(&IkeSa),
    ) -> Result<(), ClientError> {
        let mut on_event = |message: &[u8]| {
            IkeSa::parse_chunked(message, on_part)?;
            Ok(())
        };
        self.list_sa_events(&mut on_event).await
    }

    /// `list-sas {noblock = yes}`, each `list-sa` event's message to `on_event` (both views above
    /// read the same stream; only how an IKE_SA is handed on differs).
    async fn list_sa_events(
        &mut self,
        on_event: &mut dyn FnMut(&[u8]) -> Result<(), ClientError>,
    ) -> Result<(), ClientError> {
        self.call(
            "list-sas",
            |w| w.key_value(b"noblock", b"yes"),
            Some("list-sa"),
            on_event,
            |_| Ok(()),
            None,
        )
        .await
    }

    /// `list-conns`: hands every configured connection to `on_conn` as it arrives, in parts of at
    /// most `CHILD_SAS_PER_IKE_MAX` children each ([`Conn::parse_chunked`]).
    pub async fn list_conns(&mut self, on_conn: &mut dyn FnMut(&Conn)) -> Result<(), ClientError> {
        let mut on_event = |message: &[u8]| {
            Conn::parse_chunked(message, on_conn)?;
            Ok(())
        };
        self.call(
            "list-conns",
            |_| Ok(()),
            Some("list-conn"),
            &mut on_event,
            |_| Ok(()),
            None,
        )
        .await
    }

    /// `initiate {child, ike, timeout, init-limits = yes, loglevel = 1}`; each `control-log` line
    /// goes to `on_log`. The call's own deadline is `timeout_ms` plus a margin.
    pub async fn initiate(
        &mut self,
        child: &str,
        ike: Option<&str>,
        timeout_ms: u32,
        on_log: &mut dyn FnMut(LogLine),
    ) -> Result<InitiateReply, ClientError> {
        // Names come from the config (validated there) or from charon's own list-sas.
        if !is_safe_name(child) {
            return Err(ClientError::UnsafeName("child"));
        }
        if ike.is_some_and(|ike| !is_safe_name(ike)) {
            return Err(ClientError::UnsafeName("connection"));
        }
        let mut timeout_text: String<12> = String::new();
        let _ = core::fmt::write(&mut timeout_text, format_args!("{timeout_ms}"));
        let mut on_event = |message: &[u8]| {
            on_log(LogLine::parse(message)?);
            Ok(())
        };
        self.call(
            "initiate",
            |w| {
                w.key_value(b"child", child.as_bytes())?;
                if let Some(ike) = ike {
                    w.key_value(b"ike", ike.as_bytes())?;
                }
                w.key_value(b"timeout", timeout_text.as_bytes())?;
                w.key_value(b"init-limits", b"yes")?;
                w.key_value(b"loglevel", b"1")
            },
            Some("control-log"),
            &mut on_event,
            |m| Ok(InitiateReply::parse(m)?),
            Some(Duration::from_millis(u64::from(timeout_ms)) + self.timeout),
        )
        .await
    }

    /// `terminate` one CHILD_SA by its unique id (or a whole IKE_SA with `ike_id`).
    pub async fn terminate(
        &mut self,
        child_id: Option<u32>,
        ike_id: Option<u32>,
        timeout_ms: u32,
    ) -> Result<InitiateReply, ClientError> {
        let mut child_text: String<12> = String::new();
        let mut ike_text: String<12> = String::new();
        let mut timeout_text: String<12> = String::new();
        if let Some(id) = child_id {
            let _ = core::fmt::write(&mut child_text, format_args!("{id}"));
        }
        if let Some(id) = ike_id {
            let _ = core::fmt::write(&mut ike_text, format_args!("{id}"));
        }
        let _ = core::fmt::write(&mut timeout_text, format_args!("{timeout_ms}"));
        self.call(
            "terminate",
            |w| {
                if !child_text.is_empty() {
                    w.key_value(b"child-id", child_text.as_bytes())?;
                }
                if !ike_text.is_empty() {
                    w.key_value(b"ike-id", ike_text.as_bytes())?;
                }
                w.key_value(b"timeout", timeout_text.as_bytes())
            },
            Some("control-log"),
            &mut |_| Ok(()),
            |m| Ok(InitiateReply::parse(m)?),
            Some(Duration::from_millis(u64::from(timeout_ms)) + self.timeout),
        )
        .await
    }
}

/// Registers (or unregisters) `event` on a command connection, for the replies streamed by the
/// command that follows.
async fn register(
    conn: &mut Connection,
    kind: PacketType,
    event: &'static str,
) -> Result<(), ClientError> {
    let mut buf = [0u8; 64];
    let frame = Writer::new(&mut buf, kind, Some(event.as_bytes()))?.finish()?;
    conn.send(frame).await?;
    loop {
        let packet = conn.recv().await?;
        match packet.kind {
            PacketType::EventConfirm => return Ok(()),
            PacketType::EventUnknown => return Err(ClientError::UnknownEvent(event)),
            // An event registered earlier on this connection may slip in before the confirm.
            PacketType::Event => continue,
            other => return Err(ClientError::Unexpected(other)),
        }
    }
}
