//! How swandog speaks: syslog lines and the status snapshot.

pub mod localtime;
pub mod metrics;
pub mod render;
pub mod status;
pub mod syslog;
pub mod table;
