//! The agent's [`Status`] view as text: the status file (one JSON line, then the human form of
//! `swandog status`) and the SIGUSR1 summary lines.
//!
//! ```
//! use swandog::agent::{Agent, Settings};
//! use swandog::report::render::render_status;
//!
//! let agent = Agent::new(Settings::default(), 1);
//! let mut text = String::new();
//! render_status(&agent.status(5_000), 1_800_000_000, &mut text);
//! let (json, human) = text.split_once('\n').unwrap();
//! assert!(json.starts_with("{\"written\":1800000000,\"vici\":{\"connected\":false"));
//! assert!(human.starts_with("charon: NOT CONNECTED for 5.0 s"));
//! ```

use core::fmt::Write;

use log::Level;

use super::status::sparkline;
use super::table::json_str;
use crate::agent::cause::Cause;
use crate::agent::keeper::{KeptState, Span, WatchReason};
use crate::agent::status::Status;
use crate::agent::units::{HoursValue, PercentValue};
use crate::agent::{Line, Millis};
use crate::limits::WATCHED_CHILDREN_MAX;

/// SIGUSR1: a status summary as log lines, each starting `status:`.
pub fn summary(view: &Status<'_>, emit: &mut dyn FnMut(Level, &str)) {
    let now = view.now;
    let load = view.load.map_or(0, |s| s.busy_permille);
    let mut text = Line::new();
    let _ = write!(
        text,
        "status: charon {} for {}, box {}% busy, pace {}, {} DPD failures recorded",
        if view.link.connected {
            "connected"
        } else {
            "unreachable"
        },
        Span(now.saturating_sub(view.link.since)),
        PercentValue(load),
        view.pace.pace.as_str(),
        view.dpd_record_count()
    );
    emit(Level::Info, &text);
    for child in view.children() {
        let mut text = Line::new();
        let _ = write!(
            text,
            "status: {} ({}): {} for {}, {} re-initiation{}{}{}",
            child.name,
            child.ike,
            state_label(child.state),
            Span(now.saturating_sub(child.since)),
            child.reinitiations,
            if child.reinitiations == 1 { "" } else { "s" },
            if child.last_failure.is_some() {
                ", last failure: "
            } else {
                ""
            },
            child.last_failure.map_or("", Cause::text)
        );
        emit(Level::Info, &text);
    }
    let mut rate = Line::new();
    let _ = rate.write_str("status: ");
    let _ = view.rate.format_summary(&mut rate);
    emit(Level::Info, &rate);
}

/// The status snapshot: one JSON line, then the human form.
pub fn render_status(view: &Status<'_>, unix_now: u64, out: &mut impl Write) {
    let _ = render_json(view, unix_now, out);
    let _ = out.write_char('\n');
    let _ = render_human(view, out);
}

fn unix_at(now: Millis, unix_now: u64, at: Millis) -> u64 {
    unix_now.saturating_sub(now.saturating_sub(at) / 1000)
}

/// The JSON line (`swandog status --json`), without its newline.
pub fn render_json(view: &Status<'_>, unix_now: u64, out: &mut impl Write) -> core::fmt::Result {
    let now = view.now;
    write!(
        out,
        "{{\"written\":{unix_now},\"vici\":{{\"connected\":{},\"alerts\":{}}},",
        view.link.connected, view.link.alerts
    )?;
    let s = view.load;
    write!(
        out,
        "\"load\":{{\"busy\":{},\"busiest_cpu\":{},\"softirq\":{},\"psi\":",
        PercentValue(s.map_or(0, |s| s.busy_permille)),
        PercentValue(s.map_or(0, |s| s.busiest_cpu_permille)),
        PercentValue(s.map_or(0, |s| s.softirq_permille)),
    )?;
    match s.and_then(|s| s.psi_some_avg10_centi) {
        Some(p) => write!(out, "{}.{:02}", p / 100, p % 100)?,
        None => out.write_str("null")?,
    }
    write!(out, ",\"pace\":")?;
    json_str(out, view.pace.pace.as_str())?;
    let own = view.pace.own_cpu_centi_permille;
    write!(out, ",\"own_cpu_percent\":{}.{:03}", own / 1000, own % 1000)?;
    out.write_str("},\"children\":[")?;
    for (i, c) in view.children().enumerate() {
        if i > 0 {
            out.write_char(',')?;
        }
        out.write_str("{\"name\":")?;
        json_str(out, c.name)?;
        out.write_str(",\"ike\":")?;
        json_str(out, c.ike)?;
        write!(out, ",\"state\":\"{}\"", state_label(c.state))?;
        write!(
            out,
            ",\"since\":{},\"reinitiations\":{},\"attempts\":{},\"reason\":",
            unix_at(now, unix_now, c.since),
            c.reinitiations,
            c.attempts_since_down
        )?;
        json_str(out, reason_label(c.reason))?;
        out.write_str(",\"last_failure\":")?;
        match c.last_failure {
            Some(f) => json_str(out, f.label())?,
            None => out.write_str("null")?,
        }
        out.write_str(",\"next_attempt\":")?;
        match c.next_attempt_at {
            Some(at) => write!(out, "{}", unix_now + at.saturating_sub(now) / 1000)?,
            None => out.write_str("null")?,
        }
        out.write_char('}')?;
    }
    out.write_str("],\"dpd_failures\":[")?;
    for (i, r) in view.dpd_records().enumerate() {
        if i > 0 {
            out.write_char(',')?;
        }
        out.write_str("{\"ike\":")?;
        json_str(out, &r.ike)?;
        write!(
            out,
            ",\"at\":{},\"verdict\":\"{}\",\"busy_avg\":{},\"busy_peak\":{},\"above_s\":{},\"window_s\":{}}}",
            unix_at(now, unix_now, r.at),
            if r.verdict.load_correlated { "load" } else { "no-load" },
            PercentValue(r.verdict.busy_avg_permille),
            PercentValue(r.verdict.busy_peak_permille),
            r.verdict.above_ms / 1000,
            r.verdict.window_ms / 1000
        )?;
    }
    let rate = &view.rate;
    write!(
        out,
        "],\"rate\":{{\"class\":\"{}\",\"loaded_failures\":{},\"loaded_hours\":{},\"quiet_failures\":{},\"quiet_hours\":{},\"ratio\":",
        rate.class().as_str(),
        rate.loaded_failures(),
        HoursValue(rate.loaded_ms()),
        rate.quiet_failures(),
        HoursValue(rate.quiet_ms()),
    )?;
    match rate.ratio_centi() {
        Some(r) => write!(out, "{}.{:02}", r / 100, r % 100)?,
        None => out.write_str("null")?,
    }
    let c = &view.counters;
    write!(
        out,
        "}},\"counters\":{{\"wire_faults\":{},\"command_failures\":{},\"lines_dropped\":{},\"table_overflows\":{},\"sample_errors\":{},\"link_losses\":{},\"pace_changes\":{},\"watch_names_missing\":{},\"watch_left_out\":{},\"children_unconfigured\":{}}}}}",
        c.wire_faults, c.command_failures, c.lines_dropped, c.table_overflows, c.sample_errors, c.link_losses, view.pace.changes,
        c.watch_names_missing, c.watch_left_out, c.children_unconfigured
    )
}

/// The human form of `swandog status`: at most 80 columns for names up to 14 characters.
pub fn render_human(view: &Status<'_>, out: &mut impl Write) -> core::fmt::Result {
    let now = view.now;
    let s = view.load;
    let own = view.pace.own_cpu_centi_permille;
    writeln!(
        out,
        "charon: {} for {}   pace: {} (swandog uses {}.{:03}% of a core)",
        if view.link.connected {
            "connected"
        } else {
            "NOT CONNECTED"
        },
        Span(now.saturating_sub(view.link.since)),
        view.pace.pace.as_str(),
        own / 1000,
        own % 1000
    )?;
    write!(
        out,
        "box: {}% busy now (busiest cpu {}%, softirq {}%",
        PercentValue(s.map_or(0, |s| s.busy_permille)),
        PercentValue(s.map_or(0, |s| s.busiest_cpu_permille)),
        PercentValue(s.map_or(0, |s| s.softirq_permille)),
    )?;
    if let Some(p) = s.and_then(|s| s.psi_some_avg10_centi) {
        write!(out, ", cpu pressure {}.{:02}%", p / 100, p % 100)?;
    }
    writeln!(out, ")")?;

    // Load over the last 10 minutes, 60 columns of 10 s, newest right; DPD failures beneath.
    // A column without samples (a young agent, a sampling gap) stays blank, not idle.
    const COLS: usize = 60;
    const COL_MS: u64 = 10_000;
    let column = |at: Millis| {
        let age = now.saturating_sub(at) / COL_MS;
        (at <= now && age < COLS as u64).then(|| COLS - 1 - age as usize)
    };
    let mut peaks: [Option<u16>; COLS] = [None; COLS];
    for p in view.history.samples() {
        if let Some(col) = column(p.at) {
            peaks[col] = Some(peaks[col].unwrap_or(0).max(p.busy_permille));
        }
    }
    writeln!(
        out,
        "\nload, last 10 min (peak busy per 10 s, newest right; DPD failures below):"
    )?;
    out.write_str("  |")?;
    for peak in peaks {
        match peak {
            Some(p) => sparkline(out, &[p])?,
            None => out.write_char(' ')?,
        }
    }
    out.write_str("|\n  |")?;
    let mut marks = [' '; COLS];
    for r in view.dpd_records() {
        if let Some(col) = column(r.at) {
            marks[col] = if r.verdict.load_correlated { 'L' } else { 'x' };
        }
    }
    for m in marks {
        out.write_char(m)?;
    }
    writeln!(out, "|")?;
    writeln!(
        out,
        "   L = DPD failure while the box was loaded, x = DPD failure on a quiet box"
    )?;

    writeln!(out, "\nwatched children:")?;
    let mut any = false;
    for c in view.children() {
        if !any {
            writeln!(
                out,
                "  {:<14} {:<14} {:<13} {:<11} {:<10} {:>7}",
                "CHILD", "IKE", "WHY", "STATE", "FOR", "RE-INIT"
            )?;
            any = true;
        }
        let mut since = Line::new();
        let _ = write!(since, "{}", Span(now.saturating_sub(c.since)));
        writeln!(
            out,
            "  {:<14} {:<14} {:<13} {:<11} {:<10} {:>7}",
            c.name,
            c.ike,
            reason_label(c.reason),
            state_label(c.state),
            since,
            c.reinitiations
        )?;
        if c.state != KeptState::Up {
            if !c.basis.initiates() {
                writeln!(out, "      not re-initiating: {}", c.basis)?;
            } else if let Some(at) = c.next_attempt_at {
                writeln!(
                    out,
                    "      next attempt in {} (attempt {} of this outage)",
                    Span(at.saturating_sub(now)),
                    c.attempts_since_down.saturating_add(1)
                )?;
            }
        }
        if let Some(f) = c.last_failure {
            writeln!(out, "      last failure: {}", f.text())?;
        }
        if c.stale {
            writeln!(out, "      one-sided: packets go out, none come in")?;
        }
        if c.flapping {
            writeln!(out, "      flapping: drops soon after each re-initiation")?;
        }
    }
    if !any {
        writeln!(
            out,
            "  none yet: no route-based child seen up, and none named with `watch`"
        )?;
    }
    if view.missing_count() > 0 {
        write!(out, "  not configured in charon (kept once it is):")?;
        for (name, hint) in view.missing_names() {
            match hint {
                Some(h) => write!(out, " {name} (did you mean {h}?)")?,
                None => write!(out, " {name}")?,
            }
        }
        writeln!(out)?;
    }
    if view.counters.watch_left_out > 0 {
        writeln!(
            out,
            "  left out: {} more children than the {WATCHED_CHILDREN_MAX} swandog keeps",
            view.counters.watch_left_out
        )?;
    }

    let records = view.dpd_record_count();
    if records == 0 {
        writeln!(out, "\nDPD failures: none recorded")?;
    } else {
        writeln!(out, "\nDPD failures (the last {records}, newest last):")?;
        writeln!(
            out,
            "  {:<16} {:<14} {:<21} {:>9} {:>7}",
            "WHEN", "IKE_SA", "VERDICT", "BUSY AVG", "PEAK"
        )?;
    }
    for r in view.dpd_records() {
        let mut when = Line::new();
        let _ = write!(when, "{} ago", Span(now.saturating_sub(r.at)));
        let tag = r.verdict.tag();
        writeln!(
            out,
            "  {:<16} {:<14} {:<21} {:>8}% {:>6}%",
            when,
            r.ike.as_str(),
            tag.trim_start_matches('[').trim_end_matches(']'),
            PercentValue(r.verdict.busy_avg_permille),
            PercentValue(r.verdict.busy_peak_permille)
        )?;
    }
    let mut rate = Line::new();
    let _ = view.rate.format_summary(&mut rate);
    // "DPD failures: <counts>: <conclusion>", the conclusion on its own line if too long.
    match rate.rsplit_once(": ") {
        Some((counts, conclusion)) if rate.len() > 78 => {
            writeln!(out, "\n{counts}:\n  {conclusion}")
        }
        _ => writeln!(out, "\n{rate}"),
    }
}

/// Why a child is watched, as one word for the status table and JSON.
pub fn reason_label(reason: WatchReason) -> &'static str {
    reason.label()
}

/// A watched child's state as one word for the status table, JSON and metrics.
pub fn state_label(state: KeptState) -> &'static str {
    match state {
        KeptState::Unknown => "unknown",
        KeptState::Up => "up",
        KeptState::Down => "down",
        KeptState::Connecting => "connecting",
        KeptState::Waiting { .. } => "waiting",
        KeptState::NotKept => "not-kept",
    }
}
