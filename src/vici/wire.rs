//! VICI packet and message codec (placeholder, being written).
