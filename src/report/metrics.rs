//! The metrics file: the agent's [`Status`] in Prometheus' text exposition format, for the
//! node exporter's textfile collector (OpenWrt: `prometheus-node-exporter-lua`, which reads
//! `/var/prometheus/*.prom`).
//!
//! Every family has `# HELP` and `# TYPE`; names follow Prometheus' conventions (base units,
//! `_total` for counters, `_ratio` for 0..1); label values are charon's names, escaped as the
//! format requires. No timestamps: the textfile collector refuses them. The shell streams the
//! text to its file through the status file's fixed buffer and atomic rename
//! ([`SnapshotFile`](super::status::SnapshotFile)).
//!
//! ```
//! use swandog::agent::{Agent, Settings};
//! use swandog::report::metrics::{render_metrics, ShellFigures};
//!
//! let agent = Agent::new(Settings::default(), 1);
//! let mut text = String::new();
//! render_metrics(&agent.status(0), &ShellFigures::default(), &mut text).unwrap();
//! assert!(text.contains("# TYPE swandog_charon_connected gauge\nswandog_charon_connected 0\n"));
//! ```

use core::fmt::{self, Write};

use crate::agent::keeper::KeptState;
use crate::agent::status::Status;
use crate::agent::throttle::Pace;

/// Figures only the shell knows, rendered beside the agent's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShellFigures {
    /// swandog's own CPU time so far (user + system), µs.
    pub cpu_us: u64,
    /// Log lines syslog could not deliver.
    pub syslog_dropped: u32,
}

/// Writes `value` as a label value: `\`, `"` and newline escaped, as the text format requires.
///
/// ```
/// use swandog::report::metrics::label_value;
/// let mut out = String::new();
/// label_value(&mut out, "a\"b\\c\nd").unwrap();
/// assert_eq!(out, r#"a\"b\\c\nd"#);
/// ```
pub fn label_value(out: &mut impl Write, value: &str) -> fmt::Result {
    let mut rest = value;
    while let Some(i) = rest.find(['\\', '"', '\n']) {
        out.write_str(&rest[..i])?;
        out.write_str(match rest.as_bytes()[i] {
            b'\\' => "\\\\",
            b'"' => "\\\"",
            _ => "\\n",
        })?;
        rest = &rest[i + 1..];
    }
    out.write_str(rest)
}

/// One family's header.
fn family(out: &mut impl Write, name: &str, kind: &str, help: &str) -> fmt::Result {
    writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}")
}

/// One sample: `name{k="v",…} value`.
fn sample(
    out: &mut impl Write,
    name: &str,
    labels: &[(&str, &str)],
    value: impl fmt::Display,
) -> fmt::Result {
    out.write_str(name)?;
    for (i, (key, val)) in labels.iter().enumerate() {
        out.write_str(if i == 0 { "{" } else { "," })?;
        out.write_str(key)?;
        out.write_str("=\"")?;
        label_value(out, val)?;
        out.write_char('"')?;
    }
    if !labels.is_empty() {
        out.write_char('}')?;
    }
    writeln!(out, " {value}")
}

/// A fraction `n / d` (`d` at most 10^6) with six decimals, integers only:
/// `Frac(875, 1000)` is `0.875000`. Six decimals are finer than any figure swandog measures
/// (permille, centi-percent, microseconds).
struct Frac(u64, u64);

impl fmt::Display for Frac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.1.clamp(1, 1_000_000);
        // n % d < 10^6, so the product stays below 10^12: no 128-bit division needed.
        write!(f, "{}.{:06}", self.0 / d, self.0 % d * 1_000_000 / d)
    }
}

fn bit(b: bool) -> u8 {
    u8::from(b)
}

/// The whole metrics file.
pub fn render_metrics(
    view: &Status<'_>,
    shell: &ShellFigures,
    out: &mut impl Write,
) -> fmt::Result {
    let now = view.now;
    family(
        out,
        "swandog_build_info",
        "gauge",
        "swandog's version and target triple (always 1).",
    )?;
    sample(
        out,
        "swandog_build_info",
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("target", env!("SWANDOG_TARGET")),
        ],
        1,
    )?;

    family(
        out,
        "swandog_charon_connected",
        "gauge",
        "1 while swandog is registered for charon's VICI events, else 0.",
    )?;
    sample(
        out,
        "swandog_charon_connected",
        &[],
        bit(view.link.connected),
    )?;
    family(
        out,
        "swandog_charon_alerts_supported",
        "gauge",
        "1 when charon sends alert events (strongSwan 6.0.3 and later).",
    )?;
    sample(
        out,
        "swandog_charon_alerts_supported",
        &[],
        bit(view.link.alerts),
    )?;

    // Load: no sample before the first reading (an unknown figure is absent, not 0).
    let load = view.load;
    for (name, help, value) in [
        (
            "swandog_box_busy_ratio",
            "Share of all CPUs' time spent busy over the last sample.",
            load.map(|s| s.busy_permille),
        ),
        (
            "swandog_busiest_cpu_busy_ratio",
            "Busy share of the busiest single CPU over the last sample.",
            load.map(|s| s.busiest_cpu_permille),
        ),
        (
            "swandog_softirq_ratio",
            "Share of all CPUs' time spent in softirq over the last sample.",
            load.map(|s| s.softirq_permille),
        ),
    ] {
        family(out, name, "gauge", help)?;
        if let Some(v) = value {
            sample(out, name, &[], Frac(u64::from(v), 1000))?;
        }
    }
    family(
        out,
        "swandog_cpu_pressure_ratio",
        "gauge",
        "CPU pressure (PSI some avg10) as a share of time; absent without PSI.",
    )?;
    if let Some(p) = load.and_then(|s| s.psi_some_avg10_centi) {
        sample(
            out,
            "swandog_cpu_pressure_ratio",
            &[],
            Frac(u64::from(p), 10_000),
        )?;
    }

    family(
        out,
        "swandog_pace",
        "gauge",
        "swandog's pace: 1 for the current one (normal; box-busy and over-budget are slowed).",
    )?;
    for pace in [Pace::Normal, Pace::BoxBusy, Pace::OverBudget] {
        sample(
            out,
            "swandog_pace",
            &[("pace", pace.as_str())],
            bit(view.pace.pace == pace),
        )?;
    }
    family(
        out,
        "swandog_pace_changes_total",
        "counter",
        "Times swandog changed its pace.",
    )?;
    sample(out, "swandog_pace_changes_total", &[], view.pace.changes)?;
    family(
        out,
        "swandog_cpu_seconds_total",
        "counter",
        "CPU time swandog itself used (user + system).",
    )?;
    sample(
        out,
        "swandog_cpu_seconds_total",
        &[],
        Frac(shell.cpu_us, 1_000_000),
    )?;

    render_children(view, now, out)?;
    render_dpd(view, out)?;

    let c = &view.counters;
    family(
        out,
        "swandog_vici_errors_total",
        "counter",
        "VICI trouble: malformed frames (wire), failed or timed-out calls (command), lost event links (link-lost).",
    )?;
    for (kind, n) in [
        ("wire", c.wire_faults),
        ("command", c.command_failures),
        ("link-lost", c.link_losses),
    ] {
        sample(out, "swandog_vici_errors_total", &[("kind", kind)], n)?;
    }
    for (name, help, value) in [
        (
            "swandog_watch_names_missing",
            "Names in `watch` that charon's configuration lacks (as of the last list-conns).",
            c.watch_names_missing,
        ),
        (
            "swandog_watch_left_out",
            "Children the watch plan would keep beyond swandog's watch list capacity (not kept).",
            c.watch_left_out,
        ),
        (
            "swandog_children_unconfigured",
            "Watched children set aside because charon's configuration no longer has them.",
            c.children_unconfigured,
        ),
    ] {
        family(out, name, "gauge", help)?;
        sample(out, name, &[], value)?;
    }
    family(
        out,
        "swandog_load_sample_errors_total",
        "counter",
        "Failed reads of /proc/stat or /proc/pressure/cpu.",
    )?;
    sample(
        out,
        "swandog_load_sample_errors_total",
        &[],
        c.sample_errors,
    )?;
    family(
        out,
        "swandog_dropped_total",
        "counter",
        "Things swandog counted instead of keeping: log lines, entries beyond a table's capacity, keeper reports, syslog lines.",
    )?;
    for (what, n) in [
        ("log-lines", c.lines_dropped),
        ("table-overflow", c.table_overflows),
        ("keeper-reports", view.keeper_reports_dropped),
        ("syslog-lines", shell.syslog_dropped),
    ] {
        sample(out, "swandog_dropped_total", &[("what", what)], n)?;
    }
    Ok(())
}

fn render_children(view: &Status<'_>, now: u64, out: &mut impl Write) -> fmt::Result {
    // A child set aside (charon no longer has it configured, or `watch` no longer names it) is
    // not a tunnel that is down: it leaves the up/down families, and their alerts, at once.
    let kept = || view.children().filter(|c| c.state != KeptState::NotKept);
    family(
        out,
        "swandog_child_up",
        "gauge",
        "1 while a watched CHILD_SA is installed, else 0.",
    )?;
    for c in kept() {
        let up = c.state == KeptState::Up;
        sample(
            out,
            "swandog_child_up",
            &[("child", c.name), ("ike", c.ike)],
            bit(up),
        )?;
    }
    family(
        out,
        "swandog_child_down_seconds",
        "gauge",
        "How long a watched CHILD_SA has been down (0 while up).",
    )?;
    for c in kept() {
        let down_ms = match c.state {
            KeptState::Up => 0,
            _ => now.saturating_sub(c.since),
        };
        sample(
            out,
            "swandog_child_down_seconds",
            &[("child", c.name), ("ike", c.ike)],
            Frac(down_ms, 1000),
        )?;
    }
    family(
        out,
        "swandog_reinitiations_total",
        "counter",
        "Times swandog's initiates brought a watched child back.",
    )?;
    for c in view.children() {
        sample(
            out,
            "swandog_reinitiations_total",
            &[("child", c.name)],
            c.reinitiations,
        )?;
    }
    family(
        out,
        "swandog_initiates_total",
        "counter",
        "Initiates swandog sent for a watched child.",
    )?;
    for c in view.children() {
        sample(
            out,
            "swandog_initiates_total",
            &[("child", c.name)],
            c.initiates,
        )?;
    }
    family(
        out,
        "swandog_child_failures_total",
        "counter",
        "Failed initiates of a child, by charon's reason (no-reply, proposal-mismatch, ts-mismatch, auth-failed, ...).",
    )?;
    for t in view.tallies.failures() {
        sample(
            out,
            "swandog_child_failures_total",
            &[("child", &t.child), ("cause", t.cause.label())],
            t.count,
        )?;
    }
    Ok(())
}

fn render_dpd(view: &Status<'_>, out: &mut impl Write) -> fmt::Result {
    family(
        out,
        "swandog_dpd_failures_total",
        "counter",
        "DPD failures of an IKE_SA, by verdict: load-correlated (the box was loaded) or not-load-correlated.",
    )?;
    for t in view.tallies.dpd() {
        for (verdict, n) in [
            ("load-correlated", t.load_correlated),
            ("not-load-correlated", t.not_load_correlated),
        ] {
            sample(
                out,
                "swandog_dpd_failures_total",
                &[("ike", &t.ike), ("verdict", verdict)],
                n,
            )?;
        }
    }
    let rate = &view.rate;
    family(
        out,
        "swandog_load_observed_seconds_total",
        "counter",
        "Time swandog observed the box loaded or quiet (the denominators of the DPD rates).",
    )?;
    family_pair(
        out,
        "swandog_load_observed_seconds_total",
        Frac(rate.loaded_ms(), 1000),
        Frac(rate.quiet_ms(), 1000),
    )?;
    family(
        out,
        "swandog_dpd_rate_failures_total",
        "counter",
        "DPD failures counted while the box was loaded or quiet (all IKE_SAs).",
    )?;
    family_pair(
        out,
        "swandog_dpd_rate_failures_total",
        rate.loaded_failures(),
        rate.quiet_failures(),
    )?;
    family(
        out,
        "swandog_dpd_failures_per_hour",
        "gauge",
        "DPD failures per hour while loaded or quiet (the summary line's rates); absent before any such time.",
    )?;
    for (load, milli) in [
        ("loaded", rate.loaded_per_hour_milli()),
        ("quiet", rate.quiet_per_hour_milli()),
    ] {
        if let Some(m) = milli {
            sample(
                out,
                "swandog_dpd_failures_per_hour",
                &[("load", load)],
                Frac(m, 1000),
            )?;
        }
    }
    family(
        out,
        "swandog_dpd_loaded_to_quiet_rate",
        "gauge",
        "Loaded DPD failure rate divided by the quiet one; absent while either is unknown or the quiet rate is 0.",
    )?;
    if let Some(r) = rate.ratio_centi() {
        sample(out, "swandog_dpd_loaded_to_quiet_rate", &[], Frac(r, 100))?;
    }
    family(
        out,
        "swandog_dpd_rate_class",
        "gauge",
        "What the rates say so far: 1 for the current class (load-worse means tunnels die more often under load).",
    )?;
    let class = rate.class();
    for c in [
        crate::agent::correlate::RateClass::InsufficientData,
        crate::agent::correlate::RateClass::LoadWorse,
        crate::agent::correlate::RateClass::NoDifference,
    ] {
        sample(
            out,
            "swandog_dpd_rate_class",
            &[("class", c.as_str())],
            bit(c == class),
        )?;
    }
    Ok(())
}

fn family_pair(
    out: &mut impl Write,
    name: &str,
    loaded: impl fmt::Display,
    quiet: impl fmt::Display,
) -> fmt::Result {
    sample(out, name, &[("load", "loaded")], loaded)?;
    sample(out, name, &[("load", "quiet")], quiet)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_escape_quotes_backslashes_and_newlines_only() {
        let mut out = String::new();
        label_value(&mut out, "plain").unwrap();
        label_value(&mut out, "|\"x\"\\\n\n|").unwrap();
        assert_eq!(out, "plain|\\\"x\\\"\\\\\\n\\n|");
    }

    #[test]
    fn fractions_print_without_floats() {
        assert_eq!(Frac(875, 1000).to_string(), "0.875000");
        assert_eq!(Frac(1000, 1000).to_string(), "1.000000");
        assert_eq!(Frac(3_250_001, 1_000_000).to_string(), "3.250001");
        assert_eq!(Frac(5, 0).to_string(), "5.000000");
    }

    #[test]
    fn samples_carry_their_labels_in_order() {
        let mut out = String::new();
        sample(&mut out, "m", &[("a", "x"), ("b", "y\"")], 3).unwrap();
        sample(&mut out, "n", &[], 0).unwrap();
        assert_eq!(out, "m{a=\"x\",b=\"y\\\"\"} 3\nn 0\n");
    }
}
