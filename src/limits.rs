//! Every capacity and timing constant of swandog, in one place, with its unit in the name.
//!
//! The memory budget can be read off this screen.

/// Largest VICI segment charon accepts or sends (its own limit).
pub const VICI_SEGMENT_MAX_BYTES: usize = 512 * 1024;
