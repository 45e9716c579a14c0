//! strongSwan's VICI protocol: the codec ([`wire`]), typed views ([`sa`]) and the smol client.

pub mod client;
pub mod sa;
pub mod wire;
