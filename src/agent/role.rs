//! The keeper's two policy choices: which side re-initiates a dropped child ([`Role`]) and what
//! to do about a one-sided CHILD_SA ([`StaleAction`]).
//!
//! The agent owns these types; the config only turns the operator's words (`role = auto`,
//! `stale_action = restart`) into them.
//!
//! ```
//! use swandog::agent::role::{Role, StaleAction};
//!
//! let (role, stale) = (Role::Auto, StaleAction::Report);
//! assert_ne!(role, Role::Responder);
//! assert_eq!(stale, StaleAction::Report);
//! ```

/// Which side re-initiates dropped tunnels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Always re-initiates.
    Initiator,
    /// Never initiates; reports only.
    Responder,
    /// Picks a side from the two endpoint addresses, so two swandogs never both initiate.
    Auto,
}

/// What to do with a one-sided (stale) CHILD_SA: packets out grow, packets in stay frozen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StaleAction {
    /// Log it.
    Report,
    /// Log it, terminate the child and initiate it again.
    Restart,
}
