//! How swandog speaks: syslog lines, the status snapshot and the metrics file, all rendered from
//! the agent's status view ([`crate::agent::status`]).

pub mod localtime;
pub mod metrics;
pub mod render;
pub mod status;
pub mod syslog;
pub mod table;
