//! swandog: a small agent beside strongSwan's `charon` on low-end routers.
//!
//! Layout (see ARCHITECTURE in the README): bytes in [`vici::wire`], decisions in the sans-I/O
//! [`agent`], side effects only in the smol shell ([`vici::client`], [`report`], `main.rs`).

pub mod limits;
pub mod vici;
