//! Bounded memory, proved: after warm-up, a long replay through the agent, the wire codec and
//! the typed views allocates nothing more. A counting global allocator watches this test's
//! thread; the replay feeds well over 100 000 events and load samples (captured charon frames,
//! frames built with the wire `Writer`, list-sas / list-conns answers, initiate results with
//! their control-log lines, load spikes, over-budget CPU, link losses, reloads, wire faults) into
//! an agent whose tables are full (32 watched children and 3 more that do not fit, 16 DPD
//! records, a full load history), renders the status into one reused `String` and polls. The
//! allocation count and the heap high-water mark after warm-up must equal those before.
//!
//! The heap high-water at full capacity must stay within `BUDGET_HEAP_HIGH_WATER_BYTES`, and what
//! smol's reactor allocates on first use within `BUDGET_SMOL_REACTOR_HEAP_BYTES` (`limits.rs`,
//! where the measured figures are). Run with `-- --nocapture` to see them, `size_of::<Agent>()`
//! and the longest status text.
//!
//! Not covered here: the shell's own allocations beyond the buffers listed below, i.e. what
//! `run.rs` and the VICI client allocate besides them (their `Async` wrappers, the logger, the
//! config parse on its short-lived thread, std's own), because the shell is not run in this
//! process. Those are bounded by the whole-process budget instead: `cross/budget.sh` runs the
//! shipped static binary against the lab and fails over `BUDGET_ANON_KIB` of anonymous memory.

mod sim;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering::Relaxed};

use swandog::agent::{Agent, Millis, Settings};
use swandog::agent::{CommandError, CommandErrorKind};
use swandog::limits::{
    BUDGET_HEAP_HIGH_WATER_BYTES, BUDGET_SMOL_REACTOR_HEAP_BYTES, PROC_READ_BUFFER_BYTES,
    STATUS_FILE_MAX_BYTES, STATUS_WRITE_CHUNK_BYTES, VICI_RECV_BUFFER_BYTES,
    VICI_REQUEST_BUFFER_BYTES, WATCHED_CHILDREN_MAX,
};
use swandog::report::metrics::{render_metrics, ShellFigures};
use swandog::report::render::{render_status, summary};
use swandog::report::status::SnapshotFile;
use swandog::sample::load::ReadError;
use swandog::vici::client::ClientError;
use swandog::vici::sa::{Conn, IkeSa, Name, ViewError};
use swandog::vici::wire::{split_frame, Packet, PacketType};

use sim::{captured, Charon, Down, Seen, Sim};

struct Counting;

thread_local! {
    // Const-initialised and without a destructor: reading it never allocates.
    static TRACKED: Cell<bool> = const { Cell::new(false) };
}

static LIVE: AtomicIsize = AtomicIsize::new(0);
static HIGH: AtomicIsize = AtomicIsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

fn tracked() -> bool {
    TRACKED.try_with(Cell::get).unwrap_or(false)
}

fn grew(bytes: isize) {
    ALLOCATIONS.fetch_add(1, Relaxed);
    let live = LIVE.fetch_add(bytes, Relaxed) + bytes;
    HIGH.fetch_max(live, Relaxed);
}

// SAFETY: every call is passed to `System` unchanged; the counters are plain atomics and the
// thread-local flag is const-initialised, so counting never allocates or recurses.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() && tracked() {
            grew(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() && tracked() {
            grew(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if tracked() {
            LIVE.fetch_sub(layout.size() as isize, Relaxed);
        }
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() && tracked() {
            grew(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Heap {
    live: isize,
    high: isize,
    allocations: usize,
}

fn heap() -> Heap {
    Heap {
        live: LIVE.load(Relaxed),
        high: HIGH.load(Relaxed),
        allocations: ALLOCATIONS.load(Relaxed),
    }
}

/// What the replay saw; plain counters, so observing allocates nothing.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    inputs: u64,
    samples: u64,
    lines: u64,
    table_full_lines: u64,
    dpd_lines: u64,
    summaries: u64,
    statuses: u64,
    status_max_len: usize,
    initiates: u64,
    list_sas: u64,
}

impl Tally {
    fn obs(&mut self) -> impl FnMut(Millis, Seen<'_>) + '_ {
        |_, seen| match seen {
            Seen::Log(_, line) => {
                self.lines += 1;
                self.table_full_lines +=
                    u64::from(line.contains("table full") || line.contains("watch list full"));
                self.dpd_lines += u64::from(line.contains("DPD failure"));
                self.summaries += u64::from(line.starts_with("DPD failures:"));
            }
            Seen::Job(job) => {
                self.initiates += u64::from(matches!(job, swandog::agent::Job::Initiate { .. }));
                self.list_sas += u64::from(*job == swandog::agent::Job::ListSas);
            }
            Seen::Status(text) => {
                self.statuses += 1;
                self.status_max_len = self.status_max_len.max(text.len());
            }
            Seen::Sample(_) => {
                self.samples += 1;
                self.inputs += 1;
            }
        }
    }
}

/// Captured frames, split by what they are.
struct Captured {
    events: Vec<Vec<u8>>,
    list_sa: Vec<Vec<u8>>,
    list_conn: Vec<Vec<u8>>,
}

fn captured_frames() -> Captured {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/vici");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".bin"))
        .collect();
    names.sort();
    let mut c = Captured {
        events: Vec::new(),
        list_sa: Vec::new(),
        list_conn: Vec::new(),
    };
    for n in names {
        let bytes = captured(&n);
        let (payload, _) = split_frame(&bytes).unwrap().unwrap();
        let packet = Packet::parse(payload).unwrap();
        if packet.kind != PacketType::Event {
            continue;
        }
        match packet.name.unwrap_or_default() {
            b"ike-updown" | b"child-updown" | b"log" | b"control-log" => c.events.push(bytes),
            b"list-sa" => c.list_sa.push(bytes),
            b"list-conn" => c.list_conn.push(bytes),
            _ => {}
        }
    }
    assert!(c.events.len() >= 20 && !c.list_sa.is_empty() && !c.list_conn.is_empty());
    c
}

/// The lab's connections plus eight more of eight route-based children each: 67 children to
/// watch, 3 more than `WATCHED_CHILDREN_MAX`.
fn full_charon() -> Charon {
    let mut c = Charon::lab();
    for k in 0..8u32 {
        let conn = format!("site{k}");
        let kids: Vec<(String, u32)> = (0..8u32)
            .map(|j| (format!("site{k}_{j}"), 100 + k * 8 + j))
            .collect();
        let kids: Vec<(&str, u32)> = kids.iter().map(|(n, i)| (n.as_str(), *i)).collect();
        c.add_conn(&conn, &kids);
    }
    c
}

fn full_settings() -> Settings {
    let mut s = Settings {
        summary_interval_ms: 900_000,
        ..Settings::default()
    };
    let mut names = vec!["con1".to_string(), "con2".to_string()];
    names.extend((0..8).map(|k| format!("site{k}")));
    for n in names {
        s.watch.push(Name::try_from(n.as_str()).unwrap()).unwrap();
    }
    s
}

const CYCLE_S: u64 = 1_200;

/// Children the replay drops in turn (the last three are the ones that do not fit).
fn child_names() -> Vec<Name> {
    let mut v: Vec<Name> = ["con1", "con2_1", "con2_2"]
        .iter()
        .map(|n| Name::try_from(*n).unwrap())
        .collect();
    for k in 0..8 {
        for j in 0..4 {
            v.push(Name::try_from(format!("site{k}_{j}").as_str()).unwrap());
        }
    }
    v
}

fn conn_names() -> Vec<Name> {
    let mut v: Vec<Name> = vec![
        Name::try_from("con1").unwrap(),
        Name::try_from("con2").unwrap(),
    ];
    v.extend((0..8).map(|k| Name::try_from(format!("site{k}").as_str()).unwrap()));
    v
}

const LOG_LINES: [&str; 6] = [
    "sending DPD request",
    "retransmit 1 of request with message ID 2",
    "received NO_PROPOSAL_CHOSEN notify, no CHILD_SA built",
    "establishing IKE_SA failed, peer not responding",
    "received AUTHENTICATION_FAILED notify error",
    "received TS_UNACCEPTABLE notify, no CHILD_SA built",
];

/// One simulated second of box and tunnel life at second `s` (all times derive from `s`, so
/// the warm-up cycles and the measured ones do the same things).
fn second(
    sim: &mut Sim,
    s: u64,
    frames: &Captured,
    children: &[Name],
    conns: &[Name],
    settings: &Settings,
    t: &mut Tally,
) {
    let c = s % CYCLE_S;
    let mut obs = t.obs();
    sim.run_until(s * 1000, &mut obs);
    // Load: quiet, a five-minute spike, quiet; swandog itself over its CPU budget for a while.
    sim.busy_permille = match c {
        300..=599 => 970,
        _ => 150 + (s % 7) as u16 * 40,
    };
    sim.cpu_per_wake_us = if (900..1000).contains(&c) { 20_000 } else { 40 };
    // The peer is unreachable for a while: initiates fail and back off.
    sim.charon.unreachable = (400..520).contains(&c);

    // A charon log line every second, about a rotating connection.
    let conn = &conns[(s % conns.len() as u64) as usize];
    let e = sim.charon.log(b"log", conn, LOG_LINES[(s % 6) as usize]);
    sim.event(&e, &mut obs);
    drop(obs);
    t.inputs += 1;
    let mut obs = t.obs();

    // A captured event frame every 3 s (they name con1 / con2 with stale ids: harmless).
    if s % 3 == 0 {
        let f = &frames.events[((s / 3) % frames.events.len() as u64) as usize];
        let e = sim.charon.replay(f);
        sim.event(&e, &mut obs);
        drop(obs);
        t.inputs += 1;
        obs = t.obs();
    }
    // A watched child drops every 7 s (peer or local delete).
    if s % 7 == 0 {
        let child = &children[((s / 7) % children.len() as u64) as usize];
        if sim.charon.is_up(child) {
            let how = if s % 2 == 0 {
                Down::PeerDelete
            } else {
                Down::Local
            };
            let e = sim.charon.child_updown(child, false, how);
            sim.event(&e, &mut obs);
            drop(obs);
            t.inputs += 1;
            obs = t.obs();
        }
    }
    // A DPD failure every 45 s: request, retransmits, give-up, then the IKE_SA goes down.
    if s % 45 == 0 {
        let conn = &conns[((s / 45) % conns.len() as u64) as usize];
        for msg in [
            "sending DPD request",
            "retransmit 1 of request with message ID 9",
            "retransmit 2 of request with message ID 9",
            "giving up after 2 retransmits",
        ] {
            let e = sim.charon.log(b"log", conn, msg);
            sim.event(&e, &mut obs);
            drop(obs);
            t.inputs += 1;
            obs = t.obs();
        }
        let e = sim.charon.ike_updown(conn, false, Down::Dpd);
        sim.event(&e, &mut obs);
        drop(obs);
        t.inputs += 1;
        obs = t.obs();
    }
    drop(obs);
    // Captured list-sa / list-conn frames through the views every minute.
    if s % 60 == 0 {
        for f in &frames.list_sa {
            let (payload, _) = split_frame(f).unwrap().unwrap();
            let ikes: heapless::Vec<IkeSa, 1> =
                IkeSa::parse_all(Packet::parse(payload).unwrap().message).unwrap();
            assert_eq!(ikes.len(), 1);
            t.inputs += 1;
        }
        for f in &frames.list_conn {
            let (payload, _) = split_frame(f).unwrap().unwrap();
            let conn = Conn::parse(Packet::parse(payload).unwrap().message).unwrap();
            assert!(conn.is_some());
            t.inputs += 1;
        }
    }
    let now = sim.now;
    // Shell-side inputs: faults, failed polls, SIGUSR1, SIGHUP, a lost VICI link.
    if s % 97 == 0 {
        sim.agent
            .on_wire_fault(now, &malformed(ClientError::View(ViewError::NameTooLong)));
        sim.agent.on_wire_fault(
            now,
            &malformed(ClientError::Oversized(VICI_RECV_BUFFER_BYTES + 1)),
        );
        sim.fail_list_sas();
        sim.agent.on_sample_error(now, &ReadError::StatMalformed);
        t.inputs += 4;
    }
    if s % 300 == 0 {
        summary(&sim.agent.status(now), &mut |_, line| {
            assert!(!line.is_empty());
        });
    }
    if s % 600 == 0 {
        sim.agent.reload(now, settings.clone());
        t.inputs += 1;
    }
    if c == 1_100 {
        sim.agent.on_vici_link(now, false, false);
        sim.agent.on_vici_link(now + 1, true, false);
        t.inputs += 2;
    }
}

/// A wire fault as the shell hands it to the agent (run.rs maps every client error so).
fn malformed(e: ClientError) -> CommandError {
    CommandError::new(CommandErrorKind::Malformed, e)
}

#[test]
fn a_long_replay_allocates_nothing_after_warm_up() {
    let frames = captured_frames();
    let children = child_names();
    let conns = conn_names();
    let settings = full_settings();
    let mut tally = Tally::default();

    // The test's own copy of each status text (the shell streams it to its file through a
    // STATUS_WRITE_CHUNK_BYTES stack buffer instead): not part of swandog's heap.
    let status = String::with_capacity(STATUS_FILE_MAX_BYTES);
    // The metrics file, written as `run.rs` writes it: streamed through the status file's
    // STATUS_WRITE_CHUNK_BYTES stack buffer into a temporary file, renamed over the target.
    let metrics_dir = std::env::temp_dir().join(format!("swandog-zg-{}", std::process::id()));
    std::fs::create_dir_all(&metrics_dir).unwrap();
    let metrics_file = SnapshotFile::new(&metrics_dir.join("swandog.prom"));
    let mut metrics_writes = 0u64;
    let mut write_metrics = |sim: &Sim, s: u64| {
        // Every METRICS_MIN_GAP_MS (5 s), as often as the shell may.
        if s % 5 == 0 {
            let figures = ShellFigures {
                cpu_us: s * 1_000,
                syslog_dropped: 0,
            };
            metrics_file
                .write(|out| render_metrics(&sim.agent.status(sim.now), &figures, out))
                .unwrap();
            metrics_writes += 1;
        }
    };
    // Everything from here on is counted: the agent and the buffers `run.rs` holds for the whole
    // run (the simulated charon's receive buffer stands for the event connection's, its
    // list-conns table for the worker's).
    TRACKED.with(|t| t.set(true));
    let charon = full_charon();
    let mut sim = Sim::new(settings.clone(), charon, status, &mut tally.obs());
    let command_recv = vec![0u8; VICI_RECV_BUFFER_BYTES].into_boxed_slice();
    let request = vec![0u8; VICI_REQUEST_BUFFER_BYTES].into_boxed_slice();
    let proc_buf = Box::new([0u8; PROC_READ_BUFFER_BYTES]);

    // Warm-up: two full cycles fill every table (history, DPD records, recent causes, watched
    // children, the status text's longest form).
    let warm_up_s = 2 * CYCLE_S;
    for s in 1..=warm_up_s {
        second(
            &mut sim, s, &frames, &children, &conns, &settings, &mut tally,
        );
        write_metrics(&sim, s);
    }
    let warm = heap();
    let warm_tally = tally;

    // The replay: at least 100 000 events and samples.
    let mut s = warm_up_s;
    while tally.inputs - warm_tally.inputs < 100_000 {
        s += 1;
        second(
            &mut sim, s, &frames, &children, &conns, &settings, &mut tally,
        );
        write_metrics(&sim, s);
    }
    let after = heap();
    TRACKED.with(|t| t.set(false));
    let metrics_text = std::fs::read_to_string(metrics_file.path()).unwrap();
    std::fs::remove_dir_all(&metrics_dir).unwrap();
    eprintln!(
        "metrics file: {metrics_writes} writes, the last {} B in {} lines",
        metrics_text.len(),
        metrics_text.lines().count()
    );
    drop((command_recv, request, proc_buf));

    let replayed = tally.inputs - warm_tally.inputs;
    let hours = (s - warm_up_s) / 3600;
    eprintln!(
        "zero growth: {replayed} events and samples over {hours} simulated hours after warm-up \
         ({} samples, {} lines, {} DPD verdict lines, {} summaries, {} status writes, {} list-sas, {} initiates)",
        tally.samples - warm_tally.samples,
        tally.lines - warm_tally.lines,
        tally.dpd_lines - warm_tally.dpd_lines,
        tally.summaries - warm_tally.summaries,
        tally.statuses - warm_tally.statuses,
        tally.list_sas - warm_tally.list_sas,
        tally.initiates - warm_tally.initiates,
    );
    eprintln!(
        "allocations: {} at warm-up end, {} after the replay; heap live {} B -> {} B; high-water {} B -> {} B",
        warm.allocations, after.allocations, warm.live, after.live, warm.high, after.high
    );
    eprintln!(
        "heap at full capacity ({WATCHED_CHILDREN_MAX} watched children, tables full): high-water {} B = {:.1} KiB (budget {} B, limits.rs)",
        after.high,
        after.high as f64 / 1024.0,
        BUDGET_HEAP_HIGH_WATER_BYTES
    );
    eprintln!(
        "  of which: Agent {} B (list-sas and list-conns are streamed, one Conn part of {} B at a \
         time; VICI calls wait inside the agent), 2 VICI receive buffers {} B, request {} B, \
         /proc buffer {} B (smol's reactor: below)",
        std::mem::size_of::<Agent>(),
        std::mem::size_of::<Conn>(),
        2 * VICI_RECV_BUFFER_BYTES,
        VICI_REQUEST_BUFFER_BYTES,
        PROC_READ_BUFFER_BYTES,
    );
    eprintln!(
        "size_of::<Agent>() = {} B; size_of::<IkeSa>() = {} B; longest status text {} B (streamed in {} B chunks; readers take up to {} B)",
        std::mem::size_of::<Agent>(),
        std::mem::size_of::<IkeSa>(),
        tally.status_max_len,
        STATUS_WRITE_CHUNK_BYTES,
        STATUS_FILE_MAX_BYTES
    );

    // For the record, what smol's reactor allocates on its first use (one `Async` socket and a
    // timer, as `run.rs` has): not swandog's to shrink, but on the same heap.
    let before = heap();
    TRACKED.with(|t| t.set(true));
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let a = smol::Async::new(a).unwrap();
    smol::future::block_on(smol::Timer::after(std::time::Duration::from_millis(1)));
    TRACKED.with(|t| t.set(false));
    let smol_bytes = heap().live - before.live;
    drop(a);
    eprintln!(
        "smol's reactor on first use (timer-op queue, epoll event buffer, source slab, helper thread handle): {smol_bytes} B = {:.1} KiB (budget {BUDGET_SMOL_REACTOR_HEAP_BYTES} B)",
        smol_bytes as f64 / 1024.0
    );

    // The budgets (limits.rs): what the README promises, asserted, not only printed.
    assert!(
        usize::try_from(after.high).is_ok_and(|h| h <= BUDGET_HEAP_HIGH_WATER_BYTES),
        "heap high-water {} B over BUDGET_HEAP_HIGH_WATER_BYTES {BUDGET_HEAP_HIGH_WATER_BYTES} B",
        after.high
    );
    assert!(
        usize::try_from(smol_bytes).is_ok_and(|b| b <= BUDGET_SMOL_REACTOR_HEAP_BYTES),
        "smol's reactor took {smol_bytes} B, over BUDGET_SMOL_REACTOR_HEAP_BYTES {BUDGET_SMOL_REACTOR_HEAP_BYTES} B"
    );

    // The replay really exercised the bounded paths.
    assert!(replayed >= 100_000, "{replayed}");
    assert!(tally.dpd_lines - warm_tally.dpd_lines > 100);
    assert!(tally.initiates - warm_tally.initiates > 1000);
    assert!(tally.summaries - warm_tally.summaries > 10);
    assert!(
        tally.table_full_lines > 0,
        "67 children for 64 places: a logged, counted event"
    );
    let mut status = String::new();
    render_status(&sim.agent.status(sim.now), 1_800_000_000, &mut status);
    assert!(
        status.contains("\"table_overflows\":") && !status.contains("\"table_overflows\":0,"),
        "{status}"
    );
    assert_eq!(
        status.matches("\"name\":").count(),
        WATCHED_CHILDREN_MAX,
        "the watch table is full"
    );

    // The metrics file saw the full tables too: every watched child, DPD counts with both
    // verdicts, the overflowing children counted as drops.
    assert!(metrics_writes > 1000, "{metrics_writes}");
    assert_eq!(
        metrics_text.matches("swandog_child_up{").count(),
        WATCHED_CHILDREN_MAX
    );
    assert!(metrics_text.contains("verdict=\"load-correlated\"} "));
    assert!(!metrics_text.contains("swandog_dropped_total{what=\"table-overflow\"} 0\n"));

    // Nothing allocated after warm-up, and the high-water mark stayed put.
    assert_eq!(
        after.allocations, warm.allocations,
        "allocations after warm-up"
    );
    assert_eq!(after.high, warm.high, "heap high-water after warm-up");
    assert_eq!(after.live, warm.live, "live heap after warm-up");
    // `swandog status` reads the whole snapshot.
    assert!(
        tally.status_max_len <= STATUS_FILE_MAX_BYTES,
        "status text {} B > STATUS_FILE_MAX_BYTES {}",
        tally.status_max_len,
        STATUS_FILE_MAX_BYTES
    );
}
