//! CPU load from `/proc/stat` jiffy deltas and `/proc/pressure/cpu`, in integer units.
//!
//! The parsers take bytes, so tests feed recorded `/proc` files; only [`ProcFiles::read`] (and
//! its shorthand [`read_sample`]) touches the file system. Busy time is
//! `user + nice + system + irq + softirq + steal` over all time (`iowait` counts as idle; `guest`
//! is already inside `user`). Softirq gets its own figure because packet and crypto work on
//! router chips lands there.
//!
//! ```
//! use swandog::sample::load::{parse_stat, LoadSampler, Reading};
//!
//! let before = parse_stat(b"cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 100 0 100 800 0 0 0 0 0 0\n");
//! let after = parse_stat(b"cpu  190 0 150 810 0 0 50 0 0 0\ncpu0 190 0 150 810 0 0 50 0 0 0\n");
//! let mut sampler = LoadSampler::new();
//! let first = Reading { stat: before.unwrap(), psi_some_avg10_centi: None };
//! assert!(sampler.sample(0, &first).is_none()); // the first reading is only a baseline
//! let second = Reading { stat: after.unwrap(), psi_some_avg10_centi: Some(6200) };
//! let s = sampler.sample(1000, &second).unwrap();
//! assert_eq!((s.busy_permille, s.softirq_permille, s.span_ms), (950, 250, 1000));
//! ```

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::agent::Millis;
use crate::limits::{LOAD_CPUS_MAX, PROC_READ_BUFFER_BYTES};

/// Jiffy counters of one `cpu` line of `/proc/stat` (fields a kernel does not print are 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// Normal processes in user mode (includes `guest`).
    pub user: u64,
    /// Niced processes in user mode (includes `guest_nice`).
    pub nice: u64,
    /// Kernel mode.
    pub system: u64,
    /// Idle.
    pub idle: u64,
    /// Idle while I/O was outstanding (counted as idle; it can even run backwards).
    pub iowait: u64,
    /// Hard interrupts.
    pub irq: u64,
    /// Soft interrupts: packet processing and much of the crypto on routers.
    pub softirq: u64,
    /// Stolen by a hypervisor.
    pub steal: u64,
}

impl CpuTimes {
    /// Time spent doing work.
    pub fn busy(&self) -> u64 {
        [
            self.user,
            self.nice,
            self.system,
            self.irq,
            self.softirq,
            self.steal,
        ]
        .iter()
        .fold(0, |a, &b| a.saturating_add(b))
    }

    /// All time (busy + idle + iowait).
    pub fn total(&self) -> u64 {
        self.busy()
            .saturating_add(self.idle)
            .saturating_add(self.iowait)
    }

    /// Per-field growth since `earlier`; a field that went backwards (iowait does) grows by 0.
    fn since(&self, earlier: &CpuTimes) -> CpuTimes {
        CpuTimes {
            user: self.user.saturating_sub(earlier.user),
            nice: self.nice.saturating_sub(earlier.nice),
            system: self.system.saturating_sub(earlier.system),
            idle: self.idle.saturating_sub(earlier.idle),
            iowait: self.iowait.saturating_sub(earlier.iowait),
            irq: self.irq.saturating_sub(earlier.irq),
            softirq: self.softirq.saturating_sub(earlier.softirq),
            steal: self.steal.saturating_sub(earlier.steal),
        }
    }
}

/// The `cpu` lines of one `/proc/stat` reading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatSnapshot {
    /// The aggregate `cpu` line (every CPU, also those beyond [`LOAD_CPUS_MAX`]).
    pub all: CpuTimes,
    /// `cpu0` … `cpu{LOAD_CPUS_MAX - 1}`; `None` for CPUs absent (offline) in this reading.
    pub cpus: [Option<CpuTimes>; LOAD_CPUS_MAX],
}

/// Parses `/proc/stat`; `None` when it has no aggregate `cpu` line.
///
/// Only complete lines count: a last line without its newline was cut by the read buffer.
/// Lines with fewer than 4 counters or with non-numbers are skipped.
pub fn parse_stat(bytes: &[u8]) -> Option<StatSnapshot> {
    let mut snapshot = StatSnapshot::default();
    let mut have_all = false;
    for line in complete_lines(bytes) {
        let mut fields = line.split(|&b| b == b' ').filter(|f| !f.is_empty());
        let Some(label) = fields.next() else { continue };
        let Some(cpu) = label.strip_prefix(b"cpu") else {
            continue;
        };
        let Some(times) = parse_cpu_times(fields) else {
            continue;
        };
        if cpu.is_empty() {
            snapshot.all = times;
            have_all = true;
        } else if let Some(slot) = parse_u64(cpu)
            .and_then(|n| usize::try_from(n).ok())
            .and_then(|n| snapshot.cpus.get_mut(n))
        {
            *slot = Some(times);
        }
    }
    have_all.then_some(snapshot)
}

fn parse_cpu_times<'a>(fields: impl Iterator<Item = &'a [u8]>) -> Option<CpuTimes> {
    let mut v = [0u64; 8];
    let mut count = 0;
    for (slot, field) in v.iter_mut().zip(fields) {
        *slot = parse_u64(field)?;
        count += 1;
    }
    // Linux 2.4 printed 4 counters, 2.6.0 seven, 2.6.11 eight; later ones are guests.
    (count >= 4).then_some(CpuTimes {
        user: v[0],
        nice: v[1],
        system: v[2],
        idle: v[3],
        iowait: v[4],
        irq: v[5],
        softirq: v[6],
        steal: v[7],
    })
}

/// Parses `/proc/pressure/cpu`: the `some` line's `avg10` as centi-percent (`1.53` → 153),
/// without floats. `None` when absent or malformed.
pub fn parse_psi_some_avg10_centi(bytes: &[u8]) -> Option<u16> {
    let line = complete_lines(bytes).find(|l| l.starts_with(b"some "))?;
    let value = line
        .split(|&b| b == b' ')
        .find_map(|f| f.strip_prefix(b"avg10="))?;
    let (whole, frac) = match value.iter().position(|&b| b == b'.') {
        Some(dot) => (&value[..dot], &value[dot + 1..]),
        None => (value, &b""[..]),
    };
    if !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut centi = parse_u64(whole)?.saturating_mul(100);
    let tenths = frac.first().map_or(0, |d| u64::from(d - b'0'));
    let hundredths = frac.get(1).map_or(0, |d| u64::from(d - b'0'));
    centi = centi.saturating_add(tenths * 10 + hundredths);
    Some(centi.min(10_000) as u16)
}

/// Lines that end in `\n` (a last, unterminated line was cut short by the reader).
fn complete_lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    bytes[..end]
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
}

fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        if d.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        } else {
            None
        }
    })
}

/// One reading of the `/proc` files, before it is turned into a [`LoadSample`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reading {
    /// The `cpu` lines of `/proc/stat`.
    pub stat: StatSnapshot,
    /// `/proc/pressure/cpu` `some avg10` in centi-percent, when the kernel has PSI.
    pub psi_some_avg10_centi: Option<u16>,
}

/// The load over one sampling interval `(at - span_ms, at]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadSample {
    /// When the interval ended.
    pub at: Millis,
    /// How long the interval was (the previous reading's `at` to this one).
    pub span_ms: u32,
    /// Share of all CPUs' time spent busy, 0–1000.
    pub busy_permille: u16,
    /// The busiest single CPU (among the first [`LOAD_CPUS_MAX`]), 0–1000.
    pub busiest_cpu_permille: u16,
    /// Share of all CPUs' time spent in softirq, 0–1000.
    pub softirq_permille: u16,
    /// CPU pressure (`some avg10`) at the end of the interval, 0–10000, when the kernel has PSI.
    pub psi_some_avg10_centi: Option<u16>,
}

/// Turns successive [`Reading`]s into [`LoadSample`]s by keeping the previous one.
#[derive(Debug, Clone, Default)]
pub struct LoadSampler {
    previous: Option<(Millis, StatSnapshot)>,
}

impl LoadSampler {
    /// A sampler with no baseline yet.
    pub const fn new() -> Self {
        LoadSampler { previous: None }
    }

    /// The load since the previous reading; `None` for the first reading, when no time passed
    /// (no jiffies or no milliseconds), or when the counters went backwards (a reset): then this
    /// reading becomes the new baseline.
    pub fn sample(&mut self, at: Millis, reading: &Reading) -> Option<LoadSample> {
        let (prev_at, prev) = self.previous.replace((at, reading.stat))?;
        let now = &reading.stat;
        if now.all.total() < prev.all.total() || now.all.busy() < prev.all.busy() {
            return None;
        }
        let delta = now.all.since(&prev.all);
        let total = delta.total();
        let span_ms = at.checked_sub(prev_at).filter(|&d| d > 0)?;
        if total == 0 {
            return None;
        }
        let busiest_cpu_permille = now
            .cpus
            .iter()
            .zip(prev.cpus.iter())
            .filter_map(|(n, p)| match (n, p) {
                (Some(n), Some(p)) if n.total() >= p.total() => {
                    let d = n.since(p);
                    Some(permille(d.busy(), d.total()))
                }
                _ => None,
            })
            .max()
            .unwrap_or(0);
        Some(LoadSample {
            at,
            span_ms: u32::try_from(span_ms).unwrap_or(u32::MAX),
            busy_permille: permille(delta.busy(), total),
            busiest_cpu_permille,
            softirq_permille: permille(delta.softirq, total),
            psi_some_avg10_centi: reading.psi_some_avg10_centi,
        })
    }
}

/// `part / whole` in thousandths, 0 for an empty whole, at most 1000.
fn permille(part: u64, whole: u64) -> u16 {
    if whole == 0 {
        return 0;
    }
    // u64 in practice (a second of jiffies); u128 only for absurd counters.
    let value = match part.checked_mul(1000) {
        Some(scaled) => u128::from(scaled / whole),
        None => u128::from(part) * 1000 / u128::from(whole),
    };
    value.min(1000) as u16
}

/// Why a reading failed. A missing `/proc/pressure/cpu` is not an error (old kernel: no PSI).
#[derive(Debug)]
pub enum ReadError {
    /// `<proc_root>/stat` could not be read.
    StatUnreadable(io::Error),
    /// `<proc_root>/stat` has no aggregate `cpu` line.
    StatMalformed,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::StatUnreadable(e) => write!(f, "cannot read <proc-root>/stat: {e}"),
            ReadError::StatMalformed => f.write_str("<proc-root>/stat has no `cpu` line"),
        }
    }
}

impl std::error::Error for ReadError {}

/// The two files a reading comes from, resolved once (`/proc`, or a fake tree in tests).
#[derive(Debug, Clone)]
pub struct ProcFiles {
    stat: PathBuf,
    pressure: PathBuf,
}

impl ProcFiles {
    /// `<proc_root>/stat` and `<proc_root>/pressure/cpu`.
    pub fn new(proc_root: &Path) -> Self {
        ProcFiles {
            stat: proc_root.join("stat"),
            pressure: proc_root.join("pressure/cpu"),
        }
    }

    /// Reads and parses both files through the caller's buffer (reused for each file).
    /// Bytes beyond the buffer are not read; the `cpu` lines come first in `/proc/stat`.
    pub fn read<const N: usize>(&self, buf: &mut [u8; N]) -> Result<Reading, ReadError> {
        let len = read_into(&self.stat, buf).map_err(ReadError::StatUnreadable)?;
        let stat = parse_stat(&buf[..len]).ok_or(ReadError::StatMalformed)?;
        let psi_some_avg10_centi = read_into(&self.pressure, buf)
            .ok()
            .and_then(|len| parse_psi_some_avg10_centi(&buf[..len]));
        Ok(Reading {
            stat,
            psi_some_avg10_centi,
        })
    }
}

/// Reads `<proc_root>/stat` and `<proc_root>/pressure/cpu` once (see [`ProcFiles::read`]).
pub fn read_sample(
    proc_root: &Path,
    buf: &mut [u8; PROC_READ_BUFFER_BYTES],
) -> Result<Reading, ReadError> {
    ProcFiles::new(proc_root).read(buf)
}

/// Fills `buf` from the start of `path` until end of file or a full buffer.
fn read_into(path: &Path, buf: &mut [u8]) -> io::Result<usize> {
    let mut file = File::open(path)?;
    let mut len = 0;
    while len < buf.len() {
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded on a 2-core x86 VM (Linux 6.1): 10 counters per line, then the rest of the file.
    const STAT_MODERN_T0: &[u8] = b"cpu  51952 0 14156 39630 546 0 241 903 0 0
cpu0 24382 0 6672 22043 106 0 35 451 0 0
cpu1 27570 0 7483 17587 439 0 205 452 0 0
intr 470236 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 1 9 0 0 0 0 107 69 0 21
ctxt 797528
btime 1747000000
processes 4201
procs_running 3
procs_blocked 0
softirq 190356 0 50121 3 9410 0 0 1203 70512 0 59107
";

    /// The same box one second (100 jiffies per CPU) later: cpu1 pegged, cpu0 half busy.
    const STAT_MODERN_T1: &[u8] = b"cpu  52092 0 14186 39680 546 0 261 903 0 0
cpu0 24412 0 6682 22093 106 0 45 451 0 0
cpu1 27680 0 7503 17587 439 0 215 452 0 0
intr 470936 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 1 9 0 0 0 0 107 69 0 21
ctxt 798528
";

    /// A Linux 2.6.9 router: 7 counters (no steal, no guests).
    const STAT_OLD_T0: &[u8] = b"cpu  2255 34 2290 22625563 6290 127 456
cpu0 2255 34 2290 22625563 6290 127 456
intr 114930548 113199788 3 0 5 263 0 4
ctxt 1990473
";
    const STAT_OLD_T1: &[u8] = b"cpu  2275 34 2300 22625613 6290 127 476
cpu0 2275 34 2300 22625613 6290 127 476
";

    const PSI: &[u8] = b"some avg10=61.89 avg60=10.08 avg300=24.69 total=168572419
full avg10=0.00 avg60=0.00 avg300=0.00 total=0
";

    fn reading(stat: &[u8], psi: Option<u16>) -> Reading {
        Reading {
            stat: parse_stat(stat).unwrap(),
            psi_some_avg10_centi: psi,
        }
    }

    #[test]
    fn modern_stat_line_yields_all_eight_counters() {
        let s = parse_stat(STAT_MODERN_T0).unwrap();
        assert_eq!(
            s.all,
            CpuTimes {
                user: 51952,
                nice: 0,
                system: 14156,
                idle: 39630,
                iowait: 546,
                irq: 0,
                softirq: 241,
                steal: 903,
            }
        );
        assert_eq!(s.cpus[1].unwrap().user, 27570);
        assert!(s.cpus[2].is_none());
    }

    #[test]
    fn old_seven_counter_line_has_zero_steal() {
        let s = parse_stat(STAT_OLD_T0).unwrap();
        assert_eq!(s.all.softirq, 456);
        assert_eq!(s.all.steal, 0);
        assert_eq!(s.cpus[0], Some(s.all));
    }

    #[test]
    fn busy_share_counts_softirq_and_steal_but_not_iowait() {
        let mut sampler = LoadSampler::new();
        assert_eq!(sampler.sample(0, &reading(STAT_MODERN_T0, None)), None);
        let s = sampler
            .sample(1000, &reading(STAT_MODERN_T1, Some(6189)))
            .unwrap();
        // busy: 140 user + 30 system + 20 softirq = 190 of 240 jiffies.
        assert_eq!(s.busy_permille, 791);
        assert_eq!(s.softirq_permille, 83);
        // cpu1: 110 + 20 + 10 = 140 busy, 0 idle.
        assert_eq!(s.busiest_cpu_permille, 1000);
        assert_eq!((s.at, s.span_ms), (1000, 1000));
        assert_eq!(s.psi_some_avg10_centi, Some(6189));
    }

    #[test]
    fn old_kernel_format_gives_a_sample() {
        let mut sampler = LoadSampler::new();
        sampler.sample(0, &reading(STAT_OLD_T0, None));
        let s = sampler.sample(500, &reading(STAT_OLD_T1, None)).unwrap();
        // 20 user + 10 system + 20 softirq busy of 100.
        assert_eq!((s.busy_permille, s.softirq_permille), (500, 200));
        assert_eq!(s.span_ms, 500);
    }

    #[test]
    fn psi_avg10_parses_to_centi_percent_without_floats() {
        assert_eq!(parse_psi_some_avg10_centi(PSI), Some(6189));
        assert_eq!(
            parse_psi_some_avg10_centi(b"some avg10=100.00 avg60=1 avg300=0 total=1\n"),
            Some(10_000)
        );
        assert_eq!(parse_psi_some_avg10_centi(b"some avg10=7.5 x\n"), Some(750));
        assert_eq!(parse_psi_some_avg10_centi(b"some avg10=3 x\n"), Some(300));
    }

    #[test]
    fn malformed_psi_is_none() {
        for bad in [
            &b""[..],
            b"full avg10=1.00\n",
            b"some avg10=1.0x avg60=0\n",
            b"some avg10=-1.00\n",
            b"some avg10=.\n",
            b"some avg10=99999999999999999999999.00\n",
        ] {
            assert_eq!(parse_psi_some_avg10_centi(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn stat_without_aggregate_line_is_rejected() {
        assert_eq!(parse_stat(b"cpu0 1 2 3 4\n"), None);
        assert_eq!(parse_stat(b"cpu  1 2 3\n"), None, "too few counters");
        assert_eq!(parse_stat(b"cpu  1 2 x 4\n"), None);
        assert_eq!(parse_stat(b"cpu  99999999999999999999 2 3 4\n"), None);
        assert_eq!(parse_stat(&[0xff, b'\n', 0]), None);
    }

    #[test]
    fn a_line_cut_by_the_buffer_is_ignored() {
        let s = parse_stat(b"cpu  10 0 10 80\ncpu0 10 0 10 80\ncpu1 1").unwrap();
        assert!(s.cpus[0].is_some());
        assert!(s.cpus[1].is_none());
    }

    #[test]
    fn cpus_beyond_capacity_count_only_in_the_aggregate() {
        // Every tracked CPU idles; only the extra ones work.
        let text = |busy: u64| {
            let extra = 4;
            let mut t = format!(
                "cpu  {} 0 0 {}\n",
                busy * extra,
                busy * LOAD_CPUS_MAX as u64
            );
            for n in 0..LOAD_CPUS_MAX {
                t.push_str(&format!("cpu{n} 0 0 0 {busy}\n"));
            }
            for n in LOAD_CPUS_MAX..LOAD_CPUS_MAX + extra as usize {
                t.push_str(&format!("cpu{n} {busy} 0 0 0\n"));
            }
            t
        };
        let mut sampler = LoadSampler::new();
        sampler.sample(0, &reading(text(0).as_bytes(), None));
        let s = sampler
            .sample(1000, &reading(text(100).as_bytes(), None))
            .unwrap();
        assert_eq!(s.busy_permille, 333, "4 busy of 12 CPUs");
        assert_eq!(s.busiest_cpu_permille, 0);
    }

    #[test]
    fn zero_delta_gives_no_sample_instead_of_dividing_by_zero() {
        let mut sampler = LoadSampler::new();
        sampler.sample(0, &reading(STAT_MODERN_T0, None));
        assert_eq!(sampler.sample(1000, &reading(STAT_MODERN_T0, None)), None);
        assert_eq!(sampler.sample(1000, &reading(STAT_MODERN_T1, None)), None);
    }

    #[test]
    fn counters_going_backwards_reset_the_baseline() {
        let mut sampler = LoadSampler::new();
        sampler.sample(0, &reading(STAT_MODERN_T1, None));
        assert_eq!(sampler.sample(1000, &reading(STAT_MODERN_T0, None)), None);
        let s = sampler
            .sample(2000, &reading(STAT_MODERN_T1, None))
            .unwrap();
        assert_eq!(s.busy_permille, 791);
    }

    #[test]
    fn iowait_running_backwards_does_not_wrap() {
        let mut sampler = LoadSampler::new();
        sampler.sample(0, &reading(b"cpu  100 0 0 100 50 0 0 0\n", None));
        let s = sampler
            .sample(1000, &reading(b"cpu  150 0 0 150 40 0 0 0\n", None))
            .unwrap();
        assert_eq!(s.busy_permille, 500);
    }

    #[test]
    fn huge_counters_do_not_overflow() {
        let mut sampler = LoadSampler::new();
        let max = u64::MAX;
        let line = format!("cpu  {max} {max} {max} {max} {max} {max} {max} {max}\n");
        sampler.sample(0, &reading(b"cpu  0 0 0 0\n", None));
        let s = sampler.sample(1000, &reading(line.as_bytes(), None));
        assert!(s.is_none_or(|s| s.busy_permille <= 1000));
    }

    #[test]
    fn reads_a_fake_proc_tree_and_tolerates_missing_psi() {
        let root = std::env::temp_dir().join(format!("swandog-load-{}", std::process::id()));
        std::fs::create_dir_all(root.join("pressure")).unwrap();
        std::fs::write(root.join("stat"), STAT_MODERN_T0).unwrap();
        let mut buf = [0u8; PROC_READ_BUFFER_BYTES];
        let r = read_sample(&root, &mut buf).unwrap();
        assert_eq!(r.stat.all.user, 51952);
        assert_eq!(r.psi_some_avg10_centi, None);
        std::fs::write(root.join("pressure/cpu"), PSI).unwrap();
        let r = read_sample(&root, &mut buf).unwrap();
        assert_eq!(r.psi_some_avg10_centi, Some(6189));
        std::fs::remove_dir_all(&root).unwrap();
        assert!(matches!(
            read_sample(&root, &mut buf),
            Err(ReadError::StatUnreadable(_))
        ));
    }

    #[test]
    fn a_tiny_buffer_reads_only_the_first_lines() {
        let root = std::env::temp_dir().join(format!("swandog-load-tiny-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("stat"), STAT_MODERN_T0).unwrap();
        let mut buf = [0u8; 60];
        let r = ProcFiles::new(&root).read(&mut buf).unwrap();
        assert!(r.stat.cpus[0].is_none(), "cut line ignored");
        std::fs::write(root.join("stat"), b"intr 1 2 3\n").unwrap();
        assert!(matches!(
            ProcFiles::new(&root).read(&mut buf),
            Err(ReadError::StatMalformed)
        ));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn real_proc_reads_when_present() {
        let mut buf = [0u8; PROC_READ_BUFFER_BYTES];
        if Path::new("/proc/stat").exists() {
            let r = read_sample(Path::new("/proc"), &mut buf).unwrap();
            assert!(r.stat.all.total() > 0);
        }
    }
}
