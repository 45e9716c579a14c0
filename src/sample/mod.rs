//! Samplers of outside state: CPU load from `/proc`.

pub mod load;
