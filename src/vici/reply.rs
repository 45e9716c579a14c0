//! Typed views of charon's answers to the commands swandog sends: `version`, `stats`, and the
//! `success` / `errmsg` reply of `initiate` and `terminate`.
//!
//! Like the views in [`sa`](super::sa), each is read in one pass over a message's
//! [`wire`](super::wire) elements into a fixed-capacity value; a key charon leaves out reads as
//! empty (text) or zero (numbers), never as an error.
//!
//! ```
//! use swandog::vici::reply::InitiateReply;
//! use swandog::vici::wire::{Packet, PacketType, Writer};
//!
//! let mut buf = [0u8; 128];
//! let mut w = Writer::new(&mut buf, PacketType::CmdResponse, None).unwrap();
//! w.key_value(b"success", b"no").unwrap();
//! w.key_value(b"errmsg", b"establishing CHILD_SA 'con1' failed").unwrap();
//! let frame = w.finish().unwrap();
//!
//! let reply = InitiateReply::parse(Packet::parse(&frame[4..]).unwrap().message).unwrap();
//! assert!(!reply.success);
//! assert_eq!(reply.errmsg, "establishing CHILD_SA 'con1' failed");
//! ```

use heapless::String;

use super::sa::{lossy_truncated, top_value, ViewError};
use super::wire::{Element, Elements};

/// charon's identity, from `version`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Version {
    /// `charon`.
    pub daemon: String<32>,
    /// e.g. `5.9.8`.
    pub version: String<32>,
    /// e.g. `Linux`.
    pub sysname: String<32>,
    /// Kernel release.
    pub release: String<64>,
    /// e.g. `x86_64`.
    pub machine: String<32>,
}

impl Version {
    /// Reads a `version` reply; longer texts are cut to fit.
    pub fn parse(message: &[u8]) -> Result<Version, ViewError> {
        Ok(Version {
            daemon: text(message, b"daemon")?,
            version: text(message, b"version")?,
            sysname: text(message, b"sysname")?,
            release: text(message, b"release")?,
            machine: text(message, b"machine")?,
        })
    }
}

/// charon's own load signal, from `stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Seconds since charon started, as precise as charon words it: its `%V` format
    /// (strongSwan's `time_delta_printf_hook`) counts whole minutes past 2 minutes, whole hours
    /// past 2 hours and whole days past 2 days (`running = 3 days`).
    pub uptime_s: u64,
    /// Worker threads.
    pub workers_total: u32,
    /// Idle worker threads.
    pub workers_idle: u32,
    /// Jobs queued, all priorities.
    pub queued: u32,
    /// IKE_SAs.
    pub ike_sas: u32,
    /// Half-open IKE_SAs.
    pub ike_sas_half_open: u32,
}

impl Stats {
    /// Reads a `stats` reply; a missing or unreadable number reads as zero.
    pub fn parse(message: &[u8]) -> Result<Stats, ViewError> {
        let mut queued = 0u64;
        for priority in [&b"critical"[..], b"high", b"medium", b"low"] {
            queued = queued.saturating_add(number(message, &[b"queues", priority])?);
        }
        let count = |path: &[&[u8]]| -> Result<u32, ViewError> {
            Ok(u32::try_from(number(message, path)?).unwrap_or(u32::MAX))
        };
        Ok(Stats {
            uptime_s: nested_value(message, &[b"uptime", b"running"])?.map_or(0, uptime_seconds),
            workers_total: count(&[b"workers", b"total"])?,
            workers_idle: count(&[b"workers", b"idle"])?,
            queued: u32::try_from(queued).unwrap_or(u32::MAX),
            ike_sas: count(&[b"ikesas", b"total"])?,
            ike_sas_half_open: count(&[b"ikesas", b"half-open"])?,
        })
    }
}

/// What `initiate` (or `terminate`) answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InitiateReply {
    /// charon's `success`.
    pub success: bool,
    /// charon's `errmsg`, when it failed (cut to fit).
    pub errmsg: String<128>,
}

impl InitiateReply {
    /// Reads an `initiate` or `terminate` reply; no `success = yes` means it failed.
    pub fn parse(message: &[u8]) -> Result<InitiateReply, ViewError> {
        Ok(InitiateReply {
            success: top_value(message, b"success")? == Some(b"yes"),
            errmsg: text(message, b"errmsg")?,
        })
    }
}

/// A top-level value as text, cut to `N` bytes; empty when absent.
fn text<const N: usize>(message: &[u8], key: &[u8]) -> Result<String<N>, ViewError> {
    Ok(top_value(message, key)?
        .map(lossy_truncated)
        .unwrap_or_default())
}

/// The value at `path` (sections, then the key), if present.
fn nested_value<'a>(message: &'a [u8], path: &[&[u8]]) -> Result<Option<&'a [u8]>, ViewError> {
    let mut elements = Elements::new(message);
    let mut matched = 0usize;
    while let Some(element) = elements.next() {
        match element? {
            Element::SectionStart(name)
                if matched + 1 == elements.depth() && path.get(matched) == Some(&name) =>
            {
                matched += 1;
            }
            Element::SectionEnd if elements.depth() < matched => matched = elements.depth(),
            Element::KeyValue(key, value)
                if elements.depth() == matched
                    && matched + 1 == path.len()
                    && path[matched] == key =>
            {
                return Ok(Some(value));
            }
            _ => {}
        }
    }
    Ok(None)
}

/// The decimal number at `path`; zero when absent or not a number.
fn number(message: &[u8], path: &[&[u8]]) -> Result<u64, ViewError> {
    Ok(nested_value(message, path)?
        .and_then(|v| core::str::from_utf8(v).ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// `2 seconds`, `1 minute`, `5 hours`, `3 days` (charon's `%V`) in seconds; zero if unreadable.
fn uptime_seconds(value: &[u8]) -> u64 {
    let text = core::str::from_utf8(value).unwrap_or_default();
    let Some((count, unit)) = text.split_once(' ') else {
        return 0;
    };
    let per: u64 = match unit.strip_suffix('s').unwrap_or(unit) {
        "second" => 1,
        "minute" => 60,
        "hour" => 3_600,
        "day" => 86_400,
        _ => return 0,
    };
    count.parse::<u64>().map_or(0, |n| n.saturating_mul(per))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vici::wire::{Error, Packet, PacketType, Writer};

    /// The message of a captured segment (tests/data/vici/README.md says how they were made).
    fn message(segment: &[u8]) -> &[u8] {
        let packet = Packet::parse(&segment[4..]).unwrap();
        assert_eq!(packet.kind, PacketType::CmdResponse);
        packet.message
    }

    /// A CMD_RESPONSE message assembled by hand; `build` writes its elements.
    fn assembled(build: impl FnOnce(&mut Writer<'_>) -> Result<(), Error>) -> Vec<u8> {
        let mut buf = [0u8; 1024];
        let mut w = Writer::new(&mut buf, PacketType::CmdResponse, None).unwrap();
        build(&mut w).unwrap();
        let frame = w.finish().unwrap();
        Packet::parse(&frame[4..]).unwrap().message.to_vec()
    }

    const VERSION: &[u8] = include_bytes!("../../tests/data/vici/version-response.bin");
    const STATS: &[u8] = include_bytes!("../../tests/data/vici/stats-response.bin");

    #[test]
    fn version_from_charon_5_9_8_reads_every_field() {
        let v = Version::parse(message(VERSION)).unwrap();
        assert_eq!(v.daemon, "charon");
        assert_eq!(v.version, "5.9.8");
        assert_eq!(v.sysname, "Linux");
        assert_eq!(v.release, "6.18.44-fc-v782");
        assert_eq!(v.machine, "x86_64");
    }

    #[test]
    fn version_texts_too_long_are_cut_and_missing_ones_are_empty() {
        let long = [b'r'; 100];
        let m = assembled(|w| {
            w.key_value(b"daemon", b"charon")?;
            w.key_value(b"release", &long)
        });
        let v = Version::parse(&m).unwrap();
        assert_eq!(v.daemon, "charon");
        assert_eq!(
            v.release.as_str(),
            core::str::from_utf8(&long[..64]).unwrap()
        );
        assert_eq!(v.version, "");
        assert_eq!(v.machine, "");
    }

    #[test]
    fn stats_from_charon_5_9_8_reads_workers_queues_and_ike_sas() {
        // Captured: uptime running = "2 seconds", workers total 16 idle 7 (active critical 4,
        // medium 5), queues all 0, ikesas total 2 half-open 0.
        let s = Stats::parse(message(STATS)).unwrap();
        assert_eq!(
            s,
            Stats {
                uptime_s: 2,
                workers_total: 16,
                workers_idle: 7,
                queued: 0,
                ike_sas: 2,
                ike_sas_half_open: 0,
            }
        );
    }

    #[test]
    fn stats_sums_the_queues_and_ignores_same_named_keys_in_other_sections() {
        let m = assembled(|w| {
            w.section_start(b"workers")?;
            w.section_start(b"active")?;
            w.key_value(b"critical", b"9")?;
            w.key_value(b"total", b"99")?;
            w.section_end()?;
            w.key_value(b"total", b"4")?;
            w.section_end()?;
            w.key_value(b"critical", b"50")?;
            w.section_start(b"queues")?;
            for (k, v) in [
                ("critical", "1"),
                ("high", "2"),
                ("medium", "3"),
                ("low", "4"),
            ] {
                w.key_value(k.as_bytes(), v.as_bytes())?;
            }
            w.section_end()?;
            w.section_start(b"ikesas")?;
            w.key_value(b"total", b"not a number")?;
            w.key_value(b"half-open", b"4294967296")?;
            w.section_end()
        });
        let s = Stats::parse(&m).unwrap();
        assert_eq!(s.workers_total, 4);
        assert_eq!(s.queued, 10);
        assert_eq!(s.ike_sas, 0, "not a number reads as zero");
        assert_eq!(s.ike_sas_half_open, u32::MAX, "saturates");
        assert_eq!(s.workers_idle, 0, "absent");
        assert_eq!(s.uptime_s, 0, "absent");
    }

    #[test]
    fn stats_uptime_takes_each_of_charons_units() {
        for (running, seconds) in [
            ("1 second", 1),
            ("120 seconds", 120),
            ("3 minutes", 180),
            ("1 minute", 60),
            ("5 hours", 18_000),
            ("400 days", 34_560_000),
            ("soon", 0),
            ("3 fortnights", 0),
            ("x seconds", 0),
        ] {
            let m = assembled(|w| {
                w.section_start(b"uptime")?;
                w.key_value(b"running", running.as_bytes())?;
                w.key_value(b"since", b"Nov 29 14:05:09 2026")?;
                w.section_end()
            });
            assert_eq!(Stats::parse(&m).unwrap().uptime_s, seconds, "{running}");
        }
    }

    #[test]
    fn initiate_replies_from_charon_read_success_and_errmsg() {
        for (file, segment) in [
            (
                "initiate-response-fail",
                &include_bytes!("../../tests/data/vici/initiate-response-fail.bin")[..],
            ),
            (
                "initiate-response-fail-unreachable",
                include_bytes!("../../tests/data/vici/initiate-response-fail-unreachable.bin"),
            ),
            (
                "initiate-response-duplicate",
                include_bytes!("../../tests/data/vici/initiate-response-duplicate.bin"),
            ),
        ] {
            let reply = InitiateReply::parse(message(segment)).unwrap();
            assert!(!reply.success, "{file}");
            assert_eq!(
                reply.errmsg, "establishing CHILD_SA 'con1' failed",
                "{file}"
            );
        }
        for segment in [
            &include_bytes!("../../tests/data/vici/initiate-response-success.bin")[..],
            include_bytes!("../../tests/data/vici/terminate-child-response.bin"),
            include_bytes!("../../tests/data/vici/terminate-ike-response.bin"),
        ] {
            let reply = InitiateReply::parse(message(segment)).unwrap();
            assert_eq!(
                reply,
                InitiateReply {
                    success: true,
                    errmsg: String::new()
                }
            );
        }
    }

    #[test]
    fn initiate_reply_without_yes_fails_and_a_long_errmsg_is_cut_on_a_char_boundary() {
        assert!(
            !InitiateReply::parse(&assembled(|_| Ok(())))
                .unwrap()
                .success
        );
        let m = assembled(|w| w.key_value(b"success", b"YES"));
        assert!(
            !InitiateReply::parse(&m).unwrap().success,
            "charon writes yes"
        );
        // A nested `success = yes` is not the reply's own.
        let m = assembled(|w| {
            w.section_start(b"child")?;
            w.key_value(b"success", b"yes")?;
            w.section_end()
        });
        assert!(!InitiateReply::parse(&m).unwrap().success);

        let errmsg = "é".repeat(100); // 200 bytes, two per char
        let m = assembled(|w| {
            w.key_value(b"success", b"no")?;
            w.key_value(b"errmsg", errmsg.as_bytes())
        });
        let reply = InitiateReply::parse(&m).unwrap();
        assert_eq!(reply.errmsg.as_str(), &errmsg[..128]);
    }

    #[test]
    fn a_malformed_message_is_an_error_not_a_default() {
        let bad = [9u8];
        let want = Some(ViewError::Wire(Error::UnknownElementType(9)));
        assert_eq!(InitiateReply::parse(&bad).err(), want);
        assert_eq!(Version::parse(&bad).err(), want);
        assert_eq!(Stats::parse(&bad).err(), want);
    }
}
