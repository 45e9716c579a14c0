//! swandog: a small agent beside strongSwan's `charon` on low-end routers.
//!
//! Layout: bytes in [`vici::wire`], decisions in the sans-I/O [`agent`], side effects only in the
//! smol shell ([`vici::client`], [`report`], `main.rs`).

pub mod agent;
pub mod board;
pub mod config;
pub mod limits;
pub mod report;
pub mod sample;
pub mod swanctl_conf;
pub mod vici;
