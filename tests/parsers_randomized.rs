//! Fixed-seed randomized tests of the parsers of outside input not covered by
//! `wire_captured.rs`: the config file, `/proc/stat` and `/proc/pressure/cpu`, and the charon
//! log-line classifier. Tens of thousands of cases each, seeded from recorded files
//! (`tests/data/proc`, `tests/data/charon-log`, `board/swandog.conf.example`), so a regression
//! shows in CI; the open-ended search is the cargo-fuzz crate in `fuzz/`.
//!
//! Each test checks properties on its mutated inputs, not just "no panic": config errors are one
//! line naming a line that exists, what parses survives `describe` and back; `/proc` readings use
//! complete lines only, permilles stay within 0..=1000; a log line classifies the same padded or
//! not and through a VICI event or not; counted numbers read back exactly. Each phase also checks
//! that its mutations reached both outcomes (parsed and refused, classified and not).

mod common;

use common::rng::Rng;
use std::path::Path;

use swandog::agent::diagnose::{classify_log, LogSignal};
use swandog::config::{Config, Key, Origin};
use swandog::limits::LOG_MSG_MAX_BYTES;
use swandog::sample::load::{parse_psi_some_avg10_centi, parse_stat, LoadSampler, Reading};
use swandog::vici::sa::LogLine;
use swandog::vici::wire::{Packet, PacketType, Writer};

fn data(path: &str) -> Vec<u8> {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn text(path: &str) -> String {
    String::from_utf8(data(path)).expect("UTF-8 test data")
}

// ------------------------------------------------------------------------------------ config

/// Pieces config mutations are made of: syntax, keys, values and troublemakers.
const CONFIG_PIECES: &[&str] = &[
    "=",
    "#",
    " #",
    "\"",
    "'",
    ",",
    " ",
    "\t",
    "\n",
    "\r\n",
    "\u{feff}",
    "\0",
    "é",
    "€",
    "-",
    "--",
    "0",
    "1",
    "60",
    "-5",
    "99999999999999",
    "4294967296",
    "yes",
    "no",
    "none",
    "auto",
    "initiator",
    "responder",
    "restart",
    "report",
    "syslog",
    "stderr",
    "debug",
    "local7",
    "mt7621",
    "ath79",
    "unix:///x/charon.vici",
    "/tmp/s",
    "/",
    "con1",
    "con2_1, con2_2",
    "a b c",
    "watch",
    "role",
    "board",
    "vici",
    "status_file",
    "proc_root",
    "dpd_window_s",
    "sample_interval_ms",
    "backoff_cap_ms",
    "backoff_min_ms",
    "stale_action",
    "nice",
    "rol",
    "wach",
];

fn mutate_text(rng: &mut Rng, base: &str) -> String {
    let mut text = base.to_string();
    for _ in 0..=rng.below(4) {
        let mut at = rng.below(text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        match rng.below(6) {
            0 if at < text.len() => {
                text.remove(at);
            }
            1 | 2 => {
                let piece = *rng.pick(CONFIG_PIECES);
                text.insert_str(at, piece);
            }
            3 => text.truncate(at),
            4 if at < text.len() => {
                let c = *rng.pick(&['=', '#', '"', '\n', ' ', 'x', '9']);
                text.remove(at);
                text.insert(at, c);
            }
            _ => {
                // Swap two lines (reorderings), sometimes repeating one (duplicates).
                let mut lines: Vec<&str> = text.split('\n').collect();
                let (i, j) = (rng.below(lines.len()), rng.below(lines.len()));
                lines.swap(i, j);
                if rng.chance(3) {
                    lines.push(lines[i]);
                }
                text = lines.join("\n");
            }
        }
    }
    text
}

/// The example file's settings, uncommented: every key at its documented default.
fn example_settings() -> String {
    text("board/swandog.conf.example")
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .filter(|l| {
            l.split_once(" = ")
                .is_some_and(|(k, _)| Key::from_name(k).is_some())
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The `key = value` part of each `describe` line (without the origin comment).
fn settings(config: &Config) -> Vec<String> {
    config
        .describe()
        .to_string()
        .lines()
        .map(|l| {
            l.rsplit_once(" # ")
                .map_or(l, |(s, _)| s)
                .trim_end()
                .to_string()
        })
        .collect()
}

fn check_config_text(text: &str) -> bool {
    match Config::parse_file(text, "/etc/swandog.conf") {
        Err(e) => {
            let shown = e.to_string();
            assert!(
                !shown.is_empty() && !shown.contains('\n') && !shown.contains('\r'),
                "error is not one line: {shown:?} for {text:?}"
            );
            if let Some(line) = e.line() {
                assert!(
                    line as usize <= text.lines().count(),
                    "line {line} of a {}-line text: {shown}",
                    text.lines().count()
                );
            }
            false
        }
        Ok(config) => {
            let described = config.describe().to_string();
            let again = Config::parse_file(&described, "described").unwrap_or_else(|e| {
                panic!("describe output of {text:?} does not parse: {e}\n{described}")
            });
            assert_eq!(settings(&config), settings(&again), "for {text:?}");
            true
        }
    }
}

#[test]
fn mutated_config_files_parse_or_fail_with_one_line_and_survive_describe() {
    let example = text("board/swandog.conf.example");
    assert!(check_config_text(&example));
    let bases = [
        example_settings(),
        text("fuzz/seeds/config_file/every-key.conf"),
        text("fuzz/seeds/config_file/doc-example.conf"),
    ];
    for base in &bases {
        assert!(check_config_text(base), "the seed itself parses");
    }
    let mut rng = Rng(0xc0f1_6000_5eed);
    let (mut ok, mut failed) = (0, 0);
    for _ in 0..10_000 {
        let base = bases[rng.below(bases.len())].clone();
        let text = mutate_text(&mut rng, &base);
        if check_config_text(&text) {
            ok += 1;
        } else {
            failed += 1;
        }
    }
    eprintln!("config mutations: {ok} parsed, {failed} refused");
    assert!(ok > 1_000 && failed > 1_000, "{ok} / {failed}");
    assert!(example_settings().lines().count() >= 20);
}

/// Values tried for every key: valid ones, edge ones, wrong ones.
const VALUES: &[&str] = &[
    "",
    "0",
    "1",
    "2",
    "59",
    "60",
    "100",
    "101",
    "1000",
    "60000",
    "86400",
    "99999999",
    "-1",
    "-20",
    "19",
    "20",
    "1e3",
    "0x10",
    " 5",
    "5 ",
    "+5",
    "yes",
    "auto",
    "initiator",
    "responder",
    "report",
    "restart",
    "generic",
    "mt7621",
    "none",
    "syslog",
    "stderr",
    "info",
    "debug",
    "local0",
    "daemon",
    "kern",
    "/proc",
    "/tmp/x",
    "relative",
    "unix:///r/c.vici",
    "unix://relative",
    "con1",
    "con1,con2_1",
    "con1 con1",
    "bad/name",
    "é",
];

#[test]
fn a_value_means_the_same_in_the_file_and_as_a_flag() {
    let mut rng = Rng(0xf1a9_0000_0001);
    let keys = Key::ALL;
    for _ in 0..20_000 {
        let mut file = String::new();
        let mut flags = Config::default();
        let mut flags_ok = true;
        let mut used = Vec::new();
        for _ in 0..=rng.below(3) {
            let key = *rng.pick(&keys);
            if used.contains(&key) {
                continue;
            }
            used.push(key);
            let value = *rng.pick(VALUES);
            file.push_str(&format!("{} = {value}\n", key.name()));
            flags_ok &= flags.set(key.name(), value.trim(), Origin::Flag).is_ok();
        }
        let flags_ok = flags_ok && flags.validate().is_ok();
        let file_result = Config::parse_file(&file, "f");
        assert_eq!(
            file_result.is_ok(),
            flags_ok,
            "file {file:?} vs flags: {:?}",
            file_result.err().map(|e| e.to_string())
        );
        if let Ok(parsed) = file_result {
            assert_eq!(settings(&parsed), settings(&flags), "{file:?}");
        }
    }
}

// ------------------------------------------------------------------------------------ /proc

fn mutate_bytes(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut bytes = base.to_vec();
    for _ in 0..=rng.below(3) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(7) {
            0 => bytes.truncate(at),
            1 if at < bytes.len() => bytes[at] = *rng.pick(b"0123456789 \n\tx-.cpu\0\xff"),
            2 if at < bytes.len() => {
                bytes.remove(at);
            }
            3 => {
                let digits: Vec<u8> = (0..rng.below(25))
                    .map(|_| b'0' + rng.below(10) as u8)
                    .collect();
                bytes.splice(at..at, digits);
            }
            4 => {
                let pieces: [&[u8]; 10] = [
                    b"cpu",
                    b"cpu9 ",
                    b"cpu99999999999999999999 1 2 3 4\n",
                    b"cpu  1 2 3\n",
                    b"some avg10=",
                    b"avg10=100.00 ",
                    b"avg10=1.5x ",
                    b"18446744073709551615 ",
                    b"18446744073709551616 ",
                    b"\n",
                ];
                let piece = pieces[rng.below(pieces.len())];
                bytes.splice(at..at, piece.iter().copied());
            }
            5 => {
                let garbage: Vec<u8> = (0..rng.below(40)).map(|_| rng.next() as u8).collect();
                bytes.splice(at..at, garbage);
            }
            _ => {
                // Delete a whole line.
                let start = bytes[..at.min(bytes.len())]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |i| i + 1);
                let end = bytes[start..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |i| start + i + 1);
                bytes.drain(start..end);
            }
        }
    }
    bytes
}

fn check_stat_pair(before: &[u8], after: &[u8]) {
    let mut sampler = LoadSampler::new();
    let mut read = |at, bytes: &[u8]| {
        let psi = parse_psi_some_avg10_centi(bytes);
        assert!(psi.is_none_or(|p| p <= 10_000), "psi {psi:?}");
        let stat = parse_stat(bytes)?;
        // Only complete lines count: what follows the last newline never changes the result.
        let complete = bytes
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(&[][..], |i| &bytes[..=i]);
        assert_eq!(parse_stat(complete), Some(stat));
        sampler.sample(
            at,
            &Reading {
                stat,
                psi_some_avg10_centi: psi,
            },
        )
    };
    let _ = read(1_000, before);
    if let Some(s) = read(2_000, after) {
        assert!(s.busy_permille <= 1000 && s.busiest_cpu_permille <= 1000);
        assert!(s.softirq_permille <= s.busy_permille, "{s:?}");
        assert_eq!((s.at, s.span_ms), (2_000, 1_000));
    }
}

#[test]
fn mutated_proc_files_never_break_the_load_sampler() {
    let stats = [
        data("tests/data/proc/stat-x86_64-2cpu-t0"),
        data("tests/data/proc/stat-x86_64-2cpu-t1"),
        data("tests/data/proc/stat-linux2.6.9-1cpu"),
        data("tests/data/proc/stat-synthetic-12cpu"),
    ];
    let psis = [
        data("tests/data/proc/pressure-cpu-t0"),
        data("tests/data/proc/pressure-cpu-t1"),
        data("tests/data/proc/pressure-io"),
    ];
    // The recorded pair is a real, growing reading.
    check_stat_pair(&stats[0], &stats[1]);
    assert!(parse_stat(&stats[3]).unwrap().cpus[5].is_none());
    let mut rng = Rng(0x9b0c_57a7_0002);
    let mut parsed = 0;
    for _ in 0..20_000 {
        let base = rng.below(stats.len());
        let before = mutate_bytes(&mut rng, &stats[base]);
        let after = if rng.chance(2) {
            mutate_bytes(&mut rng, &stats[1])
        } else {
            let psi = rng.below(psis.len());
            mutate_bytes(&mut rng, &psis[psi])
        };
        parsed += usize::from(parse_stat(&before).is_some());
        check_stat_pair(&before, &after);
    }
    eprintln!("/proc mutations: {parsed} of 20000 still had a cpu line");
    assert!(parsed > 5_000 && parsed < 19_000, "{parsed}");
}

#[test]
fn generated_stat_and_psi_lines_read_back_exactly() {
    let mut rng = Rng(0x57a7_0000_0003);
    for _ in 0..20_000 {
        let counters = *rng.pick(&[4usize, 7, 8, 10]);
        let cpus = rng.below(12);
        let mut lines = Vec::new();
        let mut text = String::new();
        for label in std::iter::once(None).chain((0..cpus).map(Some)) {
            let values: Vec<u64> = (0..counters)
                .map(|_| match rng.below(4) {
                    0 => rng.next(),
                    1 => rng.next() % 1_000,
                    _ => rng.next() % 100_000_000,
                })
                .collect();
            let name = label.map_or("cpu ".to_string(), |n| format!("cpu{n}"));
            let joined: Vec<String> = values.iter().map(u64::to_string).collect();
            text.push_str(&format!("{name} {}\n", joined.join(" ")));
            lines.push((label, values));
        }
        text.push_str("intr 1 2 3\nctxt 4\n");
        let snapshot = parse_stat(text.as_bytes()).expect("aggregate line present");
        for (label, values) in &lines {
            let times = match label {
                None => snapshot.all,
                Some(n) if *n < snapshot.cpus.len() => snapshot.cpus[*n].expect("cpu line parsed"),
                Some(_) => continue,
            };
            let got = [
                times.user,
                times.nice,
                times.system,
                times.idle,
                times.iowait,
                times.irq,
                times.softirq,
                times.steal,
            ];
            for (i, v) in values.iter().take(8).enumerate() {
                assert_eq!(got[i], *v, "field {i} of {label:?} in {text}");
            }
        }

        let whole = rng.below(150);
        let hundredths = rng.below(100);
        let psi = format!(
            "some avg10={whole}.{hundredths:02} avg60=1.00 avg300=0.50 total={}\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
            rng.next()
        );
        let want = (whole * 100 + hundredths).min(10_000) as u16;
        assert_eq!(
            parse_psi_some_avg10_centi(psi.as_bytes()),
            Some(want),
            "{psi}"
        );
    }
}

// ------------------------------------------------------------------------------------ log lines

fn messages() -> Vec<String> {
    text("tests/data/charon-log/messages.txt")
        .lines()
        .map(str::to_string)
        .collect()
}

/// A `log` event carrying `msg`, as charon sends it, read back through `LogLine::parse`.
fn through_vici(msg: &[u8]) -> LogLine {
    let mut buf = vec![0u8; msg.len() + 256];
    let mut w = Writer::new(&mut buf, PacketType::Event, Some(b"log")).unwrap();
    w.key_value(b"group", b"IKE").unwrap();
    w.key_value(b"level", b"1").unwrap();
    w.key_value(b"ikesa-name", b"con1").unwrap();
    w.key_value(b"msg", msg).unwrap();
    let frame = w.finish().unwrap().to_vec();
    let packet = Packet::parse(&frame[4..]).unwrap();
    LogLine::parse(packet.message).unwrap()
}

#[test]
fn charon_log_lines_classify_the_same_however_they_are_cut_or_padded() {
    let lines = messages();
    let mut classified = 0;
    for line in &lines {
        let signal = classify_log(line);
        classified += usize::from(signal.is_some());
        assert_eq!(classify_log(&format!(" \t{line}  ")), signal, "{line}");
        assert_eq!(
            classify_log(&through_vici(line.as_bytes()).msg),
            signal,
            "{line}"
        );
    }
    assert!(classified >= 40, "only {classified} known lines classified");

    let mut rng = Rng(0x10c5_0000_0004);
    let (mut still, mut not) = (0, 0);
    for _ in 0..30_000 {
        let base = lines[rng.below(lines.len())].as_bytes().to_vec();
        let mutated = mutate_bytes(&mut rng, &base);
        // Any bytes, any cut: classified through the same path as a real event, never a panic.
        let line = through_vici(&mutated);
        let signal = classify_log(&line.msg);
        let _ = signal.map(|s| s.failure_cause());
        assert!(line.msg.len() <= LOG_MSG_MAX_BYTES);
        // Mutated lines too: the same text classifies the same whichever way it came, padded
        // or not.
        if let Ok(text) = std::str::from_utf8(&mutated) {
            if text.len() <= LOG_MSG_MAX_BYTES {
                assert_eq!(line.msg.as_str(), text);
                assert_eq!(classify_log(text), signal, "{text:?}");
            }
            assert_eq!(
                classify_log(&format!(" \t{text}  ")),
                classify_log(text),
                "{text:?}"
            );
        }
        if signal.is_some() {
            still += 1;
        } else {
            not += 1;
        }
        let lossy = String::from_utf8_lossy(&mutated);
        for cut in [0, lossy.len() / 3, lossy.len() / 2] {
            let cut = (0..=cut)
                .rev()
                .find(|&i| lossy.is_char_boundary(i))
                .unwrap_or(0);
            let _ = classify_log(&lossy[..cut]);
        }
    }
    // The mutations kept some lines recognisable and broke others: both paths ran.
    eprintln!("log-line mutations: {still} still classified, {not} not");
    assert!(still > 500 && not > 1_000, "{still} / {not}");
}

#[test]
fn counted_log_lines_read_their_numbers_exactly_or_not_at_all() {
    let mut rng = Rng(0x10c5_0000_0005);
    for _ in 0..30_000 {
        let n: u64 = match rng.below(3) {
            0 => rng.next() % 10,
            1 => rng.next() % u64::from(u32::MAX) + 1,
            _ => rng.next(),
        };
        let id = rng.next() % 100_000;
        let want = u32::try_from(n).ok();
        assert_eq!(
            classify_log(&format!("retransmit {n} of request with message ID {id}")),
            want.map(|attempt| LogSignal::Retransmit { attempt })
        );
        assert_eq!(
            classify_log(&format!(
                "sending retransmit {n} of request message ID {id}, seq 3"
            )),
            want.map(|attempt| LogSignal::Retransmit { attempt })
        );
        assert_eq!(
            classify_log(&format!("giving up after {n} retransmits")),
            want.map(|retransmits| LogSignal::GaveUp { retransmits })
        );
        // A retransmit of a *response* is charon answering, not charon waiting.
        assert_eq!(
            classify_log(&format!(
                "sending retransmit {n} of response message ID {id}, seq 2"
            )),
            None
        );
    }
}
