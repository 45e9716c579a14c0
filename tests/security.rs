//! Checks for the promises in SECURITY.md that no other test file already makes (that file maps
//! each promise to its tests).

#[path = "common/agent.rs"]
mod agent;
mod common;
#[path = "common/fake_vici.rs"]
mod fake_vici;

use std::fs;
use std::path::{Path, PathBuf};

use std::time::Duration;

use agent::{test_dir, Agent};
use fake_vici::{FakeVici, Mode};
use swandog::limits::CHILD_SAS_PER_IKE_MAX;

/// More IKE_SAs than any table of 32 would hold (`swandog run` streams list-sas: no table).
const IKE_SAS_MAX: usize = 32;
use swandog::report::table::json_str;
use swandog::vici::client::{ClientError, Commands, Uri};
use swandog::vici::sa::is_safe_name;
use swandog::vici::sa::IkeSa;
use swandog::vici::wire::{Packet, PacketType, Writer};

fn sources() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = fs::read_to_string(&path).unwrap();
                out.push((path, text));
            }
        }
    }
    let mut out = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
    assert!(out.len() > 20, "found the sources");
    out
}

#[test]
fn the_daemon_never_starts_a_process_or_runs_a_shell_string() {
    const FORBIDDEN: &[&str] = &[
        "process::Command",
        "Command::new",
        "libc::system",
        "libc::exec",
        "execv",
        "posix_spawn",
        "unistd::fork",
        "\"/bin/sh\"",
        "\"sh\"",
    ];
    for (path, text) in sources() {
        for word in FORBIDDEN {
            assert!(
                !text.contains(word),
                "{} contains {word:?}: swandog must not start processes",
                path.display()
            );
        }
    }
}

#[test]
fn every_unsafe_block_says_why_it_is_sound() {
    let mut blocks = 0;
    for (path, text) in sources() {
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.contains("unsafe {") || line.contains("unsafe fn") {
                blocks += 1;
                let before = lines[i.saturating_sub(4)..i].join("\n");
                assert!(
                    before.contains("SAFETY:"),
                    "{}:{}: unsafe without a SAFETY comment",
                    path.display(),
                    i + 1
                );
            }
        }
    }
    assert!(blocks <= 2, "{blocks} unsafe blocks: review SECURITY.md");
}

#[test]
fn names_are_checked_before_initiate_sends_anything() {
    let dir = std::env::temp_dir().join(format!("swandog-sec-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let fake = FakeVici::start(&dir.join("charon.vici"), Mode::Healthy);
    let uri = Uri::parse(&fake.uri()).unwrap();
    let mut commands = Commands::new(&uri);
    let long = "c".repeat(65);
    for (child, ike) in [
        ("con1\nfake: log line", "con1"),
        ("", "con1"),
        (long.as_str(), "con1"),
        ("con 1", "con1"),
        ("tünnel", "con1"),
        ("con1", "con1\0"),
        ("con1", "\u{1b}[2J"),
    ] {
        let result = smol::block_on(commands.initiate(child, Some(ike), 1_000, &mut |_| {}));
        assert!(
            matches!(result, Err(ClientError::UnsafeName(_))),
            "{child:?}/{ike:?}: {result:?}"
        );
        assert!(!result.unwrap_err().breaks_connection());
    }
    assert!(
        fake.commands().is_empty(),
        "nothing reached charon: {:?}",
        fake.commands()
    );
    let ok = smol::block_on(commands.initiate("con2_1", Some("con2"), 1_000, &mut |_| {}));
    assert!(ok.unwrap().success);
    assert_eq!(fake.commands(), ["initiate"]);
    // The config's own, stricter rule (A-Z a-z 0-9 _ . -) is a subset of what may be passed on.
    assert!(is_safe_name("con2_1") && is_safe_name(&"x".repeat(64)));
    drop(fake);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn names_in_the_status_json_are_escaped_whatever_charon_sends() {
    for hostile in [
        "con1\",\"state\":\"up",
        "con1\n{\"written\":0}",
        "back\\slash",
        "\u{1b}[31mred",
        "\u{0}\u{7f}\u{2028}",
    ] {
        let mut out = String::new();
        json_str(&mut out, hostile).unwrap();
        assert!(out.starts_with('"') && out.ends_with('"'), "{out}");
        let inner = &out[1..out.len() - 1];
        // No raw control character JSON forbids (ESC included), every quote inside escaped.
        assert!(!inner.chars().any(|c| (c as u32) < 0x20), "{out:?}");
        let mut escaped = false;
        for c in inner.chars() {
            assert!(escaped || c != '"', "unescaped quote in {out:?}");
            escaped = !escaped && c == '\\';
        }
    }
}

#[test]
fn control_characters_never_reach_the_terminal() {
    let dir = test_dir("sec-term");
    // A socket path with a terminal escape and a bell in it: swandog names it in its lines.
    let uri = format!("unix://{}/\u{1b}]0;owned\u{7}.vici", dir.display());
    // `--log stderr`: the waiting-for-charon line.
    let mut agent = Agent::start(&dir, &uri, &["--quiet-proc"]);
    agent.wait("the waiting line", Duration::from_secs(10), |a| {
        a.log().contains("waiting for charon")
    });
    let log = agent.log();
    assert!(!log.contains(['\u{1b}', '\u{7}']), "{log:?}");
    assert!(
        log.contains("]0;owned"),
        "the rest of the name is kept: {log:?}"
    );
    drop(agent);
    // A one-shot command's error message.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_swandog"))
        .args(["sas", "--vici", &uri])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!err.contains(['\u{1b}', '\u{7}']), "{err:?}");
    assert!(err.contains("?]0;owned?"), "{err:?}");
}

#[test]
fn children_beyond_capacity_are_counted_not_stored() {
    let mut buf = vec![0u8; 8192];
    let mut w = Writer::new(&mut buf, PacketType::Event, Some(b"list-sa")).unwrap();
    w.section_start(b"con9").unwrap();
    w.section_start(b"child-sas").unwrap();
    for i in 0..CHILD_SAS_PER_IKE_MAX + 5 {
        w.section_start(format!("c{i}-{i}").as_bytes()).unwrap();
        w.key_value(b"name", format!("c{i}").as_bytes()).unwrap();
        w.key_value(b"state", b"INSTALLED").unwrap();
        w.section_end().unwrap();
    }
    w.section_end().unwrap();
    w.section_end().unwrap();
    let frame = w.finish().unwrap().to_vec();
    let packet = Packet::parse(&frame[4..]).unwrap();
    let ikes: heapless::Vec<IkeSa, 1> = IkeSa::parse_all(packet.message).unwrap();
    assert_eq!(ikes[0].children.len(), CHILD_SAS_PER_IKE_MAX);
    assert_eq!(ikes[0].children_dropped, 5);
}

/// A quiet recorded /proc, no CPU-budget slowdown, and a `list-sas` every 5 s.
const FAST_POLLS: &[&str] = &[
    "--quiet-proc",
    "--cpu-budget-permille",
    "1000",
    "--poll-interval-s",
    "5",
];

#[test]
fn more_ike_sas_than_any_table_are_streamed_without_overflow_or_loss() {
    let dir = test_dir("sec-table");
    let fake = FakeVici::start(&dir.join("charon.vici"), Mode::Healthy);
    fake.extra_sas(IKE_SAS_MAX + 8);
    let mut agent = Agent::start(&dir, &fake.uri(), FAST_POLLS);
    // list-sas is streamed into the agent one IKE_SA at a time: there is no IKE_SA table to
    // fill, so the first listing and two polls of 42 IKE_SAs lose nothing and count nothing.
    agent.wait("first listing", Duration::from_secs(30), |a| {
        a.children_up()
    });
    let polls = fake.commands().len();
    agent.wait("two more polls", Duration::from_secs(40), |a| {
        fake.commands().len() >= polls + 2 && a.children_up()
    });
    assert_eq!(agent.counter("table_overflows"), 0, "{}", agent.json());
    assert_eq!(agent.counter("command_failures"), 0, "{}", agent.json());
    assert_eq!(
        agent.log_lines_with("beyond capacity"),
        0,
        "{}",
        agent.log()
    );
}

#[test]
fn a_big_installation_is_streamed_or_counted_and_memory_stays_flat() {
    let dir = test_dir("sec-big");
    let fake = FakeVici::start(&dir.join("charon.vici"), Mode::Healthy);
    // 250 IKE_SAs and 250 connections in every listing.
    fake.extra_sas(248);
    fake.extra_conns(248);
    let mut agent = Agent::start(&dir, &fake.uri(), FAST_POLLS);
    agent.wait("first listings", Duration::from_secs(30), |a| {
        a.children_up()
    });
    // Warm up (two more polls), then compare with three polls later.
    let polls = fake.commands().len();
    agent.wait("two more polls", Duration::from_secs(40), |_| {
        fake.commands().len() >= polls + 2
    });
    let (_, dirty_first) = agent.memory_kib();
    let polls = fake.commands().len();
    agent.wait("three more polls", Duration::from_secs(40), |_| {
        fake.commands().len() >= polls + 3
    });
    let (_, dirty_last) = agent.memory_kib();
    eprintln!(
        "250 IKE_SAs per list-sas: Private_Dirty {dirty_first} -> {dirty_last} KiB, {}",
        agent.json()
    );
    assert!(
        dirty_last <= dirty_first + 64,
        "{dirty_first} -> {dirty_last} KiB"
    );
    // list-sas and list-conns both stream into the agent (no table): nothing to overflow.
    assert!(agent.children_up());
    assert_eq!(agent.counter("table_overflows"), 0, "{}", agent.json());
    assert_eq!(
        agent.log_lines_with("beyond capacity"),
        0,
        "{}",
        agent.log()
    );
    assert_eq!(
        agent.log_lines_with("watch list full"),
        0,
        "{}",
        agent.log()
    );
}
