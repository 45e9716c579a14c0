//! The sans-I/O brain of swandog: takes load samples, SA events and `now`, returns actions.
//!
//! Nothing in here touches a socket, a clock or a file; the smol shell in `main.rs` feeds it.

/// Monotonic time in milliseconds since the agent started (the shell's clock, simulated in tests).
pub type Millis = u64;

pub mod correlate;
pub mod diagnose;
pub mod history;
pub mod keeper;
mod lines;
pub mod plan;
pub mod throttle;

mod machine;
pub use machine::{Action, Agent, CommandDone, Counters, DpdRecord, Job, Line, Settings};
