//! How swandog speaks: syslog lines and the status snapshot.
pub mod status;
pub mod table;
