//! What the agent asks of charon and what comes back: [`Job`]s for the shell's command worker,
//! and the agent's own view of a failed call ([`CommandError`]), onto which the shell maps the
//! client's errors. The agent decides from the kind and logs the text; it never sees a socket
//! error type.

use core::fmt;

use super::machine::Line;
use crate::vici::sa::Name;

/// A VICI command for the shell's command worker, which runs them one at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    /// Reconcile: `list-sas {noblock = yes}`.
    ListSas,
    /// Learn the configured connections.
    ListConns,
    /// Bring a child up.
    Initiate {
        /// Child name.
        child: Name,
        /// Its connection.
        ike: Name,
        /// charon-side timeout.
        timeout_ms: u32,
    },
    /// Tear one CHILD_SA down (stale restart).
    Terminate {
        /// Child name (for the report).
        child: Name,
        /// The CHILD_SA's unique id.
        child_id: u32,
        /// charon-side timeout.
        timeout_ms: u32,
    },
}

/// What kind of failure a VICI call or the event link met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandErrorKind {
    /// No socket, no permission, nobody listening, the connection closed or broke.
    Unreachable,
    /// charon did not answer within the deadline (wedged or overloaded).
    Timeout,
    /// Bytes that are not VICI, a message that cannot be read, a frame too large to hold.
    Malformed,
    /// charon does not know the command or event (an older or trimmed build).
    Unsupported,
    /// swandog refused to send it (an unsafe name); nothing went to charon.
    Refused,
}

impl CommandErrorKind {
    /// Every kind, for tables indexed by kind.
    pub const ALL: [CommandErrorKind; 5] = [
        CommandErrorKind::Unreachable,
        CommandErrorKind::Timeout,
        CommandErrorKind::Malformed,
        CommandErrorKind::Unsupported,
        CommandErrorKind::Refused,
    ];

    /// Short label (`status`, metrics).
    pub fn label(self) -> &'static str {
        match self {
            CommandErrorKind::Unreachable => "unreachable",
            CommandErrorKind::Timeout => "timeout",
            CommandErrorKind::Malformed => "malformed",
            CommandErrorKind::Unsupported => "unsupported",
            CommandErrorKind::Refused => "refused",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A failed VICI call as the agent sees it: the kind it decides by, the text it logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError {
    /// What kind of failure.
    pub kind: CommandErrorKind,
    /// The client's own words (cut to a line).
    pub text: Line,
}

impl CommandError {
    /// A failure of `kind`, described by `text` (cut to `LINE_MAX_BYTES`).
    pub fn new(kind: CommandErrorKind, text: impl fmt::Display) -> CommandError {
        use core::fmt::Write;
        let mut line = Line::new();
        let _ = write!(Cut(&mut line), "{text}");
        CommandError { kind, text: line }
    }
}

/// Writes what fits, char by char, and drops the rest without an error.
struct Cut<'a>(&'a mut Line);

impl fmt::Write for Cut<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if self.0.push(c).is_err() {
                break;
            }
        }
        Ok(())
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Kinds of failure already logged in a streak: one bit per [`CommandErrorKind`], so it can hold
/// every kind (a fixed list could fill up and go silent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindsSeen(u8);

impl KindsSeen {
    /// Marks `kind` seen; whether it is new.
    pub fn insert(&mut self, kind: CommandErrorKind) -> bool {
        let new = self.0 & kind.bit() == 0;
        self.0 |= kind.bit();
        new
    }

    /// Forgets every kind.
    pub fn clear(&mut self) {
        self.0 = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_remembered_once() {
        let mut seen = KindsSeen::default();
        for kind in CommandErrorKind::ALL {
            assert!(seen.insert(kind), "{kind:?} is new");
        }
        for kind in CommandErrorKind::ALL {
            assert!(!seen.insert(kind), "{kind:?} was seen");
        }
        seen.clear();
        assert!(seen.insert(CommandErrorKind::Timeout));
    }

    #[test]
    fn the_text_is_cut_to_a_line_never_an_error() {
        let e = CommandError::new(CommandErrorKind::Malformed, "x".repeat(1000));
        assert_eq!(e.text.len(), crate::limits::LINE_MAX_BYTES);
    }
}
