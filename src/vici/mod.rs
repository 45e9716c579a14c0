//! strongSwan's VICI protocol: the codec ([`wire`]), the I/O-free receive buffer ([`frame`]),
//! typed views of what charon reports ([`sa`]) and answers ([`reply`]), and the smol
//! [`client`].

pub mod client;
pub mod frame;
pub mod reply;
pub mod sa;
pub mod wire;
