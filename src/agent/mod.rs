//! The sans-I/O brain of swandog: takes load samples, SA events and `now`, returns actions.
//!
//! Nothing in here touches a socket, a clock or a file; the smol shell in `main.rs` feeds it.

pub mod cause;
pub mod command;
pub mod correlate;
pub mod diagnose;
pub mod history;
pub mod keeper;
mod lines;
pub mod plan;
pub mod role;
pub mod status;
pub mod throttle;
pub mod units;

pub use units::Millis;

mod machine;
pub use command::{CommandError, CommandErrorKind, Job};
pub use machine::{Action, Agent, CommandDone, Counters, DpdRecord, Line, Settings};
